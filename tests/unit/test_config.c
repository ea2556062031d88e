/*
 * hms-agent settings: defaults, every flag, repeatable flags, errors that
 * name the flag and the value, the JSON config file, and flags overriding
 * the file.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "agent/config.h"

static int parse(hms_config *c, char *err, size_t errlen, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, errlen);
    argv[argc++] = "hms-agent";
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 63;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    hms_config_defaults(c);
    err[0] = '\0';
    return hms_config_parse(c, argc, argv, err, errlen);
}

static void test_defaults(void)
{
    hms_config c;
    char err[512];
    CU_ASSERT_EQUAL(parse(&c, err, sizeof(err), NULL), 0);
    CU_ASSERT_EQUAL(c.bind.port, 7950);
    CU_ASSERT_EQUAL(c.bind.family, 4);
    CU_ASSERT_STRING_EQUAL(c.socket_path, "/run/hms/agent.sock");
    CU_ASSERT_STRING_EQUAL(c.profile_name, "lan");
    CU_ASSERT(c.node[0] != '\0');
    CU_ASSERT_EQUAL(c.join_count, 0);
    CU_ASSERT_EQUAL(c.admin_gid, -1);
}

static void test_flags(void)
{
    hms_config c;
    char err[512];
    int r = parse(&c, err, sizeof(err), "--node", "web-1", "--bind", "127.0.0.5", "--advertise",
                  "10.0.0.5:8000", "--join", "127.0.0.2", "--join=127.0.0.3:7000", "--data-dir",
                  "/tmp/x", "--socket", "/tmp/x.sock", "--profile", "local", "--log-level", "debug",
                  "--log-format", "json", "--ca", "/a.pub", "--ca", "/b.pub", "--cert", "/n.cert",
                  "--node-key", "/n.key", "--admin-group", "0", NULL);
    CU_ASSERT_EQUAL_FATAL(r, 0);
    CU_ASSERT_STRING_EQUAL(c.node, "web-1");
    CU_ASSERT_EQUAL(c.bind.port, 7950);
    CU_ASSERT_EQUAL(c.advertise.port, 8000);
    CU_ASSERT_EQUAL(c.join_count, 2);
    CU_ASSERT_EQUAL(c.join[0].port, 7950);
    CU_ASSERT_EQUAL(c.join[1].port, 7000);
    CU_ASSERT_STRING_EQUAL(c.data_dir, "/tmp/x");
    CU_ASSERT_STRING_EQUAL(c.socket_path, "/tmp/x.sock");
    CU_ASSERT_STRING_EQUAL(c.profile_name, "local");
    CU_ASSERT_EQUAL(c.log_level, HMS_LOG_DEBUG);
    CU_ASSERT_EQUAL(c.log_format, HMS_LOG_JSON);
    CU_ASSERT_EQUAL(c.ca_count, 2);
    CU_ASSERT_STRING_EQUAL(c.ca_files[1], "/b.pub");
    CU_ASSERT_STRING_EQUAL(c.cert_file, "/n.cert");
    CU_ASSERT_STRING_EQUAL(c.node_key_file, "/n.key");
    CU_ASSERT_EQUAL(c.admin_gid, 0);
    CU_ASSERT_EQUAL(
        parse(&c, err, sizeof(err), "--bind", "0.0.0.0:7001", "--advertise", "10.0.0.5", NULL), 0);
    CU_ASSERT_EQUAL(c.advertise.port, 0); /* the agent uses the bind port */
    CU_ASSERT_EQUAL(c.bind.port, 7001);
}

static void expect_error(const char *flag, const char *value, const char *needle)
{
    hms_config c;
    char err[512];
    int r = value ? parse(&c, err, sizeof(err), flag, value, NULL)
                  : parse(&c, err, sizeof(err), flag, NULL);
    CU_ASSERT_EQUAL(r, -EINVAL);
    if (!strstr(err, needle))
        fprintf(stderr, "\n  message '%s' lacks '%s'\n", err, needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, needle));
}

static void test_errors(void)
{
    expect_error("--bind", "nowhere", "'nowhere'");
    expect_error("--bind", "1.2.3.4:99999", "--bind");
    expect_error("--join", "1.2.3", "--join");
    expect_error("--profile", "fast", "'fast'");
    expect_error("--log-level", "loud", "'loud'");
    expect_error("--log-format", "xml", "'xml'");
    expect_error("--node", "bad name", "'bad name'");
    expect_error("--frobnicate", NULL, "'--frobnicate'");
    expect_error("--node", NULL, "needs a value");
    expect_error("--admin-group", "no-such-group-hms", "no-such-group-hms");
    expect_error("--config", "/nonexistent/hms.json", "/nonexistent/hms.json");
}

static void test_help(void)
{
    hms_config c;
    char err[512];
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int r = parse(&c, err, sizeof(err), "--help", NULL);
    fclose(stdout);
    stdout = saved;
    CU_ASSERT_EQUAL(r, 1);
}

static void test_file(void)
{
    char path[] = "/tmp/hms-test-config.XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    const char *json = "{\"node\": \"db-1\", \"bind\": \"127.0.0.9:7001\", \"join\": "
                       "[\"127.0.0.1\", \"127.0.0.2:7002\"], \"data_dir\": \"/tmp/d\", "
                       "\"log-level\": \"warn\", \"ca\": \"/ca.pub\", \"profile\": \"wan\"}";
    CU_ASSERT_EQUAL(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    hms_config c;
    char err[512];
    CU_ASSERT_EQUAL(parse(&c, err, sizeof(err), "--config", path, "--node", "db-2", NULL), 0);
    CU_ASSERT_STRING_EQUAL(c.node, "db-2"); /* the flag wins wherever it appears */
    CU_ASSERT_EQUAL(c.bind.port, 7001);
    CU_ASSERT_EQUAL(c.join_count, 2);
    CU_ASSERT_STRING_EQUAL(c.data_dir, "/tmp/d");
    CU_ASSERT_EQUAL(c.log_level, HMS_LOG_WARN);
    CU_ASSERT_EQUAL(c.ca_count, 1);
    CU_ASSERT_STRING_EQUAL(c.profile_name, "wan");

    const char *bad[] = {"[1, 2]",
                         "{\"bind\": 5}",
                         "{\"colour\": \"red\"}",
                         "{\"join\": [1]}",
                         "{\"node\": \"a\", \"node\": \"b\"}",
                         "{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        CU_ASSERT_EQUAL(parse(&c, err, sizeof(err), "--config", path, NULL), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    }
    unlink(path);
}

/* Audit settings: defaults, HMS_AUDIT_* environment, file (numbers and a
 * boolean), flags over the file, and values out of range refused. */
static void test_audit(void)
{
    hms_config c;
    char err[512];
    CU_ASSERT_EQUAL(parse(&c, err, sizeof(err), NULL), 0);
    CU_ASSERT_FALSE(c.audit.durable);
    CU_ASSERT_EQUAL(c.audit.seal_entries, 4096);
    CU_ASSERT_EQUAL(c.audit.seal_ms, 1000);
    CU_ASSERT_EQUAL(c.audit.replicas, 3);
    CU_ASSERT_EQUAL(c.audit.retain_bytes, 0);

    setenv("HMS_AUDIT_REPLICAS", "5", 1);
    setenv("HMS_AUDIT_SEAL_MS", "soon", 1); /* ignored with a warning */
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    CU_ASSERT_EQUAL(parse(&c, err, sizeof(err), NULL), 0);
    fclose(stderr);
    stderr = saved;
    unsetenv("HMS_AUDIT_REPLICAS");
    unsetenv("HMS_AUDIT_SEAL_MS");
    CU_ASSERT_EQUAL(c.audit.replicas, 5);
    CU_ASSERT_EQUAL(c.audit.seal_ms, 1000);

    char path[] = "/tmp/hms-test-config.XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    const char *json = "{\"audit_durable\": true, \"audit_replicas\": 2, \"audit-seal-entries\": "
                       "100, \"audit_retain_bytes\": \"1048576\", \"http_helper\": \"/opt/h\"}";
    CU_ASSERT_EQUAL(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    CU_ASSERT_EQUAL(
        parse(&c, err, sizeof(err), "--config", path, "--audit-replicas", "4", "--audit-seal-ms",
              "250", NULL),
        0);
    CU_ASSERT_TRUE(c.audit.durable);
    CU_ASSERT_EQUAL(c.audit.replicas, 4);
    CU_ASSERT_EQUAL(c.audit.seal_entries, 100);
    CU_ASSERT_EQUAL(c.audit.seal_ms, 250);
    CU_ASSERT_EQUAL(c.audit.retain_bytes, 1048576);
    CU_ASSERT_STRING_EQUAL(c.http_helper, "/opt/h");
    FILE *f = fopen(path, "w");
    fputs("{\"node\": true}", f);
    fclose(f);
    CU_ASSERT_EQUAL(parse(&c, err, sizeof(err), "--config", path, NULL), -EINVAL);
    unlink(path);

    expect_error("--audit-replicas", "0", "--audit-replicas '0'");
    expect_error("--audit-replicas", "17", "from 1 to 16");
    expect_error("--audit-seal-ms", "-5", "--audit-seal-ms '-5'");
    expect_error("--audit-seal-entries", "12x", "'12x'");
    expect_error("--audit-durable", "maybe", "'maybe'");
    expect_error("--audit-colour", "red", "'--audit-colour'");
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("config", NULL, NULL);
    CU_add_test(s, "defaults", test_defaults);
    CU_add_test(s, "flags", test_flags);
    CU_add_test(s, "errors", test_errors);
    CU_add_test(s, "help", test_help);
    CU_add_test(s, "file", test_file);
    CU_add_test(s, "audit", test_audit);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
