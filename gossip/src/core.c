/* The gossip algorithm of Amar, Barak, Drezner and Okun (CCPE 2009), without I/O.
 *
 * Finding the W youngest entries every step by scanning the vector would cost O(n) per node
 * and step, O(n^2) per step for the simulator. Instead the core keeps the W youngest in a
 * short list (the candidates): the news of a received window is appended, the candidates
 * whose node got newer news are dropped, and the list is cut back to its W youngest. Since
 * every entry ages at the same rate and only news makes an entry younger, an entry outside
 * the list is never younger than those kept, so the list always holds exactly the W youngest.
 *
 * Memory is laid out for the simulator, where 10,000 vectors take 400 MB and every access to
 * a vector misses the caches: one 32-bit word per slot holds both the stamp and the state
 * bits, so merging an entry costs one miss; which kept candidates went stale is found in a
 * 4096-bit map of the window's news next to the core's header, not by reading the vector. */
#include "gossip_core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A slot's word: its stamp rounded down to a multiple of 4 time units (4 ms in the library,
 * 1/250 step in the simulator; the age is over-counted by 1.5 units on average per hop) with
 * the state in the two low bits. 0 = no news ever. */
#define WORD_KNOWN 1u
#define WORD_DEAD 2u /* presumed dead: older than dead_after when last looked at */
#define WORD_STAMP(w) ((w) & ~3u)
#define NEWS_BITS 4096u

struct candidate {
    uint32_t slot;
    uint32_t stamp;
};

struct mos_gossip_core {
    uint32_t n_slots, self, window, dead_after;
    uint32_t n_alive;
    uint32_t n_cand, cap_cand;
    uint32_t n_left;           /* slots marked left: while 0, the left map is never read */
    uint32_t floor_stamp;      /* with W candidates kept: the oldest one's stamp... */
    int have_floor;            /* ...below which news cannot enter the window */
    uint32_t *word;            /* per slot: stamp | WORD_* */
    uint8_t *left;             /* per slot: announced it is leaving (rarely read) */
    struct candidate *cand;    /* the W youngest, then the news being merged */
    struct candidate *scratch; /* cap_cand entries for cand_select */
    uint64_t news[NEWS_BITS / 64]; /* hash bits of the slots with news in this window */
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

static int word_alive(const struct mos_gossip_core *c, uint32_t slot, uint32_t w)
{
    return (w & (WORD_KNOWN | WORD_DEAD)) == WORD_KNOWN && !(c->n_left && c->left[slot]);
}

/* Change a slot's word, keeping n_alive right; the left map is read only when the known/dead
 * bits change, which is rare. */
static void slot_set_word(struct mos_gossip_core *c, uint32_t slot, uint32_t w)
{
    uint32_t old = c->word[slot];

    c->word[slot] = w;
    if (((old ^ w) & (WORD_KNOWN | WORD_DEAD)) == 0)
        return;
    int was = word_alive(c, slot, old), is = word_alive(c, slot, w);
    if (was && !is)
        c->n_alive--;
    else if (!was && is)
        c->n_alive++;
}

static uint32_t slot_age(const struct mos_gossip_core *c, uint32_t now, uint32_t slot)
{
    return now - WORD_STAMP(c->word[slot]);
}

struct core_layout {
    size_t word, left, cand, scratch, total;
    uint32_t window, cap_cand;
};

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static int core_layout(const struct mos_gossip_core_params *p, struct core_layout *l)
{
    if (!p || p->n_slots == 0 || p->n_slots > 65536 || p->self >= p->n_slots ||
        p->window == 0 || p->dead_after == 0 || p->dead_after > INT32_MAX)
        return -EINVAL;
    l->window = p->window < p->n_slots ? p->window : p->n_slots;
    /* The kept W plus a chunk of news: a window is merged in chunks of cap - W items. */
    l->cap_cand = 2 * l->window + 64;
    /* One block, the small hot parts first: a core is a few cache lines plus its vector. */
    l->cand = align64(sizeof(struct mos_gossip_core));
    l->scratch = l->cand + align64(l->cap_cand * sizeof(struct candidate));
    l->left = l->scratch + align64(l->cap_cand * sizeof(struct candidate));
    l->word = l->left + align64(p->n_slots);
    l->total = l->word + align64(p->n_slots * sizeof(uint32_t));
    return 0;
}

size_t mos_gossip_core_bytes(const struct mos_gossip_core_params *p)
{
    struct core_layout l;

    return core_layout(p, &l) == 0 ? l.total : 0;
}

int mos_gossip_core_init(void *mem, size_t len, const struct mos_gossip_core_params *p,
                         uint32_t now, struct mos_gossip_core **out)
{
    struct core_layout l;
    struct mos_gossip_core *c = mem;
    char *base = mem;

    if (core_layout(p, &l) != 0 || !mem || !out || len < l.total || ((uintptr_t)mem & 63))
        return -EINVAL;
    memset(mem, 0, sizeof(*c));
    c->n_slots = p->n_slots;
    c->self = p->self;
    c->window = l.window;
    c->dead_after = p->dead_after;
    c->cap_cand = l.cap_cand;
    c->cand = (struct candidate *)(base + l.cand);
    c->scratch = (struct candidate *)(base + l.scratch);
    c->left = (uint8_t *)(base + l.left);
    c->word = (uint32_t *)(base + l.word);
    mos_gossip_core_reset(c, now);
    *out = c;
    return 0;
}

int mos_gossip_core_create(const struct mos_gossip_core_params *p, uint32_t now,
                           struct mos_gossip_core **out)
{
    size_t len = mos_gossip_core_bytes(p);
    void *mem;
    int rc;

    if (len == 0 || !out)
        return -EINVAL;
    if (posix_memalign(&mem, 64, len) != 0)
        return -ENOMEM;
    rc = mos_gossip_core_init(mem, len, p, now, out);
    if (rc != 0)
        free(mem);
    return rc;
}

void mos_gossip_core_destroy(struct mos_gossip_core *c)
{
    free(c);
}

void mos_gossip_core_reset(struct mos_gossip_core *c, uint32_t now)
{
    memset(c->word, 0, c->n_slots * sizeof(*c->word));
    memset(c->left, 0, c->n_slots);
    c->n_left = 0;
    c->word[c->self] = WORD_STAMP(now) | WORD_KNOWN;
    c->n_alive = 1;
    c->n_cand = 0;
    c->have_floor = 0;
}

/* Put the k smallest ages of a[0..n) first, 0 < k < n: quickselect with a three-way
 * partition, so runs of equal ages stay linear. */
static void cand_quickselect(struct candidate *a, uint32_t n, uint32_t k, uint32_t now)
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

/* Keep the k youngest of c->cand[0..n), 0 < k < n. A 256-bucket histogram of the ages (max:
 * the largest) finds the bucket where the k-th youngest lies; only that bucket is sorted out
 * by quickselect, whose unpredictable branches cost more than the rest. */
static void cand_select(struct candidate *a, struct candidate *tie, uint32_t n, uint32_t k,
                        uint32_t now, uint32_t max)
{
    uint32_t count[256] = {0}, shift = 0, below = 0, b, w = 0, n_tie = 0;

    while ((max >> shift) > 255)
        shift++;
    for (uint32_t i = 0; i < n; i++)
        count[(now - a[i].stamp) >> shift]++;
    for (b = 0; below + count[b] < k; b++)
        below += count[b];
    /* Branch-free: store every candidate, advance the index only where it belongs (w <= i,
     * so a[w] was already read; tie holds cap_cand >= n entries). */
    for (uint32_t i = 0; i < n; i++) {
        struct candidate e = a[i];
        uint32_t bucket = (now - e.stamp) >> shift;
        a[w] = e;
        w += bucket < b;
        tie[n_tie] = e;
        n_tie += bucket == b;
    }
    if (n_tie > k - below)
        cand_quickselect(tie, n_tie, k - below, now);
    memcpy(a + w, tie, (k - below) * sizeof(*a));
}

static uint32_t news_bit(uint32_t slot)
{
    return (slot * 0x9e3779b1u) >> (32 - 12); /* 12 bits: NEWS_BITS */
}

/* Candidates being merged: the W kept, then a window's news; in the core's own area or, for
 * windows up to 512, on the stack (cache-hot, where the core's area would be cold in the
 * simulator: one core among thousands). */
struct merge_buf {
    struct candidate *cand, *tie;
    uint32_t n;
};

/* After news was appended at m->cand[kept..m->n): drop the kept candidates (and repeated news)
 * that newer news replaced, keep the W youngest and store them in the core. A kept candidate
 * whose bit is clear had no news; if set, its word (just written if it had news) tells. */
static void cand_cut(struct mos_gossip_core *c, struct merge_buf *m, uint32_t kept, uint32_t now)
{
    uint32_t n = 0, max = 0;

    for (uint32_t i = 0; i < kept; i++) {
        struct candidate e = m->cand[i];
        uint32_t b = news_bit(e.slot), age = now - e.stamp;
        if (!(c->news[b / 64] & (1ull << (b % 64))) || WORD_STAMP(c->word[e.slot]) == e.stamp) {
            m->cand[n++] = e;
            max = age > max ? age : max;
        }
    }
    for (uint32_t i = kept; i < m->n; i++) {
        struct candidate e = m->cand[i];
        uint32_t age = now - e.stamp;
        if (WORD_STAMP(c->word[e.slot]) == e.stamp) {
            m->cand[n++] = e;
            max = age > max ? age : max;
        }
    }
    memset(c->news, 0, sizeof(c->news));
    if (n > c->window) {
        cand_select(m->cand, m->tie, n, c->window, now, max);
        n = c->window;
        max = 0;
        for (uint32_t i = 0; i < n; i++)
            max = now - m->cand[i].stamp > max ? now - m->cand[i].stamp : max;
    }
    m->n = n;
    if (m->cand != c->cand)
        memcpy(c->cand, m->cand, n * sizeof(*c->cand));
    c->n_cand = n;
    /* Kept entries are only ever replaced by younger news, so until the next cut news not
     * younger than the oldest kept cannot be among the W youngest: no need to append it. */
    c->have_floor = n == c->window;
    c->floor_stamp = now - max;
}

static enum mos_gossip_merge_result merge_one(struct mos_gossip_core *c, struct merge_buf *m,
                                              uint32_t now, uint32_t slot, uint32_t age)
{
    uint32_t stamp = WORD_STAMP(now - age), old, w, b;
    enum mos_gossip_merge_result res;

    if (slot >= c->n_slots || slot == c->self || age > INT32_MAX)
        return MOS_GOSSIP_MERGE_STALE;
    old = c->word[slot];
    /* Wrap-safe "not younger": stamps are compared through their signed difference. */
    if ((old & WORD_KNOWN) && (int32_t)(stamp - WORD_STAMP(old)) <= 0)
        return MOS_GOSSIP_MERGE_STALE;
    if (age > c->dead_after) {
        res = MOS_GOSSIP_MERGE_NEWS; /* news of a node that is still presumed dead */
        w = stamp | WORD_KNOWN | WORD_DEAD;
    } else {
        res = (!(old & WORD_KNOWN) || (old & WORD_DEAD)) ? MOS_GOSSIP_MERGE_RETURNED
                                                          : MOS_GOSSIP_MERGE_NEWS;
        w = stamp | WORD_KNOWN;
    }
    slot_set_word(c, slot, w);
    if (c->have_floor && (int32_t)(stamp - c->floor_stamp) <= 0)
        return res; /* too old for the window (and not the news of a kept candidate) */
    b = news_bit(slot);
    c->news[b / 64] |= 1ull << (b % 64);
    m->cand[m->n++] = (struct candidate){.slot = slot, .stamp = stamp};
    return res;
}

#define STACK_CAND (2 * 512 + 64)

size_t mos_gossip_core_receive(struct mos_gossip_core *c, uint32_t now,
                               const struct mos_gossip_item *items, size_t n, uint8_t *results)
{
    size_t taken = 0, chunk = c->cap_cand - c->window;
    struct candidate stack_cand[STACK_CAND], stack_tie[STACK_CAND];
    struct merge_buf m = {.cand = c->cand, .tie = c->scratch, .n = c->n_cand};

    if (c->cap_cand <= STACK_CAND) {
        memcpy(stack_cand, c->cand, c->n_cand * sizeof(*stack_cand));
        m.cand = stack_cand;
        m.tie = stack_tie;
    }
    for (size_t base = 0; base < n; base += chunk) {
        size_t end = n - base < chunk ? n : base + chunk;
        uint32_t kept = m.n;
        /* The vector is far bigger than the caches in the simulator: start every load of
         * this chunk before the first is needed. */
        for (size_t i = base; i < end; i++)
            if (items[i].slot < c->n_slots)
                __builtin_prefetch(&c->word[items[i].slot], 1);
        for (size_t i = base; i < end; i++) {
            enum mos_gossip_merge_result r = merge_one(c, &m, now, items[i].slot, items[i].age);
            taken += r != MOS_GOSSIP_MERGE_STALE;
            if (results)
                results[i] = (uint8_t)r;
        }
        cand_cut(c, &m, kept, now);
    }
    return taken;
}

/* Whether slot may be gossiped to as alive; notices (and records) a node gone past the limit. */
static int slot_check_alive(struct mos_gossip_core *c, uint32_t now, uint32_t slot)
{
    uint32_t w = c->word[slot];

    if (!word_alive(c, slot, w))
        return 0;
    if (now - WORD_STAMP(w) > c->dead_after) {
        slot_set_word(c, slot, w | WORD_DEAD);
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

    /* The own entry is always age 0: its word (set at reset) is never read for its age. */
    items[n++] = (struct mos_gossip_item){.slot = c->self, .age = 0};
    for (uint32_t i = 0; i < c->n_cand; i++) {
        uint32_t age = now - c->cand[i].stamp;
        if (age <= c->dead_after)
            items[n++] = (struct mos_gossip_item){.slot = c->cand[i].slot, .age = age};
    }
    *target = pick_target(c, now, rng);
    return n;
}

/* Two loops, not one with a flag: clang 14 crashed selecting instructions for a prefetch
 * whose read/write argument came out of a conditional. */
static void prefetch_lines_read(const void *p, size_t bytes)
{
    const char *a = (const char *)((uintptr_t)p & ~(uintptr_t)63), *end = (const char *)p + bytes;

    for (; a < end; a += 64)
        __builtin_prefetch(a, 0);
}

static void prefetch_lines_write(const void *p, size_t bytes)
{
    const char *a = (const char *)((uintptr_t)p & ~(uintptr_t)63), *end = (const char *)p + bytes;

    for (; a < end; a += 64)
        __builtin_prefetch(a, 1);
}

void mos_gossip_core_prefetch_header(const struct mos_gossip_core *c)
{
    prefetch_lines_write(c, sizeof(*c));
}

void mos_gossip_core_prefetch_receive(const struct mos_gossip_core *c,
                                      const struct mos_gossip_item *items, size_t n)
{
    prefetch_lines_read(c->cand, c->n_cand * sizeof(*c->cand));
    for (size_t i = 0; i < n; i++)
        if (items[i].slot < c->n_slots)
            __builtin_prefetch(&c->word[items[i].slot], 1);
}

void mos_gossip_core_prefetch_tick(const struct mos_gossip_core *c)
{
    prefetch_lines_read(c->cand, c->n_cand * sizeof(*c->cand));
}

uint32_t mos_gossip_core_age(const struct mos_gossip_core *c, uint32_t now, uint32_t slot)
{
    if (slot >= c->n_slots || !(c->word[slot] & WORD_KNOWN))
        return MOS_GOSSIP_AGE_UNKNOWN;
    return slot == c->self ? 0 : slot_age(c, now, slot);
}

void mos_gossip_core_set_left(struct mos_gossip_core *c, uint32_t slot, int left)
{
    if (slot >= c->n_slots || slot == c->self || !c->left[slot] == !left)
        return;
    int was = word_alive(c, slot, c->word[slot]);
    c->left[slot] = left ? 1 : 0;
    c->n_left += left ? 1 : -1;
    int is = word_alive(c, slot, c->word[slot]);
    if (was && !is)
        c->n_alive--;
    else if (!was && is)
        c->n_alive++;
}

void mos_gossip_core_set_dead_after(struct mos_gossip_core *c, uint32_t dead_after)
{
    if (dead_after >= 1 && dead_after <= INT32_MAX)
        c->dead_after = dead_after;
}

int mos_gossip_core_alive(const struct mos_gossip_core *c, uint32_t now, uint32_t slot)
{
    if (slot >= c->n_slots)
        return 0;
    if (slot == c->self)
        return 1;
    return word_alive(c, slot, c->word[slot]) && slot_age(c, now, slot) <= c->dead_after;
}

size_t mos_gossip_core_expire(struct mos_gossip_core *c, uint32_t now,
                              void (*on_dead)(void *arg, uint32_t slot), void *arg)
{
    size_t n = 0;

    for (uint32_t s = 0; s < c->n_slots; s++) {
        uint32_t w = c->word[s];
        if (s == c->self || !(w & WORD_KNOWN))
            continue;
        /* Stamps compare through a signed 32-bit difference: pin long-dead entries at a fixed
         * old age so that weeks later fresh news still counts as younger. */
        if (now - WORD_STAMP(w) > (1u << 30)) {
            w = WORD_STAMP(now - (1u << 30)) | (w & 3u);
            c->word[s] = w;
        }
        if (!(w & WORD_DEAD) && now - WORD_STAMP(w) > c->dead_after) {
            slot_set_word(c, s, w | WORD_DEAD);
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
