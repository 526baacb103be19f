/*
 * http_auth — inbound request authentication shared by http and soap routes:
 * an HMAC-SHA256 signature in one of the common webhook formats (auth.scheme:
 * GitHub's `sha256=<hex>`, Stripe, Slack, Shopify, Standard Webhooks) or a
 * bearer token. Secrets come from files (config.h's KEY_SECRET); several may
 * be valid at once (hmac_secret_files, for rotation). Every comparison is
 * constant-time; timestamped schemes refuse requests outside auth.tolerance.
 */
#ifndef SIDECAR_HTTP_AUTH_H
#define SIDECAR_HTTP_AUTH_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* auth.scheme, resolved once by http_auth_validate. */
enum http_auth_scheme {
    HTTP_AUTH_GITHUB,   /* <hmac_header>: sha256=<hex> over the body */
    HTTP_AUTH_STRIPE,   /* Stripe-Signature: t=<unix>,v1=<hex>… over "<t>.<body>" */
    HTTP_AUTH_SLACK,    /* X-Slack-Signature: v0=<hex> over "v0:<ts>:<body>" */
    HTTP_AUTH_SHOPIFY,  /* X-Shopify-Hmac-Sha256: <base64> over the body */
    HTTP_AUTH_STANDARD, /* webhook-signature: v1,<base64> … over "<id>.<ts>.<body>" */
};

/* At most this many signatures of one header are tried; the rest are ignored. */
#define HTTP_AUTH_MAX_CANDIDATES 16

struct http_auth {
    struct secret hmac_secret;
    struct secretlist hmac_secrets;
    char *hmac_header;
    char *scheme_name; /* the key's text */
    enum http_auth_scheme scheme;
    int tolerance; /* seconds a signed timestamp may differ from now */
    struct secret bearer_token;
};

/* The `auth = { … }` keys, for a kind whose opts struct embeds a
 * `struct http_auth` at `offset`: `{HTTP_AUTH_KEYS(offsetof(…, auth)), {0}}`. */
/* clang-format off */
#define HTTP_AUTH_KEYS(offset)                                                                   \
    {"scheme", KEY_ENUM, (offset) + offsetof(struct http_auth, scheme_name), 0, "github",        \
     "github|stripe|slack|shopify|standard", 0, 0, NULL,                                         \
     "how the HMAC secret signs requests (the provider's signature header format)"},             \
    {"hmac_secret_file", KEY_SECRET, (offset) + offsetof(struct http_auth, hmac_secret), 0,      \
     NULL, NULL, 0, 0, NULL, "HMAC-SHA256 key: requests must carry the scheme's signature"},     \
    {"hmac_secret_files", KEY_SECRETS, (offset) + offsetof(struct http_auth, hmac_secrets), 0,   \
     NULL, NULL, 0, 0, NULL, "several HMAC keys, any of which may sign (key rotation)"},         \
    {"hmac_header", KEY_STRING, (offset) + offsetof(struct http_auth, hmac_header), 0,           \
     "X-Signature-256", NULL, 0, 0, NULL, "scheme github: header holding sha256=<hex>"},         \
    {"tolerance", KEY_INT, (offset) + offsetof(struct http_auth, tolerance), 0, "300", NULL, 1,  \
     86400, NULL, "stripe, slack, standard: seconds a signed timestamp may be old or ahead"},    \
    {"bearer_token_file", KEY_SECRET, (offset) + offsetof(struct http_auth, bearer_token), 0,    \
     NULL, NULL, 0, 0, NULL, "requests must carry Authorization: Bearer <token>"}
/* clang-format on */

/* Resolves a->scheme and reports bearer together with HMAC, a non-github
 * scheme without a secret, and (scheme standard) a secret that is not
 * whsec_<base64>, at the line naming it. */
void http_auth_validate(struct http_auth *a, const char *route, int line,
                        struct config_report *rep);
bool http_auth_enabled(const struct http_auth *a);
/* "hmac" (github), the scheme's name, "bearer" or "none" */
const char *http_auth_describe(const struct http_auth *a);

/* true when the request may pass; else *why says why (for the log, never the client).
 * header(name) looks up a request header. */
typedef const char *(*http_auth_header_fn)(void *arg, const char *name);
bool http_auth_check(const struct http_auth *a, http_auth_header_fn header, void *arg,
                     const char *body, size_t len, const char **why);
/* The same, with now (unix seconds) as the clock. */
bool http_auth_check_at(const struct http_auth *a, http_auth_header_fn header, void *arg,
                        const char *body, size_t len, int64_t now, const char **why);

/* The message id the scheme names (standard: webhook-id, so a sender's retry
 * is the same message), or NULL. Borrowed from the request. */
const char *http_auth_message_id(const struct http_auth *a, http_auth_header_fn header, void *arg);

/* The lowercase hex HMAC-SHA256 of data under key, into out[65]. */
void http_auth_hmac_hex(const char *key, size_t key_len, const void *data, size_t len,
                        char out[65]);

#endif
