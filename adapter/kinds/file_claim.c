/*
 * file_claim — the claim protocol of the file inbound kind, and the files it
 * holds in <dir>/.processing/.
 *
 * A file is claimed by renaming it from dir into .processing (same file
 * system, so atomic: a crash leaves it in one place or the other, whole).
 * It is given back the same way when it changed after the claim (its writer
 * was not done), and settles in .processing instead when dir has a new file
 * of that name by then — never overwritten, never split. Claimed files that
 * wait for another attempt (left by an earlier run, refused by the broker,
 * settling, or published but not yet filed) sit in fi->claimed, which
 * file_in.c takes them from. All on the route's loop thread.
 */
#include "file_in.h"

#include "file_ops.h"
#include "file_watch.h"
#include "log.h"
#include "loop.h"
#include "route.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

static bool same_file_state(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Claims dir/name into .processing, *st = its lstat just before; 0, or -1
 * when it is not ours to take now. */
int file_claim(struct file_in *fi, const char *name, const struct stat *settled, struct stat *st)
{
    char *from = xasprintf("%s/%s", fi->o->dir, name);
    char *to = xasprintf("%s/%s", fi->processing, name);
    int rc = lstat(from, st) == 0 ? 0 : -errno;
    if (rc == 0 && (!S_ISREG(st->st_mode) || !same_file_state(st, settled))) {
        rc = -EAGAIN; /* changed since it settled: watch it again */
        file_watch_again(fi->watch, name);
    }
    if (rc == 0)
        rc = file_mkdirs(fi->processing, 0750);
    if (rc == 0)
        rc = file_rename_noreplace(from, to);
    if (rc == -EEXIST) {
        /* the next scan finds it again (not sooner: no warning every settle_ms) */
        log_warn(fi->r->name, "file \"%s\": one of that name is still in %s; this one waits for it",
                 name, fi->processing);
    } else if (rc != 0 && rc != -ENOENT && rc != -EAGAIN) {
        log_error(fi->r->name, "cannot claim \"%s\" (rename into %s): %s — check permissions", from,
                  fi->processing, strerror(-rc));
    }
    free(from);
    free(to);
    return rc == 0 ? 0 : -1;
}

void file_claimed_free(struct file_claimed *c)
{
    free(c->error);
    free(c->name);
    free(c);
}

struct file_claimed *file_claimed_new(const char *name, bool confirmed, const char *prefix)
{
    struct file_claimed *c = xcalloc(1, sizeof(*c));
    c->name = xstrdup(name);
    c->confirmed = confirmed;
    snprintf(c->prefix, sizeof(c->prefix), "%s", prefix ? prefix : "");
    return c;
}

void file_claimed_push_front(struct file_in *fi, struct file_claimed *c)
{
    c->next = fi->claimed;
    fi->claimed = c;
}

void file_claimed_drop(struct file_in *fi, const char *name)
{
    for (struct file_claimed **pp = &fi->claimed; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) != 0)
            continue;
        struct file_claimed *c = *pp;
        *pp = c->next;
        file_claimed_free(c);
        return;
    }
}

static void claimed_push_back(struct file_in *fi, struct file_claimed *c)
{
    struct file_claimed **pp = &fi->claimed;
    while (*pp)
        pp = &(*pp)->next;
    c->next = NULL;
    *pp = c;
}

/* The first claimed file not backing off (unlinked), or NULL; *due = when the next one is. */
struct file_claimed *file_claimed_take(struct file_in *fi, int64_t now, int64_t *due)
{
    *due = 0;
    for (struct file_claimed **pp = &fi->claimed; *pp; pp = &(*pp)->next) {
        struct file_claimed *c = *pp;
        if (c->not_before_ms <= now) {
            *pp = c->next;
            return c;
        }
        if (*due == 0 || c->not_before_ms < *due)
            *due = c->not_before_ms;
    }
    return NULL;
}

int64_t file_claim_backoff_ms(int failures)
{
    int64_t ms = (int64_t)BACKOFF_MIN_MS << (failures < 6 ? failures : 6);
    return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

/* This file has a problem of its own: others go first for a while. */
void file_claimed_back_off(struct file_in *fi, struct file_claimed *c)
{
    c->not_before_ms = loop_now_ms() + file_claim_backoff_ms(c->failures++);
    claimed_push_back(fi, c);
}

/* Watches a file in .processing settle (others go first meanwhile). */
static void claimed_settle(struct file_in *fi, struct file_claimed *c, const struct stat *st)
{
    c->settling = true;
    c->st = *st;
    c->not_before_ms = loop_now_ms() + (fi->o->settle_ms > 0 ? fi->o->settle_ms : 1);
    claimed_push_back(fi, c);
}

/* The claimed file changed after its claim (its writer was not done): back
 * into dir to settle again, or, when dir has a new file of that name, it
 * settles in .processing. Never filed as it was. */
void file_claim_put_back(struct file_in *fi, const char *name)
{
    char *from = xasprintf("%s/%s", fi->processing, name);
    char *to = xasprintf("%s/%s", fi->o->dir, name);
    struct stat st;
    int rc = file_rename_noreplace(from, to);
    if (rc == 0) {
        file_watch_put_back(fi->watch, name);
        log_info(fi->r->name, "file \"%s\": put back into %s to settle", name, fi->o->dir);
    } else if (lstat(from, &st) != 0) {
        log_warn(fi->r->name, "file \"%s\" is gone from %s: someone took it out", name,
                 fi->processing);
    } else {
        log_warn(fi->r->name, "file \"%s\" cannot go back into %s (%s); it settles in %s instead",
                 name, fi->o->dir, strerror(-rc), fi->processing);
        claimed_settle(fi, file_claimed_new(name, false, NULL), &st);
    }
    free(from);
    free(to);
}

/* A claimed file that settles in .processing: 0 when it is stable now, or
 * -1 when it changed again (or is gone) and c was handed on. */
static int claimed_settled(struct file_in *fi, struct file_claimed *c)
{
    char *path = xasprintf("%s/%s", fi->processing, c->name);
    struct stat st;
    int rc = lstat(path, &st);
    free(path);
    if (rc != 0) {
        file_claimed_free(c); /* gone: someone took it out of .processing */
        return -1;
    }
    if (same_file_state(&st, &c->st) && st.st_ctim.tv_sec == c->st.st_ctim.tv_sec &&
        st.st_ctim.tv_nsec == c->st.st_ctim.tv_nsec) {
        c->settling = false;
        return 0;
    }
    claimed_settle(fi, c, &st);
    return -1;
}

/* Every record was confirmed, only filing failed: still the file that was published? */
static bool claimed_unchanged(struct file_in *fi, const struct file_claimed *c)
{
    char *path = xasprintf("%s/%s", fi->processing, c->name);
    struct stat st;
    bool same = lstat(path, &st) != 0 || same_file_state(&st, &c->st); /* gone: filing says */
    free(path);
    return same;
}

int file_claimed_check(struct file_in *fi, struct file_claimed *c)
{
    if (c->settling)
        return claimed_settled(fi, c);
    if (c->confirmed && !claimed_unchanged(fi, c)) {
        log_warn(fi->r->name,
                 "file \"%s\" changed after all its records were confirmed; it is published "
                 "again, in full, once stable",
                 c->name);
        file_claim_put_back(fi, c->name);
        file_claimed_free(c);
        return -1;
    }
    return 0;
}

/* Files left in .processing by an earlier run: first in line, by name. */
void file_claim_recover(struct file_in *fi)
{
    struct dirent **list = NULL;
    int n = scandir(fi->processing, &list, NULL, alphasort);
    if (n < 0)
        return;
    for (int i = n - 1; i >= 0; i--) {
        struct stat st;
        char *path = xasprintf("%s/%s", fi->processing, list[i]->d_name);
        if (list[i]->d_name[0] != '.' && lstat(path, &st) == 0 && S_ISREG(st.st_mode))
            file_claimed_push_front(fi, file_claimed_new(list[i]->d_name, false, NULL));
        free(path);
        free(list[i]);
    }
    free(list);
    if (fi->claimed != NULL)
        log_info(fi->r->name, "finishing file(s) left in %s by an earlier run first",
                 fi->processing);
}
