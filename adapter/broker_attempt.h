/*
 * broker_attempt — one attempt to open the broker connection, on a thread of
 * its own: TCP connect, TLS, login, the topology's declarations and confirm
 * mode can each take seconds against a slow or unreachable broker, and the
 * loop that owns the connection must keep serving meanwhile (its HTTP
 * listeners answer 503 at once while the broker is down, and time their
 * clients out). The attempt's thread touches nothing but the connection it
 * opens; when it is done it posts the attempt back to the loop.
 */
#ifndef SIDECAR_BROKER_ATTEMPT_H
#define SIDECAR_BROKER_ATTEMPT_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>

struct broker_config;
struct broker_url;
struct loop;
struct topology;
struct broker_attempt;

/* Runs on the loop's thread once the attempt is over (connected or not). */
typedef void (*broker_attempt_fn)(struct broker_attempt *a, void *arg);

/* Starts connecting to u (cfg, topo and u must outlive the attempt). NULL if
 * no thread could be started. */
struct broker_attempt *broker_attempt_start(const struct broker_config *cfg,
                                            const struct broker_url *u, const char *connection_name,
                                            const struct topology *topo, struct loop *loop,
                                            broker_attempt_fn done, void *arg);

/* After done: the connection, open and declared, in confirm mode on
 * BROKER_CHANNEL, now the caller's; or NULL with *err (valid until free) and
 * *fatal (a failure that retrying will not cure, e.g. a queue declared with
 * other arguments). */
amqp_connection_state_t broker_attempt_take(struct broker_attempt *a, const char **err,
                                            bool *fatal);

/* Waits for the attempt's thread (for as long as the attempt takes: at most
 * the connect and RPC timeouts), closes a connection nobody took, frees. */
void broker_attempt_free(struct broker_attempt *a);

#endif
