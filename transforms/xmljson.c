/*
 * xmljson.c — XML <-> JSON by the convention written down in XMLJSON.md.
 *
 * XML -> JSON walks a libxml2 tree and never fails except for memory.
 * JSON -> XML builds a libxml2 tree in three passes per object (namespace
 * declarations, so the element's own prefix can resolve; then attributes and
 * "#text"; then child elements) and serializes it; everything XML cannot
 * express is refused with the JSON path of the culprit, e.g.
 * "/Order/Line[2]/@qty: ...". Attributes and namespace declarations are
 * bounded per element and in scope as xml_safe bounds them, so building stays
 * linear and never makes XML the parser would refuse for them.
 */
#include "xmljson.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xml_safe.h"

#define XMLJSON_XMLNS_URI "http://www.w3.org/2000/xmlns/"

/* ---- XML -> JSON ------------------------------------------------------ */

/* "prefix:local" or "local" in malloc'd memory; lead is prepended ("@" or ""). */
static char *xj_qname(const char *lead, const xmlChar *prefix, const xmlChar *local)
{
    size_t n =
        strlen(lead) + (prefix ? (size_t)xmlStrlen(prefix) + 1 : 0) + (size_t)xmlStrlen(local) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s%s", lead, prefix ? (const char *)prefix : "", prefix ? ":" : "",
                 (const char *)local);
    return s;
}

static bool xj_is_blank(const xmlChar *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

static bool xj_is_text(xmlNodePtr n)
{
    return n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE;
}

/* The element's text and CDATA joined; whitespace-only pieces dropped when
 * drop_blank. A new JSON string, or NULL when empty (or out of memory). */
static json_t *xj_text(xmlNodePtr el, bool drop_blank)
{
    size_t total = 0;
    for (xmlNodePtr c = el->children; c; c = c->next)
        if (xj_is_text(c) && c->content && !(drop_blank && xj_is_blank(c->content)))
            total += (size_t)xmlStrlen(c->content);
    if (total == 0)
        return NULL;
    char *buf = malloc(total);
    if (!buf)
        return NULL;
    size_t at = 0;
    for (xmlNodePtr c = el->children; c; c = c->next) {
        if (xj_is_text(c) && c->content && !(drop_blank && xj_is_blank(c->content))) {
            size_t n = (size_t)xmlStrlen(c->content);
            memcpy(buf + at, c->content, n);
            at += n;
        }
    }
    json_t *s = json_stringn(buf, total);
    free(buf);
    return s;
}

static bool xj_has_element_child(xmlNodePtr el)
{
    for (xmlNodePtr c = el->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            return true;
    return false;
}

/* Sets obj["@xmlns[:p]"] = href. 0 or -1. */
static int xj_add_ns(json_t *obj, xmlNsPtr ns)
{
    char *key = ns->prefix ? xj_qname("@", BAD_CAST "xmlns", ns->prefix) : strdup("@xmlns");
    json_t *v = json_string(ns->href ? (const char *)ns->href : "");
    int rc = key && v ? json_object_set_new(obj, key, v) : -1;
    if (rc < 0 && !key)
        json_decref(v);
    free(key);
    return rc;
}

static int xj_add_attrs(json_t *obj, xmlNodePtr el)
{
    for (xmlAttrPtr a = el->properties; a; a = a->next) {
        char *key = xj_qname("@", a->ns ? a->ns->prefix : NULL, a->name);
        xmlChar *value = xmlNodeGetContent((xmlNodePtr)a);
        json_t *v = json_string(value ? (const char *)value : "");
        int rc = key && v ? json_object_set_new(obj, key, v) : -1;
        if (rc < 0 && !key)
            json_decref(v);
        free(key);
        xmlFree(value);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static json_t *xj_value(xmlNodePtr el, xmlNsPtr *extra, size_t nextra);

/* Adds child under key: the first as is, the second turns the key into an array. */
static int xj_add_child(json_t *obj, xmlNodePtr child)
{
    char *key = xj_qname("", child->ns ? child->ns->prefix : NULL, child->name);
    json_t *v = key ? xj_value(child, NULL, 0) : NULL;
    int rc = -1;
    if (v) {
        json_t *old = json_object_get(obj, key);
        if (!old) {
            rc = json_object_set_new(obj, key, v);
        } else if (json_is_array(old)) { /* only we put arrays there */
            rc = json_array_append_new(old, v);
        } else {
            json_t *arr = json_pack("[OO]", old, v);
            json_decref(v);
            rc = arr ? json_object_set_new(obj, key, arr) : -1;
        }
    }
    free(key);
    return rc;
}

static json_t *xj_value(xmlNodePtr el, xmlNsPtr *extra, size_t nextra)
{
    bool has_children = xj_has_element_child(el);
    if (!el->properties && !el->nsDef && nextra == 0 && !has_children) {
        json_t *text = xj_text(el, false);
        return text ? text : json_string("");
    }
    json_t *obj = json_object();
    int rc = obj ? 0 : -1;
    for (xmlNsPtr ns = el->nsDef; ns && rc == 0; ns = ns->next)
        rc = xj_add_ns(obj, ns);
    for (size_t i = 0; i < nextra && rc == 0; i++)
        rc = xj_add_ns(obj, extra[i]);
    if (rc == 0)
        rc = xj_add_attrs(obj, el);
    json_t *text = rc == 0 ? xj_text(el, has_children) : NULL;
    if (text)
        rc = json_object_set_new(obj, "#text", text);
    for (xmlNodePtr c = el->children; c && rc == 0; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            rc = xj_add_child(obj, c);
    if (rc < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

json_t *xmljson_from_node(xmlNodePtr element)
{
    if (!element || element->type != XML_ELEMENT_NODE)
        return NULL;
    xmlNsPtr *extra;
    size_t nextra;
    if (xml_ns_inherited(element, &extra, &nextra) < 0)
        return NULL;
    char *key = xj_qname("", element->ns ? element->ns->prefix : NULL, element->name);
    json_t *v = key ? xj_value(element, extra, nextra) : NULL;
    json_t *obj = v ? json_object() : NULL;
    if (obj && json_object_set_new(obj, key, v) < 0) {
        json_decref(obj);
        obj = NULL;
    } else if (!obj) {
        json_decref(v);
    }
    free(key);
    free(extra);
    return obj;
}

/* ---- JSON -> XML ------------------------------------------------------ */

struct xj_build {
    xmlDocPtr doc;
    char *err;
    size_t errlen;
    char path[512]; /* JSON path of what is being built, for messages */
    size_t path_len;
    unsigned ns_in_scope; /* declarations on the element being built and its ancestors */
};

__attribute__((format(printf, 2, 3))) static int xj_fail(struct xj_build *b, const char *fmt, ...)
{
    int n = snprintf(b->err, b->errlen, "%s: ", b->path_len ? b->path : "/");
    if (n < 0 || (size_t)n >= b->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Appends "/name" or "[i]" to the path; returns the length to restore. */
__attribute__((format(printf, 2, 3))) static size_t xj_path_push(struct xj_build *b,
                                                                 const char *fmt, ...)
{
    size_t old = b->path_len;
    if (old < sizeof(b->path) - 1) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->path + old, sizeof(b->path) - old, fmt, ap);
        va_end(ap);
        if (n > 0)
            b->path_len =
                old + (size_t)n < sizeof(b->path) - 1 ? old + (size_t)n : sizeof(b->path) - 1;
    }
    return old;
}

static void xj_path_pop(struct xj_build *b, size_t len)
{
    b->path_len = len;
    b->path[len] = '\0';
}

static int xj_check_chars(struct xj_build *b, const char *s, size_t len)
{
    size_t at = 0;
    while (at < len) {
        unsigned long c;
        at += xml_char_next(s + at, len - at, &c);
        if (c == XML_CHAR_BAD_UTF8)
            return xj_fail(b, "invalid UTF-8");
        if (!xml_char_allowed(c))
            return xj_fail(b, "character U+%04lX cannot appear in XML", c);
    }
    return 0;
}

/* Shortest decimal text that reads back as the same double. */
static void xj_real_text(double v, char *buf, size_t size)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* A scalar as text in *s and *len (*s NULL for null); buf backs numbers. 0 or -1. */
static int xj_scalar(struct xj_build *b, json_t *v, char *buf, size_t size, const char **s,
                     size_t *len)
{
    *s = buf;
    switch (json_typeof(v)) {
    case JSON_STRING:
        *s = json_string_value(v);
        *len = json_string_length(v);
        return xj_check_chars(b, *s, *len);
    case JSON_INTEGER:
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        if (!isfinite(json_real_value(v)))
            return xj_fail(b, "number is not finite");
        xj_real_text(json_real_value(v), buf, size);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        snprintf(buf, size, "%s", json_is_true(v) ? "true" : "false");
        break;
    case JSON_NULL:
        *s = NULL;
        *len = 0;
        return 0;
    default:
        return xj_fail(b, "expected a string, got an %s", json_is_array(v) ? "array" : "object");
    }
    *len = strlen(buf);
    return 0;
}

/* Splits a QName into a prefix (NULL if none, malloc'd) and its local part. */
static int xj_split_name(struct xj_build *b, const char *name, char **prefix, const char **local,
                         const char *what)
{
    *prefix = NULL;
    *local = name;
    const char *colon = strchr(name, ':');
    bool valid = colon ? xml_ncname_valid(name, (size_t)(colon - name)) &&
                             xml_ncname_valid(colon + 1, strlen(colon + 1))
                       : xml_ncname_valid(name, strlen(name));
    if (!valid)
        return xj_fail(b, "\"%s\" is not a valid XML %s name", name, what);
    if (colon) {
        if (!(*prefix = strndup(name, (size_t)(colon - name))))
            return xj_fail(b, "out of memory");
        *local = colon + 1;
        if (!strcmp(*prefix, "xmlns"))
            return xj_fail(b, "the prefix \"xmlns\" is reserved");
    }
    return 0;
}

static int xj_declare_ns(struct xj_build *b, xmlNodePtr node, const char *key, json_t *v)
{
    const char *prefix = key[6] == ':' ? key + 7 : NULL;
    if (!json_is_string(v))
        return xj_fail(b, "a namespace declaration must be a string (the namespace URI)");
    const char *href = json_string_value(v);
    if (xj_check_chars(b, href, json_string_length(v)) < 0)
        return -1;
    if (prefix && !xml_ncname_valid(prefix, strlen(prefix)))
        return xj_fail(b, "\"%s\" is not a valid namespace prefix", prefix);
    if (prefix && !strcmp(prefix, "xml")) {
        if (strcmp(href, (const char *)XML_XML_NAMESPACE) != 0)
            return xj_fail(b, "the prefix \"xml\" is bound to %s only", XML_XML_NAMESPACE);
        return 0; /* predeclared */
    }
    if (prefix && (!strcmp(prefix, "xmlns") || !href[0]))
        return xj_fail(b, "prefix \"%s\" cannot be %s", prefix,
                       href[0] ? "declared" : "bound to an empty URI in XML 1.0");
    if (!strcmp(href, (const char *)XML_XML_NAMESPACE) || !strcmp(href, XMLJSON_XMLNS_URI))
        return xj_fail(b, "namespace %s is reserved", href);
    if (!xmlNewNs(node, BAD_CAST href, BAD_CAST prefix))
        return xj_fail(b, "out of memory");
    return 0;
}

/* Gives the element the namespace of its prefix, or the default namespace. */
static int xj_resolve_element_ns(struct xj_build *b, xmlNodePtr node, const char *prefix,
                                 const char *name)
{
    xmlNsPtr ns = xmlSearchNs(b->doc, node, BAD_CAST prefix);
    if (prefix && !ns)
        return xj_fail(b, "prefix \"%s\" of element \"%s\" is not declared (add \"@xmlns:%s\")",
                       prefix, name, prefix);
    if (ns && ns->href && ns->href[0])
        xmlSetNs(node, ns);
    return 0;
}

static int xj_set_attr(struct xj_build *b, xmlNodePtr node, const char *name, json_t *v)
{
    char buf[64], *prefix;
    const char *local, *s;
    size_t len;
    size_t mark = xj_path_push(b, "/@%s", name);
    int rc = xj_split_name(b, name, &prefix, &local, "attribute");
    if (rc == 0)
        rc = xj_scalar(b, v, buf, sizeof(buf), &s, &len);
    if (rc == 0 && s) {
        xmlNsPtr ns = prefix ? xmlSearchNs(b->doc, node, BAD_CAST prefix) : NULL;
        if (prefix && !ns)
            rc = xj_fail(b, "prefix \"%s\" is not declared (add \"@xmlns:%s\")", prefix, prefix);
        else if (xmlHasNsProp(node, BAD_CAST local, ns ? ns->href : NULL))
            rc = xj_fail(b, "attribute given twice (same namespace and name)");
        else if (!xmlNewNsProp(node, ns, BAD_CAST local, BAD_CAST s))
            rc = xj_fail(b, "out of memory");
    }
    free(prefix);
    xj_path_pop(b, mark);
    return rc;
}

static int xj_add_text(struct xj_build *b, xmlNodePtr node, json_t *v)
{
    char buf[64];
    const char *s;
    size_t len;
    if (xj_scalar(b, v, buf, sizeof(buf), &s, &len) < 0)
        return -1;
    if (s && len > 0) {
        xmlNodePtr text = xmlNewDocTextLen(b->doc, BAD_CAST s, (int)len);
        if (!text || !xmlAddChild(node, text)) {
            xmlFreeNode(text);
            return xj_fail(b, "out of memory");
        }
    }
    return 0;
}

static int xj_element(struct xj_build *b, xmlNodePtr parent, const char *name, json_t *v,
                      int depth);

/* One child element, or one per item of an array (a repeated element). */
static int xj_children(struct xj_build *b, xmlNodePtr node, const char *name, json_t *v, int depth)
{
    if (!json_is_array(v)) {
        size_t mark = xj_path_push(b, "/%s", name);
        int rc = xj_element(b, node, name, v, depth);
        xj_path_pop(b, mark);
        return rc;
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        size_t mark = xj_path_push(b, "/%s[%zu]", name, i + 1);
        int rc = xj_element(b, node, name, item, depth);
        xj_path_pop(b, mark);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Namespace declarations first, so the element's own prefix can use them.
 * Bounded as xml_safe bounds them (each one added and looked up walks the
 * others), and counted into b->ns_in_scope. */
static int xj_object_namespaces(struct xj_build *b, xmlNodePtr node, json_t *obj)
{
    const char *key;
    size_t key_len;
    json_t *v;
    unsigned declared = 0;
    json_object_keylen_foreach(obj, key, key_len, v)
    {
        if (strlen(key) != key_len) /* "\u0000" in a key: no XML name can hold it */
            return xj_fail(b, "a key contains U+0000, which no XML name can");
        if (strcmp(key, "@xmlns") != 0 && strncmp(key, "@xmlns:", 7) != 0)
            continue;
        if (++declared > XML_SAFE_DEFAULT_MAX_NAMESPACES)
            return xj_fail(b, "more than %u namespace declarations on one element, the limit",
                           XML_SAFE_DEFAULT_MAX_NAMESPACES);
        size_t mark = xj_path_push(b, "/%s", key);
        int rc = xj_declare_ns(b, node, key, v);
        xj_path_pop(b, mark);
        if (rc < 0)
            return -1;
    }
    if (b->ns_in_scope + declared > XML_SAFE_DEFAULT_MAX_NS_IN_SCOPE)
        return xj_fail(b,
                       "more than %u namespace declarations in scope (on the element and its "
                       "ancestors), the limit",
                       XML_SAFE_DEFAULT_MAX_NS_IN_SCOPE);
    b->ns_in_scope += declared;
    return 0;
}

static int xj_object_content(struct xj_build *b, xmlNodePtr node, json_t *obj, int depth)
{
    const char *key;
    json_t *v;
    unsigned attributes = 0; /* bounded as in xml_safe: each one is checked against the others */
    json_object_foreach(obj, key, v)
    {
        if (!strcmp(key, "@xmlns") || !strncmp(key, "@xmlns:", 7))
            continue;
        int rc = 0;
        if (key[0] == '@' && !json_is_null(v) && ++attributes > XML_SAFE_DEFAULT_MAX_ATTRIBUTES) {
            rc = xj_fail(b, "more than %u attributes on one element, the limit",
                         XML_SAFE_DEFAULT_MAX_ATTRIBUTES);
        } else if (key[0] == '@') {
            rc = xj_set_attr(b, node, key + 1, v);
        } else if (!strcmp(key, "#text")) {
            size_t mark = xj_path_push(b, "/#text");
            rc = xj_add_text(b, node, v);
            xj_path_pop(b, mark);
        } else if (key[0] == '#') {
            rc = xj_fail(b, "unknown key \"%s\" (\"#text\" is the only # key)", key);
        }
        if (rc < 0)
            return -1;
    }
    json_object_foreach(obj, key, v)
    {
        if (key[0] != '@' && key[0] != '#' && xj_children(b, node, key, v, depth + 1) < 0)
            return -1;
    }
    return 0;
}

/* Builds element name with value v under parent (the document when NULL). */
static int xj_element(struct xj_build *b, xmlNodePtr parent, const char *name, json_t *v, int depth)
{
    if (depth > XMLJSON_MAX_DEPTH)
        return xj_fail(b, "elements nested deeper than %d", XMLJSON_MAX_DEPTH);
    if (json_is_array(v))
        return xj_fail(b, parent ? "arrays cannot nest: an item must be a string or an object"
                                 : "the root must be one element, not an array");
    char *prefix = NULL;
    const char *local;
    if (xj_split_name(b, name, &prefix, &local, "element") < 0) {
        free(prefix);
        return -1;
    }
    unsigned outer_scope = b->ns_in_scope;
    xmlNodePtr node = xmlNewDocNode(b->doc, NULL, BAD_CAST local, NULL);
    int rc = node ? 0 : xj_fail(b, "out of memory");
    if (node && parent)
        xmlAddChild(parent, node);
    else if (node)
        xmlDocSetRootElement(b->doc, node);
    if (rc == 0 && json_is_object(v))
        rc = xj_object_namespaces(b, node, v);
    if (rc == 0)
        rc = xj_resolve_element_ns(b, node, prefix, name);
    if (rc == 0)
        rc = json_is_object(v) ? xj_object_content(b, node, v, depth) : xj_add_text(b, node, v);
    b->ns_in_scope = outer_scope;
    free(prefix);
    return rc;
}

char *xmljson_to_xml(json_t *obj, size_t *len, char *err, size_t errlen)
{
    if (!json_is_object(obj) || json_object_size(obj) != 1) {
        snprintf(err, errlen,
                 "/: expected an object with exactly one key, the root element, "
                 "like {\"Root\": {...}}");
        return NULL;
    }
    void *iter = json_object_iter(obj);
    const char *name = json_object_iter_key(iter);
    json_t *v = json_object_iter_value(iter);
    if (strlen(name) != json_object_iter_key_len(iter)) {
        snprintf(err, errlen, "/: a key contains U+0000, which no XML name can");
        return NULL;
    }
    if (name[0] == '@' || name[0] == '#') {
        snprintf(err, errlen, "/%s: the root must be an element, not an attribute or text", name);
        return NULL;
    }
    struct xj_build b = {.err = err, .errlen = errlen};
    b.doc = xmlNewDoc(BAD_CAST "1.0");
    if (!b.doc) {
        snprintf(err, errlen, "xmljson: out of memory");
        return NULL;
    }
    char *text = NULL;
    xj_path_push(&b, "/%s", name);
    if (xj_element(&b, NULL, name, v, 1) == 0) {
        text = xml_node_serialize(xmlDocGetRootElement(b.doc), len);
        if (!text)
            snprintf(err, errlen, "xmljson: out of memory");
    }
    xmlFreeDoc(b.doc);
    return text;
}

char *xmljson_text_to_xml(const char *text, size_t n, size_t *len, bool *parsed, char *err,
                          size_t errlen)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, n, 0, &jerr);
    *parsed = j != NULL;
    if (j == NULL) {
        snprintf(err, errlen, "%s at line %d, column %d", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    char *xml = xmljson_to_xml(j, len, err, errlen);
    json_decref(j);
    return xml;
}
