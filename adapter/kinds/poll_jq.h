/*
 * poll_jq — the poll route's jq expressions (items, id, cursor), run with
 * libjq directly because they may give any number of results (jq_transform.h
 * is for transforms, which give exactly one). A compiled expression belongs
 * to the thread that compiled it: jq_state and jv are not thread-safe.
 * Ownership follows jv's rule: functions taking a jv consume it.
 */
#ifndef SIDECAR_POLL_JQ_H
#define SIDECAR_POLL_JQ_H

#include <jv.h>
#include <stddef.h>

struct poll_jq;

/* NULL with err (jq's message) when program does not compile. */
struct poll_jq *poll_jq_compile(const char *program, char *err, size_t errlen);
void poll_jq_free(struct poll_jq *q);

/* Runs q over input (consumed), appending each result to *results (a jv array,
 * consumed and replaced). 0, or -1 with err (jq's error, or more than
 * max_results results). */
int poll_jq_run(struct poll_jq *q, jv input, jv *results, size_t max_results, char *err,
                size_t errlen);

/* The first result of q over input (consumed) as text: strings as they are,
 * numbers and booleans as JSON (caller frees). NULL with err empty when q gave
 * nothing or null; NULL with err on a jq error or an array/object result. */
char *poll_jq_scalar(struct poll_jq *q, jv input, char *err, size_t errlen);

#endif
