/* The supervisor: the guest's seccomp listener on the node where the guest runs. It answers
 * virtual calls itself and forwards the rest to the deputy with their buffers.
 *
 * A guest may have many threads, each with a call of its own in flight: the supervisor sends a
 * call and goes back to its loop, so it keeps taking notifications while calls are at home;
 * each result finds its call by the id it carries (at most FWD_MAX_INFLIGHT in flight). The
 * guest's buffers are read when the call is sent and written when its result comes, and
 * SECCOMP_IOCTL_NOTIF_ID_VALID is checked before each reply (the thread may have died
 * meanwhile, an exit_group of another thread). */
#include "forward_priv.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Kernel-internal "restart this call if the handler allows": a seccomp reply may carry it, and
 * the signal-delivery path then restarts the call or turns it into EINTR (SA_RESTART decides),
 * exactly as for a native call interrupted by a signal. */
#define ERESTARTSYS 512

/* 6.6+ UAPI, newer than the 6.1 headers here: wake the guest on the supervisor's CPU, which
 * saves a cross-CPU wake-up per call (the guest and the supervisor take turns anyway). */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#define PAGE 4096ul
#define MAX_IOV 1024

/* A call at home: the notification it answers, and how its result goes back. */
struct pending_call {
    int used;
    uint32_t id;
    int interrupted;  /* an INTERRUPT was sent for it */
    struct seccomp_notif n;
    struct iovec *iov; /* readv-like calls: the guest's iovec array, read when sent */
    int iov_cnt;
    uint64_t since_ns; /* its notification came: the start of its latency */
};

#define SIGNALLED_MAX 32

struct mos_supervisor {
    pid_t guest;
    int listener;
    struct mos_link *deputy;
    int pidfd;
    struct mos_home_identity home;
    const struct mos_supervisor_ops *ops;
    uint8_t *rx, *tx;
    size_t rx_cap, tx_cap;
    uint8_t *scratch; /* in-buffers read from the guest */
    int exited, exit_status;
    struct pending_call *calls; /* FWD_MAX_INFLIGHT slots; a call's id names its slot */
    int ncalls;
    uint32_t next_seq;
    struct mos_call_stats *st; /* the caller's, or own_stats */
    struct mos_call_stats own_stats;
    uint64_t recv_ns;          /* when the notification being dispatched came */
    int draining; /* the caller's ctl_fd is readable: calls at home are being interrupted */
    pid_t caller; /* the thread of the home call being decided */
    /* Threads signalled while no call of theirs was here: one may be inside a call we have not
     * taken yet, and it must not be sent home (signalled_take) */
    pid_t signalled[SIGNALLED_MAX];
    int nsignalled;
};

/* ---- guest memory ------------------------------------------------------------------------ */

static int guest_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
    struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

    return n == (ssize_t)len ? 0 : -EFAULT;
}

static int guest_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
    struct iovec local = {(void *)buf, len}, remote = {(void *)(uintptr_t)addr, len};
    ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);

    return n == (ssize_t)len ? 0 : -EFAULT;
}

/* A NUL-terminated path, read page by page so a string ending just before an unmapped page
 * is still read. Returns its length including the NUL, or -EFAULT / -ENAMETOOLONG. */
static ssize_t guest_read_path(pid_t pid, uint64_t addr, char *buf)
{
    size_t got = 0;

    while (got < FWD_MAX_PATH) {
        size_t chunk = PAGE - ((addr + got) & (PAGE - 1));
        if (chunk > FWD_MAX_PATH - got)
            chunk = FWD_MAX_PATH - got;
        if (guest_read(pid, addr + got, buf + got, chunk) != 0)
            return -EFAULT;
        char *nul = memchr(buf + got, '\0', chunk);
        if (nul)
            return nul - buf + 1;
        got += chunk;
    }
    return -ENAMETOOLONG;
}

/* ---- building a call from guest memory ------------------------------------------------------ */

static uint32_t clamp_io(uint64_t len)
{
    return len > FWD_MAX_IO ? FWD_MAX_IO : (uint32_t)len;
}

/* Fill call->bufs for the pointer arguments of a call, reading inputs from the guest into
 * scratch. Returns 0 or a negative errno for the guest (-EFAULT, -EINVAL...). */
static int build_call(struct mos_supervisor *sup, long nr, const uint64_t raw[FWD_NARGS],
                      struct fwd_call *call)
{
    struct fwd_arg_spec spec[FWD_NARGS];
    uint8_t *scratch = sup->scratch;
    int rc = fwd_layout(nr, raw, spec);

    if (rc != 0)
        return rc;
    memset(call, 0, sizeof(*call));
    call->nr = nr;
    memcpy(call->args, raw, sizeof(call->args));
    for (int i = 0; i < FWD_NARGS; i++) {
        const struct fwd_arg_spec *s = &spec[i];
        uint32_t len = 0;
        uint8_t dir = 0;

        if (s->kind == ARG_VAL || s->kind == ARG_FD || raw[i] == 0)
            continue;
        switch (s->kind) {
        case ARG_PATH: {
            ssize_t n = guest_read_path(sup->guest, raw[i], (char *)scratch);
            if (n < 0)
                return (int)n;
            len = (uint32_t)n;
            dir = FWD_DIR_IN;
            break;
        }
        case ARG_IO_IN:
        case ARG_IO_OUT:
            len = clamp_io(raw[s->ref]);
            call->args[s->ref] = len; /* a short read or write, as the kernel may do */
            dir = s->kind == ARG_IO_IN ? FWD_DIR_IN : FWD_DIR_OUT;
            break;
        case ARG_IN_LEN:
            if (raw[s->ref] > FWD_MAX_SMALL)
                return -EINVAL;
            len = (uint32_t)raw[s->ref];
            dir = FWD_DIR_IN;
            break;
        case ARG_IN_FIX: len = s->size; dir = FWD_DIR_IN; break;
        case ARG_OUT_FIX: len = s->size; dir = FWD_DIR_OUT; break;
        case ARG_INOUT_FIX: len = s->size; dir = FWD_DIR_IN | FWD_DIR_OUT; break;
        case ARG_INOUT_ARR:
        case ARG_OUT_ARR_RET:
            if (raw[s->ref] > FWD_MAX_SMALL / s->size)
                return -EINVAL;
            len = (uint32_t)raw[s->ref] * s->size;
            dir = s->kind == ARG_INOUT_ARR ? FWD_DIR_IN | FWD_DIR_OUT : FWD_DIR_OUT;
            break;
        case ARG_OUT_DEREF: {
            uint32_t want = 0;
            if (raw[s->ref] == 0 || guest_read(sup->guest, raw[s->ref], &want, 4) != 0)
                return -EFAULT;
            len = want > FWD_MAX_SOCKADDR ? FWD_MAX_SOCKADDR : want;
            dir = FWD_DIR_OUT;
            break;
        }
        default: return -EINVAL;
        }
        if ((dir & FWD_DIR_IN) && s->kind != ARG_PATH &&
            guest_read(sup->guest, raw[i], scratch, len) != 0)
            return -EFAULT;
        struct fwd_buf *b = &call->bufs[call->nbufs++];
        b->argidx = (uint8_t)i;
        b->dir = dir;
        b->len = len;
        b->data = scratch;
        scratch += len;
    }
    return 0;
}

/* Write the output buffers of a result back into the guest. */
static int write_back(struct mos_supervisor *sup, const uint64_t raw[FWD_NARGS],
                      const struct fwd_result *res)
{
    for (uint8_t i = 0; i < res->nbufs; i++) {
        const struct fwd_buf *b = &res->bufs[i];
        if (raw[b->argidx] == 0 || b->len == 0)
            continue;
        if (guest_write(sup->guest, raw[b->argidx], b->data, b->len) != 0)
            return -EFAULT;
    }
    return 0;
}

/* ---- replies --------------------------------------------------------------------------- */

static int notif_valid(struct mos_supervisor *sup, uint64_t id)
{
    return ioctl(sup->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

int mos_supervisor_reply(struct mos_supervisor *sup, uint64_t notif_id, int64_t val, int error)
{
    struct seccomp_notif_resp resp = {.id = notif_id, .val = val, .error = error};

    if (ioctl(sup->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) != 0) {
        /* ENOENT: the caller died (a SIGKILL, say) or took a fatal signal after the call was
         * read. Nothing is left to answer, and the supervisor must go on to report the exit:
         * failing here would end the link and make a killed job look lost. */
        if (errno == ENOENT)
            return 0;
        mos_warn("supervisor", "reply to guest %d failed: %s", (int)sup->guest, strerror(errno));
        return -errno;
    }
    return 0;
}

int mos_supervisor_answer(int listener_fd, uint64_t notif_id, int error)
{
    struct seccomp_notif_resp resp = {.id = notif_id, .error = error};

    return ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0 ? 0 : -errno;
}

static int reply_result(struct mos_supervisor *sup, uint64_t id, int64_t ret)
{
    return ret < 0 ? mos_supervisor_reply(sup, id, 0, (int)ret)
                   : mos_supervisor_reply(sup, id, ret, 0);
}

/* A call the supervisor refuses or cannot carry (not one that failed at home). */
static int refuse_call(struct mos_supervisor *sup, uint64_t id, int error)
{
    sup->st->errors++;
    return mos_supervisor_reply(sup, id, 0, error);
}

/* ---- calls in flight ---------------------------------------------------------------------- */

/* A free slot for a call, with its id (the slot in the low bits, a sequence above them, so a
 * late result of an earlier call in the same slot is told apart). NULL when all are taken. */
static struct pending_call *call_alloc(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    for (uint32_t slot = 0; slot < FWD_MAX_INFLIGHT; slot++) {
        struct pending_call *c = &sup->calls[slot];
        if (c->used)
            continue;
        memset(c, 0, sizeof(*c));
        c->used = 1;
        c->id = sup->next_seq++ * FWD_MAX_INFLIGHT + slot;
        c->n = *n;
        c->since_ns = sup->recv_ns;
        sup->ncalls++;
        return c;
    }
    return NULL;
}

static void call_free(struct mos_supervisor *sup, struct pending_call *c)
{
    free(c->iov);
    c->iov = NULL;
    c->used = 0;
    sup->ncalls--;
}

static struct pending_call *call_find(struct mos_supervisor *sup, uint32_t id)
{
    struct pending_call *c = &sup->calls[id % FWD_MAX_INFLIGHT];

    return c->used && c->id == id ? c : NULL;
}

/* The call thread tid has at home, if any. */
static struct pending_call *call_of_thread(struct mos_supervisor *sup, pid_t tid)
{
    for (int i = 0; i < FWD_MAX_INFLIGHT; i++)
        if (sup->calls[i].used && (pid_t)sup->calls[i].n.pid == tid)
            return &sup->calls[i];
    return NULL;
}

/* Send call for the notification in slot c. The slot is freed on failure. */
static int send_call(struct mos_supervisor *sup, struct pending_call *c, struct fwd_call *call)
{
    ssize_t n;
    int rc;

    call->id = c->id;
    n = fwd_call_encode(call, sup->tx, sup->tx_cap);
    rc = n < 0 ? (int)n : fwd_send(sup->deputy, FWD_MSG_CALL, sup->tx, (size_t)n);
    if (rc != 0)
        call_free(sup, c);
    else
        sup->st->bytes += (uint64_t)n;
    return rc;
}

/* ---- signals -------------------------------------------------------------------------------- */

static void guest_reaped(struct mos_supervisor *sup)
{
    int status;

    pid_t got;

    if (sup->exited)
        return;
    got = waitpid(sup->guest, &status, WNOHANG);
    if (got == sup->guest) {
        sup->exited = 1;
        sup->exit_status = status;
    } else if (got < 0) {
        /* Not our child: its status is its parent's; report a plain exit. */
        sup->exited = 1;
        sup->exit_status = 0;
    }
}

struct thread_sigs {
    unsigned long long pnd, shd, blk, ign;
    int threads, alive;
};

static int thread_sigs_read(pid_t guest, pid_t tid, struct thread_sigs *t)
{
    char path[64], line[256];
    char state = '?';
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)guest, (int)tid);
    memset(t, 0, sizeof(*t));
    f = fopen(path, "re");
    if (!f)
        return -ESRCH;
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "State: %c", &state);
        sscanf(line, "Threads: %d", &t->threads);
        sscanf(line, "SigPnd: %llx", &t->pnd);
        sscanf(line, "ShdPnd: %llx", &t->shd);
        sscanf(line, "SigBlk: %llx", &t->blk);
        sscanf(line, "SigIgn: %llx", &t->ign);
    }
    fclose(f);
    t->alive = state != 'Z' && state != 'X';
    return 0;
}

static unsigned long long sig_bit(int sig)
{
    return sig >= 1 && sig <= 64 ? 1ull << (sig - 1) : 0;
}

/* Will thread tid take a signal when its call returns? Its own pending signals that it does not
 * block; shared ones only when it is the only thread (the kernel marks one thread of several
 * for a shared signal, and a -ERESTARTSYS reply to a thread that is not marked would reach the
 * program as errno 512). */
static int signal_deliverable(pid_t guest, pid_t tid)
{
    struct thread_sigs t;

    if (thread_sigs_read(guest, tid, &t) != 0)
        return 0;
    return ((t.pnd | (t.threads == 1 ? t.shd : 0)) & ~t.blk) != 0;
}

/* The thread the kernel would give a process-directed signal: the main thread unless it blocks
 * the signal, else the first thread that does not. 0 when all block it. */
static pid_t pick_thread(pid_t guest, int sig)
{
    struct thread_sigs t;
    pid_t found = 0;
    char path[64];
    struct dirent *e;
    DIR *dir;

    if (thread_sigs_read(guest, guest, &t) == 0 && t.alive && !(t.blk & sig_bit(sig)))
        return guest;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)guest);
    dir = opendir(path);
    if (!dir)
        return 0;
    while (!found && (e = readdir(dir)) != NULL) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid > 0 && tid != guest && thread_sigs_read(guest, tid, &t) == 0 && t.alive &&
            !(t.blk & sig_bit(sig)))
            found = tid;
    }
    closedir(dir);
    return found;
}

/* The kernel wakes a thread whose call waits for us when a signal comes, unless we have taken
 * the call (WAIT_KILLABLE_RECV). A thread that is woken but has not yet left when we take its
 * call stays in it, signal pending: sent home, a blocking call would hang it for good. So each
 * thread signalled with no call here is noted, and its next call that would go home is answered
 * -ERESTARTSYS if the signal is still pending (signalled_take): it then acts as the kernel would
 * have. A call answered here returns at once and lets the signal in anyway. */
static void signalled_note(struct mos_supervisor *sup, pid_t tid)
{
    for (int i = 0; i < sup->nsignalled; i++)
        if (sup->signalled[i] == tid)
            return;
    if (sup->nsignalled == SIGNALLED_MAX) { /* forget the oldest: long since through */
        memmove(sup->signalled, sup->signalled + 1, (SIGNALLED_MAX - 1) * sizeof(pid_t));
        sup->nsignalled--;
    }
    sup->signalled[sup->nsignalled++] = tid;
}

/* Was tid noted by signalled_note, and does it still have a signal to take? Forgets it. */
static int signalled_take(struct mos_supervisor *sup, pid_t tid)
{
    for (int i = 0; i < sup->nsignalled; i++) {
        if (sup->signalled[i] != tid)
            continue;
        sup->signalled[i] = sup->signalled[--sup->nsignalled];
        return signal_deliverable(sup->guest, tid);
    }
    return 0;
}

/* A signal for thread tid: if that thread waits for a call at home, ask the deputy to end it,
 * so the thread takes the signal as it would natively (the result is -ERESTARTSYS). */
static int interrupt_thread(struct mos_supervisor *sup, pid_t tid, int sig)
{
    struct pending_call *c = call_of_thread(sup, tid);
    struct thread_sigs t;
    uint8_t id[4];

    if ((c && c->interrupted) || sig == 0)
        return 0;
    if (thread_sigs_read(sup->guest, tid, &t) == 0 && (t.ign & sig_bit(sig)))
        return 0; /* discarded by the kernel: nothing to interrupt for */
    if (!c) {
        signalled_note(sup, tid);
        return 0;
    }
    c->interrupted = 1;
    mos_put_le32(id, c->id);
    return fwd_send(sup->deputy, FWD_MSG_INTERRUPT, id, sizeof(id));
}

/* Deliver a process-directed signal as the kernel would: to one thread that does not block it
 * (interrupting its home call), or left pending for the process when every thread blocks it. */
static int signal_guest(struct mos_supervisor *sup, int sig)
{
    pid_t tid = pick_thread(sup->guest, sig);

    if (tid == 0 || syscall(SYS_tgkill, sup->guest, tid, sig) != 0) {
        if (kill(sup->guest, sig) != 0 && errno != ESRCH)
            return -errno;
        return 0;
    }
    return interrupt_thread(sup, tid, sig);
}

static int deliver_signal(struct mos_supervisor *sup, const uint8_t *p, size_t len)
{
    int32_t sig;
    int rc;

    if (len != 4)
        return MOS_E_PROTO;
    sig = (int32_t)mos_get_le32(p);
    if (sig < 1 || sig >= NSIG)
        return MOS_E_PROTO;
    rc = signal_guest(sup, sig);
    if (rc < 0 && rc != MOS_E_PEER_GONE)
        mos_warn("supervisor", "cannot pass signal %d to guest %d: %s", sig, (int)sup->guest,
                 mos_strerror(rc));
    return rc == MOS_E_PEER_GONE ? rc : 0;
}

/* ---- call handlers ------------------------------------------------------------------------ */

static int dispatch(struct mos_supervisor *sup, const struct seccomp_notif *n);

static int forward_generic(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    struct fwd_call call;
    struct pending_call *c;
    int rc = build_call(sup, n->data.nr, (const uint64_t *)n->data.args, &call);

    if (rc == -ENOSYS || rc == -ENOTTY) {
        fwd_stats_add(FWD_STAT_REFUSED);
        mos_dbg("supervisor", "%s: not forwardable (%s)", mos_syscall_name(n->data.nr),
                strerror(-rc));
        return refuse_call(sup, n->id, rc);
    }
    if (rc != 0)
        return refuse_call(sup, n->id, rc);
    if (!notif_valid(sup, n->id))
        return 0; /* the guest is gone; the buffers we read may belong to someone else */
    c = call_alloc(sup, n);
    return c ? send_call(sup, c, &call) : MOS_E_PROTO;
}

/* readv/writev and their positioned forms become one read/write of the summed length: the
 * supervisor gathers or scatters with a single process_vm_{readv,writev} over the guest's own
 * iovec array, read once when the call is sent. */
static int forward_iov(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    long nr = n->data.nr;
    const uint64_t *a = (const uint64_t *)n->data.args;
    int is_write = nr == SYS_writev || nr == SYS_pwritev || nr == SYS_pwritev2;
    int positioned = nr != SYS_readv && nr != SYS_writev && (int64_t)a[3] != -1;
    struct iovec *iov = NULL;
    struct fwd_call call = {0};
    struct pending_call *c;
    uint64_t total = 0;
    int cnt = (int)a[2];

    if (cnt < 0 || cnt > MAX_IOV)
        return refuse_call(sup, n->id, -EINVAL);
    if (cnt > 0 && !(iov = malloc((size_t)cnt * sizeof(iov[0]))))
        return refuse_call(sup, n->id, -ENOMEM);
    if (cnt > 0 && guest_read(sup->guest, a[1], iov, (size_t)cnt * sizeof(iov[0])) != 0) {
        free(iov);
        return refuse_call(sup, n->id, -EFAULT);
    }
    for (int i = 0; i < cnt && total < FWD_MAX_IO; i++)
        total += iov[i].iov_len;
    total = clamp_io(total);

    call.nr = is_write ? (positioned ? SYS_pwrite64 : SYS_write)
                       : (positioned ? SYS_pread64 : SYS_read);
    call.args[0] = a[0];
    call.args[1] = 1; /* any non-zero: the buffer travels with the call */
    call.args[2] = total;
    call.args[3] = a[3];
    call.nbufs = 1;
    call.bufs[0] = (struct fwd_buf){.argidx = 1, .dir = is_write ? FWD_DIR_IN : FWD_DIR_OUT,
                                    .len = (uint32_t)total, .data = sup->scratch};
    if (is_write) {
        struct iovec local = {sup->scratch, total};
        ssize_t got = total ? process_vm_readv(sup->guest, &local, 1, iov, (unsigned long)cnt, 0)
                            : 0;
        if (got < 0) {
            free(iov);
            return refuse_call(sup, n->id, -EFAULT);
        }
        call.bufs[0].len = (uint32_t)got;
        call.args[2] = (uint64_t)got;
    }
    if (!notif_valid(sup, n->id)) {
        free(iov);
        return 0;
    }
    if (!(c = call_alloc(sup, n))) { /* not polled for when full: cannot happen */
        free(iov);
        return MOS_E_PROTO;
    }
    c->iov = iov;
    c->iov_cnt = cnt;
    return send_call(sup, c, &call);
}

static int is_iov_call(long nr)
{
    return nr == SYS_readv || nr == SYS_writev || nr == SYS_preadv || nr == SYS_pwritev ||
           nr == SYS_preadv2 || nr == SYS_pwritev2;
}

/* The outputs of a result into the guest, and the reply. */
static void finish_call(struct mos_supervisor *sup, struct pending_call *c,
                        struct fwd_result *res)
{
    const uint64_t *raw = (const uint64_t *)c->n.data.args;
    int64_t ret_home = res->ret;

    fwd_stats_add(FWD_STAT_FORWARDED);
    if (is_iov_call(c->n.data.nr)) {
        if (res->ret > 0 && res->nbufs == 1) {
            struct iovec local = {res->bufs[0].data, res->bufs[0].len};
            if (process_vm_writev(sup->guest, &local, 1, c->iov, (unsigned long)c->iov_cnt,
                                  0) < 0)
                res->ret = -EFAULT;
        }
    } else if (res->ret >= 0 && write_back(sup, raw, res) != 0) {
        res->ret = -EFAULT;
    }
    if (res->ret == -EFAULT && ret_home != -EFAULT)
        sup->st->errors++; /* an output we could not write into the guest */
    if (notif_valid(sup, c->n.id))
        reply_result(sup, c->n.id, res->ret);
    mos_call_stats_forwarded(sup->st, mos_clock_now_ns() - c->since_ns);
}

/* A result from the deputy. A call it ended because a signal came for its thread is answered
 * with -ERESTARTSYS when the thread will take the signal (the kernel then restarts or fails it
 * as natively), and sent again when it will not (natively the call would not have been
 * interrupted). */
static int take_result(struct mos_supervisor *sup, size_t len)
{
    struct fwd_result res;
    struct pending_call *c;

    if (fwd_result_decode(sup->rx, len, &res) != 0 || !(c = call_find(sup, res.id))) {
        mos_err("supervisor", "guest %d: malformed or unexpected result from the deputy",
                (int)sup->guest);
        return MOS_E_PROTO;
    }
    sup->st->bytes += len;
    if (res.ret == -ERESTARTSYS) {
        struct seccomp_notif again = c->n;
        uint64_t since = c->since_ns;
        fwd_stats_add(FWD_STAT_INTERRUPTED);
        call_free(sup, c);
        if (!notif_valid(sup, again.id))
            return 0;
        /* ended for a move: held for the mover, who answers it once the guest is being
         * stopped (a reply now would reach the program as errno 513: nothing restarts a call
         * without a signal or stop pending) */
        struct mos_held_calls *held = sup->ops ? sup->ops->held : NULL;
        if (sup->draining && held && held->count < MOS_HELD_CALLS_MAX &&
            !signal_deliverable(sup->guest, (pid_t)again.pid)) {
            held->calls[held->count++] = again;
            return 0;
        }
        if (!signal_deliverable(sup->guest, (pid_t)again.pid)) {
            sup->recv_ns = since; /* the call sent again: its latency runs on */
            return dispatch(sup, &again);
        }
        reply_result(sup, again.id, -ERESTARTSYS);
        return 0;
    }
    finish_call(sup, c, &res);
    call_free(sup, c);
    return 0;
}

/* The guest's thread tid as the program knows it: the main thread answers the home pid (as it
 * did before the move, and as glibc cached it at home), a thread restored with a fresh tid the
 * tid it was restored from (ops->tids), any other its own tid here. */
static pid_t home_tid(struct mos_supervisor *sup, pid_t tid)
{
    if (tid == sup->guest)
        return sup->home.pid;
    for (size_t i = 0; sup->ops && i < sup->ops->ntids; i++)
        if (sup->ops->tids[i].local == tid)
            return sup->ops->tids[i].program;
    return tid;
}

/* The thread of the guest a program's tid names, or 0 when it is none of them. A restored
 * thread's local tid is no name its program knows, unless it is its program tid too. */
static pid_t local_tid(struct mos_supervisor *sup, pid_t tid)
{
    char path[64];
    int hidden = 0;

    if (tid == sup->home.pid)
        return sup->guest;
    if (tid <= 0)
        return 0;
    for (size_t i = 0; sup->ops && i < sup->ops->ntids; i++) {
        if (sup->ops->tids[i].program == tid) {
            tid = sup->ops->tids[i].local;
            hidden = 0;
            break;
        }
        hidden |= sup->ops->tids[i].local == tid;
    }
    if (hidden)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)sup->guest, (int)tid);
    return access(path, F_OK) == 0 ? tid : 0;
}

/* kill/tgkill/tkill to another process: the deputy's business, since other pids live at home. */
static int forward_kill(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    const uint64_t *a = (const uint64_t *)n->data.args;
    struct fwd_call call = {.nr = n->data.nr, .args = {a[0], a[1], a[2]}};
    struct pending_call *c = call_alloc(sup, n);

    return c ? send_call(sup, c, &call) : MOS_E_PROTO;
}

/* kill to the job itself (its home pid) is delivered here, as the kernel would to one of its
 * threads; tgkill/tkill to one of its threads go to that thread. */
static int handle_kill(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    const uint64_t *a = (const uint64_t *)n->data.args;
    long nr = n->data.nr;
    int sig = (int)(nr == SYS_tgkill ? a[2] : a[1]);
    int rc = 0;

    if (nr == SYS_kill) {
        pid_t target = (pid_t)a[0];
        if (target != sup->home.pid && target != 0)
            return forward_kill(sup, n);
        fwd_stats_add(FWD_STAT_VIRTUAL);
        sup->st->calls[MOS_CALLS_VIRTUAL]++;
        if (sig != 0)
            rc = signal_guest(sup, sig);
        if (rc == MOS_E_PEER_GONE || rc == MOS_E_PROTO)
            return rc; /* the link failed while interrupting a call */
        return reply_result(sup, n->id, rc);
    }
    pid_t tgid = nr == SYS_tgkill ? (pid_t)a[0] : sup->home.pid;
    pid_t tid = (pid_t)(nr == SYS_tgkill ? a[1] : a[0]);
    pid_t local = tgid == sup->home.pid ? local_tid(sup, tid) : 0;
    if (!local) {
        if (tgid == sup->home.pid && nr == SYS_tgkill)
            return reply_result(sup, n->id, -ESRCH); /* not a thread of the job */
        return forward_kill(sup, n);
    }
    fwd_stats_add(FWD_STAT_VIRTUAL);
    sup->st->calls[MOS_CALLS_VIRTUAL]++;
    if (syscall(SYS_tgkill, sup->guest, local, sig) != 0)
        return reply_result(sup, n->id, -errno);
    if (local != (pid_t)n->pid && (rc = interrupt_thread(sup, local, sig)) != 0)
        return rc;
    return reply_result(sup, n->id, 0);
}

/* sched_{get,set}affinity name a thread by the tid its program knows: glibc's
 * pthread_getaffinity_np and pthread_getattr_np pass the tid it cached, the image's, which is
 * no thread here (ESRCH, or another process's). Done here on the local thread: 0 is the
 * caller, a tid of none of the job's threads is ESRCH (a guest sees no other process of this
 * node, as with tgkill). The mask is at most 8 KiB (65536 CPUs), as the kernel reads. */
static int handle_affinity(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    const uint64_t *a = (const uint64_t *)n->data.args;
    pid_t local = (pid_t)a[0] == 0 ? (pid_t)n->pid : local_tid(sup, (pid_t)a[0]);
    size_t len = a[1] < 8192 ? (size_t)a[1] : 8192;
    uint8_t mask[8192];
    long ret = -ESRCH;

    fwd_stats_add(FWD_STAT_VIRTUAL);
    sup->st->calls[MOS_CALLS_VIRTUAL]++;
    if (local && n->data.nr == SYS_sched_setaffinity) {
        ret = guest_read(sup->guest, a[2], mask, len);
        if (ret == 0 && syscall(SYS_sched_setaffinity, local, len, mask) != 0)
            ret = -errno;
    } else if (local) {
        ret = syscall(SYS_sched_getaffinity, local, len, mask);
        ret = ret < 0 ? -errno : ret;
        if (ret > 0 && guest_write(sup->guest, a[2], mask, (size_t)ret) != 0)
            ret = -EFAULT;
    }
    return notif_valid(sup, n->id) ? reply_result(sup, n->id, ret) : 0;
}

static int handle_virtual(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    switch (n->data.nr) {
    case SYS_getpid:
        fwd_stats_add(FWD_STAT_VIRTUAL);
        sup->st->calls[MOS_CALLS_VIRTUAL]++;
        return reply_result(sup, n->id, sup->home.pid);
    case SYS_gettid:
        fwd_stats_add(FWD_STAT_VIRTUAL);
        sup->st->calls[MOS_CALLS_VIRTUAL]++;
        return reply_result(sup, n->id, home_tid(sup, (pid_t)n->pid));
    case SYS_getppid:
        fwd_stats_add(FWD_STAT_VIRTUAL);
        sup->st->calls[MOS_CALLS_VIRTUAL]++;
        return reply_result(sup, n->id, sup->home.ppid);
    case SYS_sched_getaffinity:
    case SYS_sched_setaffinity: return handle_affinity(sup, n);
    default: return handle_kill(sup, n);
    }
}

/* A home call goes to the caller's policy only while no other call is at home: a policy that
 * detaches takes the guest away from this link, and results still due on it would be lost. */
static int handle_home(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    fwd_stats_add(FWD_STAT_HOME);
    sup->st->calls[MOS_CALLS_HOME]++;
    sup->caller = (pid_t)n->pid;
    int how = sup->ops && sup->ops->home_call && sup->ncalls == 0
                  ? sup->ops->home_call(sup, n->id, n->data.nr, sup->ops->arg)
                  : 0;
    if (!how && sup->ncalls > 0)
        mos_info("supervisor", "guest %d: %s needs its home node, but %d call(s) of other threads "
                 "are at home; refused with ENOSYS", (int)sup->guest,
                 mos_syscall_name(n->data.nr), sup->ncalls);
    if (how == MOS_HOME_CALL_DETACH)
        return MOS_SUPERVISOR_DETACHED;
    if (how)
        return 0;
    if (sup->ncalls == 0)
        mos_info("supervisor", "guest %d: %s (%d) needs its home node; refused with ENOSYS",
                 (int)sup->guest, mos_syscall_name(n->data.nr), n->data.nr);
    return refuse_call(sup, n->id, -ENOSYS);
}

static int dispatch(struct mos_supervisor *sup, const struct seccomp_notif *n)
{
    switch (mos_syscall_class(n->data.nr)) {
    case MOS_SYS_VIRTUAL: return handle_virtual(sup, n);
    case MOS_SYS_FORWARD:
        return is_iov_call(n->data.nr) ? forward_iov(sup, n) : forward_generic(sup, n);
    default: return handle_home(sup, n);
    }
}

static int handle_notification(struct mos_supervisor *sup)
{
    struct seccomp_notif n;

    memset(&n, 0, sizeof(n));
    if (ioctl(sup->listener, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0)
        return errno == ENOENT || errno == EINTR ? 0 : -errno;
    sup->recv_ns = mos_clock_now_ns();
    if (sup->nsignalled > 0 && mos_syscall_class(n.data.nr) == MOS_SYS_FORWARD &&
        signalled_take(sup, (pid_t)n.pid))
        return reply_result(sup, n.id, -ERESTARTSYS);
    return dispatch(sup, &n);
}

/* One message from the deputy outside a call's sending: a result, a signal, or a hello. */
static int handle_deputy(struct mos_supervisor *sup)
{
    uint16_t type;
    size_t len;
    int rc = fwd_recv(sup->deputy, &type, &sup->rx, &sup->rx_cap, &len);

    if (rc == -EINTR)
        return 0;
    if (rc != 0)
        return rc;
    switch (type) {
    case FWD_MSG_RESULT: return take_result(sup, len);
    case FWD_MSG_SIGNAL: return deliver_signal(sup, sup->rx, len);
    case FWD_MSG_HELLO:
        /* a deputy taking this link back after a failed move says hello again: the same
         * identity */
        return len == 8 ? 0 : MOS_E_PROTO;
    default: return MOS_E_PROTO;
    }
}

/* ---- the loop ------------------------------------------------------------------------------- */

static int read_hello(struct mos_supervisor *sup)
{
    uint16_t type;
    size_t len;
    int rc = fwd_recv(sup->deputy, &type, &sup->rx, &sup->rx_cap, &len);

    if (rc != 0)
        return rc;
    if (type != FWD_MSG_HELLO || len != 8)
        return MOS_E_PROTO;
    sup->home.pid = (int32_t)mos_get_le32(sup->rx);
    sup->home.ppid = (int32_t)mos_get_le32(sup->rx + 4);
    return 0;
}

static int report_exit(struct mos_supervisor *sup)
{
    uint8_t status[4];

    mos_put_le32(status, (uint32_t)sup->exit_status);
    return fwd_send(sup->deputy, FWD_MSG_EXIT, status, sizeof(status));
}

/* How long poll may wait before the next tick is due (-1: no ticks), and the tick when due. */
static int tick_wait(struct mos_supervisor *sup, uint64_t *next_ns)
{
    const struct mos_supervisor_ops *ops = sup->ops;
    uint64_t now;

    if (!ops || !ops->on_tick || ops->tick_ms <= 0)
        return -1;
    now = mos_clock_now_ns();
    if (now >= *next_ns) {
        ops->on_tick(ops->arg);
        *next_ns = now + (uint64_t)ops->tick_ms * MOS_NSEC_PER_MSEC;
    }
    return (int)((*next_ns - now + MOS_NSEC_PER_MSEC - 1) / MOS_NSEC_PER_MSEC);
}

pid_t mos_supervisor_caller(const struct mos_supervisor *sup)
{
    return sup->caller;
}

/* Calls held for a move that did not happen (it failed before its freeze, or on_ctl went on
 * serving) go home again. */
static int held_resend(struct mos_supervisor *sup)
{
    struct mos_held_calls *held = sup->ops ? sup->ops->held : NULL;
    int rc = 0;

    while (rc == 0 && held && held->count > 0) {
        struct seccomp_notif n = held->calls[--held->count];
        sup->recv_ns = mos_clock_now_ns(); /* a call again: its latency starts afresh */
        if (notif_valid(sup, n.id))
            rc = dispatch(sup, &n);
    }
    return rc;
}

/* The caller wants the guest (a move) while calls are at home: each is interrupted at home
 * (INTERRUPT, as for a signal), and no new notification is taken meanwhile. A call that ends
 * anyway brings its result as usual; an interrupted one is answered -ERESTARTNOINTR, so it
 * is made again after the move: nothing done at home is lost or done twice. The caller's
 * on_ctl runs once none is left. */
static int drain_for_ctl(struct mos_supervisor *sup)
{
    uint8_t id[4];
    int rc = 0;

    if (sup->draining)
        return 0;
    sup->draining = 1;
    mos_info("supervisor", "guest %d: %d call(s) at home interrupted for a move", (int)sup->guest,
             sup->ncalls);
    for (int i = 0; i < FWD_MAX_INFLIGHT && rc == 0; i++) {
        struct pending_call *c = &sup->calls[i];
        if (!c->used || c->interrupted)
            continue;
        c->interrupted = 1;
        mos_put_le32(id, c->id);
        rc = fwd_send(sup->deputy, FWD_MSG_INTERRUPT, id, sizeof(id));
    }
    return rc;
}

static int serve(struct mos_supervisor *sup, int again)
{
    int rc = again ? 0 : read_hello(sup);
    uint64_t next_tick = mos_clock_now_ns() + (sup->ops ? (uint64_t)sup->ops->tick_ms : 0) *
                                                  MOS_NSEC_PER_MSEC;

    if (rc == 0)
        rc = held_resend(sup);

    while (rc == 0 && !sup->exited) {
        /* The caller may take over only between calls (none of ours is at home); beyond
         * FWD_MAX_INFLIGHT calls the guest's further threads wait in the kernel. */
        int ctl = sup->ops && sup->ops->on_ctl && sup->ops->ctl_fd > 0 && !sup->draining
                      ? sup->ops->ctl_fd
                      : -1;
        int listen = sup->ncalls < FWD_MAX_INFLIGHT && !sup->draining ? sup->listener : -1;
        if (sup->draining && sup->ncalls == 0)
            ctl = sup->ops->ctl_fd; /* drained: the caller's turn */
        struct pollfd fds[4] = {{listen, POLLIN, 0},
                                {sup->deputy->fd, POLLIN, 0},
                                {sup->pidfd, POLLIN, 0},
                                {ctl, POLLIN, 0}};
        if (poll(fds, 4, tick_wait(sup, &next_tick)) < 0) {
            if (errno != EINTR)
                rc = -errno;
            continue;
        }
        if ((fds[3].revents & (POLLIN | POLLHUP)) && sup->ncalls > 0) {
            rc = drain_for_ctl(sup);
        } else if (fds[3].revents & (POLLIN | POLLHUP)) {
            sup->draining = 0;
            rc = sup->ops->on_ctl(sup, sup->ops->arg);
            if (rc != 0)
                break;
            rc = held_resend(sup);
        }
        if (fds[0].revents & POLLIN)
            rc = handle_notification(sup);
        if (rc == 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
            rc = handle_deputy(sup);
        if (fds[2].revents & POLLIN)
            guest_reaped(sup);
    }
    return rc;
}

/* A guest served again after a detach (a move that failed) keeps the identity its deputy sent
 * at the first run; the deputy does not say HELLO twice on one link. */
static pid_t detached_guest;
static struct mos_home_identity detached_home;

static int detached_before(pid_t guest)
{
    return detached_guest == guest;
}

static void remember_detached(pid_t guest, const struct mos_home_identity *home)
{
    detached_guest = guest;
    detached_home = *home;
}

int mos_supervisor_run(pid_t guest, int listener_fd, struct mos_link *deputy,
                       const struct mos_supervisor_ops *ops, int *exit_status)
{
    struct mos_supervisor sup = {.guest = guest, .listener = listener_fd, .deputy = deputy,
                                 .ops = ops};
    int rc;

    sup.st = ops && ops->stats ? ops->stats : &sup.own_stats;

    if (detached_before(guest))
        sup.home = detached_home;
    sup.pidfd = (int)syscall(SYS_pidfd_open, guest, 0);
    sup.tx_cap = FWD_MAX_PAYLOAD;
    sup.tx = malloc(sup.tx_cap);
    sup.scratch = malloc(FWD_MAX_IO + FWD_NARGS * FWD_MAX_SMALL);
    sup.calls = calloc(FWD_MAX_INFLIGHT, sizeof(*sup.calls));
    if (sup.pidfd < 0 || !sup.tx || !sup.scratch || !sup.calls) {
        rc = sup.pidfd < 0 ? mos_errno_status() : -ENOMEM;
        mos_err("supervisor", "cannot supervise guest %d: %s", (int)guest, mos_strerror(rc));
        goto out;
    }
    uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
    if (ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) != 0)
        mos_dbg("supervisor", "no synchronous wake-up on this kernel: %s", strerror(errno));
    rc = serve(&sup, detached_before(guest));
    if (rc == MOS_SUPERVISOR_DETACHED) {
        remember_detached(guest, &sup.home);
    } else if (rc == 0) {
        rc = report_exit(&sup);
        *exit_status = sup.exit_status;
    } else {
        /* Without its deputy the guest has no home: nothing it does can be answered. */
        mos_err("supervisor", "guest %d: deputy link failed (%s); killing the guest",
                (int)guest, mos_strerror(rc));
        kill(guest, SIGKILL);
        waitpid(guest, exit_status, 0);
        if (rc != MOS_E_PROTO)
            rc = MOS_E_PEER_GONE;
    }
out:
    if (sup.pidfd >= 0)
        close(sup.pidfd);
    free(sup.tx);
    free(sup.rx);
    free(sup.scratch);
    for (int i = 0; sup.calls && i < FWD_MAX_INFLIGHT; i++)
        free(sup.calls[i].iov);
    free(sup.calls);
    return rc;
}

int mos_supervisor_take_listener(pid_t guest, int guest_fd)
{
    int pidfd = (int)syscall(SYS_pidfd_open, guest, 0), fd, rc;

    if (pidfd < 0)
        return mos_errno_status();
    fd = (int)syscall(SYS_pidfd_getfd, pidfd, guest_fd, 0);
    rc = fd < 0 ? mos_errno_status() : fd;
    close(pidfd);
    if (rc < 0)
        mos_err("supervisor", "cannot take guest %d's seccomp listener: %s", (int)guest,
                mos_strerror(rc));
    return rc;
}
