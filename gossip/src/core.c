/* The gossip algorithm of Amar, Barak, Drezner and Okun (CCPE 2009), without I/O.
 *
 * Finding the W youngest entries every step by scanning the vector would cost O(n) per node
 * and step, O(n^2) per step for the simulator. Instead the core keeps a short list of
 * candidates: every entry that became younger (news) since the last step is appended, and at
 * each step the list is cut back to its W youngest valid members. Since every entry ages at
 * the same rate and only news makes an entry younger, an entry outside the list is never
 * younger than the W kept, so the list always holds the W youngest (a candidate is valid while
 * its stamp is still the entry's stamp; news of the same node leaves the old one stale). */
#include "mos/gossip_core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum slot_flag {
    SLOT_KNOWN = 1, /* some news arrived */
    SLOT_DEAD = 2,  /* presumed dead: older than dead_after when last looked at */
    SLOT_LEFT = 4,  /* announced it is leaving */
};

struct candidate {
    uint32_t slot;
    uint32_t stamp;
};

struct mos_gossip_core {
    uint32_t n_slots, self, window, dead_after;
    uint32_t n_alive;
    uint32_t *stamp; /* local time at which the entry's news was produced at its origin */
    uint8_t *flags;
    struct candidate *cand;
    uint32_t n_cand, cap_cand;
};

uint64_t mos_gossip_splitmix_next(void *splitmix)
{
    struct mos_gossip_splitmix *s = splitmix;
    uint64_t z = (s->state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n): the multiply-shift map of a 32-bit draw (bias below 2^-32 * n). */
static uint32_t rng_below(const struct mos_gossip_rng *rng, uint32_t n)
{
    return (uint32_t)(((rng->next(rng->arg) >> 32) * (uint64_t)n) >> 32);
}

static int flags_alive(uint8_t f)
{
    return (f & (SLOT_KNOWN | SLOT_DEAD | SLOT_LEFT)) == SLOT_KNOWN;
}

static void slot_set_flags(struct mos_gossip_core *c, uint32_t slot, uint8_t f)
{
    int was = flags_alive(c->flags[slot]), is = flags_alive(f);

    c->flags[slot] = f;
    if (was && !is)
        c->n_alive--;
    else if (!was && is)
        c->n_alive++;
}

static uint32_t slot_age(const struct mos_gossip_core *c, uint32_t now, uint32_t slot)
{
    return now - c->stamp[slot];
}

int mos_gossip_core_create(const struct mos_gossip_core_params *p, uint32_t now,
                           struct mos_gossip_core **out)
{
    struct mos_gossip_core *c;

    if (!p || !out || p->n_slots == 0 || p->n_slots > 65536 || p->self >= p->n_slots ||
        p->window == 0 || p->dead_after == 0 || p->dead_after > INT32_MAX)
        return -EINVAL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->n_slots = p->n_slots;
    c->self = p->self;
    c->window = p->window < p->n_slots ? p->window : p->n_slots;
    c->dead_after = p->dead_after;
    /* Room for a few steps of news between cuts; a cut costs O(cap), so amortized O(1). */
    c->cap_cand = 2 * c->window + 32;
    c->stamp = calloc(p->n_slots, sizeof(*c->stamp));
    c->flags = calloc(p->n_slots, sizeof(*c->flags));
    c->cand = calloc(c->cap_cand, sizeof(*c->cand));
    if (!c->stamp || !c->flags || !c->cand) {
        mos_gossip_core_destroy(c);
        return -ENOMEM;
    }
    mos_gossip_core_reset(c, now);
    *out = c;
    return 0;
}

void mos_gossip_core_destroy(struct mos_gossip_core *c)
{
    if (!c)
        return;
    free(c->stamp);
    free(c->flags);
    free(c->cand);
    free(c);
}

void mos_gossip_core_reset(struct mos_gossip_core *c, uint32_t now)
{
    memset(c->flags, 0, c->n_slots * sizeof(*c->flags));
    c->n_alive = 1;
    c->flags[c->self] = SLOT_KNOWN;
    c->stamp[c->self] = now;
    c->n_cand = 0;
}

/* Put the k smallest ages of cand[0..n) first, 0 < k < n: quickselect with a three-way
 * partition, so runs of equal ages (common: many entries arrive in the same step) stay linear. */
static void cand_select(struct candidate *a, uint32_t n, uint32_t k, uint32_t now)
{
    int64_t lo = 0, hi = (int64_t)n - 1, want = (int64_t)k - 1;

    while (lo < hi) {
        uint32_t pivot = now - a[lo + (hi - lo) / 2].stamp;
        int64_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            uint32_t v = now - a[i].stamp;
            struct candidate t = a[i];
            if (v < pivot) {
                a[i++] = a[lt];
                a[lt++] = t;
            } else if (v > pivot) {
                a[i] = a[gt];
                a[gt--] = t;
            } else {
                i++;
            }
        }
        if (want < lt)
            hi = lt - 1;
        else if (want > gt)
            lo = gt + 1;
        else
            return;
    }
}

/* Drop stale candidates and keep the window youngest. */
static void cand_cut(struct mos_gossip_core *c, uint32_t now)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->n_cand; i++) {
        struct candidate e = c->cand[i];
        if (c->stamp[e.slot] == e.stamp && (c->flags[e.slot] & SLOT_KNOWN))
            c->cand[n++] = e;
    }
    if (n > c->window) {
        cand_select(c->cand, n, c->window, now);
        n = c->window;
    }
    c->n_cand = n;
}

enum mos_gossip_merge_result mos_gossip_core_merge(struct mos_gossip_core *c, uint32_t now,
                                                   uint32_t slot, uint32_t age)
{
    uint32_t stamp = now - age;
    uint8_t f;
    enum mos_gossip_merge_result res;

    if (slot >= c->n_slots || slot == c->self || age > INT32_MAX)
        return MOS_GOSSIP_MERGE_STALE;
    f = c->flags[slot];
    /* Wrap-safe "not younger": stamps are compared through their signed difference. */
    if ((f & SLOT_KNOWN) && (int32_t)(stamp - c->stamp[slot]) <= 0)
        return MOS_GOSSIP_MERGE_STALE;
    c->stamp[slot] = stamp;
    if (age > c->dead_after) {
        res = MOS_GOSSIP_MERGE_NEWS; /* news of a node that is still presumed dead */
        f |= SLOT_KNOWN | SLOT_DEAD;
    } else {
        res = (!(f & SLOT_KNOWN) || (f & SLOT_DEAD)) ? MOS_GOSSIP_MERGE_RETURNED
                                                      : MOS_GOSSIP_MERGE_NEWS;
        f = (uint8_t)((f | SLOT_KNOWN) & ~SLOT_DEAD);
    }
    slot_set_flags(c, slot, f);
    if (c->n_cand == c->cap_cand)
        cand_cut(c, now);
    c->cand[c->n_cand++] = (struct candidate){.slot = slot, .stamp = stamp};
    return res;
}

/* Whether slot may be gossiped to as alive; notices (and records) a node gone past the limit. */
static int slot_check_alive(struct mos_gossip_core *c, uint32_t now, uint32_t slot)
{
    uint8_t f = c->flags[slot];

    if (!flags_alive(f))
        return 0;
    if (slot_age(c, now, slot) > c->dead_after) {
        slot_set_flags(c, slot, f | SLOT_DEAD);
        return 0;
    }
    return 1;
}

static uint32_t pick_any_other(const struct mos_gossip_core *c, const struct mos_gossip_rng *rng)
{
    uint32_t s = rng_below(rng, c->n_slots - 1);

    return s >= c->self ? s + 1 : s;
}

static uint32_t pick_target(struct mos_gossip_core *c, uint32_t now,
                            const struct mos_gossip_rng *rng)
{
    uint32_t others = c->n_alive - 1, s, start;

    if (c->n_slots == 1)
        return MOS_GOSSIP_NO_SLOT;
    /* Now and then any configured node, so nodes presumed dead hear from us when they are
     * back (as the public daemon does); never less than 1 in 8 while few are known. */
    if (others == 0 || rng_below(rng, others > 8 ? others : 8) == 0)
        return pick_any_other(c, rng);
    /* Rejection sampling is uniform over the alive and O(1) while most nodes are alive. */
    for (int tries = 0; tries < 16; tries++) {
        s = pick_any_other(c, rng);
        if (slot_check_alive(c, now, s))
            return s;
    }
    start = pick_any_other(c, rng);
    for (uint32_t i = 0; i < c->n_slots; i++) {
        s = (start + i) % c->n_slots;
        if (s != c->self && slot_check_alive(c, now, s))
            return s;
    }
    return pick_any_other(c, rng);
}

size_t mos_gossip_core_tick(struct mos_gossip_core *c, uint32_t now,
                            const struct mos_gossip_rng *rng, uint32_t *target,
                            struct mos_gossip_item *items)
{
    size_t n = 0;

    c->stamp[c->self] = now;
    cand_cut(c, now);
    items[n++] = (struct mos_gossip_item){.slot = c->self, .age = 0};
    for (uint32_t i = 0; i < c->n_cand; i++) {
        uint32_t age = now - c->cand[i].stamp;
        if (age <= c->dead_after)
            items[n++] = (struct mos_gossip_item){.slot = c->cand[i].slot, .age = age};
    }
    *target = pick_target(c, now, rng);
    return n;
}

uint32_t mos_gossip_core_age(const struct mos_gossip_core *c, uint32_t now, uint32_t slot)
{
    if (slot >= c->n_slots || !(c->flags[slot] & SLOT_KNOWN))
        return MOS_GOSSIP_AGE_UNKNOWN;
    return slot == c->self ? 0 : slot_age(c, now, slot);
}

void mos_gossip_core_set_left(struct mos_gossip_core *c, uint32_t slot, int left)
{
    if (slot >= c->n_slots || slot == c->self)
        return;
    slot_set_flags(c, slot,
                   (uint8_t)(left ? (c->flags[slot] | SLOT_LEFT) : (c->flags[slot] & ~SLOT_LEFT)));
}

int mos_gossip_core_alive(const struct mos_gossip_core *c, uint32_t now, uint32_t slot)
{
    if (slot >= c->n_slots)
        return 0;
    if (slot == c->self)
        return 1;
    return flags_alive(c->flags[slot]) && slot_age(c, now, slot) <= c->dead_after;
}

size_t mos_gossip_core_expire(struct mos_gossip_core *c, uint32_t now,
                              void (*on_dead)(void *arg, uint32_t slot), void *arg)
{
    size_t n = 0;

    for (uint32_t s = 0; s < c->n_slots; s++) {
        uint8_t f = c->flags[s];
        if (s == c->self || !(f & SLOT_KNOWN))
            continue;
        /* Stamps compare through a signed 32-bit difference: pin long-dead entries at a fixed
         * old age so that weeks later fresh news still counts as younger. */
        if (slot_age(c, now, s) > (1u << 30))
            c->stamp[s] = now - (1u << 30);
        if (!(f & SLOT_DEAD) && slot_age(c, now, s) > c->dead_after) {
            slot_set_flags(c, s, f | SLOT_DEAD);
            n++;
            if (on_dead)
                on_dead(arg, s);
        }
    }
    return n;
}

uint32_t mos_gossip_core_n_alive(const struct mos_gossip_core *c)
{
    return c->n_alive;
}

uint32_t mos_gossip_core_n_slots(const struct mos_gossip_core *c)
{
    return c->n_slots;
}

uint32_t mos_gossip_core_window(const struct mos_gossip_core *c)
{
    return c->window;
}
