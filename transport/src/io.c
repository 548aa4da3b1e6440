/* Blocking stream helpers shared by the handshake and the tcp backend. */
#include "tp_priv.h"

#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Step past done bytes of an iovec array. */
static void iov_advance(struct iovec **iov, int *n, size_t done)
{
    while (*n > 0 && done >= (*iov)->iov_len) {
        done -= (*iov)->iov_len;
        (*iov)++, (*n)--;
    }
    if (*n > 0) {
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + done;
        (*iov)->iov_len -= done;
    }
}

int tp_write_iov(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)(n > IOV_MAX ? IOV_MAX : n)};
        /* MSG_NOSIGNAL: a vanished peer is an error return, not SIGPIPE. */
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -ETIMEDOUT;
            if (errno == EPIPE || errno == ECONNRESET)
                return MOS_E_PEER_GONE;
            return mos_errno_status();
        }
        iov_advance(&iov, &n, (size_t)w);
    }
    return 0;
}

int tp_read_iov(int fd, struct iovec *iov, int n)
{
    bool any = false;

    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)(n > IOV_MAX ? IOV_MAX : n)};
        ssize_t r = recvmsg(fd, &mh, MSG_WAITALL);

        if (r == 0)
            return any ? MOS_E_TRUNCATED : MOS_E_PEER_GONE;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -ETIMEDOUT;
            if (errno == ECONNRESET)
                return any ? MOS_E_TRUNCATED : MOS_E_PEER_GONE;
            return mos_errno_status();
        }
        any = true;
        iov_advance(&iov, &n, (size_t)r);
    }
    return 0;
}

int tp_read_full(int fd, void *buf, size_t len)
{
    struct iovec iov = {buf, len};

    return len ? tp_read_iov(fd, &iov, 1) : 0;
}

/* The local (or the peer's) address of the connection's TCP stream, with another port. */
int tp_ctl_addr(const mos_tp_conn_t *c, bool peer, uint16_t port, struct sockaddr_storage *ss,
                socklen_t *len)
{
    *len = sizeof(*ss);
    if ((peer ? getpeername(c->ctl_fd, (struct sockaddr *)ss, len)
              : getsockname(c->ctl_fd, (struct sockaddr *)ss, len)) < 0)
        return mos_errno_status();
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    return 0;
}

int tp_wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    for (;;) {
        int r = poll(&p, 1, timeout_ms);

        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return mos_errno_status();
    }
}

int tp_msg_send(int fd, uint16_t type, uint32_t id, const void *body, size_t len)
{
    uint8_t hdr[MOS_WIRE_HDR_BYTES];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)body, len}};

    mos_wire_hdr_make(type, (uint32_t)len, id, hdr);
    return tp_write_iov(fd, iov, len ? 2 : 1);
}

int tp_reason_send(int fd, uint16_t type, uint32_t code, const char *text)
{
    uint8_t body[MOS_WIRE_REASON_BYTES] = {0};
    size_t tl = strnlen(text, sizeof(body) - 5);

    mos_put_le32(body, code);
    memcpy(body + 4, text, tl);
    return tp_msg_send(fd, type, 0, body, 4 + tl);
}

int tp_msg_recv(int fd, struct mos_wire_hdr *hdr, void *buf, size_t cap, int timeout_ms)
{
    uint8_t raw[MOS_WIRE_HDR_BYTES];
    int rc;

    if (timeout_ms >= 0 && (rc = tp_wait_readable(fd, timeout_ms)) < 0)
        return rc;
    if ((rc = tp_read_full(fd, raw, sizeof(raw))) < 0)
        return rc == MOS_E_TRUNCATED ? MOS_E_TRUNCATED : rc;
    if ((rc = mos_wire_hdr_decode(raw, sizeof(raw), hdr)) < 0)
        return rc;
    if (hdr->length > cap) {
        /* Too big for the caller, yet well-formed: drain it so the stream stays in step. */
        uint8_t sink[4096];
        for (uint32_t left = hdr->length; left > 0;) {
            uint32_t k = left < sizeof(sink) ? left : (uint32_t)sizeof(sink);
            if ((rc = tp_read_full(fd, sink, k)) < 0)
                return rc == MOS_E_PEER_GONE ? MOS_E_TRUNCATED : rc;
            left -= k;
        }
        return MOS_E_LIMIT;
    }
    if (hdr->length && (rc = tp_read_full(fd, buf, hdr->length)) < 0)
        return rc == MOS_E_PEER_GONE ? MOS_E_TRUNCATED : rc;
    return 0;
}

int tp_addr_parse(const char *hostport, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *port, *colon;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    size_t hl;
    int rc;

    if (hostport[0] == '[') {
        const char *end = strchr(hostport, ']');
        if (!end || end[1] != ':')
            goto bad;
        hl = (size_t)(end - hostport - 1);
        hostport++;
        port = end + 2;
    } else {
        colon = strrchr(hostport, ':');
        if (!colon)
            goto bad;
        hl = (size_t)(colon - hostport);
        port = colon + 1;
    }
    if (hl == 0 || hl >= sizeof(host) || *port == '\0')
        goto bad;
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        mos_err(TP_LOG, "cannot resolve '%s': %s", hostport, gai_strerror(rc));
        return MOS_E_CONFIG;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
bad:
    mos_err(TP_LOG, "bad endpoint '%s': expected host:port", hostport);
    return MOS_E_CONFIG;
}

void tp_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%d", host, port);
    } else {
        snprintf(buf, len, "?");
    }
}

/* The largest buffer TCP autotuning may grow to (the third field of tcp_rmem/tcp_wmem). */
static long autotune_max(const char *path)
{
    FILE *f = fopen(path, "r");
    long lo, def, max = 0;

    if (f) {
        if (fscanf(f, "%ld %ld %ld", &lo, &def, &max) != 3)
            max = 0;
        fclose(f);
    }
    return max;
}

int tp_socket_tune(int fd, int timeout_ms, bool bulk)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int one = 1, big = TP_BULK_SOCKBUF;

    /* Control messages are small and latency-bound: no Nagle. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return mos_errno_status();
    /* Bulk streams want large buffers. Setting SO_RCVBUF/SO_SNDBUF turns the kernel's
     * autotuning off and is capped by net.core.[rw]mem_max, so ask only where autotuning
     * would stop below TP_BULK_SOCKBUF (measured: autotuning to 32 MiB beats a fixed 4 MiB). */
    if (bulk && autotune_max("/proc/sys/net/ipv4/tcp_wmem") < big)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    if (bulk && autotune_max("/proc/sys/net/ipv4/tcp_rmem") < big)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    return 0;
}

int tp_listen_fd(const struct sockaddr_storage *ss, socklen_t len, int backlog)
{
    int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return mos_errno_status();
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, backlog) < 0) {
        int rc = mos_errno_status();
        close(fd);
        return rc;
    }
    return fd;
}

int tp_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return mos_errno_status();
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

size_t tp_frame_next(const struct mos_page_run *runs, size_t n, size_t *i, uint64_t *off,
                     struct mos_page_run *frame, size_t max_runs, uint64_t max_pages,
                     uint64_t *pages)
{
    size_t k = 0;
    uint64_t total = 0;

    while (*i < n && k < max_runs && total < max_pages) {
        uint64_t left = runs[*i].npages - *off, take = max_pages - total;
        /* A run longer than the wire's 32-bit count is cut into pieces too. */
        if (take > left)
            take = left;
        if (take > UINT32_MAX)
            take = UINT32_MAX;
        if (take == 0) { /* empty run in the input: skip it */
            (*i)++, *off = 0;
            continue;
        }
        frame[k].addr = runs[*i].addr + *off * MOS_TP_PAGE_SIZE;
        frame[k].npages = take;
        k++;
        total += take;
        *off += take;
        if (*off == runs[*i].npages)
            (*i)++, *off = 0;
    }
    *pages = total;
    return k;
}

static void frame_mac(const struct mos_seal_key *k, uint64_t nr, const struct iovec *iov, int n,
                      struct mos_seal_mac *m)
{
    mos_seal_mac_begin(k, nr, m);
    for (int i = 0; i < n; i++)
        mos_seal_mac_add(m, iov[i].iov_base, iov[i].iov_len);
}

void tp_frame_tag(const mos_tp_conn_t *c, uint64_t nr, const struct iovec *iov, int n,
                  uint8_t tag[MOS_WIRE_FRAME_TAG_BYTES])
{
    struct mos_seal_mac m;

    frame_mac(&c->bulk.tx, nr, iov, n, &m);
    mos_seal_mac_final(&m, tag);
}

int tp_frame_check(const mos_tp_conn_t *c, uint64_t nr, const struct iovec *iov, int n,
                   const uint8_t tag[MOS_WIRE_FRAME_TAG_BYTES])
{
    struct mos_seal_mac m;

    frame_mac(&c->bulk.rx, nr, iov, n, &m);
    return mos_seal_mac_verify(&m, tag);
}

void tp_end_tag(mos_tp_conn_t *c, uint8_t end[MOS_WIRE_BULK_END_BYTES])
{
    struct iovec counts = {end, 16};
    struct mos_seal_mac m;

    frame_mac(&c->bulk.tx, MOS_WIRE_END_NONCE | c->ends_tx++, &counts, 1, &m);
    mos_seal_mac_final(&m, end + 16);
}

int tp_end_check(mos_tp_conn_t *c, const uint8_t end[MOS_WIRE_BULK_END_BYTES])
{
    struct iovec counts = {(void *)end, 16};
    struct mos_seal_mac m;

    frame_mac(&c->bulk.rx, MOS_WIRE_END_NONCE | c->ends_rx++, &counts, 1, &m);
    return mos_seal_mac_verify(&m, end + 16);
}

int tp_bulk_frames(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs, size_t n,
                   struct mos_page_run *frame, size_t max_runs, tp_frame_fn send_frame,
                   uint8_t end[MOS_WIRE_BULK_END_BYTES])
{
    uint64_t max_pages = (c->slot_bytes - mos_wire_runs_table_bytes(max_runs) -
                          MOS_WIRE_FRAME_TAG_BYTES) / MOS_TP_PAGE_SIZE;
    uint64_t off = 0, pages, frames = 0, total = 0;
    size_t i = 0, k;
    int rc = 0;

    while ((k = tp_frame_next(runs, n, &i, &off, frame, max_runs, max_pages, &pages))) {
        if ((rc = send_frame(c, pid, k, pages)) < 0) {
            if (c->broken)
                return rc;
            /* The source process failed us between frames: the end marker tells the
             * receiver, which stops waiting; the connection stays usable. */
            frames = MOS_WIRE_BULK_ABORTED;
            total = 0;
            break;
        }
        frames++, total += pages;
    }
    mos_put_le64(end, frames);
    mos_put_le64(end + 8, total);
    tp_end_tag(c, end);
    return rc;
}
