/*
 * Unit tests for adapter/config.c: every class of config error is refused
 * with the right line and a message that names the problem, and a valid
 * file yields the documented defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "route.h"
#include "test_helpers.h"

static char *dir;

#define BROKER "broker = { url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"; };\n"
#define ROUTE_HTTP                                                                                 \
    "  { name = \"orders\"; kind = \"http\"; listen = \"127.0.0.1:18081\"; path = \"/orders\";\n"  \
    "    exchange = \"crm.events\"; routing_key = \"order.created\"; }\n"

struct loaded {
    struct sidecar_config cfg;
    struct config_report rep;
    int rc;
};

static void load_text(struct loaded *l, const char *text)
{
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

/* Asserts some error is on `line` and contains `needle`. */
static void assert_error(const struct loaded *l, int line, const char *needle)
{
    for (size_t i = 0; i < l->rep.n; i++)
        if (l->rep.errors[i].line == line && strstr(l->rep.errors[i].msg, needle))
            return;
    for (size_t i = 0; i < l->rep.n; i++)
        fprintf(stderr, "  got %d: %s\n", l->rep.errors[i].line, l->rep.errors[i].msg);
    fail_msg("no error on line %d containing \"%s\"", line, needle);
}

static void test_valid_config_fills_defaults(void **state)
{
    struct loaded l;
    load_text(&l,
              "name = \"crm\";\n" BROKER "inbound = (\n" ROUTE_HTTP ");\n"
              "outbound = ( { name = \"customers\"; kind = \"http\"; url = \"http://x/\"; } );\n");
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.rep.n, 0);
    assert_string_equal(l.cfg.name, "crm");
    assert_int_equal(l.cfg.broker.heartbeat, 30);
    assert_int_equal(l.cfg.broker.urls.n, 1);
    assert_true(l.cfg.broker.tls.verify);
    assert_string_equal(l.cfg.log_format, "logfmt");
    assert_true(l.cfg.admin.queue_interval == 15);
    struct route *in = l.cfg.routes[0];
    assert_string_equal(in->dlx, "crm.dlx");
    assert_string_equal(in->dlq, "crm.orders.dlq");
    assert_string_equal(in->dlq_key, "crm.orders");
    if (l.cfg.n_routes > 1) {
        struct route *out = l.cfg.routes[1];
        assert_string_equal(out->queue, "crm.customers");
        assert_string_equal(out->dlq, "crm.customers.dlq");
        assert_int_equal(out->concurrency, 8);
        assert_int_equal(out->retry_delays.n, 4);
        assert_true(out->retry_delays.v[3] == 120);
        assert_string_equal(out->queue_type, "classic");
    }
    loaded_free(&l);
}

static void test_syntax_error_has_line(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n  { name = ; kind = \"http\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 4, "syntax error");
    loaded_free(&l);
}

/* Syntax errors name the likely cause, read from the text near the line. */
static void test_syntax_error_names_likely_cause(void **state)
{
    struct loaded l;
    /* libconfig 1.5 takes a missing ";" after a setting: not an error to explain. */
    load_text(&l, "name = \"crm\"\n" BROKER "inbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, 0);
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\n" BROKER "outbound = (\n"
                  "  { name = \"c\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    retry = { delays = [1 5]; }; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5, "likely a missing \",\" between elements of an array [ … ]");
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n" ROUTE_HTTP ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 6,
                 "or between routes in a list ( … ), or a missing value after \"=\", on or before "
                 "this line");
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; path = \"/o\";\n"
                  "    exchange = \"e\";\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 6, "likely unbalanced { } or ( ): 2 \"{\" but 1 \"}\" in the file");
    loaded_free(&l);
    load_text(&l, "name = \"crm;\n" BROKER "inbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, -1);
    assert_true(l.rep.n == 1 && strstr(l.rep.errors[0].msg, "likely an unbalanced quote"));
    loaded_free(&l);
}

/* admin.queue_interval: seconds, 1 to 3600, errors at their line. */
static void test_queue_interval(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "admin = { listen = \"127.0.0.1:9101\";\n"
                  "  queue_interval = 0.5; };\ninbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 4, "queue_interval = 0.5 is out of range; use a value from 1 to 3600");
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\n" BROKER "admin = { queue_interval = \"15s\"; };\n"
                  "inbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 3, "queue_interval must be");
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\n" BROKER "admin = { queue_interval = 60; };\n"
                  "inbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, 0);
    assert_true(l.cfg.admin.queue_interval == 60);
    loaded_free(&l);
}

/* A route on the admin's listener cannot hide the admin's paths, the status page's included. */
static void test_routes_keep_off_the_admin_paths(void **state)
{
    static const char *const paths[] = {"/", "/status.json", "/metrics", "/readyz", "/healthz"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "name = \"crm\";\n%sadmin = { listen = \"127.0.0.1:9101\"; };\n"
                 "inbound = (\n  { name = \"r\"; kind = \"http\"; listen = \"127.0.0.1:9101\";\n"
                 "    path = \"%s\"; exchange = \"x\"; routing_key = \"k\"; }\n);\n",
                 BROKER, paths[i]); /* BROKER holds a %: an argument, not the format */
        struct loaded l;
        load_text(&l, text);
        assert_int_equal(l.rc, -1);
        char want[128];
        snprintf(want, sizeof(want), "%s is the admin endpoint's path on 127.0.0.1:9101", paths[i]);
        assert_error(&l, 5, want);
        loaded_free(&l);
    }
}

/* A number written as a string is answered with how to write it. */
static void test_numbers_given_strings(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "outbound = (\n"
                  "  { name = \"c\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    retry = { delays = [\"1s\", \"5s\"]; }; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5,
                 "delays must be numbers of seconds without quotes or units, e.g. "
                 "delays = [1, 5, 30]");
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\nbroker = { url = \"amqp://h/\";\n  heartbeat = \"30\"; };\n"
                  "drain_timeout = \"2.5\";\ninbound = (\n" ROUTE_HTTP ");\n");
    assert_error(&l, 3,
                 "heartbeat must be an integer, not a string; drop the quotes: heartbeat = 30");
    assert_error(&l, 4, "drop the quotes: drain_timeout = 2.5");
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\nbroker = { url = \"amqp://h/\";\n  heartbeat = \"30s\"; };\n"
                  "inbound = (\n" ROUTE_HTTP ");\n");
    assert_error(&l, 3,
                 "heartbeat must be an integer, not a string; write a plain number without "
                 "quotes or units");
    loaded_free(&l);
}

/* Near misses that edit distance cannot see: synonyms and longer spellings. */
static void test_unknown_key_synonyms(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "outbound = (\n"
                  "  { name = \"c\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    retries = { delays = [1]; };\n"
                  "    circuit_breaker = { };\n"
                  "    dead_letter = \"x\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5, "unknown key \"retries\" (did you mean \"retry\"?)");
    assert_error(&l, 6, "unknown key \"circuit_breaker\" (did you mean \"circuit\"?)");
    assert_error(&l, 7, "unknown key \"dead_letter\"");
    for (size_t i = 0; i < l.rep.n; i++)
        if (strstr(l.rep.errors[i].msg, "dead_letter"))
            assert_null(strstr(l.rep.errors[i].msg, "did you mean"));
    loaded_free(&l);
}

/* A group given the wrong type is one error, not one per missing child. */
static void test_wrong_type_group_no_follow_on(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\nbroker = \"amqp://h/\";\ninbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 2, "broker must be a group");
    assert_int_equal(l.rep.n, 1);
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\n" BROKER "outbound = (\n"
                  "  { name = \"c\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    retry = \"5s\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5, "retry must be a group");
    assert_int_equal(l.rep.n, 1);
    loaded_free(&l);
}

static void test_mixed_array_hint(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "outbound = (\n"
                  "  { name = \"c\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    retry = { delays = [0.5, 1, 3]; }; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5, "[0.5, 1.0, 3.0]");
    loaded_free(&l);
}

static void test_missing_file(void **state)
{
    struct loaded l;
    memset(&l, 0, sizeof(l));
    l.rc = config_load("/nonexistent/dir/x.conf", &l.cfg, &l.rep);
    assert_int_equal(l.rc, -1);
    assert_int_equal(l.rep.errors[0].line, 0);
    assert_non_null(strstr(l.rep.errors[0].msg, "No such file"));
    loaded_free(&l);
}

static void test_unknown_key_suggests(void **state)
{
    struct loaded l;
    load_text(&l,
              "name = \"crm\";\n" BROKER "inbound = (\n"
              "  { name = \"orders\"; kind = \"http\"; lisen = \"127.0.0.1:1\"; path = \"/o\";\n"
              "    exchange = \"e\"; }\n);\nlog_formt = \"json\";\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 4, "unknown key \"lisen\" (did you mean \"listen\"?)");
    assert_error(&l, 7, "unknown key \"log_formt\" (did you mean \"log_format\"?)");
    loaded_free(&l);
}

static void test_wrong_type(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\nbroker = { url = \"amqp://h/\";\n  heartbeat = \"30\"; };\n"
                  "inbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 3, "heartbeat must be an integer, not a string");
    loaded_free(&l);
}

static void test_missing_required(void **state)
{
    struct loaded l;
    load_text(&l, BROKER "inbound = (\n  { name = \"orders\"; kind = \"http\";\n"
                         "    path = \"/o\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 0, "missing required key \"name\"");
    assert_error(&l, 3, "missing required key \"exchange\"");
    loaded_free(&l);
}

static void test_bad_values(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"CRM!\";\n"
                  "broker = { url = \"amqp://h/\"; heartbeat = 99999; };\n"
                  "log_format = \"xml\";\n"
                  "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; listen = \"nohost\"; path = \"/o\";\n"
                  "    exchange = \"e\"; mode = \"sync\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 1, "not a valid name");
    assert_error(&l, 2, "heartbeat = 99999 is out of range");
    assert_error(&l, 3, "\"xml\" is not one of: logfmt|json");
    assert_error(&l, 5, "is not host:port");
    assert_error(&l, 6, "mode = \"sync\" is not one of: event|rpc");
    loaded_free(&l);
}

/* Names become file names (a spool's DIR/<route>, state_dir/<name>): "." and ".."
 * would name a directory above. */
static void test_dot_names_are_refused(void **state)
{
    struct loaded l;
    load_text(&l,
              "name = \"..\";\n"
              "broker = { url = \"amqp://h/\"; };\n"
              "inbound = (\n"
              "  { name = \".\"; kind = \"http\"; listen = \"127.0.0.1:8080\"; path = \"/o\";\n"
              "    exchange = \"e\"; },\n"
              "  { name = \"a..b\"; kind = \"http\"; listen = \"127.0.0.1:8080\"; path = \"/p\";\n"
              "    exchange = \"e\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 1, "name = \"..\" is not a valid name");
    assert_error(&l, 4, "name = \".\" is not a valid name");
    assert_int_equal(l.rep.n, 2); /* "a..b" is a name */
    loaded_free(&l);
}

/* ${VAR} is expanded before validation; an undefined one names its line. */
static void test_environment_variables(void **state)
{
    setenv("SIDECAR_TEST_HOST", "rabbit.example", 1);
    setenv("SIDECAR_TEST_FORMAT", "json", 1);
    setenv("SIDECAR_TEST_EXCHANGE", "crm.events", 1);
    unsetenv("SIDECAR_TEST_UNSET");
    const char *text =
        "name = \"${SIDECAR_TEST_UNSET:-crm}\";\n"
        "broker = { urls = [ \"amqp://guest@${SIDECAR_TEST_HOST}:5672/$$\" ]; };\n"
        "log_format = \"${SIDECAR_TEST_FORMAT}\";\n"
        "inbound = (\n"
        "  { name = \"${SIDECAR_TEST_UNSET:-orders}\"; kind = \"${SIDECAR_TEST_UNSET:-http}\";\n"
        "    listen = \"127.0.0.1:18081\"; path = \"/o\";\n"
        "    exchange = \"${SIDECAR_TEST_EXCHANGE:?the exchange to publish to}\"; }\n);\n";
    struct loaded l;
    load_text(&l, text);
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.cfg.name, "crm");
    assert_string_equal(l.cfg.broker.urls.v[0], "amqp://guest@rabbit.example:5672/$");
    assert_string_equal(l.cfg.log_format, "json");
    assert_int_equal(l.cfg.n_routes, 1);
    assert_string_equal(l.cfg.routes[0]->name, "orders");
    assert_string_equal(l.cfg.routes[0]->kind->name, "http");
    assert_string_equal(l.cfg.routes[0]->exchange, "crm.events");
    loaded_free(&l);

    /* validation sees the expanded value */
    setenv("SIDECAR_TEST_FORMAT", "xml", 1);
    unsetenv("SIDECAR_TEST_HOST");
    unsetenv("SIDECAR_TEST_EXCHANGE");
    load_text(&l, text);
    assert_int_equal(l.rc, -1);
    assert_error(&l, 2,
                 "environment variable SIDECAR_TEST_HOST is not set; set SIDECAR_TEST_HOST "
                 "in the unit's Environment= or EnvironmentFile=");
    assert_error(&l, 3, "\"xml\" is not one of: logfmt|json");
    assert_error(&l, 7,
                 "inbound route \"orders\": exchange: SIDECAR_TEST_EXCHANGE: the exchange to "
                 "publish to");
    loaded_free(&l);

    load_text(&l, BROKER "name = \"a${SIDECAR_TEST_HOST\";\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 2, "unterminated \"${\"");
    loaded_free(&l);
    unsetenv("SIDECAR_TEST_FORMAT");
}

static void test_duplicate_route_names(void **state)
{
    struct loaded l;
    load_text(
        &l, "name = \"crm\";\n" BROKER "inbound = (\n" ROUTE_HTTP ",\n"
            "  { name = \"orders\"; kind = \"http\"; listen = \"127.0.0.1:18082\"; path = \"/o\";\n"
            "    exchange = \"e\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 7, "route name \"orders\" is used twice (first at line 4)");
    loaded_free(&l);
}

static void test_endpoint_clash(void **state)
{
    struct loaded l;
    load_text(
        &l,
        "name = \"crm\";\n" BROKER "inbound = (\n" ROUTE_HTTP ",\n"
        "  { name = \"other\"; kind = \"http\"; listen = \"127.0.0.1:18081\"; path = \"/orders\";\n"
        "    exchange = \"e\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 7, "is already served by route \"orders\"");
    loaded_free(&l);
}

static void test_unreadable_transform(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    transform = \"missing.jq\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5, "cannot read");
    assert_error(&l, 5, "missing.jq");
    loaded_free(&l);
}

static void test_transform_that_does_not_compile(void **state)
{
    free(test_write(dir, "bad.jq", ".a | | .b", 0644));
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    transform = \"bad.jq\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 4, "transform does not compile");
    loaded_free(&l);
}

static void test_secret_permissions(void **state)
{
    free(test_write(dir, "open.secret", "s3cret\n", 0644));
    free(test_write(dir, "good.secret", "s3cret\n", 0600));
    struct loaded l;
    load_text(&l, "name = \"crm\";\n"
                  "broker = { url = \"amqp://h/\";\n"
                  "  password_file = \"open.secret\"; };\n"
                  "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    auth = { hmac_secret_file = \"nope.secret\"; }; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 3, "readable by group or others (mode 0644); run: chmod 600");
    assert_error(&l, 6, "cannot read secret file");
    loaded_free(&l);

    load_text(
        &l, "name = \"crm\";\nbroker = { url = \"amqp://h/\"; password_file = \"good.secret\"; };\n"
            "inbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.cfg.broker.password.value, "s3cret"); /* newline trimmed */
    loaded_free(&l);

    /* a secret file's path may come from the environment (systemd's credentials) */
    setenv("SIDECAR_TEST_CREDENTIALS", dir, 1);
    load_text(&l, "name = \"crm\";\nbroker = { url = \"amqp://h/\";\n"
                  "  password_file = \"${SIDECAR_TEST_CREDENTIALS}/good.secret\"; };\n"
                  "inbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.cfg.broker.password.value, "s3cret");
    loaded_free(&l);
    unsetenv("SIDECAR_TEST_CREDENTIALS");
}

/* auth.hmac_secret_files: each file is checked like a secret file, at its own
 * line, and config_reload_secrets re-reads every one. */
static void test_secret_file_list(void **state)
{
    free(test_write(dir, "one.secret", "whsec_b25l\n", 0600));
    free(test_write(dir, "two.secret", "whsec_dHdv\n", 0600));
    free(test_write(dir, "open.secret", "x\n", 0644));
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    auth = { scheme = \"standard\"; hmac_secret_files = [\n"
                  "      \"one.secret\",\n"
                  "      \"open.secret\",\n"
                  "      \"nope.secret\" ]; }; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 7, "readable by group or others");
    assert_error(&l, 8, "cannot read secret file");
    loaded_free(&l);

    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    auth = { scheme = \"standard\";\n"
                  "      hmac_secret_files = [ \"one.secret\", \"two.secret\" ]; }; }\n);\n");
    assert_int_equal(l.rc, 0);
    free(test_write(dir, "two.secret", "whsec_dGhyZWU=\n", 0600));
    assert_int_equal(config_reload_secrets(&l.cfg, &l.rep), 0);
    free(test_write(dir, "two.secret", "whsec_Zm91cg==\n", 0644)); /* the list is re-read */
    assert_int_equal(config_reload_secrets(&l.cfg, &l.rep), -1);
    assert_non_null(strstr(l.rep.errors[l.rep.n - 1].msg, "two.secret"));
    loaded_free(&l);

    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    auth = { scheme = \"standard\";\n"
                  "      hmac_secret_files = [ ]; tolerance = 100000; }; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 6, "hmac_secret_files must not be empty");
    assert_error(&l, 6, "tolerance = 100000 is out of range");
    loaded_free(&l);
}

static void test_broker_url_problems(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\nbroker = {\n  url = \"http://h/\"; };\ninbound = (\n" ROUTE_HTTP
                  ");\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 3, "must start with amqp:// or amqps://");
    loaded_free(&l);

    load_text(&l, "name = \"crm\";\nbroker = { url = \"amqp://a/\";\n  urls = [\"amqp://b/\"]; };\n"
                  "inbound = (\n" ROUTE_HTTP ");\n");
    assert_error(&l, 3, "set url or urls, not both");
    loaded_free(&l);

    load_text(&l, "name = \"crm\";\nbroker = { heartbeat = 5; };\ninbound = (\n" ROUTE_HTTP ");\n");
    assert_error(&l, 2, "missing url");
    loaded_free(&l);
}

static void test_unknown_kind_lists_kinds(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n"
                  "  { name = \"x\";\n    kind = \"ftp\"; exchange = \"e\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5, "unknown kind \"ftp\"; inbound routes can be: http");
    loaded_free(&l);
}

static void test_no_routes(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER);
    assert_int_equal(l.rc, -1);
    assert_non_null(strstr(l.rep.errors[0].msg, "no routes"));
    loaded_free(&l);
}

static void test_bad_routing_key_template(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "inbound = (\n"
                  "  { name = \"orders\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    routing_key = \"order.{body.type}\"; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 4, "unknown placeholder {body.type}");
    loaded_free(&l);
}

/* Names that become AMQP short strings must fit in 255 bytes: found at load,
 * not when the first message fails to encode. */
static void test_amqp_names_over_255_bytes(void **state)
{
    char text[4096], exchange[300], key[300];
    memset(exchange, 'e', 256);
    exchange[256] = '\0';
    memset(key, 'k', 256);
    key[256] = '\0';
    snprintf(text, sizeof(text),
             "name = \"crm\";\n%sinbound = (\n"
             "  { name = \"a\"; kind = \"http\"; path = \"/a\"; exchange = \"%s\"; },\n"
             "  { name = \"b\"; kind = \"http\"; path = \"/b\"; exchange = \"x\";\n"
             "    routing_key = \"%s\"; }\n);\n",
             BROKER, exchange, key);
    struct loaded l;
    load_text(&l, text);
    assert_int_equal(l.rc, -1);
    assert_error(&l, 4, "exchange name is 256 bytes; AMQP allows 255");
    assert_error(&l, 5, "routing_key is 256 bytes; AMQP allows 255");
    loaded_free(&l);
}

/* A file route's content_type goes into the AMQP content_type shortstr of every message:
 * refused at load unless it fits (255 bytes), is printable and looks like a media type. */
static void load_file_route(struct loaded *l, const char *content_type)
{
    char text[1200];
    snprintf(text, sizeof(text),
             "name = \"crm\";\n%sinbound = (\n"
             "  { name = \"drop\"; kind = \"file\"; dir = \"%s\"; exchange = \"e\";\n"
             "    content_type = \"%s\"; }\n);\n",
             BROKER, dir, content_type);
    load_text(l, text);
}

static void test_file_content_type_checked_at_load(void **state)
{
    static const struct {
        const char *value, *error;
    } bad[] = {
        {"pdf", "is not type/subtype"},
        {"text/plain\\nX-Evil: 1", "not printable ASCII (0x0a at 10)"},
        {"text/plain; charset", "that is not name=value"},
        {"text/plain; charset=\\\"utf-8", "that is not name=value"},
        {"text/plain, text/csv", "after the media type"},
        {"", "is 0 bytes"},
    };
    struct loaded l;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        load_file_route(&l, bad[i].value);
        assert_int_equal(l.rc, -1);
        assert_error(&l, 4, bad[i].error);
        assert_error(&l, 4, "e.g. \"text/csv; charset=utf-8\"");
        loaded_free(&l);
    }
    char long_type[400] = "application/";
    memset(long_type + 12, 'x', 300);
    load_file_route(&l, long_type);
    assert_error(&l, 4, "is 312 bytes; AMQP allows 1 to 255");
    loaded_free(&l);
    long_type[255] = '\0'; /* exactly a shortstr */
    load_file_route(&l, long_type);
    assert_int_equal(l.rc, 0);
    loaded_free(&l);
    load_file_route(&l, "text/csv ; charset=\\\"utf-8\\\"; header=present;");
    assert_int_equal(l.rc, 0);
    loaded_free(&l);
}

/* A body the broker would refuse must be refused before it: max_body fits broker.max_message. */
static void test_max_body_within_broker_max_message(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n"
                  "broker = { url = \"amqp://h/\"; max_message = 65536; };\ninbound = (\n"
                  "  { name = \"o\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    max_body = 65537; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 4, "max_body 65537 is above broker.max_message 65536");
    loaded_free(&l);
    load_text(&l, "name = \"crm\";\n"
                  "broker = { url = \"amqp://h/\"; max_message = 65536; };\ninbound = (\n"
                  "  { name = \"o\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
                  "    max_body = 65536; }\n);\n");
    assert_int_equal(l.rc, 0);
    loaded_free(&l);
}

static void test_errors_are_all_collected(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\nbroker = { url = \"amqp://h/\"; heartbeat = -1; };\n"
                  "log_format = 1;\ndrain_timeout = \"x\";\ninbound = (\n" ROUTE_HTTP ");\n");
    assert_int_equal(l.rc, -1);
    assert_true(l.rep.n >= 3);
    loaded_free(&l);
}

static void test_parse_listen(void **state)
{
    char host[64];
    int port;
    assert_int_equal(config_parse_listen("127.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(config_parse_listen("[::1]:9", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(config_parse_listen("8080", host, sizeof(host), &port), -1);
    assert_int_equal(config_parse_listen("h:99999", host, sizeof(host), &port), -1);
    assert_int_equal(config_parse_listen(":80", host, sizeof(host), &port), -1);
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

/* rate = { … }: its defaults, and every way to get it wrong, each at its line. */
static void test_rate(void **state)
{
    struct loaded l;
    load_text(&l, "name = \"crm\";\n" BROKER "outbound = (\n"
                  "  { name = \"a\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    rate = { per_second = 10.0; }; },\n"
                  "  { name = \"b\"; kind = \"soap\"; url = \"http://x/\";\n"
                  "    rate = { per_minute = 30.0; }; },\n"
                  "  { name = \"c\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    rate = { per_second = 2.5; burst = 7; }; },\n"
                  "  { name = \"d\"; kind = \"http\"; url = \"http://x/\"; }\n);\n");
    assert_int_equal(l.rc, 0);
    assert_true(l.cfg.routes[0]->rate.rate == 10.0);
    assert_int_equal(l.cfg.routes[0]->rate.burst, 10); /* max(1, ceil(rate)) */
    assert_true(l.cfg.routes[1]->rate.rate == 0.5);
    assert_int_equal(l.cfg.routes[1]->rate.burst, 1);
    assert_int_equal(l.cfg.routes[2]->rate.burst, 7);
    assert_true(l.cfg.routes[3]->rate.rate == 0); /* unpaced */
    loaded_free(&l);

    load_text(&l, "name = \"crm\";\n" BROKER "outbound = (\n"
                  "  { name = \"a\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    rate = { per_second = 0.0; }; },\n"
                  "  { name = \"b\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    rate = { per_second = 1.0;\n"
                  "             per_minute = 30.0; }; },\n"
                  "  { name = \"c\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    rate = { per_second = 1.0; burst = 0; }; },\n"
                  "  { name = \"d\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    rate = { burst = 3; }; },\n"
                  "  { name = \"e\"; kind = \"file\"; dir = \"/tmp\";\n"
                  "    rate = { per_second = 1.0; }; },\n"
                  "  { name = \"f\"; kind = \"http\"; url = \"http://x/\";\n"
                  "    rate = { per_second = -1.0; }; }\n);\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5, "\"a\".rate: per_second = 0 is out of range");
    assert_error(&l, 7, "rate sets both per_second and per_minute; keep one");
    assert_error(&l, 10, "burst = 0 is out of range; use a value from 1");
    assert_error(&l, 12, "rate has no per_second or per_minute; add one");
    assert_error(&l, 14, "rate applies only to routes that call the legacy side");
    assert_error(&l, 16, "per_second = -1 is out of range");
    /* one error per mistake: no "no per_second" after the range error */
    for (size_t i = 0; i < l.rep.n; i++)
        if (l.rep.errors[i].line == 5 || l.rep.errors[i].line == 16)
            assert_null(strstr(l.rep.errors[i].msg, "no per_second"));
    loaded_free(&l);
}

/* lease: poll and file inbound only; the names it derives; off by default. */
static void test_lease(void **state)
{
    (void)state;
    char text[2048];
    snprintf(
        text, sizeof(text),
        "name = \"crm\";\n%sstate_dir = \"%s/state\";\ninbound = (\n"
        "  { name = \"tickets\"; kind = \"poll\"; url = \"http://x/\"; id = \".id\";\n"
        "    exchange = \"e\"; lease = true; },\n"
        "  { name = \"drop\"; kind = \"file\"; dir = \"%s\"; exchange = \"e\"; lease = true; },\n"
        "  { name = \"other\"; kind = \"poll\"; url = \"http://y/\"; id = \".id\"; exchange = "
        "\"e\"; }\n"
        ");\n",
        BROKER, dir, dir);
    struct loaded l;
    load_text(&l, text);
    assert_int_equal(l.rep.n, 0);
    assert_int_equal(l.rc, 0);
    struct route *poll = l.cfg.routes[0], *file = l.cfg.routes[1], *other = l.cfg.routes[2];
    assert_true(poll->lease);
    assert_string_equal(poll->lease_queue, "crm.tickets.lease");
    assert_string_equal(poll->cursor_queue, "crm.tickets.cursor");
    assert_true(file->lease);
    assert_string_equal(file->lease_queue, "crm.drop.lease");
    assert_null(file->cursor_queue); /* files keep no cursor */
    assert_false(other->lease);
    assert_null(other->lease_queue);
    assert_null(other->cursor_queue);
    loaded_free(&l);

    load_text(
        &l,
        "name = \"crm\";\n" BROKER "inbound = (\n"
        "  { name = \"orders\"; kind = \"http\"; path = \"/o\"; exchange = \"e\";\n"
        "    lease = true; }\n);\n"
        "outbound = ( { name = \"c\"; kind = \"http\"; url = \"http://x/\"; lease = true; } );\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, 5, "lease applies only to inbound poll and file routes");
    assert_error(&l, 7, "lease applies only to inbound poll and file routes");
    loaded_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_config_fills_defaults),
        cmocka_unit_test(test_queue_interval),
        cmocka_unit_test(test_routes_keep_off_the_admin_paths),
        cmocka_unit_test(test_syntax_error_has_line),
        cmocka_unit_test(test_syntax_error_names_likely_cause),
        cmocka_unit_test(test_numbers_given_strings),
        cmocka_unit_test(test_unknown_key_synonyms),
        cmocka_unit_test(test_wrong_type_group_no_follow_on),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_mixed_array_hint),
        cmocka_unit_test(test_unknown_key_suggests),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_dot_names_are_refused),
        cmocka_unit_test(test_environment_variables),
        cmocka_unit_test(test_duplicate_route_names),
        cmocka_unit_test(test_endpoint_clash),
        cmocka_unit_test(test_unreadable_transform),
        cmocka_unit_test(test_transform_that_does_not_compile),
        cmocka_unit_test(test_secret_permissions),
        cmocka_unit_test(test_secret_file_list),
        cmocka_unit_test(test_broker_url_problems),
        cmocka_unit_test(test_unknown_kind_lists_kinds),
        cmocka_unit_test(test_no_routes),
        cmocka_unit_test(test_bad_routing_key_template),
        cmocka_unit_test(test_amqp_names_over_255_bytes),
        cmocka_unit_test(test_file_content_type_checked_at_load),
        cmocka_unit_test(test_max_body_within_broker_max_message),
        cmocka_unit_test(test_errors_are_all_collected),
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_lease),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
