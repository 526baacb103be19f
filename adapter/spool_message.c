/*
 * spool_message — see spool_message.h.
 */
#include "spool_message.h"

#include "message.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_VERSION 1
#define UNSET          0xffffffffu
#define HEADERS_MAX    4096 /* far above what message_check lets through */

static void put_u32(struct buf *out, uint32_t v)
{
    unsigned char b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    buf_append(out, b, sizeof(b));
}

static void put_str(struct buf *out, const char *s)
{
    if (s == NULL) {
        put_u32(out, UNSET);
        return;
    }
    put_u32(out, (uint32_t)strlen(s));
    buf_append(out, s, strlen(s));
}

void spool_message_encode(const struct message *m, struct buf *out)
{
    unsigned char version = FORMAT_VERSION;
    buf_append(out, &version, 1);
    const char *strings[] = {m->exchange,   m->routing_key,    m->content_type,
                             m->message_id, m->correlation_id, m->reply_to};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        put_str(out, strings[i]);
    put_u32(out, (uint32_t)((uint64_t)m->timestamp & 0xffffffffu));
    put_u32(out, (uint32_t)((uint64_t)m->timestamp >> 32));
    put_u32(out, (uint32_t)m->n_headers);
    for (size_t i = 0; i < m->n_headers; i++) {
        put_str(out, m->headers[i].name);
        put_str(out, m->headers[i].value);
    }
    put_u32(out, (uint32_t)m->body_len);
    buf_append(out, m->body ? m->body : "", m->body_len);
}

struct reader {
    const unsigned char *p;
    size_t left;
    bool bad;
};

static uint32_t get_u32(struct reader *r)
{
    if (r->bad || r->left < 4) {
        r->bad = true;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | r->p[i];
    r->p += 4;
    r->left -= 4;
    return v;
}

/* A string of at most max bytes (NULL when unset); NULL with r->bad on damage. */
static char *get_str(struct reader *r, size_t max)
{
    uint32_t len = get_u32(r);
    if (r->bad || len == UNSET)
        return NULL;
    if (len > max || len > r->left || memchr(r->p, '\0', len) != NULL) {
        r->bad = true;
        return NULL;
    }
    char *s = xstrndup((const char *)r->p, len);
    r->p += len;
    r->left -= len;
    return s;
}

struct message *spool_message_decode(const char *data, size_t len, char *why, size_t whylen)
{
    struct reader r = {.p = (const unsigned char *)data, .left = len};
    if (len < 1 || data[0] != FORMAT_VERSION) {
        snprintf(why, whylen, "not a spooled message (format %d)", len ? data[0] : -1);
        return NULL;
    }
    r.p++;
    r.left--;
    struct message *m = message_new();
    char **strings[] = {&m->exchange,   &m->routing_key,    &m->content_type,
                        &m->message_id, &m->correlation_id, &m->reply_to};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        *strings[i] = get_str(&r, MESSAGE_SHORTSTR_MAX);
    uint64_t low = get_u32(&r), high = get_u32(&r);
    m->timestamp = (int64_t)(low | high << 32);
    uint32_t n = get_u32(&r);
    if (n > HEADERS_MAX)
        r.bad = true;
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        char *name = get_str(&r, MESSAGE_SHORTSTR_MAX);
        char *value = get_str(&r, MESSAGE_PROPERTIES_MAX);
        if (name && value)
            message_set_header(m, name, value);
        else
            r.bad = true;
        free(name);
        free(value);
    }
    uint32_t body_len = get_u32(&r);
    if (!r.bad && body_len == r.left) {
        message_set_body(m, r.p, body_len);
        return m;
    }
    snprintf(why, whylen, "a spooled message is cut short or damaged (%zu bytes)", len);
    message_free(m);
    return NULL;
}
