/*
 * route_test_world — what the three parts of one `amqp-sidecar test` case
 * share: the world a case runs in (struct world), and its helpers.
 *   route_test_world.c     the broker (a channel under the real publisher), the
 *                          process's services, starting and ending a case;
 *   route_test_inbound.c   http/soap requests, dropped files, polls;
 *   route_test_outbound.c  deliveries with a judge, the legacy side's answers.
 * See route_test_world.c's opening comment for how each edge is played.
 */
#ifndef SIDECAR_ROUTE_TEST_WORLD_H
#define SIDECAR_ROUTE_TEST_WORLD_H

#include "broker_client.h"
#include "consumer.h"
#include "httpc.h"
#include "httpd.h"
#include "legacy_client.h"
#include "route.h"
#include "route_test_internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define CASE_TIMEOUT_S 30 /* a case that has not ended by then is reported, not waited for */
#define RPC_TAG        "amqp-sidecar-rpc" /* the publisher's reply consumer (publisher.c) */

enum broker_mode { BROKER_CONFIRM, BROKER_NACK, BROKER_DOWN };

struct world;

/* One legacy call, from start to its answer (or to the end of the case, unanswered:
 * poll's next GET once the case's responses are used up). */
struct legacy_call {
    struct world *w;
    json_t *response; /* the case's (borrowed); NULL: 200 with no body */
    bool held;
    httpc_done_fn done;
    void *arg;
    bool answered;
    struct legacy_call *next;
};

/* The case's HTTP request (inbound http/soap): req points into the fields below. */
struct local {
    struct world *w;
    struct http_local_request req;
    struct header *headers, *query;
    char *path, *body;
};

struct world {
    const struct test_case *tc;
    struct route *r;
    struct loop *loop; /* the broker's thread; an outbound route's thread too */
    pthread_t thread;
    bool thread_started;
    struct broker_channel ch;
    struct publisher *pub;
    enum broker_mode broker;
    uint64_t tags;        /* publishes so far: the broker's delivery tags */
    char *rpc_call;       /* the correlation_id of the rpc publish to reply to, once confirmed */
    struct local request; /* inbound http: the case's request, until the world ends */
    struct http_server *server;
    struct route_services services;
    struct legacy_transport transport;
    struct delivery_judge judge;

    pthread_mutex_t lock; /* the fields below, written on the loop thread */
    pthread_cond_t changed;
    json_t *got;
    bool answered;             /* inbound http: the answer came; outbound: the verdict */
    struct legacy_call *calls; /* every legacy call started, newest first */
    size_t n_calls;
};

/* Inbound http: the answer came; outbound: the verdict (any thread). */
void world_signal(struct world *w);
/* Waits for world_signal (calls 0), or for the route to have started `calls`
 * legacy calls; false after CASE_TIMEOUT_S. */
bool world_wait(struct world *w, size_t calls);

/* JSON for the result: text or null; a body (bytes that are not UTF-8 said so);
 * headers as an object. New references. */
json_t *world_json_text(const char *s);
json_t *world_json_body(const char *body, size_t len);
json_t *world_json_headers(const struct header *h, size_t n);

/* A file's text (caller frees), or NULL when it cannot be read. */
char *world_read_text(const char *path);
bool world_path_exists(const char *path);
/* A fresh directory (caller frees with world_temp_dir_remove, which removes it
 * and what it holds), or NULL with err. */
char *world_temp_dir_new(char *err, size_t errlen);
void world_temp_dir_remove(char *top);

/* route_test_inbound.c: the case's input through the started route (http: the
 * route is started by the caller; file and poll start and stop it). 0, or -1 with err. */
int world_run_http_in(struct world *w, char *err, size_t errlen);
/* Frees what the case's request (w->request) holds. */
void world_local_free(struct local *l);
int world_run_file_in(struct world *w, char *err, size_t errlen);
int world_run_poll_in(struct world *w, char *err, size_t errlen);

/* route_test_outbound.c: the legacy transport and the judge of this world's
 * deliveries (their arg is the world), and one delivery through the started
 * route (file out: into a temporary dir). 0, or -1 with err. */
int world_legacy_start(void *arg, struct loop *loop, const struct httpc_request *req,
                       httpc_done_fn done, void *done_arg);
void world_judge_settle(void *arg, struct delivery *d, struct delivery_verdict *v);
int world_run_outbound(struct world *w, char *err, size_t errlen);
int world_run_file_out(struct world *w, char *err, size_t errlen);

#endif
