/*
 * Replication of audit logs between agents (repl.c): signed heads on
 * gossip, replica choice by rendezvous hashing, pulling sealed segments over
 * the Noise channel RPC "audit.pull", fork detection, on-demand fetches for
 * queries about logs not held here. Without an agent (tests, benchmarks)
 * every function is a no-op that reports nothing.
 */
#ifndef HMS_AUDIT_REPL_H
#define HMS_AUDIT_REPL_H

#include <jansson.h>

#include "agent/audit/audit_priv.h"

struct hms_agent;

int audit_repl_start(hms_audit *a, struct hms_agent *ag, char *err, size_t errlen);
void audit_repl_stop(hms_audit *a);

/* Member name -> key (alive or remembered); 0 or -ENOENT. */
int audit_repl_key_of(hms_audit *a, const char *name, uint8_t key[32]);

/* Adds to probs what replicas and gossip say against the log l; returns
 * the replicas array for the report (or NULL). */
json_t *audit_repl_verify_log(hms_audit *a, alog *l, json_t *probs);
/* Adds replicas and their lag to a status object. */
void audit_repl_status_log(hms_audit *a, alog *l, json_t *o);

/* Brings the local copy of key's log up to what holders have (bounded in
 * time), then calls done(ctx, status) from the loop. */
typedef void (*audit_fetch_fn)(void *ctx, int status);
int audit_repl_fetch(hms_audit *a, const uint8_t key[32], uint32_t max_ms, audit_fetch_fn done,
                     void *ctx);

/* The same for every log known here (a trace from any host sees every
 * hop); -EALREADY when nothing is missing (done not called). */
int audit_repl_fetch_all(hms_audit *a, uint32_t max_ms, audit_fetch_fn done, void *ctx);

/* Takes a segment file's bytes from an operator: the same checks as a
 * pulled segment. On 0, *verdict says what happened ("stored", "duplicate",
 * "fork", "refused: ..."). */
int audit_repl_import(hms_audit *a, const uint8_t *buf, size_t len, const uint8_t *expect_key,
                      char *verdict, size_t cap);

/* query.c: hands one new entry of log l to followers. */
void audit_notify_entry(hms_audit *a, alog *l, const hms_audit_entry *e, const uint8_t h[32]);

#endif
