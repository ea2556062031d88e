/*
 * Fuzz target for service definitions (JSON files in the services
 * directory, and the `definition` field of the register operation): any
 * input is either refused with a message or yields a registration that
 * passes every check again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cat_registration r;
    char err[512];
    err[0] = '\0';
    if (cat_registration_from_json((const char *)data, size, &r, err, sizeof(err)) == 0) {
        if (cat_instance_check(&r.inst, err, sizeof(err)) != 0 || r.nchecks > CAT_CHECKS_MAX)
            abort();
        cat_registration_clear(&r);
    } else if (err[0] == '\0') {
        abort(); /* every refusal says why */
    }
    return 0;
}
