/*
 * Named timing profiles and the protocol's arithmetic (suspicion timeouts,
 * retransmit limits). The derivation of each figure is in docs/membership.md.
 */
#include "agent/swim/swim.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    swim_profile p;
} profiles[] = {
    /* Data-centre networks: RTTs well under 10 ms. Probes 1.43x as often as
     * memberlist's LAN profile, gives up on a silent target after 500 ms,
     * and keeps the minimum suspicion at a fixed 2 s floor up to
     * 10^(2 / 0.7) = 720 members (mult 1 * log10 n * 0.7 s overtakes it
     * there): a member paused 2 s is first accused 0.5 s into the pause at
     * the earliest, told at once, and its refutation goes out at network
     * speed when it resumes; a death is declared in under 4 s
     * (docs/membership.md). */
    {"lan",
     {.probe_interval_ms = 700,
      .probe_timeout_ms = 200,
      .indirect_checks = 3,
      .gossip_interval_ms = 200,
      .gossip_nodes = 3,
      .suspicion_mult = 1,
      .suspicion_floor_ms = 2000,
      .suspicion_max_mult = 6,
      .retransmit_mult = 4,
      .pushpull_interval_ms = 30000,
      .awareness_max = 8,
      .reconnect_interval_ms = 10000,
      .reconnect_timeout_ms = 24u * 3600u * 1000u,
      .mtu = 1350}},
    /* Links across regions: RTTs of 100-300 ms and more loss. Timeouts of
     * several RTTs, and a long floor: a WAN hiccup is not a death. */
    {"wan",
     {.probe_interval_ms = 2000,
      .probe_timeout_ms = 1000,
      .indirect_checks = 3,
      .gossip_interval_ms = 500,
      .gossip_nodes = 4,
      .suspicion_mult = 4,
      .suspicion_floor_ms = 10000,
      .suspicion_max_mult = 6,
      .retransmit_mult = 4,
      .pushpull_interval_ms = 60000,
      .awareness_max = 8,
      .reconnect_interval_ms = 30000,
      .reconnect_timeout_ms = 24u * 3600u * 1000u,
      .mtu = 1200}},
    /* Loopback clusters for tests and demos: everything fast. */
    {"local",
     {.probe_interval_ms = 200,
      .probe_timeout_ms = 80,
      .indirect_checks = 3,
      .gossip_interval_ms = 100,
      .gossip_nodes = 3,
      .suspicion_mult = 3,
      .suspicion_max_mult = 6,
      .retransmit_mult = 4,
      .pushpull_interval_ms = 10000,
      .awareness_max = 8,
      .reconnect_interval_ms = 2000,
      .reconnect_timeout_ms = 3600u * 1000u,
      .mtu = 1350}},
};

int swim_profile_by_name(const char *name, swim_profile *out)
{
    if (!name || !out)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
        if (strcmp(profiles[i].name, name) == 0) {
            *out = profiles[i].p;
            return 0;
        }
    }
    return -EINVAL;
}

/* memberlist's suspicionTimeout(): mult * max(1, log10(max(1, n))) * interval,
 * raised to the profile's floor. */
hms_time swim_suspicion_min(const swim_profile *p, size_t n)
{
    double scale = log10(n > 1 ? (double)n : 1.0);
    if (scale < 1.0)
        scale = 1.0;
    hms_time t =
        (hms_time)((double)p->suspicion_mult * scale * (double)HMS_MS(p->probe_interval_ms));
    hms_time floor = HMS_MS(p->suspicion_floor_ms);
    return t > floor ? t : floor;
}

hms_time swim_suspicion_max(const swim_profile *p, size_t n)
{
    return swim_suspicion_min(p, n) * (p->suspicion_max_mult ? p->suspicion_max_mult : 1);
}

/* Lifeguard: timeout = max - (log(c+1) / log(k+1)) * (max - min), never
 * below min. With no expected confirmations the timeout is min at once. */
hms_time swim_suspicion_timeout(uint32_t confirmations, uint32_t expected, hms_time min,
                                hms_time max)
{
    if (expected < 1 || max <= min)
        return min;
    double frac = log((double)confirmations + 1.0) / log((double)expected + 1.0);
    double raw = (double)max - frac * (double)(max - min);
    if (raw < (double)min)
        return min;
    return (hms_time)raw;
}

/* mult * (ceil(log10(n + 1)) + 1): memberlist's count plus one multiple.
 * With each copy going to a member not yet known to hold it, memberlist's
 * count still left one node in about 30 of a 64-node cluster without a
 * metadata update at 10 % loss (e^-(8 * 0.9) per node), until a push-pull;
 * the later copies ride on probes and acks, so they cost bytes, not
 * packets. */
uint32_t swim_retransmit_limit(const swim_profile *p, size_t n)
{
    uint32_t scale = (uint32_t)ceil(log10((double)n + 1.0));
    if (scale < 1)
        scale = 1;
    uint32_t lim = p->retransmit_mult * (scale + 1);
    return lim < 1 ? 1 : lim;
}
