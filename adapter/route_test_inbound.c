/*
 * route_test_inbound — the inputs of inbound cases (see route_test_world.h):
 * a local HTTP request handed to the route's handler on the broker's thread,
 * a dropped file left in a temporary .processing/ for the real file_in code,
 * polls answered from the case's responses.
 */
#include "route_test_world.h"

#include "kinds/file_in.h"
#include "kinds/poll_cursor.h"
#include "kinds/poll_in.h"
#include "loop.h"
#include "message.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- inbound http and soap: a local request ---------------------------------------- */

static void answered(void *arg, int status, const char *content_type, const char *body, size_t len,
                     const struct header *headers, size_t n_headers)
{
    struct local *l = arg;
    struct world *w = l->w;
    json_t *h = world_json_headers(headers, n_headers);
    if (content_type)
        json_object_set_new(h, "Content-Type", json_string(content_type));
    json_t *answer = json_pack("{s:i s:o s:o}", "status", status, "headers", h, "body",
                               world_json_body(body, len));
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

void world_local_free(struct local *l)
{
    pairs_free(l->headers, l->req.n_headers);
    pairs_free(l->query, l->req.n_query);
    free(l->path);
    free(l->body);
}

int world_run_http_in(struct world *w, char *err, size_t errlen)
{
    local_build(w, &w->request);
    loop_post(w->loop, dispatch, &w->request);
    if (world_wait(w, 0))
        return 0;
    snprintf(err, errlen, "no HTTP answer within %ds", CASE_TIMEOUT_S);
    return -1;
}

/* ---- inbound file: a temporary drop directory ---------------------------------------- */

int world_run_file_in(struct world *w, char *err, size_t errlen)
{
    struct route *r = w->r;
    struct file_in_opts *o = r->opts;
    json_t *spec = json_object_get(w->tc->spec, "file");
    const char *name = json_string_value(json_object_get(spec, "name"));
    size_t len;
    char *content = route_test_body_text(json_object_get(spec, "content"), &len);

    char *top = world_temp_dir_new(err, errlen);
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
    while ((world_path_exists(claimed) || r->kind->busy(r)) && loop_now_ms() < deadline)
        usleep(5000);
    r->kind->drain(r);
    while (r->kind->busy(r) && loop_now_ms() < deadline)
        usleep(5000);
    r->kind->stop(r);
    char *in_done = xasprintf("%s/%s", done, name), *in_failed = xasprintf("%s/%s", failed, name);
    char *error_file = xasprintf("%s/%s.error", failed, name);
    const char *outcome = world_path_exists(claimed)                      ? "kept"
                          : world_path_exists(in_failed)                  ? "failed"
                          : world_path_exists(in_done) || !saved.done_dir ? "done"
                                                                          : "gone";
    char *error = world_read_text(error_file);
    pthread_mutex_lock(&w->lock);
    json_object_set_new(w->got, "file", json_string(outcome));
    json_object_set_new(w->got, "error", world_json_text(error));
    pthread_mutex_unlock(&w->lock);
    free(error);
    free(error_file);
    free(in_done);
    free(in_failed);
    rc = 0;
    if (world_path_exists(claimed)) {
        snprintf(err, errlen, "the file was still in .processing after %ds", CASE_TIMEOUT_S);
        rc = -1;
    }
out:
    *o = saved;
    world_temp_dir_remove(top);
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
int world_run_poll_in(struct world *w, char *err, size_t errlen)
{
    struct route *r = w->r;
    struct poll_in_opts *o = r->opts;
    char *top = world_temp_dir_new(err, errlen);
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
    json_object_set_new(w->got, "cursor", world_json_text(stored));
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
    world_temp_dir_remove(top);
    free(path);
    return rc;
}
