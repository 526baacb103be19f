/*
 * file_filing — where a claimed file goes once the broker has what it must
 * have: into done_dir (or deleted) after every record is confirmed, or into
 * failed_dir with a <name>.error beside it after its DLQ copy is confirmed.
 * A name already taken there (yesterday's export.csv) is kept: the new file
 * becomes name.<first 16 hex of its hash> (the name cut short when that, or
 * the .error beside it, would pass NAME_MAX; the .error keeps the real name). The .error is written
 * (fsynced) before the file moves, so a crash never leaves a failed file unexplained.
 */
#include "file_in.h"

#include "file_ops.h"
#include "log.h"
#include "route.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_MODE     0750
#define ERROR_SUFFIX ".error"

int file_filing_done(struct file_in *fi, const char *name, const char *prefix, const char *summary)
{
    const struct file_in_opts *o = fi->o;
    char *path = xasprintf("%s/%s", fi->processing, name);
    char *target = NULL;
    int rc;
    if (o->done_dir == NULL) {
        rc = unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
    } else {
        char alt[17];
        snprintf(alt, sizeof(alt), "%.16s", prefix);
        rc = file_mkdirs(o->done_dir, DIR_MODE);
        if (rc == 0) {
            target = file_pick_name(o->done_dir, name, alt, 0);
            rc = file_move_into(path, o->done_dir, target);
        }
    }
    if (rc == 0 && o->done_dir == NULL)
        log_info(fi->r->name, "file \"%s\": %s; deleted", name, summary);
    else if (rc == 0)
        log_info(fi->r->name, "file \"%s\": %s; moved to %s/%s", name, summary, o->done_dir,
                 target);
    else
        log_error(fi->r->name,
                  "file \"%s\": every record is confirmed, but %s it failed: %s — fix done_dir "
                  "(\"%s\"); it stays in %s and filing it is retried",
                  name, o->done_dir ? "moving" : "deleting", strerror(-rc),
                  o->done_dir ? o->done_dir : "unset", fi->processing);
    free(target);
    free(path);
    return rc;
}

int file_filing_failed(struct file_in *fi, const char *name, const char *prefix, const char *error)
{
    const struct file_in_opts *o = fi->o;
    const struct route *r = fi->r;
    char *path = xasprintf("%s/%s", fi->processing, name);
    char alt[17];
    snprintf(alt, sizeof(alt), "%.16s", prefix);
    char *target = NULL;
    int rc = file_mkdirs(o->failed_dir, DIR_MODE);
    if (rc == 0) {
        target = file_pick_name(o->failed_dir, name, alt, strlen(ERROR_SUFFIX));
        char *error_name = xasprintf("%s" ERROR_SUFFIX, target);
        char *text = xasprintf("file: %s\nroute: %s\nformat: %s\nerror: %s\nsha256-prefix: %s\n",
                               name, r->name, o->format, error, prefix);
        rc = file_write_replace(o->failed_dir, error_name, text, strlen(text), 0640);
        free(text);
        free(error_name);
    }
    if (rc == 0)
        rc = file_move_into(path, o->failed_dir, target);
    if (rc == 0)
        log_error(r->name,
                  "file \"%s\" rejected: %s — moved to %s/%s (reason in %s.error), copy in %s",
                  name, error, o->failed_dir, target, target, r->dlq);
    else
        log_error(r->name,
                  "file \"%s\" is malformed (%s) and its copy is in %s, but filing it in "
                  "failed_dir \"%s\" failed: %s — fix failed_dir; it stays in %s and filing it "
                  "is retried (the copy is not sent again)",
                  name, error, r->dlq, o->failed_dir, strerror(-rc), fi->processing);
    free(target);
    free(path);
    return rc;
}
