/*
 * The catalog subsystem on the agent's loop (see catalog.h): local
 * instances and their check schedules, publication of this node's
 * (version, digest) in member meta, fetching of other members' sets over the
 * channel RPC, member status tracking, watches, the services directory, and
 * the single place where catalog events reach the audit log.
 */
#include "agent/catalog/catalog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "agent/agent.h"
#include "agent/audit/audit.h"
#include "agent/catalog/probe.h"

typedef struct cat_local cat_local;

typedef struct cat_check_rt {
    cat_check_def def;
    char url[CAT_CHECK_TARGET_MAX + CAT_ADDR_MAX + 16]; /* HTTP: resolved URL */
    char host[CAT_ADDR_MAX + 1];                         /* TCP */
    uint16_t port;
    cat_health health;
    char output[CAT_CHECK_OUTPUT_MAX + 1];
    ev_timer timer; /* interval (HTTP, TCP) or expiry (TTL) */
    cat_probe *probe;
    cat_local *owner;
} cat_check_rt;

struct cat_local {
    char id[CAT_ID_MAX + 1];
    char *source; /* file path, or NULL for the socket */
    size_t nchecks;
    cat_check_rt checks[CAT_CHECKS_MAX];
    hms_cat *c;
};

typedef struct fetch_rec {
    char node[CAT_NODE_MAX + 1];
    bool inflight;
    uint32_t failures;
    double next_try; /* ev_now time */
} fetch_rec;

/* Context of one fetch in flight; outlives the catalog if the channel pool
 * completes the call after hms_catalog_stop (c is then NULL). */
typedef struct fetch_call {
    hms_cat *c;
    char node[CAT_NODE_MAX + 1];
    struct fetch_call *next;
} fetch_call;

typedef struct watch_slot {
    cat_change_fn fn;
    void *ctx;
    int handle;
} watch_slot;

struct hms_catalog {
    hms_agent *agent;
    struct ev_loop *loop;
    cat_view *view;
    cat_prober *prober;
    cat_local **locals; /* sorted by id, parallel to the view's own set */
    size_t nlocals;

    fetch_rec *fetch;
    size_t nfetch, capfetch;
    unsigned inflight;
    fetch_call *calls;
    ev_timer sweep;

    ev_timer publish; /* coalesces meta updates */
    ev_timer notify;  /* coalesces watch notifications */
    ev_timer boot;    /* first load of the services dir, once every module runs */
    ev_signal hup;

    watch_slot *watches;
    size_t nwatches;
    int next_handle;

    char *services_dir;
    bool version_warned;
    cat_stats stats;
};

/* ---- helpers ------------------------------------------------------------- */

static uint64_t stamp_now(void)
{
    /* Versions start from wall-clock microseconds so that a restarted node
     * (which lost its counter) still advertises a newer version than any
     * copy of its old set held by others. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

/*
 * The last version is kept in <data_dir>/catalog.version so that a node
 * whose clock went back across a restart still starts above the version
 * others hold. Best effort: without the file the clock alone is used.
 */
static uint64_t version_load(hms_agent *a)
{
    char path[PATH_MAX], buf[32];
    if (hms_agent_path(a, "catalog.version", path, sizeof(path)))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    return (end != buf && (*end == '\n' || *end == '\0')) ? (uint64_t)v : 0;
}

static void version_save(hms_cat *c, uint64_t v)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], buf[32];
    if (hms_agent_path(c->agent, "catalog.version", path, sizeof(path)))
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)v);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, buf, (size_t)len) == len;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) != 0) {
        if (!c->version_warned)
            HMS_WARN("catalog: cannot write '%s': %s", path, strerror(errno));
        c->version_warned = true;
        unlink(tmp);
    }
}

static void schedule_publish(hms_cat *c)
{
    if (!ev_is_active(&c->publish)) {
        ev_timer_set(&c->publish, 0.01, 0.);
        ev_timer_start(c->loop, &c->publish);
    }
}

static void schedule_notify(hms_cat *c)
{
    if (!ev_is_active(&c->notify)) {
        ev_timer_set(&c->notify, 0., 0.);
        ev_timer_start(c->loop, &c->notify);
    }
}

static void local_changed(hms_cat *c)
{
    schedule_publish(c);
    schedule_notify(c);
}

/*
 * The one place catalog events leave the subsystem: an audit entry (when
 * the audit log runs) and a log line. fields is stolen.
 */
static void catalog_emit_event(hms_cat *c, const char *kind, const hms_audit_actor *actor,
                               json_t *fields)
{
    char *text = fields ? json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    HMS_INFO("catalog: %s %s", kind, text ? text : "");
    free(text);
    if (c->agent->audit)
        hms_audit_emit(c->agent->audit, kind, NULL, actor, fields);
    else
        json_decref(fields);
}

static json_t *instance_fields(const cat_instance *x)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(x->id));
    json_object_set_new(o, "service", json_string(x->name));
    json_object_set_new(o, "address", json_string(x->address));
    json_object_set_new(o, "port", json_integer(x->port));
    return o;
}

static size_t local_pos(const hms_cat *c, const char *id, bool *found)
{
    size_t lo = 0, hi = c->nlocals;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(c->locals[mid]->id, id);
        if (r == 0) {
            *found = true;
            return mid;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* ---- health -------------------------------------------------------------- */

static void check_start(cat_check_rt *ck);

/* Recomputes an instance's status from its checks and records a change. */
static void instance_reevaluate(cat_local *l, cat_check_rt *cause, cat_status before)
{
    hms_cat *c = l->c;
    cat_status st[CAT_CHECKS_MAX];
    for (size_t i = 0; i < l->nchecks; i++)
        st[i] = l->checks[i].health.status;
    cat_status worst = cat_health_worst(st, (int)l->nchecks);
    bool changed = false;
    const cat_instance *x = cat_view_local_get(c->view, l->id);
    cat_status old = x ? (cat_status)x->status : worst;
    cat_view_local_status(c->view, l->id, worst, stamp_now(), &changed);
    c->stats.check_transitions++;
    json_t *f = x ? instance_fields(x) : json_object();
    json_object_set_new(f, "check", json_string(cat_check_kind_name(cause->def.kind)));
    json_object_set_new(f, "check_from", json_string(cat_status_name(before)));
    json_object_set_new(f, "check_to", json_string(cat_status_name(cause->health.status)));
    json_object_set_new(f, "from", json_string(cat_status_name(old)));
    json_object_set_new(f, "to", json_string(cat_status_name(worst)));
    json_object_set_new(f, "output", json_string(cause->output));
    catalog_emit_event(c, "health.change", NULL, f);
    if (changed)
        local_changed(c);
}

static void probe_done(void *ctx, cat_status result, const char *output)
{
    cat_check_rt *ck = ctx;
    ck->probe = NULL;
    ck->owner->c->stats.checks_run++;
    snprintf(ck->output, sizeof(ck->output), "%s", output);
    cat_status before = ck->health.status;
    if (cat_health_result(&ck->health, result))
        instance_reevaluate(ck->owner, ck, before);
}

static void check_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    cat_check_rt *ck = w->data;
    hms_cat *c = ck->owner->c;
    if (ck->def.kind == CAT_CHECK_TTL) {
        cat_status before = ck->health.status;
        if (before == CAT_CRITICAL)
            return; /* keep what the service said when it reported failure */
        snprintf(ck->output, sizeof(ck->output), "ttl of %u ms expired without an update",
                 ck->def.ttl_ms);
        if (cat_health_force(&ck->health, CAT_CRITICAL))
            instance_reevaluate(ck->owner, ck, before);
        return;
    }
    /* repeat timer: the next run is already scheduled */
    if (ck->probe)
        return; /* the previous probe is still running (timeout > interval) */
    int rc;
    if (ck->def.kind == CAT_CHECK_HTTP)
        rc = cat_probe_http(c->prober, ck->url, ck->def.timeout_ms, probe_done, ck, &ck->probe);
    else
        rc = cat_probe_tcp(c->prober, ck->host, ck->port, ck->def.timeout_ms, probe_done, ck,
                           &ck->probe);
    if (rc) {
        ck->probe = NULL;
        snprintf(ck->output, sizeof(ck->output), "cannot start probe: %s", strerror(-rc));
        cat_status before = ck->health.status;
        if (cat_health_result(&ck->health, CAT_CRITICAL))
            instance_reevaluate(ck->owner, ck, before);
    }
}

/* Resolves targets and starts the schedule of one check. */
static void check_start(cat_check_rt *ck)
{
    hms_cat *c = ck->owner->c;
    const cat_instance *x = cat_view_local_get(c->view, ck->owner->id);
    bool v6 = x && strchr(x->address, ':');
    ev_init(&ck->timer, check_timer_cb);
    ck->timer.data = ck;
    switch (ck->def.kind) {
    case CAT_CHECK_HTTP:
        if (ck->def.target[0] == '/')
            snprintf(ck->url, sizeof(ck->url), "http://%s%s%s:%u%s", v6 ? "[" : "", x->address,
                     v6 ? "]" : "", x->port, ck->def.target);
        else
            snprintf(ck->url, sizeof(ck->url), "%s", ck->def.target);
        break;
    case CAT_CHECK_TCP:
        if (ck->def.target[0]) {
            hms_addr a;
            char buf[HMS_ADDR_STRLEN];
            hms_addr_parse(ck->def.target, 0, &a);
            hms_addr_format(&a, buf, sizeof(buf));
            /* the host part without brackets or port */
            char *colon = strrchr(buf, ':');
            if (colon)
                *colon = '\0';
            const char *h = buf[0] == '[' ? buf + 1 : buf;
            size_t hl = strlen(h);
            if (hl && h[hl - 1] == ']')
                hl--;
            snprintf(ck->host, sizeof(ck->host), "%.*s", (int)hl, h);
            ck->port = a.port;
        } else {
            snprintf(ck->host, sizeof(ck->host), "%s", x->address);
            ck->port = x->port;
        }
        break;
    case CAT_CHECK_TTL:
        ev_timer_set(&ck->timer, ck->def.ttl_ms / 1000.0, 0.);
        ev_timer_start(c->loop, &ck->timer);
        return;
    }
    /* First run soon, spread a little so many checks do not fire together;
     * then every interval. */
    double first = 0.01 + (double)(random() % 100) / 1000.0;
    ev_timer_set(&ck->timer, first, ck->def.interval_ms / 1000.0);
    ev_timer_start(c->loop, &ck->timer);
}

static void check_stop(cat_check_rt *ck)
{
    ev_timer_stop(ck->owner->c->loop, &ck->timer);
    if (ck->probe) {
        cat_probe_cancel(ck->probe);
        ck->probe = NULL;
    }
}

static void local_free(cat_local *l)
{
    for (size_t i = 0; i < l->nchecks; i++)
        check_stop(&l->checks[i]);
    free(l->source);
    free(l);
}

static bool same_checks(const cat_local *l, const cat_registration *r)
{
    if (l->nchecks != r->nchecks)
        return false;
    for (size_t i = 0; i < r->nchecks; i++)
        if (memcmp(&l->checks[i].def, &r->checks[i], sizeof(cat_check_def)))
            return false;
    return true;
}

/* ---- registration -------------------------------------------------------- */

static int do_register(hms_cat *c, const cat_registration *rin, const char *source,
                       const hms_audit_actor *actor, char *err, size_t errlen)
{
    cat_registration r;
    int rc;
    cat_registration_init(&r);
    if (cat_instance_copy(&r.inst, &rin->inst))
        return -ENOMEM;
    r.nchecks = rin->nchecks;
    memcpy(r.checks, rin->checks, sizeof(r.checks));
    /* check definitions compare by bytes: clear unused target bytes */
    for (size_t i = 0; i < r.nchecks && i < CAT_CHECKS_MAX; i++) {
        size_t tl = strnlen(r.checks[i].target, sizeof(r.checks[i].target) - 1);
        memset(r.checks[i].target + tl, 0, sizeof(r.checks[i].target) - tl);
    }
    if ((rc = cat_registration_finish(&r, err, errlen)))
        goto out;

    bool found;
    size_t pos = local_pos(c, r.inst.id, &found);
    cat_local *old = found ? c->locals[pos] : NULL;
    if (old && (old->source == NULL) != (source == NULL)) {
        rc = old->source ? -EPERM : -EEXIST;
        snprintf(err, errlen,
                 old->source ? "instance '%s' is defined by file '%s': change the file"
                             : "instance '%s' was registered through the socket%s; deregister it first",
                 r.inst.id, old->source ? old->source : "");
        goto out;
    }
    /* Checks resolve their target from the address and port: keep their
     * state only when neither changed. */
    const cat_instance *prev = old ? cat_view_local_get(c->view, r.inst.id) : NULL;
    bool keep = old && prev && same_checks(old, &r) && prev->port == r.inst.port &&
                !strcmp(prev->address, r.inst.address);
    /* Status: with no check, passing; a new or changed check starts
     * critical; unchanged checks keep their state across re-registration. */
    if (keep) {
        cat_status st[CAT_CHECKS_MAX];
        for (size_t i = 0; i < old->nchecks; i++)
            st[i] = old->checks[i].health.status;
        r.inst.status = (uint8_t)cat_health_worst(st, (int)old->nchecks);
    } else {
        r.inst.status = r.nchecks ? CAT_CRITICAL : CAT_PASSING;
    }
    cat_local *l = NULL;
    if (!keep) {
        l = calloc(1, sizeof(*l));
        if (!l) {
            rc = -ENOMEM;
            goto out;
        }
        snprintf(l->id, sizeof(l->id), "%s", r.inst.id);
        l->c = c;
        l->nchecks = r.nchecks;
        if (source && !(l->source = strdup(source))) {
            free(l);
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < r.nchecks; i++) {
            cat_check_rt *ck = &l->checks[i];
            ck->def = r.checks[i];
            ck->owner = l;
            cat_health_init(&ck->health, ck->def.rise, ck->def.fall, CAT_CRITICAL);
            snprintf(ck->output, sizeof(ck->output), "not run yet");
        }
    }
    bool changed = false;
    rc = cat_view_local_put(c->view, &r.inst, stamp_now(), &changed, err, errlen);
    if (rc) {
        if (l) {
            free(l->source);
            free(l);
        }
        goto out;
    }
    if (!keep) {
        if (old) {
            local_free(old);
            c->locals[pos] = l;
        } else {
            cat_local **a = realloc(c->locals, (c->nlocals + 1) * sizeof(*a));
            if (!a) {
                /* undo: the view holds it but no schedule would run */
                cat_view_local_del(c->view, r.inst.id, stamp_now());
                free(l->source);
                free(l);
                rc = -ENOMEM;
                goto out;
            }
            c->locals = a;
            memmove(&a[pos + 1], &a[pos], (c->nlocals - pos) * sizeof(*a));
            a[pos] = l;
            c->nlocals++;
        }
        for (size_t i = 0; i < l->nchecks; i++)
            check_start(&l->checks[i]);
    }
    c->stats.registrations++;
    if (changed || !keep) {
        json_t *f = instance_fields(&r.inst);
        json_t *tags = json_array();
        for (size_t i = 0; i < r.inst.ntags; i++)
            json_array_append_new(tags, json_string(r.inst.tags[i]));
        json_object_set_new(f, "tags", tags);
        json_object_set_new(f, "checks", json_integer((json_int_t)r.nchecks));
        if (source)
            json_object_set_new(f, "file", json_string(source));
        catalog_emit_event(c, "service.register", actor, f);
        local_changed(c);
    }
out:
    if (rc)
        c->stats.refused++;
    cat_registration_clear(&r);
    return rc;
}

int hms_catalog_register(hms_cat *c, const cat_registration *r, const hms_audit_actor *actor,
                         char *err, size_t errlen)
{
    return do_register(c, r, NULL, actor, err, errlen);
}

static int do_deregister(hms_cat *c, const char *id, bool from_file,
                         const hms_audit_actor *actor, char *err, size_t errlen)
{
    bool found;
    size_t pos = local_pos(c, id, &found);
    if (!found) {
        snprintf(err, errlen, "no instance '%.64s' on this node", id);
        return -ENOENT;
    }
    cat_local *l = c->locals[pos];
    if (l->source && !from_file) {
        snprintf(err, errlen, "instance '%s' is defined by file '%s': remove the file", id,
                 l->source);
        return -EPERM;
    }
    const cat_instance *x = cat_view_local_get(c->view, id);
    json_t *f = x ? instance_fields(x) : json_object();
    cat_view_local_del(c->view, id, stamp_now());
    local_free(l);
    memmove(&c->locals[pos], &c->locals[pos + 1], (c->nlocals - pos - 1) * sizeof(*c->locals));
    c->nlocals--;
    c->stats.deregistrations++;
    catalog_emit_event(c, "service.deregister", actor, f);
    local_changed(c);
    return 0;
}

int hms_catalog_deregister(hms_cat *c, const char *id, const hms_audit_actor *actor,
                           char *err, size_t errlen)
{
    return do_deregister(c, id, false, actor, err, errlen);
}

int hms_catalog_check_update(hms_cat *c, const char *id, cat_status st, const char *note,
                             const hms_audit_actor *actor, char *err, size_t errlen)
{
    bool found;
    size_t pos = local_pos(c, id, &found);
    if (!found) {
        snprintf(err, errlen, "no instance '%.64s' on this node", id);
        return -ENOENT;
    }
    cat_local *l = c->locals[pos];
    size_t n = 0;
    for (size_t i = 0; i < l->nchecks; i++) {
        cat_check_rt *ck = &l->checks[i];
        if (ck->def.kind != CAT_CHECK_TTL)
            continue;
        n++;
        snprintf(ck->output, sizeof(ck->output), "%s", note && *note ? note : "ttl update");
        ev_timer_stop(c->loop, &ck->timer);
        ev_timer_set(&ck->timer, ck->def.ttl_ms / 1000.0, 0.);
        ev_timer_start(c->loop, &ck->timer);
        cat_status before = ck->health.status;
        if (cat_health_force(&ck->health, st))
            instance_reevaluate(l, ck, before);
    }
    if (!n) {
        snprintf(err, errlen, "instance '%s' has no ttl check", id);
        return -EINVAL;
    }
    return 0;
}

/* ---- publication and fetching -------------------------------------------- */

static void publish_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hms_cat *c = w->data;
    const cat_node *self = cat_view_self(c->view);
    uint8_t buf[CAT_META_RECORD_MAX];
    int n = cat_meta_encode(self->version, self->digest, buf, sizeof(buf));
    if (n > 0) {
        int rc = hms_agent_set_meta_field(c->agent, CAT_META_FIELD, buf, (size_t)n);
        if (rc)
            HMS_WARN("catalog: cannot publish the service set version: %s", strerror(-rc));
    }
    version_save(c, self->version);
}

static void notify_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hms_cat *c = w->data;
    /* A watcher may remove itself (or another) from its callback: slots are
     * cleared, never moved, during the walk. */
    for (size_t i = 0; i < c->nwatches; i++)
        if (c->watches[i].fn)
            c->watches[i].fn(c->watches[i].ctx);
}

static fetch_rec *fetch_get(hms_cat *c, const char *node, bool create)
{
    for (size_t i = 0; i < c->nfetch; i++)
        if (!strcmp(c->fetch[i].node, node))
            return &c->fetch[i];
    if (!create)
        return NULL;
    if (c->nfetch == c->capfetch) {
        size_t cap = c->capfetch ? c->capfetch * 2 : 16;
        fetch_rec *a = realloc(c->fetch, cap * sizeof(*a));
        if (!a)
            return NULL;
        c->fetch = a;
        c->capfetch = cap;
    }
    fetch_rec *r = &c->fetch[c->nfetch++];
    memset(r, 0, sizeof(*r));
    snprintf(r->node, sizeof(r->node), "%s", node);
    return r;
}

static void sweep(hms_cat *c);

static void fetch_done(void *ctx, int status, const hms_peer *peer, const uint8_t *reply,
                       size_t len)
{
    fetch_call *fc = ctx;
    hms_cat *c = fc->c;
    if (!c) {
        free(fc);
        return;
    }
    for (fetch_call **pp = &c->calls; *pp; pp = &(*pp)->next) {
        if (*pp == fc) {
            *pp = fc->next;
            break;
        }
    }
    c->inflight--;
    fetch_rec *r = fetch_get(c, fc->node, true);
    if (r)
        r->inflight = false;
    bool ok = false;
    if (status == 0) {
        cat_decoded d;
        int rc = cat_set_decode(reply, len, &d);
        if (rc) {
            c->stats.fetch_refused++;
            HMS_WARN("catalog: refused the service set from '%s': malformed (%s)", fc->node,
                     strerror(-rc));
        } else if (strcmp(d.node, fc->node) || (peer && strcmp(peer->name, fc->node))) {
            c->stats.fetch_refused++;
            HMS_WARN("catalog: refused the service set from '%s': it names node '%s'", fc->node,
                     d.node);
            cat_decoded_clear(&d);
        } else {
            ok = true;
            if (cat_view_apply(c->view, &d) == 1) {
                c->stats.sets_applied++;
                schedule_notify(c);
            }
            cat_decoded_clear(&d);
        }
    } else {
        HMS_DEBUG("catalog: fetch from '%s' failed: %s", fc->node, strerror(-status));
    }
    if (r) {
        if (ok) {
            r->failures = 0;
            r->next_try = 0;
        } else {
            c->stats.fetch_errors++;
            r->failures++;
            /* 0.25 s, 0.5 s, 1 s ... up to 4 s, each drawn from [back/2, back]:
             * when a whole cluster fetches a new set from one node at once,
             * the refused ones must not come back all together. */
            double back = 0.25 * pow(2.0, r->failures > 4 ? 4 : r->failures - 1);
            double jitter = (double)randombytes_uniform(1000) / 1000.0;
            r->next_try = ev_now(c->loop) + back * (0.5 + 0.5 * jitter);
        }
    }
    free(fc);
    sweep(c);
}

static int fetch_start(hms_cat *c, fetch_rec *r)
{
    const swim_member_info *m = swim_member_find(c->agent->swim, r->node);
    if (!m)
        return -ENOENT;
    fetch_call *fc = calloc(1, sizeof(*fc));
    if (!fc)
        return -ENOMEM;
    fc->c = c;
    snprintf(fc->node, sizeof(fc->node), "%s", r->node);
    static const uint8_t empty_map[1] = {0x80};
    int rc = hms_agent_rpc_call(c->agent, m->key, NULL, CAT_RPC_FETCH, empty_map, 1, 5000,
                                fetch_done, fc, NULL);
    if (rc) {
        free(fc);
        return rc;
    }
    fc->next = c->calls;
    c->calls = fc;
    r->inflight = true;
    c->inflight++;
    c->stats.fetches++;
    return 0;
}

/* Starts fetches for every member whose copy differs, within the bounds. */
static void sweep(hms_cat *c)
{
    double now = ev_now(c->loop);
    size_t n = cat_view_count(c->view);
    for (size_t i = 0; i < n && c->inflight < CAT_FETCH_CONCURRENCY; i++) {
        const cat_node *nd = cat_view_at(c->view, i);
        if (nd == cat_view_self(c->view) || !nd->up || !cat_view_needs_fetch(c->view, nd->name))
            continue;
        fetch_rec *r = fetch_get(c, nd->name, true);
        if (!r || r->inflight || now < r->next_try)
            continue;
        int rc = fetch_start(c, r);
        if (rc) {
            r->failures++;
            r->next_try = now + 1.0;
        }
    }
}

static void member_cb(hms_agent *a, swim_event ev, const swim_member_info *m, void *ctx);

/* Every sweep also reads the member table itself, so a member event that
 * was missed or coalesced (a meta change, a status change) still reaches
 * the view within one period. */
static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hms_cat *c = w->data;
    hms_agent *a = c->agent;
    for (size_t i = 0; a->swim && i < swim_member_count(a->swim); i++) {
        const swim_member_info *m = swim_member_at(a->swim, i);
        if (m)
            member_cb(a, SWIM_EV_UPDATE, m, NULL);
    }
    sweep(c);
}

static void fetch_serve(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                        size_t len)
{
    /* ctx is the agent: the method stays registered after the catalog stops */
    hms_cat *c = ((hms_agent *)ctx)->catalog;
    if (!c) {
        hms_rpc_reply(call, -EAGAIN, NULL, 0);
        return;
    }
    const cat_node *self = cat_view_self(c->view);
    uint8_t *buf = NULL;
    size_t blen = 0;
    int rc = cat_set_encode(self->name, self->version, self->inst, self->n, &buf, &blen);
    c->stats.serves++;
    hms_rpc_reply(call, rc, buf, rc ? 0 : blen);
    free(buf);
}

/* ---- membership ---------------------------------------------------------- */

static void member_cb(hms_agent *a, swim_event ev, const swim_member_info *m, void *ctx)
{
    hms_cat *c = a->catalog;
    /* listeners stay registered after the catalog stops */
    if (!c || !strcmp(m->name, a->name))
        return;
    switch (ev) {
    case SWIM_EV_REAPED: {
        if (cat_view_forget(c->view, m->name))
            schedule_notify(c);
        /* its fetch record goes too, unless a call still refers to it */
        fetch_rec *r = fetch_get(c, m->name, false);
        if (r && !r->inflight)
            *r = c->fetch[--c->nfetch];
        return;
    }
    case SWIM_EV_JOIN:
    case SWIM_EV_UPDATE:
    case SWIM_EV_SUSPECT:
    case SWIM_EV_ALIVE:
    case SWIM_EV_DEAD:
    case SWIM_EV_LEFT:
        break;
    default:
        return;
    }
    bool up = m->status == SWIM_ALIVE || m->status == SWIM_SUSPECT;
    if (cat_view_member(c->view, m->name, up))
        schedule_notify(c);
    const uint8_t *data;
    size_t len;
    uint64_t version;
    uint8_t digest[CAT_DIGEST_LEN];
    if (hms_meta_get_field(m->meta, m->meta_len, CAT_META_FIELD, &data, &len) == 0 &&
        cat_meta_decode(data, len, &version, digest) == 0) {
        if (cat_view_advertise(c->view, m->name, version, digest) && up) {
            fetch_rec *r = fetch_get(c, m->name, true);
            if (r && !r->inflight) {
                /* a new advertisement deserves a prompt try */
                r->next_try = 0;
            }
            sweep(c);
        }
    }
}

/* ---- services directory -------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open '%.300s': %s", path, strerror(errno));
        return -errno;
    }
    char *buf = malloc(CAT_SERVICE_FILE_BYTES + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf && n <= CAT_SERVICE_FILE_BYTES &&
           (r = read(fd, buf + n, CAT_SERVICE_FILE_BYTES + 1 - n)) > 0)
        n += (size_t)r;
    int e = errno;
    close(fd);
    if (!buf)
        return -ENOMEM;
    if (r < 0) {
        snprintf(err, errlen, "cannot read '%.300s': %s", path, strerror(e));
        free(buf);
        return -e;
    }
    if (n > CAT_SERVICE_FILE_BYTES) {
        snprintf(err, errlen, "'%.300s' is larger than %d bytes", path, CAT_SERVICE_FILE_BYTES);
        free(buf);
        return -E2BIG;
    }
    *out = buf;
    *len = n;
    return 0;
}

int hms_catalog_reload(hms_cat *c)
{
    if (!c->services_dir || !c->services_dir[0])
        return 0;
    DIR *d = opendir(c->services_dir);
    if (!d) {
        HMS_ERROR("catalog: cannot open services directory '%s': %s", c->services_dir,
                  strerror(errno));
        return -errno;
    }
    char *names[CAT_SERVICE_FILES_MAX];
    size_t nn = 0;
    struct dirent *e;
    int refused = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        if (nn == CAT_SERVICE_FILES_MAX) {
            HMS_ERROR("catalog: more than %d files in '%s': '%s' and later ones are ignored",
                      CAT_SERVICE_FILES_MAX, c->services_dir, e->d_name);
            refused++;
            break;
        }
        names[nn] = strdup(e->d_name);
        if (names[nn])
            nn++;
    }
    closedir(d);
    qsort(names, nn, sizeof(char *), cmp_str);

    /* ids registered by files this time; anything else from a file goes */
    char (*seen)[CAT_ID_MAX + 1] = calloc(nn ? nn : 1, sizeof(*seen));
    char (*kept)[CAT_ID_MAX + 1] = calloc(nn ? nn : 1, sizeof(*kept)); /* refused files keep theirs */
    size_t nseen = 0, nkept = 0;
    for (size_t i = 0; i < nn; i++) {
        char path[PATH_MAX], err[512];
        snprintf(path, sizeof(path), "%s/%s", c->services_dir, names[i]);
        char *text = NULL;
        size_t len = 0;
        cat_registration r;
        int rc = read_file(path, &text, &len, err, sizeof(err));
        if (!rc) {
            rc = cat_registration_from_json(text, len, &r, err, sizeof(err));
            free(text);
            if (!rc) {
                rc = do_register(c, &r, path, NULL, err, sizeof(err));
                if (!rc && seen)
                    snprintf(seen[nseen++], CAT_ID_MAX + 1, "%s", r.inst.id);
                cat_registration_clear(&r);
            }
        }
        if (rc) {
            refused++;
            HMS_ERROR("catalog: service file '%s' refused: %s", path, err);
            /* keep what this file registered before */
            for (size_t k = 0; kept && k < c->nlocals; k++)
                if (c->locals[k]->source && !strcmp(c->locals[k]->source, path))
                    snprintf(kept[nkept++], CAT_ID_MAX + 1, "%s", c->locals[k]->id);
        }
        free(names[i]);
    }
    for (size_t k = 0; seen && kept && k < c->nlocals;) {
        cat_local *l = c->locals[k];
        bool stay = !l->source;
        for (size_t j = 0; !stay && j < nseen; j++)
            stay = !strcmp(seen[j], l->id);
        for (size_t j = 0; !stay && j < nkept; j++)
            stay = !strcmp(kept[j], l->id);
        if (stay) {
            k++;
            continue;
        }
        char err[256];
        do_deregister(c, l->id, true, NULL, err, sizeof(err));
    }
    free(seen);
    free(kept);
    HMS_INFO("catalog: services directory '%s' read: %zu files, %d refused", c->services_dir, nn,
             refused);
    return refused;
}

void hms_catalog_set_services_dir(hms_cat *c, const char *dir)
{
    free(c->services_dir);
    c->services_dir = dir && *dir ? strdup(dir) : NULL;
}

static void boot_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hms_catalog_reload(w->data);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    hms_cat *c = w->data;
    if (c->services_dir)
        HMS_INFO("catalog: SIGHUP: reading '%s' again", c->services_dir);
    hms_catalog_reload(c);
}

/* ---- queries ------------------------------------------------------------- */

const cat_view *hms_catalog_view(const hms_cat *c)
{
    return c->view;
}

size_t hms_catalog_local_count(const hms_cat *c)
{
    return c->nlocals;
}

const cat_instance *hms_catalog_local_at(const hms_cat *c, size_t i, const char **source,
                                         size_t *nchecks)
{
    if (i >= c->nlocals)
        return NULL;
    if (source)
        *source = c->locals[i]->source;
    if (nchecks)
        *nchecks = c->locals[i]->nchecks;
    return cat_view_local_get(c->view, c->locals[i]->id);
}

void hms_catalog_local_check(const hms_cat *c, size_t i, size_t k, cat_check_info *out)
{
    const cat_check_rt *ck = &c->locals[i]->checks[k];
    out->def = &ck->def;
    out->status = ck->health.status;
    out->output = ck->output;
    out->transitions = ck->health.transitions;
}

int hms_catalog_watch_add(hms_cat *c, cat_change_fn fn, void *ctx)
{
    size_t i;
    for (i = 0; i < c->nwatches; i++)
        if (!c->watches[i].fn)
            break;
    if (i == c->nwatches) {
        if (c->nwatches >= CAT_WATCHES_MAX)
            return -ENOSPC;
        watch_slot *a = realloc(c->watches, (c->nwatches + 1) * sizeof(*a));
        if (!a)
            return -ENOMEM;
        c->watches = a;
        c->nwatches++;
    }
    if (++c->next_handle <= 0)
        c->next_handle = 1;
    c->watches[i].fn = fn;
    c->watches[i].ctx = ctx;
    c->watches[i].handle = c->next_handle;
    c->stats.watches_now++;
    return c->next_handle;
}

void hms_catalog_watch_remove(hms_cat *c, int handle)
{
    for (size_t i = 0; i < c->nwatches; i++) {
        if (c->watches[i].fn && c->watches[i].handle == handle) {
            c->watches[i].fn = NULL;
            c->watches[i].ctx = NULL;
            c->stats.watches_now--;
            return;
        }
    }
}

void hms_catalog_get_stats(const hms_cat *c, cat_stats *out)
{
    *out = c->stats;
}

/* ---- lifecycle ----------------------------------------------------------- */

int hms_catalog_start(hms_agent *a, char *err, size_t errlen)
{
    hms_cat *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "catalog: out of memory");
        return -ENOMEM;
    }
    c->agent = a;
    c->loop = a->loop;
    uint64_t start = stamp_now(), saved = version_load(a);
    c->view = cat_view_new(a->name, saved >= start ? saved + 1 : start);
    c->prober = cat_prober_new(a->loop);
    if (!c->view || !c->prober) {
        snprintf(err, errlen, "catalog: out of memory");
        cat_view_delete(c->view);
        cat_prober_delete(c->prober);
        free(c);
        return -ENOMEM;
    }
    ev_init(&c->publish, publish_cb);
    c->publish.data = c;
    ev_init(&c->notify, notify_cb);
    c->notify.data = c;
    ev_timer_init(&c->sweep, sweep_cb, 0.5, 0.5);
    c->sweep.data = c;
    ev_timer_start(c->loop, &c->sweep);
    ev_timer_init(&c->boot, boot_cb, 0., 0.);
    c->boot.data = c;
    ev_timer_start(c->loop, &c->boot);
    ev_signal_init(&c->hup, hup_cb, SIGHUP);
    c->hup.data = c;
    ev_signal_start(c->loop, &c->hup);
    a->catalog = c;

    int rc;
    if ((rc = hms_agent_rpc_handle(a, CAT_RPC_FETCH, fetch_serve, a)) ||
        (rc = hms_agent_on_member(a, member_cb, NULL)) || (rc = hms_catalog_ops_register(a, c))) {
        snprintf(err, errlen, "catalog: cannot register with the agent: %s", strerror(-rc));
        hms_catalog_stop(a);
        return rc;
    }
    if (a->cfg && a->cfg->services_dir[0])
        hms_catalog_set_services_dir(c, a->cfg->services_dir);
    /* members already known (normally none: seeds are contacted later) */
    for (size_t i = 0; a->swim && i < swim_member_count(a->swim); i++)
        member_cb(a, SWIM_EV_UPDATE, swim_member_at(a->swim, i), c);
    publish_cb(c->loop, &c->publish, 0);
    return 0;
}

void hms_catalog_stop(hms_agent *a)
{
    hms_cat *c = a->catalog;
    if (!c)
        return;
    for (fetch_call *fc = c->calls; fc; fc = fc->next)
        fc->c = NULL; /* freed by fetch_done when the pool completes it */
    c->calls = NULL;
    ev_timer_stop(c->loop, &c->publish);
    ev_timer_stop(c->loop, &c->notify);
    ev_timer_stop(c->loop, &c->sweep);
    ev_timer_stop(c->loop, &c->boot);
    ev_signal_stop(c->loop, &c->hup);
    for (size_t i = 0; i < c->nlocals; i++)
        local_free(c->locals[i]);
    free(c->locals);
    cat_prober_delete(c->prober);
    cat_view_delete(c->view);
    free(c->fetch);
    free(c->watches);
    free(c->services_dir);
    free(c);
    a->catalog = NULL;
}
