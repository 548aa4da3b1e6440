/* The balancer's decision: one pure function of the gossip vector, the local jobs and the
 * site's migration cost model. */
#include "mos/placement.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

#define PAGE_BYTES 4096ull

void mos_balance_params_default(struct mos_balance_params *p)
{
    p->cpu_cap = 1.0;
    p->stability_margin = 0.2;
    p->min_residence_s = 2.0;
    p->residence_per_migr = 10.0;
    p->gain_margin = 0.15;
    p->min_age_s = 1.0;
    p->benefit_factor = 2.0;
    p->dead_age = 30;
    p->mem_low_frac = 0.05;
}

double mos_migration_cost_seconds(const struct mos_migration_cost *model, uint64_t pages)
{
    return model->fixed_ms / 1e3 + (double)pages * model->per_page_us / 1e6;
}

double mos_job_predict_remaining(const struct mos_job_info *job)
{
    if (job->remaining_s >= 0)
        return job->remaining_s;
    return job->age_s > 0 ? job->age_s : 0;
}

static double job_cpu(const struct mos_job_info *job)
{
    return job->cpu > 0 ? job->cpu : 1.0;
}

/* Share of a reference CPU one process gets on a node with `load` runnable processes. */
static double process_rate(const struct mos_node_state *node, double load)
{
    double per_cpu = load > (double)node->ncpus ? (double)node->ncpus / load : 1.0;

    return node->speed * per_cpu;
}

/* The local node as it would be without the job: what keeping the job here costs is the
 * marginal cost of adding it back. */
static struct mos_node_state node_without(const struct mos_node_state *node,
                                          const struct mos_job_info *job)
{
    struct mos_node_state n = *node;
    uint64_t bytes = job->pages * PAGE_BYTES;

    n.load = n.load > job_cpu(job) ? n.load - job_cpu(job) : 0;
    n.mem_free = n.mem_free + bytes > n.mem_total && n.mem_total ? n.mem_total : n.mem_free + bytes;
    return n;
}

double mos_balance_residence_s(const struct mos_balance_params *p,
                               const struct mos_migration_cost *model, uint64_t pages)
{
    double by_cost = p->residence_per_migr * mos_migration_cost_seconds(model, pages);

    return by_cost > p->min_residence_s ? by_cost : p->min_residence_s;
}

int mos_balance_move_pays(const struct mos_balance_params *p, double time_here, double time_there,
                          double migrate_s)
{
    double saved = time_here - time_there;

    return saved > p->benefit_factor * migrate_s &&
           time_there + migrate_s < (1.0 - p->gain_margin) * time_here;
}

/* Entry ages are whole steps, rounded down: an entry `age` steps old was made between age and
 * age + 1 steps ago. A move is added at its target if the entry may predate it, and taken off
 * its source only if the entry surely does: in doubt, both keep the job where it is. */
static int entry_may_predate(const struct mos_node_state *n, double step_s, double since_s)
{
    if (n->age == UINT32_MAX)
        return 1;
    if (n->flags & MOS_NODE_AGE_MS)
        return n->age_ms / 1000.0 + MOS_BALANCE_AGE_SLACK_S >= since_s;
    return ((double)n->age + 1.0) * step_s >= since_s;
}

static int entry_predates(const struct mos_node_state *n, double step_s, double since_s)
{
    if (n->age == UINT32_MAX)
        return 1;
    if (n->flags & MOS_NODE_AGE_MS)
        return n->age_ms / 1000.0 >= since_s + MOS_BALANCE_AGE_SLACK_S;
    return (double)n->age * step_s >= since_s;
}

void mos_balance_count_moves(struct mos_node_state *nodes, size_t n_nodes, size_t self,
                             double step_s, const struct mos_balance_move *moves, size_t n_moves)
{
    for (size_t k = 0; k < n_moves; k++) {
        const struct mos_balance_move *m = &moves[k];
        if (m->to >= 0 && (size_t)m->to < n_nodes && (size_t)m->to != self &&
            entry_may_predate(&nodes[m->to], step_s, m->since_s))
            nodes[m->to].load += m->cpu;
        if (m->from >= 0 && (size_t)m->from < n_nodes && (size_t)m->from != self &&
            entry_predates(&nodes[m->from], step_s, m->since_s)) {
            struct mos_node_state *f = &nodes[m->from];
            f->load = f->load > m->cpu ? f->load - m->cpu : 0;
        }
    }
}

int mos_balance_admit(const struct mos_node_state *me, const struct mos_node_state *source,
                      double job_cpu, const struct mos_balance_params *p, double left_since_s,
                      double left_load, char *why, size_t why_len)
{
    double cpu = job_cpu > 0 ? job_cpu : 1.0;

    why[0] = '\0';
    if (me->ncpus == 0 || me->speed <= 0) {
        snprintf(why, why_len, "no CPU offered here");
        return 0;
    }
    if (left_since_s >= 0 && me->load >= left_load - 1e-9) {
        snprintf(why, why_len,
                 "it left here %.1f s ago and the load here has not fallen (%.2f, was %.2f)",
                 left_since_s, me->load, left_load);
        return 0;
    }
    if (source->ncpus == 0 || source->speed <= 0)
        return 1; /* the source offers nothing: anywhere is better */
    /* time is work over rate: the time here, with the margin, must beat the time there */
    double rate_here = process_rate(me, me->load + cpu);
    double rate_there = process_rate(source, source->load + cpu);
    if (1.0 / rate_here < (1.0 - p->gain_margin) / rate_there)
        return 1;
    snprintf(why, why_len,
             "busy: load %.2f here (speed %.2f x %u CPUs) against %.2f at the sender (%.2f x %u)",
             me->load, me->speed, me->ncpus, source->load, source->speed, source->ncpus);
    return 0;
}

struct move_stats {
    size_t locked, too_recent, movable;
    int any_target;
    int margin_blocked;  /* a cheaper node existed but not by the margin */
    int returns_blocked; /* the job's previous node, its load not fallen */
    double calls_blocked; /* the most call_wait of a job kept by its calls home (0: none) */
    double best_rejected_gain, best_rejected_migr;
};

static void set_none(struct mos_balance_decision *out)
{
    out->job_index = -1;
    out->node_index = -1;
    out->job_id = 0;
    out->node_id = 0;
    out->gain_s = 0;
    out->migrate_s = 0;
    out->ushering = 0;
    out->for_calls = 0;
}

static int job_may_move(const struct mos_job_info *job, const struct mos_balance_params *p,
                        const struct mos_migration_cost *model, struct move_stats *st)
{
    if (job->flags & MOS_JOB_LOCKED) {
        st->locked++;
        return 0;
    }
    if (job->residence_s < mos_balance_residence_s(p, model, job->pages) ||
        job->age_s < p->min_age_s) {
        st->too_recent++;
        return 0;
    }
    st->movable++;
    return 1;
}

/* Memory ushering: this node is short of free memory; send the largest movable job to the live
 * node with the most free memory that keeps at least mem_low_frac free after taking it.
 * Returns 1 when it made a decision. */
static int try_ushering(const struct mos_node_state *nodes, size_t n_nodes, size_t self,
                        const struct mos_job_info *jobs, size_t n_jobs,
                        const struct mos_migration_cost *model,
                        const struct mos_balance_params *p, struct mos_balance_decision *out)
{
    const struct mos_node_state *me = &nodes[self];
    int job = -1, target = -1;

    if (me->mem_total == 0 || (double)me->mem_free >= p->mem_low_frac * (double)me->mem_total)
        return 0;
    for (size_t j = 0; j < n_jobs; j++) {
        if ((jobs[j].flags & MOS_JOB_LOCKED) || jobs[j].residence_s < p->min_residence_s)
            continue;
        if (job < 0 || jobs[j].pages > jobs[job].pages)
            job = (int)j;
    }
    if (job < 0)
        return 0;
    uint64_t bytes = jobs[job].pages * PAGE_BYTES;
    for (size_t i = 0; i < n_nodes; i++) {
        if (i == self || !mos_placement_node_usable(&nodes[i], p->dead_age) ||
            nodes[i].mem_total == 0 || nodes[i].mem_free < bytes)
            continue;
        if ((double)(nodes[i].mem_free - bytes) < p->mem_low_frac * (double)nodes[i].mem_total)
            continue;
        if (target < 0 || nodes[i].mem_free > nodes[target].mem_free)
            target = (int)i;
    }
    if (target < 0)
        return 0;
    out->job_index = job;
    out->node_index = target;
    out->job_id = jobs[job].id;
    out->node_id = nodes[target].id;
    out->migrate_s = mos_migration_cost_seconds(model, jobs[job].pages);
    out->ushering = 1;
    snprintf(out->reason, sizeof(out->reason),
             "memory ushering: free %llu MiB < %.0f%% of %llu MiB; job %llu (%llu MiB) to node "
             "%u with %llu MiB free",
             (unsigned long long)(me->mem_free >> 20), p->mem_low_frac * 100,
             (unsigned long long)(me->mem_total >> 20), (unsigned long long)jobs[job].id,
             (unsigned long long)(bytes >> 20), nodes[target].id,
             (unsigned long long)(nodes[target].mem_free >> 20));
    return 1;
}

double mos_job_calls_cost_s(const struct mos_job_info *job, size_t node, double remaining)
{
    if (!(job->flags & MOS_JOB_CALLS) || job->home_node == node || !(job->call_wait > 0))
        return 0;
    return remaining * job->call_wait;
}

/* The best target for one job: least opportunity cost among usable nodes, accepted only if it
 * beats the cost of staying by the stability margin and saves more time than the migration
 * costs (times benefit_factor), its calls home counted in both times. Home itself is tried on
 * time alone when the job's calls cost it here: what it saves there is no CPU share.
 * Returns the node index or -1; *gain_out is the time saved. */
static int best_target(const struct mos_node_state *nodes, size_t n_nodes, size_t self,
                       const struct mos_job_info *job, const struct mos_migration_cost *model,
                       const struct mos_balance_params *p, struct move_stats *st, double *gain_out)
{
    const struct mos_node_state *me = &nodes[self];
    struct mos_node_state here = node_without(me, job);
    struct mos_job_demand demand = {.cpu = job_cpu(job), .mem_bytes = job->pages * PAGE_BYTES};
    unsigned n = (unsigned)n_nodes;
    double cost_here = mos_placement_job_cost(n, p->cpu_cap, &here, &demand);
    double remaining = mos_job_predict_remaining(job);
    double calls_here = mos_job_calls_cost_s(job, self, remaining);
    double time_here = remaining / process_rate(me, here.load + demand.cpu) + calls_here;
    double migr = mos_migration_cost_seconds(model, job->pages);
    int best = -1;
    double best_cost = HUGE_VAL, best_gain = 0;

    /* Ties go to the first node after this one, shifted by the job's id: senders that see the
     * same idle nodes spread over them instead of all choosing the lowest index (a herd the
     * target then refuses, mosbench balance --sim at 1024 nodes). */
    size_t start = (size_t)((self + 1 + job->id) % n_nodes);
    for (size_t k = 0; k < n_nodes; k++) {
        size_t i = (start + k) % n_nodes;
        if (i == self || !mos_placement_node_usable(&nodes[i], p->dead_age))
            continue;
        st->any_target = 1;
        int home_for_calls = calls_here > 0 && job->home_node == i;
        if (!home_for_calls && (job->flags & MOS_JOB_CAME) && job->from_node == i &&
            nodes[i].load >= job->from_load - 1e-9) {
            st->returns_blocked = 1;
            continue;
        }
        double cost = mos_placement_job_cost(n, p->cpu_cap, &nodes[i], &demand);
        if (!home_for_calls && !(cost < cost_here))
            continue;
        if (!home_for_calls && cost > (1.0 - p->stability_margin) * cost_here) {
            st->margin_blocked = 1;
            continue;
        }
        double cpu_there = remaining / process_rate(&nodes[i], nodes[i].load + demand.cpu);
        double time_there = cpu_there + mos_job_calls_cost_s(job, i, remaining);
        double gain = time_here - time_there - migr;
        if (!mos_balance_move_pays(p, time_here, time_there, migr)) {
            if (mos_balance_move_pays(p, time_here - calls_here, cpu_there, migr) &&
                job->call_wait > st->calls_blocked)
                st->calls_blocked = job->call_wait;
            if (time_here - time_there > st->best_rejected_gain) {
                st->best_rejected_gain = time_here - time_there;
                st->best_rejected_migr = migr;
            }
            continue;
        }
        /* with its calls measured, the fastest place for it; else the least opportunity cost */
        double key = (job->flags & MOS_JOB_CALLS) ? time_there : cost;
        if (key < best_cost) {
            best_cost = key;
            best = (int)i;
            best_gain = gain;
        }
    }
    *gain_out = best_gain;
    return best;
}

static void explain_none(const struct move_stats *st, size_t n_jobs,
                         struct mos_balance_decision *out)
{
    if (n_jobs == 0)
        snprintf(out->reason, sizeof(out->reason), "none: no local jobs");
    else if (st->movable == 0)
        snprintf(out->reason, sizeof(out->reason),
                 "none: no movable job (%zu locked, %zu within minimum residence or age)",
                 st->locked, st->too_recent);
    else if (!st->any_target)
        snprintf(out->reason, sizeof(out->reason),
                 "none: no live node accepts guests (blocked, not accepting or presumed dead)");
    else if (st->calls_blocked > 0)
        snprintf(out->reason, sizeof(out->reason),
                 "none: a job's calls home would cost more away than it gains (it waited %.2f s "
                 "on them per CPU-second away)",
                 st->calls_blocked);
    else if (st->best_rejected_gain > 0)
        snprintf(out->reason, sizeof(out->reason),
                 "none: best move saves %.3f s, not enough for %.3f s migration and the margin",
                 st->best_rejected_gain, st->best_rejected_migr);
    else if (st->margin_blocked)
        snprintf(out->reason, sizeof(out->reason),
                 "none: cheaper nodes exist but not by the stability margin");
    else if (st->returns_blocked)
        snprintf(out->reason, sizeof(out->reason),
                 "none: only back where a job came from, whose load has not fallen");
    else
        snprintf(out->reason, sizeof(out->reason), "none: this node is the cheapest for its jobs");
}

int mos_balance_decide(const struct mos_node_state *nodes, size_t n_nodes, size_t self,
                       const struct mos_job_info *jobs, size_t n_jobs,
                       const struct mos_migration_cost *model,
                       const struct mos_balance_params *params,
                       struct mos_balance_decision *out)
{
    struct move_stats st = {0};
    double best_gain = 0;

    if (!nodes || self >= n_nodes || (!jobs && n_jobs) || !model || !params || !out)
        return -EINVAL;
    set_none(out);
    if (try_ushering(nodes, n_nodes, self, jobs, n_jobs, model, params, out))
        return 0;
    for (size_t j = 0; j < n_jobs; j++) {
        double gain;
        if (!job_may_move(&jobs[j], params, model, &st))
            continue;
        int t = best_target(nodes, n_nodes, self, &jobs[j], model, params, &st, &gain);
        if (t >= 0 && gain > best_gain) {
            best_gain = gain;
            out->job_index = (int)j;
            out->node_index = t;
        }
    }
    if (out->job_index < 0) {
        explain_none(&st, n_jobs, out);
        return 0;
    }
    const struct mos_job_info *job = &jobs[out->job_index];
    out->job_id = job->id;
    out->node_id = nodes[out->node_index].id;
    out->gain_s = best_gain;
    out->migrate_s = mos_migration_cost_seconds(model, job->pages);
    out->for_calls = mos_job_calls_cost_s(job, self, 1) > 0 &&
                     mos_job_calls_cost_s(job, (size_t)out->node_index, 1) == 0;
    int n = snprintf(out->reason, sizeof(out->reason),
                     "opportunity cost: job %llu to node %u saves %.3f s net (migration %.3f s)",
                     (unsigned long long)job->id, out->node_id, best_gain, out->migrate_s);
    if (mos_job_calls_cost_s(job, self, 1) > 0 && n > 0 && (size_t)n < sizeof(out->reason))
        snprintf(out->reason + n, sizeof(out->reason) - (size_t)n,
                 "; its calls home waited %.2f s per CPU-second here", job->call_wait);
    return 0;
}
