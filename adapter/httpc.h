/*
 * httpc — the shared HTTP client: one libcurl multi handle driven by one
 * loop (one thread), for http and soap outbound routes and poll routes.
 *
 * Many transfers run at once on the loop's thread; each ends with exactly
 * one callback on that thread, carrying either an HTTP status (any status,
 * 5xx included) or a transport error (status 0: refused, timed out, DNS…).
 * Keep-alive connections are reused across transfers.
 */
#ifndef SIDECAR_HTTPC_H
#define SIDECAR_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

struct header;
struct httpc;
struct loop;
struct tls_config;

struct httpc_request {
    const char *method; /* "GET", "POST", … */
    const char *url;
    const struct header *headers; /* "Name: value" pairs; copied */
    size_t n_headers;
    const char *body; /* copied */
    size_t body_len;
    double timeout;               /* seconds for the whole transfer */
    double connect_timeout;       /* seconds; 0 = min(timeout, 10) */
    size_t max_response;          /* bytes kept of the body; 0 = 16 MiB; the rest is dropped */
    const struct tls_config *tls; /* https: private CA, client certificate, verify; NULL:
                                   * the system store, verified. Its key is read under
                                   * secrets_read_lock and copied. */
};

struct httpc_response {
    long status;       /* HTTP status, or 0 when there was no response */
    const char *error; /* transport error text when status is 0; a certificate problem
                        * starts "TLS: expired", "TLS: unknown CA", "TLS: host name
                        * mismatch" or "TLS: client certificate refused" */
    bool timed_out;
    const char *body; /* valid during the callback only */
    size_t body_len;
    bool truncated;
    const char *content_type; /* NULL if none */
    const char *etag;         /* NULL if none */
    double retry_after;       /* seconds asked by Retry-After: whole, 0 … RETRY_AFTER_MAX,
                               * 0 if none or malformed (retry_after.h) */
    double seconds;           /* total time */
    bool not_sent;            /* status 0 and no request went out: the call's credentials
                               * could not be had (legacy_client.h); error says why */
};

/* The legacy side asked to slow down: a 429 or 503 with a usable Retry-After. */
bool httpc_asks_to_wait(const struct httpc_response *resp);

typedef void (*httpc_done_fn)(void *arg, const struct httpc_response *resp);

struct httpc *httpc_new(struct loop *loop);
/* Aborts what is running without calling back. Loop thread. */
void httpc_free(struct httpc *c);

/* Loop thread. 0 when started (done will run), -1 if curl refused it. */
int httpc_start(struct httpc *c, const struct httpc_request *req, httpc_done_fn done, void *arg);
size_t httpc_active(const struct httpc *c);

#endif
