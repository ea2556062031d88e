/*
 * glibc entry points for the static musl agent, and only for it (CMake adds
 * this file to hms-agent in the nested HMS_AGENT_ONLY build, never to glibc
 * builds, where these names belong to libc).
 *
 * Why: the agent links the distribution's static archives of libsodium,
 * libev, msgpack-c and jansson. Debian compiles them against glibc with
 * _FORTIFY_SOURCE=2, so where the compiler knew a destination's size they
 * call glibc's checked variants (__memcpy_chk, __snprintf_chk, ...) instead
 * of the plain functions. musl has no such variants. Each one here does what
 * glibc's does: it checks the size the compiler passed against the length
 * asked for, and on overflow prints glibc's message and aborts, before
 * touching memory; otherwise it calls the plain musl function. Other glibc
 * names those archives use (__errno_location, __ctype_b_loc, __lxstat,
 * __assert_fail, __stack_chk_fail) musl already provides.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, ...);
int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, va_list ap);
int __fprintf_chk(FILE *fp, int flag, const char *fmt, ...);
void *__memcpy_chk(void *dst, const void *src, size_t len, size_t dstlen);
char *__strncpy_chk(char *dst, const char *src, size_t len, size_t dstlen);
void __explicit_bzero_chk(void *dst, size_t len, size_t dstlen);

/* glibc's __chk_fail: one write(2), no stdio (the heap or stdio may be what
 * was overrun), then abort. */
static _Noreturn void chk_fail(void)
{
    static const char msg[] = "*** buffer overflow detected ***: terminated\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
    abort();
}

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, va_list ap)
{
    (void)flag; /* flag > 0 asks glibc to refuse %n in writable formats; musl's printf has no such mode */
    if (slen < maxlen)
        chk_fail();
    return vsnprintf(s, maxlen, fmt, ap);
}

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = __vsnprintf_chk(s, maxlen, flag, slen, fmt, ap);
    va_end(ap);
    return r;
}

int __fprintf_chk(FILE *fp, int flag, const char *fmt, ...)
{
    (void)flag; /* there is no destination size to check for a stream */
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(fp, fmt, ap);
    va_end(ap);
    return r;
}

void *__memcpy_chk(void *dst, const void *src, size_t len, size_t dstlen)
{
    if (dstlen < len)
        chk_fail();
    return memcpy(dst, src, len);
}

char *__strncpy_chk(char *dst, const char *src, size_t len, size_t dstlen)
{
    if (dstlen < len)
        chk_fail();
    return strncpy(dst, src, len);
}

void __explicit_bzero_chk(void *dst, size_t len, size_t dstlen)
{
    if (dstlen < len)
        chk_fail();
    explicit_bzero(dst, len);
}
