/* The load balancer: every balance interval, placement's decision function looks at the gossip
 * vector and this node's movable jobs (its own jobs at home and the guests it hosts) and may
 * move one of them. Every decision to move is logged with its reason. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/migrate.h"
#include "mos/placement.h"
#include "mos/procfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Each decided on the state the previous ones leave: a node that eight jobs started on sends
 * its share away in one round, not over several ticks (each a second at the default). */
#define BALANCE_MOVES_PER_ROUND 8
/* Half a second of life is enough to tell a job from a short command: on an overloaded node
 * every second spent waiting is CPU lost cluster-wide. */
#define BALANCE_MIN_AGE_S 0.5

static int job_home(const struct mosd *d, const struct mosd_job *job);

/* What its calls home cost the job away: measured here for a guest (its supervisor's counts),
 * else as last measured away (a job that came home for its calls); nothing known, nothing set. */
static void calls_fill(const struct mosd *d, const struct mosd_job *job, double cpu_s,
                       struct mos_job_info *info)
{
    double wait = job->supervisor ? mosd_calls_wait(&job->calls, cpu_s) : 0;
    int home = job_home(d, job);

    if (!(wait > 0))
        wait = job->calls_wait;
    if (wait > 0 && home >= 0) {
        info->flags |= MOS_JOB_CALLS;
        info->home_node = (uint32_t)home;
        info->call_wait = wait;
    }
}

/* The movable jobs running here; index[k] is the job table entry of jobs[k]. */
static size_t jobs_fill(struct mosd *d, struct mos_job_info *jobs, size_t *index)
{
    const char *self = d->cfg.nodes[d->self].name;
    uint64_t now = mos_clock_now_ns();
    size_t n = 0;

    for (size_t i = 0; i < d->n_jobs; i++) {
        struct mosd_job *job = &d->jobs[i];
        struct mos_dump_opts dopts = {.fds_at_home = 1};
        char reason[160];
        double cpu_s;
        uint64_t pages;

        if (job->moving || job->locked || job->move_reply_fd > 0)
            continue;
        if (!job->supervisor && (strcmp(job->where, self) != 0 || !job->owner))
            continue;
        if (job->supervisor && job->sup_ctl <= 0) /* left by an earlier mosd, not reached yet */
            continue;
        if (mosd_proc_usage(job->pid, &cpu_s, &pages) != 0)
            continue;
        struct mos_job_owner owner;
        mosd_job_owner(job, &owner);
        dopts.owner = job->supervisor ? NULL : &owner;
        if (!job->supervisor && mos_migrate_check(job->pid, &dopts, reason, sizeof(reason)))
            continue;
        job->seen_ns = now;
        job->seen_cpu_s = cpu_s;
        /* age: how long it has lived, the lifetime that predicts how long it will go on
         * (its CPU time would understate it on a crowded node, the very node to relieve) */
        jobs[n] = (struct mos_job_info){.id = (uint64_t)job->id,
                                        .age_s = (double)(now - job->started_ns) / 1e9,
                                        /* a job that never moved has no residence to sit out */
                                        .residence_s = job->arrived_ns
                                                           ? (double)(now - job->arrived_ns) / 1e9
                                                           : 1e9,
                                        .pages = pages,
                                        /* one, as every load in the view counts it
                                         * (gossip's and ours): a fraction here against
                                         * whole jobs there would make a swap between
                                         * equal nodes look like a gain */
                                        .cpu = 1.0,
                                        .remaining_s = -1};
        if (job->came_from >= 0 && now - job->arrived_ns < MOSD_RECENT_MOVE_S * MOS_NSEC_PER_SEC) {
            jobs[n].flags |= MOS_JOB_CAME;
            jobs[n].from_node = (uint32_t)job->came_from;
            jobs[n].from_load = job->came_load;
        }
        if (d->cfg.balance_calls)
            calls_fill(d, job, cpu_s, &jobs[n]);
        index[n++] = i;
    }
    return n;
}

/* The job's home as a node index (-1 when its config has no such node). */
static int job_home(const struct mosd *d, const struct mosd_job *job)
{
    return job->supervisor ? mos_config_find_node(&d->cfg, job->home) : d->self;
}

/* nodes[] as a job restricted to `set` sees them: the others take no guests. */
static void nodes_mask(const struct mosd_nodeset *set, int home, struct mos_node_state *nodes,
                       size_t n_nodes)
{
    for (size_t i = 0; i < n_nodes; i++)
        if (!mosd_nodeset_allows(set, home, (int)i))
            nodes[i].flags &= ~(uint32_t)MOS_NODE_ACCEPTING;
}

/* The balancer chose a target the job may not go to (mosrun -N): the best move for it among
 * its own nodes instead, decided on nodes[] with the others closed. */
static int decide_within(struct mosd *d, const struct mosd_job *job,
                         const struct mos_node_state *nodes, size_t n_nodes, size_t self,
                         const struct mos_job_info *info, const struct mos_migration_cost *model,
                         const struct mos_balance_params *params, struct mos_balance_decision *dec)
{
    struct mos_node_state *masked = malloc(n_nodes * sizeof(*masked));
    int rc;

    if (!masked)
        return -1;
    memcpy(masked, nodes, n_nodes * sizeof(*masked));
    nodes_mask(&job->nodes, job_home(d, job), masked, n_nodes);
    rc = mos_balance_decide(masked, n_nodes, self, info, 1, model, params, dec);
    free(masked);
    if (rc == 0 && dec->job_index == 0)
        return 0;
    return -1;
}

/* max_load: the target's load per CPU above which the move gains nothing (ours once the job
 * has left); the target refuses beyond it, having heard from other senders meanwhile. */
static void move(struct mosd *d, struct mosd_job *job, const char *to, double max_load,
                 const char *why)
{
    mos_info("mosd", "balance: moving %s pid %d to %s: %s", job->supervisor ? "guest" : "job",
             (int)job->home_pid, to, why);
    d->metrics.balance_moves++;
    if (job->supervisor) {
        job->moving = 1;
        snprintf(job->target, sizeof(job->target), "%s", to);
        if (max_load >= 0)
            dprintf(job->sup_ctl, "move %s %.3f\n", to, max_load);
        else
            dprintf(job->sup_ctl, "move %s\n", to);
        return;
    }
    struct json_object *req = json_object_new_object(), *refusal;
    json_object_object_add(req, "pid", json_object_new_int(job->pid));
    json_object_object_add(req, "to", json_object_new_string(to));
    if (max_load >= 0)
        json_object_object_add(req, "max_load", json_object_new_double(max_load));
    refusal = mosd_move_request(d, NULL, 0, req);
    if (refusal)
        mos_info("mosd", "balance: not moved: %s", mos_json_str(refusal, "error", "?"));
    json_object_put(refusal);
    json_object_put(req);
}

static void soon_after(struct mosd *d, double seconds)
{
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6)};

    if (d->balance_soon_ev && !evtimer_pending(d->balance_soon_ev, NULL))
        evtimer_add(d->balance_soon_ev, &tv);
}

/* Jobs too young to move now: one more decision when the oldest of them is old enough. */
static void soon_for_young(struct mosd *d, const struct mos_job_info *jobs, size_t n_jobs)
{
    double wait = -1;

    for (size_t k = 0; k < n_jobs; k++) {
        double left = BALANCE_MIN_AGE_S - jobs[k].age_s;
        if (left > 0 && (wait < 0 || left < wait))
            wait = left;
    }
    if (wait > 0)
        soon_after(d, wait + 0.02);
}

void mosd_balance_soon(struct mosd *d)
{
    soon_after(d, BALANCE_MIN_AGE_S + 0.02);
}

static void on_balance(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;
    size_t n_nodes = mos_gossip_n_nodes(d->gossip);
    struct mos_node_state *nodes = calloc(n_nodes, sizeof(*nodes));
    struct mos_job_info *jobs = calloc(d->n_jobs + 1, sizeof(*jobs));
    size_t *index = calloc(d->n_jobs + 1, sizeof(*index));
    struct mos_migration_cost model = {d->cfg.migration_fixed_ms,
                                       d->cfg.migration_per_page_ns / 1000.0};
    struct mos_balance_params params;
    struct mos_balance_decision dec;

    (void)fd, (void)what;
    if (!nodes || !jobs || !index || d->stopping || d->blocked)
        goto out;
    mos_balance_params_default(&params);
    params.min_residence_s = d->cfg.min_residence_ms / 1000.0;
    /* the margin on time saved is the same setting as the margin on cost */
    params.gain_margin = d->cfg.stability_margin_pct / 100.0;
    params.stability_margin = d->cfg.stability_margin_pct / 100.0;
    params.dead_age = (uint32_t)d->cfg.dead_after_steps;
    params.min_age_s = BALANCE_MIN_AGE_S;
    params.mem_low_frac = d->cfg.mem_low_pct / 100.0;
    size_t self = mos_gossip_self(d->gossip);
    mosd_view_fill(d, nodes);
    if (mos_log_get_level() >= MOS_LOG_DEBUG)
        for (size_t i = 0; i < n_nodes; i++)
            mos_dbg("mosd", "balance: node %zu cpus %u speed %.2f load %.2f flags %x age %u", i,
                    nodes[i].ncpus, nodes[i].speed, nodes[i].load, nodes[i].flags, nodes[i].age);
    size_t n_jobs = jobs_fill(d, jobs, index);
    soon_for_young(d, jobs, n_jobs);
    /* Several moves per round, each decided on the state the previous ones leave. */
    for (int round = 0; round < BALANCE_MOVES_PER_ROUND && n_jobs > 0; round++) {
        if (mos_balance_decide(nodes, n_nodes, self, jobs, n_jobs, &model, &params, &dec) != 0)
            break;
        if (dec.job_index < 0) {
            mos_dbg("mosd", "balance: %s", dec.reason);
            break;
        }
        struct mosd_job *job = &d->jobs[index[dec.job_index]];
        if (!mosd_nodeset_allows(&job->nodes, job_home(d, job), dec.node_index)) {
            int k = dec.job_index;
            if (decide_within(d, job, nodes, n_nodes, self, &jobs[k], &model, &params,
                              &dec) != 0) {
                mos_dbg("mosd", "balance: job %d stays within its nodes (mosrun -N)", job->id);
                jobs[k] = jobs[n_jobs - 1];
                index[k] = index[n_jobs - 1];
                n_jobs--;
                round--; /* no move made */
                continue;
            }
            dec.job_index = k;
        }
        nodes[self].load -= jobs[dec.job_index].cpu;
        /* a move for memory, or home for the calls, offers no load to check: the target
         * takes it as it would a mosmigrate (-1) */
        double max_load = dec.ushering || dec.for_calls ? -1
                                       : nodes[self].load / (nodes[self].ncpus ? nodes[self].ncpus : 1);
        job = &d->jobs[index[dec.job_index]];
        mosd_view_sent(d, job, dec.node_index, jobs[dec.job_index].cpu, nodes[self].load);
        move(d, job, d->cfg.nodes[dec.node_index].name, max_load, dec.reason);
        nodes[dec.node_index].load += jobs[dec.job_index].cpu;
        /* the memory it takes along, so that one shortfall moves one job per round */
        uint64_t bytes = jobs[dec.job_index].pages * (uint64_t)sysconf(_SC_PAGESIZE);
        nodes[self].mem_free += bytes;
        nodes[dec.node_index].mem_free =
            nodes[dec.node_index].mem_free > bytes ? nodes[dec.node_index].mem_free - bytes : 0;
        jobs[dec.job_index] = jobs[n_jobs - 1];
        index[dec.job_index] = index[n_jobs - 1];
        n_jobs--;
    }
out:
    free(nodes);
    free(jobs);
    free(index);
}

int mosd_balance_start(struct mosd *d)
{
    struct timeval tv = {d->cfg.balance_interval_ms / 1000,
                         (d->cfg.balance_interval_ms % 1000) * 1000};

    if (!d->cfg.balance || !d->gossip)
        return 0;
    d->balance_ev = event_new(d->base, -1, EV_PERSIST, on_balance, d);
    d->balance_soon_ev = evtimer_new(d->base, on_balance, d);
    if (!d->balance_ev || !d->balance_soon_ev)
        return -1;
    return event_add(d->balance_ev, &tv);
}

void mosd_balance_stop(struct mosd *d)
{
    if (d->balance_ev)
        event_free(d->balance_ev);
    if (d->balance_soon_ev)
        event_free(d->balance_soon_ev);
    d->balance_ev = NULL;
    d->balance_soon_ev = NULL;
}

int mosd_best_node(struct mosd *d, double mem_mib, const struct mosd_nodeset *allowed)
{
    if (!d->gossip)
        return d->self;
    size_t n = mos_gossip_n_nodes(d->gossip);
    struct mos_node_state *nodes = calloc(n, sizeof(*nodes));
    struct mos_job_demand job = {.cpu = 1.0, .mem_bytes = (uint64_t)(mem_mib * 1048576.0)};
    struct mos_balance_params params;
    int best;

    if (!nodes)
        return d->self;
    mos_balance_params_default(&params);
    mosd_view_fill(d, nodes);
    nodes_mask(allowed, d->self, nodes, n);
    best = mos_placement_assign((unsigned)n, params.cpu_cap, nodes, n, &job,
                                (uint32_t)d->cfg.dead_after_steps);
    free(nodes);
    return best >= 0 ? best : d->self;
}
