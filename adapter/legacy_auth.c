/*
 * legacy_auth — the `auth = { … }` keys of the routes that call the legacy
 * side, their checks, and the header a static method adds (see legacy_auth.h).
 */
#include "legacy_auth.h"

#include "kinds/http_text.h"
#include "util.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BASIC(field)  offsetof(struct legacy_auth_basic, field)
#define OAUTH2(field) offsetof(struct legacy_oauth2_config, field)
#define AUTH(field)   offsetof(struct legacy_auth, field)

static const struct config_key basic_keys[] = {
    {"user", KEY_STRING, BASIC(user), 0, NULL, NULL, 0, 0, NULL,
     "user name for HTTP Basic authentication"},
    {"password_file", KEY_SECRET, BASIC(password), 0, NULL, NULL, 0, 0, NULL,
     "file holding the password (mode 0600)"},
    {0},
};

static const struct config_key oauth2_keys[] = {
    {"token_url", KEY_URL, OAUTH2(token_url), 0, NULL, NULL, 0, 0, NULL,
     "the token endpoint (https://); the client credentials grant is POSTed there"},
    {"client_id", KEY_STRING, OAUTH2(client_id), 0, NULL, NULL, 0, 0, NULL,
     "the sidecar's client id at the identity provider"},
    {"client_secret_file", KEY_SECRET, OAUTH2(client_secret), 0, NULL, NULL, 0, 0, NULL,
     "file holding the client secret (mode 0600)"},
    {"scope", KEY_STRING, OAUTH2(scope), 0, NULL, NULL, 0, 0, NULL,
     "scope to ask for (space-separated); unset: none sent"},
    {"audience", KEY_STRING, OAUTH2(audience), 0, NULL, NULL, 0, 0, NULL,
     "audience to ask for (Auth0, Okta and others want it); unset: none sent"},
    {"client_auth", KEY_ENUM, OAUTH2(client_auth_name), 0, "basic", "basic|post", 0, 0, NULL,
     "basic: id and secret as HTTP Basic (RFC 6749 2.3.1); post: in the form body"},
    {"timeout", KEY_NUMBER, OAUTH2(timeout), 0, "10", NULL, 0.1, 120, NULL,
     "seconds for one token request (a failure is retried like a failed call)"},
    {0},
};

const struct config_key legacy_auth_keys[] = {
    {"basic", KEY_GROUP, AUTH(basic), 0, NULL, NULL, 0, 0, basic_keys,
     "HTTP Basic: basic = { user = \"…\"; password_file = \"…\"; }"},
    {"bearer_token_file", KEY_SECRET, AUTH(bearer_token), 0, NULL, NULL, 0, 0, NULL,
     "sends Authorization: Bearer <the file's content> (mode 0600)"},
    {"header", KEY_STRING, AUTH(header), 0, NULL, NULL, 0, 0, NULL,
     "an API key header, e.g. \"X-Api-Key\", whose value is in value_file"},
    {"value_file", KEY_SECRET, AUTH(value), 0, NULL, NULL, 0, 0, NULL,
     "file holding the header's value (mode 0600)"},
    {"oauth2", KEY_GROUP, AUTH(oauth2), 0, NULL, NULL, 0, 0, oauth2_keys,
     "OAuth 2.0 client credentials; the token is cached, shared and refreshed"},
    {0},
};

static bool oauth2_set(const struct legacy_oauth2_config *o)
{
    return o->token_url || o->client_id || o->client_secret.path || o->scope || o->audience;
}

/* A secret that will be sent as (part of) a header value: one line, no NUL. */
static bool secret_header_ok(const struct secret *s)
{
    return s->value == NULL || (strlen(s->value) == s->len && http_text_header_value_ok(s->value));
}

static void check_header_secret(const struct secret *s, const char *where, int line,
                                const char *key, struct config_report *rep)
{
    if (!secret_header_ok(s))
        config_report_add(rep, s->line ? s->line : line,
                          "%s: auth.%s: \"%s\" holds a control character inside its first line "
                          "(a second line?); it is sent as a header value, so keep it to one line",
                          where, key, s->path);
}

/* http://127.0.0.1… or http://localhost…: a token endpoint on this host. */
static bool url_is_loopback(const char *url)
{
    const char *host = url + strlen("http://");
    size_t n = strcspn(host, ":/");
    return (n == 9 && strncmp(host, "127.0.0.1", n) == 0) ||
           (n == 9 && strncmp(host, "localhost", n) == 0);
}

static void check_halves(bool a, bool b, const char *where, int line, const char *what,
                         struct config_report *rep)
{
    if (a != b)
        config_report_add(rep, line, "%s: auth: %s go together; set both", where, what);
}

void legacy_auth_validate(struct legacy_auth *a, const char *where, int line,
                          const struct strmap *headers, struct config_report *rep)
{
    bool basic = a->basic.user || a->basic.password.path;
    bool bearer = a->bearer_token.path != NULL;
    bool header = a->header || a->value.path;
    bool oauth2 = oauth2_set(&a->oauth2);
    int n = basic + bearer + header + oauth2;
    a->method = LEGACY_AUTH_NONE;
    if (n > 1) {
        config_report_add(rep, line,
                          "%s: auth sets %d methods (%s%s%s%s); a route presents one: keep one of "
                          "basic, bearer_token_file, header + value_file, oauth2",
                          where, n, basic ? "basic " : "", bearer ? "bearer_token_file " : "",
                          header ? "header " : "", oauth2 ? "oauth2" : "");
        return;
    }
    const char *sent = NULL; /* the header the method sets */
    if (basic) {
        a->method = LEGACY_AUTH_BASIC;
        check_halves(a->basic.user != NULL, a->basic.password.path != NULL, where, line,
                     "basic.user and basic.password_file", rep);
        if (a->basic.user && strchr(a->basic.user, ':'))
            config_report_add(rep, line,
                              "%s: auth.basic.user \"%s\" holds ':', which HTTP Basic cannot carry "
                              "in a user name",
                              where, a->basic.user);
        sent = "Authorization";
    } else if (bearer) {
        a->method = LEGACY_AUTH_BEARER;
        check_header_secret(&a->bearer_token, where, line, "bearer_token_file", rep);
        sent = "Authorization";
    } else if (header) {
        a->method = LEGACY_AUTH_HEADER;
        check_halves(a->header != NULL, a->value.path != NULL, where, line, "header and value_file",
                     rep);
        if (a->header && !http_text_header_name_ok(a->header))
            config_report_add(rep, line, "%s: auth.header \"%s\" is not a valid header name", where,
                              a->header);
        check_header_secret(&a->value, where, line, "value_file", rep);
        sent = a->header;
    } else if (oauth2) {
        struct legacy_oauth2_config *o = &a->oauth2;
        a->method = LEGACY_AUTH_OAUTH2;
        if (!o->token_url || !o->client_id || !o->client_secret.path)
            config_report_add(rep, line,
                              "%s: auth.oauth2 needs token_url, client_id and client_secret_file "
                              "(missing:%s%s%s)",
                              where, o->token_url ? "" : " token_url",
                              o->client_id ? "" : " client_id",
                              o->client_secret.path ? "" : " client_secret_file");
        if (o->token_url && strncmp(o->token_url, "https://", 8) != 0 &&
            !url_is_loopback(o->token_url))
            config_report_add(rep, line,
                              "%s: auth.oauth2.token_url \"%s\" is not https://: the client "
                              "secret would cross the network in clear text; use https:// "
                              "(http:// is accepted for 127.0.0.1 and localhost only)",
                              where, o->token_url);
        o->client_auth = o->client_auth_name && strcmp(o->client_auth_name, "post") == 0
                             ? OAUTH2_CLIENT_AUTH_POST
                             : OAUTH2_CLIENT_AUTH_BASIC;
        for (const char *v = o->client_id; v && *v; v++)
            if ((unsigned char)*v < 0x20) {
                config_report_add(rep, line, "%s: auth.oauth2.client_id holds a control character",
                                  where);
                break;
            }
        sent = "Authorization";
    }
    for (size_t i = 0; sent && headers && i < headers->n; i++)
        if (strcasecmp(headers->names[i], sent) == 0)
            config_report_add(rep, line,
                              "%s: headers.%s would replace what auth sends; remove it from "
                              "headers (auth sets it)",
                              where, headers->names[i]);
}

const char *legacy_auth_describe(const struct legacy_auth *a)
{
    switch (a->method) {
    case LEGACY_AUTH_BASIC:
        return "basic";
    case LEGACY_AUTH_BEARER:
        return "bearer";
    case LEGACY_AUTH_HEADER:
        return "header";
    case LEGACY_AUTH_OAUTH2:
        return "oauth2";
    default:
        return "none";
    }
}

char *legacy_auth_base64(const void *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static char *basic_value(const struct legacy_auth_basic *b)
{
    size_t ulen = strlen(b->user);
    size_t n = ulen + 1 + b->password.len;
    char *pair = xmalloc(n + 1);
    memcpy(pair, b->user, ulen);
    pair[ulen] = ':';
    memcpy(pair + ulen + 1, b->password.value, b->password.len);
    pair[n] = '\0';
    char *b64 = legacy_auth_base64(pair, n);
    explicit_bzero(pair, n);
    free(pair);
    char *value = xasprintf("Basic %s", b64);
    explicit_bzero(b64, strlen(b64));
    free(b64);
    return value;
}

char *legacy_auth_header(const struct legacy_auth *a, const char **name, const char **problem)
{
    char *value = NULL;
    *problem = NULL;
    *name = a->method == LEGACY_AUTH_HEADER ? a->header : "Authorization";
    secrets_read_lock();
    switch (a->method) {
    case LEGACY_AUTH_BASIC:
        if (a->basic.user && a->basic.password.value)
            value = basic_value(&a->basic);
        break;
    case LEGACY_AUTH_BEARER:
        if (!secret_header_ok(&a->bearer_token))
            *problem = "auth.bearer_token_file holds more than one line";
        else if (a->bearer_token.value)
            value = xasprintf("Bearer %s", a->bearer_token.value);
        break;
    case LEGACY_AUTH_HEADER:
        if (!secret_header_ok(&a->value))
            *problem = "auth.value_file holds more than one line";
        else if (a->value.value)
            value = xstrdup(a->value.value);
        break;
    default:
        break;
    }
    secrets_read_unlock();
    return value;
}
