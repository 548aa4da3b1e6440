/* Monotonic time for timeouts, ages and benchmarks (never wall-clock time). */
#ifndef MOS_CLOCK_H
#define MOS_CLOCK_H

#include <stdint.h>

#define MOS_NSEC_PER_SEC 1000000000ull
#define MOS_NSEC_PER_MSEC 1000000ull
#define MOS_NSEC_PER_USEC 1000ull

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t mos_clock_now_ns(void);
/* Sleep for ns nanoseconds, restarting after signals. */
void mos_clock_sleep_ns(uint64_t ns);

#endif
