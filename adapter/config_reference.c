/*
 * config_reference — the reference of every key (`amqp-sidecar keys`: plain text;
 * `keys --markdown`: the tables of the README's configuration reference and man page), printed from
 * the same tables that validate the file: the process keys, the keys of every route and of each
 * direction, and each kind's own keys. A key documented here is a key the loader accepts, with the
 * default it fills.
 */
#include "config.h"

#include "route.h"
#include "util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_label(const struct config_key *k)
{
    switch (k->type) {
    case KEY_INT:
        return "integer";
    case KEY_NUMBER:
        return "number";
    case KEY_BOOL:
        return "bool";
    case KEY_STRINGS:
        return "[strings]";
    case KEY_NUMBERS:
        return "[numbers]";
    case KEY_MAP:
        return "{name = \"value\"}";
    case KEY_FILE:
        return "file";
    case KEY_SECRET:
        return "secret file";
    case KEY_SECRETS:
        return "[secret files]";
    case KEY_PATH:
        return "path";
    case KEY_LISTEN:
        return "host:port";
    case KEY_URL:
        return "URL";
    case KEY_ENUM:
        return "choice";
    case KEY_NAME:
        return "name";
    case KEY_ROUTES:
        return "( {route}, … )";
    default:
        return "string";
    }
}

/* The default column: "required", the default the loader fills, or "–". */
static const char *default_label(const struct config_key *k)
{
    if (k->flags & KEY_REQUIRED)
        return "required";
    return k->dflt && *k->dflt ? k->dflt : "–";
}

/* Markdown: one table row per key (the README and the man page are made from it). */
static void markdown_row(const char *prefix, const struct config_key *k)
{
    printf("| `%s%s` | %s", prefix, k->name, type_label(k));
    if (k->choices) {
        printf(": ");
        for (const char *c = k->choices; *c; c++)
            printf(*c == '|' ? " \\| " : "%c", *c);
    }
    const char *dflt = default_label(k);
    printf(" | %s%s%s | %s |\n", k->flags & KEY_REQUIRED ? "**" : "", dflt,
           k->flags & KEY_REQUIRED ? "**" : "", k->doc ? k->doc : "");
}

/* Words of TEXT wrapped to WIDTH columns, each line indented by INDENT. */
static void print_wrapped(const char *text, int indent, int width)
{
    int col = 0;
    while (*text) {
        while (*text == ' ')
            text++;
        int len = (int)strcspn(text, " ");
        if (len == 0)
            break;
        if (col > 0 && col + 1 + len > width) {
            putchar('\n');
            col = 0;
        }
        if (col == 0)
            col = printf("%*s%.*s", indent, "", len, text);
        else
            col += printf(" %.*s", len, text);
        text += len;
    }
    if (col > 0)
        putchar('\n');
}

/* Plain text: the key, its type and default on one line, the meaning wrapped below. */
static void text_row(const char *prefix, const struct config_key *k)
{
    char *key = xasprintf("%s%s", prefix, k->name);
    char *type =
        k->choices ? xasprintf("%s: %s", type_label(k), k->choices) : xstrdup(type_label(k));
    printf("  %-34s %-18s %s\n", key, type, default_label(k));
    if (k->doc && *k->doc)
        print_wrapped(k->doc, 6, 78);
    free(type);
    free(key);
}

static void print_keys(const struct config_key *keys, const char *prefix, bool markdown)
{
    for (const struct config_key *k = keys; k && k->name; k++) {
        if (k->type == KEY_GROUP) {
            char *sub = xasprintf("%s%s.", prefix, k->name);
            print_keys(k->group, sub, markdown);
            free(sub);
        } else if (markdown) {
            markdown_row(prefix, k);
        } else {
            text_row(prefix, k);
        }
    }
}

static void print_table(const char *title, const struct config_key *keys, bool markdown)
{
    if (markdown)
        printf("\n#### %s\n\n| key | type | default | meaning |\n|---|---|---|---|\n", title);
    else
        printf("\n%s\n  %-34s %-18s %s\n", title, "KEY", "TYPE", "DEFAULT");
    print_keys(keys, "", markdown);
}

void config_print_reference(bool markdown)
{
    print_table("Process", config_process_keys, markdown);
    print_table("Every route", route_common_keys, markdown);
    print_table("Every inbound route", route_inbound_keys, markdown);
    print_table("Every outbound route", route_outbound_keys, markdown);
    print_table("Every route that calls the legacy side (outbound http and soap, inbound poll)",
                route_rate_keys, markdown);
    print_table("Every inbound poll and file route (high availability)", route_lease_keys,
                markdown);
    for (const struct route_kind *const *k = route_kinds(); *k; k++) {
        const char *q = markdown ? "`" : "\"";
        char *title =
            xasprintf("%s %s%s%s — %s", (*k)->direction == ROUTE_INBOUND ? "Inbound" : "Outbound",
                      q, (*k)->name, q, (*k)->summary);
        print_table(title, (*k)->keys, markdown);
        free(title);
    }
}
