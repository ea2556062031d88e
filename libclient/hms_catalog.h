/*
 * libhmsclient: the service catalog (register, look up, watch, report TTL
 * health). Calls follow hms.h: 0 or a negative errno-style code; -EREMOTEIO
 * when the agent refused, with its message in hms_last_error().
 *
 *   hms_service_def d = {.name = "payment-service", .port = 3000};
 *   hms_check_spec ck = {.kind = "http", .target = "/health", .interval_ms = 5000};
 *   d.checks = &ck; d.nchecks = 1;
 *   hms_register(c, &d, id, sizeof(id));
 *   hms_lookup(c, "payment-service", NULL, 0, false, &inst, &n);
 */
#ifndef HMS_LIBCLIENT_CATALOG_H
#define HMS_LIBCLIENT_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libclient/hms.h"

typedef struct hms_check_spec {
    const char *kind;   /* "http", "tcp" or "ttl" */
    const char *target; /* http: "/path" or URL; tcp: "ip:port" or NULL for the instance's */
    uint32_t interval_ms, timeout_ms, ttl_ms; /* 0: defaults (interval 10 s, timeout 2 s) */
    uint8_t rise, fall; /* consecutive results to pass / to fail (0: 1 and 2) */
} hms_check_spec;

typedef struct hms_service_def {
    const char *name;    /* required */
    const char *id;      /* NULL: the name */
    const char *address; /* NULL: 127.0.0.1 */
    uint16_t port;       /* required */
    const char *const *tags;
    size_t ntags;
    const char *const *meta_keys; /* nmeta keys and values */
    const char *const *meta_values;
    size_t nmeta;
    const hms_check_spec *checks;
    size_t nchecks;
} hms_service_def;

typedef struct hms_kv {
    char *key;
    char *value;
} hms_kv;

/* One instance as the agent reports it. Strings in tags/meta are heap. */
typedef struct hms_instance {
    char id[65];
    char name[64];
    char node[65];
    char address[64];
    uint16_t port;
    char status[16]; /* passing, warning, critical */
    size_t ntags;
    char **tags;
    size_t nmeta;
    hms_kv *meta;
} hms_instance;

void hms_instances_free(hms_instance *v, size_t n);
/* Decodes one instance map. 0 or -EPROTO (out is then empty). */
int hms_instance_from_msgpack(const msgpack_object *o, hms_instance *out);
/* Decodes an array of instance maps into a new array (hms_instances_free). */
int hms_instances_from_msgpack(const msgpack_object *o, hms_instance **out, size_t *n);

/* Registers (or replaces, by id) an instance on the local agent. id_out
 * (may be NULL) receives the instance id. */
int hms_register(hms_client *c, const hms_service_def *def, char *id_out, size_t cap);
/* Registers from a service definition in JSON ({"service": {...}}). */
int hms_register_json(hms_client *c, const char *json, char *id_out, size_t cap);
int hms_deregister(hms_client *c, const char *id);
/* TTL heartbeat: status "pass", "warn" or "fail"; note may be NULL. */
int hms_check_update(hms_client *c, const char *id, const char *status, const char *note);

/* Healthy (passing) instances of name on alive members having every tag,
 * this node's first; with all, every status. */
int hms_lookup(hms_client *c, const char *name, const char *const *tags, size_t ntags, bool all,
               hms_instance **out, size_t *n);

/* This node's instances with their checks: rep->result is an array of maps
 * (see docs/catalog.md). */
int hms_services(hms_client *c, hms_reply *rep);

typedef struct hms_service_summary {
    char name[64];
    uint32_t passing, warning, critical, nodes;
} hms_service_summary;

/* Every service name with instance counts by status. */
int hms_catalog(hms_client *c, hms_service_summary **out, size_t *n);
/* The whole `catalog` reply (services, per-node versions, view digest). */
int hms_catalog_raw(hms_client *c, hms_reply *rep);

/* Streams the lookup result for name now and after every change:
 * fn(instances, n, ctx) is called for each; return non-zero to stop (that
 * value is returned). A negative code when the stream ends. The instances
 * are freed after fn returns. */
typedef int (*hms_instances_fn)(const hms_instance *v, size_t n, void *ctx);
int hms_watch_service(hms_client *c, const char *name, const char *const *tags, size_t ntags,
                      bool all, hms_instances_fn fn, void *ctx);

#endif
