/* The image stream: records, checksums, metadata validation. Layouts in image_format.h. */
#include "image.h"

#include "mos/log.h"
#include "mos/status.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1u << 31) /* linux/signal.h, not in glibc 2.36 headers */
#endif
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

/* ---- records */

const char *mos_img_rec_name(uint32_t magic)
{
    switch (magic) {
    case MOS_REC_IMAGE: return "IMAGE";
    case MOS_REC_CORE: return "CORE";
    case MOS_REC_MM: return "MM";
    case MOS_REC_VMAS: return "VMAS";
    case MOS_REC_SIGS: return "SIGS";
    case MOS_REC_RLIM: return "RLIM";
    case MOS_REC_THREAD: return "THREAD";
    case MOS_REC_FDS: return "FDS";
    case MOS_REC_MEMFDS: return "MEMFDS";
    case MOS_REC_MEMFD_PAGES: return "MEMFD_PAGES";
    case MOS_REC_PAGES: return "PAGES";
    case MOS_REC_BULK: return "BULK";
    case MOS_REC_END: return "END";
    case MOS_REC_PRECOPY: return "PRECOPY";
    case MOS_REC_PREBULK: return "PREBULK";
    case MOS_REC_KEEP: return "KEEP";
    case MOS_REC_DROP: return "DROP";
    }
    return "?";
}

int mos_img_put(struct mos_img_writer *w, uint32_t magic, const struct iovec *parts, int nparts)
{
    struct mos_rec_hdr hdr = {.magic = magic, .version = 1};
    struct iovec iov[16];
    XXH3_state_t st;
    uint64_t sum;

    if (nparts > 14)
        return -EINVAL;
    for (int i = 0; i < nparts; i++)
        hdr.len += parts[i].iov_len;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, &hdr, sizeof(hdr));
    iov[0] = (struct iovec){&hdr, sizeof(hdr)};
    for (int i = 0; i < nparts; i++) {
        XXH3_64bits_update(&st, parts[i].iov_base, parts[i].iov_len);
        iov[i + 1] = parts[i];
    }
    sum = XXH3_64bits_digest(&st);
    iov[nparts + 1] = (struct iovec){&sum, sizeof(sum)};
    int rc = w->io->ops->writev(w->io, iov, nparts + 2);
    if (rc != 0)
        return rc;
    w->records++;
    w->bytes += sizeof(hdr) + hdr.len + sizeof(sum);
    return 0;
}

void mos_img_seal(struct mos_img_sealed *s, uint32_t magic, const struct iovec *parts,
                  int nparts)
{
    XXH3_state_t st;

    memset(&s->hdr, 0, sizeof(s->hdr));
    s->hdr.magic = magic;
    s->hdr.version = 1;
    s->nparts = nparts;
    for (int i = 0; i < nparts; i++) {
        s->hdr.len += parts[i].iov_len;
        s->parts[i] = parts[i];
    }
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, &s->hdr, sizeof(s->hdr));
    for (int i = 0; i < nparts; i++)
        XXH3_64bits_update(&st, parts[i].iov_base, parts[i].iov_len);
    s->sum = XXH3_64bits_digest(&st);
}

int mos_img_put_sealed(struct mos_img_writer *w, const struct mos_img_sealed *recs, int n)
{
    enum { PER_CALL = 15 }; /* 4 iovecs each: within the fd writev's 64 */
    struct iovec iov[PER_CALL * 4];

    for (int first = 0; first < n; first += PER_CALL) {
        int k = 0, last = first + PER_CALL < n ? first + PER_CALL : n;
        uint64_t bytes = 0;
        for (int i = first; i < last; i++) {
            const struct mos_img_sealed *s = &recs[i];
            iov[k++] = (struct iovec){(void *)&s->hdr, sizeof(s->hdr)};
            for (int p = 0; p < s->nparts; p++)
                iov[k++] = s->parts[p];
            iov[k++] = (struct iovec){(void *)&s->sum, sizeof(s->sum)};
            bytes += sizeof(s->hdr) + s->hdr.len + sizeof(s->sum);
        }
        int rc = w->io->ops->writev(w->io, iov, k);
        if (rc != 0)
            return rc;
        w->records += (uint64_t)(last - first);
        w->bytes += bytes;
    }
    return 0;
}

int mos_img_put_end(struct mos_img_writer *w)
{
    struct mos_rec_end end = {.pages = w->pages, .records = w->records + 1};
    struct iovec part = {&end, sizeof(end)};

    return mos_img_put(w, MOS_REC_END, &part, 1);
}

/* Map the next len bytes if the io can; 1 when it cannot (read them instead). */
static int map_next(struct mos_img_reader *r, size_t len, const void **data)
{
    if (r->no_map || !r->io->ops->map)
        return 1;
    int rc = r->io->ops->map(r->io, len, data);
    if (rc == -ENOTSUP) {
        r->no_map = 1;
        return 1;
    }
    if (rc == 0)
        r->bytes += len;
    return rc;
}

static int read_full(struct mos_img_reader *r, void *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = r->io->ops->read(r->io, buf, len);
        if (n == 0)
            return MOS_E_TRUNCATED;
        if (n < 0)
            return (int)n;
        buf = (char *)buf + n;
        len -= (size_t)n;
        r->bytes += (uint64_t)n;
    }
    return 0;
}

static uint64_t rec_max_len(uint32_t magic)
{
    switch (magic) {
    case MOS_REC_IMAGE: return sizeof(struct mos_rec_image);
    case MOS_REC_CORE: return sizeof(struct mos_rec_core) + MOS_IMG_MAX_XSTATE;
    case MOS_REC_MM:
        return sizeof(struct mos_rec_mm) + MOS_IMG_MAX_AUXV + 2 * MOS_IMG_MAX_PATH;
    case MOS_REC_VMAS: return MOS_IMG_MAX_META;
    case MOS_REC_SIGS:
        return sizeof(struct mos_rec_sigs) + MOS_IMG_MAX_PENDING * sizeof(struct mos_rec_pending);
    case MOS_REC_RLIM: return sizeof(struct mos_rec_rlim);
    case MOS_REC_THREAD:
        return sizeof(struct mos_rec_thread) + MOS_IMG_MAX_XSTATE +
               MOS_IMG_MAX_PENDING * sizeof(struct mos_rec_pending);
    case MOS_REC_FDS: return MOS_IMG_MAX_META;
    case MOS_REC_MEMFDS:
        return sizeof(struct mos_rec_memfds) +
               MOS_IMG_MAX_MEMFDS * (sizeof(struct mos_rec_memfd) + MOS_IMG_MAX_MEMFD_NAME);
    case MOS_REC_MEMFD_PAGES:
        return sizeof(struct mos_rec_memfd_pages) +
               (uint64_t)MOS_IMG_MAX_RUN_PAGES * MOS_IMG_PAGE_SIZE;
    case MOS_REC_PAGES:
    case MOS_REC_PRECOPY:
        return sizeof(struct mos_rec_pages) + (uint64_t)MOS_IMG_MAX_RUN_PAGES * MOS_IMG_PAGE_SIZE;
    case MOS_REC_KEEP:
    case MOS_REC_DROP: return MOS_IMG_MAX_META;
    case MOS_REC_BULK: return sizeof(struct mos_rec_bulk);
    case MOS_REC_PREBULK: return MOS_IMG_MAX_META;
    case MOS_REC_END: return sizeof(struct mos_rec_end);
    }
    return 0;
}

static int img_bad(struct mos_img_reader *r, const char *what)
{
    mos_err("migrate", "corrupt image: %s (record %llu, byte %llu)", what,
            (unsigned long long)r->records, (unsigned long long)r->bytes);
    return MOS_E_IMAGE;
}

int mos_img_get(struct mos_img_reader *r, uint32_t *magic, const uint8_t **payload, size_t *len)
{
    struct mos_rec_hdr hdr;
    uint64_t sum, want;
    int rc;

    const void *mapped;
    const uint8_t *data;
    rc = map_next(r, sizeof(hdr), &mapped);
    if (rc == 1)
        rc = read_full(r, &hdr, sizeof(hdr));
    else if (rc == 0)
        memcpy(&hdr, mapped, sizeof(hdr));
    if (rc != 0)
        goto io_error;
    uint64_t max = rec_max_len(hdr.magic);
    if (max == 0)
        return img_bad(r, "unknown record magic");
    if (hdr.version != 1) {
        mos_err("migrate", "image record %s has version %u; this mos reads version 1",
                mos_img_rec_name(hdr.magic), hdr.version);
        return MOS_E_VERSION;
    }
    if (hdr.zero != 0 || hdr.len > max)
        return img_bad(r, "record length out of range");
    rc = map_next(r, (size_t)hdr.len + sizeof(sum), &mapped);
    if (rc == 0) {
        data = mapped;
        memcpy(&sum, data + hdr.len, sizeof(sum));
    } else if (rc == 1) {
        if (hdr.len > r->cap) {
            size_t cap = hdr.len < 65536 ? 65536 : (size_t)hdr.len;
            uint8_t *b = realloc(r->buf, cap);
            if (!b)
                return -ENOMEM;
            r->buf = b;
            r->cap = cap;
        }
        data = r->buf;
        rc = read_full(r, r->buf, (size_t)hdr.len);
        if (rc == 0)
            rc = read_full(r, &sum, sizeof(sum));
    }
    if (rc != 0)
        goto io_error;
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, &hdr, sizeof(hdr));
    XXH3_64bits_update(&st, data, (size_t)hdr.len);
    want = XXH3_64bits_digest(&st);
    if (sum != want)
        return img_bad(r, "checksum mismatch");
    r->records++;
    *magic = hdr.magic;
    *payload = data;
    *len = (size_t)hdr.len;
    return 0;
io_error:
    if (rc == MOS_E_TRUNCATED)
        mos_err("migrate", "image ends early (truncated after %llu records, %llu bytes)",
                (unsigned long long)r->records, (unsigned long long)r->bytes);
    else
        mos_err("migrate", "reading the image: %s", mos_strerror(rc));
    return rc;
}

void mos_img_reader_free(struct mos_img_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

/* ---- metadata */

static int expect(struct mos_img_reader *r, uint32_t want, const uint8_t **p, size_t *len,
                  size_t min_len)
{
    uint32_t magic;
    int rc = mos_img_get(r, &magic, p, len);

    if (rc != 0)
        return rc;
    if (magic != want) {
        mos_err("migrate", "corrupt image: record %s where %s belongs", mos_img_rec_name(magic),
                mos_img_rec_name(want));
        return MOS_E_IMAGE;
    }
    if (*len < min_len)
        return img_bad(r, "record shorter than its fixed part");
    return 0;
}

static int user_addr_ok(uint64_t a)
{
    return a < MOS_IMG_USER_TOP;
}

static int copy_path(char *dst, const uint8_t *src, uint32_t n)
{
    if (n == 0 || n > MOS_IMG_MAX_PATH || memchr(src, 0, n))
        return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static int pending_ok(const struct mos_rec_pending *p, uint32_t n, int shared_allowed)
{
    for (uint32_t i = 0; i < n; i++) {
        int signo;
        memcpy(&signo, p[i].siginfo, sizeof(signo));
        if (signo < 1 || signo > 64 || p[i].shared > (uint32_t)shared_allowed)
            return 0;
    }
    return 1;
}

/* PRECOPY and PREBULK records before IMAGE go to the reader's stage; the image proper (and
 * END's count of records) starts at IMAGE. */
static int precopy_skip(struct mos_img_reader *r, uint32_t *magic, const uint8_t **p,
                        size_t *len)
{
    int rc;

    while ((rc = mos_img_get(r, magic, p, len)) == 0 &&
           (*magic == MOS_REC_PRECOPY || *magic == MOS_REC_PREBULK)) {
        if (!r->stage) {
            mos_err("migrate", "corrupt image: %s record in a stream nobody stages",
                    mos_img_rec_name(*magic));
            return MOS_E_IMAGE;
        }
        if ((rc = r->stage(r->stage_arg, *magic, *p, *len)) != 0)
            return rc;
        r->records = 0;
    }
    return rc;
}

static int meta_image(struct mos_img_reader *r, struct mos_img_meta *m)
{
    const uint8_t *p;
    size_t len;
    uint32_t magic;
    int rc = precopy_skip(r, &magic, &p, &len);

    if (rc != 0)
        return rc;
    /* tag and version first: an image of another version may have another IMAGE size */
    if (magic != MOS_REC_IMAGE || len < offsetof(struct mos_rec_image, arch)) {
        mos_err("migrate", "corrupt image: record %s where IMAGE belongs",
                mos_img_rec_name(magic));
        return MOS_E_IMAGE;
    }
    memcpy(&m->image, p, len < sizeof(m->image) ? len : sizeof(m->image));
    if (memcmp(m->image.tag, "MOSIMAGE", 8) != 0)
        return img_bad(r, "not a mos image (bad IMAGE record)");
    if (m->image.format_version != MOS_IMG_FORMAT_VERSION) {
        mos_err("migrate", "image format version %u; this mos reads version %u only%s",
                m->image.format_version, MOS_IMG_FORMAT_VERSION,
                m->image.format_version < MOS_IMG_FORMAT_VERSION
                    ? " (dump the process again with this mos)" : "");
        return MOS_E_VERSION;
    }
    if (len != sizeof(m->image))
        return img_bad(r, "IMAGE record: length");
    if (m->image.arch != EM_X86_64 || m->image.page_size != MOS_IMG_PAGE_SIZE ||
        m->image.flags != 0 || !memchr(m->image.host, 0, sizeof(m->image.host)))
        return img_bad(r, "IMAGE record: unsupported arch, page size or flags");
    if (m->image.nthreads < 1 || m->image.nthreads > MOS_IMG_MAX_THREADS ||
        m->image.pad != 0 || m->image.src_pid < 1 || m->image.src_pid > INT32_MAX)
        return img_bad(r, "IMAGE record: thread count or source pid out of range");
    return 0;
}

/* The per-thread fields CORE and THREAD share. */
static int core_ok(const struct mos_rec_core *c)
{
    const struct user_regs_struct *g = &c->regs;
    uint64_t any_cpu = 0;

    if (c->xstate_len < 576 || c->xstate_len > MOS_IMG_MAX_XSTATE)
        return 0;
    if (!user_addr_ok(g->rip) || !user_addr_ok(g->rsp) || g->cs != 0x33 || g->ss != 0x2b ||
        !user_addr_ok(g->fs_base) || !user_addr_ok(g->gs_base) || c->umask > 0777 ||
        !user_addr_ok(c->rseq_addr) || c->rseq_len > 4096 ||
        !memchr(c->comm, 0, sizeof(c->comm)) || !user_addr_ok(c->clear_child_tid) ||
        (c->sigmask & ((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)))))
        return 0;
    if (c->sched_policy > SCHED_IDLE || c->sched_policy == 4 || c->sched_prio < 0 ||
        c->sched_prio > 99 || c->nice < -20 || c->nice > 19 || c->affinity_words < 1 ||
        c->affinity_words > MOS_IMG_AFFINITY_WORDS)
        return 0;
    for (uint32_t i = 0; i < MOS_IMG_AFFINITY_WORDS; i++) {
        if (i >= c->affinity_words && c->affinity[i])
            return 0;
        any_cpu |= c->affinity[i];
    }
    return any_cpu != 0;
}

static int meta_core(struct mos_img_reader *r, struct mos_img_meta *m)
{
    const uint8_t *p;
    size_t len;
    int rc = expect(r, MOS_REC_CORE, &p, &len, sizeof(m->core));

    if (rc != 0)
        return rc;
    memcpy(&m->core, p, sizeof(m->core));
    if (len != sizeof(m->core) + m->core.xstate_len || m->core.xstate_len < 576 ||
        m->core.xstate_len > MOS_IMG_MAX_XSTATE)
        return img_bad(r, "CORE record: xstate length");
    if (!core_ok(&m->core))
        return img_bad(r, "CORE record: register or task field out of range");
    m->xstate = malloc(m->core.xstate_len);
    if (!m->xstate)
        return -ENOMEM;
    memcpy(m->xstate, p + sizeof(m->core), m->core.xstate_len);
    return 0;
}

static int meta_mm(struct mos_img_reader *r, struct mos_img_meta *m)
{
    const uint8_t *p;
    size_t len;
    int rc = expect(r, MOS_REC_MM, &p, &len, sizeof(m->mm));

    if (rc != 0)
        return rc;
    memcpy(&m->mm, p, sizeof(m->mm));
    const struct mos_rec_mm *mm = &m->mm;
    if (len != sizeof(*mm) + (uint64_t)mm->auxv_len + mm->exe_len + mm->cwd_len ||
        mm->auxv_len > MOS_IMG_MAX_AUXV || mm->auxv_len % 16 || mm->auxv_len < 16)
        return img_bad(r, "MM record: lengths");
    const uint64_t f[] = {mm->start_code, mm->end_code, mm->start_data, mm->end_data,
                          mm->start_brk,  mm->brk,      mm->start_stack, mm->arg_start,
                          mm->arg_end,    mm->env_start, mm->env_end};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (!user_addr_ok(f[i]))
            return img_bad(r, "MM record: address out of range");
    if (mm->start_code > mm->end_code || mm->start_data > mm->end_data ||
        mm->start_brk > mm->brk || mm->arg_start > mm->arg_end || mm->env_start > mm->env_end)
        return img_bad(r, "MM record: inverted range");
    const uint8_t *q = p + sizeof(*mm);
    m->auxv = malloc(mm->auxv_len);
    if (!m->auxv)
        return -ENOMEM;
    memcpy(m->auxv, q, mm->auxv_len);
    if (((const uint64_t *)(const void *)m->auxv)[mm->auxv_len / 8 - 2] != AT_NULL)
        return img_bad(r, "MM record: auxv does not end with AT_NULL");
    q += mm->auxv_len;
    if (copy_path(m->exe, q, mm->exe_len) != 0 || copy_path(m->cwd, q + mm->exe_len, mm->cwd_len))
        return img_bad(r, "MM record: exe or cwd path");
    return 0;
}

static int meta_vmas(struct mos_img_reader *r, struct mos_img_meta *m)
{
    const uint8_t *p, *end;
    size_t len;
    struct mos_rec_vmas hdr;
    int rc = expect(r, MOS_REC_VMAS, &p, &len, sizeof(hdr));

    if (rc != 0)
        return rc;
    memcpy(&hdr, p, sizeof(hdr));
    if (hdr.count == 0 || hdr.count > MOS_IMG_MAX_VMAS)
        return img_bad(r, "VMAS record: count");
    m->vmas = calloc(hdr.count, sizeof(*m->vmas));
    if (!m->vmas)
        return -ENOMEM;
    end = p + len;
    p += sizeof(hdr);
    for (uint32_t i = 0; i < hdr.count; i++) {
        struct mos_img_vma *v = &m->vmas[i];
        if ((size_t)(end - p) < sizeof(v->v))
            return img_bad(r, "VMAS record: short entry");
        memcpy(&v->v, p, sizeof(v->v));
        p += sizeof(v->v);
        if ((size_t)(end - p) < v->v.path_len)
            return img_bad(r, "VMAS record: short path");
        int need_path = v->v.kind != MOS_VMA_ANON && v->v.kind != MOS_VMA_ANON_SHARED;
        if ((need_path || v->v.path_len) && copy_path(v->path, p, v->v.path_len) != 0)
            return img_bad(r, "VMAS record: bad path");
        p += v->v.path_len;
        if (v->v.start >= v->v.end || (v->v.start | v->v.end | v->v.pgoff) % MOS_IMG_PAGE_SIZE ||
            v->v.end > MOS_IMG_USER_TOP || v->v.start < 4096 ||
            (v->v.prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC)) ||
            v->v.kind < MOS_VMA_ANON || v->v.kind > MOS_VMA_MEMFD ||
            (v->v.flags & ~MOS_VMA_F_ALL) || (i > 0 && v->v.start < m->vmas[i - 1].v.end))
            return img_bad(r, "VMAS record: entry out of range or overlapping");
    }
    if (p != end)
        return img_bad(r, "VMAS record: trailing bytes");
    m->nvmas = hdr.count;
    return 0;
}

static int meta_sigs(struct mos_img_reader *r, struct mos_img_meta *m)
{
    const uint8_t *p;
    size_t len;
    int rc = expect(r, MOS_REC_SIGS, &p, &len, sizeof(m->sigs));

    if (rc != 0)
        return rc;
    memcpy(&m->sigs, p, sizeof(m->sigs));
    if (m->sigs.npending > MOS_IMG_MAX_PENDING ||
        len != sizeof(m->sigs) + m->sigs.npending * sizeof(struct mos_rec_pending))
        return img_bad(r, "SIGS record: pending count");
    for (int i = 0; i < 64; i++) {
        const struct mos_ksigaction *a = &m->sigs.act[i];
        if ((a->handler > 1 && !user_addr_ok(a->handler)) || !user_addr_ok(a->restorer) ||
            (a->flags >> 32))
            return img_bad(r, "SIGS record: handler out of range");
    }
    if (m->sigs.altstack_flags & ~(uint32_t)(SS_DISABLE | SS_ONSTACK | SS_AUTODISARM))
        return img_bad(r, "SIGS record: alt stack flags");
    for (int i = 0; i < 3; i++)
        if (m->sigs.itimer[i][1] >= 1000000 || m->sigs.itimer[i][3] >= 1000000 ||
            m->sigs.itimer[i][0] > INT_MAX || m->sigs.itimer[i][2] > INT_MAX)
            return img_bad(r, "SIGS record: itimer out of range");
    if (m->sigs.npending) {
        m->pending = calloc(m->sigs.npending, sizeof(*m->pending));
        if (!m->pending)
            return -ENOMEM;
        memcpy(m->pending, p + sizeof(m->sigs), m->sigs.npending * sizeof(*m->pending));
        if (!pending_ok(m->pending, m->sigs.npending, 1))
            return img_bad(r, "SIGS record: pending signal out of range");
    }
    return 0;
}

static int meta_rlim(struct mos_img_reader *r, struct mos_img_meta *m)
{
    const uint8_t *p;
    size_t len;
    int rc = expect(r, MOS_REC_RLIM, &p, &len, sizeof(m->rlim));

    if (rc != 0)
        return rc;
    memcpy(&m->rlim, p, sizeof(m->rlim));
    if (len != sizeof(m->rlim) || m->rlim.count != 16)
        return img_bad(r, "RLIM record: count");
    for (int i = 0; i < 16; i++)
        if (m->rlim.lim[i][0] > m->rlim.lim[i][1])
            return img_bad(r, "RLIM record: soft limit above hard limit");
    return 0;
}

/* "pipe:[N]", N a decimal inode number */
static int pipe_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n < 8 || strncmp(name, "pipe:[", 6) != 0 || name[n - 1] != ']' || n > 6 + 20 + 1)
        return 0;
    for (size_t k = 6; k < n - 1; k++)
        if (name[k] < '0' || name[k] > '9')
            return 0;
    return 1;
}

/* "socket:[N]", N a decimal inode number below 2^32: *ino */
static int socket_name_ok(const char *name, uint64_t *ino)
{
    unsigned long long v;
    int used = 0;

    if (strncmp(name, "socket:[", 8) != 0 || name[8] < '0' || name[8] > '9' ||
        sscanf(name + 8, "%llu]%n", &v, &used) != 1 || used == 0 || name[8 + used] != '\0' ||
        v == 0 || v > UINT32_MAX)
        return 0;
    *ino = v;
    return 1;
}

/* A socket's struct and messages fill its state exactly; a stream's queue is one message. */
static int unix_state_ok(const uint8_t *p, uint32_t len, uint64_t *total)
{
    struct mos_rec_unix u;
    uint32_t off = sizeof(u), n;

    memcpy(&u, p, sizeof(u));
    if ((u.type != SOCK_STREAM && u.type != SOCK_DGRAM && u.type != SOCK_SEQPACKET) ||
        u.shutdown > 3 || u.passcred > 1 || u.nmsgs > MOS_IMG_MAX_UNIX_MSGS ||
        (u.type == SOCK_STREAM && u.nmsgs > 1) || u.sndbuf > INT32_MAX || u.rcvbuf > INT32_MAX)
        return 0;
    for (uint32_t k = 0; k < u.nmsgs; k++) {
        if (len - off < sizeof(n))
            return 0;
        memcpy(&n, p + off, sizeof(n));
        off += sizeof(n);
        if (len - off < n)
            return 0;
        off += n;
        *total += n;
    }
    return off == len && *total <= MOS_IMG_MAX_PIPE_DATA;
}

static uint64_t unix_peer(const struct mos_img_fd *f)
{
    struct mos_rec_unix u;

    memcpy(&u, f->data, sizeof(u));
    return u.peer;
}

/* Every socket that is no dup is one end of a pair whose other end is in the image, naming
 * it back and of its type, or one whose other end is closed; no socket is in it twice. */
static int unix_pairs_ok(const struct mos_img_meta *m, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct mos_img_fd *f = &m->fds[i];
        uint64_t own, peer, other;
        uint32_t found = 0;
        if (f->f.kind != MOS_FD_UNIX || f->f.dup_of != -1)
            continue;
        socket_name_ok(f->path, &own); /* checked with the entry */
        peer = unix_peer(f);
        for (uint32_t k = 0; k < n; k++) {
            const struct mos_img_fd *g = &m->fds[k];
            if (k == i || g->f.kind != MOS_FD_UNIX || g->f.dup_of != -1)
                continue;
            socket_name_ok(g->path, &other);
            if (other == own)
                return 0;
            if (peer && other == peer) {
                struct mos_rec_unix a, b;
                memcpy(&a, f->data, sizeof(a));
                memcpy(&b, g->data, sizeof(b));
                if (b.peer != own || a.type != b.type)
                    return 0;
                found++;
            }
        }
        if (peer && found != 1)
            return 0;
    }
    return 1;
}

static const char *anon_name(uint32_t kind, size_t *state_len)
{
    switch (kind) {
    case MOS_FD_EVENTFD: *state_len = sizeof(struct mos_rec_eventfd); return "anon_inode:[eventfd]";
    case MOS_FD_SIGNALFD:
        *state_len = sizeof(struct mos_rec_signalfd);
        return "anon_inode:[signalfd]";
    case MOS_FD_TIMERFD: *state_len = sizeof(struct mos_rec_timerfd); return "anon_inode:[timerfd]";
    case MOS_FD_EPOLL: *state_len = 0; /* a watch per fd: checked by epoll_watches_ok */
        return "anon_inode:[eventpoll]";
    default: return NULL;
    }
}

static int clock_ok(uint32_t id)
{
    return id == CLOCK_REALTIME || id == CLOCK_MONOTONIC || id == CLOCK_BOOTTIME ||
           id == CLOCK_REALTIME_ALARM || id == CLOCK_BOOTTIME_ALARM;
}

#define EPOLL_EVENTS_KNOWN                                                                     \
    (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDNORM | EPOLLRDBAND |            \
     EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP | EPOLLEXCLUSIVE | EPOLLWAKEUP |           \
     EPOLLONESHOT | EPOLLET)

/* Every epoll's watches (read when all entries are): each names an fd of the image that is no
 * epoll (nested sets are not carried), once per set, with known flags. */
static int epoll_watches_ok(const struct mos_img_meta *m, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct mos_img_fd *f = &m->fds[i];
        uint32_t nw = f->f.data_len / sizeof(struct mos_rec_epoll_watch);
        if (f->f.kind != MOS_FD_EPOLL)
            continue;
        for (uint32_t w = 0; w < nw; w++) {
            struct mos_rec_epoll_watch a, b;
            uint32_t k = 0;
            memcpy(&a, f->data + w * sizeof(a), sizeof(a));
            while (k < n && m->fds[k].f.fd != a.tfd)
                k++;
            if (k == n || m->fds[k].f.kind == MOS_FD_EPOLL || (a.events & ~EPOLL_EVENTS_KNOWN))
                return 0;
            for (uint32_t v = 0; v < w; v++) {
                memcpy(&b, f->data + v * sizeof(b), sizeof(b));
                if (b.tfd == a.tfd)
                    return 0;
            }
        }
    }
    return 1;
}

static int anon_state_ok(uint32_t kind, const uint8_t *p)
{
    struct mos_rec_eventfd e;
    struct mos_rec_timerfd t;

    switch (kind) {
    case MOS_FD_EVENTFD:
        memcpy(&e, p, sizeof(e));
        return e.count != UINT64_MAX && e.semaphore <= 1 && !e.pad;
    case MOS_FD_TIMERFD:
        memcpy(&t, p, sizeof(t));
        return clock_ok(t.clockid) && !t.pad && t.value_nsec < 1000000000u &&
               t.interval_nsec < 1000000000u && t.value_sec <= INT32_MAX &&
               t.interval_sec <= INT32_MAX;
    default: return 1; /* any signal mask */
    }
}

/* Entry i's state after its path: none for files, devices and stdio; a pipe's name, access
 * mode, capacity and queued bytes (only in the pipe's first entry, within the image's limit);
 * an anon-inode kind's name and exact struct (none in a dup's entry). The state is copied
 * out. 0 or MOS_E_IMAGE. */
static int fd_state_check(struct mos_img_reader *r, struct mos_img_meta *m, uint32_t i,
                          const uint8_t **p, const uint8_t *end, uint64_t *total)
{
    struct mos_img_fd *f = &m->fds[i];
    uint32_t acc = f->f.flags & O_ACCMODE;
    size_t want = 0;
    const char *name = anon_name(f->f.kind, &want);

    uint64_t ino;

    if (f->f.kind != MOS_FD_PIPE &&
        (f->f.pipe_size ||
         (!name && f->f.kind != MOS_FD_UNIX && f->f.kind != MOS_FD_MEMFD && f->f.data_len)))
        return img_bad(r, "FDS record: state for a kind that has none");
    if (name) {
        int size_ok = f->f.kind == MOS_FD_EPOLL
                          ? f->f.data_len % sizeof(struct mos_rec_epoll_watch) == 0 &&
                                f->f.data_len <= MOS_IMG_MAX_EPOLL_WATCHES *
                                                     sizeof(struct mos_rec_epoll_watch) &&
                                (f->f.dup_of == -1 || f->f.data_len == 0)
                          : f->f.data_len == (f->f.dup_of == -1 ? want : 0);
        if (strcmp(f->path, name) != 0 || f->f.offset || !size_ok)
            return img_bad(r, "FDS record: anon-inode entry out of range");
    } else if (f->f.kind == MOS_FD_PIPE) {
        if (!pipe_name_ok(f->path) || f->f.offset || (acc != O_RDONLY && acc != O_WRONLY) ||
            f->f.pipe_size < 4096 || f->f.pipe_size > MOS_IMG_MAX_PIPE_SIZE ||
            f->f.data_len > f->f.pipe_size)
            return img_bad(r, "FDS record: pipe entry out of range");
        for (uint32_t k = 0; k < i && f->f.data_len; k++)
            if (m->fds[k].f.kind == MOS_FD_PIPE && strcmp(m->fds[k].path, f->path) == 0)
                return img_bad(r, "FDS record: a pipe's data in other than its first entry");
        *total += f->f.data_len;
    } else if (f->f.kind == MOS_FD_UNIX) {
        if (!socket_name_ok(f->path, &ino) || f->f.offset || acc != O_RDWR ||
            (f->f.dup_of == -1 ? f->f.data_len < sizeof(struct mos_rec_unix) : f->f.data_len != 0))
            return img_bad(r, "FDS record: unix socket entry out of range");
    } else if (f->f.kind == MOS_FD_MEMFD) {
        if (!mos_img_memfd_path_ok(f->path) || f->f.data_len != (f->f.dup_of == -1 ? 8u : 0u))
            return img_bad(r, "FDS record: memfd entry out of range");
    }
    if (f->f.data_len == 0)
        return 0;
    if ((size_t)(end - *p) < f->f.data_len || *total > MOS_IMG_MAX_PIPE_DATA)
        return img_bad(r, "FDS record: an fd's state beyond the record or the limit");
    if (name && !anon_state_ok(f->f.kind, *p))
        return img_bad(r, "FDS record: anon-inode state out of range");
    if (f->f.kind == MOS_FD_UNIX && !unix_state_ok(*p, f->f.data_len, total))
        return img_bad(r, "FDS record: unix socket state out of range or beyond the limit");
    if (!(f->data = malloc(f->f.data_len)))
        return -ENOMEM;
    memcpy(f->data, *p, f->f.data_len);
    *p += f->f.data_len;
    return 0;
}

static int meta_fds(struct mos_img_reader *r, struct mos_img_meta *m)
{
    const uint8_t *p, *end;
    uint64_t pipe_data = 0;
    size_t len;
    struct mos_rec_fds hdr;
    int rc = expect(r, MOS_REC_FDS, &p, &len, sizeof(hdr));

    if (rc != 0)
        return rc;
    memcpy(&hdr, p, sizeof(hdr));
    if (hdr.count > MOS_IMG_MAX_FDS)
        return img_bad(r, "FDS record: count");
    m->fds = calloc(hdr.count ? hdr.count : 1, sizeof(*m->fds));
    if (!m->fds)
        return -ENOMEM;
    m->nfds_alloc = hdr.count;
    end = p + len;
    p += sizeof(hdr);
    for (uint32_t i = 0; i < hdr.count; i++) {
        struct mos_img_fd *f = &m->fds[i];
        if ((size_t)(end - p) < sizeof(f->f))
            return img_bad(r, "FDS record: short entry");
        memcpy(&f->f, p, sizeof(f->f));
        p += sizeof(f->f);
        if ((size_t)(end - p) < f->f.path_len)
            return img_bad(r, "FDS record: short path");
        if (f->f.kind != MOS_FD_STDIO && copy_path(f->path, p, f->f.path_len) != 0)
            return img_bad(r, "FDS record: bad path");
        p += f->f.path_len;
        if (f->f.fd < 0 || f->f.fd >= 1048576 || f->f.kind < MOS_FD_FILE ||
            f->f.kind > MOS_FD_MEMFD || (f->f.kind == MOS_FD_STDIO && f->f.fd > 2) ||
            f->f.offset > (uint64_t)INT64_MAX || (f->f.fdflags & ~1u) ||
            (i > 0 && f->f.fd <= m->fds[i - 1].f.fd))
            return img_bad(r, "FDS record: entry out of range");
        if (f->f.dup_of != -1) {
            uint32_t k = 0;
            while (k < i && m->fds[k].f.fd != f->f.dup_of)
                k++;
            if (k == i || m->fds[k].f.kind != f->f.kind || f->f.kind == MOS_FD_STDIO ||
                strcmp(m->fds[k].path, f->path) != 0)
                return img_bad(r, "FDS record: dup_of names no earlier fd of its kind");
        }
        if ((rc = fd_state_check(r, m, i, &p, end, &pipe_data)) != 0)
            return rc;
    }
    if (p != end)
        return img_bad(r, "FDS record: trailing bytes");
    if (!epoll_watches_ok(m, hdr.count))
        return img_bad(r, "FDS record: an epoll watches no fd of the image, an epoll, one fd "
                          "twice, or with unknown flags");
    if (!unix_pairs_ok(m, hdr.count))
        return img_bad(r, "FDS record: a unix socket whose other end is not in the image as "
                          "one, or one twice");
    m->nfds = hdr.count;
    return 0;
}

int mos_img_memfd_path_ok(const char *path)
{
    size_t n = strlen(path);

    return strncmp(path, "/memfd:", 7) == 0 && n >= 17 && strcmp(path + n - 10, " (deleted)") == 0;
}

uint32_t mos_img_memfd_index(const struct mos_img_meta *m, uint64_t ino)
{
    uint32_t i = 0;

    while (i < m->nmemfds && m->memfds[i].o.ino != ino)
        i++;
    return i;
}

/* The inode a MOS_FD_MEMFD entry names (a dup: its first entry's). */
uint64_t mos_img_fd_memfd_ino(const struct mos_img_meta *m, const struct mos_img_fd *f)
{
    uint64_t ino = 0;

    for (uint32_t k = 0; f->f.dup_of != -1 && k < m->nfds; k++)
        if (m->fds[k].f.fd == f->f.dup_of)
            f = &m->fds[k];
    if (f->data)
        memcpy(&ino, f->data, sizeof(ino));
    return ino;
}

/* Every memfd an fd entry or a VMA names is one of MEMFDS's. */
static int memfd_refs_ok(const struct mos_img_meta *m)
{
    for (uint32_t i = 0; i < m->nfds; i++)
        if (m->fds[i].f.kind == MOS_FD_MEMFD &&
            mos_img_memfd_index(m, mos_img_fd_memfd_ino(m, &m->fds[i])) == m->nmemfds)
            return 0;
    for (uint32_t i = 0; i < m->nvmas; i++)
        if (m->vmas[i].v.kind == MOS_VMA_MEMFD &&
            (!mos_img_memfd_path_ok(m->vmas[i].path) ||
             mos_img_memfd_index(m, m->vmas[i].v.ino) == m->nmemfds))
            return 0;
    return 1;
}

static int memfd_entry_ok(const struct mos_img_meta *m, uint32_t i, uint64_t *total)
{
    const struct mos_rec_memfd *o = &m->memfds[i].o;
    uint64_t pages = o->size / MOS_IMG_PAGE_SIZE + (o->size % MOS_IMG_PAGE_SIZE != 0);

    if (o->ino == 0 || mos_img_memfd_index(m, o->ino) < i || o->size > MOS_IMG_MAX_MEMFD_BYTES ||
        o->data_pages > pages || (o->seals & ~MOS_IMG_MEMFD_SEALS))
        return 0;
    *total += o->size;
    return *total <= MOS_IMG_MAX_MEMFD_BYTES;
}

static int meta_memfds(struct mos_img_reader *r, struct mos_img_meta *m)
{
    const uint8_t *p, *end;
    size_t len;
    uint64_t total = 0;
    struct mos_rec_memfds hdr;
    int rc = expect(r, MOS_REC_MEMFDS, &p, &len, sizeof(hdr));

    if (rc != 0)
        return rc;
    memcpy(&hdr, p, sizeof(hdr));
    if (hdr.count > MOS_IMG_MAX_MEMFDS || hdr.pad)
        return img_bad(r, "MEMFDS record: count");
    m->memfds = calloc(hdr.count ? hdr.count : 1, sizeof(*m->memfds));
    if (!m->memfds)
        return -ENOMEM;
    end = p + len;
    p += sizeof(hdr);
    for (uint32_t i = 0; i < hdr.count; i++) {
        struct mos_img_memfd *o = &m->memfds[i];
        o->fd = -1;
        m->nmemfds = i + 1; /* closed by mos_img_meta_free from here on */
        if ((size_t)(end - p) < sizeof(o->o))
            return img_bad(r, "MEMFDS record: short entry");
        memcpy(&o->o, p, sizeof(o->o));
        p += sizeof(o->o);
        if (o->o.name_len > MOS_IMG_MAX_MEMFD_NAME || (size_t)(end - p) < o->o.name_len ||
            memchr(p, '\0', o->o.name_len))
            return img_bad(r, "MEMFDS record: bad name");
        memcpy(o->name, p, o->o.name_len);
        o->name[o->o.name_len] = '\0';
        p += o->o.name_len;
        if (!memfd_entry_ok(m, i, &total))
            return img_bad(r, "MEMFDS record: entry out of range, twice, or beyond the limit");
    }
    if (p != end)
        return img_bad(r, "MEMFDS record: trailing bytes");
    if (!memfd_refs_ok(m))
        return img_bad(r, "MEMFDS record: an fd or a VMA names a memfd the image lacks");
    return 0;
}

int mos_img_memfd_data_read(struct mos_img_reader *r, const struct mos_img_meta *m,
                            mos_img_memfd_put_fn put, void *arg)
{
    for (uint32_t i = 0; i < m->nmemfds; i++) {
        const struct mos_rec_memfd *o = &m->memfds[i].o;
        uint64_t got = 0, next = 0;
        while (got < o->data_pages) {
            const uint8_t *p;
            size_t len;
            struct mos_rec_memfd_pages h;
            int rc = expect(r, MOS_REC_MEMFD_PAGES, &p, &len, sizeof(h));
            if (rc != 0)
                return rc;
            memcpy(&h, p, sizeof(h));
            /* npages first: the products below must not wrap */
            if (h.npages == 0 || h.npages > MOS_IMG_MAX_RUN_PAGES || h.pad || h.index != i ||
                h.first < next || h.first > o->size / MOS_IMG_PAGE_SIZE ||
                (h.first + h.npages - 1) * MOS_IMG_PAGE_SIZE >= o->size ||
                h.npages > o->data_pages - got || len != sizeof(h) + h.npages * MOS_IMG_PAGE_SIZE)
                return img_bad(r, "MEMFD_PAGES record: a run out of order or out of range");
            if ((rc = put(arg, i, h.first, h.npages, p + sizeof(h))) != 0)
                return rc;
            got += h.npages;
            next = h.first + h.npages;
        }
    }
    return 0;
}

static int meta_thread(struct mos_img_reader *r, struct mos_img_meta *m, struct mos_img_thread *t)
{
    const uint8_t *p;
    size_t len;
    int rc = expect(r, MOS_REC_THREAD, &p, &len, sizeof(t->t));

    if (rc != 0)
        return rc;
    memcpy(&t->t, p, sizeof(t->t));
    const struct mos_rec_core *c = &t->t.core;
    if (t->t.npending > MOS_IMG_MAX_PENDING || c->xstate_len < 576 ||
        c->xstate_len > MOS_IMG_MAX_XSTATE ||
        len != sizeof(t->t) + c->xstate_len + t->t.npending * sizeof(struct mos_rec_pending))
        return img_bad(r, "THREAD record: lengths");
    if (!core_ok(c) || c->umask || c->personality || t->t.pad ||
        (t->t.altstack_flags & ~(uint32_t)(SS_DISABLE | SS_ONSTACK | SS_AUTODISARM)) ||
        !user_addr_ok(t->t.altstack_sp) || t->t.altstack_size > MOS_IMG_USER_TOP)
        return img_bad(r, "THREAD record: register or task field out of range");
    if (t->t.tid < 1 || (uint64_t)t->t.tid == m->image.src_pid)
        return img_bad(r, "THREAD record: tid out of range");
    for (uint32_t i = 0; i < m->nthreads; i++)
        if (m->threads[i].t.tid == t->t.tid)
            return img_bad(r, "THREAD record: the same tid twice");
    t->xstate = malloc(c->xstate_len);
    t->pending = calloc(t->t.npending ? t->t.npending : 1, sizeof(*t->pending));
    if (!t->xstate || !t->pending)
        return -ENOMEM;
    memcpy(t->xstate, p + sizeof(t->t), c->xstate_len);
    memcpy(t->pending, p + sizeof(t->t) + c->xstate_len, t->t.npending * sizeof(*t->pending));
    if (!pending_ok(t->pending, t->t.npending, 0))
        return img_bad(r, "THREAD record: pending signal out of range");
    return 0;
}

static int meta_threads(struct mos_img_reader *r, struct mos_img_meta *m)
{
    uint32_t n = m->image.nthreads - 1;

    if (n == 0)
        return 0;
    m->threads = calloc(n, sizeof(*m->threads));
    if (!m->threads)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        int rc = meta_thread(r, m, &m->threads[i]);
        if (rc != 0) {
            m->nthreads = i + 1; /* what it allocated is freed too */
            return rc;
        }
        m->nthreads = i + 1;
    }
    return 0;
}

int mos_img_meta_read(struct mos_img_reader *r, struct mos_img_meta *m)
{
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = meta_image(r, m)) != 0 || (rc = meta_core(r, m)) != 0 ||
        (rc = meta_mm(r, m)) != 0 || (rc = meta_vmas(r, m)) != 0 ||
        (rc = meta_sigs(r, m)) != 0 || (rc = meta_rlim(r, m)) != 0 ||
        (rc = meta_threads(r, m)) != 0 || (rc = meta_fds(r, m)) != 0 ||
        (rc = meta_memfds(r, m)) != 0) {
        mos_img_meta_free(m);
        return rc;
    }
    return 0;
}

void mos_img_meta_free(struct mos_img_meta *m)
{
    free(m->xstate);
    free(m->auxv);
    free(m->vmas);
    free(m->pending);
    for (uint32_t i = 0; i < m->nthreads; i++) {
        free(m->threads[i].xstate);
        free(m->threads[i].pending);
    }
    free(m->threads);
    for (uint32_t i = 0; m->fds && i < m->nfds_alloc; i++)
        free(m->fds[i].data);
    free(m->fds);
    for (uint32_t i = 0; i < m->nmemfds; i++)
        if (m->memfds[i].fd >= 0)
            close(m->memfds[i].fd);
    free(m->memfds);
    memset(m, 0, sizeof(*m));
}

int mos_img_pages_check(const struct mos_img_meta *m, uint64_t addr, uint64_t npages,
                        uint32_t *vma_index)
{
    if (npages > MOS_IMG_MAX_RUN_PAGES)
        return MOS_E_IMAGE;
    return mos_img_run_check(m, addr, npages, vma_index);
}

int mos_img_run_check(const struct mos_img_meta *m, uint64_t addr, uint64_t npages,
                      uint32_t *vma_index)
{
    uint64_t end = addr + npages * MOS_IMG_PAGE_SIZE;
    uint32_t i = *vma_index < m->nvmas ? *vma_index : 0;

    /* npages first: the end computed above must not have wrapped */
    if (npages == 0 || npages > MOS_IMG_USER_TOP / MOS_IMG_PAGE_SIZE ||
        addr % MOS_IMG_PAGE_SIZE || addr >= MOS_IMG_USER_TOP || m->nvmas == 0)
        return MOS_E_IMAGE;
    if (!(m->vmas[i].v.start <= addr && addr < m->vmas[i].v.end)) {
        /* binary search: VMAs are sorted and disjoint */
        uint32_t lo = 0, hi = m->nvmas;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (m->vmas[mid].v.end <= addr)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == m->nvmas || m->vmas[lo].v.start > addr)
            return MOS_E_IMAGE;
        i = lo;
    }
    const struct mos_rec_vma *v = &m->vmas[i].v;
    if (end > v->end || v->kind == MOS_VMA_FILE_SHARED || v->kind == MOS_VMA_VDSO ||
        v->kind == MOS_VMA_MEMFD)
        return MOS_E_IMAGE;
    *vma_index = i;
    return 0;
}

int mos_img_bulk_check(const struct mos_img_io *io, const uint8_t *p, size_t len,
                       struct mos_rec_bulk *out)
{
    if (len != sizeof(*out)) {
        mos_err("migrate", "corrupt image: BULK record of %zu bytes", len);
        return MOS_E_IMAGE;
    }
    memcpy(out, p, sizeof(*out));
    if (!io->ops->recv_pages) {
        mos_err("migrate", "corrupt image: pages in bulk, but this stream has no page channel");
        return MOS_E_IMAGE;
    }
    if (out->pages == 0 || out->runs == 0 || out->runs > out->pages ||
        out->pages > MOS_IMG_USER_TOP / MOS_IMG_PAGE_SIZE) {
        mos_err("migrate", "corrupt image: BULK record announces %llu pages in %llu runs",
                (unsigned long long)out->pages, (unsigned long long)out->runs);
        return MOS_E_IMAGE;
    }
    return 0;
}
