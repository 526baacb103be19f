/*
 * legacy_client — how a route calls the legacy side (http and soap outbound,
 * poll): its HTTP client (httpc.h) with the route's credentials
 * (legacy_auth.h) added to every call, over the route's `tls` settings
 * (a private CA, a client certificate for mutual TLS, verification).
 *
 * A static method's header is built per call; with oauth2 the call waits for
 * a token (oauth2.h) on the route's loop and is sent with it. A 401 to an
 * oauth2 call drops that token and sends the call once more with a new one:
 * the caller sees only the second answer, as one call. When no token can be
 * had the call is not sent and ends with status 0, not_sent and the token
 * endpoint's failure as error: the caller retries it without counting an
 * attempt at the legacy side.
 *
 * Loop thread only (but legacy_client_ready). Each started call ends in
 * exactly one done callback, never before legacy_client_start returned.
 * Ownership: the request is copied; config and registry are borrowed.
 */
#ifndef SIDECAR_LEGACY_CLIENT_H
#define SIDECAR_LEGACY_CLIENT_H

#include "config.h"
#include "httpc.h"

#include <stdbool.h>

struct buf;
struct legacy_auth;
struct loop;
struct oauth2_registry;

/* Where calls go instead of HTTP: `amqp-sidecar test` answers them in-process
 * (route_services.legacy_transport). start has httpc_start's contract: 0, and
 * done runs exactly once on loop, never before start returned; or -1 (a call
 * still unanswered when the client is freed is dropped, never answered). The
 * request is the one that would be sent, credentials included. */
struct legacy_transport {
    int (*start)(void *arg, struct loop *loop, const struct httpc_request *req, httpc_done_fn done,
                 void *done_arg); /* loop: the client's, where done must run */
    void *arg;
};

struct legacy_client_config {
    const char *route;                        /* for log lines */
    const struct legacy_auth *auth;           /* validated (method resolved) */
    struct oauth2_registry *oauth2;           /* shared tokens; needed for auth.oauth2 */
    const struct tls_config *tls;             /* for the legacy side (not the token endpoint) */
    const struct legacy_transport *transport; /* NULL: HTTP; else every call goes there (and
                                               * auth.oauth2 fetches no token: none is sent) */
};

/* The `tls = { ca; cert; key; verify; }` table of the calling kinds, with
 * broker.tls's meaning; its offsets count from a struct tls_config:
 * {"tls", KEY_GROUP, O(tls), …, legacy_tls_keys, …}. */
extern const struct config_key legacy_tls_keys[];
/* Reports cert without key (or the reverse), and tls keys on a url that is not https://. */
void legacy_tls_validate(const struct tls_config *tls, const char *url, const char *where, int line,
                         struct config_report *rep);

struct legacy_client *legacy_client_new(struct loop *loop, const struct legacy_client_config *cfg);
/* Aborts every call without calling back. Loop thread. */
void legacy_client_free(struct legacy_client *lc);

/* Starts the call; returns 0 (done will run: a refusal by curl arrives there too). */
int legacy_client_start(struct legacy_client *lc, const struct httpc_request *req,
                        httpc_done_fn done, void *arg);

/* Any thread: false with why in detail while the credentials cannot be had. */
bool legacy_client_ready(struct legacy_client *lc, struct buf *detail);

#endif
