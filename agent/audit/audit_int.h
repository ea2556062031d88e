/*
 * Internals shared by the audit log's files: the per-origin segment index
 * (store.c), the writer thread (writer.c), the log itself (audit.c),
 * replication (repl.c) and queries (query.c). Not for other subsystems.
 */
#ifndef HMS_AUDIT_INT_H
#define HMS_AUDIT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "agent/audit/audit.h"
#include "agent/swim/swim.h"
#include "proto/audit.h"

#define AUDIT_DIR "audit"

/* Stack of each audit thread (writer, query worker). The default differs by
 * libc (glibc 8 MiB, musl 128 KiB), so it is set explicitly. Both threads
 * were measured at 12-16 KiB resident under glibc after appends, replication,
 * verify --all, export and trace (deepest frames: verify_log 4.7 KiB plus a
 * log line 4.7 KiB, libsodium and msgpack below); 128 KiB leaves 8 times
 * that. Only touched pages are resident, so the margin costs address space. */
#define AUDIT_THREAD_STACK (128u * 1024u)

/* pthread_create with AUDIT_THREAD_STACK. 0 or a positive pthread error. */
static inline int audit_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    pthread_attr_t at;
    int r = pthread_attr_init(&at);
    if (r)
        return r;
    r = pthread_attr_setstacksize(&at, AUDIT_THREAD_STACK);
    if (r == 0)
        r = pthread_create(t, &at, fn, arg);
    pthread_attr_destroy(&at);
    return r;
}
#define AUDIT_ROOT_MAX 3800 /* bytes of <data_dir>/audit, so that file names always fit */
#define AUDIT_LOGDIR_MAX 3900
#define AUDIT_OPEN_BYTES_MAX (16u << 20) /* seal an open segment this large */
#define AUDIT_CHUNK_MAX (1u << 20)       /* bytes per writer chunk */
#define AUDIT_FORKS_MAX 64               /* fork proofs remembered per log */
#define AUDIT_HOLDERS_MAX 16             /* replicas' reports remembered per log */

/* One segment of one origin's log. */
typedef struct aseg {
    uint64_t segno, first_seq, last_seq, count;
    uint64_t first_ts, last_ts, size;
    uint8_t prev_head[HMS_AUDIT_HASH_LEN];
    uint8_t head[HMS_AUDIT_HASH_LEN];
    bool sealed;
    bool durable; /* own log: on disk and fsynced (replicas: always) */
    hms_audit_seal seal;
    uint8_t *mem; /* own log: bytes while not durable (and the open segment) */
    size_t mem_len, mem_cap;
    uint64_t mtime_s; /* sealed time, for retention */
} aseg;

/* What another agent says it holds of a log (from its gossiped head). */
typedef struct aholder {
    uint8_t key[HMS_AUDIT_KEY_LEN];
    uint64_t last_segno;
    uint8_t head8[8]; /* first bytes of that segment's head hash */
    bool valid;
} aholder;

typedef struct afork {
    uint64_t segno;
    hms_audit_seal a, b; /* both validly signed, different heads */
} afork;

/* One origin's log as held here (own or replica). */
typedef struct alog {
    uint8_t key[HMS_AUDIT_KEY_LEN];
    char keyhex[2 * HMS_AUDIT_KEY_LEN + 1];
    char name[SWIM_NAME_MAX + 1];
    char dir[AUDIT_LOGDIR_MAX];
    bool own;
    aseg *segs; /* sorted by segno */
    size_t nsegs, cap;
    /* The origin's latest signed head, from gossip. */
    bool has_head;
    hms_audit_seal head;
    aholder holders[AUDIT_HOLDERS_MAX];
    afork *forks; /* grown on first use up to AUDIT_FORKS_MAX; most logs never fork */
    size_t nforks, capforks;
    uint64_t refused;  /* segments refused (bad signature, chain, key) */
    bool pulling;      /* a pull for this log is in flight */
    uint64_t pull_backoff_until; /* monotonic ms */
} alog;

/* ---- store.c ---------------------------------------------------------------- */

typedef struct astore {
    char root[AUDIT_ROOT_MAX]; /* <data_dir>/audit */
    alog **logs;
    size_t nlogs, cap;
} astore;

/* Loads every log under root, verifying every file; the own log (own_key)
 * may end in an open segment whose torn tail is truncated. On error returns
 * a negative code with a message naming file and offset in err. */
int astore_open(astore *s, const char *data_dir, const uint8_t own_key[32], char *err,
                size_t errlen);
void astore_close(astore *s);
alog *astore_find(astore *s, const uint8_t key[32]);
alog *astore_find_name(astore *s, const char *name);
/* Finds or creates (directory included) the log of key. NULL on error. */
alog *astore_get(astore *s, const uint8_t key[32], bool own);
void astore_set_name(alog *l, const char *name); /* persists <dir>/name */
aseg *alog_seg(alog *l, uint64_t segno);
aseg *alog_last(alog *l);
aseg *alog_add_seg(alog *l, const aseg *tmpl); /* keeps order; NULL on ENOMEM */
void alog_remove_seg(alog *l, uint64_t segno);
void aseg_path(const alog *l, uint64_t segno, char *buf, size_t cap);
/* A segment's bytes: from memory or read from its file (caller frees
 * *owned if set). */
int aseg_bytes(const alog *l, const aseg *g, const uint8_t **buf, size_t *len, uint8_t **owned);
/* Fills an aseg from a verified segment. */
void aseg_from_info(aseg *g, const hms_audit_seginfo *in);
/* Records a fork proof (deduplicated). Returns true when it is new. */
bool alog_add_fork(alog *l, const hms_audit_seal *a, const hms_audit_seal *b);

/* ---- writer.c ------------------------------------------------------------- */

/* A run of bytes for one own-log segment file at a fixed offset. */
typedef struct achunk {
    struct achunk *next;
    uint64_t segno;
    uint64_t file_off;
    bool new_file; /* the chunk creates the file */
    bool seal;     /* the chunk ends with the seal record */
    uint64_t last_seq_end; /* entries below this are in this chunk or before */
    uint8_t *buf;
    size_t len, cap;
} achunk;

/* An atomic whole-file write (replica segment, fork proof) or an unlink. */
typedef struct ajob {
    struct ajob *next;
    int kind; /* AJOB_PUT, AJOB_UNLINK */
    char path[AUDIT_LOGDIR_MAX + 64];
    char dir[AUDIT_LOGDIR_MAX];
    uint8_t *buf;
    size_t len;
    int status;
    void (*done)(void *ctx, struct ajob *j); /* on the loop, after the write */
    void *ctx;
} ajob;

enum { AJOB_PUT = 1, AJOB_UNLINK = 2 };

typedef struct awriter {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, stop, waiting;
    char own_dir[AUDIT_LOGDIR_MAX];
    /* Shared, under mu. */
    achunk *chunks, *chunks_tail;
    ajob *jobs, *jobs_tail;
    ajob *done, *done_tail;
    uint64_t durable_seq;   /* every entry below is fsynced */
    uint64_t sealed_durable; /* segments below this are sealed and fsynced */
    bool has_sealed_durable;
    int error;               /* last write error, 0 when healthy */
    uint64_t error_gen;      /* raised on every failed attempt */
    char error_path[PATH_MAX + 64];
    uint64_t fsyncs, write_errors;
    uint32_t commit_delay_us;
    uint32_t retry_ms;
    ev_async *notify;
    struct ev_loop *loop;
    /* Thread-private. */
    int fd;
    uint64_t fd_segno;
    bool fd_dirty;
} awriter;

int awriter_start(awriter *w, struct ev_loop *loop, ev_async *notify, const char *own_dir,
                  uint64_t durable_seq, uint32_t commit_delay_us);
/* Flushes what it can (bounded by a few retries) and joins the thread;
 * finished jobs stay for awriter_take_done. */
void awriter_stop(awriter *w);
/* Frees what is left (after awriter_stop). */
void awriter_destroy(awriter *w);
/* Queues own-log bytes a||b (a frame header and its payload, say) for
 * segment segno at file offset file_off. seq_end: entries below it are in
 * these bytes or before (0: no entry). seal: the bytes end the segment.
 * Returns 0 or -ENOMEM (nothing queued). */
int awriter_append(awriter *w, uint64_t segno, uint64_t file_off, bool new_file,
                   const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                   uint64_t seq_end, bool seal);
void awriter_push_job(awriter *w, ajob *j);
/* Takes the finished jobs (loop side). */
ajob *awriter_take_done(awriter *w);

/* ---- shared helpers ------------------------------------------------------- */

uint64_t audit_wall_ns(void);
uint64_t audit_mono_ms(void);

#endif
