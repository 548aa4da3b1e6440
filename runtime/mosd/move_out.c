/* Moving jobs out of a node.
 *
 * Home node: a command (or the balancer) asks to move job P to node T. mosd asks P's mosrun to
 * prepare (it takes P's descriptors, and again when the link arrives and P is frozen, and
 * listens for the deputy link with a fresh token), then a
 * worker process connects to T's mosd over the transport (cluster key proved), sends the
 * guest's header with the token, freezes and streams P, and waits for READY: T has rebuilt P
 * and its supervisor has proved the token to mosrun. Only then does mosrun hear "migrated", the
 * frozen P becomes a shell (or is killed) and T gets COMMIT (migrate/'s two-step commit). Any
 * failure before that resumes P where it was.
 *
 * A job already away is moved on by the node it runs on: the home worker asks that node, whose
 * supervisor streams the guest the same way (mosd_stream_guest). */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/forward.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/status.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- the request ---------------------------------------------------------------------- */

/* A job at home is checked before anything of a move or checkpoint starts: still the process
 * registered, with no more than its user's rights. The reason becomes its stay reason. */
static int owner_refuses(struct mosd_job *job, char *reason, size_t len)
{
    struct mos_job_owner owner;

    mosd_job_owner(job, &owner);
    int rc = mos_migrate_owner_check(job->pid, &owner, reason, len);
    if (rc == 0)
        return 0;
    if (rc != MOS_E_NOT_MIGRATABLE)
        snprintf(reason, len, "cannot be inspected (%s)", mos_strerror(rc));
    snprintf(job->stay, sizeof(job->stay), "%.*s", (int)sizeof(job->stay) - 1, reason);
    mos_warn("mosd", "job %d (pid %d) stays: it %s", job->id, (int)job->pid, reason);
    return rc;
}

static void worker_start(struct mosd *d, struct mosd_job *job, int deputy_port);

/* live_mode = pre: a job at home big enough that its copy would stop it noticeably. */
static int live_by_config(const struct mosd *d, const struct mosd_job *job)
{
    char path[64];
    unsigned long long size = 0, resident = 0;
    FILE *f;

    if (strcmp(d->cfg.live_mode, "pre") != 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)job->pid);
    if (!(f = fopen(path, "re")))
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return n == 2 && resident * (unsigned long long)sysconf(_SC_PAGESIZE) >=
                         (unsigned long long)d->cfg.live_min_mib << 20;
}

struct json_object *mosd_move_request(struct mosd *d, struct bufferevent *requester,
                                         uid_t uid, struct json_object *req)
{
    struct mosd_migrate_req mr;
    char reason[256], hex[65];
    int node;

    if (mosd_migrate_parse(req, &mr, reason, sizeof(reason)) != 0)
        return mosd_reply_error("%s", reason);
    pid_t pid = mr.pid;
    const char *to = mr.to;
    struct mosd_job *job = mosd_job_find(d, pid);
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
    int at_home = strcmp(job->where, d->cfg.nodes[d->self].name) == 0;
    /* a job away is moved by the node it is on: its mosrun may still be reconnecting */
    if (!job->owner && (at_home || strcmp(mr.to, "checkpoint") == 0))
        return mosd_reply_error("pid %d: its mosrun has not reconnected since mosd restarted",
                                (int)pid);
    if (at_home && owner_refuses(job, reason, sizeof(reason)) != 0)
        return mosd_reply_error("pid %d stays: it %s", (int)pid, reason);
    if (strcmp(to, "checkpoint") == 0) {
        /* its mosrun, the job's parent and owner, writes it; the answer comes back from it */
        struct json_object *ck = json_object_new_object();
        json_object_object_add(ck, "op", json_object_new_string("checkpoint"));
        const char *file = mr.file;
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
    if (!mosd_nodeset_allows(&job->nodes, d->self, node)) {
        char text[MOSD_NODES_WORD_MAX];
        mosd_nodeset_text(d, &job->nodes, text, sizeof(text));
        return mosd_reply_error("pid %d may run only on its nodes (mosrun -N %s) and home: %s "
                                "is not one of them", (int)pid, text, d->cfg.nodes[node].name);
    }
    if (!d->have_key)
        return mosd_reply_error("%s", MOSD_NO_KEY_TEXT);
    snprintf(job->target, sizeof(job->target), "%s", d->cfg.nodes[node].name);
    job->max_load = mr.max_load;
    job->live = mr.live || live_by_config(d, job);
    job->requester = requester;
    job->moving = 1;
    job->move_asked_ns = mos_clock_now_ns();
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
    mosd_hex(job->token, sizeof(job->token), hex);
    struct json_object *prep = json_object_new_object();
    json_object_object_add(prep, "op", json_object_new_string("prepare"));
    json_object_object_add(prep, "token", json_object_new_string(hex));
    mosd_send(job->owner, prep);
    json_object_put(prep);
    return NULL; /* answered when the move is done */
}

void mosd_move_forget_requester(struct mosd *d, struct bufferevent *bev)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].requester == bev)
            d->jobs[i].requester = NULL;
}

/* ---- streaming a job to another node ---------------------------------------------------
 * Used by the home node's worker (a job at home) and by a guest's supervisor (a guest moving
 * on, or home). */

static void owner_say(int fd, const char *op, const char *where)
{
    struct json_object *m = json_object_new_object();

    json_object_object_add(m, "op", json_object_new_string(op));
    if (where)
        json_object_object_add(m, "where", json_object_new_string(where));
    mos_control_send(fd, m);
    json_object_put(m);
}

/* The "guest" request: who the job is and how its supervisor reaches the deputy. Keeps the
 * connection for the image when the target agrees. */
static int send_header(const struct mosd *d, int target, const struct mosd_guest_header *g,
                       mos_tp_conn_t **conn, char *why, size_t why_len)
{
    struct json_object *h = json_object_new_object();
    char hex[2 * MOSD_TOKEN_BYTES + 1];
    int rc;

    mosd_hex(g->token, sizeof(g->token), hex);
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
    if (g->nodes.restricted)
        json_object_object_add(h, "nodes", mosd_nodeset_json(d, &g->nodes));
    if (g->max_load >= 0)
        json_object_object_add(h, "max_load", json_object_new_double(g->max_load));
    if (g->calls_wait > 0)
        json_object_object_add(h, "calls_wait", json_object_new_double(g->calls_wait));
    rc = mosd_peer_call(d, target, MOSD_MIGRATION_TIMEOUT_MS, h, conn, NULL, why, why_len);
    json_object_put(h);
    return rc;
}

/* For each thread the freeze interrupts: its call held (a home call, or calls a move took back
 * from home), answered now that the interrupt is pending, so it restarts on its way out, into
 * the stop. */
static void answer_held(pid_t tid, void *arg)
{
    struct mosd_stream_how *how = arg;
    struct mos_held_calls *dr = how->drained;

    if (how->held && how->held_tid == tid)
        how->held_answered =
            mos_supervisor_answer(how->listener, how->held, -MOS_ERESTARTNOINTR) == 0;
    for (size_t i = 0; dr && i < dr->count;) {
        if ((pid_t)dr->calls[i].pid != tid) {
            i++;
            continue;
        }
        mos_supervisor_answer(how->listener, dr->calls[i].id, -MOS_ERESTARTNOINTR);
        dr->calls[i] = dr->calls[--dr->count];
    }
}

/* The capture runs calls inside the job: in a capped cgroup each would wait for the next
 * period. It is captured from mosd's own cgroup, and put back if it stays. Only at the freeze:
 * a live move's job runs on meanwhile, in its own. */
static void how_before_freeze(void *arg)
{
    struct mosd_stream_how *how = arg;

    mosd_cgroup_borrow(how->pid, how->home_cg, sizeof(how->home_cg));
}

static void how_before_commit(void *arg)
{
    struct mosd_stream_how *how = arg;

    if (how->before_commit)
        how->before_commit(how->arg);
}

static void how_retire(struct mos_dump *dump, void *arg)
{
    struct mosd_stream_how *how = arg;
    char husk[4096];

    how->retired = 1;
    if (!how->shell) {
        mos_dump_commit(dump);
        return;
    }
    /* the shell waits in the job's own cgroup, not in mosd's that the capture borrowed */
    if (mos_dump_commit_shell(dump, mos_restore_husk_path(husk, sizeof(husk))) == 0 &&
        how->home_cg[0])
        mosd_cgroup_join(how->home_cg, how->pid);
}

static void how_abort(void *arg)
{
    struct mosd_stream_how *how = arg;

    if (how->home_cg[0])
        mosd_cgroup_join(how->home_cg, how->pid);
}

int mosd_stream_guest(const struct mosd *d, int target, const struct mosd_guest_header *g,
                      pid_t pid, struct mosd_stream_how *how, char *why, size_t len)
{
    const char *name = d->cfg.nodes[target].name;
    struct mos_dump_opts dopts = {.fds_at_home = 1, /* they stay with mosrun, the deputy */
                                  .sandbox_ours = how->guest, .owner = how->owner,
                                  .tids = how->tids, .ntids = how->ntids,
                                  .live = how->live && !how->guest};
    struct mos_send_hooks hooks = {.before_freeze = how_before_freeze,
                                   .before_commit = how_before_commit, .retire = how_retire,
                                   .on_abort = how_abort,
                                   .deputy_decides = how->shell, .arg = how};
    struct mos_img_io *io = NULL;
    mos_tp_conn_t *conn = NULL;
    int rc;

    if (how->listener > 0) {
        dopts.on_interrupt = answer_held;
        dopts.on_interrupt_arg = how;
    }
    how->pid = pid;
    why[0] = '\0';
    /* between the request and now (mosrun's prepare) it may have run a set-id program */
    if (how->owner && (rc = mos_migrate_owner_check(pid, how->owner, why, len)) != 0) {
        char reason[200];
        snprintf(reason, sizeof(reason), "%s", rc == MOS_E_NOT_MIGRATABLE ? why : mos_strerror(rc));
        snprintf(why, len, "pid %d stays: it %s", (int)pid, reason);
        return rc;
    }
    rc = send_header(d, target, g, &conn, why, len);
    if (rc == MOS_E_PROTO) {
        char reason[200];
        snprintf(reason, sizeof(reason), "%s", why);
        snprintf(why, len, "%s refused the job: %s; it continues where it was", name, reason);
    }
    if (rc == 0 && (rc = mos_img_io_tp_open(conn, MOSD_MIGRATION_TIMEOUT_MS, 0, &io)) != 0)
        snprintf(why, len, "cannot stream to %s: %s", name, mos_strerror(rc));
    if (rc != 0)
        goto out;
    struct mos_dump_stats stats = {0};
    rc = mos_migrate_send(pid, &dopts, io, &hooks, &stats);
    /* control records plus the pages that went in bulk (a live move's were control records) */
    how->bytes = stats.bytes + stats.bulk_pages * (uint64_t)sysconf(_SC_PAGESIZE);
    if (rc != 0 && !how->retired)
        how_abort(how); /* a freeze that failed calls no hook: back to its own cgroup */
    if (stats.live_rounds)
        mos_info("mosd", "pid %d moved live: %llu rounds in %.0f ms, %llu pages ahead (%llu "
                 "again, %llu kept), frozen %.1f ms", (int)pid,
                 (unsigned long long)stats.live_rounds, stats.live_ns / 1e6,
                 (unsigned long long)stats.live_pages, (unsigned long long)stats.live_resent,
                 (unsigned long long)stats.live_kept, stats.downtime_ns / 1e6);
    if (rc != 0 && how->retired)
        snprintf(why, len, "the commit did not reach %s: %s", name, mos_strerror(rc));
    else if (rc == MOS_E_NOT_MIGRATABLE) /* found once frozen; the reason is in the log */
        snprintf(why, len, "pid %d stays: a stay reason appeared as it was frozen", (int)pid);
    else if (rc != 0)
        snprintf(why, len, "%s did not take the job (%s); it continues where it was", name,
                 mos_strerror(rc));
out:
    mos_img_io_close(io);
    mos_tp_close(conn);
    return rc;
}

/* ---- the home node's worker ------------------------------------------------------------- */

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

static int move_out(const struct out_args *a, uint64_t *bytes, char *why, size_t len)
{
    const struct mosd *d = a->d;
    struct mosd_guest_header g = {.job = a->job.id, .uid = a->job.uid, .gid = a->job.gid,
                             .deputy_port = a->deputy_port, .home_pid = a->job.home_pid,
                             .max_load = a->job.max_load, .nodes = a->job.nodes,
                             .calls_wait = a->job.calls_wait};

    snprintf(g.home, sizeof(g.home), "%s", d->cfg.nodes[d->self].name);
    snprintf(g.home_addr, sizeof(g.home_addr), "%s", d->cfg.nodes[d->self].addr);
    snprintf(g.cmd, sizeof(g.cmd), "%s", a->job.cmd);
    memcpy(g.token, a->job.token, sizeof(g.token));
    /* a mosrun that says where its own descriptors start can take the job back natively */
    struct mos_job_owner owner;
    mosd_job_owner(&a->job, &owner);
    struct mosd_stream_how how = {.before_commit = tell_owner_migrated, .arg = (void *)a,
                             .shell = a->job.owner_fd_min > 0, .owner = &owner,
                             .live = a->job.live};
    int rc = mosd_stream_guest(d, a->target, &g, a->job.pid, &how, why, len);
    *bytes = how.bytes;
    return rc;
}

/* A job already away: ask the node it is on to move it on (or home). */
static int move_away_job(const struct out_args *a, char *why, size_t len)
{
    const struct mosd *d = a->d;
    int from = mos_config_find_node(&d->cfg, a->job.where);
    struct json_object *req;
    int rc;

    if (from < 0) {
        snprintf(why, len, "the job's node %s is not in the config", a->job.where);
        return MOS_E_UNKNOWN_NODE;
    }
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("move"));
    json_object_object_add(req, "home", json_object_new_string(d->cfg.nodes[d->self].name));
    json_object_object_add(req, "home_pid", json_object_new_int((int)a->job.home_pid));
    json_object_object_add(req, "to", json_object_new_string(d->cfg.nodes[a->target].name));
    rc = mosd_peer_call(d, from, MOSD_MIGRATION_TIMEOUT_MS, req, NULL, NULL, why, len);
    json_object_put(req);
    return rc;
}

static void __attribute__((noreturn)) worker_main(const struct out_args *a, int report_fd)
{
    char why[256] = "";
    int away = strcmp(a->job.where, a->d->cfg.nodes[a->d->self].name) != 0;
    uint64_t bytes = 0; /* a job away is streamed by the node it is on: not counted here */
    int rc = away ? move_away_job(a, why, sizeof(why)) : move_out(a, &bytes, why, sizeof(why));

    if (rc != 0 && !why[0])
        snprintf(why, sizeof(why), "%s", mos_strerror(rc));
    if (rc != 0 && !away)
        owner_say(a->owner_fd, "abort", NULL);
    if (rc == 0) /* the image's size first: a node name has no spaces */
        dprintf(report_fd, "ok %llu %s", (unsigned long long)bytes, a->d->cfg.nodes[a->target].name);
    else
        dprintf(report_fd, "error %s", why);
    _exit(rc == 0 ? 0 : 1);
}

static void on_worker_report(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    struct mosd_job *job = mosd_job_by_worker_fd(d, (int)fd);
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
    struct mosd_line out;
    int known = mosd_line_report(job->worker_text, &out) == 0;
    int ok = known && out.kind == MOSD_LINE_OK;
    const char *text = known ? out.text : "the move failed";
    mosd_metrics_move_out(d, ok, (mos_clock_now_ns() - job->move_asked_ns) / 1e9,
                          ok ? out.bytes : 0);
    if (ok) {
        snprintf(job->where, sizeof(job->where), "%s", job->target);
        job->arrived_ns = mos_clock_now_ns();
        mosd_view_move_landed(d, job);
        mos_info("mosd", "job %d (pid %d) now runs on %s", job->id, (int)job->home_pid,
                 job->where);
        mosd_state_save(d);
    } else {
        mos_warn("mosd", "job %d (pid %d) stays: %s", job->id, (int)job->home_pid, text);
        mosd_gossip_refused(d, job->target);
        mosd_view_move_failed(d, job);
    }
    reply_requester(job, ok, text);
    event_free(job->worker_ev);
    job->worker_ev = NULL;
    close(job->worker_fd);
    job->worker_fd = 0;
    job->worker_len = 0;
    job->moving = 0;
}

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
        mosd_close_in_child(d, a.owner_fd, a.job.pidfd, 0);
        worker_main(&a, pipefd[1]);
    }
    close(pipefd[1]);
    /* from here on the move goes on without this mosd (the worker holds mosrun's line): a
     * restart before this line leaves the job where it was */
    mos_info("mosd", "job %d (pid %d): worker %d streams it to %s", job->id, (int)job->pid,
             (int)worker, job->target);
    job->worker_fd = pipefd[0];
    job->worker_ev = event_new(d->base, pipefd[0], EV_READ | EV_PERSIST, on_worker_report, d);
    event_add(job->worker_ev, NULL);
}

void mosd_move_owner_reply(struct mosd *d, struct mosd_job *job, struct json_object *msg)
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


int mosd_move_bring_home(struct mosd *d)
{
    const char *self = d->cfg.nodes[d->self].name;
    int n = 0;

    for (size_t i = 0; i < d->n_jobs; i++) {
        struct mosd_job *job = &d->jobs[i];
        if (job->supervisor || job->native || job->moving || strcmp(job->where, self) == 0)
            continue;
        struct json_object *req = json_object_new_object(), *refusal;
        json_object_object_add(req, "pid", json_object_new_int(job->home_pid));
        json_object_object_add(req, "to", json_object_new_string("home"));
        refusal = mosd_move_request(d, NULL, 0, req);
        n += refusal == NULL;
        json_object_put(refusal);
        json_object_put(req);
    }
    return n;
}
