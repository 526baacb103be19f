/*
 * retry_after — see retry_after.h for the grammar. One pass over the value
 * with a cursor; every field has a fixed width, so each form is matched
 * exactly or refused, and no number can overflow: delay-seconds saturate,
 * and a date's fields are at most four digits. Dates become Unix seconds by
 * days-from-civil arithmetic (proleptic Gregorian, UTC), not timegm or
 * curl_getdate: curl accepts trailing text, zones and impossible days.
 */
#include "retry_after.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct cursor {
    const char *p, *end;
};

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool take_literal(struct cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* Exactly n digits (n <= 4) into *out. */
static bool take_digits(struct cursor *c, int n, int *out)
{
    if (c->end - c->p < n)
        return false;
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(c->p[i]))
            return false;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *out = v;
    return true;
}

/* One of names[0..n) (case-sensitive, as HTTP-date is); its index into *out. */
static bool take_name(struct cursor *c, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++) {
        if (take_literal(c, names[i])) {
            *out = i;
            return true;
        }
    }
    return false;
}

static const char *const DAYS[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const DAYS_LONG[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
static const char *const MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct date {
    int year, month, day; /* month 1-12 */
    int hour, minute, second;
};

static bool take_month(struct cursor *c, struct date *d)
{
    int i;
    if (!take_name(c, MONTHS, 12, &i))
        return false;
    d->month = i + 1;
    return true;
}

/* time-of-day = hour ":" minute ":" second, each 2DIGIT */
static bool take_time(struct cursor *c, struct date *d)
{
    return take_digits(c, 2, &d->hour) && take_literal(c, ":") && take_digits(c, 2, &d->minute) &&
           take_literal(c, ":") && take_digits(c, 2, &d->second);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf_fixdate(struct cursor c, struct date *d)
{
    int day_name;
    return take_name(&c, DAYS, 7, &day_name) && take_literal(&c, ", ") &&
           take_digits(&c, 2, &d->day) && take_literal(&c, " ") && take_month(&c, d) &&
           take_literal(&c, " ") && take_digits(&c, 4, &d->year) && take_literal(&c, " ") &&
           take_time(&c, d) && take_literal(&c, " GMT") && c.p == c.end;
}

/* "Sunday, 06-Nov-94 08:49:37 GMT"; d->year gets the two digits only. */
static bool parse_rfc850_date(struct cursor c, struct date *d)
{
    int day_name;
    return take_name(&c, DAYS_LONG, 7, &day_name) && take_literal(&c, ", ") &&
           take_digits(&c, 2, &d->day) && take_literal(&c, "-") && take_month(&c, d) &&
           take_literal(&c, "-") && take_digits(&c, 2, &d->year) && take_literal(&c, " ") &&
           take_time(&c, d) && take_literal(&c, " GMT") && c.p == c.end;
}

/* "Sun Nov  6 08:49:37 1994" (the day is 2DIGIT or SP DIGIT) */
static bool parse_asctime_date(struct cursor c, struct date *d)
{
    int day_name;
    if (!take_name(&c, DAYS, 7, &day_name) || !take_literal(&c, " ") || !take_month(&c, d) ||
        !take_literal(&c, " "))
        return false;
    if (!take_digits(&c, 2, &d->day) && !(take_literal(&c, " ") && take_digits(&c, 1, &d->day)))
        return false;
    return take_literal(&c, " ") && take_time(&c, d) && take_literal(&c, " ") &&
           take_digits(&c, 4, &d->year) && c.p == c.end;
}

static bool is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int days_in_month(int64_t year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to y-m-d (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse, for the year, month and day of `now`. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Unix seconds of a checked date; false for an impossible one (31 Nov, 25:00). */
static bool date_seconds(const struct date *d, int64_t *out)
{
    if (d->month < 1 || d->month > 12 || d->day < 1 || d->day > days_in_month(d->year, d->month))
        return false;
    if (d->hour > 23 || d->minute > 59 || d->second > 60) /* 60: a leap second */
        return false;
    *out = days_from_civil(d->year, d->month, d->day) * 86400 + d->hour * 3600 + d->minute * 60 +
           d->second;
    return true;
}

/* RFC 9110 §5.6.7: a two-digit year more than 50 years ahead of now is the
 * latest earlier year with the same two digits. */
static bool rfc850_seconds(struct date *d, int64_t now, int64_t *out)
{
    int64_t now_days = floor_div(now, 86400), now_year;
    int now_month, now_day;
    civil_from_days(now_days, &now_year, &now_month, &now_day);
    int two_digits = d->year;
    d->year = (int)(now_year - (now_year % 100 + 100) % 100 + two_digits);
    if (!date_seconds(d, out))
        return false;
    int64_t fifty_years_on =
        days_from_civil(now_year + 50, now_month, now_day) * 86400 + (now - now_days * 86400);
    if (*out > fifty_years_on) {
        d->year -= 100;
        return date_seconds(d, out);
    }
    return true;
}

static unsigned clamp_seconds(int64_t seconds)
{
    if (seconds <= 0)
        return 0;
    return seconds > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (unsigned)seconds;
}

unsigned retry_after_parse(const char *value, size_t len, time_t now)
{
    if (value == NULL)
        return 0;
    struct cursor c = {value, value + len};
    while (c.p < c.end && is_ows(*c.p))
        c.p++;
    while (c.end > c.p && is_ows(c.end[-1]))
        c.end--;
    if (c.p == c.end)
        return 0;

    /* delay-seconds = 1*DIGIT; stop accumulating once past the maximum. */
    const char *q = c.p;
    uint64_t seconds = 0;
    while (q < c.end && is_digit(*q)) {
        if (seconds <= RETRY_AFTER_MAX)
            seconds = seconds * 10 + (uint64_t)(*q - '0');
        q++;
    }
    if (q == c.end)
        return seconds > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (unsigned)seconds;

    struct date d = {0};
    int64_t when;
    if (parse_imf_fixdate(c, &d) || parse_asctime_date(c, &d)) {
        if (!date_seconds(&d, &when))
            return 0;
    } else if (parse_rfc850_date(c, &d)) {
        if (!rfc850_seconds(&d, (int64_t)now, &when))
            return 0;
    } else {
        return 0;
    }
    return clamp_seconds(when - (int64_t)now);
}
