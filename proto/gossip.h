/*
 * Gossip wire format: the plaintext of membership UDP packets and of the
 * push-pull state exchanged over a channel. Encoding uses msgpack-c's packer
 * into a caller buffer of fixed size; decoding is a strict, allocation-free
 * cursor over the same msgpack subset, so a hostile length field can never
 * make the decoder allocate or read past the end of the input.
 *
 * UDP packet (compound: one or more messages, whole packet <= the MTU):
 *
 *   +------+---------------+---------------+-----+
 *   | 0x01 | message 1     | message 2     | ... |   at most GOSSIP_MSGS_MAX
 *   +------+---------------+---------------+-----+
 *   version  each message is one msgpack array, its first element the type
 *
 *   PING     [1, seq u32, target_key bin32]
 *   PING_REQ [2, seq u32, target_key bin32, want_nack bool]
 *   ACK      [3, seq u32]
 *   NACK     [4, seq u32]
 *   ALIVE    [5, name str, key bin32, addr bin, incarnation u64, meta bin, cert bin]
 *   SUSPECT  [6, name str, key bin32, incarnation u64, from str]
 *   DEAD     [7, name str, key bin32, incarnation u64, from str]
 *   LEAVE    [8, name str, key bin32, incarnation u64]
 *   USER     [9, origin str, kind u8, seq u64, data bin]
 *   WHO      [11]   "I do not know you": the receiver answers with its ALIVE
 *
 *   addr bin: [family=4][ip 4 bytes][port 2 bytes BE]   7 bytes
 *             [family=6][ip 16 bytes][port 2 bytes BE] 19 bytes
 *   name/from: 1..GOSSIP_NAME_MAX bytes, no byte below 0x20
 *
 * Push-pull state (one buffer per direction on the channel):
 *
 *   +------+----------------------------------------------------------+
 *   | 0x01 | [10, join bool, sender str, [member, member, ...]]       |
 *   +------+----------------------------------------------------------+
 *   member = [name str, key bin32, addr bin, incarnation u64, status u8,
 *             meta bin, cert bin, age u32]
 *   age: seconds since the sender saw the member's status change (0..
 *   GOSSIP_AGE_MAX); a record without it (7 elements) reads as age 0.
 *   status: 0 alive, 1 suspect, 2 dead, 3 left; at most GOSSIP_PP_MEMBERS_MAX
 *   members and GOSSIP_PP_BYTES_MAX bytes. The sender's own record is one of
 *   the members.
 *
 * Every decoder rejects trailing bytes, unknown types, wrong element counts,
 * out-of-range values and oversize fields.
 */
#ifndef HMS_PROTO_GOSSIP_H
#define HMS_PROTO_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

#define GOSSIP_VERSION 1
#define GOSSIP_NAME_MAX 64
#define GOSSIP_META_MAX 256
#define GOSSIP_CERT_MAX 320
#define GOSSIP_USER_MAX 512
#define GOSSIP_KEY_LEN 32
#define GOSSIP_MSGS_MAX 64              /* messages in one UDP packet */
#define GOSSIP_PP_MEMBERS_MAX 16384     /* member records in one push-pull state */
#define GOSSIP_PP_BYTES_MAX (16u << 20) /* bytes of one push-pull state */
#define GOSSIP_AGE_MAX (400u * 24u * 3600u) /* seconds; older is sent as this */
/* Upper bound of one encoded message and of one push-pull member record. */
#define GOSSIP_MSG_MAX_LEN (GOSSIP_USER_MAX + GOSSIP_META_MAX + GOSSIP_CERT_MAX + 192)
#define GOSSIP_MEMBER_MAX_LEN (GOSSIP_META_MAX + GOSSIP_CERT_MAX + 160)

typedef enum gossip_type {
    GOSSIP_PING = 1,
    GOSSIP_PING_REQ = 2,
    GOSSIP_ACK = 3,
    GOSSIP_NACK = 4,
    GOSSIP_ALIVE = 5,
    GOSSIP_SUSPECT = 6,
    GOSSIP_DEAD = 7,
    GOSSIP_LEAVE = 8,
    GOSSIP_USER = 9,
    GOSSIP_PUSHPULL = 10,
    GOSSIP_WHO = 11,
} gossip_type;

/* One decoded message. meta, cert and data point into the decoded buffer. */
typedef struct gossip_msg {
    uint8_t type;
    uint32_t seq;                       /* PING, PING_REQ, ACK, NACK */
    uint8_t target_key[GOSSIP_KEY_LEN]; /* PING, PING_REQ */
    bool want_nack;                     /* PING_REQ */
    char name[GOSSIP_NAME_MAX + 1];     /* ALIVE..LEAVE: subject; USER: origin */
    uint8_t key[GOSSIP_KEY_LEN];        /* ALIVE..LEAVE */
    hms_addr addr;                      /* ALIVE */
    uint64_t incarnation;               /* ALIVE..LEAVE */
    char from[GOSSIP_NAME_MAX + 1];     /* SUSPECT, DEAD: the accuser */
    const uint8_t *meta;                /* ALIVE */
    uint16_t meta_len;
    const uint8_t *cert; /* ALIVE */
    uint16_t cert_len;
    uint8_t user_kind; /* USER */
    uint64_t user_seq;
    const uint8_t *data;
    uint16_t data_len;
} gossip_msg;

/* One member record of a push-pull state. */
typedef struct gossip_member {
    char name[GOSSIP_NAME_MAX + 1];
    uint8_t key[GOSSIP_KEY_LEN];
    hms_addr addr;
    uint64_t incarnation;
    uint8_t status; /* 0 alive, 1 suspect, 2 dead, 3 left */
    const uint8_t *meta;
    uint16_t meta_len;
    const uint8_t *cert;
    uint16_t cert_len;
    uint32_t age_s; /* seconds in this status as the sender saw it */
} gossip_member;

/* Encodes one message (without the version byte) into buf. Returns 0, or
 * -EINVAL for an invalid field, -ENOBUFS when cap is too small; *len is set
 * only on success. */
int gossip_encode_msg(const gossip_msg *m, uint8_t *buf, size_t cap, size_t *len);

/* Decodes a whole packet: the version byte, then 1..max messages up to the
 * end. Returns 0 with *n set, or -EBADMSG (malformed, trailing garbage, too
 * many messages) or -EPROTONOSUPPORT (other version). On error msgs[] holds
 * nothing usable. */
int gossip_decode_packet(const uint8_t *pkt, size_t len, gossip_msg *msgs, size_t max, size_t *n);

/* Push-pull state. The writer encodes into a caller buffer; cap bounds it. */
typedef struct gossip_pp_writer {
    uint8_t *buf;
    size_t cap, len;
    size_t count_pos; /* where the member array header goes */
    uint32_t count;
    bool overflow;
} gossip_pp_writer;

/* Starts a state: version, type, join flag, sender name. Reserves room for
 * the member count. Returns 0, -EINVAL or -ENOBUFS. */
int gossip_pp_begin(gossip_pp_writer *w, uint8_t *buf, size_t cap, bool join, const char *sender);
int gossip_pp_add(gossip_pp_writer *w, const gossip_member *m);
/* Writes the member count; *len is the encoded size. */
int gossip_pp_finish(gossip_pp_writer *w, size_t *len);

/* Reads a state. gossip_pp_open() validates the whole buffer first (every
 * record), so a caller that then iterates with gossip_pp_next() never sees
 * part of a malformed state. */
typedef struct gossip_pp_reader {
    const uint8_t *p, *end;
    uint32_t remaining;
} gossip_pp_reader;

int gossip_pp_open(gossip_pp_reader *r, const uint8_t *buf, size_t len, bool *join,
                   char sender[GOSSIP_NAME_MAX + 1], uint32_t *count);
/* Returns 1 with *m filled, 0 at the end, -EBADMSG if malformed. */
int gossip_pp_next(gossip_pp_reader *r, gossip_member *m);

/* Validates a name: 1..GOSSIP_NAME_MAX bytes, none below 0x20 or 0x7f. */
bool gossip_name_valid(const char *name, size_t len);

#endif
