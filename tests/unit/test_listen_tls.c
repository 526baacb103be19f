/*
 * Unit tests for adapter/listen_tls.c: when two listeners' tls count as the
 * same (none and none, the same files), and check's refusals that need no
 * real certificate (a half-written block, a cert file that is not PEM). The
 * certificates themselves are tested end to end (tests/e2e/test_http_in_tls.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listen_tls.h"

static void test_same(void **state)
{
    struct listen_tls_config none = {0}, a = {.line = 3, .cert = "/x.crt", .key.path = "/x.key"};
    struct listen_tls_config b = a, c = a;
    c.client_ca = "/ca.crt";
    assert_false(listen_tls_configured(&none));
    assert_true(listen_tls_configured(&a));
    assert_true(listen_tls_same(&none, &none));
    assert_true(listen_tls_same(&a, &b));
    assert_false(listen_tls_same(&a, &none));
    assert_false(listen_tls_same(&none, &a));
    assert_false(listen_tls_same(&a, &c));
    struct listen_tls_config empty = {.line = 7}; /* tls = { }; is written, so not "none" */
    assert_false(listen_tls_same(&empty, &none));
}

static void test_half_written(void **state)
{
    struct listen_tls_config t = {.line = 9, .cert = "/x.crt"};
    struct config_report rep = {0};
    listen_tls_validate(&t, "admin", &rep);
    assert_int_equal(rep.n, 1);
    assert_int_equal(rep.errors[0].line, 9);
    assert_non_null(strstr(rep.errors[0].msg, "tls.key is missing"));
    config_report_free(&rep);
}

static void test_not_pem(void **state)
{
    char path[] = "/tmp/test_listen_tls_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a certificate\n", 18), 18);
    close(fd);
    struct listen_tls_config t = {
        .line = 4, .cert = path, .key = {.path = path, .value = "k", .len = 1, .line = 4}};
    struct config_report rep = {0};
    listen_tls_validate(&t, "inbound route \"a\"", &rep);
    unlink(path);
    assert_int_equal(rep.n, 1);
    assert_non_null(strstr(rep.errors[0].msg, "holds no PEM certificate"));
    config_report_free(&rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same),
        cmocka_unit_test(test_half_written),
        cmocka_unit_test(test_not_pem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
