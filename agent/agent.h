/*
 * The agent runtime: one libev loop, the membership core and its drivers,
 * the node identity, the channel pool, the socket API, and the seams where
 * subsystems plug in.
 *
 * Subsystems start in a fixed order (agent.c, table `modules`): trust, swim,
 * audit, catalog, api. At shutdown the API clients and the channels are
 * closed first (stream on_close and cancelled calls run while every
 * subsystem still exists), then subsystems stop in reverse order. A
 * subsystem's start function
 * gets the agent, may register API ops (agent->api), RPC methods, member and
 * broadcast listeners and meta fields, and keeps its state in its own
 * pointer here (agent->catalog, agent->audit, ...). Seeds are contacted
 * only once every subsystem has started, so listeners see every event.
 *
 * Everything here runs on the agent's loop; none of it is thread-safe.
 */
#ifndef HMS_AGENT_AGENT_H
#define HMS_AGENT_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "agent/api/api.h"
#include "agent/config.h"
#include "agent/log.h"
#include "agent/net/chan.h"
#include "agent/swim/swim.h"

struct hms_sealer;
struct hms_udp;
struct hms_trust;
struct hms_catalog;
struct hms_audit;
struct hms_call;

/* Kinds of swim_broadcast messages (SWIM_EV_USER). */
enum hms_user_kind {
    HMS_USER_REVOCATION = 1, /* a CA-signed revocation record */
    HMS_USER_AUDIT_HEAD = 2, /* a node's signed audit head */
    HMS_USER_CATALOG = 3,    /* catalog change notice */
    HMS_USER_KIND_MAX = 32,  /* kinds are below this */
};

#define HMS_AGENT_LISTENERS_MAX 16 /* member listeners; also per user kind */
#define HMS_META_FIELDS_MAX 8
#define HMS_META_KEY_MAX 8 /* bytes of a meta field name */

typedef struct hms_agent hms_agent;

/* Called for every membership event (SWIM_EV_*) after the core emits it,
 * with a copy of the member record; SWIM_EV_USER goes to user listeners. */
typedef void (*hms_member_fn)(hms_agent *a, swim_event ev, const swim_member_info *m, void *ctx);
/* A broadcast of a given kind from member `from` (SWIM_EV_USER). */
typedef void (*hms_user_fn)(hms_agent *a, const swim_member_info *from, const uint8_t *data,
                            size_t len, void *ctx);

struct hms_agent {
    struct ev_loop *loop;
    const hms_config *cfg;
    char name[SWIM_NAME_MAX + 1];
    char data_dir[PATH_MAX];
    hms_addr advertise;

    /* Identity: Ed25519 node key, its X25519 form (Noise static, sealing)
     * and our certificate. Secrets are wiped by hms_agent_delete. */
    uint8_t ed_pk[32];
    uint8_t ed_sk[64];
    uint8_t x_sk[32];
    uint8_t x_pk[32];
    uint8_t cert[SWIM_CERT_MAX];
    size_t cert_len;

    uint64_t incarnation; /* last value persisted in <data_dir>/incarnation */
    uint64_t seal_epoch;  /* value persisted in <data_dir>/epoch for this run */

    swim_t *swim;
    struct hms_trust *trust;
    struct hms_sealer *sealer;
    struct hms_udp *udp;
    hms_chan_pool *chan;
    hms_api *api;
    struct hms_catalog *catalog;
    struct hms_audit *audit;
    struct hms_call *call;

    bool leaving;  /* graceful leave in progress */
    bool stopping; /* the loop is being stopped */

    /* Private to agent.c. */
    struct hms_agent_priv *priv;
};

/* Creates the agent from a parsed config: opens and locks the data dir,
 * picks the advertised address, creates the API server (not listening yet).
 * Returns 0 or a negative code with a message for people in err. */
int hms_agent_new(struct ev_loop *loop, const hms_config *cfg, hms_agent **out, char *err,
                  size_t errlen);
/* Starts every subsystem in order (trust loads the identity and
 * certificate; swim persists the next incarnation and seal epoch and binds
 * UDP and TCP; api listens), then contacts the seeds. On error the
 * subsystems already started are stopped again. */
int hms_agent_start(hms_agent *a, char *err, size_t errlen);
/* Graceful leave: disseminates it, then calls done(a, ctx) once it has
 * propagated or after max_ms. */
void hms_agent_leave(hms_agent *a, uint32_t max_ms, void (*done)(hms_agent *a, void *ctx),
                     void *ctx);
/* Leaves gracefully (at most max_ms) and then stops the loop: what SIGTERM
 * and the `leave` op do. */
void hms_agent_shutdown(hms_agent *a, uint32_t max_ms);
/* Stops subsystems in reverse order and frees everything. */
void hms_agent_delete(hms_agent *a);

/* Monotonic time in microseconds, as the membership core wants it. */
hms_time hms_agent_now(const hms_agent *a);

/* Listeners. Return 0 or -ENOSPC (HMS_AGENT_LISTENERS_MAX). */
int hms_agent_on_member(hms_agent *a, hms_member_fn fn, void *ctx);
int hms_agent_on_user(hms_agent *a, uint8_t kind, hms_user_fn fn, void *ctx);

/* Gossips data (up to SWIM_USER_MAX bytes) to every member as a broadcast
 * of `kind`; a newer broadcast of the same kind replaces a queued one. */
int hms_agent_broadcast(hms_agent *a, uint8_t kind, const uint8_t *data, size_t len);

/* This node's member meta is a msgpack map {field: bin}. Sets (len > 0) or
 * removes (data NULL) one field and re-announces the record (swim_set_meta).
 * Returns 0, -EINVAL (key too long), -ENOSPC (too many fields, or the map
 * would exceed SWIM_META_MAX bytes; nothing changed). */
int hms_agent_set_meta_field(hms_agent *a, const char *key, const uint8_t *data, size_t len);
/* Reads one field from any member's meta (untrusted bytes: bounds-checked).
 * Returns 0 with *data pointing into meta, -ENOENT, or -EINVAL (malformed). */
int hms_meta_get_field(const uint8_t *meta, size_t meta_len, const char *key, const uint8_t **data,
                       size_t *len);

/* RPC over the pooled Noise channels (chan.h). hms_agent_rpc_call resolves
 * addr from the member list when addr is NULL and key is given. */
int hms_agent_rpc_handle(hms_agent *a, const char *method, hms_rpc_handler fn, void *ctx);
int hms_agent_rpc_call(hms_agent *a, const uint8_t *key, const hms_addr *addr, const char *method,
                       const uint8_t *req, size_t len, uint32_t timeout_ms, hms_rpc_done done,
                       void *ctx, uint64_t *call_id);

/* Runs the membership core's pending output (packets, events) now; call
 * after using a->swim directly. Safe to call re-entrantly. */
void hms_agent_swim_flush(hms_agent *a);

/* Joins more seeds at run time (the `join` op). */
void hms_agent_join(hms_agent *a, const hms_addr *seeds, size_t n);

/* Records an admin operation in the audit log: kind ("admin.leave", ...),
 * the client's uid, pid and program name (from /proc), and fields (a jansson
 * object or NULL; the reference is stolen). Does nothing without an audit
 * log. */
struct json_t;
void hms_agent_audit_admin(hms_agent *a, const hms_api_req *req, const char *kind,
                           struct json_t *fields);

/* Builds "<data_dir>/<name>" into buf. Returns 0 or -ENAMETOOLONG. */
int hms_agent_path(const hms_agent *a, const char *name, char *buf, size_t cap);

/* Counters kept by the drivers, for the `stats` op. */
typedef struct hms_agent_udp_stats {
    uint64_t packets_in, packets_out, bytes_in, bytes_out;
    uint64_t drop_malformed, drop_unknown_sender, drop_bad_tag, drop_replay, drop_stale_epoch,
        drop_revoked, drop_not_for_us, drop_oversize, drop_no_key, send_errors;
} hms_agent_udp_stats;
void hms_agent_get_udp_stats(const hms_agent *a, hms_agent_udp_stats *out);

#endif
