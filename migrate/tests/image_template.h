/* A valid image in memory for the image reader's tests and fuzzer: an io over a growing
 * buffer (read as a stream, as a mapped file, or with a page channel) and a template image of
 * every record kind, including a thread, a file, shared anonymous memory, a pipe of the
 * process's own, a timerfd and a unix socket pair. */
#ifndef MOS_TEST_IMAGE_TEMPLATE_H
#define MOS_TEST_IMAGE_TEMPLATE_H

#include "image.h"

#include "mos/log.h"
#include "mos/status.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct membuf {
    struct mos_img_io io; /* first: a provider's state embeds its io */
    uint8_t *data;
    size_t len, cap, pos;
    const uint8_t *runs; /* bulk form: the run table the page channel delivers */
    size_t runs_len;
};

static inline int mem_writev(struct mos_img_io *io, const struct iovec *iov, int n)
{
    struct membuf *m = (struct membuf *)io;
    for (int i = 0; i < n; i++) {
        if (m->len + iov[i].iov_len > m->cap) {
            size_t cap = (m->len + iov[i].iov_len) * 2;
            uint8_t *d = realloc(m->data, cap);
            if (!d)
                return -12;
            m->data = d;
            m->cap = cap;
        }
        memcpy(m->data + m->len, iov[i].iov_base, iov[i].iov_len);
        m->len += iov[i].iov_len;
    }
    return 0;
}

static inline ssize_t mem_read(struct mos_img_io *io, void *buf, size_t len)
{
    struct membuf *m = (struct membuf *)io;
    size_t n = m->len - m->pos < len ? m->len - m->pos : len;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static inline int mem_map(struct mos_img_io *io, size_t len, const void **data)
{
    struct membuf *m = (struct membuf *)io;
    if (m->len - m->pos < len) {
        m->pos = m->len;
        return MOS_E_TRUNCATED;
    }
    *data = m->data + m->pos;
    m->pos += len;
    return 0;
}

/* The page channel: the run table in frames of up to two runs, as a transport would. */
static inline int mem_recv_pages(struct mos_img_io *io, mos_page_place_fn place, void *arg,
                          uint64_t *pages)
{
    static const uint8_t zero_pages[2 * 4096];
    struct membuf *m = (struct membuf *)io;
    struct mos_page_run runs[8];
    size_t n = m->runs_len / sizeof(runs[0]);

    *pages = 0;
    memcpy(runs, m->runs, n * sizeof(runs[0]));
    for (size_t first = 0; first < n; first += 2) {
        size_t k = n - first < 2 ? n - first : 2;
        int rc = place(arg, runs + first, k, zero_pages); /* the counting consumer reads none */
        if (rc != 0)
            return rc;
        for (size_t i = first; i < first + k; i++)
            *pages += runs[i].npages;
    }
    return 0;
}

static const struct mos_img_io_ops mem_ops = {.writev = mem_writev, .read = mem_read};
static const struct mos_img_io_ops mem_bulk_ops = {
    .writev = mem_writev, .read = mem_read, .recv_pages = mem_recv_pages};
/* the same stream, read the way a mapped image file is */
static const struct mos_img_io_ops mem_map_ops = {
    .writev = mem_writev, .read = mem_read, .map = mem_map};

struct rec {
    uint32_t magic;
    uint8_t buf[9000];
    size_t len;
};

static inline void rec_add(struct rec *r, const void *p, size_t n)
{
    memcpy(r->buf + r->len, p, n);
    r->len += n;
}

/* The template; in bulk form the PAGES records become a BULK record and a run table (the
 * last entry of recs, magic 0: not written to the stream). */
static inline int template_build(struct rec *recs, int bulk)
{
    int n = 0;
    struct rec *r;

    r = &recs[n++];
    r->magic = MOS_REC_IMAGE;
    struct mos_rec_image img = {.tag = "MOSIMAGE", .format_version = MOS_IMG_FORMAT_VERSION,
                                .arch = EM_X86_64, .page_size = 4096, .src_pid = 42,
                                .host = "fuzz", .nthreads = 2};
    rec_add(r, &img, sizeof(img));
    r = &recs[n++];
    r->magic = MOS_REC_CORE;
    struct mos_rec_core core = {.xstate_len = 1024, .umask = 022, .comm = "fz",
                                .clear_child_tid = 0x7ff100, .affinity_words = 1,
                                .affinity = {3}};
    core.regs.cs = 0x33;
    core.regs.ss = 0x2b;
    core.regs.rip = 0x401000;
    core.regs.rsp = 0x7ff000;
    rec_add(r, &core, sizeof(core));
    uint8_t xs[1024] = {0};
    rec_add(r, xs, sizeof(xs));
    struct mos_rec_thread th = {.tid = 43, .npending = 1, .altstack_flags = SS_DISABLE,
                                .core = core};
    th.core.umask = 0;
    th.core.sched_policy = 3; /* SCHED_BATCH */
    th.core.nice = 5;

    r = &recs[n++];
    r->magic = MOS_REC_MM;
    struct mos_rec_mm mm = {.start_code = 0x400000, .end_code = 0x401000,
                            .start_brk = 0x600000, .brk = 0x601000, .auxv_len = 32,
                            .exe_len = 5, .cwd_len = 1};
    rec_add(r, &mm, sizeof(mm));
    uint64_t auxv[4] = {AT_PAGESZ, 4096, AT_NULL, 0};
    rec_add(r, auxv, sizeof(auxv));
    rec_add(r, "/a/b/", 5);
    rec_add(r, "/", 1);
    r = &recs[n++];
    r->magic = MOS_REC_VMAS;
    struct mos_rec_vmas vh = {.count = 4};
    rec_add(r, &vh, sizeof(vh));
    struct mos_rec_vma v1 = {.start = 0x400000, .end = 0x402000, .prot = PROT_READ | PROT_EXEC,
                             .kind = MOS_VMA_ANON};
    struct mos_rec_vma vs = {.start = 0x500000, .end = 0x504000, .prot = PROT_READ | PROT_WRITE,
                             .kind = MOS_VMA_ANON_SHARED, .flags = MOS_VMA_F_NORESERVE};
    struct mos_rec_vma v2 = {.start = 0x7fe000, .end = 0x800000, .prot = PROT_READ,
                             .kind = MOS_VMA_FILE_PRIVATE, .path_len = 4};
    /* a shared map of memfd object 77 (MEMFDS below), its pages 1..2 */
    struct mos_rec_vma vm = {.start = 0x700000, .end = 0x702000, .pgoff = 4096,
                             .prot = PROT_READ | PROT_WRITE, .kind = MOS_VMA_MEMFD,
                             .path_len = 19, .ino = 77};
    rec_add(r, &v1, sizeof(v1));
    rec_add(r, &vs, sizeof(vs));
    rec_add(r, &vm, sizeof(vm));
    rec_add(r, "/memfd:fz (deleted)", 19);
    rec_add(r, &v2, sizeof(v2));
    rec_add(r, "/lib", 4);
    r = &recs[n++];
    r->magic = MOS_REC_SIGS;
    struct mos_rec_sigs sg = {.altstack_flags = SS_DISABLE, .npending = 1};
    sg.act[13].handler = 0x401000;
    rec_add(r, &sg, sizeof(sg));
    struct mos_rec_pending pd = {.shared = 1};
    pd.siginfo[0] = 14;
    rec_add(r, &pd, sizeof(pd));
    r = &recs[n++];
    r->magic = MOS_REC_RLIM;
    struct mos_rec_rlim rl = {.count = 16};
    rec_add(r, &rl, sizeof(rl));
    r = &recs[n++];
    r->magic = MOS_REC_THREAD;
    rec_add(r, &th, sizeof(th));
    rec_add(r, xs, sizeof(xs));
    struct mos_rec_pending tpd = {.shared = 0};
    tpd.siginfo[0] = 12;
    rec_add(r, &tpd, sizeof(tpd));
    r = &recs[n++];
    r->magic = MOS_REC_FDS;
    struct mos_rec_fds fh = {.count = 8};
    rec_add(r, &fh, sizeof(fh));
    struct mos_rec_fd f1 = {.fd = 1, .kind = MOS_FD_STDIO, .dup_of = -1};
    struct mos_rec_fd f2 = {.fd = 3, .kind = MOS_FD_FILE, .path_len = 4, .dup_of = -1};
    /* a pipe of the process's own: its read end holds 5 bytes, its write end follows */
    struct mos_rec_fd f3 = {.fd = 4, .kind = MOS_FD_PIPE, .flags = O_RDONLY, .path_len = 8,
                            .dup_of = -1, .pipe_size = 65536, .data_len = 5};
    struct mos_rec_fd f4 = {.fd = 5, .kind = MOS_FD_PIPE, .flags = O_WRONLY, .path_len = 8,
                            .dup_of = -1, .pipe_size = 65536};
    rec_add(r, &f1, sizeof(f1));
    rec_add(r, &f2, sizeof(f2));
    rec_add(r, "/etc", 4);
    rec_add(r, &f3, sizeof(f3));
    rec_add(r, "pipe:[7]", 8);
    rec_add(r, "hello", 5);
    rec_add(r, &f4, sizeof(f4));
    rec_add(r, "pipe:[7]", 8);
    struct mos_rec_fd f5 = {.fd = 6, .kind = MOS_FD_TIMERFD, .flags = O_RDWR, .path_len = 20,
                            .dup_of = -1, .data_len = sizeof(struct mos_rec_timerfd)};
    struct mos_rec_timerfd tm = {.clockid = 1, .ticks = 2, .interval_nsec = 1000};
    rec_add(r, &f5, sizeof(f5));
    rec_add(r, "anon_inode:[timerfd]", 20);
    rec_add(r, &tm, sizeof(tm));
    /* a datagram socket pair: fd 7 holds two messages ("ab" and an empty one) */
    uint32_t mlen[2] = {2, 0};
    struct mos_rec_unix u7 = {.type = 2 /* SOCK_DGRAM */, .peer = 9, .sndbuf = 8192,
                              .rcvbuf = 8192, .nmsgs = 2};
    struct mos_rec_unix u8 = {.type = 2, .peer = 8, .sndbuf = 8192, .rcvbuf = 8192};
    struct mos_rec_fd f7 = {.fd = 7, .kind = MOS_FD_UNIX, .flags = O_RDWR, .path_len = 10,
                            .dup_of = -1, .data_len = sizeof(u7) + 2 * sizeof(uint32_t) + 2};
    struct mos_rec_fd f8 = {.fd = 8, .kind = MOS_FD_UNIX, .flags = O_RDWR | O_NONBLOCK,
                            .path_len = 10, .dup_of = -1, .data_len = sizeof(u8)};
    rec_add(r, &f7, sizeof(f7));
    rec_add(r, "socket:[8]", 10);
    rec_add(r, &u7, sizeof(u7));
    rec_add(r, &mlen[0], sizeof(uint32_t));
    rec_add(r, "ab", 2);
    rec_add(r, &mlen[1], sizeof(uint32_t));
    rec_add(r, &f8, sizeof(f8));
    rec_add(r, "socket:[9]", 10);
    rec_add(r, &u8, sizeof(u8));
    /* fd 9 holds memfd object 77 */
    uint64_t ino = 77;
    struct mos_rec_fd f9 = {.fd = 9, .kind = MOS_FD_MEMFD, .flags = O_RDWR, .offset = 3,
                            .path_len = 19, .dup_of = -1, .data_len = sizeof(ino)};
    rec_add(r, &f9, sizeof(f9));
    rec_add(r, "/memfd:fz (deleted)", 19);
    rec_add(r, &ino, sizeof(ino));
    /* the object: 3 pages and 5 bytes, sealed against shrinking, data in its pages 1..2 */
    r = &recs[n++];
    r->magic = MOS_REC_MEMFDS;
    struct mos_rec_memfds mh = {.count = 1};
    struct mos_rec_memfd mo = {.ino = 77, .size = 3 * 4096 + 5, .data_pages = 2,
                               .seals = 2 /* F_SEAL_SHRINK */, .name_len = 2};
    rec_add(r, &mh, sizeof(mh));
    rec_add(r, &mo, sizeof(mo));
    rec_add(r, "fz", 2);
    r = &recs[n++];
    r->magic = MOS_REC_MEMFD_PAGES;
    struct mos_rec_memfd_pages mp = {.index = 0, .first = 1, .npages = 2};
    rec_add(r, &mp, sizeof(mp));
    static uint8_t mdata[2 * 4096];
    memset(mdata, 0x6d, sizeof(mdata));
    rec_add(r, mdata, sizeof(mdata));
    for (int k = 0; k < 2 && bulk; k++) {
        if (k == 0) {
            r = &recs[n++];
            r->magic = MOS_REC_BULK;
            struct mos_rec_bulk b = {.pages = 2, .runs = 2};
            rec_add(r, &b, sizeof(b));
        }
        struct mos_page_run run = {.addr = k ? 0x7ff000 : 0x401000, .npages = 1};
        rec_add(&recs[15], &run, sizeof(run));
    }
    for (int k = 0; k < 2 && !bulk; k++) {
        r = &recs[n++];
        r->magic = MOS_REC_PAGES;
        struct mos_rec_pages ph = {.addr = k ? 0x7ff000 : 0x401000, .npages = 1};
        rec_add(r, &ph, sizeof(ph));
        uint8_t page[4096];
        memset(page, k + 1, sizeof(page));
        rec_add(r, page, sizeof(page));
    }
    r = &recs[n++];
    r->magic = MOS_REC_END;
    struct mos_rec_end e = {.pages = 2, .records = (uint64_t)n};
    rec_add(r, &e, sizeof(e));
    return n;
}

/* The reader's error lines, for tests that check each refusal is one line naming its cause:
 * set img_errors_sink as the log sink, img_errors_reset() before each read. */
struct img_errors {
    char last[512];
    int count;
};

static inline struct img_errors *img_errors(void)
{
    static struct img_errors e;
    return &e;
}

static inline void img_errors_reset(void)
{
    img_errors()->last[0] = '\0';
    img_errors()->count = 0;
}

static inline void img_errors_sink(enum mos_log_level l, const char *c, const char *text, void *a)
{
    (void)c, (void)a;
    if (l == MOS_LOG_ERROR) {
        snprintf(img_errors()->last, sizeof(img_errors()->last), "%s", text);
        img_errors()->count++;
    }
}

#endif
