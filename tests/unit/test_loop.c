/*
 * Unit tests for the loop (adapter/loop.c): loop_ms turns seconds into timer
 * milliseconds without undefined behaviour for any double — inf, nan, 1e30,
 * negatives — which a plain (int64_t) cast does not give (UBSan:
 * float-cast-overflow); every prepare hook runs before each poll and the
 * shortest limit wins (the broker's and each HTTP server's share a loop);
 * loop_on_thread tells the loop's own thread from others.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "loop.h"

#include <math.h>
#include <poll.h>
#include <pthread.h>

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

struct hooks {
    int calls[2];
    int64_t woke_ms;
    bool on_thread;
};

static int prepare_first(struct loop *loop, void *arg)
{
    struct hooks *h = arg;
    h->calls[0]++;
    return -1; /* no limit of its own */
}

/* Limits the sleep to 20 ms; on its third call, stops the loop. */
static int prepare_second(struct loop *loop, void *arg)
{
    struct hooks *h = arg;
    h->on_thread = loop_on_thread(loop);
    if (++h->calls[1] == 3) {
        h->woke_ms = loop_now_ms();
        loop_stop(loop);
    }
    return 20;
}

static void test_every_prepare_hook_runs_and_the_shortest_limit_wins(void **state)
{
    struct loop *loop = loop_new();
    struct hooks h = {0};
    assert_int_equal(loop_add_prepare(loop, prepare_first, &h), 0);
    assert_int_equal(loop_add_prepare(loop, prepare_second, &h), 0);
    int64_t start = loop_now_ms();
    loop_run(loop); /* no fds, no timers: only the second hook's 20 ms wakes it */
    assert_int_equal(h.calls[0], 3);
    assert_int_equal(h.calls[1], 3);
    assert_true(h.woke_ms - start < 5000); /* it did not sleep the default minute */
    assert_true(h.on_thread);
    assert_false(loop_on_thread(loop)); /* not running any more */
    loop_free(loop);
}

static void stop_now(struct loop *loop, void *arg)
{
    loop_stop(loop);
}

/* A hook that queues work by a zero timer (the publisher, submitted to from
 * an HTTP handler that MHD_run called in a hook) must not be left waiting
 * for the next event: the sleep counts timers added by the hooks. */
static int add_zero_timer(struct loop *loop, void *arg)
{
    if ((*(int *)arg)++ == 0)
        loop_timer(loop, 0, stop_now, NULL);
    return -1;
}

static void test_a_timer_added_by_a_prepare_hook_counts_in_the_sleep(void **state)
{
    struct loop *loop = loop_new();
    int calls = 0;
    loop_add_prepare(loop, add_zero_timer, &calls);
    int64_t start = loop_now_ms();
    loop_run(loop);
    assert_true(loop_now_ms() - start < 5000); /* not the minute an empty loop sleeps */
    loop_free(loop);
}

static void *other_thread(void *arg)
{
    return (void *)(uintptr_t)loop_on_thread(arg);
}

static int check_from_another_thread(struct loop *loop, void *arg)
{
    pthread_t t;
    void *res;
    pthread_create(&t, NULL, other_thread, loop);
    pthread_join(t, &res);
    *(bool *)arg = (bool)(uintptr_t)res;
    loop_stop(loop);
    return 0;
}

static void test_another_thread_is_not_the_loop_thread(void **state)
{
    struct loop *loop = loop_new();
    bool other = true;
    loop_add_prepare(loop, check_from_another_thread, &other);
    loop_run(loop);
    assert_false(other);
    loop_free(loop);
}

/* loop_call from another thread runs on the loop's thread and returns after;
 * a hook removed from there no longer runs. */
struct call_state {
    struct loop *loop;
    int hook_calls;
    bool ran_on_thread;
    int hook_calls_at_removal;
};

static int counting_hook(struct loop *loop, void *arg)
{
    ((struct call_state *)arg)->hook_calls++;
    return 10;
}

static void remove_hook_there(void *arg)
{
    struct call_state *c = arg;
    c->ran_on_thread = loop_on_thread(c->loop);
    loop_remove_prepare(c->loop, counting_hook, c);
    c->hook_calls_at_removal = c->hook_calls;
}

static void *call_then_stop(void *arg)
{
    struct call_state *c = arg;
    loop_call(c->loop, remove_hook_there, c); /* waits for it */
    poll(NULL, 0, 50);                        /* the loop goes round a few times without the hook */
    loop_stop(c->loop);
    return NULL;
}

static void test_loop_call_runs_there_and_a_removed_hook_stops(void **state)
{
    struct call_state c = {.loop = loop_new()};
    loop_add_prepare(c.loop, counting_hook, &c);
    pthread_t t;
    pthread_create(&t, NULL, call_then_stop, &c);
    loop_run(c.loop);
    pthread_join(t, NULL);
    assert_true(c.ran_on_thread);
    assert_true(c.hook_calls_at_removal >= 1);
    assert_int_equal(c.hook_calls, c.hook_calls_at_removal);
    loop_free(c.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ordinary_seconds),
        cmocka_unit_test(test_nonsense_is_zero),
        cmocka_unit_test(test_huge_is_capped),
        cmocka_unit_test(test_every_prepare_hook_runs_and_the_shortest_limit_wins),
        cmocka_unit_test(test_another_thread_is_not_the_loop_thread),
        cmocka_unit_test(test_a_timer_added_by_a_prepare_hook_counts_in_the_sleep),
        cmocka_unit_test(test_loop_call_runs_there_and_a_removed_hook_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
