/*
 * file_job — one claimed file, from .processing/ to done_dir or failed_dir.
 * (About 620 lines: the two passes, the re-checks and the ending share one
 * job's state; claiming and messages are in file_claim.c and file_message.c.)
 *
 * Pass 1 (CHECK) reads the whole file: every record parsed (and transformed
 * and keyed, when the route does that), every byte hashed. A malformed file
 * publishes nothing: a copy goes to the route's DLQ (COPY), then the file
 * and a .error beside it go to failed_dir. A good file is read again
 * (PUBLISH) and each record published as "<sha256 prefix>:<index>", so a
 * re-run after a crash repeats the same ids. At most inflight_cap records
 * wait for confirms; the publisher's callbacks count outcomes in atomics and
 * wake the loop only when the window has room again. Once every record is
 * confirmed (CONFIRM) file_filing.c moves it to done_dir or deletes it. If
 * the broker refuses or loses anything, the attempt ends (GIVE_UP) after the
 * outstanding confirms came back, and the file stays in .processing.
 *
 * A writer may not be done when its file is claimed. So the file must stay
 * the one that was checked: the publish pass reads no further than the check
 * did, and the file (the fd, and the name in .processing) is compared with
 * its stat at the claim and the open — before a DLQ copy, every ~20 ms while
 * publishing, and before it is filed. If it changed, the attempt stops (what
 * is in flight comes back first) and file_in.c puts the file back to settle;
 * nothing is filed, and once it is stable it is published in full.
 *
 * Work is done in slices of ~10 ms so the loop keeps serving inotify,
 * drain and stop while a 1 GB file streams through.
 */
#include "file_in.h"

#include "inbound.h"
#include "log.h"
#include "loop.h"
#include "publisher.h"
#include "route.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLICE_MS         10
#define SAFETY_WAKE_MS   500
#define WINDOW_RETRY_MS  20
#define PROGRESS_MS      10000
#define PROGRESS_RECORDS 100000
#define ID_PREFIX_HEX    32
#define CHANGE_CHECK_MS  20

enum phase { PHASE_CHECK, PHASE_PUBLISH, PHASE_CONFIRM, PHASE_COPY, PHASE_GIVE_UP };

struct file_job {
    struct file_in *fi;
    struct route *r;
    char *name; /* as dropped */
    char *path; /* in .processing */
    int fd;
    struct stat st;      /* at the open: the file the check reads */
    struct stat claimed; /* at the claim (dev, ino, size, mtime); st_ino 0: not known */
    char *changed;       /* why the file is not the one that was checked; NULL: it is */
    int64_t check_due_ms;
    struct file_records *rec;
    enum phase phase;
    bool bodies_in_check; /* a transform or a {json.…} key must see every record */
    char prefix[ID_PREFIX_HEX + 1];
    uint64_t records; /* counted by the check */
    uint64_t sent;    /* loop-side count of submits in this attempt */
    char *error;      /* why the file is malformed */
    char *give_up;    /* why this attempt ended early (NULL: see fail_detail) */
    int64_t started_ms, progress_ms;
    uint64_t progress_sent;
    uint64_t step_timer, safety_timer;
    /* shared with the publisher's thread */
    atomic_uint_fast64_t submitted, completed, unroutable, failed;
    atomic_int_fast64_t wake_at; /* wake the loop when in flight <= this; -1: don't */
    atomic_bool wake_posted, fail_noted;
    atomic_int refs;
    char fail_detail[300]; /* the first failure's reason; read once all completed */
};

static void job_step(struct file_job *j);

const char *file_job_name(const struct file_job *j)
{
    return j->name;
}

static void job_unref(struct file_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1)
        free(j);
}

/* ---- scheduling ----------------------------------------------------------------------- */

static void on_step_timer(struct loop *loop, void *arg)
{
    struct file_job *j = arg;
    j->step_timer = 0;
    job_step(j);
}

static void job_again(struct file_job *j, int64_t ms)
{
    if (j->step_timer == 0)
        j->step_timer = loop_timer(j->fi->loop, ms, on_step_timer, j);
}

static void on_safety_timer(struct loop *loop, void *arg)
{
    struct file_job *j = arg;
    j->safety_timer = 0;
    job_step(j);
}

/* Publisher thread → loop: some completion crossed the threshold the job waits for. */
static void job_wake_post(void *arg)
{
    struct file_in *fi = arg;
    if (fi->job != NULL)
        file_job_wake(fi->job);
}

void file_job_wake(struct file_job *j)
{
    atomic_store(&j->wake_posted, false);
    atomic_store(&j->wake_at, -1);
    job_again(j, 0);
}

static uint64_t in_flight(struct file_job *j)
{
    return atomic_load(&j->submitted) - atomic_load(&j->completed);
}

/* True when at most `threshold` publishes are in flight; else arranges a wake-up. */
static bool wait_until(struct file_job *j, uint64_t threshold)
{
    atomic_store(&j->wake_at, (int_fast64_t)threshold);
    if (in_flight(j) <= threshold) {
        atomic_store(&j->wake_at, -1);
        return true;
    }
    if (j->safety_timer == 0)
        j->safety_timer = loop_timer(j->fi->loop, SAFETY_WAKE_MS, on_safety_timer, j);
    return false;
}

/* Publisher thread, exactly once per accepted submit. */
static void job_published(void *arg, struct publish_result *res)
{
    struct file_job *j = arg;
    if (res->status == PUBLISH_UNROUTABLE) {
        atomic_fetch_add(&j->unroutable, 1);
    } else if (res->status != PUBLISH_OK) {
        if (!atomic_exchange(&j->fail_noted, true))
            snprintf(j->fail_detail, sizeof(j->fail_detail), "%s",
                     res->detail ? res->detail : publish_status_name(res->status));
        atomic_fetch_add(&j->failed, 1);
    }
    uint64_t done = atomic_fetch_add(&j->completed, 1) + 1;
    int_fast64_t at = atomic_load(&j->wake_at);
    if (at >= 0 && atomic_load(&j->submitted) - done <= (uint64_t)at &&
        !atomic_exchange(&j->wake_posted, true))
        loop_post(j->fi->loop, job_wake_post, j->fi);
    job_unref(j);
}

/* ---- ending ------------------------------------------------------------------------ */

static void job_close(struct file_job *j)
{
    if (j->step_timer)
        loop_timer_cancel(j->fi->loop, j->step_timer);
    if (j->safety_timer)
        loop_timer_cancel(j->fi->loop, j->safety_timer);
    j->step_timer = j->safety_timer = 0;
    file_records_free(j->rec);
    j->rec = NULL;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
}

static void job_end(struct file_job *j, enum file_job_end end)
{
    struct file_in *fi = j->fi;
    char *name = j->name;
    char prefix[sizeof(j->prefix)];
    memcpy(prefix, j->prefix, sizeof(prefix));
    struct stat st = j->st;
    char *error = j->error;
    job_close(j);
    free(j->path);
    free(j->give_up);
    free(j->changed);
    fi->job = NULL;
    job_unref(j);
    file_in_job_ended(fi, name, prefix, &st, error, end);
    free(error);
    free(name);
}

void file_job_discard(struct file_job *j)
{
    j->fi->job = NULL;
    job_close(j);
    free(j->path);
    free(j->error);
    free(j->give_up);
    free(j->changed);
    free(j->name);
    free(j); /* whatever refs remain belong to callbacks that can no longer run */
}

static double seconds_since(int64_t ms)
{
    double s = (double)(loop_now_ms() - ms) / 1000.0;
    return s > 0.001 ? s : 0.001;
}

/* Every record is confirmed: file it in done_dir, or delete it. */
static void job_done(struct file_job *j)
{
    job_close(j);
    double secs = seconds_since(j->started_ms);
    uint64_t unroutable = atomic_load(&j->unroutable);
    char summary[400];
    int n = snprintf(summary, sizeof(summary), "%" PRIu64 " record(s) confirmed in %.2fs (%.0f/s)",
                     j->records, secs, (double)j->records / secs);
    if (unroutable)
        snprintf(summary + n, sizeof(summary) - (size_t)n,
                 ", %" PRIu64 " of them unroutable (parked in %s)", unroutable, j->r->dlq);
    bool filed = file_filing_done(j->fi, j->name, j->prefix, summary) == 0;
    job_end(j, filed ? FILE_JOB_DONE : FILE_JOB_UNFILED);
}

/* The DLQ holds the copy: file it in failed_dir, with the .error. If that
 * fails only the filing is retried; the copy is not sent again. */
static void job_failed(struct file_job *j)
{
    job_close(j);
    metric_inc(j->r->metrics.refused);
    metric_inc(j->r->metrics.dead[DEAD_INVALID]);
    bool filed = file_filing_failed(j->fi, j->name, j->prefix, j->error) == 0;
    job_end(j, filed ? FILE_JOB_FAILED : FILE_JOB_UNFILED);
}

static bool same_content(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Is the file still the one that was checked? False (once, with j->changed
 * saying why) when its size, mtime or ctime moved since the open, when it is
 * not what was claimed, or when its name in .processing is another file now. */
static bool job_file_same(struct file_job *j)
{
    if (j->changed != NULL)
        return false;
    struct stat now, at;
    if (fstat(j->fd, &now) != 0)
        j->changed = xasprintf("cannot stat it: %s", strerror(errno));
    else if (!same_content(&now, &j->st) || now.st_ctim.tv_sec != j->st.st_ctim.tv_sec ||
             now.st_ctim.tv_nsec != j->st.st_ctim.tv_nsec)
        j->changed = xasprintf("%jd bytes when taken, %jd now", (intmax_t)j->st.st_size,
                               (intmax_t)now.st_size);
    else if (j->claimed.st_ino != 0 && !same_content(&j->claimed, &j->st))
        j->changed = xasprintf("it changed between the claim and the open (%jd bytes, then %jd)",
                               (intmax_t)j->claimed.st_size, (intmax_t)j->st.st_size);
    else if (lstat(j->path, &at) != 0 || at.st_dev != j->st.st_dev || at.st_ino != j->st.st_ino)
        j->changed = xasprintf("its name in %s is no longer this file", FILE_PROCESSING_DIR);
    return j->changed == NULL;
}

/* The file changed after the claim: nothing of it is filed; file_in.c puts it back. */
static void job_put_back(struct file_job *j)
{
    uint64_t confirmed = atomic_load(&j->completed) - atomic_load(&j->failed);
    char already[200];
    if (j->error != NULL && confirmed > 0)
        snprintf(already, sizeof(already),
                 "; the dead-letter copy of what was there, malformed then, is in %s", j->r->dlq);
    else if (confirmed > 0)
        snprintf(already, sizeof(already),
                 "; %" PRIu64 " record(s) of what was there are confirmed already and come "
                 "again, under the new content's ids",
                 confirmed);
    else
        already[0] = '\0';
    log_warn(j->r->name,
             "file \"%s\" changed after it was claimed (%s): is something still writing it? It "
             "is not filed; it goes back to settle and is published in full once stable%s",
             j->name, j->changed, already);
    job_close(j);
    job_end(j, FILE_JOB_CHANGED);
}

/* All outstanding publishes came back: how did this attempt end? */
static void job_settled(struct file_job *j)
{
    uint64_t failed = atomic_load(&j->failed);
    if (!job_file_same(j)) {
        job_put_back(j);
    } else if (j->phase == PHASE_GIVE_UP || failed > 0) {
        const char *why = j->give_up ? j->give_up : j->fail_detail;
        log_warn(j->r->name,
                 "file \"%s\": not accepted by the broker (%s); %" PRIu64 " of %" PRIu64
                 " record(s) confirmed; it stays in %s and is published again from the start "
                 "with the same message ids",
                 j->name, why[0] ? why : "unknown", (uint64_t)atomic_load(&j->completed) - failed,
                 j->records, j->fi->processing);
        job_close(j);
        job_end(j, FILE_JOB_RETRY);
    } else if (j->phase == PHASE_COPY) {
        job_failed(j);
    } else {
        job_done(j);
    }
}

/* Stop this attempt: wait for what is in flight, then leave the file for later. */
static void job_give_up(struct file_job *j, const char *why)
{
    if (j->give_up == NULL && why != NULL)
        j->give_up = xstrdup(why);
    j->phase = PHASE_GIVE_UP;
    job_step(j);
}

/* ---- records ------------------------------------------------------------------------- */

/* Submits one message; false after giving up (the attempt is over). */
static bool job_submit(struct file_job *j, struct message *m)
{
    atomic_fetch_add(&j->refs, 1);
    atomic_fetch_add(&j->submitted, 1);
    const char *why = NULL;
    if (inbound_publish(j->r, m, false, 0, job_published, j, &why) != 0) {
        atomic_fetch_sub(&j->submitted, 1);
        atomic_fetch_sub(&j->refs, 1);
        job_give_up(j, why ? why : "the publisher refused the message");
        return false;
    }
    j->sent++;
    return true;
}

static bool publish_record(struct file_job *j, struct file_record *rec)
{
    char *body, *key, err[700];
    size_t len;
    if (file_message_prepare(j->fi, j->name, rec, &body, &len, &key, err, sizeof(err)) != 0) {
        free(body);
        job_give_up(j, err); /* it passed the check: a non-deterministic transform? */
        return false;
    }
    metric_inc(j->r->metrics.received);
    return job_submit(j,
                      file_message_record(j->fi, j->name, j->prefix, rec->index, body, len, key));
}

/* ---- the passes ------------------------------------------------------------------------ */

static struct file_records *records_open(struct file_job *j, bool check)
{
    const struct file_in_opts *o = j->fi->o;
    struct file_records_options ro = {
        .format = o->fmt,
        .split = o->split,
        .delimiter = o->delim,
        .max_file = (size_t)o->max_file,
        .max_record = (size_t)o->max_record,
        /* with a transform its output is what is published: file_message_prepare bounds that */
        .max_message = j->r->transform ? 0 : (size_t)o->max_message,
        .check = check,
        .bodies = !check || j->bodies_in_check,
        .hash = check,
        .limit = check ? 0 : (uint64_t)j->st.st_size, /* only what the check saw */
    };
    char err[300];
    struct file_records *fr = file_records_open(&ro, j->fd, err, sizeof(err));
    if (fr == NULL)
        log_error(j->r->name, "file \"%s\": %s", j->name, err);
    return fr;
}

/* The file is malformed: publish a copy of it to the route's DLQ — without a
 * body when the file is larger than max_file or than the broker takes. */
static void job_copy_to_dlq(struct file_job *j)
{
    const struct file_in_opts *o = j->fi->o;
    j->phase = PHASE_COPY;
    struct buf body = {0};
    bool by_message = o->max_message < o->max_file;
    size_t max = (size_t)(by_message ? o->max_message : o->max_file);
    bool whole = j->st.st_size <= (off_t)max;
    if (whole && lseek(j->fd, 0, SEEK_SET) == 0) {
        char chunk[65536];
        ssize_t n = 0;
        while (body.len < (size_t)j->st.st_size && (n = read(j->fd, chunk, sizeof(chunk))) > 0 &&
               body.len + (size_t)n <= max)
            buf_append(&body, chunk, (size_t)n);
        if (n < 0 || body.len != (size_t)j->st.st_size) {
            buf_free(&body);
            job_give_up(j, "reading the malformed file for its dead-letter copy failed");
            return;
        }
    }
    size_t len = body.len;
    const char *no_body = NULL;
    if (!whole)
        no_body = by_message ? "the file is larger than max_message: this copy has no body; the "
                               "file is in failed_dir"
                             : "the file is larger than max_file: this copy has no body; the file "
                               "is in failed_dir";
    struct message *m = file_message_dead_copy(j->fi, j->name, j->prefix, j->error,
                                               buf_steal(&body, NULL), len, no_body);
    /* taken in as one message (its records never were): the summary's received then adds
     * up to confirmed + unroutable + failed */
    metric_inc(j->r->metrics.received);
    if (job_submit(j, m))
        job_step(j);
}

static void check_end(struct file_job *j)
{
    char hex[65];
    if (file_records_digest(j->rec, hex) != 0) {
        job_give_up(j, "reading the file to hash it failed");
        return;
    }
    snprintf(j->prefix, sizeof(j->prefix), "%.*s", ID_PREFIX_HEX, hex);
    file_records_free(j->rec);
    j->rec = NULL;
    if (!job_file_same(j)) {
        job_give_up(j, NULL); /* nothing in flight: settles at once */
        return;
    }
    if (j->error != NULL) {
        job_copy_to_dlq(j);
        return;
    }
    if (lseek(j->fd, 0, SEEK_SET) != 0 || (j->rec = records_open(j, false)) == NULL) {
        job_give_up(j, "reopening the file for publishing failed");
        return;
    }
    j->phase = PHASE_PUBLISH;
    j->progress_ms = loop_now_ms();
    if (j->records >= PROGRESS_RECORDS)
        log_info(j->r->name, "file \"%s\": %" PRIu64 " records checked in %.1fs; publishing",
                 j->name, j->records, seconds_since(j->started_ms));
    job_again(j, 0);
}

static void check_some(struct file_job *j)
{
    int64_t deadline = loop_now_ms() + SLICE_MS;
    for (unsigned n = 1;; n++) {
        struct file_record rec;
        int rc = file_records_next(j->rec, &rec);
        if (rc == RECORDS_NEXT) {
            if (j->bodies_in_check) {
                char *body, *key, err[700];
                size_t len;
                int bad =
                    file_message_prepare(j->fi, j->name, &rec, &body, &len, &key, err, sizeof(err));
                free(body);
                free(key);
                if (bad) {
                    j->error = xstrdup(err);
                    check_end(j);
                    return;
                }
            }
            j->records++;
            if (n % 256 == 0 && loop_now_ms() >= deadline) {
                job_again(j, 0);
                return;
            }
            continue;
        }
        if (rc == RECORDS_INVALID)
            j->error = xstrdup(file_records_error(j->rec));
        if (rc == RECORDS_IO) {
            job_give_up(j, file_records_error(j->rec));
            return;
        }
        check_end(j);
        return;
    }
}

static void progress_log(struct file_job *j)
{
    int64_t now = loop_now_ms();
    if (j->sent - j->progress_sent < PROGRESS_RECORDS && now - j->progress_ms < PROGRESS_MS)
        return;
    double secs = (double)(now - j->progress_ms) / 1000.0;
    log_info(j->r->name,
             "file \"%s\": %" PRIu64 " of %" PRIu64 " records published, %" PRIu64
             " confirmed (%.0f/s)",
             j->name, j->sent, j->records, (uint64_t)atomic_load(&j->completed),
             secs > 0 ? (double)(j->sent - j->progress_sent) / secs : 0.0);
    j->progress_ms = now;
    j->progress_sent = j->sent;
}

/* While publishing, every CHANGE_CHECK_MS: has a writer touched the file since? */
static bool publish_file_same(struct file_job *j)
{
    int64_t now = loop_now_ms();
    if (now < j->check_due_ms)
        return true;
    j->check_due_ms = now + CHANGE_CHECK_MS;
    return job_file_same(j);
}

static void publish_some(struct file_job *j)
{
    int64_t deadline = loop_now_ms() + SLICE_MS;
    for (unsigned n = 1;; n++) {
        if (atomic_load(&j->failed) > 0 || (n % 64 == 1 && !publish_file_same(j))) {
            job_give_up(j, NULL); /* stop early: each record sent now would come again */
            return;
        }
        if (in_flight(j) >= j->fi->inflight_cap &&
            !wait_until(j, j->fi->inflight_cap - (j->fi->inflight_cap + 3) / 4))
            return;
        if (n % 64 == 0 && loop_now_ms() >= deadline) {
            progress_log(j);
            job_again(j, 0);
            return;
        }
        const char *why = NULL;
        enum publisher_state state = publisher_state(j->r->publisher, &why);
        if (state == PUBLISHER_WINDOW_FULL) {
            job_again(j, WINDOW_RETRY_MS); /* the shared window is full: wait our turn */
            return;
        }
        if (state != PUBLISHER_UP) {
            job_give_up(j, why);
            return;
        }
        struct file_record rec;
        int rc = file_records_next(j->rec, &rec);
        if (rc == RECORDS_END && j->sent == j->records) {
            j->phase = PHASE_CONFIRM;
            job_step(j);
            return;
        }
        if (rc != RECORDS_NEXT || j->sent >= j->records) {
            free(rec.body); /* never a record the check did not see */
            job_give_up(j, rc == RECORDS_IO ? file_records_error(j->rec)
                                            : "the file changed between checking and publishing");
            return;
        }
        if (!publish_record(j, &rec))
            return;
    }
}

static void job_step(struct file_job *j)
{
    switch (j->phase) {
    case PHASE_CHECK:
        check_some(j);
        return;
    case PHASE_PUBLISH:
        publish_some(j);
        return;
    case PHASE_CONFIRM:
    case PHASE_COPY:
    case PHASE_GIVE_UP:
        if (wait_until(j, 0))
            job_settled(j);
        return;
    }
}

struct file_job *file_job_begin(struct file_in *fi, const char *name, const struct stat *claimed)
{
    struct file_job *j = xcalloc(1, sizeof(*j));
    if (claimed != NULL)
        j->claimed = *claimed;
    j->fi = fi;
    j->r = fi->r;
    j->name = xstrdup(name);
    j->path = xasprintf("%s/%s", fi->processing, name);
    j->fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (j->fd < 0 || fstat(j->fd, &j->st) != 0 || !S_ISREG(j->st.st_mode)) {
        log_error(fi->r->name, "cannot open the claimed file \"%s\": %s — it stays there", j->path,
                  j->fd < 0 ? strerror(errno) : "not a regular file");
        if (j->fd >= 0)
            close(j->fd);
        free(j->path);
        free(j->name);
        free(j);
        return NULL;
    }
    atomic_init(&j->refs, 1);
    atomic_init(&j->wake_at, -1);
    j->bodies_in_check = fi->r->transform != NULL || fi->key_has_json;
    j->started_ms = loop_now_ms();
    j->phase = PHASE_CHECK;
    j->rec = records_open(j, true);
    if (j->rec == NULL) {
        close(j->fd);
        free(j->path);
        free(j->name);
        free(j);
        return NULL;
    }
    fi->job = j;
    job_again(j, 0);
    return j;
}
