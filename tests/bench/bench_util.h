/*
 * What the benchmarks that drive real agents share: socket I/O with the
 * API's framing, a median helper, and starting agents from the hms-agent
 * and hmsctl next to the benchmark, with a fresh CA in a temp folder.
 * Header-only (static functions): each benchmark is one executable.
 */
#ifndef HMS_BENCH_UTIL_H
#define HMS_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto/api.h"

static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A connected stream socket to path, or -1. */
static inline int bench_connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path))
        return -1;
    memcpy(sa.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static inline int bench_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static inline int bench_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one API frame into buf (cap bytes); the payload length, or -1 (also
 * for an empty frame). */
static inline long bench_read_frame(int fd, uint8_t *buf, size_t cap)
{
    uint8_t hdr[4];
    if (bench_read_all(fd, hdr, 4))
        return -1;
    uint32_t len = hms_api_get_len(hdr);
    if (len == 0 || len > cap || bench_read_all(fd, buf, len))
        return -1;
    return (long)len;
}

/* qsort comparator for doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Agents started by a benchmark: a temp folder with the CA, one
 * certificate per name, data dirs, sockets and logs. */
typedef struct bench_agents {
    char dir[64];
    char agent[PATH_MAX + 16], ctl[PATH_MAX + 16];
} bench_agents;

/* Finds hms-agent and hmsctl next to this program, makes the temp folder
 * (prefix: "/tmp/bench-NAME") and a CA with certificates for the
 * comma-separated names. 0, or -1 with a message. */
static inline int bench_agents_init(bench_agents *b, const char *argv0, const char *tmpl,
                                    const char *names)
{
    char self[PATH_MAX], bindir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        snprintf(self, sizeof(self), "%s", argv0);
    else
        self[n] = '\0';
    snprintf(bindir, sizeof(bindir), "%s", dirname(self));
    snprintf(b->agent, sizeof(b->agent), "%s/hms-agent", bindir);
    snprintf(b->ctl, sizeof(b->ctl), "%s/hmsctl", bindir);
    if (access(b->agent, X_OK) || access(b->ctl, X_OK)) {
        fprintf(stderr, "error: no hms-agent/hmsctl in '%s'\n", bindir);
        return -1;
    }
    snprintf(b->dir, sizeof(b->dir), "%s.XXXXXX", tmpl);
    if (!mkdtemp(b->dir)) {
        fprintf(stderr, "error: cannot create '%s': %s\n", b->dir, strerror(errno));
        b->dir[0] = '\0';
        return -1;
    }
    char cmd[PATH_MAX * 2 + 256];
    snprintf(cmd, sizeof(cmd), "'%s' ca bootstrap --names %s --out '%s/pki' >/dev/null", b->ctl,
             names, b->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "error: '%s' failed\n", cmd);
        return -1;
    }
    return 0;
}

/* Starts agent NAME bound to bind (ADDR:PORT), joining join unless NULL,
 * with the given profile (NULL: the default); its socket path goes to sock.
 * The pid, or -1. */
static inline pid_t bench_agent_start(const bench_agents *b, const char *name, const char *bind,
                                      const char *join, const char *profile, char *sock,
                                      size_t cap)
{
    char d[128], ca[128], cert[128], key[128], log[128];
    snprintf(d, sizeof(d), "%s/%s", b->dir, name);
    snprintf(sock, cap, "%s/%s.sock", b->dir, name);
    snprintf(ca, sizeof(ca), "%s/pki/ca.pub", b->dir);
    snprintf(cert, sizeof(cert), "%s/pki/%s.cert", b->dir, name);
    snprintf(key, sizeof(key), "%s/pki/%s.key", b->dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", b->dir, name);
    const char *argv[24];
    int a = 0;
    argv[a++] = b->agent;
    argv[a++] = "--node", argv[a++] = name;
    argv[a++] = "--bind", argv[a++] = bind;
    argv[a++] = "--data-dir", argv[a++] = d;
    argv[a++] = "--socket", argv[a++] = sock;
    argv[a++] = "--ca", argv[a++] = ca;
    argv[a++] = "--cert", argv[a++] = cert;
    argv[a++] = "--node-key", argv[a++] = key;
    argv[a++] = "--log-level", argv[a++] = "warn";
    if (join)
        argv[a++] = "--join", argv[a++] = join;
    if (profile)
        argv[a++] = "--profile", argv[a++] = profile;
    argv[a] = NULL;
    pid_t p = fork();
    if (p == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(b->agent, (char *const *)argv);
        _exit(127);
    }
    return p < 0 ? -1 : p;
}

/* Waits up to seconds for a socket to accept a connection. 0 or -1. */
static inline int bench_wait_socket(const char *sock, double seconds)
{
    for (double t = 0; t < seconds; t += 0.1) {
        int fd = bench_connect_unix(sock);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        usleep(100000);
    }
    return -1;
}

/* Removes the temp folder (the agents must be stopped first). */
static inline void bench_agents_clean(bench_agents *b)
{
    if (!b->dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: cannot remove '%s'\n", b->dir);
    b->dir[0] = '\0';
}

#endif
