/*
 * log — formats one event into a stack buffer and writes it with one write(2).
 *
 * logfmt:  time=… level=info route=orders message_id=… msg="published"
 * json:    {"time":"…","level":"info","route":"orders",…,"msg":"published"}
 * Values are quoted and escaped as each format requires; a line longer than
 * the buffer is truncated, never split.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_format log_format_current = LOG_FORMAT_LOGFMT;
static enum log_level log_level_min = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_format(enum log_format format)
{
    log_format_current = format;
}

void log_set_level(enum log_level level)
{
    log_level_min = level;
}

int log_parse_format(const char *name, enum log_format *out)
{
    if (strcmp(name, "logfmt") == 0)
        *out = LOG_FORMAT_LOGFMT;
    else if (strcmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

static void line_putc(struct line *l, char c)
{
    if (l->len < sizeof(l->buf) - 2) /* keep room for the newline */
        l->buf[l->len++] = c;
}

static void line_puts(struct line *l, const char *s)
{
    while (*s)
        line_putc(l, *s++);
}

/* A logfmt value needs quotes when empty or holding spaces, quotes or '='. */
static int logfmt_needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (; *s; s++)
        if (*s <= ' ' || *s == '"' || *s == '=' || *s == '\\')
            return 1;
    return 0;
}

static void line_put_escaped(struct line *l, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            line_putc(l, '\\');
            line_putc(l, (char)c);
        } else if (c == '\n') {
            line_puts(l, "\\n");
        } else if (c == '\r') {
            line_puts(l, "\\r");
        } else if (c == '\t') {
            line_puts(l, "\\t");
        } else if (c < 0x20) {
            char hex[8];
            snprintf(hex, sizeof(hex), "\\u%04x", c);
            line_puts(l, hex);
        } else {
            line_putc(l, (char)c);
        }
    }
}

static void line_field(struct line *l, const char *key, const char *value)
{
    if (value == NULL)
        return;
    if (log_format_current == LOG_FORMAT_JSON) {
        if (l->len > 1)
            line_putc(l, ',');
        line_putc(l, '"');
        line_puts(l, key);
        line_puts(l, "\":\"");
        line_put_escaped(l, value);
        line_putc(l, '"');
        return;
    }
    if (l->len > 0)
        line_putc(l, ' ');
    line_puts(l, key);
    line_putc(l, '=');
    if (logfmt_needs_quotes(value)) {
        line_putc(l, '"');
        line_put_escaped(l, value);
        line_putc(l, '"');
    } else {
        line_puts(l, value);
    }
}

void log_eventv(enum log_level level, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
    if (level < log_level_min)
        return;

    char msg[LOG_LINE_MAX / 2];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

    struct line l = {.len = 0};
    if (log_format_current == LOG_FORMAT_JSON)
        line_putc(&l, '{');
    line_field(&l, "time", when);
    line_field(&l, "level", level_names[level]);
    if (ctx != NULL) {
        line_field(&l, "route", ctx->route);
        line_field(&l, "message_id", ctx->message_id);
        line_field(&l, "correlation_id", ctx->correlation_id);
    }
    line_field(&l, "msg", msg);
    if (log_format_current == LOG_FORMAT_JSON)
        l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';

    ssize_t ignored = write(STDERR_FILENO, l.buf, l.len);
    (void)ignored;
}

void log_event(enum log_level level, const struct log_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_eventv(level, ctx, fmt, ap);
    va_end(ap);
}
