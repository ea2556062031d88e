/*
 * Fuzz target for the agent <-> hms-http frames: the input is read as a
 * request payload (what the helper trusts from the agent), as a response
 * payload (what the agent trusts from the helper) and as a stream of
 * length-prefixed frames. Whatever decodes must encode again and decode to
 * the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/httpframe.h"

static uint8_t out[HMS_HTTPFRAME_HDR + HMS_HTTPFRAME_MAX];

static void req(const uint8_t *p, size_t n)
{
    hms_http_req q, again;
    if (hms_http_req_decode(p, n, &q) != 0)
        return;
    size_t used, plen, u2;
    const uint8_t *pl;
    if (hms_http_req_encode(&q, out, sizeof(out), &used) != 0 ||
        hms_httpframe_next(out, used, &pl, &plen, &u2) != 0 ||
        hms_http_req_decode(pl, plen, &again) != 0 || again.id != q.id ||
        again.timeout_ms != q.timeout_ms || strcmp(again.url, q.url) ||
        strcmp(again.method, q.method))
        abort();
}

static void resp(const uint8_t *p, size_t n)
{
    hms_http_resp r, again;
    if (hms_http_resp_decode(p, n, &r) != 0)
        return;
    size_t used, plen, u2;
    const uint8_t *pl;
    if (hms_http_resp_encode(&r, out, sizeof(out), &used) != 0 ||
        hms_httpframe_next(out, used, &pl, &plen, &u2) != 0 ||
        hms_http_resp_decode(pl, plen, &again) != 0 || again.id != r.id ||
        again.status != r.status || strcmp(again.error, r.error) || strcmp(again.line, r.line))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    req(data, size);
    resp(data, size);
    size_t off = 0;
    while (off < size) {
        const uint8_t *pl;
        size_t plen, used;
        if (hms_httpframe_next(data + off, size - off, &pl, &plen, &used) != 0)
            break;
        req(pl, plen);
        resp(pl, plen);
        off += used;
    }
    return 0;
}
