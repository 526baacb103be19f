/*
 * Unit tests for transforms/jq_transform.c: results, jq's own error
 * messages, the exactly-one-result rule, and use from several threads at
 * once (each borrowing its own compiled state). Run under ASan/valgrind to
 * check jv ownership.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jq_transform.h"
#include "test_helpers.h"

static char *apply(const char *program, const char *input, char *err, size_t errlen)
{
    char cerr[512];
    struct transform *t = transform_compile(program, "test.jq", cerr, sizeof(cerr));
    if (t == NULL)
        fail_msg("compile: %s", cerr);
    size_t len;
    char *out = transform_apply(t, input, strlen(input), &len, err, errlen);
    if (out)
        assert_int_equal(len, strlen(out));
    transform_free(t);
    return out;
}

static void test_reshapes(void **state)
{
    char err[512];
    char *out = apply(
        "{id: .order.id, total: (.lines | map(.qty * .price) | add)}",
        "{\"order\":{\"id\":\"A1\"},\"lines\":[{\"qty\":2,\"price\":3},{\"qty\":1,\"price\":4}]}",
        err, sizeof(err));
    assert_non_null(out);
    assert_string_equal(out, "{\"id\":\"A1\",\"total\":10}");
    free(out);
}

static void test_keeps_big_numbers_as_text_when_strings(void **state)
{
    char err[512];
    char *out = apply(".amount", "{\"amount\":\"12345678901234567890.01\"}", err, sizeof(err));
    assert_string_equal(out, "\"12345678901234567890.01\"");
    free(out);
}

static void test_compile_error_is_jqs(void **state)
{
    char err[512];
    assert_null(transform_compile(".a | | .b", "x.jq", err, sizeof(err)));
    assert_non_null(strstr(err, "x.jq"));
    assert_non_null(strstr(err, "syntax error"));
}

static void test_runtime_error_is_jqs(void **state)
{
    char err[512] = "";
    assert_null(apply(".a + 1", "{\"a\":\"text\"}", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot be added"));
}

static void test_error_builtin(void **state)
{
    char err[512] = "";
    assert_null(apply("if .ok then . else error(\"order rejected: no ok\") end", "{\"ok\":false}",
                      err, sizeof(err)));
    assert_non_null(strstr(err, "order rejected: no ok"));
}

static void test_input_not_json(void **state)
{
    char err[512] = "";
    assert_null(apply(".", "{\"a\":", err, sizeof(err)));
    assert_non_null(strstr(err, "input is not valid JSON"));
}

static void test_zero_or_many_results_refused(void **state)
{
    char err[512] = "";
    assert_null(apply("empty", "{}", err, sizeof(err)));
    assert_non_null(strstr(err, "no result"));
    assert_null(apply(".[]", "[1,2]", err, sizeof(err)));
    assert_non_null(strstr(err, "more than one result"));
}

static void test_load_from_file(void **state)
{
    char *dir = test_tmpdir();
    char *path = test_write(dir, "t.jq", "# comment\n{name: .n}\n", 0644);
    char err[512];
    struct transform *t = transform_load(path, err, sizeof(err));
    assert_non_null(t);
    size_t len;
    char *out = transform_apply(t, "{\"n\":\"x\"}", 9, &len, err, sizeof(err));
    assert_string_equal(out, "{\"name\":\"x\"}");
    free(out);
    transform_free(t);
    assert_null(transform_load("/nonexistent.jq", err, sizeof(err)));
    free(path);
    test_rmtree(dir);
    free(dir);
}

struct worker {
    struct transform *t;
    int id;
    int ok;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 300; i++) {
        char in[64], want[64], err[256];
        snprintf(in, sizeof(in), "{\"v\":%d}", w->id * 1000 + i);
        snprintf(want, sizeof(want), "{\"w\":%d}", (w->id * 1000 + i) * 2);
        size_t len;
        char *out = transform_apply(w->t, in, strlen(in), &len, err, sizeof(err));
        if (out && strcmp(out, want) == 0)
            w->ok++;
        free(out);
    }
    return NULL;
}

static void test_threads_share_a_transform(void **state)
{
    char err[256];
    struct transform *t = transform_compile("{w: (.v * 2)}", "t", err, sizeof(err));
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.t = t, .id = i};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].ok, 300);
    }
    transform_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reshapes),
        cmocka_unit_test(test_keeps_big_numbers_as_text_when_strings),
        cmocka_unit_test(test_compile_error_is_jqs),
        cmocka_unit_test(test_runtime_error_is_jqs),
        cmocka_unit_test(test_error_builtin),
        cmocka_unit_test(test_input_not_json),
        cmocka_unit_test(test_zero_or_many_results_refused),
        cmocka_unit_test(test_load_from_file),
        cmocka_unit_test(test_threads_share_a_transform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
