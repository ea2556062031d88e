/*
 * Shared scaffolding of the simulator scenario tests: a CUnit runner and the
 * seed report. Every scenario prints its seed first, so a failure names the
 * run that reproduces it (hms-sim takes the same --seed).
 */
#ifndef HMS_SIM_TEST_H
#define HMS_SIM_TEST_H

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

/* HMS_SIM_SEED overrides a scenario's seed, to explore other runs. */
static inline uint64_t sim_test_seed(uint64_t dflt)
{
    const char *e = getenv("HMS_SIM_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 0) : dflt;
    printf("\n  seed=%llu ", (unsigned long long)seed);
    fflush(stdout);
    return seed;
}

typedef struct sim_test_case {
    const char *name;
    void (*fn)(void);
} sim_test_case;

static inline int sim_test_main(const char *suite, const sim_test_case *cases, size_t n)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite(suite, NULL, NULL);
    /* HMS_SIM_ONLY=TEXT runs only the scenarios whose name contains TEXT. */
    const char *only = getenv("HMS_SIM_ONLY");
    for (size_t i = 0; s && i < n; i++)
        if (!only || strstr(cases[i].name, only))
            CU_add_test(s, cases[i].name, cases[i].fn);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

#endif
