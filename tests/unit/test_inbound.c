/*
 * Unit tests for adapter/inbound.c's {json.…} routing-key placeholders: the
 * value at the path, the caller's phrase when there is no JSON, nothing (and
 * no reason) for a placeholder that is not json.…; a value that would not fit,
 * or that holds a NUL, is refused rather than cut (two values would read alike).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "inbound.h"

static void test_json_value_never_cut(void **state)
{
    json_t *root = json_loads("{\"long\":\"0123456789abcdef\",\"fits\":\"0123456\"}", 0, NULL);
    const char *nul_text = "{\"id\":\"a\\u0000b\"}";
    json_t *nul = json_loadb(nul_text, strlen(nul_text), JSON_ALLOW_NUL, NULL);
    assert_non_null(root);
    assert_non_null(nul);
    char buf[8], why[128] = "";
    assert_string_equal(inbound_json_path(root, "fits", buf, sizeof(buf), why, sizeof(why)),
                        "0123456");
    assert_null(inbound_json_path(root, "long", buf, sizeof(buf), why, sizeof(why)));
    assert_string_equal(why, "field \"long\" is 16 bytes long; at most 7");
    assert_null(inbound_json_path(nul, "id", buf, sizeof(buf), why, sizeof(why)));
    assert_string_equal(why, "field \"id\" holds a NUL character");
    json_decref(root);
    json_decref(nul);
}

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
        cmocka_unit_test(test_json_value_never_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
