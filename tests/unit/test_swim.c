/*
 * Unit tests of the membership core, driven by hand: packets are built with
 * the codec and fed to one core, and its outputs inspected. Covers the
 * protocol arithmetic (suspicion timeouts, retransmit limits), incarnation
 * ordering, refutation, the Lifeguard health multiplier, retransmission
 * limits, sender checks, user broadcasts, expulsion, leave and push-pull.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "agent/swim/swim.h"
#include "proto/gossip.h"

#define MAXOUT 4096

static swim_output outs[MAXOUT];
static uint8_t outdata[MAXOUT][1400];
static size_t nouts;
static swim_profile lan;

/* Copies every output (their data lives only until the next call). */
static void drain(swim_t *s)
{
    swim_output o;
    while (swim_poll(s, &o)) {
        if (nouts < MAXOUT) {
            outs[nouts] = o;
            if (o.data && o.len <= sizeof(outdata[0])) {
                memcpy(outdata[nouts], o.data, o.len);
                outs[nouts].data = outdata[nouts];
            }
            outs[nouts].member = NULL; /* snapshots do not outlive the call */
            nouts++;
        }
    }
}

static size_t count_events(swim_event ev)
{
    size_t c = 0;
    for (size_t i = 0; i < nouts; i++)
        c += outs[i].kind == SWIM_OUT_EVENT && outs[i].event == ev;
    return c;
}

static void key_of(int i, uint8_t key[SWIM_KEY_LEN])
{
    memset(key, 0x10 + i, SWIM_KEY_LEN);
}

static hms_addr addr_of(int i)
{
    hms_addr a;
    char buf[32];
    snprintf(buf, sizeof(buf), "10.0.0.%d:7950", i);
    hms_addr_parse(buf, 7950, &a);
    return a;
}

static swim_t *make(hms_time now)
{
    swim_config c;
    memset(&c, 0, sizeof(c));
    c.name = "m0";
    key_of(0, c.key);
    c.addr = addr_of(0);
    c.incarnation = 3;
    c.seed = 99;
    c.profile = lan;
    swim_t *s = swim_new(&c, now);
    CU_ASSERT_FATAL(s != NULL);
    nouts = 0;
    drain(s);
    return s;
}

/* Sends one message from member `from` (by index) to the core. */
static void feed(swim_t *s, hms_time now, int from, const gossip_msg *m)
{
    uint8_t buf[2048];
    size_t len;
    buf[0] = GOSSIP_VERSION;
    CU_ASSERT_EQUAL_FATAL(gossip_encode_msg(m, buf + 1, sizeof(buf) - 1, &len), 0);
    uint8_t key[SWIM_KEY_LEN];
    key_of(from, key);
    hms_addr a = addr_of(from);
    swim_recv(s, now, &a, key, buf, len + 1);
    drain(s);
}

static gossip_msg alive(int i, uint64_t inc)
{
    gossip_msg m;
    memset(&m, 0, sizeof(m));
    m.type = GOSSIP_ALIVE;
    snprintf(m.name, sizeof(m.name), "m%d", i);
    key_of(i, m.key);
    m.addr = addr_of(i);
    m.incarnation = inc;
    return m;
}

static gossip_msg accuse(uint8_t type, int i, uint64_t inc, const char *from)
{
    gossip_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    snprintf(m.name, sizeof(m.name), "m%d", i);
    key_of(i, m.key);
    m.incarnation = inc;
    snprintf(m.from, sizeof(m.from), "%s", from);
    return m;
}

static int status_of(swim_t *s, int i, uint64_t *inc)
{
    char name[16];
    snprintf(name, sizeof(name), "m%d", i);
    return swim_member_status(s, name, inc);
}

/* Decodes output i and returns whether it carries a message of `type` about
 * `name` (or any, when name is NULL). */
static bool carries(size_t i, uint8_t type, const char *name, uint64_t *inc)
{
    static gossip_msg ms[GOSSIP_MSGS_MAX];
    size_t n;
    if (outs[i].kind != SWIM_OUT_UDP ||
        gossip_decode_packet(outs[i].data, outs[i].len, ms, GOSSIP_MSGS_MAX, &n) != 0)
        return false;
    for (size_t k = 0; k < n; k++) {
        if (ms[k].type == type && (!name || strcmp(ms[k].name, name) == 0)) {
            if (inc)
                *inc = ms[k].incarnation;
            return true;
        }
    }
    return false;
}

/* Runs the core's timers until `end`. With `answer`, every member pings
 * are sent to acks them and refutes any suspicion of itself, as a healthy
 * cluster would. Returns the number of pings sent, and of messages of
 * `count_type` from m0 seen (when count_type is not 0). */
static size_t pump(swim_t *s, hms_time *t, hms_time end, bool answer, uint8_t count_type,
                   size_t *counted, uint32_t *last_seq, int *last_target)
{
    size_t pings = 0;
    static gossip_msg ms[GOSSIP_MSGS_MAX];
    while (*t < end) {
        *t = swim_tick(s, *t);
        nouts = 0;
        drain(s);
        size_t batch = nouts;
        static swim_output copy[MAXOUT];
        static uint8_t copydata[64][1400];
        size_t keep = batch < 64 ? batch : 64;
        for (size_t i = 0; i < keep; i++) {
            copy[i] = outs[i];
            if (outs[i].data && outs[i].len <= 1400) {
                memcpy(copydata[i], outs[i].data, outs[i].len);
                copy[i].data = copydata[i];
            }
        }
        for (size_t i = 0; i < keep; i++) {
            size_t n;
            if (copy[i].kind != SWIM_OUT_UDP ||
                gossip_decode_packet(copy[i].data, copy[i].len, ms, GOSSIP_MSGS_MAX, &n) != 0)
                continue;
            for (size_t k = 0; k < n; k++) {
                if (count_type && ms[k].type == count_type && strcmp(ms[k].name, "m0") == 0)
                    (*counted)++;
            }
            for (size_t k = 0; k < n; k++) {
                if (ms[k].type != GOSSIP_PING)
                    continue;
                pings++;
                int target = ms[k].target_key[0] - 0x10;
                if (last_seq) {
                    *last_seq = ms[k].seq;
                    *last_target = target;
                    return pings;
                }
                if (!answer)
                    continue;
                gossip_msg ack;
                memset(&ack, 0, sizeof(ack));
                ack.type = GOSSIP_ACK;
                ack.seq = ms[k].seq;
                feed(s, *t, target, &ack);
                uint64_t inc;
                if (status_of(s, target, &inc) == SWIM_SUSPECT) {
                    gossip_msg m = alive(target, inc + 1);
                    feed(s, *t, target, &m);
                }
            }
        }
    }
    return pings;
}

static void test_arithmetic(void)
{
    swim_profile p;
    CU_ASSERT_EQUAL(swim_profile_by_name("lan", &p), 0);
    CU_ASSERT_EQUAL(swim_profile_by_name("wan", &p), 0);
    CU_ASSERT_EQUAL(swim_profile_by_name("local", &p), 0);
    CU_ASSERT_EQUAL(swim_profile_by_name("fast", &p), -EINVAL);
    /* min = max(floor, mult * max(1, log10 n) * interval): lan is 1 x 0.7 s
     * with a 2 s floor, which rules up to n = 10^(2 / 0.7) = 720. */
    CU_ASSERT_EQUAL(swim_suspicion_min(&lan, 1), HMS_MS(2000));
    CU_ASSERT_EQUAL(swim_suspicion_min(&lan, 128), HMS_MS(2000));
    CU_ASSERT_EQUAL(swim_suspicion_min(&lan, 700), HMS_MS(2000));
    hms_time m1e4 = swim_suspicion_min(&lan, 10000);
    CU_ASSERT(fabs((double)m1e4 - 4.0 * 700000.0) < 2.0);
    CU_ASSERT_EQUAL(swim_suspicion_max(&lan, 128), HMS_SEC(12));
    swim_profile ml = lan; /* memberlist's LAN: 4 x log10 n x 1 s, no floor */
    ml.suspicion_mult = 4;
    ml.probe_interval_ms = 1000;
    ml.suspicion_floor_ms = 0;
    CU_ASSERT_EQUAL(swim_suspicion_min(&ml, 10), HMS_SEC(4));
    hms_time m128 = swim_suspicion_min(&ml, 128);
    CU_ASSERT(fabs((double)m128 - 4.0 * log10(128.0) * 1e6) < 2.0);
    hms_time min = HMS_SEC(2), max = HMS_SEC(12);
    CU_ASSERT_EQUAL(swim_suspicion_timeout(0, 3, min, max), max);
    CU_ASSERT_EQUAL(swim_suspicion_timeout(1, 3, min, max), HMS_SEC(7)); /* log 2 / log 4 = 1/2 */
    CU_ASSERT_EQUAL(swim_suspicion_timeout(3, 3, min, max), min);
    CU_ASSERT_EQUAL(swim_suspicion_timeout(9, 3, min, max), min);
    CU_ASSERT_EQUAL(swim_suspicion_timeout(0, 0, min, max), min);
    CU_ASSERT(swim_suspicion_timeout(2, 3, min, max) < HMS_SEC(7));
    /* Retransmits: mult * (ceil(log10(n + 1)) + 1). */
    CU_ASSERT_EQUAL(swim_retransmit_limit(&lan, 1), 8);
    CU_ASSERT_EQUAL(swim_retransmit_limit(&lan, 9), 8);
    CU_ASSERT_EQUAL(swim_retransmit_limit(&lan, 10), 12);
    CU_ASSERT_EQUAL(swim_retransmit_limit(&lan, 128), 16);
    CU_ASSERT_EQUAL(swim_retransmit_limit(&lan, 1000), 20);
}

static void test_config(void)
{
    swim_config c;
    memset(&c, 0, sizeof(c));
    c.name = "ok";
    c.addr = addr_of(1);
    c.profile = lan;
    swim_t *s = swim_new(&c, 0);
    CU_ASSERT_PTR_NOT_NULL(s);
    swim_delete(s);
    c.name = "";
    CU_ASSERT_PTR_NULL(swim_new(&c, 0));
    c.name = "ok";
    c.meta_len = SWIM_META_MAX + 1;
    CU_ASSERT_PTR_NULL(swim_new(&c, 0));
    c.meta_len = 0;
    c.profile.probe_interval_ms = 0;
    CU_ASSERT_PTR_NULL(swim_new(&c, 0));
    c.profile = lan;
    c.addr.port = 0;
    CU_ASSERT_PTR_NULL(swim_new(&c, 0));
}

static void test_incarnation_order(void)
{
    hms_time t = HMS_SEC(1);
    swim_t *s = make(t);
    uint64_t inc;
    gossip_msg m = alive(1, 5);
    feed(s, t, 1, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_ALIVE);
    CU_ASSERT_EQUAL(count_events(SWIM_EV_JOIN), 1);
    m = accuse(GOSSIP_SUSPECT, 1, 4, "m2"); /* older: ignored */
    feed(s, t, 2, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_ALIVE);
    m = accuse(GOSSIP_SUSPECT, 1, 5, "m2");
    feed(s, t, 2, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_SUSPECT);
    CU_ASSERT(swim_suspicion_deadline(s, "m1") > t);
    m = alive(1, 5); /* same incarnation does not refute */
    feed(s, t, 3, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_SUSPECT);
    m = alive(1, 6);
    feed(s, t, 1, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_ALIVE);
    CU_ASSERT_EQUAL(inc, 6);
    CU_ASSERT_EQUAL(swim_suspicion_deadline(s, "m1"), 0);
    m = accuse(GOSSIP_DEAD, 1, 5, "m2");
    feed(s, t, 2, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_ALIVE);
    m = accuse(GOSSIP_DEAD, 1, 6, "m2");
    feed(s, t, 2, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_DEAD);
    m = alive(1, 6); /* a stale alive cannot resurrect */
    feed(s, t, 3, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_DEAD);
    m = alive(1, 7); /* a restart can */
    feed(s, t, 1, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_ALIVE);
    CU_ASSERT_EQUAL(count_events(SWIM_EV_ALIVE), 2);
    m = accuse(GOSSIP_LEAVE, 1, 7, "m1");
    feed(s, t, 1, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_LEFT);
    CU_ASSERT_EQUAL(count_events(SWIM_EV_LEFT), 1);
    m = accuse(GOSSIP_DEAD, 1, 8, "m2"); /* left stays left */
    feed(s, t, 2, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, &inc), SWIM_LEFT);
    swim_delete(s);
}

static void test_refutation(void)
{
    hms_time t = HMS_SEC(1);
    swim_t *s = make(t);
    gossip_msg m = alive(1, 1);
    feed(s, t, 1, &m);
    nouts = 0;
    m = accuse(GOSSIP_SUSPECT, 0, 3, "m1");
    feed(s, t, 1, &m);
    CU_ASSERT_EQUAL(swim_self(s)->incarnation, 4);
    CU_ASSERT_EQUAL(swim_self(s)->status, SWIM_ALIVE);
    CU_ASSERT_EQUAL(count_events(SWIM_EV_INCARNATION), 1);
    swim_stats st;
    swim_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.refutations, 1);
    CU_ASSERT_EQUAL(st.health_score, 1); /* Lifeguard: refuting counts against us */
    /* A stale accusation (incarnation 3 < 4) is answered with our record. */
    nouts = 0;
    feed(s, t, 1, &m);
    CU_ASSERT_EQUAL(swim_self(s)->incarnation, 4);
    bool answered = false;
    uint64_t inc = 0;
    for (size_t i = 0; i < nouts; i++)
        answered |= carries(i, GOSSIP_ALIVE, "m0", &inc) && inc == 4;
    CU_ASSERT(answered);
    /* Dead about us at a higher incarnation: refuted above it. */
    m = accuse(GOSSIP_DEAD, 0, 9, "m1");
    feed(s, t, 1, &m);
    CU_ASSERT_EQUAL(swim_self(s)->incarnation, 10);
    swim_delete(s);
}

/* Fills the core with members m1..m<n>, all alive. */
static void populate(swim_t *s, hms_time t, int n)
{
    for (int i = 1; i <= n; i++) {
        gossip_msg m = alive(i, 1);
        feed(s, t, i, &m);
    }
}

static void test_health_multiplier(void)
{
    hms_time t = HMS_SEC(1);
    swim_t *s = make(t);
    populate(s, t, 8);
    /* Healthy: about one probe per interval. */
    size_t healthy = pump(s, &t, t + HMS_SEC(10), true, 0, NULL, NULL, NULL);
    swim_stats st;
    swim_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.health_score, 0);
    /* Nobody answers (our network is broken): every probe fails with no
     * nack, the score climbs to its ceiling (awareness_max - 1). Members are
     * declared dead on the way; bring them back for the next phase. */
    pump(s, &t, t + HMS_SEC(30), false, 0, NULL, NULL, NULL);
    swim_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.health_score, lan.awareness_max - 1);
    for (int i = 1; i <= 8; i++) {
        uint64_t inc;
        status_of(s, i, &inc);
        gossip_msg m = alive(i, inc + 1);
        feed(s, t, i, &m);
    }
    /* Degraded: probes come awareness_max times less often; each good one
     * lowers the score by one until it is back to 0. */
    size_t degraded = pump(s, &t, t + HMS_SEC(10), true, 0, NULL, NULL, NULL);
    pump(s, &t, t + HMS_SEC(60), true, 0, NULL, NULL, NULL);
    swim_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.health_score, 0);
    printf("pings in 10 s: healthy %zu, degraded %zu ", healthy, degraded);
    CU_ASSERT(healthy * lan.probe_interval_ms >= 8000); /* 80 % of one per period */
    CU_ASSERT(degraded * 2 < healthy);
    swim_delete(s);
}

static void test_retransmit_limit(void)
{
    hms_time t = HMS_SEC(1);
    swim_t *s = make(t);
    populate(s, t, 13); /* n = 14 with us: limit 4 * (ceil(log10 15) + 1) = 12 */
    /* Let the join updates drain first. */
    pump(s, &t, t + HMS_SEC(30), true, 0, NULL, NULL, NULL);
    const uint8_t data[] = "x";
    CU_ASSERT_EQUAL(swim_broadcast(s, t, 5, data, sizeof(data)), 0);
    size_t sent = 0;
    pump(s, &t, t + HMS_SEC(30), true, GOSSIP_USER, &sent, NULL, NULL);
    CU_ASSERT_EQUAL(sent, swim_retransmit_limit(&lan, 14));
    swim_delete(s);
}

static void test_sender_checks(void)
{
    hms_time t = HMS_SEC(1);
    swim_t *s = make(t);
    populate(s, t, 3);
    swim_stats st;
    /* A ping for another key is not ours to answer. */
    gossip_msg ping;
    memset(&ping, 0, sizeof(ping));
    ping.type = GOSSIP_PING;
    ping.seq = 9;
    key_of(7, ping.target_key);
    nouts = 0;
    feed(s, t, 1, &ping);
    swim_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.drop_wrong_target, 1);
    CU_ASSERT_EQUAL(nouts, 0);
    /* Garbage. */
    uint8_t junk[] = {1, 0xc1, 0xc1};
    uint8_t key[SWIM_KEY_LEN];
    key_of(1, key);
    hms_addr a = addr_of(1);
    swim_recv(s, t, &a, key, junk, sizeof(junk));
    swim_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.drop_malformed, 1);
    /* Find our next probe, then have the wrong member ack it. */
    uint32_t seq = 0;
    int target = -1;
    pump(s, &t, t + HMS_SEC(5), true, 0, NULL, &seq, &target);
    CU_ASSERT_FATAL(target > 0);
    int other = target == 1 ? 2 : 1;
    gossip_msg ack;
    memset(&ack, 0, sizeof(ack));
    ack.type = GOSSIP_ACK;
    ack.seq = seq;
    feed(s, t, other, &ack);
    swim_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.drop_wrong_target, 2);
    CU_ASSERT_EQUAL(st.acks, 0);
    feed(s, t, target, &ack);
    swim_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.acks, 1);
    swim_delete(s);
}

static void test_user_and_conflicts(void)
{
    hms_time t = HMS_SEC(1);
    swim_t *s = make(t);
    populate(s, t, 2);
    gossip_msg u;
    memset(&u, 0, sizeof(u));
    u.type = GOSSIP_USER;
    strcpy(u.name, "m1");
    u.user_kind = 2;
    u.user_seq = 10;
    u.data = (const uint8_t *)"hi";
    u.data_len = 2;
    nouts = 0;
    feed(s, t, 2, &u);
    feed(s, t, 1, &u); /* duplicate */
    u.user_seq = 9;    /* older */
    feed(s, t, 1, &u);
    u.user_seq = 11;
    feed(s, t, 2, &u);
    CU_ASSERT_EQUAL(count_events(SWIM_EV_USER), 2);

    /* Another key for the live m1: refused. */
    gossip_msg m = alive(1, 50);
    key_of(9, m.key);
    nouts = 0;
    feed(s, t, 9, &m);
    CU_ASSERT_EQUAL(count_events(SWIM_EV_CONFLICT), 1);
    uint8_t k1[SWIM_KEY_LEN];
    key_of(1, k1);
    CU_ASSERT(memcmp(swim_member_find(s, "m1")->key, k1, SWIM_KEY_LEN) == 0);
    /* Once m1 is dead, a new key may take the name over. */
    m = accuse(GOSSIP_DEAD, 1, 1, "m2");
    feed(s, t, 2, &m);
    m = alive(1, 1);
    key_of(9, m.key);
    feed(s, t, 9, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, NULL), SWIM_ALIVE);
    CU_ASSERT_EQUAL(swim_member_find(s, "m1")->key[0], 0x19);
    /* And the old key's death notices no longer apply. */
    m = accuse(GOSSIP_DEAD, 1, 5, "m2");
    feed(s, t, 2, &m);
    CU_ASSERT_EQUAL(status_of(s, 1, NULL), SWIM_ALIVE);
    swim_delete(s);
}

static void test_expel_and_leave(void)
{
    hms_time t = HMS_SEC(1);
    swim_t *s = make(t);
    populate(s, t, 3);
    uint8_t k2[SWIM_KEY_LEN];
    key_of(2, k2);
    swim_expel(s, t, k2);
    uint64_t inc;
    CU_ASSERT_EQUAL(status_of(s, 2, &inc), SWIM_DEAD);
    CU_ASSERT_EQUAL(inc, 2); /* raised so the record wins */
    gossip_msg m = alive(2, 9);
    feed(s, t, 2, &m);
    CU_ASSERT_EQUAL(status_of(s, 2, NULL), SWIM_DEAD);
    swim_stats st;
    swim_get_stats(s, &st);
    CU_ASSERT(st.drop_refused >= 1);

    swim_leave(s, t);
    CU_ASSERT_EQUAL(swim_self(s)->status, SWIM_LEFT);
    CU_ASSERT(!swim_leave_propagated(s, t));
    size_t leaves = 0;
    for (hms_time end = t + HMS_SEC(10); t < end && !swim_leave_propagated(s, t);) {
        t = swim_tick(s, t);
        nouts = 0;
        drain(s);
        for (size_t i = 0; i < nouts; i++)
            leaves += carries(i, GOSSIP_LEAVE, "m0", NULL);
    }
    CU_ASSERT(swim_leave_propagated(s, t));
    CU_ASSERT(leaves >= swim_retransmit_limit(&lan, 3));
    CU_ASSERT_EQUAL(swim_set_meta(s, t, NULL, 0), -ESHUTDOWN);
    swim_delete(s);
}

static void test_pushpull(void)
{
    hms_time t = HMS_SEC(1);
    swim_t *a = make(t);
    swim_config c;
    memset(&c, 0, sizeof(c));
    c.name = "m5";
    key_of(5, c.key);
    c.addr = addr_of(5);
    c.incarnation = 1;
    c.seed = 5;
    c.profile = lan;
    swim_t *b = swim_new(&c, t);
    CU_ASSERT_FATAL(b != NULL);
    populate(a, t, 2);
    nouts = 0;
    drain(b);
    hms_addr seed = addr_of(0);
    nouts = 0;
    swim_join(b, t, &seed, 1);
    drain(b);
    size_t i;
    for (i = 0; i < nouts && outs[i].kind != SWIM_OUT_PUSHPULL; i++)
        ;
    CU_ASSERT_FATAL(i < nouts);
    CU_ASSERT(!outs[i].to_key_known);
    swim_output req = outs[i];
    static uint8_t reqbuf[1 << 16];
    memcpy(reqbuf, req.data, req.len);
    const uint8_t *reply;
    size_t rlen;
    uint8_t kb[SWIM_KEY_LEN], ka[SWIM_KEY_LEN], kx[SWIM_KEY_LEN];
    key_of(5, kb);
    key_of(0, ka);
    key_of(6, kx);
    hms_addr from = addr_of(5);
    /* The state's sender must be the authenticated peer. */
    CU_ASSERT_EQUAL(swim_pushpull_serve(a, t, &from, kx, reqbuf, req.len, &reply, &rlen), -EPERM);
    CU_ASSERT_EQUAL(swim_pushpull_serve(a, t, &from, kb, reqbuf, req.len, &reply, &rlen), 0);
    CU_ASSERT_EQUAL(status_of(a, 5, NULL), SWIM_ALIVE);
    static uint8_t repbuf[1 << 16];
    memcpy(repbuf, reply, rlen);
    swim_pushpull_done(b, t, req.token, ka, repbuf, rlen);
    CU_ASSERT_EQUAL(swim_member_count(b), 4); /* m5, m0, m1, m2 */
    CU_ASSERT_EQUAL(status_of(b, 0, NULL), SWIM_ALIVE);
    CU_ASSERT_EQUAL(status_of(b, 2, NULL), SWIM_ALIVE);
    /* Garbage state: refused, nothing changes. */
    repbuf[5] ^= 0xff;
    CU_ASSERT(swim_pushpull_serve(a, t, &from, kb, repbuf, rlen, &reply, &rlen) < 0);
    swim_delete(a);
    swim_delete(b);
}

/* A push-pull state from m7 naming members we never knew: m8 dead for
 * 10 s is listed dead with its address, dated from m7's view; m9 dead for
 * longer than the reap timeout is not taken (it would circulate forever);
 * m10 left is listed left. */
static void test_pushpull_gone_unknown(void)
{
    hms_time t = HMS_SEC(100000);
    swim_t *a = make(t);
    static uint8_t buf[1 << 12];
    gossip_pp_writer w;
    CU_ASSERT_FATAL(gossip_pp_begin(&w, buf, sizeof(buf), false, "m7") == 0);
    const int who[] = {7, 8, 9, 10};
    const uint8_t st[] = {SWIM_ALIVE, SWIM_DEAD, SWIM_DEAD, SWIM_LEFT};
    const uint32_t age[] = {0, 10, lan.reconnect_timeout_ms / 1000 + 1, 3};
    for (int i = 0; i < 4; i++) {
        gossip_member m;
        memset(&m, 0, sizeof(m));
        snprintf(m.name, sizeof(m.name), "m%d", who[i]);
        key_of(who[i], m.key);
        m.addr = addr_of(who[i]);
        m.incarnation = 4;
        m.status = st[i];
        m.age_s = age[i];
        CU_ASSERT_FATAL(gossip_pp_add(&w, &m) == 0);
    }
    size_t len;
    CU_ASSERT_FATAL(gossip_pp_finish(&w, &len) == 0);
    uint8_t k7[SWIM_KEY_LEN];
    key_of(7, k7);
    hms_addr from = addr_of(7);
    const uint8_t *reply;
    size_t rlen;
    nouts = 0;
    CU_ASSERT_EQUAL(swim_pushpull_serve(a, t, &from, k7, buf, len, &reply, &rlen), 0);
    drain(a);
    CU_ASSERT_EQUAL(status_of(a, 7, NULL), SWIM_ALIVE);
    CU_ASSERT_EQUAL(status_of(a, 8, NULL), SWIM_DEAD);
    CU_ASSERT_EQUAL(status_of(a, 9, NULL), -ENOENT);
    CU_ASSERT_EQUAL(status_of(a, 10, NULL), SWIM_LEFT);
    const swim_member_info *m8 = swim_member_find(a, "m8");
    CU_ASSERT_FATAL(m8 != NULL);
    hms_addr a8 = addr_of(8);
    CU_ASSERT(hms_addr_equal(&m8->addr, &a8));
    CU_ASSERT_EQUAL(m8->status_since, t - HMS_SEC(10));
    CU_ASSERT_EQUAL(count_events(SWIM_EV_DEAD), 1);
    CU_ASSERT_EQUAL(count_events(SWIM_EV_LEFT), 1);
    /* Reaped with everyone else: reconnect_timeout after the death, not
     * after we heard of it. */
    swim_tick(a, t + HMS_MS(lan.reconnect_timeout_ms) - HMS_SEC(5));
    CU_ASSERT_EQUAL(status_of(a, 8, NULL), -ENOENT);
    swim_delete(a);
}

int main(void)
{
    swim_profile_by_name("lan", &lan);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("swim", NULL, NULL);
    CU_add_test(s, "suspicion and retransmit arithmetic", test_arithmetic);
    CU_add_test(s, "configuration checks", test_config);
    CU_add_test(s, "incarnation ordering", test_incarnation_order);
    CU_add_test(s, "refutation", test_refutation);
    CU_add_test(s, "Lifeguard health multiplier", test_health_multiplier);
    CU_add_test(s, "retransmit limit", test_retransmit_limit);
    CU_add_test(s, "sender and target checks", test_sender_checks);
    CU_add_test(s, "user broadcasts and name conflicts", test_user_and_conflicts);
    CU_add_test(s, "expel and leave", test_expel_and_leave);
    CU_add_test(s, "push-pull join", test_pushpull);
    CU_add_test(s, "push-pull lists unknown dead and left members", test_pushpull_gone_unknown);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned f = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return f ? 1 : 0;
}
