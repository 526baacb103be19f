/*
 * soap_out — AMQP → a legacy SOAP service. Each delivery's body (one XML
 * element, or JSON turned into XML by transforms/XMLJSON.md after the route's
 * jq transform) is wrapped in a SOAP 1.1 or 1.2 envelope, with an optional
 * WS-Security UsernameToken, and POSTed to `url` through the route's shared
 * HTTP client with the route's `auth` credentials (legacy_client.h); up to
 * `concurrency` calls are in flight (the prefetch).
 *
 * The answer decides the outcome (settled exactly once per delivery):
 *   Client/Sender fault, at any HTTP status  → dead letter (x-sidecar-error: the faultstring)
 *   Server/Receiver fault                     → retry (honouring Retry-After)
 *   no fault: 2xx → ack (the Body content goes to reply_to); 408, 429, 5xx,
 *   timeouts, refused connections → retry; any other status → dead letter.
 *   A 429 or 503 with Retry-After (a Server fault or none) on a route with a
 *   rate pauses the route and makes the call again (settle_throttled).
 * A 2xx whose body is not a SOAP envelope is acked: the service said it took
 * the request, so a retry could apply it twice and a dead letter would claim
 * it failed. It is logged, and a reply_to gets the raw body with
 * x-sidecar-error saying why it is not SOAP.
 *
 * Threads: everything runs on the route's thread (deliver, the HTTP client's
 * callbacks, settle); start before it exists, stop after it ended.
 */
#include "config.h"
#include "consumer.h"
#include "httpc.h"
#include "inbound.h"
#include "jq_transform.h"
#include "legacy_auth.h"
#include "legacy_client.h"
#include "log.h"
#include "message.h"
#include "route.h"
#include "soap_envelope.h"
#include "template.h"
#include "util.h"
#include "xml_safe.h"
#include "xmljson.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX  1200
#define SNIPPET_MAX 200

struct soap_out_opts {
    char *url;
    char *soap_version;
    char *action;
    double timeout;
    struct strmap headers;
    char *wsse_username;
    struct secret wsse_password;
    char *format;
    bool json; /* not a key: format = "json", resolved by validate */
    int max_response;
    struct legacy_auth auth;
    struct tls_config tls;
};

#define O(field) offsetof(struct soap_out_opts, field)

static const struct config_key soap_out_keys[] = {
    {"url", KEY_URL, O(url), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "the SOAP service endpoint (http:// or https://)"},
    {"soap_version", KEY_ENUM, O(soap_version), 0, "1.1", "1.1|1.2", 0, 0, NULL,
     "envelope version: 1.1 (text/xml + SOAPAction) or 1.2 (application/soap+xml; action=)"},
    {"action", KEY_STRING, O(action), 0, NULL, NULL, 0, 0, NULL,
     "the SOAPAction / action URI; may use {header.NAME} (e.g. {header.x-soap-action})"},
    {"timeout", KEY_NUMBER, O(timeout), 0, "30", NULL, 0.01, 3600, NULL,
     "seconds for the whole call (then it is retried)"},
    {"headers", KEY_MAP, O(headers), 0, NULL, NULL, 0, 0, NULL,
     "extra request headers, e.g. { X-Api-Version = \"2\"; }"},
    {"wsse_username", KEY_STRING, O(wsse_username), 0, NULL, NULL, 0, 0, NULL,
     "send a WS-Security UsernameToken with this Username (with wsse_password_file)"},
    {"wsse_password_file", KEY_SECRET, O(wsse_password), 0, NULL, NULL, 0, 0, NULL,
     "the UsernameToken's password, sent as PasswordText (use https://)"},
    {"format", KEY_ENUM, O(format), 0, "xml", "xml|json", 0, 0, NULL,
     "reply_to messages carry the response Body content as XML or as JSON (XMLJSON.md)"},
    {"max_response", KEY_INT, O(max_response), 0, "16777216", NULL, 1024, 268435456, NULL,
     "largest response read in bytes"},
    {"auth", KEY_GROUP, O(auth), 0, NULL, NULL, 0, 0, legacy_auth_keys,
     "HTTP credentials for the service: one of basic, bearer_token_file, header + value_file, "
     "oauth2 (besides or instead of the UsernameToken)"},
    {"tls", KEY_GROUP, O(tls), 0, NULL, NULL, 0, 0, legacy_tls_keys,
     "TLS to the legacy side (https://): private CA, client certificate, verification"},
    {0},
};

static const char *const action_placeholders[] = {"header.", NULL};

/* One legacy call in flight; owns nothing but its place in the list. */
struct call {
    struct route *route;
    struct delivery *delivery;
    struct call *prev, *next;
};

struct soap_out_state {
    struct legacy_client *http;
    enum soap_version version;
    struct call *calls;
};

static const struct soap_out_opts *opts(const struct route *r)
{
    return r->opts;
}

static struct soap_out_state *state(const struct route *r)
{
    return r->state;
}

static void log_delivery(enum log_level level, const struct route *r, const struct delivery *d,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void log_delivery(enum log_level level, const struct route *r, const struct delivery *d,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_eventv(level,
               &(struct log_ctx){.route = r->name,
                                 .message_id = d->msg->message_id,
                                 .correlation_id = d->msg->correlation_id},
               fmt, ap);
    va_end(ap);
}

/* ---- the request -------------------------------------------------------------------- */

/* The XML element to wrap: the body as it is, or JSON (transformed) converted.
 * NULL with err and *why when the message cannot become one. Caller frees. */
static char *request_element(struct route *r, const struct message *m, size_t *len,
                             enum dead_reason *why, char *err, size_t errlen)
{
    if (!inbound_is_json(m->content_type)) {
        *len = m->body_len;
        return xstrndup(m->body ? m->body : "", m->body_len);
    }
    char *json_text = NULL;
    size_t json_len = m->body_len;
    if (r->transform != NULL) {
        char terr[900];
        json_text = transform_apply(r->transform, m->body ? m->body : "", m->body_len, &json_len,
                                    terr, sizeof(terr));
        if (json_text == NULL) {
            *why = DEAD_TRANSFORM;
            snprintf(err, errlen, "transform failed: %s", terr);
            return NULL;
        }
    }
    char xerr[900];
    bool parsed;
    char *xml = xmljson_text_to_xml(json_text ? json_text
                                    : m->body ? m->body
                                              : "",
                                    json_len, len, &parsed, xerr, sizeof(xerr));
    free(json_text);
    *why = DEAD_INVALID;
    if (xml == NULL)
        snprintf(err, errlen, "%s: %s",
                 parsed ? "JSON body cannot become XML (see XMLJSON.md)"
                        : "JSON body does not parse",
                 xerr);
    return xml;
}

/* element wrapped in the route's envelope (with the UsernameToken, if configured); malloc'd
 * text the caller frees, or NULL with err. */
static char *envelope_of(struct route *r, const char *element, size_t len, size_t *env_len,
                         char *err, size_t errlen)
{
    const struct soap_out_opts *o = opts(r);
    char *password = NULL;
    if (o->wsse_username) {
        secrets_read_lock();
        password =
            xstrndup(o->wsse_password.value ? o->wsse_password.value : "", o->wsse_password.len);
        secrets_read_unlock();
    }
    struct xml_limits lim = {.max_bytes = len + 1, .max_depth = XML_SAFE_MAX_DEPTH_CAP};
    char *env = soap_envelope_wrap(state(r)->version, element, len, o->wsse_username, password,
                                   &lim, env_len, err, errlen);
    if (password) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    return env;
}

/* Safe as an HTTP header value (and inside a quoted string): no controls, no quotes. */
static bool header_value_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '"')
            return false;
    return true;
}

static const char *message_lookup(void *arg, const char *name, char *why, size_t whylen)
{
    const struct message *m = arg;
    if (strncmp(name, "header.", 7) == 0)
        return message_header(m, name + 7);
    return NULL;
}

/* The action for m (expanded), "" when none; NULL with err. Caller frees. */
static char *action_of(const struct route *r, const struct message *m, char *err, size_t errlen)
{
    const char *tmpl = opts(r)->action;
    if (tmpl == NULL)
        return xstrdup("");
    char *action = template_expand(tmpl, message_lookup, (void *)m, err, errlen);
    if (action != NULL && !header_value_ok(action)) {
        snprintf(err, errlen, "action \"%.200s\" has quotes or control characters", action);
        free(action);
        return NULL;
    }
    return action;
}

struct header_list {
    struct header *v;
    size_t n, cap;
    char **frees; /* values the list owns */
    size_t n_frees;
};

static void headers_add(struct header_list *h, const char *name, const char *value)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    h->v[h->n++] = (struct header){(char *)name, (char *)value};
}

/* Adds value, which the list then owns. */
static void headers_add_owned(struct header_list *h, const char *name, char *value)
{
    h->frees = xrealloc(h->frees, (h->n_frees + 1) * sizeof(*h->frees));
    h->frees[h->n_frees++] = value;
    headers_add(h, name, value);
}

static void headers_free(struct header_list *h)
{
    for (size_t i = 0; i < h->n_frees; i++)
        free(h->frees[i]);
    free(h->frees);
    free(h->v);
}

static void request_headers(const struct route *r, const struct message *m, const char *action,
                            struct header_list *h)
{
    const struct soap_out_opts *o = opts(r);
    if (state(r)->version == SOAP_1_2) {
        headers_add_owned(h, "Content-Type",
                          action[0] ? xasprintf("application/soap+xml; charset=utf-8; "
                                                "action=\"%s\"",
                                                action)
                                    : xstrdup("application/soap+xml; charset=utf-8"));
    } else {
        headers_add(h, "Content-Type", "text/xml; charset=utf-8");
        headers_add_owned(h, "SOAPAction", xasprintf("\"%s\"", action));
    }
    if (m->message_id && header_value_ok(m->message_id))
        headers_add(h, "Idempotency-Key", m->message_id);
    const char *corr = message_caller_correlation_id(m);
    if (corr && header_value_ok(corr))
        headers_add(h, "X-Correlation-ID", corr);
    const char *tp = message_header(m, "traceparent");
    if (tp && header_value_ok(tp))
        headers_add(h, "traceparent", tp);
    for (size_t i = 0; i < r->pass_headers.n; i++) {
        const char *v = message_header(m, r->pass_headers.v[i]);
        if (v && header_value_ok(v))
            headers_add(h, r->pass_headers.v[i], v);
    }
    for (size_t i = 0; i < o->headers.n; i++)
        headers_add(h, o->headers.names[i], o->headers.values[i]);
}

/* ---- the answer ---------------------------------------------------------------------- */

static void call_unlink(struct call *c)
{
    struct soap_out_state *st = state(c->route);
    if (c->prev)
        c->prev->next = c->next;
    else
        st->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

/* The start of body as printable text for messages, into out. */
static const char *snippet(const char *body, size_t len, char *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < n && k < SNIPPET_MAX; i++)
        out[k++] = ((unsigned char)body[i] < 0x20 || body[i] == 0x7f) ? ' ' : body[i];
    out[k] = '\0';
    return out;
}

/* The message for reply_to, from a 2xx answer (taken by settle_ack). */
static struct message *reply_of(const struct route *r, const struct httpc_response *resp,
                                const struct soap_response *sr, bool parsed, const char *perr)
{
    struct message *reply = message_new();
    if (!parsed) {
        message_set_body(reply, resp->body, resp->body_len);
        message_set(&reply->content_type,
                    resp->content_type ? resp->content_type : "application/octet-stream");
        if (resp->body_len > 0) {
            char *why = xasprintf("response is not a SOAP envelope: %s", perr);
            message_set_header(reply, "x-sidecar-error", why);
            free(why);
        }
        return reply;
    }
    message_set_header(reply, "x-soap-version", sr->version == SOAP_1_2 ? "1.2" : "1.1");
    if (opts(r)->json) {
        message_set(&reply->content_type, "application/json");
        json_t *j = sr->content ? xmljson_from_node(sr->content) : NULL;
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (text)
            message_take_body(reply, text, strlen(text));
        return reply;
    }
    message_set(&reply->content_type, "application/xml");
    if (sr->body)
        message_set_body(reply, sr->body, sr->body_len);
    return reply;
}

static void settle_fault(struct route *r, struct delivery *d, const struct httpc_response *resp,
                         const struct soap_response *sr)
{
    char reason[REASON_MAX];
    bool v12 = sr->version == SOAP_1_2;
    snprintf(reason, sizeof(reason), "SOAP %s fault %s (HTTP %ld): %s",
             sr->client_fault ? (v12 ? "Sender" : "Client") : (v12 ? "Receiver" : "Server"),
             sr->fault_code ? sr->fault_code : "(no code)", resp->status,
             sr->fault_reason ? sr->fault_reason : "(no reason given)");
    if (sr->client_fault) {
        /* An rpc caller learns of the fault now (soap in answers it as a Client fault). */
        struct message *reply = NULL;
        if (d->msg->reply_to) {
            reply = message_new();
            const char *text = sr->fault_reason ? sr->fault_reason : "(no reason given)";
            message_set_body(reply, text, strlen(text));
            message_set(&reply->content_type, "text/plain");
            message_set_header(reply, "x-soap-fault", "client");
        }
        settle_dead(d, 1, DEAD_REJECTED, reply, "%s", reason);
        return;
    }
    if (httpc_asks_to_wait(resp)) /* a Server fault on a 503 that says when to come back */
        settle_throttled(d, resp->retry_after, "%s", reason);
    else
        settle_retry(d, 1, resp->retry_after, "%s", reason);
}

static void settle_success(struct route *r, struct delivery *d, const struct httpc_response *resp,
                           const struct soap_response *sr, bool parsed, const char *perr)
{
    if (!parsed && resp->body_len > 0) {
        char text[SNIPPET_MAX + 1];
        log_delivery(LOG_WARN, r, d,
                     "HTTP %ld but the response is not a SOAP envelope (%s): acked anyway, as "
                     "the service accepted the call; body starts: %s",
                     resp->status, perr, snippet(resp->body, resp->body_len, text, sizeof(text)));
    } else {
        log_delivery(LOG_DEBUG, r, d, "delivered: HTTP %ld in %.3fs", resp->status, resp->seconds);
    }
    struct message *reply = d->msg->reply_to ? reply_of(r, resp, sr, parsed, perr) : NULL;
    settle_ack(d, reply);
}

static void settle_status(struct route *r, struct delivery *d, const struct httpc_response *resp)
{
    char text[SNIPPET_MAX + 1];
    char reason[REASON_MAX];
    long st = resp->status;
    snprintf(reason, sizeof(reason), "HTTP %ld without a SOAP fault: %s", st,
             snippet(resp->body, resp->body_len, text, sizeof(text)));
    if (httpc_asks_to_wait(resp)) {
        settle_throttled(d, resp->retry_after, "%s", reason);
        return;
    }
    if (st == 408 || st == 429 || st >= 500) {
        settle_retry(d, 1, resp->retry_after, "%s", reason);
        return;
    }
    settle_dead(d, 1, DEAD_REJECTED, NULL, "%s", reason);
}

/* Route thread: the service answered, or the call failed. */
static void called(void *arg, const struct httpc_response *resp)
{
    struct call *c = arg;
    struct route *r = c->route;
    struct delivery *d = c->delivery;
    call_unlink(c);
    free(c);
    if (resp->not_sent) { /* no credentials to be had: not the message's fault */
        settle_retry_uncounted(d, "call not sent: %s", resp->error);
        return;
    }
    histogram_observe(&r->metrics.legacy_seconds, resp->seconds);
    if (resp->status == 0) {
        settle_retry(d, 1, 0, "%s: %s", resp->timed_out ? "no answer in time" : "call failed",
                     resp->error ? resp->error : "unknown transport error");
        return;
    }
    struct soap_response sr;
    char perr[512] = "empty body";
    bool parsed = false;
    if (resp->truncated) {
        snprintf(perr, sizeof(perr), "larger than max_response (%d bytes)", opts(r)->max_response);
    } else if (resp->body_len > 0) {
        struct xml_limits lim = {.max_bytes = (size_t)opts(r)->max_response,
                                 .max_depth = XML_SAFE_MAX_DEPTH_CAP};
        parsed =
            soap_response_parse(resp->body, resp->body_len, &lim, &sr, perr, sizeof(perr)) == 0;
    }
    if (parsed && sr.fault)
        settle_fault(r, d, resp, &sr);
    else if (resp->status >= 200 && resp->status < 300)
        settle_success(r, d, resp, parsed ? &sr : NULL, parsed, perr);
    else
        settle_status(r, d, resp);
    if (parsed)
        soap_response_free(&sr);
}

/* ---- the kind ------------------------------------------------------------------------ */

static void soap_out_deliver(struct route *r, struct delivery *d)
{
    const struct message *m = d->msg;
    char err[1024] = "";
    size_t len = 0;
    enum dead_reason why = DEAD_INVALID;
    char *element = request_element(r, m, &len, &why, err, sizeof(err));
    if (element == NULL) {
        settle_dead(d, 0, why, NULL, "%s", err);
        return;
    }
    size_t env_len = 0;
    char *envelope = envelope_of(r, element, len, &env_len, err, sizeof(err));
    free(element);
    if (envelope == NULL) {
        settle_dead(d, 0, DEAD_INVALID, NULL, "%s", err);
        return;
    }
    char *action = action_of(r, m, err, sizeof(err));
    if (action == NULL) {
        free(envelope);
        settle_dead(d, 0, DEAD_INVALID, NULL, "cannot build the action: %s", err);
        return;
    }
    struct header_list h = {0};
    request_headers(r, m, action, &h);
    struct call *c = xcalloc(1, sizeof(*c));
    c->route = r;
    c->delivery = d;
    struct httpc_request req = {.method = "POST",
                                .url = opts(r)->url,
                                .headers = h.v,
                                .n_headers = h.n,
                                .body = envelope,
                                .body_len = env_len,
                                .timeout = opts(r)->timeout,
                                .max_response = (size_t)opts(r)->max_response};
    int rc = legacy_client_start(state(r)->http, &req, called, c);
    headers_free(&h);
    free(action);
    free(envelope);
    if (rc != 0) {
        free(c);
        settle_retry(d, 1, 0, "the HTTP client refused to start the call"); /* as http out */
        return;
    }
    struct soap_out_state *st = state(r);
    c->next = st->calls;
    if (st->calls)
        st->calls->prev = c;
    st->calls = c;
}

static void soap_out_validate(struct route *r, const struct sidecar_config *cfg,
                              struct config_report *rep)
{
    struct soap_out_opts *o = r->opts;
    char err[512];
    o->json = o->format && strcmp(o->format, "json") == 0;
    if ((o->wsse_username == NULL) != (o->wsse_password.path == NULL))
        config_report_add(rep, r->line,
                          "route \"%s\": set both wsse_username and wsse_password_file, or neither",
                          r->name);
    if (o->action && template_check(o->action, action_placeholders, err, sizeof(err)) != 0)
        config_report_add(rep, r->line, "route \"%s\": action %s (only {header.NAME} is known)",
                          r->name, err);
    else if (o->action && !template_has_placeholders(o->action) && !header_value_ok(o->action))
        config_report_add(rep, r->line,
                          "route \"%s\": action \"%s\" must not hold quotes or control characters",
                          r->name, o->action);
    for (size_t i = 0; i < o->headers.n; i++)
        if (!header_value_ok(o->headers.values[i]))
            config_report_add(rep, r->line,
                              "route \"%s\": headers.%s must not hold quotes or control characters",
                              r->name, o->headers.names[i]);
    char *where = xasprintf("outbound route \"%s\"", r->name);
    legacy_auth_validate(&o->auth, where, r->line, &o->headers, rep);
    legacy_tls_validate(&o->tls, o->url, where, r->line, rep);
    free(where);
}

static void soap_out_describe(const struct route *r, struct buf *out)
{
    const struct soap_out_opts *o = opts(r);
    buf_printf(out, "queue \"%s\" → SOAP %s POST %s (action \"%s\"%s%s, %d in flight, auth %s",
               r->queue, o->soap_version, o->url, o->action ? o->action : "",
               o->wsse_username ? ", UsernameToken" : "", r->transform_file ? ", transform" : "",
               r->concurrency, legacy_auth_describe(&o->auth));
    route_describe_rate(r, out);
    buf_puts(out, ")");
}

static int soap_out_start(struct route *r, char *err, size_t errlen)
{
    struct soap_out_state *st = xcalloc(1, sizeof(*st));
    st->version = strcmp(opts(r)->soap_version, "1.2") == 0 ? SOAP_1_2 : SOAP_1_1;
    st->http = legacy_client_new(r->loop, &(struct legacy_client_config){
                                              .route = r->name,
                                              .auth = &opts(r)->auth,
                                              .oauth2 = r->services->oauth2,
                                              .tls = &opts(r)->tls,
                                              .transport = r->services->legacy_transport,
                                          });
    r->state = st;
    return 0;
}

static void soap_out_stop(struct route *r)
{
    struct soap_out_state *st = state(r);
    if (st == NULL)
        return;
    legacy_client_free(st->http); /* aborts what still runs, without callbacks */
    while (st->calls) {
        struct call *c = st->calls;
        st->calls = c->next;
        log_delivery(LOG_WARN, r, c->delivery,
                     "call abandoned at shutdown; the broker will deliver the message again");
        abandon(c->delivery); /* the connection is closed: this only frees it */
        free(c);
    }
    free(st);
    r->state = NULL;
}

static bool soap_out_ready(struct route *r, struct buf *detail)
{
    return state(r) == NULL || legacy_client_ready(state(r)->http, detail);
}

static const struct legacy_auth *soap_out_legacy_auth(const struct route *r)
{
    return &opts(r)->auth;
}

const struct route_kind kind_soap_out = {
    .name = "soap",
    .direction = ROUTE_OUTBOUND,
    .summary = "consume, wrap each body in a SOAP envelope and call the legacy SOAP service",
    .paced = true,
    .keys = soap_out_keys,
    .opts_size = sizeof(struct soap_out_opts),
    .validate = soap_out_validate,
    .describe = soap_out_describe,
    .start = soap_out_start,
    .deliver = soap_out_deliver,
    .stop = soap_out_stop,
    .ready = soap_out_ready,
    .legacy_auth = soap_out_legacy_auth,
};
