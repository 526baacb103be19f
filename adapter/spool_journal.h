/*
 * spool_journal — the on-disk format of an inbound spool: an append-only
 * journal of checksummed, length-prefixed records in segment files, read
 * back in order and deleted segment by segment as records are confirmed.
 *
 * A directory holds segments named by the sequence number of their first
 * record ("00000000000000000001.seg") and a `confirmed` mark (the highest
 * sequence number whose publish the broker confirmed; records are
 * confirmed in order). A record is a 32-byte header — magic, payload
 * length, sequence number, append time, CRC32C of header and payload —
 * then the payload. Appends come in groups: one write and one fdatasync
 * for many records (group commit); a group that fails is cut off again, so
 * no record of it survives to be forwarded after its sender heard "no".
 *
 * Opening recovers: every segment is read through and each record checked
 * (magic, length, sequence, checksum). A bad record ends its segment: at
 * the end of the last segment that is a torn write (the process died
 * mid-append; that sender never got its answer), so the tail is truncated
 * and logged; anywhere else it is damage, logged as an error.
 *
 * One thread uses a journal (the spool's); nothing here locks.
 */
#ifndef SIDECAR_SPOOL_JOURNAL_H
#define SIDECAR_SPOOL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_RECORD_HEADER 32
#define SPOOL_RECORD_MAX    (256u << 20) /* a payload's bound: broker.max_message's */

struct spool_journal;

/* What opening found. */
struct spool_recovery {
    uint64_t records;        /* unconfirmed records, ready to forward */
    uint64_t bytes;          /* of the segment files */
    uint64_t torn_bytes;     /* cut off the last segment's tail (0: none) */
    uint64_t damaged_bytes;  /* unreadable past a bad record in an earlier segment */
    size_t segments;         /* segment files kept */
    bool confirmed_mark_bad; /* the confirmed mark was unreadable: resent from the start */
};

/* One record read back: payload is the journal's until the next read. */
struct spool_record {
    uint64_t seq;
    int64_t time_ms; /* when it was appended (wall clock, ms since the epoch) */
    const char *payload;
    size_t len;
};

/* Opens (creating files, not the directory) the journal in dir; segments
 * roll over past segment_bytes. label names it in logs (the route). NULL
 * with err when dir cannot be used. */
struct spool_journal *spool_journal_open(const char *dir, size_t segment_bytes, const char *label,
                                         struct spool_recovery *found, char *err, size_t errlen);
void spool_journal_close(struct spool_journal *j); /* NULL is fine */

/* Appends n records (payloads borrowed) at time_ms, then fdatasync: 0 when
 * all are on disk (*first_seq numbers the first), or -errno with err, and
 * then none of them is in the journal. */
int spool_journal_append(struct spool_journal *j, const char *const *payloads, const size_t *lens,
                         size_t n, int64_t time_ms, uint64_t *first_seq, char *err, size_t errlen);

/* The next record not yet read: 1 with *out, 0 when there is none, -errno on
 * a read error (err). Reads go on across segments and over later appends. */
int spool_journal_read(struct spool_journal *j, struct spool_record *out, char *err, size_t errlen);

/* The next read returns the oldest unconfirmed record again: after a
 * forward failed, everything from it on is sent again, in order. */
void spool_journal_rewind(struct spool_journal *j);

/* Every record up to seq is confirmed: saves the mark and deletes the
 * segments it covers entirely (all of them once the journal is drained).
 * 0, or -errno with err (the mark stays in memory; a restart resends). */
int spool_journal_confirm(struct spool_journal *j, uint64_t seq, char *err, size_t errlen);

struct spool_journal_stats {
    uint64_t records;   /* appended and not confirmed */
    uint64_t bytes;     /* of the segment files on disk */
    uint64_t confirmed; /* the mark */
    uint64_t last_seq;  /* of the newest record; the mark when empty */
    int64_t oldest_ms;  /* the append time of the oldest unconfirmed record; 0 none */
};
void spool_journal_stats(const struct spool_journal *j, struct spool_journal_stats *out);

/* CRC32C (Castagnoli), as iSCSI and ext4 use it; crc is 0 to start. */
uint32_t spool_crc32c(uint32_t crc, const void *data, size_t len);

#endif
