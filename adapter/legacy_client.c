/*
 * legacy_client — calls with credentials (see legacy_client.h).
 *
 * A call keeps a copy of its request so that it can be sent when its token
 * arrives, and once more after a 401. Calls in flight or waiting are listed
 * for legacy_client_free; answers that need no network (no token to be had)
 * are delivered from a zero-delay timer, so done never runs inside start.
 */
#include "legacy_client.h"

#include "config.h"
#include "legacy_auth.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "oauth2.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct legacy_client {
    struct loop *loop;
    struct httpc *http;
    const char *route;
    const struct legacy_auth *auth;
    const struct tls_config *tls;
    struct oauth2_client *oauth2;             /* NULL unless auth.oauth2 */
    struct oauth2_registry *own;              /* when the config gave no registry to share */
    const struct legacy_transport *transport; /* NULL: lc->http */
    struct call *calls;
};

struct call {
    struct legacy_client *lc;
    struct call *prev, *next;
    httpc_done_fn done;
    void *arg;
    struct httpc_request req; /* owns method, url, headers and body */
    char *token;              /* the oauth2 token it was sent with */
    bool renewed;             /* a 401 made it fetch a new token already */
    char *failure;            /* not sent: why, delivered by the timer */
    uint64_t timer;
};

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void call_free(struct call *c)
{
    struct legacy_client *lc = c->lc;
    if (c->prev)
        c->prev->next = c->next;
    else
        lc->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->timer)
        loop_timer_cancel(lc->loop, c->timer);
    struct httpc_request *r = &c->req;
    free((char *)r->method);
    free((char *)r->url);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free((struct header *)r->headers);
    free((char *)r->body);
    wipe_free(c->token);
    free(c->failure);
    free(c);
}

/* ---- ending a call ---------------------------------------------------------------- */

static void failed_now(struct loop *loop, void *arg)
{
    struct call *c = arg;
    c->timer = 0;
    struct httpc_response resp = {.status = 0, .error = c->failure, .not_sent = true, .body = ""};
    c->done(c->arg, &resp);
    call_free(c);
}

/* The call cannot be sent: end it from the loop (why is copied). */
static void fail_unsent(struct call *c, const char *why)
{
    free(c->failure);
    c->failure = xstrdup(why);
    c->timer = loop_timer(c->lc->loop, 0, failed_now, c);
}

static void send_call(struct call *c, const char *auth_name, const char *auth_value);
static void on_token(void *arg, const char *token, const char *error);

static void answered(void *arg, const struct httpc_response *resp)
{
    struct call *c = arg;
    struct legacy_client *lc = c->lc;
    if (resp->status == 401 && lc->oauth2 && !c->renewed) {
        /* The token expired early or was revoked: one new token, one more try. */
        log_info(lc->route, "HTTP 401 from the legacy side: fetching a new OAuth token and "
                            "calling again");
        c->renewed = true;
        oauth2_client_rejected(lc->oauth2, c->token);
        wipe_free(c->token);
        c->token = NULL;
        oauth2_client_get(lc->oauth2, on_token, c);
        return;
    }
    c->done(c->arg, resp);
    call_free(c);
}

/* ---- sending ------------------------------------------------------------------------ */

static void send_call(struct call *c, const char *auth_name, const char *auth_value)
{
    struct httpc_request req = c->req;
    struct header *h = xcalloc(c->req.n_headers + 1, sizeof(*h));
    size_t n = 0;
    for (size_t i = 0; i < c->req.n_headers; i++)
        if (auth_name == NULL || strcasecmp(c->req.headers[i].name, auth_name) != 0)
            h[n++] = c->req.headers[i]; /* auth wins over pass_headers of the same name */
    if (auth_name)
        h[n++] = (struct header){(char *)auth_name, (char *)auth_value};
    req.headers = h;
    req.n_headers = n;
    req.tls = c->lc->tls;
    const struct legacy_transport *t = c->lc->transport;
    int rc = t ? t->start(t->arg, c->lc->loop, &req, answered, c)
               : httpc_start(c->lc->http, &req, answered, c);
    free(h);
    if (rc != 0) {
        free(c->failure);
        c->failure = xstrdup("the HTTP client refused the call");
        c->timer = loop_timer(c->lc->loop, 0, failed_now, c);
    }
}

static void on_token(void *arg, const char *token, const char *error)
{
    struct call *c = arg;
    if (token == NULL) {
        fail_unsent(c, error ? error : "auth.oauth2: no token");
        return;
    }
    c->token = xstrdup(token);
    char *value = xasprintf("Bearer %s", token);
    send_call(c, "Authorization", value);
    wipe_free(value);
}

static void copy_request(struct httpc_request *to, const struct httpc_request *from)
{
    *to = *from;
    to->method = xstrdup(from->method);
    to->url = xstrdup(from->url);
    struct header *h = xcalloc(from->n_headers ? from->n_headers : 1, sizeof(*h));
    for (size_t i = 0; i < from->n_headers; i++)
        h[i] = (struct header){xstrdup(from->headers[i].name), xstrdup(from->headers[i].value)};
    to->headers = h;
    to->body = from->body ? xstrndup(from->body, from->body_len) : NULL;
}

int legacy_client_start(struct legacy_client *lc, const struct httpc_request *req,
                        httpc_done_fn done, void *arg)
{
    struct call *c = xcalloc(1, sizeof(*c));
    c->lc = lc;
    c->done = done;
    c->arg = arg;
    copy_request(&c->req, req);
    c->next = lc->calls;
    if (lc->calls)
        lc->calls->prev = c;
    lc->calls = c;

    if (lc->oauth2) {
        oauth2_client_get(lc->oauth2, on_token, c);
        return 0;
    }
    const char *name = NULL, *problem = NULL;
    char *value = lc->auth ? legacy_auth_header(lc->auth, &name, &problem) : NULL;
    if (problem)
        fail_unsent(c, problem);
    else
        send_call(c, value ? name : NULL, value);
    wipe_free(value);
    return 0;
}

/* ---- tls = { … } ------------------------------------------------------------------ */

#define TLS(field) offsetof(struct tls_config, field)

const struct config_key legacy_tls_keys[] = {
    {"ca", KEY_FILE, TLS(ca), 0, NULL, NULL, 0, 0, NULL,
     "CA certificate file (PEM) to verify the legacy server; default: the system store"},
    {"cert", KEY_FILE, TLS(cert), 0, NULL, NULL, 0, 0, NULL,
     "client certificate (PEM) for mutual TLS"},
    {"key", KEY_SECRET, TLS(key), 0, NULL, NULL, 0, 0, NULL,
     "client private key (PEM, unencrypted), mode 0600"},
    {"verify", KEY_BOOL, TLS(verify), 0, "true", NULL, 0, 0, NULL,
     "verify the server's certificate and host name (turn off only for tests)"},
    {0},
};

void legacy_tls_validate(const struct tls_config *tls, const char *url, const char *where, int line,
                         struct config_report *rep)
{
    if ((tls->cert == NULL) != (tls->key.path == NULL))
        config_report_add(rep, tls->key.line ? tls->key.line : line,
                          "%s: tls.cert and tls.key go together; set both or neither", where);
    bool any = tls->ca || tls->cert || tls->key.path || !tls->verify;
    if (any && url && strncmp(url, "https://", 8) != 0)
        config_report_add(rep, line,
                          "%s: tls keys are set but url \"%s\" is not https://; use https:// or "
                          "remove tls",
                          where, url);
}

/* ---- the client ---------------------------------------------------------------------- */

struct legacy_client *legacy_client_new(struct loop *loop, const struct legacy_client_config *cfg)
{
    struct legacy_client *lc = xcalloc(1, sizeof(*lc));
    lc->loop = loop;
    lc->http = httpc_new(loop);
    lc->route = cfg->route;
    lc->auth = cfg->auth;
    lc->tls = cfg->tls;
    lc->transport = cfg->transport;
    if (cfg->auth && cfg->auth->method == LEGACY_AUTH_OAUTH2 && cfg->transport == NULL) {
        struct oauth2_registry *reg = cfg->oauth2;
        if (reg == NULL)
            reg = lc->own = oauth2_registry_new();
        lc->oauth2 = oauth2_client_new(reg, &cfg->auth->oauth2, cfg->route, loop, lc->http);
    }
    return lc;
}

void legacy_client_free(struct legacy_client *lc)
{
    if (lc == NULL)
        return;
    httpc_free(lc->http); /* aborts calls and token requests without callbacks */
    oauth2_client_free(lc->oauth2);
    while (lc->calls)
        call_free(lc->calls);
    oauth2_registry_free(lc->own);
    free(lc);
}

bool legacy_client_ready(struct legacy_client *lc, struct buf *detail)
{
    return lc == NULL || lc->oauth2 == NULL || oauth2_client_ready(lc->oauth2, detail);
}
