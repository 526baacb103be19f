/*
 * retry_after — the Retry-After header of a legacy answer (RFC 9110 §10.2.3)
 * turned into a bounded delay. A pure function: no clock, no locale, no curl.
 *
 * The value comes from the legacy side, so it is hostile input like any other.
 * Accepted, with optional SP/HTAB around it, and nothing else:
 *   Retry-After   = HTTP-date / delay-seconds
 *   delay-seconds = 1*DIGIT
 *   HTTP-date     = IMF-fixdate / rfc850-date / asctime-date   (§5.6.7)
 *     IMF-fixdate   "Sun, 06 Nov 1994 08:49:37 GMT"
 *     rfc850-date   "Sunday, 06-Nov-94 08:49:37 GMT"  (two-digit year: the
 *                   latest year with those digits not over 50 years ahead)
 *     asctime-date  "Sun Nov  6 08:49:37 1994"
 * Dates are case-sensitive and checked (no 31 Feb, no 25:00); the day name
 * must be one, but is not checked against the date. Anything else — a sign,
 * a fraction, an exponent, "inf", "nan", trailing text, a zone other than
 * GMT — is absent: 0, which tells the caller to use its normal ladder or
 * backoff. Digit strings of any length saturate (never wrap), a date in the
 * past is 0, and nothing exceeds RETRY_AFTER_MAX.
 */
#ifndef SIDECAR_RETRY_AFTER_H
#define SIDECAR_RETRY_AFTER_H

#include <stddef.h>
#include <time.h>

/* The longest pause a legacy system can ask for, in seconds. An hour covers a
 * restart or a short maintenance window; past that, polling again (or walking
 * the retry ladder) and being told to wait again costs one call an hour, while
 * believing a day-long or garbage value would silence a route with no one
 * noticing. Outbound routes are bounded further by their longest retry delay. */
#define RETRY_AFTER_MAX 3600

/* The seconds the Retry-After value[0..len) asks to wait, relative to now (Unix
 * seconds, for dates): 0 … RETRY_AFTER_MAX, 0 when absent or malformed. value may
 * hold any bytes (NUL included) and need not be NUL-terminated; NULL is absent. */
unsigned retry_after_parse(const char *value, size_t len, time_t now);

#endif
