/* Topology from hwloc synthetic strings, recorded XML machines (tests/fixtures, made by
 * make-fixtures.sh) and this machine; NIC locality and the guest's NUMA placement. */
#include "mos/placement_topo.h"
#include "mos/status.h"

#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/mempolicy.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#define MIB (1024ull * 1024)

static const char *fixtures = "placement/tests/fixtures";

static struct mos_topo *load_fixture(const char *name)
{
    char path[512];
    struct mos_topo *t = NULL;

    snprintf(path, sizeof(path), "%s/%s", fixtures, name);
    assert_int_equal(mos_topo_load(MOS_TOPO_XML, path, &t), 0);
    return t;
}

static void test_synthetic_summary(void **state)
{
    (void)state;
    struct mos_topo *t = NULL;
    struct mos_topo_summary s;
    struct mos_topo_numa n;

    assert_int_equal(mos_topo_load(MOS_TOPO_SYNTHETIC, "pack:4 numa:2 core:8 pu:2", &t), 0);
    mos_topo_get_summary(t, &s);
    assert_int_equal(s.packages, 4);
    assert_int_equal(s.numa_nodes, 8);
    assert_int_equal(s.cores, 64);
    assert_int_equal(s.pus, 128);
    assert_false(s.is_this_system);
    assert_int_equal(mos_topo_get_numa(t, 7, &n), 0);
    assert_int_equal(n.os_index, 7);
    assert_string_equal(n.cpus, "112-127");
    assert_int_equal(n.n_pus, 16);
    assert_int_equal(mos_topo_get_numa(t, 8, &n), -ERANGE);
    /* No distance matrix in a synthetic string: the SLIT default. */
    unsigned d;
    int from_matrix = -1;
    assert_int_equal(mos_topo_numa_distance(t, 0, 0, &d, &from_matrix), 0);
    assert_int_equal(d, 10);
    assert_int_equal(mos_topo_numa_distance(t, 0, 5, &d, &from_matrix), 0);
    assert_int_equal(d, 20);
    assert_int_equal(from_matrix, 0);
    assert_int_equal(mos_topo_nic_count(t), 0);
    int numa;
    assert_int_equal(mos_topo_nic_numa(t, NULL, &numa), -ENOENT);
    mos_topo_free(t);
}

static void test_bad_sources(void **state)
{
    (void)state;
    struct mos_topo *t = NULL;

    assert_int_equal(mos_topo_load(MOS_TOPO_SYNTHETIC, "pack:two core:", &t), MOS_E_CONFIG);
    assert_int_equal(mos_topo_load(MOS_TOPO_XML, "/nonexistent/topo.xml", &t), MOS_E_CONFIG);
    char path[] = "/tmp/mos-topo-bad-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "<topology><object", 17), 17);
    close(fd);
    assert_int_equal(mos_topo_load(MOS_TOPO_XML, path, &t), MOS_E_CONFIG);
    unlink(path);
    assert_null(t);
}

static void test_xml_distances_and_nic(void **state)
{
    (void)state;
    struct mos_topo *t = load_fixture("numa4-nic.xml");
    struct mos_topo_nic nic;
    unsigned d;
    int from_matrix = 0, numa = -1;

    assert_int_equal(mos_topo_numa_distance(t, 0, 1, &d, &from_matrix), 0);
    assert_int_equal(d, 12);
    assert_int_equal(from_matrix, 1);
    assert_int_equal(mos_topo_numa_distance(t, 3, 0, &d, NULL), 0);
    assert_int_equal(d, 22);
    assert_int_equal(mos_topo_nic_count(t), 2);
    assert_int_equal(mos_topo_get_nic(t, 0, &nic), 0);
    assert_string_equal(nic.pci_busid, "0000:80:00.0");
    assert_int_equal(nic.numa, 3);
    /* NULL picks the RDMA device; by name finds the netdev; unknown names are -ENOENT. */
    assert_int_equal(mos_topo_nic_numa(t, NULL, &numa), 0);
    assert_int_equal(numa, 3);
    assert_int_equal(mos_topo_nic_numa(t, "ib0", &numa), 0);
    assert_int_equal(numa, 3);
    assert_int_equal(mos_topo_nic_numa(t, "eth7", &numa), -ENOENT);
    mos_topo_free(t);
}

static void test_place_guest_near_nic(void **state)
{
    (void)state;
    struct mos_topo *t = load_fixture("numa4-nic.xml"); /* 1 GiB per NUMA node */
    struct mos_guest_request req = {.mem_bytes = 512 * MIB, .nic = NULL};
    struct mos_guest_placement p;

    assert_int_equal(mos_topo_place_guest(t, &req, &p), 0);
    assert_int_equal(p.numa, 3);
    assert_int_equal(p.bind, 1);
    assert_string_equal(p.cpus, "24-31");
    assert_int_equal(p.distance, 10);
    /* The NIC's node is short of memory: the next nearest (12) wins over the far ones. */
    assert_int_equal(mos_topo_set_numa_free(t, 3, 100 * MIB), 0);
    assert_int_equal(mos_topo_set_numa_free(t, 0, 1000 * MIB), 0);
    assert_int_equal(mos_topo_place_guest(t, &req, &p), 0);
    assert_int_equal(p.numa, 2);
    assert_int_equal(p.distance, 12);
    assert_string_equal(p.cpus, "16-23");
    /* Nowhere has enough: prefer (not bind) the node with the most free memory. */
    req.mem_bytes = 2048 * MIB;
    assert_int_equal(mos_topo_place_guest(t, &req, &p), 0);
    assert_int_equal(p.bind, 0);
    assert_int_equal(p.numa, 1);
    assert_non_null(strstr(p.reason, "no NUMA node has 2048 MiB free"));
    struct mos_guest_policy pol;
    assert_int_equal(mos_guest_policy_make(&p, &pol), 0);
    assert_int_equal(pol.mode, MPOL_PREFERRED);
    assert_true(pol.nodemask[0] == 2);
    assert_true(pol.cpus[0] == 0xff00);
    mos_topo_free(t);
}

static void test_place_guest_without_nic(void **state)
{
    (void)state;
    struct mos_topo *t = load_fixture("numa2-nonic.xml");
    struct mos_guest_request req = {.mem_bytes = 64 * MIB, .nic = "ib0"};
    struct mos_guest_placement p;

    assert_int_equal(mos_topo_set_numa_free(t, 0, 100 * MIB), 0);
    assert_int_equal(mos_topo_set_numa_free(t, 1, 900 * MIB), 0);
    assert_int_equal(mos_topo_place_guest(t, &req, &p), 0);
    assert_int_equal(p.nic_numa, -1);
    assert_int_equal(p.numa, 1);
    assert_int_equal(p.bind, 1);
    assert_non_null(strstr(p.reason, "no NIC locality"));
    mos_topo_free(t);
}

/* Firmware without PCI locality: the HCA hangs under the machine, which spans all four NUMA
 * nodes. That is "no locality", not "node 0"; the guest goes where memory is. */
static void test_nic_without_locality(void **state)
{
    (void)state;
    struct mos_topo *t = load_fixture("numa4-rootnic.xml");
    struct mos_guest_request req = {.mem_bytes = 64 * MIB};
    struct mos_guest_placement p;
    struct mos_topo_nic nic;
    int numa = -1;

    assert_int_equal(mos_topo_nic_count(t), 2);
    assert_int_equal(mos_topo_get_nic(t, 0, &nic), 0);
    assert_int_equal(nic.numa, -1);
    assert_int_equal(mos_topo_nic_numa(t, "ib0", &numa), -ENOENT);
    assert_int_equal(mos_topo_set_numa_free(t, 2, 1000 * MIB), 0);
    assert_int_equal(mos_topo_set_numa_free(t, 0, 10 * MIB), 0);
    assert_int_equal(mos_topo_set_numa_free(t, 1, 10 * MIB), 0);
    assert_int_equal(mos_topo_set_numa_free(t, 3, 10 * MIB), 0);
    assert_int_equal(mos_topo_place_guest(t, &req, &p), 0);
    assert_int_equal(p.nic_numa, -1);
    assert_int_equal(p.numa, 2);
    assert_int_equal(p.distance, 0);
    mos_topo_free(t);
}

/* A machine recorded with lstopo (the development VM): one NUMA node, so its virtio NIC,
 * under the host bridge at the root, is trivially local to node 0. */
static void test_recorded_vm(void **state)
{
    (void)state;
    struct mos_topo *t = load_fixture("vm-2pu-virtio.xml");
    struct mos_topo_summary s;
    struct mos_topo_nic nic;

    mos_topo_get_summary(t, &s);
    assert_int_equal(s.pus, 2);
    assert_int_equal(s.numa_nodes, 1);
    assert_false(s.is_this_system);
    assert_int_equal(mos_topo_nic_count(t), 1);
    assert_int_equal(mos_topo_get_nic(t, 0, &nic), 0);
    assert_string_equal(nic.name, "eth0");
    assert_string_equal(nic.pci_busid, "0000:00:03.0");
    assert_int_equal(nic.numa, 0);
    assert_int_equal(nic.is_openfabrics, 0);
    mos_topo_free(t);
}

static void test_xml_roundtrip(void **state)
{
    (void)state;
    struct mos_topo *t = NULL, *back = NULL;
    struct mos_topo_summary a, b;
    char *xml = NULL, path[] = "/tmp/mos-topo-rt-XXXXXX";

    assert_int_equal(mos_topo_load(MOS_TOPO_SYNTHETIC, "pack:2 numa:2 core:3 pu:2", &t), 0);
    assert_int_equal(mos_topo_export_xml(t, &xml), 0);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
    close(fd);
    assert_int_equal(mos_topo_load(MOS_TOPO_XML, path, &back), 0);
    mos_topo_get_summary(t, &a);
    mos_topo_get_summary(back, &b);
    assert_int_equal(a.pus, b.pus);
    assert_int_equal(a.numa_nodes, b.numa_nodes);
    assert_int_equal(b.cores, 12);
    assert_true(a.mem_total == b.mem_total);
    unlink(path);
    free(xml);
    mos_topo_free(t);
    mos_topo_free(back);
}

/* This machine: whatever it has, the placement must name CPUs we may run on, and applying it
 * (what the restore does to the husk) must take effect. */
static void test_local_machine_apply(void **state)
{
    (void)state;
    struct mos_topo *t = NULL;
    struct mos_topo_summary s;
    struct mos_guest_request req = {.mem_bytes = 16 * MIB};
    struct mos_guest_placement p;
    cpu_set_t want, got, saved;
    long online = sysconf(_SC_NPROCESSORS_ONLN);

    assert_int_equal(mos_topo_load(MOS_TOPO_LOCAL, NULL, &t), 0);
    mos_topo_get_summary(t, &s);
    assert_true(s.is_this_system);
    assert_true(s.pus >= 1);
    assert_int_equal((long)s.pus, online);
    assert_true(s.numa_nodes >= 1);
    struct mos_topo_numa n;
    assert_int_equal(mos_topo_get_numa(t, 0, &n), 0);
    assert_true(n.mem_free > 0 && n.mem_free <= n.mem_total); /* libnuma's figure */
    int numa = -1, rc = mos_topo_nic_numa(t, NULL, &numa);
    print_message("local: %u PUs, %u NUMA, %u NICs with PCI locality, nic numa rc=%d numa=%d\n",
                  s.pus, s.numa_nodes, mos_topo_nic_count(t), rc, numa);
    assert_true(rc == 0 || rc == -ENOENT);
    assert_int_equal(mos_topo_place_guest(t, &req, &p), 0);
    print_message("local placement: %s cpus %s\n", p.reason, p.cpus);
    assert_int_equal(mos_cpulist_parse(p.cpus, (unsigned long *)&want, CPU_SETSIZE), 0);
    assert_int_equal(sched_getaffinity(0, sizeof(saved), &saved), 0);
    assert_int_equal(sched_setaffinity(0, sizeof(want), &want), 0);
    assert_int_equal(sched_getaffinity(0, sizeof(got), &got), 0);
    assert_true(CPU_EQUAL(&want, &got));
    assert_int_equal(sched_setaffinity(0, sizeof(saved), &saved), 0);

    /* The memory policy the restore sets in the husk, set here on ourselves and read back. */
    struct mos_guest_policy pol;
    int mode = -1;
    unsigned long got_mask[MOS_GUEST_MAX_NUMA / (8 * sizeof(unsigned long))] = {0};
    assert_int_equal(mos_guest_policy_make(&p, &pol), 0);
    assert_int_equal(pol.mode, MPOL_BIND);
    assert_memory_equal(pol.cpus, &want, sizeof(pol.cpus) < sizeof(want) ? sizeof(pol.cpus) : sizeof(want));
    assert_int_equal(syscall(SYS_set_mempolicy, pol.mode, pol.nodemask, pol.maxnode), 0);
    assert_int_equal(syscall(SYS_get_mempolicy, &mode, got_mask, MOS_GUEST_MAX_NUMA + 1, NULL, 0), 0);
    assert_int_equal(mode, MPOL_BIND);
    assert_memory_equal(got_mask, pol.nodemask, sizeof(got_mask));
    assert_int_equal(syscall(SYS_set_mempolicy, MPOL_DEFAULT, NULL, 0), 0);
    mos_topo_free(t);
}

static void test_cpulist_parse(void **state)
{
    (void)state;
    unsigned long m[2];

    assert_int_equal(mos_cpulist_parse("0-3,8,10-11", m, 128), 0);
    assert_true(m[0] == 0xd0f);
    assert_int_equal(mos_cpulist_parse("64", m, 128), 0);
    assert_true(m[0] == 0 && m[1] == 1);
    assert_int_equal(mos_cpulist_parse("128", m, 128), -EINVAL);
    assert_int_equal(mos_cpulist_parse("3-1", m, 128), -EINVAL);
    assert_int_equal(mos_cpulist_parse("1,", m, 128), -EINVAL);
    assert_int_equal(mos_cpulist_parse("", m, 128), -EINVAL);
    assert_int_equal(mos_cpulist_parse("a", m, 128), -EINVAL);
    assert_int_equal(mos_cpulist_parse("1-", m, 128), -EINVAL);
    assert_int_equal(mos_cpulist_parse("-1", m, 128), -EINVAL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic_summary),
        cmocka_unit_test(test_bad_sources),
        cmocka_unit_test(test_xml_distances_and_nic),
        cmocka_unit_test(test_place_guest_near_nic),
        cmocka_unit_test(test_place_guest_without_nic),
        cmocka_unit_test(test_nic_without_locality),
        cmocka_unit_test(test_recorded_vm),
        cmocka_unit_test(test_xml_roundtrip),
        cmocka_unit_test(test_local_machine_apply),
        cmocka_unit_test(test_cpulist_parse),
    };
    if (argc > 1)
        fixtures = argv[1];
    return cmocka_run_group_tests_name("placement_topo", tests, NULL, NULL);
}
