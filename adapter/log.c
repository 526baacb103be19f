/*
 * log — formats one event into a stack buffer and writes it with one write(2).
 *
 * logfmt:  time=… level=info route=orders message_id=… msg="published"
 * json:    {"time":"…","level":"info","route":"orders",…,"msg":"published"}
 * Values are quoted and escaped as each format requires; a line longer than
 * the buffer is truncated, never split, and stays valid: an escape or a UTF-8
 * character is written whole or not at all, the open value is closed, and in
 * JSON invalid UTF-8 becomes U+FFFD, so every line parses.
 *
 * Rate limit: a small open-addressed table of windows keyed by (call site,
 * route, level), under one mutex held only to count. A key that writes more
 * than LOG_RATE_BURST lines in its window has the rest counted; the count is
 * written, with the last message written, when the key's next window starts
 * (on its next line, or at log_flush_suppressed). A full table evicts the
 * oldest window of the probe range, writing its summary first: nothing
 * suppressed goes unreported.
 */
#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Writes one complete line: time, level, the context, msg. */
static void write_line(enum log_level level, const char *route, const char *message_id,
                       const char *correlation_id, const char *msg)
{
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
    line_field(&l, "route", route);
    line_field(&l, "message_id", message_id);
    line_field(&l, "correlation_id", correlation_id);
    line_field(&l, "msg", msg);
    if (log_format_current == LOG_FORMAT_JSON)
        line_close(&l, '}');
    line_close(&l, '\n');

    ssize_t ignored = write(STDERR_FILENO, l.buf, l.len);
    (void)ignored;
}

/* ---- rate limit ------------------------------------------------------------ */

#define RATE_SLOTS 256 /* distinct flooding keys at once; more evict the oldest */
#define RATE_PROBE 8
#define SAMPLE_MAX 200 /* what the summary quotes of the last line written */
#define ROUTE_MAX  104 /* route names are at most 100 characters */

struct rate_slot {
    const void *site; /* NULL: free */
    const char *route;
    enum log_level level;
    int64_t window_start_ms;
    unsigned written;
    unsigned suppressed;
    char route_copy[ROUTE_MAX];
    char sample[SAMPLE_MAX];
};

/* A summary to write once the lock is released. */
struct rate_summary {
    unsigned suppressed;
    enum log_level level;
    bool has_route;
    char route[ROUTE_MAX];
    char sample[SAMPLE_MAX];
};

static struct rate_slot rate_slots[RATE_SLOTS];
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned rate_burst = LOG_RATE_BURST;
static int64_t rate_window_ms = LOG_RATE_WINDOW_MS;

void log_set_rate_limit(unsigned burst, int window_ms)
{
    memset(rate_slots, 0, sizeof(rate_slots)); /* pending summaries are dropped */
    rate_burst = burst;
    rate_window_ms = window_ms;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t rate_hash(const void *site, const char *route, enum log_level level)
{
    uint64_t h = (uint64_t)(uintptr_t)site * 0x9e3779b97f4a7c15ull;
    h ^= ((uint64_t)(uintptr_t)route + (uint64_t)level) * 0xc2b2ae3d27d4eb4full;
    return (size_t)(h >> 32) % RATE_SLOTS;
}

/* Moves a slot's pending count into *out (if any) and starts a new window. */
static void rate_take_summary(struct rate_slot *slot, int64_t now, struct rate_summary *out)
{
    if (slot->suppressed > 0) {
        out->suppressed = slot->suppressed;
        out->level = slot->level;
        out->has_route = slot->route != NULL;
        memcpy(out->route, slot->route_copy, sizeof(out->route));
        memcpy(out->sample, slot->sample, sizeof(out->sample));
    }
    slot->window_start_ms = now;
    slot->written = 0;
    slot->suppressed = 0;
}

static void write_summary(const struct rate_summary *sum)
{
    if (sum->suppressed == 0)
        return;
    char msg[SAMPLE_MAX + 64];
    snprintf(msg, sizeof(msg), "%s (%u similar lines suppressed)", sum->sample, sum->suppressed);
    write_line(sum->level, sum->has_route ? sum->route : NULL, NULL, NULL, msg);
}

/* A free slot beats a used one; among used ones, the oldest window. */
static bool better_victim(const struct rate_slot *a, const struct rate_slot *b)
{
    if (b->site == NULL)
        return false;
    return a->site == NULL || a->window_start_ms < b->window_start_ms;
}

/* Keeps the start of msg, cut between UTF-8 characters, with "…" when cut. */
static void copy_sample(char *dst, const char *msg)
{
    size_t len = strlen(msg);
    if (len < SAMPLE_MAX) {
        memcpy(dst, msg, len + 1);
        return;
    }
    size_t keep = SAMPLE_MAX - 4; /* room for "…" (3 bytes) and the NUL */
    while (keep > 0 && ((unsigned char)msg[keep] & 0xc0) == 0x80)
        keep--;
    memcpy(dst, msg, keep);
    memcpy(dst + keep, "\xe2\x80\xa6", 4);
}

/* Counts one line against its key. True: write it (msg is kept as the
 * sample). *pending receives a summary to write first, if one is due. */
static bool rate_admit(const void *site, const char *route, enum log_level level, const char *msg,
                       struct rate_summary *pending)
{
    int64_t now = monotonic_ms();
    pthread_mutex_lock(&rate_lock);
    size_t home = rate_hash(site, route, level);
    struct rate_slot *slot = NULL, *victim = NULL;
    for (size_t i = 0; i < RATE_PROBE && slot == NULL; i++) {
        struct rate_slot *s = &rate_slots[(home + i) % RATE_SLOTS];
        if (s->site == site && s->route == route && s->level == level)
            slot = s;
        else if (victim == NULL || better_victim(s, victim))
            victim = s;
    }
    if (slot == NULL) { /* a new key: take a free slot or evict the oldest */
        slot = victim;
        rate_take_summary(slot, now, pending);
        slot->site = site;
        slot->route = route;
        slot->level = level;
        snprintf(slot->route_copy, sizeof(slot->route_copy), "%s", route ? route : "");
    } else if (now - slot->window_start_ms >= rate_window_ms) {
        rate_take_summary(slot, now, pending);
    }
    bool admit = slot->written < rate_burst;
    if (admit) {
        slot->written++;
        copy_sample(slot->sample, msg);
    } else {
        slot->suppressed++;
    }
    pthread_mutex_unlock(&rate_lock);
    return admit;
}

void log_flush_suppressed(bool all)
{
    int64_t now = monotonic_ms();
    for (size_t i = 0; i < RATE_SLOTS; i++) {
        struct rate_summary sum = {0};
        pthread_mutex_lock(&rate_lock);
        struct rate_slot *s = &rate_slots[i];
        if (s->site != NULL && s->suppressed > 0 &&
            (all || now - s->window_start_ms >= rate_window_ms))
            rate_take_summary(s, now, &sum);
        pthread_mutex_unlock(&rate_lock);
        write_summary(&sum);
    }
}

/* ---- events ------------------------------------------------------------------ */

static log_observer_fn observer;
static void *observer_arg;

void log_set_observer(log_observer_fn fn, void *arg)
{
    observer = fn;
    observer_arg = arg;
}

static void log_site_v(enum log_level level, const struct log_ctx *ctx, const void *site,
                       const char *fmt, va_list ap)
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

    const char *route = ctx ? ctx->route : NULL;
    if (level >= LOG_WARN && observer)
        observer(observer_arg, level, route, ctx ? ctx->message_id : NULL, msg);
    if (site == NULL)
        site = fmt;
    if (level > LOG_DEBUG && rate_burst > 0) {
        struct rate_summary pending = {0};
        bool admit = rate_admit(site, route, level, msg, &pending);
        write_summary(&pending);
        if (!admit)
            return;
    }
    write_line(level, route, ctx ? ctx->message_id : NULL, ctx ? ctx->correlation_id : NULL, msg);
}

void log_eventv(enum log_level level, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
    log_site_v(level, ctx, fmt, fmt, ap);
}

void log_event(enum log_level level, const struct log_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_site_v(level, ctx, fmt, fmt, ap);
    va_end(ap);
}

void log_event_site(enum log_level level, const struct log_ctx *ctx, const void *site,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_site_v(level, ctx, site, fmt, ap);
    va_end(ap);
}
