/*
 * route_test — the `test` command (see route_test.h): every tests file is
 * read and checked first (a bad one runs nothing: exit 2), then each case
 * runs through its route (route_test_world.c) and its result is compared
 * with what the case expects (route_test_compare.c).
 */
#include "route_test.h"

#include "config.h"
#include "log.h"
#include "route.h"
#include "route_test_internal.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char route_test_usage[] =
    "usage: amqp-sidecar test -c FILE [TESTS.json …] [-v]\n"
    "\n"
    "Runs route test cases through FILE's routes — the real code that turns requests,\n"
    "files and deliveries into messages and legacy calls — with the broker and the\n"
    "legacy system played in-process: no RabbitMQ, no legacy system, no open port.\n"
    "Without TESTS, runs FILE's sibling <name>.tests.json (crm.conf: crm.tests.json).\n"
    "\n"
    "A tests file is JSON: { \"tests\": [ case, … ] }. A case names a route, gives\n"
    "its input and what to expect; only the fields you write are checked, a field\n"
    "written as null must be absent, a \"…_contains\" key checks a substring.\n"
    "  inbound http/soap  \"request\": { method, path, headers, query, body }\n"
    "                     (POST to the route's path by default), optional\n"
    "                     \"broker\": \"confirm\" | \"nack\" | \"down\" and, for rpc,\n"
    "                     \"reply\": { body, headers, content_type };\n"
    "                     expect { status, headers, body, published: [ … ] }\n"
    "  inbound file       \"file\": { name, content };\n"
    "                     expect { file: \"done\" | \"failed\", error, published }\n"
    "  inbound poll       \"response\" (or \"responses\": [ … ], one per GET),\n"
    "                     optional \"cursor\" (as stored before);\n"
    "                     expect { request(s), published, cursor, error }\n"
    "  outbound http/soap \"delivery\": { body, properties, headers, attempts },\n"
    "                     \"response\": { status, headers, body } (or { error });\n"
    "                     expect { request: { method, url, headers, body },\n"
    "                     outcome: \"ack\" | \"retry\" | \"throttled\" | \"dead\",\n"
    "                     reason, dead_reason, reply }\n"
    "  outbound file      \"delivery\" as above; expect { outcome, reason,\n"
    "                     written: [ { name, content } ] } (in a temporary dir)\n"
    "  a published message: { exchange, routing_key, body, headers,\n"
    "                     properties: { content_type, message_id, correlation_id,\n"
    "                     reply_to, app_id, delivery_mode, timestamp } }\n"
    "A body written as a JSON value matches a body that parses to it (objects on\n"
    "the fields given); written as a string it must match byte for byte.\n"
    "\n"
    "Example (crm.tests.json):\n"
    "  { \"tests\": [\n"
    "    { \"name\": \"an order is published with its key\", \"route\": \"orders\",\n"
    "      \"request\": { \"headers\": { \"Idempotency-Key\": \"o-1\" },\n"
    "                   \"body\": { \"id\": 7, \"total\": \"9.50\" } },\n"
    "      \"expect\": { \"status\": 202,\n"
    "                  \"published\": [ { \"routing_key\": \"order.created\",\n"
    "                                   \"properties\": { \"message_id\": \"o-1\" },\n"
    "                                   \"body\": { \"id\": 7 } } ] } },\n"
    "    { \"name\": \"a 422 from the CRM is a dead letter\", \"route\": \"customers\",\n"
    "      \"delivery\": { \"body\": { \"id\": 1 }, \"properties\": { \"message_id\": \"m-1\" } "
    "},\n"
    "      \"response\": { \"status\": 422, \"body\": \"bad email\" },\n"
    "      \"expect\": { \"request\": { \"method\": \"POST\",\n"
    "                               \"headers\": { \"Idempotency-Key\": \"m-1\" } },\n"
    "                  \"outcome\": \"dead\", \"reason_contains\": \"bad email\" } } ] }\n"
    "\n"
    "Prints one line per case, the differences of a failed one (expected and got,\n"
    "per field), and \"N passed, N failed\". Exit 0 all passed, 1 a case failed\n"
    "(or its kind has no test runner yet), 2 a bad\n"
    "config or tests file (nothing was run; its problems name file:line:column or\n"
    "the case's place, e.g. tests[2].expect.published[0]).\n";

/* got.request: the one legacy call (null without one; all of them when several). */
static void add_request_shorthand(json_t *got)
{
    json_t *requests = json_object_get(got, "requests");
    if (requests == NULL)
        return;
    size_t n = json_array_size(requests);
    json_object_set(got, "request",
                    n == 0   ? json_null()
                    : n == 1 ? json_array_get(requests, 0)
                             : requests);
}

/* One case: true when it passed. */
static bool run_case(const struct test_case *tc, const struct sidecar_config *cfg)
{
    if (!route_test_supported(tc->route)) {
        printf("FAIL %s: %s — not supported yet for kind %s (%s)\n", tc->route->name, tc->name,
               tc->route->kind->name, route_direction_name(tc->route->direction));
        return false;
    }
    char err[1024] = "";
    json_t *got = route_test_run(tc, cfg, err, sizeof(err));
    if (got == NULL) {
        printf("FAIL %s: %s — %s\n", tc->route->name, tc->name, err);
        return false;
    }
    add_request_shorthand(got);
    struct buf diff = {0};
    size_t n = route_test_compare(tc->expect, got, &diff);
    json_decref(got);
    if (n == 0)
        printf("ok   %s: %s\n", tc->route->name, tc->name);
    else
        printf("FAIL %s: %s — %zu field%s differ%s\n%s", tc->route->name, tc->name, n,
               n == 1 ? "" : "s", n == 1 ? "s" : "", diff.data);
    buf_free(&diff);
    fflush(stdout);
    return n == 0;
}

/* "dir/crm.conf" → "dir/crm.tests.json". Caller frees. */
static char *sibling_tests(const char *config)
{
    const char *slash = strrchr(config, '/');
    const char *dot = strrchr(slash ? slash : config, '.');
    size_t stem =
        dot && dot != (slash ? slash + 1 : config) ? (size_t)(dot - config) : strlen(config);
    return xasprintf("%.*s.tests.json", (int)stem, config);
}

struct loaded {
    const char *path;
    json_t *root;
    struct test_case *cases;
    size_t n;
};

int route_test_main(struct sidecar_config *cfg, const char *const *files, size_t n_files,
                    bool verbose)
{
    char *sibling = NULL;
    const char *only[1];
    if (n_files == 0) {
        sibling = sibling_tests(cfg->path);
        if (access(sibling, R_OK) != 0) {
            fprintf(stderr,
                    "amqp-sidecar: no tests given and no %s beside the config; write one (see "
                    "`amqp-sidecar test --help`) or name the tests files\n",
                    sibling);
            free(sibling);
            return 2;
        }
        only[0] = sibling;
        files = only;
        n_files = 1;
    }
    if (!verbose)
        log_set_level(LOG_ERROR); /* the routes' refusals are the cases' business */
    struct loaded *l = xcalloc(n_files, sizeof(*l));
    int bad = 0;
    for (size_t i = 0; i < n_files; i++) {
        l[i].path = files[i];
        if (route_test_load(files[i], cfg, &l[i].root, &l[i].cases, &l[i].n) != 0)
            bad = 1;
    }
    size_t passed = 0, failed = 0;
    for (size_t i = 0; i < n_files && !bad; i++) {
        if (n_files > 1)
            printf("%s\n", files[i]);
        for (size_t j = 0; j < l[i].n; j++) {
            if (run_case(&l[i].cases[j], cfg))
                passed++;
            else
                failed++;
        }
    }
    for (size_t i = 0; i < n_files; i++) {
        route_test_cases_free(l[i].cases, l[i].n);
        json_decref(l[i].root);
    }
    free(l);
    free(sibling);
    if (bad)
        return 2;
    printf("%zu passed, %zu failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
