/* A job arriving at a node (the acceptor's "guest" request).
 *
 * The acceptor checks the header (a home in this cluster, not root, not blocked, a balancing
 * move that still pays here), restores the image in guest mode (the owner's uid, no
 * descriptors, the guest seccomp filter), joins the guests' cgroup, takes the listener,
 * connects the deputy link home and only then answers READY; on COMMIT the guest runs and the
 * acceptor stays as its supervisor for the rest of its stay, moving it on when mosd asks (or
 * home, when it makes a call that must run there). A job coming home whose shell is there is
 * restored into the shell instead: native again. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/forward.h"
#include "mos/ident.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/procfs.h"
#include "mos/status.h"

#include <errno.h>
#include <linux/filter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int header_parse(const struct mosd *d, struct json_object *o, struct mosd_guest_header *h,
                        char *why, size_t len)
{
    int rc = mosd_guest_header_parse(o, h, why, len);
    if (rc != 0)
        return rc;
    rc = mosd_peer_home(d, h->home, h->home_addr, why, len);
    if (rc < 0)
        return rc;
    if (h->uid == 0) {
        snprintf(why, len, "root's processes do not migrate");
        return MOS_E_PROTO;
    }
    if (mos_ident_check(h->uid, h->gid, NULL, 0, why, len) != 0)
        return MOS_E_PROTO; /* a guest gets no supplementary groups, its gid must be the user's */
    mosd_nodeset_of_names(d, h->node_names, &h->nodes);
    h->node_names = NULL; /* the request goes before the header does */
    return 0;
}

struct sup_ctx {
    const struct mosd *d;
    const struct mosd_guest_header *h;
    pid_t guest;
    int ctl;
    int awaiting_mosd;          /* mosd went away: ctl listens for the next one */
    char target[MOS_NODE_NAME_MAX];
    double max_load;
    int holding;                /* a home call waits for the trip home */
    uint64_t held;
    pid_t held_tid;
    uint64_t home_retry_ns;     /* a trip home failed: until then home calls get ENOSYS */
    struct mos_call_stats calls; /* the guest's calls while here, reported to mosd */
    struct mos_held_calls drained; /* calls a move took back from home */
};

/* How often a supervisor tells mosd its guest's call counts (and once when it stops). */
#define CALLS_REPORT_MS 1000

#define HOME_RETRY_NS (30ull * 1000000000ull)

/* fork, execve, a file mmap...: the guest goes home, where the call then runs natively. At
 * home already (as a guest, its shell gone) or shortly after a failed trip, it is refused. */
static int on_home_call(struct mos_supervisor *sup, uint64_t id, long nr, void *arg)
{
    struct sup_ctx *x = arg;

    if (strcmp(x->h->home, x->d->cfg.nodes[x->d->self].name) == 0 ||
        mos_clock_now_ns() < x->home_retry_ns)
        return 0;
    mos_info("mosd", "guest %d (home %s pid %d): %s must run at home; taking it there",
             (int)x->guest, x->h->home, x->h->home_pid, mos_syscall_name(nr));
    snprintf(x->target, sizeof(x->target), "%s", x->h->home);
    x->max_load = -1;
    x->holding = 1;
    x->held = id;
    x->held_tid = mos_supervisor_caller(sup);
    return MOS_HOME_CALL_DETACH;
}

/* mosd went away (killed, restarted): the guest keeps running here, and its line to mosd
 * becomes a listener in the state directory (root's, 0700), where the next mosd finds it by
 * our pid. No state directory: a descriptor that never becomes readable, so that the serving
 * loop does not spin on the hang-up. */
static void await_next_mosd(struct sup_ctx *x)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = -1;

    if (x->d->state_dir[0]) {
        mosd_state_sup_socket(x->d, getpid(), sa.sun_path, sizeof(sa.sun_path));
        unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1) != 0)) {
            mos_warn("mosd", "guest %d: cannot wait for the next mosd on %s: %s", (int)x->guest,
                     sa.sun_path, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    x->awaiting_mosd = fd >= 0;
    if (fd < 0)
        fd = eventfd(0, EFD_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, x->ctl);
        close(fd);
    }
}

/* The next mosd connected: root only (the directory lets nobody else in; checked again). */
static void take_next_mosd(struct sup_ctx *x)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    char path[300];
    int fd = accept4(x->ctl, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != 0) {
        close(fd);
        return;
    }
    mosd_state_sup_socket(x->d, getpid(), path, sizeof(path));
    unlink(path);
    dup2(fd, x->ctl);
    close(fd);
    x->awaiting_mosd = 0;
    mos_info("mosd", "guest %d (home %s pid %d): a new mosd took its line", (int)x->guest,
             x->h->home, x->h->home_pid);
}

/* mosd asks the supervisor, between two calls, to move the guest. */
static int on_sup_ctl(struct mos_supervisor *sup, void *arg)
{
    struct sup_ctx *x = arg;
    char line[128];

    (void)sup;
    if (x->awaiting_mosd) {
        take_next_mosd(x);
        return 0;
    }
    if (mosd_line_read(x->ctl, line, sizeof(line)) < 0) {
        await_next_mosd(x);
        return 0;
    }
    struct mosd_line order;
    if (mosd_line_order(line, &order) != 0)
        return 0;
    snprintf(x->target, sizeof(x->target), "%s", order.to);
    x->max_load = order.max_load;
    return MOS_SUPERVISOR_DETACHED;
}

/* The guest's calls so far, to mosd (for its Prometheus figures). */
static void report_calls(void *arg)
{
    const struct sup_ctx *x = arg;
    char line[MOSD_CALLS_LINE_MAX];

    if (x->awaiting_mosd)
        return; /* no mosd to tell: the next one gets the whole counts with the next report */
    mosd_calls_line(&x->calls, line, sizeof(line));
    dprintf(x->ctl, "%s\n", line);
}

/* The guest's calls home as measured here, or as it brought them when too few calls tell. */
static double guest_calls_wait(const struct sup_ctx *x, double brought)
{
    double cpu_s, measured = 0;
    uint64_t pages;

    if (mosd_proc_usage(x->guest, &cpu_s, &pages) == 0)
        measured = mosd_calls_wait(&x->calls, cpu_s);
    return measured > 0 ? measured : brought;
}

struct guest_tids {
    struct mos_tid_pair *pairs; /* for the next move's image */
    struct mos_guest_tid *sup;  /* the same, for the supervisor's gettid and tgkill */
    size_t n;
};

/* The supervisor's life: serve the guest; when mosd asks, move it on (telling the deputy to
 * expect a new link); if that fails, serve it here again. */

static int supervise(const struct mosd *d, const struct mosd_guest_header *h, pid_t guest,
                     int listener, struct mos_link *link, int ctl, const struct guest_tids *tids)
{
    struct sup_ctx x = {.d = d, .h = h, .guest = guest, .ctl = ctl};
    struct mos_supervisor_ops ops = {.home_call = on_home_call, .ctl_fd = ctl,
                                     .on_ctl = on_sup_ctl, .arg = &x, .stats = &x.calls,
                                     .tick_ms = CALLS_REPORT_MS, .on_tick = report_calls,
                                     .tids = tids->sup, .ntids = tids->n, .held = &x.drained};
    char why[256];
    int status = 0, rc;

    while ((rc = mos_supervisor_run(guest, listener, link, &ops, &status)) ==
           MOS_SUPERVISOR_DETACHED) {
        report_calls(&x); /* before the move's outcome: mosd forgets the guest after it */
        int target = mos_config_find_node(&d->cfg, x.target);
        struct mosd_stream_how how = {.listener = x.holding || x.drained.count ? listener : -1,
                                      .held = x.holding ? x.held : 0, .held_tid = x.held_tid,
                                      .drained = &x.drained,
                                      .guest = 1, .tids = tids->pairs, .ntids = tids->n};
        why[0] = '\0';
        rc = target < 0 ? MOS_E_UNKNOWN_NODE : mos_deputy_link_notify(link, MOS_LINK_MOVING);
        struct mosd_guest_header moving = *h;
        moving.max_load = x.max_load;
        moving.calls_wait = guest_calls_wait(&x, h->calls_wait);
        if (rc == 0)
            rc = mosd_stream_guest(d, target, &moving, guest, &how, why, sizeof(why));
        if (rc == 0) {
            if (!x.holding)
                dprintf(ctl, "ok %s\n", x.target);
            return 0; /* the guest runs there now; our copy is gone */
        }
        if (x.holding) {
            /* the call runs again (restarted) or is refused now; either way, ENOSYS for a while */
            mos_warn("mosd", "guest %d could not go home for a home call: %s", (int)guest,
                     why[0] ? why : mos_strerror(rc));
            if (!how.held_answered)
                mos_supervisor_answer(listener, x.held, -ENOSYS);
            x.holding = 0;
            x.home_retry_ns = mos_clock_now_ns() + HOME_RETRY_NS;
        } else {
            dprintf(ctl, "error %s\n", why[0] ? why : mos_strerror(rc));
        }
        mos_deputy_link_notify(link, MOS_LINK_RESUME);
    }
    report_calls(&x);
    if (x.awaiting_mosd) { /* the guest ended before a new mosd came */
        char path[300];
        mosd_state_sup_socket(d, getpid(), path, sizeof(path));
        unlink(path);
    }
    return rc;
}

/* The job's home keeps WHERE for mosps: say where the guest now is, whoever moved it. */
static void tell_home(const struct mosd *d, const struct mosd_guest_header *h)
{
    int home = mos_config_find_node(&d->cfg, h->home);
    struct mos_tp_opts opts = d->tp_opts;
    mos_tp_conn_t *conn = NULL;
    char where[160], text[256];

    if (home < 0 || home == d->self)
        return;
    opts.timeout_ms = 5000;
    mosd_hostport(&d->cfg, home, where, sizeof(where));
    snprintf(text, sizeof(text), "{\"op\":\"where\",\"home_pid\":%d,\"where\":\"%s\"}",
             h->home_pid, d->cfg.nodes[d->self].name);
    if (mos_tp_connect(where, &opts, &conn) == 0)
        mos_tp_ctl_send(conn, 0, text, strlen(text));
    mos_tp_close(conn);
}

/* ---- at home: the job back in its own process --------------------------------------- */

/* Whether pid is the shell mos_dump_commit_shell left: the job's only process at home while it
 * is away, a live child of the job's mosrun, owned by the job's user. */
static int shell_is_there(pid_t pid, pid_t parent, uid_t uid)
{
    struct mos_proc_stat ps;
    char path[64];
    struct stat st;

    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    return stat(path, &st) == 0 && st.st_uid == uid && mos_proc_stat_read(pid, &ps) == 0 &&
           (pid_t)ps.f[MOS_STAT_PPID] == parent && ps.state != 'Z' && ps.state != 'X';
}

/* A job coming home goes back into its own process when its shell and mosrun are there:
 * native again, with its pid, parent, descriptors (mosrun's mirror of them) and directory. */
static int native_return(const struct mosd *d, const struct mosd_guest_header *h,
                         struct mos_restore_opts *ro, char *cwd, size_t cwd_len)
{
    const struct mosd_job *own;
    char link[64];
    ssize_t n;

    if (strcmp(h->home, d->cfg.nodes[d->self].name) != 0 ||
        !(own = mosd_job_own_const(d, h->home_pid)) || own->owner_fd_min <= 0 ||
        !shell_is_there(h->home_pid, own->owner_pid, h->uid))
        return 0;
    snprintf(link, sizeof(link), "/proc/%d/cwd", (int)own->owner_pid);
    if ((n = readlink(link, cwd, cwd_len - 1)) < 0)
        return 0;
    cwd[n] = '\0';
    ro->guest = 0;
    ro->cpus_here = 1; /* the shell's, the binding it had at home */
    ro->into_pid = h->home_pid;
    ro->fds_from = own->owner_pid;
    ro->fds_limit = own->owner_fd_min;
    ro->cwd = cwd;
    return 1;
}

/* Before READY, a job restored at home joins its own cgroup again (rebuilt from mosd's: no
 * throttled periods per injected call). */
static int home_before_ready(struct mos_restore *r, void *arg)
{
    const char *job_cg = arg;

    if (job_cg[0])
        mosd_cgroup_join(job_cg, mos_restore_pid(r));
    return 0;
}

/* Restore into the shell, confirm, and let it run: mosd then tells mosrun it is home. */
static int take_home(mos_tp_conn_t *c, const struct mosd_guest_header *h,
                     struct mos_restore_opts *ro, int ctl)
{
    char job_cg[512] = "";
    struct mos_receive_hooks hooks = {.before_ready = home_before_ready, .arg = job_cg};
    struct mos_img_io *io;
    pid_t pid;
    int rc = mos_img_io_tp_open(c, MOSD_MIGRATION_TIMEOUT_MS, 0, &io);

    if (rc != 0)
        return rc;
    mosd_cgroup_borrow(h->home_pid, job_cg, sizeof(job_cg));
    rc = mos_migrate_receive(io, ro, &hooks, &pid);
    if (rc == 0) {
        mos_info("mosd", "job %d (pid %d) is home, native again", h->job, h->home_pid);
        if (h->calls_wait > 0)
            dprintf(ctl, "native %d %.3f\n", h->home_pid, h->calls_wait);
        else
            dprintf(ctl, "native %d\n", h->home_pid);
    } else {
        mos_err("mosd", "job %d (pid %d) could not come home: %s", h->job, h->home_pid,
                mos_strerror(rc));
    }
    mos_img_io_close(io);
    return rc;
}

/* A guest being received: what it needs before READY, and what the acceptor keeps. */
struct guest_in {
    const struct mosd *d;
    const struct mosd_guest_header *h;
    int listener;
    struct mos_link link; /* home, once the deputy proved the token (fd -1 before) */
    struct guest_tids tids;
};

/* Which tid each restored thread got here, against the one its program knows. */
static int guest_tids_take(struct mos_restore *r, struct guest_tids *t)
{
    size_t n = mos_restore_thread_ids(r, NULL, 0);

    if (n == 0)
        return 0;
    t->pairs = calloc(n, sizeof(*t->pairs));
    t->sup = calloc(n, sizeof(*t->sup));
    if (!t->pairs || !t->sup)
        return -ENOMEM;
    t->n = mos_restore_thread_ids(r, t->pairs, n);
    for (size_t i = 0; i < t->n; i++)
        t->sup[i] = (struct mos_guest_tid){.program = t->pairs[i].image,
                                           .local = t->pairs[i].local};
    return 0;
}

/* Into the guests' cgroup only now (rebuilding it took many injected calls, each of which
 * would have waited out a throttled period in a capped cgroup); its seccomp listener taken;
 * the link home made: a guest never runs without a way home. */
static int guest_before_ready(struct mos_restore *r, void *arg)
{
    struct guest_in *g = arg;
    pid_t guest = mos_restore_pid(r);
    int rc = guest_tids_take(r, &g->tids);

    if (rc != 0)
        return rc;
    if (g->d->guest_cgroup_procs[0] && mosd_cgroup_join(g->d->guest_cgroup_procs, guest) != 0)
        mos_warn("mosd", "guest %d: cannot join %s", (int)guest, g->d->guest_cgroup_procs);
    g->listener = mos_supervisor_take_listener(guest, mos_restore_listener_fd(r));
    if (g->listener < 0)
        return g->listener;
    return mos_deputy_link_connect(g->h->home_addr, g->h->deputy_port, g->h->token, 10000,
                                   &g->link);
}

/* Restore the guest, link it home, confirm, and serve it until it ends or moves on. */
static int take_guest(const struct mosd *d, mos_tp_conn_t *c, const struct mosd_guest_header *h,
                      int ctl)
{
    char husk_buf[4096], cwd[4096];
    struct mos_restore_opts ro = {.guest = 1, .uid = h->uid, .gid = h->gid, .cpus_here = 1};
    struct sock_filter filter[MOS_GUEST_FILTER_MAX];
    struct guest_in g = {.d = d, .h = h, .listener = -1, .link = {.fd = -1}};
    struct mos_receive_hooks hooks = {.before_ready = guest_before_ready, .arg = &g};
    struct mos_img_io *io;
    pid_t guest;
    int rc;

    ro.husk_path = mos_restore_husk_path(husk_buf, sizeof(husk_buf));
    if (native_return(d, h, &ro, cwd, sizeof(cwd)))
        return take_home(c, h, &ro, ctl);
    rc = mos_guest_filter_program(filter, MOS_GUEST_FILTER_MAX, &ro.guest_filter_flags);
    if (rc < 0)
        return rc;
    ro.guest_filter = filter;
    ro.guest_filter_len = (unsigned)rc;
    rc = mos_img_io_tp_open(c, MOSD_MIGRATION_TIMEOUT_MS, 0, &io);
    if (rc != 0)
        return rc;
    /* Memory is charged where it is first touched and the kernel does not move charges: this
     * acceptor enters the guests' memory cgroup before the husk it forks touches a page, so a
     * guest's memory counts against the node's limit (our own pages stay where they were). */
    if (d->guest_memcg_procs[0] && mosd_cgroup_join(d->guest_memcg_procs, getpid()) != 0)
        mos_warn("mosd", "guest job %d: cannot join %s", h->job, d->guest_memcg_procs);
    rc = mos_migrate_receive(io, &ro, &hooks, &guest);
    mos_img_io_close(io);
    if (rc != 0) {
        mos_err("mosd", "guest job %d from %s discarded: %s", h->job, h->home, mos_strerror(rc));
        if (g.listener >= 0)
            close(g.listener);
        mos_link_close(&g.link);
        free(g.tids.pairs);
        free(g.tids.sup);
        return rc;
    }
    char nodes[MOSD_NODES_WORD_MAX];
    mosd_nodes_word(&h->nodes, nodes, sizeof(nodes));
    dprintf(ctl, "guest %d %d %d %d %s %s %s\n", (int)guest, h->home_pid, h->job, (int)h->uid,
            h->home, nodes, h->cmd);
    mos_tp_close(c);
    tell_home(d, h);
    rc = supervise(d, h, guest, g.listener, &g.link, ctl, &g.tids);
    close(g.listener);
    mos_link_close(&g.link);
    free(g.tids.pairs);
    free(g.tids.sup);
    return rc;
}

/* ---- the request ----------------------------------------------------------------------- */

/* The node a connection comes from, by its address ("host:port" or "[v6]:port"); -1 if none.
 * Only the balancer's view uses it: a node behind another address is merely not counted. */
static int peer_node(const struct mosd *d, const char *peer)
{
    char host[MOS_ADDR_MAX];
    const char *start = peer[0] == '[' ? peer + 1 : peer;
    const char *end = peer[0] == '[' ? strchr(start, ']') : strrchr(start, ':');

    if (!end || (size_t)(end - start) >= sizeof(host))
        return -1;
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = '\0';
    int i = mos_config_find_node(&d->cfg, host);
    return i >= 0 ? i : -1;
}

/* Why this node takes no guest now ("" when it does). A balancing move (one with max_load,
 * the sender's load once the job has left) must still pay on this node's own view: guests
 * arriving from elsewhere may have taken what the sender saw free here, and a job is not taken
 * back where it just left unless the load here fell since. */
static void admission(const struct mosd *d, const struct mosd_guest_header *h, int from,
                      char *why, size_t len)
{
    const char *self = d->cfg.nodes[d->self].name;
    why[0] = '\0';
    /* the home checks its moves too; this holds for moves a guest's node decides */
    if (!mosd_nodeset_allows(&h->nodes, mos_config_find_node(&d->cfg, h->home), d->self))
        snprintf(why, len, "node %s is not one of the job's nodes (mosrun -N)", self);
    else if (d->blocked && strcmp(h->home, self) != 0)
        snprintf(why, len, "node %s is blocked", d->cfg.nodes[d->self].name);
    else if (h->max_load >= 0)
        mosd_view_admission(d, h, from, why, len);
}

void mosd_move_in(struct mosd *d, mos_tp_conn_t *c, uint32_t id, struct json_object *o, int ctl)
{
    struct mosd_guest_header h;
    char why[200];
    int rc = header_parse(d, o, &h, why, sizeof(why));

    if (rc == 0)
        admission(d, &h, peer_node(d, mos_tp_conn_peer(c)), why, sizeof(why));
    if (rc != 0 || why[0]) {
        mos_warn("mosd", "refused a guest from %s: %s", mos_tp_conn_peer(c), why);
        mosd_peer_answer(c, id, 0, "error", why);
        mos_tp_close(c);
        _exit(2);
    }
    mosd_peer_answer(c, id, 1, NULL, NULL);
    rc = take_guest(d, c, &h, ctl);
    _exit(rc == 0 ? 0 : 1);
}
