/*
 * config_secrets — KEY_SECRET (and KEY_SECRETS) values: files that hold a password or a private
 * key, loaded into the config after checking they are private to their owner.
 *
 * The key engine calls config_secret_load for each secret key at load time;
 * on SIGHUP the main thread calls config_reload_secrets to read them all again,
 * keeping the old value of any that fails. Listener threads read the values
 * meanwhile, so a value is replaced under the write side of the secrets lock
 * and readers hold its read side (secrets_read_lock). Values are wiped before
 * they are freed.
 */
#include "config.h"
#include "config_internal.h"

#include "route.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SECRET_MAX (64 * 1024)

/* The one process-wide lock outside struct sidecar: secret values are read by
 * listener threads and replaced by SIGHUP, and live in the config. */
static pthread_rwlock_t secrets_lock = PTHREAD_RWLOCK_INITIALIZER;

void secrets_read_lock(void)
{
    pthread_rwlock_rdlock(&secrets_lock);
}

void secrets_read_unlock(void)
{
    pthread_rwlock_unlock(&secrets_lock);
}

int config_secret_load(struct secret *sec, const char *path, int line, const char *where,
                       const char *key, struct config_report *rep)
{
    char *data = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        goto unreadable;
    if (!S_ISREG(st.st_mode)) {
        config_report_add(rep, line, "%s: %s: \"%s\" is not a regular file", where, key, path);
        goto fail;
    }
    if (st.st_mode & 077) {
        config_report_add(rep, line,
                          "%s: %s: secret file \"%s\" is readable by group or others (mode %04o); "
                          "run: chmod 600 %s",
                          where, key, path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        goto unreadable;
    data = xmalloc(SECRET_MAX + 1);
    size_t n = fread(data, 1, SECRET_MAX + 1, f);
    fclose(f);
    if (n > SECRET_MAX) {
        config_report_add(rep, line, "%s: %s: secret file \"%s\" is over %d bytes", where, key,
                          path, SECRET_MAX);
        goto fail;
    }
    data[n] = '\0';
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        data[--n] = '\0';
    if (n == 0) {
        config_report_add(rep, line, "%s: %s: secret file \"%s\" is empty", where, key, path);
        goto fail;
    }
    pthread_rwlock_wrlock(&secrets_lock);
    if (sec->value)
        memset(sec->value, 0, sec->len);
    free(sec->value);
    sec->value = data;
    sec->len = n;
    pthread_rwlock_unlock(&secrets_lock);
    return 0;

unreadable: /* errno is still stat's or fopen's */
    config_report_add(rep, line, "%s: %s: cannot read secret file \"%s\": %s", where, key, path,
                      strerror(errno));
fail:
    free(data);
    return -1;
}

void config_secret_free(struct secret *sec)
{
    free(sec->path);
    if (sec->value)
        memset(sec->value, 0, sec->len);
    free(sec->value);
    *sec = (struct secret){0};
}

/* Walks a table (and its groups) for secret keys and loads each again. */
static void reload_secrets_in(const struct config_key *keys, void *base, const char *where,
                              struct config_report *rep)
{
    for (const struct config_key *k = keys; k && k->name; k++) {
        if (k->type == KEY_GROUP) {
            reload_secrets_in(k->group, config_key_field(base, k), where, rep);
        } else if (k->type == KEY_SECRET) {
            struct secret *sec = config_key_field(base, k);
            if (sec->path)
                config_secret_load(sec, sec->path, 0, where, k->name, rep);
        } else if (k->type == KEY_SECRETS) {
            struct secretlist *l = config_key_field(base, k);
            for (size_t i = 0; i < l->n; i++)
                config_secret_load(&l->v[i], l->v[i].path, 0, where, k->name, rep);
        }
    }
}

int config_reload_secrets(struct sidecar_config *cfg, struct config_report *rep)
{
    size_t before = rep->n;
    reload_secrets_in(config_process_keys, cfg, "config", rep);
    for (size_t i = 0; i < cfg->n_routes; i++)
        reload_secrets_in(cfg->routes[i]->kind->keys, cfg->routes[i]->opts, cfg->routes[i]->name,
                          rep);
    return rep->n == before ? 0 : -1;
}
