/*
 * Health probes on the loop (see probe.h). One curl multi handle per prober
 * drives every HTTP probe: CURLMOPT_SOCKETFUNCTION maps curl's sockets to
 * ev_io watchers, CURLMOPT_TIMERFUNCTION to one ev_timer. Completed
 * transfers are collected with curl_multi_info_read after each action.
 * Results are delivered through a zero-delay timer so that a callback never
 * runs inside the function that started the probe.
 *
 * libcurl is reached through agent/curl_dl.h and loaded, with the multi
 * handle, by the first HTTP probe: an agent without HTTP checks never maps
 * it. If it cannot be loaded, the probe is critical with the reason.
 */
#include "agent/catalog/probe.h"

#include "agent/catalog/health.h"
#include "agent/curl_dl.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { PROBE_HTTP = 1, PROBE_TCP = 2 };

struct cat_probe {
    cat_prober *p;
    int kind;
    CURL *easy;
    int fd;
    ev_io io;
    ev_timer tmo;     /* TCP timeout */
    ev_timer deliver; /* zero-delay delivery of the result */
    bool done;
    uint32_t timeout_ms;
    cat_status result;
    char output[CAT_PROBE_OUTPUT_MAX + 1];
    char errbuf[CURL_ERROR_SIZE];
    size_t body_len;    /* bytes of response body received */
    char body[64];      /* its start, printable characters only, for the output */
    size_t body_kept;
    bool capped;        /* stopped reading at CAT_PROBE_BODY_MAX */
    cat_probe_done fn;
    void *ctx;
    cat_probe *prev, *next;
};

struct cat_prober {
    struct ev_loop *loop;
    const hms_curl_api *cu; /* NULL until the first HTTP probe */
    CURLM *multi;
    ev_timer timer;
    size_t count;
    cat_probe *head;
};

typedef struct sock_watch {
    ev_io io;
    curl_socket_t fd;
    cat_prober *p;
} sock_watch;

static void check_done(cat_prober *p);

/* ---- common -------------------------------------------------------------- */

static void probe_unlink_free(cat_probe *pr)
{
    cat_prober *p = pr->p;
    if (pr->prev)
        pr->prev->next = pr->next;
    else
        p->head = pr->next;
    if (pr->next)
        pr->next->prev = pr->prev;
    p->count--;
    free(pr);
}

static void probe_release(cat_probe *pr)
{
    cat_prober *p = pr->p;
    ev_timer_stop(p->loop, &pr->deliver);
    ev_timer_stop(p->loop, &pr->tmo);
    if (pr->kind == PROBE_TCP && pr->fd >= 0) {
        ev_io_stop(p->loop, &pr->io);
        close(pr->fd);
        pr->fd = -1;
    }
    if (pr->easy) {
        p->cu->multi_remove_handle(p->multi, pr->easy);
        p->cu->easy_cleanup(pr->easy);
        pr->easy = NULL;
    }
}

static void deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    cat_probe *pr = w->data;
    cat_probe_done fn = pr->fn;
    void *ctx = pr->ctx;
    cat_status st = pr->result;
    char out[CAT_PROBE_OUTPUT_MAX + 1];
    memcpy(out, pr->output, sizeof(out));
    probe_release(pr);
    probe_unlink_free(pr);
    fn(ctx, st, out);
}

/* Records the result and schedules delivery from the loop. */
static void finish(cat_probe *pr, cat_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(cat_probe *pr, cat_status st, const char *fmt, ...)
{
    if (pr->done)
        return;
    pr->done = true;
    pr->result = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pr->output, sizeof(pr->output), fmt, ap);
    va_end(ap);
    ev_timer_stop(pr->p->loop, &pr->tmo);
    if (pr->kind == PROBE_TCP && pr->fd >= 0)
        ev_io_stop(pr->p->loop, &pr->io);
    ev_timer_set(&pr->deliver, 0., 0.);
    ev_timer_start(pr->p->loop, &pr->deliver);
}

static cat_probe *probe_new(cat_prober *p, int kind, cat_probe_done fn, void *ctx)
{
    if (p->count >= CAT_PROBES_MAX)
        return NULL;
    cat_probe *pr = calloc(1, sizeof(*pr));
    if (!pr)
        return NULL;
    pr->p = p;
    pr->kind = kind;
    pr->fd = -1;
    pr->fn = fn;
    pr->ctx = ctx;
    ev_timer_init(&pr->deliver, deliver_cb, 0., 0.);
    pr->deliver.data = pr;
    ev_init(&pr->tmo, NULL);
    pr->next = p->head;
    if (p->head)
        p->head->prev = pr;
    p->head = pr;
    p->count++;
    return pr;
}

void cat_probe_cancel(cat_probe *pr)
{
    if (!pr)
        return;
    probe_release(pr);
    probe_unlink_free(pr);
}

/* ---- curl multi-socket glue ---------------------------------------------- */

static void sock_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    sock_watch *sw = w->data;
    cat_prober *p = sw->p;
    int flags = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    p->cu->multi_socket_action(p->multi, sw->fd, flags, &running);
    check_done(p);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    cat_prober *p = userp;
    sock_watch *sw = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sw) {
            ev_io_stop(p->loop, &sw->io);
            p->cu->multi_assign(p->multi, s, NULL);
            free(sw);
        }
        return 0;
    }
    if (!sw) {
        sw = calloc(1, sizeof(*sw));
        if (!sw)
            return -1;
        sw->fd = s;
        sw->p = p;
        ev_init(&sw->io, sock_io_cb);
        sw->io.data = sw;
        p->cu->multi_assign(p->multi, s, sw);
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_stop(p->loop, &sw->io);
    ev_io_set(&sw->io, s, ev);
    ev_io_start(p->loop, &sw->io);
    return 0;
}

static void multi_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    cat_prober *p = w->data;
    int running;
    p->cu->multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(p);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    cat_prober *p = userp;
    ev_timer_stop(p->loop, &p->timer);
    if (timeout_ms >= 0) {
        /* 0 means "act now": from the loop, never from inside curl. */
        ev_timer_set(&p->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(p->loop, &p->timer);
    }
    return 0;
}

static void check_done(cat_prober *p)
{
    CURLMsg *msg;
    int left;
    while ((msg = p->cu->multi_info_read(p->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        cat_probe *pr = NULL;
        p->cu->easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&pr);
        if (!pr)
            continue;
        CURLcode res = msg->data.result;
        long code = 0;
        p->cu->easy_getinfo(pr->easy, CURLINFO_RESPONSE_CODE, &code);
        p->cu->multi_remove_handle(p->multi, pr->easy);
        p->cu->easy_cleanup(pr->easy);
        pr->easy = NULL;
        if (res == CURLE_WRITE_ERROR && pr->capped && code > 0)
            res = CURLE_OK;
        pr->body[pr->body_kept < sizeof(pr->body) ? pr->body_kept : sizeof(pr->body) - 1] = '\0';
        if (res == CURLE_OPERATION_TIMEDOUT)
            finish(pr, CAT_CRITICAL, "timeout after %lu ms", (unsigned long)pr->timeout_ms);
        else if (res != CURLE_OK)
            finish(pr, CAT_CRITICAL, "%s", pr->errbuf[0] ? pr->errbuf : p->cu->easy_strerror(res));
        else
            finish(pr, cat_health_http(code), "HTTP %ld%s%s", code, pr->body[0] ? ": " : "",
                   pr->body);
    }
}

/* Keeps the start of the body for the output and reads at most
 * CAT_PROBE_BODY_MAX bytes: a health endpoint that streams forever must not
 * hold a probe until its timeout. */
static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    cat_probe *pr = userdata;
    size_t n = size * nmemb;
    for (size_t i = 0; i < n && pr->body_kept < sizeof(pr->body) - 1; i++) {
        unsigned char ch = (unsigned char)ptr[i];
        if (ch == '\r' || ch == '\n') {
            pr->body_kept = sizeof(pr->body) - 1; /* first line only */
            break;
        }
        pr->body[pr->body_kept++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    pr->body_len += n;
    if (pr->body_len > CAT_PROBE_BODY_MAX) {
        pr->capped = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR; the status counts */
    }
    return n;
}

cat_prober *cat_prober_new(struct ev_loop *loop)
{
    cat_prober *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->loop = loop;
    ev_timer_init(&p->timer, multi_timer_cb, 0., 0.);
    p->timer.data = p;
    return p;
}

/* Loads libcurl and makes the multi handle, once. 0, or -ENOENT with the
 * reason in err (library missing or broken), or -ENOMEM. */
static int multi_ready(cat_prober *p, char *err, size_t errlen)
{
    if (p->multi)
        return 0;
    const hms_curl_api *cu = hms_curl(err, errlen);
    if (!cu)
        return -ENOENT;
    CURLM *m = cu->multi_init();
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    cu->multi_setopt(m, CURLMOPT_SOCKETFUNCTION, sock_cb);
    cu->multi_setopt(m, CURLMOPT_SOCKETDATA, p);
    cu->multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_cb);
    cu->multi_setopt(m, CURLMOPT_TIMERDATA, p);
    p->cu = cu;
    p->multi = m;
    return 0;
}

void cat_prober_delete(cat_prober *p)
{
    if (!p)
        return;
    while (p->head)
        cat_probe_cancel(p->head);
    ev_timer_stop(p->loop, &p->timer);
    /* curl_multi_cleanup calls sock_cb with CURL_POLL_REMOVE for what is left */
    if (p->multi)
        p->cu->multi_cleanup(p->multi);
    free(p);
}

int cat_probe_http(cat_prober *p, const char *url, uint32_t timeout_ms, cat_probe_done fn,
                   void *ctx, cat_probe **out)
{
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return -EINVAL;
    cat_probe *pr = probe_new(p, PROBE_HTTP, fn, ctx);
    if (!pr)
        return p->count >= CAT_PROBES_MAX ? -ENOSPC : -ENOMEM;
    pr->timeout_ms = timeout_ms;
    char why[CAT_PROBE_OUTPUT_MAX + 1];
    int rc = multi_ready(p, why, sizeof(why));
    if (rc == -ENOMEM) {
        cat_probe_cancel(pr);
        return rc;
    }
    if (rc < 0) {
        /* No libcurl: the check cannot run, which is a failing check. */
        finish(pr, CAT_CRITICAL, "%s", why);
        if (out)
            *out = pr;
        return 0;
    }
    const hms_curl_api *cu = p->cu;
    pr->easy = cu->easy_init();
    if (!pr->easy) {
        cat_probe_cancel(pr);
        return -ENOMEM;
    }
    /* Through the table, curl's compile-time option type checks do not
     * apply: every value below has the type the option documents. */
    CURL *e = pr->easy;
    cu->easy_setopt(e, CURLOPT_URL, url);
    cu->easy_setopt(e, CURLOPT_PRIVATE, (void *)pr);
    cu->easy_setopt(e, CURLOPT_ERRORBUFFER, pr->errbuf);
    cu->easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    cu->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    cu->easy_setopt(e, CURLOPT_WRITEDATA, (void *)pr);
    cu->easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    cu->easy_setopt(e, CURLOPT_NOPROXY, "*");
    cu->easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    cu->easy_setopt(e, CURLOPT_USERAGENT, "hms-agent health check");
    /* Each check proves a fresh connection can be made, as a client would. */
    cu->easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    cu->easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    if (cu->multi_add_handle(p->multi, e) != CURLM_OK) {
        cat_probe_cancel(pr);
        return -ENOMEM;
    }
    if (out)
        *out = pr;
    return 0;
}

/* ---- TCP ----------------------------------------------------------------- */

static void tcp_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    cat_probe *pr = w->data;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    if (soerr == 0)
        finish(pr, CAT_PASSING, "connected");
    else
        finish(pr, CAT_CRITICAL, "connect: %s", strerror(soerr));
}

static void tcp_tmo_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    cat_probe *pr = w->data;
    finish(pr, CAT_CRITICAL, "connect timeout after %lu ms", (unsigned long)pr->timeout_ms);
}

int cat_probe_tcp(cat_prober *p, const char *host, uint16_t port, uint32_t timeout_ms,
                  cat_probe_done fn, void *ctx, cat_probe **out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        sl = sizeof(*s6);
    } else {
        return -EINVAL;
    }
    cat_probe *pr = probe_new(p, PROBE_TCP, fn, ctx);
    if (!pr)
        return p->count >= CAT_PROBES_MAX ? -ENOSPC : -ENOMEM;
    pr->timeout_ms = timeout_ms;
    pr->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pr->fd < 0) {
        int e = errno;
        finish(pr, CAT_CRITICAL, "socket: %s", strerror(e));
    } else if (connect(pr->fd, (struct sockaddr *)&ss, sl) == 0) {
        finish(pr, CAT_PASSING, "connected");
    } else if (errno != EINPROGRESS) {
        int e = errno;
        finish(pr, CAT_CRITICAL, "connect: %s", strerror(e));
    } else {
        ev_io_init(&pr->io, tcp_io_cb, pr->fd, EV_WRITE);
        pr->io.data = pr;
        ev_io_start(p->loop, &pr->io);
        ev_timer_init(&pr->tmo, tcp_tmo_cb, (double)timeout_ms / 1000.0, 0.);
        pr->tmo.data = pr;
        ev_timer_start(p->loop, &pr->tmo);
    }
    if (out)
        *out = pr;
    return 0;
}
