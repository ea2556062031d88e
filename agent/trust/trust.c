/*
 * The trust store: identity key, trusted CAs, own certificate, the table of
 * peers whose certificates were checked, and revocations (memory and
 * <data_dir>/revocations.bin). The policy in one place:
 *
 *   a peer key is admitted  <=>  a certificate for it was learned, issued by
 *   a trusted CA, valid now (with skew), and neither its key nor its
 *   (CA, serial) is revoked.
 *
 * Lookups on the packet path (hms_trust_peer_check) are one hash lookup and
 * at most one binary search; revocations are rare and may cost more.
 */
#include "agent/trust/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/net/chan.h"
#include "agent/net/seal.h"
#include "agent/trust/keyfile.h"

#define NIL UINT32_MAX
#define PEERS_INITIAL 16 /* first size of the peer table; it doubles up to the max */
#define REVOKED_KEYS_MAX (2 * HMS_TRUST_REVOCATIONS_MAX)

typedef struct peer {
    hms_cert cert;
    uint32_t hnext, lru_prev, lru_next;
} peer;

typedef struct serial_ref {
    uint8_t ca_id[HMS_CA_ID_LEN];
    uint64_t serial;
} serial_ref;

struct hms_trust {
    char data_dir[PATH_MAX];
    char rev_path[PATH_MAX];
    uint64_t skew;
    uint64_t now; /* 0: use the system clock */
    void (*on_revoked)(void *ctx, const uint8_t ed_pk[32]);
    void *on_revoked_ctx;

    uint8_t sk[64];
    uint8_t pk[32];

    uint8_t cas[HMS_TRUST_CA_MAX][32];
    size_t n_ca;

    bool has_cert;
    hms_cert cert;
    uint8_t cert_bytes[HMS_CERT_MAX_LEN];
    size_t cert_len;

    /* Revocation records in arrival order, plus sorted indexes. */
    hms_revocation *revs;
    size_t n_revs, cap_revs;
    uint8_t (*revoked_keys)[32]; /* sorted; by-key records and keys of serial-revoked certs */
    size_t n_revoked_keys, cap_revoked_keys;
    serial_ref *revoked_serials; /* sorted */
    size_t n_revoked_serials, cap_revoked_serials;

    /* Peer table: hash chains plus an LRU list (head = most recent). Slots
     * [0, n_slots) have been handed out; removed ones wait on free_list. The
     * arrays start small and double up to HMS_TRUST_PEERS_MAX, so a small
     * cluster does not pay for the largest one; buckets = 2 * cap_peers. */
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    uint32_t *buckets;
    uint32_t nbuckets;
    peer *peers;
    uint32_t cap_peers, n_slots;
    uint32_t *free_list;
    uint32_t nfree;
    uint32_t lru_head, lru_tail;
};

static uint64_t now_of(const hms_trust *t)
{
    return t->now ? t->now : (uint64_t)time(NULL);
}

const char *hms_trust_strerror(int code)
{
    if (HMS_CERT_IS_RESULT(code))
        return hms_cert_result_name(code);
    return strerror(code < 0 ? -code : code);
}

void hms_trust_set_time(hms_trust *t, uint64_t now_unix)
{
    if (t)
        t->now = now_unix;
}

static void format_time(uint64_t secs, char *buf, size_t cap)
{
    struct tm tm;
    time_t tt = secs > (uint64_t)INT32_MAX * 1000 ? (time_t)INT32_MAX * 1000 : (time_t)secs;
    if (!gmtime_r(&tt, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "%llu", (unsigned long long)secs);
}

/* ------------------------------------------------------------------------ */
/* Sorted sets                                                                */

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

static int serial_cmp(const void *a, const void *b)
{
    const serial_ref *x = a, *y = b;
    int c = memcmp(x->ca_id, y->ca_id, HMS_CA_ID_LEN);
    if (c)
        return c;
    return x->serial < y->serial ? -1 : x->serial > y->serial;
}

/* Inserts elem into a sorted array (no duplicates). Returns 0 or -ENOSPC. */
static int sorted_insert(void **arr, size_t *n, size_t *cap, size_t size, size_t max,
                         const void *elem, int (*cmp)(const void *, const void *))
{
    size_t lo = 0, hi = *n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp((const uint8_t *)*arr + mid * size, elem);
        if (c == 0)
            return 0;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (*n == *cap) {
        if (*cap >= max)
            return -ENOSPC;
        size_t ncap = *cap ? *cap * 2 : 16;
        if (ncap > max)
            ncap = max;
        void *p = realloc(*arr, ncap * size);
        if (!p)
            return -ENOMEM;
        *arr = p;
        *cap = ncap;
    }
    uint8_t *base = *arr;
    memmove(base + (lo + 1) * size, base + lo * size, (*n - lo) * size);
    memcpy(base + lo * size, elem, size);
    (*n)++;
    return 0;
}

static bool key_revoked(const hms_trust *t, const uint8_t pk[32])
{
    return t->n_revoked_keys &&
           bsearch(pk, t->revoked_keys, t->n_revoked_keys, 32, key_cmp) != NULL;
}

static bool serial_revoked(const hms_trust *t, const hms_cert *c)
{
    serial_ref r;
    memcpy(r.ca_id, c->ca_id, HMS_CA_ID_LEN);
    r.serial = c->serial;
    return t->n_revoked_serials &&
           bsearch(&r, t->revoked_serials, t->n_revoked_serials, sizeof(r), serial_cmp) != NULL;
}

static int add_revoked_key(hms_trust *t, const uint8_t pk[32])
{
    void *arr = t->revoked_keys;
    int rc = sorted_insert(&arr, &t->n_revoked_keys, &t->cap_revoked_keys, 32, REVOKED_KEYS_MAX,
                           pk, key_cmp);
    t->revoked_keys = arr;
    return rc;
}

/* A certificate is revoked by its key or its (CA, serial). A serial match
 * also marks the key revoked, so packets from it are counted as revoked;
 * re-admitting such a node takes a new key. */
static bool cert_revoked(hms_trust *t, const hms_cert *c)
{
    if (key_revoked(t, c->node_pk))
        return true;
    if (serial_revoked(t, c)) {
        add_revoked_key(t, c->node_pk);
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Peer table                                                                 */

static uint32_t bucket_of(const hms_trust *t, const uint8_t pk[32])
{
    uint8_t h[crypto_shorthash_BYTES];
    uint64_t v = 0;
    crypto_shorthash(h, pk, 32, t->hkey);
    for (int i = 0; i < 8; i++)
        v = (v << 8) | h[i];
    return (uint32_t)(v % t->nbuckets);
}

static void lru_unlink(hms_trust *t, uint32_t i)
{
    peer *p = &t->peers[i];
    if (p->lru_prev != NIL)
        t->peers[p->lru_prev].lru_next = p->lru_next;
    else
        t->lru_head = p->lru_next;
    if (p->lru_next != NIL)
        t->peers[p->lru_next].lru_prev = p->lru_prev;
    else
        t->lru_tail = p->lru_prev;
    p->lru_prev = p->lru_next = NIL;
}

static void lru_push_front(hms_trust *t, uint32_t i)
{
    peer *p = &t->peers[i];
    p->lru_prev = NIL;
    p->lru_next = t->lru_head;
    if (t->lru_head != NIL)
        t->peers[t->lru_head].lru_prev = i;
    t->lru_head = i;
    if (t->lru_tail == NIL)
        t->lru_tail = i;
}

static uint32_t peer_find(const hms_trust *t, const uint8_t pk[32])
{
    for (uint32_t i = t->buckets[bucket_of(t, pk)]; i != NIL; i = t->peers[i].hnext)
        if (memcmp(t->peers[i].cert.node_pk, pk, 32) == 0)
            return i;
    return NIL;
}

static void peer_remove(hms_trust *t, uint32_t i)
{
    peer *p = &t->peers[i];
    uint32_t *link = &t->buckets[bucket_of(t, p->cert.node_pk)];
    while (*link != NIL && *link != i)
        link = &t->peers[*link].hnext;
    if (*link == i)
        *link = p->hnext;
    lru_unlink(t, i);
    memset(p, 0, sizeof(*p));
    p->hnext = p->lru_prev = p->lru_next = NIL;
    t->free_list[t->nfree++] = i;
}

/* Doubles the peer table (up to HMS_TRUST_PEERS_MAX) and rehashes every
 * entry. Returns 0, or -ENOSPC at the maximum, or -ENOMEM; on failure the
 * table is unchanged. */
static int peers_grow(hms_trust *t)
{
    if (t->cap_peers >= HMS_TRUST_PEERS_MAX)
        return -ENOSPC;
    uint32_t ncap = t->cap_peers ? t->cap_peers * 2 : PEERS_INITIAL;
    if (ncap > HMS_TRUST_PEERS_MAX)
        ncap = HMS_TRUST_PEERS_MAX;
    uint32_t nb = 2 * ncap;
    uint32_t *buckets = malloc(nb * sizeof(*buckets));
    uint32_t *free_list = malloc(ncap * sizeof(*free_list));
    peer *peers = buckets && free_list ? realloc(t->peers, ncap * sizeof(*peers)) : NULL;
    if (!peers) {
        free(buckets);
        free(free_list);
        return -ENOMEM;
    }
    t->peers = peers;
    if (t->nfree)
        memcpy(free_list, t->free_list, t->nfree * sizeof(*free_list));
    free(t->free_list);
    t->free_list = free_list;
    free(t->buckets);
    t->buckets = buckets;
    t->nbuckets = nb;
    t->cap_peers = ncap;
    for (uint32_t b = 0; b < nb; b++)
        t->buckets[b] = NIL;
    for (uint32_t i = t->lru_head; i != NIL; i = t->peers[i].lru_next) {
        uint32_t b = bucket_of(t, t->peers[i].cert.node_pk);
        t->peers[i].hnext = t->buckets[b];
        t->buckets[b] = i;
    }
    return 0;
}

/* A free slot: a removed one, a never used one, a new one after growing the
 * table, or (at the maximum) the least recently used peer's. */
static uint32_t peer_slot(hms_trust *t)
{
    if (t->nfree == 0 && t->n_slots == t->cap_peers && peers_grow(t) < 0)
        peer_remove(t, t->lru_tail);
    if (t->nfree)
        return t->free_list[--t->nfree];
    uint32_t i = t->n_slots++;
    t->peers[i].hnext = t->peers[i].lru_prev = t->peers[i].lru_next = NIL;
    return i;
}

/* Inserts or replaces the certificate for its key. */
static void peer_put(hms_trust *t, const hms_cert *c)
{
    uint32_t i = peer_find(t, c->node_pk);
    if (i != NIL) {
        /* Keep the newer certificate (renewals arrive with later validity). */
        if (c->not_after >= t->peers[i].cert.not_after)
            t->peers[i].cert = *c;
        lru_unlink(t, i);
        lru_push_front(t, i);
        return;
    }
    i = peer_slot(t);
    peer *p = &t->peers[i];
    p->cert = *c;
    uint32_t b = bucket_of(t, c->node_pk);
    p->hnext = t->buckets[b];
    t->buckets[b] = i;
    lru_push_front(t, i);
}

/* ------------------------------------------------------------------------ */
/* Revocations                                                                */

/* Whether exactly this record (every field, signature included) is held. */
static bool revocation_known(const hms_trust *t, const hms_revocation *r)
{
    for (size_t i = 0; i < t->n_revs; i++) {
        const hms_revocation *k = &t->revs[i];
        if (memcmp(k->sig, r->sig, 64) == 0 && k->flags == r->flags && k->serial == r->serial &&
            k->time == r->time && memcmp(k->ca_id, r->ca_id, HMS_CA_ID_LEN) == 0 &&
            memcmp(k->node_pk, r->node_pk, 32) == 0)
            return true;
    }
    return false;
}

/* Adds a verified record to memory and the indexes; expels matching peers
 * (calling on_revoked when notify). */
static int revocation_apply(hms_trust *t, const hms_revocation *r, bool notify)
{
    if (t->n_revs == t->cap_revs) {
        if (t->cap_revs >= HMS_TRUST_REVOCATIONS_MAX)
            return -ENOSPC;
        size_t ncap = t->cap_revs ? t->cap_revs * 2 : 16;
        hms_revocation *p = realloc(t->revs, ncap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        t->revs = p;
        t->cap_revs = ncap;
    }
    if (r->flags & HMS_REVOKE_BY_KEY) {
        int rc = add_revoked_key(t, r->node_pk);
        if (rc < 0)
            return rc;
    }
    if (r->flags & HMS_REVOKE_BY_SERIAL) {
        serial_ref s;
        memcpy(s.ca_id, r->ca_id, HMS_CA_ID_LEN);
        s.serial = r->serial;
        void *arr = t->revoked_serials;
        int rc = sorted_insert(&arr, &t->n_revoked_serials, &t->cap_revoked_serials, sizeof(s),
                               HMS_TRUST_REVOCATIONS_MAX, &s, serial_cmp);
        t->revoked_serials = arr;
        if (rc < 0)
            return rc;
    }
    t->revs[t->n_revs++] = *r;

    /* Expel every learned peer the record matches. */
    for (uint32_t i = t->lru_head; i != NIL;) {
        uint32_t next = t->peers[i].lru_next;
        if (hms_revocation_matches(r, &t->peers[i].cert)) {
            uint8_t pk[32];
            memcpy(pk, t->peers[i].cert.node_pk, 32);
            add_revoked_key(t, pk);
            peer_remove(t, i);
            if (notify && t->on_revoked)
                t->on_revoked(t->on_revoked_ctx, pk);
        }
        i = next;
    }
    return 0;
}

/* Loads revocations.bin: whole records only (a torn tail from a crash is
 * cut off), each verified against the trusted CAs; records of CAs no
 * longer trusted stay in the file but are not applied. */
static int revocations_load(hms_trust *t, char *err, size_t errlen)
{
    uint8_t rec[HMS_REVOCATION_LEN];
    size_t whole = 0;
    int fd = open(t->rev_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        int e = errno;
        snprintf(err, errlen, "cannot open '%s': %s", t->rev_path, strerror(e));
        return -e;
    }
    for (;;) {
        size_t got = 0;
        while (got < sizeof(rec)) {
            ssize_t r = read(fd, rec + got, sizeof(rec) - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                int e = errno;
                snprintf(err, errlen, "cannot read '%s': %s", t->rev_path, strerror(e));
                close(fd);
                return -e;
            }
            if (r == 0)
                break;
            got += (size_t)r;
        }
        if (got < sizeof(rec)) {
            if (got > 0 && ftruncate(fd, (off_t)(whole * HMS_REVOCATION_LEN)) != 0) {
                int e = errno;
                snprintf(err, errlen, "cannot truncate '%s': %s", t->rev_path, strerror(e));
                close(fd);
                return -e;
            }
            break;
        }
        whole++;
        hms_revocation r;
        if (hms_revocation_verify(rec, sizeof(rec), (const uint8_t(*)[32])t->cas, t->n_ca, &r) !=
                HMS_CERT_OK ||
            revocation_known(t, &r))
            continue;
        int rc = revocation_apply(t, &r, false);
        if (rc < 0) {
            snprintf(err, errlen, "cannot load '%s': %s", t->rev_path, strerror(-rc));
            close(fd);
            return rc;
        }
    }
    close(fd);
    return 0;
}

static int revocation_append(hms_trust *t, const uint8_t rec[HMS_REVOCATION_LEN])
{
    size_t off = 0;
    int fd = open(t->rev_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    while (off < HMS_REVOCATION_LEN) {
        ssize_t w = write(fd, rec + off, HMS_REVOCATION_LEN - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            /* Leave no partial record behind for the next append. */
            struct stat st;
            if (off > 0 && fstat(fd, &st) == 0)
                (void)!ftruncate(fd, st.st_size - (off_t)off);
            close(fd);
            return -e;
        }
        off += (size_t)w;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

int hms_trust_add_revocation(hms_trust *t, const uint8_t *rec, size_t len, bool *is_new)
{
    hms_revocation r;
    if (!t || !rec || !is_new)
        return HMS_CERT_INVALID_ARG;
    *is_new = false;
    /* Gossip repeats records: a known one costs a decode and a compare,
     * not a signature check. */
    int rc = hms_revocation_decode(rec, len, &r);
    if (rc != HMS_CERT_OK)
        return rc;
    if (revocation_known(t, &r))
        return 0;
    rc = hms_revocation_verify(rec, len, (const uint8_t(*)[32])t->cas, t->n_ca, &r);
    if (rc != HMS_CERT_OK)
        return rc;
    if (t->n_revs >= HMS_TRUST_REVOCATIONS_MAX)
        return -ENOSPC;
    /* Persist first: a revocation acknowledged is never forgotten. */
    uint8_t canon[HMS_REVOCATION_LEN];
    hms_revocation_encode(&r, canon);
    rc = revocation_append(t, canon);
    if (rc < 0)
        return rc;
    rc = revocation_apply(t, &r, true);
    if (rc < 0)
        return rc;
    *is_new = true;
    return 0;
}

bool hms_trust_is_revoked(const hms_trust *t, const uint8_t ed_pk[32])
{
    if (!t || !ed_pk)
        return false;
    if (key_revoked(t, ed_pk))
        return true;
    if (t->has_cert && memcmp(ed_pk, t->pk, 32) == 0)
        return serial_revoked(t, &t->cert);
    uint32_t i = peer_find(t, ed_pk);
    return i != NIL && serial_revoked(t, &t->peers[i].cert);
}

bool hms_trust_self_revoked(const hms_trust *t)
{
    return t && hms_trust_is_revoked(t, t->pk);
}

size_t hms_trust_revocation_count(const hms_trust *t)
{
    return t ? t->n_revs : 0;
}

int hms_trust_revocation_get(const hms_trust *t, size_t i, uint8_t out[HMS_REVOCATION_LEN])
{
    if (!t || i >= t->n_revs || !out)
        return -ENOENT;
    return hms_revocation_encode(&t->revs[i], out) == HMS_CERT_OK ? 0 : -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                      */

static int load_cas(hms_trust *t, const hms_trust_config *cfg, char *err, size_t errlen)
{
    char def[PATH_MAX];
    const char *one[1];
    const char *const *files = cfg->ca_files;
    size_t n = cfg->ca_count;
    uint8_t buf[HMS_KEYFILE_MAX];

    if (!files || n == 0) {
        if (snprintf(def, sizeof(def), "%s/ca.pub", cfg->data_dir) >= (int)sizeof(def) ||
            access(def, F_OK) != 0)
            return 0;
        one[0] = def;
        files = one;
        n = 1;
    }
    for (size_t f = 0; f < n; f++) {
        size_t len = 0, got = 0;
        int rc = hms_file_read(files[f], buf, sizeof(buf), &len, err, errlen);
        if (rc < 0)
            return rc;
        if (t->n_ca == HMS_TRUST_CA_MAX) {
            snprintf(err, errlen, "cannot load '%s': more than %d trusted CA keys", files[f],
                     HMS_TRUST_CA_MAX);
            return -E2BIG;
        }
        rc = hms_key_parse_pub_list((const char *)buf, len, t->cas + t->n_ca,
                                    HMS_TRUST_CA_MAX - t->n_ca, &got);
        if (rc != HMS_CERT_OK) {
            snprintf(err, errlen,
                     "cannot load CA file '%s': expected lines 'ed25519-pub:<64 hex digits>' "
                     "(at most %d keys in all)",
                     files[f], HMS_TRUST_CA_MAX);
            return -EINVAL;
        }
        t->n_ca += got;
    }
    return 0;
}

static int load_own_cert(hms_trust *t, const hms_trust_config *cfg, uint64_t now, char *err,
                         size_t errlen)
{
    char def[PATH_MAX], when[64];
    const char *path = cfg->cert_file;
    uint8_t buf[HMS_CERT_MAX_LEN + 1];
    size_t len = 0;
    hms_cert c;
    int rc;

    if (!path) {
        if (snprintf(def, sizeof(def), "%s/node.cert", cfg->data_dir) >= (int)sizeof(def) ||
            access(def, F_OK) != 0)
            return 0;
        path = def;
    }
    rc = hms_file_read(path, buf, sizeof(buf), &len, err, errlen);
    if (rc == -EFBIG) {
        snprintf(err, errlen, "certificate '%s' is not a certificate (too large)", path);
        return -EINVAL;
    }
    if (rc < 0)
        return rc;
    rc = hms_cert_decode(buf, len, &c);
    if (rc != HMS_CERT_OK) {
        snprintf(err, errlen, "certificate '%s' is malformed", path);
        return -EINVAL;
    }
    if (cfg->node_name && strcmp(c.name, cfg->node_name) != 0) {
        snprintf(err, errlen, "certificate '%s' is for node '%s', not '%s'", path, c.name,
                 cfg->node_name);
        return -EINVAL;
    }
    if (sodium_memcmp(c.node_pk, t->pk, 32) != 0) {
        snprintf(err, errlen, "certificate '%s' is for another key than the node key", path);
        return -EINVAL;
    }
    rc = hms_cert_verify(buf, len, (const uint8_t(*)[32])t->cas, t->n_ca, now, t->skew, NULL);
    switch (rc) {
    case HMS_CERT_OK: break;
    case HMS_CERT_UNKNOWN_CA:
        snprintf(err, errlen, "certificate '%s' is issued by a CA that is not trusted%s", path,
                 t->n_ca ? "" : " (no CA file loaded)");
        return -EINVAL;
    case HMS_CERT_NOT_YET_VALID:
        format_time(c.not_before, when, sizeof(when));
        snprintf(err, errlen, "certificate '%s' is not valid yet (not before %s)", path, when);
        return -EINVAL;
    case HMS_CERT_EXPIRED:
        format_time(c.not_after, when, sizeof(when));
        snprintf(err, errlen, "certificate '%s' has expired (not after %s)", path, when);
        return -EINVAL;
    default:
        snprintf(err, errlen, "certificate '%s' does not verify: %s", path,
                 hms_cert_result_name(rc));
        return -EINVAL;
    }
    t->cert = c;
    memcpy(t->cert_bytes, buf, len);
    t->cert_len = len;
    t->has_cert = true;
    return 0;
}

int hms_trust_new(const hms_trust_config *cfg, uint64_t now_unix, hms_trust **out, char *err,
                  size_t errlen)
{
    char keypath[PATH_MAX];
    bool created;
    hms_trust *t;
    int rc;

    if (!cfg || !cfg->data_dir || !out) {
        snprintf(err, errlen, "trust: missing data dir");
        return -EINVAL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "cannot initialise libsodium");
        return -EIO;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->lru_head = t->lru_tail = NIL;
    randombytes_buf(t->hkey, sizeof(t->hkey));
    /* The first size is allocated now, so the LRU fallback of peer_slot
     * always has a slot to reuse. */
    if (peers_grow(t) < 0) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    t->skew = cfg->skew ? cfg->skew : HMS_TRUST_SKEW_DEFAULT;
    t->on_revoked = cfg->on_revoked;
    t->on_revoked_ctx = cfg->on_revoked_ctx;
    int kl = cfg->node_key_file
                 ? snprintf(keypath, sizeof(keypath), "%s", cfg->node_key_file)
                 : snprintf(keypath, sizeof(keypath), "%s/node.key", cfg->data_dir);
    if (snprintf(t->data_dir, sizeof(t->data_dir), "%s", cfg->data_dir) >=
            (int)sizeof(t->data_dir) ||
        snprintf(t->rev_path, sizeof(t->rev_path), "%s/revocations.bin", cfg->data_dir) >=
            (int)sizeof(t->rev_path) ||
        kl >= (int)sizeof(keypath)) {
        snprintf(err, errlen, "path too long: '%s'", cfg->data_dir);
        rc = -ENAMETOOLONG;
        goto fail;
    }
    rc = hms_keyfile_load(keypath, cfg->node_key_file == NULL, t->sk, &created, err, errlen);
    if (rc < 0)
        goto fail;
    memcpy(t->pk, t->sk + 32, 32);
    rc = load_cas(t, cfg, err, errlen);
    if (rc < 0)
        goto fail;
    rc = revocations_load(t, err, errlen);
    if (rc < 0)
        goto fail;
    rc = load_own_cert(t, cfg, now_unix, err, errlen);
    if (rc < 0)
        goto fail;
    if (t->has_cert && (key_revoked(t, t->pk) || serial_revoked(t, &t->cert))) {
        snprintf(err, errlen, "this node's certificate (serial %llu) has been revoked",
                 (unsigned long long)t->cert.serial);
        rc = -EPERM;
        goto fail;
    }
    *out = t;
    return 0;
fail:
    hms_trust_delete(t);
    return rc;
}

void hms_trust_delete(hms_trust *t)
{
    if (!t)
        return;
    sodium_memzero(t->sk, sizeof(t->sk));
    free(t->buckets);
    free(t->peers);
    free(t->free_list);
    free(t->revs);
    free(t->revoked_keys);
    free(t->revoked_serials);
    sodium_memzero(t, sizeof(*t));
    free(t);
}

/* ------------------------------------------------------------------------ */
/* Identity                                                                   */

const uint8_t *hms_trust_node_pk(const hms_trust *t)
{
    return t->pk;
}

const uint8_t *hms_trust_node_sk(const hms_trust *t)
{
    return t->sk;
}

int hms_ed25519_pk_to_x25519(const uint8_t ed_pk[32], uint8_t x_pk[32])
{
    return crypto_sign_ed25519_pk_to_curve25519(x_pk, ed_pk) == 0 ? 0 : -EINVAL;
}

int hms_ed25519_sk_to_x25519(const uint8_t ed_sk[64], uint8_t x_sk[32])
{
    return crypto_sign_ed25519_sk_to_curve25519(x_sk, ed_sk) == 0 ? 0 : -EINVAL;
}

void hms_trust_node_x25519(const hms_trust *t, uint8_t x_sk[32], uint8_t x_pk[32])
{
    crypto_sign_ed25519_sk_to_curve25519(x_sk, t->sk);
    crypto_scalarmult_base(x_pk, x_sk);
}

const uint8_t *hms_trust_own_cert(const hms_trust *t, size_t *len)
{
    if (!t || !t->has_cert) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = t->cert_len;
    return t->cert_bytes;
}

const char *hms_trust_node_name(const hms_trust *t)
{
    return t && t->has_cert ? t->cert.name : "";
}

size_t hms_trust_ca_count(const hms_trust *t)
{
    return t ? t->n_ca : 0;
}

/* ------------------------------------------------------------------------ */
/* Peers                                                                      */

static bool cert_same(const hms_cert *a, const hms_cert *b)
{
    return strcmp(a->name, b->name) == 0 && memcmp(a->node_pk, b->node_pk, 32) == 0 &&
           a->serial == b->serial && a->not_before == b->not_before &&
           a->not_after == b->not_after && memcmp(a->ca_id, b->ca_id, HMS_CA_ID_LEN) == 0 &&
           memcmp(a->sig, b->sig, 64) == 0;
}

int hms_trust_check_cert(hms_trust *t, const uint8_t *cert, size_t len, uint64_t now_unix,
                         hms_cert *out)
{
    hms_cert c;
    int rc;
    if (!t || !cert)
        return HMS_CERT_INVALID_ARG;
    /* Member records are gossiped again and again with the same
     * certificate: one already verified and learned needs only the checks
     * that depend on time and revocations, not another signature check. */
    rc = hms_cert_decode(cert, len, &c);
    if (rc != HMS_CERT_OK)
        return rc;
    uint32_t i = peer_find(t, c.node_pk);
    if (i != NIL && cert_same(&t->peers[i].cert, &c))
        rc = hms_cert_check_time(&c, now_unix, t->skew);
    else
        rc = hms_cert_verify(cert, len, (const uint8_t(*)[32])t->cas, t->n_ca, now_unix,
                             t->skew, &c);
    if (rc != HMS_CERT_OK)
        return rc;
    if (cert_revoked(t, &c))
        return HMS_CERT_REVOKED;
    if (out)
        *out = c;
    return HMS_CERT_OK;
}

int hms_trust_learn(hms_trust *t, const uint8_t *cert, size_t len, uint64_t now_unix,
                    hms_cert *out)
{
    hms_cert c;
    int rc = hms_trust_check_cert(t, cert, len, now_unix, &c);
    if (rc != HMS_CERT_OK)
        return rc;
    if (memcmp(c.node_pk, t->pk, 32) != 0)
        peer_put(t, &c);
    if (out)
        *out = c;
    return HMS_CERT_OK;
}

int hms_trust_check_noise_peer(hms_trust *t, const uint8_t *cert, size_t len,
                               const uint8_t remote_static[32], uint64_t now_unix, hms_cert *out)
{
    hms_cert c;
    uint8_t x[32];
    if (!remote_static)
        return HMS_CERT_INVALID_ARG;
    int rc = hms_trust_check_cert(t, cert, len, now_unix, &c);
    if (rc != HMS_CERT_OK)
        return rc;
    if (hms_ed25519_pk_to_x25519(c.node_pk, x) != 0 || sodium_memcmp(x, remote_static, 32) != 0)
        return HMS_CERT_WRONG_KEY;
    if (memcmp(c.node_pk, t->pk, 32) != 0)
        peer_put(t, &c);
    if (out)
        *out = c;
    return HMS_CERT_OK;
}

int hms_trust_chan_verify(void *ctx, const uint8_t *cert, size_t len, struct hms_peer *out)
{
    hms_trust *t = ctx;
    hms_cert c;
    if (!t || !out)
        return -EINVAL;
    if (hms_trust_learn(t, cert, len, now_of(t), &c) != HMS_CERT_OK)
        return -EPERM;
    memcpy(out->key, c.node_pk, 32);
    snprintf(out->name, sizeof(out->name), "%s", c.name);
    return 0;
}

int hms_trust_swim_admit(void *ctx, const swim_member_info *m)
{
    hms_trust *t = ctx;
    hms_cert c;
    if (!t || !m)
        return -EINVAL;
    if (memcmp(m->key, t->pk, 32) == 0)
        return 0; /* our own record */
    if (m->cert_len == 0 || m->cert_len > sizeof(m->cert))
        return -EPERM;
    if (hms_trust_check_cert(t, m->cert, m->cert_len, now_of(t), &c) != HMS_CERT_OK)
        return -EPERM;
    if (strcmp(c.name, m->name) != 0 || memcmp(c.node_pk, m->key, 32) != 0)
        return -EPERM;
    peer_put(t, &c);
    return 0;
}

int hms_trust_peer_check(void *ctx, const uint8_t ed_pk[32])
{
    hms_trust *t = ctx;
    if (!t || !ed_pk)
        return HMS_SEAL_UNKNOWN_SENDER;
    if (key_revoked(t, ed_pk))
        return HMS_SEAL_REVOKED;
    if (memcmp(ed_pk, t->pk, 32) == 0)
        return HMS_SEAL_OK;
    uint32_t i = peer_find(t, ed_pk);
    if (i == NIL)
        return HMS_SEAL_UNKNOWN_SENDER;
    /* Learned certificates were not revoked when learned, and revocations
     * expel peers, so only the validity period is left to check. */
    if (hms_cert_check_time(&t->peers[i].cert, now_of(t), t->skew) != HMS_CERT_OK)
        return HMS_SEAL_UNKNOWN_SENDER;
    return HMS_SEAL_OK;
}

int hms_trust_peer_cert(const hms_trust *t, const uint8_t ed_pk[32], hms_cert *out)
{
    if (!t || !ed_pk || !out)
        return -EINVAL;
    uint32_t i = peer_find(t, ed_pk);
    if (i == NIL)
        return -ENOENT;
    *out = t->peers[i].cert;
    return 0;
}

void hms_trust_forget(hms_trust *t, const uint8_t ed_pk[32])
{
    if (!t || !ed_pk)
        return;
    uint32_t i = peer_find(t, ed_pk);
    if (i != NIL)
        peer_remove(t, i);
}

size_t hms_trust_peer_count(const hms_trust *t)
{
    return t ? t->n_slots - t->nfree : 0;
}
