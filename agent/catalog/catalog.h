/*
 * The service catalog subsystem of the agent: this node's registered
 * instances and their health checks, the replicated view of every member's
 * instances, and the operations the socket API exposes (ops_catalog.c).
 *
 * Replication: this node's set (version, digest) is the member meta field
 * "cat", so it rides on gossip with the member record. When a member's
 * advertised (version, digest) differs from the copy held here, the whole
 * set is fetched from that member with the channel RPC "catalog.fetch"
 * (at most CAT_FETCH_CONCURRENCY at once, retried with backoff while the
 * member is up and the copy still differs). Lookups are answered from the
 * local view and read only members that are up.
 *
 * Health: HTTP checks run in the hms-http helper process (probe.h), TCP
 * checks are non-blocking connects on the loop, TTL checks are timers reset
 * by `check pass|warn|fail`. See health.h for the state
 * machine and docs/catalog.md for the semantics.
 *
 * Every registration, deregistration and health transition goes through
 * one function (catalog_emit_event in catalog.c), which writes the audit
 * entry and logs the change.
 */
#ifndef HMS_CATALOG_H
#define HMS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/catalog/health.h"
#include "agent/catalog/view.h"
#include "proto/catalog.h"

struct hms_agent;
struct hms_audit_actor;
typedef struct hms_catalog hms_cat; /* hms_catalog() is the client call */

#define CAT_CHECKS_MAX 4         /* checks per instance */
#define CAT_CHECK_TARGET_MAX 255 /* URL of an HTTP check, host:port of a TCP check */
#define CAT_CHECK_OUTPUT_MAX 127 /* last result, for people */
#define CAT_FETCH_CONCURRENCY 4
#define CAT_WATCHES_MAX 1024     /* open watch streams, all clients */
#define CAT_SERVICE_FILES_MAX 256
#define CAT_SERVICE_FILE_BYTES (64 * 1024)
#define CAT_INTERVAL_MIN_MS 100
#define CAT_INTERVAL_DEFAULT_MS 10000
#define CAT_TIMEOUT_DEFAULT_MS 2000
#define CAT_META_FIELD "cat"
#define CAT_RPC_FETCH "catalog.fetch"

typedef enum cat_check_kind {
    CAT_CHECK_HTTP = 1,
    CAT_CHECK_TCP = 2,
    CAT_CHECK_TTL = 3,
} cat_check_kind;

const char *cat_check_kind_name(cat_check_kind k); /* "http", "tcp", "ttl" */

typedef struct cat_check_def {
    cat_check_kind kind;
    /* HTTP: a full URL, or a path ("/health") completed with the instance's
     * address and port; TCP: "host:port", empty for the instance's own. */
    char target[CAT_CHECK_TARGET_MAX + 1];
    uint32_t interval_ms; /* HTTP, TCP */
    uint32_t timeout_ms;  /* HTTP, TCP */
    uint32_t ttl_ms;      /* TTL */
    uint8_t rise, fall;   /* consecutive results to change status (0: default) */
} cat_check_def;

/* What a registration carries: the instance (its status is ignored and
 * computed from the checks) and its checks. */
typedef struct cat_registration {
    cat_instance inst;
    size_t nchecks;
    cat_check_def checks[CAT_CHECKS_MAX];
} cat_registration;

void cat_registration_init(cat_registration *r);
void cat_registration_clear(cat_registration *r);
/* Fills defaults (id = name, address 127.0.0.1, check interval/timeout) and
 * checks every field. 0 or -EINVAL/-E2BIG with a message in err. */
int cat_registration_finish(cat_registration *r, char *err, size_t errlen);

/* Parses a Consul-style service definition (JSON text):
 *   {"service": {"name": .., "id": .., "address": .., "port": ..,
 *    "tags": [..], "meta": {..}, "check": {"http"|"tcp"|"ttl": ..,
 *    "interval": "5s", "timeout": "1s", "success_before_passing": n,
 *    "failures_before_critical": n}, "checks": [..]}}
 * (the outer "service" may be omitted). Unknown keys are refused so that
 * typos do not pass silently. 0 or -EINVAL/-E2BIG with a message in err
 * naming the key. */
int cat_registration_from_json(const char *text, size_t len, cat_registration *r, char *err,
                               size_t errlen);

/* Subsystem lifecycle (agent.c): creates a->catalog, registers the socket
 * ops, the RPC method, the member listener and the meta field. */
int hms_catalog_start(struct hms_agent *a, char *err, size_t errlen);
void hms_catalog_stop(struct hms_agent *a);

/* Directory of service definition files (one JSON file per service), read
 * at start and by hms_catalog_reload. NULL or "" for none. */
void hms_catalog_set_services_dir(hms_cat *c, const char *dir);
/* Re-reads the services directory: new files register, changed files
 * re-register, removed files deregister (only what files registered).
 * Returns the number of files refused, or a negative code. */
int hms_catalog_reload(hms_cat *c);

/* Operations (ops_catalog.c). Errors: -EINVAL/-E2BIG (bad request, message
 * in err), -ENOSPC (instances_max reached), -ENOENT (no such instance),
 * -EPERM (registered from a file: change the file), -EEXIST (the id belongs
 * to a file-defined instance's counterpart), -ENOMEM. */
int hms_catalog_register(hms_cat *c, const cat_registration *r,
                         const struct hms_audit_actor *actor, char *err, size_t errlen);
int hms_catalog_deregister(hms_cat *c, const char *id, const struct hms_audit_actor *actor,
                           char *err, size_t errlen);
/* A TTL update for instance id: every TTL check of it gets the status. */
int hms_catalog_check_update(hms_cat *c, const char *id, cat_status st, const char *note,
                             const struct hms_audit_actor *actor, char *err, size_t errlen);

const cat_view *hms_catalog_view(const hms_cat *c);

/* One local check as shown by the `services` op. */
typedef struct cat_check_info {
    const cat_check_def *def;
    cat_status status;
    const char *output;
    uint64_t transitions;
} cat_check_info;

/* Local instances (sorted by id); for each, its checks and where it came
 * from (a file path, or NULL for the socket). Returns the count; i-th with
 * hms_catalog_local_at. */
size_t hms_catalog_local_count(const hms_cat *c);
const cat_instance *hms_catalog_local_at(const hms_cat *c, size_t i, const char **source,
                                         size_t *nchecks);
void hms_catalog_local_check(const hms_cat *c, size_t i, size_t k, cat_check_info *out);

/* Change notification for watches: fn(ctx) runs after every change of the
 * view (registration, health, fetched set, member up/down). Returns a
 * handle > 0, or -ENOSPC at CAT_WATCHES_MAX. */
typedef void (*cat_change_fn)(void *ctx);
int hms_catalog_watch_add(hms_cat *c, cat_change_fn fn, void *ctx);
void hms_catalog_watch_remove(hms_cat *c, int handle);

typedef struct cat_stats {
    uint64_t fetches, fetch_errors, fetch_refused, sets_applied, serves;
    uint64_t checks_run, check_transitions, registrations, deregistrations, refused;
    uint64_t watches_now;
} cat_stats;
void hms_catalog_get_stats(const hms_cat *c, cat_stats *out);

/* Registers the socket operations (ops_catalog.c). */
int hms_catalog_ops_register(struct hms_agent *a, hms_cat *c);

#endif
