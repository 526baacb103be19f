/*
 * soap_wsdl — see soap_wsdl.h. The WSDL is trusted configuration, but it is
 * still parsed with xml_safe (no DTD, no network): one XML parser policy for
 * the whole process.
 */
#include "soap_wsdl.h"

#include "util.h"
#include "xml_safe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#define WSDL_MAX_BYTES      ((size_t)16 << 20)
#define WSDL_MAX_NAMESPACES 1024u
#define WSDL_NS             "http://schemas.xmlsoap.org/wsdl/"
#define WSDL_SOAP11_NS      "http://schemas.xmlsoap.org/wsdl/soap/"
#define WSDL_SOAP12_NS      "http://schemas.xmlsoap.org/wsdl/soap12/"

/* ---- endpoint addresses ---------------------------------------------------------------- */

static bool is_soap_address(xmlNodePtr n)
{
    return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST "address") && n->ns &&
           n->ns->href &&
           (xmlStrEqual(n->ns->href, BAD_CAST WSDL_SOAP11_NS) ||
            xmlStrEqual(n->ns->href, BAD_CAST WSDL_SOAP12_NS));
}

/* Sets every soap:address / soap12:address location under n; returns how many. */
static int wsdl_set_address(xmlNodePtr n, const char *address)
{
    int count = 0;
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (is_soap_address(n) && xmlHasProp(n, BAD_CAST "location")) {
            xmlSetProp(n, BAD_CAST "location", BAD_CAST address);
            count++;
        }
        count += wsdl_set_address(n->children, address);
    }
    return count;
}

/* ---- one-way operations ---------------------------------------------------------------- */

static bool is_wsdl(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           xmlStrEqual(n->ns->href, BAD_CAST WSDL_NS) && xmlStrEqual(n->name, BAD_CAST name);
}

/* The first WSDL child `name` of parent (with name="name_attr" unless NULL). */
static xmlNodePtr wsdl_child(xmlNodePtr parent, const char *name, const char *name_attr)
{
    for (xmlNodePtr c = parent->children; c; c = c->next) {
        if (!is_wsdl(c, name))
            continue;
        if (name_attr == NULL)
            return c;
        xmlChar *v = xmlGetProp(c, BAD_CAST "name");
        bool match = v && xmlStrEqual(v, BAD_CAST name_attr);
        xmlFree(v);
        if (match)
            return c;
    }
    return NULL;
}

/* The local part of a QName attribute ("tns:Foo" → "Foo"); the caller xmlFree()s it. */
static xmlChar *wsdl_local_prop(xmlNodePtr n, const char *attr)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST attr);
    const xmlChar *colon = v ? xmlStrchr(v, ':') : NULL;
    if (colon == NULL)
        return v;
    xmlChar *local = xmlStrdup(colon + 1);
    xmlFree(v);
    return local;
}

/* Adds s unless it is there already (an operation and its element often share a name). */
static void strlist_add(struct strlist *l, const xmlChar *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], (const char *)s) == 0)
            return;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = xstrdup((const char *)s);
}

/* For a one-way operation, the names its request can carry as the Body's first
 * child: its input parts' elements (document style) and the operation's own
 * name (rpc style, where the wrapper is named after the operation). */
static void wsdl_add_one_way(xmlNodePtr defs, xmlNodePtr op, struct strlist *out)
{
    xmlNodePtr input = wsdl_child(op, "input", NULL);
    if (input == NULL || wsdl_child(op, "output", NULL) != NULL)
        return;
    xmlChar *name = xmlGetProp(op, BAD_CAST "name");
    if (name)
        strlist_add(out, name);
    xmlFree(name);
    xmlChar *message = wsdl_local_prop(input, "message");
    xmlNodePtr msg = message ? wsdl_child(defs, "message", (const char *)message) : NULL;
    xmlFree(message);
    for (xmlNodePtr part = msg ? msg->children : NULL; part; part = part->next) {
        xmlChar *element = is_wsdl(part, "part") ? wsdl_local_prop(part, "element") : NULL;
        if (element)
            strlist_add(out, element);
        xmlFree(element);
    }
}

static void wsdl_find_one_way(xmlNodePtr defs, struct strlist *out)
{
    if (defs == NULL || !is_wsdl(defs, "definitions"))
        return; /* WSDL 2.0 or not a WSDL: every operation is treated as request-response */
    for (xmlNodePtr pt = defs->children; pt; pt = pt->next)
        if (is_wsdl(pt, "portType"))
            for (xmlNodePtr op = pt->children; op; op = op->next)
                if (is_wsdl(op, "operation"))
                    wsdl_add_one_way(defs, op, out);
}

/* ---- loading ------------------------------------------------------------------------------ */

static int wsdl_read(const char *path, struct buf *text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
        return -1;
    }
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && text->len <= WSDL_MAX_BYTES)
        buf_append(text, chunk, n);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        snprintf(err, errlen, "reading \"%s\" failed", path);
        buf_free(text);
        return -1;
    }
    return 0;
}

int soap_wsdl_load(const char *path, const char *address, struct soap_wsdl *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct buf text = {0};
    if (wsdl_read(path, &text, err, errlen) != 0)
        return -1;
    /* trusted configuration: generated WSDLs may declare a namespace per imported schema */
    struct xml_limits lim = {.max_bytes = WSDL_MAX_BYTES,
                             .max_depth = XML_SAFE_MAX_DEPTH_CAP,
                             .max_namespaces = WSDL_MAX_NAMESPACES,
                             .max_ns_in_scope = WSDL_MAX_NAMESPACES};
    char why[512];
    xmlDocPtr doc = xml_parse_safe(text.data ? text.data : "", text.len, &lim, why, sizeof(why));
    if (doc == NULL) {
        snprintf(err, errlen, "\"%s\" is not usable XML: %s", path, why);
        buf_free(&text);
        return -1;
    }
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (address != NULL) {
        if (wsdl_set_address(root, address) == 0) {
            snprintf(err, errlen,
                     "\"%s\" has no soap:address or soap12:address location for wsdl_address to "
                     "set; remove wsdl_address or add the service's port address",
                     path);
            xmlFreeDoc(doc);
            buf_free(&text);
            return -1;
        }
        xmlChar *mem = NULL;
        int size = 0;
        xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
        buf_free(&text);
        buf_append(&text, mem ? (const char *)mem : "", mem ? (size_t)size : 0);
        xmlFree(mem);
    }
    wsdl_find_one_way(root, &out->one_way);
    xmlFreeDoc(doc);
    out->text = buf_steal(&text, &out->len);
    return 0;
}

void soap_wsdl_free(struct soap_wsdl *w)
{
    free(w->text);
    for (size_t i = 0; i < w->one_way.n; i++)
        free(w->one_way.v[i]);
    free(w->one_way.v);
    memset(w, 0, sizeof(*w));
}

bool soap_wsdl_one_way(const struct soap_wsdl *w, const char *name)
{
    for (size_t i = 0; i < w->one_way.n; i++)
        if (strcmp(w->one_way.v[i], name) == 0)
            return true;
    return false;
}

void soap_wsdl_describe_one_way(const struct soap_wsdl *w, struct buf *out)
{
    for (size_t i = 0; i < w->one_way.n; i++)
        buf_printf(out, "%s%s", i ? ", " : "", w->one_way.v[i]);
}
