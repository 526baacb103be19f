/*
 * poll_jq — see poll_jq.h.
 */
#include "poll_jq.h"

#include "util.h"

#include <jq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct poll_jq {
    jq_state *jq;
    char error[512]; /* the first message jq reported during the current call */
};

static void collect_error(void *data, jv msg)
{
    struct poll_jq *q = data;
    if (q->error[0] == '\0') {
        if (jv_get_kind(msg) == JV_KIND_STRING) {
            snprintf(q->error, sizeof(q->error), "%s", jv_string_value(msg)); /* borrowed */
        } else {
            jv text = jv_dump_string(jv_copy(msg), 0);
            snprintf(q->error, sizeof(q->error), "%s", jv_string_value(text));
            jv_free(text);
        }
    }
    jv_free(msg);
}

struct poll_jq *poll_jq_compile(const char *program, char *err, size_t errlen)
{
    struct poll_jq *q = xcalloc(1, sizeof(*q));
    q->jq = jq_init();
    if (q->jq == NULL) {
        snprintf(err, errlen, "cannot initialise jq");
        free(q);
        return NULL;
    }
    jq_set_error_cb(q->jq, collect_error, q);
    if (!jq_compile(q->jq, program)) {
        snprintf(err, errlen, "%s", q->error[0] ? q->error : "syntax error");
        poll_jq_free(q);
        return NULL;
    }
    return q;
}

void poll_jq_free(struct poll_jq *q)
{
    if (q == NULL)
        return;
    jq_teardown(&q->jq);
    free(q);
}

int poll_jq_run(struct poll_jq *q, jv input, jv *results, size_t max_results, char *err,
                size_t errlen)
{
    q->error[0] = '\0';
    jq_start(q->jq, input, 0); /* consumes input */
    size_t n = 0;
    for (;;) {
        jv r = jq_next(q->jq);
        if (!jv_is_valid(r)) {
            if (jv_invalid_has_msg(jv_copy(r))) {
                jv msg = jv_invalid_get_msg(r);
                jv text = jv_get_kind(msg) == JV_KIND_STRING ? msg : jv_dump_string(msg, 0);
                snprintf(err, errlen, "%s", jv_string_value(text));
                jv_free(text);
                return -1;
            }
            jv_free(r);
            if (jq_halted(q->jq)) {
                snprintf(err, errlen, "halted%s%.400s", q->error[0] ? ": " : "", q->error);
                return -1;
            }
            return 0;
        }
        if (n++ == max_results) {
            jv_free(r);
            snprintf(err, errlen, "produced more than %zu result(s)", max_results);
            return -1;
        }
        *results = jv_array_append(*results, r);
    }
}

/* The text of a scalar (consumed); NULL for null, NULL with err for arrays and
 * objects. */
static char *scalar_text(jv v, char *err, size_t errlen)
{
    char *text = NULL;
    switch (jv_get_kind(v)) {
    case JV_KIND_STRING:
        text = xstrndup(jv_string_value(v), (size_t)jv_string_length_bytes(jv_copy(v)));
        break;
    case JV_KIND_NUMBER:
    case JV_KIND_TRUE:
    case JV_KIND_FALSE: {
        jv dumped = jv_dump_string(jv_copy(v), 0);
        text = xstrdup(jv_string_value(dumped));
        jv_free(dumped);
        break;
    }
    case JV_KIND_NULL:
        break;
    default:
        snprintf(err, errlen, "gave an array or object; it must give a string or number");
        break;
    }
    jv_free(v);
    return text;
}

char *poll_jq_scalar(struct poll_jq *q, jv input, char *err, size_t errlen)
{
    jv results = jv_array();
    err[0] = '\0';
    if (poll_jq_run(q, input, &results, 1, err, errlen) != 0) {
        jv_free(results);
        return NULL;
    }
    if (jv_array_length(jv_copy(results)) == 0) {
        jv_free(results);
        return NULL;
    }
    return scalar_text(jv_array_get(results, 0), err, errlen); /* consumes results */
}
