/*
 * libhmsclient core (see hms.h): the connection, framing, blocking request
 * and stream calls with timeouts, the membership calls, and msgpack to JSON
 * conversion for command-line output.
 */
#include "libclient/hms.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "proto/api.h"

struct hms_client {
    int fd;
    uint32_t timeout_ms;
    uint64_t next_id;
    uint64_t stream_id;
    bool streaming;
    char path[108];
    char last_error[600];
};

const char *hms_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case -ENOENT:
        return "no agent socket there (is hms-agent running?)";
    case -ECONNREFUSED:
        return "connection refused (is hms-agent running?)";
    case -EACCES:
        return "permission denied";
    case -ETIMEDOUT:
        return "the agent did not answer in time";
    case -EPROTO:
        return "the agent sent an invalid reply";
    case -EREMOTEIO:
        return "the agent answered with an error";
    case -EPIPE:
        return "the agent closed the connection";
    case -ENAMETOOLONG:
        return "socket path too long";
    case -EBUSY:
        return "a stream is open on this connection";
    default:
        return strerror(-code);
    }
}

int hms_connect(const char *path, hms_client **out)
{
    if (!path || !*path)
        path = getenv("HMS_SOCKET");
    if (!path || !*path)
        path = HMS_SOCKET_DEFAULT;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    hms_client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    c->timeout_ms = HMS_CLIENT_TIMEOUT_MS;
    c->next_id = 1;
    snprintf(c->path, sizeof(c->path), "%s", path);
    *out = c;
    return 0;
}

void hms_close(hms_client *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}

void hms_set_timeout(hms_client *c, uint32_t ms)
{
    c->timeout_ms = ms;
}

const char *hms_socket_path(const hms_client *c)
{
    return c->path;
}

int hms_client_fd(const hms_client *c)
{
    return c->fd;
}

const char *hms_last_error(const hms_client *c)
{
    return c->last_error;
}

void hms_reply_destroy(hms_reply *r)
{
    if (!r)
        return;
    msgpack_unpacked_destroy(&r->msg);
    free(r->raw);
    r->raw = NULL;
    r->result = NULL;
}

static void reply_init(hms_reply *r)
{
    memset(r, 0, sizeof(*r));
    msgpack_unpacked_init(&r->msg);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for ev until deadline (-1: forever). */
static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int t = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            t = (int)(left > 60000 ? 60000 : left);
        }
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, t);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static int write_all(hms_client *c, const void *buf, size_t len, int64_t deadline)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(c->fd, POLLOUT, deadline);
            if (r < 0)
                return r;
            continue;
        }
        return errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno;
    }
    return 0;
}

static int read_all(hms_client *c, void *buf, size_t len, int64_t deadline)
{
    uint8_t *p = buf;
    while (len > 0) {
        int r = wait_fd(c->fd, POLLIN, deadline);
        if (r < 0)
            return r;
        ssize_t n = recv(c->fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return -EPIPE;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        return errno == ECONNRESET ? -EPIPE : -errno;
    }
    return 0;
}

/* Reads one reply frame into rep. */
static int read_reply(hms_client *c, int64_t deadline, hms_reply *rep, hms_api_reply *hdr)
{
    uint8_t h[4];
    int r = read_all(c, h, 4, deadline);
    if (r < 0)
        return r;
    uint32_t len = hms_api_get_len(h);
    if (len == 0 || len > HMS_API_REPLY_MAX)
        return -EPROTO;
    uint8_t *buf = malloc(len);
    if (!buf)
        return -ENOMEM;
    r = read_all(c, buf, len, deadline);
    if (r < 0) {
        free(buf);
        return r == -ETIMEDOUT ? -EPROTO : r; /* a frame cut in the middle */
    }
    hms_reply_destroy(rep);
    reply_init(rep);
    if (hms_api_decode_reply(&rep->msg, buf, len, hdr) < 0) {
        free(buf);
        return -EPROTO;
    }
    rep->raw = buf;
    rep->ok = hdr->ok;
    rep->more = hdr->more;
    rep->result = hdr->ok ? hdr->result : NULL;
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    if (hdr->ok && !rep->result)
        rep->result = &nil;
    snprintf(rep->code, sizeof(rep->code), "%s", hdr->code);
    snprintf(rep->message, sizeof(rep->message), "%s", hdr->message);
    return 0;
}

static int send_request(hms_client *c, const char *op, hms_pack_fn pack, void *ctx, uint64_t *id)
{
    msgpack_sbuffer args, frame;
    msgpack_sbuffer_init(&args);
    msgpack_sbuffer_init(&frame);
    int r = 0;
    if (pack) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        r = pack(&pk, ctx);
    }
    *id = c->next_id++;
    if (r == 0)
        r = hms_api_encode_request(&frame, *id, op, args.data, args.size);
    if (r == 0 && frame.size - 4 > HMS_API_FRAME_MAX)
        r = -EMSGSIZE;
    int64_t deadline = c->timeout_ms ? now_ms() + c->timeout_ms : -1;
    if (r == 0)
        r = write_all(c, frame.data, frame.size, deadline);
    msgpack_sbuffer_destroy(&args);
    msgpack_sbuffer_destroy(&frame);
    return r;
}

static int finish(hms_client *c, hms_reply *rep)
{
    if (rep->ok)
        return 0;
    snprintf(c->last_error, sizeof(c->last_error), "%s: %s", rep->code, rep->message);
    return -EREMOTEIO;
}

int hms_request(hms_client *c, const char *op, hms_pack_fn pack, void *ctx, hms_reply *rep)
{
    reply_init(rep);
    if (c->streaming)
        return -EBUSY;
    uint64_t id;
    int r = send_request(c, op, pack, ctx, &id);
    if (r < 0)
        return r;
    int64_t deadline = c->timeout_ms ? now_ms() + c->timeout_ms : -1;
    for (;;) {
        hms_api_reply hdr;
        r = read_reply(c, deadline, rep, &hdr);
        if (r < 0) {
            hms_reply_destroy(rep);
            reply_init(rep);
            return r;
        }
        if (hdr.has_id && hdr.id == id && !hdr.more)
            return finish(c, rep);
        if (!hdr.has_id && !hdr.ok)
            return finish(c, rep); /* a framing error for our frame */
        /* a frame for another id: skip */
    }
}

int hms_stream_start(hms_client *c, const char *op, hms_pack_fn pack, void *ctx)
{
    if (c->streaming)
        return -EBUSY;
    uint64_t id;
    int r = send_request(c, op, pack, ctx, &id);
    if (r < 0)
        return r;
    c->streaming = true;
    c->stream_id = id;
    return 0;
}

int hms_stream_next(hms_client *c, uint32_t timeout_ms, hms_reply *rep)
{
    reply_init(rep);
    if (!c->streaming)
        return -EINVAL;
    int64_t deadline = timeout_ms ? now_ms() + timeout_ms : -1;
    for (;;) {
        hms_api_reply hdr;
        int r = read_reply(c, deadline, rep, &hdr);
        if (r < 0) {
            hms_reply_destroy(rep);
            reply_init(rep);
            if (r != -ETIMEDOUT)
                c->streaming = false;
            return r;
        }
        if ((hdr.has_id && hdr.id == c->stream_id) || (!hdr.has_id && !hdr.ok)) {
            if (!hdr.more)
                c->streaming = false;
            return finish(c, rep);
        }
    }
}

static int pack_stream_id(msgpack_packer *pk, void *ctx)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "stream", 6);
    msgpack_pack_uint64(pk, *(const uint64_t *)ctx);
    return 0;
}

int hms_stream_cancel(hms_client *c)
{
    if (!c->streaming)
        return -EINVAL;
    uint64_t sid = c->stream_id, cid;
    int r = send_request(c, "cancel", pack_stream_id, &sid, &cid);
    if (r < 0)
        return r;
    int64_t deadline = c->timeout_ms ? now_ms() + c->timeout_ms : -1;
    hms_reply rep;
    reply_init(&rep);
    for (;;) {
        hms_api_reply hdr;
        r = read_reply(c, deadline, &rep, &hdr);
        if (r < 0)
            break;
        if (hdr.has_id && hdr.id == sid && !hdr.more)
            c->streaming = false;
        if (hdr.has_id && hdr.id == cid) {
            /* the stream may have ended on its own before the cancel arrived */
            c->streaming = false;
            r = finish(c, &rep);
            if (r == -EREMOTEIO && strcmp(rep.code, HMS_API_E_NOT_FOUND) == 0)
                r = 0;
            break;
        }
    }
    hms_reply_destroy(&rep);
    return r;
}

/* --- membership ------------------------------------------------------------ */

static void copy_field(const msgpack_object *m, const char *key, char *buf, size_t cap)
{
    const msgpack_object *o = hms_mp_get(m, key);
    buf[0] = '\0';
    if (o && o->type == MSGPACK_OBJECT_STR) {
        size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
        memcpy(buf, o->via.str.ptr, n);
        buf[n] = '\0';
    }
}

int hms_member_from_msgpack(const msgpack_object *o, hms_member *out)
{
    memset(out, 0, sizeof(*out));
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return -EPROTO;
    copy_field(o, "name", out->name, sizeof(out->name));
    copy_field(o, "address", out->address, sizeof(out->address));
    copy_field(o, "status", out->status, sizeof(out->status));
    copy_field(o, "key", out->key, sizeof(out->key));
    copy_field(o, "key_id", out->key_id, sizeof(out->key_id));
    const msgpack_object *v = hms_mp_get(o, "incarnation");
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        out->incarnation = v->via.u64;
    v = hms_mp_get(o, "since_s");
    if (v && (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32))
        out->since_s = v->via.f64;
    v = hms_mp_get(o, "self");
    if (v && v->type == MSGPACK_OBJECT_BOOLEAN)
        out->self = v->via.boolean;
    return out->name[0] ? 0 : -EPROTO;
}

static int pack_status(msgpack_packer *pk, void *ctx)
{
    const char *s = ctx;
    msgpack_pack_map(pk, s ? 1 : 0);
    if (s) {
        msgpack_pack_str_with_body(pk, "status", 6);
        msgpack_pack_str_with_body(pk, s, strlen(s));
    }
    return 0;
}

int hms_members(hms_client *c, const char *status, hms_member **out, size_t *n)
{
    hms_reply rep;
    int r = hms_request(c, "members", pack_status, (void *)status, &rep);
    if (r < 0) {
        hms_reply_destroy(&rep);
        return r;
    }
    const msgpack_object *a = rep.result;
    if (a->type != MSGPACK_OBJECT_ARRAY) {
        hms_reply_destroy(&rep);
        return -EPROTO;
    }
    hms_member *ms = calloc(a->via.array.size ? a->via.array.size : 1, sizeof(*ms));
    if (!ms) {
        hms_reply_destroy(&rep);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        if (hms_member_from_msgpack(&a->via.array.ptr[i], &ms[i]) < 0) {
            free(ms);
            hms_reply_destroy(&rep);
            return -EPROTO;
        }
    }
    *out = ms;
    *n = a->via.array.size;
    hms_reply_destroy(&rep);
    return 0;
}

static int pack_name(msgpack_packer *pk, void *ctx)
{
    const char *s = ctx;
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "name", 4);
    msgpack_pack_str_with_body(pk, s, strlen(s));
    return 0;
}

int hms_member_get(hms_client *c, const char *name, hms_member *out)
{
    hms_reply rep;
    int r = hms_request(c, "member", pack_name, (void *)name, &rep);
    if (r == 0)
        r = hms_member_from_msgpack(rep.result, out);
    hms_reply_destroy(&rep);
    return r;
}

typedef struct addr_list {
    const char *const *addrs;
    size_t n;
} addr_list;

static int pack_addrs(msgpack_packer *pk, void *ctx)
{
    const addr_list *l = ctx;
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "addresses", 9);
    msgpack_pack_array(pk, l->n);
    for (size_t i = 0; i < l->n; i++)
        msgpack_pack_str_with_body(pk, l->addrs[i], strlen(l->addrs[i]));
    return 0;
}

int hms_join(hms_client *c, const char *const *addrs, size_t n)
{
    addr_list l = {addrs, n};
    hms_reply rep;
    int r = hms_request(c, "join", pack_addrs, &l, &rep);
    hms_reply_destroy(&rep);
    return r;
}

int hms_leave(hms_client *c)
{
    hms_reply rep;
    int r = hms_request(c, "leave", NULL, NULL, &rep);
    hms_reply_destroy(&rep);
    return r;
}

int hms_stats(hms_client *c, hms_reply *rep)
{
    return hms_request(c, "stats", NULL, NULL, rep);
}

int hms_watch(hms_client *c, hms_watch_fn fn, void *ctx)
{
    int r = hms_stream_start(c, "watch", NULL, NULL);
    if (r < 0)
        return r;
    for (;;) {
        hms_reply rep;
        r = hms_stream_next(c, 0, &rep);
        if (r < 0) {
            hms_reply_destroy(&rep);
            return r;
        }
        if (!rep.more) {
            hms_reply_destroy(&rep);
            return -EPIPE;
        }
        char ev[16];
        copy_field(rep.result, "event", ev, sizeof(ev));
        hms_member m;
        int stop = 0;
        if (hms_member_from_msgpack(hms_mp_get(rep.result, "member"), &m) == 0)
            stop = fn(ev, &m, ctx);
        hms_reply_destroy(&rep);
        if (stop)
            return stop;
    }
}

/* --- JSON ------------------------------------------------------------------ */

static json_t *from_mp(const msgpack_object *o, int depth)
{
    if (depth > HMS_MP_DEPTH_MAX + 1)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 > (uint64_t)INT64_MAX ? json_real((double)o->via.u64)
                                                : json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN: {
        static const char hx[] = "0123456789abcdef";
        size_t n = o->via.bin.size;
        char *s = malloc(2 * n + 1);
        if (!s)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            s[2 * i] = hx[(uint8_t)o->via.bin.ptr[i] >> 4];
            s[2 * i + 1] = hx[(uint8_t)o->via.bin.ptr[i] & 15];
        }
        s[2 * n] = '\0';
        json_t *j = json_string(s);
        free(s);
        return j;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *e = from_mp(&o->via.array.ptr[i], depth + 1);
            json_array_append_new(a, e ? e : json_null());
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            char key[256];
            if (kv->key.type == MSGPACK_OBJECT_STR) {
                size_t n =
                    kv->key.via.str.size < sizeof(key) - 1 ? kv->key.via.str.size : sizeof(key) - 1;
                memcpy(key, kv->key.via.str.ptr, n);
                key[n] = '\0';
            } else {
                json_t *kj = from_mp(&kv->key, depth + 1);
                char *t = kj ? json_dumps(kj, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
                snprintf(key, sizeof(key), "%s", t ? t : "?");
                free(t);
                json_decref(kj);
            }
            json_t *v = from_mp(&kv->val, depth + 1);
            json_object_set_new(m, key, v ? v : json_null());
        }
        return m;
    }
    default:
        return json_null();
    }
}

struct json_t *hms_json_from_msgpack(const msgpack_object *o)
{
    return o ? from_mp(o, 0) : NULL;
}
