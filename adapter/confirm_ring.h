/*
 * confirm_ring — what waits for a publisher confirm on one channel, by
 * delivery tag.
 *
 * In confirm mode the broker numbers publishes 1, 2, 3… per channel and
 * confirms them by tag, possibly several at once (`multiple`), mostly but
 * not always in order. Entries live in a power-of-two ring indexed by tag:
 * O(1) to add, find and remove. The span from the oldest waiting tag to the
 * next one never exceeds the ring: a slot still waiting is never reused
 * (confirm_ring_take refuses instead), so callers check
 * confirm_ring_has_room *before* they write a publish to the socket.
 *
 * The ring does not own items; it only remembers them. One thread (the
 * broker's) uses it.
 */
#ifndef SIDECAR_CONFIRM_RING_H
#define SIDECAR_CONFIRM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ring_entry {
    uint64_t tag; /* 0: free */
    int kind;     /* the caller's */
    bool returned;
    int64_t sent_ms;
    void *item;
};

struct confirm_ring {
    struct ring_entry *slots;
    size_t size; /* power of two */
    uint64_t next_tag, low_tag;
    size_t waiting;
};

/* A ring of at least min_size slots, tags starting at 1. */
void confirm_ring_init(struct confirm_ring *r, size_t min_size);
void confirm_ring_free(struct confirm_ring *r);
/* Forget everything (the caller has settled the entries): a new channel numbers from 1. */
void confirm_ring_reset(struct confirm_ring *r);

/* Can the next publish get a slot? */
bool confirm_ring_has_room(const struct confirm_ring *r);
/* Tags from the oldest waiting to the next: what the ring must hold. */
size_t confirm_ring_span(const struct confirm_ring *r);

/* Records the next tag for item; returns the tag, or 0 when its slot is still
 * waiting (nothing changes then). */
uint64_t confirm_ring_take(struct confirm_ring *r, int kind, void *item, int64_t now_ms);
/* The entry waiting for tag, or NULL. */
struct ring_entry *confirm_ring_get(struct confirm_ring *r, uint64_t tag);
/* Removes the entry waiting for tag into *out; false when none waits. */
bool confirm_ring_remove(struct confirm_ring *r, uint64_t tag, struct ring_entry *out);
/* The oldest waiting entry, or NULL. */
struct ring_entry *confirm_ring_oldest(struct confirm_ring *r);

#endif
