/* Health state machine of one check (see health.h). */
#include "agent/catalog/health.h"

static uint8_t clamp(uint8_t v, uint8_t dflt)
{
    if (v == 0)
        return dflt;
    return v > CAT_HEALTH_COUNT_MAX ? CAT_HEALTH_COUNT_MAX : v;
}

void cat_health_init(cat_health *h, uint8_t rise, uint8_t fall, cat_status initial)
{
    h->status = initial;
    h->pending = initial;
    h->streak = 0;
    h->rise = clamp(rise, CAT_HEALTH_RISE_DEFAULT);
    h->fall = clamp(fall, CAT_HEALTH_FALL_DEFAULT);
    h->transitions = 0;
}

bool cat_health_result(cat_health *h, cat_status result)
{
    if (result == h->status) {
        h->pending = h->status;
        h->streak = 0;
        return false;
    }
    if (result != h->pending) {
        h->pending = result;
        h->streak = 0;
    }
    h->streak++;
    uint8_t need = result < h->status ? h->rise : h->fall;
    if (h->streak < need)
        return false;
    h->status = result;
    h->pending = result;
    h->streak = 0;
    h->transitions++;
    return true;
}

bool cat_health_force(cat_health *h, cat_status st)
{
    h->pending = st;
    h->streak = 0;
    if (h->status == st)
        return false;
    h->status = st;
    h->transitions++;
    return true;
}

cat_status cat_health_worst(const cat_status *s, int n)
{
    cat_status w = CAT_PASSING;
    for (int i = 0; i < n; i++)
        if (s[i] > w)
            w = s[i];
    return w;
}

cat_status cat_health_http(long code)
{
    if (code >= 200 && code <= 299)
        return CAT_PASSING;
    if (code == 429)
        return CAT_WARNING;
    return CAT_CRITICAL;
}
