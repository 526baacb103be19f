/*
 * Unit tests for adapter/inbound.c's {json.…} routing-key placeholders: the
 * value at the path, the caller's phrase when there is no JSON, nothing (and
 * no reason) for a placeholder that is not json.…
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "inbound.h"

static void test_json_placeholder(void **state)
{
    json_t *root =
        json_loads("{\"customer\":{\"id\":42,\"tier\":\"gold\"},\"list\":[true]}", 0, NULL);
    char buf[64], why[128] = "";
    assert_string_equal(inbound_json_placeholder(root, "json.customer.id", "no JSON", buf,
                                                 sizeof(buf), why, sizeof(why)),
                        "42");
    assert_string_equal(inbound_json_placeholder(root, "json.list.0", "no JSON", buf, sizeof(buf),
                                                 why, sizeof(why)),
                        "true");
    assert_null(inbound_json_placeholder(root, "json.missing", "no JSON", buf, sizeof(buf), why,
                                         sizeof(why)));
    assert_string_equal(why, "the body has no field \"missing\"");
    why[0] = '\0';
    assert_null(
        inbound_json_placeholder(root, "id", "no JSON", buf, sizeof(buf), why, sizeof(why)));
    assert_string_equal(why, "");
    assert_null(inbound_json_placeholder(NULL, "json.customer.id", "the record is not JSON", buf,
                                         sizeof(buf), why, sizeof(why)));
    assert_string_equal(why, "the record is not JSON");
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_placeholder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
