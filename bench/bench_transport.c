/* mosbench transport: bulk page-run throughput and control round-trip latency of one backend,
 * and in the same run the raw reference for it:
 *   tcp:   plain TCP sockets (kernel buffer autotuning, TCP_NODELAY) moving the same bytes with
 *          1 MiB writes and 1 MiB MSG_WAITALL reads straight into the destination, and a
 *          64-byte ping-pong;
 *   verbs: ib_write_bw (message size = our slot size) and ib_send_lat (64 bytes; it reports
 *          one-way latency, so the raw round trip is twice its t_typical) from perftest, on the
 *          same device and address. Run it inside the rxe guest (transport/tests/rxe_transport.sh
 *          bench ...), where RXE_DEV and RXE_GID name the device.
 * Server and client are two processes of this program on one address (loopback by default). */
#include "bench.h"

#include "mos/clock.h"
#include "mos/status.h"
#include "mos/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define RTT_MSG 64
#define RAW_CHUNK (1u << 20)

struct tbench {
    enum mos_tp_backend backend;
    unsigned long long bytes;
    unsigned slot, qps, iters, passes;
    const char *addr;
};

static uint8_t *bench_buffer(size_t bytes)
{
    uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
    /* Touch every page now: the first touch of a fresh page costs far more than moving it
     * (a VM artifact here), and would be measured instead of the transport. */
    memset(p, 0x5a, bytes);
    return p;
}

/* ---- ours ---- */

static int serve_ours(mos_tp_listener_t *l, uint8_t *buf, size_t bytes)
{
    mos_tp_conn_t *c;
    uint8_t msg[256];
    struct mos_tp_msg m;
    struct mos_tp_place_buffer pb = {buf, (uintptr_t)buf, bytes};
    int rc;

    if ((rc = mos_tp_accept(l, &c)) < 0)
        return rc;
    while ((rc = mos_tp_ctl_recv(c, &m, msg, sizeof(msg), 120000)) == 0) {
        if (m.len == 1 && msg[0] == 'B') { /* a bulk transfer follows */
            if ((rc = mos_tp_ctl_reply(c, m.id, "b", 1)) < 0 ||
                (rc = mos_tp_bulk_recv(c, mos_tp_place_into_buffer, &pb, NULL)) < 0)
                break;
            continue;
        }
        if (m.len == 1 && msg[0] == 'Q')
            break;
        if ((rc = mos_tp_ctl_reply(c, m.id, msg, m.len)) < 0)
            break;
    }
    mos_tp_close(c);
    return rc == MOS_E_PEER_GONE ? 0 : rc;
}

static double best_gbps(double best, unsigned long long bytes, uint64_t ns)
{
    double g = (double)bytes * 8 / (double)ns;
    return g > best ? g : best;
}

struct ours {
    mos_tp_conn_t *c;
    uint8_t *buf;
    struct mos_page_run run;
};

static int ours_open(const struct tbench *b, const char *hostport, struct ours *u)
{
    struct mos_tp_opts o;
    int rc;

    if (!(u->buf = bench_buffer(b->bytes)))
        return -ENOMEM;
    u->run = (struct mos_page_run){(uintptr_t)u->buf, b->bytes / MOS_TP_PAGE_SIZE};
    mos_tp_opts_default(&o);
    o.backend = b->backend;
    if (b->slot)
        o.slot_bytes = b->slot;
    o.n_qps = b->qps;
    if ((rc = mos_tp_connect(hostport, &o, &u->c)) < 0)
        return rc;
    if (mos_tp_conn_backend(u->c) != b->backend) {
        fprintf(stderr, "mosbench: got backend %s, wanted %s\n",
                mos_tp_backend_name(mos_tp_conn_backend(u->c)), mos_tp_backend_name(b->backend));
        return MOS_E_UNSUPPORTED;
    }
    return 0;
}

static void ours_close(const struct tbench *b, struct ours *u)
{
    uint8_t q = 'Q';

    if (u->c) {
        (void)mos_tp_ctl_send(u->c, 0, &q, 1);
        mos_tp_close(u->c);
    }
    if (u->buf)
        munmap(u->buf, b->bytes);
}

/* One bulk pass: the clock stops when a round trip after the send returns, i.e. when the
 * receiver has placed everything (tcp's send returns when the kernel has the bytes). */
static int ours_bulk(const struct tbench *b, struct ours *u, double *gbps)
{
    uint8_t go = 'B', rep[RTT_MSG], msg[8] = {0};
    size_t rl;
    int rc;

    if ((rc = mos_tp_ctl_call(u->c, &go, 1, rep, sizeof(rep), &rl)) < 0)
        return rc;
    uint64_t t0 = mos_clock_now_ns();
    if ((rc = mos_tp_bulk_send(u->c, 0, &u->run, 1)) < 0 ||
        (rc = mos_tp_ctl_call(u->c, msg, sizeof(msg), rep, sizeof(rep), &rl)) < 0)
        return rc;
    *gbps = best_gbps(*gbps, b->bytes, mos_clock_now_ns() - t0);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The median of n round-trip times in microseconds (the median, not the mean: a shared host
 * or a TCG guest adds rare, huge outliers). */
static double median_us(uint64_t *ns, unsigned n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    return (double)ns[n / 2] / 1000.0;
}

/* n round trips, each timed, into ns[]. */
static int ours_rtt(struct ours *u, unsigned n, uint64_t *ns)
{
    uint8_t msg[RTT_MSG] = {0}, rep[RTT_MSG];
    size_t rl;
    int rc;

    for (unsigned i = 0; i < n; i++) {
        uint64_t t0 = mos_clock_now_ns();
        if ((rc = mos_tp_ctl_call(u->c, msg, RTT_MSG, rep, sizeof(rep), &rl)) < 0)
            return rc;
        ns[i] = mos_clock_now_ns() - t0;
    }
    return 0;
}

/* ---- raw TCP reference ---- */

static int raw_listen(const char *ip, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, ip, &sa.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

static int raw_connect(const char *ip, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    /* Plain sockets: the kernel's buffer autotuning, no Nagle. */
    inet_pton(AF_INET, ip, &sa.sin_addr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int full_io(int fd, uint8_t *p, size_t n, bool wr)
{
    while (n > 0) {
        ssize_t r = wr ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, MSG_WAITALL);
        if (r <= 0)
            return -1;
        p += r, n -= (size_t)r;
    }
    return 0;
}

static void serve_raw(int lfd, uint8_t *buf, unsigned long long bytes, unsigned passes, unsigned iters)
{
    int one = 1, fd = accept(lfd, NULL, NULL);
    uint8_t msg[RTT_MSG];

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (unsigned p = 0; p < passes; p++) {
        for (unsigned long long off = 0; off < bytes; off += RAW_CHUNK) {
            size_t n = bytes - off < RAW_CHUNK ? bytes - off : RAW_CHUNK;
            if (full_io(fd, buf + off, n, false) < 0)
                goto out;
        }
        if (full_io(fd, msg, 1, true) < 0)
            goto out;
    }
    (void)iters;
    while (full_io(fd, msg, RTT_MSG, false) == 0 && full_io(fd, msg, RTT_MSG, true) == 0)
        ;
out:
    close(fd);
}

static int raw_bulk(const struct tbench *b, int fd, uint8_t *buf, double *gbps)
{
    uint8_t ack;

    uint64_t t0 = mos_clock_now_ns();
    for (unsigned long long off = 0; off < b->bytes; off += RAW_CHUNK) {
        size_t n = b->bytes - off < RAW_CHUNK ? b->bytes - off : RAW_CHUNK;
        if (full_io(fd, buf + off, n, true) < 0)
            return -EIO;
    }
    if (full_io(fd, &ack, 1, false) < 0)
        return -EIO;
    *gbps = best_gbps(*gbps, b->bytes, mos_clock_now_ns() - t0);
    return 0;
}

static int raw_rtt(int fd, unsigned n, uint64_t *ns)
{
    uint8_t msg[RTT_MSG] = {0};

    for (unsigned i = 0; i < n; i++) {
        uint64_t t0 = mos_clock_now_ns();
        if (full_io(fd, msg, RTT_MSG, true) < 0 || full_io(fd, msg, RTT_MSG, false) < 0)
            return -EIO;
        ns[i] = mos_clock_now_ns() - t0;
    }
    return 0;
}

/* ---- raw verbs reference: perftest in the same guest ---- */

/* Run "server" in the background and "client" in the foreground; the client's output goes to
 * out. Returns 0 when both exited 0. */
static int run_pair(const char *server, const char *client, char *out, size_t len)
{
    pid_t s = fork();
    FILE *f;
    size_t got;
    int st, rc;

    if (s == 0) {
        execl("/bin/sh", "sh", "-c", server, (char *)NULL);
        _exit(127);
    }
    sleep(2); /* perftest servers take a moment to listen */
    if (!(f = popen(client, "r")))
        return -1;
    got = fread(out, 1, len - 1, f);
    out[got] = '\0';
    rc = pclose(f);
    waitpid(s, &st, 0);
    return rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The first number on the line after the table header that contains key. */
static int perftest_column(const char *out, const char *key, int col, double *v)
{
    const char *h = strstr(out, key), *line;

    if (!h || !(line = strchr(h, '\n')))
        return -1;
    line++;
    for (int i = 0; i < col; i++) {
        while (*line == ' ')
            line++;
        while (*line && *line != ' ')
            line++;
    }
    return sscanf(line, " %lf", v) == 1 ? 0 : -1;
}

static int run_raw_verbs(const struct tbench *b, double *gbps, double *rtt_us)
{
    const char *dev = getenv("RXE_DEV"), *gid = getenv("RXE_GID");
    char s[512], c[512], out[8192];
    unsigned slot = b->slot ? b->slot : 1u << 20;
    unsigned long long n = b->bytes / slot < 20 ? 20 : b->bytes / slot;

    if (!dev || !gid) {
        fprintf(stderr, "mosbench: the verbs reference needs RXE_DEV and RXE_GID (run it in the "
                        "rxe guest: transport/tests/rxe_transport.sh bench ...)\n");
        return MOS_E_UNSUPPORTED;
    }
    snprintf(s, sizeof(s), "ib_write_bw -d %s -x %s -F --report_gbits -s %u -n %llu -p 18600 >/dev/null 2>&1",
             dev, gid, slot, n);
    snprintf(c, sizeof(c), "ib_write_bw -d %s -x %s -F --report_gbits -s %u -n %llu -p 18600 %s 2>&1",
             dev, gid, slot, n, b->addr);
    /* Under qemu TCG ib_write_bw now and then reports 0 Gb/s (its clock calibration): one
     * more try before giving up. */
    for (int attempt = 0;; attempt++) {
        if (run_pair(s, c, out, sizeof(out)) == 0 && perftest_column(out, "BW average", 3, gbps) == 0 &&
            *gbps > 0)
            break;
        if (attempt == 1) {
            fprintf(stderr, "mosbench: ib_write_bw gave no bandwidth figure:\n%s\n", out);
            return MOS_E_UNSUPPORTED;
        }
    }
    snprintf(s, sizeof(s), "ib_send_lat -d %s -x %s -F -s %u -n %u -p 18601 >/dev/null 2>&1", dev, gid,
             RTT_MSG, b->iters);
    snprintf(c, sizeof(c), "ib_send_lat -d %s -x %s -F -s %u -n %u -p 18601 %s 2>&1", dev, gid,
             RTT_MSG, b->iters, b->addr);
    if (run_pair(s, c, out, sizeof(out)) < 0 || perftest_column(out, "t_typical", 4, rtt_us) < 0 ||
        *rtt_us <= 0) {
        fprintf(stderr, "mosbench: ib_send_lat gave no latency figure:\n%s\n", out);
        return MOS_E_UNSUPPORTED;
    }
    *rtt_us *= 2; /* ib_send_lat reports half the round trip (t_typical: its median) */
    return 0;
}

/* ---- driver ---- */

/* Ours and the raw reference take turns (tcp), so both see the same load on a shared host;
 * the best pass of each counts, and round trips alternate in blocks. */
static int bench_run(const struct tbench *b, const char *hostport, int raw_port, double *gbps,
                     double *rtt, double *raw_gbps, double *raw_rtt_us)
{
    struct ours u = {0};
    uint8_t *raw_buf = NULL;
    int fd = -1, rc;
    unsigned blocks = 5, per = b->iters / blocks ? b->iters / blocks : 1;
    uint64_t *ours_ns = NULL, *raw_ns = NULL;

    *gbps = *raw_gbps = 0;
    if ((rc = ours_open(b, hostport, &u)) < 0)
        goto out;
    if (b->backend == MOS_TP_TCP) {
        rc = -EIO;
        if ((fd = raw_connect(b->addr, raw_port)) < 0 || !(raw_buf = bench_buffer(b->bytes)))
            goto out;
    }
    for (unsigned p = 0; p < b->passes; p++) {
        if ((rc = ours_bulk(b, &u, gbps)) < 0)
            goto out;
        if (fd >= 0 && (rc = raw_bulk(b, fd, raw_buf, raw_gbps)) < 0)
            goto out;
    }
    /* Round trips alternate in blocks, ours then raw; the median of each side's samples. */
    rc = -ENOMEM;
    if (!(ours_ns = calloc(b->iters, sizeof(uint64_t))) || !(raw_ns = calloc(b->iters, sizeof(uint64_t))))
        goto out;
    if ((rc = ours_rtt(&u, per / 10 + 1, ours_ns)) < 0 ||
        (fd >= 0 && (rc = raw_rtt(fd, per / 10 + 1, raw_ns)) < 0))
        goto out; /* warm-up */
    for (unsigned k = 0; k < blocks; k++) {
        if ((rc = ours_rtt(&u, per, ours_ns + k * per)) < 0)
            goto out;
        if (fd >= 0 && (rc = raw_rtt(fd, per, raw_ns + k * per)) < 0)
            goto out;
    }
    *rtt = median_us(ours_ns, blocks * per);
    if (fd >= 0)
        *raw_rtt_us = median_us(raw_ns, blocks * per);
    rc = 0;
    if (b->backend == MOS_TP_VERBS) { /* perftest after ours is done, alone in the guest */
        ours_close(b, &u);
        u = (struct ours){0};
        rc = run_raw_verbs(b, raw_gbps, raw_rtt_us);
    }
out:
    free(ours_ns);
    free(raw_ns);
    ours_close(b, &u);
    if (fd >= 0)
        close(fd);
    if (raw_buf)
        munmap(raw_buf, b->bytes);
    return rc;
}

/* 0; -1 for bad usage; -2 for a bad value, already said in one line. */
static int parse(int argc, char **argv, struct tbench *b)
{
    unsigned v;
    uint64_t size;

    *b = (struct tbench){.backend = MOS_TP_TCP, .bytes = 256ull << 20, .qps = 1, .iters = 2000,
                         .passes = 3, .addr = NULL};
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return -1;
        i++;
        if (strcmp(o, "--backend") == 0) {
            int be = mos_tp_backend_parse(val);
            if (be != MOS_TP_TCP && be != MOS_TP_VERBS)
                return -1;
            b->backend = (enum mos_tp_backend)be;
        } else if (strcmp(o, "--bytes") == 0) {
            if (bench_parse_size("transport", o, val, 1, MOS_TP_PAGE_SIZE, 64ull << 30, &size))
                return -2;
            b->bytes = size & ~(uint64_t)(MOS_TP_PAGE_SIZE - 1);
        } else if (strcmp(o, "--slot") == 0) {
            if (bench_parse_size("transport", o, val, 1, MOS_TP_SLOT_MIN, MOS_TP_SLOT_MAX, &size))
                return -2;
            if (size % MOS_TP_PAGE_SIZE) {
                fprintf(stderr, "mosbench transport: --slot '%s' is not a whole number of 4K "
                                "pages\n", val);
                return -2;
            }
            b->slot = (unsigned)size;
        } else if (strcmp(o, "--qps") == 0 && bench_parse_uint(val, &v) == 0) {
            b->qps = v;
        } else if (strcmp(o, "--iters") == 0 && bench_parse_uint(val, &v) == 0 && v > 0) {
            b->iters = v;
        } else if (strcmp(o, "--passes") == 0 && bench_parse_uint(val, &v) == 0 && v > 0) {
            b->passes = v;
        } else if (strcmp(o, "--spin-us") == 0 && bench_parse_uint(val, &v) == 0) {
            char text[16];
            snprintf(text, sizeof(text), "%u", v);
            setenv("MOS_TRANSPORT_SPIN_US", text, 1); /* both processes read it */
        } else if (strcmp(o, "--addr") == 0) {
            b->addr = val;
        } else {
            return -1;
        }
    }
    if (!b->addr)
        b->addr = b->backend == MOS_TP_VERBS && getenv("RXE_IP") ? getenv("RXE_IP") : "127.0.0.1";
    return 0;
}

int bench_transport(int argc, char **argv)
{
    struct tbench b;
    struct mos_tp_opts o;
    mos_tp_listener_t *l;
    char hostport[96];
    double gbps = 0, rtt = 0, raw_gbps = 0, raw_rtt = 0;
    int rc, st, raw_port = 0, raw_fd = -1;
    pid_t srv, raw_srv = -1;

    if ((rc = parse(argc, argv, &b)) < 0) {
        if (rc == -1)
            fprintf(stderr, "usage: mosbench transport --backend tcp|verbs [--bytes SIZE] "
                            "[--slot SIZE] [--qps Q] [--iters N] [--passes N] [--spin-us U] "
                            "[--addr IP]\n");
        return 2;
    }
    mos_tp_opts_default(&o);
    o.backend = b.backend;
    if (b.slot)
        o.slot_bytes = b.slot;
    o.n_qps = b.qps;
    /* The plan first, so a run that cannot start still says what it was asked. */
    printf("transport bench: backend %s, %llu bytes x %u passes (best), %u round trips of %u bytes, "
           "slot %u, %u QP(s), spin %u us, address %s\n", mos_tp_backend_name(b.backend), b.bytes,
           b.passes, b.iters, RTT_MSG, o.slot_bytes, o.n_qps, o.spin_us, b.addr);
    fflush(stdout);
    snprintf(hostport, sizeof(hostport), "%s:0", b.addr);
    if (mos_tp_listen(hostport, &o, &l) < 0)
        return 1;
    snprintf(hostport, sizeof(hostport), "%s:%d", b.addr, mos_tp_listener_port(l));
    if (b.backend == MOS_TP_TCP && (raw_fd = raw_listen(b.addr, &raw_port)) < 0) {
        fprintf(stderr, "mosbench: raw socket on %s: %s\n", b.addr, strerror(errno));
        return 1;
    }
    if ((srv = fork()) == 0) {
        uint8_t *buf = bench_buffer(b.bytes);
        _exit(buf && serve_ours(l, buf, b.bytes) == 0 ? 0 : 1);
    }
    mos_tp_listener_close(l);
    if (b.backend == MOS_TP_TCP && (raw_srv = fork()) == 0) {
        uint8_t *buf = bench_buffer(b.bytes);
        if (buf)
            serve_raw(raw_fd, buf, b.bytes, b.passes, b.iters);
        _exit(0);
    }
    rc = bench_run(&b, hostport, raw_port, &gbps, &rtt, &raw_gbps, &raw_rtt);
    if (raw_fd >= 0)
        close(raw_fd);
    if (raw_srv > 0)
        waitpid(raw_srv, &st, 0);
    waitpid(srv, &st, 0);
    if (rc < 0) { /* the cause was printed where it happened */
        fprintf(stderr, "mosbench: transport bench failed: %s\n", mos_strerror(rc));
        return 1;
    }
    printf("bulk page runs:   mos %8.3f Gb/s   raw %8.3f Gb/s (%s)   ratio %.2f\n", gbps, raw_gbps,
           b.backend == MOS_TP_TCP ? "plain sockets, 1 MiB writes" : "ib_write_bw", gbps / raw_gbps);
    printf("control round trip (median): mos %7.1f us   raw %7.1f us (%s)   ratio %.2f\n", rtt, raw_rtt,
           b.backend == MOS_TP_TCP ? "64-byte TCP ping-pong" : "2 x ib_send_lat t_typical", rtt / raw_rtt);
    printf("result transport backend=%s bytes=%llu gbps=%.3f raw_gbps=%.3f ratio=%.2f rtt_us=%.1f "
           "raw_rtt_us=%.1f\n", mos_tp_backend_name(b.backend), b.bytes, gbps, raw_gbps,
           gbps / raw_gbps, rtt, raw_rtt);
    return 0;
}
