/*
 * Health probes on the loop (see probe.h).
 *
 * HTTP probes run in a child process, hms-http (agent/http/), which links
 * libcurl: the agent itself never maps libcurl or a TLS stack, so it can be
 * a static binary, and the parser surface of HTTP and TLS runs in a process
 * that holds no key material. The helper is started by the first HTTP probe
 * (fork and exec, a socketpair as its stdin and stdout, every other
 * descriptor closed, stderr shared so its messages reach the agent's log)
 * and found at $HMS_HTTP_HELPER, else next to the agent's own executable.
 * Requests and responses are proto/httpframe.h frames matched by id; the
 * agent side is non-blocking: an ev_io reads responses, a bounded output
 * buffer is filled from a queue of encoded requests as the socket drains.
 *
 * Helper states (p->hstate):
 *
 *   DOWN --helper_start ok--> UP --EOF, write error, malformed frame,--> REAPING
 *     ^  \                       unanswered probe: helper_lost          |
 *     |   start failed: probes critical until a back-off ends            |
 *     +---------------- reap_cb: its status known, probes sent fail -----+
 *                       (died within 1 s of its start: next start delayed)
 *
 * In UP, fd >= 0 and pid > 0; in REAPING, fd < 0 and pid > 0; in DOWN both
 * unset. Probes made while REAPING wait in the queue for the next helper.
 * Only the helper's own pid is waited for, so other children of the agent
 * are not disturbed. On libev's default loop (the agent's), libev's own
 * SIGCHLD handler reaps every child, so an ev_child watcher for the
 * helper's pid collects its status; on any other loop a timer polls
 * waitpid(pid, WNOHANG) once the helper is lost.
 *
 * An HTTP probe holds a slot in p->slots while it waits for its answer; its
 * id is the slot plus a generation in the high bits, so a late answer to a
 * cancelled probe is recognised and dropped. Each probe also has a guard
 * timer, its timeout plus HELPER_GRACE: the helper enforces the timeout
 * itself, so a probe still unanswered then means a stuck helper, which is
 * killed and replaced.
 *
 * TCP probes stay in the agent: a non-blocking connect, ev_io for
 * writability, ev_timer for the timeout. Results of every probe are
 * delivered through a zero-delay timer so that a callback never runs inside
 * the function that started the probe.
 */
#include "agent/catalog/probe.h"

#include "agent/catalog/health.h"
#include "agent/log.h"
#include "proto/httpframe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define HELPER_NAME "hms-http"
#define HELPER_GRACE 2.0         /* s past a probe's timeout before the helper is deemed stuck */
#define HELPER_BACKOFF_MIN 0.25  /* s before a failed start is tried again, doubling */
#define HELPER_BACKOFF_MAX 5.0
#define HELPER_QUICK_DEATH 1.0   /* s: a helper dying sooner is replaced after a delay */
#define HELPER_RESPAWN_MAX 1.0   /* s: the longest such delay (probes wait meanwhile) */
#define HELPER_EXIT_WAIT 2.0     /* s between losing the helper and SIGKILL if it lingers */
#define SLOT_BITS 10             /* CAT_PROBES_MAX slots */

_Static_assert(CAT_PROBES_MAX <= (1 << SLOT_BITS), "slots fit the id");
_Static_assert((CAT_PROBES_MAX & (CAT_PROBES_MAX - 1)) == 0, "slot index by mask");
_Static_assert(CAT_PROBE_BODY_MAX == HMS_HTTP_BODY_READ_MAX, "one body bound");

enum { PROBE_HTTP = 1, PROBE_TCP = 2 };
enum { HS_DOWN, HS_UP, HS_REAPING };
enum { Q_NONE, Q_QUEUED, Q_SENT };

struct cat_probe {
    cat_prober *p;
    int kind;
    int fd;
    ev_io io;
    ev_timer tmo;     /* TCP timeout; HTTP guard */
    ev_timer deliver; /* zero-delay delivery of the result */
    bool done;
    uint32_t timeout_ms;
    cat_status result;
    char output[CAT_PROBE_OUTPUT_MAX + 1];
    cat_probe_done fn;
    void *ctx;
    cat_probe *prev, *next; /* every probe of the prober */
    /* HTTP */
    int slot; /* -1: none */
    uint32_t id;
    int q;                  /* Q_*: in the send queue, or sent and awaited */
    cat_probe *qnext, *qprev; /* send queue */
    size_t flen;
    uint8_t frame[]; /* the encoded request, flen bytes */
};

struct cat_prober {
    struct ev_loop *loop;
    size_t count;
    cat_probe *head;
    /* HTTP helper */
    int hstate;
    pid_t pid;
    int fd;
    ev_io rio, wio;
    ev_timer reap;
    ev_timer respawn; /* delayed start after a helper died young */
#if EV_CHILD_ENABLE
    ev_child child; /* default loop only */
#endif
    bool exited;    /* the helper's status is known (exit_status) */
    int exit_status;
    ev_tstamp started, lost_at, retry_at;
    double backoff;
    char why[CAT_PROBE_OUTPUT_MAX + 1];       /* reason the helper was lost, when known */
    char start_err[CAT_PROBE_OUTPUT_MAX + 1]; /* last failed start, during the back-off */
    cat_probe *qhead, *qtail;
    cat_probe *slots[CAT_PROBES_MAX];
    uint32_t gen;
    uint8_t out[16384];
    size_t outlen, outoff;
    uint8_t in[2 * (HMS_HTTPFRAME_HDR + HMS_HTTPFRAME_MAX)];
    size_t inlen;
    cat_prober_stats st;
};

static void helper_lost(cat_prober *p, const char *why);
static void helper_flush(cat_prober *p);

/* ---- common -------------------------------------------------------------- */

static void queue_remove(cat_probe *pr)
{
    cat_prober *p = pr->p;
    if (pr->q != Q_QUEUED)
        return;
    if (pr->qprev)
        pr->qprev->qnext = pr->qnext;
    else
        p->qhead = pr->qnext;
    if (pr->qnext)
        pr->qnext->qprev = pr->qprev;
    else
        p->qtail = pr->qprev;
    pr->qnext = pr->qprev = NULL;
    pr->q = Q_NONE;
}

/* The probe no longer waits for the helper: out of the queue, slot freed
 * (a late answer to its id is then dropped). */
static void http_detach(cat_probe *pr)
{
    queue_remove(pr);
    pr->q = Q_NONE;
    if (pr->slot >= 0) {
        pr->p->slots[pr->slot] = NULL;
        pr->slot = -1;
    }
}

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
    if (pr->kind == PROBE_HTTP)
        http_detach(pr);
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
    if (pr->kind == PROBE_HTTP)
        http_detach(pr);
    ev_timer_set(&pr->deliver, 0., 0.);
    ev_timer_start(pr->p->loop, &pr->deliver);
}

static cat_probe *probe_new(cat_prober *p, int kind, size_t extra, cat_probe_done fn, void *ctx)
{
    if (p->count >= CAT_PROBES_MAX)
        return NULL;
    cat_probe *pr = calloc(1, sizeof(*pr) + extra);
    if (!pr)
        return NULL;
    pr->p = p;
    pr->kind = kind;
    pr->fd = -1;
    pr->slot = -1;
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

/* ---- the helper process -------------------------------------------------- */

/* $HMS_HTTP_HELPER, else hms-http in the directory of /proc/self/exe. */
static int helper_path(char *buf, size_t cap)
{
    const char *env = getenv("HMS_HTTP_HELPER");
    if (env && env[0]) {
        if (strlen(env) >= cap)
            return -ENAMETOOLONG;
        memcpy(buf, env, strlen(env) + 1);
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    size_t dir = slash ? (size_t)(slash - buf) + 1 : 0;
    if (dir + sizeof(HELPER_NAME) > cap)
        return -ENAMETOOLONG;
    memcpy(buf + dir, HELPER_NAME, sizeof(HELPER_NAME));
    return 0;
}

/* A descriptor moved to 3 or above, close-on-exec, so that the child's
 * dup2 onto 0 and 1 cannot overwrite it. */
static int high_fd(int fd)
{
    if (fd >= 3)
        return fd;
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int e = errno;
    close(fd);
    errno = e;
    return h;
}

/* In the forked child: async-signal-safe calls only (the agent has
 * threads). Never returns. */
static void child_exec(const char *path, int sock, int errfd, pid_t parent)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* libev may block signals it watches */
    int e = 0;
    /* the helper dies with the agent even if the agent cannot close its end */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        e = errno;
    else if (getppid() != parent)
        _exit(0);
    else if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0)
        e = errno;
    if (!e) {
        /* nothing of the agent's but stdin, stdout and stderr crosses exec */
#ifdef SYS_close_range
        if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
#endif
        {
            struct rlimit rl;
            long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (long)rl.rlim_cur
                                                                                 : 65536;
            for (long fd = 3; fd < max; fd++)
                fcntl((int)fd, F_SETFD, FD_CLOEXEC);
        }
        char *argv[] = {(char *)HELPER_NAME, NULL};
        execv(path, argv);
        e = errno;
    }
    ssize_t w = write(errfd, &e, sizeof(e));
    (void)w;
    _exit(127);
}

static void helper_rio_cb(struct ev_loop *loop, ev_io *w, int revents);
static void helper_wio_cb(struct ev_loop *loop, ev_io *w, int revents);

/* The reason of a failed start, for the checks that fail meanwhile. A path
 * too long for the check output gives way to the errno text. */
static void start_failed(cat_prober *p, const char *path, int rc)
{
    int n = snprintf(p->start_err, sizeof(p->start_err), "cannot start '%s': %s", path,
                     strerror(-rc));
    if (n < 0 || (size_t)n >= sizeof(p->start_err))
        snprintf(p->start_err, sizeof(p->start_err), "cannot start the http helper: %s",
                 strerror(-rc));
}

/* DOWN -> UP. 0, or a negative errno with the reason in p->start_err. */
static int helper_start(cat_prober *p)
{
    char path[PATH_MAX];
    int sv[2] = {-1, -1}, ep[2] = {-1, -1}, rc = helper_path(path, sizeof(path));
    if (rc < 0) {
        snprintf(p->start_err, sizeof(p->start_err), "cannot find '%s': %s", HELPER_NAME,
                 strerror(-rc));
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(ep, O_CLOEXEC) < 0 ||
        (sv[0] = high_fd(sv[0])) < 0 || (sv[1] = high_fd(sv[1])) < 0 ||
        (ep[1] = high_fd(ep[1])) < 0) {
        rc = -errno;
        start_failed(p, path, rc);
        goto fail;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(path, sv[1], ep[1], parent);
    if (pid < 0) {
        rc = -errno;
        start_failed(p, path, rc);
        goto fail;
    }
    close(sv[1]);
    close(ep[1]);
    sv[1] = ep[1] = -1;
    /* The pipe closes at exec; before that the child writes why exec
     * failed. This waits for one fork and exec, not for the helper. */
    int err = 0;
    ssize_t n;
    do
        n = read(ep[0], &err, sizeof(err));
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    ep[0] = -1;
    if (n > 0) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        rc = -(n == sizeof(err) && err > 0 ? err : EIO);
        start_failed(p, path, rc);
        goto fail;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    p->fd = sv[0];
    p->pid = pid;
    p->hstate = HS_UP;
    p->started = ev_time();
    p->why[0] = '\0';
    p->inlen = p->outlen = p->outoff = 0;
    p->exited = false;
    p->st.helper_starts++;
#if EV_CHILD_ENABLE
    if (ev_is_default_loop(p->loop)) {
        ev_child_set(&p->child, pid, 0);
        ev_child_start(p->loop, &p->child);
    }
#endif
    ev_io_init(&p->rio, helper_rio_cb, p->fd, EV_READ);
    p->rio.data = p;
    ev_io_init(&p->wio, helper_wio_cb, p->fd, EV_WRITE);
    p->wio.data = p;
    ev_io_start(p->loop, &p->rio);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0)
            close(sv[i]);
        if (ep[i] >= 0)
            close(ep[i]);
    }
    p->st.helper_start_failures++;
    p->backoff = p->backoff ? p->backoff * 2 : HELPER_BACKOFF_MIN;
    if (p->backoff > HELPER_BACKOFF_MAX)
        p->backoff = HELPER_BACKOFF_MAX;
    p->retry_at = ev_time() + p->backoff;
    return rc < 0 ? rc : -EIO;
}

/* Fails every probe of the queue with the given output. */
static void fail_queued(cat_prober *p, const char *why)
{
    while (p->qhead)
        finish(p->qhead, CAT_CRITICAL, "%s", why);
}

/* Makes sure a helper runs or is coming (REAPING) for the probes queued;
 * when it cannot be started they are failed with the reason. */
static void helper_need(cat_prober *p)
{
    if (p->hstate == HS_UP) {
        helper_flush(p);
        return;
    }
    if (p->hstate == HS_REAPING || ev_is_active(&p->respawn))
        return; /* reap_cb or respawn_cb starts the next one */
    if (ev_time() < p->retry_at || helper_start(p) < 0) {
        fail_queued(p, p->start_err);
        return;
    }
    helper_flush(p);
}

#if EV_CHILD_ENABLE
static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    cat_prober *p = w->data;
    ev_child_stop(loop, w);
    p->exited = true;
    p->exit_status = w->rstatus;
    if (p->hstate == HS_REAPING) {
        ev_timer_stop(loop, &p->reap);
        ev_timer_set(&p->reap, 0., 0.);
        ev_timer_start(loop, &p->reap);
    }
}
#endif

/* Whether the helper's status is known; polls waitpid off the default
 * loop. A helper reaped by someone else counts as exited, status unknown. */
static bool helper_exited(cat_prober *p)
{
    if (p->exited)
        return true;
#if EV_CHILD_ENABLE
    if (ev_is_default_loop(p->loop) && ev_is_active(&p->child))
        return false;
#endif
    int status = 0;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return false;
    p->exited = true;
    p->exit_status = r == p->pid ? status : -1;
    return true;
}

static void reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    cat_prober *p = w->data;
    if (!helper_exited(p)) {
        /* not gone yet: poll again, and make sure it goes */
        double waited = ev_time() - p->lost_at;
        if (waited > HELPER_EXIT_WAIT)
            kill(p->pid, SIGKILL);
        ev_timer_set(w, waited < 0.05 ? 0.002 : 0.05, 0.);
        ev_timer_start(loop, w);
        return;
    }
    int status = p->exit_status;
    if (!p->why[0]) {
        if (status < 0)
            snprintf(p->why, sizeof(p->why), "http helper exited");
        else if (WIFSIGNALED(status))
            snprintf(p->why, sizeof(p->why), "http helper exited: signal %d", WTERMSIG(status));
        else
            snprintf(p->why, sizeof(p->why), "http helper exited: status %d", WEXITSTATUS(status));
    }
    if (status >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        HMS_WARN("catalog: %s", p->why);
    p->st.helper_exits++;
    p->pid = 0;
    p->hstate = HS_DOWN;
    /* probes sent to it are lost with it */
    for (int i = 0; i < CAT_PROBES_MAX; i++)
        if (p->slots[i] && p->slots[i]->q == Q_SENT)
            finish(p->slots[i], CAT_CRITICAL, "%s", p->why);
    if (p->lost_at - p->started < HELPER_QUICK_DEATH) {
        /* A helper that dies young (crashing on every request, say) is not
         * restarted at the probes' pace: the next one starts after a delay
         * that doubles, and probes wait for it in the queue. */
        p->backoff = p->backoff ? p->backoff * 2 : HELPER_BACKOFF_MIN;
        if (p->backoff > HELPER_RESPAWN_MAX)
            p->backoff = HELPER_RESPAWN_MAX;
        ev_timer_set(&p->respawn, p->backoff, 0.);
        ev_timer_start(loop, &p->respawn);
        return;
    }
    if (p->qhead)
        helper_need(p);
}

static void respawn_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    cat_prober *p = w->data;
    if (p->qhead)
        helper_need(p);
}

/* UP -> REAPING: stop talking to the helper (killing it when it misbehaved,
 * why != NULL) and wait for it to exit. */
static void helper_lost(cat_prober *p, const char *why)
{
    if (p->hstate != HS_UP)
        return;
    if (why) {
        snprintf(p->why, sizeof(p->why), "%s", why);
        kill(p->pid, SIGKILL);
    }
    ev_io_stop(p->loop, &p->rio);
    ev_io_stop(p->loop, &p->wio);
    close(p->fd);
    p->fd = -1;
    p->inlen = p->outlen = p->outoff = 0;
    p->hstate = HS_REAPING;
    p->lost_at = ev_time();
    ev_timer_init(&p->reap, reap_cb, 0.001, 0.);
    p->reap.data = p;
    ev_timer_start(p->loop, &p->reap);
}

/* Writes what the socket takes, refilling the output buffer from the
 * queue; waits for writability when the socket is full. */
static void helper_flush(cat_prober *p)
{
    while (p->hstate == HS_UP) {
        while (p->outoff < p->outlen) {
            ssize_t n = send(p->fd, p->out + p->outoff, p->outlen - p->outoff,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                ev_io_start(p->loop, &p->wio);
                return;
            }
            if (n < 0) {
                helper_lost(p, NULL); /* it closed its end: reap_cb says why */
                return;
            }
            p->outoff += (size_t)n;
        }
        p->outlen = p->outoff = 0;
        while (p->qhead && p->qhead->flen <= sizeof(p->out) - p->outlen) {
            cat_probe *pr = p->qhead;
            memcpy(p->out + p->outlen, pr->frame, pr->flen);
            p->outlen += pr->flen;
            queue_remove(pr);
            pr->q = Q_SENT;
        }
        if (!p->outlen) {
            ev_io_stop(p->loop, &p->wio);
            return;
        }
    }
}

static void helper_wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    helper_flush(w->data);
}

static void on_response(cat_prober *p, const hms_http_resp *r)
{
    cat_probe *pr = p->slots[r->id & ((1u << SLOT_BITS) - 1)];
    if (!pr || pr->id != r->id) {
        p->st.late_answers++; /* its probe was cancelled */
        return;
    }
    if (pr->q != Q_SENT) {
        p->st.malformed++;
        helper_lost(p, "http helper answered a request it was not sent");
        return;
    }
    p->backoff = 0;
    if (r->status == 0)
        finish(pr, CAT_CRITICAL, "%s", r->error[0] ? r->error : "no HTTP response");
    else
        finish(pr, cat_health_http(r->status), "HTTP %u%s%s", (unsigned)r->status,
               r->line[0] ? ": " : "", r->line);
}

static void helper_rio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    cat_prober *p = w->data;
    ssize_t n = read(p->fd, p->in + p->inlen, sizeof(p->in) - p->inlen);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        helper_lost(p, NULL);
        return;
    }
    p->inlen += (size_t)n;
    size_t off = 0;
    while (p->hstate == HS_UP) {
        const uint8_t *pl;
        size_t plen, used;
        hms_http_resp r;
        int rc = hms_httpframe_next(p->in + off, p->inlen - off, &pl, &plen, &used);
        if (rc == -EAGAIN)
            break;
        if (rc != 0 || hms_http_resp_decode(pl, plen, &r) != 0) {
            p->st.malformed++;
            helper_lost(p, "http helper sent a malformed frame");
            return;
        }
        off += used;
        on_response(p, &r);
    }
    if (p->hstate != HS_UP)
        return;
    memmove(p->in, p->in + off, p->inlen - off);
    p->inlen -= off;
}

/* Ends the helper at shutdown: closing our end makes it exit; a helper
 * that does not within a moment is killed. Blocks at most ~0.2 s. */
static void helper_stop(cat_prober *p)
{
    if (p->hstate == HS_DOWN)
        return;
    ev_io_stop(p->loop, &p->rio);
    ev_io_stop(p->loop, &p->wio);
    ev_timer_stop(p->loop, &p->reap);
#if EV_CHILD_ENABLE
    if (ev_is_active(&p->child))
        ev_child_stop(p->loop, &p->child);
#endif
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    if (p->exited)
        goto done;
    for (int i = 0; i < 100; i++) {
        pid_t r = waitpid(p->pid, NULL, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR))
            goto done;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
        ;
done:
    p->pid = 0;
    p->hstate = HS_DOWN;
}

/* ---- the prober ---------------------------------------------------------- */

cat_prober *cat_prober_new(struct ev_loop *loop)
{
    cat_prober *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->loop = loop;
    p->fd = -1;
    p->hstate = HS_DOWN;
    ev_init(&p->reap, reap_cb);
    p->reap.data = p;
    ev_init(&p->respawn, respawn_cb);
    p->respawn.data = p;
#if EV_CHILD_ENABLE
    ev_child_init(&p->child, child_cb, 0, 0);
    p->child.data = p;
#endif
    return p;
}

void cat_prober_delete(cat_prober *p)
{
    if (!p)
        return;
    while (p->head)
        cat_probe_cancel(p->head);
    ev_timer_stop(p->loop, &p->respawn);
    helper_stop(p);
    free(p);
}

int cat_prober_helper_pid(const cat_prober *p)
{
    return p->hstate == HS_UP ? (int)p->pid : 0;
}

void cat_prober_get_stats(const cat_prober *p, cat_prober_stats *out)
{
    *out = p->st;
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    cat_probe *pr = w->data;
    cat_prober *p = pr->p;
    bool sent = pr->q == Q_SENT;
    finish(pr, CAT_CRITICAL, "timeout after %lu ms: http helper did not answer",
           (unsigned long)pr->timeout_ms);
    /* The helper enforces the timeout itself: a request it has had for
     * that long and not answered means it is stuck. */
    if (sent || p->hstate == HS_UP) {
        p->st.helper_stuck++;
        helper_lost(p, "http helper did not answer");
    }
}

int cat_probe_http(cat_prober *p, const char *url, uint32_t timeout_ms, cat_probe_done fn,
                   void *ctx, cat_probe **out)
{
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return -EINVAL;
    if (p->count >= CAT_PROBES_MAX)
        return -ENOSPC;
    int slot = -1;
    for (int i = 0; i < CAT_PROBES_MAX; i++) {
        int s = (int)((p->gen + (uint32_t)i) & (CAT_PROBES_MAX - 1));
        if (!p->slots[s]) {
            slot = s;
            break;
        }
    }
    if (slot < 0)
        return -ENOSPC;
    hms_http_req q;
    memset(&q, 0, sizeof(q));
    p->gen++;
    q.id = (p->gen << SLOT_BITS) | (uint32_t)slot;
    q.timeout_ms = timeout_ms ? timeout_ms : 1;
    if (q.timeout_ms > HMS_HTTP_TIMEOUT_MAX)
        q.timeout_ms = HMS_HTTP_TIMEOUT_MAX;
    if (strlen(url) > HMS_HTTP_URL_MAX)
        return -EINVAL;
    memcpy(q.url, url, strlen(url) + 1);
    uint8_t frame[HMS_HTTPFRAME_HDR + HMS_HTTPFRAME_MAX];
    size_t flen;
    int rc = hms_http_req_encode(&q, frame, sizeof(frame), &flen);
    if (rc < 0)
        return -EINVAL; /* a URL with bytes no request may carry */
    cat_probe *pr = probe_new(p, PROBE_HTTP, flen, fn, ctx);
    if (!pr)
        return -ENOMEM;
    pr->timeout_ms = timeout_ms;
    pr->id = q.id;
    pr->slot = slot;
    p->slots[slot] = pr;
    memcpy(pr->frame, frame, flen);
    pr->flen = flen;
    pr->q = Q_QUEUED;
    if (p->qtail)
        p->qtail->qnext = pr;
    else
        p->qhead = pr;
    pr->qprev = p->qtail;
    p->qtail = pr;
    ev_timer_init(&pr->tmo, guard_cb, (double)q.timeout_ms / 1000.0 + HELPER_GRACE, 0.);
    pr->tmo.data = pr;
    ev_timer_start(p->loop, &pr->tmo);
    helper_need(p);
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
    cat_probe *pr = probe_new(p, PROBE_TCP, 0, fn, ctx);
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
