/*
 * fuzz_csv.c — libFuzzer target for transforms/csv.c.
 *
 * The first input byte picks the delimiter and limits; the rest is a CSV file.
 * It is parsed three ways — one feed, one byte per feed, and chunks cut where
 * the input says — and the three renderings (records, or the error message)
 * must be identical. Every record accepted must also convert to JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "csv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct render {
    char *p;
    size_t len, cap;
};

static void render_add(struct render *r, const void *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
        r->p = realloc(r->p, r->cap);
        if (!r->p)
            abort();
    }
    memcpy(r->p + r->len, s, n);
    r->len += n;
    r->p[r->len] = '\0';
}

static void render_record(struct render *out, const struct csv_reader *rd,
                          const struct csv_record *rec, bool utf8_checked)
{
    char head[64];
    int n = snprintf(head, sizeof(head), "%lu#%lu:", rec->line, rec->number);
    render_add(out, head, (size_t)n);
    for (size_t i = 0; i < rec->nfields; i++) {
        render_add(out, rec->fields[i], rec->lengths[i]);
        render_add(out, "\x1f", 1);
    }
    char err[256];
    char *json = csv_record_to_json(csv_reader_header(rd), rec, NULL, err, sizeof(err));
    if (!json && utf8_checked) {
        fprintf(stderr, "record refused by csv_record_to_json: %s\n", err);
        abort();
    }
    free(json);
}

/* mode 0: one feed; 1: a byte per feed; 2: chunk sizes taken from the input. */
static struct render parse(const char *in, size_t len, const struct csv_options *opt, int mode)
{
    char err[256];
    struct csv_reader *rd = csv_reader_new(opt, err, sizeof(err));
    if (!rd)
        abort();
    struct render out = {0};
    render_add(&out, "", 0);
    const struct csv_record *rec;
    int rc = 0;
    for (size_t pos = 0; pos < len && rc >= 0;) {
        size_t n = mode == 0 ? len : mode == 1 ? 1 : 1 + (unsigned char)in[pos] % 13;
        if (n > len - pos)
            n = len - pos;
        rc = csv_reader_feed(rd, in + pos, n);
        pos += n;
        while (rc >= 0 && (rc = csv_reader_next(rd, &rec)) == 1)
            render_record(&out, rd, rec, !opt->skip_utf8_check);
    }
    if (rc >= 0 && csv_reader_finish(rd) == 0)
        while ((rc = csv_reader_next(rd, &rec)) == 1)
            render_record(&out, rd, rec, !opt->skip_utf8_check);
    if (rc < 0) {
        render_add(&out, "ERR ", 4);
        render_add(&out, csv_reader_error(rd), strlen(csv_reader_error(rd)));
    }
    csv_reader_free(rd);
    return out;
}

static bool render_equal(const struct render *a, const struct render *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    json_object_seed(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char delims[] = {',', ';', '\t', '|'};
    struct csv_options opt = {
        .delimiter = delims[data[0] & 3],
        .max_record = data[0] & 4 ? 64 : 0,
        .max_field = data[0] & 8 ? 16 : 0,
        .skip_utf8_check = data[0] & 16,
    };
    const char *in = (const char *)data + 1;
    struct render whole = parse(in, size - 1, &opt, 0);
    struct render bytes = parse(in, size - 1, &opt, 1);
    struct render chunks = parse(in, size - 1, &opt, 2);
    if (!render_equal(&whole, &bytes) || !render_equal(&whole, &chunks)) {
        fprintf(stderr, "chunking changed the result\nwhole:  %s\nbytes:  %s\nchunks: %s\n",
                whole.p, bytes.p, chunks.p);
        abort();
    }
    free(whole.p);
    free(bytes.p);
    free(chunks.p);
    return 0;
}
