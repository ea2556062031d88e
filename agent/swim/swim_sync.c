/*
 * Anti-entropy and healing for the membership core: push-pull state
 * exchanges (periodic, join, catch-up), their merge, seeds retried forever,
 * dead members retried and finally reaped (see docs/membership.md).
 */
#include "agent/swim/swim_internal.h"

/* ---- push-pull ----------------------------------------------------------- */

/* Encodes our state into a new buffer (the caller frees it). */
static int pp_encode(swim_t *s, hms_time now, bool join, uint8_t **out, size_t *out_len)
{
    size_t need = 96;
    for (size_t i = 0; i < s->nmembers; i++) {
        const member *m = s->members[i];
        need += 96 + strlen(m->name) + m->meta_len + m->cert_len;
    }
    if (need > GOSSIP_PP_BYTES_MAX)
        need = GOSSIP_PP_BYTES_MAX;
    uint8_t *buf = malloc(need);
    if (!buf)
        return -ENOMEM;
    gossip_pp_writer w;
    int rc = gossip_pp_begin(&w, buf, need, join, s->self->name);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    /* Our own record first, so a bounded state always carries it. */
    for (size_t j = 0; j <= s->nmembers; j++) {
        member *m = j == 0 ? s->self : s->members[j - 1];
        if (j > 0 && m == s->self)
            continue;
        gossip_member gm;
        memset(&gm, 0, sizeof(gm));
        memcpy(gm.name, m->name, sizeof(gm.name));
        memcpy(gm.key, m->key, SWIM_KEY_LEN);
        gm.addr = m->addr;
        gm.incarnation = m->inc;
        gm.status = (uint8_t)m->status;
        gm.meta = m->meta;
        gm.meta_len = m->meta_len;
        gm.cert = m->cert;
        gm.cert_len = m->cert_len;
        gm.age_s = now > m->since ? (uint32_t)((now - m->since) / HMS_SEC(1) < GOSSIP_AGE_MAX
                                                   ? (now - m->since) / HMS_SEC(1)
                                                   : GOSSIP_AGE_MAX)
                                  : 0;
        if (gossip_pp_add(&w, &gm) < 0)
            break; /* at the bound: the rest is left to later exchanges */
    }
    size_t len;
    if ((rc = gossip_pp_finish(&w, &len)) < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* Merges a remote state sent by the peer authenticated as key. A remote
 * "dead" becomes a suspicion here (the peer may be stale; the member gets a
 * chance to refute); "left" is taken as is. */
static int pp_merge(swim_t *s, hms_time now, const uint8_t *key, const uint8_t *buf, size_t len,
                    bool *join)
{
    gossip_pp_reader r;
    char sender[GOSSIP_NAME_MAX + 1];
    uint32_t count;
    if (gossip_pp_open(&r, buf, len, join, sender, &count) < 0) {
        s->st.drop_malformed++;
        return -EBADMSG;
    }
    /* The sender's own record must be in the state, under its key. */
    gossip_pp_reader chk = r;
    gossip_member gm;
    bool found = false;
    while (gossip_pp_next(&chk, &gm) == 1) {
        if (strcmp(gm.name, sender) == 0) {
            found = key_eq(gm.key, key) && gm.status == SWIM_ALIVE;
            break;
        }
    }
    if (!found) {
        s->st.drop_wrong_target++;
        return -EPERM;
    }
    member *sm = sw_htab_get(&s->by_key, true, key);
    if (sm && sm->expelled) {
        s->st.drop_refused++;
        return -EPERM;
    }
    /* The sender is talking to us over an authenticated channel right now:
     * if we hold it dead or suspect at the incarnation it still has, that
     * is proof enough. Across a healed partition this first exchange then
     * opens the way for gossip; without it, the refutations each side
     * makes stay on its own side until another exchange carries them. */
    if (sm && sm != s->self && strcmp(sm->name, sender) == 0 &&
        (sm->status == SWIM_DEAD || sm->status == SWIM_SUSPECT) && sm->inc == gm.incarnation)
        sw_set_state(s, sm, sm->inc, SWIM_ALIVE, now, NULL);
    while (gossip_pp_next(&r, &gm) == 1) {
        gossip_msg g;
        memset(&g, 0, sizeof(g));
        memcpy(g.name, gm.name, sizeof(g.name));
        memcpy(g.key, gm.key, SWIM_KEY_LEN);
        g.addr = gm.addr;
        g.incarnation = gm.incarnation;
        g.meta = gm.meta;
        g.meta_len = gm.meta_len;
        g.cert = gm.cert;
        g.cert_len = gm.cert_len;
        hms_time age = HMS_SEC(gm.age_s);
        switch (gm.status) {
        case SWIM_ALIVE:
            g.type = GOSSIP_ALIVE;
            sw_on_alive(s, &g, now, strcmp(gm.name, sender) == 0);
            break;
        case SWIM_SUSPECT:
        case SWIM_DEAD:
            /* An unknown suspect is learned as alive first so the
             * accusation has a record to attach to; an unknown dead member
             * is listed dead (sw_on_gone_unknown). */
            if (!sw_htab_get(&s->by_name, false, gm.name)) {
                g.type = GOSSIP_ALIVE;
                if (gm.status == SWIM_DEAD) {
                    sw_on_gone_unknown(s, &g, SWIM_DEAD, age, now);
                    break;
                }
                sw_on_alive(s, &g, now, false);
            }
            sw_on_suspect(s, gm.name, gm.key, gm.incarnation, sender, now);
            break;
        case SWIM_LEFT:
            if (!sw_htab_get(&s->by_name, false, gm.name)) {
                g.type = GOSSIP_ALIVE;
                sw_on_gone_unknown(s, &g, SWIM_LEFT, age, now);
                break;
            }
            sw_on_dead(s, gm.name, gm.key, gm.incarnation, gm.name, now, true);
            break;
        }
    }
    return 0;
}

static pp_pending *pp_track(swim_t *s, uint8_t kind, int seed_idx)
{
    if (s->npp == PP_PENDING_MAX) {
        /* Forget the oldest: its reply will be ignored. */
        if (s->pp[0].kind == PP_SEED && s->pp[0].seed >= 0)
            s->seeds[s->pp[0].seed].pending = false;
        memmove(s->pp, s->pp + 1, (PP_PENDING_MAX - 1) * sizeof(*s->pp));
        s->npp--;
    }
    pp_pending *p = &s->pp[s->npp++];
    p->token = ++s->next_token;
    p->kind = kind;
    p->seed = seed_idx;
    return p;
}

void sw_pp_start(swim_t *s, hms_time now, const hms_addr *to, const uint8_t *key, bool join,
                 uint8_t kind, int seed_idx)
{
    uint8_t *st;
    size_t len;
    if (pp_encode(s, now, join, &st, &len) < 0)
        return;
    outq_item *it = sw_out_push(s);
    if (!it) {
        free(st);
        return;
    }
    it->buf = st;
    pp_pending *p = pp_track(s, kind, seed_idx);
    it->o.kind = SWIM_OUT_PUSHPULL;
    it->o.to = *to;
    if (key) {
        memcpy(it->o.to_key, key, SWIM_KEY_LEN);
        it->o.to_key_known = true;
    }
    it->o.data = it->buf;
    it->o.len = len;
    it->o.token = p->token;
    s->st.pushpulls_out++;
}

int swim_pushpull_serve(swim_t *s, hms_time now, const hms_addr *from,
                        const uint8_t key[SWIM_KEY_LEN], const uint8_t *req, size_t len,
                        const uint8_t **reply, size_t *reply_len)
{
    sw_out_gc(s);
    bool join;
    if (!key || !req || !reply || !reply_len)
        return -EINVAL;
    int rc = pp_merge(s, now, key, req, len, &join);
    if (rc < 0)
        return rc;
    s->st.pushpulls_in++;
    free(s->pp_reply);
    s->pp_reply = NULL;
    if ((rc = pp_encode(s, now, false, &s->pp_reply, reply_len)) < 0)
        return rc;
    *reply = s->pp_reply;
    return 0;
}

void swim_pushpull_done(swim_t *s, hms_time now, uint64_t token, const uint8_t key[SWIM_KEY_LEN],
                        const uint8_t *reply, size_t len)
{
    sw_out_gc(s);
    size_t i;
    for (i = 0; i < s->npp; i++)
        if (s->pp[i].token == token)
            break;
    if (i == s->npp)
        return;
    pp_pending p = s->pp[i];
    memmove(s->pp + i, s->pp + i + 1, (s->npp - i - 1) * sizeof(*s->pp));
    s->npp--;
    size_t before = s->nmembers;
    bool join, ok = reply && key && pp_merge(s, now, key, reply, len, &join) == 0;
    if (ok && p.kind == PP_PERIODIC && s->joined && s->nmembers > before) {
        /* It taught us members gossip had not: the cluster is still
         * forming (a mass start), and early joiners hear of later ones
         * only this way when the join gossip missed them. Keep the
         * catch-up pace instead of doubling it away. */
        hms_time base = HMS_MS(s->p.probe_interval_ms) * 4;
        s->catchups = CATCHUPS;
        s->catchup_gap = base / 2;
        hms_time next = now + base / 2 + rng_below(&s->r, base / 2);
        if (next < s->next_pushpull)
            s->next_pushpull = next;
    }
    if (p.kind == PP_SEED && p.seed >= 0 && (size_t)p.seed < s->nseeds) {
        seed *sd = &s->seeds[p.seed];
        sd->pending = false;
        hms_time cap = HMS_MS(s->p.reconnect_interval_ms);
        if (ok) {
            sd->key_known = true;
            memcpy(sd->key, key, SWIM_KEY_LEN);
            if (!s->joined) {
                /* Members that joined around the same time reach us by
                 * gossip, but gossip aimed at a node few yet know can miss
                 * us: a few early push-pulls with random members, at
                 * doubling gaps, catch up (see catch-up in swim_tick). */
                s->joined = true;
                s->joined_at = now;
                s->catchups = CATCHUPS;
                s->catchup_gap = HMS_MS(s->p.probe_interval_ms) * 4;
                s->next_pushpull = now + s->catchup_gap + rng_below(&s->r, s->catchup_gap);
            }
            sd->backoff = HMS_MS(s->p.probe_interval_ms) * 2;
            sd->next_at = now + cap;
        } else {
            sd->next_at = now + sd->backoff;
            sd->backoff = sd->backoff * 2 < cap ? sd->backoff * 2 : cap;
        }
    }
}

void swim_join(swim_t *s, hms_time now, const hms_addr *seeds, size_t n)
{
    sw_out_gc(s);
    for (size_t i = 0; seeds && i < n && s->nseeds < SEEDS_MAX; i++) {
        if (seeds[i].family == 0 || hms_addr_equal(&seeds[i], &s->self->addr))
            continue;
        bool dup = false;
        for (size_t j = 0; j < s->nseeds; j++)
            dup |= hms_addr_equal(&s->seeds[j].addr, &seeds[i]);
        if (dup)
            continue;
        seed *sd = &s->seeds[s->nseeds++];
        memset(sd, 0, sizeof(*sd));
        sd->addr = seeds[i];
        sd->backoff = HMS_MS(s->p.probe_interval_ms) * 2;
        sd->next_at = now;
    }
    for (size_t j = 0; j < s->nseeds; j++) {
        if (s->seeds[j].pending)
            continue;
        s->seeds[j].pending = true;
        s->seeds[j].next_at = now + s->seeds[j].backoff;
        sw_pp_start(s, now, &s->seeds[j].addr, s->seeds[j].key_known ? s->seeds[j].key : NULL, true,
                    PP_SEED, (int)j);
    }
}

static bool seed_in_cluster(const swim_t *s, const seed *sd)
{
    if (sd->key_known) {
        member *m = sw_htab_get(&s->by_key, true, sd->key);
        if (m && m != s->self && m->status == SWIM_ALIVE)
            return true;
    }
    for (size_t i = 0; i < s->nmembers; i++) {
        member *m = s->members[i];
        if (m != s->self && m->status == SWIM_ALIVE && hms_addr_equal(&m->addr, &sd->addr))
            return true;
    }
    return false;
}

/* Dead members are retried (Serf's reconnect: with probability dead/alive
 * per interval, so the cluster-wide rate stays near one try per interval);
 * seeds that are not alive members are retried with backoff, forever; dead
 * and left records older than reconnect_timeout are forgotten. */
void sw_reconnect_tick(swim_t *s, hms_time now)
{
    hms_time limit = HMS_MS(s->p.reconnect_timeout_ms);
    for (size_t i = 0; i < s->nmembers;) {
        member *m = s->members[i];
        if ((m->status == SWIM_DEAD || m->status == SWIM_LEFT) && now - m->since >= limit) {
            sw_member_remove(s, m, now);
            continue;
        }
        i++;
    }
    size_t ndead = s->counts[SWIM_DEAD];
    size_t nalive = s->counts[SWIM_ALIVE];
    if (ndead > 0 && !s->leaving) {
        /* A cheap look at one random dead member, telling it so: a live
         * one refutes, or answers a stale accusation with its record. This
         * is what fixes a node that missed a refutation after a partition
         * healed, long before the next push-pull. */
        member *d = sw_random_member(s, SWIM_DEAD, SWIM_DEAD);
        if (d) {
            gossip_msg g[2];
            sw_msg_status(d, GOSSIP_DEAD, s->self->name, &g[0]);
            memset(&g[1], 0, sizeof(g[1]));
            g[1].type = GOSSIP_PING;
            g[1].seq = ++s->seq;
            memcpy(g[1].target_key, d->key, SWIM_KEY_LEN);
            sw_send_pkt(s, &d->addr, d->key, g, 2);
        }
    }
    if (ndead > 0 && !s->leaving &&
        rng_below(&s->r, 1000000) < (uint64_t)(1000000.0 * (double)ndead / (double)nalive)) {
        member *m = sw_random_member(s, SWIM_DEAD, SWIM_DEAD);
        if (m)
            sw_pp_start(s, now, &m->addr, m->key, false, PP_RECONNECT, -1);
    }
}

void sw_seeds_tick(swim_t *s, hms_time now)
{
    for (size_t j = 0; j < s->nseeds; j++) {
        seed *sd = &s->seeds[j];
        if (sd->pending || now < sd->next_at)
            continue;
        if (seed_in_cluster(s, sd)) {
            sd->next_at = now + HMS_MS(s->p.reconnect_interval_ms);
            continue;
        }
        sd->pending = true;
        sw_pp_start(s, now, &sd->addr, sd->key_known ? sd->key : NULL, true, PP_SEED, (int)j);
    }
}
