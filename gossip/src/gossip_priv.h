/* The gossip instance, shared by the protocol (node.c) and the UDP layer (udp.c) only. */
#ifndef MOS_GOSSIP_PRIV_H
#define MOS_GOSSIP_PRIV_H

#include "gossip_core.h"
#include "gossip_wire.h"
#include "mos/gossip.h"

#include <netinet/in.h>
#include <sys/socket.h>

struct gossip_peer {
    uint8_t addr[16];               /* v4-mapped or IPv6: the identity on the wire */
    struct sockaddr_storage sa;     /* where to send: address and gossip port */
    socklen_t sa_len;
    struct mos_gossip_info info;    /* newest news */
    uint64_t boot_id, last_seq;     /* replay check of datagrams this peer sent */
    uint64_t refused_boot;          /* the last older boot refused (logged once) */
    /* Liveness beyond the entry's age: past the limit a peer is suspect and probed; only when
     * no probe is answered by the deadline is it presumed dead. */
    uint64_t probe_nonce;           /* of our probe of it in flight; 0: none */
    uint32_t probe_deadline;        /* ms: presumed dead if still suspect then... */
    uint32_t probe_steps;           /* ...and after this many of our own steps */
    uint8_t suspect, dead;
    uint8_t probing;                /* a suspect whose probe runs (others wait their turn) */
    /* Dead on another node's word (a death notice): news revives it only if it left the node
     * after this time (ms), when the notice's sender was already probing it in vain. */
    uint8_t dead_by_notice;
    uint32_t dead_mark_ms;
};

/* A death we found by our own probes, being told to the others, one node per datagram. */
struct gossip_notice {
    uint32_t dead; /* its slot */
    uint32_t next; /* the next slot to tell */
};

/* A probe datagram waiting to be sent (udp.c drains them after every step and read). */
struct gossip_probe_out {
    uint16_t type;
    uint32_t to, target, requester;
    uint64_t nonce;
};

/* A ping we sent for another node (a ping-req): its ack is forwarded there, once. */
struct gossip_relay {
    uint32_t requester, target;
    uint64_t nonce;
    uint32_t deadline;
};

#define GOSSIP_PROBE_QUEUE 64
/* Suspects probed at once: a node that suspects many at once is more likely slow itself, and
 * probing them all would add to the load that made it slow. The rest wait, still suspect. */
#define GOSSIP_PROBING_MAX 4
#define GOSSIP_RELAYS 16
/* Deaths told at once; a node that finds more at once is more likely cut off itself. */
#define GOSSIP_NOTICES 4

struct mos_gossip {
    const struct mos_config *cfg;
    const mos_key_t *key;
    uint32_t self, n, interval_ms, window;
    uint32_t dead_steps; /* suspect past this age, in steps */
    uint32_t probe_ms;   /* a suspect that answers no probe within this is presumed dead */
    uint32_t dead_after_ms; /* the limit now, in ms (it follows our pace) */
    uint32_t n_suspect, n_probing;
    uint32_t last_step_ms;  /* when the last step ran, and the mean period between steps: */
    double step_period_ms;  /* a node starved of CPU scales the limit by how late it runs */
    struct mos_gossip_core *core;
    struct gossip_peer *peers;
    uint32_t *by_addr;              /* slots sorted by addr, for lookups */
    struct mos_gossip_rng rng;
    void (*refresh)(void *arg, struct mos_gossip_info *own);
    void *refresh_arg;
    struct mos_gossip_splitmix own_rng;
    uint64_t boot_id, seq;
    double test_loss;
    struct mos_gossip_stats stats;
    /* scratch for one datagram */
    struct mos_gossip_item *items;
    struct mos_gossip_wire_entry *entries;
    uint8_t *results;
    uint8_t *buf;
    struct gossip_probe_out out[GOSSIP_PROBE_QUEUE];
    uint32_t out_head, out_n;
    struct gossip_relay relays[GOSSIP_RELAYS];
    struct gossip_notice notices[GOSSIP_NOTICES];
    uint32_t n_notices;
    /* UDP */
    int fd, family;
    uint32_t next_step_ms;
};

/* Slot of a wire address, or MOS_GOSSIP_NO_SLOT. */
uint32_t gossip_slot_of(const struct mos_gossip *g, const uint8_t addr[16]);

/* node.c, for suspect.c: count a drop; the replay check of a sender; merge g->entries[0..n). */
int gossip_drop(struct mos_gossip *g, enum mos_gossip_drop why, enum mos_gossip_drop *out);
int gossip_replay_check(struct mos_gossip *g, uint32_t slot,
                        const struct mos_gossip_wire_header *h);
void gossip_merge(struct mos_gossip *g, uint32_t now_ms, size_t n);

/* suspect.c: an entry passed the limit; every step: deadlines and repeated pings; a probe
 * datagram arrived (parsed, not yet replay-checked). */
void gossip_suspect(struct mos_gossip *g, uint32_t slot, uint32_t now_ms);
void gossip_probe_end(struct mos_gossip *g, struct gossip_peer *p);
void gossip_suspects_step(struct mos_gossip *g, uint32_t now_ms);
int gossip_probe_input(struct mos_gossip *g, uint32_t now_ms,
                       const struct mos_gossip_wire_header *h,
                       const struct mos_gossip_wire_probe *probe, enum mos_gossip_drop *why);

#endif
