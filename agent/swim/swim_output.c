/*
 * What leaves the membership core: the output queue drained by swim_poll(),
 * with pooled packet buffers and event snapshots; the queue of updates
 * piggybacked on packets (least-sent first, each sent a bounded number of
 * times); and packet assembly under the MTU.
 */
#include "agent/swim/swim_internal.h"

/* ---- output queue -------------------------------------------------------- */

/* Frees outputs already handed out: their data lives until the next call. */
void sw_out_gc(swim_t *s)
{
    for (size_t i = 0; i < s->outq_head; i++) {
        outq_item *it = &s->outq[i];
        if (it->pooled && s->npkt_pool < POOL_MAX)
            s->pkt_pool[s->npkt_pool++] = it->buf;
        else
            free(it->buf);
        if (it->info && s->ninfo_pool < POOL_MAX)
            s->info_pool[s->ninfo_pool++] = it->info;
        else
            free(it->info);
    }
    free(s->pp_reply);
    s->pp_reply = NULL;
    if (s->outq_head == 0)
        return;
    memmove(s->outq, s->outq + s->outq_head, (s->outq_len - s->outq_head) * sizeof(*s->outq));
    s->outq_len -= s->outq_head;
    s->outq_head = 0;
}

outq_item *sw_out_push(swim_t *s)
{
    if (s->outq_len == s->outq_cap) {
        size_t cap = s->outq_cap ? s->outq_cap * 2 : 64;
        outq_item *q = realloc(s->outq, cap * sizeof(*q));
        if (!q)
            return NULL;
        s->outq = q;
        s->outq_cap = cap;
    }
    outq_item *it = &s->outq[s->outq_len++];
    memset(it, 0, sizeof(*it));
    return it;
}

void sw_fill_info(const member *m, swim_member_info *v)
{
    memcpy(v->name, m->name, sizeof(v->name));
    memcpy(v->key, m->key, SWIM_KEY_LEN);
    v->addr = m->addr;
    v->incarnation = m->inc;
    v->status = m->status;
    v->status_since = m->since;
    v->meta_len = m->meta_len;
    if (m->meta_len)
        memcpy(v->meta, m->meta, m->meta_len);
    v->cert_len = m->cert_len;
    if (m->cert_len)
        memcpy(v->cert, m->cert, m->cert_len);
}

void sw_emit_info(swim_t *s, swim_event ev, swim_member_info *info, const uint8_t *data, size_t len,
                  uint8_t user_kind)
{
    outq_item *it = sw_out_push(s);
    if (!it) {
        free(info);
        return;
    }
    it->info = info;
    it->o.kind = SWIM_OUT_EVENT;
    it->o.event = ev;
    it->o.member = info;
    it->o.user_kind = user_kind;
    if (len) {
        it->buf = malloc(len);
        if (it->buf) {
            memcpy(it->buf, data, len);
            it->o.data = it->buf;
            it->o.len = len;
        }
    }
}

swim_member_info *sw_info_new(swim_t *s)
{
    if (s->ninfo_pool)
        return s->info_pool[--s->ninfo_pool];
    return malloc(sizeof(swim_member_info));
}

void sw_emit(swim_t *s, swim_event ev, const member *m)
{
    swim_member_info *info = sw_info_new(s);
    if (!info)
        return;
    sw_fill_info(m, info);
    sw_emit_info(s, ev, info, NULL, 0, 0);
}

void sw_emit_udp(swim_t *s, const hms_addr *to, const uint8_t *key, const uint8_t *pkt, size_t len)
{
    outq_item *it = sw_out_push(s);
    if (!it)
        return;
    it->buf = s->npkt_pool ? s->pkt_pool[--s->npkt_pool] : malloc(s->p.mtu);
    if (!it->buf) {
        s->outq_len--;
        return;
    }
    it->pooled = true;
    memcpy(it->buf, pkt, len);
    it->o.kind = SWIM_OUT_UDP;
    it->o.to = *to;
    memcpy(it->o.to_key, key, SWIM_KEY_LEN);
    it->o.to_key_known = true;
    it->o.data = it->buf;
    it->o.len = len;
    s->st.packets_out++;
    s->st.bytes_out += len;
}

bool swim_poll(swim_t *s, swim_output *out)
{
    if (s->outq_head >= s->outq_len)
        return false;
    *out = s->outq[s->outq_head++].o;
    return true;
}

/* ---- broadcast queue ----------------------------------------------------- */

static void bc_unlink(swim_t *s, bcast *b)
{
    uint32_t t = b->transmits < BC_BUCKETS ? b->transmits : BC_BUCKETS - 1;
    if (b->prev)
        b->prev->next = b->next;
    else
        s->bhead[t] = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        s->btail[t] = b->prev;
    b->prev = b->next = NULL;
}

static void bc_link_head(swim_t *s, bcast *b)
{
    uint32_t t = b->transmits < BC_BUCKETS ? b->transmits : BC_BUCKETS - 1;
    b->prev = NULL;
    b->next = s->bhead[t];
    if (s->bhead[t])
        s->bhead[t]->prev = b;
    else
        s->btail[t] = b;
    s->bhead[t] = b;
}

void sw_bc_free(swim_t *s, bcast *b)
{
    bc_unlink(s, b);
    if (b->kind == BC_MEMBER && b->m && b->m->bc == b)
        b->m->bc = NULL;
    s->bcount--;
    free(b);
}

/* Drops the most-transmitted entry to keep the queue bounded. */
static void bc_trim(swim_t *s)
{
    while (s->bcount > BC_MAX) {
        for (int t = BC_BUCKETS - 1; t >= 0; t--) {
            if (s->btail[t]) {
                sw_bc_free(s, s->btail[t]);
                break;
            }
        }
    }
}

static uint32_t key_hash32(const uint8_t *key)
{
    return (uint32_t)hash_bytes(key, SWIM_KEY_LEN);
}

static bool bc_holder(const bcast *b, uint32_t h)
{
    for (uint8_t i = 0; i < b->nto; i++)
        if (b->to[i] == h)
            return true;
    return false;
}

static void bc_add_holder(bcast *b, uint32_t h)
{
    if (b->nto < BC_TO_MAX && !bc_holder(b, h))
        b->to[b->nto++] = h;
}

/* Whether a copy of b to the member with key to_key would be news to it:
 * not a member's own ALIVE to itself, not to a member known to hold it
 * (each copy goes to a new member; our own leave excepted, see below). */
bool sw_bc_wanted(const swim_t *s, const bcast *b, const uint8_t *to_key)
{
    if (!to_key)
        return true;
    if (b->kind == BC_MEMBER && b->m && b->m->status == SWIM_ALIVE && key_eq(b->m->key, to_key))
        return false;
    return !bc_holder(b, key_hash32(to_key)) || (b->m == s->self && s->leaving);
}

static bcast *bc_new(swim_t *s, const gossip_msg *msg)
{
    uint8_t tmp[GOSSIP_MSG_MAX_LEN];
    size_t len;
    if (gossip_encode_msg(msg, tmp, sizeof(tmp), &len) < 0)
        return NULL;
    bcast *b = calloc(1, sizeof(*b) + len);
    if (!b)
        return NULL;
    memcpy(b->data, tmp, len);
    b->len = (uint16_t)len;
    /* Whoever told us has it already. */
    if (s->rx_key)
        bc_add_holder(b, key_hash32(s->rx_key));
    return b;
}

/* Queues an update about m, replacing the one already queued. */
void sw_bc_member(swim_t *s, member *m, const gossip_msg *msg)
{
    bcast *b = bc_new(s, msg);
    if (!b)
        return;
    if (m->bc)
        sw_bc_free(s, m->bc);
    b->kind = BC_MEMBER;
    b->m = m;
    b->urgent = m->urgent;
    m->urgent = false;
    m->bc = b;
    bc_link_head(s, b);
    s->bcount++;
    bc_trim(s);
}

void sw_bc_user(swim_t *s, const gossip_msg *msg)
{
    bcast *b = bc_new(s, msg);
    if (!b)
        return;
    /* A newer broadcast of the same (origin, kind) replaces the older one. */
    for (int t = 0; t < BC_BUCKETS; t++) {
        for (bcast *o = s->bhead[t]; o; o = o->next) {
            if (o->kind == BC_USER && o->user_kind == msg->user_kind &&
                o->origin == hash_name(msg->name)) {
                sw_bc_free(s, o);
                goto done;
            }
        }
    }
done:
    b->kind = BC_USER;
    b->origin = hash_name(msg->name);
    b->user_kind = msg->user_kind;
    bc_link_head(s, b);
    s->bcount++;
    bc_trim(s);
}

/* Appends queued updates for the member with key to_key to pkt[0..*len)
 * while they fit under the MTU, least-transmitted first, oldest first among
 * equals (so that nothing starves in a burst of joins). Entries that reach the retransmit limit
 * leave the queue. Returns how many were added. */
size_t sw_bc_fill(swim_t *s, uint8_t *pkt, size_t *len, size_t nmsgs, const uint8_t *to_key)
{
    uint32_t limit = swim_retransmit_limit(&s->p, cluster_n(s));
    if (limit >= BC_BUCKETS)
        limit = BC_BUCKETS - 1;
    size_t mtu = s->p.mtu;
    bcast *taken[GOSSIP_MSGS_MAX];
    size_t ntaken = 0, skipped = 0;
    uint32_t to_h = to_key ? key_hash32(to_key) : 0;
    /* Entries at or past the limit (after the cluster shrank) are done. */
    for (uint32_t t = limit; t < BC_BUCKETS; t++)
        while (s->bhead[t])
            sw_bc_free(s, s->bhead[t]);
    for (uint32_t t = 0; t < limit && nmsgs + ntaken < GOSSIP_MSGS_MAX; t++) {
        for (bcast *b = s->btail[t]; b && nmsgs + ntaken < GOSSIP_MSGS_MAX; b = b->prev) {
            /* A member's own ALIVE is no news to it: the copy would be
             * spent on the one node sure to have it. (Accusations still go
             * to the accused, which must refute them.) Each copy goes to a
             * member not known to hold it yet: in a small cluster, copies
             * spent twice on the same few members (probes, acks and rounds
             * all carry them) left the last member waiting for a push-pull.
             * Our own leave is the exception: we stop once it is sent, so
             * it is repeated to whoever we meet. */
            if (!sw_bc_wanted(s, b, to_key))
                continue;
            if (*len + b->len > mtu) {
                if (mtu - *len < 24 || ++skipped > 32)
                    goto out;
                continue;
            }
            memcpy(pkt + *len, b->data, b->len);
            *len += b->len;
            taken[ntaken++] = b;
        }
    }
out:;
    size_t others = cluster_n(s) - (s->self->status == SWIM_ALIVE);
    for (size_t i = 0; i < ntaken; i++) {
        bcast *b = taken[i];
        bc_unlink(s, b);
        b->transmits++;
        if (to_key)
            bc_add_holder(b, to_h);
        /* Every other member holds it (the subject of an ALIVE does): done,
         * whatever copies are left. */
        size_t held = b->nto + (b->kind == BC_MEMBER && b->m && b->m != s->self &&
                                b->m->status == SWIM_ALIVE && !bc_holder(b, key_hash32(b->m->key)));
        if (held >= others && b->transmits < limit && !(b->m == s->self && s->leaving))
            b->transmits = limit;
        if (b->kind == BC_MEMBER && b->m == s->self && s->leaving && b->transmits >= limit)
            s->leave_done = true;
        if (b->transmits >= limit) {
            if (b->kind == BC_MEMBER && b->m && b->m->bc == b)
                b->m->bc = NULL;
            s->bcount--;
            free(b);
        } else {
            bc_link_head(s, b);
        }
    }
    return ntaken;
}

/* ---- message builders ---------------------------------------------------- */

void sw_msg_alive(const member *m, gossip_msg *g)
{
    memset(g, 0, sizeof(*g));
    g->type = GOSSIP_ALIVE;
    memcpy(g->name, m->name, sizeof(g->name));
    memcpy(g->key, m->key, SWIM_KEY_LEN);
    g->addr = m->addr;
    g->incarnation = m->inc;
    g->meta = m->meta;
    g->meta_len = m->meta_len;
    g->cert = m->cert;
    g->cert_len = m->cert_len;
}

void sw_msg_status(const member *m, uint8_t type, const char *from, gossip_msg *g)
{
    memset(g, 0, sizeof(*g));
    g->type = type;
    memcpy(g->name, m->name, sizeof(g->name));
    memcpy(g->key, m->key, SWIM_KEY_LEN);
    g->incarnation = m->inc;
    if (from)
        memcpy(g->from, from, sizeof(g->from));
}

/* Queues the current record of m as the update others should hear. */
void sw_bc_state(swim_t *s, member *m, const char *from)
{
    gossip_msg g;
    switch (m->status) {
    case SWIM_ALIVE:
        sw_msg_alive(m, &g);
        break;
    case SWIM_SUSPECT:
        sw_msg_status(m, GOSSIP_SUSPECT, from, &g);
        break;
    case SWIM_DEAD:
        sw_msg_status(m, GOSSIP_DEAD, from, &g);
        break;
    case SWIM_LEFT:
        sw_msg_status(m, GOSSIP_LEAVE, NULL, &g);
        break;
    }
    sw_bc_member(s, m, &g);
}

/* Queues m's ALIVE without its certificate: for a new incarnation of a
 * member whose key and certificate are unchanged, which every member that
 * knows it already holds. The certificate is most of an ALIVE's bytes;
 * without it a refutation or a meta change packs four times as densely. A
 * member that does not know m cannot admit it from this and waits for a
 * full record (a join's gossip, a push-pull, a correction). */
void sw_bc_alive_light(swim_t *s, member *m)
{
    gossip_msg g;
    sw_msg_alive(m, &g);
    g.cert = NULL;
    g.cert_len = 0;
    sw_bc_member(s, m, &g);
}

/* Sends one packet: the primary messages, then piggybacked updates. */
void sw_send_pkt(swim_t *s, const hms_addr *to, const uint8_t *key, const gossip_msg *prim,
                 size_t nprim)
{
    uint8_t *pkt = s->pkt;
    size_t len = 1;
    pkt[0] = GOSSIP_VERSION;
    for (size_t i = 0; i < nprim; i++) {
        size_t n;
        if (gossip_encode_msg(&prim[i], pkt + len, s->p.mtu - len, &n) < 0)
            return;
        len += n;
    }
    size_t added = sw_bc_fill(s, pkt, &len, nprim, key);
    if (nprim == 0 && added == 0)
        return;
    sw_emit_udp(s, to, key, pkt, len);
}
