/*
 * route_test_case — reading a tests file for `amqp-sidecar test`, and
 * checking all of it before anything runs: JSON syntax (path:line:column),
 * then every key against the shape its place allows (by the route's kind and
 * direction), naming the place ("tests[2].expect.published[0]") and what to
 * write instead. A tests file with any problem runs no case (exit 2).
 */
#include "route_test_internal.h"

#include "config.h"
#include "route.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shape of one JSON object: its keys, each with the types it may hold. */
enum shape_type {
    T_STRING = 1,
    T_INT = 2,
    T_NUMBER = 4,
    T_BOOL = 8,
    T_OBJECT = 16,
    T_ARRAY = 32,
    T_NULL = 64,
    T_ANY = 127,
};

struct shape_key {
    const char *name;
    unsigned types;
    const struct shape_key *object; /* T_OBJECT (or each element of T_ARRAY): its keys; NULL:
                                     * any keys (headers, query), values strings or null */
    bool required;
};

/* Rows: an optional key, a required one, and either with the keys of its object(s). */
#define OPT(name, types)                                                                           \
    {                                                                                              \
        name, types, NULL, false                                                                   \
    }
#define NEED(name, types)                                                                          \
    {                                                                                              \
        name, types, NULL, true                                                                    \
    }
#define SUB(name, types, keys)                                                                     \
    {                                                                                              \
        name, types, keys, false                                                                   \
    }
#define NEED_SUB(name, types, keys)                                                                \
    {                                                                                              \
        name, types, keys, true                                                                    \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, 0, NULL, false                                                                       \
    }

static const struct shape_key request_keys[] = {
    OPT("method", T_STRING), OPT("path", T_STRING), OPT("headers", T_OBJECT),
    OPT("query", T_OBJECT),  OPT("body", T_ANY),    END,
};
static const struct shape_key reply_keys[] = {
    OPT("body", T_ANY),
    OPT("headers", T_OBJECT),
    OPT("content_type", T_STRING),
    END,
};
static const struct shape_key file_keys[] = {
    NEED("name", T_STRING),
    NEED("content", T_ANY),
    END,
};
static const struct shape_key delivery_property_keys[] = {
    OPT("content_type", T_STRING), OPT("message_id", T_STRING), OPT("correlation_id", T_STRING),
    OPT("reply_to", T_STRING),     OPT("timestamp", T_INT),     END,
};
static const struct shape_key delivery_keys[] = {
    OPT("body", T_ANY),
    SUB("properties", T_OBJECT, delivery_property_keys),
    OPT("headers", T_OBJECT),
    OPT("attempts", T_INT),
    END,
};
static const struct shape_key response_keys[] = {
    OPT("status", T_INT), OPT("headers", T_OBJECT), OPT("body", T_ANY), OPT("error", T_STRING), END,
};

/* What is expected: every key optional, null meaning "absent". */
static const struct shape_key published_property_keys[] = {
    OPT("content_type", T_STRING | T_NULL),
    OPT("message_id", T_STRING | T_NULL),
    OPT("correlation_id", T_STRING | T_NULL),
    OPT("reply_to", T_STRING | T_NULL),
    OPT("app_id", T_STRING | T_NULL),
    OPT("timestamp", T_INT | T_NULL),
    OPT("delivery_mode", T_INT),
    END,
};
static const struct shape_key published_keys[] = {
    OPT("exchange", T_STRING),
    OPT("routing_key", T_STRING),
    SUB("properties", T_OBJECT, published_property_keys),
    OPT("headers", T_OBJECT),
    OPT("body", T_ANY),
    OPT("body_contains", T_STRING),
    END,
};
static const struct shape_key expect_http_keys[] = {
    OPT("status", T_INT),
    OPT("headers", T_OBJECT),
    OPT("body", T_ANY),
    OPT("body_contains", T_STRING),
    SUB("published", T_ARRAY, published_keys),
    END,
};
static const struct shape_key expect_file_keys[] = {
    OPT("file", T_STRING),
    OPT("error", T_STRING | T_NULL),
    OPT("error_contains", T_STRING),
    SUB("published", T_ARRAY, published_keys),
    END,
};
static const struct shape_key legacy_request_keys[] = {
    OPT("method", T_STRING), OPT("url", T_STRING),           OPT("headers", T_OBJECT),
    OPT("body", T_ANY),      OPT("body_contains", T_STRING), END,
};
static const struct shape_key expect_reply_keys[] = {
    OPT("content_type", T_STRING | T_NULL),
    OPT("headers", T_OBJECT),
    OPT("body", T_ANY),
    OPT("body_contains", T_STRING),
    END,
};
static const struct shape_key expect_outbound_keys[] = {
    SUB("request", T_OBJECT | T_NULL, legacy_request_keys),
    OPT("outcome", T_STRING),
    OPT("reason", T_STRING),
    OPT("reason_contains", T_STRING),
    OPT("dead_reason", T_STRING),
    OPT("retry_after", T_NUMBER | T_INT),
    SUB("reply", T_OBJECT | T_NULL, expect_reply_keys),
    END,
};

#define CASE_COMMON OPT("name", T_STRING), NEED("route", T_STRING)

static const struct shape_key case_http_keys[] = {
    CASE_COMMON,
    NEED_SUB("request", T_OBJECT, request_keys),
    OPT("broker", T_STRING),
    SUB("reply", T_OBJECT, reply_keys),
    NEED_SUB("expect", T_OBJECT, expect_http_keys),
    END,
};
static const struct shape_key case_file_keys[] = {
    CASE_COMMON,
    NEED_SUB("file", T_OBJECT, file_keys),
    NEED_SUB("expect", T_OBJECT, expect_file_keys),
    END,
};
static const struct shape_key written_keys[] = {
    OPT("name", T_STRING),
    OPT("content", T_ANY),
    OPT("content_contains", T_STRING),
    END,
};
static const struct shape_key expect_file_out_keys[] = {
    OPT("outcome", T_STRING),
    OPT("reason", T_STRING),
    OPT("reason_contains", T_STRING),
    OPT("dead_reason", T_STRING),
    SUB("written", T_ARRAY, written_keys),
    END,
};
static const struct shape_key case_file_out_keys[] = {
    CASE_COMMON,
    NEED_SUB("delivery", T_OBJECT, delivery_keys),
    NEED_SUB("expect", T_OBJECT, expect_file_out_keys),
    END,
};
static const struct shape_key expect_poll_keys[] = {
    SUB("request", T_OBJECT | T_NULL, legacy_request_keys),
    SUB("requests", T_ARRAY, legacy_request_keys),
    OPT("cursor", T_STRING | T_NULL),
    OPT("error", T_STRING | T_NULL),
    OPT("error_contains", T_STRING),
    SUB("published", T_ARRAY, published_keys),
    END,
};
static const struct shape_key case_poll_keys[] = {
    CASE_COMMON,
    SUB("response", T_OBJECT, response_keys),
    SUB("responses", T_ARRAY, response_keys),
    OPT("cursor", T_STRING),
    NEED_SUB("expect", T_OBJECT, expect_poll_keys),
    END,
};
static const struct shape_key case_outbound_keys[] = {
    CASE_COMMON,
    NEED_SUB("delivery", T_OBJECT, delivery_keys),
    SUB("response", T_OBJECT, response_keys),
    NEED_SUB("expect", T_OBJECT, expect_outbound_keys),
    END,
};
/* Before the route is known: enough to find it. */
static const struct shape_key case_any_keys[] = {CASE_COMMON, END};

static const char *type_words(unsigned types)
{
    if (types == T_ANY)
        return "any JSON value";
    if (types & T_OBJECT)
        return types & T_NULL ? "an object or null" : "an object { … }";
    if (types & T_ARRAY)
        return "an array [ … ]";
    if (types & T_STRING)
        return types & T_NULL ? "a string or null" : "a string";
    if (types & T_NUMBER)
        return "a number";
    if (types & T_INT)
        return types & T_NULL ? "an integer or null" : "an integer";
    return "true or false";
}

static unsigned type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return T_STRING;
    case JSON_INTEGER:
        return T_INT | T_NUMBER;
    case JSON_REAL:
        return T_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOL;
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_ARRAY:
        return T_ARRAY;
    default:
        return T_NULL;
    }
}

struct checker {
    const char *path; /* the tests file */
    size_t problems;
};

static void problem(struct checker *c, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct checker *c, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: %s: ", c->path, where);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    c->problems++;
}

/* "did you mean": the allowed key closest to name, if close. */
static const char *nearest(const struct shape_key *keys, const char *name)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (const struct shape_key *k = keys; k->name; k++) {
        size_t d = str_edit_distance(k->name, name);
        if (d < best_d) {
            best_d = d;
            best = k->name;
        }
    }
    return best;
}

static void check_object(struct checker *c, json_t *obj, const struct shape_key *keys,
                         const char *where);

static void check_value(struct checker *c, json_t *v, const struct shape_key *k, const char *where)
{
    if (!(type_of(v) & k->types)) {
        problem(c, where, "must be %s", type_words(k->types));
        return;
    }
    if (k->types == T_ANY) /* a body: any JSON */
        return;
    if (json_is_object(v) && k->object)
        check_object(c, v, k->object, where);
    else if (json_is_object(v)) { /* headers, query: names to strings */
        const char *name;
        json_t *value;
        json_object_foreach(v, name, value)
        {
            if (!json_is_string(value) && !json_is_null(value)) {
                char *at = xasprintf("%s.%s", where, name);
                problem(c, at, "must be a string (write \"%s\" as text)", name);
                free(at);
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char *at = xasprintf("%s[%zu]", where, i);
            if (!json_is_object(e))
                problem(c, at, "must be an object { … }");
            else
                check_object(c, e, k->object, at);
            free(at);
        }
    }
}

static void check_object(struct checker *c, json_t *obj, const struct shape_key *keys,
                         const char *where)
{
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v)
    {
        const struct shape_key *k = keys;
        while (k->name && strcmp(k->name, name) != 0)
            k++;
        char *at = xasprintf("%s.%s", where, name);
        if (k->name == NULL) {
            const char *near = nearest(keys, name);
            struct buf allowed = {0};
            for (const struct shape_key *a = keys; a->name; a++)
                buf_printf(&allowed, "%s%s", a == keys ? "" : ", ", a->name);
            if (near)
                problem(c, at, "unknown key; did you mean \"%s\"?", near);
            else
                problem(c, at, "unknown key here; known: %s", allowed.data);
            buf_free(&allowed);
        } else {
            check_value(c, v, k, at);
        }
        free(at);
    }
    for (const struct shape_key *k = keys; k->name; k++)
        if (k->required && json_object_get(obj, k->name) == NULL)
            problem(c, where, "needs \"%s\" (%s)", k->name, type_words(k->types));
}

static struct route *route_named(const struct sidecar_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i]->name, name) == 0)
            return cfg->routes[i];
    return NULL;
}

bool route_test_supported(const struct route *r)
{
    static const struct {
        enum route_direction direction;
        const char *kind;
    } runners[] = {
        {ROUTE_INBOUND, "http"},  {ROUTE_INBOUND, "soap"},  {ROUTE_INBOUND, "file"},
        {ROUTE_INBOUND, "poll"},  {ROUTE_OUTBOUND, "http"}, {ROUTE_OUTBOUND, "soap"},
        {ROUTE_OUTBOUND, "file"},
    };
    for (size_t i = 0; i < sizeof(runners) / sizeof(runners[0]); i++)
        if (runners[i].direction == r->direction && strcmp(runners[i].kind, r->kind->name) == 0)
            return true;
    return false;
}

/* Which input feeds r, and the keys of its cases. */
static const struct shape_key *case_keys(const struct route *r, enum test_input *input)
{
    if (r->direction == ROUTE_OUTBOUND) {
        *input = TEST_DELIVERY;
        return strcmp(r->kind->name, "file") == 0 ? case_file_out_keys : case_outbound_keys;
    }
    if (strcmp(r->kind->name, "file") == 0) {
        *input = TEST_FILE;
        return case_file_keys;
    }
    if (strcmp(r->kind->name, "poll") == 0) {
        *input = TEST_POLL;
        return case_poll_keys;
    }
    *input = TEST_HTTP_REQUEST;
    return case_http_keys;
}

static void check_case(struct checker *c, const struct sidecar_config *cfg, json_t *spec,
                       const char *where, struct test_case *tc)
{
    if (!json_is_object(spec)) {
        problem(c, where, "must be an object { \"route\": …, \"expect\": … }");
        return;
    }
    const char *route = json_string_value(json_object_get(spec, "route"));
    if (route == NULL) {
        check_object(c, spec, case_any_keys, where);
        return;
    }
    tc->route = route_named(cfg, route);
    if (tc->route == NULL) {
        struct buf names = {0};
        for (size_t i = 0; i < cfg->n_routes; i++)
            buf_printf(&names, "%s%s", i ? ", " : "", cfg->routes[i]->name);
        problem(c, where, "no route \"%s\" in %s; its routes are: %s", route, cfg->path,
                names.data ? names.data : "(none)");
        buf_free(&names);
        return;
    }
    /* A kind without a runner fails each of its cases when run, saying so. */
    if (route_test_supported(tc->route))
        check_object(c, spec, case_keys(tc->route, &tc->input), where);
    const char *broker = json_string_value(json_object_get(spec, "broker"));
    if (broker && strcmp(broker, "confirm") != 0 && strcmp(broker, "nack") != 0 &&
        strcmp(broker, "down") != 0) {
        char *at = xasprintf("%s.broker", where);
        problem(c, at, "is \"%s\"; write \"confirm\" (the default), \"nack\" or \"down\"", broker);
        free(at);
    }
    const char *file = json_string_value(json_object_get(json_object_get(spec, "file"), "name"));
    if (file &&
        (*file == '\0' || strchr(file, '/') || strcmp(file, ".") == 0 || strcmp(file, "..") == 0)) {
        char *at = xasprintf("%s.file.name", where);
        problem(c, at, "must be a file name without '/'");
        free(at);
    }
    tc->spec = spec;
    tc->expect = json_object_get(spec, "expect");
    const char *name = json_string_value(json_object_get(spec, "name"));
    tc->name = name ? xstrdup(name) : NULL;
}

int route_test_load(const char *path, const struct sidecar_config *cfg, json_t **root,
                    struct test_case **cases, size_t *n_cases)
{
    *cases = NULL;
    *n_cases = 0;
    json_error_t jerr;
    *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (*root == NULL) {
        if (jerr.line < 1)
            fprintf(stderr, "%s: %s\n", path, jerr.text);
        else
            fprintf(stderr,
                    "%s:%d:%d: %s (a tests file is JSON: check for a missing comma or quote, "
                    "or a trailing comma, just before)\n",
                    path, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    struct checker c = {.path = path};
    json_t *tests = json_object_get(*root, "tests");
    if (!json_is_object(*root) || !json_is_array(tests)) {
        problem(&c, "top level",
                "must be an object { \"tests\": [ { \"route\": …, \"expect\": … }, … ] }");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(*root, key, v)
    {
        if (strcmp(key, "tests") != 0 && strcmp(key, "comment") != 0)
            problem(&c, key,
                    "unknown key at the top level; it holds \"tests\" (and a \"comment\")");
    }
    size_t n = json_array_size(tests);
    struct test_case *tc = xcalloc(n ? n : 1, sizeof(*tc));
    for (size_t i = 0; i < n; i++) {
        char *where = xasprintf("tests[%zu]", i);
        check_case(&c, cfg, json_array_get(tests, i), where, &tc[i]);
        if (tc[i].name == NULL)
            tc[i].name = xasprintf("case %zu", i + 1);
        free(where);
    }
    if (n == 0)
        problem(&c, "tests", "is empty; add a case { \"route\": …, \"expect\": … }");
    *cases = tc;
    *n_cases = n;
    if (c.problems == 0)
        return 0;
    fprintf(stderr, "%s: %zu problem%s; no case was run\n", path, c.problems,
            c.problems == 1 ? "" : "s");
    return -1;
}

void route_test_cases_free(struct test_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(cases[i].name);
    free(cases);
}

char *route_test_body_text(json_t *body, size_t *len)
{
    char *text;
    if (body == NULL)
        text = xstrdup("");
    else if (json_is_string(body))
        text = xstrndup(json_string_value(body), json_string_length(body));
    else
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    *len = strlen(text);
    if (json_is_string(body))
        *len = json_string_length(body);
    return text;
}
