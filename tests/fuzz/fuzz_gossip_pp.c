/*
 * Fuzz target: the push-pull state decoder (proto/gossip.c) and the core's
 * merge of a remote state (swim_pushpull_serve). A state that opens must
 * iterate to its announced count and re-encode to the same records; any
 * input given to the core must leave it consistent.
 *
 * Regenerate the seed corpus in corpus/fuzz_gossip_pp/ with
 *   cc -DGOSSIP_CORPUS_GEN -I. tests/fuzz/fuzz_gossip_pp.c proto/gossip.c proto/addr.c \
 *      agent/swim/swim*.c $(pkg-config --cflags --libs msgpack) -lm \
 *      -o /tmp/gen && /tmp/gen tests/fuzz/corpus/fuzz_gossip_pp
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/swim/swim.h"
#include "proto/gossip.h"

static swim_t *core;
static uint8_t peer_key[SWIM_KEY_LEN];

static void drain(void)
{
    swim_output o;
    while (swim_poll(core, &o))
        ;
}

static void setup(void)
{
    swim_config c;
    memset(&c, 0, sizeof(c));
    c.name = "self";
    memset(c.key, 0x01, SWIM_KEY_LEN);
    hms_addr_parse("10.0.0.1:7950", 7950, &c.addr);
    c.incarnation = 5;
    c.seed = 1;
    swim_profile_by_name("lan", &c.profile);
    core = swim_new(&c, 1000);
    memset(peer_key, 0x22, SWIM_KEY_LEN);
    if (!core)
        abort();
    drain();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!core)
        setup();
    gossip_pp_reader r;
    bool join;
    char sender[GOSSIP_NAME_MAX + 1];
    uint32_t count;
    if (gossip_pp_open(&r, data, size, &join, sender, &count) == 0) {
        size_t cap = size + 64;
        uint8_t *buf = malloc(cap);
        gossip_pp_writer w;
        if (!buf || gossip_pp_begin(&w, buf, cap, join, sender) != 0)
            abort();
        gossip_member m;
        uint32_t got = 0;
        int rc;
        while ((rc = gossip_pp_next(&r, &m)) == 1) {
            got++;
            if (gossip_pp_add(&w, &m) != 0)
                abort();
        }
        size_t len;
        if (rc != 0 || got != count || gossip_pp_finish(&w, &len) != 0)
            abort();
        gossip_pp_reader r2;
        bool join2;
        char sender2[GOSSIP_NAME_MAX + 1];
        uint32_t count2;
        if (gossip_pp_open(&r2, buf, len, &join2, sender2, &count2) != 0 || count2 != count ||
            join2 != join || strcmp(sender, sender2) != 0)
            abort();
        free(buf);
    }
    static hms_time now = 1000;
    now += 1000;
    hms_addr from;
    hms_addr_parse("10.0.0.2:7950", 7950, &from);
    const uint8_t *reply;
    size_t rlen;
    swim_pushpull_serve(core, now, &from, peer_key, data, size, &reply, &rlen);
    drain();
    now = swim_tick(core, now);
    drain();
    if (swim_member_count(core) > 4096) { /* keep the table from growing without end */
        swim_delete(core);
        core = NULL;
    }
    return 0;
}

#ifdef GOSSIP_CORPUS_GEN
static void put(const char *dir, const char *name, const uint8_t *b, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, len, f) != len) {
        fprintf(stderr, "error: cannot write '%s'\n", path);
        exit(1);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    static uint8_t buf[1 << 16];
    static const uint8_t meta[] = "svc=1", cert[40] = {9};
    const char *names[] = {"peer", "db-1", "db-2", "cache"};
    for (int n = 1; n <= 4; n++) {
        gossip_pp_writer w;
        gossip_pp_begin(&w, buf, sizeof(buf), n == 1, "peer");
        for (int i = 0; i < n; i++) {
            gossip_member m;
            memset(&m, 0, sizeof(m));
            strcpy(m.name, names[i]);
            memset(m.key, 0x22 + i, GOSSIP_KEY_LEN);
            hms_addr_parse(i == 3 ? "[::1]:7950" : "10.0.0.2:7950", 7950, &m.addr);
            m.addr.ip[3] = (uint8_t)(2 + i);
            m.incarnation = (uint64_t)(i + 1);
            m.status = (uint8_t)(i % 4);
            if (i == 0)
                m.status = 0;
            m.meta = meta;
            m.meta_len = sizeof(meta);
            m.cert = cert;
            m.cert_len = (uint16_t)(i == 1 ? sizeof(cert) : 0);
            if (gossip_pp_add(&w, &m) != 0)
                return 1;
        }
        size_t len;
        gossip_pp_finish(&w, &len);
        char name[32];
        snprintf(name, sizeof(name), "state%d", n);
        put(dir, name, buf, len);
    }
    return 0;
}
#endif
