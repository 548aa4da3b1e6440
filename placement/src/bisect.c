/* Recursive bisection with Fiduccia-Mattheyses refinement, on the dense matrix. Written here
 * rather than taken from METIS or Scotch: those are not in Debian as small C libraries with a
 * stable API for dense weighted graphs of a few thousand vertices, and the dense case is a few
 * hundred lines. */
#include "bisect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FM_PASSES 8

struct bisect {
    const struct mos_comm_matrix *m;
    unsigned *ranks;  /* the ranks of the current subproblem */
    unsigned n;
    unsigned char *side;
    unsigned char *locked;
    double *gain;
    unsigned *moves;
};

static double w(const struct mos_comm_matrix *m, unsigned a, unsigned b)
{
    return (double)m->bytes[(size_t)a * m->n + b] + (double)m->bytes[(size_t)b * m->n + a];
}

static double cut_of(const struct bisect *b)
{
    double cut = 0;

    for (unsigned i = 0; i < b->n; i++)
        for (unsigned j = i + 1; j < b->n; j++)
            if (b->side[i] != b->side[j])
                cut += w(b->m, b->ranks[i], b->ranks[j]);
    return cut;
}

static void compute_gains(struct bisect *b)
{
    for (unsigned i = 0; i < b->n; i++) {
        double g = 0;
        for (unsigned j = 0; j < b->n; j++)
            if (i != j)
                g += (b->side[i] != b->side[j] ? 1 : -1) * w(b->m, b->ranks[i], b->ranks[j]);
        b->gain[i] = g;
    }
}

/* Grow side 0 from `seed` to `size0` ranks, always adding the rank that gains most. */
static void grow(struct bisect *b, unsigned seed, unsigned size0)
{
    memset(b->side, 1, b->n);
    b->side[seed] = 0;
    compute_gains(b);
    for (unsigned k = 1; k < size0; k++) {
        int best = -1;
        for (unsigned i = 0; i < b->n; i++)
            if (b->side[i] == 1 && (best < 0 || b->gain[i] > b->gain[best]))
                best = (int)i;
        b->side[best] = 0;
        for (unsigned i = 0; i < b->n; i++)
            if ((int)i != best)
                b->gain[i] += (b->side[i] == 0 ? -2 : 2) * w(b->m, b->ranks[i], b->ranks[best]);
        b->gain[best] = -b->gain[best];
    }
}

static void move(struct bisect *b, unsigned v)
{
    for (unsigned i = 0; i < b->n; i++)
        if (i != v)
            b->gain[i] += (b->side[i] == b->side[v] ? 2 : -2) * w(b->m, b->ranks[i], b->ranks[v]);
    b->side[v] ^= 1;
    b->gain[v] = -b->gain[v];
}

/* One FM pass: move every rank once, best gain first, keeping side 0 within one of size0;
 * then undo the moves after the best balanced prefix. Returns the cut reduction. */
static double fm_pass(struct bisect *b, unsigned size0)
{
    unsigned n0 = 0, nmoves = 0, best_prefix = 0;
    double total = 0, best_total = 0;

    for (unsigned i = 0; i < b->n; i++)
        n0 += b->side[i] == 0;
    memset(b->locked, 0, b->n);
    for (unsigned step = 0; step < b->n; step++) {
        int best = -1;
        for (unsigned i = 0; i < b->n; i++) {
            if (b->locked[i])
                continue;
            unsigned after = b->side[i] == 0 ? n0 - 1 : n0 + 1;
            if (after + 1 < size0 || after > size0 + 1)
                continue;
            if (best < 0 || b->gain[i] > b->gain[best])
                best = (int)i;
        }
        if (best < 0)
            break;
        total += b->gain[best];
        n0 = b->side[best] == 0 ? n0 - 1 : n0 + 1;
        move(b, (unsigned)best);
        b->locked[best] = 1;
        b->moves[nmoves++] = (unsigned)best;
        if (n0 == size0 && total > best_total + 1e-9) {
            best_total = total;
            best_prefix = nmoves;
        }
    }
    while (nmoves > best_prefix)
        move(b, b->moves[--nmoves]);
    return best_total;
}

static void bisect_refine(struct bisect *b, unsigned size0)
{
    compute_gains(b);
    for (int pass = 0; pass < FM_PASSES; pass++)
        if (fm_pass(b, size0) <= 0)
            break;
}

/* Split b->ranks into sides of size0 and n - size0 with a small cut: the best of a few seeds
 * (the first rank, the heaviest, and the one least connected to the heaviest's side). */
static int bisect_split(struct bisect *b, unsigned size0)
{
    unsigned char *best_side = malloc(b->n);
    double best_cut = -1;
    unsigned seeds[3] = {0, 0, b->n - 1};
    double heavy = -1;

    if (!best_side)
        return -ENOMEM;
    for (unsigned i = 0; i < b->n; i++) {
        double t = 0;
        for (unsigned j = 0; j < b->n; j++)
            t += w(b->m, b->ranks[i], b->ranks[j]);
        if (t > heavy) {
            heavy = t;
            seeds[1] = i;
        }
    }
    for (unsigned s = 0; s < 3; s++) {
        grow(b, seeds[s], size0);
        bisect_refine(b, size0);
        double cut = cut_of(b);
        if (best_cut < 0 || cut < best_cut) {
            best_cut = cut;
            memcpy(best_side, b->side, b->n);
        }
    }
    memcpy(b->side, best_side, b->n);
    free(best_side);
    return 0;
}

static int bisect_rec(struct bisect *b, unsigned *ranks, unsigned n, unsigned h_lo,
                      unsigned h_hi, const unsigned *count, unsigned *host_of)
{
    unsigned h_mid = h_lo + (h_hi - h_lo) / 2, size0 = 0, k0 = 0, k1;
    int rc;

    if (h_hi - h_lo == 1) {
        for (unsigned i = 0; i < n; i++)
            host_of[ranks[i]] = h_lo;
        return 0;
    }
    for (unsigned h = h_lo; h < h_mid; h++)
        size0 += count[h];
    if (size0 > 0 && size0 < n) {
        b->ranks = ranks;
        b->n = n;
        rc = bisect_split(b, size0);
        if (rc != 0)
            return rc;
        /* Reorder ranks[] so side 0 comes first; the recursion works on the two halves. */
        unsigned *tmp = malloc(n * sizeof(*tmp));
        if (!tmp)
            return -ENOMEM;
        k1 = size0;
        for (unsigned i = 0; i < n; i++)
            tmp[b->side[i] == 0 ? k0++ : k1++] = ranks[i];
        memcpy(ranks, tmp, n * sizeof(*tmp));
        free(tmp);
    }
    rc = bisect_rec(b, ranks, size0, h_lo, h_mid, count, host_of);
    if (rc == 0)
        rc = bisect_rec(b, ranks + size0, n - size0, h_mid, h_hi, count, host_of);
    return rc;
}

int bisect_map(const struct mos_comm_matrix *m, unsigned n_hosts, const unsigned *count,
               unsigned *host_of)
{
    struct bisect b = {.m = m};
    unsigned *ranks = malloc(m->n * sizeof(*ranks));
    int rc = -ENOMEM;

    b.side = malloc(m->n);
    b.locked = malloc(m->n);
    b.gain = malloc(m->n * sizeof(double));
    b.moves = malloc(m->n * sizeof(unsigned));
    if (!ranks || !b.side || !b.locked || !b.gain || !b.moves)
        goto free_all;
    for (unsigned r = 0; r < m->n; r++)
        ranks[r] = r;
    rc = bisect_rec(&b, ranks, m->n, 0, n_hosts, count, host_of);
free_all:
    free(ranks);
    free(b.side);
    free(b.locked);
    free(b.gain);
    free(b.moves);
    return rc;
}
