/*
 * poll_cursor_broker — see poll_cursor_broker.h.
 */
#include "poll_cursor_broker.h"

#include "log.h"
#include "message.h"
#include "publisher.h"
#include "route.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct cursor_write {
    struct route *route;
    atomic_long *outstanding;
};

static void not_stored(const struct route *r, const char *why)
{
    log_warn(r->name,
             "the cursor was not stored in %s (%s): a takeover now resumes from an older one "
             "and publishes some items again (same message_id); the next batch stores it again",
             r->cursor_queue, why);
}

/* Publisher's thread. */
static void cursor_stored(void *arg, struct publish_result *res)
{
    struct cursor_write *w = arg;
    if (res->status != PUBLISH_OK)
        not_stored(w->route, res->detail ? res->detail : publish_status_name(res->status));
    atomic_fetch_sub(w->outstanding, 1);
    free(w);
}

int poll_cursor_broker_store(struct route *r, const char *value, atomic_long *outstanding)
{
    struct message *m = message_new();
    /* No exchange: the default one, which routes by queue name. */
    message_set(&m->routing_key, r->cursor_queue);
    message_set(&m->content_type, "text/plain");
    message_set(&m->message_id, r->cursor_queue);
    message_set_body(m, value, strlen(value));
    struct cursor_write *w = xcalloc(1, sizeof(*w));
    *w = (struct cursor_write){.route = r, .outstanding = outstanding};
    atomic_fetch_add(outstanding, 1);
    const char *why = NULL;
    /* No route in the options: a cursor is not an item (no counts), and one
     * that is unroutable (its queue deleted) fails instead of being parked. */
    if (publisher_submit(r->publisher, m, &(struct publish_options){0}, cursor_stored, w, &why) ==
        0)
        return 0;
    atomic_fetch_sub(outstanding, 1);
    free(w);
    not_stored(r, why ? why : "refused");
    return -1;
}
