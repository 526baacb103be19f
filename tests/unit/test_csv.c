/*
 * test_csv.c — unit tests for transforms/csv.c.
 *
 * Every input is run through one helper that feeds it in chunks (whole, one
 * byte at a time, or random sizes) and renders what the reader produced as
 * text: "H<line>:<f1>|<f2>" for the header, "<line>#<number>:<f1>|..." per
 * record, "ERR <message>" on failure. Tests compare that text exactly, so a
 * chunk boundary can never change the outcome unnoticed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "csv.h"

enum chunking { WHOLE, ONE_BYTE, RANDOM };

struct text {
    char *p;
    size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        assert_non_null(t->p);
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void text_addf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_addf(struct text *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    text_add(t, buf, (size_t)n);
}

static void text_record(struct text *t, const struct csv_record *rec, bool header)
{
    if (header)
        text_addf(t, "H%lu:", rec->line);
    else
        text_addf(t, "%lu#%lu:", rec->line, rec->number);
    for (size_t i = 0; i < rec->nfields; i++) {
        if (i)
            text_add(t, "|", 1);
        text_add(t, rec->fields[i], rec->lengths[i]);
        assert_int_equal(rec->fields[i][rec->lengths[i]], '\0');
    }
    text_add(t, "\n", 1);
}

/* Drains every ready record into t; returns csv_reader_next's last result. */
static int drain(struct csv_reader *r, struct text *t, bool *header_shown)
{
    const struct csv_record *rec;
    int rc;
    while ((rc = csv_reader_next(r, &rec)) == 1) {
        if (!*header_shown) {
            text_record(t, csv_reader_header(r), true);
            *header_shown = true;
        }
        text_record(t, rec, false);
    }
    return rc;
}

/* Parses input fed as `mode` says; returns the rendered result (caller frees). */
static char *parse(const char *in, size_t len, const struct csv_options *opt, enum chunking mode,
                   unsigned seed)
{
    char err[256] = "";
    struct csv_reader *r = csv_reader_new(opt, err, sizeof(err));
    assert_non_null(r);
    struct text t = {0};
    text_add(&t, "", 0);
    bool header_shown = false;
    int rc = 0;
    size_t pos = 0;
    srand(seed);
    while (pos < len && rc >= 0) {
        size_t n = len - pos;
        if (mode == ONE_BYTE)
            n = 1;
        else if (mode == RANDOM && n > 1)
            n = 1 + (size_t)rand() % (n < 97 ? n : 97);
        assert_int_equal(csv_reader_feed(r, in + pos, n), 0);
        pos += n;
        rc = drain(r, &t, &header_shown);
    }
    if (rc >= 0) {
        assert_int_equal(csv_reader_finish(r), 0);
        rc = drain(r, &t, &header_shown);
    }
    if (!header_shown && csv_reader_header(r))
        text_record(&t, csv_reader_header(r), true);
    if (rc < 0)
        text_addf(&t, "ERR %s", csv_reader_error(r));
    csv_reader_free(r);
    return t.p;
}

/* Checks that every chunking gives `want`. */
static void expect_len(const char *in, size_t len, const struct csv_options *opt, const char *want)
{
    enum chunking modes[] = {WHOLE, ONE_BYTE, RANDOM, RANDOM};
    for (unsigned i = 0; i < 4; i++) {
        char *got = parse(in, len, opt, modes[i], i);
        if (strcmp(got, want) != 0)
            fail_msg("chunking %u:\n--- want\n%s\n--- got\n%s", i, want, got);
        free(got);
    }
}

static void expect(const char *in, const struct csv_options *opt, const char *want)
{
    expect_len(in, strlen(in), opt, want);
}

static void test_simple(void **state)
{
    expect("id,name\n1,Ann\n2,Bob\n", NULL, "H1:id|name\n2#1:1|Ann\n3#2:2|Bob\n");
}

static void test_no_trailing_newline(void **state)
{
    expect("a,b\n1,2", NULL, "H1:a|b\n2#1:1|2\n");
    expect("a,b\n1,", NULL, "H1:a|b\n2#1:1|\n");
    expect("a,b\n1,\"x\"", NULL, "H1:a|b\n2#1:1|x\n");
}

static void test_crlf_and_cr(void **state)
{
    expect("a,b\r\n1,2\r\n3,4\r\n", NULL, "H1:a|b\n2#1:1|2\n3#2:3|4\n");
    expect("a,b\r1,2\r3,4", NULL, "H1:a|b\n2#1:1|2\n3#2:3|4\n");
    expect("a,b\n1,2\r\n3,4\n", NULL, "H1:a|b\n2#1:1|2\n3#2:3|4\n");
}

static void test_quoted(void **state)
{
    /* embedded delimiter, doubled quotes, empty quoted field, quotes only */
    expect("a,b,c\n\"x,y\",\"say \"\"hi\"\"\",\"\"\n\"\"\"\",\"\"\"\"\"\",z\n", NULL,
           "H1:a|b|c\n2#1:x,y|say \"hi\"|\n3#2:\"|\"\"|z\n");
}

static void test_quoted_newlines(void **state)
{
    /* line numbers count physical lines, so the record after a two-line field starts on 4 */
    expect("a,b\n\"multi\nline\",2\n3,4\n", NULL, "H1:a|b\n2#1:multi\nline|2\n4#2:3|4\n");
    expect("a,b\r\n\"multi\r\nline\r\n\",2\r\n3,4\r\n", NULL,
           "H1:a|b\n2#1:multi\r\nline\r\n|2\n5#2:3|4\n");
}

static void test_bom(void **state)
{
    expect("\xEF\xBB\xBFid,name\n1,\xC3\xA9t\xC3\xA9\n", NULL,
           "H1:id|name\n2#1:1|\xC3\xA9t\xC3\xA9\n");
    /* a BOM prefix that is not a BOM is data (and here invalid UTF-8) */
    expect("\xEF\xBB"
           "a\n",
           NULL, "ERR line 1, column 1: invalid UTF-8 sequence (byte 0x61)");
    /* a BOM only in the middle is data */
    expect("a\n\xEF\xBB\xBFx\n", NULL, "H1:a\n2#1:\xEF\xBB\xBFx\n");
}

static void test_empty_lines_skipped(void **state)
{
    expect("\n\na,b\n\n1,2\r\n\r\n\n3,4\n\n", NULL, "H3:a|b\n5#1:1|2\n8#2:3|4\n");
    /* a line with only a space is not empty: it is one field */
    expect("a\n \n", NULL, "H1:a\n2#1: \n");
    /* an empty single field must be written as "" */
    expect("a\n\"\"\n", NULL, "H1:a\n2#1:\n");
}

static void test_semicolon(void **state)
{
    struct csv_options o = {.delimiter = ';'};
    expect("name;amount\nAnn;1,50\n\"B;b\";\"2\"\n", &o,
           "H1:name|amount\n2#1:Ann|1,50\n3#2:B;b|2\n");
    struct csv_options tab = {.delimiter = '\t'};
    expect("a\tb\n1\t2\n", &tab, "H1:a|b\n2#1:1|2\n");
}

static void test_header_only_and_empty(void **state)
{
    expect("a,b\n", NULL, "H1:a|b\n");
    expect("", NULL, "");
    expect("\n\r\n", NULL, "");
    expect("\xEF\xBB\xBF", NULL, "");
}

static void test_ragged(void **state)
{
    expect("a,b,c\n1,2,3\n4,5\n", NULL,
           "H1:a|b|c\n2#1:1|2|3\nERR line 3, column 4: too few fields: 2 of the header's 3");
    expect("a,b\n1,2\n3,4,5,6\n", NULL,
           "H1:a|b\n2#1:1|2\nERR line 3, column 4: more fields than the header's 2");
    /* at the end of input without a line end */
    expect("a,b\n1", NULL, "H1:a|b\nERR line 2, column 2: too few fields: 1 of the header's 2");
}

static void test_unterminated_quote(void **state)
{
    expect("a,b\n1,\"open\n2,3\n", NULL,
           "H1:a|b\nERR line 2, column 3: quoted field is never closed (end of input reached)");
}

static void test_stray_quotes(void **state)
{
    expect("a,b\n1,ab\"c\n", NULL,
           "H1:a|b\nERR line 2, column 5: quote inside an unquoted field (quote the whole "
           "field and double the quotes in it)");
    expect("a,b\n1,\"ab\"c\n", NULL,
           "H1:a|b\nERR line 2, column 7: unexpected character after the closing quote "
           "(expected the delimiter or a line end)");
    /* columns count characters, not bytes */
    expect("a,b\n\xC3\xA9\xC3\xA9,x\"\n", NULL,
           "H1:a|b\nERR line 2, column 5: quote inside an unquoted field (quote the whole "
           "field and double the quotes in it)");
}

static void test_limits(void **state)
{
    struct csv_options o = {.max_field = 4, .max_record = 10};
    expect("a,b\n1234,12345\n", &o, "H1:a|b\nERR line 2, column 10: field longer than 4 bytes");
    expect("a,b\n\"1234\",\"1234\"\n", &o,
           "H1:a|b\nERR line 2, column 11: record longer than 10 bytes (it starts on line 2)");
    expect("a,b\n1234,1234\n", &o, "H1:a|b\n2#1:1234|1234\n");
}

static void test_utf8(void **state)
{
    expect("a,b\n1,\xC3\x28\n", NULL,
           "H1:a|b\nERR line 2, column 3: invalid UTF-8 sequence (byte 0x28)");
    expect("a,b\n1,\xC0\xAF\n", NULL, "H1:a|b\nERR line 2, column 3: invalid UTF-8 byte 0xC0");
    expect("a,b\n1,\xED\xA0\x80\n", NULL, /* a surrogate */
           "H1:a|b\nERR line 2, column 3: invalid UTF-8 sequence (byte 0xA0)");
    expect("a,b\n1,\xE2\x82", NULL,
           "H1:a|b\nERR line 2, column 3: UTF-8 sequence cut off by the end of input");
    expect("a\n\xF0\x9F\x98\x80\n", NULL, "H1:a\n2#1:\xF0\x9F\x98\x80\n");
    struct csv_options o = {.skip_utf8_check = true};
    expect("a,b\n1,\xC3\x28\n", &o, "H1:a|b\n2#1:1|\xC3\x28\n");
}

static void test_nul_in_field(void **state)
{
    static const char in[] = "a,b\n1,x\0y\n";
    char *got = parse(in, sizeof(in) - 1, NULL, WHOLE, 0);
    assert_memory_equal(got, "H1:a|b\n2#1:1|x\0y\n", 17);
    free(got);
}

static void test_duplicate_header(void **state)
{
    expect("id,name,id\n1,2,3\n", NULL,
           "ERR line 1, column 1: header repeats the column name \"id\" (fields 1 and 3)");
}

static void test_bad_options(void **state)
{
    char err[128];
    struct csv_options o = {.delimiter = '"'};
    assert_null(csv_reader_new(&o, err, sizeof(err)));
    assert_string_equal(err, "csv: delimiter cannot be a quote, CR or LF");
}

static void test_feed_after_finish(void **state)
{
    char err[128];
    struct csv_reader *r = csv_reader_new(NULL, err, sizeof(err));
    const struct csv_record *rec;
    assert_int_equal(csv_reader_feed(r, "a\n1\n", 4), 0);
    assert_int_equal(csv_reader_finish(r), 0);
    assert_int_equal(csv_reader_next(r, &rec), 1);
    assert_string_equal(rec->fields[0], "1");
    assert_int_equal(csv_reader_next(r, &rec), 0);
    assert_int_equal(csv_reader_next(r, &rec), 0);
    assert_int_equal(csv_reader_feed(r, "x", 1), -1);
    assert_string_equal(csv_reader_error(r), "csv: input fed after csv_reader_finish()");
    csv_reader_free(r);
}

/* 1500 generated rows with every awkward shape, in random chunks and byte by byte. */
static void test_generated_rows(void **state)
{
    struct text in = {0}, want = {0};
    text_add(&in, "\xEF\xBB\xBFid;amount;note\r\n", 19);
    text_addf(&want, "H1:id|amount|note\n");
    unsigned long line = 2;
    for (int i = 1; i <= 1500; i++) {
        char note[64];
        const char *quoted;
        unsigned long lines = 1;
        switch (i % 5) {
        case 0:
            snprintf(note, sizeof(note), "plain %d", i);
            quoted = note;
            break;
        case 1:
            snprintf(note, sizeof(note), "semi;colon %d", i);
            quoted = NULL;
            break;
        case 2:
            snprintf(note, sizeof(note), "two\r\nlines %d", i);
            quoted = NULL;
            lines = 2;
            break;
        case 3:
            snprintf(note, sizeof(note), "say \"%d\"", i);
            quoted = NULL;
            break;
        default:
            snprintf(note, sizeof(note), "\xE2\x82\xAC %d", i);
            quoted = note;
        }
        text_addf(&in, "%d;%05d.%02d;", i, i * 7, i % 100);
        if (quoted) {
            text_add(&in, note, strlen(note));
        } else {
            text_add(&in, "\"", 1);
            for (const char *c = note; *c; c++)
                text_add(&in, *c == '"' ? "\"\"" : c, *c == '"' ? 2 : 1);
            text_add(&in, "\"", 1);
        }
        text_add(&in, i % 2 ? "\r\n" : "\n", i % 2 ? 2 : 1);
        text_addf(&want, "%lu#%d:%d|%05d.%02d|%s\n", line, i, i, i * 7, i % 100, note);
        line += lines;
    }
    for (unsigned seed = 1; seed <= 5; seed++) {
        char *got = parse(in.p, in.len, &(struct csv_options){.delimiter = ';'}, RANDOM, seed);
        assert_string_equal(got, want.p);
        free(got);
    }
    char *got = parse(in.p, in.len, &(struct csv_options){.delimiter = ';'}, ONE_BYTE, 0);
    assert_string_equal(got, want.p);
    free(got);
    free(in.p);
    free(want.p);
}

static void test_to_json(void **state)
{
    char err[256];
    struct csv_reader *r = csv_reader_new(NULL, err, sizeof(err));
    const char in[] = "id,amount,note,\xC3\xA9\n"
                      "7,00012.3400,\"a \"\"quote\"\", <tag> & \\ back\",\xE2\x82\xAC\n";
    assert_int_equal(csv_reader_feed(r, in, sizeof(in) - 1), 0);
    const struct csv_record *rec;
    assert_int_equal(csv_reader_next(r, &rec), 1);
    size_t len = 0;
    char *json = csv_record_to_json(csv_reader_header(r), rec, &len, err, sizeof(err));
    assert_non_null(json);
    assert_string_equal(json, "{\"id\":\"7\",\"amount\":\"00012.3400\","
                              "\"note\":\"a \\\"quote\\\", <tag> & \\\\ back\","
                              "\"\xC3\xA9\":\"\xE2\x82\xAC\"}");
    assert_int_equal(len, strlen(json));
    assert_int_equal(rec->line, 2);
    free(json);
    csv_reader_free(r);
}

static void test_to_json_errors(void **state)
{
    char err[256];
    const char *h[] = {"a", "a"}, *f[] = {"1", "\xC3"};
    size_t hl[] = {1, 1}, fl[] = {1, 1};
    struct csv_record header = {2, h, hl, 1, 0}, rec = {2, f, fl, 9, 1};
    assert_null(csv_record_to_json(&header, &rec, NULL, err, sizeof(err)));
    assert_string_equal(err, "line 9: field 2 is not valid UTF-8");
    f[1] = "2";
    assert_null(csv_record_to_json(&header, &rec, NULL, err, sizeof(err)));
    assert_string_equal(err, "line 1: the header repeats a column name");
    rec.nfields = 1;
    assert_null(csv_record_to_json(&header, &rec, NULL, err, sizeof(err)));
    assert_string_equal(err, "line 9: record has 1 field(s), the header 2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_no_trailing_newline),
        cmocka_unit_test(test_crlf_and_cr),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_quoted_newlines),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_empty_lines_skipped),
        cmocka_unit_test(test_semicolon),
        cmocka_unit_test(test_header_only_and_empty),
        cmocka_unit_test(test_ragged),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_stray_quotes),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_nul_in_field),
        cmocka_unit_test(test_duplicate_header),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_feed_after_finish),
        cmocka_unit_test(test_generated_rows),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_to_json_errors),
    };
    json_object_seed(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
