/*
 * Cluster simulator: N membership cores in one process on a virtual clock
 * and a virtual network. Events (packet deliveries, push-pull exchanges,
 * timers) sit in a binary heap ordered by (time, sequence), so a run is a
 * pure function of its configuration and seed: a failing test prints the
 * seed and the run can be replayed exactly.
 *
 * The network delays each UDP packet by a uniform latency, drops it with
 * probability `loss`, duplicates it with probability `dup` (the copy takes
 * its own latency, which also reorders), and drops everything between nodes
 * of different partition groups. Push-pull is a reliable exchange: it fails
 * (reply NULL) across partitions and to stopped nodes. A paused node
 * (SIGSTOP) handles nothing; what arrives meanwhile is delivered when it
 * resumes, as a socket buffer would. With strict_trust, a node drops UDP
 * from keys it does not know yet, as a real agent's packet sealing does.
 */
#ifndef HMS_SIM_H
#define HMS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/swim/swim.h"

typedef struct sim sim_t;

/* Called for every SWIM_OUT_EVENT a node publishes. */
typedef void (*sim_event_fn)(void *ctx, sim_t *sim, size_t node, hms_time now,
                             const swim_output *o);

typedef struct sim_config {
    size_t n;
    uint64_t seed;
    swim_profile profile;
    hms_time latency_min, latency_max; /* one way */
    double loss;                       /* per UDP packet, 0..1 */
    double dup;                        /* per UDP packet, 0..1 */
    hms_time pp_fail_after;            /* a push-pull across a partition fails after this */
    /* As the agent's sealing does: a UDP packet from a key the receiver
     * neither holds in its member table nor met over a channel (push-pull)
     * is dropped before the core sees it. */
    bool strict_trust;
    sim_event_fn on_event;
    void *ctx;
} sim_config;

/* Fills c with defaults: lan profile, 0.2-1 ms latency, no loss. */
void sim_config_default(sim_config *c, size_t n, uint64_t seed);

sim_t *sim_new(const sim_config *c);
void sim_delete(sim_t *s);

/* Gives node i another name before it starts (to stage a name conflict). */
void sim_rename(sim_t *s, size_t i, const char *name);
/* Starts every node: node 0 at once, the others evenly over `spread`, each
 * joining through node 0. Runs the clock to the last start. */
void sim_start_all(sim_t *s, hms_time spread);
/* Starts node i now (creating its core) and joins it through the seeds. */
int sim_start(sim_t *s, size_t i, const size_t *seeds, size_t nseeds);
/* Stops node i at once (kill -9): its core is deleted, its traffic dropped. */
void sim_kill(sim_t *s, size_t i);
/* Starts a stopped node again with its persisted incarnation + 1. */
int sim_restart(sim_t *s, size_t i, const size_t *seeds, size_t nseeds);
/* Pauses node i for d from now. */
void sim_pause(sim_t *s, size_t i, hms_time d);
/* Graceful leave: the node keeps running until its leave has propagated,
 * then stops. */
void sim_leave(sim_t *s, size_t i);
/* Partition groups: group[i] for every node; NULL heals. */
void sim_partition(sim_t *s, const int *group);
void sim_set_loss(sim_t *s, double loss);

/* Runs every event up to and including time t. */
void sim_run_until(sim_t *s, hms_time t);
/* Runs until pred() holds (checked every `step`) or `limit`; returns whether
 * it held. */
bool sim_run_while(sim_t *s, hms_time limit, hms_time step, bool (*pred)(sim_t *, void *),
                   void *arg);

hms_time sim_now(const sim_t *s);
size_t sim_size(const sim_t *s);
bool sim_up(const sim_t *s, size_t i);          /* started and not stopped */
swim_t *sim_core(sim_t *s, size_t i);           /* NULL when stopped */
const char *sim_name(const sim_t *s, size_t i); /* "n<i>" */
void sim_key(const sim_t *s, size_t i, uint8_t key[SWIM_KEY_LEN]);

/* How node `observer` sees node `subject`; -1 when unknown or observer down. */
int sim_status(sim_t *s, size_t observer, size_t subject);
/* Number of running nodes that see every running node as alive and know
 * exactly that many alive members. */
bool sim_converged(sim_t *s);

/* Traffic totals over all nodes (UDP only) and push-pull exchanges. */
typedef struct sim_totals {
    uint64_t packets, bytes, pushpulls, pushpull_bytes;
    uint64_t delivered, dropped;
    uint64_t events;
} sim_totals;
void sim_get_totals(const sim_t *s, sim_totals *t);

#endif
