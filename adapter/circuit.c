/*
 * circuit — see circuit.h for the contract.
 *
 * The state lives on the route's thread; only the wall-clock time of the next
 * probe is atomic, for /readyz on the admin thread (0 while not open).
 */
#include "circuit.h"

#include "log.h"
#include "loop.h"
#include "util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct circuit {
    struct circuit_config cfg;
    enum circuit_state state;
    int failures; /* consecutive, since the last success */
    uint64_t timer;
    bool stopped;
    atomic_llong open_until_wall;
};

struct circuit *circuit_new(const struct circuit_config *cfg)
{
    struct circuit *cb = xcalloc(1, sizeof(*cb));
    cb->cfg = *cfg;
    return cb;
}

void circuit_free(struct circuit *cb)
{
    free(cb);
}

static void set_state(struct circuit *cb, enum circuit_state state)
{
    cb->state = state;
    if (cb->cfg.gauge)
        atomic_store(cb->cfg.gauge, (int)state);
}

static void half_open(struct loop *loop, void *arg)
{
    struct circuit *cb = arg;
    cb->timer = 0;
    if (cb->stopped)
        return;
    set_state(cb, CIRCUIT_HALF_OPEN);
    log_info(cb->cfg.route, "circuit half-open: letting one probe delivery through");
    cb->cfg.resume(cb->cfg.arg);
}

static void open_circuit(struct circuit *cb)
{
    set_state(cb, CIRCUIT_OPEN);
    double cooldown = cb->cfg.cooldown;
    log_warn(cb->cfg.route,
             "circuit open after %d consecutive failures: pausing deliveries for %.1fs "
             "(messages wait in \"%s\")",
             cb->failures, cooldown, cb->cfg.queue);
    atomic_store(&cb->open_until_wall, (long long)time(NULL) + (long long)cooldown + 1);
    cb->cfg.pause(cb->cfg.arg);
    if (!cb->stopped)
        cb->timer = loop_timer(cb->cfg.loop, (int64_t)(cooldown * 1000), half_open, cb);
}

static void close_circuit(struct circuit *cb)
{
    log_info(cb->cfg.route, "circuit closed: the legacy side answers again");
    set_state(cb, CIRCUIT_CLOSED);
    atomic_store(&cb->open_until_wall, 0);
    cb->failures = 0;
    cb->cfg.resume(cb->cfg.arg);
}

void circuit_record(struct circuit *cb, bool ok)
{
    if (cb->cfg.failures <= 0)
        return;
    if (ok) {
        cb->failures = 0;
        if (cb->state == CIRCUIT_HALF_OPEN)
            close_circuit(cb);
        return;
    }
    cb->failures++;
    if (cb->state == CIRCUIT_HALF_OPEN ||
        (cb->state == CIRCUIT_CLOSED && cb->failures >= cb->cfg.failures))
        open_circuit(cb);
}

void circuit_stop(struct circuit *cb)
{
    cb->stopped = true;
    if (cb->timer) {
        loop_timer_cancel(cb->cfg.loop, cb->timer);
        cb->timer = 0;
    }
}

bool circuit_is_open(const struct circuit *cb)
{
    return cb->state == CIRCUIT_OPEN;
}

bool circuit_probing(const struct circuit *cb)
{
    return cb->state == CIRCUIT_HALF_OPEN;
}

bool circuit_ready(const struct circuit *cb, struct buf *detail)
{
    long long until = atomic_load(&((struct circuit *)cb)->open_until_wall);
    if (until == 0)
        return true;
    if (detail) {
        long long left = until - (long long)time(NULL);
        buf_printf(detail, "circuit open: the legacy side kept failing; next probe in %llds",
                   left > 0 ? left : 0);
    }
    return false;
}
