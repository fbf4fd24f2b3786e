/* zt_clock: the two clocks everything uses. Monotonic milliseconds for
 * timers, heartbeats and timeouts; wall-clock seconds (unix, UTC, as a double)
 * for ETA, expires and timestamps on the wire. */
#ifndef ZT_CLOCK_H
#define ZT_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds from an arbitrary fixed point; never goes backwards. */
int64_t zt_clock_mono_ms(void);

/* Microseconds, monotonic; for latency measurements. */
int64_t zt_clock_mono_us(void);

/* Unix time in seconds with sub-second precision (UTC). */
double zt_clock_wall(void);

/* Formats unix seconds as ISO 8601 UTC with microseconds and no zone suffix,
 * as Python's datetime.utcnow().isoformat() does ("2026-11-28T17:00:00.123456").
 * buf must hold at least 32 bytes. Returns buf. */
char *zt_clock_iso8601(double unix_seconds, char *buf, size_t size);

/* Parses ISO 8601 ("2026-11-28T17:00:00", optional fraction, optional "Z" or
 * "+HH:MM"; no zone means UTC). Returns 0 and sets *unix_seconds, or ZT_ERR_INVALID. */
int zt_clock_parse_iso8601(const char *text, double *unix_seconds);

#endif
