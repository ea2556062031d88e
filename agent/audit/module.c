/*
 * The audit subsystem inside the agent: settings, start and stop, the
 * agent's own lifecycle entries. Settings come from the environment (the
 * agent's config file is owned by the runtime):
 *   HMS_AUDIT_DURABLE=1           admin and business appends wait for fsync
 *   HMS_AUDIT_SEAL_ENTRIES=N      seal after N entries (4096)
 *   HMS_AUDIT_SEAL_MS=N           seal an open segment after N ms (1000)
 *   HMS_AUDIT_REPLICAS=N          R, copies held by others (3)
 *   HMS_AUDIT_COMMIT_US=N         group-commit window before fsync (0)
 *   HMS_AUDIT_RETAIN_S=N          keep replicated segments locally N s (0: forever)
 *   HMS_AUDIT_RETAIN_BYTES=N      ... or while the own log is under N bytes
 *   HMS_AUDIT_FAULT=op:n:err[:c]  file I/O fault injection (tests)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/audit/audit_priv.h"
#include "agent/audit/repl.h"
#include "agent/log.h"

int hms_audit_ops_register(struct hms_agent *ag, hms_audit *a); /* agent/api/ops_audit.c */

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !v[0])
        return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end) {
        HMS_WARN("audit: ignoring %s='%s' (not a number)", name, v);
        return dflt;
    }
    return x;
}

int hms_audit_start(struct hms_agent *ag, char *err, size_t errlen)
{
    hms_audit_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.data_dir = ag->data_dir;
    cfg.node_sk = ag->ed_sk;
    cfg.node_name = ag->name;
    cfg.durable = env_u64("HMS_AUDIT_DURABLE", 0) != 0;
    cfg.seal_entries = (uint32_t)env_u64("HMS_AUDIT_SEAL_ENTRIES", 4096);
    cfg.seal_age_ms = (uint32_t)env_u64("HMS_AUDIT_SEAL_MS", 1000);
    cfg.replicas = (uint32_t)env_u64("HMS_AUDIT_REPLICAS", 3);
    cfg.commit_delay_us = (uint32_t)env_u64("HMS_AUDIT_COMMIT_US", 0);
    cfg.retain_age_s = env_u64("HMS_AUDIT_RETAIN_S", 0);
    cfg.retain_bytes = env_u64("HMS_AUDIT_RETAIN_BYTES", 0);
    hms_audit *a = NULL;
    char why[400];
    int r = hms_audit_new(ag->loop, &cfg, &a, why, sizeof(why));
    if (r) {
        snprintf(err, errlen, "cannot open the audit log: %s", why);
        return r;
    }
    a->agent = ag;
    r = audit_repl_start(a, ag, err, errlen);
    if (r == 0) {
        r = hms_audit_ops_register(ag, a);
        if (r)
            snprintf(err, errlen, "cannot register audit operations: %s", strerror(-r));
    }
    if (r) {
        audit_repl_stop(a);
        hms_audit_delete(a);
        return r;
    }
    ag->audit = a;
    char addr[HMS_ADDR_STRLEN];
    hms_addr_format(&ag->advertise, addr, sizeof(addr));
    hms_audit_stats st;
    hms_audit_get_stats(a, &st);
    hms_audit_emit(a, "agent.start", NULL, NULL,
                   json_pack("{s:s, s:s, s:I}", "node", ag->name, "address", addr, "incarnation",
                             (json_int_t)ag->incarnation));
    HMS_INFO("audit: log open at sequence %llu (%llu sealed segments), %zu logs held",
             (unsigned long long)st.next_seq, (unsigned long long)st.sealed_segments,
             a->store.nlogs);
    return 0;
}

void hms_audit_stop(struct hms_agent *ag)
{
    hms_audit *a = ag->audit;
    if (!a)
        return;
    hms_audit_emit(a, ag->leaving ? "agent.leave" : "agent.stop", NULL, NULL,
                   json_pack("{s:s}", "node", ag->name));
    audit_repl_stop(a);
    ag->audit = NULL;
    hms_audit_delete(a);
}
