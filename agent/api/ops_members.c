/*
 * Membership operations of the socket API: members, member, join, leave,
 * stats, watch (docs/api.md). A member is sent as
 *   {name, address, status, incarnation, key, key_id, since_s, self}
 * with key the Ed25519 public key in hex and key_id its first 8 bytes.
 *
 * `join` answers once every seed was tried (a channel opened and a ping
 * answered, or the error); the membership core keeps retrying the seeds
 * either way. `watch` streams {event, member} frames, after a first frame
 * {event: "watching", members: N}.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "agent/agent.h"
#include "agent/api/api.h"
#include "agent/trust/trust.h"

#define WATCHERS_MAX 64
#define JOIN_SEEDS_MAX 32
#define JOIN_TIMEOUT_MS 3000
#define LEAVE_MAX_MS 1500

typedef struct members_ops {
    hms_agent *agent;
    hms_api_stream *watchers[WATCHERS_MAX];
    size_t nwatchers;
    bool listening;
    hms_time started;
} members_ops;

static members_ops g_ops;

static const char *event_name(swim_event ev)
{
    switch (ev) {
    case SWIM_EV_JOIN:
        return "join";
    case SWIM_EV_UPDATE:
        return "update";
    case SWIM_EV_SUSPECT:
        return "suspect";
    case SWIM_EV_ALIVE:
        return "alive";
    case SWIM_EV_DEAD:
        return "dead";
    case SWIM_EV_LEFT:
        return "left";
    case SWIM_EV_REAPED:
        return "reaped";
    case SWIM_EV_CONFLICT:
        return "conflict";
    default:
        return NULL;
    }
}

static void pack_member(hms_agent *a, msgpack_packer *pk, const swim_member_info *m)
{
    char addr[HMS_ADDR_STRLEN], key[65], kid[17];
    hms_addr_format(&m->addr, addr, sizeof(addr));
    sodium_bin2hex(key, sizeof(key), m->key, 32);
    sodium_bin2hex(kid, sizeof(kid), m->key, 8);
    hms_time now = hms_agent_now(a);
    bool self = a->swim && m == swim_self(a->swim);
    if (!self && a->swim)
        self = sodium_memcmp(m->key, a->ed_pk, 32) == 0 && strcmp(m->name, a->name) == 0;
    msgpack_pack_map(pk, 8);
    hms_api_pack_kv_str(pk, "name", m->name);
    hms_api_pack_kv_str(pk, "address", addr);
    hms_api_pack_kv_str(pk, "status", swim_status_name(m->status));
    hms_api_pack_kv_u64(pk, "incarnation", m->incarnation);
    hms_api_pack_kv_str(pk, "key", key);
    hms_api_pack_kv_str(pk, "key_id", kid);
    hms_api_pack_str(pk, "since_s");
    msgpack_pack_double(pk, now > m->status_since ? (double)(now - m->status_since) / 1e6 : 0.);
    hms_api_pack_kv_bool(pk, "self", self);
}

static int parse_status(const char *s, swim_status *out)
{
    for (int i = SWIM_ALIVE; i <= SWIM_LEFT; i++) {
        if (strcmp(s, swim_status_name((swim_status)i)) == 0) {
            *out = (swim_status)i;
            return 0;
        }
    }
    return -EINVAL;
}

static int op_members(hms_agent *a, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    char st[16];
    bool filter = false;
    swim_status want = SWIM_ALIVE;
    int r = hms_api_arg_str(req, "status", st, sizeof(st));
    if (r == -EINVAL || (r == 0 && parse_status(st, &want) < 0))
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                            "'status' must be one of alive, suspect, dead, left");
    filter = r == 0;
    if (!a->swim)
        return hms_api_fail(err, HMS_API_E_UNAVAILABLE, "membership is not running");
    size_t n = swim_member_count(a->swim), k = 0;
    for (size_t i = 0; i < n; i++) {
        const swim_member_info *m = swim_member_at(a->swim, i);
        if (m && (!filter || m->status == want))
            k++;
    }
    msgpack_pack_array(res, k);
    for (size_t i = 0; i < n; i++) {
        const swim_member_info *m = swim_member_at(a->swim, i);
        if (m && (!filter || m->status == want))
            pack_member(a, res, m);
    }
    return 0;
}

static int op_member(hms_agent *a, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    char name[SWIM_NAME_MAX + 1];
    int r = hms_api_arg_str(req, "name", name, sizeof(name));
    if (r < 0)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "member needs 'name' (a node name)");
    if (!a->swim)
        return hms_api_fail(err, HMS_API_E_UNAVAILABLE, "membership is not running");
    const swim_member_info *m = swim_member_find(a->swim, name);
    if (!m)
        return hms_api_fail(err, HMS_API_E_NOT_FOUND, "no member named '%s'", name);
    pack_member(a, res, m);
    return 0;
}

/* --- join ------------------------------------------------------------------ */

typedef struct join_req {
    hms_agent *agent;
    hms_api_stream *st;
    size_t n, done, ok;
    bool closed;
    hms_addr seeds[JOIN_SEEDS_MAX];
    int status[JOIN_SEEDS_MAX];
    uint64_t call_ids[JOIN_SEEDS_MAX];
} join_req;

static void join_finish(join_req *j)
{
    hms_agent *a = j->agent;
    hms_agent_join(a, j->seeds, j->n);
    if (j->closed) {
        free(j);
        return;
    }
    if (j->ok == 0) {
        hms_api_error e = {.code = HMS_API_E_FAILED};
        size_t off = (size_t)snprintf(e.message, sizeof(e.message), "cannot reach any seed:");
        for (size_t i = 0; i < j->n && off < sizeof(e.message); i++) {
            char addr[HMS_ADDR_STRLEN];
            off += (size_t)snprintf(e.message + off, sizeof(e.message) - off, "%s '%s': %s",
                                    i ? ";" : "", hms_addr_format(&j->seeds[i], addr, sizeof(addr)),
                                    strerror(-j->status[i]));
        }
        hms_api_stream_end(j->st, NULL, 0, &e);
        free(j);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    hms_api_pack_kv_u64(&pk, "reached", j->ok);
    hms_api_pack_str(&pk, "seeds");
    msgpack_pack_array(&pk, j->n);
    for (size_t i = 0; i < j->n; i++) {
        char addr[HMS_ADDR_STRLEN];
        msgpack_pack_map(&pk, 2);
        hms_api_pack_kv_str(&pk, "address", hms_addr_format(&j->seeds[i], addr, sizeof(addr)));
        hms_api_pack_kv_str(&pk, "error", j->status[i] == 0 ? NULL : strerror(-j->status[i]));
    }
    hms_api_stream_end(j->st, sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
    free(j);
}

typedef struct join_probe {
    join_req *j;
    size_t i;
} join_probe;

static void join_probe_done(void *ctx, int status, const hms_peer *peer, const uint8_t *reply,
                            size_t len)
{
    join_probe *p = ctx;
    join_req *j = p->j;
    j->status[p->i] = status;
    if (status == 0)
        j->ok++;
    j->done++;
    free(p);
    if (j->done == j->n)
        join_finish(j);
}

static void join_stream_closed(hms_api_stream *st, void *ctx)
{
    join_req *j = ctx;
    j->closed = true; /* the probes still complete and free it */
}

static int op_join(hms_agent *a, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    const msgpack_object *o = hms_api_arg(req, "addresses");
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                            "join needs 'addresses' (a list of ADDR[:PORT])");
    if (o->via.array.size > JOIN_SEEDS_MAX)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "at most %d addresses", JOIN_SEEDS_MAX);
    if (!a->swim || !a->chan || a->leaving)
        return hms_api_fail(err, HMS_API_E_UNAVAILABLE, "membership is not running");
    join_req *j = calloc(1, sizeof(*j));
    if (!j)
        return hms_api_fail(err, HMS_API_E_INTERNAL, "out of memory");
    j->agent = a;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        char s[HMS_ADDR_STRLEN];
        if (hms_mp_str_copy(&o->via.array.ptr[i], s, sizeof(s)) < 0 ||
            hms_addr_parse(s, HMS_DEFAULT_PORT, &j->seeds[i]) < 0) {
            free(j);
            return hms_api_fail(err, HMS_API_E_BAD_REQUEST,
                                "invalid address #%u: expected IP[:PORT]", i + 1);
        }
    }
    j->n = o->via.array.size;
    json_t *addrs = json_array();
    for (uint32_t i = 0; i < o->via.array.size; i++)
        json_array_append_new(
            addrs, json_stringn(o->via.array.ptr[i].via.str.ptr, o->via.array.ptr[i].via.str.size));
    hms_agent_audit_admin(a, req, "admin.join", json_pack("{s:o}", "addresses", addrs));
    j->st = hms_api_stream_open(req, join_stream_closed, j);
    if (!j->st) {
        free(j);
        return hms_api_fail(err, HMS_API_E_BUSY, "too many requests in progress");
    }
    for (size_t i = 0; i < j->n; i++) {
        join_probe *p = calloc(1, sizeof(*p));
        int r = -ENOMEM;
        if (p) {
            p->j = j;
            p->i = i;
            r = hms_chan_call(a->chan, NULL, &j->seeds[i], "agent.ping", NULL, 0, JOIN_TIMEOUT_MS,
                              join_probe_done, p, &j->call_ids[i]);
        }
        if (r < 0) {
            free(p);
            j->status[i] = r;
            j->done++;
        }
    }
    if (j->done == j->n)
        join_finish(j);
    return HMS_API_STREAMING;
}

static void serve_ping(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                       size_t len)
{
    hms_rpc_reply(call, 0, NULL, 0);
}

/* --- leave ----------------------------------------------------------------- */

static int op_leave(hms_agent *a, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    if (a->leaving)
        return hms_api_fail(err, HMS_API_E_UNAVAILABLE, "already leaving");
    HMS_INFO("api: leave requested by uid %u pid %d", (unsigned)req->uid, (int)req->pid);
    hms_agent_audit_admin(a, req, "admin.leave", NULL);
    hms_agent_shutdown(a, LEAVE_MAX_MS);
    msgpack_pack_map(res, 1);
    hms_api_pack_kv_bool(res, "leaving", true);
    return 0;
}

/* --- stats ----------------------------------------------------------------- */

static int op_stats(hms_agent *a, const hms_api_req *req, msgpack_packer *pk, hms_api_error *err)
{
    swim_stats s;
    memset(&s, 0, sizeof(s));
    if (a->swim)
        swim_get_stats(a->swim, &s);
    hms_agent_udp_stats u;
    hms_agent_get_udp_stats(a, &u);
    hms_api_stats api;
    hms_api_get_stats(a->api, &api);
    hms_chan_stats ch;
    memset(&ch, 0, sizeof(ch));
    if (a->chan)
        hms_chan_get_stats(a->chan, &ch);

    msgpack_pack_map(pk, 9);
    hms_api_pack_kv_str(pk, "node", a->name);
    hms_api_pack_kv_u64(pk, "incarnation", a->swim ? swim_self(a->swim)->incarnation : 0);
    hms_api_pack_str(pk, "uptime_s");
    msgpack_pack_double(pk, (double)(hms_agent_now(a) - g_ops.started) / 1e6);
    hms_api_pack_kv_bool(pk, "leaving", a->leaving);

    hms_api_pack_str(pk, "swim");
    msgpack_pack_map(pk, 25);
#define KV(name, v) hms_api_pack_kv_u64(pk, name, (uint64_t)(v))
    KV("packets_in", s.packets_in);
    KV("packets_out", s.packets_out);
    KV("bytes_in", s.bytes_in);
    KV("bytes_out", s.bytes_out);
    KV("drop_malformed", s.drop_malformed);
    KV("drop_unknown_sender", s.drop_unknown_sender);
    KV("drop_wrong_target", s.drop_wrong_target);
    KV("drop_refused", s.drop_refused);
    KV("probes", s.probes);
    KV("indirect_probes", s.indirect_probes);
    KV("acks", s.acks);
    KV("nacks", s.nacks);
    KV("suspicions", s.suspicions);
    KV("refutations", s.refutations);
    KV("deaths", s.deaths);
    KV("leaves", s.leaves);
    KV("pushpulls_out", s.pushpulls_out);
    KV("pushpulls_in", s.pushpulls_in);
    KV("name_conflicts", s.name_conflicts);
    KV("health_score", s.health_score);
    KV("members_alive", s.members_alive);
    KV("members_suspect", s.members_suspect);
    KV("members_dead", s.members_dead);
    KV("members_left", s.members_left);
    KV("members", a->swim ? swim_member_count(a->swim) : 0);

    hms_api_pack_str(pk, "udp");
    msgpack_pack_map(pk, 6);
    KV("packets_in", u.packets_in);
    KV("packets_out", u.packets_out);
    KV("send_errors", u.send_errors);
    KV("bytes_in", u.bytes_in);
    KV("bytes_out", u.bytes_out);
    hms_api_pack_str(pk, "drops");
    msgpack_pack_map(pk, 9);
    KV("malformed", u.drop_malformed);
    KV("unknown_sender", u.drop_unknown_sender);
    KV("bad_tag", u.drop_bad_tag);
    KV("replay", u.drop_replay);
    KV("stale_epoch", u.drop_stale_epoch);
    KV("revoked", u.drop_revoked);
    KV("not_for_us", u.drop_not_for_us);
    KV("oversize", u.drop_oversize);
    KV("no_key", u.drop_no_key);

    hms_api_pack_str(pk, "api");
    msgpack_pack_map(pk, 10);
    KV("clients_accepted", api.clients_accepted);
    KV("clients_refused", api.clients_refused);
    KV("clients_now", api.clients_now);
    KV("requests", api.requests);
    KV("errors", api.errors);
    KV("bad_frames", api.bad_frames);
    KV("oversized_frames", api.oversized_frames);
    KV("slow_clients", api.slow_clients);
    KV("forbidden", api.forbidden);
    KV("streams_now", api.streams_now);

    hms_api_pack_str(pk, "chan");
    msgpack_pack_map(pk, 14);
    KV("conns_in", ch.conns_in);
    KV("conns_out", ch.conns_out);
    KV("conns_now", ch.conns_now);
    KV("handshakes_now", ch.handshakes_now);
    KV("handshake_failures", ch.handshake_failures);
    KV("refused_untrusted", ch.refused_untrusted);
    KV("refused_limit", ch.refused_limit);
    KV("timeouts", ch.timeouts);
    KV("calls_out", ch.calls_out);
    KV("calls_in", ch.calls_in);
    KV("call_errors", ch.call_errors);
    KV("bytes_in", ch.bytes_in);
    KV("bytes_out", ch.bytes_out);
    KV("bad_frames", ch.bad_frames);

    hms_api_pack_str(pk, "trust");
    msgpack_pack_map(pk, 4);
    KV("cas", a->trust ? hms_trust_ca_count(a->trust) : 0);
    KV("peers", a->trust ? hms_trust_peer_count(a->trust) : 0);
    KV("revocations", a->trust ? hms_trust_revocation_count(a->trust) : 0);
    hms_api_pack_kv_bool(pk, "self_revoked", a->trust && hms_trust_self_revoked(a->trust));
#undef KV
    return 0;
}

/* --- watch ----------------------------------------------------------------- */

static void watch_closed(hms_api_stream *st, void *ctx)
{
    for (size_t i = 0; i < g_ops.nwatchers; i++) {
        if (g_ops.watchers[i] == st) {
            g_ops.watchers[i] = g_ops.watchers[--g_ops.nwatchers];
            return;
        }
    }
}

static void watch_event(hms_agent *a, swim_event ev, const swim_member_info *m, void *ctx)
{
    const char *name = event_name(ev);
    if (!name || g_ops.nwatchers == 0)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    hms_api_pack_kv_str(&pk, "event", name);
    hms_api_pack_str(&pk, "member");
    pack_member(a, &pk, m);
    /* A watcher whose client is too slow is dropped by the server and
     * removed by watch_closed from the loop, so iterate over a copy. */
    hms_api_stream *copy[WATCHERS_MAX];
    size_t n = g_ops.nwatchers;
    memcpy(copy, g_ops.watchers, n * sizeof(copy[0]));
    for (size_t i = 0; i < n; i++)
        hms_api_stream_send(copy[i], sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static int op_watch(hms_agent *a, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    if (g_ops.nwatchers >= WATCHERS_MAX)
        return hms_api_fail(err, HMS_API_E_BUSY, "too many watchers (max %d)", WATCHERS_MAX);
    hms_api_stream *st = hms_api_stream_open(req, watch_closed, NULL);
    if (!st)
        return hms_api_fail(err, HMS_API_E_BUSY, "too many streams on this connection");
    g_ops.watchers[g_ops.nwatchers++] = st;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    hms_api_pack_kv_str(&pk, "event", "watching");
    hms_api_pack_kv_u64(&pk, "members", a->swim ? swim_member_count(a->swim) : 0);
    hms_api_stream_send(st, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return HMS_API_STREAMING;
}

static const hms_api_op member_ops[] = {
    {"members", op_members, 0},
    {"member", op_member, 0},
    {"join", op_join, HMS_API_ADMIN},
    {"leave", op_leave, HMS_API_ADMIN},
    {"stats", op_stats, 0},
    {"watch", op_watch, 0},
    {NULL, NULL, 0},
};

int hms_members_ops_register(hms_agent *a)
{
    memset(&g_ops, 0, sizeof(g_ops));
    g_ops.agent = a;
    g_ops.started = hms_agent_now(a);
    int r = hms_api_register(a->api, member_ops, &g_ops);
    if (r == 0)
        r = hms_agent_on_member(a, watch_event, &g_ops);
    if (r == 0 && a->chan)
        r = hms_agent_rpc_handle(a, "agent.ping", serve_ping, NULL);
    return r;
}
