#include "mos/procfs.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int mos_vma_parse_line(const char *line, struct mos_vma *vma)
{
    char perms[5];
    int path_at = -1;
    unsigned long long start, end, offset, inode;
    unsigned maj, min;

    memset(vma, 0, sizeof(*vma));
    if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &offset, &maj,
               &min, &inode, &path_at) < 7 ||
        path_at < 0)
        return MOS_E_PROTO;
    if (start >= end || (start & 0xfff) || (end & 0xfff) || strlen(perms) != 4)
        return MOS_E_PROTO;
    vma->start = start;
    vma->end = end;
    vma->offset = offset;
    vma->dev_major = maj;
    vma->dev_minor = min;
    vma->inode = inode;
    vma->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
                (perms[2] == 'x' ? PROT_EXEC : 0);
    vma->shared = perms[3] == 's';
    size_t n = strcspn(line + path_at, "\n");
    if (n >= sizeof(vma->path))
        return MOS_E_PROTO;
    memcpy(vma->path, line + path_at, n);
    vma->path[n] = '\0';
    return 0;
}

int mos_vma_list_read(pid_t pid, struct mos_vma_list *list)
{
    char path[64], *line = NULL;
    size_t cap = 0, linecap = 0;
    FILE *f;
    int rc = 0;

    list->vmas = NULL;
    list->count = 0;
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return mos_errno_status();
    while (getline(&line, &linecap, f) > 0) {
        if (list->count == cap) {
            cap = cap ? cap * 2 : 64;
            struct mos_vma *v = realloc(list->vmas, cap * sizeof(*v));
            if (!v) {
                rc = -ENOMEM;
                break;
            }
            list->vmas = v;
        }
        rc = mos_vma_parse_line(line, &list->vmas[list->count]);
        if (rc != 0) {
            mos_err("migrate", "%s: cannot parse line '%.80s'", path, line);
            break;
        }
        list->count++;
    }
    free(line);
    fclose(f);
    if (rc != 0)
        mos_vma_list_free(list);
    return rc;
}

void mos_vma_list_free(struct mos_vma_list *list)
{
    free(list->vmas);
    list->vmas = NULL;
    list->count = 0;
}
