/* mosbench balance: runs the script installed beside mosbench (mosbench-balance), which
 * builds a lab cluster and times jobs with and without balancing. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* balance needs a lab cluster: it is a script (bench/balance.sh, installed beside mosbench) */
int bench_balance(int argc, char **argv)
{
    char self[4096], script[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n <= 0)
        return 1;
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(script, sizeof(script), "%s/mosbench-balance", self);
    char **args = calloc((size_t)argc + 2, sizeof(char *));
    if (!args)
        return 1;
    args[0] = script;
    for (int i = 0; i < argc; i++)
        args[i + 1] = argv[i];
    execv(script, args);
    fprintf(stderr, "mosbench balance: cannot run %s: %s\n", script, strerror(errno));
    return 1;
}

