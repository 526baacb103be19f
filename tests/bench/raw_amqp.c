/*
 * raw_amqp — the raw rabbitmq-c limit that benchmarks compare against.
 *
 *   raw_amqp publish --url URL --queue Q --count N --size BYTES --window W [--passive]
 *                    [--sidecar-props]
 *   raw_amqp consume --url URL --queue Q --count N --prefetch P
 *
 * publish: declares Q durable and publishes N persistent messages of BYTES
 * to it with publisher confirms, keeping up to W unconfirmed (W = 1 is the
 * one-at-a-time confirm loop); --passive only checks that Q exists (a queue
 * the sidecar declared with its own arguments); --sidecar-props publishes the
 * message shape DESIGN.md requires of the sidecar (mandatory, message_id,
 * correlation_id, timestamp, app_id, an x-sidecar-route header), which costs the
 * broker more per message. consume: consumes and acks N.
 * Prints one JSON line: {"rate": messages per second, "seconds": elapsed}.
 * Deliberately independent of the sidecar's code: it is the yardstick.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
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

/* Reads frames until the broker confirmed up to `want`. */
static uint64_t wait_confirms(amqp_connection_state_t c, uint64_t confirmed, uint64_t want)
{
    while (confirmed < want) {
        amqp_frame_t f;
        if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
            die("connection lost");
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->delivery_tag > confirmed)
                confirmed = a->delivery_tag;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            die("nacked");
        }
        amqp_maybe_release_buffers(c);
    }
    return confirmed;
}

static void publish(const char *url, const char *queue, long count, long size, long window,
                    int passive, int sidecar_props)
{
    amqp_connection_state_t c = connect_to(url);
    amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), passive, 1, 0, 0, amqp_empty_table);
    check(c, "queue declare");
    amqp_confirm_select(c, 1);
    check(c, "confirm select");
    char *body = malloc((size_t)size);
    memset(body, 'x', (size_t)size);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG |
                                               AMQP_BASIC_CONTENT_TYPE_FLAG,
                                     .delivery_mode = 2,
                                     .content_type = amqp_cstring_bytes("application/json")};
    amqp_table_entry_t route = {
        amqp_cstring_bytes("x-sidecar-route"),
        {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("bench")}};
    if (sidecar_props) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                        AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG |
                        AMQP_BASIC_HEADERS_FLAG;
        props.message_id = amqp_cstring_bytes("9a0f935a-06b9-4ea3-b169-cc103ee41f0d");
        props.correlation_id = amqp_cstring_bytes("2d89eafc-200f-48a3-a237-232835fbcf09");
        props.timestamp = (uint64_t)time(NULL);
        props.app_id = amqp_cstring_bytes("amqp-sidecar/bench");
        props.headers = (amqp_table_t){.num_entries = 1, .entries = &route};
    }
    double start = now();
    uint64_t sent = 0, confirmed = 0;
    while ((long)sent < count) {
        if ((long)(sent - confirmed) >= window)
            confirmed = wait_confirms(c, confirmed, sent - (uint64_t)window + 1);
        amqp_bytes_t b = {.len = (size_t)size, .bytes = body};
        if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), sidecar_props, 0,
                               &props, b) != AMQP_STATUS_OK)
            die("publish failed");
        sent++;
    }
    wait_confirms(c, confirmed, sent);
    double secs = now() - start;
    printf("{\"rate\": %.1f, \"seconds\": %.3f}\n", (double)count / secs, secs);
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
    printf("{\"rate\": %.1f, \"seconds\": %.3f}\n", (double)count / secs, secs);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: raw_amqp publish|consume --url U --queue Q --count N [--size B --window W | "
            "--prefetch P]");
    const char *mode = argv[1];
    const char *url = "amqp://guest:guest@127.0.0.1:5672/%2f", *queue = "bench";
    long count = 10000, size = 200, window = 512, prefetch = 256;
    int passive = 0, sidecar_props = 0;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"queue", required_argument, NULL, 'q'},
        {"count", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"window", required_argument, NULL, 'w'},
        {"prefetch", required_argument, NULL, 'p'},
        {"passive", no_argument, NULL, 'P'},
        {"sidecar-props", no_argument, NULL, 'S'},
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
            queue = optarg;
            break;
        case 'n':
            count = atol(optarg);
            break;
        case 's':
            size = atol(optarg);
            break;
        case 'w':
            window = atol(optarg);
            break;
        case 'p':
            prefetch = atol(optarg);
            break;
        case 'P':
            passive = 1;
            break;
        case 'S':
            sidecar_props = 1;
            break;
        default:
            die("unknown option");
        }
    }
    if (strcmp(mode, "publish") == 0)
        publish(url, queue, count, size, window < 1 ? 1 : window, passive, sidecar_props);
    else if (strcmp(mode, "consume") == 0)
        consume(url, queue, count, prefetch);
    else
        die("mode must be publish or consume");
    return 0;
}
