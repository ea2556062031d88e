/*
 * Socket API wire format: length headers, the bounded msgpack walker
 * (truncation, oversized counts, nesting), request and reply encoding and
 * decoding with every rejection, and member meta fields.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "agent/agent.h"
#include "proto/api.h"

static void test_len(void)
{
    uint8_t h[4];
    hms_api_put_len(h, 0x01020304);
    CU_ASSERT_EQUAL(h[0], 1);
    CU_ASSERT_EQUAL(h[3], 4);
    CU_ASSERT_EQUAL(hms_api_get_len(h), 0x01020304u);
    hms_api_put_len(h, UINT32_MAX);
    CU_ASSERT_EQUAL(hms_api_get_len(h), UINT32_MAX);
}

static void test_mp_check(void)
{
    size_t used = 0;
    const uint8_t fixmap[] = {0x81, 0xa1, 'a', 0x01, 0xff};
    CU_ASSERT_EQUAL(hms_mp_check(fixmap, sizeof(fixmap), &used), 0);
    CU_ASSERT_EQUAL(used, 4); /* one object; the trailing byte is not part of it */
    CU_ASSERT_EQUAL(hms_mp_check(fixmap, 3, &used), -EAGAIN);
    CU_ASSERT_EQUAL(hms_mp_check(fixmap, 0, &used), -EAGAIN);
    /* array32 claiming 2^32-1 elements in 5 bytes: refused without work */
    const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    CU_ASSERT(hms_mp_check(huge, sizeof(huge), &used) < 0);
    const uint8_t hugestr[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'};
    CU_ASSERT(hms_mp_check(hugestr, sizeof(hugestr), &used) < 0);
    const uint8_t never[] = {0xc1};
    CU_ASSERT_EQUAL(hms_mp_check(never, 1, &used), -EINVAL);
    /* nesting: HMS_MP_DEPTH_MAX levels pass, one more fails */
    uint8_t deep[64];
    for (int d = 0; d < HMS_MP_DEPTH_MAX; d++)
        deep[d] = 0x91;
    deep[HMS_MP_DEPTH_MAX] = 0x01;
    CU_ASSERT_EQUAL(hms_mp_check(deep, HMS_MP_DEPTH_MAX + 1, &used), 0);
    for (int d = 0; d < HMS_MP_DEPTH_MAX + 1; d++)
        deep[d] = 0x91;
    deep[HMS_MP_DEPTH_MAX + 1] = 0x01;
    CU_ASSERT_EQUAL(hms_mp_check(deep, HMS_MP_DEPTH_MAX + 2, &used), -EINVAL);
    /* every fixed-size type */
    const uint8_t types[] = {
        0xdc, 0,    19, 0xc0, 0xc2, 0xc3, 0xcc, 1,   0xcd, 1,    2,    0xce, 1,    2,    3,    4,
        0xcf, 1,    2,  3,    4,    5,    6,    7,   8,    0xd0, 1,    0xd1, 1,    2,    0xd2, 1,
        2,    3,    4,  0xd3, 1,    2,    3,    4,   5,    6,    7,    8,    0xca, 1,    2,    3,
        4,    0xcb, 1,  2,    3,    4,    5,    6,   7,    8,    0xd4, 1,    1,    0xd5, 1,    1,
        2,    0xc4, 2,  'x',  'y',  0xd9, 1,    'z', 0xc7, 1,    5,    'e',  0xe0};
    CU_ASSERT_EQUAL(hms_mp_check(types, sizeof(types), &used), 0);
    CU_ASSERT_EQUAL(used, sizeof(types));
}

static int pack_args(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "status", 6);
    msgpack_pack_str_with_body(&pk, "alive", 5);
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_int(&pk, -3);
    return 0;
}

static void test_request_round_trip(void)
{
    msgpack_sbuffer args, frame;
    msgpack_sbuffer_init(&args);
    msgpack_sbuffer_init(&frame);
    pack_args(&args);
    CU_ASSERT_EQUAL(hms_api_encode_request(&frame, 42, "members", args.data, args.size), 0);
    CU_ASSERT_EQUAL(hms_api_get_len((uint8_t *)frame.data), frame.size - 4);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    hms_api_request r;
    const char *code, *why;
    CU_ASSERT_EQUAL(
        hms_api_decode_request(&u, (uint8_t *)frame.data + 4, frame.size - 4, &r, &code, &why), 0);
    CU_ASSERT(r.has_id);
    CU_ASSERT_EQUAL(r.id, 42);
    CU_ASSERT_STRING_EQUAL(r.op, "members");
    CU_ASSERT(hms_mp_str_eq(hms_mp_get(r.args, "status"), "alive"));
    const msgpack_object *n = hms_mp_get(r.args, "n");
    CU_ASSERT(n && n->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && n->via.i64 == -3);
    msgpack_unpacked_destroy(&u);
    /* no arguments */
    msgpack_sbuffer_clear(&frame);
    CU_ASSERT_EQUAL(hms_api_encode_request(&frame, 1, "stats", NULL, 0), 0);
    msgpack_unpacked_init(&u);
    CU_ASSERT_EQUAL(
        hms_api_decode_request(&u, (uint8_t *)frame.data + 4, frame.size - 4, &r, &code, &why), 0);
    CU_ASSERT_STRING_EQUAL(r.op, "stats");
    msgpack_unpacked_destroy(&u);
    /* args that are not a map are refused */
    const uint8_t arr[] = {0x90};
    CU_ASSERT_EQUAL(hms_api_encode_request(&frame, 1, "x", arr, 1), -EINVAL);
    msgpack_sbuffer_destroy(&args);
    msgpack_sbuffer_destroy(&frame);
}

/* Decodes a hand-made payload; returns the error code name (or "ok"). */
static const char *decode(const uint8_t *p, size_t n, hms_api_request *r)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const char *code = NULL, *why = NULL;
    int rc = hms_api_decode_request(&u, p, n, r, &code, &why);
    msgpack_unpacked_destroy(&u);
    if (rc == 0)
        return "ok";
    CU_ASSERT_PTR_NOT_NULL(why);
    return code;
}

static void test_request_rejects(void)
{
    hms_api_request r;
    const uint8_t not_map[] = {0x92, 0x01, 0x02};
    CU_ASSERT_STRING_EQUAL(decode(not_map, sizeof(not_map), &r), HMS_API_E_BAD_FRAME);
    const uint8_t trailing[] = {0x80, 0x80};
    CU_ASSERT_STRING_EQUAL(decode(trailing, sizeof(trailing), &r), HMS_API_E_BAD_FRAME);
    const uint8_t no_id[] = {0x81, 0xa2, 'o', 'p', 0xa1, 'x'};
    CU_ASSERT_STRING_EQUAL(decode(no_id, sizeof(no_id), &r), HMS_API_E_BAD_REQUEST);
    const uint8_t neg_id[] = {0x82, 0xa2, 'i', 'd', 0xff, 0xa2, 'o', 'p', 0xa1, 'x'};
    CU_ASSERT_STRING_EQUAL(decode(neg_id, sizeof(neg_id), &r), HMS_API_E_BAD_REQUEST);
    const uint8_t no_op[] = {0x81, 0xa2, 'i', 'd', 0x07};
    CU_ASSERT_STRING_EQUAL(decode(no_op, sizeof(no_op), &r), HMS_API_E_BAD_REQUEST);
    CU_ASSERT(r.has_id);
    CU_ASSERT_EQUAL(r.id, 7); /* so the error can name the request */
    const uint8_t op_int[] = {0x82, 0xa2, 'i', 'd', 0x07, 0xa2, 'o', 'p', 0x05};
    CU_ASSERT_STRING_EQUAL(decode(op_int, sizeof(op_int), &r), HMS_API_E_BAD_REQUEST);
    const uint8_t op_nul[] = {0x82, 0xa2, 'i', 'd', 0x07, 0xa2, 'o', 'p', 0xa2, 'a', 0};
    CU_ASSERT_STRING_EQUAL(decode(op_nul, sizeof(op_nul), &r), HMS_API_E_BAD_REQUEST);
    uint8_t long_op[8 + 2 + HMS_API_OP_MAX + 1] = {0x82, 0xa2, 'i', 'd',  0x07,
                                                   0xa2, 'o',  'p', 0xd9, HMS_API_OP_MAX + 1};
    memset(long_op + 10, 'a', HMS_API_OP_MAX + 1);
    CU_ASSERT_STRING_EQUAL(decode(long_op, sizeof(long_op), &r), HMS_API_E_BAD_REQUEST);
    const uint8_t ok[] = {0x82, 0xa2, 'i', 'd', 0x07, 0xa2, 'o', 'p', 0xa1, 'x'};
    CU_ASSERT_STRING_EQUAL(decode(ok, sizeof(ok), &r), "ok");
}

static void test_reply_round_trip(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const uint8_t result[] = {0x92, 0x01, 0xa1, 'b'};
    CU_ASSERT_EQUAL(hms_api_encode_ok(&sb, true, 9, true, result, sizeof(result)), 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    hms_api_reply rep;
    CU_ASSERT_EQUAL(hms_api_decode_reply(&u, (uint8_t *)sb.data + 4, sb.size - 4, &rep), 0);
    CU_ASSERT(rep.ok && rep.more && rep.has_id && rep.id == 9);
    CU_ASSERT(rep.result && rep.result->type == MSGPACK_OBJECT_ARRAY &&
              rep.result->via.array.size == 2);
    msgpack_unpacked_destroy(&u);

    msgpack_sbuffer_clear(&sb);
    CU_ASSERT_EQUAL(hms_api_encode_error(&sb, false, 0, HMS_API_E_TOO_LARGE, "too big"), 0);
    msgpack_unpacked_init(&u);
    CU_ASSERT_EQUAL(hms_api_decode_reply(&u, (uint8_t *)sb.data + 4, sb.size - 4, &rep), 0);
    CU_ASSERT(!rep.ok && !rep.has_id && !rep.more);
    CU_ASSERT_STRING_EQUAL(rep.code, HMS_API_E_TOO_LARGE);
    CU_ASSERT_STRING_EQUAL(rep.message, "too big");
    msgpack_unpacked_destroy(&u);

    /* a reply without ok, or an error without its map, is refused */
    const uint8_t no_ok[] = {0x81, 0xa2, 'i', 'd', 0x01};
    msgpack_unpacked_init(&u);
    CU_ASSERT_EQUAL(hms_api_decode_reply(&u, no_ok, sizeof(no_ok), &rep), -EINVAL);
    msgpack_unpacked_destroy(&u);
    const uint8_t bad_err[] = {0x82, 0xa2, 'o', 'k', 0xc2, 0xa5, 'e', 'r', 'r', 'o', 'r', 0x01};
    msgpack_unpacked_init(&u);
    CU_ASSERT_EQUAL(hms_api_decode_reply(&u, bad_err, sizeof(bad_err), &rep), -EINVAL);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void test_meta_fields(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "c", 1);
    msgpack_pack_bin_with_body(&pk, "\x01\x02\x03", 3);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_bin_with_body(&pk, "hello", 5);
    const uint8_t *d;
    size_t n;
    CU_ASSERT_EQUAL(hms_meta_get_field((uint8_t *)sb.data, sb.size, "c", &d, &n), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(memcmp(d, "\x01\x02\x03", 3), 0);
    CU_ASSERT_EQUAL(hms_meta_get_field((uint8_t *)sb.data, sb.size, "a", &d, &n), 0);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(hms_meta_get_field((uint8_t *)sb.data, sb.size, "x", &d, &n), -ENOENT);
    CU_ASSERT_EQUAL(hms_meta_get_field((uint8_t *)sb.data, sb.size - 1, "a", &d, &n), -EINVAL);
    CU_ASSERT_EQUAL(hms_meta_get_field(NULL, 0, "a", &d, &n), -ENOENT);
    const uint8_t not_map[] = {0x91, 0x01};
    CU_ASSERT_EQUAL(hms_meta_get_field(not_map, 2, "a", &d, &n), -EINVAL);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("api_codec", NULL, NULL);
    CU_add_test(s, "len", test_len);
    CU_add_test(s, "mp_check", test_mp_check);
    CU_add_test(s, "request_round_trip", test_request_round_trip);
    CU_add_test(s, "request_rejects", test_request_rejects);
    CU_add_test(s, "reply_round_trip", test_reply_round_trip);
    CU_add_test(s, "meta_fields", test_meta_fields);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
