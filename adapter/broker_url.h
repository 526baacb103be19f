/*
 * broker_url — parse `amqp://user:pass@host:port/vhost` and `amqps://…`.
 *
 * Our own parser rather than amqp_parse_url, for messages that say exactly
 * what is wrong. Percent-escapes are decoded in user, password and vhost
 * (`%2f` is the vhost "/"); an empty path means vhost "/". Query parameters
 * are refused: their settings have config keys (heartbeat, tls).
 */
#ifndef SIDECAR_BROKER_URL_H
#define SIDECAR_BROKER_URL_H

#include <stdbool.h>
#include <stddef.h>

struct broker_url {
    bool tls;
    char *user;
    char *password;
    char *host;
    int port;
    char *vhost;
};

/* 0, or -1 with err filled. On success the caller owns out (broker_url_free). */
int broker_url_parse(const char *text, struct broker_url *out, char *err, size_t errlen);
void broker_url_free(struct broker_url *u);
/* "amqps://user@host:port/vhost", no password: for logs. Caller frees. */
char *broker_url_display(const struct broker_url *u);

#endif
