/*
 * spool_journal — segment files of checksummed records (spool_journal.h).
 *
 * In memory: the segments in order (first sequence number, records, valid
 * bytes), the open descriptor of the last one (appends), and two cursors
 * into the records: `read` (the next to forward) and `oldest` (the first
 * unconfirmed, where a rewind goes back to and whose time is the spool's
 * age). A cursor is a sequence number with its segment and byte offset.
 * Record headers are little-endian whatever the host.
 */
#include "spool_journal.h"

#include "log.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD_MAGIC   0x31525053u /* "SPR1" */
#define MARK_MAGIC     0x464d5053u /* "SPMF" */
#define MARK_FILE      "confirmed"
#define SEGMENT_SUFFIX ".seg"

struct segment {
    uint64_t first_seq;
    uint64_t records; /* valid ones, numbered first_seq, first_seq + 1, … */
    uint64_t size;    /* bytes of valid records */
    int fd;           /* open for reading (and, for the last, appending) */
    bool sealed;      /* a failed write could not be cut off: append elsewhere */
};

struct cursor {
    uint64_t seq;    /* the record it points at */
    size_t segment;  /* index into segments */
    uint64_t offset; /* of that record in the segment */
};

struct spool_journal {
    char *dir;
    char *label;
    size_t segment_bytes;
    struct segment *segments;
    size_t n_segments;
    uint64_t confirmed; /* the mark */
    uint64_t next_seq;  /* the next append's */
    struct cursor read, oldest;
    int64_t oldest_ms; /* the time of the record at `oldest`; 0 when none */
    char *buf;         /* the last read's payload */
    size_t buf_cap;
};

/* ---- CRC32C, by table (8 KiB of reads a record are not worth SSE4.2 here) ---- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t spool_crc32c(uint32_t crc, const void *data, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- encoding --------------------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Header: magic, length, seq, time, crc, zero. The crc covers bytes 0..23 and the payload. */
static void header_fill(unsigned char h[SPOOL_RECORD_HEADER], uint64_t seq, int64_t time_ms,
                        const char *payload, size_t len)
{
    memset(h, 0, SPOOL_RECORD_HEADER);
    put32(h, RECORD_MAGIC);
    put32(h + 4, (uint32_t)len);
    put64(h + 8, seq);
    put64(h + 16, (uint64_t)time_ms);
    put32(h + 24, spool_crc32c(spool_crc32c(0, h, 24), payload, len));
}

/* Is h a plausible header for record seq with at most room payload bytes after it? */
static bool header_ok(const unsigned char h[SPOOL_RECORD_HEADER], uint64_t seq, uint64_t room)
{
    uint32_t len = get32(h + 4);
    return get32(h) == RECORD_MAGIC && len <= SPOOL_RECORD_MAX && len <= room &&
           get64(h + 8) == seq && get32(h + 28) == 0;
}

static bool payload_ok(const unsigned char h[SPOOL_RECORD_HEADER], const char *payload)
{
    return spool_crc32c(spool_crc32c(0, h, 24), payload, get32(h + 4)) == get32(h + 24);
}

/* ---- files ------------------------------------------------------------------------- */

static char *segment_path(const struct spool_journal *j, uint64_t first_seq)
{
    return xasprintf("%s/%020" PRIu64 SEGMENT_SUFFIX, j->dir, first_seq);
}

static int full_pread(int fd, void *out, size_t n, uint64_t offset)
{
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(fd, (char *)out + done, n - done, (off_t)(offset + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            return -ENODATA; /* shorter than its records say */
        done += (size_t)got;
    }
    return 0;
}

static int full_pwrite(int fd, const void *data, size_t n, uint64_t offset)
{
    size_t done = 0;
    while (done < n) {
        ssize_t put = pwrite(fd, (const char *)data + done, n - done, (off_t)(offset + done));
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return -errno;
        done += (size_t)put;
    }
    return 0;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* The mark: magic, seq, crc of both. A missing one is 0; an unreadable one too, said in *bad. */
static uint64_t mark_load(const struct spool_journal *j, bool *bad)
{
    char *path = xasprintf("%s/%s", j->dir, MARK_FILE);
    unsigned char m[16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    *bad = false;
    if (fd < 0)
        return 0;
    ssize_t got = read(fd, m, sizeof(m));
    close(fd);
    if (got != (ssize_t)sizeof(m) || get32(m) != MARK_MAGIC ||
        get32(m + 12) != spool_crc32c(0, m, 12)) {
        *bad = true;
        return 0;
    }
    return get64(m + 4);
}

/* Written to a temporary name and renamed over the old one; not synced: a mark
 * lost with the page cache means records sent again (same ids), never lost. */
static int mark_save(const struct spool_journal *j, char *err, size_t errlen)
{
    unsigned char m[16];
    put32(m, MARK_MAGIC);
    put64(m + 4, j->confirmed);
    put32(m + 12, spool_crc32c(0, m, 12));
    char *tmp = xasprintf("%s/%s.tmp", j->dir, MARK_FILE);
    char *path = xasprintf("%s/%s", j->dir, MARK_FILE);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || full_pwrite(fd, m, sizeof(m), 0) != 0 || close(fd) != 0 ||
        rename(tmp, path) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot save the confirmed mark: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    }
    free(tmp);
    free(path);
    return rc;
}

/* ---- recovery ---------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The first sequence numbers of the segment files in dir, sorted. */
static int list_segments(const char *dir, uint64_t **out, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    *out = NULL;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len != 20 + strlen(SEGMENT_SUFFIX) || strcmp(e->d_name + 20, SEGMENT_SUFFIX) != 0 ||
            strspn(e->d_name, "0123456789") != 20)
            continue;
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = strtoull(e->d_name, NULL, 10);
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, *n, sizeof(**out), cmp_u64);
    return 0;
}

/* Reads one segment through: records, valid size; the end of the good part. */
static void scan_segment(struct spool_journal *j, struct segment *s, uint64_t file_size)
{
    unsigned char h[SPOOL_RECORD_HEADER];
    uint64_t off = 0;
    s->records = 0;
    while (off + SPOOL_RECORD_HEADER <= file_size) {
        if (full_pread(s->fd, h, sizeof(h), off) != 0 ||
            !header_ok(h, s->first_seq + s->records, file_size - off - SPOOL_RECORD_HEADER))
            break;
        size_t len = get32(h + 4);
        if (len > j->buf_cap) {
            j->buf = xrealloc(j->buf, len);
            j->buf_cap = len;
        }
        if (full_pread(s->fd, j->buf, len, off + SPOOL_RECORD_HEADER) != 0 ||
            !payload_ok(h, j->buf))
            break;
        off += SPOOL_RECORD_HEADER + len;
        s->records++;
    }
    s->size = off;
}

/* The last segment's bad tail: a write the process did not finish. Cut it off. */
static int cut_torn_tail(struct spool_journal *j, struct segment *s, uint64_t file_size,
                         struct spool_recovery *found, char *err, size_t errlen)
{
    uint64_t torn = file_size - s->size;
    if (torn == 0)
        return 0;
    if (ftruncate(s->fd, (off_t)s->size) != 0 || fdatasync(s->fd) != 0) {
        snprintf(err, errlen, "%s: cannot cut off a torn record: %s", j->dir, strerror(errno));
        return -1;
    }
    found->torn_bytes += torn;
    log_warn(j->label,
             "spool %s: discarded a torn record at the end of segment %020" PRIu64 " (%" PRIu64
             " bytes at offset %" PRIu64
             ": the process stopped mid-write, so its sender was never answered)",
             j->dir, s->first_seq, torn, s->size);
    return 0;
}

static int open_segments(struct spool_journal *j, struct spool_recovery *found, char *err,
                         size_t errlen)
{
    uint64_t *firsts;
    size_t n;
    if (list_segments(j->dir, &firsts, &n, err, errlen) != 0)
        return -1;
    j->segments = xcalloc(n ? n : 1, sizeof(*j->segments));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct segment *s = &j->segments[j->n_segments];
        char *path = segment_path(j, firsts[i]);
        s->first_seq = firsts[i];
        s->fd = open(path, (i + 1 == n ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        struct stat st;
        if (s->fd < 0 || fstat(s->fd, &st) != 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(path);
            rc = -1;
            break;
        }
        j->n_segments++;
        scan_segment(j, s, (uint64_t)st.st_size);
        if (i + 1 == n) {
            rc = cut_torn_tail(j, s, (uint64_t)st.st_size, found, err, errlen);
        } else if (s->size < (uint64_t)st.st_size) {
            found->damaged_bytes += (uint64_t)st.st_size - s->size;
            log_error(j->label,
                      "spool %s: segment %s is damaged at offset %" PRIu64 " (%" PRIu64
                      " bytes after it cannot be read; the disk or another program changed it): "
                      "its %" PRIu64 " good records are forwarded, the rest is lost",
                      j->dir, path, s->size, (uint64_t)st.st_size - s->size, s->records);
        }
        free(path);
    }
    free(firsts);
    return rc;
}

/* Points c where the next append lands: the end of the last segment (a new
 * segment starts at offset 0 with next_seq, where an empty journal points). */
static void cursor_end(const struct spool_journal *j, struct cursor *c)
{
    *c = (struct cursor){.seq = j->next_seq};
    if (j->n_segments > 0) {
        c->segment = j->n_segments - 1;
        c->offset = j->segments[c->segment].size;
    }
}

/* Points c at record seq (or, when it is not stored, the next stored after
 * it): walks the headers of its segment, so only for the rare jumps. */
static void cursor_seek(const struct spool_journal *j, struct cursor *c, uint64_t seq)
{
    for (size_t i = 0; i < j->n_segments; i++) {
        const struct segment *s = &j->segments[i];
        if (seq < s->first_seq + s->records) {
            if (seq < s->first_seq)
                seq = s->first_seq;
            c->segment = i;
            c->seq = s->first_seq;
            c->offset = 0;
            unsigned char h[SPOOL_RECORD_HEADER];
            while (c->seq < seq && full_pread(s->fd, h, sizeof(h), c->offset) == 0) {
                c->offset += SPOOL_RECORD_HEADER + get32(h + 4);
                c->seq++;
            }
            return;
        }
    }
    cursor_end(j, c);
}

/* Keeps c on its record as segments come and go: at the end of a segment it
 * moves on to the next one (or stays, where the next append lands). */
static void cursor_fix(const struct spool_journal *j, struct cursor *c)
{
    while (c->segment < j->n_segments) {
        const struct segment *s = &j->segments[c->segment];
        uint64_t end = s->first_seq + s->records;
        if (c->seq >= s->first_seq && c->seq < end)
            return; /* on a stored record */
        if (c->seq != end || c->offset != s->size)
            break; /* lost its place: find it again */
        if (c->segment + 1 == j->n_segments)
            return; /* at the end: the next record goes here */
        c->segment++;
        c->offset = 0;
        if (c->seq < j->segments[c->segment].first_seq) /* records lost to damage */
            c->seq = j->segments[c->segment].first_seq;
    }
    if (j->n_segments == 0 && c->seq == j->next_seq)
        return;
    cursor_seek(j, c, c->seq);
}

/* Moves c to the record after the one it points at, whose payload is len long. */
static void cursor_step(const struct spool_journal *j, struct cursor *c, size_t len)
{
    c->seq++;
    c->offset += SPOOL_RECORD_HEADER + len;
    cursor_fix(j, c);
}

/* The time of the record at `oldest`, or 0 when it is past the last. */
static void oldest_refresh(struct spool_journal *j)
{
    unsigned char h[SPOOL_RECORD_HEADER];
    j->oldest_ms = 0;
    cursor_fix(j, &j->oldest);
    if (j->oldest.seq < j->next_seq && j->oldest.segment < j->n_segments &&
        full_pread(j->segments[j->oldest.segment].fd, h, sizeof(h), j->oldest.offset) == 0)
        j->oldest_ms = (int64_t)get64(h + 16);
}

struct spool_journal *spool_journal_open(const char *dir, size_t segment_bytes, const char *label,
                                         struct spool_recovery *found, char *err, size_t errlen)
{
    struct spool_journal *j = xcalloc(1, sizeof(*j));
    j->dir = xstrdup(dir);
    j->label = xstrdup(label);
    j->segment_bytes = segment_bytes;
    *found = (struct spool_recovery){0};
    j->confirmed = mark_load(j, &found->confirmed_mark_bad);
    if (found->confirmed_mark_bad)
        log_warn(label,
                 "spool %s: the confirmed mark is unreadable; every stored record is sent "
                 "again (duplicates keep their message_id)",
                 dir);
    if (open_segments(j, found, err, errlen) != 0) {
        spool_journal_close(j);
        return NULL;
    }
    if (j->n_segments > 0) {
        const struct segment *first = &j->segments[0], *last = &j->segments[j->n_segments - 1];
        if (j->confirmed + 1 < first->first_seq) /* deleted segments were confirmed */
            j->confirmed = first->first_seq - 1;
        j->next_seq = last->first_seq + last->records;
        if (j->confirmed >= j->next_seq)
            j->confirmed = j->next_seq - 1;
    } else {
        j->next_seq = j->confirmed + 1;
    }
    found->segments = j->n_segments;
    cursor_seek(j, &j->oldest, j->confirmed + 1);
    j->read = j->oldest;
    oldest_refresh(j);
    struct spool_journal_stats st;
    spool_journal_stats(j, &st);
    found->records = st.records;
    found->bytes = st.bytes;
    return j;
}

void spool_journal_close(struct spool_journal *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->n_segments; i++)
        close(j->segments[i].fd);
    free(j->segments);
    free(j->buf);
    free(j->dir);
    free(j->label);
    free(j);
}

/* ---- appending --------------------------------------------------------------------- */

/* The segment the next group goes to: the last, or a new one when it is full. */
static struct segment *append_segment(struct spool_journal *j, bool *created, char *err,
                                      size_t errlen)
{
    *created = false;
    if (j->n_segments > 0) {
        struct segment *last = &j->segments[j->n_segments - 1];
        if (last->size < j->segment_bytes && !last->sealed)
            return last;
    }
    char *path = segment_path(j, j->next_seq);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : sync_dir(j->dir);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot create a spool segment: %s", path, strerror(-rc));
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        free(path);
        errno = -rc;
        return NULL;
    }
    free(path);
    j->segments = xrealloc(j->segments, (j->n_segments + 1) * sizeof(*j->segments));
    struct segment *s = &j->segments[j->n_segments++];
    *s = (struct segment){.first_seq = j->next_seq, .fd = fd};
    *created = true;
    return s;
}

/* A failed group is cut off again; a new, empty segment goes altogether. */
static void append_undo(struct spool_journal *j, struct segment *s, bool created)
{
    if (created) {
        char *path = segment_path(j, s->first_seq);
        close(s->fd);
        unlink(path);
        free(path);
        j->n_segments--;
        return;
    }
    if (ftruncate(s->fd, (off_t)s->size) != 0) {
        /* It cannot be cut: never append after it (a reader would stop there). */
        log_error(j->label,
                  "spool %s: cannot cut a failed write off segment %020" PRIu64
                  " (%s); later records go to a new segment",
                  j->dir, s->first_seq, strerror(errno));
        s->sealed = true;
    }
}

int spool_journal_append(struct spool_journal *j, const char *const *payloads, const size_t *lens,
                         size_t n, int64_t time_ms, uint64_t *first_seq, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    bool created;
    struct segment *s = append_segment(j, &created, err, errlen);
    if (s == NULL)
        return -errno;
    struct buf group = {0};
    for (size_t i = 0; i < n; i++) {
        unsigned char h[SPOOL_RECORD_HEADER];
        header_fill(h, j->next_seq + i, time_ms, payloads[i], lens[i]);
        buf_append(&group, h, sizeof(h));
        buf_append(&group, payloads[i], lens[i]);
    }
    int rc = full_pwrite(s->fd, group.data, group.len, s->size);
    if (rc == 0 && fdatasync(s->fd) != 0)
        rc = -errno;
    if (rc != 0) {
        snprintf(err, errlen, "spool %s: writing %zu record(s) (%zu bytes) failed: %s", j->dir, n,
                 group.len, strerror(-rc));
        append_undo(j, s, created);
        buf_free(&group);
        return rc;
    }
    s->size += group.len;
    s->records += n;
    *first_seq = j->next_seq;
    j->next_seq += n;
    if (j->oldest_ms == 0)
        oldest_refresh(j);
    buf_free(&group);
    return 0;
}

/* ---- reading ----------------------------------------------------------------------- */

int spool_journal_read(struct spool_journal *j, struct spool_record *out, char *err, size_t errlen)
{
    cursor_fix(j, &j->read);
    if (j->read.seq >= j->next_seq || j->read.segment >= j->n_segments)
        return 0;
    const struct segment *s = &j->segments[j->read.segment];
    unsigned char h[SPOOL_RECORD_HEADER];
    int rc = full_pread(s->fd, h, sizeof(h), j->read.offset);
    size_t len = rc == 0 ? get32(h + 4) : 0;
    if (rc == 0 && !header_ok(h, j->read.seq, s->size - j->read.offset - SPOOL_RECORD_HEADER))
        rc = -EBADMSG;
    if (rc == 0 && len > j->buf_cap) {
        j->buf = xrealloc(j->buf, len);
        j->buf_cap = len;
    }
    if (rc == 0)
        rc = full_pread(s->fd, j->buf, len, j->read.offset + SPOOL_RECORD_HEADER);
    if (rc == 0 && !payload_ok(h, j->buf))
        rc = -EBADMSG;
    if (rc != 0) {
        snprintf(err, errlen,
                 "spool %s: record %" PRIu64 " of segment %020" PRIu64 " cannot be read: %s",
                 j->dir, j->read.seq, s->first_seq, strerror(-rc));
        return rc;
    }
    *out = (struct spool_record){.seq = j->read.seq,
                                 .time_ms = (int64_t)get64(h + 16),
                                 .payload = j->buf ? j->buf : "",
                                 .len = len};
    cursor_step(j, &j->read, len);
    return 1;
}

void spool_journal_rewind(struct spool_journal *j)
{
    j->read = j->oldest;
}

/* ---- confirming --------------------------------------------------------------------- */

/* Deletes the first k segments; the cursors keep pointing at their records. */
static void drop_segments(struct spool_journal *j, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        char *path = segment_path(j, j->segments[i].first_seq);
        if (unlink(path) != 0)
            log_warn(j->label, "spool: cannot delete the drained segment %s: %s", path,
                     strerror(errno));
        close(j->segments[i].fd);
        free(path);
    }
    memmove(j->segments, j->segments + k, (j->n_segments - k) * sizeof(*j->segments));
    j->n_segments -= k;
    struct cursor *cursors[] = {&j->read, &j->oldest};
    for (size_t i = 0; i < 2; i++) {
        if (cursors[i]->segment >= k)
            cursors[i]->segment -= k;
        else
            cursor_seek(j, cursors[i], cursors[i]->seq);
    }
}

int spool_journal_confirm(struct spool_journal *j, uint64_t seq, char *err, size_t errlen)
{
    if (seq >= j->next_seq)
        seq = j->next_seq - 1;
    if (seq <= j->confirmed)
        return 0;
    j->confirmed = seq;
    int rc = mark_save(j, err, errlen);
    size_t k = 0;
    while (k < j->n_segments && j->segments[k].first_seq + j->segments[k].records - 1 <= seq &&
           (k + 1 < j->n_segments || seq + 1 == j->next_seq))
        k++;
    if (k > 0)
        drop_segments(j, k);
    cursor_fix(j, &j->oldest);
    while (j->oldest.seq <= seq && j->oldest.seq < j->next_seq) {
        unsigned char h[SPOOL_RECORD_HEADER];
        if (j->oldest.segment >= j->n_segments ||
            full_pread(j->segments[j->oldest.segment].fd, h, sizeof(h), j->oldest.offset) != 0)
            break;
        cursor_step(j, &j->oldest, get32(h + 4));
    }
    if (j->oldest.seq <= seq)
        cursor_seek(j, &j->oldest, seq + 1);
    if (j->read.seq < j->oldest.seq)
        j->read = j->oldest;
    oldest_refresh(j);
    return rc;
}

void spool_journal_stats(const struct spool_journal *j, struct spool_journal_stats *out)
{
    uint64_t bytes = 0, records = 0;
    for (size_t i = 0; i < j->n_segments; i++) {
        const struct segment *s = &j->segments[i];
        bytes += s->size;
        uint64_t end = s->first_seq + s->records;
        if (end > j->confirmed + 1)
            records += end - (s->first_seq > j->confirmed ? s->first_seq : j->confirmed + 1);
    }
    *out = (struct spool_journal_stats){.records = records,
                                        .bytes = bytes,
                                        .confirmed = j->confirmed,
                                        .last_seq = j->next_seq - 1,
                                        .oldest_ms = records ? j->oldest_ms : 0};
}
