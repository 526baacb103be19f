/*
 * Unit tests for adapter/token_bucket.c with a fake clock: the burst passes at
 * once, then one call per 1/rate; the wait it names is exact (never early);
 * over any window no more than burst + rate·T pass; a paused bucket resumes at
 * the rate; a clock stepping back gives nothing away.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "token_bucket.h"

#include <stdint.h>

static void test_burst_then_rate(void **state)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 10.0, 3, 1000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(token_bucket_take(&tb, 1000), 0);
    assert_int_equal(token_bucket_take(&tb, 1000), 100); /* one token per 100 ms */
    assert_int_equal(token_bucket_take(&tb, 1099), 1);
    assert_int_equal(token_bucket_take(&tb, 1100), 0);
    assert_int_equal(token_bucket_take(&tb, 1100), 100);
}

static void test_burst_is_a_ceiling(void **state)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 10.0, 2, 0);
    /* an hour idle saves up no more than the burst */
    int passed = 0;
    while (token_bucket_take(&tb, 3600000) == 0)
        passed++;
    assert_int_equal(passed, 2);
}

/* Simulates a caller that takes whenever the bucket lets it, sleeping exactly the
 * wait it was told: the count in the first `seconds` is burst + rate·seconds. */
static int calls_in(double per_second, int burst, int seconds)
{
    struct token_bucket tb;
    token_bucket_init(&tb, per_second, burst, 0);
    int64_t now = 0, end = (int64_t)seconds * 1000;
    int calls = 0;
    while (now < end) {
        int64_t wait = token_bucket_take(&tb, now);
        if (wait == 0)
            calls++;
        else
            now += wait;
    }
    return calls;
}

static void test_count_over_a_window(void **state)
{
    assert_int_equal(calls_in(10.0, 1, 20), 200); /* at 0, 100 ms, …, 19.9 s */
    assert_int_equal(calls_in(10.0, 10, 20), 209);
    assert_int_equal(calls_in(3.0, 1, 30), 90); /* 1/3 s does not drift */
    assert_int_equal(calls_in(0.5, 1, 60), 30);
    assert_int_equal(calls_in(1000.0, 1, 2), 2000);
}

/* No sliding window of one second ever holds more than burst + rate. */
static void test_no_window_exceeds_the_bound(void **state)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 7.0, 4, 0);
    int64_t times[2000];
    int n = 0;
    int64_t now = 0;
    while (n < 2000) {
        int64_t wait = token_bucket_take(&tb, now);
        if (wait == 0)
            times[n++] = now;
        else
            now += wait % 3 == 0 ? wait : wait + 1; /* timers fire a little late, too */
    }
    for (int i = 0; i < n; i++) {
        int in_window = 0;
        for (int j = i; j < n && times[j] < times[i] + 1000; j++)
            in_window++;
        assert_true(in_window <= 4 + 7);
    }
}

static void test_wait_is_never_early(void **state)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 3.0, 1, 0);
    assert_int_equal(token_bucket_take(&tb, 0), 0);
    int64_t wait = token_bucket_take(&tb, 0);
    assert_int_equal(wait, 334); /* 333.3 rounded up */
    assert_int_not_equal(token_bucket_take(&tb, 333), 0);
    assert_int_equal(token_bucket_take(&tb, 334), 0);
}

static void test_reset_resumes_at_the_rate(void **state)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 10.0, 20, 0);
    token_bucket_reset(&tb, 1, 5000); /* after a 5 s pause: one call, not twenty */
    assert_int_equal(token_bucket_take(&tb, 5000), 0);
    assert_int_equal(token_bucket_take(&tb, 5000), 100);
    token_bucket_reset(&tb, 99, 6000);
    int passed = 0;
    while (token_bucket_take(&tb, 6000) == 0)
        passed++;
    assert_int_equal(passed, 20); /* never above the burst */
}

static void test_clock_stepping_back(void **state)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 1.0, 1, 10000);
    assert_int_equal(token_bucket_take(&tb, 10000), 0);
    assert_true(token_bucket_take(&tb, 5000) > 0); /* no tokens from the past */
    assert_true(token_bucket_take(&tb, 10999) > 0);
    assert_int_equal(token_bucket_take(&tb, 11000), 0);
}

static void test_slow_rates(void **state)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 1.0 / 60.0, 1, 0); /* per_minute = 1 */
    assert_int_equal(token_bucket_take(&tb, 0), 0);
    assert_int_equal(token_bucket_take(&tb, 0), 60000);
    assert_int_equal(token_bucket_take(&tb, 60000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_burst_is_a_ceiling),
        cmocka_unit_test(test_count_over_a_window),
        cmocka_unit_test(test_no_window_exceeds_the_bound),
        cmocka_unit_test(test_wait_is_never_early),
        cmocka_unit_test(test_reset_resumes_at_the_rate),
        cmocka_unit_test(test_clock_stepping_back),
        cmocka_unit_test(test_slow_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
