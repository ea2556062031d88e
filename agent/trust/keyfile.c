/*
 * Trust files on disk: bounded reads, atomic writes, and the node identity
 * key (created on first start, refused when group or others can read it).
 */
#include "agent/trust/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "proto/cert.h"

/* Reads all of an open regular file into buf (at most cap bytes). */
static int read_fd(int fd, const char *path, uint8_t *buf, size_t cap, size_t *len, char *err,
                   size_t errlen)
{
    size_t off = 0;
    for (;;) {
        if (off == cap) {
            /* Full: anything more means the file is larger than the bound. */
            uint8_t extra;
            ssize_t r = read(fd, &extra, 1);
            if (r > 0) {
                snprintf(err, errlen, "cannot read '%s': larger than %zu bytes", path, cap);
                return -EFBIG;
            }
            break;
        }
        ssize_t r = read(fd, buf + off, cap - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot read '%s': %s", path, strerror(e));
            return -e;
        }
        if (r == 0)
            break;
        off += (size_t)r;
    }
    *len = off;
    return 0;
}

/* Opens path for reading; checks it is a regular file. */
static int open_regular(const char *path, struct stat *st, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(e));
        return -e;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "cannot read '%s': not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    return fd;
}

int hms_file_read(const char *path, uint8_t *buf, size_t cap, size_t *len, char *err,
                  size_t errlen)
{
    struct stat st;
    int fd = open_regular(path, &st, err, errlen);
    if (fd < 0)
        return fd;
    int rc = read_fd(fd, path, buf, cap, len, err, errlen);
    close(fd);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char copy[PATH_MAX];
    if (strlen(path) >= sizeof(copy))
        return -ENAMETOOLONG;
    strcpy(copy, path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int hms_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          bool exclusive, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    const uint8_t *p = data;
    size_t off = 0;
    int fd, e;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "cannot write '%s': path too long", path);
        return -ENAMETOOLONG;
    }
    if (exclusive && access(path, F_OK) == 0) {
        snprintf(err, errlen, "cannot write '%s': file exists", path);
        return -EEXIST;
    }
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        e = errno;
        snprintf(err, errlen, "cannot create '%s': %s", tmp, strerror(e));
        return -e;
    }
    /* The umask must not widen or narrow what we asked for. */
    if (fchmod(fd, mode) != 0)
        goto fail;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail;
        off += (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    fsync_dir_of(path);
    return 0;
fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(e));
    return -e;
}

static int create_key(const char *path, uint8_t sk[64], char *err, size_t errlen)
{
    char text[HMS_KEY_SECRET_TEXT_LEN + 1], pub[HMS_KEY_PUB_TEXT_LEN + 1], pubpath[PATH_MAX],
        copy[PATH_MAX];
    uint8_t pk[32];
    int rc;

    crypto_sign_keypair(pk, sk);
    hms_key_format_secret(sk, text, sizeof(text));
    rc = hms_file_write_atomic(path, text, strlen(text), 0600, true, err, errlen);
    sodium_memzero(text, sizeof(text));
    if (rc < 0)
        return rc;
    if (strlen(path) >= sizeof(copy))
        return 0;
    strcpy(copy, path);
    if (snprintf(pubpath, sizeof(pubpath), "%s/node.pub", dirname(copy)) < (int)sizeof(pubpath)) {
        hms_key_format_pub(pk, pub, sizeof(pub));
        char ignored[256];
        /* node.pub is a convenience copy: failing to write it is not fatal. */
        hms_file_write_atomic(pubpath, pub, strlen(pub), 0644, false, ignored, sizeof(ignored));
    }
    return 0;
}

int hms_keyfile_load(const char *path, bool create, uint8_t sk[64], bool *created, char *err,
                     size_t errlen)
{
    uint8_t buf[4096];
    size_t len = 0;
    struct stat st;
    int fd, rc;

    *created = false;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT && create) {
            rc = create_key(path, sk, err, errlen);
            if (rc == 0)
                *created = true;
            return rc;
        }
        snprintf(err, errlen, "cannot open key file '%s': %s", path, strerror(e));
        return -e;
    }
    /* Checked on the open file, so the file read is the file checked. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cannot use key file '%s': not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "key file '%s' is accessible by group or others (mode %04o): run chmod 600 '%s'",
                 path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -EPERM;
    }
    rc = read_fd(fd, path, buf, sizeof(buf), &len, err, errlen);
    close(fd);
    if (rc == 0 && hms_key_parse_secret((const char *)buf, len, sk) != HMS_CERT_OK) {
        snprintf(err, errlen, "cannot use key file '%s': not an ed25519-secret key", path);
        rc = -EINVAL;
    }
    sodium_memzero(buf, sizeof(buf));
    return rc;
}
