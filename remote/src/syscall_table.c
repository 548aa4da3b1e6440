/* The one table that classifies every x86-64 system call for a guest (see mos/forward.h) and
 * describes how the arguments of forwarded calls travel. A call not named here is "home": it
 * cannot run away from home, so the job goes home for it. */
#include "forward_priv.h"

#include <asm/ioctls.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <termios.h>

#define V {ARG_VAL, 0, 0}
#define FD {ARG_FD, 0, 0}
#define PATH {ARG_PATH, 0, 0}
#define IO_IN(r) {ARG_IO_IN, r, 0}
#define IO_OUT(r) {ARG_IO_OUT, r, 0}
#define IN_LEN(r) {ARG_IN_LEN, r, 0}
#define IN_FIX(n) {ARG_IN_FIX, 0, n}
#define OUT_FIX(n) {ARG_OUT_FIX, 0, n}
#define INOUT_FIX(n) {ARG_INOUT_FIX, 0, n}
#define INOUT_ARR(r, n) {ARG_INOUT_ARR, r, n}
#define OUT_ARR_RET(r, n) {ARG_OUT_ARR_RET, r, n}
#define OUT_DEREF(r) {ARG_OUT_DEREF, r, 0}

#define LOCAL(n) {.name = n, .cls = MOS_SYS_LOCAL}
#define VIRT(n) {.name = n, .cls = MOS_SYS_VIRTUAL}
#define FWD(n, ...) {.name = n, .cls = MOS_SYS_FORWARD, .args = {__VA_ARGS__}}
#define HOME(n) {.name = n, .cls = MOS_SYS_HOME}

/* Sizes of the x86-64 kernel structures that travel. */
#define SZ_STAT 144
#define SZ_STATX 256
#define SZ_STATFS 120
#define SZ_RUSAGE 144
#define SZ_UTSNAME 390
#define SZ_FDSET 128
#define SZ_TIMEVAL 16
#define SZ_TIMESPEC 16
#define SZ_POLLFD 8
#define SZ_EPOLL_EVENT 12
#define SZ_FLOCK 32
#define SZ_SIGSET 8

static const struct fwd_sys_entry sys_table[FWD_SYSCALL_MAX] = {
    /* memory, signals' own state, time, scheduling: local to the node the guest runs on */
    [SYS_brk] = LOCAL("brk"),
    [SYS_mmap] = HOME("mmap"), /* anonymous maps are allowed by the filter; file maps go home */
    [SYS_munmap] = LOCAL("munmap"),
    [SYS_mprotect] = LOCAL("mprotect"),
    [SYS_mremap] = LOCAL("mremap"),
    [SYS_madvise] = LOCAL("madvise"),
    [SYS_mincore] = LOCAL("mincore"),
    [SYS_mlock] = LOCAL("mlock"),
    [SYS_munlock] = LOCAL("munlock"),
    [SYS_msync] = LOCAL("msync"),
    [SYS_rt_sigaction] = LOCAL("rt_sigaction"),
    [SYS_rt_sigprocmask] = LOCAL("rt_sigprocmask"),
    [SYS_rt_sigreturn] = LOCAL("rt_sigreturn"),
    [SYS_rt_sigpending] = LOCAL("rt_sigpending"),
    [SYS_rt_sigsuspend] = LOCAL("rt_sigsuspend"),
    [SYS_rt_sigtimedwait] = LOCAL("rt_sigtimedwait"),
    [SYS_sigaltstack] = LOCAL("sigaltstack"),
    [SYS_pause] = LOCAL("pause"),
    [SYS_alarm] = LOCAL("alarm"),
    [SYS_setitimer] = LOCAL("setitimer"),
    [SYS_getitimer] = LOCAL("getitimer"),
    [SYS_futex] = LOCAL("futex"),
    [SYS_nanosleep] = LOCAL("nanosleep"),
    [SYS_clock_nanosleep] = LOCAL("clock_nanosleep"),
    [SYS_clock_gettime] = LOCAL("clock_gettime"),
    [SYS_clock_getres] = LOCAL("clock_getres"),
    [SYS_gettimeofday] = LOCAL("gettimeofday"),
    [SYS_time] = LOCAL("time"),
    [SYS_times] = LOCAL("times"),
    [SYS_sched_yield] = LOCAL("sched_yield"),
    /* a tid the program knows (glibc's cached one) names a local thread: supervisor.c */
    [SYS_sched_getaffinity] = VIRT("sched_getaffinity"),
    [SYS_sched_setaffinity] = VIRT("sched_setaffinity"),
    [SYS_getcpu] = LOCAL("getcpu"),
    [SYS_getrandom] = LOCAL("getrandom"),
    [SYS_exit] = LOCAL("exit"),
    [SYS_exit_group] = LOCAL("exit_group"),
    [SYS_arch_prctl] = LOCAL("arch_prctl"),
    [SYS_set_tid_address] = LOCAL("set_tid_address"),
    [SYS_set_robust_list] = LOCAL("set_robust_list"),
    [SYS_get_robust_list] = LOCAL("get_robust_list"),
    [SYS_rseq] = LOCAL("rseq"),
    [SYS_restart_syscall] = LOCAL("restart_syscall"),
    [SYS_prlimit64] = LOCAL("prlimit64"),
    [SYS_getrlimit] = LOCAL("getrlimit"),
    [SYS_setrlimit] = LOCAL("setrlimit"),
    [SYS_getrusage] = LOCAL("getrusage"),
    [SYS_sysinfo] = LOCAL("sysinfo"),
    [SYS_membarrier] = LOCAL("membarrier"),
    /* the job runs as its owner's uid on every node, so these answer the same everywhere */
    [SYS_getuid] = LOCAL("getuid"),
    [SYS_geteuid] = LOCAL("geteuid"),
    [SYS_getgid] = LOCAL("getgid"),
    [SYS_getegid] = LOCAL("getegid"),
    [SYS_getresuid] = LOCAL("getresuid"),
    [SYS_getresgid] = LOCAL("getresgid"),
    [SYS_getgroups] = LOCAL("getgroups"),

    /* the home identity */
    [SYS_getpid] = VIRT("getpid"),
    [SYS_gettid] = VIRT("gettid"),
    [SYS_getppid] = VIRT("getppid"),
    [SYS_kill] = VIRT("kill"),     /* to itself: local; to others: the deputy (supervisor.c) */
    [SYS_tgkill] = VIRT("tgkill"), /* raise(), pthread_kill(): to its threads local */
    [SYS_tkill] = VIRT("tkill"),

    /* descriptors: the job's open files live at home */
    [SYS_read] = FWD("read", FD, IO_OUT(2), V),
    [SYS_write] = FWD("write", FD, IO_IN(2), V),
    [SYS_pread64] = FWD("pread64", FD, IO_OUT(2), V, V),
    [SYS_pwrite64] = FWD("pwrite64", FD, IO_IN(2), V, V),
    [SYS_readv] = FWD("readv"), /* iovec calls become read/write in the supervisor */
    [SYS_writev] = FWD("writev"),
    [SYS_preadv] = FWD("preadv"),
    [SYS_pwritev] = FWD("pwritev"),
    [SYS_preadv2] = FWD("preadv2"),
    [SYS_pwritev2] = FWD("pwritev2"),
    [SYS_close] = FWD("close", FD),
    [SYS_lseek] = FWD("lseek", FD, V, V),
    [SYS_fstat] = FWD("fstat", FD, OUT_FIX(SZ_STAT)),
    [SYS_fstatfs] = FWD("fstatfs", FD, OUT_FIX(SZ_STATFS)),
    [SYS_ioctl] = FWD("ioctl", FD, V, V), /* layout by command: fwd_layout */
    [SYS_fcntl] = FWD("fcntl", FD, V, V), /* layout by command: fwd_layout */
    [SYS_flock] = FWD("flock", FD, V),
    [SYS_fsync] = FWD("fsync", FD),
    [SYS_fdatasync] = FWD("fdatasync", FD),
    [SYS_ftruncate] = FWD("ftruncate", FD, V),
    [SYS_fallocate] = FWD("fallocate", FD, V, V, V),
    [SYS_fadvise64] = FWD("fadvise64", FD, V, V, V),
    [SYS_getdents64] = FWD("getdents64", FD, IO_OUT(2), V),
    [SYS_dup] = FWD("dup", FD),
    [SYS_dup2] = FWD("dup2", FD, FD),
    [SYS_dup3] = FWD("dup3", FD, FD, V),
    [SYS_pipe] = FWD("pipe", OUT_FIX(8)),
    [SYS_pipe2] = FWD("pipe2", OUT_FIX(8), V),
    [SYS_sendfile] = FWD("sendfile", FD, FD, INOUT_FIX(8), V),
    [SYS_fchdir] = FWD("fchdir", FD),
    [SYS_fchmod] = FWD("fchmod", FD, V),
    [SYS_fchown] = FWD("fchown", FD, V, V),
    [SYS_poll] = FWD("poll", INOUT_ARR(1, SZ_POLLFD), V, V),
    [SYS_ppoll] = FWD("ppoll", INOUT_ARR(1, SZ_POLLFD), V, IN_FIX(SZ_TIMESPEC), IN_FIX(SZ_SIGSET), V),
    [SYS_select] = FWD("select", V, INOUT_FIX(SZ_FDSET), INOUT_FIX(SZ_FDSET), INOUT_FIX(SZ_FDSET),
                       INOUT_FIX(SZ_TIMEVAL)),
    [SYS_pselect6] = FWD("pselect6", V, INOUT_FIX(SZ_FDSET), INOUT_FIX(SZ_FDSET),
                         INOUT_FIX(SZ_FDSET), INOUT_FIX(SZ_TIMESPEC), V),
    [SYS_epoll_create] = FWD("epoll_create", V),
    [SYS_epoll_create1] = FWD("epoll_create1", V),
    [SYS_epoll_ctl] = FWD("epoll_ctl", FD, V, FD, IN_FIX(SZ_EPOLL_EVENT)),
    [SYS_epoll_wait] = FWD("epoll_wait", FD, OUT_ARR_RET(2, SZ_EPOLL_EVENT), V, V),
    [SYS_epoll_pwait] = FWD("epoll_pwait", FD, OUT_ARR_RET(2, SZ_EPOLL_EVENT), V, V,
                            IN_FIX(SZ_SIGSET), V),
    [SYS_eventfd2] = FWD("eventfd2", V, V),

    /* sockets */
    [SYS_socket] = FWD("socket", V, V, V),
    [SYS_socketpair] = FWD("socketpair", V, V, V, OUT_FIX(8)),
    [SYS_connect] = FWD("connect", FD, IN_LEN(2), V),
    [SYS_bind] = FWD("bind", FD, IN_LEN(2), V),
    [SYS_listen] = FWD("listen", FD, V),
    [SYS_accept] = FWD("accept", FD, OUT_DEREF(2), INOUT_FIX(4)),
    [SYS_accept4] = FWD("accept4", FD, OUT_DEREF(2), INOUT_FIX(4), V),
    [SYS_getsockname] = FWD("getsockname", FD, OUT_DEREF(2), INOUT_FIX(4)),
    [SYS_getpeername] = FWD("getpeername", FD, OUT_DEREF(2), INOUT_FIX(4)),
    [SYS_sendto] = FWD("sendto", FD, IO_IN(2), V, V, IN_LEN(5), V),
    [SYS_recvfrom] = FWD("recvfrom", FD, IO_OUT(2), V, V, OUT_DEREF(5), INOUT_FIX(4)),
    [SYS_setsockopt] = FWD("setsockopt", FD, V, V, IN_LEN(4), V),
    [SYS_getsockopt] = FWD("getsockopt", FD, V, V, OUT_DEREF(4), INOUT_FIX(4)),
    [SYS_shutdown] = FWD("shutdown", FD, V),

    /* paths, cwd, the file system as home sees it */
    [SYS_open] = FWD("open", PATH, V, V),
    [SYS_openat] = FWD("openat", FD, PATH, V, V),
    [SYS_creat] = FWD("creat", PATH, V),
    [SYS_stat] = FWD("stat", PATH, OUT_FIX(SZ_STAT)),
    [SYS_lstat] = FWD("lstat", PATH, OUT_FIX(SZ_STAT)),
    [SYS_newfstatat] = FWD("newfstatat", FD, PATH, OUT_FIX(SZ_STAT), V),
    [SYS_statx] = FWD("statx", FD, PATH, V, V, OUT_FIX(SZ_STATX)),
    [SYS_statfs] = FWD("statfs", PATH, OUT_FIX(SZ_STATFS)),
    [SYS_access] = FWD("access", PATH, V),
    [SYS_faccessat] = FWD("faccessat", FD, PATH, V),
    [SYS_faccessat2] = FWD("faccessat2", FD, PATH, V, V),
    [SYS_readlink] = FWD("readlink", PATH, IO_OUT(2), V),
    [SYS_readlinkat] = FWD("readlinkat", FD, PATH, IO_OUT(3), V),
    [SYS_getcwd] = FWD("getcwd", IO_OUT(1), V),
    [SYS_chdir] = FWD("chdir", PATH),
    [SYS_mkdir] = FWD("mkdir", PATH, V),
    [SYS_mkdirat] = FWD("mkdirat", FD, PATH, V),
    [SYS_rmdir] = FWD("rmdir", PATH),
    [SYS_unlink] = FWD("unlink", PATH),
    [SYS_unlinkat] = FWD("unlinkat", FD, PATH, V),
    [SYS_rename] = FWD("rename", PATH, PATH),
    [SYS_renameat] = FWD("renameat", FD, PATH, FD, PATH),
    [SYS_renameat2] = FWD("renameat2", FD, PATH, FD, PATH, V),
    [SYS_link] = FWD("link", PATH, PATH),
    [SYS_linkat] = FWD("linkat", FD, PATH, FD, PATH, V),
    [SYS_symlink] = FWD("symlink", PATH, PATH),
    [SYS_symlinkat] = FWD("symlinkat", PATH, FD, PATH),
    [SYS_chmod] = FWD("chmod", PATH, V),
    [SYS_fchmodat] = FWD("fchmodat", FD, PATH, V),
    [SYS_chown] = FWD("chown", PATH, V, V),
    [SYS_lchown] = FWD("lchown", PATH, V, V),
    [SYS_fchownat] = FWD("fchownat", FD, PATH, V, V, V),
    [SYS_truncate] = FWD("truncate", PATH, V),
    [SYS_utimensat] = FWD("utimensat", FD, PATH, IN_FIX(2 * SZ_TIMESPEC), V),
    [SYS_umask] = FWD("umask", V),
    [SYS_uname] = FWD("uname", OUT_FIX(SZ_UTSNAME)),
    [SYS_wait4] = FWD("wait4", V, OUT_FIX(4), V, OUT_FIX(SZ_RUSAGE)),

    /* cannot run away from home */
    [SYS_fork] = HOME("fork"),
    [SYS_vfork] = HOME("vfork"),
    [SYS_clone] = HOME("clone"),
    [SYS_clone3] = HOME("clone3"),
    [SYS_execve] = HOME("execve"),
    [SYS_execveat] = HOME("execveat"),
    [SYS_ptrace] = HOME("ptrace"),
    [SYS_shmget] = HOME("shmget"),
    [SYS_shmat] = HOME("shmat"),
    [SYS_io_uring_setup] = HOME("io_uring_setup"),
};

const struct fwd_sys_entry *fwd_sys_lookup(long nr)
{
    if (nr < 0 || nr >= FWD_SYSCALL_MAX)
        return NULL;
    return &sys_table[nr];
}

enum mos_sys_class mos_syscall_class(long nr)
{
    const struct fwd_sys_entry *e = fwd_sys_lookup(nr);

    return e && e->name ? (enum mos_sys_class)e->cls : MOS_SYS_HOME;
}

const char *mos_syscall_name(long nr)
{
    const struct fwd_sys_entry *e = fwd_sys_lookup(nr);

    return e && e->name ? e->name : "?";
}

const char *mos_sys_class_name(enum mos_sys_class cls)
{
    static const char *const names[] = {"home", "local", "forward", "virtual"};

    return (unsigned)cls < 4 ? names[cls] : "?";
}

/* ioctl: only commands whose argument layout is known travel; a terminal's state and window
 * size are what programs ask of their home terminal. */
static int ioctl_layout(uint64_t cmd, struct fwd_arg_spec out[FWD_NARGS])
{
    struct fwd_arg_spec arg;

    switch ((unsigned)cmd) {
    case TCGETS: arg = (struct fwd_arg_spec)OUT_FIX(sizeof(struct termios)); break;
    case TCSETS:
    case TCSETSW:
    case TCSETSF: arg = (struct fwd_arg_spec)IN_FIX(sizeof(struct termios)); break;
    case TIOCGWINSZ: arg = (struct fwd_arg_spec)OUT_FIX(8); break;
    case TIOCSWINSZ: arg = (struct fwd_arg_spec)IN_FIX(8); break;
    case TIOCGPGRP:
    case FIONREAD: arg = (struct fwd_arg_spec)OUT_FIX(4); break;
    case TIOCSPGRP:
    case FIONBIO: arg = (struct fwd_arg_spec)IN_FIX(4); break;
    case FIOCLEX:
    case FIONCLEX: arg = (struct fwd_arg_spec)V; break;
    default: return -ENOTTY;
    }
    out[2] = arg;
    return 0;
}

static void fcntl_layout(uint64_t cmd, struct fwd_arg_spec out[FWD_NARGS])
{
    switch ((int)cmd) {
    case F_GETLK:
    case F_SETLK:
    case F_SETLKW:
    case F_OFD_GETLK:
    case F_OFD_SETLK:
    case F_OFD_SETLKW: out[2] = (struct fwd_arg_spec)INOUT_FIX(SZ_FLOCK); break;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: out[2] = (struct fwd_arg_spec)FD; break;
    default: out[2] = (struct fwd_arg_spec)V; break;
    }
}

int fwd_layout(long nr, const uint64_t args[FWD_NARGS], struct fwd_arg_spec out[FWD_NARGS])
{
    const struct fwd_sys_entry *e = fwd_sys_lookup(nr);

    if (nr == SYS_kill || nr == SYS_tgkill || nr == SYS_tkill) {
        /* virtual to the job's own threads, forwarded to any other process */
        memset(out, 0, sizeof(struct fwd_arg_spec) * FWD_NARGS);
        return 0;
    }
    if (!e || !e->name || e->cls != MOS_SYS_FORWARD)
        return -ENOSYS;
    memcpy(out, e->args, sizeof(e->args));
    if (nr == SYS_ioctl)
        return ioctl_layout(args[1], out);
    if (nr == SYS_fcntl)
        fcntl_layout(args[1], out);
    if (nr == SYS_readv || nr == SYS_writev || nr == SYS_preadv || nr == SYS_pwritev ||
        nr == SYS_preadv2 || nr == SYS_pwritev2)
        return -ENOSYS; /* rewritten by the supervisor before it gets here */
    return 0;
}

/* ---- counters ---------------------------------------------------------------------------- */

static uint64_t stat_counts[5];

void fwd_stats_add(int which)
{
    if (which >= 0 && which < 5)
        __atomic_add_fetch(&stat_counts[which], 1, __ATOMIC_RELAXED);
}

void mos_forward_stats_get(struct mos_forward_stats *out)
{
    out->forwarded = __atomic_load_n(&stat_counts[FWD_STAT_FORWARDED], __ATOMIC_RELAXED);
    out->virtual_calls = __atomic_load_n(&stat_counts[FWD_STAT_VIRTUAL], __ATOMIC_RELAXED);
    out->home_calls = __atomic_load_n(&stat_counts[FWD_STAT_HOME], __ATOMIC_RELAXED);
    out->refused = __atomic_load_n(&stat_counts[FWD_STAT_REFUSED], __ATOMIC_RELAXED);
    out->interrupted = __atomic_load_n(&stat_counts[FWD_STAT_INTERRUPTED], __ATOMIC_RELAXED);
}
