/*
 * Unit tests for adapter/spool_message.c: a message comes back from its record
 * with every property, header and body byte (unset stays unset); a record cut
 * anywhere, or with a length that lies, is refused, never read past its end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "message.h"
#include "spool_message.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static struct message *sample(void)
{
    struct message *m = message_new();
    message_set(&m->exchange, "crm.events");
    message_set(&m->routing_key, "order.created");
    message_set(&m->content_type, "application/json; charset=utf-8");
    message_set(&m->message_id, "idem-42");
    message_set(&m->correlation_id, "corr-7");
    m->timestamp = 1764650000;
    message_set_header(m, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    message_set_header(m, "x-tenant", "acme");
    static const char body[] = "{\"id\":1}\0binary\xff";
    message_set_body(m, body, sizeof(body) - 1);
    return m;
}

/* m through a record and back (m borrowed; the caller frees the result). */
static struct message *round_trip(const struct message *m)
{
    struct buf rec = {0};
    spool_message_encode(m, &rec);
    char why[256];
    struct message *back = spool_message_decode(rec.data, rec.len, why, sizeof(why));
    buf_free(&rec);
    assert_non_null(back);
    return back;
}

static void test_round_trip(void **state)
{
    struct message *m = sample();
    struct message *back = round_trip(m);
    assert_string_equal(back->exchange, "crm.events");
    assert_string_equal(back->routing_key, "order.created");
    assert_string_equal(back->content_type, "application/json; charset=utf-8");
    assert_string_equal(back->message_id, "idem-42");
    assert_string_equal(back->correlation_id, "corr-7");
    assert_null(back->reply_to);
    assert_int_equal(back->timestamp, 1764650000);
    assert_int_equal(back->n_headers, 2);
    assert_string_equal(message_header(back, "x-tenant"), "acme");
    assert_string_equal(message_header(back, "traceparent"), message_header(m, "traceparent"));
    assert_int_equal(back->body_len, m->body_len);
    assert_memory_equal(back->body, m->body, m->body_len);
    message_free(back);
    message_free(m);
}

static void test_empty_message(void **state)
{
    struct message *m = message_new();
    struct message *back = round_trip(m);
    assert_null(back->exchange);
    assert_int_equal(back->body_len, 0);
    assert_int_equal(back->n_headers, 0);
    message_free(back);
    message_free(m);
}

static void test_every_cut_is_refused(void **state)
{
    struct message *m = sample();
    struct buf rec = {0};
    spool_message_encode(m, &rec);
    char why[256];
    for (size_t len = 0; len < rec.len; len++) {
        char *copy = malloc(len ? len : 1); /* exactly len bytes: ASan sees any overread */
        memcpy(copy, rec.data, len);
        assert_null(spool_message_decode(copy, len, why, sizeof(why)));
        free(copy);
    }
    message_free(m);
    buf_free(&rec);
}

static void test_lying_lengths_are_refused(void **state)
{
    struct message *m = sample();
    struct buf rec = {0};
    spool_message_encode(m, &rec);
    char why[256];
    rec.data[1] = (char)0xf0; /* the exchange's length: far beyond the record */
    assert_null(spool_message_decode(rec.data, rec.len, why, sizeof(why)));
    rec.data[0] = 9; /* a format we do not know */
    assert_null(spool_message_decode(rec.data, rec.len, why, sizeof(why)));
    assert_non_null(strstr(why, "format"));
    message_free(m);
    buf_free(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_every_cut_is_refused),
        cmocka_unit_test(test_lying_lengths_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
