/*
 * Scenario: an update (a metadata change, which raises the incarnation)
 * reaches every node in O(log n) gossip rounds. Checked at two sizes: the
 * time to reach all n nodes must stay within c * log2(n) gossip intervals,
 * and growing the cluster 8x may cost only a few more rounds, far from 8x.
 */
#include <math.h>
#include <string.h>

#include "tests/sim/sim_test.h"

typedef struct spread {
    const char *origin;
    uint64_t inc;
    size_t reached;
    hms_time last;
} spread;

static void on_event(void *ctx, sim_t *s, size_t node, hms_time now, const swim_output *o)
{
    spread *sp = ctx;
    (void)s;
    (void)node;
    if (sp->inc && o->event == SWIM_EV_UPDATE && strcmp(o->member->name, sp->origin) == 0 &&
        o->member->incarnation >= sp->inc) {
        sp->reached++;
        sp->last = now;
    }
}

static bool converged(sim_t *s, void *arg)
{
    (void)arg;
    return sim_converged(s);
}

static double rounds_to_reach_all(size_t n, uint64_t seed)
{
    spread sp = {.origin = "n1"};
    sim_config c;
    sim_config_default(&c, n, seed);
    c.on_event = on_event;
    c.ctx = &sp;
    sim_t *s = sim_new(&c);
    CU_ASSERT_FATAL(s != NULL);
    sim_start_all(s, HMS_SEC(5));
    CU_ASSERT_FATAL(sim_run_while(s, HMS_SEC(60), HMS_MS(100), converged, NULL));
    sim_run_until(s, sim_now(s) + HMS_SEC(20)); /* let join traffic drain */
    hms_time t0 = sim_now(s);
    const uint8_t meta[] = "services:v2";
    uint64_t inc = 0;
    swim_member_status(sim_core(s, 1), "n1", &inc);
    sp.inc = inc + 1;
    CU_ASSERT_EQUAL_FATAL(swim_set_meta(sim_core(s, 1), t0, meta, sizeof(meta)), 0);
    sim_run_until(s, t0 + HMS_SEC(30));
    swim_profile p;
    swim_profile_by_name("lan", &p);
    double rounds = (double)(sp.last - t0) / (double)HMS_MS(p.gossip_interval_ms);
    /* n - 1 others, plus the origin's own update event. */
    printf("n=%zu: %zu/%zu nodes updated after %.2f s = %.1f gossip rounds (log2 n = %.1f) ", n,
           sp.reached, n, (double)(sp.last - t0) / 1e6, rounds, log2((double)n));
    CU_ASSERT_EQUAL(sp.reached, n);
    sim_delete(s);
    return rounds;
}

static void test_log_rounds(void)
{
    uint64_t seed = sim_test_seed(41);
    double r64 = rounds_to_reach_all(64, seed);
    double r512 = rounds_to_reach_all(512, seed);
    CU_ASSERT(r64 <= 2.0 * log2(64.0));
    CU_ASSERT(r512 <= 2.0 * log2(512.0));
    /* 8x the nodes: log2 grows by 3, so a handful of rounds more, not 8x. */
    CU_ASSERT(r512 <= r64 + 3.0 * 3.0);
}

int main(void)
{
    static const sim_test_case cases[] = {
        {"update reaches all in O(log n) rounds", test_log_rounds},
    };
    return sim_test_main("sim_dissemination", cases, 1);
}
