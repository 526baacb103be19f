/*
 * otel — OpenTelemetry traces: one span per hop, exported over OTLP/HTTP with
 * the JSON encoding (POST <endpoint>/v1/traces), by libcurl on a thread of
 * the exporter's own.
 *
 * A hop begins (otel_begin: trace and parent from the incoming W3C
 * traceparent, or a new trace; sampled or not) and ends (otel_end: its name,
 * route, message_id and outcome), on whatever thread carries it. Ending only
 * copies the span into a bounded buffer under a mutex: the message path never
 * waits for the collector. The exporter sends what is buffered every
 * OTEL_EXPORT_MS (sooner when half full); spans that find the buffer full, or
 * whose export failed, are dropped and counted (otel_spans_dropped_total), so
 * a slow or absent collector costs spans, never messages.
 */
#ifndef SIDECAR_OTEL_H
#define SIDECAR_OTEL_H

#include "metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTEL_BUFFER    2048 /* spans held for export at most */
#define OTEL_BATCH     512  /* spans in one export request at most */
#define OTEL_EXPORT_MS 1000
#define OTEL_TIMEOUT_S 5 /* one export request */

struct otel_config;

/* OpenTelemetry's SpanKind values. */
enum otel_kind {
    OTEL_INTERNAL = 1,
    OTEL_SERVER = 2,
    OTEL_CLIENT = 3,
    OTEL_PRODUCER = 4,
    OTEL_CONSUMER = 5
};

/* One hop under way: plain data the caller keeps (in its request, its delivery). */
struct otel_span {
    bool sampled; /* false: otel_end records nothing */
    unsigned char trace_id[16];
    unsigned char span_id[8];
    unsigned char parent_id[8];
    bool has_parent;
    int64_t start_ns; /* wall clock, Unix ns */
};

/* Starts the exporter thread. NULL when cfg has no endpoint (traces off). */
struct otel *otel_new(const struct otel_config *cfg, const char *system_name,
                      struct otel_metrics *metrics);
/* Exports what is buffered (one last try), stops the thread, frees. */
void otel_free(struct otel *o);

/* Any thread; o may be NULL (then s is not sampled). traceparent: the
 * incoming header, or NULL. */
void otel_begin(struct otel *o, const char *traceparent, struct otel_span *s);
/* Any thread: records s (if sampled) as ended now. Strings are copied and
 * bounded; message_id may be NULL. ok: the outcome is a success. */
void otel_end(struct otel *o, const struct otel_span *s, const char *name, enum otel_kind kind,
              const char *route, const char *message_id, const char *outcome, bool ok);

/* Parses a W3C traceparent into its trace id, parent span id and sampled
 * flag; false when it is not one (then nothing is written). */
bool otel_traceparent_parse(const char *v, unsigned char trace_id[16], unsigned char parent[8],
                            bool *sampled);

/* A span as recorded, waiting for export: fixed size, strings bounded. */
struct otel_record {
    struct otel_span span;
    int64_t end_ns;
    enum otel_kind kind;
    bool ok;
    char name[64];
    char route[128];
    char message_id[256]; /* "" = none */
    char outcome[64];
};

/* The OTLP/HTTP JSON (ExportTraceServiceRequest) for n records. Caller frees. */
char *otel_encode(const char *service_name, const struct otel_record *r, size_t n);

#endif
