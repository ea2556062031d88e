/*
 * The audit log's only way to the file system. Every open, write, fsync,
 * rename, truncate, unlink and read of audit files goes through these
 * wrappers, so tests can make the N-th call of a kind fail with ENOSPC, EIO
 * or a short write (SQLite's os.c idea) and check that the log survives.
 *
 * All functions return 0 (or a count/fd) or a negative errno-style code, and
 * retry EINTR themselves. Thread-safe: the writer thread and the loop both
 * call them.
 *
 * Fault injection is also reachable without recompiling: the environment
 * variable HMS_AUDIT_FAULT="op:nth:err[:count]" (op one of open, write,
 * fsync, rename, ftruncate, unlink, read, any; err one of ENOSPC, EIO,
 * short) arms it when the audit log starts.
 */
#ifndef HMS_AUDIT_FILEIO_H
#define HMS_AUDIT_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum hms_fio_op {
    HMS_FIO_OPEN = 1 << 0,
    HMS_FIO_WRITE = 1 << 1,
    HMS_FIO_FSYNC = 1 << 2,
    HMS_FIO_RENAME = 1 << 3,
    HMS_FIO_FTRUNCATE = 1 << 4,
    HMS_FIO_UNLINK = 1 << 5,
    HMS_FIO_READ = 1 << 6,
    HMS_FIO_ANY = 0x7f,
};

#define HMS_FIO_SHORT 1 /* fault kind: a write stores only part of its bytes */

int hms_fio_open(const char *path, int flags, mode_t mode); /* fd or -errno */
int hms_fio_close(int fd);
/* Writes all n bytes at offset off; a short write (real or injected) that
 * makes no progress is reported as -EIO; partial progress is retried. */
int hms_fio_pwrite_all(int fd, const void *buf, size_t n, off_t off);
int hms_fio_fsync(int fd);
int hms_fio_fsync_dir(const char *dir);
int hms_fio_rename(const char *from, const char *to);
int hms_fio_ftruncate(int fd, off_t len);
int hms_fio_unlink(const char *path);
int hms_fio_mkdirs(const char *path, mode_t mode); /* mkdir -p */
/* Reads a whole file (at most max bytes, else -EFBIG) into a new buffer. */
int hms_fio_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/* Fault injection: the nth (1-based, counted from now) call of any op in
 * `ops` fails with err (-ENOSPC, -EIO) or HMS_FIO_SHORT, and so do the
 * count-1 matching calls after it (count 0: every one after it). */
void hms_fio_fail(unsigned ops, uint64_t nth, int err, uint64_t count);
void hms_fio_fail_clear(void);
/* Parses "op:nth:err[:count]" and arms it; 0 or -EINVAL. */
int hms_fio_fail_parse(const char *spec);
/* Calls made of the ops in mask since start (for tests counting steps). */
uint64_t hms_fio_calls(unsigned ops);
uint64_t hms_fio_faults(void); /* faults injected so far */

#endif
