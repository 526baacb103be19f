/*
 * main — the command line: run, check, topology, replay, transform, keys,
 * systemd-dropin.
 *
 * Libraries that keep global state (OpenSSL via rabbitmq-c, libcurl,
 * libxml2, jansson's hash seed) are initialised here, before any thread.
 * Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
 */
#include "broker.h"
#include "broker_url.h"
#include "check_access.h"
#include "config.h"
#include "jq_transform.h"
#include "legacy_auth.h"
#include "log.h"
#include "oauth2.h"
#include "replay.h"
#include "route.h"
#include "route_test.h"
#include "sidecar.h"
#include "systemd_dropin.h"
#include "topology.h"
#include "transform_cli.h"
#include "util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: amqp-sidecar [COMMAND] -c FILE [OPTIONS]\n"
    "\n"
    "Bridges one legacy system (REST, files, SOAP) to RabbitMQ: inbound routes publish\n"
    "what the legacy side sends, with publisher confirms; outbound routes consume queues\n"
    "and call the legacy side, with a retry ladder and dead-letter queues.\n"
    "\n"
    "Commands:\n"
    "  run        -c FILE            run in the foreground until SIGTERM/SIGINT (default)\n"
    "  check      -c FILE [--connect] [--user NAME]\n"
    "                                validate the config (errors name file:line and exit 2);\n"
    "                                --connect also opens the broker and checks that every\n"
    "                                exchange the routes publish to exists, and fetches one\n"
    "                                token for each route with auth.oauth2 (exit 1 if not);\n"
    "                                --user NAME (as root) checks, as that user, that every\n"
    "                                directory and file the routes need can be read/written,\n"
    "                                naming file:line and the chown/chmod fix (exit 1 if not)\n"
    "  topology   -c FILE            print the queues, exchanges and bindings the sidecar\n"
    "                                owns as RabbitMQ definitions JSON, for\n"
    "                                `rabbitmqctl import_definitions`\n"
    "  replay     -c FILE ROUTE [--max N] [--dry-run]\n"
    "                                outbound ROUTE: move its dead letters from its .dlq\n"
    "                                back to its queue, retry counters reset; inbound\n"
    "                                ROUTE: publish its parked unroutable messages back to\n"
    "                                the exchange and routing key each was sent to (after\n"
    "                                you added the binding); one still unroutable stays\n"
    "                                (exit 1). --dry-run prints what it would do\n"
    "  transform  -c FILE ROUTE      apply ROUTE's jq transform to stdin (one JSON document, or\n"
    "                                JSON Lines: one result per line), print the result\n"
    "  test       -c FILE [TESTS…]   run route test cases (JSON) through the routes' real\n"
    "                                code, broker and legacy side played in-process; a\n"
    "                                failed case shows expected vs got (exit 1); see\n"
    "                                `amqp-sidecar test --help` for the format\n"
    "  systemd-dropin -c FILE        print the [Service] drop-in the hardened unit needs for\n"
    "                                FILE: ReadWritePaths= for every directory the file\n"
    "                                routes (and poll cursors) write in; its header says\n"
    "                                how to install it\n"
    "  keys [--markdown]             print every config key with its type, default and meaning\n"
    "                                (--markdown: as the README's tables)\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   the config file (libconfig syntax; see `keys` and the README)\n"
    "  -u, --user NAME     with check: check file access as NAME (e.g. amqp-sidecar)\n"
    "  -v, --verbose       debug logging\n"
    "  -V, --version       print the version\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.\n"
    "Examples:\n"
    "  amqp-sidecar check -c /etc/amqp-sidecar/crm.conf --connect\n"
    "  amqp-sidecar topology -c crm.conf > defs.json && rabbitmqctl import_definitions defs.json\n"
    "  echo '{\"id\":1}' | amqp-sidecar transform -c crm.conf orders\n"
    "  systemctl enable --now amqp-sidecar@crm     (runs /etc/amqp-sidecar/crm.conf)\n";

struct options {
    const char *command;
    const char *config;
    const char *route;
    const char *user; /* check --user */
    bool connect;
    bool dry_run;
    bool markdown; /* keys --markdown */
    bool verbose;
    long max;
    const char **tests; /* test: the TESTS files (argv's) */
    size_t n_tests;
};

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "amqp-sidecar: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry `amqp-sidecar --help`.\n");
    return EXIT_USAGE;
}

/* One line for a bad option (getopt's own messages are off), then the usage
 * summary: the first line of usage_text. */
static int option_error(char **argv, int opt)
{
    const char *what = "unknown option";
    char name[64];
    if (opt != 0 && strchr("cmu", opt) != NULL)
        what = "missing value for option";
    if (opt != 0 && (strchr("cmu", opt) == NULL || argv[optind - 1][1] != '-'))
        snprintf(name, sizeof(name), "-%c", opt);
    else
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
    fprintf(stderr, "amqp-sidecar: %s %s; see amqp-sidecar --help\n%.*s", what, name,
            (int)(strchr(usage_text, '\n') - usage_text + 1), usage_text);
    return EXIT_USAGE;
}

static int load(const char *path, struct sidecar_config *cfg)
{
    struct config_report rep = {0};
    if (config_load(path, cfg, &rep) == 0) {
        config_report_print(&rep); /* the notes, if any */
        config_report_free(&rep);
        return 0;
    }
    config_report_print(&rep);
    fprintf(stderr, "%s: %zu problem%s; nothing was started\n", path, rep.n, rep.n == 1 ? "" : "s");
    config_report_free(&rep);
    config_free(cfg);
    return -1;
}

static struct route *find_route(struct sidecar_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i]->name, name) == 0)
            return cfg->routes[i];
    fprintf(stderr, "amqp-sidecar: no route \"%s\" in %s; routes:", name, cfg->path);
    for (size_t i = 0; i < cfg->n_routes; i++)
        fprintf(stderr, " %s", cfg->routes[i]->name);
    fprintf(stderr, "\n");
    return NULL;
}

/* check --connect: one OAuth token for every route with auth.oauth2 (never shown). */
static int check_tokens(struct sidecar_config *cfg)
{
    int failed = 0;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route *r = cfg->routes[i];
        const struct legacy_auth *a = r->kind->legacy_auth ? r->kind->legacy_auth(r) : NULL;
        if (a == NULL || a->method != LEGACY_AUTH_OAUTH2)
            continue;
        char err[1024];
        double life = 0;
        if (oauth2_probe(&a->oauth2, &life, err, sizeof(err)) == 0) {
            printf("route %s: auth.oauth2: got a token (usable for %.0fs)\n", r->name, life);
        } else {
            fprintf(stderr, "route %s: %s\n", r->name, err);
            failed = -1;
        }
    }
    return failed;
}

static int cmd_check(struct sidecar_config *cfg, const struct options *o)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct route *r = cfg->routes[i];
        struct buf line = {0};
        if (r->kind->describe)
            r->kind->describe(r, &line);
        printf("%-8s %-20s %-5s %s\n", route_direction_name(r->direction), r->name, r->kind->name,
               line.data ? line.data : "");
        buf_free(&line);
    }
    printf("%s: ok, %zu route%s\n", cfg->path, cfg->n_routes, cfg->n_routes == 1 ? "" : "s");
    int access = 0;
    if (o->user != NULL)
        access = check_access_as(cfg, o->user);
    else if (geteuid() == 0)
        fprintf(stderr, "warning: check runs as root, which can read and write every file, so "
                        "it cannot see what the service's user may not; add --user "
                        "amqp-sidecar to check as that user\n");
    if (!o->connect || access == 2)
        return access;
    struct topology *t = topology_for_config(cfg);
    char err[2048];
    struct buf warnings = {0};
    int rc = broker_probe(&cfg->broker, cfg->name, t, &warnings, err, sizeof(err));
    int tokens = check_tokens(cfg);
    if (rc == 0)
        printf("broker: connected to %s; %zu exchange%s checked, all exist\n", err, t->n_checked,
               t->n_checked == 1 ? "" : "s");
    char *save = NULL;
    for (char *line = warnings.len ? strtok_r(warnings.data, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save))
        fprintf(stderr, "warning: %s\n", line);
    buf_free(&warnings);
    if (rc != 0)
        fprintf(stderr, "broker: %s\n", err);
    topology_free(t);
    return rc == 0 && tokens == 0 && access == 0 ? 0 : 1;
}

static int cmd_topology(struct sidecar_config *cfg)
{
    struct topology *t = topology_for_config(cfg);
    char *vhost = NULL;
    struct broker_url u;
    char err[256];
    if (broker_url_parse(cfg->broker.urls.v[0], &u, err, sizeof(err)) == 0) {
        vhost = xstrdup(u.vhost);
        broker_url_free(&u);
    }
    char *json = topology_definitions_json(t, vhost ? vhost : "/");
    printf("%s\n", json);
    free(json);
    free(vhost);
    topology_free(t);
    return 0;
}

static int cmd_transform(struct sidecar_config *cfg, const char *name)
{
    struct route *r = find_route(cfg, name);
    if (r == NULL)
        return EXIT_USAGE;
    if (r->transform == NULL) {
        fprintf(stderr, "amqp-sidecar: route \"%s\" has no transform (set transform = \"….jq\")\n",
                name);
        return EXIT_USAGE;
    }
    return transform_stream(r->transform, r->transform_file, stdin, stdout, stderr);
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"connect", no_argument, NULL, 'C'},
        {"max", required_argument, NULL, 'm'},    {"dry-run", no_argument, NULL, 'n'},
        {"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {"user", required_argument, NULL, 'u'},
        {"markdown", no_argument, NULL, 'M'},     {NULL, 0, NULL, 0},
    };
    *o = (struct options){.command = "run", .max = -1};
    o->tests = xcalloc((size_t)argc, sizeof(*o->tests));
    bool have_command = false;
    int c;
    /* A leading "-" makes getopt hand us positional words in order (as c == 1). */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "-c:u:vVh", longopts, NULL)) != -1) {
        if (c == 1) {
            if (!have_command) {
                o->command = optarg;
                have_command = true;
            } else if (strcmp(o->command, "test") == 0) {
                o->tests[o->n_tests++] = optarg;
            } else if (o->route == NULL) {
                o->route = optarg;
            } else {
                return usage_error("unexpected argument \"%s\"", optarg);
            }
            continue;
        }
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 'C':
            o->connect = true;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'm': {
            char *end;
            o->max = strtol(optarg, &end, 10);
            if (*end || o->max < 0)
                return usage_error("--max wants a number >= 0, not \"%s\"", optarg);
            break;
        }
        case 'M':
            o->markdown = true;
            break;
        case 'n':
            o->dry_run = true;
            break;
        case 'v':
            log_set_level(LOG_DEBUG);
            o->verbose = true;
            break;
        case 'V':
            printf("amqp-sidecar %s\n", SIDECAR_VERSION);
            exit(0);
        case 'h':
            fputs(strcmp(o->command, "test") == 0 ? route_test_usage : usage_text, stdout);
            exit(0);
        default:
            return option_error(argv, optopt);
        }
    }
    return 0;
}

/* The command o names (parsed); main frees what parse_args made. */
static int run_command(const struct options *op)
{
    const struct options o = *op;
    int rc = 0;

    static const char *const commands[] = {"run",       "check", "topology",       "replay",
                                           "transform", "keys",  "systemd-dropin", "test"};
    bool known = false;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        known = known || strcmp(o.command, commands[i]) == 0;
    if (!known)
        return usage_error("unknown command \"%s\" (run, check, topology, replay, transform, keys, "
                           "systemd-dropin, test)",
                           o.command);
    if (strcmp(o.command, "keys") == 0) {
        config_print_reference(o.markdown);
        return 0;
    }
    if (o.config == NULL)
        return usage_error("%s needs -c FILE (the config file)", o.command);
    bool wants_route = strcmp(o.command, "replay") == 0 || strcmp(o.command, "transform") == 0;
    if (wants_route && o.route == NULL)
        return usage_error("%s needs a ROUTE name", o.command);
    if (!wants_route && o.route != NULL)
        return usage_error("unexpected argument \"%s\"", o.route);
    if (o.user != NULL && strcmp(o.command, "check") != 0)
        return usage_error("--user goes with check (check -c FILE --user %s)", o.user);

    xmlInitParser();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_object_seed(0);

    struct sidecar_config cfg;
    if (load(o.config, &cfg) != 0)
        return EXIT_USAGE;
    enum log_format format;
    if (log_parse_format(cfg.log_format, &format) == 0)
        log_set_format(format);

    if (strcmp(o.command, "check") == 0)
        rc = cmd_check(&cfg, &o);
    else if (strcmp(o.command, "topology") == 0)
        rc = cmd_topology(&cfg);
    else if (strcmp(o.command, "transform") == 0)
        rc = cmd_transform(&cfg, o.route);
    else if (strcmp(o.command, "test") == 0)
        rc = route_test_main(&cfg, o.tests, o.n_tests, o.verbose);
    else if (strcmp(o.command, "systemd-dropin") == 0)
        rc = systemd_dropin_print(&cfg, stdout);
    else if (strcmp(o.command, "replay") == 0)
        rc = find_route(&cfg, o.route)
                 ? replay_run(&cfg, find_route(&cfg, o.route), o.max, o.dry_run)
                 : EXIT_USAGE;
    else
        rc = sidecar_run(&cfg);

    config_free(&cfg);
    curl_global_cleanup();
    xmlCleanupParser();
    return rc;
}

int main(int argc, char **argv)
{
    struct options o;
    int rc = parse_args(argc, argv, &o);
    if (rc == 0)
        rc = run_command(&o);
    free(o.tests);
    return rc;
}
