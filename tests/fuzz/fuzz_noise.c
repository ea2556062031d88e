/*
 * Fuzz target: reading Noise handshake messages (agent/net/noise.c).
 * Byte 0 picks the pattern (low 4 bits) and the side (bit 4): the
 * responder reads the rest as message 1, or the initiator writes message 1
 * with fixed keys and reads the rest as message 2. Then transport
 * decryption is tried on the same bytes. Nothing may crash, and a failed
 * read must leave the state poisoned.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/net/noise.h"

static const char *patterns[] = {"N",  "K",  "X",  "NN", "NK", "NX", "XN", "XK",
                                 "XX", "KN", "KK", "KX", "IN", "IK", "IX"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t is[32], rs[32], ie[32], re[32], is_pub[32], rs_pub[32];
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        for (int i = 0; i < 32; i++) {
            is[i] = (uint8_t)(i + 1);
            rs[i] = (uint8_t)(i + 33);
            ie[i] = (uint8_t)(i + 65);
            re[i] = (uint8_t)(i + 97);
        }
        crypto_scalarmult_base(is_pub, is);
        crypto_scalarmult_base(rs_pub, rs);
        ready = 1;
    }
    if (size < 1)
        return 0;
    const char *pat = patterns[(data[0] & 0x0f) % 15];
    bool as_initiator = (data[0] & 0x10) != 0;
    data++;
    size--;

    hms_noise_keys ik = {.s = is, .e = ie, .rs = rs_pub, .prologue = (const uint8_t *)"fz",
                         .prologue_len = 2};
    hms_noise_keys rk = {.s = rs, .e = re, .rs = is_pub, .prologue = (const uint8_t *)"fz",
                         .prologue_len = 2};
    static uint8_t buf[70000];
    size_t len = 0;
    hms_noise *n = hms_noise_new(pat, as_initiator, as_initiator ? &ik : &rk);
    if (!n)
        abort();
    if (as_initiator) {
        if (hms_noise_write(n, (const uint8_t *)"hello", 5, buf, sizeof(buf), &len) != 0)
            abort();
        if (hms_noise_done(n)) { /* one-way pattern: nothing to read */
            hms_noise_delete(n);
            return 0;
        }
    }
    int rc = hms_noise_read(n, data, size, buf, sizeof(buf), &len);
    if (rc != 0 && rc != -ENOBUFS && !hms_noise_failed(n))
        abort();
    if (rc == 0 && hms_noise_done(n))
        (void)hms_noise_decrypt(n, data, size, buf, sizeof(buf), &len);
    else if (rc == 0 && hms_noise_my_turn(n))
        (void)hms_noise_write(n, NULL, 0, buf, sizeof(buf), &len);
    hms_noise_delete(n);
    return 0;
}
