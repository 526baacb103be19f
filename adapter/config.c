/*
 * config — load a libconfig file and validate it completely before anything
 * starts (the same code path for `check` and `run`).
 *
 * The work is table-driven: config_apply_tables walks a group's settings,
 * refuses keys no table knows (suggesting the nearest known one), checks each
 * value's type and range, resolves file paths against the config's directory,
 * loads secret files after checking their permissions, and fills defaults.
 * Routes get three tables: the keys every route has, the keys of their
 * direction, and their kind's own keys. Cross-route checks (duplicate names,
 * clashing queues or listeners) run last. Every problem is collected with
 * its line so one `check` run shows them all.
 */
#include "config.h"
#include "config_internal.h"

#include "broker_url.h"
#include "jq_transform.h"
#include "route.h"
#include "util.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------- */

static int line_of(const config_setting_t *s)
{
    return s ? (int)config_setting_source_line(s) : 0;
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array [ ]";
    case CONFIG_TYPE_LIST:
        return "a list ( )";
    case CONFIG_TYPE_GROUP:
        return "a group { }";
    default:
        return "a value";
    }
}

static const char *expected_name(enum key_type type)
{
    switch (type) {
    case KEY_INT:
        return "an integer";
    case KEY_NUMBER:
        return "a number";
    case KEY_BOOL:
        return "true or false";
    case KEY_STRINGS:
        return "an array of strings [\"a\", \"b\"]";
    case KEY_NUMBERS:
        return "an array of numbers [1, 5, 30]";
    case KEY_MAP:
    case KEY_GROUP:
        return "a group { … }";
    case KEY_ROUTES:
        return "a list of groups ( { … }, { … } )";
    default:
        return "a string in double quotes";
    }
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void *field(void *base, const struct config_key *k)
{
    return (char *)base + k->offset;
}

char *config_resolve_path(const char *dir, const char *path)
{
    if (path[0] == '/' || dir == NULL)
        return xstrdup(path);
    return xasprintf("%s/%s", dir, path);
}

static bool valid_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 100)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' ||
              *s == '-'))
            return false;
    return true;
}

/* ---- one value ----------------------------------------------------------- */

/* Everything a value parser needs to store or report one key. */
struct value_ctx {
    const struct config_key *key;
    void *base;
    const char *where;
    int line;
    const struct sidecar_config *cfg;
    struct config_report *rep;
};

static bool in_range(const struct config_key *k, double v)
{
    return (k->min == 0 && k->max == 0) || (v >= k->min && v <= k->max);
}

static void range_error(const struct value_ctx *c, double v)
{
    config_report_add(c->rep, c->line, "%s: %s = %g is out of range; use a value from %g to %g",
                      c->where, c->key->name, v, c->key->min, c->key->max);
}

/* Stores a string-typed value (STRING, NAME, ENUM, FILE, SECRET, PATH, LISTEN, URL). */
static void store_text(const struct value_ctx *c, const char *text)
{
    const struct config_key *k = c->key;
    void *slot = field(c->base, k);
    switch (k->type) {
    case KEY_NAME:
        if (!valid_name(text)) {
            config_report_add(c->rep, c->line,
                              "%s: %s = \"%s\" is not a valid name; use lower-case letters, digits, "
                              "'_', '.' and '-' (at most 100)",
                              c->where, k->name, text);
            return;
        }
        break;
    case KEY_ENUM: {
        size_t len = strlen(text);
        const char *p = k->choices;
        bool found = false;
        while (p && *p) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            if (n == len && strncmp(p, text, n) == 0)
                found = true;
            p = bar ? bar + 1 : NULL;
        }
        if (!found) {
            config_report_add(c->rep, c->line, "%s: %s = \"%s\" is not one of: %s", c->where,
                              k->name, text, k->choices);
            return;
        }
        break;
    }
    case KEY_LISTEN: {
        char host[256];
        int port;
        if (config_parse_listen(text, host, sizeof(host), &port) != 0) {
            config_report_add(c->rep, c->line,
                              "%s: %s = \"%s\" is not host:port (e.g. \"127.0.0.1:8081\")",
                              c->where, k->name, text);
            return;
        }
        break;
    }
    case KEY_URL:
        if (strncmp(text, "http://", 7) != 0 && strncmp(text, "https://", 8) != 0) {
            config_report_add(c->rep, c->line,
                              "%s: %s = \"%s\" must be an http:// or https:// URL", c->where,
                              k->name, text);
            return;
        }
        break;
    case KEY_FILE: {
        char *path = config_resolve_path(c->cfg ? c->cfg->dir : NULL, text);
        struct stat st;
        if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
            config_report_add(c->rep, c->line, "%s: %s: cannot read \"%s\": %s", c->where,
                              k->name, path, strerror(errno));
        } else if (!S_ISREG(st.st_mode)) {
            config_report_add(c->rep, c->line, "%s: %s: \"%s\" is not a regular file", c->where,
                              k->name, path);
        }
        free(*(char **)slot);
        *(char **)slot = path;
        return;
    }
    case KEY_PATH: {
        free(*(char **)slot);
        *(char **)slot = config_resolve_path(c->cfg ? c->cfg->dir : NULL, text);
        return;
    }
    case KEY_SECRET: {
        struct secret *sec = slot;
        char *path = config_resolve_path(c->cfg ? c->cfg->dir : NULL, text);
        free(sec->path);
        sec->path = path;
        config_secret_load(sec, path, c->line, c->where, k->name, c->rep);
        return;
    }
    default:
        break;
    }
    free(*(char **)slot);
    *(char **)slot = xstrdup(text);
}

static void list_append_text(const struct value_ctx *c, const char *text)
{
    struct strlist *l = field(c->base, c->key);
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = xstrdup(text);
}

static void list_append_number(const struct value_ctx *c, double v)
{
    if (!in_range(c->key, v)) {
        range_error(c, v);
        return;
    }
    struct numlist *l = field(c->base, c->key);
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = v;
}

static void store_number(const struct value_ctx *c, double v)
{
    if (!in_range(c->key, v)) {
        range_error(c, v);
        return;
    }
    if (c->key->type == KEY_INT)
        *(int *)field(c->base, c->key) = (int)v;
    else
        *(double *)field(c->base, c->key) = v;
}

static void clear_list(const struct value_ctx *c)
{
    if (c->key->type == KEY_STRINGS) {
        struct strlist *l = field(c->base, c->key);
        for (size_t i = 0; i < l->n; i++)
            free(l->v[i]);
        free(l->v);
        *l = (struct strlist){0};
    } else {
        struct numlist *l = field(c->base, c->key);
        free(l->v);
        *l = (struct numlist){0};
    }
}

/* Applies the default written as text ("30", "true", "1,5,30"). */
static void apply_default(const struct value_ctx *c)
{
    const struct config_key *k = c->key;
    switch (k->type) {
    case KEY_INT:
    case KEY_NUMBER:
        store_number(c, strtod(k->dflt, NULL));
        break;
    case KEY_BOOL:
        *(bool *)field(c->base, k) = strcmp(k->dflt, "true") == 0;
        break;
    case KEY_STRINGS:
    case KEY_NUMBERS: {
        char *copy = xstrdup(k->dflt);
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (k->type == KEY_STRINGS)
                list_append_text(c, t);
            else
                list_append_number(c, strtod(t, NULL));
        }
        free(copy);
        break;
    }
    default:
        if (k->type != KEY_GROUP && k->type != KEY_MAP && k->type != KEY_ROUTES)
            store_text(c, k->dflt);
        break;
    }
}

static bool is_number(int type)
{
    return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64 || type == CONFIG_TYPE_FLOAT;
}

static void wrong_type(const struct value_ctx *c, const config_setting_t *s)
{
    config_report_add(c->rep, c->line, "%s: %s must be %s, not %s", c->where, c->key->name,
                      expected_name(c->key->type), type_name(config_setting_type(s)));
}

static void apply_value(const struct value_ctx *c, config_setting_t *s);

static void apply_map(const struct value_ctx *c, config_setting_t *s)
{
    struct strmap *m = field(c->base, c->key);
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            config_report_add(c->rep, line_of(e), "%s: %s.%s must be a string", c->where,
                              c->key->name, config_setting_name(e));
            continue;
        }
        m->names = xrealloc(m->names, (m->n + 1) * sizeof(char *));
        m->values = xrealloc(m->values, (m->n + 1) * sizeof(char *));
        m->names[m->n] = xstrdup(config_setting_name(e));
        m->values[m->n] = xstrdup(config_setting_get_string(e));
        m->n++;
    }
}

static void apply_value(const struct value_ctx *c, config_setting_t *s)
{
    int type = config_setting_type(s);
    switch (c->key->type) {
    case KEY_INT:
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return wrong_type(c, s);
        store_number(c, (double)config_setting_get_int64(s));
        return;
    case KEY_NUMBER:
        if (!is_number(type))
            return wrong_type(c, s);
        store_number(c, type == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                                  : (double)config_setting_get_int64(s));
        return;
    case KEY_BOOL:
        if (type != CONFIG_TYPE_BOOL)
            return wrong_type(c, s);
        *(bool *)field(c->base, c->key) = config_setting_get_bool(s);
        return;
    case KEY_STRINGS:
    case KEY_NUMBERS: {
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
            return wrong_type(c, s);
        clear_list(c);
        int n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
            config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            int et = config_setting_type(e);
            if (c->key->type == KEY_STRINGS && et == CONFIG_TYPE_STRING)
                list_append_text(c, config_setting_get_string(e));
            else if (c->key->type == KEY_NUMBERS && is_number(et))
                list_append_number(c, et == CONFIG_TYPE_FLOAT ? config_setting_get_float(e)
                                                              : (double)config_setting_get_int64(e));
            else
                return wrong_type(c, s);
        }
        if (n == 0 && c->key->type == KEY_NUMBERS)
            config_report_add(c->rep, c->line, "%s: %s must not be empty", c->where,
                              c->key->name);
        return;
    }
    case KEY_MAP:
        if (type != CONFIG_TYPE_GROUP)
            return wrong_type(c, s);
        apply_map(c, s);
        return;
    case KEY_GROUP:
    case KEY_ROUTES:
        return; /* handled by the caller */
    default:
        if (type != CONFIG_TYPE_STRING)
            return wrong_type(c, s);
        store_text(c, config_setting_get_string(s));
        return;
    }
}

/* ---- tables -------------------------------------------------------------- */

/* Finds `name` in a table (not descending into groups). */
static const struct config_key *key_find(const struct config_key *keys, const char *name)
{
    for (const struct config_key *k = keys; k && k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

static void suggest(const struct key_table *tables, size_t n_tables, const char *name,
                    const char **best, size_t *best_d)
{
    for (size_t t = 0; t < n_tables; t++)
        for (const struct config_key *k = tables[t].keys; k && k->name; k++) {
            size_t d = edit_distance(name, k->name);
            if (d < *best_d) {
                *best_d = d;
                *best = k->name;
            }
        }
}

static void apply_group(const struct key_table *tables, size_t n_tables, config_setting_t *setting,
                        const char *where, const struct sidecar_config *cfg,
                        struct config_report *rep);

void config_apply_tables(const struct key_table *tables, size_t n_tables,
                         config_setting_t *setting, const char *where,
                         const struct sidecar_config *cfg, struct config_report *rep)
{
    apply_group(tables, n_tables, setting, where, cfg, rep);
}

static void apply_group(const struct key_table *tables, size_t n_tables, config_setting_t *setting,
                        const char *where, const struct sidecar_config *cfg,
                        struct config_report *rep)
{
    /* Unknown keys first, so a typo is reported next to the key it hides. */
    int n = setting ? config_setting_length(setting) : 0;
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(setting, (unsigned)i);
        const char *name = config_setting_name(s);
        bool known = false;
        for (size_t t = 0; t < n_tables && !known; t++)
            known = key_find(tables[t].keys, name) != NULL;
        if (known)
            continue;
        const char *best = NULL;
        size_t best_d = 3; /* suggest only close matches */
        suggest(tables, n_tables, name, &best, &best_d);
        if (best)
            config_report_add(rep, line_of(s), "%s: unknown key \"%s\" (did you mean \"%s\"?)",
                              where, name, best);
        else
            config_report_add(rep, line_of(s), "%s: unknown key \"%s\"", where, name);
    }

    for (size_t t = 0; t < n_tables; t++) {
        for (const struct config_key *k = tables[t].keys; k && k->name; k++) {
            config_setting_t *s = setting ? config_setting_get_member(setting, k->name) : NULL;
            struct value_ctx c = {.key = k,
                                  .base = tables[t].base,
                                  .where = where,
                                  .line = s ? line_of(s) : line_of(setting),
                                  .cfg = cfg,
                                  .rep = rep};
            if (k->type == KEY_GROUP) {
                if (s != NULL && config_setting_type(s) != CONFIG_TYPE_GROUP) {
                    wrong_type(&c, s);
                    continue;
                }
                if (s == NULL && (k->flags & KEY_REQUIRED)) {
                    config_report_add(rep, c.line, "%s: missing required group \"%s\"", where,
                                      k->name);
                    continue;
                }
                char *sub_where = xasprintf("%s.%s", where, k->name);
                struct key_table sub = {.keys = k->group, .base = tables[t].base};
                apply_group(&sub, 1, s, sub_where, cfg, rep);
                free(sub_where);
                continue;
            }
            if (s != NULL) {
                apply_value(&c, s);
            } else if (k->flags & KEY_REQUIRED) {
                config_report_add(rep, c.line, "%s: missing required key \"%s\" (%s)", where,
                                  k->name, k->doc ? k->doc : expected_name(k->type));
            } else if (k->dflt != NULL) {
                apply_default(&c);
            }
        }
    }
}

static void free_value(const struct config_key *k, void *base)
{
    void *slot = field(base, k);
    switch (k->type) {
    case KEY_INT:
    case KEY_NUMBER:
    case KEY_BOOL:
    case KEY_ROUTES:
        break;
    case KEY_GROUP:
        config_free_keys(k->group, base);
        break;
    case KEY_STRINGS: {
        struct strlist *l = slot;
        for (size_t i = 0; i < l->n; i++)
            free(l->v[i]);
        free(l->v);
        *l = (struct strlist){0};
        break;
    }
    case KEY_NUMBERS: {
        struct numlist *l = slot;
        free(l->v);
        *l = (struct numlist){0};
        break;
    }
    case KEY_MAP: {
        struct strmap *m = slot;
        for (size_t i = 0; i < m->n; i++) {
            free(m->names[i]);
            free(m->values[i]);
        }
        free(m->names);
        free(m->values);
        *m = (struct strmap){0};
        break;
    }
    case KEY_SECRET:
        config_secret_free(slot);
        break;
    default:
        free(*(char **)slot);
        *(char **)slot = NULL;
        break;
    }
}

void config_free_keys(const struct config_key *keys, void *base)
{
    for (const struct config_key *k = keys; k && k->name; k++)
        free_value(k, base);
}

/* ---- the process keys ----------------------------------------------------- */

#define CFG(field) offsetof(struct sidecar_config, field)

static const struct config_key tls_keys[] = {
    {"ca", KEY_FILE, CFG(broker.tls.ca), 0, NULL, NULL, 0, 0, NULL,
     "CA certificate file (PEM) to verify the broker; default: the system store"},
    {"cert", KEY_FILE, CFG(broker.tls.cert), 0, NULL, NULL, 0, 0, NULL,
     "client certificate (PEM) for mutual TLS"},
    {"key", KEY_SECRET, CFG(broker.tls.key), 0, NULL, NULL, 0, 0, NULL,
     "client private key (PEM), mode 0600"},
    {"verify", KEY_BOOL, CFG(broker.tls.verify), 0, "true", NULL, 0, 0, NULL,
     "verify the broker's certificate and host name (turn off only for tests)"},
    {0},
};

static const struct config_key broker_keys[] = {
    {"url", KEY_STRING, CFG(broker.url), 0, NULL, NULL, 0, 0, NULL,
     "amqp://user:pass@host:port/vhost or amqps:// for TLS (vhost \"/\" is %2f)"},
    {"urls", KEY_STRINGS, CFG(broker.urls), 0, NULL, NULL, 0, 0, NULL,
     "cluster nodes, tried in order on each reconnect (instead of url)"},
    {"password_file", KEY_SECRET, CFG(broker.password), 0, NULL, NULL, 0, 0, NULL,
     "file holding the broker password (mode 0600); overrides the URL's"},
    {"heartbeat", KEY_INT, CFG(broker.heartbeat), 0, "30", NULL, 0, 3600, NULL,
     "AMQP heartbeat in seconds (0 = off)"},
    {"connect_timeout", KEY_NUMBER, CFG(broker.connect_timeout), 0, "5", NULL, 0.1, 300, NULL,
     "seconds to open a connection before trying the next URL"},
    {"confirm_timeout", KEY_NUMBER, CFG(broker.confirm_timeout), 0, "15", NULL, 0.1, 3600, NULL,
     "seconds to wait for a publisher confirm before the connection is reset"},
    {"max_inflight", KEY_INT, CFG(broker.max_inflight), 0, "1024", NULL, 1, 32768, NULL,
     "publishes awaiting confirm per connection (the group-commit window)"},
    {"max_message", KEY_INT, CFG(broker.max_message), 0, "16777216", NULL, 4096, 536870912, NULL,
     "largest message body the broker takes: set it to RabbitMQ's max_message_size (16 MiB "
     "from 4.0, 128 MiB before); a larger one is refused for its sender alone, where the broker "
     "would close the channel every publish in flight shares"},
    {"tls", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, tls_keys, "TLS settings for amqps://"},
    {0},
};

static const struct config_key admin_keys[] = {
    {"listen", KEY_LISTEN, CFG(admin.listen), 0, NULL, NULL, 0, 0, NULL,
     "host:port for GET /healthz /readyz /metrics; unset = no admin endpoint"},
    {"max_connections", KEY_INT, CFG(admin.max_connections), 0, "32", NULL, 2, 1024, NULL,
     "connections at once to the admin listener; its own budget, apart from the routes' "
     "(unless a route shares its listen address)"},
    {0},
};

static const struct config_key http_keys[] = {
    {"max_connections", KEY_INT, CFG(http.max_connections), 0, "4096", NULL, 2, 1000000, NULL,
     "connections at once per route listener (more wait in the listen backlog); lowered at start "
     "if RLIMIT_NOFILE cannot hold them all"},
    {"max_connections_per_ip", KEY_INT, CFG(http.max_connections_per_ip), 0, "256", NULL, 0,
     1000000, NULL,
     "connections at once from one client address per listener (more are closed at once); "
     "0 = no limit; raise it when clients come through one proxy or NAT"},
    {"read_timeout", KEY_NUMBER, CFG(http.read_timeout), 0, "10", NULL, 0.1, 3600, NULL,
     "seconds a whole request (request line, headers, body) may take to arrive, from accept or, "
     "kept alive, from its request line; then the connection is closed"},
    {"idle_timeout", KEY_NUMBER, CFG(http.idle_timeout), 0, "60", NULL, 1, 3600, NULL,
     "seconds a kept-alive connection may wait for its next request (and a slow reader may "
     "stall an answer)"},
    {0},
};

const struct config_key config_process_keys[] = {
    {"name", KEY_NAME, CFG(name), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "the legacy system's name; prefixes every queue the sidecar owns"},
    {"broker", KEY_GROUP, 0, KEY_REQUIRED, NULL, NULL, 0, 0, broker_keys, "RabbitMQ connection"},
    {"admin", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, admin_keys, "health and metrics endpoint"},
    {"http", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, http_keys,
     "limits of the route listeners (http and soap inbound)"},
    {"log_format", KEY_ENUM, CFG(log_format), 0, "logfmt", "logfmt|json", 0, 0, NULL,
     "one line per event on stderr, as logfmt or JSON"},
    {"state_dir", KEY_PATH, CFG(state_dir), 0, NULL, NULL, 0, 0, NULL,
     "where poll cursors are kept; default $STATE_DIRECTORY or /var/lib/amqp-sidecar/<name>"},
    {"drain_timeout", KEY_NUMBER, CFG(drain_timeout), 0, "30", NULL, 0, 3600, NULL,
     "seconds SIGTERM waits for in-flight work before closing anyway"},
    {"inbound", KEY_ROUTES, 0, 0, NULL, NULL, 0, 0, NULL, "routes legacy → AMQP"},
    {"outbound", KEY_ROUTES, 0, 0, NULL, NULL, 0, 0, NULL, "routes AMQP → legacy"},
    {0},
};

/* ---- routes --------------------------------------------------------------- */

static void route_free(struct route *r)
{
    if (r == NULL)
        return;
    if (r->kind != NULL) {
        if (r->kind->free_opts)
            r->kind->free_opts(r);
        config_free_keys(r->kind->keys, r->opts);
    }
    free(r->opts);
    transform_free(r->transform);
    config_free_keys(route_common_keys, r);
    config_free_keys(r->direction == ROUTE_INBOUND ? route_inbound_keys : route_outbound_keys, r);
    free(r->dlx);
    free(r->dlq);
    free(r->dlq_key);
    free(r->app_id);
    free(r);
}

/* Derives the names DESIGN.md fixes: queues, DLX, DLQ and their keys. */
static void route_derive(struct route *r, const struct sidecar_config *cfg)
{
    r->dlx = xasprintf("%s.dlx", cfg->name ? cfg->name : "sidecar");
    r->app_id = xasprintf("amqp-sidecar/%s", cfg->name ? cfg->name : "sidecar");
    if (r->direction == ROUTE_OUTBOUND) {
        if (r->queue == NULL)
            r->queue = xasprintf("%s.%s", cfg->name ? cfg->name : "sidecar", r->name);
        r->dlq = xasprintf("%s.dlq", r->queue);
        r->dlq_key = xstrdup(r->queue);
    } else {
        r->dlq_key = xasprintf("%s.%s", cfg->name ? cfg->name : "sidecar", r->name);
        r->dlq = xasprintf("%s.dlq", r->dlq_key);
    }
}

static struct route *route_parse(config_setting_t *s, enum route_direction dir,
                                 struct sidecar_config *cfg, struct config_report *rep)
{
    const char *list = dir == ROUTE_INBOUND ? "inbound" : "outbound";
    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        config_report_add(rep, line_of(s), "%s: each route must be a group { name = …; kind = …; }",
                          list);
        return NULL;
    }
    struct route *r = xcalloc(1, sizeof(*r));
    r->direction = dir;
    r->line = line_of(s);

    const char *name = NULL, *kind = NULL;
    config_setting_lookup_string(s, "name", &name);
    config_setting_lookup_string(s, "kind", &kind);
    char *where = name ? xasprintf("%s route \"%s\"", list, name)
                       : xasprintf("%s route at line %d", list, r->line);

    if (kind != NULL) {
        r->kind = route_kind_find(dir, kind);
        if (r->kind == NULL) {
            struct buf avail = {0};
            for (const struct route_kind *const *k = route_kinds(); *k; k++)
                if ((*k)->direction == dir)
                    buf_printf(&avail, "%s%s", avail.len ? ", " : "", (*k)->name);
            config_report_add(rep, line_of(config_setting_get_member(s, "kind")),
                              "%s: unknown kind \"%s\"; %s routes can be: %s", where, kind, list,
                              avail.data ? avail.data : "(none)");
            buf_free(&avail);
        }
    }

    struct key_table tables[3] = {
        {route_common_keys, r},
        {dir == ROUTE_INBOUND ? route_inbound_keys : route_outbound_keys, r},
        {NULL, NULL},
    };
    size_t n_tables = 2;
    if (r->kind != NULL) {
        r->opts = xcalloc(1, r->kind->opts_size ? r->kind->opts_size : 1);
        tables[2] = (struct key_table){r->kind->keys, r->opts};
        n_tables = 3;
        config_apply_tables(tables, n_tables, s, where, cfg, rep);
    } else {
        /* Without a kind we cannot tell its keys from typos: check only the common ones. */
        size_t before = rep->n;
        config_apply_tables(tables, n_tables, s, where, cfg, rep);
        for (size_t i = before; i < rep->n; i++) {
            if (strstr(rep->errors[i].msg, "unknown key")) {
                free(rep->errors[i].msg);
                rep->errors[i] = rep->errors[--rep->n];
                i--;
            }
        }
    }
    free(where);
    if (r->name == NULL || (kind != NULL && r->kind == NULL) || kind == NULL) {
        route_free(r);
        return NULL;
    }
    route_derive(r, cfg);
    return r;
}

static void routes_parse(config_t *lc, const char *list, enum route_direction dir,
                         struct sidecar_config *cfg, struct config_report *rep)
{
    config_setting_t *s = config_lookup(lc, list);
    if (s == NULL)
        return;
    if (config_setting_type(s) != CONFIG_TYPE_LIST) {
        config_report_add(rep, line_of(s), "%s must be a list of groups: %s = ( { … }, { … } );",
                          list, list);
        return;
    }
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        struct route *r = route_parse(config_setting_get_elem(s, (unsigned)i), dir, cfg, rep);
        if (r == NULL)
            continue;
        cfg->routes = xrealloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*cfg->routes));
        cfg->routes[cfg->n_routes++] = r;
    }
}

/* ---- cross-checks --------------------------------------------------------- */

static void check_broker(struct sidecar_config *cfg, config_t *lc, struct config_report *rep)
{
    struct broker_config *b = &cfg->broker;
    int line = line_of(config_lookup(lc, "broker"));
    if (b->url != NULL && b->urls.n > 0) {
        config_report_add(rep, line_of(config_lookup(lc, "broker.urls")),
                          "broker: set url or urls, not both");
        return;
    }
    if (b->url == NULL && b->urls.n == 0) {
        config_report_add(rep, line,
                          "broker: missing url (e.g. url = \"amqp://guest:guest@127.0.0.1:5672/%%2f\";)");
        return;
    }
    if (b->url != NULL) {
        b->urls.v = xcalloc(1, sizeof(char *));
        b->urls.v[0] = xstrdup(b->url);
        b->urls.n = 1;
    }
    int url_line = line_of(config_lookup(lc, b->url ? "broker.url" : "broker.urls"));
    for (size_t i = 0; i < b->urls.n; i++) {
        struct broker_url u;
        char err[512];
        if (broker_url_parse(b->urls.v[i], &u, err, sizeof(err)) != 0) {
            config_report_add(rep, url_line, "broker: %s", err);
            continue;
        }
        if (!u.tls && (b->tls.ca || b->tls.cert || b->tls.key.path))
            config_report_add(rep, url_line,
                              "broker: tls keys are set but \"%s\" is not amqps://; use amqps:// "
                              "or remove broker.tls",
                              b->urls.v[i]);
        broker_url_free(&u);
    }
    if ((b->tls.cert == NULL) != (b->tls.key.path == NULL))
        config_report_add(rep, line, "broker.tls: cert and key go together; set both or neither");
}

static const struct route *route_named(const struct sidecar_config *cfg, size_t before,
                                       const char *name)
{
    for (size_t i = 0; i < before; i++)
        if (strcmp(cfg->routes[i]->name, name) == 0)
            return cfg->routes[i];
    return NULL;
}

/* Two routes on one listener and path, or a route hiding the admin endpoints. */
static void check_endpoints(struct sidecar_config *cfg, struct config_report *rep)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route *r = cfg->routes[i];
        struct http_endpoint e;
        if (!r->kind->endpoint || !r->kind->endpoint(r, &e) || !e.listen || !e.path)
            continue;
        for (size_t j = 0; j < i; j++) {
            struct route *o = cfg->routes[j];
            struct http_endpoint f;
            if (!o->kind->endpoint || !o->kind->endpoint(o, &f) || !f.listen || !f.path)
                continue;
            if (strcmp(e.listen, f.listen) == 0 && strcmp(e.path, f.path) == 0)
                config_report_add(rep, r->line,
                                  "route \"%s\": %s%s is already served by route \"%s\" (line "
                                  "%d); give one of them another path or listen address",
                                  r->name, e.listen, e.path, o->name, o->line);
        }
        if (cfg->admin.listen && strcmp(cfg->admin.listen, e.listen) == 0 &&
            (strcmp(e.path, "/healthz") == 0 || strcmp(e.path, "/readyz") == 0 ||
             strcmp(e.path, "/metrics") == 0))
            config_report_add(rep, r->line,
                              "route \"%s\": %s is the admin endpoint's path on %s; choose another",
                              r->name, e.path, e.listen);
    }
}

static void check_routes(struct sidecar_config *cfg, struct config_report *rep)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route *r = cfg->routes[i];
        if (strcmp(r->name, "publisher") == 0)
            config_report_add(rep, r->line,
                              "route name \"publisher\" is reserved (it names the inbound "
                              "publisher's connection in logs and metrics); choose another");
        const struct route *twin = route_named(cfg, i, r->name);
        if (twin != NULL)
            config_report_add(rep, r->line,
                              "route name \"%s\" is used twice (first at line %d); route names "
                              "must be unique",
                              r->name, twin->line);
        /* Names that become AMQP short strings (at most 255 bytes) on every message. */
        if (r->dlq && r->app_id && (strlen(r->dlq) > 255 || strlen(r->app_id) > 255))
            config_report_add(rep, r->line,
                              "route \"%s\": name and route name make AMQP names over 255 bytes "
                              "(\"%s\"); shorten them",
                              r->name, strlen(r->dlq) > 255 ? r->dlq : r->app_id);
        if (r->direction == ROUTE_INBOUND && r->exchange && strlen(r->exchange) > 255)
            config_report_add(rep, r->line,
                              "inbound route \"%s\": exchange name is %zu bytes; AMQP allows 255",
                              r->name, strlen(r->exchange));
        if (r->direction == ROUTE_INBOUND && r->routing_key && strlen(r->routing_key) > 255 &&
            strchr(r->routing_key, '{') == NULL)
            config_report_add(rep, r->line,
                              "inbound route \"%s\": routing_key is %zu bytes; AMQP allows 255",
                              r->name, strlen(r->routing_key));
        if (r->direction != ROUTE_OUTBOUND)
            continue;
        if (strncmp(r->queue, "amq.", 4) == 0 || strlen(r->queue) > 200)
            config_report_add(rep, r->line,
                              "outbound route \"%s\": queue \"%s\" is not allowed (names starting "
                              "\"amq.\" are reserved; at most 200 bytes)",
                              r->name, r->queue);
        for (size_t j = 0; j < i; j++) {
            const struct route *o = cfg->routes[j];
            if (strcmp(o->dlq_key, r->dlq_key) == 0)
                config_report_add(rep, r->line,
                                  "outbound route \"%s\": queue \"%s\" collides with the dead "
                                  "letters of route \"%s\" (line %d); choose another queue",
                                  r->name, r->queue, o->name, o->line);
        }
        if (r->retry_delays.n > 20)
            config_report_add(rep, r->line,
                              "outbound route \"%s\": retry.delays has %zu steps; at most 20",
                              r->name, r->retry_delays.n);
    }
    check_endpoints(cfg, rep);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route *r = cfg->routes[i];
        if (r->kind->validate)
            r->kind->validate(r, cfg, rep);
        if (r->transform_file != NULL && access(r->transform_file, R_OK) == 0) {
            char err[1024];
            r->transform = transform_load(r->transform_file, err, sizeof(err));
            if (r->transform == NULL)
                config_report_add(rep, r->line, "route \"%s\": transform does not compile: %s",
                                  r->name, err);
        }
    }
}

/* ---- load ------------------------------------------------------------------ */

static char *dir_of(const char *path)
{
    char *copy = xstrdup(path);
    char *slash = strrchr(copy, '/');
    if (slash == NULL) {
        free(copy);
        return xstrdup(".");
    }
    if (slash == copy)
        slash[1] = '\0';
    else
        *slash = '\0';
    return copy;
}

int config_load(const char *path, struct sidecar_config *cfg, struct config_report *rep)
{
    *cfg = (struct sidecar_config){0};
    cfg->path = xstrdup(path);
    cfg->dir = dir_of(path);
    rep->file = cfg->path;

    config_t lc;
    config_init(&lc);
    config_set_include_dir(&lc, cfg->dir);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            config_report_add(rep, 0, "cannot read config file: %s", strerror(errno));
        else
            config_report_add(rep, config_error_line(&lc), "syntax error: %s%s",
                              config_error_text(&lc),
                              strstr(config_error_text(&lc), "mismatched element type")
                                  ? " (write every number in an array the same way, e.g. "
                                    "[0.5, 1.0, 3.0] rather than [0.5, 1, 3])"
                                  : "");
        config_destroy(&lc);
        return -1;
    }

    struct key_table process = {config_process_keys, cfg};
    config_apply_tables(&process, 1, config_root_setting(&lc), "config", cfg, rep);
    if (config_lookup(&lc, "broker") != NULL)
        check_broker(cfg, &lc, rep);
    if (cfg->state_dir == NULL) {
        const char *env = getenv("STATE_DIRECTORY"); /* systemd's StateDirectory= */
        cfg->state_dir = env ? xstrdup(env)
                             : xasprintf("/var/lib/amqp-sidecar/%s", cfg->name ? cfg->name : "");
    }

    routes_parse(&lc, "inbound", ROUTE_INBOUND, cfg, rep);
    routes_parse(&lc, "outbound", ROUTE_OUTBOUND, cfg, rep);
    if (cfg->n_routes == 0 && rep->n == 0)
        config_report_add(rep, 0,
                          "no routes: add an inbound = ( … ) or outbound = ( … ) list "
                          "(see /usr/share/doc/amqp-sidecar/examples/)");
    check_routes(cfg, rep);

    config_destroy(&lc);
    return rep->n == 0 ? 0 : -1;
}

void config_free(struct sidecar_config *cfg)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        route_free(cfg->routes[i]);
    free(cfg->routes);
    config_free_keys(config_process_keys, cfg);
    free(cfg->path);
    free(cfg->dir);
    *cfg = (struct sidecar_config){0};
}

/* ---- reference ------------------------------------------------------------ */

static const char *type_label(const struct config_key *k)
{
    switch (k->type) {
    case KEY_INT:
        return "integer";
    case KEY_NUMBER:
        return "number";
    case KEY_BOOL:
        return "bool";
    case KEY_STRINGS:
        return "[strings]";
    case KEY_NUMBERS:
        return "[numbers]";
    case KEY_MAP:
        return "{name = \"value\"}";
    case KEY_FILE:
        return "file";
    case KEY_SECRET:
        return "secret file";
    case KEY_PATH:
        return "path";
    case KEY_LISTEN:
        return "host:port";
    case KEY_URL:
        return "URL";
    case KEY_ENUM:
        return "choice";
    case KEY_NAME:
        return "name";
    case KEY_ROUTES:
        return "( {route}, … )";
    default:
        return "string";
    }
}

static void print_keys(const struct config_key *keys, const char *prefix)
{
    for (const struct config_key *k = keys; k && k->name; k++) {
        if (k->type == KEY_GROUP) {
            char *sub = xasprintf("%s%s.", prefix, k->name);
            print_keys(k->group, sub);
            free(sub);
            continue;
        }
        printf("| `%s%s` | %s", prefix, k->name, type_label(k));
        if (k->choices) {
            printf(": ");
            for (const char *c = k->choices; *c; c++)
                printf(*c == '|' ? " \\| " : "%c", *c);
        }
        printf(" | %s | %s |\n",
               (k->flags & KEY_REQUIRED) ? "**required**" : (k->dflt && *k->dflt ? k->dflt : "–"),
               k->doc ? k->doc : "");
    }
}

static void print_table(const char *title, const struct config_key *keys)
{
    printf("\n#### %s\n\n| key | type | default | meaning |\n|---|---|---|---|\n", title);
    print_keys(keys, "");
}

void config_print_reference(void)
{
    print_table("Process", config_process_keys);
    print_table("Every route", route_common_keys);
    print_table("Every inbound route", route_inbound_keys);
    print_table("Every outbound route", route_outbound_keys);
    for (const struct route_kind *const *k = route_kinds(); *k; k++) {
        char *title = xasprintf("%s `%s` — %s", (*k)->direction == ROUTE_INBOUND ? "Inbound" : "Outbound",
                                (*k)->name, (*k)->summary);
        print_table(title, (*k)->keys);
        free(title);
    }
}
