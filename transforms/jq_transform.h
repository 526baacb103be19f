/*
 * jq_transform — a route's transform: one jq program (libjq 1.6) over JSON text.
 *
 * A compiled jq_state may only be used by one thread at a time and jv
 * refcounts are not atomic, so a transform keeps a small pool of compiled
 * states: each call borrows one, runs entirely on the calling thread, and
 * gives it back. No jv ever crosses threads: text in, text out.
 *
 * A program must produce exactly one result per input; none or several is
 * an error (a transform that silently drops a message would lose it).
 * Note: jq's $ENV exposes the daemon's environment; keep secrets in files.
 */
#ifndef SIDECAR_JQ_TRANSFORM_H
#define SIDECAR_JQ_TRANSFORM_H

#include <stddef.h>

struct transform;

/* Reads and compiles the program at path. NULL with err (jq's message). */
struct transform *transform_load(const char *path, char *err, size_t errlen);
/* Compiles program text (tests, and `transform`). */
struct transform *transform_compile(const char *program, const char *name, char *err,
                                    size_t errlen);
void transform_free(struct transform *t);

/* Applies t to the JSON text in[0..len). Returns the compact JSON result
 * (caller frees; *out_len set) or NULL with err: the input is not JSON, jq
 * raised an error, or the program produced no result or several. */
char *transform_apply(struct transform *t, const char *in, size_t len, size_t *out_len, char *err,
                      size_t errlen);

#endif
