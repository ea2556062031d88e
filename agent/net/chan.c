/*
 * Noise channels and RPC (see chan.h for the wire format and limits).
 *
 * Channel states:
 *
 *   CONNECTING --(connected)--> HANDSHAKE --(XX done, peer verified)--> READY
 *        \________________________|________________________________|
 *                                 v
 *                              closed (ch_close: pending calls fail,
 *                                      served calls are detached)
 *
 * An inbound connection starts in HANDSHAKE as the responder. Calls made
 * before a channel is READY wait in its call list and are written once the
 * handshake completes. Every failure of a call is reported through a
 * zero-delay timer (call_fail), so `done` never runs inside hms_chan_call or
 * inside another module's call into this file.
 *
 * Re-entrancy: RPC handlers and `done` callbacks run from the read path and
 * may close channels; a channel being read is marked busy and freed only
 * when the read path unwinds.
 */
#include "agent/net/chan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <sodium.h>

#include "agent/log.h"
#include "agent/net/noise.h"

#define REC_MAX HMS_NOISE_MAX_MSG
#define CHUNK_MAX (HMS_NOISE_MAX_MSG - HMS_NOISE_TAG - 1)
#define MSG_HDR 14 /* type, id, status, method length */
#define OUT_MAX (2u * HMS_CHAN_MSG_MAX + (1u << 20))
#define METHODS_MAX 64
#define PROLOGUE "hms-sys chan v1"

enum { MSG_REQ = 1, MSG_REP = 2 };
enum { FLAG_LAST = 1 };

typedef enum ch_state { CH_CONNECTING, CH_HANDSHAKE, CH_READY, CH_CLOSED } ch_state;

typedef struct hms_chan hms_chan;

typedef struct pending_call {
    hms_chan_pool *p;
    hms_chan *ch;
    uint64_t id;
    hms_rpc_done done;
    void *ctx;
    ev_timer timer;
    int status; /* set when failing through the timer */
    bool failed;
    bool sent;
    char method[HMS_CHAN_METHOD_MAX + 1];
    uint8_t *req; /* until written */
    size_t len;
    struct pending_call *next, *prev; /* in ch->calls, or p->failing */
} pending_call;

struct hms_rpc_call {
    hms_chan *ch; /* NULL once the channel closed */
    uint64_t id;
    hms_rpc_call *next, *prev;
};

struct hms_chan {
    hms_chan_pool *p;
    int fd;
    ev_io rio, wio;
    ev_timer timer; /* handshake deadline, then idle check */
    ch_state state;
    bool initiator;
    bool inbound_counted; /* counts toward the handshake cap */
    int busy;
    hms_noise *noise;
    bool want_key_set;
    uint8_t want_key[32];
    hms_peer peer;
    bool verified;
    hms_addr addr;
    ev_tstamp last_active;
    /* input */
    uint8_t rhdr[2];
    size_t rhdr_have;
    uint8_t *rec; /* rec_cap bytes (<= REC_MAX) while a record is being read */
    size_t rec_len, rec_have, rec_cap;
    uint8_t *msg;
    size_t msg_len, msg_cap;
    /* output */
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    pending_call *calls;
    size_t ncalls;
    hms_rpc_call *served;
    size_t nserved;
    hms_chan *next, *prev;
};

typedef struct method_entry {
    char name[HMS_CHAN_METHOD_MAX + 1];
    hms_rpc_handler fn;
    void *ctx;
} method_entry;

struct hms_chan_pool {
    struct ev_loop *loop;
    int lfd;
    ev_io lio;
    uint8_t sk[32];
    uint8_t *cert;
    size_t cert_len;
    hms_chan_verify_fn verify;
    void *verify_ctx;
    double hs_timeout, idle_timeout;
    method_entry methods[METHODS_MAX];
    size_t nmethods;
    hms_chan *chans;
    size_t nchans, nhandshakes;
    pending_call *failing;
    uint64_t next_id;
    hms_chan_stats st;
};

static void ch_close(hms_chan *ch, int status);
static void ch_flush(hms_chan *ch);

/* --- helpers --------------------------------------------------------------- */

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* --- calls ----------------------------------------------------------------- */

static void call_unlink(pending_call *pc)
{
    if (pc->ch) {
        hms_chan *ch = pc->ch;
        if (pc->prev)
            pc->prev->next = pc->next;
        else
            ch->calls = pc->next;
        if (pc->next)
            pc->next->prev = pc->prev;
        ch->ncalls--;
        pc->ch = NULL;
    } else if (pc->failed) {
        hms_chan_pool *p = pc->p;
        if (pc->prev)
            pc->prev->next = pc->next;
        else
            p->failing = pc->next;
        if (pc->next)
            pc->next->prev = pc->prev;
    }
    pc->next = pc->prev = NULL;
}

static void call_free(pending_call *pc)
{
    ev_timer_stop(pc->p->loop, &pc->timer);
    free(pc->req);
    free(pc);
}

static void call_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    pending_call *pc = w->data;
    hms_chan_pool *p = pc->p;
    int status = pc->failed ? pc->status : -ETIMEDOUT;
    if (!pc->failed)
        p->st.timeouts++;
    p->st.call_errors++;
    call_unlink(pc);
    pc->failed = false;
    ev_timer_stop(loop, w);
    hms_rpc_done done = pc->done;
    void *ctx = pc->ctx;
    call_free(pc);
    done(ctx, status, NULL, NULL, 0);
}

/* Detaches the call and reports status from the loop. */
static void call_fail(pending_call *pc, int status)
{
    if (pc->failed)
        return;
    call_unlink(pc);
    pc->failed = true;
    pc->status = status;
    hms_chan_pool *p = pc->p;
    pc->next = p->failing;
    if (p->failing)
        p->failing->prev = pc;
    p->failing = pc;
    ev_timer_stop(p->loop, &pc->timer);
    ev_timer_set(&pc->timer, 0., 0.);
    ev_timer_start(p->loop, &pc->timer);
}

/* --- output ---------------------------------------------------------------- */

static int out_reserve(hms_chan *ch, size_t more)
{
    size_t pending = ch->out_len - ch->out_off;
    if (pending + more > OUT_MAX)
        return -ENOBUFS;
    if (ch->out_off > 0 && ch->out_len + more > ch->out_cap) {
        memmove(ch->out, ch->out + ch->out_off, pending);
        ch->out_len = pending;
        ch->out_off = 0;
    }
    if (ch->out_len + more > ch->out_cap) {
        size_t cap = ch->out_cap ? ch->out_cap : 4096; /* most records are small */
        while (cap < ch->out_len + more)
            cap *= 2;
        uint8_t *n = realloc(ch->out, cap);
        if (!n)
            return -ENOMEM;
        ch->out = n;
        ch->out_cap = cap;
    }
    return 0;
}

/* Appends a length-prefixed record (handshake message or ciphertext). */
static int out_record(hms_chan *ch, const uint8_t *rec, size_t len)
{
    int r = out_reserve(ch, len + 2);
    if (r < 0)
        return r;
    put_be(ch->out + ch->out_len, len, 2);
    memcpy(ch->out + ch->out_len + 2, rec, len);
    ch->out_len += len + 2;
    return 0;
}

/* Encrypts one RPC message as chunks onto the output. */
static int send_msg(hms_chan *ch, uint8_t type, uint64_t id, int32_t status, const char *method,
                    const uint8_t *body, size_t len)
{
    size_t mlen = method ? strlen(method) : 0;
    size_t total = MSG_HDR + mlen + len;
    if (total > HMS_CHAN_MSG_MAX)
        return -EMSGSIZE;
    size_t chunks = total / CHUNK_MAX + 1;
    int r = out_reserve(ch, total + chunks * (2 + 1 + HMS_NOISE_TAG));
    if (r < 0)
        return r;
    uint8_t hdr[MSG_HDR + HMS_CHAN_METHOD_MAX];
    hdr[0] = type;
    put_be(hdr + 1, id, 8);
    put_be(hdr + 9, (uint32_t)status, 4);
    hdr[13] = (uint8_t)mlen;
    if (mlen)
        memcpy(hdr + MSG_HDR, method, mlen);
    size_t hlen = MSG_HDR + mlen;
    /* Buffers for the largest chunk of this message, not of any message:
     * small messages are the common case. */
    size_t cmax = total < CHUNK_MAX ? total : CHUNK_MAX;
    uint8_t *pt = malloc(cmax + 1);
    uint8_t *ct = malloc(cmax + 1 + HMS_NOISE_TAG);
    if (!pt || !ct) {
        free(pt);
        free(ct);
        return -ENOMEM;
    }
    size_t off = 0; /* over hdr then body */
    do {
        size_t n = 0;
        while (n < CHUNK_MAX && off < total) {
            size_t k;
            if (off < hlen) {
                k = hlen - off < CHUNK_MAX - n ? hlen - off : CHUNK_MAX - n;
                memcpy(pt + 1 + n, hdr + off, k);
            } else {
                k = total - off < CHUNK_MAX - n ? total - off : CHUNK_MAX - n;
                memcpy(pt + 1 + n, body + (off - hlen), k);
            }
            n += k;
            off += k;
        }
        pt[0] = off == total ? FLAG_LAST : 0;
        size_t ctlen = 0;
        r = hms_noise_encrypt(ch->noise, pt, n + 1, ct, cmax + 1 + HMS_NOISE_TAG, &ctlen);
        if (r == 0)
            r = out_record(ch, ct, ctlen);
        if (r < 0)
            break;
    } while (off < total);
    sodium_memzero(pt, cmax + 1);
    free(pt);
    free(ct);
    if (r == 0)
        ch->p->st.bytes_out += total;
    return r;
}

static void ch_flush(hms_chan *ch)
{
    while (ch->out_off < ch->out_len) {
        ssize_t n = send(ch->fd, ch->out + ch->out_off, ch->out_len - ch->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            ch->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        ch_close(ch, -ECONNRESET);
        return;
    }
    if (ch->out_off == ch->out_len) {
        ch->out_off = ch->out_len = 0;
        if (ch->out) {
            free(ch->out); /* an idle channel keeps no buffer */
            ch->out = NULL;
            ch->out_cap = 0;
        }
        ev_io_stop(ch->p->loop, &ch->wio);
    } else {
        ev_io_start(ch->p->loop, &ch->wio);
    }
}

/* Writes queued requests once the channel is ready. */
static void send_queued(hms_chan *ch)
{
    for (pending_call *pc = ch->calls; pc;) {
        pending_call *next = pc->next;
        if (!pc->sent) {
            int r = send_msg(ch, MSG_REQ, pc->id, 0, pc->method, pc->req, pc->len);
            pc->sent = true;
            free(pc->req);
            pc->req = NULL;
            if (r < 0)
                call_fail(pc, r);
        }
        pc = next;
    }
    ch_flush(ch);
}

/* --- channel lifecycle ---------------------------------------------------- */

static void ch_free(hms_chan *ch)
{
    free(ch->rec);
    free(ch->msg);
    free(ch->out);
    free(ch);
}

static void ch_close(hms_chan *ch, int status)
{
    if (ch->state == CH_CLOSED)
        return;
    hms_chan_pool *p = ch->p;
    if (ch->state != CH_READY && ch->inbound_counted)
        p->nhandshakes--;
    ch->state = CH_CLOSED;
    ev_io_stop(p->loop, &ch->rio);
    ev_io_stop(p->loop, &ch->wio);
    ev_timer_stop(p->loop, &ch->timer);
    if (ch->fd >= 0)
        close(ch->fd);
    ch->fd = -1;
    while (ch->calls)
        call_fail(ch->calls, status);
    for (hms_rpc_call *c = ch->served; c; c = c->next)
        c->ch = NULL;
    ch->served = NULL;
    if (ch->noise)
        hms_noise_delete(ch->noise);
    ch->noise = NULL;
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        p->chans = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    p->nchans--;
    p->st.conns_now = p->nchans;
    if (ch->busy == 0)
        ch_free(ch);
}

static void ch_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hms_chan *ch = w->data;
    hms_chan_pool *p = ch->p;
    if (ch->state != CH_READY) {
        char a[HMS_ADDR_STRLEN];
        HMS_DEBUG("chan: handshake with %s timed out", hms_addr_format(&ch->addr, a, sizeof(a)));
        p->st.handshake_failures++;
        ch_close(ch, -ETIMEDOUT);
        return;
    }
    if (ch->ncalls == 0 && ch->nserved == 0 && ch->out_off == ch->out_len &&
        ev_now(loop) - ch->last_active >= p->idle_timeout) {
        ch_close(ch, -ECANCELED);
        return;
    }
    /* Next check when the channel would have been idle long enough (a busy
     * one is checked again after a quarter of the timeout), so an idle
     * channel is closed on time rather than up to half a timeout late. */
    ev_tstamp due = ch->last_active + p->idle_timeout - ev_now(loop);
    if (due < p->idle_timeout / 4)
        due = p->idle_timeout / 4;
    ev_timer_set(w, due, 0.);
    ev_timer_start(loop, w);
}

static hms_chan *ch_new(hms_chan_pool *p, int fd, bool initiator, const hms_addr *addr)
{
    hms_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    hms_noise_keys keys = {
        .s = p->sk, .prologue = (const uint8_t *)PROLOGUE, .prologue_len = sizeof(PROLOGUE) - 1};
    ch->noise = hms_noise_new("XX", initiator, &keys);
    if (!ch->noise) {
        free(ch);
        return NULL;
    }
    ch->p = p;
    ch->fd = fd;
    ch->initiator = initiator;
    ch->addr = *addr;
    ch->last_active = ev_now(p->loop);
    ch->next = p->chans;
    if (p->chans)
        p->chans->prev = ch;
    p->chans = ch;
    p->nchans++;
    p->st.conns_now = p->nchans;
    ev_timer_init(&ch->timer, ch_timer_cb, p->hs_timeout, 0.);
    ch->timer.data = ch;
    ev_timer_start(p->loop, &ch->timer);
    return ch;
}

/* --- handshake ------------------------------------------------------------- */

/* The largest XX handshake message: e, encrypted s, encrypted certificate. */
#define HS_MSG_MAX (2 * HMS_NOISE_DHLEN + 2 * HMS_NOISE_TAG + HMS_CHAN_CERT_MAX)

static int hs_write(hms_chan *ch, const uint8_t *payload, size_t len)
{
    uint8_t msg[HS_MSG_MAX];
    size_t n = 0;
    int r = hms_noise_write(ch->noise, payload, len, msg, sizeof(msg), &n);
    if (r == 0)
        r = out_record(ch, msg, n);
    return r;
}

/* Checks the peer's certificate against its Noise static key. */
static int hs_verify(hms_chan *ch, const uint8_t *cert, size_t len)
{
    hms_chan_pool *p = ch->p;
    hms_peer peer;
    memset(&peer, 0, sizeof(peer));
    int r = p->verify(p->verify_ctx, cert, len, &peer);
    if (r < 0)
        return -EPERM;
    const uint8_t *rs = hms_noise_remote_static(ch->noise);
    uint8_t x[32];
    if (!rs || crypto_sign_ed25519_pk_to_curve25519(x, peer.key) != 0 ||
        sodium_memcmp(x, rs, 32) != 0)
        return -EPERM;
    if (ch->want_key_set && sodium_memcmp(ch->want_key, peer.key, 32) != 0)
        return -EPERM;
    peer.addr = ch->addr;
    ch->peer = peer;
    ch->verified = true;
    return 0;
}

static void become_ready(hms_chan *ch)
{
    hms_chan_pool *p = ch->p;
    if (ch->inbound_counted)
        p->nhandshakes--;
    ch->inbound_counted = false;
    p->st.handshakes_now = p->nhandshakes;
    ch->state = CH_READY;
    ch->last_active = ev_now(p->loop);
    ev_timer_stop(p->loop, &ch->timer);
    ev_timer_set(&ch->timer, p->idle_timeout / 2, 0.);
    ev_timer_start(p->loop, &ch->timer);
    send_queued(ch);
}

/* One handshake record arrived. */
static int hs_read(hms_chan *ch, const uint8_t *rec, size_t len)
{
    hms_chan_pool *p = ch->p;
    uint8_t payload[HMS_CHAN_CERT_MAX];
    size_t plen = 0;
    if (hms_noise_my_turn(ch->noise))
        return -EPROTO;
    int r = hms_noise_read(ch->noise, rec, len, payload, sizeof(payload), &plen);
    if (r < 0)
        return -EPROTO;
    if (ch->initiator) {
        /* <- e, ee, s, es (responder's certificate) */
        r = hs_verify(ch, payload, plen);
        if (r < 0) {
            p->st.refused_untrusted++;
            return r;
        }
        /* -> s, se (our certificate) */
        r = hs_write(ch, p->cert, p->cert_len);
        if (r < 0)
            return r;
    } else if (!hms_noise_done(ch->noise)) {
        /* <- e ; -> e, ee, s, es (our certificate) */
        r = hs_write(ch, p->cert, p->cert_len);
        if (r < 0)
            return r;
    } else {
        /* <- s, se (initiator's certificate) */
        r = hs_verify(ch, payload, plen);
        if (r < 0) {
            p->st.refused_untrusted++;
            return r;
        }
    }
    if (hms_noise_done(ch->noise)) {
        if (!ch->verified)
            return -EPROTO;
        become_ready(ch);
    } else {
        ch_flush(ch);
    }
    return 0;
}

/* --- messages -------------------------------------------------------------- */

static const method_entry *find_method(hms_chan_pool *p, const char *name)
{
    for (size_t i = 0; i < p->nmethods; i++)
        if (strcmp(p->methods[i].name, name) == 0)
            return &p->methods[i];
    return NULL;
}

int hms_chan_msg_decode(const uint8_t *m, size_t len, hms_chan_msg *out)
{
    memset(out, 0, sizeof(*out));
    if (len < MSG_HDR)
        return -EPROTO;
    out->type = m[0];
    out->id = get_be(m + 1, 8);
    out->status = (int32_t)(uint32_t)get_be(m + 9, 4);
    size_t mlen = m[13];
    if (mlen > HMS_CHAN_METHOD_MAX || MSG_HDR + mlen > len)
        return -EPROTO;
    if (out->type == MSG_REQ) {
        if (mlen == 0 || memchr(m + MSG_HDR, '\0', mlen))
            return -EPROTO;
        memcpy(out->method, m + MSG_HDR, mlen);
        out->method[mlen] = '\0';
    } else if (out->type != MSG_REP || mlen != 0 || out->status > 0) {
        return -EPROTO; /* a reply's status is 0 or a negative code */
    }
    out->body = m + MSG_HDR + mlen;
    out->body_len = len - MSG_HDR - mlen;
    return 0;
}

static int handle_msg(hms_chan *ch, const uint8_t *m, size_t len)
{
    hms_chan_pool *p = ch->p;
    hms_chan_msg msg;
    if (hms_chan_msg_decode(m, len, &msg) < 0)
        return -EPROTO;
    uint8_t type = msg.type;
    uint64_t id = msg.id;
    int32_t status = msg.status;
    const uint8_t *body = msg.body;
    size_t blen = msg.body_len;
    p->st.bytes_in += len;
    if (type == MSG_REQ) {
        p->st.calls_in++;
        const method_entry *me = find_method(p, msg.method);
        if (!me)
            return send_msg(ch, MSG_REP, id, -ENOSYS, NULL, NULL, 0);
        if (ch->nserved >= HMS_CHAN_PENDING_MAX)
            return send_msg(ch, MSG_REP, id, -EBUSY, NULL, NULL, 0);
        hms_rpc_call *call = calloc(1, sizeof(*call));
        if (!call)
            return send_msg(ch, MSG_REP, id, -ENOMEM, NULL, NULL, 0);
        call->ch = ch;
        call->id = id;
        call->next = ch->served;
        if (ch->served)
            ch->served->prev = call;
        ch->served = call;
        ch->nserved++;
        hms_peer peer = ch->peer;
        me->fn(me->ctx, call, &peer, body, blen);
        return 0;
    }
    if (type == MSG_REP) {
        pending_call *pc;
        for (pc = ch->calls; pc; pc = pc->next)
            if (pc->id == id)
                break;
        if (!pc)
            return 0; /* cancelled or timed out: nobody waits */
        call_unlink(pc);
        hms_rpc_done done = pc->done;
        void *ctx = pc->ctx;
        call_free(pc);
        if (status < 0)
            p->st.call_errors++;
        hms_peer peer = ch->peer;
        done(ctx, status, &peer, status < 0 ? NULL : body, status < 0 ? 0 : blen);
        return 0;
    }
    return -EPROTO;
}

/* One transport record: a chunk of a message. */
static int rec_read(hms_chan *ch, const uint8_t *rec, size_t len)
{
    uint8_t *pt = malloc(len ? len : 1); /* the plaintext is shorter than the record */
    if (!pt)
        return -ENOMEM;
    size_t n = 0;
    int r = hms_noise_decrypt(ch->noise, rec, len, pt, len, &n);
    if (r < 0 || n < 1) {
        free(pt);
        return -EPROTO;
    }
    size_t dlen = n - 1;
    if (ch->msg_len + dlen > HMS_CHAN_MSG_MAX) {
        free(pt);
        return -EMSGSIZE;
    }
    if (ch->msg_len + dlen > ch->msg_cap) {
        size_t cap = ch->msg_cap ? ch->msg_cap : 4096;
        while (cap < ch->msg_len + dlen)
            cap *= 2;
        uint8_t *m = realloc(ch->msg, cap);
        if (!m) {
            free(pt);
            return -ENOMEM;
        }
        ch->msg = m;
        ch->msg_cap = cap;
    }
    memcpy(ch->msg + ch->msg_len, pt + 1, dlen);
    ch->msg_len += dlen;
    bool last = pt[0] & FLAG_LAST;
    sodium_memzero(pt, n);
    free(pt);
    if (!last)
        return 0;
    size_t mlen = ch->msg_len;
    ch->msg_len = 0;
    r = handle_msg(ch, ch->msg, mlen);
    if (ch->state != CH_CLOSED) {
        /* An idle channel keeps no buffer: most channels sit idle between
         * rare messages, and there is one per peer. */
        free(ch->msg);
        ch->msg = NULL;
        ch->msg_cap = 0;
    }
    return r;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hms_chan *ch = w->data;
    hms_chan_pool *p = ch->p;
    /* 16 KiB a read: a bigger record takes several reads (libev calls back
     * while data is waiting). The main stack never shrinks, so a 64 KiB
     * buffer filled once by a push-pull stayed resident for good. */
    uint8_t buf[16384];
    ssize_t n = recv(ch->fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* A peer that hangs up mid-handshake has usually refused us. */
        if (ch->state == CH_HANDSHAKE)
            p->st.handshake_failures++;
        ch_close(ch, -ECONNRESET);
        return;
    }
    ch->last_active = ev_now(loop);
    ch->busy++;
    size_t off = 0;
    int r = 0;
    while (off < (size_t)n && ch->state != CH_CLOSED) {
        if (ch->rhdr_have < 2) {
            ch->rhdr[ch->rhdr_have++] = buf[off++];
            if (ch->rhdr_have == 2) {
                ch->rec_len = (size_t)get_be(ch->rhdr, 2);
                ch->rec_have = 0;
                if (!ch->rec || ch->rec_len > ch->rec_cap) {
                    size_t cap = ch->rec_cap ? ch->rec_cap : 512;
                    while (cap < ch->rec_len)
                        cap *= 2;
                    uint8_t *nr = realloc(ch->rec, cap > REC_MAX ? REC_MAX : cap);
                    if (!nr) {
                        r = -ENOMEM;
                        break;
                    }
                    ch->rec = nr;
                    ch->rec_cap = cap > REC_MAX ? REC_MAX : cap;
                }
            }
            continue;
        }
        size_t k = ch->rec_len - ch->rec_have;
        if (k > (size_t)n - off)
            k = (size_t)n - off;
        memcpy(ch->rec + ch->rec_have, buf + off, k);
        ch->rec_have += k;
        off += k;
        if (ch->rec_have < ch->rec_len)
            continue;
        ch->rhdr_have = 0;
        if (ch->state == CH_HANDSHAKE) {
            r = hs_read(ch, ch->rec, ch->rec_len);
            if (r < 0 && r != -EPERM)
                p->st.handshake_failures++;
        } else {
            r = rec_read(ch, ch->rec, ch->rec_len);
            if (r < 0)
                p->st.bad_frames++;
        }
        if (r < 0)
            break;
    }
    ch->busy--;
    if (ch->state == CH_CLOSED) {
        if (ch->busy == 0)
            ch_free(ch);
        return;
    }
    if (r < 0) {
        char a[HMS_ADDR_STRLEN];
        HMS_DEBUG("chan: closing channel with %s: %s", hms_addr_format(&ch->addr, a, sizeof(a)),
                  strerror(-r));
        ch_close(ch, r == -EPERM ? -EPERM : -ECONNRESET);
        return;
    }
    if (ch->rhdr_have < 2 && ch->rec) {
        free(ch->rec); /* no record in progress: an idle channel keeps no buffer */
        ch->rec = NULL;
        ch->rec_cap = 0;
    }
    ch_flush(ch);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hms_chan *ch = w->data;
    if (ch->state == CH_CONNECTING) {
        int e = 0;
        socklen_t el = sizeof(e);
        getsockopt(ch->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e != 0) {
            ch_close(ch, -e);
            return;
        }
        ch->state = CH_HANDSHAKE;
        ev_io_start(loop, &ch->rio);
        /* -> e */
        if (hs_write(ch, NULL, 0) < 0) {
            ch_close(ch, -EPROTO);
            return;
        }
    }
    ch_flush(ch);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hms_chan_pool *p = w->data;
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(p->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (p->nchans >= HMS_CHAN_CONNS_MAX || p->nhandshakes >= HMS_CHAN_HANDSHAKES_MAX) {
            p->st.refused_limit++;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        hms_addr from;
        hms_addr_from_sockaddr(&ss, &from);
        hms_chan *ch = ch_new(p, fd, false, &from);
        if (!ch) {
            close(fd);
            continue;
        }
        p->st.conns_in++;
        ch->state = CH_HANDSHAKE;
        ch->inbound_counted = true;
        p->nhandshakes++;
        p->st.handshakes_now = p->nhandshakes;
        ev_io_init(&ch->rio, read_cb, fd, EV_READ);
        ev_io_init(&ch->wio, write_cb, fd, EV_WRITE);
        ch->rio.data = ch->wio.data = ch;
        ev_io_start(loop, &ch->rio);
    }
}

/* --- pool ------------------------------------------------------------------ */

int hms_chan_pool_new(const hms_chan_config *cfg, hms_chan_pool **out)
{
    if (!cfg->verify || !cfg->static_sk || cfg->cert_len > HMS_CHAN_CERT_MAX)
        return -EINVAL;
    hms_chan_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->loop = cfg->loop;
    memcpy(p->sk, cfg->static_sk, 32);
    p->cert = malloc(cfg->cert_len ? cfg->cert_len : 1);
    if (!p->cert) {
        free(p);
        return -ENOMEM;
    }
    memcpy(p->cert, cfg->cert, cfg->cert_len);
    p->cert_len = cfg->cert_len;
    p->verify = cfg->verify;
    p->verify_ctx = cfg->verify_ctx;
    p->hs_timeout =
        (cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : HMS_CHAN_HANDSHAKE_TIMEOUT_MS) /
        1000.0;
    p->idle_timeout =
        (cfg->idle_timeout_ms ? cfg->idle_timeout_ms : HMS_CHAN_IDLE_TIMEOUT_MS) / 1000.0;
    p->next_id = 1;
    struct sockaddr_storage ss;
    socklen_t sl = (socklen_t)hms_addr_to_sockaddr(&cfg->bind, &ss);
    p->lfd = socket(cfg->bind.family == 6 ? AF_INET6 : AF_INET,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int r = 0;
    if (p->lfd < 0) {
        r = -errno;
        goto fail;
    }
    int one = 1;
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(p->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(p->lfd, 128) < 0) {
        r = -errno;
        close(p->lfd);
        goto fail;
    }
    ev_io_init(&p->lio, accept_cb, p->lfd, EV_READ);
    p->lio.data = p;
    ev_io_start(p->loop, &p->lio);
    *out = p;
    return 0;
fail:
    sodium_memzero(p->sk, sizeof(p->sk));
    free(p->cert);
    free(p);
    return r;
}

void hms_chan_pool_delete(hms_chan_pool *p)
{
    if (!p)
        return;
    ev_io_stop(p->loop, &p->lio);
    close(p->lfd);
    while (p->chans)
        ch_close(p->chans, -ECANCELED);
    /* Report every failed call now: the loop will not run them later. */
    while (p->failing) {
        pending_call *pc = p->failing;
        call_timer_cb(p->loop, &pc->timer, 0);
    }
    sodium_memzero(p->sk, sizeof(p->sk));
    free(p->cert);
    free(p);
}

int hms_chan_handle(hms_chan_pool *p, const char *method, hms_rpc_handler fn, void *ctx)
{
    if (!method || strlen(method) == 0 || strlen(method) > HMS_CHAN_METHOD_MAX || !fn)
        return -EINVAL;
    if (find_method(p, method))
        return -EEXIST;
    if (p->nmethods >= METHODS_MAX)
        return -ENOSPC;
    method_entry *m = &p->methods[p->nmethods++];
    snprintf(m->name, sizeof(m->name), "%s", method);
    m->fn = fn;
    m->ctx = ctx;
    return 0;
}

static hms_chan *find_chan(hms_chan_pool *p, const uint8_t *key, const hms_addr *addr)
{
    hms_chan *best = NULL;
    for (hms_chan *ch = p->chans; ch; ch = ch->next) {
        if (ch->state == CH_CLOSED || ch->ncalls >= HMS_CHAN_PENDING_MAX)
            continue;
        if (key) {
            if (ch->state == CH_READY && sodium_memcmp(ch->peer.key, key, 32) == 0)
                return ch;
            if (ch->state != CH_READY && ch->initiator && ch->want_key_set &&
                sodium_memcmp(ch->want_key, key, 32) == 0 && hms_addr_equal(&ch->addr, addr))
                best = ch;
        } else if (ch->initiator && hms_addr_equal(&ch->addr, addr)) {
            return ch;
        }
    }
    return best;
}

static hms_chan *ch_connect(hms_chan_pool *p, const uint8_t *key, const hms_addr *addr, int *err)
{
    if (p->nchans >= HMS_CHAN_CONNS_MAX) {
        p->st.refused_limit++;
        *err = -EAGAIN;
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = (socklen_t)hms_addr_to_sockaddr(addr, &ss);
    int fd = socket(addr->family == 6 ? AF_INET6 : AF_INET,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int r = connect(fd, (struct sockaddr *)&ss, sl);
    int cerr = r < 0 ? errno : 0;
    hms_chan *ch = ch_new(p, fd, true, addr);
    if (!ch) {
        close(fd);
        *err = -ENOMEM;
        return NULL;
    }
    p->st.conns_out++;
    if (key) {
        ch->want_key_set = true;
        memcpy(ch->want_key, key, 32);
    }
    ev_io_init(&ch->rio, read_cb, fd, EV_READ);
    ev_io_init(&ch->wio, write_cb, fd, EV_WRITE);
    ch->rio.data = ch->wio.data = ch;
    ch->state = CH_CONNECTING;
    if (r < 0 && cerr != EINPROGRESS) {
        /* Fails through the write watcher like an asynchronous error, so
         * the caller's callback still runs from the loop. */
        ev_io_start(p->loop, &ch->wio);
        return ch;
    }
    ev_io_start(p->loop, &ch->wio);
    return ch;
}

int hms_chan_call(hms_chan_pool *p, const uint8_t *key, const hms_addr *addr, const char *method,
                  const uint8_t *req, size_t len, uint32_t timeout_ms, hms_rpc_done done, void *ctx,
                  uint64_t *call_id)
{
    if (!addr || !addr->family || !method || !done || strlen(method) == 0 ||
        strlen(method) > HMS_CHAN_METHOD_MAX)
        return -EINVAL;
    if (MSG_HDR + strlen(method) + len > HMS_CHAN_MSG_MAX)
        return -EMSGSIZE;
    pending_call *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return -ENOMEM;
    pc->req = malloc(len ? len : 1);
    if (!pc->req) {
        free(pc);
        return -ENOMEM;
    }
    if (len)
        memcpy(pc->req, req, len);
    pc->len = len;
    pc->p = p;
    pc->id = p->next_id++;
    pc->done = done;
    pc->ctx = ctx;
    snprintf(pc->method, sizeof(pc->method), "%s", method);
    ev_timer_init(&pc->timer, call_timer_cb, (timeout_ms ? timeout_ms : 10000) / 1000.0, 0.);
    pc->timer.data = pc;

    hms_chan *ch = find_chan(p, key, addr);
    if (!ch) {
        int err = 0;
        ch = ch_connect(p, key, addr, &err);
        if (!ch) {
            free(pc->req);
            free(pc);
            return err;
        }
    }
    pc->ch = ch;
    pc->next = ch->calls;
    if (ch->calls)
        ch->calls->prev = pc;
    ch->calls = pc;
    ch->ncalls++;
    ev_timer_start(p->loop, &pc->timer);
    p->st.calls_out++;
    if (call_id)
        *call_id = pc->id;
    if (ch->state == CH_READY)
        send_queued(ch);
    return 0;
}

void hms_chan_cancel(hms_chan_pool *p, uint64_t call_id)
{
    for (hms_chan *ch = p->chans; ch; ch = ch->next)
        for (pending_call *pc = ch->calls; pc; pc = pc->next)
            if (pc->id == call_id) {
                call_fail(pc, -ECANCELED);
                return;
            }
}

void hms_chan_close_peer(hms_chan_pool *p, const uint8_t key[32])
{
    hms_chan *ch = p->chans;
    while (ch) {
        hms_chan *next = ch->next;
        if ((ch->verified && sodium_memcmp(ch->peer.key, key, 32) == 0) ||
            (ch->want_key_set && sodium_memcmp(ch->want_key, key, 32) == 0))
            ch_close(ch, -EPERM);
        ch = next;
    }
}

int hms_rpc_reply(hms_rpc_call *call, int status, const uint8_t *body, size_t len)
{
    hms_chan *ch = call->ch;
    int r = -ENOTCONN;
    if (ch) {
        if (call->prev)
            call->prev->next = call->next;
        else
            ch->served = call->next;
        if (call->next)
            call->next->prev = call->prev;
        ch->nserved--;
        r = send_msg(ch, MSG_REP, call->id, status, NULL, body, status < 0 ? 0 : len);
        if (r == -EMSGSIZE || r == -ENOBUFS)
            r = send_msg(ch, MSG_REP, call->id, r, NULL, NULL, 0);
        ch->last_active = ev_now(ch->p->loop);
        if (ch->busy == 0)
            ch_flush(ch);
    }
    free(call);
    return r;
}

void hms_chan_get_stats(const hms_chan_pool *p, hms_chan_stats *out)
{
    *out = p->st;
    out->conns_now = p->nchans;
    out->handshakes_now = p->nhandshakes;
}
