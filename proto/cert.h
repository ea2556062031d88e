/*
 * Node certificates, revocation records and key file formats: encoding,
 * decoding, signing and verification. Pure functions (no I/O, no clock):
 * shared by the agent (agent/trust/) and hmsctl's offline CA commands.
 *
 * Certificate v1 (fixed binary, big-endian integers, 132 to 195 bytes):
 *
 *   off  size  field
 *   0    1     version = 1
 *   1    1     kind = 1 (node certificate)
 *   2    1     name length n (1..64)
 *   3    n     node name: [A-Za-z0-9._-], not starting with '.' or '-'
 *   3+n  32    node Ed25519 public key
 *   35+n 8     serial
 *   43+n 8     not-before, unix seconds
 *   51+n 8     not-after, unix seconds (>= not-before)
 *   59+n 8     issuing CA key id
 *   67+n 64    Ed25519 signature by the CA over
 *              "hms-cert-v1" || 0x00 || bytes [0, 67+n)
 *
 * Revocation record v1 (fixed, 123 bytes):
 *
 *   0    1     version = 1
 *   1    1     kind = 2 (revocation)
 *   2    1     flags: 1 = by serial, 2 = by node key (at least one)
 *   3    8     serial (zero unless flag 1)
 *   11   32    node Ed25519 public key (zero unless flag 2)
 *   43   8     time of revocation, unix seconds
 *   51   8     issuing CA key id
 *   59   64    Ed25519 signature by the CA over
 *              "hms-revoke-v1" || 0x00 || bytes [0, 59)
 *
 * CA key id: the first 8 bytes of BLAKE2b-256(CA Ed25519 public key).
 * Decoders accept only the canonical encoding (no trailing bytes, zero
 * padding in absent fields), so one record has one byte string and its
 * signature covers exactly what was decoded.
 *
 * Key files (text, one key per line, '#' starts a comment line):
 *   public:  "ed25519-pub:<64 hex>"      node.pub, ca.pub (ca.pub may list
 *                                          several trusted CAs)
 *   secret:  "ed25519-secret:<128 hex>"  node.key, ca.key: libsodium's
 *                                          64-byte secret key (seed || public)
 *
 * Results: the functions return 0 or a negative hms_cert_result.
 */
#ifndef HMS_PROTO_CERT_H
#define HMS_PROTO_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HMS_CERT_VERSION 1
#define HMS_CERT_NAME_MAX 64
#define HMS_CERT_MIN_LEN (3 + 1 + 32 + 8 + 8 + 8 + 8 + 64)
#define HMS_CERT_MAX_LEN (3 + HMS_CERT_NAME_MAX + 32 + 8 + 8 + 8 + 8 + 64) /* 195 */
#define HMS_CA_ID_LEN 8
#define HMS_REVOCATION_LEN 123
#define HMS_REVOKE_BY_SERIAL 1
#define HMS_REVOKE_BY_KEY 2

#define HMS_KEY_PUB_TEXT_LEN (12 + 64 + 1)     /* "ed25519-pub:" hex "\n" */
#define HMS_KEY_SECRET_TEXT_LEN (15 + 128 + 1) /* "ed25519-secret:" hex "\n" */

typedef enum hms_cert_result {
    /* Numbered apart from errno values, so that functions that also return
     * -errno (agent/trust/) stay unambiguous. */
    HMS_CERT_OK = 0,
    HMS_CERT_MALFORMED = -1001,     /* not a canonical v1 encoding */
    HMS_CERT_UNKNOWN_CA = -1002,    /* issued by a CA we do not trust */
    HMS_CERT_BAD_SIGNATURE = -1003, /* the CA's signature does not verify */
    HMS_CERT_NOT_YET_VALID = -1004, /* now + skew < not-before */
    HMS_CERT_EXPIRED = -1005,       /* now - skew > not-after */
    HMS_CERT_WRONG_NAME = -1006,    /* name differs from the expected one */
    HMS_CERT_WRONG_KEY = -1007,     /* key differs from the expected one */
    HMS_CERT_REVOKED = -1008,       /* serial or key revoked */
    HMS_CERT_INVALID_ARG = -1009,   /* bad argument (caller error) */
} hms_cert_result;

const char *hms_cert_result_name(int r); /* "expired", "unknown_ca", ... */
/* Whether r is an hms_cert_result (HMS_CERT_OK excluded). */
#define HMS_CERT_IS_RESULT(r) ((r) <= HMS_CERT_MALFORMED && (r) >= HMS_CERT_INVALID_ARG)

typedef struct hms_cert {
    char name[HMS_CERT_NAME_MAX + 1];
    uint8_t node_pk[32];
    uint64_t serial;
    uint64_t not_before;
    uint64_t not_after;
    uint8_t ca_id[HMS_CA_ID_LEN];
    uint8_t sig[64];
} hms_cert;

typedef struct hms_revocation {
    uint8_t flags; /* HMS_REVOKE_BY_SERIAL | HMS_REVOKE_BY_KEY */
    uint64_t serial;
    uint8_t node_pk[32];
    uint64_t time;
    uint8_t ca_id[HMS_CA_ID_LEN];
    uint8_t sig[64];
} hms_revocation;

void hms_ca_key_id(const uint8_t ca_pk[32], uint8_t id[HMS_CA_ID_LEN]);

/* Node names: 1..64 bytes of [A-Za-z0-9._-], not starting with '.' or '-'
 * (they become file names in `hmsctl ca bootstrap`). */
bool hms_cert_name_valid(const char *name);

/* Certificates. encode writes the whole record (signature included) and
 * fails with HMS_CERT_INVALID_ARG for a bad name or a short buffer. decode
 * parses without checking the signature; on error *out is unspecified. */
int hms_cert_encode(const hms_cert *c, uint8_t *out, size_t cap, size_t *len);
int hms_cert_decode(const uint8_t *buf, size_t len, hms_cert *out);
/* Fills ca_id and sig from the CA's 64-byte secret key. */
int hms_cert_sign(hms_cert *c, const uint8_t ca_sk[64]);
/* The signature verifies under ca_pk and ca_id names ca_pk. */
int hms_cert_verify_sig(const hms_cert *c, const uint8_t ca_pk[32]);
/* Validity at `now` with `skew` seconds allowed on either side. */
int hms_cert_check_time(const hms_cert *c, uint64_t now, uint64_t skew);

/* Full check: decodes buf, finds the issuing CA among cas[0..n_ca) by key
 * id, verifies the signature, then the time. On HMS_CERT_OK *out holds the
 * certificate (out may be NULL). Cheap checks first. */
int hms_cert_verify(const uint8_t *buf, size_t len, const uint8_t (*cas)[32], size_t n_ca,
                    uint64_t now, uint64_t skew, hms_cert *out);

/* Revocation records: same conventions. */
int hms_revocation_encode(const hms_revocation *r, uint8_t out[HMS_REVOCATION_LEN]);
int hms_revocation_decode(const uint8_t *buf, size_t len, hms_revocation *out);
int hms_revocation_sign(hms_revocation *r, const uint8_t ca_sk[64]);
int hms_revocation_verify_sig(const hms_revocation *r, const uint8_t ca_pk[32]);
/* Decodes and verifies against the trusted CAs. */
int hms_revocation_verify(const uint8_t *buf, size_t len, const uint8_t (*cas)[32], size_t n_ca,
                          hms_revocation *out);
/* Whether the record revokes this certificate (by serial from the same CA,
 * or by key). */
bool hms_revocation_matches(const hms_revocation *r, const hms_cert *c);

/* Key text. format_* write a NUL-terminated line (cap >= *_TEXT_LEN + 1).
 * parse_pub_list reads up to max keys (0 keys is HMS_CERT_MALFORMED);
 * parse_secret checks that the public half matches the seed. */
int hms_key_format_pub(const uint8_t pk[32], char *out, size_t cap);
int hms_key_format_secret(const uint8_t sk[64], char *out, size_t cap);
int hms_key_parse_pub_list(const char *text, size_t len, uint8_t (*out)[32], size_t max,
                           size_t *n);
int hms_key_parse_secret(const char *text, size_t len, uint8_t sk[64]);

#endif
