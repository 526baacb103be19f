/*
 * poll_in — legacy REST → AMQP by polling. Every `interval` seconds the route
 * GETs `url` ({cursor} replaced by the stored cursor, URL-encoded; ETag sent
 * back as If-None-Match), runs the jq expression `items` over the response,
 * and publishes each item with message_id = `id` (a jq expression per item).
 * The new cursor comes from `cursor` (per item, or over the whole response)
 * and is written to `<state_dir>/<route>.cursor` (tmp, fsync, rename, fsync
 * dir) only once every item up to it is confirmed (or parked as unroutable).
 * Items the last poll already stored are not published again.
 *
 * This file decides when to GET and keeps what lasts from poll to poll (the
 * cursor, the ETag, what was stored). poll_http.c sends the GET and reads
 * its answer; one response's items are a poll_batch (poll_batch.c), which
 * builds, publishes and settles them and says how far the cursor may move.
 *
 * Threads: the route owns one thread with its own loop, HTTP client and jq
 * states (jq is not thread-safe). Publisher completions arrive on the
 * publisher's thread and are handed back with loop_post. Failures (HTTP,
 * JSON, jq, broker) are logged, shown by /readyz, and retried with backoff;
 * an item that cannot be published as is (no id, transform error) is parked
 * in the route's DLQ with the reason, so one bad record cannot stop the feed.
 */
#include "backoff.h"
#include "config.h"
#include "http_text.h"
#include "httpc.h"
#include "legacy_auth.h"
#include "legacy_client.h"
#include "log.h"
#include "loop.h"
#include "pacer.h"
#include "poll_batch.h"
#include "poll_cursor.h"
#include "poll_cursor_broker.h"
#include "poll_http.h"
#include "poll_in.h"
#include "poll_jq.h"
#include "publisher.h"
#include "route.h"
#include "template.h"
#include "util.h"

#include <errno.h>
#include <jv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BROKER_WAIT_MS 500 /* re-check for a usable publisher this often */

#define O(field) offsetof(struct poll_in_opts, field)

static const struct config_key poll_in_keys[] = {
    {"url", KEY_URL, O(url), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "URL to GET; {cursor} is replaced by the stored cursor (URL-encoded)"},
    {"interval", KEY_NUMBER, O(interval), 0, "30", NULL, 0.05, 86400, NULL,
     "seconds between polls (a poll that moved the cursor is followed at "
     "once)"},
    {"items", KEY_STRING, O(items), 0, ".[]", NULL, 0, 0, NULL,
     "jq expression producing the items of a response, e.g. \".items[]\""},
    {"id", KEY_STRING, O(id), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "jq expression over an item giving its id (the message_id), e.g. \".id\""},
    {"cursor", KEY_STRING, O(cursor), 0, NULL, NULL, 0, 0, NULL,
     "jq expression giving the new cursor, e.g. \".updated_at\" (see "
     "cursor_from)"},
    {"cursor_from", KEY_ENUM, O(cursor_from), 0, "item", "item|response", 0, 0, NULL,
     "item: cursor runs over each item (items oldest first); response: over "
     "the whole response"},
    {"initial_cursor", KEY_STRING, O(initial_cursor), 0, "", NULL, 0, 0, NULL,
     "the cursor before anything was stored"},
    {"timeout", KEY_NUMBER, O(timeout), 0, "30", NULL, 0.01, 3600, NULL, "seconds for one GET"},
    {"max_response", KEY_INT, O(max_response), 0, "16777216", NULL, 1024, 1073741824, NULL,
     "largest response in bytes; a larger one is an error"},
    {"headers", KEY_MAP, O(headers), 0, NULL, NULL, 0, 0, NULL,
     "extra request headers: headers = { X-Api-Version = \"2\"; };"},
    {"auth", KEY_GROUP, O(auth), 0, NULL, NULL, 0, 0, legacy_auth_keys,
     "credentials for the legacy API: one of basic, bearer_token_file, header + value_file, "
     "oauth2"},
    {"tls", KEY_GROUP, O(tls), 0, NULL, NULL, 0, 0, legacy_tls_keys,
     "TLS to the legacy side (https://): private CA, client certificate, verification"},
    {"bearer_token_file", KEY_SECRET, O(bearer_token), 0, NULL, NULL, 0, 0, NULL,
     "deprecated: write auth = { bearer_token_file = \"…\"; }"},
    {0},
};

static const char *const url_placeholders[] = {"cursor", NULL};
static const char *const key_placeholders[] = {"json.", "id", NULL};

struct poll_in {
    struct route *route;
    char *cursor_path;
    char *state_dir;
    struct loop *loop;
    struct legacy_client *client;
    pthread_t thread;
    bool thread_started;

    /* poll thread only */
    struct poll_jq *jq_items, *jq_id, *jq_cursor;
    char *cursor;
    char *etag, *etag_url;
    struct poll_seen seen; /* what the last poll stored */
    struct backoff backoff;
    uint64_t timer;
    struct pacer *pacer;    /* rate = { … }: each GET waits its turn; NULL unpaced */
    struct pacer_wait turn; /* the next GET, waiting for its turn */
    bool polling;           /* a GET waits its turn or is in flight */
    char *request_url;      /* of the GET in flight */
    bool waiting_broker;
    bool standby;                 /* lease = true and this sidecar does not hold it: no GET */
    struct poll_batch *batch;     /* publishing; NULL between polls */
    char *batch_etag, *batch_url; /* of its response: remembered once it is stored */

    /* any thread */
    atomic_bool draining;
    atomic_long outstanding; /* publishes whose result the poll thread has not finished */
    pthread_mutex_t lock;
    char *last_error;    /* for ready(); under lock */
    char *handed_cursor; /* lease_gained's stored cursor, for the poll thread; under lock */
};

static const struct poll_in_opts *opts(const struct route *r)
{
    return r->opts;
}

static void set_last_error(struct poll_in *p, const char *text)
{
    pthread_mutex_lock(&p->lock);
    free(p->last_error);
    p->last_error = xstrdup(text);
    pthread_mutex_unlock(&p->lock);
    atomic_store(&p->route->metrics.poll_failing, 1);
}

/* ---- polling (poll thread)
 * ------------------------------------------------------------ */

static void poll_tick(struct loop *loop, void *arg);
static void poll_send(struct poll_in *p);

static void poll_turn(struct pacer_wait *w)
{
    poll_send((struct poll_in *)((char *)w - offsetof(struct poll_in, turn)));
}

static void poll_schedule(struct poll_in *p, double seconds)
{
    if (p->timer)
        loop_timer_cancel(p->loop, p->timer);
    p->timer = atomic_load(&p->draining) ? 0 : loop_timer(p->loop, loop_ms(seconds), poll_tick, p);
}

/* A poll went wrong: log it, show it in /readyz, try again after a backoff, or
 * later when the legacy side's Retry-After asks (at most RETRY_AFTER_MAX). */
static void poll_failed(struct poll_in *p, double retry_after, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void poll_failed(struct poll_in *p, double retry_after, const char *fmt, ...)
{
    char why[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    double delay = backoff_next(&p->backoff);
    if (retry_after > delay)
        delay = retry_after;
    set_last_error(p, why);
    metric_inc(p->route->metrics.poll_failures);
    log_warn(p->route->name, "poll failed (next try in %.1fs): %s", delay, why);
    poll_schedule(p, delay);
}

static void poll_succeeded(struct poll_in *p)
{
    backoff_reset(&p->backoff);
    pthread_mutex_lock(&p->lock);
    bool had_error = p->last_error != NULL;
    free(p->last_error);
    p->last_error = NULL;
    pthread_mutex_unlock(&p->lock);
    atomic_store(&p->route->metrics.poll_failing, 0);
    if (had_error)
        log_info(p->route->name, "poll works again");
}

/* Every item of b is back (or was never sent): advance, remember, schedule. */
static void batch_finished(void *arg, struct poll_batch *b)
{
    struct poll_in *p = arg;
    struct route *r = p->route;
    const struct poll_in_opts *o = opts(r);
    struct poll_batch_outcome out;
    poll_batch_outcome(b, &out);
    const char *next = out.cursor;
    bool moved = next && strcmp(next, p->cursor) != 0;
    char err[1024] = "";
    if (moved) {
        if (poll_cursor_save(p->state_dir, p->cursor_path, next, err, sizeof(err)) != 0)
            log_error(r->name,
                      "cannot store the cursor (it advances in memory only; a restart "
                      "publishes again from \"%s\"): %s",
                      p->cursor, err);
        free(p->cursor);
        p->cursor = xstrdup(next);
        if (r->cursor_queue && !p->standby)
            poll_cursor_broker_store(r, p->cursor, &p->outstanding);
    }
    if (out.published > 0 || moved)
        log_info(r->name, "published %zu item(s) of %zu; cursor \"%s\"", out.published, out.n,
                 p->cursor);

    /* What this poll stored is not published again by the next one. */
    poll_seen_update(&p->seen, b);

    bool ok = out.complete && err[0] == '\0';
    if (out.complete) {
        free(p->etag);
        free(p->etag_url);
        p->etag = p->batch_etag;
        p->etag_url = p->batch_url;
        p->batch_etag = p->batch_url = NULL;
    }
    p->batch = NULL;
    if (!out.complete) {
        poll_failed(p, 0, "%s", out.failure ? out.failure : "not every item was stored");
    } else if (!ok) {
        set_last_error(p, err);
        poll_schedule(p, o->interval);
    } else {
        poll_succeeded(p);
        /* More may be waiting behind a cursor that moved: ask again at once. */
        poll_schedule(p, out.published > 0 && moved ? 0 : o->interval);
    }
    poll_batch_free(b);
}

/* The response parsed (consumed): build the batch and start publishing. */
static void poll_process(struct poll_in *p, jv response, const char *etag, const char *url)
{
    struct route *r = p->route;
    const struct poll_in_opts *o = opts(r);
    struct poll_batch_config c = {
        .route = r,
        .loop = p->loop,
        .items = p->jq_items,
        .id = p->jq_id,
        .cursor = p->jq_cursor,
        .items_expr = o->items,
        .id_expr = o->id,
        .cursor_expr = o->cursor,
        .cursor_per_item = strcmp(o->cursor_from, "item") == 0,
        .draining = &p->draining,
        .outstanding = &p->outstanding,
        .finished = batch_finished,
        .arg = p,
    };
    char err[1536]; /* as poll_failed's */
    struct poll_batch *b = poll_batch_new(&c, response, &p->seen, err, sizeof(err));
    if (b == NULL) {
        poll_failed(p, 0, "%s", err);
        return;
    }
    free(p->batch_etag);
    free(p->batch_url);
    p->batch_etag = xstrdup(etag);
    p->batch_url = xstrdup(url);
    log_debug(r->name, "poll: %zu item(s)", poll_batch_size(b));
    p->batch = b;
    poll_batch_start(b);
}

/* Poll thread: the GET finished. */
static void poll_answered(void *arg, const struct httpc_response *resp)
{
    struct poll_in *p = arg;
    const struct poll_in_opts *o = opts(p->route);
    char *requested = p->request_url;
    p->request_url = NULL;
    p->polling = false;
    if (atomic_load(&p->draining)) {
        free(requested);
        return; /* nothing of it was published: the next run asks again */
    }
    histogram_observe(&p->route->metrics.legacy_seconds, resp->seconds);
    char why[1536]; /* as poll_failed's */
    double retry_after = 0;
    jv response = jv_null();
    if (p->pacer && httpc_asks_to_wait(resp)) {
        /* Not a failed poll: the same GET again, first, once the pause is over. */
        struct buf where = {0};
        http_text_url_redacted(&where, requested);
        snprintf(why, sizeof(why), "HTTP %ld from GET %s", resp->status, where.data);
        buf_free(&where);
        p->polling = true;
        pacer_hold(p->pacer, &p->turn, resp->retry_after, why);
        free(requested);
        return;
    }
    switch (poll_http_answer(resp, requested, o->max_response, &response, why, sizeof(why),
                             &retry_after)) {
    case POLL_ANSWER_FAILED:
        poll_failed(p, retry_after, "%s", why);
        break;
    case POLL_ANSWER_UNCHANGED:
        log_debug(p->route->name, "%s", why);
        poll_succeeded(p);
        poll_schedule(p, o->interval);
        break;
    case POLL_ANSWER_JSON:
        poll_process(p, response, resp->etag, requested);
        break;
    }
    free(requested);
}

static void poll_tick(struct loop *loop, void *arg)
{
    struct poll_in *p = arg;
    struct route *r = p->route;
    p->timer = 0;
    if (atomic_load(&p->draining) || p->standby || p->polling || p->batch)
        return;
    const char *why = NULL;
    if (!publisher_available(r->publisher, &why)) {
        /* Nothing could be stored now: do not ask the legacy side yet. */
        if (!p->waiting_broker)
            log_info(r->name, "waiting for the broker before polling: %s",
                     why ? why : "unavailable");
        p->waiting_broker = true;
        poll_schedule(p, BROKER_WAIT_MS / 1000.0);
        return;
    }
    p->waiting_broker = false;
    p->polling = true;
    if (p->pacer) {
        pacer_submit(p->pacer, &p->turn); /* every GET, the pages of one poll too */
        return;
    }
    poll_send(p);
}

/* The GET may go: its url from the cursor now. */
static void poll_send(struct poll_in *p)
{
    const struct poll_in_opts *o = opts(p->route);
    p->polling = false;
    if (atomic_load(&p->draining))
        return;
    char err[512];
    char *url = poll_http_url(o->url, p->cursor, err, sizeof(err));
    if (url == NULL) {
        poll_failed(p, 0, "cannot build the url: %s", err);
        return;
    }
    struct poll_http_get get = {
        .url = url,
        .etag = p->etag && p->etag_url && strcmp(p->etag_url, url) == 0 ? p->etag : NULL,
        .headers = &o->headers,
        .timeout = o->timeout,
        .max_response = (size_t)o->max_response,
    };
    if (poll_http_start(p->client, &get, poll_answered, p) != 0) {
        free(url);
        poll_failed(p, 0, "the HTTP client refused the request");
        return;
    }
    p->request_url = url;
    p->polling = true;
}

/* ---- thread
 * ------------------------------------------------------------------------- */

static void *poll_thread(void *arg)
{
    struct poll_in *p = arg;
    loop_run(p->loop);
    return NULL;
}

/* Compiles one expression on the poll thread (a jq_state belongs to the thread
 * that uses it); validate compiled it once already, so failing here is not
 * expected. */
static bool compile_expression(struct poll_in *p, const char *key, const char *program,
                               struct poll_jq **out)
{
    if (program == NULL)
        return true;
    char err[512];
    *out = poll_jq_compile(program, err, sizeof(err));
    if (*out)
        return true;
    char *why = xasprintf("route \"%s\": %s does not compile as jq: %s", p->route->name, key, err);
    p->route->services->fatal(p->route, why);
    free(why);
    return false;
}

static void init_on_thread(void *arg)
{
    struct poll_in *p = arg;
    const struct poll_in_opts *o = opts(p->route);
    if (compile_expression(p, "items", o->items, &p->jq_items) &&
        compile_expression(p, "id", o->id, &p->jq_id) &&
        compile_expression(p, "cursor", o->cursor, &p->jq_cursor))
        poll_schedule(p, 0); /* a standby route's tick does nothing */
}

/* ---- the lease (lease = true)
 * ------------------------------------------------------------------------- */

/* Poll thread: this sidecar holds the lease now; resume from the cursor the
 * last holder stored (it only ever follows confirmed items). */
static void gained_on_thread(void *arg)
{
    struct poll_in *p = arg;
    struct route *r = p->route;
    pthread_mutex_lock(&p->lock);
    char *stored = p->handed_cursor;
    p->handed_cursor = NULL;
    pthread_mutex_unlock(&p->lock);
    char err[1024];
    if (stored && strcmp(stored, p->cursor) != 0) {
        log_info(r->name, "resuming from the cursor stored in %s: \"%s\" (local: \"%s\")",
                 r->cursor_queue, stored, p->cursor);
        free(p->cursor);
        p->cursor = stored;
        stored = NULL;
        if (poll_cursor_save(p->state_dir, p->cursor_path, p->cursor, err, sizeof(err)) != 0)
            log_warn(r->name, "cannot store the cursor locally: %s", err);
        free(p->etag); /* of another cursor's url, and perhaps another holder's time */
        free(p->etag_url);
        p->etag = p->etag_url = NULL;
    }
    free(stored);
    p->standby = false;
    poll_schedule(p, 0);
}

static void lost_on_thread(void *arg)
{
    struct poll_in *p = arg;
    p->standby = true; /* a GET or batch under way ends; its publishes fail with the connection */
    if (p->timer)
        loop_timer_cancel(p->loop, p->timer);
    p->timer = 0;
}

static void poll_in_lease_gained(struct route *r, const char *cursor)
{
    struct poll_in *p = r->state;
    pthread_mutex_lock(&p->lock); /* kept here, not in the post: a stop may drop that */
    free(p->handed_cursor);
    p->handed_cursor = cursor ? xstrdup(cursor) : NULL;
    pthread_mutex_unlock(&p->lock);
    loop_post(p->loop, gained_on_thread, p);
}

static void poll_in_lease_lost(struct route *r)
{
    struct poll_in *p = r->state;
    loop_post(p->loop, lost_on_thread, p);
}

static void drain_on_thread(void *arg)
{
    struct poll_in *p = arg;
    if (p->timer)
        loop_timer_cancel(p->loop, p->timer);
    p->timer = 0;
    if (p->pacer) {
        if (pacer_cancel(p->pacer, &p->turn))
            p->polling = false;
        pacer_stop(p->pacer);
    }
}

/* ---- the kind
 * ------------------------------------------------------------------------ */

static void check_jq(const struct route *r, const char *key, const char *program,
                     struct config_report *rep)
{
    if (program == NULL)
        return;
    char err[512];
    struct poll_jq *q = poll_jq_compile(program, err, sizeof(err));
    if (q == NULL)
        config_report_add(rep, r->line, "inbound route \"%s\": %s does not compile as jq: %s",
                          r->name, key, err);
    poll_jq_free(q); /* the route's thread compiles its own */
}

/* state_dir must be a writable directory, or creatable below the nearest one
 * that exists. */
static void check_state_dir(const struct route *r, const char *dir, struct config_report *rep)
{
    char *problem = poll_cursor_dir_problem(dir);
    if (problem)
        config_report_add(rep, r->line,
                          "inbound route \"%s\": state_dir %s; the poll cursor is kept there: "
                          "make it a directory the sidecar's user may write (systemd: "
                          "StateDirectory=) or set state_dir = \"…\"",
                          r->name, problem);
    free(problem);
}

/* The old bearer_token_file key becomes auth.bearer_token_file, with a note. */
static void adopt_old_bearer(struct route *r, struct poll_in_opts *o, struct config_report *rep)
{
    if (o->bearer_token.path == NULL)
        return;
    if (o->auth.bearer_token.path != NULL) {
        config_report_add(rep, o->bearer_token.line,
                          "inbound route \"%s\": bearer_token_file and auth.bearer_token_file "
                          "are both set; keep auth = { bearer_token_file = \"%s\"; } only",
                          r->name, o->bearer_token.path);
        return;
    }
    config_report_note(rep, o->bearer_token.line,
                       "inbound route \"%s\": bearer_token_file is deprecated; write auth = { "
                       "bearer_token_file = \"%s\"; } (it works the same)",
                       r->name, o->bearer_token.path);
    o->auth.bearer_token = o->bearer_token; /* moved: auth's key re-reads and frees it */
    o->bearer_token = (struct secret){0};
}

static void poll_in_validate(struct route *r, const struct sidecar_config *cfg,
                             struct config_report *rep)
{
    struct poll_in_opts *o = r->opts;
    char err[512];
    adopt_old_bearer(r, o, rep);
    char *where = xasprintf("inbound route \"%s\"", r->name);
    legacy_auth_validate(&o->auth, where, r->line, &o->headers, rep);
    legacy_tls_validate(&o->tls, o->url, where, r->line, rep);
    free(where);
    if (o->url && template_check(o->url, url_placeholders, err, sizeof(err)) != 0)
        config_report_add(rep, r->line, "inbound route \"%s\": url %s", r->name, err);
    bool url_has_cursor = o->url && strstr(o->url, "{cursor}") != NULL;
    if (o->cursor && o->url && !url_has_cursor)
        config_report_add(rep, r->line,
                          "inbound route \"%s\": cursor is set but url has no {cursor}, so it "
                          "would never be sent; add it, e.g. url = \"…?since={cursor}\"",
                          r->name);
    if (!o->cursor && url_has_cursor)
        config_report_add(rep, r->line,
                          "inbound route \"%s\": url uses {cursor} but no cursor expression is "
                          "set; add cursor = \".updated_at\" (or similar)",
                          r->name);
    if (r->routing_key && template_check(r->routing_key, key_placeholders, err, sizeof(err)) != 0)
        config_report_add(rep, r->line, "inbound route \"%s\": routing_key %s", r->name, err);
    check_jq(r, "items", o->items, rep);
    check_jq(r, "id", o->id, rep);
    check_jq(r, "cursor", o->cursor, rep);
    for (size_t i = 0; i < o->headers.n; i++)
        if (!http_text_header_value_ok(o->headers.values[i]))
            config_report_add(rep, r->line,
                              "inbound route \"%s\": headers.%s holds a control character "
                              "(a line break?); header values must be one line",
                              r->name, o->headers.names[i]);
    if (cfg->state_dir)
        check_state_dir(r, cfg->state_dir, rep);
}

static void poll_in_describe(const struct route *r, struct buf *out)
{
    const struct poll_in_opts *o = opts(r);
    buf_puts(out, "GET ");
    http_text_url_redacted(out, o->url);
    buf_printf(out, " every %gs", o->interval);
    route_describe_rate(r, out);
    buf_printf(out, ", items %s, id %s", o->items, o->id);
    if (o->cursor)
        buf_printf(out, ", cursor %s (per %s)", o->cursor, o->cursor_from);
    buf_printf(out, " → exchange \"%s\" key \"%s\"%s, auth %s", r->exchange, r->routing_key,
               r->transform ? " (transform)" : "", legacy_auth_describe(&o->auth));
    if (r->lease)
        buf_printf(out, "; under lease %s, cursor also in %s", r->lease_queue, r->cursor_queue);
}

static void poll_in_free_state(struct poll_in *p)
{
    poll_batch_free(p->batch);
    poll_jq_free(p->jq_items); /* the poll thread has ended */
    poll_jq_free(p->jq_id);
    poll_jq_free(p->jq_cursor);
    free(p->cursor);
    free(p->request_url);
    free(p->etag);
    free(p->etag_url);
    poll_seen_free(&p->seen);
    free(p->batch_etag);
    free(p->batch_url);
    free(p->cursor_path);
    free(p->state_dir);
    free(p->last_error);
    free(p->handed_cursor);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int poll_in_start(struct route *r, char *err, size_t errlen)
{
    const struct poll_in_opts *o = opts(r);
    const char *dir = r->services->state_dir;
    if (poll_cursor_dir_create(dir) != 0) {
        snprintf(err, errlen, "cannot create state_dir \"%s\": %s", dir, strerror(errno));
        return -1;
    }
    struct poll_in *p = xcalloc(1, sizeof(*p));
    p->route = r;
    p->state_dir = xstrdup(dir);
    p->cursor_path = xasprintf("%s/%s.cursor", dir, r->name);
    p->standby = r->lease; /* until lease_gained */
    pthread_mutex_init(&p->lock, NULL);
    bool missing;
    p->cursor = poll_cursor_load(p->cursor_path, &missing, err, errlen);
    if (p->cursor == NULL && !missing) {
        poll_in_free_state(p);
        return -1;
    }
    if (p->cursor == NULL)
        p->cursor = xstrdup(o->initial_cursor);
    backoff_init(&p->backoff, o->interval < 1 ? o->interval : 1,
                 o->interval > 60 ? o->interval : 60);
    p->loop = loop_new();
    p->client = legacy_client_new(p->loop, &(struct legacy_client_config){
                                               .route = r->name,
                                               .auth = &o->auth,
                                               .oauth2 = r->services->oauth2,
                                               .tls = &o->tls,
                                               .transport = r->services->legacy_transport,
                                           });
    p->turn.go = poll_turn;
    if (r->rate.rate > 0)
        p->pacer = pacer_new(&(struct pacer_config){.route = r->name,
                                                    .held = "polls",
                                                    .per_second = r->rate.rate,
                                                    .burst = r->rate.burst,
                                                    .loop = p->loop,
                                                    .throttled_ms = &r->metrics.throttled_ms,
                                                    .gauge = &r->metrics.throttle});
    r->state = p;
    struct buf where = {0};
    http_text_url_redacted(&where, o->url);
    log_info(r->name, "polling GET %s every %gs from cursor \"%s\"%s%s", where.data, o->interval,
             p->cursor, missing ? " (initial)" : "",
             r->lease ? ", once this sidecar holds the lease" : "");
    buf_free(&where);
    loop_post(p->loop, init_on_thread, p);
    if (pthread_create(&p->thread, NULL, poll_thread, p) != 0) {
        snprintf(err, errlen, "cannot start the poll thread");
        return -1;
    }
    p->thread_started = true;
    return 0;
}

static void poll_in_drain(struct route *r)
{
    struct poll_in *p = r->state;
    if (p == NULL)
        return;
    atomic_store(&p->draining, true);
    loop_post(p->loop, drain_on_thread, p);
}

static bool poll_in_busy(struct route *r)
{
    struct poll_in *p = r->state;
    return p && atomic_load(&p->outstanding) > 0;
}

/* After the publisher stopped: nothing calls back any more. */
static void poll_in_stop(struct route *r)
{
    struct poll_in *p = r->state;
    if (p == NULL)
        return;
    atomic_store(&p->draining, true);
    if (p->thread_started) {
        loop_stop(p->loop);
        pthread_join(p->thread, NULL);
    }
    legacy_client_free(p->client);
    pacer_free(p->pacer); /* its timer is on the loop: free it first */
    loop_free(p->loop);
    poll_in_free_state(p);
    r->state = NULL;
}

static bool poll_in_ready(struct route *r, struct buf *detail)
{
    struct poll_in *p = r->state;
    if (p == NULL)
        return true;
    pthread_mutex_lock(&p->lock);
    bool ok = p->last_error == NULL;
    if (!ok && detail)
        buf_printf(detail, "last poll failed: %s", p->last_error);
    pthread_mutex_unlock(&p->lock);
    if (p->pacer)
        pacer_describe(p->pacer, detail); /* a pause is shown, but is no failure */
    return ok;
}

static const struct legacy_auth *poll_in_legacy_auth(const struct route *r)
{
    return &opts(r)->auth;
}

const struct route_kind kind_poll_in = {
    .name = "poll",
    .direction = ROUTE_INBOUND,
    .summary = "the sidecar GETs a legacy REST endpoint every interval and "
               "publishes new items",
    .paced = true,
    .keeps_state = true,
    .leasable = true,
    .keys = poll_in_keys,
    .opts_size = sizeof(struct poll_in_opts),
    .validate = poll_in_validate,
    .describe = poll_in_describe,
    .start = poll_in_start,
    .drain = poll_in_drain,
    .busy = poll_in_busy,
    .stop = poll_in_stop,
    .ready = poll_in_ready,
    .legacy_auth = poll_in_legacy_auth,
    .lease_gained = poll_in_lease_gained,
    .lease_lost = poll_in_lease_lost,
};
