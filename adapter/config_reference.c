/*
 * config_reference — the Markdown reference of every key (`amqp-sidecar keys`,
 * and from it the README's configuration reference), printed from the same
 * tables that validate the file: the process keys, the keys of every route and
 * of each direction, and each kind's own keys. A key documented here is a key
 * the loader accepts, with the default it fills.
 */
#include "config.h"

#include "route.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

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

static void print_keys(const struct config_key *keys, const char *prefix)
{
    for (const struct config_key *k = keys; k && k->name; k++) {
        if (k->type == KEY_GROUP) {
            char *sub = xasprintf("%s%s.", prefix, k->name);
            print_keys(k->group, sub);
            free(sub);
            continue;
        }
        printf("| `%s%s` | %s", prefix, k->name, type_label(k));
        if (k->choices) {
            printf(": ");
            for (const char *c = k->choices; *c; c++)
                printf(*c == '|' ? " \\| " : "%c", *c);
        }
        printf(" | %s | %s |\n",
               (k->flags & KEY_REQUIRED) ? "**required**" : (k->dflt && *k->dflt ? k->dflt : "–"),
               k->doc ? k->doc : "");
    }
}

static void print_table(const char *title, const struct config_key *keys)
{
    printf("\n#### %s\n\n| key | type | default | meaning |\n|---|---|---|---|\n", title);
    print_keys(keys, "");
}

void config_print_reference(void)
{
    print_table("Process", config_process_keys);
    print_table("Every route", route_common_keys);
    print_table("Every inbound route", route_inbound_keys);
    print_table("Every outbound route", route_outbound_keys);
    print_table("Every route that calls the legacy side (outbound http and soap, inbound poll)",
                route_rate_keys);
    for (const struct route_kind *const *k = route_kinds(); *k; k++) {
        char *title =
            xasprintf("%s `%s` — %s", (*k)->direction == ROUTE_INBOUND ? "Inbound" : "Outbound",
                      (*k)->name, (*k)->summary);
        print_table(title, (*k)->keys);
        free(title);
    }
}
