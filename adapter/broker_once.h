/*
 * broker_once — opening a connection (for a connect attempt's thread, which
 * hands it to the broker's loop), and synchronous connections for commands that
 * run once and exit (replay, check --connect): connect trying each URL in
 * turn, open channel BROKER_CHANNEL, use it directly, close.
 */
#ifndef SIDECAR_BROKER_ONCE_H
#define SIDECAR_BROKER_ONCE_H

#include "broker_client.h"

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>

struct broker_config;
struct broker_url;

/* Opens one connection to u (TLS per cfg) named connection_name, logged in,
 * channel BROKER_CHANNEL open. 0, or -1 with err saying what and how to fix. */
int broker_open(const struct broker_config *cfg, const struct broker_url *u,
                const char *connection_name, amqp_connection_state_t *out, char *err,
                size_t errlen);
/* Closes (gracefully: channel.close and connection.close first) and frees conn. */
void broker_close(amqp_connection_state_t conn, bool graceful);
/* A reply as words for a log line or an error. */
void broker_reply_describe(amqp_rpc_reply_t r, char *out, size_t n);

/* vhost and where ("amqp://…", without the password) are the caller's to
 * free. 0, or -1 with err. */
int broker_connect_once(const struct broker_config *cfg, const char *system_name, const char *label,
                        amqp_connection_state_t *out, char **vhost, char **where, char *err,
                        size_t errlen);
void broker_close_once(amqp_connection_state_t conn);

/* Declares t on a connection of its own, then closes it (SIGHUP: the queues
 * and bindings of new inbound routes, before they start). 0, or -1 with err. */
struct topology;
int broker_declare_once(const struct broker_config *cfg, const char *system_name,
                        const struct topology *t, char *err, size_t errlen);

#endif
