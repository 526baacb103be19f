/*
 * Unit tests for adapter/retry_after.c: the Retry-After grammar of RFC 9110
 * (delay-seconds and the three HTTP-date forms) is accepted; everything a
 * hostile or sloppy legacy system might send instead (exponents, inf, nan,
 * signs, fractions, trailing text, impossible dates) counts as absent (0);
 * huge values saturate at RETRY_AFTER_MAX instead of overflowing.
 *
 * Results are compared as doubles so that a wrong implementation (one that
 * yields inf or nan) fails with a message instead of a conversion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "retry_after.h"

#include <stdio.h>
#include <string.h>

/* 1994-11-06 08:49:37 UTC, RFC 9110's example date, is two minutes after NOW_1994. */
#define EXAMPLE_DATE 784111777
#define NOW_1994     (EXAMPLE_DATE - 120)
#define NOW_2024     1717200000 /* 2024-06-01 00:00:00 UTC */

static void check_at(const char *value, size_t len, time_t now, double want)
{
    double got = retry_after_parse(value, len, now);
    if (!(got == want))
        fail_msg("Retry-After \"%.*s\" (%zu bytes): got %g, want %g", (int)len, value ? value : "",
                 len, got, want);
}

static void check(const char *value, double want)
{
    check_at(value, strlen(value), NOW_1994, want);
}

static void test_delay_seconds(void **state)
{
    check("0", 0);
    check("1", 1);
    check("120", 120);
    check("0000000000000000000000000120", 120); /* leading zeros are still 1*DIGIT */
    check_at("120junk", 3, NOW_1994, 120);      /* only len bytes count */
}

static void test_surrounding_whitespace(void **state)
{
    check(" 120", 120);
    check("120 ", 120);
    check("\t 120 \t", 120);
    check("", 0);
    check("   ", 0);
    check("1 20", 0); /* whitespace inside is not OWS */
}

static void test_huge_digit_strings_saturate(void **state)
{
    check("3600", RETRY_AFTER_MAX);
    check("3601", RETRY_AFTER_MAX);
    check("86400", RETRY_AFTER_MAX);
    check("4294967296", RETRY_AFTER_MAX);           /* 2^32: would wrap an unsigned */
    check("18446744073709551616", RETRY_AFTER_MAX); /* 2^64: would wrap a uint64_t */
    check("99999999999999999999999999999999999999", RETRY_AFTER_MAX);
    static char many[10001];
    memset(many, '9', sizeof(many) - 1);
    check(many, RETRY_AFTER_MAX);
}

static void test_not_delay_seconds(void **state)
{
    const char *junk[] = {
        "1e999", "1E3",   "1e2",  "inf", "INF", "infinity", "-inf", "nan", "NaN",
        "-5",    "-0",    "+5",   "1.5", "5.",  ".5",       "0x10", "5s",  "5 apples",
        "5,6",   "5, 10", "five", "٣",   "abc", "Sun",      "now",  "-",   "+",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        check(junk[i], 0);
    check_at("5\0", 2, NOW_1994, 0); /* an embedded NUL is not whitespace */
    check_at("\0"
             "5",
             2, NOW_1994, 0);
    check_at(NULL, 0, NOW_1994, 0);
}

static void test_imf_fixdate(void **state)
{
    check("Sun, 06 Nov 1994 08:49:37 GMT", 120);
    check("  Sun, 06 Nov 1994 08:49:37 GMT  ", 120);
    check("Sun, 06 Nov 1994 08:49:38 GMT", 121);
    check("Mon, 07 Nov 1994 08:47:37 GMT", RETRY_AFTER_MAX); /* a day ahead: clamped */
    check("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_MAX);
    check_at("Tue, 29 Feb 2000 00:02:00 GMT", 29, 951782400, 120); /* leap day */
    check_at("Sat, 01 Jun 2024 00:00:60 GMT", 29, NOW_2024, 60);   /* leap second */
}

static void test_dates_in_the_past_are_zero(void **state)
{
    check("Sun, 06 Nov 1994 08:47:37 GMT", 0); /* now exactly */
    check("Sun, 06 Nov 1994 08:47:36 GMT", 0);
    check("Sat, 05 Nov 1994 08:49:37 GMT", 0);
    check("Thu, 01 Jan 1970 00:00:00 GMT", 0);
    check("Sat, 01 Jan 0000 00:00:00 GMT", 0);
}

static void test_rfc850_date(void **state)
{
    check("Sunday, 06-Nov-94 08:49:37 GMT", 120);
    /* two-digit years: never more than 50 years ahead (RFC 9110 §5.6.7) */
    check_at("Saturday, 01-Jun-24 00:02:00 GMT", 32, NOW_2024, 120);
    check_at("Sunday, 06-Nov-94 08:49:37 GMT", 30, NOW_2024, 0); /* 1994, not 2094 */
    check_at("Friday, 01-Jun-74 00:02:00 GMT", 30, NOW_2024, 0); /* 2074 is over 50 years on */
    check("Sun, 06-Nov-94 08:49:37 GMT", 0);                     /* short day name */
    check("Sunday, 06-Nov-1994 08:49:37 GMT", 0);
}

static void test_asctime_date(void **state)
{
    check("Sun Nov  6 08:49:37 1994", 120);
    check("Sun Nov 06 08:49:37 1994", 120);
    check_at("Wed Nov 16 08:49:37 1994", 24, EXAMPLE_DATE + 10 * 86400 - 5, 5);
    check("Sun Nov 6 08:49:37 1994", 0); /* one space before a one-digit day */
    check("Sun Nov  6 08:49:37 1994 GMT", 0);
}

static void test_malformed_dates(void **state)
{
    const char *junk[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT trailing",
        "Sun, 06 Nov 1994 08:49:37 PST",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 06 Nov 1994 08:49:37",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun,  6 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun 06 Nov 1994 08:49:37 GMT",
        "06 Nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Mon, 29 Feb 1993 08:49:37 GMT",
        "Thu, 29 Feb 1900 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:37 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08:49 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:3x GMT",
        "Sun, 06 Nov 19944 08:49:37 GMT",
        "Sun, 06 Nov 1994",
        "Sun, 06 Nov 1994 08:49:37 GMT\r\n",
        "1994-11-06T08:49:37Z",
        "tomorrow",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        check(junk[i], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_seconds),
        cmocka_unit_test(test_surrounding_whitespace),
        cmocka_unit_test(test_huge_digit_strings_saturate),
        cmocka_unit_test(test_not_delay_seconds),
        cmocka_unit_test(test_imf_fixdate),
        cmocka_unit_test(test_dates_in_the_past_are_zero),
        cmocka_unit_test(test_rfc850_date),
        cmocka_unit_test(test_asctime_date),
        cmocka_unit_test(test_malformed_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
