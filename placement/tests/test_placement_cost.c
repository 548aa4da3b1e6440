#include "mos/placement.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void test_cost_values(void **state)
{
    (void)state;
    double idle[2] = {0, 0}, full[2] = {1, 1}, half[2] = {0.5, 0.5};

    assert_float_equal(mos_placement_node_cost(16, idle, 2), 2.0, 1e-9);
    assert_float_equal(mos_placement_node_cost(16, full, 2), 32.0, 1e-9);
    assert_float_equal(mos_placement_node_cost(16, half, 2), 8.0, 1e-9);
}

static void test_marginal_prefers_idle_node(void **state)
{
    (void)state;
    double busy[2] = {0.8, 0.3}, idle[2] = {0.1, 0.3}, job[2] = {0.2, 0.1};

    double on_busy = mos_placement_marginal_cost(8, busy, job, 2);
    double on_idle = mos_placement_marginal_cost(8, idle, job, 2);
    assert_true(on_idle < on_busy);
    assert_true(on_idle > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_values),
        cmocka_unit_test(test_marginal_prefers_idle_node),
    };
    return cmocka_run_group_tests_name("placement_cost", tests, NULL, NULL);
}
