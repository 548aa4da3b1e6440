/* mosd: the node daemon. This first version checks a node's configuration (the cluster file,
 * the key, which node this host is); gossip, migrations and the command socket follow. */
#include "mos/config.h"
#include "mos/key.h"
#include "mos/log.h"
#include "mos/status.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mosd [--config FILE] --check-config\n"
                 "       mosd --help-config\n"
                 "  --config FILE   cluster config (default $MOS_CONF, then %s)\n"
                 "  --check-config  load the config and key, find this node, report, exit\n"
                 "  --help-config   print every setting with its default and meaning\n",
                 MOS_CONFIG_DEFAULT_PATH);
}

/* Load the config the way every mos command does: a missing default file means the built-in
 * one-node cluster; an explicitly named file must exist. */
static int load_config(const char *explicit_path, struct mos_config *cfg)
{
    int may_be_absent;
    const char *path = mos_config_choose_path(explicit_path, &may_be_absent);
    FILE *probe;

    if (may_be_absent && !(probe = fopen(path, "re"))) {
        mos_config_defaults(cfg);
        return mos_config_parse("", "(built-in defaults)", cfg);
    } else if (may_be_absent) {
        fclose(probe);
    }
    return mos_config_load(path, cfg);
}

static int check_config(const char *explicit_path)
{
    struct mos_config cfg;
    mos_key_t key;
    int self, rc;

    rc = load_config(explicit_path, &cfg);
    if (rc != 0)
        return 1;
    if (cfg.key_file[0] && mos_key_load(cfg.key_file, &key) != 0) {
        mos_config_free(&cfg);
        return 1;
    }
    self = mos_config_find_self(&cfg);
    if (self < 0) {
        mos_err("mosd", "%s: none of the %zu nodes has an address of this host", cfg.path,
                cfg.n_nodes);
        mos_config_free(&cfg);
        return 1;
    }
    printf("node %s %s of %zu in %s, key %s\n", cfg.nodes[self].name, cfg.nodes[self].addr,
           cfg.n_nodes, cfg.path, cfg.key_file[0] ? cfg.key_file : "none");
    mos_config_free(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"help-config", no_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *config = NULL;
    int check = 0, c;

    opterr = 0; /* one line of our own for a bad option, not getopt's plus the usage */
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'k': check = 1; break;
        case 'H': mos_config_describe(stdout); return 0;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "mosd: bad or incomplete option '%s' (mosd --help lists them)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mosd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (check)
        return check_config(config);
    fprintf(stderr, "mosd: only --check-config is available in this version\n");
    return 2;
}
