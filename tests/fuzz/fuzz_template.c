/*
 * fuzz_template.c — libFuzzer target for routing-key expansion of inbound
 * requests: transforms/template.c with adapter/inbound.c's {json.<path>}
 * lookup (inbound_json_placeholder, inbound_json_path).
 *
 * The first line of the input is the template, the rest the request body
 * (JSON or not). Besides memory errors it checks that a refusal, of
 * template_check (with only "json." allowed, as a route whose key uses only
 * the body) or of template_expand, says why. Templates the check refuses are
 * expanded too, for the memory checks only: a config never holds them, so
 * what they expand to is not asserted ("{json.}" gives the whole body when
 * that is a scalar). ASan checks that a value fits the lookup buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "inbound.h"
#include "template.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct body {
    json_t *root;
    char buf[256];
};

static const char *lookup(void *arg, const char *name, char *why, size_t whylen)
{
    struct body *b = arg;
    return inbound_json_placeholder(b->root, name, "the body is not JSON", b->buf, sizeof(b->buf),
                                    why, whylen);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    json_object_seed(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t tlen = (size_t)(nl - (const char *)data);
    char *tmpl = strndup((const char *)data, tlen);
    if (!tmpl || strlen(tmpl) != tlen) { /* a NUL inside: not a template a config can hold */
        free(tmpl);
        return 0;
    }
    struct body b = {
        .root = json_loadb(nl + 1, size - tlen - 1, JSON_DECODE_ANY, NULL),
    };
    char err[256] = "";
    char *key = template_expand(tmpl, lookup, &b, err, sizeof(err));
    char check_err[256] = "";
    static const char *const allowed[] = {"json.", NULL};
    int checked = template_check(tmpl, allowed, check_err, sizeof(check_err));
    if (!key && !err[0]) {
        fprintf(stderr, "property broken: template_expand failed without a reason\n");
        abort();
    }
    if (checked != 0 && !check_err[0]) {
        fprintf(stderr, "property broken: template_check failed without a reason\n");
        abort();
    }
    free(key);
    json_decref(b.root);
    free(tmpl);
    return 0;
}
