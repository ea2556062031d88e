/*
 * Reading the logs held here: tail, lookups by request id, time-ordered
 * traces across every origin, paged export, status and verification
 * reports, and followers (tail -f). Every read goes through the segment
 * verifier, so a tampered byte is never served as if it were good; results
 * are jansson values that the socket operations pack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/audit/audit_priv.h"
#include "agent/audit/repl.h"
#include "agent/log.h"

/* ---- iteration -------------------------------------------------------------- */

typedef int (*visit_fn)(void *ctx, alog *l, const hms_audit_entry *e, const uint8_t h[32]);

struct visit_ctx {
    alog *l;
    visit_fn fn;
    void *ctx;
    int stop;
};

static int visit_cb(void *ctx, const hms_audit_entry *e, const uint8_t hash[32],
                    const uint8_t *enc, size_t len)
{
    struct visit_ctx *v = ctx;
    /* After the caller has enough, the rest of the segment is still
     * verified (chain and seal): nothing is handed out unverified. */
    if (!v->stop)
        v->stop = v->fn(v->ctx, v->l, e, hash);
    return 0;
}

/* Runs fn over the entries of segments [from, to) of l, verifying each
 * segment as it is read. Returns 0, the callback's stop value, or a
 * negative code when a segment cannot be read or does not verify. */
static int scan_log(alog *l, size_t from, size_t to, visit_fn fn, void *ctx)
{
    for (size_t i = from; i < to && i < l->nsegs; i++) {
        aseg *g = &l->segs[i];
        const uint8_t *b;
        size_t len;
        uint8_t *owned;
        int r = aseg_bytes(l, g, &b, &len, &owned);
        if (r)
            return r;
        struct visit_ctx v = {l, fn, ctx, 0};
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        r = hms_audit_segment_verify(b, len, l->key, !g->sealed, &info, &off, &why, visit_cb, &v);
        free(owned);
        if (r < 0 && r != HMS_AUDIT_TORN)
            return -EBADMSG;
        if (v.stop)
            return v.stop;
    }
    return 0;
}

static json_t *entry_json(const alog *l, const hms_audit_entry *e, const uint8_t h[32])
{
    json_t *o = hms_audit_entry_to_json(e, h);
    if (o) {
        json_object_set_new(o, "node", json_string(l->name[0] ? l->name : l->keyhex));
        json_object_set_new(o, "node_key", json_string(l->keyhex));
    }
    return o;
}

/* ---- name resolution ---------------------------------------------------------- */

int hms_audit_key_of(hms_audit *a, const char *name, uint8_t key[32])
{
    if (!a || !name || !name[0])
        return -EINVAL;
    if (audit_repl_key_of(a, name, key) == 0)
        return 0;
    alog *l = astore_find_name(&a->store, name);
    if (l) {
        memcpy(key, l->key, 32);
        return 0;
    }
    if (hms_audit_unhex(name, key, 32) == 0)
        return 0;
    return -ENOENT;
}

/* ---- tail ---------------------------------------------------------------------- */

struct collect {
    json_t *arr;
    size_t limit;
    const char *reqid;
    uint64_t since_ns;
    uint64_t skip;    /* entries to pass over first */
    uint64_t visited; /* entries seen, skipped ones included */
};

static int collect_cb(void *ctx, alog *l, const hms_audit_entry *e, const uint8_t h[32])
{
    struct collect *c = ctx;
    c->visited++;
    if (c->skip) {
        c->skip--;
        return 0;
    }
    if (c->reqid && (!e->reqid || e->reqid_len != strlen(c->reqid) ||
                     memcmp(e->reqid, c->reqid, e->reqid_len) != 0))
        return 0;
    if (e->ts_ns < c->since_ns)
        return 0;
    json_array_append_new(c->arr, entry_json(l, e, h));
    return c->limit && json_array_size(c->arr) >= c->limit ? 1 : 0;
}

json_t *hms_audit_query_tail(hms_audit *a, const uint8_t *key, size_t n, int *err)
{
    alog *l = key ? astore_find(&a->store, key) : a->own;
    *err = 0;
    if (!l) {
        *err = -ENOENT;
        return NULL;
    }
    size_t from = l->nsegs;
    uint64_t have = 0;
    while (from > 0 && have < n) {
        from--;
        have += l->segs[from].count;
    }
    struct collect c = {json_array(), 0, NULL, 0, have > n ? have - n : 0, 0};
    int r = scan_log(l, from, l->nsegs, collect_cb, &c);
    if (r < 0) {
        *err = r;
        json_decref(c.arr);
        return NULL;
    }
    return c.arr;
}

/* ---- by request id, trace ------------------------------------------------------- */

static int by_time(const void *x, const void *y)
{
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    json_int_t ta = json_integer_value(json_object_get(a, "ts"));
    json_int_t tb = json_integer_value(json_object_get(b, "ts"));
    if (ta != tb)
        return ta < tb ? -1 : 1;
    int c = strcmp(json_string_value(json_object_get(a, "node_key")),
                   json_string_value(json_object_get(b, "node_key")));
    if (c)
        return c;
    json_int_t sa = json_integer_value(json_object_get(a, "seq"));
    json_int_t sb = json_integer_value(json_object_get(b, "seq"));
    return sa < sb ? -1 : sa > sb;
}

json_t *hms_audit_query_find(hms_audit *a, const uint8_t *key, bool all, const char *reqid,
                             size_t limit, int *err)
{
    *err = 0;
    struct collect c = {json_array(), limit, reqid, 0, 0, 0};
    for (size_t i = 0; i < a->store.nlogs; i++) {
        alog *l = a->store.logs[i];
        if (!all && l != (key ? astore_find(&a->store, key) : a->own))
            continue;
        int r = scan_log(l, 0, l->nsegs, collect_cb, &c);
        if (r < 0) {
            HMS_WARN("audit: log of %s does not verify while searching it",
                     l->name[0] ? l->name : l->keyhex);
            *err = r;
        }
        if (r == 1)
            break;
    }
    size_t n = json_array_size(c.arr);
    if (n > 1) {
        json_t **v = malloc(n * sizeof(*v));
        if (v) {
            for (size_t i = 0; i < n; i++)
                v[i] = json_incref(json_array_get(c.arr, i));
            qsort(v, n, sizeof(*v), by_time);
            json_array_clear(c.arr);
            for (size_t i = 0; i < n; i++)
                json_array_append_new(c.arr, v[i]);
            free(v);
        }
    }
    return c.arr;
}

/* ---- export (paged) ---------------------------------------------------------------- */

json_t *hms_audit_query_export(hms_audit *a, const uint8_t *key, uint64_t since_ns,
                               const char *cursor, size_t limit, int *err)
{
    /* cursor: "<origin key hex>:<segment number>:<entries done in it>",
     * where to go on in the order (key, segment number, sequence). It names
     * data, not positions, so logs or segments arriving between pages
     * neither repeat nor hide entries that were already there. */
    *err = 0;
    uint8_t ckey[32];
    unsigned long long cseg = 0, cskip = 0;
    bool has_cursor = cursor && cursor[0];
    if (has_cursor) {
        char hex[65];
        if (strlen(cursor) < 66 || cursor[64] != ':' ||
            sscanf(cursor + 65, "%llu:%llu", &cseg, &cskip) != 2) {
            *err = -EINVAL;
            return NULL;
        }
        memcpy(hex, cursor, 64);
        hex[64] = 0;
        if (hms_audit_unhex(hex, ckey, 32) != 0) {
            *err = -EINVAL;
            return NULL;
        }
    }
    size_t n = a->store.nlogs;
    alog **order = malloc((n ? n : 1) * sizeof(*order));
    if (!order) {
        *err = -ENOMEM;
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        alog *l = a->store.logs[i];
        if (key && memcmp(l->key, key, 32) != 0)
            continue;
        if (has_cursor && memcmp(l->key, ckey, 32) < 0)
            continue;
        size_t j = k++;
        while (j > 0 && memcmp(order[j - 1]->key, l->key, 32) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = l;
    }
    json_t *arr = json_array();
    struct collect c = {arr, limit, NULL, since_ns, 0, 0};
    size_t li = 0, si = 0;
    uint64_t skip = 0, done_in_seg = 0;
    if (has_cursor && k > 0 && memcmp(order[0]->key, ckey, 32) == 0) {
        while (si < order[0]->nsegs && order[0]->segs[si].segno < cseg)
            si++;
        if (si < order[0]->nsegs && order[0]->segs[si].segno == cseg)
            skip = cskip;
    }
    bool stopped = false;
    while (li < k && json_array_size(arr) < limit) {
        alog *l = order[li];
        if (si >= l->nsegs) {
            li++;
            si = 0;
            skip = 0;
            continue;
        }
        /* whole segments older than since are skipped unread */
        if (l->segs[si].count > skip && l->segs[si].last_ts >= since_ns) {
            c.skip = skip;
            c.visited = 0;
            int r = scan_log(l, si, si + 1, collect_cb, &c);
            if (r < 0)
                *err = r;
            if (r == 1 && c.visited < l->segs[si].count) {
                /* the page is full inside this segment */
                done_in_seg = c.visited;
                stopped = true;
                break;
            }
        }
        si++;
        skip = 0;
    }
    json_t *res = json_object();
    json_object_set_new(res, "entries", arr);
    if (!stopped) {
        while (li < k && si >= order[li]->nsegs) {
            li++;
            si = 0;
        }
        done_in_seg = 0;
    }
    if (li < k) {
        char cur[100];
        snprintf(cur, sizeof(cur), "%s:%llu:%llu", order[li]->keyhex,
                 (unsigned long long)order[li]->segs[si].segno, (unsigned long long)done_in_seg);
        json_object_set_new(res, "next", json_string(cur));
    } else {
        json_object_set_new(res, "next", json_null());
    }
    free(order);
    return res;
}

/* ---- followers ------------------------------------------------------------------- */

int hms_audit_follow(hms_audit *a, const uint8_t *key, hms_audit_follow_fn fn, void *ctx,
                     uint64_t *id)
{
    if (a->nfollowers == AUDIT_FOLLOWERS_MAX)
        return -ENOSPC;
    struct audit_follower *f = &a->followers[a->nfollowers++];
    f->id = ++a->next_follow_id;
    f->any = key == NULL;
    if (key)
        memcpy(f->key, key, 32);
    else
        memcpy(f->key, a->pk, 32);
    f->fn = fn;
    f->ctx = ctx;
    *id = f->id;
    return 0;
}

void hms_audit_unfollow(hms_audit *a, uint64_t id)
{
    for (size_t i = 0; i < a->nfollowers; i++) {
        if (a->followers[i].id == id) {
            a->followers[i] = a->followers[--a->nfollowers];
            return;
        }
    }
}

void audit_notify_entry(hms_audit *a, alog *l, const hms_audit_entry *e, const uint8_t h[32])
{
    if (a->nfollowers == 0)
        return;
    json_t *j = NULL;
    for (size_t i = 0; i < a->nfollowers; i++) {
        struct audit_follower *f = &a->followers[i];
        if (memcmp(f->key, l->key, 32) != 0)
            continue;
        if (!j)
            j = entry_json(l, e, h);
        if (j)
            f->fn(f->ctx, j);
    }
    json_decref(j);
}

/* ---- verification ------------------------------------------------------------------- */

static void problem(json_t *list, const char *what, const char *file, long long off,
                    long long segno)
{
    json_t *p = json_object();
    json_object_set_new(p, "what", json_string(what));
    if (file)
        json_object_set_new(p, "file", json_string(file));
    if (off >= 0)
        json_object_set_new(p, "offset", json_integer(off));
    if (segno >= 0)
        json_object_set_new(p, "segment", json_integer(segno));
    json_array_append_new(list, p);
}

static json_t *verify_log(hms_audit *a, alog *l, bool *ok)
{
    json_t *o = json_object(), *probs = json_array(), *forks = json_array();
    uint64_t entries = 0, sealed = 0;
    for (size_t i = 0; i < l->nsegs; i++) {
        aseg *g = &l->segs[i];
        char path[PATH_MAX];
        aseg_path(l, g->segno, path, sizeof(path));
        const uint8_t *b;
        size_t len;
        uint8_t *owned;
        int r = aseg_bytes(l, g, &b, &len, &owned);
        if (r) {
            problem(probs, strerror(-r), path, -1, (long long)g->segno);
            continue;
        }
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        r = hms_audit_segment_verify(b, len, l->key, l->own && !g->sealed, &info, &off, &why,
                                     NULL, NULL);
        free(owned);
        if (r < 0) {
            problem(probs, r == HMS_AUDIT_TORN ? "truncated segment" : why, g->mem ? NULL : path,
                    (long long)off, (long long)g->segno);
            continue;
        }
        if (info.hdr.segno != g->segno || info.count != g->count ||
            memcmp(info.head, g->head, 32) != 0 || info.sealed != g->sealed) {
            problem(probs, "segment differs from what was loaded", path, -1, (long long)g->segno);
            continue;
        }
        if (i > 0 && l->segs[i - 1].segno + 1 == g->segno &&
            (memcmp(l->segs[i - 1].head, g->prev_head, 32) != 0 ||
             l->segs[i - 1].last_seq + 1 != g->first_seq))
            problem(probs, "segment does not continue the one before", path, 0,
                    (long long)g->segno);
        if (i > 0 && l->segs[i - 1].segno + 1 != g->segno && l->own)
            problem(probs, "segments missing before this one", path, 0, (long long)g->segno);
        entries += info.count;
        sealed += info.sealed;
    }
    /* Forks: two validly signed, different segments with one number. */
    for (size_t i = 0; i < l->nforks; i++) {
        char ha[65], hb[65];
        hms_audit_hex(l->forks[i].a.head, 32, ha);
        hms_audit_hex(l->forks[i].b.head, 32, hb);
        json_t *f = json_object();
        json_object_set_new(f, "segment", json_integer((json_int_t)l->forks[i].segno));
        json_object_set_new(f, "head_a", json_string(ha));
        json_object_set_new(f, "head_b", json_string(hb));
        json_array_append_new(forks, f);
        char msg[128];
        snprintf(msg, sizeof(msg), "fork: two signed versions of segment %llu",
                 (unsigned long long)l->forks[i].segno);
        problem(probs, msg, NULL, -1, (long long)l->forks[i].segno);
    }
    json_t *reps = audit_repl_verify_log(a, l, probs);
    aseg *last = alog_last(l);
    json_object_set_new(o, "node", json_string(l->name[0] ? l->name : l->keyhex));
    json_object_set_new(o, "key", json_string(l->keyhex));
    json_object_set_new(o, "own", json_boolean(l->own));
    json_object_set_new(o, "segments", json_integer((json_int_t)l->nsegs));
    json_object_set_new(o, "sealed_segments", json_integer((json_int_t)sealed));
    json_object_set_new(o, "entries", json_integer((json_int_t)entries));
    if (last && last->count)
        json_object_set_new(o, "last_seq", json_integer((json_int_t)last->last_seq));
    json_object_set_new(o, "refused_segments", json_integer((json_int_t)l->refused));
    json_object_set_new(o, "forks", forks);
    json_object_set_new(o, "replicas", reps ? reps : json_array());
    bool lok = json_array_size(probs) == 0;
    json_object_set_new(o, "ok", json_boolean(lok));
    json_object_set_new(o, "problems", probs);
    if (!lok)
        *ok = false;
    return o;
}

void audit_verify_add_replicas(hms_audit *a, json_t *report)
{
    json_t *logs = json_object_get(report, "logs");
    for (size_t i = 0; i < json_array_size(logs); i++) {
        json_t *o = json_array_get(logs, i);
        uint8_t key[32];
        const char *kh = json_string_value(json_object_get(o, "key"));
        alog *l = kh && hms_audit_unhex(kh, key, 32) == 0 ? astore_find(&a->store, key) : NULL;
        json_t *probs = json_object_get(o, "problems");
        if (!l || !probs)
            continue;
        size_t before = json_array_size(probs);
        json_t *reps = audit_repl_verify_log(a, l, probs);
        if (reps)
            json_object_set_new(o, "replicas", reps);
        if (json_array_size(probs) > before) {
            json_object_set_new(o, "ok", json_false());
            json_object_set_new(report, "ok", json_false());
        }
    }
}

json_t *hms_audit_query_verify(hms_audit *a, const uint8_t *key, bool all, int *err)
{
    *err = 0;
    json_t *res = json_object(), *logs = json_array();
    bool ok = true;
    size_t n = 0;
    for (size_t i = 0; i < a->store.nlogs; i++) {
        alog *l = a->store.logs[i];
        if (!all && memcmp(l->key, key ? key : a->pk, 32) != 0)
            continue;
        if (!l->own && l->nsegs == 0 && l->nforks == 0)
            continue;
        json_array_append_new(logs, verify_log(a, l, &ok));
        n++;
    }
    if (n == 0 && !all) {
        json_decref(res);
        json_decref(logs);
        *err = -ENOENT;
        return NULL;
    }
    json_object_set_new(res, "ok", json_boolean(ok));
    json_object_set_new(res, "logs", logs);
    return res;
}

/* ---- status ---------------------------------------------------------------------------- */

json_t *hms_audit_query_status(hms_audit *a)
{
    json_t *res = json_object(), *logs = json_array();
    hms_audit_stats st;
    hms_audit_get_stats(a, &st);
    json_object_set_new(res, "node", json_string(a->name));
    json_object_set_new(res, "next_seq", json_integer((json_int_t)st.next_seq));
    json_object_set_new(res, "durable_seq", json_integer((json_int_t)st.durable_seq));
    json_object_set_new(res, "appended", json_integer((json_int_t)st.appended));
    json_object_set_new(res, "dropped", json_integer((json_int_t)st.dropped));
    json_object_set_new(res, "write_errors", json_integer((json_int_t)st.write_errors));
    json_object_set_new(res, "fsyncs", json_integer((json_int_t)st.fsyncs));
    json_object_set_new(res, "disk_failed", json_boolean(st.failed));
    json_object_set_new(res, "forks", json_integer((json_int_t)st.forks));
    json_object_set_new(res, "refused_segments", json_integer((json_int_t)st.replica_refused));
    json_object_set_new(res, "replicas_wanted", json_integer(a->replicas));
    for (size_t i = 0; i < a->store.nlogs; i++) {
        alog *l = a->store.logs[i];
        json_t *o = json_object();
        aseg *last = alog_last(l);
        const aseg *lastsealed = NULL;
        for (size_t k = l->nsegs; k > 0; k--)
            if (l->segs[k - 1].sealed) {
                lastsealed = &l->segs[k - 1];
                break;
            }
        json_object_set_new(o, "node", json_string(l->name[0] ? l->name : l->keyhex));
        json_object_set_new(o, "key", json_string(l->keyhex));
        json_object_set_new(o, "own", json_boolean(l->own));
        json_object_set_new(o, "segments", json_integer((json_int_t)l->nsegs));
        json_object_set_new(o, "last_seq",
                            last && (last->count || last->segno > 0)
                                ? json_integer((json_int_t)(last->count ? last->last_seq
                                                                        : last->first_seq - 1))
                                : json_null());
        json_object_set_new(o, "last_sealed_segment",
                            lastsealed ? json_integer((json_int_t)lastsealed->segno) : json_null());
        json_object_set_new(o, "forks", json_integer((json_int_t)l->nforks));
        audit_repl_status_log(a, l, o);
        json_array_append_new(logs, o);
    }
    json_object_set_new(res, "logs", logs);
    return res;
}

int hms_audit_fetch(hms_audit *a, const uint8_t key[32], uint32_t max_ms,
                    void (*done)(void *ctx, int status), void *ctx)
{
    return audit_repl_fetch(a, key, max_ms, done, ctx);
}

int hms_audit_import(hms_audit *a, const uint8_t *buf, size_t len, const uint8_t *expect_key,
                     char *verdict, size_t cap)
{
    return audit_repl_import(a, buf, len, expect_key, verdict, cap);
}

int hms_audit_fetch_all(hms_audit *a, uint32_t max_ms, void (*done)(void *ctx, int status),
                        void *ctx)
{
    return audit_repl_fetch_all(a, max_ms, done, ctx);
}
