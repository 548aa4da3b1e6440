/* The per-guest call counts of a supervisor (mos/forward.h, struct mos_call_stats): the latency
 * histogram's fixed bounds and the bucketing. */
#include "mos/forward.h"

/* 50 us .. 1 s: a forwarded call on a LAN takes a few hundred microseconds; a call blocked at
 * home (a read of a terminal) lands in the last buckets. */
const uint64_t mos_call_latency_le_ns[MOS_CALL_LATENCY_BOUNDS] = {
    50000,    100000,    250000,    500000,    1000000,   2500000,   5000000,
    10000000, 25000000,  50000000,  100000000, 250000000, 500000000, 1000000000,
};

unsigned mos_call_latency_bucket(uint64_t ns)
{
    unsigned lo = 0, hi = MOS_CALL_LATENCY_BOUNDS;

    /* the first bound >= ns (Prometheus' le: a latency on a bound counts in that bucket) */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (mos_call_latency_le_ns[mid] < ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void mos_call_stats_forwarded(struct mos_call_stats *s, uint64_t ns)
{
    s->calls[MOS_CALLS_FORWARD]++;
    s->latency_sum_ns += ns;
    s->latency[mos_call_latency_bucket(ns)]++;
}
