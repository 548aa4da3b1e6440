#include "mos/placement.h"

#include <math.h>

#define UTIL_EXP_MAX 16.0

/* n^u. Utilization below 0 is noise; above 1 is overload, which must keep costing more (a job
 * added to an overloaded node is not free). Past u = 16 the exponential goes on along its
 * tangent, against overflow: a cap there made a node with 128 jobs on one CPU cost the same
 * with one job more or less, so the balancer saw nothing to gain by moving any of them. */
static double util_term(double n, double u)
{
    if (u < 0)
        u = 0;
    if (u <= UTIL_EXP_MAX)
        return pow(n, u);
    return pow(n, UTIL_EXP_MAX) * (1.0 + log(n) * (u - UTIL_EXP_MAX));
}

double mos_placement_node_cost(unsigned n_nodes, const double *util, size_t n_resources)
{
    double cost = 0;

    for (size_t r = 0; r < n_resources; r++)
        cost += util_term((double)n_nodes, util[r]);
    return cost;
}

double mos_placement_marginal_cost(unsigned n_nodes, const double *util, const double *extra,
                                   size_t n_resources)
{
    double delta = 0;

    for (size_t r = 0; r < n_resources; r++)
        delta += util_term((double)n_nodes, util[r] + extra[r]) -
                 util_term((double)n_nodes, util[r]);
    return delta;
}

void mos_placement_node_util(const struct mos_node_state *node, double cpu_cap, double *util)
{
    double cpu_capacity = (double)node->ncpus * node->speed * cpu_cap;

    util[MOS_RES_CPU] = cpu_capacity > 0 ? node->load / cpu_capacity : 1.0;
    if (node->mem_total > 0) {
        uint64_t used = node->mem_free < node->mem_total ? node->mem_total - node->mem_free : 0;
        util[MOS_RES_MEM] = (double)used / (double)node->mem_total;
    } else {
        util[MOS_RES_MEM] = 0;
    }
}

void mos_placement_job_extra(const struct mos_node_state *node, double cpu_cap,
                             const struct mos_job_demand *job, double *extra)
{
    double cpu_capacity = (double)node->ncpus * node->speed * cpu_cap;

    extra[MOS_RES_CPU] = cpu_capacity > 0 ? job->cpu / cpu_capacity : 1.0;
    extra[MOS_RES_MEM] =
        node->mem_total > 0 ? (double)job->mem_bytes / (double)node->mem_total : 0;
}

double mos_placement_job_cost(unsigned n_nodes, double cpu_cap, const struct mos_node_state *node,
                              const struct mos_job_demand *job)
{
    double util[MOS_RES_COUNT], extra[MOS_RES_COUNT];

    if (node->mem_total > 0 && job->mem_bytes > node->mem_free)
        return HUGE_VAL;
    unsigned n = n_nodes < 2 ? 2 : n_nodes;

    mos_placement_node_util(node, cpu_cap, util);
    mos_placement_job_extra(node, cpu_cap, job, extra);
    /* Each CPU is a resource of its own, and the scheduler spreads the load over them evenly:
     * ncpus equal terms. Counting a many-core node's CPUs as one resource would make its
     * marginal cost 1/ncpus of a small node's at equal utilization, and so pile jobs on the
     * big nodes far past the point where they run slower there (mosbench placement showed
     * mean slowdown 4-9% above greedy's that way, and migrations made it worse). */
    return (double)node->ncpus *
               mos_placement_marginal_cost(n, &util[MOS_RES_CPU], &extra[MOS_RES_CPU], 1) +
           mos_placement_marginal_cost(n, &util[MOS_RES_MEM], &extra[MOS_RES_MEM], 1);
}

int mos_placement_node_usable(const struct mos_node_state *node, uint32_t max_age)
{
    return (node->flags & MOS_NODE_ACCEPTING) && !(node->flags & MOS_NODE_BLOCKED) &&
           node->age <= max_age && node->ncpus > 0 && node->speed > 0;
}

int mos_placement_assign(unsigned n_nodes_cluster, double cpu_cap,
                         const struct mos_node_state *nodes, size_t n_nodes,
                         const struct mos_job_demand *job, uint32_t max_age)
{
    int best = -1;
    double best_cost = HUGE_VAL;

    for (size_t i = 0; i < n_nodes; i++) {
        if (!mos_placement_node_usable(&nodes[i], max_age))
            continue;
        double c = mos_placement_job_cost(n_nodes_cluster, cpu_cap, &nodes[i], job);
        if (c < best_cost) {
            best_cost = c;
            best = (int)i;
        }
    }
    return best;
}
