/*
 * test_oauth2_cache.c — unit tests for adapter/oauth2_cache.c: when a token is
 * used, refreshed or fetched, with a fake clock (plain seconds passed in).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "oauth2_cache.h"

/* Looks up at now, expects `want`, and returns the token copy (or NULL), freed by the caller. */
static char *expect_lookup(struct oauth2_cache *c, double now, enum oauth2_lookup want)
{
    char *token, *error;
    enum oauth2_lookup got = oauth2_cache_lookup(c, now, &token, &error);
    if (got != want)
        fail_msg("at %.2f: lookup gave %d, wanted %d", now, got, want);
    free(error);
    return token;
}

static void expect_use(struct oauth2_cache *c, double now, enum oauth2_lookup want,
                       const char *token)
{
    char *t = expect_lookup(c, now, want);
    assert_non_null(t);
    assert_string_equal(t, token);
    free(t);
}

static void test_first_call_fetches_others_wait(void **state)
{
    struct oauth2_cache c = {0};
    assert_null(expect_lookup(&c, 100, OAUTH2_FETCH));
    assert_null(expect_lookup(&c, 100.1, OAUTH2_WAIT)); /* only one fetch at a time */
    oauth2_cache_store(&c, "t1", 3600, 100);
    expect_use(&c, 100.2, OAUTH2_USE, "t1");
    oauth2_cache_free(&c);
}

static void test_margin_is_a_tenth_capped_at_a_minute(void **state)
{
    assert_float_equal(oauth2_cache_margin(10), 1, 1e-9);
    assert_float_equal(oauth2_cache_margin(300), 30, 1e-9);
    assert_float_equal(oauth2_cache_margin(3600), 60, 1e-9);
    assert_float_equal(oauth2_cache_margin(86400), 60, 1e-9);
}

static void test_short_lived_token_is_reused_then_refreshed_once(void **state)
{
    struct oauth2_cache c = {0};
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t1", 10, 0); /* margin 1 s: used until 9, refreshed from 8 */
    expect_use(&c, 1, OAUTH2_USE, "t1");
    expect_use(&c, 7.99, OAUTH2_USE, "t1");
    expect_use(&c, 8.0, OAUTH2_USE_AND_REFRESH, "t1"); /* one refresh ahead of expiry */
    expect_use(&c, 8.1, OAUTH2_USE, "t1");             /* not a second one */
    expect_use(&c, 8.9, OAUTH2_USE, "t1");
    oauth2_cache_store(&c, "t2", 10, 8.0);
    expect_use(&c, 9.5, OAUTH2_USE, "t2");
    oauth2_cache_free(&c);
}

static void test_expired_token_is_not_used(void **state)
{
    struct oauth2_cache c = {0};
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t1", 100, 0); /* margin 10: expires at 90 */
    expect_use(&c, 89.9, OAUTH2_USE_AND_REFRESH, "t1");
    oauth2_cache_abort(&c); /* that refresh's route went away */
    assert_null(expect_lookup(&c, 90, OAUTH2_FETCH));
    oauth2_cache_free(&c);
}

static void test_lifetime_counts_from_when_the_request_was_sent(void **state)
{
    struct oauth2_cache c = {0};
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t1", 100, 0); /* the answer came late: still from 0 */
    assert_null(expect_lookup(&c, 95, OAUTH2_FETCH));
    oauth2_cache_free(&c);
}

static void test_missing_or_huge_expires_in(void **state)
{
    struct oauth2_cache c = {0};
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t1", 0, 0); /* none given: OAUTH2_DEFAULT_LIFETIME */
    double life = OAUTH2_DEFAULT_LIFETIME, m = oauth2_cache_margin(life);
    expect_use(&c, life - 2 * m - 0.01, OAUTH2_USE, "t1");
    oauth2_cache_drop(&c);
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t2", 1e12, 0);
    assert_null(expect_lookup(&c, OAUTH2_MAX_LIFETIME, OAUTH2_FETCH));
    oauth2_cache_free(&c);
}

static void test_rejected_token_is_dropped_unless_replaced(void **state)
{
    struct oauth2_cache c = {0};
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t1", 3600, 0);
    oauth2_cache_reject(&c, "t0"); /* an older token: nothing to drop */
    expect_use(&c, 1, OAUTH2_USE, "t1");
    oauth2_cache_reject(&c, "t1");
    assert_null(expect_lookup(&c, 1, OAUTH2_FETCH));
    oauth2_cache_free(&c);
}

static void test_failure_holds_then_allows_a_new_fetch(void **state)
{
    struct oauth2_cache c = {0};
    const char *why = NULL;
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_fail(&c, "HTTP 503", 0.5);
    assert_true(oauth2_cache_failing(&c, 0.6, &why));
    assert_string_equal(why, "HTTP 503");
    char *token, *error;
    assert_int_equal(oauth2_cache_lookup(&c, 0.6, &token, &error), OAUTH2_FAILED);
    assert_null(token);
    assert_string_equal(error, "HTTP 503");
    free(error);
    assert_null(expect_lookup(&c, 0.5 + OAUTH2_FAIL_HOLD, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t1", 3600, 1.5);
    assert_false(oauth2_cache_failing(&c, 2, &why));
    oauth2_cache_free(&c);
}

static void test_failed_refresh_keeps_the_current_token(void **state)
{
    struct oauth2_cache c = {0};
    const char *why = NULL;
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t1", 10, 0);
    expect_use(&c, 8.2, OAUTH2_USE_AND_REFRESH, "t1");
    oauth2_cache_fail(&c, "timed out", 8.3);
    assert_false(oauth2_cache_failing(&c, 8.4, &why));  /* a usable token: still ready */
    expect_use(&c, 8.9, OAUTH2_USE, "t1");              /* held: no refresh storm */
    assert_null(expect_lookup(&c, 9.0, OAUTH2_FAILED)); /* expired while held */
    assert_true(oauth2_cache_failing(&c, 9.0, &why));
    assert_null(expect_lookup(&c, 8.3 + OAUTH2_FAIL_HOLD, OAUTH2_FETCH));
    oauth2_cache_free(&c);
}

static void test_drop_forgets_the_token(void **state)
{
    struct oauth2_cache c = {0};
    free(expect_lookup(&c, 0, OAUTH2_FETCH));
    oauth2_cache_store(&c, "t1", 3600, 0);
    oauth2_cache_drop(&c); /* SIGHUP */
    assert_null(expect_lookup(&c, 1, OAUTH2_FETCH));
    oauth2_cache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_call_fetches_others_wait),
        cmocka_unit_test(test_margin_is_a_tenth_capped_at_a_minute),
        cmocka_unit_test(test_short_lived_token_is_reused_then_refreshed_once),
        cmocka_unit_test(test_expired_token_is_not_used),
        cmocka_unit_test(test_lifetime_counts_from_when_the_request_was_sent),
        cmocka_unit_test(test_missing_or_huge_expires_in),
        cmocka_unit_test(test_rejected_token_is_dropped_unless_replaced),
        cmocka_unit_test(test_failure_holds_then_allows_a_new_fetch),
        cmocka_unit_test(test_failed_refresh_keeps_the_current_token),
        cmocka_unit_test(test_drop_forgets_the_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
