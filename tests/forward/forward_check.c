/* mos-forward-check: runs one workload natively, or as a guest whose system calls are served by
 * a deputy elsewhere, so a test can compare the two outputs byte for byte.
 *
 *   mos-forward-check native FILE DIR                 the workload, plainly
 *   mos-forward-check home PORT [PORTFILE]            a deputy: serves one guest, exits as it did;
 *                                                     PORT 0 picks a free port, written to PORTFILE
 *   mos-forward-check away HOST PORT PID FILE DIR     supervisor + guest running the workload,
 *                                                     PID = the home pid getpid() must return
 *   mos-forward-check away-sig HOST PORT PID          guest: SIGINT handler, then read stdin
 *   mos-forward-check native-sig                      the same natively
 *   mos-forward-check away-fork HOST PORT PID         guest calls fork (a home-only call)
 *   mos-forward-check away-threads HOST PORT PID      guest: a thread reads stdin while four
 *                                                     threads do file I/O in the cwd
 *   mos-forward-check native-threads                  the same natively
 *
 *   mos-forward-check restore-away HOST PORT IMAGE    restore a checkpoint as a guest here
 *
 * Exit status 99: the deputy lost its guest's node; 98: the supervisor spoke nonsense. */
#include "mos/forward.h"
#include "mos/migrate.h"
#include "mos/key.h"
#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_LOST 99
#define EXIT_PROTO 98

static pid_t expected_pid;

/* ---- the workload ------------------------------------------------------------------------- */

static void check(int ok, const char *what)
{
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
}

static void stdin_summary(void)
{
    unsigned long bytes = 0, sum = 0;
    unsigned char buf[777]; /* an odd size: many short reads */
    ssize_t n;

    while ((n = read(0, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            sum = sum * 31 + buf[i];
        bytes += (unsigned long)n;
    }
    printf("stdin: %lu bytes, hash %lx\n", bytes, sum);
}

static void file_io(const char *path)
{
    static char big[1 << 20], back[1 << 20];
    char line[64];
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct stat st;

    check(fd >= 0, "open for writing");
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + i / 4096);
    check(write(fd, big, sizeof(big)) == (ssize_t)sizeof(big), "1 MiB write");
    check(pwrite(fd, "HOLE", 4, 100) == 4, "pwrite at offset");
    check(lseek(fd, 0, SEEK_CUR) == (off_t)sizeof(big), "offset after pwrite unchanged");
    check(fstat(fd, &st) == 0 && st.st_size == (off_t)sizeof(big), "fstat size");
    check(pread(fd, back, sizeof(back), 0) == (ssize_t)sizeof(back), "1 MiB pread");
    memcpy(big + 100, "HOLE", 4);
    check(memcmp(big, back, sizeof(big)) == 0, "read back what was written");
    struct iovec iov[3] = {{line, 3}, {line + 10, 5}, {line + 20, 7}};
    lseek(fd, 98, SEEK_SET);
    check(readv(fd, iov, 3) == 15 && line[2] == 'H' && memcmp(line + 10, "OLE", 3) == 0,
          "readv scatters");
    close(fd);

    FILE *f = fopen(path, "a+");
    check(f != NULL, "fopen append");
    fprintf(f, "\nappended line %d\n", 42);
    fclose(f);
    check(stat(path, &st) == 0 && st.st_size > (off_t)sizeof(big), "stat after append");
}

static void directory(const char *dir)
{
    char path[512], cwd[512];
    int names = 0;

    snprintf(path, sizeof(path), "%s/sub", dir);
    check(mkdir(path, 0700) == 0, "mkdir");
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof(path), "%s/sub/f%d", dir, i);
        close(open(path, O_CREAT | O_WRONLY, 0600));
    }
    snprintf(path, sizeof(path), "%s/sub", dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)))
        names += e->d_name[0] == 'f';
    if (d)
        closedir(d);
    printf("readdir: %d files\n", names);
    check(chdir(path) == 0 && getcwd(cwd, sizeof(cwd)) && strstr(cwd, "/sub"), "chdir+getcwd");
    check(access("f3", R_OK) == 0 && access("nope", F_OK) != 0 && errno == ENOENT, "access");
    check(rename("f4", "g4") == 0 && unlink("g4") == 0, "rename+unlink");
    check(chdir("..") == 0, "chdir back");
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

static void identity_and_signals(void)
{
    check(getpid() == expected_pid, "getpid is the home pid");
    check(syscall(SYS_gettid) == expected_pid, "gettid is the home pid");
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    check(got_usr1 == 1, "raise delivers to itself");
    check(kill(getppid(), 0) == 0, "kill(parent, 0)");
}

static void pipes_and_sockets(void)
{
    int p[2], s[2];
    char buf[16] = {0};
    struct pollfd pfd;

    check(pipe(p) == 0, "pipe");
    check(write(p[1], "ping", 4) == 4, "pipe write");
    pfd = (struct pollfd){p[0], POLLIN, 0};
    check(poll(&pfd, 1, 1000) == 1 && (pfd.revents & POLLIN), "poll on pipe");
    check(read(p[0], buf, sizeof(buf)) == 4 && memcmp(buf, "ping", 4) == 0, "pipe read");
    close(p[0]);
    close(p[1]);
    check(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0, "socketpair");
    check(send(s[0], "pong", 4, 0) == 4 && recv(s[1], buf, 4, 0) == 4, "send+recv");
    close(s[0]);
    close(s[1]);
    struct iovec iov[3] = {{"writev ", 7}, {"gathers ", 8}, {"three\n", 6}};
    fflush(stdout);
    check(writev(1, iov, 3) == 21, "writev to stdout");
}

static int workload(const char *file, const char *dir)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    identity_and_signals();
    stdin_summary();
    file_io(file);
    directory(dir);
    pipes_and_sockets();
    printf("done\n");
    return 3; /* a distinctive exit status that must reach home */
}

static volatile sig_atomic_t got_int;
/* It says so at once, so the test feeds stdin only once the handler has run, not after a sleep */
static void on_int(int sig)
{
    static const char said[] = "got SIGINT\n";
    (void)sig;
    got_int = 1;
    if (write(1, said, sizeof(said) - 1) < 0)
        got_int = 2;
}

/* A handler with SA_RESTART, then a read of stdin that SIGINT interrupts at home. */
static int sig_workload(void)
{
    struct sigaction sa = {.sa_handler = on_int, .sa_flags = SA_RESTART};
    char buf[64];
    ssize_t n;

    sigaction(SIGINT, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    n = read(0, buf, sizeof(buf));
    printf("handler ran: %s, read %zd bytes after it\n", got_int ? "yes" : "no", n);
    return 0;
}

static int fork_workload(void)
{
    pid_t child = fork();

    if (child == 0)
        _exit(0);
    printf("fork: %s\n", child < 0 ? strerror(errno) : "ran away from home");
    return 0;
}

/* A thread blocked reading stdin at home must not hold up the others' calls: the test feeds
 * stdin only after "others done" is printed, so calls served one at a time would hang. */
static char stdin_line[128];
static ssize_t stdin_got;

static void *stdin_reader(void *arg)
{
    (void)arg;
    stdin_got = read(0, stdin_line, sizeof(stdin_line));
    return NULL;
}

static void *file_io_thread(void *arg)
{
    int idx = (int)(intptr_t)arg, ok = 1;
    char name[32], line[64], back[64];

    snprintf(name, sizeof(name), "thread%d", idx);
    int fd = open(name, O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0)
        return NULL;
    for (int i = 0; i < 200; i++) {
        int n = snprintf(line, sizeof(line), "thread %d line %03d\n", idx, i);
        ok &= write(fd, line, (size_t)n) == n;
    }
    ok &= lseek(fd, 0, SEEK_SET) == 0;
    for (int i = 0; i < 200 && ok; i++) {
        int n = snprintf(line, sizeof(line), "thread %d line %03d\n", idx, i);
        ok &= read(fd, back, (size_t)n) == n && memcmp(back, line, (size_t)n) == 0;
    }
    close(fd);
    return ok ? arg : NULL;
}

static int threads_workload(void)
{
    pthread_t reader, io[4];

    pthread_create(&reader, NULL, stdin_reader, NULL);
    for (int i = 0; i < 4; i++)
        pthread_create(&io[i], NULL, file_io_thread, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < 4; i++) {
        void *ok;
        pthread_join(io[i], &ok);
        dprintf(1, "thread %d: file I/O %s\n", i + 1, ok ? "ok" : "FAILED");
    }
    dprintf(1, "others done\n");
    pthread_join(reader, NULL);
    dprintf(1, "reader got %zd bytes: %.*s", stdin_got, (int)(stdin_got > 0 ? stdin_got : 0),
            stdin_line);
    return 0;
}

/* ---- guest and supervisor ------------------------------------------------------------------ */

/* The job's token, shared by the test's two sides: MOS_TEST_TOKEN (64 hex digits). */
static int test_token(uint8_t token[MOS_LINK_TOKEN_BYTES])
{
    mos_key_t key;
    const char *hex = getenv("MOS_TEST_TOKEN");

    if (!hex || mos_key_parse_hex(hex, &key) != 0) {
        fprintf(stderr, "mos-forward-check: set MOS_TEST_TOKEN to 64 hex digits\n");
        return -1;
    }
    memcpy(token, key.bytes, MOS_LINK_TOKEN_BYTES);
    return 0;
}

static int connect_to(const char *host, int port, struct mos_link *link)
{
    uint8_t token[MOS_LINK_TOKEN_BYTES];

    if (test_token(token) != 0)
        return -1;
    for (int tries = 0; tries < 100; tries++) {
        int rc = mos_deputy_link_connect(host, port, token, 5000, link);
        if (rc == 0 || rc == MOS_E_AUTH || rc == MOS_E_PEER_GONE)
            return rc;
        usleep(50000);
    }
    return -1;
}

static int run_away(const char *host, int port, int (*job)(void *), void *arg)
{
    struct mos_link deputy;
    int status = 0;

    if (connect_to(host, port, &deputy) != 0) {
        fprintf(stderr, "mos-forward-check: cannot reach the deputy at %s:%d\n", host, port);
        return 2;
    }
    int rc = mos_forward_run_guest(&deputy, job, arg, &status);
    mos_link_close(&deputy);
    if (rc != 0)
        return 2;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The port is written once the socket listens, so a test waits for the file, not for a sleep,
 * and a port picked by the kernel never collides with another test's. */
static int publish_port(const char *file, int port)
{
    char tmp[4096];

    if (!file)
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    int failed = !f;
    if (f) {
        failed |= fprintf(f, "%d\n", port) < 0;
        failed |= fclose(f) != 0;
    }
    if (failed || rename(tmp, file) != 0) {
        fprintf(stderr, "mos-forward-check: cannot write %s: %s\n", file, strerror(errno));
        return -1;
    }
    return 0;
}

static int serve_home(int port, const char *port_file)
{
    uint8_t token[MOS_LINK_TOKEN_BYTES];
    int status = 0, reserved;

    if (test_token(token) != 0)
        return 2;
    int lfd = mos_deputy_link_listen("0.0.0.0", &port);
    if (lfd < 0) {
        fprintf(stderr, "mos-forward-check: cannot listen on port %d: %s\n", port,
                mos_strerror(lfd));
        return 2;
    }
    if (publish_port(port_file, port) != 0)
        return 2;
    struct mos_link link;
    int rc = mos_deputy_link_accept(lfd, token, 60000, &link);
    close(lfd);
    if (rc != 0 || mos_deputy_link_prepare(&link, &reserved) != 0)
        return 2;
    struct mos_deputy_opts opts = {.identity = {getpid(), getppid()}, .reserved_fd_min = reserved};
    rc = mos_deputy_serve(&link, &opts, &status);
    mos_link_close(&link);
    if (rc != 0)
        return rc == MOS_E_PEER_GONE ? EXIT_LOST : EXIT_PROTO;
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        kill(getpid(), WTERMSIG(status));
    }
    return WEXITSTATUS(status);
}

/* Restore a checkpoint in guest mode and serve it: what a target node's supervisor does. */
static int restore_away(const char *host, int port, const char *image)
{
    char husk_buf[4096];
    struct mos_restore_opts ro = {.husk_path = mos_restore_husk_path(husk_buf, sizeof(husk_buf)),
                                  .guest = 1, .uid = getuid(), .gid = getgid()};
    struct sock_filter filter[MOS_GUEST_FILTER_MAX];
    struct mos_restore *r;
    struct mos_img_io *io = NULL;
    int n = mos_guest_filter_program(filter, MOS_GUEST_FILTER_MAX, &ro.guest_filter_flags);
    int fd = open(image, O_RDONLY), status = 0, listener;
    struct mos_link deputy = {.fd = -1};

    if (n < 0)
        return 2;
    ro.guest_filter = filter;
    ro.guest_filter_len = (unsigned)n;
    if (fd < 0) {
        perror("mos-forward-check: image");
        return 2;
    }
    if (mos_img_io_fd_open(fd, &io) != 0 || mos_restore_prepare(io, &ro, &r) != 0)
        return 2;
    mos_img_io_close(io);
    close(fd);
    pid_t guest = mos_restore_pid(r);
    listener = mos_supervisor_take_listener(guest, mos_restore_listener_fd(r));
    if (listener < 0 || connect_to(host, port, &deputy) != 0) {
        mos_restore_abort(r);
        return 2;
    }
    if (mos_restore_commit(r) != 0)
        return 2;
    int rc = mos_supervisor_run(guest, listener, &deputy, NULL, &status);
    mos_link_close(&deputy);
    if (rc != 0)
        return 2;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct files {
    const char *file, *dir;
};

static int job_workload(void *arg)
{
    struct files *f = arg;
    return workload(f->file, f->dir);
}

static int job_sig(void *arg)
{
    (void)arg;
    return sig_workload();
}

static int job_fork(void *arg)
{
    (void)arg;
    return fork_workload();
}

static int job_threads(void *arg)
{
    (void)arg;
    return threads_workload();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";

    if (strcmp(mode, "native") == 0 && argc == 4) {
        expected_pid = getpid();
        return workload(argv[2], argv[3]);
    }
    if (strcmp(mode, "native-sig") == 0)
        return sig_workload();
    if (strcmp(mode, "native-threads") == 0)
        return threads_workload();
    if (strcmp(mode, "restore-away") == 0 && argc == 5)
        return restore_away(argv[2], atoi(argv[3]), argv[4]);
    if (strcmp(mode, "home") == 0 && (argc == 3 || argc == 4))
        return serve_home(atoi(argv[2]), argc == 4 ? argv[3] : NULL);
    if (strncmp(mode, "away", 4) == 0 && argc >= 5) {
        expected_pid = atoi(argv[4]);
        if (strcmp(mode, "away") == 0 && argc == 7) {
            struct files f = {argv[5], argv[6]};
            return run_away(argv[2], atoi(argv[3]), job_workload, &f);
        }
        if (strcmp(mode, "away-sig") == 0)
            return run_away(argv[2], atoi(argv[3]), job_sig, NULL);
        if (strcmp(mode, "away-fork") == 0)
            return run_away(argv[2], atoi(argv[3]), job_fork, NULL);
        if (strcmp(mode, "away-threads") == 0)
            return run_away(argv[2], atoi(argv[3]), job_threads, NULL);
    }
    fprintf(stderr, "usage: see the comment at the top of forward_check.c\n");
    return 2;
}
