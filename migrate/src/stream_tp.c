/* The image stream over a transport connection, so a migration gets the transport's key proof
 * and backend: the records travel as control messages, the page contents as bulk page runs
 * (send_pages / recv_pages: read from the frozen process straight into the send path or
 * registered verbs slot on one side, written into the husk on the other). */
#include "img_io.h"


#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct tp_img_stream {
    struct mos_img_io io; /* first: the engine is handed &stream->io */
    mos_tp_conn_t *conn;
    uint8_t *buf;
    size_t len, pos;
    int timeout_ms;
    struct mos_page_run *runs;        /* the runs sent, for the test hooks to alter */
    size_t runs_cap;
    uint64_t ctl_bytes;               /* image bytes sent or received in control messages */
    uint64_t bulk_pages, bulk_frames; /* pages sent or received in bulk */
    mos_page_place_fn place;          /* recv_pages: the engine's consumer */
    void *place_arg;
};

static struct tp_img_stream *stream_of(struct mos_img_io *io)
{
    return (struct tp_img_stream *)io;
}

/* Pack the iovecs into control messages of the largest size the transport carries. */
static int tp_writev(struct mos_img_io *io, const struct iovec *iov, int iovcnt)
{
    struct tp_img_stream *s = stream_of(io);
    size_t fill = 0;
    int rc;

    for (int i = 0; i < iovcnt; i++) {
        s->ctl_bytes += iov[i].iov_len;
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            size_t n = MOS_TP_MAX_CONTROL - fill < left ? MOS_TP_MAX_CONTROL - fill : left;
            memcpy(s->buf + fill, p, n);
            fill += n;
            p += n;
            left -= n;
            if (fill == MOS_TP_MAX_CONTROL) {
                if ((rc = mos_tp_ctl_send(s->conn, 0, s->buf, fill)) != 0)
                    return rc;
                fill = 0;
            }
        }
    }
    return fill ? mos_tp_ctl_send(s->conn, 0, s->buf, fill) : 0;
}

static ssize_t tp_read(struct mos_img_io *io, void *buf, size_t len)
{
    struct tp_img_stream *s = stream_of(io);

    if (s->pos == s->len) {
        struct mos_tp_msg msg;
        int rc = mos_tp_ctl_recv(s->conn, &msg, s->buf, MOS_TP_MAX_CONTROL, s->timeout_ms);
        if (rc == MOS_E_PEER_GONE)
            return 0;
        if (rc != 0)
            return rc;
        s->len = msg.len;
        s->pos = 0;
        s->ctl_bytes += msg.len;
    }
    size_t n = s->len - s->pos < len ? s->len - s->pos : len;
    memcpy(buf, s->buf + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static int runs_reserve(struct tp_img_stream *s, size_t n)
{
    if (n <= s->runs_cap)
        return 0;
    struct mos_page_run *r = realloc(s->runs, n * sizeof(*r));
    if (!r)
        return -ENOMEM;
    s->runs = r;
    s->runs_cap = n;
    return 0;
}

/* MOS_TEST_BULK_FAULT=outside: one page of our own, in place of the real runs, at an address
 * no process started the usual way has mapped (tens of TiB: above PIE and brk, below the mmap
 * base), the first one free here (a sanitizer's runtime takes some). */
static int bulk_send_outside(struct tp_img_stream *s)
{
    void *p = MAP_FAILED;
    for (uint64_t at = 0x500000000000ull; p == MAP_FAILED && at >= 0x100000000000ull;
         at -= 0x100000000000ull)
        p = mmap((void *)at, MOS_TP_PAGE_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    struct mos_page_run run = {(uint64_t)(uintptr_t)p, 1};
    mos_warn("migrate", "test hook: sending a page run outside the image's VMAs");
    int rc = mos_tp_bulk_send(s->conn, 0, &run, 1);
    munmap(p, MOS_TP_PAGE_SIZE);
    return rc;
}

/* The pages of runs, read from the frozen process pid by the transport itself. */
static int tp_send_pages(struct mos_img_io *io, pid_t pid, const struct mos_page_run *runs,
                         size_t n)
{
    struct tp_img_stream *s = stream_of(io);
    const char *fault = getenv("MOS_TEST_BULK_FAULT");
    int rc = runs_reserve(s, n);

    if (rc != 0)
        return rc;
    if (fault && !strcmp(fault, "outside"))
        return bulk_send_outside(s);
    uint64_t pages = 0;
    memcpy(s->runs, runs, n * sizeof(*runs));
    for (size_t i = 0; i < n; i++)
        pages += runs[i].npages;
    if (fault && !strcmp(fault, "short") && n > 0) {
        mos_warn("migrate", "test hook: leaving the last page out of the bulk transfer");
        pages--;
        if (--s->runs[n - 1].npages == 0)
            n--;
    }
    rc = mos_tp_bulk_send(s->conn, pid, s->runs, n);
    if (rc == 0)
        s->bulk_pages += pages;
    return rc;
}

static int tp_send_pages_live(struct mos_img_io *io, pid_t pid, const struct mos_page_run *runs,
                              size_t n, mos_tp_read_check_fn check, void *arg)
{
    struct tp_img_stream *s = stream_of(io);
    int rc = mos_tp_bulk_send_live(s->conn, pid, runs, n, check, arg);

    for (size_t i = 0; rc == 0 && i < n; i++)
        s->bulk_pages += runs[i].npages;
    return rc;
}

/* The transport's consumer: each frame goes to the engine's, then the test hook. */
static int tp_place(void *arg, const struct mos_page_run *runs, size_t n, const uint8_t *data)
{
    struct tp_img_stream *s = arg;
    int rc = s->place(s->place_arg, runs, n, data);

    if (rc != 0)
        return rc;
    s->bulk_frames++;
    /* MOS_TEST_BULK_FAULT=die on the receiving side: it vanishes after the first frame */
    const char *fault = getenv("MOS_TEST_BULK_FAULT");
    if (fault && !strcmp(fault, "die")) {
        mos_warn("migrate", "test hook: the receiver dies in the middle of the bulk transfer");
        raise(SIGKILL);
    }
    return 0;
}

static int tp_recv_pages(struct mos_img_io *io, mos_page_place_fn place, void *arg,
                         uint64_t *pages)
{
    struct tp_img_stream *s = stream_of(io);
    struct mos_tp_bulk_stats st = {0};

    s->place = place;
    s->place_arg = arg;
    int rc = mos_tp_bulk_recv(s->conn, tp_place, s, &st);
    s->bulk_pages += st.pages;
    *pages = st.pages;
    return rc;
}

static void tp_close(struct mos_img_io *io)
{
    struct tp_img_stream *s = stream_of(io);

    if (s->ctl_bytes || s->bulk_pages)
        mos_info("migrate", "image stream with %s (%s): %llu bytes in control messages, "
                 "%llu pages in bulk", mos_tp_conn_peer(s->conn),
                 mos_tp_backend_name(mos_tp_conn_backend(s->conn)),
                 (unsigned long long)s->ctl_bytes, (unsigned long long)s->bulk_pages);
    free(s->buf);
    free(s->runs);
    free(s);
}

static const struct mos_img_io_ops tp_img_ops = {
    .writev = tp_writev,
    .read = tp_read,
    .send_pages = tp_send_pages,
    .recv_pages = tp_recv_pages,
    .send_pages_live = tp_send_pages_live,
    .close = tp_close,
};

/* The same without sending in bulk: the capture writes PAGES records. Receiving keeps its
 * page channel, so either end may be switched alone. */
static const struct mos_img_io_ops tp_img_ops_ctl = {
    .writev = tp_writev,
    .read = tp_read,
    .recv_pages = tp_recv_pages,
    .close = tp_close,
};

int mos_img_io_tp_open(mos_tp_conn_t *conn, int timeout_ms, unsigned flags,
                       struct mos_img_io **out)
{
    struct tp_img_stream *s = calloc(1, sizeof(*s));

    if (!s || !(s->buf = malloc(MOS_TP_MAX_CONTROL))) {
        free(s);
        return -ENOMEM;
    }
    s->conn = conn;
    s->timeout_ms = timeout_ms;
    s->io.ops = (flags & MOS_IMG_IO_NO_BULK) || getenv("MOS_IMG_NO_BULK") ? &tp_img_ops_ctl
                                                                          : &tp_img_ops;
    *out = &s->io;
    return 0;
}
