/* Capture: freeze a process and write its image (DESIGN.md "A migration", steps 2-4). */
#include "image.h"
#include "memfd.h"
#include "precopy.h"
#include "mos/inject.h"
#include "mos/procfs.h"
#include "stay.h"
#include "unix_sock.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <elf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
struct rseq_config_k { /* struct ptrace_rseq_configuration (5.13) */
    uint64_t rseq_abi_pointer;
    uint32_t rseq_abi_size, signature, flags, pad;
};

/* /proc/PID/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT (1ull << 63)
#define PM_SWAP (1ull << 62)
#define PM_FILE (1ull << 61) /* file page or shared anon: not a private copy */

#define PAGE 4096ull
#define PM_CHUNK 65536
#define BATCH_PAGES 256 /* pages per process_vm_readv (1 MiB, at most as many runs): the
                          * buffer stays in L2 while it is checked, hashed and written */

/* mos_dump_opts.on_interrupt for one thread, in the form inject's seize hook takes. */
struct interrupt_hook {
    const struct mos_dump_opts *opts;
    pid_t tid;
};

static void thread_interrupted(void *arg)
{
    const struct interrupt_hook *h = arg;
    h->opts->on_interrupt(h->tid, h->opts->on_interrupt_arg);
}

static int seize(const struct mos_dump_opts *opts, pid_t tid, struct mos_inject **out)
{
    struct interrupt_hook h = {opts, tid};
    return mos_inject_seize_hooked(tid, opts->on_interrupt ? thread_interrupted : NULL, &h, out);
}

struct mos_dump {
    pid_t pid;
    struct mos_inject *t;        /* the leader (tid == pid) */
    struct mos_inject **threads; /* the other threads, frozen too */
    size_t nthreads;
    struct mos_dump_opts opts;
    struct mos_dump_stats stats;
    struct mos_precopy *pre; /* live: what was sent ahead (not ours to free) */
};

int mos_migrate_check(pid_t pid, const struct mos_dump_opts *opts, char *reason, size_t len)
{
    return mos_stay_check(pid, opts, 0, reason, len);
}

/* No call runs while the pages are read: the bytes under each thread's rescue frame (see
 * mos/inject.h) are the program's again, so the image has them. */
static int threads_rest(struct mos_dump *d)
{
    int rc = mos_inject_rest(d->t);

    for (size_t i = 0; rc == 0 && i < d->nthreads; i++)
        rc = mos_inject_rest(d->threads[i]);
    return rc;
}

/* Let every frozen thread go (the leader last) and forget them. */
static void threads_release(struct mos_dump *d)
{
    for (size_t i = 0; i < d->nthreads; i++)
        mos_inject_release(d->threads[i]);
    free(d->threads);
    d->threads = NULL;
    d->nthreads = 0;
    if (d->t)
        mos_inject_release(d->t);
    d->t = NULL;
}

static int thread_held(const struct mos_dump *d, pid_t tid)
{
    for (size_t i = 0; i < d->nthreads; i++)
        if (mos_inject_pid(d->threads[i]) == tid)
            return 1;
    return tid == d->pid;
}

/* One pass over /proc/PID/task: seize what is not held yet. *added says how many were. */
static int threads_seize_new(struct mos_dump *d, size_t *added)
{
    char path[64];
    struct dirent *e;
    DIR *dir;
    int rc = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)d->pid);
    if (!(dir = opendir(path)))
        return mos_errno_status();
    while (rc == 0 && (e = readdir(dir))) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid <= 0 || thread_held(d, tid))
            continue;
        if (d->nthreads + 1 >= MOS_IMG_MAX_THREADS) {
            mos_err("migrate", "pid %d has more than %u threads", (int)d->pid,
                    MOS_IMG_MAX_THREADS);
            rc = MOS_E_NOT_MIGRATABLE;
            break;
        }
        struct mos_inject **n = realloc(d->threads, (d->nthreads + 1) * sizeof(*n));
        if (!n) {
            rc = -ENOMEM;
            break;
        }
        d->threads = n;
        rc = seize(&d->opts, tid, &d->threads[d->nthreads]);
        if (rc == -ESRCH) { /* it ended between the listing and the seize */
            rc = 0;
            continue;
        }
        if (rc == 0) {
            d->nthreads++;
            (*added)++;
        }
    }
    closedir(dir);
    return rc;
}

/* Every thread, the leader held already: the list is read again until a pass finds no new
 * one, so a thread born while its siblings were being stopped is caught too. */
static int threads_freeze(struct mos_dump *d)
{
    size_t added;
    int rc, passes = 0;

    do {
        added = 0;
        rc = threads_seize_new(d, &added);
        passes++;
    } while (rc == 0 && added > 0);
    if (rc == 0 && d->nthreads)
        mos_dbg("migrate", "pid %d: %zu threads frozen besides the leader, in %d passes",
                (int)d->pid, d->nthreads, passes);
    return rc;
}

int mos_dump_freeze(pid_t pid, const struct mos_dump_opts *opts, struct mos_dump **out)
{
    char reason[256];
    uint64_t t0 = mos_clock_now_ns();
    struct mos_dump *d = calloc(1, sizeof(*d));
    int rc;

    if (!d)
        return -ENOMEM;
    d->pid = pid;
    if (opts)
        d->opts = *opts;
    rc = mos_stay_check(pid, opts, 0, reason, sizeof(reason));
    if (rc == 0) {
        rc = seize(&d->opts, pid, &d->t);
        if (rc == 0 && (rc = threads_freeze(d)) != 0)
            threads_release(d);
        if (rc != 0)
            mos_err("migrate", "cannot freeze pid %d: %s", (int)pid, mos_strerror(rc));
    } else if (rc != MOS_E_NOT_MIGRATABLE)
        mos_err("migrate", "cannot inspect pid %d: %s", (int)pid, mos_strerror(rc));
    /* again, frozen: a thread or mapping may have appeared in between */
    if (rc == 0) {
        rc = mos_stay_check(pid, opts, 1, reason, sizeof(reason));
        if (rc == 0 && mos_inject_regs(d->t)->cs != 0x33) {
            snprintf(reason, sizeof(reason), "is not a 64-bit process");
            rc = MOS_E_NOT_MIGRATABLE;
        }
        if (rc != 0)
            threads_release(d);
    }
    if (rc == MOS_E_NOT_MIGRATABLE)
        mos_err("migrate", "pid %d stays: it %s", (int)pid, reason);
    if (rc != 0) {
        free(d);
        return rc;
    }
    d->stats.freeze_ns = mos_clock_now_ns() - t0;
    *out = d;
    return 0;
}

const struct mos_dump_stats *mos_dump_stats(const struct mos_dump *d)
{
    return &d->stats;
}

void mos_dump_commit(struct mos_dump *d)
{
    mos_inject_kill_group(d->t, d->threads, d->nthreads);
    free(d->threads);
    free(d);
}

int mos_dump_die_with_us(struct mos_dump *d)
{
    int rc = mos_inject_exit_kill(d->t);

    /* every thread: the kernel detaches a dead tracer's tracees one by one, and one let go
     * before any SIGKILL could run a call of its own */
    for (size_t i = 0; rc == 0 && i < d->nthreads; i++)
        rc = mos_inject_exit_kill(d->threads[i]);
    return rc;
}

/* Whether the process may exec its own program again as its shell: not set-id and without
 * file capabilities (that exec runs under our ptrace, as root, and must gain nothing). */
static int own_exe_plain(pid_t pid)
{
    char path[64];
    struct stat st;

    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & (S_ISUID | S_ISGID)))
        return 0;
    return getxattr(path, "security.capability", NULL, 0) < 0 && errno == ENODATA;
}

/* execve(path, its own command line) in the original, from a two-page scratch area: the path
 * and the command line's strings in the first page, the argument vector (whose NULL doubles
 * as the empty environment) in the second. */
static int shell_execve(struct mos_dump *d, const char *path, long *res)
{
    char cmdline[PAGE - 512], file[64];
    uint64_t argv[PAGE / 8 - 1];
    size_t plen = strlen(path) + 1, len = 0, argc = 0;
    long page = 0;
    int fd, rc;

    snprintf(file, sizeof(file), "/proc/%d/cmdline", (int)d->pid);
    if ((fd = open(file, O_RDONLY | O_CLOEXEC)) >= 0) {
        ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);
        len = n > 0 ? (size_t)n : 0;
        close(fd);
    }
    if (plen > PAGE - sizeof(cmdline))
        return -ENAMETOOLONG;
    if (len == 0 || cmdline[len - 1] != '\0') /* none, or cut short: the program name alone */
        len = (size_t)snprintf(cmdline, sizeof(cmdline), "%s", "mos-shell") + 1;
    rc = mos_inject_call(d->t, SYS_mmap, 0, 2 * PAGE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &page);
    for (size_t off = 0; rc == 0 && off < len && argc + 1 < sizeof(argv) / 8;
         off += strlen(cmdline + off) + 1)
        argv[argc++] = (uint64_t)page + plen + off;
    argv[argc] = 0;
    if (rc == 0)
        rc = mos_inject_write(d->t, (uint64_t)page, path, plen);
    if (rc == 0)
        rc = mos_inject_write(d->t, (uint64_t)page + plen, cmdline, len);
    if (rc == 0)
        rc = mos_inject_write(d->t, (uint64_t)page + PAGE, argv, (argc + 1) * 8);
    if (rc == 0)
        rc = mos_inject_execve(d->t, (uint64_t)page, (uint64_t)page + PAGE,
                               (uint64_t)page + PAGE + argc * 8, res);
    return rc;
}

/* The original becomes its own program again, exec'ed afresh and parked before its first
 * instruction (so /proc/PID/exe and ps still name the job), or the husk where that cannot be. */
static int shell_exec(struct mos_dump *d, const char *husk)
{
    long res = -1;
    /* the job's descriptors are its deputy's now; the shell dies with its parent (mosrun) */
    int rc = mos_inject_call(d->t, SYS_close_range, 0, ~0u, 0, 0, 0, 0, NULL);

    if (rc == 0)
        rc = mos_inject_call(d->t, SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0, 0, NULL);
    /* A group of its own: what a terminal sends mosrun's group reaches the job through its
     * deputy already; what is queued in the shell was sent to the job's pid (the deputy passes
     * it on). A session or group leader keeps its group. */
    if (rc == 0)
        mos_inject_call(d->t, SYS_setpgid, 0, 0, 0, 0, 0, 0, NULL);
    if (rc == 0 && own_exe_plain(d->pid))
        rc = shell_execve(d, "/proc/self/exe", &res);
    if (rc == 0 && res < 0)
        rc = shell_execve(d, husk, &res);
    if (rc == 0 && res < 0)
        rc = (int)res;
    return rc == 0 ? mos_inject_park(d->t) : rc;
}

/* The shell is one thread: the others end first (an execve under ptrace would wait for
 * the tracer, us, to reap them, while we wait for the execve). */
static int shell_threads_end(struct mos_dump *d)
{
    while (d->nthreads > 0) {
        int rc = mos_inject_thread_exit(d->threads[d->nthreads - 1]);
        if (rc != 0)
            return rc;
        d->nthreads--;
    }
    return 0;
}

int mos_dump_commit_shell(struct mos_dump *d, const char *husk_path)
{
    /* from here the original is taken apart: if we die now it must not run on half gone (the
     * rescue frame would resume it as seized, without its threads or descriptors) */
    int rc = mos_inject_exit_kill(d->t);

    if (rc == 0)
        rc = shell_threads_end(d);

    if (rc == 0)
        rc = shell_exec(d, husk_path);
    if (rc != 0) {
        /* ended by an exit, not a kill: its deputy (the parent) tells it from a shell killed
         * by a user, which takes the job along (threads still held: killed, since an exit
         * would wait for us to reap them) */
        mos_warn("migrate", "pid %d cannot stay as a shell (%s); it is ended", (int)d->pid,
                 mos_strerror(rc));
        if (d->nthreads == 0)
            mos_inject_call(d->t, SYS_exit_group, 0, 0, 0, 0, 0, 0, NULL);
        mos_dump_commit(d);
        return rc;
    }
    mos_inject_set_sigmask(d->t, ~0ull);
    rc = mos_inject_release(d->t);
    free(d->threads);
    free(d);
    return rc;
}

int mos_dump_abort(struct mos_dump *d)
{
    int rc = 0;

    for (size_t i = 0; i < d->nthreads; i++) {
        int rc2 = mos_inject_release(d->threads[i]);
        if (rc == 0)
            rc = rc2;
    }
    int rc2 = mos_inject_release(d->t);
    free(d->threads);
    free(d);
    return rc ? rc : rc2;
}

/* ---- state */

/* Up to cap bytes of a /proc file: the count read, or a negative status. The count is the
 * return value rather than an out-parameter so no caller can use it after a failed open. */
static ssize_t read_file(const char *path, void *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    ssize_t rc = 0;

    if (fd < 0)
        return mos_errno_status();
    while (got < cap) {
        ssize_t n = read(fd, (char *)buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = mos_errno_status();
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return rc < 0 ? rc : (ssize_t)got;
}

/* Scheduling policy, priority, nice value and CPU affinity of one thread, read from outside. */
static int sched_fill(pid_t tid, struct mos_rec_core *c)
{
    struct sched_param sp = {0};
    int policy = sched_getscheduler(tid);
    long n;

    if (policy < 0 || sched_getparam(tid, &sp) < 0)
        return mos_errno_status();
    c->sched_policy = (uint32_t)policy & ~(uint32_t)SCHED_RESET_ON_FORK;
    if (c->sched_policy > SCHED_IDLE || c->sched_policy == 4) {
        mos_err("migrate", "tid %d stays: scheduling policy %u (SCHED_DEADLINE?) is not carried",
                (int)tid, c->sched_policy);
        return MOS_E_NOT_MIGRATABLE;
    }
    c->sched_prio = sp.sched_priority;
    errno = 0;
    c->nice = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno != 0)
        return mos_errno_status();
    /* the raw call says how many bytes of mask the kernel has */
    n = syscall(SYS_sched_getaffinity, tid, sizeof(c->affinity), c->affinity);
    if (n < 8)
        return n < 0 ? mos_errno_status() : -EIO;
    c->affinity_words = (uint32_t)(n / 8);
    return 0;
}

/* What only the thread itself can tell: its alternate signal stack and its set_tid_address
 * pointer (PR_GET_TID_ADDRESS), by calls injected into it writing into the scratch page. */
static int thread_ask(struct mos_inject *t, uint64_t scratch, stack_t *ss, uint64_t *ctid)
{
    int rc = mos_inject_call(t, SYS_prctl, PR_GET_TID_ADDRESS, (long)scratch, 0, 0, 0, 0, NULL);

    if (rc == 0)
        rc = mos_inject_read(t, scratch, ctid, sizeof(*ctid));
    if (rc == 0 && ss)
        rc = mos_inject_call(t, SYS_sigaltstack, 0, (long)scratch + 64, 0, 0, 0, 0, NULL);
    if (rc == 0 && ss)
        rc = mos_inject_read(t, scratch + 64, ss, sizeof(*ss));
    return rc;
}

/* The state of one thread (leader or not): registers, xstate, mask, rseq, robust list, comm,
 * scheduling; ss (non-leaders: the leader's alt stack is read with the dispositions) too. */
static int thread_fill(struct mos_dump *d, struct mos_inject *t, uint64_t scratch,
                       struct mos_rec_core *core, uint8_t *xstate, stack_t *ss)
{
    pid_t tid = mos_inject_pid(t);
    char path[64], buf[32];
    size_t xlen = MOS_IMG_MAX_XSTATE;
    ssize_t n;
    struct rseq_config_k rs = {0};
    int rc;

    memset(core, 0, sizeof(*core));
    core->regs = *mos_inject_regs(t);
    core->sigmask = mos_inject_sigmask(t);
    rc = mos_inject_get_xstate(t, xstate, &xlen);
    if (rc != 0) {
        mos_err("migrate", "pid %d tid %d: PTRACE_GETREGSET NT_X86_XSTATE: %s", (int)d->pid,
                (int)tid, mos_strerror(rc));
        return rc;
    }
    core->xstate_len = (uint32_t)xlen;
    if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, sizeof(rs), &rs) > 0) {
        core->rseq_addr = rs.rseq_abi_pointer;
        core->rseq_len = rs.rseq_abi_size;
        core->rseq_sig = rs.signature;
    }
    if (syscall(SYS_get_robust_list, tid, &core->robust_list, &core->robust_len) < 0)
        core->robust_list = core->robust_len = 0;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)d->pid, (int)tid);
    if ((n = read_file(path, buf, sizeof(core->comm) - 1)) >= 0) {
        memcpy(core->comm, buf, (size_t)n);
        core->comm[strcspn(core->comm, "\n")] = '\0';
    }
    rc = sched_fill(tid, core);
    if (rc == 0)
        rc = thread_ask(t, scratch, ss, &core->clear_child_tid);
    /* a stay reason is said where it is found */
    if (rc != 0 && rc != MOS_E_NOT_MIGRATABLE)
        mos_err("migrate", "pid %d tid %d: reading its thread state: %s", (int)d->pid,
                (int)tid, mos_strerror(rc));
    return rc;
}

/* The thread's own signal queue (not the process-wide one). */
static uint32_t thread_pending(pid_t tid, struct mos_rec_pending *pend)
{
    uint32_t n = 0;

    for (uint64_t off = 0; n < MOS_IMG_MAX_PENDING; off++) {
        struct __ptrace_peeksiginfo_args a = {.off = off, .nr = 1, .flags = 0};
        if (ptrace(PTRACE_PEEKSIGINFO, tid, &a, pend[n].siginfo) <= 0)
            break;
        pend[n].shared = pend[n].pad = 0;
        n++;
    }
    return n;
}

static int core_fill(struct mos_dump *d, uint64_t scratch, struct mos_rec_core *core,
                     uint8_t *xstate)
{
    char path[64], buf[256];
    ssize_t n;
    int rc = thread_fill(d, d->t, scratch, core, xstate, NULL);

    if (rc != 0)
        return rc;
    core->umask = 022;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
    if ((n = read_file(path, buf, sizeof(buf) - 1)) >= 0) {
        buf[n] = '\0';
        char *u = strstr(buf, "Umask:");
        if (u)
            core->umask = (uint32_t)strtoul(u + 6, NULL, 8) & 0777;
    }
    snprintf(path, sizeof(path), "/proc/%d/personality", (int)d->pid);
    if ((n = read_file(path, buf, sizeof(buf) - 1)) >= 0) {
        buf[n] = '\0';
        core->personality = (uint32_t)strtoul(buf, NULL, 16);
    }
    return 0;
}

static int mm_fill(struct mos_dump *d, struct mos_rec_mm *mm, uint8_t *auxv, char *exe,
                   char *cwd)
{
    struct mos_proc_stat st;
    char path[64];
    ssize_t n;
    long brk = 0;
    int rc;

    memset(mm, 0, sizeof(*mm));
    rc = mos_proc_stat_read(d->pid, &st);
    if (rc != 0)
        return rc;
    mm->start_code = st.f[MOS_STAT_START_CODE];
    mm->end_code = st.f[MOS_STAT_END_CODE];
    mm->start_stack = st.f[MOS_STAT_START_STACK];
    mm->start_data = st.f[MOS_STAT_START_DATA];
    mm->end_data = st.f[MOS_STAT_END_DATA];
    mm->start_brk = st.f[MOS_STAT_START_BRK];
    mm->arg_start = st.f[MOS_STAT_ARG_START];
    mm->arg_end = st.f[MOS_STAT_ARG_END];
    mm->env_start = st.f[MOS_STAT_ENV_START];
    mm->env_end = st.f[MOS_STAT_ENV_END];
    /* The current break is in no /proc file: ask the process itself. */
    rc = mos_inject_call(d->t, SYS_brk, 0, 0, 0, 0, 0, 0, &brk);
    if (rc != 0)
        return rc;
    mm->brk = (uint64_t)brk;
    snprintf(path, sizeof(path), "/proc/%d/auxv", (int)d->pid);
    n = read_file(path, auxv, MOS_IMG_MAX_AUXV);
    if (n < 0)
        return (int)n;
    mm->auxv_len = (uint32_t)n;
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)d->pid);
    ssize_t l = readlink(path, exe, MOS_IMG_MAX_PATH);
    if (l <= 0)
        return mos_errno_status();
    mm->exe_len = (uint32_t)l;
    snprintf(path, sizeof(path), "/proc/%d/cwd", (int)d->pid);
    l = readlink(path, cwd, MOS_IMG_MAX_PATH);
    if (l <= 0)
        return mos_errno_status();
    mm->cwd_len = (uint32_t)l;
    return 0;
}

/* SigCgt and SigIgn of /proc/PID/status; on any trouble *caught stays all ones (ask all). */
static void sig_masks(pid_t pid, uint64_t *caught, uint64_t *ignored)
{
    static const char *const cgt[] = {"SigCgt:"}, *const ign[] = {"SigIgn:"};
    uint64_t c, i;

    if (mos_proc_status_masks(pid, cgt, 1, &c) == 1 && mos_proc_status_masks(pid, ign, 1, &i) == 1) {
        *caught = c;
        *ignored = i;
    }
}

/* Dispositions, alt stack and itimers are only readable from inside: run the calls in the
 * process with a scratch page of its own, then take the page away again. */
static int sigs_fill(struct mos_dump *d, struct mos_rec_sigs *s, struct mos_rec_pending *pend)
{
    long scratch = 0;
    int rc;

    memset(s, 0, sizeof(*s));
    rc = mos_inject_call(d->t, SYS_mmap, 0, PAGE * 2, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &scratch);
    if (rc != 0)
        return rc;
    uint64_t caught = ~0ull, ignored = 0;
    sig_masks(d->pid, &caught, &ignored);
    for (int sig = 1; sig <= 64 && rc == 0; sig++) {
        /* Only handlers carry addresses, flags and masks worth an injected call; SIGCHLD
         * too, whose SA_NOCLDWAIT/SA_NOCLDSTOP matter even without a handler. */
        if (sig == SIGKILL || sig == SIGSTOP ||
            (!(caught & (1ull << (sig - 1))) && sig != SIGCHLD))
            continue;
        rc = mos_inject_call(d->t, SYS_rt_sigaction, sig, 0,
                             scratch + (sig - 1) * (long)sizeof(struct mos_ksigaction), 8, 0, 0,
                             NULL);
    }
    const long ss_at = scratch + 64 * 32, it_at = ss_at + 64;
    if (rc == 0)
        rc = mos_inject_call(d->t, SYS_sigaltstack, 0, ss_at, 0, 0, 0, 0, NULL);
    for (int w = 0; w < 3 && rc == 0; w++)
        rc = mos_inject_call(d->t, SYS_getitimer, w, it_at + w * 32, 0, 0, 0, 0, NULL);
    if (rc == 0)
        rc = mos_inject_read(d->t, (uint64_t)scratch, s->act, sizeof(s->act));
    stack_t ss;
    if (rc == 0)
        rc = mos_inject_read(d->t, (uint64_t)ss_at, &ss, sizeof(ss));
    if (rc == 0)
        rc = mos_inject_read(d->t, (uint64_t)it_at, s->itimer, sizeof(s->itimer));
    int rc2 = mos_inject_call(d->t, SYS_munmap, scratch, PAGE * 2, 0, 0, 0, 0, NULL);
    if (rc == 0)
        rc = rc2;
    if (rc != 0) {
        mos_err("migrate", "pid %d: reading signal state: %s", (int)d->pid, mos_strerror(rc));
        return rc;
    }
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGCHLD && (ignored & (1ull << (sig - 1))))
            s->act[sig - 1].handler = (uint64_t)(uintptr_t)SIG_IGN;
    s->altstack_sp = (uint64_t)ss.ss_sp;
    s->altstack_size = ss.ss_size;
    s->altstack_flags = (uint32_t)ss.ss_flags;
    /* pending signals, the thread's queue then the process-wide one */
    for (int shared = 0; shared <= 1; shared++)
        for (uint64_t off = 0; s->npending < MOS_IMG_MAX_PENDING; off++) {
            struct __ptrace_peeksiginfo_args a = {
                .off = off, .nr = 1, .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0};
            struct mos_rec_pending *p = &pend[s->npending];
            if (ptrace(PTRACE_PEEKSIGINFO, d->pid, &a, p->siginfo) <= 0)
                break;
            p->shared = (uint32_t)shared;
            p->pad = 0;
            s->npending++;
        }
    return 0;
}

/* prlimit() on another user's process needs CAP_SYS_RESOURCE, which root lacks on these
 * machines; /proc/PID/limits says the same. */
static int rlimits_from_proc(pid_t pid, struct mos_rec_rlim *r)
{
    int rc = mos_proc_rlimits_read(pid, r->lim);

    if (rc == MOS_E_PROTO)
        mos_err("migrate", "/proc/%d/limits: not the 16 limits expected", (int)pid);
    return rc;
}

static int rlim_fill(struct mos_dump *d, struct mos_rec_rlim *r)
{
    memset(r, 0, sizeof(*r));
    r->count = 16;
    for (int i = 0; i < 16; i++) {
        struct rlimit l;
        if (prlimit(d->pid, (__rlimit_resource_t)i, NULL, &l) < 0)
            return errno == EPERM ? rlimits_from_proc(d->pid, r) : mos_errno_status();
        r->lim[i][0] = l.rlim_cur;
        r->lim[i][1] = l.rlim_max;
    }
    return 0;
}

/* ---- VMAs */

struct vma_cap {
    struct mos_rec_vma v;
    char path[MOS_VMA_PATH_MAX];
};

static int smaps_flags(pid_t pid, struct vma_cap *vmas, size_t n)
{
    char path[64], *line = NULL;
    size_t cap = 0, i = 0;
    unsigned long long start;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return mos_errno_status();
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "VmFlags:", 8) == 0) {
            if (i > 0 && strstr(line, " gd"))
                vmas[i - 1].v.flags |= MOS_VMA_F_GROWSDOWN;
            static const struct {
                const char *name;
                uint32_t flag;
            } vmflags[] = {
                /* big reservations (ASan shadow, Go/JVM heaps) map again only uncharged */
                {" nr", MOS_VMA_F_NORESERVE},  {" hg", MOS_VMA_F_HUGEPAGE},
                {" nh", MOS_VMA_F_NOHUGEPAGE}, {" dd", MOS_VMA_F_DONTDUMP},
                {" dc", MOS_VMA_F_DONTFORK},   {" wf", MOS_VMA_F_WIPEONFORK},
            };
            for (size_t k = 0; i > 0 && k < sizeof(vmflags) / sizeof(vmflags[0]); k++)
                if (strstr(line, vmflags[k].name))
                    vmas[i - 1].v.flags |= vmflags[k].flag;
        } else if (sscanf(line, "%llx-", &start) == 1 && strchr(line, ' ') &&
                   line[strcspn(line, " ") - 0] == ' ' && strchr(line, '-') < strchr(line, ' ')) {
            while (i < n && vmas[i].v.start < start)
                i++;
            if (i < n && vmas[i].v.start == start)
                i++;
        }
    }
    free(line);
    fclose(f);
    return 0;
}

static int is_special(const char *p)
{
    return !strcmp(p, "[vdso]") || !strcmp(p, "[vvar]") || !strcmp(p, "[vvar_vclock]");
}


/* map_files is for those who may checkpoint any process (CAP_CHECKPOINT_RESTORE): a user's own
 * checkpoint (mosrun -C) stats the path instead, and takes it only when it is the very file
 * maps names (its device and inode). */
static int mapped_by_path(pid_t pid, const struct mos_vma *m, const char *mf, struct stat *st)
{
    int rc = mos_errno_status();

    if (rc != -EPERM && rc != -EACCES) {
        mos_err("migrate", "pid %d: stat %s: %s", (int)pid, mf, mos_strerror(rc));
        return rc;
    }
    if (stat(m->path, st) == 0 && st->st_ino == m->inode &&
        major(st->st_dev) == m->dev_major && minor(st->st_dev) == m->dev_minor)
        return 0;
    mos_err("migrate", "pid %d stays: %s is no longer the file it maps (its mapped file is "
            "readable by root only)", (int)pid, m->path);
    return MOS_E_NOT_MIGRATABLE;
}

static int vmas_capture(struct mos_dump *d, struct vma_cap **out, size_t *count)
{
    struct mos_vma_list list;
    struct vma_cap *v;
    size_t n = 0;
    int rc = mos_vma_list_read(d->pid, &list);

    if (rc != 0)
        return rc;
    v = calloc(list.count ? list.count : 1, sizeof(*v));
    if (!v) {
        mos_vma_list_free(&list);
        return -ENOMEM;
    }
    for (size_t i = 0; i < list.count; i++) {
        const struct mos_vma *m = &list.vmas[i];
        struct vma_cap *c = &v[n];
        if (!strcmp(m->path, "[vsyscall]"))
            continue; /* fixed by the kernel, the same everywhere */
        c->v.start = m->start;
        c->v.end = m->end;
        c->v.prot = m->prot;
        snprintf(c->path, sizeof(c->path), "%s", m->path);
        if (is_special(m->path)) {
            c->v.kind = MOS_VMA_VDSO;
        } else if (mos_vma_shared_anon(m)) { /* stay.c let it through: checkpoint mode */
            c->v.kind = MOS_VMA_ANON_SHARED;
            c->path[0] = '\0';
        } else if (mos_vma_memfd(m)) { /* the same; its object travels once (memfd.c) */
            c->v.kind = MOS_VMA_MEMFD;
            c->v.pgoff = m->offset;
            c->v.dev = makedev(m->dev_major, m->dev_minor);
            c->v.ino = m->inode;
        } else if (m->path[0] != '/') {
            c->v.kind = MOS_VMA_ANON;
            c->path[0] = '\0'; /* [heap], [stack], [anon:x] come back from the mm fields */
        } else {
            char mf[96];
            struct stat mapped, now;
            c->v.pgoff = m->offset;
            snprintf(mf, sizeof(mf), "/proc/%d/map_files/%llx-%llx", (int)d->pid,
                     (unsigned long long)m->start, (unsigned long long)m->end);
            if (stat(mf, &mapped) < 0 && (rc = mapped_by_path(d->pid, m, mf, &mapped)) != 0)
                goto out;
            /* The identity the target checks: the path must still name the mapped file. */
            int same = stat(m->path, &now) == 0 && now.st_dev == mapped.st_dev &&
                       now.st_ino == mapped.st_ino;
            c->v.dev = mapped.st_dev;
            c->v.ino = mapped.st_ino;
            c->v.size = (uint64_t)mapped.st_size;
            c->v.mtime_ns = (uint64_t)mapped.st_mtim.tv_sec * MOS_NSEC_PER_SEC +
                            (uint64_t)mapped.st_mtim.tv_nsec;
            c->v.kind = m->shared                       ? MOS_VMA_FILE_SHARED
                        : same && !d->opts.carry_files ? MOS_VMA_FILE_PRIVATE
                                                       : MOS_VMA_FILE_COPY;
            if (m->shared && !same) {
                mos_err("migrate", "pid %d stays: it maps %s shared, and that path now names "
                        "another file", (int)d->pid, m->path);
                rc = MOS_E_NOT_MIGRATABLE;
                goto out;
            }
        }
        c->v.path_len = (uint32_t)strlen(c->path);
        n++;
    }
    rc = smaps_flags(d->pid, v, n);
out:
    mos_vma_list_free(&list);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *out = v;
    *count = n;
    return 0;
}

/* ---- pages */

/* Pages are read, checked for zeros and checksummed here, and written to the stream by a
 * writer thread, so reading the process overlaps sending (or writing the file). */
#define PIPE_SLOTS 4

struct page_rec {
    struct mos_rec_pages ph;
    struct mos_img_sealed sealed;
};

struct page_slot {
    uint8_t *buf;                                /* BATCH_PAGES pages */
    struct page_rec recs[BATCH_PAGES]; /* runs of non-zero pages: at most one per page */
    int nrecs;
};

struct page_pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct page_slot slots[PIPE_SLOTS];
    unsigned head, tail; /* written at head, filled at tail */
    int done, rc;
    struct mos_img_writer *w;
    uint64_t write_ns;
};

struct page_batch {
    struct mos_dump *d;
    struct mos_img_writer *w;
    struct page_pipe *pipe;
    uint8_t *buf;                    /* the slot being filled */
    struct iovec remote[BATCH_PAGES]; /* runs, in address order */
    int nruns;
    size_t npages;
    int vma_start; /* the next page opens a new VMA: runs never span two (restore checks) */
    int scan_ok;   /* PAGEMAP_SCAN works here (until it fails with ENOTTY/EINVAL) */
    uint64_t read_ns, emit_ns, zero_ns; /* where the time goes, for MOS_LOG=debug */
    struct page_region *regions; /* SCAN_REGIONS */
    uint64_t *pm;                /* PM_CHUNK pagemap entries */
    /* Bulk mode (the io has send_pages): pages of readable VMAs are only listed here, and the
     * io's page channel reads them from the process itself; the rest takes the pipe above. */
    int bulk_ok, to_bulk;
    struct mos_page_run *bulk;
    size_t nbulk, bulk_cap;
    uint64_t bulk_pages;
};

static int page_is_zero(const uint8_t *p)
{
    const uint64_t *q = (const uint64_t *)(const void *)p;
    uint64_t acc = 0;

    for (size_t i = 0; i < PAGE / 8; i += 8)
        acc |= q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] |
               q[i + 7];
    return acc == 0;
}

static void batch_emit(struct page_batch *b, struct page_slot *slot, uint64_t addr,
                       const uint8_t *data, size_t npages)
{
    struct page_rec *r = &slot->recs[slot->nrecs++];
    uint64_t t0 = mos_clock_now_ns();

    r->ph = (struct mos_rec_pages){.addr = addr, .npages = npages};
    struct iovec parts[2] = {{&r->ph, sizeof(r->ph)}, {(void *)data, npages * PAGE}};
    mos_img_seal(&r->sealed, MOS_REC_PAGES, parts, 2);
    b->emit_ns += mos_clock_now_ns() - t0;
}

static void *page_writer(void *arg)
{
    struct page_pipe *pp = arg;
    int rc = 0;

    for (;;) {
        pthread_mutex_lock(&pp->mu);
        while (pp->head == pp->tail && !pp->done)
            pthread_cond_wait(&pp->cv, &pp->mu);
        if (pp->head == pp->tail) {
            pthread_mutex_unlock(&pp->mu);
            break;
        }
        struct page_slot *slot = &pp->slots[pp->head % PIPE_SLOTS];
        pthread_mutex_unlock(&pp->mu);
        uint64_t t0 = mos_clock_now_ns();
        struct mos_img_sealed sealed[BATCH_PAGES];
        uint64_t pages = 0;
        for (int i = 0; i < slot->nrecs; i++) {
            sealed[i] = slot->recs[i].sealed;
            pages += slot->recs[i].ph.npages;
        }
        rc = mos_img_put_sealed(pp->w, sealed, slot->nrecs);
        pp->write_ns += mos_clock_now_ns() - t0;
        pthread_mutex_lock(&pp->mu);
        pp->w->pages += pages;
        pp->head++;
        if (rc != 0)
            pp->rc = rc;
        pthread_cond_broadcast(&pp->cv);
        pthread_mutex_unlock(&pp->mu);
        if (rc != 0)
            break;
    }
    return NULL;
}

/* The next free slot for the reading side, or the writer's error. */
static int slot_take(struct page_pipe *pp, struct page_slot **out)
{
    pthread_mutex_lock(&pp->mu);
    while (pp->tail - pp->head == PIPE_SLOTS && pp->rc == 0)
        pthread_cond_wait(&pp->cv, &pp->mu);
    int rc = pp->rc;
    *out = &pp->slots[pp->tail % PIPE_SLOTS];
    pthread_mutex_unlock(&pp->mu);
    return rc;
}

static void slot_publish(struct page_pipe *pp)
{
    pthread_mutex_lock(&pp->mu);
    pp->tail++;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
}

static int batch_flush(struct page_batch *b)
{
    struct iovec local = {b->buf, b->npages * PAGE};
    ssize_t got;
    size_t done = 0;
    int rc = 0;

    struct page_slot *slot;

    if (b->nruns == 0)
        return 0;
    rc = slot_take(b->pipe, &slot);
    if (rc != 0)
        return rc;
    b->buf = slot->buf;
    slot->nrecs = 0;
    local.iov_base = b->buf;
    uint64_t t0 = mos_clock_now_ns();
    got = process_vm_readv(b->d->pid, &local, 1, b->remote, (unsigned long)b->nruns, 0);
    b->read_ns += mos_clock_now_ns() - t0;
    if (got < 0)
        got = 0;
    /* What process_vm_readv could not reach (no read permission): /proc/PID/mem. */
    for (int i = 0; i < b->nruns; i++) {
        size_t len = b->remote[i].iov_len;
        if (done + len > (size_t)got) {
            size_t skip = (size_t)got > done ? (size_t)got - done : 0;
            rc = mos_inject_read(b->d->t, (uint64_t)b->remote[i].iov_base + skip,
                                 b->buf + done + skip, len - skip);
            if (rc != 0) {
                mos_err("migrate", "pid %d: cannot read memory at %p: %s", (int)b->d->pid,
                        b->remote[i].iov_base, mos_strerror(rc));
                return rc;
            }
        }
        done += len;
    }
    /* Emit runs of non-zero pages, never crossing a gap between remote runs. */
    done = 0;
    for (int i = 0; i < b->nruns && rc == 0; i++) {
        uint64_t addr = (uint64_t)b->remote[i].iov_base;
        size_t np = b->remote[i].iov_len / PAGE, start = 0;
        for (size_t k = 0; k <= np && rc == 0; k++) {
            int zero = k < np && page_is_zero(b->buf + (done + k) * PAGE);
            if (k == np || zero) {
                if (k > start)
                    batch_emit(b, slot, addr + start * PAGE, b->buf + (done + start) * PAGE,
                               k - start);
                start = k + 1;
                if (zero)
                    b->d->stats.zero_pages++;
            }
        }
        done += np;
    }
    b->nruns = 0;
    b->npages = 0;
    if (rc == 0)
        slot_publish(b->pipe);
    return rc;
}

/* List a page for the bulk transfer: runs grow while contiguous, never across VMAs. */
static int bulk_add(struct page_batch *b, uint64_t addr)
{
    struct mos_page_run *last = b->nbulk ? &b->bulk[b->nbulk - 1] : NULL;

    b->bulk_pages++;
    if (last && !b->vma_start && last->addr + last->npages * PAGE == addr) {
        last->npages++;
        return 0;
    }
    b->vma_start = 0;
    if (b->nbulk == b->bulk_cap) {
        size_t cap = b->bulk_cap ? 2 * b->bulk_cap : 256;
        struct mos_page_run *n = realloc(b->bulk, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        b->bulk = n;
        b->bulk_cap = cap;
    }
    b->bulk[b->nbulk++] = (struct mos_page_run){addr, 1};
    return 0;
}

static int batch_add(struct page_batch *b, uint64_t addr)
{
    if (b->d->pre && mos_precopy_kept(b->d->pre, addr))
        return 0; /* sent ahead, unchanged: a KEEP record said so */
    if (b->to_bulk)
        return bulk_add(b, addr);
    if (b->nruns > 0 && !b->vma_start) {
        struct iovec *last = &b->remote[b->nruns - 1];
        if ((uint64_t)last->iov_base + last->iov_len == addr) {
            last->iov_len += PAGE;
            b->npages++;
            goto check;
        }
    }
    b->vma_start = 0;
    b->remote[b->nruns++] = (struct iovec){(void *)addr, PAGE};
    b->npages++;
check:
    if (b->npages == BATCH_PAGES || b->nruns == BATCH_PAGES)
        return batch_flush(b);
    return 0;
}

/* PAGEMAP_SCAN (Linux 6.7): the kernel walks the page tables and returns ranges by category,
 * skipping what was never populated; the headers here are 6.1, so the UAPI is spelled out. */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
struct page_region {
    uint64_t start, end, categories;
};
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif
#define SCAN_REGIONS 512

/* Which pages travel, as a (inverted, mask, anyof) PAGEMAP_SCAN filter: present or swapped,
 * never the shared zero page; of a private file mapping only private copies (not FILE). */
static int vma_pages_scan(struct page_batch *b, int pagemap_fd, const struct mos_rec_vma *v)
{
    struct page_region *reg = b->regions;
    struct pm_scan_arg a = {
        .size = sizeof(a), .start = v->start, .end = v->end, .vec = (uint64_t)(uintptr_t)reg,
        .vec_len = SCAN_REGIONS, .category_inverted = PAGE_IS_PFNZERO,
        .category_mask = PAGE_IS_PFNZERO, .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED};

    if (v->kind == MOS_VMA_FILE_PRIVATE) {
        a.category_inverted |= PAGE_IS_FILE;
        a.category_mask |= PAGE_IS_FILE;
    }
    while (a.start < v->end) {
        int n = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
        if (n < 0)
            return mos_errno_status();
        for (int i = 0; i < n; i++)
            for (uint64_t at = reg[i].start; at < reg[i].end; at += PAGE) {
                int rc = batch_add(b, at);
                if (rc != 0)
                    return rc;
            }
        if (a.walk_end <= a.start)
            return -EIO;
        a.start = a.walk_end;
    }
    return 0;
}

/* The same selection from /proc/PID/pagemap entries, for kernels before 6.7. */
static int vma_pages_read(struct page_batch *b, int pagemap_fd, const struct mos_rec_vma *v)
{
    uint64_t npages = (v->end - v->start) / PAGE, *pm = b->pm;

    for (uint64_t off = 0; off < npages; off += PM_CHUNK) {
        size_t n = npages - off < PM_CHUNK ? (size_t)(npages - off) : PM_CHUNK;
        uint64_t first = v->start / PAGE + off;
        ssize_t got = pread(pagemap_fd, pm, n * 8, (off_t)(first * 8));
        if (got != (ssize_t)(n * 8))
            return got < 0 ? mos_errno_status() : -EIO;
        for (size_t i = 0; i < n; i++) {
            int take;
            if (v->kind == MOS_VMA_FILE_PRIVATE)
                take = (pm[i] & PM_SWAP) || ((pm[i] & PM_PRESENT) && !(pm[i] & PM_FILE));
            else
                take = (pm[i] & (PM_PRESENT | PM_SWAP)) != 0;
            if (take) {
                int rc = batch_add(b, (first + i) * PAGE);
                if (rc != 0)
                    return rc;
            }
        }
    }
    return 0;
}

/* Which pages of a VMA travel: present or swapped ones; of a private file mapping only the
 * private copies (written pages), since the rest comes from the file; of a copied file
 * mapping every page. */
static int vma_pages(struct page_batch *b, int pagemap_fd, const struct mos_rec_vma *v)
{
    if (v->kind == MOS_VMA_VDSO || v->kind == MOS_VMA_FILE_SHARED || v->kind == MOS_VMA_MEMFD)
        return 0;
    b->vma_start = 1;
    /* process_vm_readv cannot read what the process may not: such VMAs keep PAGES records
     * (read through /proc/PID/mem), everything else goes in bulk. */
    b->to_bulk = b->bulk_ok && (v->prot & PROT_READ);
    /* Shared anonymous memory travels whole: its page tables do not tell which pages hold
     * data (one MADV_DONTNEED dropped from them still does, in the shared object). */
    if (v->kind == MOS_VMA_FILE_COPY || v->kind == MOS_VMA_ANON_SHARED) {
        for (uint64_t at = v->start; at < v->end; at += PAGE) {
            int rc = batch_add(b, at);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (b->scan_ok) {
        int rc = vma_pages_scan(b, pagemap_fd, v);
        if (rc != -ENOTTY && rc != -EINVAL)
            return rc;
        b->scan_ok = 0; /* before 6.7: read the entries ourselves */
    }
    return vma_pages_read(b, pagemap_fd, v);
}

/* After the PAGES records: announce the bulk runs, then hand them to the io's page channel,
 * which reads them from the frozen process straight into its send path. */
static int pages_send_bulk(struct mos_dump *d, struct mos_img_writer *w, struct page_batch *b)
{
    struct mos_rec_bulk rec = {.pages = b->bulk_pages, .runs = b->nbulk};
    struct iovec part = {&rec, sizeof(rec)};
    uint64_t t0 = mos_clock_now_ns();
    int rc = mos_img_put(w, MOS_REC_BULK, &part, 1);

    if (rc == 0)
        rc = w->io->ops->send_pages(w->io, d->pid, b->bulk, b->nbulk);
    if (rc != 0)
        return rc;
    w->pages += b->bulk_pages;
    d->stats.bulk_pages = b->bulk_pages;
    mos_dbg("migrate", "pid %d: %llu pages in %zu runs sent in bulk in %.1f ms", (int)d->pid,
            (unsigned long long)b->bulk_pages, b->nbulk, (mos_clock_now_ns() - t0) / 1e6);
    return 0;
}

static int pages_write(struct mos_dump *d, struct mos_img_writer *w, struct vma_cap *v,
                       size_t n)
{
    char path[64];
    struct page_batch *b = calloc(1, sizeof(*b));
    struct page_pipe *pp = calloc(1, sizeof(*pp));
    pthread_t writer;
    int rc = 0, fd = -1;

    if (!b || !pp) {
        rc = -ENOMEM;
        goto out;
    }
    b->d = d;
    b->w = w;
    b->pipe = pp;
    pp->w = w;
    pthread_mutex_init(&pp->mu, NULL);
    pthread_cond_init(&pp->cv, NULL);
    for (int i = 0; i < PIPE_SLOTS; i++)
        if (!(pp->slots[i].buf = aligned_alloc(PAGE, BATCH_PAGES * PAGE)))
            rc = -ENOMEM;
    b->pm = malloc(PM_CHUNK * sizeof(uint64_t));
    b->regions = malloc(SCAN_REGIONS * sizeof(struct page_region));
    b->scan_ok = getenv("MOS_NO_PAGEMAP_SCAN") == NULL;
    b->bulk_ok = w->io->ops->send_pages != NULL;
    snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)d->pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (rc != 0 || !b->pm || !b->regions || fd < 0) {
        rc = fd < 0 ? mos_errno_status() : -ENOMEM;
        goto out_sync;
    }
    if (pthread_create(&writer, NULL, page_writer, pp) != 0) {
        rc = -EAGAIN;
        goto out_sync;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = vma_pages(b, fd, &v[i].v);
    if (rc == 0)
        rc = batch_flush(b);
    pthread_mutex_lock(&pp->mu);
    pp->done = 1;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    pthread_join(writer, NULL);
    if (rc == 0)
        rc = pp->rc;
    if (rc == 0 && b->nbulk > 0)
        rc = pages_send_bulk(d, w, b);
    mos_dbg("migrate", "pid %d: pages: reading %.1f ms, checksums %.1f ms, writing %.1f ms, "
            "%llu in bulk", (int)d->pid, b->read_ns / 1e6, b->emit_ns / 1e6,
            pp->write_ns / 1e6, (unsigned long long)b->bulk_pages);
out_sync:
    pthread_mutex_destroy(&pp->mu);
    pthread_cond_destroy(&pp->cv);
out:
    if (fd >= 0)
        close(fd);
    if (pp)
        for (int i = 0; i < PIPE_SLOTS; i++)
            free(pp->slots[i].buf);
    free(pp);
    if (b) {
        free(b->pm);
        free(b->regions);
        free(b->bulk);
    }
    free(b);
    return rc;
}

/* ---- the image */

/* Everything but VMAs, fds and pages, gathered before anything is written. */
struct dump_state {
    struct mos_rec_image img;
    struct mos_rec_core core;
    struct mos_rec_mm mm;
    struct mos_rec_sigs sigs;
    struct mos_rec_rlim rlim;
    char exe[MOS_IMG_MAX_PATH], cwd[MOS_IMG_MAX_PATH];
    uint8_t auxv[MOS_IMG_MAX_AUXV];
    uint8_t xstate[MOS_IMG_MAX_XSTATE] __attribute__((aligned(64)));
    struct mos_rec_pending pend[MOS_IMG_MAX_PENDING];
    struct thread_cap *threads; /* d->nthreads of them */
};

struct thread_cap {
    struct mos_rec_thread t;
    uint8_t xstate[MOS_IMG_MAX_XSTATE] __attribute__((aligned(64)));
    struct mos_rec_pending pend[MOS_IMG_MAX_PENDING];
};

/* The tid thread local is known by in its program: the image's tid it was restored from
 * (mos_dump_opts.tids), or its own when it was made here. */
static pid_t program_tid(const struct mos_dump *d, pid_t local)
{
    for (size_t i = 0; i < d->opts.ntids; i++)
        if (d->opts.tids[i].local == local)
            return d->opts.tids[i].image;
    return local;
}

static int threads_fill(struct mos_dump *d, uint64_t scratch, struct thread_cap *caps)
{
    for (size_t i = 0; i < d->nthreads; i++) {
        struct thread_cap *c = &caps[i];
        stack_t ss;
        int rc = thread_fill(d, d->threads[i], scratch, &c->t.core, c->xstate, &ss);
        if (rc != 0)
            return rc;
        c->t.tid = program_tid(d, mos_inject_pid(d->threads[i]));
        c->t.altstack_sp = (uint64_t)ss.ss_sp;
        c->t.altstack_size = ss.ss_size;
        c->t.altstack_flags = (uint32_t)ss.ss_flags;
        c->t.npending = thread_pending(mos_inject_pid(d->threads[i]), c->pend);
    }
    return 0;
}

/* Per-thread state of every thread, with a scratch page of the process's own for the answers
 * of the calls injected into them (taken away again before the VMAs are read). */
static int cores_fill(struct mos_dump *d, struct dump_state *s)
{
    long scratch = 0;
    int rc = mos_inject_call(d->t, SYS_mmap, 0, PAGE, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &scratch);

    if (rc != 0)
        return rc;
    rc = core_fill(d, (uint64_t)scratch, &s->core, s->xstate);
    if (rc == 0 && d->nthreads) {
        s->threads = calloc(d->nthreads, sizeof(*s->threads));
        rc = s->threads ? threads_fill(d, (uint64_t)scratch, s->threads) : -ENOMEM;
    }
    int rc2 = mos_inject_call(d->t, SYS_munmap, scratch, PAGE, 0, 0, 0, 0, NULL);
    return rc ? rc : rc2;
}

static int state_gather(struct mos_dump *d, struct dump_state *s)
{
    struct timespec now;
    int rc;

    s->img = (struct mos_rec_image){.tag = "MOSIMAGE",
                                    .format_version = MOS_IMG_FORMAT_VERSION,
                                    .arch = EM_X86_64,
                                    .page_size = PAGE,
                                    .src_pid = (uint64_t)d->pid,
                                    .nthreads = (uint32_t)(1 + d->nthreads)};
    clock_gettime(CLOCK_REALTIME, &now);
    s->img.time_ns = (uint64_t)now.tv_sec * MOS_NSEC_PER_SEC + (uint64_t)now.tv_nsec;
    gethostname(s->img.host, sizeof(s->img.host) - 1);
    if ((rc = cores_fill(d, s)) != 0 ||
        (rc = mm_fill(d, &s->mm, s->auxv, s->exe, s->cwd)) != 0 ||
        (rc = sigs_fill(d, &s->sigs, s->pend)) != 0 || (rc = rlim_fill(d, &s->rlim)) != 0)
        return rc;
    return 0;
}

static int put_vmas(struct mos_img_writer *w, const struct vma_cap *vmas, size_t nvmas)
{
    size_t vlen = sizeof(struct mos_rec_vmas);
    for (size_t i = 0; i < nvmas; i++)
        vlen += sizeof(vmas[i].v) + vmas[i].v.path_len;
    uint8_t *vbuf = malloc(vlen), *q = vbuf;
    if (!vbuf)
        return -ENOMEM;
    struct mos_rec_vmas vh = {.count = (uint32_t)nvmas};
    memcpy(q, &vh, sizeof(vh));
    q += sizeof(vh);
    for (size_t i = 0; i < nvmas; i++) {
        memcpy(q, &vmas[i].v, sizeof(vmas[i].v));
        q += sizeof(vmas[i].v);
        memcpy(q, vmas[i].path, vmas[i].v.path_len);
        q += vmas[i].v.path_len;
    }
    struct iovec part = {vbuf, vlen};
    int rc = mos_img_put(w, MOS_REC_VMAS, &part, 1);
    free(vbuf);
    return rc;
}

static int put_meta(struct mos_img_writer *w, struct dump_state *s, const struct vma_cap *vmas,
                    size_t nvmas)
{
    struct iovec p_img = {&s->img, sizeof(s->img)};
    struct iovec p_core[2] = {{&s->core, sizeof(s->core)}, {s->xstate, s->core.xstate_len}};
    struct iovec p_mm[4] = {{&s->mm, sizeof(s->mm)}, {s->auxv, s->mm.auxv_len},
                            {s->exe, s->mm.exe_len}, {s->cwd, s->mm.cwd_len}};
    struct iovec p_sigs[2] = {{&s->sigs, sizeof(s->sigs)},
                              {s->pend, s->sigs.npending * sizeof(s->pend[0])}};
    struct iovec p_rlim = {&s->rlim, sizeof(s->rlim)};
    int rc;

    if ((rc = mos_img_put(w, MOS_REC_IMAGE, &p_img, 1)) != 0 ||
        (rc = mos_img_put(w, MOS_REC_CORE, p_core, 2)) != 0 ||
        (rc = mos_img_put(w, MOS_REC_MM, p_mm, 4)) != 0 || (rc = put_vmas(w, vmas, nvmas)) != 0 ||
        (rc = mos_img_put(w, MOS_REC_SIGS, p_sigs, 2)) != 0 ||
        (rc = mos_img_put(w, MOS_REC_RLIM, &p_rlim, 1)) != 0)
        return rc;
    for (uint32_t i = 0; i + 1 < s->img.nthreads; i++) {
        struct thread_cap *c = &s->threads[i];
        struct iovec p_thr[3] = {{&c->t, sizeof(c->t)}, {c->xstate, c->t.core.xstate_len},
                                 {c->pend, c->t.npending * sizeof(c->pend[0])}};
        if ((rc = mos_img_put(w, MOS_REC_THREAD, p_thr, 3)) != 0)
            return rc;
    }
    return 0;
}

/* A pipe of the frozen process: *size its capacity and, with_data, what it holds, read without
 * taking it: tee() from a reader of our own (opened through /proc) into a pipe of ours as
 * large, then read from that. *data is malloc'ed, *len bytes (NULL and 0 without data). */
static int pipe_capture(pid_t pid, int fd, int with_data, uint32_t *size, uint8_t **data,
                        uint32_t *len)
{
    char path[64];
    int queued = 0, ours[2] = {-1, -1}, rc = 0;
    long cap = 0;
    ssize_t got = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
    int src = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    *data = NULL;
    *len = 0;
    if (src < 0 || (cap = fcntl(src, F_GETPIPE_SZ)) < 0 ||
        (with_data && ioctl(src, FIONREAD, &queued) < 0)) {
        rc = mos_errno_status();
    } else if (cap > (long)MOS_IMG_MAX_PIPE_SIZE) {
        mos_err("migrate", "pid %d stays: fd %d is a pipe of %ld bytes (at most %u travel)",
                (int)pid, fd, cap, MOS_IMG_MAX_PIPE_SIZE);
        rc = MOS_E_NOT_MIGRATABLE;
    } else if (queued > 0 && (pipe2(ours, O_CLOEXEC | O_NONBLOCK) < 0 ||
                              fcntl(ours[1], F_SETPIPE_SZ, (int)cap) < cap ||
                              !(*data = malloc((size_t)queued)))) {
        rc = *data ? mos_errno_status() : -ENOMEM;
    } else if (queued > 0) {
        /* one tee: a second would copy the same bytes again */
        got = tee(src, ours[1], (size_t)queued, SPLICE_F_NONBLOCK);
        if (got != queued || read(ours[0], *data, (size_t)queued) != queued)
            rc = got < 0 ? mos_errno_status() : -EIO;
    }
    if (rc == 0) {
        *size = (uint32_t)cap;
        *len = (uint32_t)queued;
    } else {
        if (rc != MOS_E_NOT_MIGRATABLE)
            mos_err("migrate", "pid %d: reading what its pipe (fd %d) holds: %s", (int)pid, fd,
                    mos_strerror(rc));
        free(*data);
        *data = NULL;
    }
    for (int k = 0; k < 2; k++)
        if (ours[k] >= 0)
            close(ours[k]);
    if (src >= 0)
        close(src);
    return rc;
}

/* An anon-inode fd's state from /proc/PID/fdinfo/FD into out (*len bytes). 0 or -EPROTO when
 * a field is missing (a kernel that shows less: the dump fails rather than guess). */
static int anon_capture(pid_t pid, int fd, uint32_t kind, uint8_t *out, uint32_t *len)
{
    char path[64], line[256];
    struct mos_rec_eventfd e = {0};
    struct mos_rec_signalfd sg = {0};
    struct mos_rec_timerfd t = {0};
    unsigned long long a, b;
    unsigned v;
    int got = 0;

    snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
    FILE *f = fopen(path, "re");
    if (!f)
        return mos_errno_status();
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "eventfd-count: %llx", &a) == 1)
            e.count = a, got |= 1;
        else if (sscanf(line, "eventfd-semaphore: %u", &v) == 1)
            e.semaphore = v != 0, got |= 2;
        else if (sscanf(line, "sigmask: %llx", &a) == 1)
            sg.mask = a, got |= 1;
        else if (sscanf(line, "clockid: %u", &v) == 1)
            t.clockid = v, got |= 1;
        else if (sscanf(line, "ticks: %llu", &a) == 1)
            t.ticks = a, got |= 2;
        else if (sscanf(line, "it_value: (%llu, %llu)", &a, &b) == 2)
            t.value_sec = a, t.value_nsec = b, got |= 4;
        else if (sscanf(line, "it_interval: (%llu, %llu)", &a, &b) == 2)
            t.interval_sec = a, t.interval_nsec = b, got |= 8;
    }
    fclose(f);
    if (kind == MOS_FD_EVENTFD && (got & 1)) /* a kernel without the semaphore line: 0 */
        memcpy(out, &e, *len = sizeof(e));
    else if (kind == MOS_FD_SIGNALFD && got == 1)
        memcpy(out, &sg, *len = sizeof(sg));
    else if (kind == MOS_FD_TIMERFD && got == 15)
        memcpy(out, &t, *len = sizeof(t));
    else
        return -EPROTO;
    return 0;
}

/* An epoll's watches from /proc/PID/fdinfo/FD. Each must still be the file at the fd number
 * it was added with (KCMP_EPOLL_TFD: an fd closed or moved since leaves the kernel watching a
 * file the process may no longer name) and one that travels, no other epoll. */
static int epoll_capture(pid_t pid, int epfd, const struct mos_fd_seen *fds, size_t n,
                         uint8_t **data, uint32_t *len)
{
    char path[64], line[256], why[96] = "";
    struct mos_rec_epoll_watch *w = NULL;
    size_t count = 0, cap = 0;
    int tfd;
    unsigned events;
    unsigned long long value;

    snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, epfd);
    FILE *f = fopen(path, "re");
    if (!f)
        return mos_errno_status();
    while (!why[0] && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &value) != 3)
            continue;
        struct kcmp_epoll_slot slot = {.efd = (uint32_t)epfd, .tfd = (uint32_t)tfd, .toff = 0};
        size_t k = 0;
        while (k < n && fds[k].fd != tfd)
            k++;
        if (k == n || syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, tfd, &slot) != 0)
            snprintf(why, sizeof(why), "its epoll (fd %d) watches a file fd %d no longer is", epfd,
                     tfd);
        else if (fds[k].kind == 0 || fds[k].kind == MOS_FD_EPOLL)
            snprintf(why, sizeof(why), "its epoll (fd %d) watches fd %d, which cannot travel",
                     epfd, tfd);
        else if (count == MOS_IMG_MAX_EPOLL_WATCHES)
            snprintf(why, sizeof(why), "its epoll (fd %d) watches more than %u fds", epfd,
                     MOS_IMG_MAX_EPOLL_WATCHES);
        if (why[0])
            break;
        if (count == cap) {
            cap = cap ? 2 * cap : 8;
            struct mos_rec_epoll_watch *grown = realloc(w, cap * sizeof(*w));
            if (!grown) {
                fclose(f);
                free(w);
                return -ENOMEM;
            }
            w = grown;
        }
        w[count++] = (struct mos_rec_epoll_watch){.tfd = tfd, .events = events, .data = value};
    }
    fclose(f);
    if (why[0]) {
        mos_err("migrate", "pid %d stays: %s", (int)pid, why);
        free(w);
        return MOS_E_NOT_MIGRATABLE;
    }
    *data = (uint8_t *)w;
    *len = (uint32_t)(count * sizeof(*w));
    return 0;
}

/* A unix socket of the frozen process: its state and what its queue holds, read through a
 * copy of its fd (pidfd_getfd: a socket cannot be opened through /proc). *data is malloc'ed:
 * struct mos_rec_unix and its messages; *bytes counts their data. */
static int unix_capture(pid_t pid, const struct mos_fd_seen *s, uint32_t budget, uint8_t **data,
                        uint32_t *len, char *why, size_t whylen)
{
    struct mos_rec_unix u = {.type = s->sock_type, .shutdown = s->shutdown, .peer = s->peer};
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), rc = 0, v[3] = {0, 0, 0};
    int sock = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, s->fd, 0);
    static const int opts[3] = {SO_SNDBUF, SO_RCVBUF, SO_PASSCRED};
    uint8_t *msgs = NULL;
    uint32_t mlen = 0;

    for (int k = 0; k < 3 && rc == 0; k++) {
        socklen_t sl = sizeof(v[k]);
        if (sock < 0 || getsockopt(sock, SOL_SOCKET, opts[k], &v[k], &sl) < 0)
            rc = mos_errno_status();
    }
    u.sndbuf = (uint32_t)v[0];
    u.rcvbuf = (uint32_t)v[1];
    u.passcred = v[2] != 0;
    if (rc == 0)
        rc = mos_unix_queue_read(sock, u.type, budget, &msgs, &mlen, &u.nmsgs, why, whylen);
    if (rc == 0 && !(*data = malloc(sizeof(u) + mlen)))
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(*data, &u, sizeof(u));
        if (mlen)
            memcpy(*data + sizeof(u), msgs, mlen);
        *len = (uint32_t)sizeof(u) + mlen;
    } else if (rc != MOS_E_NOT_MIGRATABLE) {
        mos_err("migrate", "pid %d: reading fd %d (a unix socket): %s", (int)pid, s->fd,
                mos_strerror(rc));
    }
    free(msgs);
    if (sock >= 0)
        close(sock);
    if (pidfd >= 0)
        close(pidfd);
    return rc;
}

/* The bytes a socket's state holds queued (struct mos_rec_unix, then length + bytes each). */
static uint64_t unix_queued(const uint8_t *state, uint32_t len)
{
    struct mos_rec_unix u;

    memcpy(&u, state, sizeof(u));
    return len - sizeof(u) - (uint64_t)u.nmsgs * sizeof(uint32_t);
}

/* Socket i cannot travel and the fds that cannot are left closed: so are its dups and its
 * other end's entries, which may come before it, so that no entry names a peer the image
 * lacks. */
static void unix_leave_closed(struct mos_fd_seen *fds, size_t n, size_t i, const char *why,
                              uint8_t **state)
{
    char own[sizeof(fds[i].path)], peer[40];
    int fd = fds[i].fd;

    memcpy(own, fds[i].path, sizeof(own));
    snprintf(peer, sizeof(peer), "socket:[%llu]", (unsigned long long)fds[i].peer);
    for (size_t k = 0; k < n; k++) {
        if (fds[k].kind != MOS_FD_UNIX ||
            (strcmp(fds[k].path, own) != 0 && (!fds[i].peer || strcmp(fds[k].path, peer) != 0)))
            continue;
        fds[k].kind = 0;
        if (fds[k].fd == fd || strcmp(fds[k].path, own) == 0)
            snprintf(fds[k].why, sizeof(fds[k].why), "fd %d (a unix socket): %.90s", fds[k].fd,
                     why);
        else
            snprintf(fds[k].why, sizeof(fds[k].why),
                     "fd %d (a unix socket): its other end, fd %d, cannot travel", fds[k].fd, fd);
        free(state[k]);
        state[k] = NULL;
    }
}

/* Every socket's state, before any entry is written (see unix_leave_closed); state[i] is
 * malloc'ed for each socket that is no dup, *total what they hold queued. */
static int unix_capture_all(struct mos_dump *d, struct mos_fd_seen *fds, size_t n,
                            uint8_t **state, uint32_t *len, uint64_t *total)
{
    char why[96];

    for (size_t i = 0; i < n; i++) {
        if (fds[i].kind != MOS_FD_UNIX || fds[i].dup_of >= 0)
            continue;
        why[0] = '\0';
        int rc = unix_capture(d->pid, &fds[i], MOS_IMG_MAX_PIPE_DATA - (uint32_t)*total,
                              &state[i], &len[i], why, sizeof(why));
        if (rc == 0) {
            *total += unix_queued(state[i], len[i]);
        } else if (rc == MOS_E_NOT_MIGRATABLE && d->opts.close_other_fds) {
            unix_leave_closed(fds, n, i, why, state);
            *total = 0; /* again over the sockets kept: the other end may have gone too */
            for (size_t k = 0; k < n; k++)
                if (state[k])
                    *total += unix_queued(state[k], len[k]);
        } else {
            if (rc == MOS_E_NOT_MIGRATABLE)
                mos_err("migrate", "pid %d stays: fd %d (a unix socket): %s", (int)d->pid,
                        fds[i].fd, why);
            return rc;
        }
    }
    return 0;
}

/* The state after entry i's path: the first entry of a pipe carries what it holds (and every
 * entry its capacity), an anon-inode fd that is no dup its struct(s). *data is malloc'ed.
 * 1: the fd is left closed (an epoll over what cannot travel, with close_other_fds). */
static int fd_state(struct mos_dump *d, const struct mos_fd_seen *fds, size_t n, size_t i,
                    struct mos_rec_fd *f, uint8_t **data, uint64_t *total)
{
    int first = 1, rc;

    if (f->kind == MOS_FD_EPOLL && f->dup_of < 0) {
        rc = epoll_capture(d->pid, f->fd, fds, n, data, &f->data_len);
        if (rc == MOS_E_NOT_MIGRATABLE && d->opts.close_other_fds) {
            mos_warn("migrate", "pid %d: fd %d (an epoll): left closed", (int)d->pid, f->fd);
            return 1;
        }
        return rc;
    }
    if (f->kind == MOS_FD_EPOLL)
        return 0;
    if (f->kind != MOS_FD_PIPE) {
        if (f->dup_of >= 0)
            return 0;
        if (!(*data = malloc(sizeof(struct mos_rec_timerfd)))) /* the largest */
            return -ENOMEM;
        rc = anon_capture(d->pid, f->fd, f->kind, *data, &f->data_len);
        if (rc != 0)
            mos_err("migrate", "pid %d: reading the state of fd %d (%s): %s", (int)d->pid,
                    f->fd, fds[i].path, mos_strerror(rc));
        return rc;
    }
    for (size_t k = 0; k < i && first; k++)
        first = !(fds[k].kind == MOS_FD_PIPE && strcmp(fds[k].path, fds[i].path) == 0);
    rc = pipe_capture(d->pid, fds[i].fd, first, &f->pipe_size, data, &f->data_len);
    if (rc == 0 && (*total += f->data_len) > MOS_IMG_MAX_PIPE_DATA) {
        mos_err("migrate", "pid %d stays: its pipes hold more than %u bytes", (int)d->pid,
                MOS_IMG_MAX_PIPE_DATA);
        rc = MOS_E_NOT_MIGRATABLE;
    }
    return rc;
}

/* The FDS record as it is built: its size is known only once every fd's state is read. */
struct rec_buf {
    uint8_t *p;
    size_t len, cap;
};

static int rec_buf_add(struct rec_buf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        uint8_t *grown = realloc(b->p, cap);
        if (!grown)
            return -ENOMEM;
        b->p = grown;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

/* Is fd (an earlier entry than i) in the image? */
static int fd_kept(const struct mos_fd_seen *fds, size_t i, int fd)
{
    for (size_t k = 0; k < i; k++)
        if (fds[k].fd == fd)
            return fds[k].kind != 0;
    return 0;
}

static int put_fds(struct mos_dump *d, struct mos_img_writer *w, struct memfd_objs *objs)
{
    struct mos_fd_seen *fds;
    struct rec_buf b = {0};
    size_t n;
    struct mos_rec_fds h = {0};
    uint64_t pipe_total = 0;
    int rc = d->opts.fds_at_home ? (fds = NULL, n = 0, 0) : mos_fd_table_read(d->pid, &fds, &n);

    if (rc != 0)
        return rc;
    mos_fd_own_check(d->pid, fds, n);
    uint8_t **state = calloc(n ? n : 1, sizeof(*state));
    uint32_t *state_len = calloc(n ? n : 1, sizeof(*state_len));
    rc = !state || !state_len ? -ENOMEM
                              : unix_capture_all(d, fds, n, state, state_len, &pipe_total);
    if (rc == 0)
        rc = rec_buf_add(&b, &h, sizeof(h));
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t *data = NULL;
        if (fds[i].kind == 0) {
            mos_warn("migrate", "pid %d: %s: left closed", (int)d->pid, fds[i].why);
            continue;
        }
        if (fds[i].dup_of >= 0 && !fd_kept(fds, i, fds[i].dup_of))
            continue; /* a dup of an fd left closed */
        struct mos_rec_fd f = {.fd = fds[i].fd, .kind = fds[i].kind, .flags = fds[i].flags,
                               .fdflags = fds[i].fdflags, .offset = fds[i].offset,
                               .path_len = (uint32_t)strlen(fds[i].path),
                               .dup_of = fds[i].dup_of};
        if (f.kind == MOS_FD_UNIX) { /* its state read ahead: unix_capture_all */
            data = state[i];
            state[i] = NULL;
            f.data_len = data ? state_len[i] : 0;
        } else if (f.kind == MOS_FD_MEMFD) { /* the object's inode names it in MEMFDS */
            if (f.dup_of < 0 && (rc = mos_memfd_take_fd(objs, d->pid, f.fd, fds[i].path)) == 0 &&
                (data = malloc(sizeof(uint64_t)))) {
                memcpy(data, &fds[i].ino, sizeof(uint64_t));
                f.data_len = sizeof(uint64_t);
            } else if (f.dup_of < 0 && rc == 0) {
                rc = -ENOMEM;
            }
        } else if (f.kind >= MOS_FD_PIPE &&
                   (rc = fd_state(d, fds, n, i, &f, &data, &pipe_total)) == 1) {
            fds[i].kind = 0;
            rc = 0;
            continue;
        }
        if (rc == 0 && (rc = rec_buf_add(&b, &f, sizeof(f))) == 0 &&
            (rc = rec_buf_add(&b, fds[i].path, f.path_len)) == 0)
            rc = rec_buf_add(&b, data, f.data_len);
        free(data);
        h.count++;
    }
    if (rc == 0) {
        memcpy(b.p, &h, sizeof(h));
        struct iovec part = {b.p, b.len};
        rc = mos_img_put(w, MOS_REC_FDS, &part, 1);
    }
    for (size_t i = 0; state && i < n; i++)
        free(state[i]);
    free(state);
    free(state_len);
    free(b.p);
    free(fds);
    return rc;
}

/* Live: which pages sent ahead stand, as KEEP records before any page. */
static int keep_write(struct mos_dump *d, struct mos_img_writer *w, const struct vma_cap *v,
                      size_t n)
{
    char path[64];
    int rc = 0, fd;

    snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)d->pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return mos_errno_status();
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = mos_precopy_keep_vma(d->pre, fd, &v[i].v);
    close(fd);
    return rc ? rc : mos_precopy_keep_put(d->pre, w);
}

void mos_dump_precopy_set(struct mos_dump *d, struct mos_precopy *p)
{
    d->pre = p;
}

/* userfaultfd(2) made inside the process (it works on the caller's memory), taken with
 * pidfd_getfd and closed there again. UFFD_USER_MODE_ONLY: what an unprivileged process may
 * make when vm.unprivileged_userfaultfd is 0, and all that write tracking needs. */
int mos_dump_userfaultfd(struct mos_dump *d, int *uffd)
{
    long fd = -1;
    int rc = mos_inject_call(d->t, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* USER_MODE_ONLY */,
                             0, 0, 0, 0, 0, &fd);

    if (rc == 0 && fd < 0)
        rc = (int)fd;
    if (rc != 0)
        return rc;
    int pidfd = (int)syscall(SYS_pidfd_open, d->pid, 0);
    *uffd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
    if (*uffd < 0)
        rc = mos_errno_status();
    if (pidfd >= 0)
        close(pidfd);
    mos_inject_call(d->t, SYS_close, fd, 0, 0, 0, 0, 0, NULL);
    return rc;
}

int mos_dump_write(struct mos_dump *d, struct mos_img_io *io)
{
    struct mos_img_writer w = {.io = io};
    struct memfd_objs objs = {0};
    struct vma_cap *vmas = NULL;
    size_t nvmas = 0;
    uint64_t t0 = mos_clock_now_ns(), t1;
    struct dump_state *s = calloc(1, sizeof(*s));
    int rc;

    if (!s)
        return -ENOMEM;
    rc = state_gather(d, s);
    /* VMAs after the signal calls, whose scratch page is gone again by then. */
    if (rc == 0)
        rc = vmas_capture(d, &vmas, &nvmas);
    if (rc == 0)
        rc = put_meta(&w, s, vmas, nvmas);
    if (rc == 0)
        rc = put_fds(d, &w, &objs);
    for (size_t i = 0; i < nvmas && rc == 0; i++)
        if (vmas[i].v.kind == MOS_VMA_MEMFD)
            rc = mos_memfd_take_map(&objs, d->pid, vmas[i].v.start, vmas[i].v.end,
                                    vmas[i].v.ino, vmas[i].path);
    if (rc == 0)
        rc = mos_memfds_put(&objs, &w, d->pid);
    mos_memfds_free(&objs);
    if (rc == 0 && d->pre)
        rc = keep_write(d, &w, vmas, nvmas);
    t1 = mos_clock_now_ns();
    d->stats.state_ns = t1 - t0;
    if (rc == 0)
        rc = threads_rest(d);
    if (rc == 0)
        rc = pages_write(d, &w, vmas, nvmas);
    if (rc == 0)
        rc = mos_img_put_end(&w);
    d->stats.pages_ns = mos_clock_now_ns() - t1;
    d->stats.pages = w.pages;
    d->stats.bytes = w.bytes;
    if (rc != 0 && rc != MOS_E_NOT_MIGRATABLE)
        mos_err("migrate", "pid %d: writing the image failed: %s", (int)d->pid,
                mos_strerror(rc));
    free(vmas);
    if (s)
        free(s->threads);
    free(s);
    return rc;
}
