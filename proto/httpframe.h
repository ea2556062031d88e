/*
 * Frames between the agent and its HTTP helper process (hms-http), over a
 * socketpair. No I/O here. The agent sends requests, the helper answers
 * each one exactly once, in any order, matched by id.
 *
 *   +--------+--------+--------+--------+--------------------------------+
 *   |   payload length (uint32, big endian) | msgpack map, length bytes  |
 *   +--------+--------+--------+--------+--------------------------------+
 *
 *   request   {id: uint32, url: str, timeout_ms: uint32 [, method: str]}
 *   response  {id: uint32, status: uint (0..999), error: str, line: str}
 *
 * url is http:// or https://, printable ASCII without spaces; method is
 * A-Z (GET when absent). status is the HTTP status, 0 when the transfer
 * failed; error is then why ("timeout after 500 ms", curl's message), else
 * "". line is the start of the first line of the response body, printable
 * ASCII. Every key appears once, unknown keys are refused: both ends ship
 * together, so a frame the decoder does not know is a bug or an attack,
 * not a newer version.
 *
 * The decoder reads msgpack by hand: it allocates nothing, touches no byte
 * outside [buf, buf + len), copies strings only into the fixed arrays of
 * the structs below, and rejects any frame with trailing bytes, a length
 * above HMS_HTTPFRAME_MAX or a string that does not fit.
 */
#ifndef HMS_PROTO_HTTPFRAME_H
#define HMS_PROTO_HTTPFRAME_H

#include <stddef.h>
#include <stdint.h>

#define HMS_HTTPFRAME_HDR 4
#define HMS_HTTPFRAME_MAX 2048           /* payload bytes, either direction */
#define HMS_HTTP_URL_MAX 1024            /* bytes of a URL */
#define HMS_HTTP_METHOD_MAX 15           /* bytes of a method name */
#define HMS_HTTP_ERROR_MAX 255           /* bytes of an error text */
#define HMS_HTTP_LINE_MAX 127            /* bytes of the body's first line */
#define HMS_HTTP_TIMEOUT_MAX 3600000u    /* ms; one hour */
#define HMS_HTTP_BODY_READ_MAX (64 * 1024) /* body bytes the helper reads at most */

typedef struct hms_http_req {
    uint32_t id;
    uint32_t timeout_ms; /* 1..HMS_HTTP_TIMEOUT_MAX */
    char method[HMS_HTTP_METHOD_MAX + 1]; /* "" on decode when absent: GET */
    char url[HMS_HTTP_URL_MAX + 1];
} hms_http_req;

typedef struct hms_http_resp {
    uint32_t id;
    uint16_t status; /* 0: no HTTP response, see error */
    char error[HMS_HTTP_ERROR_MAX + 1];
    char line[HMS_HTTP_LINE_MAX + 1];
} hms_http_resp;

/* Finds the first frame in buf[0..len): 0 with its payload in
 * *payload and *plen and the bytes it spans (header included) in *used;
 * -EAGAIN when more bytes are needed; -EMSGSIZE when the length is 0 or
 * above HMS_HTTPFRAME_MAX (the stream cannot be trusted any further). */
int hms_httpframe_next(const uint8_t *buf, size_t len, const uint8_t **payload, size_t *plen,
                       size_t *used);

/* Encode a whole frame (header included) into out[0..cap): 0 and *used, or
 * -EINVAL (a field out of its range or with bytes the decoder refuses) or
 * -ENOSPC (cap too small). On error out is unspecified, *used unchanged. */
int hms_http_req_encode(const hms_http_req *r, uint8_t *out, size_t cap, size_t *used);
int hms_http_resp_encode(const hms_http_resp *r, uint8_t *out, size_t cap, size_t *used);

/* Decode one payload (as found by hms_httpframe_next): 0, or -EINVAL when
 * anything is malformed, missing, duplicated, unknown or out of range. On
 * error *r is unspecified. */
int hms_http_req_decode(const uint8_t *payload, size_t len, hms_http_req *r);
int hms_http_resp_decode(const uint8_t *payload, size_t len, hms_http_resp *r);

#endif
