/*
 * soap_in_answer — everything a soap inbound route answers (soap_in_answer.h):
 * Faults, the one-way 202, and rpc replies wrapped in a response envelope.
 * The functions at the end are soap's table of answers for http_front.c;
 * they run on the publisher's thread, or on the handler's for a refusal at
 * submit. Each builds its body, sends it and frees it: nothing outlives a call.
 */
#include "soap_in_answer.h"

#include "httpd.h"
#include "inbound.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "route.h"
#include "util.h"
#include "xml_safe.h"
#include "xmljson.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest faultstring taken from an rpc reply's body. */
#define FAULT_REASON_MAX 2000

static enum soap_version version_of(const struct http_front_request *p)
{
    return (enum soap_version)p->version;
}

const char *soap_in_version_name(enum soap_version v)
{
    return v == SOAP_1_2 ? "1.2" : "1.1";
}

const char *soap_in_media_type(enum soap_version v)
{
    return v == SOAP_1_2 ? "application/soap+xml; charset=utf-8" : "text/xml; charset=utf-8";
}

int soap_in_client_fault_status(enum soap_version v)
{
    return v == SOAP_1_2 ? 400 : 500;
}

void soap_in_fault(struct http_request *req, enum soap_version v, bool client, int status,
                   const char *reason, const struct header *headers, size_t n_headers)
{
    size_t len = 0;
    char *xml = soap_fault_build(v, client, reason, &len);
    if (xml == NULL) {
        http_respond(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    http_respond_headers(req, status, soap_in_media_type(v), xml, len, headers, n_headers);
    free(xml);
}

void soap_in_refuse(struct route *r, struct http_request *req, enum soap_version v, int status,
                    const char *class, const char *detail)
{
    metric_inc(r->metrics.refused);
    log_warn(r->name, "%s %s refused (client error: %s) → SOAP %s %s fault, HTTP %d: %s",
             http_request_method(req), http_request_path(req), class, soap_in_version_name(v),
             v == SOAP_1_2 ? "Sender" : "Client", status, detail);
    soap_in_fault(req, v, true, status, detail, NULL, 0);
}

/* The rpc reply's body as the XML of the response Body: XML as it is, JSON
 * converted. NULL with err when it cannot be. *empty when there is nothing. */
static char *reply_xml(const struct message *reply, size_t *len, bool *empty, char *err,
                       size_t errlen)
{
    *empty = false;
    size_t n = reply->body_len;
    const char *b = reply->body ? reply->body : "";
    while (n > 0 && strchr(" \t\r\n", b[n - 1]))
        n--;
    if (n == 0) {
        *empty = true;
        return NULL;
    }
    if (!inbound_is_json(reply->content_type)) {
        *len = reply->body_len;
        return xstrndup(b, reply->body_len);
    }
    char why[512];
    bool parsed;
    char *xml = xmljson_text_to_xml(b, reply->body_len, len, &parsed, why, sizeof(why));
    if (xml == NULL)
        snprintf(err, errlen, "%s: %s",
                 parsed ? "the JSON reply cannot become XML" : "the reply is not valid JSON", why);
    return xml;
}

/* An envelope with an empty Body (a reply without content). */
static char *empty_envelope(enum soap_version v, size_t *len)
{
    char *s = xasprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        "<soap:Envelope xmlns:soap=\"%s\"><soap:Body/></soap:Envelope>\n",
                        v == SOAP_1_2 ? SOAP_12_NS : SOAP_11_NS);
    *len = strlen(s);
    return s;
}

static void answer_reply_fault(const struct http_front_request *p, const struct message *reply,
                               const char *kind, const struct header *h)
{
    bool client = strcasecmp(kind, "client") == 0 || strcasecmp(kind, "sender") == 0;
    struct log_ctx ctx = http_front_log_ctx(p);
    if (!client && strcasecmp(kind, "server") != 0 && strcasecmp(kind, "receiver") != 0)
        log_event(LOG_WARN, &ctx,
                  "reply header x-soap-fault = \"%s\" is neither client nor server; answering a "
                  "Server fault",
                  kind);
    size_t n = reply->body_len < FAULT_REASON_MAX ? reply->body_len : FAULT_REASON_MAX;
    char *reason = xstrndup(reply->body ? reply->body : "", n);
    log_event(LOG_INFO, &ctx, "rpc reply is a %s fault", client ? "client" : "server");
    soap_in_fault(p->req, version_of(p), client,
                  client ? soap_in_client_fault_status(version_of(p)) : 500, reason, h, 1);
    free(reason);
}

static void response_envelope(const struct http_front_request *p, const struct message *reply)
{
    struct header h = {"X-Correlation-ID", p->correlation_id};
    if (reply == NULL) {
        soap_in_fault(p->req, version_of(p), false, 500, "the service sent no reply", &h, 1);
        return;
    }
    const char *fault = message_header(reply, "x-soap-fault");
    if (fault != NULL) {
        answer_reply_fault(p, reply, fault, &h);
        return;
    }
    char err[1024] = "";
    size_t len = 0;
    bool empty;
    char *xml = reply_xml(reply, &len, &empty, err, sizeof(err));
    char *envelope = NULL;
    size_t env_len = 0;
    if (empty) {
        envelope = empty_envelope(version_of(p), &env_len);
    } else if (xml != NULL) {
        struct xml_limits lim = {.max_bytes = len + 1, .max_depth = XML_SAFE_MAX_DEPTH_CAP};
        envelope = soap_envelope_wrap(version_of(p), xml, len, NULL, NULL, &lim, &env_len, err,
                                      sizeof(err));
    }
    free(xml);
    if (envelope == NULL) {
        struct log_ctx ctx = http_front_log_ctx(p);
        log_event(LOG_ERROR, &ctx,
                  "rpc reply cannot be answered as SOAP (the replier must send one XML element, or "
                  "JSON by XMLJSON.md): %s",
                  err);
        soap_in_fault(p->req, version_of(p), false, 500, "the service sent an unusable reply", &h,
                      1);
        return;
    }
    http_respond_headers(p->req, 200, soap_in_media_type(version_of(p)), envelope, env_len, &h, 1);
    free(envelope);
}

/* ---- soap's answers for http_front ---------------------------------------------------- */

/* One-way: 202 and an empty body (WS-I BP R2714); X-Sidecar-Routed only when it was not. */
static void one_way_accepted(const struct http_front_request *p, bool routed)
{
    struct header h[3] = {{"X-Correlation-ID", p->correlation_id},
                          {"X-Message-ID", p->message_id},
                          {"X-Sidecar-Routed", "false"}};
    http_respond_headers(p->req, 202, NULL, "", 0, h, routed ? 2 : 3);
}

/* Spooled: 202 and an empty body as for any one-way call; X-Sidecar-Spooled says it
 * is on the sidecar's disk, not yet at the broker. */
static void one_way_spooled(const struct http_front_request *p)
{
    struct header h[3] = {{"X-Correlation-ID", p->correlation_id},
                          {"X-Message-ID", p->message_id},
                          {"X-Sidecar-Spooled", "true"}};
    http_respond_headers(p->req, 202, NULL, "", 0, h, 3);
}

static void server_fault_unroutable(const struct http_front_request *p)
{
    struct header h = {"X-Correlation-ID", p->correlation_id};
    soap_in_fault(p->req, version_of(p), false, 500, "no service is bound to receive this request",
                  &h, 1);
}

static void server_fault_timeout(const struct http_front_request *p)
{
    struct header h = {"X-Correlation-ID", p->correlation_id};
    char reason[128];
    snprintf(reason, sizeof(reason), "no reply from the service within %.1fs", p->timeout);
    struct log_ctx ctx = http_front_log_ctx(p);
    log_event(LOG_WARN, &ctx, "answered a Server fault: %s", reason);
    soap_in_fault(p->req, version_of(p), false, 500, reason, &h, 1);
}

static void server_fault_unavailable(const struct http_front_request *p, const char *why,
                                     const struct header *retry_after)
{
    char reason[512];
    snprintf(reason, sizeof(reason), "not accepted, try again later: %s", why);
    log_event(LOG_WARN, &(struct log_ctx){.route = p->route->name, .message_id = p->message_id},
              "answered 503 (Server fault): %s", why);
    soap_in_fault(p->req, version_of(p), false, 503, reason, retry_after, 1);
}

static void client_fault_unpublishable(const struct http_front_request *p, const char *why)
{
    soap_in_refuse(p->route, p->req, version_of(p), soap_in_client_fault_status(version_of(p)),
                   "not publishable", why);
}

const struct http_front_answers soap_in_answers = {
    .accepted = one_way_accepted,
    .spooled = one_way_spooled,
    .unroutable = server_fault_unroutable,
    .rpc_reply = response_envelope,
    .rpc_timeout = server_fault_timeout,
    .unavailable = server_fault_unavailable,
    .invalid = client_fault_unpublishable,
};
