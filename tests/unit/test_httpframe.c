/*
 * Agent <-> hms-http frames (proto/httpframe.h): round trips at the bounds,
 * and every kind of malformed payload refused: truncation at every byte,
 * trailing bytes, unknown, duplicate and missing keys, wrong types, strings
 * too long or with bytes outside printable ASCII, values out of range.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/httpframe.h"

static uint8_t buf[HMS_HTTPFRAME_HDR + HMS_HTTPFRAME_MAX];

static hms_http_req sample_req(void)
{
    hms_http_req q;
    memset(&q, 0, sizeof(q));
    q.id = 0x12345678;
    q.timeout_ms = 1500;
    snprintf(q.url, sizeof(q.url), "http://127.0.0.1:8080/health?x=1");
    return q;
}

static hms_http_resp sample_resp(void)
{
    hms_http_resp r;
    memset(&r, 0, sizeof(r));
    r.id = 77;
    r.status = 503;
    snprintf(r.line, sizeof(r.line), "service unavailable: db down");
    return r;
}

/* Encodes and returns the payload (after the header) and its length. */
static const uint8_t *enc_req(const hms_http_req *q, size_t *plen)
{
    size_t used;
    CU_ASSERT_EQUAL_FATAL(hms_http_req_encode(q, buf, sizeof(buf), &used), 0);
    const uint8_t *pl;
    size_t u2;
    CU_ASSERT_EQUAL_FATAL(hms_httpframe_next(buf, used, &pl, plen, &u2), 0);
    CU_ASSERT_EQUAL(u2, used);
    return pl;
}

static void test_req_round_trip(void)
{
    hms_http_req q = sample_req(), d;
    size_t plen;
    const uint8_t *pl = enc_req(&q, &plen);
    CU_ASSERT_EQUAL(hms_http_req_decode(pl, plen, &d), 0);
    CU_ASSERT_EQUAL(d.id, q.id);
    CU_ASSERT_EQUAL(d.timeout_ms, 1500);
    CU_ASSERT_STRING_EQUAL(d.url, q.url);
    CU_ASSERT_STRING_EQUAL(d.method, "");

    /* the largest URL, a method, the largest values */
    memset(q.url, 'a', HMS_HTTP_URL_MAX);
    memcpy(q.url, "https://", 8);
    q.url[HMS_HTTP_URL_MAX] = '\0';
    snprintf(q.method, sizeof(q.method), "HEAD");
    q.id = UINT32_MAX;
    q.timeout_ms = HMS_HTTP_TIMEOUT_MAX;
    pl = enc_req(&q, &plen);
    CU_ASSERT_EQUAL(hms_http_req_decode(pl, plen, &d), 0);
    CU_ASSERT_EQUAL(d.id, UINT32_MAX);
    CU_ASSERT_EQUAL(d.timeout_ms, HMS_HTTP_TIMEOUT_MAX);
    CU_ASSERT_EQUAL(strlen(d.url), HMS_HTTP_URL_MAX);
    CU_ASSERT_STRING_EQUAL(d.method, "HEAD");

    /* every integer width */
    uint32_t ids[] = {0, 127, 128, 255, 256, 65535, 65536};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        q = sample_req();
        q.id = ids[i];
        pl = enc_req(&q, &plen);
        CU_ASSERT_EQUAL(hms_http_req_decode(pl, plen, &d), 0);
        CU_ASSERT_EQUAL(d.id, ids[i]);
    }
}

static void test_resp_round_trip(void)
{
    hms_http_resp r = sample_resp(), d;
    size_t used, plen, u2;
    const uint8_t *pl;
    CU_ASSERT_EQUAL_FATAL(hms_http_resp_encode(&r, buf, sizeof(buf), &used), 0);
    CU_ASSERT_EQUAL_FATAL(hms_httpframe_next(buf, used, &pl, &plen, &u2), 0);
    CU_ASSERT_EQUAL(hms_http_resp_decode(pl, plen, &d), 0);
    CU_ASSERT_EQUAL(d.id, 77);
    CU_ASSERT_EQUAL(d.status, 503);
    CU_ASSERT_STRING_EQUAL(d.error, "");
    CU_ASSERT_STRING_EQUAL(d.line, r.line);

    memset(r.error, 'e', HMS_HTTP_ERROR_MAX);
    r.error[HMS_HTTP_ERROR_MAX] = '\0';
    memset(r.line, ' ', HMS_HTTP_LINE_MAX);
    r.line[HMS_HTTP_LINE_MAX] = '\0';
    r.status = 0;
    CU_ASSERT_EQUAL_FATAL(hms_http_resp_encode(&r, buf, sizeof(buf), &used), 0);
    CU_ASSERT_EQUAL_FATAL(hms_httpframe_next(buf, used, &pl, &plen, &u2), 0);
    CU_ASSERT_EQUAL(hms_http_resp_decode(pl, plen, &d), 0);
    CU_ASSERT_EQUAL(strlen(d.error), HMS_HTTP_ERROR_MAX);
    CU_ASSERT_EQUAL(strlen(d.line), HMS_HTTP_LINE_MAX);
    CU_ASSERT_EQUAL(d.status, 0);
}

static void test_encode_rejects(void)
{
    size_t used = 12345;
    hms_http_req q = sample_req();
    CU_ASSERT_EQUAL(hms_http_req_encode(&q, buf, 10, &used), -ENOSPC);
    CU_ASSERT_EQUAL(hms_http_req_encode(&q, buf, 2, &used), -ENOSPC);
    CU_ASSERT_EQUAL(used, 12345);
    q.timeout_ms = 0;
    CU_ASSERT_EQUAL(hms_http_req_encode(&q, buf, sizeof(buf), &used), -EINVAL);
    q = sample_req();
    q.timeout_ms = HMS_HTTP_TIMEOUT_MAX + 1;
    CU_ASSERT_EQUAL(hms_http_req_encode(&q, buf, sizeof(buf), &used), -EINVAL);
    const char *bad_urls[] = {"ftp://x/", "http://", "http://a b/", "file:///etc/passwd",
                              "http://x/\x01", "http://x/\x80", ""};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        q = sample_req();
        snprintf(q.url, sizeof(q.url), "%s", bad_urls[i]);
        CU_ASSERT_EQUAL(hms_http_req_encode(&q, buf, sizeof(buf), &used), -EINVAL);
    }
    q = sample_req();
    snprintf(q.method, sizeof(q.method), "get");
    CU_ASSERT_EQUAL(hms_http_req_encode(&q, buf, sizeof(buf), &used), -EINVAL);
    q = sample_req();
    memset(q.url, 'a', sizeof(q.url)); /* not terminated */
    memcpy(q.url, "http://", 7);
    CU_ASSERT_EQUAL(hms_http_req_encode(&q, buf, sizeof(buf), &used), -EINVAL);

    hms_http_resp r = sample_resp();
    r.status = 1000;
    CU_ASSERT_EQUAL(hms_http_resp_encode(&r, buf, sizeof(buf), &used), -EINVAL);
    r = sample_resp();
    r.line[3] = '\n';
    CU_ASSERT_EQUAL(hms_http_resp_encode(&r, buf, sizeof(buf), &used), -EINVAL);
    r = sample_resp();
    CU_ASSERT_EQUAL(hms_http_resp_encode(&r, buf, 20, &used), -ENOSPC);
}

static void test_framing(void)
{
    uint8_t f[8] = {0, 0, 0, 3, 1, 2, 3, 9};
    const uint8_t *pl;
    size_t plen, used;
    CU_ASSERT_EQUAL(hms_httpframe_next(f, 0, &pl, &plen, &used), -EAGAIN);
    CU_ASSERT_EQUAL(hms_httpframe_next(f, 3, &pl, &plen, &used), -EAGAIN);
    CU_ASSERT_EQUAL(hms_httpframe_next(f, 6, &pl, &plen, &used), -EAGAIN);
    CU_ASSERT_EQUAL(hms_httpframe_next(f, 8, &pl, &plen, &used), 0);
    CU_ASSERT_EQUAL(plen, 3);
    CU_ASSERT_EQUAL(used, 7);
    CU_ASSERT_PTR_EQUAL(pl, f + 4);
    uint8_t zero[4] = {0, 0, 0, 0};
    CU_ASSERT_EQUAL(hms_httpframe_next(zero, 4, &pl, &plen, &used), -EMSGSIZE);
    uint8_t big[4] = {0, 0, (HMS_HTTPFRAME_MAX + 1) >> 8, (HMS_HTTPFRAME_MAX + 1) & 0xff};
    CU_ASSERT_EQUAL(hms_httpframe_next(big, 4, &pl, &plen, &used), -EMSGSIZE);
    uint8_t text[4] = {'G', 'E', 'T', ' '};
    CU_ASSERT_EQUAL(hms_httpframe_next(text, 4, &pl, &plen, &used), -EMSGSIZE);
}

static void test_truncated_and_trailing(void)
{
    hms_http_req q = sample_req(), d;
    snprintf(q.method, sizeof(q.method), "GET");
    size_t plen;
    const uint8_t *pl = enc_req(&q, &plen);
    uint8_t copy[HMS_HTTPFRAME_MAX + 1];
    memcpy(copy, pl, plen);
    for (size_t n = 0; n < plen; n++)
        CU_ASSERT_EQUAL(hms_http_req_decode(copy, n, &d), -EINVAL);
    copy[plen] = 0xc0;
    CU_ASSERT_EQUAL(hms_http_req_decode(copy, plen + 1, &d), -EINVAL);
    CU_ASSERT_EQUAL(hms_http_req_decode(copy, plen, &d), 0);
    /* the response decoder refuses a request and the other way round */
    hms_http_resp r;
    CU_ASSERT_EQUAL(hms_http_resp_decode(copy, plen, &r), -EINVAL);
    hms_http_resp s = sample_resp();
    size_t used, u2;
    CU_ASSERT_EQUAL_FATAL(hms_http_resp_encode(&s, buf, sizeof(buf), &used), 0);
    CU_ASSERT_EQUAL_FATAL(hms_httpframe_next(buf, used, &pl, &plen, &u2), 0);
    CU_ASSERT_EQUAL(hms_http_req_decode(pl, plen, &d), -EINVAL);
    memcpy(copy, pl, plen);
    for (size_t n = 0; n < plen; n++)
        CU_ASSERT_EQUAL(hms_http_resp_decode(copy, n, &r), -EINVAL);
}

/* Hand-made payloads: msgpack bytes written out. */
#define P(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void test_handmade(void)
{
    hms_http_req d;
    hms_http_resp r;
    /* {id: 1, url: "http://a", timeout_ms: 5} */
#define K_ID 0xa2, 'i', 'd'
#define K_URL 0xa3, 'u', 'r', 'l'
#define K_TMO 0xaa, 't', 'i', 'm', 'e', 'o', 'u', 't', '_', 'm', 's'
#define URL 0xa8, 'h', 't', 't', 'p', ':', '/', '/', 'a'
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x83, K_ID, 1, K_URL, URL, K_TMO, 5), &d), 0);
    CU_ASSERT_STRING_EQUAL(d.url, "http://a");
    /* map16, uint64 and str8 forms are accepted too */
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0xde, 0, 3, K_ID, 0xcf, 0, 0, 0, 0, 0, 0, 1, 2, K_URL,
                                          0xd9, 8, 'h', 't', 't', 'p', ':', '/', '/', 'a', K_TMO, 5),
                                        &d),
                    0);
    CU_ASSERT_EQUAL(d.id, 258);
    /* uint64 above 32 bits */
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x83, K_ID, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, K_URL, URL,
                                          K_TMO, 5),
                                        &d),
                    -EINVAL);
    /* missing timeout */
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x82, K_ID, 1, K_URL, URL), &d), -EINVAL);
    /* duplicate id (4 entries, no timeout) */
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x84, K_ID, 1, K_URL, URL, K_ID, 2, K_TMO, 5), &d),
                    -EINVAL);
    /* unknown key */
    CU_ASSERT_EQUAL(
        hms_http_req_decode(P(0x84, K_ID, 1, K_URL, URL, K_TMO, 5, 0xa1, 'x', 1), &d), -EINVAL);
    /* negative id, id as a string, url as an int, timeout 0 */
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x83, K_ID, 0xff, K_URL, URL, K_TMO, 5), &d), -EINVAL);
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x83, K_ID, 0xa1, '1', K_URL, URL, K_TMO, 5), &d),
                    -EINVAL);
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x83, K_ID, 1, K_URL, 7, K_TMO, 5), &d), -EINVAL);
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x83, K_ID, 1, K_URL, URL, K_TMO, 0), &d), -EINVAL);
    /* a NUL inside the URL */
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x83, K_ID, 1, K_URL, 0xa8, 'h', 't', 't', 'p', ':', '/',
                                          '/', 0, K_TMO, 5),
                                        &d),
                    -EINVAL);
    /* a str32 length far past the buffer */
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x83, K_ID, 1, K_URL, 0xdb, 0xff, 0xff, 0xff, 0xff, 'h'),
                                        &d),
                    -EINVAL);
    /* not a map */
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0x93, 1, 2, 3), &d), -EINVAL);
    CU_ASSERT_EQUAL(hms_http_req_decode(P(0xc1), &d), -EINVAL);

#define K_ST 0xa6, 's', 't', 'a', 't', 'u', 's'
#define K_ERR 0xa5, 'e', 'r', 'r', 'o', 'r'
#define K_LINE 0xa4, 'l', 'i', 'n', 'e'
    CU_ASSERT_EQUAL(hms_http_resp_decode(P(0x84, K_ID, 9, K_ST, 0xcd, 0, 200, K_ERR, 0xa0, K_LINE,
                                           0xa2, 'o', 'k'),
                                         &r),
                    0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.line, "ok");
    /* status 1000 */
    CU_ASSERT_EQUAL(hms_http_resp_decode(P(0x84, K_ID, 9, K_ST, 0xcd, 0x03, 0xe8, K_ERR, 0xa0,
                                           K_LINE, 0xa0),
                                         &r),
                    -EINVAL);
    /* a control byte in the line, a byte above 0x7e in the error */
    CU_ASSERT_EQUAL(hms_http_resp_decode(P(0x84, K_ID, 9, K_ST, 0, K_ERR, 0xa0, K_LINE, 0xa1, 0x1b),
                                         &r),
                    -EINVAL);
    CU_ASSERT_EQUAL(hms_http_resp_decode(P(0x84, K_ID, 9, K_ST, 0, K_ERR, 0xa1, 0xc3, K_LINE, 0xa0),
                                         &r),
                    -EINVAL);
    /* three keys */
    CU_ASSERT_EQUAL(hms_http_resp_decode(P(0x83, K_ID, 9, K_ST, 0, K_ERR, 0xa0), &r), -EINVAL);
}

static void test_long_strings(void)
{
    /* a line one byte too long, in str8 form */
    uint8_t p[HMS_HTTPFRAME_MAX];
    size_t n = 0;
    const uint8_t head[] = {0x84, 0xa2, 'i', 'd', 1, 0xa6, 's', 't', 'a', 't', 'u', 's', 0,
                            0xa5, 'e', 'r', 'r', 'o', 'r', 0xa0, 0xa4, 'l', 'i', 'n', 'e'};
    memcpy(p, head, sizeof(head));
    n = sizeof(head);
    p[n++] = 0xd9;
    p[n++] = HMS_HTTP_LINE_MAX + 1;
    memset(p + n, 'x', HMS_HTTP_LINE_MAX + 1);
    hms_http_resp r;
    CU_ASSERT_EQUAL(hms_http_resp_decode(p, n + HMS_HTTP_LINE_MAX + 1, &r), -EINVAL);
    p[n - 1] = HMS_HTTP_LINE_MAX;
    CU_ASSERT_EQUAL(hms_http_resp_decode(p, n + HMS_HTTP_LINE_MAX, &r), 0);
    /* a payload above the frame bound is refused whatever it holds */
    CU_ASSERT_EQUAL(hms_http_resp_decode(p, HMS_HTTPFRAME_MAX + 1, &r), -EINVAL);
}

/* Random damage to valid frames never crashes and never yields a string
 * the bounds do not allow. */
static void test_mutations(void)
{
    srand(7);
    hms_http_req q = sample_req(), d;
    size_t plen;
    const uint8_t *pl = enc_req(&q, &plen);
    uint8_t m[HMS_HTTPFRAME_MAX];
    int ok = 0;
    for (int i = 0; i < 200000; i++) {
        memcpy(m, pl, plen);
        int k = 1 + rand() % 4;
        for (int j = 0; j < k; j++)
            m[rand() % plen] = (uint8_t)rand();
        size_t len = plen - (size_t)(rand() % 3 == 0 ? rand() % (int)plen : 0);
        if (hms_http_req_decode(m, len, &d) == 0) {
            ok++;
            CU_ASSERT(strlen(d.url) <= HMS_HTTP_URL_MAX && strlen(d.method) <= HMS_HTTP_METHOD_MAX);
            CU_ASSERT(d.timeout_ms >= 1 && d.timeout_ms <= HMS_HTTP_TIMEOUT_MAX);
        }
    }
    CU_ASSERT(ok > 0); /* some mutations only change the URL's letters */
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("http frames", NULL, NULL);
    CU_add_test(s, "request round trip", test_req_round_trip);
    CU_add_test(s, "response round trip", test_resp_round_trip);
    CU_add_test(s, "encode rejects", test_encode_rejects);
    CU_add_test(s, "framing", test_framing);
    CU_add_test(s, "truncated and trailing", test_truncated_and_trailing);
    CU_add_test(s, "hand-made payloads", test_handmade);
    CU_add_test(s, "long strings", test_long_strings);
    CU_add_test(s, "mutations", test_mutations);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
