/*
 * config_internal — what the config_*.c files share and nothing else includes.
 *
 * config.c (the schema and the load), config_keys.c (the key-table engine) and
 * config_secrets.c (secret files) are one module split by concept; the rest of
 * the daemon sees only config.h.
 */
#ifndef SIDECAR_CONFIG_INTERNAL_H
#define SIDECAR_CONFIG_INTERNAL_H

#include "config.h"

#include <libconfig.h>

/* The line of a setting in the config file; 0 for NULL (a key that is absent). */
static inline int config_line_of(const config_setting_t *s)
{
    return s ? (int)config_setting_source_line(s) : 0;
}

/* Where key k's value lives in the struct at base. */
static inline void *config_key_field(void *base, const struct config_key *k)
{
    return (char *)base + k->offset;
}

/* Reads the secret file at path into sec->value after checking it is a regular
 * file, private to its owner, neither empty nor over 64 KiB. The old value is
 * wiped and replaced under the secrets lock. sec->path is the caller's to set.
 * 0, or -1 with the problem in rep (named by where, key and line) and the old
 * value kept. */
int config_secret_load(struct secret *sec, const char *path, int line, const char *where,
                       const char *key, struct config_report *rep);

/* Wipes and frees sec's value, frees its path, and zeroes it. */
void config_secret_free(struct secret *sec);

/* Writes to out a likely cause of the syntax error libconfig reported for the
 * file at path (an unbalanced quote or bracket, else a missing ","). */
void config_syntax_hint(const char *path, char *out, size_t size);

#endif
