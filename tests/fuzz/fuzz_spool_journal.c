/*
 * fuzz_spool_journal.c — libFuzzer target for the spool journal's recovery
 * (adapter/spool_journal.c).
 *
 * The input says which records to append (a count, then a length byte and
 * that many payload bytes each) and how to damage the segment afterwards, as
 * a crash or a disk would: 0 appends the rest of the input as raw bytes (a
 * torn write), 1 cuts the file at a position, 2 flips a byte at a position.
 * The journal is then opened again and every record read back. The
 * properties: no record is invented or changed (each one read equals the one
 * written with its number, and at most one extra, a valid-looking garbage
 * tail, can follow the written ones); none before the damage is lost (a cut
 * keeps exactly the records that end before it, a flipped byte keeps exactly
 * those before the record it hit); a payload read back decodes or is refused,
 * never overread (spool_message_decode).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "message.h"
#include "spool_journal.h"
#include "spool_message.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECORDS_MAX 16

static char dir[64];

static void empty_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
}

static void remove_dir(void)
{
    empty_dir();
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* On tmpfs when there is one: every append fdatasyncs, which a disk makes slow. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                       : getenv("TMPDIR")            ? getenv("TMPDIR")
                                                     : "/tmp";
    snprintf(dir, sizeof(dir), "%s/fuzz_spool_XXXXXX", base);
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(remove_dir);
    log_set_level(LOG_ERROR); /* the torn-record warnings are expected */
    return 0;
}

static struct spool_journal *open_journal(struct spool_recovery *found)
{
    char err[512];
    struct spool_journal *j = spool_journal_open(dir, 1 << 20, "fuzz", found, err, sizeof(err));
    if (j == NULL) {
        fprintf(stderr, "open: %s\n", err);
        abort();
    }
    return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    empty_dir();
    size_t pos = 0;
    size_t n = data[pos++] % RECORDS_MAX;
    const char *payloads[RECORDS_MAX];
    size_t lens[RECORDS_MAX], ends[RECORDS_MAX]; /* ends: byte offset after record i */
    size_t end = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = pos < size ? data[pos++] : 0;
        if (len > size - pos)
            len = size - pos;
        payloads[i] = (const char *)data + pos;
        lens[i] = len;
        pos += len;
        end += SPOOL_RECORD_HEADER + len;
        ends[i] = end;
    }
    struct spool_recovery found;
    struct spool_journal *j = open_journal(&found);
    uint64_t first = 0;
    char err[512];
    if (n > 0 && spool_journal_append(j, payloads, lens, n, 1000, &first, err, sizeof(err)) != 0)
        abort();
    spool_journal_close(j);

    /* the damage */
    char path[128];
    snprintf(path, sizeof(path), "%s/%020d.seg", dir, 1);
    int mode = pos < size ? data[pos++] % 3 : 0;
    size_t at = pos + 1 < size ? (size_t)(data[pos] | data[pos + 1] << 8) : 0;
    pos = pos + 2 <= size ? pos + 2 : size;
    size_t keep = n; /* the records that must come back */
    if (n > 0) {
        int fd = open(path, O_RDWR);
        if (fd < 0)
            abort();
        if (mode == 0 && pos < size &&
            pwrite(fd, data + pos, size - pos, (off_t)end) != (ssize_t)(size - pos))
            abort();
        if (mode == 1) {
            at %= end + 1;
            if (ftruncate(fd, (off_t)at) != 0)
                abort();
            for (keep = 0; keep < n && ends[keep] <= at; keep++)
                ;
        }
        if (mode == 2) {
            at %= end;
            unsigned char c;
            if (pread(fd, &c, 1, (off_t)at) != 1)
                abort();
            c ^= (unsigned char)((pos < size ? data[pos] : 0) | 1);
            if (pwrite(fd, &c, 1, (off_t)at) != 1)
                abort();
            for (keep = 0; keep < n && ends[keep] <= at; keep++)
                ;
        }
        close(fd);
    }

    j = open_journal(&found);
    size_t got = 0;
    struct spool_record rec;
    while (spool_journal_read(j, &rec, err, sizeof(err)) == 1) {
        if (got < n && (rec.seq != got + 1 || rec.len != lens[got] ||
                        (rec.len > 0 && memcmp(rec.payload, payloads[got], rec.len) != 0)))
            abort(); /* a record changed */
        char why[256];
        message_free(spool_message_decode(rec.payload, rec.len, why, sizeof(why)));
        got++;
    }
    if (got < keep || got > (mode == 0 ? n + 1 : keep) || found.records != got)
        abort(); /* lost before the damage, or invented */
    spool_journal_close(j);
    return 0;
}
