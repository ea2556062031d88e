/*
 * hms-agent settings (see config.h): defaults, the JSON config file and the
 * command-line flags. A file key and its flag share a name ("data-dir" or
 * "data_dir" in the file, --data-dir on the command line).
 */
#include "agent/config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

/* Zeroes n bytes at p, writing only the 64-byte blocks that are not zero
 * already. hms-agent's configuration is a 54 KiB static, mostly path buffers
 * that stay unused: a memset would make every page of it resident for the
 * agent's life, while reading a page never written maps the kernel's shared
 * zero page, which is not counted. */
static void zero_lazily(void *p, size_t n)
{
    unsigned char *b = p;
    while (n) {
        size_t k = n < 64 ? n : 64;
        for (size_t i = 0; i < k; i++) {
            if (b[i]) {
                memset(b, 0, k);
                break;
            }
        }
        b += k;
        n -= k;
    }
}

/* Bounds of the audit settings: a value outside is refused, never clamped. */
static const struct audit_key {
    const char *name; /* after "audit-" */
    const char *env;
    uint64_t min, max;
} audit_keys[] = {
    {"durable", "HMS_AUDIT_DURABLE", 0, 1},
    {"seal-entries", "HMS_AUDIT_SEAL_ENTRIES", 1, 1000000},
    {"seal-ms", "HMS_AUDIT_SEAL_MS", 10, 3600000},
    {"replicas", "HMS_AUDIT_REPLICAS", 1, 16},
    {"commit-us", "HMS_AUDIT_COMMIT_US", 0, 1000000},
    {"retain-s", "HMS_AUDIT_RETAIN_S", 0, UINT64_MAX},
    {"retain-bytes", "HMS_AUDIT_RETAIN_BYTES", 0, UINT64_MAX},
};

static const struct audit_key *audit_key_find(const char *name)
{
    for (size_t i = 0; i < sizeof(audit_keys) / sizeof(audit_keys[0]); i++)
        if (strcmp(audit_keys[i].name, name) == 0)
            return &audit_keys[i];
    return NULL;
}

/* Sets audit setting name (without "audit-") from v. 0, -ENOENT for an
 * unknown name, or -EINVAL with a message. */
static int set_audit(hms_config *c, const char *name, const char *v, char *err, size_t errlen)
{
    const struct audit_key *k = audit_key_find(name);
    if (!k)
        return -ENOENT;
    uint64_t x;
    if (strcmp(name, "durable") == 0) {
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
            x = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
            x = 0;
        else {
            snprintf(err, errlen, "invalid --audit-durable '%s': expected true or false", v);
            return -EINVAL;
        }
    } else {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (!*v || *end || *v == '-' || errno || n < k->min || n > k->max) {
            snprintf(err, errlen, "invalid --audit-%s '%s': expected an integer from %llu to %llu",
                     name, v, (unsigned long long)k->min, (unsigned long long)k->max);
            return -EINVAL;
        }
        x = n;
    }
    hms_config_audit *a = &c->audit;
    if (strcmp(name, "durable") == 0)
        a->durable = x != 0;
    else if (strcmp(name, "seal-entries") == 0)
        a->seal_entries = (uint32_t)x;
    else if (strcmp(name, "seal-ms") == 0)
        a->seal_ms = (uint32_t)x;
    else if (strcmp(name, "replicas") == 0)
        a->replicas = (uint32_t)x;
    else if (strcmp(name, "commit-us") == 0)
        a->commit_us = (uint32_t)x;
    else if (strcmp(name, "retain-s") == 0)
        a->retain_s = x;
    else
        a->retain_bytes = x;
    return 0;
}

/* The HMS_AUDIT_* variables: a bad value is ignored with a warning (the
 * logger is not set up yet), as before the settings had flags. */
static void audit_from_env(hms_config *c)
{
    for (size_t i = 0; i < sizeof(audit_keys) / sizeof(audit_keys[0]); i++) {
        const char *v = getenv(audit_keys[i].env);
        char why[160];
        if (v && v[0] && set_audit(c, audit_keys[i].name, v, why, sizeof(why)) < 0)
            fprintf(stderr, "warning: ignoring %s: %s\n", audit_keys[i].env, why);
    }
}

void hms_config_defaults(hms_config *c)
{
    zero_lazily(c, sizeof(*c));
    if (gethostname(c->node, sizeof(c->node) - 1) < 0 || c->node[0] == '\0')
        snprintf(c->node, sizeof(c->node), "localhost");
    char *dot = strchr(c->node, '.');
    if (dot)
        *dot = '\0';
    hms_addr_parse("0.0.0.0", HMS_DEFAULT_PORT, &c->bind);
    snprintf(c->data_dir, sizeof(c->data_dir), "%s", HMS_DEFAULT_DATA_DIR);
    snprintf(c->socket_path, sizeof(c->socket_path), "%s", HMS_DEFAULT_SOCKET);
    snprintf(c->profile_name, sizeof(c->profile_name), "lan");
    c->log_level = HMS_LOG_INFO;
    c->log_format = HMS_LOG_TEXT;
    c->admin_gid = -1;
    c->audit.seal_entries = 4096;
    c->audit.seal_ms = 1000;
    c->audit.replicas = 3;
    audit_from_env(c);
}

void hms_config_usage(FILE *f)
{
    fprintf(f,
            "usage: hms-agent [options]\n"
            "  --node NAME            node name (default: the host name)\n"
            "  --bind ADDR[:PORT]     UDP gossip and TCP channel address (default 0.0.0.0:7950)\n"
            "  --advertise ADDR[:PORT] address other agents use to reach this one\n"
            "  --join ADDR[:PORT]     a seed to join through (repeatable)\n"
            "  --data-dir DIR         identity, incarnation, audit log (default %s)\n"
            "  --socket PATH          local API socket (default %s)\n"
            "  --profile lan|wan|local  membership timings (default lan)\n"
            "  --log-level error|warn|info|debug   (default info)\n"
            "  --log-format text|json (default text)\n"
            "  --config FILE          JSON file with the same settings; flags override it\n"
            "  --ca FILE              trusted cluster authority public key (repeatable)\n"
            "  --cert FILE            this node's certificate (default DATA_DIR/node.cert)\n"
            "  --node-key FILE        this node's secret key (default DATA_DIR/node.key)\n"
            "  --admin-group GROUP    members of GROUP may run admin operations\n"
            "  --services-dir DIR     service definition files (*.json), read again on SIGHUP\n"
            "  --http-helper PATH     program that runs HTTP checks (default: hms-http beside\n"
            "                         hms-agent)\n"
            "  --audit-durable true|false  socket appends wait for fsync (default false)\n"
            "  --audit-replicas N     copies of each own segment held by others (default 3)\n"
            "  --audit-seal-entries N, --audit-seal-ms N, --audit-commit-us N,\n"
            "  --audit-retain-s N, --audit-retain-bytes N   see docs/audit.md\n"
            "  --help, --version\n",
            HMS_DEFAULT_DATA_DIR, HMS_DEFAULT_SOCKET);
}

static int set_path(char *dst, size_t cap, const char *what, const char *v, char *err,
                    size_t errlen)
{
    if (v[0] == '\0' || strlen(v) >= cap) {
        snprintf(err, errlen, "invalid %s '%s': empty or longer than %zu bytes", what, v, cap - 1);
        return -EINVAL;
    }
    snprintf(dst, cap, "%s", v);
    return 0;
}

static int set_addr_port(hms_addr *dst, uint16_t port, const char *what, const char *v, char *err,
                         size_t errlen)
{
    if (hms_addr_parse(v, port, dst) < 0) {
        snprintf(err, errlen, "invalid %s '%s': expected IP[:PORT] or [IPv6]:PORT", what, v);
        return -EINVAL;
    }
    return 0;
}

static int set_addr(hms_addr *dst, const char *what, const char *v, char *err, size_t errlen)
{
    return set_addr_port(dst, HMS_DEFAULT_PORT, what, v, err, errlen);
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SWIM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

/* Applies one setting by name (a long flag without dashes, or a file key). */
static int apply(hms_config *c, const char *key, const char *v, char *err, size_t errlen)
{
    char k[32];
    snprintf(k, sizeof(k), "%s", key);
    for (char *p = k; *p; p++)
        if (*p == '_')
            *p = '-';
    if (strcmp(k, "node") == 0) {
        if (!valid_name(v)) {
            snprintf(err, errlen,
                     "invalid node name '%s': use 1-%d letters, digits, '-', '_' "
                     "or '.'",
                     v, SWIM_NAME_MAX);
            return -EINVAL;
        }
        snprintf(c->node, sizeof(c->node), "%s", v);
    } else if (strcmp(k, "bind") == 0) {
        return set_addr(&c->bind, "--bind address", v, err, errlen);
    } else if (strcmp(k, "advertise") == 0) {
        /* Without a port, the advertised port is the bound one (port 0 here). */
        return set_addr_port(&c->advertise, 0, "--advertise address", v, err, errlen);
    } else if (strcmp(k, "join") == 0) {
        if (c->join_count >= HMS_CONFIG_JOIN_MAX) {
            snprintf(err, errlen, "too many --join seeds (max %d)", HMS_CONFIG_JOIN_MAX);
            return -EINVAL;
        }
        int r = set_addr(&c->join[c->join_count], "--join address", v, err, errlen);
        if (r == 0)
            c->join_count++;
        return r;
    } else if (strcmp(k, "data-dir") == 0) {
        return set_path(c->data_dir, sizeof(c->data_dir), "--data-dir", v, err, errlen);
    } else if (strcmp(k, "socket") == 0) {
        return set_path(c->socket_path, sizeof(c->socket_path), "--socket path", v, err, errlen);
    } else if (strcmp(k, "services-dir") == 0) {
        return set_path(c->services_dir, sizeof(c->services_dir), "--services-dir", v, err, errlen);
    } else if (strcmp(k, "http-helper") == 0) {
        return set_path(c->http_helper, sizeof(c->http_helper), "--http-helper", v, err, errlen);
    } else if (strncmp(k, "audit-", 6) == 0 && audit_key_find(k + 6)) {
        return set_audit(c, k + 6, v, err, errlen);
    } else if (strcmp(k, "profile") == 0) {
        if (strlen(v) >= sizeof(c->profile_name) ||
            (strcmp(v, "lan") && strcmp(v, "wan") && strcmp(v, "local"))) {
            snprintf(err, errlen, "invalid --profile '%s': expected lan, wan or local", v);
            return -EINVAL;
        }
        snprintf(c->profile_name, sizeof(c->profile_name), "%s", v);
    } else if (strcmp(k, "log-level") == 0) {
        if (hms_log_level_parse(v, &c->log_level) < 0) {
            snprintf(err, errlen,
                     "invalid --log-level '%s': expected error, warn, info or "
                     "debug",
                     v);
            return -EINVAL;
        }
    } else if (strcmp(k, "log-format") == 0) {
        if (hms_log_format_parse(v, &c->log_format) < 0) {
            snprintf(err, errlen, "invalid --log-format '%s': expected text or json", v);
            return -EINVAL;
        }
    } else if (strcmp(k, "ca") == 0) {
        if (c->ca_count >= HMS_CONFIG_CA_MAX) {
            snprintf(err, errlen, "too many --ca files (max %d)", HMS_CONFIG_CA_MAX);
            return -EINVAL;
        }
        int r = set_path(c->ca_files[c->ca_count], PATH_MAX, "--ca file", v, err, errlen);
        if (r == 0)
            c->ca_count++;
        return r;
    } else if (strcmp(k, "cert") == 0) {
        return set_path(c->cert_file, sizeof(c->cert_file), "--cert file", v, err, errlen);
    } else if (strcmp(k, "node-key") == 0) {
        return set_path(c->node_key_file, sizeof(c->node_key_file), "--node-key file", v, err,
                        errlen);
    } else if (strcmp(k, "admin-group") == 0) {
        struct group gr, *res = NULL;
        char buf[4096];
        char *end;
        long gid = strtol(v, &end, 10);
        if (*v && *end == '\0' && gid >= 0) {
            c->admin_gid = gid;
        } else if (getgrnam_r(v, &gr, buf, sizeof(buf), &res) == 0 && res) {
            c->admin_gid = (long)res->gr_gid;
        } else {
            snprintf(err, errlen, "unknown --admin-group '%s'", v);
            return -EINVAL;
        }
        snprintf(c->admin_group, sizeof(c->admin_group), "%s", v);
    } else {
        snprintf(err, errlen, "unknown setting '%s'", key);
        return -EINVAL;
    }
    return 0;
}

/* Keys whose value may be a JSON number (or, for audit_durable, a boolean)
 * as well as a string. */
static bool takes_number(const char *key)
{
    return strcmp(key, "admin_group") == 0 || strcmp(key, "admin-group") == 0 ||
           strncmp(key, "audit_", 6) == 0 || strncmp(key, "audit-", 6) == 0;
}

int hms_config_load_file(hms_config *c, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "cannot read config '%s': %s (line %d)", path, je.text, je.line);
        return -EINVAL;
    }
    int r = 0;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "invalid config '%s': the top level must be a JSON object", path);
        r = -EINVAL;
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (json_is_array(v) && (strcmp(key, "join") == 0 || strcmp(key, "ca") == 0)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (!json_is_string(e)) {
                    snprintf(err, errlen, "invalid config '%s': '%s' must hold strings", path, key);
                    r = -EINVAL;
                    goto out;
                }
                if ((r = apply(c, key, json_string_value(e), err, errlen)) < 0)
                    goto prefix;
            }
            continue;
        }
        char num[32];
        const char *s;
        if (json_is_string(v)) {
            s = json_string_value(v);
        } else if (json_is_integer(v) && takes_number(key)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            s = num;
        } else if (json_is_boolean(v) && takes_number(key)) {
            s = json_is_true(v) ? "true" : "false";
        } else if (json_is_integer(v) || json_is_boolean(v)) {
            snprintf(err, errlen, "invalid config '%s': '%s' must be a string", path, key);
            r = -EINVAL;
            goto out;
        } else {
            snprintf(err, errlen, "invalid config '%s': '%s' must be a string", path, key);
            r = -EINVAL;
            goto out;
        }
        if ((r = apply(c, key, s, err, errlen)) < 0)
            goto prefix;
    }
    goto out;
prefix : {
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", err);
    snprintf(err, errlen, "config '%s': %s", path, tmp);
}
out:
    json_decref(root);
    return r;
}

static const struct option long_opts[] = {
    {"node", required_argument, 0, 0},         {"bind", required_argument, 0, 0},
    {"advertise", required_argument, 0, 0},    {"join", required_argument, 0, 0},
    {"data-dir", required_argument, 0, 0},     {"socket", required_argument, 0, 0},
    {"profile", required_argument, 0, 0},      {"log-level", required_argument, 0, 0},
    {"log-format", required_argument, 0, 0},   {"config", required_argument, 0, 0},
    {"ca", required_argument, 0, 0},           {"cert", required_argument, 0, 0},
    {"node-key", required_argument, 0, 0},     {"admin-group", required_argument, 0, 0},
    {"services-dir", required_argument, 0, 0}, {"http-helper", required_argument, 0, 0},
    {"audit-durable", required_argument, 0, 0}, {"audit-replicas", required_argument, 0, 0},
    {"audit-seal-entries", required_argument, 0, 0}, {"audit-seal-ms", required_argument, 0, 0},
    {"audit-commit-us", required_argument, 0, 0}, {"audit-retain-s", required_argument, 0, 0},
    {"audit-retain-bytes", required_argument, 0, 0}, {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},          {0, 0, 0, 0},
};

int hms_config_parse(hms_config *c, int argc, char **argv, char *err, size_t errlen)
{
    /* The file first, so that flags override it wherever they appear. */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
        if (path) {
            snprintf(c->config_file, sizeof(c->config_file), "%s", path);
            int r = hms_config_load_file(c, path, err, errlen);
            if (r < 0)
                return r;
        }
    }
    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = -1;
        int o = getopt_long(argc, argv, ":hV", long_opts, &idx);
        if (o == -1)
            break;
        if (o == 'h') {
            hms_config_usage(stdout);
            return 1;
        }
        if (o == 'V') {
            printf("hms-agent 0.1.0\n");
            return 1;
        }
        if (o == ':') {
            snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            return -EINVAL;
        }
        if (o == '?') {
            snprintf(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
            return -EINVAL;
        }
        const char *name = long_opts[idx].name;
        if (strcmp(name, "config") == 0)
            continue;
        int r = apply(c, name, optarg, err, errlen);
        if (r < 0)
            return r;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return -EINVAL;
    }
    if (swim_profile_by_name(c->profile_name, &c->profile) < 0) {
        snprintf(err, errlen, "unknown profile '%s'", c->profile_name);
        return -EINVAL;
    }
    return 0;
}
