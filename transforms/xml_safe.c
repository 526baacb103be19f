/*
 * xml_safe.c — hardened libxml2 parsing, and the XML character rules it shares.
 *
 * First xml_prescan counts each start tag's attributes and namespace
 * declarations on the raw bytes (libxml2 compares them pairwise before any
 * callback could count them). Then each parse gets its own push parser
 * context (which, unlike a pull parser, stops at the first error rather than
 * reading on with these callbacks off) whose SAX handler is wrapped: the
 * internal-subset callback stops the parser the moment a <!DOCTYPE> appears
 * (before any entity or attribute default is declared), the start/end
 * element callbacks count depth, namespace declarations in scope and
 * per-document totals and stop past a limit (before the element is built, so
 * a prefix lookup never walks more than the in-scope limit), and a structured
 * error callback on the context keeps the first error with its position.
 * Encoding errors are raised with no context, so during a parse the same
 * callback is also libxml2's handler for this thread (thread-local in
 * libxml2, saved and restored): nothing is ever printed to stderr. Per-parse
 * state hangs off ctxt->_private. The byte pre-pass lives in xml_prescan.c,
 * standalone serialization of an element in xml_standalone.c.
 */
#include "xml_safe.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/SAX2.h>
#include <libxml/globals.h>
#include <libxml/parser.h>

#include "xml_prescan.h"

/* Options: no network, no DTD loading/validation/defaults, no entity
 * substitution, no XInclude, no HUGE; errors reach only our handler. */
#define XML_SAFE_OPTIONS                                                                           \
    (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_BIG_LINES)

/* The limits with defaults filled in. */
struct xml_resolved_limits {
    size_t max_bytes;
    unsigned max_depth, max_attributes, max_namespaces, max_ns_in_scope;
    size_t max_attributes_total, max_namespaces_total;
};

struct xml_parse_state {
    struct xml_resolved_limits lim;
    unsigned depth;
    unsigned ns_in_scope;                             /* declarations on the open elements */
    unsigned ns_declared[XML_SAFE_MAX_DEPTH_CAP + 1]; /* by depth, to pop them */
    size_t attributes, namespaces;                    /* so far in the document */
    bool failed;
    char error[512];
};

__attribute__((format(printf, 4, 5))) static void
xml_state_fail(struct xml_parse_state *st, long line, long col, const char *fmt, ...)
{
    if (st->failed)
        return; /* the first error is the cause; later ones are its echoes */
    int n = snprintf(st->error, sizeof(st->error), "line %ld, column %ld: ", line, col);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error + n, sizeof(st->error) - (size_t)n, fmt, ap);
    va_end(ap);
    st->failed = true;
}

static void xml_on_error(void *ctx, xmlErrorPtr e)
{
    xmlParserCtxtPtr ctxt = ctx;
    if (!e || e->level < XML_ERR_ERROR)
        return;
    size_t n = e->message ? strlen(e->message) : 0;
    while (n > 0 && (e->message[n - 1] == '\n' || e->message[n - 1] == ' '))
        n--;
    const char *message = e->message ? e->message : "unknown XML error";
    if (e->code == XML_ERR_DOCUMENT_EMPTY) { /* the push parser's word for "no '<' at the start" */
        message = "Start tag expected, '<' not found";
        n = strlen(message);
    }
    long line = e->line, col = e->int2;
    if (line <= 0) { /* raised without a context (encoding): use the parser's position */
        line = xmlSAX2GetLineNumber(ctxt);
        col = xmlSAX2GetColumnNumber(ctxt);
    }
    xml_state_fail(ctxt->_private, line, col, "%.*s", (int)n, message);
}

static void xml_discard(void *ctx, const char *msg, ...) {}

/* libxml2's thread-local error handlers, replaced for the length of one parse. */
struct xml_error_guard {
    xmlStructuredErrorFunc structured;
    void *structured_ctx;
    xmlGenericErrorFunc generic;
    void *generic_ctx;
};

static void xml_guard_begin(struct xml_error_guard *g, xmlParserCtxtPtr ctxt)
{
    g->structured = xmlStructuredError;
    g->structured_ctx = xmlStructuredErrorContext;
    g->generic = xmlGenericError;
    g->generic_ctx = xmlGenericErrorContext;
    xmlSetStructuredErrorFunc(ctxt, xml_on_error);
    xmlSetGenericErrorFunc(NULL, xml_discard);
}

static void xml_guard_end(const struct xml_error_guard *g)
{
    xmlSetStructuredErrorFunc(g->structured_ctx, g->structured);
    xmlSetGenericErrorFunc(g->generic_ctx, g->generic);
}

static void xml_on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
                           const xmlChar *system_id)
{
    xmlParserCtxtPtr ctxt = ctx;
    xml_state_fail(ctxt->_private, xmlSAX2GetLineNumber(ctx), xmlSAX2GetColumnNumber(ctx),
                   "document type declaration (<!DOCTYPE %s>) not allowed: SOAP forbids DTDs "
                   "and entity declarations",
                   (const char *)name);
    xmlStopParser(ctxt);
}

/* Is the element over a limit? Fills st's error if so. */
static bool xml_over_limit(xmlParserCtxtPtr ctxt, const xmlChar *localname, const xmlChar *prefix,
                           unsigned nb_namespaces, unsigned nb_attributes)
{
    struct xml_parse_state *st = ctxt->_private;
    long line = xmlSAX2GetLineNumber(ctxt), col = xmlSAX2GetColumnNumber(ctxt);
    const char *p = prefix ? (const char *)prefix : "", *colon = prefix ? ":" : "";
    if (st->depth > st->lim.max_depth)
        xml_state_fail(st, line, col, "elements nested deeper than the limit of %u",
                       st->lim.max_depth);
    else if (st->ns_in_scope + nb_namespaces > st->lim.max_ns_in_scope)
        xml_state_fail(st, line, col,
                       "element <%s%s%s> has more than %u namespace declarations in scope (on it "
                       "and its ancestors), the limit",
                       p, colon, (const char *)localname, st->lim.max_ns_in_scope);
    else if ((st->attributes += nb_attributes) > st->lim.max_attributes_total)
        xml_state_fail(st, line, col,
                       "document has more than %zu attributes, the limit for its size",
                       st->lim.max_attributes_total);
    else if ((st->namespaces += nb_namespaces) > st->lim.max_namespaces_total)
        xml_state_fail(st, line, col,
                       "document has more than %zu namespace declarations, the limit for its size",
                       st->lim.max_namespaces_total);
    else
        return false;
    return true;
}

static void xml_on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                         const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
                         int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct xml_parse_state *st = ctxt->_private;
    st->depth++;
    if (xml_over_limit(ctxt, localname, prefix, (unsigned)nb_namespaces, (unsigned)nb_attributes)) {
        xmlStopParser(ctxt);
        return;
    }
    st->ns_declared[st->depth] = (unsigned)nb_namespaces;
    st->ns_in_scope += (unsigned)nb_namespaces;
    xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
                          nb_defaulted, attributes);
}

static void xml_on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                       const xmlChar *uri)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct xml_parse_state *st = ctxt->_private;
    st->ns_in_scope -= st->ns_declared[st->depth];
    st->depth--;
    xmlSAX2EndElementNs(ctx, localname, prefix, uri);
}

#define XML_PICK(field, fallback) (lim && lim->field ? lim->field : (fallback))

static void xml_limits_resolve(const struct xml_limits *lim, struct xml_resolved_limits *r)
{
    r->max_bytes = XML_PICK(max_bytes, XML_SAFE_DEFAULT_MAX_BYTES);
    if (r->max_bytes > INT_MAX)
        r->max_bytes = INT_MAX; /* libxml2 takes an int length */
    r->max_depth = XML_PICK(max_depth, XML_SAFE_DEFAULT_MAX_DEPTH);
    if (r->max_depth > XML_SAFE_MAX_DEPTH_CAP)
        r->max_depth = XML_SAFE_MAX_DEPTH_CAP;
    r->max_attributes = XML_PICK(max_attributes, XML_SAFE_DEFAULT_MAX_ATTRIBUTES);
    r->max_namespaces = XML_PICK(max_namespaces, XML_SAFE_DEFAULT_MAX_NAMESPACES);
    r->max_ns_in_scope = XML_PICK(max_ns_in_scope, XML_SAFE_DEFAULT_MAX_NS_IN_SCOPE);
    size_t mib = (r->max_bytes + ((size_t)1 << 20) - 1) >> 20;
    mib = mib ? mib : 1;
    r->max_attributes_total =
        XML_PICK(max_attributes_total, mib * XML_SAFE_DEFAULT_ATTRIBUTES_PER_MIB);
    r->max_namespaces_total =
        XML_PICK(max_namespaces_total, mib * XML_SAFE_DEFAULT_NAMESPACES_PER_MIB);
}

/* Turns a finished parse into the document or NULL + message. Takes doc. */
static xmlDocPtr xml_parse_verdict(xmlParserCtxtPtr ctxt, xmlDocPtr doc, char *err, size_t errlen)
{
    struct xml_parse_state *st = ctxt->_private;
    if (!st->failed && doc && (doc->intSubset || doc->extSubset))
        xml_state_fail(st, 1, 1, "document type declaration not allowed");
    if (!st->failed && (!doc || !ctxt->wellFormed || !ctxt->nsWellFormed)) {
        xmlErrorPtr e = xmlCtxtGetLastError(ctxt);
        if (e && e->message)
            xml_on_error(ctxt, e);
        xml_state_fail(st, 1, 1, "document is not well-formed XML");
    }
    if (!st->failed && !xmlDocGetRootElement(doc))
        xml_state_fail(st, 1, 1, "document has no root element");
    if (st->failed) {
        xmlFreeDoc(doc);
        snprintf(err, errlen, "%s", st->error);
        return NULL;
    }
    return doc;
}

xmlDocPtr xml_parse_safe(const char *buf, size_t len, const struct xml_limits *lim, char *err,
                         size_t errlen)
{
    struct xml_parse_state st = {0};
    xml_limits_resolve(lim, &st.lim);
    if (len > st.lim.max_bytes) {
        snprintf(err, errlen, "document is %zu bytes, over the limit of %zu bytes", len,
                 st.lim.max_bytes);
        return NULL;
    }
    if (len == 0 || !buf) {
        snprintf(err, errlen, "line 1, column 1: document is empty");
        return NULL;
    }
    if (xml_prescan(buf, len, st.lim.max_attributes, st.lim.max_namespaces, err, errlen) < 0)
        return NULL;
    /* The push parser, fed everything at once: unlike xmlCtxtReadMemory it
     * stops at the first fatal error, instead of reading on with SAX turned
     * off where these callbacks (and the limits they keep) no longer run.
     * It guesses the encoding from the first four bytes, given here. */
    int head = len < 4 ? (int)len : 4;
    xmlParserCtxtPtr ctxt = xmlCreatePushParserCtxt(NULL, NULL, buf, head, NULL);
    if (!ctxt) {
        snprintf(err, errlen, "XML parser: out of memory");
        return NULL;
    }
    xmlCtxtUseOptions(ctxt, XML_SAFE_OPTIONS);
    ctxt->_private = &st;
    ctxt->sax->serror = xml_on_error;
    ctxt->sax->internalSubset = xml_on_doctype;
    ctxt->sax->externalSubset = NULL;
    ctxt->sax->startElementNs = xml_on_start;
    ctxt->sax->endElementNs = xml_on_end;
    struct xml_error_guard guard;
    xml_guard_begin(&guard, ctxt);
    xmlParseChunk(ctxt, buf + head, (int)(len - (size_t)head), 1);
    xml_guard_end(&guard);
    xmlDocPtr doc = ctxt->myDoc;
    ctxt->myDoc = NULL;
    doc = xml_parse_verdict(ctxt, doc, err, errlen);
    xmlFreeParserCtxt(ctxt);
    return doc;
}

size_t xml_char_next(const char *s, size_t len, unsigned long *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned long c = u[0], min;
    size_t n;
    *cp = XML_CHAR_BAD_UTF8;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2, c &= 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, c &= 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return 1;
    }
    if (len < n)
        return 1;
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return 1;
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 1;
    *cp = c;
    return n;
}

bool xml_char_allowed(unsigned long cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

static bool xml_name_start_char(unsigned long c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (c >= 0xC0 && c <= 0xD6) || (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0x2FF) ||
           (c >= 0x370 && c <= 0x37D) || (c >= 0x37F && c <= 0x1FFF) ||
           (c >= 0x200C && c <= 0x200D) || (c >= 0x2070 && c <= 0x218F) ||
           (c >= 0x2C00 && c <= 0x2FEF) || (c >= 0x3001 && c <= 0xD7FF) ||
           (c >= 0xF900 && c <= 0xFDCF) || (c >= 0xFDF0 && c <= 0xFFFD) ||
           (c >= 0x10000 && c <= 0xEFFFF);
}

static bool xml_name_char(unsigned long c)
{
    return xml_name_start_char(c) || c == '-' || c == '.' || (c >= '0' && c <= '9') || c == 0xB7 ||
           (c >= 0x300 && c <= 0x36F) || (c >= 0x203F && c <= 0x2040);
}

bool xml_ncname_valid(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t at = 0; at < len;) {
        unsigned long c;
        bool first = at == 0;
        at += xml_char_next(s + at, len - at, &c);
        if (c == XML_CHAR_BAD_UTF8 || !(first ? xml_name_start_char(c) : xml_name_char(c)))
            return false;
    }
    return true;
}
