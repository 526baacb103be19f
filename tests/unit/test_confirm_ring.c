/*
 * Unit tests for adapter/confirm_ring.c: tags count from 1, entries are found
 * and removed by tag in any order, the oldest waiting tag is tracked, and —
 * the defect this module was written for — a slot still waiting for its
 * confirm is never handed out again, however far the tags run ahead of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "confirm_ring.h"

static int items[4096];

static void test_tags_count_from_one(void **state)
{
    struct confirm_ring r;
    confirm_ring_init(&r, 10);
    assert_int_equal(r.size, 64); /* at least min_size, a power of two, never tiny */
    assert_int_equal(confirm_ring_take(&r, 1, &items[0], 100), 1);
    assert_int_equal(confirm_ring_take(&r, 2, &items[1], 101), 2);
    struct ring_entry *e = confirm_ring_get(&r, 2);
    assert_non_null(e);
    assert_int_equal(e->kind, 2);
    assert_ptr_equal(e->item, &items[1]);
    assert_int_equal(e->sent_ms, 101);
    assert_null(confirm_ring_get(&r, 3)); /* not sent yet */
    assert_null(confirm_ring_get(&r, 0));
    assert_int_equal(r.waiting, 2);
    confirm_ring_free(&r);
}

static void test_out_of_order_removal_tracks_oldest(void **state)
{
    struct confirm_ring r;
    confirm_ring_init(&r, 64);
    for (int i = 0; i < 5; i++)
        confirm_ring_take(&r, 0, &items[i], 0);
    struct ring_entry out;
    assert_true(confirm_ring_remove(&r, 3, &out));
    assert_ptr_equal(out.item, &items[2]);
    assert_false(confirm_ring_remove(&r, 3, &out)); /* once only */
    assert_int_equal(confirm_ring_oldest(&r)->tag, 1);
    assert_true(confirm_ring_remove(&r, 1, &out));
    assert_int_equal(confirm_ring_oldest(&r)->tag, 2);
    assert_true(confirm_ring_remove(&r, 2, &out));
    assert_int_equal(confirm_ring_oldest(&r)->tag, 4); /* 3 went before */
    assert_int_equal(confirm_ring_span(&r), 2);
    assert_true(confirm_ring_remove(&r, 4, &out));
    assert_true(confirm_ring_remove(&r, 5, &out));
    assert_null(confirm_ring_oldest(&r));
    assert_int_equal(confirm_ring_span(&r), 0);
    assert_int_equal(r.waiting, 0);
    confirm_ring_free(&r);
}

/* One old publish never confirmed while thousands of later ones are: the
 * tags run a whole ring ahead, and the old one's slot must not be reused. */
static void test_a_waiting_slot_is_never_overwritten(void **state)
{
    struct confirm_ring r;
    confirm_ring_init(&r, 64);
    uint64_t old = confirm_ring_take(&r, 7, &items[0], 0);
    assert_int_equal(old, 1);
    int taken = 1;
    for (int i = 1; i < 1000; i++) {
        assert_true(confirm_ring_has_room(&r) || confirm_ring_span(&r) == r.size);
        if (!confirm_ring_has_room(&r))
            break;
        uint64_t t = confirm_ring_take(&r, 0, &items[i], 0);
        assert_int_not_equal(t, 0);
        struct ring_entry out;
        assert_true(confirm_ring_remove(&r, t, &out)); /* confirmed at once */
        taken++;
    }
    assert_int_equal(taken, (int)r.size); /* stopped exactly when the ring went round */
    assert_false(confirm_ring_has_room(&r));
    assert_int_equal(confirm_ring_take(&r, 0, &items[9], 0), 0); /* refused, not overwritten */
    struct ring_entry *e = confirm_ring_get(&r, old);
    assert_non_null(e);
    assert_int_equal(e->kind, 7);
    assert_ptr_equal(e->item, &items[0]);
    struct ring_entry out;
    assert_true(confirm_ring_remove(&r, old, &out));
    assert_true(confirm_ring_has_room(&r)); /* the old confirm frees the way */
    assert_int_not_equal(confirm_ring_take(&r, 0, &items[10], 0), 0);
    confirm_ring_free(&r);
}

static void test_reset_starts_over(void **state)
{
    struct confirm_ring r;
    confirm_ring_init(&r, 64);
    for (int i = 0; i < 10; i++)
        confirm_ring_take(&r, 0, &items[i], 0);
    confirm_ring_reset(&r);
    assert_int_equal(r.waiting, 0);
    assert_null(confirm_ring_get(&r, 3));
    assert_int_equal(confirm_ring_take(&r, 0, &items[0], 0), 1);
    confirm_ring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tags_count_from_one),
        cmocka_unit_test(test_out_of_order_removal_tracks_oldest),
        cmocka_unit_test(test_a_waiting_slot_is_never_overwritten),
        cmocka_unit_test(test_reset_starts_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
