/*
 * legacy_auth — the credentials the sidecar presents when it calls the legacy
 * side: `auth = { … }` on http and soap outbound routes and on poll routes.
 * (Not http_auth, which checks the signatures of requests inbound routes
 * receive: one proves who we are, the other who is calling us.)
 *
 * One method per route: basic (user + password_file), bearer_token_file,
 * header + value_file, or oauth2 client credentials (RFC 6749 §4.4; oauth2.h
 * fetches, shares and caches the token). Every secret is a KEY_SECRET file:
 * checked private at load, re-read on SIGHUP. The static methods become one
 * request header, built per call under the secrets lock, so a SIGHUP applies
 * from the next call on.
 *
 * Ownership: the struct belongs to the route's opts (the key table fills and
 * frees it); legacy_auth_header returns a value the caller frees.
 */
#ifndef SIDECAR_LEGACY_AUTH_H
#define SIDECAR_LEGACY_AUTH_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

enum legacy_auth_method {
    LEGACY_AUTH_NONE,
    LEGACY_AUTH_BASIC,  /* Authorization: Basic base64(user:password) */
    LEGACY_AUTH_BEARER, /* Authorization: Bearer <file content> */
    LEGACY_AUTH_HEADER, /* <header>: <file content> */
    LEGACY_AUTH_OAUTH2, /* Authorization: Bearer <token from token_url> */
};

/* How the client proves itself to the token endpoint (RFC 6749 §2.3.1). */
enum oauth2_client_auth {
    OAUTH2_CLIENT_AUTH_BASIC, /* HTTP Basic with the form-encoded id and secret */
    OAUTH2_CLIENT_AUTH_POST,  /* client_id and client_secret in the form body */
};

struct legacy_auth_basic {
    char *user;
    struct secret password;
};

struct legacy_oauth2_config {
    char *token_url;
    char *client_id;
    struct secret client_secret;
    char *scope;    /* NULL: not sent */
    char *audience; /* NULL: not sent */
    char *client_auth_name;
    enum oauth2_client_auth client_auth; /* from client_auth_name, by validate */
    double timeout;                      /* seconds for one token request */
};

struct legacy_auth {
    struct legacy_auth_basic basic;
    struct secret bearer_token;
    char *header;
    struct secret value;
    struct legacy_oauth2_config oauth2;
    enum legacy_auth_method method; /* not a key: what validate found set */
};

/* The `auth = { … }` table; its offsets count from a struct legacy_auth, so a
 * kind embeds one and names it: {"auth", KEY_GROUP, O(auth), …, legacy_auth_keys, …}. */
extern const struct config_key legacy_auth_keys[];

/* Resolves a->method and reports two methods at once, a method with a missing
 * half, an invalid header name, a secret that cannot go into a header, an
 * https-less token_url, and an `auth` the route's own `headers` would
 * override. where names the route ("outbound route \"erp\""); line is the
 * route's. */
void legacy_auth_validate(struct legacy_auth *a, const char *where, int line,
                          const struct strmap *headers, struct config_report *rep);

/* "none", "basic", "bearer", "header", "oauth2": for `check` and logs. */
const char *legacy_auth_describe(const struct legacy_auth *a);

/* The header a static method (basic, bearer, header) adds to every call: its
 * name in *name and its value, which the caller frees (and should wipe).
 * NULL for none and oauth2, or when the secret (re-read by SIGHUP) cannot be
 * a header value: then *problem says why, naming the file, never its content. */
char *legacy_auth_header(const struct legacy_auth *a, const char **name, const char **problem);

/* base64 (RFC 4648, padded) of data, malloc'd. */
char *legacy_auth_base64(const void *data, size_t len);

#endif
