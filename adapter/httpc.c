/*
 * httpc — libcurl's multi-socket API on our loop (see httpc.h).
 *
 * curl tells us which sockets to watch (socket callback → loop_watch) and
 * when to wake it (timer callback → loop_timer); we tell curl what happened
 * (curl_multi_socket_action) and then collect finished transfers
 * (curl_multi_info_read), each ending in its caller's callback.
 */
#include "httpc.h"

#include "config.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "retry_after.h"
#include "util.h"

#include <curl/curl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_MAX_RESPONSE (16u * 1024 * 1024)

struct httpc {
    struct loop *loop;
    CURLM *multi;
    uint64_t timer;
    size_t active;
    struct transfer *transfers; /* running, for httpc_free */
};

struct transfer {
    struct httpc *client;
    struct transfer *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    httpc_done_fn done;
    void *arg;
    struct buf body;
    size_t max_response;
    bool truncated;
    char *content_type;
    char *etag;
    unsigned retry_after; /* seconds, see retry_after.h */
    char error[CURL_ERROR_SIZE];
    char tls_error[CURL_ERROR_SIZE + 128];
    bool client_cert; /* one was configured */
};

static bool over_tls(CURL *easy)
{
    const char *scheme = NULL;
    curl_easy_getinfo(easy, CURLINFO_SCHEME, &scheme);
    return scheme != NULL && strcasecmp(scheme, "https") == 0;
}

/* What went wrong with a certificate, in the words an operator looks for, or NULL. */
static const char *tls_problem(CURL *easy, CURLcode code, const char *text, bool client_cert)
{
    long verify = X509_V_OK;
    curl_easy_getinfo(easy, CURLINFO_SSL_VERIFYRESULT, &verify);
    switch (verify) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "not yet valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return "unknown CA";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "host name mismatch";
    default:
        break;
    }
    if (strstr(text, "subject name") || strstr(text, "does not match target host"))
        return "host name mismatch"; /* curl's own host check, after the handshake */
    if (strstr(text, "certificate has expired"))
        return "expired";
    if (strstr(text, "unable to get local issuer") || strstr(text, "self-signed") ||
        strstr(text, "self signed"))
        return "unknown CA";
    bool refused = strstr(text, "alert certificate required") ||
                   strstr(text, "alert bad certificate") || strstr(text, "alert unknown ca") ||
                   strstr(text, "alert certificate unknown");
    /* TLS 1.3 refuses a client certificate after our handshake ended, so curl may see only
     * a failed first write or read ("bad write retry", "unexpected eof"), and its error text
     * may be an earlier, unrelated line (a getpeername() on the socket the server has
     * already reset) */
    bool reset = over_tls(easy) && (code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR ||
                                    code == CURLE_GOT_NOTHING);
    if (!client_cert && (refused || reset))
        return "client certificate required by the server and none configured "
               "(set tls.cert and tls.key)";
    if (refused)
        return "client certificate refused (not one the server trusts)";
    if (reset)
        return "client certificate refused (or the connection was reset)";
    if (code == CURLE_SSL_CERTPROBLEM)
        return "our client certificate or key cannot be used";
    if (code == CURLE_PEER_FAILED_VERIFICATION)
        return "the server's certificate is not trusted";
    return NULL;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * n;
    size_t room = t->body.len < t->max_response ? t->max_response - t->body.len : 0;
    if (len > room)
        t->truncated = true;
    buf_append(&t->body, data, len < room ? len : room);
    return len;
}

/* Header lines: keep Retry-After, ETag and Content-Type of the final response. */
static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * n;
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return len;
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1;
    while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
    size_t v_len = (size_t)(line + len - v);
    while (v_len > 0 && (v[v_len - 1] == '\r' || v[v_len - 1] == '\n' || v[v_len - 1] == ' '))
        v_len--;
    if (name_len == 11 && strncasecmp(line, "Retry-After", 11) == 0) {
        t->retry_after = retry_after_parse(v, v_len, time(NULL));
        return len;
    }
    char *value = xstrndup(v, v_len);
    if (name_len == 4 && strncasecmp(line, "ETag", 4) == 0) {
        free(t->etag);
        t->etag = value;
        value = NULL;
    } else if (name_len == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
        free(t->content_type);
        t->content_type = value;
        value = NULL;
    }
    free(value);
    return len;
}

static void transfer_unlink(struct transfer *t)
{
    struct httpc *c = t->client;
    if (t->prev)
        t->prev->next = t->next;
    else
        c->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    c->active--;
}

static void transfer_free(struct transfer *t)
{
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    buf_free(&t->body);
    free(t->content_type);
    free(t->etag);
    free(t);
}

static void collect_finished(struct httpc *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct transfer *t;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode code = msg->data.result;
        curl_multi_remove_handle(c->multi, t->easy);
        transfer_unlink(t);

        struct httpc_response resp = {0};
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &resp.seconds);
        if (code == CURLE_OK) {
            resp.status = status;
        } else {
            resp.status = 0;
            resp.timed_out = code == CURLE_OPERATION_TIMEDOUT;
            resp.error = t->error[0] ? t->error : curl_easy_strerror(code);
            const char *tls = tls_problem(t->easy, code, resp.error, t->client_cert);
            if (tls) {
                snprintf(t->tls_error, sizeof(t->tls_error), "TLS: %s: %s", tls, resp.error);
                resp.error = t->tls_error;
            }
        }
        resp.body = t->body.data ? t->body.data : "";
        resp.body_len = t->body.len;
        resp.truncated = t->truncated;
        resp.content_type = t->content_type;
        resp.etag = t->etag;
        resp.retry_after = t->retry_after;
        t->done(t->arg, &resp);
        transfer_free(t);
    }
}

static void on_socket_event(struct loop *loop, int fd, short revents, void *arg)
{
    struct httpc *c = arg;
    int flags = 0;
    if (revents & POLLIN)
        flags |= CURL_CSELECT_IN;
    if (revents & POLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (revents & (POLLERR | POLLHUP | POLLNVAL))
        flags |= CURL_CSELECT_ERR;
    int running;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    collect_finished(c);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct httpc *c = userp;
    if (what == CURL_POLL_REMOVE) {
        loop_unwatch(c->loop, s);
        return 0;
    }
    short events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= POLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= POLLOUT;
    loop_watch(c->loop, s, events, on_socket_event, c);
    return 0;
}

static void on_timeout(struct loop *loop, void *arg)
{
    struct httpc *c = arg;
    c->timer = 0;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_finished(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct httpc *c = userp;
    if (c->timer) {
        loop_timer_cancel(c->loop, c->timer);
        c->timer = 0;
    }
    if (timeout_ms >= 0)
        c->timer = loop_timer(c->loop, timeout_ms, on_timeout, c);
    return 0;
}

struct httpc *httpc_new(struct loop *loop)
{
    struct httpc *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->multi = curl_multi_init();
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 256L);
    return c;
}

void httpc_free(struct httpc *c)
{
    if (c == NULL)
        return;
    while (c->transfers) {
        struct transfer *t = c->transfers;
        curl_multi_remove_handle(c->multi, t->easy);
        transfer_unlink(t);
        transfer_free(t);
    }
    if (c->timer)
        loop_timer_cancel(c->loop, c->timer);
    curl_multi_cleanup(c->multi);
    free(c);
}

size_t httpc_active(const struct httpc *c)
{
    return c->active;
}

int httpc_start(struct httpc *c, const struct httpc_request *req, httpc_done_fn done, void *arg)
{
    struct transfer *t = xcalloc(1, sizeof(*t));
    t->client = c;
    t->done = done;
    t->arg = arg;
    t->max_response = req->max_response ? req->max_response : DEFAULT_MAX_RESPONSE;
    t->easy = curl_easy_init();
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(req->timeout * 1000));
    double ct =
        req->connect_timeout > 0 ? req->connect_timeout : (req->timeout < 10 ? req->timeout : 10);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(ct * 1000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "amqp-sidecar/" SIDECAR_VERSION);

    if (req->tls) {
        const struct tls_config *tls = req->tls;
        if (tls->ca)
            curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca);
        if (tls->cert)
            curl_easy_setopt(e, CURLOPT_SSLCERT, tls->cert);
        t->client_cert = tls->cert != NULL;
        secrets_read_lock();
        if (tls->key.value) {
            struct curl_blob key = {
                .data = tls->key.value, .len = tls->key.len, .flags = CURL_BLOB_COPY};
            curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
            curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        }
        secrets_read_unlock();
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, tls->verify ? 1L : 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, tls->verify ? 2L : 0L);
    }

    bool has_body = req->body != NULL || strcmp(req->method, "POST") == 0 ||
                    strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0;
    if (strcmp(req->method, "GET") == 0 && req->body == NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        if (has_body) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
            curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
        }
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    t->headers = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
    for (size_t i = 0; i < req->n_headers; i++) {
        char *line = xasprintf("%s: %s", req->headers[i].name, req->headers[i].value);
        t->headers = curl_slist_append(t->headers, line);
        free(line);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        transfer_free(t);
        return -1;
    }
    c->active++;
    t->next = c->transfers;
    if (c->transfers)
        c->transfers->prev = t;
    c->transfers = t;
    return 0;
}

bool httpc_asks_to_wait(const struct httpc_response *resp)
{
    return (resp->status == 429 || resp->status == 503) && resp->retry_after > 0;
}
