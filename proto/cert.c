/*
 * Node certificates and revocation records (layouts in cert.h): canonical
 * fixed-size encodings, Ed25519 signatures over domain-separated bytes, and
 * the text form of key files. No I/O and no clock: callers pass `now`.
 */
#include "proto/cert.h"
#include "proto/bytes.h"

#include <string.h>

#include <sodium.h>

#define KIND_CERT 1
#define KIND_REVOCATION 2
#define CERT_CTX "hms-cert-v1"
#define REVOKE_CTX "hms-revoke-v1"
#define PUB_PREFIX "ed25519-pub:"
#define SECRET_PREFIX "ed25519-secret:"

const char *hms_cert_result_name(int r)
{
    switch (r) {
    case HMS_CERT_OK: return "ok";
    case HMS_CERT_MALFORMED: return "malformed";
    case HMS_CERT_UNKNOWN_CA: return "unknown_ca";
    case HMS_CERT_BAD_SIGNATURE: return "bad_signature";
    case HMS_CERT_NOT_YET_VALID: return "not_yet_valid";
    case HMS_CERT_EXPIRED: return "expired";
    case HMS_CERT_WRONG_NAME: return "wrong_name";
    case HMS_CERT_WRONG_KEY: return "wrong_key";
    case HMS_CERT_REVOKED: return "revoked";
    case HMS_CERT_INVALID_ARG: return "invalid_argument";
    }
    return "unknown";
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

void hms_ca_key_id(const uint8_t ca_pk[32], uint8_t id[HMS_CA_ID_LEN])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof(h), ca_pk, 32, NULL, 0);
    memcpy(id, h, HMS_CA_ID_LEN);
}

static bool name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

static bool name_bytes_valid(const char *name, size_t len)
{
    if (len == 0 || len > HMS_CERT_NAME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char_ok(name[i]))
            return false;
    return true;
}

bool hms_cert_name_valid(const char *name)
{
    return name && name_bytes_valid(name, strnlen(name, HMS_CERT_NAME_MAX + 1));
}

/* ------------------------------------------------------------------------ */
/* Certificates                                                               */

/* Writes the signed part (everything but the signature); returns its length
 * or 0 when the certificate cannot be encoded. */
static size_t cert_body(const hms_cert *c, uint8_t out[HMS_CERT_MAX_LEN])
{
    size_t n = strnlen(c->name, HMS_CERT_NAME_MAX + 1), off = 0;
    if (!name_bytes_valid(c->name, n) || c->not_after < c->not_before)
        return 0;
    out[off++] = HMS_CERT_VERSION;
    out[off++] = KIND_CERT;
    out[off++] = (uint8_t)n;
    memcpy(out + off, c->name, n);
    off += n;
    memcpy(out + off, c->node_pk, 32);
    off += 32;
    hms_put_be64(out + off, c->serial);
    off += 8;
    hms_put_be64(out + off, c->not_before);
    off += 8;
    hms_put_be64(out + off, c->not_after);
    off += 8;
    memcpy(out + off, c->ca_id, HMS_CA_ID_LEN);
    off += HMS_CA_ID_LEN;
    return off;
}

/* Ed25519 over ctx || 0x00 || body: the context keeps a certificate
 * signature from ever verifying as a revocation or anything else. */
static void signed_message(const char *ctx, const uint8_t *body, size_t len, uint8_t *msg,
                           size_t *msg_len)
{
    size_t c = strlen(ctx);
    memcpy(msg, ctx, c);
    msg[c] = 0;
    memcpy(msg + c + 1, body, len);
    *msg_len = c + 1 + len;
}

int hms_cert_encode(const hms_cert *c, uint8_t *out, size_t cap, size_t *len)
{
    uint8_t body[HMS_CERT_MAX_LEN];
    if (!c || !out || !len)
        return HMS_CERT_INVALID_ARG;
    size_t n = cert_body(c, body);
    if (n == 0 || cap < n + 64)
        return HMS_CERT_INVALID_ARG;
    memcpy(out, body, n);
    memcpy(out + n, c->sig, 64);
    *len = n + 64;
    return HMS_CERT_OK;
}

int hms_cert_decode(const uint8_t *buf, size_t len, hms_cert *out)
{
    if (!buf || !out)
        return HMS_CERT_INVALID_ARG;
    if (len < HMS_CERT_MIN_LEN || len > HMS_CERT_MAX_LEN)
        return HMS_CERT_MALFORMED;
    if (buf[0] != HMS_CERT_VERSION || buf[1] != KIND_CERT)
        return HMS_CERT_MALFORMED;
    size_t n = buf[2];
    if (len != HMS_CERT_MIN_LEN - 1 + n || !name_bytes_valid((const char *)buf + 3, n))
        return HMS_CERT_MALFORMED;
    memset(out, 0, sizeof(*out));
    size_t off = 3;
    memcpy(out->name, buf + off, n);
    off += n;
    memcpy(out->node_pk, buf + off, 32);
    off += 32;
    out->serial = hms_get_be64(buf + off);
    off += 8;
    out->not_before = hms_get_be64(buf + off);
    off += 8;
    out->not_after = hms_get_be64(buf + off);
    off += 8;
    memcpy(out->ca_id, buf + off, HMS_CA_ID_LEN);
    off += HMS_CA_ID_LEN;
    memcpy(out->sig, buf + off, 64);
    if (out->not_after < out->not_before)
        return HMS_CERT_MALFORMED;
    return HMS_CERT_OK;
}

int hms_cert_sign(hms_cert *c, const uint8_t ca_sk[64])
{
    uint8_t body[HMS_CERT_MAX_LEN], msg[HMS_CERT_MAX_LEN + 32];
    size_t n, mlen;
    if (!c || !ca_sk)
        return HMS_CERT_INVALID_ARG;
    hms_ca_key_id(ca_sk + 32, c->ca_id); /* public half of the secret key */
    n = cert_body(c, body);
    if (n == 0)
        return HMS_CERT_INVALID_ARG;
    signed_message(CERT_CTX, body, n, msg, &mlen);
    crypto_sign_detached(c->sig, NULL, msg, mlen, ca_sk);
    return HMS_CERT_OK;
}

int hms_cert_verify_sig(const hms_cert *c, const uint8_t ca_pk[32])
{
    uint8_t body[HMS_CERT_MAX_LEN], msg[HMS_CERT_MAX_LEN + 32], id[HMS_CA_ID_LEN];
    size_t n, mlen;
    if (!c || !ca_pk)
        return HMS_CERT_INVALID_ARG;
    hms_ca_key_id(ca_pk, id);
    if (memcmp(id, c->ca_id, HMS_CA_ID_LEN) != 0)
        return HMS_CERT_UNKNOWN_CA;
    n = cert_body(c, body);
    if (n == 0)
        return HMS_CERT_MALFORMED;
    signed_message(CERT_CTX, body, n, msg, &mlen);
    if (crypto_sign_verify_detached(c->sig, msg, mlen, ca_pk) != 0)
        return HMS_CERT_BAD_SIGNATURE;
    return HMS_CERT_OK;
}

int hms_cert_check_time(const hms_cert *c, uint64_t now, uint64_t skew)
{
    if (!c)
        return HMS_CERT_INVALID_ARG;
    /* Saturating arithmetic: skew never wraps a bound around. */
    uint64_t late = now > UINT64_MAX - skew ? UINT64_MAX : now + skew;
    uint64_t early = now < skew ? 0 : now - skew;
    if (late < c->not_before)
        return HMS_CERT_NOT_YET_VALID;
    if (early > c->not_after)
        return HMS_CERT_EXPIRED;
    return HMS_CERT_OK;
}

/* Index of the CA whose key id is `id`, or -1. Several CAs may be trusted
 * at once (rotation); key ids of distinct keys collide with probability
 * 2^-64, and a collision only costs one failed signature check. */
static int find_ca(const uint8_t id[HMS_CA_ID_LEN], const uint8_t (*cas)[32], size_t n_ca,
                   size_t start)
{
    uint8_t cid[HMS_CA_ID_LEN];
    for (size_t i = start; i < n_ca; i++) {
        hms_ca_key_id(cas[i], cid);
        if (memcmp(cid, id, HMS_CA_ID_LEN) == 0)
            return (int)i;
    }
    return -1;
}

int hms_cert_verify(const uint8_t *buf, size_t len, const uint8_t (*cas)[32], size_t n_ca,
                    uint64_t now, uint64_t skew, hms_cert *out)
{
    hms_cert c;
    int rc = hms_cert_decode(buf, len, &c);
    if (rc != HMS_CERT_OK)
        return rc;
    if (!cas && n_ca)
        return HMS_CERT_INVALID_ARG;
    int i = find_ca(c.ca_id, cas, n_ca, 0);
    if (i < 0)
        return HMS_CERT_UNKNOWN_CA;
    while (i >= 0) {
        rc = hms_cert_verify_sig(&c, cas[i]);
        if (rc == HMS_CERT_OK)
            break;
        i = find_ca(c.ca_id, cas, n_ca, (size_t)i + 1);
    }
    if (rc != HMS_CERT_OK)
        return rc;
    rc = hms_cert_check_time(&c, now, skew);
    if (rc != HMS_CERT_OK)
        return rc;
    if (out)
        *out = c;
    return HMS_CERT_OK;
}

/* ------------------------------------------------------------------------ */
/* Revocations                                                                */

#define REV_BODY_LEN (HMS_REVOCATION_LEN - 64)

static int revocation_body(const hms_revocation *r, uint8_t out[REV_BODY_LEN])
{
    if ((r->flags & ~(HMS_REVOKE_BY_SERIAL | HMS_REVOKE_BY_KEY)) || r->flags == 0)
        return HMS_CERT_INVALID_ARG;
    out[0] = HMS_CERT_VERSION;
    out[1] = KIND_REVOCATION;
    out[2] = r->flags;
    hms_put_be64(out + 3, (r->flags & HMS_REVOKE_BY_SERIAL) ? r->serial : 0);
    if (r->flags & HMS_REVOKE_BY_KEY)
        memcpy(out + 11, r->node_pk, 32);
    else
        memset(out + 11, 0, 32);
    hms_put_be64(out + 43, r->time);
    memcpy(out + 51, r->ca_id, HMS_CA_ID_LEN);
    return HMS_CERT_OK;
}

int hms_revocation_encode(const hms_revocation *r, uint8_t out[HMS_REVOCATION_LEN])
{
    if (!r || !out)
        return HMS_CERT_INVALID_ARG;
    int rc = revocation_body(r, out);
    if (rc != HMS_CERT_OK)
        return rc;
    memcpy(out + REV_BODY_LEN, r->sig, 64);
    return HMS_CERT_OK;
}

int hms_revocation_decode(const uint8_t *buf, size_t len, hms_revocation *out)
{
    if (!buf || !out)
        return HMS_CERT_INVALID_ARG;
    if (len != HMS_REVOCATION_LEN || buf[0] != HMS_CERT_VERSION || buf[1] != KIND_REVOCATION)
        return HMS_CERT_MALFORMED;
    uint8_t flags = buf[2];
    if (flags == 0 || (flags & ~(HMS_REVOKE_BY_SERIAL | HMS_REVOKE_BY_KEY)))
        return HMS_CERT_MALFORMED;
    /* Canonical: absent fields are zero. */
    if (!(flags & HMS_REVOKE_BY_SERIAL) && !all_zero(buf + 3, 8))
        return HMS_CERT_MALFORMED;
    if (!(flags & HMS_REVOKE_BY_KEY) && !all_zero(buf + 11, 32))
        return HMS_CERT_MALFORMED;
    memset(out, 0, sizeof(*out));
    out->flags = flags;
    out->serial = hms_get_be64(buf + 3);
    memcpy(out->node_pk, buf + 11, 32);
    out->time = hms_get_be64(buf + 43);
    memcpy(out->ca_id, buf + 51, HMS_CA_ID_LEN);
    memcpy(out->sig, buf + REV_BODY_LEN, 64);
    return HMS_CERT_OK;
}

int hms_revocation_sign(hms_revocation *r, const uint8_t ca_sk[64])
{
    uint8_t body[REV_BODY_LEN], msg[REV_BODY_LEN + 32];
    size_t mlen;
    if (!r || !ca_sk)
        return HMS_CERT_INVALID_ARG;
    hms_ca_key_id(ca_sk + 32, r->ca_id);
    int rc = revocation_body(r, body);
    if (rc != HMS_CERT_OK)
        return rc;
    signed_message(REVOKE_CTX, body, sizeof(body), msg, &mlen);
    crypto_sign_detached(r->sig, NULL, msg, mlen, ca_sk);
    return HMS_CERT_OK;
}

int hms_revocation_verify_sig(const hms_revocation *r, const uint8_t ca_pk[32])
{
    uint8_t body[REV_BODY_LEN], msg[REV_BODY_LEN + 32], id[HMS_CA_ID_LEN];
    size_t mlen;
    if (!r || !ca_pk)
        return HMS_CERT_INVALID_ARG;
    hms_ca_key_id(ca_pk, id);
    if (memcmp(id, r->ca_id, HMS_CA_ID_LEN) != 0)
        return HMS_CERT_UNKNOWN_CA;
    if (revocation_body(r, body) != HMS_CERT_OK)
        return HMS_CERT_MALFORMED;
    signed_message(REVOKE_CTX, body, sizeof(body), msg, &mlen);
    if (crypto_sign_verify_detached(r->sig, msg, mlen, ca_pk) != 0)
        return HMS_CERT_BAD_SIGNATURE;
    return HMS_CERT_OK;
}

int hms_revocation_verify(const uint8_t *buf, size_t len, const uint8_t (*cas)[32], size_t n_ca,
                          hms_revocation *out)
{
    hms_revocation r;
    int rc = hms_revocation_decode(buf, len, &r);
    if (rc != HMS_CERT_OK)
        return rc;
    if (!cas && n_ca)
        return HMS_CERT_INVALID_ARG;
    int i = find_ca(r.ca_id, cas, n_ca, 0);
    if (i < 0)
        return HMS_CERT_UNKNOWN_CA;
    while (i >= 0) {
        rc = hms_revocation_verify_sig(&r, cas[i]);
        if (rc == HMS_CERT_OK)
            break;
        i = find_ca(r.ca_id, cas, n_ca, (size_t)i + 1);
    }
    if (rc == HMS_CERT_OK && out)
        *out = r;
    return rc;
}

bool hms_revocation_matches(const hms_revocation *r, const hms_cert *c)
{
    if (!r || !c)
        return false;
    if ((r->flags & HMS_REVOKE_BY_KEY) && memcmp(r->node_pk, c->node_pk, 32) == 0)
        return true;
    /* Serials are unique per CA only. */
    if ((r->flags & HMS_REVOKE_BY_SERIAL) && r->serial == c->serial &&
        memcmp(r->ca_id, c->ca_id, HMS_CA_ID_LEN) == 0)
        return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Key text                                                                   */

int hms_key_format_pub(const uint8_t pk[32], char *out, size_t cap)
{
    if (!pk || !out || cap < HMS_KEY_PUB_TEXT_LEN + 1)
        return HMS_CERT_INVALID_ARG;
    size_t p = strlen(PUB_PREFIX);
    memcpy(out, PUB_PREFIX, p);
    sodium_bin2hex(out + p, 65, pk, 32);
    out[p + 64] = '\n';
    out[p + 65] = 0;
    return HMS_CERT_OK;
}

int hms_key_format_secret(const uint8_t sk[64], char *out, size_t cap)
{
    if (!sk || !out || cap < HMS_KEY_SECRET_TEXT_LEN + 1)
        return HMS_CERT_INVALID_ARG;
    size_t p = strlen(SECRET_PREFIX);
    memcpy(out, SECRET_PREFIX, p);
    sodium_bin2hex(out + p, 129, sk, 64);
    out[p + 128] = '\n';
    out[p + 129] = 0;
    return HMS_CERT_OK;
}

/* Next line of text[*pos, len): start and length without the line end and
 * trailing spaces. Returns false at the end. */
static bool next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n)
{
    if (*pos >= len)
        return false;
    size_t s = *pos, e = s;
    while (e < len && text[e] != '\n')
        e++;
    *pos = e < len ? e + 1 : e;
    size_t t = e;
    while (t > s && (text[t - 1] == '\r' || text[t - 1] == ' ' || text[t - 1] == '\t'))
        t--;
    while (s < t && (text[s] == ' ' || text[s] == '\t'))
        s++;
    *line = text + s;
    *n = t - s;
    return true;
}

static int parse_hex_line(const char *line, size_t n, const char *prefix, uint8_t *out,
                          size_t out_len)
{
    size_t p = strlen(prefix), bin_len = 0;
    if (n != p + 2 * out_len || memcmp(line, prefix, p) != 0)
        return HMS_CERT_MALFORMED;
    if (sodium_hex2bin(out, out_len, line + p, 2 * out_len, NULL, &bin_len, NULL) != 0 ||
        bin_len != out_len)
        return HMS_CERT_MALFORMED;
    return HMS_CERT_OK;
}

int hms_key_parse_pub_list(const char *text, size_t len, uint8_t (*out)[32], size_t max,
                           size_t *n)
{
    const char *line;
    size_t pos = 0, ln, count = 0;
    if (!text || !out || !n)
        return HMS_CERT_INVALID_ARG;
    while (next_line(text, len, &pos, &line, &ln)) {
        if (ln == 0 || line[0] == '#')
            continue;
        if (count == max)
            return HMS_CERT_MALFORMED;
        if (parse_hex_line(line, ln, PUB_PREFIX, out[count], 32) != HMS_CERT_OK)
            return HMS_CERT_MALFORMED;
        count++;
    }
    if (count == 0)
        return HMS_CERT_MALFORMED;
    *n = count;
    return HMS_CERT_OK;
}

int hms_key_parse_secret(const char *text, size_t len, uint8_t sk[64])
{
    const char *line;
    size_t pos = 0, ln;
    uint8_t tmp[64], pk2[32], sk2[64];
    int rc = HMS_CERT_MALFORMED;
    if (!text || !sk)
        return HMS_CERT_INVALID_ARG;
    while (next_line(text, len, &pos, &line, &ln)) {
        if (ln == 0 || line[0] == '#')
            continue;
        if (parse_hex_line(line, ln, SECRET_PREFIX, tmp, 64) != HMS_CERT_OK)
            break;
        /* The public half must be the one the seed gives. */
        crypto_sign_seed_keypair(pk2, sk2, tmp);
        if (sodium_memcmp(pk2, tmp + 32, 32) != 0)
            break;
        memcpy(sk, tmp, 64);
        rc = HMS_CERT_OK;
        break;
    }
    sodium_memzero(tmp, sizeof(tmp));
    sodium_memzero(sk2, sizeof(sk2));
    return rc;
}
