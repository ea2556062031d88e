/*
 * Audit formats: canonical msgpack entries, seals, segment headers, framed
 * records and whole-segment verification. This file owns the byte layouts;
 * agent/audit/ only moves the bytes around.
 *
 * Entry (msgpack array of 8, every header in its shortest form):
 *   [ 1, seq:uint, ts_ns:uint, prev:bin32, kind:str,
 *     request_id:str|nil, actor:nil|[uid:int|nil, pid:int|nil, name:str|nil],
 *     fields:map ]
 * Fields map: string keys in strictly increasing bytewise order; values nil,
 * bool, int (uint family for >= 0), float64 (finite), str (UTF-8), array, map;
 * nesting at most HMS_AUDIT_FIELDS_DEPTH.
 *
 * Seal payload: [1, node_key:bin32, segno, first, last, head:bin32, time_ns, sig:bin64]
 * Signed bytes: "hms-audit-seal-v1" || key || be64 segno || be64 first ||
 *               be64 last || head || be64 time_ns
 * Segment header payload: [1, node_key:bin32, segno, first_seq, prev_head:bin32]
 *
 * Record frame (16 bytes, little endian):
 *   0      1      2   4          8             12            16
 *   +------+------+---+----------+-------------+-------------+---------+
 *   | 0xA7 | type | 0 | len u32  | crc32c(pay) | crc32c(0:12)| payload |
 *   +------+------+---+----------+-------------+-------------+---------+
 * Every byte of a record is covered by one of the two checksums, so a
 * changed byte is a checksum failure, while a record cut short (a torn
 * write) is a valid header whose payload runs past the end.
 */
#include "proto/audit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static const char ENTRY_TAG[] = "hms-audit-entry-v1";
static const char SEAL_TAG[] = "hms-audit-seal-v1";

/* ---- CRC32C --------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static int crc_ready; /* 1 table, 2 hardware; set before main runs */

__attribute__((constructor)) static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_ready = __builtin_cpu_supports("sse4.2") ? 2 : 1;
#else
    crc_ready = 1;
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t hms_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    crc = ~crc;
#if defined(__x86_64__)
    if (crc_ready == 2)
        return ~crc_hw(crc, p, len);
#endif
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
              crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

/* ---- msgpack writer (canonical) ------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t cap, len;
    int err;
} wbuf;

static void w_bytes(wbuf *w, const void *b, size_t n)
{
    if (w->err)
        return;
    if (n > w->cap - w->len) {
        w->err = -ENOBUFS;
        return;
    }
    memcpy(w->p + w->len, b, n);
    w->len += n;
}

static void w_u8(wbuf *w, uint8_t b) { w_bytes(w, &b, 1); }

static void w_be(wbuf *w, uint8_t tag, uint64_t v, int n)
{
    uint8_t b[9];
    b[0] = tag;
    for (int i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    w_bytes(w, b, (size_t)n + 1);
}

static void w_uint(wbuf *w, uint64_t v)
{
    if (v < 128)
        w_u8(w, (uint8_t)v);
    else if (v < 256)
        w_be(w, 0xcc, v, 1);
    else if (v < 65536)
        w_be(w, 0xcd, v, 2);
    else if (v <= 0xffffffffu)
        w_be(w, 0xce, v, 4);
    else
        w_be(w, 0xcf, v, 8);
}

static void w_int(wbuf *w, int64_t v)
{
    if (v >= 0)
        w_uint(w, (uint64_t)v);
    else if (v >= -32)
        w_u8(w, (uint8_t)(int8_t)v);
    else if (v >= -128)
        w_be(w, 0xd0, (uint64_t)v, 1);
    else if (v >= -32768)
        w_be(w, 0xd1, (uint64_t)v, 2);
    else if (v >= INT32_MIN)
        w_be(w, 0xd2, (uint64_t)v, 4);
    else
        w_be(w, 0xd3, (uint64_t)v, 8);
}

static void w_hdr(wbuf *w, uint32_t n, uint8_t fix, uint32_t fixmax, uint8_t t8, uint8_t t16,
                  uint8_t t32)
{
    if (n <= fixmax)
        w_u8(w, (uint8_t)(fix | n));
    else if (t8 && n < 256)
        w_be(w, t8, n, 1);
    else if (n < 65536)
        w_be(w, t16, n, 2);
    else
        w_be(w, t32, n, 4);
}

static void w_str(wbuf *w, const char *s, size_t n)
{
    if (n > 0xffffffffu) {
        w->err = -EINVAL;
        return;
    }
    w_hdr(w, (uint32_t)n, 0xa0, 31, 0xd9, 0xda, 0xdb);
    w_bytes(w, s, n);
}

static void w_bin(wbuf *w, const uint8_t *b, size_t n)
{
    if (n < 256)
        w_be(w, 0xc4, n, 1);
    else if (n < 65536)
        w_be(w, 0xc5, n, 2);
    else
        w_be(w, 0xc6, n, 4);
    w_bytes(w, b, n);
}

static void w_array(wbuf *w, uint32_t n) { w_hdr(w, n, 0x90, 15, 0, 0xdc, 0xdd); }
static void w_map(wbuf *w, uint32_t n) { w_hdr(w, n, 0x80, 15, 0, 0xde, 0xdf); }
static void w_nil(wbuf *w) { w_u8(w, 0xc0); }

static void w_f64(wbuf *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    w_be(w, 0xcb, v, 8);
}

/* ---- msgpack reader (rejects anything not in canonical form) -------------- */

typedef struct rbuf {
    const uint8_t *p;
    size_t len, off;
} rbuf;

static int r_take(rbuf *r, size_t n, const uint8_t **out)
{
    if (n > r->len - r->off)
        return -EBADMSG;
    *out = r->p + r->off;
    r->off += n;
    return 0;
}

static int r_be(rbuf *r, int n, uint64_t *v)
{
    const uint8_t *b;
    if (r_take(r, (size_t)n, &b))
        return -EBADMSG;
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = x << 8 | b[i];
    *v = x;
    return 0;
}

static int r_peek(const rbuf *r)
{
    return r->off < r->len ? r->p[r->off] : -1;
}

static int r_uint(rbuf *r, uint64_t *v)
{
    int t = r_peek(r);
    if (t < 0)
        return -EBADMSG;
    r->off++;
    if (t < 0x80) {
        *v = (uint64_t)t;
        return 0;
    }
    static const uint64_t min[4] = {128, 256, 65536, 0x100000000ULL};
    int i;
    switch (t) {
    case 0xcc: i = 0; break;
    case 0xcd: i = 1; break;
    case 0xce: i = 2; break;
    case 0xcf: i = 3; break;
    default: return -EBADMSG;
    }
    if (r_be(r, 1 << i, v) || *v < min[i])
        return -EBADMSG;
    return 0;
}

static int r_int(rbuf *r, int64_t *v)
{
    int t = r_peek(r);
    if (t < 0)
        return -EBADMSG;
    if (t < 0x80 || (t >= 0xcc && t <= 0xcf)) {
        uint64_t u;
        if (r_uint(r, &u) || u > INT64_MAX)
            return -EBADMSG;
        *v = (int64_t)u;
        return 0;
    }
    r->off++;
    if (t >= 0xe0) {
        *v = (int8_t)t;
        return 0;
    }
    uint64_t u;
    int64_t x;
    switch (t) {
    case 0xd0:
        if (r_be(r, 1, &u))
            return -EBADMSG;
        x = (int8_t)u;
        if (x >= -32)
            return -EBADMSG;
        break;
    case 0xd1:
        if (r_be(r, 2, &u))
            return -EBADMSG;
        x = (int16_t)u;
        if (x >= -128)
            return -EBADMSG;
        break;
    case 0xd2:
        if (r_be(r, 4, &u))
            return -EBADMSG;
        x = (int32_t)u;
        if (x >= -32768)
            return -EBADMSG;
        break;
    case 0xd3:
        if (r_be(r, 8, &u))
            return -EBADMSG;
        x = (int64_t)u;
        if (x >= INT32_MIN)
            return -EBADMSG;
        break;
    default: return -EBADMSG;
    }
    *v = x;
    return 0;
}

/* Reads a length header of one of the families (fix range, 8, 16, 32). */
static int r_len(rbuf *r, uint8_t fix, uint8_t fixmask, uint32_t fixmax, int t8, int t16, int t32,
                 uint32_t *n)
{
    int t = r_peek(r);
    if (t < 0)
        return -EBADMSG;
    r->off++;
    uint64_t v;
    if ((t & ~fixmask & 0xff) == fix) {
        *n = (uint32_t)(t & fixmask);
        return 0;
    }
    if (t8 >= 0 && t == t8) {
        if (r_be(r, 1, &v) || v <= fixmax)
            return -EBADMSG;
    } else if (t == t16) {
        if (r_be(r, 2, &v) || v < (t8 >= 0 ? 256u : fixmax + 1))
            return -EBADMSG;
    } else if (t == t32) {
        if (r_be(r, 4, &v) || v < 65536)
            return -EBADMSG;
    } else {
        return -EBADMSG;
    }
    *n = (uint32_t)v;
    return 0;
}

static int r_str(rbuf *r, const char **s, size_t *n)
{
    uint32_t k;
    const uint8_t *b;
    if (r_len(r, 0xa0, 0x1f, 31, 0xd9, 0xda, 0xdb, &k) || r_take(r, k, &b))
        return -EBADMSG;
    *s = (const char *)b;
    *n = k;
    return 0;
}

static int r_array(rbuf *r, uint32_t *n)
{
    if (r_len(r, 0x90, 0x0f, 15, -1, 0xdc, 0xdd, n))
        return -EBADMSG;
    return *n > r->len - r->off ? -EBADMSG : 0; /* each element takes a byte */
}

static int r_map(rbuf *r, uint32_t *n)
{
    if (r_len(r, 0x80, 0x0f, 15, -1, 0xde, 0xdf, n))
        return -EBADMSG;
    return *n > (r->len - r->off) / 2 ? -EBADMSG : 0;
}

static int r_bin_fixed(rbuf *r, uint8_t *out, size_t want)
{
    int t = r_peek(r);
    uint64_t n;
    const uint8_t *b;
    /* want < 256 for every fixed binary here, so bin8 is the canonical form */
    if (t != 0xc4)
        return -EBADMSG;
    r->off++;
    if (r_be(r, 1, &n) || n != want || r_take(r, want, &b))
        return -EBADMSG;
    memcpy(out, b, want);
    return 0;
}

static int r_nil(rbuf *r)
{
    if (r_peek(r) == 0xc0) {
        r->off++;
        return 1;
    }
    return 0;
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path: 8 bytes without a high bit or a zero byte */
        while (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if ((v & 0x8080808080808080ULL) ||
                ((v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL))
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return false; /* NUL would truncate C strings downstream */
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (k > n - i - 1)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* ---- fields ----------------------------------------------------------------- */

static int key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int check_value(rbuf *r, int depth)
{
    int t = r_peek(r);
    if (t < 0 || depth > HMS_AUDIT_FIELDS_DEPTH)
        return -EBADMSG;
    if (t == 0xc0 || t == 0xc2 || t == 0xc3) {
        r->off++;
        return 0;
    }
    if (t < 0x80 || (t >= 0xcc && t <= 0xd3) || t >= 0xe0) {
        int64_t i;
        uint64_t u;
        if (t < 0x80 || (t >= 0xcc && t <= 0xcf))
            return r_uint(r, &u);
        return r_int(r, &i);
    }
    if (t == 0xcb) {
        uint64_t v;
        double d;
        r->off++;
        if (r_be(r, 8, &v))
            return -EBADMSG;
        memcpy(&d, &v, 8);
        return isfinite(d) ? 0 : -EBADMSG;
    }
    if ((t & 0xe0) == 0xa0 || t == 0xd9 || t == 0xda || t == 0xdb) {
        const char *s;
        size_t n;
        if (r_str(r, &s, &n) || !utf8_valid((const uint8_t *)s, n))
            return -EBADMSG;
        return 0;
    }
    if ((t & 0xf0) == 0x90 || t == 0xdc || t == 0xdd) {
        uint32_t n;
        if (r_array(r, &n))
            return -EBADMSG;
        for (uint32_t i = 0; i < n; i++)
            if (check_value(r, depth + 1))
                return -EBADMSG;
        return 0;
    }
    if ((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf) {
        uint32_t n;
        if (r_map(r, &n))
            return -EBADMSG;
        const char *pk = NULL;
        size_t pn = 0;
        for (uint32_t i = 0; i < n; i++) {
            const char *k;
            size_t kn;
            if (r_str(r, &k, &kn) || !utf8_valid((const uint8_t *)k, kn))
                return -EBADMSG;
            if (pk && key_cmp(pk, pn, k, kn) >= 0)
                return -EBADMSG;
            pk = k;
            pn = kn;
            if (check_value(r, depth + 1))
                return -EBADMSG;
        }
        return 0;
    }
    return -EBADMSG;
}

int hms_audit_fields_check(const uint8_t *buf, size_t len)
{
    rbuf r = {buf, len, 0};
    int t = r_peek(&r);
    if (!((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf))
        return -EBADMSG;
    if (check_value(&r, 0) || r.off != len)
        return -EBADMSG;
    return 0;
}

typedef struct kv {
    const char *k;
    json_t *v;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kv *)a)->k, ((const kv *)b)->k);
}

static void json_to_mp(wbuf *w, const json_t *v, int depth)
{
    if (w->err)
        return;
    if (depth > HMS_AUDIT_FIELDS_DEPTH) {
        w->err = -EINVAL;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v);
        if (n > 0xffffffffu) {
            w->err = -EINVAL;
            return;
        }
        kv small[16];
        kv *keys = n <= 16 ? small : malloc(n * sizeof(*keys));
        if (!keys) {
            w->err = -ENOMEM;
            return;
        }
        size_t i = 0;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            keys[i].k = k;
            keys[i].v = x;
            i++;
        }
        qsort(keys, n, sizeof(*keys), kv_cmp);
        w_map(w, (uint32_t)n);
        for (i = 0; i < n && !w->err; i++) {
            size_t kn = strlen(keys[i].k);
            if ((i > 0 && strcmp(keys[i - 1].k, keys[i].k) == 0) ||
                !utf8_valid((const uint8_t *)keys[i].k, kn)) {
                w->err = -EINVAL;
                break;
            }
            w_str(w, keys[i].k, kn);
            json_to_mp(w, keys[i].v, depth + 1);
        }
        if (keys != small)
            free(keys);
        return;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n > 0xffffffffu) {
            w->err = -EINVAL;
            return;
        }
        w_array(w, (uint32_t)n);
        for (size_t i = 0; i < n; i++)
            json_to_mp(w, json_array_get(v, i), depth + 1);
        return;
    }
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (!utf8_valid((const uint8_t *)s, n)) {
            w->err = -EINVAL;
            return;
        }
        w_str(w, s, n);
        return;
    }
    case JSON_INTEGER: w_int(w, (int64_t)json_integer_value(v)); return;
    case JSON_REAL: {
        double d = json_real_value(v);
        if (!isfinite(d)) {
            w->err = -EINVAL;
            return;
        }
        w_f64(w, d);
        return;
    }
    case JSON_TRUE: w_u8(w, 0xc3); return;
    case JSON_FALSE: w_u8(w, 0xc2); return;
    case JSON_NULL: w_nil(w); return;
    }
    w->err = -EINVAL;
}

int hms_audit_fields_from_json(const json_t *obj, uint8_t *out, size_t cap, size_t *len)
{
    wbuf w = {out, cap, 0, 0};
    if (!obj)
        w_map(&w, 0);
    else if (!json_is_object(obj))
        return -EINVAL;
    else
        json_to_mp(&w, obj, 0);
    if (w.err)
        return w.err;
    *len = w.len;
    return 0;
}

/* Converts one value already checked by check_value(). */
static json_t *mp_to_json(rbuf *r)
{
    int t = r_peek(r);
    if (t == 0xc0 || t == 0xc2 || t == 0xc3) {
        r->off++;
        return t == 0xc0 ? json_null() : json_boolean(t == 0xc3);
    }
    if (t < 0x80 || (t >= 0xcc && t <= 0xcf)) {
        uint64_t u;
        if (r_uint(r, &u))
            return NULL;
        return u > INT64_MAX ? json_real((double)u) : json_integer((json_int_t)u);
    }
    if ((t >= 0xd0 && t <= 0xd3) || t >= 0xe0) {
        int64_t i;
        return r_int(r, &i) ? NULL : json_integer((json_int_t)i);
    }
    if (t == 0xcb) {
        uint64_t v;
        double d;
        r->off++;
        if (r_be(r, 8, &v))
            return NULL;
        memcpy(&d, &v, 8);
        return json_real(d);
    }
    if ((t & 0xe0) == 0xa0 || t == 0xd9 || t == 0xda || t == 0xdb) {
        const char *s;
        size_t n;
        return r_str(r, &s, &n) ? NULL : json_stringn(s, n);
    }
    if ((t & 0xf0) == 0x90 || t == 0xdc || t == 0xdd) {
        uint32_t n;
        json_t *a = r_array(r, &n) ? NULL : json_array();
        for (uint32_t i = 0; a && i < n; i++) {
            json_t *x = mp_to_json(r);
            if (!x || json_array_append_new(a, x)) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    uint32_t n;
    json_t *o = r_map(r, &n) ? NULL : json_object();
    for (uint32_t i = 0; o && i < n; i++) {
        const char *k;
        size_t kn;
        char key[1024];
        if (r_str(r, &k, &kn)) {
            json_decref(o);
            return NULL;
        }
        json_t *x = mp_to_json(r);
        int rc = -1;
        if (x && kn < sizeof(key)) {
            memcpy(key, k, kn);
            key[kn] = 0;
            rc = json_object_set_new(o, key, x);
            x = NULL;
        }
        json_decref(x);
        if (rc) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *hms_audit_fields_to_json(const uint8_t *buf, size_t len)
{
    if (!buf)
        return json_object();
    if (hms_audit_fields_check(buf, len))
        return NULL;
    rbuf r = {buf, len, 0};
    return mp_to_json(&r);
}

/* ---- entries ---------------------------------------------------------------- */

static const uint8_t EMPTY_MAP = 0x80;

int hms_audit_entry_encode(const hms_audit_entry *e, uint8_t *out, size_t cap, size_t *len)
{
    if (!e->kind || e->kind_len == 0 || e->kind_len > HMS_AUDIT_KIND_LEN_MAX ||
        !printable(e->kind, e->kind_len))
        return -EINVAL;
    if (e->reqid && (e->reqid_len == 0 || e->reqid_len > HMS_AUDIT_REQID_LEN_MAX ||
                     !printable(e->reqid, e->reqid_len)))
        return -EINVAL;
    if (e->has_actor && e->actor_name &&
        (e->actor_name_len > HMS_AUDIT_NAME_LEN_MAX ||
         !utf8_valid((const uint8_t *)e->actor_name, e->actor_name_len)))
        return -EINVAL;
    if (e->has_actor && (e->uid < -1 || e->pid < -1))
        return -EINVAL;
    wbuf w = {out, cap < HMS_AUDIT_ENTRY_MAX ? cap : HMS_AUDIT_ENTRY_MAX, 0, 0};
    w_array(&w, 8);
    w_u8(&w, 1);
    w_uint(&w, e->seq);
    w_uint(&w, e->ts_ns);
    w_bin(&w, e->prev, HMS_AUDIT_HASH_LEN);
    w_str(&w, e->kind, e->kind_len);
    if (e->reqid)
        w_str(&w, e->reqid, e->reqid_len);
    else
        w_nil(&w);
    if (e->has_actor) {
        w_array(&w, 3);
        if (e->uid >= 0)
            w_uint(&w, (uint64_t)e->uid);
        else
            w_nil(&w);
        if (e->pid >= 0)
            w_uint(&w, (uint64_t)e->pid);
        else
            w_nil(&w);
        if (e->actor_name)
            w_str(&w, e->actor_name, e->actor_name_len);
        else
            w_nil(&w);
    } else {
        w_nil(&w);
    }
    if (e->fields) {
        /* Callers pass bytes from hms_audit_fields_from_json or a decoded
         * entry; a check here would double the cost of every append. */
        w_bytes(&w, e->fields, e->fields_len);
    } else {
        w_bytes(&w, &EMPTY_MAP, 1);
    }
    if (w.err)
        return w.err;
    *len = w.len;
    return 0;
}

int hms_audit_entry_decode(const uint8_t *buf, size_t len, hms_audit_entry *e)
{
    if (len > HMS_AUDIT_ENTRY_MAX)
        return -EBADMSG;
    rbuf r = {buf, len, 0};
    uint32_t n;
    uint64_t v;
    hms_audit_entry x;
    memset(&x, 0, sizeof(x));
    if (r_array(&r, &n) || n != 8 || r_uint(&r, &v) || v != 1)
        return -EBADMSG;
    if (r_uint(&r, &x.seq) || r_uint(&r, &x.ts_ns) || r_bin_fixed(&r, x.prev, HMS_AUDIT_HASH_LEN))
        return -EBADMSG;
    if (r_str(&r, &x.kind, &x.kind_len) || x.kind_len == 0 ||
        x.kind_len > HMS_AUDIT_KIND_LEN_MAX || !printable(x.kind, x.kind_len))
        return -EBADMSG;
    if (!r_nil(&r)) {
        if (r_str(&r, &x.reqid, &x.reqid_len) || x.reqid_len == 0 ||
            x.reqid_len > HMS_AUDIT_REQID_LEN_MAX || !printable(x.reqid, x.reqid_len))
            return -EBADMSG;
    }
    x.uid = x.pid = -1;
    if (!r_nil(&r)) {
        x.has_actor = true;
        if (r_array(&r, &n) || n != 3)
            return -EBADMSG;
        if (!r_nil(&r)) {
            if (r_uint(&r, &v) || v > INT64_MAX)
                return -EBADMSG;
            x.uid = (int64_t)v;
        }
        if (!r_nil(&r)) {
            if (r_uint(&r, &v) || v > INT64_MAX)
                return -EBADMSG;
            x.pid = (int64_t)v;
        }
        if (!r_nil(&r)) {
            if (r_str(&r, &x.actor_name, &x.actor_name_len) ||
                x.actor_name_len > HMS_AUDIT_NAME_LEN_MAX ||
                !utf8_valid((const uint8_t *)x.actor_name, x.actor_name_len))
                return -EBADMSG;
        }
    }
    x.fields = buf + r.off;
    x.fields_len = len - r.off;
    if (hms_audit_fields_check(x.fields, x.fields_len))
        return -EBADMSG;
    *e = x;
    return 0;
}

void hms_audit_entry_hash(const uint8_t *enc, size_t len, uint8_t out[HMS_AUDIT_HASH_LEN])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, HMS_AUDIT_HASH_LEN);
    crypto_generichash_update(&st, (const uint8_t *)ENTRY_TAG, sizeof(ENTRY_TAG) - 1);
    crypto_generichash_update(&st, enc, len);
    crypto_generichash_final(&st, out, HMS_AUDIT_HASH_LEN);
}

void hms_audit_hex(const uint8_t *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hms_audit_unhex(const char *in, uint8_t *out, size_t n)
{
    if (strlen(in) != 2 * n)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int a = hexval(in[2 * i]), b = hexval(in[2 * i + 1]);
        if (a < 0 || b < 0)
            return -EINVAL;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
}

json_t *hms_audit_entry_to_json(const hms_audit_entry *e, const uint8_t hash[HMS_AUDIT_HASH_LEN])
{
    char hex[2 * HMS_AUDIT_HASH_LEN + 1], tbuf[64];
    time_t secs = (time_t)(e->ts_ns / 1000000000ULL);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t k = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tbuf + k, sizeof(tbuf) - k, ".%09lluZ", (unsigned long long)(e->ts_ns % 1000000000ULL));
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
    json_object_set_new(o, "ts", json_integer((json_int_t)e->ts_ns));
    json_object_set_new(o, "time", json_string(tbuf));
    json_object_set_new(o, "kind", json_stringn(e->kind, e->kind_len));
    json_object_set_new(o, "request_id", e->reqid ? json_stringn(e->reqid, e->reqid_len) : json_null());
    if (e->has_actor) {
        json_t *a = json_object();
        json_object_set_new(a, "uid", e->uid >= 0 ? json_integer(e->uid) : json_null());
        json_object_set_new(a, "pid", e->pid >= 0 ? json_integer(e->pid) : json_null());
        json_object_set_new(a, "name", e->actor_name ? json_stringn(e->actor_name, e->actor_name_len)
                                                     : json_null());
        json_object_set_new(o, "actor", a);
    } else {
        json_object_set_new(o, "actor", json_null());
    }
    json_t *f = hms_audit_fields_to_json(e->fields, e->fields_len);
    json_object_set_new(o, "fields", f ? f : json_object());
    hms_audit_hex(e->prev, HMS_AUDIT_HASH_LEN, hex);
    json_object_set_new(o, "prev", json_string(hex));
    if (hash) {
        hms_audit_hex(hash, HMS_AUDIT_HASH_LEN, hex);
        json_object_set_new(o, "hash", json_string(hex));
    }
    return o;
}

/* ---- seals ------------------------------------------------------------------ */

static size_t seal_message(const hms_audit_seal *s, uint8_t *m)
{
    size_t o = 0;
    memcpy(m, SEAL_TAG, sizeof(SEAL_TAG) - 1);
    o += sizeof(SEAL_TAG) - 1;
    memcpy(m + o, s->node_key, HMS_AUDIT_KEY_LEN);
    o += HMS_AUDIT_KEY_LEN;
    const uint64_t v[3] = {s->segno, s->first_seq, s->last_seq};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 8; j++)
            m[o++] = (uint8_t)(v[i] >> (56 - 8 * j));
    memcpy(m + o, s->head, HMS_AUDIT_HASH_LEN);
    o += HMS_AUDIT_HASH_LEN;
    for (int j = 0; j < 8; j++)
        m[o++] = (uint8_t)(s->time_ns >> (56 - 8 * j));
    return o;
}

void hms_audit_seal_sign(hms_audit_seal *s, const uint8_t sk[64])
{
    uint8_t m[160];
    crypto_sign_ed25519_sk_to_pk(s->node_key, sk);
    size_t n = seal_message(s, m);
    crypto_sign_detached(s->sig, NULL, m, n, sk);
}

int hms_audit_seal_verify(const hms_audit_seal *s)
{
    uint8_t m[160];
    size_t n = seal_message(s, m);
    if (s->first_seq > s->last_seq)
        return -EBADMSG;
    return crypto_sign_verify_detached(s->sig, m, n, s->node_key) == 0 ? 0 : -EBADMSG;
}

bool hms_audit_seal_same(const hms_audit_seal *a, const hms_audit_seal *b)
{
    return memcmp(a->node_key, b->node_key, HMS_AUDIT_KEY_LEN) == 0 && a->segno == b->segno &&
           a->first_seq == b->first_seq && a->last_seq == b->last_seq &&
           memcmp(a->head, b->head, HMS_AUDIT_HASH_LEN) == 0 && a->time_ns == b->time_ns;
}

int hms_audit_seal_encode(const hms_audit_seal *s, uint8_t *out, size_t cap, size_t *len)
{
    wbuf w = {out, cap, 0, 0};
    w_array(&w, 8);
    w_u8(&w, 1);
    w_bin(&w, s->node_key, HMS_AUDIT_KEY_LEN);
    w_uint(&w, s->segno);
    w_uint(&w, s->first_seq);
    w_uint(&w, s->last_seq);
    w_bin(&w, s->head, HMS_AUDIT_HASH_LEN);
    w_uint(&w, s->time_ns);
    w_bin(&w, s->sig, HMS_AUDIT_SIG_LEN);
    if (w.err)
        return w.err;
    *len = w.len;
    return 0;
}

int hms_audit_seal_decode(const uint8_t *buf, size_t len, hms_audit_seal *s)
{
    rbuf r = {buf, len, 0};
    uint32_t n;
    uint64_t v;
    hms_audit_seal x;
    if (r_array(&r, &n) || n != 8 || r_uint(&r, &v) || v != 1 ||
        r_bin_fixed(&r, x.node_key, HMS_AUDIT_KEY_LEN) || r_uint(&r, &x.segno) ||
        r_uint(&r, &x.first_seq) || r_uint(&r, &x.last_seq) ||
        r_bin_fixed(&r, x.head, HMS_AUDIT_HASH_LEN) || r_uint(&r, &x.time_ns) ||
        r_bin_fixed(&r, x.sig, HMS_AUDIT_SIG_LEN) || r.off != len || x.first_seq > x.last_seq)
        return -EBADMSG;
    *s = x;
    return 0;
}

/* ---- segment headers ---------------------------------------------------------- */

int hms_audit_seghdr_encode(const hms_audit_seghdr *h, uint8_t *out, size_t cap, size_t *len)
{
    wbuf w = {out, cap, 0, 0};
    w_array(&w, 5);
    w_u8(&w, 1);
    w_bin(&w, h->node_key, HMS_AUDIT_KEY_LEN);
    w_uint(&w, h->segno);
    w_uint(&w, h->first_seq);
    w_bin(&w, h->prev_head, HMS_AUDIT_HASH_LEN);
    if (w.err)
        return w.err;
    *len = w.len;
    return 0;
}

int hms_audit_seghdr_decode(const uint8_t *buf, size_t len, hms_audit_seghdr *h)
{
    rbuf r = {buf, len, 0};
    uint32_t n;
    uint64_t v;
    hms_audit_seghdr x;
    if (r_array(&r, &n) || n != 5 || r_uint(&r, &v) || v != 1 ||
        r_bin_fixed(&r, x.node_key, HMS_AUDIT_KEY_LEN) || r_uint(&r, &x.segno) ||
        r_uint(&r, &x.first_seq) || r_bin_fixed(&r, x.prev_head, HMS_AUDIT_HASH_LEN) ||
        r.off != len)
        return -EBADMSG;
    *h = x;
    return 0;
}

/* ---- gossip head message, pull request ------------------------------------------ */

static int r_bin_var(rbuf *r, const uint8_t **b, size_t *n)
{
    int t = r_peek(r);
    uint64_t k;
    if (t != 0xc4)
        return -EBADMSG; /* every binary here is shorter than 256 bytes */
    r->off++;
    if (r_be(r, 1, &k) || r_take(r, k, b))
        return -EBADMSG;
    *n = k;
    return 0;
}

int hms_audit_headmsg_encode(const hms_audit_headmsg *m, uint8_t *out, size_t cap, size_t *len)
{
    if (m->nholdings > HMS_AUDIT_HOLDINGS_MAX)
        return -EINVAL;
    wbuf w = {out, cap, 0, 0};
    w_array(&w, 3);
    w_u8(&w, 1);
    if (m->has_seal) {
        uint8_t sb[HMS_AUDIT_SEAL_ENC_MAX];
        size_t sl;
        int r = hms_audit_seal_encode(&m->seal, sb, sizeof(sb), &sl);
        if (r)
            return r;
        w_bin(&w, sb, sl);
    } else {
        w_nil(&w);
    }
    w_array(&w, (uint32_t)m->nholdings);
    for (size_t i = 0; i < m->nholdings; i++) {
        w_array(&w, 3);
        w_bin(&w, m->holdings[i].key8, 8);
        w_uint(&w, m->holdings[i].last_segno);
        w_bin(&w, m->holdings[i].head8, 8);
    }
    if (w.err)
        return w.err;
    *len = w.len;
    return 0;
}

int hms_audit_headmsg_decode(const uint8_t *buf, size_t len, hms_audit_headmsg *m)
{
    rbuf r = {buf, len, 0};
    uint32_t n;
    uint64_t v;
    hms_audit_headmsg x;
    memset(&x, 0, sizeof(x));
    if (r_array(&r, &n) || n != 3 || r_uint(&r, &v) || v != 1)
        return -EBADMSG;
    if (!r_nil(&r)) {
        const uint8_t *b;
        size_t bl;
        if (r_bin_var(&r, &b, &bl) || hms_audit_seal_decode(b, bl, &x.seal))
            return -EBADMSG;
        x.has_seal = true;
    }
    if (r_array(&r, &n) || n > HMS_AUDIT_HOLDINGS_MAX)
        return -EBADMSG;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        hms_audit_holding *h = &x.holdings[i];
        if (r_array(&r, &k) || k != 3 || r_bin_fixed(&r, h->key8, 8) ||
            r_uint(&r, &h->last_segno) || r_bin_fixed(&r, h->head8, 8))
            return -EBADMSG;
    }
    x.nholdings = n;
    if (r.off != len)
        return -EBADMSG;
    *m = x;
    return 0;
}

void hms_audit_pullreq_encode(const uint8_t key[32], uint64_t from_segno, uint32_t max_bytes,
                              uint8_t out[HMS_AUDIT_PULLREQ_LEN])
{
    memcpy(out, key, 32);
    for (int i = 0; i < 8; i++)
        out[32 + i] = (uint8_t)(from_segno >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[40 + i] = (uint8_t)(max_bytes >> (24 - 8 * i));
}

int hms_audit_pullreq_decode(const uint8_t *buf, size_t len, uint8_t key[32], uint64_t *from_segno,
                             uint32_t *max_bytes)
{
    if (len != HMS_AUDIT_PULLREQ_LEN)
        return -EBADMSG;
    memcpy(key, buf, 32);
    uint64_t f = 0;
    uint32_t m = 0;
    for (int i = 0; i < 8; i++)
        f = f << 8 | buf[32 + i];
    for (int i = 0; i < 4; i++)
        m = m << 8 | buf[40 + i];
    *from_segno = f;
    *max_bytes = m;
    return 0;
}

int hms_audit_next_segment(const uint8_t *buf, size_t len, size_t *seglen)
{
    size_t off = 0, next, plen;
    const uint8_t *pay;
    uint8_t type;
    bool first = true;
    while (off < len) {
        if (hms_audit_unframe(buf, len, off, &type, &pay, &plen, &next) != 0)
            return -EBADMSG;
        if ((type == HMS_AUDIT_REC_HEADER) != first)
            return -EBADMSG;
        first = false;
        off = next;
        if (type == HMS_AUDIT_REC_SEAL) {
            *seglen = off;
            return 0;
        }
        if (off > HMS_AUDIT_SEGMENT_MAX)
            return -EBADMSG;
    }
    return -EBADMSG;
}

/* ---- records ------------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void hms_audit_frame(uint8_t type, const uint8_t *payload, size_t len, uint8_t hdr[HMS_AUDIT_REC_HDR])
{
    hdr[0] = HMS_AUDIT_REC_MAGIC;
    hdr[1] = type;
    hdr[2] = hdr[3] = 0;
    put32(hdr + 4, (uint32_t)len);
    put32(hdr + 8, hms_crc32c(0, payload, len));
    put32(hdr + 12, hms_crc32c(0, hdr, 12));
}

int hms_audit_unframe(const uint8_t *buf, size_t len, size_t off, uint8_t *type,
                      const uint8_t **payload, size_t *plen, size_t *next)
{
    if (off > len)
        return -EBADMSG;
    if (len - off < HMS_AUDIT_REC_HDR)
        return HMS_AUDIT_TORN;
    const uint8_t *h = buf + off;
    if (get32(h + 12) != hms_crc32c(0, h, 12))
        return -EBADMSG;
    uint32_t n = get32(h + 4);
    if (h[0] != HMS_AUDIT_REC_MAGIC || h[1] < HMS_AUDIT_REC_HEADER || h[1] > HMS_AUDIT_REC_SEAL ||
        h[2] || h[3] || n > HMS_AUDIT_ENTRY_MAX)
        return -EBADMSG;
    if (n > len - off - HMS_AUDIT_REC_HDR)
        return HMS_AUDIT_TORN;
    if (get32(h + 8) != hms_crc32c(0, h + HMS_AUDIT_REC_HDR, n))
        return -EBADMSG;
    *type = h[1];
    *payload = h + HMS_AUDIT_REC_HDR;
    *plen = n;
    *next = off + HMS_AUDIT_REC_HDR + n;
    return 0;
}

/* ---- whole segments ------------------------------------------------------------- */

#define FAIL(o, msg)                                                                               \
    do {                                                                                           \
        *err_off = (o);                                                                            \
        *why = (msg);                                                                              \
        info->valid_len = valid;                                                                   \
        return -EBADMSG;                                                                           \
    } while (0)

int hms_audit_segment_verify(const uint8_t *buf, size_t len, const uint8_t *expect_key,
                             bool allow_open, hms_audit_seginfo *info, size_t *err_off,
                             const char **why, hms_audit_entry_fn fn, void *ctx)
{
    size_t off = 0, next, plen, valid = 0;
    const uint8_t *pay;
    uint8_t type;
    memset(info, 0, sizeof(*info));
    *err_off = 0;
    *why = "";
    if (len > HMS_AUDIT_SEGMENT_MAX)
        FAIL(0, "segment too large");
    int rc = hms_audit_unframe(buf, len, 0, &type, &pay, &plen, &next);
    if (rc == HMS_AUDIT_TORN && allow_open) {
        info->valid_len = 0;
        return HMS_AUDIT_TORN;
    }
    if (rc)
        FAIL(0, rc == HMS_AUDIT_TORN ? "truncated segment header" : "bad segment header record");
    if (type != HMS_AUDIT_REC_HEADER || hms_audit_seghdr_decode(pay, plen, &info->hdr))
        FAIL(0, "bad segment header");
    if (expect_key && memcmp(expect_key, info->hdr.node_key, HMS_AUDIT_KEY_LEN) != 0)
        FAIL(0, "segment of another node");
    memcpy(info->head, info->hdr.prev_head, HMS_AUDIT_HASH_LEN);
    uint64_t want = info->hdr.first_seq;
    off = valid = next;
    while (off < len) {
        rc = hms_audit_unframe(buf, len, off, &type, &pay, &plen, &next);
        if (rc == HMS_AUDIT_TORN && allow_open && !info->sealed) {
            info->valid_len = valid;
            return HMS_AUDIT_TORN;
        }
        if (rc)
            FAIL(off, rc == HMS_AUDIT_TORN ? "truncated record" : "record checksum mismatch");
        if (info->sealed)
            FAIL(off, "data after seal");
        if (type == HMS_AUDIT_REC_ENTRY) {
            hms_audit_entry e;
            uint8_t h[HMS_AUDIT_HASH_LEN];
            if (hms_audit_entry_decode(pay, plen, &e))
                FAIL(off, "malformed entry");
            if (e.seq != want)
                FAIL(off, "sequence gap");
            if (memcmp(e.prev, info->head, HMS_AUDIT_HASH_LEN) != 0)
                FAIL(off, "broken hash chain");
            if (info->count > 0 && e.ts_ns < info->last_ts)
                FAIL(off, "time goes backwards");
            hms_audit_entry_hash(pay, plen, h);
            memcpy(info->head, h, HMS_AUDIT_HASH_LEN);
            if (info->count == 0)
                info->first_ts = e.ts_ns;
            info->last_ts = e.ts_ns;
            info->last_seq = e.seq;
            info->count++;
            want++;
            if (fn && fn(ctx, &e, h, pay, plen)) {
                info->valid_len = next;
                return 1;
            }
        } else if (type == HMS_AUDIT_REC_SEAL) {
            hms_audit_seal *s = &info->seal;
            if (hms_audit_seal_decode(pay, plen, s))
                FAIL(off, "malformed seal");
            if (info->count == 0 || s->segno != info->hdr.segno ||
                s->first_seq != info->hdr.first_seq || s->last_seq != info->last_seq ||
                memcmp(s->node_key, info->hdr.node_key, HMS_AUDIT_KEY_LEN) != 0 ||
                memcmp(s->head, info->head, HMS_AUDIT_HASH_LEN) != 0)
                FAIL(off, "seal does not match the segment");
            if (hms_audit_seal_verify(s))
                FAIL(off, "bad seal signature");
            info->sealed = true;
        } else {
            FAIL(off, "unexpected segment header");
        }
        off = valid = next;
    }
    info->valid_len = valid;
    if (!info->sealed && !allow_open)
        FAIL(len, "segment not sealed");
    return 0;
}
