/*
 * check_access — see check_access.h. The child only probes and writes one
 * fixed-size finding per problem into a pipe; the parent reads them all
 * before it waits (a full pipe would block the child), then formats.
 */
#include "check_access.h"

#include "config.h"
#include "config_paths.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GROUPS 256

enum finding_kind {
    FINDING_BLOCKED, /* a parent directory is not searchable: `where` */
    FINDING_MISSING, /* it does not exist; `where`, its nearest parent, is not writable */
    FINDING_DENIED,  /* access(2) refused the mode the sidecar needs: `err` */
};

struct finding {
    size_t index; /* into the config_paths */
    enum finding_kind kind;
    int err;
    char where[PATH_MAX];
};

struct user {
    const char *name;
    uid_t uid;
    gid_t gid;
    gid_t groups[MAX_GROUPS];
    int n_groups;
};

/* ---- in the child, as the user ---------------------------------------------- */

/* The first proper parent of path that exists but is not searchable. */
static bool first_blocker(const char *path, char *out, size_t outlen)
{
    char prefix[PATH_MAX];
    for (const char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        snprintf(prefix, sizeof(prefix), "%.*s", (int)(p - path), path);
        if (access(prefix, F_OK) != 0 && errno == ENOENT)
            return false; /* the rest does not exist: reported as missing */
        if (access(prefix, X_OK) != 0) {
            snprintf(out, outlen, "%s", prefix);
            return true;
        }
    }
    return false;
}

static void nearest_existing(const char *path, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", path);
    for (char *slash = strrchr(out, '/'); slash; slash = strrchr(out, '/')) {
        if (slash == out) {
            out[1] = '\0';
            return;
        }
        *slash = '\0';
        if (access(out, F_OK) == 0)
            return;
    }
}

/* 1 with *f filled when the user cannot use p as the sidecar will. */
static bool probe(const struct config_path *p, struct finding *f)
{
    if (first_blocker(p->path, f->where, sizeof(f->where))) {
        f->kind = FINDING_BLOCKED;
        return true;
    }
    if (access(p->path, F_OK) != 0) {
        f->err = errno;
        if (errno != ENOENT) {
            f->kind = FINDING_DENIED;
            return true;
        }
        /* The sidecar creates a missing directory it writes in (done_dir, failed_dir,
         * state_dir) when it may write in the nearest parent that exists. */
        nearest_existing(p->path, f->where, sizeof(f->where));
        if (p->use == CONFIG_PATH_WRITE_DIR && access(f->where, W_OK | X_OK) == 0)
            return false;
        f->kind = FINDING_MISSING;
        return true;
    }
    if (access(p->path, p->access) != 0) {
        f->err = errno;
        f->kind = FINDING_DENIED;
        return true;
    }
    return false;
}

static int become(const struct user *u)
{
    if (geteuid() != 0)
        return 0; /* checking as oneself */
    if (initgroups(u->name, u->gid) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0)
        return -1;
    return 0;
}

static void child(const struct config_paths *paths, const struct user *u, int fd)
{
    if (become(u) != 0) {
        fprintf(stderr, "amqp-sidecar: cannot become user %s: %s\n", u->name, strerror(errno));
        _exit(2);
    }
    for (size_t i = 0; i < paths->n; i++) {
        struct finding f = {.index = i};
        if (probe(&paths->v[i], &f) && write(fd, &f, sizeof(f)) != (ssize_t)sizeof(f))
            _exit(2);
    }
    _exit(0);
}

/* ---- in the parent: explain ------------------------------------------------- */

static bool in_groups(const struct user *u, gid_t g)
{
    for (int i = 0; i < u->n_groups; i++)
        if (u->groups[i] == g)
            return true;
    return false;
}

static void describe_owner(const struct stat *st, struct buf *b)
{
    struct passwd *pw = getpwuid(st->st_uid);
    struct group *gr = getgrgid(st->st_gid);
    char uid[16], gid[16];
    snprintf(uid, sizeof(uid), "%u", (unsigned)st->st_uid);
    snprintf(gid, sizeof(gid), "%u", (unsigned)st->st_gid);
    buf_printf(b, "owner %s:%s, mode %04o", pw ? pw->pw_name : uid, gr ? gr->gr_name : gid,
               (unsigned)(st->st_mode & 07777));
}

static void rwx(int mode, char out[4])
{
    int n = 0;
    if (mode & R_OK)
        out[n++] = 'r';
    if (mode & W_OK)
        out[n++] = 'w';
    if (mode & X_OK)
        out[n++] = 'x';
    out[n] = '\0';
}

/* The least change that gives u `mode` on path (as stat sees it). A parent
 * only to pass through (search) gets o+x rather than a new owner. */
static void fix_for(const char *path, const struct stat *st, int mode, bool secret,
                    const struct user *u, struct buf *b)
{
    char bits[4];
    rwx(mode, bits);
    struct group *own = getgrgid(u->gid);
    if (secret && st->st_uid != u->uid)
        buf_printf(b, "chown %s: %s && chmod 0600 %s", u->name, path, path);
    else if (st->st_uid == u->uid)
        buf_printf(b, "chmod u+%s %s", bits, path);
    else if (in_groups(u, st->st_gid))
        buf_printf(b, "chmod g+%s %s", bits, path);
    else if (mode == X_OK)
        buf_printf(b, "chmod o+x %s", path);
    else if (S_ISDIR(st->st_mode))
        buf_printf(b, "chown %s: %s", u->name, path);
    else
        buf_printf(b, "chgrp %s %s && chmod g+%s %s", own ? own->gr_name : "GROUP", path, bits,
                   path);
}

static const char *what_for(const struct config_path *p)
{
    if (p->use == CONFIG_PATH_READ_FILE)
        return "read";
    return (p->access & R_OK) ? "list and write files in" : "write files in";
}

static void explain(const struct sidecar_config *cfg, const struct config_path *p,
                    const struct finding *f, const struct user *u)
{
    struct buf b = {0};
    if (p->line)
        buf_printf(&b, "%s:%d: %s: ", cfg->path, p->line, p->key);
    else
        buf_printf(&b, "%s: %s (the default): ", cfg->path, p->key);
    struct stat st;
    switch (f->kind) {
    case FINDING_BLOCKED:
        buf_printf(&b, "%s cannot reach %s: %s (", u->name, p->path, f->where);
        if (stat(f->where, &st) == 0) {
            describe_owner(&st, &b);
            buf_printf(&b, ") is not searchable by %s; fix: ", u->name);
            fix_for(f->where, &st, X_OK, false, u, &b);
        } else {
            buf_printf(&b, "%s)", strerror(errno));
        }
        break;
    case FINDING_MISSING:
        if (p->use == CONFIG_PATH_WRITE_DIR)
            buf_printf(&b,
                       "%s does not exist and %s cannot create it in %s; fix: mkdir -p %s && "
                       "chown %s: %s",
                       p->path, u->name, f->where, p->path, u->name, p->path);
        else
            buf_printf(&b, "%s does not exist", p->path);
        break;
    case FINDING_DENIED:
        buf_printf(&b, "%s cannot %s %s (", u->name, what_for(p), p->path);
        if (stat(p->path, &st) == 0) {
            describe_owner(&st, &b);
            buf_printf(&b, "); fix: ");
            fix_for(p->path, &st, p->access, p->secret, u, &b);
        } else {
            buf_printf(&b, "%s)", strerror(f->err));
        }
        break;
    }
    fprintf(stderr, "%s\n", b.data);
    buf_free(&b);
}

static int lookup_user(const char *name, struct user *u)
{
    struct passwd *pw = getpwnam(name);
    if (pw == NULL) {
        fprintf(stderr,
                "amqp-sidecar: check --user: there is no user \"%s\" (the package creates "
                "amqp-sidecar; or name the user the service runs as)\n",
                name);
        return -1;
    }
    *u = (struct user){.name = name, .uid = pw->pw_uid, .gid = pw->pw_gid, .n_groups = MAX_GROUPS};
    if (getgrouplist(name, pw->pw_gid, u->groups, &u->n_groups) < 0)
        u->n_groups = 0; /* more than MAX_GROUPS: the fixes may suggest chown over chmod g+ */
    if (geteuid() != 0 && u->uid != geteuid()) {
        fprintf(stderr,
                "amqp-sidecar: check --user %s needs root to act as that user: run it with sudo "
                "(or without --user to check as yourself)\n",
                name);
        return -1;
    }
    return 0;
}

int check_access_as(const struct sidecar_config *cfg, const char *name)
{
    struct user u;
    if (lookup_user(name, &u) != 0)
        return 2;
    struct config_paths paths;
    char err[512];
    if (config_paths_collect(cfg, &paths, err, sizeof(err)) != 0) {
        fprintf(stderr, "amqp-sidecar: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < paths.n; i++) { /* the parents walk needs absolute paths */
        char cwd[PATH_MAX];
        if (paths.v[i].path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) {
            char *abs = xasprintf("%s/%s", cwd, paths.v[i].path);
            free(paths.v[i].path);
            paths.v[i].path = abs;
        }
    }
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "amqp-sidecar: pipe: %s\n", strerror(errno));
        config_paths_free(&paths);
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "amqp-sidecar: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        config_paths_free(&paths);
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        child(&paths, &u, fds[1]);
    }
    close(fds[1]);
    size_t problems = 0;
    struct finding f;
    ssize_t n;
    while ((n = read(fds[0], &f, sizeof(f))) == (ssize_t)sizeof(f)) {
        if (f.index < paths.n) {
            explain(cfg, &paths.v[f.index], &f, &u);
            problems++;
        }
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int code = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "amqp-sidecar: check --user %s: the check as that user failed\n", name);
        code = 1;
    } else if (problems > 0) {
        printf("user %s: %zu problem%s with the %zu path%s the routes need (see above)\n", name,
               problems, problems == 1 ? "" : "s", paths.n, paths.n == 1 ? "" : "s");
        code = 1;
    } else {
        printf("user %s: can use all %zu path%s the routes need\n", name, paths.n,
               paths.n == 1 ? "" : "s");
    }
    config_paths_free(&paths);
    return code;
}
