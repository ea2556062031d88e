/*
 * hmsctl's key and certificate commands. All but `revoke` work offline on
 * files (the CA key stays off the hosts):
 *
 *   keygen --out DIR                      node.key (0600) + node.pub
 *   ca init --out DIR                     ca.key (0600) + ca.pub
 *   ca issue --ca DIR --name N --node-pub F [--days D] [--serial S] --out F
 *   ca revoke --ca DIR (--serial S | --node-pub F | --cert F) --out F
 *   ca bootstrap --names a,b,c --out DIR [--days D]
 *                                         ca.key ca.pub and NAME.{key,pub,cert}
 *   cert show FILE [--ca CA.PUB]          a certificate or revocation record
 *   revoke FILE                           hands a revocation to the running
 *                                         agent, which persists and gossips it
 *
 * Formats are those of proto/cert.h. Key files are never overwritten unless
 * --force is given. Exit codes: 0 ok, 1 failed, 2 usage, 3 agent unreachable.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "libclient/hms.h"
#include "libclient/hmsctl.h"
#include "proto/api.h"
#include "proto/cert.h"

#define FILE_MAX 65536
#define DAYS_DEFAULT 365
#define DAYS_MAX 36500
#define BOOTSTRAP_MAX 256

/* ------------------------------------------------------------------------ */
/* Options                                                                    */

typedef struct opts {
    const char *out, *ca, *name, *names, *node_pub, *cert, *serial, *days;
    bool force, help;
    const char *pos[4]; /* positional arguments */
    int npos;
} opts;

/* Parses --opt VALUE / --opt=VALUE and flags; argv[0] is the command.
 * allowed: space-separated option names (without dashes) this command takes. */
static int parse_opts(int argc, char **argv, int start, const char *allowed, opts *o)
{
    static const struct {
        const char *name;
        size_t off;
    } valued[] = {
        {"out", offsetof(opts, out)},         {"ca", offsetof(opts, ca)},
        {"name", offsetof(opts, name)},       {"names", offsetof(opts, names)},
        {"node-pub", offsetof(opts, node_pub)}, {"cert", offsetof(opts, cert)},
        {"serial", offsetof(opts, serial)},   {"days", offsetof(opts, days)},
    };
    memset(o, 0, sizeof(*o));
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (o->npos == (int)(sizeof(o->pos) / sizeof(o->pos[0])))
                return hmsctl_error(HMSCTL_USAGE, "too many arguments: '%s'", a);
            o->pos[o->npos++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        /* Is it allowed for this command? */
        bool ok = false;
        for (const char *p = allowed; *p;) {
            const char *e = strchr(p, ' ');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l == nlen && strncmp(p, name, l) == 0)
                ok = true;
            p += l;
            while (*p == ' ')
                p++;
        }
        if (!ok)
            return hmsctl_error(HMSCTL_USAGE, "unknown option '--%.*s' for %s%s%s", (int)nlen,
                                name, argv[0], start > 1 ? " " : "", start > 1 ? argv[1] : "");
        if (nlen == 5 && strncmp(name, "force", 5) == 0) {
            o->force = true;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
            if (strlen(valued[k].name) == nlen && strncmp(valued[k].name, name, nlen) == 0)
                break;
        if (k == sizeof(valued) / sizeof(valued[0]))
            return hmsctl_error(HMSCTL_USAGE, "unknown option '%s'", a);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val)
            return hmsctl_error(HMSCTL_USAGE, "option '--%.*s' needs a value", (int)nlen, name);
        *(const char **)((char *)o + valued[k].off) = val;
    }
    return 0;
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return hmsctl_error(HMSCTL_USAGE, "invalid %s '%s': expected %" PRIu64 "-%" PRIu64, opt,
                            s, min, max);
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                      */

static int read_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    size_t off = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hmsctl_error(HMSCTL_FAIL, "cannot open '%s': %s", path, strerror(errno));
    for (;;) {
        if (off == cap) {
            close(fd);
            return hmsctl_error(HMSCTL_FAIL, "cannot read '%s': larger than %zu bytes", path,
                                cap);
        }
        ssize_t r = read(fd, buf + off, cap - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return hmsctl_error(HMSCTL_FAIL, "cannot read '%s': %s", path, strerror(e));
        }
        if (r == 0)
            break;
        off += (size_t)r;
    }
    close(fd);
    *len = off;
    return 0;
}

/* Writes path atomically (path.tmp, fsync, rename) with mode. Unless force,
 * an existing path is an error. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode, bool force)
{
    char tmp[4096];
    const uint8_t *p = data;
    size_t off = 0;
    int e;

    if (!force && access(path, F_OK) == 0)
        return hmsctl_error(HMSCTL_FAIL, "cannot write '%s': file exists (use --force to replace it)",
                            path);
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return hmsctl_error(HMSCTL_FAIL, "cannot write '%s': path too long", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return hmsctl_error(HMSCTL_FAIL, "cannot create '%s': %s", tmp, strerror(errno));
    if (fchmod(fd, mode) != 0)
        goto fail;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail;
        off += (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    return 0;
fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return hmsctl_error(HMSCTL_FAIL, "cannot write '%s': %s", path, strerror(e));
}

/* Creates dir (and parents) with mode 0700 when missing. */
static int make_dir(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
        return hmsctl_error(HMSCTL_FAIL, "cannot create '%s': path too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return hmsctl_error(HMSCTL_FAIL, "cannot create '%s': %s", buf, strerror(errno));
            *p = c;
            if (c == 0)
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return hmsctl_error(HMSCTL_FAIL, "cannot use '%s': not a directory", dir);
    return 0;
}

static int join_path(char *buf, size_t cap, const char *dir, const char *name)
{
    if (snprintf(buf, cap, "%s/%s", dir, name) >= (int)cap)
        return hmsctl_error(HMSCTL_FAIL, "path too long: '%s/%s'", dir, name);
    return 0;
}

/* Writes <dir>/<base>.key (0600) and <dir>/<base>.pub for a new key pair. */
static int write_keypair(const char *dir, const char *base, bool force, uint8_t pk[32],
                         uint8_t sk[64], char *keypath, char *pubpath, size_t cap)
{
    char name[128], text[HMS_KEY_SECRET_TEXT_LEN + 1], pub[HMS_KEY_PUB_TEXT_LEN + 1];
    int rc;

    snprintf(name, sizeof(name), "%s.key", base);
    if ((rc = join_path(keypath, cap, dir, name)) != 0)
        return rc;
    snprintf(name, sizeof(name), "%s.pub", base);
    if ((rc = join_path(pubpath, cap, dir, name)) != 0)
        return rc;
    if (!force && access(keypath, F_OK) == 0)
        return hmsctl_error(HMSCTL_FAIL,
                            "cannot write '%s': file exists (use --force to replace it)", keypath);
    crypto_sign_keypair(pk, sk);
    hms_key_format_secret(sk, text, sizeof(text));
    rc = write_file(keypath, text, strlen(text), 0600, force);
    sodium_memzero(text, sizeof(text));
    if (rc != 0)
        return rc;
    hms_key_format_pub(pk, pub, sizeof(pub));
    return write_file(pubpath, pub, strlen(pub), 0644, true);
}

/* Loads an Ed25519 secret key file; refuses one group or others can read. */
static int load_secret(const char *path, uint8_t sk[64])
{
    uint8_t buf[4096];
    size_t len = 0;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hmsctl_error(HMSCTL_FAIL, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hmsctl_error(HMSCTL_FAIL, "cannot use '%s': not a regular file", path);
    }
    close(fd);
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return hmsctl_error(HMSCTL_FAIL,
                            "key file '%s' is accessible by group or others (mode %04o): run "
                            "chmod 600 '%s'",
                            path, (unsigned)(st.st_mode & 07777), path);
    int rc = read_file(path, buf, sizeof(buf), &len);
    if (rc == 0 && hms_key_parse_secret((const char *)buf, len, sk) != HMS_CERT_OK)
        rc = hmsctl_error(HMSCTL_FAIL, "cannot use '%s': not an ed25519-secret key file", path);
    sodium_memzero(buf, sizeof(buf));
    return rc;
}

static int load_pub(const char *path, uint8_t pk[32])
{
    uint8_t buf[FILE_MAX];
    uint8_t keys[1][32];
    size_t len = 0, n = 0;
    int rc = read_file(path, buf, sizeof(buf), &len);
    if (rc != 0)
        return rc;
    if (hms_key_parse_pub_list((const char *)buf, len, keys, 1, &n) != HMS_CERT_OK)
        return hmsctl_error(HMSCTL_FAIL,
                            "cannot use '%s': expected one line 'ed25519-pub:<64 hex digits>'",
                            path);
    memcpy(pk, keys[0], 32);
    return 0;
}

static void format_time(uint64_t secs, char *buf, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)(secs > (uint64_t)253402300799ULL ? 253402300799ULL : secs);
    if (!gmtime_r(&tt, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "%" PRIu64, secs);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, b, n);
}

static uint64_t random_serial(void)
{
    uint64_t s;
    randombytes_buf(&s, sizeof(s));
    return (s >> 1) | 1; /* 63 bits, never zero */
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

/* Issues a certificate for pk signed by ca_sk and writes it to path. */
static int issue(const uint8_t ca_sk[64], const char *name, const uint8_t pk[32], uint64_t serial,
                 uint64_t days, const char *path, bool force, hms_cert *out)
{
    uint8_t buf[HMS_CERT_MAX_LEN];
    size_t len = 0;
    hms_cert c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    memcpy(c.node_pk, pk, 32);
    c.serial = serial;
    c.not_before = (uint64_t)time(NULL);
    c.not_after = c.not_before + days * 86400;
    if (hms_cert_sign(&c, ca_sk) != HMS_CERT_OK || hms_cert_encode(&c, buf, sizeof(buf), &len))
        return hmsctl_error(HMSCTL_FAIL, "cannot issue a certificate for '%s'", name);
    if (out)
        *out = c;
    return write_file(path, buf, len, 0644, force);
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                   */

static const char keygen_usage[] = "usage: hmsctl keygen --out DIR [--force]\n"
                                   "  writes DIR/node.key (mode 0600) and DIR/node.pub\n";

static int cmd_keygen(int argc, char **argv, const hmsctl_globals *g)
{
    char keypath[4096], pubpath[4096], h[65];
    uint8_t pk[32], sk[64];
    opts o;
    int rc = parse_opts(argc, argv, 1, "out force", &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(keygen_usage, stdout);
        return HMSCTL_OK;
    }
    if (!o.out || o.npos)
        return hmsctl_error(HMSCTL_USAGE, "usage: hmsctl keygen --out DIR");
    if ((rc = make_dir(o.out)) != 0)
        return rc;
    rc = write_keypair(o.out, "node", o.force, pk, sk, keypath, pubpath, sizeof(keypath));
    sodium_memzero(sk, sizeof(sk));
    if (rc)
        return rc;
    hex(pk, 32, h);
    if (g->json) {
        print_json(json_pack("{s:s, s:s, s:s}", "key_file", keypath, "pub_file", pubpath,
                             "public_key", h));
    } else {
        printf("node key: %s\npublic key: %s (%s)\n", keypath, pubpath, h);
    }
    return HMSCTL_OK;
}

static const char ca_usage[] =
    "usage: hmsctl ca init --out DIR [--force]\n"
    "       hmsctl ca issue --ca DIR --name NAME --node-pub FILE [--days D] [--serial S] --out FILE\n"
    "       hmsctl ca revoke --ca DIR (--serial S | --node-pub FILE | --cert FILE) --out FILE\n"
    "       hmsctl ca bootstrap --names a,b,c --out DIR [--days D] [--force]\n"
    "  init       new CA key: DIR/ca.key (mode 0600) and DIR/ca.pub\n"
    "  issue      sign a node certificate (default 365 days, random serial)\n"
    "  revoke     sign a revocation record (give it to agents with 'hmsctl revoke FILE')\n"
    "  bootstrap  a new CA and, for each name, NAME.key NAME.pub NAME.cert in DIR\n";

static int ca_init(int argc, char **argv, const hmsctl_globals *g)
{
    char keypath[4096], pubpath[4096], h[65], id[17];
    uint8_t pk[32], sk[64], cid[HMS_CA_ID_LEN];
    opts o;
    int rc = parse_opts(argc, argv, 2, "out force", &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(ca_usage, stdout);
        return HMSCTL_OK;
    }
    if (!o.out || o.npos)
        return hmsctl_error(HMSCTL_USAGE, "usage: hmsctl ca init --out DIR");
    if ((rc = make_dir(o.out)) != 0)
        return rc;
    rc = write_keypair(o.out, "ca", o.force, pk, sk, keypath, pubpath, sizeof(keypath));
    sodium_memzero(sk, sizeof(sk));
    if (rc)
        return rc;
    hex(pk, 32, h);
    hms_ca_key_id(pk, cid);
    hex(cid, sizeof(cid), id);
    if (g->json)
        print_json(json_pack("{s:s, s:s, s:s, s:s}", "key_file", keypath, "pub_file", pubpath,
                             "public_key", h, "ca_id", id));
    else
        printf("CA key: %s (keep it off the hosts)\nCA public key: %s (id %s)\n", keypath,
               pubpath, id);
    return HMSCTL_OK;
}

static int ca_issue(int argc, char **argv, const hmsctl_globals *g)
{
    char keypath[4096], when[32], h[65];
    uint8_t sk[64], pk[32];
    uint64_t days = DAYS_DEFAULT, serial = 0;
    hms_cert c;
    opts o;
    int rc = parse_opts(argc, argv, 2, "ca name node-pub days serial out force", &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(ca_usage, stdout);
        return HMSCTL_OK;
    }
    if (!o.ca || !o.name || !o.node_pub || !o.out || o.npos)
        return hmsctl_error(HMSCTL_USAGE, "usage: hmsctl ca issue --ca DIR --name NAME "
                                          "--node-pub FILE [--days D] --out FILE");
    if (!hms_cert_name_valid(o.name))
        return hmsctl_error(HMSCTL_USAGE,
                            "invalid --name '%s': expected 1-64 of [A-Za-z0-9._-], not starting "
                            "with '.' or '-'",
                            o.name);
    if (o.days && (rc = parse_u64("--days", o.days, 1, DAYS_MAX, &days)) != 0)
        return rc;
    if (o.serial && (rc = parse_u64("--serial", o.serial, 1, INT64_MAX, &serial)) != 0)
        return rc;
    if (!o.serial)
        serial = random_serial();
    if ((rc = load_pub(o.node_pub, pk)) != 0)
        return rc;
    if ((rc = join_path(keypath, sizeof(keypath), o.ca, "ca.key")) != 0)
        return rc;
    if ((rc = load_secret(keypath, sk)) != 0)
        return rc;
    rc = issue(sk, o.name, pk, serial, days, o.out, o.force, &c);
    sodium_memzero(sk, sizeof(sk));
    if (rc)
        return rc;
    format_time(c.not_after, when, sizeof(when));
    hex(pk, 32, h);
    if (g->json)
        print_json(json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "cert_file", o.out, "name",
                             c.name, "node_key", h, "serial", (json_int_t)c.serial, "not_before",
                             (json_int_t)c.not_before, "not_after", (json_int_t)c.not_after));
    else
        printf("certificate for '%s' (serial %" PRIu64 ", valid until %s): %s\n", c.name,
               c.serial, when, o.out);
    return HMSCTL_OK;
}

static int ca_revoke(int argc, char **argv, const hmsctl_globals *g)
{
    char keypath[4096];
    uint8_t sk[64], rec[HMS_REVOCATION_LEN];
    hms_revocation r;
    opts o;
    int rc = parse_opts(argc, argv, 2, "ca serial node-pub cert out force", &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(ca_usage, stdout);
        return HMSCTL_OK;
    }
    if (!o.ca || !o.out || (!o.serial && !o.node_pub && !o.cert) || o.npos)
        return hmsctl_error(HMSCTL_USAGE, "usage: hmsctl ca revoke --ca DIR (--serial S | "
                                          "--node-pub FILE | --cert FILE) --out FILE");
    if (o.cert && (o.serial || o.node_pub))
        return hmsctl_error(HMSCTL_USAGE, "--cert names both serial and key: give it alone");
    memset(&r, 0, sizeof(r));
    if (o.serial) {
        if ((rc = parse_u64("--serial", o.serial, 1, INT64_MAX, &r.serial)) != 0)
            return rc;
        r.flags |= HMS_REVOKE_BY_SERIAL;
    }
    if (o.node_pub) {
        if ((rc = load_pub(o.node_pub, r.node_pk)) != 0)
            return rc;
        r.flags |= HMS_REVOKE_BY_KEY;
    }
    if (o.cert) {
        uint8_t buf[HMS_CERT_MAX_LEN + 1];
        size_t len = 0;
        hms_cert c;
        if ((rc = read_file(o.cert, buf, sizeof(buf), &len)) != 0)
            return rc;
        if (hms_cert_decode(buf, len, &c) != HMS_CERT_OK)
            return hmsctl_error(HMSCTL_FAIL, "cannot use '%s': not a certificate", o.cert);
        r.serial = c.serial;
        memcpy(r.node_pk, c.node_pk, 32);
        r.flags = HMS_REVOKE_BY_SERIAL | HMS_REVOKE_BY_KEY;
    }
    r.time = (uint64_t)time(NULL);
    if ((rc = join_path(keypath, sizeof(keypath), o.ca, "ca.key")) != 0)
        return rc;
    if ((rc = load_secret(keypath, sk)) != 0)
        return rc;
    rc = hms_revocation_sign(&r, sk) == HMS_CERT_OK && hms_revocation_encode(&r, rec) == 0
             ? 0
             : hmsctl_error(HMSCTL_FAIL, "cannot sign the revocation");
    sodium_memzero(sk, sizeof(sk));
    if (rc)
        return rc;
    if ((rc = write_file(o.out, rec, sizeof(rec), 0644, o.force)) != 0)
        return rc;
    if (g->json)
        print_json(json_pack("{s:s, s:b, s:b, s:I}", "revocation_file", o.out, "by_serial",
                             (r.flags & HMS_REVOKE_BY_SERIAL) != 0, "by_key",
                             (r.flags & HMS_REVOKE_BY_KEY) != 0, "serial",
                             (json_int_t)r.serial));
    else
        printf("revocation record: %s (give it to an agent: hmsctl revoke %s)\n", o.out, o.out);
    return HMSCTL_OK;
}

static int ca_bootstrap(int argc, char **argv, const hmsctl_globals *g)
{
    char keypath[4096], pubpath[4096], certpath[4096], list[4096];
    const char *names[BOOTSTRAP_MAX];
    uint8_t ca_pk[32], ca_sk[64], pk[32], sk[64];
    uint64_t days = DAYS_DEFAULT;
    size_t n = 0;
    opts o;
    int rc = parse_opts(argc, argv, 2, "names out days force", &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(ca_usage, stdout);
        return HMSCTL_OK;
    }
    if (!o.names || !o.out || o.npos)
        return hmsctl_error(HMSCTL_USAGE,
                            "usage: hmsctl ca bootstrap --names a,b,c --out DIR [--days D]");
    if (o.days && (rc = parse_u64("--days", o.days, 1, DAYS_MAX, &days)) != 0)
        return rc;
    if (snprintf(list, sizeof(list), "%s", o.names) >= (int)sizeof(list))
        return hmsctl_error(HMSCTL_USAGE, "invalid --names: too long");
    /* Check every name first: nothing is written for a bad list. */
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (!hms_cert_name_valid(tok) || strcmp(tok, "ca") == 0)
            return hmsctl_error(HMSCTL_USAGE,
                                "invalid node name '%s': expected 1-64 of [A-Za-z0-9._-], not "
                                "starting with '.' or '-', and not 'ca'",
                                tok);
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], tok) == 0)
                return hmsctl_error(HMSCTL_USAGE, "node name '%s' is given twice", tok);
        if (n == BOOTSTRAP_MAX)
            return hmsctl_error(HMSCTL_USAGE, "too many names: at most %d", BOOTSTRAP_MAX);
        names[n++] = tok;
    }
    if (n == 0)
        return hmsctl_error(HMSCTL_USAGE, "invalid --names '%s': no node name", o.names);
    if ((rc = make_dir(o.out)) != 0)
        return rc;
    rc = write_keypair(o.out, "ca", o.force, ca_pk, ca_sk, keypath, pubpath, sizeof(keypath));
    if (rc)
        goto out;
    json_t *nodes = g->json ? json_array() : NULL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char certname[128];
        rc = write_keypair(o.out, names[i], true, pk, sk, keypath, pubpath, sizeof(keypath));
        sodium_memzero(sk, sizeof(sk));
        if (rc)
            break;
        snprintf(certname, sizeof(certname), "%s.cert", names[i]);
        if ((rc = join_path(certpath, sizeof(certpath), o.out, certname)) != 0)
            break;
        rc = issue(ca_sk, names[i], pk, (uint64_t)i + 1, days, certpath, true, NULL);
        if (rc == 0 && nodes)
            json_array_append_new(nodes, json_pack("{s:s, s:s, s:s, s:s}", "name", names[i],
                                                   "key_file", keypath, "pub_file", pubpath,
                                                   "cert_file", certpath));
        else if (rc == 0)
            printf("%s: %s %s %s\n", names[i], keypath, pubpath, certpath);
    }
    if (rc == 0) {
        if (nodes) {
            char cakey[4096], capub[4096];
            join_path(cakey, sizeof(cakey), o.out, "ca.key");
            join_path(capub, sizeof(capub), o.out, "ca.pub");
            print_json(json_pack("{s:s, s:s, s:o}", "ca_key_file", cakey, "ca_pub_file", capub,
                                 "nodes", nodes));
            nodes = NULL;
        } else {
            printf("CA: %s/ca.key %s/ca.pub\n", o.out, o.out);
        }
    }
    json_decref(nodes);
out:
    sodium_memzero(ca_sk, sizeof(ca_sk));
    return rc;
}

static int cmd_ca(int argc, char **argv, const hmsctl_globals *g)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(ca_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? HMSCTL_USAGE : HMSCTL_OK;
    }
    if (strcmp(argv[1], "init") == 0)
        return ca_init(argc, argv, g);
    if (strcmp(argv[1], "issue") == 0)
        return ca_issue(argc, argv, g);
    if (strcmp(argv[1], "revoke") == 0)
        return ca_revoke(argc, argv, g);
    if (strcmp(argv[1], "bootstrap") == 0)
        return ca_bootstrap(argc, argv, g);
    return hmsctl_error(HMSCTL_USAGE, "unknown ca command '%s': expected init, issue, revoke or "
                                      "bootstrap",
                        argv[1]);
}

static const char cert_usage[] =
    "usage: hmsctl cert show FILE [--ca CA.PUB] [--json]\n"
    "  prints a node certificate or a revocation record; with --ca, checks its signature\n";

static int show_revocation(const uint8_t *buf, size_t len, const char *path, const char *ca,
                           const hmsctl_globals *g)
{
    hms_revocation r;
    char when[32], h[65], id[17];
    if (hms_revocation_decode(buf, len, &r) != HMS_CERT_OK)
        return hmsctl_error(HMSCTL_FAIL, "cannot use '%s': malformed revocation record", path);
    const char *verdict = NULL;
    if (ca) {
        uint8_t cas[16][32];
        uint8_t txt[FILE_MAX];
        size_t tl = 0, n = 0;
        int rc = read_file(ca, txt, sizeof(txt), &tl);
        if (rc)
            return rc;
        if (hms_key_parse_pub_list((const char *)txt, tl, cas, 16, &n) != HMS_CERT_OK)
            return hmsctl_error(HMSCTL_FAIL, "cannot use '%s': not a CA public key file", ca);
        verdict = hms_cert_result_name(
            hms_revocation_verify(buf, len, (const uint8_t(*)[32])cas, n, NULL));
    }
    format_time(r.time, when, sizeof(when));
    hex(r.node_pk, 32, h);
    hex(r.ca_id, HMS_CA_ID_LEN, id);
    if (g->json) {
        json_t *j = json_pack("{s:s, s:I, s:s, s:s}", "type", "revocation", "time",
                              (json_int_t)r.time, "time_utc", when, "ca_id", id);
        if (r.flags & HMS_REVOKE_BY_SERIAL)
            json_object_set_new(j, "serial", json_integer((json_int_t)r.serial));
        if (r.flags & HMS_REVOKE_BY_KEY)
            json_object_set_new(j, "node_key", json_string(h));
        if (verdict)
            json_object_set_new(j, "signature", json_string(verdict));
        print_json(j);
    } else {
        printf("revocation record\n");
        if (r.flags & HMS_REVOKE_BY_SERIAL)
            printf("  serial:     %" PRIu64 "\n", r.serial);
        if (r.flags & HMS_REVOKE_BY_KEY)
            printf("  node key:   %s\n", h);
        printf("  revoked at: %s\n  CA id:      %s\n", when, id);
        if (verdict)
            printf("  signature:  %s\n", verdict);
    }
    return verdict && strcmp(verdict, "ok") != 0 ? HMSCTL_FAIL : HMSCTL_OK;
}

static int cmd_cert(int argc, char **argv, const hmsctl_globals *g)
{
    uint8_t buf[HMS_CERT_MAX_LEN + 1];
    char nb[32], na[32], h[65], id[17];
    size_t len = 0;
    hms_cert c;
    opts o;

    if (argc < 2 || strcmp(argv[1], "show") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(cert_usage, stdout);
            return HMSCTL_OK;
        }
        return hmsctl_error(HMSCTL_USAGE, "usage: hmsctl cert show FILE [--ca CA.PUB]");
    }
    int rc = parse_opts(argc, argv, 2, "ca", &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(cert_usage, stdout);
        return HMSCTL_OK;
    }
    if (o.npos != 1)
        return hmsctl_error(HMSCTL_USAGE, "usage: hmsctl cert show FILE [--ca CA.PUB]");
    if ((rc = read_file(o.pos[0], buf, sizeof(buf), &len)) != 0)
        return rc;
    if (len == HMS_REVOCATION_LEN && buf[1] == 2)
        return show_revocation(buf, len, o.pos[0], o.ca, g);
    if (hms_cert_decode(buf, len, &c) != HMS_CERT_OK)
        return hmsctl_error(HMSCTL_FAIL, "cannot use '%s': not a certificate", o.pos[0]);

    uint64_t now = (uint64_t)time(NULL);
    int tr = hms_cert_check_time(&c, now, 0);
    const char *status = tr == HMS_CERT_OK ? "valid" : hms_cert_result_name(tr);
    const char *verdict = NULL;
    if (o.ca) {
        uint8_t txt[FILE_MAX], cas[16][32];
        size_t tl = 0, n = 0;
        if ((rc = read_file(o.ca, txt, sizeof(txt), &tl)) != 0)
            return rc;
        if (hms_key_parse_pub_list((const char *)txt, tl, cas, 16, &n) != HMS_CERT_OK)
            return hmsctl_error(HMSCTL_FAIL, "cannot use '%s': not a CA public key file", o.ca);
        verdict = hms_cert_result_name(
            hms_cert_verify(buf, len, (const uint8_t(*)[32])cas, n, now, 0, NULL));
    }
    format_time(c.not_before, nb, sizeof(nb));
    format_time(c.not_after, na, sizeof(na));
    hex(c.node_pk, 32, h);
    hex(c.ca_id, HMS_CA_ID_LEN, id);
    if (g->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "type",
                              "certificate", "name", c.name, "node_key", h, "serial",
                              (json_int_t)c.serial, "not_before", (json_int_t)c.not_before,
                              "not_after", (json_int_t)c.not_after, "not_before_utc", nb,
                              "not_after_utc", na, "ca_id", id, "status", status);
        if (verdict)
            json_object_set_new(j, "verify", json_string(verdict));
        print_json(j);
    } else {
        printf("node certificate\n  name:       %s\n  node key:   %s\n  serial:     %" PRIu64
               "\n  not before: %s\n  not after:  %s\n  CA id:      %s\n  status:     %s\n",
               c.name, h, c.serial, nb, na, id, status);
        if (verdict)
            printf("  verify:     %s\n", verdict);
    }
    return verdict && strcmp(verdict, "ok") != 0 ? HMSCTL_FAIL : HMSCTL_OK;
}

/* revoke FILE: the agent verifies the record against its CAs, persists it
 * and gossips it (op "revoke", field "record": the 123 bytes). */
typedef struct revoke_req {
    const uint8_t *rec;
    size_t len;
} revoke_req;

static int pack_revoke(msgpack_packer *pk, void *ctx)
{
    const revoke_req *r = ctx;
    msgpack_pack_map(pk, 1);
    msgpack_pack_str(pk, 6);
    msgpack_pack_str_body(pk, "record", 6);
    msgpack_pack_bin(pk, r->len);
    msgpack_pack_bin_body(pk, r->rec, r->len);
    return 0;
}

static int cmd_revoke(int argc, char **argv, const hmsctl_globals *g)
{
    uint8_t buf[HMS_REVOCATION_LEN + 1];
    size_t len = 0;
    hms_revocation r;
    hms_client *c = NULL;
    hms_reply rep;
    opts o;
    int rc = parse_opts(argc, argv, 1, "", &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs("usage: hmsctl revoke FILE\n  hands a revocation record (from 'hmsctl ca revoke') "
              "to the agent, which checks, persists and gossips it\n",
              stdout);
        return HMSCTL_OK;
    }
    if (o.npos != 1)
        return hmsctl_error(HMSCTL_USAGE, "usage: hmsctl revoke FILE");
    if ((rc = read_file(o.pos[0], buf, sizeof(buf), &len)) != 0)
        return rc;
    if (hms_revocation_decode(buf, len, &r) != HMS_CERT_OK)
        return hmsctl_error(HMSCTL_FAIL, "cannot use '%s': not a revocation record", o.pos[0]);
    rc = hms_connect(g->socket_path, &c);
    if (rc < 0)
        return hmsctl_error(HMSCTL_UNREACHABLE, "cannot reach the agent at '%s': %s",
                            g->socket_path ? g->socket_path : HMS_SOCKET_DEFAULT,
                            hms_strerror(rc));
    memset(&rep, 0, sizeof(rep));
    revoke_req req = {buf, len};
    rc = hms_request(c, "revoke", pack_revoke, &req, &rep);
    if (rc == -EREMOTEIO) {
        rc = hmsctl_error(HMSCTL_FAIL, "revocation refused: %s", rep.message);
    } else if (rc < 0) {
        rc = hmsctl_error(rc == -ETIMEDOUT ? HMSCTL_FAIL : HMSCTL_UNREACHABLE,
                          "revocation failed: %s", hms_strerror(rc));
    } else {
        bool is_new = false;
        if (rep.result && rep.result->type == MSGPACK_OBJECT_MAP) {
            const msgpack_object *n = hms_mp_get(rep.result, "new");
            is_new = n && n->type == MSGPACK_OBJECT_BOOLEAN && n->via.boolean;
        }
        if (g->json)
            print_json(json_pack("{s:b, s:b}", "ok", 1, "new", is_new));
        else
            printf("revocation %s\n", is_new ? "accepted" : "already known");
        rc = HMSCTL_OK;
    }
    hms_reply_destroy(&rep);
    hms_close(c);
    return rc;
}

const hmsctl_cmd hmsctl_ca_cmds[] = {
    {"keygen", cmd_keygen, "keygen --out DIR", "create a node identity key (offline)"},
    {"ca", cmd_ca, "ca init|issue|revoke|bootstrap ...",
     "cluster authority: keys, certificates, revocations (offline)"},
    {"cert", cmd_cert, "cert show FILE [--ca CA.PUB]", "show a certificate or revocation record"},
    {"revoke", cmd_revoke, "revoke FILE", "give a revocation record to the agent"},
    {NULL, NULL, NULL, NULL},
};
