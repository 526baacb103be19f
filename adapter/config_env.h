/*
 * config_env — environment variables in config strings, expanded at load.
 *
 * The grammar, in any string value a key table reads:
 *   ${NAME}           NAME's value; an error if NAME is unset
 *   ${NAME:-default}  NAME's value, or default if NAME is unset or empty
 *   ${NAME:?message}  NAME's value, or an error saying message if unset or empty
 *   $$                a literal $
 * NAME is [A-Za-z_][A-Za-z0-9_]*. A $ not followed by { or $ is literal, so jq
 * programs ($ENV, $x) and regexes keep working. The default and the message are
 * literal text up to the first }: nothing is expanded twice, a value is never
 * rescanned, so the work is linear in the input and the output.
 *
 * A pure function: variables come from a lookup callback, not getenv directly.
 */
#ifndef SIDECAR_CONFIG_ENV_H
#define SIDECAR_CONFIG_ENV_H

#include <stddef.h>

/* The longest expanded string. A config value is a URL, a path or a short list
 * item; 64 KiB is far past any of them and stops a huge variable from bloating
 * every copy of the config. */
#define CONFIG_ENV_MAX (64 * 1024)

/* Returns the value of variable name, or NULL if it is unset. The string is
 * borrowed and must stay valid until config_env_expand returns. */
typedef const char *config_env_lookup_fn(const char *name, void *arg);

/* Expands text. Returns a malloc'd string the caller frees, or NULL with what
 * is wrong and how to fix it in err (one line, no file:line: the caller knows
 * where text came from). Does not take ownership of text. */
char *config_env_expand(const char *text, config_env_lookup_fn *lookup, void *arg, char *err,
                        size_t err_len);

/* A lookup that reads the process environment (getenv); arg is unused. */
const char *config_env_getenv(const char *name, void *arg);

#endif
