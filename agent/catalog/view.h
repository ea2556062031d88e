/*
 * The replicated service view: for every member, the latest instance set we
 * hold (version, digest, instances), what the member advertises in its
 * metadata, and whether the member is up. This node's own set lives here
 * too, as the node named `self`, and is the only one changed by
 * registrations. Pure: no clock, no I/O; versions are stamped by the caller.
 *
 * Merge rules (cat_view_apply): a set replaces the held copy when the held
 * copy is missing, older (lower version), or has the same version and a
 * different digest (a node restarted without its version, or a bug; the
 * owner is the authority, so take what it sends). Older sets are ignored.
 * An advertisement (cat_view_advertise) whose (version, digest) differs from
 * the copy marks the node for fetching.
 *
 * Lookups read only members that are up (alive or suspect): a dead or left
 * member's instances leave every lookup at once and return with it.
 */
#ifndef HMS_CATALOG_VIEW_H
#define HMS_CATALOG_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/catalog.h"

typedef struct cat_node {
    char name[CAT_NODE_MAX + 1];
    bool up;   /* member alive or suspect */
    bool have; /* a copy of its set is held */
    uint64_t version;
    uint8_t digest[CAT_DIGEST_LEN];
    bool adv; /* an advertisement was seen */
    uint64_t adv_version;
    uint8_t adv_digest[CAT_DIGEST_LEN];
    size_t n;
    cat_instance *inst; /* n, sorted by id */
} cat_node;

typedef struct cat_view cat_view;

/* A view whose own node is `self` (up, empty set, version `stamp`). */
cat_view *cat_view_new(const char *self, uint64_t stamp);
void cat_view_delete(cat_view *v);

const cat_node *cat_view_self(const cat_view *v);
const cat_node *cat_view_find(const cat_view *v, const char *node);
size_t cat_view_count(const cat_view *v);
const cat_node *cat_view_at(const cat_view *v, size_t i); /* sorted by name */

/* ---- this node's set ---- */

/* Adds or replaces the instance with inst->id. Checks every field and the
 * per-node limit (-ENOSPC; field limits -E2BIG; message in err). A real change raises the version
 * to max(version + 1, stamp) and sets *changed; an identical instance
 * changes nothing. On error nothing is changed. */
int cat_view_local_put(cat_view *v, const cat_instance *inst, uint64_t stamp, bool *changed,
                       char *err, size_t errlen);
/* Removes the instance; -ENOENT when there is none. */
int cat_view_local_del(cat_view *v, const char *id, uint64_t stamp);
/* Sets its status; *changed when it differs. -ENOENT when there is none. */
int cat_view_local_status(cat_view *v, const char *id, cat_status st, uint64_t stamp,
                          bool *changed);
const cat_instance *cat_view_local_get(const cat_view *v, const char *id);

/* ---- other members ---- */

/* The member is up (alive/suspect) or not (dead/left). Creates the node
 * record if needed. Returns true when lookups may change. */
bool cat_view_member(cat_view *v, const char *node, bool up);
/* The member is forgotten: its record and set go. Returns true if known. */
bool cat_view_forget(cat_view *v, const char *node);
/* A (version, digest) advertisement from member metadata. Returns true when
 * the held copy differs and the set should be fetched. */
bool cat_view_advertise(cat_view *v, const char *node, uint64_t version,
                        const uint8_t digest[CAT_DIGEST_LEN]);
/* True when the advertisement differs from the held copy. */
bool cat_view_needs_fetch(const cat_view *v, const char *node);
/* Merges a fetched set (d->node names the owner). Takes the instances from
 * *d when it wins (d is left empty) and returns 1; 0 when older or the same;
 * -EINVAL for the local node or -ENOMEM. */
int cat_view_apply(cat_view *v, cat_decoded *d);

/* ---- queries ---- */

typedef struct cat_hit {
    const cat_instance *inst;
    const char *node;
} cat_hit;

typedef struct cat_query {
    const char *name;
    const char *const *tags; /* every one must match */
    size_t ntags;
    bool all; /* also warning and critical instances */
} cat_query;

/* Instances of q->name on up members: passing only, or every status with
 * q->all. This node's first, then by node name and id. *out is a heap
 * array (free()) valid until the view changes. 0 or -ENOMEM. */
int cat_view_lookup(const cat_view *v, const cat_query *q, cat_hit **out, size_t *n);

typedef struct cat_service_count {
    char name[CAT_NAME_MAX + 1];
    uint32_t passing, warning, critical;
    uint32_t nodes; /* up members with at least one instance */
} cat_service_count;

/* Every service name on up members, sorted, with counts by status. */
int cat_view_catalog(const cat_view *v, cat_service_count **out, size_t *n);

#endif
