/* The deputy link: a TCP connection between a guest's supervisor and its deputy at home.
 *
 * The deputy runs as the job's owner and holds no cluster key, so the link is authenticated
 * with a per-job token instead: mosd hands the token to the deputy over its local socket and to
 * the target node inside the key-authenticated migration, and both ends prove they know it
 * (HMAC-SHA-256 challenge-response, each side with its own nonce) before anything else. */
#include "mos/forward.h"

#include "mos/key.h"
#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NONCE_BYTES 32

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

static void link_mac(const uint8_t token[MOS_LINK_TOKEN_BYTES], const char *role,
                     const uint8_t *first, const uint8_t *second, uint8_t mac[MOS_MAC_BYTES])
{
    mos_key_t key;
    struct mos_mac_part parts[] = {{role, strlen(role)},
                                   {first, NONCE_BYTES},
                                   {second, NONCE_BYTES}};

    memcpy(key.bytes, token, sizeof(key.bytes));
    mos_key_mac(&key, parts, 3, mac);
}

static int link_verify(const uint8_t token[MOS_LINK_TOKEN_BYTES], const char *role,
                       const uint8_t *first, const uint8_t *second,
                       const uint8_t mac[MOS_MAC_BYTES])
{
    mos_key_t key;
    struct mos_mac_part parts[] = {{role, strlen(role)},
                                   {first, NONCE_BYTES},
                                   {second, NONCE_BYTES}};

    memcpy(key.bytes, token, sizeof(key.bytes));
    return mos_key_mac_verify(&key, parts, 3, mac);
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

/* Server side: nonce_s out; nonce_c + proof_c in; proof_s out. */
static int prove_as_deputy(int fd, const uint8_t token[MOS_LINK_TOKEN_BYTES], int timeout_ms)
{
    uint8_t ns[NONCE_BYTES], nc[NONCE_BYTES], mac[MOS_MAC_BYTES];
    int rc;

    mos_random_bytes(ns, sizeof(ns));
    if ((rc = io_full(fd, ns, sizeof(ns), 1, timeout_ms)) != 0 ||
        (rc = io_full(fd, nc, sizeof(nc), 0, timeout_ms)) != 0 ||
        (rc = io_full(fd, mac, sizeof(mac), 0, timeout_ms)) != 0)
        return rc;
    if (link_verify(token, "supervisor", ns, nc, mac) != 0)
        return MOS_E_AUTH;
    link_mac(token, "deputy", nc, ns, mac);
    return io_full(fd, mac, sizeof(mac), 1, timeout_ms);
}

int mos_deputy_link_accept(int listen_fd, const uint8_t token[MOS_LINK_TOKEN_BYTES],
                           int timeout_ms)
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
        rc = prove_as_deputy(fd, token, timeout_ms);
        if (rc == 0)
            return fd;
        /* A stranger or a stale supervisor: refuse it and keep waiting for the right one. */
        mos_warn("deputy", "refused a link that did not prove the job's token (%s)",
                 mos_strerror(rc));
        close(fd);
    }
}

int mos_deputy_link_connect(const char *addr, int port, const uint8_t token[MOS_LINK_TOKEN_BYTES],
                            int timeout_ms)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
    uint8_t ns[NONCE_BYTES], nc[NONCE_BYTES], mac[MOS_MAC_BYTES];
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
        mos_random_bytes(nc, sizeof(nc));
        if ((rc = io_full(fd, ns, sizeof(ns), 0, timeout_ms)) == 0) {
            link_mac(token, "supervisor", ns, nc, mac);
            if ((rc = io_full(fd, nc, sizeof(nc), 1, timeout_ms)) == 0 &&
                (rc = io_full(fd, mac, sizeof(mac), 1, timeout_ms)) == 0 &&
                (rc = io_full(fd, mac, sizeof(mac), 0, timeout_ms)) == 0)
                rc = link_verify(token, "deputy", nc, ns, mac);
        }
    }
    if (rc != 0) {
        mos_err("supervisor", "deputy link to %s:%d failed: %s", addr, port, mos_strerror(rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    return fd;
}
