/*
 * Unit tests for adapter/route_test_compare.c: only the fields a case names
 * are checked, null means absent, headers match case-insensitively, a JSON
 * body matches a body text that parses to it, "_contains" checks a substring,
 * arrays must have the same length; and for the local requests of httpd.c
 * the `test` command sends (404 without a route, 413 over max_body, headers
 * looked up case-insensitively, one answer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "message.h"
#include "route_test_internal.h"
#include "util.h"

static size_t diffs(const char *expect, const char *got, struct buf *out)
{
    json_t *e = json_loads(expect, 0, NULL);
    json_t *g = json_loads(got, 0, NULL);
    assert_non_null(e);
    assert_non_null(g);
    size_t n = route_test_compare(e, g, out);
    json_decref(e);
    json_decref(g);
    return n;
}

static void test_only_named_fields_are_checked(void **state)
{
    struct buf out = {0};
    assert_int_equal(diffs("{\"status\": 202}", "{\"status\": 202, \"body\": \"x\"}", &out), 0);
    assert_int_equal(diffs("{\"status\": 201}", "{\"status\": 202}", &out), 1);
    assert_string_equal(out.data, "    expect.status: expected 201, got 202\n");
    buf_free(&out);
}

static void test_null_means_absent(void **state)
{
    struct buf out = {0};
    assert_int_equal(diffs("{\"reply\": null}", "{\"reply\": null}", &out), 0);
    assert_int_equal(diffs("{\"reply\": null}", "{}", &out), 0);
    assert_int_equal(diffs("{\"reply\": null}", "{\"reply\": {\"a\": 1}}", &out), 1);
    assert_non_null(strstr(out.data, "expected (absent), got {\"a\":1}"));
    buf_free(&out);
}

static void test_headers_any_case_and_absent(void **state)
{
    struct buf out = {0};
    const char *got = "{\"headers\": {\"Content-Type\": \"application/json\", \"x-a\": \"1\"}}";
    assert_int_equal(diffs("{\"headers\": {\"content-type\": \"application/json\"}}", got, &out),
                     0);
    assert_int_equal(diffs("{\"headers\": {\"x-secret\": null}}", got, &out), 0);
    assert_int_equal(diffs("{\"headers\": {\"X-A\": null, \"x-b\": \"2\"}}", got, &out), 2);
    assert_non_null(strstr(out.data, "expect.headers.X-A: expected (absent), got \"1\""));
    assert_non_null(strstr(out.data, "expect.headers.x-b: expected \"2\", got (absent)"));
    buf_free(&out);
}

static void test_json_body_matches_its_text(void **state)
{
    struct buf out = {0};
    const char *got = "{\"body\": \"{\\\"id\\\": 7, \\\"lines\\\": [1, 2], \\\"n\\\": 1.0}\"}";
    assert_int_equal(diffs("{\"body\": {\"id\": 7}}", got, &out), 0);
    assert_int_equal(diffs("{\"body\": {\"n\": 1}}", got, &out), 0); /* 1 == 1.0 */
    assert_int_equal(diffs("{\"body\": {\"lines\": [1]}}", got, &out), 1);
    assert_non_null(strstr(out.data, "expect.body.lines: expected 1 item [1], got [1,2]"));
    buf_free(&out);
    /* as a string it must match byte for byte; a body that is not JSON says so */
    assert_int_equal(diffs("{\"body\": \"{\\\"id\\\": 7}\"}", got, &out), 1);
    buf_free(&out);
    assert_int_equal(diffs("{\"body\": {\"id\": 7}}", "{\"body\": \"not json\"}", &out), 1);
    assert_non_null(strstr(out.data, "expected JSON {\"id\":7}, got \"not json\""));
    buf_free(&out);
}

static void test_contains(void **state)
{
    struct buf out = {0};
    const char *got = "{\"reason\": \"HTTP 422 from POST http://x/: bad email\"}";
    assert_int_equal(diffs("{\"reason_contains\": \"bad email\"}", got, &out), 0);
    assert_int_equal(diffs("{\"reason_contains\": \"timeout\"}", got, &out), 1);
    assert_non_null(strstr(out.data, "expect.reason: expected text containing \"timeout\""));
    buf_free(&out);
}

static void test_arrays_same_length_element_by_element(void **state)
{
    struct buf out = {0};
    const char *got = "{\"published\": [{\"routing_key\": \"a\"}, {\"routing_key\": \"b\"}]}";
    assert_int_equal(diffs("{\"published\": [{}, {\"routing_key\": \"b\"}]}", got, &out), 0);
    assert_int_equal(diffs("{\"published\": [{\"routing_key\": \"b\"}, {}]}", got, &out), 1);
    assert_non_null(strstr(out.data, "expect.published[0].routing_key: expected \"b\", got \"a\""));
    buf_free(&out);
    assert_int_equal(diffs("{\"published\": []}", got, &out), 1);
    buf_free(&out);
}

static void test_body_text(void **state)
{
    size_t len;
    json_t *o = json_loads("{\"a\": [1, 2]}", 0, NULL);
    char *t = route_test_body_text(o, &len);
    assert_string_equal(t, "{\"a\":[1,2]}");
    assert_int_equal(len, 11);
    free(t);
    json_decref(o);
    json_t *s = json_stringn("a\0b", 3);
    t = route_test_body_text(s, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(t, "a\0b", 3);
    free(t);
    json_decref(s);
    t = route_test_body_text(NULL, &len);
    assert_int_equal(len, 0);
    free(t);
}

/* ---- local requests (httpd.h) ---------------------------------------------------- */

struct answer {
    int calls, status;
    char body[256];
};

static void answered(void *arg, int status, const char *content_type, const char *body, size_t len,
                     const struct header *headers, size_t n_headers)
{
    struct answer *a = arg;
    a->calls++;
    a->status = status;
    snprintf(a->body, sizeof(a->body), "%.*s", (int)len, body);
}

static void echo(struct http_request *req, void *arg)
{
    size_t len;
    const char *body = http_request_body(req, &len);
    char text[256];
    snprintf(text, sizeof(text), "%s %s %s %s %.*s", http_request_method(req),
             http_request_path(req), http_request_header(req, "x-tenant"),
             http_request_query(req, "page"), (int)len, body);
    http_respond(req, 200, "text/plain", text, strlen(text));
}

static void test_local_requests(void **state)
{
    char err[128];
    struct http_server *s = http_server_new("127.0.0.1:1", err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(http_server_route(s, "/in", 8, echo, NULL), 0);
    struct header h[] = {{"X-Tenant", "acme"}};
    struct header q[] = {{"page", "2"}};
    struct answer a = {0};
    struct http_local_request l = {.method = "PUT",
                                   .path = "/in",
                                   .headers = h,
                                   .n_headers = 1,
                                   .query = q,
                                   .n_query = 1,
                                   .body = "12345678",
                                   .body_len = 8,
                                   .answered = answered,
                                   .arg = &a};
    http_server_dispatch_local(s, &l);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "PUT /in acme 2 12345678");
    l.body_len = 9; /* over max_body: refused before the handler */
    http_server_dispatch_local(s, &l);
    assert_int_equal(a.calls, 2);
    assert_int_equal(a.status, 413);
    l.path = "/other";
    http_server_dispatch_local(s, &l);
    assert_int_equal(a.calls, 3);
    assert_int_equal(a.status, 404);
    http_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_named_fields_are_checked),
        cmocka_unit_test(test_null_means_absent),
        cmocka_unit_test(test_headers_any_case_and_absent),
        cmocka_unit_test(test_json_body_matches_its_text),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_arrays_same_length_element_by_element),
        cmocka_unit_test(test_body_text),
        cmocka_unit_test(test_local_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
