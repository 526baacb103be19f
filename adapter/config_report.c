/*
 * config_report — the errors a config load collects instead of stopping at.
 *
 * Every check adds one `file:line: what is wrong — how to fix it` line; `check`
 * and `run` print them all at once. Notes (a deprecated key) are printed the
 * same way but do not fail the load. The report caps itself at MAX_ERRORS so a
 * file of garbage cannot flood the terminal.
 */
#include "config.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_ERRORS 50

static void report_append(struct config_error **list, size_t *n, int line, const char *fmt,
                          va_list ap)
{
    if (*n >= MAX_ERRORS)
        return;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = xstrdup(fmt);
    *list = xrealloc(*list, (*n + 1) * sizeof(**list));
    (*list)[(*n)++] = (struct config_error){.line = line, .msg = msg};
}

void config_report_add(struct config_report *rep, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_append(&rep->errors, &rep->n, line, fmt, ap);
    va_end(ap);
}

void config_report_note(struct config_report *rep, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_append(&rep->notes, &rep->n_notes, line, fmt, ap);
    va_end(ap);
}

void config_report_print(const struct config_report *rep)
{
    for (size_t i = 0; i < rep->n_notes; i++) {
        if (rep->notes[i].line > 0)
            fprintf(stderr, "%s:%d: note: %s\n", rep->file, rep->notes[i].line, rep->notes[i].msg);
        else
            fprintf(stderr, "%s: note: %s\n", rep->file, rep->notes[i].msg);
    }
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
    for (size_t i = 0; i < rep->n_notes; i++)
        free(rep->notes[i].msg);
    free(rep->notes);
    rep->notes = NULL;
    rep->n_notes = 0;
}
