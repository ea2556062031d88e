/*
 * The audit subsystem inside the agent: settings, start and stop, the
 * agent's own lifecycle entries. Settings come from the agent's
 * configuration (agent/config.h: --audit-* flags, audit_* config keys, the
 * HMS_AUDIT_* environment); HMS_AUDIT_FAULT=op:n:err[:c] injects file I/O
 * faults for tests (agent/audit/audit.c).
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

int hms_audit_start(struct hms_agent *ag, char *err, size_t errlen)
{
    hms_audit_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.data_dir = ag->data_dir;
    cfg.node_sk = ag->ed_sk;
    cfg.node_name = ag->name;
    /* Without a configuration (tests), zeros: hms_audit_new's defaults. */
    hms_config_audit set = {0};
    if (ag->cfg)
        set = ag->cfg->audit;
    cfg.durable = set.durable;
    cfg.seal_entries = set.seal_entries;
    cfg.seal_age_ms = set.seal_ms;
    cfg.replicas = set.replicas;
    cfg.commit_delay_us = set.commit_us;
    cfg.retain_age_s = set.retain_s;
    cfg.retain_bytes = set.retain_bytes;
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
