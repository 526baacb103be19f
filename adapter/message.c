/*
 * message — see message.h. Small and boring on purpose: every field is owned
 * by the message and freed by message_free.
 */
#include "message.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct message *message_new(void)
{
    return xcalloc(1, sizeof(struct message));
}

void message_free(struct message *m)
{
    if (m == NULL)
        return;
    free(m->exchange);
    free(m->routing_key);
    free(m->content_type);
    free(m->message_id);
    free(m->correlation_id);
    free(m->reply_to);
    for (size_t i = 0; i < m->n_headers; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    free(m->body);
    free(m);
}

void message_set(char **field, const char *value)
{
    free(*field);
    *field = xstrdup(value);
}

void message_set_body(struct message *m, const void *body, size_t len)
{
    char *copy = xmalloc(len + 1);
    if (len)
        memcpy(copy, body, len);
    copy[len] = '\0';
    message_take_body(m, copy, len);
}

void message_take_body(struct message *m, char *body, size_t len)
{
    free(m->body);
    m->body = body;
    m->body_len = len;
}

void message_set_header(struct message *m, const char *name, const char *value)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        if (strcasecmp(m->headers[i].name, name) == 0) {
            message_set(&m->headers[i].value, value);
            return;
        }
    }
    m->headers = xrealloc(m->headers, (m->n_headers + 1) * sizeof(*m->headers));
    m->headers[m->n_headers++] = (struct header){xstrdup(name), xstrdup(value)};
}

const char *message_header(const struct message *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (strcasecmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return NULL;
}

const char *message_caller_correlation_id(const struct message *m)
{
    const char *caller = message_header(m, "x-correlation-id");
    return caller ? caller : m->correlation_id;
}

bool message_shortstr_ok(const char *s)
{
    return s == NULL || strlen(s) <= MESSAGE_SHORTSTR_MAX;
}

bool message_content_type_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MESSAGE_SHORTSTR_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return false;
    return true;
}

/* Bytes a short string property takes on the wire (length byte + text). */
static size_t shortstr_size(const char *s)
{
    return s ? 1 + strlen(s) : 0;
}

int message_check(const struct message *m, char *why, size_t whylen)
{
    static const struct {
        const char *name;
        size_t offset;
    } fields[] = {
        {"exchange", offsetof(struct message, exchange)},
        {"routing key", offsetof(struct message, routing_key)},
        {"content type", offsetof(struct message, content_type)},
        {"message id", offsetof(struct message, message_id)},
        {"correlation id", offsetof(struct message, correlation_id)},
        {"reply_to", offsetof(struct message, reply_to)},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *v = *(char *const *)((const char *)m + fields[i].offset);
        if (!message_shortstr_ok(v)) {
            snprintf(why, whylen, "the %s is %zu bytes; AMQP allows %d", fields[i].name, strlen(v),
                     MESSAGE_SHORTSTR_MAX);
            return -1;
        }
        total += shortstr_size(v);
    }
    if (m->content_type && !message_content_type_ok(m->content_type)) {
        snprintf(why, whylen, "the content type must be 1 to %d printable ASCII characters",
                 MESSAGE_SHORTSTR_MAX);
        return -1;
    }
    for (size_t i = 0; i < m->n_headers; i++) {
        size_t n = strlen(m->headers[i].name);
        if (n == 0 || n > MESSAGE_SHORTSTR_MAX) {
            snprintf(why, whylen, "header name of %zu bytes; AMQP allows 1 to %d", n,
                     MESSAGE_SHORTSTR_MAX);
            return -1;
        }
        total += 1 + n + 1 + 4 + strlen(m->headers[i].value);
    }
    if (total > MESSAGE_PROPERTIES_MAX) {
        snprintf(why, whylen, "properties and headers take %zu bytes; at most %d are carried",
                 total, MESSAGE_PROPERTIES_MAX);
        return -1;
    }
    return 0;
}
