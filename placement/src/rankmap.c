/* Mapping MPI ranks to hosts and slots.
 *
 * The IPC-aware mapping follows Keren and Barak (TPDS 2003): a host's cost is the sum of
 * n^u over its resources, and the network link of each host is a resource next to its CPU, so a
 * rank placed away from the ranks it talks to raises the link utilization of both hosts. Ranks
 * are placed one at a time, each where its marginal cost is least, in "graph growing" order
 * (next: the rank with the most traffic to ranks already placed). The per-host counts this
 * gives are the load-balance decision; then pairwise swaps between hosts (Kernighan-Lin style,
 * counts unchanged) cut inter-node bytes further. Swap refinement is also run from three other
 * starts with the same counts (hosts filled in growth order; in rank order; recursive bisection
 * with Fiduccia-Mattheyses passes, bisect.c) and the best result is kept: the greedy is good at
 * counts, less so at shapes (a 2D stencil grown rank by rank fragments, and pairwise swaps
 * cannot turn row strips into blocks). */
#include "mos/placement_map.h"
#include "mos/placement.h"

#include "mos/log.h"
#include "mos/status.h"

#include "bisect.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COMP "placement"
#define SWAP_PASSES 40

void mos_rank_map_free(struct mos_rank_map *map)
{
    free(map->host);
    free(map->slot);
    map->host = map->slot = NULL;
    map->n = 0;
}

static int map_alloc(struct mos_rank_map *map, unsigned n)
{
    map->host = calloc(n, sizeof(*map->host));
    map->slot = calloc(n, sizeof(*map->slot));
    if (!map->host || !map->slot) {
        mos_rank_map_free(map);
        return -ENOMEM;
    }
    map->n = n;
    return 0;
}

/* Slots in rank order within each host. 0 or -ENOMEM. */
static int map_number_slots(struct mos_rank_map *map, size_t n_hosts)
{
    unsigned *next = calloc(n_hosts, sizeof(*next));

    if (!next)
        return -ENOMEM;
    for (unsigned r = 0; r < map->n; r++)
        map->slot[r] = next[map->host[r]]++;
    free(next);
    return 0;
}

uint64_t mos_rank_map_internode_bytes(const struct mos_comm_matrix *m,
                                      const struct mos_rank_map *map)
{
    uint64_t total = 0;

    for (unsigned a = 0; a < m->n; a++)
        for (unsigned b = 0; b < m->n; b++)
            if (map->host[a] != map->host[b])
                total += m->bytes[(size_t)a * m->n + b];
    return total;
}

static double pair_w(const struct mos_comm_matrix *m, unsigned a, unsigned b)
{
    return (double)m->bytes[(size_t)a * m->n + b] + (double)m->bytes[(size_t)b * m->n + a];
}

/* ---- by-slot and by-node ----------------------------------------------------------------- */

static void map_byslot(const struct mos_host_list *hosts, struct mos_rank_map *map)
{
    size_t h = 0;
    unsigned used = 0;

    for (unsigned r = 0; r < map->n; r++) {
        while (used == hosts->hosts[h].slots) {
            h++;
            used = 0;
        }
        map->host[r] = (unsigned)h;
        used++;
    }
}

static int map_bynode(const struct mos_host_list *hosts, struct mos_rank_map *map)
{
    unsigned *used = calloc(hosts->n, sizeof(*used));
    size_t h = 0;

    if (!used)
        return -ENOMEM;
    for (unsigned r = 0; r < map->n; r++) {
        while (used[h] == hosts->hosts[h].slots)
            h = (h + 1) % hosts->n;
        map->host[r] = (unsigned)h;
        used[h]++;
        h = (h + 1) % hosts->n;
    }
    free(used);
    return 0;
}

/* ---- IPC-aware opportunity cost ---------------------------------------------------------- */

struct ipc_state {
    const struct mos_comm_matrix *m;
    const struct mos_host_list *hosts;
    unsigned n, H;
    double base;      /* n of the cost function: number of hosts, at least 2 */
    double link_cap;  /* bytes that count as a full link: a fair share of all traffic */
    double *to_host;  /* n x H: bytes between rank r and the ranks placed on host h */
    double *ext;      /* per host: bytes crossing its link */
    unsigned *count;  /* per host: ranks placed */
    int *placed;      /* per rank: host or -1 */
    double *attached; /* per rank: bytes to ranks already placed */
};

static double cpu_util(const struct ipc_state *s, unsigned h, unsigned count)
{
    const struct mos_host *host = &s->hosts->hosts[h];

    return (double)count / ((double)host->slots * host->speed);
}

/* Marginal opportunity cost of placing rank r on host h: its CPU term plus the link terms of
 * h and of every host holding a peer of r. */
static double ipc_marginal(const struct ipc_state *s, unsigned r, unsigned h)
{
    /* One CPU term per host, unlike mos_placement_job_cost's one per CPU: ranks never exceed
     * the slots (u <= 1, a core each), so this term only orders hosts (faster and emptier
     * first) and must not outweigh the links; per-slot terms would spread 8 ranks of a ring
     * over three 4-slot hosts instead of filling two. */
    double cpu = pow(s->base, cpu_util(s, h, s->count[h] + 1)) -
                 pow(s->base, cpu_util(s, h, s->count[h]));
    double out_of_h = 0, link = 0;
    const double *row = &s->to_host[(size_t)r * s->H];

    for (unsigned g = 0; g < s->H; g++) {
        if (g == h || row[g] == 0)
            continue;
        out_of_h += row[g];
        link += pow(s->base, (s->ext[g] + row[g]) / s->link_cap) -
                pow(s->base, s->ext[g] / s->link_cap);
    }
    link += pow(s->base, (s->ext[h] + out_of_h) / s->link_cap) -
            pow(s->base, s->ext[h] / s->link_cap);
    return cpu + link;
}

static void ipc_place(struct ipc_state *s, unsigned r, unsigned h)
{
    const double *row = &s->to_host[(size_t)r * s->H];

    for (unsigned g = 0; g < s->H; g++)
        if (g != h) {
            s->ext[g] += row[g];
            s->ext[h] += row[g];
        }
    s->placed[r] = (int)h;
    s->count[h]++;
    for (unsigned q = 0; q < s->n; q++) {
        double w = pair_w(s->m, q, r);
        s->to_host[(size_t)q * s->H + h] += w;
        s->attached[q] += w;
    }
}

/* Next rank in graph-growing order: most traffic to placed ranks, then most traffic overall,
 * then lowest number. */
static unsigned ipc_next_rank(const struct ipc_state *s, const double *total)
{
    unsigned best = 0;
    double best_link = -1, best_total = -1;

    for (unsigned r = 0; r < s->n; r++) {
        if (s->placed[r] >= 0)
            continue;
        double link = s->attached[r];
        if (link > best_link || (link == best_link && total[r] > best_total)) {
            best = r;
            best_link = link;
            best_total = total[r];
        }
    }
    return best;
}

static int ipc_greedy(const struct mos_comm_matrix *m, const struct mos_host_list *hosts,
                      unsigned *host_of, unsigned *order)
{
    struct ipc_state s = {.m = m, .hosts = hosts, .n = m->n, .H = (unsigned)hosts->n};
    double *total = calloc(m->n, sizeof(double)), all = 0;
    int rc = -ENOMEM;

    s.base = hosts->n < 2 ? 2.0 : (double)hosts->n;
    s.to_host = calloc((size_t)s.n * s.H, sizeof(double));
    s.ext = calloc(s.H, sizeof(double));
    s.count = calloc(s.H, sizeof(unsigned));
    s.placed = malloc(s.n * sizeof(int));
    s.attached = calloc(s.n, sizeof(double));
    if (!total || !s.to_host || !s.ext || !s.count || !s.placed || !s.attached)
        goto free_all;
    for (unsigned a = 0; a < s.n; a++) {
        s.placed[a] = -1;
        for (unsigned b = 0; b < s.n; b++)
            if (a != b)
                total[a] += pair_w(m, a, b);
        all += total[a];
    }
    /* all counts each pair twice in each direction; a host's fair share of link traffic */
    s.link_cap = all > 0 ? all / (double)s.H : 1.0;
    for (unsigned k = 0; k < s.n; k++) {
        unsigned r = ipc_next_rank(&s, total), best = 0;
        double best_cost = HUGE_VAL;
        for (unsigned h = 0; h < s.H; h++) {
            if (s.count[h] >= hosts->hosts[h].slots)
                continue;
            double c = ipc_marginal(&s, r, h);
            if (c < best_cost) {
                best_cost = c;
                best = h;
            }
        }
        ipc_place(&s, r, best);
        order[k] = r;
    }
    for (unsigned r = 0; r < s.n; r++)
        host_of[r] = (unsigned)s.placed[r];
    rc = 0;
free_all:
    free(total);
    free(s.to_host);
    free(s.ext);
    free(s.count);
    free(s.placed);
    free(s.attached);
    return rc;
}

/* Pairwise swaps between hosts while any lowers inter-node bytes; counts stay as they are. */
static int refine_swaps(const struct mos_comm_matrix *m, unsigned H, unsigned *host_of)
{
    unsigned n = m->n;
    double *to = calloc((size_t)n * H, sizeof(double));

    if (!to)
        return -ENOMEM;
    for (unsigned a = 0; a < n; a++)
        for (unsigned b = 0; b < n; b++)
            if (a != b)
                to[(size_t)a * H + host_of[b]] += pair_w(m, a, b);
    for (int pass = 0; pass < SWAP_PASSES; pass++) {
        int improved = 0;
        for (unsigned a = 0; a < n; a++) {
            for (unsigned b = a + 1; b < n; b++) {
                unsigned A = host_of[a], B = host_of[b];
                if (A == B)
                    continue;
                double gain = to[(size_t)a * H + B] - to[(size_t)a * H + A] +
                              to[(size_t)b * H + A] - to[(size_t)b * H + B] - 2 * pair_w(m, a, b);
                if (gain <= 1e-9)
                    continue;
                for (unsigned q = 0; q < n; q++) {
                    double wa = q == a ? 0 : pair_w(m, q, a), wb = q == b ? 0 : pair_w(m, q, b);
                    to[(size_t)q * H + A] += wb - wa;
                    to[(size_t)q * H + B] += wa - wb;
                }
                host_of[a] = B;
                host_of[b] = A;
                improved = 1;
            }
        }
        if (!improved)
            break;
    }
    free(to);
    return 0;
}

/* Fill hosts (in index order) to the given counts, taking ranks in `order`. */
static void fill_in_order(unsigned n, unsigned H, const unsigned *count, const unsigned *order,
                          unsigned *host_of)
{
    unsigned h = 0, used = 0;

    for (unsigned k = 0; k < n; k++) {
        while (h < H && used == count[h]) {
            h++;
            used = 0;
        }
        host_of[order[k]] = h;
        used++;
    }
}

static int map_ipc(const struct mos_comm_matrix *m, const struct mos_host_list *hosts,
                   struct mos_rank_map *map)
{
    unsigned n = m->n, H = (unsigned)hosts->n;
    unsigned *order = malloc(n * sizeof(*order)), *count = calloc(H, sizeof(*count));
    unsigned *cand = malloc(n * sizeof(*cand)), *ident = malloc(n * sizeof(*ident));
    int rc = -ENOMEM;

    if (!order || !count || !cand || !ident)
        goto free_all;
    rc = ipc_greedy(m, hosts, map->host, order);
    if (rc != 0)
        goto free_all;
    for (unsigned r = 0; r < n; r++) {
        count[map->host[r]]++;
        ident[r] = r;
    }
    rc = refine_swaps(m, H, map->host);
    uint64_t best = mos_rank_map_internode_bytes(m, map);
    for (int start = 0; start < 3 && rc == 0; start++) {
        struct mos_rank_map alt = {.n = n, .host = cand};
        if (start == 2)
            rc = bisect_map(m, H, count, cand);
        else
            fill_in_order(n, H, count, start == 0 ? order : ident, cand);
        if (rc != 0)
            break;
        rc = refine_swaps(m, H, cand);
        uint64_t bytes = mos_rank_map_internode_bytes(m, &alt);
        if (rc == 0 && bytes < best) {
            best = bytes;
            memcpy(map->host, cand, n * sizeof(*cand));
        }
    }
free_all:
    free(order);
    free(count);
    free(cand);
    free(ident);
    return rc;
}

int mos_rank_map_compute(const struct mos_comm_matrix *m, const struct mos_host_list *hosts,
                         enum mos_map_policy policy, struct mos_rank_map *out)
{
    struct mos_rank_map map = {0};
    uint64_t slots = 0;
    int rc;

    for (size_t h = 0; h < hosts->n; h++)
        slots += hosts->hosts[h].slots;
    if (slots < m->n) {
        mos_err(COMP, "%u ranks but the hosts have only %llu slots", m->n,
                (unsigned long long)slots);
        return MOS_E_LIMIT;
    }
    rc = map_alloc(&map, m->n);
    if (rc != 0)
        return rc;
    switch (policy) {
    case MOS_MAP_BYSLOT: map_byslot(hosts, &map); break;
    case MOS_MAP_BYNODE: rc = map_bynode(hosts, &map); break;
    case MOS_MAP_IPC: rc = map_ipc(m, hosts, &map); break;
    default: rc = -EINVAL;
    }
    if (rc == 0)
        rc = map_number_slots(&map, hosts->n);
    if (rc != 0) {
        mos_rank_map_free(&map);
        return rc;
    }
    *out = map;
    return 0;
}

/* ---- exact optimum (branch and bound) ---------------------------------------------------- */

struct bnb {
    const struct mos_comm_matrix *m;
    const struct mos_host_list *hosts;
    unsigned n, H;
    unsigned *order, *cur, *best, *used;
    uint64_t best_cost;
};

static void bnb_search(struct bnb *b, unsigned k, uint64_t cost)
{
    if (cost >= b->best_cost)
        return;
    if (k == b->n) {
        b->best_cost = cost;
        memcpy(b->best, b->cur, b->n * sizeof(*b->cur));
        return;
    }
    unsigned r = b->order[k];
    for (unsigned h = 0; h < b->H; h++) {
        if (b->used[h] == b->hosts->hosts[h].slots)
            continue;
        /* Empty hosts alike in slots and speed are interchangeable: try only the first. */
        int dup = 0;
        if (b->used[h] == 0)
            for (unsigned g = 0; g < h && !dup; g++)
                dup = b->used[g] == 0 && b->hosts->hosts[g].slots == b->hosts->hosts[h].slots &&
                      b->hosts->hosts[g].speed == b->hosts->hosts[h].speed;
        if (dup)
            continue;
        uint64_t add = 0;
        for (unsigned j = 0; j < k; j++)
            if (b->cur[b->order[j]] != h)
                add += mos_comm_matrix_pair(b->m, r, b->order[j]);
        b->cur[r] = h;
        b->used[h]++;
        bnb_search(b, k + 1, cost + add);
        b->used[h]--;
    }
}

int mos_rank_map_optimum(const struct mos_comm_matrix *m, const struct mos_host_list *hosts,
                         struct mos_rank_map *out)
{
    struct mos_rank_map start = {0};
    struct bnb b = {.m = m, .hosts = hosts, .n = m->n, .H = (unsigned)hosts->n};
    int rc;

    if (m->n > 20)
        return -E2BIG;
    /* The heuristic's result is the first bound, so the search only explores better ones. */
    rc = mos_rank_map_compute(m, hosts, MOS_MAP_IPC, &start);
    if (rc != 0)
        return rc;
    b.best_cost = mos_rank_map_internode_bytes(m, &start) + 1;
    b.order = calloc(b.n, sizeof(unsigned));
    b.cur = calloc(b.n, sizeof(unsigned));
    b.used = calloc(b.H, sizeof(unsigned));
    b.best = start.host;
    rc = -ENOMEM;
    if (!b.order || !b.cur || !b.used)
        goto free_all;
    /* Heaviest ranks first: large costs appear early and prune more. */
    for (unsigned i = 0; i < b.n; i++)
        b.order[i] = i;
    for (unsigned i = 1; i < b.n; i++) {
        unsigned x = b.order[i], j = i;
        uint64_t tx = 0;
        for (unsigned q = 0; q < b.n; q++)
            tx += mos_comm_matrix_pair(m, x, q);
        while (j > 0) {
            uint64_t ty = 0;
            for (unsigned q = 0; q < b.n; q++)
                ty += mos_comm_matrix_pair(m, b.order[j - 1], q);
            if (ty >= tx)
                break;
            b.order[j] = b.order[j - 1];
            j--;
        }
        b.order[j] = x;
    }
    bnb_search(&b, 0, 0);
    rc = map_number_slots(&start, hosts->n);
    if (rc == 0)
        *out = start;
free_all:
    free(b.order);
    free(b.cur);
    free(b.used);
    if (rc != 0)
        mos_rank_map_free(&start);
    return rc;
}

int mos_rankfile_write(const struct mos_rank_map *map, const struct mos_host_list *hosts,
                       FILE *out)
{
    for (unsigned r = 0; r < map->n; r++) {
        const struct mos_host *h = &hosts->hosts[map->host[r]];
        fprintf(out, "rank %u=%s slot=%u\n", r, h->name,
                h->cores ? h->cores[map->slot[r]] : map->slot[r]);
    }
    return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}
