/* The deputy: the home-side half of a migrated job. It executes the guest's forwarded system
 * calls with the job's own descriptors, cwd and identity, and passes home signals to the guest.
 *
 * A request is never trusted: its layout is rebuilt from this side's copy of the syscall table
 * and every buffer must have exactly the direction and length that layout demands; pointers
 * from the wire are never used, only buffers the deputy owns; the deputy's own descriptors are
 * out of the guest's reach.
 *
 * Calls of several guest threads are in flight at once, so a call blocked at home (a read of a
 * pipe, an accept) must not hold up the others: the deputy's threads take turns as the *leader*
 * that reads the link. A leader that reads a call runs it itself and then leads again, so a
 * call costs no hand-over between threads; a *standby* thread watches, and takes the link over
 * when a call has been running for a tick (1 ms: it blocks at home), after which the caller
 * only runs its call. Threads are started on demand, at most FWD_MAX_INFLIGHT + 2. All threads
 * share the process's fd table and cwd, as the guest's threads do. Home signals are blocked in every thread but the leader while it waits, so
 * they are noticed there and sent to the supervisor, which decides which call (if any) they
 * interrupt (FWD_MSG_INTERRUPT): the worker running it is woken by WAKE_SIGNAL and answers
 * -ERESTARTSYS. */
#include "forward_priv.h"
#include "mos/procfs.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ERESTARTSYS 512

/* Wakes a worker out of a blocking home call (interrupt, end of the session). A real-time
 * signal: it is queued, never merged with the home signals the job receives. */
#define WAKE_SIGNAL (SIGRTMIN + 4)
/* Two more threads than calls: one reads the link, one stands by to take it over */
#define MAX_THREADS (FWD_MAX_INFLIGHT + 2)
#define STANDBY_TICK_NS 1000000L /* a call running this long is taken to block at home */
#define STANDBY_IDLE_TICKS 200   /* ticks without a call before the standby sleeps */
#define THREAD_STACK (256u << 10)
#define KICK_NS 10000000L /* an interrupt not yet taken is signalled again this often */

static volatile sig_atomic_t signal_pending[NSIG];
static volatile sig_atomic_t any_signal_pending;

static void on_signal(int sig)
{
    signal_pending[sig] = 1;
    any_signal_pending = 1;
}

static void on_wake(int sig)
{
    (void)sig; /* only to make a blocked call return EINTR */
}

/* One deputy thread and the call it executes. */
struct worker {
    struct deputy *d;
    pthread_t thread;
    int started;           /* thread is ours to join (not the caller's) */
    int busy;              /* executing call id (under d->lock) */
    uint32_t id;
    int interrupted;       /* atomic: the supervisor asked to end this call */
    uint8_t *rx, *out, *tx;
    size_t rx_cap, out_cap, tx_cap, len;
};

struct deputy {
    struct mos_link *link;
    int wake_fd;          /* eventfd: wakes the leader (a worker ended the session) */
    pid_t shell;
    uint64_t shell_seen;  /* signals pending in the shell already passed on (or carried) */
    int reserved_fd_min;
    struct mos_home_identity id;
    sigset_t wait_mask;   /* the leader's mask while it waits for the link */
    pthread_attr_t attr;
    pthread_mutex_t send_lock; /* one frame at a time on the link */
    pthread_mutex_t lock;      /* what follows */
    pthread_cond_t idle;       /* the standby's place is free, or the session ends */
    pthread_cond_t standby_cond; /* wakes the standby */
    pthread_cond_t gone;       /* a thread ended */
    int leader;                /* a thread reads the link */
    struct worker *reserver;   /* runs the call it read, and will lead again after it */
    uint64_t reserve_seq;      /* counts reservations */
    int standby, standby_sleeping;
    int nthreads, nidle, busy_calls, kicks;
    int ending;
    int result;           /* of the session: 0, MOS_DEPUTY_MOVING, or a status */
    int exit_status;
    struct worker *workers[MAX_THREADS];
    int nworkers;
};

static const int default_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, 0};

/* Handlers for the home signals and WAKE_SIGNAL; the calling thread blocks the home signals
 * (its threads inherit that) and unblocks WAKE_SIGNAL. */
static int install_handlers(struct deputy *d, const int *sigs, sigset_t *saved)
{
    struct sigaction sa;
    sigset_t forwarded, mask;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked ppoll must return */
    sigemptyset(&forwarded);
    for (const int *s = sigs; *s; s++) {
        sigaddset(&forwarded, *s);
        if (sigaction(*s, &sa, NULL) != 0)
            return mos_errno_status();
    }
    sa.sa_handler = on_wake; /* no SA_RESTART: the woken home call returns EINTR */
    if (sigaction(WAKE_SIGNAL, &sa, NULL) != 0)
        return mos_errno_status();
    if (pthread_sigmask(SIG_BLOCK, &forwarded, saved) != 0)
        return -EINVAL;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    sigdelset(&mask, WAKE_SIGNAL);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    d->wait_mask = mask;
    for (const int *s = sigs; *s; s++)
        sigdelset(&d->wait_mask, *s);
    return 0;
}

static int send_frame(struct deputy *d, uint16_t type, const void *payload, size_t len)
{
    int rc;

    pthread_mutex_lock(&d->send_lock);
    rc = __atomic_load_n(&d->ending, __ATOMIC_ACQUIRE) ? 0 : fwd_send(d->link, type, payload, len);
    pthread_mutex_unlock(&d->send_lock);
    return rc;
}

/* Send every signal that arrived since the last flush. The link may be busy with a worker's
 * large result that waits for the supervisor, which may itself be writing a call to us: the
 * leader must not wait for the link then (it is the one that reads), so it tries again later.
 * Returns 0, 1 when signals are still waiting, or a status. */
static int flush_signals(struct deputy *d)
{
    if (!any_signal_pending)
        return 0;
    if (pthread_mutex_trylock(&d->send_lock) != 0)
        return 1;
    any_signal_pending = 0;
    int rc = 0;
    for (int32_t sig = 1; sig < NSIG && rc == 0; sig++) {
        if (!signal_pending[sig])
            continue;
        signal_pending[sig] = 0;
        uint8_t msg[4];
        mos_put_le32(msg, (uint32_t)sig);
        rc = fwd_send(d->link, FWD_MSG_SIGNAL, msg, sizeof(msg));
    }
    pthread_mutex_unlock(&d->send_lock);
    return rc;
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
 * Out-buffers are carved from scratch (out_space bytes at least). Returns 0, or -errno to
 * answer the guest with, or MOS_E_PROTO for a malformed request. */
static int prepare_call(const struct deputy *d, struct fwd_call *c, uint64_t args[FWD_NARGS],
                        uint8_t *scratch)
{
    struct fwd_arg_spec spec[FWD_NARGS];
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

/* Run the call. Only an interrupt from the supervisor ends it early (-ERESTARTSYS); any other
 * EINTR (a wake-up meant for an earlier call) runs it again, as it had not done anything. A
 * wake-up that lands between the check and the call is repeated by the leader (KICK_NS). */
static int64_t execute(struct worker *w, long nr, const uint64_t a[FWD_NARGS])
{
    for (;;) {
        if (__atomic_load_n(&w->interrupted, __ATOMIC_ACQUIRE))
            return -ERESTARTSYS;
        int64_t ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (ret >= 0 || errno != EINTR)
            return ret < 0 ? -errno : ret;
    }
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

/* Space for a call's out-buffers and its encoded result, grown to what the call needs. */
static int reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    uint8_t *grown = realloc(*buf, need);
    if (!grown)
        return -ENOMEM;
    *buf = grown;
    *cap = need;
    return 0;
}

static size_t out_space(const struct fwd_call *c)
{
    size_t total = 0;

    for (uint8_t i = 0; i < c->nbufs; i++)
        if (!(c->bufs[i].dir & FWD_DIR_IN))
            total += c->bufs[i].len;
    return total;
}

/* A thread keeps small buffers between calls, and gives large ones back, so memory follows the
 * calls in flight (at most FWD_MAX_INFLIGHT of them), not the largest each thread ever ran. */
#define KEEP_BUFFER (256u << 10)

static void trim(uint8_t **buf, size_t *cap)
{
    if (*cap <= KEEP_BUFFER)
        return;
    free(*buf);
    *buf = NULL;
    *cap = 0;
}

static void worker_trim(struct worker *w)
{
    trim(&w->rx, &w->rx_cap);
    trim(&w->out, &w->out_cap);
    trim(&w->tx, &w->tx_cap);
}

/* Execute the call in w->rx and send its result. Returns 0 or a status that ends the session. */
static int serve_call(struct deputy *d, struct worker *w)
{
    struct fwd_call call;
    struct fwd_result res;
    uint64_t args[FWD_NARGS];
    int rc;

    if (fwd_call_decode(w->rx, w->len, &call) != 0) {
        mos_err("deputy", "malformed call from the supervisor");
        return MOS_E_PROTO;
    }
    if (reserve(&w->out, &w->out_cap, out_space(&call) + 1) != 0)
        return -ENOMEM;
    rc = prepare_call(d, &call, args, w->out);
    if (rc == MOS_E_PROTO) {
        mos_err("deputy", "request for %s does not match its layout", mos_syscall_name(call.nr));
        return rc;
    }
    int64_t ret = rc != 0 ? rc : execute(w, call.nr, args);
    collect_outputs(&call, ret, &res);
    res.id = call.id;
    if (reserve(&w->tx, &w->tx_cap, 64 + out_space(&call)) != 0)
        return -ENOMEM;
    ssize_t n = fwd_result_encode(&res, w->tx, w->tx_cap);
    if (n < 0)
        return (int)n;
    return send_frame(d, FWD_MSG_RESULT, w->tx, (size_t)n);
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

/* ---- the threads -------------------------------------------------------------------------- */

/* End the session (the first reason wins) and wake every thread: idle ones leave, busy ones
 * have their home call interrupted. Called with d->lock held. */
static void end_session(struct deputy *d, int result)
{
    uint64_t one = 1;

    if (!d->ending) {
        d->ending = 1;
        d->result = result;
    }
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->busy) {
            __atomic_store_n(&w->interrupted, 1, __ATOMIC_RELEASE);
            pthread_kill(w->thread, WAKE_SIGNAL);
        }
    }
    pthread_cond_broadcast(&d->idle);
    pthread_cond_broadcast(&d->standby_cond);
    if (write(d->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow with one write per session end */
    }
}

/* Signal again the workers asked to stop that are still in their call. With d->lock held. */
static void kick_interrupted(struct deputy *d)
{
    d->kicks = 0;
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->busy && __atomic_load_n(&w->interrupted, __ATOMIC_ACQUIRE)) {
            pthread_kill(w->thread, WAKE_SIGNAL);
            d->kicks = 1;
        }
    }
}

static struct worker *busy_worker(struct deputy *d, uint32_t id)
{
    for (int i = 0; i < d->nworkers; i++)
        if (d->workers[i]->busy && d->workers[i]->id == id)
            return d->workers[i];
    return NULL;
}

/* The supervisor wants call id ended (a signal for the thread that made it). A call that has
 * finished meanwhile is not an error: its result and this request crossed. */
static int interrupt_call(struct deputy *d, const uint8_t *p, size_t len)
{
    if (len != 4)
        return MOS_E_PROTO;
    pthread_mutex_lock(&d->lock);
    struct worker *w = busy_worker(d, mos_get_le32(p));
    if (w) {
        __atomic_store_n(&w->interrupted, 1, __ATOMIC_RELEASE);
        pthread_kill(w->thread, WAKE_SIGNAL);
        d->kicks = 1;
    }
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* Wait until the link (or the wake eventfd) is readable, passing on home signals meanwhile.
 * Returns 1 when the link is readable, 0 to look again, or a status. */
static int leader_wait(struct deputy *d)
{
    struct pollfd pfd[2] = {{d->link->fd, POLLIN, 0}, {d->wake_fd, POLLIN, 0}};
    struct timespec every = {0, SHELL_CHECK_NS}, *timeout = NULL;
    int rc;

    if (d->shell > 0)
        shell_check(d);
    rc = flush_signals(d);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->lock);
    if (d->kicks)
        kick_interrupted(d);
    if (d->kicks || rc == 1)
        every.tv_nsec = KICK_NS;
    pthread_mutex_unlock(&d->lock);
    if (d->shell > 0 || every.tv_nsec == KICK_NS)
        timeout = &every;
    rc = ppoll(pfd, 2, timeout, &d->wait_mask);
    if (rc < 0 && errno != EINTR)
        return -errno;
    if (rc > 0 && pfd[1].revents)
        return MOS_E_PROTO; /* a worker ended the session; d->result says why */
    return rc > 0 ? 1 : 0;
}

/* lead()'s answer when a call arrived: apart from every session result (MOS_DEPUTY_MOVING is 1) */
#define GOT_CALL 1000

/* Read the link until a call arrives for w (GOT_CALL), or the session ends (a result for
 * end_session: 0 with d->exit_status, MOS_DEPUTY_MOVING, or a status). */
static int lead(struct deputy *d, struct worker *w)
{
    for (;;) {
        uint16_t type;
        int rc = leader_wait(d);

        if (rc == 0)
            continue;
        if (rc == 1)
            rc = fwd_recv(d->link, &type, &w->rx, &w->rx_cap, &w->len);
        if (rc == -EINTR)
            continue;
        if (rc != 0)
            return rc;
        if (type == FWD_MSG_CALL) {
            return GOT_CALL;
        } else if (type == FWD_MSG_INTERRUPT) {
            if ((rc = interrupt_call(d, w->rx, w->len)) != 0)
                return rc;
        } else if (type == FWD_MSG_EXIT && w->len == 4) {
            d->exit_status = (int32_t)mos_get_le32(w->rx);
            return 0;
        } else if (type == FWD_MSG_NOTICE && w->len == 4 &&
                   mos_get_le32(w->rx) == MOS_LINK_MOVING) {
            return MOS_DEPUTY_MOVING;
        } else if (type == FWD_MSG_NOTICE && w->len == 4 &&
                   mos_get_le32(w->rx) == MOS_LINK_RESUME) {
            continue; /* a move that failed before this link was left: nothing to do */
        } else {
            mos_err("deputy", "unexpected message type %u from the supervisor", type);
            return MOS_E_PROTO;
        }
    }
}

static void *worker_main(void *arg);

/* Start one more thread (it becomes the standby). With d->lock. */
static void add_thread(struct deputy *d)
{
    if (d->nworkers >= MAX_THREADS)
        return; /* cannot happen: calls are capped two below the threads */
    struct worker *nw = calloc(1, sizeof(*nw));
    if (!nw)
        return;
    nw->d = d;
    if (pthread_create(&nw->thread, &d->attr, worker_main, nw) != 0) {
        free(nw);
        return; /* the link waits for the next thread to come free */
    }
    nw->started = 1;
    d->workers[d->nworkers++] = nw;
    d->nthreads++;
}

/* Take the call w read: check its id and the cap. With d->lock. */
static int claim_call(struct deputy *d, struct worker *w)
{
    if (w->len < 4)
        return MOS_E_PROTO;
    uint32_t id = mos_get_le32(w->rx);
    if (d->busy_calls >= FWD_MAX_INFLIGHT || busy_worker(d, id)) {
        mos_err("deputy", "the supervisor sent call %u beyond the limit or twice", id);
        return MOS_E_PROTO;
    }
    w->id = id;
    w->busy = 1;
    __atomic_store_n(&w->interrupted, 0, __ATOMIC_RELEASE);
    d->busy_calls++;
    return 0;
}

/* The leader read a call and runs it itself, meaning to lead again after it (most calls take
 * microseconds, and handing the link to another thread for each would cost two wake-ups). The
 * standby takes the link over if the call is still running a tick later. With d->lock. */
static void reserve_lead(struct deputy *d, struct worker *w)
{
    d->reserver = w;
    d->reserve_seq++;
    if (d->standby) {
        if (d->standby_sleeping)
            pthread_cond_signal(&d->standby_cond);
    } else if (d->nidle > 0) {
        pthread_cond_signal(&d->idle);
    } else {
        add_thread(d);
    }
}

static void deadline_in(struct timespec *t, long ns)
{
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_nsec += ns;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* As the standby: wake every tick while calls come, and take the link over from a reserver
 * whose call lasted a whole tick (it blocks at home). After STANDBY_IDLE_TICKS without a call,
 * sleep until reserve_lead wakes us. Returns with the link free to lead, or the session over.
 * With d->lock. */
static void standby_watch(struct deputy *d)
{
    uint64_t running = UINT64_MAX; /* the reservation seen running at the last tick */
    int quiet = 0;

    d->standby = 1;
    while (!d->ending && (d->leader || d->reserver)) {
        if (d->reserver && d->reserve_seq == running) {
            d->reserver = NULL; /* it blocks: it will not lead again, we do */
            break;
        }
        if (d->reserver) {
            running = d->reserve_seq;
            quiet = 0;
        } else {
            running = UINT64_MAX;
        }
        if (!d->reserver && ++quiet > STANDBY_IDLE_TICKS) {
            d->standby_sleeping = 1;
            pthread_cond_wait(&d->standby_cond, &d->lock);
            d->standby_sleeping = 0;
            quiet = 0;
            continue;
        }
        struct timespec until;
        deadline_in(&until, STANDBY_TICK_NS);
        pthread_cond_timedwait(&d->standby_cond, &d->lock, &until);
    }
    d->standby = 0;
}

/* Wait until this thread may lead (1), or the session ends (0). With d->lock. */
static int take_lead(struct deputy *d)
{
    for (;;) {
        if (d->ending)
            return 0;
        if (!d->leader && !d->reserver) {
            d->leader = 1;
            return 1;
        }
        if (!d->standby) {
            standby_watch(d);
            continue;
        }
        d->nidle++;
        pthread_cond_wait(&d->idle, &d->lock);
        d->nidle--;
    }
}

/* Run the call w read (the caller holds d->lock, and holds it again on return). Returns 1 if w
 * is to lead again (nobody took the link over meanwhile). */
static int run_call(struct deputy *d, struct worker *w)
{
    pthread_mutex_unlock(&d->lock);
    int rc = serve_call(d, w);
    worker_trim(w);
    pthread_mutex_lock(&d->lock);
    w->busy = 0;
    d->busy_calls--;
    if (rc != 0)
        end_session(d, rc == MOS_E_TRUNCATED || rc == -EPIPE ? MOS_E_PEER_GONE : rc);
    if (d->reserver != w)
        return 0;
    d->reserver = NULL;
    if (d->ending)
        return 0;
    d->leader = 1;
    return 1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct deputy *d = w->d;
    int leading = 0;

    pthread_mutex_lock(&d->lock);
    for (;;) {
        if (!leading && !take_lead(d))
            break;
        pthread_mutex_unlock(&d->lock);
        int rc = lead(d, w);
        pthread_mutex_lock(&d->lock);
        d->leader = 0;
        if (rc == GOT_CALL && !d->ending && (rc = claim_call(d, w)) == 0)
            rc = GOT_CALL;
        if (rc != GOT_CALL || d->ending) {
            end_session(d, rc == GOT_CALL ? 0 : rc);
            break;
        }
        reserve_lead(d, w);
        leading = run_call(d, w);
    }
    d->nthreads--;
    pthread_cond_broadcast(&d->gone);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* After the session: wait for every thread, waking again those still in a home call (one that
 * cannot be interrupted, a disk read, ends by itself). */
static void join_workers(struct deputy *d)
{
    pthread_mutex_lock(&d->lock);
    while (d->nthreads > 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += KICK_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&d->gone, &d->lock, &until) == ETIMEDOUT)
            kick_interrupted(d);
    }
    pthread_mutex_unlock(&d->lock);
    for (int i = 0; i < d->nworkers; i++) {
        struct worker *w = d->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        free(w->rx);
        free(w->out);
        free(w->tx);
        if (w->started)
            free(w);
    }
}

static int deputy_init(struct deputy *d, struct worker *first)
{
    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->wake_fd < 0)
        return mos_errno_status();
    pthread_mutex_init(&d->send_lock, NULL);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->idle, NULL);
    pthread_cond_init(&d->gone, NULL);
    pthread_cond_init(&d->standby_cond, NULL);
    pthread_attr_init(&d->attr);
    pthread_attr_setstacksize(&d->attr, THREAD_STACK);
    first->d = d;
    first->thread = pthread_self();
    d->workers[d->nworkers++] = first;
    d->nthreads = 1;
    return 0;
}

static void deputy_fini(struct deputy *d)
{
    pthread_attr_destroy(&d->attr);
    pthread_cond_destroy(&d->gone);
    pthread_cond_destroy(&d->standby_cond);
    pthread_cond_destroy(&d->idle);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->send_lock);
    close(d->wake_fd);
}

/* The calling thread serves too, then waits for the others. */
static int serve_session(struct deputy *d, int *exit_status)
{
    struct worker first = {0};
    uint8_t ids[8];
    int rc = deputy_init(d, &first);

    if (rc != 0)
        return rc;
    mos_put_le32(ids, (uint32_t)d->id.pid);
    mos_put_le32(ids + 4, (uint32_t)d->id.ppid);
    rc = fwd_send(d->link, FWD_MSG_HELLO, ids, sizeof(ids));
    if (rc == 0) {
        worker_main(&first);
        join_workers(d);
        rc = d->result;
    }
    deputy_fini(d);
    if (rc == 0)
        *exit_status = d->exit_status;
    if (rc == MOS_E_TRUNCATED || rc == -ECONNRESET || rc == -EPIPE)
        rc = MOS_E_PEER_GONE;
    return rc;
}

int mos_deputy_serve(struct mos_link *link, const struct mos_deputy_opts *opts, int *exit_status)
{
    struct deputy d = {.link = link, .id = opts->identity, .shell = opts->shell};
    int fd = link->fd;
    sigset_t saved;
    int rc;

    /* what is pending in the shell already travelled with the job's image */
    if (d.shell > 0)
        mos_proc_status_masks(d.shell, pending_keys, 2, &d.shell_seen);
    d.reserved_fd_min = opts->reserved_fd_min > 0 ? opts->reserved_fd_min : fd;
    if (fd < d.reserved_fd_min) {
        mos_err("deputy", "link fd %d is below the reserved range %d", fd, d.reserved_fd_min);
        return -EINVAL;
    }
    pthread_sigmask(SIG_SETMASK, NULL, &saved);
    rc = install_handlers(&d, opts->forward_signals ? opts->forward_signals : default_signals,
                          &saved);
    if (rc == 0)
        rc = serve_session(&d, exit_status);
    if (rc == MOS_E_PEER_GONE)
        mos_err("deputy", "lost the node running the job (the supervisor link closed)");
    else if (rc < 0)
        mos_err("deputy", "serving the job failed: %s", mos_strerror(rc));
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}
