/*
 * Unit tests for tests/bench/schedule.h, the open-loop schedule behind
 * loadgen --rate and raw_amqp publish --rate: how many requests a run
 * schedules, when each is due, that a late taker gets the scheduled time (not
 * its own), the backlog limit, and no drift over a long run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../bench/schedule.h"

#define T0 1000000000ULL /* an arbitrary monotonic start, µs */

static void test_evenly_spaced_from_start(void **state)
{
    struct schedule s;
    schedule_init(&s, T0, 1.0, 1000, 1.0);
    assert_int_equal(s.total, 1000);
    assert_int_equal(schedule_at(&s, 0), T0);
    assert_int_equal(schedule_at(&s, 1), T0 + 1000);
    assert_int_equal(schedule_at(&s, 999), T0 + 999000);
    assert_int_equal(schedule_due(&s, T0 - 1), 0);
    assert_int_equal(schedule_due(&s, T0), 1);
    assert_int_equal(schedule_due(&s, T0 + 999), 1);
    assert_int_equal(schedule_due(&s, T0 + 1000), 2);
    assert_int_equal(schedule_due(&s, T0 + 999000), 1000);
    assert_int_equal(schedule_due(&s, T0 + 5000000), 1000); /* none past stop */
}

static void test_rates_that_do_not_divide_a_second(void **state)
{
    struct schedule s;
    schedule_init(&s, T0, 1.0, 3, 1.0);
    assert_int_equal(s.total, 3);
    assert_int_equal(schedule_at(&s, 1), T0 + 333333);
    assert_int_equal(schedule_at(&s, 2), T0 + 666666);
    schedule_init(&s, T0, 10.0, 7, 1.0);
    assert_int_equal(s.total, 70);
    schedule_init(&s, T0, 2.5, 4321.5, 1.0);
    assert_int_equal(s.total, 10804); /* ceil(2.5 × 4321.5) */
    assert_true(schedule_at(&s, s.total - 1) < s.stop_us);
    assert_true(schedule_at(&s, s.total) >= s.stop_us);
}

static void test_take_in_order_with_the_scheduled_time(void **state)
{
    struct schedule s;
    uint64_t at = 0;
    schedule_init(&s, T0, 1.0, 1000, 1.0);
    assert_int_equal(schedule_next_us(&s), T0);
    assert_false(schedule_take(&s, T0 - 1, &at)); /* not yet due */
    assert_true(schedule_take(&s, T0, &at));
    assert_int_equal(at, T0);
    assert_false(schedule_take(&s, T0 + 500, &at));
    assert_int_equal(schedule_next_us(&s), T0 + 1000);
    /* A taker at +4.5 ms gets the four due since, each with its own due time. */
    assert_int_equal(schedule_backlog(&s, T0 + 4500), 4);
    for (uint64_t k = 1; k <= 4; k++) {
        assert_true(schedule_take(&s, T0 + 4500, &at));
        assert_int_equal(at, T0 + k * 1000);
    }
    assert_false(schedule_take(&s, T0 + 4500, &at));
    assert_int_equal(s.max_backlog, 4);
}

static void test_done_after_the_last(void **state)
{
    struct schedule s;
    uint64_t at;
    schedule_init(&s, T0, 0.01, 1000, 1.0); /* 10 requests */
    assert_int_equal(s.total, 10);
    int n = 0;
    while (schedule_take(&s, T0 + 60000000, &at))
        n++;
    assert_int_equal(n, 10);
    assert_true(schedule_done(&s));
    assert_int_equal(schedule_next_us(&s), UINT64_MAX);
    assert_int_equal(schedule_backlog(&s, T0 + 60000000), 0);
}

static void test_overrun_beyond_the_backlog_limit(void **state)
{
    struct schedule s;
    uint64_t at;
    schedule_init(&s, T0, 10.0, 1000, 1.0);
    assert_int_equal(s.backlog_limit, 1000);
    assert_false(schedule_overrun(&s, T0 + 999000)); /* 1000 due: exactly 1 s worth */
    assert_true(schedule_overrun(&s, T0 + 1000000)); /* 1001 */
    assert_true(schedule_take(&s, T0 + 1000000, &at));
    assert_false(schedule_overrun(&s, T0 + 1000000)); /* taking one brings it back */
    schedule_init(&s, T0, 10.0, 0.5, 1.0);            /* less than one a second */
    assert_int_equal(s.backlog_limit, 1);
    assert_false(schedule_overrun(&s, T0));
    assert_true(schedule_overrun(&s, T0 + 2000000));
}

static void test_no_drift_over_an_hour(void **state)
{
    struct schedule s;
    schedule_init(&s, T0, 3600.0, 3000, 1.0);
    assert_int_equal(s.total, 10800000);
    assert_int_equal(schedule_at(&s, 10799999), T0 + 3599999666); /* ⌊k / 3000 s⌋ µs */
    assert_int_equal(schedule_due(&s, T0 + 3599999666), 10800000);
    assert_int_equal(schedule_due(&s, T0 + 3599999665), 10799999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evenly_spaced_from_start),
        cmocka_unit_test(test_rates_that_do_not_divide_a_second),
        cmocka_unit_test(test_take_in_order_with_the_scheduled_time),
        cmocka_unit_test(test_done_after_the_last),
        cmocka_unit_test(test_overrun_beyond_the_backlog_limit),
        cmocka_unit_test(test_no_drift_over_an_hour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
