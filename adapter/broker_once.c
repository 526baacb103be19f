/*
 * broker_once — opening an AMQP connection: TLS, login with our client
 * properties and capabilities, channel BROKER_CHANNEL; errors with the hint
 * that fixes them. The broker's thread opens its connections with it, and so
 * do the commands that connect once and exit (replay, check --connect).
 */
#include "broker_once.h"

#include "broker.h"
#include "broker_url.h"
#include "config.h"
#include "topology.h"
#include "util.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define FRAME_MAX 131072

/* ---- opening a connection (shared with broker_probe) ----------------------- */

static const char *open_hint(int status)
{
    switch (status) {
    case AMQP_STATUS_SOCKET_ERROR:
    case AMQP_STATUS_CONNECTION_CLOSED:
        return "; is RabbitMQ running and listening there?";
    case AMQP_STATUS_TIMEOUT:
        return "; no answer in time: check host, port and firewalls, or raise "
               "broker.connect_timeout";
    case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
        return "; the broker's certificate is not trusted: set broker.tls.ca to the CA that "
               "signed it";
    case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
        return "; the certificate does not name this host: connect with the name it was issued "
               "for";
    case AMQP_STATUS_SSL_CONNECTION_FAILED:
    case AMQP_STATUS_SSL_ERROR:
        return "; is the port a TLS listener (amqps://, usually 5671)?";
    default:
        return "";
    }
}

void broker_reply_describe(amqp_rpc_reply_t r, char *out, size_t n)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(out, n, "ok");
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(out, n, "%s%s", amqp_error_string2(r.library_error), open_hint(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *c = r.reply.decoded;
            snprintf(out, n, "broker closed the connection: %.*s", (int)c->reply_text.len,
                     (char *)c->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *c = r.reply.decoded;
            snprintf(out, n, "broker closed the channel: %.*s", (int)c->reply_text.len,
                     (char *)c->reply_text.bytes);
        } else {
            snprintf(out, n, "broker error (method 0x%08x)", r.reply.id);
        }
        break;
    default:
        snprintf(out, n, "no reply");
        break;
    }
}

static void timeval_from(double seconds, struct timeval *tv)
{
    tv->tv_sec = (time_t)seconds;
    tv->tv_usec = (suseconds_t)((seconds - (double)tv->tv_sec) * 1e6);
}

int broker_open(const struct broker_config *cfg, const struct broker_url *u,
                const char *connection_name, amqp_connection_state_t *out, char *err, size_t errlen)
{
    *out = NULL;
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = u->tls ? amqp_ssl_socket_new(conn) : amqp_tcp_socket_new(conn);
    if (sock == NULL) {
        snprintf(err, errlen, "cannot create a %s socket", u->tls ? "TLS" : "TCP");
        amqp_destroy_connection(conn);
        return -1;
    }
    if (u->tls) {
        amqp_ssl_socket_set_verify_peer(sock, cfg->tls.verify);
        amqp_ssl_socket_set_verify_hostname(sock, cfg->tls.verify);
        if (cfg->tls.ca && amqp_ssl_socket_set_cacert(sock, cfg->tls.ca) != AMQP_STATUS_OK) {
            snprintf(err, errlen, "cannot load broker.tls.ca \"%s\" (is it PEM?)", cfg->tls.ca);
            amqp_destroy_connection(conn);
            return -1;
        }
        if (cfg->tls.cert &&
            amqp_ssl_socket_set_key(sock, cfg->tls.cert, cfg->tls.key.path) != AMQP_STATUS_OK) {
            snprintf(err, errlen,
                     "cannot load client certificate \"%s\" and key \"%s\" (PEM, and do they "
                     "match?)",
                     cfg->tls.cert, cfg->tls.key.path);
            amqp_destroy_connection(conn);
            return -1;
        }
    }

    struct timeval tv;
    timeval_from(cfg->connect_timeout, &tv);
    int rc = amqp_socket_open_noblock(sock, u->host, u->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, errlen, "cannot connect: %s%s", amqp_error_string2(rc), open_hint(rc));
        amqp_destroy_connection(conn);
        return -1;
    }
    amqp_set_handshake_timeout(conn, &tv);
    struct timeval rpc_tv;
    timeval_from(cfg->connect_timeout * 4 < 30 ? 30 : cfg->connect_timeout * 4, &rpc_tv);
    amqp_set_rpc_timeout(conn, &rpc_tv);

    amqp_table_entry_t caps[] = {
        {amqp_cstring_bytes("connection.blocked"),
         {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
        {amqp_cstring_bytes("consumer_cancel_notify"),
         {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
        {amqp_cstring_bytes("publisher_confirms"),
         {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
        {amqp_cstring_bytes("basic.nack"), {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
    };
    amqp_table_t caps_table = {.num_entries = 4, .entries = caps};
    amqp_table_entry_t props[] = {
        {amqp_cstring_bytes("connection_name"),
         {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(connection_name)}},
        {amqp_cstring_bytes("product"),
         {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("amqp-sidecar")}},
        {amqp_cstring_bytes("version"),
         {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(SIDECAR_VERSION)}},
        {amqp_cstring_bytes("capabilities"),
         {.kind = AMQP_FIELD_KIND_TABLE, .value.table = caps_table}},
    };
    amqp_table_t props_table = {.num_entries = 4, .entries = props};
    const char *password = cfg->password.value ? cfg->password.value : u->password;
    amqp_rpc_reply_t r =
        amqp_login_with_properties(conn, u->vhost, 0, FRAME_MAX, cfg->heartbeat, &props_table,
                                   AMQP_SASL_METHOD_PLAIN, u->user, password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[512];
        broker_reply_describe(r, why, sizeof(why));
        snprintf(err, errlen, "login as \"%s\" on vhost \"%s\" failed: %s%s", u->user, u->vhost,
                 why,
                 r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION
                     ? "; check the user, password (broker.password_file) and the user's "
                       "permissions on the vhost"
                     : "");
        amqp_destroy_connection(conn);
        return -1;
    }
    amqp_channel_open(conn, BROKER_CHANNEL);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[512];
        broker_reply_describe(r, why, sizeof(why));
        snprintf(err, errlen, "opening a channel failed: %s", why);
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(conn);
        return -1;
    }
    *out = conn;
    return 0;
}

void broker_close(amqp_connection_state_t conn, bool graceful)
{
    if (conn == NULL)
        return;
    if (graceful) {
        amqp_channel_close(conn, BROKER_CHANNEL, AMQP_REPLY_SUCCESS);
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(conn);
}

/* ---- one-shot connections (check --connect, replay) -------------------------- */

int broker_connect_once(const struct broker_config *cfg, const char *system_name, const char *label,
                        amqp_connection_state_t *out, char **vhost, char **where, char *err,
                        size_t errlen)
{
    struct buf tried = {0};
    char *name = xasprintf("amqp-sidecar/%s/%s", system_name, label);
    for (size_t i = 0; i < cfg->urls.n; i++) {
        struct broker_url u;
        if (broker_url_parse(cfg->urls.v[i], &u, err, errlen) != 0)
            break;
        char *display = broker_url_display(&u);
        char why[1024];
        if (broker_open(cfg, &u, name, out, why, sizeof(why)) == 0) {
            *vhost = xstrdup(u.vhost);
            *where = display;
            broker_url_free(&u);
            buf_free(&tried);
            free(name);
            return 0;
        }
        buf_printf(&tried, "%s%s: %s", tried.len ? "; " : "", display, why);
        free(display);
        broker_url_free(&u);
    }
    if (tried.len)
        snprintf(err, errlen, "no broker reachable: %s", tried.data);
    buf_free(&tried);
    free(name);
    return -1;
}

void broker_close_once(amqp_connection_state_t conn)
{
    broker_close(conn, true);
}

int broker_probe(const struct broker_config *cfg, const char *system_name, const struct topology *t,
                 struct buf *warnings, char *err, size_t errlen)
{
    amqp_connection_state_t conn;
    char *vhost, *where;
    if (broker_connect_once(cfg, system_name, "check", &conn, &vhost, &where, err, errlen) != 0)
        return -1;
    /* Only the passive checks: `check` must change nothing on the broker. */
    struct topology passive = {.checked = t->checked, .n_checked = t->n_checked};
    bool fatal;
    int rc = topology_declare(conn, BROKER_CHANNEL, &passive, vhost, &fatal, err, errlen);
    if (rc == 0)
        rc = topology_check_quorum(conn, BROKER_CHANNEL, t, vhost, warnings, err, errlen);
    broker_close(conn, true);
    if (rc == 0)
        snprintf(err, errlen, "%s", where);
    free(vhost);
    free(where);
    return rc;
}

int broker_declare_once(const struct broker_config *cfg, const char *system_name,
                        const struct topology *t, char *err, size_t errlen)
{
    amqp_connection_state_t conn;
    char *vhost, *where;
    if (broker_connect_once(cfg, system_name, "reload", &conn, &vhost, &where, err, errlen) != 0)
        return -1;
    bool fatal;
    int rc = topology_declare(conn, BROKER_CHANNEL, t, vhost, &fatal, err, errlen);
    broker_close(conn, rc == 0);
    free(vhost);
    free(where);
    return rc;
}
