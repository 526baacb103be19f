/*
 * route_test_outbound — outbound cases (see route_test_world.h): the case's
 * delivery, carrying a judge that records the kind's verdict, handed to the
 * kind's deliver on the route's thread; the legacy side's answers; and for
 * file out, the files the route wrote into a temporary dir.
 */
#include "route_test_world.h"

#include "kinds/file_out.h"
#include "loop.h"
#include "message.h"
#include "retry_after.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- outbound: a delivery with a judge, and the legacy side ------------------------------ */

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
        return world_json_text(h->value);
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

int world_legacy_start(void *arg, struct loop *loop, const struct httpc_request *req,
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
                  "body", req->body ? world_json_body(req->body, req->body_len) : json_null());
    pthread_mutex_lock(&w->lock);
    json_array_append_new(json_object_get(w->got, "requests"), one);
    pthread_mutex_unlock(&w->lock);
    loop_timer(loop, 0, legacy_answer, c);
    return 0;
}

static json_t *message_json(const struct message *m)
{
    return json_pack("{s:o s:o s:o}", "content_type", world_json_text(m->content_type), "headers",
                     world_json_headers(m->headers, m->n_headers), "body",
                     world_json_body(m->body, m->body_len));
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

void world_judge_settle(void *arg, struct delivery *d, struct delivery_verdict *v)
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

int world_run_outbound(struct world *w, char *err, size_t errlen)
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
        char *content = world_read_text(path);
        json_array_append_new(written,
                              json_pack("{s:s s:o}", "name", e->d_name, "content",
                                        world_json_body(content, content ? strlen(content) : 0)));
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
int world_run_file_out(struct world *w, char *err, size_t errlen)
{
    struct file_out_opts *o = w->r->opts;
    char *top = world_temp_dir_new(err, errlen);
    if (top == NULL)
        return -1;
    char *saved = o->dir;
    o->dir = top;
    int rc = world_run_outbound(w, err, errlen);
    if (rc == 0)
        list_written(w, top);
    o->dir = saved;
    world_temp_dir_remove(top);
    return rc;
}
