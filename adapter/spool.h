/*
 * spool — a local journal in front of the broker for an HTTP inbound route
 * (`spool = { dir; max_bytes; }`): when the broker cannot take a request
 * (down, blocked, a confirm that timed out), the built message is written to
 * the route's journal (spool_journal.h) and the sender is answered 202
 * "spooled" once its record is on disk. A forwarder publishes what is
 * spooled, in arrival order and with confirms, as soon as the broker takes
 * publishes again, alongside new requests; a record leaves the journal only
 * after its confirm (an unroutable one is parked in the DLQ by the
 * publisher, as any publish).
 *
 * One thread per spool owns the journal: it writes queued records in groups
 * (one fdatasync for many requests, never on a listener's or the broker's
 * thread), then answers their senders; between groups it reads records and
 * submits them, at most half the publish window at once, so new requests
 * still find room. A failed forward rewinds to the oldest unconfirmed
 * record: everything after it is sent again, in order (a duplicate keeps
 * its message_id; nothing is skipped).
 *
 * Ownership: spool_append takes the record. The spool outlives spool_stop
 * until the last forward's answer (the publisher may still hold some).
 */
#ifndef SIDECAR_SPOOL_H
#define SIDECAR_SPOOL_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct config_report;
struct message;
struct route;
struct spool;

/* struct spool_config, the `spool` group, is in config.h. */
extern const struct config_key spool_keys[];
/* The process's `spool`: the default for every http and soap event route. */
extern const struct config_key spool_process_keys[];

#define SPOOL_KEY(offset)                                                                          \
    {                                                                                              \
        "spool", KEY_GROUP, offset, KEY_GROUP_LINE, NULL, NULL, 0, 0, spool_keys,                  \
            "while the broker cannot take a request (down, blocked, no confirm in time), keep it " \
            "in a local journal, answer 202 \"spooled\" once it is on disk, and forward it in "    \
            "order when the broker is back; not for rpc"                                           \
    }

/* check and run: reports a group without dir, a dir that is not a writable
 * directory, and a filesystem without room; rpc says the route is rpc. route
 * NULL: the process's spool. */
void spool_validate(const struct spool_config *c, const char *route, bool rpc,
                    struct config_report *rep);

/* A route without a spool of its own that can spool (not rpc) takes the
 * process's, if there is one: its journal in process->dir/route, made at
 * start, bounded by the same max_bytes. */
void spool_inherit(struct spool_config *c, const struct spool_config *process, const char *route,
                   bool rpc);

/* Recovers r's journal in c->dir (logging what a previous run left) and
 * starts its thread; forwards through r->publisher. NULL with err. */
/* largest: the biggest request body the route accepts (its max_body): the spool is
 * ready while one that large still fits. */
struct spool *spool_start(struct route *r, const struct spool_config *c, size_t largest, char *err,
                          size_t errlen);

/* A reload: r, the route replacing the one that runs s (same directory), uses
 * s too, and s now counts and logs as r; max_bytes and largest are r's. The
 * old route's spool_stop then only lets go of it; the last owner's stops it.
 * What the journal holds is forwarded as it was stored, so an old route's
 * records keep their exchange and routing key. */
void spool_adopt(struct spool *s, struct route *r, const struct spool_config *c, size_t largest);

/* Would the publisher take m (message_check, broker.max_message)? Only such
 * a message is spooled. false with why (the words of a 400). */
bool spool_takes(const struct spool *s, const struct message *m, char *why, size_t whylen);

/* Runs on the spool's thread once the record is on disk (spooled true), or
 * its write failed (false; why says what, e.g. the disk is full). */
typedef void (*spool_done_fn)(void *arg, bool spooled, const char *why);

/* Any thread. Takes record (spool_message_encode's bytes, malloc'd). 0: done
 * will run; -1: refused at once (the spool is full or stopping), *why says
 * why (static, or valid until the thread's next call), done will not run. */
int spool_append(struct spool *s, char *record, size_t len, spool_done_fn done, void *arg,
                 const char **why);

/* SIGTERM: forward nothing more (what is in flight finishes; the rest waits
 * in the journal for the next run). Appends are still taken. */
void spool_drain(struct spool *s);
/* Writes what is queued, stops the thread, closes the journal. NULL is fine.
 * true: the caller only let go of s, which lives on with the route a reload
 * handed it to (spool_adopt). */
bool spool_stop(struct spool *s);

/* For /readyz: "spool: 12 message(s), 4096 bytes, oldest 3.2s, 100 forwarded". */
void spool_describe(struct spool *s, struct buf *out);

/* Any thread. Would any request the route accepts be taken now (not stopping, and room
 * below max_bytes for the largest body it accepts)? */
bool spool_has_room(struct spool *s);

#endif
