/*
 * config_diff — compare two configs key by key through the key tables, so a
 * key added to a table is compared without a line here (see config_diff.h).
 */
#include "config_diff.h"

#include "route.h"
#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

const char *route_change_name(enum route_change c)
{
    static const char *const names[ROUTE_CHANGES] = {"unchanged", "changed", "added", "removed"};
    return (unsigned)c < ROUTE_CHANGES ? names[c] : "?";
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_strings(const struct strlist *a, const struct strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!same_text(a->v[i], b->v[i]))
            return false;
    return true;
}

static bool same_numbers(const struct numlist *a, const struct numlist *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof(*a->v)) == 0);
}

static bool same_map(const struct strmap *a, const struct strmap *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!same_text(a->names[i], b->names[i]) || !same_text(a->values[i], b->values[i]))
            return false;
    return true;
}

static bool same_secrets(const struct secretlist *a, const struct secretlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!same_text(a->v[i].path, b->v[i].path))
            return false;
    return true;
}

/* One key's value in both structs (not a group). */
static bool same_value(const struct config_key *k, const void *a, const void *b)
{
    const char *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;
    switch (k->type) {
    case KEY_INT:
        return *(const int *)x == *(const int *)y;
    case KEY_NUMBER:
        return *(const double *)x == *(const double *)y;
    case KEY_BOOL:
        return *(const bool *)x == *(const bool *)y;
    case KEY_STRINGS:
        return same_strings((const struct strlist *)x, (const struct strlist *)y);
    case KEY_NUMBERS:
        return same_numbers((const struct numlist *)x, (const struct numlist *)y);
    case KEY_MAP:
        return same_map((const struct strmap *)x, (const struct strmap *)y);
    case KEY_SECRET:
        return same_text(((const struct secret *)x)->path, ((const struct secret *)y)->path);
    case KEY_SECRETS:
        return same_secrets((const struct secretlist *)x, (const struct secretlist *)y);
    case KEY_GROUP:
    case KEY_ROUTES:
        return true; /* not values: the caller walks groups, routes are compared one by one */
    default:
        return same_text(*(char *const *)x, *(char *const *)y);
    }
}

size_t config_diff_keys(const struct config_key *keys, const void *a, const void *b,
                        const char *prefix, struct buf *out)
{
    size_t n = 0;
    for (const struct config_key *k = keys; k && k->name; k++) {
        if (k->type == KEY_GROUP) {
            char *inner = xasprintf("%s%s.", prefix, k->name);
            n += config_diff_keys(k->group, (const char *)a + k->offset,
                                  (const char *)b + k->offset, inner, out);
            free(inner);
        } else if (!same_value(k, a, b)) {
            buf_printf(out, "%s%s%s", out->len ? ", " : "", prefix, k->name);
            n++;
        }
    }
    return n;
}

size_t config_diff_route(const struct route *a, const struct route *b, struct buf *out)
{
    if (a->direction != b->direction) {
        buf_printf(out, "%sdirection", out->len ? ", " : "");
        return 1;
    }
    if (a->kind != b->kind) {
        buf_printf(out, "%skind", out->len ? ", " : "");
        return 1;
    }
    size_t n = config_diff_keys(route_common_keys, a, b, "", out);
    n += config_diff_keys(a->direction == ROUTE_INBOUND ? route_inbound_keys : route_outbound_keys,
                          a, b, "", out);
    if (a->kind->paced)
        n += config_diff_keys(route_rate_keys, a, b, "", out);
    return n + config_diff_keys(a->kind->keys, a->opts, b->opts, "", out);
}

size_t config_diff_process(const struct sidecar_config *a, const struct sidecar_config *b,
                           struct buf *out)
{
    return config_diff_keys(config_process_keys, a, b, "", out);
}

static struct route *route_named(const struct sidecar_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i]->name, name) == 0)
            return cfg->routes[i];
    return NULL;
}

static void plan_add(struct config_plan *plan, enum route_change change, struct route *running,
                     struct route *next, char *keys)
{
    plan->routes = xrealloc(plan->routes, (plan->n_routes + 1) * sizeof(*plan->routes));
    plan->routes[plan->n_routes++] =
        (struct route_plan){.change = change, .running = running, .next = next, .keys = keys};
    plan->count[change]++;
}

void config_plan_make(const struct sidecar_config *running, const struct sidecar_config *next,
                      struct config_plan *plan)
{
    *plan = (struct config_plan){0};
    struct buf process = {0};
    if (config_diff_process(running, next, &process) > 0)
        plan->process_keys = buf_steal(&process, NULL);
    buf_free(&process);
    for (size_t i = 0; i < next->n_routes; i++) {
        struct route *n = next->routes[i];
        struct route *r = route_named(running, n->name);
        struct buf keys = {0};
        if (r == NULL)
            plan_add(plan, ROUTE_ADDED, NULL, n, NULL);
        else if (config_diff_route(r, n, &keys) > 0)
            plan_add(plan, ROUTE_CHANGED, r, n, buf_steal(&keys, NULL));
        else
            plan_add(plan, ROUTE_UNCHANGED, r, n, NULL);
        buf_free(&keys);
    }
    for (size_t i = 0; i < running->n_routes; i++)
        if (route_named(next, running->routes[i]->name) == NULL)
            plan_add(plan, ROUTE_REMOVED, running->routes[i], NULL, NULL);
}

void config_plan_free(struct config_plan *plan)
{
    for (size_t i = 0; i < plan->n_routes; i++)
        free(plan->routes[i].keys);
    free(plan->routes);
    free(plan->process_keys);
    *plan = (struct config_plan){0};
}
