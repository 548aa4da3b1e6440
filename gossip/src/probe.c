/* The local probe. CPU count and NUMA nodes come from hwloc (Debian libhwloc), which already
 * honours the cgroup cpuset; the rest are a few /proc files parsed here (three small line
 * formats do not justify a dependency).
 *
 * Speed: BogoMIPS, not a timed loop. On x86 the kernel derives it from the calibrated TSC
 * (2 x MHz), so it is stable, free to read and the same at every boot; a loop timed at
 * start-up would measure whatever else the node was running at that moment, and the probe
 * exists precisely to report nodes that are busy. BogoMIPS says nothing about instructions
 * per cycle, so it ranks nodes of one generation, which is what a site mostly has. */
#include "mos/gossip_probe.h"
#include "probe_parse.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <hwloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOAD_DECAY_MS 4000.0
#define PROC_TEXT_MAX (1 << 20)

struct mos_gossip_probe {
    char root[256];
    unsigned interval_ms;
    uint16_t ncpus, numa_nodes;
    uint32_t speed;
    double load; /* smoothed run-queue length */
    int have_load;
    struct mos_cpu_times last;
    int have_last;
    int warned;
};

/* The value of "key: number" at the start of a line. */
static int field_u64(const char *text, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);

    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, key, klen) != 0)
            continue;
        const char *p = line + klen;
        while (*p == ' ' || *p == '\t' || *p == ':')
            p++;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno)
            return MOS_E_PROTO;
        *out = v;
        return 0;
    }
    return MOS_E_PROTO;
}

int mos_probe_parse_meminfo(const char *text, uint64_t *total_kb, uint64_t *avail_kb)
{
    uint64_t t, a;

    if (field_u64(text, "MemTotal:", &t) != 0 || field_u64(text, "MemAvailable:", &a) != 0 ||
        a > t)
        return MOS_E_PROTO;
    *total_kb = t;
    *avail_kb = a;
    return 0;
}

int mos_probe_parse_stat(const char *text, struct mos_cpu_times *cpu, unsigned *procs_running)
{
    unsigned long long v[8] = {0};
    uint64_t running;
    int n;

    /* "cpu  user nice system idle iowait irq softirq steal ..." (guest time is inside user). */
    if (strncmp(text, "cpu ", 4) != 0)
        return MOS_E_PROTO;
    n = sscanf(text + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]);
    if (n < 4 || field_u64(text, "procs_running", &running) != 0 || running > 1000000)
        return MOS_E_PROTO;
    cpu->busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    cpu->total = cpu->busy + v[3] + v[4];
    *procs_running = (unsigned)running;
    return 0;
}

int mos_probe_parse_bogomips(const char *cpuinfo, double *bogomips)
{
    double sum = 0;
    unsigned n = 0;

    for (const char *line = cpuinfo; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncasecmp(line, "bogomips", 8) != 0)
            continue;
        const char *colon = strchr(line, ':');
        const char *eol = strchr(line, '\n');
        if (!colon || (eol && colon > eol))
            return MOS_E_PROTO;
        char *end;
        double v = strtod(colon + 1, &end);
        if (end == colon + 1 || !(v > 0 && v < 1e7))
            return MOS_E_PROTO;
        sum += v;
        n++;
    }
    if (n == 0)
        return MOS_E_PROTO;
    *bogomips = sum / n;
    return 0;
}

/* Read root/name into a NUL-terminated heap buffer. */
static int proc_read(const struct mos_gossip_probe *p, const char *name, char **out)
{
    char path[300];
    size_t len = 0, cap = 16384;
    char *buf = malloc(cap);
    int fd, rc = 0;

    if (!buf)
        return -ENOMEM;
    snprintf(path, sizeof(path), "%s/%s", p->root, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        free(buf);
        return mos_errno_status();
    }
    for (;;) {
        if (len + 1 >= cap) {
            char *bigger = cap < PROC_TEXT_MAX ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                rc = -EFBIG;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = mos_errno_status();
            break;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static int probe_topology(struct mos_gossip_probe *p)
{
    hwloc_topology_t topo;
    int pus, numa;

    if (hwloc_topology_init(&topo) != 0)
        return mos_errno_status();
    if (hwloc_topology_load(topo) != 0) {
        int rc = mos_errno_status();
        hwloc_topology_destroy(topo);
        return rc;
    }
    pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    hwloc_topology_destroy(topo);
    p->ncpus = (uint16_t)(pus > 0 ? (pus > 65535 ? 65535 : pus) : 1);
    p->numa_nodes = (uint16_t)(numa > 0 ? numa : 1);
    return 0;
}

int mos_gossip_probe_create(const char *proc_root, unsigned interval_ms,
                            struct mos_gossip_probe **out)
{
    struct mos_gossip_probe *p = calloc(1, sizeof(*p));
    char *cpuinfo = NULL;
    double bogo;
    int rc;

    if (!p)
        return -ENOMEM;
    snprintf(p->root, sizeof(p->root), "%s", proc_root ? proc_root : "/proc");
    p->interval_ms = interval_ms ? interval_ms : 1000;
    rc = probe_topology(p);
    if (rc != 0) {
        mos_err("gossip", "hwloc cannot read the topology: %s", mos_strerror(rc));
        free(p);
        return rc;
    }
    if (proc_read(p, "cpuinfo", &cpuinfo) == 0 && mos_probe_parse_bogomips(cpuinfo, &bogo) == 0)
        p->speed = (uint32_t)lround(bogo);
    else
        mos_warn("gossip", "no BogoMIPS in %s/cpuinfo: speed reported as 0 (unknown)", p->root);
    free(cpuinfo);
    *out = p;
    return 0;
}

void mos_gossip_probe_destroy(struct mos_gossip_probe *p)
{
    free(p);
}

static int probe_fail(struct mos_gossip_probe *p, const char *name, int rc)
{
    if (!p->warned)
        mos_err("gossip", "cannot read %s/%s: %s", p->root, name, mos_strerror(rc));
    p->warned = 1;
    return rc;
}

int mos_gossip_probe_sample(struct mos_gossip_probe *p, uint16_t guests,
                            struct mos_gossip_info *info)
{
    char *text = NULL;
    uint64_t total_kb, avail_kb;
    struct mos_cpu_times cpu;
    unsigned running;
    int rc;

    if ((rc = proc_read(p, "meminfo", &text)) != 0)
        return probe_fail(p, "meminfo", rc);
    rc = mos_probe_parse_meminfo(text, &total_kb, &avail_kb);
    free(text);
    if (rc != 0)
        return probe_fail(p, "meminfo", rc);
    if ((rc = proc_read(p, "stat", &text)) != 0)
        return probe_fail(p, "stat", rc);
    rc = mos_probe_parse_stat(text, &cpu, &running);
    free(text);
    if (rc != 0)
        return probe_fail(p, "stat", rc);

    /* procs_running counts this very process, which is running while it reads. */
    double queue = running > 0 ? running - 1 : 0;
    double keep = exp(-(double)p->interval_ms / LOAD_DECAY_MS);
    p->load = p->have_load ? p->load * keep + queue * (1 - keep) : queue;
    p->have_load = 1;
    uint32_t util = 0;
    if (p->have_last && cpu.total > p->last.total && cpu.busy >= p->last.busy) {
        uint64_t db = cpu.busy - p->last.busy, dt = cpu.total - p->last.total;
        util = (uint32_t)((db > dt ? dt : db) * 1000 / dt);
    }
    p->last = cpu;
    p->have_last = 1;

    info->ncpus = p->ncpus;
    info->numa_nodes = p->numa_nodes;
    info->speed = p->speed;
    info->load_milli = (uint32_t)lround(p->load * 1000.0 / p->ncpus);
    info->util_permille = (uint16_t)util;
    info->guests = guests;
    info->mem_total_mib = (uint32_t)(total_kb / 1024);
    info->mem_free_mib = (uint32_t)(avail_kb / 1024);
    return 0;
}
