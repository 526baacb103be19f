/*
 * poll_cursor — see poll_cursor.h.
 */
#include "poll_cursor.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int poll_cursor_dir_create(const char *dir)
{
    char *copy = xstrdup(dir);
    for (char *s = copy + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(copy, 0750) != 0 && errno != EEXIST) {
            free(copy);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(copy, 0750) != 0 && errno != EEXIST ? -1 : 0;
    free(copy);
    return rc;
}

char *poll_cursor_dir_problem(const char *dir)
{
    /* The nearest part of the path that exists decides. */
    char *probe = xstrdup(dir);
    struct stat st;
    while (stat(probe, &st) != 0) {
        char *slash = strrchr(probe, '/');
        if (slash == NULL || slash == probe) {
            free(probe);
            probe = xstrdup(slash == probe ? "/" : ".");
            break;
        }
        *slash = '\0';
    }
    bool exists = strcmp(probe, dir) == 0;
    char *problem = NULL;
    if (stat(probe, &st) != 0 || !S_ISDIR(st.st_mode))
        problem = xasprintf("\"%s\" is not a directory (\"%s\" is in the way)", dir, probe);
    else if (access(probe, W_OK | X_OK) != 0)
        problem =
            xasprintf("\"%s\" %s (%s: %s)", dir, exists ? "is not writable" : "cannot be created",
                      probe, strerror(errno));
    free(probe);
    return problem;
}

char *poll_cursor_load(const char *path, bool *missing, char *err, size_t errlen)
{
    *missing = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *missing = true;
            return NULL;
        }
        snprintf(err, errlen, "cannot read the cursor file \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    char *data = xmalloc(POLL_CURSOR_MAX + 2);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, data + len, POLL_CURSOR_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read the cursor file \"%s\": %s", path, strerror(errno));
            close(fd);
            free(data);
            return NULL;
        }
        len += (size_t)n;
        if (n == 0 || len > POLL_CURSOR_MAX)
            break;
    }
    close(fd);
    if (len > POLL_CURSOR_MAX) {
        snprintf(err, errlen, "the cursor file \"%s\" is over %d bytes; is it the right file?",
                 path, POLL_CURSOR_MAX);
        free(data);
        return NULL;
    }
    if (len > 0 && data[len - 1] == '\n') /* an operator may have edited it */
        len--;
    data[len] = '\0';
    return data;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int poll_cursor_save(const char *dir, const char *path, const char *value, char *err, size_t errlen)
{
    char *tmp = xasprintf("%s.tmp", path);
    const char *step = "creating";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        goto fail;
    step = "writing";
    if (write_all(fd, value, strlen(value)) != 0 || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        errno = saved;
        goto fail;
    }
    close(fd);
    step = "renaming";
    if (rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        goto fail;
    }
    free(tmp);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* make the rename durable */
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    snprintf(err, errlen, "%s \"%s\" failed: %s; check state_dir \"%s\"", step, tmp,
             strerror(errno), dir);
    free(tmp);
    return -1;
}
