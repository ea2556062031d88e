/*
 * Audit log wire and file formats: entries, segment seals and the framed
 * records that segment files (and replication transfers) are made of. Pure
 * encode/decode/verify; no I/O. Layouts with pictures in proto/audit.c and
 * docs/audit.md.
 *
 *   entry  canonical msgpack array, hashed as
 *          hash = BLAKE2b-256("hms-audit-entry-v1" || encoding)
 *   seal   Ed25519 by the node key over ("hms-audit-seal-v1", node key,
 *          segment number, first and last sequence, head hash, time)
 *   record 16-byte frame header (magic, type, length, payload CRC32C,
 *          header CRC32C) + payload; a segment is HEADER ENTRY* [SEAL]
 *
 * Every decoder takes untrusted bytes, checks every bound and the canonical
 * form (an encoding decodes only if re-encoding gives the same bytes), and
 * returns 0 or a negative errno-style code.
 */
#ifndef HMS_PROTO_AUDIT_H
#define HMS_PROTO_AUDIT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define HMS_AUDIT_HASH_LEN 32
#define HMS_AUDIT_KEY_LEN 32
#define HMS_AUDIT_SIG_LEN 64
#define HMS_AUDIT_ENTRY_MAX 65536  /* bytes of one encoded entry */
#define HMS_AUDIT_FIELDS_DEPTH 16  /* nesting of field values */
#define HMS_AUDIT_KIND_LEN_MAX 64
#define HMS_AUDIT_REQID_LEN_MAX 128
#define HMS_AUDIT_NAME_LEN_MAX 128
#define HMS_AUDIT_SEAL_ENC_MAX 192 /* encoded seal payload */
#define HMS_AUDIT_SEGMENT_MAX (64u << 20) /* bytes of one segment file */

#define HMS_AUDIT_REC_HDR 16
#define HMS_AUDIT_REC_MAGIC 0xA7
enum {
    HMS_AUDIT_REC_HEADER = 1, /* segment header: node key, segment number, first seq, prev head */
    HMS_AUDIT_REC_ENTRY = 2,
    HMS_AUDIT_REC_SEAL = 3,
};

/* A torn record at the end of a buffer (a prefix of a valid record). */
#define HMS_AUDIT_TORN (-EAGAIN)

/* CRC32C (Castagnoli); hardware instruction when the CPU has it. */
uint32_t hms_crc32c(uint32_t crc, const void *buf, size_t len);

/* One entry. Strings are (pointer, length), not NUL-terminated; a NULL
 * pointer means absent. decode() points them into the input buffer. */
typedef struct hms_audit_entry {
    uint64_t seq;
    uint64_t ts_ns; /* wall clock, nanoseconds since the Unix epoch */
    uint8_t prev[HMS_AUDIT_HASH_LEN];
    const char *kind;
    size_t kind_len;
    const char *reqid; /* NULL: none */
    size_t reqid_len;
    bool has_actor;
    int64_t uid, pid; /* -1: unknown */
    const char *actor_name; /* NULL: none */
    size_t actor_name_len;
    const uint8_t *fields; /* canonical msgpack map; NULL: empty map */
    size_t fields_len;
} hms_audit_entry;

/* Encodes e into out (cap bytes). -EINVAL on a bad kind/reqid/name or
 * non-canonical fields, -ENOBUFS when it does not fit. */
int hms_audit_entry_encode(const hms_audit_entry *e, uint8_t *out, size_t cap, size_t *len);
/* Decodes a canonical entry occupying exactly len bytes: -EBADMSG otherwise. */
int hms_audit_entry_decode(const uint8_t *buf, size_t len, hms_audit_entry *e);
void hms_audit_entry_hash(const uint8_t *enc, size_t len, uint8_t out[HMS_AUDIT_HASH_LEN]);

/* Fields: a JSON object <-> canonical msgpack map (keys sorted bytewise,
 * minimal integer forms, reals as float64). NULL obj gives the empty map.
 * from_json: -EINVAL if obj is not an object or nests too deep, -ENOBUFS. */
int hms_audit_fields_from_json(const json_t *obj, uint8_t *out, size_t cap, size_t *len);
/* Returns a new JSON object, or NULL if the bytes are not canonical fields. */
json_t *hms_audit_fields_to_json(const uint8_t *buf, size_t len);
/* Checks canonical fields (exactly len bytes); 0 or -EBADMSG. */
int hms_audit_fields_check(const uint8_t *buf, size_t len);

/* An entry as a JSON object: seq, ts (ns), time (RFC 3339 UTC), prev,
 * hash (hex), kind, request_id, actor {uid,pid,name}, fields. */
json_t *hms_audit_entry_to_json(const hms_audit_entry *e, const uint8_t hash[HMS_AUDIT_HASH_LEN]);

/* Segment seal. */
typedef struct hms_audit_seal {
    uint8_t node_key[HMS_AUDIT_KEY_LEN];
    uint64_t segno;
    uint64_t first_seq, last_seq;
    uint8_t head[HMS_AUDIT_HASH_LEN]; /* hash of entry last_seq */
    uint64_t time_ns;
    uint8_t sig[HMS_AUDIT_SIG_LEN];
} hms_audit_seal;

/* Fills s->node_key from sk and signs. */
void hms_audit_seal_sign(hms_audit_seal *s, const uint8_t sk[64]);
/* 0 when the signature by s->node_key is valid, -EBADMSG otherwise. */
int hms_audit_seal_verify(const hms_audit_seal *s);
int hms_audit_seal_encode(const hms_audit_seal *s, uint8_t *out, size_t cap, size_t *len);
int hms_audit_seal_decode(const uint8_t *buf, size_t len, hms_audit_seal *s);
/* Same statement (everything but possibly the signature bytes)? */
bool hms_audit_seal_same(const hms_audit_seal *a, const hms_audit_seal *b);

/* Segment header record payload. */
typedef struct hms_audit_seghdr {
    uint8_t node_key[HMS_AUDIT_KEY_LEN];
    uint64_t segno;     /* 0, 1, 2, ... */
    uint64_t first_seq; /* sequence of the segment's first entry */
    uint8_t prev_head[HMS_AUDIT_HASH_LEN]; /* hash of entry first_seq - 1 (zeros for 0) */
} hms_audit_seghdr;

int hms_audit_seghdr_encode(const hms_audit_seghdr *h, uint8_t *out, size_t cap, size_t *len);
int hms_audit_seghdr_decode(const uint8_t *buf, size_t len, hms_audit_seghdr *h);

/* Writes the 16-byte frame header for payload into hdr. */
void hms_audit_frame(uint8_t type, const uint8_t *payload, size_t len, uint8_t hdr[HMS_AUDIT_REC_HDR]);
/* Reads the record at buf[off..len). 0 with *type, *payload, *plen, *next;
 * HMS_AUDIT_TORN when the bytes left are a prefix of a record (header
 * incomplete, or a valid header whose payload runs past len); -EBADMSG when
 * the header or payload checksum is wrong or the header is malformed. */
int hms_audit_unframe(const uint8_t *buf, size_t len, size_t off, uint8_t *type,
                      const uint8_t **payload, size_t *plen, size_t *next);

/* What a segment holds, after verification. */
typedef struct hms_audit_seginfo {
    hms_audit_seghdr hdr;
    uint64_t count;     /* entries */
    uint64_t last_seq;  /* valid when count > 0 */
    uint64_t first_ts, last_ts;
    uint8_t head[HMS_AUDIT_HASH_LEN]; /* hash of the last entry, or hdr.prev_head */
    bool sealed;
    hms_audit_seal seal;
    size_t valid_len; /* bytes of whole, verified records */
} hms_audit_seginfo;

/* Callback per verified entry (may be NULL); nonzero return stops. */
typedef int (*hms_audit_entry_fn)(void *ctx, const hms_audit_entry *e,
                                  const uint8_t hash[HMS_AUDIT_HASH_LEN], const uint8_t *enc,
                                  size_t enc_len);

/*
 * Verifies a whole segment: frames, header, every entry (canonical, seq
 * consecutive from hdr.first_seq, each naming the previous hash), the seal
 * (matches header and head, signature by the header's key) and nothing after
 * it. expect_key: the origin's key, or NULL. allow_open: an unsealed segment
 * is acceptable (the writer's open segment), and a torn final record gives
 * HMS_AUDIT_TORN with info->valid_len at its start.
 * Returns 0 or HMS_AUDIT_TORN (1 when fn stopped it); -EBADMSG with *err_off (byte offset in buf)
 * and *why (static text) on any other fault.
 */
int hms_audit_segment_verify(const uint8_t *buf, size_t len, const uint8_t *expect_key,
                             bool allow_open, hms_audit_seginfo *info, size_t *err_off,
                             const char **why, hms_audit_entry_fn fn, void *ctx);

/* What an agent gossips (HMS_USER_AUDIT_HEAD, at most 512 bytes): its own
 * latest seal, and how far it holds other origins' logs.
 *   [1, seal:bin|nil, [[key8:bin8, last_segno:uint, head8:bin8], ...]] */
#define HMS_AUDIT_HOLDINGS_MAX 10
typedef struct hms_audit_holding {
    uint8_t key8[8];  /* first bytes of the origin's key */
    uint64_t last_segno;
    uint8_t head8[8]; /* first bytes of that segment's head hash */
} hms_audit_holding;

typedef struct hms_audit_headmsg {
    bool has_seal;
    hms_audit_seal seal;
    size_t nholdings;
    hms_audit_holding holdings[HMS_AUDIT_HOLDINGS_MAX];
} hms_audit_headmsg;

int hms_audit_headmsg_encode(const hms_audit_headmsg *m, uint8_t *out, size_t cap, size_t *len);
int hms_audit_headmsg_decode(const uint8_t *buf, size_t len, hms_audit_headmsg *m);

/* "audit.pull" request: key (32) | from_segno (be64) | max_bytes (be32). */
#define HMS_AUDIT_PULLREQ_LEN 44
void hms_audit_pullreq_encode(const uint8_t key[32], uint64_t from_segno, uint32_t max_bytes,
                              uint8_t out[HMS_AUDIT_PULLREQ_LEN]);
int hms_audit_pullreq_decode(const uint8_t *buf, size_t len, uint8_t key[32], uint64_t *from_segno,
                             uint32_t *max_bytes);

/* Splits a run of whole segments (a pull reply): the length of the first
 * segment (through its seal record) in *seglen; 0 or -EBADMSG. */
int hms_audit_next_segment(const uint8_t *buf, size_t len, size_t *seglen);

void hms_audit_hex(const uint8_t *in, size_t n, char *out); /* out: 2n+1 bytes */
int hms_audit_unhex(const char *in, uint8_t *out, size_t n); /* exactly 2n hex digits */

#endif
