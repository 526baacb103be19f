/*
 * bench_publisher — the sidecar's own confirm pipeline (adapter/publisher.c
 * on adapter/broker.c), driven directly: T threads submit N persistent
 * messages to queue Q through one publisher, as inbound routes do, keeping
 * at most W outstanding; prints {"rate": …, "seconds": …, "p50_ms": …,
 * "p99_ms": …} where the latencies are submit → confirm.
 *
 *   bench_publisher --url URL --queue Q --count N --size B --threads T --window W
 */
#include "broker.h"
#include "config.h"
#include "loop.h"
#include "message.h"
#include "publisher.h"
#include "util.h"

#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bench {
    struct publisher *pub;
    const char *queue;
    long per_thread;
    long size;
    sem_t window;
    atomic_long done, failed;
    double *latency; /* ms, indexed by completion order */
};

struct sent {
    struct bench *b;
    int64_t start_us;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void confirmed(void *arg, struct publish_result *res)
{
    struct sent *s = arg;
    struct bench *b = s->b;
    long i = atomic_fetch_add(&b->done, 1);
    b->latency[i] = (double)(now_us() - s->start_us) / 1000.0;
    if (res->status != PUBLISH_OK)
        atomic_fetch_add(&b->failed, 1);
    sem_post(&b->window);
    free(s);
}

static void *producer(void *arg)
{
    struct bench *b = arg;
    char *body = xmalloc((size_t)b->size);
    memset(body, 'x', (size_t)b->size);
    struct publish_options opt = {0};
    for (long i = 0; i < b->per_thread; i++) {
        sem_wait(&b->window);
        struct sent *s = xmalloc(sizeof(*s));
        *s = (struct sent){b, now_us()};
        for (;;) {
            struct message *m = message_new(); /* taken by the publisher either way */
            message_set_body(m, body, (size_t)b->size);
            m->exchange = xstrdup("");
            m->routing_key = xstrdup(b->queue);
            m->content_type = xstrdup("application/json");
            const char *why;
            if (publisher_submit(b->pub, m, &opt, confirmed, s, &why) == 0)
                break;
            usleep(100);
        }
    }
    free(body);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *url = "amqp://guest:guest@127.0.0.1:5672/%2f", *queue = "bench";
    long count = 50000, size = 200, threads = 4, window = 1024;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"queue", required_argument, NULL, 'q'},
        {"count", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {"window", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            url = optarg;
            break;
        case 'q':
            queue = optarg;
            break;
        case 'n':
            count = atol(optarg);
            break;
        case 's':
            size = atol(optarg);
            break;
        case 't':
            threads = atol(optarg);
            break;
        case 'w':
            window = atol(optarg);
            break;
        default:
            return 2;
        }
    }
    struct broker_config cfg = {.heartbeat = 30,
                                .connect_timeout = 5,
                                .confirm_timeout = 30,
                                .max_inflight = (int)window,
                                .tls.verify = true};
    char *urls[] = {(char *)url};
    cfg.urls = (struct strlist){urls, 1};
    cfg.max_message = 1 << 27;
    struct broker *broker = broker_new("bench", "bench", &cfg, NULL, NULL);
    struct publisher *pub = publisher_new("bench", &cfg, broker_loop(broker), NULL);
    broker_attach(broker, publisher_client(pub));
    struct bench b = {.pub = pub, .queue = queue, .per_thread = count / threads, .size = size};
    count = b.per_thread * threads;
    b.latency = xcalloc((size_t)count, sizeof(double));
    sem_init(&b.window, 0, (unsigned)window);
    broker_start(broker);
    while (!broker_is_up(broker))
        usleep(10000);

    int64_t start = now_us();
    pthread_t th[64];
    for (long i = 0; i < threads && i < 64; i++)
        pthread_create(&th[i], NULL, producer, &b);
    for (long i = 0; i < threads && i < 64; i++)
        pthread_join(th[i], NULL);
    while (atomic_load(&b.done) < count)
        usleep(1000);
    double secs = (double)(now_us() - start) / 1e6;
    qsort(b.latency, (size_t)count, sizeof(double), cmp);
    printf("{\"rate\": %.1f, \"seconds\": %.3f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"failed\": "
           "%ld}\n",
           (double)count / secs, secs, b.latency[count / 2], b.latency[count * 99 / 100],
           atomic_load(&b.failed));
    broker_stop(broker);
    broker_free(broker);
    publisher_free(pub);
    free(b.latency);
    return atomic_load(&b.failed) ? 1 : 0;
}
