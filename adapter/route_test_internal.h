/*
 * route_test_internal — what the parts of `amqp-sidecar test` share:
 * route_test.c (the command: files in, one line per case, the summary),
 * route_test_case.c (reading and checking a tests file), route_test_world.c
 * (one case through the route's real code, broker and legacy side played
 * in-process) and route_test_compare.c (expected against got, per field).
 *
 * A case's input and its result are both JSON, in the shapes the README's
 * "Testing a route without a broker" shows; the result ("got") has every
 * field, the expectation only those the operator wrote.
 * Ownership: a case borrows its JSON from the file's root, which the caller
 * keeps until the cases are freed.
 */
#ifndef SIDECAR_ROUTE_TEST_INTERNAL_H
#define SIDECAR_ROUTE_TEST_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct buf;
struct route;
struct sidecar_config;

/* What feeds a route, by its kind and direction. */
enum test_input {
    TEST_HTTP_REQUEST, /* http and soap inbound: "request" */
    TEST_FILE,         /* file inbound: "file" */
    TEST_POLL,         /* poll inbound: "response" or "responses" (and "cursor") */
    TEST_DELIVERY,     /* http and soap outbound: "delivery" (and "response") */
};

struct test_case {
    char *name; /* as given, or "case N" */
    struct route *route;
    enum test_input input;
    json_t *spec;   /* the case object (borrowed) */
    json_t *expect; /* its "expect" (borrowed) */
};

/* Reads path into *root (the caller's) and checks every case against cfg.
 * 0 with the cases, or -1 having printed each problem as "path:line:column:"
 * (JSON syntax) or "path: tests[i].field:" (content) with what to write. */
int route_test_load(const char *path, const struct sidecar_config *cfg, json_t **root,
                    struct test_case **cases, size_t *n_cases);
void route_test_cases_free(struct test_case *cases, size_t n);

/* Has r's kind a test runner? (A kind added without one fails its cases, saying so.) */
bool route_test_supported(const struct route *r);

/* Runs c through its route: the result (a new reference), or NULL with err
 * when the case could not be run at all (the route would not start, no answer
 * in time). cfg is the loaded config; the route is started and stopped here. */
json_t *route_test_run(const struct test_case *c, const struct sidecar_config *cfg, char *err,
                       size_t errlen);

/* Appends one line per field where got differs from expect ("  expect.status:
 * expected 202, got 415") to diff; returns how many. Objects match on the
 * keys expect names (null: must be absent); header objects case-insensitively;
 * a "body" given as a JSON value matches a body that parses to it (objects
 * again on the fields given); arrays element by element, same length. */
size_t route_test_compare(json_t *expect, json_t *got, struct buf *diff);

/* A body as a case gives it: a string as is, any other JSON value compact. Caller frees. */
char *route_test_body_text(json_t *body, size_t *len);

#endif
