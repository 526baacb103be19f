/*
 * fuzz_config.c — libFuzzer target for the config loader (adapter/config.c
 * and the key tables of every kind): the input is written to fuzz.conf in a
 * private temporary directory and loaded with config_load.
 *
 * Besides memory errors and leaks (the loaded config is freed either way) it
 * checks that a refused file says why: at least one error, each with a line
 * >= 0 and a non-empty message. Relative paths resolve in the temporary
 * directory, which holds a secret file ("secret", mode 600) and a transform
 * ("t.jq") for the loader to find. config_load only reads (stat, access,
 * bounded reads of regular files); inputs with @include (libconfig reads the
 * whole named file, /dev/zero included) are skipped, and the environment is
 * emptied so ${VAR} expands to nothing real.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], conf[96], secret[96], jq[96];

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0 || chmod(path, mode) != 0) {
        perror(path);
        abort();
    }
}

static void remove_dir(void)
{
    unlink(conf);
    unlink(secret);
    unlink(jq);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/fuzz_config.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(conf, sizeof(conf), "%s/fuzz.conf", dir);
    snprintf(secret, sizeof(secret), "%s/secret", dir);
    snprintf(jq, sizeof(jq), "%s/t.jq", dir);
    write_file(secret, "s3cret\n", 7, 0600);
    write_file(jq, ".\n", 2, 0644);
    atexit(remove_dir);
    clearenv();
    setenv("STATE_DIRECTORY", dir, 1);
    json_object_seed(1);
    return 0;
}

static bool contains_include(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i + 8 <= size; i++)
        if (data[i] == '@' && strncasecmp((const char *)data + i, "@include", 8) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (contains_include(data, size))
        return 0;
    write_file(conf, data, size, 0644);

    struct sidecar_config cfg;
    struct config_report rep = {0};
    int rc = config_load(conf, &cfg, &rep);
    if (rc != 0 && rep.n == 0) {
        fprintf(stderr, "property broken: config_load failed (%d) without an error\n", rc);
        abort();
    }
    for (size_t i = 0; i < rep.n; i++) {
        if (rep.errors[i].line < 0 || !rep.errors[i].msg || !rep.errors[i].msg[0]) {
            fprintf(stderr, "property broken: error %zu has line %d, message \"%s\"\n", i,
                    rep.errors[i].line, rep.errors[i].msg ? rep.errors[i].msg : "(null)");
            abort();
        }
    }
    config_report_free(&rep);
    config_free(&cfg);
    return 0;
}
