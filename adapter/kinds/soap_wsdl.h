/*
 * soap_wsdl — the WSDL a `soap` inbound route serves at `GET path?wsdl`.
 *
 * Loaded once while the config is validated (a WSDL that is not well-formed
 * XML, or has a DTD, fails `check`), with every soap:address / soap12:address
 * location set to the route's `wsdl_address` when one is configured. It also
 * tells which requests are one-way: WSDL 1.1 operations with an input and no
 * output, so an rpc route answers those 202 after the confirm instead of
 * waiting for a reply that will never come; and which SOAPAction each request
 * must carry: the soapAction of its SOAP binding operation (WS-I BP R2744,
 * R2745).
 */
#ifndef SIDECAR_SOAP_WSDL_H
#define SIDECAR_SOAP_WSDL_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* A request whose Body starts with element `name` (local name) may carry `action`. */
struct soap_wsdl_action {
    char *name;
    char *action; /* "" when the binding declares none */
};

struct soap_wsdl {
    char *text; /* the document as served */
    size_t len;
    struct strlist one_way;           /* Body element names of one-way operations */
    struct soap_wsdl_action *actions; /* of every SOAP 1.1 and 1.2 binding operation */
    size_t n_actions, cap_actions;
};

/* Reads and checks path; address (may be NULL) replaces the endpoint locations.
 * 0 with *out filled (free with soap_wsdl_free), or -1 with err and nothing to free. */
int soap_wsdl_load(const char *path, const char *address, struct soap_wsdl *out, char *err,
                   size_t errlen);
void soap_wsdl_free(struct soap_wsdl *w);

/* Is a request whose Body starts with element `name` (local name) a one-way operation? */
bool soap_wsdl_one_way(const struct soap_wsdl *w, const char *name);

/* The one-way names, comma-separated, into out (for `check` and logs). */
void soap_wsdl_describe_one_way(const struct soap_wsdl *w, struct buf *out);

enum soap_wsdl_verdict {
    SOAP_WSDL_ACTION_UNKNOWN,  /* no SOAP binding operation takes a Body starting with name */
    SOAP_WSDL_ACTION_MATCH,    /* action is one a binding declares for it */
    SOAP_WSDL_ACTION_MISMATCH, /* it is not */
};

/* Checks action (unquoted; "" for an empty SOAPAction) for a request whose Body
 * starts with element `name` (local name), against every SOAP binding. */
enum soap_wsdl_verdict soap_wsdl_action_check(const struct soap_wsdl *w, const char *name,
                                              const char *action);

/* The actions declared for name, each quoted, joined with " or ", into out. */
void soap_wsdl_describe_actions(const struct soap_wsdl *w, const char *name, struct buf *out);

#endif
