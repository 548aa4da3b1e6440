#include "mos/procfs.h"

#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

int mos_proc_status_texts(pid_t pid, const char *const keys[], char *const vals[], int n,
                          size_t len)
{
    char line[512];
    int found = 0;
    FILE *f = status_open(pid);

    if (!f)
        return -errno;
    while (found < n && fgets(line, sizeof(line), f))
        for (int k = 0; k < n; k++) {
            size_t klen = strlen(keys[k]);
            if (strncmp(line, keys[k], klen) != 0)
                continue;
            const char *v = line + klen;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(vals[k], len, "%.*s", (int)strcspn(v, "\n"), v);
            found++;
        }
    fclose(f);
    return found;
}

int mos_proc_status_text(pid_t pid, const char *key, char *val, size_t len)
{
    return mos_proc_status_texts(pid, &key, &val, 1, len);
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

/* "KEY:" at a line's start in text: what follows it, or NULL. */
static const char *status_value(const char *text, const char *key)
{
    size_t len = strlen(key);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, len) == 0 && p[len] == ':')
            return p + len + 1;
    return NULL;
}

/* n unsigned decimal ids, separated by blanks, each below 2^32 - 1 (-1 is no id). */
static int ids_parse(const char *v, unsigned out[], int n)
{
    for (int i = 0; i < n; i++) {
        char *e;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v < '0' || *v > '9')
            return MOS_E_PROTO;
        errno = 0;
        unsigned long long x = strtoull(v, &e, 10);
        if (errno == ERANGE || x >= 0xffffffffull)
            return MOS_E_PROTO;
        out[i] = (unsigned)x;
        v = e;
    }
    return 0;
}

static int hex_parse(const char *v, uint64_t *out)
{
    char *e;

    while (v && (*v == ' ' || *v == '\t'))
        v++;
    if (!v || !((*v >= '0' && *v <= '9') || (*v >= 'a' && *v <= 'f')))
        return MOS_E_PROTO;
    errno = 0;
    *out = strtoull(v, &e, 16);
    return errno == ERANGE ? MOS_E_PROTO : 0;
}

int mos_proc_ident_parse(const char *status, const char *stat, struct mos_proc_ident *id)
{
    struct mos_proc_stat st;
    unsigned uids[MOS_ID_FIELDS], gids[MOS_ID_FIELDS], ppid;
    const char *u = status_value(status, "Uid"), *g = status_value(status, "Gid");
    const char *pp = status_value(status, "PPid");

    memset(id, 0, sizeof(*id));
    if (!u || !g || !pp || ids_parse(u, uids, MOS_ID_FIELDS) != 0 ||
        ids_parse(g, gids, MOS_ID_FIELDS) != 0 || ids_parse(pp, &ppid, 1) != 0 ||
        ppid > 0x7fffffffu ||
        hex_parse(status_value(status, "CapPrm"), &id->cap_prm) != 0 ||
        hex_parse(status_value(status, "CapEff"), &id->cap_eff) != 0 ||
        hex_parse(status_value(status, "CapAmb"), &id->cap_amb) != 0 ||
        mos_proc_stat_parse(stat, &st) != 0)
        return MOS_E_PROTO;
    for (int i = 0; i < MOS_ID_FIELDS; i++) {
        id->uid[i] = (uid_t)uids[i];
        id->gid[i] = (gid_t)gids[i];
    }
    id->ppid = (pid_t)ppid;
    id->start_time = st.f[MOS_STAT_STARTTIME];
    return 0;
}

/* A whole small /proc file into buf (NUL-terminated). 0 or -errno. */
static int proc_file(pid_t pid, const char *name, char *buf, size_t len)
{
    char path[64];
    size_t got = 0;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
        got += (size_t)n;
    int rc = n < 0 ? -errno : 0;
    close(fd);
    buf[got] = '\0';
    return rc;
}

int mos_proc_ident_read(pid_t pid, struct mos_proc_ident *id)
{
    char status[8192], stat_text[2048], path[64];
    struct stat status_file, exe;
    int rc;

    if ((rc = proc_file(pid, "status", status, sizeof(status))) != 0 ||
        (rc = proc_file(pid, "stat", stat_text, sizeof(stat_text))) != 0 ||
        (rc = mos_proc_ident_parse(status, stat_text, id)) != 0)
        return rc;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (stat(path, &status_file) != 0)
        return -errno;
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    id->status_uid = status_file.st_uid;
    id->exe_setid = stat(path, &exe) != 0 ? -1 : (exe.st_mode & (S_ISUID | S_ISGID)) != 0;
    return 0;
}

static uint64_t limit_value(const char *text)
{
    return strncmp(text, "unlimited", 9) == 0 ? (uint64_t)RLIM_INFINITY
                                               : strtoull(text, NULL, 10);
}

/* One line per resource after a heading, in fixed columns: the name 26 wide, soft and hard 21
 * each (fs/proc/base.c). */
int mos_proc_rlimits_read(pid_t pid, uint64_t lim[MOS_PROC_RLIMITS][2])
{
    char path[64], line[256];
    FILE *f;
    int i = -1;

    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return mos_errno_status();
    while (fgets(line, sizeof(line), f) && i < MOS_PROC_RLIMITS) {
        if (i >= 0) {
            if (strlen(line) <= 26 + 21) {
                fclose(f);
                return MOS_E_PROTO;
            }
            lim[i][0] = limit_value(line + 26);
            lim[i][1] = limit_value(line + 26 + 21);
        }
        i++;
    }
    fclose(f);
    return i == MOS_PROC_RLIMITS ? 0 : MOS_E_PROTO;
}

int mos_vma_shared_anon(const struct mos_vma *vma)
{
    return vma->shared && strcmp(vma->path, "/dev/zero (deleted)") == 0;
}
