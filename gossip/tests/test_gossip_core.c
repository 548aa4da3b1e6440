/* The gossip algorithm core: merging, the window of the W youngest (against a brute force),
 * liveness, and a seeded simulation whose ages must match the analytical model. */
#include "gossip_core.h"
#include "mos/gossip.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct mos_gossip_splitmix sm = {.state = 42};
static const struct mos_gossip_rng rng = {.next = mos_gossip_splitmix_next, .arg = &sm};

static struct mos_gossip_core *make(uint32_t n, uint32_t self, uint32_t window, uint32_t dead)
{
    struct mos_gossip_core_params p = {.n_slots = n, .self = self, .window = window,
                                       .dead_after = dead};
    struct mos_gossip_core *c = NULL;

    assert_int_equal(mos_gossip_core_create(&p, 0, &c), 0);
    return c;
}

static size_t receive1(struct mos_gossip_core *c, uint32_t now, uint32_t slot, uint32_t age,
                       uint8_t *result)
{
    struct mos_gossip_item it = {.slot = slot, .age = age};

    return mos_gossip_core_receive(c, now, &it, 1, result);
}

static void test_bad_params(void **state)
{
    (void)state;
    struct mos_gossip_core *c;
    struct mos_gossip_core_params p = {.n_slots = 4, .self = 4, .window = 2, .dead_after = 10};

    assert_int_equal(mos_gossip_core_create(&p, 0, &c), -EINVAL);
    p.self = 0;
    p.window = 0;
    assert_int_equal(mos_gossip_core_create(&p, 0, &c), -EINVAL);
    p.window = 2;
    p.n_slots = 70000;
    assert_int_equal(mos_gossip_core_create(&p, 0, &c), -EINVAL);
}

static void test_merge_keeps_younger(void **state)
{
    (void)state;
    struct mos_gossip_core *c = make(8, 0, 4, 1000);
    uint8_t r;

    assert_int_equal(mos_gossip_core_age(c, 100, 3), MOS_GOSSIP_AGE_UNKNOWN);
    assert_int_equal(receive1(c, 100, 3, 20, &r), 1);
    assert_int_equal(r, MOS_GOSSIP_MERGE_RETURNED); /* first news of node 3 */
    assert_int_equal(mos_gossip_core_age(c, 100, 3), 20);
    assert_int_equal(receive1(c, 104, 3, 40, &r), 0); /* older: ignored */
    assert_int_equal(r, MOS_GOSSIP_MERGE_STALE);
    assert_int_equal(mos_gossip_core_age(c, 104, 3), 24);
    assert_int_equal(receive1(c, 108, 3, 4, &r), 1);
    assert_int_equal(r, MOS_GOSSIP_MERGE_NEWS);
    assert_int_equal(mos_gossip_core_age(c, 108, 3), 4);
    assert_int_equal(receive1(c, 108, 0, 0, &r), 0); /* news of ourselves: we know better */
    assert_int_equal(receive1(c, 108, 99, 0, &r), 0); /* out of range */
    assert_int_equal(mos_gossip_core_n_alive(c), 2);
    mos_gossip_core_destroy(c);
}

/* The window must be exactly the W youngest known entries; checked against every age. */
static void check_window(struct mos_gossip_core *c, uint32_t n, uint32_t window, uint32_t now)
{
    struct mos_gossip_item items[64];
    uint32_t target, ages[256];
    size_t got = mos_gossip_core_tick(c, now, &rng, &target, items);
    uint32_t known = 0, worst_in = 0, best_out = UINT32_MAX;
    int in[256] = {0};

    assert_true(got >= 1);
    assert_int_equal(items[0].slot, 0);
    assert_int_equal(items[0].age, 0);
    for (size_t i = 1; i < got; i++) {
        assert_false(in[items[i].slot]); /* no repeats */
        in[items[i].slot] = 1;
        assert_int_equal(items[i].age, mos_gossip_core_age(c, now, items[i].slot));
        worst_in = items[i].age > worst_in ? items[i].age : worst_in;
    }
    for (uint32_t s = 1; s < n; s++) {
        ages[s] = mos_gossip_core_age(c, now, s);
        if (ages[s] == MOS_GOSSIP_AGE_UNKNOWN)
            continue;
        known++;
        if (!in[s] && ages[s] < best_out)
            best_out = ages[s];
    }
    assert_int_equal(got - 1, known < window ? known : window);
    assert_true(worst_in <= best_out);
}

static void test_window_is_youngest(void **state)
{
    (void)state;
    const uint32_t n = 200, window = 16;
    struct mos_gossip_core *c = make(n, 0, window, 1u << 29);
    struct mos_gossip_item batch[40];
    uint32_t now = 1000;

    for (int round = 0; round < 400; round++) {
        size_t k = 1 + mos_gossip_splitmix_next(&sm) % 40;
        for (size_t i = 0; i < k; i++) {
            /* slots may repeat within a window, as from a buggy or hostile sender */
            batch[i].slot = (uint32_t)(mos_gossip_splitmix_next(&sm) % n);
            batch[i].age = (uint32_t)(mos_gossip_splitmix_next(&sm) % 5000);
        }
        mos_gossip_core_receive(c, now, batch, k, NULL);
        now += (uint32_t)(mos_gossip_splitmix_next(&sm) % 300);
        check_window(c, n, window, now);
    }
    mos_gossip_core_destroy(c);
}

static unsigned dead_calls;

static void count_dead(void *arg, uint32_t slot)
{
    (void)arg;
    assert_int_equal(slot, 2);
    dead_calls++;
}

static void test_dead_and_back(void **state)
{
    (void)state;
    struct mos_gossip_core *c = make(4, 0, 2, 100);
    struct mos_gossip_item items[4];
    uint32_t target;
    uint8_t r;

    receive1(c, 0, 1, 0, NULL);
    receive1(c, 0, 2, 0, NULL);
    receive1(c, 0, 3, 0, NULL);
    assert_int_equal(mos_gossip_core_n_alive(c), 4);
    receive1(c, 150, 1, 0, NULL);
    receive1(c, 150, 3, 0, NULL);
    assert_int_equal(mos_gossip_core_expire(c, 150, count_dead, NULL), 1);
    assert_int_equal(dead_calls, 1);
    assert_false(mos_gossip_core_alive(c, 150, 2));
    assert_int_equal(mos_gossip_core_n_alive(c), 3);
    /* The dead node is neither sent (too old) nor chosen while others are alive. */
    for (int i = 0; i < 50; i++) {
        size_t got = mos_gossip_core_tick(c, 150, &rng, &target, items);
        for (size_t k = 0; k < got; k++)
            assert_int_not_equal(items[k].slot, 2);
    }
    assert_int_equal(mos_gossip_core_expire(c, 160, count_dead, NULL), 0); /* once only */
    assert_int_equal(receive1(c, 170, 2, 5, &r), 1);
    assert_int_equal(r, MOS_GOSSIP_MERGE_RETURNED);
    assert_int_equal(mos_gossip_core_n_alive(c), 4);
    mos_gossip_core_set_left(c, 3, 1);
    assert_false(mos_gossip_core_alive(c, 170, 3));
    assert_int_equal(mos_gossip_core_n_alive(c), 3);
    mos_gossip_core_set_left(c, 3, 0);
    assert_int_equal(mos_gossip_core_n_alive(c), 4);
    mos_gossip_core_destroy(c);
}

static void test_target_uniform(void **state)
{
    (void)state;
    const uint32_t n = 10;
    struct mos_gossip_core *c = make(n, 4, 3, 1000);
    struct mos_gossip_item items[4];
    unsigned hits[10] = {0};
    uint32_t target;

    for (uint32_t s = 0; s < n; s++)
        receive1(c, 0, s, 0, NULL);
    for (int i = 0; i < 9000; i++) {
        mos_gossip_core_tick(c, 10, &rng, &target, items);
        assert_true(target < n);
        hits[target]++;
    }
    assert_int_equal(hits[4], 0);
    for (uint32_t s = 0; s < n; s++)
        if (s != 4)
            assert_in_range(hits[s], 850, 1150); /* 1000 expected; 5 sigma is about 150 */
    mos_gossip_core_destroy(c);
}

/* A seeded run of N = 300 nodes, W = 8 (+ own), with phases as in mosbench gossip; after a
 * warm-up of the model's maximum age, the average age must be within 5% of the model and the
 * mean per-vector maximum within 10% (observed: under 1% and 2%). */
static void test_seeded_simulation(void **state)
{
    (void)state;
    const uint32_t n = 300, window = 8, steps = 1000, unit = 1000;
    struct mos_gossip_core **cores = calloc(n, sizeof(*cores));
    uint32_t *phase = calloc(n, sizeof(*phase)), *order = calloc(n, sizeof(*order));
    struct mos_gossip_item items[9];
    struct mos_gossip_age_model m;
    double sum = 0, max_sum = 0;
    unsigned long long ages = 0, rows = 0;

    assert_int_equal(mos_gossip_model(n, window + 1, &m), 0);
    for (uint32_t i = 0; i < n; i++) {
        phase[i] = (uint32_t)(mos_gossip_splitmix_next(&sm) % unit);
        cores[i] = make(n, i, window, 5 * unit * (uint32_t)m.max_age);
        order[i] = i;
    }
    for (uint32_t i = 1; i < n; i++) /* by phase: insertion sort, n is small */
        for (uint32_t j = i; j > 0 && phase[order[j]] < phase[order[j - 1]]; j--) {
            uint32_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (uint32_t s = 0; s < steps; s++) {
        for (uint32_t k = 0; k < n; k++) {
            uint32_t i = order[k], target, now = s * unit + phase[i];
            size_t got = mos_gossip_core_tick(cores[i], now, &rng, &target, items);
            mos_gossip_core_receive(cores[target], now, items, got, NULL);
        }
        if (s < (uint32_t)m.max_age)
            continue;
        for (uint32_t r = 0; r < n; r += 7) {
            uint32_t max = 0;
            for (uint32_t j = 0; j < n; j++) {
                uint32_t a = mos_gossip_core_age(cores[r], (s + 1) * unit, j);
                if (j == r || a == MOS_GOSSIP_AGE_UNKNOWN)
                    continue;
                sum += a;
                ages++;
                max = a > max ? a : max;
            }
            max_sum += max;
            rows++;
        }
    }
    double avg = sum / ages / unit, max = max_sum / rows / unit;
    print_message("seeded simulation: avg age %.2f (model %.2f), max %.1f (model %.1f)\n", avg,
                  m.avg_age, max, m.max_age);
    assert_true(fabs(avg / m.avg_age - 1) < 0.05);
    assert_true(fabs(max / m.max_age - 1) < 0.10);
    for (uint32_t i = 0; i < n; i++)
        mos_gossip_core_destroy(cores[i]);
    free(cores);
    free(phase);
    free(order);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_merge_keeps_younger),
        cmocka_unit_test(test_window_is_youngest),
        cmocka_unit_test(test_dead_and_back),
        cmocka_unit_test(test_target_uniform),
        cmocka_unit_test(test_seeded_simulation),
    };
    return cmocka_run_group_tests_name("gossip_core", tests, NULL, NULL);
}
