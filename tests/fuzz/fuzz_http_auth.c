/*
 * fuzz_http_auth.c — libFuzzer target for the signature header parsers of
 * adapter/http_auth.c (schemes github, stripe, slack, shopify, standard, and
 * the bearer token).
 *
 * The first byte picks the scheme and whether one secret or a rotation list
 * of two is configured; the rest is up to three header values, one per line
 * (the scheme's signature, timestamp and id headers, in that order), then the
 * body. The clock is fixed so that timestamps near 1700000000 pass the
 * tolerance and the parsers past it are reached. Besides memory errors it
 * checks that nothing verifies: the input would have to carry a correct
 * HMAC-SHA256 of its own body under a key it never sees, so a pass means a
 * parser accepted something it should not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000

struct request {
    const char *values[3]; /* signature, timestamp, id */
};

static const char *request_header(void *arg, const char *name)
{
    const struct request *r = arg;
    static const char *const signature[] = {"X-Signature-256",   "Stripe-Signature",
                                            "X-Slack-Signature", "X-Shopify-Hmac-Sha256",
                                            "webhook-signature", "Authorization"};
    for (size_t i = 0; i < sizeof(signature) / sizeof(signature[0]); i++)
        if (strcasecmp(name, signature[i]) == 0)
            return r->values[0];
    if (strcasecmp(name, "X-Slack-Request-Timestamp") == 0 ||
        strcasecmp(name, "webhook-timestamp") == 0)
        return r->values[1];
    if (strcasecmp(name, "webhook-id") == 0)
        return r->values[2];
    return NULL;
}

static struct secret secret_of(char *value)
{
    return (struct secret){.path = "fuzz.secret", .value = value, .len = strlen(value)};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const schemes[] = {"github", "stripe", "slack", "shopify", "standard"};
    /* whsec_ form for standard (base64 of "fuzz-key-0123456789"), plain otherwise */
    static char plain[] = "fuzz-key-0123456789", whsec[] = "whsec_ZnV6ei1rZXktMDEyMzQ1Njc4OQ==";
    static char other[] = "whsec_b3RoZXIta2V5";

    /* copy: each header value and the body as NUL-terminated strings */
    char *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    struct request req = {{NULL, NULL, NULL}};
    char *p = copy, *end = copy + size - 1;
    for (size_t i = 0; i < 3 && p < end; i++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        *nl = '\0';
        req.values[i] = p;
        p = nl + 1;
    }

    unsigned scheme = data[0] % 6; /* 5: bearer token */
    struct http_auth a = {.hmac_header = "X-Signature-256", .tolerance = 300};
    struct secret list[2];
    if (scheme == 5) {
        a.bearer_token = secret_of(plain);
    } else {
        a.scheme_name = (char *)schemes[scheme];
        char *key = scheme == HTTP_AUTH_STANDARD ? whsec : plain;
        if (data[0] & 0x80) {
            list[0] = secret_of(other);
            list[1] = secret_of(key);
            a.hmac_secrets = (struct secretlist){list, 2};
        } else {
            a.hmac_secret = secret_of(key);
        }
    }
    struct config_report rep = {.file = "fuzz.conf"};
    http_auth_validate(&a, "fuzz", 1, &rep);
    if (rep.n > 0) {
        config_report_print(&rep);
        abort();
    }
    config_report_free(&rep);

    /* the one input that may pass: the bearer token itself, which is no signature */
    bool token = scheme == 5 && req.values[0] && strncasecmp(req.values[0], "Bearer ", 7) == 0 &&
                 strcmp(req.values[0] + 7, plain) == 0;
    const char *why = NULL;
    bool ok = http_auth_check_at(&a, request_header, &req, p, (size_t)(end - p), NOW, &why);
    if (ok != token) {
        fprintf(stderr, "property broken: scheme %u %s a request it %s\n", scheme,
                ok ? "accepted" : "refused", ok ? "cannot have signed" : "carried the token");
        abort();
    }
    if (!ok && (!why || !*why)) {
        fprintf(stderr, "property broken: refused without a reason\n");
        abort();
    }
    (void)http_auth_message_id(&a, request_header, &req);
    free(copy);
    return 0;
}
