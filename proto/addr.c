/* Address parsing and formatting (see addr.h). */
#include "proto/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    if (*s == '\0')
        return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end != '\0' || v == 0 || v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

int hms_addr_parse(const char *s, uint16_t default_port, hms_addr *out)
{
    char host[80];
    uint16_t port = default_port;
    hms_addr a;
    memset(&a, 0, sizeof(a));
    if (!s || strlen(s) >= sizeof(host))
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (size_t)(close - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        if (close[1] == ':') {
            if (parse_port(close + 2, &port) < 0)
                return -EINVAL;
        } else if (close[1] != '\0') {
            return -EINVAL;
        }
    } else {
        strcpy(host, s);
        char *colon = strchr(host, ':');
        if (colon && strchr(colon + 1, ':') == NULL) { /* v4:port */
            *colon = '\0';
            if (parse_port(colon + 1, &port) < 0)
                return -EINVAL;
        }
    }
    if (inet_pton(AF_INET, host, a.ip) == 1)
        a.family = 4;
    else if (inet_pton(AF_INET6, host, a.ip) == 1)
        a.family = 6;
    else
        return -EINVAL;
    a.port = port;
    *out = a;
    return 0;
}

const char *hms_addr_format(const hms_addr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->family == 4) {
        inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, a->port);
    } else if (a->family == 6) {
        inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, a->port);
    } else {
        snprintf(buf, len, "-");
    }
    return buf;
}

bool hms_addr_equal(const hms_addr *a, const hms_addr *b)
{
    size_t n = a->family == 4 ? 4 : 16;
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, n) == 0;
}

unsigned hms_addr_to_sockaddr(const hms_addr *x, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (x->family == 6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(x->port);
        memcpy(&s6->sin6_addr, x->ip, 16);
        return sizeof(*s6);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(x->port);
    memcpy(&s4->sin_addr, x->ip, 4);
    return sizeof(*s4);
}

void hms_addr_from_sockaddr(const struct sockaddr_storage *ss, hms_addr *x)
{
    memset(x, 0, sizeof(*x));
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        x->family = 6;
        memcpy(x->ip, &s6->sin6_addr, 16);
        x->port = ntohs(s6->sin6_port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        x->family = 4;
        memcpy(x->ip, &s4->sin_addr, 4);
        x->port = ntohs(s4->sin_port);
    }
}
