/*
 * otel — see otel.h. The buffer is a ring of OTEL_BUFFER records behind one
 * mutex; otel_end copies into it (or counts a drop) and signals the exporter
 * when it is half full. The exporter thread sleeps on a condition variable
 * with a timeout, takes up to OTEL_BATCH records, encodes them with jansson
 * and POSTs them with its own curl easy handle (CURLOPT_NOSIGNAL, a total
 * timeout). A failed export drops its batch: retrying would only hold newer
 * spans back behind a collector that is down.
 */
#include "otel.h"

#include "config.h"
#include "log.h"
#include "util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct otel {
    char *url; /* <endpoint>/v1/traces */
    char *service_name;
    double sample_ratio;
    struct otel_metrics *metrics;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct otel_record *ring;
    size_t head, count; /* oldest record, how many */
    bool stopping;
    pthread_t thread;
};

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool hex_decode(const char *s, size_t n, unsigned char *out)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
        nonzero = nonzero || out[i];
    }
    return nonzero; /* all-zero ids are invalid (W3C §3.2.2.3, §3.2.2.4) */
}

bool otel_traceparent_parse(const char *v, unsigned char trace_id[16], unsigned char parent[8],
                            bool *sampled)
{
    /* "vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"; version ff is
     * invalid; version 00 is exactly that long, later ones may append "-…". */
    if (v == NULL)
        return false;
    size_t len = strlen(v);
    if (len < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    int v0 = hex_value(v[0]), v1 = hex_value(v[1]);
    int f0 = hex_value(v[53]), f1 = hex_value(v[54]);
    if (v0 < 0 || v1 < 0 || f0 < 0 || f1 < 0 || (v0 == 15 && v1 == 15))
        return false;
    if (v0 == 0 && v1 == 0 ? len != 55 : len > 55 && v[55] != '-')
        return false;
    unsigned char t[16], p[8];
    if (!hex_decode(v + 3, 16, t) || !hex_decode(v + 36, 8, p))
        return false;
    memcpy(trace_id, t, 16);
    memcpy(parent, p, 8);
    *sampled = (f1 & 1) != 0;
    return true;
}

void otel_begin(struct otel *o, const char *traceparent, struct otel_span *s)
{
    memset(s, 0, sizeof(*s));
    if (o == NULL)
        return;
    bool parent_sampled = false;
    if (otel_traceparent_parse(traceparent, s->trace_id, s->parent_id, &parent_sampled)) {
        s->has_parent = true;
        s->sampled = parent_sampled; /* the caller decided for its trace */
    } else {
        id_random(s->trace_id, sizeof(s->trace_id));
        unsigned char r[4];
        id_random(r, sizeof(r));
        uint32_t draw = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
        s->sampled = (double)draw < o->sample_ratio * 4294967296.0;
    }
    id_random(s->span_id, sizeof(s->span_id));
    s->start_ns = wall_ns();
}

void otel_end(struct otel *o, const struct otel_span *s, const char *name, enum otel_kind kind,
              const char *route, const char *message_id, const char *outcome, bool ok)
{
    if (o == NULL || !s->sampled)
        return;
    struct otel_record r = {.span = *s, .end_ns = wall_ns(), .kind = kind, .ok = ok};
    snprintf(r.name, sizeof(r.name), "%s", name);
    snprintf(r.route, sizeof(r.route), "%s", route ? route : "");
    snprintf(r.message_id, sizeof(r.message_id), "%s", message_id ? message_id : "");
    snprintf(r.outcome, sizeof(r.outcome), "%s", outcome ? outcome : "");
    pthread_mutex_lock(&o->lock);
    if (o->count == OTEL_BUFFER) {
        pthread_mutex_unlock(&o->lock);
        atomic_fetch_add_explicit(&o->metrics->dropped, 1, memory_order_relaxed);
        return;
    }
    o->ring[(o->head + o->count) % OTEL_BUFFER] = r;
    o->count++;
    if (o->count == OTEL_BUFFER / 2)
        pthread_cond_signal(&o->wake);
    pthread_mutex_unlock(&o->lock);
}

/* ---- encoding (OTLP/JSON: ids in hex, times as decimal strings) ------------------ */

static json_t *hex_string(const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char out[33];
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
    return json_string(out);
}

static json_t *attribute(const char *key, const char *value)
{
    return json_pack("{s:s, s:{s:s}}", "key", key, "value", "stringValue", value);
}

static json_t *nanos(int64_t ns)
{
    char out[24];
    snprintf(out, sizeof(out), "%lld", (long long)ns);
    return json_string(out);
}

/* Strings from outside (message ids) may not be UTF-8: jansson refuses those. */
static json_t *attribute_safe(const char *key, const char *value)
{
    json_t *a = attribute(key, value);
    return a ? a : attribute(key, "(not UTF-8)");
}

char *otel_encode(const char *service_name, const struct otel_record *r, size_t n)
{
    json_t *spans = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *attrs = json_array();
        json_array_append_new(attrs, attribute_safe("amqp_sidecar.route", r[i].route));
        if (r[i].message_id[0])
            json_array_append_new(attrs, attribute_safe("messaging.message.id", r[i].message_id));
        json_array_append_new(attrs, attribute_safe("amqp_sidecar.outcome", r[i].outcome));
        json_t *span =
            json_pack("{s:o, s:o, s:s, s:i, s:o, s:o, s:o, s:{s:i}}", "traceId",
                      hex_string(r[i].span.trace_id, 16), "spanId",
                      hex_string(r[i].span.span_id, 8), "name", r[i].name, "kind", (int)r[i].kind,
                      "startTimeUnixNano", nanos(r[i].span.start_ns), "endTimeUnixNano",
                      nanos(r[i].end_ns), "attributes", attrs, "status", "code", r[i].ok ? 1 : 2);
        if (r[i].span.has_parent)
            json_object_set_new(span, "parentSpanId", hex_string(r[i].span.parent_id, 8));
        json_array_append_new(spans, span);
    }
    json_t *doc =
        json_pack("{s:[{s:{s:[o]}, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
                  "attributes", attribute_safe("service.name", service_name), "scopeSpans", "scope",
                  "name", "amqp-sidecar", "version", SIDECAR_VERSION, "spans", spans);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* ---- the exporter thread ------------------------------------------------------------ */

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* One POST; true when the collector took it (2xx). */
static bool export_batch(struct otel *o, CURL *curl, const struct otel_record *r, size_t n)
{
    char *body = otel_encode(o->service_name, r, n);
    if (body == NULL)
        return false;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, o->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)OTEL_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)OTEL_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    free(body);
    if (rc == CURLE_OK && status >= 200 && status < 300)
        return true;
    if (rc != CURLE_OK)
        log_warn("otel", "cannot export %zu span(s) to %s: %s; dropped (otel_spans_dropped_total)",
                 n, o->url, curl_easy_strerror(rc));
    else
        log_warn("otel",
                 "the collector at %s answered HTTP %ld to %zu span(s); dropped "
                 "(otel_spans_dropped_total)",
                 o->url, status, n);
    return false;
}

static void *exporter(void *arg)
{
    struct otel *o = arg;
    CURL *curl = curl_easy_init();
    struct otel_record *batch = xcalloc(OTEL_BATCH, sizeof(*batch));
    pthread_mutex_lock(&o->lock);
    for (;;) {
        if (o->count < OTEL_BUFFER / 2 && !o->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += OTEL_EXPORT_MS / 1000;
            pthread_cond_timedwait(&o->wake, &o->lock, &until);
        }
        size_t n = o->count < OTEL_BATCH ? o->count : OTEL_BATCH;
        for (size_t i = 0; i < n; i++)
            batch[i] = o->ring[(o->head + i) % OTEL_BUFFER];
        o->head = (o->head + n) % OTEL_BUFFER;
        o->count -= n;
        bool last = o->stopping && o->count == 0;
        pthread_mutex_unlock(&o->lock);
        if (n > 0) {
            if (curl && export_batch(o, curl, batch, n)) {
                atomic_fetch_add_explicit(&o->metrics->exported, n, memory_order_relaxed);
            } else {
                atomic_fetch_add_explicit(&o->metrics->dropped, n, memory_order_relaxed);
                atomic_fetch_add_explicit(&o->metrics->export_failures, 1, memory_order_relaxed);
            }
        }
        pthread_mutex_lock(&o->lock);
        if (last || (o->stopping && n == 0))
            break;
    }
    pthread_mutex_unlock(&o->lock);
    free(batch);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

struct otel *otel_new(const struct otel_config *cfg, const char *system_name,
                      struct otel_metrics *metrics)
{
    if (cfg->endpoint == NULL)
        return NULL;
    struct otel *o = xcalloc(1, sizeof(*o));
    size_t len = strlen(cfg->endpoint);
    while (len > 0 && cfg->endpoint[len - 1] == '/')
        len--;
    o->url = xasprintf("%.*s/v1/traces", (int)len, cfg->endpoint);
    o->service_name = xstrdup(cfg->service_name ? cfg->service_name : system_name);
    o->sample_ratio = cfg->sample_ratio;
    o->metrics = metrics;
    o->ring = xcalloc(OTEL_BUFFER, sizeof(*o->ring));
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->wake, NULL);
    if (pthread_create(&o->thread, NULL, exporter, o) != 0) {
        log_error("otel", "cannot start the exporter thread: traces are off");
        pthread_cond_destroy(&o->wake);
        pthread_mutex_destroy(&o->lock);
        free(o->ring);
        free(o->service_name);
        free(o->url);
        free(o);
        return NULL;
    }
    log_info("otel", "traces to %s as service %s, sample_ratio %g", o->url, o->service_name,
             o->sample_ratio);
    return o;
}

void otel_free(struct otel *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->lock);
    o->stopping = true;
    pthread_cond_signal(&o->wake);
    pthread_mutex_unlock(&o->lock);
    pthread_join(o->thread, NULL);
    pthread_cond_destroy(&o->wake);
    pthread_mutex_destroy(&o->lock);
    free(o->ring);
    free(o->service_name);
    free(o->url);
    free(o);
}
