/* A page run: npages whole pages starting at a page-aligned address. The unit in which the
 * transport carries pages and the image stream announces them; both modules use this type. */
#ifndef MOS_PAGE_RUN_H
#define MOS_PAGE_RUN_H

#include <stddef.h>
#include <stdint.h>

#define MOS_PAGE_SIZE 4096u

struct mos_page_run {
    uint64_t addr;
    uint64_t npages;
};

/* A consumer of received pages: n runs whose pages lie back to back at data (valid only
 * during the call). Returns 0, or a negative status that aborts the transfer. */
typedef int (*mos_page_place_fn)(void *arg, const struct mos_page_run *runs, size_t n,
                                 const uint8_t *data);

#endif
