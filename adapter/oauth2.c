/*
 * oauth2 — token sources shared between routes, and the token request itself
 * (see oauth2.h).
 *
 * The request: POST token_url, form-encoded grant_type=client_credentials
 * (+ scope, audience), the client authenticated by HTTP Basic over the
 * form-encoded id and secret, or by client_id/client_secret in the body
 * (client_auth = "post"). The answer must be JSON with a string
 * access_token and token_type Bearer (when given); expires_in may be a
 * number or a numeric string.
 */
#include "oauth2.h"

#include "httpc.h"
#include "kinds/http_text.h"
#include "legacy_auth.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "oauth2_cache.h"
#include "util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MAX  16384 /* bytes of access_token; a longer one is refused */
#define ANSWER_MAX 65536 /* bytes of the token endpoint's answer we read */
#define ERROR_PART 200   /* bytes of the endpoint's error text we quote */

struct oauth2_source {
    struct oauth2_source *next;
    const struct legacy_oauth2_config *cfg; /* the first route's; the same settings */
    struct oauth2_cache cache;              /* under the registry's lock */
};

struct oauth2_registry {
    pthread_mutex_t lock;
    struct oauth2_source *sources;
};

struct waiter {
    oauth2_token_fn fn;
    void *arg;
    struct waiter *next;
};

struct oauth2_client {
    struct oauth2_registry *reg;
    struct oauth2_source *src;
    const char *route;
    struct loop *loop;
    struct httpc *http;
    struct waiter *waiters, **tail; /* FIFO */
    bool fetching;                  /* this client's fetch is in flight */
    double sent_at;                 /* of that fetch */
    uint64_t timer;                 /* looking again while another route fetches */
};

static double now_s(void)
{
    return (double)loop_now_ms() / 1000.0;
}

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool same_settings(const struct legacy_oauth2_config *a,
                          const struct legacy_oauth2_config *b)
{
    return same(a->token_url, b->token_url) && same(a->client_id, b->client_id) &&
           same(a->client_secret.path, b->client_secret.path) && same(a->scope, b->scope) &&
           same(a->audience, b->audience) && a->client_auth == b->client_auth;
}

/* ---- the registry ----------------------------------------------------------------- */

struct oauth2_registry *oauth2_registry_new(void)
{
    struct oauth2_registry *reg = xcalloc(1, sizeof(*reg));
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void oauth2_registry_free(struct oauth2_registry *reg)
{
    if (reg == NULL)
        return;
    while (reg->sources) {
        struct oauth2_source *s = reg->sources;
        reg->sources = s->next;
        oauth2_cache_free(&s->cache);
        free(s);
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

void oauth2_registry_drop_tokens(struct oauth2_registry *reg)
{
    pthread_mutex_lock(&reg->lock);
    for (struct oauth2_source *s = reg->sources; s; s = s->next)
        oauth2_cache_drop(&s->cache);
    pthread_mutex_unlock(&reg->lock);
}

static struct oauth2_source *source_for(struct oauth2_registry *reg,
                                        const struct legacy_oauth2_config *cfg)
{
    pthread_mutex_lock(&reg->lock);
    struct oauth2_source *s = reg->sources;
    while (s && !same_settings(s->cfg, cfg))
        s = s->next;
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->cfg = cfg;
        s->next = reg->sources;
        reg->sources = s;
    }
    pthread_mutex_unlock(&reg->lock);
    return s;
}

/* ---- the token request ---------------------------------------------------------- */

static void form_add(struct buf *b, const char *name, const char *value)
{
    buf_printf(b, "%s%s=", b->len ? "&" : "", name);
    http_text_url_encode(b, value);
}

/* The endpoint's OAuth error (RFC 6749 §5.2) as " (error: description)", printable and
 * bounded; "" when the body is not such JSON. Never the body itself: it may echo the
 * request. */
static void oauth_error_of(const struct httpc_response *resp, struct buf *out)
{
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *code = json_string_value(json_object_get(j, "error"));
    const char *desc = json_string_value(json_object_get(j, "error_description"));
    if (code) {
        struct buf part = {0};
        buf_puts(&part, code);
        if (desc)
            buf_printf(&part, ": %s", desc);
        buf_puts(out, " (");
        http_text_excerpt(out, part.data, part.len, ERROR_PART);
        buf_puts(out, ")");
        buf_free(&part);
    }
    json_decref(j);
}

static bool token_chars_ok(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return false;
    return true;
}

/* The token of a 2xx answer (malloc'd) and its lifetime; NULL with why in err. */
static char *token_of(const struct httpc_response *resp, double *expires_in, struct buf *err)
{
    json_error_t jerr;
    json_t *j = resp->truncated ? NULL : json_loadb(resp->body, resp->body_len, 0, &jerr);
    char *token = NULL;
    *expires_in = 0;
    if (!json_is_object(j)) {
        buf_puts(err, "the answer is not a JSON object");
        goto done;
    }
    const char *t = json_string_value(json_object_get(j, "access_token"));
    const char *type = json_string_value(json_object_get(j, "token_type"));
    json_t *exp = json_object_get(j, "expires_in");
    if (t == NULL || *t == '\0') {
        buf_puts(err, "the answer has no access_token");
        goto done;
    }
    if (strlen(t) > TOKEN_MAX || !token_chars_ok(t)) {
        buf_printf(err, "the access_token is over %d bytes or holds characters a header cannot",
                   TOKEN_MAX);
        goto done;
    }
    if (type && strcasecmp(type, "bearer") != 0) {
        buf_puts(err, "token_type is not Bearer (only bearer tokens are supported)");
        goto done;
    }
    if (json_is_number(exp))
        *expires_in = json_number_value(exp);
    else if (json_is_string(exp))
        *expires_in = strtod(json_string_value(exp), NULL);
    token = xstrdup(t);
done:
    json_decref(j); /* jansson does not wipe; the token is in its freed memory for a moment */
    return token;
}

static void serve_waiters(struct oauth2_client *c);

/* Loop thread: the token endpoint answered (or not). */
static void fetched(void *arg, const struct httpc_response *resp)
{
    struct oauth2_client *c = arg;
    const struct legacy_oauth2_config *cfg = c->src->cfg;
    struct buf where = {0}, why = {0};
    http_text_url_redacted(&where, cfg->token_url);
    buf_printf(&why, "auth.oauth2: token request to %s", where.data);
    char *token = NULL;
    double expires_in = 0;
    if (resp->status == 0) {
        buf_printf(&why, " %s: %s", resp->timed_out ? "timed out" : "failed",
                   resp->error ? resp->error : "no answer");
    } else if (resp->status < 200 || resp->status >= 300) {
        buf_printf(&why, " answered HTTP %ld", resp->status);
        oauth_error_of(resp, &why);
    } else {
        buf_puts(&why, ": ");
        token = token_of(resp, &expires_in, &why);
    }
    c->fetching = false;
    pthread_mutex_lock(&c->reg->lock);
    if (token)
        oauth2_cache_store(&c->src->cache, token, expires_in, c->sent_at);
    else
        oauth2_cache_fail(&c->src->cache, why.data, now_s());
    pthread_mutex_unlock(&c->reg->lock);
    if (token) {
        log_info(c->route, "auth.oauth2: new token from %s, lives %.0fs", where.data,
                 expires_in > 0 ? expires_in : OAUTH2_DEFAULT_LIFETIME);
        explicit_bzero(token, strlen(token));
        free(token);
    } else {
        log_warn(c->route, "%s", why.data);
    }
    buf_free(&where);
    buf_free(&why);
    serve_waiters(c);
}

/* Starts this client's token request. 0, or -1 (then the cache knows it failed). */
static int fetch_start(struct oauth2_client *c)
{
    const struct legacy_oauth2_config *cfg = c->src->cfg;
    struct buf body = {0};
    char *basic = NULL;
    form_add(&body, "grant_type", "client_credentials");
    if (cfg->scope)
        form_add(&body, "scope", cfg->scope);
    if (cfg->audience)
        form_add(&body, "audience", cfg->audience);
    secrets_read_lock();
    const char *secret = cfg->client_secret.value ? cfg->client_secret.value : "";
    if (cfg->client_auth == OAUTH2_CLIENT_AUTH_POST) {
        form_add(&body, "client_id", cfg->client_id);
        form_add(&body, "client_secret", secret);
    } else {
        struct buf pair = {0};
        http_text_url_encode(&pair, cfg->client_id);
        buf_puts(&pair, ":");
        http_text_url_encode(&pair, secret);
        char *b64 = legacy_auth_base64(pair.data, pair.len);
        basic = xasprintf("Basic %s", b64);
        explicit_bzero(b64, strlen(b64));
        free(b64);
        explicit_bzero(pair.data, pair.len);
        buf_free(&pair);
    }
    secrets_read_unlock();
    struct header h[3] = {
        {"Content-Type", "application/x-www-form-urlencoded"},
        {"Accept", "application/json"},
        {"Authorization", basic},
    };
    struct httpc_request req = {
        .method = "POST",
        .url = cfg->token_url,
        .headers = h,
        .n_headers = basic ? 3 : 2,
        .body = body.data,
        .body_len = body.len,
        .timeout = cfg->timeout,
        .max_response = ANSWER_MAX,
    };
    c->sent_at = now_s();
    c->fetching = true;
    int rc = httpc_start(c->http, &req, fetched, c);
    c->fetching = rc == 0;
    explicit_bzero(body.data, body.len);
    buf_free(&body);
    if (basic) {
        explicit_bzero(basic, strlen(basic));
        free(basic);
    }
    if (rc == 0)
        return 0;
    pthread_mutex_lock(&c->reg->lock);
    oauth2_cache_fail(&c->src->cache, "auth.oauth2: the HTTP client refused the token request",
                      now_s());
    pthread_mutex_unlock(&c->reg->lock);
    return -1;
}

/* ---- clients ------------------------------------------------------------------------ */

struct oauth2_client *oauth2_client_new(struct oauth2_registry *reg,
                                        const struct legacy_oauth2_config *cfg, const char *route,
                                        struct loop *loop, struct httpc *http)
{
    struct oauth2_client *c = xcalloc(1, sizeof(*c));
    c->reg = reg;
    c->src = source_for(reg, cfg);
    c->route = route;
    c->loop = loop;
    c->http = http;
    c->tail = &c->waiters;
    return c;
}

void oauth2_client_free(struct oauth2_client *c)
{
    if (c == NULL)
        return;
    if (c->fetching) {
        pthread_mutex_lock(&c->reg->lock);
        oauth2_cache_abort(&c->src->cache); /* another route may fetch now */
        pthread_mutex_unlock(&c->reg->lock);
    }
    if (c->timer)
        loop_timer_cancel(c->loop, c->timer);
    while (c->waiters) {
        struct waiter *w = c->waiters;
        c->waiters = w->next;
        free(w);
    }
    free(c);
}

static void wait_in_line(struct oauth2_client *c, oauth2_token_fn fn, void *arg)
{
    struct waiter *w = xcalloc(1, sizeof(*w));
    w->fn = fn;
    w->arg = arg;
    *c->tail = w;
    c->tail = &w->next;
}

static void look_again(struct loop *loop, void *arg)
{
    struct oauth2_client *c = arg;
    c->timer = 0;
    serve_waiters(c);
}

void oauth2_client_get(struct oauth2_client *c, oauth2_token_fn fn, void *arg)
{
    char *token = NULL, *error = NULL;
    pthread_mutex_lock(&c->reg->lock);
    enum oauth2_lookup what = oauth2_cache_lookup(&c->src->cache, now_s(), &token, &error);
    pthread_mutex_unlock(&c->reg->lock);
    switch (what) {
    case OAUTH2_USE_AND_REFRESH:
        fetch_start(c); /* the current token serves this call meanwhile */
        /* fall through */
    case OAUTH2_USE:
        fn(arg, token, NULL);
        break;
    case OAUTH2_FETCH:
        wait_in_line(c, fn, arg);
        if (fetch_start(c) != 0)
            serve_waiters(c);
        break;
    case OAUTH2_WAIT:
        wait_in_line(c, fn, arg);
        if (!c->fetching && c->timer == 0) /* another route fetches: look again soon */
            c->timer = loop_timer(c->loop, OAUTH2_WAIT_MS, look_again, c);
        break;
    case OAUTH2_FAILED:
        fn(arg, NULL, error);
        break;
    }
    if (token) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    free(error);
}

/* Asks again for everyone waiting (each may be answered or wait once more). */
static void serve_waiters(struct oauth2_client *c)
{
    struct waiter *w = c->waiters;
    c->waiters = NULL;
    c->tail = &c->waiters;
    while (w) {
        struct waiter *next = w->next;
        oauth2_client_get(c, w->fn, w->arg);
        free(w);
        w = next;
    }
}

void oauth2_client_rejected(struct oauth2_client *c, const char *token)
{
    pthread_mutex_lock(&c->reg->lock);
    oauth2_cache_reject(&c->src->cache, token);
    pthread_mutex_unlock(&c->reg->lock);
}

bool oauth2_client_ready(struct oauth2_client *c, struct buf *detail)
{
    const char *error = NULL;
    pthread_mutex_lock(&c->reg->lock);
    bool failing = oauth2_cache_failing(&c->src->cache, now_s(), &error);
    if (failing && detail)
        buf_puts(detail, error);
    pthread_mutex_unlock(&c->reg->lock);
    return !failing;
}

/* ---- check --connect -------------------------------------------------------------- */

struct probe {
    struct loop *loop;
    bool done;
    char *error;
};

static void probed(void *arg, const char *token, const char *error)
{
    struct probe *p = arg;
    p->done = true;
    p->error = token ? NULL : xstrdup(error ? error : "no token");
    loop_stop(p->loop);
}

int oauth2_probe(const struct legacy_oauth2_config *cfg, double *expires_in, char *err,
                 size_t errlen)
{
    struct oauth2_registry *reg = oauth2_registry_new();
    struct probe p = {.loop = loop_new()};
    struct httpc *http = httpc_new(p.loop);
    struct oauth2_client *c = oauth2_client_new(reg, cfg, "check", p.loop, http);
    oauth2_client_get(c, probed, &p);
    if (!p.done)
        loop_run(p.loop);
    *expires_in = 0;
    if (p.error == NULL) {
        pthread_mutex_lock(&reg->lock);
        *expires_in = c->src->cache.expires_at - c->sent_at;
        pthread_mutex_unlock(&reg->lock);
    } else {
        snprintf(err, errlen, "%s", p.error);
    }
    int rc = p.error ? -1 : 0;
    free(p.error);
    oauth2_client_free(c);
    httpc_free(http);
    loop_free(p.loop);
    oauth2_registry_free(reg);
    return rc;
}
