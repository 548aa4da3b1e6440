/* The gossip algorithm without I/O: one node's view of the ages of every node's newest news.
 * Private to the gossip library (its tests include it from gossip/src); not installed.
 *
 * Pure functions driven by two events, "a time step passed" (mos_gossip_core_tick) and "a
 * window arrived" (mos_gossip_core_receive), with the time and the random source passed in. The
 * UDP library (mos/gossip.h) and the simulator (mos/gossip_sim.h) run this same code: the library
 * with its monotonic clock in milliseconds, the simulator with one process holding thousands
 * of cores and a simulated clock.
 *
 * Time is in caller units (the library: milliseconds). Internally an entry is the local time
 * at which its news was produced at its origin (a 32-bit "stamp", compared wrap-safely), so
 * ageing costs nothing; only ages (now - stamp) ever leave the core. A node is identified by
 * its slot, 0..n_slots-1 (the index in the configured node list). */
#ifndef MOS_GOSSIP_CORE_H
#define MOS_GOSSIP_CORE_H

#include "mos/gossip.h" /* the random source, MOS_GOSSIP_AGE_UNKNOWN */

#include <stddef.h>
#include <stdint.h>

#define MOS_GOSSIP_NO_SLOT UINT32_MAX

struct mos_gossip_core_params {
    uint32_t n_slots;    /* nodes in the cluster, 1..65536 */
    uint32_t self;       /* this node's slot */
    uint32_t window;     /* W: other entries sent with the own one, >= 1 */
    uint32_t dead_after; /* an entry older than this (time units) marks its node presumed dead */
};

/* One entry of an outgoing window: whose news, and how old it is now. */
struct mos_gossip_item {
    uint32_t slot;
    uint32_t age;
};

enum mos_gossip_merge_result {
    MOS_GOSSIP_MERGE_STALE = 0,    /* not younger than what we hold: ignored */
    MOS_GOSSIP_MERGE_NEWS = 1,     /* younger: taken */
    MOS_GOSSIP_MERGE_RETURNED = 2, /* taken, and the node was unknown or presumed dead before */
};

struct mos_gossip_core;

/* Make a core at time now: only its own entry is known. Returns 0, -EINVAL or -ENOMEM. */
int mos_gossip_core_create(const struct mos_gossip_core_params *params, uint32_t now,
                           struct mos_gossip_core **out);
void mos_gossip_core_destroy(struct mos_gossip_core *core);

/* The same in caller memory (64-byte aligned, mos_gossip_core_bytes long, nothing to
 * destroy): the simulator puts thousands of cores in one huge-page arena. */
size_t mos_gossip_core_bytes(const struct mos_gossip_core_params *params);
int mos_gossip_core_init(void *mem, size_t len, const struct mos_gossip_core_params *params,
                         uint32_t now, struct mos_gossip_core **out);

/* Forget everything but the own entry (a restart). */
void mos_gossip_core_reset(struct mos_gossip_core *core, uint32_t now);

/* One time step: refresh the own entry (age 0), choose the target and fill items with the
 * own entry followed by the (at most W) youngest other entries not older than dead_after.
 * items must hold window + 1 entries. Returns the number of items; *target is the slot to
 * send to, or MOS_GOSSIP_NO_SLOT when the cluster has one node. The target is uniformly
 * random among the nodes believed alive (with probability 1/alive among all configured
 * nodes, so that nodes presumed dead hear from us when they come back), and uniformly random
 * among all configured nodes while none is known. */
size_t mos_gossip_core_tick(struct mos_gossip_core *core, uint32_t now,
                            const struct mos_gossip_rng *rng, uint32_t *target,
                            struct mos_gossip_item *items);

/* A window arrived: for each item, news of node slot that is age units old; the younger news
 * wins. Items naming this node or a slot out of range are ignored. If results is not NULL,
 * results[i] receives the enum mos_gossip_merge_result of items[i]. Returns the number of
 * items taken (news). */
size_t mos_gossip_core_receive(struct mos_gossip_core *core, uint32_t now,
                               const struct mos_gossip_item *items, size_t n, uint8_t *results);

/* Hints for a caller that runs many cores (the simulator), each cold in the caches: start the
 * loads a later call will need, so that they overlap the work on other cores. _header: the
 * core's own fields (call it first, well ahead); _receive: what receiving these items will
 * read (the header should be in cache by then); _tick: what the next tick reads. No effect on
 * results. */
void mos_gossip_core_prefetch_header(const struct mos_gossip_core *core);
void mos_gossip_core_prefetch_receive(const struct mos_gossip_core *core,
                                      const struct mos_gossip_item *items, size_t n);
void mos_gossip_core_prefetch_tick(const struct mos_gossip_core *core);

/* Age of the newest news of slot, or MOS_GOSSIP_AGE_UNKNOWN if none ever arrived. */
uint32_t mos_gossip_core_age(const struct mos_gossip_core *core, uint32_t now, uint32_t slot);

/* Mark a node as having left (it announced it) or not; a node that left is not chosen as a
 * target and counts as not alive until news without the mark arrives. */
void mos_gossip_core_set_left(struct mos_gossip_core *core, uint32_t slot, int left);

/* Change dead_after (time units, 1..INT32_MAX; others ignored): entries already marked past it
 * stay marked until news comes. */
void mos_gossip_core_set_dead_after(struct mos_gossip_core *core, uint32_t dead_after);

/* Whether slot is believed alive: known, not older than dead_after, not left. */
int mos_gossip_core_alive(const struct mos_gossip_core *core, uint32_t now, uint32_t slot);

/* Walk every entry and mark those older than dead_after as presumed dead, calling on_dead
 * (if not NULL) once for each newly dead one. O(n_slots): the library calls it every step;
 * the simulator, for thousands of nodes, less often. Returns the number of newly dead. */
size_t mos_gossip_core_expire(struct mos_gossip_core *core, uint32_t now,
                              void (*on_dead)(void *arg, uint32_t slot), void *arg);

/* Nodes believed alive as of the last expire and merges (the own node included). */
uint32_t mos_gossip_core_n_alive(const struct mos_gossip_core *core);
uint32_t mos_gossip_core_n_slots(const struct mos_gossip_core *core);
uint32_t mos_gossip_core_window(const struct mos_gossip_core *core);

#endif
