/*
 * config_paths — see config_paths.h. Walks each key table beside the
 * libconfig setting it was loaded from (the file read again, only for the
 * lines): the value comes from the loaded struct, the line from the setting.
 */
#include "config_paths.h"

#include "config_internal.h"
#include "route.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void add(struct config_paths *out, const char *where, const char *name, const char *path,
                int line, enum config_path_use use, int access_mode, bool secret)
{
    if (path == NULL)
        return;
    out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
    out->v[out->n++] = (struct config_path){
        .key = where ? xasprintf("%s: %s", where, name) : xstrdup(name),
        .path = xstrdup(path),
        .line = line,
        .use = use,
        .access = access_mode,
        .secret = secret,
    };
}

/* prefix "broker" + "tls" → "broker.tls" (caller frees). */
static char *join(const char *prefix, const char *name)
{
    return prefix ? xasprintf("%s.%s", prefix, name) : xstrdup(name);
}

/* One table over base, beside setting s (NULL when the group is absent). */
static void walk(struct config_paths *out, const struct config_key *keys, void *base,
                 const config_setting_t *s, const char *where, const char *prefix)
{
    for (const struct config_key *k = keys; k && k->name; k++) {
        const config_setting_t *member =
            s && config_setting_is_group(s) ? config_setting_get_member(s, k->name) : NULL;
        int line = config_line_of(member);
        char *name = join(prefix, k->name);
        void *field = config_key_field(base, k);
        switch (k->type) {
        case KEY_PATH:
            add(out, where, name, *(char **)field, line, CONFIG_PATH_WRITE_DIR,
                (k->flags & KEY_DIR_LISTED) ? R_OK | W_OK | X_OK : W_OK | X_OK, false);
            break;
        case KEY_FILE:
            add(out, where, name, *(char **)field, line, CONFIG_PATH_READ_FILE, R_OK, false);
            break;
        case KEY_SECRET:
            add(out, where, name, ((struct secret *)field)->path, line, CONFIG_PATH_READ_FILE, R_OK,
                true);
            break;
        case KEY_SECRETS: {
            const struct secretlist *l = field;
            for (size_t i = 0; i < l->n; i++)
                add(out, where, name, l->v[i].path, l->v[i].line ? l->v[i].line : line,
                    CONFIG_PATH_READ_FILE, R_OK, true);
            break;
        }
        case KEY_GROUP:
            walk(out, k->group, field, member, where, name);
            break;
        default:
            break;
        }
        free(name);
    }
}

static bool any_keeps_state(const struct sidecar_config *cfg)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i]->kind->keeps_state)
            return true;
    return false;
}

static void walk_routes(struct config_paths *out, const struct sidecar_config *cfg,
                        const config_t *lc)
{
    size_t next = 0; /* cfg->routes holds the inbound list, then the outbound, in file order */
    const char *lists[] = {"inbound", "outbound"};
    for (size_t l = 0; l < 2; l++) {
        const config_setting_t *list = config_lookup(lc, lists[l]);
        int n = list ? config_setting_length(list) : 0;
        for (int i = 0; i < n && next < cfg->n_routes; i++) {
            struct route *r = cfg->routes[next++];
            const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
            char *where = xasprintf("%s route \"%s\"", lists[l], r->name);
            walk(out, route_common_keys, r, s, where, NULL);
            walk(out, r->direction == ROUTE_INBOUND ? route_inbound_keys : route_outbound_keys, r,
                 s, where, NULL);
            walk(out, r->kind->keys, r->opts, s, where, NULL);
            free(where);
        }
    }
}

int config_paths_collect(const struct sidecar_config *cfg, struct config_paths *out, char *err,
                         size_t errlen)
{
    *out = (struct config_paths){0};
    config_t lc;
    config_init(&lc);
    config_set_include_dir(&lc, cfg->dir);
    if (config_read_file(&lc, cfg->path) != CONFIG_TRUE) {
        snprintf(err, errlen, "%s: cannot read it again: %s", cfg->path,
                 config_error_text(&lc) ? config_error_text(&lc) : "I/O error");
        config_destroy(&lc);
        return -1;
    }
    walk(out, config_process_keys, (void *)cfg, config_root_setting(&lc), NULL, NULL);
    walk_routes(out, cfg, &lc);
    config_destroy(&lc);
    if (!any_keeps_state(cfg)) { /* nothing writes there: not a path the service needs */
        for (size_t i = 0; i < out->n; i++) {
            if (strcmp(out->v[i].key, "state_dir") != 0)
                continue;
            free(out->v[i].key);
            free(out->v[i].path);
            memmove(&out->v[i], &out->v[i + 1], (out->n - i - 1) * sizeof(*out->v));
            out->n--;
            break;
        }
    }
    return 0;
}

void config_paths_free(struct config_paths *paths)
{
    for (size_t i = 0; i < paths->n; i++) {
        free(paths->v[i].key);
        free(paths->v[i].path);
    }
    free(paths->v);
    *paths = (struct config_paths){0};
}
