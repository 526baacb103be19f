/*
 * config_keys — the key-table engine: fills a struct from a libconfig group
 * against `struct config_key` tables.
 *
 * config_apply_tables walks a group's settings, refuses keys no table knows
 * (suggesting the nearest known one), checks each value's type, range or
 * choices, resolves file paths against the config's directory, hands secret
 * files to config_secrets, and fills defaults. Every string it reads passes
 * through setting_text, which expands ${VAR} (config_env.h) before any check
 * sees the value. config_free_keys frees what it
 * filled. The tables themselves live with their owners (config.c, route.c, each
 * kind); config_reference.c prints the same tables as the key reference.
 */
#include "config.h"
#include "config_env.h"
#include "config_internal.h"

#include "util.h"

#include <errno.h>
#include <libconfig.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------- */

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
    case KEY_SECRETS:
        return "an array of file names [\"a.key\", \"b.key\"]";
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

char *config_resolve_path(const char *dir, const char *path)
{
    if (path[0] == '/' || dir == NULL)
        return xstrdup(path);
    return xasprintf("%s/%s", dir, path);
}

/* Names become queue names and file names (state_dir/<name>, a process spool's
 * DIR/<route>): "." and ".." would name a directory, not a file in one. */
static bool valid_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 100 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
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
    void *slot = config_key_field(c->base, k);
    switch (k->type) {
    case KEY_NAME:
        if (!valid_name(text)) {
            config_report_add(
                c->rep, c->line,
                "%s: %s = \"%s\" is not a valid name; use lower-case letters, digits, "
                "'_', '.' and '-' (at most 100; not \".\" or \"..\")",
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
            config_report_add(c->rep, c->line, "%s: %s = \"%s\" must be an http:// or https:// URL",
                              c->where, k->name, text);
            return;
        }
        break;
    case KEY_FILE: {
        char *path = config_resolve_path(c->cfg ? c->cfg->dir : NULL, text);
        struct stat st;
        if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
            config_report_add(c->rep, c->line, "%s: %s: cannot read \"%s\": %s", c->where, k->name,
                              path, strerror(errno));
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
        sec->line = c->line;
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
    struct strlist *l = config_key_field(c->base, c->key);
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = xstrdup(text);
}

static void list_append_secret(const struct value_ctx *c, const char *text, int line)
{
    struct secretlist *l = config_key_field(c->base, c->key);
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    struct secret *sec = &l->v[l->n++];
    *sec = (struct secret){.path = config_resolve_path(c->cfg ? c->cfg->dir : NULL, text),
                           .line = line};
    config_secret_load(sec, sec->path, line, c->where, c->key->name, c->rep);
}

static void free_secrets(struct secretlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        config_secret_free(&l->v[i]);
    free(l->v);
    *l = (struct secretlist){0};
}

static void list_append_number(const struct value_ctx *c, double v)
{
    if (!in_range(c->key, v)) {
        range_error(c, v);
        return;
    }
    struct numlist *l = config_key_field(c->base, c->key);
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
        *(int *)config_key_field(c->base, c->key) = (int)v;
    else
        *(double *)config_key_field(c->base, c->key) = v;
}

static void clear_list(const struct value_ctx *c)
{
    if (c->key->type == KEY_STRINGS) {
        struct strlist *l = config_key_field(c->base, c->key);
        for (size_t i = 0; i < l->n; i++)
            free(l->v[i]);
        free(l->v);
        *l = (struct strlist){0};
    } else {
        struct numlist *l = config_key_field(c->base, c->key);
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
        *(bool *)config_key_field(c->base, k) = strcmp(k->dflt, "true") == 0;
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

/* True if text is a whole number (or, unless integer_only, any number). */
static bool text_is_number(const char *text, bool integer_only)
{
    char *end;
    if (*text == '\0')
        return false;
    if (integer_only)
        (void)strtoll(text, &end, 10);
    else
        (void)strtod(text, &end);
    return *end == '\0';
}

static void wrong_type(const struct value_ctx *c, const config_setting_t *s)
{
    const char *name = c->key->name;
    int type = config_setting_type(s);
    bool is_list = type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST;
    if (c->key->type == KEY_NUMBERS && is_list) {
        /* The only array of numbers is a list of delays in seconds. */
        config_report_add(c->rep, c->line,
                          "%s: %s must be numbers of seconds without quotes or units, e.g. "
                          "%s = [1, 5, 30]",
                          c->where, name, name);
        return;
    }
    if ((c->key->type == KEY_INT || c->key->type == KEY_NUMBER) && type == CONFIG_TYPE_STRING &&
        text_is_number(config_setting_get_string(s), c->key->type == KEY_INT)) {
        config_report_add(c->rep, c->line,
                          "%s: %s must be %s, not a string; drop the quotes: %s = %s", c->where,
                          name, expected_name(c->key->type), name, config_setting_get_string(s));
        return;
    }
    if ((c->key->type == KEY_INT || c->key->type == KEY_NUMBER) && type == CONFIG_TYPE_STRING) {
        /* "30s", "1MB": the unit is implied by the key, not written. */
        config_report_add(c->rep, c->line,
                          "%s: %s must be %s, not a string; write a plain number without "
                          "quotes or units (`amqp-sidecar keys` gives its unit)",
                          c->where, name, expected_name(c->key->type));
        return;
    }
    config_report_add(c->rep, c->line, "%s: %s must be %s, not %s", c->where, name,
                      expected_name(c->key->type), type_name(type));
}

/* The one place a string is read from libconfig: s's text with environment
 * variables expanded. Returns a malloc'd string the caller frees, or NULL with
 * the problem reported at s's line (label names the key, e.g. "url" or
 * "headers.X-Token"). */
static char *setting_text(const struct value_ctx *c, const config_setting_t *s, const char *label)
{
    char err[512];
    char *text =
        config_env_expand(config_setting_get_string(s), config_env_getenv, NULL, err, sizeof(err));
    if (text == NULL) {
        int line = config_line_of(s);
        config_report_add(c->rep, line > 0 ? line : c->line, "%s: %s: %s", c->where, label, err);
    }
    return text;
}

static void apply_value(const struct value_ctx *c, config_setting_t *s);

static void apply_map(const struct value_ctx *c, config_setting_t *s)
{
    struct strmap *m = config_key_field(c->base, c->key);
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            config_report_add(c->rep, config_line_of(e), "%s: %s.%s must be a string", c->where,
                              c->key->name, config_setting_name(e));
            continue;
        }
        char *label = xasprintf("%s.%s", c->key->name, config_setting_name(e));
        char *value = setting_text(c, e, label);
        free(label);
        if (value == NULL)
            continue;
        m->names = xrealloc(m->names, (m->n + 1) * sizeof(char *));
        m->values = xrealloc(m->values, (m->n + 1) * sizeof(char *));
        m->names[m->n] = xstrdup(config_setting_name(e));
        m->values[m->n] = value; /* takes ownership */
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
        *(bool *)config_key_field(c->base, c->key) = config_setting_get_bool(s);
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
            if (c->key->type == KEY_STRINGS && et == CONFIG_TYPE_STRING) {
                char *text = setting_text(c, e, c->key->name);
                if (text != NULL)
                    list_append_text(c, text);
                free(text);
            } else if (c->key->type == KEY_NUMBERS && is_number(et))
                list_append_number(c, et == CONFIG_TYPE_FLOAT
                                          ? config_setting_get_float(e)
                                          : (double)config_setting_get_int64(e));
            else
                return wrong_type(c, s);
        }
        if (n == 0 && c->key->type == KEY_NUMBERS)
            config_report_add(c->rep, c->line, "%s: %s must not be empty", c->where, c->key->name);
        return;
    }
    case KEY_SECRETS: {
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
            return wrong_type(c, s);
        free_secrets(config_key_field(c->base, c->key));
        int n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
            config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return wrong_type(c, s);
            list_append_secret(c, config_setting_get_string(e), config_line_of(e));
        }
        if (n == 0)
            config_report_add(c->rep, c->line, "%s: %s must not be empty", c->where, c->key->name);
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
        char *text = setting_text(c, s, c->key->name);
        if (text != NULL)
            store_text(c, text);
        free(text);
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

static const struct config_key *tables_find(const struct key_table *tables, size_t n_tables,
                                            const char *name)
{
    const struct config_key *k = NULL;
    for (size_t t = 0; t < n_tables && k == NULL; t++)
        k = key_find(tables[t].keys, name);
    return k;
}

/* Words people write for a key we spell otherwise; offered only where the
 * group the unknown key sits in has the key. */
static const char *const synonyms[][2] = {
    {"retries", "retry"},
    {"retry_delays", "retry"},
    {"circuit_breaker", "circuit"},
    {"breaker", "circuit"},
    {"uri", "url"},
};

/* The known key an unknown `name` most likely meant, or NULL: a synonym, else
 * the nearest by edit distance (at most 2), else a key that contains name or
 * that name contains (at least 4 letters shared, e.g. "exchange_name"). */
static const char *suggest(const struct key_table *tables, size_t n_tables, const char *name)
{
    for (size_t i = 0; i < sizeof(synonyms) / sizeof(synonyms[0]); i++)
        if (strcmp(name, synonyms[i][0]) == 0 && tables_find(tables, n_tables, synonyms[i][1]))
            return synonyms[i][1];
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close matches */
    for (size_t t = 0; t < n_tables; t++)
        for (const struct config_key *k = tables[t].keys; k && k->name; k++) {
            size_t d = str_edit_distance(name, k->name);
            if (d < best_d) {
                best_d = d;
                best = k->name;
            }
        }
    if (best != NULL)
        return best;
    size_t best_len = 3;
    for (size_t t = 0; t < n_tables; t++)
        for (const struct config_key *k = tables[t].keys; k && k->name; k++) {
            size_t len = strlen(k->name) < strlen(name) ? strlen(k->name) : strlen(name);
            if (len > best_len && (strstr(name, k->name) || strstr(k->name, name))) {
                best_len = len;
                best = k->name;
            }
        }
    return best;
}

static void apply_group(const struct key_table *tables, size_t n_tables, config_setting_t *setting,
                        const char *where, const struct sidecar_config *cfg,
                        struct config_report *rep);

void config_apply_tables(const struct key_table *tables, size_t n_tables, config_setting_t *setting,
                         const char *where, const struct sidecar_config *cfg,
                         struct config_report *rep)
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
        if (tables_find(tables, n_tables, name) != NULL)
            continue;
        const char *best = suggest(tables, n_tables, name);
        if (best)
            config_report_add(rep, config_line_of(s),
                              "%s: unknown key \"%s\" (did you mean \"%s\"?)", where, name, best);
        else
            config_report_add(rep, config_line_of(s), "%s: unknown key \"%s\"", where, name);
    }

    for (size_t t = 0; t < n_tables; t++) {
        for (const struct config_key *k = tables[t].keys; k && k->name; k++) {
            config_setting_t *s = setting ? config_setting_get_member(setting, k->name) : NULL;
            struct value_ctx c = {.key = k,
                                  .base = tables[t].base,
                                  .where = where,
                                  .line = s ? config_line_of(s) : config_line_of(setting),
                                  .cfg = cfg,
                                  .rep = rep};
            if (k->type == KEY_GROUP) {
                char *sub_where = xasprintf("%s.%s", where, k->name);
                struct key_table sub = {.keys = k->group,
                                        .base = config_key_field(tables[t].base, k)};
                if (k->flags & KEY_GROUP_LINE)
                    *(int *)sub.base =
                        s && config_setting_type(s) == CONFIG_TYPE_GROUP ? config_line_of(s) : 0;
                if (s != NULL && config_setting_type(s) != CONFIG_TYPE_GROUP) {
                    /* One error for the group; fill its defaults so later
                     * checks see sane values, and drop what its children would
                     * say about being missing. */
                    wrong_type(&c, s);
                    struct config_report quiet = {0};
                    apply_group(&sub, 1, NULL, sub_where, cfg, &quiet);
                    config_report_free(&quiet);
                } else if (s == NULL && (k->flags & KEY_REQUIRED)) {
                    config_report_add(rep, c.line, "%s: missing required group \"%s\"", where,
                                      k->name);
                } else {
                    apply_group(&sub, 1, s, sub_where, cfg, rep);
                }
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
    void *slot = config_key_field(base, k);
    switch (k->type) {
    case KEY_INT:
    case KEY_NUMBER:
    case KEY_BOOL:
    case KEY_ROUTES:
        break;
    case KEY_GROUP:
        config_free_keys(k->group, slot);
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
    case KEY_SECRETS:
        free_secrets(slot);
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
