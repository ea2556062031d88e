/*
 * hmsctl: global options (--socket PATH, $HMS_SOCKET, --json anywhere),
 * dispatch over the subcommand tables, help, and the membership commands
 * (members, member, join, leave, stats, watch).
 *
 * Exit codes: 0 ok, 1 the operation failed (the agent said no), 2 usage
 * error, 3 the agent is not reachable (not running, or the socket is not
 * accessible to this user).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "libclient/hms.h"
#include "libclient/hmsctl.h"
#include "proto/api.h"

/* Subsystems contribute their table from their own hmsctl_*.c file; a
 * table whose file is not part of this build is absent (weak), so the
 * command line shows exactly the commands that exist. */
#pragma weak hmsctl_ca_cmds
#pragma weak hmsctl_catalog_cmds
#pragma weak hmsctl_audit_cmds

static const hmsctl_cmd *command_tables(size_t i)
{
    switch (i) {
    case 0:
        return hmsctl_core_cmds;
    case 1:
        return hmsctl_ca_cmds;
    case 2:
        return hmsctl_catalog_cmds;
    case 3:
        return hmsctl_audit_cmds;
    default:
        return NULL;
    }
}
#define COMMAND_TABLES 4

int hmsctl_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

static const hmsctl_cmd *find_cmd(const char *name)
{
    for (size_t t = 0; t < COMMAND_TABLES; t++) {
        const hmsctl_cmd *tab = command_tables(t);
        for (const hmsctl_cmd *c = tab; c && c->name; c++)
            if (strcmp(c->name, name) == 0)
                return c;
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: hmsctl [--socket PATH] [--json] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t t = 0; t < COMMAND_TABLES; t++) {
        const hmsctl_cmd *tab = command_tables(t);
        for (const hmsctl_cmd *c = tab; c && c->name; c++) {
            const char *u = c->usage ? c->usage : c->name;
            if (strlen(u) > 40)
                fprintf(f, "  %s\n  %-40s %s\n", u, "", c->help ? c->help : "");
            else
                fprintf(f, "  %-40s %s\n", u, c->help ? c->help : "");
        }
    }
    fprintf(f,
            "\n'hmsctl COMMAND --help' shows one command. The socket is --socket, else "
            "$HMS_SOCKET, else %s.\nexit codes: 0 ok, 1 failed, 2 usage, 3 agent not "
            "reachable\n",
            HMS_SOCKET_DEFAULT);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static int cmd_help(const hmsctl_cmd *c)
{
    printf("usage: hmsctl %s\n%s\n", c->usage ? c->usage : c->name, c->help ? c->help : "");
    return HMSCTL_OK;
}

/* --- shared by the core commands ------------------------------------------ */

static int connect_agent(const hmsctl_globals *g, hms_client **c)
{
    int r = hms_connect(g->socket_path, c);
    if (r == 0)
        return 0;
    if (r == -EACCES || r == -EPERM)
        return hmsctl_error(HMSCTL_UNREACHABLE,
                            "cannot connect to the agent at '%s': "
                            "permission denied (ask for the agent's group)",
                            g->socket_path);
    if (r == -ENOENT || r == -ECONNREFUSED)
        return hmsctl_error(HMSCTL_UNREACHABLE,
                            "cannot connect to the agent at '%s': "
                            "hms-agent is not running (%s)",
                            g->socket_path, strerror(-r));
    return hmsctl_error(HMSCTL_UNREACHABLE, "cannot connect to the agent at '%s': %s",
                        g->socket_path, hms_strerror(r));
}

static int request_failed(hms_client *c, int r, const char *what)
{
    if (r == -EREMOTEIO)
        return hmsctl_error(HMSCTL_FAIL, "%s: %s", what, hms_last_error(c));
    if (r == -EPIPE || r == -ECONNRESET)
        return hmsctl_error(HMSCTL_UNREACHABLE, "%s: the agent closed the connection", what);
    return hmsctl_error(HMSCTL_FAIL, "%s: %s", what, hms_strerror(r));
}

static void print_json(const msgpack_object *o, bool compact)
{
    json_t *j = hms_json_from_msgpack(o);
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY | (compact ? JSON_COMPACT : JSON_INDENT(2))) : NULL;
    puts(s ? s : "null");
    free(s);
    json_decref(j);
}

static void format_age(double s, char *buf, size_t cap)
{
    if (s < 60)
        snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, cap, "%.0fm", s / 60);
    else if (s < 86400)
        snprintf(buf, cap, "%.1fh", s / 3600);
    else
        snprintf(buf, cap, "%.1fd", s / 86400);
}

/* --- members ---------------------------------------------------------------- */

static int pack_status(msgpack_packer *pk, void *ctx)
{
    const char *s = ctx;
    msgpack_pack_map(pk, s ? 1 : 0);
    if (s) {
        msgpack_pack_str_with_body(pk, "status", 6);
        msgpack_pack_str_with_body(pk, s, strlen(s));
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strverscmp(((const hms_member *)a)->name, ((const hms_member *)b)->name);
}

static int cmd_members(int argc, char **argv, const hmsctl_globals *g)
{
    const char *status = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0 && i + 1 < argc)
            status = argv[++i];
        else if (strncmp(argv[i], "--status=", 9) == 0)
            status = argv[i] + 9;
        else
            return hmsctl_error(HMSCTL_USAGE,
                                "unexpected argument '%s' (usage: members "
                                "[--status alive|suspect|dead|left])",
                                argv[i]);
    }
    if (status && strcmp(status, "alive") && strcmp(status, "suspect") && strcmp(status, "dead") &&
        strcmp(status, "left"))
        return hmsctl_error(HMSCTL_USAGE,
                            "invalid status '%s': expected alive, suspect, "
                            "dead or left",
                            status);
    hms_client *c;
    int r = connect_agent(g, &c);
    if (r)
        return r;
    hms_reply rep;
    r = hms_request(c, "members", pack_status, (void *)status, &rep);
    if (r < 0) {
        r = request_failed(c, r, "members");
        hms_reply_destroy(&rep);
        hms_close(c);
        return r;
    }
    if (g->json) {
        print_json(rep.result, false);
    } else if (rep.result->type == MSGPACK_OBJECT_ARRAY) {
        uint32_t n = rep.result->via.array.size, k = 0;
        hms_member *ms = calloc(n ? n : 1, sizeof(*ms));
        for (uint32_t i = 0; ms && i < n; i++)
            if (hms_member_from_msgpack(&rep.result->via.array.ptr[i], &ms[k]) == 0)
                k++;
        if (ms)
            qsort(ms, k, sizeof(*ms), by_name);
        printf("%-20s %-24s %-8s %11s  %-16s %s\n", "NAME", "ADDRESS", "STATUS", "INCARNATION",
               "KEY", "SINCE");
        for (uint32_t i = 0; i < k; i++) {
            const hms_member m = ms[i];
            char age[16];
            format_age(m.since_s, age, sizeof(age));
            printf("%-20s %-24s %-8s %11llu  %-16s %s%s\n", m.name, m.address, m.status,
                   (unsigned long long)m.incarnation, m.key_id, age, m.self ? "  (self)" : "");
        }
        free(ms);
    }
    hms_reply_destroy(&rep);
    hms_close(c);
    return HMSCTL_OK;
}

static int cmd_member(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc != 2 || argv[1][0] == '-')
        return hmsctl_error(HMSCTL_USAGE, "usage: member NAME");
    hms_client *c;
    int r = connect_agent(g, &c);
    if (r)
        return r;
    hms_member m;
    r = hms_member_get(c, argv[1], &m);
    if (r < 0) {
        r = request_failed(c, r, "member");
        hms_close(c);
        return r;
    }
    if (g->json) {
        json_t *j =
            json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:f, s:b}", "name", m.name, "address",
                      m.address, "status", m.status, "incarnation", (json_int_t)m.incarnation,
                      "key", m.key, "key_id", m.key_id, "since_s", m.since_s, "self", m.self);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s ? s : "null");
        free(s);
        json_decref(j);
    } else {
        char age[16];
        format_age(m.since_s, age, sizeof(age));
        printf("name:        %s%s\naddress:     %s\nstatus:      %s (for %s)\n"
               "incarnation: %llu\nkey:         %s\n",
               m.name, m.self ? " (self)" : "", m.address, m.status, age,
               (unsigned long long)m.incarnation, m.key);
    }
    hms_close(c);
    return HMSCTL_OK;
}

typedef struct addr_list {
    char **addrs;
    int n;
} addr_list;

static int pack_addrs(msgpack_packer *pk, void *ctx)
{
    const addr_list *l = ctx;
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "addresses", 9);
    msgpack_pack_array(pk, (size_t)l->n);
    for (int i = 0; i < l->n; i++)
        msgpack_pack_str_with_body(pk, l->addrs[i], strlen(l->addrs[i]));
    return 0;
}

static int cmd_join(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc < 2)
        return hmsctl_error(HMSCTL_USAGE, "usage: join ADDR[:PORT]...");
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-')
            return hmsctl_error(HMSCTL_USAGE,
                                "unknown option '%s' (usage: join "
                                "ADDR[:PORT]...)",
                                argv[i]);
    hms_client *c;
    int r = connect_agent(g, &c);
    if (r)
        return r;
    addr_list l = {argv + 1, argc - 1};
    hms_reply rep;
    r = hms_request(c, "join", pack_addrs, &l, &rep);
    if (r < 0) {
        r = request_failed(c, r, "join");
    } else if (g->json) {
        print_json(rep.result, false);
    } else {
        const msgpack_object *n = hms_mp_get(rep.result, "reached");
        printf("reached %llu of %d seed(s); the agent keeps retrying the others\n",
               n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (unsigned long long)n->via.u64
                                                               : 0ULL,
               argc - 1);
    }
    hms_reply_destroy(&rep);
    hms_close(c);
    return r;
}

static int cmd_leave(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc != 1)
        return hmsctl_error(HMSCTL_USAGE, "usage: leave");
    hms_client *c;
    int r = connect_agent(g, &c);
    if (r)
        return r;
    hms_reply rep;
    r = hms_request(c, "leave", NULL, NULL, &rep);
    if (r < 0)
        r = request_failed(c, r, "leave");
    else if (g->json)
        print_json(rep.result, false);
    else
        printf("the agent is leaving the cluster and will exit\n");
    hms_reply_destroy(&rep);
    hms_close(c);
    return r;
}

static void print_flat(const char *prefix, const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                continue;
            char name[256];
            snprintf(name, sizeof(name), "%s%s%.*s", prefix, *prefix ? "." : "",
                     (int)kv->key.via.str.size, kv->key.via.str.ptr);
            print_flat(name, &kv->val);
        }
        return;
    }
    json_t *j = hms_json_from_msgpack(o);
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    printf("%-36s %s\n", prefix, s ? s : "null");
    free(s);
    json_decref(j);
}

static int cmd_stats(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc != 1)
        return hmsctl_error(HMSCTL_USAGE, "usage: stats");
    hms_client *c;
    int r = connect_agent(g, &c);
    if (r)
        return r;
    hms_reply rep;
    r = hms_stats(c, &rep);
    if (r < 0)
        r = request_failed(c, r, "stats");
    else if (g->json)
        print_json(rep.result, false);
    else
        print_flat("", rep.result);
    hms_reply_destroy(&rep);
    hms_close(c);
    return r;
}

/* `watch NAME ...` watches a service (the catalog's watch-service); plain
 * `watch` watches membership. */
static int watch_service(int argc, char **argv, const hmsctl_globals *g)
{
    for (const hmsctl_cmd *t = &hmsctl_catalog_cmds ? hmsctl_catalog_cmds : NULL; t && t->name;
         t++)
        if (strcmp(t->name, "watch-service") == 0)
            return t->fn(argc, argv, g);
    return hmsctl_error(HMSCTL_USAGE, "this hmsctl has no service catalog commands");
}

static int cmd_watch(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc > 1 && argv[1][0] != '-')
        return watch_service(argc, argv, g);
    long count = -1;
    double timeout = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = strtol(argv[++i], &end, 10);
            if (*end || count < 1)
                return hmsctl_error(HMSCTL_USAGE, "invalid --count '%s'", argv[i]);
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout = strtod(argv[++i], &end);
            if (*end || timeout <= 0)
                return hmsctl_error(HMSCTL_USAGE, "invalid --timeout '%s' (seconds)", argv[i]);
        } else {
            return hmsctl_error(HMSCTL_USAGE,
                                "unexpected argument '%s' (usage: watch "
                                "[--count N] [--timeout SECONDS])",
                                argv[i]);
        }
    }
    hms_client *c;
    int r = connect_agent(g, &c);
    if (r)
        return r;
    r = hms_stream_start(c, "watch", NULL, NULL);
    if (r < 0) {
        r = request_failed(c, r, "watch");
        hms_close(c);
        return r;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long seen = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        uint32_t wait_ms = 0;
        if (timeout > 0) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            double left =
                timeout - ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9);
            if (left <= 0) {
                r = HMSCTL_OK;
                break;
            }
            wait_ms = (uint32_t)(left * 1000) + 1;
        }
        hms_reply rep;
        r = hms_stream_next(c, wait_ms, &rep);
        if (r == -ETIMEDOUT) {
            hms_reply_destroy(&rep);
            r = HMSCTL_OK;
            break;
        }
        if (r < 0) {
            hms_reply_destroy(&rep);
            r = request_failed(c, r, "watch");
            break;
        }
        char ev[16] = "";
        hms_mp_str_copy(hms_mp_get(rep.result, "event"), ev, sizeof(ev));
        hms_member m;
        bool is_member = hms_member_from_msgpack(hms_mp_get(rep.result, "member"), &m) == 0;
        if (g->json) {
            print_json(rep.result, true);
        } else if (strcmp(ev, "watching") == 0) {
            const msgpack_object *n = hms_mp_get(rep.result, "members");
            fprintf(stderr, "watching %llu members (Ctrl-C to stop)\n",
                    n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (unsigned long long)n->via.u64
                                                                    : 0ULL);
        } else if (is_member) {
            time_t now = time(NULL);
            struct tm tm;
            char ts[32];
            strftime(ts, sizeof(ts), "%H:%M:%S", localtime_r(&now, &tm));
            printf("%s %-8s %-20s %-24s %-8s incarnation %llu\n", ts, ev, m.name, m.address,
                   m.status, (unsigned long long)m.incarnation);
        }
        bool more = rep.more;
        hms_reply_destroy(&rep);
        if (is_member && count > 0 && ++seen >= count) {
            r = HMSCTL_OK;
            break;
        }
        if (!more) {
            r = HMSCTL_OK;
            break;
        }
    }
    hms_close(c);
    return r;
}

const hmsctl_cmd hmsctl_core_cmds[] = {
    {"members", cmd_members, "members [--status alive|suspect|dead|left]",
     "list the cluster's members as this agent sees them"},
    {"member", cmd_member, "member NAME", "show one member"},
    {"join", cmd_join, "join ADDR[:PORT]...", "join the cluster through these seeds (admin)"},
    {"leave", cmd_leave, "leave", "leave the cluster gracefully; the agent exits (admin)"},
    {"stats", cmd_stats, "stats", "agent counters: gossip, drops by reason, API, channels"},
    {"watch", cmd_watch, "watch [--count N] [--timeout SECONDS] | watch NAME [--tag T]... [--all]",
     "print membership changes as they happen; with NAME, a service's instances"},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    hmsctl_globals g = {.socket_path = NULL, .json = false};
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    if (!args)
        return hmsctl_error(HMSCTL_FAIL, "out of memory");
    int n = 0;
    bool before_cmd = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            g.json = true;
        } else if (strcmp(argv[i], "--socket") == 0) {
            if (i + 1 >= argc) {
                free(args);
                return hmsctl_error(HMSCTL_USAGE, "option '--socket' needs a path");
            }
            g.socket_path = argv[++i];
        } else if (strncmp(argv[i], "--socket=", 9) == 0) {
            g.socket_path = argv[i] + 9;
        } else if (before_cmd && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
                                  strcmp(argv[i], "help") == 0)) {
            if (i + 1 < argc && argv[i + 1][0] != '-') {
                const hmsctl_cmd *c = find_cmd(argv[i + 1]);
                free(args);
                if (!c)
                    return hmsctl_error(HMSCTL_USAGE, "unknown command '%s'", argv[i + 1]);
                return cmd_help(c);
            }
            usage(stdout);
            free(args);
            return HMSCTL_OK;
        } else if (before_cmd && argv[i][0] == '-') {
            free(args);
            return hmsctl_error(HMSCTL_USAGE, "unknown option '%s' (see 'hmsctl --help')", argv[i]);
        } else {
            before_cmd = false;
            args[n++] = argv[i];
        }
    }
    if (!g.socket_path || !*g.socket_path)
        g.socket_path = getenv("HMS_SOCKET");
    if (!g.socket_path || !*g.socket_path)
        g.socket_path = HMS_SOCKET_DEFAULT;
    if (n == 0) {
        usage(stderr);
        free(args);
        return HMSCTL_USAGE;
    }
    const hmsctl_cmd *c = find_cmd(args[0]);
    int r;
    if (!c) {
        r = hmsctl_error(HMSCTL_USAGE, "unknown command '%s' (see 'hmsctl --help')", args[0]);
    } else if (n == 2 && (strcmp(args[1], "--help") == 0 || strcmp(args[1], "-h") == 0)) {
        r = cmd_help(c);
    } else if (c->fn == cmd_members || c->fn == cmd_member || c->fn == cmd_join ||
               c->fn == cmd_leave || c->fn == cmd_stats || c->fn == cmd_watch) {
        r = wants_help(n, args) ? cmd_help(c) : c->fn(n, args, &g);
    } else {
        r = c->fn(n, args, &g);
    }
    free(args);
    return r;
}
