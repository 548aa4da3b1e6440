/* Stay reasons and fd classification (private): what keeps a process from migrating. */
#ifndef MOS_MIGRATE_STAY_H
#define MOS_MIGRATE_STAY_H

#include "image_format.h"
#include "mos/migrate.h"
#include "mos/procfs.h"

#include <stddef.h>
#include <sys/types.h>

/* One open fd as capture sees it. kind 0: cannot travel, why says what it is. */
struct mos_fd_seen {
    int fd;
    uint32_t kind; /* enum mos_fd_kind or 0 */
    uint32_t flags, fdflags;
    uint64_t offset;
    int dup_of; /* -1 or the earlier fd of the same open file description */
    uint32_t sock_type, shutdown; /* MOS_FD_UNIX: SOCK_*, and sk_shutdown as sock_diag shows it */
    uint64_t peer;                /* MOS_FD_UNIX: the other end's inode, 0 if it is closed */
    uint64_t dev, ino;            /* MOS_FD_MEMFD: the object */
    char path[MOS_IMG_MAX_PATH + 1];
    char why[128];
};

/* Read /proc/PID/fd and classify every fd. *out is malloc'ed. 0 or -errno. */
int mos_fd_table_read(pid_t pid, struct mos_fd_seen **out, size_t *count);
/* Pipes and sockets another process holds too cannot travel, nor a socket whose other end is
 * not among the fds that do: their entries become kind 0, with why. */
void mos_fd_own_check(pid_t pid, struct mos_fd_seen *fds, size_t n);

/* A shared map of a memfd ("/memfd:NAME (deleted)"): MOS_VMA_MEMFD in checkpoint mode. */
int mos_vma_memfd(const struct mos_vma *v);

/* Check everything that keeps pid from migrating; frozen: 1 when we already trace it. Returns
 * 0, MOS_E_NOT_MIGRATABLE with the first reason in reason[len], or -errno. */
int mos_stay_check(pid_t pid, const struct mos_dump_opts *opts, int frozen, char *reason,
                   size_t len);

#endif
