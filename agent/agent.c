/*
 * The agent runtime (see agent.h): the data dir (lock, persisted
 * incarnation and seal epoch), the identity, the membership core and its
 * drivers, listeners, member meta, channel RPC, and the ordered start and
 * stop of the subsystems.
 *
 * The core is run by swim_run(): it ticks the core, drains its output
 * (packets to the UDP driver, push-pulls to the channel pool, events to the
 * listeners) and re-arms one ev_timer at the deadline the core returned.
 * Every entry into the core from the drivers ends with swim_run(). Draining
 * is not re-entrant: a listener that calls back into the core (set a meta
 * field, broadcast) only queues output, which the outer drain picks up.
 */
#include "agent/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "agent/audit/audit.h"
#include "agent/catalog/catalog.h"
#include "agent/identity.h"
#include "agent/net/seal.h"
#include "agent/net/udp.h"

#define PUSHPULL_TIMEOUT_MS 5000

typedef struct member_listener {
    hms_member_fn fn;
    void *ctx;
} member_listener;

typedef struct user_listener {
    hms_user_fn fn;
    void *ctx;
    uint8_t kind;
} user_listener;

typedef struct meta_field {
    char key[HMS_META_KEY_MAX + 1];
    uint8_t val[SWIM_META_MAX];
    size_t len;
} meta_field;

typedef struct agent_module {
    const char *name;
    int (*start)(hms_agent *a, char *err, size_t errlen);
    void (*stop)(hms_agent *a);
} agent_module;

struct hms_agent_priv {
    ev_timer swim_timer;
    bool draining;
    member_listener members[HMS_AGENT_LISTENERS_MAX];
    size_t nmembers;
    user_listener users[HMS_AGENT_LISTENERS_MAX * 4];
    size_t nusers;
    meta_field meta[HMS_META_FIELDS_MAX];
    size_t nmeta;
    int lock_fd;
    size_t started; /* modules started, in table order */
    ev_timer leave_timer;
    hms_time leave_deadline;
    void (*leave_done)(hms_agent *a, void *ctx);
    void *leave_ctx;
};

hms_time hms_agent_now(const hms_agent *a)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (hms_time)ts.tv_sec * 1000000ULL + (hms_time)ts.tv_nsec / 1000ULL;
}

int hms_agent_path(const hms_agent *a, const char *name, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s", a->data_dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void hms_agent_audit_admin(hms_agent *a, const hms_api_req *req, const char *kind, json_t *fields)
{
    if (!a->audit) {
        json_decref(fields);
        return;
    }
    char path[64], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)req->pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(comm, sizeof(comm), f))
            comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
    }
    for (char *c = comm; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    hms_audit_actor who = {
        .uid = (int64_t)req->uid, .pid = (int64_t)req->pid, .name = comm[0] ? comm : NULL};
    int r = hms_audit_emit(a->audit, kind, NULL, &who, fields);
    if (r < 0)
        HMS_WARN("audit: cannot record '%s': %s", kind, strerror(-r));
}

/* --- persisted counters --------------------------------------------------- */

static int read_u64_file(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char buf[32] = {0};
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || end == buf || (*end != '\n' && *end != '\0'))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Writes the value to a temporary file, syncs it and renames it over the
 * old one, so a crash leaves either the old or the new value. */
static int write_u64_file(const char *path, uint64_t v)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", v);
    int r = 0;
    if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
        r = errno ? -errno : -EIO;
    close(fd);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

/* Reads <data_dir>/name (0 when absent), stores value+1 and returns it. */
static int bump_counter(hms_agent *a, const char *name, uint64_t *out, char *err, size_t errlen)
{
    char path[PATH_MAX];
    uint64_t v = 0;
    if (hms_agent_path(a, name, path, sizeof(path)) < 0) {
        snprintf(err, errlen, "data dir path '%s' is too long", a->data_dir);
        return -ENAMETOOLONG;
    }
    int r = read_u64_file(path, &v);
    if (r < 0 && r != -ENOENT) {
        snprintf(err, errlen, "cannot read '%s': %s", path,
                 r == -EINVAL ? "not a number" : strerror(-r));
        return r;
    }
    if (v == UINT64_MAX) {
        snprintf(err, errlen, "counter in '%s' is exhausted", path);
        return -EOVERFLOW;
    }
    r = write_u64_file(path, v + 1);
    if (r < 0) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(-r));
        return r;
    }
    *out = v + 1;
    return 0;
}

/* --- data dir ------------------------------------------------------------- */

static int mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int open_data_dir(hms_agent *a, char *err, size_t errlen)
{
    int r = mkdirs(a->data_dir, 0700);
    if (r < 0) {
        snprintf(err, errlen, "cannot create data dir '%s': %s", a->data_dir, strerror(-r));
        return r;
    }
    struct stat sb;
    if (stat(a->data_dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "data dir '%s' is not a directory", a->data_dir);
        return -ENOTDIR;
    }
    if (access(a->data_dir, R_OK | W_OK | X_OK) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot use data dir '%s': %s", a->data_dir, strerror(errno));
        return r;
    }
    char path[PATH_MAX];
    if (hms_agent_path(a, "lock", path, sizeof(path)) < 0) {
        snprintf(err, errlen, "data dir path '%s' is too long", a->data_dir);
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return r;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        r = -errno;
        snprintf(err, errlen, "data dir '%s' is in use by another agent (lock '%s' is held)",
                 a->data_dir, path);
        close(fd);
        return r == -EWOULDBLOCK ? -EBUSY : r;
    }
    a->priv->lock_fd = fd;
    return 0;
}

/* --- advertise address ---------------------------------------------------- */

static bool addr_is_any(const hms_addr *x)
{
    static const uint8_t zero[16];
    return memcmp(x->ip, zero, x->family == 4 ? 4 : 16) == 0;
}

/* The address the host would use to reach the outside: a connected UDP
 * socket sends nothing but makes the kernel pick the source address. */
static int primary_address(int family, hms_addr *out)
{
    int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (family == 6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(9);
        inet_pton(AF_INET6, "2001:db8::1", &s6->sin6_addr);
        sl = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(9);
        inet_pton(AF_INET, "192.0.2.1", &s4->sin_addr);
        sl = sizeof(*s4);
    }
    int r = connect(fd, (struct sockaddr *)&ss, sl);
    if (r == 0) {
        sl = sizeof(ss);
        r = getsockname(fd, (struct sockaddr *)&ss, &sl);
    }
    if (r < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    close(fd);
    out->family = (uint8_t)(family == 6 ? 6 : 4);
    if (family == 6)
        memcpy(out->ip, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    else
        memcpy(out->ip, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    return 0;
}

static void choose_advertise(hms_agent *a)
{
    const hms_config *c = a->cfg;
    a->advertise = c->advertise.family ? c->advertise : c->bind;
    if (a->advertise.port == 0)
        a->advertise.port = c->bind.port;
    if (addr_is_any(&a->advertise)) {
        hms_addr x = a->advertise;
        if (primary_address(a->advertise.family, &x) == 0) {
            a->advertise = x;
        } else {
            hms_addr_parse(a->advertise.family == 6 ? "::1" : "127.0.0.1", c->bind.port,
                           &a->advertise);
            HMS_WARN("agent: no route to pick an address to advertise; using loopback "
                     "(set --advertise)");
        }
        a->advertise.port = c->bind.port;
    }
}

/* --- member meta ---------------------------------------------------------- */

static int meta_encode(const hms_agent *a, uint8_t *buf, size_t cap, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, a->priv->nmeta);
    for (size_t i = 0; i < a->priv->nmeta; i++) {
        const meta_field *f = &a->priv->meta[i];
        hms_api_pack_str(&pk, f->key);
        msgpack_pack_bin(&pk, f->len);
        msgpack_pack_bin_body(&pk, f->val, f->len);
    }
    int r = 0;
    if (sb.size > cap)
        r = -ENOSPC;
    else {
        memcpy(buf, sb.data, sb.size);
        *len = sb.size;
    }
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int hms_agent_set_meta_field(hms_agent *a, const char *key, const uint8_t *data, size_t len)
{
    struct hms_agent_priv *p = a->priv;
    if (!key || !*key || strlen(key) > HMS_META_KEY_MAX || (data && len > SWIM_META_MAX))
        return -EINVAL;
    meta_field saved[HMS_META_FIELDS_MAX];
    size_t saved_n = p->nmeta;
    memcpy(saved, p->meta, sizeof(saved));
    size_t i;
    for (i = 0; i < p->nmeta; i++)
        if (strcmp(p->meta[i].key, key) == 0)
            break;
    if (!data) {
        if (i == p->nmeta)
            return 0;
        memmove(&p->meta[i], &p->meta[i + 1], (p->nmeta - i - 1) * sizeof(meta_field));
        p->nmeta--;
    } else {
        if (i == p->nmeta) {
            if (p->nmeta >= HMS_META_FIELDS_MAX)
                return -ENOSPC;
            p->nmeta++;
            snprintf(p->meta[i].key, sizeof(p->meta[i].key), "%s", key);
        }
        memcpy(p->meta[i].val, data, len);
        p->meta[i].len = len;
    }
    uint8_t buf[SWIM_META_MAX];
    size_t blen = 0;
    if (meta_encode(a, buf, sizeof(buf), &blen) < 0) {
        memcpy(p->meta, saved, sizeof(saved));
        p->nmeta = saved_n;
        return -ENOSPC;
    }
    if (a->swim) {
        int r = swim_set_meta(a->swim, hms_agent_now(a), buf, blen);
        hms_agent_swim_flush(a);
        if (r < 0) {
            memcpy(p->meta, saved, sizeof(saved));
            p->nmeta = saved_n;
            return r;
        }
    }
    return 0;
}

static bool rd_len(const uint8_t *m, size_t len, size_t *pos, size_t n, uint64_t *v)
{
    if (*pos + n > len)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | m[*pos + i];
    *pos += n;
    *v = x;
    return true;
}

int hms_meta_get_field(const uint8_t *meta, size_t meta_len, const char *key, const uint8_t **data,
                       size_t *len)
{
    size_t used, pos = 0;
    if (!meta || meta_len == 0)
        return -ENOENT;
    if (hms_mp_check(meta, meta_len, &used) < 0 || used != meta_len)
        return -EINVAL;
    uint64_t count;
    uint8_t t = meta[pos++];
    if ((t & 0xf0) == 0x80)
        count = t & 0x0f;
    else if (t == 0xde) {
        if (!rd_len(meta, meta_len, &pos, 2, &count))
            return -EINVAL;
    } else
        return -EINVAL;
    size_t klen = strlen(key);
    for (uint64_t i = 0; i < count; i++) {
        /* key: a str; value: any object, a bin or str is returned */
        size_t kstart = pos, ksz;
        if (hms_mp_check(meta + pos, meta_len - pos, &ksz) < 0)
            return -EINVAL;
        pos += ksz;
        size_t vstart = pos, vsz;
        if (hms_mp_check(meta + pos, meta_len - pos, &vsz) < 0)
            return -EINVAL;
        pos += vsz;
        const uint8_t *k = meta + kstart;
        uint64_t kn;
        size_t kp = 0;
        if ((k[0] & 0xe0) == 0xa0) {
            kn = k[0] & 0x1f;
            kp = 1;
        } else if (k[0] == 0xd9 && ksz >= 2) {
            kn = k[1];
            kp = 2;
        } else
            continue;
        if (kn != klen || kp + kn != ksz || memcmp(k + kp, key, klen) != 0)
            continue;
        const uint8_t *v = meta + vstart;
        size_t vp = 0;
        uint64_t vn;
        if (v[0] == 0xc4 || v[0] == 0xd9) {
            vn = vsz >= 2 ? v[1] : 0;
            vp = 2;
        } else if (v[0] == 0xc5 || v[0] == 0xda) {
            vn = vsz >= 3 ? ((uint64_t)v[1] << 8) | v[2] : 0;
            vp = 3;
        } else if ((v[0] & 0xe0) == 0xa0) {
            vn = v[0] & 0x1f;
            vp = 1;
        } else {
            return -EINVAL;
        }
        if (vp + vn != vsz)
            return -EINVAL;
        *data = v + vp;
        *len = (size_t)vn;
        return 0;
    }
    return -ENOENT;
}

/* --- listeners ------------------------------------------------------------ */

int hms_agent_on_member(hms_agent *a, hms_member_fn fn, void *ctx)
{
    struct hms_agent_priv *p = a->priv;
    if (p->nmembers >= HMS_AGENT_LISTENERS_MAX)
        return -ENOSPC;
    p->members[p->nmembers++] = (member_listener){fn, ctx};
    return 0;
}

int hms_agent_on_user(hms_agent *a, uint8_t kind, hms_user_fn fn, void *ctx)
{
    struct hms_agent_priv *p = a->priv;
    if (kind >= HMS_USER_KIND_MAX)
        return -EINVAL;
    if (p->nusers >= sizeof(p->users) / sizeof(p->users[0]))
        return -ENOSPC;
    p->users[p->nusers++] = (user_listener){fn, ctx, kind};
    return 0;
}

int hms_agent_broadcast(hms_agent *a, uint8_t kind, const uint8_t *data, size_t len)
{
    if (!a->swim)
        return -ENOTCONN;
    if (kind >= HMS_USER_KIND_MAX || len > SWIM_USER_MAX)
        return -EINVAL;
    int r = swim_broadcast(a->swim, hms_agent_now(a), kind, data, len);
    hms_agent_swim_flush(a);
    return r;
}

/* --- driving the core ------------------------------------------------------ */

static void swim_run(hms_agent *a);

typedef struct pushpull_ctx {
    hms_agent *a;
    uint64_t token;
    uint8_t key[32];
} pushpull_ctx;

static void pushpull_done(void *ctx, int status, const hms_peer *peer, const uint8_t *reply,
                          size_t len)
{
    pushpull_ctx *pc = ctx;
    hms_agent *a = pc->a;
    if (a->swim && !a->stopping) {
        const uint8_t *key = status == 0 && peer ? peer->key : pc->key;
        if (status != 0)
            HMS_DEBUG("swim: push-pull %" PRIu64 " failed: %s", pc->token, strerror(-status));
        swim_pushpull_done(a->swim, hms_agent_now(a), pc->token, key, status == 0 ? reply : NULL,
                           status == 0 ? len : 0);
        swim_run(a);
    }
    free(pc);
}

static void start_pushpull(hms_agent *a, const swim_output *o)
{
    pushpull_ctx *pc = calloc(1, sizeof(*pc));
    if (!pc)
        goto fail;
    pc->a = a;
    pc->token = o->token;
    if (o->to_key_known)
        memcpy(pc->key, o->to_key, 32);
    if (a->chan &&
        hms_chan_call(a->chan, o->to_key_known ? o->to_key : NULL, &o->to, "swim.pushpull", o->data,
                      o->len, PUSHPULL_TIMEOUT_MS, pushpull_done, pc, NULL) == 0)
        return;
    free(pc);
fail:
    /* Reported at once: the core expects every push-pull to complete. */
    swim_pushpull_done(a->swim, hms_agent_now(a), o->token, o->to_key, NULL, 0);
}

static void persist_incarnation(hms_agent *a, uint64_t inc)
{
    if (inc <= a->incarnation)
        return;
    char path[PATH_MAX];
    if (hms_agent_path(a, "incarnation", path, sizeof(path)) < 0)
        return;
    int r = write_u64_file(path, inc);
    if (r < 0)
        HMS_ERROR("agent: cannot persist incarnation %" PRIu64 " to '%s': %s", inc, path,
                  strerror(-r));
    else
        a->incarnation = inc;
}

static void handle_event(hms_agent *a, const swim_output *o)
{
    struct hms_agent_priv *p = a->priv;
    if (!o->member)
        return;
    if (o->event == SWIM_EV_USER) {
        uint8_t data[SWIM_USER_MAX];
        size_t len = o->len < sizeof(data) ? o->len : sizeof(data);
        memcpy(data, o->data, len);
        swim_member_info from;
        memcpy(&from, o->member, sizeof(from));
        for (size_t i = 0; i < p->nusers; i++)
            if (p->users[i].kind == o->user_kind)
                p->users[i].fn(a, &from, data, len, p->users[i].ctx);
        return;
    }
    swim_member_info m;
    memcpy(&m, o->member, sizeof(m));
    char addr[HMS_ADDR_STRLEN];
    hms_addr_format(&m.addr, addr, sizeof(addr));
    switch (o->event) {
    case SWIM_EV_INCARNATION:
        persist_incarnation(a, m.incarnation);
        break;
    case SWIM_EV_JOIN:
        HMS_INFO("member %s joined (%s, incarnation %" PRIu64 ")", m.name, addr, m.incarnation);
        break;
    case SWIM_EV_SUSPECT:
        HMS_INFO("member %s is suspect (%s)", m.name, addr);
        break;
    case SWIM_EV_ALIVE:
        HMS_INFO("member %s is alive (%s, incarnation %" PRIu64 ")", m.name, addr, m.incarnation);
        break;
    case SWIM_EV_DEAD:
        HMS_WARN("member %s is dead (%s)", m.name, addr);
        break;
    case SWIM_EV_LEFT:
        HMS_INFO("member %s left (%s)", m.name, addr);
        break;
    case SWIM_EV_REAPED:
        HMS_INFO("member %s forgotten", m.name);
        if (a->sealer)
            hms_sealer_forget(a->sealer, m.key);
        break;
    case SWIM_EV_CONFLICT:
        HMS_WARN("member name %s claimed by another key from %s: refused", m.name, addr);
        break;
    case SWIM_EV_UPDATE:
        HMS_DEBUG("member %s updated (%s)", m.name, addr);
        break;
    default:
        break;
    }
    for (size_t i = 0; i < p->nmembers; i++)
        p->members[i].fn(a, o->event, &m, p->members[i].ctx);
}

static void drain(hms_agent *a)
{
    struct hms_agent_priv *p = a->priv;
    if (p->draining || !a->swim)
        return;
    p->draining = true;
    swim_output o;
    while (a->swim && swim_poll(a->swim, &o)) {
        switch (o.kind) {
        case SWIM_OUT_UDP:
            if (a->udp)
                hms_udp_send(a->udp, &o);
            break;
        case SWIM_OUT_PUSHPULL:
            start_pushpull(a, &o);
            break;
        case SWIM_OUT_EVENT:
            handle_event(a, &o);
            break;
        }
    }
    p->draining = false;
}

static void swim_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    swim_run(w->data);
}

static void swim_run(hms_agent *a)
{
    struct hms_agent_priv *p = a->priv;
    if (!a->swim || p->draining || a->stopping) {
        /* The outer drain collects whatever this call queued. */
        return;
    }
    drain(a);
    hms_time now = hms_agent_now(a);
    hms_time next = swim_tick(a->swim, now);
    drain(a);
    /* At least 1 ms, so a deadline already past cannot make the loop spin;
     * at most 5 s, so the core is ticked even if it asks for nothing. */
    double after = next > now ? (double)(next - now) / 1e6 : 0.;
    if (after < 0.001)
        after = 0.001;
    if (after > 5.)
        after = 5.;
    ev_timer_stop(a->loop, &p->swim_timer);
    ev_timer_set(&p->swim_timer, after, 0.);
    ev_timer_start(a->loop, &p->swim_timer);
}

void hms_agent_swim_flush(hms_agent *a)
{
    swim_run(a);
}

void hms_agent_join(hms_agent *a, const hms_addr *seeds, size_t n)
{
    if (!a->swim || n == 0)
        return;
    swim_join(a->swim, hms_agent_now(a), seeds, n);
    swim_run(a);
}

/* --- channel RPC ---------------------------------------------------------- */

int hms_agent_rpc_handle(hms_agent *a, const char *method, hms_rpc_handler fn, void *ctx)
{
    if (!a->chan)
        return -ENOTCONN;
    return hms_chan_handle(a->chan, method, fn, ctx);
}

int hms_agent_rpc_call(hms_agent *a, const uint8_t *key, const hms_addr *addr, const char *method,
                       const uint8_t *req, size_t len, uint32_t timeout_ms, hms_rpc_done done,
                       void *ctx, uint64_t *call_id)
{
    if (!a->chan)
        return -ENOTCONN;
    hms_addr to;
    if (addr) {
        to = *addr;
    } else {
        const swim_member_info *m = key && a->swim ? swim_member_by_key(a->swim, key) : NULL;
        if (!m)
            return -EHOSTUNREACH;
        to = m->addr;
    }
    return hms_chan_call(a->chan, key, &to, method, req, len, timeout_ms, done, ctx, call_id);
}

static void serve_pushpull(void *ctx, hms_rpc_call *call, const hms_peer *peer, const uint8_t *req,
                           size_t len)
{
    hms_agent *a = ctx;
    if (!a->swim || a->leaving) {
        hms_rpc_reply(call, -EAGAIN, NULL, 0);
        return;
    }
    const uint8_t *reply = NULL;
    size_t rlen = 0;
    int r = swim_pushpull_serve(a->swim, hms_agent_now(a), &peer->addr, peer->key, req, len, &reply,
                                &rlen);
    hms_rpc_reply(call, r, r == 0 ? reply : NULL, r == 0 ? rlen : 0);
    swim_run(a);
}

/* --- subsystems ----------------------------------------------------------- */

static int trust_start(hms_agent *a, char *err, size_t errlen)
{
    return hms_identity_start(a, err, errlen);
}

static void trust_stop(hms_agent *a)
{
    hms_identity_stop(a);
}

static int swim_admit(void *ctx, const swim_member_info *m)
{
    return hms_identity_admit(ctx, m);
}

static int seal_check(void *ctx, const uint8_t ed_pk[32])
{
    return hms_identity_seal_check(ctx, ed_pk);
}

static int chan_verify(void *ctx, const uint8_t *cert, size_t len, hms_peer *out)
{
    return hms_identity_verify_peer(ctx, cert, len, out);
}

static int swim_start_parts(hms_agent *a, char *err, size_t errlen)
{
    struct hms_agent_priv *p = a->priv;
    char addr[HMS_ADDR_STRLEN];
    int r = bump_counter(a, "epoch", &a->seal_epoch, err, errlen);
    if (r < 0)
        return r;
    uint64_t inc;
    r = bump_counter(a, "incarnation", &inc, err, errlen);
    if (r < 0)
        return r;
    a->incarnation = inc;
    a->sealer = hms_sealer_new(a->ed_sk, a->seal_epoch, seal_check, a);
    if (!a->sealer) {
        snprintf(err, errlen, "cannot create the packet sealer: out of memory");
        return -ENOMEM;
    }
    r = hms_udp_new(a, &a->udp);
    if (r < 0) {
        snprintf(err, errlen, "cannot bind UDP %s: %s",
                 hms_addr_format(&a->cfg->bind, addr, sizeof(addr)), strerror(-r));
        return r;
    }
    hms_chan_config cc = {
        .loop = a->loop,
        .bind = a->cfg->bind,
        .static_sk = a->x_sk,
        .cert = a->cert,
        .cert_len = a->cert_len,
        .verify = chan_verify,
        .verify_ctx = a,
    };
    r = hms_chan_pool_new(&cc, &a->chan);
    if (r < 0) {
        snprintf(err, errlen, "cannot listen on TCP %s: %s",
                 hms_addr_format(&a->cfg->bind, addr, sizeof(addr)), strerror(-r));
        return r;
    }
    uint8_t meta[SWIM_META_MAX];
    size_t meta_len = 0;
    meta_encode(a, meta, sizeof(meta), &meta_len);
    uint64_t seed;
    randombytes_buf(&seed, sizeof(seed));
    swim_config sc = {
        .name = a->name,
        .addr = a->advertise,
        .incarnation = inc,
        .seed = seed,
        .profile = a->cfg->profile,
        .meta = meta,
        .meta_len = meta_len,
        .cert = a->cert,
        .cert_len = a->cert_len,
        .admit = swim_admit,
        .admit_ctx = a,
    };
    memcpy(sc.key, a->ed_pk, 32);
    a->swim = swim_new(&sc, hms_agent_now(a));
    if (!a->swim) {
        snprintf(err, errlen, "cannot start membership: invalid settings or out of memory");
        return -EINVAL;
    }
    r = hms_chan_handle(a->chan, "swim.pushpull", serve_pushpull, a);
    if (r < 0) {
        snprintf(err, errlen, "cannot register swim.pushpull: %s", strerror(-r));
        return r;
    }
    ev_timer_init(&p->swim_timer, swim_timer_cb, 0., 0.);
    p->swim_timer.data = a;
    HMS_INFO("agent %s: gossip on %s (udp+tcp), advertising %s, incarnation %" PRIu64
             ", profile %s",
             a->name, hms_addr_format(&a->cfg->bind, addr, sizeof(addr)),
             hms_addr_format(&a->advertise, (char[HMS_ADDR_STRLEN]){0}, HMS_ADDR_STRLEN), inc,
             a->cfg->profile_name);
    swim_run(a);
    return 0;
}

static void swim_stop(hms_agent *a);

/* A failed start undoes what it did: the module table only stops modules
 * that started. */
static int swim_start(hms_agent *a, char *err, size_t errlen)
{
    int r = swim_start_parts(a, err, errlen);
    if (r < 0)
        swim_stop(a);
    return r;
}

/* Closes every channel. Pending calls complete with -ECANCELED now, while
 * the subsystems that made them still exist; calls made from those
 * callbacks fail at once (a->chan is NULL by then). */
static void close_channels(hms_agent *a)
{
    hms_chan_pool *p = a->chan;
    a->chan = NULL;
    if (p)
        hms_chan_pool_delete(p);
}

static void swim_stop(hms_agent *a)
{
    ev_timer_stop(a->loop, &a->priv->swim_timer);
    ev_timer_stop(a->loop, &a->priv->leave_timer);
    close_channels(a);
    if (a->udp)
        hms_udp_delete(a->udp);
    a->udp = NULL;
    if (a->swim)
        swim_delete(a->swim);
    a->swim = NULL;
    if (a->sealer)
        hms_sealer_delete(a->sealer);
    a->sealer = NULL;
}

int hms_members_ops_register(hms_agent *a); /* ops_members.c */

static int api_start(hms_agent *a, char *err, size_t errlen)
{
    int r = hms_members_ops_register(a);
    if (r < 0) {
        snprintf(err, errlen, "cannot register membership operations: %s", strerror(-r));
        return r;
    }
    return hms_api_listen(a->api, a->cfg->socket_path, a->cfg->admin_gid, err, errlen);
}

static void api_stop(hms_agent *a)
{
    /* The server object lives until hms_agent_delete: subsystems stopped
     * before it may still hold streams. */
}

/*
 * Subsystems, started in this order and stopped in reverse. A subsystem
 * adds one line here with its start and stop functions (from its public
 * header): start may register API ops, RPC methods, listeners and meta
 * fields; on failure it writes a message into err and returns < 0.
 */
static const agent_module modules[] = {
    {"trust", trust_start, trust_stop},
    {"swim", swim_start, swim_stop},
    {"audit", hms_audit_start, hms_audit_stop},
    {"catalog", hms_catalog_start, hms_catalog_stop},
    {"api", api_start, api_stop},
};
#define NMODULES (sizeof(modules) / sizeof(modules[0]))

/* --- lifecycle ------------------------------------------------------------ */

int hms_agent_new(struct ev_loop *loop, const hms_config *cfg, hms_agent **out, char *err,
                  size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "cannot initialise libsodium");
        return -EIO;
    }
    hms_agent *a = calloc(1, sizeof(*a));
    struct hms_agent_priv *p = calloc(1, sizeof(*p));
    if (!a || !p) {
        free(a);
        free(p);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    a->priv = p;
    p->lock_fd = -1;
    a->loop = loop;
    a->cfg = cfg;
    snprintf(a->name, sizeof(a->name), "%s", cfg->node);
    snprintf(a->data_dir, sizeof(a->data_dir), "%s", cfg->data_dir);
    ev_timer_init(&p->swim_timer, swim_timer_cb, 0., 0.);
    ev_timer_init(&p->leave_timer, NULL, 0., 0.);
    int r = open_data_dir(a, err, errlen);
    if (r < 0) {
        hms_agent_delete(a);
        return r;
    }
    choose_advertise(a);
    a->api = hms_api_new(a, loop);
    if (!a->api) {
        snprintf(err, errlen, "out of memory");
        hms_agent_delete(a);
        return -ENOMEM;
    }
    *out = a;
    return 0;
}

int hms_agent_start(hms_agent *a, char *err, size_t errlen)
{
    struct hms_agent_priv *p = a->priv;
    for (size_t i = 0; i < NMODULES; i++) {
        char why[512] = "";
        int r = modules[i].start(a, why, sizeof(why));
        if (r < 0) {
            snprintf(err, errlen, "%s", why[0] ? why : strerror(-r));
            while (p->started > 0) {
                p->started--;
                modules[p->started].stop(a);
            }
            return r;
        }
        p->started = i + 1;
    }
    if (a->cfg->join_count)
        hms_agent_join(a, a->cfg->join, a->cfg->join_count);
    return 0;
}

static void leave_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    hms_agent *a = w->data;
    struct hms_agent_priv *p = a->priv;
    hms_time now = hms_agent_now(a);
    if (a->swim && !swim_leave_propagated(a->swim, now) && now < p->leave_deadline)
        return;
    ev_timer_stop(loop, w);
    HMS_INFO("agent %s: leave %s", a->name,
             now < p->leave_deadline ? "propagated" : "timed out waiting for acknowledgement");
    if (p->leave_done) {
        void (*done)(hms_agent *, void *) = p->leave_done;
        p->leave_done = NULL;
        done(a, p->leave_ctx);
    }
}

void hms_agent_leave(hms_agent *a, uint32_t max_ms, void (*done)(hms_agent *a, void *ctx),
                     void *ctx)
{
    struct hms_agent_priv *p = a->priv;
    if (a->leaving) {
        if (done && !p->leave_done) {
            p->leave_done = done;
            p->leave_ctx = ctx;
        }
        return;
    }
    a->leaving = true;
    p->leave_done = done;
    p->leave_ctx = ctx;
    HMS_INFO("agent %s: leaving the cluster", a->name);
    hms_time now = hms_agent_now(a);
    p->leave_deadline = now + HMS_MS(max_ms);
    if (a->swim) {
        swim_leave(a->swim, now);
        swim_run(a);
    }
    ev_timer_init(&p->leave_timer, leave_check_cb, 0.05, 0.05);
    p->leave_timer.data = a;
    ev_timer_start(a->loop, &p->leave_timer);
}

static void shutdown_done(hms_agent *a, void *ctx)
{
    a->stopping = true;
    ev_break(a->loop, EVBREAK_ALL);
}

void hms_agent_shutdown(hms_agent *a, uint32_t max_ms)
{
    hms_agent_leave(a, max_ms, shutdown_done, NULL);
}

void hms_agent_delete(hms_agent *a)
{
    if (!a)
        return;
    struct hms_agent_priv *p = a->priv;
    a->stopping = true;
    /* Clients first, then channels: streams' on_close and cancelled calls'
     * callbacks run while every subsystem is still there. */
    hms_api_delete(a->api);
    a->api = NULL;
    close_channels(a);
    while (p->started > 0) {
        p->started--;
        modules[p->started].stop(a);
    }
    ev_timer_stop(a->loop, &p->swim_timer);
    ev_timer_stop(a->loop, &p->leave_timer);
    if (p->lock_fd >= 0)
        close(p->lock_fd);
    sodium_memzero(a->ed_sk, sizeof(a->ed_sk));
    sodium_memzero(a->x_sk, sizeof(a->x_sk));
    free(p);
    free(a);
}

void hms_agent_get_udp_stats(const hms_agent *a, hms_agent_udp_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (a->udp)
        hms_udp_get_stats(a->udp, out);
}
