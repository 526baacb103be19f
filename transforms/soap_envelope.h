/*
 * soap_envelope.h — SOAP 1.1 / 1.2 envelopes: read requests, wrap bodies,
 * build faults, read responses. All parsing goes through xml_safe (no DTD,
 * bounded size and depth). Inbound: soap_request_parse + soap_fault_build.
 * Outbound: soap_envelope_wrap + soap_response_parse. Thread-safe.
 */
#ifndef SIDECAR_SOAP_ENVELOPE_H
#define SIDECAR_SOAP_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "xml_safe.h"

#define SOAP_11_NS "http://schemas.xmlsoap.org/soap/envelope/"
#define SOAP_12_NS "http://www.w3.org/2003/05/soap-envelope"
#define SOAP_WSSE_NS                                                                               \
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define SOAP_PASSWORD_TEXT                                                                         \
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"           \
    "#PasswordText"

enum soap_version { SOAP_1_1 = 1, SOAP_1_2 = 2 };

/* soap_request_parse results besides 0 */
#define SOAP_ERR_MALFORMED    (-1) /* not XML, not an envelope, no operation: Client fault */
#define SOAP_ERR_CONTENT_TYPE (-2) /* unsupported media type or version mismatch: HTTP 415 */

/* A parsed request. Strings are malloc'd and owned, nodes are borrowed from
 * doc; soap_request_free releases all. */
struct soap_request {
    enum soap_version version; /* set even on error: the version to answer a fault in */
    xmlDocPtr doc;
    xmlNodePtr header;    /* Header element, NULL when absent */
    xmlNodePtr body;      /* Body element */
    xmlNodePtr operation; /* first element child of Body */
    char *operation_name; /* its local name, e.g. "CreateCustomer" */
    char *operation_ns;   /* its namespace URI, NULL when none */
    char *action;         /* SOAP 1.2: action= of the Content-Type, else NULL */
    char *username;       /* wsse:Security/wsse:UsernameToken, else NULL */
    char *password;       /* NULL when the token has no Password */
    bool password_digest; /* Type was #PasswordDigest: password is the Base64 digest */
};

/* Parses an inbound request. content_type is the HTTP header value: text/xml
 * means SOAP 1.1, application/soap+xml SOAP 1.2, and the envelope must agree;
 * NULL accepts either. lim: NULL = xml_safe defaults. Fills *out (zeroed
 * first). 0, or SOAP_ERR_* with err set and *out holding nothing to free
 * (only out->version). */
int soap_request_parse(const char *buf, size_t len, const char *content_type,
                       const struct xml_limits *lim, struct soap_request *out, char *err,
                       size_t errlen);
void soap_request_free(struct soap_request *req);

/* An envelope of version v whose Body holds body_xml, which must be exactly
 * one well-formed element (parsed with lim, NULL = defaults). With username,
 * a wsse:Security header carries a UsernameToken with a PasswordText password
 * (password NULL = no Password element). Returns malloc'd XML text with an
 * XML declaration, its length in *out_len (may be NULL); NULL + err. */
char *soap_envelope_wrap(enum soap_version v, const char *body_xml, size_t len,
                         const char *username, const char *password, const struct xml_limits *lim,
                         size_t *out_len, char *err, size_t errlen);

/* A Fault envelope: 1.1 faultcode soap:Client/soap:Server + faultstring;
 * 1.2 Code/Value soap:Sender/soap:Receiver + Reason/Text xml:lang="en".
 * reason (NULL = "") is escaped; bytes XML cannot carry become U+FFFD.
 * Returns malloc'd text, its length in *out_len (may be NULL); NULL only
 * when memory ran out. */
char *soap_fault_build(enum soap_version v, bool client_fault, const char *reason, size_t *out_len);

/* A parsed response from a legacy SOAP server. Owned by the struct. */
struct soap_response {
    enum soap_version version;
    bool fault;
    bool client_fault;  /* Client/Sender (and VersionMismatch, MustUnderstand,
                           DataEncodingUnknown): retrying cannot help */
    char *fault_code;   /* faultcode / Code/Value as written, trimmed; may be NULL */
    char *fault_reason; /* faultstring / first Reason/Text, trimmed; may be NULL */
    xmlDocPtr doc;
    xmlNodePtr content; /* not a fault: first element child of Body, NULL if Body is empty */
    char *body;         /* content as standalone XML (see xml_node_serialize), or NULL */
    size_t body_len;
};

/* Parses a response envelope of either version (lim: NULL = defaults).
 * 0 with *out filled, or -1 with err set and nothing to free. */
int soap_response_parse(const char *buf, size_t len, const struct xml_limits *lim,
                        struct soap_response *out, char *err, size_t errlen);
void soap_response_free(struct soap_response *resp);

#endif
