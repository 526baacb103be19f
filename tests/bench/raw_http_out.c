/*
 * raw_http_out — the outbound yardstick with the HTTP call in it: rabbitmq-c
 * consuming at prefetch P, each delivery POSTed with libcurl's multi interface
 * (P transfers at once over keep-alive connections, easy handles reused) to
 * TARGET, and acked when the answer is 2xx. The two libraries the sidecar
 * uses, tuned as a careful hand-written client would use them, with nothing
 * of the sidecar: no retry ladder, ids, headers, metrics, logs or limits.
 *
 *   raw_http_out --url AMQP_URL --queue Q --count N --prefetch P --target HTTP_URL
 *
 * Prints one JSON line: {"count", "rate": messages per second from the first
 * delivery to the last ack, "seconds", "cpu_s": this process's user+system
 * CPU}. Exits 1 on any non-2xx answer or transfer error: a yardstick that
 * drops work would flatter itself.
 * Deliberately independent of the sidecar's code.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <curl/curl.h>

#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
    fprintf(stderr, "raw_http_out: %s\n", what);
    exit(1);
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
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("channel open");
    free(url);
    return c;
}

struct transfer {
    CURL *easy;
    uint64_t tag;
    struct transfer *next_free;
};

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *queue = NULL, *target = NULL;
    long count = 0, prefetch = 64;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},    {"queue", required_argument, NULL, 'q'},
        {"count", required_argument, NULL, 'n'},  {"prefetch", required_argument, NULL, 'p'},
        {"target", required_argument, NULL, 't'}, {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'u')
            url = optarg;
        else if (o == 'q')
            queue = optarg;
        else if (o == 'n')
            count = atol(optarg);
        else if (o == 'p')
            prefetch = atol(optarg);
        else if (o == 't')
            target = optarg;
        else
            die("usage: raw_http_out --url U --queue Q --count N --prefetch P --target URL");
    }
    if (!url || !queue || !target || count <= 0 || prefetch <= 0 || prefetch > 65535)
        die("usage: raw_http_out --url U --queue Q --count N --prefetch P --target URL");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct transfer *pool = calloc((size_t)prefetch, sizeof(*pool)), *spare = NULL;
    for (long i = 0; i < prefetch; i++) {
        pool[i].easy = curl_easy_init();
        curl_easy_setopt(pool[i].easy, CURLOPT_URL, target);
        curl_easy_setopt(pool[i].easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(pool[i].easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(pool[i].easy, CURLOPT_PRIVATE, &pool[i]);
        curl_easy_setopt(pool[i].easy, CURLOPT_NOSIGNAL, 1L);
        pool[i].next_free = spare;
        spare = &pool[i];
    }

    amqp_connection_state_t c = connect_to(url);
    amqp_basic_qos(c, 1, 0, (uint16_t)prefetch, 0);
    amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
        die("consume");
    int amqp_fd = amqp_get_sockfd(c);

    long acked = 0, running = 0;
    double start = 0;
    while (acked < count) {
        /* Every delivery rabbitmq-c can give without waiting becomes a transfer. */
        for (;;) {
            struct timeval zero = {0, 0};
            amqp_envelope_t env;
            amqp_maybe_release_buffers(c);
            amqp_rpc_reply_t r = amqp_consume_message(c, &env, &zero, 0);
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                r.library_error == AMQP_STATUS_TIMEOUT)
                break;
            if (r.reply_type != AMQP_RESPONSE_NORMAL)
                die("consume failed");
            if (start == 0)
                start = now();
            struct transfer *t = spare;
            if (t == NULL)
                die("more deliveries than the prefetch");
            spare = t->next_free;
            t->tag = env.delivery_tag;
            curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long)env.message.body.len);
            curl_easy_setopt(t->easy, CURLOPT_COPYPOSTFIELDS, env.message.body.bytes);
            curl_multi_add_handle(multi, t->easy);
            amqp_destroy_envelope(&env);
        }
        int still;
        curl_multi_perform(multi, &still);
        running = still;
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct transfer *t;
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (m->data.result != CURLE_OK || status / 100 != 2)
                die("a POST failed");
            curl_multi_remove_handle(multi, t->easy);
            amqp_basic_ack(c, 1, t->tag, 0);
            acked++;
            t->next_free = spare;
            spare = t;
        }
        if (acked >= count)
            break;
        struct curl_waitfd extra = {.fd = amqp_fd, .events = CURL_WAIT_POLLIN};
        int wait_ms = amqp_data_in_buffer(c) || amqp_frames_enqueued(c) ? 0 : 1000;
        curl_multi_poll(multi, &extra, 1, wait_ms, NULL);
    }
    double secs = now() - start;
    printf("{\"count\": %ld, \"rate\": %.1f, \"seconds\": %.3f, \"cpu_s\": %.3f}\n", acked,
           (double)acked / secs, secs, cpu_seconds());
    (void)running;
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    for (long i = 0; i < prefetch; i++)
        curl_easy_cleanup(pool[i].easy);
    free(pool);
    curl_slist_free_all(headers);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return 0;
}
