/*
 * xml_standalone.c — an element as standalone XML: which namespace
 * declarations it inherits and needs (xml_ns_inherited), and its text
 * (xml_node_serialize). Declared in xml_safe.h.
 *
 * Linear in the subtree and the declarations in scope: the declarations the
 * ancestors make (closest first, each prefix once, minus the ones the element
 * redeclares) go into a small hash table by prefix; one walk over the subtree
 * marks each prefix it meets — on element and attribute names, and before the
 * colon of a value that reads as a QName such as xsi:type="tns:T" — and the
 * marked ones, in scope order, are the answer. (xmlGetNsList, and a walk per
 * declaration, were quadratic: 60 000 declarations cost seconds.)
 */
#include "xml_safe.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/xmlsave.h>

/* ---- declarations in scope, by prefix ---------------------------------- */

struct ns_entry {
    const xmlChar *prefix; /* NULL: empty slot */
    size_t len;
    size_t index; /* into scope.ns, or SIZE_MAX for a prefix the element redeclares */
};

struct ns_scope {
    xmlNsPtr *ns; /* inherited candidates, closest first */
    bool *used;
    size_t n, unused;
    struct ns_entry *table; /* open addressing, a power of two */
    size_t mask;
    size_t default_index; /* the default namespace's entry in ns, SIZE_MAX if none */
    bool default_seen;    /* a closer default declaration (or the element's own) was met */
};

static size_t ns_hash(const xmlChar *s, size_t len)
{
    size_t h = 14695981039346656037u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 1099511628211u;
    return h;
}

/* The entry for prefix, or the empty slot where it would go. */
static struct ns_entry *ns_slot(struct ns_scope *sc, const xmlChar *prefix, size_t len)
{
    for (size_t i = ns_hash(prefix, len) & sc->mask;; i = (i + 1) & sc->mask) {
        struct ns_entry *e = &sc->table[i];
        if (!e->prefix || (e->len == len && memcmp(e->prefix, prefix, len) == 0))
            return e;
    }
}

/* Records a declaration met walking up from the element; the first one of a
 * prefix wins. own: it is the element's own (it shadows, is not inherited). */
static void ns_scope_add(struct ns_scope *sc, xmlNsPtr ns, bool own)
{
    if (!ns->prefix) {
        if (!sc->default_seen && !own) {
            sc->default_index = sc->n;
            sc->ns[sc->n++] = ns;
        }
        sc->default_seen = true;
        return;
    }
    size_t len = (size_t)xmlStrlen(ns->prefix);
    struct ns_entry *e = ns_slot(sc, ns->prefix, len);
    if (e->prefix)
        return;
    e->prefix = ns->prefix;
    e->len = len;
    e->index = SIZE_MAX;
    if (!own && !xmlStrEqual(ns->prefix, BAD_CAST "xml")) {
        e->index = sc->n;
        sc->ns[sc->n++] = ns;
    }
}

static int ns_scope_init(struct ns_scope *sc, xmlNodePtr node)
{
    memset(sc, 0, sizeof(*sc));
    sc->default_index = SIZE_MAX;
    size_t count = 0;
    for (xmlNodePtr a = node; a; a = a->parent)
        if (a->type == XML_ELEMENT_NODE)
            for (xmlNsPtr d = a->nsDef; d; d = d->next)
                count++;
    size_t cap = 8;
    while (cap < 2 * count + 2)
        cap *= 2;
    sc->mask = cap - 1;
    sc->table = calloc(cap, sizeof(*sc->table));
    sc->ns = malloc((count ? count : 1) * sizeof(*sc->ns));
    sc->used = calloc(count ? count : 1, sizeof(*sc->used));
    if (!sc->table || !sc->ns || !sc->used)
        return -1;
    for (xmlNodePtr a = node; a; a = a->parent)
        if (a->type == XML_ELEMENT_NODE)
            for (xmlNsPtr d = a->nsDef; d; d = d->next)
                ns_scope_add(sc, d, a == node);
    sc->unused = sc->n;
    return 0;
}

static void ns_scope_free(struct ns_scope *sc)
{
    free(sc->table);
    free(sc->ns);
    free(sc->used);
}

static void ns_mark(struct ns_scope *sc, size_t index)
{
    if (index != SIZE_MAX && !sc->used[index]) {
        sc->used[index] = true;
        sc->unused--;
    }
}

static void ns_mark_prefix(struct ns_scope *sc, const xmlChar *prefix, size_t len)
{
    struct ns_entry *e = ns_slot(sc, prefix, len);
    if (e->prefix)
        ns_mark(sc, e->index);
}

static bool ns_blank(xmlChar c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Marks p when the trimmed value reads "p:NCName" (a QName value). */
static void ns_mark_qname_value(struct ns_scope *sc, const xmlChar *value)
{
    if (!value)
        return;
    while (ns_blank(*value))
        value++;
    const xmlChar *colon = xmlStrchr(value, ':');
    if (!colon || colon == value)
        return;
    struct ns_entry *e = ns_slot(sc, value, (size_t)(colon - value));
    if (!e->prefix || e->index == SIZE_MAX || sc->used[e->index])
        return;
    const xmlChar *local = colon + 1;
    size_t n = (size_t)xmlStrlen(local);
    while (n > 0 && ns_blank(local[n - 1]))
        n--;
    if (xml_ncname_valid((const char *)local, n))
        ns_mark(sc, e->index);
}

static void ns_mark_node(struct ns_scope *sc, xmlNodePtr n)
{
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        ns_mark_qname_value(sc, n->content);
        return;
    }
    if (n->type != XML_ELEMENT_NODE)
        return;
    if (n->ns && !n->ns->prefix)
        ns_mark(sc, sc->default_index);
    else if (n->ns)
        ns_mark_prefix(sc, n->ns->prefix, (size_t)xmlStrlen(n->ns->prefix));
    for (xmlAttrPtr a = n->properties; a; a = a->next) {
        if (a->ns && a->ns->prefix)
            ns_mark_prefix(sc, a->ns->prefix, (size_t)xmlStrlen(a->ns->prefix));
        if (a->children)
            ns_mark_qname_value(sc, a->children->content);
    }
}

/* One walk over top's subtree (iteratively: the stack need not be deep). */
static void ns_mark_subtree(struct ns_scope *sc, xmlNodePtr top)
{
    for (xmlNodePtr n = top; n && sc->unused > 0;) {
        ns_mark_node(sc, n);
        if (n->type == XML_ELEMENT_NODE && n->children) {
            n = n->children;
            continue;
        }
        while (n != top && !n->next)
            n = n->parent;
        if (n == top)
            break;
        n = n->next;
    }
}

int xml_ns_inherited(xmlNodePtr node, xmlNsPtr **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!node || node->type != XML_ELEMENT_NODE || !node->parent)
        return 0;
    struct ns_scope sc;
    if (ns_scope_init(&sc, node) < 0) {
        ns_scope_free(&sc);
        return -1;
    }
    ns_mark_subtree(&sc, node);
    for (size_t i = 0; i < sc.n; i++)
        if (sc.used[i])
            sc.ns[(*n)++] = sc.ns[i];
    if (*n > 0) {
        *out = sc.ns; /* handed over: ns_scope_free must not free it */
        sc.ns = NULL;
    }
    ns_scope_free(&sc);
    return 0;
}

/* ---- serialization ----------------------------------------------------- */

/* Serializes node (of doc) without XML declaration into malloc'd text. */
static char *xml_dump(xmlNodePtr node, size_t *len)
{
    xmlBufferPtr buf = xmlBufferCreate();
    if (!buf)
        return NULL;
    xmlSaveCtxtPtr save = xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_NO_DECL | XML_SAVE_AS_XML);
    if (!save) {
        xmlBufferFree(buf);
        return NULL;
    }
    long rc = xmlSaveTree(save, node);
    xmlSaveClose(save);
    char *text = NULL;
    size_t n = (size_t)xmlBufferLength(buf);
    if (rc >= 0 && (text = malloc(n + 1))) {
        memcpy(text, xmlBufferContent(buf), n);
        text[n] = '\0';
        if (len)
            *len = n;
    }
    xmlBufferFree(buf);
    return text;
}

char *xml_node_serialize(xmlNodePtr node, size_t *len)
{
    if (!node || node->type != XML_ELEMENT_NODE)
        return NULL;
    xmlNsPtr *inherited;
    size_t n;
    if (xml_ns_inherited(node, &inherited, &n) < 0)
        return NULL;
    char *text = NULL;
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr copy = doc ? xmlDocCopyNode(node, doc, 1) : NULL;
    if (copy) {
        xmlDocSetRootElement(doc, copy);
        /* the copy already declares what its names use; add QName-value ones */
        for (size_t i = 0; i < n; i++)
            if (!xmlSearchNs(doc, copy, inherited[i]->prefix))
                xmlNewNs(copy, inherited[i]->href, inherited[i]->prefix);
        text = xml_dump(copy, len);
    }
    xmlFreeDoc(doc);
    free(inherited);
    return text;
}
