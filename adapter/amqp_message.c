/*
 * amqp_message — see amqp_message.h.
 */
#include "amqp_message.h"

#include "message.h"
#include "util.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *bytes_dup(amqp_bytes_t b)
{
    return xstrndup(b.bytes ? b.bytes : "", b.len);
}

char *amqp_field_text(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return bytes_dup(v->value.bytes);
    case AMQP_FIELD_KIND_I8:
        return xasprintf("%d", v->value.i8);
    case AMQP_FIELD_KIND_U8:
        return xasprintf("%u", v->value.u8);
    case AMQP_FIELD_KIND_I16:
        return xasprintf("%d", v->value.i16);
    case AMQP_FIELD_KIND_U16:
        return xasprintf("%u", v->value.u16);
    case AMQP_FIELD_KIND_I32:
        return xasprintf("%d", v->value.i32);
    case AMQP_FIELD_KIND_U32:
        return xasprintf("%u", v->value.u32);
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return xasprintf("%lld", (long long)v->value.i64);
    case AMQP_FIELD_KIND_U64:
        return xasprintf("%llu", (unsigned long long)v->value.u64);
    case AMQP_FIELD_KIND_BOOLEAN:
        return xstrdup(v->value.boolean ? "true" : "false");
    default:
        return NULL;
    }
}

struct message *amqp_message_convert(const amqp_message_t *raw)
{
    const amqp_basic_properties_t *p = &raw->properties;
    struct message *m = message_new();
    message_set_body(m, raw->body.bytes, raw->body.len);
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        m->content_type = bytes_dup(p->content_type);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        m->message_id = bytes_dup(p->message_id);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        m->correlation_id = bytes_dup(p->correlation_id);
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        m->reply_to = bytes_dup(p->reply_to);
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
        m->timestamp = (int64_t)p->timestamp;
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < p->headers.num_entries; i++) {
            const amqp_table_entry_t *e = &p->headers.entries[i];
            char *value = amqp_field_text(&e->value);
            if (value == NULL)
                continue;
            char *key = bytes_dup(e->key);
            message_set_header(m, key, value);
            free(key);
            free(value);
        }
    }
    return m;
}

/* ---- bounds before encoding --------------------------------------------------- */

#define SHORTSTR_MAX   255
#define TOO_BIG        SIZE_MAX
#define FRAME_OVERHEAD 8  /* type, channel, size, frame-end */
#define HEADER_FIXED   14 /* class, weight, body size, property flags */

static size_t table_size(const amqp_table_t *t, int depth);

/* Encoded size of one field value (rabbitmq-c's amqp_table.c), or TOO_BIG. */
static size_t value_size(const amqp_field_value_t *v, int depth)
{
    if (depth > 32)
        return TOO_BIG; /* deeper than anything sane; rabbitmq-c would recurse */
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
        return 1;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
        return 2;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_F32:
        return 4;
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_F64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return 8;
    case AMQP_FIELD_KIND_DECIMAL:
        return 5;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return 4 + v->value.bytes.len;
    case AMQP_FIELD_KIND_VOID:
        return 0;
    case AMQP_FIELD_KIND_TABLE:
        return table_size(&v->value.table, depth + 1);
    case AMQP_FIELD_KIND_ARRAY: {
        size_t n = 4;
        for (int i = 0; i < v->value.array.num_entries; i++) {
            size_t e = value_size(&v->value.array.entries[i], depth + 1);
            if (e == TOO_BIG)
                return TOO_BIG;
            n += 1 + e;
        }
        return n;
    }
    default:
        return TOO_BIG; /* a kind rabbitmq-c refuses to encode */
    }
}

static size_t table_size(const amqp_table_t *t, int depth)
{
    size_t n = 4;
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len == 0 || e->key.len > SHORTSTR_MAX)
            return TOO_BIG;
        size_t v = value_size(&e->value, depth);
        if (v == TOO_BIG)
            return TOO_BIG;
        n += 1 + e->key.len + 1 + v;
    }
    return n;
}

int amqp_publish_check(amqp_bytes_t exchange, amqp_bytes_t routing_key,
                       const amqp_basic_properties_t *props, size_t frame_max, char *why,
                       size_t whylen)
{
    if (exchange.len > SHORTSTR_MAX || routing_key.len > SHORTSTR_MAX) {
        snprintf(why, whylen, "the %s is %zu bytes; AMQP allows %d",
                 exchange.len > SHORTSTR_MAX ? "exchange name" : "routing key",
                 exchange.len > SHORTSTR_MAX ? exchange.len : routing_key.len, SHORTSTR_MAX);
        return -1;
    }
    static const struct {
        amqp_flags_t flag;
        size_t offset;
        const char *name;
    } shortstrs[] = {
        {AMQP_BASIC_CONTENT_TYPE_FLAG, offsetof(amqp_basic_properties_t, content_type),
         "content type"},
        {AMQP_BASIC_CONTENT_ENCODING_FLAG, offsetof(amqp_basic_properties_t, content_encoding),
         "content encoding"},
        {AMQP_BASIC_CORRELATION_ID_FLAG, offsetof(amqp_basic_properties_t, correlation_id),
         "correlation id"},
        {AMQP_BASIC_REPLY_TO_FLAG, offsetof(amqp_basic_properties_t, reply_to), "reply_to"},
        {AMQP_BASIC_EXPIRATION_FLAG, offsetof(amqp_basic_properties_t, expiration), "expiration"},
        {AMQP_BASIC_MESSAGE_ID_FLAG, offsetof(amqp_basic_properties_t, message_id), "message id"},
        {AMQP_BASIC_TYPE_FLAG, offsetof(amqp_basic_properties_t, type), "type"},
        {AMQP_BASIC_USER_ID_FLAG, offsetof(amqp_basic_properties_t, user_id), "user id"},
        {AMQP_BASIC_APP_ID_FLAG, offsetof(amqp_basic_properties_t, app_id), "app id"},
        {AMQP_BASIC_CLUSTER_ID_FLAG, offsetof(amqp_basic_properties_t, cluster_id), "cluster id"},
    };
    size_t size = FRAME_OVERHEAD + HEADER_FIXED;
    for (size_t i = 0; i < sizeof(shortstrs) / sizeof(shortstrs[0]); i++) {
        if (!(props->_flags & shortstrs[i].flag))
            continue;
        const amqp_bytes_t *b = (const amqp_bytes_t *)((const char *)props + shortstrs[i].offset);
        if (b->len > SHORTSTR_MAX) {
            snprintf(why, whylen, "the %s is %zu bytes; AMQP allows %d", shortstrs[i].name, b->len,
                     SHORTSTR_MAX);
            return -1;
        }
        size += 1 + b->len;
    }
    size += 1 + 1 + 8; /* delivery mode, priority, timestamp (at most) */
    if (props->_flags & AMQP_BASIC_HEADERS_FLAG) {
        size_t t = table_size(&props->headers, 0);
        if (t == TOO_BIG) {
            snprintf(why, whylen,
                     "the headers cannot be encoded (a name over %d bytes, an unknown field "
                     "kind, or nesting too deep)",
                     SHORTSTR_MAX);
            return -1;
        }
        size += t;
    }
    if (size > frame_max) {
        snprintf(why, whylen,
                 "properties and headers take %zu bytes; the connection's frames hold %zu", size,
                 frame_max);
        return -1;
    }
    return 0;
}

/* ---- what the consumer sends back ------------------------------------------------ */

static bool key_is(amqp_bytes_t k, const char *s)
{
    return k.len == strlen(s) && memcmp(k.bytes, s, k.len) == 0;
}

amqp_table_entry_t *amqp_copy_properties(const amqp_message_t *raw, const char *error, int attempts,
                                         const char *route, amqp_basic_properties_t *props)
{
    *props = raw->properties;
    const amqp_table_t *old = &raw->properties.headers;
    int n_old = (props->_flags & AMQP_BASIC_HEADERS_FLAG) ? old->num_entries : 0;
    amqp_table_entry_t *e = xcalloc((size_t)n_old + 3, sizeof(*e));
    int n = 0;
    for (int i = 0; i < n_old; i++) {
        amqp_bytes_t k = old->entries[i].key;
        if (!key_is(k, "x-sidecar-error") && !key_is(k, "x-sidecar-attempts") &&
            !key_is(k, "x-sidecar-route"))
            e[n++] = old->entries[i];
    }
    e[n++] = (amqp_table_entry_t){
        amqp_cstring_bytes("x-sidecar-error"),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(error)}};
    e[n++] = (amqp_table_entry_t){amqp_cstring_bytes("x-sidecar-attempts"),
                                  {.kind = AMQP_FIELD_KIND_I64, .value.i64 = attempts}};
    e[n++] = (amqp_table_entry_t){
        amqp_cstring_bytes("x-sidecar-route"),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(route)}};
    props->_flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props->headers = (amqp_table_t){.num_entries = n, .entries = e};
    return e;
}

amqp_table_entry_t *amqp_reply_properties(const struct message *reply,
                                          const struct message *request, const char *app_id,
                                          amqp_basic_properties_t *props)
{
    amqp_table_entry_t *e = xcalloc(reply->n_headers + 1, sizeof(*e));
    for (size_t i = 0; i < reply->n_headers; i++)
        e[i] = (amqp_table_entry_t){amqp_cstring_bytes(reply->headers[i].name),
                                    {.kind = AMQP_FIELD_KIND_UTF8,
                                     .value.bytes = amqp_cstring_bytes(reply->headers[i].value)}};
    *props = (amqp_basic_properties_t){0};
    props->_flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props->headers = (amqp_table_t){.num_entries = (int)reply->n_headers, .entries = e};
    if (reply->content_type) {
        props->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props->content_type = amqp_cstring_bytes(reply->content_type);
    }
    if (request->correlation_id) {
        props->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props->correlation_id = amqp_cstring_bytes(request->correlation_id);
    }
    if (request->message_id) {
        props->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props->message_id = amqp_cstring_bytes(request->message_id);
    }
    props->_flags |= AMQP_BASIC_APP_ID_FLAG;
    props->app_id = amqp_cstring_bytes(app_id);
    return e;
}

amqp_table_entry_t *amqp_publish_properties(const struct message *m, const char *correlation,
                                            const char *app_id, const char *route,
                                            amqp_basic_properties_t *props)
{
    *props = (amqp_basic_properties_t){0};
    props->_flags =
        AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props->timestamp = (uint64_t)(m->timestamp ? m->timestamp : time(NULL));
    if (m->content_type) {
        props->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props->content_type = amqp_cstring_bytes(m->content_type);
    }
    if (m->message_id) {
        props->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props->message_id = amqp_cstring_bytes(m->message_id);
    }
    if (correlation) {
        props->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props->correlation_id = amqp_cstring_bytes(correlation);
    }
    if (m->reply_to) {
        props->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props->reply_to = amqp_cstring_bytes(m->reply_to);
    }
    if (app_id) {
        props->_flags |= AMQP_BASIC_APP_ID_FLAG;
        props->app_id = amqp_cstring_bytes(app_id);
    }
    amqp_table_entry_t *entries = xcalloc(m->n_headers + 1, sizeof(*entries));
    int n = 0;
    for (size_t i = 0; i < m->n_headers; i++)
        entries[n++] = (amqp_table_entry_t){
            amqp_cstring_bytes(m->headers[i].name),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(m->headers[i].value)}};
    if (route && message_header(m, "x-sidecar-route") == NULL)
        entries[n++] = (amqp_table_entry_t){
            amqp_cstring_bytes("x-sidecar-route"),
            {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(route)}};
    props->headers = (amqp_table_t){.num_entries = n, .entries = entries};
    return entries;
}

static bool is_park_header(amqp_bytes_t k)
{
    static const char *const ours[] = {AMQP_PARK_ERROR, AMQP_PARK_EXCHANGE, AMQP_PARK_ROUTING_KEY};
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        if (k.len == strlen(ours[i]) && memcmp(k.bytes, ours[i], k.len) == 0)
            return true;
    return false;
}

amqp_table_entry_t *amqp_park_properties(const amqp_message_t *returned, const char *reason,
                                         amqp_bytes_t exchange, amqp_bytes_t routing_key,
                                         amqp_basic_properties_t *props)
{
    *props = returned->properties;
    const amqp_table_t *old = &returned->properties.headers;
    int n_old = (props->_flags & AMQP_BASIC_HEADERS_FLAG) ? old->num_entries : 0;
    amqp_table_entry_t *entries = xcalloc((size_t)n_old + 3, sizeof(*entries));
    int n = 0;
    for (int i = 0; i < n_old; i++)
        if (!is_park_header(old->entries[i].key))
            entries[n++] = old->entries[i];
    entries[n++] = (amqp_table_entry_t){
        amqp_cstring_bytes(AMQP_PARK_ERROR),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(reason)}};
    entries[n++] = (amqp_table_entry_t){amqp_cstring_bytes(AMQP_PARK_EXCHANGE),
                                        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = exchange}};
    entries[n++] = (amqp_table_entry_t){amqp_cstring_bytes(AMQP_PARK_ROUTING_KEY),
                                        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = routing_key}};
    props->_flags |= AMQP_BASIC_HEADERS_FLAG;
    props->headers = (amqp_table_t){.num_entries = n, .entries = entries};
    return entries;
}
