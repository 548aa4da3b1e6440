/* Live pre-copy, the sending side (private): write tracking with userfaultfd write-protect in
 * async mode, rounds of PRECOPY records while the process runs, and at the freeze the KEEP
 * runs. See migrate/README.md "Live pre-copy". */
#ifndef MOS_MIGRATE_PRECOPY_H
#define MOS_MIGRATE_PRECOPY_H

#include "image.h"

#include <stdint.h>
#include <sys/types.h>

struct mos_precopy;
struct mos_dump;

/* Start tracking pid's private anonymous memory. 0 with *out set; 0 with *out NULL where the
 * kernel or the process does not allow it (said in one log line: the move goes on as
 * stop-and-copy); MOS_E_NOT_MIGRATABLE or -errno where the process cannot move at all. */
int mos_precopy_start(pid_t pid, const struct mos_dump_opts *opts, struct mos_precopy **out);
/* Send the tracked memory, then rounds of what was written meanwhile, while it runs. */
int mos_precopy_rounds(struct mos_precopy *p, struct mos_img_io *io);
/* Frozen: which pages of v sent ahead stand (not written since, its tracking intact). */
int mos_precopy_keep_vma(struct mos_precopy *p, int pagemap_fd, const struct mos_rec_vma *v);
/* The KEEP records of what keep_vma found. */
int mos_precopy_keep_put(struct mos_precopy *p, struct mos_img_writer *w);
int mos_precopy_kept(const struct mos_precopy *p, uint64_t addr);
/* Stop tracking (the process's memory is as before) and add the figures to *st. */
void mos_precopy_end(struct mos_precopy *p, struct mos_dump_stats *st);

/* capture.c: a userfaultfd made inside the frozen process, ours now (its fd there closed). */
int mos_dump_userfaultfd(struct mos_dump *d, int *uffd);
void mos_dump_precopy_set(struct mos_dump *d, struct mos_precopy *p);

#endif
