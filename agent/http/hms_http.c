/*
 * hms-http: the process that makes the agent's HTTP requests (health checks
 * today). hms-agent starts it with a socketpair as its stdin and stdout,
 * sends request frames and reads one response frame per request
 * (proto/httpframe.h); stderr is the agent's, so messages reach its log.
 *
 * Why a process of its own: the agent may be a static binary that cannot
 * load the system's libcurl, and the agent holds the node's private key
 * while libcurl and its TLS stack are a large parser surface. Here they run
 * in a process that never sees key material, and a crash here costs the
 * agent only the requests in flight.
 *
 * One libev loop drives libcurl's multi-socket interface: curl's sockets
 * map to ev_io watchers (CURLMOPT_SOCKETFUNCTION) and its timer to one
 * ev_timer (CURLMOPT_TIMERFUNCTION). Bounds: a request frame is at most
 * HMS_HTTPFRAME_MAX bytes, at most XFERS_MAX transfers exist at once
 * (running or with an unsent response; past it stdin is not read, which
 * holds the agent back through the socket), a body is read up to
 * HMS_HTTP_BODY_READ_MAX bytes. Exits 0 at end of input, 1 on an I/O
 * error, 2 on a malformed frame (the agent then starts a new one).
 */
#include <curl/curl.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/httpframe.h"

#define IN_FD 0
#define OUT_FD 1
#define XFERS_MAX 2048
#define RESP_FRAME_MAX (HMS_HTTPFRAME_HDR + 512) /* id, status, 255 + 127 text bytes, keys */

typedef struct xfer {
    CURL *easy;
    uint32_t id;
    uint32_t timeout_ms;
    char errbuf[CURL_ERROR_SIZE];
    size_t body_len;   /* body bytes received */
    char body[64];     /* start of the first line, printable only */
    size_t body_kept;
    bool line_done;
    bool capped;       /* stopped reading at HMS_HTTP_BODY_READ_MAX */
    uint8_t frame[RESP_FRAME_MAX];
    size_t flen, foff; /* encoded response, bytes written */
    struct xfer *next; /* output queue */
} xfer;

typedef struct sock_watch {
    ev_io io;
    curl_socket_t fd;
} sock_watch;

static struct ev_loop *loop;
static CURLM *multi;
static ev_timer curl_timer;
static ev_io rio, wio;
static uint8_t inbuf[4 * (HMS_HTTPFRAME_HDR + HMS_HTTPFRAME_MAX)];
static size_t inlen;
static size_t nxfers;
static xfer *out_head, *out_tail;
static int exit_code;

static void quit(int code)
{
    exit_code = code;
    ev_break(loop, EVBREAK_ALL);
}

/* Start reading requests again once below the bound. */
static void update_reading(void)
{
    if (nxfers < XFERS_MAX && !ev_is_active(&rio) && exit_code < 0) {
        ev_io_start(loop, &rio);
        if (inlen)
            ev_feed_event(loop, &rio, EV_READ); /* frames read before the stop */
    } else if (nxfers >= XFERS_MAX && ev_is_active(&rio))
        ev_io_stop(loop, &rio);
}

/* ---- output -------------------------------------------------------------- */

static void flush_out(void)
{
    while (out_head) {
        xfer *x = out_head;
        ssize_t n = write(OUT_FD, x->frame + x->foff, x->flen - x->foff);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(loop, &wio);
            return;
        }
        if (n < 0) {
            if (errno != EPIPE)
                fprintf(stderr, "hms-http: error: cannot write to the agent: %s\n", strerror(errno));
            quit(errno == EPIPE ? 0 : 1);
            return;
        }
        x->foff += (size_t)n;
        if (x->foff < x->flen)
            continue;
        out_head = x->next;
        if (!out_head)
            out_tail = NULL;
        free(x);
        nxfers--;
    }
    ev_io_stop(loop, &wio);
    update_reading();
}

static void wio_cb(struct ev_loop *l, ev_io *w, int revents)
{
    flush_out();
}

/* Copies text as printable ASCII, '?' for anything else, within cap. */
static void printable(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[i] = '\0';
}

/* Encodes the response of x and queues it; x is no longer a transfer. */
static void respond(xfer *x, long status, const char *error)
{
    hms_http_resp r;
    memset(&r, 0, sizeof(r));
    r.id = x->id;
    r.status = status > 0 && status <= 999 ? (uint16_t)status : 0;
    if (r.status == 0 && !error[0])
        error = "no HTTP status";
    printable(r.error, sizeof(r.error), error);
    x->body[x->body_kept] = '\0';
    printable(r.line, sizeof(r.line), x->body);
    if (hms_http_resp_encode(&r, x->frame, sizeof(x->frame), &x->flen) != 0) {
        /* cannot happen with the bounds above; answer rather than hang the probe */
        snprintf(r.error, sizeof(r.error), "internal error");
        r.status = 0;
        r.line[0] = '\0';
        hms_http_resp_encode(&r, x->frame, sizeof(x->frame), &x->flen);
    }
    x->foff = 0;
    x->next = NULL;
    if (out_tail)
        out_tail->next = x;
    else
        out_head = x;
    out_tail = x;
    if (!ev_is_active(&wio))
        flush_out();
}

/* ---- curl multi-socket glue ---------------------------------------------- */

static void check_done(void)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        xfer *x = NULL;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_multi_remove_handle(multi, e);
        if (!x) {
            curl_easy_cleanup(e);
            continue;
        }
        /* a body cut at the bound still has its status */
        if (res == CURLE_WRITE_ERROR && x->capped && code > 0)
            res = CURLE_OK;
        char why[HMS_HTTP_ERROR_MAX + 1] = "";
        if (res == CURLE_OPERATION_TIMEDOUT)
            snprintf(why, sizeof(why), "timeout after %lu ms", (unsigned long)x->timeout_ms);
        else if (res != CURLE_OK)
            snprintf(why, sizeof(why), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
        x->easy = NULL;
        curl_easy_cleanup(e);
        respond(x, res == CURLE_OK ? code : 0, why);
    }
}

static void sock_io_cb(struct ev_loop *l, ev_io *w, int revents)
{
    sock_watch *sw = (sock_watch *)w;
    int flags = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(multi, sw->fd, flags, &running);
    check_done();
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    sock_watch *sw = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sw) {
            ev_io_stop(loop, &sw->io);
            curl_multi_assign(multi, s, NULL);
            free(sw);
        }
        return 0;
    }
    if (!sw) {
        sw = calloc(1, sizeof(*sw));
        if (!sw)
            return -1;
        sw->fd = s;
        ev_init(&sw->io, sock_io_cb);
        curl_multi_assign(multi, s, sw);
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(loop, &sw->io);
    ev_io_set(&sw->io, s, ev);
    ev_io_start(loop, &sw->io);
    return 0;
}

static void curl_timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    int running;
    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done();
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    ev_timer_stop(loop, &curl_timer);
    if (timeout_ms >= 0) {
        /* 0 means "act now": from the loop, never from inside curl */
        ev_timer_set(&curl_timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(loop, &curl_timer);
    }
    return 0;
}

/* Keeps the start of the first body line and reads at most
 * HMS_HTTP_BODY_READ_MAX bytes: an endpoint that streams forever must not
 * hold a check until its timeout. */
static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    xfer *x = userdata;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n && !x->line_done && x->body_kept < sizeof(x->body) - 1; i++) {
        unsigned char ch = (unsigned char)ptr[i];
        if (ch == '\r' || ch == '\n') {
            x->line_done = true;
            break;
        }
        x->body[x->body_kept++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    x->body_len += n;
    if (x->body_len > HMS_HTTP_BODY_READ_MAX) {
        x->capped = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR; the status counts */
    }
    return n;
}

/* ---- requests ------------------------------------------------------------ */

static void start(const hms_http_req *q)
{
    xfer *x = calloc(1, sizeof(*x));
    if (!x) {
        fprintf(stderr, "hms-http: error: out of memory\n");
        quit(1);
        return;
    }
    x->id = q->id;
    x->timeout_ms = q->timeout_ms;
    nxfers++;
    CURL *e = curl_easy_init();
    if (!e) {
        respond(x, 0, "out of memory");
        return;
    }
    x->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, q->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)q->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)x);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hms-agent health check");
    /* Each check proves a fresh connection can be made, as a client would. */
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    if (!strcmp(q->method, "HEAD"))
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (q->method[0] && strcmp(q->method, "GET"))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method);
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
        x->easy = NULL;
        curl_easy_cleanup(e);
        respond(x, 0, "cannot start the transfer");
    }
}

static void rio_cb(struct ev_loop *l, ev_io *w, int revents)
{
    if (inlen < sizeof(inbuf)) {
        ssize_t n = read(IN_FD, inbuf + inlen, sizeof(inbuf) - inlen);
        if (n == 0) {
            quit(0); /* the agent closed its end: it stopped or no longer needs us */
            return;
        }
        if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            fprintf(stderr, "hms-http: error: cannot read from the agent: %s\n", strerror(errno));
            quit(1);
            return;
        }
        if (n > 0)
            inlen += (size_t)n;
    }
    size_t off = 0;
    while (nxfers < XFERS_MAX && exit_code < 0) {
        const uint8_t *pl;
        size_t plen, used;
        int rc = hms_httpframe_next(inbuf + off, inlen - off, &pl, &plen, &used);
        if (rc == -EAGAIN)
            break;
        hms_http_req q;
        if (rc != 0 || hms_http_req_decode(pl, plen, &q) != 0) {
            fprintf(stderr, "hms-http: error: malformed request frame from the agent\n");
            quit(2);
            return;
        }
        off += used;
        start(&q);
    }
    memmove(inbuf, inbuf + off, inlen - off);
    inlen -= off;
    update_reading();
}

int main(int argc, char **argv)
{
    if (argc > 1 || isatty(IN_FD)) {
        fprintf(stderr, "usage: hms-http (started by hms-agent: request frames on stdin, "
                        "response frames on stdout)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int fl = fcntl(IN_FD, F_GETFL);
    if (fl < 0 || fcntl(IN_FD, F_SETFL, fl | O_NONBLOCK) < 0 ||
        (fl = fcntl(OUT_FD, F_GETFL)) < 0 || fcntl(OUT_FD, F_SETFL, fl | O_NONBLOCK) < 0) {
        fprintf(stderr, "hms-http: error: cannot set up stdin/stdout: %s\n", strerror(errno));
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(multi = curl_multi_init())) {
        fprintf(stderr, "hms-http: error: cannot initialise libcurl (%s)\n", curl_version());
        return 1;
    }
    loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "hms-http: error: cannot create the event loop\n");
        return 1;
    }
    exit_code = -1;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    ev_timer_init(&curl_timer, curl_timer_cb, 0., 0.);
    ev_io_init(&rio, rio_cb, IN_FD, EV_READ);
    ev_io_init(&wio, wio_cb, OUT_FD, EV_WRITE);
    ev_io_start(loop, &rio);
    ev_run(loop, 0);
    /* No cleanup of transfers in flight: the agent no longer waits for them
     * and the process ends here. */
    return exit_code < 0 ? 0 : exit_code;
}
