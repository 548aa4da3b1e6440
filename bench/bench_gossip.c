/* mosbench gossip: N nodes in one process run the gossip library's own algorithm (the code
 * mosd runs, through the library's simulator, mos/gossip_sim.h, which describes the time
 * model) and the measured ages are compared with the analytical model in the same run.
 *
 * Model: the paper's window counts the entries of a message including the sender's own, so
 * mos (own entry + W others) is compared with the model at window W + 1 (README.md). The
 * warm-up is the model's maximum age; a node is presumed dead after 3 times that. */
#include "bench.h"

#include "mos/clock.h"
#include "mos/gossip.h"
#include "mos/gossip_sim.h"
#include "mos/status.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_prob(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);

    if (*text == '\0' || *end != '\0' || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

static int sim_parse(int argc, char **argv, struct mos_gossip_sim_params *o)
{
    for (int i = 0; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = !v;
        if (!bad && strcmp(a, "--nodes") == 0)
            bad = bench_parse_uint(v, &o->nodes);
        else if (!bad && strcmp(a, "--window") == 0)
            bad = bench_parse_uint(v, &o->window);
        else if (!bad && strcmp(a, "--steps") == 0)
            bad = bench_parse_uint(v, &o->steps);
        else if (!bad && strcmp(a, "--threads") == 0)
            bad = bench_parse_uint(v, &o->threads) || o->threads < 1 ||
                  o->threads > MOS_GOSSIP_SIM_MAX_THREADS;
        else if (!bad && strcmp(a, "--dead-after") == 0)
            bad = bench_parse_uint(v, &o->dead_after);
        else if (!bad && strcmp(a, "--loss") == 0)
            bad = parse_prob(v, &o->loss);
        else if (!bad && strcmp(a, "--churn") == 0)
            bad = parse_prob(v, &o->churn);
        else if (!bad && strcmp(a, "--seed") == 0) {
            char *end;
            o->seed = strtoull(v, &end, 0);
            bad = *v == '\0' || *end != '\0';
        } else
            bad = 1;
        if (bad) {
            fprintf(stderr, "mosbench gossip: bad argument '%s'%s%s\n", a, v ? " " : "",
                    v ? v : "");
            return -1;
        }
    }
    if (o->nodes < 2 || o->nodes > MOS_GOSSIP_SIM_MAX_NODES || o->window < 1 ||
        o->window >= o->nodes || o->window > MOS_GOSSIP_MAX_WINDOW || o->steps < 1) {
        fprintf(stderr, "mosbench gossip: need 2 <= nodes <= %d, 1 <= window < nodes "
                        "(and <= %d), steps >= 1\n", MOS_GOSSIP_SIM_MAX_NODES,
                MOS_GOSSIP_MAX_WINDOW);
        return -1;
    }
    return 0;
}

static void sim_report(const struct mos_gossip_sim_params *o,
                       const struct mos_gossip_sim_result *r,
                       const struct mos_gossip_age_model *model, int have_model, double secs)
{
    double per = r->node_steps ? 1.0 / (double)r->node_steps : 0;
    double avg_m = have_model ? model->avg_age : NAN, max_m = have_model ? model->max_age : NAN;

    printf("gossip simulation: %u nodes, window %u (+ own entry), %u steps, loss %.3f, "
           "churn %.4f, seed %llu, dead after %u steps\n", o->nodes, o->window, o->steps,
           o->loss, o->churn, (unsigned long long)o->seed, o->dead_after);
    printf("  ticks at fixed random phases, delivered at the end of batches of %u ticks "
           "(1/%d step)\n", r->batch, MOS_GOSSIP_SIM_BATCHES_PER_STEP);
    printf("  steady state: steps %u..%u (warm-up >= model max age), %llu vectors sampled, "
           "%llu ages, %llu unknown\n", o->warmup, o->steps - 1, (unsigned long long)r->rows,
           (unsigned long long)r->ages, (unsigned long long)r->unknown);
    printf("  %-30s %10s %10s %8s\n", "", "simulated", "model", "ratio");
    printf("  %-30s %10.2f %10.2f %8.3f\n", "average age (steps)", r->avg_age, avg_m,
           r->avg_age / avg_m);
    printf("  %-30s %10.1f %10.1f %8.3f\n", "max age per vector (steps)", r->max_age, max_m,
           r->max_age / max_m);
    printf("  largest age seen: %.1f steps\n", r->max_seen);
    printf("  per node per step: %.3f messages, %.1f bytes (%llu datagrams lost)\n",
           (double)r->datagrams * per, (double)r->bytes * per, (unsigned long long)r->lost);
    printf("  run time %.1f s for %u steps on %u threads (%.2f us per node-step)\n", secs,
           o->steps, o->threads, secs * 1e6 / ((double)o->steps * o->nodes));
    printf("result gossip nodes=%u window=%u avg_age=%.2f avg_age_model=%.2f max_age=%.1f "
           "max_age_model=%.1f bytes_per_node_step=%.1f\n", o->nodes, o->window, r->avg_age,
           avg_m, r->max_age, max_m, (double)r->bytes * per);
}

static unsigned usable_cpus(void)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;

    return n < 1 ? 1 : n > MOS_GOSSIP_SIM_MAX_THREADS ? MOS_GOSSIP_SIM_MAX_THREADS : (unsigned)n;
}

int bench_gossip(int argc, char **argv)
{
    /* A thread per CPU we may use by default: with the simulator's prefetching a second
     * thread paid on the 2-core development machine (10,000 nodes x 2,000 steps: 42 s against
     * 58 s on one). The result does not depend on it; --threads 1 on a busy host, where the
     * threads' meeting ~130 times a step costs more than they gain. */
    struct mos_gossip_sim_params o = {.nodes = 1000, .window = 16, .steps = 2000, .seed = 1,
                                      .threads = usable_cpus()};
    struct mos_gossip_age_model model = {0};
    struct mos_gossip_sim_result r;
    int have_model, rc;

    if (sim_parse(argc, argv, &o) != 0)
        return 2;
    /* The paper's window counts the own entry too: see the comment at the top. */
    have_model = o.window + 1 < o.nodes && mos_gossip_model(o.nodes, o.window + 1, &model) == 0;
    o.warmup = have_model ? (unsigned)ceil(model.max_age) : o.nodes;
    if (o.dead_after == 0)
        o.dead_after = have_model ? (unsigned)ceil(3 * model.max_age) : 3 * o.nodes;
    if (o.steps <= o.warmup) {
        fprintf(stderr, "mosbench gossip: %u steps leave no steady state after the warm-up of "
                        "%u steps (the model's maximum age); use --steps %u or more\n",
                o.steps, o.warmup, 2 * o.warmup);
        return 2;
    }
    uint64_t t0 = mos_clock_now_ns();
    if ((rc = mos_gossip_sim_run(&o, &r)) != 0) {
        fprintf(stderr, "mosbench gossip: simulation of %u nodes failed: %s\n", o.nodes,
                mos_strerror(rc));
        return rc == -EINVAL ? 2 : 1;
    }
    sim_report(&o, &r, &model, have_model, (mos_clock_now_ns() - t0) / 1e9);
    return 0;
}
