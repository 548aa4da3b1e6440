/* The gossip simulator: n nodes in one process run the library's own algorithm (the code mosd
 * runs) on a simulated clock and report the ages they see, so that the model
 * (mos_gossip_model) can be checked for a cluster's size before the cluster exists;
 * `mosbench gossip` prints its figures.
 *
 * Time: a step is 1000 units (a 1 s interval in ms, as in the library). Each node ticks once
 * per step at its own fixed random phase, as independent daemons do; ticks run in phase order
 * in MOS_GOSSIP_SIM_BATCHES_PER_STEP batches per step, each batch's datagrams delivered at its
 * end (at most 1/64 step late), so threads can share a batch: every node has its own random
 * stream, and a seed gives the same result for any number of threads. Ages are real elapsed
 * time, observed at step boundaries on sampled vectors of nodes that are up. Memory: a 32-bit
 * stamp per node pair, 4 N^2 bytes (400 MB at N = 10,000). */
#ifndef MOS_GOSSIP_SIM_H
#define MOS_GOSSIP_SIM_H

#include <stdint.h>

#define MOS_GOSSIP_SIM_MAX_NODES 65536
#define MOS_GOSSIP_SIM_MAX_THREADS 16
#define MOS_GOSSIP_SIM_BATCHES_PER_STEP 64
#define MOS_GOSSIP_SIM_DOWN_STEPS 10 /* a crashed node restarts, with an empty vector, after this */

/* The fraction of ages above mos_gossip_sim_result.tail_age: one entry in 10,000. */
#define MOS_GOSSIP_SIM_TAIL 1e-4

struct mos_gossip_sim_params {
    unsigned nodes;      /* 2..MOS_GOSSIP_SIM_MAX_NODES */
    unsigned window;     /* other entries per datagram: 1..nodes-1, at most MOS_GOSSIP_MAX_WINDOW */
    unsigned steps;      /* steps simulated: more than warmup */
    unsigned warmup;     /* steps before ages and traffic are counted */
    unsigned dead_after; /* an entry older than this many steps marks its node presumed dead */
    unsigned threads;    /* 1..MOS_GOSSIP_SIM_MAX_THREADS (0: 1); the result does not depend on it */
    double loss;         /* probability that a datagram is lost, 0..1 */
    double churn;        /* probability per node and step that it crashes, 0..1 */
    uint64_t seed;
};

struct mos_gossip_sim_result {
    double avg_age;              /* steps: mean age of the sampled entries (NAN if none) */
    double max_age;              /* steps: mean over the sampled vectors of their largest age */
    double max_seen;             /* steps: the largest age sampled */
    double tail_age;             /* steps: exceeded by MOS_GOSSIP_SIM_TAIL of the sampled ages */
    uint64_t rows, ages, unknown; /* vectors sampled; their entries with news, and without */
    uint64_t node_steps;         /* ticks of nodes that were up, after the warm-up */
    uint64_t datagrams, bytes;   /* sent after the warm-up; bytes as on the wire */
    uint64_t lost;               /* of those datagrams: lost, or sent to a node that was down */
    unsigned batch;              /* ticks per delivery batch */
};

/* Run one simulation. Returns 0; -EINVAL for parameters out of range, -ENOMEM, or -errno
 * when a thread cannot start. result is filled only on success. */
int mos_gossip_sim_run(const struct mos_gossip_sim_params *params,
                       struct mos_gossip_sim_result *result);

#endif
