/* The gossip library's UDP I/O: one non-blocking socket and a step timer the caller drives
 * from its own event loop (mosd: libevent), or mos_gossip_run for simple programs. */
#include "gossip_priv.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

int mos_gossip_open(struct mos_gossip *g)
{
    const struct gossip_peer *me = &g->peers[g->self];
    int fd, rc, one = 1;

    if (g->fd >= 0)
        return 0;
    g->family = me->sa.ss_family;
    fd = socket(g->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = mos_errno_status();
        mos_err("gossip", "cannot make a UDP socket: %s", mos_strerror(rc));
        return rc;
    }
    /* A restarted node must rebind its port at once. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&me->sa, me->sa_len) != 0) {
        rc = mos_errno_status();
        mos_err("gossip", "cannot bind UDP %s port %d: %s", g->cfg->nodes[g->self].addr,
                g->cfg->gossip_port, mos_strerror(rc));
        close(fd);
        return rc;
    }
    g->fd = fd;
    g->next_step_ms = mos_gossip_now_ms();
    return 0;
}

int mos_gossip_fd(const struct mos_gossip *g)
{
    return g->fd;
}

int mos_gossip_next_timeout_ms(const struct mos_gossip *g)
{
    int32_t left = (int32_t)(g->next_step_ms - mos_gossip_now_ms());

    return left > 0 ? left : 0;
}

static int send_to(struct mos_gossip *g, uint32_t slot, const uint8_t *buf, size_t len)
{
    const struct gossip_peer *p = &g->peers[slot];

    if (p->sa.ss_family != g->family) {
        g->stats.send_errors++; /* an IPv6 peer from an IPv4 node, or the reverse */
        return -EAFNOSUPPORT;
    }
    if (sendto(g->fd, buf, len, 0, (const struct sockaddr *)&p->sa, p->sa_len) < 0) {
        /* Datagrams are lossy by design: an unreachable peer is the gossip's business
         * (it will be presumed dead), not an error to stop for. */
        g->stats.send_errors++;
        return mos_errno_status();
    }
    g->stats.sent++;
    g->stats.bytes_sent += len;
    return 0;
}

/* Probe datagrams the last step or input made: small, a few per suspect. */
static void send_probes(struct mos_gossip *g)
{
    uint8_t pbuf[MOS_GOSSIP_PROBE_DATAGRAM];
    uint32_t to;
    int len;

    while ((len = mos_gossip_next_probe(g, mos_gossip_now_ms(), pbuf, sizeof(pbuf), &to)) != 0) {
        if (len < 0) {
            g->stats.probes_dropped++;
            continue;
        }
        send_to(g, to, pbuf, (size_t)len);
    }
}

int mos_gossip_on_timer(struct mos_gossip *g)
{
    uint32_t now = mos_gossip_now_ms(), target;
    int len;

    if ((int32_t)(g->next_step_ms - now) > 0)
        return 0;
    /* Keep the phase: the next step is one interval after this one was due, unless we are
     * more than a step late (a stopped process), then from now. */
    g->next_step_ms += g->interval_ms;
    if ((int32_t)(g->next_step_ms - now) <= 0)
        g->next_step_ms = now + g->interval_ms;
    /* What arrived while we waited counts first: a process that ran late would otherwise
     * age every entry by its own delay and suspect nodes whose news sits in its buffer. */
    mos_gossip_on_readable(g);
    now = mos_gossip_now_ms();
    len = mos_gossip_step(g, now, g->buf, MOS_GOSSIP_MAX_DATAGRAM, &target);
    if (len > 0)
        send_to(g, target, g->buf, (size_t)len);
    send_probes(g);
    return len < 0 ? len : 0;
}

int mos_gossip_on_readable(struct mos_gossip *g)
{
    int taken = 0;

    for (;;) {
        enum mos_gossip_drop why;
        ssize_t len = recv(g->fd, g->buf, MOS_GOSSIP_MAX_DATAGRAM, MSG_TRUNC);
        if (len < 0) {
            if (errno == EINTR)
                continue;
            break; /* EAGAIN: drained; other errors (ICMP reports) are not ours to act on */
        }
        if ((size_t)len > MOS_GOSSIP_MAX_DATAGRAM) { /* truncated: too big to be ours */
            g->stats.received++;
            g->stats.dropped[MOS_GOSSIP_DROP_FORMAT]++;
            continue;
        }
        if (mos_gossip_input(g, mos_gossip_now_ms(), g->buf, (size_t)len, &why) == 0)
            taken++;
        send_probes(g);
    }
    return taken;
}

int mos_gossip_leave(struct mos_gossip *g, unsigned copies)
{
    uint32_t now = mos_gossip_now_ms();
    int32_t since_step = (int32_t)(now - (g->next_step_ms - g->interval_ms));
    unsigned sent = 0;
    int len;

    /* Entries are kept to 4 ms: an announcement right after a step could look no newer than
     * that step's entry and be ignored as stale. */
    if (since_step >= 0 && since_step < 10) {
        mos_clock_sleep_ns((uint64_t)(10 - since_step) * MOS_NSEC_PER_MSEC);
        now = mos_gossip_now_ms();
    }
    len = mos_gossip_leave_datagram(g, now, g->buf, MOS_GOSSIP_MAX_DATAGRAM);
    if (len < 0)
        return len;
    /* Straight to the nodes themselves: a one-time event spreads by gossip only while it is
     * among the W youngest entries, a step or two once the node is silent, so gossip alone
     * reaches only the nodes a few hops away (the rest presume it dead later). */
    for (uint32_t i = 0, start = (uint32_t)(g->rng.next(g->rng.arg) % g->n);
         i < g->n && (copies == 0 || sent < copies); i++) {
        uint32_t s = (start + i) % g->n;
        if (s != g->self && mos_gossip_core_alive(g->core, now, s) && send_to(g, s, g->buf, (size_t)len) == 0)
            sent++;
    }
    return (int)sent;
}

int mos_gossip_run(struct mos_gossip *g, int timeout_ms)
{
    uint32_t end = mos_gossip_now_ms() + (uint32_t)timeout_ms;
    int rc = 0;

    for (;;) {
        int32_t left = (int32_t)(end - mos_gossip_now_ms());
        if (left <= 0)
            return rc;
        int wait = mos_gossip_next_timeout_ms(g);
        struct pollfd pfd = {.fd = g->fd, .events = POLLIN};
        if (poll(&pfd, 1, wait < left ? wait : left) < 0 && errno != EINTR)
            return mos_errno_status();
        if (pfd.revents & POLLIN)
            mos_gossip_on_readable(g);
        rc = mos_gossip_on_timer(g);
        if (rc != 0)
            return rc;
    }
}
