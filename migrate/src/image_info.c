/* mos_image_info_read: validate a whole image and summarize it (mosckpt info). */
#include "image.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *vma_kind_name(uint32_t kind)
{
    switch (kind) {
    case MOS_VMA_ANON: return "anon";
    case MOS_VMA_FILE_PRIVATE: return "file";
    case MOS_VMA_FILE_SHARED: return "file-shared";
    case MOS_VMA_FILE_COPY: return "file-copy";
    case MOS_VMA_VDSO: return "vdso";
    case MOS_VMA_ANON_SHARED: return "anon-shared";
    case MOS_VMA_MEMFD: return "memfd";
    }
    return "?";
}

static const char *fd_kind_name(uint32_t kind)
{
    return kind == MOS_FD_FILE   ? "file"
           : kind == MOS_FD_DEV  ? "dev"
           : kind == MOS_FD_PIPE ? "pipe"
           : kind == MOS_FD_EVENTFD  ? "eventfd"
           : kind == MOS_FD_SIGNALFD ? "signalfd"
           : kind == MOS_FD_TIMERFD  ? "timerfd"
           : kind == MOS_FD_EPOLL    ? "epoll"
           : kind == MOS_FD_UNIX     ? "unix"
           : kind == MOS_FD_MEMFD    ? "memfd"
                                 : "stdio";
}

/* Bulk runs (a stream with a page channel): checked and counted like PAGES records. */
struct bulk_count {
    const struct mos_img_meta *m;
    struct mos_image_info *info;
    uint32_t vi;
    uint64_t pages, announced;
};

static int bulk_count_place(void *arg, const struct mos_page_run *runs, size_t n,
                            const uint8_t *data)
{
    struct bulk_count *bc = arg;

    (void)data;
    for (size_t i = 0; i < n; i++) {
        if (mos_img_run_check(bc->m, runs[i].addr, runs[i].npages, &bc->vi) != 0 ||
            runs[i].npages > bc->announced - bc->pages) {
            mos_err("migrate", "corrupt image: bulk page run at %#llx (%llu pages) fits no VMA",
                    (unsigned long long)runs[i].addr, (unsigned long long)runs[i].npages);
            return MOS_E_IMAGE;
        }
        bc->info->vmas[bc->vi].pages += runs[i].npages;
        bc->pages += runs[i].npages;
    }
    return 0;
}

static int bulk_count(struct mos_img_reader *rd, struct mos_img_meta *m,
                      struct mos_image_info *info, const uint8_t *p, size_t len)
{
    struct mos_rec_bulk rec;
    uint64_t got = 0;
    int rc = mos_img_bulk_check(rd->io, p, len, &rec);

    if (rc != 0)
        return rc;
    struct bulk_count bc = {.m = m, .info = info, .announced = rec.pages};
    rc = rd->io->ops->recv_pages(rd->io, bulk_count_place, &bc, &got);
    if (rc != 0)
        return rc;
    if (got != rec.pages || bc.pages != rec.pages) {
        mos_err("migrate", "image ends early: %llu of %llu bulk pages arrived",
                (unsigned long long)bc.pages, (unsigned long long)rec.pages);
        return MOS_E_TRUNCATED;
    }
    info->pages += bc.pages;
    return 0;
}

static int pages_count(struct mos_img_reader *rd, struct mos_img_meta *m,
                       struct mos_image_info *info)
{
    uint32_t vi = 0;
    int bulk_seen = 0;

    for (;;) {
        uint32_t magic;
        const uint8_t *p;
        size_t len;
        struct mos_rec_pages ph;
        int rc = mos_img_get(rd, &magic, &p, &len);
        if (rc != 0)
            return rc;
        if (bulk_seen && magic != MOS_REC_END)
            break;
        if (magic == MOS_REC_BULK) {
            bulk_seen = 1;
            if ((rc = bulk_count(rd, m, info, p, len)) != 0)
                return rc;
            continue;
        }
        if (magic == MOS_REC_END) {
            struct mos_rec_end e;
            if (len != sizeof(e))
                break;
            memcpy(&e, p, sizeof(e));
            if (e.pages != info->pages || e.records != rd->records)
                break;
            info->records = rd->records;
            info->bytes = rd->bytes;
            return 0;
        }
        if (magic != MOS_REC_PAGES || len < sizeof(ph))
            break;
        memcpy(&ph, p, sizeof(ph));
        if (len != sizeof(ph) + ph.npages * MOS_IMG_PAGE_SIZE ||
            mos_img_pages_check(m, ph.addr, ph.npages, &vi) != 0)
            break;
        info->vmas[vi].pages += ph.npages;
        info->pages += ph.npages;
    }
    mos_err("migrate", "corrupt image: bad page record or END totals (record %llu)",
            (unsigned long long)rd->records);
    return MOS_E_IMAGE;
}

/* MEMFD_PAGES records are checked as they are read; nothing more to count. */
static int memfd_data_seen(void *arg, uint32_t index, uint64_t first, uint64_t npages,
                           const uint8_t *data)
{
    (void)arg, (void)index, (void)first, (void)npages, (void)data;
    return 0;
}

/* Append text to the string area at *pool; returns where it went. */
static const char *pool_add(char **pool, const char *text)
{
    size_t n = strlen(text) + 1;
    char *at = memcpy(*pool, text, n);

    *pool += n;
    return at;
}

/* The info's arrays and strings in one block, [vmas][fds][strings], so that the info owns
 * everything it points to and nothing of the image's metadata outlives the read. */
static int info_fill_tables(struct mos_image_info *info, const struct mos_img_meta *m)
{
    size_t strings = strlen(m->exe) + strlen(m->cwd) + 2;
    size_t vma_bytes = m->nvmas * sizeof(*info->vmas), fd_bytes = m->nfds * sizeof(*info->fds);
    size_t memfd_bytes = m->nmemfds * sizeof(*info->memfds);
    char *block, *pool;

    for (uint32_t i = 0; i < m->nvmas; i++)
        strings += strlen(m->vmas[i].path) + 1;
    for (uint32_t i = 0; i < m->nfds; i++)
        strings += strlen(m->fds[i].path) + 1;
    for (uint32_t i = 0; i < m->nmemfds; i++)
        strings += strlen(m->memfds[i].name) + 1;
    if (!(block = calloc(1, vma_bytes + fd_bytes + memfd_bytes + strings)))
        return -ENOMEM;
    info->vmas = (struct mos_image_vma_info *)block;
    info->fds = (struct mos_image_fd_info *)(block + vma_bytes);
    info->memfds = (struct mos_image_memfd_info *)(block + vma_bytes + fd_bytes);
    pool = block + vma_bytes + fd_bytes + memfd_bytes;
    info->nmemfds = m->nmemfds;
    for (uint32_t i = 0; i < m->nmemfds; i++)
        info->memfds[i] = (struct mos_image_memfd_info){
            .name = pool_add(&pool, m->memfds[i].name), .ino = m->memfds[i].o.ino,
            .size = m->memfds[i].o.size, .data_pages = m->memfds[i].o.data_pages,
            .seals = m->memfds[i].o.seals};
    info->exe = pool_add(&pool, m->exe);
    info->cwd = pool_add(&pool, m->cwd);
    info->nvmas = m->nvmas;
    for (uint32_t i = 0; i < m->nvmas; i++)
        info->vmas[i] = (struct mos_image_vma_info){
            .start = m->vmas[i].v.start, .end = m->vmas[i].v.end, .prot = m->vmas[i].v.prot,
            .kind = vma_kind_name(m->vmas[i].v.kind), .path = pool_add(&pool, m->vmas[i].path)};
    info->nfds = m->nfds;
    for (uint32_t i = 0; i < m->nfds; i++)
        info->fds[i] = (struct mos_image_fd_info){
            .fd = m->fds[i].f.fd, .kind = fd_kind_name(m->fds[i].f.kind),
            .path = pool_add(&pool, m->fds[i].path), .offset = m->fds[i].f.offset,
            .flags = m->fds[i].f.flags, .pipe_size = m->fds[i].f.pipe_size,
            .queued = m->fds[i].f.kind == MOS_FD_MEMFD ? 0 : m->fds[i].f.data_len,
            .peer = m->fds[i].f.kind == MOS_FD_MEMFD ? mos_img_fd_memfd_ino(m, &m->fds[i]) : 0,
            .dup_of = m->fds[i].f.dup_of};
    for (uint32_t i = 0; i < m->nfds; i++)
        if (m->fds[i].f.kind == MOS_FD_UNIX && m->fds[i].f.dup_of == -1) {
            struct mos_rec_unix u;
            memcpy(&u, m->fds[i].data, sizeof(u)); /* validated: whole, messages included */
            info->fds[i].messages = u.nmsgs;
            info->fds[i].peer = u.peer;
            info->fds[i].queued = m->fds[i].f.data_len - (uint32_t)sizeof(u) -
                                  u.nmsgs * (uint32_t)sizeof(uint32_t);
        }
    return 0;
}

int mos_image_info_read(struct mos_img_io *io, struct mos_image_info *info)
{
    struct mos_img_reader rd = {.io = io};
    struct mos_img_meta *m = calloc(1, sizeof(*m));
    int rc;

    memset(info, 0, sizeof(*info));
    if (!m)
        return -ENOMEM;
    rc = mos_img_meta_read(&rd, m);
    if (rc != 0)
        goto out_meta;
    info->format_version = m->image.format_version;
    info->src_pid = m->image.src_pid;
    info->threads = m->image.nthreads;
    info->time_ns = m->image.time_ns;
    memcpy(info->host, m->image.host, sizeof(info->host));
    info->rip = m->core.regs.rip;
    info->rsp = m->core.regs.rsp;
    info->xstate_len = m->core.xstate_len;
    info->sigmask = m->core.sigmask;
    for (int i = 0; i < 64; i++)
        info->handlers += m->sigs.act[i].handler > 1;
    info->pending = m->sigs.npending;
    rc = info_fill_tables(info, m);
    if (rc == 0)
        rc = mos_img_memfd_data_read(&rd, m, memfd_data_seen, NULL);
    if (rc == 0)
        rc = pages_count(&rd, m, info);
    mos_img_meta_free(m);
out_meta:
    free(m);
    mos_img_reader_free(&rd);
    if (rc != 0)
        mos_image_info_free(info);
    return rc;
}

void mos_image_info_free(struct mos_image_info *info)
{
    free(info->vmas); /* the block that holds the fds and the strings too */
    memset(info, 0, sizeof(*info));
}
