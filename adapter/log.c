/*
 * log — formats one event into a stack buffer and writes it with one write(2).
 *
 * logfmt:  time=… level=info route=orders message_id=… msg="published"
 * json:    {"time":"…","level":"info","route":"orders",…,"msg":"published"}
 * Values are quoted and escaped as each format requires; a line longer than
 * the buffer is truncated, never split, and stays valid: an escape or a UTF-8
 * character is written whole or not at all, the open value is closed, and in
 * JSON invalid UTF-8 becomes U+FFFD, so every line parses.
 */
#include "log.h"

#include <stdbool.h>
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

/* Bytes kept back for what closes a line: a value's quote, '}' and '\n'. */
#define LINE_RESERVE 4

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool full; /* something did not fit: write nothing more but the closers */
};

/* Appends all n bytes, or none (and the line is full from then on). */
static void line_put(struct line *l, const char *s, size_t n)
{
    if (l->full || l->len + n > sizeof(l->buf) - LINE_RESERVE) {
        l->full = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_putc(struct line *l, char c)
{
    line_put(l, &c, 1);
}

static void line_puts(struct line *l, const char *s)
{
    line_put(l, s, strlen(s));
}

/* A closing quote, '}' or '\n': always fits, from the reserve. */
static void line_close(struct line *l, char c)
{
    l->buf[l->len++] = c;
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if it is not one. */
static size_t utf8_length(const unsigned char *s)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || s[0] >= 0xf8)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
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
    while (*s && !l->full) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            line_put(l, esc, 2);
        } else if (c == '\n') {
            line_puts(l, "\\n");
        } else if (c == '\r') {
            line_puts(l, "\\r");
        } else if (c == '\t') {
            line_puts(l, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            line_puts(l, esc);
        } else if (c >= 0x80) {
            size_t n = utf8_length((const unsigned char *)s);
            if (n == 0) {
                if (log_format_current == LOG_FORMAT_JSON)
                    line_puts(l, "\\ufffd");
                else
                    line_putc(l, (char)c);
                n = 1;
            } else {
                line_put(l, s, n);
            }
            s += n;
            continue;
        } else {
            line_putc(l, (char)c);
        }
        s++;
    }
}

/* Writes one key and value; once the line is full, fields are dropped whole. */
static void line_field(struct line *l, const char *key, const char *value)
{
    if (value == NULL || l->full)
        return;
    char head[64];
    if (log_format_current == LOG_FORMAT_JSON) {
        snprintf(head, sizeof(head), "%s\"%s\":\"", l->len > 1 ? "," : "", key);
        line_puts(l, head);
        if (l->full)
            return;
        line_put_escaped(l, value);
        line_close(l, '"');
        return;
    }
    bool quoted = logfmt_needs_quotes(value);
    snprintf(head, sizeof(head), "%s%s=%s", l->len > 0 ? " " : "", key, quoted ? "\"" : "");
    line_puts(l, head);
    if (l->full)
        return;
    if (!quoted) {
        line_puts(l, value);
        return;
    }
    line_put_escaped(l, value);
    line_close(l, '"');
}

void log_eventv(enum log_level level, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
    if (level < log_level_min)
        return;

    char msg[LOG_LINE_MAX / 2];
    if (vsnprintf(msg, sizeof(msg), fmt, ap) >= (int)sizeof(msg)) {
        /* Cut short: drop a UTF-8 character the cut split, rather than mangle it. */
        size_t i = strlen(msg);
        while (i > 0 && ((unsigned char)msg[i - 1] & 0xc0) == 0x80)
            i--;
        if (i > 0 && (unsigned char)msg[i - 1] >= 0xc0 &&
            utf8_length((const unsigned char *)msg + i - 1) == 0)
            msg[i - 1] = '\0';
    }

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
        line_close(&l, '}');
    line_close(&l, '\n');

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
