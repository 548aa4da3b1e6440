/* Fuzz the live stream's stage (PRECOPY records as a receiver keeps them): the input is a
 * sequence of records (u16 length, payload). Every record the stage accepts must then be found
 * whole, with the bytes it carried (the latest record for a page wins); one it refuses must
 * have been malformed. */
#include "image_format.h"
#include "stage.h"

#include "mos/log.h"
#include "mos/status.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}

/* Records carry a short pattern expanded to whole pages: inputs stay small. */
static uint8_t *record_make(const uint8_t *in, size_t n, size_t *len)
{
    struct mos_rec_pages ph;

    if (n < sizeof(ph) + 1)
        return NULL;
    memcpy(&ph, in, sizeof(ph));
    uint64_t pages = ph.npages <= MOS_IMG_MAX_RUN_PAGES ? ph.npages : 1;
    /* the length field may lie: the payload is as long as the record claims or one byte less */
    size_t whole = sizeof(ph) + pages * MOS_IMG_PAGE_SIZE;
    *len = whole - (pages > 0 ? (in[sizeof(ph)] & 1) : 0);
    uint8_t *rec = malloc(whole);
    if (!rec)
        return NULL;
    memcpy(rec, &ph, sizeof(ph));
    for (size_t i = sizeof(ph); i < *len; i++)
        rec[i] = in[sizeof(ph) + (i % (n - sizeof(ph)))] ^ (uint8_t)(i / MOS_IMG_PAGE_SIZE);
    return rec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct page_stage *s = page_stage_new();

    mos_log_set_sink(quiet, NULL);
    if (!s)
        return 0;
    for (size_t at = 0; at + 2 <= size;) {
        size_t n = (size_t)(data[at] | data[at + 1] << 8);
        at += 2;
        if (n > size - at)
            n = size - at;
        size_t len = 0;
        uint8_t *rec = record_make(data + at, n, &len);
        at += n;
        if (!rec)
            continue;
        struct mos_rec_pages ph;
        memcpy(&ph, rec, sizeof(ph));
        int rc = page_stage_record(s, rec, len);
        int wellformed = ph.npages >= 1 && ph.npages <= MOS_IMG_MAX_RUN_PAGES &&
                         ph.addr % MOS_IMG_PAGE_SIZE == 0 && ph.addr < MOS_IMG_USER_TOP &&
                         ph.npages <= (MOS_IMG_USER_TOP - ph.addr) / MOS_IMG_PAGE_SIZE &&
                         len == sizeof(ph) + ph.npages * MOS_IMG_PAGE_SIZE;
        if ((rc == 0) != wellformed)
            abort();
        for (uint64_t off = 0; rc == 0 && off < ph.npages;) {
            const uint8_t *got;
            uint64_t k = page_stage_find(s, ph.addr + off * MOS_IMG_PAGE_SIZE, ph.npages - off,
                                         &got);
            if (k == 0 || memcmp(got, rec + sizeof(ph) + off * MOS_IMG_PAGE_SIZE,
                                 k * MOS_IMG_PAGE_SIZE) != 0)
                abort();
            off += k;
        }
        free(rec);
    }
    page_stage_free(s);
    return 0;
}
