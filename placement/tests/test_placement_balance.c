/* The assignment and the balancer's decision on hand-built gossip vectors. */
#include "mos/placement.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>

#include <cmocka.h>

#define GIB (1024ull * 1024 * 1024)
#define MIB (1024ull * 1024)

static struct mos_node_state node(uint32_t id, uint32_t ncpus, double speed, double load,
                                  uint64_t free_b, uint64_t total_b)
{
    struct mos_node_state n = {.id = id, .ncpus = ncpus, .speed = speed, .load = load,
                               .mem_free = free_b, .mem_total = total_b,
                               .flags = MOS_NODE_ACCEPTING};
    return n;
}

static struct mos_job_info job(uint64_t id, double age, uint64_t pages)
{
    struct mos_job_info j = {.id = id, .age_s = age, .residence_s = age, .pages = pages,
                             .cpu = 1.0, .remaining_s = -1};
    return j;
}

static const struct mos_migration_cost fast_net = {.fixed_ms = 50, .per_page_us = 1};

static void test_assign_prefers_idle_and_fast(void **state)
{
    (void)state;
    struct mos_node_state n[3] = {node(0, 4, 1.0, 4, 8 * GIB, 16 * GIB),
                                  node(1, 4, 1.0, 0, 8 * GIB, 16 * GIB),
                                  node(2, 4, 2.0, 0, 8 * GIB, 16 * GIB)};
    struct mos_job_demand d = {.cpu = 1, .mem_bytes = GIB};

    /* Same load, twice the speed: the extra utilization is half, so the cost is lower. */
    assert_int_equal(mos_placement_assign(3, 4.0, n, 3, &d, 30), 2);
    n[2].load = 24; /* the fast node is now busier than its speed makes up for */
    assert_int_equal(mos_placement_assign(3, 4.0, n, 3, &d, 30), 1);
}

static void test_overload_keeps_costing(void **state)
{
    (void)state;
    /* Past full (u > 1) a node must not look free: more load still costs more. */
    struct mos_node_state n[2] = {node(0, 1, 1.0, 8, 8 * GIB, 16 * GIB),
                                  node(1, 1, 1.0, 12, 8 * GIB, 16 * GIB)};
    struct mos_job_demand d = {.cpu = 1, .mem_bytes = 0};

    double c0 = mos_placement_job_cost(4, 4.0, &n[0], &d), c1 = mos_placement_job_cost(4, 4.0, &n[1], &d);
    assert_true(c0 > 0);
    assert_true(c1 > c0);
    assert_int_equal(mos_placement_assign(4, 4.0, n, 2, &d, 30), 0);
    /* far past any cap on the exponent: a job on a node with 128 on one CPU still costs, more
     * than on one with 8 (a cap made it free there, so nothing ever left such a node) */
    n[0].load = 128;
    n[1].load = 8;
    double far = mos_placement_job_cost(64, 1.0, &n[0], &d);
    assert_true(far > 0 && isfinite(far));
    assert_true(far > mos_placement_job_cost(64, 1.0, &n[1], &d));
}

static void test_cpus_are_separate_resources(void **state)
{
    (void)state;
    /* A full 8-CPU node against an idle 1-CPU node of the same speed: the job runs at full
     * speed only on the small one. With the 8 CPUs counted as one resource the big node would
     * look 8 times cheaper per unit of utilization and win. */
    struct mos_node_state n[2] = {node(0, 8, 1.0, 8, 8 * GIB, 16 * GIB),
                                  node(1, 1, 1.0, 0, 8 * GIB, 16 * GIB)};
    struct mos_job_demand d = {.cpu = 1, .mem_bytes = 0};

    assert_int_equal(mos_placement_assign(16, 1.0, n, 2, &d, 30), 1);
    n[1].load = 1; /* now both are full: the big node spreads the extra process thinner */
    assert_int_equal(mos_placement_assign(16, 1.0, n, 2, &d, 30), 0);
}

static void test_assign_memory_must_fit(void **state)
{
    (void)state;
    struct mos_node_state n[2] = {node(0, 8, 1.0, 0, 512 * MIB, 16 * GIB),
                                  node(1, 2, 1.0, 3, 8 * GIB, 16 * GIB)};
    struct mos_job_demand d = {.cpu = 1, .mem_bytes = GIB};

    assert_true(isinf(mos_placement_job_cost(2, 4.0, &n[0], &d)));
    assert_int_equal(mos_placement_assign(2, 4.0, n, 2, &d, 30), 1);
    d.mem_bytes = 32 * GIB;
    assert_int_equal(mos_placement_assign(2, 4.0, n, 2, &d, 30), -1);
}

static void test_assign_memory_pressure_counts(void **state)
{
    (void)state;
    /* Equal CPUs; node 0 nearly out of memory: memory's exponential term outweighs a little
     * more CPU load elsewhere. */
    struct mos_node_state n[2] = {node(0, 4, 1.0, 1, 2 * GIB, 16 * GIB),
                                  node(1, 4, 1.0, 2, 14 * GIB, 16 * GIB)};
    struct mos_job_demand d = {.cpu = 1, .mem_bytes = GIB};

    assert_int_equal(mos_placement_assign(16, 4.0, n, 2, &d, 30), 1);
}

static void test_assign_skips_blocked_dead_closed(void **state)
{
    (void)state;
    struct mos_node_state n[4] = {node(0, 4, 1.0, 8, 8 * GIB, 16 * GIB),
                                  node(1, 4, 1.0, 0, 8 * GIB, 16 * GIB),
                                  node(2, 4, 1.0, 0, 8 * GIB, 16 * GIB),
                                  node(3, 4, 1.0, 0, 8 * GIB, 16 * GIB)};
    struct mos_job_demand d = {.cpu = 1, .mem_bytes = GIB};

    n[1].flags |= MOS_NODE_BLOCKED;
    n[2].age = 31;
    n[3].flags &= ~MOS_NODE_ACCEPTING;
    assert_int_equal(mos_placement_assign(4, 4.0, n, 4, &d, 30), 0);
}

static void test_balance_moves_to_idle(void **state)
{
    (void)state;
    struct mos_node_state n[3] = {node(10, 2, 1.0, 6, 8 * GIB, 16 * GIB),
                                  node(11, 2, 1.0, 1.5, 8 * GIB, 16 * GIB),
                                  node(12, 2, 1.0, 0, 8 * GIB, 16 * GIB)};
    struct mos_job_info j[2] = {job(100, 30, 1000), job(101, 60, 1000)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    n[0].flags |= MOS_NODE_SELF;
    assert_int_equal(mos_balance_decide(n, 3, 0, j, 2, &fast_net, &p, &d), 0);
    /* The older job has the longer predicted remaining time, so moving it gains most. */
    assert_int_equal(d.job_index, 1);
    assert_int_equal(d.node_index, 2);
    assert_int_equal(d.job_id, 101);
    assert_int_equal(d.node_id, 12);
    assert_true(d.gain_s > d.migrate_s);
    assert_non_null(strstr(d.reason, "opportunity cost"));
}

/* A job whose calls home cost more away than the CPU it would gain there stays home; one whose
 * calls cost little still moves. */
static void test_balance_calls_keep_job_home(void **state)
{
    (void)state;
    struct mos_node_state n[2] = {node(0, 1, 1.0, 2, 8 * GIB, 16 * GIB),
                                  node(1, 1, 1.0, 0, 8 * GIB, 16 * GIB)};
    struct mos_job_info j[1] = {job(1, 100, 100)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.node_index, 1); /* unmeasured: it goes where the CPU is */
    j[0].flags = MOS_JOB_CALLS;
    j[0].home_node = 0;
    j[0].call_wait = 16; /* an MPI rank away: 16 s waiting on its sockets per CPU-second */
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "calls home"));
    assert_true(mos_job_calls_cost_s(&j[0], 0, 10) == 0);
    assert_true(fabs(mos_job_calls_cost_s(&j[0], 1, 10) - 160) < 1e-9);
    j[0].call_wait = 0.01; /* a job that seldom calls home still moves */
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.node_index, 1);
}

/* A guest whose calls home cost it dearly goes home, even to a busier home it came from, and not
 * to an idle third node where its calls would cost as much. */
static void test_balance_calls_bring_guest_home(void **state)
{
    (void)state;
    struct mos_node_state n[3] = {node(0, 1, 1.0, 1, 8 * GIB, 16 * GIB),
                                  node(1, 1, 1.0, 1, 8 * GIB, 16 * GIB),
                                  node(2, 1, 1.0, 0, 8 * GIB, 16 * GIB)};
    struct mos_job_info j[1] = {job(5, 100, 100)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    n[1].flags |= MOS_NODE_SELF;
    j[0].flags = MOS_JOB_CAME | MOS_JOB_CALLS;
    j[0].from_node = 0;
    j[0].from_load = 1;
    j[0].home_node = 0;
    j[0].call_wait = 16;
    assert_int_equal(mos_balance_decide(n, 3, 1, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.node_index, 0);
    assert_int_equal(d.for_calls, 1); /* home must not refuse it for its own load */
    assert_non_null(strstr(d.reason, "calls home"));
    j[0].flags = MOS_JOB_CAME; /* unmeasured: home has not got lighter, so it stays */
    assert_int_equal(mos_balance_decide(n, 3, 1, j, 1, &fast_net, &p, &d), 0);
    assert_int_not_equal(d.node_index, 0);
    j[0].flags = MOS_JOB_CAME | MOS_JOB_CALLS;
    j[0].call_wait = 0.001; /* calls that cost little do not outweigh home's crowding */
    assert_int_equal(mos_balance_decide(n, 3, 1, j, 1, &fast_net, &p, &d), 0);
    assert_int_not_equal(d.node_index, 0);
}

static void test_balance_never_to_blocked_or_dead(void **state)
{
    (void)state;
    struct mos_node_state n[3] = {node(0, 2, 1.0, 6, 8 * GIB, 16 * GIB),
                                  node(1, 2, 1.0, 0, 8 * GIB, 16 * GIB),
                                  node(2, 2, 1.0, 0, 8 * GIB, 16 * GIB)};
    struct mos_job_info j[1] = {job(7, 100, 100)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    n[1].flags |= MOS_NODE_BLOCKED;
    n[2].age = p.dead_age + 1;
    assert_int_equal(mos_balance_decide(n, 3, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "no live node"));
    n[2].age = p.dead_age; /* exactly at the limit: still alive */
    assert_int_equal(mos_balance_decide(n, 3, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.node_index, 2);
}

static void test_balance_locked_and_recent_stay(void **state)
{
    (void)state;
    struct mos_node_state n[2] = {node(0, 1, 1.0, 5, 8 * GIB, 16 * GIB),
                                  node(1, 4, 1.0, 0, 8 * GIB, 16 * GIB)};
    struct mos_job_info j[2] = {job(1, 100, 10), job(2, 100, 10)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    j[0].flags = MOS_JOB_LOCKED;
    j[1].residence_s = p.min_residence_s / 2; /* just arrived: must not bounce on */
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 2, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "1 locked, 1 within minimum residence"));
    j[1].residence_s = p.min_residence_s;
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 2, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, 1);
}

static void test_balance_stability_margin(void **state)
{
    (void)state;
    /* Node 1 is only a little less loaded: a move would be cheaper but not by the margin, so
     * two such nodes do not hand a job back and forth. */
    struct mos_node_state n[2] = {node(0, 4, 1.0, 6, 8 * GIB, 16 * GIB),
                                  node(1, 4, 1.0, 4.5, 8 * GIB, 16 * GIB)};
    struct mos_job_info j[1] = {job(1, 1000, 10)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "stability margin"));
    n[1].load = 5.5; /* without the job this node would carry 5: staying is cheapest */
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "cheapest"));
    n[1].load = 4.5;
    p.stability_margin = 0;
    /* cheaper, but saving only 8% of its time there: not by the gain margin either */
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "margin"));
    p.gain_margin = 0.05;
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, 0);
}

static void test_balance_move_pays_by_margin(void **state)
{
    (void)state;
    struct mos_balance_params p;

    mos_balance_params_default(&p);
    /* 100 s here, 80 s there + 1 s moving saves 19%: above the 15% margin */
    assert_true(mos_balance_move_pays(&p, 100, 80, 1));
    /* 100 s here, 86 s there + 0.1 s: saves 14 s, more than twice the move, but under 15% */
    assert_false(mos_balance_move_pays(&p, 100, 86, 0.1));
    /* the margin counts the migration: 84 s + 2 s is 86 s */
    assert_false(mos_balance_move_pays(&p, 100, 84, 2));
    /* equal views both ways (the ping-pong of issue 15): neither direction pays */
    assert_false(mos_balance_move_pays(&p, 50, 50, 0.02));
    p.gain_margin = 0;
    assert_true(mos_balance_move_pays(&p, 100, 86, 0.1));
}

static void test_balance_residence_by_migration_cost(void **state)
{
    (void)state;
    struct mos_node_state n[2] = {node(0, 1, 1.0, 4, 8 * GIB, 16 * GIB),
                                  node(1, 4, 1.0, 0, 12 * GIB, 16 * GIB)};
    /* 1 GiB: 0.1 s + 262144 x 10 us = 2.72 s to move, so 27.2 s of residence */
    struct mos_migration_cost slow = {.fixed_ms = 100, .per_page_us = 10};
    struct mos_job_info j[1] = {job(1, 1000, 262144)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    assert_float_equal(mos_balance_residence_s(&p, &slow, 262144), 27.2144, 1e-6);
    assert_float_equal(mos_balance_residence_s(&p, &fast_net, 10), p.min_residence_s, 1e-9);
    j[0].residence_s = 20; /* past the minimum, not past the cost-based residence */
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &slow, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "within minimum residence"));
    j[0].residence_s = 28;
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &slow, &p, &d), 0);
    assert_int_equal(d.job_index, 0);
}

static void test_balance_no_return_unless_fell(void **state)
{
    (void)state;
    /* The job came from node 1, which had 1 runnable once it left. Node 1 still has 1: it is
     * the least loaded, but sending the job back would only undo the move. */
    struct mos_node_state n[3] = {node(0, 1, 1.0, 3, 8 * GIB, 16 * GIB),
                                  node(1, 1, 1.0, 1, 8 * GIB, 16 * GIB),
                                  node(2, 1, 1.0, 3, 8 * GIB, 16 * GIB)};
    struct mos_job_info j[1] = {job(1, 100, 10)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    j[0].flags = MOS_JOB_CAME;
    j[0].from_node = 1;
    j[0].from_load = 1;
    assert_int_equal(mos_balance_decide(n, 3, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "came from"));
    n[1].load = 0; /* its load fell: now it may go back */
    assert_int_equal(mos_balance_decide(n, 3, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.node_index, 1);
    j[0].flags = 0; /* without the rule the move back would be taken at load 1 too */
    n[1].load = 1;
    assert_int_equal(mos_balance_decide(n, 3, 0, j, 1, &fast_net, &p, &d), 0);
    assert_int_equal(d.node_index, 1);
}

static void test_balance_counts_moves_both_ends(void **state)
{
    (void)state;
    /* Node 0 (self) sent a job to node 1 and took one from node 2, 1.5 s ago; gossip steps
     * of 1 s. Node 1's entry is 3 steps old (predates the move: +1), node 2's 0 steps (newer
     * than the move: already counted there). Node 3 took part in nothing. */
    struct mos_node_state n[4] = {node(0, 1, 1.0, 2, GIB, GIB), node(1, 1, 1.0, 0, GIB, GIB),
                                  node(2, 1, 1.0, 3, GIB, GIB), node(3, 1, 1.0, 1, GIB, GIB)};
    struct mos_balance_move m[2] = {{.from = 0, .to = 1, .since_s = 1.5, .cpu = 1},
                                    {.from = 2, .to = 0, .since_s = 1.5, .cpu = 1}};

    n[1].age = 3;
    n[2].age = 0;
    mos_balance_count_moves(n, 4, 0, 1.0, m, 2);
    assert_float_equal(n[0].load, 2, 1e-9); /* self: the caller's own count, untouched */
    assert_float_equal(n[1].load, 1, 1e-9);
    assert_float_equal(n[2].load, 3, 1e-9);
    assert_float_equal(n[3].load, 1, 1e-9);
    /* the source's side: an old entry of node 2 still counts the job that left it */
    n[2].age = 5;
    mos_balance_count_moves(n, 4, 0, 1.0, &m[1], 1);
    assert_float_equal(n[2].load, 2, 1e-9);
    /* 1 step old at 1.5 s: made 1 to 2 s ago, maybe before the move: added at a target, but
     * not taken off a source (in doubt the job counts at both) */
    n[1].load = 0;
    n[1].age = 1;
    n[2].load = 3;
    n[2].age = 1;
    mos_balance_count_moves(n, 4, 0, 1.0, m, 2);
    assert_float_equal(n[1].load, 1, 1e-9);
    assert_float_equal(n[2].load, 3, 1e-9);
    /* never below zero; unknown ends are skipped */
    struct mos_balance_move odd = {.from = 3, .to = -1, .since_s = 0, .cpu = 5};
    mos_balance_count_moves(n, 4, 0, 1.0, &odd, 1);
    assert_float_equal(n[3].load, 0, 1e-9);
}

static void test_balance_counts_moves_by_ms(void **state)
{
    (void)state;
    /* The same 1.5 s old moves with entries whose age is known to the ms: node 1's entry made
     * 1.2 s ago (after the move: not counted again, where a whole step of doubt would count
     * it), node 2's 1.8 s ago (before it: the job that left is taken off). */
    struct mos_node_state n[3] = {node(0, 1, 1.0, 2, GIB, GIB), node(1, 1, 1.0, 1, GIB, GIB),
                                  node(2, 1, 1.0, 3, GIB, GIB)};
    struct mos_balance_move m[2] = {{.from = 0, .to = 1, .since_s = 1.5, .cpu = 1},
                                    {.from = 2, .to = 0, .since_s = 1.5, .cpu = 1}};

    n[1].age = 1;
    n[1].age_ms = 1200;
    n[2].age = 1;
    n[2].age_ms = 1800;
    n[1].flags |= MOS_NODE_AGE_MS;
    n[2].flags |= MOS_NODE_AGE_MS;
    mos_balance_count_moves(n, 3, 0, 1.0, m, 2);
    assert_float_equal(n[1].load, 1, 1e-9);
    assert_float_equal(n[2].load, 2, 1e-9);
    /* within the slack of the move, in doubt: counted at the target, kept at the source */
    n[1].age_ms = 1450;
    n[2].age_ms = 1550;
    n[2].load = 3;
    mos_balance_count_moves(n, 3, 0, 1.0, m, 2);
    assert_float_equal(n[1].load, 2, 1e-9);
    assert_float_equal(n[2].load, 3, 1e-9);
}

static void test_balance_ties_spread(void **state)
{
    (void)state;
    /* Two equally idle nodes: jobs of different ids do not all go to the same one. */
    struct mos_node_state n[3] = {node(0, 1, 1.0, 4, GIB, GIB), node(1, 1, 1.0, 0, GIB, GIB),
                                  node(2, 1, 1.0, 0, GIB, GIB)};
    struct mos_job_info a[1] = {job(0, 100, 10)}, b[1] = {job(1, 100, 10)};
    struct mos_balance_params p;
    struct mos_balance_decision da, db;

    mos_balance_params_default(&p);
    assert_int_equal(mos_balance_decide(n, 3, 0, a, 1, &fast_net, &p, &da), 0);
    assert_int_equal(mos_balance_decide(n, 3, 0, b, 1, &fast_net, &p, &db), 0);
    assert_true(da.node_index > 0 && db.node_index > 0);
    assert_int_not_equal(da.node_index, db.node_index);
}

static void test_balance_admit(void **state)
{
    (void)state;
    struct mos_node_state me = node(0, 1, 1.0, 0, GIB, GIB), src = node(1, 1, 1.0, 1, GIB, GIB);
    struct mos_balance_params p;
    char why[200];

    mos_balance_params_default(&p);
    /* the sender keeps 1 once the job left, we have none: twice the speed here */
    assert_true(mos_balance_admit(&me, &src, 1, &p, -1, 0, why, sizeof(why)));
    /* others' guests arrived meanwhile: as busy here as there, the move no longer pays */
    me.load = 1;
    assert_false(mos_balance_admit(&me, &src, 1, &p, -1, 0, why, sizeof(why)));
    assert_non_null(strstr(why, "busy: load 1.00 here"));
    /* a faster node admits at the same load when its speed makes up the margin */
    me.speed = 2;
    assert_true(mos_balance_admit(&me, &src, 1, &p, -1, 0, why, sizeof(why)));
    /* the job left here 2 s ago at load 1: back only if the load here fell below 1 */
    me.speed = 1;
    me.load = 1;
    src.load = 3;
    assert_false(mos_balance_admit(&me, &src, 1, &p, 2.0, 1.0, why, sizeof(why)));
    assert_non_null(strstr(why, "has not fallen"));
    assert_true(mos_balance_admit(&me, &src, 1, &p, -1, 0, why, sizeof(why)));
    me.load = 0;
    assert_true(mos_balance_admit(&me, &src, 1, &p, 2.0, 1.0, why, sizeof(why)));
}

static void test_balance_migration_cost_outweighs(void **state)
{
    (void)state;
    /* A 4 GiB job with 3 s left on a slow link: the move costs more than it saves. */
    struct mos_node_state n[2] = {node(0, 1, 1.0, 2, 8 * GIB, 16 * GIB),
                                  node(1, 4, 1.0, 0, 12 * GIB, 16 * GIB)};
    struct mos_job_info j[1] = {job(1, 3, 1u << 20)};
    j[0].residence_s = 1e9; /* never moved: no residence to sit out */
    struct mos_migration_cost slow = {.fixed_ms = 100, .per_page_us = 10};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    assert_float_equal(mos_migration_cost_seconds(&slow, 1u << 20), 0.1 + 10.48576, 1e-9);
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &slow, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "migration"));
    j[0].remaining_s = 1000; /* the profile says it has long to run: now it pays */
    assert_int_equal(mos_balance_decide(n, 2, 0, j, 1, &slow, &p, &d), 0);
    assert_int_equal(d.job_index, 0);
    assert_float_equal(d.migrate_s, 10.58576, 1e-9);
}

static void test_balance_memory_ushering(void **state)
{
    (void)state;
    /* This node is short of memory but not of CPU: the largest job goes to the node with the
     * most free memory, not to the least loaded one. */
    struct mos_node_state n[4] = {node(0, 8, 1.0, 2, 256 * MIB, 16 * GIB),
                                  node(1, 8, 1.0, 0, 2 * GIB, 16 * GIB),
                                  node(2, 8, 1.0, 4, 12 * GIB, 16 * GIB),
                                  node(3, 8, 1.0, 0, 15 * GIB, 16 * GIB)};
    struct mos_job_info j[3] = {job(1, 50, 1000), job(2, 50, 500000), job(3, 50, 900000)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    n[3].flags |= MOS_NODE_BLOCKED; /* the emptiest node is closed */
    j[2].flags = MOS_JOB_LOCKED;    /* and the largest job is pinned */
    assert_int_equal(mos_balance_decide(n, 4, 0, j, 3, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, 1);
    assert_int_equal(d.node_index, 2);
    assert_non_null(strstr(d.reason, "memory ushering"));
    /* a move for memory: mosd sends it without a load for the target to check */
    assert_int_equal(d.ushering, 1);
    /* with memory enough, the same node decides for load, and says so */
    n[0].mem_free = 8 * GIB;
    n[0].load = 16;
    assert_int_equal(mos_balance_decide(n, 4, 0, j, 3, &fast_net, &p, &d), 0);
    assert_true(d.job_index >= 0);
    assert_null(strstr(d.reason, "memory ushering"));
    assert_int_equal(d.ushering, 0);
}

static void test_balance_bad_args(void **state)
{
    (void)state;
    struct mos_node_state n[1] = {node(0, 1, 1.0, 0, GIB, GIB)};
    struct mos_balance_params p;
    struct mos_balance_decision d;

    mos_balance_params_default(&p);
    assert_int_equal(mos_balance_decide(n, 1, 1, NULL, 0, &fast_net, &p, &d), -EINVAL);
    assert_int_equal(mos_balance_decide(n, 1, 0, NULL, 0, &fast_net, &p, &d), 0);
    assert_int_equal(d.job_index, -1);
    assert_non_null(strstr(d.reason, "no local jobs"));
}

static void test_predict_remaining(void **state)
{
    (void)state;
    struct mos_job_info j = job(1, 42, 1);

    assert_float_equal(mos_job_predict_remaining(&j), 42, 1e-12);
    j.remaining_s = 5;
    assert_float_equal(mos_job_predict_remaining(&j), 5, 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assign_prefers_idle_and_fast),
        cmocka_unit_test(test_overload_keeps_costing),
        cmocka_unit_test(test_cpus_are_separate_resources),
        cmocka_unit_test(test_assign_memory_must_fit),
        cmocka_unit_test(test_assign_memory_pressure_counts),
        cmocka_unit_test(test_assign_skips_blocked_dead_closed),
        cmocka_unit_test(test_balance_moves_to_idle),
        cmocka_unit_test(test_balance_never_to_blocked_or_dead),
        cmocka_unit_test(test_balance_locked_and_recent_stay),
        cmocka_unit_test(test_balance_stability_margin),
        cmocka_unit_test(test_balance_migration_cost_outweighs),
        cmocka_unit_test(test_balance_move_pays_by_margin),
        cmocka_unit_test(test_balance_residence_by_migration_cost),
        cmocka_unit_test(test_balance_no_return_unless_fell),
        cmocka_unit_test(test_balance_counts_moves_both_ends),
        cmocka_unit_test(test_balance_admit),
        cmocka_unit_test(test_balance_ties_spread),
        cmocka_unit_test(test_balance_memory_ushering),
        cmocka_unit_test(test_balance_counts_moves_by_ms),
        cmocka_unit_test(test_balance_bad_args),
        cmocka_unit_test(test_balance_calls_keep_job_home),
        cmocka_unit_test(test_balance_calls_bring_guest_home),
        cmocka_unit_test(test_predict_remaining),
    };
    return cmocka_run_group_tests_name("placement_balance", tests, NULL, NULL);
}
