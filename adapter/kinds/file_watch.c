/*
 * file_watch — see file_watch.h.
 *
 * Every name we know sits in a small chained hash table as SETTLING (seen,
 * watched for changes) or READY (queued, in the order it became ready). A
 * settle tick runs while anything settles: each entry untouched for
 * settle_ms and not held open is stat'ed again and becomes READY if its
 * size, mtime and inode are what they were. A write to a READY entry sends
 * it back to SETTLING. Handing a name out removes it from the table; the
 * caller claims it by rename, and if that fails the next scan finds it again.
 *
 * Held open: IN_MODIFY without the IN_CLOSE_WRITE that ends it, or an
 * IN_CREATE followed by opens not yet closed (a writer that created the file
 * and has not written yet: `query > out.csv` while the query runs). A hard
 * link (IN_CREATE, no open) is not held. Opens and closes by readers are
 * counted but do not count as a change, so a reader never delays settling.
 * When events may have been lost (queue overflow, the watch gone) every
 * entry falls back to settle_ms alone rather than waiting forever.
 */
#include "file_watch.h"

#include "file_ops.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define EVENTS                                                                                     \
    (IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE |             \
     IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define RESCAN_SOON_MS 1000
#define OPEN_WARN_MS   60000 /* say once that a held-open file waits (or 10 x settle_ms) */

enum entry_state { SETTLING, READY };

/* What an event (or the route) says about a name. */
enum seen {
    SEEN,       /* appeared or changed somehow (a scan, IN_ATTRIB, a failed claim) */
    CREATED,    /* IN_CREATE: made in place (or hard-linked) */
    WRITTEN,    /* IN_MODIFY: someone wrote to it and holds it open */
    OPENED,     /* IN_OPEN: counted only */
    CLOSED,     /* IN_CLOSE_WRITE: a writer is done with it */
    CLOSED_RO,  /* IN_CLOSE_NOWRITE: counted only */
    RENAMED_IN, /* IN_MOVED_TO: complete at once */
    PUT_BACK,   /* the route un-claimed it: settle, although it arrives by rename */
};

struct entry {
    char *name;
    enum entry_state state;
    off_t size;
    struct timespec mtime;
    dev_t dev;
    ino_t ino;
    int64_t changed_ms; /* last time we saw it change */
    unsigned opens;     /* opens seen and not closed yet */
    bool written;       /* written since the last close-after-write */
    bool created;       /* created in place: opens of it may be its writer's */
    bool put_back;      /* settles even when it arrives by rename */
    bool open_warned;
    struct entry *next;                    /* hash chain */
    struct entry *prev_ready, *next_ready; /* ready queue */
};

struct file_watch {
    struct loop *loop;
    struct file_watch_options opt;
    file_watch_ready_fn ready;
    void *arg;
    int inotify_fd, wd;
    struct entry **buckets;
    size_t n_buckets, n_entries, n_settling;
    struct entry *ready_head, *ready_tail;
    uint64_t settle_timer, scan_timer;
    bool dir_error_logged;
};

/* ---- the table --------------------------------------------------------------------- */

static size_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

static struct entry **slot_of(struct file_watch *w, const char *name)
{
    struct entry **pp = &w->buckets[name_hash(name) & (w->n_buckets - 1)];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void table_grow(struct file_watch *w)
{
    size_t n = w->n_buckets * 2;
    struct entry **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < w->n_buckets; i++) {
        for (struct entry *e = w->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t at = name_hash(e->name) & (n - 1);
            e->next = b[at];
            b[at] = e;
        }
    }
    free(w->buckets);
    w->buckets = b;
    w->n_buckets = n;
}

static void ready_unlink(struct file_watch *w, struct entry *e)
{
    if (e->prev_ready)
        e->prev_ready->next_ready = e->next_ready;
    else
        w->ready_head = e->next_ready;
    if (e->next_ready)
        e->next_ready->prev_ready = e->prev_ready;
    else
        w->ready_tail = e->prev_ready;
    e->prev_ready = e->next_ready = NULL;
}

static void entry_remove(struct file_watch *w, struct entry **slot)
{
    struct entry *e = *slot;
    *slot = e->next;
    if (e->state == SETTLING)
        w->n_settling--;
    else
        ready_unlink(w, e);
    w->n_entries--;
    free(e->name);
    free(e);
}

/* Someone may be writing it right now, from what inotify showed. */
static bool held_open(const struct entry *e)
{
    return e->written || (e->created && e->opens > 0);
}

/* Events may have been lost: trust settle_ms alone rather than wait for a close forever. */
static void forget_opens(struct file_watch *w)
{
    for (size_t i = 0; i < w->n_buckets; i++)
        for (struct entry *e = w->buckets[i]; e; e = e->next) {
            e->opens = 0;
            e->written = e->created = false;
        }
}

/* ---- settling ---------------------------------------------------------------------- */

static void settle_tick(struct loop *loop, void *arg);

static int tick_ms(const struct file_watch *w)
{
    int ms = w->opt.settle_ms / 4;
    return ms < 20 ? 20 : ms > 250 ? 250 : ms;
}

static void settle_arm(struct file_watch *w)
{
    if (w->settle_timer == 0 && w->n_settling > 0)
        w->settle_timer = loop_timer(w->loop, tick_ms(w), settle_tick, w);
}

static bool same_stat(const struct entry *e, const struct stat *st)
{
    return e->size == st->st_size && e->mtime.tv_sec == st->st_mtim.tv_sec &&
           e->mtime.tv_nsec == st->st_mtim.tv_nsec && e->dev == st->st_dev && e->ino == st->st_ino;
}

static void entry_record(struct entry *e, const struct stat *st)
{
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->changed_ms = loop_now_ms();
    e->open_warned = false;
}

static int by_mtime_then_name(const void *a, const void *b)
{
    const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Queues the entries in batch (sorted: oldest first) and tells the owner. */
static void ready_queue(struct file_watch *w, struct entry **batch, size_t n)
{
    if (n == 0)
        return;
    qsort(batch, n, sizeof(*batch), by_mtime_then_name);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = batch[i];
        if (e->state == SETTLING)
            w->n_settling--;
        e->state = READY;
        e->next_ready = NULL;
        e->prev_ready = w->ready_tail;
        if (w->ready_tail)
            w->ready_tail->next_ready = e;
        else
            w->ready_head = e;
        w->ready_tail = e;
    }
    w->ready(w->arg);
}

static int stat_in_dir(const struct file_watch *w, const char *name, struct stat *st)
{
    char *path = xasprintf("%s/%s", w->opt.dir, name);
    int rc = lstat(path, st);
    free(path);
    return rc;
}

/* A held-open file that stopped changing long ago: say once why it is not taken. */
static void warn_held_open(struct file_watch *w, struct entry *e, int64_t now)
{
    int64_t after = (int64_t)w->opt.settle_ms * 10;
    if (after < OPEN_WARN_MS)
        after = OPEN_WARN_MS;
    if (e->open_warned || now - e->changed_ms < after)
        return;
    e->open_warned = true;
    log_warn(w->opt.route,
             "file \"%s\" has not changed for %" PRId64 "s but is still open for writing (no "
             "close seen); it is taken once it is closed — a writer that is done should close it, "
             "or write elsewhere and rename it in",
             e->name, (now - e->changed_ms) / 1000);
}

static void settle_tick(struct loop *loop, void *arg)
{
    struct file_watch *w = arg;
    w->settle_timer = 0;
    int64_t now = loop_now_ms();
    struct entry **batch = xcalloc(w->n_settling + 1, sizeof(*batch));
    size_t n = 0;
    for (size_t i = 0; i < w->n_buckets; i++) {
        for (struct entry **pp = &w->buckets[i]; *pp;) {
            struct entry *e = *pp;
            if (e->state == SETTLING && held_open(e))
                warn_held_open(w, e, now);
            if (e->state != SETTLING || held_open(e) || now - e->changed_ms < w->opt.settle_ms) {
                pp = &e->next;
                continue;
            }
            struct stat st;
            if (stat_in_dir(w, e->name, &st) != 0 || !S_ISREG(st.st_mode)) {
                entry_remove(w, pp); /* gone, or no longer a plain file */
                continue;
            }
            if (same_stat(e, &st))
                batch[n++] = e;
            else
                entry_record(e, &st);
            pp = &e->next;
        }
    }
    ready_queue(w, batch, n);
    free(batch);
    settle_arm(w);
}

/* Opens and closes that change nothing: counted on a known entry, nothing more. */
static bool entry_count(struct entry *e, enum seen how)
{
    if (how == OPENED) {
        if (e)
            e->opens++;
        return true;
    }
    if ((how == CLOSED_RO || how == CLOSED) && e && e->opens > 0)
        e->opens--;
    return how == CLOSED_RO; /* a writer's close is a change: settle from now */
}

/* A name we may care about appeared or changed (how: see enum seen). */
static void entry_seen(struct file_watch *w, const char *name, enum seen how)
{
    if (name[0] == '.' || fnmatch(w->opt.pattern, name, 0) != 0)
        return;
    struct entry **slot = slot_of(w, name);
    struct entry *e = *slot;
    if (entry_count(e, how))
        return;
    if (e != NULL && e->state == READY) {
        if (how != WRITTEN && how != PUT_BACK)
            return;         /* claim() compares the stat it settled with anyway */
        ready_unlink(w, e); /* written to again: not complete after all */
        e->state = SETTLING;
        w->n_settling++;
    }
    struct stat st;
    if (stat_in_dir(w, name, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (e != NULL)
            entry_remove(w, slot);
        return;
    }
    if (e == NULL) {
        if (w->n_entries >= w->n_buckets) {
            table_grow(w);
            slot = slot_of(w, name);
        }
        e = xcalloc(1, sizeof(*e));
        e->name = xstrdup(name);
        e->state = SETTLING;
        *slot = e;
        w->n_entries++;
        w->n_settling++;
    }
    if (how == RENAMED_IN || how == PUT_BACK) {
        e->opens = 0; /* another file under this name now */
        e->written = e->created = false;
        if (how == PUT_BACK)
            e->put_back = true;
    }
    if (how == WRITTEN)
        e->written = true;
    if (how == CREATED)
        e->created = true;
    if (how == CLOSED)
        e->written = e->created = false; /* a writer is done: settle from now */
    entry_record(e, &st);
    if (e->put_back)
        settle_arm(w); /* a tick at least, even with settle_ms = 0: no claim/put-back spin */
    else if (how == RENAMED_IN || (w->opt.settle_ms == 0 && !held_open(e)))
        ready_queue(w, &e, 1);
    else
        settle_arm(w);
}

static void entry_gone(struct file_watch *w, const char *name)
{
    struct entry **slot = slot_of(w, name);
    if (*slot != NULL && (*slot)->state == SETTLING)
        entry_remove(w, slot);
    /* READY ones stay queued: claiming them fails harmlessly */
}

/* ---- scanning and inotify ------------------------------------------------------------ */

static void watch_add(struct file_watch *w)
{
    if (w->inotify_fd < 0 || w->wd >= 0)
        return;
    w->wd = inotify_add_watch(w->inotify_fd, w->opt.dir, EVENTS);
}

static void dir_state(struct file_watch *w, bool ok, int err)
{
    if (!ok && !w->dir_error_logged) {
        log_error(w->opt.route,
                  "cannot read the drop directory \"%s\": %s — create it or fix its permissions; "
                  "retrying every %.0fs",
                  w->opt.dir, strerror(err), w->opt.scan_interval);
        w->dir_error_logged = true;
    } else if (ok && w->dir_error_logged) {
        log_info(w->opt.route, "the drop directory \"%s\" is readable again", w->opt.dir);
        w->dir_error_logged = false;
    }
}

static void scan(struct file_watch *w)
{
    watch_add(w);
    DIR *d = opendir(w->opt.dir);
    if (d == NULL) {
        dir_state(w, false, errno);
        return;
    }
    dir_state(w, true, 0);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
            continue;
        struct entry *e = *slot_of(w, de->d_name);
        if (e == NULL)
            entry_seen(w, de->d_name, SEEN);
    }
    closedir(d);
}

static void scan_tick(struct loop *loop, void *arg)
{
    struct file_watch *w = arg;
    scan(w);
    int64_t ms = (int64_t)(w->opt.scan_interval * 1000);
    if (w->wd < 0 && ms > RESCAN_SOON_MS)
        ms = RESCAN_SOON_MS; /* the directory is missing: look for it more often */
    w->scan_timer = loop_timer(loop, ms, scan_tick, w);
}

static void scan_soon(struct file_watch *w)
{
    if (w->scan_timer)
        loop_timer_cancel(w->loop, w->scan_timer);
    w->scan_timer = loop_timer(w->loop, 0, scan_tick, w);
}

static enum seen seen_of(uint32_t mask)
{
    if (mask & IN_MOVED_TO)
        return RENAMED_IN;
    if (mask & IN_MODIFY)
        return WRITTEN;
    if (mask & IN_CREATE)
        return CREATED;
    if (mask & IN_OPEN)
        return OPENED;
    if (mask & IN_CLOSE_WRITE)
        return CLOSED;
    if (mask & IN_CLOSE_NOWRITE)
        return CLOSED_RO;
    return SEEN;
}

static void on_inotify(struct loop *loop, int fd, short revents, void *arg)
{
    struct file_watch *w = arg;
    char events[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, events, sizeof(events));
        if (n <= 0)
            return;
        for (char *p = events; p < events + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                log_warn(w->opt.route,
                         "inotify queue overflowed; rescanning %s (files being written now count "
                         "once unchanged for settle_ms)",
                         w->opt.dir);
                forget_opens(w);
                scan_soon(w);
            } else if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
                if (ev->wd == w->wd) {
                    forget_opens(w);
                    inotify_rm_watch(fd, w->wd);
                    w->wd = -1;
                    if (w->scan_timer)
                        loop_timer_cancel(loop, w->scan_timer);
                    w->scan_timer = loop_timer(loop, RESCAN_SOON_MS, scan_tick, w);
                }
            } else if (ev->len > 0 && ev->wd == w->wd) {
                if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                    entry_gone(w, ev->name);
                else
                    entry_seen(w, ev->name, seen_of(ev->mask));
            }
        }
    }
}

/* ---- the watch -------------------------------------------------------------------------- */

struct file_watch *file_watch_new(struct loop *loop, const struct file_watch_options *opt,
                                  file_watch_ready_fn ready, void *arg)
{
    struct file_watch *w = xcalloc(1, sizeof(*w));
    w->loop = loop;
    w->opt = *opt;
    w->ready = ready;
    w->arg = arg;
    w->wd = -1;
    w->n_buckets = 64;
    w->buckets = xcalloc(w->n_buckets, sizeof(*w->buckets));
    w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->inotify_fd < 0)
        log_warn(opt->route, "inotify is not available (%s); relying on scans every %.0fs",
                 strerror(errno), opt->scan_interval);
    return w;
}

void file_watch_start(struct file_watch *w)
{
    if (w->inotify_fd >= 0)
        loop_watch(w->loop, w->inotify_fd, POLLIN, on_inotify, w);
    scan_tick(w->loop, w);
}

void file_watch_free(struct file_watch *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_buckets; i++)
        while (w->buckets[i])
            entry_remove(w, &w->buckets[i]);
    free(w->buckets);
    if (w->inotify_fd >= 0)
        close(w->inotify_fd);
    free(w);
}

char *file_watch_next(struct file_watch *w, struct stat *settled)
{
    struct entry *e = w->ready_head;
    if (e == NULL)
        return NULL;
    *settled =
        (struct stat){.st_size = e->size, .st_mtim = e->mtime, .st_dev = e->dev, .st_ino = e->ino};
    char *name = xstrdup(e->name);
    entry_remove(w, slot_of(w, e->name));
    return name;
}

size_t file_watch_pending(const struct file_watch *w)
{
    return w->n_entries;
}

bool file_watch_has_ready(const struct file_watch *w)
{
    return w->ready_head != NULL;
}

void file_watch_again(struct file_watch *w, const char *name)
{
    entry_seen(w, name, SEEN);
}

void file_watch_put_back(struct file_watch *w, const char *name)
{
    entry_seen(w, name, PUT_BACK);
}
