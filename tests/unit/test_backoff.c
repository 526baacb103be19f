/*
 * Unit tests for adapter/backoff.c: delays grow exponentially up to the cap,
 * every jittered delay stays within [nominal/2, nominal], and jitter really
 * spreads the values (no two sidecars reconnect in lockstep).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "backoff.h"

static void test_nominal_doubles_to_cap(void **state)
{
    struct backoff b;
    backoff_init(&b, 0.5, 30);
    assert_true(backoff_nominal(&b, 0) == 0.5);
    assert_true(backoff_nominal(&b, 1) == 1.0);
    assert_true(backoff_nominal(&b, 3) == 4.0);
    assert_true(backoff_nominal(&b, 6) == 30.0); /* 32 capped */
    assert_true(backoff_nominal(&b, 1000) == 30.0);
}

static void test_jitter_bounds(void **state)
{
    struct backoff b;
    backoff_init(&b, 0.5, 30);
    for (int round = 0; round < 200; round++) {
        backoff_reset(&b);
        for (int attempt = 0; attempt < 12; attempt++) {
            double nominal = backoff_nominal(&b, attempt);
            double d = backoff_next(&b);
            assert_true(d >= nominal / 2);
            assert_true(d <= nominal);
        }
    }
}

static void test_jitter_spreads(void **state)
{
    struct backoff b;
    backoff_init(&b, 1, 60);
    double min = 1e9, max = 0;
    for (int i = 0; i < 1000; i++) {
        backoff_reset(&b);
        for (int a = 0; a < 5; a++)
            backoff_next(&b);
        double d = backoff_next(&b); /* attempt 5: nominal 32 */
        min = d < min ? d : min;
        max = d > max ? d : max;
    }
    assert_true(min < 18); /* spread over most of [16, 32] */
    assert_true(max > 30);
}

static void test_reset(void **state)
{
    struct backoff b;
    backoff_init(&b, 1, 60);
    for (int i = 0; i < 10; i++)
        backoff_next(&b);
    backoff_reset(&b);
    assert_true(backoff_next(&b) <= 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nominal_doubles_to_cap),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_jitter_spreads),
        cmocka_unit_test(test_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
