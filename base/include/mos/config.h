/* The cluster configuration, /etc/mos/mos.conf (or $MOS_CONF), an INI file:
 *
 *   [cluster]                  settings shared by every node (see mos_config_describe)
 *   key_file = /etc/mos/cluster.key
 *   [nodes]                    one line per node: name = address
 *   mos1 = 10.77.0.1
 *
 * Every setting has a default, a range and a doc string in one table (config.c), which also
 * produces `--help-config` text. Unknown sections or settings, bad numbers, duplicate nodes and
 * bad addresses are errors naming the file and line. */
#ifndef MOS_CONFIG_H
#define MOS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MOS_CONFIG_DEFAULT_PATH "/etc/mos/mos.conf"
#define MOS_NODE_NAME_MAX 64
#define MOS_ADDR_MAX 64
#define MOS_CONFIG_MAX_NODES 65536

struct mos_node_addr {
    char name[MOS_NODE_NAME_MAX];
    char addr[MOS_ADDR_MAX]; /* numeric IPv4 or IPv6 */
};

struct mos_config {
    char path[512];                 /* where it was read from; "" for built-in defaults */
    char key_file[512];             /* "" = no key file (one-node loopback cluster) */
    char transport[16];             /* auto | tcp | verbs */
    char socket_path[256];          /* mosd's local command socket */
    char state_dir[256];            /* where mosd keeps its job table (root's, 0700) */
    char guest_cgroup[256];         /* cgroup (v1 cpu or v2) guests are placed in; %n = node */
    char guest_memory_cgroup[256];  /* v1 memory cgroup guests are charged in; %n = node */
    char metrics_listen[80];        /* ADDR:PORT of mosd's Prometheus endpoint; "" = off */
    char live_mode[8];              /* off | pre: how mosd moves big jobs leaving home */
    int transport_port;
    int gossip_port;
    int gossip_interval_ms;
    int gossip_window;
    int dead_after_steps;           /* entry age at which a node is suspect (probed, then dead); 0: automatic */
    int balance_interval_ms;
    int min_residence_ms;           /* a guest stays at least this long before moving again */
    int stability_margin_pct;       /* cost reduction needed on top of migration cost */
    int balance;                    /* 1: mosd moves jobs by itself; 0: only on request */
    int balance_calls;              /* 1: the balancer weighs a job's measured calls home */
    int mem_low_pct;                /* free memory below this % of the node's: ushering */
    int migration_fixed_ms;         /* the site's measured migration cost: fixed part ... */
    int migration_per_page_ns;      /* ... and per 4 KiB page (mosbench migrate measures both) */
    int live_min_mib;               /* live_mode applies to jobs with this much resident memory */
    struct mos_node_addr *nodes;
    size_t n_nodes;
};

/* Fill cfg with the built-in defaults: one node "localhost" on 127.0.0.1, no key file. */
void mos_config_defaults(struct mos_config *cfg);
/* Read an INI file over the defaults. On error logs one line "PATH:LINE: what" and returns
 * MOS_E_CONFIG or -errno; cfg is then freed and left at the defaults. */
int mos_config_load(const char *path, struct mos_config *cfg);
/* Parse INI text held in memory (name is used in messages). */
int mos_config_parse(const char *text, const char *name, struct mos_config *cfg);
/* The path to use: explicit (if not NULL), else $MOS_CONF, else the default path; and whether
 * the default path may be absent (then the defaults apply). */
const char *mos_config_choose_path(const char *explicit_path, int *may_be_absent);
void mos_config_free(struct mos_config *cfg);

/* Index of the node whose address is one of this host's interface addresses, or
 * MOS_E_UNKNOWN_NODE. */
int mos_config_find_self(const struct mos_config *cfg);
/* Index of a node by name or address, or MOS_E_UNKNOWN_NODE. */
int mos_config_find_node(const struct mos_config *cfg, const char *name_or_addr);

/* Copy a setting's text with every "%n" replaced by node_name. 0, or -ENAMETOOLONG. */
int mos_config_expand_node(const char *text, const char *node_name, char *out, size_t len);

/* Write every setting with its default and doc string, as a commented INI file. */
void mos_config_describe(FILE *out);

#endif
