/*
 * Service definitions: Consul-style JSON files and registration defaults,
 * with the refusals people see (unknown keys, bad durations, limits).
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/catalog/catalog.h"

static int parse(const char *json, cat_registration *r, char *err, size_t errlen)
{
    return cat_registration_from_json(json, strlen(json), r, err, errlen);
}

static void test_full_definition(void)
{
    char err[256] = "";
    cat_registration r;
    const char *j = "{\"service\": {\"name\": \"payment-service\", \"port\": 3000, "
                    "\"tags\": [\"v2\", \"primary\"], \"meta\": {\"zone\": \"eu-1\"}, "
                    "\"check\": {\"http\": \"/health\", \"interval\": \"5s\", \"timeout\": \"1s\", "
                    "\"failures_before_critical\": 3}}}";
    CU_ASSERT_EQUAL_FATAL(parse(j, &r, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(r.inst.name, "payment-service");
    CU_ASSERT_STRING_EQUAL(r.inst.id, "payment-service"); /* defaults to the name */
    CU_ASSERT_STRING_EQUAL(r.inst.address, "127.0.0.1");
    CU_ASSERT_EQUAL(r.inst.port, 3000);
    CU_ASSERT_EQUAL(r.inst.ntags, 2);
    CU_ASSERT_STRING_EQUAL(r.inst.tags[0], "primary");
    CU_ASSERT_STRING_EQUAL(cat_instance_meta(&r.inst, "zone"), "eu-1");
    CU_ASSERT_EQUAL_FATAL(r.nchecks, 1);
    CU_ASSERT_EQUAL(r.checks[0].kind, CAT_CHECK_HTTP);
    CU_ASSERT_STRING_EQUAL(r.checks[0].target, "/health");
    CU_ASSERT_EQUAL(r.checks[0].interval_ms, 5000);
    CU_ASSERT_EQUAL(r.checks[0].timeout_ms, 1000);
    CU_ASSERT_EQUAL(r.checks[0].fall, 3);
    cat_registration_clear(&r);
}

static void test_bare_and_checks(void)
{
    char err[256] = "";
    cat_registration r;
    const char *j = "{\"name\": \"db\", \"id\": \"db-2\", \"address\": \"10.0.0.7\", \"port\": 5432, "
                    "\"checks\": [{\"tcp\": \"10.0.0.7:5432\", \"interval\": 2}, {\"ttl\": \"30s\"}]}";
    CU_ASSERT_EQUAL_FATAL(parse(j, &r, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(r.inst.id, "db-2");
    CU_ASSERT_EQUAL(r.nchecks, 2);
    CU_ASSERT_EQUAL(r.checks[0].kind, CAT_CHECK_TCP);
    CU_ASSERT_EQUAL(r.checks[0].interval_ms, 2000);
    CU_ASSERT_EQUAL(r.checks[0].timeout_ms, 2000);
    CU_ASSERT_EQUAL(r.checks[1].kind, CAT_CHECK_TTL);
    CU_ASSERT_EQUAL(r.checks[1].ttl_ms, 30000);
    cat_registration_clear(&r);
}

static void refused(const char *json, const char *needle)
{
    char err[256] = "";
    cat_registration r;
    int rc = parse(json, &r, err, sizeof(err));
    CU_ASSERT(rc == -EINVAL || rc == -E2BIG);
    if (!strstr(err, needle)) {
        printf("\n  message '%s' lacks '%s'\n", err, needle);
        CU_FAIL("message");
    }
}

static void test_refusals(void)
{
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"prot\": 2}}", "unknown key 'prot'");
    refused("{\"service\": {\"name\": \"x\"}}", "port");
    refused("{\"service\": {\"name\": \"x y\", \"port\": 1}}", "invalid character");
    refused("{\"service\": {\"name\": \"x\", \"port\": 70000}}", "1-65535");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"check\": {\"http\": \"/h\", "
            "\"interval\": \"5 parsecs\"}}}",
            "duration");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"check\": {\"http\": \"ftp://h\"}}}",
            "neither a path");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"check\": {\"interval\": \"1s\"}}}",
            "none of http, tcp, ttl");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"address\": \"db.local\", "
            "\"check\": {\"tcp\": true}}}",
            "not an IP address");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"check\": {\"http\": \"/h\", "
            "\"interval\": \"10ms\"}}}",
            "below");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1}, \"other\": 1}", "no other top-level");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"name\": \"y\"}}", "invalid JSON");
    refused("[1,2]", "not a JSON object");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"tags\": [\"a\", \"b\", \"c\", \"d\", "
            "\"e\", \"f\", \"g\", \"h\", \"i\", \"j\", \"k\", \"l\", \"m\", \"n\", \"o\", \"p\", "
            "\"q\"]}}",
            "tags_max");
    refused("{\"service\": {\"name\": \"x\", \"port\": 1, \"checks\": [{\"ttl\": \"1s\"}, "
            "{\"ttl\": \"1s\"}, {\"ttl\": \"1s\"}, {\"ttl\": \"1s\"}, {\"ttl\": \"1s\"}]}}",
            "checks_max");
}

static void test_durations(void)
{
    uint32_t ms;
    CU_ASSERT(cat_duration_parse("5s", &ms) == 0 && ms == 5000);
    CU_ASSERT(cat_duration_parse("250ms", &ms) == 0 && ms == 250);
    CU_ASSERT(cat_duration_parse("1.5s", &ms) == 0 && ms == 1500);
    CU_ASSERT(cat_duration_parse("2m", &ms) == 0 && ms == 120000);
    CU_ASSERT(cat_duration_parse("3", &ms) == 0 && ms == 3000);
    CU_ASSERT_EQUAL(cat_duration_parse("", &ms), -EINVAL);
    CU_ASSERT_EQUAL(cat_duration_parse("-1s", &ms), -EINVAL);
    CU_ASSERT_EQUAL(cat_duration_parse("5x", &ms), -EINVAL);
    CU_ASSERT_EQUAL(cat_duration_parse("2d", &ms), -EINVAL);
    CU_ASSERT_EQUAL(cat_duration_parse("25h", &ms), -EINVAL);
    CU_ASSERT_EQUAL(cat_duration_parse("nan", &ms), -EINVAL);
    CU_ASSERT_EQUAL(cat_duration_parse("inf", &ms), -EINVAL);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("catalog service definitions", NULL, NULL);
    CU_add_test(s, "full definition", test_full_definition);
    CU_add_test(s, "bare object and checks array", test_bare_and_checks);
    CU_add_test(s, "refusals", test_refusals);
    CU_add_test(s, "durations", test_durations);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
