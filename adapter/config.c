/*
 * config — the schema of the process and its routes, and the whole-file load:
 * read a libconfig file and validate it completely before anything starts (the
 * same code path for `check` and `run`).
 *
 * config_load applies the process keys (name, broker, admin, http, …) with the
 * key-table engine (config_keys.c), then parses each inbound and outbound route
 * against three tables: the keys every route has, the keys of its direction,
 * and its kind's own keys. It derives each route's queue, DLX and DLQ names
 * and runs the cross-route checks (duplicate names, clashing queues or
 * listeners) last. Every problem is collected with its line so one `check` run
 * shows them all.
 */
#include "config.h"
#include "config_env.h"
#include "config_internal.h"

#include "broker_url.h"
#include "jq_transform.h"
#include "listen_tls.h"
#include "route.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the process keys ----------------------------------------------------- */

#define CFG(field) offsetof(struct sidecar_config, field)

static const struct config_key tls_keys[] = {
    {"ca", KEY_FILE, CFG(broker.tls.ca), 0, NULL, NULL, 0, 0, NULL,
     "CA certificate file (PEM) to verify the broker; default: the system store"},
    {"cert", KEY_FILE, CFG(broker.tls.cert), 0, NULL, NULL, 0, 0, NULL,
     "client certificate (PEM) for mutual TLS"},
    {"key", KEY_SECRET, CFG(broker.tls.key), 0, NULL, NULL, 0, 0, NULL,
     "client private key (PEM), mode 0600"},
    {"verify", KEY_BOOL, CFG(broker.tls.verify), 0, "true", NULL, 0, 0, NULL,
     "verify the broker's certificate and host name (turn off only for tests)"},
    {0},
};

static const struct config_key broker_keys[] = {
    {"url", KEY_STRING, CFG(broker.url), 0, NULL, NULL, 0, 0, NULL,
     "amqp://user:pass@host:port/vhost or amqps:// for TLS (vhost \"/\" is %2f)"},
    {"urls", KEY_STRINGS, CFG(broker.urls), 0, NULL, NULL, 0, 0, NULL,
     "cluster nodes, tried in order on each reconnect (instead of url)"},
    {"password_file", KEY_SECRET, CFG(broker.password), 0, NULL, NULL, 0, 0, NULL,
     "file holding the broker password (mode 0600); overrides the URL's"},
    {"heartbeat", KEY_INT, CFG(broker.heartbeat), 0, "30", NULL, 0, 3600, NULL,
     "AMQP heartbeat in seconds (0 = off)"},
    {"connect_timeout", KEY_NUMBER, CFG(broker.connect_timeout), 0, "5", NULL, 0.1, 300, NULL,
     "seconds to open a connection before trying the next URL"},
    {"confirm_timeout", KEY_NUMBER, CFG(broker.confirm_timeout), 0, "15", NULL, 0.1, 3600, NULL,
     "seconds to wait for a publisher confirm before the connection is reset"},
    {"max_inflight", KEY_INT, CFG(broker.max_inflight), 0, "1024", NULL, 1, 32768, NULL,
     "publishes awaiting confirm per connection (the group-commit window)"},
    {"max_message", KEY_INT, CFG(broker.max_message), 0, "16777216", NULL, 4096, 536870912, NULL,
     "largest message body the broker takes: set it to RabbitMQ's max_message_size (16 MiB "
     "from 4.0, 128 MiB before); a larger one is refused for its sender alone, where the broker "
     "would close the channel every publish in flight shares"},
    {"tls", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, tls_keys, "TLS settings for amqps://"},
    {0},
};

static const struct config_key admin_keys[] = {
    {"listen", KEY_LISTEN, CFG(admin.listen), 0, NULL, NULL, 0, 0, NULL,
     "host:port for GET / (status page) /status.json /healthz /readyz /metrics; unset = no "
     "admin endpoint"},
    {"max_connections", KEY_INT, CFG(admin.max_connections), 0, "32", NULL, 2, 1024, NULL,
     "connections at once to the admin listener; its own budget, apart from the routes' "
     "(unless a route shares its listen address)"},
    {"tls", KEY_GROUP, CFG(admin.tls), KEY_GROUP_LINE, NULL, NULL, 0, 0, listen_tls_keys,
     "serve the admin endpoint over HTTPS (and with client_ca, mutual TLS); a route on the same "
     "address must have the same tls"},
    {"queue_interval", KEY_NUMBER, CFG(admin.queue_interval), 0, "15", NULL, 1, 3600, NULL,
     "seconds between reads of the depth of every queue the sidecar owns (a passive "
     "queue.declare on the connection that owns it), shown by /metrics and the status page"},
    {0},
};

static const struct config_key http_keys[] = {
    {"max_connections", KEY_INT, CFG(http.max_connections), 0, "4096", NULL, 2, 1000000, NULL,
     "connections at once per route listener (more wait in the listen backlog); lowered at start "
     "if RLIMIT_NOFILE cannot hold them all"},
    {"max_connections_per_ip", KEY_INT, CFG(http.max_connections_per_ip), 0, "256", NULL, 0,
     1000000, NULL,
     "connections at once from one client address per listener (more are closed at once); "
     "0 = no limit; raise it when clients come through one proxy or NAT"},
    {"read_timeout", KEY_NUMBER, CFG(http.read_timeout), 0, "10", NULL, 0.1, 3600, NULL,
     "seconds a whole request (request line, headers, body) may take to arrive, from accept or, "
     "kept alive, from its request line; then the connection is closed"},
    {"idle_timeout", KEY_NUMBER, CFG(http.idle_timeout), 0, "60", NULL, 1, 3600, NULL,
     "seconds a kept-alive connection may wait for its next request (and a slow reader may "
     "stall an answer)"},
    {0},
};

static const struct config_key otel_keys[] = {
    {"endpoint", KEY_URL, CFG(otel.endpoint), 0, NULL, NULL, 0, 0, NULL,
     "OTLP/HTTP collector base URL, e.g. http://127.0.0.1:4318 (spans are POSTed as JSON to "
     "its /v1/traces); unset = no traces"},
    {"service_name", KEY_STRING, CFG(otel.service_name), 0, NULL, NULL, 0, 0, NULL,
     "the service.name resource attribute; default: the system's name"},
    {"sample_ratio", KEY_NUMBER, CFG(otel.sample_ratio), 0, "1", NULL, 0, 1, NULL,
     "share of traces started here that are recorded (0 to 1); an incoming traceparent's "
     "sampled flag decides for the traces it continues"},
    {0},
};

const struct config_key config_process_keys[] = {
    {"name", KEY_NAME, CFG(name), KEY_REQUIRED, NULL, NULL, 0, 0, NULL,
     "the legacy system's name; prefixes every queue the sidecar owns"},
    {"broker", KEY_GROUP, 0, KEY_REQUIRED, NULL, NULL, 0, 0, broker_keys, "RabbitMQ connection"},
    {"admin", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, admin_keys, "health and metrics endpoint"},
    {"http", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, http_keys,
     "limits of the route listeners (http and soap inbound)"},
    {"otel", KEY_GROUP, 0, 0, NULL, NULL, 0, 0, otel_keys,
     "OpenTelemetry traces: one span per hop, exported over OTLP/HTTP (JSON)"},
    {"log_format", KEY_ENUM, CFG(log_format), 0, "logfmt", "logfmt|json", 0, 0, NULL,
     "one line per event on stderr, as logfmt or JSON"},
    {"state_dir", KEY_PATH, CFG(state_dir), 0, NULL, NULL, 0, 0, NULL,
     "where poll cursors are kept; default $STATE_DIRECTORY or /var/lib/amqp-sidecar/<name>"},
    {"drain_timeout", KEY_NUMBER, CFG(drain_timeout), 0, "30", NULL, 0, 3600, NULL,
     "seconds SIGTERM waits for in-flight work before closing anyway"},
    {"spool", KEY_GROUP, CFG(spool), KEY_GROUP_LINE, NULL, NULL, 0, 0, spool_process_keys,
     "a spool for every http and soap event route without one of its own (see the routes' "
     "spool)"},
    {"inbound", KEY_ROUTES, 0, 0, NULL, NULL, 0, 0, NULL, "routes legacy → AMQP"},
    {"outbound", KEY_ROUTES, 0, 0, NULL, NULL, 0, 0, NULL, "routes AMQP → legacy"},
    {0},
};

/* ---- routes --------------------------------------------------------------- */

void config_route_free(struct route *r)
{
    if (r == NULL)
        return;
    if (r->kind != NULL) {
        if (r->kind->free_opts)
            r->kind->free_opts(r);
        config_free_keys(r->kind->keys, r->opts);
    }
    free(r->opts);
    transform_free(r->transform);
    config_free_keys(route_common_keys, r);
    config_free_keys(r->direction == ROUTE_INBOUND ? route_inbound_keys : route_outbound_keys, r);
    config_free_keys(route_rate_keys, r);
    config_free_keys(route_lease_keys, r);
    free(r->lease_queue);
    free(r->cursor_queue);
    free(r->dlx);
    free(r->dlq);
    free(r->dlq_key);
    free(r->app_id);
    free(r);
}

/* Derives the names DESIGN.md fixes: queues, DLX, DLQ and their keys. */
static void route_derive(struct route *r, const struct sidecar_config *cfg)
{
    r->dlx = xasprintf("%s.dlx", cfg->name ? cfg->name : "sidecar");
    r->app_id = xasprintf("amqp-sidecar/%s", cfg->name ? cfg->name : "sidecar");
    if (r->direction == ROUTE_OUTBOUND) {
        if (r->queue == NULL)
            r->queue = xasprintf("%s.%s", cfg->name ? cfg->name : "sidecar", r->name);
        r->dlq = xasprintf("%s.dlq", r->queue);
        r->dlq_key = xstrdup(r->queue);
    } else {
        r->dlq_key = xasprintf("%s.%s", cfg->name ? cfg->name : "sidecar", r->name);
        r->dlq = xasprintf("%s.dlq", r->dlq_key);
        if (r->lease) {
            r->lease_queue = xasprintf("%s.lease", r->dlq_key);
            if (r->kind && r->kind->keeps_state)
                r->cursor_queue = xasprintf("%s.cursor", r->dlq_key);
        }
    }
}

/* A route's name and kind label its errors and pick its kind's table before
 * the tables run, so they are expanded the way the tables will expand them.
 * NULL when absent, not a string, or not expandable: the tables report that. */
static char *route_label(config_setting_t *s, const char *key)
{
    const char *raw = NULL;
    if (!config_setting_lookup_string(s, key, &raw))
        return NULL;
    char err[256];
    return config_env_expand(raw, config_env_getenv, NULL, err, sizeof(err));
}

/* A key of another kind's table (rate, lease) on a route whose kind has none:
 * say why it does not apply instead of guessing at a near name. */
static void explain_inapplicable(struct config_report *rep, size_t from, const char *key,
                                 const char *where, const char *why)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "unknown key \"%s\"", key);
    for (size_t i = from; i < rep->n; i++) {
        if (strstr(rep->errors[i].msg, needle) == NULL)
            continue;
        free(rep->errors[i].msg);
        rep->errors[i].msg = xasprintf("%s: %s", where, why);
    }
}

static struct route *route_parse(config_setting_t *s, enum route_direction dir,
                                 struct sidecar_config *cfg, struct config_report *rep)
{
    const char *list = dir == ROUTE_INBOUND ? "inbound" : "outbound";
    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        config_report_add(rep, config_line_of(s),
                          "%s: each route must be a group { name = …; kind = …; }", list);
        return NULL;
    }
    struct route *r = xcalloc(1, sizeof(*r));
    r->direction = dir;
    r->line = config_line_of(s);

    char *name = route_label(s, "name");
    char *kind = route_label(s, "kind");
    char *where = name ? xasprintf("%s route \"%s\"", list, name)
                       : xasprintf("%s route at line %d", list, r->line);

    if (kind != NULL) {
        r->kind = route_kind_find(dir, kind);
        if (r->kind == NULL) {
            struct buf avail = {0};
            for (const struct route_kind *const *k = route_kinds(); *k; k++)
                if ((*k)->direction == dir)
                    buf_printf(&avail, "%s%s", avail.len ? ", " : "", (*k)->name);
            config_report_add(rep, config_line_of(config_setting_get_member(s, "kind")),
                              "%s: unknown kind \"%s\"; %s routes can be: %s", where, kind, list,
                              avail.data ? avail.data : "(none)");
            buf_free(&avail);
        }
    }

    struct key_table tables[5] = {
        {route_common_keys, r},
        {dir == ROUTE_INBOUND ? route_inbound_keys : route_outbound_keys, r},
        {NULL, NULL},
        {NULL, NULL},
        {NULL, NULL},
    };
    size_t n_tables = 2;
    if (r->kind != NULL) {
        r->opts = xcalloc(1, r->kind->opts_size ? r->kind->opts_size : 1);
        tables[n_tables++] = (struct key_table){r->kind->keys, r->opts};
        if (r->kind->paced) {
            tables[n_tables++] = (struct key_table){route_rate_keys, r};
            config_setting_t *rate = config_setting_get_member(s, "rate");
            if (rate && config_setting_type(rate) != CONFIG_TYPE_GROUP)
                rate = NULL; /* the tables report its type */
            r->rate.line = rate ? config_line_of(rate) : 0;
            r->rate.written = rate && (config_setting_get_member(rate, "per_second") ||
                                       config_setting_get_member(rate, "per_minute"));
        }
        if (r->kind->leasable)
            tables[n_tables++] = (struct key_table){route_lease_keys, r};
        size_t before = rep->n;
        config_apply_tables(tables, n_tables, s, where, cfg, rep);
        if (!r->kind->paced)
            explain_inapplicable(rep, before, "rate", where,
                                 "rate applies only to routes that call the legacy side "
                                 "(outbound http and soap, inbound poll); remove it");
        if (!r->kind->leasable)
            explain_inapplicable(rep, before, "lease", where,
                                 "lease applies only to inbound poll and file routes (every other "
                                 "kind runs on all sidecars at once); remove it");
    } else {
        /* Without a kind we cannot tell its keys from typos: check only the common ones. */
        size_t before = rep->n;
        config_apply_tables(tables, n_tables, s, where, cfg, rep);
        for (size_t i = before; i < rep->n; i++) {
            if (strstr(rep->errors[i].msg, "unknown key")) {
                free(rep->errors[i].msg);
                rep->errors[i] = rep->errors[--rep->n];
                i--;
            }
        }
    }
    free(where);
    bool usable = r->name != NULL && kind != NULL && r->kind != NULL;
    free(name);
    free(kind);
    if (!usable) {
        config_route_free(r);
        return NULL;
    }
    route_derive(r, cfg);
    return r;
}

static void routes_parse(config_t *lc, const char *list, enum route_direction dir,
                         struct sidecar_config *cfg, struct config_report *rep)
{
    config_setting_t *s = config_lookup(lc, list);
    if (s == NULL)
        return;
    if (config_setting_type(s) != CONFIG_TYPE_LIST) {
        config_report_add(rep, config_line_of(s),
                          "%s must be a list of groups: %s = ( { … }, { … } );", list, list);
        return;
    }
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        struct route *r = route_parse(config_setting_get_elem(s, (unsigned)i), dir, cfg, rep);
        if (r == NULL)
            continue;
        cfg->routes = xrealloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*cfg->routes));
        cfg->routes[cfg->n_routes++] = r;
    }
}

/* ---- cross-checks --------------------------------------------------------- */

static void check_broker(struct sidecar_config *cfg, config_t *lc, struct config_report *rep)
{
    struct broker_config *b = &cfg->broker;
    int line = config_line_of(config_lookup(lc, "broker"));
    if (b->url != NULL && b->urls.n > 0) {
        config_report_add(rep, config_line_of(config_lookup(lc, "broker.urls")),
                          "broker: set url or urls, not both");
        return;
    }
    if (b->url == NULL && b->urls.n == 0) {
        /* A url that is there but did not expand (or had the wrong type) was
         * reported already. */
        config_setting_t *urls = config_lookup(lc, "broker.urls");
        if (config_lookup(lc, "broker.url") || (urls && config_setting_length(urls) > 0))
            return;
        config_report_add(
            rep, line,
            "broker: missing url (e.g. url = \"amqp://guest:guest@127.0.0.1:5672/%%2f\";)");
        return;
    }
    if (b->url != NULL) {
        b->urls.v = xcalloc(1, sizeof(char *));
        b->urls.v[0] = xstrdup(b->url);
        b->urls.n = 1;
    }
    int url_line = config_line_of(config_lookup(lc, b->url ? "broker.url" : "broker.urls"));
    for (size_t i = 0; i < b->urls.n; i++) {
        struct broker_url u;
        char err[512];
        if (broker_url_parse(b->urls.v[i], &u, err, sizeof(err)) != 0) {
            config_report_add(rep, url_line, "broker: %s", err);
            continue;
        }
        if (!u.tls && (b->tls.ca || b->tls.cert || b->tls.key.path))
            config_report_add(rep, url_line,
                              "broker: tls keys are set but \"%s\" is not amqps://; use amqps:// "
                              "or remove broker.tls",
                              b->urls.v[i]);
        broker_url_free(&u);
    }
    if ((b->tls.cert == NULL) != (b->tls.key.path == NULL))
        config_report_add(rep, line, "broker.tls: cert and key go together; set both or neither");
}

static void check_admin(struct sidecar_config *cfg, config_t *lc, struct config_report *rep)
{
    struct admin_config *a = &cfg->admin;
    a->line = config_line_of(config_lookup(lc, "admin"));
    if (listen_tls_configured(&a->tls) && a->listen == NULL)
        config_report_add(rep, a->tls.line,
                          "admin: tls is set but there is no admin listen address; add listen "
                          "or remove admin.tls");
    listen_tls_validate(&a->tls, "admin", rep);
}

static const struct route *route_named(const struct sidecar_config *cfg, size_t before,
                                       const char *name)
{
    for (size_t i = 0; i < before; i++)
        if (strcmp(cfg->routes[i]->name, name) == 0)
            return cfg->routes[i];
    return NULL;
}

/* Where a listener's tls is written: its group, else its owner. */
static int tls_line(const struct listen_tls_config *t, int owner_line)
{
    return t && t->line > 0 ? t->line : owner_line;
}

static const struct listen_tls_config no_tls;

/* Every route on one address shares its TLS (one server, one handshake): the
 * first of the routes before r on r's address whose tls differs, or NULL. */
static const struct route *tls_rival(const struct sidecar_config *cfg, size_t i,
                                     const struct http_endpoint *e)
{
    for (size_t j = 0; j < i; j++) {
        const struct route *o = cfg->routes[j];
        struct http_endpoint f = {0};
        if (!o->kind->endpoint || !o->kind->endpoint(o, &f) || !f.listen)
            continue;
        if (strcmp(e->listen, f.listen) == 0 &&
            !listen_tls_same(e->tls ? e->tls : &no_tls, f.tls ? f.tls : &no_tls))
            return o;
    }
    return NULL;
}

/* Two routes on one listener and path, a route hiding the admin endpoints, or
 * two parties on one address whose tls differs. */
static void check_endpoints(struct sidecar_config *cfg, struct config_report *rep)
{
    bool admin_told = false;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route *r = cfg->routes[i];
        struct http_endpoint e = {0};
        if (!r->kind->endpoint || !r->kind->endpoint(r, &e) || !e.listen || !e.path)
            continue;
        for (size_t j = 0; j < i; j++) {
            struct route *o = cfg->routes[j];
            struct http_endpoint f = {0};
            if (!o->kind->endpoint || !o->kind->endpoint(o, &f) || !f.listen || !f.path)
                continue;
            if (strcmp(e.listen, f.listen) == 0 && strcmp(e.path, f.path) == 0)
                config_report_add(rep, r->line,
                                  "route \"%s\": %s%s is already served by route \"%s\" (line "
                                  "%d); give one of them another path or listen address",
                                  r->name, e.listen, e.path, o->name, o->line);
        }
        const struct route *rival = tls_rival(cfg, i, &e);
        if (rival != NULL)
            config_report_add(rep, tls_line(e.tls, r->line),
                              "route \"%s\": %s is also route \"%s\"'s (line %d) with another "
                              "tls; routes on one address share its TLS: give them the same "
                              "tls = { … } (the same files), or none, or another listen address",
                              r->name, e.listen, rival->name, rival->line);
        if (cfg->admin.listen && strcmp(cfg->admin.listen, e.listen) == 0 &&
            (strcmp(e.path, "/healthz") == 0 || strcmp(e.path, "/readyz") == 0 ||
             strcmp(e.path, "/metrics") == 0 || strcmp(e.path, "/") == 0 ||
             strcmp(e.path, "/status.json") == 0))
            config_report_add(rep, r->line,
                              "route \"%s\": %s is the admin endpoint's path on %s; choose another",
                              r->name, e.path, e.listen);
        if (cfg->admin.listen && strcmp(cfg->admin.listen, e.listen) == 0 && !admin_told &&
            !listen_tls_same(&cfg->admin.tls, e.tls ? e.tls : &no_tls)) {
            admin_told = true;
            config_report_add(rep, tls_line(&cfg->admin.tls, cfg->admin.line),
                              "admin: listen %s is also route \"%s\"'s (line %d) with another "
                              "tls; they share one listener: give admin the route's tls = { … }, "
                              "or another listen address",
                              e.listen, r->name, r->line);
        }
    }
}

/* rate = { … }: one of per_second and per_minute (their ranges were checked
 * as they were read); derives the rate and the default burst. */
static void check_rate(struct route *r, struct config_report *rep)
{
    struct rate_config *rc = &r->rate;
    const char *dir = route_direction_name(r->direction);
    if (rc->per_second > 0 && rc->per_minute > 0) {
        config_report_add(rep, rc->line,
                          "%s route \"%s\": rate sets both per_second and per_minute; keep one "
                          "(per_minute = %g is per_second = %g)",
                          dir, r->name, rc->per_minute, rc->per_minute / 60.0);
        return;
    }
    if (rc->per_second <= 0 && rc->per_minute <= 0) {
        /* A per_second out of range was reported where it was read. */
        if (rc->line > 0 && !rc->written)
            config_report_add(rep, rc->line,
                              "%s route \"%s\": rate has no per_second or per_minute; add one, "
                              "e.g. rate = { per_second = 10.0; }; (or remove rate to call the "
                              "legacy side unpaced)",
                              dir, r->name);
        return;
    }
    rc->rate = rc->per_second > 0 ? rc->per_second : rc->per_minute / 60.0;
    if (rc->burst == 0)
        rc->burst = rc->rate < 1 ? 1 : (int)ceil(rc->rate);
}

static void check_routes(struct sidecar_config *cfg, struct config_report *rep)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route *r = cfg->routes[i];
        if (strcmp(r->name, "publisher") == 0)
            config_report_add(rep, r->line,
                              "route name \"publisher\" is reserved (it names the inbound "
                              "publisher's connection in logs and metrics); choose another");
        const struct route *twin = route_named(cfg, i, r->name);
        if (twin != NULL)
            config_report_add(rep, r->line,
                              "route name \"%s\" is used twice (first at line %d); route names "
                              "must be unique",
                              r->name, twin->line);
        /* Names that become AMQP short strings (at most 255 bytes) on every message. */
        const char *longest = r->cursor_queue ? r->cursor_queue : r->dlq;
        if (longest && r->app_id && (strlen(longest) > 255 || strlen(r->app_id) > 255))
            config_report_add(rep, r->line,
                              "route \"%s\": name and route name make AMQP names over 255 bytes "
                              "(\"%s\"); shorten them",
                              r->name, strlen(longest) > 255 ? longest : r->app_id);
        if (r->direction == ROUTE_INBOUND && r->exchange && strlen(r->exchange) > 255)
            config_report_add(rep, r->line,
                              "inbound route \"%s\": exchange name is %zu bytes; AMQP allows 255",
                              r->name, strlen(r->exchange));
        if (r->direction == ROUTE_INBOUND && r->routing_key && strlen(r->routing_key) > 255 &&
            strchr(r->routing_key, '{') == NULL)
            config_report_add(rep, r->line,
                              "inbound route \"%s\": routing_key is %zu bytes; AMQP allows 255",
                              r->name, strlen(r->routing_key));
        if (r->direction != ROUTE_OUTBOUND)
            continue;
        if (strncmp(r->queue, "amq.", 4) == 0 || strlen(r->queue) > 200)
            config_report_add(rep, r->line,
                              "outbound route \"%s\": queue \"%s\" is not allowed (names starting "
                              "\"amq.\" are reserved; at most 200 bytes)",
                              r->name, r->queue);
        for (size_t j = 0; j < i; j++) {
            const struct route *o = cfg->routes[j];
            if (strcmp(o->dlq_key, r->dlq_key) == 0)
                config_report_add(rep, r->line,
                                  "outbound route \"%s\": queue \"%s\" collides with the dead "
                                  "letters of route \"%s\" (line %d); choose another queue",
                                  r->name, r->queue, o->name, o->line);
        }
        if (r->retry_delays.n > 20)
            config_report_add(rep, r->line,
                              "outbound route \"%s\": retry.delays has %zu steps; at most 20",
                              r->name, r->retry_delays.n);
    }
    check_endpoints(cfg, rep);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route *r = cfg->routes[i];
        if (r->kind->paced)
            check_rate(r, rep);
        if (r->kind->validate)
            r->kind->validate(r, cfg, rep);
        if (r->transform_file != NULL && access(r->transform_file, R_OK) == 0) {
            char err[1024];
            r->transform = transform_load(r->transform_file, err, sizeof(err));
            if (r->transform == NULL)
                config_report_add(rep, r->line, "route \"%s\": transform does not compile: %s",
                                  r->name, err);
        }
    }
}

/* ---- load ------------------------------------------------------------------ */

static char *dir_of(const char *path)
{
    char *copy = xstrdup(path);
    char *slash = strrchr(copy, '/');
    if (slash == NULL) {
        free(copy);
        return xstrdup(".");
    }
    if (slash == copy)
        slash[1] = '\0';
    else
        *slash = '\0';
    return copy;
}

int config_load(const char *path, struct sidecar_config *cfg, struct config_report *rep)
{
    *cfg = (struct sidecar_config){0};
    cfg->path = xstrdup(path);
    cfg->dir = dir_of(path);
    rep->file = cfg->path;

    config_t lc;
    config_init(&lc);
    config_set_include_dir(&lc, cfg->dir);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            config_report_add(rep, 0, "cannot read config file: %s", strerror(errno));
        else if (strcmp(config_error_text(&lc), "syntax error") == 0) {
            char hint[256];
            config_syntax_hint(path, hint, sizeof(hint));
            config_report_add(rep, config_error_line(&lc), "syntax error: %s", hint);
        } else
            config_report_add(rep, config_error_line(&lc), "syntax error: %s%s",
                              config_error_text(&lc),
                              strstr(config_error_text(&lc), "mismatched element type")
                                  ? " (write every number in an array the same way, e.g. "
                                    "[0.5, 1.0, 3.0] rather than [0.5, 1, 3])"
                                  : "");
        config_destroy(&lc);
        return -1;
    }

    struct key_table process = {config_process_keys, cfg};
    config_apply_tables(&process, 1, config_root_setting(&lc), "config", cfg, rep);
    config_setting_t *broker = config_lookup(&lc, "broker");
    if (broker != NULL && config_setting_type(broker) == CONFIG_TYPE_GROUP)
        check_broker(cfg, &lc, rep);
    check_admin(cfg, &lc, rep);
    config_setting_t *otel = config_lookup(&lc, "otel");
    if (otel != NULL && config_setting_type(otel) == CONFIG_TYPE_GROUP &&
        cfg->otel.endpoint == NULL)
        config_report_add(rep, config_setting_source_line(otel),
                          "otel has no endpoint: set endpoint = \"http://HOST:4318\" (the "
                          "collector's OTLP/HTTP address) or remove the otel group");
    if (cfg->state_dir == NULL) {
        const char *env = getenv("STATE_DIRECTORY"); /* systemd's StateDirectory= */
        cfg->state_dir =
            env ? xstrdup(env) : xasprintf("/var/lib/amqp-sidecar/%s", cfg->name ? cfg->name : "");
    }

    spool_validate(&cfg->spool, NULL, false, rep);
    routes_parse(&lc, "inbound", ROUTE_INBOUND, cfg, rep);
    routes_parse(&lc, "outbound", ROUTE_OUTBOUND, cfg, rep);
    if (cfg->n_routes == 0 && rep->n == 0)
        config_report_add(rep, 0,
                          "no routes: add an inbound = ( … ) or outbound = ( … ) list "
                          "(see /usr/share/doc/amqp-sidecar/examples/)");
    check_routes(cfg, rep);

    config_destroy(&lc);
    return rep->n == 0 ? 0 : -1;
}

void config_free(struct sidecar_config *cfg)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        config_route_free(cfg->routes[i]);
    free(cfg->routes);
    config_free_keys(config_process_keys, cfg);
    free(cfg->path);
    free(cfg->dir);
    *cfg = (struct sidecar_config){0};
}
