/*
 * template — `{placeholder}` expansion for routing keys and file names.
 *
 * "order.{json.type}.{header.X-Region}" → "order.created.eu". The caller
 * resolves each placeholder name ("json.type", "header.X-Region", "path",
 * "operation", "message_id", …) through a callback; an unknown or missing
 * placeholder is an error naming it, never an empty string (a message routed
 * with a silently empty key would go somewhere unexpected). "{{" and "}}"
 * are literal braces.
 */
#ifndef SIDECAR_TEMPLATE_H
#define SIDECAR_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

/* Returns the value of `name` (borrowed until the next call), or NULL if it
 * has none; may fill why (e.g. "the body is not JSON"). */
typedef const char *(*template_lookup_fn)(void *arg, const char *name, char *why, size_t whylen);

/* The expansion (caller frees), or NULL with err. */
char *template_expand(const char *tmpl, template_lookup_fn lookup, void *arg, char *err,
                      size_t errlen);

/* Checks the syntax and that every placeholder's prefix is one of `allowed`
 * (NULL-terminated, e.g. {"json.", "header.", "path", NULL}; a name ending in
 * '.' matches as a prefix). 0, or -1 with err. For config validation. */
int template_check(const char *tmpl, const char *const *allowed, char *err, size_t errlen);

bool template_has_placeholders(const char *tmpl);

#endif
