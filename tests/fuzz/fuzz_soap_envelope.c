/*
 * fuzz_soap_envelope.c — libFuzzer target for everything an untrusted SOAP
 * peer can reach: soap_request_parse (both content types), soap_response_parse,
 * soap_envelope_wrap, soap_fault_build and the XML <-> JSON convention.
 *
 * The input also serves as the Content-Type header of a fixed valid request.
 * Besides memory errors (ASan/UBSan) it checks properties and aborts when one
 * breaks: an accepted operation converts to JSON and back to XML that parses
 * to equal JSON; serialized Body content and built faults parse again; and no
 * element of a document xml_parse_safe accepted exceeds its attribute and
 * namespace limits (small ones here, for the fuzzer to reach), which would
 * mean the byte count before parsing missed what libxml2 built.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libxml/parser.h>

#include "soap_envelope.h"
#include "xml_safe.h"
#include "xmljson.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what, const char *detail)
{
    if (!ok) {
        fprintf(stderr, "property broken: %s\n%s\n", what, detail ? detail : "");
        abort();
    }
}

/* xmljson_from_node -> xmljson_to_xml -> parse -> xmljson_from_node must be stable. */
static void check_json_round_trip(xmlNodePtr element)
{
    char err[512];
    json_t *j1 = xmljson_from_node(element);
    check(j1 != NULL, "xmljson_from_node failed", NULL);
    size_t len;
    char *xml = xmljson_to_xml(j1, &len, err, sizeof(err));
    check(xml != NULL, "xmljson_to_xml refused JSON made from XML", err);
    xmlDocPtr doc = xml_parse_safe(xml, len, NULL, err, sizeof(err));
    check(doc != NULL, "xmljson_to_xml output does not parse", err);
    json_t *j2 = xmljson_from_node(xmlDocGetRootElement(doc));
    check(json_equal(j1, j2), "XML -> JSON -> XML -> JSON changed the JSON", xml);
    json_decref(j2);
    xmlFreeDoc(doc);
    free(xml);
    json_decref(j1);
}

static void check_parses(const char *xml, size_t len, const char *what)
{
    char err[512];
    xmlDocPtr doc = xml_parse_safe(xml, len, NULL, err, sizeof(err));
    check(doc != NULL, what, err);
    xmlFreeDoc(doc);
}

static void check_element_limits(const char *buf, size_t size)
{
    const struct xml_limits lim = {.max_attributes = 2, .max_namespaces = 1, .max_ns_in_scope = 3};
    char err[512];
    xmlDocPtr doc = xml_parse_safe(buf, size, &lim, err, sizeof(err));
    if (!doc)
        return;
    xmlNodePtr top = xmlDocGetRootElement(doc);
    for (xmlNodePtr n = top; n;) {
        if (n->type == XML_ELEMENT_NODE) {
            unsigned attributes = 0, own = 0, in_scope = 0;
            for (xmlAttrPtr a = n->properties; a; a = a->next)
                attributes++;
            for (xmlNodePtr e = n; e && e->type == XML_ELEMENT_NODE; e = e->parent)
                for (xmlNsPtr ns = e->nsDef; ns; ns = ns->next)
                    in_scope++, own += e == n;
            check(attributes <= lim.max_attributes, "element over the attribute limit", NULL);
            check(own <= lim.max_namespaces, "element over the namespace limit", NULL);
            check(in_scope <= lim.max_ns_in_scope, "over the in-scope namespace limit", NULL);
        }
        if (n->type == XML_ELEMENT_NODE && n->children) {
            n = n->children;
            continue;
        }
        while (n != top && !n->next)
            n = n->parent;
        n = n == top ? NULL : n->next;
    }
    xmlFreeDoc(doc);
}

static void fuzz_request(const char *buf, size_t size, const char *content_type)
{
    struct soap_request req;
    char err[512];
    if (soap_request_parse(buf, size, content_type, NULL, &req, err, sizeof(err)) != 0)
        return;
    check(req.operation && req.operation_name && req.body, "request without operation", NULL);
    size_t len;
    char *op = xml_node_serialize(req.operation, &len);
    check(op != NULL, "xml_node_serialize failed", NULL);
    check_parses(op, len, "serialized operation does not parse");
    check_json_round_trip(req.operation);
    char *env = soap_envelope_wrap(req.version, op, len, req.username, req.password, NULL, &len,
                                   err, sizeof(err));
    if (env) /* refused only for a username/password XML cannot carry */
        check_parses(env, len, "wrapped envelope does not parse");
    free(env);
    free(op);
    soap_request_free(&req);
}

static void fuzz_response(const char *buf, size_t size)
{
    struct soap_response resp;
    char err[512];
    if (soap_response_parse(buf, size, NULL, &resp, err, sizeof(err)) != 0)
        return;
    if (resp.body)
        check_parses(resp.body, resp.body_len, "response body does not parse");
    if (resp.fault && resp.fault_reason) {
        size_t len;
        char *f = soap_fault_build(resp.version, resp.client_fault, resp.fault_reason, &len);
        check(f != NULL, "soap_fault_build failed", NULL);
        check_parses(f, len, "built fault does not parse");
        free(f);
    }
    soap_response_free(&resp);
}

/* The input as the Content-Type of a valid SOAP 1.2 request. */
static void fuzz_content_type(const char *ct)
{
    static const char env[] = "<e:Envelope xmlns:e=\"" SOAP_12_NS "\"><e:Body><op/></e:Body>"
                              "</e:Envelope>";
    struct soap_request req;
    char err[512];
    if (soap_request_parse(env, sizeof(env) - 1, ct, NULL, &req, err, sizeof(err)) == 0) {
        check(req.version == SOAP_1_2, "wrong version", ct);
        soap_request_free(&req);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    xmlInitParser();
    json_object_seed(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    check_element_limits(buf, size);
    fuzz_request(buf, size, "text/xml; charset=utf-8");
    fuzz_request(buf, size, "application/soap+xml; charset=utf-8; action=\"urn:Op\"");
    fuzz_response(buf, size);
    /* the raw input as a Content-Type and as a fault reason */
    char *reason = malloc(size + 1);
    if (reason) {
        memcpy(reason, data, size);
        reason[size] = '\0';
        fuzz_content_type(reason);
        size_t len;
        char *f = soap_fault_build(size % 2 ? SOAP_1_2 : SOAP_1_1, true, reason, &len);
        check(f != NULL, "soap_fault_build failed", NULL);
        check_parses(f, len, "fault with arbitrary reason does not parse");
        free(f);
        free(reason);
    }
    return 0;
}
