/*
 * The audit store on disk: <data_dir>/audit/<origin-key-hex>/ holds one
 * origin's segments as <segno, 20 digits>.seg, fork proofs as
 * <segno>.fork-<head hex16>, and the origin's last known node name in
 * `name`. This file loads and checks all of it at start and keeps the
 * in-memory index (which segments each log has, their ranges and seals).
 *
 * Start-up rule: every stored byte must verify. The only repair made is the
 * torn tail of the own log's open (last, unsealed) segment, cut back to its
 * last whole record; anything else refuses the start with the file and
 * offset named.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/audit/audit_int.h"
#include "agent/audit/fileio.h"
#include "agent/log.h"

void aseg_path(const alog *l, uint64_t segno, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%020llu.seg", l->dir, (unsigned long long)segno);
}

aseg *alog_seg(alog *l, uint64_t segno)
{
    size_t lo = 0, hi = l->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->segs[mid].segno < segno)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->nsegs && l->segs[lo].segno == segno ? &l->segs[lo] : NULL;
}

aseg *alog_last(alog *l)
{
    return l->nsegs ? &l->segs[l->nsegs - 1] : NULL;
}

aseg *alog_add_seg(alog *l, const aseg *tmpl)
{
    if (l->nsegs == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        aseg *n = realloc(l->segs, ncap * sizeof(*n));
        if (!n)
            return NULL;
        l->segs = n;
        l->cap = ncap;
    }
    size_t i = l->nsegs;
    while (i > 0 && l->segs[i - 1].segno > tmpl->segno)
        i--;
    memmove(&l->segs[i + 1], &l->segs[i], (l->nsegs - i) * sizeof(*l->segs));
    l->segs[i] = *tmpl;
    l->nsegs++;
    return &l->segs[i];
}

void alog_remove_seg(alog *l, uint64_t segno)
{
    aseg *g = alog_seg(l, segno);
    if (!g)
        return;
    free(g->mem);
    size_t i = (size_t)(g - l->segs);
    memmove(&l->segs[i], &l->segs[i + 1], (l->nsegs - i - 1) * sizeof(*l->segs));
    l->nsegs--;
}

void aseg_from_info(aseg *g, const hms_audit_seginfo *in)
{
    memset(g, 0, sizeof(*g));
    g->segno = in->hdr.segno;
    g->first_seq = in->hdr.first_seq;
    g->count = in->count;
    g->last_seq = in->count ? in->last_seq : in->hdr.first_seq;
    g->first_ts = in->first_ts;
    g->last_ts = in->last_ts;
    g->size = in->valid_len;
    memcpy(g->prev_head, in->hdr.prev_head, HMS_AUDIT_HASH_LEN);
    memcpy(g->head, in->head, HMS_AUDIT_HASH_LEN);
    g->sealed = in->sealed;
    g->durable = true;
    if (in->sealed) {
        g->seal = in->seal;
        g->mtime_s = in->seal.time_ns / 1000000000ULL;
    }
}

int aseg_bytes(const alog *l, const aseg *g, const uint8_t **buf, size_t *len, uint8_t **owned)
{
    *owned = NULL;
    if (g->mem) {
        *buf = g->mem;
        *len = g->mem_len;
        return 0;
    }
    char path[PATH_MAX];
    aseg_path(l, g->segno, path, sizeof(path));
    int r = hms_fio_read_file(path, HMS_AUDIT_SEGMENT_MAX, owned, len);
    if (r)
        return r;
    /* The own log's open file may hold bytes past what is indexed. */
    if (*len > g->size)
        *len = g->size;
    *buf = *owned;
    return 0;
}

bool alog_add_fork(alog *l, const hms_audit_seal *a, const hms_audit_seal *b)
{
    for (size_t i = 0; i < l->nforks; i++) {
        const afork *f = &l->forks[i];
        if (f->segno == a->segno &&
            ((hms_audit_seal_same(&f->a, a) && hms_audit_seal_same(&f->b, b)) ||
             (hms_audit_seal_same(&f->a, b) && hms_audit_seal_same(&f->b, a))))
            return false;
    }
    if (l->nforks == AUDIT_FORKS_MAX)
        return false; /* enough proof kept; the counter in stats still rises */
    if (l->nforks == l->capforks) {
        size_t ncap = l->capforks ? 2 * l->capforks : 4;
        if (ncap > AUDIT_FORKS_MAX)
            ncap = AUDIT_FORKS_MAX;
        afork *n = realloc(l->forks, ncap * sizeof(*n));
        if (!n)
            return false; /* as when full: the proof is not kept, the counter rises */
        l->forks = n;
        l->capforks = ncap;
    }
    afork *f = &l->forks[l->nforks++];
    f->segno = a->segno;
    f->a = *a;
    f->b = *b;
    return true;
}

static void alog_free(alog *l)
{
    for (size_t i = 0; i < l->nsegs; i++)
        free(l->segs[i].mem);
    free(l->segs);
    free(l->forks);
    free(l);
}

void astore_close(astore *s)
{
    for (size_t i = 0; i < s->nlogs; i++)
        alog_free(s->logs[i]);
    free(s->logs);
    s->logs = NULL;
    s->nlogs = s->cap = 0;
}

alog *astore_find(astore *s, const uint8_t key[32])
{
    for (size_t i = 0; i < s->nlogs; i++)
        if (memcmp(s->logs[i]->key, key, 32) == 0)
            return s->logs[i];
    return NULL;
}

alog *astore_find_name(astore *s, const char *name)
{
    for (size_t i = 0; i < s->nlogs; i++)
        if (strcmp(s->logs[i]->name, name) == 0)
            return s->logs[i];
    return NULL;
}

static alog *alog_alloc(astore *s, const uint8_t key[32], bool own)
{
    if (s->nlogs == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        alog **n = realloc(s->logs, ncap * sizeof(*n));
        if (!n)
            return NULL;
        s->logs = n;
        s->cap = ncap;
    }
    alog *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    memcpy(l->key, key, 32);
    hms_audit_hex(key, 32, l->keyhex);
    snprintf(l->dir, sizeof(l->dir), "%s/%s", s->root, l->keyhex);
    l->own = own;
    s->logs[s->nlogs++] = l;
    return l;
}

alog *astore_get(astore *s, const uint8_t key[32], bool own)
{
    alog *l = astore_find(s, key);
    if (l)
        return l;
    l = alog_alloc(s, key, own);
    int r = l ? hms_fio_mkdirs(l->dir, 0700) : 0;
    if (r) {
        HMS_ERROR("audit: cannot create '%s': %s", l->dir, strerror(-r));
        s->nlogs--;
        free(l);
        return NULL;
    }
    return l;
}

void astore_set_name(alog *l, const char *name)
{
    if (!name || !name[0] || strcmp(l->name, name) == 0)
        return;
    snprintf(l->name, sizeof(l->name), "%s", name);
    /* The name file is a hint for queries about dead nodes, rewritten in
     * place; losing it only loses the name. */
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/name", l->dir);
    int fd = hms_fio_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        hms_fio_pwrite_all(fd, name, strlen(name), 0);
        hms_fio_close(fd);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool parse_segname(const char *n, uint64_t *segno)
{
    if (strlen(n) != 24 || strcmp(n + 20, ".seg") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (n[i] < '0' || n[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(n[i] - '0');
    }
    *segno = v;
    return true;
}

static bool is_forkname(const char *n)
{
    if (strlen(n) != 20 + 6 + 16 || memcmp(n + 20, ".fork-", 6) != 0)
        return false;
    for (int i = 0; i < 20; i++)
        if (n[i] < '0' || n[i] > '9')
            return false;
    return true;
}

/* Loads one origin's directory. */
static int load_log(astore *s, alog *l, char *err, size_t errlen)
{
    DIR *d = opendir(l->dir);
    if (!d) {
        snprintf(err, errlen, "cannot open '%s': %s", l->dir, strerror(errno));
        return -errno;
    }
    uint64_t *segnos = NULL;
    size_t n = 0, cap = 0;
    char forks[AUDIT_FORKS_MAX][64];
    size_t nforks = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        uint64_t sn;
        if (parse_segname(e->d_name, &sn)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                uint64_t *ns = realloc(segnos, cap * sizeof(*ns));
                if (!ns) {
                    rc = -ENOMEM;
                    break;
                }
                segnos = ns;
            }
            segnos[n++] = sn;
        } else if (is_forkname(e->d_name) && nforks < AUDIT_FORKS_MAX) {
            memcpy(forks[nforks++], e->d_name, strlen(e->d_name) + 1); /* 42 bytes, checked */
        } else if (strcmp(e->d_name, "name") == 0) {
            char path[PATH_MAX + 8];
            snprintf(path, sizeof(path), "%s/name", l->dir);
            uint8_t *nb;
            size_t nl;
            if (hms_fio_read_file(path, SWIM_NAME_MAX, &nb, &nl) == 0) {
                size_t k = 0;
                while (k < nl && k < SWIM_NAME_MAX && nb[k] >= 0x21 && nb[k] <= 0x7e)
                    k++;
                memcpy(l->name, nb, k);
                l->name[k] = 0;
                free(nb);
            }
        } else if (strstr(e->d_name, ".tmp")) {
            /* an interrupted atomic write: never renamed, never acknowledged */
            char path[PATH_MAX + 300];
            snprintf(path, sizeof(path), "%s/%s", l->dir, e->d_name);
            hms_fio_unlink(path);
        }
    }
    closedir(d);
    if (rc) {
        free(segnos);
        snprintf(err, errlen, "out of memory loading '%s'", l->dir);
        return rc;
    }
    if (n)
        qsort(segnos, n, sizeof(*segnos), cmp_u64);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[PATH_MAX];
        aseg_path(l, segnos[i], path, sizeof(path));
        uint8_t *buf;
        size_t len;
        int r = hms_fio_read_file(path, HMS_AUDIT_SEGMENT_MAX, &buf, &len);
        if (r) {
            snprintf(err, errlen, "cannot read audit segment '%s': %s", path, strerror(-r));
            rc = r;
            break;
        }
        bool last_own = l->own && i == n - 1;
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        r = hms_audit_segment_verify(buf, len, l->key, last_own, &info, &off, &why, NULL, NULL);
        free(buf);
        if (r == HMS_AUDIT_TORN) {
            HMS_WARN("audit: torn tail in '%s': truncated from %zu to %zu bytes", path, len,
                     info.valid_len);
            if (info.valid_len == 0) {
                r = hms_fio_unlink(path);
                if (r) {
                    snprintf(err, errlen, "cannot remove torn audit segment '%s': %s", path,
                             strerror(-r));
                    rc = r;
                }
                continue;
            }
            int fd = hms_fio_open(path, O_WRONLY, 0);
            r = fd < 0 ? fd : hms_fio_ftruncate(fd, (off_t)info.valid_len);
            if (r == 0)
                r = hms_fio_fsync(fd);
            if (fd >= 0)
                hms_fio_close(fd);
            if (r) {
                snprintf(err, errlen, "cannot truncate torn audit segment '%s': %s", path,
                         strerror(-r));
                rc = r;
                break;
            }
        } else if (r < 0) {
            snprintf(err, errlen, "audit segment '%s' is corrupt at offset %zu: %s", path, off,
                     why);
            rc = -EBADMSG;
            break;
        }
        if (info.hdr.segno != segnos[i]) {
            snprintf(err, errlen, "audit segment '%s' holds segment %llu", path,
                     (unsigned long long)info.hdr.segno);
            rc = -EBADMSG;
            break;
        }
        aseg *prev = alog_last(l);
        if (prev && prev->segno + 1 == info.hdr.segno) {
            if (!prev->sealed || info.hdr.first_seq != prev->last_seq + 1 ||
                memcmp(info.hdr.prev_head, prev->head, HMS_AUDIT_HASH_LEN) != 0) {
                snprintf(err, errlen,
                         "audit segment '%s' does not continue segment %llu (offset 0)", path,
                         (unsigned long long)prev->segno);
                rc = -EBADMSG;
                break;
            }
        } else if (prev && l->own) {
            snprintf(err, errlen, "audit segment '%s': segments %llu to %llu are missing", path,
                     (unsigned long long)prev->segno + 1, (unsigned long long)segnos[i] - 1);
            rc = -EBADMSG;
            break;
        }
        aseg g;
        aseg_from_info(&g, &info);
        if (!alog_add_seg(l, &g)) {
            snprintf(err, errlen, "out of memory loading '%s'", path);
            rc = -ENOMEM;
        }
    }
    free(segnos);
    for (size_t i = 0; i < nforks && rc == 0; i++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/%s", l->dir, forks[i]);
        uint8_t *buf;
        size_t len;
        int r = hms_fio_read_file(path, HMS_AUDIT_SEGMENT_MAX, &buf, &len);
        if (r) {
            snprintf(err, errlen, "cannot read fork proof '%s': %s", path, strerror(-r));
            rc = r;
            break;
        }
        hms_audit_seginfo info;
        size_t off;
        const char *why;
        r = hms_audit_segment_verify(buf, len, l->key, false, &info, &off, &why, NULL, NULL);
        free(buf);
        if (r) {
            snprintf(err, errlen, "fork proof '%s' is corrupt at offset %zu: %s", path, off, why);
            rc = -EBADMSG;
            break;
        }
        aseg *g = alog_seg(l, info.hdr.segno);
        if (g && g->sealed && !hms_audit_seal_same(&g->seal, &info.seal))
            alog_add_fork(l, &g->seal, &info.seal);
    }
    (void)s;
    return rc;
}

int astore_open(astore *s, const char *data_dir, const uint8_t own_key[32], char *err,
                size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if ((size_t)snprintf(s->root, sizeof(s->root), "%s/%s", data_dir, AUDIT_DIR) >=
        sizeof(s->root)) {
        snprintf(err, errlen, "data dir path too long: '%s'", data_dir);
        return -ENAMETOOLONG;
    }
    int r = hms_fio_mkdirs(s->root, 0700);
    if (r) {
        snprintf(err, errlen, "cannot create '%s': %s", s->root, strerror(-r));
        return r;
    }
    DIR *d = opendir(s->root);
    if (!d) {
        r = -errno;
        snprintf(err, errlen, "cannot open '%s': %s", s->root, strerror(errno));
        return r;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint8_t key[32];
        if (hms_audit_unhex(e->d_name, key, 32) != 0)
            continue;
        alog *l = alog_alloc(s, key, memcmp(key, own_key, 32) == 0);
        if (!l) {
            r = -ENOMEM;
            snprintf(err, errlen, "out of memory");
            break;
        }
    }
    closedir(d);
    for (size_t i = 0; r == 0 && i < s->nlogs; i++)
        r = load_log(s, s->logs[i], err, errlen);
    if (r == 0 && !astore_get(s, own_key, true)) {
        r = -EIO;
        snprintf(err, errlen, "cannot create the audit directory for this node under '%s'",
                 s->root);
    }
    if (r)
        astore_close(s);
    return r;
}
