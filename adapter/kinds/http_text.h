/*
 * http_text — small text rules shared by the kinds that call HTTP APIs (http
 * outbound, poll): URL-encoding placeholder values, a URL fit for logs and
 * x-sidecar-error (no user info, no query: either may hold a secret), a
 * one-line excerpt of a response body, and what a header name/value may be.
 * Pure functions; unit tested in tests/unit/test_http_text.c.
 */
#ifndef SIDECAR_HTTP_TEXT_H
#define SIDECAR_HTTP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* Appends s with everything but RFC 3986 unreserved characters percent-encoded. */
void http_text_url_encode(struct buf *out, const char *s);

/* Appends url without "user:pass@" and without "?query" or "#fragment". */
void http_text_url_redacted(struct buf *out, const char *url);

/* Appends at most max bytes of body on one line: control characters become
 * one space, no UTF-8 sequence is cut, "..." marks a cut; "(empty body)" if empty. */
void http_text_excerpt(struct buf *out, const char *body, size_t len, size_t max);

/* An RFC 7230 token (a header name). */
bool http_text_header_name_ok(const char *name);
/* A header value that cannot split a request: no control character but tab. */
bool http_text_header_value_ok(const char *value);

#endif
