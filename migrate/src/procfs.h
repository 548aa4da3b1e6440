/* Small readers of /proc shared by capture, restore and the deputy (private to migrate/). */
#ifndef MOS_MIGRATE_PROCFS_H
#define MOS_MIGRATE_PROCFS_H

#include <stdint.h>
#include <sys/types.h>

/* OR of the hex signal masks named by keys ("SigPnd:", "SigIgn:"...) in /proc/PID/status.
 * Returns how many of the keys were found (0..n), or -errno when the file cannot be read. */
int proc_status_masks(pid_t pid, const char *const keys[], int n, uint64_t *mask);

#endif
