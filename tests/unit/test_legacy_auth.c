/*
 * test_legacy_auth.c — unit tests for adapter/legacy_auth.c: the outbound
 * `auth = { … }` block as config_load validates it (file:line errors), the
 * deprecated poll key, the header each static method sends, and SIGHUP
 * re-reading secrets nested in auth's groups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "legacy_auth.h"
#include "route.h"
#include "test_helpers.h"

static char *dir;

#define HEAD "name = \"crm\";\nbroker = { url = \"amqp://guest:guest@127.0.0.1:5672/%%2f\"; };\n"

struct loaded {
    struct sidecar_config cfg;
    struct config_report rep;
    int rc;
};

/* Loads an outbound http route (line 3) whose body is `route` (may span lines). */
static void load_out(struct loaded *l, const char *route)
{
    char text[4096];
    snprintf(text, sizeof(text),
             HEAD
             "outbound = ( { name = \"erp\"; kind = \"http\"; url = \"http://127.0.0.1:9/x\";\n"
             "%s } );\n",
             route);
    char *path = test_write(dir, "test.conf", text, 0644);
    memset(l, 0, sizeof(*l));
    l->rc = config_load(path, &l->cfg, &l->rep);
    free(path);
}

static void loaded_free(struct loaded *l)
{
    config_report_free(&l->rep);
    config_free(&l->cfg);
}

static void assert_error(const struct loaded *l, int line, const char *needle)
{
    for (size_t i = 0; i < l->rep.n; i++)
        if (l->rep.errors[i].line == line && strstr(l->rep.errors[i].msg, needle))
            return;
    for (size_t i = 0; i < l->rep.n; i++)
        fprintf(stderr, "  got %d: %s\n", l->rep.errors[i].line, l->rep.errors[i].msg);
    fail_msg("no error on line %d containing \"%s\"", line, needle);
}

static const struct legacy_auth *auth_of(const struct loaded *l)
{
    const struct route *r = l->cfg.routes[0];
    return r->kind->legacy_auth(r);
}

static void assert_loads(struct loaded *l)
{
    for (size_t i = 0; i < l->rep.n; i++)
        fprintf(stderr, "  got %d: %s\n", l->rep.errors[i].line, l->rep.errors[i].msg);
    assert_int_equal(l->rc, 0);
}

static char *route_text(const char *fmt, const char *a, const char *b)
{
    static char text[2048];
    snprintf(text, sizeof(text), fmt, a, b);
    return text;
}

static void test_each_method_resolves_and_builds_its_header(void **state)
{
    char *pw = test_write(dir, "pw", "pa:ss\n", 0600);
    char *key = test_write(dir, "key", "k-123\n", 0600);
    struct loaded l;
    const char *name, *problem;

    load_out(&l, route_text("auth = { basic = { user = \"erp\"; password_file = \"%s\"; }; };%s",
                            pw, ""));
    assert_loads(&l);
    assert_int_equal(auth_of(&l)->method, LEGACY_AUTH_BASIC);
    char *v = legacy_auth_header(auth_of(&l), &name, &problem);
    assert_string_equal(name, "Authorization");
    assert_string_equal(v, "Basic ZXJwOnBhOnNz"); /* base64("erp:pa:ss") */
    free(v);
    loaded_free(&l);

    load_out(&l, route_text("auth = { bearer_token_file = \"%s\"; };%s", key, ""));
    assert_loads(&l);
    v = legacy_auth_header(auth_of(&l), &name, &problem);
    assert_string_equal(v, "Bearer k-123");
    free(v);
    loaded_free(&l);

    load_out(&l, route_text("auth = { header = \"X-Api-Key\"; value_file = \"%s\"; };%s", key, ""));
    assert_loads(&l);
    v = legacy_auth_header(auth_of(&l), &name, &problem);
    assert_string_equal(name, "X-Api-Key");
    assert_string_equal(v, "k-123");
    free(v);
    loaded_free(&l);

    load_out(&l, route_text("auth = { oauth2 = { token_url = \"https://idp/t\"; client_id = \"c\";"
                            " client_secret_file = \"%s\"; client_auth = \"post\"; }; };%s",
                            key, ""));
    assert_loads(&l);
    assert_int_equal(auth_of(&l)->method, LEGACY_AUTH_OAUTH2);
    assert_int_equal(auth_of(&l)->oauth2.client_auth, OAUTH2_CLIENT_AUTH_POST);
    assert_float_equal(auth_of(&l)->oauth2.timeout, 10, 1e-9);
    assert_null(legacy_auth_header(auth_of(&l), &name, &problem)); /* the token is fetched */
    loaded_free(&l);

    load_out(&l, "");
    assert_loads(&l);
    assert_int_equal(auth_of(&l)->method, LEGACY_AUTH_NONE);
    loaded_free(&l);
    free(pw);
    free(key);
}

static void test_incomplete_or_conflicting_blocks(void **state)
{
    char *key = test_write(dir, "key", "k\n", 0600);
    struct loaded l;
    load_out(&l, route_text("auth = { bearer_token_file = \"%s\"; header = \"X-K\"; "
                            "value_file = \"%s\"; };",
                            key, key));
    assert_int_equal(l.rc, -1);
    assert_error(&l, 3, "auth sets 2 methods");
    loaded_free(&l);

    load_out(&l, "auth = { basic = { user = \"erp\"; }; };");
    assert_error(&l, 3, "basic.user and basic.password_file go together");
    loaded_free(&l);

    load_out(&l, route_text("auth = { header = \"X Api\"; value_file = \"%s\"; };%s", key, ""));
    assert_error(&l, 3, "auth.header \"X Api\" is not a valid header name");
    loaded_free(&l);

    load_out(&l, "auth = { oauth2 = { token_url = \"https://idp/t\"; }; };");
    assert_error(&l, 3, "missing: client_id client_secret_file");
    loaded_free(&l);

    load_out(&l, route_text("auth = { oauth2 = { token_url = \"http://idp.example/t\"; "
                            "client_id = \"c\"; client_secret_file = \"%s\"; }; };%s",
                            key, ""));
    assert_error(&l, 3, "is not https://");
    loaded_free(&l);

    load_out(&l, route_text("auth = { oauth2 = { token_url = \"http://127.0.0.1:8/t\"; "
                            "client_id = \"c\"; client_secret_file = \"%s\"; }; };%s",
                            key, ""));
    assert_loads(&l); /* a token endpoint on this host may be plain http */
    loaded_free(&l);

    load_out(&l, route_text("auth = { oauth2 = { client_auth = \"jwt\"; }; };%s%s", "", ""));
    assert_error(&l, 4, "client_auth = \"jwt\" is not one of: basic|post");
    loaded_free(&l);

    load_out(&l, route_text("auth = { bearer_token_file = \"%s\"; };\n"
                            "headers = { authorization = \"Bearer inline\"; };%s",
                            key, ""));
    assert_error(&l, 3, "headers.authorization would replace what auth sends");
    loaded_free(&l);

    load_out(&l, "auth = { token_file = \"x\"; };");
    assert_error(&l, 4, "unknown key \"token_file\"");
    loaded_free(&l);
    free(key);
}

static void test_secret_files_are_checked(void **state)
{
    char *loose = test_write(dir, "loose", "k\n", 0644);
    char *two = test_write(dir, "two", "line1\nline2\n", 0600);
    struct loaded l;
    load_out(&l, route_text("\nauth = { bearer_token_file = \"%s\"; };%s", loose, ""));
    assert_error(&l, 5, "is readable by group or others (mode 0644); run: chmod 600");
    loaded_free(&l);

    load_out(&l, route_text("auth = {\n header = \"X-K\";\n value_file = \"%s\"; };%s", two, ""));
    assert_error(&l, 6, "holds a control character");
    loaded_free(&l);

    load_out(&l, "auth = { basic = { user = \"u\"; password_file = \"/nonexistent/pw\"; }; };");
    assert_error(&l, 4, "cannot read secret file \"/nonexistent/pw\"");
    loaded_free(&l);
    free(loose);
    free(two);
}

static void test_sighup_rereads_nested_secrets(void **state)
{
    char *pw = test_write(dir, "pw2", "one\n", 0600);
    struct loaded l;
    const char *name, *problem;
    load_out(
        &l, route_text("auth = { basic = { user = \"u\"; password_file = \"%s\"; }; };%s", pw, ""));
    assert_loads(&l);
    free(test_write(dir, "pw2", "two\n", 0600));
    struct config_report rep = {.file = "test.conf"};
    assert_int_equal(config_reload_secrets(&l.cfg, &rep), 0);
    char *v = legacy_auth_header(auth_of(&l), &name, &problem);
    assert_string_equal(v, "Basic dTp0d28="); /* base64("u:two") */
    free(v);
    config_report_free(&rep);
    loaded_free(&l);
    free(pw);
}

static void test_poll_bearer_token_file_is_deprecated_but_works(void **state)
{
    char *tok = test_write(dir, "tok", "t-1\n", 0600);
    char text[2048];
    snprintf(text, sizeof(text),
             HEAD "state_dir = \"%s\";\ninbound = ( { name = \"feed\"; kind = \"poll\";\n"
                  "url = \"http://127.0.0.1:9/x\"; id = \".id\"; exchange = \"x\";\n"
                  "bearer_token_file = \"%s\"; } );\n",
             dir, tok);
    char *path = test_write(dir, "poll.conf", text, 0644);
    struct loaded l = {0};
    l.rc = config_load(path, &l.cfg, &l.rep);
    assert_loads(&l);
    assert_int_equal(l.rep.n_notes, 1);
    assert_int_equal(l.rep.notes[0].line, 6);
    assert_non_null(strstr(l.rep.notes[0].msg, "bearer_token_file is deprecated; write auth = {"));
    const char *name, *problem;
    char *v = legacy_auth_header(auth_of(&l), &name, &problem);
    assert_string_equal(v, "Bearer t-1");
    free(v);
    /* moved, so SIGHUP still re-reads it */
    free(test_write(dir, "tok", "t-2\n", 0600));
    struct config_report rep = {0};
    assert_int_equal(config_reload_secrets(&l.cfg, &rep), 0);
    v = legacy_auth_header(auth_of(&l), &name, &problem);
    assert_string_equal(v, "Bearer t-2");
    free(v);
    config_report_free(&rep);
    loaded_free(&l);

    snprintf(text, sizeof(text),
             HEAD "state_dir = \"%s\";\ninbound = ( { name = \"feed\"; kind = \"poll\";\n"
                  "url = \"http://127.0.0.1:9/x\"; id = \".id\"; exchange = \"x\";\n"
                  "bearer_token_file = \"%s\"; auth = { bearer_token_file = \"%s\"; }; } );\n",
             dir, tok, tok);
    free(test_write(dir, "poll.conf", text, 0644));
    l = (struct loaded){0};
    l.rc = config_load(path, &l.cfg, &l.rep);
    assert_error(&l, 6, "bearer_token_file and auth.bearer_token_file are both set");
    loaded_free(&l);
    free(path);
    free(tok);
}

static void test_base64(void **state)
{
    char *b = legacy_auth_base64("", 0);
    assert_string_equal(b, "");
    free(b);
    b = legacy_auth_base64("a", 1);
    assert_string_equal(b, "YQ==");
    free(b);
    b = legacy_auth_base64("sidecar:s%3Acret", 16);
    assert_string_equal(b, "c2lkZWNhcjpzJTNBY3JldA==");
    free(b);
}

static int setup(void **state)
{
    dir = test_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    test_rmtree(dir);
    free(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_method_resolves_and_builds_its_header),
        cmocka_unit_test(test_incomplete_or_conflicting_blocks),
        cmocka_unit_test(test_secret_files_are_checked),
        cmocka_unit_test(test_sighup_rereads_nested_secrets),
        cmocka_unit_test(test_poll_bearer_token_file_is_deprecated_but_works),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
