/*
 * Unit tests for transforms/template.c: expansion, escapes, missing values
 * named in the error, and config-time checks of placeholder names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

static const char *lookup(void *arg, const char *name, char *why, size_t whylen)
{
    if (strcmp(name, "json.type") == 0)
        return "created";
    if (strcmp(name, "header.X-Region") == 0)
        return "eu";
    if (strcmp(name, "json.missing") == 0)
        snprintf(why, whylen, "the body has no field \"missing\"");
    return NULL;
}

static void test_expands(void **state)
{
    char err[256];
    char *s =
        template_expand("order.{json.type}.{header.X-Region}", lookup, NULL, err, sizeof(err));
    assert_string_equal(s, "order.created.eu");
    free(s);
    s = template_expand("plain.key", lookup, NULL, err, sizeof(err));
    assert_string_equal(s, "plain.key");
    free(s);
    s = template_expand("", lookup, NULL, err, sizeof(err));
    assert_string_equal(s, "");
    free(s);
}

static void test_literal_braces(void **state)
{
    char err[256];
    char *s = template_expand("{{x}}-{json.type}", lookup, NULL, err, sizeof(err));
    assert_string_equal(s, "{x}-created");
    free(s);
}

static void test_missing_value_named(void **state)
{
    char err[256];
    assert_null(template_expand("a.{json.missing}", lookup, NULL, err, sizeof(err)));
    assert_string_equal(
        err, "placeholder {json.missing} has no value: the body has no field \"missing\"");
    assert_null(template_expand("a.{header.Nope}", lookup, NULL, err, sizeof(err)));
    assert_string_equal(err, "placeholder {header.Nope} has no value");
}

static void test_syntax_errors(void **state)
{
    char err[256];
    assert_null(template_expand("a.{json.type", lookup, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "unclosed '{'"));
    assert_null(template_expand("a.}", lookup, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "stray '}'"));
    assert_null(template_expand("a.{}", lookup, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "empty"));
}

static void test_check(void **state)
{
    static const char *const allowed[] = {"json.", "header.", "path", NULL};
    char err[256];
    assert_int_equal(template_check("o.{json.a.b}.{path}", allowed, err, sizeof(err)), 0);
    assert_int_equal(template_check("o.{body.a}", allowed, err, sizeof(err)), -1);
    assert_non_null(
        strstr(err, "unknown placeholder {body.a}; use {json.NAME}, {header.NAME}, {path}"));
    assert_int_equal(template_check("o.{json.}", allowed, err, sizeof(err)), -1);
    assert_true(template_has_placeholders("a{b}"));
    assert_false(template_has_placeholders("a{{b}}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expands),
        cmocka_unit_test(test_literal_braces),
        cmocka_unit_test(test_missing_value_named),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
