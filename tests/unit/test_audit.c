/*
 * Audit log unit tests: entry encoding (round trip, canonical form),
 * chaining and sealing through the real writer thread and real files,
 * re-opening, byte-flip mutation of stored segments (every change must be
 * detected), torn-tail recovery, and the file I/O fault seam (ENOSPC, EIO,
 * short writes at each step: acknowledged entries survive, the log
 * verifies).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <ev.h>
#include <sodium.h>

#include "agent/audit/audit.h"
#include "agent/audit/audit_int.h"
#include "agent/audit/audit_priv.h"
#include "agent/audit/fileio.h"
#include "proto/audit.h"

static uint8_t pk[32], sk[64];
static char tmpdir[256];
static uint64_t rng = 0x1234567;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", path);
}

static void fresh_dir(void)
{
    if (tmpdir[0])
        rm_rf(tmpdir);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hms-test-audit-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(tmpdir) != NULL);
}

static hms_audit *open_log(struct ev_loop *loop, uint32_t seal_entries, char *err, size_t errlen,
                           int *rc)
{
    hms_audit_config cfg = {0};
    cfg.data_dir = tmpdir;
    cfg.node_sk = sk;
    cfg.node_name = "n1";
    cfg.seal_entries = seal_entries;
    cfg.seal_age_ms = 60000;
    hms_audit *a = NULL;
    *rc = hms_audit_new(loop, &cfg, &a, err, errlen);
    return a;
}

static void own_dir(char *buf, size_t cap)
{
    char hex[65];
    hms_audit_hex(pk, 32, hex);
    snprintf(buf, cap, "%s/audit/%s", tmpdir, hex);
}

static void seg_file(uint64_t segno, char *buf, size_t cap)
{
    char d[512];
    own_dir(d, sizeof(d));
    snprintf(buf, cap, "%s/%020llu.seg", d, (unsigned long long)segno);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *b;
    if (hms_fio_read_file(path, 1 << 26, &b, len) != 0)
        return NULL;
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT(fwrite(b, 1, len, f) == len);
    fclose(f);
}

/* ---- encoding ------------------------------------------------------------------ */

static void test_entry_roundtrip(void)
{
    json_error_t je;
    json_t *f = json_loads("{\"z\":1,\"a\":[true,null,-5,2.5,\"x\"],\"m\":{\"k\":-200000,\"b\":\"\xc3\xa9\"}}",
                           0, &je);
    CU_ASSERT_FATAL(f != NULL);
    uint8_t fb[1024], enc[2048];
    size_t flen, len;
    CU_ASSERT_EQUAL(hms_audit_fields_from_json(f, fb, sizeof(fb), &flen), 0);
    CU_ASSERT_EQUAL(hms_audit_fields_check(fb, flen), 0);
    hms_audit_entry e = {0};
    e.seq = 123456789012ULL;
    e.ts_ns = 1700000000123456789ULL;
    memset(e.prev, 0xab, 32);
    e.kind = "service.register";
    e.kind_len = strlen(e.kind);
    e.reqid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    e.reqid_len = strlen(e.reqid);
    e.has_actor = true;
    e.uid = 1000;
    e.pid = 4242;
    e.actor_name = "payment-service";
    e.actor_name_len = strlen(e.actor_name);
    e.fields = fb;
    e.fields_len = flen;
    CU_ASSERT_EQUAL_FATAL(hms_audit_entry_encode(&e, enc, sizeof(enc), &len), 0);
    hms_audit_entry d;
    CU_ASSERT_EQUAL_FATAL(hms_audit_entry_decode(enc, len, &d), 0);
    CU_ASSERT_EQUAL(d.seq, e.seq);
    CU_ASSERT_EQUAL(d.ts_ns, e.ts_ns);
    CU_ASSERT(memcmp(d.prev, e.prev, 32) == 0);
    CU_ASSERT(d.kind_len == e.kind_len && memcmp(d.kind, e.kind, e.kind_len) == 0);
    CU_ASSERT(d.reqid_len == e.reqid_len && memcmp(d.reqid, e.reqid, e.reqid_len) == 0);
    CU_ASSERT(d.has_actor && d.uid == 1000 && d.pid == 4242);
    CU_ASSERT(d.fields_len == flen && memcmp(d.fields, fb, flen) == 0);
    /* re-encoding the decoded entry gives the same bytes */
    uint8_t enc2[2048];
    size_t len2;
    CU_ASSERT_EQUAL(hms_audit_entry_encode(&d, enc2, sizeof(enc2), &len2), 0);
    CU_ASSERT(len2 == len && memcmp(enc, enc2, len) == 0);
    /* fields back to JSON are equal to the input */
    json_t *back = hms_audit_fields_to_json(d.fields, d.fields_len);
    CU_ASSERT(back && json_equal(back, f));
    json_decref(back);
    /* same JSON with keys inserted in another order: same bytes */
    json_t *g = json_loads("{\"m\":{\"b\":\"\xc3\xa9\",\"k\":-200000},\"a\":[true,null,-5,2.5,\"x\"],\"z\":1}",
                           0, &je);
    uint8_t gb[1024];
    size_t glen;
    CU_ASSERT_EQUAL(hms_audit_fields_from_json(g, gb, sizeof(gb), &glen), 0);
    CU_ASSERT(glen == flen && memcmp(gb, fb, flen) == 0);
    json_decref(g);
    json_decref(f);
    /* every strict prefix is refused */
    for (size_t i = 0; i < len; i++)
        CU_ASSERT(hms_audit_entry_decode(enc, i, &d) != 0);
    /* JSON view */
    uint8_t h[32];
    hms_audit_entry_hash(enc, len, h);
    json_t *j = hms_audit_entry_to_json(&d, h);
    CU_ASSERT(j && json_integer_value(json_object_get(j, "seq")) == (json_int_t)e.seq);
    json_decref(j);
}

static void test_noncanonical_refused(void)
{
    /* {"a": 1} with 1 encoded as uint8 (0xcc 0x01) instead of fixint */
    const uint8_t bad1[] = {0x81, 0xa1, 'a', 0xcc, 0x01};
    CU_ASSERT(hms_audit_fields_check(bad1, sizeof(bad1)) != 0);
    const uint8_t good1[] = {0x81, 0xa1, 'a', 0x01};
    CU_ASSERT(hms_audit_fields_check(good1, sizeof(good1)) == 0);
    /* keys out of order, duplicate keys */
    const uint8_t bad2[] = {0x82, 0xa1, 'b', 0x01, 0xa1, 'a', 0x01};
    CU_ASSERT(hms_audit_fields_check(bad2, sizeof(bad2)) != 0);
    const uint8_t bad3[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02};
    CU_ASSERT(hms_audit_fields_check(bad3, sizeof(bad3)) != 0);
    /* str8 for a short string, float32, positive value as int8 */
    const uint8_t bad4[] = {0x81, 0xd9, 0x01, 'a', 0x01};
    CU_ASSERT(hms_audit_fields_check(bad4, sizeof(bad4)) != 0);
    const uint8_t bad5[] = {0x81, 0xa1, 'a', 0xca, 0, 0, 0, 0};
    CU_ASSERT(hms_audit_fields_check(bad5, sizeof(bad5)) != 0);
    const uint8_t bad6[] = {0x81, 0xa1, 'a', 0xd0, 0x05};
    CU_ASSERT(hms_audit_fields_check(bad6, sizeof(bad6)) != 0);
    /* invalid UTF-8, trailing bytes, huge declared array */
    const uint8_t bad7[] = {0x81, 0xa1, 'a', 0xa1, 0xff};
    CU_ASSERT(hms_audit_fields_check(bad7, sizeof(bad7)) != 0);
    const uint8_t bad8[] = {0x80, 0x00};
    CU_ASSERT(hms_audit_fields_check(bad8, sizeof(bad8)) != 0);
    const uint8_t bad9[] = {0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff};
    CU_ASSERT(hms_audit_fields_check(bad9, sizeof(bad9)) != 0);
    /* non-object fields and too deep nesting are refused at the source */
    uint8_t buf[4096];
    size_t n;
    json_t *arr = json_array();
    CU_ASSERT(hms_audit_fields_from_json(arr, buf, sizeof(buf), &n) == -EINVAL);
    json_decref(arr);
    json_t *deep = json_object(), *cur = deep;
    for (int i = 0; i < 40; i++) {
        json_t *x = json_object();
        json_object_set_new(cur, "d", x);
        cur = x;
    }
    CU_ASSERT(hms_audit_fields_from_json(deep, buf, sizeof(buf), &n) == -EINVAL);
    json_decref(deep);
}

static void test_seal_sign_verify(void)
{
    hms_audit_seal s = {0};
    s.segno = 7;
    s.first_seq = 100;
    s.last_seq = 199;
    memset(s.head, 0x11, 32);
    s.time_ns = 42;
    hms_audit_seal_sign(&s, sk);
    CU_ASSERT(memcmp(s.node_key, pk, 32) == 0);
    CU_ASSERT_EQUAL(hms_audit_seal_verify(&s), 0);
    uint8_t buf[256];
    size_t len;
    CU_ASSERT_EQUAL(hms_audit_seal_encode(&s, buf, sizeof(buf), &len), 0);
    hms_audit_seal d;
    CU_ASSERT_EQUAL(hms_audit_seal_decode(buf, len, &d), 0);
    CU_ASSERT(hms_audit_seal_same(&s, &d) && memcmp(s.sig, d.sig, 64) == 0);
    hms_audit_seal t = s;
    t.last_seq++;
    CU_ASSERT(hms_audit_seal_verify(&t) != 0);
    t = s;
    t.head[5] ^= 1;
    CU_ASSERT(hms_audit_seal_verify(&t) != 0);
    t = s;
    t.node_key[0] ^= 1;
    CU_ASSERT(hms_audit_seal_verify(&t) != 0);
}

/* ---- the log through real files ------------------------------------------------ */

static void run_until_durable(struct ev_loop *loop, hms_audit *a, double max_s)
{
    double until = ev_time() + max_s;
    hms_audit_stats st;
    do {
        ev_run(loop, EVRUN_NOWAIT);
        hms_audit_get_stats(a, &st);
        if (st.durable_seq >= st.next_seq)
            return;
        usleep(1000);
    } while (ev_time() < until);
}

static json_t *fields_n(int i)
{
    return json_pack("{s:i, s:s}", "i", i, "note", "payment approved for grant");
}

/* Verifies every segment of the own log on disk; returns entries seen. */
static uint64_t verify_disk(bool allow_open_last)
{
    char d[512];
    own_dir(d, sizeof(d));
    uint64_t total = 0, segno = 0, expect_seq = 0;
    uint8_t head[32] = {0};
    for (;; segno++) {
        char p[700];
        seg_file(segno, p, sizeof(p));
        size_t len;
        uint8_t *b = slurp(p, &len);
        if (!b)
            break;
        char next[700];
        seg_file(segno + 1, next, sizeof(next));
        bool last = access(next, F_OK) != 0;
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        int r = hms_audit_segment_verify(b, len, pk, allow_open_last && last, &info, &off, &why,
                                         NULL, NULL);
        free(b);
        CU_ASSERT_EQUAL(r, 0);
        if (r)
            fprintf(stderr, "segment %llu: %s at %zu\n", (unsigned long long)segno, why, off);
        CU_ASSERT_EQUAL(info.hdr.first_seq, expect_seq);
        CU_ASSERT(memcmp(info.hdr.prev_head, head, 32) == 0);
        memcpy(head, info.head, 32);
        expect_seq += info.count;
        total += info.count;
    }
    return total;
}

static void test_chain_and_seal(void)
{
    fresh_dir();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[512];
    int rc;
    hms_audit *a = open_log(loop, 10, err, sizeof(err), &rc);
    CU_ASSERT_FATAL(rc == 0 && a);
    hms_audit_actor act = {1000, 77, "tester"};
    for (int i = 0; i < 95; i++)
        CU_ASSERT_EQUAL(hms_audit_emit(a, "test.event", i % 3 ? NULL : "req-1", i % 2 ? &act : NULL,
                                       fields_n(i)),
                        0);
    CU_ASSERT_EQUAL(hms_audit_emit(a, "bad kind", NULL, NULL, NULL), -EINVAL);
    CU_ASSERT_EQUAL(hms_audit_emit(a, "x", NULL, NULL, json_array()), -EINVAL);
    run_until_durable(loop, a, 5);
    hms_audit_stats st;
    hms_audit_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.next_seq, 95);
    CU_ASSERT_EQUAL(st.sealed_segments, 9);
    hms_audit_delete(a); /* seals the open segment */
    CU_ASSERT_EQUAL(verify_disk(false), 95);

    /* reopen: the chain continues */
    a = open_log(loop, 10, err, sizeof(err), &rc);
    CU_ASSERT_FATAL(rc == 0 && a);
    hms_audit_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.next_seq, 95);
    for (int i = 0; i < 7; i++)
        CU_ASSERT_EQUAL(hms_audit_emit(a, "test.more", NULL, NULL, NULL), 0);
    run_until_durable(loop, a, 5);
    hms_audit_delete(a);
    CU_ASSERT_EQUAL(verify_disk(false), 102);
    ev_loop_destroy(loop);
}

/* Every single-byte change of a sealed segment is detected, by the
 * verifier and by the start-up check. */
static void test_mutation(void)
{
    fresh_dir();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[512];
    int rc;
    hms_audit *a = open_log(loop, 20, err, sizeof(err), &rc);
    CU_ASSERT_FATAL(rc == 0 && a);
    hms_audit_actor act = {0, 1, "svc"};
    for (int i = 0; i < 45; i++)
        hms_audit_emit(a, "svc.event", "r-9", &act, fields_n(i));
    run_until_durable(loop, a, 5);
    hms_audit_delete(a);
    char p[700];
    seg_file(1, p, sizeof(p));
    size_t len;
    uint8_t *orig = slurp(p, &len);
    CU_ASSERT_FATAL(orig != NULL && len > 200);
    uint8_t *m = malloc(len);
    size_t undetected = 0, tried = 0;
    /* every position, one bit; plus random positions with random values */
    for (size_t pos = 0; pos < len + 2000; pos++) {
        memcpy(m, orig, len);
        size_t at = pos < len ? pos : rnd() % len;
        uint8_t v = pos < len ? (uint8_t)(m[at] ^ (1u << (pos % 8))) : (uint8_t)rnd();
        if (v == m[at])
            continue;
        m[at] = v;
        tried++;
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        if (hms_audit_segment_verify(m, len, pk, false, &info, &off, &why, NULL, NULL) == 0)
            undetected++;
    }
    CU_ASSERT_EQUAL(undetected, 0);
    CU_ASSERT(tried > len);
    /* truncations of a sealed segment are detected too */
    for (size_t cut = 0; cut < len; cut += 7) {
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        CU_ASSERT(hms_audit_segment_verify(orig, cut, pk, false, &info, &off, &why, NULL, NULL) != 0);
    }
    /* the agent refuses to start on a flipped byte, naming file and offset */
    size_t checks = 0;
    for (int k = 0; k < 40; k++) {
        memcpy(m, orig, len);
        size_t at = rnd() % len;
        m[at] ^= (uint8_t)(1 + rnd() % 255);
        spit(p, m, len);
        a = open_log(loop, 20, err, sizeof(err), &rc);
        CU_ASSERT(rc != 0 && a == NULL);
        if (a)
            hms_audit_delete(a);
        CU_ASSERT(strstr(err, p) != NULL);
        checks++;
    }
    CU_ASSERT_EQUAL(checks, 40);
    spit(p, orig, len);
    a = open_log(loop, 20, err, sizeof(err), &rc);
    CU_ASSERT(rc == 0 && a);
    hms_audit_delete(a);
    free(m);
    free(orig);
    ev_loop_destroy(loop);
}

/* A torn tail of the open segment is cut back to the last whole record. */
static void test_torn_tail(void)
{
    fresh_dir();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[512];
    int rc;
    hms_audit *a = open_log(loop, 1000, err, sizeof(err), &rc);
    CU_ASSERT_FATAL(rc == 0 && a);
    for (int i = 0; i < 30; i++)
        hms_audit_emit(a, "torn.test", NULL, NULL, fields_n(i));
    run_until_durable(loop, a, 5);
    /* simulate the crash: copy the open file before the clean close */
    char p[700];
    seg_file(0, p, sizeof(p));
    size_t len;
    uint8_t *orig = slurp(p, &len);
    CU_ASSERT_FATAL(orig != NULL);
    hms_audit_delete(a);
    /* the record boundaries */
    size_t bounds[64], nb = 0, off = 0;
    while (off < len && nb < 64) {
        uint8_t type;
        const uint8_t *pay;
        size_t plen, next;
        CU_ASSERT_FATAL(hms_audit_unframe(orig, len, off, &type, &pay, &plen, &next) == 0);
        bounds[nb++] = next;
        off = next;
    }
    CU_ASSERT_EQUAL(nb, 31); /* header + 30 entries */
    for (size_t cut = bounds[0] + 1; cut < len; cut += 13) {
        spit(p, orig, cut);
        a = open_log(loop, 1000, err, sizeof(err), &rc);
        CU_ASSERT_FATAL(rc == 0 && a);
        size_t whole = 0;
        while (whole < nb && bounds[whole] <= cut)
            whole++;
        hms_audit_stats st;
        hms_audit_get_stats(a, &st);
        CU_ASSERT_EQUAL(st.next_seq, whole - 1);
        /* appending after recovery keeps a verifying chain */
        hms_audit_emit(a, "after.crash", NULL, NULL, NULL);
        run_until_durable(loop, a, 5);
        hms_audit_delete(a);
        CU_ASSERT_EQUAL(verify_disk(false), whole);
        spit(p, orig, len);
        char p1[700];
        seg_file(1, p1, sizeof(p1));
        unlink(p1);
    }
    /* a torn tail in a segment that is not the last one is not repaired */
    spit(p, orig, len - 5);
    char p1[700];
    seg_file(1, p1, sizeof(p1));
    a = open_log(loop, 1000, err, sizeof(err), &rc);
    CU_ASSERT_FATAL(rc == 0);
    hms_audit_emit(a, "x", NULL, NULL, NULL);
    hms_audit_seal_now(a);
    hms_audit_emit(a, "y", NULL, NULL, NULL);
    hms_audit_delete(a);
    CU_ASSERT(access(p1, F_OK) == 0);
    CU_ASSERT_EQUAL(verify_disk(false), 31);
    size_t l0;
    uint8_t *s0 = slurp(p, &l0);
    spit(p, s0, l0 - 3);
    a = open_log(loop, 1000, err, sizeof(err), &rc);
    CU_ASSERT(rc != 0 && a == NULL);
    CU_ASSERT(strstr(err, p) != NULL);
    free(s0);
    free(orig);
    ev_loop_destroy(loop);
}

/* ---- the fault seam ---------------------------------------------------------------- */

struct acks {
    uint64_t seqs[4096];
    size_t n, fails;
};

static void on_done(void *ctx, int status, uint64_t seq)
{
    struct acks *k = ctx;
    if (status == 0 && k->n < 4096)
        k->seqs[k->n++] = seq;
    else if (status != 0)
        k->fails++;
}

static int collect(void *ctx, const hms_audit_entry *e, const uint8_t h[32], const uint8_t *enc,
                   size_t len)
{
    uint8_t *seen = ctx;
    if (e->seq < 4096)
        seen[e->seq] = 1;
    return 0;
}

/* Loads the own log with the start-up check and marks every entry seen. */
static int load_all(uint8_t *seen)
{
    char d[512];
    own_dir(d, sizeof(d));
    memset(seen, 0, 4096);
    for (uint64_t segno = 0;; segno++) {
        char p[700];
        seg_file(segno, p, sizeof(p));
        size_t len;
        uint8_t *b = slurp(p, &len);
        if (!b)
            return 0;
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        int r = hms_audit_segment_verify(b, len, pk, true, &info, &off, &why, collect, seen);
        free(b);
        if (r != 0 && r != HMS_AUDIT_TORN)
            return r;
    }
}

static void fault_round(unsigned ops, int errcode, uint64_t nth, bool recover)
{
    fresh_dir();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[512];
    int rc;
    hms_audit *a = open_log(loop, 8, err, sizeof(err), &rc);
    CU_ASSERT_FATAL(rc == 0 && a);
    struct acks *k = calloc(1, sizeof(*k));
    hms_fio_fail(ops, nth, errcode, recover ? 2 : 0);
    /* bursts of durable appends, crossing several seals */
    for (int burst = 0; burst < 6; burst++) {
        for (int i = 0; i < 5; i++) {
            uint64_t seq;
            int r = hms_audit_append(a, "fault.test", NULL, NULL, fields_n(i), true, on_done, k, &seq);
            CU_ASSERT(r == 0 || r == -ENOSPC);
        }
        double until = ev_time() + 0.3;
        while (ev_time() < until && a->nwaiters) {
            ev_run(loop, EVRUN_NOWAIT);
            usleep(500);
        }
    }
    if (recover) {
        run_until_durable(loop, a, 8);
        hms_audit_stats st;
        hms_audit_get_stats(a, &st);
        CU_ASSERT_EQUAL(st.durable_seq, st.next_seq);
        CU_ASSERT_EQUAL(st.next_seq, 30);
        /* every append was answered: acknowledged, or failed while the disk failed */
        CU_ASSERT_EQUAL(k->n + k->fails, 30);
        CU_ASSERT(k->n > 0);
        hms_audit_delete(a);
        hms_fio_fail_clear();
    } else {
        /* the disk never recovers: stop as a crash would (the writer gives
         * up after a few tries), then look at what is on disk */
        hms_audit_delete(a);
        hms_fio_fail_clear();
    }
    uint8_t seen[4096];
    CU_ASSERT_EQUAL(load_all(seen), 0);
    for (size_t i = 0; i < k->n; i++)
        CU_ASSERT(seen[k->seqs[i]]);
    /* and the agent starts on it */
    a = open_log(loop, 8, err, sizeof(err), &rc);
    CU_ASSERT(rc == 0 && a);
    if (rc)
        fprintf(stderr, "start after fault: %s\n", err);
    if (a) {
        hms_audit_emit(a, "restart", NULL, NULL, NULL);
        run_until_durable(loop, a, 5);
        hms_audit_delete(a);
    }
    CU_ASSERT_EQUAL(load_all(seen), 0);
    free(k);
    ev_loop_destroy(loop);
}

static void test_faults(void)
{
    const struct {
        unsigned ops;
        int err;
    } kinds[] = {
        {HMS_FIO_WRITE, -ENOSPC}, {HMS_FIO_WRITE, -EIO},  {HMS_FIO_WRITE, HMS_FIO_SHORT},
        {HMS_FIO_FSYNC, -EIO},    {HMS_FIO_OPEN, -ENOSPC}, {HMS_FIO_FSYNC, -ENOSPC},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (uint64_t nth = 1; nth <= 9; nth++)
            for (int recover = 0; recover < 2; recover++)
                fault_round(kinds[k].ops, kinds[k].err, nth, recover);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    crypto_sign_keypair(pk, sk);
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("audit", NULL, NULL);
    CU_add_test(s, "entry round trip", test_entry_roundtrip);
    CU_add_test(s, "non-canonical refused", test_noncanonical_refused);
    CU_add_test(s, "seal sign verify", test_seal_sign_verify);
    CU_add_test(s, "chain and seal", test_chain_and_seal);
    CU_add_test(s, "mutation detected", test_mutation);
    CU_add_test(s, "torn tail", test_torn_tail);
    CU_add_test(s, "fault seam", test_faults);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    if (tmpdir[0])
        rm_rf(tmpdir);
    return fails ? 1 : 0;
}
