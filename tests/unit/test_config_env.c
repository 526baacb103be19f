/*
 * Unit tests for adapter/config_env.c: ${NAME}, ${NAME:-default},
 * ${NAME:?message} and $$ in config strings, against a fixed table of
 * variables (no getenv), and every malformed form as an error that says how
 * to fix it. Long inputs and huge values stay bounded and linear.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config_env.h"

#include <stdlib.h>
#include <string.h>

/* name=value pairs; "EMPTY" is set to "", "UNSET" is absent. */
static const char *const vars[][2] = {
    {"HOST", "db.example"}, {"PORT", "5432"}, {"EMPTY", ""}, {"_x1", "u"}, {"DOLLAR", "${HOST}"},
};

static const char *lookup(const char *name, void *arg)
{
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (strcmp(vars[i][0], name) == 0)
            return vars[i][1];
    return arg; /* the test's "big" value for BIG, else NULL */
}

static void expands_to(const char *text, const char *want)
{
    char err[512] = "";
    char *got = config_env_expand(text, lookup, NULL, err, sizeof(err));
    if (got == NULL)
        fail_msg("\"%s\": unexpected error: %s", text, err);
    if (strcmp(got, want) != 0)
        fail_msg("\"%s\": got \"%s\", want \"%s\"", text, got, want);
    free(got);
}

static void fails_with(const char *text, const char *want_in_err)
{
    char err[512] = "";
    char *got = config_env_expand(text, lookup, NULL, err, sizeof(err));
    if (got != NULL)
        fail_msg("\"%s\": expanded to \"%s\", want an error", text, got);
    if (strstr(err, want_in_err) == NULL)
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", text, err, want_in_err);
}

static void test_plain_text_unchanged(void **state)
{
    expands_to("", "");
    expands_to("amqp://guest@localhost/", "amqp://guest@localhost/");
    expands_to("{ } : - ?", "{ } : - ?");
}

static void test_lone_dollar_is_literal(void **state)
{
    /* jq programs and regexes keep their $ */
    expands_to(".a | $ENV.HOME", ".a | $ENV.HOME");
    expands_to("^a$", "^a$");
    expands_to("$HOST", "$HOST"); /* only the braced form is a reference */
    expands_to("$", "$");
}

static void test_one_and_several_vars(void **state)
{
    expands_to("${HOST}", "db.example");
    expands_to("postgres://${HOST}:${PORT}/x", "postgres://db.example:5432/x");
    expands_to("${HOST}${PORT}", "db.example5432");
    expands_to("${_x1}", "u");
}

static void test_value_is_not_rescanned(void **state)
{
    expands_to("${DOLLAR}", "${HOST}");
}

static void test_default(void **state)
{
    expands_to("${UNSET:-127.0.0.1:8081}", "127.0.0.1:8081");
    expands_to("${EMPTY:-fallback}", "fallback"); /* POSIX: empty counts as unset */
    expands_to("${HOST:-fallback}", "db.example");
    expands_to("${UNSET:-}", "");
    expands_to("a${UNSET:-$x}b", "a$xb"); /* the default is literal */
}

static void test_empty_value_vs_unset(void **state)
{
    expands_to("[${EMPTY}]", "[]"); /* set but empty is a value */
    fails_with("${UNSET}", "environment variable UNSET is not set");
}

static void test_undefined_names_the_fix(void **state)
{
    fails_with("x${UNSET}y", "set UNSET in the unit's Environment= or EnvironmentFile=");
    fails_with("${UNSET}", "give a default: ${UNSET:-");
}

static void test_required_message(void **state)
{
    fails_with("${UNSET:?the orders database URL}", "UNSET: the orders database URL");
    fails_with("${EMPTY:?must not be empty}", "EMPTY: must not be empty");
    fails_with("${UNSET:?}", "environment variable UNSET is not set");
    fails_with("${EMPTY:?}", "environment variable EMPTY is empty");
    expands_to("${PORT:?need a port}", "5432");
}

static void test_double_dollar(void **state)
{
    expands_to("$$", "$");
    expands_to("$${HOST}", "${HOST}");
    expands_to("cost: $$5", "cost: $5");
    expands_to("$$$${HOST}", "$${HOST}");
}

static void test_unterminated(void **state)
{
    fails_with("${HOST", "unterminated \"${\"");
    fails_with("abc ${", "unterminated");
    fails_with("${UNSET:-x", "unterminated");
}

static void test_bad_name(void **state)
{
    fails_with("${}", "is not a variable reference");
    fails_with("${1A}", "is not a variable reference");
    fails_with("${A-B}", "is not a variable reference");
    fails_with("${A B}", "is not a variable reference");
    fails_with("${HOST:=x}", "is not a variable reference");
    fails_with("${${HOST}}", "is not a variable reference");
}

static void test_long_input_is_bounded(void **state)
{
    /* a long plain string passes; one over the cap is refused */
    size_t n = CONFIG_ENV_MAX;
    char *text = malloc(n + 2);
    memset(text, 'a', n);
    text[n] = '\0';
    char err[512];
    char *got = config_env_expand(text, lookup, NULL, err, sizeof(err));
    assert_non_null(got);
    assert_int_equal(strlen(got), n);
    free(got);
    text[n] = 'a';
    text[n + 1] = '\0';
    assert_null(config_env_expand(text, lookup, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "over 65536 bytes"));

    /* many references to a big value: the output cap stops it early */
    char *big = malloc(40001);
    memset(big, 'b', 40000);
    big[40000] = '\0';
    char refs[64 * 7 + 1] = "";
    for (int i = 0; i < 64; i++)
        strcat(refs, "${BIG}");
    assert_null(config_env_expand(refs, lookup, big, err, sizeof(err)));
    assert_non_null(strstr(err, "once variables are expanded"));

    /* many ${ with no } fails at the first, without quadratic rescans */
    memset(text, '{', n);
    for (size_t i = 0; i < n; i += 2)
        text[i] = '$';
    text[n] = '\0';
    assert_null(config_env_expand(text, lookup, NULL, err, sizeof(err)));
    free(big);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text_unchanged),
        cmocka_unit_test(test_lone_dollar_is_literal),
        cmocka_unit_test(test_one_and_several_vars),
        cmocka_unit_test(test_value_is_not_rescanned),
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_empty_value_vs_unset),
        cmocka_unit_test(test_undefined_names_the_fix),
        cmocka_unit_test(test_required_message),
        cmocka_unit_test(test_double_dollar),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_bad_name),
        cmocka_unit_test(test_long_input_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
