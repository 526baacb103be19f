/*
 * Unit tests for the status page (adapter/status_page.c): every string from
 * the status document is escaped (a route error carrying markup stays text),
 * missing values show as "–", and the page is self-contained (no script, no
 * external asset) and refreshes itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "status_page.h"
#include "util.h"

#include <jansson.h>
#include <string.h>

static const char *const EVIL = "<script>alert('x')</script>\"&";

static json_t *document(void)
{
    json_error_t e;
    json_t *doc = json_pack_ex(
        &e, 0,
        "{ss ss sf ss ss si s[{ss ss ss sI}] s[{ss ss ss ss sb ss s{sIsIsIsI} s{sIsIsIsIsI} "
        "s[{ss ss sI sb}, {ss ss sn sb}] s{ss ss ss} s{sn sf}}]}",
        "system", "crm<u>", "version", "1.2.3", "uptime_seconds", 3725.0, "generated_at",
        "2026-01-01T00:00:00Z", "status", "not ready", "window_seconds", 60, "connections", "name",
        "publisher", "state", "up", "detail", "connected to amqp://<host>/", "reconnects",
        (json_int_t)2, "routes", "name", "billing\"x", "kind", "http", "direction", "outbound",
        "state", "circuit open", "ready", 0, "detail", "next probe in 12s", "last_minute", "in",
        (json_int_t)5, "out", (json_int_t)4, "failed", (json_int_t)1, "dead_letters", (json_int_t)0,
        "total", "in", (json_int_t)50, "out", (json_int_t)40, "failed", (json_int_t)10,
        "dead_letters", (json_int_t)3, "retries", (json_int_t)7, "queues", "name",
        "crm.billing.dlq", "role", "dlq", "messages", (json_int_t)3, "missing", 0, "name",
        "crm.billing.retry.1", "role", "retry", "messages", "missing", 1, "last_error", "message",
        EVIL, "at", "2026-01-01T00:00:00Z", "level", "warn", "lag", "last_seconds",
        "oldest_in_flight_seconds", 90.0);
    if (doc == NULL)
        fail_msg("fixture: %s", e.text);
    return doc;
}

static char *render(json_t *doc)
{
    struct buf out = {0};
    status_page_html(doc, &out);
    json_decref(doc);
    return buf_steal(&out, NULL);
}

static void test_every_string_is_escaped(void **state)
{
    char *page = render(document());
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "<u>"));
    assert_non_null(strstr(page, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));
    assert_non_null(strstr(page, "crm&lt;u&gt;"));
    assert_non_null(strstr(page, "billing&quot;x"));
    assert_non_null(strstr(page, "amqp://&lt;host&gt;/"));
    free(page);
}

static void test_states_depths_and_missing_values(void **state)
{
    char *page = render(document());
    assert_non_null(strstr(page, "<meta http-equiv=\"refresh\" content=\"5\">"));
    assert_non_null(strstr(page, "class=\"badge bad\">circuit open<"));
    assert_non_null(strstr(page, "next probe in 12s"));
    assert_non_null(strstr(page, "dlq: 3"));
    assert_non_null(strstr(page, "retry: <b>missing</b>"));
    assert_non_null(strstr(page, "5 / 4 / 1"));
    assert_non_null(strstr(page, "50 / 40 / 10"));
    assert_non_null(strstr(page, "up 62m")); /* 3725 s */
    assert_non_null(strstr(page, "last –<br>oldest in flight 90s"));
    assert_null(strstr(page, "http://")); /* no external asset */
    assert_null(strstr(page, "https://"));
    free(page);
}

/* A leased route on the standby sidecar is healthy: green, not red. */
static void test_a_standby_route_is_green(void **state)
{
    json_t *doc = json_pack("{s[{ss ss ss ss sb}]}", "routes", "name", "tickets", "kind", "poll",
                            "direction", "inbound", "state", "standby", "ready", 1);
    char *page = render(doc);
    assert_non_null(strstr(page, "class=\"badge ok\">standby<"));
    free(page);
}

static void test_an_empty_document_renders(void **state)
{
    char *page = render(json_object());
    assert_non_null(strstr(page, "</html>"));
    assert_non_null(strstr(page, "<title>– — amqp-sidecar</title>"));
    free(page);
}

static void test_html_escape(void **state)
{
    struct buf out = {0};
    html_escape(&out, "a<b>&\"'c");
    assert_string_equal(out.data, "a&lt;b&gt;&amp;&quot;&#39;c");
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_string_is_escaped),
        cmocka_unit_test(test_states_depths_and_missing_values),
        cmocka_unit_test(test_a_standby_route_is_green),
        cmocka_unit_test(test_an_empty_document_renders),
        cmocka_unit_test(test_html_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
