/* Unit tests of mos/seal.h: what one end boxes the other opens, and nothing else does: not a
 * flipped bit, not a replay, not a message sent back the way it came, not another channel's. */
#include "mos/frame.h"
#include "mos/seal.h"
#include "mos/status.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static const uint8_t session[MOS_AUTH_SESSION_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static void pair(struct mos_seal *client, struct mos_seal *server, enum mos_seal_channel ch)
{
    mos_seal_init(client, session, ch, 1);
    mos_seal_init(server, session, ch, 0);
}

static void test_box_round_trip(void **state)
{
    struct mos_seal c, s;
    const char msg[] = "{\"token\":\"secret\"}";
    uint8_t box[sizeof(msg)], out[sizeof(msg)], tag[MOS_SEAL_TAG_BYTES], ad[6] = {4, 0, 7, 0, 0, 0};

    (void)state;
    pair(&c, &s, MOS_SEAL_CONTROL);
    for (int i = 0; i < 3; i++) {
        mos_seal_box(&c.tx, ad, sizeof(ad), msg, box, sizeof(msg), tag);
        assert_memory_not_equal(box, msg, sizeof(msg)); /* sealed, not only signed */
        assert_int_equal(mos_seal_unbox(&s.rx, ad, sizeof(ad), box, out, sizeof(box), tag), 0);
        assert_memory_equal(out, msg, sizeof(msg));
    }
    /* the other direction has its own key and counter */
    mos_seal_box(&s.tx, NULL, 0, msg, box, sizeof(msg), tag);
    assert_int_equal(mos_seal_unbox(&c.rx, NULL, 0, box, box, sizeof(box), tag), 0);
    assert_memory_equal(box, msg, sizeof(msg));
}

static void test_box_tampered(void **state)
{
    struct mos_seal c, s;
    uint8_t msg[64] = "move 4242 to node 3", box[64], tag[MOS_SEAL_TAG_BYTES], ad[2] = {4, 0};

    (void)state;
    for (int what = 0; what < 3; what++) {
        pair(&c, &s, MOS_SEAL_CONTROL);
        mos_seal_box(&c.tx, ad, sizeof(ad), msg, box, sizeof(box), tag);
        if (what == 0)
            box[5] ^= 1;
        else if (what == 1)
            tag[0] ^= 0x80;
        else
            ad[1] ^= 1; /* the header (type, id) is bound too */
        assert_int_equal(mos_seal_unbox(&s.rx, ad, sizeof(ad), box, box, sizeof(box), tag),
                         MOS_E_TAMPERED);
        assert_int_equal(box[0], 0); /* nothing of a forgery is left to read */
        ad[1] = 0;
    }
}

static void test_box_replay_reflect_channel(void **state)
{
    struct mos_seal c, s, bulk_c, bulk_s;
    uint8_t m1[8] = "first", m2[8] = "second", b1[8], b2[8], t1[16], t2[16], copy[8];

    (void)state;
    pair(&c, &s, MOS_SEAL_CONTROL);
    pair(&bulk_c, &bulk_s, MOS_SEAL_BULK);
    mos_seal_box(&c.tx, NULL, 0, m1, b1, 8, t1);
    mos_seal_box(&c.tx, NULL, 0, m2, b2, 8, t2);
    /* dropped or reordered: the second message where the first is due */
    assert_int_equal(mos_seal_unbox(&s.rx, NULL, 0, b2, copy, 8, t2), MOS_E_TAMPERED);
    pair(&c, &s, MOS_SEAL_CONTROL);
    mos_seal_box(&c.tx, NULL, 0, m1, b1, 8, t1);
    assert_int_equal(mos_seal_unbox(&s.rx, NULL, 0, b1, copy, 8, t1), 0);
    /* replayed */
    assert_int_equal(mos_seal_unbox(&s.rx, NULL, 0, b1, copy, 8, t1), MOS_E_TAMPERED);
    /* reflected to its sender */
    pair(&c, &s, MOS_SEAL_CONTROL);
    mos_seal_box(&c.tx, NULL, 0, m1, b1, 8, t1);
    assert_int_equal(mos_seal_unbox(&c.rx, NULL, 0, b1, copy, 8, t1), MOS_E_TAMPERED);
    /* another channel of the same session */
    assert_int_equal(mos_seal_unbox(&bulk_s.rx, NULL, 0, b1, copy, 8, t1), MOS_E_TAMPERED);
    /* another session */
    struct mos_seal other;
    uint8_t other_session[MOS_AUTH_SESSION_BYTES] = {9};
    mos_seal_init(&other, other_session, MOS_SEAL_CONTROL, 0);
    assert_int_equal(mos_seal_unbox(&other.rx, NULL, 0, b1, copy, 8, t1), MOS_E_TAMPERED);
}

static void test_mac_pieces_and_nonce(void **state)
{
    static uint8_t pages[3 * 4096];
    struct mos_seal c, s;
    struct mos_seal_mac m;
    uint8_t tag[MOS_SEAL_TAG_BYTES];

    (void)state;
    for (size_t i = 0; i < sizeof(pages); i++)
        pages[i] = (uint8_t)(i * 7);
    pair(&c, &s, MOS_SEAL_BULK);
    mos_seal_mac_begin(&c.tx, 17, &m);
    mos_seal_mac_add(&m, pages, sizeof(pages));
    mos_seal_mac_final(&m, tag);
    /* the same bytes in other pieces give the same tag */
    mos_seal_mac_begin(&s.rx, 17, &m);
    mos_seal_mac_add(&m, pages, 100);
    mos_seal_mac_add(&m, pages + 100, sizeof(pages) - 100);
    assert_int_equal(mos_seal_mac_verify(&m, tag), 0);
    /* another nonce (a replayed frame's place) */
    mos_seal_mac_begin(&s.rx, 18, &m);
    mos_seal_mac_add(&m, pages, sizeof(pages));
    assert_int_equal(mos_seal_mac_verify(&m, tag), MOS_E_TAMPERED);
    /* one bit of one page */
    pages[8191] ^= 4;
    mos_seal_mac_begin(&s.rx, 17, &m);
    mos_seal_mac_add(&m, pages, sizeof(pages));
    assert_int_equal(mos_seal_mac_verify(&m, tag), MOS_E_TAMPERED);
    /* the receiving direction's key is not the sending one's */
    pages[8191] ^= 4;
    mos_seal_mac_begin(&s.tx, 17, &m);
    mos_seal_mac_add(&m, pages, sizeof(pages));
    assert_int_equal(mos_seal_mac_verify(&m, tag), MOS_E_TAMPERED);
    mos_seal_wipe(&c);
    assert_int_equal(c.tx.bytes[0] | c.rx.bytes[31], 0);
}

static void test_records_on_a_stream(void **state)
{
    struct mos_seal c, s;
    uint8_t stream[3 * (32 + MOS_SEAL_RECORD_EXTRA)], *plain;
    size_t at = 0, len, used;

    (void)state;
    pair(&c, &s, MOS_SEAL_LINK);
    mos_seal_record(&c.tx, "one", 3, stream);
    at += 3 + MOS_SEAL_RECORD_EXTRA;
    mos_seal_record(&c.tx, "second record", 13, stream + at);
    at += 13 + MOS_SEAL_RECORD_EXTRA;
    /* not all there yet: nothing consumed, the counter unmoved */
    assert_int_equal(mos_unseal_record(&s.rx, stream, 3 + MOS_SEAL_RECORD_EXTRA - 1, 64, &plain,
                                       &len, &used), MOS_E_TRUNCATED);
    assert_int_equal(mos_unseal_record(&s.rx, stream, at, 64, &plain, &len, &used), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(plain, "one", 3);
    assert_int_equal(used, 3 + MOS_SEAL_RECORD_EXTRA);
    /* a record longer than the reader allows */
    assert_int_equal(mos_unseal_record(&s.rx, stream + used, at - used, 12, &plain, &len, &used),
                     MOS_E_LIMIT);
    assert_int_equal(mos_unseal_record(&s.rx, stream + 3 + MOS_SEAL_RECORD_EXTRA,
                                       at - 3 - MOS_SEAL_RECORD_EXTRA, 64, &plain, &len, &used), 0);
    assert_memory_equal(plain, "second record", 13);
    /* the length is bound: a record cut shorter does not open */
    mos_seal_record(&c.tx, "third", 5, stream);
    mos_put_le32(stream, 4);
    assert_int_equal(mos_unseal_record(&s.rx, stream, 64, 64, &plain, &len, &used), MOS_E_TAMPERED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_box_round_trip),
        cmocka_unit_test(test_box_tampered),
        cmocka_unit_test(test_box_replay_reflect_channel),
        cmocka_unit_test(test_mac_pieces_and_nonce),
        cmocka_unit_test(test_records_on_a_stream),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
