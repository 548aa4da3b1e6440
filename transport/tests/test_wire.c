#include "mos/status.h"
#include "mos/transport.h"
#include "wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tp_priv.h"

#include <cmocka.h>

static void test_roundtrip(void **state)
{
    (void)state;
    struct mos_wire_hdr out;
    uint8_t buf[MOS_WIRE_HDR_BYTES];

    mos_wire_hdr_make(MOS_WIRE_CONTROL, 1234, 77, buf);
    /* little-endian: the magic reads "MOSW", the length's low byte comes first */
    assert_memory_equal(buf, "MOSW", 4);
    assert_int_equal(buf[4], MOS_WIRE_VERSION);
    assert_int_equal(buf[6], MOS_WIRE_CONTROL);
    assert_int_equal(buf[8], 1234 & 0xff);
    assert_int_equal(buf[12], 77);
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), 0);
    assert_int_equal(out.type, MOS_WIRE_CONTROL);
    assert_int_equal(out.length, 1234);
    assert_int_equal(out.id, 77);
}

static int decode_made(uint16_t type, uint32_t length, size_t len)
{
    struct mos_wire_hdr out;
    uint8_t buf[MOS_WIRE_HDR_BYTES];

    mos_wire_hdr_make(type, length, 0, buf);
    return mos_wire_hdr_decode(buf, len, &out);
}

static void test_rejects(void **state)
{
    (void)state;
    struct mos_wire_hdr out;
    uint8_t buf[MOS_WIRE_HDR_BYTES];

    /* every prefix of a good header is "not yet whole", the id too */
    for (size_t cut = 0; cut < MOS_WIRE_HDR_BYTES; cut++)
        assert_int_equal(decode_made(MOS_WIRE_CONTROL, 0, cut), MOS_E_TRUNCATED);
    assert_int_equal(decode_made(MOS_WIRE_CONTROL, MOS_WIRE_MAX_CONTROL + 1, sizeof(buf)), MOS_E_PROTO);
    /* bulk frames may be larger, up to their own limit */
    assert_int_equal(decode_made(MOS_WIRE_PAGE_RUN, MOS_WIRE_MAX_CONTROL + 1, sizeof(buf)), 0);
    assert_int_equal(decode_made(MOS_WIRE_PAGE_RUN, MOS_WIRE_MAX_BULK + 1, sizeof(buf)), MOS_E_PROTO);
    /* handshake messages have their exact sizes as limits */
    assert_int_equal(decode_made(MOS_WIRE_PROOF, MOS_AUTH_SERVER_PROOF_BYTES, sizeof(buf)), 0);
    assert_int_equal(decode_made(MOS_WIRE_PROOF, MOS_AUTH_SERVER_PROOF_BYTES + 1, sizeof(buf)), MOS_E_PROTO);
    assert_int_equal(decode_made(0, 0, sizeof(buf)), MOS_E_PROTO);
    assert_int_equal(decode_made(MOS_WIRE_TYPE_MAX + 1, 0, sizeof(buf)), MOS_E_PROTO);

    mos_wire_hdr_make(MOS_WIRE_CONTROL, 0, 0, buf);
    buf[4] = 2; /* another version */
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), MOS_E_VERSION);
    /* a peer of the big-endian format says version 0x0100: another version, not garbage */
    memcpy(buf, "MOSW\x00\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00", sizeof(buf));
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), MOS_E_VERSION);
    mos_wire_hdr_make(MOS_WIRE_CONTROL, 0, 0, buf);
    buf[0] = 'W'; /* a wrong magic is refused from its first byte */
    assert_int_equal(mos_wire_hdr_decode(buf, 1, &out), MOS_E_PROTO);
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), MOS_E_PROTO);
}

static void test_runs(void **state)
{
    (void)state;
    struct mos_page_run in[3] = {{0x10000, 2}, {0x7fff0000, 1}, {0x200000, 3}}, out[4];
    size_t table = mos_wire_runs_table_bytes(3), len = table + 6 * MOS_TP_PAGE_SIZE, n;
    uint8_t *buf = calloc(1, len);
    const uint8_t *data;

    mos_wire_runs_encode(in, 3, buf);
    assert_int_equal(buf[0], 3); /* little-endian count */
    assert_int_equal(mos_wire_runs_decode(buf, len, out, 4, &n, &data), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(in, out, sizeof(in));
    assert_ptr_equal(data, buf + table);
    /* length and counts must agree exactly */
    assert_int_equal(mos_wire_runs_decode(buf, len - 1, out, 4, &n, &data), MOS_E_PROTO);
    assert_int_equal(mos_wire_runs_decode(buf, len + MOS_TP_PAGE_SIZE, out, 4, &n, &data), MOS_E_PROTO);
    assert_int_equal(mos_wire_runs_decode(buf, 4, out, 4, &n, &data), MOS_E_PROTO);
    /* more runs than the caller's array */
    assert_int_equal(mos_wire_runs_decode(buf, len, out, 2, &n, &data), MOS_E_PROTO);
    /* an unaligned address, an empty run, a run wrapping the address space */
    in[1].addr = 0x7fff0001;
    mos_wire_runs_encode(in, 3, buf);
    assert_int_equal(mos_wire_runs_decode(buf, len, out, 4, &n, &data), MOS_E_PROTO);
    in[1].addr = 0x7fff0000, in[1].npages = 0, in[2].npages = 4;
    mos_wire_runs_encode(in, 3, buf);
    assert_int_equal(mos_wire_runs_decode(buf, len, out, 4, &n, &data), MOS_E_PROTO);
    in[1].npages = 1, in[2].npages = 3, in[2].addr = UINT64_MAX - MOS_TP_PAGE_SIZE + 1;
    mos_wire_runs_encode(in, 3, buf);
    assert_int_equal(mos_wire_runs_decode(buf, len, out, 4, &n, &data), MOS_E_PROTO);
    /* zero runs */
    mos_wire_runs_encode(in, 0, buf);
    assert_int_equal(mos_wire_runs_decode(buf, 8, out, 4, &n, &data), MOS_E_PROTO);
    free(buf);
}

static void test_hello(void **state)
{
    (void)state;
    struct mos_wire_hello in = {.caps = MOS_WIRE_CAP_VERBS, .backend = MOS_TP_AUTO,
                                .slot_bytes = 1 << 20, .slot_count = 16, .n_qps = 2,
                                .tcp_port = 7001, .cm_port = 7002}, out;
    uint8_t buf[MOS_WIRE_HELLO_BYTES];

    memset(in.token, 0xab, sizeof(in.token));
    snprintf(in.reason, sizeof(in.reason), "no RDMA device");
    mos_wire_hello_encode(&in, buf);
    assert_int_equal(mos_wire_hello_decode(buf, sizeof(buf), &out), 0);
    assert_int_equal(out.n_qps, 2);
    assert_int_equal(out.cm_port, 7002);
    assert_string_equal(out.reason, "no RDMA device");
    assert_memory_equal(out.token, in.token, sizeof(in.token));
    assert_int_equal(mos_wire_hello_decode(buf, sizeof(buf) - 1, &out), MOS_E_PROTO);
    in.n_qps = 0; /* out of range */
    mos_wire_hello_encode(&in, buf);
    assert_int_equal(mos_wire_hello_decode(buf, sizeof(buf), &out), MOS_E_PROTO);
    in.n_qps = 1, in.slot_bytes = MOS_WIRE_MAX_BULK + 1;
    mos_wire_hello_encode(&in, buf);
    assert_int_equal(mos_wire_hello_decode(buf, sizeof(buf), &out), MOS_E_PROTO);
    in.slot_bytes = 1 << 20;
    mos_wire_hello_encode(&in, buf);
    assert_int_equal(buf[20], 7001 & 0xff); /* little-endian */
    buf[24 + MOS_WIRE_TOKEN_BYTES] = 0x07; /* a control character in the reason text */
    assert_int_equal(mos_wire_hello_decode(buf, sizeof(buf), &out), 0);
    assert_int_equal(out.reason[0], '?');
}

static void test_frame_split(void **state)
{
    (void)state;
    /* One long run and many short ones split into frames of at most 5 pages / 3 runs. */
    struct mos_page_run runs[] = {{0, 12}, {0x100000, 1}, {0x200000, 1}, {0x300000, 1}, {0x400000, 0}},
                        frame[3];
    size_t i = 0, k;
    uint64_t off = 0, pages, total = 0, frames = 0;

    while ((k = tp_frame_next(runs, 5, &i, &off, frame, 3, 5, &pages))) {
        assert_true(pages <= 5 && k <= 3);
        for (size_t j = 0; j < k; j++)
            assert_true(frame[j].npages > 0);
        total += pages, frames++;
    }
    assert_int_equal(total, 15);
    assert_int_equal(frames, 4); /* 5 + 5 + (2,1,1) + 1 */
}

static void test_backend_names(void **state)
{
    (void)state;
    assert_int_equal(mos_tp_backend_parse("verbs"), MOS_TP_VERBS);
    assert_int_equal(mos_tp_backend_parse("tcp"), MOS_TP_TCP);
    assert_int_equal(mos_tp_backend_parse("auto"), MOS_TP_AUTO);
    assert_int_equal(mos_tp_backend_parse("rdma"), -1);
    setenv("MOS_TRANSPORT", "tcp", 1);
    struct mos_tp_opts o;
    mos_tp_opts_default(&o);
    assert_int_equal(o.backend, MOS_TP_TCP);
    unsetenv("MOS_TRANSPORT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_frame_split),
        cmocka_unit_test(test_backend_names),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
