/*
 * xml_prescan.c — per-element attribute and namespace counts, taken on the
 * raw input in one pass before libxml2 parses it (see xml_prescan.h).
 *
 * Why counting '=' is enough. libxml2's attribute loop for a start tag starts
 * at a '<' byte and keeps only attributes of the form  S name S? '=' S? quote
 * value quote;  the first error or a '>' between attributes ends the loop, and
 * a quoted value ends at its quote or at a '<' (an error). So the loop never
 * reads past the next '<', and each attribute or namespace declaration it
 * compares has its own '=' outside any value. Counting, from each '<', the
 * '=' outside values up to the next '<' or unquoted '>' is therefore an upper
 * bound of what libxml2 compares, whatever errors the input holds; the name
 * before each '=' says whether it declares a namespace. Comments and CDATA
 * sections are skipped only as far as libxml2 skips them: at a character it
 * would stop at, we count again from there.
 *
 * That reasoning needs bytes 0x22 0x27 0x3C 0x3D 0x3E to mean " ' < = > and
 * nothing else. They do in UTF-8 and the ASCII-compatible encodings (their
 * multi-byte characters use bytes >= 0x40 after the first); UTF-16 is read
 * as 16-bit units turned into that same form; every other encoding is refused,
 * as is a declaration that would switch encodings mid-document.
 */
#include "xml_prescan.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/encoding.h>

#include "xml_safe.h"

#define PRESCAN_NAME_MAX 64 /* bytes of an element name quoted in messages */

struct prescan {
    const unsigned char *s; /* the input, or its UTF-16 units as bytes (>= 0x80 as 0x80) */
    size_t n;
    bool utf8; /* bytes >= 0x80 are UTF-8 we can judge; else we cannot tell what they hold */
    unsigned max_attributes, max_namespaces;
    char *err;
    size_t errlen;
};

static bool prescan_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool prescan_starts(const struct prescan *p, size_t at, const char *text)
{
    size_t n = strlen(text);
    return p->n - at >= n && memcmp(p->s + at, text, n) == 0;
}

__attribute__((format(printf, 3, 4))) static int prescan_fail(struct prescan *p, size_t at,
                                                              const char *fmt, ...)
{
    long line = 1, col = 1;
    for (size_t i = 0; i < at; i++) {
        col++;
        if (p->s[i] == '\n')
            line++, col = 1;
    }
    int n = snprintf(p->err, p->errlen, "line %ld, column %ld: ", line, col);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The element name at `at`, printable ASCII only, for messages. */
static void prescan_name(const struct prescan *p, size_t at, char *out, size_t size)
{
    size_t o = 0;
    while (at < p->n && prescan_blank(p->s[at]))
        at++;
    for (; at < p->n && o + 1 < size && o < PRESCAN_NAME_MAX; at++) {
        unsigned char c = p->s[at];
        if (prescan_blank(c) || c == '>' || c == '/' || c == '<' || c == '[')
            break;
        out[o++] = c > 0x20 && c < 0x7F ? (char)c : '?';
    }
    out[o] = '\0';
}

/* ---- encodings --------------------------------------------------------- */

/* Encodings whose bytes 0x00-0x7F are ASCII and never part of a multi-byte
 * character, by name upper-cased without '-' and '_' (aliases of the same
 * encodings are harmless; anything else is refused). */
static bool prescan_transparent(const char *name, size_t len)
{
    static const char *const exact[] = {"UTF8",     "USASCII", "ASCII",      "KOI8R",     "KOI8U",
                                        "EUCJP",    "EUCKR",   "EUCCN",      "EUCTW",     "GBK",
                                        "GB2312",   "GB18030", "BIG5",       "BIG5HKSCS", "SJIS",
                                        "SHIFTJIS", "CP932",   "WINDOWS31J", "TIS620",    NULL};
    static const char *const numbered[] = {"ISO8859", "LATIN", "WINDOWS125", "CP125", NULL};
    char up[40];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '-' || name[i] == '_')
            continue;
        if (n + 1 >= sizeof(up))
            return false;
        up[n++] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    }
    up[n] = '\0';
    for (size_t i = 0; exact[i]; i++)
        if (!strcmp(up, exact[i]))
            return true;
    for (size_t i = 0; numbered[i]; i++) {
        size_t k = strlen(numbered[i]);
        if (n > k && !strncmp(up, numbered[i], k) && strspn(up + k, "0123456789") == n - k)
            return true;
    }
    return false;
}

static bool prescan_name_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && !strncasecmp(name, want, len);
}

/* Checks encoding="…" of an XML declaration at the start (libxml2 reads one
 * only there, and never past the first '>'). Every "encoding" in it is
 * checked, as libxml2's recovery may read any of them. utf16: the units'
 * own name ("UTF-16LE"/"UTF-16BE"), or NULL for a byte document. */
static int prescan_declaration(struct prescan *p, size_t at, const char *utf16)
{
    if (!prescan_starts(p, at, "<?xml") || p->n - at < 6 || !prescan_blank(p->s[at + 5]))
        return 0;
    const unsigned char *gt = memchr(p->s + at, '>', p->n - at);
    size_t end = gt ? (size_t)(gt - p->s) : p->n;
    for (size_t i = at + 5; i + 8 <= end; i++) {
        if (memcmp(p->s + i, "encoding", 8) != 0)
            continue;
        size_t j = i + 8;
        while (j < end && prescan_blank(p->s[j]))
            j++;
        if (j >= end || p->s[j++] != '=')
            continue;
        while (j < end && prescan_blank(p->s[j]))
            j++;
        if (j >= end || (p->s[j] != '"' && p->s[j] != '\''))
            continue;
        unsigned char quote = p->s[j++];
        const char *name = (const char *)p->s + j;
        while (j < end && p->s[j] != quote)
            j++;
        size_t len = (size_t)((const char *)p->s + j - name);
        /* libxml2 special-cases exactly "UTF-16"/"UTF16": no switch of decoder */
        bool same = prescan_name_is(name, len, "UTF-16") || prescan_name_is(name, len, "UTF16");
        bool ok = utf16 ? same || prescan_name_is(name, len, utf16)
                        : same || prescan_transparent(name, len);
        if (!ok) {
            char shown[41];
            size_t k = 0;
            for (; k < len && k + 1 < sizeof(shown); k++)
                shown[k] = name[k] > 0x20 && name[k] < 0x7F ? name[k] : '?';
            shown[k] = '\0';
            return prescan_fail(p, i,
                                "encoding \"%s\" is not accepted%s: use UTF-8 or UTF-16 (or an "
                                "ASCII-compatible encoding such as ISO-8859-1)",
                                shown, utf16 ? " in a UTF-16 document" : "");
        }
        if (!same && !prescan_name_is(name, len, "UTF-8") && !prescan_name_is(name, len, "UTF8") &&
            !prescan_name_is(name, len, "US-ASCII") && !prescan_name_is(name, len, "ASCII"))
            p->utf8 = false; /* e.g. Shift_JIS: bytes >= 0x80 are not UTF-8 */
    }
    return 0;
}

/* ---- markup ------------------------------------------------------------ */

/* The length of the character at `at` if libxml2 would read on past it inside
 * a comment or CDATA section, else 0 (it stops there and parses what follows
 * as content, so we must count it). */
static size_t prescan_plain_char(const struct prescan *p, size_t at)
{
    unsigned char c = p->s[at];
    if ((c >= 0x20 && c < 0x80) || c == '\t' || c == '\n' || c == '\r')
        return 1;
    if (c < 0x80 || !p->utf8)
        return 0;
    unsigned long cp;
    size_t n = xml_char_next((const char *)p->s + at, p->n - at, &cp);
    return cp != XML_CHAR_BAD_UTF8 && xml_char_allowed(cp) ? n : 0;
}

/* From `at` (just past "<!--" or "<![CDATA["): the offset past `close`, or of
 * the first character libxml2 would stop at. */
static size_t prescan_skip(const struct prescan *p, size_t at, const char *close)
{
    while (at < p->n) {
        if (prescan_starts(p, at, close))
            return at + strlen(close);
        size_t k = prescan_plain_char(p, at);
        if (k == 0)
            return at;
        at += k;
    }
    return at;
}

static bool prescan_is_xmlns(const unsigned char *name, size_t len)
{
    return (len == 5 && !memcmp(name, "xmlns", 5)) || (len > 6 && !memcmp(name, "xmlns:", 6));
}

/* Counts the '=' of the markup at lt ('<') up to the next '<' or unquoted '>',
 * by whether the name before each declares a namespace. *resume: where the
 * scan goes on. 0, or -1 over a limit. */
static int prescan_tag(struct prescan *p, size_t lt, size_t *resume)
{
    unsigned attributes = 0, namespaces = 0;
    size_t word = 0, word_len = 0, last = 0, last_len = 0; /* names, outside values */
    unsigned char quote = 0;
    bool after_eq = false;
    size_t at = lt + 1;
    for (; at < p->n; at++) {
        unsigned char c = p->s[at];
        if (c == '<')
            break;
        if (quote) {
            quote = c == quote ? 0 : quote;
            continue;
        }
        if (c == '>') {
            at++;
            break;
        }
        if (prescan_blank(c)) {
            if (word_len)
                last = word, last_len = word_len, word_len = 0;
            continue; /* blanks may separate a name, '=' and the value */
        }
        if (c == '=') {
            bool ns = word_len ? prescan_is_xmlns(p->s + word, word_len)
                               : prescan_is_xmlns(p->s + last, last_len);
            word_len = last_len = 0;
            after_eq = true;
            if (ns ? ++namespaces > p->max_namespaces : ++attributes > p->max_attributes) {
                char name[PRESCAN_NAME_MAX + 1];
                prescan_name(p, lt + 1, name, sizeof(name));
                return ns ? prescan_fail(p, lt,
                                         "start tag <%s> declares more than %u namespaces, the "
                                         "limit per element",
                                         name, p->max_namespaces)
                          : prescan_fail(p, lt,
                                         "start tag <%s> has more than %u attributes, the limit "
                                         "per element",
                                         name, p->max_attributes);
            }
            continue;
        }
        if ((c == '"' || c == '\'') && after_eq) {
            quote = c;
            after_eq = false;
            continue;
        }
        after_eq = false;
        if (word_len == 0)
            word = at;
        word_len = at - word + 1;
    }
    *resume = at;
    return 0;
}

static int prescan_markup(struct prescan *p, size_t at)
{
    while (at < p->n) {
        const unsigned char *lt = memchr(p->s + at, '<', p->n - at);
        if (!lt)
            return 0;
        at = (size_t)(lt - p->s);
        if (prescan_starts(p, at, "<!--")) {
            at = prescan_skip(p, at + 4, "-->");
        } else if (prescan_starts(p, at, "<![CDATA[")) {
            at = prescan_skip(p, at + 9, "]]>");
        } else if (prescan_tag(p, at, &at) < 0) {
            return -1;
        }
    }
    return 0;
}

/* UTF-16 units as bytes: ASCII stays, everything else becomes 0x80. */
static unsigned char *prescan_units(const unsigned char *s, size_t len, bool little_endian,
                                    size_t *n)
{
    *n = len / 2;
    unsigned char *out = malloc(*n ? *n : 1);
    for (size_t i = 0; out && i < *n; i++) {
        unsigned u = little_endian ? s[2 * i] | (unsigned)s[2 * i + 1] << 8
                                   : (unsigned)s[2 * i] << 8 | s[2 * i + 1];
        out[i] = u < 0x80 ? (unsigned char)u : 0x80;
    }
    return out;
}

int xml_prescan(const char *buf, size_t len, unsigned max_attributes, unsigned max_namespaces,
                char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)buf;
    struct prescan p = {.s = s,
                        .n = len,
                        .utf8 = true,
                        .max_attributes = max_attributes,
                        .max_namespaces = max_namespaces,
                        .err = err,
                        .errlen = errlen};
    /* the same first guess libxml2 makes, from the same four bytes */
    xmlCharEncoding enc = len >= 4 ? xmlDetectCharEncoding(s, 4) : XML_CHAR_ENCODING_NONE;
    if (enc == XML_CHAR_ENCODING_NONE || enc == XML_CHAR_ENCODING_UTF8) {
        size_t bom = len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0;
        return prescan_declaration(&p, bom, NULL) < 0 ? -1 : prescan_markup(&p, 0);
    }
    if (enc != XML_CHAR_ENCODING_UTF16LE && enc != XML_CHAR_ENCODING_UTF16BE) {
        const char *name = xmlGetCharEncodingName(enc);
        return prescan_fail(&p, 0, "documents in %s are not accepted: use UTF-8 or UTF-16",
                            name ? name : "this encoding");
    }
    bool le = enc == XML_CHAR_ENCODING_UTF16LE;
    unsigned char *units = prescan_units(s, len, le, &p.n);
    if (!units) {
        snprintf(err, errlen, "XML pre-scan: out of memory");
        return -1;
    }
    p.s = units;
    p.utf8 = false;
    bool bom = (le && s[0] == 0xFF && s[1] == 0xFE) || (!le && s[0] == 0xFE && s[1] == 0xFF);
    int rc = prescan_declaration(&p, bom ? 1 : 0, le ? "UTF-16LE" : "UTF-16BE");
    if (rc == 0)
        rc = prescan_markup(&p, 0);
    free(units);
    return rc;
}
