/*
 * Sealed packets: round trips both ways, every failure result (malformed,
 * not for us, unknown or revoked sender, bad tag, replay, stale epoch), the
 * replay window's edges, and the bounded key cache.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <sodium.h>

#include "agent/net/seal.h"

typedef struct node {
    uint8_t pk[32], sk[64];
} node;

/* Peer check used by the tests: `revoked` is refused as revoked, `unknown`
 * as unknown, everyone else admitted. */
typedef struct check_ctx {
    const uint8_t *revoked;
    const uint8_t *unknown;
    int calls;
} check_ctx;

static int peer_check(void *ctx, const uint8_t pk[32])
{
    check_ctx *c = ctx;
    c->calls++;
    if (c->revoked && memcmp(pk, c->revoked, 32) == 0)
        return HMS_SEAL_REVOKED;
    if (c->unknown && memcmp(pk, c->unknown, 32) == 0)
        return HMS_SEAL_UNKNOWN_SENDER;
    return HMS_SEAL_OK;
}

static node A, B, C;
static check_ctx ctx_a, ctx_b;

static int setup(void)
{
    crypto_sign_keypair(A.pk, A.sk);
    crypto_sign_keypair(B.pk, B.sk);
    crypto_sign_keypair(C.pk, C.sk);
    return 0;
}

static void test_round_trip(void)
{
    hms_sealer *a = hms_sealer_new(A.sk, 1, peer_check, &ctx_a);
    hms_sealer *b = hms_sealer_new(B.sk, 7, peer_check, &ctx_b);
    uint8_t pkt[1400], pt[1400], from[32];
    size_t len, plen;
    const char *msg = "ping from a";

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(hms_seal(a, B.pk, (const uint8_t *)msg, strlen(msg), pkt, sizeof(pkt), &len),
                    0);
    CU_ASSERT_EQUAL(len, strlen(msg) + HMS_SEAL_HEADER_LEN + HMS_SEAL_TAG_LEN);
    CU_ASSERT_TRUE(len <= strlen(msg) + HMS_SEAL_OVERHEAD);
    /* The payload is not visible in the clear. */
    CU_ASSERT_PTR_NULL(memmem(pkt, len, "ping", 4));
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(plen, strlen(msg));
    CU_ASSERT_EQUAL(memcmp(pt, msg, plen), 0);
    CU_ASSERT_EQUAL(memcmp(from, A.pk, 32), 0);

    /* And back: B -> A uses the other direction key. */
    CU_ASSERT_EQUAL(hms_seal(b, A.pk, (const uint8_t *)"ack", 3, pkt, sizeof(pkt), &len), 0);
    CU_ASSERT_EQUAL(hms_open(a, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(memcmp(from, B.pk, 32), 0);

    /* Empty payload. */
    CU_ASSERT_EQUAL(hms_seal(a, B.pk, NULL, 0, pkt, sizeof(pkt), &len), 0);
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(plen, 0);

    /* A short output buffer is refused before anything is written. */
    CU_ASSERT_EQUAL(hms_seal(a, B.pk, pt, 100, pkt, 100, &len), -ENOBUFS);
    hms_sealer_delete(a);
    hms_sealer_delete(b);
}

static void test_directions_differ(void)
{
    /* A packet A->B whose sender field is rewritten to B and receiver id to
     * A (a reflection) must not open at A: the B->A key differs. */
    hms_sealer *a = hms_sealer_new(A.sk, 1, NULL, NULL);
    hms_sealer *b = hms_sealer_new(B.sk, 1, NULL, NULL);
    uint8_t pkt[256], pt[256], from[32];
    size_t len, plen;
    CU_ASSERT_EQUAL(hms_seal(a, B.pk, (const uint8_t *)"hello", 5, pkt, sizeof(pkt), &len), 0);
    memcpy(pkt + 1, B.pk, 32);
    hms_seal_key_id(A.pk, pkt + 33);
    CU_ASSERT_EQUAL(hms_open(a, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_BAD_TAG);
    hms_sealer_delete(a);
    hms_sealer_delete(b);
}

static void test_tamper(void)
{
    hms_sealer *a = hms_sealer_new(A.sk, 1, peer_check, &ctx_a);
    hms_sealer *b = hms_sealer_new(B.sk, 1, peer_check, &ctx_b);
    uint8_t pkt[1400], bad[1400], pt[1400], from[32];
    size_t len, plen;
    uint8_t msg[1200];
    randombytes_buf(msg, sizeof(msg));

    CU_ASSERT_EQUAL(hms_seal(a, B.pk, msg, sizeof(msg), pkt, sizeof(pkt), &len), 0);
    /* Every single-byte change in the ciphertext, tag or the authenticated
     * epoch/counter fails the tag; the window does not move. */
    size_t positions[] = {HMS_SEAL_HEADER_LEN, HMS_SEAL_HEADER_LEN + 600, len - 1, 41, 48, 49, 56};
    for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
        memcpy(bad, pkt, len);
        bad[positions[i]] ^= 0x01;
        int rc = hms_open(b, bad, len, pt, sizeof(pt), &plen, from);
        CU_ASSERT_EQUAL(rc, HMS_SEAL_BAD_TAG);
    }
    /* Claiming to be C (a known peer) fails the tag too. */
    memcpy(bad, pkt, len);
    memcpy(bad + 1, C.pk, 32);
    CU_ASSERT_EQUAL(hms_open(b, bad, len, pt, sizeof(pt), &plen, from), HMS_SEAL_BAD_TAG);
    /* The genuine packet still opens: forged ones did not touch the window. */
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(plen, sizeof(msg));
    CU_ASSERT_EQUAL(memcmp(pt, msg, plen), 0);
    hms_sealer_delete(a);
    hms_sealer_delete(b);
}

static void test_malformed_and_not_for_us(void)
{
    hms_sealer *a = hms_sealer_new(A.sk, 1, peer_check, &ctx_a);
    hms_sealer *b = hms_sealer_new(B.sk, 1, peer_check, &ctx_b);
    uint8_t pkt[256], pt[256], from[32];
    size_t len, plen;

    CU_ASSERT_EQUAL(hms_seal(a, C.pk, (const uint8_t *)"for c", 5, pkt, sizeof(pkt), &len), 0);
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_NOT_FOR_US);
    CU_ASSERT_EQUAL(hms_open(b, pkt, 10, pt, sizeof(pt), &plen, from), HMS_SEAL_MALFORMED);
    CU_ASSERT_EQUAL(hms_open(b, pkt, HMS_SEAL_HEADER_LEN + HMS_SEAL_TAG_LEN - 1, pt, sizeof(pt),
                             &plen, from),
                    HMS_SEAL_MALFORMED);
    CU_ASSERT_EQUAL(hms_open(b, NULL, 0, pt, sizeof(pt), &plen, from), HMS_SEAL_MALFORMED);
    CU_ASSERT_EQUAL(hms_seal(a, B.pk, (const uint8_t *)"for b", 5, pkt, sizeof(pkt), &len), 0);
    pkt[0] = 2;
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_MALFORMED);
    pkt[0] = 1;
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, 2, &plen, from), HMS_SEAL_MALFORMED);
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    /* Sealing to a key that is not an Ed25519 point fails. */
    uint8_t junk[32];
    memset(junk, 0xff, sizeof(junk));
    CU_ASSERT_EQUAL(hms_seal(a, junk, pt, 1, pkt, sizeof(pkt), &len), -EINVAL);
    CU_ASSERT_STRING_EQUAL(hms_seal_result_name(HMS_SEAL_NOT_FOR_US), "not_for_us");
    CU_ASSERT_STRING_EQUAL(hms_seal_result_name(HMS_SEAL_UNKNOWN_SENDER), "unknown_sender");
    hms_sealer_delete(a);
    hms_sealer_delete(b);
}

static void test_unknown_and_revoked(void)
{
    check_ctx cb = {.unknown = C.pk, .revoked = A.pk};
    hms_sealer *a = hms_sealer_new(A.sk, 1, NULL, NULL);
    hms_sealer *b = hms_sealer_new(B.sk, 1, peer_check, &cb);
    hms_sealer *c = hms_sealer_new(C.sk, 1, NULL, NULL);
    uint8_t pkt[256], pt[256], from[32];
    size_t len, plen;

    CU_ASSERT_EQUAL(hms_seal(c, B.pk, (const uint8_t *)"hi", 2, pkt, sizeof(pkt), &len), 0);
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_UNKNOWN_SENDER);
    CU_ASSERT_EQUAL(hms_seal(a, B.pk, (const uint8_t *)"hi", 2, pkt, sizeof(pkt), &len), 0);
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_REVOKED);
    /* No key was derived for refused senders. */
    CU_ASSERT_EQUAL(hms_sealer_cached(b), 0);
    /* Once admitted, the same packet opens. */
    cb.revoked = NULL;
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_sealer_cached(b), 1);
    hms_sealer_delete(a);
    hms_sealer_delete(b);
    hms_sealer_delete(c);
}

#define NPKT 1100

static void test_replay_window(void)
{
    hms_sealer *a = hms_sealer_new(A.sk, 5, NULL, NULL);
    hms_sealer *b = hms_sealer_new(B.sk, 1, NULL, NULL);
    static uint8_t pkts[NPKT][128];
    static size_t lens[NPKT];
    uint8_t pt[128], from[32];
    size_t plen;

    for (int i = 0; i < NPKT; i++)
        CU_ASSERT_EQUAL_FATAL(hms_seal(a, B.pk, (const uint8_t *)&i, sizeof(i), pkts[i],
                                       sizeof(pkts[i]), &lens[i]),
                              0);
    /* In order. */
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(hms_open(b, pkts[i], lens[i], pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    /* Duplicate. */
    CU_ASSERT_EQUAL(hms_open(b, pkts[9], lens[9], pt, sizeof(pt), &plen, from), HMS_SEAL_REPLAY);
    CU_ASSERT_EQUAL(hms_open(b, pkts[3], lens[3], pt, sizeof(pt), &plen, from), HMS_SEAL_REPLAY);
    /* Out of order within the window: 20 before 15. */
    CU_ASSERT_EQUAL(hms_open(b, pkts[20], lens[20], pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_open(b, pkts[15], lens[15], pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_open(b, pkts[15], lens[15], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_REPLAY);
    CU_ASSERT_EQUAL(hms_open(b, pkts[20], lens[20], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_REPLAY);
    /* Jump ahead: 1090. Now 67 (1023 behind) is the oldest accepted;
     * 66 and below are too old. */
    CU_ASSERT_EQUAL(hms_open(b, pkts[1090], lens[1090], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_open(b, pkts[65], lens[65], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_REPLAY);
    CU_ASSERT_EQUAL(hms_open(b, pkts[66], lens[66], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_REPLAY);
    CU_ASSERT_EQUAL(hms_open(b, pkts[16], lens[16], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_REPLAY);
    CU_ASSERT_EQUAL(hms_open(b, pkts[67], lens[67], pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_open(b, pkts[1000], lens[1000], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_open(b, pkts[1000], lens[1000], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_REPLAY);
    /* Every packet between 1001 and 1089 arrives shuffled, each once. */
    int order[89];
    for (int i = 0; i < 89; i++)
        order[i] = 1001 + i;
    for (int i = 88; i > 0; i--) {
        int j = (int)randombytes_uniform((uint32_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int ok = 0;
    for (int i = 0; i < 89; i++)
        ok += hms_open(b, pkts[order[i]], lens[order[i]], pt, sizeof(pt), &plen, from) ==
              HMS_SEAL_OK;
    CU_ASSERT_EQUAL(ok, 89);
    int again = 0;
    for (int i = 1000; i <= 1090; i++)
        again += hms_open(b, pkts[i], lens[i], pt, sizeof(pt), &plen, from) == HMS_SEAL_REPLAY;
    CU_ASSERT_EQUAL(again, 91);
    /* Window shifts across word boundaries keep old bits: 1099 then 1091..1098
     * still open once. */
    CU_ASSERT_EQUAL(hms_open(b, pkts[1099], lens[1099], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_open(b, pkts[1067], lens[1067], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_REPLAY);
    CU_ASSERT_EQUAL(hms_open(b, pkts[1095], lens[1095], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_OK);

    /* Epoch change: A restarts with epoch 6. Its new packets open (counter
     * restarts at 0); the old epoch's packets are stale now. */
    hms_sealer *a2 = hms_sealer_new(A.sk, 6, NULL, NULL);
    uint8_t p2[128];
    size_t l2;
    CU_ASSERT_EQUAL(hms_seal(a2, B.pk, (const uint8_t *)"new", 3, p2, sizeof(p2), &l2), 0);
    CU_ASSERT_EQUAL(hms_open(b, p2, l2, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_open(b, p2, l2, pt, sizeof(pt), &plen, from), HMS_SEAL_REPLAY);
    CU_ASSERT_EQUAL(hms_open(b, pkts[1096], lens[1096], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_STALE_EPOCH);
    hms_sealer_delete(a2);

    /* Forgetting the peer drops its window (documented): the packet opens. */
    hms_sealer_forget(b, A.pk);
    CU_ASSERT_EQUAL(hms_sealer_cached(b), 0);
    CU_ASSERT_EQUAL(hms_open(b, pkts[1096], lens[1096], pt, sizeof(pt), &plen, from),
                    HMS_SEAL_OK);
    hms_sealer_delete(a);
    hms_sealer_delete(b);
}

static void test_cache_bound(void)
{
    hms_sealer *b = hms_sealer_new(B.sk, 1, NULL, NULL);
    hms_sealer *a = hms_sealer_new(A.sk, 1, NULL, NULL);
    uint8_t pkt[128], pt[128], from[32], pk[32], sk[64];
    size_t len, plen;

    /* B seals to more peers than the cache holds; A is used first and then
     * evicted, and a fresh packet from A still opens (key derived again). */
    CU_ASSERT_EQUAL(hms_seal(a, B.pk, (const uint8_t *)"1", 1, pkt, sizeof(pkt), &len), 0);
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    for (int i = 0; i < HMS_SEAL_CACHE_MAX + 10; i++) {
        crypto_sign_keypair(pk, sk);
        CU_ASSERT_EQUAL_FATAL(hms_seal(b, pk, (const uint8_t *)"x", 1, pkt, sizeof(pkt), &len),
                              0);
    }
    CU_ASSERT_EQUAL(hms_sealer_cached(b), HMS_SEAL_CACHE_MAX);
    CU_ASSERT_EQUAL(hms_seal(a, B.pk, (const uint8_t *)"2", 1, pkt, sizeof(pkt), &len), 0);
    CU_ASSERT_EQUAL(hms_open(b, pkt, len, pt, sizeof(pt), &plen, from), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(pt[0], '2');
    CU_ASSERT_EQUAL(hms_sealer_cached(b), HMS_SEAL_CACHE_MAX);
    hms_sealer_delete(a);
    hms_sealer_delete(b);
}

int main(void)
{
    if (sodium_init() < 0 || CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("seal", setup, NULL);
    CU_add_test(s, "round_trip", test_round_trip);
    CU_add_test(s, "directions_differ", test_directions_differ);
    CU_add_test(s, "tamper", test_tamper);
    CU_add_test(s, "malformed_and_not_for_us", test_malformed_and_not_for_us);
    CU_add_test(s, "unknown_and_revoked", test_unknown_and_revoked);
    CU_add_test(s, "replay_window", test_replay_window);
    CU_add_test(s, "cache_bound", test_cache_bound);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
