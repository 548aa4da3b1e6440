/* mosbench gossip: N nodes in one process run the gossip library's own algorithm
 * (mos_gossip_core, the code mosd runs) and the measured ages are compared with the
 * analytical model in the same run.
 *
 * Time: a step is 1000 units (a 1 s interval in ms, as in the library). Each node ticks once
 * per step at its own fixed phase, as independent daemons do, and a datagram arrives at once;
 * ages are real elapsed time, observed at step boundaries. Storage: each node holds a 32-bit
 * stamp per node (4 N^2 bytes: 400 MB at N = 10,000). 16-bit whole-step ages would halve
 * that, but ages must be finer than a step: counted in whole steps each hop adds half a step
 * on average (measured: +8% over the model at N = 300, W = 8).
 *
 * Model: the paper's window counts the entries of a message including the sender's own, so
 * mos (own entry + W others) is compared with the model at window W + 1 (README.md). */
#include "bench.h"

#include "mos/clock.h"
#include "mos/gossip.h"
#include "mos/gossip_core.h"
#include "mos/gossip_wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define UNITS_PER_STEP 1000u
#define CHURN_DOWN_STEPS 10 /* a crashed node restarts, with an empty vector, after this */

struct sim_opts {
    unsigned nodes, window, steps;
    double loss, churn;
    unsigned long long seed;
    unsigned dead_after; /* steps; 0: 3x the model's maximum age */
};

struct sim_node {
    struct mos_gossip_core *core;
    uint32_t phase;      /* units after the step boundary at which this node ticks */
    uint32_t down_until; /* step at which a crashed node restarts; 0 = up */
};

struct sim_totals {
    double age_sum, max_sum, max_seen;
    unsigned long long ages, rows, unknown, msgs, bytes, node_steps, dropped;
};

static int parse_prob(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);

    if (*text == '\0' || *end != '\0' || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

static int sim_parse(int argc, char **argv, struct sim_opts *o)
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
    if (o->nodes < 2 || o->nodes > 65536 || o->window < 1 || o->window >= o->nodes ||
        o->window > MOS_GOSSIP_MAX_ENTRIES - 1 || o->steps < 1) {
        fprintf(stderr, "mosbench gossip: need 2 <= nodes <= 65536, 1 <= window < nodes "
                        "(and <= %d), steps >= 1\n", MOS_GOSSIP_MAX_ENTRIES - 1);
        return -1;
    }
    return 0;
}

static double unit_rand(struct mos_gossip_splitmix *r)
{
    return (double)(mos_gossip_splitmix_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static int cmp_phase(const void *a, const void *b, void *arg)
{
    const struct sim_node *nodes = arg;
    uint32_t pa = nodes[*(const uint32_t *)a].phase, pb = nodes[*(const uint32_t *)b].phase;

    return pa < pb ? -1 : pa > pb;
}

/* Ages of a few sampled vectors at the step boundary, over the entries of nodes that are up. */
static void sim_observe(const struct sim_node *nodes, unsigned n, uint32_t step,
                        unsigned n_rows, struct mos_gossip_splitmix *r, struct sim_totals *t)
{
    uint32_t now = (step + 1) * UNITS_PER_STEP;

    for (unsigned k = 0; k < n_rows; k++) {
        uint32_t row = (uint32_t)(mos_gossip_splitmix_next(r) % n), max = 0;
        if (nodes[row].down_until)
            continue;
        for (uint32_t j = 0; j < n; j++) {
            if (j == row || nodes[j].down_until)
                continue;
            uint32_t age = mos_gossip_core_age(nodes[row].core, now, j);
            if (age == MOS_GOSSIP_AGE_UNKNOWN) {
                t->unknown++;
                continue;
            }
            t->age_sum += age;
            t->ages++;
            if (age > max)
                max = age;
        }
        t->max_sum += max;
        t->rows++;
        if (max > t->max_seen)
            t->max_seen = max;
    }
}

static void sim_churn(struct sim_node *nodes, unsigned n, uint32_t step, double churn,
                      struct mos_gossip_splitmix *r)
{
    for (unsigned i = 0; i < n; i++) {
        if (nodes[i].down_until && nodes[i].down_until <= step) {
            nodes[i].down_until = 0;
            mos_gossip_core_reset(nodes[i].core, step * UNITS_PER_STEP + nodes[i].phase);
        } else if (!nodes[i].down_until && churn > 0 && unit_rand(r) < churn) {
            nodes[i].down_until = step + CHURN_DOWN_STEPS;
        }
    }
}

static void sim_step(struct sim_node *nodes, const uint32_t *order, unsigned n, uint32_t step,
                     const struct sim_opts *o, const struct mos_gossip_rng *rng,
                     struct mos_gossip_splitmix *r, struct mos_gossip_item *items,
                     struct sim_totals *t)
{
    for (unsigned k = 0; k < n; k++) {
        uint32_t i = order[k], target;
        if (nodes[i].down_until)
            continue;
        uint32_t now = step * UNITS_PER_STEP + nodes[i].phase;
        size_t n_items = mos_gossip_core_tick(nodes[i].core, now, rng, &target, items);
        t->node_steps++;
        if (target == MOS_GOSSIP_NO_SLOT)
            continue;
        t->msgs++;
        t->bytes += mos_gossip_wire_size(n_items);
        if ((o->loss > 0 && unit_rand(r) < o->loss) || nodes[target].down_until) {
            t->dropped++;
            continue;
        }
        mos_gossip_core_receive(nodes[target].core, now, items, n_items, NULL);
    }
}

static void sim_report(const struct sim_opts *o, const struct sim_totals *t, uint32_t warmup,
                       const struct mos_gossip_age_model *model, int have_model, double secs)
{
    double avg = t->ages ? t->age_sum / t->ages / UNITS_PER_STEP : NAN;
    double max = t->rows ? t->max_sum / t->rows / UNITS_PER_STEP : NAN;
    double per = t->node_steps ? 1.0 / (double)t->node_steps : 0;
    double avg_m = have_model ? model->avg_age : NAN, max_m = have_model ? model->max_age : NAN;

    printf("gossip simulation: %u nodes, window %u (+ own entry), %u steps, loss %.3f, "
           "churn %.4f, seed %llu, dead after %u steps\n", o->nodes, o->window, o->steps,
           o->loss, o->churn, o->seed, o->dead_after);
    printf("  steady state: steps %u..%u (warm-up >= model max age), %llu vectors sampled, "
           "%llu ages, %llu unknown\n", warmup, o->steps - 1, t->rows, t->ages, t->unknown);
    printf("  %-30s %10s %10s %8s\n", "", "simulated", "model", "ratio");
    printf("  %-30s %10.2f %10.2f %8.3f\n", "average age (steps)", avg, avg_m, avg / avg_m);
    printf("  %-30s %10.1f %10.1f %8.3f\n", "max age per vector (steps)", max, max_m,
           max / max_m);
    printf("  largest age seen: %.1f steps\n", t->max_seen / UNITS_PER_STEP);
    printf("  per node per step: %.3f messages, %.1f bytes (%llu datagrams lost)\n",
           (double)t->msgs * per, (double)t->bytes * per, t->dropped);
    printf("  run time %.1f s (%.2f us per node-step)\n", secs, secs * 1e6 * per);
    printf("result gossip nodes=%u window=%u avg_age=%.2f avg_age_model=%.2f max_age=%.1f "
           "max_age_model=%.1f bytes_per_node_step=%.1f\n", o->nodes, o->window, avg, avg_m,
           max, max_m, (double)t->bytes * per);
}

int bench_gossip(int argc, char **argv)
{
    struct sim_opts o = {.nodes = 1000, .window = 16, .steps = 2000, .seed = 1};
    struct mos_gossip_age_model model = {0};
    struct mos_gossip_splitmix sm, obs;
    struct mos_gossip_rng rng = {.next = mos_gossip_splitmix_next, .arg = &sm};
    struct sim_totals t = {0};
    struct sim_node *nodes = NULL;
    struct mos_gossip_item *items = NULL;
    uint32_t *order = NULL, warmup;
    char *arena = MAP_FAILED;
    size_t core_bytes = 0, arena_bytes = 0;
    int have_model, rc = 1;

    if (sim_parse(argc, argv, &o) != 0)
        return 2;
    /* The paper's window counts the own entry too: see the comment at the top. */
    have_model = o.window + 1 < o.nodes && mos_gossip_model(o.nodes, o.window + 1, &model) == 0;
    warmup = have_model ? (uint32_t)ceil(model.max_age) : o.nodes;
    if (o.dead_after == 0)
        o.dead_after = have_model ? (unsigned)ceil(3 * model.max_age) : 3 * o.nodes;
    if (o.steps <= warmup) {
        fprintf(stderr, "mosbench gossip: %u steps leave no steady state after the warm-up of "
                        "%u steps (the model's maximum age); use --steps %u or more\n",
                o.steps, warmup, 2 * warmup);
        return 2;
    }
    sm.state = o.seed;
    obs.state = o.seed ^ 0x5eed0b5e7ull;
    nodes = calloc(o.nodes, sizeof(*nodes));
    order = calloc(o.nodes, sizeof(*order));
    items = calloc(o.window + 1, sizeof(*items));
    if (!nodes || !order || !items)
        goto out;
    /* All cores in one arena on huge pages: each datagram touches ~W random words of the
     * receiver's vector, and with 4 KiB pages nearly every one is also a TLB miss. */
    struct mos_gossip_core_params p = {.n_slots = o.nodes, .window = o.window,
                                       .dead_after = o.dead_after * UNITS_PER_STEP};
    core_bytes = mos_gossip_core_bytes(&p);
    arena_bytes = core_bytes * o.nodes;
    arena = mmap(NULL, arena_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED) {
        fprintf(stderr, "mosbench gossip: cannot map %zu MiB for the vectors\n", arena_bytes >> 20);
        goto out;
    }
    madvise(arena, arena_bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
    for (uint32_t i = 0; i < o.nodes; i++) {
        p.self = i;
        nodes[i].phase = (uint32_t)(mos_gossip_splitmix_next(&sm) % UNITS_PER_STEP);
        order[i] = i;
        if (mos_gossip_core_init(arena + i * core_bytes, core_bytes, &p, nodes[i].phase,
                                 &nodes[i].core) != 0)
            goto out;
    }
    qsort_r(order, o.nodes, sizeof(*order), cmp_phase, nodes);
    /* Sample about 2e5 ages per step (each vector at most once): every vector is seen
     * several times over the run. */
    unsigned rows = o.nodes >= 200000 ? 1 : 200000 / o.nodes;
    rows = rows > o.nodes ? o.nodes : rows;
    uint64_t t0 = mos_clock_now_ns();
    for (uint32_t s = 0; s < o.steps; s++) {
        if (s == warmup)
            t.msgs = t.bytes = t.node_steps = t.dropped = 0;
        if (o.churn > 0)
            sim_churn(nodes, o.nodes, s, o.churn, &sm);
        sim_step(nodes, order, o.nodes, s, &o, &rng, &sm, items, &t);
        /* Presumed-dead marks are also taken lazily when a target is picked; a full walk
         * of each vector every 16 steps (1024 without churn) keeps the alive counts right. */
        unsigned every = o.churn > 0 ? 16 : 1024;
        for (uint32_t i = s % every; i < o.nodes; i += every)
            if (!nodes[i].down_until)
                mos_gossip_core_expire(nodes[i].core, (s + 1) * UNITS_PER_STEP, NULL, NULL);
        if (s >= warmup)
            sim_observe(nodes, o.nodes, s, rows, &obs, &t);
    }
    sim_report(&o, &t, warmup, &model, have_model, (mos_clock_now_ns() - t0) / 1e9);
    rc = 0;
out:
    if (arena != MAP_FAILED)
        munmap(arena, arena_bytes);
    free(nodes);
    free(order);
    free(items);
    return rc;
}
