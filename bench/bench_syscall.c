/* mosbench syscall: what a forwarded system call costs. In one run: the same calls natively,
 * forwarded from a guest to a deputy over TCP loopback, and a raw round trip of a small message
 * over the same kind of socket (the floor a forwarded call cannot beat). */
#include "bench.h"

#include "mos/clock.h"
#include "mos/forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct syscall_figures {
    double write1_us, read64k_us, stat_us;
};

struct bench_args {
    const char *file;
    unsigned iters;
    int result_fd; /* native: a pipe; guest: forwarded like any other fd */
};

static double per_call_us(uint64_t t0, unsigned n)
{
    return (double)(mos_clock_now_ns() - t0) / 1e3 / n;
}

/* The measured calls; run natively and as a guest. Writes its figures to result_fd. */
static int measure(void *p)
{
    struct bench_args *a = p;
    static char buf[64 * 1024];
    struct syscall_figures f;
    struct stat st;
    int null_fd = open("/dev/null", O_WRONLY), file_fd = open(a->file, O_RDONLY);
    uint64_t t0;

    if (null_fd < 0 || file_fd < 0)
        return 1;
    t0 = mos_clock_now_ns();
    for (unsigned i = 0; i < a->iters; i++)
        if (write(null_fd, "x", 1) != 1)
            return 1;
    f.write1_us = per_call_us(t0, a->iters);
    t0 = mos_clock_now_ns();
    for (unsigned i = 0; i < a->iters; i++)
        if (pread(file_fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
            return 1;
    f.read64k_us = per_call_us(t0, a->iters);
    t0 = mos_clock_now_ns();
    for (unsigned i = 0; i < a->iters; i++)
        if (stat(a->file, &st) != 0)
            return 1;
    f.stat_us = per_call_us(t0, a->iters);
    close(null_fd);
    close(file_fd);
    return write(a->result_fd, &f, sizeof(f)) == (ssize_t)sizeof(f) ? 0 : 1;
}

static int loopback_pair(int *client, int *server)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*client, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    *server = accept(lfd, NULL, NULL);
    close(lfd);
    setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return *server < 0 ? -1 : 0;
}

/* Round trip of a 64-byte message between two processes: the size of a small forwarded call. */
static double raw_rtt_us(unsigned iters)
{
    char msg[64] = {0};
    int c, s;
    pid_t echo;
    uint64_t t0;

    if (loopback_pair(&c, &s) != 0)
        return -1;
    echo = fork();
    if (echo == 0) {
        close(c);
        while (read(s, msg, sizeof(msg)) == (ssize_t)sizeof(msg) &&
               write(s, msg, sizeof(msg)) == (ssize_t)sizeof(msg))
            ;
        _exit(0);
    }
    close(s);
    t0 = mos_clock_now_ns();
    for (unsigned i = 0; i < iters; i++) {
        size_t got = 0;
        if (write(c, msg, sizeof(msg)) != (ssize_t)sizeof(msg))
            break;
        while (got < sizeof(msg)) {
            ssize_t n = read(c, msg + got, sizeof(msg) - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    double us = per_call_us(t0, iters);
    close(c);
    waitpid(echo, NULL, 0);
    return us;
}

/* A deputy in one child, a supervised guest in another, TCP loopback between them; the guest's
 * figures come back through a pipe the deputy holds, as any output of a job would. */
static int forwarded(struct bench_args *a, struct syscall_figures *out)
{
    int c, s, pipefd[2], status;
    uint8_t session[MOS_AUTH_SESSION_BYTES];
    struct mos_link sup_end, dep_end;
    pid_t deputy, guest_side;

    if (loopback_pair(&c, &s) != 0 || pipe(pipefd) != 0)
        return -1;
    /* sealed as a real link is (the token proof itself is not what is measured) */
    mos_random_bytes(session, sizeof(session));
    mos_link_init(&sup_end, c, session, 1);
    mos_link_init(&dep_end, s, session, 0);
    deputy = fork();
    if (deputy == 0) {
        int reserved;
        close(c);
        close(pipefd[0]);
        struct mos_deputy_opts opts = {.identity = {getpid(), getppid()}};
        _exit(mos_deputy_link_prepare(&dep_end, &reserved) == 0 &&
                      (opts.reserved_fd_min = reserved,
                       mos_deputy_serve(&dep_end, &opts, &status) == 0)
                  ? 0
                  : 1);
    }
    close(s);
    guest_side = fork();
    if (guest_side == 0) {
        a->result_fd = pipefd[1]; /* the deputy's copy of the pipe: the same number at home */
        _exit(mos_forward_run_guest(&sup_end, measure, a, &status) == 0 && WIFEXITED(status) &&
                      WEXITSTATUS(status) == 0
                  ? 0
                  : 1);
    }
    close(c);
    close(pipefd[1]);
    ssize_t got = read(pipefd[0], out, sizeof(*out));
    close(pipefd[0]);
    waitpid(guest_side, &status, 0);
    waitpid(deputy, NULL, 0);
    return got == (ssize_t)sizeof(*out) && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int make_file(char *path)
{
    static char block[64 * 1024];
    int fd = mkstemp(path);

    memset(block, 'm', sizeof(block));
    if (fd < 0 || write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
        return -1;
    close(fd);
    return 0;
}

int bench_syscall(int argc, char **argv)
{
    char path[] = "/tmp/mosbench-syscall-XXXXXX";
    unsigned iters = 20000;
    struct syscall_figures native, fwd;
    int pipefd[2];

    for (int i = 0; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--iters") == 0 &&
            bench_parse_uint(argv[i + 1], &iters) == 0 && iters > 0)
            i++;
        else {
            fprintf(stderr, "mosbench syscall: bad argument '%s' (--iters N)\n", argv[i]);
            return 2;
        }
    }
    if (make_file(path) != 0 || pipe(pipefd) != 0) {
        fprintf(stderr, "mosbench syscall: cannot make the test file: %s\n", strerror(errno));
        return 1;
    }
    struct bench_args a = {.file = path, .iters = iters, .result_fd = pipefd[1]};
    int native_ok = measure(&a) == 0 && read(pipefd[0], &native, sizeof(native)) ==
                                            (ssize_t)sizeof(native);
    close(pipefd[0]);
    close(pipefd[1]);
    double rtt = raw_rtt_us(iters);
    int fwd_ok = forwarded(&a, &fwd) == 0;
    unlink(path);
    if (!native_ok || !fwd_ok || rtt < 0) {
        fprintf(stderr, "mosbench syscall: a measurement failed\n");
        return 1;
    }
    printf("%-22s %12s %12s %10s\n", "call", "native_us", "forwarded_us", "fwd/rtt");
    printf("%-22s %12.2f %12.2f %10.2f\n", "write 1 byte", native.write1_us, fwd.write1_us,
           fwd.write1_us / rtt);
    printf("%-22s %12.2f %12.2f %10.2f\n", "pread 64 KiB", native.read64k_us, fwd.read64k_us,
           fwd.read64k_us / rtt);
    printf("%-22s %12.2f %12.2f %10.2f\n", "stat", native.stat_us, fwd.stat_us,
           fwd.stat_us / rtt);
    printf("raw TCP loopback round trip (64 B): %.2f us; %u calls each\n", rtt, iters);
    printf("result syscall write1_us=%.2f native_us=%.2f rtt_us=%.2f read64k_us=%.2f\n",
           fwd.write1_us, native.write1_us, rtt, fwd.read64k_us);
    return 0;
}
