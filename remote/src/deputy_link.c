/* The deputy link: a TCP connection between a guest's supervisor and its deputy at home.
 *
 * The deputy runs as the job's owner and holds no cluster key, so the link is authenticated
 * with a per-job token instead: mosd hands the token to the deputy over its local socket and to
 * the target node inside the key-authenticated migration, and both ends prove they know it
 * before anything else with the challenge-response of mos/auth.h, its three messages sent as
 * raw bytes: the supervisor connects and is the client ("supervisor"), the deputy accepts and
 * is the server ("deputy"). The session secret of that proof keys the link's sealed records
 * (forward_wire.c). */
#include "mos/forward.h"

#include "mos/auth.h"
#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int io_full(int fd, void *buf, size_t len, int writing, int timeout_ms)
{
    size_t done = 0;

    while (done < len) {
        struct pollfd pfd = {fd, writing ? POLLOUT : POLLIN, 0};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr == 0)
            return -ETIMEDOUT;
        if (pr < 0 && errno == EINTR)
            continue;
        ssize_t n = pr < 0 ? -1
                    : writing ? send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL)
                              : recv(fd, (char *)buf + done, len - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? MOS_E_PEER_GONE : -errno;
        done += (size_t)n;
    }
    return 0;
}

struct link_io {
    int fd;
    int timeout_ms;
};

static int link_send(void *arg, enum mos_auth_msg msg, const void *buf, size_t len)
{
    const struct link_io *io = arg;

    (void)msg;
    return io_full(io->fd, (void *)buf, len, 1, io->timeout_ms);
}

static int link_recv(void *arg, enum mos_auth_msg msg, void *buf, size_t len)
{
    const struct link_io *io = arg;

    (void)msg;
    return io_full(io->fd, buf, len, 0, io->timeout_ms);
}

/* Prove the job's token on a connected stream, as the deputy (server) or the supervisor, and
 * make it a link with the session's keys. */
static int link_auth(int fd, const uint8_t token[MOS_LINK_TOKEN_BYTES], int timeout_ms,
                     int as_deputy, struct mos_link *link)
{
    uint8_t session[MOS_AUTH_SESSION_BYTES];
    int rc;
    struct link_io io = {fd, timeout_ms};
    mos_key_t key;
    const struct mos_auth a = {
        .key = &key,
        .client_role = "supervisor",
        .server_role = "deputy",
        .io = {.send = link_send, .recv = link_recv, .refuse = NULL, .arg = &io},
    };

    _Static_assert(MOS_LINK_TOKEN_BYTES == MOS_KEY_BYTES, "a job token is a key");
    memcpy(key.bytes, token, sizeof(key.bytes));
    rc = as_deputy ? mos_auth_server(&a, session) : mos_auth_client(&a, session);
    if (rc == 0)
        mos_link_init(link, fd, session, !as_deputy);
    explicit_bzero(session, sizeof(session));
    explicit_bzero(&key, sizeof(key));
    return rc;
}

void mos_link_init(struct mos_link *l, int fd, const uint8_t session[MOS_AUTH_SESSION_BYTES],
                   int is_supervisor)
{
    memset(l, 0, sizeof(*l));
    l->fd = fd;
    mos_seal_init(&l->seal, session, MOS_SEAL_LINK, is_supervisor);
}

int mos_link_pair(struct mos_link *supervisor, struct mos_link *deputy)
{
    uint8_t session[MOS_AUTH_SESSION_BYTES];
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return mos_errno_status();
    mos_random_bytes(session, sizeof(session));
    mos_link_init(supervisor, sv[0], session, 1);
    mos_link_init(deputy, sv[1], session, 0);
    explicit_bzero(session, sizeof(session));
    return 0;
}

void mos_link_close(struct mos_link *l)
{
    if (l->fd >= 0)
        close(l->fd);
    free(l->out);
    mos_seal_wipe(&l->seal);
    l->fd = -1;
    l->out = NULL;
    l->out_cap = 0;
}

static void tune(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int mos_deputy_link_listen(const char *addr, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)*port);
        len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)*port);
        len = sizeof(struct sockaddr_in6);
    } else {
        return -EINVAL;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mos_errno_status();
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        int rc = mos_errno_status();
        close(fd);
        return rc;
    }
    *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

int mos_deputy_link_accept(int listen_fd, const uint8_t token[MOS_LINK_TOKEN_BYTES],
                           int timeout_ms, struct mos_link *link)
{
    for (;;) {
        struct pollfd pfd = {listen_fd, POLLIN, 0};
        int pr = poll(&pfd, 1, timeout_ms), fd, rc;

        if (pr == 0)
            return -ETIMEDOUT;
        if (pr < 0 && errno == EINTR)
            continue;
        fd = pr < 0 ? -1 : accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return mos_errno_status();
        tune(fd);
        rc = link_auth(fd, token, timeout_ms, 1, link);
        if (rc == 0)
            return 0;
        /* A stranger or a stale supervisor: refuse it and keep waiting for the right one. */
        mos_warn("deputy", "refused a link that did not prove the job's token (%s)",
                 mos_strerror(rc));
        close(fd);
    }
}

int mos_deputy_link_connect(const char *addr, int port, const uint8_t token[MOS_LINK_TOKEN_BYTES],
                            int timeout_ms, struct mos_link *link)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
    char service[16];
    int fd, rc;

    snprintf(service, sizeof(service), "%d", port);
    if (getaddrinfo(addr, service, &hints, &ai) != 0)
        return -EINVAL;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    rc = fd < 0 ? mos_errno_status()
                : connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 ? mos_errno_status() : 0;
    freeaddrinfo(ai);
    if (rc == 0) {
        tune(fd);
        rc = link_auth(fd, token, timeout_ms, 0, link);
    }
    if (rc != 0) {
        mos_err("supervisor", "deputy link to %s:%d failed: %s", addr, port, mos_strerror(rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    return 0;
}
