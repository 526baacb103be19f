/*
 * oauth2_cache — the token timing rules (see oauth2_cache.h).
 */
#include "oauth2_cache.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

double oauth2_cache_margin(double lifetime)
{
    double m = lifetime / 10;
    return m < OAUTH2_MARGIN_MAX ? m : OAUTH2_MARGIN_MAX;
}

static void forget_token(struct oauth2_cache *c)
{
    wipe_free(c->token);
    c->token = NULL;
    c->refresh_at = c->expires_at = 0;
}

enum oauth2_lookup oauth2_cache_lookup(struct oauth2_cache *c, double now, char **token,
                                       char **error)
{
    *token = NULL;
    *error = NULL;
    bool held = c->error != NULL && now < c->failed_at + OAUTH2_FAIL_HOLD;
    if (c->token && now >= c->expires_at)
        forget_token(c);
    if (c->token) {
        *token = xstrdup(c->token);
        if (now < c->refresh_at || c->fetching || held)
            return OAUTH2_USE;
        c->fetching = true;
        return OAUTH2_USE_AND_REFRESH;
    }
    if (c->fetching)
        return OAUTH2_WAIT;
    if (held) {
        *error = xstrdup(c->error);
        return OAUTH2_FAILED;
    }
    c->fetching = true;
    return OAUTH2_FETCH;
}

void oauth2_cache_store(struct oauth2_cache *c, const char *token, double expires_in,
                        double sent_at)
{
    double life = expires_in > 0 ? expires_in : OAUTH2_DEFAULT_LIFETIME;
    if (life > OAUTH2_MAX_LIFETIME)
        life = OAUTH2_MAX_LIFETIME;
    double m = oauth2_cache_margin(life);
    forget_token(c);
    c->token = xstrdup(token);
    c->expires_at = sent_at + life - m;
    c->refresh_at = sent_at + life - 2 * m;
    c->fetching = false;
    free(c->error);
    c->error = NULL;
}

void oauth2_cache_fail(struct oauth2_cache *c, const char *error, double now)
{
    free(c->error);
    c->error = xstrdup(error);
    c->failed_at = now;
    c->fetching = false;
}

void oauth2_cache_abort(struct oauth2_cache *c)
{
    c->fetching = false;
}

void oauth2_cache_reject(struct oauth2_cache *c, const char *token)
{
    if (c->token && token && strcmp(c->token, token) == 0)
        forget_token(c);
}

void oauth2_cache_drop(struct oauth2_cache *c)
{
    forget_token(c);
}

bool oauth2_cache_failing(const struct oauth2_cache *c, double now, const char **error)
{
    if (c->error == NULL || (c->token && now < c->expires_at))
        return false;
    *error = c->error;
    return true;
}

void oauth2_cache_free(struct oauth2_cache *c)
{
    forget_token(c);
    free(c->error);
    *c = (struct oauth2_cache){0};
}
