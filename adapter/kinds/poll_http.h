/*
 * poll_http — the poll route's conversation with the legacy endpoint: the GET
 * it sends (the url with the cursor URL-encoded; Accept JSON; If-None-Match
 * when it has that URL's ETag; extra headers; the route's credentials, added
 * by its legacy client) and what the
 * answer means: a JSON document, "unchanged" (304, 204), or a failure whose
 * reason names the redacted URL, with the Retry-After the legacy side asked.
 * No state: poll_in.c keeps the cursor, the ETag and the schedule.
 */
#ifndef SIDECAR_POLL_HTTP_H
#define SIDECAR_POLL_HTTP_H

#include "httpc.h"
#include "legacy_client.h"

#include <jv.h>
#include <stddef.h>

struct strmap;

/* url_template with {cursor} replaced by cursor, URL-encoded. Caller frees;
 * NULL with err. */
char *poll_http_url(const char *url_template, const char *cursor, char *err, size_t errlen);

/* One GET; everything borrowed (httpc copies what it keeps). */
struct poll_http_get {
    const char *url;
    const char *etag;             /* sent as If-None-Match; NULL: none */
    const struct strmap *headers; /* extra request headers */
    double timeout;
    size_t max_response;
};

/* Loop thread: starts the GET; done runs on that thread (see legacy_client.h). */
int poll_http_start(struct legacy_client *client, const struct poll_http_get *g, httpc_done_fn done,
                    void *arg);

enum poll_answer {
    POLL_ANSWER_JSON,      /* *doc is the response (the caller owns it) */
    POLL_ANSWER_UNCHANGED, /* 304 or 204; why says which */
    POLL_ANSWER_FAILED,    /* why says what failed; wait *retry_after (0: none asked) */
};

/* What resp, the answer to the GET of url, means. */
enum poll_answer poll_http_answer(const struct httpc_response *resp, const char *url,
                                  int max_response, jv *doc, char *why, size_t whylen,
                                  double *retry_after);

#endif
