/* mosd's local command socket. Anyone may connect; what they may do is decided from the
 * kernel's word on who they are (SO_PEERCRED), never from what they say. */
#include "mosd.h"

#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/procfs.h"
#include "mos/status.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static struct json_object *op_ping(struct mosd_client *c, struct json_object *req)
{
    struct json_object *r = mosd_reply_ok();

    (void)req;
    json_object_object_add(r, "node", json_object_new_string(c->d->cfg.nodes[c->d->self].name));
    json_object_object_add(r, "version", json_object_new_string("0.1.0"));
    return r;
}

struct start_move {
    struct mosd *d;
    pid_t pid;
    uid_t uid;
    char to[MOS_NODE_NAME_MAX];
};

static void start_move_now(evutil_socket_t fd, short what, void *arg)
{
    struct start_move *sm = arg;
    struct json_object *move = json_object_new_object(), *refusal;

    (void)fd, (void)what;
    json_object_object_add(move, "pid", json_object_new_int(sm->pid));
    json_object_object_add(move, "to", json_object_new_string(sm->to));
    refusal = mosd_move_request(sm->d, NULL, sm->uid, move);
    if (refusal)
        mos_warn("mosd", "pid %d cannot start on %s: %s", (int)sm->pid, sm->to,
                 mos_json_str(refusal, "error", "?"));
    json_object_put(refusal);
    json_object_put(move);
    free(sm);
}

/* The process pid names now, held by a pidfd: its identity is read after the pidfd is taken
 * and while it is still alive, so it is that process's and not a pid reused meanwhile. */
static int hold_process(pid_t pid, int *pidfd, struct mos_proc_ident *id)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (fd < 0)
        return mos_errno_status();
    int rc = mos_proc_ident_read(pid, id);
    if (rc == 0 && syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) != 0)
        rc = -ESRCH;
    if (rc != 0) {
        close(fd);
        return rc;
    }
    *pidfd = fd;
    return 0;
}

/* mosrun registers the job it started: the job must be its own child. The process is held and
 * its identity kept: a set-id exec or a pid reused later keeps it from every freeze (the
 * rights it runs with are judged there, not here: a job may run a set-id program at home). */
static struct json_object *op_register(struct mosd_client *c, struct bufferevent *bev,
                                       struct json_object *req)
{
    struct mosd_register_req rr;
    struct mos_proc_ident id;
    struct mosd_job *job;
    char why[128];
    int pidfd = -1;

    if (mosd_register_parse(req, &rr, why, sizeof(why)) != 0)
        return mosd_reply_error("%s", why);
    pid_t pid = rr.pid;
    if (mosd_job_find(c->d, pid))
        return mosd_reply_error("pid %d is already registered", (int)pid);
    int rc = hold_process(pid, &pidfd, &id);
    if (rc == 0 && id.ppid != c->cred.pid) {
        close(pidfd);
        rc = -EPERM;
    }
    if (rc != 0)
        return mosd_reply_error("pid %d is not a child of the registering process", (int)pid);
    job = mosd_job_add(c->d);
    if (!job) {
        close(pidfd);
        return mosd_reply_error("out of memory");
    }
    job->pidfd = pidfd;
    job->ident = id;
    job->pid = job->home_pid = pid;
    job->uid = c->cred.uid;
    job->gid = c->cred.gid;
    job->locked = rr.locked;
    mosd_nodeset_of_names(c->d, rr.nodes, &job->nodes);
    job->owner = bev;
    job->owner_pid = c->cred.pid;
    job->owner_fd_min = rr.reserved_min;
    snprintf(job->cmd, sizeof(job->cmd), "%s", rr.cmd);
    snprintf(job->stay, sizeof(job->stay), "%s", rr.stay);
    snprintf(job->home, sizeof(job->home), "%s", c->d->cfg.nodes[c->d->self].name);
    snprintf(job->where, sizeof(job->where), "%s", job->home);
    mos_info("mosd", "job %d: pid %d uid %d registered: %s", job->id, (int)pid, (int)job->uid,
             job->cmd);
    mosd_balance_soon(c->d);
    mosd_state_save(c->d);
    struct json_object *r = mosd_reply_ok();
    json_object_object_add(r, "job", json_object_new_int(job->id));
    const char *start_on = rr.start_on;
    if (start_on) {
        /* mosrun -r NODE: move it there right after this reply (mosrun must read the reply
         * before the "prepare" that starts the move); a refusal leaves it running here. */
        int node = strcmp(start_on, "@best") == 0
                       ? mosd_best_node(c->d, rr.mem_mib, &job->nodes)
                       : mos_config_find_node(&c->d->cfg, start_on);
        char text[MOSD_NODES_WORD_MAX], why_not[MOSD_NODES_WORD_MAX + 80];
        if (node < 0) {
            json_object_object_add(r, "start_error",
                                   json_object_new_string("unknown node"));
        } else if (!mosd_nodeset_allows(&job->nodes, c->d->self, node)) {
            mosd_nodeset_text(c->d, &job->nodes, text, sizeof(text));
            snprintf(why_not, sizeof(why_not), "%s is not one of the job's nodes (-N %s)",
                     start_on, text);
            json_object_object_add(r, "start_error", json_object_new_string(why_not));
        } else if (node != c->d->self) {
            struct start_move *sm = calloc(1, sizeof(*sm));
            struct timeval now = {0, 0};
            if (sm) {
                sm->d = c->d;
                sm->pid = pid;
                sm->uid = c->cred.uid;
                snprintf(sm->to, sizeof(sm->to), "%s", c->d->cfg.nodes[node].name);
                event_base_once(c->d->base, -1, EV_TIMEOUT, start_move_now, sm, &now);
            }
        }
    }
    return r;
}

/* mosd restarted: a job's mosrun reconnects. Only the job's own mosrun may take it back (the
 * kernel's word: the caller is the registered parent, of the job's user, and the process is
 * still the one registered); what it says of where the job runs is its own job's business. */
static struct json_object *op_reattach(struct mosd_client *c, struct bufferevent *bev,
                                       struct json_object *req)
{
    struct mosd *d = c->d;
    struct mos_proc_ident now;
    long long pid;

    if (mosd_json_int_in(req, "pid", 1, INT_MAX, 0, &pid) != 0 || pid == 0)
        return mosd_reply_error("malformed request: pid");
    struct mosd_job *job = mosd_job_own(d, (pid_t)pid);
    if (!job || job->owner || job->native)
        return mosd_reply_error("pid %d is no job of this node waiting for its mosrun",
                                (int)pid);
    if (c->cred.uid != job->uid || c->cred.pid != job->owner_pid ||
        mos_proc_ident_read(job->pid, &now) != 0 || now.ppid != c->cred.pid ||
        now.start_time != job->ident.start_time ||
        syscall(SYS_pidfd_send_signal, job->pidfd, 0, NULL, 0) != 0) {
        mos_warn("mosd", "job %d: pid %d (uid %d) asked to take it back: refused", job->id,
                 (int)c->cred.pid, (int)c->cred.uid);
        return mosd_reply_error("permission denied: pid %d is not your job", (int)pid);
    }
    const char *where = mos_json_str(req, "where", "");
    int node = strcmp(where, "home") == 0 ? d->self : mos_config_find_node(&d->cfg, where);
    if (node >= 0 && !job->moving)
        snprintf(job->where, sizeof(job->where), "%s", d->cfg.nodes[node].name);
    job->owner = bev;
    mos_info("mosd", "job %d (pid %d, on %s): its mosrun is back", job->id, (int)job->pid,
             job->where);
    mosd_state_save(d);
    struct json_object *r = mosd_reply_ok();
    json_object_object_add(r, "job", json_object_new_int(job->id));
    mosd_send(bev, r);
    json_object_put(r);
    if (job->native_pending) { /* it came home while its mosrun was away from us */
        struct json_object *m = json_object_new_object();
        json_object_object_add(m, "op", json_object_new_string("native"));
        mosd_send(bev, m);
        json_object_put(m);
        job->native_pending = 0;
    }
    return NULL;
}

static struct json_object *op_list(struct mosd_client *c, struct json_object *req)
{
    struct json_object *r = mosd_reply_ok(), *jobs = json_object_new_array();

    (void)req;
    for (size_t i = 0; i < c->d->n_jobs; i++) {
        struct mosd_job *job = &c->d->jobs[i];
        /* Stay reasons of jobs at home are looked at now: they change as a job runs. */
        if (!job->supervisor && !job->moving && !job->native &&
            strcmp(job->where, c->d->cfg.nodes[c->d->self].name) == 0) {
            struct mos_job_owner owner;
            mosd_job_owner(job, &owner);
            struct mos_dump_opts dopts = {.fds_at_home = 1, .owner = &owner};
            job->stay[0] = '\0';
            mos_migrate_check(job->pid, &dopts, job->stay, sizeof(job->stay));
        }
        json_object_array_add(jobs, mosd_job_json(c->d, job));
    }
    json_object_object_add(r, "node", json_object_new_string(c->d->cfg.nodes[c->d->self].name));
    json_object_object_add(r, "jobs", jobs);
    return r;
}

/* mosctl: administration is root's; status is anyone's. */
static struct json_object *op_ctl(struct mosd_client *c, struct json_object *req)
{
    struct mosd *d = c->d;
    const char *cmd = mos_json_str(req, "cmd", "");
    char text[256];

    if (strcmp(cmd, "status") != 0 && c->cred.uid != 0)
        return mosd_reply_error("permission denied: mosctl %s is for root", cmd);
    if (strcmp(cmd, "block") == 0 || strcmp(cmd, "unblock") == 0) {
        d->blocked = strcmp(cmd, "block") == 0;
        snprintf(text, sizeof(text), "node %s %s new guests", d->cfg.nodes[d->self].name,
                 d->blocked ? "refuses" : "accepts");
    } else if (strcmp(cmd, "expel") == 0) {
        snprintf(text, sizeof(text), "sending %d guest(s) home",
                 mosd_peer_send_guests_home(d));
    } else if (strcmp(cmd, "bring") == 0) {
        snprintf(text, sizeof(text), "calling %d job(s) home", mosd_move_bring_home(d));
    } else if (strcmp(cmd, "setspeed") == 0) {
        d->speed_override = (uint32_t)mos_json_int(req, "value", 0);
        snprintf(text, sizeof(text), "speed %s", d->speed_override ? "set" : "measured again");
    } else if (strcmp(cmd, "status") == 0) {
        size_t guests = mosd_jobs_guests(d), own = 0, away = 0;
        for (size_t i = 0; i < d->n_jobs; i++)
            if (!d->jobs[i].supervisor) {
                own++;
                away += strcmp(d->jobs[i].where, d->cfg.nodes[d->self].name) != 0;
            }
        snprintf(text, sizeof(text),
                 "node %s: %s, load %.2f per CPU, %zu own job(s) (%zu away), %zu guest(s)",
                 d->cfg.nodes[d->self].name, d->blocked ? "blocked" : "accepting guests",
                 mosd_local_load(d), own, away, guests);
    } else {
        return mosd_reply_error("unknown mosctl command '%s'", cmd);
    }
    struct json_object *r = mosd_reply_ok();
    json_object_object_add(r, "text", json_object_new_string(text));
    return r;
}

static struct json_object *dispatch(struct mosd_client *c, struct bufferevent *bev,
                                    struct json_object *req)
{
    const char *op = mos_json_str(req, "op", "");

    if (strcmp(op, "ping") == 0)
        return op_ping(c, req);
    if (strcmp(op, "register") == 0)
        return op_register(c, bev, req);
    if (strcmp(op, "reattach") == 0)
        return op_reattach(c, bev, req);
    if (strcmp(op, "list") == 0)
        return op_list(c, req);
    if (strcmp(op, "nodes") == 0) {
        struct json_object *r = mosd_reply_ok();
        json_object_object_add(r, "node", json_object_new_string(c->d->cfg.nodes[c->d->self].name));
        json_object_object_add(r, "nodes", mosd_gossip_json(c->d));
        return r;
    }
    if (strcmp(op, "ctl") == 0)
        return op_ctl(c, req);
    if (strcmp(op, "migrate") == 0)
        return mosd_move_request(c->d, bev, c->cred.uid, req);
    if (strcmp(op, "exec_remote") == 0)
        return mosd_exec_request(c->d, bev, &c->cred, req);
    if (*op == '\0' && json_object_object_get_ex(req, "ok", NULL)) {
        /* an answer from a job's mosrun, not a request */
        struct mosd_job *job = mosd_job_by_owner(c->d, bev);
        if (job)
            mosd_move_owner_reply(c->d, job, req);
        return NULL;
    }
    return mosd_reply_error("unknown op '%s'", op);
}

static void client_free(struct mosd_client *c, struct bufferevent *bev)
{
    for (struct mosd_client **p = &c->d->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    mosd_move_forget_requester(c->d, bev);
    if (mosd_job_by_owner(c->d, bev)) {
        mosd_job_remove_owner(c->d, bev);
        mosd_state_save(c->d);
    }
    bufferevent_free(bev);
    free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct mosd_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line;
    size_t len;

    while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
        struct json_object *req, *resp;
        if (mos_control_parse(line, len, &req) != 0)
            resp = mosd_reply_error("not a JSON object");
        else
            resp = dispatch(c, bev, req);
        if (resp)
            mosd_send(bev, resp);
        json_object_put(req);
        json_object_put(resp);
        free(line);
    }
    if (evbuffer_get_length(in) > MOS_CONTROL_MAX_LINE) {
        mos_warn("mosd", "client pid %d sent a line over %u bytes; closing it", (int)c->cred.pid,
                 MOS_CONTROL_MAX_LINE);
        client_free(c, bev);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_free(arg, bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct mosd *d = arg;
    struct mosd_client *c = calloc(1, sizeof(*c));
    socklen_t len = sizeof(c->cred);
    struct bufferevent *bev;

    (void)l, (void)sa, (void)socklen;
    if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) != 0) {
        free(c);
        close(fd);
        return;
    }
    c->d = d;
    bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->bev = bev;
    c->next = d->clients;
    d->clients = c;
    bufferevent_setcb(bev, on_read, NULL, on_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int mosd_control_claim(struct mosd *d)
{
    char dir[sizeof(d->socket_path)];
    int rc = mos_control_socket_path(&d->cfg, d->self, d->socket_path, sizeof(d->socket_path));

    if (rc != 0) {
        mos_err("mosd", "command socket path '%s' is too long", d->cfg.socket_path);
        return rc;
    }
    snprintf(dir, sizeof(dir), "%s", d->socket_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0755);
    }
    /* A socket left by a mosd that died is stale; a live one answers, and then we stop. */
    int probe = mos_control_connect(d->socket_path);
    if (probe >= 0) {
        close(probe);
        mos_err("mosd", "another mosd already serves %s", d->socket_path);
        return -EADDRINUSE;
    }
    return 0;
}

int mosd_control_start(struct mosd *d)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc;

    unlink(d->socket_path);
    strcpy(sa.sun_path, d->socket_path);
    /* Users' commands connect (SO_PEERCRED says who they are): the socket is made 0666 by
     * bind itself, so it never exists with a mode that turns them away. */
    mode_t old_umask = umask(0111);
    d->listener = evconnlistener_new_bind(d->base, on_accept, d,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64,
                                          (struct sockaddr *)&sa, sizeof(sa));
    umask(old_umask);
    if (!d->listener) {
        rc = mos_errno_status();
        mos_err("mosd", "cannot listen on %s: %s", d->socket_path, mos_strerror(rc));
        return rc;
    }
    return 0;
}

void mosd_control_stop(struct mosd *d)
{
    if (d->listener) {
        evconnlistener_free(d->listener);
        d->listener = NULL;
        unlink(d->socket_path);
    }
}
