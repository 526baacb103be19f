/*
 * util — allocation that cannot fail, a growable byte buffer, ids, hashes.
 *
 * Allocation failure aborts the process with a log line: under Linux
 * overcommit a daemon cannot recover from it meaningfully, and checking every
 * small allocation would bury the code that matters. Large, input-driven
 * allocations (bodies, files) are bounded by configured limits instead.
 */
#ifndef SIDECAR_UTIL_H
#define SIDECAR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);            /* NULL stays NULL */
char *xstrndup(const char *s, size_t n); /* always NUL-terminated */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable byte buffer; data is always NUL-terminated for convenience. */
struct buf {
    char *data;
    size_t len, cap;
};
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string, quotes included: " and \ escaped, control characters as
 * \u00XX; other bytes as they are (the caller's text is UTF-8 or ASCII). */
void buf_json_string(struct buf *b, const char *s);
char *buf_steal(struct buf *b, size_t *len); /* caller owns the result; b is reset */
void buf_free(struct buf *b);
/* Appends what is left to read of f; false on a read error. */
bool buf_read_stream(struct buf *b, FILE *f);

/* n random bytes for ids (message ids, trace and span ids), from a per-thread
 * pool refilled by the CSPRNG; not for keys. */
void id_random(unsigned char *out, size_t n);

/* A new random (v4) UUID in canonical text form, into out[37]. */
void uuid_v4(char out[37]);

/* Constant-time comparison of two byte strings (lengths may differ). */
bool bytes_equal_ct(const void *a, size_t alen, const void *b, size_t blen);

#define SHA256_BYTES 32

/* One piece of the input to sha256_parts (borrowed). */
struct byte_span {
    const void *data;
    size_t len;
};

/* The SHA-256 of the n parts one after another, into out[SHA256_BYTES]. */
void sha256_parts(const struct byte_span *parts, size_t n, unsigned char out[SHA256_BYTES]);

/* An id made from content: "sha256:" and the lowercase hex of the len bytes
 * of md, NUL-terminated, into out (room for 8 + 2 * len bytes). */
void sha256_id(const unsigned char *md, size_t len, char *out);

bool str_equal_ci(const char *a, const char *b);
char *str_trim_right(char *s);
/* Levenshtein distance for "did you mean"; SIZE_MAX past 64 bytes. */
size_t str_edit_distance(const char *a, const char *b);

#endif
