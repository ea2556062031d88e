/*
 * Fuzz target for the audit decoders: the first byte picks the decoder
 * (entry, fields, seal, segment header, one record frame, a whole segment
 * as a replica receives it); the rest is the input. Whatever decodes must
 * re-encode to the same bytes (canonical form).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0] % 9;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    static uint8_t out[HMS_AUDIT_ENTRY_MAX];
    size_t len;
    switch (sel) {
    case 0: {
        hms_audit_entry e;
        if (hms_audit_entry_decode(p, n, &e) == 0) {
            if (hms_audit_entry_encode(&e, out, sizeof(out), &len) != 0 || len != n ||
                memcmp(out, p, n) != 0)
                abort();
            uint8_t h[HMS_AUDIT_HASH_LEN];
            hms_audit_entry_hash(p, n, h);
            json_t *j = hms_audit_entry_to_json(&e, h);
            if (!j)
                abort();
            json_decref(j);
        }
        break;
    }
    case 1: {
        if (hms_audit_fields_check(p, n) == 0) {
            json_t *j = hms_audit_fields_to_json(p, n);
            if (!j)
                abort();
            /* JSON -> fields need not give the same bytes (floats that are
             * integers in JSON text), but must give canonical fields */
            if (hms_audit_fields_from_json(j, out, sizeof(out), &len) == 0 &&
                hms_audit_fields_check(out, len) != 0)
                abort();
            json_decref(j);
        }
        break;
    }
    case 2: {
        hms_audit_seal s;
        if (hms_audit_seal_decode(p, n, &s) == 0) {
            if (hms_audit_seal_encode(&s, out, sizeof(out), &len) != 0 || len != n ||
                memcmp(out, p, n) != 0)
                abort();
            (void)hms_audit_seal_verify(&s);
        }
        break;
    }
    case 3: {
        hms_audit_seghdr h;
        if (hms_audit_seghdr_decode(p, n, &h) == 0) {
            if (hms_audit_seghdr_encode(&h, out, sizeof(out), &len) != 0 || len != n ||
                memcmp(out, p, n) != 0)
                abort();
        }
        break;
    }
    case 4: {
        size_t off = 0;
        for (int i = 0; i < 64 && off < n; i++) {
            uint8_t type;
            const uint8_t *pay;
            size_t plen, next;
            if (hms_audit_unframe(p, n, off, &type, &pay, &plen, &next) != 0)
                break;
            if (next <= off || next > n)
                abort();
            off = next;
        }
        break;
    }
    case 6: {
        hms_audit_headmsg m;
        if (hms_audit_headmsg_decode(p, n, &m) == 0) {
            if (hms_audit_headmsg_encode(&m, out, sizeof(out), &len) != 0 || len != n ||
                memcmp(out, p, n) != 0)
                abort();
        }
        break;
    }
    case 7: {
        uint8_t key[32];
        uint64_t from;
        uint32_t max;
        if (hms_audit_pullreq_decode(p, n, key, &from, &max) == 0) {
            hms_audit_pullreq_encode(key, from, max, out);
            if (memcmp(out, p, HMS_AUDIT_PULLREQ_LEN) != 0)
                abort();
        }
        break;
    }
    case 8: {
        size_t off = 0, sl;
        while (off < n && hms_audit_next_segment(p + off, n - off, &sl) == 0) {
            if (sl == 0 || sl > n - off)
                abort();
            off += sl;
        }
        break;
    }
    default: {
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        int r = hms_audit_segment_verify(p, n, NULL, data[0] & 0x80, &info, &off, &why, NULL, NULL);
        if (r < 0 && r != HMS_AUDIT_TORN && off > n)
            abort();
        if (info.valid_len > n)
            abort();
        break;
    }
    }
    return 0;
}
