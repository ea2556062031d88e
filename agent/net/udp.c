/*
 * UDP driver (see udp.h). One non-blocking socket; each readable event
 * reads up to a batch of datagrams so a flood cannot starve the loop's other
 * watchers. A packet is opened (authenticated, replay-checked) before the
 * core sees a byte of it; any failure is counted by reason and the packet
 * is forgotten.
 */
#include "agent/net/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/net/seal.h"

#define RECV_BATCH 64

struct hms_udp {
    hms_agent *a;
    int fd;
    ev_io rio;
    hms_agent_udp_stats st;
    uint8_t in[HMS_UDP_PACKET_MAX + 1];
    uint8_t pt[HMS_UDP_PACKET_MAX];
    uint8_t out[HMS_UDP_PACKET_MAX];
};

static void count_drop(hms_udp *u, int r)
{
    switch (r) {
    case HMS_SEAL_MALFORMED:
        u->st.drop_malformed++;
        break;
    case HMS_SEAL_UNKNOWN_SENDER:
        u->st.drop_unknown_sender++;
        break;
    case HMS_SEAL_BAD_TAG:
        u->st.drop_bad_tag++;
        break;
    case HMS_SEAL_REPLAY:
        u->st.drop_replay++;
        break;
    case HMS_SEAL_STALE_EPOCH:
        u->st.drop_stale_epoch++;
        break;
    case HMS_SEAL_REVOKED:
        u->st.drop_revoked++;
        break;
    case HMS_SEAL_NOT_FOR_US:
        u->st.drop_not_for_us++;
        break;
    default:
        u->st.drop_malformed++;
        break;
    }
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hms_udp *u = w->data;
    hms_agent *a = u->a;
    for (int i = 0; i < RECV_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        ssize_t n = recvfrom(u->fd, u->in, sizeof(u->in), MSG_TRUNC, (struct sockaddr *)&ss, &sl);
        if (n < 0)
            break;
        u->st.packets_in++;
        u->st.bytes_in += (uint64_t)n;
        if ((size_t)n > HMS_UDP_PACKET_MAX) {
            u->st.drop_oversize++;
            continue;
        }
        size_t pt_len = 0;
        uint8_t sender[32];
        int r = hms_open(a->sealer, u->in, (size_t)n, u->pt, sizeof(u->pt), &pt_len, sender);
        if (r != HMS_SEAL_OK) {
            count_drop(u, r);
            continue;
        }
        if (!a->swim)
            continue;
        hms_addr from;
        hms_addr_from_sockaddr(&ss, &from);
        swim_recv(a->swim, hms_agent_now(a), &from, sender, u->pt, pt_len);
        /* Events and replies go out before the next packet is read. */
        hms_agent_swim_flush(a);
    }
}

int hms_udp_new(hms_agent *a, hms_udp **out)
{
    hms_udp *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->a = a;
    const hms_addr *b = &a->cfg->bind;
    struct sockaddr_storage ss;
    socklen_t sl = (socklen_t)hms_addr_to_sockaddr(b, &ss);
    u->fd =
        socket(b->family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        int r = -errno;
        free(u);
        return r;
    }
    int buf = 1 << 20;
    setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    if (bind(u->fd, (struct sockaddr *)&ss, sl) < 0) {
        int r = -errno;
        close(u->fd);
        free(u);
        return r;
    }
    ev_io_init(&u->rio, read_cb, u->fd, EV_READ);
    u->rio.data = u;
    ev_io_start(a->loop, &u->rio);
    *out = u;
    return 0;
}

void hms_udp_delete(hms_udp *u)
{
    if (!u)
        return;
    ev_io_stop(u->a->loop, &u->rio);
    close(u->fd);
    free(u);
}

void hms_udp_send(hms_udp *u, const swim_output *o)
{
    if (!o->to_key_known) {
        /* Nothing can be sealed for a key we have not learned (a seed
         * reached only through push-pull so far). */
        u->st.drop_no_key++;
        return;
    }
    if (o->len + HMS_SEAL_OVERHEAD > sizeof(u->out)) {
        u->st.drop_oversize++;
        return;
    }
    size_t len = 0;
    if (hms_seal(u->a->sealer, o->to_key, o->data, o->len, u->out, sizeof(u->out), &len) < 0) {
        u->st.send_errors++;
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl = (socklen_t)hms_addr_to_sockaddr(&o->to, &ss);
    ssize_t n = sendto(u->fd, u->out, len, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);
    if (n < 0) {
        u->st.send_errors++;
        return;
    }
    u->st.packets_out++;
    u->st.bytes_out += (uint64_t)n;
}

void hms_udp_get_stats(const hms_udp *u, hms_agent_udp_stats *out)
{
    *out = u->st;
}
