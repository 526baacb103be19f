/*
 * oauth2 — OAuth 2.0 client credentials (RFC 6749 §4.4) for the routes that
 * call the legacy side with auth.oauth2: tokens fetched from token_url over
 * the route's own HTTP client (libcurl multi on the route's loop, so a fetch
 * never blocks the loop), parsed with jansson, and shared.
 *
 * The registry (one per process, made by sidecar.c) holds one token source
 * per distinct setting (token_url, client_id, secret file, scope, audience,
 * client_auth): routes with the same settings share a token. A source's
 * cache (oauth2_cache.h) decides when to use, refresh or fetch; one lock
 * guards every source. Each route makes an oauth2_client on its loop: calls
 * ask it for a token and are answered on that loop, at once when a token is
 * cached, else after the fetch (theirs, or another route's: then the client
 * looks again every OAUTH2_WAIT_MS until it ends).
 *
 * Tokens and the client secret never enter a log line, an error text or
 * /readyz: errors name the token URL (without query), the HTTP status, and
 * the endpoint's OAuth `error` code and description.
 */
#ifndef SIDECAR_OAUTH2_H
#define SIDECAR_OAUTH2_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct httpc;
struct legacy_oauth2_config;
struct loop;
struct oauth2_registry;
struct oauth2_client;

#define OAUTH2_WAIT_MS 50

struct oauth2_registry *oauth2_registry_new(void);
/* After every client is freed. */
void oauth2_registry_free(struct oauth2_registry *reg);
/* Any thread: forget every cached token (SIGHUP re-read the secrets). */
void oauth2_registry_drop_tokens(struct oauth2_registry *reg);

/* A client of cfg's shared source for route's calls on loop, fetching
 * through http (all borrowed; cfg and route live as long as the config). Loop
 * thread from then on. */
struct oauth2_client *oauth2_client_new(struct oauth2_registry *reg,
                                        const struct legacy_oauth2_config *cfg, const char *route,
                                        struct loop *loop, struct httpc *http);
/* Drops waiting callers without calling them. Before or after http is freed. */
void oauth2_client_free(struct oauth2_client *c);

/* token (borrowed, valid during the call) or NULL with error (why, safe to log). */
typedef void (*oauth2_token_fn)(void *arg, const char *token, const char *error);

/* Loop thread: calls fn exactly once, maybe before returning. */
void oauth2_client_get(struct oauth2_client *c, oauth2_token_fn fn, void *arg);
/* Loop thread: the legacy side answered 401 to token. */
void oauth2_client_rejected(struct oauth2_client *c, const char *token);
/* Any thread: false with why in detail while no token is usable and the last
 * fetch failed. */
bool oauth2_client_ready(struct oauth2_client *c, struct buf *detail);

/* `check --connect`: fetches one token on a loop of its own (at most the
 * config's timeout). 0, or -1 with why in err. The token is not shown. */
int oauth2_probe(const struct legacy_oauth2_config *cfg, double *expires_in, char *err,
                 size_t errlen);

#endif
