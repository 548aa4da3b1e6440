/* Moving jobs between nodes.
 *
 * Out (home node): a command asks to move job P to node T. mosd asks P's mosrun to prepare (it
 * takes P's descriptors and listens for the deputy link with a fresh token), then a worker
 * process connects to T's mosd over the transport (cluster key proved), sends the guest's
 * header with the token, freezes and streams P, and waits for READY: T has rebuilt P and its
 * supervisor has proved the token to mosrun. Only then does mosrun hear "migrated", the frozen
 * P is killed and T gets COMMIT. Any failure before that resumes P where it was.
 *
 * In (target node): an acceptor child takes the connection, checks the header, restores the
 * image in guest mode (the owner's uid, no descriptors, the guest seccomp filter), connects
 * the deputy link home, answers READY, and on COMMIT lets the guest run and becomes its
 * supervisor for the rest of its stay. One incoming migration is accepted at a time. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/forward.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/procfs.h"
#include "mos/status.h"

#include <errno.h>
#include <math.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIGRATION_TIMEOUT_MS 120000

void mosd_send(struct bufferevent *bev, struct json_object *msg)
{
    const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);

    bufferevent_write(bev, text, strlen(text));
    bufferevent_write(bev, "\n", 1);
}

static void reply_requester(struct mosd_job *job, int ok, const char *text)
{
    struct json_object *r;

    if (!job->requester)
        return;
    r = json_object_new_object();
    json_object_object_add(r, "ok", json_object_new_boolean(ok));
    json_object_object_add(r, ok ? "where" : "error", json_object_new_string(text));
    mosd_send(job->requester, r);
    json_object_put(r);
    job->requester = NULL;
}

static void hex_of(const uint8_t *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", bytes[i]);
}

static void hostport(const struct mos_config *cfg, int node, char *out, size_t len)
{
    const char *addr = cfg->nodes[node].addr;

    snprintf(out, len, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, cfg->transport_port);
}

/* ---- out: the request ------------------------------------------------------------------- */

static void worker_start(struct mosd *d, struct mosd_job *job, int deputy_port);

struct json_object *mosd_migrate_request(struct mosd *d, struct bufferevent *requester,
                                         uid_t uid, struct json_object *req)
{
    pid_t pid = (pid_t)mos_json_int(req, "pid", -1);
    const char *to = mos_json_str(req, "to", "");
    struct mosd_job *job = mosd_job_find(d, pid);
    char reason[256], hex[65];
    int node;

    if (!job)
        return mosd_reply_error("pid %d is not a mos job on node %s", (int)pid,
                      d->cfg.nodes[d->self].name);
    if (uid != 0 && uid != job->uid)
        return mosd_reply_error("permission denied: pid %d belongs to uid %d", (int)pid, (int)job->uid);
    if (job->supervisor)
        return mosd_reply_error("pid %d is a guest here; ask its home node %s", (int)pid, job->home);
    if (job->native)
        return mosd_reply_error("pid %d runs natively on %s (mosrun -E): it cannot migrate",
                                (int)pid, job->where);
    if (job->moving)
        return mosd_reply_error("pid %d is already moving to %s", (int)pid, job->target);
    if (!job->owner)
        return mosd_reply_error("pid %d has no deputy (not started with mosrun)", (int)pid);
    if (strcmp(to, "checkpoint") == 0) {
        /* its mosrun, the job's parent and owner, writes it; the answer comes back from it */
        struct json_object *ck = json_object_new_object();
        json_object_object_add(ck, "op", json_object_new_string("checkpoint"));
        const char *file = mos_json_str(req, "file", NULL);
        if (file)
            json_object_object_add(ck, "file", json_object_new_string(file));
        job->requester = requester;
        job->checkpointing = 1;
        mosd_send(job->owner, ck);
        json_object_put(ck);
        return NULL;
    }
    node = strcmp(to, "home") == 0 ? d->self : mos_config_find_node(&d->cfg, to);
    if (node < 0)
        return mosd_reply_error("unknown node '%s'", to);
    if (strcmp(d->cfg.nodes[node].name, job->where) == 0)
        return mosd_reply_error("pid %d already runs on %s", (int)pid, job->where);
    snprintf(job->target, sizeof(job->target), "%s", d->cfg.nodes[node].name);
    struct json_object *ml;
    job->max_load = json_object_object_get_ex(req, "max_load", &ml) ? json_object_get_double(ml)
                                                                     : -1;
    job->requester = requester;
    job->moving = 1;
    mos_info("mosd", "job %d (pid %d): moving from %s to %s", job->id, (int)pid, job->where,
             job->target);
    if (strcmp(job->where, d->cfg.nodes[d->self].name) != 0) {
        /* away already: its current node moves it; mosrun waits for the new link itself */
        worker_start(d, job, 0);
        return NULL;
    }
    struct mos_dump_opts dopts = {.fds_at_home = 1};
    if (mos_migrate_check(job->pid, &dopts, reason, sizeof(reason)) != 0) {
        job->moving = 0;
        job->requester = NULL;
        return mosd_reply_error("pid %d stays: %s", (int)pid, reason);
    }
    mos_random_bytes(job->token, sizeof(job->token));
    hex_of(job->token, sizeof(job->token), hex);
    struct json_object *prep = json_object_new_object();
    json_object_object_add(prep, "op", json_object_new_string("prepare"));
    json_object_object_add(prep, "token", json_object_new_string(hex));
    mosd_send(job->owner, prep);
    json_object_put(prep);
    return NULL; /* answered when the move is done */
}

void mosd_migrate_forget_requester(struct mosd *d, struct bufferevent *bev)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].requester == bev)
            d->jobs[i].requester = NULL;
}

/* ---- out: streaming a job to another node ------------------------------------------------
 * Used by the home node's worker (a job at home) and by a guest's supervisor (a guest moving
 * on, or home). */

struct guest_header {
    int job;
    uid_t uid;
    gid_t gid;
    char home[MOS_NODE_NAME_MAX];
    char home_addr[MOS_ADDR_MAX];
    int deputy_port;
    uint8_t token[MOS_LINK_TOKEN_BYTES];
    int home_pid;
    char cmd[256];
    double max_load; /* < 0: none; else refuse if our load would rise above it */
};

static void owner_say(int fd, const char *op, const char *where)
{
    struct json_object *m = json_object_new_object();

    json_object_object_add(m, "op", json_object_new_string(op));
    if (where)
        json_object_object_add(m, "where", json_object_new_string(where));
    mos_control_send(fd, m);
    json_object_put(m);
}

static int send_header(mos_tp_conn_t *c, const struct guest_header *g, const char *target,
                       char *why, size_t why_len)
{
    struct json_object *h = json_object_new_object();
    char hex[65], reply[1024];
    size_t len = 0;
    int rc;

    hex_of(g->token, sizeof(g->token), hex);
    json_object_object_add(h, "op", json_object_new_string("guest"));
    json_object_object_add(h, "job", json_object_new_int(g->job));
    json_object_object_add(h, "uid", json_object_new_int((int)g->uid));
    json_object_object_add(h, "gid", json_object_new_int((int)g->gid));
    json_object_object_add(h, "home", json_object_new_string(g->home));
    json_object_object_add(h, "home_addr", json_object_new_string(g->home_addr));
    json_object_object_add(h, "deputy_port", json_object_new_int(g->deputy_port));
    json_object_object_add(h, "token", json_object_new_string(hex));
    json_object_object_add(h, "home_pid", json_object_new_int(g->home_pid));
    json_object_object_add(h, "cmd", json_object_new_string(g->cmd));
    if (g->max_load >= 0)
        json_object_object_add(h, "max_load", json_object_new_double(g->max_load));
    const char *text = json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN);
    rc = mos_tp_ctl_call(c, text, strlen(text), reply, sizeof(reply) - 1, &len);
    json_object_put(h);
    if (rc != 0)
        return rc;
    reply[len] = '\0';
    struct json_object *r = json_tokener_parse(reply);
    if (!r || !json_object_get_boolean(json_object_object_get(r, "ok"))) {
        snprintf(why, why_len, "%s refused the job: %s; it continues where it was", target,
                 r ? mos_json_str(r, "error", "?") : "malformed reply");
        json_object_put(r);
        return MOS_E_PROTO;
    }
    json_object_put(r);
    return 0;
}

/* ---- cgroups (v1 cpu controller, where the lab and sites cap CPU) ----------------------- */

static int cgroup_join(const char *procs, pid_t pid)
{
    FILE *f = fopen(procs, "we");
    int rc;

    if (!f)
        return -1;
    rc = fprintf(f, "%d\n", (int)pid) > 0 ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* The cgroup.procs file of pid's cpu cgroup ("" when it has none of its own). */
static void cgroup_procs_of(pid_t pid, char *out, size_t len)
{
    char path[64], line[512];
    FILE *f;

    out[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    if (!(f = fopen(path, "re")))
        return;
    while (fgets(line, sizeof(line), f)) {
        char *p = strstr(line, ":cpu:");
        if (!p)
            p = strstr(line, ":cpu,cpuacct:");
        if (p) {
            p = strchr(p + 1, ':') + 1;
            p[strcspn(p, "\n")] = '\0';
            snprintf(out, len, "/sys/fs/cgroup/cpu%s/cgroup.procs", p);
        }
    }
    fclose(f);
}

/* Move pid into our own cpu cgroup for a while; *was receives where it came from. */
static void cgroup_borrow(pid_t pid, char *was, size_t len)
{
    char ours[512];

    cgroup_procs_of(pid, was, len);
    cgroup_procs_of(getpid(), ours, sizeof(ours));
    if (!was[0] || !ours[0] || strcmp(was, ours) == 0 || cgroup_join(ours, pid) != 0)
        was[0] = '\0';
}

/* How a job leaves: what to do just before the commit, whether the original stays as a shell
 * (a job leaving home: its pid, parent and session wait there for its return), and a home
 * call the guest is held in, answered once the freeze has begun. */
struct stream_how {
    void (*before_commit)(void *);
    void *arg;
    int shell;
    int listener;      /* the guest's seccomp listener, when a call is held */
    uint64_t held;
    int held_answered;
    pid_t pid;         /* filled by stream_guest */
    int retired;       /* the original is gone (killed or a shell) */
    char home_cg[512]; /* the job's own cpu cgroup while the capture borrows mosd's */
};

static void answer_held(void *arg)
{
    struct stream_how *how = arg;

    /* the interrupt is pending now, so the call restarts on its way out, into the stop */
    how->held_answered = mos_supervisor_answer(how->listener, how->held, -MOS_ERESTARTNOINTR) == 0;
}

static void how_before_commit(void *arg)
{
    struct stream_how *how = arg;

    if (how->before_commit)
        how->before_commit(how->arg);
}

static void how_retire(struct mos_dump *dump, void *arg)
{
    struct stream_how *how = arg;
    char husk[4096];

    how->retired = 1;
    if (!how->shell) {
        mos_dump_commit(dump);
        return;
    }
    /* the shell waits in the job's own cgroup, not in mosd's that the capture borrowed */
    if (mos_dump_commit_shell(dump, mos_restore_husk_path(husk, sizeof(husk))) == 0 &&
        how->home_cg[0])
        cgroup_join(how->home_cg, how->pid);
}

static void how_abort(void *arg)
{
    struct stream_how *how = arg;

    if (how->home_cg[0])
        cgroup_join(how->home_cg, how->pid);
}

/* Freeze pid, stream it to node `target` as the guest g describes, and once the target has it
 * rebuilt and linked to the deputy (READY), call before_commit, kill the original (or leave its
 * shell) and send COMMIT. Before READY any failure resumes pid where it was. Returns 0 when the
 * job runs there. */
static int stream_guest(const struct mosd *d, int target, const struct guest_header *g, pid_t pid,
                        struct stream_how *how, char *why, size_t len)
{
    const char *name = d->cfg.nodes[target].name;
    char where[160];
    struct mos_tp_opts opts = d->tp_opts;
    struct mos_dump_opts dopts = {.fds_at_home = 1}; /* they stay with mosrun, the deputy */
    struct mos_send_hooks hooks = {.before_commit = how_before_commit, .retire = how_retire,
                                   .on_abort = how_abort, .arg = how};
    struct mos_img_io *io = NULL;
    mos_tp_conn_t *conn = NULL;
    int rc;

    if (how->listener > 0) {
        dopts.on_interrupt = answer_held;
        dopts.on_interrupt_arg = how;
    }
    how->pid = pid;
    opts.timeout_ms = MIGRATION_TIMEOUT_MS;
    hostport(&d->cfg, target, where, sizeof(where));
    why[0] = '\0';
    rc = mos_tp_connect(where, &opts, &conn);
    if (rc == 0)
        rc = send_header(conn, g, name, why, len);
    if (rc == 0)
        rc = mos_img_io_tp_open(conn, MIGRATION_TIMEOUT_MS, 0, &io);
    if (rc != 0) {
        if (!why[0])
            snprintf(why, len, "cannot reach %s: %s", name, mos_strerror(rc));
        goto out;
    }
    /* The capture runs calls inside the job: in a capped cgroup each would wait for the next
     * period. It is captured from mosd's own cgroup, and put back if it stays. */
    cgroup_borrow(pid, how->home_cg, sizeof(how->home_cg));
    rc = mos_migrate_send(pid, &dopts, io, &hooks, NULL);
    if (rc != 0 && how->retired)
        snprintf(why, len, "the commit did not reach %s: %s", name, mos_strerror(rc));
    else if (rc != 0)
        snprintf(why, len, "%s did not take the job (%s); it continues where it was", name,
                 mos_strerror(rc));
out:
    mos_img_io_close(io);
    mos_tp_close(conn);
    return rc;
}

/* ---- out: the home node's worker ------------------------------------------------------------- */

struct out_args {
    const struct mosd *d;
    struct mosd_job job;
    int target;
    int deputy_port;
    int owner_fd; /* mosrun's registration socket */
};

static void tell_owner_migrated(void *arg)
{
    const struct out_args *a = arg;

    /* mosrun hears "migrated" before the original dies, so it never mistakes the kill for the
     * job's own end. */
    owner_say(a->owner_fd, "migrated", a->d->cfg.nodes[a->target].name);
}

static int move_out(const struct out_args *a, char *why, size_t len)
{
    const struct mosd *d = a->d;
    struct guest_header g = {.job = a->job.id, .uid = a->job.uid, .gid = a->job.gid,
                             .deputy_port = a->deputy_port, .home_pid = a->job.home_pid,
                             .max_load = a->job.max_load};

    snprintf(g.home, sizeof(g.home), "%s", d->cfg.nodes[d->self].name);
    snprintf(g.home_addr, sizeof(g.home_addr), "%s", d->cfg.nodes[d->self].addr);
    snprintf(g.cmd, sizeof(g.cmd), "%s", a->job.cmd);
    memcpy(g.token, a->job.token, sizeof(g.token));
    /* a mosrun that says where its own descriptors start can take the job back natively */
    struct stream_how how = {.before_commit = tell_owner_migrated, .arg = (void *)a,
                             .shell = a->job.owner_fd_min > 0};
    return stream_guest(d, a->target, &g, a->job.pid, &how, why, len);
}

/* A job already away: ask the node it is on to move it on (or home). */
static int move_away_job(const struct out_args *a, char *why, size_t len)
{
    const struct mosd *d = a->d;
    int from = mos_config_find_node(&d->cfg, a->job.where);
    char where[160], text[512], reply[1024];
    struct mos_tp_opts opts = d->tp_opts;
    mos_tp_conn_t *conn = NULL;
    size_t got = 0;
    int rc;

    if (from < 0) {
        snprintf(why, len, "the job's node %s is not in the config", a->job.where);
        return MOS_E_UNKNOWN_NODE;
    }
    opts.timeout_ms = MIGRATION_TIMEOUT_MS;
    hostport(&d->cfg, from, where, sizeof(where));
    snprintf(text, sizeof(text), "{\"op\":\"move\",\"home\":\"%s\",\"home_pid\":%d,\"to\":\"%s\"}",
             d->cfg.nodes[d->self].name, (int)a->job.home_pid, d->cfg.nodes[a->target].name);
    rc = mos_tp_connect(where, &opts, &conn);
    if (rc == 0)
        rc = mos_tp_ctl_call(conn, text, strlen(text), reply, sizeof(reply) - 1, &got);
    mos_tp_close(conn);
    if (rc != 0) {
        snprintf(why, len, "cannot reach %s, where the job runs: %s", a->job.where,
                 mos_strerror(rc));
        return rc;
    }
    reply[got] = '\0';
    struct json_object *r = json_tokener_parse(reply);
    rc = r && json_object_get_boolean(json_object_object_get(r, "ok")) ? 0 : MOS_E_PROTO;
    if (rc != 0)
        snprintf(why, len, "%s", r ? mos_json_str(r, "error", "refused") : "malformed reply");
    json_object_put(r);
    return rc;
}

static void __attribute__((noreturn)) worker_main(const struct out_args *a, int report_fd)
{
    char why[256] = "";
    int away = strcmp(a->job.where, a->d->cfg.nodes[a->d->self].name) != 0;
    int rc = away ? move_away_job(a, why, sizeof(why)) : move_out(a, why, sizeof(why));

    if (rc != 0 && !why[0])
        snprintf(why, sizeof(why), "%s", mos_strerror(rc));
    if (rc != 0 && !away)
        owner_say(a->owner_fd, "abort", NULL);
    dprintf(report_fd, "%s%s", rc == 0 ? "ok " : "error ",
            rc == 0 ? a->d->cfg.nodes[a->target].name : why);
    _exit(rc == 0 ? 0 : 1);
}

static struct mosd_job *job_by_worker_fd(struct mosd *d, int fd)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].moving && d->jobs[i].worker_fd == fd)
            return &d->jobs[i];
    return NULL;
}

static void on_worker_report(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    struct mosd_job *job = job_by_worker_fd(d, (int)fd);
    ssize_t n;

    (void)what;
    if (!job)
        return;
    n = read((int)fd, job->worker_text + job->worker_len,
             sizeof(job->worker_text) - 1 - job->worker_len);
    if (n > 0) {
        job->worker_len += (size_t)n;
        return;
    }
    job->worker_text[job->worker_len] = '\0';
    int ok = strncmp(job->worker_text, "ok ", 3) == 0;
    const char *text = ok ? job->worker_text + 3
                          : (strncmp(job->worker_text, "error ", 6) == 0 ? job->worker_text + 6
                                                                         : "the move failed");
    if (ok) {
        snprintf(job->where, sizeof(job->where), "%s", job->target);
        job->arrived_ns = mos_clock_now_ns();
        mos_info("mosd", "job %d (pid %d) now runs on %s", job->id, (int)job->home_pid,
                 job->where);
    } else {
        mos_warn("mosd", "job %d (pid %d) stays: %s", job->id, (int)job->home_pid, text);
    }
    reply_requester(job, ok, text);
    event_free(job->worker_ev);
    job->worker_ev = NULL;
    close(job->worker_fd);
    job->worker_fd = 0;
    job->worker_len = 0;
    job->moving = 0;
}

static void migrate_close_in_child(struct mosd *d, int keep_fd, int keep_listener);

static void worker_start(struct mosd *d, struct mosd_job *job, int deputy_port)
{
    struct out_args a = {.d = d, .job = *job};
    int pipefd[2];
    pid_t worker;

    a.target = mos_config_find_node(&d->cfg, job->target);
    a.deputy_port = deputy_port;
    a.owner_fd = job->owner ? bufferevent_getfd(job->owner) : -1;
    if (pipe2(pipefd, O_CLOEXEC) != 0 || (worker = fork()) < 0) {
        job->moving = 0;
        reply_requester(job, 0, "cannot start the migration worker");
        return;
    }
    if (worker == 0) {
        close(pipefd[0]);
        migrate_close_in_child(d, a.owner_fd, 0);
        worker_main(&a, pipefd[1]);
    }
    close(pipefd[1]);
    job->worker_fd = pipefd[0];
    job->worker_ev = event_new(d->base, pipefd[0], EV_READ | EV_PERSIST, on_worker_report, d);
    event_add(job->worker_ev, NULL);
}

void mosd_migrate_owner_reply(struct mosd *d, struct mosd_job *job, struct json_object *msg)
{
    if (job->checkpointing && strcmp(mos_json_str(msg, "done", ""), "checkpoint") == 0) {
        int ok = json_object_get_boolean(json_object_object_get(msg, "ok"));
        job->checkpointing = 0;
        reply_requester(job, ok, mos_json_str(msg, ok ? "where" : "error", "?"));
        return;
    }
    if (!job->moving || job->worker_ev)
        return;
    if (!json_object_get_boolean(json_object_object_get(msg, "ok"))) {
        char text[300];
        snprintf(text, sizeof(text), "pid %d stays: %s", (int)job->home_pid,
                 mos_json_str(msg, "error", "its mosrun refused"));
        job->moving = 0;
        reply_requester(job, 0, text);
        return;
    }
    worker_start(d, job, (int)mos_json_int(msg, "port", 0));
}

/* ---- in: the acceptor, which becomes the guest's supervisor ------------------------------- */

static int header_parse(const struct mosd *d, struct json_object *o, struct guest_header *h,
                        char *why, size_t len)
{
    mos_key_t token;

    h->job = (int)mos_json_int(o, "job", 0);
    h->uid = (uid_t)mos_json_int(o, "uid", -1);
    h->gid = (gid_t)mos_json_int(o, "gid", -1);
    h->deputy_port = (int)mos_json_int(o, "deputy_port", 0);
    h->home_pid = (int)mos_json_int(o, "home_pid", 0);
    snprintf(h->home, sizeof(h->home), "%s", mos_json_str(o, "home", ""));
    snprintf(h->home_addr, sizeof(h->home_addr), "%s", mos_json_str(o, "home_addr", ""));
    snprintf(h->cmd, sizeof(h->cmd), "%s", mos_json_str(o, "cmd", "?"));
    struct json_object *ml;
    h->max_load = json_object_object_get_ex(o, "max_load", &ml) ? json_object_get_double(ml) : -1;
    if (mos_key_parse_hex(mos_json_str(o, "token", ""), &token) != 0 || h->deputy_port <= 0 ||
        h->deputy_port > 65535 || h->home_pid <= 0 || (int)h->uid < 0 || (int)h->gid < 0) {
        snprintf(why, len, "malformed guest header");
        return MOS_E_PROTO;
    }
    int home = mos_config_find_node(&d->cfg, h->home);
    if (home < 0 || strcmp(d->cfg.nodes[home].addr, h->home_addr) != 0) {
        snprintf(why, len, "home node '%s' (%s) is not in this cluster", h->home, h->home_addr);
        return MOS_E_PROTO;
    }
    if (h->uid == 0) {
        snprintf(why, len, "root's processes do not migrate");
        return MOS_E_PROTO;
    }
    memcpy(h->token, token.bytes, sizeof(h->token));
    return 0;
}

static int answer(mos_tp_conn_t *c, uint32_t id, int ok, const char *key, const char *text)
{
    struct json_object *r = json_object_new_object();
    int rc;

    json_object_object_add(r, "ok", json_object_new_boolean(ok));
    if (text)
        json_object_object_add(r, key, json_object_new_string(text));
    const char *s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN);
    rc = mos_tp_ctl_reply(c, id, s, strlen(s));
    json_object_put(r);
    return rc;
}

/* A line to or from mosd (the supervisor's control socket): short, so read byte by byte. */
static int line_read(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len - 1) {
        ssize_t n = read(fd, buf + got, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        if (buf[got] == '\n')
            break;
        got++;
    }
    buf[got] = '\0';
    return (int)got;
}

struct sup_ctx {
    const struct mosd *d;
    const struct guest_header *h;
    pid_t guest;
    int ctl;
    char target[MOS_NODE_NAME_MAX];
    double max_load;
    int holding;                /* a home call waits for the trip home */
    uint64_t held;
    uint64_t home_retry_ns;     /* a trip home failed: until then home calls get ENOSYS */
};

#define HOME_RETRY_NS (30ull * 1000000000ull)

/* fork, execve, a file mmap...: the guest goes home, where the call then runs natively. At
 * home already (as a guest, its shell gone) or shortly after a failed trip, it is refused. */
static int on_home_call(struct mos_supervisor *sup, uint64_t id, long nr, void *arg)
{
    struct sup_ctx *x = arg;

    (void)sup;
    if (strcmp(x->h->home, x->d->cfg.nodes[x->d->self].name) == 0 ||
        mos_clock_now_ns() < x->home_retry_ns)
        return 0;
    mos_info("mosd", "guest %d (home %s pid %d): %s must run at home; taking it there",
             (int)x->guest, x->h->home, x->h->home_pid, mos_syscall_name(nr));
    snprintf(x->target, sizeof(x->target), "%s", x->h->home);
    x->max_load = -1;
    x->holding = 1;
    x->held = id;
    return MOS_HOME_CALL_DETACH;
}

/* mosd asks the supervisor, between two calls, to move the guest. */
static int on_sup_ctl(struct mos_supervisor *sup, void *arg)
{
    struct sup_ctx *x = arg;
    char line[128];

    (void)sup;
    if (line_read(x->ctl, line, sizeof(line)) < 0) {
        /* mosd went away: the guest keeps running here. The control fd is replaced by one
         * that never becomes readable, so the serving loop does not spin on the hang-up. */
        int quiet = eventfd(0, EFD_CLOEXEC);
        if (quiet >= 0) {
            dup2(quiet, x->ctl);
            close(quiet);
        }
        return 0;
    }
    double max_load = -1;
    if (sscanf(line, "move %63s %lf", x->target, &max_load) < 1)
        return 0;
    x->max_load = max_load;
    return MOS_SUPERVISOR_DETACHED;
}

/* The supervisor's life: serve the guest; when mosd asks, move it on (telling the deputy to
 * expect a new link); if that fails, serve it here again. */
static int supervise(const struct mosd *d, const struct guest_header *h, pid_t guest,
                     int listener, int link, int ctl)
{
    struct sup_ctx x = {.d = d, .h = h, .guest = guest, .ctl = ctl};
    struct mos_supervisor_ops ops = {.home_call = on_home_call, .ctl_fd = ctl,
                                     .on_ctl = on_sup_ctl, .arg = &x};
    char why[256];
    int status = 0, rc;

    while ((rc = mos_supervisor_run(guest, listener, link, &ops, &status)) ==
           MOS_SUPERVISOR_DETACHED) {
        int target = mos_config_find_node(&d->cfg, x.target);
        struct stream_how how = {.listener = x.holding ? listener : -1, .held = x.held};
        why[0] = '\0';
        rc = target < 0 ? MOS_E_UNKNOWN_NODE : mos_deputy_link_notify(link, MOS_LINK_MOVING);
        struct guest_header moving = *h;
        moving.max_load = x.max_load;
        if (rc == 0)
            rc = stream_guest(d, target, &moving, guest, &how, why, sizeof(why));
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
    return rc;
}

/* The job's home keeps WHERE for mosps: say where the guest now is, whoever moved it. */
static void tell_home(const struct mosd *d, const struct guest_header *h)
{
    int home = mos_config_find_node(&d->cfg, h->home);
    struct mos_tp_opts opts = d->tp_opts;
    mos_tp_conn_t *conn = NULL;
    char where[160], text[256];

    if (home < 0 || home == d->self)
        return;
    opts.timeout_ms = 5000;
    hostport(&d->cfg, home, where, sizeof(where));
    snprintf(text, sizeof(text), "{\"op\":\"where\",\"home_pid\":%d,\"where\":\"%s\"}",
             h->home_pid, d->cfg.nodes[d->self].name);
    if (mos_tp_connect(where, &opts, &conn) == 0)
        mos_tp_ctl_send(conn, 0, text, strlen(text));
    mos_tp_close(conn);
}

/* ---- in, at home: the job back in its own process --------------------------------------- */

/* One of our jobs, by its pid here, with the mosrun that started it. */
static const struct mosd_job *own_job_const(const struct mosd *d, pid_t home_pid)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (!d->jobs[i].supervisor && d->jobs[i].owner && d->jobs[i].home_pid == home_pid)
            return &d->jobs[i];
    return NULL;
}

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
static int native_return(const struct mosd *d, const struct guest_header *h,
                         struct mos_restore_opts *ro, char *cwd, size_t cwd_len)
{
    const struct mosd_job *own;
    char link[64];
    ssize_t n;

    if (strcmp(h->home, d->cfg.nodes[d->self].name) != 0 ||
        !(own = own_job_const(d, h->home_pid)) || own->owner_fd_min <= 0 ||
        !shell_is_there(h->home_pid, own->owner_pid, h->uid))
        return 0;
    snprintf(link, sizeof(link), "/proc/%d/cwd", (int)own->owner_pid);
    if ((n = readlink(link, cwd, cwd_len - 1)) < 0)
        return 0;
    cwd[n] = '\0';
    ro->guest = 0;
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
        cgroup_join(job_cg, mos_restore_pid(r));
    return 0;
}

/* Restore into the shell, confirm, and let it run: mosd then tells mosrun it is home. */
static int take_home(mos_tp_conn_t *c, const struct guest_header *h,
                     struct mos_restore_opts *ro, int ctl)
{
    char job_cg[512] = "";
    struct mos_receive_hooks hooks = {.before_ready = home_before_ready, .arg = job_cg};
    struct mos_img_io *io;
    pid_t pid;
    int rc = mos_img_io_tp_open(c, MIGRATION_TIMEOUT_MS, 0, &io);

    if (rc != 0)
        return rc;
    cgroup_borrow(h->home_pid, job_cg, sizeof(job_cg));
    rc = mos_migrate_receive(io, ro, &hooks, &pid);
    if (rc == 0) {
        mos_info("mosd", "job %d (pid %d) is home, native again", h->job, h->home_pid);
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
    const struct guest_header *h;
    int listener, link;
};

/* Into the guests' cgroup only now (rebuilding it took many injected calls, each of which
 * would have waited out a throttled period in a capped cgroup); its seccomp listener taken;
 * the link home made: a guest never runs without a way home. */
static int guest_before_ready(struct mos_restore *r, void *arg)
{
    struct guest_in *g = arg;
    pid_t guest = mos_restore_pid(r);

    if (g->d->guest_cgroup_procs[0] && cgroup_join(g->d->guest_cgroup_procs, guest) != 0)
        mos_warn("mosd", "guest %d: cannot join %s", (int)guest, g->d->guest_cgroup_procs);
    g->listener = mos_supervisor_take_listener(guest, mos_restore_listener_fd(r));
    if (g->listener < 0)
        return g->listener;
    g->link = mos_deputy_link_connect(g->h->home_addr, g->h->deputy_port, g->h->token, 10000);
    return g->link < 0 ? g->link : 0;
}

/* Restore the guest, link it home, confirm, and serve it until it ends or moves on. */
static int take_guest(const struct mosd *d, mos_tp_conn_t *c, const struct guest_header *h,
                      int ctl)
{
    char husk_buf[4096], cwd[4096];
    struct mos_restore_opts ro = {.guest = 1, .uid = h->uid, .gid = h->gid};
    struct sock_filter filter[MOS_GUEST_FILTER_MAX];
    struct guest_in g = {.d = d, .h = h, .listener = -1, .link = -1};
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
    rc = mos_img_io_tp_open(c, MIGRATION_TIMEOUT_MS, 0, &io);
    if (rc != 0)
        return rc;
    rc = mos_migrate_receive(io, &ro, &hooks, &guest);
    mos_img_io_close(io);
    if (rc != 0) {
        mos_err("mosd", "guest job %d from %s discarded: %s", h->job, h->home, mos_strerror(rc));
        if (g.listener >= 0)
            close(g.listener);
        if (g.link >= 0)
            close(g.link);
        return rc;
    }
    dprintf(ctl, "guest %d %d %d %d %s %s\n", (int)guest, h->home_pid, h->job, (int)h->uid,
            h->home, h->cmd);
    mos_tp_close(c);
    tell_home(d, h);
    rc = supervise(d, h, guest, g.listener, g.link, ctl);
    close(g.listener);
    close(g.link);
    return rc;
}

/* Another node (the job's home) asks us to move one of our guests on. */
static int relay_move(mos_tp_conn_t *c, uint32_t id, struct json_object *o, int ctl)
{
    char line[300];

    dprintf(ctl, "move %s %lld %s\n", mos_json_str(o, "home", "?"),
            mos_json_int(o, "home_pid", 0), mos_json_str(o, "to", "?"));
    if (line_read(ctl, line, sizeof(line)) < 0)
        snprintf(line, sizeof(line), "error mosd did not answer");
    int ok = strncmp(line, "ok ", 3) == 0;
    return answer(c, id, ok, ok ? "where" : "error",
                  ok ? line + 3 : (strncmp(line, "error ", 6) == 0 ? line + 6 : line));
}

static void __attribute__((noreturn)) acceptor_main(struct mosd *d, int ctl)
{
    mos_tp_conn_t *c = NULL;
    struct guest_header h;
    struct mos_tp_msg msg;
    char text[MOS_TP_MAX_CONTROL + 1], why[200];
    int rc;

    signal(SIGCHLD, SIG_DFL);
    migrate_close_in_child(d, ctl, 1);
    rc = mos_tp_accept(d->tp_listener, &c);
    mos_tp_listener_close(d->tp_listener); /* the port is mosd's */
    if (rc == 0)
        rc = mos_tp_ctl_recv(c, &msg, text, sizeof(text) - 1, -1);
    if (rc != 0)
        _exit(2);
    text[msg.len] = '\0';
    struct json_object *o = json_tokener_parse(text);
    const char *op = mos_json_str(o, "op", "");
    if (strcmp(op, "exec") == 0)
        mosd_exec_accept(d, c, msg.id, o, ctl); /* mosrun -E: becomes the program's relay */
    if (strcmp(op, "move") == 0) {
        rc = relay_move(c, msg.id, o, ctl);
        mos_tp_close(c);
        _exit(rc == 0 ? 0 : 1);
    }
    if (strcmp(op, "where") == 0) {
        dprintf(ctl, "where %lld %.63s\n", mos_json_int(o, "home_pid", 0),
                mos_json_str(o, "where", "?"));
        mos_tp_close(c);
        _exit(0);
    }
    if (strcmp(op, "guest") != 0 || header_parse(d, o, &h, why, sizeof(why)) != 0) {
        if (strcmp(op, "guest") != 0)
            snprintf(why, sizeof(why), "unknown request '%s'", op);
        mos_warn("mosd", "refused a request from %s: %s", mos_tp_conn_peer(c), why);
        answer(c, msg.id, 0, "error", why);
        mos_tp_close(c);
        _exit(2);
    }
    json_object_put(o);
    if (d->blocked && strcmp(h.home, d->cfg.nodes[d->self].name) != 0) {
        snprintf(why, sizeof(why), "node %s is blocked", d->cfg.nodes[d->self].name);
        answer(c, msg.id, 0, "error", why);
        mos_tp_close(c);
        _exit(2);
    }
    /* A balancing move is refused when guests arriving from elsewhere have already taken
     * what the sender saw free here (its view of us is a few steps old). */
    double ncpus = d->cpu_quota > 0 ? ceil(d->cpu_quota) : (double)sysconf(_SC_NPROCESSORS_ONLN);
    if (h.max_load >= 0 && mosd_local_load(d) + 1.0 / ncpus > h.max_load + 1e-9) {
        snprintf(why, sizeof(why), "busy: load %.2f here", mosd_local_load(d));
        answer(c, msg.id, 0, "error", why);
        mos_tp_close(c);
        _exit(2);
    }
    answer(c, msg.id, 1, NULL, NULL);
    rc = take_guest(d, c, &h, ctl);
    _exit(rc == 0 ? 0 : 1);
}

/* ---- in: mosd's side of its acceptors and supervisors ------------------------------------- */

static struct mosd_job *job_by_sup_ctl(struct mosd *d, int fd)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].supervisor && d->jobs[i].sup_ctl == fd)
            return &d->jobs[i];
    return NULL;
}

static struct mosd_job *own_job(struct mosd *d, pid_t home_pid)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (!d->jobs[i].supervisor && d->jobs[i].owner && d->jobs[i].home_pid == home_pid)
            return &d->jobs[i];
    return NULL;
}

static struct mosd_job *guest_by_home(struct mosd *d, const char *home, pid_t home_pid)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].supervisor && d->jobs[i].home_pid == home_pid &&
            strcmp(d->jobs[i].home, home) == 0)
            return &d->jobs[i];
    return NULL;
}

/* A supervisor's line: the outcome of a move, passed to the acceptor that asked. */
static void on_supervisor_line(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    struct mosd_job *job = job_by_sup_ctl(d, (int)fd);
    char line[300];

    (void)what;
    if (!job)
        return;
    if (line_read((int)fd, line, sizeof(line)) < 0) {
        event_del(job->sup_ev); /* the supervisor ended; SIGCHLD removes the job */
        return;
    }
    job->moving = 0; /* an answer while it is still here: the move failed */
    if (job->move_reply_fd > 0) {
        dprintf(job->move_reply_fd, "%s\n", line);
        close(job->move_reply_fd);
        job->move_reply_fd = 0;
    }
}

static void acceptor_done(struct mosd *d)
{
    event_free(d->acceptor_ev);
    d->acceptor_ev = NULL;
    d->acceptor = 0; /* the next connection may come in */
    event_add(d->tp_event, NULL);
}

/* The acceptor's first line: a guest it now supervises, or a move it relays. */
static void on_acceptor_line(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    pid_t acceptor = d->acceptor;
    char line[512], home[MOS_NODE_NAME_MAX], to[MOS_NODE_NAME_MAX];
    int pid, job_id, uid, off = 0, home_pid;

    (void)what;
    int got = line_read((int)fd, line, sizeof(line));
    acceptor_done(d);
    if (got > 0 &&
        sscanf(line, "guest %d %d %d %d %63s %n", &pid, &home_pid, &job_id, &uid, home, &off) ==
            5 &&
        off > 0) {
        struct mosd_job *job = mosd_job_add(d);
        if (!job) {
            close((int)fd);
            return;
        }
        job->pid = pid;
        job->home_pid = home_pid;
        job->arrived_ns = mos_clock_now_ns();
        job->uid = (uid_t)uid;
        job->supervisor = acceptor;
        job->sup_ctl = (int)fd;
        job->sup_ev = event_new(d->base, (int)fd, EV_READ | EV_PERSIST, on_supervisor_line, d);
        event_add(job->sup_ev, NULL);
        snprintf(job->home, sizeof(job->home), "%s", home);
        snprintf(job->where, sizeof(job->where), "%s", d->cfg.nodes[d->self].name);
        snprintf(job->cmd, sizeof(job->cmd), "%s", line + off);
        mos_info("mosd", "guest job %d from %s runs here as pid %d: %s", job_id, home, pid,
                 job->cmd);
        struct mosd_job *own = strcmp(home, d->cfg.nodes[d->self].name) == 0
                                   ? own_job(d, home_pid)
                                   : NULL;
        if (own) /* one of ours, back home */
            snprintf(own->where, sizeof(own->where), "%s", home);
        return;
    }
    if (got > 0 && sscanf(line, "native %d", &home_pid) == 1) {
        struct mosd_job *job = own_job(d, home_pid);
        if (job) {
            snprintf(job->where, sizeof(job->where), "%s", d->cfg.nodes[d->self].name);
            job->arrived_ns = mos_clock_now_ns();
            struct json_object *m = json_object_new_object();
            json_object_object_add(m, "op", json_object_new_string("native"));
            mosd_send(job->owner, m);
            json_object_put(m);
        }
        close((int)fd);
        return;
    }
    if (got > 0 && sscanf(line, "where %d %63s", &home_pid, to) == 2) {
        struct mosd_job *job = own_job(d, home_pid);
        if (job && mos_config_find_node(&d->cfg, to) >= 0)
            snprintf(job->where, sizeof(job->where), "%s", to);
        close((int)fd);
        return;
    }
    if (got > 0 && sscanf(line, "move %63s %d %63s", home, &home_pid, to) == 3) {
        struct mosd_job *job = guest_by_home(d, home, home_pid);
        if (!job || job->move_reply_fd > 0) {
            dprintf((int)fd, "error %s\n", job ? "already moving" : "no such guest here");
            close((int)fd);
            return;
        }
        mos_info("mosd", "moving guest pid %d (home %s pid %d) to %s", (int)job->pid, home,
                 home_pid, to);
        job->move_reply_fd = (int)fd;
        dprintf(job->sup_ctl, "move %s\n", to);
        return;
    }
    close((int)fd);
}

static void on_incoming(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    int sp[2];
    pid_t child;

    (void)fd, (void)what;
    if (d->acceptor)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0 || (child = fork()) < 0) {
        mos_err("mosd", "cannot take an incoming connection: %s", strerror(errno));
        return;
    }
    if (child == 0) {
        close(sp[0]);
        acceptor_main(d, sp[1]);
    }
    close(sp[1]);
    /* No second acceptor until this one has its connection and said what it is (or died). */
    event_del(d->tp_event);
    d->acceptor = child;
    d->acceptor_fd = sp[0];
    d->acceptor_ev = event_new(d->base, sp[0], EV_READ, on_acceptor_line, d);
    event_add(d->acceptor_ev, NULL);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    struct mosd *d = arg;
    int status;
    pid_t pid;

    (void)sig, (void)what;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == d->acceptor) { /* died before saying anything */
            close(d->acceptor_fd);
            acceptor_done(d);
            continue;
        }
        struct mosd_job *job = mosd_job_by_supervisor(d, pid);
        if (job) {
            mos_info("mosd", "guest job from %s (pid %d) left this node", job->home,
                     (int)job->pid);
            mosd_job_remove(d, job);
            if (d->stopping && mosd_migrate_guests(d) == 0)
                event_base_loopexit(d->base, NULL);
        }
    }
}

int mosd_migrate_start(struct mosd *d)
{
    char where[160];
    mos_tp_listener_t *l;
    int rc;

    mos_tp_opts_default(&d->tp_opts);
    d->tp_opts.key = d->have_key ? &d->key : NULL;
    if (strcmp(d->cfg.transport, "auto") != 0 && !getenv("MOS_TRANSPORT"))
        d->tp_opts.backend = (enum mos_tp_backend)mos_tp_backend_parse(d->cfg.transport);
    hostport(&d->cfg, d->self, where, sizeof(where));
    rc = mos_tp_listen(where, &d->tp_opts, &l);
    if (rc != 0) {
        mos_err("mosd", "cannot accept migrations on %s: %s", where, mos_strerror(rc));
        return rc;
    }
    d->tp_listener = l;
    d->tp_event = event_new(d->base, mos_tp_listener_fd(l), EV_READ | EV_PERSIST, on_incoming, d);
    d->sigchld = evsignal_new(d->base, SIGCHLD, on_sigchld, d);
    event_add(d->tp_event, NULL);
    event_add(d->sigchld, NULL);
    return 0;
}

void mosd_migrate_stop(struct mosd *d)
{
    if (d->tp_event)
        event_free(d->tp_event);
    if (d->sigchld)
        event_free(d->sigchld);
    if (d->acceptor_ev)
        event_free(d->acceptor_ev);
    if (d->tp_listener)
        mos_tp_listener_close(d->tp_listener);
    d->tp_event = d->sigchld = d->acceptor_ev = NULL;
    d->tp_listener = NULL;
}

size_t mosd_migrate_guests(const struct mosd *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n_jobs; i++)
        n += d->jobs[i].supervisor != 0 &&
             strcmp(d->jobs[i].home, d->cfg.nodes[d->self].name) != 0;
    return n;
}

/* An orderly stop: every guest is asked to go home; mosd ends when they have, or at the
 * deadline (a guest whose home cannot take it runs on under its supervisor). */
int mosd_migrate_send_guests_home(struct mosd *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n_jobs; i++) {
        struct mosd_job *job = &d->jobs[i];
        /* a job of ours that came home as a guest stays: its supervisor runs on without us */
        if (!job->supervisor || job->move_reply_fd > 0 ||
            strcmp(job->home, d->cfg.nodes[d->self].name) == 0)
            continue;
        dprintf(job->sup_ctl, "move %s\n", job->home);
        n++;
    }
    if (n)
        mos_info("mosd", "sending %zu guest(s) home before stopping", n);
    return (int)n;
}

/* The migration side of a forked child's clean-up: every job's and acceptor's descriptors,
 * and the transport listener (keep_listener: the acceptor still has to accept on it). */
static void migrate_close_in_child(struct mosd *d, int keep_fd, int keep_listener)
{
    mosd_control_close_in_child(d, keep_fd);
    for (size_t i = 0; i < d->n_jobs; i++) {
        struct mosd_job *j = &d->jobs[i];
        if (j->worker_fd > 0 && j->worker_fd != keep_fd)
            close(j->worker_fd);
        if (j->sup_ctl > 0 && j->sup_ctl != keep_fd)
            close(j->sup_ctl);
        if (j->move_reply_fd > 0 && j->move_reply_fd != keep_fd)
            close(j->move_reply_fd);
    }
    if (d->acceptor && d->acceptor_fd != keep_fd)
        close(d->acceptor_fd);
    if (!keep_listener && d->tp_listener)
        close(mos_tp_listener_fd(d->tp_listener));
}

int mosd_migrate_bring_home(struct mosd *d)
{
    const char *self = d->cfg.nodes[d->self].name;
    int n = 0;

    for (size_t i = 0; i < d->n_jobs; i++) {
        struct mosd_job *job = &d->jobs[i];
        if (job->supervisor || !job->owner || job->moving || strcmp(job->where, self) == 0)
            continue;
        struct json_object *req = json_object_new_object(), *refusal;
        json_object_object_add(req, "pid", json_object_new_int(job->home_pid));
        json_object_object_add(req, "to", json_object_new_string("home"));
        refusal = mosd_migrate_request(d, NULL, 0, req);
        n += refusal == NULL;
        json_object_put(refusal);
        json_object_put(req);
    }
    return n;
}

void mosd_migrate_close_in_child(struct mosd *d, int keep_fd)
{
    migrate_close_in_child(d, keep_fd, 0);
}
