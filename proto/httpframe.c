/*
 * Agent <-> hms-http frames (see httpframe.h): a hand-written msgpack
 * subset, enough for a flat map of small unsigned integers and short
 * strings. Writing it by hand keeps the decoder free of allocation and its
 * bounds obvious; a reader over outside bytes never trusts a declared
 * length before checking it against the bytes left.
 */
#include "proto/httpframe.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* ---- writer -------------------------------------------------------------- */

typedef struct wr {
    uint8_t *p;
    size_t cap, off;
    bool full;
} wr;

static void put(wr *w, const void *src, size_t n)
{
    if (w->full || w->cap - w->off < n) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->off, src, n);
    w->off += n;
}

static void put_u8(wr *w, uint8_t b)
{
    put(w, &b, 1);
}

static void put_uint(wr *w, uint32_t v)
{
    uint8_t b[5];
    if (v < 0x80) {
        put_u8(w, (uint8_t)v);
    } else if (v <= 0xff) {
        b[0] = 0xcc, b[1] = (uint8_t)v;
        put(w, b, 2);
    } else if (v <= 0xffff) {
        b[0] = 0xcd, b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)v;
        put(w, b, 3);
    } else {
        b[0] = 0xce, b[1] = (uint8_t)(v >> 24), b[2] = (uint8_t)(v >> 16);
        b[3] = (uint8_t)(v >> 8), b[4] = (uint8_t)v;
        put(w, b, 5);
    }
}

/* Strings here are at most HMS_HTTP_URL_MAX bytes: fixstr, str8 or str16. */
static void put_str(wr *w, const char *s, size_t n)
{
    uint8_t b[3];
    if (n < 32) {
        put_u8(w, (uint8_t)(0xa0 | n));
    } else if (n <= 0xff) {
        b[0] = 0xd9, b[1] = (uint8_t)n;
        put(w, b, 2);
    } else {
        b[0] = 0xda, b[1] = (uint8_t)(n >> 8), b[2] = (uint8_t)n;
        put(w, b, 3);
    }
    put(w, s, n);
}

static void put_key(wr *w, const char *k)
{
    put_str(w, k, strlen(k));
}

/* Writes the header once the payload length is known. */
static int finish_frame(wr *w, size_t *used)
{
    if (w->full)
        return -ENOSPC;
    size_t plen = w->off - HMS_HTTPFRAME_HDR;
    if (plen > HMS_HTTPFRAME_MAX)
        return -EINVAL;
    w->p[0] = (uint8_t)(plen >> 24);
    w->p[1] = (uint8_t)(plen >> 16);
    w->p[2] = (uint8_t)(plen >> 8);
    w->p[3] = (uint8_t)plen;
    *used = w->off;
    return 0;
}

/* ---- text checks, shared by both directions ------------------------------ */

/* Printable ASCII; spaces allowed or not. */
static bool text_ok(const char *s, size_t n, bool space)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < (space ? 0x20 : 0x21) || c > 0x7e)
            return false;
    }
    return true;
}

static bool url_ok(const char *s, size_t n)
{
    if (!((n > 7 && !memcmp(s, "http://", 7)) || (n > 8 && !memcmp(s, "https://", 8))))
        return false;
    return text_ok(s, n, false);
}

static bool method_ok(const char *s, size_t n, bool empty_ok)
{
    if (n == 0)
        return empty_ok;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    return true;
}

/* Length of a NUL-terminated field of an array of cap bytes, or cap when
 * it is not terminated (which the range checks then refuse). */
static size_t field_len(const char *s, size_t cap)
{
    const char *z = memchr(s, '\0', cap);
    return z ? (size_t)(z - s) : cap;
}

int hms_http_req_encode(const hms_http_req *r, uint8_t *out, size_t cap, size_t *used)
{
    size_t ulen = field_len(r->url, sizeof(r->url));
    size_t mlen = field_len(r->method, sizeof(r->method));
    if (ulen > HMS_HTTP_URL_MAX || !url_ok(r->url, ulen) || mlen > HMS_HTTP_METHOD_MAX ||
        !method_ok(r->method, mlen, true) || r->timeout_ms == 0 ||
        r->timeout_ms > HMS_HTTP_TIMEOUT_MAX)
        return -EINVAL;
    if (cap < HMS_HTTPFRAME_HDR)
        return -ENOSPC;
    wr w = {.p = out, .cap = cap, .off = HMS_HTTPFRAME_HDR};
    put_u8(&w, (uint8_t)(0x80 | (mlen ? 4 : 3)));
    put_key(&w, "id");
    put_uint(&w, r->id);
    put_key(&w, "url");
    put_str(&w, r->url, ulen);
    put_key(&w, "timeout_ms");
    put_uint(&w, r->timeout_ms);
    if (mlen) {
        put_key(&w, "method");
        put_str(&w, r->method, mlen);
    }
    return finish_frame(&w, used);
}

int hms_http_resp_encode(const hms_http_resp *r, uint8_t *out, size_t cap, size_t *used)
{
    size_t elen = field_len(r->error, sizeof(r->error));
    size_t llen = field_len(r->line, sizeof(r->line));
    if (r->status > 999 || elen > HMS_HTTP_ERROR_MAX || !text_ok(r->error, elen, true) ||
        llen > HMS_HTTP_LINE_MAX || !text_ok(r->line, llen, true))
        return -EINVAL;
    if (cap < HMS_HTTPFRAME_HDR)
        return -ENOSPC;
    wr w = {.p = out, .cap = cap, .off = HMS_HTTPFRAME_HDR};
    put_u8(&w, 0x84);
    put_key(&w, "id");
    put_uint(&w, r->id);
    put_key(&w, "status");
    put_uint(&w, r->status);
    put_key(&w, "error");
    put_str(&w, r->error, elen);
    put_key(&w, "line");
    put_str(&w, r->line, llen);
    return finish_frame(&w, used);
}

/* ---- reader -------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t len, off;
} rd;

static bool need(const rd *r, size_t n)
{
    return r->len - r->off >= n;
}

static uint32_t be(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int get_map(rd *r, uint32_t *n)
{
    if (!need(r, 1))
        return -EINVAL;
    uint8_t t = r->p[r->off++];
    if ((t & 0xf0) == 0x80) {
        *n = t & 0x0f;
        return 0;
    }
    if (t == 0xde && need(r, 2)) {
        *n = be(r->p + r->off, 2);
        r->off += 2;
        return 0;
    }
    return -EINVAL;
}

static int get_uint(rd *r, uint32_t *v)
{
    if (!need(r, 1))
        return -EINVAL;
    uint8_t t = r->p[r->off++];
    size_t n;
    if (t < 0x80) {
        *v = t;
        return 0;
    }
    if (t == 0xcc)
        n = 1;
    else if (t == 0xcd)
        n = 2;
    else if (t == 0xce)
        n = 4;
    else if (t == 0xcf) {
        /* accepted when the value fits: encoders may pick the widest form */
        if (!need(r, 8) || be(r->p + r->off, 4) != 0)
            return -EINVAL;
        *v = be(r->p + r->off + 4, 4);
        r->off += 8;
        return 0;
    } else
        return -EINVAL;
    if (!need(r, n))
        return -EINVAL;
    *v = be(r->p + r->off, n);
    r->off += n;
    return 0;
}

/* A str whose bytes lie inside the buffer: *s points into it. */
static int get_str(rd *r, const char **s, size_t *n)
{
    if (!need(r, 1))
        return -EINVAL;
    uint8_t t = r->p[r->off++];
    size_t hl;
    if ((t & 0xe0) == 0xa0) {
        *n = t & 0x1f;
        hl = 0;
    } else if (t == 0xd9)
        hl = 1;
    else if (t == 0xda)
        hl = 2;
    else if (t == 0xdb)
        hl = 4;
    else
        return -EINVAL;
    if (hl) {
        if (!need(r, hl))
            return -EINVAL;
        *n = be(r->p + r->off, hl);
        r->off += hl;
    }
    if (!need(r, *n))
        return -EINVAL;
    *s = (const char *)r->p + r->off;
    r->off += *n;
    return 0;
}

static bool key_is(const char *k, size_t n, const char *want)
{
    return strlen(want) == n && !memcmp(k, want, n);
}

/* Copies a checked string into a field of cap bytes (cap - 1 usable). */
static int copy_to(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return -EINVAL;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int hms_httpframe_next(const uint8_t *buf, size_t len, const uint8_t **payload, size_t *plen,
                       size_t *used)
{
    if (len < HMS_HTTPFRAME_HDR)
        return -EAGAIN;
    uint32_t n = be(buf, 4);
    if (n == 0 || n > HMS_HTTPFRAME_MAX)
        return -EMSGSIZE;
    if (len - HMS_HTTPFRAME_HDR < n)
        return -EAGAIN;
    *payload = buf + HMS_HTTPFRAME_HDR;
    *plen = n;
    *used = HMS_HTTPFRAME_HDR + (size_t)n;
    return 0;
}

enum { K_ID = 1, K_URL = 2, K_TIMEOUT = 4, K_METHOD = 8, K_STATUS = 16, K_ERROR = 32, K_LINE = 64 };

int hms_http_req_decode(const uint8_t *payload, size_t len, hms_http_req *q)
{
    rd r = {.p = payload, .len = len};
    uint32_t n, seen = 0;
    if (len > HMS_HTTPFRAME_MAX || get_map(&r, &n) || n < 3 || n > 4)
        return -EINVAL;
    memset(q, 0, sizeof(*q));
    for (uint32_t i = 0; i < n; i++) {
        const char *k, *s;
        size_t kn, sn;
        uint32_t key;
        if (get_str(&r, &k, &kn))
            return -EINVAL;
        if (key_is(k, kn, "id"))
            key = K_ID;
        else if (key_is(k, kn, "url"))
            key = K_URL;
        else if (key_is(k, kn, "timeout_ms"))
            key = K_TIMEOUT;
        else if (key_is(k, kn, "method"))
            key = K_METHOD;
        else
            return -EINVAL;
        if (seen & key)
            return -EINVAL;
        seen |= key;
        if (key == K_ID) {
            if (get_uint(&r, &q->id))
                return -EINVAL;
        } else if (key == K_TIMEOUT) {
            if (get_uint(&r, &q->timeout_ms) || q->timeout_ms == 0 ||
                q->timeout_ms > HMS_HTTP_TIMEOUT_MAX)
                return -EINVAL;
        } else {
            if (get_str(&r, &s, &sn))
                return -EINVAL;
            if (key == K_URL) {
                if (sn > HMS_HTTP_URL_MAX || !url_ok(s, sn) || copy_to(q->url, sizeof(q->url), s, sn))
                    return -EINVAL;
            } else if (sn > HMS_HTTP_METHOD_MAX || !method_ok(s, sn, false) ||
                       copy_to(q->method, sizeof(q->method), s, sn)) {
                return -EINVAL;
            }
        }
    }
    if ((seen & (K_ID | K_URL | K_TIMEOUT)) != (K_ID | K_URL | K_TIMEOUT) || r.off != len)
        return -EINVAL;
    return 0;
}

int hms_http_resp_decode(const uint8_t *payload, size_t len, hms_http_resp *q)
{
    rd r = {.p = payload, .len = len};
    uint32_t n, seen = 0, v;
    if (len > HMS_HTTPFRAME_MAX || get_map(&r, &n) || n != 4)
        return -EINVAL;
    memset(q, 0, sizeof(*q));
    for (uint32_t i = 0; i < n; i++) {
        const char *k, *s;
        size_t kn, sn;
        uint32_t key;
        if (get_str(&r, &k, &kn))
            return -EINVAL;
        if (key_is(k, kn, "id"))
            key = K_ID;
        else if (key_is(k, kn, "status"))
            key = K_STATUS;
        else if (key_is(k, kn, "error"))
            key = K_ERROR;
        else if (key_is(k, kn, "line"))
            key = K_LINE;
        else
            return -EINVAL;
        if (seen & key)
            return -EINVAL;
        seen |= key;
        if (key == K_ID) {
            if (get_uint(&r, &q->id))
                return -EINVAL;
        } else if (key == K_STATUS) {
            if (get_uint(&r, &v) || v > 999)
                return -EINVAL;
            q->status = (uint16_t)v;
        } else {
            if (get_str(&r, &s, &sn) || !text_ok(s, sn, true))
                return -EINVAL;
            if (key == K_ERROR ? copy_to(q->error, sizeof(q->error), s, sn)
                               : copy_to(q->line, sizeof(q->line), s, sn))
                return -EINVAL;
        }
    }
    if (r.off != len)
        return -EINVAL;
    return 0;
}
