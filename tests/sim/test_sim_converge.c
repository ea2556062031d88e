/*
 * Scenario: clusters form. 64 nodes joining through one seed converge within
 * seconds; 1000 nodes joining over 20 s converge to one view (every node
 * sees all 1000 alive) within a simulated minute.
 */
#include "tests/sim/sim_test.h"

/* A big run keeps ASan's quarantine small: the simulation frees and reuses
 * many small blocks, and the default 256 MB would only add resident memory. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16";
}

static bool converged(sim_t *s, void *arg)
{
    (void)arg;
    return sim_converged(s);
}

static void run(size_t n, hms_time spread, hms_time limit, uint64_t dflt_seed)
{
    sim_config c;
    sim_config_default(&c, n, sim_test_seed(dflt_seed));
    sim_t *s = sim_new(&c);
    CU_ASSERT_FATAL(s != NULL);
    sim_start_all(s, spread);
    bool ok = sim_run_while(s, limit, HMS_MS(250), converged, NULL);
    printf("n=%zu converged=%d at %.2f s (joins over %.0f s) ", n, ok, (double)sim_now(s) / 1e6,
           (double)spread / 1e6);
    CU_ASSERT(ok);
    /* Converged means each node counts n alive; check the names too. */
    for (size_t o = 0; ok && o < n; o += n / 16)
        for (size_t j = 0; j < n; j++)
            CU_ASSERT_EQUAL_FATAL(sim_status(s, o, j), SWIM_ALIVE);
    sim_delete(s);
}

static void test_64(void)
{
    run(64, HMS_SEC(2), HMS_SEC(15), 11);
}

static void test_1000(void)
{
    run(1000, HMS_SEC(20), HMS_SEC(60), 12);
}

int main(void)
{
    static const sim_test_case cases[] = {
        {"64 nodes converge", test_64},
        {"1000 nodes converge", test_1000},
    };
    return sim_test_main("sim_converge", cases, 2);
}
