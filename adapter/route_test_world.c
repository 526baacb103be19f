/*
 * route_test_world — one case of `amqp-sidecar test` through its route's real
 * code, with the broker and the legacy side played in-process.
 *
 * The route is started as `run` starts it (its kind's start, with the
 * route_services of this world) and stopped after the case:
 *   - the broker is a struct broker_channel of ours under the real publisher
 *     (broker_client.h), on a loop thread of ours as the broker's thread:
 *     each publish is recorded as the broker would see it (properties,
 *     headers, body) and confirmed — or nacked, or the connection is down,
 *     as the case's "broker" says; an rpc publish gets the case's "reply";
 *   - http and soap inbound requests are local ones (httpd.h) handed to the
 *     route's handler on a server that never listens, on the broker thread
 *     as the listeners are; the answer is recorded;
 *   - file inbound watches a temporary directory (the route's dir, done_dir
 *     and failed_dir are swapped for it during the case); the dropped file
 *     is put into its .processing/ as a claim left from an earlier run, so it
 *     goes first without waiting for settle_ms;
 *   - outbound deliveries carry a judge (consumer.h) that records the
 *     kind's verdict, and the legacy calls go to a transport of ours
 *     (legacy_client.h) that records the request and answers with the
 *     case's "response".
 */
#include "route_test_internal.h"

#include "amqp_message.h"
#include "broker_client.h"
#include "config.h"
#include "consumer.h"
#include "httpc.h"
#include "httpd.h"
#include "kinds/file_in.h"
#include "kinds/file_out.h"
#include "kinds/poll_cursor.h"
#include "kinds/poll_in.h"
#include "legacy_client.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "publisher.h"
#include "retry_after.h"
#include "route.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CASE_TIMEOUT_S 30 /* a case that has not ended by then is reported, not waited for */
#define RPC_TAG        "amqp-sidecar-rpc" /* the publisher's reply consumer (publisher.c) */

enum broker_mode { BROKER_CONFIRM, BROKER_NACK, BROKER_DOWN };

struct world;

struct local {
    struct world *w;
    struct http_local_request req;
    struct header *headers, *query;
    char *path, *body;
};

struct world {
    const struct test_case *tc;
    struct route *r;
    struct loop *loop; /* the broker's thread; an outbound route's thread too */
    pthread_t thread;
    bool thread_started;
    struct broker_channel ch;
    struct publisher *pub;
    enum broker_mode broker;
    uint64_t tags;        /* publishes so far: the broker's delivery tags */
    char *rpc_call;       /* the correlation_id of the rpc publish to reply to, once confirmed */
    struct local request; /* inbound http: the case's request, until the world ends */
    struct http_server *server;
    struct route_services services;
    struct legacy_transport transport;
    struct delivery_judge judge;

    pthread_mutex_t lock; /* the fields below, written on the loop thread */
    pthread_cond_t changed;
    json_t *got;
    bool answered;             /* inbound http: the answer came; outbound: the verdict */
    struct legacy_call *calls; /* every legacy call started, newest first */
    size_t n_calls;
};

static void world_signal(struct world *w)
{
    pthread_mutex_lock(&w->lock);
    w->answered = true;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

/* Waits for the answer or the verdict (calls 0), or for the route to have started
 * `calls` legacy calls; false after CASE_TIMEOUT_S. */
static bool world_wait(struct world *w, size_t calls)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CASE_TIMEOUT_S;
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (!(calls ? w->n_calls >= calls : w->answered) && rc == 0)
        rc = pthread_cond_timedwait(&w->changed, &w->lock, &until);
    bool ok = calls ? w->n_calls >= calls : w->answered;
    pthread_mutex_unlock(&w->lock);
    return ok;
}

static void *world_thread(void *arg)
{
    loop_run(arg);
    return NULL;
}

static json_t *text_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A string for JSON: bytes that are not UTF-8 shown as a note, never dropped silently. */
static json_t *body_json(const char *body, size_t len)
{
    json_t *s = json_stringn(body ? body : "", len);
    return s ? s : json_sprintf("(%zu bytes that are not UTF-8)", len);
}

static json_t *headers_json(const struct header *h, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, h[i].name, text_or_null(h[i].value));
    return o;
}

/* ---- the broker ------------------------------------------------------------------ */

static struct world *world_of(const struct broker_channel *ch)
{
    return ch->owner;
}

static void confirm_all(void *arg)
{
    struct world *w = arg;
    amqp_method_t m;
    amqp_basic_ack_t ack = {.delivery_tag = w->tags, .multiple = 1};
    amqp_basic_nack_t nack = {.delivery_tag = w->tags, .multiple = 1, .requeue = 0};
    if (w->broker == BROKER_NACK)
        m = (amqp_method_t){.id = AMQP_BASIC_NACK_METHOD, .decoded = &nack};
    else
        m = (amqp_method_t){.id = AMQP_BASIC_ACK_METHOD, .decoded = &ack};
    const struct broker_client *client = publisher_client(w->pub);
    client->on_method(client->arg, &m, NULL);
}

/* The case's "reply" to an rpc publish, as the replier would send it to
 * direct reply-to: correlation_id echoing the call id. */
static void reply_to_rpc(void *arg)
{
    struct world *w = arg;
    json_t *spec = json_object_get(w->tc->spec, "reply");
    if (spec == NULL || w->rpc_call == NULL)
        return;
    size_t len;
    char *body = route_test_body_text(json_object_get(spec, "body"), &len);
    json_t *headers = json_object_get(spec, "headers");
    size_t n = json_object_size(headers), i = 0;
    amqp_table_entry_t *entries = xcalloc(n ? n : 1, sizeof(*entries));
    const char *name;
    json_t *value;
    json_object_foreach(headers, name, value)
    {
        entries[i].key = amqp_cstring_bytes(name);
        entries[i].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[i++].value.value.bytes = amqp_cstring_bytes(json_string_value(value));
    }
    const char *ct = json_string_value(json_object_get(spec, "content_type"));
    amqp_message_t reply = {.body = {.len = len, .bytes = body}};
    reply.properties._flags = AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_HEADERS_FLAG |
                              (ct ? AMQP_BASIC_CONTENT_TYPE_FLAG : 0);
    reply.properties.correlation_id = amqp_cstring_bytes(w->rpc_call);
    reply.properties.content_type = ct ? amqp_cstring_bytes(ct) : amqp_empty_bytes;
    reply.properties.headers = (amqp_table_t){.num_entries = (int)i, .entries = entries};
    amqp_basic_deliver_t d = {.consumer_tag = amqp_cstring_bytes(RPC_TAG)};
    amqp_method_t m = {.id = AMQP_BASIC_DELIVER_METHOD, .decoded = &d};
    const struct broker_client *client = publisher_client(w->pub);
    client->on_method(client->arg, &m, &reply);
    free(entries);
    free(body);
}

static int world_publish(const struct broker_channel *ch, amqp_bytes_t exchange,
                         amqp_bytes_t routing_key, const amqp_basic_properties_t *props,
                         amqp_bytes_t body)
{
    struct world *w = world_of(ch);
    amqp_message_t raw = {.properties = *props, .body = body};
    struct message *m = amqp_message_convert(&raw);
    json_t *properties = json_pack(
        "{s:o s:o s:o s:o s:o s:o s:I}", "content_type", text_or_null(m->content_type),
        "message_id", text_or_null(m->message_id), "correlation_id",
        text_or_null(m->correlation_id), "reply_to", text_or_null(m->reply_to), "app_id",
        props->_flags & AMQP_BASIC_APP_ID_FLAG
            ? json_stringn(props->app_id.bytes, props->app_id.len)
            : json_null(),
        "timestamp", m->timestamp ? json_integer(m->timestamp) : json_null(), "delivery_mode",
        (json_int_t)(props->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG ? props->delivery_mode : 0));
    json_t *one = json_pack(
        "{s:s% s:s% s:o s:o s:o}", "exchange", (char *)exchange.bytes, exchange.len, "routing_key",
        (char *)routing_key.bytes, routing_key.len, "properties", properties, "headers",
        headers_json(m->headers, m->n_headers), "body", body_json(m->body, m->body_len));
    message_free(m);
    pthread_mutex_lock(&w->lock);
    json_array_append_new(json_object_get(w->got, "published"), one);
    pthread_mutex_unlock(&w->lock);
    w->tags++;
    loop_post(w->loop, confirm_all, w);
    if (props->_flags & AMQP_BASIC_REPLY_TO_FLAG &&
        props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG && w->broker == BROKER_CONFIRM &&
        w->rpc_call == NULL) {
        w->rpc_call = xstrndup(props->correlation_id.bytes, props->correlation_id.len);
        loop_post(w->loop, reply_to_rpc, w); /* after the confirm, as a replier would */
    }
    return AMQP_STATUS_OK;
}

static void world_fail(const struct broker_channel *ch, const char *why)
{
    struct world *w = world_of(ch);
    w->ch.open = false;
    const struct broker_client *client = publisher_client(w->pub);
    client->on_lost(client->arg, why);
}

static void world_kick(const struct broker_channel *ch) {}

/* What the broker's thread does twice a second: the publisher's deadlines (rpc, confirms). */
static void world_tick(struct loop *loop, void *arg)
{
    struct world *w = arg;
    const struct broker_client *client = publisher_client(w->pub);
    client->tick(client->arg);
    loop_timer(loop, 500, world_tick, w);
}

/* ---- the process's services ------------------------------------------------------ */

static struct world *world_of_route(const struct route *r)
{
    return (struct world *)((char *)r->services - offsetof(struct world, services));
}

/* The case's route's server: made on first use, never started (requests are local). */
static struct http_server *world_http_server(struct route *r, const char *listen,
                                             const struct listen_tls_config *tls, char *err,
                                             size_t errlen)
{
    struct world *w = world_of_route(r);
    if (w->server == NULL)
        w->server = http_server_new(listen, err, errlen);
    return w->server;
}

static void world_fatal(struct route *r, const char *why)
{
    log_error(r->name, "the route cannot go on: %s", why);
}

/* ---- inbound http and soap: a local request ---------------------------------------- */

static void answered(void *arg, int status, const char *content_type, const char *body, size_t len,
                     const struct header *headers, size_t n_headers)
{
    struct local *l = arg;
    struct world *w = l->w;
    json_t *h = headers_json(headers, n_headers);
    if (content_type)
        json_object_set_new(h, "Content-Type", json_string(content_type));
    json_t *answer =
        json_pack("{s:i s:o s:o}", "status", status, "headers", h, "body", body_json(body, len));
    pthread_mutex_lock(&w->lock);
    json_object_update(w->got, answer);
    pthread_mutex_unlock(&w->lock);
    json_decref(answer);
    world_signal(w);
}

static struct header *pairs_of(json_t *obj, size_t *n)
{
    *n = json_object_size(obj);
    struct header *h = xcalloc(*n ? *n : 1, sizeof(*h));
    size_t i = 0;
    const char *name;
    json_t *value;
    json_object_foreach(obj, name, value)
    {
        h[i].name = xstrdup(name);
        h[i++].value = json_is_string(value) ? xstrdup(json_string_value(value))
                                             : json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    return h;
}

static void pairs_free(struct header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

static bool has_header(const struct header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return true;
    return false;
}

static void dispatch(void *arg)
{
    struct local *l = arg;
    http_server_dispatch_local(l->w->server, &l->req);
}

/* The request a case gives ("request"), with the defaults the README states:
 * POST to the route's path; Content-Type application/json for a JSON body,
 * text/xml for a soap route's. */
static void local_build(struct world *w, struct local *l)
{
    json_t *spec = json_object_get(w->tc->spec, "request");
    struct http_endpoint ep = {0};
    w->r->kind->endpoint(w->r, &ep);
    const char *path = json_string_value(json_object_get(spec, "path"));
    l->path = xstrdup(path ? path : ep.path);
    json_t *query = json_deep_copy(json_object_get(spec, "query"));
    if (query == NULL)
        query = json_object();
    char *q = strchr(l->path, '?');
    if (q != NULL) { /* "/ws?wsdl", "/orders?a=1&b=2" */
        *q++ = '\0';
        for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv;
             kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (eq)
                *eq++ = '\0';
            json_object_set_new(query, kv, json_string(eq ? eq : ""));
        }
    }
    l->query = pairs_of(query, &l->req.n_query);
    json_decref(query);
    json_t *headers = json_deep_copy(json_object_get(spec, "headers"));
    if (headers == NULL)
        headers = json_object();
    json_t *body = json_object_get(spec, "body");
    size_t n;
    struct header *h = pairs_of(headers, &n);
    bool soap = strcmp(w->r->kind->name, "soap") == 0;
    if (body && !has_header(h, n, "Content-Type"))
        json_object_set_new(headers, "Content-Type",
                            json_string(soap                   ? "text/xml; charset=utf-8"
                                        : json_is_string(body) ? "text/plain"
                                                               : "application/json"));
    pairs_free(h, n);
    l->headers = pairs_of(headers, &l->req.n_headers);
    json_decref(headers);
    l->body = route_test_body_text(body, &l->req.body_len);
    const char *method = json_string_value(json_object_get(spec, "method"));
    l->req.method = method ? method : "POST";
    l->req.path = l->path;
    l->req.headers = l->headers;
    l->req.query = l->query;
    l->req.body = l->body;
    l->req.answered = answered;
    l->req.arg = l;
    l->w = w;
}

static void local_free(struct local *l)
{
    pairs_free(l->headers, l->req.n_headers);
    pairs_free(l->query, l->req.n_query);
    free(l->path);
    free(l->body);
}

static int run_http_in(struct world *w, char *err, size_t errlen)
{
    local_build(w, &w->request);
    loop_post(w->loop, dispatch, &w->request);
    if (world_wait(w, 0))
        return 0;
    snprintf(err, errlen, "no HTTP answer within %ds", CASE_TIMEOUT_S);
    return -1;
}

/* ---- inbound file: a temporary drop directory ---------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    struct buf b = {0};
    buf_read_stream(&b, f);
    fclose(f);
    return b.data ? b.data : xstrdup("");
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A fresh directory for one case (caller frees; temp_dir_remove at the end), or NULL with err. */
static char *temp_dir_new(char *err, size_t errlen)
{
    char tmpl[] = "/tmp/amqp-sidecar-test.XXXXXX";
    if (mkdtemp(tmpl) != NULL)
        return xstrdup(tmpl);
    snprintf(err, errlen, "cannot make a temporary directory: %s", strerror(errno));
    return NULL;
}

static void temp_dir_remove(char *top)
{
    nftw(top, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(top);
}

static int run_file_in(struct world *w, char *err, size_t errlen)
{
    struct route *r = w->r;
    struct file_in_opts *o = r->opts;
    json_t *spec = json_object_get(w->tc->spec, "file");
    const char *name = json_string_value(json_object_get(spec, "name"));
    size_t len;
    char *content = route_test_body_text(json_object_get(spec, "content"), &len);

    char *top = temp_dir_new(err, errlen);
    if (top == NULL) {
        free(content);
        return -1;
    }
    struct file_in_opts saved = *o;
    char *in = xasprintf("%s/in", top), *done = xasprintf("%s/done", top);
    char *failed = xasprintf("%s/failed", top), *processing = xasprintf("%s/in/.processing", top);
    char *claimed = xasprintf("%s/%s", processing, name);
    o->dir = in;
    o->done_dir = saved.done_dir ? done : NULL;
    o->failed_dir = failed;
    int rc = -1;
    FILE *f = NULL;
    if (mkdir(in, 0700) != 0 || mkdir(done, 0700) != 0 || mkdir(failed, 0700) != 0 ||
        mkdir(processing, 0700) != 0 || (f = fopen(claimed, "w")) == NULL ||
        fwrite(content, 1, len, f) != len || fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", claimed, strerror(errno));
        goto out;
    }
    char why[512] = "";
    if (r->kind->start(r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the route did not start: %s", why);
        r->kind->stop(r);
        goto out;
    }
    /* Done when the file left .processing and its job ended. */
    int64_t deadline = loop_now_ms() + CASE_TIMEOUT_S * 1000;
    while ((exists(claimed) || r->kind->busy(r)) && loop_now_ms() < deadline)
        usleep(5000);
    r->kind->drain(r);
    while (r->kind->busy(r) && loop_now_ms() < deadline)
        usleep(5000);
    r->kind->stop(r);
    char *in_done = xasprintf("%s/%s", done, name), *in_failed = xasprintf("%s/%s", failed, name);
    char *error_file = xasprintf("%s/%s.error", failed, name);
    const char *outcome = exists(claimed)                      ? "kept"
                          : exists(in_failed)                  ? "failed"
                          : exists(in_done) || !saved.done_dir ? "done"
                                                               : "gone";
    char *error = read_text(error_file);
    pthread_mutex_lock(&w->lock);
    json_object_set_new(w->got, "file", json_string(outcome));
    json_object_set_new(w->got, "error", text_or_null(error));
    pthread_mutex_unlock(&w->lock);
    free(error);
    free(error_file);
    free(in_done);
    free(in_failed);
    rc = 0;
    if (exists(claimed)) {
        snprintf(err, errlen, "the file was still in .processing after %ds", CASE_TIMEOUT_S);
        rc = -1;
    }
out:
    *o = saved;
    temp_dir_remove(top);
    free(in);
    free(done);
    free(failed);
    free(processing);
    free(claimed);
    free(content);
    return rc;
}

/* ---- inbound poll: a temporary state_dir, a short interval ------------------------------ */

#define POLL_TEST_INTERVAL 0.01 /* s: the route's next GET comes at once after a poll */

/* The case ends when the route asks for more than the case answers: by then every
 * answered poll was published, confirmed and its cursor stored. */
static int run_poll_in(struct world *w, char *err, size_t errlen)
{
    struct route *r = w->r;
    struct poll_in_opts *o = r->opts;
    char *top = temp_dir_new(err, errlen);
    if (top == NULL)
        return -1;
    w->services.state_dir = top;
    char *path = xasprintf("%s/%s.cursor", top, r->name);
    const char *cursor = json_string_value(json_object_get(w->tc->spec, "cursor"));
    json_t *many = json_object_get(w->tc->spec, "responses");
    size_t answers = many ? json_array_size(many) : 1;
    double interval = o->interval;
    int rc = -1;
    char why[512] = "";
    if (cursor && poll_cursor_save(top, path, cursor, err, errlen) != 0)
        goto out;
    o->interval = POLL_TEST_INTERVAL;
    if (r->kind->start(r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the route did not start: %s", why);
        r->kind->stop(r);
        goto out;
    }
    bool ended = world_wait(w, answers + 1);
    struct buf failing = {0};
    bool ready = r->kind->ready(r, &failing);
    r->kind->drain(r);
    int64_t deadline = loop_now_ms() + CASE_TIMEOUT_S * 1000;
    while (r->kind->busy(r) && loop_now_ms() < deadline)
        usleep(5000);
    r->kind->stop(r);
    bool missing;
    char *stored = poll_cursor_load(path, &missing, why, sizeof(why));
    pthread_mutex_lock(&w->lock);
    json_object_set_new(w->got, "cursor", text_or_null(stored));
    json_object_set_new(w->got, "error", ready ? json_null() : json_string(failing.data));
    pthread_mutex_unlock(&w->lock);
    free(stored);
    buf_free(&failing);
    rc = ended ? 0 : -1;
    if (!ended)
        snprintf(err, errlen, "the route made %zu of the %zu GETs expected within %ds", w->n_calls,
                 answers + 1, CASE_TIMEOUT_S);
out:
    o->interval = interval;
    w->services.state_dir = NULL;
    temp_dir_remove(top);
    free(path);
    return rc;
}

/* ---- outbound: a delivery with a judge, and the legacy side ------------------------------ */

/* One legacy call, from start to its answer (or to the end of the case, unanswered:
 * poll's next GET once the case's responses are used up). */
struct legacy_call {
    struct world *w;
    json_t *response; /* the case's (borrowed); NULL: 200 with no body */
    bool held;
    httpc_done_fn done;
    void *arg;
    bool answered;
    struct legacy_call *next;
};

/* Does the case answer its n-th call (0-based), and with what ("responses"[n], or
 * "response" for the first; NULL: 200 with no body)? An outbound case makes one
 * call; a poll case gets as many answers as it gives. */
static bool response_for(const struct test_case *tc, size_t n, json_t **response)
{
    json_t *many = json_object_get(tc->spec, "responses");
    *response = many     ? json_array_get(many, n)
                : n == 0 ? json_object_get(tc->spec, "response")
                         : NULL;
    if (tc->route->direction == ROUTE_OUTBOUND)
        return n == 0;
    return *response != NULL;
}

/* The redacted text of a credential header: its scheme word, never the secret. */
static json_t *request_header_json(const struct header *h)
{
    if (strcasecmp(h->name, "Authorization") != 0 && strcasecmp(h->name, "Proxy-Authorization"))
        return text_or_null(h->value);
    size_t scheme = strcspn(h->value, " ");
    return json_sprintf("%.*s (redacted)", (int)scheme, h->value);
}

static void legacy_answer(struct loop *loop, void *arg)
{
    struct legacy_call *c = arg;
    json_t *spec = c->response;
    json_t *status = json_object_get(spec, "status");
    const char *error = json_string_value(json_object_get(spec, "error"));
    size_t len;
    char *body = route_test_body_text(json_object_get(spec, "body"), &len);
    struct httpc_response resp = {.status = error    ? 0
                                            : status ? json_integer_value(status)
                                                     : 200,
                                  .body = body,
                                  .body_len = len,
                                  .error = error,
                                  .timed_out = error && strcmp(error, "timeout") == 0};
    const char *name;
    json_t *value;
    json_object_foreach(json_object_get(spec, "headers"), name, value)
    {
        const char *v = json_string_value(value);
        if (strcasecmp(name, "Content-Type") == 0)
            resp.content_type = v;
        else if (strcasecmp(name, "ETag") == 0)
            resp.etag = v;
        else if (strcasecmp(name, "Retry-After") == 0)
            resp.retry_after = retry_after_parse(v, strlen(v), time(NULL));
    }
    c->done(c->arg, &resp);
    free(body);
    pthread_mutex_lock(&c->w->lock);
    c->answered = true;
    pthread_cond_broadcast(&c->w->changed);
    pthread_mutex_unlock(&c->w->lock);
}

static int legacy_start(void *arg, struct loop *loop, const struct httpc_request *req,
                        httpc_done_fn done, void *done_arg)
{
    struct world *w = arg;
    struct legacy_call *c = xcalloc(1, sizeof(*c));
    *c = (struct legacy_call){.w = w, .done = done, .arg = done_arg};
    pthread_mutex_lock(&w->lock);
    c->held = !response_for(w->tc, w->n_calls++, &c->response);
    c->next = w->calls;
    w->calls = c;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    if (c->held)
        return 0; /* the case ends before it would be answered */
    json_t *headers = json_object();
    for (size_t i = 0; i < req->n_headers; i++)
        json_object_set_new(headers, req->headers[i].name, request_header_json(&req->headers[i]));
    json_t *one =
        json_pack("{s:s s:s s:o s:o}", "method", req->method, "url", req->url, "headers", headers,
                  "body", req->body ? body_json(req->body, req->body_len) : json_null());
    pthread_mutex_lock(&w->lock);
    json_array_append_new(json_object_get(w->got, "requests"), one);
    pthread_mutex_unlock(&w->lock);
    loop_timer(loop, 0, legacy_answer, c);
    return 0;
}

static json_t *message_json(const struct message *m)
{
    return json_pack("{s:o s:o s:o}", "content_type", text_or_null(m->content_type), "headers",
                     headers_json(m->headers, m->n_headers), "body",
                     body_json(m->body, m->body_len));
}

static const char *verdict_name(enum delivery_verdict_kind kind)
{
    static const char *const names[] = {
        [VERDICT_ACK] = "ack",
        [VERDICT_RETRY] = "retry",
        [VERDICT_RETRY_UNCOUNTED] = "retry_uncounted",
        [VERDICT_THROTTLED] = "throttled",
        [VERDICT_DEAD] = "dead",
        [VERDICT_ABANDON] = "abandon",
    };
    return names[kind];
}

static void judge_settle(void *arg, struct delivery *d, struct delivery_verdict *v)
{
    struct world *w = arg;
    /* Unpaced, the consumer treats a throttle as an ordinary retry (consumer.h). */
    enum delivery_verdict_kind kind = v->kind;
    if (kind == VERDICT_THROTTLED && w->r->rate.rate <= 0)
        kind = VERDICT_RETRY;
    json_t *verdict =
        json_pack("{s:s s:s s:i s:o}", "outcome", verdict_name(kind), "reason", v->reason, "calls",
                  v->calls, "reply", v->reply ? message_json(v->reply) : json_null());
    if (v->kind == VERDICT_DEAD)
        json_object_set_new(verdict, "dead_reason", json_string(dead_reason_name(v->dead)));
    if (v->kind == VERDICT_RETRY || v->kind == VERDICT_THROTTLED)
        json_object_set_new(verdict, "retry_after", json_real(v->retry_after));
    message_free(v->reply);
    message_free(d->msg);
    free(d);
    pthread_mutex_lock(&w->lock);
    json_object_update(w->got, verdict);
    pthread_mutex_unlock(&w->lock);
    json_decref(verdict);
    world_signal(w);
}

/* The case's "delivery" as the consumer would hand it over. */
static struct delivery *delivery_of(struct world *w)
{
    json_t *spec = json_object_get(w->tc->spec, "delivery");
    struct message *m = message_new();
    size_t len;
    char *body = route_test_body_text(json_object_get(spec, "body"), &len);
    message_take_body(m, body, len);
    json_t *p = json_object_get(spec, "properties");
    message_set(&m->content_type, json_string_value(json_object_get(p, "content_type")));
    message_set(&m->message_id, json_string_value(json_object_get(p, "message_id")));
    message_set(&m->correlation_id, json_string_value(json_object_get(p, "correlation_id")));
    message_set(&m->reply_to, json_string_value(json_object_get(p, "reply_to")));
    m->timestamp = json_integer_value(json_object_get(p, "timestamp"));
    const char *name;
    json_t *value;
    json_object_foreach(json_object_get(spec, "headers"), name, value)
    {
        char *text = json_is_string(value) ? xstrdup(json_string_value(value))
                                           : json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        message_set_header(m, name, text);
        free(text);
    }
    struct delivery *d = xcalloc(1, sizeof(*d));
    d->msg = m;
    d->attempts = (int)json_integer_value(json_object_get(spec, "attempts"));
    d->judge = &w->judge;
    return d;
}

struct handover {
    struct route *r;
    struct delivery *d;
};

static void deliver(void *arg)
{
    struct handover *h = arg;
    h->r->kind->deliver(h->r, h->d);
}

static int run_outbound(struct world *w, char *err, size_t errlen)
{
    struct handover h = {.r = w->r, .d = delivery_of(w)};
    loop_post(w->loop, deliver, &h);
    if (world_wait(w, 0))
        return 0;
    snprintf(err, errlen, "the route gave no verdict within %ds", CASE_TIMEOUT_S);
    return -1;
}

/* got.written: the files in dir the legacy system would find (hidden temp names are not). */
static void list_written(struct world *w, const char *dir)
{
    json_t *written = json_array();
    DIR *d = opendir(dir);
    for (struct dirent *e = d ? readdir(d) : NULL; e != NULL; e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        char *content = read_text(path);
        json_array_append_new(written,
                              json_pack("{s:s s:o}", "name", e->d_name, "content",
                                        body_json(content, content ? strlen(content) : 0)));
        free(content);
        free(path);
    }
    if (d)
        closedir(d);
    pthread_mutex_lock(&w->lock);
    json_object_set_new(w->got, "written", written);
    pthread_mutex_unlock(&w->lock);
}

/* file outbound: the route's dir is a temporary one during the case. */
static int run_file_out(struct world *w, char *err, size_t errlen)
{
    struct file_out_opts *o = w->r->opts;
    char *top = temp_dir_new(err, errlen);
    if (top == NULL)
        return -1;
    char *saved = o->dir;
    o->dir = top;
    int rc = run_outbound(w, err, errlen);
    if (rc == 0)
        list_written(w, top);
    o->dir = saved;
    temp_dir_remove(top);
    return rc;
}

/* ---- one case ------------------------------------------------------------------------ */

static enum broker_mode broker_mode_of(json_t *spec)
{
    const char *b = json_string_value(json_object_get(spec, "broker"));
    return b == NULL || strcmp(b, "confirm") == 0 ? BROKER_CONFIRM
           : strcmp(b, "nack") == 0               ? BROKER_NACK
                                                  : BROKER_DOWN;
}

static int world_start_thread(struct world *w, char *err, size_t errlen)
{
    if (pthread_create(&w->thread, NULL, world_thread, w->loop) != 0) {
        snprintf(err, errlen, "cannot start a thread");
        return -1;
    }
    w->thread_started = true;
    return 0;
}

/* Inbound: the publisher on our channel, open unless the case says the broker is down. */
static void world_open_broker(struct world *w, const struct sidecar_config *cfg)
{
    w->ch = (struct broker_channel){.open = true,
                                    .number = BROKER_CHANNEL,
                                    .generation = 1,
                                    .frame_max = 131072,
                                    .loop = w->loop,
                                    .publish = world_publish,
                                    .fail = world_fail,
                                    .kick = world_kick,
                                    .owner = w};
    loop_timer(w->loop, 500, world_tick, w);
    if (w->broker == BROKER_DOWN) {
        w->ch.open = false; /* never opened: every submit is refused */
        return;
    }
    const struct broker_client *client = publisher_client(w->pub);
    char why[256];
    client->on_open(client->arg, &w->ch, why, sizeof(why)); /* a channel without a connection */
}

static int run_inbound(struct world *w, const struct sidecar_config *cfg, char *err, size_t errlen)
{
    struct route *r = w->r;
    w->pub = publisher_new("test", &cfg->broker, w->loop, NULL);
    r->publisher = w->pub;
    if (w->tc->input == TEST_FILE || w->tc->input == TEST_POLL) {
        world_open_broker(w, cfg);
        if (world_start_thread(w, err, errlen) != 0)
            return -1;
        return w->tc->input == TEST_FILE ? run_file_in(w, err, errlen)
                                         : run_poll_in(w, err, errlen);
    }
    char why[512] = "";
    if (r->kind->start(r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the route did not start: %s", why);
        return -1;
    }
    world_open_broker(w, cfg);
    if (world_start_thread(w, err, errlen) != 0)
        return -1;
    int rc = run_http_in(w, err, errlen);
    if (r->kind->stop)
        r->kind->stop(r);
    return rc;
}

json_t *route_test_run(const struct test_case *tc, const struct sidecar_config *cfg, char *err,
                       size_t errlen)
{
    struct world *w = xcalloc(1, sizeof(*w));
    w->tc = tc;
    w->r = tc->route;
    w->broker = broker_mode_of(tc->spec);
    w->loop = loop_new();
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
    w->got = json_pack("{s:[] s:[]}", "published", "requests");
    w->transport = (struct legacy_transport){.start = legacy_start, .arg = w};
    w->judge = (struct delivery_judge){.settle = judge_settle, .arg = w};
    w->services = (struct route_services){.state_dir = cfg->state_dir,
                                          .publish_window = (size_t)cfg->broker.max_inflight,
                                          .fatal = world_fatal,
                                          .http_server = world_http_server,
                                          .legacy_transport = &w->transport};
    struct route *r = w->r;
    r->services = &w->services;
    int rc;
    if (r->direction == ROUTE_INBOUND) {
        rc = run_inbound(w, cfg, err, errlen);
    } else {
        r->loop = w->loop;
        char why[512] = "";
        rc = r->kind->start(r, why, sizeof(why));
        if (rc != 0)
            snprintf(err, errlen, "the route did not start: %s", why);
        if (rc == 0)
            rc = world_start_thread(w, err, errlen);
        if (rc == 0)
            rc = strcmp(r->kind->name, "file") == 0 ? run_file_out(w, err, errlen)
                                                    : run_outbound(w, err, errlen);
    }
    if (w->thread_started) {
        loop_stop(w->loop);
        pthread_join(w->thread, NULL);
    }
    if (r->direction == ROUTE_OUTBOUND && r->kind->stop)
        r->kind->stop(r);       /* after the route's thread, as sidecar.c does */
    if (w->pub && w->ch.open) { /* the broker's close: what still waits is answered */
        const struct broker_client *client = publisher_client(w->pub);
        client->on_lost(client->arg, "the test case ended");
    }
    if (w->request.w)
        local_free(&w->request);
    free(w->rpc_call);
    while (w->calls) {
        struct legacy_call *c = w->calls;
        w->calls = c->next;
        free(c);
    }
    http_server_free(w->server);
    publisher_free(w->pub);
    loop_free(w->loop);
    r->services = NULL;
    r->publisher = NULL;
    r->loop = NULL;
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    json_t *got = rc == 0 ? json_incref(w->got) : NULL;
    json_decref(w->got);
    free(w);
    return got;
}
