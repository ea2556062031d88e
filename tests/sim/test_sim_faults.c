/*
 * Scenarios under faults: no live node is ever declared dead over ten
 * simulated minutes with 10 % loss on every link (plus 2 % duplicates and
 * reordering) and one node paused for 2 s every 30 s (Lifeguard's reason to
 * exist); a third of the cluster cut
 * off for five minutes merges back into one cluster by itself.
 */
#include <string.h>

#include "tests/sim/sim_test.h"

typedef struct counts {
    size_t false_deaths, suspicions, refuted;
} counts;

static void on_event(void *ctx, sim_t *s, size_t node, hms_time now, const swim_output *o)
{
    counts *c = ctx;
    if (o->event != SWIM_EV_DEAD && o->event != SWIM_EV_SUSPECT)
        return;
    size_t subj = (size_t)strtoul(o->member->name + 1, NULL, 10);
    if (!sim_up(s, subj))
        return;
    if (o->event == SWIM_EV_DEAD) {
        c->false_deaths++;
        printf("\n  false death: %s declared %s dead at %.3f s", sim_name(s, node), o->member->name,
               (double)now / 1e6);
    } else {
        c->suspicions++;
    }
}

static bool converged(sim_t *s, void *arg)
{
    (void)arg;
    return sim_converged(s);
}

static void lossy(size_t n, uint64_t dflt_seed)
{
    counts cnt = {0};
    sim_config c;
    sim_config_default(&c, n, sim_test_seed(dflt_seed));
    c.on_event = on_event;
    c.ctx = &cnt;
    /* Duplicates, and latencies spread wide enough to reorder packets. */
    c.dup = 0.02;
    c.latency_max = HMS_MS(5);
    sim_t *s = sim_new(&c);
    CU_ASSERT_FATAL(s != NULL);
    sim_start_all(s, HMS_SEC(2));
    CU_ASSERT_FATAL(sim_run_while(s, HMS_SEC(30), HMS_MS(100), converged, NULL));
    sim_set_loss(s, 0.10);
    hms_time t0 = sim_now(s);
    uint64_t r = 0x9e3779b97f4a7c15ULL;
    for (int k = 1; k <= 20; k++) { /* 10 minutes */
        sim_run_until(s, t0 + HMS_SEC(30) * (hms_time)k - HMS_SEC(5));
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        sim_pause(s, (size_t)(r >> 33) % n, HMS_SEC(2));
        sim_run_until(s, t0 + HMS_SEC(30) * (hms_time)k);
    }
    sim_totals tot;
    sim_get_totals(s, &tot);
    printf("n=%zu, 600 s at 10%% loss with 20 pauses: %zu false suspicions (observer events), "
           "%zu false deaths, %.1f packets/node/s ",
           n, cnt.suspicions, cnt.false_deaths, (double)tot.packets / (double)n / 630.0);
    CU_ASSERT_EQUAL(cnt.false_deaths, 0);
    CU_ASSERT(cnt.suspicions > 0); /* the faults did bite */
    sim_delete(s);
}

static void test_lossy_48(void)
{
    lossy(48, 31);
}

static void test_lossy_64(void)
{
    lossy(64, 32);
}

static void test_partition(void)
{
    size_t n = 48, cut = n / 3;
    counts cnt = {0};
    sim_config c;
    sim_config_default(&c, n, sim_test_seed(33));
    sim_t *s = sim_new(&c);
    CU_ASSERT_FATAL(s != NULL);
    sim_start_all(s, HMS_SEC(2));
    CU_ASSERT_FATAL(sim_run_while(s, HMS_SEC(30), HMS_MS(100), converged, NULL));
    (void)cnt;
    int group[48];
    for (size_t i = 0; i < n; i++)
        group[i] = i < cut ? 1 : 0; /* node 0, the seed, is in the minority */
    sim_partition(s, group);
    sim_run_until(s, sim_now(s) + HMS_SEC(300));
    /* Each side has given the other up. */
    CU_ASSERT_EQUAL(sim_status(s, 0, n - 1), SWIM_DEAD);
    CU_ASSERT_EQUAL(sim_status(s, n - 1, 0), SWIM_DEAD);
    sim_partition(s, NULL);
    hms_time healed = sim_now(s);
    bool ok = sim_run_while(s, healed + HMS_SEC(120), HMS_MS(100), converged, NULL);
    printf("after a 300 s cut of %zu/%zu nodes: one cluster again %s %.2f s after the heal ", cut,
           n, ok ? "" : "NOT", (double)(sim_now(s) - healed) / 1e6);
    CU_ASSERT(ok);
    sim_delete(s);
}

int main(void)
{
    static const sim_test_case cases[] = {
        {"no false deaths: 48 nodes, 10% loss, pauses", test_lossy_48},
        {"no false deaths: 64 nodes, 10% loss, pauses", test_lossy_64},
        {"partition of a third heals", test_partition},
    };
    return sim_test_main("sim_faults", cases, 3);
}
