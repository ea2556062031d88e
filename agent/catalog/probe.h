/*
 * One-shot health probes on the agent's loop: an HTTP GET through libcurl's
 * multi-socket interface (curl tells us which sockets to watch and when its
 * timer is due; libev watchers call curl_multi_socket_action), and a TCP
 * connect (non-blocking connect, ev_io for writability, ev_timer for the
 * timeout). Scheduling and the health state machine live elsewhere
 * (catalog.c, health.h); a probe only turns one attempt into a result.
 *
 * Results: HTTP 2xx passing, 429 warning, any other status, a transfer
 * error or the timeout critical; TCP connected passing, else critical.
 * The output of an HTTP probe is "HTTP <code>: <first line of the body>".
 * The done callback runs from the loop, never inside cat_probe_*(), and
 * exactly once unless the probe is cancelled first.
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

/* NULL when out of memory. libcurl is loaded by the first HTTP probe; if it
 * cannot be, that probe and the next ones are critical with the reason. */
cat_prober *cat_prober_new(struct ev_loop *loop);
/* Cancels every probe in flight (their callbacks do not run) and frees. */
void cat_prober_delete(cat_prober *p);

/* Starts a GET of url (http or https only). 0 and *out, or -EINVAL (bad
 * URL), -ENOSPC (CAT_PROBES_MAX), -ENOMEM. */
int cat_probe_http(cat_prober *p, const char *url, uint32_t timeout_ms, cat_probe_done fn,
                   void *ctx, cat_probe **out);
/* Starts a connect to an IP literal ("localhost" is 127.0.0.1). */
int cat_probe_tcp(cat_prober *p, const char *host, uint16_t port, uint32_t timeout_ms,
                  cat_probe_done fn, void *ctx, cat_probe **out);
/* Stops a probe in flight; its callback does not run. */
void cat_probe_cancel(cat_probe *pr);

#endif
