/*
 * status_page — the status page's HTML, rendered from the document
 * status_json builds (so the page and /status.json cannot disagree). One
 * self-contained page: inline CSS, no scripts, no external assets; it
 * reloads itself every STATUS_PAGE_REFRESH seconds. Every string from the
 * document is HTML-escaped: route errors carry text from the legacy side and
 * from messages. A pure function, unit-tested on fixtures.
 */
#ifndef SIDECAR_STATUS_PAGE_H
#define SIDECAR_STATUS_PAGE_H

#include <jansson.h>

#define STATUS_PAGE_REFRESH 5

struct buf;

/* Appends the page for status (borrowed) to out. */
void status_page_html(const json_t *status, struct buf *out);

/* Appends s to out with & < > " ' escaped. */
void html_escape(struct buf *out, const char *s);

#endif
