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

#define BALANCE_MOVES_PER_ROUND 4

/* CPU time, resident pages, and whether it is runnable right now (state R: running or
 * waiting for a CPU, throttled included). */
static int job_usage(pid_t pid, double *cpu_s, uint64_t *pages, int *runnable)
{
    struct mos_proc_stat st;

    if (mos_proc_stat_read(pid, &st) != 0)
        return -1;
    *runnable = st.state == 'R';
    *cpu_s = (double)(st.f[MOS_STAT_UTIME] + st.f[MOS_STAT_STIME]) /
             (double)sysconf(_SC_CLK_TCK);
    *pages = st.f[MOS_STAT_RSS];
    return 0;
}

static size_t nodes_fill(struct mosd *d, struct mos_node_state *nodes)
{
    uint32_t now = mos_gossip_now_ms(), max_speed = 1;
    size_t n = mos_gossip_n_nodes(d->gossip);

    for (size_t i = 0; i < n; i++) {
        struct mos_gossip_node g;
        mos_gossip_node_get(d->gossip, now, i, &g);
        if (g.info.speed > max_speed)
            max_speed = g.info.speed;
    }
    for (size_t i = 0; i < n; i++) {
        struct mos_gossip_node g;
        struct mos_node_state *s = &nodes[i];
        mos_gossip_node_get(d->gossip, now, i, &g);
        memset(s, 0, sizeof(*s));
        s->id = (uint32_t)i;
        s->ncpus = g.info.ncpus;
        s->speed = (double)g.info.speed / max_speed;
        s->load = g.info.load_milli / 1000.0 * g.info.ncpus;
        s->util = g.info.util_permille / 1000.0;
        s->mem_free = (uint64_t)g.info.mem_free_mib << 20;
        s->mem_total = (uint64_t)g.info.mem_total_mib << 20;
        s->guests = g.info.guests;
        s->age = g.age_ms == MOS_GOSSIP_AGE_UNKNOWN
                     ? UINT32_MAX
                     : g.age_ms / (uint32_t)d->cfg.gossip_interval_ms;
        if (g.state == MOS_GOSSIP_ALIVE && (g.info.flags & MOS_GOSSIP_F_ACCEPTING) &&
            !mosd_gossip_refusing(d, i, g.age_ms))
            s->flags |= MOS_NODE_ACCEPTING;
        if (g.info.flags & MOS_GOSSIP_F_BLOCKED)
            s->flags |= MOS_NODE_BLOCKED;
        if (i == mos_gossip_self(d->gossip)) {
            s->flags |= MOS_NODE_SELF;
            s->age = 0;
        }
    }
    return n;
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
        int runnable;

        if (job->moving || job->locked || job->move_reply_fd > 0)
            continue;
        if (!job->supervisor && (strcmp(job->where, self) != 0 || !job->owner))
            continue;
        if (job_usage(job->pid, &cpu_s, &pages, &runnable) != 0)
            continue;
        /* Demand, not the share it gets: on an overloaded node a CPU-bound job gets little CPU
         * yet is runnable all the time. A running average of samples of its state. */
        job->demand = job->seen_ns ? 0.6 * job->demand + 0.4 * runnable : (runnable ? 1.0 : 0.5);
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
                                        .cpu = job->demand < 0.05 ? 0.05 : job->demand,
                                        .remaining_s = -1};
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

/* A target's gossip entry predates our recent moves to it: count them there ourselves. */
static void add_recent_sends(struct mosd *d, struct mos_node_state *nodes, size_t n_nodes)
{
    uint32_t now_ms = mos_gossip_now_ms();
    uint64_t now = mos_clock_now_ns();

    for (unsigned k = 0; k < d->n_sent && k < 64; k++) {
        struct mosd_sent *s = &d->sent[k];
        struct mos_gossip_node g;
        if (s->node < 0 || (size_t)s->node >= n_nodes || now - s->at_ns > 30 * MOS_NSEC_PER_SEC)
            continue;
        mos_gossip_node_get(d->gossip, now_ms, (size_t)s->node, &g);
        uint64_t news_age_ns = g.age_ms == MOS_GOSSIP_AGE_UNKNOWN
                                   ? UINT64_MAX
                                   : (uint64_t)g.age_ms * MOS_NSEC_PER_MSEC;
        /* the entry was made before the move landed (a move takes a moment: one step's slack) */
        if (news_age_ns > now - s->at_ns - (uint64_t)d->cfg.gossip_interval_ms * MOS_NSEC_PER_MSEC ||
            now - s->at_ns < (uint64_t)d->cfg.gossip_interval_ms * MOS_NSEC_PER_MSEC)
            nodes[s->node].load += s->cpu;
    }
}

static void remember_send(struct mosd *d, int node, double cpu)
{
    d->sent[d->n_sent % 64] = (struct mosd_sent){node, mos_clock_now_ns(), cpu};
    d->n_sent++;
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
        dprintf(job->sup_ctl, "move %s %.3f\n", to, max_load);
        return;
    }
    struct json_object *req = json_object_new_object(), *refusal;
    json_object_object_add(req, "pid", json_object_new_int(job->pid));
    json_object_object_add(req, "to", json_object_new_string(to));
    json_object_object_add(req, "max_load", json_object_new_double(max_load));
    refusal = mosd_move_request(d, NULL, 0, req);
    if (refusal)
        mos_info("mosd", "balance: not moved: %s", mos_json_str(refusal, "error", "?"));
    json_object_put(refusal);
    json_object_put(req);
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
    params.stability_margin = d->cfg.stability_margin_pct / 100.0;
    params.dead_age = (uint32_t)d->cfg.dead_after_steps;
    /* half a second of life is enough to tell a job from a short command: on an overloaded
     * node every second spent waiting is CPU lost cluster-wide */
    params.min_age_s = 0.5;
    size_t self = mos_gossip_self(d->gossip);
    nodes_fill(d, nodes);
    /* Our own load from our own table, not from our last gossip entry, which may predate moves
     * made since; moves still under way are load here no more (they count at their targets). */
    nodes[self].load = 0;
    for (size_t i = 0; i < d->n_jobs; i++) {
        const struct mosd_job *j = &d->jobs[i];
        int here = j->supervisor || strcmp(j->where, d->cfg.nodes[d->self].name) == 0;
        if (here && !j->moving && j->move_reply_fd <= 0)
            nodes[self].load += 1;
    }
    add_recent_sends(d, nodes, n_nodes);
    if (mos_log_get_level() >= MOS_LOG_DEBUG)
        for (size_t i = 0; i < n_nodes; i++)
            mos_dbg("mosd", "balance: node %zu cpus %u speed %.2f load %.2f flags %x age %u", i,
                    nodes[i].ncpus, nodes[i].speed, nodes[i].load, nodes[i].flags, nodes[i].age);
    size_t n_jobs = jobs_fill(d, jobs, index);
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
        double max_load = nodes[self].load / (nodes[self].ncpus ? nodes[self].ncpus : 1);
        move(d, &d->jobs[index[dec.job_index]], d->cfg.nodes[dec.node_index].name, max_load,
             dec.reason);
        remember_send(d, dec.node_index, jobs[dec.job_index].cpu);
        nodes[dec.node_index].load += jobs[dec.job_index].cpu;
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
    return d->balance_ev ? event_add(d->balance_ev, &tv) : -1;
}

void mosd_balance_stop(struct mosd *d)
{
    if (d->balance_ev)
        event_free(d->balance_ev);
    d->balance_ev = NULL;
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
    nodes_fill(d, nodes);
    add_recent_sends(d, nodes, n);
    nodes_mask(allowed, d->self, nodes, n);
    best = mos_placement_assign((unsigned)n, params.cpu_cap, nodes, n, &job,
                                (uint32_t)d->cfg.dead_after_steps);
    free(nodes);
    return best >= 0 ? best : d->self;
}
