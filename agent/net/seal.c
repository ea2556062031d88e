/*
 * Sealed UDP packets: per-pair AEAD keys derived from the X25519 forms of
 * the two Ed25519 node keys, a clear header bound to the ciphertext as
 * associated data, and a per-sender sliding replay window.
 *
 * Wire layout (all integers big-endian):
 *
 *    0       1                         33          41          49          57
 *   +-------+-------------------------+-----------+-----------+-----------+
 *   | ver=1 | sender Ed25519 key (32) | rcv id(8) | epoch (8) | counter(8)|
 *   +-------+-------------------------+-----------+-----------+-----------+
 *   | ciphertext (len bytes)                              | tag (16)      |
 *   +-----------------------------------------------------+---------------+
 *
 *   rcv id  = BLAKE2b-64("hms-seal-id" || receiver Ed25519 key): lets a
 *             receiver drop a packet meant for another key without crypto.
 *   AEAD    = XChaCha20-Poly1305, associated data = the 57-byte header,
 *             nonce = epoch || counter || 8 zero bytes.
 *
 * Keys. shared = X25519(our X25519 secret, peer's X25519 public); each
 * direction has its own key:
 *   k(A->B) = BLAKE2b-256(key = shared, "hms-seal-v1" || A_ed || B_ed)
 * so the two directions never share a key even though they share `shared`.
 *
 * Nonces are never reused: the counter is one per sealer (not per peer),
 * strictly increasing, and the epoch strictly increases across restarts.
 * So (epoch, counter) is unique for every packet a key ever seals, whatever
 * happens to the key cache.
 *
 * Replay window: per sender, the highest (epoch, counter) accepted and a
 * 1024-bit bitmap of the counters below it. A higher epoch (the sender
 * restarted) resets the window; a lower epoch is STALE_EPOCH; a counter more
 * than 1024 below the highest, or already seen, is REPLAY. The window is
 * checked before decryption (cheap) and updated only after the tag verified,
 * so forged packets cannot move it. The sender's counter is shared by all
 * its peers, so the window tolerates reordering of up to 1024 packets of
 * the sender's total output.
 *
 * Cache: derived keys and windows of up to HMS_SEAL_CACHE_MAX peers, least
 * recently used evicted first. An entry is created only for a sender the
 * peer-check callback accepted, or for a peer we seal to. Replay protection
 * of a peer holds while its entry is cached; an evicted peer starts again
 * with an empty window, which is why the cache is sized above the largest
 * supported cluster. The cache starts at CACHE_INITIAL entries and doubles
 * up to the maximum, so a small cluster does not pay for the largest one;
 * a grown table is copied and the old one zeroed before it is freed (it
 * holds keys).
 *
 * Check order in hms_open (cheap first): length and version, receiver id,
 * peer check, epoch and window, key derivation, tag.
 */
#include "agent/net/seal.h"
#include "proto/bytes.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define VERSION 1
#define OFF_SENDER 1
#define OFF_RCVID 33
#define OFF_EPOCH 41
#define OFF_COUNTER 49
#define HDR_LEN 57
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define ID_LEN 8
#define WINDOW_BITS 1024
#define WINDOW_WORDS (WINDOW_BITS / 64)
#define CACHE_INITIAL 16
#define NIL UINT32_MAX

_Static_assert(HDR_LEN + TAG_LEN <= HMS_SEAL_OVERHEAD, "seal overhead");
_Static_assert(HMS_SEAL_HEADER_LEN == HDR_LEN, "seal header length");

typedef struct peer_entry {
    uint8_t pk[32];     /* peer's Ed25519 key */
    uint8_t k_tx[32];   /* us -> peer */
    uint8_t k_rx[32];   /* peer -> us */
    bool used;
    bool rx_seen;       /* the window holds something */
    uint64_t rx_epoch;
    uint64_t rx_max;    /* highest counter accepted in rx_epoch */
    uint64_t bitmap[WINDOW_WORDS]; /* bit i: counter rx_max - i was seen */
    uint32_t hnext;     /* hash chain */
    uint32_t lru_prev, lru_next;
} peer_entry;

struct hms_sealer {
    uint8_t ed_pk[32];
    uint8_t x_sk[32];
    uint8_t x_pk[32];
    uint8_t my_id[ID_LEN];
    uint64_t epoch;
    uint64_t counter; /* next counter to use */
    hms_seal_peer_check check;
    void *ctx;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    /* Entries [0, n_slots) have been handed out; removed ones wait on
     * free_list. nbuckets = 2 * cap. */
    uint32_t *buckets;
    uint32_t nbuckets;
    uint32_t lru_head, lru_tail; /* head: most recently used */
    uint32_t cap, n_slots;
    uint32_t nfree;
    uint32_t *free_list;
    peer_entry *entries;
};

const char *hms_seal_result_name(hms_seal_result r)
{
    switch (r) {
    case HMS_SEAL_OK: return "ok";
    case HMS_SEAL_MALFORMED: return "malformed";
    case HMS_SEAL_UNKNOWN_SENDER: return "unknown_sender";
    case HMS_SEAL_BAD_TAG: return "bad_tag";
    case HMS_SEAL_REPLAY: return "replay";
    case HMS_SEAL_STALE_EPOCH: return "stale_epoch";
    case HMS_SEAL_REVOKED: return "revoked";
    case HMS_SEAL_NOT_FOR_US: return "not_for_us";
    }
    return "unknown";
}

void hms_seal_key_id(const uint8_t ed_pk[32], uint8_t id[HMS_SEAL_ID_LEN])
{
    static const char label[] = "hms-seal-id";
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, HMS_SEAL_ID_LEN);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
    crypto_generichash_update(&st, ed_pk, 32);
    crypto_generichash_final(&st, id, HMS_SEAL_ID_LEN);
}

int hms_seal_peek_sender(const uint8_t *pkt, size_t len, uint8_t sender_pk[32])
{
    if (!pkt || len < HDR_LEN + TAG_LEN || pkt[0] != VERSION)
        return HMS_SEAL_MALFORMED;
    memcpy(sender_pk, pkt + OFF_SENDER, 32);
    return HMS_SEAL_OK;
}

/* ------------------------------------------------------------------------ */
/* Key cache                                                                  */

static uint32_t bucket_of(const hms_sealer *s, const uint8_t pk[32])
{
    uint8_t h[crypto_shorthash_BYTES];
    uint64_t v = 0;
    crypto_shorthash(h, pk, 32, s->hkey);
    for (int i = 0; i < 8; i++)
        v = (v << 8) | h[i];
    return (uint32_t)(v % s->nbuckets);
}

static void lru_unlink(hms_sealer *s, uint32_t i)
{
    peer_entry *e = &s->entries[i];
    if (e->lru_prev != NIL)
        s->entries[e->lru_prev].lru_next = e->lru_next;
    else
        s->lru_head = e->lru_next;
    if (e->lru_next != NIL)
        s->entries[e->lru_next].lru_prev = e->lru_prev;
    else
        s->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NIL;
}

static void lru_push_front(hms_sealer *s, uint32_t i)
{
    peer_entry *e = &s->entries[i];
    e->lru_prev = NIL;
    e->lru_next = s->lru_head;
    if (s->lru_head != NIL)
        s->entries[s->lru_head].lru_prev = i;
    s->lru_head = i;
    if (s->lru_tail == NIL)
        s->lru_tail = i;
}

static uint32_t cache_find(hms_sealer *s, const uint8_t pk[32])
{
    for (uint32_t i = s->buckets[bucket_of(s, pk)]; i != NIL; i = s->entries[i].hnext)
        if (memcmp(s->entries[i].pk, pk, 32) == 0)
            return i;
    return NIL;
}

static void cache_remove(hms_sealer *s, uint32_t i)
{
    peer_entry *e = &s->entries[i];
    uint32_t *link = &s->buckets[bucket_of(s, e->pk)];
    while (*link != NIL && *link != i)
        link = &s->entries[*link].hnext;
    if (*link == i)
        *link = e->hnext;
    lru_unlink(s, i);
    sodium_memzero(e, sizeof(*e));
    e->hnext = e->lru_prev = e->lru_next = NIL;
    s->free_list[s->nfree++] = i;
}

/* Derives the two direction keys for peer_pk. Returns 0 or -EINVAL for a key
 * that is not a valid Ed25519 point (or gives a low-order X25519 key). */
static int derive(const hms_sealer *s, const uint8_t peer_pk[32], uint8_t k_tx[32],
                  uint8_t k_rx[32])
{
    static const char label[] = "hms-seal-v1";
    uint8_t peer_x[32], shared[32];
    crypto_generichash_state st;
    int rc = -EINVAL;

    if (crypto_sign_ed25519_pk_to_curve25519(peer_x, peer_pk) != 0)
        goto out;
    if (crypto_scalarmult(shared, s->x_sk, peer_x) != 0)
        goto out;
    /* k(us -> peer) */
    crypto_generichash_init(&st, shared, sizeof(shared), 32);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
    crypto_generichash_update(&st, s->ed_pk, 32);
    crypto_generichash_update(&st, peer_pk, 32);
    crypto_generichash_final(&st, k_tx, 32);
    /* k(peer -> us) */
    crypto_generichash_init(&st, shared, sizeof(shared), 32);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
    crypto_generichash_update(&st, peer_pk, 32);
    crypto_generichash_update(&st, s->ed_pk, 32);
    crypto_generichash_final(&st, k_rx, 32);
    rc = 0;
out:
    sodium_memzero(shared, sizeof(shared));
    sodium_memzero(&st, sizeof(st));
    return rc;
}

/* Doubles the cache (up to HMS_SEAL_CACHE_MAX) and rehashes every entry.
 * Returns 0, -ENOSPC at the maximum or -ENOMEM; on failure nothing changed.
 * No realloc: the old entries hold keys and are zeroed before being freed. */
static int cache_grow(hms_sealer *s)
{
    if (s->cap >= HMS_SEAL_CACHE_MAX)
        return -ENOSPC;
    uint32_t ncap = s->cap ? s->cap * 2 : CACHE_INITIAL;
    if (ncap > HMS_SEAL_CACHE_MAX)
        ncap = HMS_SEAL_CACHE_MAX;
    uint32_t nb = 2 * ncap;
    uint32_t *buckets = malloc(nb * sizeof(*buckets));
    uint32_t *free_list = malloc(ncap * sizeof(*free_list));
    peer_entry *entries = malloc(ncap * sizeof(*entries));
    if (!buckets || !free_list || !entries) {
        free(buckets);
        free(free_list);
        free(entries);
        return -ENOMEM;
    }
    if (s->cap) {
        memcpy(entries, s->entries, s->cap * sizeof(*entries));
        sodium_memzero(s->entries, s->cap * sizeof(*entries));
    }
    if (s->nfree)
        memcpy(free_list, s->free_list, s->nfree * sizeof(*free_list));
    free(s->entries);
    free(s->free_list);
    free(s->buckets);
    s->entries = entries;
    s->free_list = free_list;
    s->buckets = buckets;
    s->nbuckets = nb;
    s->cap = ncap;
    for (uint32_t b = 0; b < nb; b++)
        s->buckets[b] = NIL;
    for (uint32_t i = s->lru_head; i != NIL; i = s->entries[i].lru_next) {
        uint32_t b = bucket_of(s, s->entries[i].pk);
        s->entries[i].hnext = s->buckets[b];
        s->buckets[b] = i;
    }
    return 0;
}

/* A free entry: a removed one, a never used one, a new one after growing
 * the cache, or (at the maximum) the least recently used peer's. */
static uint32_t cache_slot(hms_sealer *s)
{
    if (s->nfree == 0 && s->n_slots == s->cap && cache_grow(s) < 0)
        cache_remove(s, s->lru_tail);
    if (s->nfree)
        return s->free_list[--s->nfree];
    uint32_t i = s->n_slots++;
    sodium_memzero(&s->entries[i], sizeof(s->entries[i]));
    s->entries[i].hnext = s->entries[i].lru_prev = s->entries[i].lru_next = NIL;
    return i;
}

/* Finds or creates the entry for peer_pk, most recently used first.
 * Returns its index, or NIL when the key is unusable. */
static uint32_t cache_get(hms_sealer *s, const uint8_t peer_pk[32])
{
    uint32_t i = cache_find(s, peer_pk);
    if (i != NIL) {
        lru_unlink(s, i);
        lru_push_front(s, i);
        return i;
    }
    i = cache_slot(s);
    peer_entry *e = &s->entries[i];
    if (derive(s, peer_pk, e->k_tx, e->k_rx) != 0) {
        sodium_memzero(e, sizeof(*e));
        e->hnext = e->lru_prev = e->lru_next = NIL;
        s->free_list[s->nfree++] = i;
        return NIL;
    }
    memcpy(e->pk, peer_pk, 32);
    e->used = true;
    uint32_t b = bucket_of(s, peer_pk);
    e->hnext = s->buckets[b];
    s->buckets[b] = i;
    lru_push_front(s, i);
    return i;
}

/* ------------------------------------------------------------------------ */
/* Replay window                                                              */

static bool window_bit(const peer_entry *e, uint64_t back)
{
    return (e->bitmap[back / 64] >> (back % 64)) & 1;
}

/* Whether (epoch, counter) may be new; no state change. */
static int window_check(const peer_entry *e, uint64_t epoch, uint64_t counter)
{
    if (!e->rx_seen || epoch > e->rx_epoch)
        return HMS_SEAL_OK;
    if (epoch < e->rx_epoch)
        return HMS_SEAL_STALE_EPOCH;
    if (counter > e->rx_max)
        return HMS_SEAL_OK;
    uint64_t back = e->rx_max - counter;
    if (back >= WINDOW_BITS || window_bit(e, back))
        return HMS_SEAL_REPLAY;
    return HMS_SEAL_OK;
}

/* Records (epoch, counter) after the tag verified; window_check passed. */
static void window_accept(peer_entry *e, uint64_t epoch, uint64_t counter)
{
    if (!e->rx_seen || epoch > e->rx_epoch) {
        e->rx_seen = true;
        e->rx_epoch = epoch;
        e->rx_max = counter;
        memset(e->bitmap, 0, sizeof(e->bitmap));
        e->bitmap[0] = 1;
        return;
    }
    if (counter > e->rx_max) {
        uint64_t shift = counter - e->rx_max;
        if (shift >= WINDOW_BITS) {
            memset(e->bitmap, 0, sizeof(e->bitmap));
        } else {
            /* Move every bit `shift` places toward older counters. */
            unsigned words = (unsigned)(shift / 64), bits = (unsigned)(shift % 64);
            for (int w = WINDOW_WORDS - 1; w >= 0; w--) {
                uint64_t v = 0;
                int src = w - (int)words;
                if (src >= 0) {
                    v = e->bitmap[src] << bits;
                    if (bits && src > 0)
                        v |= e->bitmap[src - 1] >> (64 - bits);
                }
                e->bitmap[w] = v;
            }
        }
        e->rx_max = counter;
        e->bitmap[0] |= 1;
        return;
    }
    uint64_t back = e->rx_max - counter;
    e->bitmap[back / 64] |= 1ULL << (back % 64);
}

/* ------------------------------------------------------------------------ */

hms_sealer *hms_sealer_new(const uint8_t ed_sk[64], uint64_t epoch, hms_seal_peer_check check,
                           void *ctx)
{
    hms_sealer *s;

    if (!ed_sk || sodium_init() < 0) {
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    /* The public key is the second half of libsodium's 64-byte secret key. */
    memcpy(s->ed_pk, ed_sk + 32, 32);
    if (crypto_sign_ed25519_sk_to_curve25519(s->x_sk, ed_sk) != 0 ||
        crypto_scalarmult_base(s->x_pk, s->x_sk) != 0) {
        hms_sealer_delete(s);
        errno = EINVAL;
        return NULL;
    }
    hms_seal_key_id(s->ed_pk, s->my_id);
    s->epoch = epoch;
    s->check = check;
    s->ctx = ctx;
    randombytes_buf(s->hkey, sizeof(s->hkey));
    s->lru_head = s->lru_tail = NIL;
    /* The first size is allocated now, so the LRU fallback of cache_slot
     * always has an entry to reuse. */
    if (cache_grow(s) < 0) {
        hms_sealer_delete(s);
        errno = ENOMEM;
        return NULL;
    }
    return s;
}

void hms_sealer_delete(hms_sealer *s)
{
    if (!s)
        return;
    if (s->entries) {
        sodium_memzero(s->entries, s->cap * sizeof(*s->entries));
        free(s->entries);
    }
    free(s->free_list);
    free(s->buckets);
    sodium_memzero(s, sizeof(*s));
    free(s);
}

void hms_sealer_forget(hms_sealer *s, const uint8_t peer_pk[32])
{
    if (!s || !peer_pk)
        return;
    uint32_t i = cache_find(s, peer_pk);
    if (i != NIL)
        cache_remove(s, i);
}

size_t hms_sealer_cached(const hms_sealer *s)
{
    return s ? s->n_slots - s->nfree : 0;
}

int hms_seal(hms_sealer *s, const uint8_t peer_pk[32], const uint8_t *pt, size_t len, uint8_t *out,
             size_t out_cap, size_t *out_len)
{
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    unsigned long long clen;

    if (!s || !peer_pk || (!pt && len) || !out || !out_len)
        return -EINVAL;
    if (len > HMS_SEAL_MAX_PLAINTEXT)
        return -EMSGSIZE;
    if (out_cap < HDR_LEN + len + TAG_LEN)
        return -ENOBUFS;
    if (s->counter == UINT64_MAX)
        return -EOVERFLOW; /* the agent must restart with a new epoch */
    uint32_t i = cache_get(s, peer_pk);
    if (i == NIL)
        return -EINVAL;
    const peer_entry *e = &s->entries[i];

    uint64_t counter = s->counter++;
    out[0] = VERSION;
    memcpy(out + OFF_SENDER, s->ed_pk, 32);
    hms_seal_key_id(peer_pk, out + OFF_RCVID);
    hms_put_be64(out + OFF_EPOCH, s->epoch);
    hms_put_be64(out + OFF_COUNTER, counter);
    memcpy(nonce, out + OFF_EPOCH, 16); /* epoch || counter || 8 zero bytes */
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + HDR_LEN, &clen, pt ? pt : out, len, out,
                                               HDR_LEN, NULL, nonce, e->k_tx);
    *out_len = HDR_LEN + (size_t)clen;
    return 0;
}

int hms_open(hms_sealer *s, const uint8_t *pkt, size_t len, uint8_t *out, size_t out_cap,
             size_t *out_len, uint8_t sender_pk[32])
{
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    uint8_t sender[32];
    unsigned long long mlen;
    int rc;

    if (!s || !out_len || !sender_pk)
        return HMS_SEAL_MALFORMED;
    /* 1. length and version */
    if (!pkt || len < HDR_LEN + TAG_LEN || pkt[0] != VERSION)
        return HMS_SEAL_MALFORMED;
    if (len - HDR_LEN - TAG_LEN > out_cap || (!out && len > HDR_LEN + TAG_LEN))
        return HMS_SEAL_MALFORMED;
    /* 2. addressed to us */
    if (sodium_memcmp(pkt + OFF_RCVID, s->my_id, ID_LEN) != 0)
        return HMS_SEAL_NOT_FOR_US;
    /* 3. the sender may talk to us */
    memcpy(sender, pkt + OFF_SENDER, 32);
    if (s->check) {
        rc = s->check(s->ctx, sender);
        if (rc != HMS_SEAL_OK)
            return rc == HMS_SEAL_REVOKED ? HMS_SEAL_REVOKED : HMS_SEAL_UNKNOWN_SENDER;
    }
    /* 4. epoch and replay window, before any crypto */
    uint64_t epoch = hms_get_be64(pkt + OFF_EPOCH);
    uint64_t counter = hms_get_be64(pkt + OFF_COUNTER);
    uint32_t i = cache_find(s, sender);
    if (i != NIL) {
        rc = window_check(&s->entries[i], epoch, counter);
        if (rc != HMS_SEAL_OK)
            return rc;
    }
    /* 5. keys (derived once per peer) */
    if (i == NIL || s->lru_head != i)
        i = cache_get(s, sender);
    if (i == NIL)
        return HMS_SEAL_UNKNOWN_SENDER; /* not a usable Ed25519 key */
    peer_entry *e = &s->entries[i];
    /* 6. tag */
    memcpy(nonce, pkt + OFF_EPOCH, 16);
    uint8_t dummy[1];
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out ? out : dummy, &mlen, NULL, pkt + HDR_LEN,
                                                   len - HDR_LEN, pkt, HDR_LEN, nonce,
                                                   e->k_rx) != 0)
        return HMS_SEAL_BAD_TAG;
    window_accept(e, epoch, counter);
    memcpy(sender_pk, sender, 32);
    *out_len = (size_t)mlen;
    return HMS_SEAL_OK;
}
