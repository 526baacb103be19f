/*
 * route_test_compare — a case's expectation against what its route did, one
 * line per field that differs (see route_test_internal.h for the rules).
 * Only what the operator wrote is checked, so a case names what matters to
 * it (the routing key, one header) and survives the rest (uuids, timestamps).
 */
#include "route_test_internal.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SHOWN_MAX 300 /* bytes of a value shown in a diff line */

struct diff {
    struct buf *out;
    size_t n;
};

static void show(struct buf *out, json_t *v)
{
    if (v == NULL) {
        buf_puts(out, "(absent)");
        return;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = text ? strlen(text) : 0;
    if (len > SHOWN_MAX)
        buf_printf(out, "%.*s… (%zu bytes)", SHOWN_MAX, text, len);
    else
        buf_puts(out, text ? text : "?");
    free(text);
}

static void differs(struct diff *d, const char *path, json_t *expected, json_t *got,
                    const char *how)
{
    buf_printf(d->out, "    %s: expected %s", path, how ? how : "");
    show(d->out, expected);
    buf_puts(d->out, ", got ");
    show(d->out, got);
    buf_puts(d->out, "\n");
    d->n++;
}

static bool scalars_equal(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    return json_equal(a, b);
}

static void compare_value(struct diff *d, const char *path, json_t *expect, json_t *got);

/* Header names match case-insensitively (HTTP's rule; AMQP's tables are ours and
 * lower-case already). */
static json_t *header_get(json_t *headers, const char *name)
{
    const char *key;
    json_t *v;
    json_object_foreach(headers, key, v)
    {
        if (strcasecmp(key, name) == 0)
            return v;
    }
    return NULL;
}

static void compare_headers(struct diff *d, const char *path, json_t *expect, json_t *got)
{
    const char *name;
    json_t *want;
    json_object_foreach(expect, name, want)
    {
        char *at = xasprintf("%s.%s", path, name);
        json_t *have = header_get(got, name);
        if (json_is_null(want) ? have != NULL && !json_is_null(have)
                               : have == NULL || !json_equal(want, have))
            differs(d, at, json_is_null(want) ? NULL : want, have, NULL);
        free(at);
    }
}

/* A body given as a JSON value matches a body that parses to it. */
static void compare_body(struct diff *d, const char *path, json_t *expect, json_t *got)
{
    if (json_is_string(expect) || !json_is_string(got)) {
        if (!json_equal(expect, got))
            differs(d, path, expect, got, NULL);
        return;
    }
    json_t *parsed =
        json_loadb(json_string_value(got), json_string_length(got), JSON_DECODE_ANY, NULL);
    if (parsed == NULL)
        differs(d, path, expect, got, "JSON ");
    else
        compare_value(d, path, expect, parsed);
    json_decref(parsed);
}

static void compare_object(struct diff *d, const char *path, json_t *expect, json_t *got)
{
    const char *key;
    json_t *want;
    json_object_foreach(expect, key, want)
    {
        size_t len = strlen(key);
        bool contains = len > 9 && strcmp(key + len - 9, "_contains") == 0;
        char *base = xstrndup(key, contains ? len - 9 : len);
        char *at = xasprintf("%s.%s", path, base);
        json_t *have = json_object_get(got, base);
        if (contains) {
            const char *h = json_string_value(have);
            if (h == NULL || strstr(h, json_string_value(want)) == NULL)
                differs(d, at, want, have, "text containing ");
        } else if (strcmp(base, "headers") == 0 && json_is_object(want)) {
            compare_headers(d, at, want, json_is_object(have) ? have : NULL);
        } else if (strcmp(base, "body") == 0 || strcmp(base, "content") == 0) {
            compare_body(d, at, want, have);
        } else if (json_is_null(want)) {
            if (have != NULL && !json_is_null(have))
                differs(d, at, NULL, have, NULL);
        } else {
            compare_value(d, at, want, have);
        }
        free(at);
        free(base);
    }
}

static void compare_value(struct diff *d, const char *path, json_t *expect, json_t *got)
{
    if (got == NULL || json_typeof(expect) != json_typeof(got)) {
        if (got == NULL || !scalars_equal(expect, got))
            differs(d, path, expect, got, NULL);
        return;
    }
    if (json_is_object(expect)) {
        compare_object(d, path, expect, got);
    } else if (json_is_array(expect)) {
        if (json_array_size(expect) != json_array_size(got)) {
            char how[64];
            snprintf(how, sizeof(how), "%zu item%s ", json_array_size(expect),
                     json_array_size(expect) == 1 ? "" : "s");
            differs(d, path, expect, got, how);
            return;
        }
        size_t i;
        json_t *e;
        json_array_foreach(expect, i, e)
        {
            char *at = xasprintf("%s[%zu]", path, i);
            compare_value(d, at, e, json_array_get(got, i));
            free(at);
        }
    } else if (!scalars_equal(expect, got)) {
        differs(d, path, expect, got, NULL);
    }
}

size_t route_test_compare(json_t *expect, json_t *got, struct buf *out)
{
    struct diff d = {.out = out};
    compare_object(&d, "expect", expect, got);
    return d.n;
}
