/*
 * Unit tests for adapter/pacer.c on a private loop: calls go at once within
 * the burst, then in arrival order as the timer hands out tokens; a held call
 * goes first after the pause and the pause is counted; cancel and take give
 * waiters back; describe shows a pause, and only a pause. Order and counts are
 * asserted, never how fast anything ran.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "loop.h"
#include "pacer.h"
#include "util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define N 6

struct call {
    struct pacer_wait w;
    int id;
};

struct fixture {
    struct loop *loop;
    struct pacer *p;
    _Atomic uint64_t throttled_ms;
    _Atomic int64_t gauge;
    struct call calls[N];
    int order[N * 2], n_gone, stop_after;
};

static struct fixture *current;

static void gone(struct pacer_wait *w)
{
    struct fixture *f = current;
    f->order[f->n_gone++] = ((struct call *)w)->id;
    if (f->n_gone == f->stop_after)
        loop_stop(f->loop);
}

static struct fixture *fixture_new(double per_second, int burst)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    current = f;
    f->loop = loop_new();
    f->p = pacer_new(&(struct pacer_config){.route = "test",
                                            .held = "deliveries",
                                            .per_second = per_second,
                                            .burst = burst,
                                            .loop = f->loop,
                                            .throttled_ms = &f->throttled_ms,
                                            .gauge = &f->gauge});
    for (int i = 0; i < N; i++)
        f->calls[i] = (struct call){.w = {.go = gone}, .id = i};
    return f;
}

static void fixture_free(struct fixture *f)
{
    pacer_free(f->p);
    loop_free(f->loop);
    free(f);
}

static void test_burst_then_in_order(void **state)
{
    struct fixture *f = fixture_new(200.0, 2);
    for (int i = 0; i < N; i++)
        pacer_submit(f->p, &f->calls[i].w);
    assert_int_equal(f->n_gone, 2); /* the burst went at once */
    assert_int_equal(atomic_load(&f->gauge), PACER_PACING);
    f->stop_after = N;
    loop_run(f->loop);
    for (int i = 0; i < N; i++)
        assert_int_equal(f->order[i], i);
    assert_int_equal(atomic_load(&f->gauge), PACER_FLOWING);
    assert_int_equal(atomic_load(&f->throttled_ms), 0);
    fixture_free(f);
}

static void test_held_call_goes_first_after_the_pause(void **state)
{
    struct fixture *f = fixture_new(1000.0, 1);
    pacer_submit(f->p, &f->calls[0].w); /* went: the refused call */
    assert_int_equal(f->n_gone, 1);
    pacer_hold(f->p, &f->calls[0].w, 0.05, "HTTP 429 from POST http://x/");
    pacer_submit(f->p, &f->calls[1].w);
    pacer_submit(f->p, &f->calls[2].w);
    assert_int_equal(f->n_gone, 1); /* nothing goes during the pause */
    assert_int_equal(atomic_load(&f->gauge), PACER_PAUSED);
    struct buf detail = {0};
    assert_true(pacer_describe(f->p, &detail));
    assert_non_null(strstr(detail.data, "paused: the legacy side asked to wait (HTTP 429"));
    assert_non_null(strstr(detail.data, "3 deliveries held"));
    buf_free(&detail);
    f->stop_after = 4;
    loop_run(f->loop);
    assert_int_equal(f->order[1], 0); /* again, first */
    assert_int_equal(f->order[2], 1);
    assert_int_equal(f->order[3], 2);
    assert_true(atomic_load(&f->throttled_ms) >= 50);
    assert_false(pacer_describe(f->p, NULL));
    fixture_free(f);
}

static void test_a_longer_pause_wins(void **state)
{
    struct fixture *f = fixture_new(1000.0, 5);
    pacer_hold(f->p, &f->calls[0].w, 0.2, "first");
    pacer_hold(f->p, &f->calls[1].w, 0.05, "shorter"); /* does not cut it short */
    f->stop_after = 2;
    loop_run(f->loop);
    assert_true(atomic_load(&f->throttled_ms) >= 200);
    fixture_free(f);
}

static void test_cancel_and_take(void **state)
{
    struct fixture *f = fixture_new(1.0, 1);
    for (int i = 0; i < 4; i++)
        pacer_submit(f->p, &f->calls[i].w);
    assert_int_equal(f->n_gone, 1);
    assert_true(pacer_cancel(f->p, &f->calls[2].w));
    assert_false(pacer_cancel(f->p, &f->calls[2].w));
    assert_false(pacer_cancel(f->p, &f->calls[0].w)); /* it went already */
    assert_ptr_equal(pacer_take(f->p), &f->calls[1].w);
    assert_ptr_equal(pacer_take(f->p), &f->calls[3].w);
    assert_null(pacer_take(f->p));
    pacer_submit(f->p, &f->calls[4].w); /* the tail was reset: it still queues */
    assert_ptr_equal(pacer_take(f->p), &f->calls[4].w);
    fixture_free(f);
}

static void stop_loop(struct loop *loop, void *arg)
{
    loop_stop(loop);
}

static void test_stop_lets_nothing_go(void **state)
{
    struct fixture *f = fixture_new(1000.0, 1);
    pacer_hold(f->p, &f->calls[0].w, 0.01, "x");
    pacer_stop(f->p);
    loop_timer(f->loop, 50, stop_loop, NULL);
    loop_run(f->loop);
    assert_int_equal(f->n_gone, 0);
    assert_ptr_equal(pacer_take(f->p), &f->calls[0].w);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_in_order),
        cmocka_unit_test(test_held_call_goes_first_after_the_pause),
        cmocka_unit_test(test_a_longer_pause_wins),
        cmocka_unit_test(test_cancel_and_take),
        cmocka_unit_test(test_stop_lets_nothing_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
