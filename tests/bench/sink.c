/*
 * sink — the fastest legacy system we can offer the outbound benchmark: a
 * libmicrohttpd server that answers every POST/PUT with 200 "{}" and counts
 * them, so the sidecar, not the peer, is what gets measured.
 *
 *   sink PORT [THREADS]     GET /stats → {"count": N, "first": s, "last": s}
 *                           POST /reset zeroes them
 *
 * first/last are CLOCK_MONOTONIC seconds of the first and the latest request,
 * so a rate excludes the sidecar's start-up. Built by `make bench-tools`; the
 * bench reads its CPU time from /proc and shows it per request.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_long count;
static _Atomic double first_at, last_at;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum MHD_Result reply(struct MHD_Connection *conn, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)cls;
    (void)version;
    (void)upload;
    static int marker;
    if (*state == NULL) { /* headers only: wait for the body */
        *state = &marker;
        return MHD_YES;
    }
    if (*upload_size > 0) { /* body bytes: accept and drop */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/stats") == 0) {
        char body[128];
        snprintf(body, sizeof(body), "{\"count\": %ld, \"first\": %.6f, \"last\": %.6f}",
                 atomic_load(&count), atomic_load(&first_at), atomic_load(&last_at));
        return reply(conn, body);
    }
    if (strcmp(url, "/reset") == 0) {
        atomic_store(&count, 0);
        atomic_store(&first_at, 0.0);
        atomic_store(&last_at, 0.0);
        return reply(conn, "{}");
    }
    double t = now();
    if (atomic_fetch_add(&count, 1) == 0)
        atomic_store(&first_at, t);
    atomic_store(&last_at, t);
    return reply(conn, "{}");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sink PORT [THREADS]\n");
        return 2;
    }
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
    sigset_t set; /* blocked before MHD's threads exist, so they inherit it */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "sink: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
