#include "mos/placement.h"

#include <math.h>

static double clamp01(double u)
{
    return u < 0 ? 0 : (u > 1 ? 1 : u);
}

double mos_placement_node_cost(unsigned n_nodes, const double *util, size_t n_resources)
{
    double cost = 0;

    for (size_t r = 0; r < n_resources; r++)
        cost += pow((double)n_nodes, clamp01(util[r]));
    return cost;
}

double mos_placement_marginal_cost(unsigned n_nodes, const double *util, const double *extra,
                                   size_t n_resources)
{
    double delta = 0;

    /* Exponents saturate at 1: utilization past a resource's capacity is not cheaper. */
    for (size_t r = 0; r < n_resources; r++)
        delta += pow((double)n_nodes, clamp01(util[r] + extra[r])) -
                 pow((double)n_nodes, clamp01(util[r]));
    return delta;
}
