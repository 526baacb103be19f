/*
 * ack_batch — see ack_batch.h for the contract.
 */
#include "ack_batch.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

static void tags_push(uint64_t **v, size_t *n, size_t *cap, uint64_t tag)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = tag;
}

bool ack_batch_hold(struct ack_batch *b, uint64_t generation, uint64_t tag)
{
    bool same = b->generation == generation;
    if (!same) {
        b->generation = generation;
        ack_batch_forget(b);
    }
    tags_push(&b->held, &b->n_held, &b->cap_held, tag);
    return same;
}

void ack_batch_release(struct ack_batch *b, uint64_t tag)
{
    for (size_t i = 0; i < b->n_held; i++) {
        if (b->held[i] == tag) {
            memmove(&b->held[i], &b->held[i + 1], (b->n_held - i - 1) * sizeof(*b->held));
            b->n_held--;
            return;
        }
    }
}

void ack_batch_settle(struct ack_batch *b, uint64_t tag)
{
    ack_batch_release(b, tag);
    tags_push(&b->settled, &b->n_settled, &b->cap_settled, tag);
}

void ack_batch_flush(struct ack_batch *b, ack_batch_send_fn send, void *arg)
{
    if (send != NULL) {
        uint64_t oldest_held = b->n_held ? b->held[0] : UINT64_MAX;
        uint64_t below = 0;
        for (size_t i = 0; i < b->n_settled; i++) {
            uint64_t t = b->settled[i];
            if (t < oldest_held)
                below = t > below ? t : below;
            else
                send(arg, t, false);
        }
        if (below)
            send(arg, below, true);
    }
    b->n_settled = 0;
}

void ack_batch_forget(struct ack_batch *b)
{
    b->n_held = b->n_settled = 0;
}

void ack_batch_free(struct ack_batch *b)
{
    free(b->held);
    free(b->settled);
    *b = (struct ack_batch){0};
}
