/*
 * Unit tests for adapter/kinds/poll_http.c: the cursor goes into the url
 * URL-encoded, and each kind of answer (JSON, unchanged, HTTP error with
 * Retry-After, truncated, not JSON, no response) means what poll_in expects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "kinds/poll_http.h"

static void test_url_encodes_the_cursor(void **state)
{
    char err[256];
    char *url =
        poll_http_url("http://legacy/items?since={cursor}", "2024-01-01 10:00&x", err, sizeof(err));
    assert_non_null(url);
    assert_null(strstr(url, " "));
    assert_null(strstr(url, "&x"));
    free(url);
}

static enum poll_answer answer(long status, const char *body, bool truncated, jv *doc, char *why,
                               double *retry_after)
{
    struct httpc_response resp = {
        .status = status,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .truncated = truncated,
        .error = status == 0 ? "connection refused" : NULL,
        .retry_after = 7,
    };
    return poll_http_answer(&resp, "http://user:secret@legacy/items", 1024, doc, why, 1536,
                            retry_after);
}

static void test_answers(void **state)
{
    char why[1536];
    double retry_after = -1;
    jv doc = jv_null();
    assert_int_equal(answer(200, "[1,2]", false, &doc, why, &retry_after), POLL_ANSWER_JSON);
    assert_int_equal(jv_array_length(doc), 2);
    assert_true(retry_after == 0);
    assert_int_equal(answer(304, NULL, false, &doc, why, &retry_after), POLL_ANSWER_UNCHANGED);
    assert_string_equal(why, "not modified");
    assert_int_equal(answer(503, "busy", false, &doc, why, &retry_after), POLL_ANSWER_FAILED);
    assert_true(retry_after == 7);
    assert_non_null(strstr(why, "HTTP 503 from GET "));
    assert_null(strstr(why, "secret")); /* the url is redacted */
    assert_int_equal(answer(200, "[1,", true, &doc, why, &retry_after), POLL_ANSWER_FAILED);
    assert_non_null(strstr(why, "is over max_response (1024 bytes)"));
    assert_int_equal(answer(200, "<html>", false, &doc, why, &retry_after), POLL_ANSWER_FAILED);
    assert_non_null(strstr(why, "is not JSON: "));
    assert_non_null(strstr(why, "; it begins: <html>"));
    assert_int_equal(answer(0, NULL, false, &doc, why, &retry_after), POLL_ANSWER_FAILED);
    assert_non_null(strstr(why, ": connection refused"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_encodes_the_cursor),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
