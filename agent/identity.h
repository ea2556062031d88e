/*
 * The agent's identity and the checks that bind the network to the trust
 * store: this node's key and certificate (loaded at start; the agent
 * refuses to start without a valid certificate for its own name and key),
 * and the three gates every peer passes:
 *   hms_identity_verify_peer   a certificate presented in a Noise handshake
 *   hms_identity_admit         a member record before the core adds it
 *   hms_identity_seal_check    a sender key before a UDP packet is opened
 */
#ifndef HMS_AGENT_IDENTITY_H
#define HMS_AGENT_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"

/* Loads the node key and certificate into a (ed_pk, ed_sk, x_sk, x_pk,
 * cert) and the trusted CAs; writes a message for people into err. */
int hms_identity_start(hms_agent *a, char *err, size_t errlen);
void hms_identity_stop(hms_agent *a);

int hms_identity_verify_peer(hms_agent *a, const uint8_t *cert, size_t len, hms_peer *out);
int hms_identity_admit(hms_agent *a, const swim_member_info *m);
int hms_identity_seal_check(hms_agent *a, const uint8_t ed_pk[32]);

#endif
