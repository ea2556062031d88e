/*
 * One-shot health probes on the agent's loop: an HTTP GET, made by the
 * hms-http helper process (libcurl lives there, not in the agent; the
 * agent talks to it over a socketpair), and a TCP connect (non-blocking
 * connect, ev_io for writability, ev_timer for the timeout). Scheduling and the health state machine live elsewhere
 * (catalog.c, health.h); a probe only turns one attempt into a result.
 *
 * Results: HTTP 2xx passing, 429 warning, any other status, a transfer
 * error or the timeout critical; TCP connected passing, else critical.
 * The output of an HTTP probe is "HTTP <code>: <first line of the body>".
 * The done callback runs from the loop, never inside cat_probe_*(), and
 * exactly once unless the probe is cancelled first.
 *
 * The helper is $HMS_HTTP_HELPER, else hms-http next to the running
 * executable. When it cannot be started, HTTP probes are critical with the
 * reason ("cannot start '/usr/bin/hms-http': No such file or directory")
 * and it is tried again at a later probe, after a back-off from 0.25 s to
 * 5 s. When it dies, the probes it had are critical ("http helper exited:
 * signal 9") and the next probe starts a new one. A helper that sends a
 * malformed frame or leaves a probe unanswered 2 s past its timeout is
 * killed and replaced.
 */
#ifndef HMS_CATALOG_PROBE_H
#define HMS_CATALOG_PROBE_H

#include <stdint.h>

#include "proto/catalog.h"

struct ev_loop;
typedef struct cat_prober cat_prober;
typedef struct cat_probe cat_probe;

#define CAT_PROBE_OUTPUT_MAX 127
#define CAT_PROBES_MAX 1024 /* in flight per prober */
#define CAT_PROBE_BODY_MAX (64 * 1024) /* response body read by an HTTP probe */

typedef void (*cat_probe_done)(void *ctx, cat_status st, const char *output);

/* NULL when out of memory. Starts no process: the first HTTP probe does. */
cat_prober *cat_prober_new(struct ev_loop *loop);
/* Cancels every probe in flight (their callbacks do not run), closes the
 * helper's socket, waits up to ~0.2 s for it to exit (then kills it) and
 * frees. */
void cat_prober_delete(cat_prober *p);

/* Counters of the helper's life, for operators and tests. */
typedef struct cat_prober_stats {
    uint64_t helper_starts;         /* started (exec succeeded) */
    uint64_t helper_start_failures; /* fork or exec failed */
    uint64_t helper_exits;          /* reaped, whatever the cause */
    uint64_t helper_stuck;          /* killed for a probe unanswered past its timeout */
    uint64_t malformed;             /* frames refused; the helper was killed */
    uint64_t late_answers;          /* answers to probes cancelled meanwhile */
} cat_prober_stats;

void cat_prober_get_stats(const cat_prober *p, cat_prober_stats *out);
/* pid of the running helper, 0 when none is running. */
int cat_prober_helper_pid(const cat_prober *p);

/* Starts a GET of url (http or https only, at most 1024 printable bytes,
 * no spaces). 0 and *out, or -EINVAL (bad URL), -ENOSPC (CAT_PROBES_MAX),
 * -ENOMEM. A helper that cannot be started is not an error here: the probe
 * completes critical with the reason. */
int cat_probe_http(cat_prober *p, const char *url, uint32_t timeout_ms, cat_probe_done fn,
                   void *ctx, cat_probe **out);
/* Starts a connect to an IP literal ("localhost" is 127.0.0.1). */
int cat_probe_tcp(cat_prober *p, const char *host, uint16_t port, uint32_t timeout_ms,
                  cat_probe_done fn, void *ctx, cat_probe **out);
/* Stops a probe in flight; its callback does not run. */
void cat_probe_cancel(cat_probe *pr);

#endif
