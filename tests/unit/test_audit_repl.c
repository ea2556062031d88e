/*
 * Replica intake: segments offered for another origin's log (the path
 * pulled and imported segments take) are stored only when they verify;
 * a forged segment (wrong key), a tampered one and one claiming to be this
 * node's own log are refused and counted; a forked one (same key, same
 * segment number, different content) is kept as proof, survives a restart
 * and makes verify fail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <ev.h>
#include <sodium.h>

#include "agent/audit/audit.h"
#include "agent/audit/audit_priv.h"
#include "agent/audit/fileio.h"
#include "proto/audit.h"

static char root[256];

static void sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    if (system(cmd) != 0)
        fprintf(stderr, "command failed: %s\n", cmd);
}

static hms_audit *open_at(struct ev_loop *loop, const char *dir, const uint8_t *sk)
{
    hms_audit_config cfg = {0};
    cfg.data_dir = dir;
    cfg.node_sk = sk;
    cfg.node_name = "x";
    cfg.seal_entries = 1000;
    cfg.seal_age_ms = 60000;
    hms_audit *a = NULL;
    char err[512];
    int r = hms_audit_new(loop, &cfg, &a, err, sizeof(err));
    if (r)
        fprintf(stderr, "open %s: %s\n", dir, err);
    return a;
}

static void settle(struct ev_loop *loop, hms_audit *a)
{
    for (int i = 0; i < 300; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(2000);
        hms_audit_stats st;
        hms_audit_get_stats(a, &st);
        pthread_mutex_lock(&a->w.mu);
        bool idle = !a->w.jobs && !a->w.chunks;
        pthread_mutex_unlock(&a->w.mu);
        if (idle && st.durable_seq == st.next_seq && i > 5)
            break;
    }
    ev_run(loop, EVRUN_NOWAIT);
}

/* Writes n entries with tag into the log at dir, sealing at the end. */
static void write_log(struct ev_loop *loop, const char *dir, const uint8_t *sk, int n,
                      const char *tag)
{
    hms_audit *a = open_at(loop, dir, sk);
    CU_ASSERT_FATAL(a != NULL);
    for (int i = 0; i < n; i++)
        hms_audit_emit(a, "event", NULL, NULL, json_pack("{s:s, s:i}", "tag", tag, "i", i));
    hms_audit_seal_now(a);
    settle(loop, a);
    hms_audit_delete(a);
}

static uint8_t *seg_bytes(const char *dir, const uint8_t *pk, uint64_t segno, size_t *len)
{
    char hex[65], path[700];
    hms_audit_hex(pk, 32, hex);
    snprintf(path, sizeof(path), "%s/audit/%s/%020llu.seg", dir, hex, (unsigned long long)segno);
    uint8_t *b = NULL;
    if (hms_fio_read_file(path, 1 << 24, &b, len) != 0)
        return NULL;
    return b;
}

struct qres {
    int done, rc;
    json_t *res;
};

static void on_query(void *ctx, json_t *result, int rc)
{
    struct qres *q = ctx;
    q->done++;
    q->rc = rc;
    q->res = result;
}

/* Runs a query on the audit query thread and waits for its answer. */
static json_t *query_async(struct ev_loop *loop, hms_audit *a, const hms_audit_query *q)
{
    struct qres r = {0, 0, NULL};
    CU_ASSERT_EQUAL_FATAL(hms_audit_query_async(a, q, on_query, &r), 0);
    for (int i = 0; i < 2000 && !r.done; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    CU_ASSERT_EQUAL(r.done, 1);
    return r.res;
}

/* Rewrites a segment to claim another origin key: header and seal name
 * `key`, every checksum recomputed, the signature left as it was (a forger
 * without the origin's secret key). */
static uint8_t *reforge(const uint8_t *in, size_t len, const uint8_t key[32], size_t *olen)
{
    uint8_t *out = malloc(len + 64);
    size_t off = 0, o = 0;
    while (off < len) {
        uint8_t type;
        const uint8_t *pay;
        size_t plen, next;
        CU_ASSERT_FATAL(hms_audit_unframe(in, len, off, &type, &pay, &plen, &next) == 0);
        uint8_t buf[512];
        const uint8_t *np = pay;
        size_t nl = plen;
        if (type == HMS_AUDIT_REC_HEADER) {
            hms_audit_seghdr h;
            CU_ASSERT_FATAL(hms_audit_seghdr_decode(pay, plen, &h) == 0);
            memcpy(h.node_key, key, 32);
            hms_audit_seghdr_encode(&h, buf, sizeof(buf), &nl);
            np = buf;
        } else if (type == HMS_AUDIT_REC_SEAL) {
            hms_audit_seal sl;
            CU_ASSERT_FATAL(hms_audit_seal_decode(pay, plen, &sl) == 0);
            memcpy(sl.node_key, key, 32);
            hms_audit_seal_encode(&sl, buf, sizeof(buf), &nl);
            np = buf;
        }
        hms_audit_frame(type, np, nl, out + o);
        memcpy(out + o + HMS_AUDIT_REC_HDR, np, nl);
        o += HMS_AUDIT_REC_HDR + nl;
        off = next;
    }
    *olen = o;
    return out;
}

static void test_intake(void)
{
    uint8_t pk1[32], sk1[64], pk2[32], sk2[64], pk3[32], sk3[64];
    crypto_sign_keypair(pk1, sk1);
    crypto_sign_keypair(pk2, sk2);
    crypto_sign_keypair(pk3, sk3);
    char d1[300], d1b[300], d2[300], d3[300];
    snprintf(d1, sizeof(d1), "%s/origin", root);
    snprintf(d1b, sizeof(d1b), "%s/origin-copy", root);
    snprintf(d2, sizeof(d2), "%s/replica", root);
    snprintf(d3, sizeof(d3), "%s/stranger", root);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);

    /* origin: segment 0; then a copy of its data dir goes its own way:
     * both seal a different segment 1 with the same key (a fork) */
    write_log(loop, d1, sk1, 5, "common");
    sh("cp -a '%s' '%s'", d1, d1b);
    write_log(loop, d1, sk1, 3, "honest");
    write_log(loop, d1b, sk1, 4, "forked");
    write_log(loop, d3, sk3, 2, "stranger");

    size_t l0, l1, lf, ls;
    uint8_t *s0 = seg_bytes(d1, pk1, 0, &l0), *s1 = seg_bytes(d1, pk1, 1, &l1);
    uint8_t *sf = seg_bytes(d1b, pk1, 1, &lf), *ss = seg_bytes(d3, pk3, 0, &ls);
    CU_ASSERT_FATAL(s0 && s1 && sf && ss);
    CU_ASSERT(l1 != lf || memcmp(s1, sf, l1) != 0);

    hms_audit *r = open_at(loop, d2, sk2);
    CU_ASSERT_FATAL(r != NULL);
    char verdict[256];
    CU_ASSERT_EQUAL(hms_audit_import(r, s0, l0, pk1, verdict, sizeof(verdict)), 0);
    CU_ASSERT(strstr(verdict, "stored") != NULL);
    settle(loop, r);
    CU_ASSERT_EQUAL(hms_audit_import(r, s1, l1, pk1, verdict, sizeof(verdict)), 0);
    CU_ASSERT(strstr(verdict, "stored") != NULL);
    settle(loop, r);
    /* the same again: a duplicate, nothing changes */
    CU_ASSERT_EQUAL(hms_audit_import(r, s1, l1, pk1, verdict, sizeof(verdict)), 0);
    CU_ASSERT(strstr(verdict, "duplicate") != NULL);

    int err;
    json_t *rep = hms_audit_query_verify(r, NULL, true, &err);
    CU_ASSERT_FATAL(rep != NULL);
    CU_ASSERT(json_is_true(json_object_get(rep, "ok")));
    json_decref(rep);

    /* forged: a stranger's segment offered as the origin's log */
    CU_ASSERT(hms_audit_import(r, ss, ls, pk1, verdict, sizeof(verdict)) != 0);
    CU_ASSERT(strstr(verdict, "refused") != NULL);
    /* forged with valid checksums: the stranger's segment rewritten to name
     * the origin's key; only the signature gives it away */
    size_t lr;
    uint8_t *rf = reforge(ss, ls, pk1, &lr);
    CU_ASSERT(hms_audit_import(r, rf, lr, pk1, verdict, sizeof(verdict)) != 0);
    CU_ASSERT(strstr(verdict, "signature") != NULL);
    free(rf);
    /* tampered: one byte changed */
    uint8_t *t = malloc(l1);
    memcpy(t, s1, l1);
    t[l1 / 2] ^= 0x20;
    CU_ASSERT(hms_audit_import(r, t, l1, pk1, verdict, sizeof(verdict)) != 0);
    free(t);
    /* this node's own log cannot be written from outside */
    CU_ASSERT(hms_audit_import(r, s0, l0, pk2, verdict, sizeof(verdict)) != 0);
    hms_audit_stats st;
    hms_audit_get_stats(r, &st);
    CU_ASSERT(st.replica_refused >= 3);
    CU_ASSERT_EQUAL(st.forks, 0);

    /* forked: right key, same segment number, different content */
    CU_ASSERT_EQUAL(hms_audit_import(r, sf, lf, pk1, verdict, sizeof(verdict)), 0);
    CU_ASSERT(strstr(verdict, "fork") != NULL);
    settle(loop, r);
    hms_audit_get_stats(r, &st);
    CU_ASSERT_EQUAL(st.forks, 1);
    rep = hms_audit_query_verify(r, pk1, false, &err);
    CU_ASSERT_FATAL(rep != NULL);
    CU_ASSERT(json_is_false(json_object_get(rep, "ok")));
    json_t *log = json_array_get(json_object_get(rep, "logs"), 0);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(log, "forks")), 1);
    CU_ASSERT(json_integer_value(json_object_get(log, "refused_segments")) >= 3);
    json_decref(rep);
    /* the honest copy is still what queries read */
    json_t *tail = hms_audit_query_tail(r, pk1, 100, &err);
    CU_ASSERT_EQUAL(json_array_size(tail), 8);
    json_decref(tail);
    hms_audit_delete(r);

    /* the proof survives a restart */
    r = open_at(loop, d2, sk2);
    CU_ASSERT_FATAL(r != NULL);
    hms_audit_get_stats(r, &st);
    CU_ASSERT_EQUAL(st.forks, 1);
    rep = hms_audit_query_verify(r, NULL, true, &err);
    CU_ASSERT(rep && json_is_false(json_object_get(rep, "ok")));
    json_decref(rep);
    /* the same on the query thread, with what gossip says added on the loop */
    hms_audit_query q = {.op = HMS_AUDIT_Q_VERIFY, .all = true};
    rep = query_async(loop, r, &q);
    CU_ASSERT(rep && json_is_false(json_object_get(rep, "ok")));
    json_decref(rep);
    q = (hms_audit_query){.op = HMS_AUDIT_Q_VERIFY, .key = pk1};
    rep = query_async(loop, r, &q);
    CU_ASSERT(rep && json_array_size(json_object_get(rep, "logs")) == 1);
    json_decref(rep);
    q = (hms_audit_query){.op = HMS_AUDIT_Q_TAIL, .key = pk1, .n = 3};
    tail = query_async(loop, r, &q);
    CU_ASSERT_EQUAL(json_array_size(tail), 3);
    json_decref(tail);
    /* trace merges every log by time; export pages through everything */
    json_t *all = hms_audit_query_find(r, NULL, true, NULL, 0, &err);
    CU_ASSERT(json_array_size(all) >= 8);
    json_int_t prev = 0;
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_int_t ts = json_integer_value(json_object_get(json_array_get(all, i), "ts"));
        CU_ASSERT(ts >= prev);
        prev = ts;
    }
    json_decref(all);
    size_t total = 0;
    char cursor[100] = "";
    for (int page = 0; page < 100; page++) {
        json_t *p = hms_audit_query_export(r, pk1, 0, cursor, 3, &err);
        CU_ASSERT_FATAL(p != NULL);
        total += json_array_size(json_object_get(p, "entries"));
        const char *next = json_string_value(json_object_get(p, "next"));
        if (!next) {
            json_decref(p);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", next);
        json_decref(p);
    }
    CU_ASSERT_EQUAL(total, 8);
    hms_audit_delete(r);
    free(s0);
    free(s1);
    free(sf);
    free(ss);
    ev_loop_destroy(loop);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    snprintf(root, sizeof(root), "/tmp/hms-test-audit-repl-XXXXXX");
    if (!mkdtemp(root))
        return 1;
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("audit replica intake", NULL, NULL);
    CU_add_test(s, "forged, tampered, forked", test_intake);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    sh("rm -rf '%s'%s", root, "");
    return fails ? 1 : 0;
}
