/*
 * hms-sim: runs a simulated cluster and prints what matters for the
 * membership protocol's tuning: convergence time after a join, failure
 * detection time (median and max over observers), false deaths, and traffic
 * per node. Every run is reproducible from --seed.
 *
 *   hms-sim --n 128 --kill 1 --duration 90
 *   hms-sim --n 64 --loss 0.1 --pause-every 30 --pause-for 2000 --duration 600
 *   hms-sim --n 64 --partition 0.33 --partition-at 20 --partition-for 300 --duration 420
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define KILL_MAX 64

typedef struct run {
    size_t n;
    size_t kills;
    bool kill_done;
    bool trace; /* print each false death and pause */
    size_t killed[KILL_MAX];
    hms_time kill_at;
    hms_time *dead_seen; /* [kill][observer], 0 = not yet */
    hms_time suspect_first[KILL_MAX]; /* first accusation of each killed node */
    uint64_t false_deaths, false_suspects;
    sim_t *sim;
} run;

static void on_event(void *ctx, sim_t *sim, size_t node, hms_time now, const swim_output *o)
{
    run *r = ctx;
    if (o->event != SWIM_EV_DEAD && o->event != SWIM_EV_SUSPECT)
        return;
    const char *name = o->member->name;
    size_t subj = (size_t)strtoul(name + 1, NULL, 10);
    bool killed = false;
    for (size_t k = 0; k < r->kills; k++) {
        if (r->kill_done && r->killed[k] == subj) {
            killed = true;
            if (o->event == SWIM_EV_DEAD && r->dead_seen[k * r->n + node] == 0)
                r->dead_seen[k * r->n + node] = now;
            if (o->event == SWIM_EV_SUSPECT && r->suspect_first[k] == 0)
                r->suspect_first[k] = now;
        }
    }
    if (!killed && sim_up(sim, subj)) {
        if (o->event == SWIM_EV_DEAD) {
            r->false_deaths++;
            if (r->trace)
                printf("false death: %s sees %s dead at %.3f s (incarnation %llu)\n",
                       sim_name(sim, node), name, (double)now / 1e6,
                       (unsigned long long)o->member->incarnation);
        } else
            r->false_suspects++;
    }
}

static int cmp_time(const void *a, const void *b)
{
    hms_time x = *(const hms_time *)a, y = *(const hms_time *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: hms-sim [--n N] [--seed S] [--profile lan|wan|local] [--duration SEC]\n"
                    "  [--loss P] [--dup P] [--latency-ms MIN,MAX] [--join-spread SEC]\n"
                    "  [--kill K] [--kill-at SEC] [--pause-every SEC] [--pause-for MS]\n"
                    "  [--partition FRACTION] [--partition-at SEC] [--partition-for SEC]\n"
                    "  [--probe-interval MS] [--probe-timeout MS] [--indirect K]\n"
                    "  [--gossip-interval MS] [--gossip-nodes K] [--suspicion-mult M]\n"
                    "  [--suspicion-max-mult M] [--retransmit-mult M] [--pushpull-interval MS]\n"
                    "  [--suspicion-floor MS] [--trace] [--progress] [--strict-trust]\n"
                    "--strict-trust drops packets from keys a node has not learned yet, as the\n"
                    "  agent's sealing does\n"
                    "--trace prints every false death and pause; --progress prints every 2 s the\n"
                    "  fewest and most alive members any node sees, and who misses whom\n"
                    "memberlist's LAN timings: --probe-interval 1000 --probe-timeout 500\n"
                    "  --suspicion-mult 4 --suspicion-floor 0\n");
}

int main(int argc, char **argv)
{
    size_t n = 64, kills = 0;
    uint64_t seed = 1;
    const char *profile = "lan";
    double duration = 60, loss = 0, dup = 0, kill_at = 20, pause_every = 0, pause_for = 2000;
    double part = 0, part_at = 20, part_for = 60, lat_min = 0.2, lat_max = 1.0, spread = 2;
    bool trace = false, progress = false, strict = false;
    long ov[11];
    for (int i = 0; i < 11; i++)
        ov[i] = -1;
    static const struct option opts[] = {{"n", 1, 0, 'n'},
                                         {"seed", 1, 0, 's'},
                                         {"profile", 1, 0, 'p'},
                                         {"duration", 1, 0, 'd'},
                                         {"loss", 1, 0, 'l'},
                                         {"dup", 1, 0, 'u'},
                                         {"latency-ms", 1, 0, 'L'},
                                         {"join-spread", 1, 0, 'j'},
                                         {"kill", 1, 0, 'k'},
                                         {"kill-at", 1, 0, 'K'},
                                         {"pause-every", 1, 0, 'e'},
                                         {"pause-for", 1, 0, 'f'},
                                         {"partition", 1, 0, 'P'},
                                         {"partition-at", 1, 0, 'A'},
                                         {"partition-for", 1, 0, 'F'},
                                         {"probe-interval", 1, 0, 1000},
                                         {"probe-timeout", 1, 0, 1001},
                                         {"indirect", 1, 0, 1002},
                                         {"gossip-interval", 1, 0, 1003},
                                         {"gossip-nodes", 1, 0, 1004},
                                         {"suspicion-mult", 1, 0, 1005},
                                         {"suspicion-max-mult", 1, 0, 1006},
                                         {"retransmit-mult", 1, 0, 1007},
                                         {"pushpull-interval", 1, 0, 1008},
                                         {"suspicion-floor", 1, 0, 1009},
                                         {"trace", 0, 0, 't'},
                                         {"progress", 0, 0, 'g'},
                                         {"strict-trust", 0, 0, 'S'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            n = strtoul(optarg, NULL, 10);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 0);
            break;
        case 'p':
            profile = optarg;
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'l':
            loss = atof(optarg);
            break;
        case 'u':
            dup = atof(optarg);
            break;
        case 'L':
            if (sscanf(optarg, "%lf,%lf", &lat_min, &lat_max) != 2) {
                fprintf(stderr, "error: bad --latency-ms '%s'\n", optarg);
                return 2;
            }
            break;
        case 'j':
            spread = atof(optarg);
            break;
        case 'k':
            kills = strtoul(optarg, NULL, 10);
            break;
        case 'K':
            kill_at = atof(optarg);
            break;
        case 'e':
            pause_every = atof(optarg);
            break;
        case 'f':
            pause_for = atof(optarg);
            break;
        case 'P':
            part = atof(optarg);
            break;
        case 'A':
            part_at = atof(optarg);
            break;
        case 'F':
            part_for = atof(optarg);
            break;
        case 't':
            trace = true;
            break;
        case 'g':
            progress = true;
            break;
        case 'S':
            strict = true;
            break;
        case 'h':
            usage();
            return 0;
        default:
            if (c >= 1000 && c <= 1009) {
                ov[c - 1000] = strtol(optarg, NULL, 10);
                break;
            }
            usage();
            return 2;
        }
    }
    if (n < 2 || kills >= n || kills > KILL_MAX) {
        fprintf(stderr, "error: need n >= 2 and kill < n (at most %d)\n", KILL_MAX);
        return 2;
    }
    sim_config cfg;
    sim_config_default(&cfg, n, seed);
    if (swim_profile_by_name(profile, &cfg.profile) < 0) {
        fprintf(stderr, "error: unknown profile '%s'\n", profile);
        return 2;
    }
    swim_profile *pf = &cfg.profile;
    uint32_t *fields[] = {&pf->probe_interval_ms,  &pf->probe_timeout_ms, &pf->indirect_checks,
                          &pf->gossip_interval_ms, &pf->gossip_nodes,     &pf->suspicion_mult,
                          &pf->suspicion_max_mult, &pf->retransmit_mult,  &pf->pushpull_interval_ms,
                          &pf->suspicion_floor_ms};
    for (int i = 0; i < 10; i++)
        if (ov[i] >= 0)
            *fields[i] = (uint32_t)ov[i];
    cfg.loss = loss;
    cfg.dup = dup;
    cfg.strict_trust = strict;
    cfg.latency_min = (hms_time)(lat_min * 1000);
    cfg.latency_max = (hms_time)(lat_max * 1000);
    run r;
    memset(&r, 0, sizeof(r));
    r.n = n;
    r.kills = kills;
    r.kill_at = (hms_time)(kill_at * 1e6);
    r.trace = trace;
    r.dead_seen = calloc(kills ? kills * n : 1, sizeof(*r.dead_seen));
    cfg.on_event = on_event;
    cfg.ctx = &r;
    sim_t *sim = sim_new(&cfg);
    if (!sim || !r.dead_seen) {
        fprintf(stderr, "error: cannot create a simulation of %zu nodes\n", n);
        return 1;
    }
    r.sim = sim;

    /* Nodes start over `spread` seconds, each joining through node 0. */
    sim_start_all(sim, (hms_time)(spread * 1e6));
    hms_time end = (hms_time)(duration * 1e6);
    hms_time conv = 0;
    hms_time step = HMS_MS(100);
    hms_time next_pause = pause_every > 0 ? (hms_time)(pause_every * 1e6) : end + 1;
    size_t pause_node = n / 2;
    int *groups = NULL;
    bool parted = false, healed = false;
    hms_time heal_conv = 0;
    sim_totals t0 = {0};
    hms_time t0_at = 0;
    uint64_t rng = seed;
    while (sim_now(sim) < end) {
        hms_time now = sim_now(sim);
        if (!conv && sim_converged(sim))
            conv = now;
        /* Traffic is measured from 10 s after convergence, once the join
         * gossip has drained. */
        if (conv && !t0_at && now >= conv + HMS_SEC(10)) {
            sim_get_totals(sim, &t0);
            t0_at = now;
        }
        if (kills && now >= r.kill_at && !r.kill_done) {
            r.kill_done = true;
            for (size_t k = 0; k < kills; k++) {
                r.killed[k] = n - 1 - k;
                sim_kill(sim, r.killed[k]);
            }
        }
        if (now >= next_pause) {
            /* A different node each time, never one of the killed. */
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            pause_node = (size_t)((rng >> 33) % (n - kills));
            sim_pause(sim, pause_node, (hms_time)(pause_for * 1000));
            if (r.trace)
                printf("pause: %s at %.3f s\n", sim_name(sim, pause_node), (double)now / 1e6);
            next_pause += (hms_time)(pause_every * 1e6);
        }
        if (part > 0 && !parted && now >= (hms_time)(part_at * 1e6)) {
            groups = calloc(n, sizeof(*groups));
            for (size_t i = 0; groups && i < n; i++)
                groups[i] = i < (size_t)(part * (double)n) ? 1 : 0;
            sim_partition(sim, groups);
            parted = true;
        }
        if (parted && !healed && now >= (hms_time)((part_at + part_for) * 1e6)) {
            sim_partition(sim, NULL);
            healed = true;
        }
        if (healed && !heal_conv && sim_converged(sim))
            heal_conv = now;
        if (progress && now % HMS_SEC(2) < step) {
            uint32_t lo = UINT32_MAX, hi = 0;
            uint64_t sus = 0;
            for (size_t o = 0; o < n; o++) {
                if (!sim_core(sim, o))
                    continue;
                swim_stats st;
                swim_get_stats(sim_core(sim, o), &st);
                lo = st.members_alive < lo ? st.members_alive : lo;
                hi = st.members_alive > hi ? st.members_alive : hi;
                sus += st.members_suspect;
            }
            printf("%.1f s: alive seen min %u max %u, suspect entries %llu\n", (double)now / 1e6,
                   lo, hi, (unsigned long long)sus);
            int shown = 0; /* the first few stragglers only */
            for (size_t o = 0; o < n && lo < hi && shown < 8; o++) {
                for (size_t j = 0; sim_core(sim, o) && j < n && shown < 8; j++) {
                    uint64_t seen = 0, own = 0;
                    int st = swim_member_status(sim_core(sim, o), sim_name(sim, j), &seen);
                    if (st == SWIM_ALIVE || !sim_core(sim, j))
                        continue;
                    swim_member_status(sim_core(sim, j), sim_name(sim, j), &own);
                    shown++;
                    printf("  %s sees %s as %s at incarnation %llu (it has %llu)\n",
                           sim_name(sim, o), sim_name(sim, j),
                           st < 0 ? "unknown" : swim_status_name(st), (unsigned long long)seen,
                           (unsigned long long)own);
                }
            }
        }
        sim_run_until(sim, now + step);
    }
    sim_totals t1;
    sim_get_totals(sim, &t1);
    double secs = t0_at ? (double)(sim_now(sim) - t0_at) / 1e6 : 0;
    printf("nodes=%zu profile=%s seed=%llu duration_s=%.0f loss=%.2f\n", n, profile,
           (unsigned long long)seed, duration, loss);
    printf("probe_ms=%u timeout_ms=%u gossip_ms=%u x%u suspicion_mult=%u max_mult=%u "
           "floor_ms=%u retransmit_mult=%u\n",
           pf->probe_interval_ms, pf->probe_timeout_ms, pf->gossip_interval_ms, pf->gossip_nodes,
           pf->suspicion_mult, pf->suspicion_max_mult, pf->suspicion_floor_ms, pf->retransmit_mult);
    if (conv)
        printf("converged_s=%.2f (joins spread over %.1f s)\n", (double)conv / 1e6, spread);
    else
        printf("converged_s=never\n");
    for (size_t k = 0; k < kills; k++) {
        hms_time *v = calloc(n, sizeof(*v));
        size_t m = 0, missing = 0;
        for (size_t o = 0; o < n; o++) {
            bool victim = false;
            for (size_t q = 0; q < kills; q++)
                victim |= r.killed[q] == o;
            if (victim)
                continue;
            if (r.dead_seen[k * n + o])
                v[m++] = r.dead_seen[k * n + o] - r.kill_at;
            else
                missing++;
        }
        qsort(v, m, sizeof(*v), cmp_time);
        if (m)
            printf("detect node=%zu suspect_s=%.2f first_s=%.2f median_s=%.2f max_s=%.2f "
                   "missing=%zu\n",
                   r.killed[k],
                   r.suspect_first[k] ? (double)(r.suspect_first[k] - r.kill_at) / 1e6 : -1.0,
                   (double)v[0] / 1e6, (double)v[m / 2] / 1e6, (double)v[m - 1] / 1e6, missing);
        else
            printf("detect node=%zu never (missing=%zu)\n", r.killed[k], missing);
        free(v);
    }
    if (part > 0)
        printf("partition heal_converged_s=%s%.2f\n", heal_conv ? "" : "never ",
               heal_conv ? (double)(heal_conv - (hms_time)((part_at + part_for) * 1e6)) / 1e6
                         : 0.0);
    printf("false_suspicions=%llu false_deaths=%llu\n", (unsigned long long)r.false_suspects,
           (unsigned long long)r.false_deaths);
    if (secs > 0)
        printf("per_node_per_s: udp_packets_out=%.2f udp_bytes_out=%.0f pushpull_bytes=%.0f "
               "(window of %.0f s from 10 s after convergence)\n",
               (double)(t1.packets - t0.packets) / (double)n / secs,
               (double)(t1.bytes - t0.bytes) / (double)n / secs,
               (double)(t1.pushpull_bytes - t0.pushpull_bytes) / (double)n / secs, secs);
    free(groups);
    free(r.dead_seen);
    sim_delete(sim);
    return 0;
}
