/*
 * Service catalog wire formats and limits (see catalog.h). The encoder uses
 * msgpack-c's packer; the decoder is a small cursor over the input that
 * reads only the types this format uses, so a hostile length can never make
 * it allocate more than the limits allow.
 */
#include "proto/catalog.h"

#include <ctype.h>
#include <errno.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DIGEST_DOMAIN[] = "hms-catalog-set-v1";

const char *cat_status_name(cat_status s)
{
    switch (s) {
    case CAT_PASSING: return "passing";
    case CAT_WARNING: return "warning";
    case CAT_CRITICAL: return "critical";
    }
    return "unknown";
}

int cat_status_parse(const char *s, cat_status *out)
{
    if (!s)
        return -EINVAL;
    if (!strcmp(s, "passing") || !strcmp(s, "pass"))
        *out = CAT_PASSING;
    else if (!strcmp(s, "warning") || !strcmp(s, "warn"))
        *out = CAT_WARNING;
    else if (!strcmp(s, "critical") || !strcmp(s, "fail"))
        *out = CAT_CRITICAL;
    else
        return -EINVAL;
    return 0;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Shortens a subject for quoting in a message. */
static const char *quote(const char *s, char *buf, size_t len)
{
    size_t n = strnlen(s, len);
    if (n < len) {
        memcpy(buf, s, n + 1);
    } else {
        memcpy(buf, s, len - 4);
        memcpy(buf + len - 4, "...", 4);
    }
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return buf;
}

/* ---- instances ----------------------------------------------------------- */

void cat_instance_init(cat_instance *inst)
{
    memset(inst, 0, sizeof(*inst));
}

void cat_instance_clear(cat_instance *inst)
{
    for (size_t i = 0; i < inst->ntags; i++)
        free(inst->tags[i]);
    free(inst->tags);
    for (size_t i = 0; i < inst->nmeta; i++) {
        free(inst->meta[i].key);
        free(inst->meta[i].value);
    }
    free(inst->meta);
    memset(inst, 0, sizeof(*inst));
}

int cat_instance_copy(cat_instance *dst, const cat_instance *src)
{
    cat_instance_init(dst);
    memcpy(dst->id, src->id, sizeof(dst->id));
    memcpy(dst->name, src->name, sizeof(dst->name));
    memcpy(dst->address, src->address, sizeof(dst->address));
    dst->port = src->port;
    dst->status = src->status;
    if (src->ntags) {
        dst->tags = calloc(src->ntags, sizeof(char *));
        if (!dst->tags)
            goto nomem;
        for (size_t i = 0; i < src->ntags; i++) {
            dst->tags[i] = strdup(src->tags[i]);
            if (!dst->tags[i])
                goto nomem;
            dst->ntags++;
        }
    }
    if (src->nmeta) {
        dst->meta = calloc(src->nmeta, sizeof(cat_kv));
        if (!dst->meta)
            goto nomem;
        for (size_t i = 0; i < src->nmeta; i++) {
            dst->meta[i].key = strdup(src->meta[i].key);
            dst->meta[i].value = strdup(src->meta[i].value);
            dst->nmeta++;
            if (!dst->meta[i].key || !dst->meta[i].value)
                goto nomem;
        }
    }
    return 0;
nomem:
    cat_instance_clear(dst);
    return -ENOMEM;
}

bool cat_instance_has_tag(const cat_instance *inst, const char *tag)
{
    for (size_t i = 0; i < inst->ntags; i++)
        if (!strcmp(inst->tags[i], tag))
            return true;
    return false;
}

const char *cat_instance_meta(const cat_instance *inst, const char *key)
{
    for (size_t i = 0; i < inst->nmeta; i++)
        if (!strcmp(inst->meta[i].key, key))
            return inst->meta[i].value;
    return NULL;
}

int cat_instance_add_tag(cat_instance *inst, const char *tag, char *err, size_t errlen)
{
    char q[80];
    int rc = cat_check_tag(tag, err, errlen);
    if (rc)
        return rc;
    size_t pos = 0;
    while (pos < inst->ntags) {
        int c = strcmp(inst->tags[pos], tag);
        if (c == 0)
            return 0;
        if (c > 0)
            break;
        pos++;
    }
    if (inst->ntags >= CAT_TAGS_MAX) {
        seterr(err, errlen, "too many tags: '%s' would be tag %d, limit tags_max is %d",
               quote(tag, q, sizeof(q)), inst->ntags + 1, CAT_TAGS_MAX);
        return -E2BIG;
    }
    char **t = realloc(inst->tags, (inst->ntags + 1) * sizeof(char *));
    if (!t)
        return -ENOMEM;
    inst->tags = t;
    char *copy = strdup(tag);
    if (!copy)
        return -ENOMEM;
    memmove(&t[pos + 1], &t[pos], (inst->ntags - pos) * sizeof(char *));
    t[pos] = copy;
    inst->ntags++;
    return 0;
}

static size_t meta_bytes(const cat_instance *inst)
{
    size_t n = 0;
    for (size_t i = 0; i < inst->nmeta; i++)
        n += strlen(inst->meta[i].key) + strlen(inst->meta[i].value);
    return n;
}

int cat_instance_add_meta(cat_instance *inst, const char *key, const char *value, char *err,
                          size_t errlen)
{
    char q[80];
    int rc = cat_check_meta(key, value, err, errlen);
    if (rc)
        return rc;
    size_t pos = 0;
    while (pos < inst->nmeta) {
        int c = strcmp(inst->meta[pos].key, key);
        if (c == 0) {
            seterr(err, errlen, "metadata key '%s' given twice", quote(key, q, sizeof(q)));
            return -EEXIST;
        }
        if (c > 0)
            break;
        pos++;
    }
    if (inst->nmeta >= CAT_META_PAIRS_MAX) {
        seterr(err, errlen, "too many metadata pairs: '%s' would be pair %d, limit meta_pairs_max is %d",
               quote(key, q, sizeof(q)), inst->nmeta + 1, CAT_META_PAIRS_MAX);
        return -E2BIG;
    }
    size_t total = meta_bytes(inst) + strlen(key) + strlen(value);
    if (total > CAT_META_BYTES) {
        seterr(err, errlen, "metadata too large: %zu bytes with '%s', limit meta_bytes is %d",
               total, quote(key, q, sizeof(q)), CAT_META_BYTES);
        return -E2BIG;
    }
    cat_kv *m = realloc(inst->meta, (inst->nmeta + 1) * sizeof(cat_kv));
    if (!m)
        return -ENOMEM;
    inst->meta = m;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    memmove(&m[pos + 1], &m[pos], (inst->nmeta - pos) * sizeof(cat_kv));
    m[pos].key = k;
    m[pos].value = v;
    inst->nmeta++;
    return 0;
}

bool cat_instance_equal(const cat_instance *a, const cat_instance *b)
{
    if (strcmp(a->id, b->id) || strcmp(a->name, b->name) || strcmp(a->address, b->address) ||
        a->port != b->port || a->status != b->status || a->ntags != b->ntags ||
        a->nmeta != b->nmeta)
        return false;
    for (size_t i = 0; i < a->ntags; i++)
        if (strcmp(a->tags[i], b->tags[i]))
            return false;
    for (size_t i = 0; i < a->nmeta; i++)
        if (strcmp(a->meta[i].key, b->meta[i].key) || strcmp(a->meta[i].value, b->meta[i].value))
            return false;
    return true;
}

/* ---- validation ---------------------------------------------------------- */

static int check_len(const char *what, const char *s, size_t max, const char *limit, char *err,
                     size_t errlen)
{
    char q[80];
    if (!s || !*s) {
        seterr(err, errlen, "%s is empty", what);
        return -EINVAL;
    }
    size_t n = strnlen(s, max + 1);
    if (n > max) {
        seterr(err, errlen, "%s '%s' is longer than %zu bytes (limit %s)", what,
               quote(s, q, sizeof(q)), max, limit);
        return -E2BIG;
    }
    return 0;
}

int cat_check_name(const char *name, char *err, size_t errlen)
{
    char q[80];
    int rc = check_len("service name", name, CAT_NAME_MAX, "name_max", err, errlen);
    if (rc)
        return rc;
    /* A DNS label: letters, digits, hyphens; no leading or trailing hyphen.
     * Underscores and dots are refused so that a name is also a DNS name. */
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '-') || c >= 0x80) {
            seterr(err, errlen,
                   "service name '%s' has an invalid character (letters, digits and '-' only)",
                   quote(name, q, sizeof(q)));
            return -EINVAL;
        }
    }
    if (name[0] == '-' || name[n - 1] == '-') {
        seterr(err, errlen, "service name '%s' starts or ends with '-'", quote(name, q, sizeof(q)));
        return -EINVAL;
    }
    return 0;
}

/* Printable ASCII without space: ids and tags appear in tables and URLs. */
static int check_token(const char *what, const char *s, char *err, size_t errlen)
{
    char q[80];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            seterr(err, errlen,
                   "%s '%s' has an invalid character (printable ASCII without spaces only)", what,
                   quote(s, q, sizeof(q)));
            return -EINVAL;
        }
    }
    return 0;
}

int cat_check_id(const char *id, char *err, size_t errlen)
{
    int rc = check_len("instance id", id, CAT_ID_MAX, "id_max", err, errlen);
    return rc ? rc : check_token("instance id", id, err, errlen);
}

int cat_check_tag(const char *tag, char *err, size_t errlen)
{
    int rc = check_len("tag", tag, CAT_TAG_MAX, "tag_max", err, errlen);
    return rc ? rc : check_token("tag", tag, err, errlen);
}

int cat_check_address(const char *addr, char *err, size_t errlen)
{
    char q[80];
    int rc = check_len("address", addr, CAT_ADDR_MAX, "addr_max", err, errlen);
    if (rc)
        return rc;
    /* An IP literal (v4 or v6) or a host name. */
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
        if (!(isalnum(*p) || *p == '.' || *p == '-' || *p == ':' || *p == '%' || *p == '_') ||
            *p >= 0x80) {
            seterr(err, errlen, "address '%s' is not an IP address or host name",
                   quote(addr, q, sizeof(q)));
            return -EINVAL;
        }
    }
    return 0;
}

int cat_check_meta(const char *key, const char *value, char *err, size_t errlen)
{
    char q[80];
    int rc = check_len("metadata key", key, CAT_META_KEY_MAX, "meta_key_max", err, errlen);
    if (rc)
        return rc;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (!(isalnum(*p) || *p == '-' || *p == '_' || *p == '.') || *p >= 0x80) {
            seterr(err, errlen,
                   "metadata key '%s' has an invalid character (letters, digits, '-', '_', '.')",
                   quote(key, q, sizeof(q)));
            return -EINVAL;
        }
    }
    if (!value) {
        seterr(err, errlen, "metadata key '%s' has no value", quote(key, q, sizeof(q)));
        return -EINVAL;
    }
    size_t n = strnlen(value, CAT_META_VALUE_MAX + 1);
    if (n > CAT_META_VALUE_MAX) {
        seterr(err, errlen, "metadata value of '%s' is longer than %d bytes (limit meta_value_max)",
               quote(key, q, sizeof(q)), CAT_META_VALUE_MAX);
        return -E2BIG;
    }
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            seterr(err, errlen, "metadata value of '%s' has a control character",
                   quote(key, q, sizeof(q)));
            return -EINVAL;
        }
    }
    return 0;
}

int cat_instance_check(const cat_instance *inst, char *err, size_t errlen)
{
    char q[80];
    int rc;
    if ((rc = cat_check_id(inst->id, err, errlen)) || (rc = cat_check_name(inst->name, err, errlen)) ||
        (rc = cat_check_address(inst->address, err, errlen)))
        return rc;
    if (inst->port == 0) {
        seterr(err, errlen, "port of '%s' is 0 (expected 1-65535)", quote(inst->id, q, sizeof(q)));
        return -EINVAL;
    }
    if (inst->status > CAT_CRITICAL) {
        seterr(err, errlen, "status of '%s' is not passing, warning or critical",
               quote(inst->id, q, sizeof(q)));
        return -EINVAL;
    }
    if (inst->ntags > CAT_TAGS_MAX) {
        seterr(err, errlen, "too many tags: %d, limit tags_max is %d", inst->ntags, CAT_TAGS_MAX);
        return -E2BIG;
    }
    for (size_t i = 0; i < inst->ntags; i++) {
        if ((rc = cat_check_tag(inst->tags[i], err, errlen)))
            return rc;
        if (i > 0 && strcmp(inst->tags[i - 1], inst->tags[i]) >= 0) {
            seterr(err, errlen, "tags of '%s' are not sorted and unique",
                   quote(inst->id, q, sizeof(q)));
            return -EINVAL;
        }
    }
    if (inst->nmeta > CAT_META_PAIRS_MAX) {
        seterr(err, errlen, "too many metadata pairs: %d, limit meta_pairs_max is %d",
               inst->nmeta, CAT_META_PAIRS_MAX);
        return -E2BIG;
    }
    for (size_t i = 0; i < inst->nmeta; i++) {
        if ((rc = cat_check_meta(inst->meta[i].key, inst->meta[i].value, err, errlen)))
            return rc;
        if (i > 0 && strcmp(inst->meta[i - 1].key, inst->meta[i].key) >= 0) {
            seterr(err, errlen, "metadata keys of '%s' are not sorted and unique",
                   quote(inst->id, q, sizeof(q)));
            return -EINVAL;
        }
    }
    if (meta_bytes(inst) > CAT_META_BYTES) {
        seterr(err, errlen, "metadata too large: %zu bytes, limit meta_bytes is %d",
               meta_bytes(inst), CAT_META_BYTES);
        return -E2BIG;
    }
    return 0;
}

/* ---- encoding ------------------------------------------------------------ */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_instances(msgpack_packer *pk, const cat_instance *inst, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        const cat_instance *x = &inst[i];
        msgpack_pack_array(pk, 7);
        pack_str(pk, x->id);
        pack_str(pk, x->name);
        pack_str(pk, x->address);
        msgpack_pack_uint16(pk, x->port);
        msgpack_pack_uint8(pk, x->status);
        msgpack_pack_array(pk, x->ntags);
        for (size_t t = 0; t < x->ntags; t++)
            pack_str(pk, x->tags[t]);
        msgpack_pack_map(pk, x->nmeta);
        for (size_t m = 0; m < x->nmeta; m++) {
            pack_str(pk, x->meta[m].key);
            pack_str(pk, x->meta[m].value);
        }
    }
}

static int check_sorted(const cat_instance *inst, size_t n)
{
    if (n > CAT_INSTANCES_MAX)
        return -EINVAL;
    for (size_t i = 1; i < n; i++)
        if (strcmp(inst[i - 1].id, inst[i].id) >= 0)
            return -EINVAL;
    return 0;
}

int cat_set_encode(const char *node, uint64_t version, const cat_instance *inst, size_t n,
                   uint8_t **out, size_t *len)
{
    if (!node || strlen(node) > CAT_NODE_MAX || check_sorted(inst, n))
        return -EINVAL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_str(&pk, node);
    msgpack_pack_uint64(&pk, version);
    pack_instances(&pk, inst, n);
    if (!sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM;
    }
    *len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

/* sbuffer writer that hashes instead of storing. */
static int hash_write(void *data, const char *buf, size_t len)
{
    crypto_generichash_update((crypto_generichash_state *)data, (const unsigned char *)buf, len);
    return 0;
}

int cat_set_digest(const cat_instance *inst, size_t n, uint8_t digest[CAT_DIGEST_LEN])
{
    if (check_sorted(inst, n))
        return -EINVAL;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, CAT_DIGEST_LEN);
    crypto_generichash_update(&st, (const unsigned char *)DIGEST_DOMAIN, sizeof(DIGEST_DOMAIN));
    msgpack_packer pk;
    msgpack_packer_init(&pk, &st, hash_write);
    pack_instances(&pk, inst, n);
    crypto_generichash_final(&st, digest, CAT_DIGEST_LEN);
    return 0;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static int rd_need(rd *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n ? 0 : -EBADMSG;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static int rd_uint(rd *r, uint64_t *v)
{
    if (rd_need(r, 1))
        return -EBADMSG;
    uint8_t t = *r->p++;
    int n;
    if (t <= 0x7f) {
        *v = t;
        return 0;
    }
    switch (t) {
    case 0xcc: n = 1; break;
    case 0xcd: n = 2; break;
    case 0xce: n = 4; break;
    case 0xcf: n = 8; break;
    default: return -EBADMSG;
    }
    if (rd_need(r, n))
        return -EBADMSG;
    *v = be(r->p, n);
    r->p += n;
    return 0;
}

static int rd_hdr(rd *r, uint8_t fixbase, uint8_t fixmask, uint8_t t16, uint8_t t32, uint32_t *n)
{
    if (rd_need(r, 1))
        return -EBADMSG;
    uint8_t t = *r->p++;
    int w;
    if ((t & ~fixmask) == fixbase) {
        *n = t & fixmask;
        return 0;
    }
    if (t == t16)
        w = 2;
    else if (t == t32)
        w = 4;
    else
        return -EBADMSG;
    if (rd_need(r, w))
        return -EBADMSG;
    *n = (uint32_t)be(r->p, w);
    r->p += w;
    return 0;
}

static int rd_array(rd *r, uint32_t *n)
{
    return rd_hdr(r, 0x90, 0x0f, 0xdc, 0xdd, n);
}

static int rd_map(rd *r, uint32_t *n)
{
    return rd_hdr(r, 0x80, 0x0f, 0xde, 0xdf, n);
}

/* Copies a str of at most max bytes into buf (max + 1 bytes), NUL-free. */
static int rd_str(rd *r, char *buf, size_t max)
{
    if (rd_need(r, 1))
        return -EBADMSG;
    uint8_t t = *r->p++;
    size_t n;
    if ((t & 0xe0) == 0xa0) {
        n = t & 0x1f;
    } else {
        int w = t == 0xd9 ? 1 : t == 0xda ? 2 : t == 0xdb ? 4 : 0;
        if (!w || rd_need(r, w))
            return -EBADMSG;
        n = (size_t)be(r->p, w);
        r->p += w;
    }
    if (n > max || rd_need(r, n) || memchr(r->p, 0, n))
        return -EBADMSG;
    memcpy(buf, r->p, n);
    buf[n] = '\0';
    r->p += n;
    return 0;
}

static int rd_instance(rd *r, cat_instance *x)
{
    uint32_t n;
    uint64_t v;
    char tag[CAT_TAG_MAX + 1];
    char key[CAT_META_KEY_MAX + 1];
    char val[CAT_META_VALUE_MAX + 1];
    if (rd_array(r, &n) || n != 7)
        return -EBADMSG;
    if (rd_str(r, x->id, CAT_ID_MAX) || rd_str(r, x->name, CAT_NAME_MAX) ||
        rd_str(r, x->address, CAT_ADDR_MAX))
        return -EBADMSG;
    if (rd_uint(r, &v) || v == 0 || v > 65535)
        return -EBADMSG;
    x->port = (uint16_t)v;
    if (rd_uint(r, &v) || v > CAT_CRITICAL)
        return -EBADMSG;
    x->status = (uint8_t)v;
    if (rd_array(r, &n) || n > CAT_TAGS_MAX)
        return -EBADMSG;
    for (uint32_t i = 0; i < n; i++) {
        if (rd_str(r, tag, CAT_TAG_MAX))
            return -EBADMSG;
        /* must arrive strictly sorted: canonical form */
        if (x->ntags && strcmp(x->tags[x->ntags - 1], tag) >= 0)
            return -EBADMSG;
        int rc = cat_instance_add_tag(x, tag, NULL, 0);
        if (rc)
            return rc == -ENOMEM ? rc : -EBADMSG;
    }
    if (rd_map(r, &n) || n > CAT_META_PAIRS_MAX)
        return -EBADMSG;
    for (uint32_t i = 0; i < n; i++) {
        if (rd_str(r, key, CAT_META_KEY_MAX) || rd_str(r, val, CAT_META_VALUE_MAX))
            return -EBADMSG;
        if (x->nmeta && strcmp(x->meta[x->nmeta - 1].key, key) >= 0)
            return -EBADMSG;
        int rc = cat_instance_add_meta(x, key, val, NULL, 0);
        if (rc)
            return rc == -ENOMEM ? rc : -EBADMSG;
    }
    return cat_instance_check(x, NULL, 0) ? -EBADMSG : 0;
}

void cat_decoded_clear(cat_decoded *d)
{
    for (size_t i = 0; i < d->n; i++)
        cat_instance_clear(&d->inst[i]);
    free(d->inst);
    memset(d, 0, sizeof(*d));
}

int cat_set_decode(const uint8_t *buf, size_t len, cat_decoded *out)
{
    memset(out, 0, sizeof(*out));
    if (!buf || len > CAT_SET_ENCODED_MAX)
        return -EBADMSG;
    rd r = {buf, buf + len};
    uint32_t n;
    int rc = -EBADMSG;
    if (rd_array(&r, &n) || n != 3)
        goto fail;
    if (rd_str(&r, out->node, CAT_NODE_MAX) || !out->node[0])
        goto fail;
    if (rd_uint(&r, &out->version))
        goto fail;
    if (rd_array(&r, &n) || n > CAT_INSTANCES_MAX)
        goto fail;
    if (n) {
        out->inst = calloc(n, sizeof(cat_instance));
        if (!out->inst) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        out->n = i + 1;
        int e = rd_instance(&r, &out->inst[i]);
        if (e) {
            rc = e;
            goto fail;
        }
        if (i > 0 && strcmp(out->inst[i - 1].id, out->inst[i].id) >= 0)
            goto fail;
    }
    if (r.p != r.end)
        goto fail;
    cat_set_digest(out->inst, out->n, out->digest);
    return 0;
fail:
    cat_decoded_clear(out);
    return rc;
}

int cat_duration_parse(const char *s, uint32_t *ms)
{
    if (!s || !*s)
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v != v)
        return -EINVAL;
    double mult;
    if (!*end || !strcmp(end, "s"))
        mult = 1000;
    else if (!strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "m"))
        mult = 60000;
    else if (!strcmp(end, "h"))
        mult = 3600000;
    else
        return -EINVAL;
    double r = v * mult;
    if (r > 86400000.0)
        return -EINVAL;
    *ms = (uint32_t)(r + 0.5);
    return 0;
}

int cat_meta_encode(uint64_t version, const uint8_t digest[CAT_DIGEST_LEN], uint8_t *buf,
                    size_t cap)
{
    /* fixarray(2), uint64 (9), bin8 header (2) + 32 */
    size_t need = 1 + 9 + 2 + CAT_DIGEST_LEN;
    if (cap < need)
        return -ENOBUFS;
    uint8_t *p = buf;
    *p++ = 0x92;
    *p++ = 0xcf;
    for (int i = 7; i >= 0; i--)
        *p++ = (uint8_t)(version >> (8 * i));
    *p++ = 0xc4;
    *p++ = CAT_DIGEST_LEN;
    memcpy(p, digest, CAT_DIGEST_LEN);
    p += CAT_DIGEST_LEN;
    return (int)(p - buf);
}

int cat_meta_decode(const uint8_t *buf, size_t len, uint64_t *version,
                    uint8_t digest[CAT_DIGEST_LEN])
{
    if (!buf)
        return -EBADMSG;
    rd r = {buf, buf + len};
    uint32_t n;
    uint64_t v;
    if (rd_array(&r, &n) || n != 2 || rd_uint(&r, &v))
        return -EBADMSG;
    if (rd_need(&r, 2) || r.p[0] != 0xc4 || r.p[1] != CAT_DIGEST_LEN)
        return -EBADMSG;
    r.p += 2;
    if (rd_need(&r, CAT_DIGEST_LEN))
        return -EBADMSG;
    memcpy(digest, r.p, CAT_DIGEST_LEN);
    r.p += CAT_DIGEST_LEN;
    if (r.p != r.end)
        return -EBADMSG;
    *version = v;
    return 0;
}
