/* Opportunity-cost placement (Amir, Awerbuch, Barak, Borgstrom, Keren, TPDS 2000). */
#ifndef MOS_PLACEMENT_H
#define MOS_PLACEMENT_H

#include <stddef.h>

/* A node's cost: the sum over its resources r of n^(u_r), with n the number of nodes in the
 * cluster and u_r in [0, 1] the utilization of r (values outside are clamped). */
double mos_placement_node_cost(unsigned n_nodes, const double *util, size_t n_resources);

/* The cost a job adds to a node: cost with the job's extra utilization added to each resource
 * minus the cost without it. */
double mos_placement_marginal_cost(unsigned n_nodes, const double *util, const double *extra,
                                   size_t n_resources);

#endif
