/*
 * http_auth — see http_auth.h. Secrets may be swapped by SIGHUP; readers
 * hold the config's secret read lock while they look at one.
 */
#include "http_auth.h"

#include "util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void http_auth_validate(const struct http_auth *a, const char *route, int line,
                        struct config_report *rep)
{
    if (a->hmac_secret.path && a->bearer_token.path)
        config_report_add(rep, line,
                          "route \"%s\": auth: set hmac_secret_file or bearer_token_file, not both",
                          route);
}

bool http_auth_enabled(const struct http_auth *a)
{
    return a->hmac_secret.path || a->bearer_token.path;
}

const char *http_auth_describe(const struct http_auth *a)
{
    return a->hmac_secret.path ? "hmac" : a->bearer_token.path ? "bearer" : "none";
}

void http_auth_hmac_hex(const char *key, size_t key_len, const void *data, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, mac, &mac_len);
    for (unsigned i = 0; i < mac_len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[64] = '\0';
}

static bool check_hmac(const struct secret *key, const char *given, const char *body, size_t len,
                       const char **why)
{
    if (given == NULL) {
        *why = "missing signature header";
        return false;
    }
    if (strncasecmp(given, "sha256=", 7) != 0) {
        *why = "signature header is not sha256=<hex>";
        return false;
    }
    given += 7;
    char want[65];
    secrets_read_lock();
    http_auth_hmac_hex(key->value, key->len, body, len, want);
    secrets_read_unlock();
    char lower[65] = "";
    size_t n = strlen(given);
    for (size_t i = 0; i < n && i < 64; i++)
        lower[i] = (char)((given[i] >= 'A' && given[i] <= 'F') ? given[i] + 32 : given[i]);
    lower[n < 64 ? n : 64] = '\0';
    if (!bytes_equal_ct(want, 64, lower, n)) {
        *why = "signature does not match the body";
        return false;
    }
    return true;
}

static bool check_bearer(const struct secret *token, const char *given, const char **why)
{
    if (given == NULL || strncasecmp(given, "Bearer ", 7) != 0) {
        *why = "missing Authorization: Bearer header";
        return false;
    }
    given += 7;
    secrets_read_lock();
    bool ok = bytes_equal_ct(token->value, token->len, given, strlen(given));
    secrets_read_unlock();
    if (!ok)
        *why = "bearer token does not match";
    return ok;
}

bool http_auth_check(const struct http_auth *a, http_auth_header_fn header, void *arg,
                     const char *body, size_t len, const char **why)
{
    if (a->hmac_secret.path)
        return check_hmac(&a->hmac_secret, header(arg, a->hmac_header), body, len, why);
    if (a->bearer_token.path)
        return check_bearer(&a->bearer_token, header(arg, "Authorization"), why);
    return true;
}
