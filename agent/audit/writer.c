/*
 * The audit writer thread: group commit of the own log and atomic writes
 * of replica segments, so that the loop never waits for the disk.
 *
 * Own log. The loop hands over chunks: runs of framed records for one
 * segment file at a fixed offset. The writer takes every queued chunk at
 * once, writes them with pwrite at their offsets, fsyncs each file it
 * leaves (a segment is fsynced before the next one is created) and the last
 * one, then publishes durable_seq and wakes the loop (ev_async).
 *
 * Failure. If any write or fsync fails, nothing written since the last
 * successful fsync is trusted (after a failed fsync Linux may drop the dirty
 * pages): every chunk not yet covered by a good fsync goes back to the head
 * of the queue, the file is cut back to the first such chunk's offset when
 * possible, the error is published (durable waiters are failed), and the
 * whole run is retried after a back-off (100 ms doubling to 5 s). Because
 * the bytes are fixed when the entry is chained, a retry writes exactly the
 * same bytes at the same offsets: the chain on disk is never broken, only
 * shorter than the one in memory until the disk recovers.
 *
 * Jobs (replica segments, fork proofs, retention unlinks) are written as
 * <path>.tmp, fsynced, renamed, and the directory fsynced; their results go
 * back to the loop in the done list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/audit/audit_int.h"
#include "agent/audit/fileio.h"
#include "agent/log.h"

static void chunk_free(achunk *c)
{
    free(c->buf);
    free(c);
}

static void notify(awriter *w)
{
    if (w->notify)
        ev_async_send(w->loop, w->notify);
}

static void close_fd(awriter *w)
{
    if (w->fd >= 0)
        hms_fio_close(w->fd);
    w->fd = -1;
    w->fd_dirty = false;
}

static int open_seg(awriter *w, const achunk *c)
{
    char path[AUDIT_LOGDIR_MAX + 32];
    snprintf(path, sizeof(path), "%s/%020llu.seg", w->own_dir, (unsigned long long)c->segno);
    int fd = hms_fio_open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) {
        snprintf(w->error_path, sizeof(w->error_path), "%s", path);
        return fd;
    }
    if (c->new_file) {
        /* Make the new name durable before anything in it is reported so. */
        int r = hms_fio_fsync_dir(w->own_dir);
        if (r) {
            hms_fio_close(fd);
            snprintf(w->error_path, sizeof(w->error_path), "%s", w->own_dir);
            return r;
        }
    }
    w->fd = fd;
    w->fd_segno = c->segno;
    w->fd_dirty = false;
    return 0;
}

static int sync_fd(awriter *w)
{
    if (w->fd < 0 || !w->fd_dirty)
        return 0;
    int r = hms_fio_fsync(w->fd);
    if (r == 0) {
        w->fd_dirty = false;
        pthread_mutex_lock(&w->mu);
        w->fsyncs++;
        pthread_mutex_unlock(&w->mu);
    } else {
        snprintf(w->error_path, sizeof(w->error_path), "%s/%020llu.seg", w->own_dir,
                 (unsigned long long)w->fd_segno);
    }
    return r;
}

/* Writes a run of chunks. Returns 0, or a negative code with *bad set to
 * the first chunk that is not covered by a successful fsync. */
static int write_chunks(awriter *w, achunk *list, achunk **bad, uint64_t *durable,
                        uint64_t *sealed_end, bool *has_sealed)
{
    achunk *synced_upto = list; /* first chunk not yet covered by an fsync */
    uint64_t pending_durable = 0, pending_sealed = 0;
    bool pending_has_sealed = false;
    for (achunk *c = list; c; c = c->next) {
        int r = 0;
        if (w->fd >= 0 && w->fd_segno != c->segno) {
            r = sync_fd(w);
            if (r) {
                *bad = synced_upto;
                return r;
            }
            close_fd(w);
            synced_upto = c;
            *durable = pending_durable ? pending_durable : *durable;
            if (pending_has_sealed) {
                *sealed_end = pending_sealed;
                *has_sealed = true;
            }
        }
        if (w->fd < 0) {
            r = open_seg(w, c);
            if (r) {
                *bad = synced_upto;
                return r;
            }
        }
        r = hms_fio_pwrite_all(w->fd, c->buf, c->len, (off_t)c->file_off);
        w->fd_dirty = true;
        if (r) {
            snprintf(w->error_path, sizeof(w->error_path), "%s/%020llu.seg", w->own_dir,
                     (unsigned long long)c->segno);
            *bad = synced_upto;
            return r;
        }
        if (c->last_seq_end)
            pending_durable = c->last_seq_end;
        if (c->seal) {
            pending_sealed = c->segno + 1;
            pending_has_sealed = true;
        }
    }
    int r = sync_fd(w);
    if (r) {
        *bad = synced_upto;
        return r;
    }
    if (pending_durable)
        *durable = pending_durable;
    if (pending_has_sealed) {
        *sealed_end = pending_sealed;
        *has_sealed = true;
    }
    *bad = NULL;
    return 0;
}

static int put_file(awriter *w, ajob *j)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
    int fd = hms_fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return fd;
    int r = hms_fio_pwrite_all(fd, j->buf, j->len, 0);
    if (r == 0)
        r = hms_fio_fsync(fd);
    hms_fio_close(fd);
    if (r == 0)
        r = hms_fio_rename(tmp, j->path);
    if (r == 0)
        r = hms_fio_fsync_dir(j->dir);
    if (r)
        hms_fio_unlink(tmp); /* best effort; a leftover .tmp is removed at start */
    return r;
}

static void *writer_main(void *arg)
{
    awriter *w = arg;
    uint32_t backoff_ms = 0;
    int stop_attempts = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !w->chunks && !w->jobs) {
            w->waiting = true;
            pthread_cond_wait(&w->cv, &w->mu);
            w->waiting = false;
        }
        if (w->stop && ((!w->chunks && !w->jobs) || stop_attempts >= 3))
            break;
        if (w->stop)
            stop_attempts++;
        if (w->commit_delay_us && w->chunks && !w->stop) {
            /* Group commit window: let more appends join this fsync. */
            pthread_mutex_unlock(&w->mu);
            struct timespec ts = {0, (long)w->commit_delay_us * 1000};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&w->mu);
        }
        achunk *list = w->chunks;
        w->chunks = w->chunks_tail = NULL;
        ajob *jobs = w->jobs;
        w->jobs = w->jobs_tail = NULL;
        uint64_t durable = w->durable_seq, sealed_end = w->sealed_durable;
        bool has_sealed = w->has_sealed_durable;
        pthread_mutex_unlock(&w->mu);

        achunk *bad = NULL;
        int r = list ? write_chunks(w, list, &bad, &durable, &sealed_end, &has_sealed) : 0;
        if (r) {
            /* Cut the file back to the last synced byte and retry all of
             * it later; the same bytes go to the same offsets. */
            if (w->fd >= 0 && bad && bad->segno == w->fd_segno)
                hms_fio_ftruncate(w->fd, (off_t)bad->file_off);
            close_fd(w);
        }
        while (list && list != bad) { /* durable now */
            achunk *n = list->next;
            chunk_free(list);
            list = n;
        }
        for (ajob *j = jobs; j; j = j->next) {
            if (j->kind == AJOB_PUT)
                j->status = put_file(w, j);
            else
                j->status = hms_fio_unlink(j->path);
        }

        pthread_mutex_lock(&w->mu);
        w->durable_seq = durable;
        w->sealed_durable = sealed_end;
        w->has_sealed_durable = has_sealed;
        if (jobs) {
            ajob *last = jobs;
            while (last->next)
                last = last->next;
            if (w->done_tail)
                w->done_tail->next = jobs;
            else
                w->done = jobs;
            w->done_tail = last;
        }
        if (r) {
            /* The unsynced chunks go back in front of newer ones. */
            achunk *last = list;
            while (last->next)
                last = last->next;
            last->next = w->chunks;
            if (!w->chunks)
                w->chunks_tail = last;
            w->chunks = list;
            if (w->error != r || backoff_ms == 0)
                HMS_ERROR("audit: cannot write '%s': %s; entries kept in memory, retrying",
                          w->error_path, strerror(-r));
            w->error = r;
            w->error_gen++;
            w->write_errors++;
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2) : w->retry_ms;
        } else if (list == NULL && bad == NULL && w->error && durable > 0) {
            HMS_INFO("audit: writing works again");
            w->error = 0;
            backoff_ms = 0;
        } else {
            backoff_ms = 0;
        }
        pthread_mutex_unlock(&w->mu);
        notify(w);
        pthread_mutex_lock(&w->mu);
        if (r && !w->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += backoff_ms / 1000;
            ts.tv_nsec += (long)(backoff_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
    }
    pthread_mutex_unlock(&w->mu);
    close_fd(w);
    return NULL;
}

int awriter_start(awriter *w, struct ev_loop *loop, ev_async *notify_w, const char *own_dir,
                  uint64_t durable_seq, uint32_t commit_delay_us)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    snprintf(w->own_dir, sizeof(w->own_dir), "%s", own_dir);
    w->loop = loop;
    w->notify = notify_w;
    w->durable_seq = durable_seq;
    w->commit_delay_us = commit_delay_us;
    w->retry_ms = 100;
    w->fd = -1;
    int r = audit_thread_create(&w->thread, writer_main, w);
    if (r) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        return -r;
    }
    w->running = true;
    return 0;
}

void awriter_stop(awriter *w)
{
    if (!w->running)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->running = false;
}

void awriter_destroy(awriter *w)
{
    achunk *c = w->chunks;
    while (c) {
        achunk *n = c->next;
        chunk_free(c);
        c = n;
    }
    ajob *lists[2] = {w->jobs, w->done};
    for (int i = 0; i < 2; i++) {
        ajob *j = lists[i];
        while (j) {
            ajob *n = j->next;
            if (j->done) {
                /* never written: the owner frees its context */
                j->status = -ECANCELED;
                j->done(j->ctx, j);
            }
            free(j->buf);
            free(j);
            j = n;
        }
    }
    w->chunks = NULL;
    w->jobs = w->done = NULL;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

int awriter_append(awriter *w, uint64_t segno, uint64_t file_off, bool new_file,
                   const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                   uint64_t seq_end, bool seal)
{
    size_t len = alen + blen;
    pthread_mutex_lock(&w->mu);
    achunk *c = w->chunks_tail;
    if (!c || c->segno != segno || c->seal || new_file || c->file_off + c->len != file_off ||
        c->len + len > AUDIT_CHUNK_MAX) {
        c = calloc(1, sizeof(*c));
        if (!c) {
            pthread_mutex_unlock(&w->mu);
            return -ENOMEM;
        }
        c->segno = segno;
        c->file_off = file_off;
        c->new_file = new_file;
        if (w->chunks_tail)
            w->chunks_tail->next = c;
        else
            w->chunks = c;
        w->chunks_tail = c;
    }
    if (c->len + len > c->cap) {
        size_t ncap = c->cap ? c->cap : 4096;
        while (ncap < c->len + len)
            ncap *= 2;
        uint8_t *nb = realloc(c->buf, ncap);
        if (!nb) {
            /* An empty new chunk stays queued harmlessly (zero bytes). */
            pthread_mutex_unlock(&w->mu);
            return -ENOMEM;
        }
        c->buf = nb;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, a, alen);
    if (blen)
        memcpy(c->buf + c->len + alen, b, blen);
    c->len += len;
    if (seq_end)
        c->last_seq_end = seq_end;
    if (seal)
        c->seal = true;
    if (w->waiting)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void awriter_push_job(awriter *w, ajob *j)
{
    j->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->jobs_tail)
        w->jobs_tail->next = j;
    else
        w->jobs = j;
    w->jobs_tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

ajob *awriter_take_done(awriter *w)
{
    pthread_mutex_lock(&w->mu);
    ajob *d = w->done;
    w->done = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    return d;
}
