/* Backend tcp: two streams per connection. The control stream (the one the handshake ran on,
 * TCP_NODELAY) carries control messages; a second stream carries page-run frames of at most
 * slot_bytes, so a control message never waits behind bulk data in a socket buffer.
 *
 * Sending from our own memory is one sendmsg per frame whose iovecs point at the pages
 * (no user-space copy); from another process, one batched process_vm_readv per frame into a
 * staging buffer, then one sendmsg. The receiver reads a frame into its buffer and hands the
 * whole frame to the consumer. */
#include "tp_priv.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdbool.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TCP_FRAME_RUNS 1000 /* runs per frame: iovecs of one sendmsg stay below IOV_MAX */

#define CTL_RX_BYTES (MOS_WIRE_HDR_BYTES + MOS_WIRE_MAX_CONTROL)

struct tcp_state {
    int bulk_fd;
    /* s->buf (slot_bytes) is allocated at first need: connections that only exchange control
     * messages (the deputy's) never pay for it. */
    uint8_t ctl_rx[CTL_RX_BYTES]; /* control stream read-ahead: usually one recv per message */
    size_t rx_start, rx_end;
    int rcvtimeo_ms;              /* the control socket's SO_RCVTIMEO now */
    uint8_t *buf;                 /* receive frame / staging for another process's pages */
    struct mos_page_run runs[TCP_FRAME_RUNS];
    uint8_t table[MOS_WIRE_HDR_BYTES + MOS_WIRE_RUN_HDR_BYTES + TCP_FRAME_RUNS * MOS_WIRE_RUN_BYTES];
    struct iovec iov[TCP_FRAME_RUNS + 2]; /* table, pages, tag */
    uint8_t tag[MOS_WIRE_FRAME_TAG_BYTES];
};

static int tcp_buf_need(mos_tp_conn_t *c, struct tcp_state *s)
{
    if (!s->buf && !(s->buf = malloc(c->slot_bytes)))
        return -ENOMEM;
    return 0;
}

static int tcp_state_new(mos_tp_conn_t *c, int bulk_fd)
{
    struct tcp_state *s = calloc(1, sizeof(*s));

    if (!s)
        return -ENOMEM;
    s->bulk_fd = bulk_fd;
    s->rcvtimeo_ms = c->timeout_ms; /* set by tp_socket_tune */
    c->be = s;
    c->ops = &mos_tp_tcp_ops;
    c->backend = MOS_TP_TCP;
    return 0;
}

int tp_tcp_server_listen(mos_tp_conn_t *c, int *listen_fd, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd, p;

    /* The session's bulk stream comes to a fresh port on the address the client reached. */
    if ((fd = tp_ctl_addr(c, false, 0, &ss, &len)) < 0)
        return fd;
    if ((fd = tp_listen_fd(&ss, len, 4)) < 0)
        return fd;
    if ((p = tp_local_port(fd)) < 0) {
        close(fd);
        return p;
    }
    *listen_fd = fd;
    *port = (uint16_t)p;
    return 0;
}

static void attach_mac(mos_tp_conn_t *c, uint8_t mac[MOS_MAC_BYTES])
{
    struct mos_mac_part parts[] = {{"mos-attach", 10}, {c->token, MOS_WIRE_TOKEN_BYTES}};
    mos_key_mac(&c->key, parts, 2, mac);
}

int tp_tcp_server_attach(mos_tp_conn_t *c, int listen_fd)
{
    uint64_t deadline = mos_clock_now_ns() + (uint64_t)c->timeout_ms * MOS_NSEC_PER_MSEC;
    uint8_t body[MOS_WIRE_TOKEN_BYTES + MOS_MAC_BYTES];
    struct mos_wire_hdr h;
    int fd, rc;

    /* Only the client that holds the token (and proves it with the key) may attach; anyone
     * else who finds the port is dropped and we keep waiting until the deadline. */
    for (;;) {
        uint64_t now = mos_clock_now_ns();
        if (now >= deadline) {
            mos_err(TP_LOG, "%s: bulk stream did not arrive", c->peer);
            return -ETIMEDOUT;
        }
        if ((rc = tp_wait_readable(listen_fd, (int)((deadline - now) / MOS_NSEC_PER_MSEC) + 1)) < 0)
            continue;
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (tp_socket_tune(fd, c->timeout_ms, true) == 0 &&
            tp_msg_recv(fd, &h, body, sizeof(body), c->timeout_ms) == 0 &&
            h.type == MOS_WIRE_ATTACH && h.length == sizeof(body) &&
            memcmp(body, c->token, MOS_WIRE_TOKEN_BYTES) == 0) {
            struct mos_mac_part parts[] = {{"mos-attach", 10}, {c->token, MOS_WIRE_TOKEN_BYTES}};
            if (mos_key_mac_verify(&c->key, parts, 2, body + MOS_WIRE_TOKEN_BYTES) == 0)
                break;
        }
        close(fd);
    }
    if ((rc = tcp_state_new(c, fd)) < 0)
        close(fd);
    return rc;
}

int tp_tcp_client_attach(mos_tp_conn_t *c, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    uint8_t body[MOS_WIRE_TOKEN_BYTES + MOS_MAC_BYTES];
    int fd, rc;

    if ((rc = tp_ctl_addr(c, true, port, &ss, &len)) < 0)
        return rc;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mos_errno_status();
    if ((rc = tp_socket_tune(fd, c->timeout_ms, true)) < 0)
        goto fail;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        rc = mos_errno_status();
        mos_err(TP_LOG, "%s: bulk stream to port %u: %s", c->peer, port, mos_strerror(rc));
        goto fail;
    }
    memcpy(body, c->token, MOS_WIRE_TOKEN_BYTES);
    attach_mac(c, body + MOS_WIRE_TOKEN_BYTES);
    if ((rc = tp_msg_send(fd, MOS_WIRE_ATTACH, 0, body, sizeof(body))) < 0)
        goto fail;
    if ((rc = tcp_state_new(c, fd)) < 0)
        goto fail;
    return 0;
fail:
    close(fd);
    return rc;
}

static int tcp_ctl_send(mos_tp_conn_t *c, uint16_t type, uint32_t id, const void *msg, size_t len)
{
    return tp_msg_send(c->ctl_fd, type, id, msg, len);
}

/* Take one whole message out of the read-ahead buffer, if it holds one: 1 = taken. */
static int ctl_rx_take(struct tcp_state *s, struct mos_wire_hdr *hdr, void *buf, size_t cap)
{
    size_t avail = s->rx_end - s->rx_start;
    int rc;

    if (avail < MOS_WIRE_HDR_BYTES)
        return 0;
    if ((rc = mos_wire_hdr_decode(s->ctl_rx + s->rx_start, avail, hdr)) < 0)
        return rc;
    if (avail < MOS_WIRE_HDR_BYTES + hdr->length)
        return 0;
    rc = hdr->length > cap ? MOS_E_LIMIT : 1;
    if (rc == 1)
        memcpy(buf, s->ctl_rx + s->rx_start + MOS_WIRE_HDR_BYTES, hdr->length);
    s->rx_start += MOS_WIRE_HDR_BYTES + hdr->length;
    if (s->rx_start == s->rx_end)
        s->rx_start = s->rx_end = 0;
    return rc;
}

static int tcp_ctl_recv(mos_tp_conn_t *c, struct mos_wire_hdr *hdr, void *buf, size_t cap,
                        int timeout_ms)
{
    struct tcp_state *s = c->be;
    int flags = 0, rc;

    /* One blocking recv per message: the wait is the socket's SO_RCVTIMEO, changed only when
     * the caller's timeout changes (a poll first would cost a system call per message). */
    if (timeout_ms == 0) {
        flags = MSG_DONTWAIT;
    } else if (timeout_ms != s->rcvtimeo_ms) {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        if (setsockopt(c->ctl_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
            return mos_errno_status();
        s->rcvtimeo_ms = timeout_ms;
    }
    for (;;) {
        if ((rc = ctl_rx_take(s, hdr, buf, cap)) != 0)
            return rc < 0 ? rc : 0;
        if (s->rx_start > 0) { /* a partial message at the end: move it to the front */
            memmove(s->ctl_rx, s->ctl_rx + s->rx_start, s->rx_end - s->rx_start);
            s->rx_end -= s->rx_start;
            s->rx_start = 0;
        }
        ssize_t r = recv(c->ctl_fd, s->ctl_rx + s->rx_end, CTL_RX_BYTES - s->rx_end, flags);
        if (r == 0)
            return s->rx_end ? MOS_E_TRUNCATED : MOS_E_PEER_GONE;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -ETIMEDOUT;
            return errno == ECONNRESET ? MOS_E_PEER_GONE : mos_errno_status();
        }
        s->rx_end += (size_t)r;
    }
}

/* One frame: header + run table (+ pages from our memory, or the staging buffer) + tag. */
static int tcp_frame_send(mos_tp_conn_t *c, pid_t pid, size_t k, uint64_t pages)
{
    struct tcp_state *s = c->be;
    size_t table = mos_wire_runs_table_bytes(k);
    uint64_t bytes = pages * MOS_TP_PAGE_SIZE;
    int n = 1, rc;

    mos_wire_hdr_make(MOS_WIRE_PAGE_RUN, (uint32_t)(table + bytes + MOS_WIRE_FRAME_TAG_BYTES), 0,
                      s->table);
    mos_wire_runs_encode(s->runs, k, s->table + MOS_WIRE_HDR_BYTES);
    s->iov[0] = (struct iovec){s->table + MOS_WIRE_HDR_BYTES, table};
    if (pid == 0) {
        for (size_t i = 0; i < k; i++, n++)
            s->iov[n] = (struct iovec){(void *)(uintptr_t)s->runs[i].addr,
                                       s->runs[i].npages * MOS_TP_PAGE_SIZE};
    } else {
        if ((rc = tcp_buf_need(c, s)) < 0 || (rc = tp_source_fill(c, pid, s->runs, k, s->buf)) < 0)
            return rc; /* the source's failure, logged there; the stream is intact */
        s->iov[n++] = (struct iovec){s->buf, bytes};
    }
    /* the tag over what is sent, as it is sent: pages are read once more, never copied */
    tp_frame_tag(c, c->frames_tx++, s->iov, n, s->tag);
    s->iov[0] = (struct iovec){s->table, MOS_WIRE_HDR_BYTES + table};
    s->iov[n++] = (struct iovec){s->tag, sizeof(s->tag)};
    if ((rc = tp_write_iov(s->bulk_fd, s->iov, n)) < 0)
        return tp_conn_fail(c, rc, "bulk send");
    return 0;
}

static int tcp_bulk_send(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs, size_t n)
{
    struct tcp_state *s = c->be;
    uint8_t end[MOS_WIRE_BULK_END_BYTES];
    int rc = tp_bulk_frames(c, pid, runs, n, s->runs, TCP_FRAME_RUNS, tcp_frame_send, end), rc2;

    if (c->broken)
        return rc;
    if ((rc2 = tp_msg_send(s->bulk_fd, MOS_WIRE_BULK_END, 0, end, sizeof(end))) < 0)
        return tp_conn_fail(c, rc2, "bulk send");
    return rc;
}

/* ---- receiving a bulk stream (tp_bulk_consume: from a socket here, from memory when fuzzed) */

static int in_read(const struct tp_bulk_in *in, void *buf, size_t len)
{
    struct iovec iov = {buf, len};

    return len ? in->read_iov(in->arg, &iov, 1) : 0;
}

static int in_fail(mos_tp_conn_t *c, int rc, const char *what)
{
    return tp_conn_fail(c, rc == MOS_E_PEER_GONE ? MOS_E_TRUNCATED : rc, what);
}

/* The frame's tag, read after its pages and checked over the table and the pages where they
 * landed, before the consumer sees them. */
static int frame_tag_check(mos_tp_conn_t *c, const struct tp_bulk_in *in,
                           const struct tp_bulk_rx *rx, size_t table, struct iovec *pages, int n)
{
    uint8_t tag[MOS_WIRE_FRAME_TAG_BYTES];
    struct mos_seal_mac m;
    int rc;

    if ((rc = in_read(in, tag, sizeof(tag))) < 0)
        return in_fail(c, rc, "bulk receive");
    mos_seal_mac_begin(&c->bulk.rx, c->frames_rx++, &m);
    mos_seal_mac_add(&m, rx->buf, table);
    for (int i = 0; i < n; i++)
        mos_seal_mac_add(&m, pages[i].iov_base, pages[i].iov_len);
    if (mos_seal_mac_verify(&m, tag) < 0)
        return tp_conn_fail(c, MOS_E_TAMPERED, "page-run frame");
    return 0;
}

/* The page data of a frame whose table is parsed: straight into the destination when the
 * consumer is the buffer placer (one recvmsg with an iovec per run, no copy in user space),
 * else into the frame buffer and through the consumer; then its tag. */
static int frame_data(mos_tp_conn_t *c, const struct tp_bulk_in *in, const struct tp_bulk_rx *rx,
                      size_t k, size_t table, uint32_t length, mos_page_place_fn place, void *arg)
{
    struct iovec pages;
    int rc;

    if (place == mos_tp_place_into_buffer) {
        for (size_t i = 0; i < k; i++) {
            uint8_t *dst = tp_place_buffer_locate(arg, &rx->runs[i]);
            if (!dst) { /* logged by the locator; the frame's pages stay unread */
                c->broken = true;
                return MOS_E_LIMIT;
            }
            rx->iov[i] = (struct iovec){dst, rx->runs[i].npages * MOS_TP_PAGE_SIZE};
        }
        if ((rc = in->read_iov(in->arg, rx->iov, (int)k)) < 0)
            return in_fail(c, rc, "bulk receive");
        /* a bad tag leaves forged bytes in the buffer: the caller discards it on the error */
        return frame_tag_check(c, in, rx, table, rx->iov, (int)k);
    }
    pages = (struct iovec){rx->buf + table, length - table};
    if ((rc = in_read(in, pages.iov_base, pages.iov_len)) < 0)
        return in_fail(c, rc, "bulk receive");
    if ((rc = frame_tag_check(c, in, rx, table, &pages, 1)) < 0)
        return rc;
    /* A consumer that fails leaves the rest of the transfer in flight: the connection cannot
     * be resynchronised, so it is given up. */
    if ((rc = place(arg, rx->runs, k, rx->buf + table)) < 0)
        c->broken = true; /* the consumer logged why */
    return rc;
}

static int bulk_end(mos_tp_conn_t *c, const struct tp_bulk_in *in, const struct tp_bulk_rx *rx,
                    const struct mos_wire_hdr *h, const struct mos_tp_bulk_stats *st)
{
    int rc;

    if (h->length != MOS_WIRE_BULK_END_BYTES)
        return tp_conn_fail(c, MOS_E_PROTO, "bulk end marker");
    if ((rc = in_read(in, rx->buf, MOS_WIRE_BULK_END_BYTES)) < 0)
        return in_fail(c, rc, "bulk receive");
    if (tp_end_check(c, rx->buf) < 0)
        return tp_conn_fail(c, MOS_E_TAMPERED, "bulk end marker");
    if (mos_get_le64(rx->buf) == MOS_WIRE_BULK_ABORTED) {
        mos_err(TP_LOG, "%s: the sender aborted the bulk transfer (its source failed)", c->peer);
        return -ECANCELED;
    }
    if (mos_get_le64(rx->buf) != st->frames || mos_get_le64(rx->buf + 8) != st->pages)
        return tp_conn_fail(c, MOS_E_PROTO, "bulk end marker (counts differ)");
    return 0;
}

/* One page-run frame's header is read: its table (checked before any page is read), then its
 * pages. The number of runs, or a status. */
static int frame_consume(mos_tp_conn_t *c, const struct tp_bulk_in *in, const struct tp_bulk_rx *rx,
                         const struct mos_wire_hdr *h, mos_page_place_fn place, void *arg)
{
    size_t k, table;
    uint32_t length = h->length - MOS_WIRE_FRAME_TAG_BYTES; /* table and pages */
    int rc;

    if (h->type != MOS_WIRE_PAGE_RUN || h->length > c->slot_bytes ||
        h->length < MOS_WIRE_RUN_HDR_BYTES + MOS_WIRE_FRAME_TAG_BYTES)
        return tp_conn_fail(c, MOS_E_PROTO, "bulk receive (not a page-run frame)");
    /* its size is in its first word */
    if ((rc = in_read(in, rx->buf, MOS_WIRE_RUN_HDR_BYTES)) < 0)
        return in_fail(c, rc, "bulk receive");
    k = mos_get_le32(rx->buf);
    table = mos_wire_runs_table_bytes(k > rx->max_runs ? 0 : k);
    if (k == 0 || k > rx->max_runs || table > length)
        return tp_conn_fail(c, MOS_E_PROTO, "page-run frame (run count)");
    if ((rc = in_read(in, rx->buf + MOS_WIRE_RUN_HDR_BYTES, table - MOS_WIRE_RUN_HDR_BYTES)) < 0)
        return in_fail(c, rc, "bulk receive");
    if ((rc = mos_wire_runs_table_decode(rx->buf, table, length, rx->runs, rx->max_runs, &k)) < 0)
        return tp_conn_fail(c, rc, "page-run frame");
    if ((rc = frame_data(c, in, rx, k, table, length, place, arg)) < 0)
        return rc;
    return (int)k;
}

int tp_bulk_consume(mos_tp_conn_t *c, const struct tp_bulk_in *in, const struct tp_bulk_rx *rx,
                    mos_page_place_fn place, void *arg, struct mos_tp_bulk_stats *stats)
{
    struct mos_tp_bulk_stats st = {0};
    uint8_t raw[MOS_WIRE_HDR_BYTES];
    struct mos_wire_hdr h;
    int rc;

    for (;;) {
        if ((rc = in_read(in, raw, sizeof(raw))) < 0)
            return tp_conn_fail(c, rc, "bulk receive");
        if ((rc = mos_wire_hdr_decode(raw, sizeof(raw), &h)) < 0)
            return tp_conn_fail(c, rc, "bulk receive");
        if (h.type == MOS_WIRE_BULK_END) {
            if ((rc = bulk_end(c, in, rx, &h, &st)) < 0)
                return rc;
            break;
        }
        if ((rc = frame_consume(c, in, rx, &h, place, arg)) < 0)
            return rc;
        st.frames++;
        st.pages += (h.length - MOS_WIRE_FRAME_TAG_BYTES - mos_wire_runs_table_bytes((size_t)rc)) /
                    MOS_TP_PAGE_SIZE;
    }
    if (stats)
        *stats = st;
    return 0;
}

static int fd_read_iov(void *arg, struct iovec *iov, int n)
{
    return tp_read_iov(*(int *)arg, iov, n);
}

static int tcp_bulk_recv(mos_tp_conn_t *c, mos_page_place_fn place, void *arg,
                         struct mos_tp_bulk_stats *stats)
{
    struct tcp_state *s = c->be;
    int rc;

    if ((rc = tcp_buf_need(c, s)) < 0)
        return rc;
    struct tp_bulk_in in = {fd_read_iov, &s->bulk_fd};
    struct tp_bulk_rx rx = {s->buf, s->runs, s->iov, TCP_FRAME_RUNS};
    return tp_bulk_consume(c, &in, &rx, place, arg, stats);
}

static int tcp_fd(const mos_tp_conn_t *c)
{
    return c->ctl_fd;
}

static void tcp_destroy(mos_tp_conn_t *c)
{
    struct tcp_state *s = c->be;

    if (!s)
        return;
    close(s->bulk_fd);
    free(s->buf);
    free(s);
    c->be = NULL;
}

const struct mos_tp_ops mos_tp_tcp_ops = {
    .name = "tcp",
    .ctl_send = tcp_ctl_send,
    .ctl_recv = tcp_ctl_recv,
    .bulk_send = tcp_bulk_send,
    .bulk_recv = tcp_bulk_recv,
    .fd = tcp_fd,
    .destroy = tcp_destroy,
};
