/* The transport port: every incoming connection (key proved by the transport) is taken by an
 * acceptor child, which reads the first request and becomes what it asks for:
 *   guest   a job arriving (move_in.c): the acceptor becomes its supervisor;
 *   exec    mosrun -E (exec.c): the acceptor becomes the program's relay;
 *   move    the home of one of our guests asks us to move it on (relayed to its supervisor);
 *   where   one of our jobs now runs elsewhere (for mosps).
 * The acceptor says what it became in one line on its socketpair with mosd; guests'
 * supervisors keep that line for mosd's "move" orders and their answers.
 *
 * mosd accepts each connection itself, so that nobody can hold the port: connections are
 * handed to acceptors at once, up to MOSD_MAX_ACCEPTORS in their handshake and
 * MOSD_ACCEPTORS_PER_PEER from one address (more are closed unread), and an acceptor that has
 * not proved the key and read its request within MOSD_HANDSHAKE_S dies (a client sending a
 * byte every few seconds would otherwise keep it forever). */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Another node (the job's home) asks us to move one of our guests on. */
static int relay_move(mos_tp_conn_t *c, uint32_t id, struct json_object *o, int ctl)
{
    struct mosd_note n;
    char line[300];

    /* checked before it goes into a line: a name with a space or newline would forge one */
    if (mosd_note_parse(o, 1, &n, line, sizeof(line)) != 0)
        return mosd_peer_answer(c, id, 0, "error", line);
    dprintf(ctl, "move %s %d %s\n", n.home, (int)n.home_pid, n.node);
    if (mosd_line_read(ctl, line, sizeof(line)) < 0)
        snprintf(line, sizeof(line), "error mosd did not answer");
    int ok = strncmp(line, "ok ", 3) == 0;
    return mosd_peer_answer(c, id, ok, ok ? "where" : "error",
                  ok ? line + 3 : (strncmp(line, "error ", 6) == 0 ? line + 6 : line));
}

static void __attribute__((noreturn)) acceptor_main(struct mosd *d, int ctl, int sock)
{
    mos_tp_conn_t *c = NULL;
    struct mos_tp_msg msg;
    char text[MOS_TP_MAX_CONTROL + 1], why[200];
    int rc;

    signal(SIGCHLD, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    mosd_close_in_child(d, ctl, -1, 1);
    alarm(MOSD_HANDSHAKE_S); /* the whole handshake, however slowly its bytes come */
    rc = mos_tp_accept_socket(d->tp_listener, sock, &c);
    mos_tp_listener_close(d->tp_listener); /* the port is mosd's */
    if (rc == 0)
        rc = mos_tp_ctl_recv(c, &msg, text, sizeof(text) - 1, -1);
    alarm(0);
    if (rc != 0)
        _exit(2);
    text[msg.len] = '\0';
    struct json_object *o = NULL;
    mos_control_parse(text, msg.len, &o);
    const char *op = mos_json_str(o, "op", "");
    if (strcmp(op, "guest") == 0)
        mosd_move_in(d, c, msg.id, o, ctl); /* becomes the guest's supervisor */
    if (strcmp(op, "exec") == 0)
        mosd_exec_accept(d, c, msg.id, o, ctl); /* mosrun -E: becomes the program's relay */
    if (strcmp(op, "move") == 0) {
        rc = relay_move(c, msg.id, o, ctl);
        mos_tp_close(c);
        _exit(rc == 0 ? 0 : 1);
    }
    if (strcmp(op, "where") == 0) {
        struct mosd_note n;
        if (mosd_note_parse(o, 0, &n, why, sizeof(why)) == 0)
            dprintf(ctl, "where %d %s\n", (int)n.home_pid, n.node);
        mos_tp_close(c);
        _exit(0);
    }
    snprintf(why, sizeof(why), "unknown request '%.64s'", op);
    mos_warn("mosd", "refused a request from %s: %s", mos_tp_conn_peer(c), why);
    mosd_peer_answer(c, msg.id, 0, "error", why);
    mos_tp_close(c);
    _exit(2);
}

/* ---- mosd's side of its acceptors and supervisors ----------------------------------------- */

/* A supervisor's count of its guest's calls, into the node's figures. */
static void supervisor_calls(struct mosd *d, struct mosd_job *job, const char *line)
{
    struct mos_call_stats now;

    if (mosd_line_calls(line, &now) != 0 || mosd_metrics_calls(d, job, &now) != 0)
        mos_warn("mosd", "guest pid %d: malformed call counts from its supervisor (ignored)",
                 (int)job->pid);
}

/* A supervisor's line: its guest's call counts, or the outcome of a move, passed to the
 * acceptor that asked. 0, or -1 when the supervisor's line is closed. */
static int supervisor_line(struct mosd *d, struct mosd_job *job)
{
    char line[MOSD_CALLS_LINE_MAX + 64];

    if (mosd_line_read(job->sup_ctl, line, sizeof(line)) < 0) {
        event_del(job->sup_ev); /* the supervisor ended; SIGCHLD removes the job */
        if (job->adopted) { /* not our child: no SIGCHLD comes */
            mos_info("mosd", "guest job from %s (pid %d) left this node", job->home,
                     (int)job->pid);
            mosd_job_remove(d, job);
            mosd_state_save(d);
        }
        return -1;
    }
    if (strncmp(line, "calls ", 6) == 0) {
        supervisor_calls(d, job, line);
        return 0;
    }
    if (strncmp(line, "ok ", 3) == 0)
        mosd_view_move_landed(d, job); /* the supervisor ends next */
    job->moving = 0; /* an answer while it is still here: the move failed */
    if (strncmp(line, "error ", 6) == 0 && job->target[0]) {
        mosd_gossip_refused(d, job->target);
        mosd_view_move_failed(d, job);
    }
    if (job->move_reply_fd > 0) {
        dprintf(job->move_reply_fd, "%s\n", line);
        close(job->move_reply_fd);
        job->move_reply_fd = 0;
    }
    return 0;
}

static void on_supervisor_line(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    struct mosd_job *job = mosd_job_by_sup_ctl(d, (int)fd);

    (void)what;
    if (job)
        supervisor_line(d, job);
}

/* What an ended supervisor wrote before it died (its last count of calls, a move's outcome):
 * SIGCHLD may be seen before its line. */
static void supervisor_drain(struct mosd *d, struct mosd_job *job)
{
    struct pollfd p = {.fd = job->sup_ctl, .events = POLLIN};

    while (job->sup_ctl > 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN) &&
           supervisor_line(d, job) == 0)
        ;
}

static struct mosd_acceptor *acceptor_by_fd(struct mosd *d, int fd)
{
    for (size_t i = 0; i < d->n_acceptors; i++)
        if (d->acceptors[i].fd == fd)
            return &d->acceptors[i];
    return NULL;
}

/* It said what it became (or died): no longer counted; its line stays open for the caller. */
static void acceptor_done(struct mosd *d, struct mosd_acceptor *a)
{
    event_free(a->ev);
    *a = d->acceptors[--d->n_acceptors];
}

/* An acceptor's "guest" line: it now supervises a job that runs here. */
static void acceptor_guest(struct mosd *d, pid_t acceptor, int fd, const struct mosd_line *l,
                           int from)
{
    struct mosd_job *job = mosd_job_add(d);

    if (!job) {
        close(fd);
        return;
    }
    d->metrics.moves_in++;
    job->pid = l->pid;
    job->home_pid = l->home_pid;
    job->arrived_ns = mos_clock_now_ns();
    job->uid = l->uid;
    job->nodes = l->nodes;
    job->supervisor = acceptor;
    struct mos_proc_ident sup;
    if (mos_proc_ident_read(acceptor, &sup) == 0)
        job->sup_start = sup.start_time; /* a later mosd knows it by this */
    job->sup_ctl = fd;
    job->sup_ev = event_new(d->base, fd, EV_READ | EV_PERSIST, on_supervisor_line, d);
    event_add(job->sup_ev, NULL);
    snprintf(job->home, sizeof(job->home), "%s", l->node);
    snprintf(job->where, sizeof(job->where), "%s", d->cfg.nodes[d->self].name);
    snprintf(job->cmd, sizeof(job->cmd), "%s", l->text);
    mos_info("mosd", "guest job %d from %s runs here as pid %d: %s", l->job, l->node,
             (int)l->pid, job->cmd);
    mosd_view_moved_in(d, job, from);
    struct mosd_job *own = strcmp(l->node, d->cfg.nodes[d->self].name) == 0
                               ? mosd_job_own(d, l->home_pid)
                               : NULL;
    if (own) /* one of ours, back home */
        snprintf(own->where, sizeof(own->where), "%s", l->node);
    mosd_state_save(d);
}

/* An acceptor's "move" line: the home of a guest here wants it moved on; the acceptor waits
 * on fd for the outcome. */
static void acceptor_move(struct mosd *d, int fd, const struct mosd_line *l)
{
    struct mosd_job *job = mosd_job_guest(d, l->node, l->home_pid);

    if (!job || job->move_reply_fd > 0 || job->sup_ctl <= 0) {
        dprintf(fd, "error %s\n", !job ? "no such guest here"
                                 : job->sup_ctl <= 0 ? "its supervisor is not reached yet (mosd restarted)"
                                                     : "already moving");
        close(fd);
        return;
    }
    mos_info("mosd", "moving guest pid %d (home %s pid %d) to %s", (int)job->pid, l->node,
             (int)l->home_pid, l->to);
    job->move_reply_fd = fd;
    snprintf(job->target, sizeof(job->target), "%s", l->to);
    dprintf(job->sup_ctl, "move %s\n", l->to);
}

/* The acceptor's first line: a guest it now supervises, or a move it relays. */
static void on_acceptor_line(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    struct mosd_acceptor *a = acceptor_by_fd(d, (int)fd);
    struct mosd_line l;
    char line[512 + MOSD_NODES_WORD_MAX];

    (void)what;
    if (!a)
        return;
    pid_t acceptor = a->pid;
    int from = mos_config_find_node(&d->cfg, a->addr); /* the sender, by its address */
    int got = mosd_line_read((int)fd, line, sizeof(line));
    acceptor_done(d, a);
    if (got <= 0 || mosd_line_from_acceptor(line, &l) != 0) {
        close((int)fd);
        return;
    }
    if (l.kind == MOSD_LINE_GUEST) {
        acceptor_guest(d, acceptor, (int)fd, &l, from >= 0 ? from : -1);
        return;
    }
    if (l.kind == MOSD_LINE_MOVE) {
        acceptor_move(d, (int)fd, &l);
        return;
    }
    struct mosd_job *job = mosd_job_own(d, l.home_pid);
    if (job && l.kind == MOSD_LINE_NATIVE) {
        d->metrics.moves_in++;
        snprintf(job->where, sizeof(job->where), "%s", d->cfg.nodes[d->self].name);
        job->arrived_ns = mos_clock_now_ns();
        if (l.calls_wait > 0)
            job->calls_wait = l.calls_wait;
        if (job->owner) {
            struct json_object *m = json_object_new_object();
            json_object_object_add(m, "op", json_object_new_string("native"));
            mosd_send(job->owner, m);
            json_object_put(m);
        } else {
            job->native_pending = 1; /* mosd restarted: said when its mosrun reconnects */
        }
        mosd_state_save(d);
    } else if (job && l.kind == MOSD_LINE_WHERE && mos_config_find_node(&d->cfg, l.node) >= 0) {
        snprintf(job->where, sizeof(job->where), "%s", l.node);
        mosd_state_save(d);
    }
    close((int)fd);
}

/* Why a connection is closed unread, in the log at most every 10 s (a flood must not fill it). */
static void refuse_connection(struct mosd *d, int sock, const char *addr, const char *why)
{
    uint64_t now = mos_clock_now_ns();

    close(sock);
    d->refused_connections++;
    if (now - d->refused_warned_ns < 10000000000ull)
        return;
    mos_warn("mosd", "closed %u incoming connection(s) unread, the last from %s: %s",
             d->refused_connections, addr, why);
    d->refused_warned_ns = now;
    d->refused_connections = 0;
}

static size_t acceptors_from(const struct mosd *d, const char *addr)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n_acceptors; i++)
        n += strcmp(d->acceptors[i].addr, addr) == 0;
    return n;
}

static void on_incoming(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char addr[64] = "?";
    int sp[2];
    pid_t child;

    (void)what;
    int sock = accept4((int)fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (sock < 0)
        return; /* gone already, or taken: the listener is non-blocking */
    getnameinfo((struct sockaddr *)&ss, len, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
    if (d->n_acceptors >= MOSD_MAX_ACCEPTORS) {
        refuse_connection(d, sock, addr, "too many handshakes under way");
        return;
    }
    if (acceptors_from(d, addr) >= MOSD_ACCEPTORS_PER_PEER) {
        refuse_connection(d, sock, addr, "too many handshakes under way from there");
        return;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0 || (child = fork()) < 0) {
        mos_err("mosd", "cannot take an incoming connection: %s", strerror(errno));
        close(sock);
        return;
    }
    if (child == 0) {
        close(sp[0]);
        acceptor_main(d, sp[1], sock);
    }
    close(sp[1]);
    close(sock);
    struct mosd_acceptor *a = &d->acceptors[d->n_acceptors++];
    a->pid = child;
    a->fd = sp[0];
    snprintf(a->addr, sizeof(a->addr), "%s", addr);
    a->ev = event_new(d->base, sp[0], EV_READ, on_acceptor_line, d);
    event_add(a->ev, NULL);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    struct mosd *d = arg;
    int status;
    pid_t pid;

    (void)sig, (void)what;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct mosd_acceptor *a = NULL;
        for (size_t i = 0; i < d->n_acceptors && !a; i++)
            if (d->acceptors[i].pid == pid)
                a = &d->acceptors[i];
        if (a) { /* died before saying anything: no handshake, or too slow */
            close(a->fd);
            acceptor_done(d, a);
            continue;
        }
        struct mosd_job *job = mosd_job_by_supervisor(d, pid);
        if (job) {
            supervisor_drain(d, job);
            mos_info("mosd", "guest job from %s (pid %d) left this node", job->home,
                     (int)job->pid);
            mosd_job_remove(d, job);
            mosd_state_save(d);
            if (d->stopping && mosd_jobs_guests(d) == 0)
                event_base_loopexit(d->base, NULL);
        }
    }
}

/* ---- guests left by an earlier mosd ------------------------------------------------------
 * Their supervisors ran on; each, on losing its line to mosd, listens on a socket in the state
 * directory (root's, 0700) for the next one. We connect, check the kernel's word that the
 * listener is that supervisor, and the line serves again as if we had started it. A supervisor
 * still busy (a forwarded call under way) listens a moment later: we try for a while. */
#define ADOPT_TRY_MS 200
#define ADOPT_FOR_NS (30ull * 1000000000ull)

static int connect_supervisor(const struct mosd *d, const struct mosd_job *job)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    mosd_state_sup_socket(d, job->supervisor, sa.sun_path, sizeof(sa.sun_path));
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        cred.pid != job->supervisor || cred.uid != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void on_adopt_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    uint64_t now = mos_clock_now_ns();
    size_t waiting = 0;

    (void)fd, (void)what;
    for (size_t i = 0; i < d->n_jobs; i++) {
        struct mosd_job *job = &d->jobs[i];
        if (!job->adopted || job->sup_ctl > 0)
            continue;
        int ctl = connect_supervisor(d, job);
        if (ctl >= 0) {
            job->sup_ctl = ctl;
            job->sup_ev = event_new(d->base, ctl, EV_READ | EV_PERSIST, on_supervisor_line, d);
            event_add(job->sup_ev, NULL);
            mos_info("mosd", "guest pid %d (home %s pid %d) re-adopted: supervisor %d",
                     (int)job->pid, job->home, (int)job->home_pid, (int)job->supervisor);
        } else if (now > job->adopt_until_ns) {
            mos_warn("mosd", "guest pid %d (home %s pid %d): its supervisor %d never answered: "
                     "dropped (it runs on, unmanaged)", (int)job->pid, job->home,
                     (int)job->home_pid, (int)job->supervisor);
            mosd_job_remove(d, job);
            mosd_state_save(d);
            i--;
        } else {
            waiting++;
        }
    }
    if (!waiting) {
        event_free(d->adopt_timer);
        d->adopt_timer = NULL;
    }
}

static void adopt_start(struct mosd *d)
{
    struct timeval every = {0, ADOPT_TRY_MS * 1000};
    size_t n = 0;

    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].adopted && d->jobs[i].sup_ctl <= 0) {
            d->jobs[i].adopt_until_ns = mos_clock_now_ns() + ADOPT_FOR_NS;
            n++;
        }
    if (!n)
        return;
    d->adopt_timer = event_new(d->base, -1, EV_PERSIST, on_adopt_timer, d);
    event_add(d->adopt_timer, &every);
}

int mosd_peer_start(struct mosd *d)
{
    char where[160];
    mos_tp_listener_t *l;
    int rc;

    d->sigchld = evsignal_new(d->base, SIGCHLD, on_sigchld, d);
    event_add(d->sigchld, NULL);
    adopt_start(d);
    if (!d->have_key) {
        mos_warn("mosd", "no key_file in %s: one-node mode, no port %d and no gossip (set "
                 "key_file to join the other nodes)", d->cfg.path, d->cfg.transport_port);
        return 0;
    }
    mos_tp_opts_default(&d->tp_opts);
    d->tp_opts.key = &d->key;
    if (strcmp(d->cfg.transport, "auto") != 0 && !getenv("MOS_TRANSPORT"))
        d->tp_opts.backend = (enum mos_tp_backend)mos_tp_backend_parse(d->cfg.transport);
    mosd_hostport(&d->cfg, d->self, where, sizeof(where));
    rc = mos_tp_listen(where, &d->tp_opts, &l);
    if (rc != 0) {
        mos_err("mosd", "cannot accept migrations on %s: %s", where, mos_strerror(rc));
        return rc;
    }
    d->tp_listener = l;
    /* mosd accepts itself (on_incoming): never block on a client that left in between */
    fcntl(mos_tp_listener_fd(l), F_SETFL, fcntl(mos_tp_listener_fd(l), F_GETFL) | O_NONBLOCK);
    d->tp_event = event_new(d->base, mos_tp_listener_fd(l), EV_READ | EV_PERSIST, on_incoming, d);
    event_add(d->tp_event, NULL);
    return 0;
}

void mosd_peer_stop(struct mosd *d)
{
    if (d->tp_event)
        event_free(d->tp_event);
    if (d->sigchld)
        event_free(d->sigchld);
    if (d->adopt_timer)
        event_free(d->adopt_timer);
    d->adopt_timer = NULL;
    while (d->n_acceptors)
        acceptor_done(d, &d->acceptors[0]);
    if (d->tp_listener)
        mos_tp_listener_close(d->tp_listener);
    d->tp_event = d->sigchld = NULL;
    d->tp_listener = NULL;
}

/* An orderly stop: every guest is asked to go home; mosd ends when they have, or at the
 * deadline (a guest whose home cannot take it runs on under its supervisor). */
int mosd_peer_send_guests_home(struct mosd *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n_jobs; i++) {
        struct mosd_job *job = &d->jobs[i];
        /* a job of ours that came home as a guest stays: its supervisor runs on without us */
        if (!job->supervisor || job->move_reply_fd > 0 || job->sup_ctl <= 0 ||
            strcmp(job->home, d->cfg.nodes[d->self].name) == 0)
            continue;
        dprintf(job->sup_ctl, "move %s\n", job->home);
        n++;
    }
    if (n)
        mos_info("mosd", "sending %zu guest(s) home before stopping", n);
    return (int)n;
}
