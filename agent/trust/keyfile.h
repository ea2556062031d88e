/*
 * File helpers of the trust subsystem (private to agent/trust/): bounded
 * whole-file reads, atomic writes with a given mode, and the identity key
 * file with its permission check. Messages for people go to err (no
 * "error: " prefix); return values are 0 or a negative errno.
 */
#ifndef HMS_TRUST_KEYFILE_H
#define HMS_TRUST_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HMS_KEYFILE_MAX 65536 /* any key, CA or certificate file */

/* Reads at most cap bytes; a longer file is -EFBIG. */
int hms_file_read(const char *path, uint8_t *buf, size_t cap, size_t *len, char *err,
                  size_t errlen);

/* Writes data to path.tmp with mode, fsyncs, renames over path, fsyncs the
 * directory. exclusive: fail with -EEXIST when path exists. */
int hms_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          bool exclusive, char *err, size_t errlen);

/* Loads an Ed25519 secret key file, refusing one that group or others can
 * access. create: when the file does not exist, a new key is made and
 * written (mode 0600) with <dir of path>/node.pub beside it. */
int hms_keyfile_load(const char *path, bool create, uint8_t sk[64], bool *created, char *err,
                     size_t errlen);

#endif
