/*
 * config — the whole configuration, loaded from a libconfig file and validated
 * against key tables before anything starts.
 *
 * Every key the sidecar understands lives in one `struct config_key` table
 * (the process keys here, the per-direction route keys in route.c, and each
 * kind's own keys in its file). The same tables validate the file, fill the
 * defaults, and print the reference (`amqp-sidecar keys`), so the docs cannot
 * drift from the code. Errors are collected, not stopped at: `check` shows
 * every problem at once, each as `file:line: what is wrong — how to fix it`.
 */
#ifndef SIDECAR_CONFIG_H
#define SIDECAR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct route;

enum key_type {
    KEY_STRING,  /* char * */
    KEY_NAME,    /* char *, matching [a-z0-9_.-]+ */
    KEY_ENUM,    /* char *, one of `choices` ("a|b|c") */
    KEY_INT,     /* int, within [min, max] */
    KEY_NUMBER,  /* double, within [min, max] */
    KEY_BOOL,    /* bool */
    KEY_STRINGS, /* struct strlist */
    KEY_NUMBERS, /* struct numlist, each within [min, max] */
    KEY_MAP,     /* struct strmap: a group of name = "value" */
    KEY_FILE,    /* char *: path (relative to the config file), must be readable */
    KEY_SECRET,  /* struct secret: file, not group/world readable, content loaded */
    KEY_SECRETS, /* struct secretlist: an array of KEY_SECRET files */
    KEY_PATH,    /* char *: path (relative to the config file), not checked here */
    KEY_LISTEN,  /* char *: "host:port" */
    KEY_URL,     /* char *: http:// or https:// URL */
    KEY_GROUP,   /* nested table `group`; its offsets count from this key's offset (0: the
                  * same struct; or a struct embedded there, e.g. legacy_auth) */
    KEY_ROUTES,  /* the inbound/outbound lists, parsed by config_load itself */
};

#define KEY_REQUIRED 0x1u
#define KEY_DIR_LISTED                                                                             \
    0x4u /* KEY_PATH: the sidecar also lists the directory (needs r, not just wx) */
#define KEY_GROUP_LINE                                                                             \
    0x2u /* KEY_GROUP whose struct begins with `int line`: set to the                              \
          * group's line in the file (0 when the group is absent) */

struct config_key {
    const char *name;
    enum key_type type;
    size_t offset; /* where the value lands in the struct the table describes */
    unsigned flags;
    const char *dflt;    /* default, written as it would be in the file */
    const char *choices; /* KEY_ENUM */
    double min, max;     /* KEY_INT, KEY_NUMBER, KEY_NUMBERS (both 0: unbounded) */
    const struct config_key *group;
    const char *doc; /* one line for the reference */
};

struct strlist {
    char **v;
    size_t n;
};

struct numlist {
    double *v;
    size_t n;
};

struct strmap {
    char **names;
    char **values;
    size_t n;
};

struct secret {
    char *path;
    char *value; /* file content without trailing newline; NULL when unset */
    size_t len;
    int line; /* where the file was named, for messages (0: unknown) */
};

struct secretlist {
    struct secret *v;
    size_t n;
};

/* Collected errors: each `file:line: message`. */
struct config_error {
    int line;
    char *msg;
};

struct config_report {
    const char *file;
    struct config_error *errors;
    size_t n;
    struct config_error *notes; /* advice that does not fail the load (a deprecated key) */
    size_t n_notes;
};

void config_report_add(struct config_report *rep, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void config_report_note(struct config_report *rep, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints the notes, then the errors, each `file:line: …` on stderr. */
void config_report_print(const struct config_report *rep);
void config_report_free(struct config_report *rep);

struct tls_config {
    char *ca;
    char *cert;
    struct secret key;
    bool verify;
};

/* `tls = { cert; key; client_ca; }` on a listener of ours (listen_tls.h). */
struct listen_tls_config {
    int line; /* of the tls group (KEY_GROUP_LINE); 0 when absent */
    char *cert;
    struct secret key;
    char *client_ca;
};

struct broker_config {
    char *url;
    struct strlist urls; /* url, or urls; filled either way */
    struct secret password;
    struct tls_config tls;
    int heartbeat;
    double connect_timeout;
    double confirm_timeout;
    int max_inflight;
    int max_message; /* bytes of body */
};

struct admin_config {
    char *listen;
    int max_connections;
    struct listen_tls_config tls;
    int line;              /* of the admin group, for messages */
    double queue_interval; /* seconds between passive declares of the owned queues */
};

/* otel = { … }: OpenTelemetry traces over OTLP/HTTP (otel.h); off without endpoint. */
struct otel_config {
    char *endpoint;     /* "http://127.0.0.1:4318": spans go to <endpoint>/v1/traces */
    char *service_name; /* NULL: the system's name */
    double sample_ratio;
};

/* Limits of every route listener (http and soap inbound); see httpd.h. */
struct http_listener_config {
    int max_connections;
    int max_connections_per_ip;
    double read_timeout;
    double idle_timeout;
};

/* The `spool` group of a route, or of the process (the routes' default). */
struct spool_config {
    int line;         /* of the group (KEY_GROUP_LINE); 0 when absent */
    char *dir;        /* NULL: no spool */
    double max_bytes; /* the journal's bound on disk */
    int max_message;  /* broker.max_message: the validating kind copies it here */
    bool create;      /* from the process's spool: dir is made at start */
};

struct sidecar_config {
    char *path; /* as given */
    char *dir;  /* its directory: relative paths resolve against it */
    char *name;
    struct broker_config broker;
    struct admin_config admin;
    struct http_listener_config http;
    struct otel_config otel;
    char *log_format;
    char *state_dir;
    double drain_timeout;
    struct spool_config spool; /* the default of the http and soap event routes */
    struct route **routes;
    size_t n_routes;
};

/* Loads and validates path. 0 when valid; else -1 with every problem in rep. */
int config_load(const char *path, struct sidecar_config *cfg, struct config_report *rep);
void config_free(struct sidecar_config *cfg); /* NULL entries in routes are skipped */
/* One route of a config and everything it owns (SIGHUP moves routes between configs). */
void config_route_free(struct route *r);

/* A key table and the struct it fills. */
struct key_table {
    const struct config_key *keys;
    void *base;
};

/* Fills each table's struct from the libconfig group `setting`. Keys no
 * table knows are errors. `where` names the group in messages ("broker",
 * "inbound route \"orders\""). Used for the process keys and for routes. */
struct config_setting_t;
void config_apply_tables(const struct key_table *tables, size_t n_tables,
                         struct config_setting_t *setting, const char *where,
                         const struct sidecar_config *cfg, struct config_report *rep);
void config_free_keys(const struct config_key *keys, void *base);

/* Secret values may be replaced by SIGHUP on the main thread; readers on
 * other threads hold this lock while they use one. */
void secrets_read_lock(void);
void secrets_read_unlock(void);

/* Re-reads every secret file (SIGHUP). 0, or -1 with errors in rep; old values stay on error. */
int config_reload_secrets(struct sidecar_config *cfg, struct config_report *rep);

/* Prints the reference of every key as Markdown (for `amqp-sidecar keys`). */
void config_print_reference(bool markdown);

/* path, or dir/path when path is relative. Caller frees. */
char *config_resolve_path(const char *dir, const char *path);

/* Splits "host:port"; host may be "[v6]". 0 or -1. */
int config_parse_listen(const char *listen, char *host, size_t hostlen, int *port);

extern const struct config_key config_process_keys[];

#endif
