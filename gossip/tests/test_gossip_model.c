#include "mos/gossip.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void test_model_reference_point(void **state)
{
    (void)state;
    struct mos_gossip_age_model m;

    /* DESIGN.md's worked figures for N = 1000, W = 16: 64.8 and about 467 steps. */
    assert_int_equal(mos_gossip_model(1000, 16, &m), 0);
    assert_float_equal(m.avg_age, 64.8, 0.1);
    assert_float_equal(m.max_age, 467.0, 2.0);
}

static void test_model_monotone(void **state)
{
    (void)state;
    struct mos_gossip_age_model small_w, big_w, big_n;

    assert_int_equal(mos_gossip_model(1000, 8, &small_w), 0);
    assert_int_equal(mos_gossip_model(1000, 64, &big_w), 0);
    assert_int_equal(mos_gossip_model(10000, 8, &big_n), 0);
    assert_true(big_w.avg_age < small_w.avg_age);   /* a larger window spreads faster */
    assert_true(big_n.avg_age > small_w.avg_age);   /* more nodes, older news */
    assert_true(small_w.max_age > small_w.avg_age);
}

static void test_model_bad_args(void **state)
{
    (void)state;
    struct mos_gossip_age_model m;

    assert_int_equal(mos_gossip_model(1, 1, &m), -EINVAL);
    assert_int_equal(mos_gossip_model(10, 10, &m), -EINVAL);
    assert_int_equal(mos_gossip_model(10, 0, &m), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_reference_point),
        cmocka_unit_test(test_model_monotone),
        cmocka_unit_test(test_model_bad_args),
    };
    return cmocka_run_group_tests_name("gossip_model", tests, NULL, NULL);
}
