/*
 * Checks agent/compat/glibc_abi.c in the static musl build (built by the
 * nested HMS_AGENT_ONLY project, run by the outer ctest): each checked
 * function does the plain function's work when the destination is large
 * enough, and aborts with glibc's message, before writing, when it is not.
 * Every overflow case runs in a child process. Exit 0 when all pass.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, ...);
int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, va_list ap);
int __fprintf_chk(FILE *fp, int flag, const char *fmt, ...);
void *__memcpy_chk(void *dst, const void *src, size_t len, size_t dstlen);
char *__strncpy_chk(char *dst, const char *src, size_t len, size_t dstlen);
void __explicit_bzero_chk(void *dst, size_t len, size_t dstlen);

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

static int vcall(char *buf, size_t maxlen, size_t slen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = __vsnprintf_chk(buf, maxlen, 1, slen, fmt, ap);
    va_end(ap);
    return r;
}

/* Runs fn in a child with stderr captured; true when it died of SIGABRT
 * after printing glibc's message, and the guard byte after dst is intact. */
static int aborts(void (*fn)(unsigned char *dst), const char *what)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], STDERR_FILENO);
        close(pfd[0]);
        unsigned char dst[9];
        memset(dst, 0x5a, sizeof(dst));
        fn(dst);
        /* reached only when the check did not fire */
        _exit(dst[8] == 0x5a ? 3 : 4);
    }
    close(pfd[1]);
    char msg[256] = "";
    size_t have = 0;
    ssize_t n;
    while (have < sizeof(msg) - 1 && (n = read(pfd[0], msg + have, sizeof(msg) - 1 - have)) > 0)
        have += (size_t)n;
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT &&
             strstr(msg, "*** buffer overflow detected ***: terminated") != NULL;
    if (!ok)
        fprintf(stderr, "FAIL: %s does not abort (status %d, stderr '%s')\n", what, st, msg);
    return ok;
}

static const unsigned char src[16] = "0123456789abcdef";

static void ov_memcpy(unsigned char *d) { __memcpy_chk(d, src, 9, 8); }
static void ov_snprintf(unsigned char *d) { __snprintf_chk((char *)d, 9, 1, 8, "%s", "0123456789"); }
static void ov_vsnprintf(unsigned char *d) { vcall((char *)d, 9, 8, "%d", 123456789); }
static void ov_strncpy(unsigned char *d) { __strncpy_chk((char *)d, "0123456789", 9, 8); }
static void ov_bzero(unsigned char *d) { __explicit_bzero_chk(d, 9, 8); }

int main(void)
{
    char buf[16];
    unsigned char ub[16];

    /* within bounds: the plain functions' results */
    check(__snprintf_chk(buf, sizeof(buf), 1, sizeof(buf), "%s-%d", "ab", 42) == 5 &&
              strcmp(buf, "ab-42") == 0,
          "snprintf result");
    check(__snprintf_chk(buf, 4, 1, sizeof(buf), "%s", "truncated") == 9 && strcmp(buf, "tru") == 0,
          "snprintf truncation");
    check(vcall(buf, sizeof(buf), sizeof(buf), "%x", 255u) == 2 && strcmp(buf, "ff") == 0,
          "vsnprintf result");
    memset(ub, 0, sizeof(ub));
    check(__memcpy_chk(ub, src, 16, sizeof(ub)) == ub && memcmp(ub, src, 16) == 0, "memcpy result");
    check(__strncpy_chk(buf, "xyz", 6, sizeof(buf)) == buf && strcmp(buf, "xyz") == 0 &&
              buf[4] == 0 && buf[5] == 0,
          "strncpy result");
    __explicit_bzero_chk(ub, 16, sizeof(ub));
    check(ub[0] == 0 && ub[15] == 0, "explicit_bzero result");
    FILE *f = tmpfile();
    check(f && __fprintf_chk(f, 1, "%s %d", "n", 7) == 3, "fprintf result");
    if (f)
        fclose(f);

    /* one byte too many: abort before writing */
    failures += !aborts(ov_memcpy, "__memcpy_chk");
    failures += !aborts(ov_snprintf, "__snprintf_chk");
    failures += !aborts(ov_vsnprintf, "__vsnprintf_chk");
    failures += !aborts(ov_strncpy, "__strncpy_chk");
    failures += !aborts(ov_bzero, "__explicit_bzero_chk");

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("glibc ABI glue: 7 results and 5 overflow aborts as expected\n");
    return 0;
}
