/*
 * message — see message.h. Small and boring on purpose: every field is owned
 * by the message and freed by message_free.
 */
#include "message.h"

#include "util.h"

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
