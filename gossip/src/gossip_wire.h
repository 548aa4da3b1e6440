/* The gossip datagram, version 1. One place defines it; README.md draws it. Private to the
 * gossip library (its tests and fuzzer include it from gossip/src); not installed.
 *
 *   header   32 bytes   the common mos frame header (mos/frame.h: magic "MOSG", version,
 *                       type, length of entries and mac), then entry size, entry count,
 *                       boot id, sequence number (all integers little-endian)
 *   entries  n x 64     the sender's own entry first (age 0), then the W youngest others
 *   mac      32 bytes   HMAC-SHA-256 with the cluster key over header and entries
 *
 * A parser checks, in this order and before using any of it: the length against the smallest
 * datagram, the magic, the version, the type and the header's length against the datagram's,
 * the MAC, then entry size and entry count against the limits and against the datagram's
 * length, then every entry's fields. The first failed check names the reason the datagram is
 * dropped (enum mos_gossip_drop). */
#ifndef MOS_GOSSIP_WIRE_H
#define MOS_GOSSIP_WIRE_H

#include "mos/frame.h"
#include "mos/gossip.h" /* struct mos_gossip_info, the flags, enum mos_gossip_drop */
#include "mos/key.h"

#include <stddef.h>
#include <stdint.h>

#define MOS_GOSSIP_MAGIC MOS_FRAME_MAGIC('M', 'O', 'S', 'G')
#define MOS_GOSSIP_VERSION 1
#define MOS_GOSSIP_TYPE_VECTOR 1
/* Probes of a suspect (SWIM style): one entry and a probe block instead of a window. */
#define MOS_GOSSIP_TYPE_PING 2     /* "answer me": to the suspect, from the suspecter or a relay */
#define MOS_GOSSIP_TYPE_PING_REQ 3 /* "ping the target for me": to a relay */
#define MOS_GOSSIP_TYPE_ACK 4      /* "the target answered": to the pinger, then to the requester */
/* "The target is dead": from a node whose probes of it all went unanswered, straight to every
 * node it believes alive (requester = sender; the entry is the target's as the sender knew it). */
#define MOS_GOSSIP_TYPE_DEAD 5
#define MOS_GOSSIP_PROBE_BYTES 64
#define MOS_GOSSIP_HEADER_BYTES 32
#define MOS_GOSSIP_ENTRY_BYTES 64
/* 1000 entries keep a datagram (64,064 bytes) under the 65,507 bytes UDP carries over IPv4. */
#define MOS_GOSSIP_MAX_ENTRIES 1000
_Static_assert(MOS_GOSSIP_MAX_DATAGRAM ==
                   MOS_GOSSIP_HEADER_BYTES + MOS_GOSSIP_MAX_ENTRIES * MOS_GOSSIP_ENTRY_BYTES +
                       MOS_MAC_BYTES,
               "mos/gossip.h promises callers this datagram size");
_Static_assert(MOS_GOSSIP_MAX_WINDOW == MOS_GOSSIP_MAX_ENTRIES - 1,
               "a window is every entry but the sender's own");
/* Ages beyond this (about 12 days in ms) are not news of anything alive; also keeps the
 * core's wrap-safe comparison of 32-bit stamps valid. */
#define MOS_GOSSIP_MAX_AGE_MS (1u << 30)

struct mos_gossip_wire_entry {
    struct mos_gossip_info info;
    uint32_t age_ms;
};

/* A probe datagram's block (after its one entry). The entry is the sender's own (age 0) in a
 * ping or ping-req, the target's (its age as the sender knows it) in an ack or a death notice. */
struct mos_gossip_wire_probe {
    uint8_t sender[16];    /* who sends this datagram: the identity for the replay check */
    uint8_t target[16];    /* the suspect */
    uint8_t requester[16]; /* the suspecting node, which wants the ack */
    uint64_t nonce;        /* the requester's, echoed: an ack answers one probe, once */
};

struct mos_gossip_wire_header {
    uint16_t type;      /* MOS_GOSSIP_TYPE_*: set by the parser */
    uint16_t n_entries;
    uint64_t boot_id; /* the sender's start (CLOCK_REALTIME ns): larger = later; resets seq */
    uint64_t seq;     /* grows by one per datagram of this boot (replays are dropped) */
};

/* Bytes of a datagram with n entries. */
static inline size_t mos_gossip_wire_size(size_t n_entries)
{
    return MOS_GOSSIP_HEADER_BYTES + n_entries * MOS_GOSSIP_ENTRY_BYTES + MOS_MAC_BYTES;
}

/* Write a datagram into buf (cap bytes). n must be 1..MOS_GOSSIP_MAX_ENTRIES. Returns its
 * length, or -EINVAL / -ENOSPC. */
int mos_gossip_wire_encode(const mos_key_t *key, const struct mos_gossip_wire_header *header,
                           const struct mos_gossip_wire_entry *entries, size_t n, uint8_t *buf,
                           size_t cap);

/* Bytes of a probe datagram: header, one entry, the probe block, MAC. */
#define MOS_GOSSIP_PROBE_DATAGRAM                                                              \
    (MOS_GOSSIP_HEADER_BYTES + MOS_GOSSIP_ENTRY_BYTES + MOS_GOSSIP_PROBE_BYTES + MOS_MAC_BYTES)

/* Write a probe datagram of type (PING, PING_REQ, ACK or DEAD) into buf. Returns its length, or
 * -EINVAL / -ENOSPC. */
int mos_gossip_wire_encode_probe(const mos_key_t *key, uint16_t type,
                                 const struct mos_gossip_wire_header *header,
                                 const struct mos_gossip_wire_entry *entry,
                                 const struct mos_gossip_wire_probe *probe, uint8_t *buf,
                                 size_t cap);

/* Check and decode a datagram of any type. entries must have room for MOS_GOSSIP_MAX_ENTRIES;
 * probe is filled for the probe types (header->type says which). Returns 0, or -1 with *why
 * set (nothing of the datagram may then be used). */
int mos_gossip_wire_parse(const mos_key_t *key, const uint8_t *buf, size_t len,
                          struct mos_gossip_wire_header *header,
                          struct mos_gossip_wire_entry *entries,
                          struct mos_gossip_wire_probe *probe, enum mos_gossip_drop *why);

#endif
