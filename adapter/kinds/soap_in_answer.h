/*
 * soap_in_answer — what a soap inbound route answers, always SOAP: Faults in
 * the request's version (Client/Sender for input we refuse, Server/Receiver
 * for broker trouble and broken replies), the 202 of a one-way request, and
 * the rpc reply wrapped in a response envelope. soap_in.c reads requests and
 * publishes through http_front.c, which answers through soap_in_answers.
 * Nothing here keeps memory: bodies are built, sent and freed in one call.
 */
#ifndef SIDECAR_SOAP_IN_ANSWER_H
#define SIDECAR_SOAP_IN_ANSWER_H

#include "http_front.h"
#include "soap_envelope.h"

#include <stdbool.h>
#include <stddef.h>

struct header;
struct http_request;
struct route;

/* The answers of http_front_publish for soap routes (p->version: enum soap_version). */
extern const struct http_front_answers soap_in_answers;

/* "1.1" / "1.2". */
const char *soap_in_version_name(enum soap_version v);
/* The Content-Type of a message in version v. */
const char *soap_in_media_type(enum soap_version v);
/* The HTTP status of a Client/Sender fault: WS-I BP R1126 (1.1), SOAP 1.2 part 2 §7.5.1.2. */
int soap_in_client_fault_status(enum soap_version v);

/* Answers req with a Fault (client: Client/Sender, else Server/Receiver) and
 * the given status and headers (borrowed). */
void soap_in_fault(struct http_request *req, enum soap_version v, bool client, int status,
                   const char *reason, const struct header *headers, size_t n_headers);

/* A Client/Sender fault for input we will not publish, counted and logged;
 * `class` names the kind of client error in the log, `detail` is logged and
 * sent as the faultstring. */
void soap_in_refuse(struct route *r, struct http_request *req, enum soap_version v, int status,
                    const char *class, const char *detail);

#endif
