/*
 * Fuzz target: the gossip UDP packet decoder (proto/gossip.c). Any input must
 * decode or be rejected without reading outside the buffer; what decodes must
 * re-encode to a packet that decodes to the same messages.
 *
 * The seed corpus in corpus/fuzz_gossip/ holds one valid packet per message
 * type and a compound packet. Regenerate it with
 *   cc -DGOSSIP_CORPUS_GEN -I. tests/fuzz/fuzz_gossip.c proto/gossip.c proto/addr.c \
 *      $(pkg-config --cflags --libs msgpack) -o /tmp/gen && /tmp/gen tests/fuzz/corpus/fuzz_gossip
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gossip.h"

static gossip_msg msgs[GOSSIP_MSGS_MAX], again[GOSSIP_MSGS_MAX];

static int same(const gossip_msg *a, const gossip_msg *b)
{
    return a->type == b->type && a->seq == b->seq &&
           memcmp(a->target_key, b->target_key, GOSSIP_KEY_LEN) == 0 &&
           a->want_nack == b->want_nack && strcmp(a->name, b->name) == 0 &&
           memcmp(a->key, b->key, GOSSIP_KEY_LEN) == 0 && a->incarnation == b->incarnation &&
           strcmp(a->from, b->from) == 0 && a->meta_len == b->meta_len &&
           (a->meta_len == 0 || memcmp(a->meta, b->meta, a->meta_len) == 0) &&
           a->cert_len == b->cert_len &&
           (a->cert_len == 0 || memcmp(a->cert, b->cert, a->cert_len) == 0) &&
           a->user_kind == b->user_kind && a->user_seq == b->user_seq &&
           a->data_len == b->data_len &&
           (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0) &&
           (a->type != GOSSIP_ALIVE || hms_addr_equal(&a->addr, &b->addr));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n;
    if (gossip_decode_packet(data, size, msgs, GOSSIP_MSGS_MAX, &n) != 0)
        return 0;
    static uint8_t buf[GOSSIP_MSGS_MAX * GOSSIP_MSG_MAX_LEN + 1];
    size_t len = 1;
    buf[0] = GOSSIP_VERSION;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        if (gossip_encode_msg(&msgs[i], buf + len, sizeof(buf) - len, &k) != 0)
            abort(); /* everything the decoder accepts must be encodable */
        len += k;
    }
    size_t m;
    if (gossip_decode_packet(buf, len, again, GOSSIP_MSGS_MAX, &m) != 0 || m != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!same(&msgs[i], &again[i]))
            abort();
    return 0;
}

#ifdef GOSSIP_CORPUS_GEN
static void put(const char *dir, const char *name, const gossip_msg *ms, size_t n)
{
    uint8_t buf[4096];
    size_t len = 1;
    buf[0] = GOSSIP_VERSION;
    for (size_t i = 0; i < n; i++) {
        size_t k;
        if (gossip_encode_msg(&ms[i], buf + len, sizeof(buf) - len, &k) != 0) {
            fprintf(stderr, "error: cannot encode '%s'\n", name);
            exit(1);
        }
        len += k;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        fprintf(stderr, "error: cannot write '%s'\n", path);
        exit(1);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    gossip_msg m[6];
    memset(m, 0, sizeof(m));
    static const uint8_t meta[] = "svc=3;digest=ab12", cert[64] = {1, 2, 3}, data[] = "revoke 17";
    m[0].type = GOSSIP_PING;
    m[0].seq = 7;
    memset(m[0].target_key, 0xaa, GOSSIP_KEY_LEN);
    put(dir, "ping", m, 1);
    m[0].type = GOSSIP_PING_REQ;
    m[0].want_nack = true;
    put(dir, "ping_req", m, 1);
    memset(&m[0], 0, sizeof(m[0]));
    m[0].type = GOSSIP_ACK;
    m[0].seq = 70000;
    put(dir, "ack", m, 1);
    m[0].type = GOSSIP_NACK;
    put(dir, "nack", m, 1);
    m[0].type = GOSSIP_WHO;
    put(dir, "who", m, 1);
    memset(&m[0], 0, sizeof(m[0]));
    m[0].type = GOSSIP_ALIVE;
    strcpy(m[0].name, "web-1");
    memset(m[0].key, 0x11, GOSSIP_KEY_LEN);
    hms_addr_parse("10.0.0.5:7950", 7950, &m[0].addr);
    m[0].incarnation = 42;
    m[0].meta = meta;
    m[0].meta_len = sizeof(meta);
    m[0].cert = cert;
    m[0].cert_len = sizeof(cert);
    put(dir, "alive", m, 1);
    hms_addr_parse("[fe80::1]:7951", 7950, &m[0].addr);
    put(dir, "alive6", m, 1);
    m[1] = m[0];
    m[1].type = GOSSIP_SUSPECT;
    strcpy(m[1].from, "web-2");
    m[1].incarnation = 1ULL << 40;
    put(dir, "suspect", m + 1, 1);
    m[2] = m[1];
    m[2].type = GOSSIP_DEAD;
    put(dir, "dead", m + 2, 1);
    m[3] = m[1];
    m[3].type = GOSSIP_LEAVE;
    put(dir, "leave", m + 3, 1);
    memset(&m[4], 0, sizeof(m[4]));
    m[4].type = GOSSIP_USER;
    strcpy(m[4].name, "web-1");
    m[4].user_kind = 3;
    m[4].user_seq = (5ULL << 32) + 1;
    m[4].data = data;
    m[4].data_len = sizeof(data);
    put(dir, "user", m + 4, 1);
    memset(&m[5], 0, sizeof(m[5]));
    m[5].type = GOSSIP_PING;
    m[5].seq = 1;
    put(dir, "compound", m, 6);
    return 0;
}
#endif
