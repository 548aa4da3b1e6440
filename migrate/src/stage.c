/* Staged pages of a live migration: an open-addressing table from page number to a slot of an
 * arena grown in 16 MiB chunks. A run's pages get consecutive slots when they are new, so the
 * run is placed later with one process_vm_writev as it came. Written here rather than with a
 * library map: the key is a page number and the value a slot index, and the table must not
 * allocate per page (a 1 GiB process stages 262144 of them). */
#include "stage.h"
#include "image_format.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ull
#define CHUNK_PAGES 4096u /* 16 MiB */
#define EMPTY UINT64_MAX

struct page_stage {
    uint64_t *keys;  /* page numbers, EMPTY */
    uint32_t *slots; /* arena slot of keys[i] */
    size_t cap;      /* power of two */
    uint8_t **chunks;
    size_t nchunks;
    uint32_t used; /* slots taken */
    uint32_t limit; /* at most this many: the format's limit, and this host's memory */
};

struct page_stage *page_stage_new(void)
{
    struct page_stage *s = calloc(1, sizeof(*s));
    long phys = sysconf(_SC_PHYS_PAGES);

    if (s)
        s->limit = phys > 0 && (uint64_t)phys < MOS_IMG_MAX_STAGED ? (uint32_t)phys
                                                                 : MOS_IMG_MAX_STAGED;
    return s;
}

void page_stage_free(struct page_stage *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nchunks; i++)
        munmap(s->chunks[i], CHUNK_PAGES * PAGE);
    free(s->chunks);
    free(s->keys);
    free(s->slots);
    free(s);
}

static size_t hash_of(uint64_t pn, size_t cap)
{
    return (size_t)((pn * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static size_t lookup(const struct page_stage *s, uint64_t pn)
{
    size_t i = hash_of(pn, s->cap);

    while (s->keys[i] != EMPTY && s->keys[i] != pn)
        i = (i + 1) & (s->cap - 1);
    return i;
}

static int grow(struct page_stage *s)
{
    size_t cap = s->cap ? 2 * s->cap : 65536;
    uint64_t *keys = malloc(cap * sizeof(*keys));
    uint32_t *slots = malloc(cap * sizeof(*slots));

    if (!keys || !slots) {
        free(keys);
        free(slots);
        return -ENOMEM;
    }
    memset(keys, 0xff, cap * sizeof(*keys));
    struct page_stage old = *s;
    s->keys = keys;
    s->slots = slots;
    s->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i] != EMPTY) {
            size_t at = lookup(s, old.keys[i]);
            s->keys[at] = old.keys[i];
            s->slots[at] = old.slots[i];
        }
    free(old.keys);
    free(old.slots);
    return 0;
}

static uint8_t *slot_mem(const struct page_stage *s, uint32_t slot)
{
    return s->chunks[slot / CHUNK_PAGES] + (uint64_t)(slot % CHUNK_PAGES) * PAGE;
}

static int slot_new(struct page_stage *s, uint32_t *slot)
{
    if (s->used >= s->limit)
        return MOS_E_IMAGE;
    if (s->used / CHUNK_PAGES == s->nchunks) {
        uint8_t **c = realloc(s->chunks, (s->nchunks + 1) * sizeof(*c));
        if (!c)
            return -ENOMEM;
        s->chunks = c;
        void *m = mmap(NULL, CHUNK_PAGES * PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return -ENOMEM;
        s->chunks[s->nchunks++] = m;
    }
    *slot = s->used++;
    return 0;
}

static int stage_page(struct page_stage *s, uint64_t addr, const uint8_t *data)
{
    uint64_t pn = addr / PAGE;
    int rc;

    if ((s->used + 1) * 2 > s->cap && (rc = grow(s)) != 0)
        return rc;
    size_t at = lookup(s, pn);
    if (s->keys[at] == EMPTY) {
        if ((rc = slot_new(s, &s->slots[at])) != 0)
            return rc;
        s->keys[at] = pn;
    }
    memcpy(slot_mem(s, s->slots[at]), data, PAGE);
    return 0;
}

int page_stage_run_ok(uint64_t addr, uint64_t npages)
{
    return npages > 0 && addr % PAGE == 0 && addr < MOS_IMG_USER_TOP &&
           npages <= (MOS_IMG_USER_TOP - addr) / PAGE;
}

int page_stage_bulk_check(const uint8_t *payload, size_t len, struct mos_rec_bulk *rec,
                          const uint8_t **table)
{
    struct mos_rec_pages run;
    uint64_t pages = 0;

    if (len < sizeof(*rec)) {
        mos_err("migrate", "corrupt stream: PREBULK record of %zu bytes", len);
        return MOS_E_IMAGE;
    }
    memcpy(rec, payload, sizeof(*rec));
    if (rec->runs == 0 || rec->runs > (len - sizeof(*rec)) / sizeof(run) ||
        len != sizeof(*rec) + rec->runs * sizeof(run) || rec->pages == 0 ||
        rec->pages > MOS_IMG_USER_TOP / PAGE) {
        mos_err("migrate", "corrupt stream: PREBULK record of %zu bytes announces %llu pages in "
                "%llu runs", len, (unsigned long long)rec->pages, (unsigned long long)rec->runs);
        return MOS_E_IMAGE;
    }
    *table = payload + sizeof(*rec);
    for (uint64_t i = 0; i < rec->runs; i++) {
        memcpy(&run, *table + i * sizeof(run), sizeof(run));
        if (!page_stage_run_ok(run.addr, run.npages) || run.npages > rec->pages - pages) {
            mos_err("migrate", "corrupt stream: PREBULK record with a bad page run");
            return MOS_E_IMAGE;
        }
        pages += run.npages;
    }
    if (pages != rec->pages) {
        mos_err("migrate", "corrupt stream: PREBULK record's runs are not its pages");
        return MOS_E_IMAGE;
    }
    return 0;
}

int page_stage_check(const uint8_t *payload, size_t len, struct mos_rec_pages *run)
{
    struct mos_rec_pages ph;

    if (len >= sizeof(ph)) {
        memcpy(&ph, payload, sizeof(ph));
        if (page_stage_run_ok(ph.addr, ph.npages) && ph.npages <= MOS_IMG_MAX_RUN_PAGES &&
            len == sizeof(ph) + ph.npages * PAGE) {
            *run = ph;
            return 0;
        }
    }
    mos_err("migrate", "corrupt stream: PRECOPY record with a bad page run");
    return MOS_E_IMAGE;
}

int page_stage_put(struct page_stage *s, uint64_t addr, uint64_t npages, const uint8_t *data)
{
    int rc = 0;

    for (uint64_t i = 0; i < npages && rc == 0; i++)
        rc = stage_page(s, addr + i * PAGE, data + i * PAGE);
    if (rc == MOS_E_IMAGE)
        mos_err("migrate", "stream refused: more than %u pages sent ahead (this host's memory)",
                s->limit);
    else if (rc != 0)
        mos_err("migrate", "restore: no memory to keep the pages sent ahead (%u so far)",
                s->used);
    return rc;
}

int page_stage_record(void *stage, const uint8_t *payload, size_t len)
{
    struct mos_rec_pages ph;
    int rc = page_stage_check(payload, len, &ph);

    return rc ? rc : page_stage_put(stage, ph.addr, ph.npages, payload + sizeof(ph));
}

uint64_t page_stage_find(const struct page_stage *s, uint64_t addr, uint64_t npages,
                         const uint8_t **data)
{
    uint64_t n = 0;
    uint32_t first = 0;

    if (s->cap == 0)
        return 0;
    for (; n < npages; n++) {
        size_t at = lookup(s, addr / PAGE + n);
        if (s->keys[at] == EMPTY)
            break;
        uint32_t slot = s->slots[at];
        if (n == 0)
            first = slot;
        else if (slot != first + n || slot % CHUNK_PAGES == 0)
            break;
    }
    if (n > 0)
        *data = slot_mem(s, first);
    return n;
}

uint64_t page_stage_pages(const struct page_stage *s)
{
    return s->used;
}
