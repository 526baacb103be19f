/*
 * http_auth — see http_auth.h. A signed request is checked in two steps:
 * the scheme's parser reads its headers once (bounded: at most
 * HTTP_AUTH_MAX_CANDIDATES signatures, a strict timestamp) into the parts
 * that were signed and the candidate signatures; then every configured key
 * signs those parts and each candidate is compared in constant time.
 * Secrets may be swapped by SIGHUP; readers hold the config's secret read
 * lock while they look at one.
 */
#include "http_auth.h"

#include "util.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAC_BYTES        32
#define HEX_CHARS        64
#define B64_CHARS        44       /* base64 of MAC_BYTES, padded */
#define TIMESTAMP_DIGITS 12       /* unix seconds until the year 33658 */
#define WHSEC_PREFIX     "whsec_" /* Standard Webhooks secrets: whsec_<base64 of the key> */
#define WHSEC_MAX_CHARS  680      /* base64 of at most 510 key bytes */
#define WHSEC_MAX_BYTES  512

/* ---- config ---------------------------------------------------------------------- */

static enum http_auth_scheme scheme_of(const char *name)
{
    static const char *const names[] = {"github", "stripe", "slack", "shopify", "standard"};
    for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return (enum http_auth_scheme)i;
    return HTTP_AUTH_GITHUB;
}

static bool has_hmac(const struct http_auth *a)
{
    return a->hmac_secret.path || a->hmac_secrets.n > 0;
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Decodes whsec_<strict, padded base64> into out[WHSEC_MAX_BYTES]: the key's
 * length, or -1 when s is not that (or the key is empty or too long). */
static int whsec_decode(const char *s, size_t len, unsigned char out[WHSEC_MAX_BYTES])
{
    size_t plen = strlen(WHSEC_PREFIX);
    if (len < plen || memcmp(s, WHSEC_PREFIX, plen) != 0)
        return -1;
    s += plen;
    len -= plen;
    if (len == 0 || len % 4 != 0 || len > WHSEC_MAX_CHARS)
        return -1;
    size_t pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < len - pad; i++)
        if (!b64_char(s[i]))
            return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (n < 0 || (size_t)n < pad + 1)
        return -1;
    return n - (int)pad;
}

static void validate_whsec(const struct secret *sec, const char *route, int line,
                           struct config_report *rep)
{
    unsigned char key[WHSEC_MAX_BYTES];
    if (sec->value && whsec_decode(sec->value, sec->len, key) < 0)
        config_report_add(rep, sec->line ? sec->line : line,
                          "route \"%s\": auth: secret file \"%s\" must hold whsec_<base64 key> "
                          "for scheme standard (as the sender shows it)",
                          route, sec->path);
    OPENSSL_cleanse(key, sizeof(key));
}

void http_auth_validate(struct http_auth *a, const char *route, int line, struct config_report *rep)
{
    a->scheme = scheme_of(a->scheme_name);
    if (has_hmac(a) && a->bearer_token.path)
        config_report_add(rep, line,
                          "route \"%s\": auth: set hmac_secret_file(s) or bearer_token_file, not "
                          "both",
                          route);
    if (a->scheme != HTTP_AUTH_GITHUB && !has_hmac(a))
        config_report_add(rep, line,
                          "route \"%s\": auth: scheme \"%s\" needs hmac_secret_file or "
                          "hmac_secret_files",
                          route, a->scheme_name);
    if (a->scheme == HTTP_AUTH_STANDARD) {
        if (a->hmac_secret.path)
            validate_whsec(&a->hmac_secret, route, line, rep);
        for (size_t i = 0; i < a->hmac_secrets.n; i++)
            validate_whsec(&a->hmac_secrets.v[i], route, line, rep);
    }
}

bool http_auth_enabled(const struct http_auth *a)
{
    return has_hmac(a) || a->bearer_token.path;
}

const char *http_auth_describe(const struct http_auth *a)
{
    if (has_hmac(a))
        return a->scheme == HTTP_AUTH_GITHUB ? "hmac" : a->scheme_name;
    return a->bearer_token.path ? "bearer" : "none";
}

/* ---- signing --------------------------------------------------------------------- */

/* The HMAC-SHA256 of the parts one after another; false if OpenSSL failed. */
static bool hmac_parts(const unsigned char *key, size_t key_len, const struct byte_span *parts,
                       size_t n, unsigned char out[MAC_BYTES])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    size_t out_len = 0;
    bool ok = ctx && EVP_MAC_init(ctx, key, key_len, params);
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_MAC_update(ctx, parts[i].data, parts[i].len);
    ok = ok && EVP_MAC_final(ctx, out, &out_len, MAC_BYTES) && out_len == MAC_BYTES;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
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

/* ---- what a request signed --------------------------------------------------------- */

enum sig_encoding { SIG_HEX, SIG_BASE64 };

/* A request's signed parts and the signatures it offers (all borrowed). */
struct signed_request {
    struct byte_span parts[5];
    size_t n_parts;
    struct byte_span candidates[HTTP_AUTH_MAX_CANDIDATES];
    size_t n_candidates;
    enum sig_encoding encoding;
};

static void add_part(struct signed_request *s, const void *data, size_t len)
{
    s->parts[s->n_parts++] = (struct byte_span){data, len};
}

static void add_candidate(struct signed_request *s, const char *sig, size_t len)
{
    if (s->n_candidates < HTTP_AUTH_MAX_CANDIDATES)
        s->candidates[s->n_candidates++] = (struct byte_span){sig, len};
}

/* Strict unix seconds: 1 to TIMESTAMP_DIGITS digits, nothing else. */
static bool parse_timestamp(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > TIMESTAMP_DIGITS)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool timestamp_ok(const struct http_auth *a, const char *s, size_t len, int64_t now,
                         const char **why)
{
    int64_t ts;
    if (s == NULL) {
        *why = "missing signature timestamp";
        return false;
    }
    if (!parse_timestamp(s, len, &ts)) {
        *why = "signature timestamp is not unix seconds";
        return false;
    }
    if (ts < now - a->tolerance || ts > now + a->tolerance) {
        *why = "timestamp outside tolerance";
        return false;
    }
    return true;
}

static bool parse_github(const struct http_auth *a, http_auth_header_fn header, void *arg,
                         struct signed_request *s, const char **why)
{
    const char *given = header(arg, a->hmac_header);
    if (given == NULL) {
        *why = "missing signature header";
        return false;
    }
    if (strncasecmp(given, "sha256=", 7) != 0) {
        *why = "signature header is not sha256=<hex>";
        return false;
    }
    add_candidate(s, given + 7, strlen(given + 7));
    return true;
}

/* Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…] — one pass over the items. */
static bool parse_stripe(const struct http_auth *a, http_auth_header_fn header, void *arg,
                         int64_t now, struct signed_request *s, const char **why)
{
    const char *given = header(arg, "Stripe-Signature");
    if (given == NULL) {
        *why = "missing Stripe-Signature header";
        return false;
    }
    const char *t = NULL;
    size_t t_len = 0;
    for (const char *p = given; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 2 && p[0] == 't' && p[1] == '=') {
            if (t != NULL) {
                *why = "Stripe-Signature has two timestamps";
                return false;
            }
            t = p + 2;
            t_len = n - 2;
        } else if (n > 3 && memcmp(p, "v1=", 3) == 0) {
            add_candidate(s, p + 3, n - 3);
        }
        p = end ? end + 1 : p + n;
    }
    if (t == NULL || s->n_candidates == 0) {
        *why = "Stripe-Signature is not t=<unix>,v1=<hex>";
        return false;
    }
    if (!timestamp_ok(a, t, t_len, now, why))
        return false;
    add_part(s, t, t_len);
    add_part(s, ".", 1);
    return true;
}

static bool parse_slack(const struct http_auth *a, http_auth_header_fn header, void *arg,
                        int64_t now, struct signed_request *s, const char **why)
{
    const char *given = header(arg, "X-Slack-Signature");
    const char *ts = header(arg, "X-Slack-Request-Timestamp");
    if (given == NULL || strncmp(given, "v0=", 3) != 0) {
        *why = "missing X-Slack-Signature: v0=<hex>";
        return false;
    }
    if (!timestamp_ok(a, ts, ts ? strlen(ts) : 0, now, why))
        return false;
    add_candidate(s, given + 3, strlen(given + 3));
    add_part(s, "v0:", 3);
    add_part(s, ts, strlen(ts));
    add_part(s, ":", 1);
    return true;
}

static bool parse_shopify(http_auth_header_fn header, void *arg, struct signed_request *s,
                          const char **why)
{
    const char *given = header(arg, "X-Shopify-Hmac-Sha256");
    if (given == NULL) {
        *why = "missing X-Shopify-Hmac-Sha256 header";
        return false;
    }
    add_candidate(s, given, strlen(given));
    return true;
}

/* webhook-signature: space-separated "v1,<base64>"; other versions are skipped. */
static bool parse_standard(const struct http_auth *a, http_auth_header_fn header, void *arg,
                           int64_t now, struct signed_request *s, const char **why)
{
    const char *id = header(arg, "webhook-id");
    const char *ts = header(arg, "webhook-timestamp");
    const char *given = header(arg, "webhook-signature");
    if (id == NULL || given == NULL) {
        *why = "missing webhook-id or webhook-signature header";
        return false;
    }
    if (!timestamp_ok(a, ts, ts ? strlen(ts) : 0, now, why))
        return false;
    for (const char *p = given; *p;) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 3 && memcmp(p, "v1,", 3) == 0)
            add_candidate(s, p + 3, n - 3);
        p = end ? end + 1 : p + n;
    }
    if (s->n_candidates == 0) {
        *why = "webhook-signature holds no v1,<base64>";
        return false;
    }
    add_part(s, id, strlen(id));
    add_part(s, ".", 1);
    add_part(s, ts, strlen(ts));
    add_part(s, ".", 1);
    return true;
}

/* ---- checking -------------------------------------------------------------------- */

/* Does one key sign s? Every candidate is compared in constant time. */
static bool key_signs(const unsigned char *key, size_t key_len, const struct signed_request *s)
{
    unsigned char mac[MAC_BYTES];
    char want[HEX_CHARS + 1]; /* hex, or base64 (B64_CHARS), NUL-terminated */
    size_t want_len;
    if (!hmac_parts(key, key_len, s->parts, s->n_parts, mac))
        return false;
    if (s->encoding == SIG_HEX) {
        for (size_t i = 0; i < MAC_BYTES; i++)
            snprintf(want + 2 * i, 3, "%02x", mac[i]);
        want_len = HEX_CHARS;
    } else {
        want_len = (size_t)EVP_EncodeBlock((unsigned char *)want, mac, MAC_BYTES);
    }
    bool match = false;
    for (size_t c = 0; c < s->n_candidates; c++) {
        const char *given = s->candidates[c].data;
        size_t n = s->candidates[c].len;
        char lower[HEX_CHARS];
        if (s->encoding == SIG_HEX && n == HEX_CHARS) { /* hex may come in upper case */
            for (size_t i = 0; i < n; i++)
                lower[i] = (char)(given[i] >= 'A' && given[i] <= 'F' ? given[i] + 32 : given[i]);
            given = lower;
        }
        match |= bytes_equal_ct(want, want_len, given, n);
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return match;
}

static bool secret_signs(const struct http_auth *a, const struct secret *sec,
                         const struct signed_request *s)
{
    if (sec->value == NULL)
        return false;
    if (a->scheme != HTTP_AUTH_STANDARD)
        return key_signs((const unsigned char *)sec->value, sec->len, s);
    unsigned char key[WHSEC_MAX_BYTES];
    int n = whsec_decode(sec->value, sec->len, key);
    bool ok = n > 0 && key_signs(key, (size_t)n, s);
    OPENSSL_cleanse(key, sizeof(key));
    return ok;
}

static bool check_hmac(const struct http_auth *a, http_auth_header_fn header, void *arg,
                       const char *body, size_t len, int64_t now, const char **why)
{
    struct signed_request s = {.encoding = SIG_HEX};
    bool parsed = false;
    switch (a->scheme) {
    case HTTP_AUTH_GITHUB:
        parsed = parse_github(a, header, arg, &s, why);
        break;
    case HTTP_AUTH_STRIPE:
        parsed = parse_stripe(a, header, arg, now, &s, why);
        break;
    case HTTP_AUTH_SLACK:
        parsed = parse_slack(a, header, arg, now, &s, why);
        break;
    case HTTP_AUTH_SHOPIFY:
        s.encoding = SIG_BASE64;
        parsed = parse_shopify(header, arg, &s, why);
        break;
    case HTTP_AUTH_STANDARD:
        s.encoding = SIG_BASE64;
        parsed = parse_standard(a, header, arg, now, &s, why);
        break;
    }
    if (!parsed)
        return false;
    add_part(&s, body, len);

    bool ok = false;
    secrets_read_lock();
    if (a->hmac_secret.path)
        ok = secret_signs(a, &a->hmac_secret, &s);
    for (size_t i = 0; !ok && i < a->hmac_secrets.n; i++)
        ok = secret_signs(a, &a->hmac_secrets.v[i], &s);
    secrets_read_unlock();
    if (!ok)
        *why = "signature does not match the body";
    return ok;
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

bool http_auth_check_at(const struct http_auth *a, http_auth_header_fn header, void *arg,
                        const char *body, size_t len, int64_t now, const char **why)
{
    if (has_hmac(a))
        return check_hmac(a, header, arg, body, len, now, why);
    if (a->bearer_token.path)
        return check_bearer(&a->bearer_token, header(arg, "Authorization"), why);
    return true;
}

bool http_auth_check(const struct http_auth *a, http_auth_header_fn header, void *arg,
                     const char *body, size_t len, const char **why)
{
    return http_auth_check_at(a, header, arg, body, len, (int64_t)time(NULL), why);
}

const char *http_auth_message_id(const struct http_auth *a, http_auth_header_fn header, void *arg)
{
    return a->scheme == HTTP_AUTH_STANDARD && has_hmac(a) ? header(arg, "webhook-id") : NULL;
}
