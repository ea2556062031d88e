/*
 * Noise: every vector of the two JSON files in tests/vectors (cacophony and noise-c sets,
 * all non-PSK 25519/ChaChaPoly/BLAKE2b patterns) byte for byte, both sides
 * of each handshake played against each other; then the behaviour around
 * the vectors: tampering poisons the session, calls out of turn are refused,
 * XX with random keys learns the right remote static.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <jansson.h>
#include <sodium.h>

#include "agent/net/noise.h"

#define MAXBUF 4096

static size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t bin_len = 0;
    if (sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &bin_len, NULL) != 0)
        return (size_t)-1;
    return bin_len;
}

/* Reads a hex field into buf; returns its length, or -1 if absent. */
static long field(json_t *v, const char *name, uint8_t *buf, size_t cap)
{
    json_t *f = json_object_get(v, name);
    if (!f || !json_is_string(f))
        return -1;
    size_t n = hex_decode(json_string_value(f), buf, cap);
    return n == (size_t)-1 ? -1 : (long)n;
}

static const char *vector_dir(char *buf, size_t cap)
{
    const char *src = getenv("HMS_SOURCE_DIR");
    if (src)
        snprintf(buf, cap, "%s/tests/vectors", src);
    else
        snprintf(buf, cap, "tests/vectors");
    return buf;
}

/* Runs one vector; returns 1 if every check passed. */
static int run_vector(json_t *v)
{
    uint8_t ipro[256], rpro[256], is[32], ie[32], irs[32], rs_[32], re[32], rrs[32];
    uint8_t payload[MAXBUF], expect[MAXBUF], out[MAXBUF], got[MAXBUF], hh[64];
    const char *pattern = json_string_value(json_object_get(v, "pattern"));
    const char *name = json_string_value(json_object_get(v, "name"));
    int ok = 0;

    if (!pattern || !name)
        return 0;
    long ipro_len = field(v, "init_prologue", ipro, sizeof(ipro));
    long rpro_len = field(v, "resp_prologue", rpro, sizeof(rpro));
    hms_noise_keys ik = {
        .s = field(v, "init_static", is, 32) == 32 ? is : NULL,
        .e = field(v, "init_ephemeral", ie, 32) == 32 ? ie : NULL,
        .rs = field(v, "init_remote_static", irs, 32) == 32 ? irs : NULL,
        .prologue = ipro,
        .prologue_len = ipro_len > 0 ? (size_t)ipro_len : 0,
    };
    hms_noise_keys rk = {
        .s = field(v, "resp_static", rs_, 32) == 32 ? rs_ : NULL,
        .e = field(v, "resp_ephemeral", re, 32) == 32 ? re : NULL,
        .rs = field(v, "resp_remote_static", rrs, 32) == 32 ? rrs : NULL,
        .prologue = rpro,
        .prologue_len = rpro_len > 0 ? (size_t)rpro_len : 0,
    };
    bool one_way = strlen(pattern) == 1;
    hms_noise *ini = hms_noise_new(pattern, true, &ik);
    hms_noise *res = hms_noise_new(pattern, false, &rk);
    if (!ini || !res) {
        fprintf(stderr, "%s: cannot create states\n", name);
        goto out;
    }

    json_t *msgs = json_object_get(v, "messages");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        long plen = field(m, "payload", payload, sizeof(payload));
        long clen = field(m, "ciphertext", expect, sizeof(expect));
        bool from_init = one_way || (i % 2) == 0;
        hms_noise *snd = from_init ? ini : res, *rcv = from_init ? res : ini;
        size_t out_len = 0, got_len = 0;
        int rc1, rc2;
        if (plen < 0 || clen < 0)
            goto out;
        if (!hms_noise_done(snd)) {
            if (hms_noise_done(rcv) || !hms_noise_my_turn(snd) || hms_noise_my_turn(rcv)) {
                fprintf(stderr, "%s: message %zu: turn mismatch\n", name, i);
                goto out;
            }
            rc1 = hms_noise_write(snd, payload, (size_t)plen, out, sizeof(out), &out_len);
            rc2 = rc1 ? rc1 : hms_noise_read(rcv, out, out_len, got, sizeof(got), &got_len);
        } else {
            if (!hms_noise_done(rcv))
                goto out;
            rc1 = hms_noise_encrypt(snd, payload, (size_t)plen, out, sizeof(out), &out_len);
            rc2 = rc1 ? rc1 : hms_noise_decrypt(rcv, out, out_len, got, sizeof(got), &got_len);
        }
        if (rc1 || rc2) {
            fprintf(stderr, "%s: message %zu: rc %d/%d\n", name, i, rc1, rc2);
            goto out;
        }
        if (out_len != (size_t)clen || memcmp(out, expect, out_len) != 0) {
            fprintf(stderr, "%s: message %zu: ciphertext differs\n", name, i);
            goto out;
        }
        if (got_len != (size_t)plen || memcmp(got, payload, got_len) != 0) {
            fprintf(stderr, "%s: message %zu: payload differs\n", name, i);
            goto out;
        }
    }
    if (!hms_noise_done(ini) || !hms_noise_done(res)) {
        fprintf(stderr, "%s: handshake not finished\n", name);
        goto out;
    }
    if (memcmp(hms_noise_handshake_hash(ini), hms_noise_handshake_hash(res), 64) != 0) {
        fprintf(stderr, "%s: handshake hashes differ\n", name);
        goto out;
    }
    if (field(v, "handshake_hash", hh, sizeof(hh)) == 64 &&
        memcmp(hms_noise_handshake_hash(ini), hh, 64) != 0) {
        fprintf(stderr, "%s: handshake hash differs from the vector\n", name);
        goto out;
    }
    /* Each side learned the other's static key where the pattern sends it. */
    if (ik.s && hms_noise_remote_static(res)) {
        uint8_t pub[32];
        crypto_scalarmult_base(pub, is);
        if (memcmp(pub, hms_noise_remote_static(res), 32) != 0)
            goto out;
    }
    ok = 1;
out:
    hms_noise_delete(ini);
    hms_noise_delete(res);
    return ok;
}

static void test_vectors(void)
{
    static const char *files[] = {"noise_25519_chachapoly_blake2b.json",
                                  "noise_c_basic_25519_chachapoly_blake2b.json"};
    char dir[1024], path[1200];
    size_t total = 0, passed = 0, with_hash = 0;

    vector_dir(dir, sizeof(dir));
    for (size_t f = 0; f < 2; f++) {
        json_error_t err;
        snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
        json_t *root = json_load_file(path, 0, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(root);
        json_t *vecs = json_object_get(root, "vectors");
        CU_ASSERT_FATAL(json_is_array(vecs) && json_array_size(vecs) > 0);
        size_t i;
        json_t *v;
        json_array_foreach(vecs, i, v)
        {
            total++;
            if (json_object_get(v, "handshake_hash"))
                with_hash++;
            passed += (size_t)run_vector(v);
        }
        json_decref(root);
    }
    printf("\nnoise vectors: %zu of %zu passed (%zu with handshake hash)\n", passed, total,
           with_hash);
    CU_ASSERT_EQUAL(total, 30);
    CU_ASSERT_EQUAL(passed, total);
}

/* XX with fresh random keys, as the agent runs it. */
static void xx_pair(hms_noise **ini, hms_noise **res, uint8_t is[32], uint8_t rs[32])
{
    randombytes_buf(is, 32);
    randombytes_buf(rs, 32);
    hms_noise_keys ik = {.s = is, .prologue = (const uint8_t *)"hms", .prologue_len = 3};
    hms_noise_keys rk = {.s = rs, .prologue = (const uint8_t *)"hms", .prologue_len = 3};
    *ini = hms_noise_new("XX", true, &ik);
    *res = hms_noise_new("XX", false, &rk);
}

static void test_xx_random(void)
{
    uint8_t is[32], rs[32], ipub[32], rpub[32], buf[512], pl[512];
    size_t len, plen;
    hms_noise *a, *b;

    xx_pair(&a, &b, is, rs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NULL(hms_noise_remote_static(a));
    CU_ASSERT_EQUAL(hms_noise_write(a, NULL, 0, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(len, 32);
    CU_ASSERT_EQUAL(hms_noise_read(b, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_EQUAL(plen, 0);
    CU_ASSERT_EQUAL(hms_noise_write(b, (const uint8_t *)"cert-b", 6, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(len, 32 + 48 + 6 + 16);
    CU_ASSERT_EQUAL(hms_noise_read(a, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_EQUAL(plen, 6);
    CU_ASSERT_EQUAL(memcmp(pl, "cert-b", 6), 0);
    CU_ASSERT_EQUAL(hms_noise_write(a, (const uint8_t *)"cert-a", 6, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(hms_noise_read(b, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_TRUE(hms_noise_done(a));
    CU_ASSERT_TRUE(hms_noise_done(b));
    crypto_scalarmult_base(ipub, is);
    crypto_scalarmult_base(rpub, rs);
    CU_ASSERT_EQUAL(memcmp(hms_noise_remote_static(a), rpub, 32), 0);
    CU_ASSERT_EQUAL(memcmp(hms_noise_remote_static(b), ipub, 32), 0);

    /* Transport both ways; a replayed message fails and poisons. */
    CU_ASSERT_EQUAL(hms_noise_encrypt(a, (const uint8_t *)"ping", 4, buf, sizeof(buf), &len), 0);
    uint8_t saved[64];
    size_t saved_len = len;
    memcpy(saved, buf, len);
    CU_ASSERT_EQUAL(hms_noise_decrypt(b, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_EQUAL(hms_noise_encrypt(b, (const uint8_t *)"pong", 4, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(hms_noise_decrypt(a, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_EQUAL(memcmp(pl, "pong", 4), 0);
    CU_ASSERT_EQUAL(hms_noise_decrypt(b, saved, saved_len, pl, sizeof(pl), &plen), -EBADMSG);
    CU_ASSERT_TRUE(hms_noise_failed(b));
    CU_ASSERT_EQUAL(hms_noise_encrypt(b, (const uint8_t *)"x", 1, buf, sizeof(buf), &len),
                    -EPROTO);
    hms_noise_delete(a);
    hms_noise_delete(b);
}

static void test_tamper_and_turns(void)
{
    uint8_t is[32], rs[32], buf[512], pl[512];
    size_t len, plen;
    hms_noise *a, *b;

    xx_pair(&a, &b, is, rs);
    /* Out of turn: the responder cannot write first, the initiator cannot read. */
    CU_ASSERT_EQUAL(hms_noise_write(b, NULL, 0, buf, sizeof(buf), &len), -EPROTO);
    CU_ASSERT_EQUAL(hms_noise_read(a, buf, 32, pl, sizeof(pl), &plen), -EPROTO);
    CU_ASSERT_FALSE(hms_noise_failed(a));
    /* Transport before the handshake ends is refused. */
    CU_ASSERT_EQUAL(hms_noise_encrypt(a, buf, 1, buf + 100, 100, &len), -EPROTO);
    /* A short output buffer changes nothing. */
    CU_ASSERT_EQUAL(hms_noise_write(a, NULL, 0, buf, 16, &len), -ENOBUFS);
    CU_ASSERT_FALSE(hms_noise_failed(a));
    CU_ASSERT_EQUAL(hms_noise_write(a, NULL, 0, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(hms_noise_read(b, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_EQUAL(hms_noise_write(b, NULL, 0, buf, sizeof(buf), &len), 0);
    /* One flipped bit in the encrypted static key: the read fails, poisons. */
    buf[40] ^= 1;
    CU_ASSERT_EQUAL(hms_noise_read(a, buf, len, pl, sizeof(pl), &plen), -EBADMSG);
    CU_ASSERT_TRUE(hms_noise_failed(a));
    CU_ASSERT_PTR_NULL(hms_noise_remote_static(a));
    CU_ASSERT_FALSE(hms_noise_my_turn(a));
    hms_noise_delete(a);
    hms_noise_delete(b);

    /* Truncated message 2. */
    xx_pair(&a, &b, is, rs);
    CU_ASSERT_EQUAL(hms_noise_write(a, NULL, 0, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(hms_noise_read(b, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_EQUAL(hms_noise_write(b, NULL, 0, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(hms_noise_read(a, buf, 50, pl, sizeof(pl), &plen), -EBADMSG);
    hms_noise_delete(a);
    hms_noise_delete(b);

    /* Low-order ephemeral (all zero) is refused. */
    xx_pair(&a, &b, is, rs);
    memset(buf, 0, 32);
    CU_ASSERT_EQUAL(hms_noise_read(b, buf, 32, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_NOT_EQUAL(hms_noise_write(b, NULL, 0, buf, sizeof(buf), &len), 0);
    CU_ASSERT_TRUE(hms_noise_failed(b));
    hms_noise_delete(a);
    hms_noise_delete(b);
}

/* One-way patterns: after the single message only the initiator sends. */
static void test_one_way(void)
{
    uint8_t rs[32], rpub[32], buf[256], pl[256];
    size_t len, plen;
    randombytes_buf(rs, sizeof(rs));
    crypto_scalarmult_base(rpub, rs);
    hms_noise_keys ik = {.rs = rpub};
    hms_noise_keys rk = {.s = rs};
    hms_noise *a = hms_noise_new("N", true, &ik), *b = hms_noise_new("N", false, &rk);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(hms_noise_write(a, (const uint8_t *)"x", 1, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(hms_noise_read(b, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_TRUE(hms_noise_done(a) && hms_noise_done(b));
    CU_ASSERT_EQUAL(hms_noise_encrypt(b, (const uint8_t *)"y", 1, buf, sizeof(buf), &len),
                    -EPROTO);
    CU_ASSERT_EQUAL(hms_noise_encrypt(a, (const uint8_t *)"y", 1, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(hms_noise_decrypt(b, buf, len, pl, sizeof(pl), &plen), 0);
    CU_ASSERT_EQUAL(pl[0], 'y');
    hms_noise_delete(a);
    hms_noise_delete(b);
}

static void test_bad_args(void)
{
    uint8_t k[32] = {1};
    hms_noise_keys none = {0};
    hms_noise_keys s_only = {.s = k};
    CU_ASSERT_PTR_NULL(hms_noise_new("XY", true, &s_only));
    CU_ASSERT_PTR_NULL(hms_noise_new("XX", true, &none));  /* XX needs s */
    CU_ASSERT_PTR_NULL(hms_noise_new("IK", true, &s_only)); /* IK needs rs */
    hms_noise *n = hms_noise_new("NN", true, &none);
    CU_ASSERT_PTR_NOT_NULL(n);
    hms_noise_delete(n);
    hms_noise_delete(NULL);
}

int main(void)
{
    if (sodium_init() < 0 || CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("noise", NULL, NULL);
    CU_add_test(s, "vectors", test_vectors);
    CU_add_test(s, "xx_random", test_xx_random);
    CU_add_test(s, "tamper_and_turns", test_tamper_and_turns);
    CU_add_test(s, "one_way", test_one_way);
    CU_add_test(s, "bad_args", test_bad_args);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
