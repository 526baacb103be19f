/*
 * file_ops — see file_ops.h. Plain POSIX plus Linux's renameat2; no state.
 */
#include "file_ops.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK (256 * 1024)

int file_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 || errno == EINVAL ? 0 : -errno; /* some file systems can't */
    close(fd);
    return rc;
}

int file_mkdirs(const char *path, mode_t mode)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    char *copy = xstrdup(path);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, mode) != 0 && errno != EEXIST) {
            int err = -errno;
            free(copy);
            return err;
        }
        *p = '/';
    }
    int rc = mkdir(copy, mode) == 0 || errno == EEXIST ? 0 : -errno;
    free(copy);
    if (rc == 0 && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = -ENOTDIR;
    return rc;
}

int file_rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* No RENAME_NOREPLACE here (NFS, some FUSE): a hard link is just as exclusive. */
    if (link(from, to) == 0) {
        unlink(from);
        return 0;
    }
    if (errno == EEXIST || (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS))
        return -errno;
    struct stat st;
    if (lstat(to, &st) == 0)
        return -EEXIST;
    return rename(from, to) == 0 ? 0 : -errno;
}

int file_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int file_temp_create(const char *dir, const char *tag, mode_t mode, char **path)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        char id[37];
        uuid_v4(id);
        char *p = xasprintf("%s/" FILE_TEMP_PREFIX "%.40s-%.8s", dir, tag, id);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd >= 0) {
            /* the umask must not weaken or widen what the operator configured */
            if (fchmod(fd, mode) != 0) {
                int err = -errno;
                close(fd);
                unlink(p);
                free(p);
                return err;
            }
            *path = p;
            return fd;
        }
        int err = -errno;
        free(p);
        if (err != -EEXIST)
            return err;
    }
    return -EEXIST;
}

/* Copies the file at from into a temp file in dir; its path in *tmp. */
static int copy_to_temp(const char *from, const char *dir, const char *name, char **tmp)
{
    int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return -errno;
    struct stat st;
    if (fstat(in, &st) != 0) {
        int err = -errno;
        close(in);
        return err;
    }
    int out = file_temp_create(dir, name, st.st_mode & 07777, tmp);
    if (out < 0) {
        close(in);
        return out;
    }
    char *chunk = xmalloc(COPY_CHUNK);
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, chunk, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        if ((rc = file_write_all(out, chunk, (size_t)n)) != 0)
            break;
    }
    free(chunk);
    if (rc == 0 && fsync(out) != 0)
        rc = -errno;
    if (close(out) != 0 && rc == 0)
        rc = -errno;
    close(in);
    if (rc != 0) {
        unlink(*tmp);
        free(*tmp);
        *tmp = NULL;
    }
    return rc;
}

int file_move_into(const char *from, const char *dir, const char *name)
{
    char *to = xasprintf("%s/%s", dir, name);
    int rc = rename(from, to) == 0 ? 0 : -errno;
    if (rc == -EXDEV) {
        char *tmp = NULL;
        rc = copy_to_temp(from, dir, name, &tmp);
        if (rc == 0 && rename(tmp, to) != 0) {
            rc = -errno;
            unlink(tmp);
        }
        if (rc == 0 && unlink(from) != 0)
            rc = -errno;
        free(tmp);
    }
    if (rc == 0)
        rc = file_fsync_dir(dir);
    free(to);
    return rc;
}

char *file_pick_name(const char *dir, const char *name, const char *alt, size_t reserve)
{
    size_t max = NAME_MAX - reserve, len = strlen(name);
    if (len <= max) {
        char *path = xasprintf("%s/%s", dir, name);
        struct stat st;
        bool taken = lstat(path, &st) == 0;
        free(path);
        if (!taken)
            return xstrdup(name);
    }
    size_t keep = max - 1 - strlen(alt);
    if (len > keep) {
        len = keep;
        while (len > 0 && ((unsigned char)name[len] & 0xC0) == 0x80)
            len--; /* never half a character */
    }
    return xasprintf("%.*s.%s", (int)len, name, alt);
}

int file_write_replace(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
    char *tmp = NULL;
    int fd = file_temp_create(dir, name, mode, &tmp);
    if (fd < 0)
        return fd;
    int rc = file_write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    char *to = xasprintf("%s/%s", dir, name);
    if (rc == 0 && rename(tmp, to) != 0)
        rc = -errno;
    if (rc != 0)
        unlink(tmp);
    else
        rc = file_fsync_dir(dir);
    free(to);
    free(tmp);
    return rc;
}

int file_same_content(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != len) {
        close(fd);
        return 0;
    }
    char *chunk = xmalloc(COPY_CHUNK);
    const char *want = data;
    size_t off = 0;
    int same = 1;
    while (same == 1) {
        ssize_t n = read(fd, chunk, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            same = -errno;
            break;
        }
        if (n == 0)
            break;
        if (off + (size_t)n > len || memcmp(chunk, want + off, (size_t)n) != 0)
            same = 0;
        off += (size_t)n;
    }
    if (same == 1 && off != len)
        same = 0;
    free(chunk);
    close(fd);
    return same;
}

int file_dir_usable(const char *path, int access_mode)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno;
    if (!S_ISDIR(st.st_mode))
        return ENOTDIR;
    return access(path, access_mode) != 0 ? errno : 0;
}
