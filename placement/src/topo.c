/* Topology through hwloc, free memory through libnuma, and the guest's NUMA placement. */
#include "mos/placement_topo.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <hwloc.h>
#include <linux/mempolicy.h>
#ifdef MOS_HAVE_NUMA
#include <numa.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP "placement"

struct mos_topo {
    hwloc_topology_t hw;
    unsigned n_numa;
    uint64_t *numa_free;   /* per logical NUMA node */
    unsigned *numa_dist;   /* n_numa x n_numa, SLIT-style */
    int has_dist_matrix;
    int this_system;
};

static int topo_configure(hwloc_topology_t hw, enum mos_topo_source source, const char *arg)
{
    /* Keep PCI devices and their OS devices: NIC locality comes from them. The default filter
     * drops all I/O objects. */
    hwloc_topology_set_io_types_filter(hw, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    switch (source) {
    case MOS_TOPO_LOCAL:
        /* Skip hwloc's libpciaccess component: the Linux backend finds the same PCI devices
         * and their NICs in sysfs, and libpciaccess parses the whole pci.ids database (slow,
         * and its names are never freed) for vendor strings we do not use. */
        hwloc_topology_set_components(hw, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "pci");
        return 0;
    case MOS_TOPO_XML:
        if (!arg || hwloc_topology_set_xml(hw, arg) < 0) {
            mos_err(COMP, "%s: cannot use as hwloc XML: %s", arg ? arg : "(null)",
                    strerror(errno));
            return MOS_E_CONFIG;
        }
        return 0;
    case MOS_TOPO_SYNTHETIC:
        if (!arg || hwloc_topology_set_synthetic(hw, arg) < 0) {
            mos_err(COMP, "bad synthetic topology '%s' (hwloc syntax, e.g. "
                          "\"pack:2 numa:2 core:4 pu:2\")", arg ? arg : "(null)");
            return MOS_E_CONFIG;
        }
        return 0;
    }
    return -EINVAL;
}

/* The NUMA latency matrix hwloc found (ACPI SLIT on Linux, <distances2> in XML), as a dense
 * n x n table in logical order; 10/20 when there is none. */
static void topo_read_distances(struct mos_topo *t)
{
    struct hwloc_distances_s *d = NULL;
    unsigned nr = 1;

    for (unsigned i = 0; i < t->n_numa; i++)
        for (unsigned j = 0; j < t->n_numa; j++)
            t->numa_dist[i * t->n_numa + j] = i == j ? 10 : 20;
    if (hwloc_distances_get_by_type(t->hw, HWLOC_OBJ_NUMANODE, &nr, &d,
                                    HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) < 0 || nr == 0)
        return;
    for (unsigned a = 0; a < d->nbobjs; a++)
        for (unsigned b = 0; b < d->nbobjs; b++) {
            unsigned i = d->objs[a]->logical_index, j = d->objs[b]->logical_index;
            if (i < t->n_numa && j < t->n_numa)
                t->numa_dist[i * t->n_numa + j] = (unsigned)d->values[a * d->nbobjs + b];
        }
    t->has_dist_matrix = 1;
    hwloc_distances_release(t->hw, d);
}

/* Free memory per node from libnuma on the live machine (hwloc only knows sizes). Without
 * libnuma, or for XML / synthetic topologies, a node counts as all free. */
static void topo_read_free_memory(struct mos_topo *t)
{
#ifdef MOS_HAVE_NUMA
    int have_numa = t->this_system && numa_available() >= 0;
#endif

    for (unsigned i = 0; i < t->n_numa; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(t->hw, HWLOC_OBJ_NUMANODE, i);
        t->numa_free[i] = o->attr->numanode.local_memory;
#ifdef MOS_HAVE_NUMA
        long long free_b = -1;
        if (have_numa && numa_node_size64((int)o->os_index, &free_b) >= 0 && free_b >= 0)
            t->numa_free[i] = (uint64_t)free_b;
#endif
    }
}

int mos_topo_load(enum mos_topo_source source, const char *arg, struct mos_topo **out)
{
    struct mos_topo *t = calloc(1, sizeof(*t));
    int rc = -ENOMEM;

    if (!t)
        return -ENOMEM;
    if (hwloc_topology_init(&t->hw) < 0)
        goto free_struct;
    rc = topo_configure(t->hw, source, arg);
    if (rc != 0)
        goto destroy_hw;
    if (hwloc_topology_load(t->hw) < 0) {
        mos_err(COMP, "hwloc cannot load the topology%s%s: %s", arg ? " from " : "",
                arg ? arg : "", strerror(errno));
        rc = MOS_E_CONFIG;
        goto destroy_hw;
    }
    t->this_system = source == MOS_TOPO_LOCAL && hwloc_topology_is_thissystem(t->hw);
    t->n_numa = (unsigned)hwloc_get_nbobjs_by_type(t->hw, HWLOC_OBJ_NUMANODE);
    rc = -ENOMEM;
    t->numa_free = calloc(t->n_numa ? t->n_numa : 1, sizeof(*t->numa_free));
    t->numa_dist = calloc(t->n_numa ? (size_t)t->n_numa * t->n_numa : 1, sizeof(*t->numa_dist));
    if (!t->numa_free || !t->numa_dist)
        goto free_tables;
    topo_read_distances(t);
    topo_read_free_memory(t);
    *out = t;
    return 0;

free_tables:
    free(t->numa_free);
    free(t->numa_dist);
destroy_hw:
    hwloc_topology_destroy(t->hw);
free_struct:
    free(t);
    return rc;
}

void mos_topo_free(struct mos_topo *topo)
{
    if (!topo)
        return;
    hwloc_topology_destroy(topo->hw);
    free(topo->numa_free);
    free(topo->numa_dist);
    free(topo);
}

void mos_topo_get_summary(const struct mos_topo *t, struct mos_topo_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->packages = (unsigned)hwloc_get_nbobjs_by_type(t->hw, HWLOC_OBJ_PACKAGE);
    out->numa_nodes = t->n_numa;
    out->cores = (unsigned)hwloc_get_nbobjs_by_type(t->hw, HWLOC_OBJ_CORE);
    out->pus = (unsigned)hwloc_get_nbobjs_by_type(t->hw, HWLOC_OBJ_PU);
    for (unsigned i = 0; i < t->n_numa; i++)
        out->mem_total += hwloc_get_obj_by_type(t->hw, HWLOC_OBJ_NUMANODE, i)
                              ->attr->numanode.local_memory;
    out->is_this_system = t->this_system;
}

int mos_topo_get_numa(const struct mos_topo *t, unsigned i, struct mos_topo_numa *out)
{
    hwloc_obj_t o;

    if (i >= t->n_numa)
        return -ERANGE;
    o = hwloc_get_obj_by_type(t->hw, HWLOC_OBJ_NUMANODE, i);
    out->os_index = o->os_index;
    out->mem_total = o->attr->numanode.local_memory;
    out->mem_free = t->numa_free[i];
    /* hwloc cpusets are indexed by OS CPU number, so the list is the kernel's CPU list. */
    hwloc_bitmap_list_snprintf(out->cpus, sizeof(out->cpus), o->cpuset);
    out->n_pus = (unsigned)hwloc_get_nbobjs_inside_cpuset_by_type(t->hw, o->cpuset,
                                                                  HWLOC_OBJ_PU);
    return 0;
}

int mos_topo_set_numa_free(struct mos_topo *t, unsigned i, uint64_t free_bytes)
{
    if (i >= t->n_numa)
        return -ERANGE;
    t->numa_free[i] = free_bytes;
    return 0;
}

int mos_topo_numa_distance(const struct mos_topo *t, unsigned i, unsigned j, unsigned *dist,
                           int *from_matrix)
{
    if (i >= t->n_numa || j >= t->n_numa)
        return -ERANGE;
    *dist = t->numa_dist[i * t->n_numa + j];
    if (from_matrix)
        *from_matrix = t->has_dist_matrix;
    return 0;
}

static int osdev_is_nic(hwloc_obj_t o)
{
    return o->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK ||
           o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS;
}

static hwloc_obj_t nic_next(const struct mos_topo *t, hwloc_obj_t prev)
{
    hwloc_obj_t o = prev;

    while ((o = hwloc_get_next_osdev(t->hw, o)) != NULL)
        if (osdev_is_nic(o) && o->parent && o->parent->type == HWLOC_OBJ_PCI_DEVICE)
            return o;
    return NULL;
}

unsigned mos_topo_nic_count(const struct mos_topo *t)
{
    unsigned n = 0;

    for (hwloc_obj_t o = nic_next(t, NULL); o; o = nic_next(t, o))
        n++;
    return n;
}

/* The NUMA node of an I/O object: the first NUMA node in the nodeset of its first non-I/O
 * ancestor. An ancestor that spans every NUMA node of a multi-node machine says nothing about
 * locality (firmware did not report it), so that is -1. */
static int io_numa(const struct mos_topo *t, hwloc_obj_t io)
{
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(t->hw, io);

    if (!anc || !anc->nodeset || t->n_numa == 0)
        return -1;
    if (t->n_numa > 1 && hwloc_bitmap_isequal(anc->nodeset, hwloc_topology_get_topology_nodeset(t->hw)))
        return -1;
    for (unsigned i = 0; i < t->n_numa; i++) {
        hwloc_obj_t numa = hwloc_get_obj_by_type(t->hw, HWLOC_OBJ_NUMANODE, i);
        if (hwloc_bitmap_isset(anc->nodeset, numa->os_index))
            return (int)i;
    }
    return -1;
}

static void nic_fill(const struct mos_topo *t, hwloc_obj_t o, struct mos_topo_nic *out)
{
    const struct hwloc_pcidev_attr_s *pci = &o->parent->attr->pcidev;

    snprintf(out->name, sizeof(out->name), "%s", o->name ? o->name : "?");
    snprintf(out->pci_busid, sizeof(out->pci_busid), "%04x:%02x:%02x.%01x",
             (unsigned)pci->domain, pci->bus, pci->dev, pci->func);
    out->is_openfabrics = o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS;
    out->numa = io_numa(t, o);
}

int mos_topo_get_nic(const struct mos_topo *t, unsigned i, struct mos_topo_nic *out)
{
    unsigned n = 0;

    for (hwloc_obj_t o = nic_next(t, NULL); o; o = nic_next(t, o), n++)
        if (n == i) {
            nic_fill(t, o, out);
            return 0;
        }
    return -ERANGE;
}

static hwloc_obj_t nic_find(const struct mos_topo *t, const char *name)
{
    hwloc_obj_t first_net = NULL;

    for (hwloc_obj_t o = nic_next(t, NULL); o; o = nic_next(t, o)) {
        if (name) {
            if (o->name && strcmp(o->name, name) == 0)
                return o;
        } else if (o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS) {
            return o;
        } else if (!first_net) {
            first_net = o;
        }
    }
    return name ? NULL : first_net;
}

int mos_topo_nic_numa(const struct mos_topo *t, const char *name, int *numa)
{
    hwloc_obj_t o = nic_find(t, name);
    int n;

    if (!o)
        return -ENOENT;
    n = io_numa(t, o);
    if (n < 0)
        return -ENOENT;
    *numa = n;
    return 0;
}

/* Better candidate for the guest: nearer the NIC first, then more free memory. */
static int numa_better(const struct mos_topo *t, int nic, unsigned a, unsigned b)
{
    if (nic >= 0) {
        unsigned da = t->numa_dist[(unsigned)nic * t->n_numa + a];
        unsigned db = t->numa_dist[(unsigned)nic * t->n_numa + b];
        if (da != db)
            return da < db;
    }
    return t->numa_free[a] > t->numa_free[b];
}

int mos_topo_place_guest(const struct mos_topo *t, const struct mos_guest_request *req,
                         struct mos_guest_placement *out)
{
    int nic = -1, best = -1, roomiest = -1;
    struct mos_topo_numa info;

    if (t->n_numa == 0)
        return -ENOENT;
    if (mos_topo_nic_numa(t, req->nic, &nic) != 0)
        nic = -1;
    for (unsigned i = 0; i < t->n_numa; i++) {
        if (roomiest < 0 || t->numa_free[i] > t->numa_free[roomiest])
            roomiest = (int)i;
        if (t->numa_free[i] < req->mem_bytes)
            continue;
        if (best < 0 || numa_better(t, nic, i, (unsigned)best))
            best = (int)i;
    }
    memset(out, 0, sizeof(*out));
    out->nic_numa = nic;
    out->bind = best >= 0;
    out->numa = best >= 0 ? best : roomiest;
    mos_topo_get_numa(t, (unsigned)out->numa, &info);
    out->numa_os = info.os_index;
    snprintf(out->cpus, sizeof(out->cpus), "%s", info.cpus);
    out->distance = nic >= 0 ? t->numa_dist[(unsigned)nic * t->n_numa + (unsigned)out->numa] : 0;
    if (!out->bind)
        snprintf(out->reason, sizeof(out->reason),
                 "no NUMA node has %llu MiB free; preferring node %u with the most (%llu MiB)",
                 (unsigned long long)(req->mem_bytes >> 20), info.os_index,
                 (unsigned long long)(info.mem_free >> 20));
    else if (nic >= 0)
        snprintf(out->reason, sizeof(out->reason),
                 "node %u: %llu MiB free, distance %u from the NIC's node %u", info.os_index,
                 (unsigned long long)(info.mem_free >> 20), out->distance,
                 hwloc_get_obj_by_type(t->hw, HWLOC_OBJ_NUMANODE, (unsigned)nic)->os_index);
    else
        snprintf(out->reason, sizeof(out->reason),
                 "node %u: most free memory (%llu MiB); no NIC locality known", info.os_index,
                 (unsigned long long)(info.mem_free >> 20));
    return 0;
}

int mos_guest_policy_make(const struct mos_guest_placement *p, struct mos_guest_policy *out)
{
    const size_t bits = 8 * sizeof(unsigned long);

    memset(out, 0, sizeof(*out));
    if (p->numa_os >= MOS_GUEST_MAX_NUMA)
        return -EINVAL;
    out->mode = p->bind ? MPOL_BIND : MPOL_PREFERRED;
    out->nodemask[p->numa_os / bits] |= 1ul << (p->numa_os % bits);
    /* The kernel reads maxnode - 1 bits (mm/mempolicy.c get_nodes() decrements it first). */
    out->maxnode = MOS_GUEST_MAX_NUMA + 1;
    return mos_cpulist_parse(p->cpus, out->cpus, 8 * sizeof(out->cpus));
}

int mos_topo_export_xml(const struct mos_topo *t, char **xml)
{
    char *buf = NULL;
    int len = 0;

    if (hwloc_topology_export_xmlbuffer(t->hw, &buf, &len, 0) < 0)
        return mos_errno_status();
    *xml = strdup(buf);
    hwloc_free_xmlbuffer(t->hw, buf);
    return *xml ? 0 : -ENOMEM;
}

int mos_cpulist_parse(const char *list, unsigned long *mask, size_t max_cpus)
{
    const size_t bits = 8 * sizeof(unsigned long);
    const char *p = list;

    memset(mask, 0, (max_cpus + bits - 1) / bits * sizeof(unsigned long));
    if (*p == '\0')
        return -EINVAL;
    while (*p) {
        char *end;
        unsigned long lo = strtoul(p, &end, 10), hi;
        if (end == p || *p == '-' || *p == '+')
            return -EINVAL;
        hi = lo;
        p = end;
        if (*p == '-') {
            p++;
            if (*p < '0' || *p > '9')
                return -EINVAL;
            hi = strtoul(p, &end, 10);
            p = end;
        }
        if (hi < lo || hi >= max_cpus)
            return -EINVAL;
        for (unsigned long c = lo; c <= hi; c++)
            mask[c / bits] |= 1ul << (c % bits);
        if (*p == ',')
            p++;
        else if (*p)
            return -EINVAL;
        if (*p == '\0' && p[-1] == ',')
            return -EINVAL;
    }
    return 0;
}
