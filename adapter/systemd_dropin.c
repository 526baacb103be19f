/*
 * systemd_dropin — see systemd_dropin.h. Each directive is printed once per
 * path, after a comment naming every key (file:line) that needs it. Paths
 * are written as systemd reads them: absolute, '%' doubled (specifiers), and
 * quoted when they hold white space, a quote or a backslash.
 */
#include "systemd_dropin.h"

#include "config.h"
#include "config_paths.h"
#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum directive { RW_PATHS, BIND_RW, BIND_RO, PRIVATE_TMP, READABLE, STATE_DIRECTORY, N_DIRECTIVES };

static const char *const directive_names[N_DIRECTIVES] = {
    "ReadWritePaths", "BindPaths", "BindReadOnlyPaths", NULL, NULL, NULL};

static bool below(const char *path, const char *top)
{
    size_t n = strlen(top);
    return strncmp(path, top, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static bool in_home(const char *path)
{
    return below(path, "/home") || below(path, "/root") || below(path, "/run/user");
}

static bool in_private_tmp(const char *path)
{
    return below(path, "/tmp") || below(path, "/var/tmp");
}

/* "crm" for /etc/amqp-sidecar/crm.conf: amqp-sidecar@crm runs that file. Caller frees. */
static char *instance_of(const char *config_path)
{
    const char *slash = strrchr(config_path, '/');
    char *name = xstrdup(slash ? slash + 1 : config_path);
    size_t n = strlen(name);
    if (n > 5 && strcmp(name + n - 5, ".conf") == 0)
        name[n - 5] = '\0';
    return name;
}

static char *absolute(const char *path)
{
    if (path[0] == '/')
        return xstrdup(path);
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return xstrdup(path);
    return xasprintf("%s/%s", cwd, strncmp(path, "./", 2) == 0 ? path + 2 : path);
}

/* path as a systemd unit file value (see the header comment). */
static void put_path(struct buf *b, const char *path)
{
    bool quote = strpbrk(path, " \t\"'\\") != NULL;
    if (quote)
        buf_printf(b, "\"");
    for (const char *p = path; *p; p++) {
        if (*p == '%')
            buf_printf(b, "%%%%");
        else if (quote && (*p == '"' || *p == '\\'))
            buf_printf(b, "\\%c", *p);
        else
            buf_printf(b, "%c", *p);
    }
    if (quote)
        buf_printf(b, "\"");
}

struct entry {
    enum directive d;
    char *path;
    struct buf why; /* "# key (file:line)" lines */
};

static enum directive directive_for(const struct config_path *p, const char *path,
                                    const char *state_directory)
{
    if (p->use == CONFIG_PATH_WRITE_DIR && strcmp(path, state_directory) == 0)
        return STATE_DIRECTORY;
    if (in_private_tmp(path))
        return PRIVATE_TMP;
    if (in_home(path))
        return p->use == CONFIG_PATH_WRITE_DIR ? BIND_RW : BIND_RO;
    return p->use == CONFIG_PATH_WRITE_DIR ? RW_PATHS : READABLE;
}

/* A writable path inside another one of the same directive is covered by it
 * (bind mounts are recursive): its keys go to the outer one's comment. */
static void fold_nested(struct entry *e, size_t *n)
{
    for (size_t j = 0; j < *n;) {
        size_t outer = 0;
        while (outer < *n &&
               !(outer != j && e[outer].d == e[j].d && (e[j].d == RW_PATHS || e[j].d == BIND_RW) &&
                 below(e[j].path, e[outer].path)))
            outer++;
        if (outer == *n) {
            j++;
            continue;
        }
        buf_append(&e[outer].why, e[j].why.data, e[j].why.len);
        free(e[j].path);
        buf_free(&e[j].why);
        memmove(&e[j], &e[j + 1], (*n - j - 1) * sizeof(*e));
        (*n)--;
    }
}

int systemd_dropin_print(const struct sidecar_config *cfg, FILE *out)
{
    struct config_paths paths;
    char err[512];
    if (config_paths_collect(cfg, &paths, err, sizeof(err)) != 0) {
        fprintf(stderr, "amqp-sidecar: %s\n", err);
        return 1;
    }
    char *instance = instance_of(cfg->path);
    char *config = absolute(cfg->path);
    char *state_directory = xasprintf("/var/lib/amqp-sidecar/%s", instance);
    struct entry *e = xcalloc(paths.n ? paths.n : 1, sizeof(*e));
    size_t n = 0;
    bool home = false;
    for (size_t i = 0; i < paths.n; i++) {
        const struct config_path *p = &paths.v[i];
        char *path = absolute(p->path);
        enum directive d = directive_for(p, path, state_directory);
        home = home || d == BIND_RW || d == BIND_RO;
        size_t j = 0;
        while (j < n && !(e[j].d == d && strcmp(e[j].path, path) == 0))
            j++;
        if (j == n)
            e[n++] = (struct entry){.d = d, .path = path};
        else
            free(path);
        if (p->line)
            buf_printf(&e[j].why, "# %s (%s:%d)\n", p->key, cfg->path, p->line);
        else
            buf_printf(&e[j].why, "# %s (the default)\n", p->key);
    }

    fold_nested(e, &n);

    fprintf(out,
            "# amqp-sidecar@%s: the paths the routes of\n"
            "#   %s\n"
            "# need under the unit's hardening (ProtectSystem=strict: all else is read-only).\n"
            "# Made by `amqp-sidecar systemd-dropin -c %s`. Install it with\n"
            "#   mkdir -p /etc/systemd/system/amqp-sidecar@%s.service.d\n"
            "#   amqp-sidecar systemd-dropin -c %s \\\n"
            "#     > /etc/systemd/system/amqp-sidecar@%s.service.d/paths.conf\n"
            "#   systemctl daemon-reload && systemctl restart amqp-sidecar@%s\n"
            "# and make it again when a file route's directory changes. Check access with\n"
            "#   amqp-sidecar check -c %s --user amqp-sidecar\n"
            "[Service]\n",
            instance, config, config, instance, config, instance, instance, config);
    if (home)
        fprintf(out,
                "# Paths under /home, /root or /run/user: a tmpfs there, with only them bound in.\n"
                "ProtectHome=tmpfs\n");
    struct buf lines = {0};
    for (enum directive d = 0; d < N_DIRECTIVES; d++) {
        for (size_t j = 0; j < n; j++) {
            if (e[j].d != d)
                continue;
            buf_append(&lines, e[j].why.data, e[j].why.len);
            if (directive_names[d]) {
                buf_printf(&lines, "%s=", directive_names[d]);
                put_path(&lines, e[j].path);
                buf_printf(&lines, "\n");
            } else if (d == STATE_DIRECTORY) {
                buf_printf(&lines, "#   %s is the unit's StateDirectory=: writable already\n",
                           e[j].path);
            } else if (d == READABLE) {
                buf_printf(&lines, "#   %s: only read, readable as it is\n", e[j].path);
            } else {
                buf_printf(&lines,
                           "# WARNING: %s is in /tmp or /var/tmp, which the unit makes private "
                           "(PrivateTmp=yes): the service would not see the host's; move it "
                           "elsewhere (e.g. /var/spool/%s)\n",
                           e[j].path, instance);
                fprintf(stderr,
                        "amqp-sidecar: warning: %s is in the unit's private /tmp (PrivateTmp=yes): "
                        "the service would not see it; move it (e.g. to /var/spool/%s)\n",
                        e[j].path, instance);
            }
        }
    }
    if (lines.len)
        fwrite(lines.data, 1, lines.len, out);
    if (n == 0)
        fprintf(out, "# (no file routes, state or files to read: nothing to add)\n");
    buf_free(&lines);
    for (size_t j = 0; j < n; j++) {
        free(e[j].path);
        buf_free(&e[j].why);
    }
    free(e);
    free(state_directory);
    free(config);
    free(instance);
    config_paths_free(&paths);
    return 0;
}
