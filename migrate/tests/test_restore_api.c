/* The migrate library's C API end to end in one process: dump a child into a file, restore
 * it, work on the stopped copy with mos_restore_syscall, let it run and check it carries on
 * with its memory intact; an abort leaves the original running. */
#include "mos/migrate.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static volatile uint64_t counter = 0x1234;

/* The child answers on a pipe with its counter, then bumps it. */
static pid_t child_start(int *to, int *from)
{
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* fds 0-2 become the pipes: stdio-kind fds travel as the restorer's own */
        dup2(a[0], 0);
        dup2(b[1], 1);
        syscall(SYS_close_range, 2, ~0u, 0);
        char c;
        while (read(0, &c, 1) == 1) {
            uint64_t v = counter++;
            if (write(1, &v, sizeof(v)) != sizeof(v))
                _exit(2);
        }
        _exit(0);
    }
    close(a[0]);
    close(b[1]);
    *to = a[1];
    *from = b[0];
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
    struct mos_img_io io;
    char husk[PATH_MAX];
    struct mos_restore_opts ropts = {.husk_path = mos_restore_husk_path(husk, sizeof(husk))};
    int fd = image_file();

    assert_int_equal(ask(to, from), 0x1234);
    assert_int_equal(mos_dump_freeze(pid, NULL, &d), 0);
    mos_img_io_fd_init(&io, fd);
    assert_int_equal(mos_dump_write(d, &io), 0);
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
    mos_img_io_fd_init(&io, fd);
    int rc = mos_restore_prepare(&io, &ropts, &r);
    dup2(save0, 0);
    dup2(save1, 1);
    close(child_in[0]);
    close(child_out[1]);
    mos_img_io_fd_release(&io);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_restore_syscall),
        cmocka_unit_test(test_abort_resumes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
