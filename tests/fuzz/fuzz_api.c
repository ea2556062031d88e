/*
 * Fuzz target for the socket API wire format: the input is read as a
 * request payload, as a reply payload, as a member meta map, and as a
 * stream of length-prefixed frames, the way the server and the client see
 * untrusted bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "proto/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_unpacked u;
    const char *code, *why;
    hms_api_request req;
    msgpack_unpacked_init(&u);
    if (hms_api_decode_request(&u, data, size, &req, &code, &why) == 0) {
        /* what a handler would do with the arguments */
        char buf[64];
        hms_mp_str_copy(hms_mp_get(req.args, "name"), buf, sizeof(buf));
        hms_mp_get(req.args, "status");
    }
    msgpack_unpacked_destroy(&u);

    hms_api_reply rep;
    msgpack_unpacked_init(&u);
    hms_api_decode_reply(&u, data, size, &rep);
    msgpack_unpacked_destroy(&u);

    const uint8_t *v;
    size_t vlen;
    hms_meta_get_field(data, size, "c", &v, &vlen);

    /* frames, as the server splits them */
    size_t off = 0;
    while (size - off >= 4) {
        uint32_t len = hms_api_get_len(data + off);
        off += 4;
        if (len > size - off)
            break;
        msgpack_unpacked_init(&u);
        hms_api_decode_request(&u, data + off, len, &req, &code, &why);
        msgpack_unpacked_destroy(&u);
        off += len;
    }

    /* the request encoder accepts only a map as arguments */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    hms_api_encode_request(&sb, 1, "op", data, size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
