/*
 * lease — of several sidecars run with one config, exactly one runs a route
 * that must not run twice (poll and file inbound with `lease = true`): the
 * one whose broker connection holds the route's lease.
 *
 * The lease is an exclusive queue, `<name>.<route>.lease`, declared on the
 * publisher's connection: the broker lets one connection at a time declare
 * it (the others get 405 RESOURCE_LOCKED) and deletes it the moment that
 * connection ends — at once when the holder's process dies (its socket
 * closes), within about two heartbeats when its host or network does. A
 * sidecar without the lease tries again every LEASE_RETRY_MS, so a takeover
 * takes at most that long after the broker noticed. Holding it is a fact the
 * broker states (declare-ok), not a guess from deliveries; the lease cannot
 * outlive the connection that carries the route's publishes, so a holder
 * that lost it cannot confirm anything more in its name.
 *
 * On taking a lease, a route with a cursor queue (`<name>.<route>.cursor`,
 * topology.h) is handed the cursor stored there: read with basic.get and
 * given back at once (basic.reject, requeue), so it stays for the next
 * holder.
 *
 * One lease set is a broker client (broker_client.h) on its own channel,
 * LEASE_CHANNEL, one question outstanding at a time, driven by the broker's
 * tick; the kind hears lease_gained / lease_lost (route.h) on the broker's
 * thread. The role is readable from any thread, for /readyz and /status.json.
 */
#ifndef SIDECAR_LEASE_H
#define SIDECAR_LEASE_H

#include <stdint.h>

#define LEASE_CHANNEL    3
#define LEASE_RETRY_MS   1000  /* a sidecar without a lease asks again this often */
#define LEASE_CURSOR_MAX 65536 /* bytes of a stored cursor; a larger one is ignored */

struct broker_client;
struct lease;
struct lease_set;
struct route;

enum lease_role {
    LEASE_WAITING, /* not connected to the broker yet, or again */
    LEASE_STANDBY, /* another sidecar holds it: this one waits */
    LEASE_HOLDER,  /* this sidecar runs the route */
};

/* label names the connection in logs. */
struct lease_set *lease_set_new(const char *label);
/* Before the broker starts: r (r->lease set; it outlives the set) runs under
 * its lease; sets r->lease_handle. */
void lease_set_add(struct lease_set *s, struct route *r);
const struct broker_client *lease_set_client(struct lease_set *s);
void lease_set_free(struct lease_set *s); /* after the broker stopped */

/* Any thread. */
enum lease_role lease_role(const struct lease *l);
const char *lease_role_name(enum lease_role role); /* "holder", "standby", "waiting" */
/* loop_now_ms() of the last change of role (0: none yet). */
int64_t lease_since_ms(const struct lease *l);
/* Times this sidecar took the lease. */
uint64_t lease_gained_count(const struct lease *l);

#endif
