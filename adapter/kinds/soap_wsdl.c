/*
 * soap_wsdl — see soap_wsdl.h. The WSDL is trusted configuration, but it is
 * still parsed with xml_safe (no DTD, no network): one XML parser policy for
 * the whole process. Messages and portType operations are indexed by name
 * once, so that finding each operation's input stays linear in the WSDL.
 */
#include "soap_wsdl.h"

#include "util.h"
#include "xml_safe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/hash.h>
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

/* The definitions' messages by name, and portType operations by (portType
 * name, operation name); the first of a name wins, as a search would. */
struct wsdl_index {
    xmlHashTablePtr messages;
    xmlHashTablePtr operations;
};

static void wsdl_index_build(xmlNodePtr defs, struct wsdl_index *ix)
{
    ix->messages = xmlHashCreate(64);
    ix->operations = xmlHashCreate(64);
    if (ix->messages == NULL || ix->operations == NULL)
        abort(); /* out of memory, as xmalloc would */
    for (xmlNodePtr c = defs->children; c; c = c->next) {
        xmlChar *name =
            is_wsdl(c, "message") || is_wsdl(c, "portType") ? xmlGetProp(c, BAD_CAST "name") : NULL;
        if (name && is_wsdl(c, "message"))
            xmlHashAddEntry(ix->messages, name, c);
        for (xmlNodePtr op = name && is_wsdl(c, "portType") ? c->children : NULL; op;
             op = op->next) {
            xmlChar *op_name = is_wsdl(op, "operation") ? xmlGetProp(op, BAD_CAST "name") : NULL;
            if (op_name)
                xmlHashAddEntry2(ix->operations, name, op_name, op);
            xmlFree(op_name);
        }
        xmlFree(name);
    }
}

static void wsdl_index_free(struct wsdl_index *ix)
{
    xmlHashFree(ix->messages, NULL);
    xmlHashFree(ix->operations, NULL);
}

/* The <message> of a portType operation's input, or NULL. */
static xmlNodePtr wsdl_input_message(const struct wsdl_index *ix, xmlNodePtr op)
{
    xmlNodePtr input = wsdl_child(op, "input", NULL);
    xmlChar *message = input ? wsdl_local_prop(input, "message") : NULL;
    xmlNodePtr msg = message ? xmlHashLookup(ix->messages, message) : NULL;
    xmlFree(message);
    return msg;
}

/* For a one-way operation, the names its request can carry as the Body's first
 * child: its input parts' elements (document style) and the operation's own
 * name (rpc style, where the wrapper is named after the operation). */
static void wsdl_add_one_way(const struct wsdl_index *ix, xmlNodePtr op, struct strlist *out)
{
    if (wsdl_child(op, "input", NULL) == NULL || wsdl_child(op, "output", NULL) != NULL)
        return;
    xmlChar *name = xmlGetProp(op, BAD_CAST "name");
    if (name)
        strlist_add(out, name);
    xmlFree(name);
    xmlNodePtr msg = wsdl_input_message(ix, op);
    for (xmlNodePtr part = msg ? msg->children : NULL; part; part = part->next) {
        xmlChar *element = is_wsdl(part, "part") ? wsdl_local_prop(part, "element") : NULL;
        if (element)
            strlist_add(out, element);
        xmlFree(element);
    }
}

static void wsdl_find_one_way(xmlNodePtr defs, const struct wsdl_index *ix, struct strlist *out)
{
    for (xmlNodePtr pt = defs->children; pt; pt = pt->next)
        if (is_wsdl(pt, "portType"))
            for (xmlNodePtr op = pt->children; op; op = op->next)
                if (is_wsdl(op, "operation"))
                    wsdl_add_one_way(ix, op, out);
}

/* ---- soapAction ------------------------------------------------------------------------ */

static bool is_soap_binding_ns(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name) && n->ns &&
           n->ns->href &&
           (xmlStrEqual(n->ns->href, BAD_CAST WSDL_SOAP11_NS) ||
            xmlStrEqual(n->ns->href, BAD_CAST WSDL_SOAP12_NS));
}

static xmlNodePtr soap_binding_child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent->children; c; c = c->next)
        if (is_soap_binding_ns(c, name))
            return c;
    return NULL;
}

/* Adds (name, action) once; seen holds the pairs added. */
static void actions_add(struct soap_wsdl *w, xmlHashTablePtr seen, const xmlChar *name,
                        const xmlChar *action)
{
    if (xmlHashAddEntry2(seen, name, action, w) != 0)
        return; /* there already, or out of memory (then the pair is only not checked) */
    if (w->n_actions == w->cap_actions) {
        w->cap_actions = w->cap_actions ? 2 * w->cap_actions : 8;
        w->actions = xrealloc(w->actions, w->cap_actions * sizeof(*w->actions));
    }
    w->actions[w->n_actions].name = xstrdup((const char *)name);
    w->actions[w->n_actions].action = xstrdup((const char *)action);
    w->n_actions++;
}

/* Every operation of a SOAP 1.1 or 1.2 binding, with its soapAction ("" when
 * soap:operation or its soapAction is absent: WS-I BP R2745), under the names
 * its request's Body can start with: the operation's (rpc style) and its
 * input parts' elements (document style). */
static void wsdl_find_actions(xmlNodePtr defs, const struct wsdl_index *ix, struct soap_wsdl *w)
{
    xmlHashTablePtr seen = xmlHashCreate(64);
    if (seen == NULL)
        abort();
    for (xmlNodePtr b = defs->children; b; b = b->next) {
        if (!is_wsdl(b, "binding") || soap_binding_child(b, "binding") == NULL)
            continue; /* not a SOAP binding (HTTP GET/POST, MIME...) */
        xmlChar *type = wsdl_local_prop(b, "type");
        for (xmlNodePtr op = b->children; op; op = op->next) {
            xmlChar *name = is_wsdl(op, "operation") ? xmlGetProp(op, BAD_CAST "name") : NULL;
            if (name == NULL)
                continue;
            xmlNodePtr soap_op = soap_binding_child(op, "operation");
            xmlChar *action = soap_op ? xmlGetProp(soap_op, BAD_CAST "soapAction") : NULL;
            const xmlChar *value = action ? action : BAD_CAST "";
            actions_add(w, seen, name, value);
            xmlNodePtr pt_op = type ? xmlHashLookup2(ix->operations, type, name) : NULL;
            xmlNodePtr msg = pt_op ? wsdl_input_message(ix, pt_op) : NULL;
            for (xmlNodePtr part = msg ? msg->children : NULL; part; part = part->next) {
                xmlChar *element = is_wsdl(part, "part") ? wsdl_local_prop(part, "element") : NULL;
                if (element)
                    actions_add(w, seen, element, value);
                xmlFree(element);
            }
            xmlFree(action);
            xmlFree(name);
        }
        xmlFree(type);
    }
    xmlHashFree(seen, NULL);
}

/* What the WSDL describes: one-way operations and soapActions (WSDL 1.1 only:
 * for WSDL 2.0 or anything else, nothing, so every operation is treated as
 * request-response and any action is accepted). */
static void wsdl_describe(xmlNodePtr defs, struct soap_wsdl *w)
{
    if (defs == NULL || !is_wsdl(defs, "definitions"))
        return;
    struct wsdl_index ix;
    wsdl_index_build(defs, &ix);
    wsdl_find_one_way(defs, &ix, &w->one_way);
    wsdl_find_actions(defs, &ix, w);
    wsdl_index_free(&ix);
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
    wsdl_describe(root, out);
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
    for (size_t i = 0; i < w->n_actions; i++) {
        free(w->actions[i].name);
        free(w->actions[i].action);
    }
    free(w->actions);
    memset(w, 0, sizeof(*w));
}

enum soap_wsdl_verdict soap_wsdl_action_check(const struct soap_wsdl *w, const char *name,
                                              const char *action)
{
    bool known = false;
    for (size_t i = 0; i < w->n_actions; i++) {
        if (strcmp(w->actions[i].name, name) != 0)
            continue;
        if (strcmp(w->actions[i].action, action) == 0)
            return SOAP_WSDL_ACTION_MATCH;
        known = true;
    }
    return known ? SOAP_WSDL_ACTION_MISMATCH : SOAP_WSDL_ACTION_UNKNOWN;
}

void soap_wsdl_describe_actions(const struct soap_wsdl *w, const char *name, struct buf *out)
{
    bool first = true;
    for (size_t i = 0; i < w->n_actions; i++) {
        if (strcmp(w->actions[i].name, name) != 0)
            continue;
        buf_printf(out, "%s\"%s\"", first ? "" : " or ", w->actions[i].action);
        first = false;
    }
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
