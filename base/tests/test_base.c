/* Unit tests of the base library: statuses, logging sink, key files and MACs, the shared
 * framing, config, sizes. */
#include "mos/clock.h"
#include "mos/config.h"
#include "mos/frame.h"
#include "mos/key.h"
#include "mos/log.h"
#include "mos/size.h"
#include "mos/status.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char last_log[1024];
static int log_count;

static void capture_sink(enum mos_log_level level, const char *component, const char *text,
                         void *arg)
{
    (void)arg;
    snprintf(last_log, sizeof(last_log), "%d %s %s", (int)level, component, text);
    log_count++;
}

static int setup_capture(void **state)
{
    (void)state;
    last_log[0] = '\0';
    log_count = 0;
    mos_log_set_sink(capture_sink, NULL);
    mos_log_set_level(MOS_LOG_INFO);
    return 0;
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(mos_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(mos_strerror(MOS_E_AUTH), "cluster key proof failed (wrong key?)");
    assert_string_equal(mos_strerror(-5000), "unknown error");
    errno = 0;
    assert_int_equal(mos_errno_status(), -EIO);
    errno = EPERM;
    assert_int_equal(mos_errno_status(), -EPERM);
}

static void test_log_levels(void **state)
{
    (void)state;
    mos_info("unit", "hello %d", 42);
    assert_string_equal(last_log, "2 unit hello 42");
    mos_dbg("unit", "hidden");
    assert_int_equal(log_count, 1);
    mos_log_set_level(MOS_LOG_DEBUG);
    mos_dbg("unit", "shown");
    assert_int_equal(log_count, 2);
    assert_int_equal(mos_log_level_parse("warn"), MOS_LOG_WARN);
    assert_int_equal(mos_log_level_parse("loud"), -1);
    assert_int_equal(mos_log_level_parse(NULL), -1);
}

static void test_clock(void **state)
{
    (void)state;
    uint64_t a = mos_clock_now_ns();
    mos_clock_sleep_ns(2 * MOS_NSEC_PER_MSEC);
    uint64_t b = mos_clock_now_ns();
    assert_true(b - a >= 2 * MOS_NSEC_PER_MSEC);
}

static void test_key_file_roundtrip(void **state)
{
    (void)state;
    char dir[] = "/tmp/mos-key-XXXXXX";
    char path[128];
    mos_key_t k1, k2;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/cluster.key", dir);
    assert_int_equal(mos_key_generate(path, &k1), 0);
    assert_int_equal(mos_key_load(path, &k2), 0);
    assert_memory_equal(k1.bytes, k2.bytes, MOS_KEY_BYTES);
    /* never overwrite an existing key */
    assert_int_equal(mos_key_generate(path, &k2), -EEXIST);
    /* a world-readable key is refused */
    chmod(path, 0644);
    assert_int_equal(mos_key_load(path, &k2), MOS_E_KEY);
    assert_non_null(strstr(last_log, "readable by others"));
    unlink(path);
    assert_int_equal(mos_key_load(path, &k2), -ENOENT);
    rmdir(dir);
}

static void test_key_parse(void **state)
{
    (void)state;
    mos_key_t k;
    const char *good = "  00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

    assert_int_equal(mos_key_parse_hex(good, &k), 0);
    assert_int_equal(k.bytes[1], 0x11);
    assert_int_equal(mos_key_parse_hex("0011", &k), MOS_E_KEY);
    assert_int_equal(
        mos_key_parse_hex("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", &k),
        MOS_E_KEY);
    assert_int_equal(
        mos_key_parse_hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff x",
                          &k),
        MOS_E_KEY);
    /* the file form: nothing hidden after a NUL, nothing past the size a key file has */
    char text[MOS_KEY_TEXT_MAX + 2];
    size_t n = strlen(good);
    memcpy(text, good, n);
    assert_int_equal(mos_key_parse(text, n, &k), 0);
    memcpy(text + n, "\0junk", 5);
    assert_int_equal(mos_key_parse(text, n + 5, &k), MOS_E_KEY);
    memset(text + n, ' ', sizeof(text) - n);
    assert_int_equal(mos_key_parse(text, MOS_KEY_TEXT_MAX, &k), 0);
    assert_int_equal(mos_key_parse(text, MOS_KEY_TEXT_MAX + 1, &k), MOS_E_KEY);
}

/* A key file longer than a key file can be is refused whole, not read in part. */
static void test_key_file_too_long(void **state)
{
    (void)state;
    char dir[] = "/tmp/mos-key-XXXXXX", path[128];
    mos_key_t k;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/cluster.key", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fchmod(fileno(f), 0600);
    fprintf(f, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff%300s\nx\n", "");
    fclose(f);
    assert_int_equal(mos_key_load(path, &k), MOS_E_KEY);
    assert_non_null(strstr(last_log, "expected 64 hex digits"));
    unlink(path);
    rmdir(dir);
}

static void test_mac(void **state)
{
    (void)state;
    mos_key_t k1, k2;
    uint8_t mac[MOS_MAC_BYTES];
    const char *msg = "gossip";
    struct mos_mac_part parts[] = {{msg, 3}, {msg + 3, 3}};
    struct mos_mac_part whole[] = {{msg, 6}};

    memset(&k1, 1, sizeof(k1));
    memset(&k2, 2, sizeof(k2));
    mos_key_mac(&k1, parts, 2, mac);
    /* parts concatenate: the same MAC as over the whole message */
    assert_int_equal(mos_key_mac_verify(&k1, whole, 1, mac), 0);
    assert_int_equal(mos_key_mac_verify(&k2, whole, 1, mac), MOS_E_AUTH);
    mac[0] ^= 1;
    assert_int_equal(mos_key_mac_verify(&k1, whole, 1, mac), MOS_E_AUTH);
}

static void test_frame_byte_order(void **state)
{
    (void)state;
    uint8_t b[8];

    mos_put_le16(b, 0x0102);
    assert_memory_equal(b, "\x02\x01", 2);
    mos_put_le32(b, 0x01020304);
    assert_memory_equal(b, "\x04\x03\x02\x01", 4);
    assert_int_equal(mos_get_le32(b), 0x01020304);
    assert_int_equal(mos_get_le16(b + 2), 0x0102);
    mos_put_le64(b, 0x0102030405060708ull);
    assert_memory_equal(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
    assert_true(mos_get_le64(b) == 0x0102030405060708ull);
    mos_put_le64(b, UINT64_MAX - 1);
    assert_true(mos_get_le64(b) == UINT64_MAX - 1);
    mos_put_le32(b, MOS_FRAME_MAGIC('M', 'O', 'S', 'X'));
    assert_memory_equal(b, "MOSX", 4); /* a dump shows whose frame it is */
}

/* A protocol with two types: 1 carries up to 100 bytes, 2 exactly 4. */
static bool test_length_ok(uint16_t type, uint32_t length)
{
    return (type == 1 && length <= 100) || (type == 2 && length == 4);
}

static const struct mos_frame_proto test_proto = {
    .magic = MOS_FRAME_MAGIC('T', 'E', 'S', 'T'),
    .version = 3,
    .length_ok = test_length_ok,
};

static void test_frame_header(void **state)
{
    (void)state;
    uint8_t buf[MOS_FRAME_HDR_BYTES + 100];
    struct mos_frame_hdr h = {0, 0};
    size_t used = 0;

    mos_frame_hdr_encode(&test_proto, 1, 77, buf);
    assert_memory_equal(buf, "TEST\x03\x00\x01\x00\x4d\x00\x00\x00", MOS_FRAME_HDR_BYTES);
    assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, MOS_FRAME_HDR_BYTES, &h), 0);
    assert_int_equal(h.type, 1);
    assert_int_equal(h.length, 77);
    /* every prefix of a good header is "not yet whole" */
    for (size_t cut = 0; cut < MOS_FRAME_HDR_BYTES; cut++)
        assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, cut, &h), MOS_E_TRUNCATED);
    /* a whole frame: truncated until the payload is all there */
    for (size_t cut = 0; cut < MOS_FRAME_HDR_BYTES + 77; cut += 7)
        assert_int_equal(mos_frame_decode(&test_proto, buf, cut, MOS_FRAME_HDR_BYTES, &h, &used),
                         MOS_E_TRUNCATED);
    assert_int_equal(mos_frame_decode(&test_proto, buf, sizeof(buf), MOS_FRAME_HDR_BYTES, &h, &used), 0);
    assert_int_equal(used, MOS_FRAME_HDR_BYTES + 77);
    /* extra fixed fields after the common header count as header, not payload */
    assert_int_equal(mos_frame_decode(&test_proto, buf, MOS_FRAME_HDR_BYTES + 80,
                                      MOS_FRAME_HDR_BYTES + 4, &h, &used), MOS_E_TRUNCATED);
    assert_int_equal(mos_frame_decode(&test_proto, buf, MOS_FRAME_HDR_BYTES + 81,
                                      MOS_FRAME_HDR_BYTES + 4, &h, &used), 0);
    assert_int_equal(used, MOS_FRAME_HDR_BYTES + 81);
}

static void test_frame_rejects(void **state)
{
    (void)state;
    uint8_t buf[MOS_FRAME_HDR_BYTES];
    struct mos_frame_hdr h = {9, 9};

    /* a wrong magic byte fails as soon as it is there, before a whole header */
    for (size_t at = 0; at < 4; at++) {
        mos_frame_hdr_encode(&test_proto, 1, 0, buf);
        buf[at] ^= 0x20;
        assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, at + 1, &h), MOS_E_PROTO);
        assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, sizeof(buf), &h), MOS_E_PROTO);
    }
    mos_frame_hdr_encode(&test_proto, 1, 0, buf);
    mos_put_le16(buf + 4, 4);
    assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, sizeof(buf), &h), MOS_E_VERSION);
    mos_frame_hdr_encode(&test_proto, 1, 101, buf); /* over the type's limit */
    assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, sizeof(buf), &h), MOS_E_PROTO);
    mos_frame_hdr_encode(&test_proto, 2, 5, buf); /* not the type's fixed size */
    assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, sizeof(buf), &h), MOS_E_PROTO);
    mos_frame_hdr_encode(&test_proto, 3, 0, buf); /* a type the protocol does not know */
    assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, sizeof(buf), &h), MOS_E_PROTO);
    mos_frame_hdr_encode(&test_proto, 2, UINT32_MAX, buf);
    assert_int_equal(mos_frame_hdr_decode(&test_proto, buf, sizeof(buf), &h), MOS_E_PROTO);
    /* nothing was decoded: the out-parameter is untouched */
    assert_int_equal(h.type, 9);
    assert_int_equal(h.length, 9);
}

static void test_config_good(void **state)
{
    (void)state;
    struct mos_config cfg;
    const char *text = "# lab\n[cluster]\nkey_file = /tmp/k\ngossip_window = 8\n"
                       "transport = tcp\n[nodes]\nmos1 = 10.77.0.1\nmos2 = 10.77.0.2\n"
                       "v6 = ::1\n";

    assert_int_equal(mos_config_parse(text, "t.conf", &cfg), 0);
    assert_int_equal(cfg.n_nodes, 3);
    assert_string_equal(cfg.nodes[1].name, "mos2");
    assert_string_equal(cfg.nodes[1].addr, "10.77.0.2");
    assert_int_equal(cfg.gossip_window, 8);
    assert_int_equal(cfg.gossip_interval_ms, 1000);
    assert_string_equal(cfg.transport, "tcp");
    assert_int_equal(mos_config_find_node(&cfg, "mos2"), 1);
    assert_int_equal(mos_config_find_node(&cfg, "10.77.0.1"), 0);
    assert_int_equal(mos_config_find_node(&cfg, "mos9"), MOS_E_UNKNOWN_NODE);
    /* ::1 is on the loopback interface of any host */
    assert_int_equal(mos_config_find_self(&cfg), 2);
    mos_config_free(&cfg);
}

static void test_config_defaults_one_node(void **state)
{
    (void)state;
    struct mos_config cfg;

    assert_int_equal(mos_config_parse("", "empty", &cfg), 0);
    assert_int_equal(cfg.n_nodes, 1);
    assert_string_equal(cfg.nodes[0].addr, "127.0.0.1");
    assert_int_equal(mos_config_find_self(&cfg), 0);
    mos_config_free(&cfg);
}

static void expect_config_error(const char *text, const char *needle)
{
    struct mos_config cfg;

    last_log[0] = '\0';
    assert_int_equal(mos_config_parse(text, "bad.conf", &cfg), MOS_E_CONFIG);
    assert_null(cfg.nodes);
    if (!strstr(last_log, needle))
        fail_msg("log '%s' lacks '%s'", last_log, needle);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_config_error("[cluster]\nfoo = 1\n", "bad.conf:2: unknown setting 'foo'");
    expect_config_error("[cluster]\ngossip_port = 70000\n", "expected a whole number");
    expect_config_error("[cluster]\ngossip_port = 12x\n", "expected a whole number");
    expect_config_error("[weird]\na = b\n", "unknown section [weird]");
    expect_config_error("[nodes]\na = 10.0.0.300\n", "not a numeric IP address");
    expect_config_error("[nodes]\na = 10.0.0.1\nb = 10.0.0.1\n", "repeats node a");
    expect_config_error("[nodes]\na b = 10.0.0.1\n", "bad node name");
    expect_config_error("[cluster]\ntransport = carrier-pigeon\n", "expected auto, tcp or verbs");
    expect_config_error("[nodes]\na = 10.0.0.1\nb = 10.0.0.2\n", "needs key_file");
    expect_config_error("[cluster\n", "bad.conf:1:");
}

static void test_config_long_line(void **state)
{
    (void)state;
    /* libinih would read the tail of a long line as a line of its own. */
    char text[600];
    struct mos_config cfg;
    int n = snprintf(text, sizeof(text), "[cluster]\n# %0*d\ngossip_port = 7001\n", 196, 0);

    assert_true(n > 0 && (size_t)n < sizeof(text));
    assert_int_equal(mos_config_parse(text, "ok.conf", &cfg), 0);
    assert_int_equal(cfg.gossip_port, 7001);
    mos_config_free(&cfg);
    snprintf(text, sizeof(text), "[cluster]\n# %0*d x = 1\n", 300, 0);
    expect_config_error(text, "bad.conf:2: line longer than");
}

static void test_config_describe_parses(void **state)
{
    (void)state;
    /* The help text is itself a valid config that reproduces the defaults. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct mos_config cfg, def;

    mos_config_describe(f);
    fclose(f);
    assert_int_equal(mos_config_parse(buf, "describe", &cfg), 0);
    mos_config_defaults(&def);
    assert_int_equal(cfg.gossip_port, def.gossip_port);
    assert_string_equal(cfg.socket_path, def.socket_path);
    mos_config_free(&cfg);
    free(buf);
}

static uint64_t size_of(const char *text, uint64_t unit)
{
    uint64_t v = 12345;

    assert_int_equal(mos_size_parse(text, unit, &v), 0);
    return v;
}

static void expect_size_refused(const char *text, int status)
{
    uint64_t v = 12345;

    assert_int_equal(mos_size_parse(text, 1, &v), status);
    assert_int_equal(v, 12345); /* untouched on failure */
}

static void test_size_parse(void **state)
{
    (void)state;
    assert_int_equal(size_of("4096", 1), 4096);
    assert_int_equal(size_of("0", 1), 0);
    assert_int_equal(size_of("64K", 1), 65536);
    assert_int_equal(size_of("16M", 1), 16ull << 20);
    assert_int_equal(size_of("2G", 1), 2ull << 30);
    assert_int_equal(size_of("3T", 1), 3ull << 40);
    /* case, B and iB after the suffix, a lone B */
    assert_int_equal(size_of("64k", 1), 65536);
    assert_int_equal(size_of("64KB", 1), 65536);
    assert_int_equal(size_of("64KiB", 1), 65536);
    assert_int_equal(size_of("16mib", 1), 16ull << 20);
    assert_int_equal(size_of("2gB", 1), 2ull << 30);
    assert_int_equal(size_of("4096B", 1), 4096);
    assert_int_equal(size_of("007M", 1), 7ull << 20);
    /* a plain number counts in the caller's unit; a suffix (or B) is explicit */
    assert_int_equal(size_of("512", 1u << 20), 512ull << 20);
    assert_int_equal(size_of("2G", 1u << 20), 2ull << 30);
    assert_int_equal(size_of("4096B", 1u << 20), 4096);
    /* the 64-bit edge, exactly and one past */
    assert_int_equal(size_of("18446744073709551615", 1), UINT64_MAX);
    assert_int_equal(size_of("16777215T", 1), 16777215ull << 40);
    expect_size_refused("16777216T", -ERANGE);
    expect_size_refused("18446744073709551616", -ERANGE);
    expect_size_refused("99999999999999999999999K", -ERANGE);
    uint64_t v = 0;
    assert_int_equal(mos_size_parse("17592186044416", 1u << 20, &v), -ERANGE); /* 16 EiB */
}

static void test_size_refused(void **state)
{
    (void)state;
    static const char *const junk[] = {"", "K", "-1", "-1K", "+4", " 4", "4 ", "4 K", "1.5G",
                                       "0x1000", "4P", "4KK", "4KBB", "4iB", "4Kb ", "4Ki",
                                       "4KiBB", "2X", "G2", "99999999999999999999999X"};
    uint64_t v;

    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        print_message("refusing '%s'\n", junk[i]);
        expect_size_refused(junk[i], -EINVAL);
    }
    assert_int_equal(mos_size_parse("4", 0, &v), -EINVAL);
}

static void test_size_range_and_format(void **state)
{
    char why[160], buf[24];
    uint64_t v = 0;

    (void)state;
    assert_int_equal(mos_size_parse_range("64M", 1, 4096, 64ull << 30, &v, why, sizeof(why)), 0);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(mos_size_parse_range("128G", 1, 4096, 64ull << 30, &v, why, sizeof(why)),
                     -ERANGE);
    assert_string_equal(why, "'128G' is above 64G");
    assert_int_equal(mos_size_parse_range("1K", 1, 4096, 64ull << 30, &v, why, sizeof(why)),
                     -ERANGE);
    assert_string_equal(why, "'1K' is below 4K");
    assert_int_equal(mos_size_parse_range("99999999T", 1, 0, UINT64_MAX, &v, why, sizeof(why)),
                     -ERANGE);
    assert_string_equal(why, "'99999999T' is above 18446744073709551615");
    assert_int_equal(mos_size_parse_range("2X", 1, 0, 10, &v, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "'2X' is not a size (" MOS_SIZE_SYNTAX ")");
    assert_int_equal(v, 64ull << 20);

    assert_string_equal(mos_size_format(0, buf, sizeof(buf)), "0");
    assert_string_equal(mos_size_format(4097, buf, sizeof(buf)), "4097");
    assert_string_equal(mos_size_format(65536, buf, sizeof(buf)), "64K");
    assert_string_equal(mos_size_format(1536ull << 10, buf, sizeof(buf)), "1536K");
    assert_string_equal(mos_size_format(16ull << 20, buf, sizeof(buf)), "16M");
    assert_string_equal(mos_size_format(2ull << 30, buf, sizeof(buf)), "2G");
    assert_string_equal(mos_size_format(5ull << 50, buf, sizeof(buf)), "5120T");
    /* what format writes, parse reads back */
    static const uint64_t values[] = {1, 4096, 65536, 1536ull << 10, 3ull << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        assert_int_equal(size_of(mos_size_format(values[i], buf, sizeof(buf)), 1), values[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_strerror, setup_capture),
        cmocka_unit_test_setup(test_log_levels, setup_capture),
        cmocka_unit_test(test_clock),
        cmocka_unit_test_setup(test_key_file_roundtrip, setup_capture),
        cmocka_unit_test(test_key_parse),
        cmocka_unit_test(test_key_file_too_long),
        cmocka_unit_test(test_mac),
        cmocka_unit_test(test_frame_byte_order),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_frame_rejects),
        cmocka_unit_test_setup(test_config_good, setup_capture),
        cmocka_unit_test_setup(test_config_defaults_one_node, setup_capture),
        cmocka_unit_test_setup(test_config_errors, setup_capture),
        cmocka_unit_test_setup(test_config_long_line, setup_capture),
        cmocka_unit_test_setup(test_config_describe_parses, setup_capture),
        cmocka_unit_test(test_size_parse),
        cmocka_unit_test(test_size_refused),
        cmocka_unit_test(test_size_range_and_format),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
