/*
 * broker_attempt — connecting on a thread of its own (see broker_attempt.h).
 */
#include "broker_attempt.h"

#include "broker_client.h"
#include "broker_once.h"
#include "broker_url.h"
#include "loop.h"
#include "topology.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct broker_attempt {
    const struct broker_config *cfg;
    const struct broker_url *url;
    const struct topology *topo;
    char *name;
    struct loop *loop;
    broker_attempt_fn done;
    void *arg;
    pthread_t thread;
    /* results, written by the thread before it posts */
    amqp_connection_state_t conn;
    bool fatal;
    char err[1024];
};

/* Topology first: a failed passive check or declare may reopen the channel,
 * which would drop confirm mode. */
static int declare_and_confirm(struct broker_attempt *a)
{
    if (a->topo && topology_declare(a->conn, BROKER_CHANNEL, a->topo, a->url->vhost, &a->fatal,
                                    a->err, sizeof(a->err)) != 0)
        return -1;
    amqp_confirm_select(a->conn, BROKER_CHANNEL);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(a->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[256];
        broker_reply_describe(r, why, sizeof(why));
        snprintf(a->err, sizeof(a->err), "enabling publisher confirms failed: %s", why);
        return -1;
    }
    return 0;
}

static void attempt_over(void *arg)
{
    struct broker_attempt *a = arg;
    a->done(a, a->arg);
}

static void *attempt_thread(void *arg)
{
    struct broker_attempt *a = arg;
    if (broker_open(a->cfg, a->url, a->name, &a->conn, a->err, sizeof(a->err)) == 0 &&
        declare_and_confirm(a) != 0) {
        broker_close(a->conn, false);
        a->conn = NULL;
    }
    if (loop_post(a->loop, attempt_over, a) != 0)
        snprintf(a->err, sizeof(a->err), "out of memory"); /* the loop never hears: a bug */
    return NULL;
}

struct broker_attempt *broker_attempt_start(const struct broker_config *cfg,
                                            const struct broker_url *u, const char *connection_name,
                                            const struct topology *topo, struct loop *loop,
                                            broker_attempt_fn done, void *arg)
{
    struct broker_attempt *a = xcalloc(1, sizeof(*a));
    *a = (struct broker_attempt){.cfg = cfg,
                                 .url = u,
                                 .topo = topo,
                                 .name = xstrdup(connection_name),
                                 .loop = loop,
                                 .done = done,
                                 .arg = arg};
    if (pthread_create(&a->thread, NULL, attempt_thread, a) != 0) {
        free(a->name);
        free(a);
        return NULL;
    }
    return a;
}

amqp_connection_state_t broker_attempt_take(struct broker_attempt *a, const char **err, bool *fatal)
{
    amqp_connection_state_t conn = a->conn;
    a->conn = NULL;
    *err = a->err;
    *fatal = a->fatal;
    return conn;
}

void broker_attempt_free(struct broker_attempt *a)
{
    if (a == NULL)
        return;
    pthread_join(a->thread, NULL);
    if (a->conn)
        broker_close(a->conn, false);
    free(a->name);
    free(a);
}
