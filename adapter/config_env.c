/*
 * config_env — expands ${NAME}, ${NAME:-default}, ${NAME:?message} and $$ in
 * one config string (the grammar is in config_env.h).
 *
 * One pass over the input appends to a growing buffer; a variable's value is
 * copied, never rescanned, so expansion cannot recurse and costs time linear
 * in input plus output. The output is capped at CONFIG_ENV_MAX.
 */
#include "config_env.h"

#include "util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest variable name: enough for any real one, and it keeps the name
 * in a stack buffer. */
#define NAME_MAX_LEN 255

struct out {
    char *buf;
    size_t len, cap;
    bool too_long;
};

static void out_append(struct out *o, const char *s, size_t n)
{
    if (o->too_long || o->len + n > CONFIG_ENV_MAX) {
        o->too_long = true;
        return;
    }
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->len + n + 1)
            cap *= 2;
        o->buf = xrealloc(o->buf, cap);
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static bool name_start(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool name_char(char ch)
{
    return name_start(ch) || (ch >= '0' && ch <= '9');
}

static void fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Expands the ${...} starting at *p (which points at "${"); advances *p past
 * the closing }. 0, or -1 with err filled. */
static int expand_one(const char **p, struct out *o, config_env_lookup_fn *lookup, void *arg,
                      char *err, size_t err_len)
{
    const char *start = *p;
    const char *s = start + 2;
    const char *close = strchr(s, '}');
    if (close == NULL) {
        fail(err, err_len,
             "unterminated \"${\" in \"%.40s\"; close it with } (or write $$ for a "
             "literal $)",
             start);
        return -1;
    }
    const char *n = s;
    while (n < close && name_char(*n))
        n++;
    size_t name_len = (size_t)(n - s);
    if (name_len == 0 || !name_start(*s) || name_len > NAME_MAX_LEN ||
        (n < close && !(n[0] == ':' && (n[1] == '-' || n[1] == '?')))) {
        fail(err, err_len,
             "\"%.*s\" is not a variable reference; use ${NAME}, ${NAME:-default} or "
             "${NAME:?message} with NAME of letters, digits and _ (or $$ for a literal $)",
             (int)(close - start + 1 > 80 ? 80 : close - start + 1), start);
        return -1;
    }
    char name[NAME_MAX_LEN + 1];
    memcpy(name, s, name_len);
    name[name_len] = '\0';
    const char *value = lookup(name, arg);
    *p = close + 1;

    if (n == close) { /* ${NAME} */
        if (value == NULL) {
            fail(err, err_len,
                 "environment variable %s is not set; set %s in the unit's Environment= or "
                 "EnvironmentFile=, or give a default: ${%s:-…}",
                 name, name, name);
            return -1;
        }
        out_append(o, value, strlen(value));
        return 0;
    }
    const char *word = n + 2;
    size_t word_len = (size_t)(close - word);
    bool have = value != NULL && value[0] != '\0';
    if (have) {
        out_append(o, value, strlen(value));
    } else if (n[1] == '-') {
        out_append(o, word, word_len);
    } else if (word_len > 0) {
        fail(err, err_len, "%s: %.*s", name, (int)(word_len > 200 ? 200 : word_len), word);
        return -1;
    } else {
        fail(err, err_len,
             "environment variable %s is %s; set %s in the unit's Environment= or "
             "EnvironmentFile=",
             name, value ? "empty" : "not set", name);
        return -1;
    }
    return 0;
}

char *config_env_expand(const char *text, config_env_lookup_fn *lookup, void *arg, char *err,
                        size_t err_len)
{
    struct out o = {0};
    out_append(&o, "", 0);
    const char *p = text;
    while (*p) {
        const char *dollar = strchr(p, '$');
        if (dollar == NULL) {
            out_append(&o, p, strlen(p));
            break;
        }
        out_append(&o, p, (size_t)(dollar - p));
        p = dollar;
        if (p[1] == '$') {
            out_append(&o, "$", 1);
            p += 2;
        } else if (p[1] == '{') {
            if (expand_one(&p, &o, lookup, arg, err, err_len) != 0)
                goto fail;
        } else {
            out_append(&o, "$", 1);
            p++;
        }
        if (o.too_long)
            break;
    }
    if (o.too_long) {
        fail(err, err_len, "the value is over %d bytes once variables are expanded; shorten it",
             CONFIG_ENV_MAX);
        goto fail;
    }
    return o.buf;
fail:
    free(o.buf);
    return NULL;
}

const char *config_env_getenv(const char *name, void *arg)
{
    return getenv(name);
}
