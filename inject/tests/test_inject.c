/* Injection library, victim/spy pairs: the test forks a victim, seizes it and runs calls in
 * it, then lets it go and checks the victim carried on as if nothing had happened. */
#include "mos/inject.h"
#include "mos/status.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

struct victim {
    pid_t pid;
    int to_victim, from_victim;
};

/* Victim: blocks in read() on a pipe; for every byte it gets it answers with the byte + 1. */
static struct victim victim_start(void)
{
    int a[2], b[2];
    struct victim v;

    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    v.pid = fork();
    assert_true(v.pid >= 0);
    if (v.pid == 0) {
        unsigned char c;
        close(a[1]);
        close(b[0]);
        for (;;) {
            ssize_t n = read(a[0], &c, 1);
            if (n == 0)
                _exit(0);
            if (n < 0)
                _exit(errno == EINTR ? 3 : 4); /* an interrupted call must not leak out */
            c++;
            if (write(b[1], &c, 1) != 1)
                _exit(5);
        }
    }
    close(a[0]);
    close(b[1]);
    v.to_victim = a[1];
    v.from_victim = b[0];
    return v;
}

static void victim_ping(struct victim *v, unsigned char c)
{
    unsigned char r = 0;
    assert_int_equal(write(v->to_victim, &c, 1), 1);
    assert_int_equal(read(v->from_victim, &r, 1), 1);
    assert_int_equal(r, (unsigned char)(c + 1));
}

static void victim_finish(struct victim *v)
{
    int status;
    close(v->to_victim);
    assert_int_equal(waitpid(v->pid, &status, 0), v->pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(v->from_victim);
}

static void test_syscall_in_victim(void **state)
{
    (void)state;
    struct victim v = victim_start();
    struct mos_inject *t;
    long res = 0;
    const long no_args[6] = {0};

    victim_ping(&v, 1);
    usleep(20000); /* let it block in read() again */
    assert_int_equal(mos_inject_seize(v.pid, &t), 0);
    assert_int_equal(mos_inject_syscall(t, SYS_getpid, no_args, &res), 0);
    assert_int_equal(res, v.pid);
    /* A call that fails remotely: injection OK, remote result -EBADF. */
    const long bad_close[6] = {-1};
    assert_int_equal(mos_inject_syscall(t, SYS_close, bad_close, &res), 0);
    assert_int_equal(res, -EBADF);
    assert_int_equal(mos_inject_call(t, SYS_close, -1, 0, 0, 0, 0, 0, NULL), -EBADF);
    /* Remote memory: map, write, read back, unmap. */
    long addr = 0;
    assert_int_equal(mos_inject_call(t, SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &addr),
                     0);
    assert_true(addr > 0);
    char out[32] = "written by the spy", in[32] = {0};
    assert_int_equal(mos_inject_write(t, (uint64_t)addr, out, sizeof(out)), 0);
    assert_int_equal(mos_inject_read(t, (uint64_t)addr, in, sizeof(in)), 0);
    assert_string_equal(in, out);
    assert_int_equal(mos_inject_call(t, SYS_munmap, addr, 4096, 0, 0, 0, 0, NULL), 0);
    assert_int_equal(mos_inject_release(t), 0);
    /* The interrupted read() was restarted, not failed with EINTR. */
    victim_ping(&v, 41);
    victim_finish(&v);
}

/* A marker function whose first bytes are not a syscall instruction: the victim (a fork of
 * this test) has it at the same address, so the test knows the original bytes. */
__attribute__((noinline)) static int patched_marker(int x)
{
    return x * 3 + 7;
}

static void test_patched_code_put_back(void **state)
{
    (void)state;
    struct victim v = victim_start();
    struct mos_inject *t;
    uint8_t before[16], after[16];
    uint64_t where = (uint64_t)(uintptr_t)&patched_marker;
    long res = 0;
    const long no_args[6] = {0};

    memcpy(before, (void *)(uintptr_t)where, sizeof(before));
    assert_int_equal(mos_inject_seize(v.pid, &t), 0);
    assert_int_equal(mos_inject_set_exec_addr(t, where), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mos_inject_syscall(t, SYS_getppid, no_args, &res), 0);
        assert_int_equal(res, getpid());
        assert_int_equal(mos_inject_read(t, where, after, sizeof(after)), 0);
        assert_memory_equal(before, after, sizeof(before));
    }
    assert_int_equal(mos_inject_release(t), 0);
    victim_ping(&v, 7);
    assert_int_equal(patched_marker(1), 10);
    victim_finish(&v);
}

static void test_signal_during_freeze_stays_pending(void **state)
{
    (void)state;
    struct victim v = victim_start();
    struct mos_inject *t;
    int status;

    assert_int_equal(mos_inject_seize(v.pid, &t), 0);
    /* SIGTERM (default action: die) arrives while frozen: it must wait until release. */
    assert_int_equal(kill(v.pid, SIGTERM), 0);
    assert_int_equal(mos_inject_call(t, SYS_getpid, 0, 0, 0, 0, 0, 0, NULL), 0);
    assert_int_equal(waitpid(v.pid, &status, WNOHANG), 0);
    assert_int_equal(mos_inject_release(t), 0);
    assert_int_equal(waitpid(v.pid, &status, 0), v.pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    close(v.to_victim);
    close(v.from_victim);
}

static void test_gone_task(void **state)
{
    (void)state;
    struct victim v = victim_start();
    struct mos_inject *t;

    close(v.to_victim);
    waitpid(v.pid, NULL, 0);
    assert_int_equal(mos_inject_seize(v.pid, &t), -ESRCH);
    close(v.from_victim);
}

static void test_dead_during_injection(void **state)
{
    (void)state;
    struct victim v = victim_start();
    struct mos_inject *t;
    long res = 0;
    const long exit_args[6] = {9};

    assert_int_equal(mos_inject_seize(v.pid, &t), 0);
    /* The injected call ends the task: the injection reports it, not a remote result. */
    assert_int_equal(mos_inject_syscall(t, SYS_exit_group, exit_args, &res), -ESRCH);
    mos_inject_kill(t);
    close(v.to_victim);
    close(v.from_victim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syscall_in_victim),
        cmocka_unit_test(test_patched_code_put_back),
        cmocka_unit_test(test_signal_during_freeze_stays_pending),
        cmocka_unit_test(test_gone_task),
        cmocka_unit_test(test_dead_during_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
