/* Helpers for the zdtm-style programs: each sets up state, says "ready", keeps working in
 * small steps (so a dump lands in the middle of it), then checks everything and prints
 * "PASS" or "FAIL: why". Output depends only on the computation, so a migrated run must
 * print byte for byte what an uninterrupted run prints. */
#ifndef ZDTM_H
#define ZDTM_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline void zdtm_sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) < 0 && errno == EINTR)
        ;
}

static inline void zdtm_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static inline void zdtm_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static inline int zdtm_result(int ok, const char *why)
{
    if (ok)
        zdtm_say("PASS");
    else
        zdtm_say("FAIL: %s", why);
    return ok ? 0 : 1;
}

/* xorshift: the same pseudo-random bytes in every run */
static inline uint64_t zdtm_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A checksum of n bytes, as the programs print it */
static inline uint64_t zdtm_sum(const unsigned char *p, size_t n)
{
    uint64_t s = 0;

    for (size_t i = 0; i < n; i++)
        s = s * 131 + p[i];
    return s;
}

/* One line from fd, read a byte at a time (nothing beyond it is taken): its length, -1 at
 * an error or the end. */
#include <unistd.h>
static inline int zdtm_line_read(int fd, char *buf, size_t cap)
{
    size_t n = 0;

    while (n + 1 < cap) {
        if (read(fd, buf + n, 1) != 1)
            return -1;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return (int)n;
}

/* Steps and their length: ZDTM_STEPS / ZDTM_STEP_MS override (the cycle test runs longer). */
static inline int zdtm_env(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v ? atoi(v) : dflt;
}

#endif
