/*
 * Lookup latency and throughput through the agent's Unix socket, against a
 * raw Unix-socket round trip measured by the same program with the same
 * framing and the same reply size (an echo server on a thread here).
 *
 *   bench_lookup [--socket PATH] [--count N] [--pipeline W] [--instances K]
 *
 * Without --socket (as scripts/bench runs it) it starts its own agent from
 * the hms-agent and hmsctl next to it, with a fresh CA, on 127.0.44.250,
 * and stops it at the end.
 *
 * Registers K instances of "bench-svc" on the agent (removed at the end),
 * then measures:
 *   - sequential lookups: one request, wait for its reply; p50/p99/mean;
 *   - pipelined lookups on one connection: W requests in flight;
 *   - raw round trips: the same frames to an echo server that answers with
 *     a reply of the agent's reply size; p50/p99 and pipelined rate.
 * Prints one line per figure and a summary; exit 0 unless something failed.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "libclient/hms.h"
#include "libclient/hms_catalog.h"
#include "proto/api.h"
#include "tests/bench/bench_util.h"

static double now_us(void)
{
    return bench_now_s() * 1e6;
}

/* ---- echo server --------------------------------------------------------- */

typedef struct echo {
    char path[108];
    int lfd;
    uint8_t *reply; /* whole frame to send for each request */
    size_t reply_len;
} echo;

static void *echo_main(void *arg)
{
    echo *e = arg;
    int fd = accept(e->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    uint8_t *buf = malloc(1 << 20);
    while (bench_read_frame(fd, buf, 1 << 20) >= 0)
        if (bench_write_all(fd, e->reply, e->reply_len))
            break;
    free(buf);
    close(fd);
    return NULL;
}

/* ---- measurement --------------------------------------------------------- */

typedef struct figures {
    double p50, p99, mean, rate;
} figures;

/* Sequential round trips of frame on fd, then pipelined with window w. */
static int measure(int fd, const uint8_t *frame, size_t flen, int count, int w, figures *f)
{
    uint8_t *buf = malloc(HMS_API_REPLY_MAX < (8u << 20) ? HMS_API_REPLY_MAX : (8u << 20));
    double *lat = calloc((size_t)count, sizeof(double));
    if (!buf || !lat)
        return -1;
    size_t cap = 8u << 20;
    for (int i = 0; i < 200; i++) { /* warm up */
        if (bench_write_all(fd, frame, flen) || bench_read_frame(fd, buf, cap) < 0)
            return -1;
    }
    double sum = 0;
    for (int i = 0; i < count; i++) {
        double t0 = now_us();
        if (bench_write_all(fd, frame, flen) || bench_read_frame(fd, buf, cap) < 0)
            return -1;
        lat[i] = now_us() - t0;
        sum += lat[i];
    }
    qsort(lat, (size_t)count, sizeof(double), bench_cmp_double);
    f->p50 = lat[count / 2];
    f->p99 = lat[(size_t)(count * 0.99)];
    f->mean = sum / count;
    /* pipelined: w frames written at once, then w replies read */
    uint8_t *batch = malloc(flen * (size_t)w);
    for (int i = 0; i < w; i++)
        memcpy(batch + (size_t)i * flen, frame, flen);
    int total = count * 5 / w * w;
    if (total < w)
        total = w;
    double t0 = now_us();
    for (int done = 0; done < total; done += w) {
        if (bench_write_all(fd, batch, flen * (size_t)w))
            return -1;
        for (int i = 0; i < w; i++)
            if (bench_read_frame(fd, buf, cap) < 0)
                return -1;
    }
    f->rate = total / ((now_us() - t0) / 1e6);
    free(batch);
    free(buf);
    free(lat);
    return 0;
}

/* ---- own agent ----------------------------------------------------------- */

static bench_agents own;
static pid_t own_pid = -1;

static void own_stop(void)
{
    if (own_pid > 0) {
        kill(own_pid, SIGTERM);
        waitpid(own_pid, NULL, 0);
        own_pid = -1;
    }
    bench_agents_clean(&own);
}

/* Starts hms-agent from the folder of argv0; fills sock. 0 or -1. */
static int own_start(const char *argv0, char *sock, size_t cap)
{
    if (bench_agents_init(&own, argv0, "/tmp/bench-lookup", "b1"))
        return -1;
    own_pid = bench_agent_start(&own, "b1", "127.0.44.250:7962", NULL, NULL, sock, cap);
    if (own_pid < 0)
        return -1;
    if (bench_wait_socket(sock, 10)) {
        fprintf(stderr, "error: the agent did not start (see %s/b1.log)\n", own.dir);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, 0, 's'},
                                         {"count", required_argument, 0, 'n'},
                                         {"pipeline", required_argument, 0, 'w'},
                                         {"instances", required_argument, 0, 'k'},
                                         {0, 0, 0, 0}};
    const char *sock = getenv("HMS_SOCKET");
    int count = 20000, w = 64, k = 3, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': sock = optarg; break;
        case 'n': count = atoi(optarg); break;
        case 'w': w = atoi(optarg); break;
        case 'k': k = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bench_lookup [--socket PATH] [--count N] [--pipeline W] [--instances K]\n");
            return 2;
        }
    }
    if (count < 100 || w < 1 || w > 1024 || k < 1 || k > 60) {
        fprintf(stderr, "error: count >= 100, pipeline 1-1024, instances 1-60\n");
        return 2;
    }
    char own_sock[128];
    if (!sock) {
        atexit(own_stop);
        if (own_start(argv[0], own_sock, sizeof(own_sock)))
            return 1;
        sock = own_sock;
        printf("own agent on 127.0.44.250, socket %s\n", sock);
    }

    /* register the instances through libclient */
    hms_client *c;
    int rc = hms_connect(sock, &c);
    if (rc) {
        fprintf(stderr, "error: cannot reach the agent at '%s': %s\n", sock, hms_strerror(rc));
        return 1;
    }
    char ids[60][32];
    for (int i = 0; i < k; i++) {
        snprintf(ids[i], sizeof(ids[i]), "bench-svc-%d", i);
        const char *tags[] = {"bench", "v1"};
        hms_service_def d = {.name = "bench-svc", .id = ids[i], .port = (uint16_t)(20000 + i),
                             .tags = tags, .ntags = 2};
        if ((rc = hms_register(c, &d, NULL, 0))) {
            fprintf(stderr, "error: register failed: %s %s\n", hms_strerror(rc), hms_last_error(c));
            return 1;
        }
    }

    /* the lookup request frame */
    msgpack_sbuffer args, req;
    msgpack_sbuffer_init(&args);
    msgpack_sbuffer_init(&req);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "name", 4);
    msgpack_pack_str(&pk, 9);
    msgpack_pack_str_body(&pk, "bench-svc", 9);
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "tags", 4);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str(&pk, 5);
    msgpack_pack_str_body(&pk, "bench", 5);
    hms_api_encode_request(&req, 1, "lookup", args.data, args.size);

    int fd = bench_connect_unix(sock);
    if (fd < 0) {
        perror("connect");
        return 1;
    }
    /* one lookup to learn the reply size and check the answer */
    uint8_t *rbuf = malloc(1 << 20);
    long rlen;
    if (bench_write_all(fd, req.data, req.size) || (rlen = bench_read_frame(fd, rbuf, 1 << 20)) < 0) {
        fprintf(stderr, "error: lookup failed\n");
        return 1;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    hms_api_reply rp;
    if (hms_api_decode_reply(&u, rbuf, (size_t)rlen, &rp) || !rp.ok || !rp.result ||
        rp.result->type != MSGPACK_OBJECT_ARRAY || rp.result->via.array.size != (uint32_t)k) {
        fprintf(stderr, "error: the lookup did not return the %d instances\n", k);
        return 1;
    }
    msgpack_unpacked_destroy(&u);

    figures ag, raw;
    if (measure(fd, (const uint8_t *)req.data, req.size, count, w, &ag)) {
        fprintf(stderr, "error: agent measurement failed\n");
        return 1;
    }
    close(fd);

    /* raw: echo server answering with a frame of the agent's reply size */
    echo e;
    snprintf(e.path, sizeof(e.path), "/tmp/bench-echo-%d.sock", (int)getpid());
    unlink(e.path);
    e.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e.path);
    if (bind(e.lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(e.lfd, 1)) {
        perror("echo socket");
        return 1;
    }
    e.reply_len = 4 + (size_t)rlen;
    e.reply = malloc(e.reply_len);
    hms_api_put_len(e.reply, (uint32_t)rlen);
    memcpy(e.reply + 4, rbuf, (size_t)rlen);
    pthread_t th;
    pthread_create(&th, NULL, echo_main, &e);
    int efd = bench_connect_unix(e.path);
    if (efd < 0 || measure(efd, (const uint8_t *)req.data, req.size, count, w, &raw)) {
        fprintf(stderr, "error: raw measurement failed\n");
        return 1;
    }
    close(efd);
    pthread_join(th, NULL);
    close(e.lfd);
    unlink(e.path);

    for (int i = 0; i < k; i++)
        hms_deregister(c, ids[i]);
    hms_close(c);

    printf("reply size                 %ld bytes (%d instances)\n", rlen, k);
    printf("lookup latency             p50 %.1f us  p99 %.1f us  mean %.1f us  (%d sequential)\n",
           ag.p50, ag.p99, ag.mean, count);
    printf("raw unix round trip        p50 %.1f us  p99 %.1f us  mean %.1f us\n", raw.p50, raw.p99,
           raw.mean);
    printf("lookup p50 / raw p50       %.2fx\n", ag.p50 / raw.p50);
    printf("pipelined lookups          %.0f /s  (window %d, one connection)\n", ag.rate, w);
    printf("pipelined raw round trips  %.0f /s\n", raw.rate);
    free(rbuf);
    free(e.reply);
    msgpack_sbuffer_destroy(&args);
    msgpack_sbuffer_destroy(&req);
    return 0;
}
