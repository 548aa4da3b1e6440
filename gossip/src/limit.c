/* The automatic suspicion limit: from the ages the algorithm really produces at this size.
 *
 * Twice the model's expected maximum age was used before; at small N the model underestimates
 * the tail (by 14% at N = 32 in the lab), and live nodes were presumed dead (issue 19); at
 * large N twice was far more than needed, and a dead node went unnoticed for long. The limit
 * is now the age that one sampled age in 10^4 exceeds (MOS_GOSSIP_SIM_TAIL) when the simulator
 * (the library's own algorithm, sim.c) runs about 10^5 node-steps of this very N and W. Past it
 * a node is only suspect and probed (suspect.c): the one entry in 10^4 that passes it costs a
 * few small datagrams, not a false death, and a dead node is found sooner. Measured (W = 15 +
 * own): 20.8 steps at N = 32 (the model's maximum: 7.7), 38.8 at 64 (18.5), 74.5 at 128 (43),
 * 146 at 256 (97.6). Beyond SIM_MAX_NODES the simulation would take seconds at every start;
 * there the model's maximum times LIMIT_MODEL_FACTOR (the ratio at N = 256, falling with N)
 * stands in. */
#include "mos/gossip.h"
#include "mos/gossip_sim.h"
#include "mos/log.h"

#include <math.h>

#define SIM_MAX_NODES 256
#define SIM_NODE_STEPS 100000
#define SIM_MIN_STEPS 400
#define LIMIT_MODEL_FACTOR 1.5
#define LIMIT_MIN_STEPS 10

/* The tail age of a simulation of n nodes sending w others, in steps; 0 on failure. */
static double simulated_tail(unsigned n, unsigned w, double model_max)
{
    unsigned warmup = (unsigned)ceil(model_max) + 10;
    unsigned run = SIM_NODE_STEPS / n > SIM_MIN_STEPS ? SIM_NODE_STEPS / n : SIM_MIN_STEPS;
    struct mos_gossip_sim_params p = {.nodes = n, .window = w, .warmup = warmup,
                                      .steps = warmup + run, .dead_after = 1u << 20,
                                      .threads = 1, .seed = 0x6d6f73u};
    struct mos_gossip_sim_result r;

    if (mos_gossip_sim_run(&p, &r) != 0 || !(r.tail_age > 0))
        return 0;
    return r.tail_age;
}

uint32_t mos_gossip_auto_limit_steps(unsigned n, unsigned window)
{
    struct mos_gossip_age_model m;
    unsigned w = window >= n ? n - 1 : window; /* others sent besides the own entry */
    double limit = 0, tail = 0;

    if (n < 2 || w < 1 || mos_gossip_model(n, w + 1 >= n ? n - 1 : w + 1, &m) != 0)
        return LIMIT_MIN_STEPS;
    if (n <= SIM_MAX_NODES)
        tail = simulated_tail(n, w, m.max_age);
    limit = tail > 0 ? tail : LIMIT_MODEL_FACTOR * m.max_age;
    if (limit < LIMIT_MIN_STEPS)
        limit = LIMIT_MIN_STEPS;
    mos_dbg("gossip", "suspicion limit %.0f steps (%s %.1f steps, %u nodes, window %u)", ceil(limit),
            tail > 0 ? "simulated tail age" : "model's maximum age", tail > 0 ? tail : m.max_age,
            n, w);
    return (uint32_t)ceil(limit);
}
