/*
 * transform_cli — `amqp-sidecar transform`: a route's jq transform applied to
 * standard input, the dry run of what the route would publish or send.
 *
 * The input is one JSON document (pretty-printed or not), or JSON Lines — one
 * document per line, as a jsonl file route reads them — when more than one
 * value follows the first. Each result is printed compact on its own line; a
 * line that fails is named on stderr by its number and the others still run.
 */
#include "transform_cli.h"

#include "jq_transform.h"
#include "util.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

/* Is there more than one JSON value in in[0..len)? (Whitespace after the first is fine.) */
static bool several_values(const char *in, size_t len)
{
    json_error_t e;
    json_t *first = json_loadb(in, len, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &e);
    if (first == NULL)
        return false; /* not JSON: let the transform say so about the whole input */
    json_decref(first);
    for (size_t i = (size_t)e.position; i < len; i++)
        if (strchr(" \t\r\n", in[i]) == NULL)
            return true;
    return false;
}

static int apply_one(struct transform *t, const char *in, size_t len, FILE *out, FILE *errs,
                     const char *label, size_t line)
{
    char err[1024];
    size_t out_len;
    char *result = transform_apply(t, in, len, &out_len, err, sizeof(err));
    if (result == NULL) {
        if (line)
            fprintf(errs, "%s: line %zu: %s\n", label, line, err);
        else
            fprintf(errs, "%s: %s\n", label, err);
        return -1;
    }
    fwrite(result, 1, out_len, out);
    fputc('\n', out);
    free(result);
    return 0;
}

int transform_stream(struct transform *t, const char *label, FILE *in, FILE *out, FILE *errs)
{
    struct buf text = {0};
    buf_read_stream(&text, in);
    const char *data = text.data ? text.data : "";
    if (!several_values(data, text.len)) {
        int rc = apply_one(t, data, text.len, out, errs, label, 0);
        buf_free(&text);
        return rc == 0 ? 0 : 1;
    }
    size_t lines = 0, failed = 0, line = 0;
    for (const char *p = data, *end = data + text.len; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        if (strspn(p, " \t\r") < len) { /* a blank line is no record */
            lines++;
            if (apply_one(t, p, len, out, errs, label, line + 1) != 0)
                failed++;
        }
        p += len + 1;
    }
    buf_free(&text);
    if (failed)
        fprintf(errs, "%s: %zu of %zu lines failed\n", label, failed, lines);
    return failed ? 1 : 0;
}
