/*
 * csv.h — streaming RFC 4180 reader and the CSV -> JSON record convention.
 *
 * The caller feeds chunks of any size (even one byte) and pulls complete
 * records; memory stays bounded by the largest record plus the chunk fed,
 * never the file. The first record is the header: it names the columns and
 * fixes the field count every later record must have. A reader belongs to
 * one thread at a time; nothing here has global state.
 */
#ifndef SIDECAR_CSV_H
#define SIDECAR_CSV_H

#include <stdbool.h>
#include <stddef.h>

#define CSV_DEFAULT_MAX_RECORD ((size_t)1 << 20) /* 1 MiB */

/* Zero-initialised options are the defaults. */
struct csv_options {
    char delimiter;       /* '\0' = ','; never '"', CR or LF */
    size_t max_record;    /* bytes of one record as written, line end excluded; 0 = 1 MiB */
    size_t max_field;     /* bytes of one field's value; 0 = max_record */
    bool skip_utf8_check; /* false: invalid UTF-8 is an error (line, column) */
};

/* A parsed record. Everything points into the reader: valid until the next
 * csv_reader_next() / csv_reader_free() (the header until csv_reader_free()). */
struct csv_record {
    size_t nfields;
    const char *const *fields; /* each NUL-terminated; may also contain NUL bytes */
    const size_t *lengths;     /* byte length of each field */
    unsigned long line;        /* physical line the record starts on, 1-based */
    unsigned long number;      /* 0 = header, then 1, 2, ... for data records */
};

/* NULL on a bad option or no memory, with the reason in err. Free with csv_reader_free. */
struct csv_reader *csv_reader_new(const struct csv_options *opt, char *err, size_t errlen);
void csv_reader_free(struct csv_reader *r);

/* Appends len bytes (copied; buf stays the caller's). Call csv_reader_next()
 * until it returns 0 before feeding more, so buffered input stays small.
 * 0, or -1 after an error or csv_reader_finish(). */
int csv_reader_feed(struct csv_reader *r, const char *buf, size_t len);

/* Marks the end of input: the last record may lack a line end, and an open
 * quote becomes an error. 0, or -1 if the reader already failed. */
int csv_reader_finish(struct csv_reader *r);

/* 1: *rec is the next data record (borrowed, see struct csv_record).
 * 0: more input needed, or after csv_reader_finish() the end of the data.
 * -1: error, described by csv_reader_error(); sticky. */
int csv_reader_next(struct csv_reader *r, const struct csv_record **rec);

/* The header record once read, else NULL. Borrowed. */
const struct csv_record *csv_reader_header(const struct csv_reader *r);

/* "line L, column C: what" after an error, else NULL. Borrowed. */
const char *csv_reader_error(const struct csv_reader *r);

/* {"<header 1>": "<field 1>", ...} as compact JSON text, keys in header order,
 * every value a string. Returns malloc'd NUL-terminated text the caller frees,
 * its length in *len (may be NULL); NULL with err filled on failure. */
char *csv_record_to_json(const struct csv_record *header, const struct csv_record *rec, size_t *len,
                         char *err, size_t errlen);

#endif
