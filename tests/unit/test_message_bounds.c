/*
 * Unit tests for the bounds checked before anything reaches rabbitmq-c's
 * encoder (message_check in adapter/message.c, amqp_publish_check in
 * adapter/amqp_message.c): a value AMQP cannot carry is refused with a
 * reason, one that fits passes, and the size estimate agrees with what
 * rabbitmq-c really encodes (checked against amqp_encode_table).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "amqp_message.h"
#include "message.h"

#include <stdlib.h>
#include <string.h>

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static struct message *good_message(void)
{
    struct message *m = message_new();
    message_set(&m->exchange, "crm.events");
    message_set(&m->routing_key, "order.created");
    message_set(&m->content_type, "application/json; charset=utf-8");
    message_set(&m->message_id, "order-1");
    message_set(&m->correlation_id, "corr-1");
    message_set_header(m, "x-tenant", "acme");
    message_set_body(m, "{}", 2);
    return m;
}

static void test_message_that_fits_passes(void **state)
{
    struct message *m = good_message();
    char why[256] = "";
    assert_int_equal(message_check(m, why, sizeof(why)), 0);
    message_free(m);
}

static void test_each_short_string_is_bounded(void **state)
{
    char *long255 = repeat('a', 255), *long256 = repeat('a', 256);
    size_t offsets[] = {
        offsetof(struct message, exchange),       offsetof(struct message, routing_key),
        offsetof(struct message, content_type),   offsetof(struct message, message_id),
        offsetof(struct message, correlation_id), offsetof(struct message, reply_to)};
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        struct message *m = good_message();
        char **field = (char **)((char *)m + offsets[i]);
        char why[256] = "";
        message_set(field, long255);
        assert_int_equal(message_check(m, why, sizeof(why)), 0);
        message_set(field, long256);
        assert_int_equal(message_check(m, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "256 bytes"));
        message_free(m);
    }
    free(long255);
    free(long256);
}

static void test_content_type_must_be_printable(void **state)
{
    assert_true(message_content_type_ok("text/xml; charset=utf-8"));
    assert_false(message_content_type_ok(""));
    assert_false(message_content_type_ok("text/plain\r\nX-Evil: 1"));
    assert_false(message_content_type_ok("text/\x80plain"));
    struct message *m = good_message();
    message_set(&m->content_type, "a/b\n");
    char why[256];
    assert_int_equal(message_check(m, why, sizeof(why)), -1);
    message_free(m);
}

static void test_headers_are_bounded(void **state)
{
    char why[256];
    struct message *m = good_message();
    char *name = repeat('h', 256);
    message_set_header(m, name, "v");
    assert_int_equal(message_check(m, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "header name"));
    message_free(m);
    free(name);

    m = good_message();
    char *big = repeat('v', MESSAGE_PROPERTIES_MAX);
    message_set_header(m, "x-big", big);
    assert_int_equal(message_check(m, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "properties and headers"));
    message_free(m);
    free(big);
}

static void test_publish_check_short_strings(void **state)
{
    char why[256];
    char *long256 = repeat('c', 256);
    amqp_basic_properties_t p = {0};
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.content_type = amqp_cstring_bytes(long256);
    assert_int_equal(amqp_publish_check(amqp_cstring_bytes("x"), amqp_cstring_bytes("k"), &p,
                                        131072, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "content type"));
    p._flags = 0; /* an unset property is not looked at */
    assert_int_equal(amqp_publish_check(amqp_cstring_bytes("x"), amqp_cstring_bytes("k"), &p,
                                        131072, why, sizeof(why)),
                     0);
    assert_int_equal(amqp_publish_check(amqp_cstring_bytes("x"), amqp_cstring_bytes(long256), &p,
                                        131072, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "routing key"));
    free(long256);
}

/* Our estimate against rabbitmq-c's own encoder, for a nested table. */
static void test_publish_check_size_matches_encoder(void **state)
{
    amqp_field_value_t inner_values[] = {
        {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 5},
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("hello")},
    };
    amqp_table_entry_t inner[] = {
        {amqp_cstring_bytes("n"), inner_values[0]},
        {amqp_cstring_bytes("s"), inner_values[1]},
    };
    amqp_field_value_t array_values[] = {
        {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1},
        {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {2, inner}},
    };
    char *big = repeat('z', 3000);
    amqp_table_entry_t entries[] = {
        {amqp_cstring_bytes("x-big"),
         {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(big)}},
        {amqp_cstring_bytes("x-death"),
         {.kind = AMQP_FIELD_KIND_ARRAY, .value.array = {2, array_values}}},
        {amqp_cstring_bytes("x-count"), {.kind = AMQP_FIELD_KIND_U16, .value.u16 = 3}},
    };
    amqp_table_t table = {3, entries};
    char buffer[8192];
    amqp_bytes_t out = {sizeof(buffer), buffer};
    size_t offset = 0;
    assert_int_equal(amqp_encode_table(out, &table, &offset), AMQP_STATUS_OK);

    amqp_basic_properties_t p = {0};
    p._flags = AMQP_BASIC_HEADERS_FLAG;
    p.headers = table;
    char why[256];
    /* frame overhead 8 + header fixed 14 + mode/priority/timestamp 10 + the table */
    size_t need = 8 + 14 + 10 + offset;
    assert_int_equal(
        amqp_publish_check(amqp_empty_bytes, amqp_empty_bytes, &p, need, why, sizeof(why)), 0);
    assert_int_equal(
        amqp_publish_check(amqp_empty_bytes, amqp_empty_bytes, &p, need - 1, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "frames hold"));
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_that_fits_passes),
        cmocka_unit_test(test_each_short_string_is_bounded),
        cmocka_unit_test(test_content_type_must_be_printable),
        cmocka_unit_test(test_headers_are_bounded),
        cmocka_unit_test(test_publish_check_short_strings),
        cmocka_unit_test(test_publish_check_size_matches_encoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
