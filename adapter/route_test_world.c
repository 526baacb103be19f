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
#include "route_test_world.h"

#include "amqp_message.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "publisher.h"
#include "util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void world_signal(struct world *w)
{
    pthread_mutex_lock(&w->lock);
    w->answered = true;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

/* Waits for the answer or the verdict (calls 0), or for the route to have started
 * `calls` legacy calls; false after CASE_TIMEOUT_S. */
bool world_wait(struct world *w, size_t calls)
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

json_t *world_json_text(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A string for JSON: bytes that are not UTF-8 shown as a note, never dropped silently. */
json_t *world_json_body(const char *body, size_t len)
{
    json_t *s = json_stringn(body ? body : "", len);
    return s ? s : json_sprintf("(%zu bytes that are not UTF-8)", len);
}

json_t *world_json_headers(const struct header *h, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, h[i].name, world_json_text(h[i].value));
    return o;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

char *world_read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    struct buf b = {0};
    buf_read_stream(&b, f);
    fclose(f);
    return b.data ? b.data : xstrdup("");
}

bool world_path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* A fresh directory for one case (caller frees; temp_dir_remove at the end), or NULL with err. */
char *world_temp_dir_new(char *err, size_t errlen)
{
    char tmpl[] = "/tmp/amqp-sidecar-test.XXXXXX";
    if (mkdtemp(tmpl) != NULL)
        return xstrdup(tmpl);
    snprintf(err, errlen, "cannot make a temporary directory: %s", strerror(errno));
    return NULL;
}

void world_temp_dir_remove(char *top)
{
    nftw(top, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(top);
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
        "{s:o s:o s:o s:o s:o s:o s:I}", "content_type", world_json_text(m->content_type),
        "message_id", world_json_text(m->message_id), "correlation_id",
        world_json_text(m->correlation_id), "reply_to", world_json_text(m->reply_to), "app_id",
        props->_flags & AMQP_BASIC_APP_ID_FLAG
            ? json_stringn(props->app_id.bytes, props->app_id.len)
            : json_null(),
        "timestamp", m->timestamp ? json_integer(m->timestamp) : json_null(), "delivery_mode",
        (json_int_t)(props->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG ? props->delivery_mode : 0));
    json_t *one =
        json_pack("{s:s% s:s% s:o s:o s:o}", "exchange", (char *)exchange.bytes, exchange.len,
                  "routing_key", (char *)routing_key.bytes, routing_key.len, "properties",
                  properties, "headers", world_json_headers(m->headers, m->n_headers), "body",
                  world_json_body(m->body, m->body_len));
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
        return w->tc->input == TEST_FILE ? world_run_file_in(w, err, errlen)
                                         : world_run_poll_in(w, err, errlen);
    }
    char why[512] = "";
    if (r->kind->start(r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the route did not start: %s", why);
        return -1;
    }
    world_open_broker(w, cfg);
    if (world_start_thread(w, err, errlen) != 0)
        return -1;
    int rc = world_run_http_in(w, err, errlen);
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
    w->transport = (struct legacy_transport){.start = world_legacy_start, .arg = w};
    w->judge = (struct delivery_judge){.settle = world_judge_settle, .arg = w};
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
            rc = strcmp(r->kind->name, "file") == 0 ? world_run_file_out(w, err, errlen)
                                                    : world_run_outbound(w, err, errlen);
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
        world_local_free(&w->request);
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
