/* The simulator (mos/gossip_sim.h): thousands of cores of the algorithm in one process.
 *
 * Storage: each node holds a 32-bit stamp per node. 16-bit whole-step ages would halve that,
 * but ages must be finer than a step: counted in whole steps each hop adds half a step on
 * average (measured: +8% over the model at N = 300, W = 8). */
#include "gossip_core.h"
#include "gossip_wire.h"
#include "mos/gossip_sim.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define UNITS_PER_STEP 1000u

/* The age histogram for the tail: quarter steps up to 2048 steps, the last bin open. */
#define TAIL_BINS 8192u
#define TAIL_BIN_UNITS (UNITS_PER_STEP / 4)

struct sim_node {
    struct mos_gossip_core *core;
    uint32_t phase;                 /* units after the step boundary at which this node ticks */
    uint32_t down_until;            /* step at which a crashed node restarts; 0 = up */
    struct mos_gossip_splitmix rng; /* this node's random stream */
};

struct sim_totals {
    double age_sum, max_sum, max_seen;
    uint64_t ages, rows, unknown, msgs, bytes, node_steps, dropped;
};

/* A barrier that spins briefly, then yields: the threads meet ~130 times per step. */
struct spin_barrier {
    atomic_uint arrived, generation;
    unsigned n;
};

struct sim {
    struct mos_gossip_sim_params o;
    struct sim_node *nodes;
    uint32_t *order;
    unsigned n, batch, rows;
    /* the batch being run: one message slot per sender */
    struct mos_gossip_item *msg_items;
    uint32_t *msg_target, *msg_len, *msg_now;
    uint32_t *mine; /* per thread, batch entries: the messages it delivers */
    struct sim_totals part[MOS_GOSSIP_SIM_MAX_THREADS]; /* traffic, per thread */
    struct sim_totals obs;                              /* ages (thread 0) */
    uint64_t tail_hist[TAIL_BINS];                      /* ages in quarter steps (thread 0) */
    struct mos_gossip_splitmix churn_rng, obs_rng;
    struct spin_barrier bar;
    atomic_int go; /* 0: threads wait for the others to start; 1: run; -1: give up */
    char *arena;
    size_t arena_bytes;
};

struct sim_thread {
    struct sim *sim;
    unsigned id;
    pthread_t tid;
};

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
                        unsigned n_rows, struct mos_gossip_splitmix *r, struct sim_totals *t,
                        uint64_t *hist)
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
            hist[age / TAIL_BIN_UNITS < TAIL_BINS ? age / TAIL_BIN_UNITS : TAIL_BINS - 1]++;
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
            nodes[i].down_until = step + MOS_GOSSIP_SIM_DOWN_STEPS;
        }
    }
}

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

/* Phase A: the batch's senders tick (each with its own random stream, so the result does not
 * depend on the number of threads) and decide losses. */
static void batch_tick(struct sim *sm, unsigned id, uint32_t step, unsigned b0, unsigned len)
{
    struct sim_totals *t = &sm->part[id];

    /* Every core is cold: its header two senders ahead, its candidates one ahead. */
    unsigned step_k = sm->o.threads;
    for (unsigned k = id; k < len && k < id + 2 * step_k; k += step_k)
        mos_gossip_core_prefetch_header(sm->nodes[sm->order[b0 + k]].core);
    for (unsigned k = id; k < len; k += step_k) {
        if (k + 2 * step_k < len)
            mos_gossip_core_prefetch_header(sm->nodes[sm->order[b0 + k + 2 * step_k]].core);
        if (k + step_k < len)
            mos_gossip_core_prefetch_tick(sm->nodes[sm->order[b0 + k + step_k]].core);
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
static void batch_deliver(struct sim *sm, unsigned id, unsigned len, uint32_t *mine)
{
    unsigned n = 0;

    for (unsigned k = 0; k < len; k++) {
        uint32_t target = sm->msg_target[k];
        if (target != MOS_GOSSIP_NO_SLOT && target % sm->o.threads == id)
            mine[n++] = k;
    }
    /* Each receiver's vector is cold: its header is fetched two messages ahead, the words the
     * next message touches one ahead, so their misses overlap this message's merge. */
    for (unsigned j = 0; j < n && j < 2; j++)
        mos_gossip_core_prefetch_header(sm->nodes[sm->msg_target[mine[j]]].core);
    for (unsigned j = 0; j < n; j++) {
        uint32_t k = mine[j];
        if (j + 2 < n)
            mos_gossip_core_prefetch_header(sm->nodes[sm->msg_target[mine[j + 2]]].core);
        if (j + 1 < n) {
            uint32_t k1 = mine[j + 1];
            mos_gossip_core_prefetch_receive(sm->nodes[sm->msg_target[k1]].core,
                                             sm->msg_items + (size_t)k1 * (sm->o.window + 1),
                                             sm->msg_len[k1]);
        }
        mos_gossip_core_receive(sm->nodes[sm->msg_target[k]].core, sm->msg_now[k],
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
    if (s >= sm->o.warmup)
        sim_observe(sm->nodes, sm->n, s, sm->rows, &sm->obs_rng, &sm->obs, sm->tail_hist);
    if (s + 1 == sm->o.warmup)
        memset(sm->part, 0, sizeof(sm->part));
    if (sm->o.churn > 0)
        sim_churn(sm->nodes, sm->n, s + 1, sm->o.churn, &sm->churn_rng);
}

static void *sim_thread_main(void *arg)
{
    struct sim_thread *th = arg;
    struct sim *sm = th->sim;
    int go;

    while ((go = atomic_load(&sm->go)) == 0)
        sched_yield();
    if (go < 0)
        return NULL;
    uint32_t *mine = sm->mine + (size_t)th->id * sm->batch; /* this thread's receivers */

    for (uint32_t s = 0; s < sm->o.steps; s++) {
        for (unsigned b0 = 0; b0 < sm->n; b0 += sm->batch) {
            unsigned len = sm->n - b0 < sm->batch ? sm->n - b0 : sm->batch;
            batch_tick(sm, th->id, s, b0, len);
            barrier_wait(&sm->bar);
            batch_deliver(sm, th->id, len, mine);
            barrier_wait(&sm->bar);
        }
        if (th->id == 0)
            step_end(sm, s);
        barrier_wait(&sm->bar);
    }
    return NULL;
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
    sm->mine = calloc((size_t)sm->o.threads * sm->batch, sizeof(*sm->mine));
    if (!sm->nodes || !sm->order || !sm->msg_items || !sm->msg_target || !sm->msg_len ||
        !sm->msg_now || !sm->mine)
        return -ENOMEM;
    /* All cores in one arena on huge pages: each datagram touches ~W random words of the
     * receiver's vector, and with 4 KiB pages nearly every one is also a TLB miss. */
    arena = mmap(NULL, arena_bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED)
        return -ENOMEM;
    madvise(arena, arena_bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
    sm->arena = arena;
    sm->arena_bytes = arena_bytes;
    for (uint32_t i = 0; i < sm->n; i++) {
        int rc;
        p.self = i;
        sm->nodes[i].rng.state = mos_gossip_splitmix_next(&seeds);
        sm->nodes[i].phase = (uint32_t)(mos_gossip_splitmix_next(&seeds) % UNITS_PER_STEP);
        sm->order[i] = i;
        rc = mos_gossip_core_init(arena + i * core_bytes, core_bytes, &p, sm->nodes[i].phase,
                                  &sm->nodes[i].core);
        if (rc != 0)
            return rc;
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
    free(sm->mine);
}

/* Threads 1.. start first and wait at the gate: if one cannot start, the others are let go
 * before any of them has touched the shared state. */
static int sim_threads_run(struct sim *sm)
{
    struct sim_thread th[MOS_GOSSIP_SIM_MAX_THREADS];
    unsigned started = 1;
    int rc = 0;

    sm->bar.n = sm->o.threads;
    for (unsigned t = 0; t < sm->o.threads; t++)
        th[t] = (struct sim_thread){.sim = sm, .id = t};
    for (; started < sm->o.threads; started++) {
        int err = pthread_create(&th[started].tid, NULL, sim_thread_main, &th[started]);
        if (err != 0) {
            rc = -err;
            break;
        }
    }
    atomic_store(&sm->go, rc == 0 ? 1 : -1);
    if (rc == 0)
        sim_thread_main(&th[0]);
    for (unsigned t = 1; t < started; t++)
        pthread_join(th[t].tid, NULL);
    return rc;
}

static int sim_params_valid(const struct mos_gossip_sim_params *p)
{
    return p->nodes >= 2 && p->nodes <= MOS_GOSSIP_SIM_MAX_NODES && p->window >= 1 &&
           p->window < p->nodes && p->window <= MOS_GOSSIP_MAX_WINDOW && p->steps > p->warmup &&
           p->dead_after >= 1 && p->threads <= MOS_GOSSIP_SIM_MAX_THREADS &&
           p->loss >= 0.0 && p->loss <= 1.0 && p->churn >= 0.0 && p->churn <= 1.0 &&
           p->dead_after <= UINT32_MAX / UNITS_PER_STEP;
}

/* The age (steps) that no more than MOS_GOSSIP_SIM_TAIL of the sampled ages exceed. */
static double sim_tail_age(const struct sim *sm)
{
    uint64_t above = 0, allowed = (uint64_t)(MOS_GOSSIP_SIM_TAIL * (double)sm->obs.ages);

    for (unsigned b = TAIL_BINS; b-- > 0;) {
        if (above + sm->tail_hist[b] > allowed)
            return (double)(b + 1) * TAIL_BIN_UNITS / UNITS_PER_STEP;
        above += sm->tail_hist[b];
    }
    return 0;
}

static void sim_result(const struct sim *sm, struct mos_gossip_sim_result *r)
{
    const struct sim_totals *t = &sm->obs;

    *r = (struct mos_gossip_sim_result){
        .avg_age = t->ages ? t->age_sum / (double)t->ages / UNITS_PER_STEP : NAN,
        .max_age = t->rows ? t->max_sum / (double)t->rows / UNITS_PER_STEP : NAN,
        .max_seen = t->max_seen / UNITS_PER_STEP,
        .tail_age = sim_tail_age(sm),
        .rows = t->rows, .ages = t->ages, .unknown = t->unknown,
        .batch = sm->batch,
    };
    for (unsigned i = 0; i < sm->o.threads; i++) {
        r->datagrams += sm->part[i].msgs;
        r->bytes += sm->part[i].bytes;
        r->node_steps += sm->part[i].node_steps;
        r->lost += sm->part[i].dropped;
    }
}

int mos_gossip_sim_run(const struct mos_gossip_sim_params *params,
                       struct mos_gossip_sim_result *result)
{
    struct sim *sm;
    int rc;

    if (!sim_params_valid(params))
        return -EINVAL;
    /* Large (per-thread totals, barrier): on the heap, not on a caller's stack. */
    if (!(sm = calloc(1, sizeof(*sm))))
        return -ENOMEM;
    sm->o = *params;
    if (sm->o.threads == 0)
        sm->o.threads = 1;
    sm->n = sm->o.nodes;
    sm->batch = (sm->n + MOS_GOSSIP_SIM_BATCHES_PER_STEP - 1) / MOS_GOSSIP_SIM_BATCHES_PER_STEP;
    /* Sample about 2e5 ages per step (each vector at most once): every vector is seen
     * several times over the run. */
    sm->rows = sm->n >= 200000 ? 1 : 200000 / sm->n;
    sm->rows = sm->rows > sm->n ? sm->n : sm->rows;
    rc = sim_alloc(sm);
    if (rc == 0)
        rc = sim_threads_run(sm);
    if (rc == 0)
        sim_result(sm, result);
    sim_free(sm);
    free(sm);
    return rc;
}
