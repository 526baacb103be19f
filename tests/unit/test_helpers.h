/*
 * test_helpers — small fixtures shared by the cmocka unit tests: a private
 * temporary directory and files written into it.
 */
#ifndef SIDECAR_TEST_HELPERS_H
#define SIDECAR_TEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char *test_tmpdir(void)
{
    char *dir = strdup("/tmp/sidecar-unit-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    return dir;
}

/* Writes content to dir/name with the given mode; returns the malloc'd path. */
static inline char *test_write(const char *dir, const char *name, const char *content, int mode)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(content, f);
    fclose(f);
    chmod(path, (mode_t)mode);
    return path;
}

static inline void test_rmtree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

#endif
