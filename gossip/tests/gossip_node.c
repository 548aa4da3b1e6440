/* gossip_node: a test driver that runs the gossip library with real UDP from MOS_CONF (one per
 * lab node) and writes its vector and counters to a file after every step; or, with
 * --send-junk, sends one datagram of each malformed kind to a node and exits.
 *
 *   gossip_node [--conf F] [--key F] [--interval-ms N] [--window W] [--dead-after STEPS]
 *               [--loss P] [--out FILE] [--run-ms N]
 *   gossip_node [--conf F] --send-junk NODE
 *
 * SIGTERM or SIGINT: announce leaving, then exit 0. SIGKILL is the crash. */
#include "gossip_wire.h" /* --send-junk forges datagrams */
#include "mos/config.h"
#include "mos/gossip.h"
#include "mos/gossip_probe.h"
#include "mos/key.h"
#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct opts {
    const char *conf, *key_file, *out, *junk_node;
    int interval_ms, window, dead_after, run_ms;
    double loss;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto bad;
        if (strcmp(a, "--conf") == 0)
            o->conf = v;
        else if (strcmp(a, "--key") == 0)
            o->key_file = v;
        else if (strcmp(a, "--out") == 0)
            o->out = v;
        else if (strcmp(a, "--send-junk") == 0)
            o->junk_node = v;
        else if (strcmp(a, "--interval-ms") == 0)
            o->interval_ms = atoi(v);
        else if (strcmp(a, "--window") == 0)
            o->window = atoi(v);
        else if (strcmp(a, "--dead-after") == 0)
            o->dead_after = atoi(v);
        else if (strcmp(a, "--run-ms") == 0)
            o->run_ms = atoi(v);
        else if (strcmp(a, "--loss") == 0)
            o->loss = atof(v);
        else
            goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "gossip_node: bad argument '%s' (see the comment at the top of gossip_node.c)\n",
            argv[argc - 1]);
    return -1;
}

static void write_vector(struct mos_gossip *g, const char *path)
{
    char tmp[600];
    struct mos_gossip_stats st;
    uint32_t now = mos_gossip_now_ms();
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return;
    mos_gossip_stats_get(g, &st);
    fprintf(f, "step %llu\n", (unsigned long long)st.steps);
    for (size_t i = 0; i < mos_gossip_n_nodes(g); i++) {
        struct mos_gossip_node n;
        mos_gossip_node_get(g, now, i, &n);
        fprintf(f, "node %s %s %lld ncpus=%u speed=%u load=%u util=%u mem=%u/%u numa=%u%s\n",
                n.name, mos_gossip_state_name(n.state),
                n.age_ms == MOS_GOSSIP_AGE_UNKNOWN ? -1LL : (long long)n.age_ms, n.info.ncpus,
                n.info.speed, n.info.load_milli, n.info.util_permille, n.info.mem_free_mib,
                n.info.mem_total_mib, n.info.numa_nodes, i == mos_gossip_self(g) ? " self" : "");
    }
    for (int r = 0; r < MOS_GOSSIP_DROP_REASONS; r++)
        fprintf(f, "drop %s %llu\n", mos_gossip_drop_name((enum mos_gossip_drop)r),
                (unsigned long long)st.dropped[r]);
    fprintf(f, "stat sent %llu received %llu accepted %llu presumed_dead %llu returned %llu "
               "left %llu suspected %llu refuted %llu probes %llu probe_acks %llu steps %llu "
               "bytes_sent %llu notices_sent %llu notices_taken %llu notices_ignored %llu end\n",
            (unsigned long long)st.sent, (unsigned long long)st.received,
            (unsigned long long)st.accepted, (unsigned long long)st.presumed_dead,
            (unsigned long long)st.returned, (unsigned long long)st.left,
            (unsigned long long)st.suspected, (unsigned long long)st.refuted,
            (unsigned long long)st.probes, (unsigned long long)st.probe_acks,
            (unsigned long long)st.steps, (unsigned long long)st.bytes_sent,
            (unsigned long long)st.notices_sent, (unsigned long long)st.notices_taken,
            (unsigned long long)st.notices_ignored);
    fclose(f);
    rename(tmp, path);
}

/* --- malformed datagrams ---------------------------------------------------------------- */

static void mac_again(const mos_key_t *key, uint8_t *buf, size_t len)
{
    struct mos_mac_part part = {.data = buf, .len = len - MOS_MAC_BYTES};

    mos_key_mac(key, &part, 1, buf + len - MOS_MAC_BYTES);
}

/* A well-formed one-entry datagram claiming to come from addr (text). */
static int junk_base(const mos_key_t *key, const char *addr, uint8_t *buf, size_t cap)
{
    struct mos_gossip_wire_entry e = {.info = {.ncpus = 1, .mem_total_mib = 1}};
    struct mos_gossip_wire_header h = {.n_entries = 1, .boot_id = 0x6a756e6b, .seq = 1};
    struct in_addr a4;

    if (inet_pton(AF_INET, addr, &a4) != 1)
        return -1;
    e.info.addr[10] = e.info.addr[11] = 0xff;
    memcpy(e.info.addr + 12, &a4, 4);
    return mos_gossip_wire_encode(key, &h, &e, 1, buf, cap);
}

/* One datagram per drop reason a peer can cause: short, magic, version, mac, format, entry,
 * unknown, and replay (the same valid datagram twice: the second is the replay). */
static int send_junk(const struct mos_config *cfg, const mos_key_t *key, const char *node)
{
    static uint8_t buf[MOS_GOSSIP_MAX_DATAGRAM];
    int idx = mos_config_find_node(cfg, node), self = mos_config_find_self(cfg), fd, sent = 0;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->gossip_port)};
    mos_key_t wrong;
    int len;

    if (idx < 0 || self < 0 || inet_pton(AF_INET, cfg->nodes[idx].addr, &to.sin_addr) != 1) {
        fprintf(stderr, "gossip_node: --send-junk needs an IPv4 node of the config, run on a node\n");
        return 2;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1;
#define SEND(b, l) (sent += sendto(fd, (b), (size_t)(l), 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)(l))
    const char *me = cfg->nodes[self].addr;
    SEND("MOSGshort", 9);
    memset(buf, 'x', 200);
    SEND(buf, 200);
    len = junk_base(key, me, buf, sizeof(buf));
    mos_put_le16(buf + 4, 9); /* version */
    SEND(buf, len);
    mos_random_bytes(&wrong, sizeof(wrong));
    len = junk_base(&wrong, me, buf, sizeof(buf));
    SEND(buf, len);
    len = junk_base(key, me, buf, sizeof(buf));
    mos_put_le16(buf + 14, 2); /* two entries claimed, one present: MAC right, count wrong */
    mac_again(key, buf, (size_t)len);
    SEND(buf, len);
    len = junk_base(key, me, buf, sizeof(buf));
    mos_put_le16(buf + MOS_GOSSIP_HEADER_BYTES + 36, 10000); /* utilization 10,000 permille */
    mac_again(key, buf, (size_t)len);
    SEND(buf, len);
    len = junk_base(key, "10.99.99.99", buf, sizeof(buf));
    SEND(buf, len);
    len = junk_base(key, me, buf, sizeof(buf));
    SEND(buf, len);
    SEND(buf, len);
#undef SEND
    close(fd);
    printf("sent %d malformed datagrams to %s\n", sent, cfg->nodes[idx].name);
    return sent == 9 ? 0 : 1;
}

/* --- main ---------------------------------------------------------------------------------- */

static void refresh_own(void *arg, struct mos_gossip_info *own)
{
    mos_gossip_probe_sample(arg, 0, own);
    own->flags |= MOS_GOSSIP_F_ACCEPTING;
    own->transports = MOS_GOSSIP_T_TCP;
}

static int serve(struct mos_gossip *g, const struct opts *o)
{
    uint64_t last_step = (uint64_t)-1;
    uint32_t start = mos_gossip_now_ms();
    int rc;

    if ((rc = mos_gossip_open(g)) != 0)
        return 1;
    while (!stop && (o->run_ms <= 0 || (int32_t)(mos_gossip_now_ms() - start) < o->run_ms)) {
        struct mos_gossip_stats st;
        rc = mos_gossip_run(g, 20);
        if (rc != 0 && rc != -EINTR)
            return 1;
        mos_gossip_stats_get(g, &st);
        if (o->out && st.steps != last_step) {
            write_vector(g, o->out);
            last_step = st.steps;
        }
    }
    if (stop)
        mos_gossip_leave(g, 0);
    if (o->out)
        write_vector(g, o->out);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct mos_config cfg;
    struct mos_gossip *g = NULL;
    struct mos_gossip_probe *probe = NULL;
    mos_key_t key;
    int may_be_absent, self, rc = 1;

    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if (mos_config_load(mos_config_choose_path(o.conf, &may_be_absent), &cfg) != 0)
        return 2;
    if (o.interval_ms > 0)
        cfg.gossip_interval_ms = o.interval_ms;
    if (o.window > 0)
        cfg.gossip_window = o.window;
    if (o.dead_after > 0)
        cfg.dead_after_steps = o.dead_after;
    if (mos_key_load(o.key_file ? o.key_file : cfg.key_file, &key) != 0)
        goto out;
    if (o.junk_node) {
        rc = send_junk(&cfg, &key, o.junk_node);
        goto out;
    }
    self = mos_config_find_self(&cfg);
    if (self < 0) {
        fprintf(stderr, "gossip_node: no configured node has an address of this host\n");
        goto out;
    }
    if (mos_gossip_probe_create("/proc", (unsigned)cfg.gossip_interval_ms, &probe) != 0)
        goto out;
    struct mos_gossip_params p = {.cfg = &cfg, .self = self, .key = &key,
                                  .refresh = refresh_own, .refresh_arg = probe};
    if (mos_gossip_create(&p, &g) != 0)
        goto out;
    mos_gossip_set_test_loss(g, o.loss);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    rc = serve(g, &o);
out:
    mos_gossip_probe_destroy(probe);
    mos_gossip_destroy(g);
    mos_config_free(&cfg);
    return rc;
}
