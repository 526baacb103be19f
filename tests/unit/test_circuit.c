/*
 * Unit tests for the circuit breaker (adapter/circuit.c): when it opens, the
 * probe after the cooldown, and what closes or reopens it. No broker: the
 * pause/resume callbacks are counted and the cooldown runs on a private loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "circuit.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
    struct loop *loop;
    struct circuit *cb;
    _Atomic int64_t gauge;
    int paused, resumed;
};

static void on_pause(void *arg)
{
    ((struct fixture *)arg)->paused++;
}

static void on_resume(void *arg)
{
    struct fixture *f = arg;
    f->resumed++;
    loop_stop(f->loop); /* the cooldown has passed: back to the test */
}

static struct fixture *fixture_new(int failures)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    f->loop = loop_new();
    f->cb = circuit_new(&(struct circuit_config){.route = "test",
                                                 .queue = "q",
                                                 .failures = failures,
                                                 .cooldown = 0.01,
                                                 .gauge = &f->gauge,
                                                 .loop = f->loop,
                                                 .pause = on_pause,
                                                 .resume = on_resume,
                                                 .arg = f});
    return f;
}

static void fixture_free(struct fixture *f)
{
    circuit_free(f->cb);
    loop_free(f->loop);
    free(f);
}

/* Runs the loop until the cooldown timer made the circuit half-open (once per
 * fixture: a stopped loop does not run again). */
static void wait_for_probe(struct fixture *f)
{
    loop_run(f->loop);
    assert_true(circuit_probing(f->cb));
    assert_int_equal(atomic_load(&f->gauge), CIRCUIT_HALF_OPEN);
}

static void test_opens_after_consecutive_failures(void **state)
{
    struct fixture *f = fixture_new(3);
    circuit_record(f->cb, false);
    circuit_record(f->cb, false);
    circuit_record(f->cb, true); /* a success in between starts the count again */
    circuit_record(f->cb, false);
    circuit_record(f->cb, false);
    assert_false(circuit_is_open(f->cb));
    assert_true(circuit_ready(f->cb, NULL));
    circuit_record(f->cb, false);
    assert_true(circuit_is_open(f->cb));
    assert_int_equal(f->paused, 1);
    assert_int_equal(atomic_load(&f->gauge), CIRCUIT_OPEN);
    struct buf detail = {0};
    assert_false(circuit_ready(f->cb, &detail));
    assert_non_null(strstr(detail.data, "circuit open"));
    buf_free(&detail);
    fixture_free(f);
}

static void test_probe_success_closes(void **state)
{
    struct fixture *f = fixture_new(1);
    circuit_record(f->cb, false);
    assert_true(circuit_is_open(f->cb));
    wait_for_probe(f);
    assert_int_equal(f->resumed, 1);
    assert_false(circuit_ready(f->cb, NULL)); /* still not ready until the probe passes */
    circuit_record(f->cb, true);
    assert_false(circuit_is_open(f->cb));
    assert_false(circuit_probing(f->cb));
    assert_int_equal(f->resumed, 2); /* back to the full prefetch */
    assert_int_equal(atomic_load(&f->gauge), CIRCUIT_CLOSED);
    assert_true(circuit_ready(f->cb, NULL));
    fixture_free(f);
}

static void test_probe_failure_reopens(void **state)
{
    struct fixture *f = fixture_new(5);
    for (int i = 0; i < 5; i++)
        circuit_record(f->cb, false);
    wait_for_probe(f);
    circuit_record(f->cb, false); /* one failed probe is enough */
    assert_true(circuit_is_open(f->cb));
    assert_int_equal(f->paused, 2);
    assert_int_equal(atomic_load(&f->gauge), CIRCUIT_OPEN);
    assert_false(circuit_ready(f->cb, NULL));
    fixture_free(f);
}

static void test_zero_failures_never_opens(void **state)
{
    struct fixture *f = fixture_new(0);
    for (int i = 0; i < 100; i++)
        circuit_record(f->cb, false);
    assert_false(circuit_is_open(f->cb));
    assert_int_equal(f->paused, 0);
    assert_int_equal(atomic_load(&f->gauge), CIRCUIT_CLOSED);
    fixture_free(f);
}

static void stop_loop(struct loop *loop, void *arg)
{
    loop_stop(loop);
}

static void test_stop_cancels_the_probe(void **state)
{
    struct fixture *f = fixture_new(1);
    circuit_record(f->cb, false);
    circuit_stop(f->cb);
    /* The cancelled timer never fires: a later timer ends the run instead. */
    loop_timer(f->loop, 50, stop_loop, NULL);
    loop_run(f->loop);
    assert_int_equal(f->resumed, 0);
    assert_true(circuit_is_open(f->cb));
    fixture_free(f);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_consecutive_failures),
        cmocka_unit_test(test_probe_success_closes),
        cmocka_unit_test(test_probe_failure_reopens),
        cmocka_unit_test(test_zero_failures_never_opens),
        cmocka_unit_test(test_stop_cancels_the_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
