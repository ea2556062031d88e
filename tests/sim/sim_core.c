/*
 * The simulator's event loop, virtual network and node lifecycle (see
 * sim.h). One binary heap holds every future event; nodes are addressed by
 * synthetic addresses 10.a.b.c:7950 derived from their index, and keyed by
 * 32 synthetic bytes derived from the index and the seed.
 */
#include "tests/sim/sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ev_type { EV_TICK = 1, EV_UDP, EV_PP_REQ, EV_PP_REPLY, EV_RESUME };

typedef struct ev {
    hms_time t;
    uint64_t seq;
    uint8_t type;
    uint32_t node, from;
    uint32_t gen; /* the target's incarnation of life; stale after a restart */
    uint32_t len;
    uint8_t *data;
    uint64_t token;
    bool fail;
} ev;

typedef struct node {
    swim_t *core;
    bool started, up, leaving;
    uint32_t gen;
    hms_time tick_at;
    hms_time paused_until;
    int group;
    uint64_t inc_persisted;
    char name[16];
    uint8_t key[SWIM_KEY_LEN];
    hms_addr addr;
} node;

struct sim {
    sim_config c;
    node *nodes;
    ev *heap;
    size_t hlen, hcap;
    uint64_t seq;
    hms_time now;
    uint64_t rng;
    bool partitioned;
    uint8_t *met; /* strict_trust: met[i * n + j], i met j over a channel */
    sim_totals tot;
};

static uint64_t rnd(sim_t *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rnd01(sim_t *s)
{
    return (double)(rnd(s) >> 11) / (double)(1ULL << 53);
}

/* ---- heap ---------------------------------------------------------------- */

static bool ev_less(const ev *a, const ev *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void push(sim_t *s, ev e)
{
    if (s->hlen == s->hcap) {
        size_t cap = s->hcap ? s->hcap * 2 : 1024;
        ev *h = realloc(s->heap, cap * sizeof(*h));
        if (!h) {
            free(e.data);
            return;
        }
        s->heap = h;
        s->hcap = cap;
    }
    e.seq = ++s->seq;
    size_t i = s->hlen++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(&e, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static ev pop(sim_t *s)
{
    ev top = s->heap[0];
    ev last = s->heap[--s->hlen];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const ev *best = &last;
        if (l < s->hlen && ev_less(&s->heap[l], best)) {
            m = l;
            best = &s->heap[l];
        }
        if (r < s->hlen && ev_less(&s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->hlen)
        s->heap[i] = last;
    return top;
}

/* ---- setup --------------------------------------------------------------- */

void sim_config_default(sim_config *c, size_t n, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->seed = seed;
    swim_profile_by_name("lan", &c->profile);
    c->latency_min = 200;
    c->latency_max = 1000;
    c->pp_fail_after = HMS_SEC(1);
}

sim_t *sim_new(const sim_config *c)
{
    if (!c || c->n == 0 || c->n >= (1u << 24))
        return NULL;
    sim_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->c = *c;
    s->rng = c->seed ^ 0x5eed5eed5eedULL;
    s->nodes = calloc(c->n, sizeof(*s->nodes));
    if (c->strict_trust)
        s->met = calloc(c->n * c->n, 1);
    if (!s->nodes || (c->strict_trust && !s->met)) {
        free(s->nodes);
        free(s->met);
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < c->n; i++) {
        node *nd = &s->nodes[i];
        snprintf(nd->name, sizeof(nd->name), "n%u", (unsigned)i);
        uint64_t x = c->seed * 0x2545f4914f6cdd1dULL + i;
        for (int k = 0; k < SWIM_KEY_LEN; k += 8) {
            x += 0x9e3779b97f4a7c15ULL;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            z ^= z >> 31;
            memcpy(nd->key + k, &z, 8);
        }
        uint32_t id = (uint32_t)i + 1;
        nd->addr.family = 4;
        nd->addr.ip[0] = 10;
        nd->addr.ip[1] = (uint8_t)(id >> 16);
        nd->addr.ip[2] = (uint8_t)(id >> 8);
        nd->addr.ip[3] = (uint8_t)id;
        nd->addr.port = 7950;
    }
    return s;
}

void sim_delete(sim_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->c.n; i++)
        swim_delete(s->nodes[i].core);
    for (size_t i = 0; i < s->hlen; i++)
        free(s->heap[i].data);
    free(s->heap);
    free(s->nodes);
    free(s->met);
    free(s);
}

/* Whether node i's sealing admits packets from node j (see strict_trust). */
static bool trusts(sim_t *s, size_t i, size_t j)
{
    if (!s->c.strict_trust || i == j || s->met[i * s->c.n + j])
        return true;
    return swim_member_by_key(s->nodes[i].core, s->nodes[j].key) != NULL;
}

static void meet(sim_t *s, size_t i, size_t j)
{
    if (s->met) {
        s->met[i * s->c.n + j] = 1;
        s->met[j * s->c.n + i] = 1;
    }
}

static long node_of(const sim_t *s, const hms_addr *a)
{
    if (a->family != 4 || a->ip[0] != 10 || a->port != 7950)
        return -1;
    long id = ((long)a->ip[1] << 16) | ((long)a->ip[2] << 8) | a->ip[3];
    if (id < 1 || (size_t)id > s->c.n)
        return -1;
    return id - 1;
}

static hms_time latency(sim_t *s)
{
    hms_time span = s->c.latency_max > s->c.latency_min ? s->c.latency_max - s->c.latency_min : 0;
    return s->c.latency_min + (span ? rnd(s) % (span + 1) : 0);
}

static bool linked(const sim_t *s, size_t a, size_t b)
{
    return !s->partitioned || s->nodes[a].group == s->nodes[b].group;
}

static void schedule_tick(sim_t *s, size_t i, hms_time t)
{
    node *nd = &s->nodes[i];
    if (nd->tick_at > s->now && nd->tick_at <= t)
        return;
    nd->tick_at = t;
    ev e = {.t = t, .type = EV_TICK, .node = (uint32_t)i, .gen = nd->gen};
    push(s, e);
}

/* Sends everything the core of node i has queued. */
static void drain(sim_t *s, size_t i)
{
    node *nd = &s->nodes[i];
    swim_output o;
    while (nd->core && swim_poll(nd->core, &o)) {
        if (o.kind == SWIM_OUT_EVENT) {
            s->tot.events++;
            if (o.event == SWIM_EV_INCARNATION && o.member)
                nd->inc_persisted = o.member->incarnation;
            if (s->c.on_event)
                s->c.on_event(s->c.ctx, s, i, s->now, &o);
            continue;
        }
        long j = node_of(s, &o.to);
        if (o.kind == SWIM_OUT_UDP) {
            s->tot.packets++;
            s->tot.bytes += o.len;
            int copies = 1 + (s->c.dup > 0 && rnd01(s) < s->c.dup);
            for (int c = 0; c < copies; c++) {
                if (j < 0 || !linked(s, i, (size_t)j) || (s->c.loss > 0 && rnd01(s) < s->c.loss)) {
                    s->tot.dropped++;
                    continue;
                }
                ev e = {.t = s->now + latency(s),
                        .type = EV_UDP,
                        .node = (uint32_t)j,
                        .from = (uint32_t)i,
                        .gen = s->nodes[j].gen,
                        .len = (uint32_t)o.len};
                e.data = malloc(o.len);
                if (!e.data)
                    continue;
                memcpy(e.data, o.data, o.len);
                push(s, e);
            }
        } else if (o.kind == SWIM_OUT_PUSHPULL) {
            s->tot.pushpulls++;
            s->tot.pushpull_bytes += o.len;
            ev e = {.type = EV_PP_REQ, .from = (uint32_t)i, .gen = nd->gen, .token = o.token};
            if (j < 0 || !s->nodes[j].up) {
                e.type = EV_PP_REPLY; /* connection refused */
                e.node = (uint32_t)i;
                e.fail = true;
                e.t = s->now + 2 * latency(s);
            } else if (!linked(s, i, (size_t)j)) {
                e.type = EV_PP_REPLY; /* connect timeout */
                e.node = (uint32_t)i;
                e.fail = true;
                e.t = s->now + s->c.pp_fail_after;
            } else {
                e.node = (uint32_t)j;
                e.t = s->now + 3 * latency(s); /* handshake, then the state */
                e.len = (uint32_t)o.len;
                e.data = malloc(o.len);
                if (!e.data)
                    continue;
                memcpy(e.data, o.data, o.len);
                e.gen = s->nodes[j].gen;
                e.token = o.token;
            }
            if (e.type == EV_PP_REPLY)
                e.gen = nd->gen;
            push(s, e);
        }
    }
}

static void after_call(sim_t *s, size_t i)
{
    node *nd = &s->nodes[i];
    if (!nd->core)
        return;
    hms_time next = swim_tick(nd->core, s->now);
    drain(s, i);
    if (nd->leaving && swim_leave_propagated(nd->core, s->now)) {
        sim_kill(s, i);
        return;
    }
    schedule_tick(s, i, next);
}

static swim_t *make_core(sim_t *s, size_t i, uint64_t inc)
{
    node *nd = &s->nodes[i];
    swim_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.name = nd->name;
    memcpy(cfg.key, nd->key, SWIM_KEY_LEN);
    cfg.addr = nd->addr;
    cfg.incarnation = inc;
    cfg.seed = s->c.seed * 1000003ULL + i * 7919ULL + inc;
    cfg.profile = s->c.profile;
    return swim_new(&cfg, s->now);
}

static int boot(sim_t *s, size_t i, uint64_t inc, const size_t *seeds, size_t nseeds)
{
    node *nd = &s->nodes[i];
    nd->core = make_core(s, i, inc);
    if (!nd->core)
        return -ENOMEM;
    if (s->met) /* a new process: its trust store starts empty */
        memset(s->met + i * s->c.n, 0, s->c.n);
    nd->started = nd->up = true;
    nd->leaving = false;
    nd->gen++;
    nd->tick_at = 0;
    nd->paused_until = 0;
    drain(s, i);
    if (nseeds) {
        hms_addr a[16];
        size_t k = 0;
        for (size_t j = 0; j < nseeds && k < 16; j++)
            if (seeds[j] < s->c.n && seeds[j] != i)
                a[k++] = s->nodes[seeds[j]].addr;
        swim_join(nd->core, s->now, a, k);
    }
    after_call(s, i);
    return 0;
}

void sim_rename(sim_t *s, size_t i, const char *name)
{
    if (i < s->c.n && !s->nodes[i].started)
        snprintf(s->nodes[i].name, sizeof(s->nodes[i].name), "%s", name);
}

int sim_start(sim_t *s, size_t i, const size_t *seeds, size_t nseeds)
{
    if (i >= s->c.n || s->nodes[i].started)
        return -EINVAL;
    return boot(s, i, 1, seeds, nseeds);
}

int sim_restart(sim_t *s, size_t i, const size_t *seeds, size_t nseeds)
{
    if (i >= s->c.n || s->nodes[i].up)
        return -EINVAL;
    return boot(s, i, s->nodes[i].inc_persisted + 1, seeds, nseeds);
}

void sim_kill(sim_t *s, size_t i)
{
    if (i >= s->c.n || !s->nodes[i].up)
        return;
    node *nd = &s->nodes[i];
    swim_delete(nd->core);
    nd->core = NULL;
    nd->up = false;
    nd->leaving = false;
    nd->gen++;
}

void sim_pause(sim_t *s, size_t i, hms_time d)
{
    if (i >= s->c.n || !s->nodes[i].up)
        return;
    s->nodes[i].paused_until = s->now + d;
    ev e = {.t = s->now + d, .type = EV_RESUME, .node = (uint32_t)i, .gen = s->nodes[i].gen};
    push(s, e);
}

void sim_leave(sim_t *s, size_t i)
{
    if (i >= s->c.n || !s->nodes[i].up)
        return;
    s->nodes[i].leaving = true;
    swim_leave(s->nodes[i].core, s->now);
    after_call(s, i);
}

void sim_partition(sim_t *s, const int *group)
{
    s->partitioned = group != NULL;
    for (size_t i = 0; i < s->c.n; i++)
        s->nodes[i].group = group ? group[i] : 0;
}

void sim_set_loss(sim_t *s, double loss)
{
    s->c.loss = loss;
}

/* ---- running ------------------------------------------------------------- */

static void handle(sim_t *s, ev *e)
{
    node *nd = &s->nodes[e->node];
    if (!nd->up || e->gen != nd->gen) {
        if (e->type == EV_PP_REQ) {
            /* The peer died with the request in flight: the caller sees a
             * reset. */
            node *req = &s->nodes[e->from];
            ev r = {.t = s->now + latency(s),
                    .type = EV_PP_REPLY,
                    .node = e->from,
                    .from = e->node,
                    .gen = req->gen,
                    .token = e->token,
                    .fail = true};
            push(s, r);
        }
        s->tot.dropped += e->type == EV_UDP;
        return;
    }
    if (nd->paused_until > s->now) {
        if (e->type == EV_TICK || e->type == EV_RESUME)
            return; /* the resume event runs the timers */
        ev d = *e;
        d.t = nd->paused_until;
        push(s, d);
        e->data = NULL; /* moved */
        return;
    }
    switch (e->type) {
    case EV_TICK:
        if (e->t != nd->tick_at)
            return; /* superseded */
        nd->tick_at = 0;
        after_call(s, e->node);
        break;
    case EV_RESUME:
        nd->tick_at = 0;
        after_call(s, e->node);
        break;
    case EV_UDP:
        if (!trusts(s, e->node, e->from)) {
            s->tot.dropped++;
            break;
        }
        s->tot.delivered++;
        swim_recv(nd->core, s->now, &s->nodes[e->from].addr, s->nodes[e->from].key, e->data,
                  e->len);
        after_call(s, e->node);
        break;
    case EV_PP_REQ: {
        const uint8_t *reply = NULL;
        size_t rlen = 0;
        node *req = &s->nodes[e->from];
        ev r = {.t = s->now + latency(s),
                .type = EV_PP_REPLY,
                .node = e->from,
                .from = e->node,
                .gen = e->gen,
                .token = e->token};
        r.gen = req->gen;
        if (linked(s, e->from, e->node))
            meet(s, e->node, e->from); /* the handshake carried both certificates */
        if (!linked(s, e->from, e->node) ||
            swim_pushpull_serve(nd->core, s->now, &req->addr, req->key, e->data, e->len, &reply,
                                &rlen) < 0) {
            r.fail = true;
        } else {
            r.data = malloc(rlen);
            if (r.data) {
                memcpy(r.data, reply, rlen);
                r.len = (uint32_t)rlen;
                s->tot.pushpull_bytes += rlen;
            } else {
                r.fail = true;
            }
        }
        after_call(s, e->node);
        push(s, r);
        break;
    }
    case EV_PP_REPLY:
        if (!e->fail && !linked(s, e->from, e->node))
            e->fail = true;
        swim_pushpull_done(nd->core, s->now, e->token, s->nodes[e->from].key,
                           e->fail ? NULL : e->data, e->fail ? 0 : e->len);
        after_call(s, e->node);
        break;
    }
}

void sim_run_until(sim_t *s, hms_time t)
{
    while (s->hlen && s->heap[0].t <= t) {
        ev e = pop(s);
        s->now = e.t;
        handle(s, &e);
        free(e.data);
    }
    if (s->now < t)
        s->now = t;
}

bool sim_run_while(sim_t *s, hms_time limit, hms_time step, bool (*pred)(sim_t *, void *),
                   void *arg)
{
    while (s->now < limit) {
        if (pred(s, arg))
            return true;
        hms_time t = s->now + step;
        sim_run_until(s, t < limit ? t : limit);
    }
    return pred(s, arg);
}

/* ---- queries ------------------------------------------------------------- */

hms_time sim_now(const sim_t *s)
{
    return s->now;
}

size_t sim_size(const sim_t *s)
{
    return s->c.n;
}

bool sim_up(const sim_t *s, size_t i)
{
    return i < s->c.n && s->nodes[i].up;
}

swim_t *sim_core(sim_t *s, size_t i)
{
    return i < s->c.n ? s->nodes[i].core : NULL;
}

const char *sim_name(const sim_t *s, size_t i)
{
    return i < s->c.n ? s->nodes[i].name : "";
}

void sim_key(const sim_t *s, size_t i, uint8_t key[SWIM_KEY_LEN])
{
    memcpy(key, s->nodes[i].key, SWIM_KEY_LEN);
}

int sim_status(sim_t *s, size_t observer, size_t subject)
{
    if (observer >= s->c.n || subject >= s->c.n || !s->nodes[observer].core)
        return -1;
    int st = swim_member_status(s->nodes[observer].core, s->nodes[subject].name, NULL);
    return st < 0 ? -1 : st;
}

bool sim_converged(sim_t *s)
{
    size_t up = 0;
    for (size_t i = 0; i < s->c.n; i++)
        up += s->nodes[i].up && !s->nodes[i].leaving;
    for (size_t i = 0; i < s->c.n; i++) {
        if (!s->nodes[i].up || s->nodes[i].leaving)
            continue;
        swim_stats st;
        swim_get_stats(s->nodes[i].core, &st);
        if (st.members_alive != up || st.members_suspect != 0)
            return false;
    }
    return true;
}

void sim_get_totals(const sim_t *s, sim_totals *t)
{
    *t = s->tot;
}
