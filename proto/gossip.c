/*
 * Gossip wire codec (see gossip.h for the layouts). Encoders drive msgpack-c's
 * packer with a write callback that refuses to pass the end of the caller's
 * buffer. The decoder is a small cursor over the msgpack subset we emit; every
 * read checks the remaining length first and nothing is allocated, so a
 * forged 4 GB array header costs nothing but a rejection.
 */
#include "proto/gossip.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

/* ---- bounded output ----------------------------------------------------- */

typedef struct bbuf {
    uint8_t *buf;
    size_t cap, len;
    bool overflow;
} bbuf;

static int bbuf_write(void *data, const char *p, size_t n)
{
    bbuf *b = data;
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = true;
        return -1;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return 0;
}

bool gossip_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > GOSSIP_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)name[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static size_t addr_bytes(const hms_addr *a, uint8_t out[19])
{
    size_t iplen = a->family == 4 ? 4 : 16;
    out[0] = a->family;
    memcpy(out + 1, a->ip, iplen);
    out[1 + iplen] = (uint8_t)(a->port >> 8);
    out[2 + iplen] = (uint8_t)(a->port & 0xff);
    return 3 + iplen;
}

static bool addr_valid(const hms_addr *a)
{
    return (a->family == 4 || a->family == 6) && a->port != 0;
}

static void pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str_with_body(pk, s, n);
}

static void pk_bin(msgpack_packer *pk, const uint8_t *p, size_t n)
{
    msgpack_pack_bin_with_body(pk, n ? p : (const uint8_t *)"", n);
}

static void pk_addr(msgpack_packer *pk, const hms_addr *a)
{
    uint8_t b[19];
    size_t n = addr_bytes(a, b);
    pk_bin(pk, b, n);
}

static bool cstr_valid(const char *s)
{
    return gossip_name_valid(s, strnlen(s, GOSSIP_NAME_MAX + 1));
}

int gossip_encode_msg(const gossip_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    bbuf b = {buf, cap, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, bbuf_write);

    switch (m->type) {
    case GOSSIP_PING:
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint8(&pk, m->type);
        msgpack_pack_uint32(&pk, m->seq);
        pk_bin(&pk, m->target_key, GOSSIP_KEY_LEN);
        break;
    case GOSSIP_PING_REQ:
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, m->type);
        msgpack_pack_uint32(&pk, m->seq);
        pk_bin(&pk, m->target_key, GOSSIP_KEY_LEN);
        if (m->want_nack)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        break;
    case GOSSIP_WHO:
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint8(&pk, m->type);
        break;
    case GOSSIP_ACK:
    case GOSSIP_NACK:
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint8(&pk, m->type);
        msgpack_pack_uint32(&pk, m->seq);
        break;
    case GOSSIP_ALIVE:
        if (!cstr_valid(m->name) || !addr_valid(&m->addr) || m->meta_len > GOSSIP_META_MAX ||
            m->cert_len > GOSSIP_CERT_MAX)
            return -EINVAL;
        msgpack_pack_array(&pk, 7);
        msgpack_pack_uint8(&pk, m->type);
        pk_str(&pk, m->name);
        pk_bin(&pk, m->key, GOSSIP_KEY_LEN);
        pk_addr(&pk, &m->addr);
        msgpack_pack_uint64(&pk, m->incarnation);
        pk_bin(&pk, m->meta, m->meta_len);
        pk_bin(&pk, m->cert, m->cert_len);
        break;
    case GOSSIP_SUSPECT:
    case GOSSIP_DEAD:
        if (!cstr_valid(m->name) || !cstr_valid(m->from))
            return -EINVAL;
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint8(&pk, m->type);
        pk_str(&pk, m->name);
        pk_bin(&pk, m->key, GOSSIP_KEY_LEN);
        msgpack_pack_uint64(&pk, m->incarnation);
        pk_str(&pk, m->from);
        break;
    case GOSSIP_LEAVE:
        if (!cstr_valid(m->name))
            return -EINVAL;
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, m->type);
        pk_str(&pk, m->name);
        pk_bin(&pk, m->key, GOSSIP_KEY_LEN);
        msgpack_pack_uint64(&pk, m->incarnation);
        break;
    case GOSSIP_USER:
        if (!cstr_valid(m->name) || m->data_len > GOSSIP_USER_MAX)
            return -EINVAL;
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint8(&pk, m->type);
        pk_str(&pk, m->name);
        msgpack_pack_uint8(&pk, m->user_kind);
        msgpack_pack_uint64(&pk, m->user_seq);
        pk_bin(&pk, m->data, m->data_len);
        break;
    default:
        return -EINVAL;
    }
    if (b.overflow)
        return -ENOBUFS;
    *len = b.len;
    return 0;
}

/* ---- strict msgpack cursor ---------------------------------------------- */

typedef struct cur {
    const uint8_t *p, *end;
} cur;

static bool need(const cur *c, size_t n)
{
    return (size_t)(c->end - c->p) >= n;
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static int rd_uint(cur *c, uint64_t max, uint64_t *out)
{
    if (!need(c, 1))
        return -EBADMSG;
    uint8_t t = *c->p;
    size_t n;
    uint64_t v;
    if (t <= 0x7f) {
        c->p++;
        v = t;
    } else {
        switch (t) {
        case 0xcc:
            n = 1;
            break;
        case 0xcd:
            n = 2;
            break;
        case 0xce:
            n = 4;
            break;
        case 0xcf:
            n = 8;
            break;
        default:
            return -EBADMSG;
        }
        if (!need(c, 1 + n))
            return -EBADMSG;
        v = be(c->p + 1, n);
        c->p += 1 + n;
    }
    if (v > max)
        return -EBADMSG;
    *out = v;
    return 0;
}

static int rd_len(cur *c, uint8_t fix_lo, uint8_t fix_hi, uint8_t b8, uint8_t b16, uint8_t b32,
                  uint32_t *len)
{
    if (!need(c, 1))
        return -EBADMSG;
    uint8_t t = *c->p;
    size_t n;
    if (t >= fix_lo && t <= fix_hi) {
        *len = (uint32_t)(t - fix_lo);
        c->p++;
        return 0;
    }
    if (b8 && t == b8)
        n = 1;
    else if (t == b16)
        n = 2;
    else if (t == b32)
        n = 4;
    else
        return -EBADMSG;
    if (!need(c, 1 + n))
        return -EBADMSG;
    *len = (uint32_t)be(c->p + 1, n);
    c->p += 1 + n;
    return 0;
}

static int rd_array(cur *c, uint32_t *n)
{
    return rd_len(c, 0x90, 0x9f, 0, 0xdc, 0xdd, n);
}

/* A str or bin body of at most max bytes; *p points into the input. */
static int rd_body(cur *c, bool str, uint32_t max, const uint8_t **p, uint32_t *len)
{
    int rc = str ? rd_len(c, 0xa0, 0xbf, 0xd9, 0xda, 0xdb, len)
                 : rd_len(c, 0xff, 0xfe /* no fix form */, 0xc4, 0xc5, 0xc6, len);
    if (rc < 0 || *len > max || !need(c, *len))
        return -EBADMSG;
    *p = c->p;
    c->p += *len;
    return 0;
}

static int rd_name(cur *c, char out[GOSSIP_NAME_MAX + 1])
{
    const uint8_t *p;
    uint32_t n;
    if (rd_body(c, true, GOSSIP_NAME_MAX, &p, &n) < 0 || !gossip_name_valid((const char *)p, n))
        return -EBADMSG;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static int rd_key(cur *c, uint8_t out[GOSSIP_KEY_LEN])
{
    const uint8_t *p;
    uint32_t n;
    if (rd_body(c, false, GOSSIP_KEY_LEN, &p, &n) < 0 || n != GOSSIP_KEY_LEN)
        return -EBADMSG;
    memcpy(out, p, n);
    return 0;
}

static int rd_addr(cur *c, hms_addr *a)
{
    const uint8_t *p;
    uint32_t n;
    if (rd_body(c, false, 19, &p, &n) < 0)
        return -EBADMSG;
    memset(a, 0, sizeof(*a));
    if (n == 7 && p[0] == 4) {
        memcpy(a->ip, p + 1, 4);
    } else if (n == 19 && p[0] == 6) {
        memcpy(a->ip, p + 1, 16);
    } else {
        return -EBADMSG;
    }
    a->family = p[0];
    a->port = (uint16_t)((p[n - 2] << 8) | p[n - 1]);
    return a->port ? 0 : -EBADMSG;
}

static int rd_blob(cur *c, uint32_t max, const uint8_t **p, uint16_t *len)
{
    uint32_t n;
    if (rd_body(c, false, max, p, &n) < 0)
        return -EBADMSG;
    *len = (uint16_t)n;
    return 0;
}

static int rd_bool(cur *c, bool *b)
{
    if (!need(c, 1) || (*c->p != 0xc2 && *c->p != 0xc3))
        return -EBADMSG;
    *b = *c->p == 0xc3;
    c->p++;
    return 0;
}

static int rd_u32(cur *c, uint32_t *v)
{
    uint64_t x;
    if (rd_uint(c, UINT32_MAX, &x) < 0)
        return -EBADMSG;
    *v = (uint32_t)x;
    return 0;
}

static int decode_msg(cur *c, gossip_msg *m)
{
    uint32_t n;
    uint64_t type;
    memset(m, 0, sizeof(*m));
    if (rd_array(c, &n) < 0 || n < 1 || rd_uint(c, 255, &type) < 0)
        return -EBADMSG;
    m->type = (uint8_t)type;
    int bad = 0;
    switch (m->type) {
    case GOSSIP_PING:
        bad = n != 3 || rd_u32(c, &m->seq) < 0 || rd_key(c, m->target_key) < 0;
        break;
    case GOSSIP_PING_REQ:
        bad = n != 4 || rd_u32(c, &m->seq) < 0 || rd_key(c, m->target_key) < 0 ||
              rd_bool(c, &m->want_nack) < 0;
        break;
    case GOSSIP_ACK:
    case GOSSIP_NACK:
        bad = n != 2 || rd_u32(c, &m->seq) < 0;
        break;
    case GOSSIP_WHO:
        bad = n != 1;
        break;
    case GOSSIP_ALIVE:
        bad = n != 7 || rd_name(c, m->name) < 0 || rd_key(c, m->key) < 0 ||
              rd_addr(c, &m->addr) < 0 || rd_uint(c, UINT64_MAX, &m->incarnation) < 0 ||
              rd_blob(c, GOSSIP_META_MAX, &m->meta, &m->meta_len) < 0 ||
              rd_blob(c, GOSSIP_CERT_MAX, &m->cert, &m->cert_len) < 0;
        break;
    case GOSSIP_SUSPECT:
    case GOSSIP_DEAD:
        bad = n != 5 || rd_name(c, m->name) < 0 || rd_key(c, m->key) < 0 ||
              rd_uint(c, UINT64_MAX, &m->incarnation) < 0 || rd_name(c, m->from) < 0;
        break;
    case GOSSIP_LEAVE:
        bad = n != 4 || rd_name(c, m->name) < 0 || rd_key(c, m->key) < 0 ||
              rd_uint(c, UINT64_MAX, &m->incarnation) < 0;
        break;
    case GOSSIP_USER: {
        uint64_t kind = 0;
        bad = n != 5 || rd_name(c, m->name) < 0 || rd_uint(c, 255, &kind) < 0 ||
              rd_uint(c, UINT64_MAX, &m->user_seq) < 0 ||
              rd_blob(c, GOSSIP_USER_MAX, &m->data, &m->data_len) < 0;
        m->user_kind = (uint8_t)kind;
        break;
    }
    default:
        bad = 1;
    }
    return bad ? -EBADMSG : 0;
}

int gossip_decode_packet(const uint8_t *pkt, size_t len, gossip_msg *msgs, size_t max, size_t *n)
{
    if (!pkt || len < 1)
        return -EBADMSG;
    if (pkt[0] != GOSSIP_VERSION)
        return -EPROTONOSUPPORT;
    cur c = {pkt + 1, pkt + len};
    size_t k = 0;
    while (c.p < c.end) {
        if (k >= max || k >= GOSSIP_MSGS_MAX)
            return -EBADMSG;
        if (decode_msg(&c, &msgs[k]) < 0)
            return -EBADMSG;
        k++;
    }
    if (k == 0)
        return -EBADMSG;
    *n = k;
    return 0;
}

/* ---- push-pull state ---------------------------------------------------- */

/* The member count is written as a fixed 5-byte array32 header so it can be
 * patched after the records are written. */
int gossip_pp_begin(gossip_pp_writer *w, uint8_t *buf, size_t cap, bool join, const char *sender)
{
    memset(w, 0, sizeof(*w));
    w->buf = buf;
    w->cap = cap;
    if (!cstr_valid(sender))
        return -EINVAL;
    bbuf b = {buf, cap, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, bbuf_write);
    uint8_t v = GOSSIP_VERSION;
    bbuf_write(&b, (const char *)&v, 1);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, GOSSIP_PUSHPULL);
    if (join)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    pk_str(&pk, sender);
    w->count_pos = b.len;
    static const uint8_t hdr[5] = {0xdd, 0, 0, 0, 0};
    bbuf_write(&b, (const char *)hdr, sizeof(hdr));
    w->len = b.len;
    w->overflow = b.overflow;
    return b.overflow ? -ENOBUFS : 0;
}

int gossip_pp_add(gossip_pp_writer *w, const gossip_member *m)
{
    if (w->overflow)
        return -ENOBUFS;
    if (!cstr_valid(m->name) || !addr_valid(&m->addr) || m->status > 3 ||
        m->meta_len > GOSSIP_META_MAX || m->cert_len > GOSSIP_CERT_MAX)
        return -EINVAL;
    if (w->count >= GOSSIP_PP_MEMBERS_MAX)
        return -ENOBUFS;
    bbuf b = {w->buf, w->cap, w->len, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, bbuf_write);
    msgpack_pack_array(&pk, 8);
    pk_str(&pk, m->name);
    pk_bin(&pk, m->key, GOSSIP_KEY_LEN);
    pk_addr(&pk, &m->addr);
    msgpack_pack_uint64(&pk, m->incarnation);
    msgpack_pack_uint8(&pk, m->status);
    pk_bin(&pk, m->meta, m->meta_len);
    pk_bin(&pk, m->cert, m->cert_len);
    msgpack_pack_uint32(&pk, m->age_s < GOSSIP_AGE_MAX ? m->age_s : GOSSIP_AGE_MAX);
    if (b.overflow || b.len > GOSSIP_PP_BYTES_MAX)
        return -ENOBUFS; /* the record is not counted; w->len is unchanged */
    w->len = b.len;
    w->count++;
    return 0;
}

int gossip_pp_finish(gossip_pp_writer *w, size_t *len)
{
    if (w->overflow)
        return -ENOBUFS;
    uint8_t *p = w->buf + w->count_pos + 1;
    p[0] = (uint8_t)(w->count >> 24);
    p[1] = (uint8_t)(w->count >> 16);
    p[2] = (uint8_t)(w->count >> 8);
    p[3] = (uint8_t)w->count;
    *len = w->len;
    return 0;
}

static int pp_record(cur *c, gossip_member *m)
{
    uint32_t n;
    uint64_t st, age = 0;
    memset(m, 0, sizeof(*m));
    if (rd_array(c, &n) < 0 || (n != 7 && n != 8) || rd_name(c, m->name) < 0 ||
        rd_key(c, m->key) < 0 || rd_addr(c, &m->addr) < 0 ||
        rd_uint(c, UINT64_MAX, &m->incarnation) < 0 || rd_uint(c, 3, &st) < 0 ||
        rd_blob(c, GOSSIP_META_MAX, &m->meta, &m->meta_len) < 0 ||
        rd_blob(c, GOSSIP_CERT_MAX, &m->cert, &m->cert_len) < 0 ||
        (n == 8 && rd_uint(c, GOSSIP_AGE_MAX, &age) < 0))
        return -EBADMSG;
    m->status = (uint8_t)st;
    m->age_s = (uint32_t)age;
    return 0;
}

int gossip_pp_open(gossip_pp_reader *r, const uint8_t *buf, size_t len, bool *join,
                   char sender[GOSSIP_NAME_MAX + 1], uint32_t *count)
{
    uint32_t n, cnt;
    uint64_t type;
    if (!buf || len < 1 || len > GOSSIP_PP_BYTES_MAX)
        return -EBADMSG;
    if (buf[0] != GOSSIP_VERSION)
        return -EPROTONOSUPPORT;
    cur c = {buf + 1, buf + len};
    if (rd_array(&c, &n) < 0 || n != 4 || rd_uint(&c, 255, &type) < 0 || type != GOSSIP_PUSHPULL ||
        rd_bool(&c, join) < 0 || rd_name(&c, sender) < 0 || rd_array(&c, &cnt) < 0 ||
        cnt > GOSSIP_PP_MEMBERS_MAX)
        return -EBADMSG;
    /* Each record takes at least 40 bytes: reject impossible counts early. */
    if ((size_t)cnt > (size_t)(c.end - c.p) / 40)
        return -EBADMSG;
    cur v = c;
    gossip_member m;
    for (uint32_t i = 0; i < cnt; i++)
        if (pp_record(&v, &m) < 0)
            return -EBADMSG;
    if (v.p != v.end)
        return -EBADMSG;
    r->p = c.p;
    r->end = c.end;
    r->remaining = cnt;
    *count = cnt;
    return 0;
}

int gossip_pp_next(gossip_pp_reader *r, gossip_member *m)
{
    if (r->remaining == 0)
        return 0;
    cur c = {r->p, r->end};
    if (pp_record(&c, m) < 0)
        return -EBADMSG;
    r->p = c.p;
    r->remaining--;
    return 1;
}
