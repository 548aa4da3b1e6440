/* Benchmarks that need a lab cluster are scripts installed beside mosbench as mosbench-NAME
 * (they build network namespaces and start daemons, which a shell says more plainly). */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bench_run_script(const char *name, int argc, char **argv)
{
    char self[4096], script[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n <= 0)
        return 1;
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(script, sizeof(script), "%s/mosbench-%s", self, name);
    char **args = calloc((size_t)argc + 2, sizeof(char *));
    if (!args)
        return 1;
    args[0] = script;
    for (int i = 0; i < argc; i++)
        args[i + 1] = argv[i];
    execv(script, args);
    fprintf(stderr, "mosbench %s: cannot run %s: %s\n", name, script, strerror(errno));
    free(args);
    return 1;
}

/* mosbench balance: a lab cluster timing jobs with and without balancing (bench/balance.sh) */
int bench_balance(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--sim") == 0)
            return bench_balance_sim(argc, argv);
    return bench_run_script("balance", argc, argv);
}

/* mosbench faults: the fault campaign (bench/faults.sh) */
int bench_faults(int argc, char **argv)
{
    return bench_run_script("faults", argc, argv);
}

/* mosbench gossip-lab: gossip over real UDP among lab nodes (bench/gossip_lab.sh) */
int bench_gossip_lab(int argc, char **argv)
{
    return bench_run_script("gossip-lab", argc, argv);
}

/* mosbench mpi: two OpenMPI ranks, native vs one moved away (bench/mpi.sh) */
int bench_mpi(int argc, char **argv)
{
    return bench_run_script("mpi", argc, argv);
}
