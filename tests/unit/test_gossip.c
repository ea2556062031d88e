/*
 * Unit tests of the gossip wire codec: round trips of every message type and
 * of push-pull states, and rejection of malformed input (truncations,
 * trailing bytes, oversize fields, wrong counts, other versions).
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <string.h>

#include "proto/gossip.h"

static const uint8_t meta[] = "svc=3", cert[100] = {7, 7, 7}, udata[] = "head 42";

static void sample(uint8_t type, gossip_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->seq = 123456;
    memset(m->target_key, 0xab, GOSSIP_KEY_LEN);
    m->want_nack = true;
    strcpy(m->name, "node-1.example");
    memset(m->key, 0x5a, GOSSIP_KEY_LEN);
    hms_addr_parse("192.168.1.20:7950", 7950, &m->addr);
    m->incarnation = 0x1234567890ULL;
    strcpy(m->from, "node-2");
    m->meta = meta;
    m->meta_len = sizeof(meta);
    m->cert = cert;
    m->cert_len = sizeof(cert);
    m->user_kind = 9;
    m->user_seq = 77;
    m->data = udata;
    m->data_len = sizeof(udata);
}

static size_t packet(const gossip_msg *ms, size_t n, uint8_t *buf, size_t cap)
{
    size_t len = 1;
    buf[0] = GOSSIP_VERSION;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        CU_ASSERT_EQUAL_FATAL(gossip_encode_msg(&ms[i], buf + len, cap - len, &k), 0);
        len += k;
    }
    return len;
}

static void test_round_trip(void)
{
    static const uint8_t types[] = {GOSSIP_PING,  GOSSIP_PING_REQ, GOSSIP_ACK,  GOSSIP_NACK,
                                    GOSSIP_ALIVE, GOSSIP_SUSPECT,  GOSSIP_DEAD, GOSSIP_LEAVE,
                                    GOSSIP_USER,  GOSSIP_WHO};
    gossip_msg in[10], out[10];
    for (size_t i = 0; i < 10; i++)
        sample(types[i], &in[i]);
    uint8_t buf[4096];
    size_t len = packet(in, 10, buf, sizeof(buf));
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(gossip_decode_packet(buf, len, out, 10, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, 10);
    CU_ASSERT_EQUAL(out[0].seq, 123456);
    CU_ASSERT(memcmp(out[0].target_key, in[0].target_key, GOSSIP_KEY_LEN) == 0);
    CU_ASSERT(out[1].want_nack);
    CU_ASSERT_EQUAL(out[2].seq, 123456);
    CU_ASSERT_STRING_EQUAL(out[4].name, "node-1.example");
    CU_ASSERT(hms_addr_equal(&out[4].addr, &in[4].addr));
    CU_ASSERT_EQUAL(out[4].incarnation, 0x1234567890ULL);
    CU_ASSERT_EQUAL(out[4].meta_len, sizeof(meta));
    CU_ASSERT(memcmp(out[4].meta, meta, sizeof(meta)) == 0);
    CU_ASSERT_EQUAL(out[4].cert_len, sizeof(cert));
    CU_ASSERT_STRING_EQUAL(out[5].from, "node-2");
    CU_ASSERT(memcmp(out[6].key, in[6].key, GOSSIP_KEY_LEN) == 0);
    CU_ASSERT_EQUAL(out[7].incarnation, in[7].incarnation);
    CU_ASSERT_EQUAL(out[8].user_kind, 9);
    CU_ASSERT_EQUAL(out[8].user_seq, 77);
    CU_ASSERT_EQUAL(out[8].data_len, sizeof(udata));
    CU_ASSERT_EQUAL(out[9].type, GOSSIP_WHO);
    /* IPv6 addresses too. */
    hms_addr_parse("[2001:db8::7]:8000", 7950, &in[4].addr);
    len = packet(&in[4], 1, buf, sizeof(buf));
    CU_ASSERT_EQUAL_FATAL(gossip_decode_packet(buf, len, out, 10, &n), 0);
    CU_ASSERT(hms_addr_equal(&out[0].addr, &in[4].addr));
}

static void test_encode_rejects(void)
{
    gossip_msg m;
    uint8_t buf[2048];
    size_t len;
    sample(GOSSIP_ALIVE, &m);
    m.name[0] = '\0';
    CU_ASSERT_EQUAL(gossip_encode_msg(&m, buf, sizeof(buf), &len), -EINVAL);
    sample(GOSSIP_ALIVE, &m);
    m.name[3] = '\n';
    CU_ASSERT_EQUAL(gossip_encode_msg(&m, buf, sizeof(buf), &len), -EINVAL);
    sample(GOSSIP_ALIVE, &m);
    m.meta_len = GOSSIP_META_MAX + 1;
    CU_ASSERT_EQUAL(gossip_encode_msg(&m, buf, sizeof(buf), &len), -EINVAL);
    sample(GOSSIP_ALIVE, &m);
    m.addr.family = 5;
    CU_ASSERT_EQUAL(gossip_encode_msg(&m, buf, sizeof(buf), &len), -EINVAL);
    sample(GOSSIP_SUSPECT, &m);
    memset(m.from, 'x', sizeof(m.from)); /* no terminator within the bound */
    CU_ASSERT_EQUAL(gossip_encode_msg(&m, buf, sizeof(buf), &len), -EINVAL);
    sample(GOSSIP_ALIVE, &m);
    CU_ASSERT_EQUAL(gossip_encode_msg(&m, buf, 40, &len), -ENOBUFS);
    m.type = 99;
    CU_ASSERT_EQUAL(gossip_encode_msg(&m, buf, sizeof(buf), &len), -EINVAL);
}

static void test_decode_rejects(void)
{
    gossip_msg in[3], out[GOSSIP_MSGS_MAX];
    sample(GOSSIP_ALIVE, &in[0]);
    sample(GOSSIP_SUSPECT, &in[1]);
    sample(GOSSIP_USER, &in[2]);
    uint8_t buf[4096];
    size_t len = packet(in, 3, buf, sizeof(buf)), n;
    /* Every strict prefix is malformed except the message boundaries. */
    size_t ok = 0;
    for (size_t cut = 0; cut < len; cut++)
        ok += gossip_decode_packet(buf, cut, out, GOSSIP_MSGS_MAX, &n) == 0;
    CU_ASSERT_EQUAL(ok, 2); /* after message 1 and after message 2 */
    buf[len] = 0xc0;        /* trailing nil */
    CU_ASSERT_EQUAL(gossip_decode_packet(buf, len + 1, out, GOSSIP_MSGS_MAX, &n), -EBADMSG);
    buf[0] = 2;
    CU_ASSERT_EQUAL(gossip_decode_packet(buf, len, out, GOSSIP_MSGS_MAX, &n), -EPROTONOSUPPORT);
    buf[0] = GOSSIP_VERSION;
    CU_ASSERT_EQUAL(gossip_decode_packet(buf, 1, out, GOSSIP_MSGS_MAX, &n), -EBADMSG);
    CU_ASSERT_EQUAL(gossip_decode_packet(buf, 0, out, GOSSIP_MSGS_MAX, &n), -EBADMSG);
    /* More messages than the caller has room for. */
    CU_ASSERT_EQUAL(gossip_decode_packet(buf, len, out, 2, &n), -EBADMSG);

    /* Hand-made bad encodings: [3, seq] variants and a name too long. */
    static const uint8_t ack_ok[] = {1, 0x92, 3, 5};
    static const uint8_t ack_neg[] = {1, 0x92, 3, 0xff}; /* negative fixint */
    static const uint8_t ack_big[] = {1, 0x92, 3, 0xcf, 1, 0, 0, 0, 0, 0, 0, 0}; /* > u32 */
    static const uint8_t ack_extra[] = {1, 0x93, 3, 5, 5}; /* three elements */
    static const uint8_t huge_array[] = {1, 0xdd, 0xff, 0xff, 0xff, 0xff, 3, 5};
    static const uint8_t bad_type[] = {1, 0x92, 12, 5};
    CU_ASSERT_EQUAL(gossip_decode_packet(ack_ok, sizeof(ack_ok), out, 4, &n), 0);
    CU_ASSERT_EQUAL(gossip_decode_packet(ack_neg, sizeof(ack_neg), out, 4, &n), -EBADMSG);
    CU_ASSERT_EQUAL(gossip_decode_packet(ack_big, sizeof(ack_big), out, 4, &n), -EBADMSG);
    CU_ASSERT_EQUAL(gossip_decode_packet(ack_extra, sizeof(ack_extra), out, 4, &n), -EBADMSG);
    CU_ASSERT_EQUAL(gossip_decode_packet(huge_array, sizeof(huge_array), out, 4, &n), -EBADMSG);
    CU_ASSERT_EQUAL(gossip_decode_packet(bad_type, sizeof(bad_type), out, 4, &n), -EBADMSG);
    uint8_t longname[100] = {1, 0x94, 8, 0xd9, 65};
    memset(longname + 5, 'a', 65);
    CU_ASSERT_EQUAL(gossip_decode_packet(longname, 70, out, 4, &n), -EBADMSG);
    /* 65 acks in one packet: over GOSSIP_MSGS_MAX. */
    uint8_t many[1 + 65 * 3];
    many[0] = 1;
    for (int i = 0; i < 65; i++) {
        many[1 + 3 * i] = 0x92;
        many[2 + 3 * i] = 3;
        many[3 + 3 * i] = 1;
    }
    CU_ASSERT_EQUAL(gossip_decode_packet(many, 1 + 64 * 3, out, GOSSIP_MSGS_MAX, &n), 0);
    CU_ASSERT_EQUAL(gossip_decode_packet(many, sizeof(many), out, GOSSIP_MSGS_MAX, &n), -EBADMSG);
    /* A key of 31 bytes and an address of an unknown family. */
    gossip_msg m;
    sample(GOSSIP_ALIVE, &m);
    len = packet(&m, 1, buf, sizeof(buf));
    uint8_t *k = memchr(buf, 0xc4, len); /* the key's bin8 header */
    CU_ASSERT_FATAL(k != NULL && k[1] == 32);
    k[1] = 31;
    CU_ASSERT_EQUAL(gossip_decode_packet(buf, len, out, 4, &n), -EBADMSG);
    k[1] = 32;
    CU_ASSERT_EQUAL(k[34], 0xc4); /* then the address */
    k[36] = 5;
    CU_ASSERT_EQUAL(gossip_decode_packet(buf, len, out, 4, &n), -EBADMSG);
}

static void test_pushpull(void)
{
    static uint8_t buf[1 << 14];
    gossip_pp_writer w;
    CU_ASSERT_EQUAL_FATAL(gossip_pp_begin(&w, buf, sizeof(buf), true, "joiner"), 0);
    for (int i = 0; i < 3; i++) {
        gossip_member m;
        memset(&m, 0, sizeof(m));
        snprintf(m.name, sizeof(m.name), "m%d", i);
        memset(m.key, i + 1, GOSSIP_KEY_LEN);
        hms_addr_parse("10.1.1.1:7950", 7950, &m.addr);
        m.incarnation = 10u + (unsigned)i;
        m.status = (uint8_t)i;
        m.meta = meta;
        m.meta_len = i == 1 ? sizeof(meta) : 0;
        m.cert = cert;
        m.cert_len = i == 2 ? sizeof(cert) : 0;
        m.age_s = i == 2 ? GOSSIP_AGE_MAX + 5 : 7u * (unsigned)i; /* the first is capped */
        CU_ASSERT_EQUAL(gossip_pp_add(&w, &m), 0);
    }
    gossip_member bad;
    memset(&bad, 0, sizeof(bad));
    strcpy(bad.name, "x");
    bad.status = 4;
    hms_addr_parse("10.1.1.1:7950", 7950, &bad.addr);
    CU_ASSERT_EQUAL(gossip_pp_add(&w, &bad), -EINVAL);
    size_t len;
    CU_ASSERT_EQUAL_FATAL(gossip_pp_finish(&w, &len), 0);

    gossip_pp_reader r;
    bool join = false;
    char sender[GOSSIP_NAME_MAX + 1];
    uint32_t count = 0;
    CU_ASSERT_EQUAL_FATAL(gossip_pp_open(&r, buf, len, &join, sender, &count), 0);
    CU_ASSERT(join);
    CU_ASSERT_STRING_EQUAL(sender, "joiner");
    CU_ASSERT_EQUAL(count, 3);
    gossip_member m;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(gossip_pp_next(&r, &m), 1);
        CU_ASSERT_EQUAL(m.incarnation, 10u + (unsigned)i);
        CU_ASSERT_EQUAL(m.status, i);
        CU_ASSERT_EQUAL(m.age_s, i == 2 ? GOSSIP_AGE_MAX : 7u * (unsigned)i);
    }
    CU_ASSERT_EQUAL(m.cert_len, sizeof(cert));
    CU_ASSERT_EQUAL(gossip_pp_next(&r, &m), 0);

    /* Truncations and a count that disagrees with the records. */
    size_t ok = 0;
    for (size_t cut = 0; cut < len; cut++)
        ok += gossip_pp_open(&r, buf, cut, &join, sender, &count) == 0;
    CU_ASSERT_EQUAL(ok, 0);
    size_t pos = w.count_pos;
    buf[pos + 4] = 4;
    CU_ASSERT_EQUAL(gossip_pp_open(&r, buf, len, &join, sender, &count), -EBADMSG);
    buf[pos + 4] = 2;
    CU_ASSERT_EQUAL(gossip_pp_open(&r, buf, len, &join, sender, &count), -EBADMSG);
    buf[pos + 1] = 0xff; /* 4 billion records claimed */
    buf[pos + 4] = 3;
    CU_ASSERT_EQUAL(gossip_pp_open(&r, buf, len, &join, sender, &count), -EBADMSG);
    buf[pos + 1] = 0;
    buf[0] = 9;
    CU_ASSERT_EQUAL(gossip_pp_open(&r, buf, len, &join, sender, &count), -EPROTONOSUPPORT);
    /* A small buffer: records that do not fit are refused, the count stays
     * right. */
    uint8_t small[120];
    CU_ASSERT_EQUAL_FATAL(gossip_pp_begin(&w, small, sizeof(small), false, "s"), 0);
    memset(&m, 0, sizeof(m));
    strcpy(m.name, "a");
    hms_addr_parse("10.1.1.1:7950", 7950, &m.addr);
    CU_ASSERT_EQUAL(gossip_pp_add(&w, &m), 0);
    m.cert = cert;
    m.cert_len = sizeof(cert);
    CU_ASSERT_EQUAL(gossip_pp_add(&w, &m), -ENOBUFS);
    CU_ASSERT_EQUAL(gossip_pp_finish(&w, &len), 0);
    CU_ASSERT_EQUAL(gossip_pp_open(&r, small, len, &join, sender, &count), 0);
    CU_ASSERT_EQUAL(count, 1);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("gossip", NULL, NULL);
    CU_add_test(s, "round trip of every message", test_round_trip);
    CU_add_test(s, "encoder refuses invalid fields", test_encode_rejects);
    CU_add_test(s, "decoder rejects malformed packets", test_decode_rejects);
    CU_add_test(s, "push-pull state", test_pushpull);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned f = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return f ? 1 : 0;
}
