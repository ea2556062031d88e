/*
 * libhmsclient: the audit log. Entries, reports and status come back as
 * jansson values (docs/audit.md describes their fields); the caller owns
 * them (json_decref). Calls follow hms.h: 0 or a negative errno-style code;
 * -EREMOTEIO when the agent refused, with its message in hms_last_error().
 *
 *   json_t *entries;
 *   hms_client_audit_trace(c, "00-4bf92f35...-01", &entries);
 *   json_t *report;
 *   hms_client_audit_verify(c, NULL, true, &report);  // every log held
 *
 * node arguments are member names (a dead member's last known name works)
 * or node keys in hex; NULL means the local agent's own log.
 */
#ifndef HMS_LIBCLIENT_AUDIT_H
#define HMS_LIBCLIENT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "libclient/hms.h"

/* The last n entries of a log, oldest first: *out is a JSON array. */
int hms_client_audit_tail(hms_client *c, const char *node, size_t n, json_t **out);

/* The last n entries, then every new one as it is appended (or arrives
 * from the origin, for another node's log): fn(entry, ctx) for each; stops
 * when fn returns non-zero (that value is returned) or the stream ends. */
typedef int (*hms_audit_entry_cb)(json_t *entry, void *ctx);
int hms_client_audit_follow(hms_client *c, const char *node, size_t n, hms_audit_entry_cb fn,
                            void *ctx);

/* Entries with one request id: from one log (get), or from every log the
 * agent holds in time order (trace). */
int hms_client_audit_get(hms_client *c, const char *request_id, const char *node, json_t **out);
int hms_client_audit_trace(hms_client *c, const char *request_id, json_t **out);

/* Verification report {ok, logs: [...]} for one log (node; NULL: own) or
 * all logs held (all). Returns 0 even when the report says ok: false. */
int hms_client_audit_verify(hms_client *c, const char *node, bool all, json_t **report);

/* Every entry (of one log, or all logs held) at or after since_ns, page by
 * page: fn(entry, ctx) for each. */
int hms_client_audit_export(hms_client *c, const char *node, uint64_t since_ns,
                            hms_audit_entry_cb fn, void *ctx);

int hms_client_audit_status(hms_client *c, json_t **out);

/* Appends a business event to the local agent's log: kind, optional
 * request id, actor name and fields (a JSON object, not stolen). durable:
 * answer only once the entry is fsynced. *seq gets its sequence number. */
int hms_client_audit_append(hms_client *c, const char *kind, const char *request_id,
                            const char *actor, const json_t *fields, bool durable, uint64_t *seq);

/* Hands a segment file's bytes to the agent (admin): it is checked like a
 * replicated segment; verdict says what happened. */
int hms_client_audit_import(hms_client *c, const uint8_t *seg, size_t len, const char *node,
                            char *verdict, size_t cap);

#endif
