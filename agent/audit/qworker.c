/*
 * Queries off the loop. Reading and verifying segments costs about a
 * microsecond per entry, so a trace, an export page or a verification of a
 * large log would hold the loop for whole seconds; DESIGN.md section 3 wants
 * such work on a worker thread. The loop takes a snapshot of the logs the
 * query needs (segment index and the bytes still only in memory), a query
 * thread runs the ordinary query functions on the snapshot, and the result
 * comes back through an ev_async. Replica knowledge (gossip) lives on the
 * loop and is added to verification reports there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/audit/audit_priv.h"
#include "agent/audit/repl.h"
#include "agent/log.h"

struct qjob {
    struct qjob *next;
    hms_audit_query q;
    uint8_t key[32];
    char reqid[HMS_AUDIT_REQID_LEN_MAX + 1];
    char cursor[100];
    hms_audit *snap;
    json_t *result;
    int rc;
    hms_audit_query_done done;
    void *ctx;
};

static alog *log_copy(const alog *l)
{
    alog *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = *l;
    c->forks = NULL;
    c->capforks = 0;
    if (l->nforks) {
        c->forks = malloc(l->nforks * sizeof(*c->forks));
        if (!c->forks) {
            free(c);
            return NULL;
        }
        memcpy(c->forks, l->forks, l->nforks * sizeof(*c->forks));
        c->capforks = l->nforks;
    }
    c->segs = malloc((l->nsegs ? l->nsegs : 1) * sizeof(*c->segs));
    if (!c->segs) {
        free(c->forks);
        free(c);
        return NULL;
    }
    c->cap = l->nsegs ? l->nsegs : 1;
    for (size_t i = 0; i < l->nsegs; i++) {
        c->segs[i] = l->segs[i];
        if (l->segs[i].mem) {
            c->segs[i].mem = malloc(l->segs[i].mem_len ? l->segs[i].mem_len : 1);
            if (!c->segs[i].mem) {
                for (size_t k = 0; k < i; k++)
                    free(c->segs[k].mem);
                free(c->segs);
                free(c->forks);
                free(c);
                return NULL;
            }
            memcpy(c->segs[i].mem, l->segs[i].mem, l->segs[i].mem_len);
            c->segs[i].mem_cap = l->segs[i].mem_len;
        }
    }
    return c;
}

static void snap_free(hms_audit *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->store.nlogs; i++) {
        alog *l = s->store.logs[i];
        for (size_t k = 0; k < l->nsegs; k++)
            free(l->segs[k].mem);
        free(l->segs);
        free(l->forks);
        free(l);
    }
    free(s->store.logs);
    free(s);
}

/* A context the query functions can run on in another thread. */
static hms_audit *snapshot(hms_audit *a, const uint8_t *key, bool all)
{
    hms_audit *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    memcpy(s->pk, a->pk, 32);
    memcpy(s->name, a->name, sizeof(s->name));
    s->replicas = a->replicas;
    s->store = a->store;
    s->store.logs = calloc(a->store.nlogs ? a->store.nlogs : 1, sizeof(alog *));
    s->store.nlogs = s->store.cap = 0;
    if (!s->store.logs) {
        free(s);
        return NULL;
    }
    s->store.cap = a->store.nlogs;
    const uint8_t *want = key ? key : a->pk;
    for (size_t i = 0; i < a->store.nlogs; i++) {
        alog *l = a->store.logs[i];
        if (!all && memcmp(l->key, want, 32) != 0)
            continue;
        alog *c = log_copy(l);
        if (!c) {
            snap_free(s);
            return NULL;
        }
        s->store.logs[s->store.nlogs++] = c;
        if (l == a->own)
            s->own = c;
    }
    return s;
}

static void run(struct qjob *j)
{
    const hms_audit_query *q = &j->q;
    const uint8_t *key = q->key ? j->key : NULL;
    switch (q->op) {
    case HMS_AUDIT_Q_TAIL: j->result = hms_audit_query_tail(j->snap, key, q->n, &j->rc); break;
    case HMS_AUDIT_Q_FIND:
        j->result = hms_audit_query_find(j->snap, key, q->all, q->reqid ? j->reqid : NULL, q->n,
                                         &j->rc);
        break;
    case HMS_AUDIT_Q_EXPORT:
        j->result = hms_audit_query_export(j->snap, key, q->since_ns, j->cursor, q->n, &j->rc);
        break;
    case HMS_AUDIT_Q_VERIFY:
        j->result = hms_audit_query_verify(j->snap, key, q->all, &j->rc);
        break;
    default: j->rc = -EINVAL; break;
    }
}

static void *qworker_main(void *arg)
{
    hms_audit *a = arg;
    pthread_mutex_lock(&a->qmu);
    for (;;) {
        while (!a->qstop && !a->qjobs)
            pthread_cond_wait(&a->qcv, &a->qmu);
        if (a->qstop)
            break;
        struct qjob *j = a->qjobs;
        a->qjobs = j->next;
        pthread_mutex_unlock(&a->qmu);
        run(j);
        snap_free(j->snap);
        j->snap = NULL;
        pthread_mutex_lock(&a->qmu);
        j->next = a->qdone;
        a->qdone = j;
        ev_async_send(a->loop, &a->qasync);
    }
    pthread_mutex_unlock(&a->qmu);
    return NULL;
}

static void finish(hms_audit *a, struct qjob *j)
{
    a->qpending--;
    if (j->q.op == HMS_AUDIT_Q_VERIFY && j->result)
        audit_verify_add_replicas(a, j->result);
    j->done(j->ctx, j->result, j->rc);
    free(j);
}

static void on_qasync(struct ev_loop *loop, ev_async *w, int revents)
{
    hms_audit *a = w->data;
    pthread_mutex_lock(&a->qmu);
    struct qjob *list = a->qdone;
    a->qdone = NULL;
    pthread_mutex_unlock(&a->qmu);
    /* oldest first */
    struct qjob *rev = NULL;
    while (list) {
        struct qjob *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct qjob *n = rev->next;
        finish(a, rev);
        rev = n;
    }
    (void)loop;
    (void)revents;
}

int hms_audit_query_async(hms_audit *a, const hms_audit_query *q, hms_audit_query_done done,
                          void *ctx)
{
    if (!a || !done)
        return -EINVAL;
    if (!a->qrunning)
        return -ESHUTDOWN;
    if (a->qpending >= HMS_AUDIT_QUERIES_MAX)
        return -EBUSY;
    struct qjob *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->q = *q;
    if (q->key)
        memcpy(j->key, q->key, 32);
    if (q->reqid)
        snprintf(j->reqid, sizeof(j->reqid), "%s", q->reqid);
    if (q->cursor)
        snprintf(j->cursor, sizeof(j->cursor), "%s", q->cursor);
    j->done = done;
    j->ctx = ctx;
    bool all = q->all || (q->op == HMS_AUDIT_Q_FIND && q->all);
    j->snap = snapshot(a, q->key ? j->key : NULL, all || (q->op == HMS_AUDIT_Q_EXPORT && !q->key));
    if (!j->snap) {
        free(j);
        return -ENOMEM;
    }
    a->qpending++;
    pthread_mutex_lock(&a->qmu);
    struct qjob **pp = &a->qjobs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = j;
    pthread_cond_signal(&a->qcv);
    pthread_mutex_unlock(&a->qmu);
    return 0;
}

int audit_qworker_start(hms_audit *a)
{
    pthread_mutex_init(&a->qmu, NULL);
    pthread_cond_init(&a->qcv, NULL);
    ev_async_init(&a->qasync, on_qasync);
    a->qasync.data = a;
    ev_async_start(a->loop, &a->qasync);
    int r = audit_thread_create(&a->qthread, qworker_main, a);
    if (r) {
        ev_async_stop(a->loop, &a->qasync);
        pthread_mutex_destroy(&a->qmu);
        pthread_cond_destroy(&a->qcv);
        return -r;
    }
    a->qrunning = true;
    return 0;
}

void audit_qworker_stop(hms_audit *a)
{
    if (!a->qrunning)
        return;
    pthread_mutex_lock(&a->qmu);
    a->qstop = true;
    pthread_cond_signal(&a->qcv);
    pthread_mutex_unlock(&a->qmu);
    pthread_join(a->qthread, NULL);
    a->qrunning = false;
    on_qasync(a->loop, &a->qasync, 0);
    /* Jobs never started: their callers learn it now. */
    while (a->qjobs) {
        struct qjob *j = a->qjobs;
        a->qjobs = j->next;
        snap_free(j->snap);
        a->qpending--;
        j->done(j->ctx, NULL, -ECANCELED);
        free(j);
    }
    ev_async_stop(a->loop, &a->qasync);
    pthread_mutex_destroy(&a->qmu);
    pthread_cond_destroy(&a->qcv);
}
