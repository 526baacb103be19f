/*
 * log — one line per event on stderr, in logfmt (default) or JSON.
 *
 * Every line carries a time, a level, and the route it concerns (or the
 * component, for process-wide events); message-level lines add message_id and
 * correlation_id. Lines are written with a single write(2), so threads never
 * interleave. The format is chosen once at start (log_set_format) before any
 * thread exists.
 */
#ifndef SIDECAR_LOG_H
#define SIDECAR_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

/* Context fields of one line; any may be NULL. */
struct log_ctx {
    const char *route;
    const char *message_id;
    const char *correlation_id;
};

void log_set_format(enum log_format format);
void log_set_level(enum log_level level);
int log_parse_format(const char *name, enum log_format *out);

void log_event(enum log_level level, const struct log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_eventv(enum log_level level, const struct log_ctx *ctx, const char *fmt, va_list ap);

/* Shorthands for route-level events (route may be NULL for process events). */
#define log_info(rt, ...)                                                                       \
    log_event(LOG_INFO, &(struct log_ctx){.route = (rt)}, __VA_ARGS__)
#define log_warn(rt, ...)                                                                       \
    log_event(LOG_WARN, &(struct log_ctx){.route = (rt)}, __VA_ARGS__)
#define log_error(rt, ...)                                                                      \
    log_event(LOG_ERROR, &(struct log_ctx){.route = (rt)}, __VA_ARGS__)
#define log_debug(rt, ...)                                                                      \
    log_event(LOG_DEBUG, &(struct log_ctx){.route = (rt)}, __VA_ARGS__)

#endif
