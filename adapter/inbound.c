/*
 * inbound — see inbound.h.
 */
#include "inbound.h"

#include "httpd.h"
#include "message.h"
#include "otel.h"
#include "route.h"
#include "template.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ID_MAX       255
#define SHORTSTR_MAX 255 /* AMQP short strings: routing keys, exchange names */

struct message *inbound_message(const struct route *r, char *body, size_t len,
                                const char *content_type, const struct inbound_ids *ids)
{
    struct message *m = message_new();
    message_take_body(m, body, len);
    m->exchange = xstrdup(r->exchange);
    m->content_type = xstrdup(content_type);
    char uuid[37];
    if (ids && ids->message_id) {
        m->message_id = xstrdup(ids->message_id);
    } else {
        uuid_v4(uuid);
        m->message_id = xstrdup(uuid);
    }
    if (ids && ids->correlation_id) {
        m->correlation_id = xstrdup(ids->correlation_id);
    } else {
        uuid_v4(uuid);
        m->correlation_id = xstrdup(uuid);
    }
    if (ids && ids->traceparent && inbound_traceparent_ok(ids->traceparent))
        message_set_header(m, "traceparent", ids->traceparent);
    m->timestamp = (int64_t)time(NULL);
    return m;
}

/* ---- traces: one span per inbound hop, from the submit to the broker's answer ---- */

struct traced {
    publish_done_fn done;
    void *arg;
    struct route *route;
    struct otel_span span;
    char message_id[256];
};

static void traced_end(struct traced *t, enum publish_status status)
{
    struct route *r = t->route;
    bool server = strcmp(r->kind->name, "http") == 0 || strcmp(r->kind->name, "soap") == 0;
    char name[64];
    snprintf(name, sizeof(name), "publish %s", r->name);
    otel_end(r->services->otel, &t->span, name, server ? OTEL_SERVER : OTEL_PRODUCER, r->name,
             t->message_id, publish_status_id(status), status == PUBLISH_OK);
}

static void traced_done(void *arg, struct publish_result *result)
{
    struct traced *t = arg;
    traced_end(t, result->status);
    t->done(t->arg, result);
    free(t);
}

int inbound_publish(struct route *r, struct message *m, bool rpc, double rpc_timeout,
                    publish_done_fn done, void *arg, const char **why)
{
    struct publish_options opt = {.route = r, .rpc = rpc, .rpc_timeout = rpc_timeout};
    struct otel *o = r->services ? r->services->otel : NULL;
    if (o == NULL)
        return publisher_submit(r->publisher, m, &opt, done, arg, why);
    struct traced *t = xcalloc(1, sizeof(*t));
    *t = (struct traced){.done = done, .arg = arg, .route = r};
    otel_begin(o, message_header(m, "traceparent"), &t->span);
    snprintf(t->message_id, sizeof(t->message_id), "%s", m->message_id ? m->message_id : "");
    int rc = publisher_submit(r->publisher, m, &opt, traced_done, t, why);
    if (rc != 0) {
        traced_end(t, (enum publish_status)rc); /* the refusal: no done will come */
        free(t);
    }
    return rc;
}

const char *inbound_json_path(json_t *root, const char *path, char *out, size_t n, char *why,
                              size_t whylen)
{
    json_t *v = root;
    const char *p = path;
    while (v != NULL && *p) {
        size_t len = strcspn(p, ".");
        char key[256];
        if (len >= sizeof(key)) {
            snprintf(why, whylen, "field name too long");
            return NULL;
        }
        memcpy(key, p, len);
        key[len] = '\0';
        if (json_is_array(v)) {
            char *end;
            long i = strtol(key, &end, 10);
            v = (*end == '\0' && i >= 0) ? json_array_get(v, (size_t)i) : NULL;
        } else {
            v = json_is_object(v) ? json_object_get(v, key) : NULL;
        }
        p += len;
        if (*p == '.')
            p++;
    }
    if (v == NULL) {
        snprintf(why, whylen, "the body has no field \"%s\"", path);
        return NULL;
    }
    if (json_is_string(v) && memchr(json_string_value(v), '\0', json_string_length(v))) {
        /* Cut at the NUL, two different values would read the same. */
        snprintf(why, whylen, "field \"%s\" holds a NUL character", path);
        return NULL;
    } else if (json_is_string(v) && json_string_length(v) >= n) {
        snprintf(why, whylen, "field \"%s\" is %zu bytes long; at most %zu", path,
                 json_string_length(v), n - 1);
        return NULL;
    } else if (json_is_string(v))
        snprintf(out, n, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, n, "%.17g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(out, n, "%s", json_is_true(v) ? "true" : "false");
    else {
        snprintf(why, whylen, "field \"%s\" is not a string, number or boolean", path);
        return NULL;
    }
    return out;
}

const char *inbound_json_placeholder(json_t *root, const char *name, const char *not_json,
                                     char *buf, size_t n, char *why, size_t whylen)
{
    if (strncmp(name, "json.", 5) != 0)
        return NULL;
    if (root == NULL) {
        snprintf(why, whylen, "%s", not_json);
        return NULL;
    }
    return inbound_json_path(root, name + 5, buf, n, why, whylen);
}

/* W3C Trace Context §3.2: version "-" trace-id "-" parent-id "-" flags, lower-case
 * hex; later versions may append fields. Anything else is dropped, as the spec
 * tells a receiver to do, rather than carried on. */
bool inbound_traceparent_ok(const char *v)
{
    static const char shape[] = "xx-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-xxxxxxxxxxxxxxxx-xx";
    size_t n = strlen(v);
    if (n < sizeof(shape) - 1 || n > 512 || strncmp(v, "ff", 2) == 0)
        return false;
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        bool hex = (v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f');
        if (shape[i] == 'x' ? !hex : v[i] != '-')
            return false;
    }
    if (n > sizeof(shape) - 1 && (strncmp(v, "00", 2) == 0 || v[sizeof(shape) - 1] != '-'))
        return false; /* version 00 has exactly these fields */
    for (size_t i = sizeof(shape) - 1; i < n; i++)
        if (!isprint((unsigned char)v[i]))
            return false;
    return true;
}

bool inbound_id_acceptable(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!isprint((unsigned char)*p))
            return false;
    return true;
}

bool inbound_media_type_is(const char *content_type, const char *want)
{
    if (content_type == NULL)
        return false;
    while (*content_type == ' ')
        content_type++;
    size_t len = strcspn(content_type, "; ");
    return strlen(want) == len && strncasecmp(content_type, want, len) == 0;
}

static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *token_end(const char *p)
{
    while (is_tchar((unsigned char)*p))
        p++;
    return p;
}

/* One "name=value" at p; its end, or NULL. */
static const char *parameter_end(const char *p)
{
    const char *q = token_end(p);
    if (q == p || *q != '=')
        return NULL;
    p = q + 1;
    if (*p != '"')
        return token_end(p) == p ? NULL : token_end(p);
    for (p++; *p != '"'; p++)
        if (*p == '\0' || (*p == '\\' && *++p == '\0'))
            return NULL;
    return p + 1;
}

bool inbound_media_type_valid(const char *text, char *why, size_t whylen)
{
    size_t len = strlen(text);
    if (len == 0 || len > SHORTSTR_MAX) {
        snprintf(why, whylen, "is %zu bytes; AMQP allows 1 to %d", len, SHORTSTR_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < 0x20 || text[i] > 0x7e) {
            snprintf(why, whylen, "has a byte that is not printable ASCII (0x%02x at %zu)",
                     (unsigned char)text[i], i);
            return false;
        }
    }
    const char *p = token_end(text);
    if (p == text || *p != '/' || token_end(p + 1) == p + 1) {
        snprintf(why, whylen, "is not type/subtype");
        return false;
    }
    for (p = token_end(p + 1); *p != '\0';) {
        while (*p == ' ')
            p++;
        if (*p != ';') {
            snprintf(why, whylen, "has \"%.20s\" after the media type, not \"; name=value\"", p);
            return false;
        }
        for (p++; *p == ' '; p++)
            ;
        if (*p == '\0' || *p == ';')
            continue; /* an empty parameter is allowed */
        const char *end = parameter_end(p);
        if (end == NULL) {
            snprintf(why, whylen, "has a parameter \"%.20s\" that is not name=value", p);
            return false;
        }
        p = end;
    }
    return true;
}

bool inbound_is_json(const char *content_type)
{
    if (content_type == NULL)
        return false;
    size_t len = strcspn(content_type, "; ");
    if (inbound_media_type_is(content_type, "application/json"))
        return true;
    return len >= 5 && strncasecmp(content_type + len - 5, "+json", 5) == 0;
}

int inbound_serve_http(struct route *r, const char *listen, const struct listen_tls_config *tls,
                       const char *path, size_t max_body,
                       void (*handler)(struct http_request *, void *),
                       char *(*refusal)(void *, int *, const char *, const char **, size_t *),
                       bool rpc, char *err, size_t errlen)
{
    if (rpc && r->services->running && !publisher_rpc_enabled(r->publisher)) {
        snprintf(err, errlen,
                 "the first rpc route needs the publisher's reply consumer, which is set up at "
                 "start; restart to add it");
        return -1;
    }
    struct http_server *s = r->services->http_server(r, listen, tls, err, errlen);
    if (s == NULL)
        return -1;
    if (http_server_route(s, path, max_body, handler, r) != 0) {
        snprintf(err, errlen, "%s%s is already served by another route", listen, path);
        return -1;
    }
    if (refusal)
        http_server_route_refusal(s, path, refusal);
    if (rpc)
        publisher_enable_rpc(r->publisher);
    return 0;
}

char *inbound_routing_key(const struct route *r,
                          const char *(*lookup)(void *, const char *, char *, size_t), void *arg,
                          char *err, size_t errlen)
{
    char *key = template_expand(r->routing_key, lookup, arg, err, errlen);
    if (key != NULL && strlen(key) > SHORTSTR_MAX) {
        snprintf(err, errlen, "the routing key would be %zu bytes; AMQP allows %d", strlen(key),
                 SHORTSTR_MAX);
        free(key);
        return NULL;
    }
    return key;
}
