/*
 * The socket API server over a real Unix socket, with libclient on the
 * other end: requests and errors, pipelining, streams, garbage and
 * oversized frames (the connection stays usable where framing allows),
 * frames cut off by a disconnect, cancel, socket mode, and counters.
 * The server's loop runs in a thread; the test talks to it only through
 * the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <ev.h>

#include "agent/api/api.h"
#include "libclient/hms.h"
#include "proto/api.h"

static struct ev_loop *loop;
static hms_api *api;
static hms_api *api_group; /* a second server with an admin group (gid 65534) */
static char path_group[128];
static ev_async stop_async;
static ev_timer stream_timer;
static pthread_t thread;
static char dir[64], path[128];
static hms_api_stream *open_stream;
static int stream_sent;
static int stream_closed;

static int op_echo(struct hms_agent *a, const hms_api_req *req, msgpack_packer *res,
                   hms_api_error *err)
{
    msgpack_pack_object(res, *req->args);
    return 0;
}

static int op_fail(struct hms_agent *a, const hms_api_req *req, msgpack_packer *res,
                   hms_api_error *err)
{
    msgpack_pack_nil(res); /* dropped: the error wins */
    return hms_api_fail(err, HMS_API_E_NOT_FOUND, "no such thing '%s'", "x");
}

static void stream_tick(struct ev_loop *l, ev_timer *w, int revents)
{
    if (!open_stream)
        return;
    uint8_t v = (uint8_t)stream_sent++;
    if (stream_sent <= 3) {
        hms_api_stream_send(open_stream, &v, 1); /* a positive fixint */
    } else {
        const uint8_t done[] = {0xa4, 'd', 'o', 'n', 'e'};
        hms_api_stream_end(open_stream, done, sizeof(done), NULL);
        open_stream = NULL;
        ev_timer_stop(l, w);
    }
}

static void stream_gone(hms_api_stream *st, void *ctx)
{
    stream_closed++;
    if (st == open_stream)
        open_stream = NULL;
}

static int op_count(struct hms_agent *a, const hms_api_req *req, msgpack_packer *res,
                    hms_api_error *err)
{
    bool forever = false;
    hms_api_arg_bool(req, "forever", &forever);
    open_stream = hms_api_stream_open(req, stream_gone, NULL);
    if (!open_stream)
        return hms_api_fail(err, HMS_API_E_BUSY, "no stream");
    stream_sent = forever ? -1000000 : 0;
    ev_timer_set(&stream_timer, 0.01, 0.01);
    ev_timer_start(loop, &stream_timer);
    return HMS_API_STREAMING;
}

/* A watch stream as the agent sends it: a first frame, then member events. */
static int op_watch(struct hms_agent *a, const hms_api_req *req, msgpack_packer *res,
                    hms_api_error *err)
{
    hms_api_stream *st = hms_api_stream_open(req, NULL, NULL);
    if (!st)
        return hms_api_fail(err, HMS_API_E_BUSY, "no stream");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    hms_api_pack_kv_str(&pk, "event", "watching");
    hms_api_stream_send(st, sb.data, sb.size);
    const char *events[] = {"join", "suspect", "dead"};
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 2);
        hms_api_pack_kv_str(&pk, "event", events[i]);
        hms_api_pack_str(&pk, "member");
        msgpack_pack_map(&pk, 4);
        hms_api_pack_kv_str(&pk, "name", "n7");
        hms_api_pack_kv_str(&pk, "address", "127.0.0.7:7950");
        hms_api_pack_kv_str(&pk, "status", i == 0 ? "alive" : events[i]);
        hms_api_pack_kv_u64(&pk, "incarnation", 3);
        hms_api_stream_send(st, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    hms_api_stream_end(st, NULL, 0, NULL);
    return HMS_API_STREAMING;
}

/* A small request with a large reply (32 KiB). */
static int op_big(struct hms_agent *a, const hms_api_req *req, msgpack_packer *res,
                  hms_api_error *err)
{
    static char blob[32768];
    msgpack_pack_bin(res, sizeof(blob));
    msgpack_pack_bin_body(res, blob, sizeof(blob));
    return 0;
}

static const hms_api_op ops[] = {
    {"big", op_big, 0},
    {"watch", op_watch, 0},
    {"echo", op_echo, 0},
    {"fail", op_fail, 0},
    {"admin_echo", op_echo, HMS_API_ADMIN},
    {"count", op_count, 0},
    {NULL, NULL, 0},
};

static void stop_cb(struct ev_loop *l, ev_async *w, int revents)
{
    ev_break(l, EVBREAK_ALL);
}

static void *run_loop(void *arg)
{
    ev_run(loop, 0);
    return NULL;
}

static int setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hms-test-api.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/sub/agent.sock", dir);
    loop = ev_loop_new(EVFLAG_AUTO);
    api = hms_api_new(NULL, loop);
    char err[256];
    if (!api || hms_api_register(api, ops, NULL) != 0 ||
        hms_api_listen(api, path, -1, err, sizeof(err)) != 0) {
        fprintf(stderr, "listen: %s\n", err);
        return 1;
    }
    snprintf(path_group, sizeof(path_group), "%s/sub/group.sock", dir);
    api_group = hms_api_new(NULL, loop);
    if (!api_group || hms_api_register(api_group, ops, NULL) != 0 ||
        hms_api_listen(api_group, path_group, 65534, err, sizeof(err)) != 0) {
        fprintf(stderr, "listen: %s\n", err);
        return 1;
    }
    ev_async_init(&stop_async, stop_cb);
    ev_async_start(loop, &stop_async);
    ev_timer_init(&stream_timer, stream_tick, 0.01, 0.01);
    return pthread_create(&thread, NULL, run_loop, NULL) != 0;
}

static int teardown(void)
{
    ev_async_send(loop, &stop_async);
    pthread_join(thread, NULL);
    ev_timer_stop(loop, &stream_timer);
    hms_api_delete(api);
    hms_api_delete(api_group);
    ev_loop_destroy(loop);
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
    return 0;
}

static int pack_hello(msgpack_packer *pk, void *ctx)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "hello", 5);
    msgpack_pack_str_with_body(pk, "world", 5);
    return 0;
}

static void test_socket_mode(void)
{
    struct stat sb;
    CU_ASSERT_EQUAL_FATAL(stat(path, &sb), 0);
    CU_ASSERT(S_ISSOCK(sb.st_mode));
    CU_ASSERT_EQUAL(sb.st_mode & 0777, 0660);
    /* a second server on the same live path is refused */
    hms_api *other = hms_api_new(NULL, loop);
    char err[256];
    CU_ASSERT_EQUAL(hms_api_listen(other, path, -1, err, sizeof(err)), -EADDRINUSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "another agent"));
    hms_api_delete(other);
    CU_ASSERT_EQUAL(stat(path, &sb), 0); /* still there */
}

static void test_echo_and_errors(void)
{
    hms_client *c;
    CU_ASSERT_EQUAL_FATAL(hms_connect(path, &c), 0);
    hms_reply rep;
    CU_ASSERT_EQUAL(hms_request(c, "echo", pack_hello, NULL, &rep), 0);
    CU_ASSERT(rep.ok);
    CU_ASSERT(hms_mp_str_eq(hms_mp_get(rep.result, "hello"), "world"));
    CU_ASSERT(hms_mp_str_eq(hms_mp_get(rep.result, "op"), "echo"));
    hms_reply_destroy(&rep);

    CU_ASSERT_EQUAL(hms_request(c, "fail", NULL, NULL, &rep), -EREMOTEIO);
    CU_ASSERT_STRING_EQUAL(rep.code, HMS_API_E_NOT_FOUND);
    CU_ASSERT_STRING_EQUAL(rep.message, "no such thing 'x'");
    hms_reply_destroy(&rep);

    CU_ASSERT_EQUAL(hms_request(c, "nope", NULL, NULL, &rep), -EREMOTEIO);
    CU_ASSERT_STRING_EQUAL(rep.code, HMS_API_E_UNKNOWN_OP);
    hms_reply_destroy(&rep);

    /* same uid as the server: admin */
    CU_ASSERT_EQUAL(hms_request(c, "admin_echo", NULL, NULL, &rep), 0);
    hms_reply_destroy(&rep);
    hms_close(c);
}

static int raw_connect(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int read_n(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Reads one reply frame from a raw socket into rep (caller destroys u). */
static int raw_reply(int fd, msgpack_unpacked *u, hms_api_reply *rep, uint8_t **buf)
{
    uint8_t h[4];
    if (read_n(fd, h, 4) < 0)
        return -1;
    uint32_t n = hms_api_get_len(h);
    *buf = malloc(n);
    if (read_n(fd, *buf, n) < 0)
        return -1;
    return hms_api_decode_reply(u, *buf, n, rep);
}

static void expect_reply(int fd, bool ok, const char *code, uint64_t id)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    hms_api_reply rep;
    uint8_t *buf = NULL;
    CU_ASSERT_EQUAL_FATAL(raw_reply(fd, &u, &rep, &buf), 0);
    CU_ASSERT_EQUAL(rep.ok, ok);
    if (code)
        CU_ASSERT_STRING_EQUAL(rep.code, code);
    if (id)
        CU_ASSERT(rep.has_id && rep.id == id);
    msgpack_unpacked_destroy(&u);
    free(buf);
}

static void send_request(int fd, uint64_t id)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    hms_api_encode_request(&sb, id, "echo", NULL, 0);
    CU_ASSERT_EQUAL(send(fd, sb.data, sb.size, 0), (ssize_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void test_garbage_and_oversized(void)
{
    int fd = raw_connect();
    CU_ASSERT_FATAL(fd >= 0);
    /* a frame whose payload is not msgpack */
    const uint8_t junk[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
    send(fd, junk, sizeof(junk), 0);
    expect_reply(fd, false, HMS_API_E_BAD_FRAME, 0);
    send_request(fd, 11);
    expect_reply(fd, true, NULL, 11);

    /* oversized: refused, its bytes skipped, the connection goes on */
    uint32_t big = HMS_API_FRAME_MAX + 1;
    uint8_t h[4];
    hms_api_put_len(h, big);
    send(fd, h, 4, 0);
    expect_reply(fd, false, HMS_API_E_TOO_LARGE, 0);
    uint8_t *filler = calloc(1, big);
    size_t off = 0;
    while (off < big) {
        ssize_t w = send(fd, filler + off, big - off, 0);
        CU_ASSERT_FATAL(w > 0);
        off += (size_t)w;
    }
    free(filler);
    send_request(fd, 12);
    expect_reply(fd, true, NULL, 12);

    /* text where a length should be: refused and closed */
    send(fd, "GET / HTTP/1.0\r\n\r\n", 18, 0);
    expect_reply(fd, false, HMS_API_E_TOO_LARGE, 0);
    uint8_t b;
    CU_ASSERT_EQUAL(recv(fd, &b, 1, 0), 0);
    close(fd);

    /* a frame cut off by a disconnect */
    fd = raw_connect();
    const uint8_t partial[] = {0, 0, 0, 50, 0x82, 0xa2};
    send(fd, partial, sizeof(partial), 0);
    close(fd);

    hms_client *c;
    CU_ASSERT_EQUAL_FATAL(hms_connect(path, &c), 0);
    hms_reply rep;
    CU_ASSERT_EQUAL(hms_request(c, "echo", NULL, NULL, &rep), 0);
    hms_reply_destroy(&rep);
    hms_close(c);
}

static void test_pipelined(void)
{
    int fd = raw_connect();
    CU_ASSERT_FATAL(fd >= 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (uint64_t i = 1; i <= 200; i++)
        hms_api_encode_request(&sb, i, "echo", NULL, 0);
    CU_ASSERT_EQUAL(send(fd, sb.data, sb.size, 0), (ssize_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
    for (uint64_t i = 1; i <= 200; i++)
        expect_reply(fd, true, NULL, i);
    close(fd);
}

/* A client that writes far more than it reads: the server stops reading
 * its requests while replies pile up, and every reply arrives in order. */
static void test_backpressure(void)
{
    hms_api_stats before, after;
    hms_api_get_stats(api, &before);
    int fd = raw_connect();
    CU_ASSERT_FATAL(fd >= 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    msgpack_sbuffer args, out;
    msgpack_sbuffer_init(&args);
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    char pad[2048];
    memset(pad, 'p', sizeof(pad));
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "pad", 3);
    msgpack_pack_str_with_body(&pk, pad, sizeof(pad));
    const uint64_t n = 8000; /* about 16 MiB of replies: twice the output limit */
    for (uint64_t i = 1; i <= n; i++)
        hms_api_encode_request(&out, i, "echo", args.data, args.size);
    size_t sent = 0;
    uint64_t next = 1;
    uint8_t *in = malloc(1 << 20);
    size_t have = 0;
    ev_tstamp end = ev_time() + 30;
    while (next <= n && ev_time() < end) {
        if (sent < out.size) {
            ssize_t w = send(fd, out.data + sent, out.size - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        /* read slowly: at most 16 KiB per round, with a pause */
        ssize_t r = recv(fd, in + have, (1 << 20) - have < 16384 ? (1 << 20) - have : 16384, 0);
        if (r == 0)
            break;
        if (r > 0)
            have += (size_t)r;
        size_t off = 0;
        while (have - off >= 4) {
            uint32_t len = hms_api_get_len(in + off);
            if (have - off < 4 + (size_t)len)
                break;
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            hms_api_reply rep;
            CU_ASSERT_EQUAL(hms_api_decode_reply(&u, in + off + 4, len, &rep), 0);
            CU_ASSERT(rep.ok && rep.id == next);
            msgpack_unpacked_destroy(&u);
            next++;
            off += 4 + len;
        }
        memmove(in, in + off, have - off);
        have -= off;
        usleep(r < 0 && sent == out.size ? 1000 : 100);
    }
    CU_ASSERT_EQUAL(next, n + 1);
    hms_api_get_stats(api, &after);
    CU_ASSERT_EQUAL(after.slow_clients, before.slow_clients);
    free(in);
    msgpack_sbuffer_destroy(&args);
    msgpack_sbuffer_destroy(&out);
    close(fd);
}

/* Many small requests with large replies in one write: far more output
 * than the per-client bound, all delivered, none dropped. */
static void test_amplified(void)
{
    hms_api_stats before, after;
    hms_api_get_stats(api, &before);
    int fd = raw_connect();
    CU_ASSERT_FATAL(fd >= 0);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    const uint64_t n = 1000; /* 32 MiB of replies for 20 KiB of requests */
    for (uint64_t i = 1; i <= n; i++)
        hms_api_encode_request(&out, i, "big", NULL, 0);
    CU_ASSERT_EQUAL(send(fd, out.data, out.size, 0), (ssize_t)out.size);
    msgpack_sbuffer_destroy(&out);
    uint8_t *buf = malloc(1 << 16);
    uint64_t got = 0;
    for (uint64_t i = 1; i <= n; i++) {
        uint8_t h[4];
        if (read_n(fd, h, 4) < 0)
            break;
        uint32_t len = hms_api_get_len(h);
        if (len > (1 << 16) || read_n(fd, buf, len) < 0)
            break;
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        hms_api_reply rep;
        if (hms_api_decode_reply(&u, buf, len, &rep) == 0 && rep.ok && rep.id == i)
            got++;
        msgpack_unpacked_destroy(&u);
        if (i % 100 == 0)
            usleep(2000); /* a slow reader */
    }
    CU_ASSERT_EQUAL(got, n);
    hms_api_get_stats(api, &after);
    CU_ASSERT_EQUAL(after.slow_clients, before.slow_clients);
    free(buf);
    close(fd);
}

static void test_stream(void)
{
    hms_client *c;
    CU_ASSERT_EQUAL_FATAL(hms_connect(path, &c), 0);
    CU_ASSERT_EQUAL_FATAL(hms_stream_start(c, "count", NULL, NULL), 0);
    hms_reply rep;
    /* while the stream is open, plain requests are refused locally */
    CU_ASSERT_EQUAL(hms_request(c, "echo", NULL, NULL, &rep), -EBUSY);
    hms_reply_destroy(&rep);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(hms_stream_next(c, 5000, &rep), 0);
        CU_ASSERT(rep.more);
        CU_ASSERT(rep.result->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                  rep.result->via.u64 == (uint64_t)i);
        hms_reply_destroy(&rep);
    }
    CU_ASSERT_EQUAL(hms_stream_next(c, 5000, &rep), 0);
    CU_ASSERT(!rep.more);
    CU_ASSERT(hms_mp_str_eq(rep.result, "done"));
    hms_reply_destroy(&rep);
    /* the connection serves requests again */
    CU_ASSERT_EQUAL(hms_request(c, "echo", NULL, NULL, &rep), 0);
    hms_reply_destroy(&rep);
    hms_close(c);
}

static int pack_forever(msgpack_packer *pk, void *ctx)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "forever", 7);
    msgpack_pack_true(pk);
    return 0;
}

static void test_stream_cancel(void)
{
    hms_client *c;
    int before = stream_closed;
    CU_ASSERT_EQUAL_FATAL(hms_connect(path, &c), 0);
    CU_ASSERT_EQUAL_FATAL(hms_stream_start(c, "count", pack_forever, NULL), 0);
    hms_reply rep;
    CU_ASSERT_EQUAL(hms_stream_next(c, 5000, &rep), 0);
    CU_ASSERT(rep.more);
    hms_reply_destroy(&rep);
    CU_ASSERT_EQUAL(hms_stream_cancel(c), 0);
    CU_ASSERT_EQUAL(stream_closed, before + 1); /* on_close ran before the reply */
    CU_ASSERT_EQUAL(hms_request(c, "echo", NULL, NULL, &rep), 0);
    hms_reply_destroy(&rep);
    CU_ASSERT_EQUAL(hms_stream_cancel(c), -EINVAL); /* nothing open */
    hms_close(c);
}

static void test_stream_client_gone(void)
{
    hms_client *c;
    int before = stream_closed;
    CU_ASSERT_EQUAL_FATAL(hms_connect(path, &c), 0);
    CU_ASSERT_EQUAL_FATAL(hms_stream_start(c, "count", pack_forever, NULL), 0);
    hms_reply rep;
    CU_ASSERT_EQUAL(hms_stream_next(c, 5000, &rep), 0);
    hms_reply_destroy(&rep);
    hms_close(c);
    for (int i = 0; i < 200 && stream_closed == before; i++)
        usleep(10000);
    CU_ASSERT_EQUAL(stream_closed, before + 1);
}

/* As another user (needs root to switch): the 0660 socket refuses the
 * connection; opened up, admin operations are still refused. */
static void test_other_user(void)
{
    if (geteuid() != 0) {
        printf("(skipped: needs root) ");
        return;
    }
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    chmod(dir, 0755); /* the directories let anyone through: the socket decides */
    chmod(sub, 0755);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        hms_client *c;
        if (hms_connect(path, &c) != -EACCES)
            _exit(11);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    chmod(path, 0666);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        hms_client *c;
        if (hms_connect(path, &c) != 0)
            _exit(12);
        hms_reply rep;
        if (hms_request(c, "echo", NULL, NULL, &rep) != 0)
            _exit(13);
        hms_reply_destroy(&rep);
        int r = hms_request(c, "admin_echo", NULL, NULL, &rep);
        if (r != -EREMOTEIO || strcmp(rep.code, HMS_API_E_FORBIDDEN) != 0)
            _exit(14);
        hms_reply_destroy(&rep);
        hms_close(c);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        fprintf(stderr, "\n  child exit %d\n", WEXITSTATUS(st));
    chmod(path, 0660);

    /* the admin group: its members reach the 0660 socket (given to the
     * group) and may run admin operations */
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        gid_t g = 65534;
        if (setgroups(1, &g) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        hms_client *c;
        if (hms_connect(path_group, &c) != 0)
            _exit(15);
        hms_reply rep;
        if (hms_request(c, "admin_echo", NULL, NULL, &rep) != 0)
            _exit(16);
        hms_reply_destroy(&rep);
        hms_close(c);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        fprintf(stderr, "\n  child exit %d\n", WEXITSTATUS(st));
    hms_api_stats stats;
    hms_api_get_stats(api, &stats);
    CU_ASSERT(stats.forbidden >= 1);
}

static int watch_seen, watch_all;
static int on_watch_all(const char *event, const hms_member *m, void *ctx)
{
    watch_all++;
    return 0;
}
static int on_watch(const char *event, const hms_member *m, void *ctx)
{
    const char *want[] = {"join", "suspect", "dead"};
    CU_ASSERT_STRING_EQUAL(event, want[watch_seen]);
    CU_ASSERT_STRING_EQUAL(m->name, "n7");
    CU_ASSERT_EQUAL(m->incarnation, 3);
    return ++watch_seen == 2 ? 42 : 0;
}

static void test_watch_call(void)
{
    hms_client *c;
    CU_ASSERT_EQUAL_FATAL(hms_connect(path, &c), 0);
    CU_ASSERT_EQUAL(hms_watch(c, on_watch, NULL), 42); /* the callback's value stops it */
    hms_close(c);
    CU_ASSERT_EQUAL_FATAL(hms_connect(path, &c), 0);
    CU_ASSERT_EQUAL(hms_watch(c, on_watch_all, NULL), -EPIPE);
    CU_ASSERT_EQUAL(watch_all, 3);
    hms_close(c);
}

static void test_counters(void)
{
    hms_api_stats st;
    hms_api_get_stats(api, &st);
    CU_ASSERT(st.bad_frames >= 1);
    CU_ASSERT(st.oversized_frames >= 2);
    CU_ASSERT(st.requests >= 200);
    CU_ASSERT(st.clients_accepted >= 5);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("api_server", setup, teardown);
    CU_add_test(s, "socket_mode", test_socket_mode);
    CU_add_test(s, "echo_and_errors", test_echo_and_errors);
    CU_add_test(s, "garbage_and_oversized", test_garbage_and_oversized);
    CU_add_test(s, "pipelined", test_pipelined);
    CU_add_test(s, "backpressure", test_backpressure);
    CU_add_test(s, "amplified", test_amplified);
    CU_add_test(s, "stream", test_stream);
    CU_add_test(s, "stream_cancel", test_stream_cancel);
    CU_add_test(s, "stream_client_gone", test_stream_client_gone);
    CU_add_test(s, "watch_call", test_watch_call);
    CU_add_test(s, "other_user", test_other_user);
    CU_add_test(s, "counters", test_counters);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
