/*
 * Membership core: SWIM with Lifeguard's refinements, as a pure state machine.
 *
 * The core owns no socket, no clock and no random source. The driver (the
 * agent's libev code, or the simulator) feeds it:
 *   swim_recv()            a plaintext UDP packet from an authenticated peer
 *   swim_tick()            time passed; returns the next deadline
 *   swim_pushpull_serve()  a push-pull/join request arrived on a TCP channel
 *   swim_pushpull_done()   the reply to a push-pull we asked for (or failure)
 * and drains swim_poll() after every call: packets to send, push-pulls to
 * open, events to publish. Time is monotonic microseconds given by the caller;
 * randomness comes from cfg->seed. Same inputs, same outputs.
 *
 * Data handed out by swim_poll() stays valid until the next call into the
 * core. Every function is safe to call with any input: malformed packets are
 * dropped and counted, never trusted.
 */
#ifndef HMS_SWIM_H
#define HMS_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

typedef uint64_t hms_time; /* monotonic microseconds */
#define HMS_MS(x) ((hms_time)(x) * 1000ULL)
#define HMS_SEC(x) ((hms_time)(x) * 1000000ULL)

#define SWIM_NAME_MAX 64  /* bytes, without the NUL */
#define SWIM_META_MAX 256 /* opaque member metadata (service set version, digest) */
#define SWIM_CERT_MAX 320 /* opaque node certificate */
#define SWIM_USER_MAX 512 /* one user broadcast (revocation, audit head) */
#define SWIM_KEY_LEN 32   /* Ed25519 public key */

typedef enum swim_status {
    SWIM_ALIVE = 0,
    SWIM_SUSPECT = 1,
    SWIM_DEAD = 2,
    SWIM_LEFT = 3,
} swim_status;

const char *swim_status_name(swim_status s); /* "alive", "suspect", "dead", "left" */

typedef struct swim_member_info {
    char name[SWIM_NAME_MAX + 1];
    uint8_t key[SWIM_KEY_LEN]; /* the node's Ed25519 public key */
    hms_addr addr;             /* UDP and TCP (same port) */
    uint64_t incarnation;
    swim_status status;
    hms_time status_since; /* local time of the last status change */
    uint16_t meta_len;
    uint8_t meta[SWIM_META_MAX];
    uint16_t cert_len;
    uint8_t cert[SWIM_CERT_MAX];
} swim_member_info;

/* Timings. Named profiles: "lan", "wan", "local" (see docs/membership.md). */
typedef struct swim_profile {
    uint32_t probe_interval_ms;     /* one probe per period */
    uint32_t probe_timeout_ms;      /* direct ack wait before indirect probes */
    uint32_t indirect_checks;       /* k relays for ping-req */
    uint32_t gossip_interval_ms;    /* extra gossip-only rounds */
    uint32_t gossip_nodes;          /* fan-out per gossip round */
    uint32_t suspicion_mult;        /* min suspicion = mult * log10(n) * probe interval,
                                       at least suspicion_floor_ms */
    uint32_t suspicion_max_mult;    /* max suspicion = this * min */
    uint32_t retransmit_mult;       /* each update sent mult * (ceil(log10(n+1)) + 1) times */
    uint32_t pushpull_interval_ms;  /* anti-entropy full sync with one member */
    uint32_t awareness_max;         /* Lifeguard local health multiplier ceiling */
    uint32_t reconnect_interval_ms; /* retry dead/left members and seeds */
    uint32_t reconnect_timeout_ms;  /* forget dead members after this */
    uint32_t mtu;                   /* max plaintext UDP payload */
    uint32_t suspicion_floor_ms;    /* lower bound of min suspicion (0: none) */
} swim_profile;

int swim_profile_by_name(const char *name, swim_profile *out); /* 0 or -EINVAL */

typedef struct swim_config {
    const char *name;
    uint8_t key[SWIM_KEY_LEN];
    hms_addr addr;        /* advertised address */
    uint64_t incarnation; /* start value: persisted value + 1 */
    uint64_t seed;        /* PRNG seed */
    swim_profile profile;
    const uint8_t *meta;
    size_t meta_len;
    const uint8_t *cert;
    size_t cert_len;
    /* Optional admission check run before a member is added or its record
     * replaced (name, key, cert). Return 0 to admit, a negative code to
     * refuse: the update is dropped and counted. Must be pure. */
    int (*admit)(void *ctx, const swim_member_info *m);
    void *admit_ctx;
} swim_config;

typedef struct swim swim_t;

/* Creates a core. Returns NULL on bad config or out of memory. */
swim_t *swim_new(const swim_config *cfg, hms_time now);
void swim_delete(swim_t *s);

/* A plaintext packet from `from`, whose sender authenticated as `key`. */
void swim_recv(swim_t *s, hms_time now, const hms_addr *from, const uint8_t key[SWIM_KEY_LEN],
               const uint8_t *pkt, size_t len);

/* Runs timers due at `now`; returns the next deadline (absolute). Cheap:
 * call it after every other call into the core, since a packet can start a
 * timer that falls before the deadline returned last time. */
hms_time swim_tick(swim_t *s, hms_time now);

/* Remembers seeds (retried forever at reconnect_interval while not in the
 * cluster) and asks for a push-pull with each now. */
void swim_join(swim_t *s, hms_time now, const hms_addr *seeds, size_t n);

/* Serves a push-pull or join request that arrived on a channel from a peer
 * authenticated as `key`. On success *reply (owned by the core, valid until
 * the next call) holds the state to send back. Returns 0 or a negative code. */
int swim_pushpull_serve(swim_t *s, hms_time now, const hms_addr *from,
                        const uint8_t key[SWIM_KEY_LEN], const uint8_t *req, size_t len,
                        const uint8_t **reply, size_t *reply_len);

/* The reply to SWIM_OUT_PUSHPULL `token`; reply == NULL when it failed. */
void swim_pushpull_done(swim_t *s, hms_time now, uint64_t token, const uint8_t key[SWIM_KEY_LEN],
                        const uint8_t *reply, size_t len);

/* Graceful leave: disseminated, and distinct from failure. The driver keeps
 * running the core for a short while (swim_leave_propagated) then exits. */
void swim_leave(swim_t *s, hms_time now);
bool swim_leave_propagated(swim_t *s, hms_time now);

/* Replaces this node's metadata (raises the incarnation, gossips alive);
 * the same metadata again changes nothing. */
int swim_set_meta(swim_t *s, hms_time now, const uint8_t *meta, size_t len);

/* Gossips an opaque message to every member, piggybacked like membership
 * updates. (origin, kind) identifies it: a newer one replaces an older one
 * still queued. Delivered on every other node as SWIM_EV_USER. */
int swim_broadcast(swim_t *s, hms_time now, uint8_t kind, const uint8_t *data, size_t len);

/* Expels a member now (for example a revoked node): marks it dead with its
 * current incarnation raised so the record wins, and refuses its key until
 * forgotten. */
void swim_expel(swim_t *s, hms_time now, const uint8_t key[SWIM_KEY_LEN]);

/* Output. */
typedef enum swim_out_kind {
    SWIM_OUT_UDP = 1, /* send data to (to, to_key) over UDP */
    SWIM_OUT_PUSHPULL =
        2, /* open a channel to `to`, send data, hand the reply to swim_pushpull_done(token) */
    SWIM_OUT_EVENT = 3, /* publish event about member */
} swim_out_kind;

typedef enum swim_event {
    SWIM_EV_JOIN = 1,   /* a new member, alive */
    SWIM_EV_UPDATE = 2, /* address, meta or cert changed */
    SWIM_EV_SUSPECT = 3,
    SWIM_EV_ALIVE = 4, /* back to alive (refuted, or rejoined) */
    SWIM_EV_DEAD = 5,
    SWIM_EV_LEFT = 6,
    SWIM_EV_REAPED = 7,      /* forgotten after reconnect_timeout */
    SWIM_EV_INCARNATION = 8, /* our own incarnation rose: persist member.incarnation */
    SWIM_EV_USER = 9,        /* a broadcast from member (user_kind, data, len) */
    SWIM_EV_CONFLICT = 10,   /* another key claimed member.name while it is alive: refused */
} swim_event;

typedef struct swim_output {
    swim_out_kind kind;
    hms_addr to;
    uint8_t to_key[SWIM_KEY_LEN];
    bool to_key_known; /* false for seeds not yet met */
    const uint8_t *data;
    size_t len;
    uint64_t token;
    swim_event event;
    const swim_member_info *member; /* snapshot for events */
    uint8_t user_kind;
} swim_output;

/* Next output, or false when there is none. */
bool swim_poll(swim_t *s, swim_output *out);

/* Queries. The table includes this node itself (swim_self). Indexes are
 * stable only until the next call that changes state; a returned pointer
 * stays valid until its member is reaped (or the core deleted) and shows the
 * member's state as of the query. */
size_t swim_member_count(const swim_t *s);
const swim_member_info *swim_member_at(const swim_t *s, size_t i);
const swim_member_info *swim_member_find(const swim_t *s, const char *name);
const swim_member_info *swim_member_by_key(const swim_t *s, const uint8_t key[SWIM_KEY_LEN]);
const swim_member_info *swim_self(const swim_t *s);
/* A member's status (a swim_status) and incarnation without building a
 * snapshot; -ENOENT when unknown. */
int swim_member_status(const swim_t *s, const char *name, uint64_t *incarnation);

typedef struct swim_stats {
    uint64_t packets_in, packets_out, bytes_in, bytes_out;
    uint64_t drop_malformed, drop_unknown_sender, drop_wrong_target, drop_refused;
    uint64_t probes, indirect_probes, acks, nacks;
    uint64_t suspicions, refutations, deaths, leaves;
    uint64_t pushpulls_out, pushpulls_in, name_conflicts;
    uint32_t health_score; /* Lifeguard local health multiplier, 0 = healthy */
    uint32_t members_alive, members_suspect, members_dead, members_left;
} swim_stats;

void swim_get_stats(const swim_t *s, swim_stats *out);

/* Protocol arithmetic, exposed for tests and tools. n is the number of
 * members believed alive or suspect, this node included. */
hms_time swim_suspicion_min(const swim_profile *p, size_t n);
hms_time swim_suspicion_max(const swim_profile *p, size_t n);
/* Lifeguard: the suspicion timeout once `confirmations` independent
 * accusers out of `expected` were heard (memberlist's suspicion.go). */
hms_time swim_suspicion_timeout(uint32_t confirmations, uint32_t expected, hms_time min,
                                hms_time max);
uint32_t swim_retransmit_limit(const swim_profile *p, size_t n);
/* Current deadline of the suspicion timer on `name`, 0 if not suspect. */
hms_time swim_suspicion_deadline(const swim_t *s, const char *name);

#endif
