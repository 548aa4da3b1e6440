/* The deputy: the home-side half of a migrated job. It executes the guest's forwarded system
 * calls with the job's own descriptors, cwd and identity, and passes home signals to the guest.
 *
 * A request is never trusted: its layout is rebuilt from this side's copy of the syscall table
 * and every buffer must have exactly the direction and length that layout demands; pointers
 * from the wire are never used, only buffers the deputy owns; the deputy's own descriptors are
 * out of the guest's reach. */
#include "forward_priv.h"
#include "mos/procfs.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ERESTARTSYS 512

static volatile sig_atomic_t signal_pending[NSIG];
static volatile sig_atomic_t any_signal_pending;
static volatile sig_atomic_t link_event;

static void on_signal(int sig)
{
    signal_pending[sig] = 1;
    any_signal_pending = 1;
}

/* SIGIO on the link: it interrupts a home call that blocks (a read of the terminal...) so the
 * deputy notices when the guest's node goes away instead of waiting on home input forever. */
static void on_link_io(int sig)
{
    (void)sig;
    link_event = 1;
}

#define LINK_GONE (-100000)

struct deputy {
    int fd;
    pid_t shell;
    uint64_t shell_seen;  /* signals pending in the shell already passed on (or carried) */
    int reserved_fd_min;
    struct mos_home_identity id;
    sigset_t forwarded;   /* blocked except while waiting or executing */
    sigset_t run_mask;    /* the mask while waiting or executing */
    uint8_t *rx, *tx, *scratch;
    size_t rx_cap, tx_cap;
};

static const int default_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, 0};

static int install_handlers(struct deputy *d, const int *sigs)
{
    struct sigaction sa;
    sigset_t old;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked home call must return EINTR */
    sigemptyset(&d->forwarded);
    for (const int *s = sigs; *s; s++) {
        sigaddset(&d->forwarded, *s);
        if (sigaction(*s, &sa, NULL) != 0)
            return mos_errno_status();
    }
    sa.sa_handler = on_link_io;
    if (sigaction(SIGIO, &sa, NULL) != 0)
        return mos_errno_status();
    sigaddset(&d->forwarded, SIGIO);
    if (sigprocmask(SIG_BLOCK, &d->forwarded, &old) != 0)
        return mos_errno_status();
    d->run_mask = old;
    for (const int *s = sigs; *s; s++)
        sigdelset(&d->run_mask, *s);
    sigdelset(&d->run_mask, SIGIO);
    if (fcntl(d->fd, F_SETOWN, getpid()) != 0 ||
        fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) | O_ASYNC) != 0)
        return mos_errno_status();
    return 0;
}

/* Send every signal that arrived since the last flush, before anything else. */
static int flush_signals(struct deputy *d)
{
    if (!any_signal_pending)
        return 0;
    any_signal_pending = 0;
    for (int32_t sig = 1; sig < NSIG; sig++) {
        if (!signal_pending[sig])
            continue;
        signal_pending[sig] = 0;
        uint8_t msg[4];
        mos_put_le32(msg, (uint32_t)sig);
        int rc = fwd_send(d->fd, FWD_MSG_SIGNAL, msg, sizeof(msg));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static struct fwd_buf *find_buf(struct fwd_call *c, int argidx)
{
    for (uint8_t i = 0; i < c->nbufs; i++)
        if (c->bufs[i].argidx == argidx)
            return &c->bufs[i];
    return NULL;
}

/* The length and direction a pointer argument must have, or -1 when the request is wrong. */
static int64_t expected_len(const struct fwd_arg_spec *s, struct fwd_call *c, uint8_t *dir)
{
    uint64_t ref = c->args[s->ref];

    switch (s->kind) {
    case ARG_PATH: *dir = FWD_DIR_IN; return -2; /* checked by content */
    case ARG_IO_IN: *dir = FWD_DIR_IN; return ref <= FWD_MAX_IO ? (int64_t)ref : -1;
    case ARG_IO_OUT: *dir = FWD_DIR_OUT; return ref <= FWD_MAX_IO ? (int64_t)ref : -1;
    case ARG_IN_LEN: *dir = FWD_DIR_IN; return ref <= FWD_MAX_SMALL ? (int64_t)ref : -1;
    case ARG_IN_FIX: *dir = FWD_DIR_IN; return s->size;
    case ARG_OUT_FIX: *dir = FWD_DIR_OUT; return s->size;
    case ARG_INOUT_FIX: *dir = FWD_DIR_IN | FWD_DIR_OUT; return s->size;
    case ARG_INOUT_ARR:
    case ARG_OUT_ARR_RET:
        *dir = s->kind == ARG_INOUT_ARR ? FWD_DIR_IN | FWD_DIR_OUT : FWD_DIR_OUT;
        return ref <= FWD_MAX_SMALL / s->size ? (int64_t)(ref * s->size) : -1;
    case ARG_OUT_DEREF: {
        struct fwd_buf *lenbuf = find_buf(c, s->ref);
        uint32_t want;
        *dir = FWD_DIR_OUT;
        if (!lenbuf || lenbuf->len != 4 || !lenbuf->data)
            return -1;
        memcpy(&want, lenbuf->data, 4);
        if (want > FWD_MAX_SOCKADDR) {
            /* the kernel must not write past the buffer we hold */
            want = FWD_MAX_SOCKADDR;
            memcpy(lenbuf->data, &want, 4);
        }
        return want;
    }
    default: return -1;
    }
}

static int path_ok(const struct fwd_buf *b)
{
    return b->len >= 1 && b->len <= FWD_MAX_PATH && memchr(b->data, '\0', b->len) ==
                                                         b->data + b->len - 1;
}

/* Check a call against its layout and point its pointer arguments at the deputy's buffers.
 * Returns 0, or -errno to answer the guest with, or MOS_E_PROTO for a malformed request. */
static int prepare_call(struct deputy *d, struct fwd_call *c, uint64_t args[FWD_NARGS])
{
    struct fwd_arg_spec spec[FWD_NARGS];
    uint8_t *scratch = d->scratch;
    int used = 0, rc = fwd_layout(c->nr, c->args, spec);

    if (rc != 0)
        return rc == -ENOTTY ? -ENOTTY : -ENOSYS;
    for (int i = 0; i < FWD_NARGS; i++) {
        struct fwd_buf *b = find_buf(c, i);
        uint8_t dir = 0;
        int64_t len;

        args[i] = c->args[i];
        if (spec[i].kind == ARG_VAL || spec[i].kind == ARG_FD) {
            if (b)
                return MOS_E_PROTO;
            if (spec[i].kind == ARG_FD && (int)args[i] >= d->reserved_fd_min)
                return -EBADF;
            continue;
        }
        if (!b) {
            args[i] = 0; /* a NULL pointer travels as no buffer */
            continue;
        }
        used++;
        len = expected_len(&spec[i], c, &dir);
        if (b->dir != dir || len == -1 || (len >= 0 && b->len != (uint64_t)len) ||
            (len == -2 && !path_ok(b)))
            return MOS_E_PROTO;
        if (!(dir & FWD_DIR_IN)) {
            memset(scratch, 0, b->len);
            b->data = scratch;
            scratch += b->len;
        }
        args[i] = (uint64_t)(uintptr_t)b->data;
    }
    return used == c->nbufs ? 0 : MOS_E_PROTO;
}

/* Has the supervisor closed the link? It sends nothing while a call is outstanding, so any
 * readable state now is EOF or an error. */
static int link_closed(struct deputy *d)
{
    struct pollfd pfd = {d->fd, POLLIN, 0};
    char byte;

    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    return (pfd.revents & (POLLHUP | POLLERR)) ||
           recv(d->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Run the call with home signals unblocked; a call they interrupt reports -ERESTARTSYS. A call
 * interrupted by link activity is checked and run again (it had not done anything yet), or
 * reports LINK_GONE. */
static int64_t execute(struct deputy *d, long nr, const uint64_t a[FWD_NARGS])
{
    sigset_t saved;
    int64_t ret;

    sigprocmask(SIG_SETMASK, &d->run_mask, &saved);
    for (;;) {
        if (any_signal_pending) {
            ret = -ERESTARTSYS;
            break;
        }
        link_event = 0;
        ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (ret >= 0 || errno != EINTR) {
            ret = ret < 0 ? -errno : ret;
            break;
        }
        if (any_signal_pending) {
            ret = -ERESTARTSYS;
            break;
        }
        if (link_event && link_closed(d)) {
            ret = LINK_GONE;
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &saved, NULL);
    return ret;
}

/* Which bytes of each out-buffer go back: all of them, or as many as the call returned. */
static void collect_outputs(struct fwd_call *c, int64_t ret, struct fwd_result *res)
{
    struct fwd_arg_spec spec[FWD_NARGS];

    res->ret = ret;
    res->nbufs = 0;
    if (ret < 0 || fwd_layout(c->nr, c->args, spec) != 0)
        return;
    for (uint8_t i = 0; i < c->nbufs; i++) {
        struct fwd_buf *b = &c->bufs[i];
        uint32_t len = b->len;
        if (!(b->dir & FWD_DIR_OUT))
            continue;
        if (spec[b->argidx].kind == ARG_IO_OUT)
            len = (uint64_t)ret < len ? (uint32_t)ret : len;
        else if (spec[b->argidx].kind == ARG_OUT_ARR_RET)
            len = (uint64_t)ret * spec[b->argidx].size < len
                      ? (uint32_t)ret * spec[b->argidx].size
                      : len;
        res->bufs[res->nbufs++] = (struct fwd_buf){.argidx = b->argidx, .dir = FWD_DIR_OUT,
                                                    .len = len, .data = b->data};
    }
}

static int serve_call(struct deputy *d, size_t len)
{
    struct fwd_call call;
    struct fwd_result res;
    uint64_t args[FWD_NARGS];
    int rc;

    if (fwd_call_decode(d->rx, len, &call) != 0) {
        mos_err("deputy", "malformed call from the supervisor");
        return MOS_E_PROTO;
    }
    rc = prepare_call(d, &call, args);
    if (rc == MOS_E_PROTO) {
        mos_err("deputy", "request for %s does not match its layout", mos_syscall_name(call.nr));
        return rc;
    }
    int64_t ret = rc != 0 ? rc : execute(d, call.nr, args);
    if (ret == LINK_GONE)
        return MOS_E_PEER_GONE;
    collect_outputs(&call, ret, &res);
    rc = flush_signals(d); /* a signal that cut the call short is delivered before its result */
    if (rc != 0)
        return rc;
    ssize_t n = fwd_result_encode(&res, d->tx, d->tx_cap);
    if (n < 0)
        return (int)n;
    return fwd_send(d->fd, FWD_MSG_RESULT, d->tx, (size_t)n);
}

static const char *const pending_keys[] = {"SigPnd:", "ShdPnd:"};

/* Signals sent to the job's pid at home while it is away queue in its shell: pass on each one
 * newly pending there. A shell killed (only SIGKILL can) takes the job along; one that exited
 * was never a shell (mosd could not make one) and is not watched any more. The shell is our
 * child: WNOWAIT looks without reaping it. */
static void shell_check(struct deputy *d)
{
    siginfo_t si;
    uint64_t pending = 0;

    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)d->shell, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        si.si_pid == d->shell) {
        if (si.si_pid == d->shell && (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) &&
            si.si_status > 0 && si.si_status < NSIG) {
            signal_pending[si.si_status] = 1;
            any_signal_pending = 1;
        }
        d->shell = 0;
        return;
    }
    if (mos_proc_status_masks(d->shell, pending_keys, 2, &pending) <= 0)
        return;
    for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
        if ((pending & ~d->shell_seen) & (1ull << (sig - 1))) {
            signal_pending[sig] = 1;
            any_signal_pending = 1;
        }
    d->shell_seen |= pending;
}

#define SHELL_CHECK_NS 250000000L

static int wait_readable(struct deputy *d)
{
    struct pollfd pfd = {d->fd, POLLIN, 0};
    struct timespec every = {0, SHELL_CHECK_NS};

    for (;;) {
        if (d->shell > 0)
            shell_check(d);
        int rc = flush_signals(d);
        if (rc != 0)
            return rc;
        rc = ppoll(&pfd, 1, d->shell > 0 ? &every : NULL, &d->run_mask);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -errno;
    }
}

static int serve_loop(struct deputy *d, int *exit_status)
{
    uint8_t ids[8];
    int rc;

    mos_put_le32(ids, (uint32_t)d->id.pid);
    mos_put_le32(ids + 4, (uint32_t)d->id.ppid);
    rc = fwd_send(d->fd, FWD_MSG_HELLO, ids, sizeof(ids));

    while (rc == 0) {
        uint16_t type;
        size_t len;

        rc = wait_readable(d);
        if (rc == 0)
            rc = fwd_recv(d->fd, &type, &d->rx, &d->rx_cap, &len);
        if (rc != 0)
            break;
        if (type == FWD_MSG_CALL) {
            rc = serve_call(d, len);
        } else if (type == FWD_MSG_EXIT && len == 4) {
            *exit_status = (int32_t)mos_get_le32(d->rx);
            return 0;
        } else if (type == FWD_MSG_NOTICE && len == 4 && mos_get_le32(d->rx) == MOS_LINK_MOVING) {
            return MOS_DEPUTY_MOVING;
        } else if (type == FWD_MSG_NOTICE && len == 4 && mos_get_le32(d->rx) == MOS_LINK_RESUME) {
            continue; /* a move that failed before this link was left: nothing to do */
        } else {
            mos_err("deputy", "unexpected message type %u from the supervisor", type);
            rc = MOS_E_PROTO;
        }
    }
    if (rc == MOS_E_TRUNCATED || rc == -ECONNRESET || rc == -EPIPE)
        rc = MOS_E_PEER_GONE;
    return rc;
}

int mos_deputy_serve(int fd, const struct mos_deputy_opts *opts, int *exit_status)
{
    struct deputy d = {.fd = fd, .id = opts->identity, .shell = opts->shell};

    /* what is pending in the shell already travelled with the job's image */
    if (d.shell > 0)
        mos_proc_status_masks(d.shell, pending_keys, 2, &d.shell_seen);
    sigset_t saved;
    int rc;

    d.reserved_fd_min = opts->reserved_fd_min > 0 ? opts->reserved_fd_min : fd;
    if (fd < d.reserved_fd_min) {
        mos_err("deputy", "link fd %d is below the reserved range %d", fd, d.reserved_fd_min);
        return -EINVAL;
    }
    sigprocmask(SIG_SETMASK, NULL, &saved);
    d.tx_cap = FWD_MAX_PAYLOAD;
    d.tx = malloc(d.tx_cap);
    d.scratch = malloc(FWD_MAX_IO + FWD_NARGS * FWD_MAX_SMALL);
    if (!d.tx || !d.scratch) {
        rc = -ENOMEM;
        goto out;
    }
    rc = install_handlers(&d, opts->forward_signals ? opts->forward_signals : default_signals);
    if (rc == 0)
        rc = serve_loop(&d, exit_status);
    if (rc == MOS_E_PEER_GONE)
        mos_err("deputy", "lost the node running the job (the supervisor link closed)");
    else if (rc < 0)
        mos_err("deputy", "serving the job failed: %s", mos_strerror(rc));
out:
    sigprocmask(SIG_SETMASK, &saved, NULL);
    free(d.tx);
    free(d.rx);
    free(d.scratch);
    return rc;
}
