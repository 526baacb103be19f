/*
 * Unit tests for adapter/util.c's content hashes: SHA-256 over parts is the
 * hash of their concatenation, and sha256_id spells it as poll and http_out
 * ids do ("sha256:" and lowercase hex).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "util.h"

#include <jansson.h>

static void test_sha256_parts_concatenate(void **state)
{
    unsigned char whole[SHA256_BYTES], split[SHA256_BYTES];
    struct byte_span one[] = {{"abc", 3}};
    struct byte_span two[] = {{"a", 1}, {"", 0}, {"bc", 2}};
    sha256_parts(one, 1, whole);
    sha256_parts(two, 3, split);
    assert_memory_equal(whole, split, SHA256_BYTES);
    char id[8 + 2 * SHA256_BYTES];
    sha256_id(whole, SHA256_BYTES, id);
    assert_string_equal(id,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_id_of_a_prefix(void **state)
{
    unsigned char md[SHA256_BYTES];
    sha256_parts(NULL, 0, md); /* the empty input */
    char id[8 + 2 * 16];
    sha256_id(md, 16, id);
    assert_string_equal(id, "sha256:e3b0c44298fc1c149afbf4c8996fb924");
}

/* RFC 9562 version 4: 8-4-4-4-12 lowercase hex, version nibble 4, variant 10xx. */
static void test_uuid_v4_shape(void **state)
{
    char a[37], b[37];
    for (int n = 0; n < 1000; n++) {
        uuid_v4(a);
        assert_int_equal(strlen(a), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                assert_int_equal(a[i], '-');
            else
                assert_non_null(strchr("0123456789abcdef", a[i]));
        }
        assert_int_equal(a[14], '4');
        assert_non_null(strchr("89ab", a[19]));
    }
    uuid_v4(b);
    assert_string_not_equal(a, b);
}

/* What buf_json_string writes is a JSON string jansson reads back as the input. */
static void test_json_string_round_trips(void **state)
{
    const char *inputs[] = {
        "", "plain", "q\"uote", "back\\slash", "tab\tnl\n\x01\x1f end", "caf\xc3\xa9", "<script>"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct buf b = {0};
        buf_puts(&b, "[");
        buf_json_string(&b, inputs[i]);
        buf_puts(&b, "]");
        json_error_t err;
        json_t *v = json_loadb(b.data, b.len, 0, &err);
        assert_non_null(v);
        assert_string_equal(json_string_value(json_array_get(v, 0)), inputs[i]);
        json_decref(v);
        buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_parts_concatenate),
        cmocka_unit_test(test_sha256_id_of_a_prefix),
        cmocka_unit_test(test_uuid_v4_shape),
        cmocka_unit_test(test_json_string_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
