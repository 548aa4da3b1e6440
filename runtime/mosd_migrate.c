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

#include "tp_img_io.h"

#include "mos/forward.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/status.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIGRATION_TIMEOUT_MS 120000
#define MSG_READY 'R'
#define MSG_COMMIT 'C'

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

static struct json_object *refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct json_object *refuse(const char *fmt, ...)
{
    struct json_object *r = json_object_new_object();
    char text[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_object_object_add(r, "ok", json_object_new_boolean(0));
    json_object_object_add(r, "error", json_object_new_string(text));
    return r;
}

struct json_object *mosd_migrate_request(struct mosd *d, struct bufferevent *requester,
                                         uid_t uid, struct json_object *req)
{
    pid_t pid = (pid_t)mos_json_int(req, "pid", -1);
    const char *to = mos_json_str(req, "to", "");
    struct mosd_job *job = mosd_job_find(d, pid);
    char reason[256], hex[65];
    int node;

    if (!job)
        return refuse("pid %d is not a mos job on node %s", (int)pid,
                      d->cfg.nodes[d->self].name);
    if (uid != 0 && uid != job->uid)
        return refuse("permission denied: pid %d belongs to uid %d", (int)pid, (int)job->uid);
    if (job->supervisor || strcmp(job->where, d->cfg.nodes[d->self].name) != 0)
        return refuse("pid %d runs on %s; ask its home node %s", (int)pid, job->where,
                      job->home);
    if (job->moving)
        return refuse("pid %d is already moving to %s", (int)pid, job->target);
    if (strcmp(to, "home") == 0)
        return refuse("pid %d is already at home", (int)pid);
    node = mos_config_find_node(&d->cfg, to);
    if (node < 0)
        return refuse("unknown node '%s'", to);
    if (node == d->self)
        return refuse("pid %d already runs on %s", (int)pid, to);
    if (!job->owner)
        return refuse("pid %d has no deputy (not started with mosrun)", (int)pid);
    struct mos_dump_opts dopts = {.fds_at_home = 1};
    if (mos_migrate_check(job->pid, &dopts, reason, sizeof(reason)) != 0)
        return refuse("pid %d stays: %s", (int)pid, reason);

    mos_random_bytes(job->token, sizeof(job->token));
    hex_of(job->token, sizeof(job->token), hex);
    snprintf(job->target, sizeof(job->target), "%s", to);
    job->moving = 1;
    job->requester = requester;
    struct json_object *prep = json_object_new_object();
    json_object_object_add(prep, "op", json_object_new_string("prepare"));
    json_object_object_add(prep, "token", json_object_new_string(hex));
    mosd_send(job->owner, prep);
    json_object_put(prep);
    mos_info("mosd", "job %d (pid %d): moving to %s", job->id, (int)pid, to);
    return NULL; /* answered when the move is done */
}

void mosd_migrate_forget_requester(struct mosd *d, struct bufferevent *bev)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].requester == bev)
            d->jobs[i].requester = NULL;
}

/* ---- out: the worker ------------------------------------------------------------------------ */

struct out_args {
    const struct mosd *d;
    struct mosd_job job;
    int target;
    int deputy_port;
    int owner_fd; /* mosrun's registration socket */
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

static int send_header(mos_tp_conn_t *c, const struct out_args *a)
{
    const struct mosd *d = a->d;
    struct json_object *h = json_object_new_object();
    char hex[65], reply[1024];
    size_t len = 0;
    int rc;

    hex_of(a->job.token, sizeof(a->job.token), hex);
    json_object_object_add(h, "op", json_object_new_string("guest"));
    json_object_object_add(h, "job", json_object_new_int(a->job.id));
    json_object_object_add(h, "uid", json_object_new_int((int)a->job.uid));
    json_object_object_add(h, "gid", json_object_new_int((int)a->job.gid));
    json_object_object_add(h, "home", json_object_new_string(d->cfg.nodes[d->self].name));
    json_object_object_add(h, "home_addr", json_object_new_string(d->cfg.nodes[d->self].addr));
    json_object_object_add(h, "deputy_port", json_object_new_int(a->deputy_port));
    json_object_object_add(h, "token", json_object_new_string(hex));
    json_object_object_add(h, "home_pid", json_object_new_int(a->job.home_pid));
    json_object_object_add(h, "cmd", json_object_new_string(a->job.cmd));
    const char *text = json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN);
    rc = mos_tp_ctl_call(c, text, strlen(text), reply, sizeof(reply) - 1, &len);
    json_object_put(h);
    if (rc != 0)
        return rc;
    reply[len] = '\0';
    struct json_object *r = json_tokener_parse(reply);
    if (!r || !json_object_get_boolean(json_object_object_get(r, "ok"))) {
        mos_err("mosd", "%s refused the guest: %s", d->cfg.nodes[a->target].name,
                r ? mos_json_str(r, "error", "?") : "malformed reply");
        json_object_put(r);
        return MOS_E_PROTO;
    }
    json_object_put(r);
    return 0;
}

static int byte_get(struct mos_img_io *io, char *c)
{
    ssize_t n = io->ops->read(io, c, 1);

    return n == 1 ? 0 : n == 0 ? MOS_E_PEER_GONE : (int)n;
}

/* The worker's whole move; returns 0 when the job runs at the target. */
static int move_out(const struct out_args *a, char *why, size_t len)
{
    char where[160], c = 0, commit = MSG_COMMIT;
    struct iovec iov = {&commit, 1};
    struct mos_tp_opts opts = a->d->tp_opts;
    struct tp_img_stream s;
    struct mos_dump *dump = NULL;
    mos_tp_conn_t *conn = NULL;
    int rc;

    opts.timeout_ms = MIGRATION_TIMEOUT_MS;
    hostport(&a->d->cfg, a->target, where, sizeof(where));
    rc = mos_tp_connect(where, &opts, &conn);
    if (rc == 0)
        rc = send_header(conn, a);
    if (rc == 0)
        rc = tp_img_stream_init(&s, conn, MIGRATION_TIMEOUT_MS);
    if (rc != 0) {
        snprintf(why, len, "cannot reach %s: %s", a->d->cfg.nodes[a->target].name,
                 mos_strerror(rc));
        goto out;
    }
    struct mos_dump_opts dopts = {.fds_at_home = 1}; /* they stay with mosrun, the deputy */
    rc = mos_dump_freeze(a->job.pid, &dopts, &dump);
    if (rc == 0)
        rc = mos_dump_write(dump, &s.io);
    if (rc == 0 && (rc = byte_get(&s.io, &c)) == 0 && c != MSG_READY)
        rc = MOS_E_PROTO;
    if (rc != 0) {
        snprintf(why, len, "%s did not take the job (%s); it continues here",
                 a->d->cfg.nodes[a->target].name, mos_strerror(rc));
        if (dump)
            mos_dump_abort(dump);
        goto out_stream;
    }
    /* mosrun hears "migrated" before the original dies, so it never mistakes the kill for the
     * job's own end. */
    owner_say(a->owner_fd, "migrated", a->d->cfg.nodes[a->target].name);
    mos_dump_commit(dump);
    rc = s.io.ops->writev(&s.io, &iov, 1);
    if (rc != 0)
        snprintf(why, len, "the commit did not reach %s: %s", a->d->cfg.nodes[a->target].name,
                 mos_strerror(rc));
out_stream:
    tp_img_stream_fini(&s);
out:
    mos_tp_close(conn);
    return rc;
}

static void __attribute__((noreturn)) worker_main(const struct out_args *a, int report_fd)
{
    char why[256] = "";
    int rc = move_out(a, why, sizeof(why));

    if (rc != 0 && !why[0])
        snprintf(why, sizeof(why), "%s", mos_strerror(rc));
    if (rc != 0)
        owner_say(a->owner_fd, "abort", NULL);
    dprintf(report_fd, "%s%s", rc == 0 ? "ok " : "error ", rc == 0 ? a->d->cfg.nodes[a->target].name : why);
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

void mosd_migrate_owner_reply(struct mosd *d, struct mosd_job *job, struct json_object *msg)
{
    struct out_args a = {.d = d, .job = *job};
    int pipefd[2];
    pid_t worker;

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
    a.target = mos_config_find_node(&d->cfg, job->target);
    a.deputy_port = (int)mos_json_int(msg, "port", 0);
    a.owner_fd = bufferevent_getfd(job->owner);
    if (pipe2(pipefd, O_CLOEXEC) != 0 || (worker = fork()) < 0) {
        job->moving = 0;
        reply_requester(job, 0, "cannot start the migration worker");
        return;
    }
    if (worker == 0) {
        close(pipefd[0]);
        worker_main(&a, pipefd[1]);
    }
    close(pipefd[1]);
    job->worker_fd = pipefd[0];
    job->worker_ev = event_new(d->base, pipefd[0], EV_READ | EV_PERSIST, on_worker_report, d);
    event_add(job->worker_ev, NULL);
}

/* ---- in: the acceptor, which becomes the guest's supervisor ------------------------------- */

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
};

static int header_parse(const struct mosd *d, const char *text, struct guest_header *h,
                        char *why, size_t len)
{
    struct json_object *o = json_tokener_parse(text);
    mos_key_t token;
    int rc = MOS_E_PROTO;

    if (!o || strcmp(mos_json_str(o, "op", ""), "guest") != 0) {
        snprintf(why, len, "not a guest header");
        goto out;
    }
    h->job = (int)mos_json_int(o, "job", 0);
    h->uid = (uid_t)mos_json_int(o, "uid", -1);
    h->gid = (gid_t)mos_json_int(o, "gid", -1);
    h->deputy_port = (int)mos_json_int(o, "deputy_port", 0);
    h->home_pid = (int)mos_json_int(o, "home_pid", 0);
    snprintf(h->home, sizeof(h->home), "%s", mos_json_str(o, "home", ""));
    snprintf(h->home_addr, sizeof(h->home_addr), "%s", mos_json_str(o, "home_addr", ""));
    snprintf(h->cmd, sizeof(h->cmd), "%s", mos_json_str(o, "cmd", "?"));
    if (mos_key_parse_hex(mos_json_str(o, "token", ""), &token) != 0 || h->deputy_port <= 0 ||
        h->deputy_port > 65535 || h->home_pid <= 0 || (int)h->uid < 0 || (int)h->gid < 0) {
        snprintf(why, len, "malformed guest header");
        goto out;
    }
    int home = mos_config_find_node(&d->cfg, h->home);
    if (home < 0 || strcmp(d->cfg.nodes[home].addr, h->home_addr) != 0) {
        snprintf(why, len, "home node '%s' (%s) is not in this cluster", h->home, h->home_addr);
        goto out;
    }
    if (h->uid == 0) {
        snprintf(why, len, "root's processes do not migrate");
        goto out;
    }
    memcpy(h->token, token.bytes, sizeof(h->token));
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

static int answer(mos_tp_conn_t *c, uint32_t id, const char *why)
{
    char text[400];

    if (why)
        snprintf(text, sizeof(text), "{\"ok\":false,\"error\":\"%s\"}", why);
    else
        snprintf(text, sizeof(text), "{\"ok\":true}");
    return mos_tp_ctl_reply(c, id, text, strlen(text));
}

/* Restore the guest, link it home, confirm, and serve it until it ends or its home goes. */
static int take_guest(const struct mosd *d, mos_tp_conn_t *c, const struct guest_header *h,
                      int report_fd)
{
    char husk_buf[4096], c_in = 0, ready = MSG_READY;
    struct iovec iov = {&ready, 1};
    struct mos_restore_opts ro = {.guest = 1, .uid = h->uid, .gid = h->gid};
    struct tp_img_stream s;
    struct mos_restore *r;
    int rc, listener = -1, link = -1, status = 0;

    ro.husk_path = mos_restore_husk_path(husk_buf, sizeof(husk_buf));
    rc = tp_img_stream_init(&s, c, MIGRATION_TIMEOUT_MS);
    if (rc != 0)
        return rc;
    rc = mos_restore_prepare(&s.io, &ro, &r);
    if (rc != 0)
        goto out;
    pid_t guest = mos_restore_pid(r);
    listener = mos_supervisor_take_listener(guest, mos_restore_listener_fd(r));
    if (listener >= 0)
        link = mos_deputy_link_connect(h->home_addr, h->deputy_port, h->token, 10000);
    rc = listener < 0 ? listener : link < 0 ? link : 0;
    if (rc == 0)
        rc = s.io.ops->writev(&s.io, &iov, 1);
    if (rc == 0 && (rc = byte_get(&s.io, &c_in)) == 0 && c_in != MSG_COMMIT)
        rc = MOS_E_PROTO;
    if (rc != 0) {
        mos_err("mosd", "guest job %d from %s discarded: %s", h->job, h->home, mos_strerror(rc));
        mos_restore_abort(r);
        goto out;
    }
    rc = mos_restore_commit(r);
    if (rc != 0)
        goto out;
    dprintf(report_fd, "%d %d %d %s %s", (int)guest, h->job, (int)h->uid, h->home, h->cmd);
    close(report_fd);
    tp_img_stream_fini(&s);
    mos_tp_close(c);
    rc = mos_supervisor_run(guest, listener, link, NULL, &status);
    close(listener);
    close(link);
    return rc;
out:
    if (listener >= 0)
        close(listener);
    if (link >= 0)
        close(link);
    tp_img_stream_fini(&s);
    return rc;
}

static void __attribute__((noreturn)) acceptor_main(struct mosd *d, int report_fd)
{
    mos_tp_conn_t *c = NULL;
    struct guest_header h;
    struct mos_tp_msg msg;
    char text[MOS_TP_MAX_CONTROL + 1], why[200];
    int rc;

    signal(SIGCHLD, SIG_DFL);
    rc = mos_tp_accept(d->tp_listener, &c);
    if (rc == 0)
        rc = mos_tp_ctl_recv(c, &msg, text, sizeof(text) - 1, -1);
    if (rc != 0)
        _exit(2);
    text[msg.len] = '\0';
    if (header_parse(d, text, &h, why, sizeof(why)) != 0) {
        mos_warn("mosd", "refused a guest from %s: %s", mos_tp_conn_peer(c), why);
        answer(c, msg.id, why);
        mos_tp_close(c);
        _exit(2);
    }
    answer(c, msg.id, NULL);
    rc = take_guest(d, c, &h, report_fd);
    _exit(rc == 0 ? 0 : 1);
}

static void on_acceptor_report(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    ssize_t n;

    (void)what;
    n = read((int)fd, d->acceptor_text + d->acceptor_len,
             sizeof(d->acceptor_text) - 1 - d->acceptor_len);
    if (n > 0) {
        d->acceptor_len += (size_t)n;
        return;
    }
    d->acceptor_text[d->acceptor_len] = '\0';
    int pid, job_id, uid, off = 0;
    char home[MOS_NODE_NAME_MAX];
    if (sscanf(d->acceptor_text, "%d %d %d %63s %n", &pid, &job_id, &uid, home, &off) == 4 &&
        off > 0) {
        struct mosd_job *job = mosd_job_add(d);
        if (job) {
            job->pid = pid;
            job->home_pid = pid;
            job->uid = (uid_t)uid;
            job->supervisor = d->acceptor;
            snprintf(job->home, sizeof(job->home), "%s", home);
            snprintf(job->where, sizeof(job->where), "%s", d->cfg.nodes[d->self].name);
            snprintf(job->cmd, sizeof(job->cmd), "%s", d->acceptor_text + off);
            mos_info("mosd", "guest job %d from %s runs here as pid %d: %s", job_id, home, pid,
                     job->cmd);
        }
    }
    event_free(d->acceptor_ev);
    d->acceptor_ev = NULL;
    close(d->acceptor_fd);
    d->acceptor = 0; /* the next migration may come in */
    d->acceptor_len = 0;
    event_add(d->tp_event, NULL);
}

static void on_incoming(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    int pipefd[2];
    pid_t child;

    (void)fd, (void)what;
    if (d->acceptor)
        return;
    if (pipe2(pipefd, O_CLOEXEC) != 0 || (child = fork()) < 0) {
        mos_err("mosd", "cannot take an incoming migration: %s", strerror(errno));
        return;
    }
    if (child == 0) {
        close(pipefd[0]);
        acceptor_main(d, pipefd[1]);
    }
    close(pipefd[1]);
    /* No second acceptor until this one has the connection and reported (or died). */
    event_del(d->tp_event);
    d->acceptor = child;
    d->acceptor_fd = pipefd[0];
    d->acceptor_ev = event_new(d->base, pipefd[0], EV_READ | EV_PERSIST, on_acceptor_report, d);
    event_add(d->acceptor_ev, NULL);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    struct mosd *d = arg;
    int status;
    pid_t pid;

    (void)sig, (void)what;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct mosd_job *job = mosd_job_by_supervisor(d, pid);
        if (job) {
            mos_info("mosd", "guest job from %s (pid %d) left this node", job->home,
                     (int)job->pid);
            mosd_job_remove(d, job);
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
