/*
 * listen_tls — a listener's certificate, key and client CA (see listen_tls.h):
 * the key table, check's proof with GnuTLS (the loader libmicrohttpd itself
 * uses, so what check accepts is what the server loads), the server's copies,
 * and the per-connection client-certificate requirement.
 *
 * Why the requirement is ours: libmicrohttpd 0.9.75 with a trust store
 * (MHD_OPTION_HTTPS_MEM_TRUST) only *requests* a client certificate
 * (GNUTLS_CERT_REQUEST) and never verifies it, so a client without one, or
 * with anyone's, would get through. MHD creates each connection's GnuTLS
 * session before its connect notification and shakes hands only after it, so
 * there we turn the request into GNUTLS_CERT_REQUIRE and have GnuTLS verify
 * the chain against the trust store during the handshake
 * (gnutls_session_set_verify_cert): a failure is a fatal alert, MHD closes
 * the connection, and no request is ever read from it.
 */
#include "listen_tls.h"

#include "util.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PEM_MAX       (1024 * 1024) /* a certificate chain or CA bundle */
#define EXPIRY_WARN_S (30 * 86400)
#define CHAIN_MAX     16

#define T(field) offsetof(struct listen_tls_config, field)

const struct config_key listen_tls_keys[] = {
    {"cert", KEY_FILE, T(cert), 0, NULL, NULL, 0, 0, NULL,
     "server certificate (PEM), then any intermediates, leaf first"},
    {"key", KEY_SECRET, T(key), 0, NULL, NULL, 0, 0, NULL,
     "the certificate's private key (PEM, unencrypted), mode 0600"},
    {"client_ca", KEY_FILE, T(client_ca), 0, NULL, NULL, 0, 0, NULL,
     "CA certificates (PEM) for mutual TLS: clients must present a certificate one of them "
     "issued, or the handshake fails"},
    {0},
};

bool listen_tls_configured(const struct listen_tls_config *t)
{
    return t->line > 0 || t->cert || t->key.path || t->client_ca;
}

static bool same_path(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

bool listen_tls_same(const struct listen_tls_config *a, const struct listen_tls_config *b)
{
    if (!listen_tls_configured(a) || !listen_tls_configured(b))
        return listen_tls_configured(a) == listen_tls_configured(b);
    return same_path(a->cert, b->cert) && same_path(a->key.path, b->key.path) &&
           same_path(a->client_ca, b->client_ca);
}

/* The file at path, NUL-terminated (PEM is text); NULL with err. */
static char *read_pem(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    char *data = xmalloc(PEM_MAX + 1);
    size_t n = fread(data, 1, PEM_MAX + 1, f);
    fclose(f);
    if (n > PEM_MAX) {
        snprintf(err, errlen, "\"%s\" is over %d bytes", path, PEM_MAX);
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

static gnutls_datum_t datum(const char *text, size_t len)
{
    return (gnutls_datum_t){.data = (unsigned char *)text, .size = (unsigned)len};
}

/* The PEM certificates in text; their count (0 with err when none parse). */
static unsigned import_chain(const char *text, size_t len, gnutls_x509_crt_t *out, char *err,
                             size_t errlen)
{
    unsigned n = CHAIN_MAX;
    gnutls_datum_t d = datum(text, len);
    int rc = gnutls_x509_crt_list_import(out, &n, &d, GNUTLS_X509_FMT_PEM,
                                         GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (rc == GNUTLS_E_SHORT_MEMORY_BUFFER) {
        snprintf(err, errlen, "holds more than %d certificates", CHAIN_MAX);
        return 0;
    }
    if (rc <= 0) {
        snprintf(err, errlen, "holds no PEM certificate (%s)",
                 rc == 0 ? "none found" : gnutls_strerror(rc));
        return 0;
    }
    return (unsigned)rc;
}

static void free_chain(gnutls_x509_crt_t *crts, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
}

static void date_text(time_t t, char *out, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm);
}

/* Warnings about the leaf's validity period. */
static void check_dates(gnutls_x509_crt_t leaf, const struct listen_tls_config *t,
                        const char *where, struct config_report *rep)
{
    time_t now = time(NULL);
    time_t until = gnutls_x509_crt_get_expiration_time(leaf);
    time_t from = gnutls_x509_crt_get_activation_time(leaf);
    char date[64];
    if (until != (time_t)-1 && until - now < EXPIRY_WARN_S) {
        date_text(until, date, sizeof(date));
        if (until <= now)
            config_report_note(rep, t->line,
                               "%s: tls.cert \"%s\" expired on %s; clients will refuse it — "
                               "renew it and restart",
                               where, t->cert, date);
        else
            config_report_note(rep, t->line,
                               "%s: tls.cert \"%s\" expires on %s (in %ld days); renew it and "
                               "restart before then",
                               where, t->cert, date, (long)((until - now) / 86400));
    }
    if (from != (time_t)-1 && from > now) {
        date_text(from, date, sizeof(date));
        config_report_note(rep, t->line, "%s: tls.cert \"%s\" is not valid before %s", where,
                           t->cert, date);
    }
}

/* cert and key load together, as MHD will load them. */
static void check_pair(const struct listen_tls_config *t, const char *cert, size_t cert_len,
                       const char *where, struct config_report *rep)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_privkey_init(&key);
    gnutls_datum_t kd = datum(t->key.value, t->key.len);
    int rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(key);
    if (rc < 0) {
        config_report_add(rep, t->key.line,
                          "%s: tls.key \"%s\" is not an unencrypted PEM private key (%s)", where,
                          t->key.path, gnutls_strerror(rc));
        return;
    }
    gnutls_certificate_credentials_t cred;
    gnutls_certificate_allocate_credentials(&cred);
    gnutls_datum_t cd = datum(cert, cert_len);
    rc = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cred);
    if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
        config_report_add(rep, t->key.line,
                          "%s: tls.key \"%s\" does not belong to tls.cert \"%s\"; name the key "
                          "the certificate was issued for",
                          where, t->key.path, t->cert);
    else if (rc < 0)
        config_report_add(rep, t->line, "%s: tls.cert and tls.key do not load together: %s", where,
                          gnutls_strerror(rc));
}

static void check_client_ca(const struct listen_tls_config *t, const char *where,
                            struct config_report *rep)
{
    char err[512];
    size_t len;
    char *text = read_pem(t->client_ca, &len, err, sizeof(err));
    if (text == NULL)
        return; /* the key engine reported an unreadable file */
    gnutls_x509_crt_t crts[CHAIN_MAX];
    unsigned n = CHAIN_MAX;
    gnutls_datum_t d = datum(text, len);
    /* A bundle, in any order: only whether it parses matters here. */
    int rc = gnutls_x509_crt_list_import(crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc == GNUTLS_E_SHORT_MEMORY_BUFFER)
        rc = CHAIN_MAX; /* larger bundles load; no need to count them */
    else if (rc > 0)
        free_chain(crts, (unsigned)rc);
    if (rc <= 0)
        config_report_add(rep, t->line, "%s: tls.client_ca \"%s\" holds no PEM certificate (%s)",
                          where, t->client_ca, rc == 0 ? "none found" : gnutls_strerror(rc));
    free(text);
}

void listen_tls_validate(const struct listen_tls_config *t, const char *where,
                         struct config_report *rep)
{
    if (!listen_tls_configured(t))
        return;
    if (t->cert == NULL || t->key.path == NULL) {
        config_report_add(rep, t->line,
                          "%s: tls needs both cert and key (tls.%s is missing); client_ca is "
                          "optional",
                          where, t->cert == NULL ? "cert" : "key");
        return;
    }
    if (t->client_ca)
        check_client_ca(t, where, rep);
    char err[512];
    size_t len;
    char *cert = read_pem(t->cert, &len, err, sizeof(err));
    if (cert == NULL)
        return; /* the key engine reported an unreadable file */
    gnutls_x509_crt_t chain[CHAIN_MAX];
    unsigned n = import_chain(cert, len, chain, err, sizeof(err));
    if (n == 0) {
        config_report_add(rep, t->line, "%s: tls.cert \"%s\" %s", where, t->cert, err);
    } else {
        check_dates(chain[0], t, where, rep);
        free_chain(chain, n);
        if (t->key.value != NULL) /* else the key engine said why */
            check_pair(t, cert, len, where, rep);
    }
    free(cert);
}

/* ---- the server's copies ---------------------------------------------------------- */

struct listen_tls *listen_tls_load(const struct listen_tls_config *t, char *err, size_t errlen)
{
    struct listen_tls *out = xcalloc(1, sizeof(*out));
    size_t len;
    out->cert_pem = read_pem(t->cert, &len, err, errlen);
    if (out->cert_pem == NULL)
        goto fail;
    if (t->client_ca && (out->client_ca_pem = read_pem(t->client_ca, &len, err, errlen)) == NULL)
        goto fail;
    secrets_read_lock();
    out->key_pem = t->key.value ? xstrndup(t->key.value, t->key.len) : NULL;
    secrets_read_unlock();
    if (out->key_pem == NULL) {
        snprintf(err, errlen, "tls.key \"%s\" is not loaded", t->key.path);
        goto fail;
    }
    return out;
fail:
    listen_tls_free(out);
    return NULL;
}

void listen_tls_free(struct listen_tls *t)
{
    if (t == NULL)
        return;
    if (t->key_pem) {
        memset(t->key_pem, 0, strlen(t->key_pem));
        free(t->key_pem);
    }
    free(t->cert_pem);
    free(t->client_ca_pem);
    free(t);
}

/* ---- per connection ----------------------------------------------------------------- */

int listen_tls_require_client(void *session)
{
    gnutls_session_t s = session;
    if (s == NULL)
        return -1;
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert(s, NULL, 0); /* the chain; a client has no host name */
    return 0;
}

bool listen_tls_client_verified(void *session)
{
    gnutls_session_t s = session;
    unsigned status = 1;
    unsigned n = 0;
    if (s == NULL || gnutls_certificate_get_peers(s, &n) == NULL || n == 0)
        return false;
    return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}
