/*
 * soap_in — a legacy SOAP client → AMQP. The client POSTs a SOAP 1.1
 * (text/xml + SOAPAction) or 1.2 (application/soap+xml; action=) envelope;
 * we check auth (HTTP HMAC/bearer, optionally a WS-Security UsernameToken),
 * parse it with the hardened XML layer, and publish the first Body child —
 * as standalone XML, or as JSON by transforms/XMLJSON.md — with the action,
 * operation and version in x-soap-* headers. One-way (mode event) answers
 * 202 with an empty body after the confirm (WS-I BP); mode rpc waits for the
 * reply message and returns its body inside a response envelope — except for
 * operations the route's WSDL declares one-way, which get the 202 (so one
 * route serves a whole WSDL port).
 *
 * The action follows WS-I BP: a SOAP 1.1 request must carry SOAPAction, and
 * with a WSDL the action (1.1 SOAPAction, 1.2 action= when sent) must be the
 * soapAction its binding declares for the Body's operation.
 *
 * Everything this route answers is SOAP: refusals are Faults in the request's
 * version (Client/Sender: 500 for 1.1, 400 for 1.2; 401, 413, 415 where HTTP
 * says more), broker trouble a Server/Receiver Fault with 503 + Retry-After.
 * `GET path?wsdl` serves the configured WSDL.
 *
 * This file reads a request (pre-checks, envelope, action, UsernameToken) and
 * builds its message; http_front.c publishes it and waits, and the answers
 * themselves are soap_in_answer.c's.
 *
 * Threads: the handler runs on a libmicrohttpd thread; the answers run on the
 * publisher's thread (or the handler's, for a refusal at submit).
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
#include "soap_envelope.h"
#include "soap_in_answer.h"
#include "soap_wsdl.h"
#include "template.h"
#include "util.h"
#include "xml_safe.h"
#include "xmljson.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum soap_in_format {
    SOAP_IN_XML,  /* the operation element as it is (application/xml) */
    SOAP_IN_JSON, /* converted by transforms/XMLJSON.md (application/json) */
};

struct soap_in_opts {
    struct http_front_config front; /* listen, path, max_body, mode, timeout, retry_after, auth */
    char *wsdl;                     /* resolved path, or NULL */
    char *wsdl_address;
    char *format_name;          /* the key's text */
    enum soap_in_format format; /* what validate made of it */
    int max_depth;
    char *wsse_username;
    struct secret wsse_password;
    struct soap_wsdl served; /* not a key: loaded by validate, freed by free_opts */
};

#define O(field) offsetof(struct soap_in_opts, field)

static const struct config_key auth_keys[] = {HTTP_AUTH_KEYS(O(front.auth)), {0}};

static const struct config_key soap_in_keys[] = {
    {"listen", KEY_LISTEN, O(front.listen), 0, "127.0.0.1:8080", NULL, 0, 0, NULL,
     "host:port to listen on (several routes may share one)"},
    {"path", KEY_STRING, O(front.path), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "request path of the service endpoint, e.g. \"/ws\""},
    {"wsdl", KEY_FILE, O(wsdl), 0, NULL, NULL, 0, 0, NULL,
     "WSDL served at GET path?wsdl (path relative to the config file)"},
    {"wsdl_address", KEY_URL, O(wsdl_address), 0, NULL, NULL, 0, 0, NULL,
     "endpoint URL written into the served WSDL's soap:address locations (default: as in the "
     "file)"},
    {"format", KEY_ENUM, O(format_name), 0, "xml", "xml|json", 0, 0, NULL,
     "publish the first Body child as XML (application/xml) or as JSON (see XMLJSON.md)"},
    {"mode", KEY_ENUM, O(front.mode_name), 0, "event", "event|rpc", 0, 0, NULL,
     "event: one-way, 202 once confirmed; rpc: wait for the reply and return it in a response "
     "envelope (except operations the WSDL declares one-way)"},
    {"timeout", KEY_NUMBER, O(front.timeout), 0, "30", NULL, 0.01, 3600, NULL,
     "rpc: seconds to wait for the reply (then a Server/Receiver fault)"},
    {"max_body", KEY_INT, O(front.max_body), 0, "1048576", NULL, 1, 268435456, NULL,
     "largest accepted request in bytes (larger gets a Client fault with 413)"},
    {"max_depth", KEY_INT, O(max_depth), 0, "128", NULL, 4, 256, NULL,
     "deepest element nesting accepted in a request"},
    {"retry_after", KEY_INT, O(front.retry_after), 0, "5", NULL, 1, 3600, NULL,
     "seconds in the Retry-After header of 503 answers"},
    {"auth", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, auth_keys, "HTTP request authentication"},
    {"wsse_username", KEY_STRING, O(wsse_username), 0, NULL, NULL, 0, 0, NULL,
     "require a WS-Security UsernameToken with this Username (with wsse_password_file)"},
    {"wsse_password_file", KEY_SECRET, O(wsse_password), 0, NULL, NULL, 0, 0, NULL,
     "the UsernameToken's password (PasswordText), compared in constant time"},
    HTTP_FRONT_TLS_KEY(O(front.tls)),
    {"message_id_from", KEY_STRING, O(front.message_id_from), 0, NULL, NULL, 0, 0, NULL,
     "where a request without Idempotency-Key gets its message_id: \"header.<Name>\" (e.g. "
     "\"header.X-Request-Id\"); a request without that header gets a Client/Sender fault"},
    SPOOL_KEY(O(front.spool)),
    {0},
};

static const char *const placeholders[] = {"operation", "header.", "path", NULL};
static const char *const id_sources[] = {"header.", NULL};

static const struct soap_in_opts *opts(const struct route *r)
{
    return r->opts;
}

static bool is_rpc(const struct route *r)
{
    return opts(r)->front.mode == HTTP_FRONT_RPC;
}

/* Does this request wait for a reply? In rpc mode, all but the WSDL's one-way operations. */
static bool request_is_rpc(const struct route *r, const struct soap_request *sr)
{
    if (!is_rpc(r))
        return false;
    return !soap_wsdl_one_way(&opts(r)->served, sr->operation_name);
}

/* The version to answer in before the envelope was read: what Content-Type announces. */
static enum soap_version version_hint(const char *content_type)
{
    return inbound_media_type_is(content_type, "application/soap+xml") ? SOAP_1_2 : SOAP_1_1;
}

/* ---- reading a request ------------------------------------------------------------------ */

struct key_ctx {
    struct http_request *req;
    const struct soap_request *soap;
};

static const char *key_lookup(void *arg, const char *name, char *why, size_t whylen)
{
    struct key_ctx *k = arg;
    if (strcmp(name, "operation") == 0)
        return k->soap->operation_name;
    if (strncmp(name, "header.", 7) == 0)
        return http_request_header(k->req, name + 7);
    if (strcmp(name, "path") == 0)
        return http_request_path(k->req);
    return NULL;
}

static const char *request_header(void *arg, const char *name)
{
    return http_request_header(arg, name);
}

/* The request's action — 1.1: the SOAPAction header, trimmed and unquoted
 * (R1109 wants quotes; many clients send none, so both are read); 1.2: the
 * action= parameter of the Content-Type — or NULL when there is none. */
static char *soap_action(struct http_request *req, const struct soap_request *sr)
{
    if (sr->version == SOAP_1_2)
        return sr->action ? xstrdup(sr->action) : NULL;
    const char *h = http_request_header(req, "SOAPAction");
    if (h == NULL)
        return NULL;
    size_t n = strlen(h);
    while (n > 0 && (h[0] == ' ' || h[0] == '\t'))
        h++, n--;
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
        h++;
        n -= 2;
    }
    return xstrndup(h, n);
}

/* WS-I BP 1.1/1.2 on the action: SOAP 1.1 requests carry SOAPAction (SOAP 1.1
 * section 6.1.1, R2744); with a WSDL, an action that is sent must be the
 * soapAction the binding declares for the Body's operation, "" when it
 * declares none (R2744, R2745). An operation the WSDL does not describe cannot
 * be checked and passes. NULL when the request passes, else the faultstring
 * (malloc'd). */
static char *action_refusal(const struct route *r, struct http_request *req,
                            const struct soap_request *sr)
{
    const struct soap_wsdl *w = &opts(r)->served;
    char *action = soap_action(req, sr);
    enum soap_wsdl_verdict verdict =
        w->text ? soap_wsdl_action_check(w, sr->operation_name, action ? action : "")
                : SOAP_WSDL_ACTION_UNKNOWN;
    struct buf expected = {0};
    if (verdict != SOAP_WSDL_ACTION_UNKNOWN) {
        buf_printf(&expected, "; %s expects ", sr->operation_name);
        soap_wsdl_describe_actions(w, sr->operation_name, &expected);
    }
    char *why = NULL;
    if (action == NULL && sr->version == SOAP_1_1)
        why = xasprintf("SOAP 1.1 requests must carry a SOAPAction header (SOAP 1.1 section 6.1.1, "
                        "WS-I BP R2744)%s",
                        expected.data ? expected.data : "");
    else if (action != NULL && verdict == SOAP_WSDL_ACTION_MISMATCH)
        why = xasprintf("%s \"%.200s\" does not match the WSDL%s (WS-I BP R2744)",
                        sr->version == SOAP_1_2 ? "action" : "SOAPAction", action, expected.data);
    buf_free(&expected);
    free(action);
    return why;
}

/* Refuses req when its action breaks action_refusal's rules; false when it was answered. */
static bool action_accepted(struct route *r, struct http_request *req,
                            const struct soap_request *sr)
{
    char *why = action_refusal(r, req, sr);
    if (why == NULL)
        return true;
    soap_in_refuse(r, req, sr->version, soap_in_client_fault_status(sr->version), "soap action",
                   why);
    free(why);
    return false;
}

/* The WS-Security UsernameToken check; NULL when it passes, else why (for the log). */
static const char *wsse_check(const struct soap_in_opts *o, const struct soap_request *sr)
{
    if (o->wsse_username == NULL)
        return NULL;
    if (sr->username == NULL)
        return "no wsse:Security UsernameToken in the Header";
    if (sr->password_digest)
        return "UsernameToken uses PasswordDigest; this route accepts PasswordText only";
    if (sr->password == NULL)
        return "UsernameToken has no Password";
    bool user_ok = bytes_equal_ct(o->wsse_username, strlen(o->wsse_username), sr->username,
                                  strlen(sr->username));
    secrets_read_lock();
    bool pass_ok = o->wsse_password.value != NULL &&
                   bytes_equal_ct(o->wsse_password.value, o->wsse_password.len, sr->password,
                                  strlen(sr->password));
    secrets_read_unlock();
    if (!user_ok)
        return "UsernameToken: unknown username";
    return pass_ok ? NULL : "UsernameToken: wrong password";
}

/* The message body: the operation element as XML, or as JSON (transformed when
 * the route has a transform). NULL with err when the transform failed. */
static char *payload_of(struct route *r, const struct soap_request *sr, size_t *len,
                        const char **content_type, char *err, size_t errlen)
{
    if (opts(r)->format == SOAP_IN_XML) {
        *content_type = "application/xml";
        char *xml = xml_node_serialize(sr->operation, len);
        if (xml == NULL)
            abort(); /* only when memory ran out, as xmalloc would */
        return xml;
    }
    *content_type = "application/json";
    json_t *j = xmljson_from_node(sr->operation);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        abort();
    *len = strlen(text);
    if (r->transform == NULL)
        return text;
    char *out = transform_apply(r->transform, text, *len, len, err, errlen);
    free(text);
    return out;
}

static bool wsdl_requested(struct http_request *req)
{
    return http_request_has_query_key(req, "wsdl") || http_request_has_query_key(req, "WSDL");
}

static void serve_wsdl(struct route *r, struct http_request *req)
{
    const struct soap_in_opts *o = opts(r);
    if (o->served.text == NULL) {
        http_respond_error(req, 404, "this SOAP route has no WSDL configured (wsdl = \"…\")");
        return;
    }
    http_respond(req, 200, "text/xml; charset=utf-8", o->served.text, o->served.len);
}

static void add_headers(struct route *r, struct http_request *req, struct message *m,
                        const struct soap_request *sr)
{
    char *action = soap_action(req, sr);
    if (action && action[0])
        message_set_header(m, "x-soap-action", action);
    free(action);
    message_set_header(m, "x-soap-operation", sr->operation_name);
    if (sr->operation_ns)
        message_set_header(m, "x-soap-namespace", sr->operation_ns);
    message_set_header(m, "x-soap-version", soap_in_version_name(sr->version));
    http_front_pass_headers(r, req, m);
}

/* Checks that apply before the envelope is read; false when req was answered. */
static bool precheck(struct route *r, struct http_request *req)
{
    const struct soap_in_opts *o = opts(r);
    const char *ct = http_request_header(req, "Content-Type");
    enum soap_version hint = version_hint(ct);
    size_t len;
    const char *body = http_request_body(req, &len);
    const char *why = NULL;
    if (!http_auth_check(&o->front.auth, request_header, req, body, len, &why)) {
        metric_inc(r->metrics.refused);
        log_warn(r->name, "POST %s refused (client error: auth) → HTTP 401: %s",
                 http_request_path(req), why);
        struct header h = {"WWW-Authenticate", o->front.auth.bearer_token.path ? "Bearer" : "HMAC"};
        soap_in_fault(req, hint, true, 401, "unauthorized", &h, 1);
        return false;
    }
    const char *idem = http_request_header(req, "Idempotency-Key");
    const char *corr = http_request_header(req, "X-Correlation-ID");
    if ((idem && !inbound_id_acceptable(idem)) || (corr && !inbound_id_acceptable(corr))) {
        soap_in_refuse(
            r, req, hint, soap_in_client_fault_status(hint), "header",
            "Idempotency-Key and X-Correlation-ID must be 1 to 255 printable characters");
        return false;
    }
    if (ct == NULL) {
        soap_in_refuse(
            r, req, hint, 415, "content type",
            "no Content-Type: SOAP 1.1 is sent as text/xml, SOAP 1.2 as application/soap+xml");
        return false;
    }
    return true;
}

/* Parses req's envelope into sr; false when req was answered with a fault. */
static bool parse_envelope(struct route *r, struct http_request *req, struct soap_request *sr)
{
    const struct soap_in_opts *o = opts(r);
    size_t len;
    const char *body = http_request_body(req, &len);
    struct xml_limits lim = {.max_bytes = (size_t)o->front.max_body,
                             .max_depth = (unsigned)o->max_depth};
    char err[1024] = "";
    int rc = soap_request_parse(body, len, http_request_header(req, "Content-Type"), &lim, sr, err,
                                sizeof(err));
    if (rc == SOAP_ERR_CONTENT_TYPE) {
        soap_in_refuse(r, req, sr->version, 415, "content type", err);
        return false;
    }
    if (rc != 0) {
        soap_in_refuse(r, req, sr->version, soap_in_client_fault_status(sr->version), "malformed",
                       err);
        return false;
    }
    const char *why = wsse_check(o, sr);
    if (why != NULL) {
        metric_inc(r->metrics.refused);
        log_warn(r->name, "POST %s refused (client error: wsse) → SOAP %s fault: %s",
                 http_request_path(req), sr->version == SOAP_1_2 ? "Sender" : "Client", why);
        soap_in_fault(req, sr->version, true, soap_in_client_fault_status(sr->version),
                      "authentication failed", NULL, 0);
        soap_request_free(sr);
        return false;
    }
    return true;
}

static void publish(struct route *r, struct http_request *req, struct soap_request *sr)
{
    const struct soap_in_opts *o = opts(r);
    char err[1024] = "";
    const char *message_id = NULL;
    char id_buf[512];
    if (!http_front_message_id(&o->front, req, NULL, NULL, &message_id, id_buf, sizeof(id_buf), err,
                               sizeof(err))) {
        soap_in_refuse(r, req, sr->version, soap_in_client_fault_status(sr->version), "message id",
                       err);
        return;
    }
    size_t len = 0;
    const char *content_type;
    char *payload = payload_of(r, sr, &len, &content_type, err, sizeof(err));
    if (payload == NULL) {
        char reason[1100];
        snprintf(reason, sizeof(reason), "transform failed: %s", err);
        soap_in_refuse(r, req, sr->version, soap_in_client_fault_status(sr->version), "transform",
                       reason);
        return;
    }
    struct key_ctx k = {.req = req, .soap = sr};
    char *key = inbound_routing_key(r, key_lookup, &k, err, sizeof(err));
    if (key == NULL) {
        free(payload);
        char reason[1100];
        snprintf(reason, sizeof(reason), "cannot build the routing key: %s", err);
        soap_in_refuse(r, req, sr->version, soap_in_client_fault_status(sr->version), "routing key",
                       reason);
        return;
    }
    struct inbound_ids ids = {.message_id = message_id,
                              .correlation_id = http_request_header(req, "X-Correlation-ID"),
                              .traceparent = http_request_header(req, "traceparent")};
    struct message *m = inbound_message(r, payload, len, content_type, &ids);
    m->routing_key = key;
    add_headers(r, req, m, sr);

    http_front_publish(&(struct http_front_request){.route = r,
                                                    .req = req,
                                                    .answers = &soap_in_answers,
                                                    .rpc = request_is_rpc(r, sr),
                                                    .timeout = o->front.timeout,
                                                    .retry_after = o->front.retry_after,
                                                    .version = sr->version},
                       m);
}

static void handle(struct http_request *req, void *arg)
{
    struct route *r = arg;
    const char *method = http_request_method(req);
    if (strcmp(method, "GET") == 0 && wsdl_requested(req)) {
        serve_wsdl(r, req);
        return;
    }
    metric_inc(r->metrics.received);
    if (strcmp(method, "POST") != 0) {
        struct header h = {"Allow", opts(r)->served.text ? "POST, GET" : "POST"};
        metric_inc(r->metrics.refused);
        soap_in_fault(req, SOAP_1_1, true, 405,
                      opts(r)->served.text ? "SOAP requests are POSTed; GET ?wsdl for the WSDL"
                                           : "SOAP requests are POSTed",
                      &h, 1);
        return;
    }
    if (!precheck(r, req))
        return;
    struct soap_request sr;
    if (!parse_envelope(r, req, &sr))
        return;
    if (!action_accepted(r, req, &sr)) {
        soap_request_free(&sr);
        return;
    }
    publish(r, req, &sr);
    soap_request_free(&sr);
}

/* Server thread: a body over max_body, refused before we read it — as a SOAP fault. */
static char *too_large(void *arg, int *status, const char *request_content_type,
                       const char **content_type, size_t *len)
{
    struct route *r = arg;
    enum soap_version v = version_hint(request_content_type);
    char reason[160];
    snprintf(reason, sizeof(reason), "request larger than this service accepts (%d bytes)",
             opts(r)->front.max_body);
    metric_inc(r->metrics.received);
    metric_inc(r->metrics.refused);
    log_warn(r->name, "POST %s refused (client error: too large) → SOAP %s %s fault, HTTP %d: %s",
             opts(r)->front.path, soap_in_version_name(v), v == SOAP_1_2 ? "Sender" : "Client",
             *status, reason);
    *content_type = soap_in_media_type(v);
    return soap_fault_build(v, true, reason, len);
}

/* ---- the kind ---------------------------------------------------------------------------- */

static void soap_in_validate(struct route *r, const struct sidecar_config *cfg,
                             struct config_report *rep)
{
    struct soap_in_opts *o = r->opts;
    char err[1024];
    o->format =
        strcmp(o->format_name ? o->format_name : "", "json") == 0 ? SOAP_IN_JSON : SOAP_IN_XML;
    http_front_validate(r, cfg, &o->front, placeholders,
                        " (soap routes know {operation}, {header.NAME} and {path})", id_sources,
                        rep);
    if ((o->wsse_username == NULL) != (o->wsse_password.path == NULL))
        config_report_add(rep, r->line,
                          "route \"%s\": set both wsse_username and wsse_password_file, or neither",
                          r->name);
    if (r->transform_file && o->format != SOAP_IN_JSON)
        config_report_add(
            rep, r->line,
            "route \"%s\": a transform works on JSON; set format = \"json\" or remove transform",
            r->name);
    if (o->wsdl_address && o->wsdl == NULL)
        config_report_add(rep, r->line, "route \"%s\": wsdl_address needs wsdl = \"file.wsdl\"",
                          r->name);
    if (o->wsdl && access(o->wsdl, R_OK) == 0 &&
        soap_wsdl_load(o->wsdl, o->wsdl_address, &o->served, err, sizeof(err)) != 0)
        config_report_add(rep, r->line, "route \"%s\": wsdl %s", r->name, err);
}

static void soap_in_free_opts(struct route *r)
{
    struct soap_in_opts *o = r->opts;
    if (o == NULL)
        return;
    soap_wsdl_free(&o->served);
}

static void soap_in_describe(const struct route *r, struct buf *out)
{
    const struct soap_in_opts *o = opts(r);
    buf_printf(out,
               "SOAP 1.1/1.2 %s://%s%s → exchange \"%s\" key \"%s\" (%s, %s, auth %s%s%s%s%s%s",
               http_front_scheme(&o->front), o->front.listen, o->front.path, r->exchange,
               r->routing_key, o->front.mode_name, o->format_name,
               http_auth_describe(&o->front.auth), o->wsse_username ? " + UsernameToken" : "",
               http_front_mutual(&o->front), o->wsdl ? ", wsdl" : "",
               r->transform_file ? ", transform" : "", http_front_spool(&o->front));
    if (is_rpc(r) && o->served.one_way.n > 0) {
        buf_puts(out, "; one-way by the WSDL: ");
        soap_wsdl_describe_one_way(&o->served, out);
    }
    buf_puts(out, ")");
}

static bool soap_in_endpoint(const struct route *r, struct http_endpoint *out)
{
    return http_front_endpoint(&opts(r)->front, out);
}

static int soap_in_start(struct route *r, char *err, size_t errlen)
{
    return http_front_serve(r, &opts(r)->front, handle, too_large, err, errlen);
}

const struct route_kind kind_soap_in = {
    .name = "soap",
    .direction = ROUTE_INBOUND,
    .summary = "a legacy SOAP client calls the sidecar, which publishes the Body (one-way or rpc)",
    .keys = soap_in_keys,
    .opts_size = sizeof(struct soap_in_opts),
    .validate = soap_in_validate,
    .describe = soap_in_describe,
    .endpoint = soap_in_endpoint,
    .free_opts = soap_in_free_opts,
    .start = soap_in_start,
    .drain = http_front_drain,
    .stop = http_front_stop,
    .ready = http_front_ready,
    .spools = http_front_spools,
};
