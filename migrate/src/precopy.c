/* Live pre-copy, the sending side. The process's private anonymous memory is registered with
 * a userfaultfd in write-protect async mode (Linux 6.7): a write to a protected page just
 * clears its protection, in the kernel, without stopping the writer, and PAGEMAP_SCAN with
 * PM_SCAN_WP_MATCHING lists the written pages and protects them again in one call. So:
 * protect, send everything present, then rounds of what was written while the last round
 * was read, until few pages are left or a round stops shrinking. At the freeze the image
 * sends only what is new or written since it was sent; the rest stands (KEEP).
 *
 * A page may be kept only where its address still holds the memory that was sent: a VMA
 * made anew there has no tracking (PM_SCAN_CHECK_WPASYNC fails on it: nothing kept), and a
 * tracked VMA moved there by mremap carries its protected page tables along, so mremap is
 * heard as an event (UFFD_EVENT_REMAP) and both of its ranges forget what was sent. */
#include "precopy.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/procfs.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define PAGE 4096ull
#define READ_PAGES 256u    /* pages per process_vm_readv */
#define SCAN_REGIONS 1024u
#define MAX_ROUNDS 12
#define FEW_PAGES 256u     /* a round this small: freeze now (1 MiB) */

/* The 6.1 headers here lack the 6.7 UAPI: spelled out. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct page_region {
    uint64_t start, end, categories;
};
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* A tracked VMA as it was registered; bit i of staged: page i was sent and what was sent is
 * still its content unless written since, of sent: it was sent once (never cleared: the
 * receiver holds something for it), of kept: it stands.
 * The bitmaps are sparse, a leaf per GiB allocated when a page in it is sent: a tracked VMA
 * may be a reservation of terabytes (ASan's shadow) with a few pages in use. */
#define LEAF_PAGES (1ull << 18)
struct pre_range {
    uint64_t start, end;
    uint64_t **staged, **kept, **sent;
    size_t nleaves;
};

struct run_list {
    struct mos_rec_pages *runs;
    size_t n, cap;
    int split; /* the next page opens a run: runs never span two VMAs (restore checks) */
};

struct mos_precopy {
    pid_t pid;
    const struct mos_job_owner *owner; /* mosd's jobs: still theirs, checked per read */
    int uffd, pagemap, stop_fd;
    struct pre_range *ranges;
    size_t nranges;
    pthread_mutex_t mu; /* the bitmaps: the event thread forgets ranges */
    uint64_t moves;     /* mremap events heard: a read begun before one may be stale */
    pthread_t events;
    int have_events;
    struct page_region *regions;
    uint8_t *buf;
    struct run_list keep;
    uint64_t rounds, pages, resent, kept, ns;
};

static int bit_get(uint64_t *const *b, uint64_t i)
{
    const uint64_t *leaf = b[i / LEAF_PAGES];
    i %= LEAF_PAGES;
    return leaf && (leaf[i / 64] >> (i % 64)) & 1;
}

static int bit_set(uint64_t **b, uint64_t i)
{
    uint64_t **leaf = &b[i / LEAF_PAGES];

    if (!*leaf && !(*leaf = calloc(LEAF_PAGES / 64, sizeof(uint64_t))))
        return -ENOMEM;
    i %= LEAF_PAGES;
    (*leaf)[i / 64] |= 1ull << (i % 64);
    return 0;
}

/* Pages [from, to) of a range: only leaves that exist hold bits. */
static void bits_clear(uint64_t **b, uint64_t from, uint64_t to)
{
    while (from < to) {
        uint64_t n = from / LEAF_PAGES, end = (n + 1) * LEAF_PAGES < to ? (n + 1) * LEAF_PAGES : to;
        for (uint64_t i = from; b[n] && i < end; i++)
            b[n][(i % LEAF_PAGES) / 64] &= ~(1ull << (i % 64));
        from = end;
    }
}

static void leaves_free(uint64_t **b, size_t n)
{
    for (size_t i = 0; b && i < n; i++)
        free(b[i]);
    free(b);
}

static struct pre_range *range_of(const struct mos_precopy *p, uint64_t addr)
{
    size_t lo = 0, hi = p->nranges;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (addr < p->ranges[mid].start)
            hi = mid;
        else if (addr >= p->ranges[mid].end)
            lo = mid + 1;
        else
            return &p->ranges[mid];
    }
    return NULL;
}

/* What was sent of [start, start + len) no longer stands for it (mremap moved memory from or
 * to there, or the page was protected again and not sent): it is not kept. */
static void forget(struct mos_precopy *p, uint64_t start, uint64_t len)
{
    uint64_t end = start + len;

    start &= ~(PAGE - 1);
    for (size_t i = 0; i < p->nranges; i++) {
        struct pre_range *r = &p->ranges[i];
        uint64_t s = start > r->start ? start : r->start, e = end < r->end ? end : r->end;
        if (s < e)
            bits_clear(r->staged, (s - r->start) / PAGE, (e - r->start + PAGE - 1) / PAGE);
    }
}

/* A page the scan protected again but that was not sent: never kept (it travels frozen). */
static void forget_locked(struct mos_precopy *p, uint64_t start, uint64_t len)
{
    pthread_mutex_lock(&p->mu);
    forget(p, start, len);
    pthread_mutex_unlock(&p->mu);
}

static void events_drain(struct mos_precopy *p)
{
    struct uffd_msg msg[16];
    ssize_t n;

    while ((n = read(p->uffd, msg, sizeof(msg))) > 0)
        for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++)
            if (msg[i].event == UFFD_EVENT_REMAP) {
                p->moves++;
                forget(p, msg[i].arg.remap.from, msg[i].arg.remap.len);
                forget(p, msg[i].arg.remap.to, msg[i].arg.remap.len);
            }
}

/* The process's mremap waits until its event is read: read them as they come. */
static void *events_run(void *arg)
{
    struct mos_precopy *p = arg;
    struct pollfd pf[2] = {{p->uffd, POLLIN, 0}, {p->stop_fd, POLLIN, 0}};

    for (;;) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        pthread_mutex_lock(&p->mu);
        events_drain(p);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static int is_tracked_kind(const struct mos_vma *v)
{
    if (v->shared || v->inode != 0 || (v->prot & (PROT_READ | PROT_WRITE)) !=
                                          (PROT_READ | PROT_WRITE))
        return 0;
    /* not [stack]: it grows down, and a receiver that places pages ahead maps plain memory */
    return v->path[0] == '\0' || !strcmp(v->path, "[heap]") || !strncmp(v->path, "[anon:", 6);
}

static int range_add(struct mos_precopy *p, const struct mos_vma *v)
{
    size_t leaves = (size_t)(((v->end - v->start) / PAGE + LEAF_PAGES - 1) / LEAF_PAGES);
    struct pre_range r = {v->start, v->end, calloc(leaves, sizeof(uint64_t *)),
                          calloc(leaves, sizeof(uint64_t *)), calloc(leaves, sizeof(uint64_t *)),
                          leaves};
    struct pre_range *n = realloc(p->ranges, (p->nranges + 1) * sizeof(*n));

    if (n)
        p->ranges = n;
    if (!r.staged || !r.kept || !r.sent || !n) {
        free(r.staged);
        free(r.kept);
        free(r.sent);
        return -ENOMEM;
    }
    p->ranges[p->nranges++] = r;
    return 0;
}

/* Register every private anonymous read-write VMA for write-protect; one that cannot be (the
 * process's own userfaultfd, say) is left out and travels at the freeze. Nothing is protected
 * here: the first round protects what is present, and only that. UFFDIO_WRITEPROTECT over a
 * whole VMA would, with WP_UNPOPULATED, fill every empty page table with markers: terabytes of
 * reservation (ASan's shadow, a JVM's heap) would cost gigabytes of page tables. A page never
 * touched that is written later arrives unprotected, which reads as written: right. */
static int ranges_track(struct mos_precopy *p)
{
    struct mos_vma_list l;
    int rc = mos_vma_list_read(p->pid, &l);

    for (size_t i = 0; rc == 0 && i < l.count; i++) {
        const struct mos_vma *v = &l.vmas[i];
        if (!is_tracked_kind(v))
            continue;
        struct uffdio_register reg = {.range = {v->start, v->end - v->start},
                                      .mode = UFFDIO_REGISTER_MODE_WP};
        if (ioctl(p->uffd, UFFDIO_REGISTER, &reg) == 0)
            rc = range_add(p, v);
    }
    mos_vma_list_free(&l);
    return rc;
}

static int uffd_api(int uffd)
{
    const uint64_t want =
        UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_EVENT_REMAP;
    struct uffdio_api api = {.api = UFFD_API, .features = want};

    if (ioctl(uffd, UFFDIO_API, &api) != 0)
        return errno == EINVAL ? -EOPNOTSUPP : -errno;
    return (api.features & want) == want ? 0 : -EOPNOTSUPP;
}

static void precopy_free(struct mos_precopy *p)
{
    if (p->have_events) {
        uint64_t one = 1;
        if (write(p->stop_fd, &one, sizeof(one)) != sizeof(one))
            pthread_cancel(p->events);
        pthread_join(p->events, NULL);
    }
    /* closing the userfaultfd unregisters every range; protected pages stay writable */
    if (p->uffd >= 0)
        close(p->uffd);
    if (p->pagemap >= 0)
        close(p->pagemap);
    if (p->stop_fd >= 0)
        close(p->stop_fd);
    for (size_t i = 0; i < p->nranges; i++) {
        leaves_free(p->ranges[i].staged, p->ranges[i].nleaves);
        leaves_free(p->ranges[i].kept, p->ranges[i].nleaves);
        leaves_free(p->ranges[i].sent, p->ranges[i].nleaves);
    }
    free(p->ranges);
    free(p->regions);
    free(p->buf);
    free(p->keep.runs);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int uffd_take(pid_t pid, const struct mos_dump_opts *opts, int *uffd)
{
    struct mos_dump *d;
    int rc = mos_dump_freeze(pid, opts, &d);

    if (rc != 0)
        return rc;
    rc = mos_dump_userfaultfd(d, uffd);
    int rrc = mos_dump_abort(d);
    if (rc == 0 && rrc != 0) {
        close(*uffd);
        rc = rrc;
    }
    return rc;
}

int mos_precopy_start(pid_t pid, const struct mos_dump_opts *opts, struct mos_precopy **out)
{
    struct mos_precopy *p = calloc(1, sizeof(*p));
    char path[64];
    int rc;

    *out = NULL;
    if (!p)
        return -ENOMEM;
    p->pid = pid;
    p->owner = opts ? opts->owner : NULL;
    p->uffd = p->pagemap = p->stop_fd = -1;
    pthread_mutex_init(&p->mu, NULL);
    rc = uffd_take(pid, opts, &p->uffd);
    if (rc == MOS_E_NOT_MIGRATABLE || rc == -ESRCH) {
        precopy_free(p);
        return rc;
    }
    const char *what = "userfaultfd in the process";
    if (rc == 0) {
        what = "userfaultfd write-protect in async mode (Linux 6.7)";
        rc = uffd_api(p->uffd);
    }
    snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
    if (rc == 0) {
        what = "the process's pagemap";
        p->pagemap = open(path, O_RDONLY | O_CLOEXEC);
        p->stop_fd = eventfd(0, EFD_CLOEXEC);
        p->regions = malloc(SCAN_REGIONS * sizeof(*p->regions));
        p->buf = malloc(READ_PAGES * PAGE);
        if (p->pagemap < 0 || p->stop_fd < 0)
            rc = -errno;
        else if (!p->regions || !p->buf)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        what = "tracking its memory";
        rc = ranges_track(p);
    }
    if (rc == 0 && pthread_create(&p->events, NULL, events_run, p) != 0)
        rc = -EAGAIN;
    if (rc != 0) {
        mos_warn("migrate", "pid %d: no live pre-copy (%s: %s); it moves by stop-and-copy",
                 (int)pid, what, mos_strerror(rc));
        precopy_free(p);
        return 0;
    }
    p->have_events = 1;
    *out = p;
    return 0;
}

/* One PRECOPY record per stretch of pages worth sending; marks them sent. In the first round
 * a zero page is not sent (never sent, it travels at the freeze if it is still present). */
static int emit(struct mos_precopy *p, struct mos_img_writer *w, uint64_t addr, uint64_t np,
                uint64_t moves)
{
    uint64_t start = 0;
    int rc = 0;

    pthread_mutex_lock(&p->mu);
    if (p->moves != moves) {
        /* read before an mremap: not sent, and what was sent of it before is forgotten (its
         * protection is back on, so it would look unwritten): it travels at the freeze */
        forget(p, addr, np * PAGE);
        np = 0;
    }
    for (uint64_t k = 0; k <= np && rc == 0; k++) {
        int take = 0;
        if (k < np) {
            struct pre_range *r = range_of(p, addr + k * PAGE);
            static const uint8_t zero[PAGE];
            uint64_t i = r ? (addr + k * PAGE - r->start) / PAGE : 0;
            int was = r && bit_get(r->staged, i);
            take = r && (was || memcmp(p->buf + k * PAGE, zero, PAGE) != 0);
            if (take && ((rc = bit_set(r->sent, i)) != 0 || (rc = bit_set(r->staged, i)) != 0)) {
                forget(p, addr + start * PAGE, (k - start + 1) * PAGE); /* marked, not sent */
                break;
            }
            p->resent += take && was;
        }
        if (!take) {
            if (k > start) {
                struct mos_rec_pages ph = {addr + start * PAGE, k - start};
                struct iovec parts[2] = {{&ph, sizeof(ph)},
                                         {p->buf + start * PAGE, (k - start) * PAGE}};
                rc = mos_img_put(w, MOS_REC_PRECOPY, parts, 2);
                p->pages += k - start;
            }
            start = k + 1;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* It runs meanwhile: what was read must still be the owner's own process (a set-id exec
 * makes it someone else's, whose memory must not leave), checked after each read, before its
 * pages leave. 0 or MOS_E_NOT_MIGRATABLE (logged). */
static int owner_still(struct mos_precopy *p)
{
    char why[160];
    int rc = p->owner ? mos_migrate_owner_check(p->pid, p->owner, why, sizeof(why)) : 0;

    if (rc == 0)
        return 0;
    mos_err("migrate", "pid %d stays: it %s", (int)p->pid,
            rc == MOS_E_NOT_MIGRATABLE ? why : mos_strerror(rc));
    return MOS_E_NOT_MIGRATABLE;
}

/* Read a run from the running process and send it. A page unmapped meanwhile ends the read
 * early: the rest of the run is not sent (it travels at the freeze if it exists then). */
static int run_send(struct mos_precopy *p, struct mos_img_writer *w, uint64_t addr,
                    uint64_t np)
{
    for (uint64_t off = 0; off < np;) {
        uint64_t n = np - off < READ_PAGES ? np - off : READ_PAGES;
        struct iovec local = {p->buf, n * PAGE}, remote = {(void *)(addr + off * PAGE), n * PAGE};
        pthread_mutex_lock(&p->mu);
        uint64_t moves = p->moves;
        pthread_mutex_unlock(&p->mu);
        ssize_t got = process_vm_readv(p->pid, &local, 1, &remote, 1, 0);
        if (got < 0 && errno == ESRCH)
            return -ESRCH;
        uint64_t full = got > 0 ? (uint64_t)got / PAGE : 0;
        int rc = full ? owner_still(p) : 0;
        if (full && rc == 0)
            rc = emit(p, w, addr + off * PAGE, full, moves);
        if (rc != 0)
            return rc;
        if (full < n) {
            forget_locked(p, addr + (off + full) * PAGE, (np - off - full) * PAGE);
            return 0;
        }
        off += n;
    }
    return 0;
}

/* A bulk transfer of a round's runs (the io's page channel): the transport reads them, and
 * after each read says how many leading pages it got, before they leave. */
struct bulk_read {
    struct mos_precopy *p;
    uint64_t moves; /* mremap events heard before the read being checked */
};

/* Every page of the frame was sent (the receiver holds something for it); those read whole,
 * with no mremap since, stand unless written again; the others (zeros, or stale) do not. */
static int bulk_mark(struct mos_precopy *p, const struct mos_page_run *runs, size_t n,
                     uint64_t good)
{
    for (size_t i = 0; i < n; i++) {
        struct pre_range *r = range_of(p, runs[i].addr);
        uint64_t first = r ? (runs[i].addr - r->start) / PAGE : 0;
        if (!r || runs[i].addr + runs[i].npages * PAGE > r->end)
            return -EINVAL; /* the scan gave it from a tracked range: never */
        for (uint64_t k = 0; k < runs[i].npages; k++) {
            int rc = bit_set(r->sent, first + k);
            if (rc != 0)
                return rc;
        }
        uint64_t ok = good < runs[i].npages ? good : runs[i].npages;
        for (uint64_t k = 0; k < ok; k++) {
            p->resent += bit_get(r->staged, first + k);
            int rc = bit_set(r->staged, first + k);
            if (rc != 0)
                return rc;
        }
        bits_clear(r->staged, first + ok, first + runs[i].npages);
        good -= ok;
        p->pages += runs[i].npages;
    }
    return 0;
}

static int bulk_read_check(void *arg, const struct mos_page_run *runs, size_t n,
                           uint64_t pages_read)
{
    struct bulk_read *b = arg;
    struct mos_precopy *p = b->p;
    int rc = pages_read ? owner_still(p) : 0;

    if (rc != 0)
        return rc;
    pthread_mutex_lock(&p->mu);
    rc = bulk_mark(p, runs, n, p->moves == b->moves ? pages_read : 0);
    b->moves = p->moves;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* The regions of one scan, announced by a PREBULK record (so that the receiver maps them at
 * once, not frame by frame) and sent on the page channel. */
static int regions_send_bulk(struct mos_precopy *p, struct mos_img_writer *w, int n,
                             uint64_t *npages)
{
    _Static_assert(SCAN_REGIONS * sizeof(struct mos_page_run) <= READ_PAGES * PAGE,
                   "a scan's runs fit the read buffer");
    struct mos_page_run *runs = (struct mos_page_run *)p->buf;
    struct mos_rec_bulk rec = {0, (uint64_t)n};
    struct bulk_read b = {p, 0};

    for (int k = 0; k < n; k++) {
        runs[k] = (struct mos_page_run){p->regions[k].start,
                                        (p->regions[k].end - p->regions[k].start) / PAGE};
        rec.pages += runs[k].npages;
    }
    struct iovec parts[2] = {{&rec, sizeof(rec)}, {runs, (size_t)n * sizeof(runs[0])}};
    int rc = mos_img_put(w, MOS_REC_PREBULK, parts, 2);
    pthread_mutex_lock(&p->mu);
    b.moves = p->moves;
    pthread_mutex_unlock(&p->mu);
    if (rc == 0)
        rc = w->io->ops->send_pages_live(w->io, p->pid, runs, (size_t)n, bulk_read_check, &b);
    *npages += rec.pages;
    return rc;
}

/* One scan over every tracked range, protecting what it returns (in the same walk, so a write
 * after it is seen next time): the pages written since the last scan (written), else every
 * present page. Their runs are sent. *npages: how many. */
static int round_run(struct mos_precopy *p, struct mos_img_writer *w, int written,
                     uint64_t *npages)
{
    *npages = 0;
    for (size_t i = 0; i < p->nranges; i++) {
        struct pm_scan_arg a = {
            .size = sizeof(a), .start = p->ranges[i].start, .end = p->ranges[i].end,
            .vec = (uint64_t)(uintptr_t)p->regions, .vec_len = SCAN_REGIONS,
            .category_inverted = PAGE_IS_PFNZERO, .category_mask = PAGE_IS_PFNZERO,
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC};
        if (written)
            a.category_mask |= PAGE_IS_WRITTEN;
        while (a.start < a.end) {
            int n = ioctl(p->pagemap, PAGEMAP_SCAN, &a);
            if (n < 0) {
                /* unmapped or no longer tracked: it travels at the freeze; a failed walk may
                 * have protected part of it again */
                forget_locked(p, a.start, a.end - a.start);
                break;
            }
            int rc = n > 0 && w->io->ops->send_pages_live ? regions_send_bulk(p, w, n, npages)
                                                           : 0;
            for (int k = 0; k < n && !w->io->ops->send_pages_live && rc == 0; k++) {
                uint64_t np = (p->regions[k].end - p->regions[k].start) / PAGE;
                rc = run_send(p, w, p->regions[k].start, np);
                *npages += np;
            }
            if (rc != 0)
                return rc;
            if (a.walk_end <= a.start)
                break;
            a.start = a.walk_end;
        }
    }
    return 0;
}

int mos_precopy_rounds(struct mos_precopy *p, struct mos_img_io *io)
{
    struct mos_img_writer w = {.io = io};
    uint64_t t0 = mos_clock_now_ns(), prev = UINT64_MAX, n = 0;
    int rc = 0;

    for (int round = 0; round < MAX_ROUNDS && rc == 0; round++) {
        uint64_t tr = mos_clock_now_ns();
        rc = round_run(p, &w, round > 0, &n);
        p->rounds++;
        mos_dbg("migrate", "pid %d: live round %d: %llu pages in %.1f ms", (int)p->pid, round,
                (unsigned long long)n, (double)(mos_clock_now_ns() - tr) / 1e6);
        /* few left, or writes as fast as we send: freeze now */
        if (n <= FEW_PAGES || (round > 1 && n * 10 > prev * 8))
            break;
        prev = n;
    }
    p->ns = mos_clock_now_ns() - t0;
    if (rc != 0 && rc != -ESRCH && rc != MOS_E_NOT_MIGRATABLE)
        mos_err("migrate", "pid %d: sending memory ahead failed: %s", (int)p->pid,
                mos_strerror(rc));
    return rc;
}

static int run_add(struct run_list *l, uint64_t addr)
{
    struct mos_rec_pages *last = l->n && !l->split ? &l->runs[l->n - 1] : NULL;

    l->split = 0;
    if (last && last->addr + last->npages * PAGE == addr) {
        last->npages++;
        return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct mos_rec_pages *k = realloc(l->runs, cap * sizeof(*k));
        if (!k)
            return -ENOMEM;
        l->runs = k;
        l->cap = cap;
    }
    l->runs[l->n++] = (struct mos_rec_pages){addr, 1};
    return 0;
}

static int keep_add(struct mos_precopy *p, uint64_t addr)
{
    p->kept++;
    return run_add(&p->keep, addr);
}

/* Scanned frozen, through the image's own pagemap fd (an exec meanwhile left ours on the old
 * memory): present pages not written since they were sent, in a VMA still tracked. */
int mos_precopy_keep_vma(struct mos_precopy *p, int pagemap_fd, const struct mos_rec_vma *v)
{
    int rc = 0;

    if (v->kind != MOS_VMA_ANON)
        return 0;
    p->keep.split = 1;
    pthread_mutex_lock(&p->mu);
    events_drain(p);
    for (size_t i = 0; i < p->nranges && rc == 0; i++) {
        struct pre_range *r = &p->ranges[i];
        uint64_t s = v->start > r->start ? v->start : r->start;
        uint64_t e = v->end < r->end ? v->end : r->end;
        struct pm_scan_arg a = {
            .size = sizeof(a), .flags = PM_SCAN_CHECK_WPASYNC, .start = s, .end = e,
            .vec = (uint64_t)(uintptr_t)p->regions, .vec_len = SCAN_REGIONS,
            .category_inverted = PAGE_IS_PFNZERO | PAGE_IS_WRITTEN,
            .category_mask = PAGE_IS_PFNZERO | PAGE_IS_WRITTEN,
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED};
        while (a.start < a.end && rc == 0) {
            int n = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
            if (n < 0)
                break; /* not tracked any more: nothing of it is kept */
            for (int k = 0; k < n && rc == 0; k++)
                for (uint64_t at = p->regions[k].start; at < p->regions[k].end && rc == 0;
                     at += PAGE) {
                    uint64_t bit = (at - r->start) / PAGE;
                    if (bit_get(r->staged, bit) && (rc = bit_set(r->kept, bit)) == 0)
                        rc = keep_add(p, at);
                }
            if (a.walk_end <= a.start)
                break;
            a.start = a.walk_end;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int runs_put(struct mos_img_writer *w, uint32_t magic, const struct run_list *l)
{
    const size_t per = (MOS_IMG_MAX_META - sizeof(struct mos_rec_keep)) / sizeof(l->runs[0]);
    int rc = 0;

    for (size_t at = 0; at < l->n && rc == 0; at += per) {
        struct mos_rec_keep k = {l->n - at < per ? l->n - at : per};
        struct iovec parts[2] = {{&k, sizeof(k)}, {&l->runs[at], k.count * sizeof(l->runs[0])}};
        rc = mos_img_put(w, magic, parts, 2);
    }
    return rc;
}

/* What the receiver holds and that does not stand: sent once, not kept. */
static int drops_find(struct mos_precopy *p, struct run_list *drop)
{
    int rc = 0;

    for (size_t i = 0; i < p->nranges && rc == 0; i++) {
        struct pre_range *r = &p->ranges[i];
        for (size_t n = 0; n < r->nleaves && rc == 0; n++)
            for (uint64_t b = 0; r->sent[n] && b < LEAF_PAGES && rc == 0; b++) {
                uint64_t bit = n * LEAF_PAGES + b;
                if (bit_get(r->sent, bit) && !bit_get(r->kept, bit))
                    rc = run_add(drop, r->start + bit * PAGE);
            }
    }
    return rc;
}

int mos_precopy_keep_put(struct mos_precopy *p, struct mos_img_writer *w)
{
    struct run_list drop = {0};
    int rc = runs_put(w, MOS_REC_KEEP, &p->keep);

    if (rc == 0)
        rc = drops_find(p, &drop);
    if (rc == 0)
        rc = runs_put(w, MOS_REC_DROP, &drop);
    free(drop.runs);
    return rc;
}

int mos_precopy_kept(const struct mos_precopy *p, uint64_t addr)
{
    const struct pre_range *r = range_of(p, addr);
    return r && bit_get(r->kept, (addr - r->start) / PAGE);
}

void mos_precopy_end(struct mos_precopy *p, struct mos_dump_stats *st)
{
    if (!p)
        return;
    if (st) {
        st->live_rounds = p->rounds;
        st->live_pages = p->pages;
        st->live_resent = p->resent;
        st->live_kept = p->kept;
        st->live_ns = p->ns;
    }
    precopy_free(p);
}
