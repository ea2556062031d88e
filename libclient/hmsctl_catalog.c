/*
 * hmsctl catalog commands: register, deregister, lookup, catalog, services,
 * watch-service, check. Each is a thin client of libclient's catalog calls;
 * tables for people by default, JSON with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libclient/hms.h"
#include "libclient/hms_catalog.h"
#include "libclient/hmsctl.h"
#include "proto/api.h"
#include "proto/catalog.h"

#define MAX_TAGS CAT_TAGS_MAX
#define MAX_META CAT_META_PAIRS_MAX

static int connect_or_fail(const hmsctl_globals *g, hms_client **c)
{
    int rc = hms_connect(g->socket_path, c);
    if (rc)
        return hmsctl_error(HMSCTL_UNREACHABLE, "cannot reach the agent at '%s': %s",
                            g->socket_path, hms_strerror(rc));
    return 0;
}

/* Maps a call's failure to an exit code and a message. */
static int call_failed(hms_client *c, int rc, const char *what)
{
    int code = rc == -EREMOTEIO ? HMSCTL_FAIL
               : (rc == -ENOENT || rc == -ECONNREFUSED || rc == -EACCES || rc == -EPIPE ||
                  rc == -ECONNRESET)
                   ? HMSCTL_UNREACHABLE
                   : HMSCTL_FAIL;
    int r = rc == -EREMOTEIO ? hmsctl_error(code, "%s refused: %s", what, hms_last_error(c))
                             : hmsctl_error(code, "%s failed: %s", what, hms_strerror(rc));
    hms_close(c);
    return r;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

static json_t *instance_json(const hms_instance *x)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(x->id));
    json_object_set_new(o, "name", json_string(x->name));
    json_object_set_new(o, "node", json_string(x->node));
    json_object_set_new(o, "address", json_string(x->address));
    json_object_set_new(o, "port", json_integer(x->port));
    json_t *t = json_array();
    for (size_t i = 0; i < x->ntags; i++)
        json_array_append_new(t, json_string(x->tags[i]));
    json_object_set_new(o, "tags", t);
    json_t *m = json_object();
    for (size_t i = 0; i < x->nmeta; i++)
        json_object_set_new(m, x->meta[i].key, json_string(x->meta[i].value));
    json_object_set_new(o, "meta", m);
    json_object_set_new(o, "status", json_string(x->status));
    return o;
}

static void print_instances(const hms_instance *v, size_t n, bool json)
{
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, instance_json(&v[i]));
        print_json(a);
        return;
    }
    if (n == 0) {
        printf("no instances\n");
        return;
    }
    printf("%-24s %-20s %-12s %-22s %-9s %s\n", "ID", "NAME", "NODE", "ADDRESS", "STATUS",
           "TAGS");
    for (size_t i = 0; i < n; i++) {
        char addr[80];
        bool v6 = strchr(v[i].address, ':') != NULL;
        snprintf(addr, sizeof(addr), "%s%s%s:%u", v6 ? "[" : "", v[i].address, v6 ? "]" : "",
                 v[i].port);
        printf("%-24s %-20s %-12s %-22s %-9s ", v[i].id, v[i].name, v[i].node, addr,
               v[i].status);
        for (size_t t = 0; t < v[i].ntags; t++)
            printf("%s%s", t ? "," : "", v[i].tags[t]);
        printf("\n");
    }
}

static int read_whole(const char *path, char **out)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return -errno;
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        if (f != stdin)
            fclose(f);
        return -ENOMEM;
    }
    n = fread(buf, 1, cap, f);
    int err = ferror(f) ? EIO : 0;
    if (f != stdin)
        fclose(f);
    if (err || n >= cap) {
        free(buf);
        return err ? -err : -E2BIG;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* ---- register ------------------------------------------------------------ */

static int parse_count(const char *opt, const char *v, uint8_t *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end || n < 1 || n > 10)
        return hmsctl_error(HMSCTL_USAGE, "invalid %s '%s': expected 1-10", opt, v);
    *out = (uint8_t)n;
    return 0;
}

static int parse_dur(const char *opt, const char *v, uint32_t *ms)
{
    if (cat_duration_parse(v, ms))
        return hmsctl_error(HMSCTL_USAGE, "invalid %s '%s': expected a duration such as 5s or 500ms",
                            opt, v);
    return 0;
}

static int cmd_register(int argc, char **argv, const hmsctl_globals *g)
{
    static const struct option opts[] = {
        {"port", required_argument, 0, 'p'},      {"address", required_argument, 0, 'a'},
        {"tag", required_argument, 0, 't'},       {"meta", required_argument, 0, 'm'},
        {"check-http", required_argument, 0, 'H'}, {"check-tcp", optional_argument, 0, 'T'},
        {"check-ttl", required_argument, 0, 'L'}, {"interval", required_argument, 0, 'i'},
        {"timeout", required_argument, 0, 'o'},   {"id", required_argument, 0, 'I'},
        {"file", required_argument, 0, 'f'},      {"rise", required_argument, 0, 'r'},
        {"fall", required_argument, 0, 'F'},      {0, 0, 0, 0},
    };
    const char *tags[MAX_TAGS + 1], *mk[MAX_META + 1], *mv[MAX_META + 1];
    char *mbuf[MAX_META + 1];
    size_t ntags = 0, nmeta = 0;
    hms_service_def d;
    hms_check_spec ck;
    memset(&d, 0, sizeof(d));
    memset(&ck, 0, sizeof(ck));
    const char *file = NULL;
    long port = -1;
    int rc = HMSCTL_OK;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (o) {
        case 'p': {
            char *end;
            port = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || port < 1 || port > 65535) {
                rc = hmsctl_error(HMSCTL_USAGE, "invalid --port '%s': expected 1-65535", optarg);
                goto out;
            }
            break;
        }
        case 'a': d.address = optarg; break;
        case 'I': d.id = optarg; break;
        case 'f': file = optarg; break;
        case 't':
            if (ntags >= MAX_TAGS) {
                rc = hmsctl_error(HMSCTL_USAGE, "too many --tag: limit tags_max is %d", MAX_TAGS);
                goto out;
            }
            tags[ntags++] = optarg;
            break;
        case 'm': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                rc = hmsctl_error(HMSCTL_USAGE, "invalid --meta '%s': expected key=value", optarg);
                goto out;
            }
            if (nmeta >= MAX_META) {
                rc = hmsctl_error(HMSCTL_USAGE, "too many --meta: limit meta_pairs_max is %d",
                                  MAX_META);
                goto out;
            }
            mbuf[nmeta] = strndup(optarg, (size_t)(eq - optarg));
            if (!mbuf[nmeta]) {
                rc = hmsctl_error(HMSCTL_FAIL, "out of memory");
                goto out;
            }
            mk[nmeta] = mbuf[nmeta];
            mv[nmeta] = eq + 1;
            nmeta++;
            break;
        }
        case 'H':
        case 'T':
        case 'L':
            if (ck.kind) {
                rc = hmsctl_error(HMSCTL_USAGE, "give only one of --check-http, --check-tcp, --check-ttl");
                goto out;
            }
            ck.kind = o == 'H' ? "http" : o == 'T' ? "tcp" : "ttl";
            if (o == 'L') {
                if ((rc = parse_dur("--check-ttl", optarg, &ck.ttl_ms)))
                    goto out;
            } else {
                ck.target = optarg;
            }
            break;
        case 'i':
            if ((rc = parse_dur("--interval", optarg, &ck.interval_ms)))
                goto out;
            break;
        case 'o':
            if ((rc = parse_dur("--timeout", optarg, &ck.timeout_ms)))
                goto out;
            break;
        case 'r':
            if ((rc = parse_count("--rise", optarg, &ck.rise)))
                goto out;
            break;
        case 'F':
            if ((rc = parse_count("--fall", optarg, &ck.fall)))
                goto out;
            break;
        case ':':
            rc = hmsctl_error(HMSCTL_USAGE, "option '%s' needs a value", argv[optind - 1]);
            goto out;
        default:
            rc = hmsctl_error(HMSCTL_USAGE, "unknown option '%s' for register", argv[optind - 1]);
            goto out;
        }
    }
    if (file && (optind < argc || port >= 0 || ck.kind || ntags || nmeta)) {
        rc = hmsctl_error(HMSCTL_USAGE, "--file takes the whole definition: give no other option");
        goto out;
    }
    if (!file) {
        if (optind != argc - 1) {
            rc = hmsctl_error(HMSCTL_USAGE, "usage: register NAME --port P [options] or register --file F");
            goto out;
        }
        if (port < 0) {
            rc = hmsctl_error(HMSCTL_USAGE, "register: --port is required");
            goto out;
        }
        if (!ck.kind && (ck.interval_ms || ck.timeout_ms || ck.rise || ck.fall)) {
            rc = hmsctl_error(HMSCTL_USAGE, "--interval, --timeout, --rise and --fall need a check");
            goto out;
        }
        d.name = argv[optind];
        d.port = (uint16_t)port;
        d.tags = tags;
        d.ntags = ntags;
        d.meta_keys = mk;
        d.meta_values = mv;
        d.nmeta = nmeta;
        if (ck.kind) {
            d.checks = &ck;
            d.nchecks = 1;
        }
    }
    char *text = NULL;
    if (file) {
        int e = read_whole(file, &text);
        if (e) {
            rc = hmsctl_error(HMSCTL_FAIL, "cannot read '%s': %s", file,
                              e == -E2BIG ? "larger than 64 KiB" : strerror(-e));
            goto out;
        }
    }
    hms_client *c;
    if ((rc = connect_or_fail(g, &c))) {
        free(text);
        goto out;
    }
    char id[CAT_ID_MAX + 1];
    int e = file ? hms_register_json(c, text, id, sizeof(id)) : hms_register(c, &d, id, sizeof(id));
    free(text);
    if (e) {
        rc = call_failed(c, e, "register");
        goto out;
    }
    hms_close(c);
    if (g->json) {
        json_t *j = json_object();
        json_object_set_new(j, "id", json_string(id));
        print_json(j);
    } else {
        printf("registered '%s'\n", id);
    }
out:
    for (size_t i = 0; i < nmeta; i++)
        free(mbuf[i]);
    return rc;
}

static int cmd_deregister(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc != 2)
        return hmsctl_error(HMSCTL_USAGE, "usage: deregister ID");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    if ((rc = hms_deregister(c, argv[1])))
        return call_failed(c, rc, "deregister");
    hms_close(c);
    if (g->json) {
        json_t *j = json_object();
        json_object_set_new(j, "id", json_string(argv[1]));
        print_json(j);
    } else {
        printf("deregistered '%s'\n", argv[1]);
    }
    return HMSCTL_OK;
}

static int cmd_check(int argc, char **argv, const hmsctl_globals *g)
{
    static const struct option opts[] = {{"note", required_argument, 0, 'n'}, {0, 0, 0, 0}};
    const char *note = NULL;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (o == 'n')
            note = optarg;
        else
            return hmsctl_error(HMSCTL_USAGE, "usage: check pass|warn|fail ID [--note TEXT]");
    }
    if (optind != argc - 2)
        return hmsctl_error(HMSCTL_USAGE, "usage: check pass|warn|fail ID [--note TEXT]");
    const char *st = argv[optind], *id = argv[optind + 1];
    if (strcmp(st, "pass") && strcmp(st, "warn") && strcmp(st, "fail"))
        return hmsctl_error(HMSCTL_USAGE, "invalid status '%s': expected pass, warn or fail", st);
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    if ((rc = hms_check_update(c, id, st, note)))
        return call_failed(c, rc, "check");
    hms_close(c);
    if (g->json) {
        json_t *j = json_object();
        json_object_set_new(j, "id", json_string(id));
        json_object_set_new(j, "status", json_string(st));
        print_json(j);
    } else {
        printf("check of '%s': %s\n", id, st);
    }
    return HMSCTL_OK;
}

/* ---- lookup and watch ---------------------------------------------------- */

typedef struct watch_print {
    bool json;
    unsigned n;
} watch_print;

static int watch_cb(const hms_instance *v, size_t n, void *ctx)
{
    watch_print *w = ctx;
    if (w->json) {
        /* one JSON array per line, so a reader can follow the stream */
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, instance_json(&v[i]));
        char *s = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s) {
            puts(s);
            free(s);
        }
        json_decref(a);
    } else {
        printf("%s-- %zu instance%s\n", w->n ? "\n" : "", n, n == 1 ? "" : "s");
        print_instances(v, n, false);
    }
    w->n++;
    fflush(stdout);
    return 0;
}

static int lookup_common(int argc, char **argv, const hmsctl_globals *g, bool watch)
{
    static const struct option opts[] = {{"tag", required_argument, 0, 't'},
                                         {"all", no_argument, 0, 'a'},
                                         {"watch", no_argument, 0, 'w'},
                                         {0, 0, 0, 0}};
    const char *tags[MAX_TAGS + 1];
    size_t ntags = 0;
    bool all = false;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (o == 't') {
            if (ntags >= MAX_TAGS)
                return hmsctl_error(HMSCTL_USAGE, "too many --tag: limit tags_max is %d", MAX_TAGS);
            tags[ntags++] = optarg;
        } else if (o == 'a') {
            all = true;
        } else if (o == 'w') {
            watch = true;
        } else {
            return hmsctl_error(HMSCTL_USAGE, "usage: %s NAME [--tag T]... [--all]", argv[0]);
        }
    }
    if (optind != argc - 1)
        return hmsctl_error(HMSCTL_USAGE, "usage: %s NAME [--tag T]... [--all]", argv[0]);
    const char *name = argv[optind];
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    if (watch) {
        watch_print w = {g->json, 0};
        hms_set_timeout(c, 0);
        rc = hms_watch_service(c, name, tags, ntags, all, watch_cb, &w);
        return call_failed(c, rc, "watch");
    }
    hms_instance *v;
    size_t n;
    if ((rc = hms_lookup(c, name, tags, ntags, all, &v, &n)))
        return call_failed(c, rc, "lookup");
    hms_close(c);
    print_instances(v, n, g->json);
    hms_instances_free(v, n);
    return HMSCTL_OK;
}

static int cmd_lookup(int argc, char **argv, const hmsctl_globals *g)
{
    return lookup_common(argc, argv, g, false);
}

static int cmd_watch_service(int argc, char **argv, const hmsctl_globals *g)
{
    return lookup_common(argc, argv, g, true);
}

/* ---- catalog and services ------------------------------------------------ */

static int cmd_catalog(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc != 1)
        return hmsctl_error(HMSCTL_USAGE, "usage: catalog");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    if (g->json) {
        hms_reply rep;
        if ((rc = hms_catalog_raw(c, &rep))) {
            hms_reply_destroy(&rep);
            return call_failed(c, rc, "catalog");
        }
        json_t *j = hms_json_from_msgpack(rep.result);
        hms_reply_destroy(&rep);
        hms_close(c);
        if (!j)
            return hmsctl_error(HMSCTL_FAIL, "cannot convert the reply to JSON");
        print_json(j);
        return HMSCTL_OK;
    }
    hms_service_summary *v;
    size_t n;
    if ((rc = hms_catalog(c, &v, &n)))
        return call_failed(c, rc, "catalog");
    hms_close(c);
    if (n == 0)
        printf("no services\n");
    else
        printf("%-32s %8s %8s %8s %6s\n", "SERVICE", "PASSING", "WARNING", "CRITICAL", "NODES");
    for (size_t i = 0; i < n; i++)
        printf("%-32s %8u %8u %8u %6u\n", v[i].name, v[i].passing, v[i].warning, v[i].critical,
               v[i].nodes);
    free(v);
    return HMSCTL_OK;
}

static const char *mp_str(const msgpack_object *m, const char *k, char *buf, size_t cap)
{
    const msgpack_object *f = hms_mp_get(m, k);
    if (!f || hms_mp_str_copy(f, buf, cap))
        snprintf(buf, cap, "?");
    return buf;
}

static int cmd_services(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc != 1)
        return hmsctl_error(HMSCTL_USAGE, "usage: services");
    hms_client *c;
    int rc = connect_or_fail(g, &c);
    if (rc)
        return rc;
    hms_reply rep;
    if ((rc = hms_services(c, &rep))) {
        hms_reply_destroy(&rep);
        return call_failed(c, rc, "services");
    }
    hms_close(c);
    if (g->json) {
        json_t *j = hms_json_from_msgpack(rep.result);
        hms_reply_destroy(&rep);
        if (!j)
            return hmsctl_error(HMSCTL_FAIL, "cannot convert the reply to JSON");
        print_json(j);
        return HMSCTL_OK;
    }
    const msgpack_object *a = rep.result;
    if (!a || a->type != MSGPACK_OBJECT_ARRAY) {
        hms_reply_destroy(&rep);
        return hmsctl_error(HMSCTL_FAIL, "the agent sent an unexpected reply");
    }
    if (a->via.array.size == 0)
        printf("no services registered on this node\n");
    else
        printf("%-24s %-20s %-22s %-9s %s\n", "ID", "NAME", "ADDRESS", "STATUS", "CHECKS");
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *m = &a->via.array.ptr[i];
        char id[80], name[80], addr[80], st[16], b1[16], b2[300], b3[16], b4[160];
        const msgpack_object *port = hms_mp_get(m, "port");
        char hp[100];
        snprintf(hp, sizeof(hp), "%s:%llu", mp_str(m, "address", addr, sizeof(addr)),
                 port && port->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                     ? (unsigned long long)port->via.u64
                     : 0ULL);
        printf("%-24s %-20s %-22s %-9s ", mp_str(m, "id", id, sizeof(id)),
               mp_str(m, "name", name, sizeof(name)), hp, mp_str(m, "status", st, sizeof(st)));
        const msgpack_object *cks = hms_mp_get(m, "checks");
        if (!cks || cks->type != MSGPACK_OBJECT_ARRAY || cks->via.array.size == 0)
            printf("-");
        for (uint32_t k = 0; cks && cks->type == MSGPACK_OBJECT_ARRAY && k < cks->via.array.size;
             k++) {
            const msgpack_object *ck = &cks->via.array.ptr[k];
            printf("%s%s %s %s (%s)", k ? "; " : "", mp_str(ck, "kind", b1, sizeof(b1)),
                   mp_str(ck, "target", b2, sizeof(b2)), mp_str(ck, "status", b3, sizeof(b3)),
                   mp_str(ck, "output", b4, sizeof(b4)));
        }
        printf("\n");
    }
    hms_reply_destroy(&rep);
    return HMSCTL_OK;
}

const hmsctl_cmd hmsctl_catalog_cmds[] = {
    {"register", cmd_register,
     "register NAME --port P [--address A] [--tag T]... [--meta k=v]... [--check-http PATH|URL | "
     "--check-tcp[=IP:PORT] | --check-ttl 10s] [--interval 5s] [--timeout 2s] [--rise N] [--fall N] "
     "[--id ID] | register --file F",
     "register a service instance on this node"},
    {"deregister", cmd_deregister, "deregister ID", "remove a service instance of this node"},
    {"lookup", cmd_lookup, "lookup NAME [--tag T]... [--all] [--watch]",
     "healthy instances of a service, cluster-wide"},
    {"catalog", cmd_catalog, "catalog", "every service with instance counts by status"},
    {"services", cmd_services, "services", "this node's instances and their checks"},
    {"watch-service", cmd_watch_service, "watch-service NAME [--tag T]... [--all]",
     "print a service's instances now and after every change"},
    {"check", cmd_check, "check pass|warn|fail ID [--note TEXT]",
     "report the health of an instance with a ttl check"},
    {NULL, NULL, NULL, NULL},
};
