/*
 * config_syntax — a likely cause for a libconfig syntax error.
 *
 * libconfig 1.5 says only "syntax error" and the line where the parser gave
 * up, which is often after the mistake. config_syntax_hint re-reads the file
 * and looks for the usual culprits in order: a line whose double quotes do not
 * pair up, brackets { } ( ) [ ] that do not balance, else the commonest slip,
 * a missing "," between the elements of a list or array (a ";" after a setting
 * is optional in libconfig, so a missing one is never the error). It is a
 * heuristic and the message says "likely".
 */
#include "config_internal.h"

#include <stdio.h>
#include <string.h>

/* Counts brackets outside strings and comments; sets *odd_quote_line to the
 * first line (1-based) whose quotes do not pair up, 0 if none. */
static void scan(FILE *f, int *odd_quote_line, int open[3], int close[3])
{
    static const char opens[] = "{([", closes[] = "})]";
    char line[4096];
    int n = 0;
    bool in_block_comment = false;
    *odd_quote_line = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        bool in_string = false;
        for (char *p = line; *p && *p != '\n'; p++) {
            if (in_block_comment) {
                if (p[0] == '*' && p[1] == '/') {
                    in_block_comment = false;
                    p++;
                }
            } else if (in_string) {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                else if (*p == '"')
                    in_string = false;
            } else if (*p == '"') {
                in_string = true;
            } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
                break;
            } else if (p[0] == '/' && p[1] == '*') {
                in_block_comment = true;
                p++;
            } else if (strchr(opens, *p)) {
                open[strchr(opens, *p) - opens]++;
            } else if (strchr(closes, *p)) {
                close[strchr(closes, *p) - closes]++;
            }
        }
        if (in_string && *odd_quote_line == 0)
            *odd_quote_line = n;
    }
}

void config_syntax_hint(const char *path, char *out, size_t size)
{
    static const char opens[] = "{([", closes[] = "})]";
    FILE *f = fopen(path, "r");
    int quote_line = 0, open[3] = {0}, close[3] = {0};
    if (f != NULL) {
        scan(f, &quote_line, open, close);
        fclose(f);
    }
    if (quote_line > 0) {
        snprintf(out, size,
                 "likely an unbalanced quote: line %d opens a \"string\" it does not close",
                 quote_line);
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (open[i] != close[i]) {
            snprintf(out, size,
                     "likely unbalanced { } or ( ): %d \"%c\" but %d \"%c\" in the file; close "
                     "each group { … }, list ( … ) and array [ … ] you open",
                     open[i], opens[i], close[i], closes[i]);
            return;
        }
    }
    snprintf(out, size,
             "likely a missing \",\" between elements of an array [ … ] or between routes in "
             "a list ( … ), or a missing value after \"=\", on or before this line");
}
