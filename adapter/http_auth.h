/*
 * http_auth — inbound request authentication shared by http and soap routes:
 * an HMAC-SHA256 signature of the raw body (GitHub's `sha256=<hex>` format,
 * header name configurable) or a bearer token. Secrets come from files
 * (config.h's KEY_SECRET) and are compared in constant time.
 */
#ifndef SIDECAR_HTTP_AUTH_H
#define SIDECAR_HTTP_AUTH_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

struct http_auth {
    struct secret hmac_secret;
    char *hmac_header;
    struct secret bearer_token;
};

/* The `auth = { … }` keys, for a kind whose opts struct embeds a
 * `struct http_auth` at `offset`: `{HTTP_AUTH_KEYS(offsetof(…, auth)), {0}}`. */
/* clang-format off */
#define HTTP_AUTH_KEYS(offset)                                                                   \
    {"hmac_secret_file", KEY_SECRET, (offset) + offsetof(struct http_auth, hmac_secret), 0,      \
     NULL, NULL, 0, 0, NULL, "HMAC-SHA256 key: requests must carry sha256=<hex HMAC of body>"}, \
    {"hmac_header", KEY_STRING, (offset) + offsetof(struct http_auth, hmac_header), 0,           \
     "X-Signature-256", NULL, 0, 0, NULL, "header holding the HMAC signature"},                  \
    {"bearer_token_file", KEY_SECRET, (offset) + offsetof(struct http_auth, bearer_token), 0,    \
     NULL, NULL, 0, 0, NULL, "requests must carry Authorization: Bearer <token>"}
/* clang-format on */

/* Reports "set one of hmac_secret_file and bearer_token_file, not both". */
void http_auth_validate(const struct http_auth *a, const char *route, int line,
                        struct config_report *rep);
bool http_auth_enabled(const struct http_auth *a);
const char *http_auth_describe(const struct http_auth *a); /* "hmac", "bearer" or "none" */

/* true when the request may pass; else *why says why (for the log, never the client).
 * header(name) looks up a request header. */
typedef const char *(*http_auth_header_fn)(void *arg, const char *name);
bool http_auth_check(const struct http_auth *a, http_auth_header_fn header, void *arg,
                     const char *body, size_t len, const char **why);

/* The lowercase hex HMAC-SHA256 of data under key, into out[65]. */
void http_auth_hmac_hex(const char *key, size_t key_len, const void *data, size_t len,
                        char out[65]);

#endif
