/*
 * Conveniences shared by the scenario tests and hms-sim: starting a whole
 * cluster, staging identities.
 */
#include <stdio.h>
#include <string.h>

#include "tests/sim/sim.h"

void sim_start_all(sim_t *s, hms_time spread)
{
    size_t n = sim_size(s), seed = 0;
    hms_time t0 = sim_now(s);
    sim_start(s, 0, NULL, 0);
    for (size_t i = 1; i < n; i++) {
        sim_run_until(s, t0 + spread * i / n);
        sim_start(s, i, &seed, 1);
    }
}
