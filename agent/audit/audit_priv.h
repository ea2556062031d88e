/*
 * struct hms_audit: the state of the audit subsystem, shared by its files
 * (audit.c owns the own log; repl.c replication and gossip; query.c
 * queries and verification; module.c the wiring into the agent).
 */
#ifndef HMS_AUDIT_PRIV_H
#define HMS_AUDIT_PRIV_H

#include "agent/audit/audit_int.h"

struct hms_agent;
struct audit_repl;

struct audit_waiter {
    uint64_t seq;
    hms_audit_done_fn done;
    void *ctx;
};

#define AUDIT_FOLLOWERS_MAX 64 /* tail -f streams; more are refused (busy) */

struct audit_follower {
    uint64_t id;
    bool any;
    uint8_t key[32];
    hms_audit_follow_fn fn;
    void *ctx;
};

struct hms_audit {
    struct ev_loop *loop;
    uint8_t sk[64];
    uint8_t pk[32];
    char name[SWIM_NAME_MAX + 1];
    uint32_t seal_entries, seal_age_ms, replicas, backlog_max;
    bool durable_default;
    uint64_t retain_age_s, retain_bytes;

    astore store;
    alog *own;
    uint64_t next_seq, next_segno, last_ts;
    uint8_t head[HMS_AUDIT_HASH_LEN];
    uint64_t open_since_ms;
    uint64_t durable_seq;

    awriter w;
    ev_async async;
    ev_timer seal_timer;
    struct audit_waiter *waiters;
    size_t nwaiters, capwaiters;
    uint64_t seen_error_gen;
    hms_audit_stats stats;

    /* Hooks for replication. */
    void (*on_sealed)(hms_audit *a, const hms_audit_seal *newest, void *ctx);
    void *on_sealed_ctx;
    void (*on_tick)(hms_audit *a, void *ctx);
    void *on_tick_ctx;

    /* Query thread (qworker.c). */
    pthread_t qthread;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    bool qrunning, qstop;
    struct qjob *qjobs, *qdone;
    uint32_t qpending; /* loop side: submitted, not yet answered */
    ev_async qasync;

    struct audit_follower followers[AUDIT_FOLLOWERS_MAX];
    size_t nfollowers;
    uint64_t next_follow_id;

    struct hms_agent *agent; /* NULL when run without an agent (tests, bench) */
    struct audit_repl *repl;

    uint8_t scratch_fields[HMS_AUDIT_ENTRY_MAX];
    uint8_t scratch_enc[HMS_AUDIT_ENTRY_MAX];
};

int audit_seal_open(hms_audit *a);
int audit_qworker_start(hms_audit *a);
void audit_qworker_stop(hms_audit *a);
/* query.c: adds what replicas report to a verification report (loop). */
void audit_verify_add_replicas(hms_audit *a, json_t *report);
void audit_submit_job(hms_audit *a, ajob *j);

#endif
