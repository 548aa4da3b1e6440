/* mosd: the node daemon. It owns this node's part of the cluster: the command socket for the
 * users' commands, the job table, gossip, and accepting and sending migrations. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <getopt.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mosd [--config FILE] [--daemon]\n"
                 "       mosd [--config FILE] --check-config\n"
                 "       mosd --help-config\n"
                 "  --config FILE   cluster config (default $MOS_CONF, then %s)\n"
                 "  --daemon        detach and log to syslog (the journal)\n"
                 "  --check-config  load the config and key, find this node, report, exit\n"
                 "  --help-config   print every setting with its default and meaning\n",
                 MOS_CONFIG_DEFAULT_PATH);
}

static void syslog_sink(enum mos_log_level level, const char *component, const char *text,
                        void *arg)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

    (void)arg;
    syslog(prio[level], "%s: %s", component, text);
}

static int node_load(struct mosd *d, const char *config)
{
    int rc = mos_runtime_config(config, &d->cfg, &d->self);

    if (rc != 0)
        return rc;
    if (d->cfg.key_file[0]) {
        rc = mos_key_load(d->cfg.key_file, &d->key);
        if (rc != 0) {
            mos_config_free(&d->cfg);
            return rc;
        }
        d->have_key = 1;
    }
    if (d->cfg.metrics_listen[0]) {
        char addr[64], why[200];
        int port;
        rc = mosd_metrics_parse_listen(d->cfg.metrics_listen, addr, sizeof(addr), &port, why,
                                       sizeof(why));
        if (rc != 0) {
            mos_err("mosd", "%s: %s", d->cfg.path[0] ? d->cfg.path : "config", why);
            mos_config_free(&d->cfg);
            return rc;
        }
    }
    return 0;
}

static int check_config(const char *config)
{
    struct mosd d = {0};

    if (node_load(&d, config) != 0)
        return 1;
    printf("node %s %s of %zu in %s, key %s\n", d.cfg.nodes[d.self].name,
           d.cfg.nodes[d.self].addr, d.cfg.n_nodes, d.cfg.path,
           d.cfg.key_file[0] ? d.cfg.key_file : "none (one-node mode: no port, no gossip)");
    mos_config_free(&d.cfg);
    return 0;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    struct mosd *d = arg;

    struct timeval deadline = {30, 0};

    (void)what;
    if (d->stopping) {
        mos_info("mosd", "signal %d again: stopping now", (int)sig);
        event_base_loopexit(d->base, NULL);
        return;
    }
    mos_info("mosd", "signal %d: shutting down", (int)sig);
    d->stopping = 1;
    if (d->tp_event)
        event_del(d->tp_event); /* no new guests */
    if (mosd_peer_send_guests_home(d) == 0)
        event_base_loopexit(d->base, NULL);
    else
        event_base_loopexit(d->base, &deadline);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what, (void)arg;
    mos_info("mosd", "SIGHUP: configuration is read at start; restart mosd to apply changes");
}

static int run(const char *config, int daemonize)
{
    struct mosd d = {0};
    int rc;

    if (node_load(&d, config) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    /* mosd and its helpers (workers, supervisors) run ahead of the jobs they serve: a node
     * busy with jobs must still move them and answer their calls promptly. Guests get the
     * ordinary priority back in the husk. */
    if (setpriority(PRIO_PROCESS, 0, -10) != 0)
        mos_dbg("mosd", "cannot raise its priority: %s", strerror(errno));
    d.started_ns = mos_clock_now_ns();
    if (d.cfg.guest_cgroup[0]) {
        mos_config_expand_node(d.cfg.guest_cgroup, d.cfg.nodes[d.self].name, d.guest_cgroup,
                               sizeof(d.guest_cgroup));
        snprintf(d.guest_cgroup_procs, sizeof(d.guest_cgroup_procs), "%s/cgroup.procs",
                 d.guest_cgroup);
        if (access(d.guest_cgroup_procs, W_OK) != 0) {
            mos_err("mosd", "guest_cgroup %s: %s", d.guest_cgroup, strerror(errno));
            rc = 1;
            goto out;
        }
    }
    if (d.cfg.guest_memory_cgroup[0]) {
        mos_config_expand_node(d.cfg.guest_memory_cgroup, d.cfg.nodes[d.self].name,
                               d.guest_memcg, sizeof(d.guest_memcg));
        snprintf(d.guest_memcg_procs, sizeof(d.guest_memcg_procs), "%s/cgroup.procs",
                 d.guest_memcg);
        if (access(d.guest_memcg_procs, W_OK) != 0) {
            mos_err("mosd", "guest_memory_cgroup %s: %s", d.guest_memcg, strerror(errno));
            rc = 1;
            goto out;
        }
    }
    d.base = event_base_new();
    /* The command socket last: once it answers, the node takes migrations and gossips (tests
     * and scripts wait for the socket, nothing else). */
    if (!d.base || mosd_control_claim(&d) != 0) {
        rc = 1;
        goto out;
    }
    /* the jobs an earlier mosd left, before the port (adopted guests' lines are taken there)
     * and the command socket (their mosruns reconnect there) */
    if (mosd_state_open(&d) == 0)
        mosd_state_load(&d);
    if (mosd_peer_start(&d) != 0 || mosd_gossip_start(&d) != 0 ||
        mosd_metrics_start(&d) != 0 || mosd_balance_start(&d) != 0 || mosd_control_start(&d) != 0) {
        rc = 1;
        goto out;
    }
    if (daemonize) {
        openlog("mosd", LOG_PID, LOG_DAEMON);
        mos_log_set_sink(syslog_sink, NULL);
        if (daemon(0, 0) != 0) {
            mos_err("mosd", "cannot detach: %s", mos_strerror(mos_errno_status()));
            rc = 1;
            goto out;
        }
    }
    d.signals[0] = evsignal_new(d.base, SIGTERM, on_stop_signal, &d);
    d.signals[1] = evsignal_new(d.base, SIGINT, on_stop_signal, &d);
    d.signals[2] = evsignal_new(d.base, SIGHUP, on_hup, &d);
    for (int i = 0; i < 3; i++)
        event_add(d.signals[i], NULL);
    mos_info("mosd", "node %s (%s) up: %zu nodes, commands on %s", d.cfg.nodes[d.self].name,
             d.cfg.nodes[d.self].addr, d.cfg.n_nodes, d.socket_path);
    event_base_dispatch(d.base);
    rc = 0;
out:
    mosd_balance_stop(&d);
    mosd_metrics_stop(&d);
    mosd_gossip_stop(&d);
    mosd_peer_stop(&d);
    mosd_control_stop(&d);
    for (int i = 0; i < 3; i++)
        if (d.signals[i])
            event_free(d.signals[i]);
    if (d.base)
        event_base_free(d.base);
    free(d.jobs);
    mos_config_free(&d.cfg);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"help-config", no_argument, NULL, 'H'},
        {"daemon", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *config = NULL;
    int check = 0, daemonize = 0, c;

    opterr = 0; /* one line of our own for a bad option, not getopt's plus the usage */
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'k': check = 1; break;
        case 'd': daemonize = 1; break;
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
    return check ? check_config(config) : run(config, daemonize);
}
