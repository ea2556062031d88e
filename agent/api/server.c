/*
 * The Unix-socket API server (see api.h): accepts local clients, reads their
 * SO_PEERCRED, splits the byte stream into frames (proto/api.h), dispatches
 * requests to the registered op tables, and buffers replies and stream
 * frames per connection within HMS_API_OUTBUF_MAX.
 *
 * Framing errors: an oversized frame (above HMS_API_FRAME_MAX) is answered
 * with "frame_too_large" and its bytes are skipped, so the connection stays
 * usable; a length above HMS_API_FRAME_HARD_MAX means the stream is not this
 * protocol, so the error is sent and the connection closed. A frame that is
 * not a valid request gets "bad_frame"/"bad_request" and the connection goes
 * on. A client that sends faster than it reads is paused: once
 * HMS_API_OUTBUF_MAX/2 bytes of replies wait, the input already read is kept
 * aside and the socket is not read, until less than HMS_API_OUTBUF_MAX/4
 * wait. A stream that overflows HMS_API_OUTBUF_MAX drops the connection.
 *
 * Connections are closed in two steps: conn_kill() closes the socket and
 * marks the connection dead at once, and a zero-delay timer frees it and
 * runs the streams' on_close callbacks from the loop, so no callback runs
 * inside a call that a module made.
 */
#include "agent/api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "agent/agent.h"
#include "agent/log.h"

#define READ_CHUNK 65536

struct hms_api_stream {
    hms_api_conn *conn;
    uint64_t id;
    hms_api_stream_close_fn on_close;
    void *ctx;
    hms_api_stream *next, *prev;
};

struct hms_api_conn {
    hms_api *api;
    int fd;
    ev_io rio, wio;
    uid_t uid;
    gid_t gid;
    pid_t pid;
    bool admin;
    bool dead;
    bool close_after_flush;
    /* input state */
    uint8_t hdr[4];
    size_t hdr_have;
    uint8_t *frame; /* payload being read */
    size_t frame_len, frame_have;
    uint64_t skip_left; /* bytes of an oversized frame still to skip */
    uint8_t *pend;      /* input read but not processed while replies wait */
    size_t pend_len;
    ev_timer resume; /* processes pend from the loop once replies left */
    /* output */
    msgpack_sbuffer out;
    size_t out_off;
    hms_api_stream *streams;
    size_t nstreams;
    hms_api_conn *next, *prev;
};

struct hms_api {
    hms_agent *agent;
    struct ev_loop *loop;
    int fd;
    ev_io lio;
    ev_timer reaper;
    char path[108];
    long admin_gid;
    struct {
        const hms_api_op *ops;
        void *ctx;
    } tables[HMS_API_TABLES_MAX];
    size_t ntables;
    hms_api_conn *conns;
    hms_api_conn *dead; /* killed, waiting for the reaper */
    hms_api_stats st;
};

/* --- helpers for handlers ---------------------------------------------- */

int hms_api_fail(hms_api_error *err, const char *code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

const msgpack_object *hms_api_arg(const hms_api_req *req, const char *key)
{
    const msgpack_object *o = hms_mp_get(req->args, key);
    return o && o->type != MSGPACK_OBJECT_NIL ? o : NULL;
}

int hms_api_arg_str(const hms_api_req *req, const char *key, char *buf, size_t cap)
{
    const msgpack_object *o = hms_api_arg(req, key);
    if (!o)
        return -ENOENT;
    char tmp[4096];
    if (cap > sizeof(tmp))
        cap = sizeof(tmp);
    if (hms_mp_str_copy(o, tmp, cap) < 0)
        return -EINVAL;
    memcpy(buf, tmp, strlen(tmp) + 1);
    return 0;
}

int hms_api_arg_u64(const hms_api_req *req, const char *key, uint64_t *out)
{
    const msgpack_object *o = hms_api_arg(req, key);
    if (!o)
        return -ENOENT;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -EINVAL;
    *out = o->via.u64;
    return 0;
}

int hms_api_arg_bool(const hms_api_req *req, const char *key, bool *out)
{
    const msgpack_object *o = hms_api_arg(req, key);
    if (!o)
        return -ENOENT;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return -EINVAL;
    *out = o->via.boolean;
    return 0;
}

void hms_api_pack_str(msgpack_packer *pk, const char *s)
{
    if (!s) {
        msgpack_pack_nil(pk);
        return;
    }
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void hms_api_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
    hms_api_pack_str(pk, key);
    hms_api_pack_str(pk, val);
}

void hms_api_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val)
{
    hms_api_pack_str(pk, key);
    msgpack_pack_uint64(pk, val);
}

void hms_api_pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
    hms_api_pack_str(pk, key);
    if (val)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* --- connections -------------------------------------------------------- */

static void conn_kill(hms_api_conn *c);

static void reaper_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hms_api *api = w->data;
    while (api->dead) {
        hms_api_conn *c = api->dead;
        api->dead = c->next;
        while (c->streams) {
            hms_api_stream *st = c->streams;
            c->streams = st->next;
            api->st.streams_now--;
            if (st->on_close)
                st->on_close(st, st->ctx);
            free(st);
        }
        msgpack_sbuffer_destroy(&c->out);
        free(c->frame);
        free(c->pend);
        free(c);
    }
}

static void conn_kill(hms_api_conn *c)
{
    if (c->dead)
        return;
    hms_api *api = c->api;
    c->dead = true;
    ev_io_stop(api->loop, &c->rio);
    ev_io_stop(api->loop, &c->wio);
    ev_timer_stop(api->loop, &c->resume);
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        api->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = api->dead;
    api->dead = c;
    api->st.clients_now--;
    ev_timer_stop(api->loop, &api->reaper);
    ev_timer_set(&api->reaper, 0., 0.);
    ev_timer_start(api->loop, &api->reaper);
}

static size_t out_pending(const hms_api_conn *c)
{
    return c->out.size - c->out_off;
}

/* Writes what the socket takes; arms the write watcher for the rest. */
static void conn_flush(hms_api_conn *c)
{
    while (!c->dead && out_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, out_pending(c), MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_kill(c); /* EPIPE, ECONNRESET: the client went away */
        return;
    }
    if (c->dead)
        return;
    if (out_pending(c) == 0) {
        c->out.size = 0;
        c->out_off = 0;
        ev_io_stop(c->api->loop, &c->wio);
        if (c->close_after_flush) {
            conn_kill(c);
            return;
        }
    } else {
        if (c->out_off > (1u << 20)) { /* compact */
            memmove(c->out.data, c->out.data + c->out_off, out_pending(c));
            c->out.size -= c->out_off;
            c->out_off = 0;
        }
        ev_io_start(c->api->loop, &c->wio);
    }
    /* Back-pressure: requests are taken again once most of the output
     * left, first those already read (pend), then the socket's. */
    if (out_pending(c) <= HMS_API_OUTBUF_MAX / 4 && !c->close_after_flush) {
        if (c->pend) {
            if (!ev_is_active(&c->resume)) {
                ev_timer_set(&c->resume, 0., 0.);
                ev_timer_start(c->api->loop, &c->resume);
            }
        } else {
            ev_io_start(c->api->loop, &c->rio);
        }
    } else {
        ev_io_stop(c->api->loop, &c->rio);
    }
}

/* Sends what was appended. Replies to requests are bounded by pausing
 * the input; stream frames are not, so a stream that overflows the output
 * bound drops its client. */
static int conn_commit(hms_api_conn *c, bool stream)
{
    if (stream && out_pending(c) > HMS_API_OUTBUF_MAX) {
        c->api->st.slow_clients++;
        HMS_WARN("api: dropping client pid %d: %zu bytes of replies unread", (int)c->pid,
                 out_pending(c));
        conn_kill(c);
        return -ENOBUFS;
    }
    conn_flush(c);
    return c->dead ? -ENOBUFS : 0;
}

static void send_error(hms_api_conn *c, bool has_id, uint64_t id, const char *code, const char *msg)
{
    c->api->st.errors++;
    hms_api_encode_error(&c->out, has_id, id, code, msg);
}

static const hms_api_op *find_op(hms_api *api, const char *name, void **ctx)
{
    for (size_t t = 0; t < api->ntables; t++) {
        for (const hms_api_op *op = api->tables[t].ops; op->name; op++) {
            if (strcmp(op->name, name) == 0) {
                *ctx = api->tables[t].ctx;
                return op;
            }
        }
    }
    return NULL;
}

/* The one op the server itself implements: {op: "cancel", stream: id}. */
static void cancel_stream(hms_api_conn *c, const hms_api_req *req)
{
    uint64_t sid;
    if (hms_api_arg_u64(req, "stream", &sid) < 0) {
        send_error(c, true, req->id, HMS_API_E_BAD_REQUEST, "cancel needs 'stream' (an id)");
        return;
    }
    for (hms_api_stream *st = c->streams; st; st = st->next) {
        if (st->id != sid)
            continue;
        if (st->prev)
            st->prev->next = st->next;
        else
            c->streams = st->next;
        if (st->next)
            st->next->prev = st->prev;
        c->nstreams--;
        c->api->st.streams_now--;
        hms_api_encode_ok(&c->out, true, st->id, false, NULL, 0);
        if (st->on_close)
            st->on_close(st, st->ctx);
        free(st);
        hms_api_encode_ok(&c->out, true, req->id, false, NULL, 0);
        return;
    }
    send_error(c, true, req->id, HMS_API_E_NOT_FOUND, "no open stream with that id");
}

static void dispatch(hms_api_conn *c, const uint8_t *buf, size_t len)
{
    hms_api *api = c->api;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    hms_api_request r;
    const char *code, *why;
    api->st.requests++;
    if (hms_api_decode_request(&u, buf, len, &r, &code, &why) < 0) {
        api->st.bad_frames++;
        send_error(c, r.has_id, r.id, code, why);
        msgpack_unpacked_destroy(&u);
        return;
    }
    hms_api_req req = {
        .id = r.id,
        .has_id = true,
        .op = r.op,
        .args = r.args,
        .uid = c->uid,
        .gid = c->gid,
        .pid = c->pid,
        .admin = c->admin,
        .conn = c,
    };
    if (strcmp(r.op, "cancel") == 0) {
        cancel_stream(c, &req);
        msgpack_unpacked_destroy(&u);
        return;
    }
    void *ctx = NULL;
    const hms_api_op *op = find_op(api, r.op, &ctx);
    if (!op) {
        char msg[128];
        snprintf(msg, sizeof(msg), "unknown op '%s'", r.op);
        send_error(c, true, r.id, HMS_API_E_UNKNOWN_OP, msg);
        msgpack_unpacked_destroy(&u);
        return;
    }
    if ((op->flags & HMS_API_ADMIN) && !c->admin) {
        char msg[160];
        api->st.forbidden++;
        snprintf(msg, sizeof(msg),
                 "'%s' is an admin operation; uid %u is not the agent's user, "
                 "root or in the admin group",
                 r.op, (unsigned)c->uid);
        send_error(c, true, r.id, HMS_API_E_FORBIDDEN, msg);
        msgpack_unpacked_destroy(&u);
        return;
    }
    req.ctx = ctx;
    msgpack_sbuffer res;
    msgpack_sbuffer_init(&res);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &res, msgpack_sbuffer_write);
    hms_api_error err = {.code = NULL, .message = ""};
    int rc = op->fn(api->agent, &req, &pk, &err);
    if (!c->dead) {
        if (rc == HMS_API_STREAMING) {
            /* frames follow through the stream */
        } else if (rc < 0) {
            send_error(c, true, r.id, err.code ? err.code : HMS_API_E_FAILED,
                       err.message[0] ? err.message : "operation failed");
        } else {
            size_t used;
            if (res.size == 0 || (hms_mp_check((const uint8_t *)res.data, res.size, &used) == 0 &&
                                  used == res.size)) {
                hms_api_encode_ok(&c->out, true, r.id, false, res.data, res.size);
            } else {
                HMS_ERROR("api: op '%s' packed a malformed result", r.op);
                send_error(c, true, r.id, HMS_API_E_INTERNAL, "malformed result");
            }
        }
    }
    msgpack_sbuffer_destroy(&res);
    msgpack_unpacked_destroy(&u);
}

/* Feeds received bytes through the framing state machine. */
static void conn_input(hms_api_conn *c, const uint8_t *p, size_t n)
{
    hms_api *api = c->api;
    while (n > 0 && !c->dead && !c->close_after_flush) {
        if (out_pending(c) > HMS_API_OUTBUF_MAX / 2) {
            /* Keep the rest for later: the client must read first. */
            uint8_t *keep = malloc(n);
            if (!keep) {
                conn_kill(c);
                return;
            }
            memcpy(keep, p, n);
            c->pend = keep;
            c->pend_len = n;
            return;
        }
        if (c->skip_left > 0) {
            size_t k = c->skip_left < n ? (size_t)c->skip_left : n;
            c->skip_left -= k;
            p += k;
            n -= k;
            continue;
        }
        if (!c->frame) {
            size_t k = 4 - c->hdr_have < n ? 4 - c->hdr_have : n;
            memcpy(c->hdr + c->hdr_have, p, k);
            c->hdr_have += k;
            p += k;
            n -= k;
            if (c->hdr_have < 4)
                break;
            c->hdr_have = 0;
            uint32_t len = hms_api_get_len(c->hdr);
            if (len > HMS_API_FRAME_HARD_MAX) {
                char msg[160];
                api->st.oversized_frames++;
                snprintf(msg, sizeof(msg),
                         "frame of %u bytes is not a frame of this protocol "
                         "(limit %u); closing",
                         len, HMS_API_FRAME_MAX);
                send_error(c, false, 0, HMS_API_E_TOO_LARGE, msg);
                c->close_after_flush = true;
                break;
            }
            if (len > HMS_API_FRAME_MAX) {
                char msg[128];
                api->st.oversized_frames++;
                snprintf(msg, sizeof(msg), "frame of %u bytes is above the limit of %u bytes", len,
                         HMS_API_FRAME_MAX);
                send_error(c, false, 0, HMS_API_E_TOO_LARGE, msg);
                c->skip_left = len;
                continue;
            }
            c->frame = malloc(len ? len : 1);
            if (!c->frame) {
                send_error(c, false, 0, HMS_API_E_INTERNAL, "out of memory");
                c->close_after_flush = true;
                break;
            }
            c->frame_len = len;
            c->frame_have = 0;
        }
        size_t k = c->frame_len - c->frame_have < n ? c->frame_len - c->frame_have : n;
        memcpy(c->frame + c->frame_have, p, k);
        c->frame_have += k;
        p += k;
        n -= k;
        if (c->frame_have == c->frame_len) {
            uint8_t *f = c->frame;
            c->frame = NULL;
            dispatch(c, f, c->frame_len);
            free(f);
        }
    }
}

static void conn_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hms_api_conn *c = w->data;
    uint8_t *buf = c->pend;
    size_t len = c->pend_len;
    c->pend = NULL;
    c->pend_len = 0;
    conn_input(c, buf, len);
    free(buf);
    if (!c->dead)
        conn_commit(c, false);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hms_api_conn *c = w->data;
    uint8_t buf[READ_CHUNK];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n == 0) {
        if (c->frame || c->hdr_have || c->skip_left)
            HMS_DEBUG("api: client pid %d closed mid-frame", (int)c->pid);
        conn_kill(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_kill(c);
        return;
    }
    /* The whole chunk is processed (at most READ_CHUNK bytes of requests);
     * conn_flush then stops reading while many replies wait to be sent. */
    conn_input(c, buf, (size_t)n);
    if (!c->dead)
        conn_commit(c, false);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    conn_flush(w->data);
}

static bool in_group(uid_t uid, gid_t primary, gid_t want)
{
    if (primary == want)
        return true;
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
        return false;
    gid_t groups[256];
    int ng = 256;
    if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &ng) < 0)
        return false;
    for (int i = 0; i < ng; i++)
        if (groups[i] == want)
            return true;
    return false;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hms_api *api = w->data;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(api->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                HMS_WARN("api: cannot accept a client: %s", strerror(errno));
            return;
        }
        if (api->st.clients_now >= HMS_API_CLIENTS_MAX) {
            api->st.clients_refused++;
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            hms_api_encode_error(&sb, false, 0, HMS_API_E_BUSY, "too many clients");
            ssize_t wr = send(fd, sb.data, sb.size, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)wr;
            msgpack_sbuffer_destroy(&sb);
            close(fd);
            continue;
        }
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
            close(fd);
            continue;
        }
        hms_api_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->api = api;
        c->fd = fd;
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->pid = cred.pid;
        c->admin = cred.uid == 0 || cred.uid == geteuid() ||
                   (api->admin_gid >= 0 && in_group(cred.uid, cred.gid, (gid_t)api->admin_gid));
        msgpack_sbuffer_init(&c->out);
        ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
        ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
        ev_timer_init(&c->resume, conn_resume_cb, 0., 0.);
        c->rio.data = c->wio.data = c->resume.data = c;
        ev_io_start(loop, &c->rio);
        c->next = api->conns;
        if (api->conns)
            api->conns->prev = c;
        api->conns = c;
        api->st.clients_accepted++;
        api->st.clients_now++;
    }
}

/* --- server ------------------------------------------------------------- */

hms_api *hms_api_new(hms_agent *agent, struct ev_loop *loop)
{
    hms_api *api = calloc(1, sizeof(*api));
    if (!api)
        return NULL;
    api->agent = agent;
    api->loop = loop;
    api->fd = -1;
    api->admin_gid = -1;
    ev_timer_init(&api->reaper, reaper_cb, 0., 0.);
    api->reaper.data = api;
    return api;
}

static int mkdir_parents(const char *path, char *err, size_t errlen)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            goto fail;
        *p = '/';
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot create socket directory '%s': %s", dir, strerror(errno));
    return -errno;
}

int hms_api_listen(hms_api *api, const char *path, long admin_gid, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path '%s' is too long (max %zu bytes)", path,
                 sizeof(sa.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    int r = mkdir_parents(path, err, errlen);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot create a unix socket: %s", strerror(errno));
        return r;
    }
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            snprintf(err, errlen,
                     "cannot use socket path '%s': a file that is not a socket "
                     "is there",
                     path);
            close(fd);
            return -EEXIST;
        }
        /* Replace a stale socket, never a live one. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            close(fd);
            snprintf(err, errlen, "cannot listen on '%s': another agent is serving it", path);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    mode_t old = umask(0117); /* the socket file is born 0660 */
    r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (r < 0) {
        snprintf(err, errlen, "cannot bind '%s': %s", path, strerror(e));
        close(fd);
        return -e;
    }
    if (chmod(path, 0660) < 0)
        HMS_WARN("api: cannot chmod '%s': %s", path, strerror(errno));
    if (admin_gid >= 0 && chown(path, (uid_t)-1, (gid_t)admin_gid) < 0)
        HMS_WARN("api: cannot give '%s' to group %ld: %s", path, admin_gid, strerror(errno));
    if (listen(fd, 128) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot listen on '%s': %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return r;
    }
    api->fd = fd;
    api->admin_gid = admin_gid;
    snprintf(api->path, sizeof(api->path), "%s", path);
    ev_io_init(&api->lio, accept_cb, fd, EV_READ);
    api->lio.data = api;
    ev_io_start(api->loop, &api->lio);
    return 0;
}

void hms_api_delete(hms_api *api)
{
    if (!api)
        return;
    while (api->conns)
        conn_kill(api->conns);
    reaper_cb(api->loop, &api->reaper, 0);
    ev_timer_stop(api->loop, &api->reaper);
    if (api->fd >= 0) {
        ev_io_stop(api->loop, &api->lio);
        close(api->fd);
        unlink(api->path);
    }
    free(api);
}

int hms_api_register(hms_api *api, const hms_api_op *table, void *ctx)
{
    if (api->ntables >= HMS_API_TABLES_MAX)
        return -ENOSPC;
    for (const hms_api_op *op = table; op->name; op++) {
        void *unused;
        if (find_op(api, op->name, &unused) || strcmp(op->name, "cancel") == 0) {
            HMS_ERROR("api: op '%s' registered twice", op->name);
            return -EEXIST;
        }
    }
    api->tables[api->ntables].ops = table;
    api->tables[api->ntables].ctx = ctx;
    api->ntables++;
    return 0;
}

/* --- streams ------------------------------------------------------------ */

hms_api_stream *hms_api_stream_open(const hms_api_req *req, hms_api_stream_close_fn on_close,
                                    void *ctx)
{
    hms_api_conn *c = req->conn;
    if (!c || c->dead || c->nstreams >= HMS_API_STREAMS_MAX)
        return NULL;
    hms_api_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->conn = c;
    st->id = req->id;
    st->on_close = on_close;
    st->ctx = ctx;
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    c->nstreams++;
    c->api->st.streams_now++;
    return st;
}

int hms_api_stream_send(hms_api_stream *st, const void *result, size_t len)
{
    hms_api_conn *c = st->conn;
    if (c->dead)
        return -ENOBUFS;
    hms_api_encode_ok(&c->out, true, st->id, true, result, len);
    return conn_commit(c, true);
}

void hms_api_stream_end(hms_api_stream *st, const void *result, size_t len,
                        const hms_api_error *err)
{
    hms_api_conn *c = st->conn;
    if (st->prev)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    c->nstreams--;
    c->api->st.streams_now--;
    if (!c->dead) {
        if (err)
            send_error(c, true, st->id, err->code ? err->code : HMS_API_E_FAILED, err->message);
        else
            hms_api_encode_ok(&c->out, true, st->id, false, result, len);
        conn_commit(c, true);
    }
    free(st);
}

void hms_api_get_stats(const hms_api *api, hms_api_stats *out)
{
    *out = api->st;
}
