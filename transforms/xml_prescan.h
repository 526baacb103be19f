/*
 * xml_prescan.h — the linear pass xml_parse_safe makes over the raw input
 * before libxml2 sees it (internal to transforms/xml_*.c).
 *
 * libxml2 2.9.14 compares each attribute of a start tag with every other one,
 * and each namespace declaration with every other one, before any SAX
 * callback runs, so a per-element limit can only be enforced ahead of the
 * parser. This pass refuses, naming the limit, a start tag with more than
 * max_attributes attributes or max_namespaces namespace declarations, and
 * encodings in which it cannot see markup bytes for what they are (UCS-4, EBCDIC, UTF-7,
 * ISO-2022-*, ...: SOAP allows only UTF-8 and UTF-16, WS-I BP R1012). See xml_prescan.c for why the
 * counts are upper bounds of what libxml2 would compare.
 */
#ifndef SIDECAR_XML_PRESCAN_H
#define SIDECAR_XML_PRESCAN_H

#include <stddef.h>

/* 0, or -1 with err set to "line L, column C: <what>". */
int xml_prescan(const char *buf, size_t len, unsigned max_attributes, unsigned max_namespaces,
                char *err, size_t errlen);

#endif
