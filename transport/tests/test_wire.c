#include "mos/status.h"
#include "mos/transport.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_roundtrip(void **state)
{
    (void)state;
    struct mos_wire_hdr in = {MOS_WIRE_MAGIC, MOS_WIRE_VERSION, MOS_WIRE_CONTROL, 1234, 77}, out;
    uint8_t buf[MOS_WIRE_HDR_BYTES];

    mos_wire_hdr_encode(&in, buf);
    assert_int_equal(buf[0], 'M'); /* network byte order: magic reads "MOSW" */
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), 0);
    assert_memory_equal(&in, &out, sizeof(in));
}

static void test_rejects(void **state)
{
    (void)state;
    struct mos_wire_hdr h = {MOS_WIRE_MAGIC, MOS_WIRE_VERSION, MOS_WIRE_CONTROL, 0, 0}, out;
    uint8_t buf[MOS_WIRE_HDR_BYTES];

    mos_wire_hdr_encode(&h, buf);
    assert_int_equal(mos_wire_hdr_decode(buf, 15, &out), MOS_E_TRUNCATED);

    h.length = MOS_WIRE_MAX_CONTROL + 1;
    mos_wire_hdr_encode(&h, buf);
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), MOS_E_PROTO);

    h.type = MOS_WIRE_PAGE_RUN; /* bulk frames may be larger, up to their own limit */
    mos_wire_hdr_encode(&h, buf);
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), 0);
    h.length = MOS_WIRE_MAX_BULK + 1;
    mos_wire_hdr_encode(&h, buf);
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), MOS_E_PROTO);

    h.length = 0;
    h.type = 0;
    mos_wire_hdr_encode(&h, buf);
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), MOS_E_PROTO);

    h.type = MOS_WIRE_CONTROL;
    h.version = 2;
    mos_wire_hdr_encode(&h, buf);
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), MOS_E_VERSION);

    h.version = MOS_WIRE_VERSION;
    h.magic = 0x12345678;
    mos_wire_hdr_encode(&h, buf);
    assert_int_equal(mos_wire_hdr_decode(buf, sizeof(buf), &out), MOS_E_PROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
