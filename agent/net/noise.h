/*
 * Noise protocol framework (revision 34), DH 25519, cipher ChaChaPoly, hash
 * BLAKE2b, built from libsodium primitives. A generic handshake-pattern
 * interpreter: XX is what the agent uses; every non-PSK pattern in
 * tests/vectors/ is supported so that the vectors test all of it.
 *
 * Usage: hms_noise_init, then alternately write/read handshake messages until
 * hms_noise_done(); then hms_noise_encrypt/decrypt for transport messages.
 * Every function returns 0 or a negative errno-style code. Argument errors
 * (-EINVAL, -ENOBUFS for a short output buffer, -EPROTO for a call out of
 * turn) change nothing. Any other error (-EBADMSG: bad tag, bad length or a
 * low-order DH key; -EOVERFLOW: nonce exhausted) poisons the state: every
 * secret is wiped and every later call fails.
 */
#ifndef HMS_NET_NOISE_H
#define HMS_NET_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HMS_NOISE_MAX_MSG 65535
#define HMS_NOISE_TAG 16
#define HMS_NOISE_DHLEN 32
#define HMS_NOISE_HASHLEN 64

typedef struct hms_noise hms_noise; /* opaque; hms_noise_new/hms_noise_delete */

typedef struct hms_noise_keys {
    const uint8_t *s;   /* local static X25519 private key (32), or NULL */
    const uint8_t *e;   /* fixed ephemeral private key (tests only), or NULL */
    const uint8_t *rs;  /* remote static public key known in advance, or NULL */
    const uint8_t *prologue;
    size_t prologue_len;
} hms_noise_keys;

/* pattern: "XX", "IK", "NN", ... (Noise_<pattern>_25519_ChaChaPoly_BLAKE2b).
 * Keys are copied. Returns NULL with errno EINVAL for an unknown pattern or
 * when a key the pattern needs is missing (s when we send it or the peer
 * knows it in advance; rs when we know the peer's key in advance). */
hms_noise *hms_noise_new(const char *pattern, bool initiator, const hms_noise_keys *keys);
void hms_noise_delete(hms_noise *n); /* wipes every secret */

/* Handshake. out/payload_out capacity in bytes; lengths through pointers. */
int hms_noise_write(hms_noise *n, const uint8_t *payload, size_t payload_len, uint8_t *out,
                    size_t out_cap, size_t *out_len);
int hms_noise_read(hms_noise *n, const uint8_t *msg, size_t msg_len, uint8_t *payload_out,
                   size_t payload_cap, size_t *payload_len);
bool hms_noise_done(const hms_noise *n);
bool hms_noise_my_turn(const hms_noise *n); /* true when the next handshake step is a write */
/* Remote static public key (X25519) once received; NULL before. */
const uint8_t *hms_noise_remote_static(const hms_noise *n);
const uint8_t *hms_noise_handshake_hash(const hms_noise *n); /* HASHLEN bytes, once done */
bool hms_noise_failed(const hms_noise *n); /* poisoned by an earlier error */

/* Transport (after done): encrypt with the sending CipherState, decrypt with
 * the receiving one. out_cap >= len + HMS_NOISE_TAG for encrypt. */
int hms_noise_encrypt(hms_noise *n, const uint8_t *pt, size_t len, uint8_t *out, size_t out_cap,
                      size_t *out_len);
int hms_noise_decrypt(hms_noise *n, const uint8_t *ct, size_t len, uint8_t *out, size_t out_cap,
                      size_t *out_len);

#endif
