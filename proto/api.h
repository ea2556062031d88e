/*
 * The Unix-socket API wire format, shared by the agent's server and
 * libclient. No I/O here.
 *
 * A frame is a 4-byte big-endian payload length followed by the payload, one
 * msgpack map:
 *
 *   +--------+--------+--------+--------+---------------------------+
 *   |        length (uint32, big endian)|  msgpack map, length bytes |
 *   +--------+--------+--------+--------+---------------------------+
 *
 *   request   {id: uint, op: str, <op arguments>...}
 *   reply     {id: uint, ok: true, result: any}
 *             {id: uint, ok: false, error: {code: str, message: str}}
 *   stream    {id: uint, ok: true, more: true, result: any}  (repeated; the
 *             stream ends with a frame without `more`)
 *
 * Limits: a payload above HMS_API_FRAME_MAX is refused with the error code
 * "frame_too_large"; the server skips its bytes and the connection stays
 * usable. A length above HMS_API_FRAME_HARD_MAX means the peer is not
 * speaking this protocol (ASCII text read as a length, say): the server sends
 * the error with id nil and closes. Every msgpack payload is first walked by
 * hms_mp_check, which bounds nesting and checks that every declared length
 * fits in the bytes present, so the msgpack-c unpacker never allocates more
 * than a small multiple of the input.
 */
#ifndef HMS_PROTO_API_H
#define HMS_PROTO_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define HMS_API_FRAME_MAX (1u << 20)       /* largest payload the server accepts */
#define HMS_API_FRAME_HARD_MAX (16u << 20) /* above this the framing is given up */
#define HMS_API_REPLY_MAX (64u << 20)      /* largest reply payload a client accepts */
#define HMS_MP_DEPTH_MAX 16                /* nesting of arrays and maps */
#define HMS_API_OP_MAX 64                  /* bytes of an op name */

/* Error codes carried in {error: {code}} (docs/api.md lists them). */
#define HMS_API_E_BAD_FRAME "bad_frame"       /* not a msgpack map / trailing bytes */
#define HMS_API_E_TOO_LARGE "frame_too_large" /* payload above HMS_API_FRAME_MAX */
#define HMS_API_E_BAD_REQUEST "bad_request"   /* missing or mistyped field */
#define HMS_API_E_UNKNOWN_OP "unknown_op"
#define HMS_API_E_FORBIDDEN "forbidden" /* admin operation, caller not admin */
#define HMS_API_E_NOT_FOUND "not_found"
#define HMS_API_E_BUSY "busy"               /* a limit was reached; retry later */
#define HMS_API_E_UNAVAILABLE "unavailable" /* the agent cannot do it now (leaving, ...) */
#define HMS_API_E_FAILED "failed"           /* the operation was tried and failed */
#define HMS_API_E_INTERNAL "internal"

uint32_t hms_api_get_len(const uint8_t hdr[4]);
void hms_api_put_len(uint8_t hdr[4], uint32_t len);

/* Walks one msgpack object at buf[0..len): returns 0 and its size in *used,
 * or -EINVAL (malformed, a length that overruns the buffer, nesting deeper
 * than HMS_MP_DEPTH_MAX) or -EAGAIN (truncated: more bytes needed). */
int hms_mp_check(const uint8_t *buf, size_t len, size_t *used);

/* Unpacks exactly one checked msgpack object filling buf[0..len) into u
 * (caller's msgpack_unpacked, initialised with msgpack_unpacked_init; the
 * caller destroys it). Returns 0 or -EINVAL. */
int hms_mp_unpack(msgpack_unpacked *u, const uint8_t *buf, size_t len);

/* Map lookup by string key; NULL when absent or obj is not a map. */
const msgpack_object *hms_mp_get(const msgpack_object *map, const char *key);
/* True when o is a str equal to s. */
bool hms_mp_str_eq(const msgpack_object *o, const char *s);
/* Copies a str object into buf (NUL-terminated). 0, -EINVAL (not a str, or
 * contains a NUL) or -ENAMETOOLONG (does not fit). */
int hms_mp_str_copy(const msgpack_object *o, char *buf, size_t cap);

typedef struct hms_api_request {
    bool has_id;
    uint64_t id;
    char op[HMS_API_OP_MAX + 1];
    const msgpack_object *args; /* the whole request map (id and op included) */
} hms_api_request;

/* Decodes a request payload (without the length header) into u/out. On
 * error returns -EINVAL and sets *code and *why to a reply error code and a
 * message; out->has_id/out->id are set when the id could still be read. */
int hms_api_decode_request(msgpack_unpacked *u, const uint8_t *buf, size_t len,
                           hms_api_request *out, const char **code, const char **why);

typedef struct hms_api_reply {
    uint64_t id;
    bool has_id;
    bool ok;
    bool more;
    const msgpack_object *result; /* NULL when absent */
    char code[48];                /* error code when !ok */
    char message[512];            /* error message when !ok */
} hms_api_reply;

/* Decodes a reply payload into u/out. Returns 0 or -EINVAL. */
int hms_api_decode_reply(msgpack_unpacked *u, const uint8_t *buf, size_t len, hms_api_reply *out);

/* Encoders append one whole frame (header included) to sb. A reply's
 * result is given as already packed msgpack bytes (NULL/0 for nil). */
int hms_api_encode_ok(msgpack_sbuffer *sb, bool has_id, uint64_t id, bool more, const void *result,
                      size_t result_len);
int hms_api_encode_error(msgpack_sbuffer *sb, bool has_id, uint64_t id, const char *code,
                         const char *message);
/* A request frame: args is a packed msgpack map (NULL/0 for none) whose
 * entries are spliced after id and op. Returns 0 or -EINVAL (args not a
 * map, or op too long). */
int hms_api_encode_request(msgpack_sbuffer *sb, uint64_t id, const char *op, const void *args,
                           size_t args_len);

#endif
