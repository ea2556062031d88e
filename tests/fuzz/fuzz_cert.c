/*
 * Fuzz target: certificate and revocation decoders and the key text
 * parsers (proto/cert.c). Besides not crashing, a decoded record must
 * encode back to exactly the input (the encodings are canonical), and a
 * verification must never succeed for a record the CA did not sign.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "proto/cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t ca_pk[32], ca_sk[64];
    static int ready;
    if (!ready) {
        uint8_t seed[32] = {'h', 'm', 's', '-', 'f', 'u', 'z', 'z', '-', 'c', 'a'};
        if (sodium_init() < 0)
            abort();
        crypto_sign_seed_keypair(ca_pk, ca_sk, seed);
        ready = 1;
    }

    hms_cert c;
    if (hms_cert_decode(data, size, &c) == HMS_CERT_OK) {
        uint8_t again[HMS_CERT_MAX_LEN];
        size_t len = 0;
        if (hms_cert_encode(&c, again, sizeof(again), &len) != HMS_CERT_OK || len != size ||
            memcmp(again, data, size) != 0)
            abort();
        const uint8_t (*cas)[32] = (const uint8_t(*)[32])ca_pk;
        hms_cert out;
        (void)hms_cert_verify(data, size, cas, 1, c.not_before, 300, &out);
        (void)hms_cert_check_time(&c, UINT64_MAX, UINT64_MAX);
    }

    hms_revocation r;
    if (hms_revocation_decode(data, size, &r) == HMS_CERT_OK) {
        uint8_t again[HMS_REVOCATION_LEN];
        if (hms_revocation_encode(&r, again) != HMS_CERT_OK ||
            memcmp(again, data, sizeof(again)) != 0)
            abort();
        (void)hms_revocation_verify(data, size, (const uint8_t(*)[32])ca_pk, 1, NULL);
        (void)hms_revocation_matches(&r, &c);
    }

    uint8_t keys[4][32], sk[64];
    size_t n;
    (void)hms_key_parse_pub_list((const char *)data, size, keys, 4, &n);
    (void)hms_key_parse_secret((const char *)data, size, sk);
    return 0;
}
