/*
 * file_out.h — the options of the file outbound kind (file_out.c), for the
 * kind and for `amqp-sidecar test`, which points dir at a temporary
 * directory while a case runs.
 */
#ifndef SIDECAR_FILE_OUT_H
#define SIDECAR_FILE_OUT_H

#include <stdbool.h>
#include <sys/types.h>

struct file_out_opts {
    char *dir;
    char *filename;
    bool portable_names;
    bool overwrite;
    char *mode;
    /* derived by validate */
    mode_t mode_bits;
};

#endif
