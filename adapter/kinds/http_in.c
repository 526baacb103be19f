/*
 * http_in — legacy HTTP → AMQP. A legacy system (or a SaaS webhook) sends a
 * request; we check method, content type, size and auth, optionally run the
 * jq transform, build the routing key, and publish. The answer waits for the
 * broker: 202 {"message_id", "routed"} only after the confirm (routed false
 * when no binding matched and the message was parked in the route's DLQ),
 * 503 + Retry-After when the broker is down, blocked or refused it. In rpc
 * mode the answer is the reply message (status from its x-http-status
 * header), or 504 after `timeout`.
 *
 * What is http's own lives here: the request checks, the JSON, transform and
 * routing key, and what each answer looks like (JSON bodies). Publishing,
 * waiting and picking the answer is http_front.c's, which calls `answers`.
 *
 * Threads: the handler runs on a libmicrohttpd thread and ends by handing the
 * message to the front; the answers run on the publisher's thread (or on the
 * handler's, for a refusal at submit) and answer the (suspended) request.
 */
#include "config.h"
#include "http_auth.h"
#include "http_front.h"
#include "httpd.h"
#include "inbound.h"
#include "jq_transform.h"
#include "listen_tls.h"
#include "log.h"
#include "message.h"
#include "publisher.h"
#include "route.h"
#include "template.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct http_in_opts {
    struct http_front_config front; /* listen, path, max_body, mode, timeout, retry_after, auth */
    char *method;
    struct strlist content_types;
};

#define O(field) offsetof(struct http_in_opts, field)

static const struct config_key auth_keys[] = {HTTP_AUTH_KEYS(O(front.auth)), {0}};

static const struct config_key http_in_keys[] = {
    {"listen", KEY_LISTEN, O(front.listen), 0, "127.0.0.1:8080", NULL, 0, 0, NULL,
     "host:port to listen on (several routes may share one)"},
    {"path", KEY_STRING, O(front.path), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "request path, e.g. \"/orders\""},
    {"method", KEY_ENUM, O(method), 0, "POST", "POST|PUT|PATCH", 0, 0, NULL,
     "the accepted method (others get 405)"},
    {"content_types", KEY_STRINGS, O(content_types), 0, "application/json", NULL, 0, 0, NULL,
     "accepted media types (others get 415); \"*/*\" accepts any"},
    {"max_body", KEY_INT, O(front.max_body), 0, "1048576", NULL, 1, 268435456, NULL,
     "largest accepted body in bytes (larger gets 413)"},
    {"mode", KEY_ENUM, O(front.mode_name), 0, "event", "event|rpc", 0, 0, NULL,
     "event: answer 202 once confirmed; rpc: wait for the reply message and return it"},
    {"timeout", KEY_NUMBER, O(front.timeout), 0, "30", NULL, 0.01, 3600, NULL,
     "rpc: seconds to wait for the reply (then 504)"},
    {"retry_after", KEY_INT, O(front.retry_after), 0, "5", NULL, 1, 3600, NULL,
     "seconds in the Retry-After header of 503 answers"},
    {"auth", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, auth_keys, "request authentication"},
    HTTP_FRONT_TLS_KEY(O(front.tls)),
    {"message_id_from", KEY_STRING, O(front.message_id_from), 0, NULL, NULL, 0, 0, NULL,
     "where a request without Idempotency-Key gets its message_id: \"json.<field>\" of the body "
     "as sent (e.g. a Stripe event's \"json.id\") or \"header.<Name>\"; a request without it "
     "gets 400"},
    SPOOL_KEY(O(front.spool)),
    {0},
};

static const char *const placeholders[] = {"json.", "header.", "query.", "path", NULL};
static const char *const id_sources[] = {"json.", "header.", NULL};

static const struct http_in_opts *opts(const struct route *r)
{
    return r->opts;
}

/* ---- answering ------------------------------------------------------------------- */

/* Appends obj (consumed) as one line of JSON: ids and reasons may hold quotes. */
static void json_body_into(struct buf *body, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    buf_printf(body, "%s\n", text ? text : "{}");
    free(text);
    json_decref(obj);
}

static void refuse(struct route *r, struct http_request *req, int status, const char *log_why,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void refuse(struct route *r, struct http_request *req, int status, const char *log_why,
                   const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    metric_inc(r->metrics.refused);
    log_warn(r->name, "%s %s → %d: %s", http_request_method(req), http_request_path(req), status,
             log_why ? log_why : msg);
    http_respond_error(req, status, "%s", msg);
}

/* 202 {"message_id", "correlation_id", then `tail`}: routed, or spooled. */
static void answer_202(const struct http_front_request *p, const char *tail)
{
    struct header h = {"X-Correlation-ID", p->correlation_id};
    struct buf body = {0};
    /* By hand: every accepted request gets one (jansson's pack and dump cost more). */
    buf_puts(&body, "{\"message_id\":");
    buf_json_string(&body, p->message_id);
    buf_puts(&body, ",\"correlation_id\":");
    buf_json_string(&body, p->correlation_id);
    buf_puts(&body, tail);
    http_respond_headers(p->req, 202, "application/json", body.data, body.len, &h, 1);
    buf_free(&body);
}

static void answer_accepted(const struct http_front_request *p, bool routed)
{
    answer_202(p, routed ? ",\"routed\":true}\n" : ",\"routed\":false}\n");
}

/* On disk in the spool, not yet at the broker: no "routed" (it is not known yet). */
static void answer_spooled(const struct http_front_request *p)
{
    answer_202(p, ",\"spooled\":true}\n");
}

static void answer_unroutable(const struct http_front_request *p)
{
    http_respond_error(p->req, 502, "no service is bound to receive this request");
}

static void answer_rpc(const struct http_front_request *p, const struct message *reply)
{
    if (reply == NULL) {
        http_respond_error(p->req, 502, "the service sent no reply");
        return;
    }
    const char *status_text = message_header(reply, "x-http-status");
    int status = status_text ? atoi(status_text) : 200;
    if (status < 100 || status > 599)
        status = 502;
    struct header h = {"X-Correlation-ID", p->correlation_id};
    /* The replier chose it: only printable text may become a response header. */
    const char *ct = reply->content_type && message_content_type_ok(reply->content_type)
                         ? reply->content_type
                         : "application/octet-stream";
    http_respond_headers(p->req, status, ct, reply->body, reply->body_len, &h, 1);
}

static void answer_rpc_timeout(const struct http_front_request *p)
{
    struct log_ctx ctx = http_front_log_ctx(p);
    log_event(LOG_WARN, &ctx, "answered 504: no reply within %.1fs", p->timeout);
    http_respond_error(p->req, 504, "no reply within %.1fs", p->timeout);
}

static void answer_unavailable(const struct http_front_request *p, const char *why,
                               const struct header *retry_after)
{
    struct buf body = {0};
    char *error = xasprintf("not accepted, try again later: %s", why);
    json_body_into(&body, json_pack("{s:s}", "error", error));
    free(error);
    struct log_ctx ctx = http_front_log_ctx(p);
    log_event(LOG_WARN, &ctx, "answered 503: %s", why);
    http_respond_headers(p->req, 503, "application/json", body.data, body.len, retry_after, 1);
    buf_free(&body);
}

static void answer_invalid(const struct http_front_request *p, const char *why)
{
    refuse(p->route, p->req, 400, NULL, "the request cannot be carried as an AMQP message: %s",
           why);
}

static const struct http_front_answers answers = {
    .accepted = answer_accepted,
    .unroutable = answer_unroutable,
    .rpc_reply = answer_rpc,
    .rpc_timeout = answer_rpc_timeout,
    .unavailable = answer_unavailable,
    .invalid = answer_invalid,
    .spooled = answer_spooled,
};

/* ---- handling a request ------------------------------------------------------------ */

struct key_ctx {
    struct http_request *req;
    json_t *json;
    char buf[512];
};

static const char *key_lookup(void *arg, const char *name, char *why, size_t whylen)
{
    struct key_ctx *k = arg;
    if (strncmp(name, "header.", 7) == 0)
        return http_request_header(k->req, name + 7);
    if (strncmp(name, "query.", 6) == 0)
        return http_request_query(k->req, name + 6);
    if (strcmp(name, "path") == 0)
        return http_request_path(k->req);
    return inbound_json_placeholder(k->json, name, "the body is not JSON", k->buf, sizeof(k->buf),
                                    why, whylen);
}

static const char *request_header(void *arg, const char *name)
{
    return http_request_header(arg, name);
}

static bool content_type_ok(const struct http_in_opts *o, const char *ct)
{
    for (size_t i = 0; i < o->content_types.n; i++) {
        const char *want = o->content_types.v[i];
        if (strcmp(want, "*/*") == 0 || inbound_media_type_is(ct, want))
            return true;
    }
    return false;
}

static void handle(struct http_request *req, void *arg)
{
    struct route *r = arg;
    const struct http_in_opts *o = opts(r);
    metric_inc(r->metrics.received);

    if (strcmp(http_request_method(req), o->method) != 0) {
        struct header h = {"Allow", o->method};
        metric_inc(r->metrics.refused);
        http_respond_headers(req, 405, "application/json", "{\"error\":\"method not allowed\"}\n",
                             31, &h, 1);
        return;
    }
    const char *ct = http_request_header(req, "Content-Type");
    if (ct && !message_content_type_ok(ct)) {
        /* It becomes the AMQP content_type: a short string of printable text. */
        refuse(r, req, 415, NULL, "Content-Type must be 1 to %d printable ASCII characters",
               MESSAGE_SHORTSTR_MAX);
        return;
    }
    if (!content_type_ok(o, ct)) {
        refuse(r, req, 415, NULL, "content type \"%s\" is not accepted here; send %s",
               ct ? ct : "(none)", o->content_types.v[0]);
        return;
    }
    size_t len;
    const char *body = http_request_body(req, &len);
    const char *why = NULL;
    if (!http_auth_check(&o->front.auth, request_header, req, body, len, &why)) {
        refuse(r, req, 401, why, "unauthorized");
        return;
    }
    const char *corr = http_request_header(req, "X-Correlation-ID");
    if (corr && !inbound_id_acceptable(corr)) {
        refuse(r, req, 400, NULL, "X-Correlation-ID must be 1 to 255 printable characters");
        return;
    }

    /* JSON is checked whenever it will be looked into: by a transform, the
     * routing key or message_id_from. */
    bool json_body = inbound_is_json(ct);
    const char *id_from = o->front.message_id_from;
    bool id_from_json = id_from && strncmp(id_from, "json.", 5) == 0;
    bool needs_json =
        r->transform != NULL || strstr(r->routing_key, "{json.") != NULL || id_from_json;
    json_t *json = NULL;
    if (json_body && needs_json) {
        json_error_t jerr;
        json = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
        if (json == NULL) {
            refuse(r, req, 400, NULL, "body is not valid JSON: %s at line %d, column %d", jerr.text,
                   jerr.line, jerr.column);
            return;
        }
    }
    /* A sender's retry is the same message: its Idempotency-Key, the field or header
     * message_id_from names, or the signature scheme's id (webhook-id) stands in. */
    const char *idem = NULL;
    char idem_buf[1024];
    char id_why[512];
    if (!http_front_message_id(&o->front, req, json,
                               http_auth_message_id(&o->front.auth, request_header, req), &idem,
                               idem_buf, sizeof(idem_buf), id_why, sizeof(id_why))) {
        refuse(r, req, 400, NULL, "%s", id_why);
        json_decref(json);
        return;
    }
    char *payload;
    size_t payload_len;
    if (r->transform != NULL) {
        char err[1024];
        if (!json_body) {
            refuse(r, req, 415, NULL, "this route transforms JSON; send application/json");
            json_decref(json);
            return;
        }
        payload = transform_apply(r->transform, body, len, &payload_len, err, sizeof(err));
        if (payload == NULL) {
            refuse(r, req, 422, NULL, "transform failed: %s", err);
            json_decref(json);
            return;
        }
        json_decref(json);
        json = strstr(r->routing_key, "{json.")
                   ? json_loadb(payload, payload_len, JSON_DECODE_ANY, NULL)
                   : NULL;
    } else {
        payload = xstrndup(body, len);
        payload_len = len;
    }

    struct key_ctx k = {.req = req, .json = json};
    char err[512];
    char *key = inbound_routing_key(r, key_lookup, &k, err, sizeof(err));
    json_decref(json);
    if (key == NULL) {
        free(payload);
        refuse(r, req, 422, NULL, "cannot build the routing key: %s", err);
        return;
    }

    struct inbound_ids ids = {.message_id = idem,
                              .correlation_id = corr,
                              .traceparent = http_request_header(req, "traceparent")};
    struct message *m = inbound_message(
        r, payload, payload_len,
        r->transform ? "application/json" : (ct ? ct : "application/octet-stream"), &ids);
    m->routing_key = key;
    http_front_pass_headers(r, req, m);
    http_front_publish(&(struct http_front_request){.route = r,
                                                    .req = req,
                                                    .answers = &answers,
                                                    .rpc = o->front.mode == HTTP_FRONT_RPC,
                                                    .timeout = o->front.timeout,
                                                    .retry_after = o->front.retry_after},
                       m);
}

/* ---- the kind ------------------------------------------------------------------------ */

static void http_in_validate(struct route *r, const struct sidecar_config *cfg,
                             struct config_report *rep)
{
    struct http_in_opts *o = r->opts;
    http_front_validate(r, cfg, &o->front, placeholders, "", id_sources, rep);
    if (o->content_types.n == 0)
        config_report_add(rep, r->line, "route \"%s\": content_types must not be empty", r->name);
}

static void http_in_describe(const struct route *r, struct buf *out)
{
    const struct http_in_opts *o = opts(r);
    buf_printf(out, "%s %s://%s%s → exchange \"%s\" key \"%s\" (%s, auth %s%s%s%s)", o->method,
               http_front_scheme(&o->front), o->front.listen, o->front.path, r->exchange,
               r->routing_key, o->front.mode_name, http_auth_describe(&o->front.auth),
               http_front_mutual(&o->front), r->transform ? ", transform" : "",
               http_front_spool(&o->front));
}

static bool http_in_endpoint(const struct route *r, struct http_endpoint *out)
{
    return http_front_endpoint(&opts(r)->front, out);
}

static int http_in_start(struct route *r, char *err, size_t errlen)
{
    return http_front_serve(r, &opts(r)->front, handle, NULL, err, errlen);
}

const struct route_kind kind_http_in = {
    .name = "http",
    .direction = ROUTE_INBOUND,
    .summary = "the legacy side POSTs to the sidecar, which publishes (answers after the confirm)",
    .keys = http_in_keys,
    .opts_size = sizeof(struct http_in_opts),
    .validate = http_in_validate,
    .describe = http_in_describe,
    .endpoint = http_in_endpoint,
    .start = http_in_start,
    .drain = http_front_drain,
    .stop = http_front_stop,
    .ready = http_front_ready,
    .spools = http_front_spools,
};
