/*
 * Agent logging: one line per event on stderr, with a UTC timestamp and a
 * level, as text ("2026-12-04T20:30:01.123Z info  swim: n3 is dead") or as
 * JSON lines ({"ts":...,"level":"info","msg":"..."}) for log collectors.
 * Lines below the configured level cost one comparison. Not thread-safe
 * beyond what one write(2) per line gives: worker threads may log, lines
 * never interleave (each is written whole, up to HMS_LOG_LINE_MAX bytes,
 * longer messages are cut).
 */
#ifndef HMS_AGENT_LOG_H
#define HMS_AGENT_LOG_H

#include <stdbool.h>

#define HMS_LOG_LINE_MAX 2048

typedef enum hms_log_level {
    HMS_LOG_ERROR = 0,
    HMS_LOG_WARN = 1,
    HMS_LOG_INFO = 2,
    HMS_LOG_DEBUG = 3,
} hms_log_level;

typedef enum hms_log_format {
    HMS_LOG_TEXT = 0,
    HMS_LOG_JSON = 1,
} hms_log_format;

/* "error", "warn", "info", "debug" -> level; returns 0 or -EINVAL. */
int hms_log_level_parse(const char *s, hms_log_level *out);
/* "text", "json" -> format; returns 0 or -EINVAL. */
int hms_log_format_parse(const char *s, hms_log_format *out);

void hms_log_setup(hms_log_level level, hms_log_format format);
bool hms_log_enabled(hms_log_level level);

void hms_log(hms_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define HMS_ERROR(...) hms_log(HMS_LOG_ERROR, __VA_ARGS__)
#define HMS_WARN(...) hms_log(HMS_LOG_WARN, __VA_ARGS__)
#define HMS_INFO(...) hms_log(HMS_LOG_INFO, __VA_ARGS__)
#define HMS_DEBUG(...)                                                                             \
    do {                                                                                           \
        if (hms_log_enabled(HMS_LOG_DEBUG))                                                        \
            hms_log(HMS_LOG_DEBUG, __VA_ARGS__);                                                   \
    } while (0)

#endif
