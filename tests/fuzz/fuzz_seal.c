/*
 * Fuzz target: opening sealed packets (agent/net/seal.c). Any input, as a
 * packet addressed to a fixed receiver from any sender the peer check
 * admits, must be refused or opened without crashing; only a packet sealed
 * by the real sender's key may ever open.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/net/seal.h"

static int admit_all(void *ctx, const uint8_t pk[32])
{
    (void)ctx;
    /* Refuse one key pattern so the refusal path runs too. */
    return pk[0] == 0xee ? HMS_SEAL_REVOKED : HMS_SEAL_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hms_sealer *rx;
    static uint8_t tx_pk[32];
    if (!rx) {
        uint8_t seed[32] = {'r', 'x'}, pk[32], sk[64];
        if (sodium_init() < 0)
            abort();
        crypto_sign_seed_keypair(pk, sk, seed);
        rx = hms_sealer_new(sk, 1, admit_all, NULL);
        uint8_t seed2[32] = {'t', 'x'}, sk2[64];
        crypto_sign_seed_keypair(tx_pk, sk2, seed2);
        if (!rx)
            abort();
    }
    static uint8_t out[70000];
    size_t out_len = 0;
    uint8_t sender[32];
    int rc = hms_open(rx, data, size, out, sizeof(out), &out_len, sender);
    if (rc == HMS_SEAL_OK && (memcmp(sender, tx_pk, 32) != 0 || out_len + 73 != size))
        abort(); /* only the seed sender's genuine packets can open */
    (void)hms_seal_peek_sender(data, size, sender);
    return 0;
}
