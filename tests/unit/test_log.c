/*
 * Unit tests for adapter/log.c: every line is one valid JSON object (or one
 * logfmt line) whatever the message holds — quotes, control characters,
 * UTF-8, invalid bytes — and however long it is: truncated, never broken.
 * And a flood of repeated lines is cut to a few, then summarized once, from
 * one thread or many. stderr is redirected to a temporary file and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096 /* log.c's */

/* Runs fn with stderr captured; returns what it wrote (malloc'd). */
static char *capture(void (*fn)(void *), void *arg)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn(arg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    long n = ftell(tmp);
    char *out = calloc(1, (size_t)n + 1);
    rewind(tmp);
    assert_int_equal(fread(out, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return out;
}

/* Parses the single line in text as a JSON object (asserting it is one). */
static json_t *one_json_line(const char *text)
{
    size_t len = strlen(text);
    assert_true(len > 0 && len <= LOG_LINE_MAX);
    assert_int_equal(text[len - 1], '\n');
    assert_null(memchr(text, '\n', len - 1));
    json_error_t err;
    json_t *obj = json_loadb(text, len - 1, JSON_REJECT_DUPLICATES, &err);
    if (obj == NULL)
        fail_msg("not JSON (%s at %d): %s", err.text, err.position, text);
    assert_true(json_is_object(obj));
    return obj;
}

static void log_message(void *arg)
{
    log_event(
        LOG_WARN,
        &(struct log_ctx){.route = "orders", .message_id = "m-1", .correlation_id = "c \"2\" \\"},
        "%s", (const char *)arg);
}

static void test_json_fields_and_escapes(void **state)
{
    log_set_format(LOG_FORMAT_JSON);
    const char *msg = "say \"hi\"\\ tab\tnl\nbell\a del\x7f caf\xc3\xa9 \xe2\x86\x92";
    char *out = capture(log_message, (void *)msg);
    json_t *obj = one_json_line(out);
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(obj, "route")), "orders");
    assert_string_equal(json_string_value(json_object_get(obj, "message_id")), "m-1");
    assert_string_equal(json_string_value(json_object_get(obj, "correlation_id")), "c \"2\" \\");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), msg);
    assert_non_null(json_object_get(obj, "time"));
    json_decref(obj);
    free(out);
}

static void test_json_invalid_utf8_is_replaced(void **state)
{
    log_set_format(LOG_FORMAT_JSON);
    char *out = capture(log_message, "bad \xff\xfe and cut \xe2\x86 end");
    json_t *obj = one_json_line(out);
    assert_string_equal(json_string_value(json_object_get(obj, "msg")),
                        "bad \xef\xbf\xbd\xef\xbf\xbd and cut \xef\xbf\xbd\xef\xbf\xbd end");
    json_decref(obj);
    free(out);
}

/* Messages whose escaped form is far longer than a line: still one valid object. */
static void test_json_truncation_keeps_the_line_valid(void **state)
{
    log_set_format(LOG_FORMAT_JSON);
    static const char *const fills[] = {"\"", "\x01", "\\", "\xe2\x82\xac", "a"};
    for (size_t f = 0; f < sizeof(fills) / sizeof(fills[0]); f++) {
        for (size_t size = 1900; size <= 8000; size += 1033) {
            size_t unit = strlen(fills[f]);
            char *msg = calloc(1, size * unit + 1);
            for (size_t i = 0; i < size; i++)
                memcpy(msg + i * unit, fills[f], unit);
            char *out = capture(log_message, msg);
            json_t *obj = one_json_line(out);
            const char *got = json_string_value(json_object_get(obj, "msg"));
            assert_non_null(got);
            assert_true(strlen(got) > 0);
            assert_memory_equal(got, msg, strlen(got)); /* a prefix, cut between characters */
            assert_non_null(json_object_get(obj, "route"));
            json_decref(obj);
            free(out);
            free(msg);
        }
    }
}

static void test_logfmt_line(void **state)
{
    log_set_format(LOG_FORMAT_LOGFMT);
    char *out = capture(log_message, "two words");
    assert_non_null(strstr(out, " level=warn route=orders message_id=m-1 "));
    assert_non_null(strstr(out, " correlation_id=\"c \\\"2\\\" \\\\\" msg=\"two words\"\n"));
    assert_int_equal(strncmp(out, "time=", 5), 0);
    free(out);

    char *big = malloc(6001);
    memset(big, '"', 6000);
    big[6000] = '\0';
    out = capture(log_message, big);
    size_t len = strlen(out);
    assert_true(len <= LOG_LINE_MAX);
    assert_string_equal(out + len - 2, "\"\n"); /* the quoted value is closed */
    assert_null(memchr(out, '\n', len - 1));
    free(out);
    free(big);
}

static void log_process_line(void *arg)
{
    log_info(NULL, "process-wide %d", 7);
}

static void test_process_lines_have_no_route(void **state)
{
    log_set_format(LOG_FORMAT_JSON);
    char *out = capture(log_process_line, NULL);
    json_t *obj = one_json_line(out);
    assert_null(json_object_get(obj, "route"));
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), "process-wide 7");
    json_decref(obj);
    free(out);
}

static void test_parse_format(void **state)
{
    enum log_format f;
    assert_int_equal(log_parse_format("json", &f), 0);
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_int_equal(log_parse_format("logfmt", &f), 0);
    assert_int_equal(f, LOG_FORMAT_LOGFMT);
    assert_int_equal(log_parse_format("xml", &f), -1);
}

/* ---- rate limit ---------------------------------------------------------- */

static size_t count_lines(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void flush_all(void *arg)
{
    log_flush_suppressed(true);
}

/* log_set_rate_limit starts each test from an empty table. */
static void flood(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++)
        log_warn("orders", "connection %d refused", i); /* one call site */
}

static void test_repeated_lines_are_suppressed_then_summarized(void **state)
{
    log_set_format(LOG_FORMAT_LOGFMT);
    log_set_rate_limit(3, 3600 * 1000);
    int n = 1000;
    char *out = capture(flood, &n);
    assert_int_equal(count_lines(out, "\n"), 3);
    assert_non_null(strstr(out, "connection 2 refused"));
    assert_null(strstr(out, "connection 3 refused"));
    free(out);

    out = capture(flush_all, NULL); /* the window has not ended: only `all` writes it */
    assert_int_equal(count_lines(out, "\n"), 1);
    assert_non_null(strstr(out, "level=warn route=orders "));
    assert_non_null(strstr(out, "msg=\"connection 2 refused (997 similar lines suppressed)\""));
    free(out);
    out = capture(flush_all, NULL); /* said once */
    assert_string_equal(out, "");
    free(out);
    log_set_rate_limit(0, 0);
}

static void test_summary_comes_with_the_next_window(void **state)
{
    log_set_format(LOG_FORMAT_JSON);
    log_set_rate_limit(2, 50);
    int n = 5;
    char *out = capture(flood, &n);
    assert_int_equal(count_lines(out, "\n"), 2);
    free(out);
    usleep(80 * 1000);
    n = 1;
    out = capture(flood, &n); /* the summary of the last window, then the line */
    char *second = strchr(out, '\n') + 1;
    assert_int_equal(count_lines(second, "\n"), 1);
    json_t *line = one_json_line(second);
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "connection 0 refused");
    json_decref(line);
    second[0] = '\0';
    line = one_json_line(out);
    assert_string_equal(json_string_value(json_object_get(line, "msg")),
                        "connection 1 refused (3 similar lines suppressed)");
    assert_string_equal(json_string_value(json_object_get(line, "route")), "orders");
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    json_decref(line);
    free(out);

    usleep(80 * 1000); /* a flood that stopped is reported by the periodic flush */
    out = capture(flood, &(int){4});
    free(out);
    usleep(80 * 1000);
    out = capture(flush_all, NULL);
    assert_int_equal(count_lines(out, "suppressed"), 1);
    free(out);
    log_set_rate_limit(0, 0);
}

static void two_sites(void *arg)
{
    for (int i = 0; i < 10; i++) {
        log_warn("orders", "first site %d", i);
        log_warn("invoices", "first site %d", i); /* same site, other route */
        log_error("orders", "second site %d", i);
        log_event_site(LOG_WARN, NULL, "relayed A", "relay: %s", "a");
        log_event_site(LOG_WARN, NULL, "relayed B", "relay: %s", "b"); /* same fmt */
        log_debug("orders", "debug is never limited %d", i);
    }
}

static void test_limits_are_per_site_route_and_level(void **state)
{
    log_set_format(LOG_FORMAT_LOGFMT);
    log_set_level(LOG_DEBUG);
    log_set_rate_limit(4, 3600 * 1000);
    char *out = capture(two_sites, NULL);
    assert_int_equal(count_lines(out, "route=orders msg=\"first site"), 4);
    assert_int_equal(count_lines(out, "route=invoices msg=\"first site"), 4);
    assert_int_equal(count_lines(out, "second site"), 4);
    assert_int_equal(count_lines(out, "relay: a"), 4);
    assert_int_equal(count_lines(out, "relay: b"), 4);
    assert_int_equal(count_lines(out, "debug is never limited"), 10);
    free(out);
    out = capture(flush_all, NULL);
    assert_int_equal(count_lines(out, "(6 similar lines suppressed)"), 5);
    free(out);
    log_set_level(LOG_INFO);
    log_set_rate_limit(0, 0);
}

static void *flood_thread(void *arg)
{
    flood(arg);
    return NULL;
}

static void flood_from_threads(void *arg)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, flood_thread, arg);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    log_flush_suppressed(true);
}

static void test_threads_share_one_budget(void **state)
{
    log_set_format(LOG_FORMAT_LOGFMT);
    log_set_rate_limit(50, 3600 * 1000);
    int n = 5000;
    char *out = capture(flood_from_threads, &n);
    assert_int_equal(count_lines(out, "\n"), 51);
    assert_int_equal(count_lines(out, "(19950 similar lines suppressed)"), 1);
    free(out);
    log_set_rate_limit(0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_fields_and_escapes),
        cmocka_unit_test(test_json_invalid_utf8_is_replaced),
        cmocka_unit_test(test_json_truncation_keeps_the_line_valid),
        cmocka_unit_test(test_logfmt_line),
        cmocka_unit_test(test_process_lines_have_no_route),
        cmocka_unit_test(test_parse_format),
        cmocka_unit_test(test_repeated_lines_are_suppressed_then_summarized),
        cmocka_unit_test(test_summary_comes_with_the_next_window),
        cmocka_unit_test(test_limits_are_per_site_route_and_level),
        cmocka_unit_test(test_threads_share_one_budget),
    };
    log_set_rate_limit(0, 0); /* the tests above log one call site many times */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
