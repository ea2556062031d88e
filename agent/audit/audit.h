/*
 * Audit log: this node's hash-chained, signed, replicated record of what it
 * saw and did (membership changes, registrations, health transitions, calls,
 * admin operations, business events appended by local services).
 *
 * Other subsystems only call hms_audit_emit(): it never blocks and never
 * fails in a way the caller must handle. The entry is chained in memory at
 * once (sequence, time, previous hash), then handed to the writer thread,
 * which frames, writes and fsyncs segment files under DATA_DIR/audit/ and
 * reports back to the loop through an ev_async. Entries are grouped into
 * segments sealed (Ed25519 over the head hash) every `seal_entries` entries
 * or `seal_age_ms` milliseconds. Sealed segments are pulled by R replicas.
 * Format, storage, durability and replication: docs/audit.md.
 */
#ifndef HMS_AGENT_AUDIT_H
#define HMS_AGENT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct ev_loop;
struct hms_audit;
typedef struct hms_audit hms_audit;

/* Who caused an entry. uid/pid -1 when unknown; name may be NULL (a local
 * service name, a peer node name, "hmsctl", ...). Pass NULL for the agent
 * itself. Strings are copied. */
typedef struct hms_audit_actor {
    int64_t uid;
    int64_t pid;
    const char *name;
} hms_audit_actor;

/* Entry kinds used by the agent's own subsystems (any printable string up to
 * HMS_AUDIT_KIND_MAX bytes is accepted). */
#define HMS_AUDIT_KIND_MAX 64
#define HMS_AUDIT_REQID_MAX 128
#define HMS_AUDIT_ACTOR_NAME_MAX 128

/*
 * Appends one entry to this node's log. Never blocks on I/O.
 *   kind        e.g. "member.join", "service.register", "health.change",
 *               "call", "admin.op"; required
 *   request_id  W3C traceparent or any caller id, or NULL
 *   actor       who asked, or NULL for the agent itself
 *   fields      a jansson object (or NULL for none); the reference is
 *               stolen in every case, also on error
 * Returns 0, -EINVAL (bad kind, request id or actor name, fields not an
 * object or not convertible, a is NULL), -EMSGSIZE (entry above
 * HMS_AUDIT_ENTRY_MAX), -ENOMEM, or -ENOSPC (the in-memory backlog is at
 * its limit because the disk keeps failing; the entry is dropped and
 * counted). A failing disk does not fail emit: entries are kept in memory
 * and written when it recovers (docs/audit.md).
 */
int hms_audit_emit(struct hms_audit *a, const char *kind, const char *request_id,
                   const hms_audit_actor *actor, json_t *fields);

/* Completion of a durable append: status 0 once the entry is on disk
 * (fsynced), or a negative code. seq is the entry's sequence number. */
typedef void (*hms_audit_done_fn)(void *ctx, int status, uint64_t seq);

/*
 * Like hms_audit_emit, and reports the entry's sequence number in *seq.
 * When durable is true, done(ctx, ...) is called from the loop once the
 * entry is fsynced (or when writing failed); when false, done may be NULL
 * and is called right away if given. done is never called from inside this
 * function when it returns an error.
 */
int hms_audit_append(struct hms_audit *a, const char *kind, const char *request_id,
                     const hms_audit_actor *actor, json_t *fields, bool durable,
                     hms_audit_done_fn done, void *ctx, uint64_t *seq);

typedef struct hms_audit_config {
    const char *data_dir;     /* the log lives in <data_dir>/audit/ */
    const uint8_t *node_sk;   /* Ed25519 secret key, 64 bytes (copied, wiped on delete) */
    const char *node_name;    /* recorded in status output */
    uint32_t seal_entries;    /* seal after this many entries (0: 4096) */
    uint32_t seal_age_ms;     /* seal an open segment this old (0: 1000) */
    uint32_t commit_delay_us; /* group-commit window before fsync (0: none) */
    bool durable;             /* default for socket appends: answer after fsync */
    uint32_t replicas;        /* R: copies of every log held by others (0: 3) */
    uint64_t retain_age_s;    /* keep sealed segments locally at least this long (0: forever) */
    uint64_t retain_bytes;    /* ... or until the log is bigger than this (0: no limit) */
    uint32_t backlog_max;     /* entries kept in memory while the disk fails (0: 1<<20) */
} hms_audit_config;

/*
 * Opens (creating if needed) the log under cfg->data_dir: recovers a torn
 * tail of the open segment (truncated, logged), verifies every stored
 * segment (own log and replicas: chain, frames, seals). On failure returns a
 * negative code and writes a message naming the file and offset into err.
 */
int hms_audit_new(struct ev_loop *loop, const hms_audit_config *cfg, hms_audit **out, char *err,
                  size_t errlen);

/* Seals the open segment, flushes, stops the writer thread, frees. */
void hms_audit_delete(hms_audit *a);

/* Seals the open segment now (if it has entries). */
int hms_audit_seal_now(hms_audit *a);

typedef struct hms_audit_stats {
    uint64_t next_seq;        /* sequence the next entry gets */
    uint64_t durable_seq;     /* entries below this are fsynced */
    uint64_t sealed_segments; /* own segments sealed */
    uint64_t appended, dropped, write_errors, fsyncs;
    uint64_t replica_segments, replica_refused, forks;
    bool failed; /* the disk failed; entries are kept in memory and retried */
} hms_audit_stats;

void hms_audit_get_stats(const hms_audit *a, hms_audit_stats *out);

/* The configured default for appends that do not say (HMS_AUDIT_DURABLE). */
bool hms_audit_durable_default(const hms_audit *a);

/* ---- inside the agent (module.c) ---------------------------------------- */

struct hms_agent;
/* Opens the log in the agent's data dir, starts replication, registers the
 * audit socket operations; a message in err on failure. */
int hms_audit_start(struct hms_agent *agent, char *err, size_t errlen);
void hms_audit_stop(struct hms_agent *agent);

/* ---- queries (query.c), for the socket operations ------------------------ */

/* Node name (member, or remembered for a dead one) or key hex -> key. */
int hms_audit_key_of(hms_audit *a, const char *name, uint8_t key[32]);
/* Last n entries of one log (key NULL: this node's), oldest first, as a
 * JSON array; NULL with *err (-ENOENT: log not held, -EBADMSG: does not
 * verify). */
json_t *hms_audit_query_tail(hms_audit *a, const uint8_t *key, size_t n, int *err);
/* Entries with request id reqid (NULL: any) from one log (key; NULL: own)
 * or from every log held (all), in time order, at most limit (0: all). */
json_t *hms_audit_query_find(hms_audit *a, const uint8_t *key, bool all, const char *reqid,
                             size_t limit, int *err);
/* One page of an export: {entries: [...], next: cursor|null}. */
json_t *hms_audit_query_export(hms_audit *a, const uint8_t *key, uint64_t since_ns,
                               const char *cursor, size_t limit, int *err);
/* Verification report {ok, logs: [{node, key, ok, problems, forks, replicas, ...}]}. */
json_t *hms_audit_query_verify(hms_audit *a, const uint8_t *key, bool all, int *err);
json_t *hms_audit_query_status(hms_audit *a);

/* The same queries on the audit query thread (large logs never hold the
 * loop): done(ctx, result, rc) runs later on the loop with the result (the
 * callee owns it) or NULL and rc, also -ECANCELED at shutdown. At most
 * HMS_AUDIT_QUERIES_MAX wait at once: -EBUSY beyond (done not called). */
#define HMS_AUDIT_QUERIES_MAX 64
enum { HMS_AUDIT_Q_TAIL = 1, HMS_AUDIT_Q_FIND, HMS_AUDIT_Q_EXPORT, HMS_AUDIT_Q_VERIFY };
typedef struct hms_audit_query {
    int op;
    const uint8_t *key; /* NULL: own log (FIND/EXPORT with all: every log) */
    bool all;
    size_t n;           /* TAIL: entries; FIND: limit (0: all); EXPORT: page size */
    const char *reqid;  /* FIND */
    uint64_t since_ns;  /* EXPORT */
    const char *cursor; /* EXPORT */
} hms_audit_query;
typedef void (*hms_audit_query_done)(void *ctx, json_t *result, int rc);
int hms_audit_query_async(hms_audit *a, const hms_audit_query *q, hms_audit_query_done done,
                          void *ctx);

/* Followers of one log (key NULL: own): fn gets each new entry as JSON
 * (borrowed). */
typedef void (*hms_audit_follow_fn)(void *ctx, json_t *entry);
int hms_audit_follow(hms_audit *a, const uint8_t *key, hms_audit_follow_fn fn, void *ctx,
                     uint64_t *id);
void hms_audit_unfollow(hms_audit *a, uint64_t id);

/* Brings the local copy of key's log up to date from its holders (at most
 * max_ms), then done(ctx, status) from the loop. -EALREADY: nothing to do
 * (done not called). */
int hms_audit_fetch(hms_audit *a, const uint8_t key[32], uint32_t max_ms,
                    void (*done)(void *ctx, int status), void *ctx);
/* The same for every log known (key NULL), for traces. */
int hms_audit_fetch_all(hms_audit *a, uint32_t max_ms, void (*done)(void *ctx, int status),
                        void *ctx);
/* Takes a segment file given by an operator; verdict says what happened. */
int hms_audit_import(hms_audit *a, const uint8_t *buf, size_t len, const uint8_t *expect_key,
                     char *verdict, size_t cap);

#endif
