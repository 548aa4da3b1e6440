/* mosbench migrate: migrate memory-heavy processes of several sizes between two endpoints on
 * this machine (file: checkpoint + restart through a file; tcp: loopback socket, receiver in
 * a second thread; transport: a mos transport connection on loopback as mosd uses it, pages
 * in bulk, verbs where MOS_TRANSPORT picks it; transport-ctl: the same with the pages in
 * control messages), split the time into freeze, capture, transfer and restore, and fit
 * time = fixed + per_page x pages by least squares. The floor, measured in the same run: raw
 * throughput of the backend and the rate at which a fresh process's memory can be filled.
 * Several backends (--backend file,transport) run one after the other, summed up side by side. */
#include "bench.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/status.h"
#include "mos/transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SIZES 16
#define MAX_TCOUNTS 16                      /* thread counts in --threads */
#define MAX_RUNS (MAX_SIZES * MAX_TCOUNTS)
#define MAX_THREADS 1024 /* the engine's limit for one process, the leader included */
#define PAGE 4096ul
#define TP_TIMEOUT_MS 60000

/* transport backends: the address both ends use (--addr; an RDMA address for verbs) */
static const char *tp_addr = "127.0.0.1";
static const char *tp_used = "?"; /* the backend the last connection negotiated */

enum backend { BK_FILE, BK_TCP, BK_TP, BK_TP_CTL, BK_COUNT };
static const char *const backend_names[BK_COUNT] = {"file", "tcp", "transport", "transport-ctl"};

struct hog {
    pid_t pid;
    uint64_t addr, size;
    uint64_t count_addr; /* the hog's count of writes done (--dirty-rate) */
    int writer;          /* it has a writer thread */
};

/* --dirty-rate: MiB per second the hog's writer writes into its memory (0: no writer). */
static unsigned dirty_rate;

/* The hog's other threads: asleep most of the time, waking every HOG_NAP_NS, touching nothing
 * but their own small stacks, so that they add threads to a migration and no pages. */
#define HOG_NAP_NS 50000000l
#define HOG_THREAD_STACK (64u << 10)
#define HOG_FILL 0x5a

static void *hog_thread(void *arg)
{
    struct timespec nap = {0, HOG_NAP_NS};
    (void)arg;
    for (;;)
        nanosleep(&nap, NULL);
    return NULL;
}

/* In the hog: threads - 1 more threads. 0, or -1 if one cannot be started. */
static int hog_add_threads(unsigned threads)
{
    pthread_attr_t attr;
    pthread_t th;
    int rc = 0;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, HOG_THREAD_STACK);
    for (unsigned k = 1; k < threads && rc == 0; k++)
        rc = pthread_create(&th, &attr, hog_thread, NULL) == 0 ? 0 : -1;
    pthread_attr_destroy(&attr);
    return rc;
}

/* ---- The writer (--dirty-rate). Write number n (from 0) goes to page dirty_page(n): each
 * cycle of npages writes visits every page once, in an order that jumps about the memory (a
 * stride coprime to npages near 0.618 of it), and writes generation n / npages + 1 there. So
 * the count of writes done says what every page must hold: a copy whose count is N is right
 * only if each page holds exactly the generation of its last write before N (0: the fill),
 * and a page that was lost, or is stale by even one write, is caught. */

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static uint64_t dirty_stride(uint64_t npages)
{
    uint64_t s = (uint64_t)((double)npages * 0.6180339887) | 1;
    while (gcd_u64(s, npages) != 1)
        s++;
    return s;
}

static uint64_t dirty_page(uint64_t n, uint64_t npages, uint64_t stride)
{
    return (n % npages) * stride % npages; /* < 2^22 x 2^22: no overflow */
}

/* Page i as generation gen leaves it: the fill (gen 0: HOG_FILL bytes) or a word derived from
 * (i, gen) throughout; the first word is always the page's tag i + 1. */
static void page_fill(uint64_t *w, uint64_t i, uint64_t gen)
{
    if (gen == 0) {
        memset(w, HOG_FILL, PAGE);
    } else {
        uint64_t v = (i + 1) * 0x9e3779b97f4a7c15ull + gen;
        for (size_t k = 1; k < PAGE / sizeof(*w); k++)
            w[k] = v;
    }
    w[0] = i + 1;
}

struct dirty_writer {
    uint8_t *m;
    uint64_t npages, rate; /* MiB/s */
    uint64_t *count;       /* writes done, in a page of its own (it travels like the rest) */
};

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Whole pages at rate MiB/s, paced by the clock in 1 ms naps. The count is stored after the
 * page (release): a copy stopped between the two has that one page ahead of its count, which
 * hog_verify allows for the page of write number count alone. A backlog beyond 50 ms (the
 * hog was frozen) is dropped rather than written in one burst after the move. */
static void *hog_writer(void *arg)
{
    const struct dirty_writer *dw = arg;
    const double per_ns = (double)dw->rate * (1 << 20) / PAGE / 1e9;
    const uint64_t burst = (uint64_t)(per_ns * 50e6) + 16;
    uint64_t stride = dirty_stride(dw->npages), n = 0, base = 0, t0 = mono_ns();
    struct timespec nap = {0, 1000000};

    for (;;) {
        uint64_t due = base + (uint64_t)((double)(mono_ns() - t0) * per_ns);
        if (due > n + burst) {
            t0 = mono_ns();
            base = due = n;
        }
        for (; n < due; n++) {
            uint64_t i = dirty_page(n, dw->npages, stride);
            page_fill((uint64_t *)(dw->m + i * PAGE), i, n / dw->npages + 1);
            __atomic_store_n(dw->count, n + 1, __ATOMIC_RELEASE);
        }
        nanosleep(&nap, NULL);
    }
    return NULL;
}

/* In the hog: the writer thread, when rate > 0. 0 or -1. */
static int hog_start_writer(uint8_t *m, uint64_t size, uint64_t rate, uint64_t *count)
{
    static struct dirty_writer dw;
    pthread_attr_t attr;
    pthread_t th;

    if (rate == 0)
        return 0;
    dw = (struct dirty_writer){m, size / PAGE, rate, count};
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, HOG_THREAD_STACK);
    int rc = pthread_create(&th, &attr, hog_writer, &dw) == 0 ? 0 : -1;
    pthread_attr_destroy(&attr);
    return rc;
}

/* The hog itself (mosbench migrate --as-hog SIZE THREADS FD [RATE], run by hog_start): threads
 * threads, size bytes filled (every page non-zero and distinct), with RATE a writer thread
 * more; the addresses of its memory and of its write count written to fd, then waits. Never
 * returns. */
static int hog_main(int argc, char **argv)
{
    uint64_t size = strtoull(argv[1], NULL, 10);
    unsigned threads = (unsigned)strtoul(argv[2], NULL, 10);
    int fd = atoi(argv[3]);
    uint64_t rate = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;

    if (size == 0 || threads < 1 || threads > MAX_THREADS || fcntl(fd, F_GETFD) < 0) {
        fprintf(stderr, "mosbench migrate: --as-hog SIZE THREADS FD [RATE] is mosbench's own "
                        "hog\n");
        _exit(2);
    }
    uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t *count = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                           0);
    if (m == MAP_FAILED || count == MAP_FAILED)
        _exit(1);
    for (uint64_t off = 0; off < size; off += PAGE)
        page_fill((uint64_t *)(m + off), off / PAGE, 0);
    *count = 0;
    if (hog_add_threads(threads) != 0 || hog_start_writer(m, size, rate, count) != 0)
        _exit(1);
    uint64_t where[2] = {(uint64_t)(uintptr_t)m, (uint64_t)(uintptr_t)count};
    if (write(fd, where, sizeof(where)) != sizeof(where))
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

/* A hog of threads threads and size bytes, as a child (with dirty_rate, writing). It is exec'd
 * afresh rather than left a fork of this process: a fork would carry our present pages, which
 * grow with the migrations before it (restoring many threads leaves large free heaps in our
 * arenas), so pages and the per-thread term would drift with the order of the runs. */
static int hog_start(uint64_t size, unsigned threads, struct hog *h)
{
    char sz[32], th[16], fd[16], rate[16];
    uint64_t where[2];
    int p[2];

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    h->size = size;
    h->writer = dirty_rate > 0;
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
    snprintf(th, sizeof(th), "%u", threads);
    snprintf(rate, sizeof(rate), "%u", dirty_rate);
    h->pid = fork();
    if (h->pid < 0)
        return -errno;
    if (h->pid == 0) {
        int w = dup(p[1]); /* without O_CLOEXEC: the hog writes its address there */
        snprintf(fd, sizeof(fd), "%d", w);
        execl("/proc/self/exe", "mosbench", "migrate", "--as-hog", sz, th, fd, rate,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    ssize_t n = read(p[0], where, sizeof(where));
    close(p[0]);
    if (n != sizeof(where))
        return -EIO;
    h->addr = where[0];
    h->count_addr = where[1];
    usleep(20000); /* let it close its fds and settle in pause() */
    return 0;
}

/* A copy with a writer is stopped before it is read (SIGSTOP, waited for: every thread
 * stopped), so that its count and its pages are one moment's. 0, or -1 with why. */
static int copy_stop(pid_t pid, char *why, size_t len)
{
    int st;

    if (kill(pid, SIGSTOP) != 0 || waitpid(pid, &st, WUNTRACED) != pid) {
        snprintf(why, len, "cannot stop the copy: %s", strerror(errno));
        return -1;
    }
    if (!WIFSTOPPED(st)) {
        snprintf(why, len, "the copy ended (status 0x%x)", st);
        return -1;
    }
    return 0;
}

/* gen[i]: the generation page i must hold after count writes (see dirty_page). */
static uint64_t *expected_gens(uint64_t npages, uint64_t count)
{
    uint64_t *gen = calloc(npages, sizeof(*gen)), stride = dirty_stride(npages);

    for (uint64_t k = 0; gen && k < npages && k < count; k++)
        gen[dirty_page(k, npages, stride)] = (count - 1 - k) / npages + 1;
    return gen;
}

/* Pages [first, first + n) of the copy against what gen says; busy: the one page that may be
 * part-written (the writer's current one), or UINT64_MAX. 0, or -1 with why. */
static int pages_check(pid_t pid, const struct hog *h, uint64_t first, uint64_t n,
                       const uint64_t *gen, uint64_t busy, uint8_t *buf, char *why, size_t len)
{
    uint64_t want[PAGE / sizeof(uint64_t)];
    struct iovec l = {buf, n * PAGE}, r = {(void *)(uintptr_t)(h->addr + first * PAGE), n * PAGE};

    if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)(n * PAGE)) {
        snprintf(why, len, "cannot read pages %llu.. of the copy: %s",
                 (unsigned long long)first, strerror(errno));
        return -1;
    }
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = first + k, got[2];
        if (i == busy)
            continue;
        page_fill(want, i, gen[i]);
        if (memcmp(buf + k * PAGE, want, PAGE) == 0)
            continue;
        memcpy(got, buf + k * PAGE, sizeof(got));
        snprintf(why, len, "page %llu of %llu differs: tag %llu, second word 0x%llx; expected "
                 "generation %llu (tag %llu, 0x%llx)", (unsigned long long)i,
                 (unsigned long long)(h->size / PAGE), (unsigned long long)got[0],
                 (unsigned long long)got[1], (unsigned long long)gen[i],
                 (unsigned long long)want[0], (unsigned long long)want[1]);
        return -1;
    }
    return 0;
}

/* Every page of the copy must be what the hog's history says: the fill, or with a writer the
 * generation of its last write before the copy's count (the copy stopped first). 0, or -1
 * with why. */
static int hog_verify(pid_t pid, const struct hog *h, char *why, size_t len)
{
    const uint64_t chunk = 256, npages = h->size / PAGE;
    uint64_t count = 0;
    struct iovec l = {&count, sizeof(count)}, r = {(void *)(uintptr_t)h->count_addr,
                                                   sizeof(count)};

    if (h->writer && copy_stop(pid, why, len) != 0)
        return -1;
    if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)sizeof(count)) {
        snprintf(why, len, "cannot read the copy's write count: %s", strerror(errno));
        return -1;
    }
    uint64_t *gen = expected_gens(npages, count);
    uint8_t *buf = malloc(chunk * PAGE);
    uint64_t busy = h->writer ? dirty_page(count, npages, dirty_stride(npages)) : UINT64_MAX;
    int rc = gen && buf ? 0 : -1;
    if (rc != 0)
        snprintf(why, len, "out of memory");
    for (uint64_t at = 0; rc == 0 && at < npages; at += chunk)
        rc = pages_check(pid, h, at, npages - at < chunk ? npages - at : chunk, gen, busy, buf,
                         why, len);
    free(gen);
    free(buf);
    return rc;
}

static void reap(pid_t pid)
{
    int st;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

struct run {
    double freeze_ms, capture_ms, transfer_ms, restore_ms, total_ms;
    uint64_t pages, bulk_pages;
};

/* The times of one migration from the sender's stats; done_ns: when the copy was running. */
static void run_fill(struct run *out, const struct mos_dump *d, uint64_t t0, uint64_t done_ns)
{
    const struct mos_dump_stats *ds = mos_dump_stats(d);

    out->freeze_ms = ds->freeze_ns / 1e6;
    out->capture_ms = ds->state_ns / 1e6;
    out->transfer_ms = ds->pages_ns / 1e6;
    out->total_ms = (done_ns - t0) / 1e6;
    out->restore_ms = out->total_ms - out->freeze_ms - out->capture_ms - out->transfer_ms;
    out->pages = ds->pages;
    out->bulk_pages = ds->bulk_pages;
}

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
    struct mos_img_io *io = NULL;
    struct mos_restore_opts opts = {.husk_path = rv->husk};
    int fd = accept(rv->lfd, NULL, NULL);

    if (fd < 0) {
        rv->rc = -errno;
        return NULL;
    }
    rv->rc = mos_img_io_fd_open(fd, &io);
    if (rv->rc == 0)
        rv->rc = mos_restore_prepare(io, &opts, &rv->r);
    mos_img_io_close(io);
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
    struct mos_img_io *io = NULL;
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
        rc = mos_img_io_fd_open(fd, &io);
        if (rc == 0)
            rc = mos_dump_write(d, io);
        mos_img_io_close(io);
        shutdown(fd, SHUT_WR);
    }
    pthread_join(th, NULL);
    if (rc == 0 && rv.rc == 0) {
        run_fill(out, d, t0, rv.done_ns);
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

/* transport receiver thread: the receiving half of a mosd-to-mosd migration */
struct tp_receiver {
    mos_tp_listener_t *l;
    const char *husk;
    int bulk;
    pid_t copy;
    int rc;
    uint64_t done_ns, bulk_pages;
};

static void *tp_receiver_main(void *arg)
{
    struct tp_receiver *rv = arg;
    struct mos_restore_opts opts = {.husk_path = rv->husk};
    struct mos_img_io *io;
    struct mos_restore *r;
    mos_tp_conn_t *c;

    if ((rv->rc = mos_tp_accept(rv->l, &c)) != 0)
        return NULL;
    if ((rv->rc = mos_img_io_tp_open(c, TP_TIMEOUT_MS, rv->bulk ? 0 : MOS_IMG_IO_NO_BULK,
                                     &io)) == 0) {
        rv->rc = mos_restore_prepare(io, &opts, &r);
        if (rv->rc == 0) { /* ptrace belongs to this thread: detach here too */
            rv->copy = mos_restore_pid(r);
            rv->bulk_pages = mos_restore_stats(r)->bulk_pages;
            rv->rc = mos_restore_commit(r);
        }
        mos_img_io_close(io);
    }
    rv->done_ns = mos_clock_now_ns();
    mos_tp_close(c);
    return NULL;
}

static int tp_setup(mos_tp_listener_t **l, char *where, size_t len)
{
    struct mos_tp_opts o;

    mos_tp_opts_default(&o);
    o.timeout_ms = TP_TIMEOUT_MS;
    char hp[96];
    snprintf(hp, sizeof(hp), "%s:0", tp_addr);
    int rc = mos_tp_listen(hp, &o, l);
    if (rc == 0)
        snprintf(where, len, "%s:%d", tp_addr, mos_tp_listener_port(*l));
    return rc;
}

static int migrate_transport(const struct hog *h, const char *husk, int bulk, struct run *out,
                             pid_t *copy)
{
    struct tp_receiver rv = {.husk = husk, .bulk = bulk};
    struct mos_tp_opts o;
    struct mos_img_io *io = NULL;
    struct mos_dump *d = NULL;
    mos_tp_conn_t *c = NULL;
    char where[64];
    pthread_t th;
    int rc = tp_setup(&rv.l, where, sizeof(where));

    if (rc != 0)
        return rc;
    mos_tp_opts_default(&o);
    o.timeout_ms = TP_TIMEOUT_MS;
    pthread_create(&th, NULL, tp_receiver_main, &rv);
    uint64_t t0 = mos_clock_now_ns();
    rc = mos_tp_connect(where, &o, &c);
    if (rc == 0)
        tp_used = mos_tp_backend_name(mos_tp_conn_backend(c));
    if (rc == 0)
        rc = mos_img_io_tp_open(c, TP_TIMEOUT_MS, bulk ? 0 : MOS_IMG_IO_NO_BULK, &io);
    if (rc == 0 && (rc = mos_dump_freeze(h->pid, NULL, &d)) == 0)
        rc = mos_dump_write(d, io);
    if (rc != 0) /* the receiver waits for the rest of the image: unblock it */
        mos_tp_close(c), c = NULL;
    pthread_join(th, NULL);
    if (rc == 0 && rv.rc == 0 && rv.bulk_pages != mos_dump_stats(d)->bulk_pages)
        rc = -EPROTO; /* the two ends disagree on what went in bulk */
    if (rc == 0 && rv.rc == 0) {
        run_fill(out, d, t0, rv.done_ns);
        mos_dump_commit(d);
    } else {
        if (d)
            mos_dump_abort(d);
        rc = rc ? rc : rv.rc;
    }
    if (rv.copy > 0)
        *copy = rv.copy;
    mos_img_io_close(io);
    mos_tp_close(c);
    mos_tp_listener_close(rv.l);
    return rc;
}

static int migrate_file(const struct hog *h, const char *husk, const char *path,
                        struct run *out, pid_t *copy)
{
    struct mos_dump *d;
    struct mos_restore *r;
    struct mos_img_io *io = NULL;
    struct mos_restore_opts opts = {.husk_path = husk};
    int fd, rc;

    uint64_t t0 = mos_clock_now_ns();
    rc = mos_dump_freeze(h->pid, NULL, &d);
    if (rc != 0)
        return rc;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    rc = fd < 0 ? -errno : mos_img_io_fd_open(fd, &io);
    if (rc == 0)
        rc = mos_dump_write(d, io);
    mos_img_io_close(io);
    io = NULL;
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
    rc = mos_img_io_fd_open(fd, &io);
    if (rc == 0)
        rc = mos_restore_prepare(io, &opts, &r);
    mos_img_io_close(io);
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
static int migrate_once(enum backend bk, uint64_t size, unsigned threads, const char *husk,
                        const char *path, struct run *r)
{
    struct hog h = {0};
    pid_t copy = -1;
    int rc = hog_start(size, threads, &h);

    memset(r, 0, sizeof(*r));
    if (rc == 0)
        rc = bk == BK_TCP  ? migrate_tcp(&h, husk, r, &copy)
             : bk == BK_FILE ? migrate_file(&h, husk, path, r, &copy)
                             : migrate_transport(&h, husk, bk == BK_TP, r, &copy);
    char why[256] = "";
    int verified = rc == 0 && hog_verify(copy, &h, why, sizeof(why)) == 0;
    if (h.pid > 0)
        reap(h.pid);
    if (copy > 0)
        reap(copy);
    if (rc != 0 || !verified) {
        fprintf(stderr, "mosbench migrate: %llu MiB, %u thread%s: %s\n",
                (unsigned long long)(size >> 20), threads, threads == 1 ? "" : "s",
                rc ? mos_strerror(rc) : why);
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

/* The transport's own bulk speed on loopback: size bytes of our memory into a buffer of the
 * receiver's (touched beforehand), one bulk send, as a migration's page runs travel. */
struct tp_pump {
    mos_tp_listener_t *l;
    uint8_t *dst;
    uint64_t origin, size, done_ns; /* page origin + k lands at dst + k */
    int rc;
};

static void *tp_pump_recv(void *arg)
{
    struct tp_pump *p = arg;
    struct mos_tp_place_buffer pb = {p->dst, p->origin, p->size};
    mos_tp_conn_t *c;

    if ((p->rc = mos_tp_accept(p->l, &c)) != 0)
        return NULL;
    p->rc = mos_tp_bulk_recv(c, mos_tp_place_into_buffer, &pb, NULL);
    p->done_ns = mos_clock_now_ns();
    mos_tp_close(c);
    return NULL;
}

static double floor_tp(uint64_t size)
{
    struct tp_pump p = {.size = size};
    struct mos_tp_opts o;
    mos_tp_conn_t *c = NULL;
    char where[64];
    pthread_t th;
    double gbps = 0;
    uint8_t *src = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    p.dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (src == MAP_FAILED || p.dst == MAP_FAILED || tp_setup(&p.l, where, sizeof(where)) != 0)
        goto out;
    memset(src, 0x5a, size);
    memset(p.dst, 0, size);
    mos_tp_opts_default(&o);
    o.timeout_ms = TP_TIMEOUT_MS;
    p.origin = (uint64_t)(uintptr_t)src;
    pthread_create(&th, NULL, tp_pump_recv, &p);
    struct mos_page_run run = {p.origin, size / PAGE};
    int rc = mos_tp_connect(where, &o, &c);
    uint64_t t0 = mos_clock_now_ns(); /* after the handshake: the bulk speed alone */
    if (rc == 0)
        rc = mos_tp_bulk_send(c, 0, &run, 1);
    if (rc != 0)
        mos_tp_close(c), c = NULL;
    pthread_join(th, NULL);
    if (rc == 0 && p.rc == 0)
        gbps = size / (double)(p.done_ns - t0);
    mos_tp_close(c);
    mos_tp_listener_close(p.l);
out:
    if (src != MAP_FAILED)
        munmap(src, size);
    if (p.dst != MAP_FAILED)
        munmap(p.dst, size);
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

/* One size of --sizes: whole pages up to 16 GiB. 0, or -1 after one line on stderr. */
static int parse_size(const char *s, uint64_t *out)
{
    if (bench_parse_size("migrate", "--sizes", s, 1, PAGE, 16ull << 30, out) != 0)
        return -1;
    if (*out % PAGE) {
        fprintf(stderr, "mosbench migrate: --sizes '%s' is not a whole number of 4K pages\n", s);
        return -1;
    }
    return 0;
}

/* Least squares over n runs: time = fixed + per_page x pages [+ per_thread x extra threads].
 * With threads, a linear regression on two variables: both centred on their means, the 2x2
 * normal equations solved by Cramer's rule, fixed from the means; without, the same on pages
 * alone. per_thread is NAN when the runs cannot tell it (one thread count). */
struct fit {
    double fixed, per_page, per_thread, r2;
};

static void fit_runs(const double *pages, const double *extra, const double *y, int n,
                     int with_threads, struct fit *f)
{
    double mp = 0, me = 0, my = 0, spp = 0, see = 0, spe = 0, spy = 0, sey = 0;

    for (int i = 0; i < n; i++) {
        mp += pages[i] / n;
        me += extra[i] / n;
        my += y[i] / n;
    }
    for (int i = 0; i < n; i++) {
        double p = pages[i] - mp, e = extra[i] - me, d = y[i] - my;
        spp += p * p;
        see += e * e;
        spe += p * e;
        spy += p * d;
        sey += e * d;
    }
    double det = spp * see - spe * spe;
    if (with_threads && det > 0) {
        f->per_page = (spy * see - sey * spe) / det;
        f->per_thread = (sey * spp - spy * spe) / det;
    } else {
        f->per_page = spp > 0 ? spy / spp : 0;
        f->per_thread = NAN;
    }
    double pt = isnan(f->per_thread) ? 0 : f->per_thread, ss_res = 0, ss_tot = 0;
    f->fixed = my - f->per_page * mp - pt * me;
    for (int i = 0; i < n; i++) {
        double e = y[i] - (f->fixed + f->per_page * pages[i] + pt * extra[i]), d = y[i] - my;
        ss_res += e * e;
        ss_tot += d * d;
    }
    f->r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1;
}

struct bench_cfg {
    uint64_t sizes[MAX_SIZES];
    int nsizes;
    unsigned threads[MAX_TCOUNTS]; /* --threads, in the order given */
    int ncounts;
    unsigned repeat;
    char husk[PATH_MAX], path[PATH_MAX];
    const char *dir;
    int live; /* --live pre */
};

struct bench_result {
    double fixed_ms, per_page_us, per_thread_us, gbps, floor, tp_gbps;
    double total_ms[MAX_SIZES]; /* per size with the fewest threads, for the CRIU comparison */
};

/* Every measured run of one backend, one per size and thread count. */
struct samples {
    int n;
    double pages[MAX_RUNS], extra[MAX_RUNS]; /* extra: threads beside the leader */
    double total[MAX_RUNS], freeze[MAX_RUNS], capture[MAX_RUNS], transfer[MAX_RUNS],
        restore[MAX_RUNS];
};

static void samples_add(struct samples *s, uint64_t size, unsigned threads, const struct run *r)
{
    int i = s->n++;
    s->pages[i] = (double)(size / PAGE);
    s->extra[i] = threads - 1.0;
    s->total[i] = r->total_ms;
    s->freeze[i] = r->freeze_ms;
    s->capture[i] = r->capture_ms;
    s->transfer[i] = r->transfer_ms;
    s->restore[i] = r->restore_ms;
}

static unsigned fewest_threads(const struct bench_cfg *c)
{
    unsigned t = c->threads[0];
    for (int k = 1; k < c->ncounts; k++)
        t = c->threads[k] < t ? c->threads[k] : t;
    return t;
}

/* The raw speed of the backend itself (floor_gbps's transport half). */
static double floor_backend(enum backend bk, uint64_t size, const char *path)
{
    return bk == BK_TCP || bk == BK_FILE ? floor_transport(bk == BK_TCP, size, path)
                                         : floor_tp(size);
}

static const char *backend_label(enum backend bk)
{
    switch (bk) {
    case BK_FILE: return "file";
    case BK_TCP: return "tcp (loopback)";
    case BK_TP: return "transport (pages in bulk)";
    default: return "transport (pages in control messages)";
    }
}

/* Best of repeat migrations of one size and thread count: this machine is shared, the fastest
 * run is the least disturbed. 0 or 1 (reported). */
static int best_run(enum backend bk, const struct bench_cfg *c, uint64_t size, unsigned threads,
                    struct run *best)
{
    for (unsigned k = 0; k < c->repeat; k++) {
        struct run one;
        if (migrate_once(bk, size, threads, c->husk, c->path, &one) != 0)
            return 1;
        if (k == 0 || one.total_ms < best->total_ms)
            *best = one;
    }
    return 0;
}

/* The table of every size with threads threads, each run added to s; with the fewest threads,
 * the figures at 1 GiB and each size's total go to res. 0 or 1. */
static int bench_table(enum backend bk, const struct bench_cfg *c, unsigned threads,
                       struct samples *s, struct bench_result *res, double *freeze_1g,
                       double *total_1g)
{
    int tp = bk == BK_TP || bk == BK_TP_CTL;

    if (c->ncounts > 1)
        printf("threads %u:\n", threads);
    printf("%8s %9s %10s %10s %11s %10s %10s %8s%s\n", "size", "pages", "freeze_ms",
           "capture_ms", "transfer_ms", "restore_ms", "total_ms", "GB/s", tp ? "  bulk_pages" : "");
    for (int i = 0; i < c->nsizes; i++) {
        struct run r = {0};
        if (best_run(bk, c, c->sizes[i], threads, &r) != 0)
            return 1;
        samples_add(s, c->sizes[i], threads, &r);
        printf("%7lluM %9llu %10.2f %10.2f %11.1f %10.1f %10.1f %8.3f",
               (unsigned long long)(c->sizes[i] >> 20), (unsigned long long)r.pages,
               r.freeze_ms, r.capture_ms, r.transfer_ms, r.restore_ms, r.total_ms,
               c->sizes[i] / (r.total_ms * 1e6));
        if (tp)
            printf("  %10llu", (unsigned long long)r.bulk_pages);
        printf("\n");
        if (threads != fewest_threads(c))
            continue;
        res->total_ms[i] = r.total_ms;
        if (c->sizes[i] == (1ull << 30)) {
            *freeze_1g = r.freeze_ms;
            *total_1g = r.total_ms / 1e3;
        }
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What one more thread costs, size by size: y against the extra threads by least squares
 * among the runs of one size, then the median over the sizes (ms). The joint fit weighs runs
 * by their squared size, so one noisy transfer at 1 GiB can outweigh every thread (seen: a
 * joint 0.98 ms per thread where each size's own slope was 1.6-1.9 ms). With sizes_out, each
 * size's slope too. NAN without two thread counts. */
static double per_thread_by_size(const struct samples *s, const double *y, double *sizes_out,
                                 double *slopes_out, int *nsizes_out)
{
    double slopes[MAX_SIZES], pages[MAX_SIZES];
    int ns = 0;

    for (int i = 0; i < s->n; i++) {
        int seen = 0;
        for (int k = 0; k < ns && !seen; k++)
            seen = pages[k] == s->pages[i];
        if (seen || ns == MAX_SIZES)
            continue;
        double me = 0, my = 0, see = 0, sey = 0;
        int m = 0;
        for (int j = 0; j < s->n; j++)
            if (s->pages[j] == s->pages[i]) {
                me += s->extra[j];
                my += y[j];
                m++;
            }
        me /= m;
        my /= m;
        for (int j = 0; j < s->n; j++)
            if (s->pages[j] == s->pages[i]) {
                see += (s->extra[j] - me) * (s->extra[j] - me);
                sey += (s->extra[j] - me) * (y[j] - my);
            }
        if (see <= 0)
            continue;
        pages[ns] = s->pages[i];
        slopes[ns++] = sey / see;
    }
    if (sizes_out) {
        memcpy(sizes_out, pages, ns * sizeof(*pages));
        memcpy(slopes_out, slopes, ns * sizeof(*slopes));
        *nsizes_out = ns;
    }
    if (ns == 0)
        return NAN;
    qsort(slopes, ns, sizeof(*slopes), cmp_double);
    return ns % 2 ? slopes[ns / 2] : (slopes[ns / 2 - 1] + slopes[ns / 2]) / 2;
}

/* What one more thread costs at each size and in each phase (medians over the sizes). */
static void print_thread_split(const struct samples *s)
{
    const double *phase[] = {s->freeze, s->capture, s->transfer, s->restore};
    const char *name[] = {"freeze", "capture", "transfer", "restore"};
    double sizes[MAX_SIZES], slopes[MAX_SIZES];
    int ns = 0;

    double med = per_thread_by_size(s, s->total, sizes, slopes, &ns);
    printf("per thread at each size:");
    for (int k = 0; k < ns; k++)
        printf(" %.0fM %.1f us%s", sizes[k] * PAGE / (1 << 20), slopes[k] * 1e3,
               k + 1 < ns ? "," : "");
    printf("; median %.1f us\n", med * 1e3);
    printf("per thread, each phase (median over the sizes):");
    for (int k = 0; k < 4; k++)
        printf(" %s %.1f us%s", name[k], per_thread_by_size(s, phase[k], NULL, NULL, NULL) * 1e3,
               k < 3 ? "," : "\n");
}

/* Every size and thread count of one backend, the fit, the floor and the result line. 0 or 1. */
static int bench_backend(enum backend bk, const struct bench_cfg *c, int several,
                         struct bench_result *res)
{
    const char *path = c->path;
    int tp = bk == BK_TP || bk == BK_TP_CTL, threaded = c->ncounts > 1;
    static struct samples s; /* large: one backend at a time */
    double freeze_1g = -1, total_1g = -1;
    char list[MAX_TCOUNTS * 6] = "";
    uint64_t biggest = 0;

    for (int k = 0; k < c->ncounts; k++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u", k ? "," : "",
                 c->threads[k]);
    printf("migrate: backend %s, husk %s%s%s, best of %u runs per size, threads %s\n",
           backend_label(bk), c->husk, bk == BK_FILE ? ", images in " : tp ? ", at " : "",
           bk == BK_FILE ? c->dir : tp ? tp_addr : "", c->repeat, list);
    /* one unmeasured migration first (thread stacks, the husk in the page cache...) */
    struct run warm;
    if (migrate_once(bk, c->sizes[0] < (16ull << 20) ? c->sizes[0] : (16ull << 20), 1, c->husk,
                     path, &warm) != 0)
        return 1;
    s.n = 0;
    for (int k = 0; k < c->ncounts; k++)
        if (bench_table(bk, c, c->threads[k], &s, res, &freeze_1g, &total_1g) != 0)
            return 1;
    for (int i = 0; i < c->nsizes; i++)
        biggest = c->sizes[i] > biggest ? c->sizes[i] : biggest;
    /* the fixed part measured directly: a process with one page of its own */
    struct run tiny;
    double tiny_ms = -1;
    for (int k = 0; k < 3; k++)
        if (migrate_once(bk, PAGE, 1, c->husk, path, &tiny) == 0 &&
            (tiny_ms < 0 || tiny.total_ms < tiny_ms))
            tiny_ms = tiny.total_ms;
    struct fit f;
    fit_runs(s.pages, s.extra, s.total, s.n, threaded, &f);
    double a = f.fixed, b = f.per_page, r2 = f.r2;
    double gbps = b > 0 ? PAGE / (b * 1e6) : 0; /* ms per page -> GB/s */
    uint64_t floor_size = biggest < (256ull << 20) ? biggest : (256ull << 20);
    double tgbps = 0, fgbps = 0;
    for (unsigned k = 0; k < c->repeat; k++) { /* best of repeat, like the migrations */
        double t = floor_backend(bk, floor_size, path), fill = floor_fill(floor_size);
        tgbps = t > tgbps ? t : tgbps;
        fgbps = fill > fgbps ? fill : fgbps;
    }
    double floor = tgbps < fgbps ? tgbps : fgbps;
    if (threaded)
        printf("fit: time = %.2f ms + %.3f us x pages + %.1f us x (threads - 1) (R^2 %.4f, "
               "%d runs): %.3f GB/s per page\n", a, b * 1e3, f.per_thread * 1e3, r2, s.n, gbps);
    else
        printf("fit: time = %.2f ms + %.3f us x pages (R^2 %.4f): %.3f GB/s per page\n", a,
               b * 1e3, r2, gbps);
    if (threaded)
        print_thread_split(&s);
    printf("floor (%llu MiB): %s %.3f GB/s, fresh-memory fill %.3f GB/s -> %.3f GB/s\n",
           (unsigned long long)(floor_size >> 20),
           bk == BK_TCP ? "tcp loopback" : bk == BK_FILE ? "file write+read" : "transport bulk",
           tgbps, fgbps, floor);
    printf("smallest migration (a hog with one page of its own, %llu pages present in all): "
           "%.2f ms\n", (unsigned long long)tiny.pages, tiny_ms);
    char f1g[32] = "NA", t1g[32] = "NA", pt[32] = "NA";
    if (freeze_1g >= 0) {
        snprintf(f1g, sizeof(f1g), "%.2f", freeze_1g);
        snprintf(t1g, sizeof(t1g), "%.2f", total_1g);
    }
    double per_thread = threaded ? per_thread_by_size(&s, s.total, NULL, NULL, NULL) : NAN;
    if (!isnan(per_thread))
        snprintf(pt, sizeof(pt), "%.1f", per_thread * 1e3);
    printf("result migrate fixed_ms=%.2f per_page_us=%.3f r2=%.4f gbps=%.3f floor_gbps=%.3f "
           "ratio=%.2f freeze_ms_1g=%s total_s_1g=%s",
           a, b * 1e3, r2, gbps, floor, floor > 0 ? gbps / floor : 0, f1g, t1g);
    /* transport backends: also against the transport's raw bulk speed alone */
    if (tp)
        printf(" tp_gbps=%.3f tp_ratio=%.2f", tgbps, tgbps > 0 ? gbps / tgbps : 0);
    if (several || tp)
        printf(" backend=%s", backend_names[bk]);
    if (tp)
        printf(" via=%s", tp_used);
    printf(" per_thread_us=%s\n\n", pt);
    res->fixed_ms = a;
    res->per_page_us = b * 1e3;
    res->per_thread_us = per_thread * 1e3;
    res->gbps = gbps;
    res->floor = floor;
    res->tp_gbps = tp ? tgbps : 0;
    return 0;
}

/* ---- --live pre: each size moved by stop-and-copy and by live pre-copy, both through
 * mos_migrate_send and mos_migrate_receive (the commit handshake mosd uses), so that the two
 * differ in opts.live alone. */

/* One move as mos_migrate_send saw it. total: from the call until the receiver said the copy
 * runs (DONE), the end of downtime too. */
struct live_run {
    double total_ms, down_ms, rounds_ms;
    uint64_t rounds, ahead, resent, kept, rkept;
    /* where the downtime went: the sender's freeze, capture and image pages (img_pages of
     * them), the receiver's page fill and finish (overlapping the sender's, not a sum) */
    double freeze_ms, capture_ms, img_ms, fill_ms, finish_ms;
    uint64_t img_pages;
};

/* The receiving end, in a thread (ptrace of the copy belongs to it). */
struct live_receiver {
    enum backend bk;
    int lfd;               /* tcp */
    mos_tp_listener_t *l;  /* transport */
    const char *husk;
    pid_t copy;
    int rc;
    struct mos_restore_stats st; /* as it was at READY */
};

static unsigned tp_flags(enum backend bk)
{
    return bk == BK_TP ? 0 : MOS_IMG_IO_NO_BULK;
}

/* Before READY: the receiver's figures (what it kept, held against what the sender says it
 * kept; how long the fill took). */
static int live_before_ready(struct mos_restore *r, void *arg)
{
    struct live_receiver *rv = arg;
    rv->st = *mos_restore_stats(r);
    return 0;
}

static void *live_receiver_main(void *arg)
{
    struct live_receiver *rv = arg;
    struct mos_restore_opts opts = {.husk_path = rv->husk};
    struct mos_receive_hooks hooks = {.before_ready = live_before_ready, .arg = rv};
    struct mos_img_io *io = NULL;
    mos_tp_conn_t *c = NULL;
    int fd = -1;

    if (rv->bk == BK_TCP) {
        fd = accept(rv->lfd, NULL, NULL);
        rv->rc = fd < 0 ? -errno : mos_img_io_fd_open(fd, &io);
    } else if ((rv->rc = mos_tp_accept(rv->l, &c)) == 0) {
        rv->rc = mos_img_io_tp_open(c, TP_TIMEOUT_MS, tp_flags(rv->bk), &io);
    }
    if (rv->rc == 0)
        rv->rc = mos_migrate_receive(io, &opts, &hooks, &rv->copy);
    mos_img_io_close(io);
    mos_tp_close(c);
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* The sending end of the link: a loopback socket or a transport connection, and its stream. */
struct live_link {
    int fd;
    mos_tp_conn_t *c;
    struct mos_img_io *io;
};

static int live_listen(struct live_receiver *rv, char *where, size_t len)
{
    int port;

    if (rv->bk != BK_TCP)
        return tp_setup(&rv->l, where, len);
    rv->lfd = listen_loopback(&port);
    snprintf(where, len, "%d", port);
    return rv->lfd < 0 ? -errno : 0;
}

static int live_connect(enum backend bk, const char *where, struct live_link *k)
{
    struct mos_tp_opts o;
    int rc;

    if (bk == BK_TCP) {
        k->fd = connect_loopback(atoi(where));
        return k->fd < 0 ? -errno : mos_img_io_fd_open(k->fd, &k->io);
    }
    mos_tp_opts_default(&o);
    o.timeout_ms = TP_TIMEOUT_MS;
    rc = mos_tp_connect(where, &o, &k->c);
    if (rc == 0) {
        tp_used = mos_tp_backend_name(mos_tp_conn_backend(k->c));
        rc = mos_img_io_tp_open(k->c, TP_TIMEOUT_MS, tp_flags(bk), &k->io);
    }
    return rc;
}

/* Closing our end is what unblocks a receiver still waiting for the image or the commit. */
static void live_link_close(struct live_link *k)
{
    mos_img_io_close(k->io);
    mos_tp_close(k->c);
    if (k->fd >= 0)
        close(k->fd);
    *k = (struct live_link){.fd = -1};
}

/* After DONE, before the original is retired: the end of total, the moment downtime ends. */
static void live_heard_done(void *arg)
{
    *(uint64_t *)arg = mos_clock_now_ns();
}

static void live_fill(struct live_run *out, const struct mos_dump_stats *st, uint64_t t0,
                      uint64_t t1, const struct live_receiver *rv)
{
    out->total_ms = (double)(t1 - t0) / 1e6;
    out->down_ms = st->downtime_ns / 1e6;
    out->rounds_ms = st->live_ns / 1e6;
    out->rounds = st->live_rounds;
    out->ahead = st->live_pages;
    out->resent = st->live_resent;
    out->kept = st->live_kept;
    out->rkept = rv->st.kept_pages;
    out->freeze_ms = st->freeze_ns / 1e6;
    out->capture_ms = st->state_ns / 1e6;
    out->img_ms = st->pages_ns / 1e6;
    out->img_pages = st->pages;
    out->fill_ms = rv->st.pages_ns / 1e6;
    out->finish_ms = rv->st.final_ns / 1e6;
}

/* One move of h by mos_migrate_send (opts.live = live) to a receiver in a thread. */
static int live_send(enum backend bk, const struct hog *h, const char *husk, int live,
                     struct live_run *out, pid_t *copy)
{
    struct live_receiver rv = {.bk = bk, .husk = husk, .lfd = -1};
    struct mos_dump_opts opts = {.live = live};
    struct mos_dump_stats st = {0};
    struct live_link k = {.fd = -1};
    uint64_t t1 = 0;
    struct mos_send_hooks hooks = {.before_commit = live_heard_done, .arg = &t1};
    char where[64];
    pthread_t th;
    int rc = live_listen(&rv, where, sizeof(where));

    if (rc != 0)
        return rc;
    pthread_create(&th, NULL, live_receiver_main, &rv);
    rc = live_connect(bk, where, &k);
    uint64_t t0 = mos_clock_now_ns();
    if (rc == 0)
        rc = mos_migrate_send(h->pid, &opts, k.io, &hooks, &st);
    if (rc != 0)
        live_link_close(&k);
    if (rc != 0 && rv.lfd >= 0)
        shutdown(rv.lfd, SHUT_RDWR); /* a receiver still in accept */
    pthread_join(th, NULL);
    live_link_close(&k);
    if (rv.lfd >= 0)
        close(rv.lfd);
    mos_tp_listener_close(rv.l);
    if (rv.copy > 0)
        *copy = rv.copy;
    rc = rc ? rc : rv.rc;
    if (rc == 0)
        live_fill(out, &st, t0, t1, &rv);
    return rc;
}

/* One move of a fresh hog, its copy checked and both ends cleaned up. 0 or 1 (reported). */
static int live_once(enum backend bk, const struct bench_cfg *c, uint64_t size, int live,
                     struct live_run *r)
{
    struct hog h = {0};
    pid_t copy = -1;
    char why[256] = "";
    int rc = hog_start(size, fewest_threads(c), &h);

    memset(r, 0, sizeof(*r));
    if (rc == 0)
        rc = live_send(bk, &h, c->husk, live, r, &copy);
    int verified = rc == 0 && hog_verify(copy, &h, why, sizeof(why)) == 0;
    if (h.pid > 0)
        reap(h.pid);
    if (copy > 0)
        reap(copy);
    if (rc == 0 && verified)
        return 0;
    fprintf(stderr, "mosbench migrate: %s, %llu MiB through mos_migrate_send: %s\n",
            live ? "live pre-copy" : "stop-and-copy", (unsigned long long)(size >> 20),
            rc ? mos_strerror(rc) : why);
    return 1;
}

/* Best (least total) of repeat moves per mode, the modes taking turns so that a disturbance
 * of the machine falls on both alike. best[0]: stop-and-copy, best[1]: live. 0 or 1. */
static int live_pair(enum backend bk, const struct bench_cfg *c, uint64_t size,
                     struct live_run best[2])
{
    for (unsigned k = 0; k < c->repeat; k++)
        for (int live = 0; live < 2; live++) {
            struct live_run one;
            if (live_once(bk, c, size, live, &one) != 0)
                return 1;
            if (k == 0 || one.total_ms < best[live].total_ms)
                best[live] = one;
        }
    return 0;
}

static void live_header(enum backend bk, const struct bench_cfg *c)
{
    unsigned t = fewest_threads(c);

    printf("live pre-copy: backend %s%s%s, writes %u MiB/s, hogs of %u thread%s%s, best of %u "
           "runs per size and mode (least total), both modes through mos_migrate_send\n",
           backend_label(bk), bk == BK_TCP ? "" : " at ", bk == BK_TCP ? "" : tp_addr,
           dirty_rate, t, t == 1 ? "" : "s", dirty_rate ? " + the writer" : "", c->repeat);
    printf("%8s %11s %10s %13s %12s %9s %6s %11s %8s %8s %10s %11s\n", "size", "sc_total_ms",
           "sc_down_ms", "live_total_ms", "live_down_ms", "rounds_ms", "rounds", "ahead_pages",
           "resent", "kept", "down_ratio", "total_ratio");
}

static void live_line(uint64_t size, const struct live_run *sc, const struct live_run *lv)
{
    printf("%7lluM %11.1f %10.1f %13.1f %12.1f %9.1f %6llu %11llu %8llu %8llu %10.2f %11.2f\n",
           (unsigned long long)(size >> 20), sc->total_ms, sc->down_ms, lv->total_ms,
           lv->down_ms, lv->rounds_ms, (unsigned long long)lv->rounds,
           (unsigned long long)lv->ahead, (unsigned long long)lv->resent,
           (unsigned long long)lv->kept, lv->down_ms / sc->down_ms, lv->total_ms / sc->total_ms);
    if (lv->kept != lv->rkept)
        printf("odd: at %lluM the sender kept %llu pages sent ahead, the receiver placed %llu\n",
               (unsigned long long)(size >> 20), (unsigned long long)lv->kept,
               (unsigned long long)lv->rkept);
}

/* The result line, for the largest size; and issue 17's goal where this run measured it. */
static void live_result(enum backend bk, uint64_t size, const struct live_run *sc,
                        const struct live_run *lv)
{
    double dr = lv->down_ms / sc->down_ms, tr = lv->total_ms / sc->total_ms;

    if (size == (1ull << 30) && dirty_rate >= 64)
        printf("goal (issue 17, 1 GiB written at 64 MiB/s or more): live downtime %.1f ms "
               "(<= 50: %s), live total %.2f x stop-and-copy's (<= 1.5: %s)\n", lv->down_ms,
               lv->down_ms <= 50 ? "met" : "not met", tr, tr <= 1.5 ? "met" : "not met");
    printf("result migrate_live size_mib=%llu dirty_mib_s=%u downtime_ms=%.1f rounds=%llu "
           "resent_pages=%llu total_ms=%.1f stopcopy_downtime_ms=%.1f stopcopy_total_ms=%.1f "
           "downtime_ratio=%.2f total_ratio=%.2f ahead_pages=%llu kept_pages=%llu backend=%s",
           (unsigned long long)(size >> 20), dirty_rate, lv->down_ms,
           (unsigned long long)lv->rounds, (unsigned long long)lv->resent, lv->total_ms,
           sc->down_ms, sc->total_ms, dr, tr, (unsigned long long)lv->ahead,
           (unsigned long long)lv->kept, backend_names[bk]);
    if (bk != BK_TCP)
        printf(" via=%s", tp_used);
    printf("\n\n");
}

/* Where each move's downtime went, size by size (runs[i][0]: stop-and-copy, [1]: live). */
static void live_split(const struct bench_cfg *c, struct live_run (*runs)[2])
{
    printf("downtime, where it went (ms; the sender's and the receiver's phases overlap):\n");
    printf("%8s %6s %9s %9s %10s %10s %9s %9s %9s\n", "size", "mode", "down_ms", "freeze",
           "capture", "img_pages", "img_ms", "fill_ms", "finish");
    for (int i = 0; i < c->nsizes; i++)
        for (int m = 0; m < 2; m++) {
            const struct live_run *r = &runs[i][m];
            printf("%7lluM %6s %9.1f %9.1f %10.1f %10llu %9.1f %9.1f %9.1f\n",
                   (unsigned long long)(c->sizes[i] >> 20), m ? "live" : "sc", r->down_ms,
                   r->freeze_ms, r->capture_ms, (unsigned long long)r->img_pages, r->img_ms,
                   r->fill_ms, r->finish_ms);
        }
}

/* Every size by stop-and-copy and live, side by side; the result line for the largest. */
static int bench_live(enum backend bk, const struct bench_cfg *c)
{
    static struct live_run runs[MAX_SIZES][2];
    struct live_run warm;
    int big = 0, no_rounds = 0;

    live_header(bk, c);
    /* one unmeasured live move first, as the fit does (the husk in the page cache...) */
    if (live_once(bk, c, c->sizes[0] < (16ull << 20) ? c->sizes[0] : (16ull << 20), 1,
                  &warm) != 0)
        return 1;
    for (int i = 0; i < c->nsizes; i++) {
        if (live_pair(bk, c, c->sizes[i], runs[i]) != 0)
            return 1;
        live_line(c->sizes[i], &runs[i][0], &runs[i][1]);
        no_rounds |= runs[i][1].rounds == 0;
        big = c->sizes[i] > c->sizes[big] ? i : big;
    }
    if (no_rounds)
        printf("note: rounds 0 is a live move that fell back to stop-and-copy (the log line on "
               "stderr says why)\n");
    live_split(c, runs);
    live_result(bk, c->sizes[big], &runs[big][0], &runs[big][1]);
    return 0;
}

/* --threads "1,8,64": each count 1..MAX_THREADS, at most MAX_TCOUNTS of them, no repeats.
 * 0, or -1 after one line on stderr. */
static int parse_threads(char *list, struct bench_cfg *c)
{
    const char *why = list[0] ? NULL : "empty";
    char *tok = strtok(list, ",");

    for (c->ncounts = 0; tok && !why; tok = why ? tok : strtok(NULL, ",")) {
        unsigned t;
        if (c->ncounts == MAX_TCOUNTS)
            why = "too many thread counts";
        else if (bench_parse_uint(tok, &t) != 0 || t < 1 || t > MAX_THREADS)
            why = "not a thread count";
        for (int k = 0; !why && k < c->ncounts; k++)
            why = c->threads[k] == t ? "given twice" : NULL;
        if (!why)
            c->threads[c->ncounts++] = t;
    }
    if (!why && c->ncounts == 0)
        why = "no thread count";
    if (why)
        fprintf(stderr, "mosbench migrate: --threads '%s': %s (1..%u threads per hog, at most %d "
                "counts, comma-separated)\n", tok ? tok : "", why, MAX_THREADS, MAX_TCOUNTS);
    return why ? -1 : 0;
}

/* "file,transport" -> the list; -1 (reported) on an unknown name. */
static int parse_backends(char *list, enum backend *out, int *n)
{
    *n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int k = 0;
        while (k < BK_COUNT && strcmp(tok, backend_names[k]) != 0)
            k++;
        if (k == BK_COUNT || *n == BK_COUNT) {
            fprintf(stderr, "mosbench migrate: backend '%s' is not available here (file, tcp, "
                    "transport, transport-ctl; verbs: transport with MOS_TRANSPORT=verbs)\n",
                    tok);
            return -1;
        }
        out[(*n)++] = (enum backend)k;
    }
    return *n > 0 ? 0 : -1;
}

/* --criu PATH: CRIU on hogs of the same sizes in the same run, through image files in the same
 * directory and through its page server on loopback; ratios against our first backend. No CRIU
 * figure is printed unless CRIU ran in this run. */
enum criu_mode { CRIU_FILES, CRIU_PAGE_SERVER };

/* The last non-empty line of a log file, for a one-line reason. */
static void last_line(const char *log, char *out, size_t len)
{
    char line[512];
    FILE *f = fopen(log, "r");

    snprintf(out, len, "no output");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(out, len, "%s", line);
    }
    fclose(f);
}

/* Runs argv with its output appended to log; 0 if it exits 0, else -1 and the reason in why. */
static int run_logged(char *const argv[], const char *log, char *why, size_t len)
{
    int st;
    pid_t pid = fork();

    if (pid < 0) {
        snprintf(why, len, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    last_line(log, why, len);
    return -1;
}

static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

/* A free loopback port for the page server (closed again: CRIU binds it itself). */
static int free_port(void)
{
    int port = -1, fd = listen_loopback(&port);
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? port : -1;
}

/* One CRIU migration of a fresh hog (threads as ours it is compared with): dump (which ends
 * the hog), restore detached, verify the copy's pages. Total time from the dump's start to the
 * restored copy running. */
static int criu_once(const char *criu, enum criu_mode mode, uint64_t size, unsigned threads,
                     const char *dir, double *ms, char *why, size_t len)
{
    char pidarg[32], portarg[16], log[PATH_MAX + 16], pidfile[PATH_MAX + 16];
    struct hog h;
    int port = 0, rc;

    snprintf(log, sizeof(log), "%s/criu.log", dir);
    snprintf(pidfile, sizeof(pidfile), "%s/restored.pid", dir);
    if (hog_start(size, threads, &h) != 0) {
        snprintf(why, len, "cannot start the hog");
        return -1;
    }
    snprintf(pidarg, sizeof(pidarg), "%d", (int)h.pid);
    uint64_t t0 = mos_clock_now_ns();
    if (mode == CRIU_PAGE_SERVER) {
        port = free_port();
        snprintf(portarg, sizeof(portarg), "%d", port);
        char *ps[] = {(char *)criu, "page-server", "-D", (char *)dir, "--address", "127.0.0.1",
                      "--port", portarg, "-d", NULL};
        if (port < 0 || run_logged(ps, log, why, len) != 0) {
            reap(h.pid);
            return -1;
        }
    }
    char *dump_files[] = {(char *)criu, "dump", "-t", pidarg, "-D", (char *)dir, "--shell-job",
                          NULL};
    char *dump_ps[] = {(char *)criu, "dump", "-t", pidarg, "-D", (char *)dir, "--shell-job",
                       "--page-server", "--address", "127.0.0.1", "--port", portarg, NULL};
    rc = run_logged(mode == CRIU_FILES ? dump_files : dump_ps, log, why, len);
    reap(h.pid); /* dump ended it; its pid must be free for the restore */
    if (rc != 0)
        return -1;
    char *restore[] = {(char *)criu, "restore", "-D", (char *)dir, "--shell-job", "-d",
                       "--pidfile", pidfile, NULL};
    if (run_logged(restore, log, why, len) != 0)
        return -1;
    *ms = (double)(mos_clock_now_ns() - t0) / 1e6;
    FILE *f = fopen(pidfile, "r");
    int pid = -1;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    char bad[256] = "no restored pid";
    rc = pid > 0 && hog_verify(pid, &h, bad, sizeof(bad)) == 0 ? 0 : -1;
    if (rc != 0)
        snprintf(why, len, "the restored copy: %s", bad);
    if (pid > 0)
        reap(pid); /* our child again: we are a subreaper */
    return rc;
}

/* CRIU's check, then every size through files and the page server; a CRIU that cannot run on
 * this kernel is said once and no CRIU figure is printed. */
static void bench_criu(const char *criu, const struct bench_cfg *c, const char *ours,
                       const struct bench_result *r)
{
    char dir[PATH_MAX], why[512], log[PATH_MAX + 16];

    snprintf(dir, sizeof(dir), "%s/mosbench-criu.XXXXXX", c->dir);
    if (!mkdtemp(dir)) {
        printf("criu: no work directory in %s: %s; no CRIU figure in this run\n", c->dir,
               strerror(errno));
        return;
    }
    snprintf(log, sizeof(log), "%s/check.log", dir);
    char *check[] = {(char *)criu, "check", NULL};
    if (run_logged(check, log, why, sizeof(why)) != 0) {
        printf("criu: %s cannot run here (criu check: %s); no CRIU figure in this run\n", criu,
               why);
        empty_dir(dir);
        rmdir(dir);
        return;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* restored copies (criu restore -d) stay our children */
    printf("criu: %s, images in %s, best of %u runs per size, hogs of %u thread%s, against "
           "ours (%s)\n", criu, c->dir, c->repeat, fewest_threads(c),
           fewest_threads(c) == 1 ? "" : "s", ours);
    printf("%8s %12s %16s %10s %12s %16s\n", "size", "criu_files_ms", "criu_pageserver_ms",
           "ours_ms", "files/ours", "pageserver/ours");
    for (int i = 0; i < c->nsizes; i++) {
        double best[2] = {-1, -1};
        for (int m = 0; m < 2; m++)
            for (unsigned k = 0; k < c->repeat; k++) {
                double ms;
                empty_dir(dir);
                if (criu_once(criu, (enum criu_mode)m, c->sizes[i], fewest_threads(c), dir, &ms,
                              why, sizeof(why)) != 0) {
                    printf("criu: %s failed at %lluM: %s; no CRIU figure in this run\n",
                           m == CRIU_FILES ? "dump/restore" : "page server",
                           (unsigned long long)(c->sizes[i] >> 20), why);
                    empty_dir(dir);
                    rmdir(dir);
                    return;
                }
                if (best[m] < 0 || ms < best[m])
                    best[m] = ms;
            }
        printf("%7lluM %12.1f %16.1f %10.1f %12.2f %16.2f\n",
               (unsigned long long)(c->sizes[i] >> 20), best[0], best[1], r->total_ms[i],
               best[0] / r->total_ms[i], best[1] / r->total_ms[i]);
        if (i == c->nsizes - 1)
            printf("result criu size_mib=%llu criu_files_ms=%.1f criu_pageserver_ms=%.1f "
                   "ours_ms=%.1f speedup_files=%.2f speedup_pageserver=%.2f\n",
                   (unsigned long long)(c->sizes[i] >> 20), best[0], best[1], r->total_ms[i],
                   best[0] / r->total_ms[i], best[1] / r->total_ms[i]);
    }
    empty_dir(dir);
    rmdir(dir);
}

/* --live pre|post: pre-copy only. 0, or -1 after one line on stderr. */
static int parse_live(const char *mode, struct bench_cfg *c)
{
    if (!strcmp(mode, "pre")) {
        c->live = 1;
        return 0;
    }
    if (!strcmp(mode, "post"))
        fprintf(stderr, "mosbench migrate: --live post: post-copy is not implemented (--live "
                        "pre is)\n");
    else
        fprintf(stderr, "mosbench migrate: --live '%s': takes pre (post-copy is not "
                        "implemented)\n", mode);
    return -1;
}

/* --sizes 16M,64M,...: at most MAX_SIZES. 0, or -1 after one line on stderr. */
static int parse_sizes(char *list, struct bench_cfg *c)
{
    c->nsizes = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (c->nsizes == MAX_SIZES) {
            fprintf(stderr, "mosbench migrate: --sizes takes at most %d sizes\n", MAX_SIZES);
            return -1;
        }
        if (parse_size(tok, &c->sizes[c->nsizes]) != 0)
            return -1;
        c->nsizes++;
    }
    return 0;
}

/* The option at argv[*i] with its value (*i moves past it). 0, or -1 after one line on
 * stderr. */
static int parse_option(int argc, char **argv, int *i, struct bench_cfg *c, enum backend *bks,
                        int *nbk, const char **criu)
{
    const char *o = argv[*i];
    char *v = *i + 1 < argc ? argv[++*i] : NULL;

    if (v && !strcmp(o, "--sizes"))
        return parse_sizes(v, c);
    if (v && !strcmp(o, "--threads"))
        return parse_threads(v, c);
    if (v && !strcmp(o, "--backend"))
        return parse_backends(v, bks, nbk);
    if (v && !strcmp(o, "--live"))
        return parse_live(v, c);
    if (v && !strcmp(o, "--addr")) {
        tp_addr = v;
        return 0;
    }
    if (v && !strcmp(o, "--repeat")) {
        if (bench_parse_uint(v, &c->repeat) == 0 && c->repeat >= 1 && c->repeat <= 20)
            return 0;
        fprintf(stderr, "mosbench migrate: --repeat takes 1..20\n");
    } else if (v && !strcmp(o, "--criu")) {
        if (access((*criu = v), X_OK) == 0)
            return 0;
        fprintf(stderr, "mosbench migrate: --criu %s: %s\n", v, strerror(errno));
    } else if (v && !strcmp(o, "--dirty-rate")) {
        if (bench_parse_uint(v, &dirty_rate) == 0 && dirty_rate <= 100000)
            return 0;
        fprintf(stderr, "mosbench migrate: --dirty-rate '%s': MiB per second, 0..100000\n", v);
    } else {
        fprintf(stderr, "mosbench migrate: bad option '%s'\n", o);
    }
    return -1;
}

/* The options as a whole: 0, or -1 after one line on stderr. */
static int parse_args(int argc, char **argv, struct bench_cfg *c, enum backend *bks, int *nbk,
                      const char **criu)
{
    int moves = 0;

    for (int i = 0; i < argc; i++)
        if (parse_option(argc, argv, &i, c, bks, nbk, criu) != 0)
            return -1;
    for (int k = 0; k < *nbk; k++)
        moves |= bks[k] != BK_FILE;
    if (c->live && !moves) {
        fprintf(stderr, "mosbench migrate: --live pre needs a backend that migrates (tcp, "
                        "transport, transport-ctl): file is a checkpoint, never live\n");
        return -1;
    }
    if (c->nsizes < 2 && !c->live) {
        fprintf(stderr, "mosbench migrate: the fit needs at least two sizes\n");
        return -1;
    }
    return 0;
}

int bench_migrate(int argc, char **argv)
{
    struct bench_cfg c = {.sizes = {16ull << 20, 64ull << 20, 256ull << 20, 1ull << 30},
                          .nsizes = 4, .threads = {1}, .ncounts = 1, .repeat = 2};
    enum backend bks[BK_COUNT] = {BK_FILE};
    int nbk = 1;
    const char *criu = NULL;

    if ((argc == 4 || argc == 5) && !strcmp(argv[0], "--as-hog"))
        return hog_main(argc, argv);
    c.dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (parse_args(argc, argv, &c, bks, &nbk, &criu) != 0)
        return 2;
    /* one info line per transport stream would drown the table */
    if (mos_log_get_level() == MOS_LOG_INFO)
        mos_log_set_level(MOS_LOG_WARN);
    mos_restore_husk_path(c.husk, sizeof(c.husk));
    snprintf(c.path, sizeof(c.path), "%s/mosbench-migrate.%d.img", c.dir, (int)getpid());
    struct bench_result res[BK_COUNT];
    int fit = c.nsizes >= 2; /* --live with one size: the comparison alone */
    if (!fit)
        printf("migrate: one size: no fit (it needs two sizes), no CRIU comparison; the live "
               "comparison only\n");
    for (int k = 0; k < nbk; k++) {
        if (fit && bench_backend(bks[k], &c, nbk > 1, &res[k]) != 0)
            return 1;
        if (c.live && bks[k] == BK_FILE)
            printf("live pre-copy: backend file skipped (a checkpoint to a file is never "
                   "live)\n\n");
        else if (c.live && bench_live(bks[k], &c) != 0)
            return 1;
    }
    if (fit && nbk > 1) {
        printf("%-14s %9s %12s %8s %11s %8s %8s %9s %13s\n", "backend", "fixed_ms",
               "per_page_us", "gbps", "floor_gbps", "ratio", "tp_gbps", "tp_ratio",
               "per_thread_us");
        for (int k = 0; k < nbk; k++) {
            const struct bench_result *r = &res[k];
            printf("%-14s %9.2f %12.3f %8.3f %11.3f %8.2f", backend_names[bks[k]], r->fixed_ms,
                   r->per_page_us, r->gbps, r->floor, r->floor > 0 ? r->gbps / r->floor : 0);
            if (r->tp_gbps > 0)
                printf(" %8.3f %9.2f", r->tp_gbps, r->gbps / r->tp_gbps);
            else
                printf(" %8s %9s", "-", "-");
            if (isnan(r->per_thread_us))
                printf(" %13s\n", "-");
            else
                printf(" %13.1f\n", r->per_thread_us);
        }
    }
    if (criu && fit)
        bench_criu(criu, &c, backend_names[bks[0]], &res[0]);
    return 0;
}
