/*
 * Fuzz target for the catalog wire formats: the instance-set decoder (a set
 * that decodes must re-encode to the same bytes' meaning and digest) and the
 * member-metadata record decoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cat_decoded d;
    if (cat_set_decode(data, size, &d) == 0) {
        uint8_t *buf;
        size_t len;
        if (cat_set_encode(d.node, d.version, d.inst, d.n, &buf, &len) != 0)
            abort();
        cat_decoded again;
        if (cat_set_decode(buf, len, &again) != 0 || again.n != d.n ||
            again.version != d.version || memcmp(again.digest, d.digest, CAT_DIGEST_LEN))
            abort();
        for (size_t i = 0; i < d.n; i++)
            if (!cat_instance_equal(&d.inst[i], &again.inst[i]))
                abort();
        cat_decoded_clear(&again);
        free(buf);
        cat_decoded_clear(&d);
    }
    uint64_t v;
    uint8_t dg[CAT_DIGEST_LEN];
    cat_meta_decode(data, size, &v, dg);
    return 0;
}
