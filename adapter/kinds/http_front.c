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
#include "spool.h"
#include "spool_message.h"
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
    spool_inherit(&c->spool, &cfg->spool, r->name, c->mode == HTTP_FRONT_RPC);
    spool_validate(&c->spool, r->name, c->mode == HTTP_FRONT_RPC, rep);
    c->spool.max_message = cfg->broker.max_message;
}

const char *http_front_scheme(const struct http_front_config *c)
{
    return listen_tls_configured(&c->tls) ? "https" : "http";
}

const char *http_front_mutual(const struct http_front_config *c)
{
    return c->tls.client_ca ? ", client certificates" : "";
}

const char *http_front_spool(const struct http_front_config *c)
{
    return c->spool.dir ? ", spool" : "";
}

bool http_front_endpoint(const struct http_front_config *c, struct http_endpoint *out)
{
    out->listen = c->listen;
    out->path = c->path;
    out->tls = &c->tls;
    out->spool_dir = c->spool.dir;
    return true;
}

int http_front_serve(struct route *r, const struct http_front_config *c,
                     void (*handler)(struct http_request *, void *),
                     char *(*refusal)(void *, int *, const char *, const char **, size_t *),
                     char *err, size_t errlen)
{
    /* r->state set already: the spool of the route this one replaces (a reload). */
    if (c->spool.dir != NULL && r->state != NULL)
        spool_adopt(r->state, r, &c->spool, (size_t)c->max_body);
    else if (c->spool.dir != NULL &&
             (r->state = spool_start(r, &c->spool, (size_t)c->max_body, err, errlen)) == NULL)
        return -1;
    int rc = inbound_serve_http(r, c->listen, &c->tls, c->path, (size_t)c->max_body, handler,
                                refusal, c->mode == HTTP_FRONT_RPC, err, errlen);
    if (rc != 0) {
        spool_stop(r->state);
        r->state = NULL;
    }
    return rc;
}

void http_front_drain(struct route *r)
{
    spool_drain(r->state);
}

void http_front_stop(struct route *r)
{
    /* Handed over by a reload, the spool lives on with the new route: the pointer
     * stays for an answer still owed to one of this route's requests. */
    if (!spool_stop(r->state))
        r->state = NULL;
}

bool http_front_spools(struct route *r)
{
    return r->state != NULL && spool_has_room(r->state);
}

bool http_front_ready(struct route *r, struct buf *detail)
{
    if (r->state != NULL)
        spool_describe(r->state, detail);
    return true;
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

/* A request between the handler and its answer: the kind's description, and
 * for a route that spools, the message as its record, in case the broker
 * cannot take it. */
struct pending {
    struct http_front_request how; /* first: the answers get &how */
    char *record;
    size_t record_len;
};

static void pending_free(struct pending *p)
{
    free(p->how.message_id);
    free(p->how.correlation_id);
    free(p->record);
    free(p);
}

static void answer_unavailable(const struct http_front_request *p, const char *why)
{
    char seconds[16];
    snprintf(seconds, sizeof(seconds), "%d", p->retry_after);
    struct header h = {"Retry-After", seconds};
    p->answers->unavailable(p, why, &h);
}

/* ---- the spool: what the broker could not take ---------------------------------- */

/* The spool's thread: the record is on disk, or its write failed. */
static void spooled(void *arg, bool ok, const char *why)
{
    struct pending *pending = arg;
    struct http_front_request *p = &pending->how;
    struct log_ctx ctx = http_front_log_ctx(p);
    if (!ok) {
        char *detail =
            xasprintf("the broker is unavailable and the spool could not store it: %s", why);
        answer_unavailable(p, detail);
        free(detail);
    } else if (p->answers->spooled) {
        log_event(LOG_DEBUG, &ctx, "spooled");
        p->answers->spooled(p);
    } else {
        log_event(LOG_DEBUG, &ctx, "spooled");
        p->answers->accepted(p, true);
    }
    pending_free(pending);
}

/* Hands the request's record (pending->record, not NULL) to the spool, which
 * answers later from its thread; or, when it refuses, answers 503 now. Either
 * way pending is gone afterwards. */
static void spool_request(struct pending *pending, const char *broker_why)
{
    struct http_front_request *p = &pending->how;
    const char *why = NULL;
    char *record = pending->record;
    pending->record = NULL;
    if (spool_append(p->route->state, record, pending->record_len, spooled, pending, &why) == 0)
        return;
    char *detail = xasprintf("%s, and the spool is no way out: %s", broker_why, why);
    answer_unavailable(p, detail);
    free(detail);
    pending_free(pending);
}

/* Publisher thread: the broker answered (or the connection died). */
static void published(void *arg, struct publish_result *res)
{
    struct pending *pending = arg;
    struct http_front_request *p = &pending->how;
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
    case PUBLISH_UNAVAILABLE:
        if (pending->record != NULL) {
            spool_request(pending, res->detail ? res->detail : "broker unavailable");
            return; /* the spool answers, and frees pending */
        }
        /* fall through */
    case PUBLISH_NACKED:
        answer_unavailable(p, res->detail ? res->detail : publish_status_name(res->status));
        break;
    case PUBLISH_INVALID:
        a->invalid(p, res->detail ? res->detail : "invalid");
        break;
    }
    pending_free(pending);
}

/* A route that spools keeps its message as a record until the broker took
 * it. Only what the publisher would take is spooled: false with why (for a
 * 400) when m cannot become an AMQP message. */
static bool keep_record(struct pending *pending, const struct message *m, char *why, size_t whylen)
{
    const struct http_front_request *p = &pending->how;
    if (p->route->state == NULL || p->rpc)
        return true;
    if (!spool_takes(p->route->state, m, why, whylen))
        return false;
    struct buf record = {0};
    spool_message_encode(m, &record);
    pending->record = buf_steal(&record, &pending->record_len);
    return true;
}

void http_front_publish(const struct http_front_request *how, struct message *m)
{
    struct pending *pending = xcalloc(1, sizeof(*pending));
    struct http_front_request *p = &pending->how;
    *p = *how;
    p->message_id = xstrdup(m->message_id);
    p->correlation_id = xstrdup(m->correlation_id);
    char invalid[256];
    const char *why = NULL;
    if (!keep_record(pending, m, invalid, sizeof(invalid))) {
        message_free(m);
        p->answers->invalid(p, invalid);
        pending_free(pending);
        return;
    }
    if (pending->record != NULL && !publisher_available(p->route->publisher, &why)) {
        message_free(m); /* straight to the spool: the broker cannot take it now */
        spool_request(pending, why);
        return;
    }
    int refused = inbound_publish(p->route, m, p->rpc, p->timeout, published, pending, &why);
    if (refused == 0)
        return; /* published answers, and frees pending */
    if (refused == PUBLISH_UNAVAILABLE && pending->record != NULL) {
        spool_request(pending, why ? why : "unavailable");
        return;
    }
    if (refused == PUBLISH_INVALID)
        p->answers->invalid(p, why ? why : "invalid");
    else
        answer_unavailable(p, why ? why : publish_status_name(refused));
    pending_free(pending);
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
