/* Unix sockets: sock_diag for the facts /proc does not give (the other end of a pair, a name,
 * the shutdown state), and a read of the receive queue that leaves it as it was. One request
 * and one reply each, so plain netlink rather than libmnl. */
#include "unix_sock.h"

#include "image_format.h"
#include "mos/status.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void diag_attrs(const struct unix_diag_msg *m, size_t len, struct mos_unix_sock *out)
{
    const struct rtattr *a = (const struct rtattr *)(m + 1);
    size_t left = len - NLMSG_ALIGN(sizeof(*m));

    for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
        size_t n = RTA_PAYLOAD(a);
        if (a->rta_type == UNIX_DIAG_NAME && n > 0)
            out->named = 1;
        else if (a->rta_type == UNIX_DIAG_PEER && n >= sizeof(uint32_t))
            memcpy(&out->peer, RTA_DATA(a), sizeof(uint32_t));
        else if (a->rta_type == UNIX_DIAG_SHUTDOWN && n >= 1)
            out->shutdown = *(const uint8_t *)RTA_DATA(a);
    }
}

int mos_unix_sock_find(uint32_t ino, struct mos_unix_sock *out)
{
    struct {
        struct nlmsghdr h;
        struct unix_diag_req r;
    } req = {.h = {.nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                   .nlmsg_flags = NLM_F_REQUEST},
             .r = {.sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_ino = ino,
                   .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER,
                   .udiag_cookie = {~0u, ~0u}}};
    long buf[1024];
    int rc = -EPROTO, s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

    if (s < 0)
        return mos_errno_status();
    ssize_t n = send(s, &req, sizeof(req), 0) < 0 ? -1 : recv(s, buf, sizeof(buf), 0);
    if (n < 0)
        rc = mos_errno_status();
    const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
    if (n > 0 && NLMSG_OK(h, (size_t)n)) {
        if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
            int err = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
            rc = err < 0 ? err : -EPROTO;
        } else if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
                   h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct unix_diag_msg))) {
            const struct unix_diag_msg *m = NLMSG_DATA(h);
            memset(out, 0, sizeof(*out));
            out->ino = m->udiag_ino;
            out->type = m->udiag_type;
            out->state = m->udiag_state;
            diag_attrs(m, h->nlmsg_len - NLMSG_LENGTH(0), out);
            rc = out->ino == ino ? 0 : -EPROTO;
        }
    }
    close(s);
    return rc;
}

struct queue_out {
    uint8_t *p;
    uint32_t len, cap, nmsgs;
};

static int queue_add(struct queue_out *q, const uint8_t *data, uint32_t n)
{
    uint32_t need = q->len + (uint32_t)sizeof(n) + n;

    if (need > q->cap) {
        uint32_t cap = need * 2;
        uint8_t *grown = realloc(q->p, cap);
        if (!grown)
            return -ENOMEM;
        q->p = grown;
        q->cap = cap;
    }
    memcpy(q->p + q->len, &n, sizeof(n));
    memcpy(q->p + q->len + sizeof(n), data, n);
    q->len = need;
    q->nmsgs++;
    return 0;
}

/* Descriptors in flight would land in our own table on a peek: closed again, and the socket
 * stays (they name files the image cannot carry). */
static int cmsg_has_fds(struct msghdr *mh)
{
    int found = (mh->msg_flags & MSG_CTRUNC) != 0;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t k = 0; k < nfd; k++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(fd));
                close(fd);
            }
            found = 1;
        }
    return found;
}

/* One peek at the next bytes past the peek offset: its length (the whole datagram's, which
 * may be more than cap), 0 at a stream's end or for an empty datagram, -EAGAIN when nothing
 * is left, MOS_E_NOT_MIGRATABLE for descriptors in flight, or -errno. */
static ssize_t queue_peek(int sock, uint8_t *buf, size_t cap)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(64 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {buf, cap};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                        .msg_controllen = sizeof(ctl)};
    ssize_t n = recvmsg(sock, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);

    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : mos_errno_status();
    return cmsg_has_fds(&mh) ? MOS_E_NOT_MIGRATABLE : n;
}

static int queue_walk(int sock, uint32_t type, uint32_t budget, uint8_t *buf, struct queue_out *q,
                      char *why, size_t whylen)
{
    uint32_t total = 0;
    ssize_t n;

    /* the peek offset moves past what each peek returned, so the queue is walked without
     * taking anything; a stream's bytes are gathered into one message */
    while ((n = queue_peek(sock, buf + (type == SOCK_STREAM ? total : 0),
                           budget + 1 - (type == SOCK_STREAM ? total : 0))) >= 0) {
        if ((uint64_t)total + (uint64_t)n > budget) {
            snprintf(why, whylen, "its queue holds more than %u bytes", budget);
            return MOS_E_NOT_MIGRATABLE;
        }
        if (type == SOCK_STREAM && n == 0)
            break; /* the other end shut down, nothing left */
        if (type != SOCK_STREAM && q->nmsgs == MOS_IMG_MAX_UNIX_MSGS) {
            snprintf(why, whylen, "its queue holds more than %u messages", MOS_IMG_MAX_UNIX_MSGS);
            return MOS_E_NOT_MIGRATABLE;
        }
        if (type != SOCK_STREAM && queue_add(q, buf, (uint32_t)n) != 0)
            return -ENOMEM;
        total += (uint32_t)n;
    }
    if (n == MOS_E_NOT_MIGRATABLE)
        snprintf(why, whylen, "its queue holds file descriptors in flight");
    if (n != -EAGAIN && n != 0)
        return (int)n;
    return type == SOCK_STREAM && total ? queue_add(q, buf, total) : 0;
}

int mos_unix_queue_read(int sock, uint32_t type, uint32_t budget, uint8_t **out, uint32_t *len,
                        uint32_t *nmsgs, char *why, size_t whylen)
{
    struct queue_out q = {0};
    int was = -1, zero = 0, rc;
    socklen_t sl = sizeof(was);
    uint8_t *buf = malloc((size_t)budget + 1);

    if (!buf)
        return -ENOMEM;
    if (getsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &was, &sl) < 0 ||
        setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0) {
        free(buf);
        return mos_errno_status();
    }
    rc = queue_walk(sock, type, budget, buf, &q, why, whylen);
    /* the offset is the socket's own, shared with the process: put back as it was */
    if (setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &was, sizeof(was)) < 0 && rc == 0)
        rc = mos_errno_status();
    free(buf);
    if (rc != 0) {
        free(q.p);
        return rc;
    }
    *out = q.p;
    *len = q.len;
    *nmsgs = q.nmsgs;
    return 0;
}
