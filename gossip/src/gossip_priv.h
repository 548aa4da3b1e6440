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
};

struct mos_gossip {
    const struct mos_config *cfg;
    const mos_key_t *key;
    uint32_t self, n, interval_ms, window;
    uint32_t dead_steps; /* presumed dead past this age, in steps */
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
    /* UDP */
    int fd, family;
    uint32_t next_step_ms;
};

/* Slot of a wire address, or MOS_GOSSIP_NO_SLOT. */
uint32_t gossip_slot_of(const struct mos_gossip *g, const uint8_t addr[16]);

#endif
