/* Randomized gossip of node state with guaranteed ages (Amar, Barak, Drezner, Okun 2009). */
#ifndef MOS_GOSSIP_H
#define MOS_GOSSIP_H

/* Expected ages, in time steps, of a gossip vector for n nodes that each send their own entry
 * plus the window-1... window youngest others to one random node per step. */
struct mos_gossip_age_model {
    double avg_age;   /* expected average age of a vector entry */
    double max_age;   /* expected maximum age of an entry */
    double window_age; /* expected mean age of the entries in a sent window */
};

/* Fill model for n >= 2 nodes and 1 <= window < n. Returns 0 or -EINVAL. */
int mos_gossip_model(unsigned n, unsigned window, struct mos_gossip_age_model *model);

#endif
