/*
 * test_poll_jq.c — unit tests for adapter/kinds/poll_jq.c: items, ids and
 * cursors from jq expressions, and the errors a poll route reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinds/poll_jq.h"

static jv parse(const char *text)
{
    jv v = jv_parse(text);
    assert_true(jv_is_valid(v));
    return v;
}

static void test_items(void **state)
{
    char err[512] = "";
    struct poll_jq *q = poll_jq_compile(".items[]", err, sizeof(err));
    assert_non_null(q);
    jv items = jv_array();
    assert_int_equal(poll_jq_run(q, parse("{\"items\":[{\"id\":1},{\"id\":2}]}"), &items, SIZE_MAX,
                                 err, sizeof(err)),
                     0);
    assert_int_equal(jv_array_length(jv_copy(items)), 2);
    jv_free(items);

    items = jv_array();
    assert_int_equal(poll_jq_run(q, parse("{\"items\":5}"), &items, SIZE_MAX, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "Cannot iterate over number (5)");
    jv_free(items);
    poll_jq_free(q);
}

static char *scalar(const char *program, const char *input, char *err, size_t errlen)
{
    struct poll_jq *q = poll_jq_compile(program, err, errlen);
    assert_non_null(q);
    char *text = poll_jq_scalar(q, parse(input), err, errlen);
    poll_jq_free(q);
    return text;
}

static void test_scalars(void **state)
{
    char err[512];
    char *t = scalar(".id", "{\"id\":\"T-1\"}", err, sizeof(err));
    assert_string_equal(t, "T-1");
    free(t);
    t = scalar(".id", "{\"id\":1700000000}", err, sizeof(err));
    assert_string_equal(t, "1700000000");
    free(t);
    t = scalar(".ok", "{\"ok\":true}", err, sizeof(err));
    assert_string_equal(t, "true");
    free(t);
    /* null and nothing: no value, no error */
    assert_null(scalar(".id", "{}", err, sizeof(err)));
    assert_string_equal(err, "");
    assert_null(scalar("empty", "{}", err, sizeof(err)));
    assert_string_equal(err, "");
    /* errors */
    assert_null(scalar(".id", "{\"id\":{\"a\":1}}", err, sizeof(err)));
    assert_non_null(strstr(err, "array or object"));
    assert_null(scalar(".[]", "[1,2]", err, sizeof(err)));
    assert_string_equal(err, "produced more than 1 result(s)");
    assert_null(scalar(".a.b", "{\"a\":3}", err, sizeof(err)));
    assert_string_equal(err, "Cannot index number with string \"b\"");
}

static void test_compile_error(void **state)
{
    char err[512] = "";
    assert_null(poll_jq_compile(".id |||", err, sizeof(err)));
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_compile_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
