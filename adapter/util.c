/*
 * util — see util.h. Randomness comes from OpenSSL's CSPRNG so ids are not
 * guessable; comparisons of secrets go through CRYPTO_memcmp.
 */
#include "util.h"

#include "log.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n)
{
    log_error(NULL, "out of memory allocating %zu bytes; aborting", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        out_of_memory(n);
    return p;
}

void *xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        out_of_memory(count * n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        out_of_memory(n);
    return q;
}

char *xstrdup(const char *s)
{
    return s == NULL ? NULL : xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory(strlen(fmt));
    return s;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory(strlen(fmt));
    buf_append(b, s, (size_t)n);
    free(s);
}

void buf_json_string(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    buf_append(b, "\"", 1);
    const char *run = s; /* bytes that need no escape are appended in runs */
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c != 0 && c != '"' && c != '\\' && c >= 0x20)
            continue;
        buf_append(b, run, (size_t)(p - run));
        if (c == 0)
            break;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buf_append(b, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, esc, 6);
        }
        run = p + 1;
    }
    buf_append(b, "\"", 1);
}

char *buf_steal(struct buf *b, size_t *len)
{
    if (b->data == NULL)
        buf_append(b, "", 0);
    char *data = b->data;
    if (len)
        *len = b->len;
    *b = (struct buf){0};
    return data;
}

void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}

/* Random bytes for ids, drawn from OpenSSL's CSPRNG a few KiB at a time per
 * thread: each RAND_bytes call costs a getpid() (its fork check) and locks,
 * and every request takes two or three ids. The sidecar never forks after it
 * starts threads, so a buffered draw is as unpredictable as a fresh one. */
#define ID_RANDOM_BATCH 4096
void id_random(unsigned char *out, size_t n)
{
    static __thread unsigned char pool[ID_RANDOM_BATCH];
    static __thread size_t left;
    if (left < n) {
        if (RAND_bytes(pool, sizeof(pool)) != 1) {
            log_error(NULL, "OpenSSL RAND_bytes failed; aborting rather than issue weak ids");
            abort();
        }
        left = sizeof(pool);
    }
    memcpy(out, pool + sizeof(pool) - left, n);
    explicit_bzero(pool + sizeof(pool) - left, n); /* never handed out twice */
    left -= n;
}

void uuid_v4(char out[37])
{
    unsigned char r[16];
    id_random(r, sizeof(r));
    r[6] = (r[6] & 0x0f) | 0x40;
    r[8] = (r[8] & 0x3f) | 0x80;
    /* By hand, not snprintf: two or three of these per request. */
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[r[i] >> 4];
        *o++ = hex[r[i] & 15];
    }
    *o = '\0';
}

bool bytes_equal_ct(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return false;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

/* SHA-256 fetched from the provider once: EVP_sha256() in EVP_DigestInit_ex fetches
 * it again, with locks, on every call (OpenSSL 3), a hot cost on the delivery path. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void sha256_parts(const struct byte_span *parts, size_t n, unsigned char out[SHA256_BYTES])
{
    pthread_once(&sha256_once, sha256_fetch);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        out_of_memory(sizeof(void *));
    EVP_DigestInit_ex(ctx, sha256_md ? sha256_md : EVP_sha256(), NULL);
    for (size_t i = 0; i < n; i++)
        EVP_DigestUpdate(ctx, parts[i].data, parts[i].len);
    EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    memcpy(out, md, SHA256_BYTES);
}

void sha256_id(const unsigned char *md, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (size_t i = 0; i < len; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 2 * len] = '\0';
}

bool str_equal_ci(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

char *str_trim_right(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

size_t str_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

bool buf_read_stream(struct buf *b, FILE *f)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(b, chunk, n);
    return !ferror(f);
}
