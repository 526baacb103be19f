/*
 * file_out — AMQP → files in a directory the legacy system reads.
 *
 * Each delivery becomes one file: its name from the `filename` template,
 * checked so it cannot leave `dir` (no '/', no leading dot, no control
 * characters, at most 255 bytes); its content the body (after the
 * transform). It is written to a hidden temp name in the same directory,
 * fsynced, renamed into place (without replacing, unless overwrite = true)
 * and the directory fsynced — only then is the delivery acked, so a reader
 * never sees a partial file and a crash never loses an acked one. A
 * redelivered message whose file is already there with the same content is
 * acked (idempotent); different content under a taken name is a dead letter.
 * I/O failures (disk full, permissions, a missing directory) retry through
 * the ladder. All of this runs synchronously on the route's thread: a local
 * write and two fsyncs are short next to the heartbeat interval.
 */
#include "config.h"
#include "consumer.h"
#include "file_ops.h"
#include "file_out.h"
#include "jq_transform.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "route.h"
#include "template.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_BYTES 255

#define O(field) offsetof(struct file_out_opts, field)

static const struct config_key file_out_keys[] = {
    {"dir", KEY_PATH, O(dir), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "the directory the legacy system reads files from"},
    {"filename", KEY_STRING, O(filename), 0, "{message_id}", NULL, 0, 0, NULL,
     "file name template: {message_id}, {correlation_id}, {route}, {timestamp} (UTC, "
     "20250131T235959Z), {header.NAME}; the result may not contain '/' or start with '.'"},
    {"overwrite", KEY_BOOL, O(overwrite), 0, "false", NULL, 0, 0, NULL,
     "replace an existing file of the same name (false: a different file under a taken name "
     "is dead-lettered; the same content is accepted as a duplicate)"},
    {"mode", KEY_STRING, O(mode), 0, "0640", NULL, 0, 0, NULL,
     "permissions of the files written, in octal"},
    {"portable_names", KEY_BOOL, O(portable_names), 0, "true", NULL, 0, 0, NULL,
     "in the values the placeholders put into a name, write a space, '%' and the characters "
     "Windows and SMB readers refuse (\" * : < > ? |) as %XX, so distinct values stay "
     "distinct names (false: as they come; the template's own text is never changed)"},
    {0},
};

static const char *const placeholders[] = {"message_id", "correlation_id", "route",
                                           "timestamp",  "header.",        NULL};

static const struct file_out_opts *opts(const struct route *r)
{
    return r->opts;
}

/* ---- the file name ----------------------------------------------------------------------- */

struct name_ctx {
    const struct route *r;
    const struct message *m;
    char stamp[32];
    struct buf value; /* the last value, made portable */
};

/* V with a space, '%' and " * : < > ? | written as %XX (in c->value). */
static const char *portable_value(struct name_ctx *c, const char *v)
{
    if (strpbrk(v, " %\"*:<>?|") == NULL)
        return v;
    c->value.len = 0;
    for (const char *p = v; *p; p++) {
        if (strchr(" %\"*:<>?|", *p) != NULL)
            buf_printf(&c->value, "%%%02X", (unsigned char)*p);
        else
            buf_append(&c->value, p, 1);
    }
    return c->value.data; /* a buf is always terminated */
}

static const char *name_lookup(void *arg, const char *name, char *why, size_t whylen)
{
    struct name_ctx *c = arg;
    const char *v = NULL;
    if (strcmp(name, "message_id") == 0)
        v = c->m->message_id;
    else if (strcmp(name, "correlation_id") == 0)
        v = c->m->correlation_id;
    else if (strcmp(name, "route") == 0)
        v = c->r->name;
    else if (strncmp(name, "header.", 7) == 0)
        v = message_header(c->m, name + 7);
    else if (strcmp(name, "timestamp") == 0) {
        time_t t = c->m->timestamp ? (time_t)c->m->timestamp : time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(c->stamp, sizeof(c->stamp), "%Y%m%dT%H%M%SZ", &tm);
        v = c->stamp;
    }
    if (v == NULL)
        snprintf(why, whylen, "the message has no %s", name);
    else if (opts(c->r)->portable_names)
        v = portable_value(c, v);
    return v;
}

/* NULL when name is a safe single file name in dir; else why not. */
static const char *name_unsafe(const char *name)
{
    size_t len = strlen(name);
    if (len == 0)
        return "it is empty";
    if (len > NAME_MAX_BYTES)
        return "it is longer than 255 bytes";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p == '/' || *p == '\\')
            return "it contains a path separator";
        if (*p < 0x20 || *p == 0x7f)
            return "it contains a control character";
    }
    if (name[0] == '.')
        return "it starts with '.' (hidden, \".\" or \"..\")";
    return NULL;
}

/* The file name for m (caller frees), or NULL with why. */
static char *file_name_for(const struct route *r, const struct message *m, char *why, size_t whylen)
{
    struct name_ctx c = {.r = r, .m = m};
    char err[512];
    char *name = template_expand(opts(r)->filename, name_lookup, &c, err, sizeof(err));
    buf_free(&c.value);
    if (name == NULL) {
        snprintf(why, whylen, "cannot build the file name: %s", err);
        return NULL;
    }
    const char *bad = name_unsafe(name);
    if (bad != NULL) {
        struct buf shown = {0};
        for (const unsigned char *p = (const unsigned char *)name; *p && shown.len < 300; p++) {
            if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
                buf_printf(&shown, "\\x%02x", *p);
            else
                buf_append(&shown, p, 1);
        }
        snprintf(why, whylen, "unsafe file name \"%s\": %s", shown.data ? shown.data : "", bad);
        buf_free(&shown);
        free(name);
        return NULL;
    }
    return name;
}

/* ---- writing ---------------------------------------------------------------------------- */

enum written {
    WRITTEN,       /* in place (or already there with the same content) */
    WRITE_FAILED,  /* may pass later: why says what failed */
    WRITE_REFUSED, /* never will as it is: why, and *dead the metrics class */
};

/* Writes body as dir/name; WRITTEN, or why not. */
static enum written write_file(const struct route *r, const char *name, const char *body,
                               size_t len, char *why, size_t whylen, enum dead_reason *dead)
{
    const struct file_out_opts *o = opts(r);
    char *tmp = NULL;
    const char *step = "creating a temp file in";
    int rc = file_temp_create(o->dir, "out", o->mode_bits, &tmp);
    if (rc >= 0) {
        int fd = rc;
        rc = file_write_all(fd, body, len);
        if (rc == 0 && fsync(fd) != 0)
            rc = -errno;
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
        step = "writing";
    }
    char *path = xasprintf("%s/%s", o->dir, name);
    if (rc == 0) {
        step = "renaming into";
        rc =
            o->overwrite ? (rename(tmp, path) == 0 ? 0 : -errno) : file_rename_noreplace(tmp, path);
    }
    if (rc == -EEXIST) {
        int same = file_same_content(path, body, len);
        unlink(tmp);
        free(tmp);
        free(path);
        if (same == 1)
            return WRITTEN; /* a redelivery of what is already there */
        if (same < 0) {
            snprintf(why, whylen, "\"%s\" exists and cannot be read to compare: %s", name,
                     strerror(-same));
            return WRITE_FAILED;
        }
        snprintf(why, whylen,
                 "\"%s\" already exists in %s with different content (overwrite = false)", name,
                 o->dir);
        *dead = DEAD_REJECTED;
        return WRITE_REFUSED;
    }
    if (rc == 0) {
        step = "syncing";
        rc = file_fsync_dir(o->dir);
    } else if (tmp != NULL) {
        unlink(tmp);
    }
    free(tmp);
    free(path);
    if (rc == 0)
        return WRITTEN;
    snprintf(why, whylen, "%s %s for \"%s\" failed: %s", step, o->dir, name, strerror(-rc));
    if (rc == -ENAMETOOLONG) {
        *dead = DEAD_INVALID;
        return WRITE_REFUSED;
    }
    return WRITE_FAILED; /* disk full, permissions, a missing directory: may pass later */
}

static void file_out_deliver(struct route *r, struct delivery *d)
{
    const struct message *m = d->msg;
    char why[1024];
    char *name = file_name_for(r, m, why, sizeof(why));
    if (name == NULL) {
        settle_dead(d, 0, DEAD_INVALID, NULL, "%s", why);
        return;
    }
    const char *body = m->body ? m->body : "";
    size_t len = m->body_len;
    char *transformed = NULL;
    if (r->transform != NULL) {
        char err[768];
        transformed = transform_apply(r->transform, body, len, &len, err, sizeof(err));
        if (transformed == NULL) {
            snprintf(why, sizeof(why), "transform failed: %s", err);
            free(name);
            settle_dead(d, 0, DEAD_TRANSFORM, NULL, "%s", why);
            return;
        }
        body = transformed;
    }
    int64_t started = loop_now_ms();
    enum dead_reason dead = DEAD_REJECTED;
    enum written written = write_file(r, name, body, len, why, sizeof(why), &dead);
    histogram_observe(&r->metrics.legacy_seconds, (double)(loop_now_ms() - started) / 1000.0);
    if (written == WRITTEN)
        log_event(LOG_DEBUG, &(struct log_ctx){.route = r->name, .message_id = m->message_id},
                  "wrote %s/%s (%zu bytes)", opts(r)->dir, name, len);
    free(transformed);
    free(name);
    if (written == WRITTEN)
        settle_ack(d, NULL);
    else if (written == WRITE_FAILED)
        settle_retry(d, 1, 0, "%s", why);
    else
        settle_dead(d, 1, dead, NULL, "%s", why);
}

/* ---- the kind --------------------------------------------------------------------------- */

static void file_out_validate(struct route *r, const struct sidecar_config *cfg,
                              struct config_report *rep)
{
    struct file_out_opts *o = r->opts;
    char err[512];
    if (o->filename && template_check(o->filename, placeholders, err, sizeof(err)) != 0)
        config_report_add(rep, r->line, "route \"%s\": filename %s", r->name, err);
    else if (o->filename && (strchr(o->filename, '/') || o->filename[0] == '.'))
        config_report_add(rep, r->line,
                          "route \"%s\": filename \"%s\" must name a file directly in dir: no "
                          "'/', no leading '.'",
                          r->name, o->filename);
    char *end = NULL;
    long mode = o->mode ? strtol(o->mode, &end, 8) : -1;
    if (o->mode == NULL || end == o->mode || *end != '\0' || mode < 0 || mode > 07777)
        config_report_add(rep, r->line,
                          "route \"%s\": mode \"%s\" is not an octal file mode (e.g. \"0640\")",
                          r->name, o->mode ? o->mode : "");
    else
        o->mode_bits = (mode_t)mode;
}

static void file_out_describe(const struct route *r, struct buf *out)
{
    const struct file_out_opts *o = opts(r);
    buf_printf(out, "queue \"%s\" → files %s/%s (mode %s%s%s)", r->queue, o->dir, o->filename,
               o->mode, o->overwrite ? ", overwrite" : "", r->transform ? ", transform" : "");
}

static int file_out_start(struct route *r, char *err, size_t errlen)
{
    /* A file-size limit (RLIMIT_FSIZE) must surface as EFBIG — a retry, then a dead letter —
     * not as SIGXFSZ killing the daemon. */
    signal(SIGXFSZ, SIG_IGN);
    const struct file_out_opts *o = opts(r);
    struct stat st;
    if (stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        log_warn(r->name,
                 "target directory \"%s\" does not exist (yet): deliveries will retry until it "
                 "does",
                 o->dir);
    return 0;
}

static bool file_out_ready(struct route *r, struct buf *detail)
{
    const struct file_out_opts *o = opts(r);
    int err = file_dir_usable(o->dir, W_OK | X_OK);
    if (err != 0 && detail)
        buf_printf(detail, "the target directory \"%s\" is not writable: %s", o->dir,
                   strerror(err));
    return err == 0;
}

const struct route_kind kind_file_out = {
    .name = "file",
    .direction = ROUTE_OUTBOUND,
    .summary = "each message becomes a file in a directory (temp name, fsync, rename, then ack)",
    .keys = file_out_keys,
    .opts_size = sizeof(struct file_out_opts),
    .validate = file_out_validate,
    .describe = file_out_describe,
    .start = file_out_start,
    .deliver = file_out_deliver,
    .ready = file_out_ready,
};
