/*
 * xml_safe.h — the only way amqp-sidecar parses XML: hardened libxml2.
 *
 * No network, no external or internal DTD (a document with <!DOCTYPE> is
 * refused as soon as the parser meets it, which also rules out XXE and entity
 * expansion bombs), parsing stops at the first error, bounded size, element
 * depth, attributes and namespace
 * declarations (each checked before libxml2 does anything super-linear with
 * them), UTF-8 or UTF-16 or an ASCII-compatible encoding, namespace errors
 * fatal.
 * Errors go to a per-parse handler, never libxml2's global one, so any number
 * of threads may parse at once (after xmlInitParser() in main).
 */
#ifndef SIDECAR_XML_SAFE_H
#define SIDECAR_XML_SAFE_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#define XML_SAFE_DEFAULT_MAX_BYTES ((size_t)10 << 20) /* 10 MiB */
#define XML_SAFE_DEFAULT_MAX_DEPTH 128u
#define XML_SAFE_MAX_DEPTH_CAP     256u /* libxml2's own limit without XML_PARSE_HUGE */

/* Why these: libxml2 checks an element's attributes and namespace declarations
 * pairwise, and resolves every prefix by walking the declarations in scope, so
 * both must be small for parsing to stay linear; real documents use a handful
 * (SOAP stacks declare well under 30 namespaces per envelope). One element may
 * declare as many as may be in scope: its standalone copy (xml_node_serialize)
 * declares its own and the inherited ones it uses, and must parse again. */
#define XML_SAFE_DEFAULT_MAX_ATTRIBUTES     256u /* per element, namespace declarations apart */
#define XML_SAFE_DEFAULT_MAX_NAMESPACES     128u /* declarations on one element */
#define XML_SAFE_DEFAULT_MAX_NS_IN_SCOPE    128u /* declarations on an element and its ancestors */
#define XML_SAFE_DEFAULT_ATTRIBUTES_PER_MIB 100000u /* per document, per MiB of max_bytes */
#define XML_SAFE_DEFAULT_NAMESPACES_PER_MIB 10000u  /* likewise */

/* Zero fields take the defaults; max_depth is capped at XML_SAFE_MAX_DEPTH_CAP.
 * The per-document totals default to the *_PER_MIB figures times max_bytes in
 * MiB (at least one): they bound memory, not time, so they follow the size. */
struct xml_limits {
    size_t max_bytes;            /* input size */
    unsigned max_depth;          /* element nesting, the root element is depth 1 */
    unsigned max_attributes;     /* attributes of one element */
    unsigned max_namespaces;     /* namespace declarations of one element */
    unsigned max_ns_in_scope;    /* declarations on an element and its ancestors */
    size_t max_attributes_total; /* attributes in the document */
    size_t max_namespaces_total; /* namespace declarations in the document */
};

/* Parses buf[0..len). Returns a document the caller frees with xmlFreeDoc(),
 * or NULL with err set to "line L, column C: <what>" (or a size message);
 * a limit that was hit is named with its value.
 * lim may be NULL for the defaults. Whitespace is kept as written. */
xmlDocPtr xml_parse_safe(const char *buf, size_t len, const struct xml_limits *lim, char *err,
                         size_t errlen);

/* The element node as standalone XML text (no XML declaration, UTF-8): a copy
 * declares every namespace it inherited and uses — in names, and in attribute
 * or text values that are QNames such as xsi:type="tns:T".
 * Returns malloc'd NUL-terminated text the caller frees, its length in *len
 * (may be NULL); NULL if node is not an element or memory ran out. */
char *xml_node_serialize(xmlNodePtr node, size_t *len);

/* The namespace declarations in scope at element node that come from its
 * ancestors (not node->nsDef) and that node's subtree uses, as described for
 * xml_node_serialize. On success *out is an array of *n borrowed xmlNsPtr
 * (they belong to the document; NULL when *n is 0) that the caller frees
 * with free(). 0, or -1 when memory ran out. */
int xml_ns_inherited(xmlNodePtr node, xmlNsPtr **out, size_t *n);

/* Decodes the character at s[0..len) (len > 0) into *cp and returns its byte
 * length; invalid UTF-8 (overlong, surrogate, past U+10FFFF, cut off) gives
 * *cp = XML_CHAR_BAD_UTF8 and length 1. */
#define XML_CHAR_BAD_UTF8 0xFFFFFFFFul
size_t xml_char_next(const char *s, size_t len, unsigned long *cp);

/* Is cp a character XML 1.0 documents may contain? */
bool xml_char_allowed(unsigned long cp);

/* Is s[0..len) an NCName (an XML name without ':') by the XML 1.0 fifth
 * edition rules, which are what libxml2's parser applies? (xmlValidateNCName
 * uses older tables and refuses some names the parser accepts.) */
bool xml_ncname_valid(const char *s, size_t len);

#endif
