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
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

int tp_read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = recv(fd, (uint8_t *)buf + got, len - got, MSG_WAITALL);

        if (r == 0)
            return got == 0 ? MOS_E_PEER_GONE : MOS_E_TRUNCATED;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -ETIMEDOUT;
            if (errno == ECONNRESET)
                return got == 0 ? MOS_E_PEER_GONE : MOS_E_TRUNCATED;
            return mos_errno_status();
        }
        got += (size_t)r;
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
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
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

int tp_socket_tune(int fd, int timeout_ms, bool bulk)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int one = 1, big = 8 << 20;

    /* Control messages are small and latency-bound: no Nagle. Bulk streams want buffers
     * large enough for several frames in flight (the kernel clamps to net.core.*mem_max). */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return mos_errno_status();
    if (bulk) {
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    }
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
