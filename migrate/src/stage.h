/* The receiving side of a live migration: pages that arrived while the process still ran
 * (PRECOPY records), kept by address until the image says which stand (KEEP). Private. */
#ifndef MOS_MIGRATE_STAGE_H
#define MOS_MIGRATE_STAGE_H

#include "image_format.h"

#include <stddef.h>
#include <stdint.h>

struct page_stage;

struct page_stage *page_stage_new(void);
void page_stage_free(struct page_stage *s);
/* A PRECOPY record's payload: its run, checked (user addresses, length, the staging limit),
 * copied in; a page staged before is overwritten. 0, MOS_E_IMAGE or -ENOMEM (logged). */
int page_stage_record(void *stage, const uint8_t *payload, size_t len);
/* A run of whole user pages: 1 or 0. */
int page_stage_run_ok(uint64_t addr, uint64_t npages);
/* A PREBULK record's payload: struct mos_rec_bulk, then its run table (struct mos_rec_pages
 * each, without pages), which must fill the record exactly, each run of whole user pages, all
 * adding up to the record's pages. *table points at the table. 0 or MOS_E_IMAGE (logged). */
int page_stage_bulk_check(const uint8_t *payload, size_t len, struct mos_rec_bulk *rec,
                          const uint8_t **table);
/* The checks alone: *run is the record's run, its pages follow it in payload. 0 or
 * MOS_E_IMAGE (logged). */
int page_stage_check(const uint8_t *payload, size_t len, struct mos_rec_pages *run);
/* Pages of a checked run, copied in. 0, MOS_E_IMAGE (the limit) or -ENOMEM (logged). */
int page_stage_put(struct page_stage *s, uint64_t addr, uint64_t npages, const uint8_t *data);
/* The longest stretch from addr of at most npages staged pages that lie one after another
 * in the stage too: *data points at them. 0 when addr was never staged. */
uint64_t page_stage_find(const struct page_stage *s, uint64_t addr, uint64_t npages,
                         const uint8_t **data);
uint64_t page_stage_pages(const struct page_stage *s);

#endif
