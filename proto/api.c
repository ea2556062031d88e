/*
 * Socket API frame codec (see api.h): length headers, a bounds-checking
 * msgpack walker run before msgpack-c sees untrusted bytes, and the request
 * and reply encoders and decoders shared by the agent and libclient.
 */
#include "proto/api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

uint32_t hms_api_get_len(const uint8_t hdr[4])
{
    return ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
}

void hms_api_put_len(uint8_t hdr[4], uint32_t len)
{
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * Walks one object. Containers are checked against the bytes left before
 * their elements are visited: each element takes at least one byte, so a
 * count above the remaining length is malformed (or truncated). Work is
 * linear in len; recursion is bounded by HMS_MP_DEPTH_MAX.
 */
static int mp_walk(const uint8_t *buf, size_t len, size_t *pos, int depth)
{
    if (depth > HMS_MP_DEPTH_MAX)
        return -EINVAL;
    if (*pos >= len)
        return -EAGAIN;
    uint8_t t = buf[(*pos)++];
    size_t left = len - *pos;
    uint64_t skip = 0, count = 0;
    size_t hdr = 0;
    bool is_map = false, container = false;

    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
        return 0;
    if ((t & 0xf0) == 0x80) {
        count = t & 0x0f;
        is_map = container = true;
    } else if ((t & 0xf0) == 0x90) {
        count = t & 0x0f;
        container = true;
    } else if ((t & 0xe0) == 0xa0) {
        skip = t & 0x1f;
    } else {
        switch (t) {
        case 0xc4: /* bin8 */
        case 0xd9: /* str8 */
            hdr = 1;
            break;
        case 0xc5: /* bin16 */
        case 0xda: /* str16 */
            hdr = 2;
            break;
        case 0xc6: /* bin32 */
        case 0xdb: /* str32 */
            hdr = 4;
            break;
        case 0xc7: /* ext8: length, then a type byte */
            hdr = 1;
            skip = 1;
            break;
        case 0xc8: /* ext16 */
            hdr = 2;
            skip = 1;
            break;
        case 0xc9: /* ext32 */
            hdr = 4;
            skip = 1;
            break;
        case 0xcc: /* uint8 */
        case 0xd0: /* int8 */
            skip = 1;
            break;
        case 0xcd: /* uint16 */
        case 0xd1: /* int16 */
            skip = 2;
            break;
        case 0xca: /* float32 */
        case 0xce: /* uint32 */
        case 0xd2: /* int32 */
            skip = 4;
            break;
        case 0xcb: /* float64 */
        case 0xcf: /* uint64 */
        case 0xd3: /* int64 */
            skip = 8;
            break;
        case 0xd4: /* fixext1: a type byte and 1 byte */
            skip = 2;
            break;
        case 0xd5: /* fixext2 */
            skip = 3;
            break;
        case 0xd6: /* fixext4 */
            skip = 5;
            break;
        case 0xd7: /* fixext8 */
            skip = 9;
            break;
        case 0xd8: /* fixext16 */
            skip = 17;
            break;
        case 0xdc: /* array16 */
            hdr = 2;
            container = true;
            break;
        case 0xdd: /* array32 */
            hdr = 4;
            container = true;
            break;
        case 0xde: /* map16 */
            hdr = 2;
            container = is_map = true;
            break;
        case 0xdf: /* map32 */
            hdr = 4;
            container = is_map = true;
            break;
        default: /* 0xc1 is never used */
            return -EINVAL;
        }
        if (hdr) {
            if (left < hdr)
                return -EAGAIN;
            uint64_t n = be(buf + *pos, hdr);
            *pos += hdr;
            left -= hdr;
            if (container)
                count = n;
            else
                skip += n;
        }
    }
    if (!container) {
        if (skip > left)
            return -EAGAIN;
        *pos += (size_t)skip;
        return 0;
    }
    uint64_t elems = is_map ? count * 2 : count;
    if (elems > left)
        return -EAGAIN; /* each element needs a byte: not all here */
    for (uint64_t i = 0; i < elems; i++) {
        int r = mp_walk(buf, len, pos, depth + 1);
        if (r < 0)
            return r;
    }
    return 0;
}

int hms_mp_check(const uint8_t *buf, size_t len, size_t *used)
{
    size_t pos = 0;
    int r = mp_walk(buf, len, &pos, 0);
    if (r < 0)
        return r;
    *used = pos;
    return 0;
}

int hms_mp_unpack(msgpack_unpacked *u, const uint8_t *buf, size_t len)
{
    size_t used;
    if (hms_mp_check(buf, len, &used) < 0 || used != len)
        return -EINVAL;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(u, (const char *)buf, len, &off);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return -EINVAL;
    return 0;
}

const msgpack_object *hms_mp_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (hms_mp_str_eq(&kv->key, key))
            return &kv->val;
    }
    return NULL;
}

bool hms_mp_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

int hms_mp_str_copy(const msgpack_object *o, char *buf, size_t cap)
{
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return -EINVAL;
    size_t n = o->via.str.size;
    if (memchr(o->via.str.ptr, '\0', n))
        return -EINVAL;
    if (n >= cap)
        return -ENAMETOOLONG;
    memcpy(buf, o->via.str.ptr, n);
    buf[n] = '\0';
    return 0;
}

static int get_id(const msgpack_object *o, uint64_t *id)
{
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *id = o->via.u64;
        return 0;
    }
    return -EINVAL;
}

int hms_api_decode_request(msgpack_unpacked *u, const uint8_t *buf, size_t len,
                           hms_api_request *out, const char **code, const char **why)
{
    memset(out, 0, sizeof(*out));
    *code = HMS_API_E_BAD_FRAME;
    if (hms_mp_unpack(u, buf, len) < 0) {
        *why = "frame is not one msgpack object";
        return -EINVAL;
    }
    const msgpack_object *m = &u->data;
    if (m->type != MSGPACK_OBJECT_MAP) {
        *why = "frame is not a msgpack map";
        return -EINVAL;
    }
    out->args = m;
    *code = HMS_API_E_BAD_REQUEST;
    const msgpack_object *id = hms_mp_get(m, "id");
    if (!id) {
        *why = "request has no 'id'";
        return -EINVAL;
    }
    if (get_id(id, &out->id) < 0) {
        *why = "request 'id' is not an unsigned integer";
        return -EINVAL;
    }
    out->has_id = true;
    int r = hms_mp_str_copy(hms_mp_get(m, "op"), out->op, sizeof(out->op));
    if (r == -ENAMETOOLONG) {
        *why = "request 'op' is too long";
        return -EINVAL;
    }
    if (r < 0 || out->op[0] == '\0') {
        *why = "request has no 'op' string";
        return -EINVAL;
    }
    *code = NULL;
    *why = NULL;
    return 0;
}

static void copy_str(const msgpack_object *o, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return;
    size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
    memcpy(buf, o->via.str.ptr, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = '?';
}

int hms_api_decode_reply(msgpack_unpacked *u, const uint8_t *buf, size_t len, hms_api_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (hms_mp_unpack(u, buf, len) < 0)
        return -EINVAL;
    const msgpack_object *m = &u->data;
    if (m->type != MSGPACK_OBJECT_MAP)
        return -EINVAL;
    const msgpack_object *id = hms_mp_get(m, "id");
    if (id && get_id(id, &out->id) == 0)
        out->has_id = true;
    else if (id && id->type != MSGPACK_OBJECT_NIL)
        return -EINVAL;
    const msgpack_object *ok = hms_mp_get(m, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN)
        return -EINVAL;
    out->ok = ok->via.boolean;
    const msgpack_object *more = hms_mp_get(m, "more");
    if (more && more->type == MSGPACK_OBJECT_BOOLEAN)
        out->more = more->via.boolean;
    out->result = hms_mp_get(m, "result");
    if (!out->ok) {
        const msgpack_object *e = hms_mp_get(m, "error");
        if (!e || e->type != MSGPACK_OBJECT_MAP)
            return -EINVAL;
        copy_str(hms_mp_get(e, "code"), out->code, sizeof(out->code));
        copy_str(hms_mp_get(e, "message"), out->message, sizeof(out->message));
        if (out->code[0] == '\0')
            snprintf(out->code, sizeof(out->code), "%s", HMS_API_E_INTERNAL);
        out->more = false;
    }
    return 0;
}

/* Reserves the 4-byte header, returns its offset; finish_frame fills it. */
static size_t begin_frame(msgpack_sbuffer *sb)
{
    static const uint8_t zero[4];
    size_t at = sb->size;
    msgpack_sbuffer_write(sb, (const char *)zero, 4);
    return at;
}

static int finish_frame(msgpack_sbuffer *sb, size_t at)
{
    if (sb->size < at + 4)
        return -ENOMEM;
    size_t n = sb->size - at - 4;
    if (n > UINT32_MAX)
        return -E2BIG;
    hms_api_put_len((uint8_t *)sb->data + at, (uint32_t)n);
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_id(msgpack_packer *pk, bool has_id, uint64_t id)
{
    pack_str(pk, "id");
    if (has_id)
        msgpack_pack_uint64(pk, id);
    else
        msgpack_pack_nil(pk);
}

int hms_api_encode_ok(msgpack_sbuffer *sb, bool has_id, uint64_t id, bool more, const void *result,
                      size_t result_len)
{
    size_t at = begin_frame(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, more ? 4 : 3);
    pack_id(&pk, has_id, id);
    pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    if (more) {
        pack_str(&pk, "more");
        msgpack_pack_true(&pk);
    }
    pack_str(&pk, "result");
    if (result && result_len)
        msgpack_sbuffer_write(sb, result, result_len);
    else
        msgpack_pack_nil(&pk);
    return finish_frame(sb, at);
}

int hms_api_encode_error(msgpack_sbuffer *sb, bool has_id, uint64_t id, const char *code,
                         const char *message)
{
    size_t at = begin_frame(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_id(&pk, has_id, id);
    pack_str(&pk, "ok");
    msgpack_pack_false(&pk);
    pack_str(&pk, "error");
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "code");
    pack_str(&pk, code ? code : HMS_API_E_INTERNAL);
    pack_str(&pk, "message");
    pack_str(&pk, message ? message : "");
    return finish_frame(sb, at);
}

/* Reads a map header: its entry count and header size. */
static int map_header(const uint8_t *p, size_t len, uint32_t *count, size_t *hdr)
{
    if (len < 1)
        return -EINVAL;
    if ((p[0] & 0xf0) == 0x80) {
        *count = p[0] & 0x0f;
        *hdr = 1;
    } else if (p[0] == 0xde && len >= 3) {
        *count = (uint32_t)be(p + 1, 2);
        *hdr = 3;
    } else if (p[0] == 0xdf && len >= 5) {
        *count = (uint32_t)be(p + 1, 4);
        *hdr = 5;
    } else {
        return -EINVAL;
    }
    return 0;
}

int hms_api_encode_request(msgpack_sbuffer *sb, uint64_t id, const char *op, const void *args,
                           size_t args_len)
{
    uint32_t n = 0;
    size_t hdr = 0;
    if (strlen(op) > HMS_API_OP_MAX)
        return -EINVAL;
    if (args && args_len) {
        size_t used;
        if (hms_mp_check(args, args_len, &used) < 0 || used != args_len)
            return -EINVAL;
        if (map_header(args, args_len, &n, &hdr) < 0 || n > UINT32_MAX - 2)
            return -EINVAL;
    }
    size_t at = begin_frame(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n + 2);
    pack_id(&pk, true, id);
    pack_str(&pk, "op");
    pack_str(&pk, op);
    if (n)
        msgpack_sbuffer_write(sb, (const char *)args + hdr, args_len - hdr);
    return finish_frame(sb, at);
}
