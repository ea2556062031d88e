/*
 * Audit replication between agents.
 *
 * Heads. Every agent gossips (HMS_USER_AUDIT_HEAD) its own latest durable
 * seal and a summary of the other logs it holds (origin key prefix, last
 * segment, head prefix): when a segment is sealed here, and every 2 s
 * while anything changes (a segment sealed here, a segment of another log
 * stored here, a member joined or came back, so that it learns every head);
 * when nothing does, only every 90-150 s (drawn anew each time, so that
 * agents started together do not announce together), as a safety net for a
 * lost broadcast. Each broadcast is piggybacked about 4 log10(n) times by
 * every agent: unconditional ones every 2 s were most of an idle agent's
 * UDP traffic, and at every 30 s they still added a third to it at 128
 * members. So every agent knows
 * how far every log goes and who holds what.
 *
 * Replicas. The R holders of origin O's log are the top R alive members
 * (O excluded) by rendezvous score of (O.key, M.key), recomputed from the
 * current member list whenever it changes, so membership changes move
 * replicas without coordination. A replica behind the best known head pulls
 * sealed segments ("audit.pull": from a segment number, up to 4 MiB of
 * whole segments) from the origin when alive, else from a holder that has
 * more, else from any member; failures rotate the source and back off.
 *
 * Intake. A pulled (or operator-imported) segment is stored only if it
 * verifies completely against the origin's key: frames, chain, seal
 * signature, and continuity with the neighbouring segments held. A segment
 * that fails is refused, counted and logged. A validly signed segment that
 * conflicts with one held (same number, different head; or a chain that
 * does not join) is a fork: both are kept (<segno>.fork-<head>), the
 * conflict is logged as an alert, counted and reported by verify. A seal
 * gossiped by the origin that conflicts with a held one is a fork too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/agent.h"
#include "agent/audit/repl.h"
#include "agent/log.h"

#define PULL_METHOD "audit.pull"
#define PULL_MAX_BYTES (4u << 20)
#define PULL_MAX_SEGS 256
#define PULL_TIMEOUT_MS 3000
#define BCAST_INTERVAL_MS 2000 /* while something changes */
#define BCAST_SAFETY_MS 90000  /* when nothing does: 90 s ... */
#define BCAST_SAFETY_JITTER_MS 60000 /* ... to 150 s */
#define RETENTION_MS 2000
#define TICK_S 0.2
#define RINFO_MAX 4096

typedef struct rholder {
    uint8_t by[32];
    uint64_t last_segno;
    uint8_t head8[8];
    uint64_t at_ms;
} rholder;

typedef struct rfetch {
    struct rfetch *next;
    audit_fetch_fn done;
    void *ctx;
    uint64_t deadline_ms;
} rfetch;

typedef struct rinfo {
    uint8_t key[32];
    char name[SWIM_NAME_MAX + 1];
    bool has_head;
    hms_audit_seal head;
    /* Grown on demand up to AUDIT_HOLDERS_MAX: an agent keeps one rinfo per
     * member, and most origins have only their R holders reporting. */
    rholder *holders;
    size_t nholders, capholders;
    bool pulling;
    uint64_t backoff_until;
    unsigned fails;
    size_t src_idx;
    int puts_pending;
    bool has_queued;
    uint64_t queued_upto;
    rfetch *fetches;
    bool source_empty; /* the last source had nothing more */
    bool rep;          /* cached is_replica */
    uint64_t rep_gen, rep_at_ms;
} rinfo;

/* Outlives the repl state: an RPC may complete after stop. */
typedef struct pullctx {
    struct pullctx *next;
    struct audit_repl *r;
    uint8_t key[32];
} pullctx;

struct audit_repl {
    hms_agent *ag;
    hms_audit *a;
    rinfo **infos;
    size_t n, cap;
    uint64_t last_bcast_ms;
    uint32_t safety_ms; /* the wait for the next safety-net broadcast */
    bool dirty; /* something changed since the last broadcast of our heads */
    bool seal_pending; /* our own log sealed a segment not yet announced */
    uint64_t last_retention_ms;
    ev_timer timer;
    pullctx *pulls;
    uint64_t member_gen; /* raised by every membership event */
    uint64_t swept_gen;
};

/* Listeners and the RPC handler cannot be removed from the agent, so they
 * reach the state through this anchor, cleared at stop. */
static struct audit_repl *g_repl;

struct putctx {
    hms_audit *a;
    uint8_t key[32];
    hms_audit_seginfo info;
    bool fork;
};

/* ---- bookkeeping ------------------------------------------------------------ */

static rinfo *rinfo_find(struct audit_repl *r, const uint8_t key[32])
{
    for (size_t i = 0; i < r->n; i++)
        if (memcmp(r->infos[i]->key, key, 32) == 0)
            return r->infos[i];
    return NULL;
}

static rinfo *rinfo_get(struct audit_repl *r, const uint8_t key[32], const char *name)
{
    rinfo *ri = rinfo_find(r, key);
    if (!ri) {
        if (r->n == RINFO_MAX)
            return NULL;
        if (r->n == r->cap) {
            size_t ncap = r->cap ? r->cap * 2 : 16;
            rinfo **n = realloc(r->infos, ncap * sizeof(*n));
            if (!n)
                return NULL;
            r->infos = n;
            r->cap = ncap;
        }
        ri = calloc(1, sizeof(*ri));
        if (!ri)
            return NULL;
        memcpy(ri->key, key, 32);
        r->infos[r->n++] = ri;
    }
    if (name && name[0] && strcmp(ri->name, name) != 0) {
        snprintf(ri->name, sizeof(ri->name), "%s", name);
        alog *l = astore_find(&r->a->store, key);
        if (l)
            astore_set_name(l, name);
    }
    return ri;
}

static const char *name_of(struct audit_repl *r, const uint8_t key[32], char *buf, size_t cap)
{
    rinfo *ri = r ? rinfo_find(r, key) : NULL;
    if (ri && ri->name[0])
        return ri->name;
    hms_audit_hex(key, 8, buf);
    (void)cap;
    return buf;
}

static bool alive_member(struct audit_repl *r, const uint8_t key[32])
{
    if (memcmp(key, r->a->pk, 32) == 0)
        return true;
    const swim_member_info *m = r->ag->swim ? swim_member_by_key(r->ag->swim, key) : NULL;
    return m && (m->status == SWIM_ALIVE || m->status == SWIM_SUSPECT);
}

/* ---- replica choice ---------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Rendezvous score. Keys are uniformly random Ed25519 points fixed by their
 * certificates, so a fast mix of both keys is enough; every agent computes
 * the same value. */
static uint64_t score(const uint8_t origin[32], const uint8_t member[32])
{
    uint64_t o = 0, m = 0;
    for (int i = 0; i < 32; i += 8) {
        uint64_t a, b;
        memcpy(&a, origin + i, 8);
        memcpy(&b, member + i, 8);
        o = mix64(o ^ a);
        m = mix64(m ^ b);
    }
    return mix64(o ^ mix64(m + 0x9e3779b97f4a7c15ULL));
}

/* Is this agent among the R holders of origin's log? */
static bool is_replica_now(struct audit_repl *r, const uint8_t origin[32])
{
    if (memcmp(origin, r->a->pk, 32) == 0)
        return false;
    uint64_t mine = score(origin, r->a->pk);
    uint32_t better = 0;
    swim_t *s = r->ag->swim;
    size_t n = s ? swim_member_count(s) : 0;
    for (size_t i = 0; i < n; i++) {
        const swim_member_info *m = swim_member_at(s, i);
        if (!m || m->status != SWIM_ALIVE || memcmp(m->key, origin, 32) == 0 ||
            memcmp(m->key, r->a->pk, 32) == 0)
            continue;
        uint64_t sc = score(origin, m->key);
        if (sc > mine || (sc == mine && memcmp(m->key, r->a->pk, 32) > 0))
            better++;
    }
    return better < r->a->replicas;
}

/* Cached per origin until the member list changes (or 5 s pass). */
static bool is_replica(struct audit_repl *r, rinfo *ri)
{
    uint64_t now = audit_mono_ms();
    if (ri->rep_gen != r->member_gen || now - ri->rep_at_ms > 5000 || ri->rep_at_ms == 0) {
        ri->rep = is_replica_now(r, ri->key);
        ri->rep_gen = r->member_gen;
        ri->rep_at_ms = now;
    }
    return ri->rep;
}

/* ---- gossip ------------------------------------------------------------------- */

static const aseg *last_sealed(const alog *l)
{
    for (size_t k = l->nsegs; k > 0; k--)
        if (l->segs[k - 1].sealed && l->segs[k - 1].durable)
            return &l->segs[k - 1];
    return NULL;
}

static void broadcast_head(struct audit_repl *r)
{
    hms_audit *a = r->a;
    hms_audit_headmsg m;
    memset(&m, 0, sizeof(m));
    const aseg *g = last_sealed(a->own);
    if (g) {
        m.has_seal = true;
        m.seal = g->seal;
    }
    /* Rotate through the logs held so every holding is reported in turn. */
    static size_t rot;
    size_t n = a->store.nlogs;
    for (size_t k = 0; k < n && m.nholdings < HMS_AUDIT_HOLDINGS_MAX; k++) {
        alog *l = a->store.logs[(rot + k) % n];
        const aseg *s = l->own ? NULL : last_sealed(l);
        if (!s)
            continue;
        hms_audit_holding *h = &m.holdings[m.nholdings++];
        memcpy(h->key8, l->key, 8);
        h->last_segno = s->segno;
        memcpy(h->head8, s->head, 8);
    }
    rot++;
    r->dirty = false;
    r->seal_pending = false;
    uint8_t buf[SWIM_USER_MAX];
    size_t len;
    if (hms_audit_headmsg_encode(&m, buf, sizeof(buf), &len) == 0)
        hms_agent_broadcast(r->ag, HMS_USER_AUDIT_HEAD, buf, len);
    r->last_bcast_ms = audit_mono_ms();
    r->safety_ms = BCAST_SAFETY_MS + randombytes_uniform(BCAST_SAFETY_JITTER_MS + 1);
}

static void on_sealed(hms_audit *a, const hms_audit_seal *newest, void *ctx)
{
    struct audit_repl *r = ctx;
    (void)newest;
    (void)a;
    /* Replicas pull on the announcement, so a new seal goes out at once, or
     * at the next tick when the last broadcast is under 200 ms old: replication
     * lag stays within a tick or two without a broadcast per seal in bursts. */
    if (audit_mono_ms() - r->last_bcast_ms >= 200)
        broadcast_head(r);
    else
        r->seal_pending = true;
}

static void record_fork(hms_audit *a, alog *l, const hms_audit_seal *x, const hms_audit_seal *y,
                        const char *how)
{
    if (alog_add_fork(l, x, y)) {
        char hx[17], hy[17];
        hms_audit_hex(x->head, 8, hx);
        hms_audit_hex(y->head, 8, hy);
        HMS_ERROR("audit: alert: fork in the log of %s: two signed versions of segment %llu "
                  "(heads %s and %s, %s)",
                  l->name[0] ? l->name : l->keyhex, (unsigned long long)x->segno, hx, hy, how);
        json_t *f = json_pack("{s:s, s:s, s:I, s:s, s:s}", "node", l->name[0] ? l->name : "",
                              "key", l->keyhex, "segment", (json_int_t)x->segno, "head_a", hx,
                              "head_b", hy);
        if (!l->own)
            hms_audit_emit(a, "audit.fork", NULL, NULL, f);
        else
            json_decref(f);
    }
}

static void on_head(hms_agent *ag, const swim_member_info *from, const uint8_t *data, size_t len,
                    void *ctx)
{
    struct audit_repl *r = g_repl;
    if (!r)
        return;
    hms_audit *a = r->a;
    hms_audit_headmsg m;
    if (hms_audit_headmsg_decode(data, len, &m) != 0)
        return;
    rinfo *origin = rinfo_get(r, from->key, from->name);
    if (!origin)
        return;
    if (m.has_seal) {
        /* Only the origin itself speaks for its log, and only signed. */
        if (memcmp(m.seal.node_key, from->key, 32) != 0 || hms_audit_seal_verify(&m.seal) != 0)
            return;
        alog *l = astore_find(&a->store, from->key);
        aseg *g = l ? alog_seg(l, m.seal.segno) : NULL;
        if (g && g->sealed && !hms_audit_seal_same(&g->seal, &m.seal))
            record_fork(a, l, &g->seal, &m.seal, "gossiped head");
        if (!origin->has_head || m.seal.segno > origin->head.segno) {
            origin->has_head = true;
            origin->head = m.seal;
        }
    }
    for (size_t i = 0; i < m.nholdings; i++) {
        const hms_audit_holding *h = &m.holdings[i];
        rinfo *ri = NULL;
        for (size_t k = 0; k < r->n && !ri; k++)
            if (memcmp(r->infos[k]->key, h->key8, 8) == 0)
                ri = r->infos[k];
        if (!ri) {
            for (size_t k = 0; k < a->store.nlogs; k++)
                if (memcmp(a->store.logs[k]->key, h->key8, 8) == 0)
                    ri = rinfo_get(r, a->store.logs[k]->key, a->store.logs[k]->name);
        }
        if (!ri)
            continue;
        rholder *slot = NULL;
        for (size_t k = 0; k < ri->nholders; k++)
            if (memcmp(ri->holders[k].by, from->key, 32) == 0)
                slot = &ri->holders[k];
        if (!slot && ri->nholders == ri->capholders && ri->capholders < AUDIT_HOLDERS_MAX) {
            size_t ncap = ri->capholders ? 2 * ri->capholders : 4;
            if (ncap > AUDIT_HOLDERS_MAX)
                ncap = AUDIT_HOLDERS_MAX;
            rholder *n = realloc(ri->holders, ncap * sizeof(*n));
            if (n) {
                ri->holders = n;
                ri->capholders = ncap;
            }
        }
        if (!slot) {
            if (ri->nholders < ri->capholders) {
                slot = &ri->holders[ri->nholders++];
            } else if (ri->nholders == 0) {
                continue; /* out of memory: this report is dropped */
            } else {
                slot = &ri->holders[0]; /* replace the stalest */
                for (size_t k = 1; k < ri->nholders; k++)
                    if (ri->holders[k].at_ms < slot->at_ms)
                        slot = &ri->holders[k];
            }
            memcpy(slot->by, from->key, 32);
        }
        slot->last_segno = h->last_segno;
        memcpy(slot->head8, h->head8, 8);
        slot->at_ms = audit_mono_ms();
    }
    (void)ag;
}

/* ---- membership events into the log ------------------------------------------ */

static const char *event_kind(swim_event ev)
{
    switch (ev) {
    case SWIM_EV_JOIN: return "member.join";
    case SWIM_EV_UPDATE: return "member.update";
    case SWIM_EV_SUSPECT: return "member.suspect";
    case SWIM_EV_ALIVE: return "member.alive";
    case SWIM_EV_DEAD: return "member.dead";
    case SWIM_EV_LEFT: return "member.left";
    case SWIM_EV_REAPED: return "member.reaped";
    case SWIM_EV_CONFLICT: return "member.conflict";
    default: return NULL;
    }
}

static void on_member(hms_agent *ag, swim_event ev, const swim_member_info *m, void *ctx)
{
    struct audit_repl *r = g_repl;
    if (!r)
        return;
    const char *kind = event_kind(ev);
    if (!kind)
        return;
    r->member_gen++;
    if (ev != SWIM_EV_CONFLICT)
        rinfo_get(r, m->key, m->name);
    /* A newcomer (or a member back from a restart or a partition) knows no
     * heads yet, and replica sets move: tell it ours, once per burst. */
    if (ev == SWIM_EV_JOIN || ev == SWIM_EV_ALIVE)
        r->dirty = true;
    char addr[HMS_ADDR_STRLEN], key[65];
    hms_addr_format(&m->addr, addr, sizeof(addr));
    hms_audit_hex(m->key, 32, key);
    hms_audit_emit(r->a, kind, NULL, NULL,
                   json_pack("{s:s, s:s, s:s, s:I, s:s}", "node", m->name, "key", key, "address",
                             addr, "incarnation", (json_int_t)m->incarnation, "status",
                             swim_status_name(m->status)));
    (void)ag;
}

/* ---- intake ---------------------------------------------------------------- */

static void put_done(void *ctx, ajob *j)
{
    struct putctx *pc = ctx;
    hms_audit *a = pc->a;
    struct audit_repl *r = a->repl;
    rinfo *ri = r ? rinfo_find(r, pc->key) : NULL;
    if (ri)
        ri->puts_pending--;
    alog *l = astore_find(&a->store, pc->key);
    if (j->status != 0) {
        HMS_ERROR("audit: cannot store '%s': %s", j->path, strerror(-j->status));
        if (ri && !pc->fork && l) {
            aseg *last = alog_last(l);
            ri->has_queued = last != NULL;
            ri->queued_upto = last ? last->segno : 0;
        }
    } else if (l && !pc->fork && !alog_seg(l, pc->info.hdr.segno)) {
        aseg g;
        aseg_from_info(&g, &pc->info);
        if (!alog_add_seg(l, &g))
            HMS_ERROR("audit: out of memory indexing '%s'", j->path);
    }
    if (j->status == 0 && r && l && !l->own && !pc->fork)
        r->dirty = true; /* our holding grew: retention at the origin waits for it */
    free(pc);
}

struct notify_ctx {
    hms_audit *a;
    alog *l;
};

static int notify_cb(void *ctx, const hms_audit_entry *e, const uint8_t h[32], const uint8_t *enc,
                     size_t len)
{
    struct notify_ctx *n = ctx;
    audit_notify_entry(n->a, n->l, e, h);
    return 0;
}

static void put_done_notify(void *ctx, ajob *j)
{
    struct putctx *pc = ctx;
    hms_audit *a = pc->a;
    bool fork = pc->fork;
    int status = j->status;
    uint8_t key[32];
    memcpy(key, pc->key, 32);
    put_done(ctx, j);
    alog *l = astore_find(&a->store, key);
    if (status == 0 && !fork && l) {
        struct notify_ctx n = {a, l};
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        hms_audit_segment_verify(j->buf, j->len, key, false, &info, &off, &why, notify_cb, &n);
    }
}

static int submit_put(hms_audit *a, alog *l, const uint8_t *buf, size_t len,
                      const hms_audit_seginfo *info, bool fork)
{
    ajob *j = calloc(1, sizeof(*j));
    struct putctx *pc = calloc(1, sizeof(*pc));
    uint8_t *copy = malloc(len);
    if (!j || !pc || !copy) {
        free(j);
        free(pc);
        free(copy);
        return -ENOMEM;
    }
    memcpy(copy, buf, len);
    j->kind = AJOB_PUT;
    if (fork) {
        char h[17];
        hms_audit_hex(info->head, 8, h);
        snprintf(j->path, sizeof(j->path), "%s/%020llu.fork-%s", l->dir,
                 (unsigned long long)info->hdr.segno, h);
    } else {
        aseg_path(l, info->hdr.segno, j->path, sizeof(j->path));
    }
    snprintf(j->dir, sizeof(j->dir), "%s", l->dir);
    j->buf = copy;
    j->len = len;
    pc->a = a;
    memcpy(pc->key, l->key, 32);
    pc->info = *info;
    pc->fork = fork;
    j->done = put_done_notify;
    j->ctx = pc;
    audit_submit_job(a, j);
    return 0;
}

/* One whole segment from a peer or an operator. */
static int intake(hms_audit *a, const uint8_t key[32], const uint8_t *buf, size_t len,
                  const char *from, char *verdict, size_t cap)
{
    struct audit_repl *r = a->repl;
    hms_audit_seginfo info;
    size_t off;
    const char *why;
    char kh[17];
    hms_audit_hex(key, 8, kh);
    if (memcmp(key, a->pk, 32) == 0) {
        snprintf(verdict, cap, "refused: this node's own log is written only here");
        return -EPERM;
    }
    int rc = hms_audit_segment_verify(buf, len, key, false, &info, &off, &why, NULL, NULL);
    alog *l = astore_find(&a->store, key);
    rinfo *ri = r ? rinfo_get(r, key, NULL) : NULL;
    const char *who = ri && ri->name[0] ? ri->name : kh;
    if (rc != 0) {
        if (l)
            l->refused++;
        else if (ri)
            a->stats.replica_refused++;
        HMS_WARN("audit: refused a segment for the log of %s from %s: %s at offset %zu", who,
                 from, why, off);
        json_t *f = json_pack("{s:s, s:s, s:s, s:I}", "node", who, "from", from, "reason", why,
                              "offset", (json_int_t)off);
        hms_audit_emit(a, "audit.refused", NULL, NULL, f);
        snprintf(verdict, cap, "refused: %s at offset %zu", why, off);
        return -EBADMSG;
    }
    if (!l) {
        l = astore_get(&a->store, key, false);
        if (!l) {
            snprintf(verdict, cap, "refused: cannot create the log directory");
            return -EIO;
        }
        if (ri && ri->name[0])
            astore_set_name(l, ri->name);
    }
    aseg *have = alog_seg(l, info.hdr.segno);
    if (have) {
        if (have->sealed && hms_audit_seal_same(&have->seal, &info.seal)) {
            snprintf(verdict, cap, "duplicate of segment %llu", (unsigned long long)info.hdr.segno);
            return 0;
        }
        record_fork(a, l, &have->seal, &info.seal, from);
        submit_put(a, l, buf, len, &info, true);
        snprintf(verdict, cap, "fork: segment %llu differs from the one held",
                 (unsigned long long)info.hdr.segno);
        return 0;
    }
    aseg *prev = info.hdr.segno ? alog_seg(l, info.hdr.segno - 1) : NULL;
    aseg *next = alog_seg(l, info.hdr.segno + 1);
    if ((prev && prev->sealed &&
         (prev->last_seq + 1 != info.hdr.first_seq || memcmp(prev->head, info.hdr.prev_head, 32))) ||
        (next && (info.last_seq + 1 != next->first_seq || memcmp(info.head, next->prev_head, 32)))) {
        const aseg *other = prev && memcmp(prev->head, info.hdr.prev_head, 32) ? prev : next;
        record_fork(a, l, &other->seal, &info.seal, "chains do not join");
        submit_put(a, l, buf, len, &info, true);
        snprintf(verdict, cap, "fork: segment %llu does not join segment %llu",
                 (unsigned long long)info.hdr.segno, (unsigned long long)other->segno);
        return 0;
    }
    if (ri && ri->has_queued && info.hdr.segno <= ri->queued_upto && ri->puts_pending > 0) {
        snprintf(verdict, cap, "already being stored");
        return 0;
    }
    int r2 = submit_put(a, l, buf, len, &info, false);
    if (r2) {
        snprintf(verdict, cap, "refused: %s", strerror(-r2));
        return r2;
    }
    if (ri) {
        ri->puts_pending++;
        if (!ri->has_queued || info.hdr.segno > ri->queued_upto)
            ri->queued_upto = info.hdr.segno;
        ri->has_queued = true;
    }
    snprintf(verdict, cap, "stored segment %llu", (unsigned long long)info.hdr.segno);
    return 0;
}

int audit_repl_import(hms_audit *a, const uint8_t *buf, size_t len, const uint8_t *expect_key,
                      char *verdict, size_t cap)
{
    hms_audit_seghdr h;
    uint8_t type;
    const uint8_t *pay;
    size_t plen, next;
    if (hms_audit_unframe(buf, len, 0, &type, &pay, &plen, &next) != 0 ||
        type != HMS_AUDIT_REC_HEADER || hms_audit_seghdr_decode(pay, plen, &h) != 0) {
        snprintf(verdict, cap, "refused: not an audit segment");
        return -EBADMSG;
    }
    const uint8_t *key = expect_key ? expect_key : h.node_key;
    return intake(a, key, buf, len, "import", verdict, cap);
}

/* ---- pulling ---------------------------------------------------------------- */

static void pull_done(void *ctx, int status, const hms_peer *peer, const uint8_t *reply,
                      size_t len)
{
    pullctx *pc = ctx;
    struct audit_repl *r = pc->r;
    if (r) {
        for (pullctx **pp = &r->pulls; *pp; pp = &(*pp)->next)
            if (*pp == pc) {
                *pp = pc->next;
                break;
            }
    }
    if (!r) {
        free(pc);
        return;
    }
    rinfo *ri = rinfo_find(r, pc->key);
    free(pc);
    if (!ri)
        return;
    ri->pulling = false;
    uint64_t now = audit_mono_ms();
    if (status != 0) {
        ri->fails++;
        ri->src_idx++;
        ri->backoff_until = now + (ri->fails < 10 ? 100u * ri->fails : 1000u);
        return;
    }
    if (len == 0) {
        ri->source_empty = true;
        ri->src_idx++;
        ri->backoff_until = now + 500;
        return;
    }
    ri->fails = 0;
    ri->source_empty = false;
    char from[80];
    snprintf(from, sizeof(from), "%s", peer && peer->name[0] ? peer->name : "a peer");
    size_t off = 0, stored = 0;
    while (off < len) {
        size_t sl;
        char verdict[160];
        if (hms_audit_next_segment(reply + off, len - off, &sl) != 0) {
            HMS_WARN("audit: malformed pull reply from %s for %s at offset %zu", from,
                     ri->name[0] ? ri->name : "a log", off);
            ri->backoff_until = now + 1000;
            ri->src_idx++;
            break;
        }
        if (intake(r->a, ri->key, reply + off, sl, from, verdict, sizeof(verdict)) != 0) {
            ri->backoff_until = now + 1000;
            ri->src_idx++;
            break;
        }
        stored++;
        off += sl;
    }
    (void)stored;
}

static uint64_t held_upto(struct audit_repl *r, rinfo *ri, bool *any)
{
    alog *l = astore_find(&r->a->store, ri->key);
    const aseg *s = l ? last_sealed(l) : NULL;
    uint64_t v = s ? s->segno : 0;
    *any = s != NULL;
    if (ri->has_queued && (!*any || ri->queued_upto > v)) {
        v = ri->queued_upto;
        *any = true;
    }
    return v;
}

/* The furthest segment anyone says exists, and whether it is known at all. */
static bool target_of(rinfo *ri, uint64_t *target)
{
    bool known = false;
    uint64_t t = 0;
    if (ri->has_head) {
        t = ri->head.segno;
        known = true;
    }
    for (size_t k = 0; k < ri->nholders; k++)
        if (!known || ri->holders[k].last_segno > t) {
            t = ri->holders[k].last_segno;
            known = true;
        }
    *target = t;
    return known;
}

static bool behind(struct audit_repl *r, rinfo *ri)
{
    bool any;
    uint64_t have = held_upto(r, ri, &any), target;
    if (!target_of(ri, &target))
        return !ri->source_empty && !any; /* nothing known: ask once */
    return !any || have < target;
}

static void start_pull(struct audit_repl *r, rinfo *ri)
{
    /* Candidate sources: the origin, holders that have more, any member. */
    const uint8_t *cands[64];
    size_t nc = 0;
    bool any;
    uint64_t have = held_upto(r, ri, &any);
    if (alive_member(r, ri->key) && memcmp(ri->key, r->a->pk, 32) != 0)
        cands[nc++] = ri->key;
    for (size_t k = 0; k < ri->nholders && nc < 64; k++)
        if ((!any || ri->holders[k].last_segno > have) && alive_member(r, ri->holders[k].by) &&
            memcmp(ri->holders[k].by, r->a->pk, 32) != 0)
            cands[nc++] = ri->holders[k].by;
    swim_t *s = r->ag->swim;
    size_t nm = s ? swim_member_count(s) : 0;
    for (size_t i = 0; i < nm && nc < 64; i++) {
        const swim_member_info *m = swim_member_at(s, i);
        if (!m || m->status != SWIM_ALIVE || memcmp(m->key, r->a->pk, 32) == 0 ||
            memcmp(m->key, ri->key, 32) == 0)
            continue;
        bool dup = false;
        for (size_t k = 0; k < nc; k++)
            dup |= memcmp(cands[k], m->key, 32) == 0;
        if (!dup)
            cands[nc++] = m->key;
    }
    if (nc == 0)
        return;
    const uint8_t *src = cands[ri->src_idx % nc];
    pullctx *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return;
    pc->r = r;
    memcpy(pc->key, ri->key, 32);
    uint8_t req[HMS_AUDIT_PULLREQ_LEN];
    hms_audit_pullreq_encode(ri->key, any ? have + 1 : 0, PULL_MAX_BYTES, req);
    int rc = hms_agent_rpc_call(r->ag, src, NULL, PULL_METHOD, req, sizeof(req), PULL_TIMEOUT_MS,
                                pull_done, pc, NULL);
    if (rc != 0) {
        free(pc);
        ri->src_idx++;
        ri->backoff_until = audit_mono_ms() + 500;
        return;
    }
    pc->next = r->pulls;
    r->pulls = pc;
    ri->pulling = true;
}

static void serve_pull(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                       size_t len)
{
    struct audit_repl *r = g_repl;
    uint8_t key[32];
    if (!r) {
        hms_rpc_reply(call, -ESHUTDOWN, NULL, 0);
        return;
    }
    uint64_t from;
    uint32_t max;
    if (hms_audit_pullreq_decode(req, len, key, &from, &max) != 0) {
        hms_rpc_reply(call, -EINVAL, NULL, 0);
        return;
    }
    if (max == 0 || max > PULL_MAX_BYTES)
        max = PULL_MAX_BYTES;
    alog *l = astore_find(&r->a->store, key);
    if (!l) {
        hms_rpc_reply(call, -ENOENT, NULL, 0);
        return;
    }
    uint8_t *out = NULL;
    size_t olen = 0, ocap = 0, nseg = 0;
    for (size_t i = 0; i < l->nsegs && nseg < PULL_MAX_SEGS; i++) {
        aseg *g = &l->segs[i];
        if (g->segno < from || !g->sealed || !g->durable)
            continue;
        const uint8_t *b;
        size_t bl;
        uint8_t *owned;
        if (aseg_bytes(l, g, &b, &bl, &owned) != 0)
            break;
        if (olen + bl > max && olen > 0) {
            free(owned);
            break;
        }
        if (olen + bl > ocap) {
            size_t ncap = ocap ? ocap : 65536;
            while (ncap < olen + bl)
                ncap *= 2;
            uint8_t *n = realloc(out, ncap);
            if (!n) {
                free(owned);
                break;
            }
            out = n;
            ocap = ncap;
        }
        memcpy(out + olen, b, bl);
        olen += bl;
        nseg++;
        free(owned);
        if (g->segno + 1 < g->segno)
            break;
    }
    hms_rpc_reply(call, 0, out, olen);
    free(out);
    (void)peer;
}

/* ---- fetch for queries ------------------------------------------------------------ */

static void finish_fetches(rinfo *ri, int status)
{
    rfetch *f = ri->fetches;
    ri->fetches = NULL;
    while (f) {
        rfetch *n = f->next;
        f->done(f->ctx, status);
        free(f);
        f = n;
    }
}

int audit_repl_fetch(hms_audit *a, const uint8_t key[32], uint32_t max_ms, audit_fetch_fn done,
                     void *ctx)
{
    struct audit_repl *r = a->repl;
    if (!r || memcmp(key, a->pk, 32) == 0)
        return -EALREADY;
    rinfo *ri = rinfo_get(r, key, NULL);
    if (!ri)
        return -ENOMEM;
    if (!behind(r, ri) && !ri->pulling && ri->puts_pending == 0)
        return -EALREADY;
    rfetch *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->done = done;
    f->ctx = ctx;
    f->deadline_ms = audit_mono_ms() + max_ms;
    f->next = ri->fetches;
    ri->fetches = f;
    ri->source_empty = false;
    ri->backoff_until = 0;
    if (!ri->pulling)
        start_pull(r, ri);
    return 0;
}

struct multi_fetch {
    int left;
    audit_fetch_fn done;
    void *ctx;
};

static void multi_done(void *ctx, int status)
{
    struct multi_fetch *m = ctx;
    if (--m->left == 0) {
        m->done(m->ctx, 0);
        free(m);
    }
}

int audit_repl_fetch_all(hms_audit *a, uint32_t max_ms, audit_fetch_fn done, void *ctx)
{
    struct audit_repl *r = a->repl;
    if (!r)
        return -EALREADY;
    struct multi_fetch *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->done = done;
    m->ctx = ctx;
    m->left = 1; /* held until every fetch is started */
    for (size_t i = 0; i < r->n; i++) {
        rinfo *ri = r->infos[i];
        if (memcmp(ri->key, a->pk, 32) == 0)
            continue;
        if (audit_repl_fetch(a, ri->key, max_ms, multi_done, m) == 0)
            m->left++;
    }
    if (--m->left == 0) {
        free(m);
        return -EALREADY;
    }
    return 0;
}

/* ---- retention ---------------------------------------------------------------- */

/* Deletes the oldest own segments that R holders report holding and that
 * are past the retention age (or beyond the size budget). The newest sealed
 * segment and the open one always stay: the chain continues from them. */
static void retention(struct audit_repl *r)
{
    hms_audit *a = r->a;
    if (!a->retain_age_s && !a->retain_bytes)
        return;
    alog *l = a->own;
    rinfo *ri = rinfo_find(r, l->key);
    uint64_t total = 0, now_s = audit_wall_ns() / 1000000000ULL;
    for (size_t i = 0; i < l->nsegs; i++)
        total += l->segs[i].size;
    while (l->nsegs > 2) {
        aseg *g = &l->segs[0];
        if (!g->sealed || !g->durable || g->mem)
            break;
        uint32_t copies = 0;
        for (size_t k = 0; ri && k < ri->nholders; k++)
            if (ri->holders[k].last_segno >= g->segno)
                copies++;
        bool old = a->retain_age_s && now_s >= g->mtime_s + a->retain_age_s;
        bool big = a->retain_bytes && total > a->retain_bytes;
        if (copies < a->replicas || (!old && !big))
            break;
        ajob *j = calloc(1, sizeof(*j));
        if (!j)
            break;
        j->kind = AJOB_UNLINK;
        aseg_path(l, g->segno, j->path, sizeof(j->path));
        HMS_INFO("audit: segment %llu held by %u replicas, removed locally",
                 (unsigned long long)g->segno, copies);
        audit_submit_job(a, j);
        total -= g->size;
        alog_remove_seg(l, g->segno);
    }
}

/* ---- the tick ------------------------------------------------------------------ */

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct audit_repl *r = t->data;
    uint64_t now = audit_mono_ms();
    bool quiet = now - r->last_bcast_ms >= RETENTION_MS;
    if (r->last_bcast_ms == 0 || now - r->last_bcast_ms >= r->safety_ms ||
        (r->seal_pending && now - r->last_bcast_ms >= 200) ||
        (r->dirty && now - r->last_bcast_ms >= BCAST_INTERVAL_MS))
        broadcast_head(r);
    /* As before heads went quiet: not while our own segments are being
     * sealed and broadcast (a burst of writes is trimmed once it is over). */
    if (quiet && now - r->last_retention_ms >= RETENTION_MS) {
        r->last_retention_ms = now;
        retention(r);
    }
    /* Learn every member, so that every log has an entry to decide on. */
    swim_t *s = r->ag->swim;
    size_t nm = s && r->swept_gen != r->member_gen ? swim_member_count(s) : 0;
    r->swept_gen = r->member_gen;
    for (size_t i = 0; i < nm; i++) {
        const swim_member_info *m = swim_member_at(s, i);
        if (m && memcmp(m->key, r->a->pk, 32) != 0)
            rinfo_get(r, m->key, m->name);
    }
    for (size_t i = 0; i < r->n; i++) {
        rinfo *ri = r->infos[i];
        if (memcmp(ri->key, r->a->pk, 32) == 0)
            continue;
        bool want = ri->fetches != NULL || is_replica(r, ri);
        bool lag = behind(r, ri);
        if (ri->fetches) {
            bool expired = false;
            for (rfetch *f = ri->fetches; f; f = f->next)
                expired |= now >= f->deadline_ms;
            if ((!lag && !ri->pulling && ri->puts_pending == 0) ||
                (ri->source_empty && !ri->pulling && ri->puts_pending == 0) || expired)
                finish_fetches(ri, 0);
        }
        if (want && lag && !ri->pulling && now >= ri->backoff_until)
            start_pull(r, ri);
    }
    (void)loop;
    (void)revents;
}

/* ---- queries about replicas ---------------------------------------------------------- */

int audit_repl_key_of(hms_audit *a, const char *name, uint8_t key[32])
{
    struct audit_repl *r = a->repl;
    if (!r)
        return -ENOENT;
    if (strcmp(name, a->name) == 0) {
        memcpy(key, a->pk, 32);
        return 0;
    }
    const swim_member_info *m = r->ag->swim ? swim_member_find(r->ag->swim, name) : NULL;
    if (m) {
        memcpy(key, m->key, 32);
        return 0;
    }
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->infos[i]->name, name) == 0) {
            memcpy(key, r->infos[i]->key, 32);
            return 0;
        }
    return -ENOENT;
}

json_t *audit_repl_verify_log(hms_audit *a, alog *l, json_t *probs)
{
    struct audit_repl *r = a->repl;
    rinfo *ri = r ? rinfo_find(r, l->key) : NULL;
    if (!ri)
        return NULL;
    json_t *reps = json_array();
    for (size_t k = 0; k < ri->nholders; k++) {
        const rholder *h = &ri->holders[k];
        char nb[20];
        const char *who = name_of(r, h->by, nb, sizeof(nb));
        aseg *g = alog_seg(l, h->last_segno);
        json_t *o = json_object();
        json_object_set_new(o, "node", json_string(who));
        json_object_set_new(o, "last_segment", json_integer((json_int_t)h->last_segno));
        if (g && g->sealed) {
            bool agree = memcmp(g->head, h->head8, 8) == 0;
            json_object_set_new(o, "agrees", json_boolean(agree));
            if (!agree) {
                char msg[200];
                snprintf(msg, sizeof(msg), "replica %s holds a different segment %llu", who,
                         (unsigned long long)h->last_segno);
                json_t *p = json_pack("{s:s, s:I}", "what", msg, "segment",
                                      (json_int_t)h->last_segno);
                json_array_append_new(probs, p);
            }
        } else {
            json_object_set_new(o, "agrees", json_null());
        }
        json_array_append_new(reps, o);
    }
    return reps;
}

void audit_repl_status_log(hms_audit *a, alog *l, json_t *o)
{
    struct audit_repl *r = a->repl;
    rinfo *ri = r ? rinfo_find(r, l->key) : NULL;
    const aseg *s = last_sealed(l);
    json_t *reps = json_array();
    if (ri) {
        for (size_t k = 0; k < ri->nholders; k++) {
            const rholder *h = &ri->holders[k];
            char nb[20];
            json_t *x = json_object();
            json_object_set_new(x, "node", json_string(name_of(r, h->by, nb, sizeof(nb))));
            json_object_set_new(x, "last_segment", json_integer((json_int_t)h->last_segno));
            json_object_set_new(x, "lag_segments",
                                json_integer(s && s->segno > h->last_segno
                                                 ? (json_int_t)(s->segno - h->last_segno)
                                                 : 0));
            json_object_set_new(x, "alive", json_boolean(alive_member(r, h->by)));
            json_array_append_new(reps, x);
        }
        if (ri->has_head)
            json_object_set_new(o, "origin_head_segment", json_integer((json_int_t)ri->head.segno));
    }
    if (ri && !l->own)
        json_object_set_new(o, "replica_here", json_boolean(is_replica(r, ri)));
    json_object_set_new(o, "replicas", reps);
}

/* ---- lifecycle ----------------------------------------------------------------------- */

int audit_repl_start(hms_audit *a, hms_agent *ag, char *err, size_t errlen)
{
    struct audit_repl *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->ag = ag;
    r->a = a;
    r->member_gen = 1;
    a->repl = r;
    g_repl = r;
    for (size_t i = 0; i < a->store.nlogs; i++) {
        alog *l = a->store.logs[i];
        if (!l->own)
            rinfo_get(r, l->key, l->name[0] ? l->name : NULL);
    }
    int rc;
    if ((rc = hms_agent_rpc_handle(ag, PULL_METHOD, serve_pull, r)) != 0 ||
        (rc = hms_agent_on_user(ag, HMS_USER_AUDIT_HEAD, on_head, r)) != 0 ||
        (rc = hms_agent_on_member(ag, on_member, r)) != 0) {
        snprintf(err, errlen, "cannot register audit replication: %s", strerror(-rc));
        a->repl = NULL;
        g_repl = NULL;
        free(r);
        return rc;
    }
    a->on_sealed = on_sealed;
    a->on_sealed_ctx = r;
    ev_timer_init(&r->timer, on_tick, TICK_S, TICK_S);
    r->timer.data = r;
    ev_timer_start(ag->loop, &r->timer);
    return 0;
}

void audit_repl_stop(hms_audit *a)
{
    struct audit_repl *r = a->repl;
    if (!r)
        return;
    ev_timer_stop(r->ag->loop, &r->timer);
    a->on_sealed = NULL;
    /* Calls still in flight complete later with a context that knows. */
    for (pullctx *pc = r->pulls; pc; pc = pc->next)
        pc->r = NULL;
    r->pulls = NULL;
    for (size_t i = 0; i < r->n; i++) {
        finish_fetches(r->infos[i], -ECANCELED);
        free(r->infos[i]->holders);
        free(r->infos[i]);
    }
    free(r->infos);
    a->repl = NULL;
    g_repl = NULL;
    free(r);
}
