/* libFuzzer target: arbitrary bytes as a gossip datagram never crash the parser or the
 * protocol. Odd first bytes get a valid MAC computed over the rest, so the fuzzer also
 * reaches the checks after the MAC (as from a key holder with a bug); with bit 1 of the first
 * byte set as well, the bytes also get a well-formed frame header (mos/frame.h) first, so the
 * entry checks are reached without the fuzzer having to find magic, version and length; bits
 * 2-4 of the first byte then choose its type: vector, ping, ping-req, ack (the probes of a
 * suspect), a death notice, or one no node sends. The probe datagrams the input makes are encoded and checked to parse back. */
#include "gossip_wire.h"
#include "mos/config.h"
#include "mos/gossip.h"
#include "mos/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}

static const mos_key_t key = {{9, 8, 7, 6, 5, 4, 3, 2, 1}};
static struct mos_config cfg;
static struct mos_gossip *g;

static void setup(void)
{
    static const char text[] = "[cluster]\nkey_file = /dev/null\ngossip_window = 3\n"
                               "[nodes]\na = 10.1.0.1\nb = 10.1.0.2\nc = 10.1.0.3\n"
                               "d = fd00::4\n";
    struct mos_gossip_splitmix sm = {.state = 1};
    static struct mos_gossip_rng rng;

    mos_log_set_sink(quiet, NULL);
    if (mos_config_parse(text, "fuzz", &cfg) != 0)
        abort();
    rng = (struct mos_gossip_rng){.next = mos_gossip_splitmix_next, .arg = malloc(sizeof(sm))};
    memcpy(rng.arg, &sm, sizeof(sm));
    struct mos_gossip_params p = {.cfg = &cfg, .self = 0, .key = &key, .rng = &rng};
    if (mos_gossip_create(&p, &g) != 0)
        abort();
}

/* What a probe made must be a datagram this very parser takes. */
static void drain_probes(uint32_t now)
{
    static struct mos_gossip_wire_entry entries[MOS_GOSSIP_MAX_ENTRIES];
    uint8_t out[MOS_GOSSIP_PROBE_DATAGRAM];
    struct mos_gossip_wire_header h;
    struct mos_gossip_wire_probe probe;
    enum mos_gossip_drop why;
    uint32_t to;
    int len;

    while ((len = mos_gossip_next_probe(g, now, out, sizeof(out), &to)) != 0) {
        if (len != MOS_GOSSIP_PROBE_DATAGRAM || to >= cfg.n_nodes ||
            mos_gossip_wire_parse(&key, out, (size_t)len, &h, entries, &probe, &why) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint32_t now = 1000;
    enum mos_gossip_drop why;
    uint8_t *buf;

    if (!g)
        setup();
    if (size == 0 || size > MOS_GOSSIP_MAX_DATAGRAM + 64)
        return 0;
    buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    if ((data[0] & 3) == 3 && size >= MOS_GOSSIP_HEADER_BYTES + MOS_MAC_BYTES) {
        const struct mos_frame_proto gossip = {.magic = MOS_GOSSIP_MAGIC,
                                               .version = MOS_GOSSIP_VERSION};
        mos_frame_hdr_encode(&gossip, (uint16_t)(MOS_GOSSIP_TYPE_VECTOR + ((data[0] >> 2) & 7)),
                             (uint32_t)(size - MOS_GOSSIP_HEADER_BYTES), buf);
    }
    if ((data[0] & 1) && size >= MOS_MAC_BYTES) {
        struct mos_mac_part part = {.data = buf, .len = size - MOS_MAC_BYTES};
        mos_key_mac(&key, &part, 1, buf + size - MOS_MAC_BYTES);
    }
    if (mos_gossip_input(g, now, buf, size, &why) != 0 && (unsigned)why >= MOS_GOSSIP_DROP_REASONS)
        abort();
    drain_probes(now);
    now += 37;
    free(buf);
    return 0;
}
