/* mosd's gossip: this node's entry (from the probe, its guests and its flags) goes out every
 * step; the vector that comes back is what mosmon shows and the balancer decides from.
 *
 * The lab caps each node's CPU with a cgroup while /proc shows the whole machine, so where
 * mosd itself runs under a CPU quota, the node offers that quota (rounded up) as its CPUs and
 * its load counts the mos processes running here rather than the machine's run queue; where a
 * memory cgroup caps the guests below the machine's memory, its limit is the memory offered. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/gossip_probe.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A v1 cpu cgroup's quota in CPUs (cfs_quota_us / cfs_period_us), 0 if unlimited or absent;
 * for v2, cpu.max. */
static double cgroup_dir_quota(const char *dir)
{
    char path[600];
    long long q = -1, per = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
    if ((f = fopen(path, "re"))) {
        if (fscanf(f, "%lld", &q) != 1)
            q = -1;
        fclose(f);
        snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
        if ((f = fopen(path, "re"))) {
            if (fscanf(f, "%lld", &per) != 1)
                per = 0;
            fclose(f);
        }
    } else {
        snprintf(path, sizeof(path), "%s/cpu.max", dir);
        if ((f = fopen(path, "re"))) {
            if (fscanf(f, "%lld %lld", &q, &per) != 2)
                q = -1;
            fclose(f);
        }
    }
    return q > 0 && per > 0 ? (double)q / (double)per : 0;
}

/* The CPUs this node offers when less than the machine: MOS_NODE_CPUS, else the quota of the
 * guests' cgroup, else 0 (the probe's count stands). */
static double node_cpu_quota(const struct mosd *d)
{
    const char *env = getenv("MOS_NODE_CPUS");

    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (*end == '\0' && v > 0 && v < 100000)
            return v;
        mos_warn("mosd", "MOS_NODE_CPUS='%s' is not a CPU count; ignored", env);
    }
    return d->guest_cgroup[0] ? cgroup_dir_quota(d->guest_cgroup) : 0;
}

static unsigned local_runners(const struct mosd *d)
{
    unsigned n = 0;
    const char *self = d->cfg.nodes[d->self].name;

    for (size_t i = 0; i < d->n_jobs; i++)
        n += d->jobs[i].supervisor ? 1 : strcmp(d->jobs[i].where, self) == 0;
    return n;
}

static void refresh_own(void *arg, struct mos_gossip_info *own)
{
    struct mosd *d = arg;
    unsigned guests = (unsigned)mosd_jobs_guests(d);

    if (d->probe)
        mos_gossip_probe_sample(d->probe, (uint16_t)guests, own);
    own->guests = (uint16_t)guests;
    own->flags = d->stopping ? MOS_GOSSIP_F_LEAVING
                             : (d->blocked ? MOS_GOSSIP_F_BLOCKED : MOS_GOSSIP_F_ACCEPTING);
    own->transports = MOS_GOSSIP_T_TCP;
    if (d->speed_override)
        own->speed = d->speed_override;
    uint64_t mem_total, mem_free;
    if (mosd_cgroup_memory(d, &mem_total, &mem_free) == 0 &&
        (own->mem_total_mib == 0 || (mem_total >> 20) < own->mem_total_mib)) {
        own->mem_total_mib = (uint32_t)(mem_total >> 20);
        own->mem_free_mib = (uint32_t)(mem_free >> 20);
    }
    if (d->cpu_quota > 0) {
        own->ncpus = (uint16_t)ceil(d->cpu_quota);
        double per_cpu = (double)local_runners(d) / own->ncpus;
        /* speed of one offered CPU: the quota's share of the machine's CPU */
        own->speed = (uint32_t)((double)own->speed * d->cpu_quota / own->ncpus);
        own->load_milli = (uint32_t)(per_cpu * 1000.0);
        own->util_permille = (uint16_t)(per_cpu > 1 ? 1000 : per_cpu * 1000);
    }
}

static void schedule(struct mosd *d)
{
    int ms = mos_gossip_next_timeout_ms(d->gossip);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(d->gossip_timer, &tv);
}

static void on_gossip_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;

    (void)fd, (void)what;
    mos_gossip_on_timer(d->gossip);
    schedule(d);
}

static void on_gossip_readable(evutil_socket_t fd, short what, void *arg)
{
    struct mosd *d = arg;

    (void)fd, (void)what;
    mos_gossip_on_readable(d->gossip);
}

int mosd_gossip_start(struct mosd *d)
{
    struct mos_gossip_params p = {.cfg = &d->cfg, .self = d->self,
                                  .key = &d->key,
                                  .refresh = refresh_own, .refresh_arg = d};
    int rc;

    d->cpu_quota = node_cpu_quota(d);
    if (d->cfg.n_nodes < 2 || !d->have_key)
        return 0; /* nobody to gossip with; without a key, nobody to trust (peer.c says so) */
    if (d->cfg.dead_after_steps == 0) /* automatic: the age tail of this N and window */
        d->cfg.dead_after_steps = (int)mos_gossip_auto_limit_steps(
            (unsigned)d->cfg.n_nodes, (unsigned)d->cfg.gossip_window);
    d->refused_ns = calloc(d->cfg.n_nodes, sizeof(*d->refused_ns));
    if (!d->refused_ns)
        return -ENOMEM;
    if (mos_gossip_probe_create("/proc", (unsigned)d->cfg.gossip_interval_ms, &d->probe) != 0)
        d->probe = NULL; /* the entry still carries flags, guests and the quota */
    rc = mos_gossip_create(&p, &d->gossip);
    if (rc == 0)
        rc = mos_gossip_open(d->gossip);
    if (rc != 0) {
        mos_err("mosd", "gossip cannot start: %s", mos_strerror(rc));
        return rc;
    }
    d->gossip_ev = event_new(d->base, mos_gossip_fd(d->gossip), EV_READ | EV_PERSIST,
                             on_gossip_readable, d);
    d->gossip_timer = evtimer_new(d->base, on_gossip_timer, d);
    event_add(d->gossip_ev, NULL);
    schedule(d);
    if (d->cpu_quota > 0)
        mos_info("mosd", "this node offers its cgroup's CPU quota: %.2f CPU", d->cpu_quota);
    return 0;
}

void mosd_gossip_stop(struct mosd *d)
{
    if (d->gossip) {
        if (d->stopping)
            mos_gossip_leave(d->gossip, 3);
        mos_gossip_destroy(d->gossip);
    }
    if (d->gossip_ev)
        event_free(d->gossip_ev);
    if (d->gossip_timer)
        event_free(d->gossip_timer);
    if (d->probe)
        mos_gossip_probe_destroy(d->probe);
    free(d->refused_ns);
    d->refused_ns = NULL;
    d->gossip = NULL;
    d->gossip_ev = d->gossip_timer = NULL;
    d->probe = NULL;
}

struct json_object *mosd_gossip_json(const struct mosd *d)
{
    struct json_object *nodes = json_object_new_array();
    uint32_t now = mos_gossip_now_ms();

    for (size_t i = 0; d->gossip && i < mos_gossip_n_nodes(d->gossip); i++) {
        struct mos_gossip_node n;
        struct json_object *o = json_object_new_object();
        mos_gossip_node_get(d->gossip, now, i, &n);
        json_object_object_add(o, "name", json_object_new_string(n.name));
        json_object_object_add(o, "addr", json_object_new_string(n.addr));
        json_object_object_add(o, "state", json_object_new_string(mos_gossip_state_name(n.state)));
        json_object_object_add(o, "self", json_object_new_boolean(i == mos_gossip_self(d->gossip)));
        json_object_object_add(o, "age_ms", n.age_ms == MOS_GOSSIP_AGE_UNKNOWN
                                                ? NULL
                                                : json_object_new_int64(n.age_ms));
        json_object_object_add(o, "ncpus", json_object_new_int(n.info.ncpus));
        json_object_object_add(o, "speed", json_object_new_int64(n.info.speed));
        json_object_object_add(o, "load", json_object_new_double(n.info.load_milli / 1000.0));
        json_object_object_add(o, "util", json_object_new_double(n.info.util_permille / 1000.0));
        json_object_object_add(o, "mem_total_mib", json_object_new_int64(n.info.mem_total_mib));
        json_object_object_add(o, "mem_free_mib", json_object_new_int64(n.info.mem_free_mib));
        json_object_object_add(o, "guests", json_object_new_int(n.info.guests));
        json_object_object_add(o, "accepting",
                               json_object_new_boolean(n.info.flags & MOS_GOSSIP_F_ACCEPTING));
        json_object_object_add(o, "blocked",
                               json_object_new_boolean(n.info.flags & MOS_GOSSIP_F_BLOCKED));
        json_object_array_add(nodes, o);
    }
    return nodes;
}

double mosd_local_cpus(const struct mosd *d)
{
    double ncpus = d->cpu_quota > 0 ? ceil(d->cpu_quota) : (double)sysconf(_SC_NPROCESSORS_ONLN);

    return ncpus > 0 ? ncpus : 1;
}

void mosd_gossip_refused(struct mosd *d, const char *name)
{
    int node = mos_config_find_node(&d->cfg, name);

    if (d->refused_ns && node >= 0)
        d->refused_ns[node] = mos_clock_now_ns();
}

int mosd_gossip_refusing(const struct mosd *d, size_t i, uint32_t news_age_ms)
{
    if (!d->refused_ns || i >= d->cfg.n_nodes || !d->refused_ns[i])
        return 0;
    if (news_age_ms == MOS_GOSSIP_AGE_UNKNOWN)
        return 1;
    uint64_t now = mos_clock_now_ns(), news_ns = (uint64_t)news_age_ms * MOS_NSEC_PER_MSEC;
    return now - d->refused_ns[i] < news_ns;
}

double mosd_local_load(const struct mosd *d)
{
    return (double)local_runners(d) / mosd_local_cpus(d);
}
