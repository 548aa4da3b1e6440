/* Remote execution: a guest's system calls, trapped on the node where it runs, and served at
 * its home node by the deputy.
 *
 * The guest runs under a seccomp filter built from one table (syscall_table.c) that sorts every
 * x86-64 system call into four classes:
 *   local     runs on the guest's node, allowed inside the BPF filter (memory, signal masks,
 *             futex, clocks, exit, clone of a thread...);
 *   forward   sent to the deputy with its buffers and executed there (files, sockets, paths,
 *             cwd, pipes, identity and time-zone queries, kill of other processes...);
 *   virtual   answered by the supervisor from the home identity (getpid, getppid, gettid;
 *             kill/tgkill/tkill to the job's own threads);
 *   home      cannot run remotely (fork, vfork, clone of a process, execve, file-backed
 *             mmap...): handed to the caller's policy, which brings the job home first.
 *
 * The supervisor (on the guest's node) receives each trapped call (SECCOMP_RET_USER_NOTIF),
 * copies the call's input buffers out of the guest with process_vm_readv, sends a request over
 * a byte stream to the deputy, writes the output buffers back with process_vm_writev, checks
 * SECCOMP_IOCTL_NOTIF_ID_VALID and replies. The deputy executes requests with the job's home
 * fds, cwd and identity, never trusting the request: it rebuilds the argument layout from its
 * own copy of the table and rejects anything that does not match.
 *
 * A guest may have many threads: calls of several threads are in flight at once, each with an
 * id, and the deputy runs each on a thread of its own, so a call blocked at home holds up no
 * other (remote/README.md, "Concurrent calls", "Threads"). */
#ifndef MOS_FORWARD_H
#define MOS_FORWARD_H

#include "mos/seal.h"

#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum mos_sys_class {
    MOS_SYS_HOME = 0, /* default for anything the table does not name */
    MOS_SYS_LOCAL,
    MOS_SYS_FORWARD,
    MOS_SYS_VIRTUAL,
};

/* The class of syscall number nr (x86-64), and its name ("?" when unknown). */
enum mos_sys_class mos_syscall_class(long nr);
const char *mos_syscall_name(long nr);
const char *mos_sys_class_name(enum mos_sys_class cls);

/* Install the guest filter in the calling process (sets no_new_privs). Returns the seccomp
 * listener fd, to be handed to the supervisor (SCM_RIGHTS or pidfd_getfd), or -errno. After it
 * returns, every non-local system call of this process waits for the supervisor. */
int mos_guest_filter_install(void);

/* The same filter as data, for a restorer that installs it by injection as its last call
 * (mos_restore_opts.guest_filter): fills insns (at most max), returns the instruction count
 * or -E2BIG; *flags receives the seccomp() flags (a new listener among them). */
#define MOS_GUEST_FILTER_MAX 256
struct sock_filter;
int mos_guest_filter_program(struct sock_filter *insns, unsigned max, unsigned long *flags);

/* Supervisor side: take the listener fd that guest installed (its fd number guest_fd) with
 * pidfd_getfd. Needs ptrace access to the guest (its parent, or root). Returns the new fd. */
int mos_supervisor_take_listener(pid_t guest, int guest_fd);

/* Identity the deputy presents to the guest. */
struct mos_home_identity {
    pid_t pid;   /* the job's pid at home: getpid(), and gettid() of its main thread */
    pid_t ppid;  /* getppid() */
};

/* What the supervisor does with a home-class call. Return 1 if the call was handled (replied
 * or the guest disposed of), 0 to refuse it with -ENOSYS, or MOS_HOME_CALL_DETACH to stop
 * serving at once with the call still pending (mos_supervisor_run returns
 * MOS_SUPERVISOR_DETACHED): the caller then takes the guest home and answers the call with
 * mos_supervisor_answer, -ERESTARTNOINTR once the freeze has begun, so that it runs again,
 * natively, where the guest is restored. */
#define MOS_HOME_CALL_DETACH 2
struct mos_supervisor;

/* What a supervisor counts for one guest, in a struct its caller owns (so the counts of a
 * guest served in several runs, after a failed move, add up): calls by class, the latency of
 * forwarded calls from their notification to their reply (a histogram with fixed bounds, for
 * Prometheus), calls the supervisor refused or could not carry (a home call refused, a buffer
 * it could not read or write; not a call that failed at home as it would natively), and the
 * bytes of calls and results on the deputy link. Every forwarded call counted is in the
 * histogram once: the buckets add up to calls[MOS_CALLS_FORWARD]. */
enum mos_call_kind { MOS_CALLS_FORWARD, MOS_CALLS_VIRTUAL, MOS_CALLS_HOME, MOS_CALL_KINDS };
#define MOS_CALL_LATENCY_BOUNDS 14
/* The buckets' upper bounds in nanoseconds (50 us .. 1 s); bucket MOS_CALL_LATENCY_BOUNDS
 * holds what is slower than the last. */
extern const uint64_t mos_call_latency_le_ns[MOS_CALL_LATENCY_BOUNDS];
struct mos_call_stats {
    uint64_t calls[MOS_CALL_KINDS];
    uint64_t errors;
    uint64_t bytes;
    uint64_t latency_sum_ns;
    uint64_t latency[MOS_CALL_LATENCY_BOUNDS + 1]; /* per bucket, not cumulative */
};
/* The bucket of a latency, and a forwarded call answered after ns (counted and bucketed). */
unsigned mos_call_latency_bucket(uint64_t ns);
void mos_call_stats_forwarded(struct mos_call_stats *s, uint64_t ns);
/* A thread restored with a fresh tid: the tid its program knows (the one glibc cached where
 * the thread was made) and the one it has here. */
struct mos_guest_tid {
    pid_t program;
    pid_t local;
};

/* Calls a move took back from home (on_ctl while they were there, see below): held, not
 * answered. The mover answers each -MOS_ERESTARTNOINTR once its freeze has interrupted the
 * call's thread (mos_dump_opts.on_interrupt, seccomp_notif.pid), so they run again wherever
 * the guest goes, and takes it off the list; a list still full when mos_supervisor_run starts again (the move failed before)
 * is sent to the deputy again. */
#define MOS_HELD_CALLS_MAX 256
struct mos_held_calls {
    size_t count;
    struct seccomp_notif calls[MOS_HELD_CALLS_MAX];
};

struct mos_supervisor_ops {
    int (*home_call)(struct mos_supervisor *sup, uint64_t notif_id, long nr, void *arg);
    /* A descriptor the caller wants watched while the guest is served (-1: none; 0 is taken
     * as none too), and what to do when it is readable: return 1 to stop serving between two
     * calls (the guest stays, frozen in no call of ours), 0 to go on, < 0 to fail. When it
     * becomes readable while calls are at home, no new call is taken and those calls are
     * interrupted at home (INTERRUPT); one that ends anyway is answered as usual, one that was
     * interrupted goes to held (without held, it is sent again); on_ctl runs once none is
     * left at home. */
    int ctl_fd;
    int (*on_ctl)(struct mos_supervisor *sup, void *arg);
    void *arg;
    /* Where the calls are counted (NULL: nowhere), and on_tick(arg) called every tick_ms
     * (0: never) while the guest is served, between calls, to report them. */
    struct mos_call_stats *stats;
    int tick_ms;
    void (*on_tick)(void *arg);
    /* Threads whose local tid is not their program's: gettid answers the program's tid, and
     * tgkill/tkill naming it reach the local thread. Threads not listed are known by their
     * local tid. The table must outlive the serving. */
    const struct mos_guest_tid *tids;
    size_t ntids;
    struct mos_held_calls *held;
};

/* One end of a deputy link (or an exec link, mos/exec_link.h): its TCP stream and the keys of
 * its session. Every frame after the token proof travels sealed (mos/seal.h records, channel
 * MOS_SEAL_LINK): the calls, their data and the results can be neither read nor changed on the
 * way, nor replayed. The struct is the link: it is kept (not copied) while the link is used,
 * as its counters move with every frame. */
struct mos_link {
    int fd;
    struct mos_seal seal;
    uint8_t *out;   /* one sealed record going out */
    size_t out_cap;
};
/* Take fd as a link end with the keys of session (mos_auth's secret); is_supervisor: this end
 * connected (the supervisor's or the relay's). */
void mos_link_init(struct mos_link *l, int fd, const uint8_t session[MOS_AUTH_SESSION_BYTES],
                   int is_supervisor);
/* Both ends of a fresh link over a socketpair (tests, benchmarks, a guest run in this process
 * tree). 0 or -errno. */
int mos_link_pair(struct mos_link *supervisor, struct mos_link *deputy);
/* Close the stream, forget the keys; l->fd is -1 after. A link with fd -1 is allowed. */
void mos_link_close(struct mos_link *l);

/* Serve guest pid (whose seccomp listener is listener_fd) until it exits, forwarding calls
 * over the deputy link (kept by pointer: a detached guest is served again on the same link). The supervisor must be able to read and write the guest's
 * memory (its parent, or root). On return *exit_status holds the guest's wait status. Returns 0
 * when the guest exited, MOS_SUPERVISOR_DETACHED when on_ctl asked to stop (the guest lives on
 * and may be served again), MOS_E_PEER_GONE if the deputy went away (the guest is then killed),
 * or another negative status. */
#define MOS_SUPERVISOR_DETACHED 1
int mos_supervisor_run(pid_t guest, int listener_fd, struct mos_link *deputy,
                       const struct mos_supervisor_ops *ops, int *exit_status);

/* The thread whose call a home_call policy is deciding on. */
pid_t mos_supervisor_caller(const struct mos_supervisor *sup);
/* Reply to a pending notification (for home_call policies). A call whose thread died
 * meanwhile needs no answer: 0, as for one answered. */
int mos_supervisor_reply(struct mos_supervisor *sup, uint64_t notif_id, int64_t val, int error);
/* The same outside mos_supervisor_run, on the listener: the call fails with error (< 0). */
int mos_supervisor_answer(int listener_fd, uint64_t notif_id, int error);
#define MOS_ERESTARTNOINTR 513 /* the kernel's: the call is made again, whatever the handlers */

/* Deputy: serve requests arriving on the connected stream fd until the supervisor reports the
 * guest's exit. Signals listed in forward_signals that arrive at the deputy (Ctrl-C at home...)
 * are passed to the guest. *exit_status receives the guest's wait status. Returns 0, or
 * MOS_E_PEER_GONE when the supervisor vanished without reporting an exit (the node hosting the
 * guest died), or MOS_E_PROTO for a malformed message. */
struct mos_deputy_opts {
    struct mos_home_identity identity;
    const int *forward_signals; /* 0-terminated; NULL: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 */
    int reserved_fd_min;        /* the deputy's own fds are >= this; the guest may not touch them */
    pid_t shell;                /* the job's pid at home while it is away (its shell, which
                                   blocks every signal), 0: none. Signals queued there are
                                   passed to the guest, the shell's death as SIGKILL. */
};
int mos_deputy_serve(struct mos_link *link, const struct mos_deputy_opts *opts, int *exit_status);
/* mos_deputy_serve's return when the supervisor says the guest is moving to another node: the
 * deputy is to wait for the new supervisor's link (or for MOS_LINK_RESUME on this one). */
#define MOS_DEPUTY_MOVING 1

/* Supervisor to deputy, outside any call: the guest is about to move (the deputy stops serving
 * this link and waits for the next), or the move failed and this link serves again. */
enum mos_link_notice { MOS_LINK_MOVING = 1, MOS_LINK_RESUME = 2 };
int mos_deputy_link_notify(struct mos_link *link, enum mos_link_notice what);
/* Deputy side, between links: read one notice from the old link (0 and *what on success,
 * MOS_E_PEER_GONE at EOF, MOS_E_PROTO for anything else). */
int mos_deputy_link_read_notice(struct mos_link *link, enum mos_link_notice *what);

/* Run fn(arg) in a new child process as a guest whose system calls are served through the
 * connected deputy_fd, supervising it from the calling process until it exits. The child
 * closes every descriptor, installs the filter, and dies with its supervisor. Used for tests,
 * benchmarks and guests that are started rather than restored. Returns 0 with the guest's wait
 * status in *status, or a negative status. */
int mos_forward_run_guest(struct mos_link *deputy, int (*fn)(void *), void *arg, int *status);

/* Move a deputy's link fd to the top of the fd table (below RLIMIT_NOFILE), a range the guest's
 * calls may not touch; *reserved_min receives the range's start. 0 (link->fd is the new fd)
 * or a status. */
int mos_deputy_link_prepare(struct mos_link *link, int *reserved_min);
/* The start of that range: RLIMIT_NOFILE's soft limit (at most 1024) less 8. */
int mos_deputy_reserved_min(void);

/* The deputy link: TCP between a supervisor and the deputy, authenticated by a per-job token
 * that both ends prove before anything else with the challenge-response of mos/auth.h (mosd
 * gives the token to both over authenticated paths).
 * listen: on a numeric address and *port (0: any; *port receives the one bound); returns the
 * listening fd.
 * accept: waits for a supervisor that proves the token (others are refused and logged) and
 * fills *link; connect: fills *link. Both give the link the keys of the session just proved.
 * 0 / -errno / MOS_E_AUTH / -ETIMEDOUT. */
#define MOS_LINK_TOKEN_BYTES 32
int mos_deputy_link_listen(const char *addr, int *port);
int mos_deputy_link_accept(int listen_fd, const uint8_t token[MOS_LINK_TOKEN_BYTES],
                           int timeout_ms, struct mos_link *link);
int mos_deputy_link_connect(const char *addr, int port, const uint8_t token[MOS_LINK_TOKEN_BYTES],
                            int timeout_ms, struct mos_link *link);

/* Counters of one side, for mosps and benchmarks. */
struct mos_forward_stats {
    uint64_t forwarded, virtual_calls, home_calls, refused, interrupted;
};
void mos_forward_stats_get(struct mos_forward_stats *out);

#endif
