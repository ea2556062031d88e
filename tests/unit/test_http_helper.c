/*
 * The hms-http program on its own, as the agent drives it: started with a
 * socketpair as stdin and stdout, fed request frames, read for response
 * frames. A small HTTP server on threads answers by path: /ok (200 "ok"),
 * /teapot (418), /hang (never answers), /stream (200 with a body that does
 * not end). Checks the answers, pipelining, end of input (exit 0) and a
 * malformed request (exit 2).
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/httpframe.h"

#define HOST "127.0.52.201"

static char helper[PATH_MAX];
static int lfd = -1;
static uint16_t lport;

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[2048];
    size_t n = 0;
    while (n < sizeof(buf) - 1) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    buf[n] = '\0';
    const char *resp = NULL;
    if (strstr(buf, " /ok "))
        resp = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nok\r\nmore\n";
    else if (strstr(buf, " /teapot "))
        resp = "HTTP/1.1 418 X\r\nContent-Length: 6\r\nConnection: close\r\n\r\nt\x01\xffpo\n";
    if (resp) {
        if (write(fd, resp, strlen(resp)) < 0)
            perror("write");
    } else if (strstr(buf, " /stream ")) {
        static const char h[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
        char chunk[4096];
        memset(chunk, 'y', sizeof(chunk));
        if (write(fd, h, sizeof(h) - 1) > 0)
            for (int i = 0; i < 2560; i++) /* 10 MiB at most */
                if (write(fd, chunk, sizeof(chunk)) <= 0)
                    break;
    } else {
        /* /hang: hold the connection until the client gives up */
        while (read(fd, buf, sizeof(buf)) > 0)
            ;
    }
    close(fd);
    return NULL;
}

static void *server_main(void *arg)
{
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

typedef struct proc {
    pid_t pid;
    int fd;
    uint8_t in[8 * (HMS_HTTPFRAME_HDR + HMS_HTTPFRAME_MAX)];
    size_t inlen;
} proc;

static int spawn(proc *h)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    h->pid = fork();
    if (h->pid == 0) {
        dup2(sv[1], 0);
        dup2(sv[1], 1);
        execl(helper, "hms-http", (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    h->fd = sv[0];
    h->inlen = 0;
    return h->pid > 0 ? 0 : -1;
}

static void send_req(proc *h, uint32_t id, const char *path, uint32_t timeout_ms, const char *method)
{
    hms_http_req q;
    memset(&q, 0, sizeof(q));
    q.id = id;
    q.timeout_ms = timeout_ms;
    snprintf(q.url, sizeof(q.url), "http://%s:%u%s", HOST, lport, path);
    if (method)
        snprintf(q.method, sizeof(q.method), "%s", method);
    uint8_t f[HMS_HTTPFRAME_HDR + HMS_HTTPFRAME_MAX];
    size_t n;
    CU_ASSERT_EQUAL_FATAL(hms_http_req_encode(&q, f, sizeof(f), &n), 0);
    CU_ASSERT_EQUAL(write(h->fd, f, n), (ssize_t)n);
}

/* Next response within max_ms: 0, or -ETIMEDOUT, -EPIPE (end of stream),
 * -EINVAL (malformed). */
static int recv_resp(proc *h, hms_http_resp *r, int max_ms)
{
    for (;;) {
        const uint8_t *pl;
        size_t plen, used;
        int rc = hms_httpframe_next(h->in, h->inlen, &pl, &plen, &used);
        if (rc == 0) {
            rc = hms_http_resp_decode(pl, plen, r);
            memmove(h->in, h->in + used, h->inlen - used);
            h->inlen -= used;
            return rc;
        }
        if (rc != -EAGAIN)
            return -EINVAL;
        struct pollfd pf = {.fd = h->fd, .events = POLLIN};
        if (poll(&pf, 1, max_ms) <= 0)
            return -ETIMEDOUT;
        ssize_t n = read(h->fd, h->in + h->inlen, sizeof(h->in) - h->inlen);
        if (n <= 0)
            return -EPIPE;
        h->inlen += (size_t)n;
    }
}

/* Exit status of the helper within max_ms, -1 if still running (then killed). */
static int wait_exit(proc *h, int max_ms)
{
    for (int i = 0; i < max_ms; i++) {
        int st;
        if (waitpid(h->pid, &st, WNOHANG) == h->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    return -1;
}

static void test_answers(void)
{
    proc h;
    CU_ASSERT_EQUAL_FATAL(spawn(&h), 0);
    hms_http_resp r;
    send_req(&h, 1, "/ok", 2000, NULL);
    CU_ASSERT_EQUAL_FATAL(recv_resp(&h, &r, 5000), 0);
    CU_ASSERT_EQUAL(r.id, 1);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.line, "ok"); /* the first line only */
    CU_ASSERT_STRING_EQUAL(r.error, "");

    send_req(&h, 2, "/teapot", 2000, NULL);
    CU_ASSERT_EQUAL_FATAL(recv_resp(&h, &r, 5000), 0);
    CU_ASSERT_EQUAL(r.status, 418);
    CU_ASSERT_STRING_EQUAL(r.line, "t??po"); /* non-printable bytes replaced */

    send_req(&h, 3, "/ok", 2000, "HEAD");
    CU_ASSERT_EQUAL_FATAL(recv_resp(&h, &r, 5000), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.line, "");

    /* a body that never ends: read up to the bound, the status counts */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    send_req(&h, 4, "/stream", 5000, NULL);
    CU_ASSERT_EQUAL_FATAL(recv_resp(&h, &r, 6000), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(strncmp(r.line, "yyyy", 4), 0);
    CU_ASSERT(t1.tv_sec - t0.tv_sec < 3);

    send_req(&h, 5, "/hang", 300, NULL);
    CU_ASSERT_EQUAL_FATAL(recv_resp(&h, &r, 3000), 0);
    CU_ASSERT_EQUAL(r.id, 5);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_STRING_EQUAL(r.error, "timeout after 300 ms");

    /* nobody listening */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, HOST, &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    hms_http_req q;
    memset(&q, 0, sizeof(q));
    q.id = 6;
    q.timeout_ms = 2000;
    snprintf(q.url, sizeof(q.url), "http://%s:%u/", HOST, ntohs(sa.sin_port));
    uint8_t f[HMS_HTTPFRAME_HDR + HMS_HTTPFRAME_MAX];
    size_t n;
    CU_ASSERT_EQUAL_FATAL(hms_http_req_encode(&q, f, sizeof(f), &n), 0);
    CU_ASSERT_EQUAL(write(h.fd, f, n), (ssize_t)n);
    CU_ASSERT_EQUAL_FATAL(recv_resp(&h, &r, 5000), 0);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT(strlen(r.error) > 0);

    /* end of input: exit 0 */
    close(h.fd);
    CU_ASSERT_EQUAL(wait_exit(&h, 2000), 0);
}

/* Requests written in one go, one of them slow: every id answered once,
 * the fast ones without waiting for the slow one. */
static void test_pipelined(void)
{
    proc h;
    CU_ASSERT_EQUAL_FATAL(spawn(&h), 0);
    enum { N = 200 };
    static int seen[N + 1];
    memset(seen, 0, sizeof(seen));
    send_req(&h, N, "/hang", 1500, NULL);
    for (uint32_t i = 0; i < N; i++)
        send_req(&h, i, "/ok", 5000, NULL);
    hms_http_resp r;
    int ok = 0;
    for (int i = 0; i <= N; i++) {
        if (recv_resp(&h, &r, 6000) != 0)
            break;
        CU_ASSERT(r.id <= N);
        if (r.id <= N)
            seen[r.id]++;
        if (i < N)
            CU_ASSERT_NOT_EQUAL(r.id, N); /* the slow one comes last */
        ok += r.status == 200;
    }
    CU_ASSERT_EQUAL(ok, N);
    for (int i = 0; i <= N; i++)
        CU_ASSERT_EQUAL(seen[i], 1);
    close(h.fd);
    CU_ASSERT_EQUAL(wait_exit(&h, 2000), 0);
}

static void test_malformed(void)
{
    proc h;
    CU_ASSERT_EQUAL_FATAL(spawn(&h), 0);
    const uint8_t bad[] = {0, 0, 0, 1, 0xc1};
    CU_ASSERT_EQUAL(write(h.fd, bad, sizeof(bad)), (ssize_t)sizeof(bad));
    CU_ASSERT_EQUAL(wait_exit(&h, 2000), 2);
    close(h.fd);

    /* a length above the bound */
    CU_ASSERT_EQUAL_FATAL(spawn(&h), 0);
    const uint8_t big[] = {0, 1, 0, 0, 0x80};
    CU_ASSERT_EQUAL(write(h.fd, big, sizeof(big)), (ssize_t)sizeof(big));
    CU_ASSERT_EQUAL(wait_exit(&h, 2000), 2);
    close(h.fd);
}

int main(void)
{
    const char *env = getenv("HMS_HTTP_HELPER");
    if (env) {
        snprintf(helper, sizeof(helper), "%s", env);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
            return 1;
        self[n] = '\0';
        snprintf(helper, sizeof(helper), "%s/hms-http", dirname(self));
    }
    if (access(helper, X_OK) != 0) {
        fprintf(stderr, "error: no helper at '%s': build the hms-http target\n", helper);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, HOST, &sa.sin_addr);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t sl = sizeof(sa);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 256) ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
        perror("listen on " HOST);
        return 1;
    }
    lport = ntohs(sa.sin_port);
    pthread_t srv;
    pthread_create(&srv, NULL, server_main, NULL);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("hms-http", NULL, NULL);
    CU_add_test(s, "answers", test_answers);
    CU_add_test(s, "pipelined", test_pipelined);
    CU_add_test(s, "malformed", test_malformed);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(srv, NULL);
    return failed ? 1 : 0;
}
