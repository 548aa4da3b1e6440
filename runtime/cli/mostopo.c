/* mostopo: this node's topology (packages, NUMA nodes, distances, NICs) as compact text, JSON
 * or hwloc XML; also for an hwloc synthetic description or a recorded XML file. */
#include "mos/placement_topo.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mostopo [--json | --xml] [--synthetic STR | --input FILE.xml]\n"
                 "  --json            JSON report\n"
                 "  --xml             hwloc XML (what --input reads back)\n"
                 "  --synthetic STR   an hwloc synthetic topology, e.g. \"pack:2 numa:2 core:4 pu:2\"\n"
                 "  --input FILE      an hwloc XML file (e.g. from lstopo --of xml on another node)\n"
                 "without --synthetic or --input: this machine\n");
}

enum format { FMT_TEXT, FMT_JSON, FMT_XML };

static int report(const struct mos_topo *topo, enum format fmt)
{
    char *text = NULL;
    int rc;

    if (fmt == FMT_TEXT)
        return mos_topo_print_text(topo, stdout) == 0 ? 0 : 1;
    rc = fmt == FMT_JSON ? mos_topo_report_json(topo, 1, &text) : mos_topo_export_xml(topo, &text);
    if (rc != 0) {
        fprintf(stderr, "mostopo: cannot format the report\n");
        return 1;
    }
    fputs(text, stdout);
    if (fmt == FMT_JSON)
        fputc('\n', stdout);
    free(text);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},       {"xml", no_argument, NULL, 'x'},
        {"synthetic", required_argument, NULL, 's'}, {"input", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},       {0, 0, 0, 0},
    };
    enum mos_topo_source source = MOS_TOPO_LOCAL;
    enum format fmt = FMT_TEXT;
    const char *arg = NULL;
    struct mos_topo *topo = NULL;
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': fmt = FMT_JSON; break;
        case 'x': fmt = FMT_XML; break;
        case 's': source = MOS_TOPO_SYNTHETIC; arg = optarg; break;
        case 'i': source = MOS_TOPO_XML; arg = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "mostopo: bad or incomplete option '%s' (mostopo --help lists them)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mostopo: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (mos_topo_load(source, arg, &topo) != 0)
        return 1; /* the library logged the cause */
    rc = report(topo, fmt);
    mos_topo_free(topo);
    return rc;
}
