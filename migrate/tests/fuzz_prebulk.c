/* Fuzz the check of a live stream's PREBULK record (pages sent ahead in bulk, announced with
 * their run table): the input is the record's payload as it came. The check must accept
 * exactly the payloads that are well formed by the format's rules, computed here on their own,
 * and point at the table it read. */
#include "image_format.h"
#include "stage.h"

#include "mos/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}

static int wellformed(const uint8_t *p, size_t len)
{
    struct mos_rec_bulk rec;
    struct mos_rec_pages run;
    uint64_t pages = 0;

    if (len < sizeof(rec) || (len - sizeof(rec)) % sizeof(run) != 0)
        return 0;
    memcpy(&rec, p, sizeof(rec));
    if (rec.runs != (len - sizeof(rec)) / sizeof(run) || rec.runs == 0 || rec.pages == 0)
        return 0;
    for (uint64_t i = 0; i < rec.runs; i++) {
        memcpy(&run, p + sizeof(rec) + i * sizeof(run), sizeof(run));
        if (run.npages == 0 || run.addr % MOS_IMG_PAGE_SIZE || run.addr >= MOS_IMG_USER_TOP ||
            run.npages > (MOS_IMG_USER_TOP - run.addr) / MOS_IMG_PAGE_SIZE)
            return 0;
        pages += run.npages; /* each below 2^35: no overflow in fewer than 2^29 runs */
        if (pages > rec.pages)
            return 0;
    }
    return pages == rec.pages;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mos_rec_bulk rec;
    const uint8_t *table = NULL;
    uint8_t *copy = malloc(size ? size : 1);

    mos_log_set_sink(quiet, NULL);
    if (!copy)
        return 0;
    memcpy(copy, data, size); /* a buffer of exactly the record's length, as ASan sees it */
    int rc = page_stage_bulk_check(copy, size, &rec, &table);
    if ((rc == 0) != wellformed(copy, size))
        abort();
    if (rc == 0 && table != copy + sizeof(rec))
        abort();
    free(copy);
    return 0;
}
