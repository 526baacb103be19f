/*
 * poll_http — see poll_http.h. A response that is not JSON is reported with
 * jq's parse error (cut before the input it quotes) and an excerpt of the
 * body, so the log line stays short whatever the legacy side sent.
 */
#include "poll_http.h"

#include "config.h"
#include "http_text.h"
#include "message.h"
#include "template.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXCERPT_MAX 200

static const char *cursor_lookup(void *arg, const char *name, char *why, size_t whylen)
{
    struct buf *b = arg;
    return b->data ? b->data : "";
}

char *poll_http_url(const char *url_template, const char *cursor, char *err, size_t errlen)
{
    struct buf encoded = {0};
    http_text_url_encode(&encoded, cursor);
    char *url = template_expand(url_template, cursor_lookup, &encoded, err, errlen);
    buf_free(&encoded);
    return url;
}

int poll_http_start(struct legacy_client *client, const struct poll_http_get *g, httpc_done_fn done,
                    void *arg)
{
    struct header h[2 + 64];
    size_t n = 0;
    h[n++] = (struct header){"Accept", "application/json"};
    if (g->etag)
        h[n++] = (struct header){"If-None-Match", (char *)g->etag};
    for (size_t i = 0; i < g->headers->n && n < sizeof(h) / sizeof(h[0]); i++)
        h[n++] = (struct header){g->headers->names[i], g->headers->values[i]};
    struct httpc_request req = {
        .method = "GET",
        .url = g->url,
        .headers = h,
        .n_headers = n,
        .timeout = g->timeout,
        .max_response = g->max_response,
    };
    return legacy_client_start(client, &req, done, arg);
}

/* jq's reason why body is not JSON, and how it begins, into why. */
static void not_json(const struct httpc_response *resp, jv response, const char *where, char *why,
                     size_t whylen)
{
    jv msg = jv_invalid_get_msg(response);
    const char *text = jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "parse error";
    /* jq quotes the whole input after "(while parsing": keep the log line short */
    const char *quote = strstr(text, " (while parsing");
    int len = quote ? (int)(quote - text) : (int)strlen(text);
    struct buf ex = {0};
    http_text_excerpt(&ex, resp->body, resp->body_len, EXCERPT_MAX);
    snprintf(why, whylen, "the response of %s is not JSON: %.*s; it begins: %s", where,
             len > 300 ? 300 : len, text, ex.data);
    buf_free(&ex);
    jv_free(msg);
}

enum poll_answer poll_http_answer(const struct httpc_response *resp, const char *url,
                                  int max_response, jv *doc, char *why, size_t whylen,
                                  double *retry_after)
{
    enum poll_answer answer = POLL_ANSWER_FAILED;
    *retry_after = 0;
    struct buf where = {0};
    buf_puts(&where, "GET ");
    http_text_url_redacted(&where, url);
    if (resp->not_sent) {
        snprintf(why, whylen, "%s not sent: %s", where.data, resp->error);
    } else if (resp->status == 0) {
        snprintf(why, whylen, "%s %s: %s", where.data, resp->timed_out ? "timed out" : "failed",
                 resp->error ? resp->error : "no response");
    } else if (resp->status == 304 || resp->status == 204) {
        snprintf(why, whylen, "%s", resp->status == 304 ? "not modified" : "no content");
        answer = POLL_ANSWER_UNCHANGED;
    } else if (resp->status < 200 || resp->status >= 300) {
        struct buf ex = {0};
        http_text_excerpt(&ex, resp->body, resp->body_len, EXCERPT_MAX);
        snprintf(why, whylen, "HTTP %ld from %s: %s", resp->status, where.data, ex.data);
        buf_free(&ex);
        *retry_after = resp->retry_after;
    } else if (resp->truncated) {
        snprintf(why, whylen, "the response of %s is over max_response (%d bytes)", where.data,
                 max_response);
    } else {
        jv response = jv_parse_sized(resp->body, (int)resp->body_len);
        if (jv_is_valid(response)) {
            *doc = response;
            answer = POLL_ANSWER_JSON;
        } else {
            not_json(resp, response, where.data, why, whylen);
        }
    }
    buf_free(&where);
    return answer;
}
