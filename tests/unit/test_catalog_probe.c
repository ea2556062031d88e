/*
 * Health probes against real sockets on loopback: a small HTTP server on the
 * same libev loop answers with a chosen status (or never answers), and the
 * HTTP probe (libcurl multi-socket on libev) and the TCP probe must turn
 * each case into the right result within the timeout.
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

#include <curl/curl.h>

#include "agent/catalog/probe.h"

#define HOST "127.0.44.201"

static struct ev_loop *loop;
static int lfd = -1;
static uint16_t lport;
static int answer = 200; /* 0: accept and never answer */

typedef struct conn {
    ev_io io;
    char buf[2048];
    size_t n;
} conn;

static conn *conns[64];
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
    if (nconns >= 64) {
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

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
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
    curl_global_cleanup();
    return failed ? 1 : 0;
}
