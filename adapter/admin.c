/*
 * admin — see admin.h. Handlers answer at once on the server's thread; all
 * they read is atomic counters and states.
 */
#include "admin.h"

#include "httpd.h"
#include "metrics.h"
#include "sidecar.h"
#include "status.h"
#include "status_page.h"
#include "util.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool method_ok(struct http_request *req)
{
    const char *m = http_request_method(req);
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return true;
    http_respond_error(req, 405, "use GET");
    return false;
}

static void on_healthz(struct http_request *req, void *arg)
{
    if (method_ok(req))
        http_respond(req, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
}

static void on_readyz(struct http_request *req, void *arg)
{
    if (!method_ok(req))
        return;
    struct buf detail = {0};
    sidecar_routes_read_lock(arg);
    bool ready = sidecar_ready(arg, &detail);
    sidecar_routes_read_unlock(arg);
    http_respond(req, ready ? 200 : 503, "application/json", detail.data, detail.len);
    buf_free(&detail);
}

static void on_metrics(struct http_request *req, void *arg)
{
    if (!method_ok(req))
        return;
    struct buf out = {0};
    sidecar_routes_read_lock(arg);
    metrics_render(&((struct sidecar *)arg)->metrics_sources, &out);
    sidecar_routes_read_unlock(arg);
    http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    buf_free(&out);
}

static void on_status_json(struct http_request *req, void *arg)
{
    if (!method_ok(req))
        return;
    sidecar_routes_read_lock(arg);
    json_t *doc = status_json(((struct sidecar *)arg)->status);
    sidecar_routes_read_unlock(arg);
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_ENSURE_ASCII);
    json_decref(doc);
    http_respond(req, 200, "application/json", text, strlen(text));
    free(text);
}

static void on_status_page(struct http_request *req, void *arg)
{
    if (!method_ok(req))
        return;
    sidecar_routes_read_lock(arg);
    json_t *doc = status_json(((struct sidecar *)arg)->status);
    sidecar_routes_read_unlock(arg);
    struct buf page = {0};
    status_page_html(doc, &page);
    json_decref(doc);
    http_respond(req, 200, "text/html; charset=utf-8", page.data, page.len);
    buf_free(&page);
}

int admin_start(struct sidecar *sc, char *err, size_t errlen)
{
    if (sc->cfg->admin.listen == NULL)
        return 0;
    struct http_server *s =
        sidecar_http_server(sc, sc->cfg->admin.listen, &sc->cfg->admin.tls, err, errlen);
    if (s == NULL)
        return -1;
    if (http_server_route(s, "/healthz", 0, on_healthz, sc) != 0 ||
        http_server_route(s, "/readyz", 0, on_readyz, sc) != 0 ||
        http_server_route(s, "/metrics", 0, on_metrics, sc) != 0 ||
        http_server_route(s, "/status.json", 0, on_status_json, sc) != 0 ||
        http_server_route(s, "/", 0, on_status_page, sc) != 0) {
        snprintf(err, errlen,
                 "admin.listen %s: a route already uses /, /healthz, /readyz, /metrics or "
                 "/status.json",
                 sc->cfg->admin.listen);
        return -1;
    }
    return 0;
}
