/*
 * Health state machine: transitions result by result, flap damping by
 * consecutive counts, forced TTL updates, HTTP code mapping, worst-of.
 */
#include <CUnit/Basic.h>

#include "agent/catalog/health.h"

static void test_new_check_starts_critical_and_passes_on_first_pass(void)
{
    cat_health h;
    cat_health_init(&h, 0, 0, CAT_CRITICAL);
    CU_ASSERT_EQUAL(h.rise, CAT_HEALTH_RISE_DEFAULT);
    CU_ASSERT_EQUAL(h.fall, CAT_HEALTH_FALL_DEFAULT);
    CU_ASSERT_EQUAL(h.status, CAT_CRITICAL);
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_CRITICAL));
    CU_ASSERT_TRUE(cat_health_result(&h, CAT_PASSING));
    CU_ASSERT_EQUAL(h.status, CAT_PASSING);
    CU_ASSERT_EQUAL(h.transitions, 1);
}

static void test_fall_needs_consecutive_failures(void)
{
    cat_health h;
    cat_health_init(&h, 1, 3, CAT_PASSING);
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_CRITICAL));
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_CRITICAL));
    CU_ASSERT_EQUAL(h.status, CAT_PASSING);
    CU_ASSERT_TRUE(cat_health_result(&h, CAT_CRITICAL));
    CU_ASSERT_EQUAL(h.status, CAT_CRITICAL);
}

static void test_flapping_is_damped(void)
{
    cat_health h;
    cat_health_init(&h, 2, 2, CAT_PASSING);
    /* pass/fail alternating never reaches two in a row: no transition */
    for (int i = 0; i < 50; i++) {
        CU_ASSERT_FALSE(cat_health_result(&h, i % 2 ? CAT_PASSING : CAT_CRITICAL));
        CU_ASSERT_EQUAL(h.status, CAT_PASSING);
    }
    CU_ASSERT_EQUAL(h.transitions, 0);
    /* now really down, then alternating again: stays critical */
    cat_health_result(&h, CAT_CRITICAL);
    CU_ASSERT_TRUE(cat_health_result(&h, CAT_CRITICAL));
    for (int i = 0; i < 50; i++)
        CU_ASSERT_FALSE(cat_health_result(&h, i % 2 ? CAT_CRITICAL : CAT_PASSING));
    CU_ASSERT_EQUAL(h.status, CAT_CRITICAL);
    CU_ASSERT_TRUE(!cat_health_result(&h, CAT_PASSING) && cat_health_result(&h, CAT_PASSING));
    CU_ASSERT_EQUAL(h.transitions, 2);
}

static void test_streak_resets_on_other_result(void)
{
    cat_health h;
    cat_health_init(&h, 1, 2, CAT_PASSING);
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_WARNING));
    /* a different bad result starts a new streak */
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_CRITICAL));
    CU_ASSERT_TRUE(cat_health_result(&h, CAT_CRITICAL));
    CU_ASSERT_EQUAL(h.status, CAT_CRITICAL);
    /* critical -> warning is a rise: one result */
    CU_ASSERT_TRUE(cat_health_result(&h, CAT_WARNING));
    CU_ASSERT_EQUAL(h.status, CAT_WARNING);
    CU_ASSERT_TRUE(cat_health_result(&h, CAT_PASSING));
    /* warning from passing is a fall */
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_WARNING));
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_PASSING));
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_WARNING));
    CU_ASSERT_TRUE(cat_health_result(&h, CAT_WARNING));
    CU_ASSERT_EQUAL(h.status, CAT_WARNING);
}

static void test_force_skips_damping(void)
{
    cat_health h;
    cat_health_init(&h, 3, 3, CAT_CRITICAL);
    CU_ASSERT_TRUE(cat_health_force(&h, CAT_PASSING));
    CU_ASSERT_FALSE(cat_health_force(&h, CAT_PASSING));
    CU_ASSERT_FALSE(cat_health_result(&h, CAT_CRITICAL));
    CU_ASSERT_TRUE(cat_health_force(&h, CAT_CRITICAL));
    CU_ASSERT_EQUAL(h.streak, 0);
}

static void test_clamp(void)
{
    cat_health h;
    cat_health_init(&h, 200, 200, CAT_PASSING);
    CU_ASSERT_EQUAL(h.rise, CAT_HEALTH_COUNT_MAX);
    CU_ASSERT_EQUAL(h.fall, CAT_HEALTH_COUNT_MAX);
}

static void test_http_codes_and_worst(void)
{
    CU_ASSERT_EQUAL(cat_health_http(200), CAT_PASSING);
    CU_ASSERT_EQUAL(cat_health_http(204), CAT_PASSING);
    CU_ASSERT_EQUAL(cat_health_http(299), CAT_PASSING);
    CU_ASSERT_EQUAL(cat_health_http(429), CAT_WARNING);
    CU_ASSERT_EQUAL(cat_health_http(300), CAT_CRITICAL);
    CU_ASSERT_EQUAL(cat_health_http(404), CAT_CRITICAL);
    CU_ASSERT_EQUAL(cat_health_http(503), CAT_CRITICAL);
    CU_ASSERT_EQUAL(cat_health_http(0), CAT_CRITICAL);
    cat_status s[3] = {CAT_PASSING, CAT_WARNING, CAT_PASSING};
    CU_ASSERT_EQUAL(cat_health_worst(s, 0), CAT_PASSING);
    CU_ASSERT_EQUAL(cat_health_worst(s, 3), CAT_WARNING);
    s[2] = CAT_CRITICAL;
    CU_ASSERT_EQUAL(cat_health_worst(s, 3), CAT_CRITICAL);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("health", NULL, NULL);
    CU_add_test(s, "new check starts critical", test_new_check_starts_critical_and_passes_on_first_pass);
    CU_add_test(s, "fall needs consecutive failures", test_fall_needs_consecutive_failures);
    CU_add_test(s, "flapping is damped", test_flapping_is_damped);
    CU_add_test(s, "streak resets", test_streak_resets_on_other_result);
    CU_add_test(s, "force skips damping", test_force_skips_damping);
    CU_add_test(s, "clamp", test_clamp);
    CU_add_test(s, "http codes and worst", test_http_codes_and_worst);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
