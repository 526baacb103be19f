/*
 * Unit tests for tests/bench/latency.h, the histogram behind the p50/p99 that
 * raw_amqp and loadgen print: exact below 1024 µs, within 1/512 above, the
 * quantile rank rule, and values past the top land in the last bucket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../bench/latency.h"

static struct latency h; /* 135 kB: not on the stack */

static void test_exact_below_1024(void **state)
{
    latency_reset(&h);
    for (uint64_t v = 0; v < 1024; v++)
        latency_record(&h, v);
    assert_int_equal(h.count, 1024);
    assert_int_equal(latency_quantile(&h, 0.5), 511);
    assert_int_equal(latency_quantile(&h, 0.99), 1013);
    assert_int_equal(latency_quantile(&h, 1.0), 1023);
    assert_int_equal(latency_quantile(&h, 0.0), 0);
}

static void test_within_a_512th_above(void **state)
{
    for (uint64_t v = 1024; v < (1ULL << 40); v = v * 3 / 2 + 7) {
        latency_reset(&h);
        latency_record(&h, v);
        uint64_t got = latency_quantile(&h, 1.0);
        assert_true(got <= v);
        assert_true(got >= v - v / 512);
    }
}

static void test_percentiles_of_a_tail(void **state)
{
    latency_reset(&h);
    for (int i = 0; i < 990; i++)
        latency_record(&h, 100);
    for (int i = 0; i < 10; i++)
        latency_record(&h, 50000);
    assert_int_equal(latency_quantile(&h, 0.5), 100);
    assert_int_equal(latency_quantile(&h, 0.99), 100);
    uint64_t p999 = latency_quantile(&h, 0.999);
    assert_true(p999 <= 50000 && p999 >= 50000 - 50000 / 512);
}

static void test_empty_and_overflow(void **state)
{
    latency_reset(&h);
    assert_int_equal(latency_quantile(&h, 0.5), 0);
    latency_record(&h, UINT64_MAX);
    latency_record(&h, 1ULL << 50);
    assert_int_equal(h.bucket[LATENCY_BUCKETS - 1], 2);
    assert_true(latency_quantile(&h, 1.0) >= (1ULL << 40));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_below_1024),
        cmocka_unit_test(test_within_a_512th_above),
        cmocka_unit_test(test_percentiles_of_a_tail),
        cmocka_unit_test(test_empty_and_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
