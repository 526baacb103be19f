/*
 * raw_amqp — the raw rabbitmq-c limit that benchmarks compare against.
 *
 *   raw_amqp publish --url URL [--queue Q [--passive]] [--exchange X] [--routing-key K]
 *                    (--count N | --seconds S [--rate R]) --size BYTES --window W
 *                    [--sidecar-props]
 *   raw_amqp consume --url URL --queue Q --count N --prefetch P
 *
 * publish: declares Q durable (--passive: only checks that it exists, e.g. a
 * queue the sidecar declared with its own arguments), then publishes
 * persistent messages of BYTES to exchange X (default: the default exchange)
 * with routing key K (default: Q), with publisher confirms, keeping exactly W
 * unconfirmed (W = 1 is the one-at-a-time confirm loop), N of them or for S
 * seconds. --sidecar-props publishes the message shape DESIGN.md requires of
 * the sidecar (mandatory, message_id, correlation_id, timestamp, app_id, an
 * x-sidecar-route header), which costs the broker more per message; a return
 * (nothing bound to X with K) is fatal. consume: consumes and acks N.
 *
 * --rate R (with --seconds): an open loop instead. Publishes are scheduled
 * evenly spaced at R/s (schedule.h), each sent as soon as it is due and fewer
 * than W await their confirm, and timed from its *scheduled* time to its
 * confirm, so a stall that holds publishes back is counted (no coordinated
 * omission), as loadgen --rate does for HTTP. More than 1 s worth due but
 * unsent: the rate is not sustained, publishing stops, the latencies print as
 * null.
 *
 * Prints one JSON line: {"count", "rate": messages per second, "seconds":
 * first publish (open loop: first scheduled time) to last confirm,
 * "p50_ms"/"p99_ms": publish (open loop: scheduled time) → confirm of each
 * message (publish only), "cpu_s": this process's user+system CPU}; --rate
 * adds "target_rate", "scheduled", "sustained" and "max_backlog_ms", as
 * loadgen's.
 * Deliberately independent of the sidecar's code: it is the yardstick.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include "latency.h"
#include "schedule.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#define BACKLOG_S 1.0    /* due but unsent beyond this many seconds' worth: not sustained */
#define CHECK_US  100000 /* an open loop looks at its backlog at least this often */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static double cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

__attribute__((noreturn)) static void die(const char *what)
{
    fprintf(stderr, "raw_amqp: %s\n", what);
    exit(1);
}

static void check(amqp_connection_state_t c, const char *what)
{
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die(what);
}

static amqp_connection_state_t connect_to(const char *url_text)
{
    struct amqp_connection_info info;
    char *url = strdup(url_text);
    if (amqp_parse_url(url, &info) != AMQP_STATUS_OK)
        die("bad url");
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (amqp_socket_open(s, info.host, info.port) != AMQP_STATUS_OK)
        die("cannot connect");
    if (amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password)
            .reply_type != AMQP_RESPONSE_NORMAL)
        die("login failed");
    amqp_channel_open(c, 1);
    check(c, "channel open");
    free(url);
    return c;
}

/* Publishes in flight, by delivery tag: tag t lives in slot t % size while
 * low <= t < next. The window is that tag range, so with the broker's
 * in-order confirms exactly `size` publishes await their confirm. */
struct inflight {
    uint64_t *sent_us; /* 0: confirmed */
    uint64_t size, low, next;
    struct latency hist;
};

static void confirm_tag(struct inflight *w, uint64_t tag, uint64_t at)
{
    if (tag < w->low || tag >= w->next)
        return;
    uint64_t *slot = &w->sent_us[tag % w->size];
    if (*slot) {
        latency_record(&w->hist, at - *slot);
        *slot = 0;
    }
}

/* Takes in one frame read at `at`: confirms, or dies on a nack, a return (the
 * exchange/key routes nowhere) or a channel/connection close, naming it. */
static void on_frame(amqp_connection_state_t c, struct inflight *w, const amqp_frame_t *f,
                     uint64_t at)
{
    if (f->frame_type == AMQP_FRAME_METHOD) {
        switch (f->payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *a = f->payload.method.decoded;
            if (a->multiple)
                for (uint64_t t = w->low; t <= a->delivery_tag && t < w->next; t++)
                    confirm_tag(w, t, at);
            else
                confirm_tag(w, a->delivery_tag, at);
            while (w->low < w->next && w->sent_us[w->low % w->size] == 0)
                w->low++;
            break;
        }
        case AMQP_BASIC_NACK_METHOD:
            die("the broker nacked a publish");
        case AMQP_BASIC_RETURN_METHOD:
            die("a publish was returned unroutable: bind a queue to --exchange with --routing-key");
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            die("the broker closed the channel (does --exchange exist?)");
        default:
            break;
        }
    }
    amqp_maybe_release_buffers(c);
}

/* Reads frames until the oldest publish in flight is confirmed (or all are,
 * when `all`). */
static void wait_confirms(amqp_connection_state_t c, struct inflight *w, int all)
{
    while (w->low < w->next && (all || w->next - w->low >= w->size)) {
        amqp_frame_t f;
        if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
            die("connection lost");
        on_frame(c, w, &f, now_us());
    }
}

/* Open loop: waits for a frame until until_us (µs; rabbitmq-c's own timeouts
 * are whole milliseconds, too coarse for a schedule of a few hundred µs, so
 * the socket is polled here), then takes in every frame already read. */
static void read_frames(amqp_connection_state_t c, struct inflight *w, uint64_t until_us)
{
    if (!amqp_frames_enqueued(c) && !amqp_data_in_buffer(c)) {
        uint64_t t = now_us();
        if (t >= until_us)
            return;
        struct pollfd p = {.fd = amqp_get_sockfd(c), .events = POLLIN};
        uint64_t left = until_us - t;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000),
                              .tv_nsec = (long)(left % 1000000) * 1000};
        int n = ppoll(&p, 1, &ts, NULL);
        if (n < 0 && errno != EINTR)
            die("poll on the broker connection failed");
        if (n <= 0)
            return;
    }
    do {
        amqp_frame_t f;
        struct timeval rest = {.tv_sec = 0, .tv_usec = CHECK_US}; /* the rest of a frame */
        int rc = amqp_simple_wait_frame_noblock(c, &f, &rest);
        if (rc == AMQP_STATUS_TIMEOUT)
            return;
        if (rc != AMQP_STATUS_OK)
            die("connection lost");
        on_frame(c, w, &f, now_us());
    } while (amqp_frames_enqueued(c) || amqp_data_in_buffer(c));
}

struct publish_args {
    const char *exchange, *routing_key, *queue;
    long count, size, window;
    double seconds; /* > 0: publish for this long instead of `count` */
    double rate;    /* > 0: an open loop at this many publishes/s, for `seconds` */
    int passive, sidecar_props;
};

/* What every publish of a run sends; borrowed, not owned. */
struct message {
    amqp_bytes_t exchange, key, body;
    const amqp_basic_properties_t *props;
    int mandatory;
};

/* Publishes m as the next delivery tag, timed from `since` (µs). */
static void publish_one(amqp_connection_state_t c, struct inflight *w, const struct message *m,
                        uint64_t since)
{
    if (amqp_basic_publish(c, 1, m->exchange, m->key, m->mandatory, 0, m->props, m->body) !=
        AMQP_STATUS_OK)
        die("publish failed");
    w->sent_us[w->next % w->size] = since ? since : 1; /* 0 means confirmed */
    w->next++;
}

/* Exactly W awaiting confirms: the next publish goes out when the oldest is
 * confirmed, until stop_us (µs, when not 0) or `count` publishes. */
static void publish_closed_loop(amqp_connection_state_t c, struct inflight *w,
                                const struct message *m, uint64_t stop_us, long count)
{
    for (;;) {
        if (w->next - w->low >= w->size)
            wait_confirms(c, w, 0);
        uint64_t t = now_us();
        if (stop_us ? t >= stop_us : (long)(w->next - 1) >= count)
            return;
        publish_one(c, w, m, t);
    }
}

/* Publishes each scheduled message once it is due and fewer than W await
 * their confirm, timed from its scheduled time; 1 if the backlog passed
 * BACKLOG_S (publishing then stops), 0 once every scheduled one is out. */
static int publish_open_loop(amqp_connection_state_t c, struct inflight *w, const struct message *m,
                             struct schedule *s)
{
    for (;;) {
        uint64_t t = now_us(), due;
        if (schedule_overrun(s, t))
            return 1;
        if (schedule_done(s))
            return 0;
        int room = w->next - w->low < w->size;
        if (room && schedule_take(s, t, &due)) {
            publish_one(c, w, m, due);
            continue;
        }
        uint64_t next = schedule_next_us(s); /* not done: a request is still to come */
        read_frames(c, w, room && next < t + CHECK_US ? next : t + CHECK_US);
    }
}

static void publish(const char *url, const struct publish_args *a)
{
    amqp_connection_state_t c = connect_to(url);
    if (a->queue) {
        amqp_queue_declare(c, 1, amqp_cstring_bytes(a->queue), a->passive, 1, 0, 0,
                           amqp_empty_table);
        check(c, "queue declare");
    }
    amqp_confirm_select(c, 1);
    check(c, "confirm select");
    char *body = malloc((size_t)a->size);
    memset(body, 'x', (size_t)a->size);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG |
                                               AMQP_BASIC_CONTENT_TYPE_FLAG,
                                     .delivery_mode = 2,
                                     .content_type = amqp_cstring_bytes("application/json")};
    amqp_table_entry_t route = {
        amqp_cstring_bytes("x-sidecar-route"),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("bench")}};
    if (a->sidecar_props) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                        AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG |
                        AMQP_BASIC_HEADERS_FLAG;
        props.message_id = amqp_cstring_bytes("9a0f935a-06b9-4ea3-b169-cc103ee41f0d");
        props.correlation_id = amqp_cstring_bytes("2d89eafc-200f-48a3-a237-232835fbcf09");
        props.timestamp = (uint64_t)time(NULL);
        props.app_id = amqp_cstring_bytes("amqp-sidecar/bench");
        props.headers = (amqp_table_t){.num_entries = 1, .entries = &route};
    }
    static struct inflight w; /* the histogram is 135 kB: not on the stack */
    w.size = (uint64_t)a->window;
    w.sent_us = calloc(w.size, sizeof(*w.sent_us));
    w.low = w.next = 1;
    latency_reset(&w.hist);
    struct message m = {.exchange = amqp_cstring_bytes(a->exchange),
                        .key = amqp_cstring_bytes(a->routing_key),
                        .props = &props,
                        .body = {.len = (size_t)a->size, .bytes = body},
                        .mandatory = a->sidecar_props};
    static struct schedule sched;
    uint64_t start = now_us();
    int overrun = 0;
    if (a->rate > 0) {
        prctl(PR_SET_TIMERSLACK, 1UL); /* wake at the due time, not up to 50 µs after */
        schedule_init(&sched, start, a->seconds, a->rate, BACKLOG_S);
        overrun = publish_open_loop(c, &w, &m, &sched);
    } else {
        publish_closed_loop(c, &w, &m, a->seconds > 0 ? start + (uint64_t)(a->seconds * 1e6) : 0,
                            a->count);
    }
    wait_confirms(c, &w, 1);
    double secs = (double)(now_us() - start) / 1e6;
    uint64_t sent = w.next - 1;
    printf("{\"count\": %llu, \"rate\": %.1f, \"seconds\": %.3f, ", (unsigned long long)sent,
           (double)sent / secs, secs);
    if (overrun) /* the latencies of an overload, not of the rate asked for */
        printf("\"p50_ms\": null, \"p99_ms\": null, ");
    else
        printf("\"p50_ms\": %.3f, \"p99_ms\": %.3f, ",
               (double)latency_quantile(&w.hist, 0.50) / 1e3,
               (double)latency_quantile(&w.hist, 0.99) / 1e3);
    if (a->rate > 0)
        printf("\"target_rate\": %.1f, \"scheduled\": %llu, \"sustained\": %s, "
               "\"max_backlog_ms\": %.1f, ",
               a->rate, (unsigned long long)sched.total, overrun ? "false" : "true",
               (double)sched.max_backlog * 1e3 / a->rate);
    printf("\"cpu_s\": %.3f}\n", cpu_seconds());
    free(w.sent_us);
    free(body);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static void consume(const char *url, const char *queue, long count, long prefetch)
{
    amqp_connection_state_t c = connect_to(url);
    amqp_basic_qos(c, 1, 0, (uint16_t)prefetch, 0);
    check(c, "qos");
    amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    check(c, "consume");
    double start = now();
    for (long i = 0; i < count; i++) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(c);
        if (amqp_consume_message(c, &env, NULL, 0).reply_type != AMQP_RESPONSE_NORMAL)
            die("consume failed");
        amqp_basic_ack(c, 1, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
    }
    double secs = now() - start;
    printf("{\"count\": %ld, \"rate\": %.1f, \"seconds\": %.3f, \"cpu_s\": %.3f}\n", count,
           (double)count / secs, secs, cpu_seconds());
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: raw_amqp publish|consume --url U --queue Q --count N [--size B --window W | "
            "--prefetch P]");
    const char *mode = argv[1];
    const char *url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    struct publish_args a = {.exchange = "", .count = 10000, .size = 200, .window = 512};
    long prefetch = 256;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"queue", required_argument, NULL, 'q'},
        {"exchange", required_argument, NULL, 'x'},
        {"routing-key", required_argument, NULL, 'k'},
        {"count", required_argument, NULL, 'n'},
        {"seconds", required_argument, NULL, 't'},
        {"size", required_argument, NULL, 's'},
        {"window", required_argument, NULL, 'w'},
        {"prefetch", required_argument, NULL, 'p'},
        {"passive", no_argument, NULL, 'P'},
        {"sidecar-props", no_argument, NULL, 'S'},
        {"rate", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u':
            url = optarg;
            break;
        case 'q':
            a.queue = optarg;
            break;
        case 'x':
            a.exchange = optarg;
            break;
        case 'k':
            a.routing_key = optarg;
            break;
        case 'n':
            a.count = atol(optarg);
            break;
        case 't':
            a.seconds = atof(optarg);
            break;
        case 's':
            a.size = atol(optarg);
            break;
        case 'w':
            a.window = atol(optarg);
            break;
        case 'p':
            prefetch = atol(optarg);
            break;
        case 'P':
            a.passive = 1;
            break;
        case 'S':
            a.sidecar_props = 1;
            break;
        case 'r':
            a.rate = atof(optarg);
            if (a.rate <= 0)
                die("--rate must be > 0 publishes/s");
            break;
        default:
            die("unknown option");
        }
    }
    if (a.window < 1)
        a.window = 1;
    if (a.size < 1)
        die("--size must be at least 1");
    if (a.rate > 0 && a.seconds <= 0)
        die("--rate needs --seconds: an open loop runs for a time, not a count");
    if (a.routing_key == NULL)
        a.routing_key = a.queue ? a.queue : "";
    if (strcmp(mode, "publish") == 0) {
        publish(url, &a);
    } else if (strcmp(mode, "consume") == 0) {
        if (a.queue == NULL)
            die("consume needs --queue");
        consume(url, a.queue, a.count, prefetch);
    } else {
        die("mode must be publish or consume");
    }
    return 0;
}
