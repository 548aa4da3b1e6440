/* The gossip protocol: the core's windows turned into datagrams and back, node identities,
 * replay and liveness bookkeeping. No I/O here (udp.c does it), so tests drive it directly. */
#include "gossip_priv.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const state_names[] = {
    [MOS_GOSSIP_UNKNOWN] = "unknown", [MOS_GOSSIP_ALIVE] = "alive",
    [MOS_GOSSIP_DEAD] = "dead", [MOS_GOSSIP_LEFT] = "left", [MOS_GOSSIP_SUSPECT] = "suspect",
};

const char *mos_gossip_state_name(enum mos_gossip_state state)
{
    return (unsigned)state <= MOS_GOSSIP_SUSPECT ? state_names[state] : "?";
}

/* Boot ids are ordered so that receivers can refuse older boots: the wall clock at start, in
 * ns (the one clock that keeps going up across restarts; see README.md "Boots" for steps). */
static uint64_t boot_id_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * MOS_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint32_t mos_gossip_now_ms(void)
{
    return (uint32_t)(mos_clock_now_ns() / MOS_NSEC_PER_MSEC);
}

/* Parse a configured numeric address into the wire identity and a socket address. */
static int peer_set_addr(struct gossip_peer *p, const char *text, int port)
{
    struct in_addr a4;
    struct in6_addr a6;

    memset(&p->sa, 0, sizeof(p->sa));
    if (inet_pton(AF_INET, text, &a4) == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&p->sa;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sin->sin_addr = a4;
        p->sa_len = sizeof(*sin);
        memset(p->addr, 0, 10);
        p->addr[10] = p->addr[11] = 0xff;
        memcpy(p->addr + 12, &a4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &a6) == 1) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p->sa;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sin6->sin6_addr = a6;
        p->sa_len = sizeof(*sin6);
        memcpy(p->addr, &a6, 16);
        return 0;
    }
    return -EINVAL;
}

static int cmp_by_addr(const void *a, const void *b, void *arg)
{
    const struct gossip_peer *peers = arg;

    return memcmp(peers[*(const uint32_t *)a].addr, peers[*(const uint32_t *)b].addr, 16);
}

uint32_t gossip_slot_of(const struct mos_gossip *g, const uint8_t addr[16])
{
    size_t lo = 0, hi = g->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(g->peers[g->by_addr[mid]].addr, addr, 16);
        if (c == 0)
            return g->by_addr[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return MOS_GOSSIP_NO_SLOT;
}

static uint64_t rng_kernel_seeded(void *arg)
{
    return mos_gossip_splitmix_next(arg);
}

/* A limit below the expected maximum age makes live nodes suspect all the time (each then
 * probed, the traffic grows): say so. */
static void check_dead_limit(const struct mos_config *cfg, uint32_t n, uint32_t window)
{
    struct mos_gossip_age_model m;

    if (window + 1 >= n || mos_gossip_model(n, window + 1, &m) != 0)
        return;
    if (cfg->dead_after_steps < m.max_age)
        mos_warn("gossip", "dead_after_steps = %d is below the expected maximum age "
                 "(%.0f steps for %u nodes, window %u): live nodes will be suspect and probed often",
                 cfg->dead_after_steps, m.max_age, n, window);
}

/* dead_after_steps, or when it is 0 (the default) the automatic limit for this size. */
static uint32_t dead_limit_steps(const struct mos_config *cfg, uint32_t n, uint32_t window)
{
    if (cfg->dead_after_steps > 0)
        return (uint32_t)cfg->dead_after_steps;
    return mos_gossip_auto_limit_steps(n, window);
}

static int gossip_alloc(struct mos_gossip *g)
{
    g->peers = calloc(g->n, sizeof(*g->peers));
    g->by_addr = calloc(g->n, sizeof(*g->by_addr));
    g->items = calloc(MOS_GOSSIP_MAX_ENTRIES, sizeof(*g->items));
    g->entries = calloc(MOS_GOSSIP_MAX_ENTRIES, sizeof(*g->entries));
    g->results = calloc(MOS_GOSSIP_MAX_ENTRIES, 1);
    g->buf = malloc(MOS_GOSSIP_MAX_DATAGRAM);
    return g->peers && g->by_addr && g->items && g->entries && g->results && g->buf ? 0
                                                                                    : -ENOMEM;
}

int mos_gossip_create(const struct mos_gossip_params *p, struct mos_gossip **out)
{
    const struct mos_config *cfg = p ? p->cfg : NULL;
    struct mos_gossip *g;
    int rc;

    if (!cfg || !p->key || !out || p->self < 0 || (size_t)p->self >= cfg->n_nodes ||
        cfg->n_nodes > 65536 || cfg->gossip_interval_ms <= 0 || cfg->gossip_window <= 0 ||
        cfg->dead_after_steps < 0) {
        mos_err("gossip", "bad parameters (node index, window, interval or limit)");
        return -EINVAL;
    }
    g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->cfg = cfg;
    g->key = p->key;
    g->fd = -1;
    g->self = (uint32_t)p->self;
    g->n = (uint32_t)cfg->n_nodes;
    g->interval_ms = (uint32_t)cfg->gossip_interval_ms;
    g->window = (uint32_t)cfg->gossip_window;
    if (g->window > MOS_GOSSIP_MAX_ENTRIES - 1) {
        mos_warn("gossip", "gossip_window %u exceeds what a datagram carries; using %d",
                 g->window, MOS_GOSSIP_MAX_ENTRIES - 1);
        g->window = MOS_GOSSIP_MAX_ENTRIES - 1;
    }
    rc = gossip_alloc(g);
    if (rc != 0)
        goto fail;
    for (uint32_t i = 0; i < g->n; i++) {
        if (peer_set_addr(&g->peers[i], cfg->nodes[i].addr, cfg->gossip_port) != 0) {
            mos_err("gossip", "node %s: '%s' is not a numeric address", cfg->nodes[i].name,
                    cfg->nodes[i].addr);
            rc = -EINVAL;
            goto fail;
        }
        g->by_addr[i] = i;
    }
    qsort_r(g->by_addr, g->n, sizeof(*g->by_addr), cmp_by_addr, g->peers);
    if (p->rng) {
        g->rng = *p->rng;
    } else {
        mos_random_bytes(&g->own_rng.state, sizeof(g->own_rng.state));
        g->rng = (struct mos_gossip_rng){.next = rng_kernel_seeded, .arg = &g->own_rng};
    }
    g->boot_id = p->boot_id ? p->boot_id : boot_id_now();
    g->refresh = p->refresh;
    g->refresh_arg = p->refresh_arg;
    g->dead_steps = dead_limit_steps(cfg, g->n, g->window);
    g->probe_ms = MOS_GOSSIP_PROBE_STEPS * g->interval_ms;
    if (g->probe_ms < MOS_GOSSIP_PROBE_MIN_MS)
        g->probe_ms = MOS_GOSSIP_PROBE_MIN_MS;
    struct mos_gossip_core_params cp = {
        .n_slots = g->n, .self = g->self, .window = g->window,
        .dead_after = g->dead_steps * g->interval_ms};
    if ((uint64_t)g->dead_steps * g->interval_ms > MOS_GOSSIP_MAX_AGE_MS) {
        mos_err("gossip", "dead_after_steps x gossip_interval_ms exceeds %u ms",
                MOS_GOSSIP_MAX_AGE_MS);
        rc = -EINVAL;
        goto fail;
    }
    g->dead_after_ms = cp.dead_after;
    rc = mos_gossip_core_create(&cp, mos_gossip_now_ms(), &g->core);
    if (rc != 0)
        goto fail;
    memcpy(g->peers[g->self].info.addr, g->peers[g->self].addr, 16);
    if (cfg->dead_after_steps > 0)
        check_dead_limit(cfg, g->n, g->window);
    *out = g;
    return 0;
fail:
    mos_gossip_destroy(g);
    return rc;
}

void mos_gossip_destroy(struct mos_gossip *g)
{
    if (!g)
        return;
    if (g->fd >= 0)
        close(g->fd);
    mos_gossip_core_destroy(g->core);
    free(g->peers);
    free(g->by_addr);
    free(g->items);
    free(g->entries);
    free(g->results);
    free(g->buf);
    free(g);
}

void mos_gossip_set_local(struct mos_gossip *g, const struct mos_gossip_info *info)
{
    struct gossip_peer *me = &g->peers[g->self];

    me->info = *info;
    memcpy(me->info.addr, me->addr, 16);
}

/* An entry passed the limit: a node that announced it leaves is gone; any other is only
 * suspect until the probes tell (suspect.c). */
/* Ages are in ms, the limit in steps of the configured interval. A node starved of CPU steps
 * late, and so do its peers on a loaded machine: news travels fewer hops per second and every
 * age grows in ms. The limit follows the mean period between this node's own steps (up to 4
 * times the interval), so that slowness is not taken for deaths. */
static void limit_follow_pace(struct mos_gossip *g, uint32_t now_ms)
{
    double scale;

    if (g->last_step_ms != 0 || g->step_period_ms > 0)
        g->step_period_ms += ((double)(now_ms - g->last_step_ms) - g->step_period_ms) / 8;
    else
        g->step_period_ms = g->interval_ms;
    g->last_step_ms = now_ms;
    scale = g->step_period_ms / g->interval_ms;
    scale = scale < 1 ? 1 : scale > 4 ? 4 : scale;
    g->dead_after_ms = (uint32_t)(scale * g->dead_steps * g->interval_ms);
    mos_gossip_core_set_dead_after(g->core, g->dead_after_ms);
}

struct expire_ctx {
    struct mos_gossip *g;
    uint32_t now;
};

static void on_dead(void *arg, uint32_t slot)
{
    const struct expire_ctx *x = arg;
    struct mos_gossip *g = x->g;

    if (g->peers[slot].info.flags & MOS_GOSSIP_F_LEAVING) {
        g->stats.presumed_dead++;
        g->peers[slot].dead = 1;
        return;
    }
    gossip_suspect(g, slot, x->now);
}

static int datagram_encode(struct mos_gossip *g, size_t n_items, uint8_t *buf, size_t cap)
{
    struct mos_gossip_wire_header h = {.n_entries = (uint16_t)n_items, .boot_id = g->boot_id,
                                       .seq = ++g->seq};

    for (size_t i = 0; i < n_items; i++) {
        g->entries[i].info = g->peers[g->items[i].slot].info;
        g->entries[i].age_ms = g->items[i].age;
    }
    return mos_gossip_wire_encode(g->key, &h, g->entries, n_items, buf, cap);
}

int mos_gossip_step(struct mos_gossip *g, uint32_t now_ms, uint8_t *buf, size_t cap,
                    uint32_t *target)
{
    size_t n_items;

    g->stats.steps++;
    if (g->refresh) {
        struct mos_gossip_info own = g->peers[g->self].info;
        g->refresh(g->refresh_arg, &own);
        mos_gossip_set_local(g, &own);
    }
    struct expire_ctx x = {.g = g, .now = now_ms};
    limit_follow_pace(g, now_ms);
    gossip_suspects_step(g, now_ms); /* before new suspects, which were just pinged */
    mos_gossip_core_expire(g->core, now_ms, on_dead, &x);
    n_items = mos_gossip_core_tick(g->core, now_ms, &g->rng, target, g->items);
    if (*target == MOS_GOSSIP_NO_SLOT)
        return 0;
    return datagram_encode(g, n_items, buf, cap);
}

int mos_gossip_leave_datagram(struct mos_gossip *g, uint32_t now_ms, uint8_t *buf, size_t cap)
{
    (void)now_ms;
    g->peers[g->self].info.flags |= MOS_GOSSIP_F_LEAVING;
    g->items[0] = (struct mos_gossip_item){.slot = g->self, .age = 0};
    return datagram_encode(g, 1, buf, cap);
}

int gossip_drop(struct mos_gossip *g, enum mos_gossip_drop why, enum mos_gossip_drop *out)
{
    g->stats.dropped[why]++;
    *out = why;
    return -1;
}

/* A peer's boot and sequence: a newer boot starts over, an older one is refused (else two
 * captured datagrams of two boots, alternated, would each start over for ever); within a boot
 * only a newer sequence number counts. */
int gossip_replay_check(struct mos_gossip *g, uint32_t slot,
                        const struct mos_gossip_wire_header *h)
{
    struct gossip_peer *p = &g->peers[slot];

    if (h->boot_id < p->boot_id) {
        if (h->boot_id != p->refused_boot) /* once per old boot: the log is no flood target */
            mos_warn("gossip", "node %s: a datagram of an older boot (%llu < %llu) dropped: a "
                     "replay, or its clock went back across a restart",
                     g->cfg->nodes[slot].name, (unsigned long long)h->boot_id,
                     (unsigned long long)p->boot_id);
        p->refused_boot = h->boot_id;
        return -1;
    }
    if (h->boot_id == p->boot_id && h->seq <= p->last_seq)
        return -1;
    p->boot_id = h->boot_id;
    p->last_seq = h->seq;
    return 0;
}

/* News of a suspect or a node presumed dead: it is alive. */
static void peer_alive_again(struct mos_gossip *g, uint32_t slot)
{
    struct gossip_peer *p = &g->peers[slot];

    if (p->suspect && !p->dead) {
        g->stats.refuted++;
        mos_info("gossip", "node %s is alive (it was suspect)", g->cfg->nodes[slot].name);
    } else {
        g->stats.returned++;
        mos_info("gossip", "node %s is alive", g->cfg->nodes[slot].name);
    }
    if (p->suspect)
        g->n_suspect--;
    gossip_probe_end(g, p);
    p->suspect = p->dead = p->dead_by_notice = 0; /* the probe's nonce stays until its ack or the next probe */
}

/* Take the payload of the entries the core accepted as news. */
static void input_apply(struct mos_gossip *g, uint32_t now_ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = g->items[i].slot;
        if (slot == MOS_GOSSIP_NO_SLOT || g->results[i] == MOS_GOSSIP_MERGE_STALE)
            continue;
        struct gossip_peer *p = &g->peers[slot];
        int was_left = (p->info.flags & MOS_GOSSIP_F_LEAVING) != 0;
        int leaving = (g->entries[i].info.flags & MOS_GOSSIP_F_LEAVING) != 0;
        p->info = g->entries[i].info;
        g->stats.entries_news++;
        mos_gossip_core_set_left(g->core, slot, leaving);
        if (leaving && !was_left) {
            g->stats.left++;
            mos_info("gossip", "node %s leaves", g->cfg->nodes[slot].name);
        } else if (p->dead_by_notice && !leaving) {
            /* news it sent before the notice's sender gave up on it is no sign of life */
            if ((int32_t)(now_ms - g->entries[i].age_ms - p->dead_mark_ms) > 0)
                peer_alive_again(g, slot);
        } else if (g->results[i] == MOS_GOSSIP_MERGE_RETURNED && !leaving) {
            peer_alive_again(g, slot);
        } else if (!leaving && !p->suspect && !p->dead &&
                   !mos_gossip_core_alive(g->core, now_ms, slot)) {
            /* news already past the limit of a node not yet judged: probe it too */
            gossip_suspect(g, slot, now_ms);
        }
    }
}

void gossip_merge(struct mos_gossip *g, uint32_t now_ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = gossip_slot_of(g, g->entries[i].info.addr);
        if (slot == MOS_GOSSIP_NO_SLOT)
            g->stats.entries_unknown_node++;
        g->items[i] = (struct mos_gossip_item){.slot = slot, .age = g->entries[i].age_ms};
    }
    /* Slots out of range (MOS_GOSSIP_NO_SLOT) and our own are ignored by the core. */
    mos_gossip_core_receive(g->core, now_ms, g->items, n, g->results);
    input_apply(g, now_ms, n);
}

int mos_gossip_input(struct mos_gossip *g, uint32_t now_ms, const uint8_t *buf, size_t len,
                     enum mos_gossip_drop *why)
{
    struct mos_gossip_wire_header h;
    struct mos_gossip_wire_probe probe;
    uint32_t sender;

    g->stats.received++;
    if (g->test_loss > 0 &&
        (double)(g->rng.next(g->rng.arg) >> 11) * 0x1p-53 < g->test_loss)
        return gossip_drop(g, MOS_GOSSIP_DROP_TEST_LOSS, why);
    if (mos_gossip_wire_parse(g->key, buf, len, &h, g->entries, &probe, why) != 0)
        return gossip_drop(g, *why, why);
    if (h.type != MOS_GOSSIP_TYPE_VECTOR)
        return gossip_probe_input(g, now_ms, &h, &probe, why);
    sender = gossip_slot_of(g, g->entries[0].info.addr);
    if (sender == MOS_GOSSIP_NO_SLOT || sender == g->self)
        return gossip_drop(g, MOS_GOSSIP_DROP_UNKNOWN, why);
    if (gossip_replay_check(g, sender, &h) != 0)
        return gossip_drop(g, MOS_GOSSIP_DROP_REPLAY, why);
    gossip_merge(g, now_ms, h.n_entries);
    g->stats.accepted++;
    return 0;
}

size_t mos_gossip_n_nodes(const struct mos_gossip *g)
{
    return g->n;
}

uint32_t mos_gossip_self(const struct mos_gossip *g)
{
    return g->self;
}

void mos_gossip_node_get(const struct mos_gossip *g, uint32_t now_ms, size_t i,
                         struct mos_gossip_node *out)
{
    const struct gossip_peer *p;

    memset(out, 0, sizeof(*out));
    if (i >= g->n)
        return;
    p = &g->peers[i];
    out->name = g->cfg->nodes[i].name;
    out->addr = g->cfg->nodes[i].addr;
    out->info = p->info;
    out->age_ms = mos_gossip_core_age(g->core, now_ms, (uint32_t)i);
    if (out->age_ms == MOS_GOSSIP_AGE_UNKNOWN)
        out->state = MOS_GOSSIP_UNKNOWN;
    else if (i != g->self && (p->info.flags & MOS_GOSSIP_F_LEAVING))
        out->state = MOS_GOSSIP_LEFT;
    else if (p->dead) /* by our probes, or by a notice before our own limit */
        out->state = MOS_GOSSIP_DEAD;
    else if (mos_gossip_core_alive(g->core, now_ms, (uint32_t)i))
        out->state = MOS_GOSSIP_ALIVE;
    else /* suspect, or past the limit since our last step: not dead before the probes tell */
        out->state = MOS_GOSSIP_SUSPECT;
}

void mos_gossip_stats_get(const struct mos_gossip *g, struct mos_gossip_stats *out)
{
    *out = g->stats;
}

void mos_gossip_set_test_loss(struct mos_gossip *g, double fraction)
{
    g->test_loss = fraction;
}
