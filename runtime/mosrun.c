/* mosrun: start a program under mos. It runs natively at home (no ptrace, no seccomp, nothing
 * preloaded) and is registered with the node's mosd; mosrun stays as its parent for its whole
 * life, passes signals on, and exits with its exit status. */
#include "lib/control.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

struct mosrun_opts {
    int locked;       /* -L: never migrate automatically */
    const char *config;
    char **argv;
};

static const int passed_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                     SIGWINCH, SIGCONT, 0};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mosrun [-L|-l] [-h] [--config FILE] PROGRAM [ARGS...]\n"
            "  -h   stay at home (the default placement)\n"
            "  -L   never migrate this job automatically; -l allows it (default)\n"
            "Not in this version: -b, -r NODE, -m MB, -E, -C FILE, -R FILE (they need the\n"
            "migration service of mosd).\n");
}

static int parse(int argc, char **argv, struct mosrun_opts *o)
{
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "-L") == 0) {
            o->locked = 1;
        } else if (strcmp(a, "-l") == 0) {
            o->locked = 0;
        } else if (strcmp(a, "-h") == 0) {
            continue;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            o->config = argv[++i];
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strchr("brmECR", a[1]) && a[2] == '\0') {
            fprintf(stderr, "mosrun: %s is not available in this version of mos\n", a);
            return -1;
        } else {
            fprintf(stderr, "mosrun: unknown option '%s' (mosrun --help)\n", a);
            return -1;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "mosrun: no program to run (mosrun --help)\n");
        return -1;
    }
    o->argv = argv + i;
    return 0;
}

/* Register with mosd; the connection stays open for the job's life (its close tells mosd the
 * job ended). No mosd: the job runs unmanaged, said once. */
static int register_job(const struct mosrun_opts *o, pid_t child)
{
    struct mos_config cfg;
    struct json_object *req, *resp = NULL;
    char path[108], cmd[256] = "";
    int self, fd, rc;

    if (mos_runtime_config(o->config, &cfg, &self) != 0)
        return -1;
    rc = mos_control_socket_path(&cfg, self, path, sizeof(path));
    mos_config_free(&cfg);
    fd = rc == 0 ? mos_control_connect(path) : rc;
    if (fd < 0) {
        fprintf(stderr, "mosrun: no mosd on this node (%s): %s runs here, unmanaged\n", path,
                o->argv[0]);
        return -1;
    }
    for (char **a = o->argv; *a; a++) {
        size_t used = strlen(cmd);
        snprintf(cmd + used, sizeof(cmd) - used, "%s%s", used ? " " : "", *a);
    }
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("register"));
    json_object_object_add(req, "pid", json_object_new_int(child));
    json_object_object_add(req, "cmd", json_object_new_string(cmd));
    json_object_object_add(req, "locked", json_object_new_int(o->locked));
    rc = mos_control_send(fd, req);
    if (rc == 0)
        rc = mos_control_recv(fd, &resp, 10000);
    if (rc == 0 && !json_object_get_boolean(json_object_object_get(resp, "ok"))) {
        fprintf(stderr, "mosrun: mosd refused the job: %s\n",
                mos_json_str(resp, "error", "?"));
        rc = -1;
    }
    json_object_put(req);
    json_object_put(resp);
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Exit the way the job did, so a shell sees the same status (or the same signal). */
static void exit_like(int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        _exit(128 + sig);
    }
    exit(WEXITSTATUS(status));
}

/* A signal the kernel sent (a terminal's Ctrl-C) reached the job too, as it shares our process
 * group; one a user sent to mosrun is meant for the job and is passed on. */
static void pass_signal(pid_t child, const struct signalfd_siginfo *si)
{
    if (si->ssi_code == SI_KERNEL || (si->ssi_code > 0 && si->ssi_signo != SIGCONT))
        return;
    kill(child, (int)si->ssi_signo);
}

static int supervise(pid_t child, int sfd, int mosd_fd)
{
    for (;;) {
        struct pollfd fds[2] = {{sfd, POLLIN, 0}, {mosd_fd, POLLIN, 0}};
        struct signalfd_siginfo si;
        int status;

        if (poll(fds, mosd_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
            return 1;
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            /* mosd went away (restarted): the job goes on; it re-registers on its next start */
            close(mosd_fd);
            mosd_fd = -1;
        }
        if (!(fds[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si))
            continue;
        if (si.ssi_signo != SIGCHLD) {
            pass_signal(child, &si);
            continue;
        }
        while (waitpid(child, &status, WNOHANG | WUNTRACED) == child) {
            if (WIFSTOPPED(status)) {
                raise(SIGSTOP); /* the shell sees the job stopped; SIGCONT wakes both */
                continue;
            }
            exit_like(status);
        }
    }
}

int main(int argc, char **argv)
{
    struct mosrun_opts o = {0};
    sigset_t set, old;
    pid_t child;
    int sfd, mosd_fd;

    if (parse(argc, argv, &o) != 0)
        return 2;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (const int *s = passed_signals; *s; s++)
        sigaddset(&set, *s);
    sigprocmask(SIG_BLOCK, &set, &old);
    child = fork();
    if (child < 0) {
        perror("mosrun: fork");
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(o.argv[0], o.argv);
        fprintf(stderr, "mosrun: cannot run %s: %s\n", o.argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        perror("mosrun: signalfd");
        return 1;
    }
    mosd_fd = register_job(&o, child);
    return supervise(child, sfd, mosd_fd);
}
