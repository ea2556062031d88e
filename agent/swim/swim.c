/*
 * The membership core: member table, state machine, probing, suspicion,
 * message handling, timers, leave and queries, as a deterministic state
 * machine (see swim.h). Time comes in as arguments, randomness from a
 * xoshiro256** generator seeded by the configuration, and every effect
 * leaves through the output queue (swim_output.c) drained by swim_poll().
 * Push-pull and healing live in swim_sync.c. No syscalls, no event loop.
 *
 * Member state machine. Every change of {incarnation, status} goes through
 * sw_set_state(); i is the member's incarnation, i' the message's.
 *
 *                    alive(i' > i) [refutation, rejoin]
 *        +------------------------------------------------------+
 *        v                                                      |
 *   +---------+  suspect(i' >= i) or own probe failed   +---------+
 *   |  ALIVE  | --------------------------------------> | SUSPECT |
 *   +---------+                                         +---------+
 *     |     |                                             |    |
 *     |     | dead(i' >= i) / expel                       |    | suspicion timer
 *     |     v                                             |    v (dynamic timeout)
 *     |   +---------+ <-----------------------------------+  +---------+
 *     |   |  DEAD   | <--------------------------------------|  DEAD   |
 *     |   +---------+                                        +---------+
 *     | leave(i' >= i)  (also from SUSPECT and DEAD)
 *     v
 *   +---------+     DEAD and LEFT: alive(i' > i) -> ALIVE (rejoin);
 *   |  LEFT   |     after reconnect_timeout -> reaped (removed, SWIM_EV_REAPED)
 *   +---------+
 *
 * Invariants: self is always in the table, ALIVE or LEFT; a SUSPECT member
 * has exactly one suspicion timer, no other member has one; a member with a
 * queued update has exactly one queue entry (newer updates replace it).
 *
 * Identity: a name is bound to a key. An alive message for a name held by an
 * ALIVE or SUSPECT member under another key is refused (SWIM_EV_CONFLICT).
 * A DEAD or LEFT record may be taken over by a new key (a re-issued node
 * certificate), whatever its incarnation; suspect, dead and leave messages
 * carry the key and are ignored unless it matches, so stale accusations of
 * the old key cannot hurt the new holder.
 *
 * Beyond SWIM and Lifeguard, four repairs keep a view from going stale when
 * infection-style gossip misses a node (docs/membership.md has the runs that
 * called for them): a suspect still suspect half-way to the minimum timeout
 * is pinged directly; an accusation older than what we know is answered
 * with the current record; an unknown or dead sender is asked who it is
 * (WHO), a dead one told so; a push-pull sender we hold dead is alive.
 */
#include "agent/swim/swim_internal.h"

const char *swim_status_name(swim_status st)
{
    switch (st) {
    case SWIM_ALIVE:
        return "alive";
    case SWIM_SUSPECT:
        return "suspect";
    case SWIM_DEAD:
        return "dead";
    case SWIM_LEFT:
        return "left";
    }
    return "unknown";
}

/* ---- hash tables (name -> member, key -> member) ------------------------- */

static uint64_t htab_hash(bool by_key, const void *k)
{
    return by_key ? hash_bytes(k, SWIM_KEY_LEN) : hash_name(k);
}

static bool htab_match(bool by_key, const member *m, const void *k)
{
    return by_key ? key_eq(m->key, k) : strcmp(m->name, k) == 0;
}

member *sw_htab_get(const htab *t, bool by_key, const void *k)
{
    if (!t->cap)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = htab_hash(by_key, k) & mask;; i = (i + 1) & mask) {
        member *m = t->slot[i];
        if (!m)
            return NULL;
        if (htab_match(by_key, m, k))
            return m;
    }
}

static void htab_put_raw(htab *t, bool by_key, member *m)
{
    size_t mask = t->cap - 1;
    size_t i = htab_hash(by_key, by_key ? (const void *)m->key : (const void *)m->name) & mask;
    while (t->slot[i])
        i = (i + 1) & mask;
    t->slot[i] = m;
}

/* Rebuilds the table for the current member set with room to grow. */
static int htab_rebuild(swim_t *s, htab *t, bool by_key, size_t need)
{
    size_t cap = 16;
    while (cap < need * 2 + 2)
        cap *= 2;
    member **slot = calloc(cap, sizeof(*slot));
    if (!slot)
        return -ENOMEM;
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
    for (size_t i = 0; i < s->nmembers; i++)
        htab_put_raw(t, by_key, s->members[i]);
    return 0;
}

static int htab_reserve(swim_t *s, size_t n)
{
    if (s->by_name.cap < n * 2 + 2 && htab_rebuild(s, &s->by_name, false, n) < 0)
        return -ENOMEM;
    if (s->by_key.cap < n * 2 + 2 && htab_rebuild(s, &s->by_key, true, n) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- members ------------------------------------------------------------- */

static void susp_clear(member *m)
{
    free(m->susp);
    m->susp = NULL;
}

static int set_blob(uint8_t **dst, uint16_t *dlen, const uint8_t *src, size_t len)
{
    if (*dlen == len && (len == 0 || memcmp(*dst, src, len) == 0))
        return 0;
    uint8_t *p = NULL;
    if (len) {
        p = malloc(len);
        if (!p)
            return -ENOMEM;
        memcpy(p, src, len);
    }
    free(*dst);
    *dst = p;
    *dlen = (uint16_t)len;
    return 1;
}

/* Starts the suspicion timer (Lifeguard): max timeout at first, shrinking as
 * independent accusers confirm. */
static void susp_start(swim_t *s, member *m, hms_time now, const char *from)
{
    susp_clear(m);
    suspicion *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return;
    size_t n = cluster_n(s);
    sp->k = SUSPICION_K;
    if (n < 2 || n - 2 < sp->k)
        sp->k = n >= 2 ? (uint32_t)(n - 2) : 0;
    sp->min = swim_suspicion_min(&s->p, n);
    sp->max = swim_suspicion_max(&s->p, n);
    if (now - m->added < HMS_MS(s->p.probe_interval_ms) * NEW_MEMBER_PERIODS) {
        /* A member that joined moments ago is not yet known to everyone,
         * and a member drops the sealed packets of keys it does not know:
         * its refutation reaches fewer nodes, and accusations from members
         * it has not heard of never reach it. A mass start, when every
         * agent is busy, is also when probes fail for no death. Half as
         * long again, so that a start is not where deaths are invented. */
        sp->min += sp->min / 2;
        sp->max += sp->max / 2;
    }
    sp->start = now;
    sp->n = 0;
    sp->accusers[0] = hash_name(from);
    sp->deadline = now + swim_suspicion_timeout(0, sp->k, sp->min, sp->max);
    sp->verify_at = now + sp->min / 2;
    m->susp = sp;
}

/* Returns true when `from` is a new independent accuser. */
static bool susp_confirm(member *m, const char *from)
{
    suspicion *sp = m->susp;
    if (!sp || sp->n >= sp->k)
        return false;
    uint64_t h = hash_name(from);
    for (uint32_t i = 0; i <= sp->n; i++)
        if (sp->accusers[i] == h)
            return false;
    sp->n++;
    sp->accusers[sp->n] = h;
    sp->deadline = sp->start + swim_suspicion_timeout(sp->n, sp->k, sp->min, sp->max);
    return true;
}

static int suspects_add(swim_t *s, member *m)
{
    if (s->nsuspects == s->suspects_cap) {
        size_t cap = s->suspects_cap ? s->suspects_cap * 2 : 16;
        member **a = realloc(s->suspects, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        s->suspects = a;
        s->suspects_cap = cap;
    }
    s->suspects[s->nsuspects++] = m;
    return 0;
}

static void suspects_del(swim_t *s, member *m)
{
    susp_clear(m);
    for (size_t i = 0; i < s->nsuspects; i++) {
        if (s->suspects[i] == m) {
            s->suspects[i] = s->suspects[--s->nsuspects];
            return;
        }
    }
}

/* The one place a member's {incarnation, status} changes. Keeps the
 * counters, timers and events in step. */
void sw_set_state(swim_t *s, member *m, uint64_t inc, swim_status st, hms_time now,
                  const char *from)
{
    swim_status old = m->status;
    m->inc = inc;
    if (old == st)
        return;
    s->counts[old]--;
    s->counts[st]++;
    m->status = st;
    m->since = now;
    /* A death and a leave are what users wait on: they go out at once
     * (see swim_tick), as does our own refutation (refute). Others'
     * refutations are not: in a storm of false suspicions (a mass start on
     * busy machines) they are many, and rounds four times as often for
     * each fed the load that made the storm. */
    if (st == SWIM_DEAD || st == SWIM_LEFT)
        s->urgent = m->urgent = true;
    if (old == SWIM_SUSPECT)
        suspects_del(s, m);
    if (st == SWIM_SUSPECT && suspects_add(s, m) < 0) {
        /* No room for the timer: treat the accusation as unheard. */
        s->counts[st]--;
        s->counts[old]++;
        m->status = old;
        return;
    }
    switch (st) {
    case SWIM_ALIVE:
        sw_emit(s, SWIM_EV_ALIVE, m);
        break;
    case SWIM_SUSPECT:
        s->st.suspicions++;
        susp_start(s, m, now, from ? from : s->self->name);
        sw_emit(s, SWIM_EV_SUSPECT, m);
        break;
    case SWIM_DEAD:
        s->st.deaths++;
        sw_emit(s, SWIM_EV_DEAD, m);
        break;
    case SWIM_LEFT:
        s->st.leaves++;
        sw_emit(s, SWIM_EV_LEFT, m);
        break;
    }
}

static member *member_add(swim_t *s, const char *name, const uint8_t *key, const hms_addr *addr,
                          uint64_t inc, hms_time now)
{
    if (htab_reserve(s, s->nmembers + 1) < 0)
        return NULL;
    if (s->nmembers == s->members_cap) {
        size_t cap = s->members_cap ? s->members_cap * 2 : 16;
        member **a = realloc(s->members, cap * sizeof(*a));
        if (!a)
            return NULL;
        s->members = a;
        s->members_cap = cap;
    }
    if (s->plen == s->pcap) {
        size_t cap = s->pcap ? s->pcap * 2 : 16;
        member **a = realloc(s->plist, cap * sizeof(*a));
        if (!a)
            return NULL;
        s->plist = a;
        s->pcap = cap;
    }
    member *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    memcpy(m->name, name, strnlen(name, SWIM_NAME_MAX));
    memcpy(m->key, key, SWIM_KEY_LEN);
    m->addr = *addr;
    m->inc = inc;
    m->status = SWIM_ALIVE;
    m->since = now;
    m->added = now;
    m->idx = (uint32_t)s->nmembers;
    s->members[s->nmembers++] = m;
    htab_put_raw(&s->by_name, false, m);
    htab_put_raw(&s->by_key, true, m);
    s->counts[SWIM_ALIVE]++;
    if (s->self) {
        /* New members go to a random place in the probe order, so the
         * round-robin bound holds for them too. */
        size_t pos = rng_below(&s->r, s->plen + 1);
        memmove(s->plist + pos + 1, s->plist + pos, (s->plen - pos) * sizeof(*s->plist));
        s->plist[pos] = m;
        s->plen++;
        if (pos < s->pidx)
            s->pidx++;
    }
    return m;
}

static void member_free(member *m)
{
    susp_clear(m);
    free(m->meta);
    free(m->cert);
    free(m->useqs);
    free(m->view);
    free(m);
}

void sw_member_remove(swim_t *s, member *m, hms_time now)
{
    sw_emit(s, SWIM_EV_REAPED, m);
    if (m->bc)
        sw_bc_free(s, m->bc);
    if (s->probe.target == m) {
        s->probe.active = false;
        s->probe.target = NULL;
    }
    for (size_t i = 0; i < s->plen; i++) {
        if (s->plist[i] == m) {
            memmove(s->plist + i, s->plist + i + 1, (s->plen - i - 1) * sizeof(*s->plist));
            s->plen--;
            if (i < s->pidx)
                s->pidx--;
            break;
        }
    }
    if (m->status == SWIM_SUSPECT)
        suspects_del(s, m);
    s->counts[m->status]--;
    size_t i = m->idx;
    s->members[i] = s->members[--s->nmembers];
    s->members[i]->idx = (uint32_t)i;
    htab_rebuild(s, &s->by_name, false, s->nmembers);
    htab_rebuild(s, &s->by_key, true, s->nmembers);
    member_free(m);
    (void)now;
}

static int admit(swim_t *s, const gossip_msg *g)
{
    if (!s->admit)
        return 0;
    swim_member_info *info = calloc(1, sizeof(*info));
    if (!info)
        return -ENOMEM;
    memcpy(info->name, g->name, sizeof(info->name));
    memcpy(info->key, g->key, SWIM_KEY_LEN);
    info->addr = g->addr;
    info->incarnation = g->incarnation;
    info->meta_len = g->meta_len;
    if (g->meta_len)
        memcpy(info->meta, g->meta, g->meta_len);
    info->cert_len = g->cert_len;
    if (g->cert_len)
        memcpy(info->cert, g->cert, g->cert_len);
    int rc = s->admit(s->admit_ctx, info);
    free(info);
    return rc;
}

static void conflict(swim_t *s, const gossip_msg *g)
{
    s->st.name_conflicts++;
    swim_member_info *info = calloc(1, sizeof(*info));
    if (!info)
        return;
    memcpy(info->name, g->name, sizeof(info->name));
    memcpy(info->key, g->key, SWIM_KEY_LEN);
    info->addr = g->addr;
    info->incarnation = g->incarnation;
    sw_emit_info(s, SWIM_EV_CONFLICT, info, NULL, 0, 0);
}

/* Our own incarnation rises above `above`; the driver persists it. */
static void self_bump(swim_t *s, uint64_t above, hms_time now)
{
    member *me = s->self;
    sw_set_state(s, me, (above >= me->inc ? above : me->inc) + 1, me->status, now, NULL);
    sw_emit(s, SWIM_EV_INCARNATION, me);
    if (me->status == SWIM_ALIVE)
        sw_bc_alive_light(s, me);
    else
        sw_bc_state(s, me, me->name);
}

static void awareness_add(swim_t *s, int delta)
{
    int64_t v = (int64_t)s->awareness + delta;
    int64_t max = s->p.awareness_max ? (int64_t)s->p.awareness_max - 1 : 0;
    if (v < 0)
        v = 0;
    if (v > max)
        v = max;
    s->awareness = (uint32_t)v;
}

/* Someone says we are suspect, dead or gone at incarnation inc. */
static void refute(swim_t *s, uint64_t inc, hms_time now)
{
    if (inc < s->self->inc)
        return;
    if (s->leaving) {
        /* Repeat the leave above the accusation instead of coming back. */
        self_bump(s, inc, now);
        return;
    }
    s->st.refutations++;
    awareness_add(s, 1);
    s->urgent = s->self->urgent = true;
    self_bump(s, inc, now);
}

/* ---- handling of membership messages ------------------------------------ */

/* The sender of the current packet accused m with an incarnation that m
 * already refuted: it missed the refutation, which infection-style gossip
 * can do under loss once every retransmission is spent. Remember to send m's
 * current record straight back, so a stale view cannot outlive the
 * suspicion timer. */
static void stale(swim_t *s, member *m)
{
    for (size_t i = 0; i < s->nfix; i++)
        if (s->fix[i] == m)
            return;
    if (s->nfix < FIX_MAX)
        s->fix[s->nfix++] = m;
}

static void member_bc_dup(swim_t *s, member *m, uint64_t inc)
{
    bcast *b = m->bc;
    if (!b || !b->join || m->inc != inc || m->status != SWIM_ALIVE)
        return;
    if (++b->dups >= JOIN_DUP_STOP)
        sw_bc_free(s, b);
}

/* rebroadcast_new: whether a member new to us is gossiped on. Push-pull
 * merges pass false for everyone but the sender itself: a joiner would
 * otherwise re-gossip the whole cluster it just pulled, which every other
 * member already knows. Changes to known members are always passed on. */
void sw_on_alive(swim_t *s, const gossip_msg *g, hms_time now, bool rebroadcast_new)
{
    member *m = sw_htab_get(&s->by_name, false, g->name);
    if (m && m != s->self && g->incarnation <= m->inc && key_eq(m->key, g->key)) {
        /* Old news: the common case, one lookup. A join we are still
         * passing on that others keep telling us is widespread already:
         * after a few copies we stop (Demers et al.'s rumour mongering with
         * feedback). A join's ALIVE carries a certificate, two or three fill
         * a packet, and every member retransmitting every join the full
         * count kept a 128-node cluster busy for a minute after it formed.
         * Whoever missed it still learns it from the others' copies, the
         * joiner's catch-up push-pulls and WHO. Refutations and accusations
         * are never cut short. */
        member_bc_dup(s, m, g->incarnation);
        return;
    }
    if (m == s->self) {
        if (!key_eq(g->key, m->key)) {
            /* Another key claims our name. Members that know us refuse it;
             * outbidding its incarnation would only start a race. */
            conflict(s, g);
            return;
        }
        bool same = hms_addr_equal(&g->addr, &m->addr) && g->meta_len == m->meta_len &&
                    (!g->meta_len || memcmp(g->meta, m->meta, g->meta_len) == 0);
        if (g->incarnation > m->inc || (g->incarnation == m->inc && !same))
            refute(s, g->incarnation, now);
        return;
    }
    member *holder = sw_htab_get(&s->by_key, true, g->key);
    if (holder && holder->expelled) {
        s->st.drop_refused++;
        return;
    }
    if (holder && holder != m) {
        /* The key already belongs to another name. */
        if (holder->status == SWIM_ALIVE || holder->status == SWIM_SUSPECT) {
            conflict(s, g);
            return;
        }
    }
    if (!m) {
        if (holder)
            return; /* the key's old name is dead or left: wait until reaped */
        if (admit(s, g) < 0) {
            s->st.drop_refused++;
            return;
        }
        m = member_add(s, g->name, g->key, &g->addr, g->incarnation, now);
        if (!m)
            return;
        set_blob(&m->meta, &m->meta_len, g->meta, g->meta_len);
        set_blob(&m->cert, &m->cert_len, g->cert, g->cert_len);
        sw_emit(s, SWIM_EV_JOIN, m);
        if (rebroadcast_new) {
            sw_bc_state(s, m, NULL);
            if (m->bc)
                m->bc->join = true;
        }
        return;
    }
    bool new_key = !key_eq(m->key, g->key);
    if (new_key) {
        if (m->status == SWIM_ALIVE || m->status == SWIM_SUSPECT) {
            conflict(s, g);
            return;
        }
        if (holder)
            return;
    } else if (g->incarnation <= m->inc) {
        return;
    }
    /* An ALIVE without a certificate about a member we hold one for leaves
     * it as it is (sw_bc_alive_light); a new key always brings its own. */
    bool keep_cert = !new_key && g->cert_len == 0 && m->cert_len > 0;
    bool cert_changed = !keep_cert && (g->cert_len != m->cert_len ||
                                       (g->cert_len && memcmp(g->cert, m->cert, g->cert_len) != 0));
    if ((new_key || cert_changed) && admit(s, g) < 0) {
        s->st.drop_refused++;
        return;
    }
    if (new_key) {
        /* A new identity under the old name: what was refused was the old
         * key, and the old key now matches nothing here. */
        memcpy(m->key, g->key, SWIM_KEY_LEN);
        htab_rebuild(s, &s->by_key, true, s->nmembers);
        m->nuseq = 0;
        m->expelled = false;
    }
    bool changed = new_key || !hms_addr_equal(&m->addr, &g->addr);
    m->addr = g->addr;
    changed |= set_blob(&m->meta, &m->meta_len, g->meta, g->meta_len) != 0;
    if (!keep_cert)
        changed |= set_blob(&m->cert, &m->cert_len, g->cert, g->cert_len) != 0;
    swim_status old = m->status;
    sw_set_state(s, m, g->incarnation, SWIM_ALIVE, now, NULL);
    if (changed && old == SWIM_ALIVE)
        sw_emit(s, SWIM_EV_UPDATE, m);
    if (new_key || cert_changed)
        sw_bc_state(s, m, NULL);
    else
        sw_bc_alive_light(s, m);
}

/* A full record (from a push-pull) of a member we never knew, which the
 * sender has held dead or left for `age`: listed as such, with its address,
 * so every node ends up showing the same failure whether or not it saw the
 * member alive first (a node that joined moments before the member died may
 * have missed its join). The status dates from the sender's view, so the
 * record is reaped when everyone else reaps it; one the sender should have
 * forgotten already is not taken, or records would circulate forever.
 * Nothing is gossiped: it is old news to the others. */
void sw_on_gone_unknown(swim_t *s, const gossip_msg *g, swim_status st, hms_time age, hms_time now)
{
    if (age >= HMS_MS(s->p.reconnect_timeout_ms) ||
        sw_htab_get(&s->by_name, false, g->name) || sw_htab_get(&s->by_key, true, g->key))
        return;
    if (admit(s, g) < 0) {
        s->st.drop_refused++;
        return;
    }
    member *m = member_add(s, g->name, g->key, &g->addr, g->incarnation, now);
    if (!m)
        return;
    set_blob(&m->meta, &m->meta_len, g->meta, g->meta_len);
    set_blob(&m->cert, &m->cert_len, g->cert, g->cert_len);
    sw_set_state(s, m, g->incarnation, st, now, NULL);
    m->since = now > age ? now - age : 0;
}

void sw_on_suspect(swim_t *s, const char *name, const uint8_t *key, uint64_t inc, const char *from,
                   hms_time now)
{
    member *m = sw_htab_get(&s->by_name, false, name);
    if (!m || !key_eq(m->key, key))
        return;
    if (m == s->self) {
        if (inc < m->inc)
            stale(s, m);
        refute(s, inc, now);
        return;
    }
    if (inc < m->inc) {
        if (m->status == SWIM_ALIVE)
            stale(s, m);
        return;
    }
    if (m->status == SWIM_SUSPECT) {
        if (inc > m->inc) {
            /* An accusation of a newer incarnation is a new suspicion. */
            sw_set_state(s, m, inc, SWIM_SUSPECT, now, from);
            susp_start(s, m, now, from);
            sw_bc_state(s, m, from);
            return;
        }
        if (susp_confirm(m, from)) {
            /* Re-gossip so the confirmation reaches the others too. */
            gossip_msg g;
            sw_msg_status(m, GOSSIP_SUSPECT, from, &g);
            sw_bc_member(s, m, &g);
        }
        return;
    }
    if (m->status != SWIM_ALIVE)
        return;
    sw_set_state(s, m, inc, SWIM_SUSPECT, now, from);
    sw_bc_state(s, m, from);
}

void sw_on_dead(swim_t *s, const char *name, const uint8_t *key, uint64_t inc, const char *from,
                hms_time now, bool leave)
{
    member *m = sw_htab_get(&s->by_name, false, name);
    if (!m || !key_eq(m->key, key))
        return;
    if (m == s->self) {
        if (inc < m->inc && !s->leaving)
            stale(s, m);
        if (!s->leaving)
            refute(s, inc, now);
        return;
    }
    if (inc < m->inc) {
        if (m->status == SWIM_ALIVE && !leave)
            stale(s, m);
        return;
    }
    if (leave) {
        if (m->status == SWIM_LEFT)
            return;
    } else if (m->status == SWIM_DEAD || m->status == SWIM_LEFT) {
        return;
    }
    sw_set_state(s, m, inc, leave ? SWIM_LEFT : SWIM_DEAD, now, from);
    sw_bc_state(s, m, from);
}

static void on_user(swim_t *s, const gossip_msg *g)
{
    member *o = sw_htab_get(&s->by_name, false, g->name);
    if (!o || o == s->self)
        return; /* origins must be known members; our own echo is old news */
    for (uint8_t i = 0; i < o->nuseq; i++) {
        if (o->useqs[i].kind == g->user_kind) {
            if (g->user_seq <= o->useqs[i].seq)
                return;
            o->useqs[i].seq = g->user_seq;
            goto fresh;
        }
    }
    if (o->nuseq >= USEQ_MAX)
        return;
    useq *u = realloc(o->useqs, (o->nuseq + 1u) * sizeof(*u));
    if (!u)
        return;
    o->useqs = u;
    u[o->nuseq].kind = g->user_kind;
    u[o->nuseq].seq = g->user_seq;
    o->nuseq++;
fresh:;
    swim_member_info *info = sw_info_new(s);
    if (info) {
        sw_fill_info(o, info);
        sw_emit_info(s, SWIM_EV_USER, info, g->data, g->data_len, g->user_kind);
    }
    sw_bc_user(s, g);
}

/* ---- probing ------------------------------------------------------------- */

static bool probe_key_is_relay(const swim_t *s, const uint8_t *key)
{
    for (uint32_t i = 0; i < s->probe.nrelays; i++)
        if (key_eq(s->probe.relay_keys[i], key))
            return true;
    return false;
}

static member *next_probe_target(swim_t *s)
{
    for (size_t tries = 0; tries < s->plen + 1; tries++) {
        if (s->pidx >= s->plen) {
            /* Wrap: a fresh shuffle bounds the gap between two probes of
             * the same member to two rounds. */
            for (size_t i = s->plen; i > 1; i--) {
                size_t j = rng_below(&s->r, i);
                member *t = s->plist[i - 1];
                s->plist[i - 1] = s->plist[j];
                s->plist[j] = t;
            }
            s->pidx = 0;
            if (s->plen == 0)
                return NULL;
        }
        member *m = s->plist[s->pidx++];
        if (m->status == SWIM_ALIVE || m->status == SWIM_SUSPECT)
            return m;
    }
    return NULL;
}

static void send_ping(swim_t *s, member *target, uint32_t seq, const hms_addr *to,
                      const uint8_t *key)
{
    gossip_msg g[2];
    size_t n = 0;
    /* Buddy system: a suspect hears of it first thing, so it can refute. */
    if (target && target->status == SWIM_SUSPECT)
        sw_msg_status(target, GOSSIP_SUSPECT, s->self->name, &g[n++]);
    memset(&g[n], 0, sizeof(g[n]));
    g[n].type = GOSSIP_PING;
    g[n].seq = seq;
    memcpy(g[n].target_key, key, SWIM_KEY_LEN);
    n++;
    sw_send_pkt(s, to, key, g, n);
}

static void probe_start(swim_t *s, hms_time now)
{
    member *t = next_probe_target(s);
    s->next_probe = now + scaled(s, s->p.probe_interval_ms);
    if (!t)
        return;
    s->probe.active = true;
    s->probe.acked = false;
    s->probe.indirect_sent = false;
    s->probe.target = t;
    s->probe.seq = ++s->seq;
    hms_time to = scaled(s, s->p.probe_timeout_ms);
    hms_time iv = scaled(s, s->p.probe_interval_ms);
    s->probe.timeout_at = now + (to < iv ? to : iv / 2);
    s->probe.end_at = now + iv;
    s->probe.nrelays = 0;
    s->probe.nacks = 0;
    s->st.probes++;
    send_ping(s, t, s->probe.seq, &t->addr, t->key);
}

static void probe_indirect(swim_t *s)
{
    member *t = s->probe.target;
    uint32_t k = s->p.indirect_checks < INDIRECT_MAX ? s->p.indirect_checks : INDIRECT_MAX;
    s->probe.indirect_sent = true;
    /* The relays answer within their own probe timeout; past that and half
     * as much again, silence is the answer (earlier than the period end,
     * which only paces the next probe). */
    hms_time to = scaled(s, s->p.probe_timeout_ms);
    s->probe.give_up_at = s->probe.timeout_at + to + to / 2;
    if (s->probe.give_up_at > s->probe.end_at)
        s->probe.give_up_at = s->probe.end_at;
    /* A second direct ping alongside the indirect ones (memberlist sends a
     * TCP ping at this point): a lost datagram on the direct path alone no
     * longer makes a suspect. */
    send_ping(s, t, s->probe.seq, &t->addr, t->key);
    /* Pick k distinct alive relays by random draws; bounded attempts. */
    for (size_t tries = 0; s->probe.nrelays < k && tries < 4 * (size_t)k + 8; tries++) {
        if (s->nmembers < 3)
            break;
        member *r = s->members[rng_below(&s->r, s->nmembers)];
        if (r == s->self || r == t || r->status != SWIM_ALIVE || probe_key_is_relay(s, r->key))
            continue;
        memcpy(s->probe.relay_keys[s->probe.nrelays++], r->key, SWIM_KEY_LEN);
        gossip_msg g;
        memset(&g, 0, sizeof(g));
        g.type = GOSSIP_PING_REQ;
        g.seq = s->probe.seq;
        memcpy(g.target_key, t->key, SWIM_KEY_LEN);
        g.want_nack = true;
        s->st.indirect_probes++;
        sw_send_pkt(s, &r->addr, r->key, &g, 1);
    }
}

static void probe_finish(swim_t *s, hms_time now)
{
    member *t = s->probe.target;
    s->probe.active = false;
    if (s->probe.acked || !t)
        return;
    /* Lifeguard: missing nacks mean we, not the target, may be the problem. */
    if (s->probe.nrelays > 0) {
        if (s->probe.nacks < s->probe.nrelays)
            awareness_add(s, (int)(s->probe.nrelays - s->probe.nacks));
    } else {
        awareness_add(s, 1);
    }
    if (s->leaving)
        return;
    /* We joined moments ago, no relay answered, not even with a NACK, and
     * the target has never sent us a packet: it may simply not know us yet
     * (a member drops sealed packets from a key it does not know), nor may
     * the relays. Accusing then set off a storm of false suspicions,
     * refutations and their gossip in every large join. The health score
     * above has risen; members to whom the target's silence says something
     * do the accusing. */
    if (s->probe.nrelays > 0 && s->probe.nacks == 0 && !t->heard && s->joined &&
        now - s->joined_at < HMS_MS(s->p.probe_interval_ms) * JOIN_QUIET_PERIODS)
        return;
    bool was_alive = t->status == SWIM_ALIVE;
    sw_on_suspect(s, t->name, t->key, t->inc, s->self->name, now);
    /* The first accuser tells the accused at once (a ping carrying the
     * accusation, as the verification pings do): a live member refutes
     * within a round trip instead of when gossip happens to reach it, up
     * to half the minimum timeout later. A member that is then paused
     * (a stop, a swap storm) had its refutation out before it stopped. */
    if (was_alive && t->status == SWIM_SUSPECT && t->susp)
        t->susp->verify_at = now;
}

/* ---- packets ------------------------------------------------------------- */

static relay *relay_by_seq(swim_t *s, uint32_t seq)
{
    for (int i = 0; i < RELAY_SLOTS; i++)
        if (s->relays[i].used && s->relays[i].our_seq == seq)
            return &s->relays[i];
    return NULL;
}

static void send_simple(swim_t *s, uint8_t type, uint32_t seq, const hms_addr *to,
                        const uint8_t *key)
{
    gossip_msg g;
    memset(&g, 0, sizeof(g));
    g.type = type;
    g.seq = seq;
    sw_send_pkt(s, to, key, &g, 1);
}

static void on_ping_req(swim_t *s, const gossip_msg *g, hms_time now, const hms_addr *from,
                        const uint8_t *key)
{
    if (!sw_htab_get(&s->by_key, true, key)) {
        s->st.drop_unknown_sender++;
        return;
    }
    member *t = sw_htab_get(&s->by_key, true, g->target_key);
    if (!t || t == s->self) {
        if (g->want_nack)
            send_simple(s, GOSSIP_NACK, g->seq, from, key);
        return;
    }
    relay *r = NULL;
    for (int i = 0; i < RELAY_SLOTS; i++) {
        if (!s->relays[i].used || s->relays[i].expire_at <= now) {
            r = &s->relays[i];
            break;
        }
    }
    if (!r) {
        s->st.drop_refused++;
        return;
    }
    memset(r, 0, sizeof(*r));
    r->used = true;
    r->our_seq = ++s->seq;
    r->their_seq = g->seq;
    r->want_nack = g->want_nack;
    memcpy(r->target_key, t->key, SWIM_KEY_LEN);
    memcpy(r->req_key, key, SWIM_KEY_LEN);
    r->req_addr = *from;
    r->nack_at = now + HMS_MS(s->p.probe_timeout_ms);
    r->expire_at = now + HMS_MS(s->p.probe_interval_ms) * 2;
    send_ping(s, NULL, r->our_seq, &t->addr, t->key);
}

static void on_ack(swim_t *s, const gossip_msg *g, bool nack, const uint8_t *key)
{
    if (s->probe.active && g->seq == s->probe.seq) {
        member *t = s->probe.target;
        bool from_target = t && key_eq(key, t->key);
        if (!from_target && !probe_key_is_relay(s, key)) {
            s->st.drop_wrong_target++;
            return;
        }
        if (nack) {
            if (!from_target)
                s->probe.nacks++;
            s->st.nacks++;
            return;
        }
        s->st.acks++;
        if (!s->probe.acked) {
            s->probe.acked = true;
            awareness_add(s, -1);
        }
        return;
    }
    if (nack)
        return;
    for (size_t i = 0; i < s->nsuspects; i++) {
        suspicion *sp = s->suspects[i]->susp;
        if (sp && sp->verify_check && sp->verify_seq == g->seq &&
            key_eq(key, s->suspects[i]->key)) {
            sp->verify_check = 0; /* it answered: no confirmation from us */
            return;
        }
    }
    relay *r = relay_by_seq(s, g->seq);
    if (!r)
        return; /* late ack of a finished probe */
    if (!key_eq(key, r->target_key)) {
        s->st.drop_wrong_target++;
        return;
    }
    send_simple(s, GOSSIP_ACK, r->their_seq, &r->req_addr, r->req_key);
    r->used = false;
}

/* A member we do not know, or hold dead, talks to us: we missed its join or
 * its refutation. Ask it for its record, at most once per probe interval per
 * key. A member we hold dead is also told so, so that it refutes if it never
 * heard; its answer then carries the new incarnation. */
static void ask_who(swim_t *s, hms_time now, const hms_addr *from, const uint8_t *key,
                    const member *dead)
{
    hms_time quiet = HMS_MS(s->p.probe_interval_ms);
    for (size_t i = 0; i < WHO_RING; i++)
        if (s->who[i].at && now - s->who[i].at < quiet && key_eq(s->who[i].key, key))
            return;
    memcpy(s->who[s->who_next].key, key, SWIM_KEY_LEN);
    s->who[s->who_next].at = now ? now : 1;
    s->who_next = (s->who_next + 1) % WHO_RING;
    gossip_msg g[2];
    size_t n = 0;
    if (dead)
        sw_msg_status(dead, GOSSIP_DEAD, s->self->name, &g[n++]);
    memset(&g[n], 0, sizeof(g[n]));
    g[n++].type = GOSSIP_WHO;
    sw_send_pkt(s, from, key, g, n);
}

void swim_recv(swim_t *s, hms_time now, const hms_addr *from, const uint8_t key[SWIM_KEY_LEN],
               const uint8_t *pkt, size_t len)
{
    sw_out_gc(s);
    s->st.packets_in++;
    s->st.bytes_in += len;
    if (!key || !from) {
        s->st.drop_malformed++;
        return;
    }
    member *sender = sw_htab_get(&s->by_key, true, key);
    if (sender && sender->expelled) {
        s->st.drop_refused++;
        return;
    }
    if (sender)
        sender->heard = true;
    size_t n;
    if (!from || !pkt || gossip_decode_packet(pkt, len, s->msgs, MSG_SCRATCH, &n) < 0) {
        s->st.drop_malformed++;
        return;
    }
    s->nfix = 0;
    s->rx_key = key;
    for (size_t i = 0; i < n; i++) {
        const gossip_msg *g = &s->msgs[i];
        switch (g->type) {
        case GOSSIP_PING:
            if (!key_eq(g->target_key, s->self->key)) {
                s->st.drop_wrong_target++;
                break;
            }
            send_simple(s, GOSSIP_ACK, g->seq, from, key);
            break;
        case GOSSIP_PING_REQ:
            on_ping_req(s, g, now, from, key);
            break;
        case GOSSIP_ACK:
            on_ack(s, g, false, key);
            break;
        case GOSSIP_NACK:
            on_ack(s, g, true, key);
            break;
        case GOSSIP_ALIVE:
            sw_on_alive(s, g, now, true);
            break;
        case GOSSIP_SUSPECT:
            sw_on_suspect(s, g->name, g->key, g->incarnation, g->from, now);
            break;
        case GOSSIP_DEAD:
            sw_on_dead(s, g->name, g->key, g->incarnation, g->from, now, false);
            break;
        case GOSSIP_LEAVE:
            sw_on_dead(s, g->name, g->key, g->incarnation, g->name, now, true);
            break;
        case GOSSIP_USER:
            on_user(s, g);
            break;
        case GOSSIP_WHO:
            if (!s->leaving)
                stale(s, s->self);
            break;
        default:
            break;
        }
    }
    s->rx_key = NULL;
    sender = sw_htab_get(&s->by_key, true, key);
    if (!sender)
        ask_who(s, now, from, key, NULL);
    else if (sender->status == SWIM_DEAD && !s->leaving)
        ask_who(s, now, from, key, sender);
    if (s->nfix) {
        gossip_msg fix[FIX_MAX];
        size_t k = 0;
        for (size_t i = 0; i < s->nfix; i++)
            if (s->fix[i]->status == SWIM_ALIVE)
                sw_msg_alive(s->fix[i], &fix[k++]);
        s->nfix = 0;
        if (k)
            sw_send_pkt(s, from, key, fix, k);
    }
}

member *sw_random_member(swim_t *s, swim_status a, swim_status b)
{
    for (int tries = 0; tries < 16 && s->nmembers > 1; tries++) {
        member *m = s->members[rng_below(&s->r, s->nmembers)];
        if (m != s->self && (m->status == a || m->status == b) && !m->expelled)
            return m;
    }
    /* Few eligible members: fall back to a scan from a random start. */
    size_t start = rng_below(&s->r, s->nmembers);
    for (size_t i = 0; i < s->nmembers; i++) {
        member *m = s->members[(start + i) % s->nmembers];
        if (m != s->self && (m->status == a || m->status == b) && !m->expelled)
            return m;
    }
    return NULL;
}

/* ---- gossip rounds ------------------------------------------------------- */

/* Whether the queue holds something worth packets of their own: news
 * that has not yet had its first retransmit_mult sends (a membership update:
 * detection and joins wait on its first spread) or its first push to
 * gossip_nodes members (a user broadcast of ours). The later retransmits of
 * every update, and other members' user broadcasts, ride only on the pings,
 * acks and rounds sent anyway: every member retransmitting everything
 * limit times in packets of their own kept a 128-node cluster sending 15
 * packets a second each for half a minute after it formed. The early sends
 * do the spreading (the infection doubles each round); the later ones are
 * the insurance against loss, and probes carry them within seconds. */
/* With to_key, only news that would be news to that member counts: a
 * round sends no packet to a member for whom only later retransmits are
 * left, or the packets of a round would carry old news while the fresh
 * item waits for a member that lacks it. Urgent news (a death, a leave, a
 * refutation of ours) counts until twice as many sends (urgent_due). */
static bool round_due(swim_t *s, const uint8_t *to_key)
{
    /* A leaving node no longer probes: rounds carry all of its leave. */
    if (s->leaving && s->self->bc)
        return true;
    uint64_t self_origin = hash_name(s->self->name);
    uint32_t fresh = s->p.retransmit_mult > s->p.gossip_nodes ? s->p.retransmit_mult
                                                                : s->p.gossip_nodes;
    for (uint32_t t = 0; t < 2 * s->p.retransmit_mult && t < BC_BUCKETS; t++)
        for (const bcast *b = s->bhead[t]; b; b = b->next)
            if (((t < fresh && (b->kind == BC_MEMBER ||
                                (b->origin == self_origin && t < s->p.gossip_nodes))) ||
                 b->urgent) &&
                sw_bc_wanted(s, b, to_key))
                return true;
    return false;
}

/* Whether urgent news has not had its first sends yet: twice the count of
 * other news. Pushed to random members, n ln n copies in all reach every
 * member with fair odds; retransmit_mult (4) copies from each of 128 nodes
 * is just that, and one node in most runs waited 0.3-0.7 s for a later
 * copy riding on a probe. */
static bool urgent_due(const swim_t *s)
{
    for (uint32_t t = 0; t < 2 * s->p.retransmit_mult && t < BC_BUCKETS; t++)
        for (const bcast *b = s->bhead[t]; b; b = b->next)
            if (b->urgent)
                return true;
    return false;
}

static void gossip_round(swim_t *s, hms_time now)
{
    if (s->bcount == 0 || !round_due(s, NULL))
        return;
    /* Recently dead members still get gossip, so a falsely accused node
     * hears of it and refutes. */
    hms_time dead_window = HMS_MS(s->p.probe_interval_ms) * 60;
    member *sent[INDIRECT_MAX];
    uint32_t nsent = 0;
    for (uint32_t k = 0; k < s->p.gossip_nodes && k < INDIRECT_MAX && s->bcount; k++) {
        member *m = NULL;
        for (int tries = 0; tries < 8 && s->nmembers > 1; tries++) {
            member *c = s->members[rng_below(&s->r, s->nmembers)];
            bool again = false; /* distinct targets: a second copy to one is wasted */
            for (uint32_t j = 0; j < nsent; j++)
                again |= sent[j] == c;
            if (c == s->self || c->expelled || again || !round_due(s, c->key))
                continue;
            if (c->status == SWIM_ALIVE || c->status == SWIM_SUSPECT ||
                (c->status == SWIM_DEAD && now - c->since < dead_window)) {
                m = c;
                break;
            }
        }
        if (!m)
            return;
        sent[nsent++] = m;
        sw_send_pkt(s, &m->addr, m->key, NULL, 0);
    }
}

/* ---- timers -------------------------------------------------------------- */

static hms_time min_t(hms_time a, hms_time b)
{
    return a < b ? a : b;
}

hms_time swim_tick(swim_t *s, hms_time now)
{
    sw_out_gc(s);
    /* Suspicion timers. */
    for (size_t i = 0; i < s->nsuspects && !s->leaving; i++) {
        suspicion *sp = s->suspects[i]->susp;
        if (sp && sp->verify_check && now >= sp->verify_check) {
            /* Our own look found it silent too: an independent confirmation,
             * gossiped like one from a failed probe. */
            sp->verify_check = 0;
            member *m = s->suspects[i];
            sw_on_suspect(s, m->name, m->key, m->inc, s->self->name, now);
        }
    }
    for (size_t i = 0; i < s->nsuspects && !s->leaving;) {
        member *m = s->suspects[i];
        if (m->susp && now >= m->susp->deadline &&
            now - m->susp->deadline > HMS_MS(s->p.probe_timeout_ms)) {
            /* Found well past its time (the deadline is asked for exactly):
             * this node was stalled (stopped, swapped out), and what
             * reached it meanwhile, a refutation perhaps, still waits in
             * its socket. Look at that first. */
            m->susp->deadline = now + 2 * HMS_MS(s->p.probe_timeout_ms);
            i++;
            continue;
        }
        if (m->susp && now >= m->susp->deadline) {
            sw_set_state(s, m, m->inc, SWIM_DEAD, now, s->self->name); /* removes it */
            sw_bc_state(s, m, s->self->name);
            continue;
        }
        if (m->susp && now >= m->susp->verify_at) {
            /* Still suspect halfway to the shortest timeout: ask the member
             * itself, with the accusation (buddy system), and again every
             * quarter of it. A live one answers with its refutation, which
             * this node may have missed under loss; a dead one costs a
             * packet or two before it is declared. */
            hms_time iv = m->susp->min / 4;
            if (iv < 2 * HMS_MS(s->p.probe_timeout_ms))
                iv = 2 * HMS_MS(s->p.probe_timeout_ms);
            m->susp->verify_at = now + iv;
            m->susp->verify_seq = ++s->seq;
            m->susp->verify_check = now + 2 * scaled(s, s->p.probe_timeout_ms);
            send_ping(s, m, m->susp->verify_seq, &m->addr, m->key);
        }
        i++;
    }
    /* Relays. */
    for (int i = 0; i < RELAY_SLOTS; i++) {
        relay *r = &s->relays[i];
        if (!r->used)
            continue;
        if (!r->nacked && now >= r->nack_at) {
            r->nacked = true;
            if (r->want_nack)
                send_simple(s, GOSSIP_NACK, r->their_seq, &r->req_addr, r->req_key);
        }
        if (now >= r->expire_at)
            r->used = false;
    }
    /* Probe. */
    if (s->probe.active && !s->probe.acked && !s->probe.indirect_sent && now >= s->probe.timeout_at)
        probe_indirect(s);
    if (s->probe.active && !s->probe.acked && s->probe.indirect_sent &&
        (now >= s->probe.give_up_at || (s->probe.nrelays && s->probe.nacks >= s->probe.nrelays)))
        probe_finish(s, now);
    if (s->probe.active && now >= s->probe.end_at)
        probe_finish(s, now);
    if (!s->leaving && !s->probe.active && now >= s->next_probe)
        probe_start(s, now);
    /* Gossip. Urgent news (a death, a leave, our own refutation) gets a
     * round of its own at once, and every member that hears it first does the same:
     * it crosses the cluster at network speed, a few hops of a millisecond,
     * instead of a few rounds of gossip_interval (0.2-0.4 s for a death at
     * 128 members, which the slowest agents waited on). Its first
     * retransmit_mult sends go in rounds a quarter interval apart, and no
     * round comes sooner than that, so a burst of news cannot flood. */
    if (s->urgent && s->awareness > 0) {
        /* Lifeguard: a node missing acks may be the slow one; it does not
         * hasten its rounds. */
        s->urgent = false;
    }
    if (s->urgent) {
        s->urgent = false;
        hms_time soonest = s->last_round + HMS_MS(s->p.gossip_interval_ms) / 4;
        hms_time at = now > soonest ? now : soonest;
        if (at < s->next_gossip)
            s->next_gossip = at;
    }
    if (now >= s->next_gossip) {
        gossip_round(s, now);
        s->last_round = now;
        s->next_gossip =
            now + HMS_MS(s->p.gossip_interval_ms) / (urgent_due(s) && !s->awareness ? 4 : 1);
    }
    /* Push-pull with a random alive member; slower in big clusters, as
     * memberlist does, so the total sync load grows like n log n. */
    if (now >= s->next_pushpull) {
        size_t n = cluster_n(s);
        hms_time iv = HMS_MS(s->p.pushpull_interval_ms);
        if (n > 32)
            iv *= (hms_time)ceil(log2((double)n) - log2(32.0)) + 1;
        if (s->catchups) {
            s->catchups--;
            s->catchup_gap *= 2;
            if (s->catchup_gap < iv)
                iv = s->catchup_gap + rng_below(&s->r, s->catchup_gap);
        }
        s->next_pushpull = now + iv;
        member *m = s->leaving ? NULL : sw_random_member(s, SWIM_ALIVE, SWIM_ALIVE);
        if (m)
            sw_pp_start(s, now, &m->addr, m->key, false, PP_PERIODIC, -1);
    }
    if (now >= s->next_reconnect) {
        s->next_reconnect = now + HMS_MS(s->p.reconnect_interval_ms);
        sw_reconnect_tick(s, now);
    }
    if (!s->leaving)
        sw_seeds_tick(s, now);

    hms_time next = min_t(s->next_gossip, s->next_pushpull);
    next = min_t(next, s->next_reconnect);
    if (!s->leaving)
        next = min_t(next, s->next_probe);
    if (s->probe.active) {
        next = min_t(next, s->probe.end_at);
        if (!s->probe.acked && !s->probe.indirect_sent)
            next = min_t(next, s->probe.timeout_at);
        if (!s->probe.acked && s->probe.indirect_sent)
            next = min_t(next, s->probe.give_up_at);
    }
    for (size_t i = 0; i < s->nsuspects && !s->leaving; i++) {
        suspicion *sp = s->suspects[i]->susp;
        if (sp)
            next = min_t(next, min_t(sp->deadline, sp->verify_at));
        if (sp && sp->verify_check)
            next = min_t(next, sp->verify_check);
    }
    for (int i = 0; i < RELAY_SLOTS; i++) {
        relay *r = &s->relays[i];
        if (r->used)
            next = min_t(next, r->nacked ? r->expire_at : r->nack_at);
    }
    for (size_t j = 0; j < s->nseeds && !s->leaving; j++)
        if (!s->seeds[j].pending)
            next = min_t(next, s->seeds[j].next_at);
    return next > now ? next : now + 1;
}

/* ---- lifecycle and API --------------------------------------------------- */

static bool profile_valid(const swim_profile *p)
{
    return p->probe_interval_ms > 0 && p->probe_timeout_ms > 0 && p->gossip_interval_ms > 0 &&
           p->pushpull_interval_ms > 0 && p->reconnect_interval_ms > 0 && p->suspicion_mult > 0 &&
           p->retransmit_mult > 0 && p->mtu >= 512 && p->mtu <= 65000;
}

swim_t *swim_new(const swim_config *cfg, hms_time now)
{
    if (!cfg || !cfg->name || !gossip_name_valid(cfg->name, strlen(cfg->name)) ||
        !profile_valid(&cfg->profile) || cfg->meta_len > SWIM_META_MAX ||
        cfg->cert_len > SWIM_CERT_MAX || (cfg->meta_len && !cfg->meta) ||
        (cfg->cert_len && !cfg->cert) || (cfg->addr.family != 4 && cfg->addr.family != 6) ||
        cfg->addr.port == 0)
        return NULL;
    swim_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->p = cfg->profile;
    s->msgs = calloc(MSG_SCRATCH, sizeof(*s->msgs));
    s->pkt = malloc(s->p.mtu);
    if (!s->msgs || !s->pkt) {
        swim_delete(s);
        return NULL;
    }
    uint64_t x = cfg->seed;
    for (int i = 0; i < 4; i++)
        s->r.s[i] = splitmix64(&x);
    s->admit = cfg->admit;
    s->admit_ctx = cfg->admit_ctx;
    uint64_t inc = cfg->incarnation ? cfg->incarnation : 1;
    member *me = member_add(s, cfg->name, cfg->key, &cfg->addr, inc, now);
    if (!me) {
        swim_delete(s);
        return NULL;
    }
    s->self = me;
    if (set_blob(&me->meta, &me->meta_len, cfg->meta, cfg->meta_len) < 0 ||
        set_blob(&me->cert, &me->cert_len, cfg->cert, cfg->cert_len) < 0) {
        swim_delete(s);
        return NULL;
    }
    /* The user broadcast sequence starts above anything a previous run of
     * this node could have used: incarnations only grow across restarts. */
    s->user_seq = inc << 32;
    /* Spread the first timers so nodes started together do not beat in step. */
    s->next_probe = now + rng_below(&s->r, HMS_MS(s->p.probe_interval_ms));
    s->next_gossip = now + rng_below(&s->r, HMS_MS(s->p.gossip_interval_ms));
    s->next_pushpull = now + HMS_MS(s->p.pushpull_interval_ms) / 2 +
                       rng_below(&s->r, HMS_MS(s->p.pushpull_interval_ms));
    s->next_reconnect = now + HMS_MS(s->p.reconnect_interval_ms);
    sw_emit(s, SWIM_EV_INCARNATION, me);
    sw_bc_state(s, me, NULL);
    return s;
}

void swim_delete(swim_t *s)
{
    if (!s)
        return;
    s->outq_head = s->outq_len;
    sw_out_gc(s);
    free(s->outq);
    while (s->npkt_pool)
        free(s->pkt_pool[--s->npkt_pool]);
    while (s->ninfo_pool)
        free(s->info_pool[--s->ninfo_pool]);
    for (int t = 0; t < BC_BUCKETS; t++) {
        while (s->bhead[t]) {
            bcast *b = s->bhead[t];
            s->bhead[t] = b->next;
            free(b);
        }
    }
    for (size_t i = 0; i < s->nmembers; i++)
        member_free(s->members[i]);
    free(s->members);
    free(s->plist);
    free(s->by_name.slot);
    free(s->by_key.slot);
    free(s->pp_reply);
    free(s->msgs);
    free(s->pkt);
    free(s->suspects);
    free(s);
}

void swim_leave(swim_t *s, hms_time now)
{
    sw_out_gc(s);
    if (s->leaving)
        return;
    s->leaving = true;
    s->leave_at = now;
    s->probe.active = false;
    sw_set_state(s, s->self, s->self->inc, SWIM_LEFT, now, NULL);
    sw_bc_state(s, s->self, NULL);
    /* Send it now rather than at the next gossip round. */
    s->next_gossip = now;
}

bool swim_leave_propagated(swim_t *s, hms_time now)
{
    if (!s->leaving)
        return false;
    if (s->leave_done || s->counts[SWIM_ALIVE] + s->counts[SWIM_SUSPECT] == 0)
        return true;
    uint32_t limit = swim_retransmit_limit(&s->p, cluster_n(s) + 1);
    hms_time bound = HMS_MS(s->p.gossip_interval_ms) * limit;
    if (bound < HMS_SEC(1))
        bound = HMS_SEC(1);
    return now - s->leave_at >= bound;
}

int swim_set_meta(swim_t *s, hms_time now, const uint8_t *meta, size_t len)
{
    sw_out_gc(s);
    if (len > SWIM_META_MAX || (len && !meta))
        return -EINVAL;
    if (s->leaving)
        return -ESHUTDOWN;
    int changed = set_blob(&s->self->meta, &s->self->meta_len, meta, len);
    if (changed < 0)
        return -ENOMEM;
    /* The same meta again is no news: gossiping it would cost every member
     * retransmissions for nothing. */
    if (changed == 0)
        return 0;
    self_bump(s, s->self->inc, now);
    sw_emit(s, SWIM_EV_UPDATE, s->self);
    (void)now;
    return 0;
}

int swim_broadcast(swim_t *s, hms_time now, uint8_t kind, const uint8_t *data, size_t len)
{
    sw_out_gc(s);
    if (len > SWIM_USER_MAX || (len && !data))
        return -EINVAL;
    gossip_msg g;
    memset(&g, 0, sizeof(g));
    g.type = GOSSIP_USER;
    memcpy(g.name, s->self->name, sizeof(g.name));
    g.user_kind = kind;
    g.user_seq = ++s->user_seq;
    g.data = data;
    g.data_len = (uint16_t)len;
    sw_bc_user(s, &g);
    (void)now;
    return 0;
}

void swim_expel(swim_t *s, hms_time now, const uint8_t key[SWIM_KEY_LEN])
{
    sw_out_gc(s);
    member *m = key ? sw_htab_get(&s->by_key, true, key) : NULL;
    if (!m || m == s->self)
        return;
    m->expelled = true;
    sw_set_state(s, m, m->inc + 1, SWIM_DEAD, now, s->self->name);
    sw_bc_state(s, m, s->self->name);
}

/* ---- queries ------------------------------------------------------------- */

static const swim_member_info *view(const member *cm)
{
    member *m = (member *)cm;
    if (!m->view) {
        m->view = calloc(1, sizeof(*m->view));
        if (!m->view)
            return NULL;
    }
    sw_fill_info(m, m->view);
    return m->view;
}

size_t swim_member_count(const swim_t *s)
{
    return s->nmembers;
}

const swim_member_info *swim_member_at(const swim_t *s, size_t i)
{
    return i < s->nmembers ? view(s->members[i]) : NULL;
}

const swim_member_info *swim_member_find(const swim_t *s, const char *name)
{
    member *m = name ? sw_htab_get(&s->by_name, false, name) : NULL;
    return m ? view(m) : NULL;
}

const swim_member_info *swim_member_by_key(const swim_t *s, const uint8_t key[SWIM_KEY_LEN])
{
    member *m = key ? sw_htab_get(&s->by_key, true, key) : NULL;
    return m ? view(m) : NULL;
}

const swim_member_info *swim_self(const swim_t *s)
{
    return view(s->self);
}

int swim_member_status(const swim_t *s, const char *name, uint64_t *incarnation)
{
    member *m = name ? sw_htab_get(&s->by_name, false, name) : NULL;
    if (!m)
        return -ENOENT;
    if (incarnation)
        *incarnation = m->inc;
    return (int)m->status;
}

hms_time swim_suspicion_deadline(const swim_t *s, const char *name)
{
    member *m = name ? sw_htab_get(&s->by_name, false, name) : NULL;
    return m && m->susp ? m->susp->deadline : 0;
}

void swim_get_stats(const swim_t *s, swim_stats *out)
{
    *out = s->st;
    out->health_score = s->awareness;
    out->members_alive = (uint32_t)s->counts[SWIM_ALIVE];
    out->members_suspect = (uint32_t)s->counts[SWIM_SUSPECT];
    out->members_dead = (uint32_t)s->counts[SWIM_DEAD];
    out->members_left = (uint32_t)s->counts[SWIM_LEFT];
}
