/*
 * Unit tests for loop_ms (adapter/loop.c): seconds become timer milliseconds
 * without undefined behaviour for any double — inf, nan, 1e30, negatives —
 * which a plain (int64_t) cast does not give (UBSan: float-cast-overflow).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "loop.h"

#include <math.h>

static void test_ordinary_seconds(void **state)
{
    assert_int_equal(loop_ms(0), 0);
    assert_int_equal(loop_ms(0.2), 200);
    assert_int_equal(loop_ms(1.5), 1500);
    assert_int_equal(loop_ms(0.0004), 0);
    assert_int_equal(loop_ms(0.0006), 1); /* rounded, not truncated */
    assert_int_equal(loop_ms(604800), 604800000);
}

static void test_nonsense_is_zero(void **state)
{
    assert_int_equal(loop_ms(-1), 0);
    assert_int_equal(loop_ms(-INFINITY), 0);
    assert_int_equal(loop_ms(NAN), 0);
    assert_int_equal(loop_ms(-NAN), 0);
}

static void test_huge_is_capped(void **state)
{
    assert_int_equal(loop_ms(INFINITY), LOOP_MS_MAX);
    assert_int_equal(loop_ms(1e30), LOOP_MS_MAX);
    assert_int_equal(loop_ms(9.3e15), LOOP_MS_MAX); /* * 1000 is past INT64_MAX */
    assert_int_equal(loop_ms((double)LOOP_MS_MAX / 1000), LOOP_MS_MAX);
    assert_true(loop_ms((double)LOOP_MS_MAX / 1000 - 1) < LOOP_MS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ordinary_seconds),
        cmocka_unit_test(test_nonsense_is_zero),
        cmocka_unit_test(test_huge_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
