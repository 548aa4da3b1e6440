#include "mos/procfs.h"

#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static FILE *status_open(pid_t pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    return fopen(path, "re");
}

int mos_proc_status_masks(pid_t pid, const char *const keys[], int n, uint64_t *mask)
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

int mos_proc_stat_parse(const char *text, struct mos_proc_stat *st)
{
    const char *p = strrchr(text, ')');

    memset(st, 0, sizeof(*st));
    if (!p || p[1] != ' ' || !p[2])
        return MOS_E_PROTO;
    st->state = p[2];
    p += 3;
    for (int i = 4; i <= MOS_PROC_STAT_FIELDS; i++) {
        char *e;
        if (*p != ' ')
            return MOS_E_PROTO;
        errno = 0;
        st->f[i] = strtoull(p + 1, &e, 10);
        if (e == p + 1 || errno == ERANGE)
            return MOS_E_PROTO;
        p = e;
    }
    return 0;
}

int mos_proc_stat_read(pid_t pid, struct mos_proc_stat *st)
{
    char path[64], buf[2048];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return n < 0 ? -errno : MOS_E_PROTO;
    buf[n] = '\0';
    return mos_proc_stat_parse(buf, st);
}
