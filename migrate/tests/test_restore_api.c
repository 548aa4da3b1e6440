/* The migrate library's C API end to end in one process: dump a child into a file, restore
 * it, work on the stopped copy with mos_restore_syscall, let it run and check it carries on
 * with its memory intact; an abort leaves the original running. The same through an io with
 * a page channel (send_pages/recv_pages, as the transport gives between mosds), with
 * read-only and PROT_NONE pages; a run outside the VMAs refused. A guest restore for a user
 * with a gid that is not theirs refused before its husk exists. Two threads: an abort releases
 * both, a guest restore refuses them, a native one brings them back with their tids. */
#include "image.h"
#include "img_io.h"
#include "stay.h"

#include "mos/migrate.h"
#include "mos/status.h"

#include <dirent.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static volatile uint64_t counter = 0x1234;

/* A child whose fds 0 and 1 are pipes from and to us (*to, *from): 0 in the child, its pid
 * here. Stdio-kind fds travel as the restorer's own. */
static pid_t fork_piped(int *to, int *from)
{
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(a[0], 0);
        dup2(b[1], 1);
        syscall(SYS_close_range, 2, ~0u, 0);
        return 0;
    }
    close(a[0]);
    close(b[1]);
    *to = a[1];
    *from = b[0];
    return pid;
}

/* The child answers on a pipe with its counter, then bumps it. */
static pid_t child_start(int *to, int *from)
{
    pid_t pid = fork_piped(to, from);
    if (pid == 0) {
        char c;
        while (read(0, &c, 1) == 1) {
            uint64_t v = counter++;
            if (write(1, &v, sizeof(v)) != sizeof(v))
                _exit(2);
        }
        _exit(0);
    }
    return pid;
}

static uint64_t ask(int to, int from)
{
    uint64_t v = 0;
    assert_int_equal(write(to, "?", 1), 1);
    assert_int_equal(read(from, &v, sizeof(v)), sizeof(v));
    return v;
}

static int image_file(void)
{
    char path[] = "/tmp/mos-test-restore.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static void test_dump_restore_syscall(void **state)
{
    (void)state;
    int to, from, st;
    pid_t pid = child_start(&to, &from);
    struct mos_dump *d;
    struct mos_restore *r;
    struct mos_img_io *io = NULL;
    char husk[PATH_MAX];
    struct mos_restore_opts ropts = {.husk_path = mos_restore_husk_path(husk, sizeof(husk))};
    int fd = image_file();

    assert_int_equal(ask(to, from), 0x1234);
    assert_int_equal(mos_dump_freeze(pid, NULL, &d), 0);
    assert_int_equal(mos_img_io_fd_open(fd, &io), 0);
    assert_int_equal(mos_dump_write(d, io), 0);
    mos_img_io_close(io);
    assert_true(mos_dump_stats(d)->pages > 0);
    mos_dump_commit(d); /* the original is gone (killed and reaped) */
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);

    /* the restorer's fds 0-1 must be the pipes: swap them in around the restore */
    int save0 = dup(0), save1 = dup(1);
    int child_in[2], child_out[2];
    assert_int_equal(pipe(child_in), 0);
    assert_int_equal(pipe(child_out), 0);
    dup2(child_in[0], 0);
    dup2(child_out[1], 1);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(mos_img_io_fd_open(fd, &io), 0);
    int rc = mos_restore_prepare(io, &ropts, &r);
    dup2(save0, 0);
    dup2(save1, 1);
    close(child_in[0]);
    close(child_out[1]);
    mos_img_io_close(io);
    close(fd);
    assert_int_equal(rc, 0);
    pid_t copy = mos_restore_pid(r);

    /* work on the stopped copy */
    long res = 0;
    const long no_args[6] = {0};
    assert_int_equal(mos_restore_syscall(r, SYS_getpid, no_args, &res), 0);
    assert_int_equal(res, copy);
    const long bad[6] = {-1};
    assert_int_equal(mos_restore_syscall(r, SYS_close, bad, &res), 0);
    assert_int_equal(res, -EBADF);
    const long map[6] = {0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0};
    assert_int_equal(mos_restore_syscall(r, SYS_mmap, map, &res), 0);
    assert_true(res > 0);
    assert_int_equal(mos_restore_write_mem(r, (uint64_t)res, "mos", 4), 0);
    const long name[6] = {PR_SET_NAME, res};
    long res2 = -1;
    assert_int_equal(mos_restore_syscall(r, SYS_prctl, name, &res2), 0);
    assert_int_equal(res2, 0);
    assert_int_equal(mos_restore_commit(r), 0);

    /* it carries on from where it was, with the comm we gave it */
    assert_int_equal(ask(child_in[1], child_out[0]), 0x1235);
    assert_int_equal(ask(child_in[1], child_out[0]), 0x1236);
    char comm_path[64], comm[32] = {0};
    snprintf(comm_path, sizeof(comm_path), "/proc/%d/comm", (int)copy);
    int cfd = open(comm_path, O_RDONLY);
    assert_true(read(cfd, comm, sizeof(comm) - 1) > 0);
    close(cfd);
    assert_string_equal(comm, "mos\n");
    close(child_in[1]);
    assert_int_equal(waitpid(copy, &st, 0), copy);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    close(child_out[0]);
    close(to);
    close(from);
}

static void test_abort_resumes(void **state)
{
    (void)state;
    int to, from, st;
    pid_t pid = child_start(&to, &from);
    struct mos_dump *d;

    assert_int_equal(ask(to, from), 0x1234);
    assert_int_equal(mos_dump_freeze(pid, NULL, &d), 0);
    assert_int_equal(mos_dump_abort(d), 0);
    assert_int_equal(ask(to, from), 0x1235);
    close(to);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    close(from);
}

/* The restorer takes the guest's identity from its options: gid 0 for nobody is refused there,
 * whoever filled them in (as root: other users cannot take another identity anyway). */
static void test_guest_identity_checked(void **state)
{
    (void)state;
    int to, from, st;
    pid_t pid = child_start(&to, &from);
    struct passwd *pw = getpwnam("nobody");
    struct mos_dump *d;
    struct mos_restore *r = NULL;
    struct mos_img_io *io = NULL;
    char husk[PATH_MAX];
    int fd = image_file();

    assert_non_null(pw);
    if (getuid() != 0) {
        fprintf(stderr, "test_guest_identity_checked: not root, a guest cannot change identity: "
                        "nothing to check\n");
        close(to), close(from), close(fd);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return;
    }
    assert_int_equal(ask(to, from), 0x1234);
    assert_int_equal(mos_dump_freeze(pid, NULL, &d), 0);
    assert_int_equal(mos_img_io_fd_open(fd, &io), 0);
    assert_int_equal(mos_dump_write(d, io), 0);
    mos_img_io_close(io);
    assert_int_equal(mos_dump_abort(d), 0);
    struct mos_restore_opts ropts = {.husk_path = mos_restore_husk_path(husk, sizeof(husk)),
                                     .guest = 1, .uid = pw->pw_uid, .gid = 0};
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(mos_img_io_fd_open(fd, &io), 0);
    assert_int_equal(mos_restore_prepare(io, &ropts, &r), MOS_E_IDENTITY);
    mos_img_io_close(io);
    close(fd);
    assert_int_equal(ask(to, from), 0x1235); /* the original runs on */
    close(to);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(from);
}

/* A second thread answers on the pipe while the main thread waits in pthread_join. */
static void *answer_thread(void *arg)
{
    char c;

    (void)arg;
    while (read(0, &c, 1) == 1) {
        uint64_t v = counter++;
        if (write(1, &v, sizeof(v)) != sizeof(v))
            _exit(2);
    }
    return NULL;
}

static pid_t threaded_child_start(int *to, int *from)
{
    pid_t pid = fork_piped(to, from);
    if (pid == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, answer_thread, NULL) != 0)
            _exit(3);
        pthread_join(t, NULL);
        _exit(0);
    }
    return pid;
}

/* The tids of a process, sorted as /proc lists them, in buf. */
static void tids_of(pid_t pid, char *buf, size_t len)
{
    char path[64];
    struct dirent *e;
    DIR *dir;
    size_t at = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    dir = opendir(path);
    assert_non_null(dir);
    buf[0] = '\0';
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.' && at < len)
            at += (size_t)snprintf(buf + at, len - at, "%s ", e->d_name);
    closedir(dir);
}

/* The Seccomp: field of a thread's status (2: a filter). */
static int seccomp_mode(pid_t pid, pid_t tid)
{
    char path[96], line[128];
    int mode = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Seccomp: %d", &mode) == 1)
            break;
    fclose(f);
    return mode;
}

static int dump_to_file(pid_t pid, int commit)
{
    struct mos_dump *d;
    struct mos_img_io *io = NULL;
    int fd = image_file();

    assert_int_equal(mos_dump_freeze(pid, NULL, &d), 0);
    assert_int_equal(mos_img_io_fd_open(fd, &io), 0);
    assert_int_equal(mos_dump_write(d, io), 0);
    mos_img_io_close(io);
    if (commit)
        mos_dump_commit(d);
    else
        assert_int_equal(mos_dump_abort(d), 0);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* Whether every thread of pid runs under a seccomp filter, and how many there are. */
static int threads_filtered(pid_t pid, int *threads)
{
    char list[256];
    int all = 1;

    tids_of(pid, list, sizeof(list));
    *threads = 0;
    for (char *tok = strtok(list, " "); tok; tok = strtok(NULL, " ")) {
        all &= seccomp_mode(pid, atoi(tok)) == 2;
        (*threads)++;
    }
    return all;
}

/* A guest restore of two threads: both under the guest filter (the second made before it, so
 * the filter must be synchronised to it), the thread's image tid and local tid told. */
static void guest_restore_two_threads(int fd, const char *husk, const struct passwd *pw,
                                      pid_t image_tid)
{
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct mos_restore_opts gopts = {.husk_path = husk, .guest = 1, .uid = pw->pw_uid,
                                     .gid = pw->pw_gid, .guest_filter = allow,
                                     .guest_filter_len = 1,
                                     .guest_filter_flags = SECCOMP_FILTER_FLAG_NEW_LISTENER};
    struct mos_restore *r = NULL;
    struct mos_img_io *io = NULL;
    struct mos_tid_pair ids[4];
    char path[64];
    int threads = 0;

    assert_int_equal(mos_img_io_fd_open(fd, &io), 0);
    assert_int_equal(mos_restore_prepare(io, &gopts, &r), 0);
    mos_img_io_close(io);
    pid_t copy = mos_restore_pid(r);
    assert_true(mos_restore_listener_fd(r) >= 0);
    assert_true(threads_filtered(copy, &threads));
    assert_int_equal(threads, 2);
    assert_int_equal(mos_restore_thread_ids(r, ids, 4), 1);
    assert_int_equal(ids[0].image, image_tid);
    snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)copy, (int)ids[0].local);
    assert_int_equal(access(path, F_OK), 0);
    assert_true(ids[0].local != copy);
    mos_restore_abort(r);
    /* the restore closed none of ours (it once closed fd 0 once per image fd) */
    assert_true(fcntl(fd, F_GETFD) >= 0);
    assert_true(fcntl(0, F_GETFD) >= 0 || fd == 0);
    lseek(fd, 0, SEEK_SET);
}

/* Two threads: an abort lets both go on; a guest restore puts both under its filter and says
 * which tid each got; a native one brings both back, with their own tids, the thread
 * answering again. */
static void test_threads(void **state)
{
    (void)state;
    int to, from, st;
    pid_t pid = threaded_child_start(&to, &from);
    struct mos_restore *r = NULL;
    struct mos_img_io *io = NULL;
    char husk[PATH_MAX], before[256], after[256];
    struct passwd *pw = getpwnam("nobody");

    assert_int_equal(ask(to, from), 0x1234); /* the thread exists and answers */
    close(dump_to_file(pid, 0));
    assert_int_equal(ask(to, from), 0x1235); /* released after the abort */
    tids_of(pid, before, sizeof(before));
    pid_t second = 0;
    for (char *p = before; *p && !second; p = strchr(p, ' ') + 1)
        if (atoi(p) != pid)
            second = atoi(p);
    int fd = dump_to_file(pid, 1);
    if (getuid() == 0 && pw)
        guest_restore_two_threads(fd, mos_restore_husk_path(husk, sizeof(husk)), pw, second);
    struct mos_restore_opts ropts = {.husk_path = mos_restore_husk_path(husk, sizeof(husk))};
    int save0 = dup(0), save1 = dup(1), cin[2], cout[2];
    assert_int_equal(pipe(cin), 0);
    assert_int_equal(pipe(cout), 0);
    dup2(cin[0], 0);
    dup2(cout[1], 1);
    assert_int_equal(mos_img_io_fd_open(fd, &io), 0);
    int rc = mos_restore_prepare(io, &ropts, &r);
    dup2(save0, 0);
    dup2(save1, 1);
    close(cin[0]);
    close(cout[1]);
    mos_img_io_close(io);
    close(fd);
    assert_int_equal(rc, 0);
    pid_t copy = mos_restore_pid(r);
    assert_int_equal(mos_restore_commit(r), 0);
    assert_int_equal(ask(cin[1], cout[0]), 0x1236);
    tids_of(copy, after, sizeof(after));
    if (getuid() == 0) /* set_tid is root's (CAP_CHECKPOINT_RESTORE) */
        assert_string_equal(before, after);
    close(cin[1]);
    assert_int_equal(waitpid(copy, &st, 0), copy);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    close(cout[0]);
    close(to);
    close(from);
}

/* A job leaving home stays as a shell: one thread, its others ended first (an execve under
 * our ptrace would wait for us to reap them), parked before its first instruction. */
static void test_shell_of_threads(void **state)
{
    (void)state;
    int to, from, st;
    pid_t pid = threaded_child_start(&to, &from);
    struct mos_dump *d;
    char husk[PATH_MAX], tids[256];

    assert_int_equal(ask(to, from), 0x1234);
    assert_int_equal(mos_dump_freeze(pid, NULL, &d), 0);
    assert_int_equal(mos_dump_commit_shell(d, mos_restore_husk_path(husk, sizeof(husk))), 0);
    tids_of(pid, tids, sizeof(tids));
    char want[32];
    snprintf(want, sizeof(want), "%d ", (int)pid);
    assert_string_equal(tids, want);
    assert_int_equal(kill(pid, 0), 0);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    close(to);
    close(from);
}

/* ---- an io with a page channel: records in memory, bulk runs read from the process and kept
 * with their pages, delivered back in frames of up to three runs */
struct chan {
    uint8_t *rec;
    size_t len, cap, pos;
    struct mos_page_run runs[4096];
    size_t nruns;
    uint8_t *pages;
    uint64_t npages;
    int outside; /* deliver one run at an address no VMA covers */
};

/* The provider's state embeds the io first (migrate/src/img_io.h). */
struct chan_io {
    struct mos_img_io io;
    struct chan *c;
};

static int chan_writev(struct mos_img_io *io, const struct iovec *iov, int n)
{
    struct chan *c = ((struct chan_io *)io)->c;
    for (int i = 0; i < n; i++) {
        if (c->len + iov[i].iov_len > c->cap) {
            c->cap = (c->len + iov[i].iov_len) * 2;
            c->rec = realloc(c->rec, c->cap);
            assert_non_null(c->rec);
        }
        memcpy(c->rec + c->len, iov[i].iov_base, iov[i].iov_len);
        c->len += iov[i].iov_len;
    }
    return 0;
}

static ssize_t chan_read(struct mos_img_io *io, void *buf, size_t len)
{
    struct chan *c = ((struct chan_io *)io)->c;
    size_t n = c->len - c->pos < len ? c->len - c->pos : len;
    memcpy(buf, c->rec + c->pos, n);
    c->pos += n;
    return (ssize_t)n;
}

static int chan_send(struct mos_img_io *io, pid_t pid, const struct mos_page_run *runs, size_t n)
{
    struct chan *c = ((struct chan_io *)io)->c;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += runs[i].npages;
    assert_true(n <= 4096);
    c->pages = realloc(c->pages, total * 4096);
    assert_non_null(c->pages);
    for (size_t i = 0; i < n; i++) {
        struct iovec l = {c->pages + c->npages * 4096, runs[i].npages * 4096};
        struct iovec r = {(void *)runs[i].addr, l.iov_len};
        /* what the transport does: fails on anything the process may not read */
        if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)l.iov_len)
            return -EFAULT;
        c->runs[c->nruns++] = runs[i];
        c->npages += runs[i].npages;
    }
    return 0;
}

static int chan_recv(struct mos_img_io *io, mos_page_place_fn place, void *arg, uint64_t *pages)
{
    struct chan *c = ((struct chan_io *)io)->c;
    const uint8_t *data = c->pages;
    *pages = 0;
    for (size_t first = 0; first < c->nruns; first += 3) {
        size_t k = c->nruns - first < 3 ? c->nruns - first : 3;
        struct mos_page_run runs[3];
        memcpy(runs, c->runs + first, k * sizeof(runs[0]));
        if (c->outside)
            runs[0].addr = 0x500000000000ull;
        int rc = place(arg, runs, k, data);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            data += runs[i].npages * 4096;
            *pages += runs[i].npages;
        }
    }
    return 0;
}

static const struct mos_img_io_ops chan_ops = {
    .writev = chan_writev, .read = chan_read, .send_pages = chan_send, .recv_pages = chan_recv};

/* A child with 8 pages each of read-write, read-only and PROT_NONE memory; each '?' answers
 * a checksum of all three (it opens the PROT_NONE ones for the moment of reading). */
static pid_t regions_start(int *to, int *from)
{
    pid_t pid = fork_piped(to, from);
    if (pid == 0) {
        uint8_t *m = mmap(NULL, 24 * 4096, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (size_t i = 0; i < 24 * 4096; i++)
            m[i] = (uint8_t)(i * 7 + i / 4096);
        mprotect(m + 8 * 4096, 8 * 4096, PROT_READ);
        mprotect(m + 16 * 4096, 8 * 4096, PROT_NONE);
        char c;
        while (read(0, &c, 1) == 1) {
            uint64_t sum = 0;
            mprotect(m + 16 * 4096, 8 * 4096, PROT_READ);
            for (size_t i = 0; i < 24 * 4096; i++)
                sum = sum * 31 + m[i];
            mprotect(m + 16 * 4096, 8 * 4096, PROT_NONE);
            if (write(1, &sum, sizeof(sum)) != sizeof(sum))
                _exit(2);
        }
        _exit(0);
    }
    return pid;
}

/* Restore from c with the pipes as the copy's fds 0-1; the status of prepare. */
static int restore_chan(struct chan *c, struct mos_restore **r, int *cin, int *cout)
{
    char husk[PATH_MAX];
    struct mos_restore_opts ropts = {.husk_path = mos_restore_husk_path(husk, sizeof(husk))};
    struct chan_io cio = {{&chan_ops}, c};
    int save0 = dup(0), save1 = dup(1), in[2], out[2];

    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    dup2(in[0], 0);
    dup2(out[1], 1);
    c->pos = 0;
    int rc = mos_restore_prepare(&cio.io, &ropts, r);
    dup2(save0, 0);
    dup2(save1, 1);
    close(save0);
    close(save1);
    close(in[0]);
    close(out[1]);
    *cin = in[1];
    *cout = out[0];
    return rc;
}

static void test_page_channel(void **state)
{
    (void)state;
    int to, from, cin, cout, st;
    pid_t pid = regions_start(&to, &from);
    struct chan *c = calloc(1, sizeof(*c));
    struct chan_io cio = {{&chan_ops}, c};
    struct mos_dump *d;
    struct mos_restore *r;

    assert_non_null(c);
    uint64_t before = ask(to, from);
    assert_int_equal(mos_dump_freeze(pid, NULL, &d), 0);
    assert_int_equal(mos_dump_write(d, &cio.io), 0);
    const struct mos_dump_stats *ds = mos_dump_stats(d);
    /* the PROT_NONE pages (and only unreadable ones) went as PAGES records */
    assert_true(ds->bulk_pages >= 16 && ds->bulk_pages + 8 <= ds->pages);
    assert_int_equal(c->npages, ds->bulk_pages);

    /* a run outside every VMA: refused, nothing left running, the original untouched */
    c->outside = 1;
    assert_int_equal(restore_chan(c, &r, &cin, &cout), MOS_E_IMAGE);
    close(cin);
    close(cout);
    c->outside = 0;
    /* the records short of their END: the restore fails as truncated */
    size_t full = c->len;
    c->len -= 20;
    assert_int_not_equal(restore_chan(c, &r, &cin, &cout), 0);
    close(cin);
    close(cout);
    c->len = full;

    assert_int_equal(restore_chan(c, &r, &cin, &cout), 0);
    assert_int_equal(mos_restore_stats(r)->bulk_pages, ds->bulk_pages);
    assert_int_equal(mos_restore_stats(r)->pages, ds->pages);
    mos_dump_commit(d);
    pid_t copy = mos_restore_pid(r);
    assert_int_equal(mos_restore_commit(r), 0);
    assert_true(ask(cin, cout) == before);
    close(cin);
    assert_int_equal(waitpid(copy, &st, 0), copy);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(cout);
    close(to);
    close(from);
    free(c->rec);
    free(c->pages);
    free(c);
}

/* A live stream's PREBULK record (pages sent ahead on the page channel) whose run table lies
 * about its pages, or whose pages do not come as announced: refused as a corrupt image, not
 * taken for a stream cut short (what follows the record here: nothing). */
static int prebulk_restore(uint64_t pages, uint64_t table_addr, uint64_t table_pages,
                           uint64_t sent_pages)
{
    struct chan *c = calloc(1, sizeof(*c));
    struct chan_io cio = {{&chan_ops}, c};
    struct mos_img_writer w = {.io = &cio.io};
    struct mos_rec_bulk rec = {pages, 1};
    struct mos_rec_pages run = {table_addr, table_pages};
    struct iovec parts[2] = {{&rec, sizeof(rec)}, {&run, sizeof(run)}};
    struct mos_restore *r = NULL;
    int cin, cout;

    assert_non_null(c);
    assert_int_equal(mos_img_put(&w, MOS_REC_PREBULK, parts, 2), 0);
    if (sent_pages) {
        c->runs[c->nruns++] = (struct mos_page_run){table_addr, sent_pages};
        c->npages = sent_pages;
        assert_non_null(c->pages = calloc(sent_pages, 4096));
    }
    int rc = restore_chan(c, &r, &cin, &cout);
    assert_null(r);
    close(cin);
    close(cout);
    free(c->rec);
    free(c->pages);
    free(c);
    return rc;
}

static void test_prebulk_refused(void **state)
{
    const uint64_t at = 0x200000000000ull;

    (void)state;
    /* truthful, but nothing follows: the stream is short, not corrupt */
    assert_int_equal(prebulk_restore(2, at, 2, 2), MOS_E_TRUNCATED);
    /* the table names 3 pages, the record 2 (and 2 come) */
    assert_int_equal(prebulk_restore(2, at, 3, 2), MOS_E_IMAGE);
    /* a run not on a page boundary, or above user space */
    assert_int_equal(prebulk_restore(2, at + 1, 2, 2), MOS_E_IMAGE);
    assert_int_equal(prebulk_restore(2, 0x800000000000ull, 2, 0), MOS_E_IMAGE);
    /* 2 announced, 1 comes */
    assert_int_equal(prebulk_restore(2, at, 2, 1), MOS_E_IMAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_restore_syscall),
        cmocka_unit_test(test_abort_resumes),
        cmocka_unit_test(test_guest_identity_checked),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_shell_of_threads),
        cmocka_unit_test(test_page_channel),
        cmocka_unit_test(test_prebulk_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
