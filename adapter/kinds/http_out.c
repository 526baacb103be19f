/*
 * http_out — AMQP → legacy REST. Each delivery from the route's queue becomes
 * one HTTP call (`method` to `url`, bounded by `timeout`) made through the
 * route's own HTTP client on the route's thread. Up to `concurrency` calls
 * are in flight: the consumer's prefetch is the bound. The answer picks the
 * outcome and the consumer does the rest (see consumer.h):
 *   2xx                                     → ACK (reply_to gets the response)
 *   429/503 with Retry-After                → THROTTLED (with a rate: the route
 *                                              pauses, the call is made again)
 *   408, 429, 5xx, 1xx/3xx, no answer       → RETRY (Retry-After honoured)
 *   other 4xx                               → DEAD at once
 * Requests carry Content-Type, Idempotency-Key (the message_id, or a hash of
 * the message when it has none: the same on every retry), X-Correlation-ID,
 * traceparent, the route's pass_headers and its configured `headers`, and
 * the route's `auth` credentials (legacy_client.h: a call with no OAuth
 * token to be had is retried without counting an attempt).
 */
#include "config.h"
#include "consumer.h"
#include "http_text.h"
#include "httpc.h"
#include "jq_transform.h"
#include "legacy_auth.h"
#include "legacy_client.h"
#include "log.h"
#include "message.h"
#include "route.h"
#include "template.h"
#include "util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXCERPT_MAX         200
#define REPLY_MAX           0    /* httpc's default (16 MiB) when the response is passed on */
#define RESPONSE_KEEP_MAX   4096 /* enough for the error excerpt otherwise */
#define MAX_REQUEST_HEADERS 64

/* What the method means for the body, resolved once by validate. */
enum http_out_body { BODY_ALWAYS, BODY_NEVER /* GET */, BODY_IF_ANY /* DELETE */ };

struct http_out_opts {
    char *url;
    char *method;
    enum http_out_body body; /* not a key: from method */
    double timeout;
    double connect_timeout;
    struct strmap headers;
    struct legacy_auth auth;
    struct tls_config tls;
};

#define O(field) offsetof(struct http_out_opts, field)

static const struct config_key http_out_keys[] = {
    {"url", KEY_URL, O(url), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "the legacy endpoint; may hold {message_id}, {correlation_id}, {header.NAME} (URL-encoded)"},
    {"method", KEY_ENUM, O(method), 0, "POST", "POST|PUT|PATCH|DELETE|GET", 0, 0, NULL,
     "HTTP method (GET sends no body)"},
    {"timeout", KEY_NUMBER, O(timeout), 0, "10", NULL, 0.01, 3600, NULL,
     "seconds for the whole call; a timeout is retried"},
    {"connect_timeout", KEY_NUMBER, O(connect_timeout), 0, "0", NULL, 0, 3600, NULL,
     "seconds to establish the connection; 0 = min(timeout, 10)"},
    {"headers", KEY_MAP, O(headers), 0, NULL, NULL, 0, 0, NULL,
     "extra request headers: headers = { X-Api-Version = \"2\"; };"},
    {"auth", KEY_GROUP, O(auth), 0, NULL, NULL, 0, 0, legacy_auth_keys,
     "credentials for the legacy API: one of basic, bearer_token_file, header + value_file, "
     "oauth2"},
    {"tls", KEY_GROUP, O(tls), 0, NULL, NULL, 0, 0, legacy_tls_keys,
     "TLS to the legacy side (https://): private CA, client certificate, verification"},
    {0},
};

static const char *const url_placeholders[] = {"message_id", "correlation_id", "header.", NULL};

/* One call in flight; owns nothing of the delivery, which the consumer owns. */
struct call {
    struct route *route;
    struct delivery *d;
    struct call *prev, *next;
};

/* The route's runtime state (r->state). Route thread only, but in_flight. */
struct http_out {
    struct legacy_client *client;
    struct call *calls; /* in flight, for stop */
    atomic_long in_flight;
};

static const struct http_out_opts *opts(const struct route *r)
{
    return r->opts;
}

/* ---- small helpers ------------------------------------------------------------------ */

/* The stable Idempotency-Key of a message without message_id: "sha256:<hex>" of its
 * correlation_id, timestamp and body, which every retry carries unchanged. */
static void derived_key(const struct message *m, char out[72])
{
    unsigned char md[SHA256_BYTES];
    char stamp[32];
    snprintf(stamp, sizeof(stamp), "%lld", (long long)m->timestamp);
    const char *corr = m->correlation_id ? m->correlation_id : "";
    struct byte_span parts[] = {
        {corr, strlen(corr) + 1}, {stamp, strlen(stamp) + 1}, {m->body, m->body_len}};
    sha256_parts(parts, 3, md);
    sha256_id(md, SHA256_BYTES, out);
}

/* ---- settling ----------------------------------------------------------------------- */

static bool status_retryable(long status)
{
    return status == 408 || status == 429 || status >= 500 || status < 200 ||
           (status >= 300 && status < 400);
}

static struct message *reply_of(const struct httpc_response *resp)
{
    struct message *reply = message_new();
    message_set_body(reply, resp->body, resp->body_len);
    reply->content_type =
        xstrdup(resp->content_type ? resp->content_type : "application/octet-stream");
    char status[16];
    snprintf(status, sizeof(status), "%ld", resp->status);
    message_set_header(reply, "x-http-status", status);
    if (resp->truncated)
        message_set_header(reply, "x-sidecar-truncated", "true");
    return reply;
}

static void call_unlink(struct http_out *s, struct call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&s->in_flight, 1);
}

/* Route thread: the legacy side answered, or the call failed. */
static void http_out_answered(void *arg, const struct httpc_response *resp)
{
    struct call *c = arg;
    struct route *r = c->route;
    struct delivery *d = c->d;
    const struct message *m = d->msg;
    call_unlink(r->state, c);
    free(c);
    if (!resp->not_sent)
        histogram_observe(&r->metrics.legacy_seconds, resp->seconds);

    if (resp->status >= 200 && resp->status < 300) {
        log_event(LOG_DEBUG,
                  &(struct log_ctx){.route = r->name,
                                    .message_id = m->message_id,
                                    .correlation_id = m->correlation_id},
                  "delivered: HTTP %ld in %.3fs", resp->status, resp->seconds);
        if (resp->truncated && m->reply_to)
            log_event(LOG_WARN,
                      &(struct log_ctx){.route = r->name,
                                        .message_id = m->message_id,
                                        .correlation_id = m->correlation_id},
                      "the response is larger than 16 MiB: the reply carries only its start "
                      "(header x-sidecar-truncated)");
        settle_ack(d, m->reply_to ? reply_of(resp) : NULL);
        return;
    }
    struct buf where = {0}; /* "POST http://host/path", for the reason */
    buf_printf(&where, "%s ", opts(r)->method);
    http_text_url_redacted(&where, opts(r)->url);
    if (resp->not_sent) { /* no credentials to be had: not the message's fault */
        settle_retry_uncounted(d, "%s not sent: %s", where.data, resp->error);
        buf_free(&where);
        return;
    }
    if (resp->status == 0) {
        if (resp->timed_out)
            settle_retry(d, 1, 0, "%s timed out after %.1fs: %s", where.data, opts(r)->timeout,
                         resp->error ? resp->error : "timeout");
        else
            settle_retry(d, 1, 0, "%s failed: %s", where.data,
                         resp->error ? resp->error : "no response");
        buf_free(&where);
        return;
    }
    struct buf reason = {0};
    buf_printf(&reason, "HTTP %ld from %s: ", resp->status, where.data);
    http_text_excerpt(&reason, resp->body, resp->body_len, EXCERPT_MAX);
    if (resp->status >= 300 && resp->status < 400)
        buf_puts(&reason, " (redirects are not followed: point url at the final location)");
    if (httpc_asks_to_wait(resp))
        settle_throttled(d, resp->retry_after, "%s", reason.data);
    else if (status_retryable(resp->status))
        settle_retry(d, 1, resp->retry_after, "%s", reason.data);
    else /* the rejection also goes back to an rpc caller at once (x-http-status 4xx) */
        settle_dead(d, 1, DEAD_REJECTED, m->reply_to ? reply_of(resp) : NULL, "%s", reason.data);
    buf_free(&reason);
    buf_free(&where);
}

/* ---- building the request ----------------------------------------------------------- */

struct url_ctx {
    const struct message *m;
    const char *idempotency_key;
    struct buf value;
};

static const char *url_lookup(void *arg, const char *name, char *why, size_t whylen)
{
    struct url_ctx *u = arg;
    const char *raw = NULL;
    if (strcmp(name, "message_id") == 0)
        raw = u->idempotency_key;
    else if (strcmp(name, "correlation_id") == 0)
        raw = u->m->correlation_id;
    else if (strncmp(name, "header.", 7) == 0)
        raw = message_header(u->m, name + 7);
    if (raw == NULL) {
        snprintf(why, whylen, "the message has no %s", name);
        return NULL;
    }
    buf_free(&u->value);
    http_text_url_encode(&u->value, raw);
    return u->value.data ? u->value.data : "";
}

/* Sets name: value in the request's headers, replacing an earlier one of that name. */
static void header_set(struct header *h, size_t *n, const char *name, const char *value)
{
    if (value == NULL || !http_text_header_value_ok(value))
        return;
    for (size_t i = 0; i < *n; i++) {
        if (strcasecmp(h[i].name, name) == 0) {
            h[i].value = (char *)value;
            return;
        }
    }
    if (*n < MAX_REQUEST_HEADERS)
        h[(*n)++] = (struct header){(char *)name, (char *)value};
}

/* Later sources win: ours, then pass_headers, then the configured headers. */
static size_t request_headers(const struct route *r, const struct message *m,
                              const char *content_type, const char *idempotency_key,
                              struct header *h)
{
    size_t n = 0;
    if (content_type)
        header_set(h, &n, "Content-Type", content_type);
    header_set(h, &n, "Idempotency-Key", idempotency_key);
    header_set(h, &n, "X-Correlation-ID", message_caller_correlation_id(m));
    header_set(h, &n, "traceparent", message_header(m, "traceparent"));
    for (size_t i = 0; i < r->pass_headers.n; i++)
        header_set(h, &n, r->pass_headers.v[i], message_header(m, r->pass_headers.v[i]));
    const struct strmap *extra = &opts(r)->headers;
    for (size_t i = 0; i < extra->n; i++)
        header_set(h, &n, extra->names[i], extra->values[i]);
    return n;
}

static void http_out_deliver(struct route *r, struct delivery *d)
{
    struct http_out *s = r->state;
    const struct http_out_opts *o = opts(r);
    const struct message *m = d->msg;
    char err[1024];

    char *transformed = NULL;
    size_t transformed_len = 0;
    if (r->transform) {
        transformed =
            transform_apply(r->transform, m->body, m->body_len, &transformed_len, err, sizeof(err));
        if (transformed == NULL) {
            settle_dead(d, 0, DEAD_TRANSFORM, NULL, "transform failed: %s", err);
            return;
        }
    }
    char derived[72];
    const char *key = m->message_id;
    if (key == NULL || *key == '\0') {
        derived_key(m, derived);
        key = derived;
    }
    struct url_ctx u = {.m = m, .idempotency_key = key};
    char *url = template_expand(o->url, url_lookup, &u, err, sizeof(err));
    buf_free(&u.value);
    if (url == NULL) {
        free(transformed);
        settle_dead(d, 0, DEAD_INVALID, NULL, "cannot build the url: %s", err);
        return;
    }

    bool with_body =
        o->body == BODY_ALWAYS || (o->body == BODY_IF_ANY && (m->body_len > 0 || transformed));
    const char *content_type = !with_body        ? NULL
                               : transformed     ? "application/json"
                               : m->content_type ? m->content_type
                                                 : "application/json";
    struct header headers[MAX_REQUEST_HEADERS];
    size_t n_headers = request_headers(r, m, content_type, key, headers);
    struct httpc_request req = {
        .method = o->method,
        .url = url,
        .headers = headers,
        .n_headers = n_headers,
        .body = with_body ? (transformed ? transformed : m->body) : NULL,
        .body_len = with_body ? (transformed ? transformed_len : m->body_len) : 0,
        .timeout = o->timeout,
        .connect_timeout = o->connect_timeout,
        .max_response = m->reply_to ? REPLY_MAX : RESPONSE_KEEP_MAX,
    };
    struct call *c = xcalloc(1, sizeof(*c));
    c->route = r;
    c->d = d;
    int rc = legacy_client_start(s->client, &req, http_out_answered, c);
    free(url);
    free(transformed);
    if (rc != 0) {
        free(c);
        /* Counted as an attempt: the ladder only moves on attempts, and this may repeat. */
        settle_retry(d, 1, 0, "the HTTP client refused the call");
        return;
    }
    c->next = s->calls;
    if (s->calls)
        s->calls->prev = c;
    s->calls = c;
    atomic_fetch_add(&s->in_flight, 1);
}

/* ---- the kind ------------------------------------------------------------------------ */

static void http_out_validate(struct route *r, const struct sidecar_config *cfg,
                              struct config_report *rep)
{
    struct http_out_opts *o = r->opts;
    char err[512];
    o->body = !o->method                         ? BODY_ALWAYS
              : strcmp(o->method, "GET") == 0    ? BODY_NEVER
              : strcmp(o->method, "DELETE") == 0 ? BODY_IF_ANY
                                                 : BODY_ALWAYS;
    if (o->url && template_check(o->url, url_placeholders, err, sizeof(err)) != 0)
        config_report_add(rep, r->line, "outbound route \"%s\": url %s", r->name, err);
    for (size_t i = 0; i < o->headers.n; i++) {
        if (!http_text_header_name_ok(o->headers.names[i]))
            config_report_add(rep, r->line,
                              "outbound route \"%s\": headers.%s is not a valid header name",
                              r->name, o->headers.names[i]);
        if (!http_text_header_value_ok(o->headers.values[i]))
            config_report_add(rep, r->line,
                              "outbound route \"%s\": headers.%s holds a control character (a "
                              "line break?); header values must be one line",
                              r->name, o->headers.names[i]);
    }
    for (size_t i = 0; i < r->pass_headers.n; i++)
        if (!http_text_header_name_ok(r->pass_headers.v[i]))
            config_report_add(rep, r->line,
                              "outbound route \"%s\": pass_headers: \"%s\" is not a valid header "
                              "name",
                              r->name, r->pass_headers.v[i]);
    if (o->headers.n + r->pass_headers.n + 4 > MAX_REQUEST_HEADERS)
        config_report_add(rep, r->line,
                          "outbound route \"%s\": headers and pass_headers name %zu headers; at "
                          "most %d fit",
                          r->name, o->headers.n + r->pass_headers.n, MAX_REQUEST_HEADERS - 4);
    char *where = xasprintf("outbound route \"%s\"", r->name);
    legacy_auth_validate(&o->auth, where, r->line, &o->headers, rep);
    legacy_tls_validate(&o->tls, o->url, where, r->line, rep);
    free(where);
    if (o->connect_timeout > o->timeout)
        config_report_add(rep, r->line,
                          "outbound route \"%s\": connect_timeout (%g) is longer than timeout "
                          "(%g), which bounds the whole call; lower it or raise timeout",
                          r->name, o->connect_timeout, o->timeout);
}

static void http_out_describe(const struct route *r, struct buf *out)
{
    const struct http_out_opts *o = opts(r);
    buf_printf(out, "queue \"%s\" → %s ", r->queue, o->method);
    http_text_url_redacted(out, o->url);
    buf_printf(out, " (concurrency %d%s, timeout %gs, retry", r->ordered ? 1 : r->concurrency,
               r->ordered ? ", ordered" : "", o->timeout);
    for (size_t i = 0; i < r->retry_delays.n; i++)
        buf_printf(out, "%s%g", i ? "/" : " ", r->retry_delays.v[i]);
    buf_printf(out, "s%s, auth %s", r->transform ? ", transform" : "",
               legacy_auth_describe(&o->auth));
    route_describe_rate(r, out);
    buf_puts(out, ")");
}

static int http_out_start(struct route *r, char *err, size_t errlen)
{
    struct http_out *s = xcalloc(1, sizeof(*s));
    s->client = legacy_client_new(r->loop, &(struct legacy_client_config){
                                               .route = r->name,
                                               .auth = &opts(r)->auth,
                                               .oauth2 = r->services->oauth2,
                                               .tls = &opts(r)->tls,
                                               .transport = r->services->legacy_transport,
                                           });
    r->state = s;
    return 0;
}

static bool http_out_busy(struct route *r)
{
    struct http_out *s = r->state;
    return s && atomic_load(&s->in_flight) > 0;
}

/* After the route's thread ended. Calls still running (the drain deadline passed)
 * are aborted and their deliveries abandoned: they belong to a closed connection,
 * so that only frees them and the broker redelivers the messages. */
static void http_out_stop(struct route *r)
{
    struct http_out *s = r->state;
    if (s == NULL)
        return;
    legacy_client_free(s->client);
    while (s->calls) {
        struct call *c = s->calls;
        call_unlink(s, c);
        log_event(LOG_WARN,
                  &(struct log_ctx){.route = r->name,
                                    .message_id = c->d->msg->message_id,
                                    .correlation_id = c->d->msg->correlation_id},
                  "call abandoned at shutdown; the broker will deliver the message again");
        abandon(c->d);
        free(c);
    }
    free(s);
    r->state = NULL;
}

static bool http_out_ready(struct route *r, struct buf *detail)
{
    struct http_out *s = r->state;
    return s == NULL || legacy_client_ready(s->client, detail);
}

static const struct legacy_auth *http_out_legacy_auth(const struct route *r)
{
    return &opts(r)->auth;
}

const struct route_kind kind_http_out = {
    .name = "http",
    .direction = ROUTE_OUTBOUND,
    .summary = "consume the queue and call the legacy REST API (ack on 2xx, retry, dead letter)",
    .paced = true,
    .keys = http_out_keys,
    .opts_size = sizeof(struct http_out_opts),
    .validate = http_out_validate,
    .describe = http_out_describe,
    .start = http_out_start,
    .deliver = http_out_deliver,
    .busy = http_out_busy,
    .stop = http_out_stop,
    .ready = http_out_ready,
    .legacy_auth = http_out_legacy_auth,
};
