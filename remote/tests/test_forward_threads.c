/* Multi-threaded guests: each workload runs natively and as a started guest whose calls a
 * deputy serves (over a socketpair), with the same stdin pipes and an empty directory; its
 * output, exit status and files must match byte for byte. The driver acts on conditions it can
 * see (threads blocked in read in /proc, lines in the output), never after fixed sleeps:
 *   blocked_reader  one thread blocked in a read at home while five others do file I/O; the
 *                   reader is fed only after the others reported done, so serialized calls hang
 *   create_join     threads created and joined while a guest, gettid vs getpid
 *   signals         pthread_kill to a thread blocked at home (EINTR), raise and pthread_kill in a
 *                   thread, raise in main: each handler runs once, in the right thread
 *   condvar         six threads taking turns under a mutex/condvar, each writing at home
 *   exit_group      exit while another thread is blocked at home: the deputy must end too
 *   ctrl_c          SIGINT at home while two threads are blocked there: only the thread that
 *                   does not block it takes it (once), the other read goes on */
#include "mos/forward.h"
#include "mos/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 60000

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0 && write(1, line, (size_t)n) < 0)
        _exit(90);
}

/* ---- workloads (stdin = fd 0, a second input = fd 3, stdout = fd 1) ----------------------- */

static char reader_buf[64];
static ssize_t reader_got;

static void *reader_thread(void *arg)
{
    reader_got = read((int)(intptr_t)arg, reader_buf, sizeof(reader_buf));
    return NULL;
}

static void *file_io_thread(void *arg)
{
    int idx = (int)(intptr_t)arg, fd, ok = 1;
    char name[32], line[64], back[64];

    snprintf(name, sizeof(name), "io%d", idx);
    fd = open(name, O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0)
        return (void *)(intptr_t)0;
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof(line), "thread %d line %03d\n", idx, i);
        ok &= write(fd, line, (size_t)n) == n;
    }
    ok &= lseek(fd, 0, SEEK_SET) == 0;
    for (int i = 0; i < 100 && ok; i++) {
        int n = snprintf(line, sizeof(line), "thread %d line %03d\n", idx, i);
        ok &= read(fd, back, (size_t)n) == n && memcmp(back, line, (size_t)n) == 0;
    }
    close(fd);
    return (void *)(intptr_t)ok;
}

static int blocked_reader(void)
{
    pthread_t reader, io[5];
    char go;

    pthread_create(&reader, NULL, reader_thread, (void *)(intptr_t)0);
    if (read(3, &go, 1) != 1) /* the driver says go once two threads wait in read */
        return 2;
    for (int i = 0; i < 5; i++)
        pthread_create(&io[i], NULL, file_io_thread, (void *)(intptr_t)i);
    for (int i = 0; i < 5; i++) {
        void *ok;
        pthread_join(io[i], &ok);
        say("io thread %d: %s\n", i, ok ? "ok" : "FAILED");
    }
    say("others done\n");
    pthread_join(reader, NULL);
    say("reader got %zd bytes: %.*s", reader_got, (int)(reader_got > 0 ? reader_got : 0),
        reader_buf);
    return 0;
}

struct round_arg {
    int round, idx;
    pid_t tid;
};

static void *round_thread(void *arg)
{
    struct round_arg *a = arg;
    char name[32], line[64];
    int fd, n;

    a->tid = (pid_t)syscall(SYS_gettid);
    snprintf(name, sizeof(name), "r%d_t%d", a->round, a->idx);
    fd = open(name, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    n = snprintf(line, sizeof(line), "round %d thread %d\n", a->round, a->idx);
    if (fd < 0 || write(fd, line, (size_t)n) != n)
        a->idx = -1;
    close(fd);
    return NULL;
}

static int create_join(void)
{
    say("main: gettid == getpid: %s\n", syscall(SYS_gettid) == getpid() ? "yes" : "no");
    for (int round = 0; round < 3; round++) {
        pthread_t t[4];
        struct round_arg a[4];
        int distinct = 1;
        for (int i = 0; i < 4; i++) {
            a[i] = (struct round_arg){round, i, 0};
            pthread_create(&t[i], NULL, round_thread, &a[i]);
        }
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 4; i++)
            distinct &= a[i].idx == i && a[i].tid != getpid() && a[i].tid > 0;
        say("round %d: 4 threads joined, files written, tids their own: %s\n", round,
            distinct ? "yes" : "no");
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 4; i++) {
            char name[32], buf[64] = "";
            snprintf(name, sizeof(name), "r%d_t%d", round, i);
            int fd = open(name, O_RDONLY);
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
            close(fd);
            say("%s: %s", name, n > 0 ? buf : "missing\n");
        }
    return 0;
}

static __thread int tls_usr1, tls_usr2;
static int usr1_total, usr2_total;

static void on_usr1(int sig)
{
    (void)sig;
    tls_usr1++;
    __atomic_add_fetch(&usr1_total, 1, __ATOMIC_RELAXED);
}

static void on_usr2(int sig)
{
    (void)sig;
    tls_usr2++;
    __atomic_add_fetch(&usr2_total, 1, __ATOMIC_RELAXED);
}

static pthread_t main_thread;
static int worker_read_errno, worker_usr1, worker_usr2;
static ssize_t worker_read;

static void *signalled_thread(void *arg)
{
    char buf[8];

    (void)arg;
    worker_read = read(3, buf, sizeof(buf)); /* ended by main's pthread_kill: no SA_RESTART */
    worker_read_errno = errno;
    worker_usr1 = tls_usr1;
    raise(SIGUSR2);
    worker_usr2 = tls_usr2;
    pthread_kill(main_thread, SIGUSR2);
    return NULL;
}

static int signals(void)
{
    struct sigaction sa = {.sa_handler = on_usr1};
    pthread_t worker;
    char go;

    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    main_thread = pthread_self();
    pthread_create(&worker, NULL, signalled_thread, NULL);
    if (read(0, &go, 1) != 1) /* the driver says go once the worker waits in its read */
        return 2;
    pthread_kill(worker, SIGUSR1);
    pthread_join(worker, NULL);
    say("worker read: %zd %s\n", worker_read, worker_read < 0 ? strerror(worker_read_errno) : "");
    say("worker: SIGUSR1 handled %d time(s), SIGUSR2 by raise %d time(s)\n", worker_usr1,
        worker_usr2);
    say("main: SIGUSR2 from the worker's pthread_kill %d time(s)\n", tls_usr2);
    raise(SIGUSR1);
    say("main: raise(SIGUSR1) handled in main %d time(s); totals %d %d\n", tls_usr1, usr1_total,
        usr2_total);
    return 0;
}

#define TURN_THREADS 6
#define TURN_ROUNDS 30

static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static int turn;
static int turn_fd;

static void *turn_thread(void *arg)
{
    int idx = (int)(intptr_t)arg;
    char line[64];

    for (int r = 0; r < TURN_ROUNDS; r++) {
        pthread_mutex_lock(&turn_lock);
        while (turn % TURN_THREADS != idx)
            pthread_cond_wait(&turn_cond, &turn_lock);
        int n = snprintf(line, sizeof(line), "round %02d thread %d\n", r, idx);
        say("%s", line);
        if (pwrite(turn_fd, line, (size_t)n, (off_t)turn * n) != n)
            say("pwrite FAILED\n");
        turn++;
        pthread_cond_broadcast(&turn_cond);
        pthread_mutex_unlock(&turn_lock);
    }
    return NULL;
}

static int condvar(void)
{
    pthread_t t[TURN_THREADS];
    struct stat st;

    turn_fd = open("turns", O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (turn_fd < 0)
        return 2;
    for (int i = 0; i < TURN_THREADS; i++)
        pthread_create(&t[i], NULL, turn_thread, (void *)(intptr_t)i);
    for (int i = 0; i < TURN_THREADS; i++)
        pthread_join(t[i], NULL);
    fstat(turn_fd, &st);
    say("turns file: %lld bytes\n", (long long)st.st_size);
    close(turn_fd);
    return 0;
}

static int exit_group_case(void)
{
    pthread_t reader;
    char go;

    pthread_create(&reader, NULL, reader_thread, (void *)(intptr_t)0);
    if (read(3, &go, 1) != 1)
        return 2;
    say("exiting while the reader waits\n");
    /* exit_group itself (exit() would run atexit handlers, a sanitizer's leak check among
     * them, whose clone of a process cannot run away from home) */
    syscall(SYS_exit_group, 7);
    return 2;
}

static int int_total, int_in_t1, int_in_t2;
static __thread int tls_int;

static void on_int(int sig)
{
    (void)sig;
    tls_int++;
    __atomic_add_fetch(&int_total, 1, __ATOMIC_RELAXED);
}

struct int_reader {
    int fd, block;
    ssize_t got;
    int err, *handled;
};

static void *int_thread(void *arg)
{
    struct int_reader *r = arg;
    char buf[16];
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(r->block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
    r->got = read(r->fd, buf, sizeof(buf));
    r->err = errno;
    *r->handled = tls_int;
    if (!r->block)
        say("t2 done\n");
    return NULL;
}

static int ctrl_c(void)
{
    struct sigaction sa = {.sa_handler = on_int}; /* no SA_RESTART: the read fails with EINTR */
    struct int_reader t1 = {0, 1, 0, 0, &int_in_t1}, t2 = {3, 0, 0, 0, &int_in_t2};
    pthread_t a, b;
    sigset_t set;

    sigaction(SIGINT, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* main blocks it: the kernel picks t2 */
    pthread_create(&a, NULL, int_thread, &t1);
    pthread_create(&b, NULL, int_thread, &t2);
    pthread_join(b, NULL);
    pthread_join(a, NULL);
    say("t1 (blocks SIGINT): read %zd, handled %d\n", t1.got, int_in_t1);
    say("t2: read %zd (%s), handled %d\n", t2.got, t2.got < 0 ? strerror(t2.err) : "",
        int_in_t2);
    say("SIGINT handled %d time(s) in all\n", int_total);
    return 0;
}

/* ---- the driver ---------------------------------------------------------------------------- */

struct job {
    pid_t inspect;   /* the process running the workload (native, or the guest) */
    pid_t signal_to; /* where a home signal goes: the process, or the deputy */
    int in0, in3;    /* write ends of its fd 0 and fd 3 */
    const char *out; /* its stdout */
    const char *failed;
};

struct workload {
    const char *name;
    int (*run)(void);
    void (*drive)(struct job *j);
};

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

static void nap(void)
{
    struct timespec ms = {0, 5000000};
    nanosleep(&ms, NULL);
}

/* How many threads of pid are inside read(2) (natively, or held at the supervisor). */
static int threads_in_read(pid_t pid)
{
    char path[320], line[64];
    struct dirent *e;
    int count = 0;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    if (!(dir = opendir(path)))
        return -1;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", (int)pid, e->d_name);
        FILE *f = fopen(path, "re");
        if (f && fgets(line, sizeof(line), f) && strncmp(line, "0 ", 2) == 0)
            count++;
        if (f)
            fclose(f);
    }
    closedir(dir);
    return count;
}

static void wait_in_read(struct job *j, int n)
{
    struct timespec start;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (threads_in_read(j->inspect) < n) {
        if (elapsed_ms(&start) > WAIT_MS) {
            j->failed = "threads never blocked in read";
            return;
        }
        nap();
    }
}

static int file_has(const char *path, const char *text)
{
    char buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

static void wait_output(struct job *j, const char *text, const char *why)
{
    struct timespec start;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!file_has(j->out, text)) {
        if (elapsed_ms(&start) > WAIT_MS) {
            j->failed = why;
            return;
        }
        nap();
    }
}

static void feed(int fd, const char *text)
{
    if (write(fd, text, strlen(text)) < 0)
        perror("feed");
}

static void drive_blocked_reader(struct job *j)
{
    wait_in_read(j, 2);
    feed(j->in3, "g");
    /* the reader still waits: if calls were served one at a time, the others never finish */
    wait_output(j, "others done\n", "the others never finished while a read waited at home");
    feed(j->in0, "hello from home\n");
}

static void drive_signals(struct job *j)
{
    wait_in_read(j, 2);
    feed(j->in0, "k");
}

static void drive_exit_group(struct job *j)
{
    wait_in_read(j, 2);
    feed(j->in3, "g");
}

static void drive_ctrl_c(struct job *j)
{
    wait_in_read(j, 2);
    kill(j->signal_to, SIGINT);
    wait_output(j, "t2 done\n", "SIGINT did not end t2's read");
    feed(j->in0, "x\n");
}

static const struct workload workloads[] = {
    {"blocked_reader", blocked_reader, drive_blocked_reader},
    {"create_join", create_join, NULL},
    {"signals", signals, drive_signals},
    {"condvar", condvar, NULL},
    {"exit_group", exit_group_case, drive_exit_group},
    {"ctrl_c", ctrl_c, drive_ctrl_c},
};

/* In a child: fds 0 and 3 from the pipes, 1 to out, cwd dir. */
static void child_stdio(const int p0[2], const int p3[2], const char *out, const char *dir)
{
    int fd = open(out, O_CREAT | O_TRUNC | O_WRONLY, 0644);

    if (fd < 0 || chdir(dir) != 0)
        _exit(91);
    dup2(p0[0], 0);
    dup2(fd, 1);
    dup2(p3[0], 3);
    close(p0[1]);
    close(p3[1]);
    if (fd > 3)
        close(fd);
}

static int wait_status(pid_t pid, struct job *j)
{
    struct timespec start;
    int status = -1;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (elapsed_ms(&start) > WAIT_MS) {
            j->failed = "did not end";
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        nap();
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_native(const struct workload *w, const char *dir, const char *out, struct job *j)
{
    int p0[2], p3[2];
    pid_t pid;

    if (pipe(p0) != 0 || pipe(p3) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        child_stdio(p0, p3, out, dir);
        _exit(w->run());
    }
    close(p0[0]);
    close(p3[0]);
    *j = (struct job){pid, pid, p0[1], p3[1], out, NULL};
    if (w->drive)
        w->drive(j);
    int rc = wait_status(pid, j);
    close(p0[1]);
    close(p3[1]);
    return rc;
}

static int guest_main(void *arg)
{
    return ((const struct workload *)arg)->run();
}

/* The guest: a child of the process that supervises it. */
static pid_t guest_of(pid_t supervisor)
{
    char path[64];
    int pid = 0;
    struct timespec start;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)supervisor, (int)supervisor);
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (pid <= 0 && elapsed_ms(&start) < WAIT_MS) {
        FILE *f = fopen(path, "re");
        if (!f || fscanf(f, "%d", &pid) != 1)
            pid = 0;
        if (f)
            fclose(f);
        if (pid <= 0)
            nap();
    }
    return pid;
}

static int run_guest(const struct workload *w, const char *dir, const char *out, struct job *j)
{
    int p0[2], p3[2];
    struct mos_link sup_end, dep;
    pid_t deputy, sup;

    if (pipe(p0) != 0 || pipe(p3) != 0 || mos_link_pair(&sup_end, &dep) != 0)
        return -1;
    deputy = fork();
    if (deputy == 0) {
        int reserved, status = 0;
        child_stdio(p0, p3, out, dir);
        close(sup_end.fd);
        if (mos_deputy_link_prepare(&dep, &reserved) != 0)
            _exit(98);
        struct mos_deputy_opts opts = {.identity = {getpid(), getppid()},
                                       .reserved_fd_min = reserved};
        if (mos_deputy_serve(&dep, &opts, &status) != 0)
            _exit(98);
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    sup = fork();
    if (sup == 0) {
        int status = 0;
        close(dep.fd);
        if (mos_forward_run_guest(&sup_end, guest_main, (void *)w, &status) != 0)
            _exit(97);
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    mos_link_close(&sup_end);
    mos_link_close(&dep);
    close(p0[0]);
    close(p3[0]);
    /* only driven workloads wait for the driver, so only they are sure to be found */
    *j = (struct job){w->drive ? guest_of(sup) : 0, deputy, p0[1], p3[1], out, NULL};
    if (w->drive)
        w->drive(j);
    int rc = wait_status(deputy, j), sup_rc = wait_status(sup, j);
    close(p0[1]);
    close(p3[1]);
    return rc == sup_rc ? rc : -2;
}

static int same_file(const char *a, const char *b)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static int same_tree(const char *a, const char *b)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "diff -r '%s' '%s' >/dev/null", a, b);
    return system(cmd) == 0;
}

static int check(const struct workload *w, const char *top)
{
    char nd[256], gd[256], no[256], go[256];
    struct job nj, gj;

    snprintf(nd, sizeof(nd), "%s/%s.native", top, w->name);
    snprintf(gd, sizeof(gd), "%s/%s.guest", top, w->name);
    snprintf(no, sizeof(no), "%s/%s.native.out", top, w->name);
    snprintf(go, sizeof(go), "%s/%s.guest.out", top, w->name);
    mkdir(nd, 0755);
    mkdir(gd, 0755);
    int nrc = run_native(w, nd, no, &nj);
    int grc = run_guest(w, gd, go, &gj);
    const char *why = nj.failed ? nj.failed : gj.failed;
    if (!why && nrc != grc)
        why = "exit statuses differ";
    if (!why && !same_file(no, go))
        why = "outputs differ";
    if (!why && !same_tree(nd, gd))
        why = "files differ";
    if (!why && (file_has(no, "FAILED") || file_has(no, " no\n")))
        why = "the native run failed its own checks";
    if (why) {
        printf("FAIL: %s: %s (native %d, guest %d; %s %s)\n", w->name, why, nrc, grc, no, go);
        return 1;
    }
    printf("ok: %s (exit %d, output identical)\n", w->name, nrc);
    return 0;
}

int main(int argc, char **argv)
{
    char top[] = "/tmp/mos-mtguest.XXXXXX";
    int fails = 0;

    if (!mkdtemp(top))
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
        if (argc < 2 || strcmp(argv[1], workloads[i].name) == 0)
            fails += check(&workloads[i], top);
    if (fails == 0) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
        if (system(cmd) != 0)
            fails++;
    }
    return fails ? 1 : 0;
}
