/*
 * Unit tests for adapter/spool_journal.c in a temporary directory: records
 * come back in order and survive a reopen; a torn last record (cut short, or
 * a flipped byte) is cut off and the rest kept; damage in an earlier segment
 * loses only that segment's tail; confirming deletes drained segments and the
 * mark survives a reopen; a rewind sends from the oldest unconfirmed record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "spool_journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_spool_XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
    return 0;
}

static struct spool_journal *open_journal(size_t segment_bytes, struct spool_recovery *found)
{
    char err[512] = "";
    struct spool_recovery ignored;
    struct spool_journal *j =
        spool_journal_open(dir, segment_bytes, "test", found ? found : &ignored, err, sizeof(err));
    if (j == NULL)
        fail_msg("open: %s", err);
    return j;
}

/* Appends "msg-<first>" … "msg-<first+n-1>" as one group. */
static void append_n(struct spool_journal *j, int first, int n)
{
    char *texts[64];
    const char *payloads[64];
    size_t lens[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        texts[i] = malloc(32);
        snprintf(texts[i], 32, "msg-%d", first + i);
        payloads[i] = texts[i];
        lens[i] = strlen(texts[i]);
    }
    uint64_t seq = 0;
    char err[512];
    assert_int_equal(
        spool_journal_append(j, payloads, lens, (size_t)n, 1000, &seq, err, sizeof(err)), 0);
    for (int i = 0; i < n; i++)
        free(texts[i]);
}

/* Reads the next record and checks it is "msg-<want>". */
static uint64_t expect_next(struct spool_journal *j, int want)
{
    struct spool_record rec;
    char err[512], text[32];
    assert_int_equal(spool_journal_read(j, &rec, err, sizeof(err)), 1);
    snprintf(text, sizeof(text), "msg-%d", want);
    assert_int_equal(rec.len, strlen(text));
    assert_memory_equal(rec.payload, text, rec.len);
    return rec.seq;
}

static void expect_end(struct spool_journal *j)
{
    struct spool_record rec;
    char err[512];
    assert_int_equal(spool_journal_read(j, &rec, err, sizeof(err)), 0);
}

static size_t count_segments(void)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".seg") != NULL;
    closedir(d);
    return n;
}

/* The path of the n-th segment file (in name order). */
static void segment_file(size_t n, char *out, size_t len)
{
    struct dirent **list;
    int count = scandir(dir, &list, NULL, alphasort);
    size_t seen = 0;
    out[0] = '\0';
    for (int i = 0; i < count; i++) {
        if (strstr(list[i]->d_name, ".seg") && seen++ == n)
            snprintf(out, len, "%s/%s", dir, list[i]->d_name);
        free(list[i]);
    }
    free(list);
    assert_true(out[0] != '\0');
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* A closed journal of records "msg-0" … "msg-<n-1>", confirmed up to seq confirmed. */
static void prepare(int n, uint64_t confirmed)
{
    struct spool_journal *j = open_journal(1 << 20, NULL);
    append_n(j, 0, n);
    char err[512];
    assert_int_equal(spool_journal_confirm(j, confirmed, err, sizeof(err)), 0);
    spool_journal_close(j);
}

static void test_crc32c_known_value(void **state)
{
    /* RFC 3720 B.4: 32 bytes of zeros */
    unsigned char zeros[32] = {0};
    assert_int_equal(spool_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aa);
    assert_int_equal(spool_crc32c(0, "123456789", 9), 0xe3069283);
}

static void test_write_read_in_order(void **state)
{
    struct spool_journal *j = open_journal(1 << 20, NULL);
    append_n(j, 0, 10);
    append_n(j, 10, 5);
    for (int i = 0; i < 15; i++)
        assert_int_equal(expect_next(j, i), (uint64_t)i + 1);
    expect_end(j);
    append_n(j, 15, 1); /* a read at the end goes on when more comes */
    expect_next(j, 15);
    struct spool_journal_stats st;
    spool_journal_stats(j, &st);
    assert_int_equal(st.records, 16);
    assert_int_equal(st.oldest_ms, 1000);
    spool_journal_close(j);
}

/* The forwarder's steady state: each record read soon after it was appended,
 * across segment rollovers and segments deleted as they drain. */
static void test_reads_follow_appends_across_segments(void **state)
{
    struct spool_journal *j = open_journal(64, NULL);
    char err[512];
    int next = 0;
    for (int round = 0; round < 13; round++) { /* the last one stays unconfirmed */
        int n = round % 3 + 1;
        append_n(j, next, n);
        uint64_t seq = 0;
        for (int i = 0; i < n; i++)
            seq = expect_next(j, next + i);
        expect_end(j);
        if (round % 4 == 3)
            assert_int_equal(spool_journal_confirm(j, seq, err, sizeof(err)), 0);
        next += n;
    }
    struct spool_journal_stats st;
    spool_journal_stats(j, &st);
    assert_true(st.records > 0);
    assert_int_equal(st.oldest_ms, 1000);
    spool_journal_close(j);
}

static void test_reopen_keeps_unconfirmed(void **state)
{
    prepare(20, 7);
    struct spool_recovery found;
    struct spool_journal *j = open_journal(1 << 20, &found);
    assert_int_equal(found.records, 13);
    assert_int_equal(found.torn_bytes, 0);
    for (int i = 7; i < 20; i++)
        expect_next(j, i);
    expect_end(j);
    append_n(j, 20, 1); /* numbering goes on after a reopen */
    assert_int_equal(expect_next(j, 20), 21);
    spool_journal_close(j);
}

static void test_torn_tail_cut_off(void **state)
{
    struct spool_journal *j = open_journal(1 << 20, NULL);
    append_n(j, 0, 5);
    spool_journal_close(j);
    char path[512];
    segment_file(0, path, sizeof(path));
    off_t size = file_size(path);
    assert_int_equal(truncate(path, size - 3), 0); /* the last record half-written */

    struct spool_recovery found;
    j = open_journal(1 << 20, &found);
    assert_int_equal(found.records, 4);
    assert_int_equal(found.torn_bytes, (uint64_t)(size - 3) - found.bytes);
    for (int i = 0; i < 4; i++)
        expect_next(j, i);
    expect_end(j);
    append_n(j, 4, 1); /* the next append takes the torn one's place and number */
    assert_int_equal(expect_next(j, 4), 5);
    spool_journal_close(j);

    j = open_journal(1 << 20, &found);
    assert_int_equal(found.records, 5);
    assert_int_equal(found.torn_bytes, 0);
    spool_journal_close(j);
}

static void test_corrupt_checksum_at_tail(void **state)
{
    struct spool_journal *j = open_journal(1 << 20, NULL);
    append_n(j, 0, 3);
    spool_journal_close(j);
    char path[512];
    segment_file(0, path, sizeof(path));
    int fd = open(path, O_RDWR);
    off_t size = file_size(path);
    char c;
    assert_int_equal(pread(fd, &c, 1, size - 1), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, size - 1), 1); /* same length, wrong checksum */
    close(fd);

    struct spool_recovery found;
    j = open_journal(1 << 20, &found);
    assert_int_equal(found.records, 2);
    assert_true(found.torn_bytes > 0);
    expect_next(j, 0);
    expect_next(j, 1);
    expect_end(j);
    spool_journal_close(j);
}

static void test_damage_in_an_earlier_segment(void **state)
{
    /* tiny segments: each group starts a new one once the last passed 64 bytes */
    struct spool_journal *j = open_journal(64, NULL);
    append_n(j, 0, 3);
    append_n(j, 3, 3);
    spool_journal_close(j);
    assert_int_equal(count_segments(), 2);
    char path[512];
    segment_file(0, path, sizeof(path));
    int fd = open(path, O_RDWR);
    char c = 'X';
    assert_int_equal(pwrite(fd, &c, 1, 37 + 32), 1); /* msg-1's payload */
    close(fd);

    struct spool_recovery found;
    j = open_journal(64, &found);
    assert_true(found.damaged_bytes > 0);
    assert_int_equal(found.torn_bytes, 0);
    assert_int_equal(found.records, 4); /* msg-1 and msg-2 lost with their segment's tail */
    expect_next(j, 0);
    expect_next(j, 3);
    expect_next(j, 4);
    expect_next(j, 5);
    expect_end(j);
    spool_journal_close(j);
}

static void test_compaction_deletes_confirmed_segments(void **state)
{
    struct spool_journal *j = open_journal(64, NULL);
    for (int g = 0; g < 4; g++)
        append_n(j, g * 2, 2);
    assert_int_equal(count_segments(), 4);
    char err[512];
    assert_int_equal(spool_journal_confirm(j, 3, err, sizeof(err)), 0); /* 1, 2 and 3 */
    assert_int_equal(count_segments(), 3); /* only the first was entirely confirmed */
    struct spool_journal_stats st;
    spool_journal_stats(j, &st);
    assert_int_equal(st.records, 5);
    for (int i = 3; i < 8; i++)
        expect_next(j, i);
    assert_int_equal(spool_journal_confirm(j, 8, err, sizeof(err)), 0);
    assert_int_equal(count_segments(), 0); /* drained: the last goes too */
    spool_journal_stats(j, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.oldest_ms, 0);
    append_n(j, 8, 1); /* and a new one starts */
    assert_int_equal(expect_next(j, 8), 9);
    spool_journal_close(j);

    struct spool_recovery found;
    j = open_journal(64, &found);
    assert_int_equal(found.records, 1);
    expect_next(j, 8);
    spool_journal_close(j);
}

static void test_rewind_to_oldest_unconfirmed(void **state)
{
    struct spool_journal *j = open_journal(64, NULL);
    append_n(j, 0, 3);
    append_n(j, 3, 3);
    for (int i = 0; i < 5; i++)
        expect_next(j, i);
    char err[512];
    assert_int_equal(spool_journal_confirm(j, 2, err, sizeof(err)), 0);
    spool_journal_rewind(j);
    for (int i = 2; i < 6; i++)
        expect_next(j, i);
    expect_end(j);
    spool_journal_close(j);
}

static void test_bad_mark_resends_everything(void **state)
{
    prepare(4, 2);
    char path[512];
    snprintf(path, sizeof(path), "%s/confirmed", dir);
    FILE *f = fopen(path, "w");
    fputs("garbage", f);
    fclose(f);
    struct spool_recovery found;
    struct spool_journal *j = open_journal(1 << 20, &found);
    assert_true(found.confirmed_mark_bad);
    assert_int_equal(found.records, 4);
    expect_next(j, 0);
    spool_journal_close(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_value),
        cmocka_unit_test_setup_teardown(test_write_read_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_follow_appends_across_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_unconfirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_cut_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_checksum_at_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_in_an_earlier_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_deletes_confirmed_segments, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rewind_to_oldest_unconfirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_mark_resends_everything, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
