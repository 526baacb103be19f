/*
 * oauth2_cache — when an OAuth 2.0 access token may be used, refreshed or must
 * be fetched: the timing rules, with the clock passed in (unit tested with a
 * fake one in tests/unit/test_oauth2_cache.c). No locks, no I/O: oauth2.c
 * holds one per token source under its lock and does the fetching.
 *
 * A token that lives L seconds (expires_in, counted from when its request was
 * sent) is used until L − m, with the margin m = min(60 s, L/10): a token of
 * ten seconds is still used for nine. One refresh starts at L − 2m, while
 * calls go on with the current token; a 401 drops the token it was given
 * (unless a newer one replaced it already). After a failed fetch, lookups
 * fail at once for OAUTH2_FAIL_HOLD seconds, so many calls do not turn one
 * outage into a flood of token requests.
 *
 * Ownership: tokens and errors are copied in and out; the caller frees what
 * a lookup returns (and should wipe a token).
 */
#ifndef SIDECAR_OAUTH2_CACHE_H
#define SIDECAR_OAUTH2_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#define OAUTH2_MARGIN_MAX       60.0    /* seconds */
#define OAUTH2_DEFAULT_LIFETIME 300.0   /* seconds, when the answer has no expires_in */
#define OAUTH2_MAX_LIFETIME     86400.0 /* longer lifetimes are cut to this */
#define OAUTH2_FAIL_HOLD        1.0     /* seconds */

struct oauth2_cache {
    char *token;
    double refresh_at, expires_at; /* the caller's clock, seconds */
    bool fetching;                 /* a fetch is under way (someone was told FETCH/REFRESH) */
    char *error;                   /* the last fetch's failure; NULL after a success */
    double failed_at;
};

enum oauth2_lookup {
    OAUTH2_USE,             /* *token is a copy of the current token */
    OAUTH2_USE_AND_REFRESH, /* the same, and the caller fetches a new one now */
    OAUTH2_FETCH,           /* no usable token: the caller fetches it now */
    OAUTH2_WAIT,            /* no usable token; a fetch is under way: ask again after it */
    OAUTH2_FAILED,          /* the last fetch failed just now: *error is a copy of why */
};

/* What a call at `now` does. FETCH and USE_AND_REFRESH mark the cache as
 * fetching: the caller must end that with store, fail or abort. */
enum oauth2_lookup oauth2_cache_lookup(struct oauth2_cache *c, double now, char **token,
                                       char **error);
/* The fetch sent at sent_at brought token, living expires_in seconds (<= 0: the default). */
void oauth2_cache_store(struct oauth2_cache *c, const char *token, double expires_in,
                        double sent_at);
/* The fetch failed at now; error is copied. The current token stays usable until it expires. */
void oauth2_cache_fail(struct oauth2_cache *c, const char *error, double now);
/* The fetcher went away without an answer (its route stopped). */
void oauth2_cache_abort(struct oauth2_cache *c);
/* The legacy side answered 401 to token: drop it if it is still the current one. */
void oauth2_cache_reject(struct oauth2_cache *c, const char *token);
/* Forget the token (SIGHUP: the secret may have changed). */
void oauth2_cache_drop(struct oauth2_cache *c);
/* True while no token is usable at now and the last fetch failed; *error borrowed. */
bool oauth2_cache_failing(const struct oauth2_cache *c, double now, const char **error);
void oauth2_cache_free(struct oauth2_cache *c);

/* The margin for a token living `lifetime` seconds: min(OAUTH2_MARGIN_MAX, lifetime / 10). */
double oauth2_cache_margin(double lifetime);

#endif
