#include "procfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *status_open(pid_t pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    return fopen(path, "re");
}

int proc_status_masks(pid_t pid, const char *const keys[], int n, uint64_t *mask)
{
    char line[256];
    int found = 0;
    FILE *f = status_open(pid);

    if (!f)
        return -errno;
    *mask = 0;
    while (fgets(line, sizeof(line), f))
        for (int k = 0; k < n; k++) {
            size_t len = strlen(keys[k]);
            if (strncmp(line, keys[k], len) == 0) {
                *mask |= strtoull(line + len, NULL, 16);
                found++;
            }
        }
    fclose(f);
    return found;
}
