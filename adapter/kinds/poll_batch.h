/*
 * poll_batch — the items of one poll response, from jq's output to stored.
 *
 * poll_in.c decides when to GET and keeps the cursor; a batch takes the items
 * the items expression gives over one response, builds each (body, id, per-item cursor, transform,
 * routing key — or parks it for the route's DLQ with the reason) and skips
 * those the last poll already stored. It publishes them in order, at most
 * SUBMIT_WINDOW awaiting confirms, and stops at the first refusal or failure.
 * When every item is back, `finished` runs and the outcome says how far the
 * cursor may advance: past the items stored in an unbroken prefix, no further.
 *
 * Threads: all of it runs on the poll thread; a publish result is written by
 * the publisher's thread and handed back with loop_post.
 */
#ifndef SIDECAR_POLL_BATCH_H
#define SIDECAR_POLL_BATCH_H

#include <jv.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct loop;
struct poll_batch;
struct poll_jq;
struct route;

/* What a batch works with; everything is borrowed from the poll route and
 * outlives the batch. */
struct poll_batch_config {
    struct route *route;
    struct loop *loop;      /* the poll thread's: results come back here */
    struct poll_jq *items;  /* over the response: the items */
    struct poll_jq *id;     /* per item: the message_id */
    struct poll_jq *cursor; /* per item or over the response (cursor_per_item), or NULL */
    const char *items_expr; /* the expressions' text, for errors and park reasons */
    const char *id_expr;
    const char *cursor_expr;
    bool cursor_per_item;        /* cursor_from = "item"; else "response" */
    const atomic_bool *draining; /* once set, nothing more is submitted */
    atomic_long *outstanding;    /* +1 a submit, -1 once its result was handled */
    /* Poll thread, once every submitted item is back; takes b (poll_batch_free). */
    void (*finished)(void *arg, struct poll_batch *b);
    void *arg;
};

/* The hashes of the items the last finished batch stored, sorted: the next
 * poll does not publish them again. Owned by the poll route. */
struct poll_seen {
    unsigned char *hashes;
    size_t n;
};

/* The batch of what c->items gives over response (consumed), with the
 * response's cursor unless cursor_per_item; items in seen are skipped.
 * Caller owns the batch. NULL with err when an expression over the whole
 * response failed (nothing of it can be published). */
struct poll_batch *poll_batch_new(const struct poll_batch_config *c, jv response,
                                  const struct poll_seen *seen, char *err, size_t errlen);
void poll_batch_free(struct poll_batch *b);

size_t poll_batch_size(const struct poll_batch *b);

/* Submits what the window allows; finished runs once nothing is in flight and
 * nothing more will be sent — possibly before this returns. */
void poll_batch_start(struct poll_batch *b);

/* What a finished batch achieved; the strings belong to the batch. */
struct poll_batch_outcome {
    bool complete;       /* every item stored (confirmed, parked or skipped) */
    const char *cursor;  /* how far the cursor may advance; NULL: it stays */
    size_t published;    /* items confirmed by the broker */
    size_t n;            /* items in the batch */
    const char *failure; /* the first failure, or NULL */
};
void poll_batch_outcome(const struct poll_batch *b, struct poll_batch_outcome *out);

/* After a finished batch: what it stored replaces seen (kept when it stored
 * nothing and was not complete). */
void poll_seen_update(struct poll_seen *seen, const struct poll_batch *b);
void poll_seen_free(struct poll_seen *seen);

#endif
