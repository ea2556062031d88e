/*
 * Loads libcurl on first use (see curl_dl.h): one dlopen, one dlsym per
 * function into a static table, then curl_global_init. The handle is never
 * closed: curl keeps global state, and unloading it under live handles
 * would be worse than the mapping it costs.
 */
#include "agent/curl_dl.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static hms_curl_api api;
static bool loaded;
static const char *libname = HMS_CURL_SONAME;

void hms_curl_set_library(const char *name)
{
    if (!loaded && name)
        libname = name;
}

int hms_curl_loaded(void)
{
    return loaded;
}

/* dlsym into a function pointer: the object-to-function pointer cast is
 * what POSIX specifies for dlsym, done through memcpy to stay within C11. */
static bool resolve(void *h, const char *sym, void *slot, size_t slot_size, char *err,
                    size_t errlen)
{
    void *p = dlsym(h, sym);
    if (!p) {
        const char *e = dlerror();
        snprintf(err, errlen, "cannot load '%s': symbol '%s' missing%s%s", libname, sym,
                 e ? ": " : "", e ? e : "");
        return false;
    }
    memcpy(slot, &p, slot_size);
    return true;
}

#define RESOLVE(field, sym)                                                                \
    do {                                                                                   \
        _Static_assert(sizeof(t.field) == sizeof(void *), "function pointer size");         \
        if (!resolve(h, sym, &t.field, sizeof(t.field), err, errlen))                      \
            goto fail;                                                                     \
    } while (0)

const hms_curl_api *hms_curl(char *err, size_t errlen)
{
    hms_curl_api t;
    CURLcode (*global_init)(long flags);
    const char *(*version)(void);

    if (loaded)
        return &api;
    dlerror();
    void *h = dlopen(libname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(err, errlen, "cannot load '%s': %s", libname, e ? e : "unknown error");
        return NULL;
    }
    RESOLVE(easy_init, "curl_easy_init");
    RESOLVE(easy_setopt, "curl_easy_setopt");
    RESOLVE(easy_getinfo, "curl_easy_getinfo");
    RESOLVE(easy_cleanup, "curl_easy_cleanup");
    RESOLVE(easy_strerror, "curl_easy_strerror");
    RESOLVE(multi_init, "curl_multi_init");
    RESOLVE(multi_setopt, "curl_multi_setopt");
    RESOLVE(multi_add_handle, "curl_multi_add_handle");
    RESOLVE(multi_remove_handle, "curl_multi_remove_handle");
    RESOLVE(multi_socket_action, "curl_multi_socket_action");
    RESOLVE(multi_assign, "curl_multi_assign");
    RESOLVE(multi_info_read, "curl_multi_info_read");
    RESOLVE(multi_cleanup, "curl_multi_cleanup");
    if (!resolve(h, "curl_global_init", &global_init, sizeof(global_init), err, errlen) ||
        !resolve(h, "curl_version", &version, sizeof(version), err, errlen))
        goto fail;
    if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise '%s' (%s)", libname, version());
        goto fail;
    }
    api = t;
    loaded = true;
    return &api;
fail:
    dlclose(h);
    return NULL;
}
