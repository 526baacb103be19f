/*
 * file_message — from what file_job.c read to the message it publishes: a
 * record transformed and keyed (the same code in the check pass, so a record
 * that cannot be published fails the check and nothing of its file goes
 * out), a record's message with its ids and headers, and the dead-letter
 * copy of a malformed file. No I/O and no state: the job owns the file.
 */
#include "file_in.h"

#include "inbound.h"
#include "jq_transform.h"
#include "message.h"
#include "route.h"
#include "template.h"
#include "util.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTING_KEY_MAX 255

struct key_ctx {
    const char *filename;
    const char *body;
    size_t len;
    json_t *json;
    char buf[512];
};

static const char *key_lookup(void *arg, const char *name, char *why, size_t whylen)
{
    struct key_ctx *k = arg;
    if (strcmp(name, "filename") == 0)
        return k->filename;
    if (k->json == NULL && strncmp(name, "json.", 5) == 0) /* parsed once, when first asked */
        k->json = json_loadb(k->body, k->len, JSON_DECODE_ANY, NULL);
    return inbound_json_placeholder(k->json, name, "the record is not JSON", k->buf, sizeof(k->buf),
                                    why, whylen);
}

int file_message_prepare(const struct file_in *fi, const char *filename, struct file_record *rec,
                         char **body, size_t *len, char **key, char *err, size_t errlen)
{
    const struct route *r = fi->r;
    *body = rec->body;
    *len = rec->len;
    rec->body = NULL;
    *key = NULL;
    if (r->transform != NULL) {
        char why[512];
        char *out = transform_apply(r->transform, *body, *len, len, why, sizeof(why));
        free(*body);
        *body = out;
        if (out == NULL) {
            snprintf(err, errlen, "record %" PRIu64 " (line %lu): transform failed: %s", rec->index,
                     rec->line, why);
            return -1;
        }
        if (*len > (size_t)fi->o->max_message) { /* without a transform file_records checks */
            snprintf(err, errlen,
                     "record %" PRIu64 " (line %lu): the transform made it %zu bytes, larger "
                     "than max_message (%d bytes), the largest message this route publishes",
                     rec->index, rec->line, *len, fi->o->max_message);
            return -1;
        }
    }
    if (!fi->key_has_json && !template_has_placeholders(r->routing_key)) {
        *key = xstrdup(r->routing_key);
        return 0;
    }
    struct key_ctx k = {.filename = filename, .body = *body, .len = *len};
    char why[512];
    *key = template_expand(r->routing_key, key_lookup, &k, why, sizeof(why));
    json_decref(k.json);
    if (*key == NULL || strlen(*key) > ROUTING_KEY_MAX) {
        snprintf(err, errlen, "record %" PRIu64 " (line %lu): cannot build the routing key: %s",
                 rec->index, rec->line, *key ? "longer than 255 bytes" : why);
        free(*key);
        *key = NULL;
        return -1;
    }
    return 0;
}

static const char *content_type(const struct file_in_opts *o)
{
    if (o->content_type != NULL)
        return o->content_type;
    switch (o->fmt) {
    case FILE_FORMAT_RAW:
        return "application/octet-stream";
    case FILE_FORMAT_XML:
        return "application/xml";
    default:
        return "application/json";
    }
}

struct message *file_message_record(const struct file_in *fi, const char *filename,
                                    const char *prefix, uint64_t index, char *body, size_t len,
                                    char *key)
{
    char id[64], text[24];
    snprintf(id, sizeof(id), "%s:%" PRIu64, prefix, index);
    struct inbound_ids ids = {.message_id = id, .correlation_id = prefix};
    struct message *m = inbound_message(fi->r, body, len, content_type(fi->o), &ids);
    m->routing_key = key;
    /* a name from readdir: at most NAME_MAX bytes, well within a header value */
    message_set_header(m, "x-sidecar-filename", filename);
    if (file_format_splits(fi->o->fmt, fi->o->split)) {
        snprintf(text, sizeof(text), "%" PRIu64, index);
        message_set_header(m, "x-sidecar-record", text);
    }
    return m;
}

struct message *file_message_dead_copy(const struct file_in *fi, const char *filename,
                                       const char *prefix, const char *error, char *body,
                                       size_t len, const char *no_body)
{
    const struct file_in_opts *o = fi->o;
    static const char *const types[] = {"application/octet-stream", "application/json",
                                        "application/x-ndjson", "text/csv", "application/xml"};
    const char *ctype =
        o->fmt == FILE_FORMAT_RAW && o->content_type ? o->content_type : types[o->fmt];
    struct inbound_ids ids = {.message_id = prefix, .correlation_id = prefix};
    struct message *m = inbound_message(fi->r, body, len, ctype, &ids);
    message_set(&m->exchange, fi->r->dlx);
    message_set(&m->routing_key, fi->r->dlq_key);
    char *why = xasprintf("malformed %s file \"%s\": %s%s%s%s", o->format, filename, error,
                          no_body ? " (" : "", no_body ? no_body : "", no_body ? ")" : "");
    message_set_header(m, "x-sidecar-error", why);
    message_set_header(m, "x-sidecar-filename", filename);
    free(why);
    return m;
}
