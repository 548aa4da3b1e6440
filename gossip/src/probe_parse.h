/* The probe's parsers of /proc text, apart so that gossip's tests reach them; not installed. */
#ifndef MOS_GOSSIP_PROBE_PARSE_H
#define MOS_GOSSIP_PROBE_PARSE_H

#include <stdint.h>

struct mos_cpu_times {
    uint64_t busy, total; /* jiffies */
};

/* Parsers of /proc text (NUL-terminated). 0 or MOS_E_PROTO. */
int mos_probe_parse_meminfo(const char *text, uint64_t *total_kb, uint64_t *avail_kb);
int mos_probe_parse_stat(const char *text, struct mos_cpu_times *cpu, unsigned *procs_running);
/* Mean "bogomips" over the processors listed (x86 "bogomips", arm64 "BogoMIPS"). */
int mos_probe_parse_bogomips(const char *cpuinfo, double *bogomips);

#endif
