/*
 * Noise channels and RPC between two pools on one loop, over real TCP on
 * 127.0.66.x: calls both ways, replies later, large messages in chunks,
 * unknown methods, refused and unreachable peers, a peer presenting another
 * key than the one asked for, timeouts, cancellation, channel reuse, and
 * handshake limits. Certificates here are a test format (the key and the
 * name) checked by a test verify callback; the real ones are checked by the
 * trust store (test_trust.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <ev.h>
#include <sodium.h>

#include "agent/net/chan.h"

typedef struct node {
    uint8_t ed_pk[32], ed_sk[64], x_sk[32];
    uint8_t cert[64];
    size_t cert_len;
    hms_addr addr;
    hms_chan_pool *pool;
    bool refuse_all;
} node;

static struct ev_loop *loop;
static node A, B, C;

/* test certificate: 32-byte key then the name */
static int verify(void *ctx, const uint8_t *cert, size_t len, hms_peer *out)
{
    node *self = ctx;
    if (self->refuse_all || len < 33 || len > 32 + 64)
        return -EPERM;
    memcpy(out->key, cert, 32);
    memcpy(out->name, cert + 32, len - 32);
    out->name[len - 32] = '\0';
    return 0;
}

static void make_node(node *n, const char *name, const char *addr)
{
    crypto_sign_keypair(n->ed_pk, n->ed_sk);
    crypto_sign_ed25519_sk_to_curve25519(n->x_sk, n->ed_sk);
    memcpy(n->cert, n->ed_pk, 32);
    memcpy(n->cert + 32, name, strlen(name));
    n->cert_len = 32 + strlen(name);
    hms_addr_parse(addr, 7950, &n->addr);
}

static int start_pool(node *n, uint32_t hs_ms)
{
    hms_chan_config cfg = {.loop = loop,
                           .bind = n->addr,
                           .static_sk = n->x_sk,
                           .cert = n->cert,
                           .cert_len = n->cert_len,
                           .verify = verify,
                           .verify_ctx = n,
                           .handshake_timeout_ms = hs_ms};
    return hms_chan_pool_new(&cfg, &n->pool);
}

/* --- handlers ---------------------------------------------------------- */

static void h_echo(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                   size_t len)
{
    hms_rpc_reply(call, 0, req, len);
}

static void h_whoami(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                     size_t len)
{
    hms_rpc_reply(call, 0, (const uint8_t *)peer->name, strlen(peer->name));
}

static void h_fail(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                   size_t len)
{
    hms_rpc_reply(call, -ENOENT, NULL, 0);
}

static hms_rpc_call *held;
static void h_hold(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                   size_t len)
{
    held = call; /* answered later, or never */
}

static ev_timer later_timer;
static void later_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    if (held)
        hms_rpc_reply(held, 0, (const uint8_t *)"late", 4);
    held = NULL;
}

static void h_later(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                    size_t len)
{
    held = call;
    ev_timer_init(&later_timer, later_cb, 0.05, 0.);
    ev_timer_start(loop, &later_timer);
}

/* --- client side ------------------------------------------------------- */

typedef struct result {
    bool done;
    int status;
    uint8_t *body;
    size_t len;
    char peer_name[65];
    int calls;
} result;

static void on_done(void *ctx, int status, const hms_peer *peer, const uint8_t *reply, size_t len)
{
    result *r = ctx;
    r->done = true;
    r->calls++;
    r->status = status;
    free(r->body);
    r->body = NULL;
    r->len = len;
    if (len) {
        r->body = malloc(len);
        memcpy(r->body, reply, len);
    }
    if (peer)
        snprintf(r->peer_name, sizeof(r->peer_name), "%s", peer->name);
}

static void run_until(result *r, double max_s)
{
    ev_tstamp end = ev_time() + max_s;
    while (!r->done && ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
}

static int call(node *from, const uint8_t *key, node *to, const char *method, const void *req,
                size_t len, uint32_t timeout_ms, result *r)
{
    memset(r, 0, sizeof(*r));
    return hms_chan_call(from->pool, key, &to->addr, method, req, len, timeout_ms, on_done, r,
                         NULL);
}

static int setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    make_node(&A, "alpha", "127.0.66.1");
    make_node(&B, "beta", "127.0.66.2");
    make_node(&C, "gamma", "127.0.66.3");
    if (start_pool(&A, 0) || start_pool(&B, 300))
        return 1;
    hms_chan_handle(B.pool, "echo", h_echo, NULL);
    hms_chan_handle(B.pool, "whoami", h_whoami, NULL);
    hms_chan_handle(B.pool, "fail", h_fail, NULL);
    hms_chan_handle(B.pool, "hold", h_hold, NULL);
    hms_chan_handle(B.pool, "later", h_later, NULL);
    hms_chan_handle(A.pool, "whoami", h_whoami, NULL);
    return 0;
}

static int teardown(void)
{
    hms_chan_pool_delete(A.pool);
    hms_chan_pool_delete(B.pool);
    ev_loop_destroy(loop);
    return 0;
}

static void test_echo(void)
{
    result r;
    CU_ASSERT_EQUAL_FATAL(call(&A, B.ed_pk, &B, "echo", "hello", 5, 3000, &r), 0);
    CU_ASSERT(!r.done); /* never inside the call */
    run_until(&r, 5);
    CU_ASSERT(r.done);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, 5);
    CU_ASSERT(r.body && memcmp(r.body, "hello", 5) == 0);
    CU_ASSERT_STRING_EQUAL(r.peer_name, "beta");
    free(r.body);
    /* an empty request and an empty reply */
    CU_ASSERT_EQUAL_FATAL(call(&A, B.ed_pk, &B, "echo", NULL, 0, 3000, &r), 0);
    run_until(&r, 5);
    CU_ASSERT(r.done && r.status == 0 && r.len == 0);
}

static void test_both_ways_and_reuse(void)
{
    hms_chan_stats before, after;
    hms_chan_get_stats(A.pool, &before);
    result r;
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(call(&A, B.ed_pk, &B, "whoami", NULL, 0, 3000, &r), 0);
        run_until(&r, 5);
        CU_ASSERT(r.len == 5 && memcmp(r.body, "alpha", 5) == 0); /* B saw A's name */
        free(r.body);
    }
    hms_chan_get_stats(A.pool, &after);
    CU_ASSERT_EQUAL(after.conns_out, before.conns_out); /* the channel was reused */
    /* B calls A by key: a new connection the other way */
    CU_ASSERT_EQUAL(call(&B, A.ed_pk, &A, "whoami", NULL, 0, 3000, &r), 0);
    run_until(&r, 5);
    CU_ASSERT(r.status == 0 && r.len == 4 && memcmp(r.body, "beta", 4) == 0);
    free(r.body);
}

static void test_large(void)
{
    size_t n = 3u << 20;
    uint8_t *big = malloc(n);
    randombytes_buf(big, n);
    result r;
    CU_ASSERT_EQUAL_FATAL(call(&A, B.ed_pk, &B, "echo", big, n, 10000, &r), 0);
    run_until(&r, 10);
    CU_ASSERT_EQUAL(r.status, 0);
    CU_ASSERT_EQUAL(r.len, n);
    CU_ASSERT(r.body && memcmp(r.body, big, n) == 0);
    free(r.body);
    free(big);
    CU_ASSERT_EQUAL(hms_chan_call(A.pool, NULL, &B.addr, "echo", NULL, HMS_CHAN_MSG_MAX, 1000,
                                  on_done, &r, NULL),
                    -EMSGSIZE);
}

static void test_errors(void)
{
    result r;
    CU_ASSERT_EQUAL(call(&A, B.ed_pk, &B, "nosuch", NULL, 0, 3000, &r), 0);
    run_until(&r, 5);
    CU_ASSERT_EQUAL(r.status, -ENOSYS);
    CU_ASSERT_EQUAL(call(&A, B.ed_pk, &B, "fail", NULL, 0, 3000, &r), 0);
    run_until(&r, 5);
    CU_ASSERT_EQUAL(r.status, -ENOENT);
    /* nothing listens at C */
    CU_ASSERT_EQUAL(call(&A, NULL, &C, "echo", NULL, 0, 3000, &r), 0);
    CU_ASSERT(!r.done);
    run_until(&r, 5);
    CU_ASSERT_EQUAL(r.status, -ECONNREFUSED);
    CU_ASSERT_EQUAL(r.calls, 1);
}

static void test_wrong_key(void)
{
    /* asking B's address for C's key: B proves it is B, which is refused */
    result r;
    hms_chan_stats st;
    CU_ASSERT_EQUAL(call(&A, C.ed_pk, &B, "echo", NULL, 0, 3000, &r), 0);
    run_until(&r, 5);
    CU_ASSERT_EQUAL(r.status, -EPERM);
    hms_chan_get_stats(A.pool, &st);
    CU_ASSERT(st.refused_untrusted >= 1);
    /* B refuses everyone's certificate (on new channels) */
    hms_chan_close_peer(A.pool, B.ed_pk);
    B.refuse_all = true;
    CU_ASSERT_EQUAL(call(&A, NULL, &B, "echo", NULL, 0, 3000, &r), 0);
    run_until(&r, 5);
    CU_ASSERT(r.status == -ECONNRESET || r.status == -EPERM);
    B.refuse_all = false;
}

static void test_timeout_and_cancel(void)
{
    result r;
    CU_ASSERT_EQUAL(call(&A, B.ed_pk, &B, "hold", NULL, 0, 200, &r), 0);
    run_until(&r, 5);
    CU_ASSERT_EQUAL(r.status, -ETIMEDOUT);
    /* the late answer to a call nobody waits for is dropped quietly */
    CU_ASSERT_EQUAL(hms_rpc_reply(held, 0, NULL, 0), 0);
    held = NULL;

    uint64_t id = 0;
    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL(
        hms_chan_call(A.pool, B.ed_pk, &B.addr, "hold", NULL, 0, 5000, on_done, &r, &id), 0);
    hms_chan_cancel(A.pool, id);
    CU_ASSERT(!r.done);
    run_until(&r, 5);
    CU_ASSERT_EQUAL(r.status, -ECANCELED);
    if (held)
        hms_rpc_reply(held, 0, NULL, 0);
    held = NULL;

    CU_ASSERT_EQUAL(call(&A, B.ed_pk, &B, "later", NULL, 0, 3000, &r), 0);
    run_until(&r, 5);
    CU_ASSERT(r.status == 0 && r.len == 4 && memcmp(r.body, "late", 4) == 0);
    free(r.body);
}

static void test_peer_gone(void)
{
    /* B's channels close while a call waits: the caller learns at once */
    result r;
    CU_ASSERT_EQUAL(call(&A, B.ed_pk, &B, "hold", NULL, 0, 5000, &r), 0);
    for (int i = 0; i < 50 && !held; i++)
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(held);
    hms_chan_close_peer(B.pool, A.ed_pk);
    CU_ASSERT_EQUAL(hms_rpc_reply(held, 0, NULL, 0), -ENOTCONN);
    held = NULL;
    run_until(&r, 5);
    CU_ASSERT_EQUAL(r.status, -ECONNRESET);
}

static void test_handshake_timeout(void)
{
    /* a TCP client that never speaks is cut off after the handshake timeout */
    hms_chan_stats before, after;
    hms_chan_get_stats(B.pool, &before);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(7950)};
    inet_pton(AF_INET, "127.0.66.2", &sa.sin_addr);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ev_tstamp end = ev_time() + 2;
    while (ev_time() < end) {
        ev_run(loop, EVRUN_ONCE);
        hms_chan_get_stats(B.pool, &after);
        if (after.handshake_failures > before.handshake_failures)
            break;
    }
    CU_ASSERT(after.handshake_failures > before.handshake_failures);
    char b;
    CU_ASSERT_EQUAL(recv(fd, &b, 1, 0), 0); /* closed by B */
    close(fd);
}

int main(void)
{
    if (sodium_init() < 0 || CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("chan", setup, teardown);
    CU_add_test(s, "echo", test_echo);
    CU_add_test(s, "both_ways_and_reuse", test_both_ways_and_reuse);
    CU_add_test(s, "large", test_large);
    CU_add_test(s, "errors", test_errors);
    CU_add_test(s, "wrong_key", test_wrong_key);
    CU_add_test(s, "timeout_and_cancel", test_timeout_and_cancel);
    CU_add_test(s, "peer_gone", test_peer_gone);
    CU_add_test(s, "handshake_timeout", test_handshake_timeout);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
