/*
 * Latency of one HTTP health check as the agent runs it: cat_probe_http()
 * on a libev loop to a local HTTP server (a thread answering "200 ok" and
 * closing, as a small health endpoint does), one probe at a time, from the
 * call to the done callback. Then a burst of W probes in flight at once.
 *
 *   bench_httpcheck [--count N] [--burst W]
 *
 * Binds 127.0.52.250. With the hms-http helper (the default build), the
 * helper is found as the agent finds it ($HMS_HTTP_HELPER, else next to
 * this program); the first probe, which starts it, is timed apart.
 * Prints p50/p90/p99/mean in microseconds; exit 0 unless a probe failed.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/catalog/probe.h"

#define HOST "127.0.52.250"

static int lfd = -1;

static void *server(void *arg)
{
    char buf[2048];
    static const char resp[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
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
        if (write(fd, resp, sizeof(resp) - 1) < 0)
            perror("write");
        close(fd);
    }
}

typedef struct res {
    int done;
    cat_status st;
    char out[CAT_PROBE_OUTPUT_MAX + 1];
} res;

static void done_cb(void *ctx, cat_status st, const char *output)
{
    res *r = ctx;
    r->done = 1;
    r->st = st;
    snprintf(r->out, sizeof(r->out), "%s", output);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int count = 1000, burst = 100, c;
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'}, {"burst", required_argument, NULL, 'w'}, {0}};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'n')
            count = atoi(optarg);
        else if (c == 'w')
            burst = atoi(optarg);
        else
            return 2;
    }
    if (count < 1 || burst < 1 || burst > CAT_PROBES_MAX) {
        fprintf(stderr, "error: bad --count or --burst\n");
        return 2;
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
        perror("error: cannot listen on " HOST);
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, server, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, ntohs(sa.sin_port));

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    cat_prober *p = cat_prober_new(loop);
    double *lat = calloc((size_t)count, sizeof(double));
    if (!p || !lat)
        return 1;
    int bad = 0;
    double first = 0;
    for (int i = -1; i < count; i++) {
        res r = {0};
        double t0 = ev_time();
        if (cat_probe_http(p, url, 2000, done_cb, &r, NULL) != 0)
            return 1;
        while (!r.done)
            ev_run(loop, EVRUN_ONCE);
        double us = (ev_time() - t0) * 1e6;
        if (r.st != CAT_PASSING) {
            if (bad++ < 3)
                fprintf(stderr, "error: probe %d: %s\n", i, r.out);
        }
        if (i < 0)
            first = us;
        else
            lat[i] = us;
    }
    qsort(lat, (size_t)count, sizeof(double), cmp_d);
    double sum = 0;
    for (int i = 0; i < count; i++)
        sum += lat[i];
    printf("httpcheck_first_us %.0f\n", first);
    printf("httpcheck_p50_us %.0f\nhttpcheck_p90_us %.0f\nhttpcheck_p99_us %.0f\n"
           "httpcheck_mean_us %.0f\n",
           lat[count / 2], lat[count * 9 / 10], lat[count * 99 / 100], sum / count);

    res *rb = calloc((size_t)burst, sizeof(res));
    double t0 = ev_time();
    for (int i = 0; i < burst; i++)
        if (cat_probe_http(p, url, 5000, done_cb, &rb[i], NULL) != 0)
            return 1;
    for (int left = burst; left > 0;) {
        ev_run(loop, EVRUN_ONCE);
        left = 0;
        for (int i = 0; i < burst; i++)
            left += !rb[i].done;
    }
    double ms = (ev_time() - t0) * 1e3;
    for (int i = 0; i < burst; i++)
        bad += rb[i].st != CAT_PASSING;
    printf("httpcheck_burst%d_ms %.1f\n", burst, ms);
    printf("httpcheck_failed %d\n", bad);
    cat_prober_delete(p);
    free(rb);
    free(lat);
    ev_loop_destroy(loop);
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(th, NULL);
    return bad ? 1 : 0;
}
