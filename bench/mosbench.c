/* mosbench: the benchmark suite a site runs. Each subcommand prints its figures, its reference
 * measured in the same run, and a last line "result NAME key=value...". */
#include "bench.h"

#include "mos/size.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_parse_uint(const char *text, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);

    if (*text == '\0' || *end != '\0' || v > 1000000000ul)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int bench_parse_size(const char *bench, const char *option, const char *text, uint64_t unit,
                     uint64_t min, uint64_t max, uint64_t *out)
{
    char why[160];

    if (mos_size_parse_range(text, unit, min, max, out, why, sizeof(why)) == 0)
        return 0;
    fprintf(stderr, "mosbench %s: %s %s\n", bench, option, why);
    return -1;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} benches[] = {
    {"balance", bench_balance,
     "[--nodes N] [--cpus-per-node F[,F...]] [--jobs J] [--steps S] [--watch]: lab makespan with and "
     "without balancing | --sim [--nodes N] [--jobs J] [--start one|random] [--fast K] "
     "[--gossip-age A] [--work S] [--seed X]: the same decisions over simulated nodes"},
    {"faults", bench_faults,
     "[--migrations N] [--kinds none,target-mosd,...] [--seed S]: migrations hit by faults in a "
     "lab; jobs lost, duplicated, wrong"},
    {"gossip-lab", bench_gossip_lab,
     "[--nodes N] [--interval-ms MS] [--window W] [--seconds S]: gossip over real UDP in a lab: "
     "ages, bytes, CPU, false deaths, kill / silent / rejoin times"},
    {"mpi", bench_mpi,
     "[--repeat R] [--lat-iters N] [--bw-iters N]: two OpenMPI ranks in a lab, latency and "
     "bandwidth native vs one rank moved away (its sockets kept at home)"},
    {"gossip-model", bench_gossip_model, "[--nodes N] [--window W]: expected gossip ages"},
    {"seal", bench_seal,
     "[--bytes SIZE] [--frame SIZE] [--passes N]: what protecting messages costs a core: the "
     "pages' tag and sealing vs memcpy, small messages sealed"},
    {"syscall", bench_syscall, "[--iters N]: forwarded system calls vs native vs a raw round trip"},
    {"migrate", bench_migrate,
     "[--sizes 16M,64M,256M,1G] [--threads 1,8,64] [--backend file|tcp|transport] "
     "[--repeat N] [--live pre] [--dirty-rate MIB_S] [--criu PATH]: migration cost, per-thread "
     "cost, floor; --live: stop-and-copy vs live pre-copy of a job writing MIB_S"},
    {"transport", bench_transport,
     "--backend tcp|verbs [--bytes SIZE] [--slot SIZE] [--qps Q]: page-run throughput and "
     "control round trip vs raw sockets / perftest"},
    {"gossip", bench_gossip,
     "--nodes N --window W --steps S [--loss P] [--churn C] [--seed X] [--dead-after STEPS] "
     "[--threads T]: "
     "simulated gossip ages vs the model"},
    {"placement", bench_placement,
     "[--jobs N] [--nodes N] [--seed S] [--load-percent P] [--mem-mib SIZE] | --ipc PATTERN "
     "[--nodes N] [--slots S]: "
     "assignment policies' slowdowns; IPC-aware rank mapping vs by-slot and the optimum"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mosbench BENCH [options]\n");
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        fprintf(out, "  %s %s\n", benches[i].name, benches[i].help);
    fprintf(out, "SIZE: %s (4096, 64K, 16M, 2G);\n"
                 "a plain --mem-mib counts MiB, a suffix says its own unit\n", MOS_SIZE_SYNTAX);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        if (strcmp(argv[1], benches[i].name) == 0)
            return benches[i].run(argc - 2, argv + 2);
    fprintf(stderr, "mosbench: unknown benchmark '%s' (mosbench --help lists them)\n", argv[1]);
    return 2;
}
