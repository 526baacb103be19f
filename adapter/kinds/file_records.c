/*
 * file_records — see file_records.h.
 * (About 610 lines: one streaming reader for every format, whose passes must
 * agree byte for byte on record boundaries.)
 *
 * One reader per file pass. Input comes from read(2) in 64 KiB chunks, each
 * hashed as it is read. The whole-file formats gather the file (up to
 * max_file) and yield it once; jsonl cuts lines; csv feeds transforms/csv.c;
 * json with split runs a small scanner that finds the elements of the
 * top-level array (tracking strings, escapes and nesting depth) and hands
 * each element to jansson to check, so a 1 GB array never sits in memory.
 * Record bodies are the bytes as written (trimmed), never re-serialised, so
 * numbers keep every digit; csv records are rendered by csv_record_to_json.
 */
#include "file_records.h"

#include "csv.h"
#include "util.h"
#include "xml_safe.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

/* The json split scanner's states. */
enum split_state {
    SPLIT_BEFORE_ARRAY,
    SPLIT_BEFORE_ELEMENT, /* after '[' or ',' */
    SPLIT_IN_ELEMENT,
    SPLIT_AFTER_ARRAY,
};

struct file_records {
    struct file_records_options opt;
    int fd;
    char chunk[CHUNK];
    size_t chunk_len, chunk_pos;
    bool eof, done, bom_checked;
    int failed; /* 0, or the sticky RECORDS_INVALID / RECORDS_IO */
    uint64_t offset, index;
    EVP_MD_CTX *sha;
    char error[600];
    /* position of the next byte of chunk (jsonl, json split) */
    unsigned long line, col;
    /* jsonl line / json element being gathered */
    struct buf item;
    unsigned long item_line, item_col;
    /* json split */
    enum split_state split;
    bool after_comma, in_string, escape;
    unsigned long depth;
    /* csv */
    struct csv_reader *csv;
    bool csv_finished;
};

static const char *const format_names[] = {"raw", "json", "jsonl", "csv", "xml"};

const char *file_format_name(enum file_format format)
{
    return format_names[format];
}

int file_format_parse(const char *name, enum file_format *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (enum file_format)i;
            return 0;
        }
    }
    return -1;
}

bool file_format_splits(enum file_format format, bool split)
{
    return format == FILE_FORMAT_CSV || format == FILE_FORMAT_JSONL ||
           (format == FILE_FORMAT_JSON && split);
}

/* ---- reading --------------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static int records_fail(struct file_records *fr,
                                                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fr->error, sizeof(fr->error), fmt, ap);
    va_end(ap);
    fr->failed = RECORDS_INVALID;
    return RECORDS_INVALID;
}

static int records_io_fail(struct file_records *fr, int err)
{
    snprintf(fr->error, sizeof(fr->error), "reading the file failed: %s", strerror(err));
    fr->failed = RECORDS_IO;
    return RECORDS_IO;
}

/* Reads the next chunk: 1 when bytes arrived, 0 at end of file, RECORDS_IO. */
static int records_read(struct file_records *fr)
{
    if (fr->eof)
        return 0;
    size_t want = sizeof(fr->chunk);
    if (fr->opt.limit > 0 && fr->opt.limit - fr->offset < want)
        want = (size_t)(fr->opt.limit - fr->offset); /* bytes written since are not ours */
    ssize_t n = 0;
    while (want > 0 && (n = read(fr->fd, fr->chunk, want)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return records_io_fail(fr, errno);
    fr->chunk_len = (size_t)n;
    fr->chunk_pos = 0;
    if (n == 0) {
        fr->eof = true;
        return 0;
    }
    if (fr->sha)
        EVP_DigestUpdate(fr->sha, fr->chunk, (size_t)n);
    fr->offset += (uint64_t)n;
    return 1;
}

/* Skips a UTF-8 byte order mark at the very start (JSON formats). */
static void records_skip_bom(struct file_records *fr)
{
    if (fr->bom_checked)
        return;
    fr->bom_checked = true;
    if (fr->chunk_len - fr->chunk_pos >= 3 &&
        memcmp(fr->chunk + fr->chunk_pos, "\xEF\xBB\xBF", 3) == 0)
        fr->chunk_pos += 3;
}

/* Advances line/column over one byte (columns count characters). */
static void records_advance(struct file_records *fr, unsigned char c)
{
    if (c == '\n') {
        fr->line++;
        fr->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        fr->col++;
    }
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The item's bytes without surrounding whitespace; *lead counts the leading bytes cut. */
static char *trimmed(struct buf *b, size_t *len, size_t *lead)
{
    char *s = b->data ? b->data : "";
    size_t n = b->len, start = 0;
    while (start < n && is_space((unsigned char)s[start]))
        start++;
    while (n > start && is_space((unsigned char)s[n - 1]))
        n--;
    *len = n - start;
    if (lead)
        *lead = start;
    return s + start;
}

/* Hands out text[0..len) as the record body (a copy) when bodies are wanted. */
static void record_set(struct file_records *fr, struct file_record *rec, const char *text,
                       size_t len, unsigned long line)
{
    rec->body = fr->opt.bodies ? xstrndup(text, len) : NULL;
    rec->len = len;
    rec->index = fr->index++;
    rec->line = line;
}

/* Checks one JSON text that starts at (line, col) of the file. */
static int check_json(struct file_records *fr, const char *text, size_t len, unsigned long line,
                      unsigned long col)
{
    if (!fr->opt.check)
        return 0;
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (v != NULL) {
        json_decref(v);
        return 0;
    }
    unsigned long l = jerr.line > 0 ? (unsigned long)jerr.line : 1;
    unsigned long c = jerr.column > 0 ? (unsigned long)jerr.column : 1;
    return records_fail(fr, "line %lu, column %lu: invalid JSON: %s", line + l - 1,
                        l == 1 ? col + c - 1 : c, jerr.text);
}

/* ---- whole-file formats ---------------------------------------------------------- */

/* A record of len bytes (its body as published) is too large for one message? */
static bool over_max_message(const struct file_records *fr, size_t len)
{
    return fr->opt.max_message > 0 && len > fr->opt.max_message;
}

static int next_whole(struct file_records *fr, struct file_record *rec)
{
    if (fr->done)
        return RECORDS_END;
    bool by_message = fr->opt.max_message > 0 && fr->opt.max_message < fr->opt.max_file;
    size_t max = by_message ? fr->opt.max_message : fr->opt.max_file;
    struct buf all = {0};
    int rc;
    while ((rc = records_read(fr)) == 1) {
        if (all.len + fr->chunk_len > max) {
            buf_free(&all);
            if (by_message)
                return records_fail(fr,
                                    "the file is larger than max_message (%zu bytes), the largest "
                                    "message this route publishes; raise max_message (within the "
                                    "broker's max_message_size) or use a streaming format (csv, "
                                    "jsonl, json with split)",
                                    max);
            return records_fail(fr,
                                "the file is larger than max_file (%zu bytes); raise max_file or "
                                "use a streaming format (csv, jsonl, json with split)",
                                max);
        }
        buf_append(&all, fr->chunk, fr->chunk_len);
    }
    if (rc < 0) {
        buf_free(&all);
        return rc;
    }
    fr->done = true;
    size_t len = all.len;
    char *text = all.data ? all.data : "";
    size_t skip = 0;
    if (fr->opt.format == FILE_FORMAT_JSON && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        skip = 3;
    if (fr->opt.check && fr->opt.format == FILE_FORMAT_JSON &&
        check_json(fr, text + skip, len - skip, 1, 1) < 0) {
        buf_free(&all);
        return RECORDS_INVALID;
    }
    if (fr->opt.check && fr->opt.format == FILE_FORMAT_XML) {
        char err[600];
        struct xml_limits lim = {.max_bytes = fr->opt.max_file};
        xmlDocPtr doc = xml_parse_safe(text, len, &lim, err, sizeof(err));
        if (doc == NULL) {
            buf_free(&all);
            return records_fail(fr, "%s", err);
        }
        xmlFreeDoc(doc);
    }
    record_set(fr, rec, text + skip, len - skip, 1);
    buf_free(&all);
    return RECORDS_NEXT;
}

/* ---- jsonl ---------------------------------------------------------------------- */

static int too_large(struct file_records *fr, unsigned long line, size_t len, const char *what)
{
    return records_fail(fr,
                        "line %lu: record %" PRIu64 " is %zu bytes%s, larger than max_message (%zu "
                        "bytes), the largest message this route publishes; raise max_message "
                        "(within the broker's max_message_size) or split the record",
                        line, fr->index, len, what, fr->opt.max_message);
}

/* The gathered line is complete: a record unless blank. 1, 0 (blank) or INVALID. */
static int jsonl_line_done(struct file_records *fr, struct file_record *rec)
{
    size_t len, lead;
    const char *text = trimmed(&fr->item, &len, &lead);
    unsigned long line = fr->item_line;
    fr->item_line = fr->line;
    if (len == 0) {
        fr->item.len = 0;
        return 0;
    }
    if (over_max_message(fr, len))
        return too_large(fr, line, len, "");
    if (check_json(fr, text, len, line, 1 + lead) < 0)
        return RECORDS_INVALID;
    record_set(fr, rec, text, len, line);
    fr->item.len = 0;
    return 1;
}

static int next_jsonl(struct file_records *fr, struct file_record *rec)
{
    for (;;) {
        if (fr->chunk_pos == fr->chunk_len) {
            int rc = records_read(fr);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                if (fr->item.len == 0)
                    return RECORDS_END;
                rc = jsonl_line_done(fr, rec);
                return rc == 0 ? RECORDS_END : rc;
            }
            records_skip_bom(fr);
        }
        const char *start = fr->chunk + fr->chunk_pos;
        size_t avail = fr->chunk_len - fr->chunk_pos;
        const char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        if (fr->item.len + take > fr->opt.max_record)
            return records_fail(fr,
                                "line %lu: longer than max_record (%zu bytes); raise max_record",
                                fr->item_line, fr->opt.max_record);
        buf_append(&fr->item, start, take);
        fr->chunk_pos += take;
        if (nl == NULL)
            continue;
        fr->chunk_pos++; /* the newline */
        fr->line++;
        int rc = jsonl_line_done(fr, rec);
        if (rc != 0)
            return rc < 0 ? rc : RECORDS_NEXT;
    }
}

/* ---- json with split ---------------------------------------------------------------- */

static int split_element_done(struct file_records *fr, struct file_record *rec)
{
    size_t len, lead;
    const char *text = trimmed(&fr->item, &len, &lead);
    if (len == 0)
        return records_fail(fr, "line %lu, column %lu: expected a value", fr->item_line,
                            fr->item_col);
    /* lead only holds spaces and tabs here: elements start at their first byte */
    if (over_max_message(fr, len))
        return too_large(fr, fr->item_line, len, "");
    if (check_json(fr, text, len, fr->item_line, fr->item_col) < 0)
        return RECORDS_INVALID;
    record_set(fr, rec, text, len, fr->item_line);
    fr->item.len = 0;
    return RECORDS_NEXT;
}

/* Feeds one byte; RECORDS_NEXT when it completed an element, 0 to go on, or an error. */
static int split_step(struct file_records *fr, unsigned char c, struct file_record *rec)
{
    switch (fr->split) {
    case SPLIT_BEFORE_ARRAY:
        if (is_space(c))
            return 0;
        if (c != '[')
            return records_fail(fr,
                                "line %lu, column %lu: split = true needs a JSON array at the top "
                                "level (found '%c')",
                                fr->line, fr->col, c >= 0x20 && c < 0x7f ? c : '?');
        fr->split = SPLIT_BEFORE_ELEMENT;
        return 0;
    case SPLIT_BEFORE_ELEMENT:
        if (is_space(c))
            return 0;
        if (c == ']' && !fr->after_comma) {
            fr->split = SPLIT_AFTER_ARRAY;
            return 0;
        }
        if (c == ',' || c == ']')
            return records_fail(fr, "line %lu, column %lu: expected a value before '%c'", fr->line,
                                fr->col, c);
        fr->split = SPLIT_IN_ELEMENT;
        fr->item_line = fr->line;
        fr->item_col = fr->col;
        fr->depth = 0;
        fr->in_string = fr->escape = false;
        break;
    case SPLIT_IN_ELEMENT:
        break;
    case SPLIT_AFTER_ARRAY:
        if (is_space(c))
            return 0;
        return records_fail(fr, "line %lu, column %lu: data after the end of the top-level array",
                            fr->line, fr->col);
    }
    /* inside an element */
    if (fr->in_string) {
        if (fr->escape)
            fr->escape = false;
        else if (c == '\\')
            fr->escape = true;
        else if (c == '"')
            fr->in_string = false;
    } else if (c == '"') {
        fr->in_string = true;
    } else if (c == '{' || c == '[') {
        fr->depth++;
    } else if ((c == '}' || c == ']') && fr->depth > 0) {
        fr->depth--;
    } else if (fr->depth == 0 && (c == ',' || c == ']')) {
        fr->after_comma = c == ',';
        fr->split = c == ',' ? SPLIT_BEFORE_ELEMENT : SPLIT_AFTER_ARRAY;
        return split_element_done(fr, rec);
    }
    if (fr->item.len >= fr->opt.max_record)
        return records_fail(fr,
                            "line %lu, column %lu: array element longer than max_record (%zu "
                            "bytes); raise max_record",
                            fr->item_line, fr->item_col, fr->opt.max_record);
    char ch = (char)c;
    buf_append(&fr->item, &ch, 1);
    return 0;
}

static int next_split(struct file_records *fr, struct file_record *rec)
{
    for (;;) {
        if (fr->chunk_pos == fr->chunk_len) {
            int rc = records_read(fr);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
            records_skip_bom(fr);
        }
        unsigned char c = (unsigned char)fr->chunk[fr->chunk_pos++];
        int rc = split_step(fr, c, rec);
        records_advance(fr, c);
        if (rc != 0)
            return rc;
    }
    switch (fr->split) {
    case SPLIT_AFTER_ARRAY:
        fr->done = true;
        return RECORDS_END;
    case SPLIT_BEFORE_ARRAY:
        return records_fail(fr, "the file holds no JSON array (split = true needs one)");
    default:
        return records_fail(fr, "line %lu, column %lu: the file ends inside the array", fr->line,
                            fr->col);
    }
}

/* ---- csv ---------------------------------------------------------------------------- */

/* The most bytes cr can become as a JSON object: jansson writes a byte as at
 * most 6 ("\u0001"), and each field adds quotes, a colon and a comma. */
static size_t csv_json_bound(const struct csv_record *header, const struct csv_record *cr)
{
    size_t n = 2;
    for (size_t i = 0; i < cr->nfields; i++)
        n += 6 * ((i < header->nfields ? header->lengths[i] : 0) + cr->lengths[i]) + 6;
    return n;
}

/* With max_message: the record's JSON (rendered only when the bound says it may be too large). */
static int csv_check_size(struct file_records *fr, const struct csv_record *cr, size_t len)
{
    const struct csv_record *header = csv_reader_header(fr->csv);
    if (fr->opt.max_message == 0 ||
        (!fr->opt.bodies && !over_max_message(fr, csv_json_bound(header, cr))))
        return 0;
    if (!fr->opt.bodies) {
        char err[300];
        char *json = csv_record_to_json(header, cr, &len, err, sizeof(err));
        if (json == NULL)
            return records_fail(fr, "%s", err);
        free(json);
    }
    return over_max_message(fr, len) ? too_large(fr, cr->line, len, " as JSON") : 0;
}

static int next_csv(struct file_records *fr, struct file_record *rec)
{
    for (;;) {
        const struct csv_record *cr;
        int rc = csv_reader_next(fr->csv, &cr);
        if (rc < 0)
            return records_fail(fr, "%s", csv_reader_error(fr->csv));
        if (rc == 1) {
            rec->body = NULL;
            rec->len = 0;
            if (fr->opt.bodies) {
                char err[300];
                rec->body =
                    csv_record_to_json(csv_reader_header(fr->csv), cr, &rec->len, err, sizeof(err));
                if (rec->body == NULL)
                    return records_fail(fr, "%s", err);
            }
            if (csv_check_size(fr, cr, rec->len) < 0) {
                free(rec->body);
                rec->body = NULL;
                return RECORDS_INVALID;
            }
            rec->index = fr->index++;
            rec->line = cr->line;
            return RECORDS_NEXT;
        }
        if (fr->csv_finished)
            return RECORDS_END;
        int got = records_read(fr);
        if (got < 0)
            return got;
        if (got == 0) {
            csv_reader_finish(fr->csv);
            fr->csv_finished = true;
        } else if (csv_reader_feed(fr->csv, fr->chunk, fr->chunk_len) < 0) {
            return records_fail(fr, "%s", csv_reader_error(fr->csv));
        }
    }
}

/* ---- the reader ------------------------------------------------------------------------ */

struct file_records *file_records_open(const struct file_records_options *opt, int fd, char *err,
                                       size_t errlen)
{
    struct file_records *fr = xcalloc(1, sizeof(*fr));
    fr->opt = *opt;
    fr->fd = fd;
    fr->line = fr->item_line = 1;
    fr->col = 1;
    if (opt->format == FILE_FORMAT_CSV) {
        struct csv_options co = {.delimiter = opt->delimiter, .max_record = opt->max_record};
        fr->csv = csv_reader_new(&co, err, errlen);
        if (fr->csv == NULL) {
            free(fr);
            return NULL;
        }
    }
    if (opt->hash) {
        fr->sha = EVP_MD_CTX_new();
        if (fr->sha == NULL || EVP_DigestInit_ex(fr->sha, EVP_sha256(), NULL) != 1) {
            snprintf(err, errlen, "SHA-256 is not available from OpenSSL");
            file_records_free(fr);
            return NULL;
        }
    }
    return fr;
}

void file_records_free(struct file_records *fr)
{
    if (fr == NULL)
        return;
    csv_reader_free(fr->csv);
    EVP_MD_CTX_free(fr->sha);
    buf_free(&fr->item);
    free(fr);
}

int file_records_next(struct file_records *fr, struct file_record *rec)
{
    *rec = (struct file_record){0};
    if (fr->failed)
        return fr->failed;
    switch (fr->opt.format) {
    case FILE_FORMAT_RAW:
    case FILE_FORMAT_XML:
        return next_whole(fr, rec);
    case FILE_FORMAT_JSON:
        return fr->opt.split ? next_split(fr, rec) : next_whole(fr, rec);
    case FILE_FORMAT_JSONL:
        return next_jsonl(fr, rec);
    case FILE_FORMAT_CSV:
        return next_csv(fr, rec);
    }
    return RECORDS_END;
}

const char *file_records_error(const struct file_records *fr)
{
    return fr->error;
}

uint64_t file_records_offset(const struct file_records *fr)
{
    return fr->offset;
}

int file_records_digest(struct file_records *fr, char hex[65])
{
    if (fr->sha == NULL)
        return -1;
    for (;;) {
        ssize_t n = read(fr->fd, fr->chunk, sizeof(fr->chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        EVP_DigestUpdate(fr->sha, fr->chunk, (size_t)n);
        fr->offset += (uint64_t)n;
    }
    fr->eof = true;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(fr->sha, md, &n) != 1 || n != 32)
        return -1;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(fr->sha);
    fr->sha = NULL;
    return 0;
}
