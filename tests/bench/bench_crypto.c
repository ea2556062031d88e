/*
 * Crypto costs on one core: sealing and opening 1200-byte gossip packets,
 * complete Noise_XX handshakes (both ends computed here, certificate-sized
 * payloads), certificate verification, and the first packet from a new
 * peer (key derivation). Prints a table; docs/security.md quotes it.
 *
 *   bench_crypto [seconds per row, default 1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "agent/net/noise.h"
#include "agent/net/seal.h"
#include "proto/cert.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void row(const char *what, long n, double secs, const char *unit)
{
    printf("| %-44s | %12.0f | %9.2f |  %s\n", what, (double)n / secs, secs * 1e6 / (double)n,
           unit);
}

static int xx_once(const uint8_t is[32], const uint8_t rs[32], const uint8_t *cert, size_t clen)
{
    uint8_t buf[1024], pl[1024];
    size_t len, plen;
    hms_noise_keys ik = {.s = is, .prologue = (const uint8_t *)"hms", .prologue_len = 3};
    hms_noise_keys rk = {.s = rs, .prologue = (const uint8_t *)"hms", .prologue_len = 3};
    hms_noise *a = hms_noise_new("XX", true, &ik), *b = hms_noise_new("XX", false, &rk);
    int rc = !a || !b;
    rc = rc || hms_noise_write(a, NULL, 0, buf, sizeof(buf), &len);
    rc = rc || hms_noise_read(b, buf, len, pl, sizeof(pl), &plen);
    rc = rc || hms_noise_write(b, cert, clen, buf, sizeof(buf), &len);
    rc = rc || hms_noise_read(a, buf, len, pl, sizeof(pl), &plen);
    rc = rc || hms_noise_write(a, cert, clen, buf, sizeof(buf), &len);
    rc = rc || hms_noise_read(b, buf, len, pl, sizeof(pl), &plen);
    rc = rc || !hms_noise_done(a) || !hms_noise_done(b);
    hms_noise_delete(a);
    hms_noise_delete(b);
    return rc;
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 1.0;
    if (budget <= 0 || sodium_init() < 0)
        return 2;

    uint8_t apk[32], ask[64], bpk[32], bsk[64], cpk[32], csk[64];
    crypto_sign_keypair(apk, ask);
    crypto_sign_keypair(bpk, bsk);
    crypto_sign_keypair(cpk, csk);
    hms_sealer *a = hms_sealer_new(ask, 1, NULL, NULL);
    hms_sealer *b = hms_sealer_new(bsk, 1, NULL, NULL);
    static uint8_t pt[1200], pkt[1400], out[1400];
    uint8_t from[32];
    size_t len, olen;
    randombytes_buf(pt, sizeof(pt));

    printf("| %-44s | %12s | %9s |\n", "operation (one core)", "per second", "us each");
    printf("|----------------------------------------------|--------------|-----------|\n");

    long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 256; i++) {
            if (hms_seal(a, bpk, pt, sizeof(pt), pkt, sizeof(pkt), &len) != 0 ||
                hms_open(b, pkt, len, out, sizeof(out), &olen, from) != HMS_SEAL_OK)
                return 1;
        }
        n += 256;
    } while ((t = now_s() - t0) < budget);
    row("seal + open, 1200-byte packet", n, t, "packets");
    double mbs = (double)n * 1200 / t / 1e6;

    n = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 256; i++)
            if (hms_seal(a, bpk, pt, sizeof(pt), pkt, sizeof(pkt), &len) != 0)
                return 1;
        n += 256;
    } while ((t = now_s() - t0) < budget);
    row("seal only, 1200-byte packet", n, t, "packets");

    /* Forged packets: refused by the tag check (the cost an attacker who
     * knows a member's public key can impose). */
    hms_seal(a, bpk, pt, sizeof(pt), pkt, sizeof(pkt), &len);
    pkt[len - 1] ^= 1;
    n = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 256; i++)
            if (hms_open(b, pkt, len, out, sizeof(out), &olen, from) != HMS_SEAL_BAD_TAG)
                return 1;
        n += 256;
    } while ((t = now_s() - t0) < budget);
    row("open of a forged 1200-byte packet (refused)", n, t, "packets");

    /* First packet from a peer: X25519 + key derivation, then cached. */
    n = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 32; i++) {
            hms_sealer_forget(b, apk);
            if (hms_seal(a, bpk, pt, 64, pkt, sizeof(pkt), &len) != 0 ||
                hms_open(b, pkt, len, out, sizeof(out), &olen, from) != HMS_SEAL_OK)
                return 1;
        }
        n += 32;
    } while ((t = now_s() - t0) < budget);
    row("first packet from a peer (pair key derived)", n, t, "packets");

    /* Noise XX with certificate payloads. */
    uint8_t is[32], rs[32], cert[HMS_CERT_MAX_LEN];
    randombytes_buf(is, sizeof(is));
    randombytes_buf(rs, sizeof(rs));
    hms_cert c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "bench-node-01");
    memcpy(c.node_pk, apk, 32);
    c.serial = 1;
    c.not_before = 0;
    c.not_after = UINT64_MAX / 2;
    hms_cert_sign(&c, csk);
    size_t clen = 0;
    hms_cert_encode(&c, cert, sizeof(cert), &clen);
    n = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 16; i++)
            if (xx_once(is, rs, cert, clen) != 0)
                return 1;
        n += 16;
    } while ((t = now_s() - t0) < budget);
    row("Noise_XX handshake, both ends, cert payloads", n, t, "handshakes");

    uint8_t cas[1][32];
    memcpy(cas[0], cpk, 32);
    n = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 64; i++)
            if (hms_cert_verify(cert, clen, (const uint8_t(*)[32])cas, 1, 1000, 300, NULL) != 0)
                return 1;
        n += 64;
    } while ((t = now_s() - t0) < budget);
    row("certificate verify (decode + Ed25519)", n, t, "certificates");

    printf("\nseal + open moves %.0f MB/s of 1200-byte plaintext on one core\n", mbs);
    hms_sealer_delete(a);
    hms_sealer_delete(b);
    return 0;
}
