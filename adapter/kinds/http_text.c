/*
 * http_text — see http_text.h.
 */
#include "http_text.h"

#include "util.h"

#include <string.h>

void http_text_url_encode(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            buf_append(out, s, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(out, esc, 3);
        }
    }
}

void http_text_url_redacted(struct buf *out, const char *url)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    const char *path = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(path - host));
    buf_append(out, url, (size_t)(host - url));
    if (at)
        host = at + 1;
    buf_append(out, host, strcspn(host, "?#"));
}

void http_text_excerpt(struct buf *out, const char *body, size_t len, size_t max)
{
    if (len == 0) {
        buf_puts(out, "(empty body)");
        return;
    }
    size_t n = len < max ? len : max;
    if (n < len)
        while (n > 0 && ((unsigned char)body[n] & 0xC0) == 0x80)
            n--; /* body[n] continues a sequence: cut before its lead byte */
    size_t start = out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        bool space = c < 0x20 || c == 0x7f;
        if (space && out->len > start && out->data[out->len - 1] == ' ')
            continue; /* one space for a run of line breaks and tabs */
        buf_append(out, space ? " " : &body[i], 1);
    }
    while (out->len > start && out->data[out->len - 1] == ' ')
        out->data[--out->len] = '\0';
    if (n < len)
        buf_puts(out, "...");
}

bool http_text_header_name_ok(const char *name)
{
    if (name == NULL || *name == '\0')
        return false;
    for (; *name; name++) {
        unsigned char c = (unsigned char)*name;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr("!#$%&'*+-.^_`|~", c))))
            return false;
    }
    return true;
}

bool http_text_header_value_ok(const char *value)
{
    for (; *value; value++) {
        unsigned char c = (unsigned char)*value;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}
