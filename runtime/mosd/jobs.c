/* The table of jobs this node knows: its own (home) jobs and its guests. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/migrate.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

struct mosd_job *mosd_job_add(struct mosd *d)
{
    if (d->n_jobs == d->cap_jobs) {
        size_t cap = d->cap_jobs ? d->cap_jobs * 2 : 32;
        struct mosd_job *jobs = realloc(d->jobs, cap * sizeof(*jobs));
        if (!jobs)
            return NULL;
        d->jobs = jobs;
        d->cap_jobs = cap;
    }
    struct mosd_job *job = &d->jobs[d->n_jobs++];
    memset(job, 0, sizeof(*job));
    job->id = ++d->next_job_id;
    job->came_from = -1;
    job->started_ns = mos_clock_now_ns();
    return job;
}

struct mosd_job *mosd_job_find(struct mosd *d, pid_t pid)
{
    /* A job of ours first: once it has moved home as a guest it is listed twice here. */
    for (int guests = 0; guests <= 1; guests++)
        for (size_t i = 0; i < d->n_jobs; i++)
            if ((d->jobs[i].supervisor != 0) == guests &&
                (d->jobs[i].pid == pid || d->jobs[i].home_pid == pid))
                return &d->jobs[i];
    return NULL;
}

struct mosd_job *mosd_job_by_owner(struct mosd *d, struct bufferevent *owner)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].owner == owner)
            return &d->jobs[i];
    return NULL;
}

struct mosd_job *mosd_job_by_supervisor(struct mosd *d, pid_t supervisor)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].supervisor == supervisor)
            return &d->jobs[i];
    return NULL;
}

struct mosd_job *mosd_job_by_id(struct mosd *d, int id)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].id == id)
            return &d->jobs[i];
    return NULL;
}

struct mosd_job *mosd_job_by_worker_fd(struct mosd *d, int fd)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].moving && d->jobs[i].worker_fd == fd)
            return &d->jobs[i];
    return NULL;
}

struct mosd_job *mosd_job_by_sup_ctl(struct mosd *d, int fd)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].supervisor && d->jobs[i].sup_ctl == fd)
            return &d->jobs[i];
    return NULL;
}

const struct mosd_job *mosd_job_own_const(const struct mosd *d, pid_t home_pid)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        /* held by a pidfd (registered, or taken back without its mosrun yet) or mosrun -E's */
        if (!d->jobs[i].supervisor && (d->jobs[i].owner || d->jobs[i].pidfd > 0) &&
            d->jobs[i].home_pid == home_pid)
            return &d->jobs[i];
    return NULL;
}

struct mosd_job *mosd_job_own(struct mosd *d, pid_t home_pid)
{
    return (struct mosd_job *)mosd_job_own_const(d, home_pid);
}

struct mosd_job *mosd_job_guest(struct mosd *d, const char *home, pid_t home_pid)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i].supervisor && d->jobs[i].home_pid == home_pid &&
            strcmp(d->jobs[i].home, home) == 0)
            return &d->jobs[i];
    return NULL;
}

size_t mosd_jobs_guests(const struct mosd *d)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n_jobs; i++)
        n += d->jobs[i].supervisor != 0 &&
             strcmp(d->jobs[i].home, d->cfg.nodes[d->self].name) != 0;
    return n;
}

void mosd_job_remove(struct mosd *d, struct mosd_job *job)
{
    size_t i = (size_t)(job - d->jobs);

    if (job->worker_ev)
        event_free(job->worker_ev);
    if (job->worker_fd > 0)
        close(job->worker_fd);
    if (job->sup_ev)
        event_free(job->sup_ev);
    if (job->sup_ctl > 0)
        close(job->sup_ctl);
    if (job->move_reply_fd > 0)
        close(job->move_reply_fd);
    if (job->pid_ev)
        event_free(job->pid_ev);
    if (job->pidfd > 0)
        close(job->pidfd);
    d->jobs[i] = d->jobs[--d->n_jobs];
}

void mosd_job_remove_owner(struct mosd *d, struct bufferevent *owner)
{
    struct mosd_job *job;

    while ((job = mosd_job_by_owner(d, owner)))
        mosd_job_remove(d, job);
}

void mosd_job_owner(const struct mosd_job *job, struct mos_job_owner *o)
{
    *o = (struct mos_job_owner){.registered = &job->ident, .pidfd = job->pidfd,
                                .uid = job->uid, .gid = job->gid};
}

struct json_object *mosd_job_json(const struct mosd *d, const struct mosd_job *job)
{
    struct json_object *o = json_object_new_object();
    struct passwd *pw = getpwuid(job->uid);
    double age = (double)(mos_clock_now_ns() - job->started_ns) / 1e9;

    json_object_object_add(o, "id", json_object_new_int(job->id));
    json_object_object_add(o, "pid", json_object_new_int(job->pid));
    json_object_object_add(o, "home_pid", json_object_new_int(job->home_pid));
    json_object_object_add(o, "uid", json_object_new_int((int)job->uid));
    json_object_object_add(o, "user", json_object_new_string(pw ? pw->pw_name : "?"));
    json_object_object_add(o, "from", json_object_new_string(job->home));
    json_object_object_add(o, "where", json_object_new_string(job->where));
    json_object_object_add(o, "stay", json_object_new_string(job->stay));
    json_object_object_add(o, "locked", json_object_new_boolean(job->locked));
    if (job->moving && job->target[0]) { /* a move under way, and whether it is live */
        json_object_object_add(o, "moving_to", json_object_new_string(job->target));
        json_object_object_add(o, "live", json_object_new_boolean(job->live));
    }
    if (job->nodes.restricted)
        json_object_object_add(o, "nodes", mosd_nodeset_json(d, &job->nodes));
    json_object_object_add(o, "age_s", json_object_new_double(age));
    json_object_object_add(o, "cmd", json_object_new_string(job->cmd));
    return o;
}

void mosd_nodeset_of_names(const struct mosd *d, struct json_object *names,
                           struct mosd_nodeset *s)
{
    memset(s, 0, sizeof(*s));
    if (!names)
        return;
    s->restricted = 1;
    for (size_t i = 0; i < json_object_array_length(names) && s->n < MOSD_MAX_JOB_NODES; i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(names, i));
        int node = mos_config_find_node(&d->cfg, name);
        /* a name outside this cluster (a Slurm node without mos) can never be a target */
        if (node >= 0 && !mosd_nodeset_allows(s, -1, node))
            s->idx[s->n++] = (uint32_t)node;
    }
}

int mosd_nodeset_allows(const struct mosd_nodeset *s, int home, int node)
{
    if (!s->restricted || node == home)
        return 1;
    for (unsigned i = 0; i < s->n; i++)
        if (s->idx[i] == (uint32_t)node)
            return 1;
    return 0;
}

struct json_object *mosd_nodeset_json(const struct mosd *d, const struct mosd_nodeset *s)
{
    struct json_object *arr;

    if (!s->restricted)
        return NULL;
    arr = json_object_new_array();
    for (unsigned i = 0; i < s->n; i++)
        if (s->idx[i] < d->cfg.n_nodes)
            json_object_array_add(arr, json_object_new_string(d->cfg.nodes[s->idx[i]].name));
    return arr;
}

void mosd_nodeset_text(const struct mosd *d, const struct mosd_nodeset *s, char *out,
                       size_t len)
{
    size_t used = 0;

    snprintf(out, len, "%s", s->restricted && s->n ? "" : s->restricted ? "(none)" : "any");
    for (unsigned i = 0; s->restricted && i < s->n && used < len; i++) {
        const char *name = s->idx[i] < d->cfg.n_nodes ? d->cfg.nodes[s->idx[i]].name : "?";
        int k = snprintf(out + used, len - used, "%s%s", i ? "," : "", name);
        used += k > 0 ? (size_t)k : 0;
    }
}

int mosd_proc_usage(pid_t pid, double *cpu_s, uint64_t *pages)
{
    struct mos_proc_stat st;

    if (mos_proc_stat_read(pid, &st) != 0)
        return -1;
    *cpu_s = (double)(st.f[MOS_STAT_UTIME] + st.f[MOS_STAT_STIME]) /
             (double)sysconf(_SC_CLK_TCK);
    *pages = st.f[MOS_STAT_RSS];
    return 0;
}

double mosd_calls_wait(const struct mos_call_stats *calls, double cpu_s)
{
    if (calls->calls[MOS_CALLS_FORWARD] < MOSD_CALLS_MIN || cpu_s < 0.2)
        return 0;
    return (double)calls->latency_sum_ns / 1e9 / cpu_s;
}
