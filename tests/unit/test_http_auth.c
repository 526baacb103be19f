/*
 * Unit tests for adapter/http_auth.c: each auth.scheme against its provider's
 * published example where one exists (GitHub's and Slack's docs, the Standard
 * Webhooks reference test vector) and vectors computed with python3's hmac
 * otherwise (Stripe, Shopify); then wrong, missing, stale, future, rotated-key
 * and malformed requests, a header with 10 000 signatures, and the check-time
 * validation of whsec_ secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http_auth.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- fixtures -------------------------------------------------------------------- */

#define MAX_HEADERS 4

struct request {
    const char *names[MAX_HEADERS];
    const char *values[MAX_HEADERS];
};

static const char *header_of(void *arg, const char *name)
{
    const struct request *r = arg;
    for (size_t i = 0; i < MAX_HEADERS && r->names[i]; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

static struct secret secret_of(const char *value)
{
    return (struct secret){
        .path = (char *)"secret.key", .value = (char *)value, .len = strlen(value)};
}

/* An auth with one secret (and an optional second, rotated one), scheme resolved. */
static struct http_auth auth_of(const char *scheme, const char *secret, struct secret *second)
{
    struct http_auth a = {.hmac_secret = secret_of(secret),
                          .hmac_header = (char *)"X-Hub-Signature-256",
                          .scheme_name = (char *)scheme,
                          .tolerance = 300};
    if (second)
        a.hmac_secrets = (struct secretlist){.v = second, .n = 1};
    struct config_report rep = {.file = "test.conf"};
    http_auth_validate(&a, "r", 1, &rep);
    assert_int_equal(rep.n, 0);
    return a;
}

static bool check(const struct http_auth *a, struct request *r, const char *body, int64_t now,
                  const char **why)
{
    *why = NULL;
    return http_auth_check_at(a, header_of, r, body, strlen(body), now, why);
}

/* ---- github ---------------------------------------------------------------------- */

/* docs.github.com, "Validating webhook deliveries": the example secret and payload. */
#define GITHUB_SECRET "It's a Secret to Everybody"
#define GITHUB_BODY   "Hello, World!"
#define GITHUB_SIG    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

static void test_github_published_example(void **state)
{
    (void)state;
    struct http_auth a = auth_of("github", GITHUB_SECRET, NULL);
    const char *why;
    struct request ok = {{"X-Hub-Signature-256"}, {GITHUB_SIG}};
    assert_true(check(&a, &ok, GITHUB_BODY, 0, &why));
    assert_false(check(&a, &ok, GITHUB_BODY "!", 0, &why));
    assert_string_equal(why, "signature does not match the body");
    struct request none = {{NULL}, {NULL}};
    assert_false(check(&a, &none, GITHUB_BODY, 0, &why));
    assert_string_equal(http_auth_describe(&a), "hmac");
    assert_null(http_auth_message_id(&a, header_of, &ok));
}

/* ---- stripe ---------------------------------------------------------------------- */

/* python3: hmac.new(b"whsec_test_secret", b'1700000000.{"id":"evt_1"}', sha256).hexdigest() */
#define STRIPE_SECRET "whsec_test_secret"
#define STRIPE_BODY   "{\"id\":\"evt_1\"}"
#define STRIPE_T      1700000000
#define STRIPE_V1     "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"
/* the same under "whsec_rotated" */
#define STRIPE_V1_ROTATED "b512a29addee8372eec5e716e7e660fae9873e83b13c255f5b07c8ad9efca4a4"

static void test_stripe(void **state)
{
    (void)state;
    struct http_auth a = auth_of("stripe", STRIPE_SECRET, NULL);
    const char *why;
    struct request ok = {{"Stripe-Signature"}, {"t=1700000000,v1=" STRIPE_V1}};
    assert_true(check(&a, &ok, STRIPE_BODY, STRIPE_T, &why));
    assert_true(check(&a, &ok, STRIPE_BODY, STRIPE_T + 300, &why));
    assert_true(check(&a, &ok, STRIPE_BODY, STRIPE_T - 300, &why));
    /* Stripe sends v0 (test mode) and several v1 while a secret rolls */
    struct request many = {{"Stripe-Signature"},
                           {"t=1700000000,v0=00,v1=" STRIPE_V1_ROTATED ",v1=" STRIPE_V1}};
    assert_true(check(&a, &many, STRIPE_BODY, STRIPE_T, &why));
    assert_false(check(&a, &ok, STRIPE_BODY " ", STRIPE_T, &why));
    assert_string_equal(why, "signature does not match the body");
    assert_string_equal(http_auth_describe(&a), "stripe");
}

static void test_stripe_stale_and_future(void **state)
{
    (void)state;
    struct http_auth a = auth_of("stripe", STRIPE_SECRET, NULL);
    const char *why;
    struct request ok = {{"Stripe-Signature"}, {"t=1700000000,v1=" STRIPE_V1}};
    assert_false(check(&a, &ok, STRIPE_BODY, STRIPE_T + 301, &why));
    assert_string_equal(why, "timestamp outside tolerance");
    assert_false(check(&a, &ok, STRIPE_BODY, STRIPE_T - 301, &why));
    assert_string_equal(why, "timestamp outside tolerance");
}

static void test_stripe_malformed(void **state)
{
    (void)state;
    struct http_auth a = auth_of("stripe", STRIPE_SECRET, NULL);
    const char *why;
    const char *bad[] = {
        "",
        "v1=" STRIPE_V1,
        "t=1700000000",
        "t=1700000000,v0=" STRIPE_V1,
        "t=+1700000000,v1=" STRIPE_V1,
        "t=1700000000x,v1=" STRIPE_V1,
        "t=17000000000000000000000,v1=" STRIPE_V1,
        "t=1700000000,t=1700000000,v1=" STRIPE_V1,
        "t=-1,v1=" STRIPE_V1,
        "t=1700000000,v1=" STRIPE_V1 "00",
        "t=1700000000,v1=",
        ",,,",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct request r = {{"Stripe-Signature"}, {bad[i]}};
        assert_false(check(&a, &r, STRIPE_BODY, STRIPE_T, &why));
        assert_non_null(why);
    }
}

/* 10 000 wrong v1= entries before the right one: refused (only the first
 * HTTP_AUTH_MAX_CANDIDATES are tried) and in linear time. */
static void test_stripe_many_signatures_are_capped(void **state)
{
    (void)state;
    struct http_auth a = auth_of("stripe", STRIPE_SECRET, NULL);
    struct buf h = {0};
    buf_puts(&h, "t=1700000000");
    for (int i = 0; i < 10000; i++)
        buf_puts(&h, ",v1=" STRIPE_V1_ROTATED);
    buf_puts(&h, ",v1=" STRIPE_V1);
    struct request r = {{"Stripe-Signature"}, {h.data}};
    const char *why;
    assert_false(check(&a, &r, STRIPE_BODY, STRIPE_T, &why));
    buf_free(&h);
}

/* ---- slack ----------------------------------------------------------------------- */

/* api.slack.com, "Verifying requests from Slack": its worked example. */
#define SLACK_SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define SLACK_TS     1531420618
#define SLACK_BODY                                                                                 \
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="         \
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"     \
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"             \
    "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."               \
    "803a0bc887a14d10d2c447fce8b6703c"
#define SLACK_SIG "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

static void test_slack_published_example(void **state)
{
    (void)state;
    struct http_auth a = auth_of("slack", SLACK_SECRET, NULL);
    const char *why;
    struct request ok = {{"X-Slack-Signature", "X-Slack-Request-Timestamp"},
                         {SLACK_SIG, "1531420618"}};
    assert_true(check(&a, &ok, SLACK_BODY, SLACK_TS + 10, &why));
    assert_false(check(&a, &ok, SLACK_BODY, SLACK_TS + 3600, &why));
    assert_string_equal(why, "timestamp outside tolerance");
    struct request other_ts = {{"X-Slack-Signature", "X-Slack-Request-Timestamp"},
                               {SLACK_SIG, "1531420619"}};
    assert_false(check(&a, &other_ts, SLACK_BODY, SLACK_TS, &why));
    assert_string_equal(why, "signature does not match the body");
    struct request no_ts = {{"X-Slack-Signature"}, {SLACK_SIG}};
    assert_false(check(&a, &no_ts, SLACK_BODY, SLACK_TS, &why));
    struct request bad_ts = {{"X-Slack-Signature", "X-Slack-Request-Timestamp"},
                             {SLACK_SIG, "1531420618.5"}};
    assert_false(check(&a, &bad_ts, SLACK_BODY, SLACK_TS, &why));
    struct request v1 = {{"X-Slack-Signature", "X-Slack-Request-Timestamp"},
                         {SLACK_SIG + 3, "1531420618"}};
    assert_false(check(&a, &v1, SLACK_BODY, SLACK_TS, &why));
}

/* ---- shopify --------------------------------------------------------------------- */

/* python3: base64.b64encode(hmac.new(b"shpss_secret", b'{"id":820982911946154508}',
 * sha256).digest()) */
#define SHOPIFY_SECRET "shpss_secret"
#define SHOPIFY_BODY   "{\"id\":820982911946154508}"
#define SHOPIFY_SIG    "jqbalbO3Z8mDmrF2/+wzM3KYvbgqzVBF969vgiIy80I="

static void test_shopify(void **state)
{
    (void)state;
    struct http_auth a = auth_of("shopify", SHOPIFY_SECRET, NULL);
    const char *why;
    struct request ok = {{"X-Shopify-Hmac-Sha256"}, {SHOPIFY_SIG}};
    assert_true(check(&a, &ok, SHOPIFY_BODY, 0, &why));
    assert_false(check(&a, &ok, SHOPIFY_BODY "x", 0, &why));
    struct request unpadded = {{"X-Shopify-Hmac-Sha256"},
                               {"jqbalbO3Z8mDmrF2/+wzM3KYvbgqzVBF969vgiIy80I"}};
    assert_false(check(&a, &unpadded, SHOPIFY_BODY, 0, &why));
    struct request none = {{NULL}, {NULL}};
    assert_false(check(&a, &none, SHOPIFY_BODY, 0, &why));
}

/* ---- standard -------------------------------------------------------------------- */

/* The Standard Webhooks (and Svix) libraries' reference test vector. */
#define STD_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define STD_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define STD_TS     1614265330
#define STD_BODY   "{\"test\": 2432232314}"
#define STD_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void test_standard_reference_vector(void **state)
{
    (void)state;
    struct http_auth a = auth_of("standard", STD_SECRET, NULL);
    const char *why;
    struct request ok = {{"webhook-id", "webhook-timestamp", "webhook-signature"},
                         {STD_ID, "1614265330", STD_SIG}};
    assert_true(check(&a, &ok, STD_BODY, STD_TS, &why));
    assert_string_equal(http_auth_message_id(&a, header_of, &ok), STD_ID);
    struct request several = {{"webhook-id", "webhook-timestamp", "webhook-signature"},
                              {STD_ID, "1614265330", "v1a,abc v1,bm9wZQ== " STD_SIG}};
    assert_true(check(&a, &several, STD_BODY, STD_TS, &why));
    struct request other_id = {{"webhook-id", "webhook-timestamp", "webhook-signature"},
                               {"msg_other", "1614265330", STD_SIG}};
    assert_false(check(&a, &other_id, STD_BODY, STD_TS, &why));
    assert_false(check(&a, &ok, STD_BODY, STD_TS + 301, &why));
    assert_string_equal(why, "timestamp outside tolerance");
    assert_false(check(&a, &ok, STD_BODY, STD_TS - 301, &why));
    struct request no_v1 = {
        {"webhook-id", "webhook-timestamp", "webhook-signature"},
        {STD_ID, "1614265330", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
    assert_false(check(&a, &no_v1, STD_BODY, STD_TS, &why));
    struct request no_id = {{"webhook-timestamp", "webhook-signature"}, {"1614265330", STD_SIG}};
    assert_false(check(&a, &no_id, STD_BODY, STD_TS, &why));
}

/* The whsec_ key that signs is the decoded part: the same text used raw does not. */
static void test_standard_secret_is_decoded(void **state)
{
    (void)state;
    struct http_auth a = auth_of("stripe", STD_SECRET, NULL);
    a.scheme = HTTP_AUTH_GITHUB; /* any scheme that keys with the raw text */
    char hex[65];
    http_auth_hmac_hex(STD_SECRET, strlen(STD_SECRET), STD_BODY, strlen(STD_BODY), hex);
    char sig[80];
    snprintf(sig, sizeof(sig), "sha256=%s", hex);
    struct request r = {{"X-Hub-Signature-256"}, {sig}};
    const char *why;
    assert_true(check(&a, &r, STD_BODY, 0, &why));
}

/* ---- rotation -------------------------------------------------------------------- */

static void test_rotated_secret(void **state)
{
    (void)state;
    struct secret rotated = secret_of("whsec_rotated");
    struct http_auth a = auth_of("stripe", "whsec_old", &rotated);
    const char *why;
    struct request r = {{"Stripe-Signature"}, {"t=1700000000,v1=" STRIPE_V1_ROTATED}};
    assert_true(check(&a, &r, STRIPE_BODY, STRIPE_T, &why));
    struct request old = {{"Stripe-Signature"}, {"t=1700000000,v1=" STRIPE_V1}};
    assert_false(check(&a, &old, STRIPE_BODY, STRIPE_T, &why));

    /* only the list, no hmac_secret_file */
    struct secret both[2] = {secret_of("whsec_rotated"), secret_of(STRIPE_SECRET)};
    struct http_auth b = {
        .hmac_secrets = {.v = both, .n = 2}, .scheme_name = (char *)"stripe", .tolerance = 300};
    struct config_report rep = {.file = "test.conf"};
    http_auth_validate(&b, "r", 1, &rep);
    assert_int_equal(rep.n, 0);
    assert_true(check(&b, &old, STRIPE_BODY, STRIPE_T, &why));
    assert_true(check(&b, &r, STRIPE_BODY, STRIPE_T, &why));
}

/* ---- validation ------------------------------------------------------------------ */

static size_t errors_of(struct http_auth *a, const char *want)
{
    struct config_report rep = {.file = "test.conf"};
    http_auth_validate(a, "r", 7, &rep);
    size_t n = rep.n;
    if (want) {
        assert_true(n > 0);
        assert_non_null(strstr(rep.errors[0].msg, want));
    }
    config_report_free(&rep);
    return n;
}

static void test_validate(void **state)
{
    (void)state;
    const char *bad[] = {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                         "whsec_",
                         "whsec_abc",
                         "whsec_ab$d",
                         "whsec_a===",
                         "whsec_===="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_auth a = {
            .hmac_secret = secret_of(bad[i]), .scheme_name = (char *)"standard", .tolerance = 300};
        a.hmac_secret.line = 12;
        struct config_report rep = {.file = "test.conf"};
        http_auth_validate(&a, "r", 7, &rep);
        assert_int_equal(rep.n, 1);
        assert_int_equal(rep.errors[0].line, 12);
        assert_non_null(strstr(rep.errors[0].msg, "whsec_"));
        config_report_free(&rep);
    }
    struct http_auth good = {.hmac_secret = secret_of(STD_SECRET),
                             .scheme_name = (char *)"standard"};
    assert_int_equal(errors_of(&good, NULL), 0);
    struct http_auth no_secret = {.scheme_name = (char *)"slack"};
    errors_of(&no_secret, "needs hmac_secret_file");
    struct http_auth both = {.hmac_secret = secret_of("a"),
                             .bearer_token = secret_of("b"),
                             .scheme_name = (char *)"github"};
    errors_of(&both, "not both");
    struct http_auth none = {.scheme_name = (char *)"github"};
    assert_int_equal(errors_of(&none, NULL), 0);
    assert_false(http_auth_enabled(&none));
    assert_string_equal(http_auth_describe(&none), "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_github_published_example),
        cmocka_unit_test(test_stripe),
        cmocka_unit_test(test_stripe_stale_and_future),
        cmocka_unit_test(test_stripe_malformed),
        cmocka_unit_test(test_stripe_many_signatures_are_capped),
        cmocka_unit_test(test_slack_published_example),
        cmocka_unit_test(test_shopify),
        cmocka_unit_test(test_standard_reference_vector),
        cmocka_unit_test(test_standard_secret_is_decoded),
        cmocka_unit_test(test_rotated_secret),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
