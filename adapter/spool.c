/*
 * spool — the spool's thread: group commit of appends, and the forwarder
 * (see spool.h for the contract, spool_journal.h for the files).
 *
 * Appends queue under the lock; the thread takes the whole queue, writes it
 * as one group, fdatasyncs, then answers each sender. Forwards sit in a
 * fixed window (a ring, by arrival): the broker's thread marks an entry
 * answered; the spool's thread confirms the answered prefix in the journal
 * (deleting drained segments), and when the head failed, waits for the rest
 * of the window, rewinds and tries again after a pause. The thread sleeps on
 * a condition variable and wakes every POLL_MS to see whether the broker is
 * back (publisher_available).
 */
#include "spool.h"

#include "log.h"
#include "loop.h"
#include "message.h"
#include "metrics.h"
#include "publisher.h"
#include "route.h"
#include "spool_journal.h"
#include "spool_message.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS         100
#define RETRY_MS        1000        /* after a failed forward, before the next try */
#define WINDOW_MAX      256         /* forwards in flight at most */
#define SEGMENT_MIN     (64u << 10) /* segments are max_bytes / 16, within these */
#define SEGMENT_MAX     (64u << 20)
#define ROOM_MIN        (64u << 10) /* check: less free space than this is an error */
#define SPOOL_LOCK_FILE "lock"
#define MAX_BYTES_MIN   1048576.0
#define MAX_BYTES_MAX   1e15
#define MAX_BYTES_DFLT  "1073741824"
#define GROUP_RECORDS   1024       /* records one write takes at most, */
#define GROUP_BYTES     (8u << 20) /* and bytes (past these, the next group takes the rest) */

#define O(field) offsetof(struct spool_config, field)

const struct config_key spool_keys[] = {
    {"dir", KEY_PATH, O(dir), KEY_DIR_LISTED, NULL, NULL, 0, 0, NULL,
     "the journal's directory (must exist, writable by the service, one route's alone)"},
    {"max_bytes", KEY_NUMBER, O(max_bytes), 0, MAX_BYTES_DFLT, NULL, MAX_BYTES_MIN, MAX_BYTES_MAX,
     NULL, "the journal's size on disk at most; beyond it requests get 503 + Retry-After again"},
    {0},
};

const struct config_key spool_process_keys[] = {
    {"dir", KEY_PATH, O(dir), KEY_DIR_LISTED, NULL, NULL, 0, 0, NULL,
     "must exist, writable by the service; route R's journal is DIR/R, made at start"},
    {"max_bytes", KEY_NUMBER, O(max_bytes), 0, MAX_BYTES_DFLT, NULL, MAX_BYTES_MIN, MAX_BYTES_MAX,
     NULL, "each route's journal's size on disk at most"},
    {0},
};

struct append {
    char *record;
    size_t len;
    spool_done_fn done;
    void *arg;
    struct append *next;
};

enum forward_state { FORWARD_WAITING, FORWARD_DONE, FORWARD_FAILED };

struct forward {
    struct spool *spool;
    uint64_t seq;
    enum forward_state state;
};

struct spool {
    struct route *_Atomic route; /* its owner's; a reload's spool_adopt moves it */
    char *dir;
    uint64_t max_bytes;
    uint64_t largest; /* the route's max_body: ready while one that large fits */
    int max_message;
    struct spool_journal *journal; /* the thread's */
    int lock_fd;                   /* flock on dir/lock: one user of a directory */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* under lock */
    struct append *head, *tail;
    uint64_t queued_bytes; /* appends not yet written */
    uint64_t disk_bytes;   /* the journal's, as of the thread's last look */
    struct forward *window;
    size_t window_size, window_head, window_count;
    int refs;   /* one per owner, and one per forward the publisher holds */
    int owners; /* routes using it: 2 while a reload hands it over */
    bool draining, stopping;
    /* the thread's */
    int64_t retry_at_ms;
    uint64_t forwarded_since_log;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- checks ----------------------------------------------------------------------- */

/* The directory checks of `check` and run: who names the group ("route
 * \"crm\"", "the process's spool"). */
static void validate_dir(const struct spool_config *c, const char *who, struct config_report *rep)
{
    struct stat st;
    bool exists = stat(c->dir, &st) == 0;
    if (!exists || !S_ISDIR(st.st_mode)) {
        config_report_add(rep, c->line,
                          "%s: spool.dir \"%s\" %s: create it (owned by the service user, mode "
                          "0700)",
                          who, c->dir, exists ? "is not a directory" : "does not exist");
        return;
    }
    if (access(c->dir, R_OK | W_OK | X_OK) != 0) {
        config_report_add(rep, c->line, "%s: spool.dir \"%s\" is not writable: %s", who, c->dir,
                          strerror(errno));
        return;
    }
    struct statvfs vfs;
    if (statvfs(c->dir, &vfs) == 0) {
        double room = (double)vfs.f_bavail * (double)vfs.f_frsize;
        if (room < ROOM_MIN)
            config_report_add(rep, c->line,
                              "%s: spool.dir \"%s\" is on a filesystem with %.0f bytes free: the "
                              "spool could take nothing; free space or move it",
                              who, c->dir, room);
        else if (room < c->max_bytes)
            config_report_note(rep, c->line,
                               "%s: spool.dir \"%s\" has %.0f bytes free, less than "
                               "spool.max_bytes %.0f: the disk fills first (requests then get 503)",
                               who, c->dir, room, c->max_bytes);
    }
}

void spool_validate(const struct spool_config *c, const char *route, bool rpc,
                    struct config_report *rep)
{
    if (c->line == 0)
        return;
    char *who = route ? xasprintf("route \"%s\"", route) : xstrdup("the process's spool");
    if (c->dir == NULL)
        config_report_add(
            rep, c->line, "%s: spool needs dir = \"…\" (the journal's directory%s)", who,
            route ? "" : "; each route's journal goes in a directory of its own in it");
    else if (rpc)
        config_report_add(rep, c->line,
                          "%s: an rpc route cannot spool (its answer is the reply, which "
                          "needs the broker): remove spool, or use mode = \"event\"",
                          who);
    else if (!c->create)
        validate_dir(c, who, rep);
    else {
        /* The process's directory was checked; the route's own one in it is
         * made at start, and if it is there already, it must be usable. */
        struct stat st;
        if (stat(c->dir, &st) == 0 || errno != ENOENT)
            validate_dir(c, who, rep);
    }
    free(who);
}

void spool_inherit(struct spool_config *c, const struct spool_config *process, const char *route,
                   bool rpc)
{
    if (c->line != 0 || process->dir == NULL || rpc)
        return;
    c->line = process->line;
    c->dir = xasprintf("%s/%s", process->dir, route);
    c->max_bytes = process->max_bytes;
    c->create = true;
}

/* ---- appends: group commit --------------------------------------------------------- */

bool spool_takes(const struct spool *s, const struct message *m, char *why, size_t whylen)
{
    if (m->body_len > (size_t)s->max_message) {
        snprintf(why, whylen, "the body is %zu bytes; broker.max_message is %d", m->body_len,
                 s->max_message);
        return false;
    }
    return message_check(m, why, whylen) == 0;
}

bool spool_has_room(struct spool *s)
{
    pthread_mutex_lock(&s->lock);
    bool room = !s->stopping &&
                s->disk_bytes + s->queued_bytes + SPOOL_RECORD_HEADER + s->largest <= s->max_bytes;
    pthread_mutex_unlock(&s->lock);
    return room;
}

int spool_append(struct spool *s, char *record, size_t len, spool_done_fn done, void *arg,
                 const char **why)
{
    static __thread char full[256];
    pthread_mutex_lock(&s->lock);
    uint64_t need = s->disk_bytes + s->queued_bytes + len + SPOOL_RECORD_HEADER;
    const char *refusal = NULL;
    if (s->stopping) {
        refusal = "the sidecar is shutting down";
    } else if (need > s->max_bytes || len > SPOOL_RECORD_MAX) {
        snprintf(full, sizeof(full), "the spool is full (%" PRIu64 " of %" PRIu64 " bytes)",
                 s->disk_bytes + s->queued_bytes, s->max_bytes);
        refusal = full;
    }
    if (refusal != NULL) {
        pthread_mutex_unlock(&s->lock);
        metric_inc(s->route->metrics.spool_refused);
        free(record);
        *why = refusal;
        return -1;
    }
    struct append *a = xcalloc(1, sizeof(*a));
    *a = (struct append){.record = record, .len = len, .done = done, .arg = arg};
    if (s->tail)
        s->tail->next = a;
    else
        s->head = a;
    s->tail = a;
    s->queued_bytes += len + SPOOL_RECORD_HEADER;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* The gauges /metrics and /readyz show; the thread's. */
static void publish_stats(struct spool *s)
{
    struct spool_journal_stats st;
    spool_journal_stats(s->journal, &st);
    struct route_metrics *m = &s->route->metrics;
    atomic_store(&m->spool_messages, (int64_t)st.records);
    atomic_store(&m->spool_bytes, (int64_t)st.bytes);
    atomic_store(&m->spool_oldest_ms, st.oldest_ms);
    s->disk_bytes = st.bytes; /* under the lock */
}

/* Lock held on entry and exit: writes the queued appends (up to GROUP_RECORDS
 * and GROUP_BYTES; one, whatever its size) as one group, then answers them. */
static void write_group(struct spool *s)
{
    struct append *list = s->head, *last = list;
    size_t n = 1, group_bytes = list->len;
    while (last->next && n < GROUP_RECORDS && group_bytes + last->next->len <= GROUP_BYTES) {
        last = last->next;
        group_bytes += last->len;
        n++;
    }
    s->head = last->next;
    if (s->head == NULL)
        s->tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&s->lock);

    const char **payloads = xcalloc(n, sizeof(*payloads));
    size_t *lens = xcalloc(n, sizeof(*lens));
    uint64_t bytes = 0;
    size_t i = 0;
    for (struct append *a = list; a; a = a->next, i++) {
        payloads[i] = a->record;
        lens[i] = a->len;
        bytes += a->len + SPOOL_RECORD_HEADER;
    }
    char err[512];
    uint64_t first;
    int rc =
        spool_journal_append(s->journal, payloads, lens, n, wall_ms(), &first, err, sizeof(err));
    free(payloads);
    free(lens);
    if (rc != 0)
        log_error(s->route->name, "%s: answering %zu sender(s) 503", err, n);
    else
        metric_add(s->route->metrics.spooled, n);
    if (rc == 0 && atomic_load(&s->route->metrics.spool_messages) == 0)
        log_warn(s->route->name,
                 "spooling: the broker cannot take publishes; requests are kept in %s and "
                 "forwarded in order once it can",
                 s->dir);

    pthread_mutex_lock(&s->lock);
    s->queued_bytes -= bytes;
    publish_stats(s);
    pthread_mutex_unlock(&s->lock);
    while (list) {
        struct append *next = list->next;
        if (rc != 0)
            metric_inc(s->route->metrics.spool_refused);
        list->done(list->arg, rc == 0, rc == 0 ? NULL : strerror(-rc));
        free(list->record);
        free(list);
        list = next;
    }
    pthread_mutex_lock(&s->lock);
}

/* ---- forwarding -------------------------------------------------------------------- */

static void spool_free(struct spool *s)
{
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    free(s->window);
    free(s->dir);
    free(s);
}

/* The broker's thread: what became of a forward. */
static void forwarded(void *arg, struct publish_result *res)
{
    struct forward *f = arg;
    struct spool *s = f->spool;
    if (res->status == PUBLISH_INVALID) /* checked before it was spooled: cannot happen */
        log_error(s->route->name,
                  "spool: record %" PRIu64 " cannot be published and is dropped: %s", f->seq,
                  res->detail ? res->detail : "invalid");
    pthread_mutex_lock(&s->lock);
    f->state = res->status == PUBLISH_OK || res->status == PUBLISH_UNROUTABLE ||
                       res->status == PUBLISH_INVALID
                   ? FORWARD_DONE
                   : FORWARD_FAILED;
    bool last = --s->refs == 0;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (last)
        spool_free(s);
}

static struct forward *window_at(struct spool *s, size_t i)
{
    return &s->window[(s->window_head + i) % s->window_size];
}

/* Lock held: confirms the answered prefix of the window; rewinds after a failure. */
static void settle_forwards(struct spool *s)
{
    uint64_t confirmed = 0;
    while (s->window_count > 0 && window_at(s, 0)->state == FORWARD_DONE) {
        confirmed = window_at(s, 0)->seq;
        s->window_head = (s->window_head + 1) % s->window_size;
        s->window_count--;
        metric_inc(s->route->metrics.spool_forwarded);
        s->forwarded_since_log++;
    }
    bool failed = s->window_count > 0 && window_at(s, 0)->state == FORWARD_FAILED;
    bool waiting = false;
    for (size_t i = 0; i < s->window_count; i++)
        waiting = waiting || window_at(s, i)->state == FORWARD_WAITING;
    pthread_mutex_unlock(&s->lock);
    if (confirmed) {
        char err[512];
        if (spool_journal_confirm(s->journal, confirmed, err, sizeof(err)) != 0)
            log_warn(s->route->name, "%s (a restart sends those messages again)", err);
    }
    if (failed && !waiting) {
        log_warn(s->route->name,
                 "spool: forwarding record %" PRIu64 " failed; sending again from it in %d ms",
                 window_at(s, 0)->seq, RETRY_MS);
        spool_journal_rewind(s->journal);
        s->retry_at_ms = loop_now_ms() + RETRY_MS;
    }
    pthread_mutex_lock(&s->lock);
    if (failed && !waiting)
        s->window_count = 0;
    if (confirmed)
        publish_stats(s);
    if (confirmed && s->disk_bytes == 0 && s->window_count == 0) {
        log_info(s->route->name, "spool drained: %" PRIu64 " message(s) forwarded",
                 s->forwarded_since_log);
        s->forwarded_since_log = 0;
    }
}

/* Lock held: may another forward go? */
static bool may_forward(struct spool *s)
{
    if (s->draining || s->stopping || s->window_count >= s->window_size)
        return false;
    if (s->window_count > 0 && window_at(s, 0)->state == FORWARD_FAILED)
        return false; /* wait for the window to empty, then rewind */
    return loop_now_ms() >= s->retry_at_ms && publisher_available(s->route->publisher, NULL);
}

/* Lock held: reads and submits records while the window and the broker allow. */
static void forward_more(struct spool *s)
{
    while (s->head == NULL && may_forward(s)) {
        struct forward *f = window_at(s, s->window_count);
        pthread_mutex_unlock(&s->lock);
        struct spool_record rec;
        char err[512];
        int rc = spool_journal_read(s->journal, &rec, err, sizeof(err));
        struct message *m = NULL;
        if (rc > 0)
            m = spool_message_decode(rec.payload, rec.len, err, sizeof(err));
        if (rc < 0)
            log_error(s->route->name, "spool: %s; trying again in %d ms", err, RETRY_MS);
        else if (rc > 0 && m == NULL)
            log_error(s->route->name, "spool: record %" PRIu64 ": %s; it is dropped", rec.seq, err);
        pthread_mutex_lock(&s->lock);
        if (rc == 0)
            return;
        if (rc < 0) { /* the damaged record: there is no seq to confirm it by; stop here */
            s->retry_at_ms = loop_now_ms() + RETRY_MS;
            return;
        }
        *f = (struct forward){.spool = s, .seq = rec.seq, .state = FORWARD_DONE};
        s->window_count++;
        if (m == NULL)
            continue; /* confirmed with the rest: it can never be published */
        f->state = FORWARD_WAITING;
        s->refs++;
        pthread_mutex_unlock(&s->lock);
        struct publish_options opt = {.route = s->route};
        const char *why = NULL;
        int refused = publisher_submit(s->route->publisher, m, &opt, forwarded, f, &why);
        pthread_mutex_lock(&s->lock);
        if (refused != 0) {
            f->state = refused == PUBLISH_INVALID ? FORWARD_DONE : FORWARD_FAILED;
            s->refs--;
        }
    }
}

static void *spool_main(void *arg)
{
    struct spool *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (s->head != NULL) {
            write_group(s);
            continue;
        }
        if (s->stopping)
            break;
        settle_forwards(s);
        forward_more(s);
        if (s->head != NULL)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += POLL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->wake, &s->lock, &until);
    }
    settle_forwards(s); /* what was confirmed by now is not sent again */
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- life ---------------------------------------------------------------------------- */

static int lock_dir(const char *dir, char *err, size_t errlen)
{
    char *path = xasprintf("%s/%s", dir, SPOOL_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "spool.dir %s: %s", path,
                 fd >= 0 && errno == EWOULDBLOCK
                     ? "in use by another route or sidecar process (give each route its own dir)"
                     : strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    free(path);
    return fd;
}

struct spool *spool_start(struct route *r, const struct spool_config *c, size_t largest, char *err,
                          size_t errlen)
{
    if (c->create && mkdir(c->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the spool directory %s: %s", c->dir, strerror(errno));
        return NULL;
    }
    int lock_fd = lock_dir(c->dir, err, errlen);
    if (lock_fd < 0)
        return NULL;
    size_t segment = (size_t)(c->max_bytes / 16);
    segment = segment < SEGMENT_MIN ? SEGMENT_MIN : segment > SEGMENT_MAX ? SEGMENT_MAX : segment;
    struct spool_recovery found;
    struct spool_journal *j = spool_journal_open(c->dir, segment, r->name, &found, err, errlen);
    if (j == NULL) {
        close(lock_fd);
        return NULL;
    }
    struct spool *s = xcalloc(1, sizeof(*s));
    s->route = r;
    s->dir = xstrdup(c->dir);
    s->max_bytes = (uint64_t)c->max_bytes;
    s->largest = (uint64_t)largest;
    s->max_message = c->max_message > 0 ? c->max_message : (int)SPOOL_RECORD_MAX;
    s->journal = j;
    s->lock_fd = lock_fd;
    s->refs = 1;
    s->owners = 1;
    size_t window =
        r->services && r->services->publish_window ? r->services->publish_window / 2 : 1;
    s->window_size = window < 1 ? 1 : window > WINDOW_MAX ? WINDOW_MAX : window;
    s->window = xcalloc(s->window_size, sizeof(*s->window));
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    publish_stats(s);
    if (found.records > 0)
        log_info(r->name,
                 "spool %s: %" PRIu64 " message(s) (%" PRIu64 " bytes in %zu segment(s)) left by "
                 "an earlier run; forwarding them once the broker takes publishes",
                 c->dir, found.records, found.bytes, found.segments);
    if (pthread_create(&s->thread, NULL, spool_main, s) != 0) {
        snprintf(err, errlen, "spool %s: cannot start its thread", c->dir);
        spool_journal_close(j);
        close(lock_fd);
        spool_free(s);
        return NULL;
    }
    return s;
}

void spool_adopt(struct spool *s, struct route *r, const struct spool_config *c, size_t largest)
{
    struct route *was = atomic_load(&s->route);
    pthread_mutex_lock(&s->lock);
    s->owners++;
    s->refs++;
    s->max_bytes = (uint64_t)c->max_bytes;
    s->largest = (uint64_t)largest;
    atomic_store(&s->route, r);
    pthread_mutex_unlock(&s->lock);
    /* The gauges follow the journal to the new route (the thread refreshes them after its
     * next group or forward). */
    struct route_metrics *from = &was->metrics, *to = &r->metrics;
    atomic_store(&to->spool_messages, atomic_load(&from->spool_messages));
    atomic_store(&to->spool_bytes, atomic_load(&from->spool_bytes));
    atomic_store(&to->spool_oldest_ms, atomic_load(&from->spool_oldest_ms));
    log_info(r->name, "spool %s: taken over from the running route (%lld message(s) in it)", s->dir,
             (long long)atomic_load(&to->spool_messages));
}

void spool_drain(struct spool *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->owners == 1) /* else a reload's old route: the new one forwards on */
        s->draining = true;
    pthread_mutex_unlock(&s->lock);
}

bool spool_stop(struct spool *s)
{
    if (s == NULL)
        return false;
    pthread_mutex_lock(&s->lock);
    if (s->owners > 1) { /* the other owner holds a reference: s lives on */
        s->owners--;
        s->refs--;
        pthread_mutex_unlock(&s->lock);
        return true;
    }
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    spool_journal_close(s->journal);
    s->journal = NULL;
    close(s->lock_fd);
    pthread_mutex_lock(&s->lock);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last)
        spool_free(s);
    return false;
}

void spool_describe(struct spool *s, struct buf *out)
{
    struct route_metrics *m = &s->route->metrics;
    int64_t oldest = atomic_load(&m->spool_oldest_ms);
    double age = oldest > 0 && wall_ms() > oldest ? (double)(wall_ms() - oldest) / 1000 : 0;
    buf_printf(out, "spool: %lld message(s), %lld bytes, oldest %.1fs, %llu forwarded",
               (long long)atomic_load(&m->spool_messages), (long long)atomic_load(&m->spool_bytes),
               age, (unsigned long long)metric_get(m->spool_forwarded));
}
