/*
 * Service catalog model and wire format: validation and limits, codec round
 * trip and canonical form, digest, versioning of the local set, merge rules
 * of the replicated view, lookups filtered by member status, health and
 * tags, and the catalog summary.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog/view.h"
#include "proto/catalog.h"

static void mk(cat_instance *x, const char *id, const char *name, uint16_t port, cat_status st)
{
    cat_instance_init(x);
    snprintf(x->id, sizeof(x->id), "%s", id);
    snprintf(x->name, sizeof(x->name), "%s", name);
    snprintf(x->address, sizeof(x->address), "127.0.0.1");
    x->port = port;
    x->status = (uint8_t)st;
}

static void test_validation_messages(void)
{
    char err[256];
    char longname[100];
    memset(longname, 'a', 64);
    longname[64] = '\0';
    CU_ASSERT_EQUAL(cat_check_name("payment-service", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_check_name(longname, err, sizeof(err)), -E2BIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "name_max"));
    CU_ASSERT_EQUAL(cat_check_name("", err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty"));
    CU_ASSERT_EQUAL(cat_check_name("pay ment", err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'pay ment'"));
    CU_ASSERT_EQUAL(cat_check_name("-pay", err, sizeof(err)), -EINVAL);
    CU_ASSERT_EQUAL(cat_check_name("pay_ment", err, sizeof(err)), -EINVAL);
    CU_ASSERT_EQUAL(cat_check_id("pay-1:a/b", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_check_id("pay\n1", err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NULL(strchr(err, '\n')); /* control characters are not echoed */
    CU_ASSERT_EQUAL(cat_check_address("10.0.0.5", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_check_address("::1", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_check_address("db.internal", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_check_address("a b", err, sizeof(err)), -EINVAL);
    CU_ASSERT_EQUAL(cat_check_meta("version", "1.2 beta", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_check_meta("ver sion", "x", err, sizeof(err)), -EINVAL);
    CU_ASSERT_EQUAL(cat_check_meta("k", "a\x01", err, sizeof(err)), -EINVAL);
    char big[CAT_META_VALUE_MAX + 2];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CU_ASSERT_EQUAL(cat_check_meta("k", big, err, sizeof(err)), -E2BIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "meta_value_max"));
}

static void test_tag_and_meta_limits(void)
{
    char err[256], buf[32];
    cat_instance x;
    mk(&x, "a", "svc", 80, CAT_PASSING);
    for (int i = 0; i < CAT_TAGS_MAX; i++) {
        snprintf(buf, sizeof(buf), "t%02d", CAT_TAGS_MAX - i);
        CU_ASSERT_EQUAL(cat_instance_add_tag(&x, buf, err, sizeof(err)), 0);
    }
    CU_ASSERT_EQUAL(cat_instance_add_tag(&x, "t01", err, sizeof(err)), 0); /* duplicate: ignored */
    CU_ASSERT_EQUAL(x.ntags, CAT_TAGS_MAX);
    CU_ASSERT_EQUAL(cat_instance_add_tag(&x, "one-more", err, sizeof(err)), -E2BIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "tags_max"));
    for (int i = 1; i < x.ntags; i++)
        CU_ASSERT(strcmp(x.tags[i - 1], x.tags[i]) < 0);
    CU_ASSERT_EQUAL(cat_instance_add_meta(&x, "b", "2", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_instance_add_meta(&x, "a", "1", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_instance_add_meta(&x, "a", "3", err, sizeof(err)), -EEXIST);
    CU_ASSERT_STRING_EQUAL(x.meta[0].key, "a");
    CU_ASSERT_STRING_EQUAL(cat_instance_meta(&x, "b"), "2");
    /* total metadata bytes */
    char v[400];
    memset(v, 'x', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    CU_ASSERT_EQUAL(cat_instance_add_meta(&x, "c", v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_instance_add_meta(&x, "d", v, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_instance_add_meta(&x, "e", v, err, sizeof(err)), -E2BIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "meta_bytes"));
    CU_ASSERT_EQUAL(cat_instance_check(&x, err, sizeof(err)), 0);
    cat_instance_clear(&x);

    mk(&x, "a", "svc", 80, CAT_PASSING);
    for (int i = 0; i < CAT_META_PAIRS_MAX; i++) {
        snprintf(buf, sizeof(buf), "k%02d", i);
        CU_ASSERT_EQUAL(cat_instance_add_meta(&x, buf, "v", err, sizeof(err)), 0);
    }
    CU_ASSERT_EQUAL(cat_instance_add_meta(&x, "zz", "v", err, sizeof(err)), -E2BIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "meta_pairs_max"));
    x.port = 0;
    CU_ASSERT_EQUAL(cat_instance_check(&x, err, sizeof(err)), -EINVAL);
    cat_instance_clear(&x);
}

static void test_codec_round_trip(void)
{
    cat_instance in[3];
    mk(&in[0], "api-1", "api", 8080, CAT_PASSING);
    mk(&in[1], "api-2", "api", 8081, CAT_WARNING);
    mk(&in[2], "db", "postgres", 5432, CAT_CRITICAL);
    cat_instance_add_tag(&in[0], "v2", NULL, 0);
    cat_instance_add_tag(&in[0], "primary", NULL, 0);
    cat_instance_add_meta(&in[0], "zone", "eu-1", NULL, 0);
    cat_instance_add_meta(&in[0], "build", "1234", NULL, 0);
    snprintf(in[2].address, sizeof(in[2].address), "::1");

    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(cat_set_encode("n1", 42, in, 3, &buf, &len), 0);
    cat_decoded d;
    CU_ASSERT_EQUAL_FATAL(cat_set_decode(buf, len, &d), 0);
    CU_ASSERT_STRING_EQUAL(d.node, "n1");
    CU_ASSERT_EQUAL(d.version, 42);
    CU_ASSERT_EQUAL_FATAL(d.n, 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_TRUE(cat_instance_equal(&d.inst[i], &in[i]));
    uint8_t dg[CAT_DIGEST_LEN];
    cat_set_digest(in, 3, dg);
    CU_ASSERT_EQUAL(memcmp(dg, d.digest, CAT_DIGEST_LEN), 0);

    /* re-encoding the decoded set gives the same bytes */
    uint8_t *buf2;
    size_t len2;
    CU_ASSERT_EQUAL(cat_set_encode(d.node, d.version, d.inst, d.n, &buf2, &len2), 0);
    CU_ASSERT_EQUAL(len, len2);
    CU_ASSERT_EQUAL(memcmp(buf, buf2, len), 0);
    free(buf2);

    /* every truncation is refused, and so are trailing bytes */
    for (size_t cut = 0; cut < len; cut++) {
        cat_decoded t;
        CU_ASSERT_EQUAL(cat_set_decode(buf, cut, &t), -EBADMSG);
        CU_ASSERT_PTR_NULL(t.inst);
    }
    uint8_t *more = malloc(len + 1);
    memcpy(more, buf, len);
    more[len] = 0xc0;
    cat_decoded t;
    CU_ASSERT_EQUAL(cat_set_decode(more, len + 1, &t), -EBADMSG);
    free(more);
    free(buf);

    /* unsorted input is refused by the encoder */
    cat_instance sw[2] = {in[1], in[0]};
    CU_ASSERT_EQUAL(cat_set_encode("n1", 1, sw, 2, &buf, &len), -EINVAL);

    cat_decoded_clear(&d);
    for (int i = 0; i < 3; i++)
        cat_instance_clear(&in[i]);
}

static void test_decoder_refuses_non_canonical(void)
{
    /* [ "n", 1, [ ["b",...], ["a",...] ] ]: ids out of order */
    cat_instance in[2];
    mk(&in[0], "a", "svc", 1, CAT_PASSING);
    mk(&in[1], "b", "svc", 2, CAT_PASSING);
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(cat_set_encode("n", 1, in, 2, &buf, &len), 0);
    /* swap the two ids in place: both are fixstr of length 1 */
    uint8_t *pa = memchr(buf + 4, 'a', len - 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pa);
    *pa = 'c';
    cat_decoded d;
    CU_ASSERT_EQUAL(cat_set_decode(buf, len, &d), -EBADMSG);
    free(buf);

    /* a huge declared array with no body */
    uint8_t huge[] = {0x93, 0xa1, 'n', 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff};
    CU_ASSERT_EQUAL(cat_set_decode(huge, sizeof(huge), &d), -EBADMSG);
    /* a long declared string */
    uint8_t hs[] = {0x93, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'n'};
    CU_ASSERT_EQUAL(cat_set_decode(hs, sizeof(hs), &d), -EBADMSG);
    cat_instance_clear(&in[0]);
    cat_instance_clear(&in[1]);
}

/* A set at every limit at once still encodes under CAT_SET_ENCODED_MAX and
 * decodes: the decoder's bound does not refuse a valid set. */
static void test_largest_set(void)
{
    cat_instance *in = calloc(CAT_INSTANCES_MAX, sizeof(cat_instance));
    char s[CAT_META_VALUE_MAX + 1];
    for (int i = 0; i < CAT_INSTANCES_MAX; i++) {
        cat_instance *x = &in[i];
        cat_instance_init(x);
        memset(x->id, 'i', CAT_ID_MAX);
        snprintf(x->id + CAT_ID_MAX - 3, 4, "%03d", i);
        memset(x->name, 'n', CAT_NAME_MAX);
        memset(x->address, 'a', CAT_ADDR_MAX);
        x->port = 65535;
        x->status = CAT_CRITICAL;
        for (int t = 0; t < CAT_TAGS_MAX; t++) {
            memset(s, 't', CAT_TAG_MAX);
            snprintf(s + CAT_TAG_MAX - 2, 3, "%02d", t);
            CU_ASSERT_EQUAL_FATAL(cat_instance_add_tag(x, s, NULL, 0), 0);
        }
        /* 16 pairs of 64 bytes: the whole metadata budget */
        for (int m = 0; m < CAT_META_PAIRS_MAX; m++) {
            char k[8];
            snprintf(k, sizeof(k), "k%02d", m);
            size_t vl = CAT_META_BYTES / CAT_META_PAIRS_MAX - strlen(k);
            memset(s, 'v', vl);
            s[vl] = '\0';
            CU_ASSERT_EQUAL_FATAL(cat_instance_add_meta(x, k, s, NULL, 0), 0);
        }
    }
    char node[CAT_NODE_MAX + 1];
    memset(node, 'N', CAT_NODE_MAX);
    node[CAT_NODE_MAX] = '\0';
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(cat_set_encode(node, UINT64_MAX, in, CAT_INSTANCES_MAX, &buf, &len), 0);
    CU_ASSERT(len <= CAT_SET_ENCODED_MAX);
    cat_decoded d;
    CU_ASSERT_EQUAL(cat_set_decode(buf, len, &d), 0);
    CU_ASSERT_EQUAL(d.n, CAT_INSTANCES_MAX);
    cat_decoded_clear(&d);
    free(buf);
    for (int i = 0; i < CAT_INSTANCES_MAX; i++)
        cat_instance_clear(&in[i]);
    free(in);
}

static void test_meta_record(void)
{
    uint8_t dg[CAT_DIGEST_LEN], out[CAT_DIGEST_LEN], buf[CAT_META_RECORD_MAX];
    for (int i = 0; i < CAT_DIGEST_LEN; i++)
        dg[i] = (uint8_t)i;
    int n = cat_meta_encode(0x0102030405060708ULL, dg, buf, sizeof(buf));
    CU_ASSERT_FATAL(n > 0 && n <= CAT_META_RECORD_MAX);
    uint64_t v;
    CU_ASSERT_EQUAL(cat_meta_decode(buf, (size_t)n, &v, out), 0);
    CU_ASSERT_EQUAL(v, 0x0102030405060708ULL);
    CU_ASSERT_EQUAL(memcmp(dg, out, CAT_DIGEST_LEN), 0);
    for (int cut = 0; cut < n; cut++)
        CU_ASSERT_EQUAL(cat_meta_decode(buf, (size_t)cut, &v, out), -EBADMSG);
    CU_ASSERT_EQUAL(cat_meta_encode(1, dg, buf, 10), -ENOBUFS);
}

static void test_digest_depends_on_content_only(void)
{
    cat_instance a, b;
    uint8_t d1[CAT_DIGEST_LEN], d2[CAT_DIGEST_LEN], d0[CAT_DIGEST_LEN];
    mk(&a, "x", "svc", 80, CAT_PASSING);
    mk(&b, "x", "svc", 80, CAT_PASSING);
    cat_set_digest(&a, 1, d1);
    cat_set_digest(&b, 1, d2);
    CU_ASSERT_EQUAL(memcmp(d1, d2, CAT_DIGEST_LEN), 0);
    b.status = CAT_CRITICAL;
    cat_set_digest(&b, 1, d2);
    CU_ASSERT_NOT_EQUAL(memcmp(d1, d2, CAT_DIGEST_LEN), 0);
    b.status = CAT_PASSING;
    cat_instance_add_tag(&b, "t", NULL, 0);
    cat_set_digest(&b, 1, d2);
    CU_ASSERT_NOT_EQUAL(memcmp(d1, d2, CAT_DIGEST_LEN), 0);
    cat_set_digest(NULL, 0, d0);
    CU_ASSERT_NOT_EQUAL(memcmp(d0, d1, CAT_DIGEST_LEN), 0);
    cat_instance_clear(&a);
    cat_instance_clear(&b);
}

static void test_local_versioning(void)
{
    char err[256];
    bool changed;
    cat_view *v = cat_view_new("n1", 1000);
    CU_ASSERT_EQUAL(cat_view_self(v)->version, 1000);
    uint8_t empty[CAT_DIGEST_LEN];
    memcpy(empty, cat_view_self(v)->digest, CAT_DIGEST_LEN);

    cat_instance x;
    mk(&x, "web", "web", 80, CAT_PASSING);
    CU_ASSERT_EQUAL(cat_view_local_put(v, &x, 0, &changed, err, sizeof(err)), 0);
    CU_ASSERT_TRUE(changed);
    CU_ASSERT_EQUAL(cat_view_self(v)->version, 1001);
    /* the same registration again changes nothing */
    CU_ASSERT_EQUAL(cat_view_local_put(v, &x, 0, &changed, err, sizeof(err)), 0);
    CU_ASSERT_FALSE(changed);
    CU_ASSERT_EQUAL(cat_view_self(v)->version, 1001);
    /* a stamp from a later clock wins over +1 */
    x.port = 81;
    CU_ASSERT_EQUAL(cat_view_local_put(v, &x, 5000, &changed, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_view_self(v)->version, 5000);
    CU_ASSERT_EQUAL(cat_view_local_status(v, "web", CAT_CRITICAL, 10, &changed), 0);
    CU_ASSERT_TRUE(changed);
    CU_ASSERT_EQUAL(cat_view_self(v)->version, 5001);
    CU_ASSERT_EQUAL(cat_view_local_status(v, "web", CAT_CRITICAL, 10, &changed), 0);
    CU_ASSERT_FALSE(changed);
    CU_ASSERT_EQUAL(cat_view_local_status(v, "nope", CAT_CRITICAL, 10, &changed), -ENOENT);
    CU_ASSERT_EQUAL(cat_view_local_del(v, "nope", 0), -ENOENT);
    CU_ASSERT_EQUAL(cat_view_local_del(v, "web", 0), 0);
    CU_ASSERT_EQUAL(cat_view_self(v)->version, 5002);
    CU_ASSERT_EQUAL(memcmp(empty, cat_view_self(v)->digest, CAT_DIGEST_LEN), 0);

    /* limit on instances per node, with a message naming it */
    char id[16];
    for (int i = 0; i < CAT_INSTANCES_MAX; i++) {
        snprintf(id, sizeof(id), "i%03d", i);
        snprintf(x.id, sizeof(x.id), "%s", id);
        CU_ASSERT_EQUAL(cat_view_local_put(v, &x, 0, &changed, err, sizeof(err)), 0);
    }
    uint64_t ver = cat_view_self(v)->version;
    snprintf(x.id, sizeof(x.id), "extra");
    CU_ASSERT_EQUAL(cat_view_local_put(v, &x, 0, &changed, err, sizeof(err)), -ENOSPC);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "instances_max"));
    CU_ASSERT_EQUAL(cat_view_self(v)->version, ver);
    CU_ASSERT_EQUAL(cat_view_self(v)->n, CAT_INSTANCES_MAX);
    /* replacing an existing one is still allowed at the limit */
    snprintf(x.id, sizeof(x.id), "i000");
    x.port = 99;
    CU_ASSERT_EQUAL(cat_view_local_put(v, &x, 0, &changed, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cat_view_local_get(v, "i000")->port, 99);
    /* invalid instance refused, nothing changed */
    x.name[0] = '\0';
    CU_ASSERT_EQUAL(cat_view_local_put(v, &x, 0, &changed, err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "service name"));
    cat_instance_clear(&x);
    cat_view_delete(v);
}

/* Builds a decoded set for node with instances of `name` of given statuses. */
static void decoded(cat_decoded *d, const char *node, uint64_t ver, const char *name, int n,
                    cat_status st)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->node, sizeof(d->node), "%s", node);
    d->version = ver;
    d->n = (size_t)n;
    d->inst = calloc((size_t)n + 1, sizeof(cat_instance));
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s-%d", name, i);
        mk(&d->inst[i], id, name, (uint16_t)(1000 + i), st);
    }
    cat_set_digest(d->inst, d->n, d->digest);
}

static void test_merge_rules(void)
{
    cat_view *v = cat_view_new("n1", 1);
    cat_decoded d;
    uint8_t dg[CAT_DIGEST_LEN];

    /* an advertisement for an unknown node asks for a fetch */
    decoded(&d, "n2", 10, "api", 2, CAT_PASSING);
    memcpy(dg, d.digest, CAT_DIGEST_LEN);
    CU_ASSERT_TRUE(cat_view_advertise(v, "n2", 10, dg));
    CU_ASSERT_TRUE(cat_view_needs_fetch(v, "n2"));
    CU_ASSERT_EQUAL(cat_view_apply(v, &d), 1);
    CU_ASSERT_PTR_NULL(d.inst);
    CU_ASSERT_FALSE(cat_view_needs_fetch(v, "n2"));
    CU_ASSERT_FALSE(cat_view_advertise(v, "n2", 10, dg));
    cat_decoded_clear(&d);

    /* an older set is ignored */
    decoded(&d, "n2", 9, "api", 1, CAT_PASSING);
    CU_ASSERT_EQUAL(cat_view_apply(v, &d), 0);
    CU_ASSERT_EQUAL(cat_view_find(v, "n2")->n, 2);
    cat_decoded_clear(&d);
    /* the same version and digest changes nothing */
    decoded(&d, "n2", 10, "api", 2, CAT_PASSING);
    CU_ASSERT_EQUAL(cat_view_apply(v, &d), 0);
    cat_decoded_clear(&d);
    /* same version, different digest: refetch and take it */
    decoded(&d, "n2", 10, "api", 3, CAT_PASSING);
    CU_ASSERT_TRUE(cat_view_advertise(v, "n2", 10, d.digest));
    CU_ASSERT_EQUAL(cat_view_apply(v, &d), 1);
    CU_ASSERT_EQUAL(cat_view_find(v, "n2")->n, 3);
    cat_decoded_clear(&d);
    /* a stale advertisement arriving late does not trigger a fetch */
    CU_ASSERT_FALSE(cat_view_advertise(v, "n2", 5, dg));
    /* newer version: fetch */
    CU_ASSERT_TRUE(cat_view_advertise(v, "n2", 11, dg));
    /* a set for the local node is refused */
    decoded(&d, "n1", 100, "api", 1, CAT_PASSING);
    CU_ASSERT_EQUAL(cat_view_apply(v, &d), -EINVAL);
    cat_decoded_clear(&d);
    /* forgetting drops the set */
    CU_ASSERT_TRUE(cat_view_forget(v, "n2"));
    CU_ASSERT_PTR_NULL(cat_view_find(v, "n2"));
    CU_ASSERT_FALSE(cat_view_forget(v, "n1"));
    cat_view_delete(v);
}

static void test_replicas_converge(void)
{
    /* Two views learning the same sets in different orders agree. */
    cat_view *a = cat_view_new("a", 1), *b = cat_view_new("b", 1);
    uint64_t vers[] = {5, 3, 7, 6};
    int counts[] = {1, 4, 2, 3};
    for (int k = 0; k < 4; k++) {
        cat_decoded d;
        decoded(&d, "n9", vers[k], "svc", counts[k], CAT_PASSING);
        cat_view_apply(a, &d);
        cat_decoded_clear(&d);
        decoded(&d, "n9", vers[3 - k], "svc", counts[3 - k], CAT_PASSING);
        cat_view_apply(b, &d);
        cat_decoded_clear(&d);
    }
    const cat_node *na = cat_view_find(a, "n9"), *nb = cat_view_find(b, "n9");
    CU_ASSERT_EQUAL(na->version, 7);
    CU_ASSERT_EQUAL(nb->version, 7);
    CU_ASSERT_EQUAL(memcmp(na->digest, nb->digest, CAT_DIGEST_LEN), 0);
    cat_view_delete(a);
    cat_view_delete(b);
}

static void test_lookup_filters(void)
{
    char err[256];
    bool changed;
    cat_view *v = cat_view_new("n2", 1);
    cat_decoded d;
    decoded(&d, "n1", 3, "api", 2, CAT_PASSING);
    cat_instance_add_tag(&d.inst[0], "v2", NULL, 0);
    cat_set_digest(d.inst, d.n, d.digest);
    CU_ASSERT_EQUAL(cat_view_apply(v, &d), 1);
    cat_decoded_clear(&d);
    decoded(&d, "n3", 3, "api", 1, CAT_CRITICAL);
    CU_ASSERT_EQUAL(cat_view_apply(v, &d), 1);
    cat_decoded_clear(&d);
    decoded(&d, "n4", 3, "api", 1, CAT_WARNING);
    CU_ASSERT_EQUAL(cat_view_apply(v, &d), 1);
    cat_decoded_clear(&d);
    cat_view_member(v, "n1", true);
    cat_view_member(v, "n3", true);
    cat_view_member(v, "n4", true);
    cat_instance x;
    mk(&x, "local-api", "api", 9000, CAT_PASSING);
    cat_instance_add_tag(&x, "v2", NULL, 0);
    CU_ASSERT_EQUAL(cat_view_local_put(v, &x, 0, &changed, err, sizeof(err)), 0);
    cat_instance_clear(&x);

    cat_hit *h;
    size_t n;
    cat_query q = {.name = "api"};
    CU_ASSERT_EQUAL(cat_view_lookup(v, &q, &h, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(h[0].node, "n2"); /* local first */
    CU_ASSERT_STRING_EQUAL(h[1].node, "n1");
    CU_ASSERT_STRING_EQUAL(h[2].node, "n1");
    free(h);

    q.all = true;
    CU_ASSERT_EQUAL(cat_view_lookup(v, &q, &h, &n), 0);
    CU_ASSERT_EQUAL(n, 5);
    free(h);

    const char *tags[] = {"v2"};
    q.all = false;
    q.tags = tags;
    q.ntags = 1;
    CU_ASSERT_EQUAL(cat_view_lookup(v, &q, &h, &n), 0);
    CU_ASSERT_EQUAL(n, 2);
    free(h);
    const char *tags2[] = {"v2", "nope"};
    q.tags = tags2;
    q.ntags = 2;
    CU_ASSERT_EQUAL(cat_view_lookup(v, &q, &h, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
    free(h);

    /* n1 dies: its instances leave lookups; alive again: they return */
    q.ntags = 0;
    CU_ASSERT_TRUE(cat_view_member(v, "n1", false));
    CU_ASSERT_EQUAL(cat_view_lookup(v, &q, &h, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    free(h);
    CU_ASSERT_TRUE(cat_view_member(v, "n1", true));
    CU_ASSERT_EQUAL(cat_view_lookup(v, &q, &h, &n), 0);
    CU_ASSERT_EQUAL(n, 3);
    free(h);
    q.name = "nothing";
    CU_ASSERT_EQUAL(cat_view_lookup(v, &q, &h, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
    free(h);

    cat_service_count *c;
    CU_ASSERT_EQUAL(cat_view_catalog(v, &c, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(c[0].name, "api");
    CU_ASSERT_EQUAL(c[0].passing, 3);
    CU_ASSERT_EQUAL(c[0].warning, 1);
    CU_ASSERT_EQUAL(c[0].critical, 1);
    CU_ASSERT_EQUAL(c[0].nodes, 4);
    free(c);
    cat_view_delete(v);
}

/* ---- randomized convergence ---------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct msg {
    int to;
    uint8_t *buf; /* an encoded set, as a fetch reply carries it */
    size_t len;
} msg;

/*
 * N views; each changes its own set at random; snapshots travel to random
 * views with reordering, duplication and loss (stale sets arrive late).
 * Held versions never go back; after a final round of current snapshots
 * in random order (mixed with stale ones), every view holds every other
 * node's current set. Failures print the seed.
 */
static void test_random_convergence(void)
{
    enum { N = 12, STEPS = 3000, QMAX = 4000 };
    const char *env = getenv("HMS_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0xC0FFEEULL;
    rng = seed;
    cat_view *v[N];
    char names[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "n%02d", i);
        v[i] = cat_view_new(names[i], 1000);
    }
    msg *q = calloc(QMAX, sizeof(msg));
    size_t nq = 0;
    uint64_t clock = 1000;
    bool ok = true;
    for (int step = 0; step < STEPS && ok; step++) {
        int i = (int)(rnd() % N);
        uint64_t r = rnd() % 10;
        char err[256];
        bool changed;
        if (r < 4) { /* a local change */
            cat_instance x;
            char id[16];
            snprintf(id, sizeof(id), "s%llu", (unsigned long long)(rnd() % 6));
            mk(&x, id, rnd() % 2 ? "api" : "db", (uint16_t)(1 + rnd() % 1000),
               (cat_status)(rnd() % 3));
            /* the clock sometimes stalls: versions must still rise */
            clock += rnd() % 3;
            if (rnd() % 4 == 0)
                cat_view_local_del(v[i], id, clock);
            else
                cat_view_local_put(v[i], &x, clock, &changed, err, sizeof(err));
            cat_instance_clear(&x);
        } else if (r < 8 && nq < QMAX) { /* a snapshot leaves for someone */
            const cat_node *s = cat_view_self(v[i]);
            msg *m = &q[nq++];
            m->to = (int)(rnd() % N);
            cat_set_encode(s->name, s->version, s->inst, s->n, &m->buf, &m->len);
            if (rnd() % 5 == 0 && nq < QMAX) { /* duplicated */
                q[nq] = *m;
                q[nq].buf = malloc(m->len);
                memcpy(q[nq].buf, m->buf, m->len);
                nq++;
            }
        } else if (nq) { /* a random message (not the oldest) arrives or is lost */
            size_t k = rnd() % nq;
            msg m = q[k];
            q[k] = q[--nq];
            if (rnd() % 10 != 0) {
                cat_decoded d;
                CU_ASSERT_EQUAL_FATAL(cat_set_decode(m.buf, m.len, &d), 0);
                const cat_node *before = cat_view_find(v[m.to], d.node);
                uint64_t bv = before && before->have ? before->version : 0;
                bool self = !strcmp(d.node, names[m.to]);
                int rc = cat_view_apply(v[m.to], &d);
                CU_ASSERT(self ? rc == -EINVAL : rc >= 0);
                const cat_node *nd = cat_view_find(v[m.to], d.node);
                if (!self && (!nd || nd->version < bv))
                    ok = false; /* a held version went back */
                cat_decoded_clear(&d);
            }
            free(m.buf);
        }
    }
    /* final anti-entropy: current snapshots everywhere, stale ones mixed in */
    for (int round = 0; round < 2; round++) {
        for (int j = 0; j < N; j++) {
            const cat_node *s = cat_view_self(v[j]);
            for (int k = 0; k < N; k++) {
                if (k == j)
                    continue;
                uint8_t *buf;
                size_t len;
                cat_decoded d;
                cat_set_encode(s->name, s->version, s->inst, s->n, &buf, &len);
                cat_set_decode(buf, len, &d);
                cat_view_apply(v[k], &d);
                cat_decoded_clear(&d);
                free(buf);
                if (nq) { /* a stale one in between */
                    size_t x = rnd() % nq;
                    cat_decoded sd;
                    cat_set_decode(q[x].buf, q[x].len, &sd);
                    if (strcmp(sd.node, names[k]))
                        cat_view_apply(v[k], &sd);
                    cat_decoded_clear(&sd);
                    free(q[x].buf);
                    q[x] = q[--nq];
                }
            }
        }
    }
    for (int k = 0; k < N && ok; k++) {
        for (int j = 0; j < N && ok; j++) {
            if (j == k)
                continue;
            const cat_node *s = cat_view_self(v[j]), *c = cat_view_find(v[k], names[j]);
            if (!c || c->version != s->version || memcmp(c->digest, s->digest, CAT_DIGEST_LEN))
                ok = false;
        }
    }
    if (!ok)
        printf("\n  convergence failed with HMS_TEST_SEED=0x%llx\n", (unsigned long long)seed);
    CU_ASSERT_TRUE(ok);
    for (size_t k = 0; k < nq; k++)
        free(q[k].buf);
    free(q);
    for (int i = 0; i < N; i++)
        cat_view_delete(v[i]);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("catalog", NULL, NULL);
    CU_add_test(s, "validation messages", test_validation_messages);
    CU_add_test(s, "tag and meta limits", test_tag_and_meta_limits);
    CU_add_test(s, "codec round trip", test_codec_round_trip);
    CU_add_test(s, "decoder refuses non-canonical", test_decoder_refuses_non_canonical);
    CU_add_test(s, "largest set", test_largest_set);
    CU_add_test(s, "meta record", test_meta_record);
    CU_add_test(s, "digest depends on content only", test_digest_depends_on_content_only);
    CU_add_test(s, "local versioning and limits", test_local_versioning);
    CU_add_test(s, "merge rules", test_merge_rules);
    CU_add_test(s, "replicas converge", test_replicas_converge);
    CU_add_test(s, "lookup filters", test_lookup_filters);
    CU_add_test(s, "random convergence", test_random_convergence);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
