/* A node's topology through hwloc (packages, cores, PUs, NUMA nodes, distances, PCI NICs) and
 * the local placement of a guest: which NUMA node and CPUs it should get.
 *
 * A topology comes from the running machine, an hwloc XML file (for example one recorded with
 * `lstopo --of xml` on another machine) or an hwloc synthetic description, so tests of large
 * machines need no special hardware. */
#ifndef MOS_PLACEMENT_TOPO_H
#define MOS_PLACEMENT_TOPO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mos_topo; /* opaque: wraps an hwloc topology */

enum mos_topo_source {
    MOS_TOPO_LOCAL = 0, /* this machine; free memory per NUMA node from libnuma */
    MOS_TOPO_XML,       /* arg: path of an hwloc XML file */
    MOS_TOPO_SYNTHETIC, /* arg: an hwloc synthetic string, e.g. "pack:2 numa:2 core:4 pu:2" */
};

/* Load a topology with its I/O devices (PCI devices and their network / OpenFabrics OS
 * devices). Returns 0 and *out, or MOS_E_CONFIG for an unreadable XML file or a bad synthetic
 * string (logged once), -ENOMEM. */
int mos_topo_load(enum mos_topo_source source, const char *arg, struct mos_topo **out);
void mos_topo_free(struct mos_topo *topo);

struct mos_topo_summary {
    unsigned packages, numa_nodes, cores, pus;
    uint64_t mem_total;  /* bytes, sum of the NUMA nodes' local memory */
    int is_this_system;  /* 1 when loaded from the running machine */
};
void mos_topo_get_summary(const struct mos_topo *topo, struct mos_topo_summary *out);

struct mos_topo_numa {
    unsigned os_index;   /* the kernel's node number (what libnuma and mbind use) */
    uint64_t mem_total;  /* bytes */
    uint64_t mem_free;   /* bytes; for XML / synthetic topologies, mem_total unless overridden */
    char cpus[256];      /* its PUs as a kernel CPU list, e.g. "0-7,16-23" */
    unsigned n_pus;
};
/* NUMA node number i (0 <= i < numa_nodes, in hwloc's logical order). 0 or -ERANGE. */
int mos_topo_get_numa(const struct mos_topo *topo, unsigned i, struct mos_topo_numa *out);

/* Override the free memory of NUMA node (logical index) i, for topologies not from this
 * machine (tests, a remote node's recorded topology). 0 or -ERANGE. */
int mos_topo_set_numa_free(struct mos_topo *topo, unsigned i, uint64_t free_bytes);

/* Relative distance between NUMA nodes i and j (logical indexes), 10 = local as in the ACPI
 * SLIT. From the topology's NUMA latency matrix when it has one; otherwise 10 on the diagonal
 * and 20 elsewhere (*from_matrix set to 0). 0 or -ERANGE. */
int mos_topo_numa_distance(const struct mos_topo *topo, unsigned i, unsigned j, unsigned *dist,
                           int *from_matrix);

struct mos_topo_nic {
    char name[64];       /* OS device name: "eth0", "ib0", "mlx5_0" */
    char pci_busid[16];  /* "0000:80:00.0" */
    int numa;            /* logical index of the nearest NUMA node, -1 if not attached to one */
    int is_openfabrics;  /* an RDMA device (OpenFabrics OS device) */
};
/* Number of network and OpenFabrics OS devices behind PCI devices (virtual interfaces such as
 * lo or veth have no PCI locality and are not counted). */
unsigned mos_topo_nic_count(const struct mos_topo *topo);
int mos_topo_get_nic(const struct mos_topo *topo, unsigned i, struct mos_topo_nic *out);

/* The NUMA node nearest a NIC, by the NIC's PCI locality: the NUMA nodes of the first non-I/O
 * ancestor of its PCI device (the lowest-numbered when there are several). `name` is an OS
 * device name, or NULL for the first OpenFabrics device, else the first network device.
 * Returns 0 and *numa, or -ENOENT when there is no such NIC or it has no locality (as on a VM
 * whose virtio NIC hangs under the machine root with all NUMA nodes). */
int mos_topo_nic_numa(const struct mos_topo *topo, const char *name, int *numa);

/* What a guest needs on this node. */
struct mos_guest_request {
    uint64_t mem_bytes;  /* resident memory the image brings */
    const char *nic;     /* NIC its traffic uses (NULL: the first RDMA NIC, else the first) */
};

/* Where the guest goes on this node: data the restore applies before the VMAs are mapped
 * (set_mempolicy(MPOL_PREFERRED or MPOL_BIND) on numa_os, sched_setaffinity on cpus). */
struct mos_guest_placement {
    int numa;             /* logical index */
    unsigned numa_os;     /* kernel node number */
    char cpus[256];       /* kernel CPU list of that node's PUs */
    int bind;             /* 1: enough free memory there, bind; 0: preferred only */
    int nic_numa;         /* logical index of the NIC's node, -1 if none known */
    unsigned distance;    /* distance from the NIC's node, 0 when no NIC locality */
    char reason[160];     /* one line: why this node */
};

/* Choose the NUMA node for a guest: among nodes with at least mem_bytes free, the nearest to
 * the NIC's node (distance matrix), ties to the most free memory; when no NIC locality is
 * known, the node with the most free memory. When no node has enough, the one with the most
 * free memory, as preferred (not bound) so the kernel may spill. 0, or -ENOENT when the
 * topology has no NUMA node. */
int mos_topo_place_guest(const struct mos_topo *topo, const struct mos_guest_request *req,
                         struct mos_guest_placement *out);

/* The placement as the arguments of the two system calls the restore makes in the husk before
 * it maps the VMAs: set_mempolicy(mode, nodemask, maxnode) with mode MPOL_BIND (enough free
 * memory there) or MPOL_PREFERRED, and sched_setaffinity(cpus). */
#define MOS_GUEST_MAX_NUMA 1024
struct mos_guest_policy {
    int mode;                                   /* MPOL_BIND or MPOL_PREFERRED */
    unsigned long nodemask[MOS_GUEST_MAX_NUMA / (8 * sizeof(unsigned long))];
    unsigned long maxnode;                      /* bits in nodemask, for set_mempolicy */
    unsigned long cpus[1024 / (8 * sizeof(unsigned long))]; /* a cpu_set_t's bits */
};
/* 0, or -EINVAL when the node number or a CPU is out of range. */
int mos_guest_policy_make(const struct mos_guest_placement *p, struct mos_guest_policy *out);

/* Export as hwloc XML (for mostopo --xml). *xml is malloc'd, NUL-terminated; caller frees. */
int mos_topo_export_xml(const struct mos_topo *topo, char **xml);

/* The reports of mostopo. Text: one line per machine, NUMA node, distance row and NIC.
 * JSON: a string (pretty-printed when pretty) that the caller frees. 0 or -ENOMEM / -EIO. */
int mos_topo_print_text(const struct mos_topo *topo, FILE *out);
int mos_topo_report_json(const struct mos_topo *topo, int pretty, char **json);

/* Parse a kernel CPU list ("0-3,8") into a bitmask of at most max_cpus bits (CPU_SETSIZE for a
 * cpu_set_t). 0, or -EINVAL for malformed text or a CPU >= max_cpus. */
int mos_cpulist_parse(const char *list, unsigned long *mask, size_t max_cpus);

#endif
