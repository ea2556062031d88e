/*
 * Socket operations of the service catalog (docs/api.md, docs/catalog.md):
 *
 *   register      {name, port, service_id?, address?, tags?, meta?, checks?}
 *                 or {definition: JSON text of a service file} -> {id, status}
 *   deregister    {service_id}                                -> {id}
 *   check         {service_id, status: pass|warn|fail, note?} -> {id, status}
 *
 * (The instance id travels as service_id: id is the request id.)
 *   services      {}                -> [local instance with its checks]
 *   lookup        {name, tags?, all?}                          -> [instance]
 *   catalog       {}                -> {services: [...], nodes: [...]}
 *   service.watch {name, tags?, all?}  stream: the lookup result now, then
 *                 again each time it changes
 *
 * An instance is the map {id, name, node, address, port, tags, meta,
 * status}. Requests are checked here for shape; the catalog checks limits
 * and values and its messages are passed on as they are.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/audit/audit.h"
#include "agent/catalog/catalog.h"

#define LOOKUP_TAGS_MAX CAT_TAGS_MAX

static int bad(hms_api_error *err, const char *fmt, const char *key)
{
    return hms_api_fail(err, HMS_API_E_BAD_REQUEST, fmt, key);
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    hms_api_pack_kv_u64(pk, k, v);
}

static void pack_instance(msgpack_packer *pk, const cat_instance *x, const char *node)
{
    msgpack_pack_map(pk, 8);
    hms_api_pack_kv_str(pk, "id", x->id);
    hms_api_pack_kv_str(pk, "name", x->name);
    hms_api_pack_kv_str(pk, "node", node);
    hms_api_pack_kv_str(pk, "address", x->address);
    pack_kv_u64(pk, "port", x->port);
    hms_api_pack_str(pk, "tags");
    msgpack_pack_array(pk, x->ntags);
    for (size_t i = 0; i < x->ntags; i++)
        hms_api_pack_str(pk, x->tags[i]);
    hms_api_pack_str(pk, "meta");
    msgpack_pack_map(pk, x->nmeta);
    for (size_t i = 0; i < x->nmeta; i++)
        hms_api_pack_kv_str(pk, x->meta[i].key, x->meta[i].value);
    hms_api_pack_kv_str(pk, "status", cat_status_name((cat_status)x->status));
}

static void actor_of(const hms_api_req *req, hms_audit_actor *a)
{
    a->uid = req->uid;
    a->pid = req->pid;
    a->name = NULL;
}

static int errno_code(int rc, hms_api_error *err, const char *msg)
{
    /* -ENOSPC: a capacity limit (instances per node), retry after freeing;
     * -E2BIG: a field over its limit, a bad request like any other */
    const char *code = rc == -ENOENT   ? HMS_API_E_NOT_FOUND
                       : rc == -ENOSPC ? HMS_API_E_BUSY
                       : rc == -ENOMEM ? HMS_API_E_INTERNAL
                       : rc == -EPERM || rc == -EEXIST ? HMS_API_E_FAILED
                                                       : HMS_API_E_BAD_REQUEST;
    return hms_api_fail(err, code, "%s", msg);
}

/* ---- register ------------------------------------------------------------ */

static int str_field(const msgpack_object *o, const char *key, char *buf, size_t cap,
                     hms_api_error *err)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return bad(err, "field '%s' must be a string", key);
    if (o->via.str.size >= cap)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "field '%s' is longer than %zu bytes",
                            key, cap - 1);
    if (memchr(o->via.str.ptr, 0, o->via.str.size))
        return bad(err, "field '%s' contains a NUL byte", key);
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    return 0;
}

static int u32_field(const msgpack_object *o, const char *key, uint32_t max, uint32_t *out,
                     hms_api_error *err)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                            "field '%s' must be an integer 0-%u", key, max);
    *out = (uint32_t)o->via.u64;
    return 0;
}

static int parse_check(const msgpack_object *o, cat_check_def *ck, hms_api_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return bad(err, "each of '%s' must be a map", "checks");
    memset(ck, 0, sizeof(*ck));
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        char key[32], s[CAT_CHECK_TARGET_MAX + 1];
        uint32_t n = 0;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof(key))
            return bad(err, "%s has a key that is not a short string", "check");
        memcpy(key, k->via.str.ptr, k->via.str.size);
        key[k->via.str.size] = '\0';
        if (v->type == MSGPACK_OBJECT_NIL)
            continue;
        if (!strcmp(key, "kind")) {
            if (str_field(v, "checks.kind", s, sizeof(s), err))
                return -1;
            if (!strcmp(s, "http"))
                ck->kind = CAT_CHECK_HTTP;
            else if (!strcmp(s, "tcp"))
                ck->kind = CAT_CHECK_TCP;
            else if (!strcmp(s, "ttl"))
                ck->kind = CAT_CHECK_TTL;
            else
                return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                                    "check kind '%.32s' is not http, tcp or ttl", s);
        } else if (!strcmp(key, "target")) {
            if (str_field(v, "checks.target", ck->target, sizeof(ck->target), err))
                return -1;
        } else if (!strcmp(key, "interval_ms")) {
            if (u32_field(v, "checks.interval_ms", 86400000, &ck->interval_ms, err))
                return -1;
        } else if (!strcmp(key, "timeout_ms")) {
            if (u32_field(v, "checks.timeout_ms", 86400000, &ck->timeout_ms, err))
                return -1;
        } else if (!strcmp(key, "ttl_ms")) {
            if (u32_field(v, "checks.ttl_ms", 86400000, &ck->ttl_ms, err))
                return -1;
        } else if (!strcmp(key, "rise")) {
            if (u32_field(v, "checks.rise", CAT_HEALTH_COUNT_MAX, &n, err))
                return -1;
            ck->rise = (uint8_t)n;
        } else if (!strcmp(key, "fall")) {
            if (u32_field(v, "checks.fall", CAT_HEALTH_COUNT_MAX, &n, err))
                return -1;
            ck->fall = (uint8_t)n;
        } else {
            return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "unknown check field '%s'", key);
        }
    }
    return 0;
}

/* Fills r from the request fields. On error r may hold part of it. */
static int parse_registration(const hms_api_req *req, cat_registration *r, hms_api_error *err)
{
    char msg[256];
    const msgpack_object *o;
    cat_instance *x = &r->inst;
    if ((o = hms_api_arg(req, "name")) && str_field(o, "name", x->name, sizeof(x->name), err))
        return -1;
    if ((o = hms_api_arg(req, "service_id")) &&
        str_field(o, "service_id", x->id, sizeof(x->id), err))
        return -1;
    if ((o = hms_api_arg(req, "address")) &&
        str_field(o, "address", x->address, sizeof(x->address), err))
        return -1;
    if ((o = hms_api_arg(req, "port"))) {
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 < 1 || o->via.u64 > 65535)
            return bad(err, "field '%s' must be an integer 1-65535", "port");
        x->port = (uint16_t)o->via.u64;
    }
    if ((o = hms_api_arg(req, "tags"))) {
        if (o->type != MSGPACK_OBJECT_ARRAY)
            return bad(err, "field '%s' must be an array of strings", "tags");
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            char t[CAT_TAG_MAX + 2];
            const msgpack_object *e = &o->via.array.ptr[i];
            if (e->type != MSGPACK_OBJECT_STR)
                return bad(err, "field '%s' must be an array of strings", "tags");
            if (e->via.str.size > CAT_TAG_MAX)
                return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                                    "tag '%.32s...' is longer than %d bytes (limit tag_max)",
                                    e->via.str.ptr, CAT_TAG_MAX);
            if (str_field(e, "tags", t, sizeof(t), err))
                return -1;
            int rc = cat_instance_add_tag(x, t, msg, sizeof(msg));
            if (rc)
                return errno_code(rc, err, msg);
        }
    }
    if ((o = hms_api_arg(req, "meta"))) {
        if (o->type != MSGPACK_OBJECT_MAP)
            return bad(err, "field '%s' must be a map of strings", "meta");
        if (o->via.map.size > CAT_META_PAIRS_MAX)
            return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                                "too many metadata pairs: %u, limit meta_pairs_max is %d",
                                o->via.map.size, CAT_META_PAIRS_MAX);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            char k[CAT_META_KEY_MAX + 2], v[CAT_META_VALUE_MAX + 2];
            const msgpack_object *ko = &o->via.map.ptr[i].key, *vo = &o->via.map.ptr[i].val;
            if (ko->type != MSGPACK_OBJECT_STR || vo->type != MSGPACK_OBJECT_STR)
                return bad(err, "field '%s' must be a map of strings", "meta");
            if (ko->via.str.size > CAT_META_KEY_MAX || vo->via.str.size > CAT_META_VALUE_MAX)
                return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                                    "metadata key or value too long: key %d bytes and value %d "
                                    "bytes at most (limits meta_key_max, meta_value_max)",
                                    CAT_META_KEY_MAX, CAT_META_VALUE_MAX);
            if (str_field(ko, "meta", k, sizeof(k), err) || str_field(vo, "meta", v, sizeof(v), err))
                return -1;
            int rc = cat_instance_add_meta(x, k, v, msg, sizeof(msg));
            if (rc)
                return errno_code(rc, err, msg);
        }
    }
    if ((o = hms_api_arg(req, "checks"))) {
        if (o->type != MSGPACK_OBJECT_ARRAY)
            return bad(err, "field '%s' must be an array of maps", "checks");
        if (o->via.array.size > CAT_CHECKS_MAX)
            return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "too many checks: %u, limit checks_max is %d",
                                o->via.array.size, CAT_CHECKS_MAX);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (parse_check(&o->via.array.ptr[i], &r->checks[r->nchecks++], err))
                return -1;
    }
    return 0;
}

static int op_register(hms_agent *a, const hms_api_req *req, msgpack_packer *pk,
                       hms_api_error *err)
{
    hms_cat *c = req->ctx;
    cat_registration r;
    char msg[512];
    int rc;
    const msgpack_object *def = hms_api_arg(req, "definition");
    if (def && def->type != MSGPACK_OBJECT_NIL) {
        if (def->type != MSGPACK_OBJECT_STR)
            return bad(err, "field '%s' must be a string (JSON text)", "definition");
        rc = cat_registration_from_json(def->via.str.ptr, def->via.str.size, &r, msg, sizeof(msg));
        if (rc)
            return errno_code(rc, err, msg);
    } else {
        cat_registration_init(&r);
        if (parse_registration(req, &r, err)) {
            cat_registration_clear(&r);
            return -1;
        }
    }
    hms_audit_actor actor;
    actor_of(req, &actor);
    rc = hms_catalog_register(c, &r, &actor, msg, sizeof(msg));
    if (rc) {
        cat_registration_clear(&r);
        return errno_code(rc, err, msg);
    }
    const char *id = r.inst.id[0] ? r.inst.id : r.inst.name;
    const cat_instance *x = cat_view_local_get(hms_catalog_view(c), id);
    msgpack_pack_map(pk, 2);
    hms_api_pack_kv_str(pk, "id", id);
    hms_api_pack_kv_str(pk, "status", x ? cat_status_name((cat_status)x->status) : "unknown");
    cat_registration_clear(&r);
    return 0;
}

static int op_deregister(hms_agent *a, const hms_api_req *req, msgpack_packer *pk,
                         hms_api_error *err)
{
    char id[CAT_ID_MAX + 1], msg[256];
    if (hms_api_arg_str(req, "service_id", id, sizeof(id)))
        return bad(err, "field '%s' (a string of at most 64 bytes) is required", "service_id");
    hms_audit_actor actor;
    actor_of(req, &actor);
    int rc = hms_catalog_deregister(req->ctx, id, &actor, msg, sizeof(msg));
    if (rc)
        return errno_code(rc, err, msg);
    msgpack_pack_map(pk, 1);
    hms_api_pack_kv_str(pk, "id", id);
    return 0;
}

static int op_check(hms_agent *a, const hms_api_req *req, msgpack_packer *pk, hms_api_error *err)
{
    char id[CAT_ID_MAX + 1], st[16], note[CAT_CHECK_OUTPUT_MAX + 1] = "", msg[256];
    cat_status s;
    if (hms_api_arg_str(req, "service_id", id, sizeof(id)))
        return bad(err, "field '%s' (a string of at most 64 bytes) is required", "service_id");
    if (hms_api_arg_str(req, "status", st, sizeof(st)) || cat_status_parse(st, &s))
        return bad(err, "field '%s' must be pass, warn or fail", "status");
    int rc = hms_api_arg_str(req, "note", note, sizeof(note));
    if (rc == -EINVAL)
        return bad(err, "field '%s' must be a string of at most 127 bytes", "note");
    hms_audit_actor actor;
    actor_of(req, &actor);
    rc = hms_catalog_check_update(req->ctx, id, s, note, &actor, msg, sizeof(msg));
    if (rc)
        return errno_code(rc, err, msg);
    const cat_instance *x = cat_view_local_get(hms_catalog_view(req->ctx), id);
    msgpack_pack_map(pk, 2);
    hms_api_pack_kv_str(pk, "id", id);
    hms_api_pack_kv_str(pk, "status", x ? cat_status_name((cat_status)x->status) : "unknown");
    return 0;
}

/* ---- queries ------------------------------------------------------------- */

static int op_services(hms_agent *a, const hms_api_req *req, msgpack_packer *pk,
                       hms_api_error *err)
{
    hms_cat *c = req->ctx;
    size_t n = hms_catalog_local_count(c);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        const char *source;
        size_t nchecks;
        const cat_instance *x = hms_catalog_local_at(c, i, &source, &nchecks);
        /* the instance map plus source and checks */
        msgpack_pack_map(pk, 10);
        hms_api_pack_kv_str(pk, "id", x->id);
        hms_api_pack_kv_str(pk, "name", x->name);
        hms_api_pack_kv_str(pk, "node", a->name);
        hms_api_pack_kv_str(pk, "address", x->address);
        pack_kv_u64(pk, "port", x->port);
        hms_api_pack_str(pk, "tags");
        msgpack_pack_array(pk, x->ntags);
        for (size_t t = 0; t < x->ntags; t++)
            hms_api_pack_str(pk, x->tags[t]);
        hms_api_pack_str(pk, "meta");
        msgpack_pack_map(pk, x->nmeta);
        for (size_t m = 0; m < x->nmeta; m++)
            hms_api_pack_kv_str(pk, x->meta[m].key, x->meta[m].value);
        hms_api_pack_kv_str(pk, "status", cat_status_name((cat_status)x->status));
        hms_api_pack_kv_str(pk, "source", source ? source : "api");
        hms_api_pack_str(pk, "checks");
        msgpack_pack_array(pk, nchecks);
        for (size_t k = 0; k < nchecks; k++) {
            cat_check_info ci;
            hms_catalog_local_check(c, i, k, &ci);
            msgpack_pack_map(pk, 8);
            hms_api_pack_kv_str(pk, "kind", cat_check_kind_name(ci.def->kind));
            hms_api_pack_kv_str(pk, "target", ci.def->target);
            pack_kv_u64(pk, "interval_ms", ci.def->interval_ms);
            pack_kv_u64(pk, "timeout_ms", ci.def->timeout_ms);
            pack_kv_u64(pk, "ttl_ms", ci.def->ttl_ms);
            hms_api_pack_kv_str(pk, "status", cat_status_name(ci.status));
            hms_api_pack_kv_str(pk, "output", ci.output);
            pack_kv_u64(pk, "transitions", ci.transitions);
        }
    }
    return 0;
}

typedef struct lookup_args {
    char name[CAT_NAME_MAX + 1];
    char tagbuf[LOOKUP_TAGS_MAX][CAT_TAG_MAX + 1];
    const char *tags[LOOKUP_TAGS_MAX];
    cat_query q;
} lookup_args;

static int parse_lookup(const hms_api_req *req, lookup_args *la, hms_api_error *err)
{
    char msg[256];
    memset(la, 0, sizeof(*la));
    int rc = hms_api_arg_str(req, "name", la->name, sizeof(la->name));
    if (rc == -ENOENT)
        return bad(err, "field '%s' is required", "name");
    if (rc)
        return bad(err, "field '%s' must be a service name of at most 63 bytes", "name");
    if (cat_check_name(la->name, msg, sizeof(msg)))
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "%s", msg);
    const msgpack_object *o = hms_api_arg(req, "tags");
    if (o && o->type != MSGPACK_OBJECT_NIL) {
        if (o->type != MSGPACK_OBJECT_ARRAY)
            return bad(err, "field '%s' must be an array of strings", "tags");
        if (o->via.array.size > LOOKUP_TAGS_MAX)
            return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                                "too many tags in a lookup: %u, limit tags_max is %d",
                                o->via.array.size, LOOKUP_TAGS_MAX);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (str_field(&o->via.array.ptr[i], "tags", la->tagbuf[i], sizeof(la->tagbuf[i]), err))
                return -1;
            la->tags[i] = la->tagbuf[i];
        }
        la->q.ntags = o->via.array.size;
    }
    bool all = false;
    if (hms_api_arg_bool(req, "all", &all) == -EINVAL)
        return bad(err, "field '%s' must be a boolean", "all");
    la->q.name = la->name;
    la->q.tags = la->tags;
    la->q.all = all;
    return 0;
}

static int pack_lookup(const hms_cat *c, const cat_query *q, msgpack_packer *pk)
{
    cat_hit *h;
    size_t n;
    int rc = cat_view_lookup(hms_catalog_view(c), q, &h, &n);
    if (rc)
        return rc;
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        pack_instance(pk, h[i].inst, h[i].node);
    free(h);
    return 0;
}

static int op_lookup(hms_agent *a, const hms_api_req *req, msgpack_packer *pk,
                     hms_api_error *err)
{
    lookup_args la;
    if (parse_lookup(req, &la, err))
        return -1;
    if (pack_lookup(req->ctx, &la.q, pk))
        return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
    return 0;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int op_catalog(hms_agent *a, const hms_api_req *req, msgpack_packer *pk,
                      hms_api_error *err)
{
    const cat_view *v = hms_catalog_view(req->ctx);
    cat_service_count *sc;
    size_t n;
    if (cat_view_catalog(v, &sc, &n))
        return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
    msgpack_pack_map(pk, 4);
    hms_api_pack_str(pk, "services");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 5);
        hms_api_pack_kv_str(pk, "name", sc[i].name);
        pack_kv_u64(pk, "passing", sc[i].passing);
        pack_kv_u64(pk, "warning", sc[i].warning);
        pack_kv_u64(pk, "critical", sc[i].critical);
        pack_kv_u64(pk, "nodes", sc[i].nodes);
    }
    free(sc);
    /* Per node: the copy held here. Two agents agree when these match. */
    size_t nn = cat_view_count(v);
    hms_api_pack_str(pk, "nodes");
    msgpack_pack_array(pk, nn);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, CAT_DIGEST_LEN);
    for (size_t i = 0; i < nn; i++) {
        const cat_node *nd = cat_view_at(v, i);
        char dg[2 * CAT_DIGEST_LEN + 1];
        hex(nd->digest, CAT_DIGEST_LEN, dg);
        msgpack_pack_map(pk, 6);
        hms_api_pack_kv_str(pk, "node", nd->name);
        hms_api_pack_kv_bool(pk, "up", nd->up);
        hms_api_pack_kv_bool(pk, "have", nd->have);
        pack_kv_u64(pk, "version", nd->version);
        hms_api_pack_kv_str(pk, "digest", nd->have ? dg : "");
        pack_kv_u64(pk, "instances", nd->n);
        if (nd->up && nd->have) {
            crypto_generichash_update(&st, (const uint8_t *)nd->name, strlen(nd->name) + 1);
            crypto_generichash_update(&st, nd->digest, CAT_DIGEST_LEN);
        }
    }
    /* One digest of what lookups see: equal on agents that agree. */
    uint8_t vd[CAT_DIGEST_LEN];
    char vdh[2 * CAT_DIGEST_LEN + 1];
    crypto_generichash_final(&st, vd, CAT_DIGEST_LEN);
    hex(vd, CAT_DIGEST_LEN, vdh);
    hms_api_pack_kv_str(pk, "view_digest", vdh);
    cat_stats cs;
    hms_catalog_get_stats(req->ctx, &cs);
    hms_api_pack_str(pk, "stats");
    msgpack_pack_map(pk, 11);
    pack_kv_u64(pk, "fetches", cs.fetches);
    pack_kv_u64(pk, "fetch_errors", cs.fetch_errors);
    pack_kv_u64(pk, "fetch_refused", cs.fetch_refused);
    pack_kv_u64(pk, "sets_applied", cs.sets_applied);
    pack_kv_u64(pk, "serves", cs.serves);
    pack_kv_u64(pk, "checks_run", cs.checks_run);
    pack_kv_u64(pk, "check_transitions", cs.check_transitions);
    pack_kv_u64(pk, "registrations", cs.registrations);
    pack_kv_u64(pk, "deregistrations", cs.deregistrations);
    pack_kv_u64(pk, "refused", cs.refused);
    pack_kv_u64(pk, "watches_now", cs.watches_now);
    return 0;
}

/* ---- watch --------------------------------------------------------------- */

typedef struct svc_watch {
    hms_cat *c;
    hms_api_stream *st;
    int handle;
    lookup_args la;
    uint8_t last[CAT_DIGEST_LEN];
    bool sent;
} svc_watch;

static void watch_push(void *ctx)
{
    svc_watch *w = ctx;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (pack_lookup(w->c, &w->la.q, &pk) == 0 && sb.data) {
        uint8_t h[CAT_DIGEST_LEN];
        crypto_generichash(h, sizeof(h), (const uint8_t *)sb.data, sb.size, NULL, 0);
        if (!w->sent || sodium_memcmp(h, w->last, sizeof(h))) {
            memcpy(w->last, h, sizeof(h));
            w->sent = true;
            /* -ENOBUFS: the client is too slow; on_close follows from the loop */
            hms_api_stream_send(w->st, sb.data, sb.size);
        }
    }
    msgpack_sbuffer_destroy(&sb);
}

static void watch_closed(hms_api_stream *st, void *ctx)
{
    svc_watch *w = ctx;
    if (w->c && w->handle > 0)
        hms_catalog_watch_remove(w->c, w->handle);
    free(w);
}

static int op_watch(hms_agent *a, const hms_api_req *req, msgpack_packer *pk, hms_api_error *err)
{
    svc_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
    if (parse_lookup(req, &w->la, err)) {
        free(w);
        return -1;
    }
    /* parse_lookup pointed q at its own buffers inside w: still valid */
    w->c = req->ctx;
    w->handle = hms_catalog_watch_add(w->c, watch_push, w);
    if (w->handle < 0) {
        free(w);
        return hms_api_fail(err, HMS_API_E_BUSY, "too many watches: limit watches_max is %d",
                            CAT_WATCHES_MAX);
    }
    w->st = hms_api_stream_open(req, watch_closed, w);
    if (!w->st) {
        hms_catalog_watch_remove(w->c, w->handle);
        free(w);
        return hms_api_fail(err, HMS_API_E_BUSY, "too many streams on this connection");
    }
    watch_push(w);
    return HMS_API_STREAMING;
}

static const hms_api_op catalog_ops[] = {
    {"register", op_register, 0},
    {"deregister", op_deregister, 0},
    {"check", op_check, 0},
    {"services", op_services, 0},
    {"lookup", op_lookup, 0},
    {"catalog", op_catalog, 0},
    {"service.watch", op_watch, 0},
    {NULL, NULL, 0},
};

int hms_catalog_ops_register(hms_agent *a, hms_cat *c)
{
    if (!a->api)
        return 0;
    return hms_api_register(a->api, catalog_ops, c);
}
