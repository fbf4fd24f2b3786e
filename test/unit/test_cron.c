/* Unit tests for beat/cron: next fire times in a zone (Asia/Tokyo), month
 * ends, the leap day, both DST changes of Europe/Berlin (a skipped local
 * time fires once, shifted past the gap; a repeated one fires once), the
 * day-of-month OR day-of-week rule, names and steps, refused expressions,
 * and intervals. Expected instants are unix seconds computed independently
 * (Python's datetime). */
#include "cron.h"
#include "zt_test.h"

#include <stdlib.h>
#include <string.h>

static beat_cron_t *cron(const char *expr, const char *tz) {
    char why[256] = "";
    beat_cron_t *c = beat_cron_new(expr, tz, why, sizeof why);
    if (!c)
        fprintf(stderr, "unexpected refusal of '%s' (%s): %s\n", expr, tz ? tz : "UTC", why);
    CHECK(c != NULL);
    return c;
}

static void test_zone(void) {
    beat_cron_t *c = cron("0 8 * * *", "Asia/Tokyo");
    /* 2026-11-28 00:00Z is 09:00 JST: next is 08:00 JST on the 29th */
    CHECK(beat_cron_next(c, 1795824000) == 1795906800);
    CHECK(strcmp(beat_cron_tz(c), "Asia/Tokyo") == 0);
    beat_cron_destroy(&c);
    CHECK(c == NULL);
}

static void test_month_end_and_leap_day(void) {
    beat_cron_t *c = cron("0 0 31 * *", NULL);
    /* from April 15: April has no 31st, so May 31 */
    CHECK(beat_cron_next(c, 1776211200) == 1780185600);
    beat_cron_destroy(&c);
    c = cron("0 12 29 2 *", "UTC");
    /* from 2026-01-01: the next February 29th is in 2028 */
    CHECK(beat_cron_next(c, 1767225600) == 1835438400);
    beat_cron_destroy(&c);
}

static void test_dst(void) {
    beat_cron_t *c = cron("30 2 * * *", "Europe/Berlin");
    /* 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist and
     * fires once, shifted past the gap (03:30 CEST = 01:30Z) */
    int64_t t = beat_cron_next(c, 1774699200);
    CHECK(t == 1774747800);
    CHECK(beat_cron_next(c, t) == 1774830600); /* then 02:30 CEST on the 30th */
    /* 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice
     * (00:30Z and 01:30Z) and fires once */
    t = beat_cron_next(c, 1792843200);
    CHECK(t == 1792888200 || t == 1792891800);
    CHECK(beat_cron_next(c, t) == 1792978200); /* next: the 26th, not 01:30Z */
    beat_cron_destroy(&c);
}

static void test_day_or_weekday(void) {
    /* the 13th or any Friday (Vixie cron); 2026-11-28 is a Saturday */
    beat_cron_t *c = cron("0 0 13 * fri", NULL);
    int64_t t = beat_cron_next(c, 1795824000);
    CHECK(t == 1796342400); /* Fri Dec 4 */
    t = beat_cron_next(c, t);
    CHECK(t == 1796947200); /* Fri Dec 11 */
    t = beat_cron_next(c, t);
    CHECK(t == 1797120000); /* Sun Dec 13: the 13th */
    t = beat_cron_next(c, t);
    CHECK(t == 1797552000); /* Fri Dec 18 */
    beat_cron_destroy(&c);
    /* a restricted weekday with a star day: weekdays only; 7 is Sunday */
    c = cron("0 0 * * 7", NULL);
    CHECK(beat_cron_next(c, 1795824000) == 1795824000 + 86400); /* Sun Nov 29 */
    beat_cron_destroy(&c);
}

static void test_steps_ranges_names(void) {
    beat_cron_t *c = cron("*/15 9-17 * JAN-mar mon-fri", NULL);
    /* 2026-11-28 -> first weekday of January 2027 (Fri Jan 1) at 09:00 */
    CHECK(beat_cron_next(c, 1795824000) == 1798794000);
    CHECK(beat_cron_next(c, 1798794000) == 1798794000 + 900); /* 09:15 */
    beat_cron_destroy(&c);
    c = cron("5,35 */6 * * *", NULL);
    CHECK(beat_cron_next(c, 1795824000) == 1795824000 + 300);        /* 00:05 */
    CHECK(beat_cron_next(c, 1795824000 + 300) == 1795824000 + 2100); /* 00:35 */
    CHECK(beat_cron_next(c, 1795824000 + 2100) == 1795824000 + 6 * 3600 + 300);
    beat_cron_destroy(&c);
}

static void test_refused(void) {
    const char *bad[][2] = {{"61 * * * *", "minute"},        {"* * *", "5"},
                            {"0 0 30 2 *", "never"},         {"0 25 * * *", "hour"},
                            {"0 0 * * 8", "day of week"},    {"a b c d e", "minute"},
                            {"0 0 1-x * *", "day of month"}, {"*/0 * * * *", "minute"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[256] = "";
        beat_cron_t *c = beat_cron_new(bad[i][0], NULL, why, sizeof why);
        CHECK(c == NULL);
        if (!strstr(why, bad[i][1]))
            fprintf(stderr, "'%s': reason '%s' lacks '%s'\n", bad[i][0], why, bad[i][1]);
        CHECK(strstr(why, bad[i][1]) != NULL);
    }
    const char *zones[] = {"Mars/Olympus", "../../etc/passwd", "/etc/localtime", "Asia/Tokyo;x"};
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        char why[256] = "";
        CHECK(beat_cron_new("0 8 * * *", zones[i], why, sizeof why) == NULL);
        CHECK(strstr(why, "time zone") != NULL);
    }
}

static void test_intervals(void) {
    char why[256];
    CHECK(beat_interval_parse_ms("30s", why, sizeof why) == 30000);
    CHECK(beat_interval_parse_ms("1h30m", why, sizeof why) == 5400000);
    CHECK(beat_interval_parse_ms("1d", why, sizeof why) == 86400000);
    CHECK(beat_interval_parse_ms("250ms", why, sizeof why) == 250);
    CHECK(beat_interval_parse_ms("2m5s", why, sizeof why) == 125000);
    const char *bad[] = {"", "10", "5x", "0s", "-5s", "1h 30m", "s", "99999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        CHECK(beat_interval_parse_ms(bad[i], why, sizeof why) == -1);
        CHECK(strstr(why, "interval") != NULL);
    }
    CHECK(beat_interval_parse_ms(NULL, why, sizeof why) == -1);
}

int main(void) {
    RUN(test_zone);
    RUN(test_month_end_and_leap_day);
    RUN(test_dst);
    RUN(test_day_or_weekday);
    RUN(test_steps_ranges_names);
    RUN(test_refused);
    RUN(test_intervals);
    return zt_test_summary();
}
