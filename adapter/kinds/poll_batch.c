/*
 * poll_batch — see poll_batch.h. Each item moves WAITING → SUBMITTED →
 * STORED or FAILED (or is SKIPPED: the last poll stored it). Items are sent
 * in order and the batch stops sending at the first failure, so the stored
 * items always form a prefix followed by what was never sent or came back
 * failed; only that prefix may move the cursor. An item is hashed (id and
 * body, before the transform) to recognise it in the next poll's response.
 */
#include "poll_batch.h"

#include "inbound.h"
#include "jq_transform.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "poll_jq.h"
#include "publisher.h"
#include "route.h"
#include "util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBMIT_WINDOW 512 /* items of one poll awaiting confirms at once */
#define HASH_LEN      16

enum item_state { ITEM_WAITING, ITEM_SUBMITTED, ITEM_STORED, ITEM_SKIPPED, ITEM_FAILED };

/* One item of a poll. All fields but `status`/`detail` belong to the poll
 * thread; those two are written by the publisher's thread before it posts the
 * item back. */
struct poll_item {
    struct poll_batch *batch;
    size_t index;
    char *body; /* compact JSON (transformed unless parked) */
    size_t body_len;
    char *id;          /* message_id */
    char *routing_key; /* NULL when parked */
    char *cursor;      /* per-item cursor after this item; NULL if none */
    char *problem;     /* why it is parked in the DLQ instead; NULL if fine */
    unsigned char hash[HASH_LEN];
    enum item_state state;
    enum publish_status status;
    char *detail;
};

/* The items of one response, published in order within a window. */
struct poll_batch {
    struct poll_batch_config c;
    struct poll_item *items;
    size_t n;
    size_t next;      /* first item not yet submitted */
    size_t in_flight; /* submitted, not yet back */
    bool stopped;     /* a refusal or failure: submit no more */
    char *failure;    /* the first failure */
    char *response_cursor;
    size_t published;
};

/* ---- recognising items again ----------------------------------------------------- */

/* The first HASH_LEN bytes of SHA-256(id NUL body): what poll_seen compares. */
static void item_hash(const char *id, const char *body, size_t len, unsigned char out[HASH_LEN])
{
    unsigned char md[SHA256_BYTES];
    struct byte_span parts[] = {{id ? id : "", id ? strlen(id) + 1 : 1}, {body, len}};
    sha256_parts(parts, 2, md);
    memcpy(out, md, HASH_LEN);
}

static int hash_cmp(const void *a, const void *b)
{
    return memcmp(a, b, HASH_LEN);
}

static bool seen_contains(const struct poll_seen *s, const unsigned char hash[HASH_LEN])
{
    return s->n && bsearch(hash, s->hashes, s->n, HASH_LEN, hash_cmp) != NULL;
}

static bool item_stored(const struct poll_item *it)
{
    return it->state == ITEM_STORED || it->state == ITEM_SKIPPED;
}

/* How many items, from the first, are stored. */
static size_t stored_prefix(const struct poll_batch *b)
{
    size_t done = 0;
    while (done < b->n && item_stored(&b->items[done]))
        done++;
    return done;
}

/* ---- building the items ------------------------------------------------------------- */

struct key_ctx {
    const char *id;
    json_t *json;
    char value[512];
};

static const char *key_lookup(void *arg, const char *name, char *why, size_t whylen)
{
    struct key_ctx *k = arg;
    if (strcmp(name, "id") == 0)
        return k->id;
    return inbound_json_placeholder(k->json, name, "the item is not a JSON object", k->value,
                                    sizeof(k->value), why, whylen);
}

static void item_park(struct poll_item *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void item_park(struct poll_item *it, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    free(it->problem);
    it->problem = xstrdup(why);
}

/* Fills one item from its jv (consumed): id, cursor, body, routing key. */
static void item_build(const struct poll_batch_config *c, struct poll_item *it, jv item)
{
    struct route *r = c->route;
    char err[512];
    jv dumped = jv_dump_string(jv_copy(item), 0);
    it->body = xstrndup(jv_string_value(dumped), (size_t)jv_string_length_bytes(jv_copy(dumped)));
    it->body_len = strlen(it->body);
    jv_free(dumped);

    it->id = poll_jq_scalar(c->id, jv_copy(item), err, sizeof(err));
    if (it->id == NULL && err[0])
        item_park(it, "id expression %s failed for item %zu: %s", c->id_expr, it->index + 1, err);
    else if (it->id == NULL)
        item_park(it, "id expression %s gave null or nothing for item %zu", c->id_expr,
                  it->index + 1);
    else if (!inbound_id_acceptable(it->id))
        item_park(it,
                  "id expression %s gave an id that cannot be a message_id (1 to 255 "
                  "printable characters) for item %zu",
                  c->id_expr, it->index + 1);
    if (c->cursor && c->cursor_per_item) {
        it->cursor = poll_jq_scalar(c->cursor, jv_copy(item), err, sizeof(err));
        if (it->cursor == NULL && err[0])
            item_park(it, "cursor expression %s failed for item %zu: %s", c->cursor_expr,
                      it->index + 1, err);
    }
    jv_free(item);
    item_hash(it->id, it->body, it->body_len, it->hash);
    if (it->problem)
        return;

    if (r->transform) {
        size_t len;
        char *out = transform_apply(r->transform, it->body, it->body_len, &len, err, sizeof(err));
        if (out == NULL) {
            item_park(it, "transform failed: %s", err);
            return;
        }
        free(it->body);
        it->body = out;
        it->body_len = len;
    }
    struct key_ctx k = {.id = it->id};
    if (strstr(r->routing_key, "{json.")) {
        json_t *root = json_loadb(it->body, it->body_len, JSON_DECODE_ANY, NULL);
        k.json = json_is_object(root) ? root : NULL;
        if (k.json == NULL)
            json_decref(root);
    }
    it->routing_key = inbound_routing_key(r, key_lookup, &k, err, sizeof(err));
    json_decref(k.json);
    if (it->routing_key == NULL)
        item_park(it, "cannot build the routing key: %s", err);
}

struct poll_batch *poll_batch_new(const struct poll_batch_config *c, jv response,
                                  const struct poll_seen *seen, char *err, size_t errlen)
{
    char why[512] = "";
    jv items = jv_array();
    if (poll_jq_run(c->items, jv_copy(response), &items, SIZE_MAX, why, sizeof(why)) != 0) {
        jv_free(items);
        jv_free(response);
        snprintf(err, errlen, "items expression %s failed: %s", c->items_expr, why);
        return NULL;
    }
    char *response_cursor = NULL;
    if (c->cursor && !c->cursor_per_item) {
        response_cursor = poll_jq_scalar(c->cursor, jv_copy(response), why, sizeof(why));
        if (response_cursor == NULL && why[0]) {
            jv_free(items);
            jv_free(response);
            snprintf(err, errlen, "cursor expression %s failed: %s", c->cursor_expr, why);
            return NULL;
        }
    }
    jv_free(response);

    struct poll_batch *b = xcalloc(1, sizeof(*b));
    b->c = *c;
    b->n = (size_t)jv_array_length(jv_copy(items));
    b->items = xcalloc(b->n ? b->n : 1, sizeof(*b->items));
    b->response_cursor = response_cursor;
    for (size_t i = 0; i < b->n; i++) {
        struct poll_item *it = &b->items[i];
        it->batch = b;
        it->index = i;
        item_build(c, it, jv_array_get(jv_copy(items), (int)i));
        if (seen_contains(seen, it->hash))
            it->state = ITEM_SKIPPED;
    }
    jv_free(items);
    return b;
}

void poll_batch_free(struct poll_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct poll_item *it = &b->items[i];
        free(it->body);
        free(it->id);
        free(it->routing_key);
        free(it->cursor);
        free(it->problem);
        free(it->detail);
    }
    free(b->items);
    free(b->failure);
    free(b->response_cursor);
    free(b);
}

size_t poll_batch_size(const struct poll_batch *b)
{
    return b->n;
}

/* ---- publishing within the window ------------------------------------------------- */

static void submit_more(struct poll_batch *b);

/* Publisher's thread → poll thread: one item's result. */
static void item_settled_on_thread(void *arg)
{
    struct poll_item *it = arg;
    struct poll_batch *b = it->batch;
    atomic_long *outstanding = b->c.outstanding; /* b may be gone below */
    b->in_flight--;
    if (it->status == PUBLISH_OK || it->status == PUBLISH_UNROUTABLE) {
        it->state = ITEM_STORED;
        b->published++;
    } else {
        it->state = ITEM_FAILED;
        b->stopped = true;
        if (b->failure == NULL)
            b->failure = xasprintf("publishing item %zu (id %s) failed: %s", it->index + 1,
                                   it->id ? it->id : "-",
                                   it->detail ? it->detail : publish_status_name(it->status));
    }
    submit_more(b);
    if (b->in_flight == 0 && (b->stopped || b->next == b->n))
        b->c.finished(b->c.arg, b);
    atomic_fetch_sub(outstanding, 1); /* after the cursor is stored: see poll_in_busy */
}

/* Publisher's thread: keep it short, hand it back. */
static void item_published(void *arg, struct publish_result *res)
{
    struct poll_item *it = arg;
    it->status = res->status;
    it->detail = res->detail ? xstrdup(res->detail) : NULL;
    if (loop_post(it->batch->c.loop, item_settled_on_thread, it) != 0) {
        log_error(it->batch->c.route->name, "out of memory handing back a confirm");
        abort();
    }
}

/* The message for it (caller owns it): parked ones go to the route's DLQ. */
static struct message *item_message(struct route *r, struct poll_item *it)
{
    char hex[2 * HASH_LEN + 8];
    const char *id = it->id;
    if (it->problem && (id == NULL || !inbound_id_acceptable(id))) {
        sha256_id(it->hash, HASH_LEN, hex);
        id = hex;
    }
    struct inbound_ids ids = {.message_id = id};
    struct message *m = inbound_message(r, xstrndup(it->body, it->body_len), it->body_len,
                                        "application/json", &ids);
    if (it->problem) {
        /* Parked where unroutable input goes: the route's DLQ, with the reason. */
        message_set(&m->exchange, r->dlx);
        message_set(&m->routing_key, r->dlq_key);
        message_set_header(m, "x-sidecar-error", it->problem);
    } else {
        message_set(&m->routing_key, it->routing_key);
    }
    return m;
}

static void submit_more(struct poll_batch *b)
{
    struct route *r = b->c.route;
    while (!b->stopped && b->next < b->n && b->in_flight < SUBMIT_WINDOW) {
        struct poll_item *it = &b->items[b->next];
        /* Counted before looking at draining, which drain sets before it reads the
         * count: a reload that reads 0 stops the route, and no publish starts after. */
        atomic_fetch_add(b->c.outstanding, 1);
        if (atomic_load(b->c.draining)) {
            atomic_fetch_sub(b->c.outstanding, 1);
            b->stopped = true;
            if (b->failure == NULL)
                b->failure = xstrdup("shutting down");
            break;
        }
        b->next++;
        if (it->state == ITEM_SKIPPED) {
            atomic_fetch_sub(b->c.outstanding, 1);
            continue;
        }
        metric_inc(r->metrics.received);
        if (it->problem)
            log_event(LOG_WARN, &(struct log_ctx){.route = r->name, .message_id = it->id},
                      "parking item %zu in %s: %s", it->index + 1, r->dlq, it->problem);
        const char *why = NULL;
        it->state = ITEM_SUBMITTED;
        b->in_flight++;
        if (inbound_publish(r, item_message(r, it), false, 0, item_published, it, &why) != 0) {
            it->state = ITEM_FAILED;
            b->in_flight--;
            atomic_fetch_sub(b->c.outstanding, 1);
            b->stopped = true;
            if (b->failure == NULL)
                b->failure = xasprintf("the broker did not take item %zu: %s", it->index + 1,
                                       why ? why : "unavailable");
        }
    }
}

void poll_batch_start(struct poll_batch *b)
{
    submit_more(b);
    if (b->in_flight == 0)
        b->c.finished(b->c.arg, b);
}

/* ---- what a finished batch achieved ------------------------------------------------- */

void poll_batch_outcome(const struct poll_batch *b, struct poll_batch_outcome *out)
{
    size_t done = stored_prefix(b);
    const char *next = NULL;
    if (b->c.cursor_per_item) {
        for (size_t i = 0; i < done; i++)
            if (b->items[i].cursor)
                next = b->items[i].cursor;
    } else if (done == b->n) {
        next = b->response_cursor;
    }
    *out = (struct poll_batch_outcome){.complete = done == b->n,
                                       .cursor = next,
                                       .published = b->published,
                                       .n = b->n,
                                       .failure = b->failure};
}

void poll_seen_update(struct poll_seen *seen, const struct poll_batch *b)
{
    size_t n_stored = 0;
    for (size_t i = 0; i < b->n; i++)
        n_stored += item_stored(&b->items[i]);
    if (stored_prefix(b) < b->n && n_stored == 0)
        return;
    free(seen->hashes);
    seen->hashes = xmalloc(n_stored ? n_stored * HASH_LEN : 1);
    seen->n = 0;
    for (size_t i = 0; i < b->n; i++)
        if (item_stored(&b->items[i]))
            memcpy(seen->hashes + HASH_LEN * seen->n++, b->items[i].hash, HASH_LEN);
    qsort(seen->hashes, seen->n, HASH_LEN, hash_cmp);
}

void poll_seen_free(struct poll_seen *seen)
{
    free(seen->hashes);
    *seen = (struct poll_seen){0};
}
