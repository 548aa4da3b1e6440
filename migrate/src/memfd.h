/* memfd objects in checkpoint mode (private): the objects a process holds or maps shared,
 * captured once each however many fds and VMAs name them, and made again before the fds and
 * VMAs that name them are. Layouts: image_format.h (MEMFDS, MEMFD_PAGES). */
#ifndef MOS_MIGRATE_MEMFD_H
#define MOS_MIGRATE_MEMFD_H

#include "image.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- capture */

struct memfd_extent {
    uint64_t first, npages; /* pages that hold data (SEEK_DATA .. SEEK_HOLE) */
};

struct memfd_obj {
    uint64_t dev, ino;
    int fd; /* ours: pidfd_getfd of the process's, or opened through map_files */
    struct mos_rec_memfd rec;
    char name[MOS_IMG_MAX_MEMFD_NAME + 1];
    struct memfd_extent *ext;
    size_t next;
};

struct memfd_objs {
    struct memfd_obj *v;
    size_t n, cap;
    uint64_t bytes; /* sizes together */
};

/* The object behind the process's fd (path: its /proc link), unless known already. 0 or a
 * status (logged). */
int mos_memfd_take_fd(struct memfd_objs *s, pid_t pid, int fd, const char *path);
/* The object a shared VMA [start, end) maps, unless known already (an fd of the process took
 * it): opened through /proc/PID/map_files, which needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN.
 * 0 or a status (logged; MOS_E_NOT_MIGRATABLE when the object cannot be reached). */
int mos_memfd_take_map(struct memfd_objs *s, pid_t pid, uint64_t start, uint64_t end,
                       uint64_t ino, const char *path);
/* The MEMFDS record and every object's MEMFD_PAGES records. 0 or a status (logged). */
int mos_memfds_put(struct memfd_objs *s, struct mos_img_writer *w, pid_t pid);
void mos_memfds_free(struct memfd_objs *s);

/* ---- restore, in the restorer: the objects made again from the image, the fds in m */

/* memfd_create each object (sealing allowed), size it, write its MEMFD_PAGES records. 0 or
 * a status (logged). */
int mos_memfds_make(struct mos_img_reader *rd, struct mos_img_meta *m);
/* Once the VMAs are mapped: each object's seals, then the restorer's fds closed. */
int mos_memfds_seal(struct mos_img_meta *m);

#endif
