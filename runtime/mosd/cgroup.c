/* The cpu cgroups (v1 cpu controller, where the lab and sites cap CPU) that jobs are captured
 * from and run in, and the memory cgroup whose limit is the memory a node offers. */
#include "mosd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mosd_cgroup_join(const char *procs, pid_t pid)
{
    FILE *f = fopen(procs, "we");
    int rc;

    if (!f)
        return -1;
    rc = fprintf(f, "%d\n", (int)pid) > 0 ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* The cgroup.procs file of pid's cpu cgroup ("" when it has none of its own). */
static void cgroup_procs_of(pid_t pid, char *out, size_t len)
{
    char path[64], line[512];
    FILE *f;

    out[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    if (!(f = fopen(path, "re")))
        return;
    while (fgets(line, sizeof(line), f)) {
        char *p = strstr(line, ":cpu:");
        if (!p)
            p = strstr(line, ":cpu,cpuacct:");
        if (p) {
            p = strchr(p + 1, ':') + 1;
            p[strcspn(p, "\n")] = '\0';
            snprintf(out, len, "/sys/fs/cgroup/cpu%s/cgroup.procs", p);
        }
    }
    fclose(f);
}

void mosd_cgroup_borrow(pid_t pid, char *was, size_t len)
{
    char ours[512];

    cgroup_procs_of(pid, was, len);
    cgroup_procs_of(getpid(), ours, sizeof(ours));
    if (!was[0] || !ours[0] || strcmp(was, ours) == 0 || mosd_cgroup_join(ours, pid) != 0)
        was[0] = '\0';
}

/* One number from dir/name ("max", v2's no limit, reads as UINT64_MAX). 0 or -1. */
static int cgroup_read_u64(const char *dir, const char *name, uint64_t *out)
{
    char path[400], text[32] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!(f = fopen(path, "re")))
        return -1;
    int got = fgets(text, sizeof(text), f) != NULL;
    fclose(f);
    if (!got)
        return -1;
    if (strncmp(text, "max", 3) == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || (*end != '\n' && *end != '\0'))
        return -1;
    *out = v;
    return 0;
}

/* One key of dir/memory.stat, 0 when absent. */
static uint64_t cgroup_stat(const char *dir, const char *key)
{
    char path[400], name[64];
    unsigned long long v, found = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/memory.stat", dir);
    if (!(f = fopen(path, "re")))
        return 0;
    while (fscanf(f, "%63s %llu", name, &v) == 2)
        if (strcmp(name, key) == 0) {
            found = v;
            break;
        }
    fclose(f);
    return found;
}

int mosd_cgroup_memory(const struct mosd *d, uint64_t *total, uint64_t *free_bytes)
{
    uint64_t limit, usage, inactive;
    const char *dir = d->guest_memcg[0] ? d->guest_memcg : d->guest_cgroup;

    if (!dir[0])
        return -1;
    if (cgroup_read_u64(dir, "memory.limit_in_bytes", &limit) == 0 &&
        cgroup_read_u64(dir, "memory.usage_in_bytes", &usage) == 0)
        inactive = cgroup_stat(dir, "total_inactive_file");
    else if (cgroup_read_u64(dir, "memory.max", &limit) == 0 &&
             cgroup_read_u64(dir, "memory.current", &usage) == 0)
        inactive = cgroup_stat(dir, "inactive_file");
    else
        return -1;
    /* v1 says "no limit" with a huge page-rounded number, v2 with "max" */
    if (limit >= (UINT64_C(1) << 60))
        return -1;
    usage = usage > inactive ? usage - inactive : 0;
    *total = limit;
    *free_bytes = usage < limit ? limit - usage : 0;
    return 0;
}
