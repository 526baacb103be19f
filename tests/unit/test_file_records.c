/*
 * test_file_records.c — unit tests for adapter/kinds/file_records.c.
 *
 * Each case writes a file (memfd), reads it through one reader and renders
 * what came out as text: one line per record "<index>@<line>:<body>", or
 * "ERR <message>" on failure. Large inputs put records across the reader's
 * 64 KiB chunk boundaries; the SHA-256 it reports is checked against OpenSSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "kinds/file_records.h"

struct out {
    char *p;
    size_t len, cap;
};

static void out_add(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = realloc(o->p, o->cap);
        assert_non_null(o->p);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static int file_with(const char *content, size_t len)
{
    int fd = memfd_create("records", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static struct file_records_options options(enum file_format format, bool split)
{
    return (struct file_records_options){.format = format,
                                         .split = split,
                                         .max_file = 1 << 20,
                                         .max_record = 1 << 20,
                                         .check = true,
                                         .bodies = true,
                                         .hash = true};
}

/* Reads every record; returns the rendering (caller frees). */
static char *read_all_opt(const struct file_records_options *opt, const char *content, size_t len)
{
    int fd = file_with(content, len);
    char err[200];
    struct file_records *fr = file_records_open(opt, fd, err, sizeof(err));
    assert_non_null(fr);
    struct out o = {0};
    out_add(&o, "", 0);
    struct file_record rec;
    int rc;
    while ((rc = file_records_next(fr, &rec)) == RECORDS_NEXT) {
        char head[64];
        int n = snprintf(head, sizeof(head), "%llu@%lu:", (unsigned long long)rec.index, rec.line);
        out_add(&o, head, (size_t)n);
        if (rec.body)
            out_add(&o, rec.body, rec.len);
        out_add(&o, "\n", 1);
        free(rec.body);
    }
    if (rc != RECORDS_END) {
        out_add(&o, "ERR ", 4);
        out_add(&o, file_records_error(fr), strlen(file_records_error(fr)));
    }
    file_records_free(fr);
    close(fd);
    return o.p;
}

static char *read_all(enum file_format format, bool split, const char *content)
{
    struct file_records_options opt = options(format, split);
    return read_all_opt(&opt, content, strlen(content));
}

static void expect(enum file_format format, bool split, const char *content, const char *want)
{
    char *got = read_all(format, split, content);
    assert_string_equal(got, want);
    free(got);
}

static void expect_error(enum file_format format, bool split, const char *content,
                         const char *want_part)
{
    char *got = read_all(format, split, content);
    char *err = strstr(got, "ERR ");
    if (err == NULL || strstr(err, want_part) == NULL)
        fail_msg("expected an error containing \"%s\", got:\n%s", want_part, got);
    free(got);
}

/* ---- json with split ---------------------------------------------------------------- */

static void test_split_elements_as_written(void **state)
{
    expect(FILE_FORMAT_JSON, true,
           "\xEF\xBB\xBF [ {\"s\":\"],[\\\"}\", \"n\":[1,[2]]} ,\n 12.50 ,\"\\\\\",null,\n"
           "\t[] ]\n",
           "0@1:{\"s\":\"],[\\\"}\", \"n\":[1,[2]]}\n"
           "1@2:12.50\n"
           "2@2:\"\\\\\"\n"
           "3@2:null\n"
           "4@3:[]\n");
    expect(FILE_FORMAT_JSON, true, "[]", "");
    expect(FILE_FORMAT_JSON, true, " [ ] \n", "");
}

static void test_split_errors_name_line_and_column(void **state)
{
    expect_error(FILE_FORMAT_JSON, true, "[1,\n  {\"a\":}]", "line 2, column 8: invalid JSON");
    expect_error(FILE_FORMAT_JSON, true, "[1,,2]", "line 1, column 4: expected a value before ','");
    expect_error(FILE_FORMAT_JSON, true, "[1,]", "line 1, column 4: expected a value before ']'");
    expect_error(FILE_FORMAT_JSON, true, "[1 2]", "line 1, column 4: invalid JSON");
    expect_error(FILE_FORMAT_JSON, true, "[1]\n x", "line 2, column 2: data after the end");
    expect_error(FILE_FORMAT_JSON, true, "[1, {\"a\": [2", "the file ends inside the array");
    expect_error(FILE_FORMAT_JSON, true, "{\"a\":1}", "needs a JSON array at the top level");
    expect_error(FILE_FORMAT_JSON, true, "  ", "holds no JSON array");
}

static void test_split_large_elements_cross_chunks(void **state)
{
    /* three elements of 100 KB each: every one crosses a 64 KiB read */
    size_t n = 100000, len = 0;
    char *doc = malloc(3 * (n + 16) + 8);
    len += (size_t)sprintf(doc, "[");
    for (int e = 0; e < 3; e++) {
        len += (size_t)sprintf(doc + len, "%s\"", e ? "," : "");
        memset(doc + len, 'a' + e, n);
        len += n;
        doc[len++] = '"';
    }
    doc[len++] = ']';
    struct file_records_options opt = options(FILE_FORMAT_JSON, true);
    char *got = read_all_opt(&opt, doc, len);
    assert_null(strstr(got, "ERR"));
    assert_int_equal(strlen(got), 3 * (n + 2 + 5)); /* "i@1:" + quotes + body + newline */
    free(got);
    opt.max_record = n;
    got = read_all_opt(&opt, doc, len);
    assert_non_null(strstr(got, "ERR line 1, column 2: array element longer than max_record"));
    free(got);
    free(doc);
}

/* ---- jsonl ---------------------------------------------------------------------------- */

static void test_jsonl_lines(void **state)
{
    expect(FILE_FORMAT_JSONL, false, "{\"a\":1}\r\n\n  \r\n [1, 2] \n\"last, no newline\"",
           "0@1:{\"a\":1}\n1@4:[1, 2]\n2@5:\"last, no newline\"\n");
    expect(FILE_FORMAT_JSONL, false, "", "");
    expect(FILE_FORMAT_JSONL, false, "\n\n", "");
    expect_error(FILE_FORMAT_JSONL, false, "{\"a\":1}\n\n   {\"b\":}\n",
                 "line 3, column 9: invalid JSON");
}

static void test_jsonl_max_record(void **state)
{
    struct file_records_options opt = options(FILE_FORMAT_JSONL, false);
    opt.max_record = 8;
    char *got = read_all_opt(&opt, "[1,2,3]\n[1,2,3,4,5]\n", 20);
    assert_string_equal(got, "0@1:[1,2,3]\nERR line 2: longer than max_record (8 bytes); "
                             "raise max_record");
    free(got);
}

/* ---- csv ------------------------------------------------------------------------------- */

static void test_csv_records_as_json_objects(void **state)
{
    expect(FILE_FORMAT_CSV, false,
           "\xEF\xBB\xBFid,name,amount\r\n1,\"Smith, J\",0010.50\r\n2,\"say \"\"hi\"\"\nthere\","
           "\r\n",
           "0@2:{\"id\":\"1\",\"name\":\"Smith, J\",\"amount\":\"0010.50\"}\n"
           "1@3:{\"id\":\"2\",\"name\":\"say \\\"hi\\\"\\nthere\",\"amount\":\"\"}\n");
    expect(FILE_FORMAT_CSV, false, "only,a,header\n", "");
    expect(FILE_FORMAT_CSV, false, "", "");
    expect_error(FILE_FORMAT_CSV, false, "a,b\n1,\"open\n", "line 2, column 3");
    expect_error(FILE_FORMAT_CSV, false, "a,b\n1,2,3\n", "line 2");
}

static void test_csv_delimiter_and_no_bodies(void **state)
{
    struct file_records_options opt = options(FILE_FORMAT_CSV, false);
    opt.delimiter = ';';
    char *got = read_all_opt(&opt, "a;b\n1,5;x\n", 10);
    assert_string_equal(got, "0@2:{\"a\":\"1,5\",\"b\":\"x\"}\n");
    free(got);
    opt.bodies = false; /* the check pass without a transform: records counted, not rendered */
    got = read_all_opt(&opt, "a;b\n1;2\n3;4\n", 12);
    assert_string_equal(got, "0@2:\n1@3:\n");
    free(got);
}

/* ---- whole-file formats ------------------------------------------------------------------ */

static void test_whole_json_raw_xml(void **state)
{
    expect(FILE_FORMAT_JSON, false, "\xEF\xBB\xBF{\"a\": [1, 2]}\n", "0@1:{\"a\": [1, 2]}\n\n");
    expect_error(FILE_FORMAT_JSON, false, "{\"a\":\n  tru}", "line 2, column");
    expect(FILE_FORMAT_RAW, false, "any\x01thing", "0@1:any\x01thing\n");
    expect(FILE_FORMAT_RAW, false, "", "0@1:\n");
    expect(FILE_FORMAT_XML, false, "<a x=\"1\"><b/></a>", "0@1:<a x=\"1\"><b/></a>\n");
    expect_error(FILE_FORMAT_XML, false,
                 "<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"
                 "<a>&e;</a>",
                 "line 2");
    expect_error(FILE_FORMAT_XML, false, "<a><b></a>", "line 1");
}

static void test_max_file(void **state)
{
    struct file_records_options opt = options(FILE_FORMAT_RAW, false);
    opt.max_file = 5;
    char *got = read_all_opt(&opt, "12345", 5);
    assert_string_equal(got, "0@1:12345\n");
    free(got);
    got = read_all_opt(&opt, "123456", 6);
    assert_non_null(strstr(got, "ERR the file is larger than max_file (5 bytes)"));
    free(got);
}

/* A record is bounded by what it becomes: the message body the broker must take. */
static void test_max_message(void **state)
{
    struct file_records_options opt = options(FILE_FORMAT_RAW, false);
    opt.max_message = 5; /* below max_file: the whole file is one message */
    char *got = read_all_opt(&opt, "12345", 5);
    assert_string_equal(got, "0@1:12345\n");
    free(got);
    got = read_all_opt(&opt, "123456", 6);
    assert_non_null(strstr(got, "ERR the file is larger than max_message (5 bytes)"));
    free(got);

    opt = options(FILE_FORMAT_JSONL, false);
    opt.max_message = 7;
    got = read_all_opt(&opt, "\"12345\"\n \"123456\"\n", 19);
    assert_non_null(strstr(got, "0@1:\"12345\"\nERR line 2: record 1 is 8 bytes, larger than "
                                "max_message (7 bytes)"));
    free(got);

    /* csv: 3 control characters are 3 bytes written, 18 as JSON ("\u0001" each); the bound
     * is checked with and without bodies, so the check pass fails the file too */
    const char *csv = "a\nok\n\x01\x01\x01\n";
    for (int bodies = 0; bodies < 2; bodies++) {
        opt = options(FILE_FORMAT_CSV, false);
        opt.bodies = bodies;
        opt.max_message = strlen("{\"a\":\"\\u0001\\u0001\\u0001\"}") - 1;
        got = read_all_opt(&opt, csv, strlen(csv));
        assert_non_null(strstr(got, "ERR line 3: record 1 is 26 bytes as JSON, larger than "
                                    "max_message (25 bytes)"));
        free(got);
        opt.max_message++;
        got = read_all_opt(&opt, csv, strlen(csv));
        assert_null(strstr(got, "ERR"));
        free(got);
    }
}

/* ---- hashing ------------------------------------------------------------------------------ */

static void sha256_hex(const char *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
}

static void check_digest(enum file_format format, const char *content, size_t len, int want_rc)
{
    int fd = file_with(content, len);
    struct file_records_options opt = options(format, false);
    char err[200];
    struct file_records *fr = file_records_open(&opt, fd, err, sizeof(err));
    struct file_record rec;
    int rc;
    while ((rc = file_records_next(fr, &rec)) == RECORDS_NEXT)
        free(rec.body);
    assert_int_equal(rc, want_rc);
    char got[65], want[65];
    assert_int_equal(file_records_digest(fr, got), 0);
    sha256_hex(content, len, want);
    assert_string_equal(got, want);
    file_records_free(fr);
    close(fd);
}

static void test_digest_covers_the_whole_file(void **state)
{
    size_t len = 300000;
    char *big = malloc(len);
    for (size_t i = 0; i < len; i++) /* lines of 60: a JSON string of 58 letters */
        big[i] = i % 61 == 60 ? '\n' : i % 61 == 0 || i % 61 == 59 ? '"' : (char)('a' + i % 26);
    big[len - 1] = '\n';
    check_digest(FILE_FORMAT_JSONL, big, len - (len % 61), RECORDS_END);
    big[61] = '{'; /* an error on line 2: the rest of the file is still hashed */
    check_digest(FILE_FORMAT_JSONL, big, len, RECORDS_INVALID);
    check_digest(FILE_FORMAT_RAW, "", 0, RECORDS_END);
    free(big);
}

/* The publish pass reads no further than the check did: bytes a writer appended
 * since (here: a record and half of another) are not records of this pass. */
static void test_limit_stops_at_the_checked_size(void **state)
{
    const char *grown = "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":";
    size_t checked = strlen("{\"a\":1}\n{\"b\":2}\n");
    struct file_records_options opt = options(FILE_FORMAT_JSONL, false);
    opt.check = false; /* as when publishing: the half record would not be caught */
    opt.limit = checked;
    char *got = read_all_opt(&opt, grown, strlen(grown));
    assert_string_equal(got, "0@1:{\"a\":1}\n1@2:{\"b\":2}\n");
    free(got);
    opt.limit = 0; /* no limit: everything now there, the half record too */
    got = read_all_opt(&opt, grown, strlen(grown));
    assert_non_null(strstr(got, "3@4:{\"d\":"));
    free(got);
    opt = options(FILE_FORMAT_CSV, false);
    opt.limit = strlen("id,n\n1,x\n");
    got = read_all_opt(&opt, "id,n\n1,x\n2,y\n", strlen("id,n\n1,x\n2,y\n"));
    assert_string_equal(got, "0@2:{\"id\":\"1\",\"n\":\"x\"}\n");
    free(got);
}

static void test_format_names(void **state)
{
    enum file_format f;
    assert_int_equal(file_format_parse("jsonl", &f), 0);
    assert_int_equal(f, FILE_FORMAT_JSONL);
    assert_string_equal(file_format_name(FILE_FORMAT_XML), "xml");
    assert_int_equal(file_format_parse("tsv", &f), -1);
    assert_true(file_format_splits(FILE_FORMAT_CSV, false));
    assert_true(file_format_splits(FILE_FORMAT_JSON, true));
    assert_false(file_format_splits(FILE_FORMAT_JSON, false));
    assert_false(file_format_splits(FILE_FORMAT_RAW, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_elements_as_written),
        cmocka_unit_test(test_split_errors_name_line_and_column),
        cmocka_unit_test(test_split_large_elements_cross_chunks),
        cmocka_unit_test(test_jsonl_lines),
        cmocka_unit_test(test_jsonl_max_record),
        cmocka_unit_test(test_csv_records_as_json_objects),
        cmocka_unit_test(test_csv_delimiter_and_no_bodies),
        cmocka_unit_test(test_whole_json_raw_xml),
        cmocka_unit_test(test_max_file),
        cmocka_unit_test(test_max_message),
        cmocka_unit_test(test_digest_covers_the_whole_file),
        cmocka_unit_test(test_limit_stops_at_the_checked_size),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
