/* The local probe: what this node says about itself in its gossip entry, read from /proc
 * and hwloc every step.
 *
 *   ncpus, numa_nodes   hwloc: processing units and NUMA nodes this process may use
 *   speed               per-CPU BogoMIPS from /proc/cpuinfo (why not a timed loop: see probe.c)
 *   load_milli          MOSIX-style load: run-queue length (procs_running of /proc/stat, less
 *                       the prober) smoothed with a 4 s exponential decay, per CPU, x1000
 *   util_permille       busy share of CPU time since the last sample (/proc/stat cpu line)
 *   mem_total/free_mib  MemTotal and MemAvailable of /proc/meminfo
 *   guests              passed in by the caller (mosd counts its guests) */
#ifndef MOS_GOSSIP_PROBE_H
#define MOS_GOSSIP_PROBE_H

#include "mos/gossip.h"

#include <stdint.h>

struct mos_gossip_probe;

/* proc_root: "/proc", or a directory of fixture files (meminfo, stat, cpuinfo) for tests.
 * interval_ms: the step, for the load's decay. Returns 0, -ENOMEM or -errno from hwloc. */
int mos_gossip_probe_create(const char *proc_root, unsigned interval_ms,
                            struct mos_gossip_probe **out);
void mos_gossip_probe_destroy(struct mos_gossip_probe *probe);
/* Read a fresh sample into info (address, flags and transports are left as they are).
 * Returns 0 or an error from reading /proc (logged once per kind of failure). */
int mos_gossip_probe_sample(struct mos_gossip_probe *probe, uint16_t guests,
                            struct mos_gossip_info *info);

#endif
