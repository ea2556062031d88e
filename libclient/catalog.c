/*
 * libhmsclient catalog calls (see hms_catalog.h): request packing for the
 * register, deregister, check, lookup, services, catalog and service.watch
 * operations, and decoding of instance maps from the agent's replies.
 */
#include "libclient/hms_catalog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/api.h"

static void pstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pstr(pk, k);
    pstr(pk, v);
}

/* ---- decoding ------------------------------------------------------------ */

static int copy_str(const msgpack_object *o, char *buf, size_t cap)
{
    return hms_mp_str_copy(o, buf, cap) ? -EPROTO : 0;
}

static char *dup_str(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, 0, o->via.str.size))
        return NULL;
    char *s = malloc(o->via.str.size + 1);
    if (s) {
        memcpy(s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = '\0';
    }
    return s;
}

static void instance_clear(hms_instance *x)
{
    for (size_t i = 0; i < x->ntags; i++)
        free(x->tags[i]);
    free(x->tags);
    for (size_t i = 0; i < x->nmeta; i++) {
        free(x->meta[i].key);
        free(x->meta[i].value);
    }
    free(x->meta);
    memset(x, 0, sizeof(*x));
}

void hms_instances_free(hms_instance *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        instance_clear(&v[i]);
    free(v);
}

int hms_instance_from_msgpack(const msgpack_object *o, hms_instance *out)
{
    memset(out, 0, sizeof(*out));
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return -EPROTO;
    const msgpack_object *f;
    if (!(f = hms_mp_get(o, "id")) || copy_str(f, out->id, sizeof(out->id)) ||
        !(f = hms_mp_get(o, "name")) || copy_str(f, out->name, sizeof(out->name)) ||
        !(f = hms_mp_get(o, "address")) || copy_str(f, out->address, sizeof(out->address)) ||
        !(f = hms_mp_get(o, "status")) || copy_str(f, out->status, sizeof(out->status)))
        goto bad;
    if ((f = hms_mp_get(o, "node")) && copy_str(f, out->node, sizeof(out->node)))
        goto bad;
    f = hms_mp_get(o, "port");
    if (!f || f->type != MSGPACK_OBJECT_POSITIVE_INTEGER || f->via.u64 > 65535)
        goto bad;
    out->port = (uint16_t)f->via.u64;
    if ((f = hms_mp_get(o, "tags"))) {
        if (f->type != MSGPACK_OBJECT_ARRAY)
            goto bad;
        if (f->via.array.size) {
            out->tags = calloc(f->via.array.size, sizeof(char *));
            if (!out->tags)
                goto bad;
        }
        for (uint32_t i = 0; i < f->via.array.size; i++) {
            if (!(out->tags[i] = dup_str(&f->via.array.ptr[i])))
                goto bad;
            out->ntags++;
        }
    }
    if ((f = hms_mp_get(o, "meta"))) {
        if (f->type != MSGPACK_OBJECT_MAP)
            goto bad;
        if (f->via.map.size) {
            out->meta = calloc(f->via.map.size, sizeof(hms_kv));
            if (!out->meta)
                goto bad;
        }
        for (uint32_t i = 0; i < f->via.map.size; i++) {
            out->meta[i].key = dup_str(&f->via.map.ptr[i].key);
            out->meta[i].value = dup_str(&f->via.map.ptr[i].val);
            out->nmeta++;
            if (!out->meta[i].key || !out->meta[i].value)
                goto bad;
        }
    }
    return 0;
bad:
    instance_clear(out);
    return -EPROTO;
}

int hms_instances_from_msgpack(const msgpack_object *o, hms_instance **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!o || o->type != MSGPACK_OBJECT_ARRAY)
        return -EPROTO;
    if (o->via.array.size == 0)
        return 0;
    hms_instance *v = calloc(o->via.array.size, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        if (hms_instance_from_msgpack(&o->via.array.ptr[i], &v[i])) {
            hms_instances_free(v, i);
            return -EPROTO;
        }
    }
    *out = v;
    *n = o->via.array.size;
    return 0;
}

/* ---- register ------------------------------------------------------------ */

static int pack_register(msgpack_packer *pk, void *ctx)
{
    const hms_service_def *d = ctx;
    size_t n = 5 + (d->id ? 1 : 0) + (d->address ? 1 : 0);
    msgpack_pack_map(pk, n);
    kv_str(pk, "name", d->name ? d->name : "");
    if (d->id)
        kv_str(pk, "service_id", d->id);
    if (d->address)
        kv_str(pk, "address", d->address);
    pstr(pk, "port");
    msgpack_pack_uint16(pk, d->port);
    pstr(pk, "tags");
    msgpack_pack_array(pk, d->ntags);
    for (size_t i = 0; i < d->ntags; i++)
        pstr(pk, d->tags[i]);
    pstr(pk, "meta");
    msgpack_pack_map(pk, d->nmeta);
    for (size_t i = 0; i < d->nmeta; i++)
        kv_str(pk, d->meta_keys[i], d->meta_values[i]);
    pstr(pk, "checks");
    msgpack_pack_array(pk, d->nchecks);
    for (size_t i = 0; i < d->nchecks; i++) {
        const hms_check_spec *ck = &d->checks[i];
        msgpack_pack_map(pk, 7);
        kv_str(pk, "kind", ck->kind ? ck->kind : "");
        pstr(pk, "target");
        if (ck->target)
            pstr(pk, ck->target);
        else
            msgpack_pack_nil(pk);
        pstr(pk, "interval_ms");
        msgpack_pack_uint32(pk, ck->interval_ms);
        pstr(pk, "timeout_ms");
        msgpack_pack_uint32(pk, ck->timeout_ms);
        pstr(pk, "ttl_ms");
        msgpack_pack_uint32(pk, ck->ttl_ms);
        pstr(pk, "rise");
        msgpack_pack_uint8(pk, ck->rise);
        pstr(pk, "fall");
        msgpack_pack_uint8(pk, ck->fall);
    }
    return 0;
}

static int id_from(hms_reply *rep, char *id_out, size_t cap)
{
    if (!id_out || !cap)
        return 0;
    const msgpack_object *id = hms_mp_get(rep->result, "id");
    return id && hms_mp_str_copy(id, id_out, cap) == 0 ? 0 : -EPROTO;
}

int hms_register(hms_client *c, const hms_service_def *def, char *id_out, size_t cap)
{
    hms_reply rep;
    int rc = hms_request(c, "register", pack_register, (void *)def, &rep);
    if (rc == 0)
        rc = id_from(&rep, id_out, cap);
    hms_reply_destroy(&rep);
    return rc;
}

static int pack_definition(msgpack_packer *pk, void *ctx)
{
    msgpack_pack_map(pk, 1);
    kv_str(pk, "definition", ctx);
    return 0;
}

int hms_register_json(hms_client *c, const char *json, char *id_out, size_t cap)
{
    hms_reply rep;
    int rc = hms_request(c, "register", pack_definition, (void *)json, &rep);
    if (rc == 0)
        rc = id_from(&rep, id_out, cap);
    hms_reply_destroy(&rep);
    return rc;
}

static int pack_id(msgpack_packer *pk, void *ctx)
{
    msgpack_pack_map(pk, 1);
    kv_str(pk, "service_id", ctx);
    return 0;
}

int hms_deregister(hms_client *c, const char *id)
{
    hms_reply rep;
    int rc = hms_request(c, "deregister", pack_id, (void *)id, &rep);
    hms_reply_destroy(&rep);
    return rc;
}

typedef struct check_args {
    const char *id, *status, *note;
} check_args;

static int pack_check(msgpack_packer *pk, void *ctx)
{
    const check_args *a = ctx;
    msgpack_pack_map(pk, a->note ? 3 : 2);
    kv_str(pk, "service_id", a->id);
    kv_str(pk, "status", a->status);
    if (a->note)
        kv_str(pk, "note", a->note);
    return 0;
}

int hms_check_update(hms_client *c, const char *id, const char *status, const char *note)
{
    check_args a = {id, status, note};
    hms_reply rep;
    int rc = hms_request(c, "check", pack_check, &a, &rep);
    hms_reply_destroy(&rep);
    return rc;
}

/* ---- queries ------------------------------------------------------------- */

typedef struct lookup_args {
    const char *name;
    const char *const *tags;
    size_t ntags;
    bool all;
} lookup_args;

static int pack_lookup(msgpack_packer *pk, void *ctx)
{
    const lookup_args *a = ctx;
    msgpack_pack_map(pk, 3);
    kv_str(pk, "name", a->name);
    pstr(pk, "tags");
    msgpack_pack_array(pk, a->ntags);
    for (size_t i = 0; i < a->ntags; i++)
        pstr(pk, a->tags[i]);
    pstr(pk, "all");
    if (a->all)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    return 0;
}

int hms_lookup(hms_client *c, const char *name, const char *const *tags, size_t ntags, bool all,
               hms_instance **out, size_t *n)
{
    lookup_args a = {name, tags, ntags, all};
    hms_reply rep;
    *out = NULL;
    *n = 0;
    int rc = hms_request(c, "lookup", pack_lookup, &a, &rep);
    if (rc == 0)
        rc = hms_instances_from_msgpack(rep.result, out, n);
    hms_reply_destroy(&rep);
    return rc;
}

int hms_services(hms_client *c, hms_reply *rep)
{
    return hms_request(c, "services", NULL, NULL, rep);
}

int hms_catalog_raw(hms_client *c, hms_reply *rep)
{
    return hms_request(c, "catalog", NULL, NULL, rep);
}

static int u32_of(const msgpack_object *m, const char *k, uint32_t *out)
{
    const msgpack_object *f = hms_mp_get(m, k);
    if (!f || f->type != MSGPACK_OBJECT_POSITIVE_INTEGER || f->via.u64 > UINT32_MAX)
        return -EPROTO;
    *out = (uint32_t)f->via.u64;
    return 0;
}

int hms_catalog(hms_client *c, hms_service_summary **out, size_t *n)
{
    hms_reply rep;
    *out = NULL;
    *n = 0;
    int rc = hms_request(c, "catalog", NULL, NULL, &rep);
    if (rc) {
        hms_reply_destroy(&rep);
        return rc;
    }
    const msgpack_object *s = hms_mp_get(rep.result, "services");
    if (!s || s->type != MSGPACK_OBJECT_ARRAY) {
        hms_reply_destroy(&rep);
        return -EPROTO;
    }
    hms_service_summary *v = calloc(s->via.array.size + 1, sizeof(*v));
    if (!v) {
        hms_reply_destroy(&rep);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->via.array.size; i++) {
        const msgpack_object *m = &s->via.array.ptr[i];
        const msgpack_object *nm = hms_mp_get(m, "name");
        if (!nm || hms_mp_str_copy(nm, v[i].name, sizeof(v[i].name)) ||
            u32_of(m, "passing", &v[i].passing) || u32_of(m, "warning", &v[i].warning) ||
            u32_of(m, "critical", &v[i].critical) || u32_of(m, "nodes", &v[i].nodes)) {
            free(v);
            hms_reply_destroy(&rep);
            return -EPROTO;
        }
    }
    *out = v;
    *n = s->via.array.size;
    hms_reply_destroy(&rep);
    return 0;
}

int hms_watch_service(hms_client *c, const char *name, const char *const *tags, size_t ntags,
                      bool all, hms_instances_fn fn, void *ctx)
{
    lookup_args a = {name, tags, ntags, all};
    int rc = hms_stream_start(c, "service.watch", pack_lookup, &a);
    if (rc)
        return rc;
    for (;;) {
        hms_reply rep;
        rc = hms_stream_next(c, 0, &rep);
        if (rc) {
            hms_reply_destroy(&rep);
            return rc;
        }
        bool more = rep.more;
        hms_instance *v;
        size_t n;
        rc = hms_instances_from_msgpack(rep.result, &v, &n);
        hms_reply_destroy(&rep);
        if (rc)
            return rc;
        int r = fn(v, n, ctx);
        hms_instances_free(v, n);
        if (r)
            return r;
        if (!more)
            return -EPIPE;
    }
}
