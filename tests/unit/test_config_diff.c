/*
 * Unit tests for adapter/config_diff.c: two configs loaded from text compare
 * route by route (added, removed, changed with the keys named, unchanged),
 * keys in nested groups are named with their group, and a process key that
 * differs is named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "config_diff.h"
#include "route.h"
#include "util.h"
#include "test_helpers.h"

static char *dir;

#define HEAD "name = \"crm\";\nbroker = { url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"; };\n"
#define IN_ORDERS(key)                                                                             \
    "  { name = \"orders\"; kind = \"http\"; listen = \"127.0.0.1:18081\"; path = \"/orders\";\n"  \
    "    exchange = \"crm.events\"; routing_key = \"" key "\"; }\n"
#define OUT_CUSTOMERS(url, extra)                                                                  \
    "  { name = \"customers\"; kind = \"http\"; url = \"" url "\"; " extra " }"
#define OUT_FILE(name) "  { name = \"" name "\"; kind = \"file\"; dir = \"/tmp\"; }"

struct pair {
    struct sidecar_config a, b;
    struct config_plan plan;
};

static void load(struct sidecar_config *cfg, const char *name, const char *text)
{
    char *path = test_write(dir, name, text, 0644);
    struct config_report rep = {0};
    int rc = config_load(path, cfg, &rep);
    for (size_t i = 0; i < rep.n; i++)
        fprintf(stderr, "  %d: %s\n", rep.errors[i].line, rep.errors[i].msg);
    assert_int_equal(rc, 0);
    config_report_free(&rep);
    free(path);
}

static void plan_of(struct pair *p, const char *a, const char *b)
{
    load(&p->a, "a.conf", a);
    load(&p->b, "b.conf", b);
    config_plan_make(&p->a, &p->b, &p->plan);
}

static void pair_free(struct pair *p)
{
    config_plan_free(&p->plan);
    config_free(&p->a);
    config_free(&p->b);
}

static const struct route_plan *entry(const struct config_plan *plan, const char *name)
{
    for (size_t i = 0; i < plan->n_routes; i++) {
        const struct route_plan *e = &plan->routes[i];
        const struct route *r = e->next ? e->next : e->running;
        if (strcmp(r->name, name) == 0)
            return e;
    }
    fail_msg("route %s not in the plan", name);
    return NULL;
}

static void test_same_file_is_unchanged(void **state)
{
    const char *text =
        HEAD "inbound = (\n" IN_ORDERS("order.created") ");\noutbound = (\n" OUT_CUSTOMERS(
            "http://x/", "retry = { delays = [1.0, 2.0]; };") ",\n" OUT_FILE("files") ");\n";
    struct pair p;
    plan_of(&p, text, text);
    assert_null(p.plan.process_keys);
    assert_int_equal(p.plan.n_routes, 3);
    assert_int_equal(p.plan.count[ROUTE_UNCHANGED], 3);
    assert_int_equal(entry(&p.plan, "customers")->change, ROUTE_UNCHANGED);
    assert_null(entry(&p.plan, "customers")->keys);
    pair_free(&p);
}

static void test_added_removed_changed(void **state)
{
    struct pair p;
    plan_of(&p,
            HEAD "inbound = (\n" IN_ORDERS("order.created") ");\noutbound = (\n" OUT_CUSTOMERS(
                "http://x/", "") ",\n" OUT_FILE("old") ");\n",
            HEAD "inbound = (\n" IN_ORDERS("order.placed") ");\noutbound = (\n" OUT_CUSTOMERS(
                "http://y/",
                "concurrency = 2; retry = { delays = [3.0]; };") ",\n" OUT_FILE("new") ");\n");
    assert_null(p.plan.process_keys);
    assert_int_equal(p.plan.count[ROUTE_ADDED], 1);
    assert_int_equal(p.plan.count[ROUTE_REMOVED], 1);
    assert_int_equal(p.plan.count[ROUTE_CHANGED], 2);
    assert_int_equal(p.plan.count[ROUTE_UNCHANGED], 0);
    const struct route_plan *c = entry(&p.plan, "customers");
    assert_int_equal(c->change, ROUTE_CHANGED);
    assert_string_equal(c->keys, "concurrency, retry.delays, url");
    assert_non_null(c->running);
    assert_non_null(c->next);
    assert_string_equal(entry(&p.plan, "orders")->keys, "routing_key");
    assert_int_equal(entry(&p.plan, "new")->change, ROUTE_ADDED);
    assert_null(entry(&p.plan, "new")->running);
    assert_int_equal(entry(&p.plan, "old")->change, ROUTE_REMOVED);
    assert_null(entry(&p.plan, "old")->next);
    /* Removed routes come last, after the next config's own. */
    assert_int_equal(p.plan.routes[p.plan.n_routes - 1].change, ROUTE_REMOVED);
    pair_free(&p);
}

static void test_moving_a_route_or_its_keys_is_no_change(void **state)
{
    struct pair p;
    plan_of(&p,
            HEAD "outbound = (\n" OUT_FILE("a") ",\n" OUT_CUSTOMERS("http://x/",
                                                                    "concurrency = 8;") ");\n",
            HEAD "\n\n# a comment\noutbound = (\n" OUT_CUSTOMERS("http://x/",
                                                                 "") ",\n" OUT_FILE("a") ");\n");
    /* concurrency = 8 is the default: the value, not its spelling, counts. */
    assert_int_equal(p.plan.count[ROUTE_UNCHANGED], 2);
    pair_free(&p);
}

static void test_kind_change_is_named_alone(void **state)
{
    struct pair p;
    plan_of(&p, HEAD "outbound = (\n" OUT_FILE("x") ");\n",
            HEAD "outbound = ( { name = \"x\"; kind = \"http\"; url = \"http://x/\"; } );\n");
    assert_int_equal(entry(&p.plan, "x")->change, ROUTE_CHANGED);
    assert_string_equal(entry(&p.plan, "x")->keys, "kind");
    pair_free(&p);
}

static void test_process_keys_are_named(void **state)
{
    struct pair p;
    plan_of(
        &p, HEAD "drain_timeout = 5.0;\noutbound = (\n" OUT_FILE("x") ");\n",
        "name = \"erp\";\nbroker = { url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"; "
        "heartbeat = 10; };\nadmin = { listen = \"127.0.0.1:9999\"; };\noutbound = (\n" OUT_FILE(
            "x") ");\n");
    assert_non_null(p.plan.process_keys);
    assert_non_null(strstr(p.plan.process_keys, "name"));
    assert_non_null(strstr(p.plan.process_keys, "broker.heartbeat"));
    assert_non_null(strstr(p.plan.process_keys, "admin.listen"));
    assert_non_null(strstr(p.plan.process_keys, "drain_timeout"));
    assert_null(strstr(p.plan.process_keys, "broker.url"));
    pair_free(&p);
}

struct three {
    char *s;
    struct strlist l;
    struct secret sec;
};

static void test_diff_keys_of_each_type(void **state)
{
    /* Strings and lists compare by value, secrets by path (not content). */
    char *va[] = {"a", "b"}, *vb[] = {"a", "c"};
    struct three a = {"x", {va, 2}, {.path = "/k"}};
    struct three b = {xstrdup("x"), {vb, 2}, {.path = "/k", .value = "other"}};
    static const struct config_key keys[] = {
        {"s", KEY_STRING, offsetof(struct three, s), 0, NULL, NULL, 0, 0, NULL, ""},
        {"l", KEY_STRINGS, offsetof(struct three, l), 0, NULL, NULL, 0, 0, NULL, ""},
        {"sec", KEY_SECRET, offsetof(struct three, sec), 0, NULL, NULL, 0, 0, NULL, ""},
        {0},
    };
    struct buf out = {0};
    assert_int_equal(config_diff_keys(keys, &a, &b, "g.", &out), 1);
    assert_string_equal(out.data, "g.l");
    buf_free(&out);
    free(b.s);
    b.l = a.l;
    b.s = "y";
    b.sec.path = "/other";
    assert_int_equal(config_diff_keys(keys, &a, &b, "", &out), 2);
    assert_string_equal(out.data, "s, sec");
    buf_free(&out);
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
        cmocka_unit_test(test_same_file_is_unchanged),
        cmocka_unit_test(test_added_removed_changed),
        cmocka_unit_test(test_moving_a_route_or_its_keys_is_no_change),
        cmocka_unit_test(test_kind_change_is_named_alone),
        cmocka_unit_test(test_process_keys_are_named),
        cmocka_unit_test(test_diff_keys_of_each_type),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
