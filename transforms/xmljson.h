/*
 * xmljson.h — the one XML <-> JSON convention of amqp-sidecar (see XMLJSON.md).
 *
 * An element becomes {"name": value}: a string when it has only text, else an
 * object of "@attr" / "@xmlns:p" strings, "#text" and child elements (repeated
 * names become arrays). Names keep their prefix as written. Pure functions,
 * safe to call from any thread on distinct trees.
 */
#ifndef SIDECAR_XMLJSON_H
#define SIDECAR_XMLJSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <libxml/tree.h>

/* Nesting refused by xmljson_to_xml past this many elements. */
#define XMLJSON_MAX_DEPTH 256

/* {"<qualified name>": value} for element (borrowed). The top element also
 * declares the namespaces it inherits and uses (see xml_ns_inherited), so
 * the JSON stands alone. Returns a new reference, or NULL if element is not
 * an element node or memory ran out. */
json_t *xmljson_from_node(xmlNodePtr element);

/* XML text (UTF-8, no XML declaration) for a one-key object {"Root": ...}
 * (borrowed). Refuses other shapes, names that are not XML names, undeclared
 * prefixes and characters XML cannot carry, with the JSON path in err.
 * Returns malloc'd NUL-terminated text the caller frees, its length in *len
 * (may be NULL); NULL with err filled on failure. */
char *xmljson_to_xml(json_t *obj, size_t *len, char *err, size_t errlen);

/* JSON text (n bytes) to XML, as xmljson_to_xml. NULL with err when it cannot
 * be: *parsed false when the text is not JSON (err: "<what> at line L, column
 * C"), true when it is JSON the convention cannot turn into XML. */
char *xmljson_text_to_xml(const char *text, size_t n, size_t *len, bool *parsed, char *err,
                          size_t errlen);

#endif
