/* mosplace: placement decisions a user asks for. `mosplace rankfile` maps MPI ranks to hosts
 * and slots from a communication matrix (recorded by libmoscomm.so or written by hand) so that
 * traffic stays inside hosts, and writes an OpenMPI rankfile. */
#include "mos/placement_map.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mosplace rankfile --matrix FILE --hosts FILE [--policy ipc|byslot|bynode]\n"
            "                         [--output FILE]\n"
            "  --matrix FILE   communication matrix ('mos-comm-matrix 1' format; MOS_COMM_MATRIX=FILE\n"
            "                  with LD_PRELOAD=libmoscomm.so records one)\n"
            "  --hosts FILE    one host a line: NAME [slots=N] [speed=X]\n"
            "  --policy P      ipc (default): least inter-node traffic under load balance;\n"
            "                  byslot, bynode: OpenMPI's own orders, for comparison\n"
            "  --output FILE   write the rankfile there (default: standard output)\n"
            "the inter-node bytes of the chosen, by-slot and by-node mappings go to stderr\n");
}

static int parse_policy(const char *s, enum mos_map_policy *p)
{
    static const struct { const char *name; enum mos_map_policy p; } names[] = {
        {"ipc", MOS_MAP_IPC}, {"byslot", MOS_MAP_BYSLOT}, {"bynode", MOS_MAP_BYNODE}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *p = names[i].p;
            return 0;
        }
    return -1;
}

static unsigned long long bytes_under(const struct mos_comm_matrix *m,
                                      const struct mos_host_list *h, enum mos_map_policy p)
{
    struct mos_rank_map map;
    unsigned long long b;

    if (mos_rank_map_compute(m, h, p, &map) != 0)
        return 0;
    b = mos_rank_map_internode_bytes(m, &map);
    mos_rank_map_free(&map);
    return b;
}

static int write_rankfile(const struct mos_rank_map *map, const struct mos_host_list *hosts,
                          const char *output)
{
    FILE *out = output ? fopen(output, "we") : stdout;
    int rc;

    if (!out) {
        fprintf(stderr, "mosplace: %s: %m\n", output);
        return 1;
    }
    rc = mos_rankfile_write(map, hosts, out);
    if ((output && fclose(out) != 0) || rc != 0) {
        fprintf(stderr, "mosplace: cannot write the rankfile to %s\n", output ? output : "stdout");
        return 1;
    }
    return 0;
}

static int rankfile(const char *matrix, const char *hosts_file, enum mos_map_policy policy,
                    const char *output)
{
    struct mos_comm_matrix m;
    struct mos_host_list hosts;
    struct mos_rank_map map;
    int rc = 1;

    if (mos_comm_matrix_load(matrix, &m) != 0)
        return 1; /* logged with file and line */
    if (mos_host_list_load(hosts_file, &hosts) != 0)
        goto free_matrix;
    if (mos_rank_map_compute(&m, &hosts, policy, &map) != 0)
        goto free_hosts;
    rc = write_rankfile(&map, &hosts, output);
    fprintf(stderr, "mosplace: %u ranks on %zu hosts: inter-node bytes %llu (by-slot %llu, "
                    "by-node %llu)\n", m.n, hosts.n,
            (unsigned long long)mos_rank_map_internode_bytes(&m, &map),
            bytes_under(&m, &hosts, MOS_MAP_BYSLOT), bytes_under(&m, &hosts, MOS_MAP_BYNODE));
    mos_rank_map_free(&map);
free_hosts:
    mos_host_list_free(&hosts);
free_matrix:
    mos_comm_matrix_free(&m);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"matrix", required_argument, NULL, 'm'}, {"hosts", required_argument, NULL, 'H'},
        {"policy", required_argument, NULL, 'p'}, {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {0, 0, 0, 0},
    };
    const char *matrix = NULL, *hosts = NULL, *output = NULL;
    enum mos_map_policy policy = MOS_MAP_IPC;
    int c;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "rankfile") != 0) {
        fprintf(stderr, "mosplace: unknown or missing command%s%s (mosplace --help)\n",
                argc >= 2 ? " " : "", argc >= 2 ? argv[1] : "");
        return 2;
    }
    opterr = 0;
    optind = 2;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': matrix = optarg; break;
        case 'H': hosts = optarg; break;
        case 'o': output = optarg; break;
        case 'p':
            if (parse_policy(optarg, &policy) != 0) {
                fprintf(stderr, "mosplace: unknown policy '%s' (ipc, byslot, bynode)\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "mosplace: bad or incomplete option '%s' (mosplace --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc || !matrix || !hosts) {
        fprintf(stderr, "mosplace: rankfile needs --matrix FILE and --hosts FILE%s%s\n",
                optind < argc ? "; unexpected " : "", optind < argc ? argv[optind] : "");
        return 2;
    }
    return rankfile(matrix, hosts, policy, output);
}
