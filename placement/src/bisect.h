/* Recursive bisection of the rank graph onto hosts (private to rankmap.c). */
#ifndef MOS_PLACEMENT_BISECT_H
#define MOS_PLACEMENT_BISECT_H

#include "mos/placement_map.h"

/* Assign every rank a host so that host h receives exactly count[h] ranks, cutting the rank
 * graph (edge weight = bytes both ways) by recursive bisection over the host list: each split
 * grows one side from a seed, then Fiduccia-Mattheyses passes move ranks across while it
 * lowers the cut. 0 or -ENOMEM. */
int bisect_map(const struct mos_comm_matrix *m, unsigned n_hosts, const unsigned *count,
               unsigned *host_of);

#endif
