/*
 * Unit tests for adapter/log.c: every line is one valid JSON object (or one
 * logfmt line) whatever the message holds — quotes, control characters,
 * UTF-8, invalid bytes — and however long it is: truncated, never broken.
 * stderr is redirected to a temporary file and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_fields_and_escapes),
        cmocka_unit_test(test_json_invalid_utf8_is_replaced),
        cmocka_unit_test(test_json_truncation_keeps_the_line_valid),
        cmocka_unit_test(test_logfmt_line),
        cmocka_unit_test(test_process_lines_have_no_route),
        cmocka_unit_test(test_parse_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
