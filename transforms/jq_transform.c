/*
 * jq_transform — see jq_transform.h (named so it cannot shadow libjq's <jq.h>). Ownership follows
 * jv's rule: most jv_* calls consume their arguments, so every jv below is either passed on
 * (consumed) or freed exactly once; comments mark the few borrowed uses.
 */
#include "jq_transform.h"

#include <jq.h>
#include <jv.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRANSFORM_MAX_BYTES (1024 * 1024)

struct transform {
    char *name;
    char *program;
    pthread_mutex_t lock;
    jq_state **idle;
    size_t n_idle, cap_idle;
};

struct jq_errors {
    char text[512];
};

/* jq's error callback: msg is ours to free. Keeps the first message. */
static void collect_error(void *data, jv msg)
{
    struct jq_errors *e = data;
    if (e->text[0] == '\0') {
        if (jv_get_kind(msg) == JV_KIND_STRING) {
            snprintf(e->text, sizeof(e->text), "%s", jv_string_value(msg)); /* borrowed */
        } else {
            jv dumped = jv_dump_string(jv_copy(msg), 0);
            snprintf(e->text, sizeof(e->text), "%s", jv_string_value(dumped));
            jv_free(dumped);
        }
    }
    jv_free(msg);
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static jq_state *compile(const char *program, const char *name, char *err, size_t errlen)
{
    jq_state *jq = jq_init();
    if (jq == NULL) {
        fail(err, errlen, "%s: cannot initialise jq", name);
        return NULL;
    }
    struct jq_errors errors = {{0}};
    jq_set_error_cb(jq, collect_error, &errors);
    int ok = jq_compile(jq, program);
    jq_set_error_cb(jq, NULL, NULL);
    if (!ok) {
        fail(err, errlen, "%s: %s", name, errors.text[0] ? errors.text : "does not compile");
        jq_teardown(&jq);
        return NULL;
    }
    return jq;
}

struct transform *transform_compile(const char *program, const char *name, char *err, size_t errlen)
{
    jq_state *jq = compile(program, name, err, errlen);
    if (jq == NULL)
        return NULL;
    struct transform *t = calloc(1, sizeof(*t));
    t->name = strdup(name);
    t->program = strdup(program);
    pthread_mutex_init(&t->lock, NULL);
    t->idle = malloc(sizeof(*t->idle) * 4);
    t->cap_idle = 4;
    t->idle[t->n_idle++] = jq;
    return t;
}

struct transform *transform_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail(err, errlen, "cannot read transform \"%s\"", path);
        return NULL;
    }
    char *text = malloc(TRANSFORM_MAX_BYTES + 1);
    size_t n = fread(text, 1, TRANSFORM_MAX_BYTES + 1, f);
    fclose(f);
    if (n > TRANSFORM_MAX_BYTES) {
        free(text);
        fail(err, errlen, "transform \"%s\" is over 1 MiB", path);
        return NULL;
    }
    text[n] = '\0';
    struct transform *t = transform_compile(text, path, err, errlen);
    free(text);
    return t;
}

void transform_free(struct transform *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_idle; i++)
        jq_teardown(&t->idle[i]);
    free(t->idle);
    pthread_mutex_destroy(&t->lock);
    free(t->name);
    free(t->program);
    free(t);
}

static jq_state *borrow(struct transform *t, char *err, size_t errlen)
{
    pthread_mutex_lock(&t->lock);
    jq_state *jq = t->n_idle ? t->idle[--t->n_idle] : NULL;
    pthread_mutex_unlock(&t->lock);
    return jq ? jq : compile(t->program, t->name, err, errlen);
}

static void give_back(struct transform *t, jq_state *jq)
{
    pthread_mutex_lock(&t->lock);
    if (t->n_idle == t->cap_idle) {
        t->cap_idle *= 2;
        t->idle = realloc(t->idle, sizeof(*t->idle) * t->cap_idle);
    }
    t->idle[t->n_idle++] = jq;
    pthread_mutex_unlock(&t->lock);
}

char *transform_apply(struct transform *t, const char *in, size_t len, size_t *out_len, char *err,
                      size_t errlen)
{
    if (len > (size_t)0x7fffffff) {
        fail(err, errlen, "input too large for jq");
        return NULL;
    }
    jv input = jv_parse_sized(in, (int)len);
    if (!jv_is_valid(input)) {
        jv msg = jv_invalid_get_msg(input); /* consumes input */
        fail(err, errlen, "input is not valid JSON: %s",
             jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "parse error");
        jv_free(msg);
        return NULL;
    }
    jq_state *jq = borrow(t, err, errlen);
    if (jq == NULL) {
        jv_free(input);
        return NULL;
    }
    struct jq_errors errors = {{0}};
    jq_set_error_cb(jq, collect_error, &errors);
    jq_start(jq, input, 0); /* consumes input */

    char *out = NULL;
    int results = 0;
    for (;;) {
        jv r = jq_next(jq);
        if (!jv_is_valid(r)) {
            if (jv_invalid_has_msg(jv_copy(r))) {
                jv msg = jv_invalid_get_msg(r);
                jv text = jv_get_kind(msg) == JV_KIND_STRING ? msg : jv_dump_string(msg, 0);
                fail(err, errlen, "%s", jv_string_value(text));
                jv_free(text);
                results = -1;
            } else {
                jv_free(r);
            }
            break;
        }
        if (++results > 1) {
            jv_free(r);
            fail(err, errlen,
                 "the transform produced more than one result; it must produce exactly one");
            break;
        }
        jv dumped = jv_dump_string(r, 0); /* consumes r */
        *out_len = (size_t)jv_string_length_bytes(jv_copy(dumped));
        out = malloc(*out_len + 1);
        memcpy(out, jv_string_value(dumped), *out_len + 1);
        jv_free(dumped);
    }
    if (results == 0 && jq_halted(jq))
        fail(err, errlen, "the transform halted: %s", errors.text[0] ? errors.text : "halt");
    else if (results == 0)
        fail(err, errlen, "the transform produced no result (empty); it must produce exactly one");
    else if (results < 0 && errors.text[0] && err[0] == '\0')
        fail(err, errlen, "%s", errors.text);
    jq_set_error_cb(jq, NULL, NULL);
    give_back(t, jq);
    if (results != 1) {
        free(out);
        return NULL;
    }
    return out;
}
