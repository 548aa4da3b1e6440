/* mostopo's reports of a topology: compact text and JSON (json-c). */
#include "mos/placement_topo.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024ull * 1024)

static void print_distances(const struct mos_topo *t, unsigned n, FILE *out)
{
    int from_matrix = 0;
    unsigned d;

    mos_topo_numa_distance(t, 0, 0, &d, &from_matrix);
    fprintf(out, "distances (%s):\n", from_matrix ? "latency matrix" : "none reported, SLIT default");
    for (unsigned i = 0; i < n; i++) {
        fprintf(out, "  %u:", i);
        for (unsigned j = 0; j < n; j++) {
            mos_topo_numa_distance(t, i, j, &d, NULL);
            fprintf(out, " %3u", d);
        }
        fputc('\n', out);
    }
}

int mos_topo_print_text(const struct mos_topo *t, FILE *out)
{
    struct mos_topo_summary s;
    struct mos_topo_numa n;
    struct mos_topo_nic nic;

    mos_topo_get_summary(t, &s);
    fprintf(out, "machine: %u packages, %u NUMA nodes, %u cores, %u PUs, %llu MiB%s\n",
            s.packages, s.numa_nodes, s.cores, s.pus, (unsigned long long)(s.mem_total / MIB),
            s.is_this_system ? " (this system)" : "");
    for (unsigned i = 0; mos_topo_get_numa(t, i, &n) == 0; i++)
        fprintf(out, "numa %u: os %u, cpus %s (%u PUs), %llu MiB, %llu MiB free\n", i,
                n.os_index, n.cpus, n.n_pus, (unsigned long long)(n.mem_total / MIB),
                (unsigned long long)(n.mem_free / MIB));
    if (s.numa_nodes > 1)
        print_distances(t, s.numa_nodes, out);
    for (unsigned i = 0; mos_topo_get_nic(t, i, &nic) == 0; i++) {
        if (nic.numa >= 0)
            fprintf(out, "nic %s: pci %s, %s, numa %d\n", nic.name, nic.pci_busid,
                    nic.is_openfabrics ? "rdma" : "net", nic.numa);
        else
            fprintf(out, "nic %s: pci %s, %s, no NUMA locality\n", nic.name, nic.pci_busid,
                    nic.is_openfabrics ? "rdma" : "net");
    }
    if (mos_topo_nic_count(t) == 0)
        fprintf(out, "nic: none with PCI locality\n");
    return ferror(out) ? -EIO : 0;
}

static json_object *json_numa(const struct mos_topo *t, unsigned n_numa)
{
    json_object *arr = json_object_new_array();
    struct mos_topo_numa n;

    for (unsigned i = 0; i < n_numa && mos_topo_get_numa(t, i, &n) == 0; i++) {
        json_object *o = json_object_new_object(), *row = json_object_new_array();
        json_object_object_add(o, "index", json_object_new_int((int)i));
        json_object_object_add(o, "os_index", json_object_new_int((int)n.os_index));
        json_object_object_add(o, "cpus", json_object_new_string(n.cpus));
        json_object_object_add(o, "pus", json_object_new_int((int)n.n_pus));
        json_object_object_add(o, "mem_total", json_object_new_int64((int64_t)n.mem_total));
        json_object_object_add(o, "mem_free", json_object_new_int64((int64_t)n.mem_free));
        for (unsigned j = 0; j < n_numa; j++) {
            unsigned d = 0;
            mos_topo_numa_distance(t, i, j, &d, NULL);
            json_object_array_add(row, json_object_new_int((int)d));
        }
        json_object_object_add(o, "distances", row);
        json_object_array_add(arr, o);
    }
    return arr;
}

static json_object *json_nics(const struct mos_topo *t)
{
    json_object *arr = json_object_new_array();
    struct mos_topo_nic nic;

    for (unsigned i = 0; mos_topo_get_nic(t, i, &nic) == 0; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(nic.name));
        json_object_object_add(o, "pci", json_object_new_string(nic.pci_busid));
        json_object_object_add(o, "rdma", json_object_new_boolean(nic.is_openfabrics));
        json_object_object_add(o, "numa", nic.numa >= 0 ? json_object_new_int(nic.numa) : NULL);
        json_object_array_add(arr, o);
    }
    return arr;
}

int mos_topo_report_json(const struct mos_topo *t, int pretty, char **json)
{
    struct mos_topo_summary s;
    json_object *root = json_object_new_object();
    int dist_matrix = 0;
    unsigned d;

    if (!root)
        return -ENOMEM;
    mos_topo_get_summary(t, &s);
    if (s.numa_nodes)
        mos_topo_numa_distance(t, 0, 0, &d, &dist_matrix);
    json_object_object_add(root, "this_system", json_object_new_boolean(s.is_this_system));
    json_object_object_add(root, "packages", json_object_new_int((int)s.packages));
    json_object_object_add(root, "cores", json_object_new_int((int)s.cores));
    json_object_object_add(root, "pus", json_object_new_int((int)s.pus));
    json_object_object_add(root, "mem_total", json_object_new_int64((int64_t)s.mem_total));
    json_object_object_add(root, "distance_matrix", json_object_new_boolean(dist_matrix));
    json_object_object_add(root, "numa", json_numa(t, s.numa_nodes));
    json_object_object_add(root, "nics", json_nics(t));
    *json = strdup(json_object_to_json_string_ext(
        root, pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
    return *json ? 0 : -ENOMEM;
}
