/*
 * The replicated service view (see view.h): node records sorted by name in
 * one array, each holding its instance set sorted by id. Every change to a
 * set goes through set_replace or the local_* functions, which keep the
 * version and digest in step with the instances.
 */
#include "agent/catalog/view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cat_view {
    cat_node **nodes; /* sorted by name */
    size_t n, cap;
    cat_node *self;
};

static size_t find_pos(const cat_view *v, const char *name, bool *found)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v->nodes[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static cat_node *node_get(cat_view *v, const char *name, bool create)
{
    bool found;
    size_t pos = find_pos(v, name, &found);
    if (found)
        return v->nodes[pos];
    if (!create || strlen(name) > CAT_NODE_MAX || !*name)
        return NULL;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        cat_node **a = realloc(v->nodes, cap * sizeof(*a));
        if (!a)
            return NULL;
        v->nodes = a;
        v->cap = cap;
    }
    cat_node *nd = calloc(1, sizeof(*nd));
    if (!nd)
        return NULL;
    snprintf(nd->name, sizeof(nd->name), "%s", name);
    memmove(&v->nodes[pos + 1], &v->nodes[pos], (v->n - pos) * sizeof(*v->nodes));
    v->nodes[pos] = nd;
    v->n++;
    return nd;
}

static void node_free_set(cat_node *nd)
{
    for (size_t i = 0; i < nd->n; i++)
        cat_instance_clear(&nd->inst[i]);
    free(nd->inst);
    nd->inst = NULL;
    nd->n = 0;
}

cat_view *cat_view_new(const char *self, uint64_t stamp)
{
    cat_view *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->self = node_get(v, self, true);
    if (!v->self) {
        free(v);
        return NULL;
    }
    v->self->up = true;
    v->self->have = true;
    v->self->version = stamp;
    cat_set_digest(NULL, 0, v->self->digest);
    return v;
}

void cat_view_delete(cat_view *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        node_free_set(v->nodes[i]);
        free(v->nodes[i]);
    }
    free(v->nodes);
    free(v);
}

const cat_node *cat_view_self(const cat_view *v)
{
    return v->self;
}

const cat_node *cat_view_find(const cat_view *v, const char *node)
{
    bool found;
    size_t pos = find_pos(v, node, &found);
    return found ? v->nodes[pos] : NULL;
}

size_t cat_view_count(const cat_view *v)
{
    return v->n;
}

const cat_node *cat_view_at(const cat_view *v, size_t i)
{
    return i < v->n ? v->nodes[i] : NULL;
}

/* ---- this node's set ----------------------------------------------------- */

static size_t inst_pos(const cat_node *nd, const char *id, bool *found)
{
    size_t lo = 0, hi = nd->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(nd->inst[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void local_bump(cat_view *v, uint64_t stamp)
{
    cat_node *s = v->self;
    s->version = stamp > s->version ? stamp : s->version + 1;
    cat_set_digest(s->inst, s->n, s->digest);
}

int cat_view_local_put(cat_view *v, const cat_instance *inst, uint64_t stamp, bool *changed,
                       char *err, size_t errlen)
{
    cat_node *s = v->self;
    bool found;
    *changed = false;
    int rc = cat_instance_check(inst, err, errlen);
    if (rc)
        return rc;
    size_t pos = inst_pos(s, inst->id, &found);
    if (found && cat_instance_equal(&s->inst[pos], inst))
        return 0;
    if (!found && s->n >= CAT_INSTANCES_MAX) {
        snprintf(err, errlen, "too many instances on this node: '%s' would be instance %zu, limit instances_max is %d",
                 inst->id, s->n + 1, CAT_INSTANCES_MAX);
        return -ENOSPC;
    }
    cat_instance copy;
    if (cat_instance_copy(&copy, inst))
        return -ENOMEM;
    if (found) {
        cat_instance_clear(&s->inst[pos]);
        s->inst[pos] = copy;
    } else {
        cat_instance *a = realloc(s->inst, (s->n + 1) * sizeof(*a));
        if (!a) {
            cat_instance_clear(&copy);
            return -ENOMEM;
        }
        s->inst = a;
        memmove(&a[pos + 1], &a[pos], (s->n - pos) * sizeof(*a));
        a[pos] = copy;
        s->n++;
    }
    local_bump(v, stamp);
    *changed = true;
    return 0;
}

int cat_view_local_del(cat_view *v, const char *id, uint64_t stamp)
{
    cat_node *s = v->self;
    bool found;
    size_t pos = inst_pos(s, id, &found);
    if (!found)
        return -ENOENT;
    cat_instance_clear(&s->inst[pos]);
    memmove(&s->inst[pos], &s->inst[pos + 1], (s->n - pos - 1) * sizeof(*s->inst));
    s->n--;
    local_bump(v, stamp);
    return 0;
}

int cat_view_local_status(cat_view *v, const char *id, cat_status st, uint64_t stamp,
                          bool *changed)
{
    cat_node *s = v->self;
    bool found;
    *changed = false;
    size_t pos = inst_pos(s, id, &found);
    if (!found)
        return -ENOENT;
    if (s->inst[pos].status == st)
        return 0;
    s->inst[pos].status = (uint8_t)st;
    local_bump(v, stamp);
    *changed = true;
    return 0;
}

const cat_instance *cat_view_local_get(const cat_view *v, const char *id)
{
    bool found;
    size_t pos = inst_pos(v->self, id, &found);
    return found ? &v->self->inst[pos] : NULL;
}

/* ---- other members ------------------------------------------------------- */

bool cat_view_member(cat_view *v, const char *node, bool up)
{
    cat_node *nd = node_get(v, node, true);
    if (!nd || nd == v->self || nd->up == up)
        return false;
    nd->up = up;
    return nd->n > 0;
}

bool cat_view_forget(cat_view *v, const char *node)
{
    bool found;
    size_t pos = find_pos(v, node, &found);
    if (!found || v->nodes[pos] == v->self)
        return false;
    cat_node *nd = v->nodes[pos];
    node_free_set(nd);
    free(nd);
    memmove(&v->nodes[pos], &v->nodes[pos + 1], (v->n - pos - 1) * sizeof(*v->nodes));
    v->n--;
    return true;
}

static bool differs(const cat_node *nd)
{
    if (!nd->adv)
        return false;
    if (!nd->have)
        return true;
    if (nd->adv_version > nd->version)
        return true;
    return nd->adv_version == nd->version &&
           memcmp(nd->adv_digest, nd->digest, CAT_DIGEST_LEN) != 0;
}

bool cat_view_advertise(cat_view *v, const char *node, uint64_t version,
                        const uint8_t digest[CAT_DIGEST_LEN])
{
    cat_node *nd = node_get(v, node, true);
    if (!nd || nd == v->self)
        return false;
    /* Keep the newest advertisement: gossip may deliver an older one late. */
    if (!nd->adv || version > nd->adv_version ||
        (version == nd->adv_version && memcmp(digest, nd->adv_digest, CAT_DIGEST_LEN))) {
        nd->adv = true;
        nd->adv_version = version;
        memcpy(nd->adv_digest, digest, CAT_DIGEST_LEN);
    }
    return differs(nd);
}

bool cat_view_needs_fetch(const cat_view *v, const char *node)
{
    const cat_node *nd = cat_view_find(v, node);
    return nd && nd != v->self && differs(nd);
}

int cat_view_apply(cat_view *v, cat_decoded *d)
{
    cat_node *nd = node_get(v, d->node, true);
    if (!nd)
        return -ENOMEM;
    if (nd == v->self)
        return -EINVAL;
    if (nd->have) {
        if (d->version < nd->version)
            return 0;
        if (d->version == nd->version && !memcmp(d->digest, nd->digest, CAT_DIGEST_LEN))
            return 0;
    }
    node_free_set(nd);
    nd->inst = d->inst;
    nd->n = d->n;
    nd->version = d->version;
    memcpy(nd->digest, d->digest, CAT_DIGEST_LEN);
    nd->have = true;
    d->inst = NULL;
    d->n = 0;
    return 1;
}

/* ---- queries ------------------------------------------------------------- */

static bool matches(const cat_instance *x, const cat_query *q)
{
    if (strcmp(x->name, q->name))
        return false;
    if (!q->all && x->status != CAT_PASSING)
        return false;
    for (size_t t = 0; t < q->ntags; t++)
        if (!cat_instance_has_tag(x, q->tags[t]))
            return false;
    return true;
}

static int collect(const cat_node *nd, const cat_query *q, cat_hit **out, size_t *n,
                   size_t *cap)
{
    if (!nd->up || !nd->have)
        return 0;
    for (size_t i = 0; i < nd->n; i++) {
        if (!matches(&nd->inst[i], q))
            continue;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 8;
            cat_hit *a = realloc(*out, c * sizeof(*a));
            if (!a)
                return -ENOMEM;
            *out = a;
            *cap = c;
        }
        (*out)[*n].inst = &nd->inst[i];
        (*out)[*n].node = nd->name;
        (*n)++;
    }
    return 0;
}

int cat_view_lookup(const cat_view *v, const cat_query *q, cat_hit **out, size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    int rc = collect(v->self, q, out, n, &cap);
    for (size_t i = 0; !rc && i < v->n; i++)
        if (v->nodes[i] != v->self)
            rc = collect(v->nodes[i], q, out, n, &cap);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int cmp_count(const void *a, const void *b)
{
    return strcmp(((const cat_service_count *)a)->name, ((const cat_service_count *)b)->name);
}

int cat_view_catalog(const cat_view *v, cat_service_count **out, size_t *n)
{
    size_t cap = 0, cnt = 0;
    cat_service_count *a = NULL;
    for (size_t i = 0; i < v->n; i++) {
        const cat_node *nd = v->nodes[i];
        if (!nd->up || !nd->have)
            continue;
        for (size_t k = 0; k < nd->n; k++) {
            const cat_instance *x = &nd->inst[k];
            size_t j = 0;
            while (j < cnt && strcmp(a[j].name, x->name))
                j++;
            if (j == cnt) {
                if (cnt == cap) {
                    size_t c = cap ? cap * 2 : 16;
                    cat_service_count *b = realloc(a, c * sizeof(*b));
                    if (!b) {
                        free(a);
                        return -ENOMEM;
                    }
                    a = b;
                    cap = c;
                }
                memset(&a[cnt], 0, sizeof(a[cnt]));
                snprintf(a[cnt].name, sizeof(a[cnt].name), "%s", x->name);
                cnt++;
            }
            if (x->status == CAT_PASSING)
                a[j].passing++;
            else if (x->status == CAT_WARNING)
                a[j].warning++;
            else
                a[j].critical++;
            /* count the node once: is this the first instance of the name here? */
            bool first = true;
            for (size_t p = 0; p < k; p++)
                if (!strcmp(nd->inst[p].name, x->name))
                    first = false;
            if (first)
                a[j].nodes++;
        }
    }
    if (cnt)
        qsort(a, cnt, sizeof(*a), cmp_count);
    *out = a;
    *n = cnt;
    return 0;
}
