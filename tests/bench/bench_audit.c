/*
 * Audit log benchmark: append rate into memory (the cost a subsystem pays
 * per hms_audit_emit), durable group-commit rate (appends acknowledged only
 * once fsynced: batch size and fsync interval reported), and verification
 * rate (frames, canonical decoding, hash chain) and seal signature checks.
 *
 *   bench_audit [entries]      (default 500000; data in a temp dir on /tmp)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <sodium.h>

#include "agent/audit/audit.h"
#include "agent/audit/audit_priv.h"
#include "agent/audit/fileio.h"
#include "proto/audit.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static hms_audit *open_log(struct ev_loop *loop, const char *dir, const uint8_t *sk)
{
    hms_audit_config cfg = {0};
    cfg.data_dir = dir;
    cfg.node_sk = sk;
    cfg.node_name = "bench";
    cfg.seal_age_ms = 60000;
    cfg.backlog_max = 1u << 24;
    hms_audit *a;
    char err[256];
    if (hms_audit_new(loop, &cfg, &a, err, sizeof(err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        exit(1);
    }
    return a;
}

static void drain(struct ev_loop *loop, hms_audit *a)
{
    hms_audit_stats st;
    do {
        ev_run(loop, EVRUN_NOWAIT);
        hms_audit_get_stats(a, &st);
        if (st.durable_seq < st.next_seq)
            usleep(200);
    } while (st.durable_seq < st.next_seq);
}

static size_t acked;
static void on_done(void *ctx, int status, uint64_t seq)
{
    if (status == 0)
        acked++;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 500000;
    if (sodium_init() < 0 || n <= 0)
        return 1;
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char dir[] = "/tmp/hms-bench-audit-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    json_t *fields = json_pack("{s:s, s:s, s:i, s:s, s:i}", "service", "payment-service",
                               "target", "10.0.0.7:3000", "status", 200, "method", "POST",
                               "attempts", 1);
    hms_audit_actor actor = {1000, 4242, "payment-service"};
    const char *rid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /* 1. appends into memory (the writer thread runs behind) */
    hms_audit *a = open_log(loop, dir, sk);
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        hms_audit_emit(a, "call", rid, &actor, json_incref(fields));
    double t1 = now_s();
    drain(loop, a);
    double t2 = now_s();
    hms_audit_stats st;
    hms_audit_get_stats(a, &st);
    printf("append, in memory:     %10.0f entries/s  (%ld entries, %.0f ns each)\n",
           n / (t1 - t0), n, (t1 - t0) * 1e9 / n);
    printf("  writer to disk:      %10.0f entries/s  (%llu fsyncs, %llu segments sealed)\n",
           n / (t2 - t0), (unsigned long long)st.fsyncs, (unsigned long long)st.sealed_segments);

    /* 2. durable: each append acknowledged only after its fsync; appends
     * arrive in bursts as from many clients, the writer batches them */
    uint64_t fs0 = st.fsyncs;
    long nd = n / 2;
    acked = 0;
    t0 = now_s();
    long sent = 0;
    while (acked < (size_t)nd) {
        for (int k = 0; k < 2000 && sent < nd; k++, sent++)
            hms_audit_append(a, "call", rid, &actor, json_incref(fields), true, on_done, NULL,
                             NULL);
        ev_run(loop, EVRUN_NOWAIT);
        if (sent == nd && acked < (size_t)nd)
            usleep(100);
    }
    t1 = now_s();
    hms_audit_get_stats(a, &st);
    uint64_t fsyncs = st.fsyncs - fs0;
    printf("append, durable:       %10.0f entries/s  (%ld entries, %llu fsyncs: %.0f entries "
           "per batch, one fsync every %.2f ms)\n",
           nd / (t1 - t0), nd, (unsigned long long)fsyncs,
           fsyncs ? (double)nd / fsyncs : 0.0, fsyncs ? (t1 - t0) * 1e3 / fsyncs : 0.0);
    hms_audit_delete(a);

    /* 3. verification of every stored segment */
    char hex[65], path[600];
    hms_audit_hex(pk, 32, hex);
    size_t entries = 0, segs = 0, bytes = 0;
    double tv = 0;
    for (uint64_t s = 0;; s++) {
        snprintf(path, sizeof(path), "%s/audit/%s/%020llu.seg", dir, hex, (unsigned long long)s);
        uint8_t *b;
        size_t len;
        if (hms_fio_read_file(path, HMS_AUDIT_SEGMENT_MAX, &b, &len) != 0)
            break;
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        double v0 = now_s();
        int r = hms_audit_segment_verify(b, len, pk, false, &info, &off, &why, NULL, NULL);
        tv += now_s() - v0;
        free(b);
        if (r != 0) {
            fprintf(stderr, "error: segment %llu does not verify: %s\n", (unsigned long long)s, why);
            return 1;
        }
        entries += info.count;
        segs++;
        bytes += len;
    }
    printf("verify (from files):   %10.0f entries/s  (%zu entries, %zu segments, %.1f MB, %.0f MB/s)\n",
           entries / tv, entries, segs, bytes / 1e6, bytes / 1e6 / tv);
    hms_audit_seal seal = {0};
    seal.segno = 1;
    seal.last_seq = 4095;
    hms_audit_seal_sign(&seal, sk);
    int ns = 20000;
    t0 = now_s();
    for (int i = 0; i < ns; i++)
        if (hms_audit_seal_verify(&seal) != 0)
            return 1;
    t1 = now_s();
    printf("seal signatures:       %10.0f seals/s verified\n", ns / (t1 - t0));
    t0 = now_s();
    for (int i = 0; i < ns / 4; i++)
        hms_audit_seal_sign(&seal, sk);
    t1 = now_s();
    printf("seal signatures:       %10.0f seals/s signed\n", (ns / 4) / (t1 - t0));

    json_decref(fields);
    ev_loop_destroy(loop);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
