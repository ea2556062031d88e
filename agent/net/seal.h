/*
 * Sealed UDP packets. Every gossip packet is encrypted and authenticated
 * with an AEAD key shared by sender and receiver, derived from their static
 * keys (X25519 forms of the Ed25519 node keys). A clear header names the
 * sender's key and carries its epoch and counter; the receiver checks them
 * against a per-sender replay window before anything is decoded.
 * Layout is documented in seal.c and docs/security.md.
 */
#ifndef HMS_NET_SEAL_H
#define HMS_NET_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define HMS_SEAL_OVERHEAD 96 /* upper bound of header + tag bytes */
#define HMS_SEAL_HEADER_LEN 57 /* version, sender key, receiver id, epoch, counter */
#define HMS_SEAL_TAG_LEN 16
#define HMS_SEAL_ID_LEN 8
#define HMS_SEAL_MAX_PLAINTEXT 65535
#define HMS_SEAL_CACHE_MAX 4096 /* peers whose keys and replay windows are kept (LRU) */

typedef enum hms_seal_result {
    HMS_SEAL_OK = 0,
    HMS_SEAL_MALFORMED = -1,      /* too short, bad version */
    HMS_SEAL_UNKNOWN_SENDER = -2, /* the key is not a trusted member */
    HMS_SEAL_BAD_TAG = -3,        /* authentication failed */
    HMS_SEAL_REPLAY = -4,         /* counter seen or too old */
    HMS_SEAL_STALE_EPOCH = -5,    /* older epoch than the one in use */
    HMS_SEAL_REVOKED = -6,        /* sender revoked */
    HMS_SEAL_NOT_FOR_US = -7,     /* addressed to another key */
} hms_seal_result;

const char *hms_seal_result_name(hms_seal_result r); /* "unknown_sender", ... */

typedef struct hms_sealer hms_sealer;

/* Decides whether a sender key may talk to us: return HMS_SEAL_OK,
 * HMS_SEAL_UNKNOWN_SENDER or HMS_SEAL_REVOKED. */
typedef int (*hms_seal_peer_check)(void *ctx, const uint8_t ed_pk[32]);

/* sk: our Ed25519 secret key (64 bytes, copied). epoch: strictly increasing
 * across restarts (the agent persists it). check runs on every packet before
 * any crypto; NULL admits every sender (tests, benchmarks). Returns NULL with
 * errno EINVAL or ENOMEM. */
hms_sealer *hms_sealer_new(const uint8_t ed_sk[64], uint64_t epoch, hms_seal_peer_check check,
                           void *ctx);
void hms_sealer_delete(hms_sealer *s); /* wipes keys */

/* Seals pt for the peer with Ed25519 public key peer_pk. out_cap >= len +
 * HMS_SEAL_OVERHEAD. Returns 0 or a negative code. */
int hms_seal(hms_sealer *s, const uint8_t peer_pk[32], const uint8_t *pt, size_t len, uint8_t *out,
             size_t out_cap, size_t *out_len);

/* Opens a packet: on HMS_SEAL_OK the plaintext is in out and the sender's
 * Ed25519 key in sender_pk. Any other result: nothing is trusted, nothing is
 * written to sender_pk, and the replay window is unchanged. An out buffer
 * shorter than len - HMS_SEAL_HEADER_LEN - HMS_SEAL_TAG_LEN gives
 * HMS_SEAL_MALFORMED. The peer check runs on every packet, so a revocation
 * takes effect on the next packet. */
int hms_open(hms_sealer *s, const uint8_t *pkt, size_t len, uint8_t *out, size_t out_cap,
             size_t *out_len, uint8_t sender_pk[32]);

/* Forgets a peer's derived key and replay window (revoked or reaped). */
void hms_sealer_forget(hms_sealer *s, const uint8_t peer_pk[32]);

/* Number of peers in the key cache (for stats). */
size_t hms_sealer_cached(const hms_sealer *s);

/* The receiver id carried in the header for an Ed25519 key. */
void hms_seal_key_id(const uint8_t ed_pk[32], uint8_t id[HMS_SEAL_ID_LEN]);

/* The claimed (unauthenticated) sender key of a packet, for logs and
 * counters only: HMS_SEAL_OK or HMS_SEAL_MALFORMED. */
int hms_seal_peek_sender(const uint8_t *pkt, size_t len, uint8_t sender_pk[32]);

#endif
