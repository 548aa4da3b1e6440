/* Gossip datagram v1: encoding and the checking parser (layout in gossip_wire.h). */
#include "gossip_wire.h"

#include <errno.h>
#include <string.h>

/* Entry layout (64 bytes, big-endian). */
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

/* Header layout (32 bytes). */
enum {
    H_MAGIC = 0,      /* u32 */
    H_VERSION = 4,    /* u8 */
    H_TYPE = 5,       /* u8 */
    H_ENTRY_SIZE = 6, /* u16 */
    H_COUNT = 8,      /* u16 */
    H_FLAGS = 10,     /* u16, zero */
    H_BOOT = 12,      /* u64 */
    H_SEQ = 20,       /* u64 */
    H_RESERVED = 28,  /* u32, zero */
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

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void entry_encode(const struct mos_gossip_wire_entry *e, uint8_t *p)
{
    const struct mos_gossip_info *i = &e->info;

    memset(p, 0, MOS_GOSSIP_ENTRY_BYTES);
    memcpy(p + E_ADDR, i->addr, sizeof(i->addr));
    put32(p + E_AGE, e->age_ms);
    put32(p + E_FLAGS, i->flags);
    put16(p + E_NCPUS, i->ncpus);
    put16(p + E_NUMA, i->numa_nodes);
    put32(p + E_SPEED, i->speed);
    put32(p + E_LOAD, i->load_milli);
    put16(p + E_UTIL, i->util_permille);
    put16(p + E_GUESTS, i->guests);
    put32(p + E_MEM_TOTAL, i->mem_total_mib);
    put32(p + E_MEM_FREE, i->mem_free_mib);
    put32(p + E_TRANSPORTS, i->transports);
}

/* 0, or -1 if a field is out of range. */
static int entry_decode(const uint8_t *p, struct mos_gossip_wire_entry *e)
{
    struct mos_gossip_info *i = &e->info;

    memcpy(i->addr, p + E_ADDR, sizeof(i->addr));
    e->age_ms = get32(p + E_AGE);
    i->flags = get32(p + E_FLAGS);
    i->ncpus = get16(p + E_NCPUS);
    i->numa_nodes = get16(p + E_NUMA);
    i->speed = get32(p + E_SPEED);
    i->load_milli = get32(p + E_LOAD);
    i->util_permille = get16(p + E_UTIL);
    i->guests = get16(p + E_GUESTS);
    i->mem_total_mib = get32(p + E_MEM_TOTAL);
    i->mem_free_mib = get32(p + E_MEM_FREE);
    i->transports = get32(p + E_TRANSPORTS);
    if (e->age_ms > MOS_GOSSIP_MAX_AGE_MS || i->util_permille > 1000 ||
        i->mem_free_mib > i->mem_total_mib)
        return -1;
    return 0;
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
    memset(buf, 0, MOS_GOSSIP_HEADER_BYTES);
    put32(buf + H_MAGIC, MOS_GOSSIP_MAGIC);
    buf[H_VERSION] = MOS_GOSSIP_VERSION;
    buf[H_TYPE] = MOS_GOSSIP_TYPE_VECTOR;
    put16(buf + H_ENTRY_SIZE, MOS_GOSSIP_ENTRY_BYTES);
    put16(buf + H_COUNT, (uint16_t)n);
    put64(buf + H_BOOT, h->boot_id);
    put64(buf + H_SEQ, h->seq);
    for (size_t i = 0; i < n; i++)
        entry_encode(&entries[i], buf + MOS_GOSSIP_HEADER_BYTES + i * MOS_GOSSIP_ENTRY_BYTES);
    struct mos_mac_part part = {.data = buf, .len = len - MOS_MAC_BYTES};
    mos_key_mac(key, &part, 1, buf + len - MOS_MAC_BYTES);
    return (int)len;
}

int mos_gossip_wire_parse(const mos_key_t *key, const uint8_t *buf, size_t len,
                          struct mos_gossip_wire_header *h,
                          struct mos_gossip_wire_entry *entries, enum mos_gossip_drop *why)
{
    size_t n;

    if (len < mos_gossip_wire_size(0) || len > MOS_GOSSIP_MAX_DATAGRAM) {
        *why = len < mos_gossip_wire_size(0) ? MOS_GOSSIP_DROP_SHORT : MOS_GOSSIP_DROP_FORMAT;
        return -1;
    }
    if (get32(buf + H_MAGIC) != MOS_GOSSIP_MAGIC) {
        *why = MOS_GOSSIP_DROP_MAGIC;
        return -1;
    }
    if (buf[H_VERSION] != MOS_GOSSIP_VERSION) {
        *why = MOS_GOSSIP_DROP_VERSION;
        return -1;
    }
    /* The MAC needs only the length: check it before trusting any count in the datagram. */
    struct mos_mac_part part = {.data = buf, .len = len - MOS_MAC_BYTES};
    if (mos_key_mac_verify(key, &part, 1, buf + len - MOS_MAC_BYTES) != 0) {
        *why = MOS_GOSSIP_DROP_MAC;
        return -1;
    }
    n = get16(buf + H_COUNT);
    if (buf[H_TYPE] != MOS_GOSSIP_TYPE_VECTOR || get16(buf + H_ENTRY_SIZE) != MOS_GOSSIP_ENTRY_BYTES ||
        n == 0 || n > MOS_GOSSIP_MAX_ENTRIES || len != mos_gossip_wire_size(n)) {
        *why = MOS_GOSSIP_DROP_FORMAT;
        return -1;
    }
    h->n_entries = (uint16_t)n;
    h->boot_id = get64(buf + H_BOOT);
    h->seq = get64(buf + H_SEQ);
    for (size_t i = 0; i < n; i++) {
        if (entry_decode(buf + MOS_GOSSIP_HEADER_BYTES + i * MOS_GOSSIP_ENTRY_BYTES,
                         &entries[i]) != 0) {
            *why = MOS_GOSSIP_DROP_ENTRY;
            return -1;
        }
    }
    /* The sender's own entry comes first and is news of this very moment. */
    if (entries[0].age_ms != 0) {
        *why = MOS_GOSSIP_DROP_ENTRY;
        return -1;
    }
    return 0;
}
