/*
 * Noise protocol framework, revision 34: Noise_*_25519_ChaChaPoly_BLAKE2b
 * for every non-PSK one-way and interactive base pattern (N, K, X, NN, NK,
 * NX, XN, XK, XX, KN, KK, KX, IN, IK, IX).
 *
 * The code follows the spec's objects one to one: CipherState (section 5.1),
 * SymmetricState (5.2) and HandshakeState (5.3), with the pattern tables of
 * section 7 as data and one branch per token. Every handshake step works on
 * a copy of the whole state and commits it only when the message was
 * processed completely; a failed step poisons the state (every secret wiped,
 * every later call refused), because a Noise session cannot recover from a
 * bad message. Argument errors (NULL, short buffer, wrong turn) leave the
 * state unchanged.
 *
 * Primitives (libsodium only):
 *   DH      X25519: crypto_scalarmult; an all-zero result (low-order point)
 *           is an error, as the spec allows.
 *   cipher  ChaCha20-Poly1305 IETF; nonce = 4 zero bytes || 64-bit
 *           little-endian counter.
 *   hash    BLAKE2b-512; HMAC per RFC 2104 with block length 128; HKDF as
 *           in section 4.3.
 */
#include "agent/net/noise.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define KEYLEN 32
#define BLOCKLEN 128
#define NONCE_MAX UINT64_MAX /* reserved by the spec: never used */

/* ------------------------------------------------------------------------ */
/* Handshake patterns (section 7.4 and 7.5)                                  */

enum token { T_END = 0, T_E, T_S, T_EE, T_ES, T_SE, T_SS };

#define MAX_MSGS 3
#define MAX_TOKENS 6

typedef struct pattern {
    const char *name;
    bool pre_init_s; /* "-> s" pre-message: the responder knows it */
    bool pre_resp_s; /* "<- s" pre-message: the initiator knows it */
    bool one_way;
    uint8_t nmsgs;
    uint8_t msgs[MAX_MSGS][MAX_TOKENS]; /* message i is sent by the initiator when i is even */
} pattern;

static const pattern patterns[] = {
    {"N", false, true, true, 1, {{T_E, T_ES}}},
    {"K", true, true, true, 1, {{T_E, T_ES, T_SS}}},
    {"X", false, true, true, 1, {{T_E, T_ES, T_S, T_SS}}},
    {"NN", false, false, false, 2, {{T_E}, {T_E, T_EE}}},
    {"NK", false, true, false, 2, {{T_E, T_ES}, {T_E, T_EE}}},
    {"NX", false, false, false, 2, {{T_E}, {T_E, T_EE, T_S, T_ES}}},
    {"XN", false, false, false, 3, {{T_E}, {T_E, T_EE}, {T_S, T_SE}}},
    {"XK", false, true, false, 3, {{T_E, T_ES}, {T_E, T_EE}, {T_S, T_SE}}},
    {"XX", false, false, false, 3, {{T_E}, {T_E, T_EE, T_S, T_ES}, {T_S, T_SE}}},
    {"KN", true, false, false, 2, {{T_E}, {T_E, T_EE, T_SE}}},
    {"KK", true, true, false, 2, {{T_E, T_ES, T_SS}, {T_E, T_EE, T_SE}}},
    {"KX", true, false, false, 2, {{T_E}, {T_E, T_EE, T_SE, T_S, T_ES}}},
    {"IN", false, false, false, 2, {{T_E, T_S}, {T_E, T_EE, T_SE}}},
    {"IK", false, true, false, 2, {{T_E, T_ES, T_S, T_SS}, {T_E, T_EE, T_SE}}},
    {"IX", false, false, false, 2, {{T_E, T_S}, {T_E, T_EE, T_SE, T_S, T_ES}}},
};

static const pattern *pattern_find(const char *name)
{
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
        if (strcmp(patterns[i].name, name) == 0)
            return &patterns[i];
    return NULL;
}

/* Whether the pattern makes `initiator_side` send its static key in a message. */
static bool pattern_sends_s(const pattern *p, bool initiator_side)
{
    for (unsigned m = 0; m < p->nmsgs; m++) {
        if (((m % 2) == 0) != initiator_side)
            continue;
        for (unsigned t = 0; t < MAX_TOKENS && p->msgs[m][t] != T_END; t++)
            if (p->msgs[m][t] == T_S)
                return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* State                                                                      */

typedef struct cipherstate {
    uint8_t k[KEYLEN];
    uint64_t n;
    bool has_k;
} cipherstate;

struct hms_noise {
    const pattern *p;
    bool initiator;
    bool done;
    bool failed;
    uint8_t msg_idx; /* next handshake message */
    /* SymmetricState */
    uint8_t ck[HMS_NOISE_HASHLEN];
    uint8_t h[HMS_NOISE_HASHLEN];
    cipherstate cs;
    /* HandshakeState */
    uint8_t s[KEYLEN], s_pub[KEYLEN];
    uint8_t e[KEYLEN], e_pub[KEYLEN];
    uint8_t fixed_e[KEYLEN];
    uint8_t rs[KEYLEN], re[KEYLEN];
    bool has_s, has_e, has_fixed_e, has_rs, has_re;
    /* Transport, after Split() */
    cipherstate tx, rx;
    bool can_send; /* false for the responder of a one-way pattern */
};

static void state_wipe(hms_noise *n)
{
    const pattern *p = n->p;
    bool initiator = n->initiator;
    sodium_memzero(n, sizeof(*n));
    n->p = p;
    n->initiator = initiator;
    n->failed = true;
}

/* ------------------------------------------------------------------------ */
/* Hash, HMAC, HKDF (section 4.3)                                             */

static void hash2(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                  uint8_t out[HMS_NOISE_HASHLEN])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, HMS_NOISE_HASHLEN);
    crypto_generichash_update(&st, a, alen);
    if (blen)
        crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, HMS_NOISE_HASHLEN);
    sodium_memzero(&st, sizeof(st));
}

/* HMAC-BLAKE2b over d1 || d2 with a HASHLEN-byte key (all keys here are). */
static void hmac(const uint8_t key[HMS_NOISE_HASHLEN], const uint8_t *d1, size_t l1,
                 const uint8_t *d2, size_t l2, uint8_t out[HMS_NOISE_HASHLEN])
{
    uint8_t pad[BLOCKLEN];
    uint8_t inner[HMS_NOISE_HASHLEN];
    crypto_generichash_state st;

    memset(pad, 0x36, sizeof(pad));
    for (size_t i = 0; i < HMS_NOISE_HASHLEN; i++)
        pad[i] ^= key[i];
    crypto_generichash_init(&st, NULL, 0, HMS_NOISE_HASHLEN);
    crypto_generichash_update(&st, pad, sizeof(pad));
    if (l1)
        crypto_generichash_update(&st, d1, l1);
    if (l2)
        crypto_generichash_update(&st, d2, l2);
    crypto_generichash_final(&st, inner, sizeof(inner));

    memset(pad, 0x5c, sizeof(pad));
    for (size_t i = 0; i < HMS_NOISE_HASHLEN; i++)
        pad[i] ^= key[i];
    crypto_generichash_init(&st, NULL, 0, HMS_NOISE_HASHLEN);
    crypto_generichash_update(&st, pad, sizeof(pad));
    crypto_generichash_update(&st, inner, sizeof(inner));
    crypto_generichash_final(&st, out, HMS_NOISE_HASHLEN);

    sodium_memzero(pad, sizeof(pad));
    sodium_memzero(inner, sizeof(inner));
    sodium_memzero(&st, sizeof(st));
}

/* HKDF(chaining_key, ikm, 2): the only form used without PSK tokens. */
static void hkdf2(const uint8_t ck[HMS_NOISE_HASHLEN], const uint8_t *ikm, size_t ikm_len,
                  uint8_t out1[HMS_NOISE_HASHLEN], uint8_t out2[HMS_NOISE_HASHLEN])
{
    uint8_t temp_key[HMS_NOISE_HASHLEN];
    const uint8_t one = 0x01, two = 0x02;

    hmac(ck, ikm, ikm_len, NULL, 0, temp_key);
    hmac(temp_key, &one, 1, NULL, 0, out1);
    hmac(temp_key, out1, HMS_NOISE_HASHLEN, &two, 1, out2);
    sodium_memzero(temp_key, sizeof(temp_key));
}

/* ------------------------------------------------------------------------ */
/* CipherState (section 5.1)                                                  */

static void nonce_bytes(uint64_t n, uint8_t out[crypto_aead_chacha20poly1305_IETF_NPUBBYTES])
{
    memset(out, 0, 4);
    for (int i = 0; i < 8; i++)
        out[4 + i] = (uint8_t)(n >> (8 * i));
}

/* EncryptWithAd: out holds len + TAG bytes. */
static int cs_encrypt(cipherstate *cs, const uint8_t *ad, size_t ad_len, const uint8_t *pt,
                      size_t len, uint8_t *out)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
    unsigned long long clen;

    if (cs->n == NONCE_MAX)
        return -EOVERFLOW;
    nonce_bytes(cs->n, nonce);
    crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, pt, len, ad, ad_len, NULL, nonce,
                                              cs->k);
    cs->n++;
    return 0;
}

/* DecryptWithAd: ct holds len bytes (tag included); out gets len - TAG. */
static int cs_decrypt(cipherstate *cs, const uint8_t *ad, size_t ad_len, const uint8_t *ct,
                      size_t len, uint8_t *out)
{
    uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
    unsigned long long mlen;

    if (cs->n == NONCE_MAX)
        return -EOVERFLOW;
    if (len < HMS_NOISE_TAG)
        return -EBADMSG;
    nonce_bytes(cs->n, nonce);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct, len, ad, ad_len, nonce,
                                                  cs->k) != 0)
        return -EBADMSG;
    cs->n++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* SymmetricState (section 5.2)                                               */

static void mix_hash(hms_noise *n, const uint8_t *data, size_t len)
{
    hash2(n->h, sizeof(n->h), data, len, n->h);
}

static void mix_key(hms_noise *n, const uint8_t *ikm, size_t len)
{
    uint8_t temp_k[HMS_NOISE_HASHLEN];

    hkdf2(n->ck, ikm, len, n->ck, temp_k);
    memcpy(n->cs.k, temp_k, KEYLEN); /* truncated to 32 bytes: HASHLEN is 64 */
    n->cs.n = 0;
    n->cs.has_k = true;
    sodium_memzero(temp_k, sizeof(temp_k));
}

/* EncryptAndHash into out (len, or len + TAG once a key is set). */
static int encrypt_and_hash(hms_noise *n, const uint8_t *pt, size_t len, uint8_t *out,
                            size_t *out_len)
{
    if (!n->cs.has_k) {
        if (len)
            memmove(out, pt, len);
        *out_len = len;
    } else {
        int rc = cs_encrypt(&n->cs, n->h, sizeof(n->h), pt, len, out);
        if (rc < 0)
            return rc;
        *out_len = len + HMS_NOISE_TAG;
    }
    mix_hash(n, out, *out_len);
    return 0;
}

/* DecryptAndHash: ct has len bytes; out gets len or len - TAG. */
static int decrypt_and_hash(hms_noise *n, const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t h_before[HMS_NOISE_HASHLEN];
    int rc = 0;

    /* The ciphertext goes into h, and out may alias nothing we still need,
     * but h changes only after a successful decryption. */
    memcpy(h_before, n->h, sizeof(h_before));
    if (!n->cs.has_k) {
        if (len)
            memmove(out, ct, len);
    } else
        rc = cs_decrypt(&n->cs, h_before, sizeof(h_before), ct, len, out);
    if (rc == 0)
        hash2(h_before, sizeof(h_before), ct, len, n->h);
    sodium_memzero(h_before, sizeof(h_before));
    return rc;
}

/* Split(): the two transport CipherStates. */
static void split(hms_noise *n)
{
    uint8_t k1[HMS_NOISE_HASHLEN], k2[HMS_NOISE_HASHLEN];
    cipherstate c1 = {0}, c2 = {0};

    hkdf2(n->ck, NULL, 0, k1, k2);
    memcpy(c1.k, k1, KEYLEN);
    memcpy(c2.k, k2, KEYLEN);
    c1.has_k = c2.has_k = true;
    n->tx = n->initiator ? c1 : c2;
    n->rx = n->initiator ? c2 : c1;
    n->can_send = n->initiator || !n->p->one_way;
    /* The handshake secrets are no longer needed. */
    sodium_memzero(n->ck, sizeof(n->ck));
    sodium_memzero(&n->cs, sizeof(n->cs));
    sodium_memzero(n->e, sizeof(n->e));
    sodium_memzero(n->fixed_e, sizeof(n->fixed_e));
    sodium_memzero(k1, sizeof(k1));
    sodium_memzero(k2, sizeof(k2));
    sodium_memzero(&c1, sizeof(c1));
    sodium_memzero(&c2, sizeof(c2));
    n->done = true;
}

/* DH(priv, pub) then MixKey(result); a low-order public key fails. */
static int mix_dh(hms_noise *n, const uint8_t priv[KEYLEN], const uint8_t pub[KEYLEN])
{
    uint8_t shared[KEYLEN];
    int rc = 0;

    if (crypto_scalarmult(shared, priv, pub) != 0)
        rc = -EBADMSG;
    else
        mix_key(n, shared, sizeof(shared));
    sodium_memzero(shared, sizeof(shared));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* HandshakeState (section 5.3)                                               */

hms_noise *hms_noise_new(const char *pattern_name, bool initiator, const hms_noise_keys *keys)
{
    static const char prefix[] = "Noise_", suffix[] = "_25519_ChaChaPoly_BLAKE2b";
    char name[64];
    const pattern *p;
    hms_noise *n;

    if (!pattern_name || !keys || (keys->prologue_len && !keys->prologue)) {
        errno = EINVAL;
        return NULL;
    }
    if (sodium_init() < 0) {
        errno = EIO;
        return NULL;
    }
    p = pattern_find(pattern_name);
    if (!p) {
        errno = EINVAL;
        return NULL;
    }
    /* Keys the pattern needs: our static if we send it or the peer knows it
     * in advance; the peer's static if we know it in advance. */
    bool need_s = pattern_sends_s(p, initiator) || (initiator ? p->pre_init_s : p->pre_resp_s);
    bool need_rs = initiator ? p->pre_resp_s : p->pre_init_s;
    if ((need_s && !keys->s) || (need_rs && !keys->rs)) {
        errno = EINVAL;
        return NULL;
    }

    n = calloc(1, sizeof(*n));
    if (!n) {
        errno = ENOMEM;
        return NULL;
    }
    n->p = p;
    n->initiator = initiator;
    if (keys->s) {
        memcpy(n->s, keys->s, KEYLEN);
        crypto_scalarmult_base(n->s_pub, n->s);
        n->has_s = true;
    }
    if (keys->e) {
        memcpy(n->fixed_e, keys->e, KEYLEN);
        n->has_fixed_e = true;
    }
    if (keys->rs && need_rs) {
        memcpy(n->rs, keys->rs, KEYLEN);
        n->has_rs = true;
    }

    /* InitializeSymmetric(protocol_name): the name fits in HASHLEN, so h is
     * the name padded with zeros. */
    size_t len = 0;
    memcpy(name + len, prefix, sizeof(prefix) - 1);
    len += sizeof(prefix) - 1;
    memcpy(name + len, p->name, strlen(p->name));
    len += strlen(p->name);
    memcpy(name + len, suffix, sizeof(suffix) - 1);
    len += sizeof(suffix) - 1;
    memset(n->h, 0, sizeof(n->h));
    memcpy(n->h, name, len);
    memcpy(n->ck, n->h, sizeof(n->ck));

    /* MixHash(prologue) */
    mix_hash(n, keys->prologue, keys->prologue_len);

    /* Pre-messages: the initiator's first, then the responder's. */
    if (p->pre_init_s)
        mix_hash(n, initiator ? n->s_pub : n->rs, KEYLEN);
    if (p->pre_resp_s)
        mix_hash(n, initiator ? n->rs : n->s_pub, KEYLEN);
    return n;
}

void hms_noise_delete(hms_noise *n)
{
    if (!n)
        return;
    sodium_memzero(n, sizeof(*n));
    free(n);
}

bool hms_noise_done(const hms_noise *n)
{
    return n && n->done && !n->failed;
}

bool hms_noise_my_turn(const hms_noise *n)
{
    if (!n || n->failed || n->done)
        return false;
    return ((n->msg_idx % 2) == 0) == n->initiator;
}

const uint8_t *hms_noise_remote_static(const hms_noise *n)
{
    return n && !n->failed && n->has_rs ? n->rs : NULL;
}

const uint8_t *hms_noise_handshake_hash(const hms_noise *n)
{
    return n && n->done && !n->failed ? n->h : NULL;
}

bool hms_noise_failed(const hms_noise *n)
{
    return !n || n->failed;
}

/* The private/public keys for es and se from our side. */
static void dh_keys_es(const hms_noise *t, const uint8_t **priv, const uint8_t **pub)
{
    /* es: DH(e, rs) for the initiator, DH(s, re) for the responder */
    *priv = t->initiator ? t->e : t->s;
    *pub = t->initiator ? t->rs : t->re;
}

static void dh_keys_se(const hms_noise *t, const uint8_t **priv, const uint8_t **pub)
{
    /* se: DH(s, re) for the initiator, DH(e, rs) for the responder */
    *priv = t->initiator ? t->s : t->e;
    *pub = t->initiator ? t->re : t->rs;
}

/* Runs one DH token on t; fails if a key it needs is missing. */
static int token_dh(hms_noise *t, uint8_t tok)
{
    const uint8_t *priv, *pub;
    bool ok;

    switch (tok) {
    case T_EE: /* ee: DH(e, re) */
        ok = t->has_e && t->has_re;
        priv = t->e;
        pub = t->re;
        break;
    case T_ES:
        ok = t->initiator ? (t->has_e && t->has_rs) : (t->has_s && t->has_re);
        dh_keys_es(t, &priv, &pub);
        break;
    case T_SE:
        ok = t->initiator ? (t->has_s && t->has_re) : (t->has_e && t->has_rs);
        dh_keys_se(t, &priv, &pub);
        break;
    case T_SS: /* ss: DH(s, rs) */
        ok = t->has_s && t->has_rs;
        priv = t->s;
        pub = t->rs;
        break;
    default:
        return -EINVAL;
    }
    if (!ok)
        return -EPROTO;
    return mix_dh(t, priv, pub);
}

int hms_noise_write(hms_noise *n, const uint8_t *payload, size_t payload_len, uint8_t *out,
                    size_t out_cap, size_t *out_len)
{
    hms_noise t;
    size_t off = 0, len;
    int rc = 0;

    if (!n || (!payload && payload_len) || !out || !out_len)
        return -EINVAL;
    if (n->failed || n->done || !hms_noise_my_turn(n))
        return -EPROTO;
    if (out_cap > HMS_NOISE_MAX_MSG)
        out_cap = HMS_NOISE_MAX_MSG;

    t = *n; /* work on a copy, commit on success */
    const uint8_t *toks = t.p->msgs[t.msg_idx];
    for (unsigned i = 0; i < MAX_TOKENS && toks[i] != T_END; i++) {
        switch (toks[i]) {
        case T_E: /* e: new ephemeral, sent in the clear, hashed */
            if (off + KEYLEN > out_cap) {
                rc = -ENOBUFS;
                goto out;
            }
            if (t.has_fixed_e) {
                memcpy(t.e, t.fixed_e, KEYLEN);
                sodium_memzero(t.fixed_e, KEYLEN);
                t.has_fixed_e = false;
            } else {
                randombytes_buf(t.e, KEYLEN);
            }
            crypto_scalarmult_base(t.e_pub, t.e);
            t.has_e = true;
            memcpy(out + off, t.e_pub, KEYLEN);
            mix_hash(&t, t.e_pub, KEYLEN);
            off += KEYLEN;
            break;
        case T_S: /* s: our static, encrypted once a key exists */
            if (!t.has_s) {
                rc = -EPROTO;
                goto out;
            }
            if (off + KEYLEN + (t.cs.has_k ? HMS_NOISE_TAG : 0) > out_cap) {
                rc = -ENOBUFS;
                goto out;
            }
            rc = encrypt_and_hash(&t, t.s_pub, KEYLEN, out + off, &len);
            if (rc < 0)
                goto out;
            off += len;
            break;
        default: /* ee, es, se, ss */
            rc = token_dh(&t, toks[i]);
            if (rc < 0)
                goto out;
            break;
        }
    }
    /* payload */
    if (off + payload_len + (t.cs.has_k ? HMS_NOISE_TAG : 0) > out_cap) {
        rc = -ENOBUFS;
        goto out;
    }
    rc = encrypt_and_hash(&t, payload ? payload : out + off, payload_len, out + off, &len);
    if (rc < 0)
        goto out;
    off += len;

    t.msg_idx++;
    if (t.msg_idx == t.p->nmsgs)
        split(&t);
    *n = t;
    *out_len = off;
out:
    /* A short buffer is the caller's problem and changes nothing; any other
     * failure ends the session. */
    if (rc < 0 && rc != -ENOBUFS)
        state_wipe(n);
    sodium_memzero(&t, sizeof(t));
    return rc;
}

int hms_noise_read(hms_noise *n, const uint8_t *msg, size_t msg_len, uint8_t *payload_out,
                   size_t payload_cap, size_t *payload_len)
{
    hms_noise t;
    size_t off = 0, need, plen;
    uint8_t spub[KEYLEN];
    int rc = 0;

    if (!n || (!msg && msg_len) || (!payload_out && payload_cap) || !payload_len)
        return -EINVAL;
    if (n->failed || n->done || hms_noise_my_turn(n))
        return -EPROTO;

    t = *n; /* work on a copy, commit on success */
    if (msg_len > HMS_NOISE_MAX_MSG) {
        rc = -EMSGSIZE;
        goto out;
    }
    const uint8_t *toks = t.p->msgs[t.msg_idx];
    for (unsigned i = 0; i < MAX_TOKENS && toks[i] != T_END; i++) {
        switch (toks[i]) {
        case T_E: /* e: the peer's ephemeral, in the clear, hashed */
            if (off + KEYLEN > msg_len || t.has_re) {
                rc = -EBADMSG;
                goto out;
            }
            memcpy(t.re, msg + off, KEYLEN);
            t.has_re = true;
            mix_hash(&t, t.re, KEYLEN);
            off += KEYLEN;
            break;
        case T_S: /* s: the peer's static, encrypted once a key exists */
            need = KEYLEN + (t.cs.has_k ? HMS_NOISE_TAG : 0);
            if (off + need > msg_len || t.has_rs) {
                rc = -EBADMSG;
                goto out;
            }
            rc = decrypt_and_hash(&t, msg + off, need, spub);
            if (rc < 0)
                goto out;
            memcpy(t.rs, spub, KEYLEN);
            t.has_rs = true;
            off += need;
            break;
        default: /* ee, es, se, ss */
            rc = token_dh(&t, toks[i]);
            if (rc < 0)
                goto out;
            break;
        }
    }
    /* payload */
    need = msg_len - off;
    if (t.cs.has_k && need < HMS_NOISE_TAG) {
        rc = -EBADMSG;
        goto out;
    }
    plen = need - (t.cs.has_k ? HMS_NOISE_TAG : 0);
    if (plen > payload_cap) {
        rc = -ENOBUFS;
        goto out;
    }
    rc = decrypt_and_hash(&t, msg + off, need, payload_out ? payload_out : spub);
    if (rc < 0)
        goto out;

    t.msg_idx++;
    if (t.msg_idx == t.p->nmsgs)
        split(&t);
    *n = t;
    *payload_len = plen;
out:
    if (rc < 0 && rc != -ENOBUFS)
        state_wipe(n);
    sodium_memzero(&t, sizeof(t));
    sodium_memzero(spub, sizeof(spub));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Transport                                                                  */

int hms_noise_encrypt(hms_noise *n, const uint8_t *pt, size_t len, uint8_t *out, size_t out_cap,
                      size_t *out_len)
{
    int rc;

    if (!n || (!pt && len) || !out || !out_len)
        return -EINVAL;
    if (n->failed || !n->done || !n->can_send)
        return -EPROTO;
    if (len > HMS_NOISE_MAX_MSG - HMS_NOISE_TAG)
        return -EMSGSIZE;
    if (out_cap < len + HMS_NOISE_TAG)
        return -ENOBUFS;
    rc = cs_encrypt(&n->tx, NULL, 0, pt ? pt : out, len, out);
    if (rc < 0) {
        state_wipe(n);
        return rc;
    }
    *out_len = len + HMS_NOISE_TAG;
    return 0;
}

int hms_noise_decrypt(hms_noise *n, const uint8_t *ct, size_t len, uint8_t *out, size_t out_cap,
                      size_t *out_len)
{
    uint8_t dummy[1];
    int rc;

    if (!n || (!ct && len) || (!out && out_cap) || !out_len)
        return -EINVAL;
    if (n->failed || !n->done)
        return -EPROTO;
    if (len < HMS_NOISE_TAG || len > HMS_NOISE_MAX_MSG) {
        state_wipe(n);
        return -EBADMSG;
    }
    if (out_cap < len - HMS_NOISE_TAG)
        return -ENOBUFS;
    rc = cs_decrypt(&n->rx, NULL, 0, ct, len, out ? out : dummy);
    if (rc < 0) {
        state_wipe(n);
        return rc;
    }
    *out_len = len - HMS_NOISE_TAG;
    return 0;
}
