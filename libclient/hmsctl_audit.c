/*
 * hmsctl audit: the audit log from the command line.
 *
 *   audit tail [--node N] [-n K] [-f]      last entries (and follow)
 *   audit get --request-id ID [--node N]   one log's entries for a request
 *   audit trace ID                         every log's entries for a request, by time
 *   audit verify [--node N | --all]        chains, seals, replicas, forks
 *   audit export [--since T] [--node N]    JSON lines for a SIEM
 *   audit status                           per log: last sequence, seals, replicas
 *   audit append --kind K [--request-id ID] [--actor NAME] [--field k=v]... [--durable]
 *   audit import FILE [--node N]           check and store a segment file (admin)
 *
 * Entries print one per line: time, node, sequence, kind, request id,
 * actor, fields. --json prints one JSON object per line for entries, one
 * document for reports. verify exits 1 when anything fails, naming what and
 * where.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libclient/hms.h"
#include "libclient/hms_audit.h"
#include "libclient/hmsctl.h"

static int connect_or_fail(const hmsctl_globals *g, hms_client **c)
{
    int rc = hms_connect(g->socket_path, c);
    if (rc)
        return hmsctl_error(HMSCTL_UNREACHABLE, "cannot reach the agent at '%s': %s",
                            g->socket_path, hms_strerror(rc));
    hms_set_timeout(*c, 30000);
    return 0;
}

static int failed(hms_client *c, int rc, const char *what)
{
    int code = rc == -EREMOTEIO ? HMSCTL_FAIL
               : (rc == -EPIPE || rc == -ECONNRESET) ? HMSCTL_UNREACHABLE
                                                     : HMSCTL_FAIL;
    int r = rc == -EREMOTEIO ? hmsctl_error(code, "%s: %s", what, hms_last_error(c))
                             : hmsctl_error(code, "%s: %s", what, hms_strerror(rc));
    hms_close(c);
    return r;
}

static void print_doc(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s)
        puts(s);
    free(s);
}

static int print_entry(json_t *e, void *ctx)
{
    const hmsctl_globals *g = ctx;
    if (g->json) {
        char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            puts(s);
        free(s);
        fflush(stdout);
        return 0;
    }
    const char *t = json_string_value(json_object_get(e, "time"));
    const char *node = json_string_value(json_object_get(e, "node"));
    const char *kind = json_string_value(json_object_get(e, "kind"));
    const char *rid = json_string_value(json_object_get(e, "request_id"));
    json_t *actor = json_object_get(e, "actor");
    char who[200] = "-";
    if (json_is_object(actor)) {
        json_t *uid = json_object_get(actor, "uid"), *pid = json_object_get(actor, "pid");
        const char *an = json_string_value(json_object_get(actor, "name"));
        snprintf(who, sizeof(who), "%s%s%lld/%lld", an ? an : "", an ? "@" : "",
                 json_is_integer(uid) ? (long long)json_integer_value(uid) : -1LL,
                 json_is_integer(pid) ? (long long)json_integer_value(pid) : -1LL);
    }
    char *f = json_dumps(json_object_get(e, "fields"), JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s %-10s #%-6lld %-18s %s %s %s\n", t ? t : "?", node ? node : "?",
           (long long)json_integer_value(json_object_get(e, "seq")), kind ? kind : "?",
           rid ? rid : "-", who, f ? f : "{}");
    free(f);
    fflush(stdout);
    return 0;
}

static void print_entries(json_t *arr, const hmsctl_globals *g)
{
    for (size_t i = 0; i < json_array_size(arr); i++)
        print_entry(json_array_get(arr, i), (void *)g);
}

/* --since: unix seconds, RFC 3339 UTC ("2026-12-04T20:00:00Z"), or an age
 * ("90s", "15m", "2h", "1d"). */
static int parse_since(const char *s, uint64_t *ns)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    time_t now = time(NULL);
    if (end != s && *end == 0) {
        *ns = v * 1000000000ULL;
        return 0;
    }
    if (end != s && end[1] == 0 && strchr("smhd", *end)) {
        unsigned long long mult = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : 86400;
        if (v * mult > (unsigned long long)now)
            return -EINVAL;
        *ns = ((uint64_t)now - v * mult) * 1000000000ULL;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest || (*rest && strcmp(rest, "Z") != 0))
        return -EINVAL;
    time_t t = timegm(&tm);
    if (t < 0)
        return -EINVAL;
    *ns = (uint64_t)t * 1000000000ULL;
    return 0;
}

static const char *usage_text =
    "usage: hmsctl audit tail [--node N] [-n K] [-f]\n"
    "       hmsctl audit get --request-id ID [--node N]\n"
    "       hmsctl audit trace ID\n"
    "       hmsctl audit verify [--node N | --all]\n"
    "       hmsctl audit export [--since T] [--node N]\n"
    "       hmsctl audit status\n"
    "       hmsctl audit append --kind K [--request-id ID] [--actor NAME] [--field k=v]... "
    "[--durable]\n"
    "       hmsctl audit import FILE [--node N]\n";

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "error: %s\n", msg);
    fputs(usage_text, stderr);
    return HMSCTL_USAGE;
}

static int cmd_tail(int argc, char **argv, const hmsctl_globals *g)
{
    const char *node = NULL;
    long n = 10;
    bool follow = false;
    static const struct option opts[] = {{"node", required_argument, NULL, 'N'},
                                         {"follow", no_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "n:f", opts, NULL)) != -1) {
        switch (o) {
        case 'N': node = optarg; break;
        case 'f': follow = true; break;
        case 'n': {
            char *end;
            n = strtol(optarg, &end, 10);
            if (*end || n < 0 || n > 100000)
                return usage("-n takes a count 0-100000");
            break;
        }
        default: return usage(NULL);
        }
    }
    if (optind != argc)
        return usage("audit tail takes no arguments besides options");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    if (follow) {
        hms_set_timeout(c, 0);
        rc = hms_client_audit_follow(c, node, (size_t)n, print_entry, (void *)g);
        if (rc < 0)
            return failed(c, rc, "audit tail");
        hms_close(c);
        return HMSCTL_OK;
    }
    json_t *arr;
    rc = hms_client_audit_tail(c, node, (size_t)n, &arr);
    if (rc)
        return failed(c, rc, "audit tail");
    print_entries(arr, g);
    json_decref(arr);
    hms_close(c);
    return HMSCTL_OK;
}

static int cmd_get(int argc, char **argv, const hmsctl_globals *g)
{
    const char *node = NULL, *rid = NULL;
    static const struct option opts[] = {{"node", required_argument, NULL, 'N'},
                                         {"request-id", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'N')
            node = optarg;
        else if (o == 'r')
            rid = optarg;
        else
            return usage(NULL);
    }
    if (!rid && optind < argc)
        rid = argv[optind++];
    if (!rid || optind != argc)
        return usage("audit get needs --request-id ID");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    json_t *arr;
    rc = hms_client_audit_get(c, rid, node, &arr);
    if (rc)
        return failed(c, rc, "audit get");
    print_entries(arr, g);
    json_decref(arr);
    hms_close(c);
    return HMSCTL_OK;
}

static int cmd_trace(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc != 2 || argv[1][0] == '-')
        return usage("audit trace needs one request id");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    json_t *arr;
    rc = hms_client_audit_trace(c, argv[1], &arr);
    if (rc)
        return failed(c, rc, "audit trace");
    if (json_array_size(arr) == 0 && !g->json)
        fprintf(stderr, "no entries for request '%s' in the logs this agent holds\n", argv[1]);
    print_entries(arr, g);
    json_decref(arr);
    hms_close(c);
    return HMSCTL_OK;
}

static int cmd_verify(int argc, char **argv, const hmsctl_globals *g)
{
    const char *node = NULL;
    bool all = false;
    static const struct option opts[] = {{"node", required_argument, NULL, 'N'},
                                         {"all", no_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'N')
            node = optarg;
        else if (o == 'a')
            all = true;
        else
            return usage(NULL);
    }
    if (optind != argc || (node && all))
        return usage("audit verify takes --node N or --all");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    json_t *rep;
    rc = hms_client_audit_verify(c, node, all, &rep);
    if (rc)
        return failed(c, rc, "audit verify");
    hms_close(c);
    bool ok = json_is_true(json_object_get(rep, "ok"));
    if (g->json) {
        print_doc(rep);
    } else {
        json_t *logs = json_object_get(rep, "logs");
        for (size_t i = 0; i < json_array_size(logs); i++) {
            json_t *l = json_array_get(logs, i);
            bool lok = json_is_true(json_object_get(l, "ok"));
            const char *key = json_string_value(json_object_get(l, "key"));
            printf("%-4s %-12s key %.16s  %lld segments, %lld entries%s\n", lok ? "ok" : "FAIL",
                   json_string_value(json_object_get(l, "node")), key ? key : "?",
                   (long long)json_integer_value(json_object_get(l, "segments")),
                   (long long)json_integer_value(json_object_get(l, "entries")),
                   json_is_true(json_object_get(l, "own")) ? " (this node)" : "");
            json_t *probs = json_object_get(l, "problems");
            for (size_t k = 0; k < json_array_size(probs); k++) {
                json_t *p = json_array_get(probs, k);
                const char *file = json_string_value(json_object_get(p, "file"));
                json_t *off = json_object_get(p, "offset"), *seg = json_object_get(p, "segment");
                printf("     %s", json_string_value(json_object_get(p, "what")));
                if (json_is_integer(seg))
                    printf(" (segment %lld", (long long)json_integer_value(seg));
                if (file)
                    printf("%s'%s'", json_is_integer(seg) ? ", " : " (", file);
                if (json_is_integer(off))
                    printf(" at offset %lld", (long long)json_integer_value(off));
                if (json_is_integer(seg) || file)
                    printf(")");
                printf("\n");
            }
            long long refused = json_integer_value(json_object_get(l, "refused_segments"));
            if (refused)
                printf("     alert: %lld segment(s) offered for this log were refused "
                       "(bad signature, wrong key or broken chain)\n", refused);
        }
        if (json_array_size(logs) == 0)
            printf("no logs held\n");
    }
    json_decref(rep);
    if (!ok && !g->json)
        fprintf(stderr, "error: audit verification failed\n");
    return ok ? HMSCTL_OK : HMSCTL_FAIL;
}

static int print_json_line(json_t *e, void *ctx)
{
    char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    return 0;
}

static int cmd_export(int argc, char **argv, const hmsctl_globals *g)
{
    const char *node = NULL;
    uint64_t since = 0;
    static const struct option opts[] = {{"node", required_argument, NULL, 'N'},
                                         {"since", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'N')
            node = optarg;
        else if (o == 's') {
            if (parse_since(optarg, &since))
                return usage("--since takes unix seconds, 2026-12-04T20:00:00Z, or an age like 15m");
        } else
            return usage(NULL);
    }
    if (optind != argc)
        return usage("audit export takes no arguments besides options");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    rc = hms_client_audit_export(c, node, since, print_json_line, NULL);
    if (rc)
        return failed(c, rc, "audit export");
    hms_close(c);
    return HMSCTL_OK;
}

static int cmd_status(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc != 1)
        return usage("audit status takes no arguments");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    json_t *st;
    rc = hms_client_audit_status(c, &st);
    if (rc)
        return failed(c, rc, "audit status");
    hms_close(c);
    if (g->json) {
        print_doc(st);
        json_decref(st);
        return HMSCTL_OK;
    }
    printf("node %s: next sequence %lld, durable below %lld, %lld fsyncs, %lld write errors%s\n",
           json_string_value(json_object_get(st, "node")),
           (long long)json_integer_value(json_object_get(st, "next_seq")),
           (long long)json_integer_value(json_object_get(st, "durable_seq")),
           (long long)json_integer_value(json_object_get(st, "fsyncs")),
           (long long)json_integer_value(json_object_get(st, "write_errors")),
           json_is_true(json_object_get(st, "disk_failed")) ? " (DISK FAILING)" : "");
    printf("%-12s %-16s %8s %10s %12s  %s\n", "LOG", "KEY", "SEGMENTS", "LAST SEQ", "LAST SEALED",
           "REPLICAS (last segment, lag)");
    json_t *logs = json_object_get(st, "logs");
    for (size_t i = 0; i < json_array_size(logs); i++) {
        json_t *l = json_array_get(logs, i);
        char reps[512] = "";
        size_t off = 0;
        json_t *rs = json_object_get(l, "replicas");
        for (size_t k = 0; k < json_array_size(rs) && off < sizeof(reps) - 64; k++) {
            json_t *r = json_array_get(rs, k);
            off += (size_t)snprintf(reps + off, sizeof(reps) - off, "%s%s(%lld, %lld)",
                                    k ? " " : "", json_string_value(json_object_get(r, "node")),
                                    (long long)json_integer_value(json_object_get(r, "last_segment")),
                                    (long long)json_integer_value(json_object_get(r, "lag_segments")));
        }
        json_t *ls = json_object_get(l, "last_seq"), *lsg = json_object_get(l, "last_sealed_segment");
        char a[32] = "-", b[32] = "-";
        if (json_is_integer(ls))
            snprintf(a, sizeof(a), "%lld", (long long)json_integer_value(ls));
        if (json_is_integer(lsg))
            snprintf(b, sizeof(b), "%lld", (long long)json_integer_value(lsg));
        printf("%-12s %.16s %8lld %10s %12s  %s%s\n", json_string_value(json_object_get(l, "node")),
               json_string_value(json_object_get(l, "key")),
               (long long)json_integer_value(json_object_get(l, "segments")), a, b,
               reps[0] ? reps : "-",
               json_integer_value(json_object_get(l, "forks")) ? "  FORKED" : "");
    }
    json_decref(st);
    return HMSCTL_OK;
}

static int cmd_append(int argc, char **argv, const hmsctl_globals *g)
{
    const char *kind = NULL, *rid = NULL, *actor = NULL;
    bool durable = false;
    json_t *fields = json_object();
    static const struct option opts[] = {{"kind", required_argument, NULL, 'k'},
                                         {"request-id", required_argument, NULL, 'r'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"field", required_argument, NULL, 'f'},
                                         {"durable", no_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'k': kind = optarg; break;
        case 'r': rid = optarg; break;
        case 'a': actor = optarg; break;
        case 'd': durable = true; break;
        case 'f': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                json_decref(fields);
                return usage("--field takes key=value");
            }
            char key[256];
            size_t kl = (size_t)(eq - optarg);
            if (kl >= sizeof(key)) {
                json_decref(fields);
                return usage("--field key too long");
            }
            memcpy(key, optarg, kl);
            key[kl] = 0;
            /* A value that is JSON (number, true, {...}) is kept as such. */
            json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
            json_object_set_new(fields, key, v ? v : json_string(eq + 1));
            break;
        }
        default: json_decref(fields); return usage(NULL);
        }
    }
    if (!kind || optind != argc) {
        json_decref(fields);
        return usage("audit append needs --kind K");
    }
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc) {
        json_decref(fields);
        return rc;
    }
    uint64_t seq = 0;
    rc = hms_client_audit_append(c, kind, rid, actor, fields, durable, &seq);
    json_decref(fields);
    if (rc)
        return failed(c, rc, "audit append");
    hms_close(c);
    if (g->json)
        printf("{\"seq\":%llu,\"durable\":%s}\n", (unsigned long long)seq, durable ? "true" : "false");
    else
        printf("appended entry %llu%s\n", (unsigned long long)seq, durable ? " (on disk)" : "");
    return HMSCTL_OK;
}

static int cmd_import(int argc, char **argv, const hmsctl_globals *g)
{
    const char *node = NULL;
    static const struct option opts[] = {{"node", required_argument, NULL, 'N'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'N')
            node = optarg;
        else
            return usage(NULL);
    }
    if (optind + 1 != argc)
        return usage("audit import needs one segment file");
    const char *path = argv[optind];
    FILE *f = fopen(path, "rb");
    if (!f)
        return hmsctl_error(HMSCTL_FAIL, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
        if (len == cap) {
            if (cap >= (16u << 20))
                break;
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return hmsctl_error(HMSCTL_FAIL, "out of memory reading '%s'", path);
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc) {
        free(buf);
        return rc;
    }
    char verdict[256];
    rc = hms_client_audit_import(c, buf, len, node, verdict, sizeof(verdict));
    free(buf);
    if (rc)
        return failed(c, rc, "audit import");
    hms_close(c);
    if (g->json)
        printf("{\"verdict\":\"%s\"}\n", verdict);
    else
        printf("%s\n", verdict);
    return HMSCTL_OK;
}

static int cmd_audit(int argc, char **argv, const hmsctl_globals *g)
{
    static const struct {
        const char *name;
        hmsctl_fn fn;
    } subs[] = {{"tail", cmd_tail},     {"get", cmd_get},       {"trace", cmd_trace},
                {"verify", cmd_verify}, {"export", cmd_export}, {"status", cmd_status},
                {"append", cmd_append}, {"import", cmd_import}};
    if (argc < 2)
        return usage("audit needs a subcommand");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_text, stdout);
        return HMSCTL_OK;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) == 0) {
            optind = 0; /* reset getopt for the subcommand's own options */
            return subs[i].fn(argc - 1, argv + 1, g);
        }
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "unknown audit subcommand '%s'", argv[1]);
    return usage(msg);
}

const hmsctl_cmd hmsctl_audit_cmds[] = {
    {"audit", cmd_audit,
     "audit tail|get|trace|verify|export|status|append|import ...",
     "the hash-chained audit log: read, trace, verify, export, append"},
    {NULL, NULL, NULL, NULL},
};
