/*
 * Network addresses as plain values (IPv4 or IPv6, plus a port), shared by
 * the wire formats, the membership core and the drivers. No I/O here.
 */
#ifndef HMS_PROTO_ADDR_H
#define HMS_PROTO_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HMS_DEFAULT_PORT 7950
#define HMS_ADDR_STRLEN 64 /* "[ffff:...:ffff]:65535" fits */

typedef struct hms_addr {
    uint8_t family; /* 4 or 6; 0 means unset */
    uint8_t ip[16]; /* IPv4 in the first 4 bytes */
    uint16_t port;  /* host order */
} hms_addr;

/* Parses "1.2.3.4", "1.2.3.4:7950", "[::1]:7950" or "::1". A missing port
 * becomes default_port. Returns 0, or -EINVAL and leaves *out unchanged. */
int hms_addr_parse(const char *s, uint16_t default_port, hms_addr *out);

/* Writes "1.2.3.4:7950" or "[::1]:7950" into buf (HMS_ADDR_STRLEN bytes). */
const char *hms_addr_format(const hms_addr *a, char *buf, size_t len);

bool hms_addr_equal(const hms_addr *a, const hms_addr *b);

struct sockaddr_storage;
/* Conversions for the socket drivers (no I/O here). */
unsigned hms_addr_to_sockaddr(const hms_addr *a, struct sockaddr_storage *ss); /* returns the length */
void hms_addr_from_sockaddr(const struct sockaddr_storage *ss, hms_addr *out);

#endif
