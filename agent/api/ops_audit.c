/*
 * Socket operations of the audit log (docs/api.md, docs/audit.md):
 *
 *   audit.tail    {node?, n?, follow?}       -> [entry]  (follow: stream of
 *                 {entries: [...]} then {entry} per new entry)
 *   audit.get     {request_id, node?}        -> [entry]  (one log)
 *   audit.trace   {request_id}               -> [entry]  (every log, by time)
 *   audit.verify  {node?, all?}              -> {ok, logs: [...]}
 *   audit.export  {node?, since?, cursor?, limit?} -> {entries, next}
 *   audit.status  {}                         -> {..., logs: [...]}
 *   audit.append  {kind, request_id?, actor?, fields?, durable?} -> {seq, durable}
 *   audit.import  {segment: bin, node?}      -> {verdict}         (admin)
 *
 * node is a member name (also of a dead member, remembered) or a key in hex.
 * A query about a log this agent does not hold, or holds behind what its
 * holders announce, first fetches it from them (at most FETCH_MS), so any
 * agent can answer for any log; a trace first fetches what is missing of
 * every log known. An entry is the JSON object of
 * hms_audit_entry_to_json plus node and node_key, packed as msgpack.
 * Reads and verifications run on the audit query thread on a snapshot of
 * the logs, so a large log never holds the loop; the answer comes as the
 * end of a stream (a single reply frame for the client).
 * audit.append and audit.import are themselves recorded with the client's
 * uid and pid (append is the entry itself).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/api/api.h"
#include "agent/audit/audit.h"
#include "proto/audit.h"

#define FETCH_MS 3000
#define TAIL_MAX 100000
#define EXPORT_PAGE_MAX 5000
#define FOLLOW_TAIL_MAX 1000

/* ---- JSON <-> msgpack ------------------------------------------------------ */

static void pack_json(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v) {
            hms_api_pack_str(pk, k);
            pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            pack_json(pk, json_array_get(j, i));
        break;
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(j));
        msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    default: msgpack_pack_nil(pk); break;
    }
}

/* Request values were walked by the server (bounded depth, lengths). */
static json_t *json_of(const msgpack_object *o, int depth)
{
    if (depth > HMS_AUDIT_FIELDS_DEPTH)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 > INT64_MAX ? json_real((double)o->via.u64)
                                      : json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *x = json_of(&o->via.array.ptr[i], depth + 1);
            if (!x || json_array_append_new(a, x)) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char key[256];
            if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof(key) ||
                memchr(k->via.str.ptr, 0, k->via.str.size)) {
                json_decref(m);
                return NULL;
            }
            memcpy(key, k->via.str.ptr, k->via.str.size);
            key[k->via.str.size] = 0;
            json_t *x = json_of(&o->via.map.ptr[i].val, depth + 1);
            if (!x || json_object_set_new(m, key, x)) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default: return NULL;
    }
}

static int send_json_end(hms_api_stream *st, json_t *j, const hms_api_error *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (j)
        pack_json(&pk, j);
    hms_api_stream_end(st, j ? sb.data : NULL, j ? sb.size : 0, err);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int send_json(hms_api_stream *st, json_t *j)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_json(&pk, j);
    int r = hms_api_stream_send(st, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* ---- arguments ----------------------------------------------------------------- */

static int node_arg(hms_audit *a, const hms_api_req *req, uint8_t key[32], bool *given,
                    hms_api_error *err)
{
    char name[SWIM_NAME_MAX + 1 > 65 ? SWIM_NAME_MAX + 1 : 65];
    int r = hms_api_arg_str(req, "node", name, sizeof(name));
    *given = false;
    if (r == -ENOENT)
        return 0;
    if (r)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'node' must be a node name");
    if (hms_audit_key_of(a, name, key) != 0)
        return hms_api_fail(err, HMS_API_E_NOT_FOUND, "no node named '%s' is known", name);
    *given = true;
    return 0;
}

static int reqid_arg(const hms_api_req *req, char *buf, size_t cap, hms_api_error *err)
{
    int r = hms_api_arg_str(req, "request_id", buf, cap);
    if (r == -ENOENT)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'request_id' is required");
    if (r)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                            "field 'request_id' must be a string of at most %d bytes",
                            HMS_AUDIT_REQID_LEN_MAX);
    return 0;
}

static int query_failed(int rc, hms_api_error *err, const char *what)
{
    if (rc == -ENOENT)
        return hms_api_fail(err, HMS_API_E_NOT_FOUND, "%s: this agent holds no copy of that log",
                            what);
    if (rc == -EBUSY)
        return hms_api_fail(err, HMS_API_E_BUSY, "%s: too many audit queries running; retry",
                            what);
    if (rc == -EBADMSG)
        return hms_api_fail(err, HMS_API_E_FAILED,
                            "%s: the stored log does not verify (run audit verify)", what);
    return hms_api_fail(err, HMS_API_E_INTERNAL, "%s: %s", what, strerror(-rc));
}

/* ---- deferred answers (after a fetch, or a durable append) --------------------------- */

typedef struct deferred {
    hms_api_stream *st; /* NULL once the client went away */
    hms_audit *a;
    char op[16];
    uint8_t key[32];
    bool has_key, all, fetch_all;
    size_t n;
    char reqid[HMS_AUDIT_REQID_LEN_MAX + 1];
    uint64_t since_ns;
    char cursor[100];
} deferred;

static void deferred_closed(hms_api_stream *st, void *ctx)
{
    deferred *d = ctx;
    d->st = NULL;
}

static void query_done(void *ctx, json_t *result, int rc)
{
    deferred *d = ctx;
    if (d->st) {
        hms_api_error e;
        memset(&e, 0, sizeof(e));
        if (!result)
            query_failed(rc ? rc : -ENOMEM, &e, d->op);
        send_json_end(d->st, result, result ? NULL : &e);
    }
    json_decref(result);
    free(d);
}

/* Hands the query to the audit query thread; the answer ends the stream. */
static void run_query(deferred *d)
{
    hms_audit_query q;
    memset(&q, 0, sizeof(q));
    q.key = d->has_key ? d->key : NULL;
    q.all = d->all;
    q.n = d->n;
    if (strcmp(d->op, "tail") == 0) {
        q.op = HMS_AUDIT_Q_TAIL;
    } else if (strcmp(d->op, "get") == 0 || strcmp(d->op, "trace") == 0) {
        q.op = HMS_AUDIT_Q_FIND;
        q.reqid = d->reqid;
        q.all = strcmp(d->op, "trace") == 0;
        q.key = q.all ? NULL : q.key;
        q.n = 0;
    } else if (strcmp(d->op, "export") == 0) {
        q.op = HMS_AUDIT_Q_EXPORT;
        q.since_ns = d->since_ns;
        q.cursor = d->cursor;
    } else {
        q.op = HMS_AUDIT_Q_VERIFY;
    }
    int rc = hms_audit_query_async(d->a, &q, query_done, d);
    if (rc)
        query_done(d, NULL, rc);
}

static void fetch_done(void *ctx, int status)
{
    deferred *d = ctx;
    if (!d->st) {
        free(d);
        return;
    }
    run_query(d);
}

/* Answers after fetching the log from its holders when it is another
 * node's, always from the query thread. */
static int query_maybe_fetch(hms_agent *ag, hms_audit *a, const hms_api_req *req, deferred *tmpl,
                             msgpack_packer *res, hms_api_error *err)
{
    deferred *d = malloc(sizeof(*d));
    if (!d)
        return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
    *d = *tmpl;
    d->st = hms_api_stream_open(req, deferred_closed, d);
    if (!d->st) {
        free(d);
        return hms_api_fail(err, HMS_API_E_BUSY, "too many streams on this connection");
    }
    int fr = -EALREADY;
    if (d->has_key)
        fr = hms_audit_fetch(a, d->key, FETCH_MS, fetch_done, d);
    else if (d->fetch_all)
        fr = hms_audit_fetch_all(a, FETCH_MS, fetch_done, d);
    if (fr != 0)
        run_query(d);
    return HMS_API_STREAMING;
}

/* ---- operations --------------------------------------------------------------------- */

typedef struct follower {
    hms_api_stream *st;
    hms_audit *a;
    uint64_t id;
} follower;

static void follow_entry(void *ctx, json_t *entry)
{
    follower *f = ctx;
    if (!f->st)
        return;
    json_t *w = json_pack("{s:O}", "entry", entry);
    send_json(f->st, w);
    json_decref(w);
}

static void follow_closed(hms_api_stream *st, void *ctx)
{
    follower *f = ctx;
    hms_audit_unfollow(f->a, f->id);
    free(f);
}

static int op_tail(hms_agent *ag, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    hms_audit *a = req->ctx;
    deferred d;
    memset(&d, 0, sizeof(d));
    d.a = a;
    snprintf(d.op, sizeof(d.op), "tail");
    if (node_arg(a, req, d.key, &d.has_key, err))
        return -1;
    uint64_t n = 10;
    int r = hms_api_arg_u64(req, "n", &n);
    if (r == -EINVAL || n > TAIL_MAX)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'n' must be 0-%d", TAIL_MAX);
    d.n = n;
    bool follow = false;
    hms_api_arg_bool(req, "follow", &follow);
    if (d.has_key && memcmp(d.key, ag->ed_pk, 32) == 0)
        d.has_key = false;
    if (!follow)
        return query_maybe_fetch(ag, a, req, &d, res, err);
    if (d.n > FOLLOW_TAIL_MAX)
        d.n = FOLLOW_TAIL_MAX; /* read on the loop: kept short */
    int rc = 0;
    json_t *first = hms_audit_query_tail(a, d.has_key ? d.key : NULL, d.n, &rc);
    if (!first && rc != -ENOENT)
        return query_failed(rc, err, "tail");
    follower *f = calloc(1, sizeof(*f));
    if (!f) {
        json_decref(first);
        return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
    }
    f->a = a;
    if (hms_audit_follow(a, d.has_key ? d.key : NULL, follow_entry, f, &f->id) != 0) {
        free(f);
        json_decref(first);
        return hms_api_fail(err, HMS_API_E_BUSY, "too many followers");
    }
    f->st = hms_api_stream_open(req, follow_closed, f);
    if (!f->st) {
        hms_audit_unfollow(a, f->id);
        free(f);
        json_decref(first);
        return hms_api_fail(err, HMS_API_E_BUSY, "too many streams on this connection");
    }
    json_t *w = json_pack("{s:o}", "entries", first ? first : json_array());
    send_json(f->st, w);
    json_decref(w);
    return HMS_API_STREAMING;
}

static int op_get(hms_agent *ag, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    hms_audit *a = req->ctx;
    deferred d;
    memset(&d, 0, sizeof(d));
    d.a = a;
    snprintf(d.op, sizeof(d.op), "get");
    if (reqid_arg(req, d.reqid, sizeof(d.reqid), err) || node_arg(a, req, d.key, &d.has_key, err))
        return -1;
    if (d.has_key && memcmp(d.key, ag->ed_pk, 32) == 0)
        d.has_key = false;
    return query_maybe_fetch(ag, a, req, &d, res, err);
}

static int op_trace(hms_agent *ag, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    hms_audit *a = req->ctx;
    deferred d;
    memset(&d, 0, sizeof(d));
    d.a = a;
    d.fetch_all = true; /* fetch what is missing of every log first */
    snprintf(d.op, sizeof(d.op), "trace");
    if (reqid_arg(req, d.reqid, sizeof(d.reqid), err))
        return -1;
    return query_maybe_fetch(ag, a, req, &d, res, err);
}

static int op_verify(hms_agent *ag, const hms_api_req *req, msgpack_packer *res,
                     hms_api_error *err)
{
    hms_audit *a = req->ctx;
    deferred d;
    memset(&d, 0, sizeof(d));
    d.a = a;
    snprintf(d.op, sizeof(d.op), "verify");
    if (node_arg(a, req, d.key, &d.has_key, err))
        return -1;
    hms_api_arg_bool(req, "all", &d.all);
    if (d.has_key && memcmp(d.key, ag->ed_pk, 32) == 0)
        d.has_key = false;
    if (d.all)
        d.has_key = false;
    return query_maybe_fetch(ag, a, req, &d, res, err);
}

static int op_export(hms_agent *ag, const hms_api_req *req, msgpack_packer *res,
                     hms_api_error *err)
{
    hms_audit *a = req->ctx;
    deferred d;
    memset(&d, 0, sizeof(d));
    d.a = a;
    snprintf(d.op, sizeof(d.op), "export");
    if (node_arg(a, req, d.key, &d.has_key, err))
        return -1;
    uint64_t limit = 1000;
    if (hms_api_arg_u64(req, "since", &d.since_ns) == -EINVAL)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'since' must be nanoseconds");
    if (hms_api_arg_u64(req, "limit", &limit) == -EINVAL || limit == 0 || limit > EXPORT_PAGE_MAX)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'limit' must be 1-%d",
                            EXPORT_PAGE_MAX);
    d.n = limit;
    if (hms_api_arg_str(req, "cursor", d.cursor, sizeof(d.cursor)) == -EINVAL)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'cursor' must be a string");
    if (d.cursor[0] && (strlen(d.cursor) < 66 || d.cursor[64] != ':'))
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "bad cursor '%s'", d.cursor);
    /* The first page of one other node's log fetches what is missing of
     * it first; later pages (and exports of every log held) walk what is
     * here. (The own log's key stays: without a key, export means every
     * log held.) */
    if (d.has_key && !d.cursor[0])
        return query_maybe_fetch(ag, a, req, &d, res, err);
    deferred *p = malloc(sizeof(*p));
    if (!p)
        return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
    *p = d;
    p->st = hms_api_stream_open(req, deferred_closed, p);
    if (!p->st) {
        free(p);
        return hms_api_fail(err, HMS_API_E_BUSY, "too many streams on this connection");
    }
    run_query(p);
    return HMS_API_STREAMING;
}

static int op_status(hms_agent *ag, const hms_api_req *req, msgpack_packer *res,
                     hms_api_error *err)
{
    json_t *j = hms_audit_query_status(req->ctx);
    if (!j)
        return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
    pack_json(res, j);
    json_decref(j);
    return 0;
}

typedef struct append_wait {
    hms_api_stream *st;
} append_wait;

static void append_closed(hms_api_stream *st, void *ctx)
{
    append_wait *w = ctx;
    w->st = NULL;
}

static void append_done(void *ctx, int status, uint64_t seq)
{
    append_wait *w = ctx;
    if (w->st) {
        if (status == 0) {
            json_t *j = json_pack("{s:I, s:b}", "seq", (json_int_t)seq, "durable", 1);
            send_json_end(w->st, j, NULL);
            json_decref(j);
        } else {
            hms_api_error e;
            hms_api_fail(&e, HMS_API_E_FAILED,
                         "entry %llu was not written to disk: %s (it is kept in memory and "
                         "written when the disk recovers, but not acknowledged)",
                         (unsigned long long)seq, strerror(-status));
            send_json_end(w->st, NULL, &e);
        }
    }
    free(w);
}

static int op_append(hms_agent *ag, const hms_api_req *req, msgpack_packer *res,
                     hms_api_error *err)
{
    hms_audit *a = req->ctx;
    char kind[HMS_AUDIT_KIND_LEN_MAX + 1], reqid[HMS_AUDIT_REQID_LEN_MAX + 1],
        actor[HMS_AUDIT_NAME_LEN_MAX + 1];
    int r = hms_api_arg_str(req, "kind", kind, sizeof(kind));
    if (r)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                            "field 'kind' is required: a word of at most %d printable bytes",
                            HMS_AUDIT_KIND_LEN_MAX);
    r = hms_api_arg_str(req, "request_id", reqid, sizeof(reqid));
    if (r == -EINVAL)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'request_id' must be a string");
    bool has_reqid = r == 0;
    r = hms_api_arg_str(req, "actor", actor, sizeof(actor));
    if (r == -EINVAL)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'actor' must be a string");
    bool has_actor = r == 0;
    bool durable = hms_audit_durable_default(a);
    if (hms_api_arg_bool(req, "durable", &durable) == -EINVAL)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'durable' must be a boolean");
    json_t *fields = NULL;
    const msgpack_object *fo = hms_api_arg(req, "fields");
    if (fo && fo->type != MSGPACK_OBJECT_NIL) {
        if (fo->type != MSGPACK_OBJECT_MAP || !(fields = json_of(fo, 0)))
            return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                                "field 'fields' must be a map with string keys");
    }
    hms_audit_actor who = {req->uid, req->pid, has_actor ? actor : NULL};
    uint64_t seq = 0;
    if (!durable) {
        r = hms_audit_append(a, kind, has_reqid ? reqid : NULL, &who, fields, false, NULL, NULL,
                             &seq);
    } else {
        append_wait *w = calloc(1, sizeof(*w));
        if (!w) {
            json_decref(fields);
            return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
        }
        w->st = hms_api_stream_open(req, append_closed, w);
        if (!w->st) {
            free(w);
            json_decref(fields);
            return hms_api_fail(err, HMS_API_E_BUSY, "too many streams on this connection");
        }
        r = hms_audit_append(a, kind, has_reqid ? reqid : NULL, &who, fields, true, append_done, w,
                             &seq);
        if (r == 0)
            return HMS_API_STREAMING;
        hms_api_error e;
        hms_api_fail(&e, HMS_API_E_BAD_REQUEST, "cannot append: %s", strerror(-r));
        hms_api_stream_end(w->st, NULL, 0, &e);
        free(w);
        return HMS_API_STREAMING;
    }
    if (r == -ENOSPC)
        return hms_api_fail(err, HMS_API_E_BUSY,
                            "the audit log is at its in-memory limit while the disk fails");
    if (r == -EMSGSIZE)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "entry larger than %d bytes",
                            HMS_AUDIT_ENTRY_MAX);
    if (r)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "cannot append: %s",
                            r == -EINVAL ? "bad kind, request id, actor or fields" : strerror(-r));
    msgpack_pack_map(res, 2);
    hms_api_pack_kv_u64(res, "seq", seq);
    hms_api_pack_kv_bool(res, "durable", false);
    return 0;
}

static int op_import(hms_agent *ag, const hms_api_req *req, msgpack_packer *res,
                     hms_api_error *err)
{
    hms_audit *a = req->ctx;
    const msgpack_object *so = hms_api_arg(req, "segment");
    if (!so || so->type != MSGPACK_OBJECT_BIN)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field 'segment' must be binary");
    uint8_t key[32];
    bool has_key;
    if (node_arg(a, req, key, &has_key, err))
        return -1;
    char verdict[200];
    int r = hms_audit_import(a, (const uint8_t *)so->via.bin.ptr, so->via.bin.size,
                             has_key ? key : NULL, verdict, sizeof(verdict));
    hms_audit_actor who = {req->uid, req->pid, "hmsctl"};
    hms_audit_emit(a, "admin.audit.import", NULL, &who,
                   json_pack("{s:s, s:I}", "verdict", verdict, "bytes", (json_int_t)so->via.bin.size));
    if (r)
        return hms_api_fail(err, HMS_API_E_FAILED, "%s", verdict);
    msgpack_pack_map(res, 1);
    hms_api_pack_kv_str(res, "verdict", verdict);
    return 0;
}

static const hms_api_op audit_ops[] = {
    {"audit.tail", op_tail, 0},
    {"audit.get", op_get, 0},
    {"audit.trace", op_trace, 0},
    {"audit.verify", op_verify, 0},
    {"audit.export", op_export, 0},
    {"audit.status", op_status, 0},
    {"audit.append", op_append, 0},
    {"audit.import", op_import, HMS_API_ADMIN},
    {NULL, NULL, 0},
};

int hms_audit_ops_register(hms_agent *ag, hms_audit *a)
{
    return hms_api_register(ag->api, audit_ops, a);
}
