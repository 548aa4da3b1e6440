/* The wire format, the protocol between instances (no sockets: datagrams handed over in
 * memory) and the probe's /proc parsers fed from fixtures. */
#include "gossip_wire.h"
#include "probe_parse.h"
#include "mos/config.h"
#include "mos/gossip.h"
#include "mos/gossip_probe.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static mos_key_t key = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                         17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}};
static uint8_t buf[MOS_GOSSIP_MAX_DATAGRAM];
static struct mos_gossip_wire_entry entries[MOS_GOSSIP_MAX_ENTRIES];
static struct mos_gossip_wire_probe wprobe;
#define GOSSIP_PROBING_MAX_EXPECTED 4 /* suspect.c's GOSSIP_PROBING_MAX */

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}

static int encode_n(size_t n, const mos_key_t *k)
{
    struct mos_gossip_wire_header h = {.n_entries = (uint16_t)n, .boot_id = 7, .seq = 9};
    struct mos_gossip_wire_entry e[3];

    memset(e, 0, sizeof(e));
    for (size_t i = 0; i < n && i < 3; i++) {
        e[i].info.addr[15] = (uint8_t)(i + 1);
        e[i].info.ncpus = 4;
        e[i].info.load_milli = 1500;
        e[i].info.util_permille = 250;
        e[i].info.mem_total_mib = 1000;
        e[i].info.mem_free_mib = 600;
        e[i].info.transports = MOS_GOSSIP_T_TCP;
        e[i].age_ms = i == 0 ? 0 : 1234 * (uint32_t)i;
    }
    return mos_gossip_wire_encode(k, &h, e, n, buf, sizeof(buf));
}

static void test_wire_roundtrip(void **state)
{
    (void)state;
    struct mos_gossip_wire_header h;
    enum mos_gossip_drop why;
    int len = encode_n(3, &key);

    assert_int_equal(len, (int)mos_gossip_wire_size(3));
    assert_int_equal(len, 32 + 3 * 64 + 32);
    /* the common frame header, little-endian: magic "MOSG", version, type, length after 32 */
    assert_memory_equal(buf, "MOSG", 4);
    assert_int_equal(mos_get_le16(buf + 4), MOS_GOSSIP_VERSION);
    assert_int_equal(mos_get_le16(buf + 6), MOS_GOSSIP_TYPE_VECTOR);
    assert_int_equal(mos_get_le32(buf + 8), 3 * 64 + 32);
    assert_int_equal(mos_get_le16(buf + 14), 3);
    assert_int_equal(mos_get_le64(buf + 16), 7);
    assert_int_equal(mos_gossip_wire_parse(&key, buf, (size_t)len, &h, entries, &wprobe, &why), 0);
    assert_int_equal(h.n_entries, 3);
    assert_int_equal(h.boot_id, 7);
    assert_int_equal(h.seq, 9);
    assert_int_equal(entries[2].age_ms, 2468);
    assert_int_equal(entries[1].info.addr[15], 2);
    assert_int_equal(entries[1].info.load_milli, 1500);
    assert_int_equal(entries[1].info.mem_free_mib, 600);
    assert_int_equal(mos_gossip_wire_encode(&key, &h, entries, 0, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(mos_gossip_wire_encode(&key, &h, entries, 2, buf, 100), -ENOSPC);
}

static void expect_drop(size_t len, enum mos_gossip_drop want)
{
    struct mos_gossip_wire_header h;
    enum mos_gossip_drop why = MOS_GOSSIP_DROP_REASONS;

    assert_int_equal(mos_gossip_wire_parse(&key, buf, len, &h, entries, &wprobe, &why), -1);
    assert_string_equal(mos_gossip_drop_name(why), mos_gossip_drop_name(want));
}

static void remac(size_t len)
{
    struct mos_mac_part p = {.data = buf, .len = len - MOS_MAC_BYTES};

    mos_key_mac(&key, &p, 1, buf + len - MOS_MAC_BYTES);
}

static void test_wire_drop_reasons(void **state)
{
    (void)state;
    mos_key_t other = key;
    size_t len;

    len = (size_t)encode_n(2, &key);
    expect_drop(40, MOS_GOSSIP_DROP_SHORT);
    buf[0] ^= 1;
    expect_drop(len, MOS_GOSSIP_DROP_MAGIC);
    len = (size_t)encode_n(2, &key);
    buf[4] = 2;
    expect_drop(len, MOS_GOSSIP_DROP_VERSION);
    other.bytes[0] ^= 0x80;
    len = (size_t)encode_n(2, &other);
    expect_drop(len, MOS_GOSSIP_DROP_MAC);
    len = (size_t)encode_n(2, &key);
    buf[100] ^= 4; /* one bit of an entry changed in flight */
    expect_drop(len, MOS_GOSSIP_DROP_MAC);
    len = (size_t)encode_n(2, &key);
    mos_put_le16(buf + 14, 3); /* count says 3, two present; MAC recomputed */
    remac(len);
    expect_drop(len, MOS_GOSSIP_DROP_FORMAT);
    len = (size_t)encode_n(2, &key);
    mos_put_le16(buf + 14, 0xffff); /* 65535 entries: over the limit */
    remac(len);
    expect_drop(len, MOS_GOSSIP_DROP_FORMAT);
    len = (size_t)encode_n(2, &key);
    mos_put_le16(buf + 12, 32); /* entry size 32 */
    remac(len);
    expect_drop(len, MOS_GOSSIP_DROP_FORMAT);
    len = (size_t)encode_n(2, &key);
    mos_put_le16(buf + 6, 9); /* unknown type */
    remac(len);
    expect_drop(len, MOS_GOSSIP_DROP_FORMAT);
    len = (size_t)encode_n(2, &key);
    mos_put_le32(buf + 8, (uint32_t)len); /* the header's length disagrees with the datagram's */
    remac(len);
    expect_drop(len, MOS_GOSSIP_DROP_FORMAT);
    len = (size_t)encode_n(2, &key);
    mos_put_le16(buf + 6, 9); /* a bad type is dropped before the MAC is even computed */
    expect_drop(len, MOS_GOSSIP_DROP_FORMAT);
    len = (size_t)encode_n(2, &key);
    mos_put_le16(buf + 32 + 64 + 36, 4096); /* utilization 4096 permille */
    remac(len);
    expect_drop(len, MOS_GOSSIP_DROP_ENTRY);
    len = (size_t)encode_n(2, &key);
    mos_put_le32(buf + 32 + 16, 5); /* the sender's own entry 5 ms old */
    remac(len);
    expect_drop(len, MOS_GOSSIP_DROP_ENTRY);
    /* Every truncation of a valid datagram is refused. */
    len = (size_t)encode_n(3, &key);
    for (size_t cut = 0; cut < len; cut++) {
        struct mos_gossip_wire_header h;
        enum mos_gossip_drop why;
        assert_int_equal(mos_gossip_wire_parse(&key, buf, cut, &h, entries, &wprobe, &why), -1);
    }
}

/* --- two instances talking through memory ------------------------------------------------ */

static const char conf_text[] = "[cluster]\nkey_file = /dev/null\ngossip_window = 2\n"
                                "dead_after_steps = 5\ngossip_interval_ms = 100\n"
                                "[nodes]\na = 10.1.0.1\nb = 10.1.0.2\nc = 10.1.0.3\n";

struct pair {
    struct mos_config cfg;
    struct mos_gossip *a, *b;
    struct mos_gossip_splitmix sa, sb;
    struct mos_gossip_rng ra, rb;
};

static void pair_make(struct pair *p, const mos_key_t *key_b)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(mos_config_parse(conf_text, "test", &p->cfg), 0);
    p->sa.state = 1;
    p->sb.state = 2;
    p->ra = (struct mos_gossip_rng){.next = mos_gossip_splitmix_next, .arg = &p->sa};
    p->rb = (struct mos_gossip_rng){.next = mos_gossip_splitmix_next, .arg = &p->sb};
    struct mos_gossip_params pa = {.cfg = &p->cfg, .self = 0, .key = &key, .rng = &p->ra};
    struct mos_gossip_params pb = {.cfg = &p->cfg, .self = 1, .key = key_b, .rng = &p->rb};
    assert_int_equal(mos_gossip_create(&pa, &p->a), 0);
    assert_int_equal(mos_gossip_create(&pb, &p->b), 0);
    struct mos_gossip_info ia = {.ncpus = 8, .load_milli = 250, .mem_total_mib = 64,
                                 .mem_free_mib = 32};
    mos_gossip_set_local(p->a, &ia);
}

static void pair_free(struct pair *p)
{
    mos_gossip_destroy(p->a);
    mos_gossip_destroy(p->b);
    mos_config_free(&p->cfg);
}

/* A steps at now until it targets B; returns the datagram length. */
static int step_to_b(struct mos_gossip *a, uint32_t now)
{
    uint32_t target = 0;
    int len;

    for (int i = 0; i < 100; i++) {
        len = mos_gossip_step(a, now, buf, sizeof(buf), &target);
        assert_true(len > 0);
        if (target == 1)
            return len;
    }
    fail_msg("node a never chose node b");
    return -1;
}

static void test_proto_news_travels(void **state)
{
    (void)state;
    struct pair p;
    struct mos_gossip_node n;
    enum mos_gossip_drop why;
    struct mos_gossip_stats st;
    int len;

    pair_make(&p, &key);
    mos_gossip_node_get(p.b, 1000, 0, &n);
    assert_int_equal(n.state, MOS_GOSSIP_UNKNOWN);
    len = step_to_b(p.a, 1000);
    assert_int_equal(mos_gossip_input(p.b, 1000, buf, (size_t)len, &why), 0);
    mos_gossip_node_get(p.b, 1040, 0, &n);
    assert_int_equal(n.state, MOS_GOSSIP_ALIVE);
    assert_string_equal(n.name, "a");
    assert_in_range(n.age_ms, 40, 43); /* stamps are kept to 4 ms */
    assert_int_equal(n.info.ncpus, 8);
    assert_int_equal(n.info.load_milli, 250);
    /* The same datagram again is a replay. */
    assert_int_equal(mos_gossip_input(p.b, 1050, buf, (size_t)len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_REPLAY);
    /* Past the limit (5 steps of 100 ms) a is suspect; its probes unanswered for 3 steps, it
     * is presumed dead; fresh news brings it back. */
    uint32_t target;
    mos_gossip_step(p.b, 1700, buf, sizeof(buf), &target);
    mos_gossip_node_get(p.b, 1700, 0, &n);
    assert_int_equal(n.state, MOS_GOSSIP_SUSPECT);
    mos_gossip_step(p.b, 1800, buf, sizeof(buf), &target);
    mos_gossip_step(p.b, 1900, buf, sizeof(buf), &target);
    mos_gossip_node_get(p.b, 1900, 0, &n);
    assert_int_equal(n.state, MOS_GOSSIP_SUSPECT);
    mos_gossip_step(p.b, 2000, buf, sizeof(buf), &target);
    mos_gossip_node_get(p.b, 2000, 0, &n);
    assert_int_equal(n.state, MOS_GOSSIP_DEAD);
    len = step_to_b(p.a, 2100);
    assert_int_equal(mos_gossip_input(p.b, 2100, buf, (size_t)len, &why), 0);
    mos_gossip_node_get(p.b, 2100, 0, &n);
    assert_int_equal(n.state, MOS_GOSSIP_ALIVE);
    /* Leaving is announced and shown. */
    len = mos_gossip_leave_datagram(p.a, 2200, buf, sizeof(buf));
    assert_int_equal(mos_gossip_input(p.b, 2200, buf, (size_t)len, &why), 0);
    mos_gossip_node_get(p.b, 2200, 0, &n);
    assert_int_equal(n.state, MOS_GOSSIP_LEFT);
    mos_gossip_stats_get(p.b, &st);
    assert_int_equal(st.accepted, 3);
    assert_int_equal(st.dropped[MOS_GOSSIP_DROP_REPLAY], 1);
    assert_int_equal(st.presumed_dead, 1);
    assert_int_equal(st.returned, 2);
    assert_int_equal(st.left, 1);
    pair_free(&p);
}

/* A's datagram as boot boot_id (a fresh instance of node a) into out; its length. */
static size_t boot_datagram(struct pair *p, uint64_t boot_id, uint8_t *out)
{
    struct mos_gossip_params pa = {.cfg = &p->cfg, .self = 0, .key = &key, .rng = &p->ra,
                                   .boot_id = boot_id};
    struct mos_gossip *a;

    assert_int_equal(mos_gossip_create(&pa, &a), 0);
    int len = step_to_b(a, 1000);
    memcpy(out, buf, (size_t)len);
    mos_gossip_destroy(a);
    return (size_t)len;
}

/* Two captured datagrams of two boots of node a, alternated: the older boot is refused once
 * the newer was seen, however often they alternate. */
static void test_proto_boots_ordered(void **state)
{
    (void)state;
    static uint8_t old_boot[MOS_GOSSIP_MAX_DATAGRAM], new_boot[MOS_GOSSIP_MAX_DATAGRAM];
    struct pair p;
    enum mos_gossip_drop why;
    struct mos_gossip_stats st;

    mos_log_set_sink(quiet, NULL);
    pair_make(&p, &key);
    size_t old_len = boot_datagram(&p, 1000, old_boot);
    size_t new_len = boot_datagram(&p, 2000, new_boot);
    assert_int_equal(mos_gossip_input(p.b, 1000, old_boot, old_len, &why), 0);
    assert_int_equal(mos_gossip_input(p.b, 1010, new_boot, new_len, &why), 0);
    for (uint32_t i = 0; i < 10; i++) {
        assert_int_equal(mos_gossip_input(p.b, 1020 + i, old_boot, old_len, &why), -1);
        assert_int_equal(why, MOS_GOSSIP_DROP_REPLAY);
        assert_int_equal(mos_gossip_input(p.b, 1020 + i, new_boot, new_len, &why), -1);
        assert_int_equal(why, MOS_GOSSIP_DROP_REPLAY);
    }
    mos_gossip_stats_get(p.b, &st);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.dropped[MOS_GOSSIP_DROP_REPLAY], 20);
    /* Without a given boot id, a later start has a larger one (the wall clock). */
    struct mos_gossip_wire_header h1, h2;
    old_len = boot_datagram(&p, 0, old_boot);
    new_len = boot_datagram(&p, 0, new_boot);
    assert_int_equal(mos_gossip_wire_parse(&key, old_boot, old_len, &h1, entries, &wprobe, &why), 0);
    assert_int_equal(mos_gossip_wire_parse(&key, new_boot, new_len, &h2, entries, &wprobe, &why), 0);
    assert_true(h1.boot_id > 2000 && h2.boot_id > h1.boot_id);
    assert_int_equal(mos_gossip_input(p.b, 1100, new_boot, new_len, &why), 0);
    assert_int_equal(mos_gossip_input(p.b, 1110, old_boot, old_len, &why), -1);
    pair_free(&p);
    mos_log_set_sink(NULL, NULL);
}

static void test_proto_wrong_key(void **state)
{
    (void)state;
    mos_key_t other = key;
    struct pair p;
    struct mos_gossip_node n;
    enum mos_gossip_drop why;
    struct mos_gossip_stats st;

    other.bytes[31] ^= 1;
    pair_make(&p, &other);
    int len = step_to_b(p.a, 1000);
    assert_int_equal(mos_gossip_input(p.b, 1000, buf, (size_t)len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_MAC);
    mos_gossip_node_get(p.b, 1000, 0, &n);
    assert_int_equal(n.state, MOS_GOSSIP_UNKNOWN);
    mos_gossip_stats_get(p.b, &st);
    assert_int_equal(st.dropped[MOS_GOSSIP_DROP_MAC], 1);
    assert_int_equal(st.accepted, 0);
    pair_free(&p);
}

static void test_proto_unknown_sender_and_loss(void **state)
{
    (void)state;
    struct pair p;
    enum mos_gossip_drop why;
    struct mos_gossip_stats st;
    int len;

    pair_make(&p, &key);
    len = step_to_b(p.a, 1000);
    /* Claim to be 10.1.0.9, which is not configured, and sign it properly. */
    buf[32 + 15] = 9;
    remac((size_t)len);
    assert_int_equal(mos_gossip_input(p.b, 1000, buf, (size_t)len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_UNKNOWN);
    mos_gossip_set_test_loss(p.b, 1.0);
    len = step_to_b(p.a, 1100);
    assert_int_equal(mos_gossip_input(p.b, 1100, buf, (size_t)len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_TEST_LOSS);
    mos_gossip_stats_get(p.b, &st);
    assert_int_equal(st.received, 2);
    assert_int_equal(st.accepted, 0);
    pair_free(&p);
}

/* --- suspicion and probes ---------------------------------------------------------------- */

struct trio {
    struct pair p; /* a and b */
    struct mos_gossip *c;
    struct mos_gossip_splitmix sc;
    struct mos_gossip_rng rc;
};

static void trio_make(struct trio *t)
{
    pair_make(&t->p, &key);
    t->sc.state = 3;
    t->rc = (struct mos_gossip_rng){.next = mos_gossip_splitmix_next, .arg = &t->sc};
    struct mos_gossip_params pc = {.cfg = &t->p.cfg, .self = 2, .key = &key, .rng = &t->rc};
    assert_int_equal(mos_gossip_create(&pc, &t->c), 0);
}

static void trio_free(struct trio *t)
{
    mos_gossip_destroy(t->c);
    pair_free(&t->p);
}

/* from steps at now until it targets slot `to`, and to takes the datagram. */
static void gossip_to(struct mos_gossip *from, struct mos_gossip *to, uint32_t slot,
                      uint32_t now)
{
    enum mos_gossip_drop why;
    uint32_t target = 0;
    int len = 0;

    for (int i = 0; i < 200 && target != slot; i++)
        len = mos_gossip_step(from, now, buf, sizeof(buf), &target);
    assert_int_equal(target, slot);
    assert_int_equal(mos_gossip_input(to, now, buf, (size_t)len, &why), 0);
    while (mos_gossip_next_probe(from, now, buf, sizeof(buf), &target) > 0)
        ; /* probes made by these steps are not part of this exchange */
}

/* The next probe datagram of g, which must be of type and go to slot `to`; its length. */
static size_t probe_expect(struct mos_gossip *g, uint32_t now, uint16_t type, uint32_t to)
{
    uint32_t dest = 99;
    int len = mos_gossip_next_probe(g, now, buf, sizeof(buf), &dest);

    assert_int_equal(len, MOS_GOSSIP_PROBE_DATAGRAM);
    assert_int_equal(mos_get_le16(buf + 6), type);
    assert_int_equal(dest, to);
    return (size_t)len;
}

static enum mos_gossip_state state_of(struct mos_gossip *g, uint32_t now, size_t slot)
{
    struct mos_gossip_node n;

    mos_gossip_node_get(g, now, slot, &n);
    return n.state;
}

/* An entry aged past the limit, of a node that answers its probe: suspect, never dead. */
static void test_proto_suspect_answers(void **state)
{
    (void)state;
    struct pair p;
    enum mos_gossip_drop why;
    struct mos_gossip_stats st;
    uint32_t target;
    size_t len;

    pair_make(&p, &key);
    gossip_to(p.a, p.b, 1, 1000);
    mos_gossip_step(p.b, 1700, buf, sizeof(buf), &target); /* 700 ms > 5 steps of 100 */
    assert_int_equal(state_of(p.b, 1700, 0), MOS_GOSSIP_SUSPECT);
    len = probe_expect(p.b, 1700, MOS_GOSSIP_TYPE_PING, 0);
    assert_int_equal(mos_gossip_next_probe(p.b, 1700, buf + len, 256, &target), 0);
    assert_int_equal(mos_gossip_input(p.a, 1710, buf, len, &why), 0);
    len = probe_expect(p.a, 1710, MOS_GOSSIP_TYPE_ACK, 1);
    assert_int_equal(mos_gossip_input(p.b, 1720, buf, len, &why), 0);
    assert_int_equal(state_of(p.b, 1720, 0), MOS_GOSSIP_ALIVE);
    /* The same ack again is a replay; and well past the first deadline a stays alive. */
    assert_int_equal(mos_gossip_input(p.b, 1730, buf, len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_REPLAY);
    mos_gossip_step(p.b, 2100, buf, sizeof(buf), &target);
    assert_int_equal(state_of(p.b, 2100, 0), MOS_GOSSIP_ALIVE);
    mos_gossip_stats_get(p.b, &st);
    assert_int_equal(st.suspected, 1);
    assert_int_equal(st.refuted, 1);
    assert_int_equal(st.probe_acks, 1);
    assert_int_equal(st.presumed_dead, 0);
    pair_free(&p);
}

/* The direct path is lost: c pings a for b, and forwards a's ack once. */
static void test_proto_probe_relay(void **state)
{
    (void)state;
    struct trio t;
    enum mos_gossip_drop why;
    struct mos_gossip_stats st;
    uint8_t relayed[MOS_GOSSIP_PROBE_DATAGRAM];
    uint32_t target;
    size_t len;

    trio_make(&t);
    gossip_to(t.p.a, t.p.b, 1, 1000);
    gossip_to(t.p.a, t.c, 2, 1000);
    gossip_to(t.c, t.p.b, 1, 1600);
    mos_gossip_step(t.p.b, 1700, buf, sizeof(buf), &target);
    assert_int_equal(state_of(t.p.b, 1700, 0), MOS_GOSSIP_SUSPECT);
    probe_expect(t.p.b, 1700, MOS_GOSSIP_TYPE_PING, 0); /* lost */
    len = probe_expect(t.p.b, 1700, MOS_GOSSIP_TYPE_PING_REQ, 2);
    assert_int_equal(mos_gossip_input(t.c, 1705, buf, len, &why), 0);
    len = probe_expect(t.c, 1705, MOS_GOSSIP_TYPE_PING, 0);
    assert_int_equal(mos_gossip_input(t.p.a, 1710, buf, len, &why), 0);
    len = probe_expect(t.p.a, 1710, MOS_GOSSIP_TYPE_ACK, 2);
    memcpy(relayed, buf, len);
    assert_int_equal(mos_gossip_input(t.c, 1715, buf, len, &why), 0);
    len = probe_expect(t.c, 1715, MOS_GOSSIP_TYPE_ACK, 1);
    assert_int_equal(mos_gossip_input(t.p.b, 1720, buf, len, &why), 0);
    assert_int_equal(state_of(t.p.b, 1720, 0), MOS_GOSSIP_ALIVE);
    mos_gossip_stats_get(t.p.b, &st);
    assert_int_equal(st.probe_acks, 1);
    assert_int_equal(st.refuted, 1);
    /* c forwards an ack once: the relay is forgotten, and a's next ack is relayed nowhere. */
    struct mos_gossip_wire_header h = {.n_entries = 1, .boot_id = UINT64_MAX, .seq = 1};
    struct mos_gossip_wire_entry e;
    struct mos_gossip_wire_probe pr;
    assert_int_equal(mos_gossip_wire_parse(&key, relayed, len, &h, entries, &pr, &why), 0);
    e = entries[0];
    h.boot_id = UINT64_MAX; /* a's newest boot: passes the replay check */
    len = (size_t)mos_gossip_wire_encode_probe(&key, MOS_GOSSIP_TYPE_ACK, &h, &e, &pr, buf,
                                               sizeof(buf));
    assert_int_equal(mos_gossip_input(t.c, 1730, buf, len, &why), 0);
    assert_int_equal(mos_gossip_next_probe(t.c, 1730, buf, sizeof(buf), &target), 0);
    trio_free(&t);
}

/* No answer: dead at the deadline, after a ping per step meanwhile. A ping naming another
 * node as its target, or one from a node not configured, is refused. */
static void test_proto_suspect_dies(void **state)
{
    (void)state;
    struct pair p;
    enum mos_gossip_drop why;
    struct mos_gossip_stats st;
    uint32_t target;
    size_t len;

    pair_make(&p, &key);
    gossip_to(p.a, p.b, 1, 1000);
    mos_gossip_step(p.b, 1700, buf, sizeof(buf), &target);
    len = probe_expect(p.b, 1700, MOS_GOSSIP_TYPE_PING, 0);
    /* a ping naming c as its target, sent to a */
    buf[32 + 64 + 16 + 15] = 3;
    remac(len);
    assert_int_equal(mos_gossip_input(p.a, 1700, buf, len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_FORMAT);
    /* a ping from a stranger (sender 10.1.0.9), signed with the key */
    buf[32 + 64 + 15] = 9;
    buf[32 + 15] = 9;
    remac(len);
    assert_int_equal(mos_gossip_input(p.a, 1700, buf, len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_UNKNOWN);
    /* Past the deadline (2000) in time at 2400, but after only two of b's own steps (b was
     * starved of CPU): still suspect; the third step decides. */
    for (uint32_t now = 1800; now <= 2400; now += 600) {
        mos_gossip_step(p.b, now, buf, sizeof(buf), &target);
        assert_int_equal(state_of(p.b, now, 0), MOS_GOSSIP_SUSPECT);
        probe_expect(p.b, now, MOS_GOSSIP_TYPE_PING, 0);
    }
    mos_gossip_step(p.b, 2500, buf, sizeof(buf), &target);
    assert_int_equal(state_of(p.b, 2500, 0), MOS_GOSSIP_DEAD);
    mos_gossip_stats_get(p.b, &st);
    assert_int_equal(st.suspected, 1);
    assert_int_equal(st.presumed_dead, 1);
    assert_int_equal(st.refuted, 0);
    pair_free(&p);
}

/* b's probes of a all fail (2000): b tells c straight away (a death notice). c, whose own
 * news of a is older than half the limit, takes it: a is dead at c before c's own limit and
 * probes would tell. Stale news (sent before b had begun to probe a in vain) does not revive
 * it; news a sent later does. fresh_at_c: c heard from a at 1900 instead, and keeps a alive. */
static void death_notice_run(int fresh_at_c)
{
    struct trio t;
    enum mos_gossip_drop why;
    struct mos_gossip_stats st;
    uint32_t target;
    int len = 0;

    trio_make(&t);
    gossip_to(t.p.a, t.p.b, 1, 1000);
    if (!fresh_at_c)
        gossip_to(t.p.a, t.c, 2, 1000);
    gossip_to(t.c, t.p.b, 1, 1600);
    if (fresh_at_c)
        gossip_to(t.p.a, t.c, 2, 1900);
    for (uint32_t now = 1700; now <= 2000; now += 100) {
        mos_gossip_step(t.p.b, now, buf, sizeof(buf), &target);
        while ((len = mos_gossip_next_probe(t.p.b, now, buf, sizeof(buf), &target)) > 0 &&
               mos_get_le16(buf + 6) != MOS_GOSSIP_TYPE_DEAD)
            ; /* pings and ping-reqs: lost */
    }
    assert_int_equal(state_of(t.p.b, 2000, 0), MOS_GOSSIP_DEAD);
    /* the notice goes to c, the one other node b believes alive, once */
    assert_int_equal(len, MOS_GOSSIP_PROBE_DATAGRAM);
    assert_int_equal(target, 2);
    assert_int_equal(mos_gossip_next_probe(t.p.b, 2000, buf + len, 256, &target), 0);
    mos_gossip_stats_get(t.p.b, &st);
    assert_int_equal(st.notices_sent, 1);
    assert_int_equal(mos_gossip_input(t.c, 2005, buf, (size_t)len, &why), 0);
    mos_gossip_stats_get(t.c, &st);
    if (fresh_at_c) {
        assert_int_equal(state_of(t.c, 2005, 0), MOS_GOSSIP_ALIVE);
        assert_int_equal(st.notices_ignored, 1);
        assert_int_equal(st.presumed_dead, 0);
        trio_free(&t);
        return;
    }
    /* without the notice, a would be only suspect at c (past c's limit, not yet probed) */
    assert_int_equal(state_of(t.c, 2005, 0), MOS_GOSSIP_DEAD);
    assert_int_equal(st.notices_taken, 1);
    assert_int_equal(st.presumed_dead, 1);
    /* b's vector with a's entry from 1650: newer than c's, older than b's probing (1700) */
    struct mos_gossip_wire_header h = {.n_entries = 2, .boot_id = UINT64_MAX, .seq = 1};
    struct mos_gossip_wire_entry e[2];
    memset(e, 0, sizeof(e));
    for (int i = 0; i < 2; i++) {
        e[i].info.addr[10] = e[i].info.addr[11] = 0xff;
        e[i].info.addr[12] = 10, e[i].info.addr[13] = 1, e[i].info.addr[15] = (uint8_t)(2 - i);
    }
    e[1].age_ms = 2010 - 1650;
    len = mos_gossip_wire_encode(&key, &h, e, 2, buf, sizeof(buf));
    assert_int_equal(mos_gossip_input(t.c, 2010, buf, (size_t)len, &why), 0);
    assert_int_equal(state_of(t.c, 2010, 0), MOS_GOSSIP_DEAD);
    /* and from a itself, later: it is back */
    gossip_to(t.p.a, t.c, 2, 2100);
    assert_int_equal(state_of(t.c, 2100, 0), MOS_GOSSIP_ALIVE);
    trio_free(&t);
}

static void test_proto_death_notice(void **state)
{
    (void)state;
    death_notice_run(0);
    death_notice_run(1);
}

/* A node whose steps run late (400 ms apart for 100) finds the death but tells nobody. */
static void test_proto_late_tells_no_death(void **state)
{
    (void)state;
    struct trio t;
    uint32_t target;

    trio_make(&t);
    gossip_to(t.p.a, t.p.b, 1, 1000);
    gossip_to(t.c, t.p.b, 1, 1600);
    for (uint32_t now = 1700; now <= 2900; now += 400) {
        gossip_to(t.c, t.p.b, 1, now); /* c stays alive at b: one to tell */
        mos_gossip_step(t.p.b, now, buf, sizeof(buf), &target);
        while (mos_gossip_next_probe(t.p.b, now, buf, sizeof(buf), &target) > 0)
            assert_int_not_equal(mos_get_le16(buf + 6), MOS_GOSSIP_TYPE_DEAD);
    }
    assert_int_equal(state_of(t.p.b, 2900, 0), MOS_GOSSIP_DEAD);
    struct mos_gossip_stats st;
    mos_gossip_stats_get(t.p.b, &st);
    assert_int_equal(st.notices_sent, 0);
    trio_free(&t);
}

/* A notice must come from the node that found the death and be about another node. */
static void test_proto_death_notice_checks(void **state)
{
    (void)state;
    struct trio t;
    enum mos_gossip_drop why;
    struct mos_gossip_wire_header h = {.n_entries = 1, .boot_id = 5, .seq = 1};
    struct mos_gossip_wire_entry e;
    struct mos_gossip_wire_probe pr;
    int len;

    trio_make(&t);
    gossip_to(t.p.a, t.c, 2, 1000);
    memset(&e, 0, sizeof(e));
    memset(&pr, 0, sizeof(pr));
    for (uint8_t *a2 = pr.sender; a2 <= pr.requester; a2 += 16) {
        a2[10] = a2[11] = 0xff;
        a2[12] = 10, a2[13] = 1;
    }
    pr.sender[15] = 2, pr.target[15] = 1, pr.requester[15] = 1; /* b, about a, for a */
    memcpy(e.info.addr, pr.target, 16);
    len = mos_gossip_wire_encode_probe(&key, MOS_GOSSIP_TYPE_DEAD, &h, &e, &pr, buf, sizeof(buf));
    assert_int_equal(mos_gossip_input(t.c, 1800, buf, (size_t)len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_FORMAT);
    pr.requester[15] = 2, pr.target[15] = 2; /* b, about itself */
    memcpy(e.info.addr, pr.target, 16);
    len = mos_gossip_wire_encode_probe(&key, MOS_GOSSIP_TYPE_DEAD, &h, &e, &pr, buf, sizeof(buf));
    assert_int_equal(mos_gossip_input(t.c, 1800, buf, (size_t)len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_FORMAT);
    pr.target[15] = 1; /* b, about a: taken (a's news at c is 800 ms old) */
    memcpy(e.info.addr, pr.target, 16);
    len = mos_gossip_wire_encode_probe(&key, MOS_GOSSIP_TYPE_DEAD, &h, &e, &pr, buf, sizeof(buf));
    assert_int_equal(mos_gossip_input(t.c, 1800, buf, (size_t)len, &why), 0);
    assert_int_equal(state_of(t.c, 1800, 0), MOS_GOSSIP_DEAD);
    /* the same datagram again is a replay */
    assert_int_equal(mos_gossip_input(t.c, 1810, buf, (size_t)len, &why), -1);
    assert_int_equal(why, MOS_GOSSIP_DROP_REPLAY);
    trio_free(&t);
}

/* Six nodes suspect at once: four are probed, the others wait (still suspect, not dead). */
static void test_proto_probing_capped(void **state)
{
    (void)state;
    static const char text[] = "[cluster]\nkey_file = /dev/null\ngossip_window = 8\n"
                               "dead_after_steps = 5\ngossip_interval_ms = 100\n[nodes]\n"
                               "n0 = 10.2.0.1\nn1 = 10.2.0.2\nn2 = 10.2.0.3\nn3 = 10.2.0.4\n"
                               "n4 = 10.2.0.5\nn5 = 10.2.0.6\nn6 = 10.2.0.7\n";
    struct mos_config cfg;
    struct mos_gossip_splitmix sm = {.state = 4};
    struct mos_gossip_rng rng = {.next = mos_gossip_splitmix_next, .arg = &sm};
    struct mos_gossip_params p = {.cfg = &cfg, .self = 0, .key = &key, .rng = &rng};
    struct mos_gossip *g;
    struct mos_gossip_wire_header h = {.n_entries = 6, .boot_id = 1, .seq = 1};
    struct mos_gossip_wire_entry e[6];
    enum mos_gossip_drop why;
    uint32_t target, pinged[7] = {0};
    int len;

    assert_int_equal(mos_config_parse(text, "test", &cfg), 0);
    assert_int_equal(mos_gossip_create(&p, &g), 0);
    memset(e, 0, sizeof(e));
    for (int i = 0; i < 6; i++) { /* node 1's datagram: its own entry and nodes 2..6 */
        e[i].info.addr[10] = e[i].info.addr[11] = 0xff;
        e[i].info.addr[12] = 10, e[i].info.addr[13] = 2, e[i].info.addr[15] = (uint8_t)(i + 2);
        e[i].age_ms = i == 0 ? 0 : 10;
    }
    len = mos_gossip_wire_encode(&key, &h, e, 6, buf, sizeof(buf));
    assert_int_equal(mos_gossip_input(g, 1000, buf, (size_t)len, &why), 0);
    mos_gossip_step(g, 1700, buf, sizeof(buf), &target);
    while ((len = mos_gossip_next_probe(g, 1700, buf, sizeof(buf), &target)) > 0)
        pinged[target] += mos_get_le16(buf + 6) == MOS_GOSSIP_TYPE_PING;
    int n = 0;
    for (int i = 1; i < 7; i++)
        n += pinged[i] > 0;
    assert_int_equal(n, GOSSIP_PROBING_MAX_EXPECTED);
    for (size_t i = 1; i < 7; i++)
        assert_int_equal(state_of(g, 1700, i), MOS_GOSSIP_SUSPECT);
    mos_gossip_destroy(g);
    mos_config_free(&cfg);
}

/* --- the probe's parsers --------------------------------------------------------------- */

static const char meminfo[] = "MemTotal:       24684136 kB\nMemFree:        21000000 kB\n"
                              "MemAvailable:   22412660 kB\nBuffers:           10000 kB\n";
static const char stat_text[] =
    "cpu  1000 20 300 5000 80 0 10 5 0 0\ncpu0 500 10 150 2500 40 0 5 2 0 0\n"
    "intr 12345\nctxt 999\nbtime 1700000000\nprocesses 4242\nprocs_running 3\n"
    "procs_blocked 0\n";
static const char cpuinfo_x86[] = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\n"
                                  "bogomips\t: 4600.00\n\nprocessor\t: 1\nbogomips\t: 4599.98\n";
static const char cpuinfo_arm[] = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n";

static void test_probe_parsers(void **state)
{
    (void)state;
    uint64_t total, avail;
    struct mos_cpu_times t;
    unsigned running;
    double bogo;

    assert_int_equal(mos_probe_parse_meminfo(meminfo, &total, &avail), 0);
    assert_int_equal(total, 24684136);
    assert_int_equal(avail, 22412660);
    assert_int_equal(mos_probe_parse_meminfo("MemTotal: 5 kB\n", &total, &avail), MOS_E_PROTO);
    assert_int_equal(mos_probe_parse_meminfo("MemTotal: 5 kB\nMemAvailable: 9 kB\n", &total,
                                             &avail), MOS_E_PROTO);
    assert_int_equal(mos_probe_parse_stat(stat_text, &t, &running), 0);
    assert_int_equal(t.busy, 1000 + 20 + 300 + 0 + 10 + 5);
    assert_int_equal(t.total, t.busy + 5000 + 80);
    assert_int_equal(running, 3);
    assert_int_equal(mos_probe_parse_stat("intr 5\n", &t, &running), MOS_E_PROTO);
    assert_int_equal(mos_probe_parse_stat("cpu  1 2 3 4\n", &t, &running), MOS_E_PROTO);
    assert_int_equal(mos_probe_parse_bogomips(cpuinfo_x86, &bogo), 0);
    assert_float_equal(bogo, 4599.99, 0.001);
    assert_int_equal(mos_probe_parse_bogomips(cpuinfo_arm, &bogo), 0);
    assert_float_equal(bogo, 50.0, 0.001);
    assert_int_equal(mos_probe_parse_bogomips("processor : 0\n", &bogo), MOS_E_PROTO);
    assert_int_equal(mos_probe_parse_bogomips("bogomips : lots\n", &bogo), MOS_E_PROTO);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The probe over a fixture /proc: smoothed load, utilization between samples, memory. */
static void test_probe_fixture(void **state)
{
    (void)state;
    char dir[] = "/tmp/mos-probe-XXXXXX";
    struct mos_gossip_probe *probe;
    struct mos_gossip_info info = {0};

    assert_non_null(mkdtemp(dir));
    write_file(dir, "meminfo", meminfo);
    write_file(dir, "cpuinfo", cpuinfo_x86);
    write_file(dir, "stat", "cpu  100 0 0 900 0 0 0 0\nprocs_running 1\n");
    assert_int_equal(mos_gossip_probe_create(dir, 1000, &probe), 0);
    assert_int_equal(mos_gossip_probe_sample(probe, 3, &info), 0);
    assert_true(info.ncpus >= 1 && info.numa_nodes >= 1);
    assert_int_equal(info.speed, 4600);
    assert_int_equal(info.mem_total_mib, 24684136 / 1024);
    assert_int_equal(info.mem_free_mib, 22412660 / 1024);
    assert_int_equal(info.guests, 3);
    assert_int_equal(info.load_milli, 0); /* only the prober ran */
    assert_int_equal(info.util_permille, 0); /* no previous sample yet */
    /* 1 s later: 600 of 1000 jiffies busy; 1 + ncpus runnable tasks besides the prober. */
    char st[128];
    snprintf(st, sizeof(st), "cpu  700 0 0 1300 0 0 0 0\nprocs_running %u\n", info.ncpus + 1);
    write_file(dir, "stat", st);
    assert_int_equal(mos_gossip_probe_sample(probe, 0, &info), 0);
    assert_int_equal(info.util_permille, 600);
    /* load: ncpus tasks per ncpus CPUs = 1.0, decayed in over 4 s: 1 - e^(-1/4) = 0.221 */
    assert_in_range(info.load_milli, 215, 227);
    mos_gossip_probe_destroy(probe);
    write_file(dir, "meminfo", "garbage\n");
    assert_int_equal(mos_gossip_probe_create(dir, 1000, &probe), 0);
    assert_int_equal(mos_gossip_probe_sample(probe, 0, &info), MOS_E_PROTO);
    mos_gossip_probe_destroy(probe);
    for (const char *f = "meminfo\0cpuinfo\0stat\0"; *f; f += strlen(f) + 1) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, f);
        unlink(path);
    }
    rmdir(dir);
}

/* /proc files recorded on a 2-vCPU Xeon VM (tests/fixtures/xeon2). */
static void test_probe_recorded(void **state)
{
    (void)state;
    struct mos_gossip_probe *probe;
    struct mos_gossip_info info = {0};

    assert_int_equal(mos_gossip_probe_create(GOSSIP_FIXTURES "/xeon2", 1000, &probe), 0);
    assert_int_equal(mos_gossip_probe_sample(probe, 0, &info), 0);
    assert_int_equal(info.speed, 4600);
    assert_int_equal(info.mem_total_mib, 24684092 / 1024);
    assert_int_equal(info.mem_free_mib, 23839360 / 1024);
    assert_int_equal(info.load_milli, 0); /* procs_running 1: the recording process itself */
    mos_gossip_probe_destroy(probe);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_roundtrip),
        cmocka_unit_test(test_wire_drop_reasons),
        cmocka_unit_test(test_proto_news_travels),
        cmocka_unit_test(test_proto_boots_ordered),
        cmocka_unit_test(test_proto_wrong_key),
        cmocka_unit_test(test_proto_unknown_sender_and_loss),
        cmocka_unit_test(test_proto_suspect_answers),
        cmocka_unit_test(test_proto_probe_relay),
        cmocka_unit_test(test_proto_suspect_dies),
        cmocka_unit_test(test_proto_probing_capped),
        cmocka_unit_test(test_proto_death_notice),
        cmocka_unit_test(test_proto_late_tells_no_death),
        cmocka_unit_test(test_proto_death_notice_checks),
        cmocka_unit_test(test_probe_parsers),
        cmocka_unit_test(test_probe_fixture),
        cmocka_unit_test(test_probe_recorded),
    };
    mos_log_set_sink(quiet, NULL);
    return cmocka_run_group_tests_name("gossip_proto", tests, NULL, NULL);
}
