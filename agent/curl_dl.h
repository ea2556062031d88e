/*
 * libcurl, loaded when first needed. The agent uses libcurl only for HTTP
 * health checks; linking it would map libcurl and everything it pulls in
 * (TLS libraries, Kerberos, LDAP, ...) into every agent, several MiB of
 * resident memory, even where no HTTP check is ever registered. So
 * hms_curl() dlopen()s libcurl.so.4 on its first call, resolves the
 * functions the agent uses into one table and runs curl_global_init; later
 * calls return the same table. Types and constants still come from
 * <curl/curl.h>.
 *
 * A failed load is reported, not cached: the next call tries again (the
 * library may have been installed meanwhile). Loop thread only: neither the
 * load nor curl_global_init is thread-safe.
 */
#ifndef HMS_AGENT_CURL_DL_H
#define HMS_AGENT_CURL_DL_H

#include <stddef.h>

#include <curl/curl.h>

#define HMS_CURL_SONAME "libcurl.so.4"

/* Field names avoid the curl_* names: <curl/curl.h> defines some of them
 * as type-checking macros. */
typedef struct hms_curl_api {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *curl);
    const char *(*easy_strerror)(CURLcode code);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
    CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t s, int ev_bitmask,
                                     int *running_handles);
    CURLMcode (*multi_assign)(CURLM *multi, curl_socket_t s, void *sockp);
    CURLMsg *(*multi_info_read)(CURLM *multi, int *msgs_in_queue);
    CURLMcode (*multi_cleanup)(CURLM *multi);
} hms_curl_api;

/* The loaded table, or NULL with a message in err ("cannot load
 * 'libcurl.so.4': ..."). */
const hms_curl_api *hms_curl(char *err, size_t errlen);

/* Whether libcurl has been loaded in this process by hms_curl(). */
int hms_curl_loaded(void);

/* Sets the library hms_curl() opens (default HMS_CURL_SONAME); for tests of
 * the failure path. Has no effect once loaded; name must stay valid. */
void hms_curl_set_library(const char *name);

#endif
