/* Randomized gossip of node state with guaranteed ages (Amar, Barak, Drezner, Okun 2009).
 *
 * Every node keeps a vector with an entry per configured node: what that node last said about
 * itself (struct mos_gossip_info) and how old that news is. Every time step a node refreshes
 * its own entry and sends it with the W youngest other entries to one node chosen at random;
 * the receiver keeps, per node, the younger news. Ages travel, never timestamps.
 *
 * Three layers: the algorithm (private to the library: src/gossip_core.h), the protocol
 * (mos_gossip_step and mos_gossip_input: datagrams in and out, no I/O), and the UDP I/O
 * (mos_gossip_open and the on_timer / on_readable calls a caller's event loop makes). The
 * datagram layout is private too (src/gossip_wire.h); the simulator that runs the algorithm
 * for thousands of nodes in one process is mos/gossip_sim.h. */
#ifndef MOS_GOSSIP_H
#define MOS_GOSSIP_H

#include "mos/config.h"
#include "mos/key.h"

#include <stddef.h>
#include <stdint.h>

/* Random 64-bit numbers, uniform; gossip draws everything from here so a seeded source makes
 * a run reproducible. */
typedef uint64_t (*mos_gossip_rand_fn)(void *arg);

struct mos_gossip_rng {
    mos_gossip_rand_fn next;
    void *arg;
};

/* A small seeded generator (splitmix64) for tests and the simulator. */
struct mos_gossip_splitmix {
    uint64_t state;
};
uint64_t mos_gossip_splitmix_next(void *splitmix);

#define MOS_GOSSIP_AGE_UNKNOWN UINT32_MAX
/* The most other entries one datagram carries with the sender's own (gossip_window's limit). */
#define MOS_GOSSIP_MAX_WINDOW 999
/* The largest datagram: a buffer this long always holds mos_gossip_step's output. */
#define MOS_GOSSIP_MAX_DATAGRAM 64064

/* Node flags, as gossiped. Unknown bits are carried and ignored (newer senders). */
enum mos_gossip_flag {
    MOS_GOSSIP_F_ACCEPTING = 1u << 0, /* takes guests */
    MOS_GOSSIP_F_BLOCKED = 1u << 1,   /* administratively blocked: no new guests, none leave */
    MOS_GOSSIP_F_LEAVING = 1u << 2,   /* shutting down: forget it as a target */
};

/* Transports a node offers (bitmask). */
enum mos_gossip_transport {
    MOS_GOSSIP_T_TCP = 1u << 0,
    MOS_GOSSIP_T_VERBS = 1u << 1,
};

/* What a node says about itself: the payload of its entry. */
struct mos_gossip_info {
    uint8_t addr[16];        /* IPv6, or IPv4 mapped (::ffff:a.b.c.d): the node's identity */
    uint32_t flags;          /* enum mos_gossip_flag */
    uint16_t ncpus;          /* online CPUs this node offers */
    uint16_t numa_nodes;
    uint32_t speed;          /* relative speed of one CPU (see gossip_probe.h) */
    uint32_t load_milli;     /* smoothed run-queue length per CPU, x1000 */
    uint16_t util_permille;  /* CPU utilization, 0..1000 */
    uint16_t guests;         /* guest processes running here */
    uint32_t mem_total_mib;
    uint32_t mem_free_mib;   /* available memory (MemAvailable) */
    uint32_t transports;     /* enum mos_gossip_transport */
};

/* Why a datagram was dropped; the library counts each. */
enum mos_gossip_drop {
    MOS_GOSSIP_DROP_SHORT = 0, /* shorter than header + MAC */
    MOS_GOSSIP_DROP_MAGIC,     /* not a gossip datagram */
    MOS_GOSSIP_DROP_VERSION,   /* another wire version */
    MOS_GOSSIP_DROP_MAC,       /* wrong cluster key or altered */
    MOS_GOSSIP_DROP_FORMAT,    /* type, entry size, count or length inconsistent or over limits */
    MOS_GOSSIP_DROP_ENTRY,     /* an entry's field out of range */
    MOS_GOSSIP_DROP_UNKNOWN,   /* sender not in the configured node list */
    MOS_GOSSIP_DROP_REPLAY,    /* sequence not newer than the last of that boot, or an older boot */
    MOS_GOSSIP_DROP_TEST_LOSS, /* dropped on purpose by the test-only loss setting */
    MOS_GOSSIP_DROP_REASONS
};

/* Short name of a drop reason ("short", "magic", ...). */
const char *mos_gossip_drop_name(enum mos_gossip_drop why);

/* Expected ages, in time steps, of a gossip vector for n nodes that each send `window`
 * entries per step (the paper's window: the sender's own entry included) to one random node.
 * mos sends its own entry plus W others: its expectation is mos_gossip_model(n, W + 1).
 * Ages are real elapsed time, observed at step boundaries, with nodes ticking at independent
 * phases (as daemons do). */
struct mos_gossip_age_model {
    double avg_age;   /* expected average age of a vector entry */
    double max_age;   /* expected maximum age of an entry */
    double window_age; /* expected mean age of the entries in a sent window */
};

/* Fill model for n >= 2 nodes and 1 <= window < n. Returns 0 or -EINVAL. */
int mos_gossip_model(unsigned n, unsigned window, struct mos_gossip_age_model *model);

/* The automatic limit, in steps, past which an entry makes its node suspect (dead_after_steps
 * = 0): above the largest age the algorithm produces for n nodes sending `window` others
 * (simulated at this size up to 256 nodes, else the model's maximum), at least 10. Takes up
 * to about 0.3 s (the simulation). */
uint32_t mos_gossip_auto_limit_steps(unsigned n, unsigned window);

enum mos_gossip_state {
    MOS_GOSSIP_UNKNOWN = 0, /* no news ever */
    MOS_GOSSIP_ALIVE,
    MOS_GOSSIP_DEAD,        /* presumed dead: news older than the limit, and no probe answered */
    MOS_GOSSIP_LEFT,        /* announced that it leaves */
    MOS_GOSSIP_SUSPECT,     /* news older than the limit, being probed: gets nothing new, but
                             * is not reported dead */
};

const char *mos_gossip_state_name(enum mos_gossip_state state);

/* One entry of the vector as this node sees it. */
struct mos_gossip_node {
    const char *name; /* from the configuration */
    const char *addr;
    struct mos_gossip_info info;
    uint32_t age_ms; /* MOS_GOSSIP_AGE_UNKNOWN if no news ever */
    enum mos_gossip_state state;
};

struct mos_gossip_stats {
    uint64_t steps, sent, send_errors, received, accepted;
    uint64_t bytes_sent; /* every datagram sent: vectors and probes */
    uint64_t entries_news, entries_unknown_node;
    uint64_t dropped[MOS_GOSSIP_DROP_REASONS];
    uint64_t presumed_dead, returned, left;
    uint64_t suspected;  /* entries that passed the limit (each then probed) */
    uint64_t refuted;    /* suspects that turned out alive (news or an answer) */
    uint64_t probes;     /* probe datagrams queued: pings, ping-reqs, acks and relayed acks */
    uint64_t probe_acks; /* acks that answered one of our probes */
    uint64_t probes_dropped; /* probe datagrams not queued (queue full) or not sendable */
    uint64_t notices_sent;   /* death notices sent: one per node told of a death we found */
    uint64_t notices_taken;  /* nodes presumed dead on another node's notice */
    uint64_t notices_ignored; /* notices of nodes we had news of within half the limit */
};

/* How many other nodes a suspecting node asks to probe the suspect as well. */
#define MOS_GOSSIP_PROBE_RELAYS 3
/* The probe deadline: this many steps, and at least MOS_GOSSIP_PROBE_MIN_MS. */
#define MOS_GOSSIP_PROBE_STEPS 3
#define MOS_GOSSIP_PROBE_MIN_MS 250

struct mos_gossip_params {
    const struct mos_config *cfg;     /* nodes, gossip_port, interval, window, dead_after_steps */
    int self;                         /* this node's index in cfg->nodes */
    const mos_key_t *key;
    const struct mos_gossip_rng *rng; /* NULL: a generator seeded from the kernel */
    /* Called at every step, before the own entry is sent, to refresh it (e.g. from the probe,
     * gossip_probe.h); NULL: the entry stays what mos_gossip_set_local last set. */
    void (*refresh)(void *arg, struct mos_gossip_info *own);
    void *refresh_arg;
    /* This start's boot id; later starts must give larger ids (receivers refuse older boots).
     * 0: the wall clock now, in ns. */
    uint64_t boot_id;
};

struct mos_gossip;

/* Make a gossip instance (no socket yet). Returns 0, -EINVAL (bad parameters, logged) or
 * -ENOMEM. The configuration must outlive it. */
int mos_gossip_create(const struct mos_gossip_params *params, struct mos_gossip **out);
void mos_gossip_destroy(struct mos_gossip *g);

/* What this node says about itself from now on (the address is filled in here). */
void mos_gossip_set_local(struct mos_gossip *g, const struct mos_gossip_info *info);

/* --- protocol, no I/O: the caller passes the time (ms, any monotonic origin) ------------ */

/* The UDP layer's clock: monotonic milliseconds, wrapping every 49 days (compared wrap-safely).
 * Pass it to mos_gossip_node_get when the UDP layer runs the steps. */
uint32_t mos_gossip_now_ms(void);

/* This step's datagram: up to cap bytes into buf (MOS_GOSSIP_MAX_DATAGRAM always suffices).
 * Returns its length and the target slot, 0 if there is nobody to send to, or -errno. Also
 * marks nodes whose news grew older than the limit as presumed dead. */
int mos_gossip_step(struct mos_gossip *g, uint32_t now_ms, uint8_t *buf, size_t cap,
                    uint32_t *target);
/* The announcement that this node leaves: its own entry flagged MOS_GOSSIP_F_LEAVING. */
int mos_gossip_leave_datagram(struct mos_gossip *g, uint32_t now_ms, uint8_t *buf, size_t cap);
/* The next probe datagram waiting (pings, ping-reqs, acks; made by steps and inputs): up to
 * cap bytes into buf, *to the slot to send it to. Returns its length, 0 if none waits, or
 * -errno. Call it until 0 after every step and input. */
int mos_gossip_next_probe(struct mos_gossip *g, uint32_t now_ms, uint8_t *buf, size_t cap,
                          uint32_t *to);
/* A datagram arrived. Returns 0 if taken, or -1 with *why set and counted. */
int mos_gossip_input(struct mos_gossip *g, uint32_t now_ms, const uint8_t *buf, size_t len,
                     enum mos_gossip_drop *why);

size_t mos_gossip_n_nodes(const struct mos_gossip *g);
uint32_t mos_gossip_self(const struct mos_gossip *g);
/* Entry i (0..n_nodes-1) as of now_ms. */
void mos_gossip_node_get(const struct mos_gossip *g, uint32_t now_ms, size_t i,
                         struct mos_gossip_node *out);
void mos_gossip_stats_get(const struct mos_gossip *g, struct mos_gossip_stats *out);
/* Test only: drop this fraction of the received datagrams (counted as test_loss), for loss
 * tests where the kernel has no netem. */
void mos_gossip_set_test_loss(struct mos_gossip *g, double fraction);

/* --- UDP I/O ----------------------------------------------------------------------------- */

/* Bind a non-blocking UDP socket to this node's address and gossip port. Returns 0 or -errno
 * (logged). Put mos_gossip_fd in an event loop (mosd uses libevent), call on_readable when it
 * is readable and on_timer when next_timeout_ms has passed. */
int mos_gossip_open(struct mos_gossip *g);
int mos_gossip_fd(const struct mos_gossip *g);
/* Milliseconds until the next step is due (0: now). */
int mos_gossip_next_timeout_ms(const struct mos_gossip *g);
/* Run the step if it is due: refresh, send one datagram. Returns 0 or -errno. */
int mos_gossip_on_timer(struct mos_gossip *g);
/* Read every pending datagram. Returns how many were taken. */
int mos_gossip_on_readable(struct mos_gossip *g);
/* Send the leave announcement to up to `copies` nodes believed alive (0: all of them). It
 * goes to the nodes directly: gossip forwards an entry only while it is among the W youngest,
 * which a silent node's is for a step or two. Returns how many were sent. */
int mos_gossip_leave(struct mos_gossip *g, unsigned copies);
/* A poll(2) loop for programs without an event loop: serve for up to timeout_ms. */
int mos_gossip_run(struct mos_gossip *g, int timeout_ms);

#endif
