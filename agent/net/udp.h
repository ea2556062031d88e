/*
 * The UDP driver of the membership core: a socket on the gossip port,
 * received packets opened (seal.h) and handed to swim_recv, the core's
 * outgoing packets sealed for their recipient and sent. Every packet that is
 * dropped is counted by reason (hms_agent_udp_stats).
 */
#ifndef HMS_NET_UDP_H
#define HMS_NET_UDP_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"

#define HMS_UDP_PACKET_MAX 65507

typedef struct hms_udp hms_udp;

/* Binds a->cfg->bind and starts reading. Returns 0 or a negative code
 * (-EADDRINUSE, -EADDRNOTAVAIL, ...). */
int hms_udp_new(hms_agent *a, hms_udp **out);
void hms_udp_delete(hms_udp *u);

/* Seals and sends one SWIM_OUT_UDP output. Failures are counted. */
void hms_udp_send(hms_udp *u, const swim_output *o);

void hms_udp_get_stats(const hms_udp *u, hms_agent_udp_stats *out);

#endif
