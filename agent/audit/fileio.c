/*
 * File I/O seam of the audit log (see fileio.h): thin wrappers over the
 * system calls plus a fault injector shared by all threads.
 */
#include "agent/audit/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned fault_ops;
static uint64_t fault_left_before; /* matching calls to let through first */
static uint64_t fault_count;       /* failures left (UINT64_MAX: forever) */
static int fault_err;
static uint64_t calls[7];
static uint64_t faults;

/* Counts the call and returns 0 or the fault to inject for it. */
static int fault_check(unsigned op)
{
    int r = 0;
    pthread_mutex_lock(&fault_mu);
    for (int i = 0; i < 7; i++)
        if (op == (1u << i))
            calls[i]++;
    if ((fault_ops & op) && fault_count) {
        if (fault_left_before) {
            fault_left_before--;
        } else {
            r = fault_err;
            if (fault_count != UINT64_MAX)
                fault_count--;
            faults++;
        }
    }
    pthread_mutex_unlock(&fault_mu);
    return r;
}

void hms_fio_fail(unsigned ops, uint64_t nth, int err, uint64_t count)
{
    pthread_mutex_lock(&fault_mu);
    fault_ops = ops;
    fault_left_before = nth ? nth - 1 : 0;
    fault_err = err;
    fault_count = count ? count : UINT64_MAX;
    pthread_mutex_unlock(&fault_mu);
}

void hms_fio_fail_clear(void)
{
    pthread_mutex_lock(&fault_mu);
    fault_ops = 0;
    fault_count = 0;
    pthread_mutex_unlock(&fault_mu);
}

uint64_t hms_fio_calls(unsigned ops)
{
    uint64_t n = 0;
    pthread_mutex_lock(&fault_mu);
    for (int i = 0; i < 7; i++)
        if (ops & (1u << i))
            n += calls[i];
    pthread_mutex_unlock(&fault_mu);
    return n;
}

uint64_t hms_fio_faults(void)
{
    pthread_mutex_lock(&fault_mu);
    uint64_t n = faults;
    pthread_mutex_unlock(&fault_mu);
    return n;
}

int hms_fio_fail_parse(const char *spec)
{
    static const struct {
        const char *name;
        unsigned op;
    } ops[] = {{"open", HMS_FIO_OPEN},     {"write", HMS_FIO_WRITE},       {"fsync", HMS_FIO_FSYNC},
               {"rename", HMS_FIO_RENAME}, {"ftruncate", HMS_FIO_FTRUNCATE}, {"unlink", HMS_FIO_UNLINK},
               {"read", HMS_FIO_READ},     {"any", HMS_FIO_ANY}};
    char op[16], err[16];
    unsigned long long nth, count = 1;
    int n = sscanf(spec, "%15[a-z]:%llu:%15[A-Za-z]:%llu", op, &nth, err, &count);
    if (n < 3 || nth == 0)
        return -EINVAL;
    unsigned mask = 0;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(op, ops[i].name) == 0)
            mask = ops[i].op;
    int e = strcmp(err, "ENOSPC") == 0 ? -ENOSPC
            : strcmp(err, "EIO") == 0  ? -EIO
            : strcmp(err, "short") == 0 ? HMS_FIO_SHORT
                                        : 0;
    if (!mask || !e)
        return -EINVAL;
    hms_fio_fail(mask, nth, e, count);
    return 0;
}

int hms_fio_open(const char *path, int flags, mode_t mode)
{
    int f = fault_check(HMS_FIO_OPEN);
    if (f)
        return f == HMS_FIO_SHORT ? -EIO : f;
    int fd;
    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

int hms_fio_close(int fd)
{
    return close(fd) == 0 || errno == EINTR ? 0 : -errno;
}

int hms_fio_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const uint8_t *p = buf;
    while (n > 0) {
        int f = fault_check(HMS_FIO_WRITE);
        if (f == HMS_FIO_SHORT) {
            /* Store a part, then fail as a full disk would. */
            size_t part = n > 1 ? n / 2 : 0;
            if (part && pwrite(fd, p, part, off) < 0)
                return -errno;
            return -ENOSPC;
        }
        if (f)
            return f;
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int hms_fio_fsync(int fd)
{
    int f = fault_check(HMS_FIO_FSYNC);
    if (f)
        return f == HMS_FIO_SHORT ? -EIO : f;
    return fsync(fd) == 0 ? 0 : -errno;
}

int hms_fio_fsync_dir(const char *dir)
{
    int fd = hms_fio_open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    int r = hms_fio_fsync(fd);
    close(fd);
    return r;
}

int hms_fio_rename(const char *from, const char *to)
{
    int f = fault_check(HMS_FIO_RENAME);
    if (f)
        return f == HMS_FIO_SHORT ? -EIO : f;
    return rename(from, to) == 0 ? 0 : -errno;
}

int hms_fio_ftruncate(int fd, off_t len)
{
    int f = fault_check(HMS_FIO_FTRUNCATE);
    if (f)
        return f == HMS_FIO_SHORT ? -EIO : f;
    int r;
    do
        r = ftruncate(fd, len);
    while (r < 0 && errno == EINTR);
    return r == 0 ? 0 : -errno;
}

int hms_fio_unlink(const char *path)
{
    int f = fault_check(HMS_FIO_UNLINK);
    if (f)
        return f == HMS_FIO_SHORT ? -EIO : f;
    return unlink(path) == 0 ? 0 : -errno;
}

int hms_fio_mkdirs(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return -errno;
            buf[i] = c;
        }
    }
    return 0;
}

int hms_fio_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    int f = fault_check(HMS_FIO_READ);
    if (f)
        return f == HMS_FIO_SHORT ? -EIO : f;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return -EFBIG;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, b + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* the file shrank under us: return what was read */
        got += (size_t)r;
    }
    close(fd);
    *out = b;
    *len = got;
    return 0;
}
