/*
 * Unit tests for adapter/broker_url.c: the URLs operators write, and the
 * mistakes they make, each with a message saying what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "broker_url.h"

static void parse_ok(const char *text, struct broker_url *u)
{
    char err[256] = "";
    int rc = broker_url_parse(text, u, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: %s", text, err);
}

static void parse_fails(const char *text, const char *needle)
{
    struct broker_url u;
    char err[256] = "";
    assert_int_equal(broker_url_parse(text, &u, err, sizeof(err)), -1);
    if (strstr(err, needle) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", text, err, needle);
}

static void test_full_url(void **state)
{
    struct broker_url u;
    parse_ok("amqp://crm:p%40ss@rabbit.example:5673/prod", &u);
    assert_false(u.tls);
    assert_string_equal(u.user, "crm");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "rabbit.example");
    assert_int_equal(u.port, 5673);
    assert_string_equal(u.vhost, "prod");
    broker_url_free(&u);
}

static void test_defaults(void **state)
{
    struct broker_url u;
    parse_ok("amqp://localhost", &u);
    assert_string_equal(u.user, "guest");
    assert_string_equal(u.password, "guest");
    assert_int_equal(u.port, 5672);
    assert_string_equal(u.vhost, "/");
    broker_url_free(&u);
    parse_ok("amqps://h/", &u);
    assert_true(u.tls);
    assert_int_equal(u.port, 5671);
    assert_string_equal(u.vhost, "/");
    broker_url_free(&u);
}

static void test_vhost_escapes(void **state)
{
    struct broker_url u;
    parse_ok("amqp://h:1/%2f", &u);
    assert_string_equal(u.vhost, "/");
    broker_url_free(&u);
    parse_ok("amqp://h/%2Fteam%20a", &u);
    assert_string_equal(u.vhost, "/team a");
    broker_url_free(&u);
}

static void test_user_without_password(void **state)
{
    struct broker_url u;
    parse_ok("amqp://svc@h/", &u);
    assert_string_equal(u.user, "svc");
    assert_string_equal(u.password, "guest"); /* password_file usually supplies it */
    broker_url_free(&u);
}

static void test_ipv6(void **state)
{
    struct broker_url u;
    parse_ok("amqp://u:p@[::1]:5999/v", &u);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 5999);
    char *shown = broker_url_display(&u);
    assert_string_equal(shown, "amqp://u@[::1]:5999/v");
    free(shown);
    broker_url_free(&u);
}

static void test_display_hides_password(void **state)
{
    struct broker_url u;
    parse_ok("amqps://crm:secret@h:5671/%2f", &u);
    char *shown = broker_url_display(&u);
    assert_null(strstr(shown, "secret"));
    assert_string_equal(shown, "amqps://crm@h:5671/%2f");
    free(shown);
    broker_url_free(&u);
}

static void test_errors(void **state)
{
    parse_fails("http://h/", "must start with amqp:// or amqps://");
    parse_fails("amqp://", "missing host");
    parse_fails("amqp://h:0/", "port must be a number from 1 to 65535");
    parse_fails("amqp://h:70000/", "port must be a number");
    parse_fails("amqp://h:abc/", "port must be a number");
    parse_fails("amqp://h/a/b", "vhost must be one path segment");
    parse_fails("amqp://h/%zz", "bad %-escape in vhost");
    parse_fails("amqp://u:%g@h/", "bad %-escape in user or password");
    parse_fails("amqp://h/?heartbeat=5", "query parameters are not supported");
    parse_fails("amqp://[::1/", "unterminated [IPv6] host");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_url),      cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_vhost_escapes), cmocka_unit_test(test_user_without_password),
        cmocka_unit_test(test_ipv6),          cmocka_unit_test(test_display_hides_password),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
