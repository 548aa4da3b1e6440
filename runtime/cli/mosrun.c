/* mosrun: start a program under mos. It runs natively at home (no ptrace, no seccomp, nothing
 * preloaded) and is registered with the node's mosd; mosrun stays as its parent for its whole
 * life, passes signals on, and exits with its exit status. */
#include "control.h"
#include "mosrun_exec.h"
#include "mos/forward.h"
#include "mos/key.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/size.h"
#include "mos/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct mosrun_opts {
    int locked;       /* -L: never migrate automatically */
    int native;       /* -E: run natively on another node, stdio here */
    const char *start_on; /* -r NODE, or "@best" for -b */
    long mem_mib;         /* -m SIZE: memory the job needs, for -b (MiB, rounded up) */
    const char *ckpt;     /* -C FILE: where "mosmigrate PID checkpoint" writes */
    const char *ssh_port; /* -p PORT: accepted from ssh-like callers (-E), unused */
    const char *restart;  /* -R FILE: restart from this checkpoint instead of running PROG */
    const char *config;
    const char *nodes;    /* -N NODE,NODE...: the only nodes it may run on (and home) */
    char **argv;
};

/* Where the job is, as mosrun sees it. */
enum job_state {
    JOB_HOME,     /* running natively as our child */
    JOB_PREPARED, /* mosd is moving it: we hold its descriptors and wait for a supervisor */
    JOB_AWAY,     /* running on another node: we are its deputy */
};

struct mosrun {
    pid_t child;
    pid_t child_ppid;
    int sfd, mosd_fd;
    int reserved_min;     /* our own descriptors live at and above this */
    enum job_state state;
    int link_listen;
    struct mos_link link; /* the supervisor's link, once it has proved the token (fd -1) */
    uint8_t token[MOS_LINK_TOKEN_BYTES];
    char node_addr[MOS_ADDR_MAX];
    char where[MOS_NODE_NAME_MAX];
    const char *ckpt;     /* -C FILE */
    char mosd_path[108];  /* mosd's command socket; "" once reconnecting is pointless */
    int where_known;      /* `where` names the node the job runs on now (told by mosd, or
                             the address of the latest supervisor's link) */
    struct mos_config cfg; /* the cluster's nodes (cfg.n_nodes 0: none known) */
};

static const int passed_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                     SIGWINCH, SIGCONT, 0};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mosrun [-L|-l] [-h|-r NODE|-b] [-N LIST] [-E] [--config FILE] PROGRAM [ARGS...]\n"
            "  -h        start at home (the default)\n"
            "  -r NODE   start on NODE (it starts here and moves there at once)\n"
            "  -b        start on the best node now (by opportunity cost)\n"
            "  -m SIZE   the memory the job needs, for -b: a plain number is MiB (512), a suffix\n"
            "            says its unit (512M, 4G)\n"
            "  -N LIST   run only on these nodes (comma-separated names, e.g. a Slurm job's\n"
            "            expanded node list) or at home: every move elsewhere is refused\n"
            "  -L        never migrate this job automatically; -l allows it (default)\n"
            "  -C FILE   the job's checkpoint file (mosmigrate PID checkpoint writes it)\n"
            "  -R FILE   restart a checkpoint instead of starting a program\n"
            "  -E        run it natively on NODE (-r) or the best node (the default for -E): an\n"
            "            ordinary process there, never migrated, its stdio and signals here.\n"
            "            As ssh does, the words are joined and run by your shell there, and\n"
            "            -r USER@NODE (yourself only) and -p PORT (unused) are accepted: OpenMPI\n"
            "            takes it as its launcher, mpirun --mca plm_rsh_agent \"mosrun -E -r\"\n");
}

/* -m: a plain number has always meant MiB; mosd is told whole MiB, rounded up. 1 PiB bounds
 * what mosd multiplies back into bytes. */
static int parse_mem(const char *text, long *mib)
{
    char why[160];
    uint64_t bytes;

    if (mos_size_parse_range(text, 1u << 20, 0, 1ull << 50, &bytes, why, sizeof(why)) != 0) {
        fprintf(stderr, "mosrun: -m %s\n", why);
        return -1;
    }
    *mib = (long)((bytes + (1u << 20) - 1) >> 20);
    return 0;
}

/* -N: 1..128 names of [A-Za-z0-9._-], 1..63 long each, joined by commas (mosd's limits). */
static int nodes_ok(const char *list)
{
    size_t len = 0, count = 1;

    for (const char *p = list;; p++) {
        if (*p == ',' || *p == '\0') {
            if (len == 0 || len > 63)
                return 0;
            if (*p == '\0')
                return count <= 128;
            len = 0;
            count++;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.') {
            len++;
        } else {
            return 0;
        }
    }
}

static struct json_object *nodes_json(const char *list)
{
    struct json_object *arr = json_object_new_array();
    const char *p = list;

    for (;;) {
        size_t len = strcspn(p, ",");
        json_object_array_add(arr, json_object_new_string_len(p, (int)len));
        if (!p[len])
            return arr;
        p += len + 1;
    }
}

/* What ssh-like agents are given: `user@node` (only the caller's own name: -E runs as the
 * caller) and `-p PORT` (mosd's links need no port from the user; accepted and unused). */
static int ssh_target(struct mosrun_opts *o)
{
    const char *at = o->start_on ? strchr(o->start_on, '@') : NULL;
    struct passwd *pw;
    char *end;

    if (o->ssh_port) {
        long port = strtol(o->ssh_port, &end, 10);
        if (*end || end == o->ssh_port || port < 1 || port > 65535) {
            fprintf(stderr, "mosrun: -p '%s' is not a port number\n", o->ssh_port);
            return -1;
        }
    }
    if (!at || at == o->start_on) /* "@best" (-b) */
        return 0;
    pw = getpwuid(getuid());
    if (!pw || strlen(pw->pw_name) != (size_t)(at - o->start_on) ||
        strncmp(pw->pw_name, o->start_on, (size_t)(at - o->start_on)) != 0) {
        fprintf(stderr, "mosrun: -E runs programs as you; '%.*s@' is someone else\n",
                (int)(at - o->start_on), o->start_on);
        return -1;
    }
    o->start_on = at + 1;
    return 0;
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
            o->start_on = NULL;
        } else if (strcmp(a, "-r") == 0 && i + 1 < argc) {
            o->start_on = argv[++i];
        } else if (strcmp(a, "-N") == 0 && i + 1 < argc) {
            o->nodes = argv[++i];
            if (!nodes_ok(o->nodes)) {
                fprintf(stderr, "mosrun: -N '%.80s': give 1 to 128 node names joined by commas\n",
                        o->nodes);
                return -1;
            }
        } else if (strcmp(a, "-b") == 0) {
            o->start_on = "@best";
        } else if (strcmp(a, "-m") == 0 && i + 1 < argc) {
            if (parse_mem(argv[++i], &o->mem_mib) != 0)
                return -1;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            o->config = argv[++i];
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "-C") == 0 && i + 1 < argc) {
            o->ckpt = argv[++i];
        } else if (strcmp(a, "-R") == 0 && i + 1 < argc) {
            o->restart = argv[++i];
        } else if (strcmp(a, "-E") == 0) {
            o->native = 1;
        } else if (strcmp(a, "-p") == 0 && i + 1 < argc) {
            o->ssh_port = argv[++i];
        } else {
            fprintf(stderr, "mosrun: unknown option '%s' (mosrun --help)\n", a);
            return -1;
        }
    }
    if (o->restart && i < argc) {
        fprintf(stderr, "mosrun: -R FILE restarts a checkpoint; give no program with it\n");
        return -1;
    }
    if (o->native && o->nodes) {
        fprintf(stderr, "mosrun: -N restricts migrations; -E programs do not migrate: use -r\n");
        return -1;
    }
    if (o->native && (o->restart || o->ckpt)) {
        fprintf(stderr, "mosrun: -E runs a native process: no -C or -R with it\n");
        return -1;
    }
    if (!o->restart && i >= argc) {
        fprintf(stderr, "mosrun: no program to run (mosrun --help)\n");
        return -1;
    }
    if (o->native && ssh_target(o) != 0)
        return -1;
    if (!o->native && o->ssh_port) {
        fprintf(stderr, "mosrun: -p PORT is for -E (as an ssh-like agent) only\n");
        return -1;
    }
    o->argv = argv + i;
    return 0;
}

/* Register with mosd; the connection stays open for the job's life (its close tells mosd the
 * job ended). No mosd: the job runs unmanaged, said once. */
static int register_job(const struct mosrun_opts *o, struct mosrun *m)
{
    pid_t child = m->child;
    struct mos_config cfg;
    struct json_object *req, *resp = NULL;
    char path[108], cmd[256] = "";
    int self, fd, rc;

    if (mos_runtime_config(o->config, &cfg, &self) != 0)
        return -1;
    rc = mos_control_socket_path(&cfg, self, path, sizeof(path));
    snprintf(m->node_addr, sizeof(m->node_addr), "%s", cfg.nodes[self].addr);
    m->cfg = cfg; /* kept: a supervisor's link says by its address where the job went */
    fd = rc == 0 ? mos_control_connect(path) : rc;
    if (fd >= 0)
        snprintf(m->mosd_path, sizeof(m->mosd_path), "%s", path);
    if (fd < 0) {
        fprintf(stderr, "mosrun: no mosd on this node (%s): %s runs here, unmanaged\n", path,
                o->argv[0]);
        return -1;
    }
    if (o->restart)
        snprintf(cmd, sizeof(cmd), "(restarted from %s)", o->restart);
    for (char **a = o->argv; *a; a++) {
        size_t used = strlen(cmd);
        snprintf(cmd + used, sizeof(cmd) - used, "%s%s", used ? " " : "", *a);
    }
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("register"));
    json_object_object_add(req, "pid", json_object_new_int(child));
    json_object_object_add(req, "cmd", json_object_new_string(cmd));
    json_object_object_add(req, "locked", json_object_new_int(o->locked));
    /* our own descriptors start here: on the job's way back, the ones below are its own */
    json_object_object_add(req, "reserved_min", json_object_new_int(m->reserved_min));
    if (o->start_on)
        json_object_object_add(req, "start_on", json_object_new_string(o->start_on));
    if (o->mem_mib)
        json_object_object_add(req, "mem_mib", json_object_new_int64(o->mem_mib));
    if (o->nodes)
        json_object_object_add(req, "nodes", nodes_json(o->nodes));
    rc = mos_control_send(fd, req);
    if (rc == 0)
        rc = mos_control_recv(fd, &resp, 10000);
    if (rc == 0 && !json_object_get_boolean(json_object_object_get(resp, "ok"))) {
        fprintf(stderr, "mosrun: mosd refused the job: %s\n",
                mos_json_str(resp, "error", "?"));
        rc = -1;
    }
    if (rc == 0 && mos_json_str(resp, "start_error", NULL))
        fprintf(stderr, "mosrun: cannot start on %s: %s; it runs here\n",
                strcmp(o->start_on, "@best") ? o->start_on : "the best node",
                mos_json_str(resp, "start_error", "?"));
    json_object_put(req);
    json_object_put(resp);
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void mosrun_exit_like(int status)
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

/* Our own descriptors go to the top of the table, so that below it the table can be the job's
 * own: the deputy executes the job's calls with the job's fd numbers. */
static int move_high(struct mosrun *m, int fd)
{
    int high;

    if (fd < 0 || fd >= m->reserved_min)
        return fd;
    high = fcntl(fd, F_DUPFD_CLOEXEC, m->reserved_min);
    close(fd);
    return high;
}

/* Whether the job's fd n is close-on-exec: the O_CLOEXEC bit of its fdinfo flags (octal). */
static int fd_cloexec_of(pid_t pid, int n)
{
    char path[64], line[128];
    unsigned long flags = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, n);
    if (!(f = fopen(path, "re")))
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "flags: %lo", &flags) == 1)
            break;
    fclose(f);
    return (flags & O_CLOEXEC) != 0;
}

/* Make our descriptors below the reserved range exactly the job's: the same numbers, the same
 * open file descriptions (pidfd_getfd), so offsets stay shared and nothing else is open. */
static int mirror_fds(struct mosrun *m, char *why, size_t len)
{
    char dir[64];
    int keep[1024] = {0};
    DIR *d = NULL;
    struct dirent *e;

    /* Our own working descriptors go high first: below, every number is about to be the job's. */
    int pidfd = move_high(m, (int)syscall(SYS_pidfd_open, m->child, 0));
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)m->child);
    int dirfd = move_high(m, open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dirfd >= 0 && !(d = fdopendir(dirfd)))
        close(dirfd);
    if (pidfd < 0 || !d) {
        snprintf(why, len, "cannot see the job's descriptors: %s", strerror(errno));
        if (pidfd >= 0)
            close(pidfd);
        return -1;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int n = atoi(e->d_name);
        if (n >= m->reserved_min) {
            snprintf(why, len, "the job uses fd %d, in mosrun's reserved range", n);
            closedir(d);
            close(pidfd);
            return -1;
        }
        int got = (int)syscall(SYS_pidfd_getfd, pidfd, n, 0);
        if (got < 0 && errno == EBADF) {
            /* pidfd_getfd does not hand out O_PATH descriptors; an O_PATH open of the same
             * path is all such a descriptor is */
            char link[96];
            snprintf(link, sizeof(link), "%s/%d", dir, n);
            got = open(link, O_PATH);
        }
        /* Closed since the listing: before the freeze the job still runs (the pass made once it
         * is frozen sees its final table), so that number is simply not the job's. */
        if (got < 0 && errno == ENOENT)
            continue;
        if (got < 0 || (got != n && dup2(got, n) < 0)) {
            snprintf(why, len, "cannot take the job's fd %d: %s", n, strerror(errno));
            closedir(d);
            close(pidfd);
            return -1;
        }
        if (got != n)
            close(got);
        fcntl(n, F_SETFD, fd_cloexec_of(m->child, n) ? FD_CLOEXEC : 0);
        keep[n] = 1;
    }
    closedir(d);
    close(pidfd);
    for (int fd = 0; fd < m->reserved_min; fd++)
        if (!keep[fd])
            close(fd);
    return 0;
}

static void send_reply(struct mosrun *m, int ok, const char *error, int port)
{
    struct json_object *r = json_object_new_object();

    json_object_object_add(r, "ok", json_object_new_boolean(ok));
    if (error)
        json_object_object_add(r, "error", json_object_new_string(error));
    if (port > 0)
        json_object_object_add(r, "port", json_object_new_int(port));
    mos_control_send(m->mosd_fd, r);
    json_object_put(r);
}

static void on_prepare(struct mosrun *m, struct json_object *msg)
{
    mos_key_t token;
    char why[160];
    int port = 0;

    if (m->state != JOB_HOME || mos_key_parse_hex(mos_json_str(msg, "token", ""), &token) != 0) {
        send_reply(m, 0, "not ready to move", 0);
        return;
    }
    /* Where Yama restricts ptrace to descendants: the job, coming back natively into its shell,
     * takes its descriptors from us with pidfd_getfd. */
    prctl(PR_SET_PTRACER, m->child, 0, 0, 0);
    if (mirror_fds(m, why, sizeof(why)) != 0) {
        send_reply(m, 0, why, 0);
        return;
    }
    m->link_listen = move_high(m, mos_deputy_link_listen(m->node_addr, &port));
    if (m->link_listen < 0) {
        send_reply(m, 0, "cannot listen for the deputy link", 0);
        return;
    }
    memcpy(m->token, token.bytes, sizeof(m->token));
    m->state = JOB_PREPARED;
    send_reply(m, 1, NULL, port);
}

static void on_abort(struct mosrun *m)
{
    if (m->link_listen >= 0)
        close(m->link_listen);
    mos_link_close(&m->link);
    m->link_listen = -1;
    m->state = JOB_HOME;
}

/* The target's supervisor connects before it confirms the restore, so that the job never runs
 * anywhere without a working way home. */
static void on_link_ready(struct mosrun *m)
{
    char why[160];

    /* A supervisor knocking means the job is frozen and streamed: its descriptor table is
     * final. Those taken at prepare may be stale (the job ran on until the worker froze it, and
     * a file opened in between would be missing here: its writes lost, its number given to
     * the next open), so take them again, before the link is proved: refusing it then fails
     * the move before READY and the job resumes at home. */
    if (m->state == JOB_PREPARED && mirror_fds(m, why, sizeof(why)) != 0) {
        close(m->link_listen);
        m->link_listen = -1;
        return;
    }
    struct mos_link got;

    if (mos_deputy_link_accept(m->link_listen, m->token, 10000, &got) != 0)
        return;
    mos_link_close(&m->link);
    got.fd = move_high(m, got.fd);
    m->link = got;
}

static void on_checkpoint(struct mosrun *m, struct json_object *msg);

/* mosd went away (killed, restarted): the job goes on, and we try to reach the next mosd,
 * which takes the job back from its state file once the kernel tells it we are the job's
 * mosrun. Over fd, an unconnected socket among our own descriptors: 1 when attached (fd is
 * mosd_fd now), 0 when no mosd listens yet (fd stays for the next try), -1 when fd is spent.
 * A mosd that does not know the job (no state kept) says so once; we stop asking and the job
 * runs on, unmanaged. */
static int reattach_over(struct mosrun *m, int fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct json_object *req, *resp = NULL;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->mosd_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return 0;
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("reattach"));
    json_object_object_add(req, "pid", json_object_new_int(m->child));
    /* where the job runs, when we know it: mosd believes its deputy over its own record (a
     * move may have landed while it was down); unknown, it keeps its record */
    if (m->state != JOB_AWAY || m->where_known)
        json_object_object_add(req, "where", json_object_new_string(
                                                 m->state == JOB_AWAY ? m->where : "home"));
    int rc = mos_control_send(fd, req);
    if (rc == 0)
        rc = mos_control_recv(fd, &resp, 5000);
    int ok = rc == 0 && json_object_get_boolean(json_object_object_get(resp, "ok"));
    if (ok) {
        m->mosd_fd = fd;
    } else {
        close(fd);
        if (rc == 0) { /* it answered no: it will not change its mind */
            fprintf(stderr, "mosrun: mosd restarted and does not take the job back (%s): it "
                    "runs on, unmanaged\n", mos_json_str(resp, "error", "?"));
            m->mosd_path[0] = '\0';
        }
    }
    json_object_put(req);
    json_object_put(resp);
    return ok ? 1 : -1;
}

static int mosd_socket(struct mosrun *m)
{
    return move_high(m, socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

/* The main thread's try (at home, or between two supervisors). */
static void reconnect_mosd(struct mosrun *m)
{
    int fd;

    if (m->mosd_fd >= 0 || !m->mosd_path[0] || (fd = mosd_socket(m)) < 0)
        return;
    if (reattach_over(m, fd) == 0)
        close(fd);
}

/* While the job is away, mos_deputy_serve holds the main thread: a keeper thread watches the
 * line to mosd meanwhile and, if mosd goes away, reattaches to the next one, so that mosd
 * knows where the job is (a move that landed while mosd was down included) without waiting for
 * the job's next move. The main thread does not touch mosd_fd until the keeper is joined. */
struct mosd_keeper {
    struct mosrun *m;
    int stop;  /* an eventfd: the deputy returned */
    int spare; /* made beforehand among our descriptors: the deputy's calls open the job's
                  files at the lowest free numbers, which a socket made now could take */
    pthread_t thread;
};

static void *keeper_main(void *arg)
{
    struct mosd_keeper *k = arg;
    struct mosrun *m = k->m;

    while (m->mosd_fd >= 0 || m->mosd_path[0]) {
        int lost = m->mosd_fd < 0;
        struct pollfd fds[2] = {{k->stop, POLLIN, 0}, {m->mosd_fd, POLLRDHUP, 0}};
        if (poll(fds, 2, lost ? 1000 : -1) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        if (!lost && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            close(m->mosd_fd);
            m->mosd_fd = -1;
        }
        if (m->mosd_fd >= 0 || !m->mosd_path[0])
            continue;
        if (k->spare < 0) /* a second restart within one stay: a short race, taken */
            k->spare = mosd_socket(m);
        if (k->spare >= 0 && reattach_over(m, k->spare) != 0)
            k->spare = -1;
    }
    return NULL;
}

static int serve_keeping_mosd(struct mosrun *m, struct mos_link *link,
                              const struct mos_deputy_opts *opts,
                              int *status)
{
    struct mosd_keeper k = {.m = m, .stop = -1, .spare = -1};
    int keeping = 0, rc;

    if (m->mosd_path[0]) {
        k.stop = move_high(m, eventfd(0, EFD_CLOEXEC));
        k.spare = mosd_socket(m);
        keeping = k.stop >= 0 && pthread_create(&k.thread, NULL, keeper_main, &k) == 0;
    }
    rc = mos_deputy_serve(link, opts, status);
    if (keeping) {
        uint64_t one = 1;
        if (write(k.stop, &one, sizeof(one)) == sizeof(one))
            pthread_join(k.thread, NULL);
    }
    if (k.spare >= 0)
        close(k.spare);
    if (k.stop >= 0)
        close(k.stop);
    return rc;
}

/* While the job is away, mosd may say it came back into its own process here ("native"). */
static int mosd_says_native(struct mosrun *m)
{
    struct json_object *msg;
    int native;

    if (mos_control_recv(m->mosd_fd, &msg, 5000) != 0) {
        close(m->mosd_fd); /* mosd restarted: the job goes on without it */
        m->mosd_fd = -1;
        return 0;
    }
    native = strcmp(mos_json_str(msg, "op", ""), "native") == 0;
    if (!native && strcmp(mos_json_str(msg, "op", ""), "checkpoint") == 0)
        on_checkpoint(m, msg); /* refused: it is not here */
    json_object_put(msg);
    return native;
}

/* A new supervisor's link: the job runs on the node of its address (as the config names
 * nodes); an address the config does not name leaves `where` unknown. */
static void where_of_link(struct mosrun *m, int link)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char addr[64];
    int node = -1;

    if (getpeername(link, (struct sockaddr *)&ss, &len) == 0 &&
        getnameinfo((struct sockaddr *)&ss, len, addr, sizeof(addr), NULL, 0,
                    NI_NUMERICHOST) == 0 && m->cfg.n_nodes)
        node = mos_config_find_node(&m->cfg, addr);
    m->where_known = node >= 0;
    if (node >= 0)
        snprintf(m->where, sizeof(m->where), "%s", m->cfg.nodes[node].name);
}

#define LINK_NATIVE (-2)

/* Between two supervisors: the old one (*link) said the guest is moving. Wait for the new one
 * to prove the token on our listener (0: *link is the new one), for the old one to say the
 * move failed and it serves again (0: *link unchanged), or for mosd to say the job runs
 * natively here again (LINK_NATIVE); -1: neither came. */
static int next_link(struct mosrun *m, struct mos_link *link)
{
    for (int waited_ms = 0; waited_ms < 300000; waited_ms += 1000) {
        enum mos_link_notice notice;

        reconnect_mosd(m); /* it tells us when the job is home again */
        struct pollfd fds[3] = {{m->link_listen, POLLIN, 0}, {link->fd, POLLIN, 0},
                                {m->mosd_fd, POLLIN, 0}};

        if (poll(fds, 3, 1000) <= 0)
            continue;
        if (m->mosd_fd >= 0 && (fds[2].revents & (POLLIN | POLLHUP)) && mosd_says_native(m)) {
            mos_link_close(link);
            return LINK_NATIVE;
        }
        if (fds[0].revents & POLLIN) {
            struct mos_link got;
            if (mos_deputy_link_accept(m->link_listen, m->token, 10000, &got) == 0) {
                mos_link_close(link);
                where_of_link(m, got.fd);
                got.fd = move_high(m, got.fd);
                *link = got;
                return 0;
            }
        }
        if (link->fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
            if (mos_deputy_link_read_notice(link, &notice) == 0 && notice == MOS_LINK_RESUME)
                return 0;
            mos_link_close(link); /* the old node is gone: only a new supervisor can still come */
        }
    }
    mos_link_close(link);
    return -1;
}

/* The job's pid at home is its shell while it is away (or nothing, if the shell is gone):
 * it goes with the job. */
static void __attribute__((noreturn)) end_away(struct mosrun *m, int status, int lost)
{
    kill(m->child, SIGKILL);
    waitpid(m->child, NULL, 0);
    if (lost) {
        fprintf(stderr, "mosrun: the job was lost with node %s\n", m->where);
        exit(MOSRUN_EXIT_LOST);
    }
    mosrun_exit_like(status);
}

/* Back to native at home: the job has its descriptors again (taken from ours), so ours below
 * the reserved range go, but 0-2, which were ours before the job ever left. */
static void back_home(struct mosrun *m)
{
    close(m->link_listen);
    m->link_listen = -1;
    mos_link_close(&m->link);
    if (m->reserved_min > 3)
        syscall(SYS_close_range, 3, m->reserved_min - 1, 0);
    snprintf(m->where, sizeof(m->where), "home");
    m->state = JOB_HOME;
}

/* The job now runs elsewhere: serve its system calls until it ends (then end as it did) or
 * until it runs natively here again (then return). */
static void become_deputy(struct mosrun *m, struct json_object *msg)
{
    struct mos_deputy_opts opts = {.identity = {m->child, m->child_ppid},
                                   .reserved_fd_min = m->reserved_min, .shell = m->child};
    struct mos_link link = m->link;
    int status = 0, rc = 0, next;

    snprintf(m->where, sizeof(m->where), "%s", mos_json_str(msg, "where", "?"));
    m->where_known = 1;
    m->state = JOB_AWAY;
    m->link = (struct mos_link){.fd = -1}; /* the link is this function's now */
    if (link.fd < 0 && (rc = mos_deputy_link_accept(m->link_listen, m->token, 60000, &link)) != 0) {
        fprintf(stderr, "mosrun: the job's new node %s never connected: %s\n", m->where,
                mos_strerror(rc));
        end_away(m, 0, 1);
    }
    link.fd = move_high(m, link.fd);
    /* The listener stays open while the job is away: each later move brings a new supervisor. */
    while ((rc = serve_keeping_mosd(m, &link, &opts, &status)) == MOS_DEPUTY_MOVING) {
        next = next_link(m, &link);
        if (next == LINK_NATIVE) {
            back_home(m);
            return;
        }
        if (next < 0)
            break;
    }
    end_away(m, status, rc != 0);
}

/* mosrun -R FILE: the checkpoint restored as our child (its files reopened, its stdio ours). */
static pid_t restart_job(const char *file)
{
    char husk[4096];
    struct mos_restore_opts ro = {.husk_path = mos_restore_husk_path(husk, sizeof(husk))};
    struct mos_restore *r;
    struct mos_img_io *io = NULL;
    int fd = open(file, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        fprintf(stderr, "mosrun: cannot open checkpoint %s: %s\n", file, strerror(errno));
        return -1;
    }
    int rc = mos_img_io_fd_open(fd, &io);
    if (rc == 0)
        rc = mos_restore_prepare(io, &ro, &r);
    mos_img_io_close(io);
    close(fd);
    if (rc != 0)
        return -1; /* the reason is logged */
    pid_t pid = mos_restore_pid(r);
    return mos_restore_commit(r) == 0 ? pid : -1;
}

/* mosmigrate PID checkpoint: write the job's checkpoint while it goes on (we are its parent,
 * so its owner's rights are enough). */
static void on_checkpoint(struct mosrun *m, struct json_object *msg)
{
    const char *file = mos_json_str(msg, "file", m->ckpt);
    struct json_object *r = json_object_new_object();
    /* descriptors a checkpoint cannot reopen (inherited pipes, sockets...) are left closed in
     * the restarted copy, with a warning, rather than refusing the whole checkpoint */
    struct mos_dump_opts dopts = {.close_other_fds = 1};
    int rc = -1;
    char why[300], reason[200] = "";

    if (m->state != JOB_HOME)
        snprintf(why, sizeof(why), "the job runs on %s; bring it home first", m->where);
    else if (!file)
        snprintf(why, sizeof(why), "no checkpoint file: start the job with mosrun -C FILE");
    else if ((rc = mos_migrate_check(m->child, &dopts, reason, sizeof(reason))) != 0)
        snprintf(why, sizeof(why), "it cannot be checkpointed: %s", reason);
    else if ((rc = mos_migrate_checkpoint(m->child, file, &dopts, 1, NULL)) != 0)
        snprintf(why, sizeof(why), "checkpoint failed: %s", mos_strerror(rc));
    else
        snprintf(why, sizeof(why), "checkpoint written to %s", file);
    json_object_object_add(r, "ok", json_object_new_boolean(rc == 0));
    json_object_object_add(r, "done", json_object_new_string("checkpoint"));
    json_object_object_add(r, rc == 0 ? "where" : "error", json_object_new_string(why));
    mos_control_send(m->mosd_fd, r);
    json_object_put(r);
}

/* One message from mosd; 0 to go on, -1 when mosd has gone. */
static int on_mosd(struct mosrun *m)
{
    struct json_object *msg;
    int rc = mos_control_recv(m->mosd_fd, &msg, 5000);
    const char *op;

    if (rc != 0) {
        /* mosd went away (restarted): a job at home goes on unmanaged */
        if (m->state == JOB_PREPARED)
            on_abort(m);
        close(m->mosd_fd);
        m->mosd_fd = -1;
        return -1;
    }
    op = mos_json_str(msg, "op", "");
    if (strcmp(op, "prepare") == 0)
        on_prepare(m, msg);
    else if (strcmp(op, "abort") == 0)
        on_abort(m);
    else if (strcmp(op, "checkpoint") == 0)
        on_checkpoint(m, msg);
    else if (strcmp(op, "migrated") == 0 && m->state == JOB_PREPARED)
        become_deputy(m, msg);
    json_object_put(msg);
    return 0;
}

static int supervise(struct mosrun *m)
{
    for (;;) {
        struct pollfd fds[3] = {{m->sfd, POLLIN, 0}, {m->mosd_fd, POLLIN, 0},
                                {m->link_listen, POLLIN, 0}};
        struct signalfd_siginfo si;
        int status;

        int waiting = m->mosd_fd < 0 && m->mosd_path[0];

        if (poll(fds, 3, waiting ? 1000 : -1) < 0 && errno != EINTR)
            return 1;
        if (waiting)
            reconnect_mosd(m); /* its fd is polled from the next round on */
        if (m->link_listen >= 0 && (fds[2].revents & POLLIN))
            on_link_ready(m);
        /* mosd first: its "migrated" is always queued before it kills the original */
        if (m->mosd_fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP)))
            on_mosd(m);
        if (!(fds[0].revents & POLLIN) || read(m->sfd, &si, sizeof(si)) != sizeof(si))
            continue;
        if (si.ssi_signo != SIGCHLD) {
            pass_signal(m->child, &si);
            continue;
        }
        while (waitpid(m->child, &status, WNOHANG | WUNTRACED) == m->child) {
            if (WIFSTOPPED(status)) {
                raise(SIGSTOP); /* the shell sees the job stopped; SIGCONT wakes both */
                continue;
            }
            mosrun_exit_like(status);
        }
    }
}

/* The job is registered only once it runs its own program: mosd may move it right away (-r, or
 * a quick mosmigrate), and a child caught between fork and exec would be moved as a copy of
 * mosrun that then execs at home. The pipe closes on a successful exec; a failed one sends its
 * errno, and mosrun exits as the child did. */
static pid_t start_job(char **argv, const sigset_t *mask)
{
    int p[2], err = 0, status;
    pid_t child;

    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("mosrun: pipe");
        return -1;
    }
    child = fork();
    if (child < 0) {
        perror("mosrun: fork");
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (child == 0) {
        close(p[0]);
        sigprocmask(SIG_SETMASK, mask, NULL);
        execvp(argv[0], argv);
        err = errno;
        fprintf(stderr, "mosrun: cannot run %s: %s\n", argv[0], strerror(err));
        if (write(p[1], &err, sizeof(err)) < 0)
            _exit(126);
        _exit(err == ENOENT ? 127 : 126);
    }
    close(p[1]);
    ssize_t n;
    do
        n = read(p[0], &err, sizeof(err));
    while (n < 0 && errno == EINTR);
    close(p[0]);
    if (n > 0) {
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        mosrun_exit_like(status);
    }
    return child;
}

int main(int argc, char **argv)
{
    struct mosrun_opts o = {0};
    sigset_t set, old;
    pid_t child;

    if (parse(argc, argv, &o) != 0)
        return 2;
    if (o.native)
        mosrun_exec_run(o.config, o.start_on ? o.start_on : "@best", o.mem_mib, o.argv);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (const int *s = passed_signals; *s; s++)
        sigaddset(&set, *s);
    sigprocmask(SIG_BLOCK, &set, &old);
    child = o.restart ? restart_job(o.restart) : start_job(o.argv, &old);
    if (child < 0)
        return 1;
    struct mosrun m = {.child = child, .child_ppid = getpid(), .link_listen = -1, .link = {.fd = -1},
                       .ckpt = o.ckpt};
    m.reserved_min = mos_deputy_reserved_min();
    m.sfd = move_high(&m, signalfd(-1, &set, SFD_CLOEXEC));
    if (m.sfd < 0) {
        perror("mosrun: signalfd");
        return 1;
    }
    m.mosd_fd = move_high(&m, register_job(&o, &m));
    return supervise(&m);
}
