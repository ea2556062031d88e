/*
 * Internals of the membership core shared by its files: the member table
 * and its types, the output and piggyback queues (swim_output.c), the
 * push-pull anti-entropy and reconnection (swim_sync.c), and the state
 * machine, probing and timers (swim.c). Nothing outside agent/swim/
 * includes this header.
 */
#ifndef HMS_SWIM_INTERNAL_H
#define HMS_SWIM_INTERNAL_H

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/swim/swim.h"
#include "proto/gossip.h"

_Static_assert(SWIM_NAME_MAX == GOSSIP_NAME_MAX, "name bound differs from the wire");
_Static_assert(SWIM_META_MAX == GOSSIP_META_MAX, "meta bound differs from the wire");
_Static_assert(SWIM_CERT_MAX == GOSSIP_CERT_MAX, "cert bound differs from the wire");
_Static_assert(SWIM_USER_MAX == GOSSIP_USER_MAX, "user bound differs from the wire");
_Static_assert(SWIM_KEY_LEN == GOSSIP_KEY_LEN, "key length differs from the wire");

#define SUSPICION_K 3     /* independent confirmations expected (capped at n - 2) */
#define INDIRECT_MAX 8    /* bound on profile.indirect_checks */
#define RELAY_SLOTS 64    /* ping-reqs we relay at once; more are dropped */
#define PP_PENDING_MAX 64 /* push-pulls in flight; the oldest is forgotten */
#define BC_BUCKETS 64     /* retransmit counts tracked; limits above are capped */
#define BC_MAX 8192       /* queued updates; the most-sent is dropped beyond */
#define USEQ_MAX 16       /* user broadcast kinds remembered per origin */
#define SEEDS_MAX 64
#define MSG_SCRATCH 64
#define FIX_MAX 4   /* corrections sent back for one packet */
#define CATCHUPS 4  /* push-pulls soon after joining, at doubling gaps */
#define WHO_RING 16 /* unknown senders recently asked who they are */
#define JOIN_QUIET_PERIODS 20 /* after our join: no accusing members that never reached us */
#define JOIN_DUP_STOP 3 /* copies of a join heard back before we stop passing it on */
#define NEW_MEMBER_PERIODS 30 /* a member learned this recently gets longer suspicion */

/* ---- PRNG: splitmix64 to seed xoshiro256** ------------------------------- */

static inline uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

typedef struct rng {
    uint64_t s[4];
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static inline uint64_t rng_below(rng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

/* ---- types --------------------------------------------------------------- */

struct member;

typedef enum bc_kind { BC_MEMBER = 1, BC_USER = 2 } bc_kind;

#define BC_TO_MAX 16 /* recipients remembered per update (each copy to a new one) */

typedef struct bcast {
    struct bcast *prev, *next;
    uint32_t transmits;
    uint8_t nto;               /* members known to hold it: sent to, or heard from */
    uint32_t to[BC_TO_MAX];    /* their key hashes */
    uint8_t kind;
    bool join;     /* BC_MEMBER: the ALIVE of a member new to us */
    bool urgent;   /* BC_MEMBER: a death, leave or refutation (see swim_tick) */
    uint8_t dups;  /* copies of it heard from others since */
    struct member *m; /* BC_MEMBER: the subject */
    uint64_t origin;  /* BC_USER: hash of the origin's name */
    uint8_t user_kind;
    uint16_t len;
    uint8_t data[];
} bcast;

typedef struct suspicion {
    hms_time start, min, max, deadline;
    hms_time verify_at;    /* next direct ping of the suspect */
    hms_time verify_check; /* when that ping counts as unanswered; 0: none out */
    uint32_t verify_seq;
    uint32_t k, n;
    uint64_t accusers[SUSPICION_K + 1]; /* name hashes: the first and confirmers */
} suspicion;

typedef struct useq {
    uint8_t kind;
    uint64_t seq;
} useq;

typedef struct member {
    char name[SWIM_NAME_MAX + 1];
    uint8_t key[SWIM_KEY_LEN];
    hms_addr addr;
    uint64_t inc;
    swim_status status;
    bool heard; /* a packet from this member reached us: it knows our key */
    bool urgent; /* the next update queued about it is urgent news */
    hms_time since;
    hms_time added; /* when we learned of it */
    uint16_t meta_len, cert_len;
    uint8_t *meta, *cert;
    uint32_t idx; /* in s->members */
    bool expelled;
    uint8_t nuseq;
    useq *useqs;
    bcast *bc;
    suspicion *susp;
    swim_member_info *view;
} member;

typedef struct relay {
    bool used, nacked, want_nack;
    uint32_t our_seq, their_seq;
    uint8_t target_key[SWIM_KEY_LEN];
    uint8_t req_key[SWIM_KEY_LEN];
    hms_addr req_addr;
    hms_time nack_at, expire_at;
} relay;

typedef enum pp_kind { PP_PERIODIC = 1, PP_SEED = 2, PP_RECONNECT = 3 } pp_kind;

typedef struct pp_pending {
    uint64_t token;
    uint8_t kind;
    int seed; /* index in s->seeds for PP_SEED */
} pp_pending;

typedef struct seed {
    hms_addr addr;
    bool key_known;
    uint8_t key[SWIM_KEY_LEN];
    hms_time next_at;
    hms_time backoff;
    bool pending;
} seed;

typedef struct outq_item {
    swim_output o;
    uint8_t *buf;
    bool pooled; /* buf is an MTU-sized packet buffer from the pool */
    swim_member_info *info;
} outq_item;

#define POOL_MAX 16 /* spare packet buffers and event snapshots kept */

typedef struct htab {
    member **slot;
    size_t cap; /* power of two, or 0 */
} htab;

struct swim {
    swim_profile p;
    rng r;
    member *self;
    member **members;
    size_t nmembers, members_cap;
    htab by_name, by_key;
    size_t counts[4]; /* members per status, self included */

    int (*admit)(void *ctx, const swim_member_info *m);
    void *admit_ctx;

    /* probing */
    member **plist;
    size_t plen, pcap, pidx;
    hms_time next_probe;
    struct {
        bool active, acked, indirect_sent;
        member *target;
        uint32_t seq;
        hms_time timeout_at, end_at, give_up_at;
        uint32_t nrelays, nacks;
        uint8_t relay_keys[INDIRECT_MAX][SWIM_KEY_LEN];
    } probe;
    uint32_t seq;
    uint32_t awareness;
    relay relays[RELAY_SLOTS];

    /* dissemination */
    bcast *bhead[BC_BUCKETS], *btail[BC_BUCKETS];
    size_t bcount;
    hms_time next_gossip;
    hms_time last_round; /* when the last gossip round ran */
    bool urgent;         /* news that must not wait for the next round (see swim_tick) */
    uint64_t user_seq;

    /* anti-entropy, seeds and reconnects */
    hms_time next_pushpull, next_reconnect;
    uint64_t next_token;
    pp_pending pp[PP_PENDING_MAX];
    size_t npp;
    seed seeds[SEEDS_MAX];
    size_t nseeds;
    uint8_t *pp_reply; /* the last served reply, freed at the next call */

    bool joined;         /* a seed answered once */
    hms_time joined_at;  /* when that was */
    uint32_t catchups; /* early push-pulls left after the join */
    hms_time catchup_gap;

    /* leave */
    bool leaving;
    hms_time leave_at;
    bool leave_done;

    /* output, and spare buffers so a busy core does not churn the heap */
    uint8_t *pkt_pool[POOL_MAX];
    size_t npkt_pool;
    swim_member_info *info_pool[POOL_MAX];
    size_t ninfo_pool;
    outq_item *outq;
    size_t outq_len, outq_cap, outq_head;

    struct {
        uint8_t key[SWIM_KEY_LEN];
        hms_time at;
    } who[WHO_RING];
    size_t who_next;
    const uint8_t *rx_key; /* sender of the packet being handled, or NULL */
    member *fix[FIX_MAX]; /* stale accusations heard in the current packet */
    size_t nfix;
    member **suspects; /* members with a suspicion timer */
    size_t nsuspects, suspects_cap;

    gossip_msg *msgs; /* decode scratch */
    uint8_t *pkt;     /* profile.mtu bytes */
    swim_stats st;
};

/* ---- small helpers ------------------------------------------------------- */

static inline uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static inline uint64_t hash_name(const char *name)
{
    return hash_bytes(name, strlen(name));
}

static inline bool key_eq(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, SWIM_KEY_LEN) == 0; /* public keys: not secret */
}

static inline hms_time scaled(const swim_t *s, uint32_t ms)
{
    return HMS_MS(ms) * (hms_time)(s->awareness + 1);
}

static inline size_t cluster_n(const swim_t *s)
{
    return s->counts[SWIM_ALIVE] + s->counts[SWIM_SUSPECT];
}

/* ---- shared functions ---------------------------------------------------- */

member *sw_htab_get(const htab *t, bool by_key, const void *k);
void sw_set_state(swim_t *s, member *m, uint64_t inc, swim_status st, hms_time now,
                  const char *from);
void sw_on_alive(swim_t *s, const gossip_msg *g, hms_time now, bool rebroadcast_new);
void sw_on_suspect(swim_t *s, const char *name, const uint8_t *key, uint64_t inc, const char *from,
                   hms_time now);
void sw_on_gone_unknown(swim_t *s, const gossip_msg *g, swim_status st, hms_time age,
                        hms_time now);
void sw_on_dead(swim_t *s, const char *name, const uint8_t *key, uint64_t inc, const char *from,
                hms_time now, bool leave);
void sw_member_remove(swim_t *s, member *m, hms_time now);
member *sw_random_member(swim_t *s, swim_status a, swim_status b);
void sw_send_pkt(swim_t *s, const hms_addr *to, const uint8_t *key, const gossip_msg *prim,
                 size_t nprim);
void sw_msg_status(const member *m, uint8_t type, const char *from, gossip_msg *g);
void sw_msg_alive(const member *m, gossip_msg *g);
void sw_fill_info(const member *m, swim_member_info *v);
void sw_emit(swim_t *s, swim_event ev, const member *m);
void sw_emit_info(swim_t *s, swim_event ev, swim_member_info *info, const uint8_t *data, size_t len,
                  uint8_t user_kind);
swim_member_info *sw_info_new(swim_t *s);
void sw_emit_udp(swim_t *s, const hms_addr *to, const uint8_t *key, const uint8_t *pkt, size_t len);
void sw_out_gc(swim_t *s);
outq_item *sw_out_push(swim_t *s);
void sw_bc_state(swim_t *s, member *m, const char *from);
void sw_bc_alive_light(swim_t *s, member *m);
void sw_bc_member(swim_t *s, member *m, const gossip_msg *msg);
void sw_bc_user(swim_t *s, const gossip_msg *msg);
void sw_bc_free(swim_t *s, bcast *b);
bool sw_bc_wanted(const swim_t *s, const bcast *b, const uint8_t *to_key);
size_t sw_bc_fill(swim_t *s, uint8_t *pkt, size_t *len, size_t nmsgs, const uint8_t *to_key);
void sw_pp_start(swim_t *s, hms_time now, const hms_addr *to, const uint8_t *key, bool join,
                 uint8_t kind, int seed_idx);
void sw_reconnect_tick(swim_t *s, hms_time now);
void sw_seeds_tick(swim_t *s, hms_time now);

#endif
