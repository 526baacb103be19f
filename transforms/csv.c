/*
 * csv.c — streaming RFC 4180 reader: one byte-at-a-time state machine.
 *
 * Input fed by the caller is copied into a small buffer; csv_reader_next()
 * consumes it byte by byte until a record completes, so a chunk holding many
 * records never multiplies memory. Fields of the record being read live in
 * one growing buffer (NUL after each field); the header is kept by swapping
 * that buffer out. Line and column are tracked per byte for error messages:
 * columns count characters (UTF-8 code points) from 1, CR, LF and CRLF each
 * end one line, and an entirely empty line is skipped.
 */
#include "csv.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum csv_state {
    CSV_RECORD_START, /* nothing of the record read yet */
    CSV_FIELD_START,  /* just after a delimiter */
    CSV_UNQUOTED,
    CSV_QUOTED,
    CSV_QUOTE_IN_QUOTED, /* a quote inside a quoted field: doubled or closing */
};

/* One record's storage: field bytes back to back, each followed by NUL. */
struct csv_fields {
    char *data;
    size_t len, cap;
    size_t *offsets, *lengths;
    const char **ptrs;
    size_t n, cap_fields;
    struct csv_record rec;
};

struct csv_utf8 {
    unsigned need;           /* continuation bytes still expected */
    unsigned char lo, hi;    /* allowed range of the next continuation byte */
    unsigned long line, col; /* where the sequence started */
};

struct csv_reader {
    struct csv_options opt;
    char *in; /* fed input not yet consumed: in[pos..len) */
    size_t in_len, in_pos, in_cap;
    bool finished, done, failed, bom_checked, skip_lf, prev_cr, record_ready;
    enum csv_state state;
    unsigned long line, col;             /* position of the next byte */
    unsigned long rec_line;              /* where the current record started */
    unsigned long quote_line, quote_col; /* where the open quote is */
    size_t rec_bytes, field_start;
    unsigned long records;
    struct csv_utf8 utf8;
    struct csv_fields cur, header;
    bool have_header;
    char error[512];
};

__attribute__((format(printf, 4, 5))) static int csv_fail(struct csv_reader *r, unsigned long line,
                                                          unsigned long col, const char *fmt, ...)
{
    int n = snprintf(r->error, sizeof(r->error), "line %lu, column %lu: ", line, col);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error + n, sizeof(r->error) - (size_t)n, fmt, ap);
    va_end(ap);
    r->failed = true;
    return -1;
}

struct csv_reader *csv_reader_new(const struct csv_options *opt, char *err, size_t errlen)
{
    struct csv_options o = {0};
    if (opt)
        o = *opt;
    if (o.delimiter == '\0')
        o.delimiter = ',';
    if (o.delimiter == '"' || o.delimiter == '\r' || o.delimiter == '\n') {
        snprintf(err, errlen, "csv: delimiter cannot be a quote, CR or LF");
        return NULL;
    }
    if (o.max_record == 0)
        o.max_record = CSV_DEFAULT_MAX_RECORD;
    if (o.max_field == 0 || o.max_field > o.max_record)
        o.max_field = o.max_record;
    struct csv_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "csv: out of memory");
        return NULL;
    }
    r->opt = o;
    r->line = 1;
    r->col = 1;
    return r;
}

static void csv_fields_release(struct csv_fields *f)
{
    free(f->data);
    free(f->offsets);
    free(f->lengths);
    free(f->ptrs);
}

void csv_reader_free(struct csv_reader *r)
{
    if (!r)
        return;
    csv_fields_release(&r->cur);
    csv_fields_release(&r->header);
    free(r->in);
    free(r);
}

int csv_reader_feed(struct csv_reader *r, const char *buf, size_t len)
{
    if (r->failed)
        return -1;
    if (r->finished) {
        snprintf(r->error, sizeof(r->error), "csv: input fed after csv_reader_finish()");
        r->failed = true;
        return -1;
    }
    if (r->in_pos > 0) { /* compact: keep only what is not consumed yet */
        memmove(r->in, r->in + r->in_pos, r->in_len - r->in_pos);
        r->in_len -= r->in_pos;
        r->in_pos = 0;
    }
    if (r->in_len + len > r->in_cap) {
        size_t cap = r->in_len + len;
        char *p = realloc(r->in, cap);
        if (!p)
            return csv_fail(r, r->line, r->col, "out of memory buffering %zu bytes", len);
        r->in = p;
        r->in_cap = cap;
    }
    if (len)
        memcpy(r->in + r->in_len, buf, len);
    r->in_len += len;
    return 0;
}

int csv_reader_finish(struct csv_reader *r)
{
    if (r->failed)
        return -1;
    r->finished = true;
    return 0;
}

const struct csv_record *csv_reader_header(const struct csv_reader *r)
{
    return r->have_header ? &r->header.rec : NULL;
}

const char *csv_reader_error(const struct csv_reader *r)
{
    return r->failed ? r->error : NULL;
}

/* Checks one byte of a UTF-8 stream; 0 or -1 with the error set. */
static int csv_utf8_step(struct csv_reader *r, unsigned char c)
{
    struct csv_utf8 *u = &r->utf8;
    if (u->need > 0) {
        if (c < u->lo || c > u->hi)
            return csv_fail(r, u->line, u->col, "invalid UTF-8 sequence (byte 0x%02X)", c);
        u->need--;
        u->lo = 0x80;
        u->hi = 0xBF;
        return 0;
    }
    if (c < 0x80)
        return 0;
    u->line = r->line;
    u->col = r->col;
    u->lo = 0x80;
    u->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        u->need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        u->need = 2;
        if (c == 0xE0)
            u->lo = 0xA0; /* no overlong forms */
        if (c == 0xED)
            u->hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        u->need = 3;
        if (c == 0xF0)
            u->lo = 0x90;
        if (c == 0xF4)
            u->hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return csv_fail(r, r->line, r->col, "invalid UTF-8 byte 0x%02X", c);
    }
    return 0;
}

static void csv_advance(struct csv_reader *r, unsigned char c)
{
    if (c == '\n') {
        if (!r->prev_cr)
            r->line++;
        r->col = 1;
    } else if (c == '\r') {
        r->line++;
        r->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        r->col++;
    }
    r->prev_cr = c == '\r';
}

static int csv_append(struct csv_reader *r, char c)
{
    struct csv_fields *f = &r->cur;
    if (f->len - r->field_start >= r->opt.max_field)
        return csv_fail(r, r->line, r->col, "field longer than %zu bytes", r->opt.max_field);
    if (f->len + 1 >= f->cap) { /* keep room for the field's NUL */
        size_t cap = f->cap ? f->cap * 2 : 256;
        char *p = realloc(f->data, cap);
        if (!p)
            return csv_fail(r, r->line, r->col, "out of memory");
        f->data = p;
        f->cap = cap;
    }
    f->data[f->len++] = c;
    return 0;
}

static int csv_end_field(struct csv_reader *r)
{
    struct csv_fields *f = &r->cur;
    if (f->n == f->cap_fields) {
        size_t cap = f->cap_fields ? f->cap_fields * 2 : 16;
        size_t *o = realloc(f->offsets, cap * sizeof(*o));
        if (o)
            f->offsets = o;
        size_t *l = realloc(f->lengths, cap * sizeof(*l));
        if (l)
            f->lengths = l;
        const char **p = realloc(f->ptrs, cap * sizeof(*p));
        if (p)
            f->ptrs = p;
        if (!o || !l || !p)
            return csv_fail(r, r->line, r->col, "out of memory");
        f->cap_fields = cap;
    }
    if (f->len + 1 > f->cap) { /* an empty field may not have grown data yet */
        size_t cap = f->cap ? f->cap * 2 : 256;
        char *p = realloc(f->data, cap);
        if (!p)
            return csv_fail(r, r->line, r->col, "out of memory");
        f->data = p;
        f->cap = cap;
    }
    f->offsets[f->n] = r->field_start;
    f->lengths[f->n] = f->len - r->field_start;
    f->n++;
    f->data[f->len++] = '\0';
    r->field_start = f->len;
    return 0;
}

struct csv_name {
    const char *p;
    size_t len, index;
};

static int csv_name_cmp(const void *a, const void *b)
{
    const struct csv_name *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : 1;
}

/* Column names become JSON keys: refuse a repeated one (sorting keeps this O(n log n)). */
static int csv_check_header(struct csv_reader *r)
{
    struct csv_fields *f = &r->cur;
    struct csv_name *names = malloc(f->n * sizeof(*names));
    if (!names)
        return csv_fail(r, r->rec_line, 1, "out of memory");
    for (size_t i = 0; i < f->n; i++)
        names[i] = (struct csv_name){f->data + f->offsets[i], f->lengths[i], i};
    qsort(names, f->n, sizeof(*names), csv_name_cmp);
    int rc = 0;
    for (size_t i = 1; i < f->n && rc == 0; i++) {
        if (names[i].len == names[i - 1].len && !memcmp(names[i].p, names[i - 1].p, names[i].len))
            rc = csv_fail(r, r->rec_line, 1,
                          "header repeats the column name \"%.*s\" (fields %zu and %zu)",
                          (int)(names[i].len > 64 ? 64 : names[i].len), names[i].p,
                          names[i - 1].index + 1, names[i].index + 1);
    }
    free(names);
    return rc;
}

static void csv_publish(struct csv_fields *f, unsigned long line, unsigned long number)
{
    for (size_t i = 0; i < f->n; i++)
        f->ptrs[i] = f->data + f->offsets[i];
    f->rec.nfields = f->n;
    f->rec.fields = f->ptrs;
    f->rec.lengths = f->lengths;
    f->rec.line = line;
    f->rec.number = number;
}

/* The record in r->cur is complete: 1 = a data record is ready, 0 = it was
 * the header (kept), -1 = error. */
static int csv_end_record(struct csv_reader *r)
{
    r->state = CSV_RECORD_START;
    r->field_start = 0;
    if (!r->have_header) {
        if (csv_check_header(r) < 0)
            return -1;
        csv_publish(&r->cur, r->rec_line, 0);
        struct csv_fields tmp = r->header;
        r->header = r->cur;
        r->cur = tmp;
        r->cur.len = 0;
        r->cur.n = 0;
        r->have_header = true;
        return 0;
    }
    if (r->cur.n != r->header.n)
        return csv_fail(r, r->line, r->col, "too few fields: %zu of the header's %zu", r->cur.n,
                        r->header.n);
    csv_publish(&r->cur, r->rec_line, ++r->records);
    r->record_ready = true;
    return 1;
}

/* A delimiter ends a field: refuse the first field too many at once. */
static int csv_delimiter(struct csv_reader *r)
{
    if (csv_end_field(r) < 0)
        return -1;
    if (r->have_header && r->cur.n >= r->header.n)
        return csv_fail(r, r->line, r->col, "more fields than the header's %zu", r->header.n);
    r->state = CSV_FIELD_START;
    return 0;
}

static int csv_line_end(struct csv_reader *r, unsigned char c)
{
    r->skip_lf = c == '\r';
    if (csv_end_field(r) < 0)
        return -1;
    return csv_end_record(r);
}

/* One byte outside a record, or at a field start. */
static int csv_field_start(struct csv_reader *r, unsigned char c)
{
    if (c == '"') {
        r->state = CSV_QUOTED;
        r->quote_line = r->line;
        r->quote_col = r->col;
        return 0;
    }
    if (c == (unsigned char)r->opt.delimiter)
        return csv_delimiter(r);
    if (c == '\r' || c == '\n')
        return csv_line_end(r, c);
    r->state = CSV_UNQUOTED;
    return csv_append(r, (char)c);
}

static int csv_dispatch(struct csv_reader *r, unsigned char c)
{
    char delim = r->opt.delimiter;
    switch (r->state) {
    case CSV_RECORD_START:
        if (c == '\r' || c == '\n') { /* an empty line: skipped */
            r->skip_lf = c == '\r';
            return 0;
        }
        r->rec_line = r->line;
        r->rec_bytes = 0;
        r->state = CSV_FIELD_START;
        r->rec_bytes++;
        return csv_field_start(r, c);
    case CSV_FIELD_START:
        return csv_field_start(r, c);
    case CSV_UNQUOTED:
        if (c == (unsigned char)delim)
            return csv_delimiter(r);
        if (c == '\r' || c == '\n')
            return csv_line_end(r, c);
        if (c == '"')
            return csv_fail(r, r->line, r->col,
                            "quote inside an unquoted field (quote the whole field and double "
                            "the quotes in it)");
        return csv_append(r, (char)c);
    case CSV_QUOTED:
        if (c == '"') {
            r->state = CSV_QUOTE_IN_QUOTED;
            return 0;
        }
        return csv_append(r, (char)c);
    case CSV_QUOTE_IN_QUOTED:
        if (c == '"') {
            r->state = CSV_QUOTED;
            return csv_append(r, '"');
        }
        if (c == (unsigned char)delim)
            return csv_delimiter(r);
        if (c == '\r' || c == '\n')
            return csv_line_end(r, c);
        return csv_fail(r, r->line, r->col,
                        "unexpected character after the closing quote (expected the delimiter "
                        "or a line end)");
    }
    return 0;
}

/* Consumes one byte: 1 = data record ready, 0 = go on, -1 = error. */
static int csv_step(struct csv_reader *r, unsigned char c)
{
    if (!r->opt.skip_utf8_check && csv_utf8_step(r, c) < 0)
        return -1;
    int rc = 0;
    if (r->skip_lf && c == '\n') {
        r->skip_lf = false; /* the LF of a CRLF that already ended the line */
    } else {
        r->skip_lf = false;
        bool in_record = r->state != CSV_RECORD_START;
        bool line_end = (c == '\r' || c == '\n') && r->state != CSV_QUOTED;
        if (in_record && !line_end && ++r->rec_bytes > r->opt.max_record)
            return csv_fail(r, r->line, r->col,
                            "record longer than %zu bytes (it starts on line %lu)",
                            r->opt.max_record, r->rec_line);
        rc = csv_dispatch(r, c);
    }
    if (rc >= 0)
        csv_advance(r, c);
    return rc;
}

/* A UTF-8 BOM is dropped from the very start; waits until 3 bytes are known. */
static bool csv_skip_bom(struct csv_reader *r)
{
    static const char bom[3] = {'\xEF', '\xBB', '\xBF'};
    size_t have = r->in_len - r->in_pos;
    size_t n = have < 3 ? have : 3;
    if (n > 0 && memcmp(r->in + r->in_pos, bom, n) != 0) {
        r->bom_checked = true;
        return true;
    }
    if (n < 3 && !r->finished)
        return false;
    if (n == 3)
        r->in_pos += 3;
    r->bom_checked = true;
    return true;
}

/* End of input: close the last record or report what is left open. */
static int csv_at_eof(struct csv_reader *r)
{
    if (!r->opt.skip_utf8_check && r->utf8.need > 0)
        return csv_fail(r, r->utf8.line, r->utf8.col, "UTF-8 sequence cut off by the end of input");
    switch (r->state) {
    case CSV_RECORD_START:
        r->done = true;
        return 0;
    case CSV_QUOTED:
        return csv_fail(r, r->quote_line, r->quote_col,
                        "quoted field is never closed (end of input reached)");
    default:
        if (csv_end_field(r) < 0)
            return -1;
        int rc = csv_end_record(r);
        if (rc == 0)
            r->done = true;
        return rc;
    }
}

int csv_reader_next(struct csv_reader *r, const struct csv_record **rec)
{
    if (r->failed)
        return -1;
    if (r->record_ready) {
        r->cur.len = 0;
        r->cur.n = 0;
        r->record_ready = false;
    }
    if (!r->bom_checked && !csv_skip_bom(r))
        return 0;
    while (r->in_pos < r->in_len) {
        int rc = csv_step(r, (unsigned char)r->in[r->in_pos]);
        if (rc < 0)
            return -1;
        r->in_pos++;
        if (rc == 1) {
            *rec = &r->cur.rec;
            return 1;
        }
    }
    if (!r->finished || r->done)
        return 0;
    int rc = csv_at_eof(r);
    if (rc == 1)
        *rec = &r->cur.rec;
    return rc;
}

char *csv_record_to_json(const struct csv_record *header, const struct csv_record *rec, size_t *len,
                         char *err, size_t errlen)
{
    if (rec->nfields != header->nfields) {
        snprintf(err, errlen, "line %lu: record has %zu field(s), the header %zu", rec->line,
                 rec->nfields, header->nfields);
        return NULL;
    }
    json_t *obj = json_object();
    if (!obj) {
        snprintf(err, errlen, "csv: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < rec->nfields; i++) {
        json_t *v = json_stringn(rec->fields[i], rec->lengths[i]);
        if (!v) {
            snprintf(err, errlen, "line %lu: field %zu is not valid UTF-8", rec->line, i + 1);
            json_decref(obj);
            return NULL;
        }
        if (json_object_setn_new(obj, header->fields[i], header->lengths[i], v) < 0) {
            snprintf(err, errlen, "line %lu: column name %zu is not valid UTF-8", header->line,
                     i + 1);
            json_decref(obj);
            return NULL;
        }
    }
    if (json_object_size(obj) != rec->nfields) {
        snprintf(err, errlen, "line %lu: the header repeats a column name", header->line);
        json_decref(obj);
        return NULL;
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!text) {
        snprintf(err, errlen, "csv: out of memory");
        return NULL;
    }
    if (len)
        *len = strlen(text);
    return text;
}
