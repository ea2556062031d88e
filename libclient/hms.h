/*
 * libhmsclient: the C API of the local agent, over its Unix socket.
 *
 * A connection carries requests and replies as frames (proto/api.h). Calls
 * are blocking with a timeout and return 0 or a negative errno-style code:
 *   -ENOENT / -ECONNREFUSED   no agent listens at the socket path
 *   -EACCES                   the socket is not accessible to this user
 *   -ETIMEDOUT                no reply in time
 *   -EPROTO                   the agent sent something that is not a reply
 *   -EREMOTEIO                the agent answered with an error: its code and
 *                             message are in the hms_reply (or hms_last_error)
 * A connection is not thread-safe; use one per thread. While a stream
 * (hms_stream_start) is open, the connection serves only that stream.
 */
#ifndef HMS_LIBCLIENT_HMS_H
#define HMS_LIBCLIENT_HMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define HMS_SOCKET_DEFAULT "/run/hms/agent.sock"
#define HMS_CLIENT_TIMEOUT_MS 10000

typedef struct hms_client hms_client;

/* Connects to the agent. path NULL: $HMS_SOCKET, else HMS_SOCKET_DEFAULT.
 * Returns 0 and *out, or a negative code (see above). */
int hms_connect(const char *path, hms_client **out);
/* Closes the connection and frees c (NULL is fine). */
void hms_close(hms_client *c);
/* Timeout for each following call, in milliseconds (0: wait forever). */
void hms_set_timeout(hms_client *c, uint32_t ms);
/* The socket path in use. */
const char *hms_socket_path(const hms_client *c);

/* A reply. Owns the decoded message; free with hms_reply_destroy. */
typedef struct hms_reply {
    msgpack_unpacked msg;
    uint8_t *raw;                 /* the frame payload the message points into */
    const msgpack_object *result; /* the result (nil object when absent); NULL on error */
    bool ok;
    bool more;     /* a stream frame that more will follow */
    char code[48]; /* error code when !ok (e.g. "not_found") */
    char message[512];
} hms_reply;

void hms_reply_destroy(hms_reply *r);

/* Packs the request arguments: exactly one msgpack map whose entries become
 * fields of the request (next to id and op). */
typedef int (*hms_pack_fn)(msgpack_packer *pk, void *ctx);

/* Sends {id, op, args...} and waits for its reply. pack may be NULL (no
 * arguments). On 0 and on -EREMOTEIO, *rep holds the reply and must be
 * destroyed; on other errors *rep is left empty (destroying it is safe). */
int hms_request(hms_client *c, const char *op, hms_pack_fn pack, void *ctx, hms_reply *rep);

/* Streams: sends the request, then each hms_stream_next returns one frame:
 * 0 with rep->more true while the stream goes on; 0 with rep->more false for
 * the final frame; -EREMOTEIO when the stream ended with an error; -EPIPE
 * when the agent closed. timeout_ms 0 waits forever; -ETIMEDOUT leaves the
 * stream open. */
int hms_stream_start(hms_client *c, const char *op, hms_pack_fn pack, void *ctx);
int hms_stream_next(hms_client *c, uint32_t timeout_ms, hms_reply *rep);
/* Ends the open stream (op "cancel"): frames still in flight are skipped,
 * and the connection serves requests again. 0 or a negative code. */
int hms_stream_cancel(hms_client *c);
/* The connection's file descriptor, to wait for stream frames with poll(2). */
int hms_client_fd(const hms_client *c);

/* Membership. */
typedef struct hms_member {
    char name[65];
    char address[64]; /* "ip:port" */
    char status[8];   /* alive, suspect, dead, left */
    uint64_t incarnation;
    char key[65];    /* Ed25519 public key, hex */
    char key_id[17]; /* first 8 bytes of the key, hex */
    double since_s;  /* seconds in this status */
    bool self;
} hms_member;

/* All members (status NULL) or those with one status; *out is an array of
 * *n members to free with free(). */
int hms_members(hms_client *c, const char *status, hms_member **out, size_t *n);
/* One member by name: -EREMOTEIO with code "not_found" when unknown. */
int hms_member_get(hms_client *c, const char *name, hms_member *out);
/* Asks the agent to join the cluster through these seeds ("ip[:port]"). */
int hms_join(hms_client *c, const char *const *addrs, size_t n);
/* Graceful leave: the agent disseminates it and exits. */
int hms_leave(hms_client *c);
/* Agent counters; rep->result is a map (see docs/api.md). */
int hms_stats(hms_client *c, hms_reply *rep);

/* Membership changes: fn(ev, member, ctx) for each change ("join", "suspect",
 * "alive", "dead", "left", "update", "reaped"); returns when fn returns
 * non-zero (that value), or with a negative code when the stream ends. */
typedef int (*hms_watch_fn)(const char *event, const hms_member *m, void *ctx);
int hms_watch(hms_client *c, hms_watch_fn fn, void *ctx);

/* Decodes a member map as sent by the agent (members, member, watch). */
int hms_member_from_msgpack(const msgpack_object *o, hms_member *out);

/* Converts a msgpack object to a new jansson value (bin becomes a hex
 * string, ext null, non-string map keys their JSON text). NULL on error. */
struct json_t;
struct json_t *hms_json_from_msgpack(const msgpack_object *o);

/* Text of the last -EREMOTEIO error on c ("code: message"), or "". */
const char *hms_last_error(const hms_client *c);

/* A short message for a negative code returned by these calls. */
const char *hms_strerror(int code);

#endif
