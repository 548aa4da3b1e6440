#include "mos/clock.h"

#include <errno.h>
#include <time.h>

uint64_t mos_clock_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * MOS_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

void mos_clock_sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / MOS_NSEC_PER_SEC),
                          .tv_nsec = (long)(ns % MOS_NSEC_PER_SEC)};

    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}
