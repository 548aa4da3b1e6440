/* Process capture, image stream and restore. */
#ifndef MOS_MIGRATE_H
#define MOS_MIGRATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MOS_VMA_PATH_MAX 4096

/* One line of /proc/PID/maps. */
struct mos_vma {
    uint64_t start, end;  /* [start, end) */
    uint64_t offset;      /* file offset of start */
    uint32_t prot;        /* PROT_READ | PROT_WRITE | PROT_EXEC */
    int shared;           /* 1 for MAP_SHARED ('s') */
    uint32_t dev_major, dev_minor;
    uint64_t inode;
    char path[MOS_VMA_PATH_MAX]; /* file, [heap], [stack], [vdso]... or "" */
};

struct mos_vma_list {
    struct mos_vma *vmas;
    size_t count;
};

/* Parse one maps line into vma. Returns 0 or MOS_E_PROTO. */
int mos_vma_parse_line(const char *line, struct mos_vma *vma);
/* Read /proc/PID/maps. Returns 0, -errno, or MOS_E_PROTO for a line that does not parse. */
int mos_vma_list_read(pid_t pid, struct mos_vma_list *list);
void mos_vma_list_free(struct mos_vma_list *list);

#endif
