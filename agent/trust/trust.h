/*
 * Trust: this node's identity key, the CAs it trusts, its own certificate,
 * the certificates of peers it has admitted, and revocations.
 *
 * Files (formats in proto/cert.h and docs/security.md):
 *   node.key          Ed25519 secret key, text, mode 0600. Created on first
 *                     start in the data dir (with node.pub beside it) unless
 *                     a key file is given; a key file that group or others
 *                     can access is refused.
 *   ca.pub            trusted CA public keys, one per line; several files
 *                     and several keys per file may be given (CA rotation).
 *   node.cert         this node's certificate (binary, proto/cert.h).
 *   revocations.bin   CA-signed revocation records appended one after the
 *                     other (123 bytes each), reloaded at start.
 *
 * Clock: certificate validity is checked against unix seconds with
 * HMS_TRUST_SKEW_DEFAULT seconds of allowance on either side. Functions
 * that take `now_unix` use it; the callbacks (peer check, swim admit hook,
 * channel verify) use the time last given to hms_trust_set_time, or the
 * system clock when it was never set.
 *
 * Peer table: key -> certificate for every peer whose certificate was
 * checked (member records through the swim admit hook, Noise handshakes),
 * at most HMS_TRUST_PEERS_MAX entries, least recently used evicted first
 * (an evicted peer is unknown until its certificate is seen again).
 *
 * Everything runs on the agent's loop; nothing here is thread-safe.
 * Return values: 0 or a negative errno-style code for I/O and setup;
 * certificate checks return 0 or a negative hms_cert_result (proto/cert.h),
 * numbered apart from errno values; hms_trust_strerror names either.
 */
#ifndef HMS_TRUST_TRUST_H
#define HMS_TRUST_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/swim/swim.h"
#include "proto/cert.h"

#define HMS_TRUST_SKEW_DEFAULT 300      /* seconds of clock skew allowed */
#define HMS_TRUST_CA_MAX 16             /* trusted CA keys, all files together */
#define HMS_TRUST_PEERS_MAX 8192        /* peer table bound */
#define HMS_TRUST_REVOCATIONS_MAX 65536 /* records kept; more are refused */

typedef struct hms_trust hms_trust;
struct hms_peer; /* agent/net/chan.h */

typedef struct hms_trust_config {
    const char *data_dir;      /* required; node.key/node.pub/revocations.bin live here */
    const char *node_key_file; /* NULL: <data_dir>/node.key, created if absent. Given:
                                * must exist (never created). */
    const char *cert_file;     /* NULL: <data_dir>/node.cert if it exists. Given: must exist. */
    const char *const *ca_files; /* NULL/0: <data_dir>/ca.pub if it exists */
    size_t ca_count;
    const char *node_name;     /* our node name: the certificate must carry it (NULL: any) */
    uint64_t skew;             /* seconds; 0 means HMS_TRUST_SKEW_DEFAULT */
    /* Called for every peer key a new revocation expels (from
     * hms_trust_add_revocation): forget the sealer's key, mark the member
     * dead, close channels. */
    void (*on_revoked)(void *ctx, const uint8_t ed_pk[32]);
    void *on_revoked_ctx;
} hms_trust_config;

/* Loads or creates the identity key, loads the CAs, the own certificate
 * (checked: trusted CA, signature, our name, our key, validity at now_unix,
 * not revoked) and the revocations. On error returns a negative code and a
 * message for people in err, for example
 *   "key file '/var/lib/hms/node.key' is accessible by group or others
 *    (mode 0644): run chmod 600 '/var/lib/hms/node.key'"
 *   "certificate '/etc/hms/node.cert' is for node 'web-2', not 'web-1'"
 *   "certificate '/etc/hms/node.cert' has expired (not after 2026-12-01T00:00:00Z)"
 * A node without a certificate file (cert_file NULL and no
 * <data_dir>/node.cert) starts without one: hms_trust_own_cert gives NULL
 * and peers will refuse it. A node without any CA accepts no peer. */
int hms_trust_new(const hms_trust_config *cfg, uint64_t now_unix, hms_trust **out, char *err,
                  size_t errlen);
void hms_trust_delete(hms_trust *t); /* wipes the secret key */

/* A message for any code these functions return: an hms_cert_result name
 * ("expired", "unknown_ca", ...) or strerror for -errno. */
const char *hms_trust_strerror(int code);

/* The clock the callbacks use (unix seconds). */
void hms_trust_set_time(hms_trust *t, uint64_t now_unix);

/* ---- Identity ---------------------------------------------------------- */
const uint8_t *hms_trust_node_pk(const hms_trust *t); /* Ed25519 public, 32 bytes */
const uint8_t *hms_trust_node_sk(const hms_trust *t); /* Ed25519 secret, 64 bytes (sealer, signing) */
/* X25519 forms of our key (Noise static key, 32 + 32 bytes). */
void hms_trust_node_x25519(const hms_trust *t, uint8_t x_sk[32], uint8_t x_pk[32]);
/* Our encoded certificate, or NULL when we have none. */
const uint8_t *hms_trust_own_cert(const hms_trust *t, size_t *len);
const char *hms_trust_node_name(const hms_trust *t); /* from the certificate, or "" */

/* Ed25519 -> X25519. Return 0 or -EINVAL (not a valid point). */
int hms_ed25519_pk_to_x25519(const uint8_t ed_pk[32], uint8_t x_pk[32]);
int hms_ed25519_sk_to_x25519(const uint8_t ed_sk[64], uint8_t x_sk[32]);

/* ---- Peers' certificates ------------------------------------------------ */

/* Full check of a peer's certificate: canonical encoding, trusted CA,
 * signature, validity at now_unix (with skew), not revoked. Does not learn
 * it. On 0, *out (may be NULL) holds the certificate. */
int hms_trust_check_cert(hms_trust *t, const uint8_t *cert, size_t len, uint64_t now_unix,
                         hms_cert *out);

/* hms_trust_check_cert, then remembers key -> certificate in the peer table
 * (so hms_trust_peer_check admits the key). */
int hms_trust_learn(hms_trust *t, const uint8_t *cert, size_t len, uint64_t now_unix,
                    hms_cert *out);

/* For a Noise handshake: learns the certificate and checks that the remote
 * Noise static key equals the X25519 form of its key (HMS_CERT_WRONG_KEY
 * otherwise; compared in constant time). */
int hms_trust_check_noise_peer(hms_trust *t, const uint8_t *cert, size_t len,
                               const uint8_t remote_static[32], uint64_t now_unix, hms_cert *out);

/* hms_chan_verify_fn (agent/net/chan.h) with ctx = hms_trust *: learns the
 * certificate and fills out->key and out->name. Returns 0 or -EPERM. */
int hms_trust_chan_verify(void *ctx, const uint8_t *cert, size_t len, struct hms_peer *out);

/* swim_config.admit with ctx = hms_trust *: admits a member record when its
 * certificate checks out, names the same node and carries the same key;
 * learns it. Our own record is admitted. Returns 0 or -EPERM. */
int hms_trust_swim_admit(void *ctx, const swim_member_info *m);

/* hms_seal_peer_check (agent/net/seal.h) with ctx = hms_trust *:
 * HMS_SEAL_OK for our own key and for a learned peer whose certificate is
 * valid now and not revoked; HMS_SEAL_REVOKED for a revoked key;
 * HMS_SEAL_UNKNOWN_SENDER otherwise. */
int hms_trust_peer_check(void *ctx, const uint8_t ed_pk[32]);

/* Copies the learned certificate of a peer: 0 or -ENOENT. */
int hms_trust_peer_cert(const hms_trust *t, const uint8_t ed_pk[32], hms_cert *out);
/* Drops a peer from the table (member reaped). */
void hms_trust_forget(hms_trust *t, const uint8_t ed_pk[32]);
size_t hms_trust_peer_count(const hms_trust *t);
size_t hms_trust_ca_count(const hms_trust *t);

/* ---- Revocations -------------------------------------------------------- */

/* Verifies a revocation record against the trusted CAs; if it is new,
 * appends it to <data_dir>/revocations.bin (fsync), applies it (matching
 * peers leave the table, on_revoked is called for each) and sets *is_new.
 * A record already known returns 0 with *is_new false (gossip repeats).
 * Returns 0, a negative hms_cert_result (bad record), -ENOSPC (table
 * full) or a negative errno from the file write (nothing applied). */
int hms_trust_add_revocation(hms_trust *t, const uint8_t *rec, size_t len, bool *is_new);

/* Whether this key is revoked: by a key revocation, or by a serial
 * revocation of the certificate learned for it (or of our own). */
bool hms_trust_is_revoked(const hms_trust *t, const uint8_t ed_pk[32]);
/* Whether our own certificate or key has been revoked. */
bool hms_trust_self_revoked(const hms_trust *t);

/* Known records, for gossip and push-pull: count, and record i encoded. */
size_t hms_trust_revocation_count(const hms_trust *t);
int hms_trust_revocation_get(const hms_trust *t, size_t i, uint8_t out[HMS_REVOCATION_LEN]);

#endif
