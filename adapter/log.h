/*
 * log — one line per event on stderr, in logfmt (default) or JSON.
 *
 * Every line carries a time, a level, and the route it concerns (or the
 * component, for process-wide events); message-level lines add message_id and
 * correlation_id. Lines are written with a single write(2), so threads never
 * interleave. The format is chosen once at start (log_set_format) before any
 * thread exists.
 *
 * Repeated lines are rate-limited, so a flood (a client hammering the
 * listener, a library complaining per connection) cannot drown the journal:
 * per call site (its format string, or the `site` given to log_event_site),
 * route and level, at most LOG_RATE_BURST lines per LOG_RATE_WINDOW_MS are
 * written; the rest are counted and later summarized in one line,
 * "<last message> (N similar lines suppressed)". Debug lines are never limited
 * (debug is asked for). Thread-safe; a suppressed line costs a vsnprintf and
 * an uncontended lock, no write.
 */
#ifndef SIDECAR_LOG_H
#define SIDECAR_LOG_H

#include <stdarg.h>
#include <stdbool.h>

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

#define LOG_RATE_BURST     20    /* lines per call site, route and level ... */
#define LOG_RATE_WINDOW_MS 10000 /* ... per window */

void log_event(enum log_level level, const struct log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_eventv(enum log_level level, const struct log_ctx *ctx, const char *fmt, va_list ap);
/* As log_event, rate-limited by `site` instead of fmt: for relays of another
 * library's messages (pass its format string), whose own fmt is always ours. */
void log_event_site(enum log_level level, const struct log_ctx *ctx, const void *site,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Writes the summaries of windows that ended with lines suppressed (all of
 * them, ended or not, with `all`: at exit). Call it now and then (the main
 * loop does every few seconds) so a flood that stopped is still reported. */
void log_flush_suppressed(bool all);

/* Warnings and errors are also handed to fn (the status page keeps each
 * route's last one), before rate limiting, on the logging thread: fn must be
 * quick and thread-safe. Set it before threads exist and clear it (NULL)
 * after they are gone. route and message_id may be NULL. */
typedef void (*log_observer_fn)(void *arg, enum log_level level, const char *route,
                                const char *message_id, const char *msg);
void log_set_observer(log_observer_fn fn, void *arg);

/* Tests: change the limit (burst 0 = no limit) and forget every count and
 * pending summary. Before any thread exists. */
void log_set_rate_limit(unsigned burst, int window_ms);

/* Shorthands for route-level events (route may be NULL for process events). */
#define log_info(rt, ...)  log_event(LOG_INFO, &(struct log_ctx){.route = (rt)}, __VA_ARGS__)
#define log_warn(rt, ...)  log_event(LOG_WARN, &(struct log_ctx){.route = (rt)}, __VA_ARGS__)
#define log_error(rt, ...) log_event(LOG_ERROR, &(struct log_ctx){.route = (rt)}, __VA_ARGS__)
#define log_debug(rt, ...) log_event(LOG_DEBUG, &(struct log_ctx){.route = (rt)}, __VA_ARGS__)

#endif
