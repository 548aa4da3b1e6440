/* mosbench migrate: migrate memory-heavy processes of several sizes between two endpoints on
 * this machine (file: checkpoint + restart through a file; tcp: loopback socket, receiver in
 * a second thread), split the time into freeze, capture, transfer and restore, and fit
 * time = fixed + per_page x pages by least squares. The floor, measured in the same run: raw
 * throughput of the backend and the rate at which a fresh process's memory can be filled. */
#include "bench.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SIZES 16
#define PAGE 4096ul

struct hog {
    pid_t pid;
    uint64_t addr, size;
};

/* A child that fills size bytes (every page non-zero and distinct) and waits. */
static int hog_start(uint64_t size, struct hog *h)
{
    int p[2];

    if (pipe(p) < 0)
        return -errno;
    h->size = size;
    h->pid = fork();
    if (h->pid < 0)
        return -errno;
    if (h->pid == 0) {
        uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
        if (m == MAP_FAILED)
            _exit(1);
        for (uint64_t off = 0; off < size; off += PAGE) {
            memset(m + off, 0x5a, PAGE);
            uint64_t tag = off / PAGE + 1;
            memcpy(m + off, &tag, sizeof(tag));
        }
        uint64_t addr = (uint64_t)(uintptr_t)m;
        if (write(p[1], &addr, sizeof(addr)) != sizeof(addr))
            _exit(1);
        /* nothing a migration would refuse: no inherited fds */
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        syscall(SYS_close_range, 3, ~0u, 0);
        for (;;)
            pause();
    }
    close(p[1]);
    ssize_t n = read(p[0], &h->addr, sizeof(h->addr));
    close(p[0]);
    if (n != sizeof(h->addr))
        return -EIO;
    usleep(20000); /* let it close its fds and settle in pause() */
    return 0;
}

/* Sample pages of the restored copy: tags and filler must be what the hog wrote. */
static int hog_verify(pid_t pid, const struct hog *h)
{
    uint8_t page[PAGE];
    uint64_t npages = h->size / PAGE;

    for (uint64_t i = 0; i < npages; i += 1 + npages / 97) {
        struct iovec l = {page, PAGE}, r = {(void *)(h->addr + i * PAGE), PAGE};
        uint64_t tag;
        if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)PAGE)
            return -1;
        memcpy(&tag, page, sizeof(tag));
        if (tag != i + 1 || page[PAGE - 1] != 0x5a)
            return -1;
    }
    return 0;
}

static void reap(pid_t pid)
{
    int st;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

struct run {
    double freeze_ms, capture_ms, transfer_ms, restore_ms, total_ms;
    uint64_t pages;
};

/* tcp receiver thread */
struct receiver {
    int lfd;
    const char *husk;
    struct mos_restore *r;
    int rc;
    uint64_t done_ns;
};

static void *receiver_main(void *arg)
{
    struct receiver *rv = arg;
    struct mos_img_io io;
    struct mos_restore_opts opts = {.husk_path = rv->husk};
    int fd = accept(rv->lfd, NULL, NULL);

    if (fd < 0) {
        rv->rc = -errno;
        return NULL;
    }
    mos_img_io_fd_init(&io, fd);
    rv->rc = mos_restore_prepare(&io, &opts, &rv->r);
    /* ptrace belongs to this thread: detach here too */
    if (rv->rc == 0) {
        pid_t pid = mos_restore_pid(rv->r);
        rv->rc = mos_restore_commit(rv->r);
        rv->r = (void *)(intptr_t)pid;
    }
    rv->done_ns = mos_clock_now_ns();
    close(fd);
    return NULL;
}

static int listen_loopback(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

static int connect_loopback(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int migrate_tcp(const struct hog *h, const char *husk, struct run *out, pid_t *copy)
{
    struct receiver rv = {.husk = husk};
    struct mos_dump *d;
    struct mos_img_io io;
    pthread_t th;
    int port, fd, rc;

    rv.lfd = listen_loopback(&port);
    if (rv.lfd < 0)
        return -errno;
    pthread_create(&th, NULL, receiver_main, &rv);
    fd = connect_loopback(port);
    uint64_t t0 = mos_clock_now_ns();
    rc = fd < 0 ? -errno : mos_dump_freeze(h->pid, NULL, &d);
    int frozen = rc == 0;
    if (rc == 0) {
        mos_img_io_fd_init(&io, fd);
        rc = mos_dump_write(d, &io);
        shutdown(fd, SHUT_WR);
    }
    pthread_join(th, NULL);
    if (rc == 0 && rv.rc == 0) {
        const struct mos_dump_stats *ds = mos_dump_stats(d);
        out->freeze_ms = ds->freeze_ns / 1e6;
        out->capture_ms = ds->state_ns / 1e6;
        out->transfer_ms = ds->pages_ns / 1e6;
        out->total_ms = (rv.done_ns - t0) / 1e6;
        out->restore_ms = out->total_ms - out->freeze_ms - out->capture_ms - out->transfer_ms;
        out->pages = ds->pages;
        mos_dump_commit(d);
        *copy = (pid_t)(intptr_t)rv.r;
    } else {
        if (frozen)
            mos_dump_abort(d);
        rc = rc ? rc : rv.rc;
    }
    if (fd >= 0)
        close(fd);
    close(rv.lfd);
    return rc;
}

static int migrate_file(const struct hog *h, const char *husk, const char *path,
                        struct run *out, pid_t *copy)
{
    struct mos_dump *d;
    struct mos_restore *r;
    struct mos_img_io io;
    struct mos_restore_opts opts = {.husk_path = husk};
    int fd, rc;

    uint64_t t0 = mos_clock_now_ns();
    rc = mos_dump_freeze(h->pid, NULL, &d);
    if (rc != 0)
        return rc;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    mos_img_io_fd_init(&io, fd);
    rc = fd < 0 ? -errno : mos_dump_write(d, &io);
    if (rc != 0) {
        mos_dump_abort(d);
        return rc;
    }
    const struct mos_dump_stats *ds = mos_dump_stats(d);
    out->freeze_ms = ds->freeze_ns / 1e6;
    out->capture_ms = ds->state_ns / 1e6;
    out->transfer_ms = ds->pages_ns / 1e6;
    out->pages = ds->pages;
    uint64_t t1 = mos_clock_now_ns();
    lseek(fd, 0, SEEK_SET);
    rc = mos_restore_prepare(&io, &opts, &r);
    mos_img_io_fd_release(&io);
    close(fd);
    unlink(path);
    if (rc != 0) {
        mos_dump_abort(d);
        return rc;
    }
    mos_dump_commit(d);
    *copy = mos_restore_pid(r);
    rc = mos_restore_commit(r);
    uint64_t t2 = mos_clock_now_ns();
    out->restore_ms = (t2 - t1) / 1e6;
    out->total_ms = (t2 - t0) / 1e6;
    return rc;
}

/* One migration of a fresh hog of size bytes, checked and cleaned up. 0 or 1 (reported). */
static int migrate_once(int tcp, uint64_t size, const char *husk, const char *path,
                        struct run *r)
{
    struct hog h = {0};
    pid_t copy = -1;
    int rc = hog_start(size, &h);

    memset(r, 0, sizeof(*r));
    if (rc == 0)
        rc = tcp ? migrate_tcp(&h, husk, r, &copy) : migrate_file(&h, husk, path, r, &copy);
    int verified = rc == 0 && hog_verify(copy, &h) == 0;
    if (h.pid > 0)
        reap(h.pid);
    if (copy > 0)
        reap(copy);
    if (rc != 0 || !verified) {
        fprintf(stderr, "mosbench migrate: %llu MiB: %s\n", (unsigned long long)(size >> 20),
                rc ? mos_strerror(rc) : "the restored memory differs");
        return 1;
    }
    return 0;
}

/* ---- the floor */

struct pump {
    int fd;
    uint64_t bytes;
};

static void *pump_read(void *arg)
{
    struct pump *p = arg;
    char *buf = malloc(4 << 20);
    ssize_t n;
    while (buf && (n = read(p->fd, buf, 4 << 20)) > 0)
        p->bytes += (uint64_t)n;
    free(buf);
    return NULL;
}

/* Bytes per second the backend moves: tcp loopback (4 MiB writes), or write + read of a file. */
static double floor_transport(int tcp, uint64_t size, const char *path)
{
    char *buf = malloc(4 << 20);
    double gbps = 0;

    if (!buf)
        return 0;
    memset(buf, 0x5a, 4 << 20);
    if (tcp) {
        int port, lfd = listen_loopback(&port);
        struct pump p = {0};
        pthread_t th;
        int cfd = connect_loopback(port);
        p.fd = accept(lfd, NULL, NULL);
        pthread_create(&th, NULL, pump_read, &p);
        uint64_t t0 = mos_clock_now_ns();
        for (uint64_t done = 0; done < size;)
            done += (uint64_t)write(cfd, buf, 4 << 20);
        close(cfd);
        pthread_join(th, NULL);
        gbps = p.bytes / (double)(mos_clock_now_ns() - t0);
        close(p.fd);
        close(lfd);
    } else {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        uint64_t t0 = mos_clock_now_ns(), got = 0;
        ssize_t n;
        for (uint64_t done = 0; fd >= 0 && done < size;)
            done += (uint64_t)write(fd, buf, 4 << 20);
        lseek(fd, 0, SEEK_SET);
        while (fd >= 0 && (n = read(fd, buf, 4 << 20)) > 0)
            got += (uint64_t)n;
        gbps = got / (double)(mos_clock_now_ns() - t0);
        if (fd >= 0)
            close(fd);
        unlink(path);
    }
    free(buf);
    return gbps;
}

/* How fast fresh memory of another process can be filled (process_vm_writev, 4 MiB calls):
 * what any restore here pays per page at least. */
static double floor_fill(uint64_t size)
{
    struct hog h = {0};
    int p[2];
    char *buf = malloc(4 << 20);
    double gbps = 0;

    if (!buf || pipe(p) < 0)
        return 0;
    memset(buf, 0x5a, 4 << 20);
    h.pid = fork();
    if (h.pid == 0) {
        uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
        uint64_t a = (uint64_t)(uintptr_t)m;
        if (write(p[1], &a, sizeof(a)) != sizeof(a))
            _exit(1);
        for (;;)
            pause();
    }
    close(p[1]);
    if (read(p[0], &h.addr, sizeof(h.addr)) == sizeof(h.addr) && h.addr != ~0ull) {
        uint64_t t0 = mos_clock_now_ns();
        for (uint64_t off = 0; off < size; off += 4 << 20) {
            struct iovec l = {buf, 4 << 20}, r = {(void *)(h.addr + off), 4 << 20};
            process_vm_writev(h.pid, &l, 1, &r, 1, 0);
        }
        gbps = size / (double)(mos_clock_now_ns() - t0);
    }
    close(p[0]);
    reap(h.pid);
    free(buf);
    return gbps;
}

/* ---- options and fit */

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mult = 1;

    if (end == s)
        return -1;
    if (*end == 'K' || *end == 'k')
        mult = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1ull << 30, end++;
    if (*end || v == 0 || v * mult > (16ull << 30) || (v * mult) % PAGE)
        return -1;
    *out = v * mult;
    return 0;
}

static void fit(const double *x, const double *y, int n, double *a, double *b, double *r2)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, ss_tot = 0, ss_res = 0;

    for (int i = 0; i < n; i++) {
        sx += x[i];
        sy += y[i];
        sxx += x[i] * x[i];
        sxy += x[i] * y[i];
    }
    double den = n * sxx - sx * sx;
    *b = den != 0 ? (n * sxy - sx * sy) / den : 0;
    *a = (sy - *b * sx) / n;
    for (int i = 0; i < n; i++) {
        double e = y[i] - (*a + *b * x[i]), d = y[i] - sy / n;
        ss_res += e * e;
        ss_tot += d * d;
    }
    *r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1;
}

int bench_migrate(int argc, char **argv)
{
    uint64_t sizes[MAX_SIZES] = {16ull << 20, 64ull << 20, 256ull << 20, 1ull << 30};
    int nsizes = 4, tcp = 0;
    unsigned repeat = 2;
    char husk[PATH_MAX], path[PATH_MAX];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *tok = strtok(argv[++i], ","); tok; tok = strtok(NULL, ",")) {
                if (nsizes == MAX_SIZES || parse_size(tok, &sizes[nsizes]) != 0) {
                    fprintf(stderr, "mosbench migrate: bad size '%s' (e.g. 16M,1G)\n", tok);
                    return 2;
                }
                nsizes++;
            }
        } else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
            if (bench_parse_uint(argv[++i], &repeat) != 0 || repeat < 1 || repeat > 20) {
                fprintf(stderr, "mosbench migrate: --repeat takes 1..20\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "tcp"))
                tcp = 1;
            else if (!strcmp(argv[i], "file"))
                tcp = 0;
            else {
                fprintf(stderr, "mosbench migrate: backend '%s' is not available here "
                        "(file, tcp; verbs comes with the transport)\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "mosbench migrate: bad option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (nsizes < 2) {
        fprintf(stderr, "mosbench migrate: the fit needs at least two sizes\n");
        return 2;
    }
    mos_restore_husk_path(husk, sizeof(husk));
    snprintf(path, sizeof(path), "%s/mosbench-migrate.%d.img", dir, (int)getpid());
    printf("migrate: backend %s, husk %s%s%s, best of %u runs per size\n",
           tcp ? "tcp (loopback)" : "file", husk, tcp ? "" : ", images in ", tcp ? "" : dir,
           repeat);
    printf("%8s %9s %10s %10s %11s %10s %10s %8s\n", "size", "pages", "freeze_ms", "capture_ms",
           "transfer_ms", "restore_ms", "total_ms", "GB/s");
    double x[MAX_SIZES], y[MAX_SIZES], freeze_1g = -1, total_1g = -1;
    uint64_t biggest = 0;
    /* one unmeasured migration first (thread stacks, the husk in the page cache...) */
    struct run warm;
    if (migrate_once(tcp, sizes[0] < (16ull << 20) ? sizes[0] : (16ull << 20), husk, path,
                     &warm) != 0)
        return 1;
    for (int i = 0; i < nsizes; i++) {
        struct run r = {0};
        /* best of repeat runs: this machine is shared, the fastest run is the least disturbed */
        for (unsigned k = 0; k < repeat; k++) {
            struct run one;
            if (migrate_once(tcp, sizes[i], husk, path, &one) != 0)
                return 1;
            if (k == 0 || one.total_ms < r.total_ms)
                r = one;
        }
        x[i] = (double)(sizes[i] / PAGE);
        y[i] = r.total_ms;
        printf("%7lluM %9llu %10.2f %10.2f %11.1f %10.1f %10.1f %8.3f\n",
               (unsigned long long)(sizes[i] >> 20), (unsigned long long)r.pages, r.freeze_ms,
               r.capture_ms, r.transfer_ms, r.restore_ms, r.total_ms,
               sizes[i] / (r.total_ms * 1e6));
        if (sizes[i] == (1ull << 30)) {
            freeze_1g = r.freeze_ms;
            total_1g = r.total_ms / 1e3;
        }
        if (sizes[i] > biggest)
            biggest = sizes[i];
    }
    /* the fixed part measured directly: a process with one page of its own */
    struct run tiny;
    double tiny_ms = -1;
    for (int k = 0; k < 3; k++)
        if (migrate_once(tcp, PAGE, husk, path, &tiny) == 0 &&
            (tiny_ms < 0 || tiny.total_ms < tiny_ms))
            tiny_ms = tiny.total_ms;
    double a, b, r2;
    fit(x, y, nsizes, &a, &b, &r2);
    double gbps = b > 0 ? PAGE / (b * 1e6) : 0; /* ms per page -> GB/s */
    uint64_t floor_size = biggest < (256ull << 20) ? biggest : (256ull << 20);
    double tgbps = 0, fgbps = 0;
    for (unsigned k = 0; k < repeat; k++) { /* best of repeat, like the migrations */
        double t = floor_transport(tcp, floor_size, path), f = floor_fill(floor_size);
        tgbps = t > tgbps ? t : tgbps;
        fgbps = f > fgbps ? f : fgbps;
    }
    double floor = tgbps < fgbps ? tgbps : fgbps;
    printf("fit: time = %.2f ms + %.3f us x pages (R^2 %.4f): %.3f GB/s per page\n", a, b * 1e3,
           r2, gbps);
    printf("floor (%llu MiB): %s %.3f GB/s, fresh-memory fill %.3f GB/s -> %.3f GB/s\n",
           (unsigned long long)(floor_size >> 20), tcp ? "tcp loopback" : "file write+read",
           tgbps, fgbps, floor);
    printf("smallest migration (a hog with one page of its own, %llu pages present in all): "
           "%.2f ms\n", (unsigned long long)tiny.pages, tiny_ms);
    printf("reference: CRIU 4.2 page server, 1 GiB in about 5.9 s, about 100 ms fixed\n");
    char f1g[32] = "NA", t1g[32] = "NA";
    if (freeze_1g >= 0) {
        snprintf(f1g, sizeof(f1g), "%.2f", freeze_1g);
        snprintf(t1g, sizeof(t1g), "%.2f", total_1g);
    }
    printf("result migrate fixed_ms=%.2f per_page_us=%.3f r2=%.4f gbps=%.3f floor_gbps=%.3f "
           "ratio=%.2f freeze_ms_1g=%s total_s_1g=%s\n",
           a, b * 1e3, r2, gbps, floor, floor > 0 ? gbps / floor : 0, f1g, t1g);
    return 0;
}
