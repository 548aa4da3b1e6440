/* mosbench gossip-model: the analytical gossip age model, the reference the gossip simulator
 * is measured against. */
#include "bench.h"

#include "mos/gossip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_gossip_model(int argc, char **argv)
{
    unsigned n = 1000, w = 16;
    struct mos_gossip_age_model m;

    for (int i = 0; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--nodes") == 0 &&
            bench_parse_uint(argv[i + 1], &n) == 0)
            i++;
        else if (i + 1 < argc && strcmp(argv[i], "--window") == 0 &&
                 bench_parse_uint(argv[i + 1], &w) == 0)
            i++;
        else {
            fprintf(stderr, "mosbench gossip-model: bad argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (mos_gossip_model(n, w, &m) != 0) {
        fprintf(stderr, "mosbench gossip-model: need nodes >= 2 and 1 <= window < nodes\n");
        return 2;
    }
    printf("result gossip-model nodes=%u window=%u avg_age_model=%.2f max_age_model=%.1f\n", n, w,
           m.avg_age, m.max_age);
    return 0;
}
