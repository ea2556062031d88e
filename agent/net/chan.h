/*
 * Noise channels between agents: a TCP listener on the gossip port, outbound
 * connections pooled one per peer, and multiplexed RPC over them.
 *
 * A connection opens with Noise_XX_25519_ChaChaPoly_BLAKE2b (noise.h). Each
 * side's handshake payload is its node certificate; the verify callback
 * checks it (CA, validity, revocation) and returns the certificate's Ed25519
 * key, and the channel checks that the peer's Noise static key is the X25519
 * form of that key. Afterwards every record on the wire is
 *   uint16 big-endian length | Noise transport message (<= 65535 bytes)
 * whose plaintext is one chunk: a flags byte (bit 0: last chunk of a
 * message) and up to 65518 bytes of the message. An RPC message is
 *   type (1: request, 2: reply) | id (uint64 BE) | status (int32 BE) |
 *   method length (uint8) | method | body
 * Messages are sent whole, one after another; a request's reply may come in
 * any order with other replies (ids multiplex).
 *
 * Either side may call the other over any channel. Limits: HMS_CHAN_MSG_MAX
 * bytes per message, HMS_CHAN_PENDING_MAX outstanding calls per channel,
 * HMS_CHAN_CONNS_MAX connections, HMS_CHAN_HANDSHAKES_MAX handshakes in
 * progress (more inbound connections are closed at once, counted), a
 * handshake timeout and an idle timeout (a channel with no pending call and
 * no traffic is closed).
 */
#ifndef HMS_NET_CHAN_H
#define HMS_NET_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

struct ev_loop;

#define HMS_CHAN_MSG_MAX (16u << 20)
#define HMS_CHAN_PENDING_MAX 1024
#define HMS_CHAN_CONNS_MAX 512
#define HMS_CHAN_HANDSHAKES_MAX 64
#define HMS_CHAN_HANDSHAKE_TIMEOUT_MS 5000
/* A channel idle this long is closed. Channels serve push-pull (one random
 * peer per period, 30 s in the lan profile), catalog fetches and audit pulls:
 * reuse after 15 s is rare, and each open channel holds about 1 KiB of heap
 * (a 128-member agent had 140 open after joining). */
#define HMS_CHAN_IDLE_TIMEOUT_MS 15000
#define HMS_CHAN_METHOD_MAX 64
#define HMS_CHAN_CERT_MAX 1024

typedef struct hms_chan_pool hms_chan_pool;
typedef struct hms_rpc_call hms_rpc_call;

/* Who is on the other end of a channel, as proven by its handshake. */
typedef struct hms_peer {
    uint8_t key[32]; /* Ed25519 public key from the certificate */
    char name[65];   /* node name from the certificate */
    hms_addr addr;   /* the TCP address the connection came from or went to */
} hms_peer;

/* Checks a certificate presented in a handshake. Returns 0 and fills
 * out->key and out->name, or a negative code (the connection is closed and
 * counted as refused). */
typedef int (*hms_chan_verify_fn)(void *ctx, const uint8_t *cert, size_t len, hms_peer *out);

/* Server side of a method. The handler answers exactly once with
 * hms_rpc_reply, now or later (from the loop). peer and req are valid only
 * during the call; copy what is needed. */
typedef void (*hms_rpc_handler)(void *ctx, hms_rpc_call *call, const hms_peer *peer,
                                const uint8_t *req, size_t len);

/* Sends the reply and frees call. status: 0 or a negative errno-style code
 * (the caller's callback gets it). When the channel closed meanwhile the
 * reply is dropped and -ENOTCONN returned; call is freed either way. */
int hms_rpc_reply(hms_rpc_call *call, int status, const uint8_t *body, size_t len);

/* Client side completion: status 0 with the reply body, or a negative code:
 * -ETIMEDOUT, -ECONNREFUSED / -ECONNRESET / -EHOSTUNREACH (connect or I/O),
 * -EPERM (peer not trusted, or not the key asked for), -ENOSYS (no such
 * method there), -ECANCELED (hms_chan_cancel, or pool shutting down), or
 * the status given by the remote handler. Called from the loop, never from
 * inside hms_chan_call. */
typedef void (*hms_rpc_done)(void *ctx, int status, const hms_peer *peer, const uint8_t *reply,
                             size_t len);

typedef struct hms_chan_config {
    struct ev_loop *loop;
    hms_addr bind;            /* TCP listen address (the gossip port) */
    const uint8_t *static_sk; /* our X25519 secret key (32 bytes, copied) */
    const uint8_t *cert;      /* our certificate, sent in handshakes (copied) */
    size_t cert_len;
    hms_chan_verify_fn verify;
    void *verify_ctx;
    uint32_t handshake_timeout_ms; /* 0: HMS_CHAN_HANDSHAKE_TIMEOUT_MS */
    uint32_t idle_timeout_ms;      /* 0: HMS_CHAN_IDLE_TIMEOUT_MS */
} hms_chan_config;

/* Binds and listens. Returns 0 or a negative code (-EADDRINUSE, ...). */
int hms_chan_pool_new(const hms_chan_config *cfg, hms_chan_pool **out);
/* Closes every channel; pending calls complete with -ECANCELED first. */
void hms_chan_pool_delete(hms_chan_pool *p);

/* Registers a method (name up to HMS_CHAN_METHOD_MAX bytes). 0, -EEXIST,
 * -ENOSPC. */
int hms_chan_handle(hms_chan_pool *p, const char *method, hms_rpc_handler fn, void *ctx);

/* Calls method on a peer. key: the peer's Ed25519 key when known (the
 * channel to that key is reused, and a peer answering with another key is
 * refused), or NULL (e.g. a seed: any trusted node at addr). timeout_ms
 * covers connect, handshake and reply. On success returns 0, sets *call_id
 * (if not NULL) and done runs later exactly once. On error returns a
 * negative code and done is not called. */
int hms_chan_call(hms_chan_pool *p, const uint8_t *key, const hms_addr *addr, const char *method,
                  const uint8_t *req, size_t len, uint32_t timeout_ms, hms_rpc_done done, void *ctx,
                  uint64_t *call_id);

/* Cancels a pending call: its done runs with -ECANCELED (from the loop). */
void hms_chan_cancel(hms_chan_pool *p, uint64_t call_id);

/* Closes every channel to key (a revoked or expelled node). */
void hms_chan_close_peer(hms_chan_pool *p, const uint8_t key[32]);

/* One decoded RPC message (the plaintext of a whole message, see above).
 * Pointers refer into the decoded buffer. Exposed for tests and fuzzing. */
typedef struct hms_chan_msg {
    uint8_t type; /* 1 request, 2 reply */
    uint64_t id;
    int32_t status;
    char method[HMS_CHAN_METHOD_MAX + 1]; /* requests only; "" for replies */
    const uint8_t *body;
    size_t body_len;
} hms_chan_msg;

/* Decodes a message: 0, or -EPROTO (too short, unknown type, method too
 * long, empty or containing a NUL in a request; a method or a positive
 * status on a reply). */
int hms_chan_msg_decode(const uint8_t *m, size_t len, hms_chan_msg *out);

typedef struct hms_chan_stats {
    uint64_t conns_in, conns_out, conns_now, handshakes_now;
    uint64_t handshake_failures, refused_untrusted, refused_limit, timeouts;
    uint64_t calls_out, calls_in, call_errors, bytes_in, bytes_out, bad_frames;
} hms_chan_stats;

void hms_chan_get_stats(const hms_chan_pool *p, hms_chan_stats *out);

#endif
