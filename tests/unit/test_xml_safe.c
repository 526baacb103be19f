/*
 * test_xml_safe.c — the limits of transforms/xml_safe.c and xml_prescan.c:
 * attributes and namespace declarations per element, in scope and per
 * document; the encodings the pre-scan can read; inputs crafted to slip past
 * a byte count or past the parser's own checks; and the namespaces
 * xml_ns_inherited gives a standalone copy of an element.
 *
 * Each hostile input is about 1 MiB, checked on its exact refusal and on CPU
 * time with a generous bound (2 s; the checks take milliseconds even under
 * ASan): before these limits each of them cost seconds of CPU in libxml2's
 * pairwise attribute checks or in our namespace walk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <libxml/parser.h>

#include "soap_envelope.h"
#include "xml_safe.h"

#define S11     "http://schemas.xmlsoap.org/soap/envelope/"
#define MIB     ((size_t)1 << 20)
#define CPU_MAX 2.0 /* seconds: generous, see above */

/* ---- helpers ------------------------------------------------------------- */

struct text {
    char *s;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* Replaces t's text with n raw bytes (which may hold NULs). */
static void set_bytes(struct text *t, const char *bytes, size_t n)
{
    t->len = 0;
    add(t, "%*s", (int)n, "");
    memcpy(t->s, bytes, n);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xml_parse_safe with lim; NULL (and the message in err) or the document. */
static xmlDocPtr parse(const char *xml, size_t len, const struct xml_limits *lim, char *err,
                       size_t errlen, double *cpu)
{
    double t0 = cpu_now();
    err[0] = '\0';
    xmlDocPtr doc = xml_parse_safe(xml, len, lim, err, errlen);
    *cpu = cpu_now() - t0;
    return doc;
}

/* Expects xml refused with exactly `want`, within CPU_MAX. */
static void expect_refused(const struct text *t, const struct xml_limits *lim, const char *want)
{
    char err[512];
    double cpu;
    xmlDocPtr doc = parse(t->s, t->len, lim, err, sizeof(err), &cpu);
    if (doc) {
        xmlFreeDoc(doc);
        fail_msg("accepted (%.3f s CPU, %zu bytes): %.80s", cpu, t->len, t->s);
    }
    if (strcmp(err, want) != 0)
        fail_msg("want: %s\ngot:  %s", want, err);
    if (cpu > CPU_MAX)
        fail_msg("refusal took %.3f s of CPU", cpu);
}

/* The 1-based column of the first `needle` in a one-line document (after
 * `after`, when given). */
static long column_of(const struct text *t, const char *needle, const char *after)
{
    const char *from = after ? strstr(t->s, after) : t->s;
    assert_non_null(from);
    const char *at = strstr(from, needle);
    assert_non_null(at);
    return (long)(at - t->s) + 1;
}

/* expect_refused with "line 1, column <column of needle>: <what>". */
static void expect_refused_at(const struct text *t, const struct xml_limits *lim,
                              const char *needle, const char *after, const char *what)
{
    char want[512];
    snprintf(want, sizeof(want), "line 1, column %ld: %s", column_of(t, needle, after), what);
    expect_refused(t, lim, want);
}

static xmlDocPtr expect_accepted(const struct text *t, const struct xml_limits *lim)
{
    char err[512];
    double cpu;
    xmlDocPtr doc = parse(t->s, t->len, lim, err, sizeof(err), &cpu);
    if (!doc)
        fail_msg("refused: %s", err);
    if (cpu > CPU_MAX)
        fail_msg("parse took %.3f s of CPU", cpu);
    return doc;
}

/* "<s:Envelope xmlns:s=… [envelope_extra]><s:Body>[body]</s:Body></s:Envelope>" */
static void envelope_open(struct text *t)
{
    add(t, "<s:Envelope xmlns:s=\"" S11 "\"");
}

static void envelope_close(struct text *t)
{
    add(t, "</s:Body></s:Envelope>");
}

/* The soap inbound route's limits at its defaults (max_body = 1 MiB). */
static const struct xml_limits soap_in_limits = {.max_bytes = MIB, .max_depth = 128};

/* ---- the two envelopes of the review ------------------------------------- */

static void test_60000_namespace_declarations_refused(void **state)
{
    struct text t = {0};
    envelope_open(&t);
    for (int i = 0; i < 60000; i++)
        add(&t, " xmlns:p%d=\"u\"", i);
    add(&t, "><s:Body><op xmlns=\"urn:x\"><v>1</v></op>");
    envelope_close(&t);
    assert_true(t.len > 1000000 && t.len <= MIB);
    expect_refused(&t, &soap_in_limits,
                   "line 1, column 1: start tag <s:Envelope> declares more than 128 namespaces, "
                   "the limit per element");

    /* and through the SOAP entry point, as soap_in calls it */
    struct soap_request req;
    char err[512];
    double t0 = cpu_now();
    assert_int_equal(
        soap_request_parse(t.s, t.len, "text/xml", &soap_in_limits, &req, err, sizeof(err)),
        SOAP_ERR_MALFORMED);
    assert_true(cpu_now() - t0 < CPU_MAX);
    assert_non_null(strstr(err, "more than 128 namespaces"));
    free(t.s);
}

static void test_60000_attributes_refused(void **state)
{
    struct text t = {0};
    envelope_open(&t);
    add(&t, "><s:Body><op");
    for (int i = 0; i < 60000; i++)
        add(&t, " a%d=\"\"", i);
    add(&t, "/>");
    envelope_close(&t);
    assert_true(t.len <= MIB);
    expect_refused_at(&t, &soap_in_limits, "<op", NULL,
                      "start tag <op> has more than 256 attributes, the limit per element");
    free(t.s);
}

/* ---- each limit, just under and just over ---------------------------------- */

static void test_at_the_limits_accepted(void **state)
{
    /* 64 declarations on the Envelope (s and 63 more), 64 on the operation
     * (128 in scope), 256 attributes besides them */
    struct text t = {0};
    envelope_open(&t);
    for (int i = 1; i < 64; i++)
        add(&t, " xmlns:e%d=\"urn:e%d\"", i, i);
    add(&t, "><s:Body><op");
    for (int i = 0; i < 64; i++)
        add(&t, " xmlns:o%d=\"urn:o%d\"", i, i);
    for (int i = 0; i < 255; i++)
        add(&t, " a%d=\"%d\"", i, i);
    add(&t, " t=\"e7:T\"><e1:v/></op>"); /* the 256th */
    envelope_close(&t);
    xmlDocPtr doc = expect_accepted(&t, &soap_in_limits);
    /* the operation as standalone XML keeps what it uses from the Envelope */
    xmlNodePtr op = xmlDocGetRootElement(doc)->children->children;
    char *xml = xml_node_serialize(op, NULL);
    assert_non_null(xml);
    assert_non_null(strstr(xml, "xmlns:e1=\"urn:e1\""));
    assert_non_null(strstr(xml, "xmlns:e7=\"urn:e7\""));
    assert_null(strstr(xml, "xmlns:e2="));
    assert_null(strstr(xml, "xmlns:s="));
    free(xml);
    xmlFreeDoc(doc);
    free(t.s);
}

static void test_one_over_each_limit_refused(void **state)
{
    struct text t = {0};
    add(&t, "<r");
    for (int i = 0; i < 129; i++)
        add(&t, i % 2 ? " xmlns:p%d = 'u'" : "\n xmlns:p%d=\"u\"", i);
    add(&t, "/>");
    expect_refused(&t, NULL,
                   "line 1, column 1: start tag <r> declares more than 128 namespaces, the limit "
                   "per element");

    t.len = 0;
    add(&t, "<a>\n  <b");
    for (int i = 0; i < 257; i++)
        add(&t, " x:a%d=\"%d\"", i, i);
    add(&t, " xmlns:x=\"urn:x\"/></a>");
    expect_refused(&t, NULL,
                   "line 2, column 3: start tag <b> has more than 256 attributes, the limit "
                   "per element");

    /* 64 + 64 in scope, then one more on a child of the second */
    t.len = 0;
    add(&t, "<a");
    for (int i = 0; i < 64; i++)
        add(&t, " xmlns:a%d=\"u\"", i);
    add(&t, "><b");
    for (int i = 0; i < 64; i++)
        add(&t, " xmlns:b%d=\"u\"", i);
    add(&t, "><c/><d xmlns:d=\"u\"/></b></a>");
    expect_refused_at(&t, NULL, "/>", "<d ",
                      "element <d> has more than 128 namespace declarations in scope (on it and "
                      "its ancestors), the limit");

    /* the same count spread over siblings is fine: they are not in each other's scope */
    t.len = 0;
    add(&t, "<a>");
    for (int i = 0; i < 1000; i++)
        add(&t, "<b xmlns:p=\"u%d\" xmlns=\"v\"/>", i);
    add(&t, "</a>");
    xmlFreeDoc(expect_accepted(&t, NULL));

    /* but a document has only so many: 10 000 per MiB of its size limit */
    t.len = 0;
    add(&t, "<a>");
    for (int i = 0; i < 10001; i++)
        add(&t, i < 10000 ? "<b xmlns:p=\"u\"/>" : "<c xmlns:p=\"u\"/>");
    add(&t, "</a>");
    expect_refused_at(&t, &soap_in_limits, "/>", "<c ",
                      "document has more than 10000 namespace declarations, the limit for its "
                      "size");
    struct xml_limits two_mib = {.max_bytes = 2 * MIB};
    xmlFreeDoc(expect_accepted(&t, &two_mib));

    /* and 100 000 attributes per MiB */
    t.len = 0;
    add(&t, "<a>");
    for (int e = 0; e < 401; e++) {
        add(&t, e < 400 ? "<b" : "<c"); /* the 400th brings 100 000, the 401st is over */
        for (int i = 0; i < 250; i++)
            add(&t, " a%d=''", i);
        add(&t, "/>");
    }
    add(&t, "</a>");
    assert_true(t.len <= MIB);
    expect_refused_at(&t, &soap_in_limits, "/>", "<c ",
                      "document has more than 100000 attributes, the limit for its size");
    struct xml_limits custom = {.max_bytes = MIB, .max_attributes_total = 200000};
    xmlFreeDoc(expect_accepted(&t, &custom));
    free(t.s);
}

/* ---- what might fool a byte count ------------------------------------------- */

static void test_prescan_reads_values_comments_and_cdata(void **state)
{
    /* '=' in values, text, comments and CDATA is not an attribute */
    struct text t = {0};
    add(&t, "<r");
    for (int i = 0; i < 256; i++)
        add(&t, i % 2 ? " a%d='x=y=z'" : " a%d=\"==\"", i);
    add(&t, ">");
    for (int i = 0; i < 2000; i++)
        add(&t, "k=v ");
    add(&t, "<!-- ");
    for (int i = 0; i < 2000; i++)
        add(&t, "k=v ");
    add(&t, "--><![CDATA[");
    for (int i = 0; i < 2000; i++)
        add(&t, "k=v ");
    add(&t, "]]></r>");
    xmlFreeDoc(expect_accepted(&t, NULL));

    /* a '>' inside a value does not end the tag */
    t.len = 0;
    add(&t, "<r");
    for (int i = 0; i < 257; i++)
        add(&t, " a%d=\">\"", i);
    add(&t, "/>");
    expect_refused(&t, NULL,
                   "line 1, column 1: start tag <r> has more than 256 attributes, the limit per "
                   "element");

    /* a '<' inside a value starts what libxml2 reads as the next tag */
    t.len = 0;
    add(&t, "<r a=\"<x");
    for (int i = 0; i < 257; i++)
        add(&t, " b%d=''", i);
    add(&t, "/>\"/>");
    expect_refused(&t, NULL,
                   "line 1, column 7: start tag <x> has more than 256 attributes, the limit per "
                   "element");

    /* a comment that libxml2 would end early (at U+FFFE, or a control
     * character) is not skipped past that point */
    const char *breaks[] = {"\xEF\xBF\xBE", "\x01"};
    for (size_t b = 0; b < 2; b++) {
        t.len = 0;
        add(&t, "<r><!-- %s <x", breaks[b]);
        for (int i = 0; i < 257; i++)
            add(&t, " b%d=''", i);
        add(&t, "/> --></r>");
        expect_refused_at(&t, NULL, "<x", NULL,
                          "start tag <x> has more than 256 attributes, the limit per element");
    }
    free(t.s);
}

/* ---- encodings ----------------------------------------------------------------- */

/* text as UTF-16 (ASCII only), with a BOM when bom. */
static void utf16(const struct text *in, bool little_endian, bool bom, struct text *out)
{
    out->len = 0;
    if (bom)
        add(out, "%s", little_endian ? "\xFF\xFE" : "\xFE\xFF");
    for (size_t i = 0; i < in->len; i++) {
        if (out->len + 3 > out->cap) {
            out->cap = (out->len + 3) * 2;
            out->s = realloc(out->s, out->cap);
        }
        out->s[out->len++] = little_endian ? in->s[i] : '\0';
        out->s[out->len++] = little_endian ? '\0' : in->s[i];
    }
}

static void test_encodings(void **state)
{
    struct text ascii = {0}, wide = {0};
    add(&ascii, "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<s:Envelope xmlns:s=\"" S11
                "\"><s:Body><op a=\"1\"/></s:Body></s:Envelope>");
    for (int le = 0; le < 2; le++) {
        for (int bom = 0; bom < 2; bom++) {
            utf16(&ascii, le, bom, &wide);
            xmlDocPtr doc = expect_accepted(&wide, NULL);
            assert_string_equal((const char *)xmlDocGetRootElement(doc)->name, "Envelope");
            xmlFreeDoc(doc);
        }
    }
    /* counted in UTF-16 too */
    ascii.len = 0;
    add(&ascii, "<r");
    for (int i = 0; i < 257; i++)
        add(&ascii, " a%d=''", i);
    add(&ascii, "/>");
    utf16(&ascii, true, true, &wide);
    expect_refused(&wide, NULL,
                   "line 1, column 2: start tag <r> has more than 256 attributes, the limit per "
                   "element");
    /* a declaration may not switch a UTF-16 document to bytes the count cannot read */
    ascii.len = 0;
    add(&ascii, "<?xml version='1.0' encoding='ISO-8859-1'?><r/>");
    utf16(&ascii, true, true, &wide);
    expect_refused(&wide, NULL,
                   "line 1, column 22: encoding \"ISO-8859-1\" is not accepted in a UTF-16 "
                   "document: use UTF-8 or UTF-16 (or an ASCII-compatible encoding such as "
                   "ISO-8859-1)");
    ascii.len = 0;
    add(&ascii, "<?xml version='1.0' encoding='UTF-16BE'?><r/>");
    utf16(&ascii, true, false, &wide);
    expect_refused(&wide, NULL,
                   "line 1, column 21: encoding \"UTF-16BE\" is not accepted in a UTF-16 "
                   "document: use UTF-8 or UTF-16 (or an ASCII-compatible encoding such as "
                   "ISO-8859-1)");
    utf16(&ascii, false, false, &wide);
    xmlFreeDoc(expect_accepted(&wide, NULL));

    /* byte documents: ASCII-compatible encodings are read, others refused */
    const char *names[] = {"UTF-32", "UTF-16LE", "ISO-2022-JP", "UTF-7", "IBM037", "UCS-2"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ascii.len = 0;
        add(&ascii, "<?xml version=\"1.0\"\n   encoding=\"%s\"?><r/>", names[i]);
        char want[256];
        snprintf(want, sizeof(want),
                 "line 2, column 4: encoding \"%s\" is not accepted: use UTF-8 or UTF-16 (or an "
                 "ASCII-compatible encoding such as ISO-8859-1)",
                 names[i]);
        expect_refused(&ascii, NULL, want);
    }
    /* also an "encoding" libxml2 would only find by recovering from an error */
    ascii.len = 0;
    add(&ascii, "<?xml version=\"encoding\" encoding='UTF-7'?><r/>");
    expect_refused(&ascii, NULL,
                   "line 1, column 26: encoding \"UTF-7\" is not accepted: use UTF-8 or UTF-16 "
                   "(or an ASCII-compatible encoding such as ISO-8859-1)");
    const char *fine[] = {"ISO-8859-1", "windows-1252", "Shift_JIS", "EUC-JP", "us-ascii"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        ascii.len = 0;
        add(&ascii, "<?xml version=\"1.0\" encoding=\"%s\"?><r a=\"1\">x</r>", fine[i]);
        xmlFreeDoc(expect_accepted(&ascii, NULL));
    }
    set_bytes(&ascii, "\x00\x00\x00<\x00\x00\x00r\x00\x00\x00/\x00\x00\x00>", 16);
    expect_refused(&ascii, NULL,
                   "line 1, column 1: documents in ISO-10646-UCS-4 are not accepted: use UTF-8 "
                   "or UTF-16");
    set_bytes(&ascii, "\x4C\x6F\xA7\x94\x93\x40", 6);
    expect_refused(&ascii, NULL,
                   "line 1, column 1: documents in EBCDIC are not accepted: use UTF-8 or UTF-16");
    free(ascii.s);
    free(wide.s);
}

/* ---- the parser must not read on after an error --------------------------------- */

/* After a first error libxml2's pull parser went on with SAX turned off: the
 * hook that refuses a DTD was skipped, ATTLIST defaults gave an element
 * 120 000 attributes (2 MiB), and they were compared pairwise (10 s). */
static void test_dtd_after_an_earlier_error(void **state)
{
    struct text t = {0};
    add(&t, "<?xml version='1.0'standalone='yes'?><!DOCTYPE a [<!ATTLIST a");
    for (int i = 0; i < 120000; i++)
        add(&t, " x%d CDATA 'v'", i);
    add(&t, ">]><a/>");
    expect_refused(&t, NULL, "line 1, column 20: Blank needed here");
    free(t.s);
}

/* Likewise with no DTD: after an error, 16 000 declarations in scope made
 * each prefixed name of a 10 MiB document a long lookup (7 s), and the
 * in-scope limit (a SAX callback) no longer ran. */
static void test_no_lookups_after_an_error(void **state)
{
    struct text t = {0};
    add(&t, "<r xmlns:q='u'><x a='1'b='2'/>");
    for (int d = 0; d < 250; d++) {
        add(&t, "<e");
        for (int i = 0; i < 64; i++)
            add(&t, " xmlns:p%d='u'", i);
        add(&t, ">");
    }
    while (t.len < XML_SAFE_DEFAULT_MAX_BYTES - 2000)
        add(&t, "<q:x/>");
    for (int d = 0; d < 250; d++)
        add(&t, "</e>");
    add(&t, "</r>");
    expect_refused(&t, NULL, "line 1, column 24: attributes construct error");
    free(t.s);
}

/* ---- the namespaces a standalone copy needs ------------------------------------- */

static void test_inherited_namespaces(void **state)
{
    const char *xml = "<r xmlns=\"urn:d\" xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" xmlns:c=\"urn:c\" "
                      "xmlns:u=\"urn:u\" xmlns:w=\"urn:w\">"
                      "<m xmlns:b=\"urn:b2\" xmlns:q=\"urn:q\" xmlns:z=\"urn:z\">"
                      "<op xmlns:c=\"urn:c2\" t=\" a:x \" b:k=\"1\" n=\"w:1x\">"
                      "<d>q:name</d><e>c:v</e><f>z: not a qname</f></op></m></r>";
    char err[256];
    xmlDocPtr doc = xml_parse_safe(xml, strlen(xml), NULL, err, sizeof(err));
    assert_non_null(doc);
    xmlNodePtr op = xmlDocGetRootElement(doc)->children->children;
    assert_string_equal((const char *)op->name, "op");
    xmlNsPtr *ns;
    size_t n;
    assert_int_equal(xml_ns_inherited(op, &ns, &n), 0);
    /* closest first: m's b (not r's), q; then r's default and a. Not c (op
     * declares its own), u (unused), w ("1x" is no NCName), z (text with a
     * space after the colon) */
    const char *want[][2] = {{"b", "urn:b2"}, {"q", "urn:q"}, {NULL, "urn:d"}, {"a", "urn:a"}};
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        if (want[i][0])
            assert_string_equal((const char *)ns[i]->prefix, want[i][0]);
        else
            assert_null(ns[i]->prefix);
        assert_string_equal((const char *)ns[i]->href, want[i][1]);
    }
    free(ns);
    /* the root inherits nothing; an element using nothing inherited neither */
    assert_int_equal(xml_ns_inherited(xmlDocGetRootElement(doc), &ns, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ns);
    xmlFreeDoc(doc);
}

/* A caller may raise the limits (a trusted WSDL does): the walk behind
 * xml_node_serialize and xmljson_from_node must be linear on its own. It was
 * a walk of the subtree per declaration in scope, after xmlGetNsList's
 * pairwise checks: 5 s for these 60 000 declarations. */
static void test_inherited_walk_is_linear(void **state)
{
    struct text t = {0};
    envelope_open(&t);
    for (int i = 0; i < 60000; i++)
        add(&t, " xmlns:p%d=\"u\"", i);
    add(&t, "><s:Body><op xmlns=\"urn:x\" t=\"p59999:T\"><v>p7:q</v></op>");
    envelope_close(&t);
    struct xml_limits raised = {.max_bytes = MIB,
                                .max_namespaces = 100000,
                                .max_ns_in_scope = 100000,
                                .max_namespaces_total = 100000};
    xmlDocPtr doc = expect_accepted(&t, &raised);
    xmlNodePtr op = xmlDocGetRootElement(doc)->children->children;
    double t0 = cpu_now();
    size_t len;
    char *xml = xml_node_serialize(op, &len);
    double took = cpu_now() - t0;
    assert_non_null(xml);
    assert_string_equal(xml, "<op xmlns=\"urn:x\" xmlns:p7=\"u\" xmlns:p59999=\"u\" "
                             "t=\"p59999:T\"><v>p7:q</v></op>");
    if (took > CPU_MAX)
        fail_msg("serializing took %.3f s of CPU", took);
    free(xml);
    xmlFreeDoc(doc);
    free(t.s);
}

/* What we make from an accepted element is accepted again: its standalone
 * copy declares its own namespaces plus the inherited ones it uses, up to all
 * 128 in scope, on one element (soap in publishes that; soap out parses it). */
static void test_standalone_copy_parses_again(void **state)
{
    struct text t = {0};
    add(&t, "<r");
    for (int i = 0; i < 64; i++)
        add(&t, " xmlns:a%d='urn:a%d'", i, i);
    add(&t, "><op");
    for (int i = 0; i < 64; i++)
        add(&t, " xmlns:b%d='urn:b%d'", i, i);
    add(&t, ">");
    for (int i = 0; i < 64; i++)
        add(&t, "<a%d:x/>", i);
    add(&t, "</op></r>");
    xmlDocPtr doc = expect_accepted(&t, NULL);
    xmlNodePtr op = xmlDocGetRootElement(doc)->children;
    struct text copy = {0};
    copy.s = xml_node_serialize(op, &copy.len);
    assert_non_null(copy.s);
    xmlDocPtr again = expect_accepted(&copy, NULL);
    size_t declared = 0;
    for (xmlNsPtr ns = xmlDocGetRootElement(again)->nsDef; ns; ns = ns->next)
        declared++;
    assert_int_equal(declared, 128);
    xmlFreeDoc(again);
    xmlFreeDoc(doc);
    free(copy.s);
    free(t.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_60000_namespace_declarations_refused),
        cmocka_unit_test(test_60000_attributes_refused),
        cmocka_unit_test(test_at_the_limits_accepted),
        cmocka_unit_test(test_one_over_each_limit_refused),
        cmocka_unit_test(test_prescan_reads_values_comments_and_cdata),
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_dtd_after_an_earlier_error),
        cmocka_unit_test(test_no_lookups_after_an_error),
        cmocka_unit_test(test_inherited_namespaces),
        cmocka_unit_test(test_inherited_walk_is_linear),
        cmocka_unit_test(test_standalone_copy_parses_again),
    };
    xmlInitParser();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
