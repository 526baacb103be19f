/*
 * confirm_ring — see confirm_ring.h.
 */
#include "confirm_ring.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

void confirm_ring_init(struct confirm_ring *r, size_t min_size)
{
    size_t size = 64;
    while (size < min_size)
        size *= 2;
    *r = (struct confirm_ring){
        .slots = xcalloc(size, sizeof(*r->slots)), .size = size, .next_tag = 1, .low_tag = 1};
}

void confirm_ring_free(struct confirm_ring *r)
{
    free(r->slots);
    *r = (struct confirm_ring){0};
}

void confirm_ring_reset(struct confirm_ring *r)
{
    memset(r->slots, 0, r->size * sizeof(*r->slots));
    r->next_tag = r->low_tag = 1;
    r->waiting = 0;
}

static struct ring_entry *slot(const struct confirm_ring *r, uint64_t tag)
{
    return &r->slots[tag & (r->size - 1)];
}

bool confirm_ring_has_room(const struct confirm_ring *r)
{
    return slot(r, r->next_tag)->tag == 0;
}

size_t confirm_ring_span(const struct confirm_ring *r)
{
    return (size_t)(r->next_tag - r->low_tag);
}

uint64_t confirm_ring_take(struct confirm_ring *r, int kind, void *item, int64_t now_ms)
{
    struct ring_entry *e = slot(r, r->next_tag);
    if (e->tag != 0)
        return 0;
    uint64_t tag = r->next_tag++;
    *e = (struct ring_entry){.tag = tag, .kind = kind, .sent_ms = now_ms, .item = item};
    r->waiting++;
    return tag;
}

struct ring_entry *confirm_ring_get(struct confirm_ring *r, uint64_t tag)
{
    if (tag < r->low_tag || tag >= r->next_tag)
        return NULL;
    struct ring_entry *e = slot(r, tag);
    return e->tag == tag ? e : NULL;
}

bool confirm_ring_remove(struct confirm_ring *r, uint64_t tag, struct ring_entry *out)
{
    struct ring_entry *e = confirm_ring_get(r, tag);
    if (e == NULL)
        return false;
    *out = *e;
    *e = (struct ring_entry){0};
    r->waiting--;
    while (r->low_tag < r->next_tag && slot(r, r->low_tag)->tag != r->low_tag)
        r->low_tag++;
    return true;
}

struct ring_entry *confirm_ring_oldest(struct confirm_ring *r)
{
    return confirm_ring_get(r, r->low_tag);
}
