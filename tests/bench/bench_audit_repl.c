/*
 * Audit replication lag and lookup latency while the log is syncing, on
 * five real agents (127.0.60.1-5, port 7950) started from the hms-agent and
 * hmsctl next to this program, with a fresh CA; all stopped at the end.
 *
 *   bench_audit_repl [--seconds S] [--rates R1,R2] [--count N]
 *
 * Replication lag: each agent gets pipelined "audit.append" requests on one
 * connection, paced in 10 ms ticks, for a cluster-wide total of each rate
 * (default 1000 then 10000 entries/s, 10 s each). Every 50 ms "audit.status"
 * is asked of every agent: a segment's seal time is when its origin first
 * shows it sealed, its replication time is when R agents other than the
 * origin (R = replicas_wanted) first show it held. Lag = the difference;
 * the 50 ms poll bounds the resolution.
 *
 * Lookup latency: sequential "lookup" round trips on n1, idle, then while a
 * second connection drives durable appends (window 64) at full speed.
 * Prints one line per figure; exit 0 unless something failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>

#include "libclient/hms.h"
#include "libclient/hms_audit.h"
#include "libclient/hms_catalog.h"
#include "proto/api.h"
#include "tests/bench/bench_util.h"

#define NAG 5
#define MAXSEG 4096

/* Reads one reply frame; 1 when ok, 0 when the agent refused, -1 on error. */
static int read_reply(int fd, uint8_t *buf, size_t cap)
{
    long len = bench_read_frame(fd, buf, cap);
    if (len < 0)
        return -1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    hms_api_reply rp;
    int r = hms_api_decode_reply(&u, buf, (size_t)len, &rp) ? -1 : rp.ok ? 1 : 0;
    msgpack_unpacked_destroy(&u);
    return r;
}

static void pack_s(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* One audit.append request frame (~200 bytes of fields) into out. */
static void append_frame(msgpack_sbuffer *out, bool durable)
{
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, durable ? 5 : 4);
    pack_s(&pk, "kind");
    pack_s(&pk, "bench.order");
    pack_s(&pk, "request_id");
    pack_s(&pk, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    pack_s(&pk, "actor");
    pack_s(&pk, "bench");
    pack_s(&pk, "fields");
    msgpack_pack_map(&pk, 3);
    pack_s(&pk, "order");
    msgpack_pack_uint64(&pk, 4711);
    pack_s(&pk, "customer");
    pack_s(&pk, "c-000123-example-customer");
    pack_s(&pk, "note");
    pack_s(&pk, "an order of three items to be shipped to the warehouse in the north");
    if (durable) {
        pack_s(&pk, "durable");
        msgpack_pack_true(&pk);
    }
    hms_api_encode_request(out, 1, "audit.append", args.data, args.size);
    msgpack_sbuffer_destroy(&args);
}

/* ---- agents -------------------------------------------------------------- */

static bench_agents ags;
static pid_t pids[NAG];
static char socks[NAG][128];

static void stop_all(void)
{
    for (int i = 0; i < NAG; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    for (int i = 0; i < NAG; i++)
        if (pids[i] > 0) {
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
    bench_agents_clean(&ags);
}

static int start_all(const char *argv0)
{
    if (bench_agents_init(&ags, argv0, "/tmp/bench-arepl", "n1,n2,n3,n4,n5"))
        return -1;
    for (int i = 0; i < NAG; i++) {
        char name[8], bind[32];
        snprintf(name, sizeof(name), "n%d", i + 1);
        snprintf(bind, sizeof(bind), "127.0.60.%d:7950", i + 1);
        pids[i] = bench_agent_start(&ags, name, bind, i ? "127.0.60.1:7950" : NULL, "local",
                                    socks[i], sizeof(socks[i]));
        if (pids[i] < 0)
            return -1;
        if (i == 0)
            usleep(300000); /* the seed listens before the others join */
    }
    /* converged: every agent sees five alive members */
    for (int t = 0; t < 300; t++) {
        int ok = 0;
        for (int i = 0; i < NAG; i++) {
            hms_client *c;
            if (hms_connect(socks[i], &c))
                continue;
            hms_member *m;
            size_t nm;
            if (hms_members(c, "alive", &m, &nm) == 0) {
                ok += nm == NAG;
                free(m);
            }
            hms_close(c);
        }
        if (ok == NAG)
            return 0;
        usleep(100000);
    }
    fprintf(stderr, "error: the five agents did not converge in 30 s (logs in %s)\n", ags.dir);
    return -1;
}

/* ---- load ---------------------------------------------------------------- */

typedef struct loader {
    pthread_t th;
    int fd;
    double rate;    /* entries/s for this agent; 0: full speed, window 64 */
    const msgpack_sbuffer *frame;
    atomic_bool *stop;
    uint64_t ok, refused;
    int failed;
} loader;

static void *load_main(void *arg)
{
    loader *l = arg;
    size_t flen = l->frame->size;
    int maxb = l->rate > 0 ? (int)(l->rate / 100) + 2 : 64;
    uint8_t *batch = malloc(flen * (size_t)maxb), *buf = malloc(1 << 16);
    for (int i = 0; i < maxb; i++)
        memcpy(batch + (size_t)i * flen, l->frame->data, flen);
    double t0 = bench_now_s(), sent = 0;
    while (!atomic_load(l->stop)) {
        int b = maxb;
        if (l->rate > 0) {
            double due = (bench_now_s() - t0) * l->rate - sent;
            b = due < 1 ? 0 : due > maxb ? maxb : (int)due;
            if (b == 0) {
                usleep(10000);
                continue;
            }
        }
        if (bench_write_all(l->fd, batch, flen * (size_t)b)) {
            l->failed = 1;
            break;
        }
        sent += b;
        for (int i = 0; i < b; i++) {
            int r = read_reply(l->fd, buf, 1 << 16);
            if (r < 0) {
                l->failed = 1;
                goto out;
            }
            if (r)
                l->ok++;
            else
                l->refused++;
        }
    }
out:
    free(batch);
    free(buf);
    return NULL;
}

/* ---- replication lag ----------------------------------------------------- */

static char keys[NAG][65];
static int replicas_wanted = 3;

static json_t *status_of(int i)
{
    hms_client *c;
    json_t *st = NULL;
    if (hms_connect(socks[i], &c))
        return NULL;
    if (hms_client_audit_status(c, &st))
        st = NULL;
    hms_close(c);
    return st;
}

/* Fills keys[] from each agent's own log. */
static int learn_keys(void)
{
    for (int i = 0; i < NAG; i++) {
        json_t *st = status_of(i);
        if (!st)
            return -1;
        json_t *logs = json_object_get(st, "logs"), *lg;
        size_t k;
        json_array_foreach(logs, k, lg) {
            if (json_is_true(json_object_get(lg, "own")))
                snprintf(keys[i], sizeof(keys[i]), "%s",
                         json_string_value(json_object_get(lg, "key")));
        }
        json_t *rw = json_object_get(st, "replicas_wanted");
        if (json_is_integer(rw))
            replicas_wanted = (int)json_integer_value(rw);
        json_decref(st);
        if (!keys[i][0])
            return -1;
    }
    return 0;
}

/* held[h][o]: the last sealed segment of origin o's log held by agent h (-1: none). */
static int poll_held(long held[NAG][NAG])
{
    for (int h = 0; h < NAG; h++) {
        for (int o = 0; o < NAG; o++)
            held[h][o] = -1;
        json_t *st = status_of(h);
        if (!st)
            return -1;
        json_t *logs = json_object_get(st, "logs"), *lg;
        size_t k;
        json_array_foreach(logs, k, lg) {
            const char *key = json_string_value(json_object_get(lg, "key"));
            json_t *ls = json_object_get(lg, "last_sealed_segment");
            for (int o = 0; key && o < NAG; o++)
                if (!strcmp(key, keys[o]) && json_is_integer(ls))
                    held[h][o] = (long)json_integer_value(ls);
        }
        json_decref(st);
    }
    return 0;
}

static double sealed_at[NAG][MAXSEG], repl_at[NAG][MAXSEG];

static int run_rate(double rate, double secs)
{
    long held[NAG][NAG], base[NAG];
    if (poll_held(held))
        return -1;
    for (int o = 0; o < NAG; o++) {
        base[o] = held[o][o]; /* segments sealed before this phase are not counted */
        for (int s = 0; s < MAXSEG; s++)
            sealed_at[o][s] = repl_at[o][s] = 0;
    }
    msgpack_sbuffer frame;
    msgpack_sbuffer_init(&frame);
    append_frame(&frame, false);
    atomic_bool stop = false;
    loader ld[NAG];
    for (int i = 0; i < NAG; i++) {
        ld[i] = (loader){.fd = bench_connect_unix(socks[i]), .rate = rate / NAG, .frame = &frame,
                         .stop = &stop};
        if (ld[i].fd < 0)
            return -1;
        pthread_create(&ld[i].th, NULL, load_main, &ld[i]);
    }
    double t0 = bench_now_s(), tend = t0 + secs, tstop = 0;
    for (;;) {
        double t = bench_now_s();
        if (!tstop && t >= tend) {
            atomic_store(&stop, true);
            for (int i = 0; i < NAG; i++)
                pthread_join(ld[i].th, NULL);
            tstop = bench_now_s();
        }
        if (tstop && t > tstop + 6)
            break;
        if (poll_held(held))
            return -1;
        double tp = bench_now_s();
        int pending = 0;
        for (int o = 0; o < NAG; o++) {
            for (long s = base[o] + 1; s <= held[o][o] && s < MAXSEG; s++)
                if (!sealed_at[o][s] && (!tstop || tp < tstop + 1.5))
                    sealed_at[o][s] = tp;
            for (long s = base[o] + 1; s < MAXSEG && sealed_at[o][s]; s++) {
                if (repl_at[o][s])
                    continue;
                int n = 0;
                for (int h = 0; h < NAG; h++)
                    n += h != o && held[h][o] >= s;
                if (n >= replicas_wanted)
                    repl_at[o][s] = tp;
                else
                    pending++;
            }
        }
        if (tstop && t > tstop + 1.5 && !pending)
            break;
        usleep(50000);
    }
    uint64_t ok = 0, refused = 0;
    int failed = 0;
    for (int i = 0; i < NAG; i++) {
        ok += ld[i].ok;
        refused += ld[i].refused;
        failed |= ld[i].failed;
        close(ld[i].fd);
    }
    msgpack_sbuffer_destroy(&frame);
    double lag[NAG * MAXSEG];
    size_t nl = 0, missing = 0;
    for (int o = 0; o < NAG; o++)
        for (int s = 0; s < MAXSEG; s++) {
            if (!sealed_at[o][s])
                continue;
            if (repl_at[o][s])
                lag[nl++] = (repl_at[o][s] - sealed_at[o][s]) * 1e3;
            else
                missing++;
        }
    qsort(lag, nl, sizeof(double), bench_cmp_double);
    printf("rate %6.0f/s target: appended %.0f/s (%llu ok, %llu refused%s), %zu segments sealed\n",
           rate, ok / (tstop - t0), (unsigned long long)ok, (unsigned long long)refused,
           failed ? ", connection failed" : "", nl + missing);
    if (nl)
        printf("  replication lag to %d replicas: p50 %.0f ms  p99 %.0f ms  max %.0f ms"
               "  (%zu not replicated within 6 s)\n",
               replicas_wanted, lag[nl / 2], lag[(size_t)(nl * 0.99)], lag[nl - 1], missing);
    else
        printf("  no segment sealed and replicated\n");
    return failed || !nl ? -1 : 0;
}

/* ---- lookups while syncing ----------------------------------------------- */

static int lookups(int fd, const msgpack_sbuffer *req, int count, double *p50, double *p99)
{
    uint8_t *buf = malloc(1 << 20);
    double *lat = calloc((size_t)count, sizeof(double));
    if (!buf || !lat)
        return -1;
    for (int i = 0; i < count + 200; i++) {
        double t0 = bench_now_s();
        if (bench_write_all(fd, req->data, req->size) || read_reply(fd, buf, 1 << 20) != 1)
            return -1;
        if (i >= 200)
            lat[i - 200] = (bench_now_s() - t0) * 1e6;
    }
    qsort(lat, (size_t)count, sizeof(double), bench_cmp_double);
    *p50 = lat[count / 2];
    *p99 = lat[(size_t)(count * 0.99)];
    free(lat);
    free(buf);
    return 0;
}

static int run_lookup(int count)
{
    hms_client *c;
    if (hms_connect(socks[0], &c))
        return -1;
    const char *tags[] = {"bench", "v1"};
    char ids[3][16];
    for (int i = 0; i < 3; i++) {
        snprintf(ids[i], sizeof(ids[i]), "bench-svc-%d", i);
        hms_service_def d = {.name = "bench-svc", .id = ids[i], .port = (uint16_t)(20000 + i),
                             .tags = tags, .ntags = 2};
        if (hms_register(c, &d, NULL, 0)) {
            fprintf(stderr, "error: register failed: %s\n", hms_last_error(c));
            return -1;
        }
    }
    msgpack_sbuffer args, req;
    msgpack_sbuffer_init(&args);
    msgpack_sbuffer_init(&req);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_s(&pk, "name");
    pack_s(&pk, "bench-svc");
    pack_s(&pk, "tags");
    msgpack_pack_array(&pk, 1);
    pack_s(&pk, "bench");
    hms_api_encode_request(&req, 1, "lookup", args.data, args.size);
    int fd = bench_connect_unix(socks[0]);
    double i50, i99, b50, b99;
    if (fd < 0 || lookups(fd, &req, count, &i50, &i99))
        return -1;
    msgpack_sbuffer frame;
    msgpack_sbuffer_init(&frame);
    append_frame(&frame, true);
    atomic_bool stop = false;
    loader ld = {.fd = bench_connect_unix(socks[0]), .rate = 0, .frame = &frame, .stop = &stop};
    if (ld.fd < 0)
        return -1;
    pthread_create(&ld.th, NULL, load_main, &ld);
    usleep(200000);
    double t0 = bench_now_s();
    int r = lookups(fd, &req, count, &b50, &b99);
    double dt = bench_now_s() - t0;
    uint64_t ok0 = ld.ok;
    atomic_store(&stop, true);
    pthread_join(ld.th, NULL);
    close(ld.fd);
    close(fd);
    for (int i = 0; i < 3; i++)
        hms_deregister(c, ids[i]);
    hms_close(c);
    msgpack_sbuffer_destroy(&frame);
    msgpack_sbuffer_destroy(&args);
    msgpack_sbuffer_destroy(&req);
    if (r || ld.failed)
        return -1;
    printf("lookup on n1, idle:                 p50 %.1f us  p99 %.1f us  (%d sequential)\n", i50,
           i99, count);
    printf("lookup on n1, durable appends:      p50 %.1f us  p99 %.1f us  (appends ~%.0f/s "
           "durable, window 64, other connection)\n",
           b50, b99, ok0 / (dt + 0.2));
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"seconds", required_argument, 0, 's'},
                                         {"rates", required_argument, 0, 'r'},
                                         {"count", required_argument, 0, 'n'},
                                         {0, 0, 0, 0}};
    double secs = 10, rates[4] = {1000, 10000};
    int nrates = 2, count = 20000, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': secs = atof(optarg); break;
        case 'n': count = atoi(optarg); break;
        case 'r': {
            nrates = 0;
            char *save, *tok = strtok_r(optarg, ",", &save);
            while (tok && nrates < 4) {
                rates[nrates++] = atof(tok);
                tok = strtok_r(NULL, ",", &save);
            }
            break;
        }
        default:
            fprintf(stderr, "usage: bench_audit_repl [--seconds S] [--rates R1,R2] [--count N]\n");
            return 2;
        }
    }
    if (secs < 1 || secs > 120 || count < 100 || nrates < 1) {
        fprintf(stderr, "error: seconds 1-120, count >= 100, at least one rate\n");
        return 2;
    }
    for (int i = 0; i < nrates; i++)
        if (rates[i] < 10 || rates[i] > 200000) {
            fprintf(stderr, "error: rates 10-200000 entries/s\n");
            return 2;
        }
    signal(SIGPIPE, SIG_IGN);
    atexit(stop_all);
    if (start_all(argv[0]) || learn_keys()) {
        fprintf(stderr, "error: cannot set up the five agents\n");
        return 1;
    }
    printf("five agents on 127.0.60.1-5:7950 converged; R = %d\n", replicas_wanted);
    fflush(stdout);
    int rc = 0;
    for (int i = 0; i < nrates; i++) {
        if (run_rate(rates[i], secs))
            rc = 1;
        fflush(stdout);
    }
    if (run_lookup(count)) {
        fprintf(stderr, "error: lookup measurement failed\n");
        rc = 1;
    }
    return rc;
}
