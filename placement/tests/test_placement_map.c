/* Matrix and hosts files, the rank mappings and the rankfile. */
#include "mos/placement_map.h"
#include "mos/status.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void parse_ok(const char *text, struct mos_comm_matrix *m)
{
    char err[256] = "";
    int rc = mos_comm_matrix_parse(text, strlen(text), "m.txt", m, err, sizeof(err));
    if (rc != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
}

static void expect_error(const char *text, const char *want)
{
    struct mos_comm_matrix m;
    char err[256] = "";

    assert_int_equal(mos_comm_matrix_parse(text, strlen(text), "m.txt", &m, err, sizeof(err)),
                     MOS_E_CONFIG);
    if (!strstr(err, want))
        print_error("error '%s' lacks '%s'\n", err, want);
    assert_non_null(strstr(err, want));
}

static void test_matrix_parse(void **state)
{
    (void)state;
    struct mos_comm_matrix m;

    parse_ok("# recorded by hand\n\nmos-comm-matrix 1\nranks 3  # three\n0 1 100\n1 0 50\n"
             "\t2 1 7\r\n0 1 1\n1 1 9\n", &m);
    assert_int_equal(m.n, 3);
    assert_true(m.bytes[0 * 3 + 1] == 101);
    assert_true(mos_comm_matrix_pair(&m, 0, 1) == 151);
    assert_true(mos_comm_matrix_pair(&m, 1, 2) == 7);
    mos_comm_matrix_free(&m);
}

static void test_matrix_errors(void **state)
{
    (void)state;
    expect_error("", "m.txt:0: empty file");
    expect_error("ranks 3\n", "m.txt:1: not a communication matrix");
    expect_error("mos-comm-matrix 2\nranks 3\n", "m.txt:1: unsupported matrix version");
    expect_error("mos-comm-matrix 1\n", "no 'ranks N' line");
    expect_error("mos-comm-matrix 1\nranks 0\n", "m.txt:2: ranks must be 1..4096");
    expect_error("mos-comm-matrix 1\nranks 4097\n", "m.txt:2: ranks must be");
    expect_error("mos-comm-matrix 1\nranks -3\n", "m.txt:2: ranks must be");
    expect_error("mos-comm-matrix 1\nranks 2\n0 1\n", "m.txt:3: expected 'SRC DST BYTES', got 2");
    expect_error("mos-comm-matrix 1\nranks 2\n0 1 5\n\n2 0 5\n", "m.txt:5: source rank '2'");
    expect_error("mos-comm-matrix 1\nranks 2\n0 x 5\n", "m.txt:3: destination rank 'x'");
    expect_error("mos-comm-matrix 1\nranks 2\n0 1 -5\n", "m.txt:3: byte count '-5'");
    expect_error("mos-comm-matrix 1\nranks 2\n0 1 9223372036854775808\n", "byte count");
    expect_error("mos-comm-matrix 1\nranks 2\n0 1 9223372036854775807\n0 1 1\n",
                 "m.txt:4: bytes from 0 to 1 add up past 2^63");
    expect_error("mos-comm-matrix 1\nranks 2\n0 1 5 6 7 8 9 10 11\n", "m.txt:3: too many fields");
    char nul[] = "mos-comm-matrix 1\nranks 2\n0 1\0 5\n";
    struct mos_comm_matrix m;
    char err[128];
    assert_int_equal(mos_comm_matrix_parse(nul, sizeof(nul) - 1, "m.txt", &m, err, sizeof(err)),
                     MOS_E_CONFIG);
    assert_non_null(strstr(err, "m.txt:3: NUL byte"));
    char longline[1200];
    memset(longline, ' ', sizeof(longline));
    memcpy(longline, "mos-comm-matrix 1\n", 18);
    longline[sizeof(longline) - 1] = '\0';
    expect_error(longline, "m.txt:2: line longer than 1024");
}

static void test_matrix_write_roundtrip(void **state)
{
    (void)state;
    struct mos_comm_matrix m, back;
    char *buf = NULL, err[128];
    size_t len = 0;

    assert_int_equal(mos_comm_matrix_init(&m, 5), 0);
    m.bytes[0 * 5 + 4] = 123;
    m.bytes[3 * 5 + 2] = 1ull << 40;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(mos_comm_matrix_write(&m, f), 0);
    fclose(f);
    assert_int_equal(mos_comm_matrix_parse(buf, len, "rt", &back, err, sizeof(err)), 0);
    assert_int_equal(back.n, 5);
    assert_memory_equal(back.bytes, m.bytes, 25 * sizeof(uint64_t));
    free(buf);
    mos_comm_matrix_free(&m);
    mos_comm_matrix_free(&back);
    assert_int_equal(mos_comm_matrix_init(&m, 0), -EINVAL);
}

static void hosts_ok(const char *text, struct mos_host_list *h)
{
    char err[256] = "";
    int rc = mos_host_list_parse(text, strlen(text), "h.txt", h, err, sizeof(err));
    if (rc != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
}

static void hosts_error(const char *text, const char *want)
{
    struct mos_host_list h;
    char err[256] = "";

    assert_int_equal(mos_host_list_parse(text, strlen(text), "h.txt", &h, err, sizeof(err)),
                     MOS_E_CONFIG);
    if (!strstr(err, want))
        print_error("error '%s' lacks '%s'\n", err, want);
    assert_non_null(strstr(err, want));
}

static void test_hosts(void **state)
{
    (void)state;
    struct mos_host_list h;

    hosts_ok("# cluster\nn1 slots=4\nn2.example.org speed=1.5 slots=8\nn3\n", &h);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.hosts[1].name, "n2.example.org");
    assert_int_equal(h.hosts[1].slots, 8);
    assert_true(h.hosts[1].speed == 1.5);
    assert_int_equal(h.hosts[2].slots, 1);
    mos_host_list_free(&h);
    hosts_error("", "h.txt:0: no hosts listed");
    hosts_error("n1 slots=0\n", "h.txt:1: slots must be 1..4096");
    hosts_error("n1\nn2 slots=x\n", "h.txt:2: slots must be");
    hosts_error("n1 speed=0\n", "h.txt:1: speed must be");
    hosts_error("n1 speed=nan\n", "h.txt:1: speed must be");
    hosts_error("n1 threads=3\n", "h.txt:1: unknown setting 'threads=3'");
    hosts_error("n1\n\nn1\n", "h.txt:3: host 'n1' listed twice");
    hosts_error("bad/host\n", "h.txt:1: bad host name 'bad/host'");
    hosts_error("n1 cores=1,\n", "h.txt:1: cores must be a list");
    hosts_error("n1 cores=3-1\n", "h.txt:1: cores must be a list");
    hosts_error("n1 cores=0-1 slots=3\n", "h.txt:1: slots=3 but only 2 cores listed");
    hosts_error("n1 cores=0-1 slots=x\n", "h.txt:1: slots must be");
    hosts_ok("n1 cores=4-6,1\nn2 cores=0-3 slots=2\n", &h);
    assert_int_equal(h.hosts[0].slots, 4);
    assert_int_equal(h.hosts[0].cores[3], 1);
    assert_int_equal(h.hosts[0].cores[0], 4);
    assert_int_equal(h.hosts[1].slots, 2);

    /* The rankfile names the listed cores, in their order. */
    struct mos_comm_matrix m;
    struct mos_rank_map map;
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(mos_comm_matrix_init(&m, 6), 0);
    assert_int_equal(mos_rank_map_compute(&m, &h, MOS_MAP_BYSLOT, &map), 0);
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(mos_rankfile_write(&map, &h, f), 0);
    fclose(f);
    assert_string_equal(buf, "rank 0=n1 slot=4\nrank 1=n1 slot=5\nrank 2=n1 slot=6\n"
                             "rank 3=n1 slot=1\nrank 4=n2 slot=0\nrank 5=n2 slot=1\n");
    free(buf);
    mos_rank_map_free(&map);
    mos_comm_matrix_free(&m);
    mos_host_list_free(&h);
}

/* Two groups of 4 ranks that talk a lot inside and a little across, numbered so that rank
 * order interleaves them: by-slot splits both groups, the IPC mapping keeps each on a host. */
static void two_groups(struct mos_comm_matrix *m)
{
    assert_int_equal(mos_comm_matrix_init(m, 8), 0);
    for (unsigned a = 0; a < 8; a++)
        for (unsigned b = 0; b < 8; b++)
            if (a != b)
                m->bytes[a * 8 + b] = (a % 2 == b % 2) ? 1000 : 1;
}

static void check_slots(const struct mos_rank_map *map, const struct mos_host_list *h)
{
    unsigned used[16][64] = {{0}};

    for (unsigned r = 0; r < map->n; r++) {
        assert_true(map->host[r] < h->n);
        assert_true(map->slot[r] < h->hosts[map->host[r]].slots);
        assert_int_equal(used[map->host[r]][map->slot[r]]++, 0); /* one rank per slot */
    }
}

static void test_mappings(void **state)
{
    (void)state;
    struct mos_comm_matrix m;
    struct mos_host_list h;
    struct mos_rank_map ipc, byslot, bynode, opt;

    two_groups(&m);
    hosts_ok("a slots=4\nb slots=4\n", &h);
    assert_int_equal(mos_rank_map_compute(&m, &h, MOS_MAP_BYSLOT, &byslot), 0);
    assert_int_equal(mos_rank_map_compute(&m, &h, MOS_MAP_BYNODE, &bynode), 0);
    assert_int_equal(mos_rank_map_compute(&m, &h, MOS_MAP_IPC, &ipc), 0);
    check_slots(&byslot, &h);
    check_slots(&bynode, &h);
    check_slots(&ipc, &h);
    assert_int_equal(byslot.host[3], 0);
    assert_int_equal(byslot.host[4], 1);
    assert_int_equal(bynode.host[0], 0);
    assert_int_equal(bynode.host[1], 1);
    for (unsigned r = 0; r < 8; r++)
        assert_int_equal(ipc.host[r], ipc.host[r % 2]);
    assert_true(ipc.host[0] != ipc.host[1]);
    assert_true(mos_rank_map_internode_bytes(&m, &ipc) == 32);  /* 16 cross pairs x 2 dirs */
    assert_true(mos_rank_map_internode_bytes(&m, &byslot) == 16016); /* 8 heavy + 8 light pairs cut */
    assert_int_equal(mos_rank_map_optimum(&m, &h, &opt), 0);
    check_slots(&opt, &h);
    assert_true(mos_rank_map_internode_bytes(&m, &opt) == 32);
    mos_rank_map_free(&opt);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(mos_rankfile_write(&byslot, &h, f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "rank 0=a slot=0\nrank 1=a slot=1\n"));
    assert_non_null(strstr(buf, "rank 4=b slot=0\n"));
    assert_non_null(strstr(buf, "rank 7=b slot=3\n"));
    free(buf);
    mos_rank_map_free(&ipc);
    mos_rank_map_free(&byslot);
    mos_rank_map_free(&bynode);

    /* More ranks than slots is refused. */
    struct mos_host_list small;
    hosts_ok("a slots=3\nb slots=4\n", &small);
    assert_int_equal(mos_rank_map_compute(&m, &small, MOS_MAP_IPC, &ipc), MOS_E_LIMIT);
    mos_host_list_free(&small);
    mos_host_list_free(&h);
    mos_comm_matrix_free(&m);
}

/* Fewer ranks than slots: the ring fills the two fastest hosts rather than spreading over
 * more hosts and cutting more links. */
static void test_packs_fast_hosts(void **state)
{
    (void)state;
    struct mos_comm_matrix m;
    struct mos_host_list h;
    struct mos_rank_map map;

    assert_int_equal(mos_comm_matrix_init(&m, 8), 0);
    for (unsigned r = 0; r < 8; r++)
        m.bytes[r * 8 + (r + 1) % 8] = 1000000;
    hosts_ok("a slots=4 speed=0.5\nb slots=4\nc slots=4 speed=2\nd slots=4\n", &h);
    assert_int_equal(mos_rank_map_compute(&m, &h, MOS_MAP_IPC, &map), 0);
    unsigned on[4] = {0};
    for (unsigned r = 0; r < 8; r++)
        on[map.host[r]]++;
    assert_int_equal(on[0], 0);  /* the slow host stays empty */
    assert_int_equal(on[2], 4);  /* the fast one is full */
    assert_int_equal(on[1] + on[3], 4);
    assert_true(on[1] == 4 || on[3] == 4);
    assert_true(mos_rank_map_internode_bytes(&m, &map) == 2000000);
    mos_rank_map_free(&map);
    mos_host_list_free(&h);
    mos_comm_matrix_free(&m);
}

/* Random small instances: the heuristic never beats the exact optimum, the optimum is never
 * worse than the simple mappings, and every mapping respects the slots. */
static void test_optimum_bounds(void **state)
{
    (void)state;
    struct mos_host_list h;
    unsigned seed = 12345;

    hosts_ok("a slots=4\nb slots=3\nc slots=3\nd slots=2\n", &h);
    for (int trial = 0; trial < 20; trial++) {
        struct mos_comm_matrix m;
        struct mos_rank_map ipc, byslot, opt;
        unsigned n = 6 + (unsigned)trial % 7;
        assert_int_equal(mos_comm_matrix_init(&m, n), 0);
        for (unsigned k = 0; k < 3 * n; k++) {
            unsigned a = (unsigned)rand_r(&seed) % n, b = (unsigned)rand_r(&seed) % n;
            m.bytes[a * n + b] += (unsigned)rand_r(&seed) % 1000;
        }
        assert_int_equal(mos_rank_map_compute(&m, &h, MOS_MAP_IPC, &ipc), 0);
        assert_int_equal(mos_rank_map_compute(&m, &h, MOS_MAP_BYSLOT, &byslot), 0);
        assert_int_equal(mos_rank_map_optimum(&m, &h, &opt), 0);
        check_slots(&ipc, &h);
        check_slots(&opt, &h);
        uint64_t bi = mos_rank_map_internode_bytes(&m, &ipc);
        uint64_t bo = mos_rank_map_internode_bytes(&m, &opt);
        uint64_t bs = mos_rank_map_internode_bytes(&m, &byslot);
        assert_true(bo <= bi);
        assert_true(bo <= bs);
        mos_rank_map_free(&ipc);
        mos_rank_map_free(&byslot);
        mos_rank_map_free(&opt);
        mos_comm_matrix_free(&m);
    }
    struct mos_comm_matrix big;
    struct mos_rank_map o;
    assert_int_equal(mos_comm_matrix_init(&big, 21), 0);
    assert_int_equal(mos_rank_map_optimum(&big, &h, &o), -E2BIG);
    mos_comm_matrix_free(&big);
    mos_host_list_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_parse),
        cmocka_unit_test(test_matrix_errors),
        cmocka_unit_test(test_matrix_write_roundtrip),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_mappings),
        cmocka_unit_test(test_packs_fast_hosts),
        cmocka_unit_test(test_optimum_bounds),
    };
    return cmocka_run_group_tests_name("placement_map", tests, NULL, NULL);
}
