/*
 * Registrations: defaults, validation of checks, and the Consul-style JSON
 * service definition (files in the services directory, `register --file`).
 * Input here comes from people and local programs, so every refusal names
 * the key and the value.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog/catalog.h"
#include "proto/addr.h"

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *cat_check_kind_name(cat_check_kind k)
{
    switch (k) {
    case CAT_CHECK_HTTP: return "http";
    case CAT_CHECK_TCP: return "tcp";
    case CAT_CHECK_TTL: return "ttl";
    }
    return "unknown";
}

void cat_registration_init(cat_registration *r)
{
    memset(r, 0, sizeof(*r));
    cat_instance_init(&r->inst);
}

void cat_registration_clear(cat_registration *r)
{
    cat_instance_clear(&r->inst);
    memset(r, 0, sizeof(*r));
}

static bool is_ip_literal(const char *s)
{
    unsigned char b[16];
    return !strcmp(s, "localhost") || inet_pton(AF_INET, s, b) == 1 ||
           inet_pton(AF_INET6, s, b) == 1;
}

static int finish_check(cat_registration *r, cat_check_def *ck, size_t i, char *err,
                        size_t errlen)
{
    const char *id = r->inst.id;
    if (ck->rise > CAT_HEALTH_COUNT_MAX || ck->fall > CAT_HEALTH_COUNT_MAX)
        return fail(err, errlen, -EINVAL,
                    "check %zu of '%s': consecutive counts above %d are not allowed", i + 1, id,
                    CAT_HEALTH_COUNT_MAX);
    for (const unsigned char *p = (const unsigned char *)ck->target; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return fail(err, errlen, -EINVAL,
                        "check %zu of '%s': target has a space or control character", i + 1, id);
    switch (ck->kind) {
    case CAT_CHECK_HTTP:
        if (ck->target[0] != '/' && strncmp(ck->target, "http://", 7) &&
            strncmp(ck->target, "https://", 8))
            return fail(err, errlen, -EINVAL,
                        "http check of '%s': '%s' is neither a path (/health) nor an http(s) URL",
                        id, ck->target);
        break;
    case CAT_CHECK_TCP:
        if (ck->target[0]) {
            hms_addr a;
            if (hms_addr_parse(ck->target, 0, &a) || a.port == 0)
                return fail(err, errlen, -EINVAL,
                            "tcp check of '%s': '%s' is not an ip:port address", id, ck->target);
        } else if (!is_ip_literal(r->inst.address)) {
            return fail(err, errlen, -EINVAL,
                        "tcp check of '%s': address '%s' is not an IP address (give --check-tcp ip:port)",
                        id, r->inst.address);
        }
        break;
    case CAT_CHECK_TTL:
        if (ck->ttl_ms == 0)
            return fail(err, errlen, -EINVAL, "ttl check of '%s' has no ttl", id);
        if (ck->ttl_ms < CAT_INTERVAL_MIN_MS)
            return fail(err, errlen, -EINVAL, "ttl check of '%s': ttl %u ms is below %d ms", id,
                        ck->ttl_ms, CAT_INTERVAL_MIN_MS);
        if (!ck->rise)
            ck->rise = 1;
        if (!ck->fall)
            ck->fall = 1;
        return 0;
    default:
        return fail(err, errlen, -EINVAL, "check %zu of '%s' has no kind (http, tcp or ttl)",
                    i + 1, id);
    }
    if (!ck->interval_ms)
        ck->interval_ms = CAT_INTERVAL_DEFAULT_MS;
    if (!ck->timeout_ms)
        ck->timeout_ms = ck->interval_ms < CAT_TIMEOUT_DEFAULT_MS ? ck->interval_ms
                                                                  : CAT_TIMEOUT_DEFAULT_MS;
    if (ck->interval_ms < CAT_INTERVAL_MIN_MS)
        return fail(err, errlen, -EINVAL, "check of '%s': interval %u ms is below %d ms", id,
                    ck->interval_ms, CAT_INTERVAL_MIN_MS);
    if (ck->timeout_ms < 10)
        return fail(err, errlen, -EINVAL, "check of '%s': timeout %u ms is below 10 ms", id,
                    ck->timeout_ms);
    return 0;
}

int cat_registration_finish(cat_registration *r, char *err, size_t errlen)
{
    cat_instance *x = &r->inst;
    int rc = cat_check_name(x->name, err, errlen);
    if (rc)
        return rc;
    if (!x->id[0])
        memcpy(x->id, x->name, sizeof(x->name));
    if (!x->address[0])
        snprintf(x->address, sizeof(x->address), "127.0.0.1");
    x->status = CAT_PASSING;
    if (x->port == 0)
        return fail(err, errlen, -EINVAL, "port of '%s' is missing or 0 (expected 1-65535)",
                    x->id);
    if ((rc = cat_instance_check(x, err, errlen)))
        return rc;
    if (r->nchecks > CAT_CHECKS_MAX)
        return fail(err, errlen, -E2BIG, "too many checks for '%s': %zu, limit checks_max is %d",
                    x->id, r->nchecks, CAT_CHECKS_MAX);
    for (size_t i = 0; i < r->nchecks; i++)
        if ((rc = finish_check(r, &r->checks[i], i, err, errlen)))
            return rc;
    return 0;
}

/* ---- JSON service definitions -------------------------------------------- */

static int json_dur(json_t *v, const char *key, uint32_t *ms, char *err, size_t errlen)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= 86400) { /* a bare number is seconds */
        *ms = (uint32_t)json_integer_value(v) * 1000;
        return 0;
    }
    if (json_is_string(v) && cat_duration_parse(json_string_value(v), ms) == 0)
        return 0;
    return fail(err, errlen, -EINVAL,
                "key '%s': expected a duration such as \"5s\" or \"500ms\"", key);
}

static int json_count(json_t *v, const char *key, uint8_t *out, char *err, size_t errlen)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > CAT_HEALTH_COUNT_MAX)
        return fail(err, errlen, -EINVAL, "key '%s': expected an integer 0-%d", key,
                    CAT_HEALTH_COUNT_MAX);
    *out = (uint8_t)json_integer_value(v);
    return 0;
}

static int json_check(json_t *o, cat_check_def *ck, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    int rc;
    if (!json_is_object(o))
        return fail(err, errlen, -EINVAL, "key 'check': expected an object");
    memset(ck, 0, sizeof(*ck));
    json_object_foreach(o, k, v)
    {
        if (!strcmp(k, "http") || !strcmp(k, "tcp")) {
            if (ck->kind)
                return fail(err, errlen, -EINVAL, "check has more than one of http, tcp, ttl");
            ck->kind = !strcmp(k, "http") ? CAT_CHECK_HTTP : CAT_CHECK_TCP;
            if (!json_is_string(v) && !(ck->kind == CAT_CHECK_TCP && json_is_true(v)))
                return fail(err, errlen, -EINVAL, "key '%s': expected a string", k);
            if (json_is_string(v)) {
                if (strlen(json_string_value(v)) > CAT_CHECK_TARGET_MAX)
                    return fail(err, errlen, -E2BIG, "key '%s' is longer than %d bytes", k,
                                CAT_CHECK_TARGET_MAX);
                snprintf(ck->target, sizeof(ck->target), "%s", json_string_value(v));
            }
        } else if (!strcmp(k, "ttl")) {
            if (ck->kind)
                return fail(err, errlen, -EINVAL, "check has more than one of http, tcp, ttl");
            ck->kind = CAT_CHECK_TTL;
            if ((rc = json_dur(v, k, &ck->ttl_ms, err, errlen)))
                return rc;
        } else if (!strcmp(k, "interval")) {
            if ((rc = json_dur(v, k, &ck->interval_ms, err, errlen)))
                return rc;
        } else if (!strcmp(k, "timeout")) {
            if ((rc = json_dur(v, k, &ck->timeout_ms, err, errlen)))
                return rc;
        } else if (!strcmp(k, "success_before_passing")) {
            if ((rc = json_count(v, k, &ck->rise, err, errlen)))
                return rc;
        } else if (!strcmp(k, "failures_before_critical")) {
            if ((rc = json_count(v, k, &ck->fall, err, errlen)))
                return rc;
        } else if (!strcmp(k, "name") || !strcmp(k, "id") || !strcmp(k, "notes")) {
            /* accepted for Consul compatibility; the check is named by its instance */
        } else {
            return fail(err, errlen, -EINVAL, "unknown key '%s' in check", k);
        }
    }
    if (!ck->kind)
        return fail(err, errlen, -EINVAL, "check has none of http, tcp, ttl");
    return 0;
}

static int json_str(json_t *v, const char *key, char *buf, size_t cap, char *err, size_t errlen)
{
    if (!json_is_string(v))
        return fail(err, errlen, -EINVAL, "key '%s': expected a string", key);
    if (strlen(json_string_value(v)) >= cap)
        return fail(err, errlen, -E2BIG, "key '%s' is longer than %zu bytes", key, cap - 1);
    snprintf(buf, cap, "%s", json_string_value(v));
    return 0;
}

static int json_service(json_t *svc, cat_registration *r, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    int rc;
    cat_instance *x = &r->inst;
    json_object_foreach(svc, k, v)
    {
        if (!strcmp(k, "name")) {
            if ((rc = json_str(v, k, x->name, sizeof(x->name), err, errlen)))
                return rc;
        } else if (!strcmp(k, "id")) {
            if ((rc = json_str(v, k, x->id, sizeof(x->id), err, errlen)))
                return rc;
        } else if (!strcmp(k, "address")) {
            if ((rc = json_str(v, k, x->address, sizeof(x->address), err, errlen)))
                return rc;
        } else if (!strcmp(k, "port")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
                return fail(err, errlen, -EINVAL, "key 'port': expected an integer 1-65535");
            x->port = (uint16_t)json_integer_value(v);
        } else if (!strcmp(k, "tags")) {
            size_t i;
            json_t *t;
            if (!json_is_array(v))
                return fail(err, errlen, -EINVAL, "key 'tags': expected an array of strings");
            json_array_foreach(v, i, t)
            {
                if (!json_is_string(t))
                    return fail(err, errlen, -EINVAL, "key 'tags': expected an array of strings");
                if ((rc = cat_instance_add_tag(x, json_string_value(t), err, errlen)))
                    return rc;
            }
        } else if (!strcmp(k, "meta")) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v))
                return fail(err, errlen, -EINVAL, "key 'meta': expected an object of strings");
            json_object_foreach(v, mk, mv)
            {
                if (!json_is_string(mv))
                    return fail(err, errlen, -EINVAL, "key 'meta.%.64s': expected a string", mk);
                if ((rc = cat_instance_add_meta(x, mk, json_string_value(mv), err, errlen)))
                    return rc;
            }
        } else if (!strcmp(k, "check")) {
            if (r->nchecks >= CAT_CHECKS_MAX)
                return fail(err, errlen, -E2BIG, "too many checks, limit checks_max is %d",
                            CAT_CHECKS_MAX);
            if ((rc = json_check(v, &r->checks[r->nchecks], err, errlen)))
                return rc;
            r->nchecks++;
        } else if (!strcmp(k, "checks")) {
            size_t i;
            json_t *c;
            if (!json_is_array(v))
                return fail(err, errlen, -EINVAL, "key 'checks': expected an array");
            json_array_foreach(v, i, c)
            {
                if (r->nchecks >= CAT_CHECKS_MAX)
                    return fail(err, errlen, -E2BIG, "too many checks, limit checks_max is %d",
                                CAT_CHECKS_MAX);
                if ((rc = json_check(c, &r->checks[r->nchecks], err, errlen)))
                    return rc;
                r->nchecks++;
            }
        } else {
            return fail(err, errlen, -EINVAL, "unknown key '%.64s' in service", k);
        }
    }
    return 0;
}

int cat_registration_from_json(const char *text, size_t len, cat_registration *r, char *err,
                               size_t errlen)
{
    json_error_t je;
    cat_registration_init(r);
    if (len > CAT_SERVICE_FILE_BYTES)
        return fail(err, errlen, -E2BIG, "service definition is larger than %d bytes",
                    CAT_SERVICE_FILE_BYTES);
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(err, errlen, -EINVAL, "invalid JSON at line %d column %d: %s", je.line,
                    je.column, je.text);
    int rc;
    json_t *svc = root;
    if (!json_is_object(root)) {
        rc = fail(err, errlen, -EINVAL, "service definition is not a JSON object");
        goto out;
    }
    if (json_object_get(root, "service")) {
        svc = json_object_get(root, "service");
        if (json_object_size(root) != 1 || !json_is_object(svc)) {
            rc = fail(err, errlen, -EINVAL,
                      "expected {\"service\": {...}} with no other top-level key");
            goto out;
        }
    }
    rc = json_service(svc, r, err, errlen);
    if (!rc)
        rc = cat_registration_finish(r, err, errlen);
out:
    json_decref(root);
    if (rc)
        cat_registration_clear(r);
    return rc;
}
