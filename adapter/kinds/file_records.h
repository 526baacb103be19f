/*
 * file_records — the records of one dropped file, read as a stream.
 *
 * The file inbound kind reads each file twice through this: once to check
 * every record and hash the content (so nothing of a bad file is published,
 * and message ids can be derived from the hash), once to publish — no further
 * than the check read, so bytes appended in between are never published
 * unchecked (file_job.c then notices the change). Memory is
 * bounded by one chunk plus one record (csv, jsonl, json with split), or by
 * max_file for the whole-file formats (raw, xml, json without split). A
 * record whose message would be larger than max_message (the broker closes
 * the channel on one over its max_message_size) makes the file malformed.
 * Errors say where: "line L, column C: what".
 */
#ifndef SIDECAR_FILE_RECORDS_H
#define SIDECAR_FILE_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum file_format {
    FILE_FORMAT_RAW,
    FILE_FORMAT_JSON,
    FILE_FORMAT_JSONL,
    FILE_FORMAT_CSV,
    FILE_FORMAT_XML,
};

struct file_records_options {
    enum file_format format;
    bool split;         /* json: one record per element of the top-level array */
    char delimiter;     /* csv; '\0' = ',' */
    size_t max_file;    /* whole-file formats: the largest file (bytes) */
    size_t max_record;  /* streaming formats: the largest record (bytes) */
    size_t max_message; /* a record whose body would be longer (csv: as JSON) is INVALID, a
                           whole-file format's file too; 0: no such limit */
    bool check;         /* validate every record completely (json syntax, xml safety) */
    bool bodies;        /* produce record bodies (csv records become JSON objects) */
    bool hash;          /* SHA-256 over every byte of the file */
    uint64_t limit;     /* read no more than this many bytes (what was checked); 0: to the end */
};

struct file_record {
    char *body; /* malloc'd, NUL-terminated, owned by the caller; NULL without opt.bodies */
    size_t len;
    uint64_t index;     /* 0-based position in the file */
    unsigned long line; /* physical line the record starts on, 1-based */
};

#define RECORDS_NEXT    1  /* *rec holds the next record */
#define RECORDS_END     0  /* no more records */
#define RECORDS_INVALID -1 /* the file is malformed: file_records_error says where */
#define RECORDS_IO      -2 /* reading failed (errno-style text in file_records_error) */

/* Reads from fd (borrowed, positioned at the start). NULL only for a bad option (err). */
struct file_records *file_records_open(const struct file_records_options *opt, int fd, char *err,
                                       size_t errlen);
void file_records_free(struct file_records *fr);

/* One of RECORDS_*; errors are sticky. */
int file_records_next(struct file_records *fr, struct file_record *rec);

/* Why the last call failed; borrowed. */
const char *file_records_error(const struct file_records *fr);

/* With opt.hash: reads whatever is left of the file (after END or INVALID) and
 * writes the SHA-256 of the whole file as 64 hex digits. 0, or -1 (I/O error). */
int file_records_digest(struct file_records *fr, char hex[65]);

/* Bytes read so far (progress). */
uint64_t file_records_offset(const struct file_records *fr);

/* Does this format (with split) produce one message per record? */
bool file_format_splits(enum file_format format, bool split);
int file_format_parse(const char *name, enum file_format *out);
const char *file_format_name(enum file_format format);

#endif
