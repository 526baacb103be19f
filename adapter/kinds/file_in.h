/*
 * file_in.h — what the two halves of the file inbound kind share:
 * file_in.c (the kind: config, the route's thread, which file next) and
 * file_job.c (one claimed file: check, publish, wait for confirms, file it
 * away). Both run on the route's own loop; only the publish callbacks in
 * file_job.c run on the publisher's thread.
 */
#ifndef SIDECAR_FILE_IN_H
#define SIDECAR_FILE_IN_H

#include "file_records.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct file_job;
struct file_watch;
struct loop;
struct route;

#define FILE_PROCESSING_DIR ".processing"

struct file_in_opts {
    char *dir;
    char *pattern;
    char *format;
    bool split;
    char *delimiter;
    char *content_type;
    int settle_ms;
    double scan_interval;
    char *done_dir;
    char *failed_dir;
    int max_file;
    int max_record;
    int max_message;
    int max_inflight;
    /* derived by validate */
    enum file_format fmt;
    char delim;
};

/* A claimed file waiting in .processing for (another) attempt. */
struct file_claimed {
    char *name;
    bool confirmed; /* every record (or the DLQ copy) is confirmed: only filing is left */
    char *error;    /* confirmed malformed: why (for failed_dir's .error); NULL: done_dir */
    bool settling;  /* changed after its claim and could not go back to dir: settles here */
    struct stat st; /* confirmed: the file as published; settling: as last seen */
    char prefix[33];
    int failures;          /* this file's own trouble (cannot open, cannot file away) */
    int64_t not_before_ms; /* ... backs off this file only */
    struct file_claimed *next;
};

struct file_in {
    struct route *r;
    const struct file_in_opts *o;
    struct loop *loop;
    pthread_t thread;
    bool thread_started;
    struct file_watch *watch;
    char *processing; /* "<dir>/.processing" */
    struct file_job *job;
    struct file_claimed *claimed; /* finish these before taking new files */
    size_t inflight_cap;
    bool key_has_json; /* the routing key looks into records */
    uint64_t pump_timer;
    int64_t pump_due_ms;   /* when pump_timer fires */
    int64_t not_before_ms; /* back-off after an attempt the broker did not accept */
    int failures;          /* consecutive such attempts */
    bool waiting_logged;   /* "waiting for the broker" said once */
    bool standby;          /* lease = true and this sidecar does not hold it: claim nothing */
    bool watching;         /* file_watch started (at boot, or when the lease is first held) */
    atomic_bool draining;
    atomic_bool busy;
};

enum file_job_end {
    FILE_JOB_DONE,    /* every record confirmed; filed in done_dir (or deleted) */
    FILE_JOB_FAILED,  /* malformed: filed in failed_dir with .error, copy in the DLQ */
    FILE_JOB_RETRY,   /* not (all) accepted: left in .processing for another attempt */
    FILE_JOB_UNFILED, /* confirmed (records, or the DLQ copy), but done_dir or failed_dir
                         refused it: retry only the filing */
    FILE_JOB_CHANGED, /* it changed after the claim (a writer was not done): not filed; put back */
};

/* file_job.c: starts on the file `name` in .processing; claimed is its lstat
 * when it was claimed just now (dev, ino, size, mtime), NULL for one that was
 * already there. NULL (logged) when it cannot be opened; the caller then tries
 * again later. */
struct file_job *file_job_begin(struct file_in *fi, const char *name, const struct stat *claimed);
/* Loop thread: a publish completed somewhere; look again. */
void file_job_wake(struct file_job *j);
/* Loop thread, at stop only (the publisher's thread is gone: no callback can come). */
void file_job_discard(struct file_job *j);
const char *file_job_name(const struct file_job *j);

/* file_claim.c: taking a file from dir into .processing and giving it back;
 * the claimed files waiting there (fi->claimed). */
/* Claims dir/name (settled: its stat when it settled), *st = its lstat just
 * before; 0, or -1 when it is not ours to take now (logged where useful). */
int file_claim(struct file_in *fi, const char *name, const struct stat *settled, struct stat *st);
/* The claimed file changed after its claim: back into dir to settle again (or
 * settling in .processing when dir has a new one of that name). */
void file_claim_put_back(struct file_in *fi, const char *name);
/* At start: files left in .processing by an earlier run go first, by name. */
void file_claim_recover(struct file_in *fi);
int64_t file_claim_backoff_ms(int failures);
struct file_claimed *file_claimed_new(const char *name, bool confirmed, const char *prefix);
void file_claimed_free(struct file_claimed *c);
void file_claimed_push_front(struct file_in *fi, struct file_claimed *c);
/* Forgets the claimed file of that name, if fi->claimed holds one. */
void file_claimed_drop(struct file_in *fi, const char *name);
/* This file has a problem of its own: back of the line, backing off. */
void file_claimed_back_off(struct file_in *fi, struct file_claimed *c);
/* The first claimed file not backing off (unlinked), or NULL; *due = when the next one is. */
struct file_claimed *file_claimed_take(struct file_in *fi, int64_t now, int64_t *due);
/* A taken file still what it was? 0: go on with it; -1: it is settling or
 * changed and was handed on (or freed). */
int file_claimed_check(struct file_in *fi, struct file_claimed *c);

/* file_message.c: from what was read to what is published. */
struct message;
/* Transforms rec's body (taken) and builds its routing key into *body, *len
 * and *key (both the caller's, even on failure). 0, or -1 with err naming
 * the record. The check pass calls it too, so a failure there fails the file. */
int file_message_prepare(const struct file_in *fi, const char *filename, struct file_record *rec,
                         char **body, size_t *len, char **key, char *err, size_t errlen);
/* The message for record `index` of the file whose id prefix is `prefix`;
 * takes body and key. */
struct message *file_message_record(const struct file_in *fi, const char *filename,
                                    const char *prefix, uint64_t index, char *body, size_t len,
                                    char *key);
/* The DLQ copy of a malformed file, error saying why; takes body (NULL when
 * there is none, and no_body then says why in the error header). */
struct message *file_message_dead_copy(const struct file_in *fi, const char *filename,
                                       const char *prefix, const char *error, char *body,
                                       size_t len, const char *no_body);

/* file_filing.c: where a file in .processing goes at the end. Both log what
 * happened either way and return 0 or -errno (the file then stays put). */
/* Every record is confirmed: into done_dir as name (name.<prefix16> when taken),
 * or deleted without done_dir. summary describes the publishing for the log. */
int file_filing_done(struct file_in *fi, const char *name, const char *prefix, const char *summary);
/* Malformed (its DLQ copy is confirmed): into failed_dir, with <name>.error saying why. */
int file_filing_failed(struct file_in *fi, const char *name, const char *prefix, const char *error);

/* file_in.c: the job ended (it is freed by then); name, prefix (the file's id
 * prefix, "" before it is known), st (the file as checked) and error (why it
 * is malformed, or NULL) are valid during the call only. */
void file_in_job_ended(struct file_in *fi, const char *name, const char *prefix,
                       const struct stat *st, const char *error, enum file_job_end end);

#endif
