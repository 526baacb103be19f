/*
 * config_report — the errors a config load collects instead of stopping at.
 *
 * Every check adds one `file:line: what is wrong — how to fix it` line; `check`
 * and `run` print them all at once. The report caps itself at MAX_ERRORS so a
 * file of garbage cannot flood the terminal.
 */
#include "config.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_ERRORS 50

void config_report_add(struct config_report *rep, int line, const char *fmt, ...)
{
    if (rep->n >= MAX_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = xstrdup(fmt);
    va_end(ap);
    rep->errors = xrealloc(rep->errors, (rep->n + 1) * sizeof(*rep->errors));
    rep->errors[rep->n++] = (struct config_error){.line = line, .msg = msg};
}

void config_report_print(const struct config_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        if (rep->errors[i].line > 0)
            fprintf(stderr, "%s:%d: %s\n", rep->file, rep->errors[i].line, rep->errors[i].msg);
        else
            fprintf(stderr, "%s: %s\n", rep->file, rep->errors[i].msg);
    }
    if (rep->n >= MAX_ERRORS)
        fprintf(stderr, "%s: (stopped after %d errors)\n", rep->file, MAX_ERRORS);
}

void config_report_free(struct config_report *rep)
{
    for (size_t i = 0; i < rep->n; i++)
        free(rep->errors[i].msg);
    free(rep->errors);
    rep->errors = NULL;
    rep->n = 0;
}
