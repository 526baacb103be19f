/*
 * test_http_text.c — unit tests for adapter/kinds/http_text.c: what reaches
 * request URLs, logs and x-sidecar-error from message and response data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kinds/http_text.h"
#include "util.h"

static char *encoded(const char *s)
{
    struct buf b = {0};
    http_text_url_encode(&b, s);
    return b.data ? buf_steal(&b, NULL) : strdup("");
}

static void test_url_encode(void **state)
{
    char *e = encoded("a b/c?d=e&f#g");
    assert_string_equal(e, "a%20b%2Fc%3Fd%3De%26f%23g");
    free(e);
    e = encoded("AZaz09-._~");
    assert_string_equal(e, "AZaz09-._~");
    free(e);
    e = encoded("2024-01-01T00:00:02Z");
    assert_string_equal(e, "2024-01-01T00%3A00%3A02Z");
    free(e);
    e = encoded("\xc3\xa9\r\n");
    assert_string_equal(e, "%C3%A9%0D%0A");
    free(e);
    e = encoded("");
    assert_string_equal(e, "");
    free(e);
}

static void expect_redacted(const char *url, const char *want)
{
    struct buf b = {0};
    http_text_url_redacted(&b, url);
    assert_string_equal(b.data ? b.data : "", want);
    buf_free(&b);
}

static void test_url_redacted(void **state)
{
    expect_redacted("http://host:9000/api/x", "http://host:9000/api/x");
    expect_redacted("https://user:secret@host/api?token=abc#frag", "https://host/api");
    expect_redacted("http://host?x=1", "http://host");
    expect_redacted("http://host/p@th?q", "http://host/p@th"); /* @ in the path is not user info */
}

static char *excerpt(const char *body, size_t len, size_t max)
{
    struct buf b = {0};
    http_text_excerpt(&b, body, len, max);
    return buf_steal(&b, NULL);
}

static void test_excerpt_one_line(void **state)
{
    const char *body = "{\"error\":\r\n\t\"bad\"}\n";
    char *e = excerpt(body, strlen(body), 200);
    assert_string_equal(e, "{\"error\": \"bad\"}");
    free(e);
    e = excerpt("", 0, 200);
    assert_string_equal(e, "(empty body)");
    free(e);
}

static void test_excerpt_cuts_on_characters(void **state)
{
    char body[300];
    memset(body, 'x', sizeof(body));
    char *e = excerpt(body, sizeof(body), 200);
    assert_int_equal(strlen(e), 203);
    assert_string_equal(e + 200, "...");
    free(e);
    /* "é" is 2 bytes at offsets 9-10: a cut at 10 must not split it */
    const char *utf8 = "123456789\xc3\xa9xyz";
    e = excerpt(utf8, strlen(utf8), 10);
    assert_string_equal(e, "123456789...");
    free(e);
    e = excerpt(utf8, strlen(utf8), 11);
    assert_string_equal(e, "123456789\xc3\xa9...");
    free(e);
}

static void test_header_rules(void **state)
{
    assert_true(http_text_header_name_ok("X-Api-Version"));
    assert_true(http_text_header_name_ok("traceparent"));
    assert_false(http_text_header_name_ok(""));
    assert_false(http_text_header_name_ok("Bad Name"));
    assert_false(http_text_header_name_ok("X:Y"));
    assert_true(http_text_header_value_ok("a value\twith tab"));
    assert_false(http_text_header_value_ok("line\r\nInjected: yes"));
    assert_false(http_text_header_value_ok("nul\x7f"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_encode),       cmocka_unit_test(test_url_redacted),
        cmocka_unit_test(test_excerpt_one_line), cmocka_unit_test(test_excerpt_cuts_on_characters),
        cmocka_unit_test(test_header_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
