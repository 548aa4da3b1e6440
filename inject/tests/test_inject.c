/* Injection library, victim/spy pairs: the test forks a victim, seizes it and runs calls in
 * it, then lets it go and checks the victim carried on as if nothing had happened. */
#include "mos/inject.h"
#include "mos/status.h"

#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

struct victim {
    pid_t pid;
    int to_victim, from_victim;
};

/* Victim: blocks in read() on a pipe; for every byte it gets it answers with the byte + 1. */
static void echo_loop(int in, int out)
{
    unsigned char c;

    for (;;) {
        ssize_t n = read(in, &c, 1);
        if (n == 0)
            _exit(0);
        if (n < 0)
            _exit(errno == EINTR ? 3 : 4); /* an interrupted call must not leak out */
        c++;
        if (write(out, &c, 1) != 1)
            _exit(5);
    }
}

/* A victim running loop(in, out) over two pipes of ours; its tracer may be a sibling. */
static struct victim victim_start_with(void (*loop)(int in, int out))
{
    int a[2], b[2];
    struct victim v;

    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    v.pid = fork();
    assert_true(v.pid >= 0);
    if (v.pid == 0) {
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY); /* a spy is a sibling (Yama) */
        close(a[1]);
        close(b[0]);
        loop(a[0], b[1]);
        _exit(6);
    }
    close(a[0]);
    close(b[1]);
    v.to_victim = a[1];
    v.from_victim = b[0];
    return v;
}

static struct victim victim_start(void)
{
    return victim_start_with(echo_loop);
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

/* The rescue frame: a spy (a process of its own, so the test outlives it) holds a victim in
 * an injection and is killed there; the victim must go on as it was seized. The victim keeps
 * marks where a wrong resume would lose them: r15 (restored only from the frame), xmm15 (only
 * from the frame's FPU state) and its signal mask. */
#define R15_MARK 0x5eedf00d12345678ull
#define XMM_MARK 0x0badcafe87654321ull
static char rescue_scratch[8]; /* same address in the victim, a fork of this test */
static pid_t rescue_pids[2];      /* victim and spy: killed by the teardown if a check fails */

static int rescue_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (rescue_pids[i] > 0) {
            kill(rescue_pids[i], SIGKILL);
            waitpid(rescue_pids[i], NULL, 0);
            rescue_pids[i] = 0;
        }
    return 0;
}

/* One raw read(fd, c, 1) with the marks in place; *ok: they survived it. */
static long marked_read(int fd, unsigned char *c, int *ok)
{
    register uint64_t r15 __asm__("r15") = R15_MARK;
    uint64_t xm = XMM_MARK, xo = 0;
    long n;

    __asm__ volatile("movq %[xm], %%xmm15\n\tsyscall\n\tmovq %%xmm15, %[xo]"
                     : "=a"(n), [xo] "=r"(xo), "+r"(r15)
                     : "0"((long)SYS_read), "D"((long)fd), "S"(c), "d"(1L), [xm] "r"(xm)
                     : "rcx", "r11", "memory", "xmm15");
    *ok = r15 == R15_MARK && xo == XMM_MARK;
    return n;
}

/* Answers c + 1 when marks and mask held, '!' when not. */
static void rescue_victim_loop(int in, int out)
{
    sigset_t set, now;
    unsigned char c;
    int ok;

    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_SETMASK, &set, NULL);
    for (;;) {
        long n = marked_read(in, &c, &ok);
        if (n == 0)
            _exit(0);
        if (n < 0)
            _exit(n == -EINTR ? 3 : 4);
        sigprocmask(SIG_SETMASK, NULL, &now);
        ok = ok && sigismember(&now, SIGUSR2) && !sigismember(&now, SIGUSR1);
        c = ok ? (unsigned char)(c + 1) : '!';
        if (write(out, &c, 1) != 1)
            _exit(5);
    }
}

enum spy_mode { SPY_PARKED, SPY_IN_CALL };

/* The spy: seize, one call (which arms the rescue), say whether it is armed, then either wait
 * between calls or sit in an injected read() of the gate, until killed. */
static void spy_run(pid_t victim, enum spy_mode mode, int gate_rd, int report)
{
    struct mos_inject *t;
    long res;
    char armed;

    if (mos_inject_seize(victim, &t) != 0 ||
        mos_inject_call(t, SYS_getpid, 0, 0, 0, 0, 0, 0, &res) != 0)
        _exit(1);
    armed = mos_inject_rescue_armed(t) ? 'A' : 'N';
    if (write(report, &armed, 1) != 1)
        _exit(2);
    if (mode == SPY_IN_CALL)
        mos_inject_call(t, SYS_read, gate_rd, (long)(uintptr_t)rescue_scratch, 1, 0, 0, 0, &res);
    for (;;)
        pause();
}

/* /proc/PID/syscall starts with "0 0x<fd>": the task is in read(fd). */
static int in_read_of(pid_t pid, int fd)
{
    char path[64], buf[128], want[32];
    FILE *f;
    int yes = 0;

    snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
    snprintf(want, sizeof(want), "0 0x%x ", fd);
    if ((f = fopen(path, "r"))) {
        yes = fgets(buf, sizeof(buf), f) && strncmp(buf, want, strlen(want)) == 0;
        fclose(f);
    }
    return yes;
}

static void wait_in_read(pid_t pid)
{
    char path[64], buf[128] = "";
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
    for (int i = 0; i < 10000 && strncmp(buf, "0 ", 2) != 0; i++) {
        if (i)
            usleep(1000);
        if ((f = fopen(path, "r"))) {
            if (!fgets(buf, sizeof(buf), f))
                buf[0] = 0;
            fclose(f);
        }
    }
    assert_true(strncmp(buf, "0 ", 2) == 0);
}

static int tracer_of(pid_t pid)
{
    char path[64], line[128];
    int tracer = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r"))) {
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "TracerPid: %d", &tracer) == 1)
                break;
        fclose(f);
    }
    return tracer;
}

static void rescue_case(enum spy_mode mode)
{
    int gate[2], rep[2], status;
    char armed = 0;

    assert_int_equal(pipe(gate), 0);
    assert_int_equal(pipe(rep), 0);
    struct victim v = victim_start_with(rescue_victim_loop);
    rescue_pids[0] = v.pid;
    victim_ping(&v, 1);
    pid_t spy = fork();
    assert_true(spy >= 0);
    if (spy == 0)
        spy_run(v.pid, mode, gate[0], rep[1]);
    rescue_pids[1] = spy;
    assert_int_equal(read(rep[0], &armed, 1), 1);
    /* glibc's signal trampoline and a `syscall; ret` are in every Debian process */
    assert_int_equal(armed, 'A');
    if (mode == SPY_IN_CALL) {
        int waited = 0;
        while (!in_read_of(v.pid, gate[0]) && waited++ < 10000)
            usleep(1000);
        assert_true(in_read_of(v.pid, gate[0]));
    }
    assert_int_equal(kill(spy, SIGKILL), 0);
    assert_int_equal(waitpid(spy, &status, 0), spy);
    rescue_pids[1] = 0;
    if (mode == SPY_IN_CALL) /* the injected read ends; its return runs the rescue */
        assert_int_equal(write(gate[1], "g", 1), 1);
    victim_ping(&v, 20); /* marks and mask as they were, the read restarted, not EINTR */
    assert_int_equal(tracer_of(v.pid), 0);
    victim_ping(&v, 30);
    victim_finish(&v);
    rescue_pids[0] = 0;
    close(gate[0]);
    close(gate[1]);
    close(rep[0]);
    close(rep[1]);
}

static void test_tracer_killed_between_calls(void **state)
{
    (void)state;
    rescue_case(SPY_PARKED);
}

static void test_tracer_killed_in_a_call(void **state)
{
    (void)state;
    rescue_case(SPY_IN_CALL);
}

/* The frame's bytes are the task's again at rest and at release; while armed they are not. */
static void test_rescue_bytes_put_back(void **state)
{
    (void)state;
    struct victim v = victim_start_with(rescue_victim_loop);
    struct mos_inject *t;
    rescue_pids[0] = v.pid;
    static uint8_t before[8192], now[8192];
    long res;

    victim_ping(&v, 1);
    wait_in_read(v.pid);
    assert_int_equal(mos_inject_seize(v.pid, &t), 0);
    uint64_t low = mos_inject_regs(t)->rsp - sizeof(before);
    assert_int_equal(mos_inject_read(t, low, before, sizeof(before)), 0);
    assert_int_equal(mos_inject_call(t, SYS_getpid, 0, 0, 0, 0, 0, 0, &res), 0);
    assert_int_equal(res, v.pid);
    assert_true(mos_inject_rescue_armed(t));
    assert_int_equal(mos_inject_read(t, low, now, sizeof(now)), 0);
    assert_memory_not_equal(before, now, sizeof(now));
    assert_int_equal(mos_inject_rest(t), 0);
    assert_false(mos_inject_rescue_armed(t));
    assert_int_equal(mos_inject_read(t, low, now, sizeof(now)), 0);
    assert_memory_equal(before, now, sizeof(now));
    assert_int_equal(mos_inject_call(t, SYS_getppid, 0, 0, 0, 0, 0, 0, &res), 0);
    assert_int_equal(res, getpid());
    assert_true(mos_inject_rescue_armed(t));
    assert_int_equal(mos_inject_release(t), 0);
    /* let go, it restarts its read() at the same stack pointer, writing nothing on its way:
     * the bytes under it are those it had */
    wait_in_read(v.pid);
    assert_int_equal(mos_inject_seize(v.pid, &t), 0);
    assert_int_equal(mos_inject_regs(t)->rsp - sizeof(before), low);
    assert_int_equal(mos_inject_read(t, low, now, sizeof(now)), 0);
    assert_int_equal(mos_inject_release(t), 0);
    assert_memory_equal(before, now, sizeof(now));
    victim_ping(&v, 9);
    victim_finish(&v);
    rescue_pids[0] = 0;
}

/* clone_args of clone3, spelled out (<linux/sched.h> and <sched.h> do not mix) */
struct clone3_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};

static void comm_of(pid_t pid, pid_t tid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, (int)len, f));
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

/* A batch: the victim runs a list itself, makes a thread that runs a list of its own, stops
 * at the first failure where told to, and goes on reading its pipe once let go. */
static void test_batch(void **state)
{
    (void)state;
    struct victim v = victim_start();
    struct mos_inject *t, *kids[2] = {0};
    size_t len, nkids = 9;
    const uint8_t *code = mos_inject_batch_code(&len);
    long page = 0;
    const uint32_t fork_to = MOS_BATCH_FORK_TO | MOS_BATCH_STOP_ON_ERROR;

    victim_ping(&v, 1);
    assert_int_equal(mos_inject_seize(v.pid, &t), 0);
    assert_int_equal(mos_inject_call(t, SYS_mmap, 0, 8192, PROT_READ | PROT_WRITE | PROT_EXEC,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &page),
                     0);
    const uint64_t at = (uint64_t)page, list = at + 256, kid_list = at + 1024,
                   args_at = at + 2048, name_at = at + 2304;
    const struct clone3_args args = {.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
                                              CLONE_THREAD | CLONE_SYSVSEM};
    const int64_t unrun = -12345;
    struct mos_batch_call calls[5] = {
        {.nr = SYS_getpid, .result = unrun},
        {.nr = SYS_clone3, .flags = fork_to, .args = {args_at, sizeof(args), 0, 0, 0, kid_list},
         .result = unrun},
        {.nr = SYS_close, .args = {(uint64_t)-1}, .result = unrun}, /* fails, the list goes on */
        {.nr = SYS_getppid, .result = unrun},
        {.flags = MOS_BATCH_END}};
    struct mos_batch_call kid[4] = {
        {.nr = SYS_gettid, .result = unrun},
        {.nr = SYS_prctl, .args = {PR_SET_NAME, name_at}, .result = unrun},
        {.nr = SYS_close, .flags = MOS_BATCH_STOP_ON_ERROR, .args = {(uint64_t)-1},
         .result = unrun},
        {.nr = SYS_getpid, .result = unrun}}; /* not run: the close before it ends the list */
    assert_int_equal(mos_inject_write(t, at, code, len), 0);
    assert_int_equal(mos_inject_write(t, list, calls, sizeof(calls)), 0);
    assert_int_equal(mos_inject_write(t, kid_list, kid, sizeof(kid)), 0);
    assert_int_equal(mos_inject_write(t, args_at, &args, sizeof(args)), 0);
    assert_int_equal(mos_inject_write(t, name_at, "batch-kid", 10), 0);

    assert_int_equal(mos_inject_batch_run(t, at, list, kids, 2, &nkids), 0);
    assert_int_equal(nkids, 1);
    assert_int_equal(mos_inject_read(t, list, calls, sizeof(calls)), 0);
    assert_int_equal(mos_inject_read(t, kid_list, kid, sizeof(kid)), 0);
    pid_t tid = mos_inject_pid(kids[0]);
    assert_int_equal(calls[0].result, v.pid);
    assert_int_equal(calls[1].result, tid);
    assert_int_equal(calls[2].result, -EBADF);
    assert_int_equal(calls[3].result, getpid());
    assert_int_equal(kid[0].result, tid);
    assert_int_equal(kid[1].result, 0);
    assert_int_equal(kid[2].result, -EBADF);
    assert_int_equal(kid[3].result, unrun);
    char comm[32];
    comm_of(v.pid, tid, comm, sizeof(comm));
    assert_string_equal(comm, "batch-kid");
    comm_of(v.pid, v.pid, comm, sizeof(comm));
    assert_string_not_equal(comm, "batch-kid");

    /* the leader is held as before the batch: calls still run, and it carries on once let go */
    long res = 0;
    assert_int_equal(mos_inject_call(t, SYS_gettid, 0, 0, 0, 0, 0, 0, &res), 0);
    assert_int_equal(res, v.pid);
    assert_int_equal(mos_inject_thread_exit(kids[0]), 0);
    assert_int_equal(mos_inject_call(t, SYS_munmap, page, 8192, 0, 0, 0, 0, NULL), 0);
    assert_int_equal(mos_inject_release(t), 0);
    victim_ping(&v, 41);
    victim_finish(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syscall_in_victim),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_patched_code_put_back),
        cmocka_unit_test(test_signal_during_freeze_stays_pending),
        cmocka_unit_test(test_gone_task),
        cmocka_unit_test(test_dead_during_injection),
        cmocka_unit_test_teardown(test_tracer_killed_between_calls, rescue_teardown),
        cmocka_unit_test_teardown(test_tracer_killed_in_a_call, rescue_teardown),
        cmocka_unit_test_teardown(test_rescue_bytes_put_back, rescue_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
