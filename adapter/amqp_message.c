/*
 * amqp_message — see amqp_message.h.
 */
#include "amqp_message.h"

#include "message.h"
#include "util.h"

#include <stdlib.h>

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
