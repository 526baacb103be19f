/*
 * listen_tls — TLS on a listener of ours (http and soap inbound routes, the
 * admin endpoint): `tls = { cert; key; client_ca; }`, what `check` proves about
 * it, and the PEM text the server hands libmicrohttpd (GnuTLS) at start.
 *
 * check loads the files exactly as the server will (GnuTLS, the library MHD
 * uses): the certificate chain and key parse and belong together, client_ca
 * holds at least one certificate; a certificate that expires within 30 days
 * (or already did, or is not valid yet) is a warning. The key file is a
 * secret (mode 0600, config_secrets.c).
 *
 * With client_ca the listener requires a client certificate that client_ca
 * issued, verified during the handshake (listen_tls_require_client): a
 * client without one, or with another CA's, never gets to send a request.
 *
 * Ownership: the config struct's strings are the config's; struct listen_tls
 * owns copies (the key's is wiped when freed), so SIGHUP replacing the secret
 * value never pulls memory from under a running server.
 */
#ifndef SIDECAR_LISTEN_TLS_H
#define SIDECAR_LISTEN_TLS_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

/* struct listen_tls_config is config.h's (the admin endpoint has one too). */

/* The `tls` group's keys; offsets count from a struct listen_tls_config. */
extern const struct config_key listen_tls_keys[];

/* Is a tls group written (whatever it holds)? */
bool listen_tls_configured(const struct listen_tls_config *t);

/* check's proof of t (a no-op when not configured); where names the owner
 * ("inbound route \"orders\"", "admin"), problems and warnings go to rep. */
void listen_tls_validate(const struct listen_tls_config *t, const char *where,
                         struct config_report *rep);

/* Do a and b give a listener the same TLS (both none, or the same files)? */
bool listen_tls_same(const struct listen_tls_config *a, const struct listen_tls_config *b);

/* What a running server holds: NUL-terminated PEM, as MHD takes it. */
struct listen_tls {
    char *cert_pem;
    char *key_pem;
    char *client_ca_pem; /* NULL: no client certificates asked for */
};

/* Reads t's files for a server; NULL with err. Caller frees with listen_tls_free. */
struct listen_tls *listen_tls_load(const struct listen_tls_config *t, char *err, size_t errlen);
void listen_tls_free(struct listen_tls *t);

/* TLS 1.2 and 1.3, GnuTLS's NORMAL suites otherwise. */
#define LISTEN_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* With client_ca, TLS 1.2 only. In TLS 1.3 the client's handshake ends
 * before the server has read its certificate, and MHD closes a failed
 * handshake without an alert: a refused client would see its handshake
 * succeed and its request go unanswered. In TLS 1.2 the server refuses
 * before the client's handshake completes, so the client sees a handshake
 * failure, which is what it is. */
#define LISTEN_TLS_PRIORITIES_MUTUAL "NORMAL:-VERS-ALL:+VERS-TLS1.2"

/* A new connection, before its handshake (MHD's connect notification): make
 * the handshake require a client certificate and verify it against the
 * server's trust store (client_ca). session is MHD's gnutls_session_t. 0, or -1. */
int listen_tls_require_client(void *session);

/* After the handshake: did the client present a certificate that verified?
 * (A second look at what the handshake already enforced.) */
bool listen_tls_client_verified(void *session);

#endif
