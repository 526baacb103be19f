/*
 * template — see template.h. A single left-to-right scan; placeholders may
 * not nest and are at most 200 bytes long.
 */
#include "template.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 200

/* Calls visit for each literal run (name == NULL) and each placeholder. */
typedef int (*visit_fn)(void *ctx, const char *text, size_t len, const char *name, char *err,
                        size_t errlen);

static int scan(const char *tmpl, visit_fn visit, void *ctx, char *err, size_t errlen)
{
    const char *p = tmpl;
    while (*p) {
        if (p[0] == '{' && p[1] == '{') {
            if (visit(ctx, "{", 1, NULL, err, errlen) != 0)
                return -1;
            p += 2;
        } else if (p[0] == '}' && p[1] == '}') {
            if (visit(ctx, "}", 1, NULL, err, errlen) != 0)
                return -1;
            p += 2;
        } else if (*p == '{') {
            const char *close = strchr(p + 1, '}');
            const char *open = strchr(p + 1, '{');
            if (close == NULL || (open && open < close)) {
                snprintf(err, errlen, "\"%s\": unclosed '{' at offset %zu", tmpl,
                         (size_t)(p - tmpl));
                return -1;
            }
            size_t len = (size_t)(close - p - 1);
            if (len == 0 || len > NAME_MAX_LEN) {
                snprintf(err, errlen, "\"%s\": empty or overlong placeholder at offset %zu", tmpl,
                         (size_t)(p - tmpl));
                return -1;
            }
            char name[NAME_MAX_LEN + 1];
            memcpy(name, p + 1, len);
            name[len] = '\0';
            if (visit(ctx, NULL, 0, name, err, errlen) != 0)
                return -1;
            p = close + 1;
        } else if (*p == '}') {
            snprintf(err, errlen, "\"%s\": stray '}' at offset %zu (write }} for a brace)", tmpl,
                     (size_t)(p - tmpl));
            return -1;
        } else {
            size_t run = strcspn(p, "{}");
            if (visit(ctx, p, run, NULL, err, errlen) != 0)
                return -1;
            p += run;
        }
    }
    return 0;
}

struct expand_ctx {
    struct buf out;
    template_lookup_fn lookup;
    void *arg;
};

static int expand_visit(void *vctx, const char *text, size_t len, const char *name, char *err,
                        size_t errlen)
{
    struct expand_ctx *c = vctx;
    if (name == NULL) {
        buf_append(&c->out, text, len);
        return 0;
    }
    char why[256] = "";
    const char *value = c->lookup(c->arg, name, why, sizeof(why));
    if (value == NULL) {
        snprintf(err, errlen, "placeholder {%s} has no value%s%s", name, why[0] ? ": " : "", why);
        return -1;
    }
    buf_puts(&c->out, value);
    return 0;
}

char *template_expand(const char *tmpl, template_lookup_fn lookup, void *arg, char *err,
                      size_t errlen)
{
    struct expand_ctx c = {.lookup = lookup, .arg = arg};
    if (scan(tmpl, expand_visit, &c, err, errlen) != 0) {
        buf_free(&c.out);
        return NULL;
    }
    return buf_steal(&c.out, NULL);
}

struct check_ctx {
    const char *const *allowed;
    const char *tmpl;
    int count;
};

static int check_visit(void *vctx, const char *text, size_t len, const char *name, char *err,
                       size_t errlen)
{
    struct check_ctx *c = vctx;
    if (name == NULL)
        return 0;
    c->count++;
    for (const char *const *a = c->allowed; a && *a; a++) {
        size_t n = strlen(*a);
        bool prefix = n > 0 && (*a)[n - 1] == '.';
        if (prefix ? strncmp(name, *a, n) == 0 && name[n] != '\0' : strcmp(name, *a) == 0)
            return 0;
    }
    struct buf list = {0};
    for (const char *const *a = c->allowed; a && *a; a++)
        buf_printf(&list, "%s{%s%s}", list.len ? ", " : "", *a,
                   (*a)[strlen(*a) - 1] == '.' ? "NAME" : "");
    snprintf(err, errlen, "\"%s\": unknown placeholder {%s}; use %s", c->tmpl, name,
             list.data ? list.data : "none");
    buf_free(&list);
    return -1;
}

int template_check(const char *tmpl, const char *const *allowed, char *err, size_t errlen)
{
    struct check_ctx c = {.allowed = allowed, .tmpl = tmpl};
    return scan(tmpl, check_visit, &c, err, errlen);
}

static int count_visit(void *vctx, const char *text, size_t len, const char *name, char *err,
                       size_t errlen)
{
    if (name)
        (*(int *)vctx)++;
    return 0;
}

bool template_has_placeholders(const char *tmpl)
{
    int n = 0;
    char err[8];
    scan(tmpl, count_visit, &n, err, sizeof(err));
    return n > 0;
}
