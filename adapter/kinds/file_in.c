/*
 * file_in — a directory of dropped files → AMQP, crash-safe.
 *
 * The route runs its own thread and loop. file_watch says which files are
 * complete; this file decides which one is next and has file_claim.c claim
 * it by renaming it into <dir>/.processing/ (same file system, so atomic: a
 * crash leaves it either in dir or claimed, never half-moved). One file at a
 * time is handed to file_job.c, which checks it, publishes it and files it
 * away. Files already in .processing at start (a crash, a stop mid-file, a
 * broker outage) go first, and are published again from the start with the
 * same message ids. A file that changed after its claim (its writer was not
 * done) is put back to settle and published again, whole, once stable.
 * While the broker cannot take publishes nothing is claimed; that is logged
 * once, not per file.
 */
#include "file_in.h"

#include "config.h"
#include "file_ops.h"
#include "file_watch.h"
#include "inbound.h"
#include "log.h"
#include "loop.h"
#include "publisher.h"
#include "route.h"
#include "template.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BROKER_POLL_MS 250

#define O(field) offsetof(struct file_in_opts, field)

static const struct config_key file_in_keys[] = {
    {"dir", KEY_PATH, O(dir), KEY_REQUIRED | KEY_DIR_LISTED, NULL, NULL, 0, 0, NULL,
     "the drop directory the legacy system writes files into"},
    {"pattern", KEY_STRING, O(pattern), 0, "*", NULL, 0, 0, NULL,
     "glob of the file names to take (dotfiles are always ignored)"},
    {"format", KEY_ENUM, O(format), 0, "raw", "raw|json|jsonl|csv|xml", 0, 0, NULL,
     "raw: the file is one message; json; jsonl: a message per line; csv: a message per "
     "record (JSON object keyed by the header row); xml: the document, checked"},
    {"split", KEY_BOOL, O(split), 0, "false", NULL, 0, 0, NULL,
     "json: one message per element of the top-level array (csv and jsonl always split)"},
    {"delimiter", KEY_STRING, O(delimiter), 0, ",", NULL, 0, 0, NULL,
     "csv: the field delimiter, one character (\",\", \";\", \"\\t\")"},
    {"content_type", KEY_STRING, O(content_type), 0, NULL, NULL, 0, 0, NULL,
     "content type of the messages, a media type (type/subtype; name=value…, printable ASCII, "
     "at most 255 bytes: an AMQP shortstr); default by format (raw: application/octet-stream)"},
    {"settle_ms", KEY_INT, O(settle_ms), 0, "1000", NULL, 0, 3600000, NULL,
     "a file written in place counts once its size and mtime were stable this long and no "
     "writer is seen holding it open (a file renamed into dir counts at once); make it longer "
     "than the longest pause of a writer the sidecar cannot see (network file systems)"},
    {"scan_interval", KEY_NUMBER, O(scan_interval), 0, "30", NULL, 0.05, 86400, NULL,
     "seconds between directory scans (besides inotify; catches network file systems)"},
    {"done_dir", KEY_PATH, O(done_dir), 0, NULL, NULL, 0, 0, NULL,
     "where a file goes once every record is confirmed; unset: it is deleted"},
    {"failed_dir", KEY_PATH, O(failed_dir), 0, NULL, NULL, 0, 0, NULL,
     "where a malformed file goes, with <name>.error beside it; default \"<dir>/.failed\""},
    {"max_file", KEY_INT, O(max_file), 0, "16777216", NULL, 1, 1073741824, NULL,
     "largest file in bytes for raw, xml and json without split (one message each); also the "
     "largest dead-letter copy of a malformed file"},
    {"max_record", KEY_INT, O(max_record), 0, "1048576", NULL, 1, 268435456, NULL,
     "largest record in bytes for csv, jsonl and json with split"},
    {"max_message", KEY_INT, O(max_message), 0, "16777216", NULL, 1, 536870912, NULL,
     "largest message body in bytes the route publishes: RabbitMQ closes the channel on one "
     "over its max_message_size (16 MiB from 4.0, 128 MiB before); a larger raw/xml/json file, or "
     "a record larger as published (csv as JSON, after a transform), makes its file malformed"},
    {"max_inflight", KEY_INT, O(max_inflight), 0, "2048", NULL, 1, 65536, NULL,
     "records of a file handed to the publisher and not yet confirmed (at most twice "
     "broker.max_inflight, so the publisher always has the next ones ready)"},
    {0},
};

static const char *const json_placeholders[] = {"filename", "json.", NULL};
static const char *const plain_placeholders[] = {"filename", NULL};

static const struct file_in_opts *opts(const struct route *r)
{
    return r->opts;
}

/* ---- choosing the next file ----------------------------------------------------------- */

static void pump(struct file_in *fi);

static void on_pump_timer(struct loop *loop, void *arg)
{
    struct file_in *fi = arg;
    fi->pump_timer = 0;
    pump(fi);
}

/* Pumps again in ms at the latest (an earlier pump already planned stays). */
static void pump_later(struct file_in *fi, int64_t ms)
{
    int64_t due = loop_now_ms() + ms;
    if (fi->pump_timer != 0 && fi->pump_due_ms <= due)
        return;
    if (fi->pump_timer != 0)
        loop_timer_cancel(fi->loop, fi->pump_timer);
    fi->pump_timer = loop_timer(fi->loop, ms, on_pump_timer, fi);
    fi->pump_due_ms = due;
}

static void pump_post(void *arg)
{
    pump(arg);
}

static void on_ready(void *arg)
{
    pump_later(arg, 0);
}

/* True when the broker takes publishes; logs the change either way once. */
static bool broker_available(struct file_in *fi)
{
    const char *why = NULL;
    if (publisher_available(fi->r->publisher, &why)) {
        if (fi->waiting_logged)
            log_info(fi->r->name, "the broker takes publishes again; resuming files");
        fi->waiting_logged = false;
        return true;
    }
    if (!fi->waiting_logged)
        log_warn(fi->r->name,
                 "waiting for the broker (%s): files stay where they are (%zu seen in %s%s)",
                 why ? why : "unavailable", file_watch_pending(fi->watch), fi->o->dir,
                 fi->claimed ? ", more in .processing" : "");
    fi->waiting_logged = true;
    return false;
}

/* Starts the next file, if there is one and it may start now. */
static void pump_next(struct file_in *fi)
{
    int64_t now = loop_now_ms(), due;
    if (now < fi->not_before_ms) {
        pump_later(fi, fi->not_before_ms - now);
        return;
    }
    struct file_claimed *c = file_claimed_take(fi, now, &due);
    if (c == NULL && !file_watch_has_ready(fi->watch)) {
        if (due)
            pump_later(fi, due - now);
        return;
    }
    if (c != NULL && file_claimed_check(fi, c) != 0) {
        pump_later(fi, 0); /* it changed (again): handed on */
        return;
    }
    if (c != NULL && c->confirmed) {
        /* published already; only filing it away failed before */
        int rc = c->error
                     ? file_filing_failed(fi, c->name, c->prefix, c->error)
                     : file_filing_done(fi, c->name, c->prefix, "filed after an earlier failure");
        if (rc == 0)
            file_claimed_free(c);
        else
            file_claimed_back_off(fi, c);
        pump_later(fi, 0);
        return;
    }
    if (!broker_available(fi)) {
        if (c != NULL)
            file_claimed_push_front(fi, c);
        pump_later(fi, BROKER_POLL_MS);
        return;
    }
    struct stat claimed_st, *claimed = NULL;
    if (c == NULL) {
        struct stat settled;
        char *name = file_watch_next(fi->watch, &settled);
        if (file_claim(fi, name, &settled, &claimed_st) != 0) {
            free(name);
            pump_later(fi, 0);
            return;
        }
        claimed = &claimed_st;
        c = file_claimed_new(name, false, NULL);
        free(name);
    }
    if (file_job_begin(fi, c->name, claimed) != NULL) {
        file_claimed_free(c);
        return;
    }
    char *path = xasprintf("%s/%s", fi->processing, c->name);
    struct stat st;
    if (lstat(path, &st) == 0)
        file_claimed_back_off(fi, c); /* keep it: an operator may fix it */
    else
        file_claimed_free(c); /* gone: someone took it out of .processing */
    free(path);
    pump_later(fi, 0);
}

static void pump(struct file_in *fi)
{
    if (fi->job != NULL)
        return;
    atomic_store(&fi->busy, true); /* before looking at draining: drain() reads them reversed */
    if (!atomic_load(&fi->draining) && !fi->standby)
        pump_next(fi);
    if (fi->job == NULL)
        atomic_store(&fi->busy, false);
}

void file_in_job_ended(struct file_in *fi, const char *name, const char *prefix,
                       const struct stat *st, const char *error, enum file_job_end end)
{
    if (end == FILE_JOB_RETRY) {
        /* the broker did not take it: everything waits, this file goes first again */
        file_claimed_push_front(fi, file_claimed_new(name, false, prefix));
        fi->not_before_ms = loop_now_ms() + file_claim_backoff_ms(fi->failures++);
    } else if (end == FILE_JOB_UNFILED) {
        struct file_claimed *c = file_claimed_new(name, true, prefix);
        c->st = *st;
        c->error = error ? xstrdup(error) : NULL;
        file_claimed_back_off(fi, c);
    } else if (end == FILE_JOB_CHANGED) {
        file_claim_put_back(fi, name);
    } else {
        fi->failures = 0;
    }
    atomic_store(&fi->busy, false);
    pump_later(fi, 0);
}

static void boot(void *arg)
{
    struct file_in *fi = arg;
    if (fi->standby)
        return; /* lease = true: the lease starts it */
    file_claim_recover(fi);
    file_watch_start(fi->watch);
    fi->watching = true;
    pump(fi);
}

/* ---- the lease (lease = true) ----------------------------------------------------------- */

/* The claimed files this sidecar remembers: while another holds the lease, it
 * may finish them; they stay in .processing, and the next holder finds them
 * there. */
static void forget_claimed(struct file_in *fi)
{
    while (fi->claimed != NULL) {
        struct file_claimed *c = fi->claimed;
        fi->claimed = c->next;
        file_claimed_free(c);
    }
}

/* Loop thread: this sidecar holds the lease: finish what the last holder left
 * in .processing (the same message ids again), then take new files. */
static void gained_on_thread(void *arg)
{
    struct file_in *fi = arg;
    fi->standby = false;
    forget_claimed(fi);
    file_claim_recover(fi);
    if (fi->job != NULL) /* still ours, from before a lost lease: not twice */
        file_claimed_drop(fi, file_job_name(fi->job));
    if (!fi->watching)
        file_watch_start(fi->watch);
    fi->watching = true;
    pump_later(fi, 0);
}

static void lost_on_thread(void *arg)
{
    struct file_in *fi = arg;
    fi->standby = true; /* a file under way ends; its publishes fail with the connection */
    forget_claimed(fi);
}

static void file_in_lease_gained(struct route *r, const char *cursor)
{
    (void)cursor; /* file routes keep none */
    struct file_in *fi = r->state;
    loop_post(fi->loop, gained_on_thread, fi);
}

static void file_in_lease_lost(struct route *r)
{
    struct file_in *fi = r->state;
    loop_post(fi->loop, lost_on_thread, fi);
}

static void *file_in_thread(void *arg)
{
    struct file_in *fi = arg;
    loop_run(fi->loop);
    return NULL;
}

/* ---- the kind -------------------------------------------------------------------------- */

static bool same_path(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (lb > 1 && b[lb - 1] == '/')
        lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

static void file_in_validate(struct route *r, const struct sidecar_config *cfg,
                             struct config_report *rep)
{
    struct file_in_opts *o = r->opts;
    if (o->dir == NULL || o->format == NULL)
        return; /* already reported */
    file_format_parse(o->format, &o->fmt);
    bool json =
        o->fmt == FILE_FORMAT_JSON || o->fmt == FILE_FORMAT_JSONL || o->fmt == FILE_FORMAT_CSV;
    const char *d = o->delimiter ? o->delimiter : ",";
    if (strlen(d) != 1 || d[0] == '"' || d[0] == '\r' || d[0] == '\n')
        config_report_add(rep, r->line,
                          "route \"%s\": delimiter \"%s\" must be one character other than a "
                          "quote or a line end (e.g. \",\", \";\", \"\\t\")",
                          r->name, d);
    o->delim = d[0];
    char why[200];
    if (o->content_type && !inbound_media_type_valid(o->content_type, why, sizeof(why)))
        config_report_add(rep, r->line,
                          "route \"%s\": content_type \"%.60s%s\" %s; it becomes the messages' "
                          "AMQP content_type — use type/subtype with optional \"; name=value\" "
                          "parameters, e.g. \"text/csv; charset=utf-8\"",
                          r->name, o->content_type, strlen(o->content_type) > 60 ? "…" : "", why);
    if (o->max_message > cfg->broker.max_message)
        config_report_add(rep, r->line,
                          "route \"%s\": max_message %d is above broker.max_message %d; lower it, "
                          "or raise broker.max_message to RabbitMQ's max_message_size",
                          r->name, o->max_message, cfg->broker.max_message);
    if (o->split && (o->fmt == FILE_FORMAT_RAW || o->fmt == FILE_FORMAT_XML))
        config_report_add(rep, r->line,
                          "route \"%s\": split applies to format json (csv and jsonl always give "
                          "a message per record); remove split or change format",
                          r->name);
    if (r->transform_file && !json)
        config_report_add(rep, r->line,
                          "route \"%s\": a transform needs JSON records; use format json, jsonl "
                          "or csv, or remove transform",
                          r->name);
    char err[512];
    if (r->routing_key &&
        template_check(r->routing_key, json ? json_placeholders : plain_placeholders, err,
                       sizeof(err)) != 0)
        config_report_add(rep, r->line, "route \"%s\": routing_key %s", r->name, err);
    if (o->pattern[0] == '\0' || strchr(o->pattern, '/'))
        config_report_add(rep, r->line,
                          "route \"%s\": pattern \"%s\" must be a non-empty file-name glob "
                          "without '/'",
                          r->name, o->pattern);
    if (o->failed_dir == NULL)
        o->failed_dir = xasprintf("%s/.failed", o->dir);
    const char *dirs[] = {o->done_dir, o->failed_dir};
    const char *names[] = {"done_dir", "failed_dir"};
    for (int i = 0; i < 2; i++)
        if (dirs[i] && same_path(dirs[i], o->dir))
            config_report_add(rep, r->line,
                              "route \"%s\": %s must not be dir itself (its files would be "
                              "published again); use another directory",
                              r->name, names[i]);
    for (size_t i = 0; i < cfg->n_routes && cfg->routes[i] != r; i++) {
        const struct route *other = cfg->routes[i];
        if (other->kind == r->kind && ((const struct file_in_opts *)other->opts)->dir &&
            same_path(((const struct file_in_opts *)other->opts)->dir, o->dir))
            config_report_add(rep, r->line,
                              "route \"%s\": dir \"%s\" is already watched by route \"%s\" (line "
                              "%d); one directory, one route",
                              r->name, o->dir, other->name, other->line);
    }
}

static void file_in_describe(const struct route *r, struct buf *out)
{
    const struct file_in_opts *o = opts(r);
    buf_printf(out, "files %s/%s (%s%s) → exchange \"%s\" key \"%s\"; done → %s, failed → %s",
               o->dir, o->pattern, o->format, o->split ? ", split" : "", r->exchange,
               r->routing_key, o->done_dir ? o->done_dir : "deleted", o->failed_dir);
    if (r->lease)
        buf_printf(out, "; under lease %s", r->lease_queue);
}

static int file_in_start(struct route *r, char *err, size_t errlen)
{
    const struct file_in_opts *o = opts(r);
    struct file_in *fi = xcalloc(1, sizeof(*fi));
    r->state = fi;
    fi->r = r;
    fi->o = o;
    fi->processing = xasprintf("%s/" FILE_PROCESSING_DIR, o->dir);
    fi->standby = r->lease; /* until lease_gained */
    if (r->lease)
        log_info(r->name, "files in %s are taken once this sidecar holds the lease %s", o->dir,
                 r->lease_queue);
    fi->key_has_json = strstr(r->routing_key, "{json.") != NULL;
    size_t cap = (size_t)o->max_inflight;
    size_t window = r->services->publish_window * 2;
    fi->inflight_cap = cap < window ? cap : window;
    fi->loop = loop_new();
    if (fi->loop == NULL) {
        snprintf(err, errlen, "cannot create its event loop");
        return -1;
    }
    struct file_watch_options wo = {.route = r->name,
                                    .dir = o->dir,
                                    .pattern = o->pattern,
                                    .settle_ms = o->settle_ms,
                                    .scan_interval = o->scan_interval};
    fi->watch = file_watch_new(fi->loop, &wo, on_ready, fi);
    loop_post(fi->loop, boot, fi);
    if (pthread_create(&fi->thread, NULL, file_in_thread, fi) != 0) {
        snprintf(err, errlen, "cannot start its thread");
        return -1;
    }
    fi->thread_started = true;
    return 0;
}

static void file_in_drain(struct route *r)
{
    struct file_in *fi = r->state;
    if (fi == NULL)
        return;
    atomic_store(&fi->draining, true);
    loop_post(fi->loop, pump_post, fi);
}

static bool file_in_busy(struct route *r)
{
    struct file_in *fi = r->state;
    return fi != NULL && atomic_load(&fi->busy);
}

static void file_in_stop(struct route *r)
{
    struct file_in *fi = r->state;
    if (fi == NULL)
        return;
    if (fi->thread_started) {
        loop_stop(fi->loop);
        pthread_join(fi->thread, NULL);
    }
    if (fi->job != NULL) {
        log_info(r->name, "stopped in the middle of \"%s\"; it stays in %s for the next start",
                 file_job_name(fi->job), fi->processing);
        file_job_discard(fi->job);
    }
    forget_claimed(fi);
    file_watch_free(fi->watch);
    loop_free(fi->loop);
    free(fi->processing);
    free(fi);
    r->state = NULL;
}

static bool file_in_ready(struct route *r, struct buf *detail)
{
    const struct file_in_opts *o = opts(r);
    int err = file_dir_usable(o->dir, R_OK | W_OK | X_OK);
    if (err != 0 && detail)
        buf_printf(detail, "the drop directory \"%s\" is not accessible: %s", o->dir,
                   strerror(err));
    return err == 0;
}

const struct route_kind kind_file_in = {
    .name = "file",
    .direction = ROUTE_INBOUND,
    .summary = "files dropped into a directory are published (csv/jsonl/json split: a message "
               "per record), then moved to done_dir",
    .leasable = true,
    .keys = file_in_keys,
    .opts_size = sizeof(struct file_in_opts),
    .validate = file_in_validate,
    .describe = file_in_describe,
    .start = file_in_start,
    .drain = file_in_drain,
    .busy = file_in_busy,
    .stop = file_in_stop,
    .ready = file_in_ready,
    .lease_gained = file_in_lease_gained,
    .lease_lost = file_in_lease_lost,
};
