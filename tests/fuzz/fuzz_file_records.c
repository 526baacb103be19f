/*
 * fuzz_file_records.c — libFuzzer target for the json split scanner in
 * adapter/kinds/file_records.c (a hand-written streaming parser).
 *
 * Differential property against jansson parsing the whole document: when
 * the scanner accepts the file, the document is a JSON array and the records
 * are exactly its elements, in order; when jansson accepts the document as
 * an array, the scanner accepts it too. The same input as jsonl must never
 * crash, and every jsonl record must be valid JSON on its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "kinds/file_records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd_with(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET))
        abort();
    return fd;
}

/* Reads every record of fd as format; returns them as a JSON array (NULL on error). */
static json_t *records_of(int fd, enum file_format format, bool split)
{
    struct file_records_options opt = {.format = format,
                                       .split = split,
                                       .max_file = 1 << 20,
                                       .max_record = 1 << 20,
                                       .check = true,
                                       .bodies = true,
                                       .hash = true};
    char err[200];
    struct file_records *fr = file_records_open(&opt, fd, err, sizeof(err));
    if (fr == NULL)
        abort();
    json_t *all = json_array();
    struct file_record rec;
    int rc;
    while ((rc = file_records_next(fr, &rec)) == RECORDS_NEXT) {
        json_t *v = json_loadb(rec.body, rec.len, JSON_DECODE_ANY, NULL);
        if (v == NULL)
            abort(); /* checked records are valid JSON */
        json_array_append_new(all, v);
        free(rec.body);
    }
    char hex[65];
    if (file_records_digest(fr, hex) != 0)
        abort();
    file_records_free(fr);
    if (rc != RECORDS_END) {
        json_decref(all);
        return NULL;
    }
    return all;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t skip = size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    json_error_t jerr;
    json_t *whole = json_loadb((const char *)data + skip, size - skip, JSON_DECODE_ANY, &jerr);
    bool deep = whole == NULL && strstr(jerr.text, "depth") != NULL;

    int fd = memfd_with(data, size);
    json_t *split = records_of(fd, FILE_FORMAT_JSON, true);
    close(fd);
    if (split != NULL && !deep && (whole == NULL || !json_equal(split, whole)))
        abort(); /* accepted, but not the elements of a valid array */
    if (split == NULL && whole != NULL && json_is_array(whole))
        abort(); /* a valid array refused */
    json_decref(split);
    json_decref(whole);

    fd = memfd_with(data, size);
    json_decref(records_of(fd, FILE_FORMAT_JSONL, false));
    close(fd);
    return 0;
}
