/*
 * Unit tests for adapter/fd_budget.c: the route listeners share what the fd
 * limit leaves after the reserve, never more than configured and never less
 * than a floor; the soft limit is raised to the hard one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/resource.h>

#include "fd_budget.h"

static void test_configured_limit_when_it_fits(void **state)
{
    assert_int_equal(fd_budget_per_listener(65536, 500, 2, 4096), 4096);
    assert_int_equal(fd_budget_per_listener(65536, 500, 0, 4096), 4096);
}

static void test_listeners_share_what_the_reserve_leaves(void **state)
{
    /* systemd's default soft limit: 1024 - 300 reserved, for 2 listeners */
    assert_int_equal(fd_budget_per_listener(1024, 300, 2, 4096), 362);
    assert_int_equal(fd_budget_per_listener(1024, 300, 1, 4096), 724);
    /* sum of all listeners stays within the limit less the reserve */
    for (size_t n = 1; n <= 9; n++)
        assert_true(fd_budget_per_listener(5000, 1234, n, 100000) * n <= 5000 - 1234);
}

static void test_floor_when_the_limit_is_too_low(void **state)
{
    assert_int_equal(fd_budget_per_listener(256, 300, 3, 4096), FD_BUDGET_MIN_PER_LISTENER);
    assert_int_equal(fd_budget_per_listener(256, 300, 3, 8), 8); /* configured lower: kept */
}

static void test_reserve_grows_with_what_the_process_holds(void **state)
{
    struct fd_needs none = {0};
    struct fd_needs some = {
        .servers = 2, .admin_connections = 32, .routes = 3, .outbound_concurrency = 64};
    unsigned long base = fd_budget_reserve(&none);
    assert_true(base >= 64);
    assert_true(fd_budget_reserve(&some) >= base + 32 + 2 * 64);
}

static void test_soft_limit_raised_to_hard(void **state)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max < 128)
        skip();
    struct rlimit low = {.rlim_cur = 64, .rlim_max = rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    unsigned long was = 0;
    assert_int_equal(fd_budget_raise_limit(&was), rl.rlim_max);
    assert_int_equal(was, 64);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(rl.rlim_cur, rl.rlim_max);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configured_limit_when_it_fits),
        cmocka_unit_test(test_listeners_share_what_the_reserve_leaves),
        cmocka_unit_test(test_floor_when_the_limit_is_too_low),
        cmocka_unit_test(test_reserve_grows_with_what_the_process_holds),
        cmocka_unit_test(test_soft_limit_raised_to_hard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
