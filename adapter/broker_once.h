/*
 * broker_once — a synchronous connection for commands that run once and
 * exit (replay, check --connect): connect trying each URL in turn, open
 * channel BROKER_CHANNEL, use it directly, close. No thread, no clients.
 */
#ifndef SIDECAR_BROKER_ONCE_H
#define SIDECAR_BROKER_ONCE_H

#include "broker_client.h"

#include <amqp.h>
#include <stddef.h>

struct broker_config;

/* vhost and where ("amqp://…", without the password) are the caller's to
 * free. 0, or -1 with err. */
int broker_connect_once(const struct broker_config *cfg, const char *system_name, const char *label,
                        amqp_connection_state_t *out, char **vhost, char **where, char *err,
                        size_t errlen);
void broker_close_once(amqp_connection_state_t conn);

#endif
