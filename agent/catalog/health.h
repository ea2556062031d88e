/*
 * Health state machine of one check, apart from any I/O so it can be tested
 * result by result. A check's status changes only after `rise` consecutive
 * results better than it (toward passing) or `fall` consecutive results
 * worse than it (toward critical); this damps flapping. A result equal to
 * the current status resets the streak.
 *
 *            rise x better              rise x better
 *   CRITICAL ---------------> WARNING ---------------> PASSING
 *            <---------------         <---------------
 *            fall x worse               fall x worse
 *   (and CRITICAL <-> PASSING directly by the same counts)
 *
 * Invariants: streak < needed(pending) whenever pending != status; streak
 * is 0 when pending == status.
 *
 * An instance's status is the worst of its checks; with no check, passing.
 * A new check starts critical: its instance enters lookups only once the
 * check has passed (rise times).
 */
#ifndef HMS_CATALOG_HEALTH_H
#define HMS_CATALOG_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/catalog.h"

#define CAT_HEALTH_RISE_DEFAULT 1 /* one passing result brings a check back */
#define CAT_HEALTH_FALL_DEFAULT 2 /* two failed results in a row take it out */
#define CAT_HEALTH_COUNT_MAX 10

typedef struct cat_health {
    cat_status status;
    cat_status pending; /* status the current streak argues for */
    uint8_t streak;
    uint8_t rise, fall; /* 1..CAT_HEALTH_COUNT_MAX */
    uint64_t transitions;
} cat_health;

/* rise/fall of 0 take the defaults; values are clamped to the maximum. */
void cat_health_init(cat_health *h, uint8_t rise, uint8_t fall, cat_status initial);

/* Feeds one result. Returns true when h->status changed. */
bool cat_health_result(cat_health *h, cat_status result);

/* Forces a status (an explicit TTL update, or TTL expiry): no damping. */
bool cat_health_force(cat_health *h, cat_status st);

/* Worst of n statuses; passing when n == 0. */
cat_status cat_health_worst(const cat_status *s, int n);

/* HTTP status code to check result: 2xx passing, 429 warning, else critical. */
cat_status cat_health_http(long code);

#endif
