/* mosbench placement: the placement simulator.
 *
 * (a) Job streams on a heterogeneous cluster, as in the TPDS 2000 study: Poisson arrivals at
 *     --load-percent of the cluster's CPU capacity (80), heavy-tailed run times (Pareto, alpha
 *     1.5, 10 s to 3000 s of reference CPU), memory demands (exponential, mean --mem-mib, 512
 *     by default, at most 8 GiB). Nodes differ in CPUs (1-8), speed (0.5-2.0) and memory
 *     (2-16 GiB), drawn independently. Each node shares its CPUs among its jobs (processor
 *     sharing); a node whose jobs need more memory than it has pages, and its jobs run at half
 *     speed times the overcommit ratio. The four assignment policies place a job on arrival and
 *     never move it: opportunity cost (mos_placement_assign, the code mosd uses), greedy
 *     least-loaded (lowest runnable jobs per unit of CPU capacity), round-robin and random. Two
 *     more add the balancer (mos_balance_decide on every node each second, a migration freezing
 *     the job for 100 ms + 1 us per page): after opportunity-cost assignment, and after a start
 *     on a random home node (what mosrun does: a job starts where its user is).
 *     Slowdown = time in the system / run time alone on a speed-1.0 CPU.
 * (b) --ipc PATTERN: inter-node bytes of the IPC-aware rank mapping (mos_rank_map_compute)
 *     against OpenMPI's by-slot and by-node orders on a large instance, and against the exact
 *     optimum (branch and bound) on a small one. */
#include "bench.h"

#include "mos/placement.h"
#include "mos/placement_map.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024 * 1024)

/* ---- a small deterministic RNG (splitmix64), so a seed gives the same run everywhere ------ */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(void) /* (0, 1) */
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static unsigned rng_below(unsigned n)
{
    return (unsigned)(rng_unit() * n) % n;
}

/* ---- (a) job streams --------------------------------------------------------------------- */

struct sim_node {
    unsigned ncpus;
    double speed;
    double mem;      /* bytes */
    double mem_used; /* bytes of its jobs */
    unsigned jobs;
};

struct sim_job {
    double arrival, work, mem;
    double left;     /* reference CPU-seconds still to do */
    int node;        /* -1: not arrived yet */
    int done;
    double here_since;   /* when it arrived on its node */
    double frozen_until; /* migrating: no progress before this time */
};

enum policy {
    POL_OPPORTUNITY,
    POL_GREEDY,
    POL_ROUND_ROBIN,
    POL_RANDOM,
    POL_BALANCED, /* opportunity cost on arrival, then mos_balance_decide on every node each second */
    POL_HOME_BALANCED, /* started on a random home node, as mosrun does, then the balancer */
    POL_COUNT
};
static const char *const policy_names[POL_COUNT] = {
    "opportunity-cost", "greedy-least-loaded", "round-robin", "random",
    "opportunity-cost+balancer", "home+balancer"};

/* The migration model of the balancer policy: 100 ms fixed, 1 us per 4 KiB page (4 GB/s). */
static const struct mos_migration_cost sim_migration = {.fixed_ms = 100, .per_page_us = 1.0};

struct sim_setup {
    unsigned n_nodes, n_jobs;
    double load;
    double mem_mean; /* bytes */
    struct sim_node *nodes;
    struct sim_job *jobs;
};

static void sim_make(struct sim_setup *s)
{
    static const unsigned cpus[] = {1, 2, 4, 8};
    static const double mems[] = {2, 4, 8, 16};
    double capacity = 0, mean_work = 0, t = 0;

    for (unsigned i = 0; i < s->n_nodes; i++) {
        struct sim_node *n = &s->nodes[i];
        n->ncpus = cpus[rng_below(4)];
        n->speed = 0.5 + 1.5 * rng_unit();
        n->mem = mems[rng_below(4)] * GIB;
        capacity += n->ncpus * n->speed;
    }
    for (unsigned j = 0; j < s->n_jobs; j++) {
        struct sim_job *job = &s->jobs[j];
        double w = 10.0 / pow(rng_unit(), 1.0 / 1.5); /* Pareto, alpha 1.5, from 10 s */
        job->work = w > 3000 ? 3000 : w;
        job->mem = fmin(-log(rng_unit()) * s->mem_mean, 8 * GIB);
        mean_work += job->work / s->n_jobs;
    }
    /* Arrival rate for the offered load: load x capacity / mean work. */
    double rate = s->load * capacity / mean_work;
    for (unsigned j = 0; j < s->n_jobs; j++) {
        t += -log(rng_unit()) / rate;
        s->jobs[j].arrival = t;
    }
}

/* Rate (reference CPU-seconds per second) of each job on a node. */
static double node_rate(const struct sim_node *n)
{
    if (n->jobs == 0)
        return 0;
    double r = n->speed * (n->jobs > n->ncpus ? (double)n->ncpus / n->jobs : 1.0);
    if (n->mem_used > n->mem)
        r *= 0.5 * n->mem / n->mem_used; /* paging: half the time waiting, worse with overcommit */
    return r;
}

/* What the gossip vector would say about every node (fresh: age 0). */
static void sim_node_states(const struct sim_setup *s, struct mos_node_state *st)
{
    for (unsigned i = 0; i < s->n_nodes; i++) {
        const struct sim_node *n = &s->nodes[i];
        st[i] = (struct mos_node_state){
            .id = i, .ncpus = n->ncpus, .speed = n->speed, .load = n->jobs,
            .mem_total = (uint64_t)n->mem,
            .mem_free = n->mem_used < n->mem ? (uint64_t)(n->mem - n->mem_used) : 0,
            .flags = MOS_NODE_ACCEPTING};
    }
}

/* One balancing step on every node, as mosd runs it each second: the node's running jobs and
 * the vector go to mos_balance_decide; a chosen job moves and is frozen for the predicted
 * migration time. Returns the number of migrations. */
static unsigned sim_balance_tick(struct sim_setup *s, double now, unsigned n_arrived,
                                 struct mos_job_info *infos, unsigned *index)
{
    struct mos_node_state st[256];
    struct mos_balance_params bp;
    unsigned moves = 0;

    mos_balance_params_default(&bp);
    for (unsigned i = 0; i < s->n_nodes; i++) {
        struct mos_balance_decision d;
        unsigned k = 0;
        for (unsigned j = 0; j < n_arrived; j++) {
            struct sim_job *job = &s->jobs[j];
            if (job->done || job->node != (int)i || job->frozen_until > now)
                continue;
            infos[k] = (struct mos_job_info){.id = j, .age_s = job->work - job->left,
                                             .residence_s = now - job->here_since,
                                             .pages = (uint64_t)(job->mem / 4096), .cpu = 1.0,
                                             .remaining_s = -1};
            index[k++] = j;
        }
        if (k == 0)
            continue;
        sim_node_states(s, st);
        st[i].flags |= MOS_NODE_SELF;
        if (mos_balance_decide(st, s->n_nodes, i, infos, k, &sim_migration, &bp, &d) != 0 ||
            d.job_index < 0)
            continue;
        struct sim_job *job = &s->jobs[index[d.job_index]];
        struct sim_node *from = &s->nodes[i], *to = &s->nodes[d.node_index];
        from->jobs--;
        from->mem_used -= job->mem;
        to->jobs++;
        to->mem_used += job->mem;
        job->node = d.node_index;
        job->here_since = now;
        job->frozen_until = now + d.migrate_s;
        moves++;
    }
    return moves;
}

static int pick_node(enum policy p, const struct sim_setup *s, const struct sim_job *job,
                     unsigned *rr)
{
    int best = -1;

    switch (p) {
    case POL_ROUND_ROBIN: return (int)((*rr)++ % s->n_nodes);
    case POL_RANDOM:
    case POL_HOME_BALANCED: return (int)rng_below(s->n_nodes);
    case POL_GREEDY: {
        double best_load = HUGE_VAL;
        for (unsigned i = 0; i < s->n_nodes; i++) {
            double l = (s->nodes[i].jobs + 1.0) / (s->nodes[i].ncpus * s->nodes[i].speed);
            if (l < best_load) {
                best_load = l;
                best = (int)i;
            }
        }
        return best;
    }
    case POL_OPPORTUNITY:
    case POL_BALANCED: {
        struct mos_node_state st[256];
        struct mos_job_demand d = {.cpu = 1.0, .mem_bytes = (uint64_t)job->mem};
        sim_node_states(s, st);
        /* The balancer's own setting (cpu_cap 1: a process per CPU is full; past that the
         * cost keeps growing). */
        struct mos_balance_params bp;
        mos_balance_params_default(&bp);
        best = mos_placement_assign(s->n_nodes, bp.cpu_cap, st, s->n_nodes, &d, 0);
        if (best < 0) { /* fits nowhere: the node with the most free memory */
            double most = -HUGE_VAL;
            for (unsigned i = 0; i < s->n_nodes; i++)
                if (s->nodes[i].mem - s->nodes[i].mem_used > most) {
                    most = s->nodes[i].mem - s->nodes[i].mem_used;
                    best = (int)i;
                }
        }
        return best;
    }
    default: return 0;
    }
}

static double job_rate(const struct sim_setup *s, const struct sim_job *job, double now)
{
    return job->frozen_until > now ? 0 : node_rate(&s->nodes[job->node]);
}

/* Event-driven processor-sharing simulation of one policy. Events: arrivals, completions,
 * the end of a migration freeze, and (balancer policy) a balancing step every second. */
static void sim_run(enum policy p, struct sim_setup *s, double *mean_sd, double *max_sd,
                    unsigned *migrations)
{
    unsigned next = 0, finished = 0, rr = 0;
    double now = 0, sum = 0, worst = 0, next_tick = 1.0;
    struct mos_job_info *infos = calloc(s->n_jobs, sizeof(*infos));
    unsigned *index = calloc(s->n_jobs, sizeof(*index));

    *migrations = 0;
    for (unsigned i = 0; i < s->n_nodes; i++)
        s->nodes[i].jobs = 0, s->nodes[i].mem_used = 0;
    for (unsigned j = 0; j < s->n_jobs; j++)
        s->jobs[j].left = s->jobs[j].work, s->jobs[j].node = -1, s->jobs[j].done = 0,
        s->jobs[j].frozen_until = 0;
    while (finished < s->n_jobs && infos && index) {
        /* The next event: an arrival, a balancing step, a thaw, or the earliest completion at
         * current rates (-1: arrival, -2: tick, -3: thaw). */
        double t_next = next < s->n_jobs ? s->jobs[next].arrival : HUGE_VAL;
        int who = -1;
        if ((p == POL_BALANCED || p == POL_HOME_BALANCED) && next_tick < t_next) {
            t_next = next_tick;
            who = -2;
        }
        for (unsigned j = 0; j < next; j++) {
            struct sim_job *job = &s->jobs[j];
            if (job->done)
                continue;
            double r = job_rate(s, job, now);
            double t = r > 0 ? now + job->left / r : job->frozen_until;
            if (t < t_next) {
                t_next = t;
                who = r > 0 ? (int)j : -3;
            }
        }
        for (unsigned j = 0; j < next; j++) {
            struct sim_job *job = &s->jobs[j];
            if (!job->done)
                job->left -= (t_next - now) * job_rate(s, job, now);
        }
        now = t_next;
        if (who == -3)
            continue;
        if (who == -2) {
            *migrations += sim_balance_tick(s, now, next, infos, index);
            next_tick = now + 1.0;
        } else if (who >= 0) {
            struct sim_job *job = &s->jobs[who];
            struct sim_node *n = &s->nodes[job->node];
            job->done = 1;
            n->jobs--;
            n->mem_used -= job->mem;
            finished++;
            double sd = (now - job->arrival) / job->work;
            sum += sd;
            worst = sd > worst ? sd : worst;
        } else {
            struct sim_job *job = &s->jobs[next++];
            job->node = pick_node(p, s, job, &rr);
            job->here_since = now;
            s->nodes[job->node].jobs++;
            s->nodes[job->node].mem_used += job->mem;
        }
    }
    free(infos);
    free(index);
    *mean_sd = sum / s->n_jobs;
    *max_sd = worst;
}

static int bench_streams(unsigned n_nodes, unsigned n_jobs, unsigned seed, double load,
                         uint64_t mem_bytes)
{
    struct sim_setup s = {.n_nodes = n_nodes, .n_jobs = n_jobs, .load = load,
                          .mem_mean = (double)mem_bytes};
    double mean[POL_COUNT], max[POL_COUNT];
    unsigned migrations[POL_COUNT];

    s.nodes = calloc(n_nodes, sizeof(*s.nodes));
    s.jobs = calloc(n_jobs, sizeof(*s.jobs));
    if (!s.nodes || !s.jobs) {
        free(s.nodes);
        free(s.jobs);
        return 1;
    }
    rng_state = seed;
    sim_make(&s);
    printf("cluster: %u nodes, %u jobs, offered load %.2f, mean memory %.0f MiB, seed %u\n",
           n_nodes, n_jobs, load, mem_bytes / 1048576.0, seed);
    for (int p = 0; p < POL_COUNT; p++) {
        rng_state = (uint64_t)seed * 7919 + (uint64_t)p; /* random policy's own stream */
        sim_run((enum policy)p, &s, &mean[p], &max[p], &migrations[p]);
    }
    printf("balancer (100 ms + 1 us/page a migration): opportunity-cost+balancer %u migrations, "
           "x%.3f of greedy's mean slowdown; home+balancer %u migrations, x%.3f of random's\n",
           migrations[POL_BALANCED], mean[POL_BALANCED] / mean[POL_GREEDY],
           migrations[POL_HOME_BALANCED], mean[POL_HOME_BALANCED] / mean[POL_RANDOM]);
    printf("opportunity-cost vs round-robin: mean slowdown x%.3f; vs greedy: x%.3f\n",
           mean[POL_OPPORTUNITY] / mean[POL_ROUND_ROBIN], mean[POL_OPPORTUNITY] / mean[POL_GREEDY]);
    for (int p = 0; p < POL_COUNT; p++)
        printf("result placement policy=%s mean_slowdown=%.3f max_slowdown=%.2f\n",
               policy_names[p], mean[p], max[p]);
    free(s.nodes);
    free(s.jobs);
    return 0;
}

/* ---- (b) IPC-aware rank mapping ---------------------------------------------------------- */

static void add_pair(struct mos_comm_matrix *m, unsigned a, unsigned b, uint64_t bytes)
{
    m->bytes[(size_t)a * m->n + b] += bytes;
    m->bytes[(size_t)b * m->n + a] += bytes;
}

/* Build pattern `name` for n ranks (grids as near-cubic as n allows). 0 or -1 (unknown). */
static int make_pattern(const char *name, unsigned n, struct mos_comm_matrix *m)
{
    if (mos_comm_matrix_init(m, n) != 0)
        return -1;
    if (strcmp(name, "ring") == 0) {
        for (unsigned r = 0; r < n; r++)
            add_pair(m, r, (r + 1) % n, 1 << 20);
    } else if (strcmp(name, "stencil2d") == 0) {
        unsigned px = (unsigned)sqrt((double)n);
        while (n % px)
            px--;
        unsigned py = n / px;
        for (unsigned y = 0; y < py; y++)
            for (unsigned x = 0; x < px; x++) {
                unsigned r = y * px + x;
                if (x + 1 < px)
                    add_pair(m, r, r + 1, 1 << 20);
                if (y + 1 < py)
                    add_pair(m, r, r + px, 1 << 20);
            }
    } else if (strcmp(name, "stencil3d") == 0) {
        unsigned px = (unsigned)cbrt((double)n + 0.5);
        while (n % px)
            px--;
        unsigned rest = n / px, py = (unsigned)sqrt((double)rest);
        while (rest % py)
            py--;
        unsigned pz = rest / py;
        for (unsigned z = 0; z < pz; z++)
            for (unsigned y = 0; y < py; y++)
                for (unsigned x = 0; x < px; x++) {
                    unsigned r = (z * py + y) * px + x;
                    if (x + 1 < px)
                        add_pair(m, r, r + 1, 1 << 20);
                    if (y + 1 < py)
                        add_pair(m, r, r + px, 1 << 20);
                    if (z + 1 < pz)
                        add_pair(m, r, r + px * py, 1 << 20);
                }
    } else if (strcmp(name, "alltoall-blocks") == 0) {
        /* Groups of 4 that exchange all-to-all, numbered round-robin (rank r in group r mod
         * n/4), as when a code splits MPI_COMM_WORLD by color = rank mod k; a little global
         * traffic on top. */
        unsigned groups = n / 4 ? n / 4 : 1;
        for (unsigned a = 0; a < n; a++)
            for (unsigned b = a + 1; b < n; b++)
                add_pair(m, a, b, a % groups == b % groups ? 1 << 20 : 1 << 10);
    } else if (strcmp(name, "random-sparse") == 0) {
        for (unsigned r = 0; r < n; r++)
            for (int k = 0; k < 3; k++) {
                unsigned peer = rng_below(n);
                if (peer != r)
                    add_pair(m, r, peer, (1 + rng_below(16)) << 16);
            }
    } else {
        mos_comm_matrix_free(m);
        return -1;
    }
    return 0;
}

static int make_hosts(unsigned n_hosts, unsigned slots, struct mos_host_list *h)
{
    h->hosts = calloc(n_hosts, sizeof(*h->hosts));
    if (!h->hosts)
        return -1;
    h->n = n_hosts;
    for (unsigned i = 0; i < n_hosts; i++) {
        snprintf(h->hosts[i].name, sizeof(h->hosts[i].name), "node%u", i + 1);
        h->hosts[i].slots = slots;
        h->hosts[i].speed = 1.0;
    }
    return 0;
}

static uint64_t mapped_bytes(const struct mos_comm_matrix *m, const struct mos_host_list *h,
                             enum mos_map_policy p)
{
    struct mos_rank_map map;
    uint64_t b = UINT64_MAX;

    if (mos_rank_map_compute(m, h, p, &map) == 0) {
        b = mos_rank_map_internode_bytes(m, &map);
        mos_rank_map_free(&map);
    }
    return b;
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : (a ? HUGE_VAL : 1.0);
}

static int bench_ipc(const char *pattern, unsigned n_hosts, unsigned slots, unsigned seed)
{
    /* Large: n_hosts x slots. Small: 4 hosts x 4 slots, where branch and bound finds the
     * optimum. */
    struct mos_comm_matrix m, ms;
    struct mos_host_list h, hs;
    struct mos_rank_map opt;

    rng_state = seed;
    if (make_hosts(n_hosts, slots, &h) != 0 || make_hosts(4, 4, &hs) != 0)
        return 1;
    if (make_pattern(pattern, n_hosts * slots, &m) != 0 || make_pattern(pattern, 16, &ms) != 0) {
        fprintf(stderr, "mosbench placement: unknown pattern '%s' (ring, stencil2d, stencil3d, "
                        "alltoall-blocks, random-sparse)\n", pattern);
        mos_host_list_free(&h);
        mos_host_list_free(&hs);
        return 2;
    }
    uint64_t ipc = mapped_bytes(&m, &h, MOS_MAP_IPC), byslot = mapped_bytes(&m, &h, MOS_MAP_BYSLOT);
    uint64_t bynode = mapped_bytes(&m, &h, MOS_MAP_BYNODE);
    uint64_t ipc_s = mapped_bytes(&ms, &hs, MOS_MAP_IPC), opt_s = 0;
    uint64_t byslot_s = mapped_bytes(&ms, &hs, MOS_MAP_BYSLOT);
    if (mos_rank_map_optimum(&ms, &hs, &opt) == 0) {
        opt_s = mos_rank_map_internode_bytes(&ms, &opt);
        mos_rank_map_free(&opt);
    }
    printf("%s, %u ranks on %u hosts x %u slots: inter-node bytes ipc %llu, by-slot %llu, "
           "by-node %llu\n", pattern, m.n, n_hosts, slots, (unsigned long long)ipc,
           (unsigned long long)byslot, (unsigned long long)bynode);
    printf("%s, 16 ranks on 4 hosts x 4 slots: ipc %llu, by-slot %llu, exact optimum %llu\n",
           pattern, (unsigned long long)ipc_s, (unsigned long long)byslot_s,
           (unsigned long long)opt_s);
    printf("result ipc pattern=%s internode_bytes=%llu vs_byslot=%.3f vs_bynode=%.3f "
           "vs_optimum=%.3f\n", pattern, (unsigned long long)ipc, ratio(ipc, byslot),
           ratio(ipc, bynode), ratio(ipc_s, opt_s));
    mos_comm_matrix_free(&m);
    mos_comm_matrix_free(&ms);
    mos_host_list_free(&h);
    mos_host_list_free(&hs);
    return 0;
}

int bench_placement(int argc, char **argv)
{
    unsigned n_jobs = 2000, n_nodes = 0, seed = 1, load_pct = 80, slots = 0;
    uint64_t mem_bytes = 512ull << 20;
    const char *ipc = NULL;

    for (int i = 0; i < argc; i++) {
        unsigned *target = NULL;
        if (i + 1 < argc && strcmp(argv[i], "--ipc") == 0) {
            ipc = argv[++i];
            continue;
        }
        /* A plain number counts MiB, as --mem-mib always has; 1G or 1536K say their unit. */
        if (i + 1 < argc && strcmp(argv[i], "--mem-mib") == 0) {
            if (bench_parse_size("placement", argv[i], argv[i + 1], 1u << 20, 0, 64ull << 30,
                                 &mem_bytes) != 0)
                return 2;
            i++;
            continue;
        }
        if (strcmp(argv[i], "--jobs") == 0)
            target = &n_jobs;
        else if (strcmp(argv[i], "--nodes") == 0)
            target = &n_nodes;
        else if (strcmp(argv[i], "--seed") == 0)
            target = &seed;
        else if (strcmp(argv[i], "--load-percent") == 0)
            target = &load_pct;
        else if (strcmp(argv[i], "--slots") == 0)
            target = &slots;
        if (!target || i + 1 >= argc || bench_parse_uint(argv[i + 1], target) != 0) {
            fprintf(stderr, "mosbench placement: bad argument '%s'\n", argv[i]);
            return 2;
        }
        i++;
    }
    if (ipc) {
        /* Defaults: 16 hosts x 16 slots; stencil3d 8 hosts x 64 slots, an 8x8x8 grid. */
        int cubic = strcmp(ipc, "stencil3d") == 0;
        if (n_nodes == 0)
            n_nodes = cubic ? 8 : 16;
        if (slots == 0)
            slots = cubic ? 64 : 16;
        if (n_nodes < 2 || n_nodes > 256 || slots < 1 || slots > 256 ||
            n_nodes * slots > MOS_COMM_MAX_RANKS) {
            fprintf(stderr, "mosbench placement: --ipc needs 2 <= nodes <= 256, 1 <= slots <= "
                            "256, nodes x slots <= %d\n", MOS_COMM_MAX_RANKS);
            return 2;
        }
        return bench_ipc(ipc, n_nodes, slots, seed);
    }
    if (n_nodes == 0)
        n_nodes = 16;
    if (n_nodes < 2 || n_nodes > 256 || n_jobs < 1 || n_jobs > 1000000 || load_pct < 1 ||
        load_pct > 200) {
        fprintf(stderr, "mosbench placement: need 2 <= nodes <= 256, 1 <= jobs <= 1000000, "
                        "1 <= load-percent <= 200\n");
        return 2;
    }
    return bench_streams(n_nodes, n_jobs, seed, load_pct / 100.0, mem_bytes);
}
