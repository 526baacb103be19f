/*
 * http_front — publish-and-wait for the HTTP inbound kinds (http_front.h).
 * A request goes handler → http_front_publish → publisher → `published` on
 * the publisher's thread, which picks the outcome and hands it to the kind's
 * answers. A refusal at submit takes the same answers on the handler's thread.
 * The pending request (a copy of the kind's description plus the ids) is
 * malloc'd here and freed here, once the answer is out.
 */
#include "http_front.h"

#include "config.h"
#include "httpd.h"
#include "inbound.h"
#include "listen_tls.h"
#include "log.h"
#include "message.h"
#include "publisher.h"
#include "route.h"
#include "template.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_FIELD_MAX 1024 /* room for a field's text: longer ones are refused, never cut */

enum http_front_mode http_front_mode_of(const char *name)
{
    return name && strcmp(name, "rpc") == 0 ? HTTP_FRONT_RPC : HTTP_FRONT_EVENT;
}

/* Is name a source message_id_from may use: one of id_sources, then a name? */
static bool id_source_ok(const char *name, const char *const *id_sources)
{
    for (const char *const *src = id_sources; *src; src++) {
        size_t len = strlen(*src);
        if (strncmp(name, *src, len) != 0 || name[len] == '\0')
            continue;
        const char *rest = name + len;
        if (strcmp(*src, "header.") == 0) {
            for (const char *p = rest; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
                    return false;
            return true;
        }
        /* json.<path>: dotted names, none empty */
        return rest[0] != '.' && rest[strlen(rest) - 1] != '.' && strstr(rest, "..") == NULL;
    }
    return false;
}

static void validate_message_id_from(struct route *r, const struct http_front_config *c,
                                     const char *const *id_sources, struct config_report *rep)
{
    if (c->message_id_from == NULL || id_source_ok(c->message_id_from, id_sources))
        return;
    struct buf forms = {0};
    for (const char *const *src = id_sources; *src; src++)
        buf_printf(&forms, "%s\"%sNAME\"", forms.len ? " or " : "", *src);
    config_report_add(rep, r->line,
                      "route \"%s\": message_id_from = \"%s\" is not %s (e.g. \"%s\")", r->name,
                      c->message_id_from, forms.data,
                      strcmp(id_sources[0], "json.") == 0 ? "json.id" : "header.X-Request-Id");
    buf_free(&forms);
}

void http_front_validate(struct route *r, const struct sidecar_config *cfg,
                         struct http_front_config *c, const char *const *placeholders,
                         const char *key_hint, const char *const *id_sources,
                         struct config_report *rep)
{
    char err[1024];
    c->mode = http_front_mode_of(c->mode_name);
    if (c->path && c->path[0] != '/')
        config_report_add(rep, r->line, "route \"%s\": path \"%s\" must start with '/'", r->name,
                          c->path);
    if (r->routing_key && template_check(r->routing_key, placeholders, err, sizeof(err)) != 0)
        config_report_add(rep, r->line, "route \"%s\": routing_key %s%s", r->name, err, key_hint);
    http_auth_validate(&c->auth, r->name, r->line, rep);
    if (c->max_body > cfg->broker.max_message)
        config_report_add(rep, r->line,
                          "route \"%s\": max_body %d is above broker.max_message %d; lower it, or "
                          "raise broker.max_message to RabbitMQ's max_message_size",
                          r->name, c->max_body, cfg->broker.max_message);
    char *where = xasprintf("inbound route \"%s\"", r->name);
    listen_tls_validate(&c->tls, where, rep);
    free(where);
    validate_message_id_from(r, c, id_sources, rep);
}

const char *http_front_scheme(const struct http_front_config *c)
{
    return listen_tls_configured(&c->tls) ? "https" : "http";
}

const char *http_front_mutual(const struct http_front_config *c)
{
    return c->tls.client_ca ? ", client certificates" : "";
}

bool http_front_endpoint(const struct http_front_config *c, struct http_endpoint *out)
{
    out->listen = c->listen;
    out->path = c->path;
    out->tls = &c->tls;
    return true;
}

int http_front_serve(struct route *r, const struct http_front_config *c,
                     void (*handler)(struct http_request *, void *),
                     char *(*refusal)(void *, int *, const char *, const char **, size_t *),
                     char *err, size_t errlen)
{
    return inbound_serve_http(r, c->listen, &c->tls, c->path, (size_t)c->max_body, handler, refusal,
                              c->mode == HTTP_FRONT_RPC, err, errlen);
}

/* What message_id_from names for req; NULL with why. */
static const char *named_id(const struct http_front_config *c, const struct http_request *req,
                            json_t *json, char *buf, size_t n, char *why, size_t whylen)
{
    const char *from = c->message_id_from;
    if (strncmp(from, "header.", 7) == 0) {
        const char *v = http_request_header(req, from + 7);
        if (v == NULL)
            snprintf(why, whylen, "the request has no %s header", from + 7);
        return v;
    }
    char inner[256] = "";
    const char *v =
        inbound_json_placeholder(json, from, "the body is not JSON", buf, n, inner, sizeof(inner));
    if (v == NULL)
        snprintf(why, whylen, "%s", inner);
    return v;
}

bool http_front_message_id(const struct http_front_config *c, const struct http_request *req,
                           json_t *json, const char *fallback, const char **id, char *buf, size_t n,
                           char *why, size_t whylen)
{
    const char *v = http_request_header(req, "Idempotency-Key");
    const char *name = "Idempotency-Key";
    char problem[320];
    if (v == NULL && c->message_id_from != NULL) {
        name = c->message_id_from;
        v = named_id(c, req, json, buf, n, problem, sizeof(problem));
        if (v == NULL) {
            snprintf(why, whylen, "message_id_from \"%s\": %s (the message id comes from it)", name,
                     problem);
            return false;
        }
    } else if (v == NULL && fallback != NULL) {
        name = "webhook-id";
        v = fallback;
    }
    if (v != NULL && !inbound_id_acceptable(v)) {
        if (c->message_id_from != NULL && name == c->message_id_from)
            snprintf(why, whylen,
                     "message_id_from \"%s\" must give 1 to 255 printable characters (a message "
                     "id)",
                     name);
        else
            snprintf(why, whylen, "%s must be 1 to 255 printable characters", name);
        return false;
    }
    *id = v;
    return true;
}

struct log_ctx http_front_log_ctx(const struct http_front_request *p)
{
    return (struct log_ctx){
        .route = p->route->name, .message_id = p->message_id, .correlation_id = p->correlation_id};
}

static void pending_free(struct http_front_request *p)
{
    free(p->message_id);
    free(p->correlation_id);
    free(p);
}

static void answer_unavailable(const struct http_front_request *p, const char *why)
{
    char seconds[16];
    snprintf(seconds, sizeof(seconds), "%d", p->retry_after);
    struct header h = {"Retry-After", seconds};
    p->answers->unavailable(p, why, &h);
}

/* Publisher thread: the broker answered (or the connection died). */
static void published(void *arg, struct publish_result *res)
{
    struct http_front_request *p = arg;
    const struct http_front_answers *a = p->answers;
    struct log_ctx ctx = http_front_log_ctx(p);
    switch (res->status) {
    case PUBLISH_OK:
    case PUBLISH_UNROUTABLE:
        if (p->rpc && res->status == PUBLISH_OK) {
            if (res->reply != NULL)
                log_event(LOG_DEBUG, &ctx, "rpc reply received");
            a->rpc_reply(p, res->reply);
        } else if (p->rpc) {
            log_event(LOG_WARN, &ctx, "rpc request unroutable; parked in %s", p->route->dlq);
            a->unroutable(p);
        } else {
            log_event(LOG_DEBUG, &ctx, "published (%s)", publish_status_name(res->status));
            a->accepted(p, res->status == PUBLISH_OK);
        }
        break;
    case PUBLISH_RPC_TIMEOUT:
        a->rpc_timeout(p);
        break;
    case PUBLISH_NACKED:
    case PUBLISH_UNAVAILABLE:
        answer_unavailable(p, res->detail ? res->detail : publish_status_name(res->status));
        break;
    case PUBLISH_INVALID:
        a->invalid(p, res->detail ? res->detail : "invalid");
        break;
    }
    pending_free(p);
}

void http_front_publish(const struct http_front_request *how, struct message *m)
{
    struct http_front_request *p = xcalloc(1, sizeof(*p));
    *p = *how;
    p->message_id = xstrdup(m->message_id);
    p->correlation_id = xstrdup(m->correlation_id);
    const char *why = NULL;
    int refused = inbound_publish(p->route, m, p->rpc, p->timeout, published, p, &why);
    if (refused == 0)
        return; /* published answers, and frees p */
    if (refused == PUBLISH_INVALID)
        p->answers->invalid(p, why ? why : "invalid");
    else
        answer_unavailable(p, why ? why : publish_status_name(refused));
    pending_free(p);
}

void http_front_pass_headers(const struct route *r, const struct http_request *req,
                             struct message *m)
{
    for (size_t i = 0; i < r->pass_headers.n; i++) {
        const char *v = http_request_header(req, r->pass_headers.v[i]);
        if (v == NULL)
            continue;
        char *lower = xstrdup(r->pass_headers.v[i]);
        for (char *c = lower; *c; c++)
            *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
        message_set_header(m, lower, v);
        free(lower);
    }
}
