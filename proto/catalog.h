/*
 * Service catalog wire formats: a node's instance set (fetched whole over a
 * channel and used for the digest), and the small (version, digest) record
 * that rides in the member metadata. Also the limits every instance obeys
 * and the validation that enforces them, so the agent, the decoder and
 * libclient refuse the same things with the same words. No I/O here.
 *
 * Instance set, msgpack:
 *
 *   +-------+------------+-----------+--------------------------------+
 *   | array | node (str) | version   | instances: array of instance   |
 *   |  (3)  |  <= 64 B   | (uint 64) |   <= CAT_INSTANCES_MAX         |
 *   +-------+------------+-----------+--------------------------------+
 *
 *   instance = array(7) [ id str, name str, address str, port uint16,
 *                         status uint (0 passing, 1 warning, 2 critical),
 *                         tags array of str, meta map str -> str ]
 *
 * Canonical form: instances sorted by id, tags sorted and unique, meta
 * sorted by key with unique keys. The decoder refuses anything that is not
 * canonical, so one set has exactly one encoding and the digest (BLAKE2b-256
 * over a domain tag and the encoded instance array, without node and
 * version) is the same on every node.
 *
 * Member metadata record: array(2) [ version uint, digest bin(32) ].
 */
#ifndef HMS_PROTO_CATALOG_H
#define HMS_PROTO_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (bytes are without the NUL). docs/catalog.md explains each. */
#define CAT_NODE_MAX 64         /* node name, as SWIM_NAME_MAX */
#define CAT_ID_MAX 64           /* instance id */
#define CAT_NAME_MAX 63         /* service name: a DNS label */
#define CAT_ADDR_MAX 63         /* address: IP literal or host name */
#define CAT_TAG_MAX 63          /* one tag */
#define CAT_TAGS_MAX 16         /* tags per instance */
#define CAT_META_KEY_MAX 64     /* one metadata key */
#define CAT_META_VALUE_MAX 512  /* one metadata value */
#define CAT_META_PAIRS_MAX 16   /* metadata pairs per instance */
#define CAT_META_BYTES 1024     /* sum of key and value lengths per instance */
#define CAT_INSTANCES_MAX 64    /* instances per node */
#define CAT_DIGEST_LEN 32
#define CAT_META_RECORD_MAX 48  /* encoded member metadata record */
/* Upper bound of an encoded set: 64 instances of at most ~2.4 KB. */
#define CAT_SET_ENCODED_MAX (160 * 1024)

typedef enum cat_status {
    CAT_PASSING = 0,
    CAT_WARNING = 1,
    CAT_CRITICAL = 2,
} cat_status;

const char *cat_status_name(cat_status s); /* "passing", "warning", "critical" */
int cat_status_parse(const char *s, cat_status *out); /* 0 or -EINVAL */

typedef struct cat_kv {
    char *key;
    char *value;
} cat_kv;

/* One service instance. Strings are owned by the instance (heap). */
typedef struct cat_instance {
    char id[CAT_ID_MAX + 1];
    char name[CAT_NAME_MAX + 1];
    char address[CAT_ADDR_MAX + 1];
    uint16_t port;
    uint8_t status; /* cat_status */
    uint8_t ntags;
    uint8_t nmeta;
    char **tags;  /* ntags, sorted, unique */
    cat_kv *meta; /* nmeta, sorted by key, unique keys */
} cat_instance;

/* Zeroes *inst (no tags, no meta). */
void cat_instance_init(cat_instance *inst);
/* Frees the tags and metadata and zeroes *inst. */
void cat_instance_clear(cat_instance *inst);
/* Deep copy into *dst (initialised by this call). 0 or -ENOMEM (dst empty). */
int cat_instance_copy(cat_instance *dst, const cat_instance *src);
/* Adds a tag (kept sorted; a duplicate is ignored). 0, -EINVAL or -ENOMEM. */
int cat_instance_add_tag(cat_instance *inst, const char *tag, char *err, size_t errlen);
/* Adds key=value (kept sorted). -EEXIST for a duplicate key. */
int cat_instance_add_meta(cat_instance *inst, const char *key, const char *value, char *err,
                          size_t errlen);
/* Looks up a metadata value; NULL when absent. */
const char *cat_instance_meta(const cat_instance *inst, const char *key);
bool cat_instance_has_tag(const cat_instance *inst, const char *tag);
bool cat_instance_equal(const cat_instance *a, const cat_instance *b);

/* Validation. Each returns 0, or -EINVAL / -E2BIG with a message for people
 * in err naming the subject and the limit ("service name 'x' is longer than
 * 63 bytes (limit name_max)"). */
int cat_check_name(const char *name, char *err, size_t errlen);
int cat_check_id(const char *id, char *err, size_t errlen);
int cat_check_address(const char *addr, char *err, size_t errlen);
int cat_check_tag(const char *tag, char *err, size_t errlen);
int cat_check_meta(const char *key, const char *value, char *err, size_t errlen);
/* Whole instance: every field, every limit. */
int cat_instance_check(const cat_instance *inst, char *err, size_t errlen);

/* Writes the canonical encoding of one set into a heap buffer (*out, *len;
 * free() it). Instances must be sorted by id. 0, -EINVAL or -ENOMEM. */
int cat_set_encode(const char *node, uint64_t version, const cat_instance *inst, size_t n,
                   uint8_t **out, size_t *len);

/* Digest of a set's instances (canonical; independent of node and version). */
int cat_set_digest(const cat_instance *inst, size_t n, uint8_t digest[CAT_DIGEST_LEN]);

/* A decoded set: heap instances. cat_decoded_clear frees them. */
typedef struct cat_decoded {
    char node[CAT_NODE_MAX + 1];
    uint64_t version;
    size_t n;
    cat_instance *inst;
    uint8_t digest[CAT_DIGEST_LEN]; /* computed from the decoded instances */
} cat_decoded;

/* Decodes and validates a set. Refuses trailing bytes, non-canonical order,
 * anything over a limit. 0 or -EBADMSG / -ENOMEM; on error *out is empty. */
int cat_set_decode(const uint8_t *buf, size_t len, cat_decoded *out);
void cat_decoded_clear(cat_decoded *d);

/* Durations as people write them: "500ms", "5s", "2m", "1h" (a bare
 * number is seconds). 0 or -EINVAL; the result is in milliseconds, at most
 * one day. */
int cat_duration_parse(const char *s, uint32_t *ms);

/* Member metadata record. encode: buf of CAT_META_RECORD_MAX; returns the
 * length or a negative code. decode: 0 or -EBADMSG. */
int cat_meta_encode(uint64_t version, const uint8_t digest[CAT_DIGEST_LEN], uint8_t *buf,
                    size_t cap);
int cat_meta_decode(const uint8_t *buf, size_t len, uint64_t *version,
                    uint8_t digest[CAT_DIGEST_LEN]);

#endif
