/*
 * Trust store against real files in a temporary data dir: identity key
 * creation and the permission check, CA files with two CAs, the own
 * certificate checks (name, key, CA, validity), peers learned and checked,
 * revocations persisted, reloaded and applied, torn revocation files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <sodium.h>

#include "agent/net/chan.h"
#include "agent/net/seal.h"
#include "agent/trust/trust.h"

#define NOW 1800000000ULL

static char dir[256];
static uint8_t ca_pk[32], ca_sk[64], ca2_pk[32], ca2_sk[64], rogue_pk[32], rogue_sk[64];

static void path_of(const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void write_file(const char *name, const void *data, size_t len, mode_t mode)
{
    char p[512];
    path_of(name, p, sizeof(p));
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, data, len), (ssize_t)len);
    fchmod(fd, mode);
    close(fd);
}

static int rm_rf(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    return system(cmd);
}

static int setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hms-test-trust-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    crypto_sign_keypair(ca_pk, ca_sk);
    crypto_sign_keypair(ca2_pk, ca2_sk);
    crypto_sign_keypair(rogue_pk, rogue_sk);
    return 0;
}

static int teardown(void)
{
    return rm_rf(dir) == 0 ? 0 : -1;
}

/* Writes ca.pub listing both CAs (rotation). */
static void write_cas(void)
{
    char a[128], b[128], text[300];
    hms_key_format_pub(ca_pk, a, sizeof(a));
    hms_key_format_pub(ca2_pk, b, sizeof(b));
    snprintf(text, sizeof(text), "# old CA\n%s# new CA\n%s", a, b);
    write_file("ca.pub", text, strlen(text), 0644);
}

static size_t make_cert(const char *name, const uint8_t pk[32], uint64_t serial, uint64_t nb,
                        uint64_t na, const uint8_t *sk, uint8_t out[HMS_CERT_MAX_LEN])
{
    hms_cert c;
    size_t len = 0;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    memcpy(c.node_pk, pk, 32);
    c.serial = serial;
    c.not_before = nb;
    c.not_after = na;
    CU_ASSERT_EQUAL(hms_cert_sign(&c, sk), HMS_CERT_OK);
    CU_ASSERT_EQUAL(hms_cert_encode(&c, out, HMS_CERT_MAX_LEN, &len), HMS_CERT_OK);
    return len;
}

static hms_trust *open_trust(const char *name, char *err, size_t errlen, int *rc)
{
    hms_trust_config cfg = {.data_dir = dir, .node_name = name};
    hms_trust *t = NULL;
    *rc = hms_trust_new(&cfg, NOW, &t, err, errlen);
    return t;
}

static void test_identity(void)
{
    char err[512], p[512];
    struct stat st;
    int rc;

    /* First start: the key is created, mode 0600, with node.pub. */
    hms_trust *t = open_trust(NULL, err, sizeof(err), &rc);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    uint8_t pk[32];
    memcpy(pk, hms_trust_node_pk(t), 32);
    CU_ASSERT_PTR_NULL(hms_trust_own_cert(t, NULL));
    CU_ASSERT_EQUAL(hms_trust_ca_count(t), 0);
    hms_trust_delete(t);
    path_of("node.key", p, sizeof(p));
    CU_ASSERT_EQUAL(stat(p, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    path_of("node.pub", p, sizeof(p));
    CU_ASSERT_EQUAL(stat(p, &st), 0);

    /* Second start: the same key. */
    t = open_trust(NULL, err, sizeof(err), &rc);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(memcmp(pk, hms_trust_node_pk(t), 32), 0);
    /* X25519 forms agree with each other. */
    uint8_t xs[32], xp[32], xp2[32], xp3[32];
    hms_trust_node_x25519(t, xs, xp);
    crypto_scalarmult_base(xp2, xs);
    CU_ASSERT_EQUAL(memcmp(xp, xp2, 32), 0);
    CU_ASSERT_EQUAL(hms_ed25519_pk_to_x25519(pk, xp3), 0);
    CU_ASSERT_EQUAL(memcmp(xp, xp3, 32), 0);
    hms_trust_delete(t);

    /* A key readable by others is refused with a clear message. */
    path_of("node.key", p, sizeof(p));
    chmod(p, 0644);
    t = open_trust(NULL, err, sizeof(err), &rc);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_EQUAL(rc, -EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "chmod 600"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, p));
    chmod(p, 0640);
    CU_ASSERT_PTR_NULL(open_trust(NULL, err, sizeof(err), &rc));
    CU_ASSERT_EQUAL(rc, -EPERM);
    chmod(p, 0600);

    /* A given key file that does not exist is an error, not created. */
    char missing[512];
    path_of("nope.key", missing, sizeof(missing));
    hms_trust_config cfg = {.data_dir = dir, .node_key_file = missing};
    CU_ASSERT_EQUAL(hms_trust_new(&cfg, NOW, &t, err, sizeof(err)), -ENOENT);
    CU_ASSERT_EQUAL(access(missing, F_OK), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "nope.key"));

    /* A damaged key file. */
    write_file("bad.key", "ed25519-secret:00\n", 18, 0600);
    path_of("bad.key", missing, sizeof(missing));
    CU_ASSERT_EQUAL(hms_trust_new(&cfg, NOW, &t, err, sizeof(err)), -EINVAL);
}

/* Sets up ca.pub and node.cert for the node key in the data dir. */
static void install_own_cert(const char *name, uint64_t nb, uint64_t na, const uint8_t *sk)
{
    char err[512], p[512];
    int rc;
    path_of("node.cert", p, sizeof(p));
    unlink(p); /* the old one may be invalid by now */
    hms_trust *t = open_trust(NULL, err, sizeof(err), &rc);
    CU_ASSERT_FATAL(t != NULL);
    uint8_t cert[HMS_CERT_MAX_LEN];
    size_t len = make_cert(name, hms_trust_node_pk(t), 7, nb, na, sk, cert);
    hms_trust_delete(t);
    write_file("node.cert", cert, len, 0644);
}

static void test_own_cert(void)
{
    char err[512];
    int rc;
    hms_trust *t;

    write_cas();
    /* Signed by the second (new) CA: accepted. */
    install_own_cert("n1", NOW - 10, NOW + 86400, ca2_sk);
    t = open_trust("n1", err, sizeof(err), &rc);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(hms_trust_ca_count(t), 2);
    size_t len;
    CU_ASSERT_PTR_NOT_NULL(hms_trust_own_cert(t, &len));
    CU_ASSERT_STRING_EQUAL(hms_trust_node_name(t), "n1");
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, hms_trust_node_pk(t)), HMS_SEAL_OK);
    hms_trust_delete(t);

    /* Wrong name. */
    t = open_trust("n2", err, sizeof(err), &rc);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is for node 'n1', not 'n2'"));

    /* Expired beyond the skew allowance; within it is fine. */
    install_own_cert("n1", NOW - 86400, NOW - HMS_TRUST_SKEW_DEFAULT - 1, ca_sk);
    CU_ASSERT_PTR_NULL(open_trust("n1", err, sizeof(err), &rc));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "has expired"));
    install_own_cert("n1", NOW - 86400, NOW - HMS_TRUST_SKEW_DEFAULT + 1, ca_sk);
    t = open_trust("n1", err, sizeof(err), &rc);
    CU_ASSERT_PTR_NOT_NULL(t);
    hms_trust_delete(t);

    /* Not yet valid. */
    install_own_cert("n1", NOW + 3600, NOW + 86400, ca_sk);
    CU_ASSERT_PTR_NULL(open_trust("n1", err, sizeof(err), &rc));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not valid yet"));

    /* Untrusted CA. */
    install_own_cert("n1", NOW - 10, NOW + 86400, rogue_sk);
    CU_ASSERT_PTR_NULL(open_trust("n1", err, sizeof(err), &rc));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not trusted"));

    /* Another node's key. */
    uint8_t pk[32], sk[64], cert[HMS_CERT_MAX_LEN];
    crypto_sign_keypair(pk, sk);
    size_t l = make_cert("n1", pk, 7, NOW - 10, NOW + 86400, ca_sk, cert);
    write_file("node.cert", cert, l, 0644);
    CU_ASSERT_PTR_NULL(open_trust("n1", err, sizeof(err), &rc));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "another key"));

    /* Garbage. */
    write_file("node.cert", "hello", 5, 0644);
    CU_ASSERT_PTR_NULL(open_trust("n1", err, sizeof(err), &rc));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "malformed"));

    install_own_cert("n1", NOW - 10, NOW + 86400, ca_sk);
}

typedef struct revoked_log {
    int n;
    uint8_t last[32];
} revoked_log;

static void on_revoked(void *ctx, const uint8_t pk[32])
{
    revoked_log *l = ctx;
    l->n++;
    memcpy(l->last, pk, 32);
}

static void test_peers_and_revocations(void)
{
    char err[512], p[512];
    revoked_log log = {0};
    hms_trust_config cfg = {.data_dir = dir,
                            .node_name = "n1",
                            .on_revoked = on_revoked,
                            .on_revoked_ctx = &log};
    hms_trust *t = NULL;
    CU_ASSERT_EQUAL_FATAL(hms_trust_new(&cfg, NOW, &t, err, sizeof(err)), 0);
    hms_trust_set_time(t, NOW);

    uint8_t pa[32], sa[64], pb[32], sb[64], pc[32], sc[64];
    uint8_t ca_[HMS_CERT_MAX_LEN], cb_[HMS_CERT_MAX_LEN], cc_[HMS_CERT_MAX_LEN];
    crypto_sign_keypair(pa, sa);
    crypto_sign_keypair(pb, sb);
    crypto_sign_keypair(pc, sc);
    size_t la = make_cert("a", pa, 100, NOW - 10, NOW + 86400, ca_sk, ca_);
    size_t lb = make_cert("b", pb, 101, NOW - 10, NOW + 86400, ca2_sk, cb_);
    size_t lc = make_cert("c", pc, 102, NOW - 10, NOW + 86400, rogue_sk, cc_);

    /* Unknown before learning; learned after. */
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pa), HMS_SEAL_UNKNOWN_SENDER);
    hms_cert out;
    CU_ASSERT_EQUAL(hms_trust_check_cert(t, ca_, la, NOW, &out), HMS_CERT_OK);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pa), HMS_SEAL_UNKNOWN_SENDER); /* check only */
    CU_ASSERT_EQUAL(hms_trust_learn(t, ca_, la, NOW, &out), HMS_CERT_OK);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pa), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_trust_learn(t, cc_, lc, NOW, &out), HMS_CERT_UNKNOWN_CA);
    /* Learned once, the same bytes pass again; altered bytes for the same
     * key are still fully verified. */
    CU_ASSERT_EQUAL(hms_trust_check_cert(t, ca_, la, NOW, &out), HMS_CERT_OK);
    uint8_t alt[HMS_CERT_MAX_LEN];
    memcpy(alt, ca_, la);
    alt[3 + 1 + 32 + 7] ^= 1; /* serial */
    CU_ASSERT_EQUAL(hms_trust_check_cert(t, alt, la, NOW, &out), HMS_CERT_BAD_SIGNATURE);
    memcpy(alt, ca_, la);
    alt[la - 1] ^= 1; /* signature */
    CU_ASSERT_EQUAL(hms_trust_check_cert(t, alt, la, NOW, &out), HMS_CERT_BAD_SIGNATURE);
    CU_ASSERT_EQUAL(hms_trust_check_cert(t, ca_, la, NOW + 86400 + HMS_TRUST_SKEW_DEFAULT + 1,
                                         &out),
                    HMS_CERT_EXPIRED);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pc), HMS_SEAL_UNKNOWN_SENDER);

    /* Swim admit hook: the record must match its certificate. */
    swim_member_info m;
    memset(&m, 0, sizeof(m));
    snprintf(m.name, sizeof(m.name), "b");
    memcpy(m.key, pb, 32);
    memcpy(m.cert, cb_, lb);
    m.cert_len = (uint16_t)lb;
    snprintf(m.name, sizeof(m.name), "b-impostor");
    CU_ASSERT_EQUAL(hms_trust_swim_admit(t, &m), -EPERM);
    snprintf(m.name, sizeof(m.name), "b");
    memcpy(m.key, pa, 32);
    CU_ASSERT_EQUAL(hms_trust_swim_admit(t, &m), -EPERM);
    memcpy(m.key, pb, 32);
    m.cert_len = 0;
    CU_ASSERT_EQUAL(hms_trust_swim_admit(t, &m), -EPERM);
    m.cert_len = (uint16_t)lb;
    CU_ASSERT_EQUAL(hms_trust_swim_admit(t, &m), 0);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pb), HMS_SEAL_OK);
    CU_ASSERT_EQUAL(hms_trust_peer_count(t), 2);

    /* Channel verify and the Noise static key binding. */
    hms_peer peer;
    CU_ASSERT_EQUAL(hms_trust_chan_verify(t, ca_, la, &peer), 0);
    CU_ASSERT_STRING_EQUAL(peer.name, "a");
    CU_ASSERT_EQUAL(memcmp(peer.key, pa, 32), 0);
    CU_ASSERT_EQUAL(hms_trust_chan_verify(t, cc_, lc, &peer), -EPERM);
    uint8_t xa[32], xb[32];
    hms_ed25519_pk_to_x25519(pa, xa);
    hms_ed25519_pk_to_x25519(pb, xb);
    CU_ASSERT_EQUAL(hms_trust_check_noise_peer(t, ca_, la, xa, NOW, &out), HMS_CERT_OK);
    CU_ASSERT_EQUAL(hms_trust_check_noise_peer(t, ca_, la, xb, NOW, &out), HMS_CERT_WRONG_KEY);

    /* Expired peers stop passing the packet check. */
    hms_trust_set_time(t, NOW + 86400 + HMS_TRUST_SKEW_DEFAULT + 1);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pa), HMS_SEAL_UNKNOWN_SENDER);
    hms_trust_set_time(t, NOW);

    /* Revoke a by key (CA 1) and b by serial (CA 2). */
    uint8_t rec[HMS_REVOCATION_LEN], rec2[HMS_REVOCATION_LEN];
    hms_revocation r = {.flags = HMS_REVOKE_BY_KEY, .time = NOW};
    memcpy(r.node_pk, pa, 32);
    hms_revocation_sign(&r, ca_sk);
    hms_revocation_encode(&r, rec);
    bool is_new = false;
    CU_ASSERT_EQUAL(hms_trust_add_revocation(t, rec, sizeof(rec), &is_new), 0);
    CU_ASSERT_TRUE(is_new);
    CU_ASSERT_EQUAL(log.n, 1);
    CU_ASSERT_EQUAL(memcmp(log.last, pa, 32), 0);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pa), HMS_SEAL_REVOKED);
    CU_ASSERT_TRUE(hms_trust_is_revoked(t, pa));
    CU_ASSERT_EQUAL(hms_trust_learn(t, ca_, la, NOW, &out), HMS_CERT_REVOKED);
    /* Gossip repeats it: not new, no second notification. */
    CU_ASSERT_EQUAL(hms_trust_add_revocation(t, rec, sizeof(rec), &is_new), 0);
    CU_ASSERT_FALSE(is_new);
    CU_ASSERT_EQUAL(log.n, 1);

    hms_revocation r2 = {.flags = HMS_REVOKE_BY_SERIAL, .serial = 101, .time = NOW};
    hms_revocation_sign(&r2, ca2_sk);
    hms_revocation_encode(&r2, rec2);
    CU_ASSERT_EQUAL(hms_trust_add_revocation(t, rec2, sizeof(rec2), &is_new), 0);
    CU_ASSERT_TRUE(is_new);
    CU_ASSERT_EQUAL(log.n, 2);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pb), HMS_SEAL_REVOKED);
    CU_ASSERT_EQUAL(hms_trust_swim_admit(t, &m), -EPERM);

    /* A record from an untrusted CA, or damaged, is refused and not kept. */
    hms_revocation r3 = {.flags = HMS_REVOKE_BY_SERIAL, .serial = 7, .time = NOW};
    uint8_t rec3[HMS_REVOCATION_LEN];
    hms_revocation_sign(&r3, rogue_sk);
    hms_revocation_encode(&r3, rec3);
    CU_ASSERT_EQUAL(hms_trust_add_revocation(t, rec3, sizeof(rec3), &is_new),
                    HMS_CERT_UNKNOWN_CA);
    rec3[70] ^= 1;
    CU_ASSERT_NOT_EQUAL(hms_trust_add_revocation(t, rec3, sizeof(rec3), &is_new), 0);
    CU_ASSERT_EQUAL(hms_trust_add_revocation(t, rec3, 5, &is_new), HMS_CERT_MALFORMED);
    CU_ASSERT_EQUAL(hms_trust_revocation_count(t), 2);
    uint8_t got[HMS_REVOCATION_LEN];
    CU_ASSERT_EQUAL(hms_trust_revocation_get(t, 1, got), 0);
    CU_ASSERT_EQUAL(memcmp(got, rec2, sizeof(got)), 0);
    CU_ASSERT_FALSE(hms_trust_self_revoked(t));
    /* Codes from the two families are told apart. */
    CU_ASSERT_STRING_EQUAL(hms_trust_strerror(HMS_CERT_UNKNOWN_CA), "unknown_ca");
    CU_ASSERT_STRING_EQUAL(hms_trust_strerror(-EIO), strerror(EIO));
    CU_ASSERT_STRING_EQUAL(hms_trust_strerror(-EPERM), strerror(EPERM));
    hms_trust_delete(t);

    /* Persisted: two records, 246 bytes. */
    struct stat st;
    path_of("revocations.bin", p, sizeof(p));
    CU_ASSERT_EQUAL(stat(p, &st), 0);
    CU_ASSERT_EQUAL(st.st_size, 2 * HMS_REVOCATION_LEN);

    /* A torn tail (crash mid-append) is cut back to whole records. */
    int fd = open(p, O_WRONLY | O_APPEND);
    CU_ASSERT_EQUAL(write(fd, rec, 50), 50);
    close(fd);

    /* Reloaded at start: a is revoked by key; b's certificate by serial. */
    t = NULL;
    CU_ASSERT_EQUAL_FATAL(hms_trust_new(&cfg, NOW, &t, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(stat(p, &st), 0);
    CU_ASSERT_EQUAL(st.st_size, 2 * HMS_REVOCATION_LEN);
    CU_ASSERT_EQUAL(hms_trust_revocation_count(t), 2);
    CU_ASSERT_TRUE(hms_trust_is_revoked(t, pa));
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pa), HMS_SEAL_REVOKED);
    CU_ASSERT_EQUAL(hms_trust_learn(t, cb_, lb, NOW, &out), HMS_CERT_REVOKED);
    CU_ASSERT_TRUE(hms_trust_is_revoked(t, pb));

    /* Revoking our own certificate: this start still holds, the next
     * start is refused. */
    hms_revocation r4 = {.flags = HMS_REVOKE_BY_SERIAL, .serial = 7, .time = NOW};
    uint8_t rec4[HMS_REVOCATION_LEN];
    hms_revocation_sign(&r4, ca_sk);
    hms_revocation_encode(&r4, rec4);
    CU_ASSERT_EQUAL(hms_trust_add_revocation(t, rec4, sizeof(rec4), &is_new), 0);
    CU_ASSERT_TRUE(hms_trust_self_revoked(t));
    hms_trust_delete(t);
    t = NULL;
    CU_ASSERT_EQUAL(hms_trust_new(&cfg, NOW, &t, err, sizeof(err)), -EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "revoked"));
}

static void test_peer_table_bound(void)
{
    char err[512];
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/bound", dir);
    mkdir(sub, 0700);
    hms_trust_config cfg = {.data_dir = sub};
    hms_trust *t = NULL;
    char a[128];
    hms_key_format_pub(ca_pk, a, sizeof(a));
    char cap[400];
    snprintf(cap, sizeof(cap), "%s/ca.pub", sub);
    FILE *f = fopen(cap, "w");
    fputs(a, f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(hms_trust_new(&cfg, NOW, &t, err, sizeof(err)), 0);
    uint8_t first[32], pk[32], sk[64], cert[HMS_CERT_MAX_LEN];
    for (int i = 0; i < HMS_TRUST_PEERS_MAX + 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "p%d", i);
        crypto_sign_keypair(pk, sk);
        if (i == 0)
            memcpy(first, pk, 32);
        size_t l = make_cert(name, pk, (uint64_t)i, NOW - 1, NOW + 100, ca_sk, cert);
        CU_ASSERT_EQUAL_FATAL(hms_trust_learn(t, cert, l, NOW, NULL), 0);
    }
    CU_ASSERT_EQUAL(hms_trust_peer_count(t), HMS_TRUST_PEERS_MAX);
    hms_trust_set_time(t, NOW);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, first), HMS_SEAL_UNKNOWN_SENDER); /* evicted */
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pk), HMS_SEAL_OK);
    hms_trust_forget(t, pk);
    CU_ASSERT_EQUAL(hms_trust_peer_check(t, pk), HMS_SEAL_UNKNOWN_SENDER);
    hms_trust_delete(t);
}

int main(void)
{
    if (sodium_init() < 0 || CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("trust", setup, teardown);
    CU_add_test(s, "identity", test_identity);
    CU_add_test(s, "own_cert", test_own_cert);
    CU_add_test(s, "peers_and_revocations", test_peers_and_revocations);
    CU_add_test(s, "peer_table_bound", test_peer_table_bound);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
