/*
 * libhmsclient audit calls (hms_audit.h): request packing and reply
 * conversion to JSON over the generic request/stream machinery of client.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libclient/hms_audit.h"

typedef struct args {
    const char *node;
    const char *request_id;
    const char *kind;
    const char *actor;
    const char *cursor;
    const json_t *fields;
    const uint8_t *seg;
    size_t seglen;
    uint64_t n, since, limit;
    bool has_n, has_since, has_limit, follow, all, durable, has_durable;
} args;

static void pack_s(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_json(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v) {
            pack_s(pk, k);
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

static int pack_args(msgpack_packer *pk, void *ctx)
{
    const args *a = ctx;
    size_t n = !!a->node + !!a->request_id + !!a->kind + !!a->actor + !!a->cursor + !!a->fields +
               !!a->seg + a->has_n + a->has_since + a->has_limit + a->follow + a->all +
               a->has_durable;
    msgpack_pack_map(pk, n);
    if (a->node) {
        pack_s(pk, "node");
        pack_s(pk, a->node);
    }
    if (a->request_id) {
        pack_s(pk, "request_id");
        pack_s(pk, a->request_id);
    }
    if (a->kind) {
        pack_s(pk, "kind");
        pack_s(pk, a->kind);
    }
    if (a->actor) {
        pack_s(pk, "actor");
        pack_s(pk, a->actor);
    }
    if (a->cursor) {
        pack_s(pk, "cursor");
        pack_s(pk, a->cursor);
    }
    if (a->fields) {
        pack_s(pk, "fields");
        pack_json(pk, a->fields);
    }
    if (a->seg) {
        pack_s(pk, "segment");
        msgpack_pack_bin(pk, a->seglen);
        msgpack_pack_bin_body(pk, a->seg, a->seglen);
    }
    if (a->has_n) {
        pack_s(pk, "n");
        msgpack_pack_uint64(pk, a->n);
    }
    if (a->has_since) {
        pack_s(pk, "since");
        msgpack_pack_uint64(pk, a->since);
    }
    if (a->has_limit) {
        pack_s(pk, "limit");
        msgpack_pack_uint64(pk, a->limit);
    }
    if (a->follow) {
        pack_s(pk, "follow");
        msgpack_pack_true(pk);
    }
    if (a->all) {
        pack_s(pk, "all");
        msgpack_pack_true(pk);
    }
    if (a->has_durable) {
        pack_s(pk, "durable");
        if (a->durable)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
    return 0;
}

/* One request whose result becomes a JSON value in *out. */
static int json_call(hms_client *c, const char *op, args *a, json_t **out)
{
    hms_reply rep;
    *out = NULL;
    int r = hms_request(c, op, pack_args, a, &rep);
    if (r == 0) {
        *out = rep.result ? hms_json_from_msgpack(rep.result) : json_null();
        if (!*out)
            r = -EPROTO;
    }
    hms_reply_destroy(&rep);
    return r;
}

int hms_client_audit_tail(hms_client *c, const char *node, size_t n, json_t **out)
{
    args a = {.node = node, .n = n, .has_n = true};
    return json_call(c, "audit.tail", &a, out);
}

int hms_client_audit_follow(hms_client *c, const char *node, size_t n, hms_audit_entry_cb fn,
                            void *ctx)
{
    args a = {.node = node, .n = n, .has_n = true, .follow = true};
    int r = hms_stream_start(c, "audit.tail", pack_args, &a);
    if (r)
        return r;
    for (;;) {
        hms_reply rep;
        r = hms_stream_next(c, 0, &rep);
        if (r != 0) {
            hms_reply_destroy(&rep);
            return r;
        }
        json_t *j = rep.result ? hms_json_from_msgpack(rep.result) : NULL;
        bool more = rep.more;
        hms_reply_destroy(&rep);
        int stop = 0;
        json_t *list = json_object_get(j, "entries"), *one = json_object_get(j, "entry");
        for (size_t i = 0; i < json_array_size(list) && !stop; i++)
            stop = fn(json_array_get(list, i), ctx);
        if (one && !stop)
            stop = fn(one, ctx);
        json_decref(j);
        if (stop)
            return stop;
        if (!more)
            return 0;
    }
}

int hms_client_audit_get(hms_client *c, const char *request_id, const char *node, json_t **out)
{
    args a = {.request_id = request_id, .node = node};
    return json_call(c, "audit.get", &a, out);
}

int hms_client_audit_trace(hms_client *c, const char *request_id, json_t **out)
{
    args a = {.request_id = request_id};
    return json_call(c, "audit.trace", &a, out);
}

int hms_client_audit_verify(hms_client *c, const char *node, bool all, json_t **report)
{
    args a = {.node = node, .all = all};
    return json_call(c, "audit.verify", &a, report);
}

int hms_client_audit_export(hms_client *c, const char *node, uint64_t since_ns,
                            hms_audit_entry_cb fn, void *ctx)
{
    char cursor[100] = "";
    for (;;) {
        args a = {.node = node, .since = since_ns, .has_since = true, .limit = 1000,
                  .has_limit = true, .cursor = cursor[0] ? cursor : NULL};
        json_t *page;
        int r = json_call(c, "audit.export", &a, &page);
        if (r)
            return r;
        json_t *entries = json_object_get(page, "entries");
        for (size_t i = 0; i < json_array_size(entries); i++) {
            int stop = fn(json_array_get(entries, i), ctx);
            if (stop) {
                json_decref(page);
                return stop;
            }
        }
        const char *next = json_string_value(json_object_get(page, "next"));
        if (!next || strlen(next) >= sizeof(cursor)) {
            json_decref(page);
            return 0;
        }
        snprintf(cursor, sizeof(cursor), "%s", next);
        json_decref(page);
    }
}

int hms_client_audit_status(hms_client *c, json_t **out)
{
    args a = {0};
    return json_call(c, "audit.status", &a, out);
}

int hms_client_audit_append(hms_client *c, const char *kind, const char *request_id,
                            const char *actor, const json_t *fields, bool durable, uint64_t *seq)
{
    if (fields && !json_is_object(fields))
        return -EINVAL;
    args a = {.kind = kind, .request_id = request_id, .actor = actor, .fields = fields,
              .durable = durable, .has_durable = true};
    json_t *res;
    int r = json_call(c, "audit.append", &a, &res);
    if (r == 0 && seq)
        *seq = (uint64_t)json_integer_value(json_object_get(res, "seq"));
    json_decref(res);
    return r;
}

int hms_client_audit_import(hms_client *c, const uint8_t *seg, size_t len, const char *node,
                            char *verdict, size_t cap)
{
    args a = {.seg = seg, .seglen = len, .node = node};
    json_t *res;
    int r = json_call(c, "audit.import", &a, &res);
    const char *v = json_string_value(json_object_get(res, "verdict"));
    if (r == 0 && verdict)
        snprintf(verdict, cap, "%s", v ? v : "");
    json_decref(res);
    return r;
}
