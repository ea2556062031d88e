/*
 * libcurl loaded on first use (agent/curl_dl.h): a library that cannot be
 * loaded gives a clear error and turns an HTTP probe critical with that
 * message; the next attempt loads the real library, and a probe against a
 * closed port on loopback then fails the way curl reports it.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/catalog/probe.h"
#include "agent/curl_dl.h"

#define HOST "127.0.44.203"
#define MISSING "libhms-no-such-curl.so.9"

static struct ev_loop *loop;

typedef struct res {
    int done;
    cat_status st;
    char out[CAT_PROBE_OUTPUT_MAX + 1];
} res;

static void done_cb(void *ctx, cat_status st, const char *output)
{
    res *r = ctx;
    r->done = 1;
    r->st = st;
    snprintf(r->out, sizeof(r->out), "%s", output);
}

static void stop_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    ev_break(l, EVBREAK_ALL);
}

static void run_until(res *r, double secs)
{
    ev_timer t;
    ev_timer_init(&t, stop_cb, 0.02, 0.02);
    ev_timer_start(loop, &t);
    for (int i = 0; i < (int)(secs / 0.02) && !r->done; i++)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
}

/* A port on HOST with nothing listening: bound, then closed. */
static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    inet_pton(AF_INET, HOST, &sa.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_missing_then_loaded(void)
{
    char err[256] = "";
    char url[64];
    uint16_t port = closed_port();
    CU_ASSERT_NOT_EQUAL_FATAL(port, 0);
    snprintf(url, sizeof(url), "http://%s:%u/health", HOST, port);

    /* A prober is made without loading anything. */
    cat_prober *p = cat_prober_new(loop);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_FALSE(hms_curl_loaded());

    hms_curl_set_library(MISSING);
    CU_ASSERT_PTR_NULL(hms_curl(err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot load '" MISSING "'"));
    CU_ASSERT_FALSE(hms_curl_loaded());

    /* The probe is critical with the reason, delivered from the loop. */
    res r1 = {0};
    CU_ASSERT_EQUAL(cat_probe_http(p, url, 1000, done_cb, &r1, NULL), 0);
    CU_ASSERT_FALSE(r1.done);
    run_until(&r1, 2);
    CU_ASSERT_TRUE(r1.done);
    CU_ASSERT_EQUAL(r1.st, CAT_CRITICAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(r1.out, "cannot load '" MISSING "'"));

    /* The next probe tries again and reaches the network through curl. */
    hms_curl_set_library(HMS_CURL_SONAME);
    res r2 = {0};
    CU_ASSERT_EQUAL(cat_probe_http(p, url, 2000, done_cb, &r2, NULL), 0);
    CU_ASSERT_TRUE(hms_curl_loaded());
    run_until(&r2, 4);
    CU_ASSERT_TRUE(r2.done);
    CU_ASSERT_EQUAL(r2.st, CAT_CRITICAL);
    CU_ASSERT_PTR_NULL(strstr(r2.out, "cannot load"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r2.out, "onnect"));

    /* Loaded once: the table is the same and the library name is fixed. */
    const hms_curl_api *a = hms_curl(err, sizeof(err));
    hms_curl_set_library(MISSING);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_EQUAL(hms_curl(err, sizeof(err)), a);
    cat_prober_delete(p);
}

int main(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("curl loaded on first use", NULL, NULL);
    CU_add_test(s, "missing library, then loaded", test_missing_then_loaded);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    ev_loop_destroy(loop);
    return failed ? 1 : 0;
}
