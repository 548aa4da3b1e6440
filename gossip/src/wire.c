/* Gossip datagram v1: encoding and the checking parser (layout in gossip_wire.h), with the
 * shared framing of mos/frame.h. */
#include "gossip_wire.h"

#include "mos/frame.h"
#include "mos/status.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* Entry layout (64 bytes, little-endian). */
enum {
    E_ADDR = 0,       /* 16 */
    E_AGE = 16,       /* u32 ms */
    E_FLAGS = 20,     /* u32 */
    E_NCPUS = 24,     /* u16 */
    E_NUMA = 26,      /* u16 */
    E_SPEED = 28,     /* u32 */
    E_LOAD = 32,      /* u32 */
    E_UTIL = 36,      /* u16 */
    E_GUESTS = 38,    /* u16 */
    E_MEM_TOTAL = 40, /* u32 MiB */
    E_MEM_FREE = 44,  /* u32 MiB */
    E_TRANSPORTS = 48, /* u32 */
    E_RESERVED = 52,  /* 12 bytes, zero when sent, ignored when read */
};

/* Header layout (32 bytes): the common mos frame header (magic, version, type, length of
 * what follows the 32 bytes: entries and MAC), then gossip's own fields. */
enum {
    H_ENTRY_SIZE = MOS_FRAME_HDR_BYTES, /* u16 */
    H_COUNT = 14,                       /* u16 */
    H_BOOT = 16,                        /* u64 */
    H_SEQ = 24,                         /* u64 */
};
#define BODY_MAX_BYTES (MOS_GOSSIP_MAX_DATAGRAM - MOS_GOSSIP_HEADER_BYTES)

/* Probe block layout (64 bytes). */
enum {
    P_SENDER = 0,     /* 16 */
    P_TARGET = 16,    /* 16 */
    P_REQUESTER = 32, /* 16 */
    P_NONCE = 48,     /* u64 */
    P_RESERVED = 56,  /* 8 bytes, zero when sent, ignored when read */
};
#define PROBE_BODY_BYTES (MOS_GOSSIP_PROBE_DATAGRAM - MOS_GOSSIP_HEADER_BYTES)

static bool is_probe_type(uint16_t type)
{
    return type == MOS_GOSSIP_TYPE_PING || type == MOS_GOSSIP_TYPE_PING_REQ ||
           type == MOS_GOSSIP_TYPE_ACK || type == MOS_GOSSIP_TYPE_DEAD;
}

static bool length_ok(uint16_t type, uint32_t length)
{
    if (is_probe_type(type))
        return length == PROBE_BODY_BYTES;
    return type == MOS_GOSSIP_TYPE_VECTOR && length <= BODY_MAX_BYTES;
}

static const struct mos_frame_proto gossip_proto = {
    .magic = MOS_GOSSIP_MAGIC,
    .version = MOS_GOSSIP_VERSION,
    .length_ok = length_ok,
};

static const char *const drop_names[MOS_GOSSIP_DROP_REASONS] = {
    [MOS_GOSSIP_DROP_SHORT] = "short",     [MOS_GOSSIP_DROP_MAGIC] = "magic",
    [MOS_GOSSIP_DROP_VERSION] = "version", [MOS_GOSSIP_DROP_MAC] = "mac",
    [MOS_GOSSIP_DROP_FORMAT] = "format",   [MOS_GOSSIP_DROP_ENTRY] = "entry",
    [MOS_GOSSIP_DROP_UNKNOWN] = "unknown", [MOS_GOSSIP_DROP_REPLAY] = "replay",
    [MOS_GOSSIP_DROP_TEST_LOSS] = "test_loss",
};

const char *mos_gossip_drop_name(enum mos_gossip_drop why)
{
    return (unsigned)why < MOS_GOSSIP_DROP_REASONS ? drop_names[why] : "?";
}

static void entry_encode(const struct mos_gossip_wire_entry *e, uint8_t *p)
{
    const struct mos_gossip_info *i = &e->info;

    memset(p, 0, MOS_GOSSIP_ENTRY_BYTES);
    memcpy(p + E_ADDR, i->addr, sizeof(i->addr));
    mos_put_le32(p + E_AGE, e->age_ms);
    mos_put_le32(p + E_FLAGS, i->flags);
    mos_put_le16(p + E_NCPUS, i->ncpus);
    mos_put_le16(p + E_NUMA, i->numa_nodes);
    mos_put_le32(p + E_SPEED, i->speed);
    mos_put_le32(p + E_LOAD, i->load_milli);
    mos_put_le16(p + E_UTIL, i->util_permille);
    mos_put_le16(p + E_GUESTS, i->guests);
    mos_put_le32(p + E_MEM_TOTAL, i->mem_total_mib);
    mos_put_le32(p + E_MEM_FREE, i->mem_free_mib);
    mos_put_le32(p + E_TRANSPORTS, i->transports);
}

/* 0, or -1 if a field is out of range. */
static int entry_decode(const uint8_t *p, struct mos_gossip_wire_entry *e)
{
    struct mos_gossip_info *i = &e->info;

    memcpy(i->addr, p + E_ADDR, sizeof(i->addr));
    e->age_ms = mos_get_le32(p + E_AGE);
    i->flags = mos_get_le32(p + E_FLAGS);
    i->ncpus = mos_get_le16(p + E_NCPUS);
    i->numa_nodes = mos_get_le16(p + E_NUMA);
    i->speed = mos_get_le32(p + E_SPEED);
    i->load_milli = mos_get_le32(p + E_LOAD);
    i->util_permille = mos_get_le16(p + E_UTIL);
    i->guests = mos_get_le16(p + E_GUESTS);
    i->mem_total_mib = mos_get_le32(p + E_MEM_TOTAL);
    i->mem_free_mib = mos_get_le32(p + E_MEM_FREE);
    i->transports = mos_get_le32(p + E_TRANSPORTS);
    if (e->age_ms > MOS_GOSSIP_MAX_AGE_MS || i->util_permille > 1000 ||
        i->mem_free_mib > i->mem_total_mib)
        return -1;
    return 0;
}

static void header_encode(uint16_t type, const struct mos_gossip_wire_header *h, size_t n,
                          size_t len, uint8_t *buf)
{
    mos_frame_hdr_encode(&gossip_proto, type, (uint32_t)(len - MOS_GOSSIP_HEADER_BYTES), buf);
    mos_put_le16(buf + H_ENTRY_SIZE, MOS_GOSSIP_ENTRY_BYTES);
    mos_put_le16(buf + H_COUNT, (uint16_t)n);
    mos_put_le64(buf + H_BOOT, h->boot_id);
    mos_put_le64(buf + H_SEQ, h->seq);
}

static void mac_append(const mos_key_t *key, uint8_t *buf, size_t len)
{
    struct mos_mac_part part = {.data = buf, .len = len - MOS_MAC_BYTES};

    mos_key_mac(key, &part, 1, buf + len - MOS_MAC_BYTES);
}

int mos_gossip_wire_encode(const mos_key_t *key, const struct mos_gossip_wire_header *h,
                           const struct mos_gossip_wire_entry *entries, size_t n, uint8_t *buf,
                           size_t cap)
{
    size_t len = mos_gossip_wire_size(n);

    if (!key || !h || !entries || !buf || n == 0 || n > MOS_GOSSIP_MAX_ENTRIES)
        return -EINVAL;
    if (cap < len)
        return -ENOSPC;
    header_encode(MOS_GOSSIP_TYPE_VECTOR, h, n, len, buf);
    for (size_t i = 0; i < n; i++)
        entry_encode(&entries[i], buf + MOS_GOSSIP_HEADER_BYTES + i * MOS_GOSSIP_ENTRY_BYTES);
    mac_append(key, buf, len);
    return (int)len;
}

int mos_gossip_wire_encode_probe(const mos_key_t *key, uint16_t type,
                                 const struct mos_gossip_wire_header *h,
                                 const struct mos_gossip_wire_entry *entry,
                                 const struct mos_gossip_wire_probe *probe, uint8_t *buf,
                                 size_t cap)
{
    const size_t len = MOS_GOSSIP_PROBE_DATAGRAM;
    uint8_t *p = buf + MOS_GOSSIP_HEADER_BYTES + MOS_GOSSIP_ENTRY_BYTES;

    if (!key || !h || !entry || !probe || !buf || !is_probe_type(type))
        return -EINVAL;
    if (cap < len)
        return -ENOSPC;
    header_encode(type, h, 1, len, buf);
    entry_encode(entry, buf + MOS_GOSSIP_HEADER_BYTES);
    memset(p, 0, MOS_GOSSIP_PROBE_BYTES);
    memcpy(p + P_SENDER, probe->sender, 16);
    memcpy(p + P_TARGET, probe->target, 16);
    memcpy(p + P_REQUESTER, probe->requester, 16);
    mos_put_le64(p + P_NONCE, probe->nonce);
    mac_append(key, buf, len);
    return (int)len;
}

/* A probe's block; the entry (decoded already) must be the sender's own at age 0 in a ping or
 * ping-req, the target's in an ack or a death notice. 0, or -1 (an entry problem). */
static int probe_decode(uint16_t type, const uint8_t *p, const struct mos_gossip_wire_entry *e,
                        struct mos_gossip_wire_probe *probe)
{
    memcpy(probe->sender, p + P_SENDER, 16);
    memcpy(probe->target, p + P_TARGET, 16);
    memcpy(probe->requester, p + P_REQUESTER, 16);
    probe->nonce = mos_get_le64(p + P_NONCE);
    if (type == MOS_GOSSIP_TYPE_ACK || type == MOS_GOSSIP_TYPE_DEAD)
        return memcmp(e->info.addr, probe->target, 16) == 0 ? 0 : -1;
    return memcmp(e->info.addr, probe->sender, 16) == 0 && e->age_ms == 0 ? 0 : -1;
}

int mos_gossip_wire_parse(const mos_key_t *key, const uint8_t *buf, size_t len,
                          struct mos_gossip_wire_header *h,
                          struct mos_gossip_wire_entry *entries,
                          struct mos_gossip_wire_probe *probe, enum mos_gossip_drop *why)
{
    struct mos_frame_hdr fh;
    size_t n;
    int rc;

    if (len < mos_gossip_wire_size(0) || len > MOS_GOSSIP_MAX_DATAGRAM) {
        *why = len < mos_gossip_wire_size(0) ? MOS_GOSSIP_DROP_SHORT : MOS_GOSSIP_DROP_FORMAT;
        return -1;
    }
    /* The header is cheap to check and needs no key: a datagram that is not gossip, or not of
     * this version, type and length, is dropped before the MAC is computed. */
    rc = mos_frame_hdr_decode(&gossip_proto, buf, len, &fh);
    if (rc == 0 && fh.length != len - MOS_GOSSIP_HEADER_BYTES)
        rc = MOS_E_PROTO;
    if (rc != 0) {
        /* MOS_E_PROTO is a wrong magic, or a wrong type or length after a right magic. */
        if (rc == MOS_E_VERSION)
            *why = MOS_GOSSIP_DROP_VERSION;
        else
            *why = mos_get_le32(buf) != MOS_GOSSIP_MAGIC ? MOS_GOSSIP_DROP_MAGIC
                                                         : MOS_GOSSIP_DROP_FORMAT;
        return -1;
    }
    /* The MAC needs only the length: check it before trusting any count in the datagram. */
    struct mos_mac_part part = {.data = buf, .len = len - MOS_MAC_BYTES};
    if (mos_key_mac_verify(key, &part, 1, buf + len - MOS_MAC_BYTES) != 0) {
        *why = MOS_GOSSIP_DROP_MAC;
        return -1;
    }
    n = mos_get_le16(buf + H_COUNT);
    h->type = fh.type;
    if (mos_get_le16(buf + H_ENTRY_SIZE) != MOS_GOSSIP_ENTRY_BYTES || n == 0 ||
        n > MOS_GOSSIP_MAX_ENTRIES ||
        (is_probe_type(fh.type) ? n != 1 : len != mos_gossip_wire_size(n))) {
        *why = MOS_GOSSIP_DROP_FORMAT;
        return -1;
    }
    h->n_entries = (uint16_t)n;
    h->boot_id = mos_get_le64(buf + H_BOOT);
    h->seq = mos_get_le64(buf + H_SEQ);
    for (size_t i = 0; i < n; i++) {
        if (entry_decode(buf + MOS_GOSSIP_HEADER_BYTES + i * MOS_GOSSIP_ENTRY_BYTES,
                         &entries[i]) != 0) {
            *why = MOS_GOSSIP_DROP_ENTRY;
            return -1;
        }
    }
    if (is_probe_type(fh.type)) {
        const uint8_t *p = buf + MOS_GOSSIP_HEADER_BYTES + MOS_GOSSIP_ENTRY_BYTES;
        if (probe_decode(fh.type, p, &entries[0], probe) != 0) {
            *why = MOS_GOSSIP_DROP_ENTRY;
            return -1;
        }
        return 0;
    }
    /* The sender's own entry comes first and is news of this very moment. */
    if (entries[0].age_ms != 0) {
        *why = MOS_GOSSIP_DROP_ENTRY;
        return -1;
    }
    return 0;
}
