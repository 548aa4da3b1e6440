/* Whole operations over capture and restore: checkpoint to a file, send/receive with the
 * two-step commit, and waiting for a restored process in the foreground. */
#include "img_io.h"
#include "precopy.h"
#include "mos/clock.h"

#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* One-byte messages after the image on a migration link. */
#define MSG_READY 'R'  /* receiver: the process is rebuilt and stopped */
#define MSG_COMMIT 'C' /* sender: let the copy run (the original stays frozen) */
#define MSG_DONE 'D'   /* receiver: the copy runs; the original may go */

/* While a process is frozen and may sit in an injected call, a SIGINT or SIGTERM ending us
 * would leave it detached with borrowed registers: hold them off until it is safe again. */
static void fatal_signals_hold(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void fatal_signals_release(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int checkpoint_held(pid_t pid, const char *path, const struct mos_dump_opts *opts,
                           int leave_running, struct mos_dump_stats *stats);

int mos_migrate_checkpoint(pid_t pid, const char *path, const struct mos_dump_opts *opts,
                           int leave_running, struct mos_dump_stats *stats)
{
    sigset_t old;

    fatal_signals_hold(&old);
    int rc = checkpoint_held(pid, path, opts, leave_running, stats);
    fatal_signals_release(&old);
    return rc;
}

static int checkpoint_held(pid_t pid, const char *path, const struct mos_dump_opts *opts,
                           int leave_running, struct mos_dump_stats *stats)
{
    char tmp[4200];
    struct mos_dump *d;
    struct mos_img_io *io = NULL;
    int fd, rc;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    rc = mos_dump_freeze(pid, opts, &d);
    if (rc != 0)
        return rc;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = mos_errno_status();
        mos_err("migrate", "cannot create %s: %s", tmp, mos_strerror(rc));
        mos_dump_abort(d);
        return rc;
    }
    rc = mos_img_io_fd_open(fd, &io);
    if (rc == 0)
        rc = mos_dump_write(d, io);
    mos_img_io_close(io);
    /* The image is safe only once it is on disk under its name. */
    if (rc == 0 && fsync(fd) < 0)
        rc = mos_errno_status();
    if (close(fd) < 0 && rc == 0)
        rc = mos_errno_status();
    if (rc == 0 && rename(tmp, path) < 0)
        rc = mos_errno_status();
    if (stats)
        *stats = *mos_dump_stats(d);
    if (rc != 0) {
        mos_err("migrate", "checkpoint of pid %d failed (%s); it continues", (int)pid,
                mos_strerror(rc));
        unlink(tmp);
        mos_dump_abort(d);
        return rc;
    }
    if (leave_running)
        return mos_dump_abort(d);
    mos_dump_commit(d);
    return 0;
}

static int byte_read(struct mos_img_io *io, char *c)
{
    ssize_t n = io->ops->read(io, c, 1);
    return n == 1 ? 0 : n == 0 ? MOS_E_PEER_GONE : (int)n;
}

static int byte_write(struct mos_img_io *io, char c)
{
    struct iovec iov = {&c, 1};
    return io->ops->writev(io, &iov, 1);
}

static int send_held(pid_t pid, const struct mos_dump_opts *opts, struct mos_img_io *io,
                     const struct mos_send_hooks *hooks, struct mos_dump_stats *stats);

int mos_migrate_send(pid_t pid, const struct mos_dump_opts *opts, struct mos_img_io *io,
                     const struct mos_send_hooks *hooks, struct mos_dump_stats *stats)
{
    static const struct mos_send_hooks none;
    sigset_t old;

    fatal_signals_hold(&old);
    int rc = send_held(pid, opts, io, hooks ? hooks : &none, stats);
    fatal_signals_release(&old);
    return rc;
}

static int send_held(pid_t pid, const struct mos_dump_opts *opts, struct mos_img_io *io,
                     const struct mos_send_hooks *hooks, struct mos_dump_stats *stats)
{
    struct mos_dump *d;
    struct mos_precopy *pre = NULL;
    char c = 0;
    int rc = 0;

    if (opts && opts->live && (rc = mos_precopy_start(pid, opts, &pre)) == 0 && pre)
        rc = mos_precopy_rounds(pre, io);
    if (rc == 0 && hooks->before_freeze)
        hooks->before_freeze(hooks->arg);
    uint64_t t_freeze = mos_clock_now_ns();
    if (rc == 0)
        rc = mos_dump_freeze(pid, opts, &d);
    if (rc != 0) {
        mos_precopy_end(pre, NULL);
        return rc;
    }
    mos_dump_precopy_set(d, pre);
    rc = mos_dump_write(d, io);
    if (rc == 0) {
        rc = byte_read(io, &c);
        if (rc == 0 && c != MSG_READY)
            rc = MOS_E_PROTO;
        if (rc != 0)
            mos_err("migrate", "the receiver did not confirm the restore (%s)",
                    mos_strerror(rc));
    }
    /* The target holds a complete stopped copy: it may run; the original stays frozen until
     * the target says the copy runs. A receiver that dies before DONE takes its copy along
     * (the restorer traces it with PTRACE_O_EXITKILL), so the original resumes. Once COMMIT
     * is sent the copy may run: our death must then take the original along, or the rescue
     * frame would let it go on beside the copy (a deputy, where there is one, decides
     * instead). One copy runs, whichever side dies; the sender's death between this and the
     * write of COMMIT leaves none. */
    if (rc == 0 && !hooks->deputy_decides && (rc = mos_dump_die_with_us(d)) != 0)
        mos_err("migrate", "cannot tie pid %d to us for the commit (%s)", (int)pid,
                mos_strerror(rc));
    if (rc == 0) {
        rc = byte_write(io, MSG_COMMIT);
        /* for a test to kill us in the commit window */
        if (rc == 0 && getenv("MOS_TEST_STOP_AFTER_COMMIT"))
            raise(SIGSTOP);
        if (rc == 0)
            rc = byte_read(io, &c);
        if (rc == 0 && c != MSG_DONE)
            rc = MOS_E_PROTO;
        if (rc != 0)
            mos_err("migrate", "the receiver did not confirm that the copy runs (%s)",
                    mos_strerror(rc));
    }
    if (stats) {
        *stats = *mos_dump_stats(d);
        stats->downtime_ns = mos_clock_now_ns() - t_freeze;
    }
    /* tracking ends here: the original resumes untracked, or is retired */
    mos_precopy_end(pre, stats);
    mos_dump_precopy_set(d, NULL);
    if (rc != 0) {
        mos_err("migrate", "migration of pid %d failed; it continues here", (int)pid);
        mos_dump_abort(d);
        if (hooks->on_abort)
            hooks->on_abort(hooks->arg);
        return rc;
    }
    if (hooks->before_commit)
        hooks->before_commit(hooks->arg);
    if (hooks->retire)
        hooks->retire(d, hooks->arg);
    else
        mos_dump_commit(d);
    return 0;
}

int mos_migrate_receive(struct mos_img_io *io, const struct mos_restore_opts *opts,
                        const struct mos_receive_hooks *hooks, pid_t *pid)
{
    struct mos_restore *r;
    char c = 0;
    int rc = mos_restore_prepare(io, opts, &r);

    if (rc != 0)
        return rc;
    if (hooks && hooks->before_ready)
        rc = hooks->before_ready(r, hooks->arg);
    if (rc == 0)
        rc = byte_write(io, MSG_READY);
    if (rc == 0)
        rc = byte_read(io, &c);
    if (rc == 0 && c != MSG_COMMIT)
        rc = MOS_E_PROTO;
    if (rc != 0) {
        /* No commit: the sender keeps (or resumed) the original. */
        mos_err("migrate", "the sender did not commit (%s); the copy is discarded",
                mos_strerror(rc));
        mos_restore_abort(r);
        return rc;
    }
    *pid = mos_restore_pid(r);
    rc = mos_restore_commit(r);
    /* The copy runs: now the sender may retire the original. A failed start sends nothing,
     * and the sender resumes the original when the link closes. A sender that cannot hear
     * DONE any more resumes its original and says so to the job's deputy, which drops this
     * copy's link home; a sender that died took its original along (mos_dump_die_with_us),
     * or its deputy drops this copy's link: either way the copy stays as it is here. */
    if (rc == 0) {
        int wrc = byte_write(io, MSG_DONE);
        if (wrc != 0)
            mos_warn("migrate", "the copy runs but the sender did not hear so (%s)",
                     mos_strerror(wrc));
    }
    return rc;
}

static volatile sig_atomic_t forward_to;

static void forward(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    /* Signals from the terminal reach the whole foreground group, the child too: pass on
     * only those sent to us alone. */
    if (forward_to > 0 && si->si_code <= 0)
        kill(forward_to, sig);
}

int mos_restored_wait(pid_t pid)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT,
                               SIGWINCH};
    struct sigaction sa = {.sa_sigaction = forward, .sa_flags = SA_SIGINFO | SA_RESTART};
    int status;

    forward_to = pid;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 1;
    forward_to = 0;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

const char *mos_restore_husk_path(char *buf, size_t len)
{
    const char *env = getenv("MOS_HUSK");
    char self[PATH_MAX];
    ssize_t n;

    if (env && *env)
        return env;
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(buf, len, "%s/mos-husk", dirname(self));
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return MOS_HUSK_INSTALLED;
}
