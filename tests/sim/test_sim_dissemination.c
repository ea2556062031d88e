/*
 * Scenario: an update (a metadata change, which raises the incarnation)
 * reaches every node in O(log n) gossip rounds. Checked at two sizes: the
 * time to reach all n nodes must stay within c * log2(n) gossip intervals,
 * and growing the cluster 8x may cost only a few more rounds, far from 8x.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* One metadata change on a settled cluster (the catalog digest rides in
 * it): the gossip rounds until the last node has it, or -1 if some node
 * still lacks it after 20 s. */
static double meta_rounds(const char *profile, size_t n, double loss, uint64_t seed)
{
    sim_config c;
    sim_config_default(&c, n, seed);
    swim_profile_by_name(profile, &c.profile);
    c.strict_trust = true;
    sim_t *s = sim_new(&c);
    CU_ASSERT_FATAL(s != NULL);
    sim_start_all(s, HMS_SEC(1));
    CU_ASSERT_FATAL(sim_run_while(s, HMS_SEC(60), HMS_MS(100), converged, NULL));
    sim_run_until(s, sim_now(s) + HMS_SEC(20)); /* join traffic drained */
    sim_set_loss(s, loss);
    /* A moment that does not line up with anyone's timers. */
    sim_run_until(s, sim_now(s) + (seed * 7919) % HMS_MS(1000));
    hms_time t0 = sim_now(s);
    uint8_t meta[32];
    int ml = snprintf((char *)meta, sizeof(meta), "catalog:%llu", (unsigned long long)seed);
    CU_ASSERT_EQUAL_FATAL(swim_set_meta(sim_core(s, 1), t0, meta, (size_t)ml), 0);
    /* Whether each node holds the new meta, looked at every 10 ms (a node
     * holding n1 suspect takes it as a refutation: no update event). */
    hms_time last = 0;
    for (hms_time t = t0; t < t0 + HMS_SEC(20) && !last; t += HMS_MS(10)) {
        sim_run_until(s, t);
        size_t have = 0;
        for (size_t o = 0; o < n; o++) {
            const swim_member_info *m = swim_member_find(sim_core(s, o), "n1");
            have += m && m->meta_len == (size_t)ml && memcmp(m->meta, meta, (size_t)ml) == 0;
        }
        if (have == n)
            last = t;
    }
    sim_delete(s);
    return last ? (double)(last - t0) / (double)HMS_MS(c.profile.gossip_interval_ms) : -1;
}

/* A metadata update is membership news users wait on (a registration, a
 * health change): at 5, 16 and 64 nodes, loss-free and at 10 % loss, it
 * reaches every node within a few rounds more than log2 n, never at the
 * pace of push-pull or of probes. */
static void test_meta_bounded(void)
{
    uint64_t seed = sim_test_seed(42);
    const size_t sizes[] = {5, 16, 64};
    const double losses[] = {0.0, 0.1};
    const char *profiles[] = {"local", "lan"};
    size_t runs = getenv("HMS_SIM_RUNS") ? strtoul(getenv("HMS_SIM_RUNS"), NULL, 10) : 20;
    for (size_t p = 0; p < 2; p++) {
        for (size_t i = 0; i < 3; i++) {
            for (size_t l = 0; l < 2; l++) {
                double bound = 2.0 * log2((double)sizes[i]) + (losses[l] > 0 ? 6.0 : 3.0);
                double worst = 0;
                size_t over = 0;
                for (size_t k = 0; k < runs; k++) {
                    double r = meta_rounds(profiles[p], sizes[i], losses[l], seed + k);
                    if (r < 0 || r > bound) {
                        over++;
                        printf("\n  %s n=%zu loss=%.0f%% seed=%llu: %s %.1f rounds", profiles[p],
                               sizes[i], losses[l] * 100, (unsigned long long)(seed + k),
                               r < 0 ? "missing after" : "last after", r < 0 ? 200.0 : r);
                    }
                    if (r > worst)
                        worst = r;
                }
                printf("\n  %s n=%zu loss=%.0f%%: slowest %.1f rounds over %zu runs (bound %.1f)",
                       profiles[p], sizes[i], losses[l] * 100, worst, runs, bound);
                CU_ASSERT_EQUAL(over, 0);
            }
        }
    }
}

int main(void)
{
    static const sim_test_case cases[] = {
        {"update reaches all in O(log n) rounds", test_log_rounds},
        {"meta update reaches all in bounded rounds", test_meta_bounded},
    };
    return sim_test_main("sim_dissemination", cases, 2);
}
