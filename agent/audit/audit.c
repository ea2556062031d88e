/*
 * The own log: chaining entries in memory, cutting and sealing segments,
 * handing bytes to the writer thread, and answering durable appends once
 * the writer reports them fsynced. Runs on the agent's loop.
 *
 * Own-log states of a segment:
 *   open      entries are being added; bytes kept in aseg.mem and queued to
 *             the writer as they come; at most one, always the last
 *   sealed    the seal record is queued; bytes still in memory
 *   durable   the writer fsynced the seal; bytes dropped from memory, the
 *             segment is served to replicas and its head gossiped
 * A new segment is opened by the first entry after a seal, so no segment
 * is ever empty.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "agent/audit/audit_int.h"
#include "agent/audit/audit_priv.h"
#include "agent/audit/repl.h"
#include "agent/audit/fileio.h"
#include "agent/log.h"

uint64_t audit_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t audit_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
}

static int mem_append(aseg *g, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t need = g->mem_len + alen + blen;
    if (need > g->mem_cap) {
        size_t ncap = g->mem_cap ? g->mem_cap : 65536;
        while (ncap < need)
            ncap *= 2;
        uint8_t *n = realloc(g->mem, ncap);
        if (!n)
            return -ENOMEM;
        g->mem = n;
        g->mem_cap = ncap;
    }
    memcpy(g->mem + g->mem_len, a, alen);
    if (blen)
        memcpy(g->mem + g->mem_len + alen, b, blen);
    g->mem_len = need;
    return 0;
}

/* Appends one framed record to the open segment: memory, then the writer. */
static int put_record(hms_audit *a, aseg *g, uint8_t type, const uint8_t *pay, size_t len,
                      uint64_t seq_end, bool new_file)
{
    uint8_t hdr[HMS_AUDIT_REC_HDR];
    hms_audit_frame(type, pay, len, hdr);
    size_t before = g->mem_len;
    int r = mem_append(g, hdr, sizeof(hdr), pay, len);
    if (r)
        return r;
    r = awriter_append(&a->w, g->segno, before, new_file, hdr, sizeof(hdr), pay, len, seq_end,
                       type == HMS_AUDIT_REC_SEAL);
    if (r) {
        g->mem_len = before;
        return r;
    }
    g->size = g->mem_len;
    return 0;
}

static aseg *open_segment(hms_audit *a)
{
    aseg *last = alog_last(a->own);
    if (last && !last->sealed)
        return last;
    hms_audit_seghdr h;
    memcpy(h.node_key, a->pk, 32);
    h.segno = a->next_segno;
    h.first_seq = a->next_seq;
    memcpy(h.prev_head, a->head, HMS_AUDIT_HASH_LEN);
    uint8_t buf[128];
    size_t len;
    if (hms_audit_seghdr_encode(&h, buf, sizeof(buf), &len))
        return NULL;
    aseg t;
    memset(&t, 0, sizeof(t));
    t.segno = h.segno;
    t.first_seq = h.first_seq;
    t.last_seq = h.first_seq;
    memcpy(t.prev_head, a->head, HMS_AUDIT_HASH_LEN);
    memcpy(t.head, a->head, HMS_AUDIT_HASH_LEN);
    aseg *g = alog_add_seg(a->own, &t);
    if (!g)
        return NULL;
    if (put_record(a, g, HMS_AUDIT_REC_HEADER, buf, len, 0, true)) {
        alog_remove_seg(a->own, t.segno);
        return NULL;
    }
    a->next_segno++;
    a->open_since_ms = audit_mono_ms();
    return g;
}

int audit_seal_open(hms_audit *a)
{
    aseg *g = alog_last(a->own);
    if (!g || g->sealed || g->count == 0)
        return 0;
    hms_audit_seal s;
    memset(&s, 0, sizeof(s));
    s.segno = g->segno;
    s.first_seq = g->first_seq;
    s.last_seq = g->last_seq;
    memcpy(s.head, g->head, HMS_AUDIT_HASH_LEN);
    s.time_ns = audit_wall_ns();
    hms_audit_seal_sign(&s, a->sk);
    uint8_t buf[HMS_AUDIT_SEAL_ENC_MAX];
    size_t len;
    int r = hms_audit_seal_encode(&s, buf, sizeof(buf), &len);
    if (r == 0)
        r = put_record(a, g, HMS_AUDIT_REC_SEAL, buf, len, 0, false);
    if (r)
        return r;
    g->sealed = true;
    g->seal = s;
    g->mtime_s = s.time_ns / 1000000000ULL;
    a->stats.sealed_segments++;
    return 0;
}

int hms_audit_seal_now(hms_audit *a)
{
    return a ? audit_seal_open(a) : -EINVAL;
}

static bool kind_ok(const char *k)
{
    size_t n = k ? strlen(k) : 0;
    if (n == 0 || n > HMS_AUDIT_KIND_LEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e)
            return false;
    return true;
}

int hms_audit_append(struct hms_audit *a, const char *kind, const char *request_id,
                     const hms_audit_actor *actor, json_t *fields, bool durable,
                     hms_audit_done_fn done, void *ctx, uint64_t *seq_out)
{
    int r;
    if (!a || !kind_ok(kind) || (fields && !json_is_object(fields))) {
        json_decref(fields);
        return -EINVAL;
    }
    if (a->next_seq - a->durable_seq >= a->backlog_max) {
        json_decref(fields);
        a->stats.dropped++;
        return -ENOSPC;
    }
    size_t flen;
    r = hms_audit_fields_from_json(fields, a->scratch_fields, sizeof(a->scratch_fields), &flen);
    json_decref(fields);
    if (r)
        return r == -ENOBUFS ? -EMSGSIZE : -EINVAL;
    hms_audit_entry e;
    memset(&e, 0, sizeof(e));
    e.seq = a->next_seq;
    uint64_t now = audit_wall_ns();
    e.ts_ns = now > a->last_ts ? now : a->last_ts; /* never backwards within a log */
    memcpy(e.prev, a->head, HMS_AUDIT_HASH_LEN);
    e.kind = kind;
    e.kind_len = strlen(kind);
    if (request_id && request_id[0]) {
        e.reqid = request_id;
        e.reqid_len = strlen(request_id);
    }
    e.uid = e.pid = -1;
    if (actor) {
        e.has_actor = true;
        e.uid = actor->uid < 0 ? -1 : actor->uid;
        e.pid = actor->pid < 0 ? -1 : actor->pid;
        if (actor->name) {
            e.actor_name = actor->name;
            e.actor_name_len = strnlen(actor->name, HMS_AUDIT_NAME_LEN_MAX + 1);
        }
    }
    e.fields = a->scratch_fields;
    e.fields_len = flen;
    size_t len;
    r = hms_audit_entry_encode(&e, a->scratch_enc, sizeof(a->scratch_enc), &len);
    if (r)
        return r == -ENOBUFS ? -EMSGSIZE : -EINVAL;
    aseg *g = open_segment(a);
    if (!g)
        return -ENOMEM;
    if (g->size + HMS_AUDIT_REC_HDR + len + HMS_AUDIT_SEAL_ENC_MAX + HMS_AUDIT_REC_HDR >
        AUDIT_OPEN_BYTES_MAX) {
        if ((r = audit_seal_open(a)) != 0 || !(g = open_segment(a)))
            return r ? r : -ENOMEM;
    }
    r = put_record(a, g, HMS_AUDIT_REC_ENTRY, a->scratch_enc, len, e.seq + 1, false);
    if (r)
        return r;
    uint8_t h[HMS_AUDIT_HASH_LEN];
    hms_audit_entry_hash(a->scratch_enc, len, h);
    memcpy(a->head, h, HMS_AUDIT_HASH_LEN);
    if (g->count == 0)
        g->first_ts = e.ts_ns;
    g->count++;
    g->last_seq = e.seq;
    g->last_ts = e.ts_ns;
    memcpy(g->head, h, HMS_AUDIT_HASH_LEN);
    a->last_ts = e.ts_ns;
    a->next_seq++;
    a->stats.appended++;
    if (seq_out)
        *seq_out = e.seq;
    audit_notify_entry(a, a->own, &e, h);
    if (g->count >= a->seal_entries)
        audit_seal_open(a); /* an error here leaves the segment open; the timer retries */
    if (durable && done) {
        if (a->nwaiters == a->capwaiters) {
            size_t ncap = a->capwaiters ? a->capwaiters * 2 : 64;
            struct audit_waiter *n = realloc(a->waiters, ncap * sizeof(*n));
            if (!n) {
                done(ctx, -ENOMEM, e.seq);
                return 0;
            }
            a->waiters = n;
            a->capwaiters = ncap;
        }
        a->waiters[a->nwaiters++] = (struct audit_waiter){e.seq, done, ctx};
    } else if (done) {
        done(ctx, 0, e.seq);
    }
    return 0;
}

int hms_audit_emit(struct hms_audit *a, const char *kind, const char *request_id,
                   const hms_audit_actor *actor, json_t *fields)
{
    return hms_audit_append(a, kind, request_id, actor, fields, false, NULL, NULL, NULL);
}

/* The writer made progress (or failed): release waiters, drop durable
 * bytes from memory, pass finished jobs on. */
static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    hms_audit *a = w->data;
    pthread_mutex_lock(&a->w.mu);
    uint64_t durable = a->w.durable_seq;
    uint64_t sealed_end = a->w.sealed_durable;
    bool has_sealed = a->w.has_sealed_durable;
    int err = a->w.error;
    uint64_t gen = a->w.error_gen;
    a->stats.fsyncs = a->w.fsyncs;
    a->stats.write_errors = a->w.write_errors;
    pthread_mutex_unlock(&a->w.mu);

    a->durable_seq = durable;
    a->stats.failed = err != 0;
    size_t k = 0;
    while (k < a->nwaiters && a->waiters[k].seq < durable) {
        a->waiters[k].done(a->waiters[k].ctx, 0, a->waiters[k].seq);
        k++;
    }
    if (gen != a->seen_error_gen) {
        a->seen_error_gen = gen;
        /* Not acknowledged: the caller learns the write failed. The entries
         * stay queued and are written when the disk recovers. */
        while (k < a->nwaiters) {
            a->waiters[k].done(a->waiters[k].ctx, err ? err : -EIO, a->waiters[k].seq);
            k++;
        }
    }
    if (k) {
        memmove(a->waiters, a->waiters + k, (a->nwaiters - k) * sizeof(*a->waiters));
        a->nwaiters -= k;
    }
    if (has_sealed) {
        const hms_audit_seal *newest = NULL;
        for (size_t i = 0; i < a->own->nsegs; i++) {
            aseg *g = &a->own->segs[i];
            if (g->segno >= sealed_end || !g->sealed || g->durable)
                continue;
            g->durable = true;
            free(g->mem);
            g->mem = NULL;
            g->mem_len = g->mem_cap = 0;
            newest = &g->seal;
        }
        if (newest && a->on_sealed)
            a->on_sealed(a, newest, a->on_sealed_ctx);
    }
    ajob *j = awriter_take_done(&a->w);
    while (j) {
        ajob *n = j->next;
        if (j->done)
            j->done(j->ctx, j);
        free(j->buf);
        free(j);
        j = n;
    }
    (void)loop;
    (void)revents;
}

static void on_seal_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    hms_audit *a = t->data;
    aseg *g = alog_last(a->own);
    if (g && !g->sealed && g->count > 0 && audit_mono_ms() - a->open_since_ms >= a->seal_age_ms)
        audit_seal_open(a);
    if (a->on_tick)
        a->on_tick(a, a->on_tick_ctx);
    (void)loop;
    (void)revents;
}

void audit_submit_job(hms_audit *a, ajob *j)
{
    awriter_push_job(&a->w, j);
}

int hms_audit_new(struct ev_loop *loop, const hms_audit_config *cfg, hms_audit **out, char *err,
                  size_t errlen)
{
    if (!cfg || !cfg->data_dir || !cfg->node_sk) {
        snprintf(err, errlen, "audit: missing data dir or node key");
        return -EINVAL;
    }
    hms_audit *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    a->loop = loop;
    memcpy(a->sk, cfg->node_sk, 64);
    crypto_sign_ed25519_sk_to_pk(a->pk, a->sk);
    snprintf(a->name, sizeof(a->name), "%s", cfg->node_name ? cfg->node_name : "");
    a->seal_entries = cfg->seal_entries ? cfg->seal_entries : 4096;
    a->seal_age_ms = cfg->seal_age_ms ? cfg->seal_age_ms : 1000;
    a->replicas = cfg->replicas ? cfg->replicas : 3;
    a->backlog_max = cfg->backlog_max ? cfg->backlog_max : (1u << 20);
    a->durable_default = cfg->durable;
    a->retain_age_s = cfg->retain_age_s;
    a->retain_bytes = cfg->retain_bytes;

    const char *fault = getenv("HMS_AUDIT_FAULT");
    if (fault && fault[0] && hms_fio_fail_parse(fault) != 0)
        HMS_WARN("audit: ignoring malformed HMS_AUDIT_FAULT '%s'", fault);

    int r = astore_open(&a->store, cfg->data_dir, a->pk, err, errlen);
    if (r) {
        sodium_memzero(a->sk, sizeof(a->sk));
        free(a);
        return r;
    }
    a->own = astore_find(&a->store, a->pk);
    astore_set_name(a->own, a->name);
    /* Continue the chain where the disk ends. */
    aseg *last = alog_last(a->own);
    if (last) {
        a->next_seq = last->count ? last->last_seq + 1 : last->first_seq;
        memcpy(a->head, last->head, HMS_AUDIT_HASH_LEN);
        a->last_ts = last->last_ts;
        a->next_segno = last->segno + 1;
        if (!last->sealed) {
            /* The open segment lives in memory while it grows. */
            const uint8_t *b;
            size_t len;
            uint8_t *owned;
            r = aseg_bytes(a->own, last, &b, &len, &owned);
            if (r == 0) {
                r = mem_append(last, b, len, NULL, 0);
                free(owned);
            }
            if (r) {
                snprintf(err, errlen, "cannot load the open audit segment %llu: %s",
                         (unsigned long long)last->segno, strerror(-r));
                astore_close(&a->store);
                sodium_memzero(a->sk, sizeof(a->sk));
                free(a);
                return r;
            }
            a->open_since_ms = audit_mono_ms();
        }
        for (size_t i = 0; i < a->own->nsegs; i++)
            if (a->own->segs[i].sealed)
                a->stats.sealed_segments++;
    }
    a->durable_seq = a->next_seq;
    ev_async_init(&a->async, on_async);
    a->async.data = a;
    ev_async_start(loop, &a->async);
    r = awriter_start(&a->w, loop, &a->async, a->own->dir, a->durable_seq, cfg->commit_delay_us);
    if (r) {
        snprintf(err, errlen, "cannot start the audit writer thread: %s", strerror(-r));
        ev_async_stop(loop, &a->async);
        astore_close(&a->store);
        sodium_memzero(a->sk, sizeof(a->sk));
        free(a);
        return r;
    }
    if (last && !last->sealed) {
        pthread_mutex_lock(&a->w.mu);
        a->w.sealed_durable = last->segno;
        a->w.has_sealed_durable = last->segno > 0;
        pthread_mutex_unlock(&a->w.mu);
    } else if (last) {
        pthread_mutex_lock(&a->w.mu);
        a->w.sealed_durable = last->segno + 1;
        a->w.has_sealed_durable = true;
        pthread_mutex_unlock(&a->w.mu);
    }
    r = audit_qworker_start(a);
    if (r) {
        snprintf(err, errlen, "cannot start the audit query thread: %s", strerror(-r));
        awriter_stop(&a->w);
        awriter_destroy(&a->w);
        ev_async_stop(loop, &a->async);
        astore_close(&a->store);
        sodium_memzero(a->sk, sizeof(a->sk));
        free(a);
        return r;
    }
    double iv = a->seal_age_ms / 4000.0;
    if (iv < 0.01)
        iv = 0.01;
    if (iv > 0.25)
        iv = 0.25;
    ev_timer_init(&a->seal_timer, on_seal_timer, iv, iv);
    a->seal_timer.data = a;
    ev_timer_start(loop, &a->seal_timer);
    *out = a;
    return 0;
}

void hms_audit_delete(hms_audit *a)
{
    if (!a)
        return;
    audit_seal_open(a);
    ev_timer_stop(a->loop, &a->seal_timer);
    audit_qworker_stop(a);
    awriter_stop(&a->w);
    ev_async_stop(a->loop, &a->async);
    /* Whatever the writer finished counts; callers still waiting learn it. */
    on_async(a->loop, &a->async, 0);
    awriter_destroy(&a->w);
    for (size_t i = 0; i < a->nwaiters; i++)
        a->waiters[i].done(a->waiters[i].ctx, -ECANCELED, a->waiters[i].seq);
    free(a->waiters);
    astore_close(&a->store);
    sodium_memzero(a->sk, sizeof(a->sk));
    free(a);
}

void hms_audit_get_stats(const hms_audit *a, hms_audit_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!a)
        return;
    *out = a->stats;
    out->next_seq = a->next_seq;
    out->durable_seq = a->durable_seq;
    for (size_t i = 0; i < a->store.nlogs; i++) {
        alog *l = a->store.logs[i];
        if (!l->own)
            out->replica_segments += l->nsegs;
        out->replica_refused += l->refused;
        out->forks += l->nforks;
    }
}

bool hms_audit_durable_default(const hms_audit *a)
{
    return a && a->durable_default;
}
