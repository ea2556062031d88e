/*
 * Health probes against real sockets on loopback: a small HTTP server on the
 * same libev loop answers with a chosen status (or never answers), and the
 * HTTP probe (through the real hms-http helper process) and the TCP probe
 * must turn each case into the right result within the timeout. The
 * helper's failures are real too: killed with SIGKILL, missing, a fake
 * helper (a shell script) that sends garbage or never answers.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "agent/catalog/probe.h"

#define HOST "127.0.51.201"

static struct ev_loop *loop;
static int lfd = -1;
static uint16_t lport;
static int answer = 200; /* 0: accept and never answer */

typedef struct conn {
    ev_io io;
    char buf[2048];
    size_t n;
} conn;

static conn *conns[1024];
static int nconns;

static void conn_cb(struct ev_loop *l, ev_io *w, int revents)
{
    conn *c = (conn *)w;
    ssize_t r = read(w->fd, c->buf + c->n, sizeof(c->buf) - 1 - c->n);
    if (r <= 0) {
        ev_io_stop(l, w);
        close(w->fd);
        w->fd = -1;
        return;
    }
    c->n += (size_t)r;
    c->buf[c->n] = '\0';
    if (!strstr(c->buf, "\r\n\r\n") || answer == 0)
        return;
    char resp[128];
    int len = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                       answer);
    if (write(w->fd, resp, (size_t)len) < 0)
        perror("write");
    ev_io_stop(l, w);
    close(w->fd);
    w->fd = -1;
}

static void accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
    int fd = accept(w->fd, NULL, NULL);
    if (fd < 0)
        return;
    if (nconns >= 1024) {
        close(fd);
        return;
    }
    conn *c = calloc(1, sizeof(*c));
    conns[nconns++] = c;
    ev_io_init(&c->io, conn_cb, fd, EV_READ);
    ev_io_start(l, &c->io);
}

static int listen_on(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, HOST, &sa.sin_addr);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16))
        return -1;
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    return fd;
}

typedef struct result {
    bool done;
    cat_status st;
    char out[CAT_PROBE_OUTPUT_MAX + 1];
    ev_tstamp at;
} result;

static void done_cb(void *ctx, cat_status st, const char *output)
{
    result *r = ctx;
    r->done = true;
    r->st = st;
    r->at = ev_time();
    snprintf(r->out, sizeof(r->out), "%s", output);
}

static void run_until(result *r, double max_s)
{
    ev_tstamp end = ev_time() + max_s;
    while (!r->done && ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
}

static void http_case(cat_prober *p, int code, cat_status want)
{
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, lport);
    answer = code;
    result r = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 2000, done_cb, &r, NULL), 0);
    CU_ASSERT_FALSE(r.done); /* never inside the start call */
    run_until(&r, 5);
    CU_ASSERT_TRUE(r.done);
    CU_ASSERT_EQUAL(r.st, want);
    char expect[32];
    snprintf(expect, sizeof(expect), "HTTP %d: ok", code);
    CU_ASSERT_EQUAL(strncmp(r.out, expect, code == 204 ? 8 : strlen(expect)), 0); /* 204: no body */
}

static void test_http_codes(void)
{
    cat_prober *p = cat_prober_new(loop);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    http_case(p, 200, CAT_PASSING);
    http_case(p, 204, CAT_PASSING);
    http_case(p, 429, CAT_WARNING);
    http_case(p, 503, CAT_CRITICAL);
    http_case(p, 404, CAT_CRITICAL);
    http_case(p, 301, CAT_CRITICAL);
    cat_prober_delete(p);
}

static void test_http_timeout_and_refused(void)
{
    cat_prober *p = cat_prober_new(loop);
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, lport);
    answer = 0;
    result r = {0};
    ev_tstamp t0 = ev_time();
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 300, done_cb, &r, NULL), 0);
    run_until(&r, 5);
    CU_ASSERT_TRUE(r.done);
    CU_ASSERT_EQUAL(r.st, CAT_CRITICAL);
    CU_ASSERT(r.at - t0 >= 0.25 && r.at - t0 < 2.0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "timeout"));

    /* a port nobody listens on */
    uint16_t dead;
    int fd = listen_on(&dead);
    close(fd);
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, dead);
    result r2 = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 2000, done_cb, &r2, NULL), 0);
    run_until(&r2, 5);
    CU_ASSERT_TRUE(r2.done);
    CU_ASSERT_EQUAL(r2.st, CAT_CRITICAL);

    CU_ASSERT_EQUAL(cat_probe_http(p, "ftp://x/", 100, done_cb, &r2, NULL), -EINVAL);
    cat_prober_delete(p);
}

static void test_cancel_and_many(void)
{
    cat_prober *p = cat_prober_new(loop);
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, lport);
    answer = 200;
    result r[20];
    memset(r, 0, sizeof(r));
    cat_probe *pr[20];
    for (int i = 0; i < 20; i++)
        CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 2000, done_cb, &r[i], &pr[i]), 0);
    for (int i = 0; i < 20; i += 2)
        cat_probe_cancel(pr[i]);
    ev_tstamp end = ev_time() + 5;
    int got = 0;
    while (ev_time() < end && got < 10) {
        ev_run(loop, EVRUN_ONCE);
        got = 0;
        for (int i = 1; i < 20; i += 2)
            got += r[i].done;
    }
    for (int i = 0; i < 20; i++) {
        if (i % 2) {
            CU_ASSERT_TRUE(r[i].done && r[i].st == CAT_PASSING);
        } else {
            CU_ASSERT_FALSE(r[i].done);
        }
    }
    /* deleting with probes in flight runs no callback */
    answer = 0;
    result late = {0};
    CU_ASSERT_EQUAL(cat_probe_http(p, url, 2000, done_cb, &late, NULL), 0);
    for (int i = 0; i < 5; i++)
        ev_run(loop, EVRUN_NOWAIT);
    cat_prober_delete(p);
    CU_ASSERT_FALSE(late.done);
}

static void test_tcp(void)
{
    cat_prober *p = cat_prober_new(loop);
    result r = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_tcp(p, HOST, lport, 1000, done_cb, &r, NULL), 0);
    run_until(&r, 3);
    CU_ASSERT_TRUE(r.done);
    CU_ASSERT_EQUAL(r.st, CAT_PASSING);
    uint16_t dead;
    int fd = listen_on(&dead);
    close(fd);
    result r2 = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_tcp(p, HOST, dead, 1000, done_cb, &r2, NULL), 0);
    run_until(&r2, 3);
    CU_ASSERT_TRUE(r2.done);
    CU_ASSERT_EQUAL(r2.st, CAT_CRITICAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(r2.out, "refused"));
    CU_ASSERT_EQUAL(cat_probe_tcp(p, "not-an-ip", 80, 1000, done_cb, &r2, NULL), -EINVAL);
    cat_prober_delete(p);
}

static char helper[PATH_MAX];
static char tmpdir[64];

static bool alive(int pid)
{
    return pid > 0 && kill(pid, 0) == 0;
}

/* Runs the loop until the prober has a helper running (or 3 s). */
static int wait_helper(struct ev_loop *l, cat_prober *p)
{
    ev_tstamp end = ev_time() + 3;
    while (!cat_prober_helper_pid(p) && ev_time() < end)
        ev_run(l, EVRUN_NOWAIT);
    return cat_prober_helper_pid(p);
}

static void test_helper_killed(void)
{
    cat_prober *p = cat_prober_new(loop);
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, lport);
    answer = 0;
    result r = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 5000, done_cb, &r, NULL), 0);
    int pid = wait_helper(loop, p);
    CU_ASSERT_FATAL(pid > 0);
    for (int i = 0; i < 20; i++)
        ev_run(loop, EVRUN_NOWAIT); /* the request reaches the server */
    ev_tstamp t0 = ev_time();
    kill(pid, SIGKILL);
    run_until(&r, 3);
    CU_ASSERT_TRUE(r.done);
    CU_ASSERT_EQUAL(r.st, CAT_CRITICAL);
    CU_ASSERT_STRING_EQUAL(r.out, "http helper exited: signal 9");
    CU_ASSERT(r.at - t0 < 1.0);
    CU_ASSERT_FALSE(alive(pid)); /* reaped, not a zombie */
    /* the next probe starts a new helper and passes */
    answer = 200;
    result r2 = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 2000, done_cb, &r2, NULL), 0);
    run_until(&r2, 5);
    CU_ASSERT_EQUAL(r2.st, CAT_PASSING);
    CU_ASSERT_STRING_EQUAL(r2.out, "HTTP 200: ok");
    int pid2 = cat_prober_helper_pid(p);
    CU_ASSERT(pid2 > 0 && pid2 != pid);
    cat_prober_stats st;
    cat_prober_get_stats(p, &st);
    CU_ASSERT_EQUAL(st.helper_starts, 2);
    CU_ASSERT_EQUAL(st.helper_exits, 1);
    cat_prober_delete(p);
    CU_ASSERT_FALSE(alive(pid2)); /* exits at EOF and is reaped by delete */
}

/* The agent's loop is libev's default loop, where libev reaps children
 * itself: the helper's status must still be known. The probe hangs in a
 * listen backlog nobody accepts from. */
static void test_helper_killed_default_loop(void)
{
    struct ev_loop *dl = ev_default_loop(EVFLAG_AUTO);
    uint16_t bport;
    int bfd = listen_on(&bport);
    CU_ASSERT_FATAL(bfd >= 0);
    cat_prober *p = cat_prober_new(dl);
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, bport);
    result r = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 5000, done_cb, &r, NULL), 0);
    int pid = wait_helper(dl, p);
    CU_ASSERT_FATAL(pid > 0);
    kill(pid, SIGKILL);
    ev_tstamp end = ev_time() + 3;
    while (!r.done && ev_time() < end)
        ev_run(dl, EVRUN_ONCE);
    CU_ASSERT_STRING_EQUAL(r.out, "http helper exited: signal 9");
    CU_ASSERT_FALSE(alive(pid));
    close(bfd);
    /* a new helper answers: the port is closed now */
    result r2 = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 2000, done_cb, &r2, NULL), 0);
    end = ev_time() + 5;
    while (!r2.done && ev_time() < end)
        ev_run(dl, EVRUN_ONCE);
    CU_ASSERT_EQUAL(r2.st, CAT_CRITICAL);
    CU_ASSERT_PTR_NULL(strstr(r2.out, "http helper"));
    cat_prober_delete(p);
}

static void test_helper_missing(void)
{
    setenv("HMS_HTTP_HELPER", "/nonexistent/hms-http", 1);
    cat_prober *p = cat_prober_new(loop);
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, lport);
    answer = 200;
    result r = {0}, r2 = {0}, r3 = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 1000, done_cb, &r, NULL), 0);
    CU_ASSERT_FALSE(r.done);
    run_until(&r, 2);
    CU_ASSERT_EQUAL(r.st, CAT_CRITICAL);
    CU_ASSERT_STRING_EQUAL(r.out, "cannot start '/nonexistent/hms-http': No such file or directory");
    /* within the back-off: the same answer, no new attempt */
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 1000, done_cb, &r2, NULL), 0);
    run_until(&r2, 2);
    CU_ASSERT_STRING_EQUAL(r2.out, r.out);
    cat_prober_stats st;
    cat_prober_get_stats(p, &st);
    CU_ASSERT_EQUAL(st.helper_start_failures, 1);
    CU_ASSERT_EQUAL(st.helper_starts, 0);
    /* the helper is back: after the back-off the check passes */
    setenv("HMS_HTTP_HELPER", helper, 1);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ev_now_update(loop);
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 1000, done_cb, &r3, NULL), 0);
    run_until(&r3, 3);
    CU_ASSERT_EQUAL(r3.st, CAT_PASSING);
    cat_prober_delete(p);
}

/* A fake helper from a shell script. */
static void fake_helper(const char *name, const char *body, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(path, 0700);
}

static void test_helper_malformed_and_stuck(void)
{
    char path[PATH_MAX];
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, lport);
    /* a 1-byte payload that is not a map */
    fake_helper("garbage", "printf '\\000\\000\\000\\001\\301'; exec sleep 10", path, sizeof(path));
    setenv("HMS_HTTP_HELPER", path, 1);
    cat_prober *p = cat_prober_new(loop);
    result r = {0};
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 1000, done_cb, &r, NULL), 0);
    int pid = wait_helper(loop, p);
    run_until(&r, 3);
    CU_ASSERT_EQUAL(r.st, CAT_CRITICAL);
    CU_ASSERT_STRING_EQUAL(r.out, "http helper sent a malformed frame");
    cat_prober_stats st;
    cat_prober_get_stats(p, &st);
    CU_ASSERT_EQUAL(st.malformed, 1);
    CU_ASSERT_FALSE(alive(pid)); /* killed and reaped */
    cat_prober_delete(p);

    /* a helper that never answers: the guard fires 2 s past the timeout */
    fake_helper("mute", "exec sleep 30", path, sizeof(path));
    setenv("HMS_HTTP_HELPER", path, 1);
    p = cat_prober_new(loop);
    result r2 = {0};
    ev_tstamp t0 = ev_time();
    CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 100, done_cb, &r2, NULL), 0);
    pid = wait_helper(loop, p);
    run_until(&r2, 5);
    CU_ASSERT_EQUAL(r2.st, CAT_CRITICAL);
    CU_ASSERT_STRING_EQUAL(r2.out, "timeout after 100 ms: http helper did not answer");
    CU_ASSERT(r2.at - t0 > 2.0 && r2.at - t0 < 3.0);
    for (int i = 0; i < 500 && alive(pid); i++) {
        ev_run(loop, EVRUN_NOWAIT); /* the reap timer */
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    CU_ASSERT_FALSE(alive(pid));
    cat_prober_get_stats(p, &st);
    CU_ASSERT_EQUAL(st.helper_stuck, 1);
    cat_prober_delete(p);
    setenv("HMS_HTTP_HELPER", helper, 1);
}

/* Many probes at once through one helper, each answered once. */
static void test_burst(void)
{
    cat_prober *p = cat_prober_new(loop);
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, lport);
    answer = 200;
    enum { N = 60 };
    static result r[N];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(cat_probe_http(p, url, 4000, done_cb, &r[i], NULL), 0);
    ev_tstamp end = ev_time() + 8;
    int got = 0;
    while (got < N && ev_time() < end) {
        ev_run(loop, EVRUN_ONCE);
        got = 0;
        for (int i = 0; i < N; i++)
            got += r[i].done;
    }
    CU_ASSERT_EQUAL(got, N);
    int pass = 0;
    for (int i = 0; i < N; i++)
        pass += r[i].st == CAT_PASSING;
    CU_ASSERT_EQUAL(pass, N);
    cat_prober_stats st;
    cat_prober_get_stats(p, &st);
    CU_ASSERT_EQUAL(st.helper_starts, 1);
    cat_prober_delete(p);
}

int main(void)
{
    if (!getenv("HMS_HTTP_HELPER")) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
            return 1;
        self[n] = '\0';
        snprintf(helper, sizeof(helper), "%s/hms-http", dirname(self));
        setenv("HMS_HTTP_HELPER", helper, 1);
    } else {
        snprintf(helper, sizeof(helper), "%s", getenv("HMS_HTTP_HELPER"));
    }
    if (access(helper, X_OK) != 0) {
        fprintf(stderr, "error: no helper at '%s': build the hms-http target\n", helper);
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hms-probe.XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    signal(SIGPIPE, SIG_IGN);
    loop = ev_loop_new(EVFLAG_AUTO);
    lfd = listen_on(&lport);
    if (lfd < 0) {
        perror("listen on " HOST);
        return 1;
    }
    ev_io lio;
    ev_io_init(&lio, accept_cb, lfd, EV_READ);
    ev_io_start(loop, &lio);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("catalog probes", NULL, NULL);
    CU_add_test(s, "http codes", test_http_codes);
    CU_add_test(s, "http timeout and refused", test_http_timeout_and_refused);
    CU_add_test(s, "cancel and many", test_cancel_and_many);
    CU_add_test(s, "tcp", test_tcp);
    CU_add_test(s, "helper killed", test_helper_killed);
    CU_add_test(s, "helper killed, default loop", test_helper_killed_default_loop);
    CU_add_test(s, "helper missing", test_helper_missing);
    CU_add_test(s, "helper malformed and stuck", test_helper_malformed_and_stuck);
    CU_add_test(s, "burst", test_burst);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    ev_io_stop(loop, &lio);
    close(lfd);
    for (int i = 0; i < nconns; i++) {
        if (conns[i]->io.fd >= 0) {
            ev_io_stop(loop, &conns[i]->io);
            close(conns[i]->io.fd);
        }
        free(conns[i]);
    }
    ev_loop_destroy(loop);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/garbage", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/mute", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return failed ? 1 : 0;
}
