/*
 * soap_envelope.c — SOAP 1.1 / 1.2 envelopes on top of xml_safe.
 *
 * Reading: xml_parse_safe, then soap_envelope_find checks the shape both
 * directions share (Envelope in a SOAP namespace, optional Header, Body);
 * requests add the operation and WS-Security UsernameToken, responses the
 * fault class or the Body content. Writing: a libxml2 tree is built and
 * serialized, so every text and attribute is escaped by libxml2, never by hand.
 */
#include "soap_envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>

#define SOAP_DIGEST_SUFFIX "#PasswordDigest"

static const char *soap_ns_of(enum soap_version v)
{
    return v == SOAP_1_2 ? SOAP_12_NS : SOAP_11_NS;
}

static bool soap_is(xmlNodePtr n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           xmlStrEqual(n->ns->href, BAD_CAST ns) && xmlStrEqual(n->name, BAD_CAST name);
}

static xmlNodePtr soap_first_element(xmlNodePtr n)
{
    while (n && n->type != XML_ELEMENT_NODE)
        n = n->next;
    return n;
}

/* "p:name" or "name" for messages (static buffer of the caller). */
static const char *soap_qname(xmlNodePtr n, char *buf, size_t size)
{
    if (n->ns && n->ns->prefix)
        snprintf(buf, size, "%s:%s", n->ns->prefix, n->name);
    else
        snprintf(buf, size, "%s", n->name);
    return buf;
}

/* Text content of n, trimmed, in malloc'd memory (NULL when n is NULL). */
static char *soap_text(xmlNodePtr n, bool trim)
{
    if (!n)
        return NULL;
    xmlChar *c = xmlNodeGetContent(n);
    const char *s = c ? (const char *)c : "";
    size_t len = strlen(s);
    if (trim) {
        while (len && strchr(" \t\r\n", s[len - 1]))
            len--;
        while (len && strchr(" \t\r\n", *s))
            s++, len--;
    }
    char *out = strndup(s, len);
    xmlFree(c);
    return out;
}

/* ---- Content-Type ------------------------------------------------------ */

/* Reads one parameter value (token or quoted string) into malloc'd memory. */
static char *soap_param_value(const char **p)
{
    const char *s = *p;
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    if (*s == '"') {
        for (s++; *s && *s != '"'; s++) {
            if (*s == '\\' && s[1])
                s++;
            *o++ = *s;
        }
        if (*s == '"')
            s++;
    } else {
        while (*s && *s != ';' && *s != ' ' && *s != '\t')
            *o++ = *s++;
    }
    *o = '\0';
    *p = s;
    return out;
}

/* The version a Content-Type announces and its action= parameter (malloc'd). */
static int soap_content_type(const char *ct, enum soap_version *v, char **action, char *err,
                             size_t errlen)
{
    const char *p = ct + strspn(ct, " \t");
    size_t n = strcspn(p, "; \t");
    if (n == 8 && !strncasecmp(p, "text/xml", n)) {
        *v = SOAP_1_1;
    } else if (n == 20 && !strncasecmp(p, "application/soap+xml", n)) {
        *v = SOAP_1_2;
    } else {
        snprintf(err, errlen,
                 "unsupported content type \"%.*s\": SOAP 1.1 is sent as text/xml, SOAP 1.2 "
                 "as application/soap+xml",
                 (int)(n > 100 ? 100 : n), p);
        return SOAP_ERR_CONTENT_TYPE;
    }
    for (p += n; *p;) {
        p += strspn(p, "; \t");
        size_t name = strcspn(p, "=; \t");
        bool is_action = name == 6 && !strncasecmp(p, "action", 6);
        p += name;
        p += strspn(p, " \t");
        if (*p != '=')
            continue;
        p++;
        p += strspn(p, " \t");
        char *value = soap_param_value(&p);
        if (!value) {
            snprintf(err, errlen, "out of memory");
            return SOAP_ERR_MALFORMED;
        }
        if (is_action && *v == SOAP_1_2 && !*action)
            *action = value;
        else
            free(value);
    }
    return 0;
}

/* ---- Envelope shape ------------------------------------------------------ */

struct soap_parts {
    enum soap_version version;
    xmlNodePtr envelope, header, body, first; /* first: first element child of Body */
};

static int soap_version_of(xmlNodePtr root, enum soap_version *v, char *err, size_t errlen)
{
    char name[256];
    if (!xmlStrEqual(root->name, BAD_CAST "Envelope")) {
        snprintf(err, errlen, "line %ld: root element is <%s>, not a SOAP Envelope",
                 xmlGetLineNo(root), soap_qname(root, name, sizeof(name)));
        return -1;
    }
    const char *ns = root->ns && root->ns->href ? (const char *)root->ns->href : NULL;
    if (ns && !strcmp(ns, SOAP_11_NS)) {
        *v = SOAP_1_1;
    } else if (ns && !strcmp(ns, SOAP_12_NS)) {
        *v = SOAP_1_2;
    } else {
        snprintf(err, errlen,
                 "line %ld: Envelope namespace is \"%.200s\", neither SOAP 1.1 (" SOAP_11_NS
                 ") nor SOAP 1.2 (" SOAP_12_NS ")",
                 xmlGetLineNo(root), ns ? ns : "(none)");
        return -1;
    }
    return 0;
}

/* Envelope = Header? Body: finds the parts, or fails naming what is wrong. */
static int soap_envelope_find(xmlDocPtr doc, struct soap_parts *p, char *err, size_t errlen)
{
    char name[256];
    memset(p, 0, sizeof(*p));
    p->envelope = xmlDocGetRootElement(doc);
    if (soap_version_of(p->envelope, &p->version, err, errlen) < 0)
        return -1;
    const char *ns = soap_ns_of(p->version);
    xmlNodePtr child = soap_first_element(p->envelope->children);
    if (soap_is(child, ns, "Header")) {
        p->header = child;
        child = soap_first_element(child->next);
    }
    if (!child) {
        snprintf(err, errlen, "line %ld: Envelope has no Body", xmlGetLineNo(p->envelope));
        return -1;
    }
    if (!soap_is(child, ns, "Body")) {
        snprintf(err, errlen, "line %ld: expected the Envelope's Body, found <%s>%s",
                 xmlGetLineNo(child), soap_qname(child, name, sizeof(name)),
                 xmlStrEqual(child->name, BAD_CAST "Body")
                     ? " in another namespace than the Envelope's"
                     : "");
        return -1;
    }
    p->body = child;
    p->first = soap_first_element(child->children);
    return 0;
}

/* ---- Requests ------------------------------------------------------------ */

static xmlNodePtr soap_child(xmlNodePtr parent, const char *ns, const char *name)
{
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        if (soap_is(c, ns, name))
            return c;
    return NULL;
}

/* wsse:Security/wsse:UsernameToken/{Username,Password} in the Header. */
static int soap_username_token(struct soap_request *req, char *err, size_t errlen)
{
    xmlNodePtr sec = soap_child(req->header, SOAP_WSSE_NS, "Security");
    xmlNodePtr token = soap_child(sec, SOAP_WSSE_NS, "UsernameToken");
    if (!token)
        return 0;
    xmlNodePtr user = soap_child(token, SOAP_WSSE_NS, "Username");
    xmlNodePtr pass = soap_child(token, SOAP_WSSE_NS, "Password");
    if (!user) {
        snprintf(err, errlen, "line %ld: wsse:UsernameToken has no wsse:Username",
                 xmlGetLineNo(token));
        return -1;
    }
    req->username = soap_text(user, false);
    req->password = soap_text(pass, false);
    if (!req->username || (pass && !req->password)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    xmlChar *type = pass ? xmlGetProp(pass, BAD_CAST "Type") : NULL;
    size_t tlen = type ? strlen((const char *)type) : 0, slen = strlen(SOAP_DIGEST_SUFFIX);
    req->password_digest =
        tlen >= slen && !strcmp((const char *)type + tlen - slen, SOAP_DIGEST_SUFFIX);
    xmlFree(type);
    return 0;
}

static int soap_request_fill(struct soap_request *out, char *err, size_t errlen)
{
    struct soap_parts p;
    if (soap_envelope_find(out->doc, &p, err, errlen) < 0)
        return SOAP_ERR_MALFORMED;
    out->header = p.header;
    out->body = p.body;
    if (!p.first) {
        snprintf(err, errlen,
                 "line %ld: Body is empty: its first element names the operation to call",
                 xmlGetLineNo(p.body));
        return SOAP_ERR_MALFORMED;
    }
    if (soap_is(p.first, soap_ns_of(p.version), "Fault")) {
        snprintf(err, errlen, "line %ld: Body holds a Fault, not a request", xmlGetLineNo(p.first));
        return SOAP_ERR_MALFORMED;
    }
    out->operation = p.first;
    out->operation_name = strdup((const char *)p.first->name);
    if (p.first->ns && p.first->ns->href && p.first->ns->href[0])
        out->operation_ns = strdup((const char *)p.first->ns->href);
    if (!out->operation_name || (p.first->ns && p.first->ns->href[0] && !out->operation_ns)) {
        snprintf(err, errlen, "out of memory");
        return SOAP_ERR_MALFORMED;
    }
    return soap_username_token(out, err, errlen) < 0 ? SOAP_ERR_MALFORMED : 0;
}

void soap_request_free(struct soap_request *req)
{
    if (!req)
        return;
    xmlFreeDoc(req->doc);
    free(req->operation_name);
    free(req->operation_ns);
    free(req->action);
    free(req->username);
    free(req->password);
    enum soap_version v = req->version;
    memset(req, 0, sizeof(*req));
    req->version = v;
}

int soap_request_parse(const char *buf, size_t len, const char *content_type,
                       const struct xml_limits *lim, struct soap_request *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->version = SOAP_1_1;
    enum soap_version announced = 0;
    int rc =
        content_type ? soap_content_type(content_type, &announced, &out->action, err, errlen) : 0;
    if (announced)
        out->version = announced;
    if (rc < 0) {
        soap_request_free(out);
        return rc;
    }
    out->doc = xml_parse_safe(buf, len, lim, err, errlen);
    if (!out->doc) {
        soap_request_free(out);
        return SOAP_ERR_MALFORMED;
    }
    xmlNodePtr root = xmlDocGetRootElement(out->doc);
    enum soap_version found;
    rc = soap_version_of(root, &found, err, errlen) < 0 ? SOAP_ERR_MALFORMED : 0;
    if (rc == 0 && announced && found != announced) {
        out->version = found; /* answer in the envelope's own version */
        snprintf(err, errlen, "SOAP %s envelope sent with Content-Type %s (SOAP %s): use %s",
                 found == SOAP_1_2 ? "1.2" : "1.1",
                 announced == SOAP_1_2 ? "application/soap+xml" : "text/xml",
                 announced == SOAP_1_2 ? "1.2" : "1.1",
                 found == SOAP_1_2 ? "application/soap+xml" : "text/xml");
        rc = SOAP_ERR_CONTENT_TYPE;
    }
    if (rc == 0) {
        out->version = found;
        rc = soap_request_fill(out, err, errlen);
    }
    if (rc < 0)
        soap_request_free(out);
    return rc;
}

/* ---- Writing envelopes -------------------------------------------------- */

/* The document as text with an XML declaration, in malloc'd memory. */
static char *soap_doc_dump(xmlDocPtr doc, size_t *out_len)
{
    xmlChar *mem = NULL;
    int size = 0;
    xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
    char *text = mem ? malloc((size_t)size + 1) : NULL;
    if (text) {
        memcpy(text, mem, (size_t)size);
        text[size] = '\0';
        if (out_len)
            *out_len = (size_t)size;
    }
    xmlFree(mem);
    return text;
}

/* A new document holding <soap:Envelope>; *ns receives the soap namespace. */
static xmlDocPtr soap_doc_new(enum soap_version v, xmlNodePtr *env, xmlNsPtr *ns)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    *env = doc ? xmlNewDocNode(doc, NULL, BAD_CAST "Envelope", NULL) : NULL;
    if (!*env) {
        xmlFreeDoc(doc);
        return NULL;
    }
    xmlDocSetRootElement(doc, *env);
    *ns = xmlNewNs(*env, BAD_CAST soap_ns_of(v), BAD_CAST "soap");
    if (!*ns) {
        xmlFreeDoc(doc);
        return NULL;
    }
    xmlSetNs(*env, *ns);
    return doc;
}

static int soap_check_text(const char *what, const char *s, char *err, size_t errlen)
{
    size_t len = strlen(s);
    for (size_t at = 0; at < len;) {
        unsigned long c;
        at += xml_char_next(s + at, len - at, &c);
        if (c == XML_CHAR_BAD_UTF8 || !xml_char_allowed(c)) {
            snprintf(err, errlen, "%s is not UTF-8 text XML can carry", what);
            return -1;
        }
    }
    return 0;
}

/* An unqualified child with escaped text (xmlNewTextChild would inherit the
 * parent's namespace; SOAP 1.1 faultcode and faultstring have none). */
static xmlNodePtr soap_add_unqualified(xmlNodePtr parent, const char *name, const char *text)
{
    xmlNodePtr n = xmlNewDocRawNode(parent->doc, NULL, BAD_CAST name, BAD_CAST text);
    if (n && !xmlAddChild(parent, n)) {
        xmlFreeNode(n);
        return NULL;
    }
    return n;
}

/* <soap:Header><wsse:Security><wsse:UsernameToken>… under env. */
static int soap_add_security(xmlNodePtr env, xmlNsPtr soap, const char *username,
                             const char *password)
{
    xmlNodePtr header = xmlNewChild(env, soap, BAD_CAST "Header", NULL);
    xmlNodePtr sec = header ? soap_add_unqualified(header, "Security", NULL) : NULL;
    xmlNsPtr wsse = sec ? xmlNewNs(sec, BAD_CAST SOAP_WSSE_NS, BAD_CAST "wsse") : NULL;
    if (!wsse)
        return -1;
    xmlSetNs(sec, wsse);
    xmlNodePtr token = xmlNewChild(sec, wsse, BAD_CAST "UsernameToken", NULL);
    if (!token || !xmlNewTextChild(token, wsse, BAD_CAST "Username", BAD_CAST username))
        return -1;
    if (!password)
        return 0;
    xmlNodePtr pass = xmlNewTextChild(token, wsse, BAD_CAST "Password", BAD_CAST password);
    return pass && xmlNewProp(pass, BAD_CAST "Type", BAD_CAST SOAP_PASSWORD_TEXT) ? 0 : -1;
}

char *soap_envelope_wrap(enum soap_version v, const char *body_xml, size_t len,
                         const char *username, const char *password, const struct xml_limits *lim,
                         size_t *out_len, char *err, size_t errlen)
{
    if ((username && soap_check_text("username", username, err, errlen) < 0) ||
        (username && password && soap_check_text("password", password, err, errlen) < 0))
        return NULL;
    char perr[512];
    xmlDocPtr frag = xml_parse_safe(body_xml, len, lim, perr, sizeof(perr));
    if (!frag) {
        snprintf(err, errlen, "body is not one well-formed XML element: %s", perr);
        return NULL;
    }
    xmlNodePtr env;
    xmlNsPtr soap;
    char *text = NULL;
    xmlDocPtr doc = soap_doc_new(v, &env, &soap);
    int rc = doc ? 0 : -1;
    if (rc == 0 && username)
        rc = soap_add_security(env, soap, username, password);
    xmlNodePtr body = rc == 0 ? xmlNewChild(env, soap, BAD_CAST "Body", NULL) : NULL;
    xmlNodePtr copy = body ? xmlDocCopyNode(xmlDocGetRootElement(frag), doc, 1) : NULL;
    if (copy && xmlAddChild(body, copy))
        text = soap_doc_dump(doc, out_len);
    else
        xmlFreeNode(copy);
    if (!text)
        snprintf(err, errlen, "out of memory");
    xmlFreeDoc(doc);
    xmlFreeDoc(frag);
    return text;
}

/* reason with invalid UTF-8 and characters XML cannot carry as U+FFFD. */
static char *soap_sanitize(const char *reason)
{
    size_t len = strlen(reason);
    char *out = malloc(len * 3 + 1), *o = out; /* one bad byte -> 3 bytes */
    if (!out)
        return NULL;
    for (size_t at = 0; at < len;) {
        unsigned long c;
        size_t n = xml_char_next(reason + at, len - at, &c);
        if (c == XML_CHAR_BAD_UTF8 || !xml_char_allowed(c)) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            memcpy(o, reason + at, n);
            o += n;
        }
        at += n;
    }
    *o = '\0';
    return out;
}

static int soap_fault_fill(enum soap_version v, xmlNodePtr fault, xmlNsPtr soap, bool client,
                           const char *reason)
{
    if (v == SOAP_1_1) {
        const char *code = client ? "soap:Client" : "soap:Server";
        return soap_add_unqualified(fault, "faultcode", code) &&
                       soap_add_unqualified(fault, "faultstring", reason)
                   ? 0
                   : -1;
    }
    const char *code = client ? "soap:Sender" : "soap:Receiver";
    xmlNodePtr c = xmlNewChild(fault, soap, BAD_CAST "Code", NULL);
    xmlNodePtr r = c && xmlNewTextChild(c, soap, BAD_CAST "Value", BAD_CAST code)
                       ? xmlNewChild(fault, soap, BAD_CAST "Reason", NULL)
                       : NULL;
    xmlNodePtr t = r ? xmlNewTextChild(r, soap, BAD_CAST "Text", BAD_CAST reason) : NULL;
    if (!t)
        return -1;
    xmlNodeSetLang(t, BAD_CAST "en");
    return 0;
}

char *soap_fault_build(enum soap_version v, bool client_fault, const char *reason, size_t *out_len)
{
    char *clean = soap_sanitize(reason ? reason : "");
    xmlNodePtr env;
    xmlNsPtr soap;
    xmlDocPtr doc = clean ? soap_doc_new(v, &env, &soap) : NULL;
    xmlNodePtr body = doc ? xmlNewChild(env, soap, BAD_CAST "Body", NULL) : NULL;
    xmlNodePtr fault = body ? xmlNewChild(body, soap, BAD_CAST "Fault", NULL) : NULL;
    char *text = NULL;
    if (fault && soap_fault_fill(v, fault, soap, client_fault, clean) == 0)
        text = soap_doc_dump(doc, out_len);
    xmlFreeDoc(doc);
    free(clean);
    return text;
}

/* ---- Responses ---------------------------------------------------------- */

/* Is the fault code (a QName written in node's scope) the caller's fault? */
static bool soap_code_is_client(xmlNodePtr node, const char *code, enum soap_version v)
{
    const char *local = strchr(code, ':') ? strchr(code, ':') + 1 : code;
    if (local != code) {
        char *prefix = strndup(code, (size_t)(local - code - 1));
        xmlNsPtr ns = prefix ? xmlSearchNs(node->doc, node, BAD_CAST prefix) : NULL;
        free(prefix);
        /* a code in an application namespace says nothing about whose fault it is */
        if (ns && ns->href && strcmp((const char *)ns->href, soap_ns_of(v)) != 0)
            return false;
    }
    static const char *const client[] = {"Client", "Sender", "VersionMismatch", "MustUnderstand",
                                         "DataEncodingUnknown"};
    for (size_t i = 0; i < sizeof(client) / sizeof(client[0]); i++) {
        size_t n = strlen(client[i]);
        /* SOAP 1.1 allows dotted refinements such as Client.Authentication */
        if (!strncmp(local, client[i], n) && (local[n] == '\0' || local[n] == '.'))
            return true;
    }
    return false;
}

/* Reads faultcode/faultstring (1.1, matched by local name as servers differ
 * on qualifying them) or Code/Value and Reason/Text (1.2). */
static int soap_fault_read(struct soap_response *out, xmlNodePtr fault)
{
    xmlNodePtr code = NULL, reason = NULL;
    for (xmlNodePtr c = soap_first_element(fault->children); c; c = soap_first_element(c->next)) {
        if (out->version == SOAP_1_1 && xmlStrEqual(c->name, BAD_CAST "faultcode"))
            code = code ? code : c;
        else if (out->version == SOAP_1_1 && xmlStrEqual(c->name, BAD_CAST "faultstring"))
            reason = reason ? reason : c;
        else if (out->version == SOAP_1_2 && soap_is(c, SOAP_12_NS, "Code"))
            code = soap_child(c, SOAP_12_NS, "Value");
        else if (out->version == SOAP_1_2 && soap_is(c, SOAP_12_NS, "Reason"))
            reason = soap_child(c, SOAP_12_NS, "Text");
    }
    out->fault = true;
    out->fault_code = soap_text(code, true);
    out->fault_reason = soap_text(reason, true);
    if ((code && !out->fault_code) || (reason && !out->fault_reason))
        return -1;
    out->client_fault = out->fault_code && soap_code_is_client(code, out->fault_code, out->version);
    return 0;
}

void soap_response_free(struct soap_response *resp)
{
    if (!resp)
        return;
    xmlFreeDoc(resp->doc);
    free(resp->fault_code);
    free(resp->fault_reason);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

int soap_response_parse(const char *buf, size_t len, const struct xml_limits *lim,
                        struct soap_response *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->doc = xml_parse_safe(buf, len, lim, err, errlen);
    if (!out->doc)
        return -1;
    struct soap_parts p;
    int rc = soap_envelope_find(out->doc, &p, err, errlen);
    if (rc == 0) {
        out->version = p.version;
        if (soap_is(p.first, soap_ns_of(p.version), "Fault")) {
            rc = soap_fault_read(out, p.first);
        } else if (p.first) {
            out->content = p.first;
            out->body = xml_node_serialize(p.first, &out->body_len);
            rc = out->body ? 0 : -1;
        }
        if (rc < 0)
            snprintf(err, errlen, "out of memory");
    }
    if (rc < 0)
        soap_response_free(out);
    return rc;
}
