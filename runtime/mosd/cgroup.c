/* The cpu cgroups (v1 cpu controller, where the lab and sites cap CPU) that jobs are captured
 * from and run in. */
#include "mosd.h"

#include <stdio.h>
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
