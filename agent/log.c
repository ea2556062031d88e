/*
 * Agent logging (see log.h). Each line is formatted into a bounded stack
 * buffer and written with one write(2) so concurrent writers never mix.
 */
#include "agent/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static hms_log_level g_level = HMS_LOG_INFO;
static hms_log_format g_format = HMS_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int hms_log_level_parse(const char *s, hms_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (hms_log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = HMS_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

int hms_log_format_parse(const char *s, hms_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = HMS_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = HMS_LOG_JSON;
    else
        return -EINVAL;
    return 0;
}

void hms_log_setup(hms_log_level level, hms_log_format format)
{
    g_level = level;
    g_format = format;
}

bool hms_log_enabled(hms_log_level level)
{
    return level <= g_level;
}

/* Appends s to buf as the body of a JSON string, escaping what JSON needs. */
static size_t json_escape(char *buf, size_t cap, size_t pos, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
        } else {
            buf[pos++] = (char)c;
        }
    }
    return pos;
}

void hms_log(hms_log_level level, const char *fmt, ...)
{
    if (level > g_level)
        return;
    int saved_errno = errno;
    char msg[HMS_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[96];
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    char line[HMS_LOG_LINE_MAX + 128];
    size_t pos;
    if (g_format == HMS_LOG_JSON) {
        pos = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                               stamp, level_names[level]);
        pos = json_escape(line, sizeof(line) - 4, pos, msg);
        memcpy(line + pos, "\"}\n", 3);
        pos += 3;
    } else {
        int n = snprintf(line, sizeof(line), "%s %-5s %s\n", stamp, level_names[level], msg);
        pos = n < 0 ? 0 : (size_t)n;
        if (pos >= sizeof(line)) {
            pos = sizeof(line) - 1;
            line[pos - 1] = '\n';
        }
    }
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
    errno = saved_errno;
}
