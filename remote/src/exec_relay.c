/* The relay of a native remote program (mosrun -E), on the node where it runs: the program's
 * stdio are pipes (not a pty: stdout and stderr stay apart and binary data passes unchanged, as
 * with a native run whose stdio are files or pipes), and the relay carries them, the signals
 * and the exit status over the exec link. */
#include "exec_priv.h"

#include "mos/ident.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_HIGH (256u * 1024) /* stop reading the program's output while this much is queued */
#define DRAIN_MAX (16u << 20)  /* output still taken after the program ended (its children
                                  may hold the pipes and write on) */

struct relay {
    struct mos_exec_link *link;
    pid_t pid;
    int pidfd;
    int in_fd, out_fd[2];      /* our ends: the program's stdin, stdout, stderr; -1 when shut */
    uint8_t *stdin_buf;        /* stdin received, not yet in the pipe (at most a window) */
    size_t stdin_len;
    int stdin_eof;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- the program's side of the fork ---------------------------------------------------------- */

static void child_dir(const struct mos_exec_spec *s)
{
    struct passwd *pw;

    if (s->cwd && s->cwd[0] && chdir(s->cwd) == 0)
        return;
    pw = getpwuid(s->uid);
    const char *home = pw && pw->pw_dir && chdir(pw->pw_dir) == 0 ? pw->pw_dir : "/";
    if (strcmp(home, "/") == 0 && chdir("/") != 0)
        home = "?";
    fprintf(stderr, "mosrun: %s does not exist on %s; running in %s\n",
            s->cwd && s->cwd[0] ? s->cwd : "the working directory", s->node, home);
}

/* execvp reports EACCES when some directory of PATH could not be searched, even if the
 * program is in none of them: a shell says "not found" (127) then, as bash skips directories
 * it cannot search, and so do we. */
static int exec_error(const char *name, int e)
{
    const char *path = getenv("PATH");
    char file[4096];

    if (e != EACCES || strchr(name, '/') || !path)
        return e;
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        struct stat st;
        snprintf(file, sizeof(file), "%.*s/%s", (int)n, n ? p : ".", name);
        if (stat(file, &st) == 0)
            return e; /* it is there: the EACCES is real */
        p += n + (p[n] == ':');
    }
    return ENOENT;
}

/* As the user now: the limit can only go down (raising a hard limit needs CAP_SYS_RESOURCE),
 * so it never exceeds what the relay had, whatever the request said. */
static int user_memlock(const struct rlimit *want)
{
    struct rlimit now, set;

    if (getrlimit(RLIMIT_MEMLOCK, &now) != 0)
        return -1;
    set.rlim_max = want->rlim_max < now.rlim_max ? want->rlim_max : now.rlim_max;
    set.rlim_cur = want->rlim_cur < set.rlim_max ? want->rlim_cur : set.rlim_max;
    return setrlimit(RLIMIT_MEMLOCK, &set);
}

static void __attribute__((noreturn)) child_main(const struct mos_exec_spec *s, int in, int out,
                                                 int err, pid_t relay)
{
    extern char **environ;
    sigset_t none;

    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(126);
    syscall(SYS_close_range, 3, ~0u, 0);
    /* Its own session: no controlling terminal of mosd's, and one group the relay can signal
     * as a terminal signals its foreground job. */
    setsid();
    for (int sig = 1; sig < 65; sig++)
        signal(sig, SIG_DFL); /* mosd ignores SIGPIPE; a native program does not */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (s->cgroup_procs && s->cgroup_procs[0]) {
        FILE *f = fopen(s->cgroup_procs, "we");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    /* mosd runs at nice -10 so that migrations keep pace, with unlimited locked memory for
     * verbs: the user's program must have neither. Its nice is 0; its memlock limit is the
     * user's at home (set after the credential change below). */
    setpriority(PRIO_PROCESS, 0, 0);
    if (setgroups(s->n_groups, s->groups) != 0 || setresgid(s->gid, s->gid, s->gid) != 0 ||
        setresuid(s->uid, s->uid, s->uid) != 0) {
        fprintf(stderr, "mosrun: cannot become uid %d on %s: %s\n", (int)s->uid, s->node,
                strerror(errno));
        _exit(126);
    }
    if (s->has_memlock && user_memlock(&s->memlock) != 0) {
        fprintf(stderr, "mosrun: cannot set the locked-memory limit on %s: %s\n", s->node,
                strerror(errno));
        _exit(126);
    }
    /* After the credential change, which clears it; then check the relay is still there. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != relay)
        _exit(126);
    umask(s->umask);
    child_dir(s);
    environ = (char **)s->envp;
    execvp(s->argv[0], s->argv);
    int e = exec_error(s->argv[0], errno);
    fprintf(stderr, "mosrun: cannot run %s on %s: %s\n", s->argv[0], s->node, strerror(e));
    _exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
}

/* Pipes for 0/1/2 (our ends non-blocking), the program forked. */
static int relay_spawn(struct relay *r, const struct mos_exec_spec *s)
{
    int in[2], out[2], err[2];
    pid_t self = getpid();

    if (pipe2(in, O_CLOEXEC) != 0)
        return mos_errno_status();
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]), close(in[1]);
        return mos_errno_status();
    }
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return mos_errno_status();
    }
    r->pid = fork();
    if (r->pid == 0)
        child_main(s, in[0], out[1], err[1], self);
    close(in[0]), close(out[1]), close(err[1]);
    r->in_fd = in[1];
    r->out_fd[0] = out[0];
    r->out_fd[1] = err[0];
    if (r->pid < 0)
        return mos_errno_status();
    for (int i = 0; i < 3; i++) {
        int fd = i == 0 ? r->in_fd : r->out_fd[i - 1];
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
    return r->pidfd < 0 ? mos_errno_status() : 0;
}

/* The relay itself need not stay root: what it does from now on (signal the program, read
 * the link) the user may do, and a flaw in it then gives nothing more. */
static int relay_drop(const struct mos_exec_spec *s)
{
    if (setgroups(s->n_groups, s->groups) != 0 || setresgid(s->gid, s->gid, s->gid) != 0 ||
        setresuid(s->uid, s->uid, s->uid) != 0) {
        int rc = mos_errno_status();
        mos_err("exec", "relay cannot become uid %d: %s", (int)s->uid, mos_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---- relaying ------------------------------------------------------------------------------- */

static int on_frame(struct relay *r, const struct mos_exec_frame *f)
{
    switch (f->type) {
    case MOS_EXEC_STDIN:
        if (r->stdin_eof || r->stdin_len + f->len > MOS_EXEC_STDIN_WINDOW)
            return MOS_E_PROTO; /* more than the window: home does not follow the protocol */
        if (f->len == 0)
            r->stdin_eof = 1;
        memcpy(r->stdin_buf + r->stdin_len, f->data, f->len);
        r->stdin_len += f->len;
        return 0;
    case MOS_EXEC_SIGNAL:
        kill(f->flags & MOS_EXEC_SIG_GROUP ? -r->pid : r->pid, (int)f->value);
        return 0;
    default:
        return MOS_E_PROTO; /* relay-to-home frames do not come this way */
    }
}

static int on_link(struct relay *r)
{
    struct mos_exec_frame f;
    int rc = mos_exec_link_recv(r->link);

    while (rc == 0 && (rc = mos_exec_link_next(r->link, &f)) == 1)
        rc = on_frame(r, &f);
    return rc;
}

/* Stdin into the program's pipe; what went in is acknowledged, so home may send more. A
 * program that closed its stdin makes the rest vanish, acknowledged all the same. */
static int feed_stdin(struct relay *r)
{
    ssize_t n = r->in_fd < 0 ? (ssize_t)r->stdin_len : write(r->in_fd, r->stdin_buf, r->stdin_len);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < 0) {
        close_fd(&r->in_fd);
        n = (ssize_t)r->stdin_len;
    }
    memmove(r->stdin_buf, r->stdin_buf + n, r->stdin_len - (size_t)n);
    r->stdin_len -= (size_t)n;
    if (n > 0) {
        struct mos_exec_frame ack = {.type = MOS_EXEC_ACK, .value = (uint32_t)n};
        int rc = mos_exec_link_queue(r->link, &ack);
        if (rc != 0)
            return rc;
    }
    if (r->stdin_eof && r->stdin_len == 0)
        close_fd(&r->in_fd); /* end of input reaches the program as end of file */
    return 0;
}

/* Read one chunk of stdout (i 0) or stderr (i 1) into the queue; 1 if there was any. */
static int take_output(struct relay *r, int i)
{
    static uint8_t buf[MOS_EXEC_MAX_DATA];
    ssize_t n = read(r->out_fd[i], buf, sizeof(buf));

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        close_fd(&r->out_fd[i]);
        return 0;
    }
    struct mos_exec_frame f = {.type = i ? MOS_EXEC_STDERR : MOS_EXEC_STDOUT,
                               .len = (uint32_t)n, .data = buf};
    return mos_exec_link_queue(r->link, &f) == 0 ? 1 : -ENOMEM;
}

/* The program ended: what it wrote is still in the pipes; send it, then its status. */
static int relay_finish(struct relay *r)
{
    struct mos_exec_frame f = {.type = MOS_EXEC_EXIT};
    size_t taken = 0;
    int status = 0;

    waitpid(r->pid, &status, 0);
    for (int i = 0; i < 2; i++)
        while (r->out_fd[i] >= 0 && taken < DRAIN_MAX) {
            int got = take_output(r, i);
            if (got <= 0)
                break;
            taken += MOS_EXEC_MAX_DATA;
            if (mos_exec_link_queued(r->link) > OUT_HIGH && mos_exec_link_drain(r->link, 30000))
                return MOS_E_PEER_GONE;
        }
    f.value = (uint32_t)status;
    /* Its descendants are left alone, as ssh leaves them without a terminal: a daemon that
     * forked before its parent exited (orted --daemonize) may not have left the group yet. */
    if (mos_exec_link_queue(r->link, &f) != 0 || mos_exec_link_drain(r->link, 30000) != 0)
        return MOS_E_PEER_GONE;
    return 0;
}

static int relay_loop(struct relay *r)
{
    for (;;) {
        int out_room = mos_exec_link_queued(r->link) < OUT_HIGH;
        struct pollfd p[5] = {
            {mos_exec_link_fd(r->link), POLLIN | (mos_exec_link_queued(r->link) ? POLLOUT : 0), 0},
            {r->pidfd, POLLIN, 0},
            {r->stdin_len ? r->in_fd : -1, POLLOUT, 0},
            {out_room ? r->out_fd[0] : -1, POLLIN, 0},
            {out_room ? r->out_fd[1] : -1, POLLIN, 0},
        };
        int rc = 0;

        if (poll(p, 5, -1) < 0) {
            if (errno == EINTR)
                continue;
            return mos_errno_status();
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
            rc = on_link(r);
        if (rc == 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP) || (r->stdin_len && r->in_fd < 0)))
            rc = feed_stdin(r);
        if (rc == 0 && r->stdin_eof && r->stdin_len == 0 && r->in_fd >= 0)
            close_fd(&r->in_fd);
        for (int i = 0; i < 2 && rc == 0; i++)
            if (p[3 + i].revents & (POLLIN | POLLHUP))
                rc = take_output(r, i) < 0 ? -ENOMEM : 0;
        if (rc == 0)
            rc = mos_exec_link_flush(r->link);
        if (rc != 0)
            return rc;
        if (p[1].revents & POLLIN)
            return relay_finish(r);
    }
}

int mos_exec_relay_run(struct mos_link *link_in, const struct mos_exec_spec *spec)
{
    struct relay r = {.pid = -1, .pidfd = -1, .in_fd = -1, .out_fd = {-1, -1}};
    char why[200];
    int rc;

    /* Checked again here, where setgroups and setgid happen, whoever filled in the spec. */
    if (mos_ident_check(spec->uid, spec->gid, spec->groups, spec->n_groups, why,
                        sizeof(why)) != 0) {
        mos_err("exec", "refused to start %s: %s", spec->argv[0], why);
        mos_link_close(link_in);
        return MOS_E_IDENTITY;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = mos_exec_link_new(link_in, &r.link);
    if (rc != 0) {
        mos_link_close(link_in);
        return rc;
    }
    r.stdin_buf = malloc(MOS_EXEC_STDIN_WINDOW);
    rc = r.stdin_buf ? relay_spawn(&r, spec) : -ENOMEM;
    if (rc == 0)
        rc = relay_drop(spec);
    if (rc == 0)
        rc = relay_loop(&r);
    if (rc != 0 && r.pid > 0) {
        /* the link is gone (or never worked): nobody is left to see the program's output */
        mos_warn("exec", "%s (pid %d) killed: its link home failed: %s", spec->argv[0],
                 (int)r.pid, mos_strerror(rc));
        kill(-r.pid, SIGKILL);
        kill(r.pid, SIGKILL);
        waitpid(r.pid, NULL, 0);
    }
    close_fd(&r.in_fd);
    close_fd(&r.out_fd[0]);
    close_fd(&r.out_fd[1]);
    close_fd(&r.pidfd);
    free(r.stdin_buf);
    mos_exec_link_free(r.link);
    return rc;
}
