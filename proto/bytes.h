/*
 * Big-endian integers in byte buffers, for the fixed binary layouts
 * (certificates, sealed packet headers). The caller checks the bounds.
 */
#ifndef HMS_PROTO_BYTES_H
#define HMS_PROTO_BYTES_H

#include <stdint.h>

static inline void hms_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t hms_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
