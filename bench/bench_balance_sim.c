/* mosbench balance --sim: the balancer's decision code (placement: mos_balance_decide,
 * mos_balance_count_moves, mos_balance_admit) over N simulated nodes, without a lab.
 *
 * Nodes of one CPU at speed 1 (--fast K: the first K at speed 2). J jobs of W CPU-seconds start
 * at time 0, all on node 0 (--start one, what the lab bench does) or each on a random node
 * (--start random). Every second each node looks at its view and may order up to 4 moves, as
 * mosd does: its own load exact, every other node's load as it was `age` seconds ago, the age
 * drawn for each entry and look uniformly in 0..2A (A, --gossip-age, defaults to log2 N: the
 * order of the expected age of a gossip entry, Amar, Barak, Drezner, Okun); each node counts
 * its own recent moves at both ends as mosd's view does. The target admits a move on its own
 * exact load and the sender's word, as mosd does, and a sender refused by a node does not try
 * it again until it has news of it younger than the refusal (mosd_gossip_refusing). A move takes no time (the lab's migrations
 * take tens of ms, against a second between looks). Processor sharing on each node.
 *
 * Prints the makespan against the ideal (total work over total CPU, and never less than one
 * job's time on the fastest CPU), moves, moves per job, ping-pongs (a job arriving where it had
 * been) and refusals. */
#include "bench.h"

#include "mos/placement.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MOVES_PER_ROUND 4
#define SIM_RECENT 64      /* moves remembered per node */
#define SIM_RECENT_S 30    /* for this long, as mosd */
#define SIM_LIMIT_FACTOR 50 /* give up past this many ideals */

static uint64_t sim_rng;

static double sim_unit(void) /* [0, 1), splitmix64 */
{
    uint64_t z = (sim_rng += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

struct sim_move {
    int from, to;
    unsigned job;
    double at;
    double load_after; /* out: the sender's load once the job had left */
};

struct sim_node {
    double speed;
    unsigned jobs;
    struct sim_move recent[SIM_RECENT];
    unsigned n_recent;
};

struct sim_job {
    unsigned node;
    double left, arrived; /* arrived < 0: never moved */
    int came_from;
    double came_load;
    int done;
};

struct sim {
    unsigned n, n_jobs, age_max, hist_len;
    struct sim_node *nodes;
    struct sim_job *jobs;
    double *hist;           /* hist[(t % hist_len) * n + k]: node k's load at second t */
    uint8_t *been;          /* been[j * n + k]: job j has run on node k */
    float *refused_at;      /* refused_at[i * n + k]: when k last refused a move from i (-1) */
    unsigned moves, pingpong, refused;
};

static void remember(struct sim_node *node, const struct sim_move *m)
{
    node->recent[node->n_recent++ % SIM_RECENT] = *m;
}

/* Node i's view at second t: others as gossip brought them, itself exact, its moves counted. */
static void sim_view(const struct sim *s, unsigned i, unsigned t, struct mos_node_state *v)
{
    struct mos_balance_move moves[SIM_RECENT];
    size_t n_moves = 0;

    for (unsigned k = 0; k < s->n; k++) {
        unsigned age = (unsigned)(sim_unit() * (s->age_max + 1));
        if (age > t)
            age = t;
        v[k] = (struct mos_node_state){.id = k, .ncpus = 1, .speed = s->nodes[k].speed,
                                       .load = s->hist[((t - age) % s->hist_len) * s->n + k],
                                       .flags = MOS_NODE_ACCEPTING, .age = age};
    }
    /* as mosd: a node that refused us is no target until news of it newer than the refusal */
    for (unsigned k = 0; k < s->n; k++) {
        float r = s->refused_at[(size_t)i * s->n + k];
        if (r >= 0 && (double)t - r < v[k].age + 1)
            v[k].flags &= ~(uint32_t)MOS_NODE_ACCEPTING;
    }
    v[i].load = s->nodes[i].jobs;
    v[i].age = 0;
    v[i].flags |= MOS_NODE_SELF;
    for (unsigned r = 0; r < SIM_RECENT && r < s->nodes[i].n_recent; r++) {
        const struct sim_move *m = &s->nodes[i].recent[r];
        if (t - m->at <= SIM_RECENT_S)
            moves[n_moves++] = (struct mos_balance_move){.from = m->from, .to = m->to, .cpu = 1,
                                                         .since_s = t - m->at};
    }
    mos_balance_count_moves(v, s->n, i, 1.0, moves, n_moves);
}

/* The target's own check, as mosd's admission: its exact load, the sender's word. */
static int sim_admit(struct sim *s, unsigned to, unsigned from, unsigned job, double t,
                     const struct mos_balance_params *p)
{
    const struct sim_node *target = &s->nodes[to];
    struct mos_node_state me = {.ncpus = 1, .speed = target->speed, .load = target->jobs};
    struct mos_node_state src = {.ncpus = 1, .speed = s->nodes[from].speed,
                                 .load = s->nodes[from].jobs - 1.0};
    double left_since = -1, left_load = 0;
    char why[200];

    for (unsigned r = 0; r < SIM_RECENT && r < target->n_recent; r++) {
        const struct sim_move *m = &target->recent[r];
        if (m->from == (int)to && m->job == job && t - m->at <= SIM_RECENT_S &&
            (left_since < 0 || t - m->at < left_since)) {
            left_since = t - m->at;
            left_load = m->load_after;
        }
    }
    return mos_balance_admit(&me, &src, 1.0, p, left_since, left_load, why, sizeof(why));
}

static void sim_move(struct sim *s, unsigned j, unsigned to, double t)
{
    struct sim_job *job = &s->jobs[j];
    unsigned from = job->node;

    s->nodes[from].jobs--;
    s->nodes[to].jobs++;
    struct sim_move m = {.from = (int)from, .to = (int)to, .job = j, .at = t,
                         .load_after = s->nodes[from].jobs};
    remember(&s->nodes[from], &m);
    remember(&s->nodes[to], &m);
    s->moves++;
    s->pingpong += s->been[(size_t)j * s->n + to];
    s->been[(size_t)j * s->n + to] = 1;
    job->node = to;
    job->arrived = t;
    job->came_from = (int)from;
    job->came_load = s->nodes[from].jobs;
}

/* Node i's balancing round at second t. */
static void sim_round(struct sim *s, unsigned i, unsigned t, const struct mos_balance_params *p,
                      struct mos_node_state *v, struct mos_job_info *infos, unsigned *index)
{
    static const struct mos_migration_cost model = {.fixed_ms = 20, .per_page_us = 1};
    unsigned k = 0;

    for (unsigned j = 0; j < s->n_jobs; j++) {
        const struct sim_job *job = &s->jobs[j];
        if (job->done || job->node != i)
            continue;
        infos[k] = (struct mos_job_info){
            .id = j, .age_s = t, .residence_s = job->arrived < 0 ? 1e9 : t - job->arrived,
            .pages = 256, .cpu = 1.0, .remaining_s = -1};
        if (job->came_from >= 0 && t - job->arrived <= SIM_RECENT_S) {
            infos[k].flags |= MOS_JOB_CAME;
            infos[k].from_node = (uint32_t)job->came_from;
            infos[k].from_load = job->came_load;
        }
        index[k++] = j;
    }
    if (k == 0)
        return;
    sim_view(s, i, t, v);
    for (int round = 0; round < SIM_MOVES_PER_ROUND && k > 0; round++) {
        struct mos_balance_decision d;
        if (mos_balance_decide(v, s->n, i, infos, k, &model, p, &d) != 0 || d.job_index < 0)
            return;
        unsigned j = index[d.job_index], to = (unsigned)d.node_index;
        if (sim_admit(s, to, i, j, t, p)) {
            sim_move(s, j, to, t);
            v[i].load -= 1;
            v[to].load += 1;
        } else {
            s->refused++;
            s->refused_at[(size_t)i * s->n + to] = (float)t;
            v[to].flags &= ~(uint32_t)MOS_NODE_ACCEPTING;
        }
        infos[d.job_index] = infos[k - 1];
        index[d.job_index] = index[k - 1];
        k--;
    }
}

/* One second of processor sharing from t; returns the last completion time in it, or 0. */
static double sim_progress(struct sim *s, double t, unsigned *finished)
{
    double last = 0;

    for (unsigned j = 0; j < s->n_jobs; j++) {
        struct sim_job *job = &s->jobs[j];
        if (job->done)
            continue;
        const struct sim_node *node = &s->nodes[job->node];
        double rate = node->speed * (node->jobs > 1 ? 1.0 / node->jobs : 1.0);
        if (job->left <= rate) {
            double end = t + job->left / rate;
            last = end > last ? end : last;
            job->done = 1;
            (*finished)++;
        }
        job->left -= rate;
    }
    for (unsigned j = 0; j < s->n_jobs; j++)
        if (s->jobs[j].done && s->jobs[j].left <= 0 && s->jobs[j].left > -1e17) {
            s->nodes[s->jobs[j].node].jobs--;
            s->jobs[j].left = -1e18; /* counted off its node once */
        }
    return last;
}

static int sim_alloc(struct sim *s)
{
    s->nodes = calloc(s->n, sizeof(*s->nodes));
    s->jobs = calloc(s->n_jobs, sizeof(*s->jobs));
    s->hist = calloc((size_t)s->hist_len * s->n, sizeof(*s->hist));
    s->been = calloc((size_t)s->n_jobs * s->n, 1);
    s->refused_at = malloc((size_t)s->n * s->n * sizeof(*s->refused_at));
    if (!s->nodes || !s->jobs || !s->hist || !s->been || !s->refused_at)
        return -1;
    for (size_t k = 0; k < (size_t)s->n * s->n; k++)
        s->refused_at[k] = -1;
    return 0;
}

static void sim_free(struct sim *s)
{
    free(s->nodes);
    free(s->jobs);
    free(s->hist);
    free(s->been);
    free(s->refused_at);
}

static int sim_run(struct sim *s, unsigned fast, int start_random, double work)
{
    struct mos_node_state *v = calloc(s->n, sizeof(*v));
    struct mos_job_info *infos = calloc(s->n_jobs, sizeof(*infos));
    unsigned *index = calloc(s->n_jobs, sizeof(*index)), finished = 0;
    struct mos_balance_params p;
    double capacity = 0, makespan = 0;

    if (!v || !infos || !index || sim_alloc(s) != 0) {
        fprintf(stderr, "mosbench balance --sim: out of memory\n");
        free(v), free(infos), free(index), sim_free(s);
        return 1;
    }
    mos_balance_params_default(&p);
    p.min_residence_s = 3.0; /* mosd's default min_residence_ms */
    for (unsigned i = 0; i < s->n; i++) {
        s->nodes[i].speed = i < fast ? 2.0 : 1.0;
        capacity += s->nodes[i].speed;
    }
    for (unsigned j = 0; j < s->n_jobs; j++) {
        unsigned home = start_random ? (unsigned)(sim_unit() * s->n) % s->n : 0;
        s->jobs[j] = (struct sim_job){.node = home, .left = work, .arrived = -1,
                                      .came_from = -1};
        s->nodes[home].jobs++;
        s->been[(size_t)j * s->n + home] = 1;
    }
    double ideal = work * s->n_jobs / capacity;
    ideal = ideal > work / (fast ? 2.0 : 1.0) ? ideal : work / (fast ? 2.0 : 1.0);
    for (unsigned t = 0; finished < s->n_jobs && t < SIM_LIMIT_FACTOR * ideal + 10; t++) {
        for (unsigned k = 0; k < s->n; k++)
            s->hist[(t % s->hist_len) * s->n + k] = s->nodes[k].jobs;
        for (unsigned i = 0; i < s->n; i++)
            sim_round(s, i, t, &p, v, infos, index);
        double last = sim_progress(s, t, &finished);
        makespan = last > makespan ? last : makespan;
    }
    int ok = finished == s->n_jobs;
    printf("%u nodes (%u at speed 2), %u jobs of %.0f CPU-s starting on %s; gossip ages 0..%u s\n",
           s->n, fast, s->n_jobs, work, start_random ? "random nodes" : "node 0", s->age_max);
    printf("makespan %.1f s against the ideal %.1f s (x%.3f); %u moves (%.2f per job), "
           "%u ping-pongs, %u refused by their targets%s\n",
           makespan, ideal, makespan / ideal, s->moves, (double)s->moves / s->n_jobs,
           s->pingpong, s->refused, ok ? "" : "; NOT ALL FINISHED");
    printf("result balance-sim nodes=%u jobs=%u makespan_s=%.2f ideal_s=%.2f ratio=%.3f "
           "moves_per_job=%.2f moves=%u pingpong=%u\n",
           s->n, s->n_jobs, makespan, ideal, makespan / ideal, (double)s->moves / s->n_jobs,
           s->moves, s->pingpong);
    free(v), free(infos), free(index), sim_free(s);
    return ok ? 0 : 1;
}

int bench_balance_sim(int argc, char **argv)
{
    unsigned n = 4, n_jobs = 0, fast = 0, age = 0, seed = 1, work = 20, have_age = 0;
    int start_random = 0;

    for (int i = 0; i < argc; i++) {
        unsigned *target = NULL;
        if (strcmp(argv[i], "--sim") == 0)
            continue;
        if (i + 1 < argc && strcmp(argv[i], "--start") == 0 &&
            (strcmp(argv[i + 1], "one") == 0 || strcmp(argv[i + 1], "random") == 0)) {
            start_random = strcmp(argv[++i], "random") == 0;
            continue;
        }
        if (strcmp(argv[i], "--nodes") == 0)
            target = &n;
        else if (strcmp(argv[i], "--jobs") == 0)
            target = &n_jobs;
        else if (strcmp(argv[i], "--fast") == 0)
            target = &fast;
        else if (strcmp(argv[i], "--gossip-age") == 0)
            target = &age, have_age = 1;
        else if (strcmp(argv[i], "--seed") == 0)
            target = &seed;
        else if (strcmp(argv[i], "--work") == 0)
            target = &work;
        if (!target || i + 1 >= argc || bench_parse_uint(argv[i + 1], target) != 0) {
            fprintf(stderr, "mosbench balance --sim: bad argument '%s'\n", argv[i]);
            return 2;
        }
        i++;
    }
    if (n < 2 || n > 65536 || fast > n || work < 1 || (n_jobs == 0 && n > 1u << 20)) {
        fprintf(stderr, "mosbench balance --sim: needs 2 to 65536 nodes, --fast <= nodes, "
                        "--work >= 1\n");
        return 2;
    }
    struct sim s = {.n = n, .n_jobs = n_jobs ? n_jobs : 2 * n};
    if ((uint64_t)s.n_jobs * n > (1ull << 31) || (uint64_t)n * n > (1ull << 28)) {
        fprintf(stderr, "mosbench balance --sim: jobs x nodes over 2^31 or nodes over 16384\n");
        return 2;
    }
    s.age_max = have_age ? 2 * age : 2 * (unsigned)ceil(log2((double)n));
    s.hist_len = s.age_max + 2;
    sim_rng = seed;
    return sim_run(&s, fast, start_random, (double)work);
}
