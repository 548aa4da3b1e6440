/* mosbench gossip: N nodes in one process run the gossip library's own algorithm
 * (mos_gossip_core, the code mosd runs) and the measured ages are compared with the
 * analytical model in the same run.
 *
 * Time: a step is 1000 units (a 1 s interval in ms, as in the library). Each node ticks once
 * per step at its own fixed phase, as independent daemons do; ticks run in phase order in 64
 * batches per step, each batch's datagrams delivered at its end (at most 1/64 step late), so
 * --threads can share a batch: every node has its own random stream, and a seed gives the same
 * result for any number of threads. Ages are real elapsed time, observed at step boundaries. Storage: each node holds a 32-bit
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
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#define UNITS_PER_STEP 1000u
#define CHURN_DOWN_STEPS 10 /* a crashed node restarts, with an empty vector, after this */

#define SIM_MAX_THREADS 16
/* A step's ticks run in batches (in phase order) whose datagrams are delivered at the end of
 * the batch, so that threads can share the work: a datagram is late by 1/64 step at most. */
#define SIM_BATCHES_PER_STEP 64

struct sim_opts {
    unsigned nodes, window, steps, threads;
    double loss, churn;
    unsigned long long seed;
    unsigned dead_after; /* steps; 0: 3x the model's maximum age */
};

struct sim_node {
    struct mos_gossip_core *core;
    uint32_t phase;      /* units after the step boundary at which this node ticks */
    uint32_t down_until; /* step at which a crashed node restarts; 0 = up */
    struct mos_gossip_splitmix rng; /* this node's random stream */
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
        else if (!bad && strcmp(a, "--threads") == 0)
            bad = bench_parse_uint(v, &o->threads) || o->threads < 1 ||
                  o->threads > SIM_MAX_THREADS;
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

/* A barrier that spins briefly, then yields: the threads meet ~130 times per step. */
struct spin_barrier {
    atomic_uint arrived, generation;
    unsigned n;
};

static void barrier_wait(struct spin_barrier *b)
{
    unsigned gen = atomic_load(&b->generation);

    if (b->n == 1)
        return;
    if (atomic_fetch_add(&b->arrived, 1) == b->n - 1) {
        atomic_store(&b->arrived, 0);
        atomic_fetch_add(&b->generation, 1);
        return;
    }
    for (unsigned spins = 0; atomic_load(&b->generation) == gen; spins++)
        if (spins > 200)
            sched_yield();
}

struct sim {
    struct sim_opts o;
    struct sim_node *nodes;
    uint32_t *order, warmup;
    unsigned n, threads, batch, rows;
    /* the batch being run: one message slot per sender */
    struct mos_gossip_item *msg_items;
    uint32_t *msg_target, *msg_len, *msg_now;
    struct sim_totals part[SIM_MAX_THREADS]; /* traffic, per thread */
    struct sim_totals obs;                   /* ages (thread 0) */
    struct mos_gossip_splitmix churn_rng, obs_rng;
    struct spin_barrier bar;
    char *arena;
    size_t arena_bytes;
};

struct sim_thread {
    struct sim *sim;
    unsigned id;
    pthread_t tid;
};

/* Phase A: the batch's senders tick (each with its own random stream, so the result does not
 * depend on the number of threads) and decide losses. */
static void batch_tick(struct sim *sm, unsigned id, uint32_t step, unsigned b0, unsigned len)
{
    struct sim_totals *t = &sm->part[id];

    for (unsigned k = id; k < len; k += sm->threads) {
        uint32_t i = sm->order[b0 + k], target;
        struct sim_node *nd = &sm->nodes[i];
        struct mos_gossip_rng rng = {.next = mos_gossip_splitmix_next, .arg = &nd->rng};
        struct mos_gossip_item *items = sm->msg_items + (size_t)k * (sm->o.window + 1);

        sm->msg_target[k] = MOS_GOSSIP_NO_SLOT;
        if (nd->down_until)
            continue;
        uint32_t now = step * UNITS_PER_STEP + nd->phase;
        size_t n_items = mos_gossip_core_tick(nd->core, now, &rng, &target, items);
        t->node_steps++;
        if (target == MOS_GOSSIP_NO_SLOT)
            continue;
        t->msgs++;
        t->bytes += mos_gossip_wire_size(n_items);
        if ((sm->o.loss > 0 && unit_rand(&nd->rng) < sm->o.loss) ||
            sm->nodes[target].down_until) {
            t->dropped++;
            continue;
        }
        sm->msg_target[k] = target;
        sm->msg_len[k] = (uint32_t)n_items;
        sm->msg_now[k] = now;
    }
}

/* Phase B: deliveries, in sending order; a receiver belongs to one thread. */
static void batch_deliver(struct sim *sm, unsigned id, unsigned len)
{
    for (unsigned k = 0; k < len; k++) {
        uint32_t target = sm->msg_target[k];
        if (target == MOS_GOSSIP_NO_SLOT || target % sm->threads != id)
            continue;
        mos_gossip_core_receive(sm->nodes[target].core, sm->msg_now[k],
                                sm->msg_items + (size_t)k * (sm->o.window + 1), sm->msg_len[k],
                                NULL);
    }
}

/* Between steps (thread 0 alone): presumed-dead walks, observation, churn. */
static void step_end(struct sim *sm, uint32_t s)
{
    /* Dead marks are also taken lazily when a target is picked; a full walk of each vector
     * every 16 steps (1024 without churn) keeps the alive counts right. */
    unsigned every = sm->o.churn > 0 ? 16 : 1024;
    for (uint32_t i = s % every; i < sm->n; i += every)
        if (!sm->nodes[i].down_until)
            mos_gossip_core_expire(sm->nodes[i].core, (s + 1) * UNITS_PER_STEP, NULL, NULL);
    if (s >= sm->warmup)
        sim_observe(sm->nodes, sm->n, s, sm->rows, &sm->obs_rng, &sm->obs);
    if (s + 1 == sm->warmup)
        memset(sm->part, 0, sizeof(sm->part));
    if (sm->o.churn > 0)
        sim_churn(sm->nodes, sm->n, s + 1, sm->o.churn, &sm->churn_rng);
}

static void *sim_thread_main(void *arg)
{
    struct sim_thread *th = arg;
    struct sim *sm = th->sim;

    for (uint32_t s = 0; s < sm->o.steps; s++) {
        for (unsigned b0 = 0; b0 < sm->n; b0 += sm->batch) {
            unsigned len = sm->n - b0 < sm->batch ? sm->n - b0 : sm->batch;
            batch_tick(sm, th->id, s, b0, len);
            barrier_wait(&sm->bar);
            batch_deliver(sm, th->id, len);
            barrier_wait(&sm->bar);
        }
        if (th->id == 0)
            step_end(sm, s);
        barrier_wait(&sm->bar);
    }
    return NULL;
}

static void sim_report(const struct sim *sm, const struct sim_totals *t,
                       const struct mos_gossip_age_model *model, int have_model, double secs)
{
    const struct sim_opts *o = &sm->o;
    uint32_t warmup = sm->warmup;
    double avg = t->ages ? t->age_sum / t->ages / UNITS_PER_STEP : NAN;
    double max = t->rows ? t->max_sum / t->rows / UNITS_PER_STEP : NAN;
    double per = t->node_steps ? 1.0 / (double)t->node_steps : 0;
    double avg_m = have_model ? model->avg_age : NAN, max_m = have_model ? model->max_age : NAN;

    printf("gossip simulation: %u nodes, window %u (+ own entry), %u steps, loss %.3f, "
           "churn %.4f, seed %llu, dead after %u steps\n", o->nodes, o->window, o->steps,
           o->loss, o->churn, o->seed, o->dead_after);
    printf("  ticks at fixed random phases, delivered at the end of batches of %u ticks "
           "(1/%d step)\n", sm->batch, SIM_BATCHES_PER_STEP);
    printf("  steady state: steps %u..%u (warm-up >= model max age), %llu vectors sampled, "
           "%llu ages, %llu unknown\n", warmup, o->steps - 1, t->rows, t->ages, t->unknown);
    printf("  %-30s %10s %10s %8s\n", "", "simulated", "model", "ratio");
    printf("  %-30s %10.2f %10.2f %8.3f\n", "average age (steps)", avg, avg_m, avg / avg_m);
    printf("  %-30s %10.1f %10.1f %8.3f\n", "max age per vector (steps)", max, max_m,
           max / max_m);
    printf("  largest age seen: %.1f steps\n", t->max_seen / UNITS_PER_STEP);
    printf("  per node per step: %.3f messages, %.1f bytes (%llu datagrams lost)\n",
           (double)t->msgs * per, (double)t->bytes * per, t->dropped);
    printf("  run time %.1f s for %u steps on %u threads (%.2f us per node-step)\n", secs,
           o->steps, sm->threads, secs * 1e6 / ((double)o->steps * o->nodes));
    printf("result gossip nodes=%u window=%u avg_age=%.2f avg_age_model=%.2f max_age=%.1f "
           "max_age_model=%.1f bytes_per_node_step=%.1f\n", o->nodes, o->window, avg, avg_m,
           max, max_m, (double)t->bytes * per);
}

static int sim_alloc(struct sim *sm)
{
    struct mos_gossip_core_params p = {.n_slots = sm->n, .window = sm->o.window,
                                       .dead_after = sm->o.dead_after * UNITS_PER_STEP};
    size_t core_bytes = mos_gossip_core_bytes(&p), arena_bytes = core_bytes * sm->n;
    struct mos_gossip_splitmix seeds = {.state = sm->o.seed};
    char *arena;

    sm->nodes = calloc(sm->n, sizeof(*sm->nodes));
    sm->order = calloc(sm->n, sizeof(*sm->order));
    sm->msg_items = calloc((size_t)sm->batch * (sm->o.window + 1), sizeof(*sm->msg_items));
    sm->msg_target = calloc(sm->batch, sizeof(*sm->msg_target));
    sm->msg_len = calloc(sm->batch, sizeof(*sm->msg_len));
    sm->msg_now = calloc(sm->batch, sizeof(*sm->msg_now));
    if (!sm->nodes || !sm->order || !sm->msg_items || !sm->msg_target || !sm->msg_len ||
        !sm->msg_now)
        return -1;
    /* All cores in one arena on huge pages: each datagram touches ~W random words of the
     * receiver's vector, and with 4 KiB pages nearly every one is also a TLB miss. */
    arena = mmap(NULL, arena_bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED) {
        fprintf(stderr, "mosbench gossip: cannot map %zu MiB for the vectors\n", arena_bytes >> 20);
        return -1;
    }
    madvise(arena, arena_bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
    sm->arena = arena;
    sm->arena_bytes = arena_bytes;
    for (uint32_t i = 0; i < sm->n; i++) {
        p.self = i;
        sm->nodes[i].rng.state = mos_gossip_splitmix_next(&seeds);
        sm->nodes[i].phase = (uint32_t)(mos_gossip_splitmix_next(&seeds) % UNITS_PER_STEP);
        sm->order[i] = i;
        if (mos_gossip_core_init(arena + i * core_bytes, core_bytes, &p, sm->nodes[i].phase,
                                 &sm->nodes[i].core) != 0)
            return -1;
    }
    qsort_r(sm->order, sm->n, sizeof(*sm->order), cmp_phase, sm->nodes);
    sm->churn_rng.state = mos_gossip_splitmix_next(&seeds);
    sm->obs_rng.state = mos_gossip_splitmix_next(&seeds);
    return 0;
}

static void sim_free(struct sim *sm)
{
    if (sm->arena)
        munmap(sm->arena, sm->arena_bytes);
    free(sm->nodes);
    free(sm->order);
    free(sm->msg_items);
    free(sm->msg_target);
    free(sm->msg_len);
    free(sm->msg_now);
}

static int sim_run(struct sim *sm)
{
    struct sim_thread th[SIM_MAX_THREADS];
    unsigned started = 1;

    sm->bar.n = sm->threads;
    for (unsigned t = 0; t < sm->threads; t++)
        th[t] = (struct sim_thread){.sim = sm, .id = t};
    for (; started < sm->threads; started++)
        if (pthread_create(&th[started].tid, NULL, sim_thread_main, &th[started]) != 0) {
            fprintf(stderr, "mosbench gossip: cannot start thread %u\n", started);
            return -1; /* only before any barrier is passed: the others wait forever */
        }
    sim_thread_main(&th[0]);
    for (unsigned t = 1; t < sm->threads; t++)
        pthread_join(th[t].tid, NULL);
    return 0;
}

int bench_gossip(int argc, char **argv)
{
    struct sim sm = {.o = {.nodes = 1000, .window = 16, .steps = 2000, .seed = 1}};
    struct mos_gossip_age_model model = {0};
    struct sim_totals t;
    int have_model, rc = 1;

    /* One thread by default: merging is bound by memory latency and the threads meet ~130
     * times a step, so a second thread gained little even on an idle 2-core machine (116 s vs
     * 130 s for 10,000 nodes x 2,000 steps) and lost on a busy one (141 s vs 130 s). */
    sm.o.threads = 1;
    if (sim_parse(argc, argv, &sm.o) != 0)
        return 2;
    /* The paper's window counts the own entry too: see the comment at the top. */
    have_model = sm.o.window + 1 < sm.o.nodes &&
                 mos_gossip_model(sm.o.nodes, sm.o.window + 1, &model) == 0;
    sm.warmup = have_model ? (uint32_t)ceil(model.max_age) : sm.o.nodes;
    if (sm.o.dead_after == 0)
        sm.o.dead_after = have_model ? (unsigned)ceil(3 * model.max_age) : 3 * sm.o.nodes;
    if (sm.o.steps <= sm.warmup) {
        fprintf(stderr, "mosbench gossip: %u steps leave no steady state after the warm-up of "
                        "%u steps (the model's maximum age); use --steps %u or more\n",
                sm.o.steps, sm.warmup, 2 * sm.warmup);
        return 2;
    }
    sm.n = sm.o.nodes;
    sm.threads = sm.o.threads;
    sm.batch = (sm.n + SIM_BATCHES_PER_STEP - 1) / SIM_BATCHES_PER_STEP;
    /* Sample about 2e5 ages per step (each vector at most once): every vector is seen
     * several times over the run. */
    sm.rows = sm.n >= 200000 ? 1 : 200000 / sm.n;
    sm.rows = sm.rows > sm.n ? sm.n : sm.rows;
    if (sim_alloc(&sm) != 0) {
        fprintf(stderr, "mosbench gossip: out of memory for %u nodes\n", sm.n);
        goto out;
    }
    uint64_t t0 = mos_clock_now_ns();
    if (sim_run(&sm) != 0)
        goto out;
    double secs = (mos_clock_now_ns() - t0) / 1e9;
    t = sm.obs;
    for (unsigned i = 0; i < sm.threads; i++) {
        t.msgs += sm.part[i].msgs;
        t.bytes += sm.part[i].bytes;
        t.node_steps += sm.part[i].node_steps;
        t.dropped += sm.part[i].dropped;
    }
    sim_report(&sm, &t, &model, have_model, secs);
    rc = 0;
out:
    sim_free(&sm);
    return rc;
}
