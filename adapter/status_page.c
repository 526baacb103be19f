/*
 * status_page — see status_page.h. Layout, top to bottom: the system, its
 * version, uptime and overall state; the broker connections; one row per
 * route with a coloured state (green ready, amber degraded, red failing),
 * its counts over the last minute and since start, its queues' depths, its
 * lag and its last error. Missing values show as "–".
 */
#include "status_page.h"

#include "util.h"

#include <math.h>
#include <string.h>

void html_escape(struct buf *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            buf_puts(out, "&amp;");
            break;
        case '<':
            buf_puts(out, "&lt;");
            break;
        case '>':
            buf_puts(out, "&gt;");
            break;
        case '"':
            buf_puts(out, "&quot;");
            break;
        case '\'':
            buf_puts(out, "&#39;");
            break;
        default:
            buf_append(out, s, 1);
        }
    }
}

/* The string member key of o, escaped ("–" when absent or null). */
static void text(struct buf *out, const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s)
        html_escape(out, s);
    else
        buf_puts(out, "–");
}

static void number(struct buf *out, const json_t *v)
{
    if (json_is_integer(v))
        buf_printf(out, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        buf_printf(out, "%.1f", json_real_value(v));
    else
        buf_puts(out, "–");
}

static void duration(struct buf *out, double s)
{
    if (isnan(s) || s < 0)
        buf_puts(out, "–");
    else if (s < 120)
        buf_printf(out, "%.0fs", s);
    else if (s < 7200)
        buf_printf(out, "%.0fm", s / 60);
    else if (s < 172800)
        buf_printf(out, "%.1fh", s / 3600);
    else
        buf_printf(out, "%.1fd", s / 86400);
}

/* The CSS class of a state: ok, warn or bad. */
static const char *state_class(const char *state)
{
    if (state == NULL)
        return "bad";
    if (strcmp(state, "ready") == 0 || strcmp(state, "up") == 0 || strcmp(state, "standby") == 0)
        return "ok"; /* standby: another sidecar runs the route, as it should (lease.h) */
    if (strcmp(state, "pacing") == 0 || strcmp(state, "paused") == 0 ||
        strcmp(state, "draining") == 0 || strcmp(state, "circuit half-open") == 0 ||
        strcmp(state, "blocked") == 0)
        return "warn";
    return "bad";
}

static void badge(struct buf *out, const char *state)
{
    buf_printf(out, "<span class=\"badge %s\">", state_class(state));
    html_escape(out, state ? state : "unknown");
    buf_puts(out, "</span>");
}

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}"
    "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}"
    ".meta{color:#555}table{border-collapse:collapse;width:100%;background:#fff}"
    "th,td{border:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0;font-weight:600}td.n{text-align:right;font-variant-numeric:"
    "tabular-nums}.badge{display:inline-block;padding:.1em .5em;border-radius:.8em;"
    "font-weight:600;white-space:nowrap}.ok{background:#d8f3dc;color:#1b4332}"
    ".warn{background:#fff3bf;color:#7c5e00}.bad{background:#ffd6d6;color:#8b0000}"
    ".detail,.err{font-size:.9em;color:#555}.err{color:#8b0000}.q{white-space:nowrap}"
    "small{color:#777}";

static void header(struct buf *out, const json_t *st)
{
    buf_printf(out,
               "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta http-equiv=\"refresh\" content=\"%d\">"
               "<meta name=\"viewport\" content=\"width=device-width\"><title>",
               STATUS_PAGE_REFRESH);
    text(out, st, "system");
    buf_printf(out, " — amqp-sidecar</title><style>%s</style></head><body>\n<h1>", style);
    text(out, st, "system");
    buf_puts(out, " ");
    badge(out, json_string_value(json_object_get(st, "status")));
    buf_puts(out, "</h1>\n<p class=\"meta\">amqp-sidecar ");
    text(out, st, "version");
    buf_puts(out, " · up ");
    duration(out, json_number_value(json_object_get(st, "uptime_seconds")));
    buf_puts(out, " · page of ");
    text(out, st, "generated_at");
    buf_printf(out, " (reloads every %ds)</p>\n", STATUS_PAGE_REFRESH);
}

static void connections(struct buf *out, const json_t *st)
{
    buf_puts(out, "<h2>Broker connections</h2>\n<table><tr><th>connection</th><th>state</th>"
                  "<th>node</th><th>reconnects</th></tr>\n");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(st, "connections"), i, c)
    {
        buf_puts(out, "<tr><td>");
        text(out, c, "name");
        buf_puts(out, "</td><td>");
        badge(out, json_string_value(json_object_get(c, "state")));
        buf_puts(out, "</td><td class=\"detail\">");
        text(out, c, "detail");
        buf_puts(out, "</td><td class=\"n\">");
        number(out, json_object_get(c, "reconnects"));
        buf_puts(out, "</td></tr>\n");
    }
    buf_puts(out, "</table>\n");
}

/* "in / out / failed" of one counts object. */
static void counts(struct buf *out, const json_t *c)
{
    number(out, json_object_get(c, "in"));
    buf_puts(out, " / ");
    number(out, json_object_get(c, "out"));
    buf_puts(out, " / ");
    number(out, json_object_get(c, "failed"));
}

static void queues(struct buf *out, const json_t *r)
{
    size_t i;
    const json_t *q;
    json_array_foreach(json_object_get(r, "queues"), i, q)
    {
        bool missing = json_is_true(json_object_get(q, "missing"));
        const char *role = json_string_value(json_object_get(q, "role"));
        const json_t *msgs = json_object_get(q, "messages");
        bool alarming = missing || (role && strcmp(role, "dlq") == 0 && json_integer_value(msgs));
        buf_printf(out, "<div class=\"q%s\" title=\"", alarming ? " err" : "");
        text(out, q, "name");
        buf_puts(out, "\">");
        html_escape(out, role);
        buf_puts(out, ": ");
        if (missing)
            buf_puts(out, "<b>missing</b>");
        else
            number(out, msgs);
        buf_puts(out, " <small>");
        text(out, q, "name");
        buf_puts(out, "</small></div>");
    }
}

static void route_row(struct buf *out, const json_t *r)
{
    buf_puts(out, "<tr><td><b>");
    text(out, r, "name");
    buf_puts(out, "</b><br><small>");
    text(out, r, "kind");
    buf_puts(out, " ");
    text(out, r, "direction");
    buf_puts(out, "</small></td><td>");
    badge(out, json_string_value(json_object_get(r, "state")));
    if (json_string_value(json_object_get(r, "detail"))) {
        buf_puts(out, "<div class=\"detail\">");
        text(out, r, "detail");
        buf_puts(out, "</div>");
    }
    buf_puts(out, "</td><td class=\"n\">");
    counts(out, json_object_get(r, "last_minute"));
    buf_puts(out, "</td><td class=\"n\">");
    counts(out, json_object_get(r, "total"));
    buf_puts(out, "</td><td class=\"n\">");
    number(out, json_object_get(json_object_get(r, "total"), "retries"));
    buf_puts(out, "</td><td class=\"n\">");
    number(out, json_object_get(json_object_get(r, "total"), "dead_letters"));
    buf_puts(out, "</td><td>");
    queues(out, r);
    buf_puts(out, "</td><td class=\"n\">");
    const json_t *lag = json_object_get(r, "lag");
    if (lag) {
        buf_puts(out, "last ");
        const json_t *last = json_object_get(lag, "last_seconds");
        duration(out, json_is_number(last) ? json_number_value(last) : NAN);
        buf_puts(out, "<br>oldest in flight ");
        duration(out, json_number_value(json_object_get(lag, "oldest_in_flight_seconds")));
    } else {
        buf_puts(out, "–");
    }
    buf_puts(out, "</td><td>");
    const json_t *e = json_object_get(r, "last_error");
    if (json_is_object(e)) {
        buf_puts(out, "<div class=\"err\">");
        text(out, e, "message");
        buf_puts(out, "</div><small>");
        text(out, e, "at");
        buf_puts(out, "</small>");
    } else {
        buf_puts(out, "–");
    }
    buf_puts(out, "</td></tr>\n");
}

static void process_error(struct buf *out, const json_t *st, const char *key, const char *what)
{
    const json_t *e = json_object_get(st, key);
    if (!json_is_object(e))
        return;
    buf_printf(out, "<p class=\"err\">Last %s problem: ", what);
    text(out, e, "message");
    buf_puts(out, " <small>");
    text(out, e, "at");
    buf_puts(out, "</small></p>\n");
}

void status_page_html(const json_t *st, struct buf *out)
{
    header(out, st);
    connections(out, st);
    process_error(out, st, "publisher_error", "publisher connection");
    process_error(out, st, "process_error", "process");
    buf_puts(out, "<h2>Routes</h2>\n<table><tr><th>route</th><th>state</th>"
                  "<th>last ");
    number(out, json_object_get(st, "window_seconds"));
    buf_puts(out, "s<br><small>in / out / failed</small></th><th>since start<br><small>in / out / "
                  "failed</small></th><th>retries</th><th>dead letters</th><th>queues</th>"
                  "<th>lag</th><th>last error</th></tr>\n");
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(st, "routes"), i, r) route_row(out, r);
    buf_puts(out, "</table>\n<p class=\"meta\"><small>in: requests, records or deliveries taken; "
                  "out: inbound, confirmed by the broker; outbound, accepted by the legacy "
                  "side; failed: inbound, refused or not published; outbound, retried or "
                  "dead-lettered. Queue depths are ready messages, read every "
                  "admin.queue_interval. Same data: <a href=\"status.json\">status.json</a>, "
                  "<a href=\"metrics\">metrics</a>.</small></p>\n</body></html>\n");
}
