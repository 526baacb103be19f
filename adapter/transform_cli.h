#ifndef SIDECAR_TRANSFORM_CLI_H
#define SIDECAR_TRANSFORM_CLI_H

#include <stdio.h>

struct transform;

/* Applies t to the JSON document, or each JSON Lines record, read from in;
 * results to out, one per line; failures to errs, prefixed by label (the
 * transform's file) and the line. Returns 0, or 1 when anything failed. */
int transform_stream(struct transform *t, const char *label, FILE *in, FILE *out, FILE *errs);

#endif
