/* mosrun -E: a native program on another node, its stdio at home.
 *
 * Home: mosrun asks its mosd ("exec_remote": argv, environment, cwd, umask, the port it listens
 * on for the exec link and that link's token). mosd knows the user from SO_PEERCRED and
 * SO_PEERGROUPS, never from the request; it checks the request, lists the job (mosps: WHERE the
 * node, STAY "native (-E)"; it never migrates) and a worker process sends the target mosd an
 * "exec" request over the transport (cluster key proved). mosrun hears the outcome.
 *
 * Target: the acceptor child checks the request again (it trusts the key, not the fields),
 * connects the exec link back to mosrun (token proved both ways), answers, and becomes the
 * program's relay (mos_exec_relay_run): the program runs as the user, in its own session, and
 * dies with the relay. mosd's acceptor slot is freed at once: the relay says nothing to mosd. */
#include "mosd.h"

#include "mos/exec_link.h"
#include "mos/forward.h"
#include "mos/ident.h"
#include "mos/log.h"
#include "mos/procfs.h"
#include "mos/status.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define EXEC_MAX_GROUPS MOSD_EXEC_MAX_GROUPS
_Static_assert(sizeof(((struct mosd_exec_req *)0)->token) == MOS_LINK_TOKEN_BYTES,
               "the request's token is the exec link's");
#define EXEC_TIMEOUT_MS 30000 /* the target's answer, including its link to mosrun */

/* ---- home: the request from mosrun --------------------------------------------------------- */

struct exec_start {
    struct mosd *d;
    int job_id;
    int fd;
    struct event *ev;
    char text[300];
    size_t len;
};

/* The worker: ask the target, report "ok" or "error TEXT" on fd. */
static void __attribute__((noreturn)) exec_worker(struct mosd *d, int target,
                                                  struct json_object *req, int fd)
{
    char why[300];
    int rc = mosd_peer_call(d, target, EXEC_TIMEOUT_MS, req, NULL, NULL, why, sizeof(why));

    if (rc == MOS_E_PROTO)
        dprintf(fd, "error %s refused it: %s", d->cfg.nodes[target].name, why);
    else if (rc != 0)
        dprintf(fd, "error %s", why);
    else
        dprintf(fd, "ok");
    _exit(rc == 0 ? 0 : 1);
}

static void on_exec_started(evutil_socket_t fd, short what, void *arg)
{
    struct exec_start *s = arg;
    ssize_t n = read((int)fd, s->text + s->len, sizeof(s->text) - 1 - s->len);

    (void)what;
    if (n > 0) {
        s->len += (size_t)n;
        return;
    }
    s->text[s->len] = '\0';
    struct mosd_job *job = mosd_job_by_id(s->d, s->job_id);
    if (job && job->owner) { /* else mosrun is gone already */
        int ok = strcmp(s->text, "ok") == 0;
        const char *text = strncmp(s->text, "error ", 6) == 0 ? s->text + 6 : "it did not start";
        struct json_object *r = ok ? json_object_new_object() : mosd_reply_error("%s", text);
        if (ok) {
            json_object_object_add(r, "ok", json_object_new_boolean(1));
            json_object_object_add(r, "where", json_object_new_string(job->where));
            mos_info("mosd", "job %d (mosrun pid %d) runs natively on %s: %s", job->id,
                     (int)job->pid, job->where, job->cmd);
        } else {
            mos_warn("mosd", "job %d (mosrun pid %d) -E: %s", job->id, (int)job->pid, text);
        }
        mosd_send(job->owner, r);
        json_object_put(r);
        if (!ok)
            mosd_job_remove(s->d, job);
    }
    event_free(s->ev);
    close((int)fd);
    free(s);
}

static int exec_worker_start(struct mosd *d, struct mosd_job *job, int target,
                             struct json_object *req)
{
    struct exec_start *s = calloc(1, sizeof(*s));
    int pipefd[2];
    pid_t pid;

    if (!s || pipe2(pipefd, O_CLOEXEC) != 0) {
        free(s);
        return -ENOMEM;
    }
    if ((pid = fork()) < 0) {
        close(pipefd[0]), close(pipefd[1]);
        free(s);
        return mos_errno_status();
    }
    if (pid == 0) {
        close(pipefd[0]);
        mosd_close_in_child(d, -1, -1, 0);
        exec_worker(d, target, req, pipefd[1]);
    }
    close(pipefd[1]);
    s->d = d;
    s->job_id = job->id;
    s->fd = pipefd[0];
    s->ev = event_new(d->base, pipefd[0], EV_READ | EV_PERSIST, on_exec_started, s);
    event_add(s->ev, NULL);
    return 0;
}

/* The request to the target: the user as the kernel told us, the rest as mosrun sent it. */
static long long memlock_word(rlim_t v)
{
    return v == RLIM_INFINITY || v > (rlim_t)MOSD_MAX_MEMLOCK ? -1 : (long long)v;
}

static struct json_object *exec_message(struct mosd *d, const struct ucred *cred,
                                        const gid_t *groups, size_t n_groups,
                                        const struct rlimit *memlock, struct json_object *req)
{
    struct json_object *m = json_object_new_object(), *g = json_object_new_array();
    struct json_object *ml = json_object_new_array();
    static const char *const carried[] = {"argv", "env", "cwd", "umask", "port", "token"};

    json_object_object_add(m, "op", json_object_new_string("exec"));
    json_object_object_add(m, "uid", json_object_new_int((int)cred->uid));
    json_object_object_add(m, "gid", json_object_new_int((int)cred->gid));
    for (size_t i = 0; i < n_groups; i++)
        json_object_array_add(g, json_object_new_int((int)groups[i]));
    json_object_object_add(m, "groups", g);
    json_object_array_add(ml, json_object_new_int64(memlock_word(memlock->rlim_cur)));
    json_object_array_add(ml, json_object_new_int64(memlock_word(memlock->rlim_max)));
    json_object_object_add(m, "memlock", ml);
    json_object_object_add(m, "home", json_object_new_string(d->cfg.nodes[d->self].name));
    json_object_object_add(m, "home_addr", json_object_new_string(d->cfg.nodes[d->self].addr));
    json_object_object_add(m, "home_pid", json_object_new_int((int)cred->pid));
    for (size_t i = 0; i < sizeof(carried) / sizeof(carried[0]); i++)
        json_object_object_add(m, carried[i],
                               json_object_get(json_object_object_get(req, carried[i])));
    return m;
}

static int peer_groups(struct bufferevent *bev, gid_t *groups, size_t *n)
{
    socklen_t len = (socklen_t)(EXEC_MAX_GROUPS * sizeof(gid_t));

    if (getsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
        return mos_errno_status();
    *n = len / sizeof(gid_t);
    return 0;
}

static void job_cmd(struct mosd_job *job, char *const *argv)
{
    job->cmd[0] = '\0';
    for (char *const *a = argv; *a; a++) {
        size_t used = strlen(job->cmd);
        snprintf(job->cmd + used, sizeof(job->cmd) - used, "%s%s", used ? " " : "", *a);
    }
}

struct json_object *mosd_exec_request(struct mosd *d, struct bufferevent *bev,
                                      const struct ucred *cred, struct json_object *req)
{
    const char *to = mos_json_str(req, "target", "@best");
    gid_t groups[EXEC_MAX_GROUPS];
    size_t n_groups = 0;
    struct rlimit memlock;
    struct mosd_exec_req r;
    char why[200];
    int node, rc;

    if (cred->uid == 0)
        return mosd_reply_error("root's programs do not run on other nodes (nor migrate)");
    if (mosd_exec_req_parse(req, &r, why, sizeof(why)) != 0)
        return mosd_reply_error("%s", why);
    static const struct mosd_nodeset any; /* -E takes no -N */
    node = strcmp(to, "@best") == 0
               ? mosd_best_node(d, (double)mos_json_int(req, "mem_mib", 0), &any)
               : mos_config_find_node(&d->cfg, to);
    if (node < 0) {
        mosd_exec_req_free(&r);
        return mosd_reply_error("unknown node '%s'", to);
    }
    if (!d->have_key) {
        mosd_exec_req_free(&r);
        return mosd_reply_error("%s", MOSD_NO_KEY_TEXT);
    }
    if ((rc = peer_groups(bev, groups, &n_groups)) != 0) {
        mosd_exec_req_free(&r);
        return mosd_reply_error("cannot learn your groups: %s", mos_strerror(rc));
    }
    /* The limit the kernel holds for the user's mosrun (PAM's, for a login): the program runs
     * with it there, not with mosd's unlimited one. From /proc: prlimit on another user's
     * process needs CAP_SYS_RESOURCE, which mosd may not have. */
    uint64_t lim[MOS_PROC_RLIMITS][2];
    if ((rc = mos_proc_rlimits_read(cred->pid, lim)) != 0) {
        mosd_exec_req_free(&r);
        return mosd_reply_error("cannot read your locked-memory limit: %s", mos_strerror(rc));
    }
    memlock.rlim_cur = lim[RLIMIT_MEMLOCK][0];
    memlock.rlim_max = lim[RLIMIT_MEMLOCK][1];
    struct json_object *m = exec_message(d, cred, groups, n_groups, &memlock, req);
    const char *text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
    struct mosd_job *job = NULL;
    if (strlen(text) >= MOS_TP_MAX_CONTROL) {
        snprintf(why, sizeof(why), "arguments and environment too long for -E (%zu bytes, at "
                 "most %u)", strlen(text), MOS_TP_MAX_CONTROL - 1024);
    } else if (!(job = mosd_job_add(d))) {
        snprintf(why, sizeof(why), "out of memory");
    } else {
        job->pid = job->home_pid = cred->pid;
        job->uid = cred->uid;
        job->gid = cred->gid;
        job->owner = bev;
        job->native = job->locked = 1;
        job_cmd(job, r.argv);
        snprintf(job->stay, sizeof(job->stay), "native (-E)");
        snprintf(job->home, sizeof(job->home), "%s", d->cfg.nodes[d->self].name);
        snprintf(job->where, sizeof(job->where), "%s", d->cfg.nodes[node].name);
        if ((rc = exec_worker_start(d, job, node, m)) != 0) {
            snprintf(why, sizeof(why), "cannot start: %s", mos_strerror(rc));
            mosd_job_remove(d, job);
            job = NULL;
        }
    }
    json_object_put(m);
    mosd_exec_req_free(&r);
    return job ? NULL : mosd_reply_error("%s", why); /* else answered when the target has */
}

/* ---- target: the acceptor becomes the relay -------------------------------------------------- */

/* What only the target checks: the user, its groups, and that home is who it says. */
static int exec_target_check(const struct mosd *d, struct json_object *o,
                             struct mosd_exec_req *r, char *why, size_t len)
{
    int rc = mosd_exec_ids_parse(o, r, why, len);

    if (rc != 0)
        return rc;
    int home = mosd_peer_home(d, r->home, r->home_addr, why, len);
    if (home < 0)
        return home;
    if (r->uid == 0) {
        snprintf(why, len, "root's programs do not run here from other nodes");
        return MOS_E_PROTO;
    }
    /* The home node read the user from the kernel; ours decides what that user may be. */
    if (mos_ident_check(r->uid, r->gid, r->groups, r->n_groups, why, len) != 0)
        return MOS_E_PROTO;
    if (d->blocked && home != d->self) {
        snprintf(why, len, "node %s is blocked", d->cfg.nodes[d->self].name);
        return MOS_E_PROTO;
    }
    return 0;
}

void mosd_exec_accept(struct mosd *d, mos_tp_conn_t *c, uint32_t id, struct json_object *o,
                      int ctl)
{
    static struct mosd_exec_req r; /* its group list is large for a stack */
    const char *self = d->cfg.nodes[d->self].name;
    char why[300];
    struct mos_link link = {.fd = -1};
    int rc;

    rc = mosd_exec_req_parse(o, &r, why, sizeof(why));
    if (rc == 0)
        rc = exec_target_check(d, o, &r, why, sizeof(why));
    /* The link home first: a program never starts without a way to its stdio. */
    if (rc == 0 && (rc = mos_deputy_link_connect(r.home_addr, r.port, r.token, 10000, &link)) < 0)
        snprintf(why, sizeof(why), "cannot connect back to mosrun on %s: %s", r.home,
                 mos_strerror(rc));
    if (rc != 0)
        mos_warn("mosd", "refused to run a program for %s: %s", mos_tp_conn_peer(c), why);
    mosd_peer_answer(c, id, rc == 0, "error", rc == 0 ? NULL : why);
    close(ctl); /* mosd may take the next connection: a relay has nothing more to say to it */
    mos_tp_close(c);
    if (rc != 0)
        _exit(2);
    mos_info("mosd", "running %s for uid %d from %s (mosrun pid %d)", r.argv[0], (int)r.uid,
             r.home, r.home_pid);
    struct mos_exec_spec spec = {.uid = r.uid, .gid = r.gid, .groups = r.groups,
                                 .n_groups = r.n_groups, .argv = r.argv, .envp = r.envp,
                                 .cwd = r.cwd, .umask = (mode_t)r.umask, .node = self,
                                 .cgroup_procs = d->guest_cgroup_procs};
    spec.memlock.rlim_cur = r.memlock[0] < 0 ? RLIM_INFINITY : (rlim_t)r.memlock[0];
    spec.memlock.rlim_max = r.memlock[1] < 0 ? RLIM_INFINITY : (rlim_t)r.memlock[1];
    spec.has_memlock = 1;
    rc = mos_exec_relay_run(&link, &spec);
    mos_info("mosd", "%s for uid %d from %s ended%s%s", r.argv[0], (int)r.uid, r.home,
             rc ? ": " : "", rc ? mos_strerror(rc) : "");
    _exit(rc == 0 ? 0 : 1);
}
