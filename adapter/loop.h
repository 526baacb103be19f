/*
 * loop — a small poll(2) event loop owned by exactly one thread.
 *
 * Each thread that owns an AMQP connection (and, for outbound routes, a libcurl
 * multi handle) runs one loop: file descriptors with callbacks, one-shot
 * timers, and a thread-safe post queue so other threads can hand it work
 * (loop_post) without touching anything it owns. loop_post, loop_wake and
 * loop_stop are the only functions other threads may call.
 */
#ifndef SIDECAR_LOOP_H
#define SIDECAR_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

typedef void (*loop_fd_fn)(struct loop *loop, int fd, short revents, void *arg);
typedef void (*loop_timer_fn)(struct loop *loop, void *arg);
typedef void (*loop_post_fn)(void *arg);
/* Called before each poll; returns the longest the loop may sleep in ms
 * (0 when the caller has buffered work, -1 for no limit). */
typedef int (*loop_prepare_fn)(struct loop *loop, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Watch fd for events (POLLIN/POLLOUT); replaces an earlier watch of the same fd. */
int loop_watch(struct loop *loop, int fd, short events, loop_fd_fn fn, void *arg);
void loop_unwatch(struct loop *loop, int fd);

/* The longest timer: a year, beyond every configurable delay (retry delays stop
 * at a week); a longer one is shortened to it, so a due time cannot overflow. */
#define LOOP_MS_MAX (366 * 86400 * INT64_C(1000))

/* One-shot timer after ms milliseconds (at most LOOP_MS_MAX); returns an id > 0
 * for loop_timer_cancel. */
uint64_t loop_timer(struct loop *loop, int64_t ms, loop_timer_fn fn, void *arg);
/* Seconds as timer milliseconds, defined for every double (a cast of inf or
 * 1e30 to an integer is undefined behaviour): NaN and negatives are 0, the
 * rest is rounded and capped at LOOP_MS_MAX. */
int64_t loop_ms(double seconds);
void loop_timer_cancel(struct loop *loop, uint64_t id);

/* Adds a hook run before each poll, after those added before it (the
 * broker's, and one per HTTP server the loop runs). 0, or -1 if out of memory. */
int loop_add_prepare(struct loop *loop, loop_prepare_fn fn, void *arg);
/* On the loop's thread, outside the hooks (e.g. from a post): removes the hook
 * added with fn and arg. */
void loop_remove_prepare(struct loop *loop, loop_prepare_fn fn, void *arg);

/* Any thread: run fn(arg) on the loop's thread soon. 0, or -1 if out of memory. */
int loop_post(struct loop *loop, loop_post_fn fn, void *arg);
/* Another thread than the loop's, which is running: run fn(arg) there and
 * wait until it returned. */
void loop_call(struct loop *loop, loop_post_fn fn, void *arg);

/* Run until loop_stop; then run what is still posted and return. */
void loop_run(struct loop *loop);
void loop_stop(struct loop *loop); /* any thread */
/* Any thread: make the loop go round once (its prepare hooks run). */
void loop_wake(struct loop *loop);
bool loop_stopping(const struct loop *loop);
/* Any thread: is the caller the thread running loop? */
bool loop_on_thread(const struct loop *loop);

/* Monotonic milliseconds. */
int64_t loop_now_ms(void);

#endif
