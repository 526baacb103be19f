/*
 * test_poll_cursor.c — unit tests for adapter/kinds/poll_cursor.c: the cursor
 * file's round trip, what an operator may leave in it, and the state_dir
 * checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kinds/poll_cursor.h"
#include "util.h"

static char *tmp_dir(void)
{
    char *d = strdup("/tmp/test_poll_cursor.XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_round_trip(void **state)
{
    char *dir = tmp_dir();
    char *path = xasprintf("%s/tickets.cursor", dir);
    char err[512] = "";
    bool missing = false;
    assert_null(poll_cursor_load(path, &missing, err, sizeof(err)));
    assert_true(missing);

    assert_int_equal(poll_cursor_save(dir, path, "2024-01-01T00:00:02Z", err, sizeof(err)), 0);
    char *got = poll_cursor_load(path, &missing, err, sizeof(err));
    assert_false(missing);
    assert_string_equal(got, "2024-01-01T00:00:02Z");
    free(got);

    assert_int_equal(poll_cursor_save(dir, path, "", err, sizeof(err)), 0); /* empty is a value */
    got = poll_cursor_load(path, &missing, err, sizeof(err));
    assert_string_equal(got, "");
    free(got);

    char *tmp = xasprintf("%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* nothing left behind */
    unlink(path);
    rmdir(dir);
    free(tmp);
    free(path);
    free(dir);
}

static void test_operator_edits(void **state)
{
    char *dir = tmp_dir();
    char *path = xasprintf("%s/r.cursor", dir);
    char err[512] = "";
    bool missing;
    write_file(path, "abc\n"); /* an editor adds a newline: it is not part of the cursor */
    char *got = poll_cursor_load(path, &missing, err, sizeof(err));
    assert_string_equal(got, "abc");
    free(got);

    char *big = xmalloc(POLL_CURSOR_MAX + 10);
    memset(big, 'x', POLL_CURSOR_MAX + 9);
    big[POLL_CURSOR_MAX + 9] = '\0';
    write_file(path, big);
    assert_null(poll_cursor_load(path, &missing, err, sizeof(err)));
    assert_false(missing);
    assert_non_null(strstr(err, "is over"));
    free(big);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

static void test_save_reports_where(void **state)
{
    char err[512] = "";
    assert_int_equal(
        poll_cursor_save("/nonexistent-dir", "/nonexistent-dir/x.cursor", "v", err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "creating \"/nonexistent-dir/x.cursor.tmp\" failed"));
    assert_non_null(strstr(err, "state_dir \"/nonexistent-dir\""));
}

static void test_state_dir(void **state)
{
    char *dir = tmp_dir();
    char *nested = xasprintf("%s/a/b/c", dir);
    assert_null(poll_cursor_dir_problem(dir));
    assert_null(poll_cursor_dir_problem(nested)); /* creatable */
    assert_int_equal(poll_cursor_dir_create(nested), 0);
    struct stat st;
    assert_int_equal(stat(nested, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(poll_cursor_dir_create(nested), 0); /* exists: fine */

    char *file = xasprintf("%s/file", dir);
    write_file(file, "x");
    char *below = xasprintf("%s/sub", file);
    char *problem = poll_cursor_dir_problem(below);
    assert_non_null(problem);
    assert_non_null(strstr(problem, "is not a directory"));
    free(problem);
    assert_int_equal(poll_cursor_dir_create(below), -1);

    unlink(file);
    char *b = xasprintf("%s/a/b", dir), *a = xasprintf("%s/a", dir);
    rmdir(nested);
    rmdir(b);
    rmdir(a);
    rmdir(dir);
    free(a);
    free(b);
    free(below);
    free(file);
    free(nested);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_operator_edits),
        cmocka_unit_test(test_save_reports_where),
        cmocka_unit_test(test_state_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
