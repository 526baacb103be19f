/*
 * Unit tests for the trace module (adapter/otel.c) without a collector: the
 * W3C traceparent parser (valid, invalid, future versions), the span a
 * traceparent starts (its trace and parent kept, a new span id, the sampled
 * flag obeyed), traces off without an endpoint, and the OTLP/JSON encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "otel.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void test_traceparent_parse(void **state)
{
    unsigned char t[16], p[8];
    bool sampled = false;
    assert_true(otel_traceparent_parse(TP, t, p, &sampled));
    assert_true(sampled);
    assert_int_equal(t[0], 0x4b);
    assert_int_equal(t[15], 0x36);
    assert_int_equal(p[0], 0x00);
    assert_int_equal(p[7], 0xb7);
    assert_true(otel_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", t,
                                       p, &sampled));
    assert_false(sampled);
    /* a later version may append fields */
    assert_true(otel_traceparent_parse(
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", t, p, &sampled));
    static const char *const bad[] = {
        NULL,
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 has no more */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(otel_traceparent_parse(bad[i], t, p, &sampled));
}

static void test_off_without_endpoint(void **state)
{
    struct otel_metrics m = {0};
    struct otel_config cfg = {.sample_ratio = 1};
    assert_null(otel_new(&cfg, "crm", &m));
    struct otel_span s;
    otel_begin(NULL, TP, &s);
    assert_false(s.sampled);
    otel_end(NULL, &s, "x", OTEL_SERVER, "r", NULL, "ok", true); /* nothing, no crash */
}

static void test_begin_follows_the_caller(void **state)
{
    struct otel_metrics m = {0};
    /* Nothing listens on port 1: the exporter's one try fails at once at free. */
    struct otel_config cfg = {.endpoint = "http://127.0.0.1:1", .sample_ratio = 0};
    struct otel *o = otel_new(&cfg, "crm", &m);
    assert_non_null(o);
    struct otel_span s;
    otel_begin(o, TP, &s);
    assert_true(s.sampled); /* the caller sampled it: ratio 0 does not overrule */
    assert_true(s.has_parent);
    assert_int_equal(s.trace_id[0], 0x4b);
    assert_int_equal(s.parent_id[7], 0xb7);
    assert_true(s.start_ns > 0);
    otel_end(o, &s, "publish r", OTEL_SERVER, "r", "m-1", "confirmed", true);
    otel_begin(o, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &s);
    assert_false(s.sampled);
    otel_begin(o, NULL, &s); /* a new trace at ratio 0: not sampled */
    assert_false(s.sampled);
    assert_false(s.has_parent);
    otel_free(o);
    assert_int_equal(atomic_load(&m.dropped), 1); /* the one span, its export failed */
    assert_int_equal(atomic_load(&m.exported), 0);
}

static void test_encode(void **state)
{
    struct otel_record r[2] = {0};
    assert_true(
        otel_traceparent_parse(TP, r[0].span.trace_id, r[0].span.parent_id, &r[0].span.sampled));
    r[0].span.has_parent = true;
    memset(r[0].span.span_id, 0xab, 8);
    r[0].span.start_ns = 1700000000123456789LL;
    r[0].end_ns = 1700000000223456789LL;
    r[0].kind = OTEL_SERVER;
    r[0].ok = true;
    strcpy(r[0].name, "publish orders");
    strcpy(r[0].route, "orders");
    strcpy(r[0].message_id, "m-1");
    strcpy(r[0].outcome, "confirmed");
    r[1] = r[0];
    r[1].span.has_parent = false;
    r[1].ok = false;
    r[1].message_id[0] = '\0';
    strcpy(r[1].outcome, "nacked");
    char *text = otel_encode("crm", r, 2);
    json_error_t e;
    json_t *doc = json_loads(text, 0, &e);
    assert_non_null(doc);
    json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
    json_t *res = json_array_get(json_object_get(json_object_get(rs, "resource"), "attributes"), 0);
    assert_string_equal(json_string_value(json_object_get(res, "key")), "service.name");
    json_t *spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 2);
    json_t *s0 = json_array_get(spans, 0), *s1 = json_array_get(spans, 1);
    assert_string_equal(json_string_value(json_object_get(s0, "traceId")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(s0, "spanId")), "abababababababab");
    assert_string_equal(json_string_value(json_object_get(s0, "parentSpanId")), "00f067aa0ba902b7");
    assert_string_equal(json_string_value(json_object_get(s0, "startTimeUnixNano")),
                        "1700000000123456789");
    assert_int_equal(json_integer_value(json_object_get(s0, "kind")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s0, "status"), "code")), 1);
    assert_int_equal(json_array_size(json_object_get(s0, "attributes")), 3);
    assert_null(json_object_get(s1, "parentSpanId"));
    assert_int_equal(json_array_size(json_object_get(s1, "attributes")), 2); /* no message id */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s1, "status"), "code")), 2);
    json_decref(doc);
    free(text);
}

static void test_encode_survives_bytes_that_are_not_utf8(void **state)
{
    struct otel_record r = {.kind = OTEL_CONSUMER};
    memset(r.span.trace_id, 1, 16);
    memset(r.span.span_id, 2, 8);
    strcpy(r.name, "deliver b");
    strcpy(r.route, "b");
    strcpy(r.message_id, "\xff\xfe");
    strcpy(r.outcome, "delivered");
    char *text = otel_encode("crm", &r, 1);
    assert_non_null(text);
    assert_non_null(strstr(text, "(not UTF-8)"));
    free(text);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_parse),
        cmocka_unit_test(test_off_without_endpoint),
        cmocka_unit_test(test_begin_follows_the_caller),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_encode_survives_bytes_that_are_not_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
