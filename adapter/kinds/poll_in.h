/*
 * poll_in.h — the options of the poll inbound kind (poll_in.c), for the kind
 * and for `amqp-sidecar test`, which shortens interval while a case runs so
 * the route's next GET (held unanswered) marks the end of its polls.
 */
#ifndef SIDECAR_POLL_IN_H
#define SIDECAR_POLL_IN_H

#include "config.h"
#include "legacy_auth.h"

struct poll_in_opts {
    char *url;
    double interval;
    char *items;
    char *id;
    char *cursor;
    char *cursor_from;
    char *initial_cursor;
    double timeout;
    int max_response;
    struct strmap headers;
    struct secret bearer_token; /* deprecated: moved into auth by validate */
    struct legacy_auth auth;
    struct tls_config tls;
};

#endif
