/*
 * The agent's Unix-socket API server and the contract for its operations.
 *
 * Each subsystem contributes a table of operations at start:
 *
 *     static const hms_api_op catalog_ops[] = {
 *         {"register", op_register, HMS_API_ADMIN},
 *         {"lookup", op_lookup, 0},
 *         {NULL, NULL, 0},
 *     };
 *     hms_api_register(agent->api, catalog_ops, catalog);
 *
 * The server decodes each frame (proto/api.h), checks admin rights, and calls
 * the handler with the request and a msgpack packer. A handler either
 *   - packs exactly one msgpack object (the result) and returns 0, or
 *   - returns hms_api_fail(err, code, fmt, ...) (what it packed is dropped), or
 *   - opens a stream (hms_api_stream_open) and returns HMS_API_STREAMING: the
 *     handler sends frames later with hms_api_stream_send and ends with
 *     hms_api_stream_end; it learns through on_close that the client went away.
 * Handlers run on the agent's loop and must not block.
 *
 * Limits (docs/api.md): HMS_API_CLIENTS_MAX connections (more are accepted
 * and closed at once, counted), HMS_API_OUTBUF_MAX bytes of unsent stream
 * frames per connection (a client that does not read its stream is
 * disconnected, counted; for plain replies the server stops taking the
 * client's requests instead), HMS_API_STREAMS_MAX open streams per
 * connection.
 */
#ifndef HMS_AGENT_API_H
#define HMS_AGENT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "proto/api.h"

struct hms_agent;
struct ev_loop;

#define HMS_API_CLIENTS_MAX 256
#define HMS_API_OUTBUF_MAX (8u << 20)
#define HMS_API_STREAMS_MAX 16
#define HMS_API_TABLES_MAX 16
#define HMS_API_STREAMING 1 /* handler return value: the reply is a stream */

enum hms_api_flags {
    HMS_API_ADMIN = 1 << 0, /* only the agent's uid, root or the admin group */
};

typedef struct hms_api hms_api;
typedef struct hms_api_conn hms_api_conn;
typedef struct hms_api_stream hms_api_stream;

/* A decoded request, valid for the duration of the handler call. */
typedef struct hms_api_req {
    uint64_t id;
    bool has_id;
    const char *op;
    const msgpack_object *args; /* the request map; read fields with hms_api_arg_* */
    uid_t uid;                  /* SO_PEERCRED of the client */
    gid_t gid;
    pid_t pid;
    bool admin;         /* the client may run admin operations */
    void *ctx;          /* the ctx given to hms_api_register */
    hms_api_conn *conn; /* for hms_api_stream_open */
} hms_api_req;

typedef struct hms_api_error {
    const char *code; /* one of HMS_API_E_* (static string) */
    char message[256];
} hms_api_error;

typedef int (*hms_api_fn)(struct hms_agent *agent, const hms_api_req *req, msgpack_packer *result,
                          hms_api_error *err);

typedef struct hms_api_op {
    const char *name;
    hms_api_fn fn;
    unsigned flags;
} hms_api_op;

/* Sets err and returns -1: `return hms_api_fail(err, HMS_API_E_NOT_FOUND, "no member '%s'", n);` */
int hms_api_fail(hms_api_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Argument helpers. Each returns 0, -ENOENT (absent or nil) or -EINVAL (wrong
 * type, or does not fit); on error nothing is written. */
const msgpack_object *hms_api_arg(const hms_api_req *req, const char *key);
int hms_api_arg_str(const hms_api_req *req, const char *key, char *buf, size_t cap);
int hms_api_arg_u64(const hms_api_req *req, const char *key, uint64_t *out);
int hms_api_arg_bool(const hms_api_req *req, const char *key, bool *out);
/* Packs a NUL-terminated string (nil for NULL). */
void hms_api_pack_str(msgpack_packer *pk, const char *s);
/* Packs key then value string: for building maps. */
void hms_api_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
void hms_api_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val);
void hms_api_pack_kv_bool(msgpack_packer *pk, const char *key, bool val);

/* Server lifecycle (agent.c). hms_api_new does not listen yet, so modules can
 * register their tables first; hms_api_listen binds the socket (mode 0660,
 * parent directory created, a stale socket file replaced only when nothing
 * answers on it). admin_gid < 0: no admin group. */
hms_api *hms_api_new(struct hms_agent *agent, struct ev_loop *loop);
int hms_api_listen(hms_api *api, const char *path, long admin_gid, char *err, size_t errlen);
void hms_api_delete(hms_api *api); /* closes every client (streams get on_close) */

/* Adds a table (ends with {NULL}); ctx is handed to its handlers in req->ctx.
 * A name already registered is refused. Returns 0, -EEXIST or -ENOSPC. */
int hms_api_register(hms_api *api, const hms_api_op *table, void *ctx);

/* Streams. on_close(stream, ctx) runs once when the client disconnects, the
 * connection is dropped for a full output buffer, the client cancels the
 * stream, or the server shuts down; the stream is freed right after it and
 * must not be used again. hms_api_stream_end also frees it (no on_close). */
typedef void (*hms_api_stream_close_fn)(hms_api_stream *st, void *ctx);
hms_api_stream *hms_api_stream_open(const hms_api_req *req, hms_api_stream_close_fn on_close,
                                    void *ctx);
/* Sends {id, ok: true, more: true, result} with result given as packed
 * msgpack bytes. Returns 0 or -ENOBUFS: the client is too slow, the
 * connection is being dropped and on_close will run from the loop. */
int hms_api_stream_send(hms_api_stream *st, const void *result, size_t len);
/* Ends the stream: a final {id, ok: true, result} (result NULL: nil) or, with
 * err != NULL, {id, ok: false, error}. Frees st. */
void hms_api_stream_end(hms_api_stream *st, const void *result, size_t len,
                        const hms_api_error *err);

typedef struct hms_api_stats {
    uint64_t clients_accepted, clients_refused, clients_now;
    uint64_t requests, errors, bad_frames, oversized_frames, slow_clients;
    uint64_t forbidden, streams_now;
} hms_api_stats;

void hms_api_get_stats(const hms_api *api, hms_api_stats *out);

#endif
