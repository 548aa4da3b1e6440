/* The balancer's view of the cluster: the gossip vector as placement's node states, this
 * node's own load from its job table, and the moves it made or took lately, counted at both
 * ends until gossip brings newer news of them (placement's mos_balance_count_moves). The
 * balancer decides on this view; a target checks a move offered to it on its own. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t nodes_fill(const struct mosd *d, struct mos_node_state *nodes)
{
    uint32_t now = mos_gossip_now_ms(), max_speed = 1;
    size_t n = mos_gossip_n_nodes(d->gossip);

    for (size_t i = 0; i < n; i++) {
        struct mos_gossip_node g;
        mos_gossip_node_get(d->gossip, now, i, &g);
        if (g.info.speed > max_speed)
            max_speed = g.info.speed;
    }
    for (size_t i = 0; i < n; i++) {
        struct mos_gossip_node g;
        struct mos_node_state *s = &nodes[i];
        mos_gossip_node_get(d->gossip, now, i, &g);
        memset(s, 0, sizeof(*s));
        s->id = (uint32_t)i;
        s->ncpus = g.info.ncpus;
        s->speed = (double)g.info.speed / max_speed;
        s->load = g.info.load_milli / 1000.0 * g.info.ncpus;
        s->util = g.info.util_permille / 1000.0;
        s->mem_free = (uint64_t)g.info.mem_free_mib << 20;
        s->mem_total = (uint64_t)g.info.mem_total_mib << 20;
        s->guests = g.info.guests;
        s->age = g.age_ms == MOS_GOSSIP_AGE_UNKNOWN
                     ? UINT32_MAX
                     : g.age_ms / (uint32_t)d->cfg.gossip_interval_ms;
        if (g.age_ms != MOS_GOSSIP_AGE_UNKNOWN) {
            s->age_ms = g.age_ms;
            s->flags |= MOS_NODE_AGE_MS;
        }
        if (g.state == MOS_GOSSIP_ALIVE && (g.info.flags & MOS_GOSSIP_F_ACCEPTING) &&
            !mosd_gossip_refusing(d, i, g.age_ms))
            s->flags |= MOS_NODE_ACCEPTING;
        if (g.info.flags & MOS_GOSSIP_F_BLOCKED)
            s->flags |= MOS_NODE_BLOCKED;
        if (i == mos_gossip_self(d->gossip)) {
            s->flags |= MOS_NODE_SELF;
            s->age = 0;
        }
    }
    return n;
}

/* The recent moves as the placement library takes them: since_s from when each landed, 0 for
 * one under way (it counts at its target whatever gossip says). An order unanswered for the
 * migration timeout has failed or will, and no longer counts. */
static size_t recent_moves(const struct mosd *d, struct mos_balance_move *out)
{
    uint64_t now = mos_clock_now_ns();
    size_t n = 0;

    for (size_t k = 0; k < MOSD_RECENT_MOVES; k++) {
        const struct mosd_move *m = &d->moves[k];
        uint64_t keep = m->landed ? MOSD_RECENT_MOVE_S * MOS_NSEC_PER_SEC
                                  : MOSD_MIGRATION_TIMEOUT_MS * MOS_NSEC_PER_MSEC;
        if (!m->at_ns || now - m->at_ns > keep)
            continue;
        out[n++] = (struct mos_balance_move){
            .from = m->from, .to = m->to, .cpu = m->cpu,
            .since_s = m->landed ? (double)(now - m->at_ns) / 1e9 : 0};
    }
    return n;
}

/* Our own load from our own table, not from our last gossip entry, which may predate moves
 * made since; moves still under way are load here no more (they count at their targets). */
static double own_load(const struct mosd *d)
{
    double load = 0;

    for (size_t i = 0; i < d->n_jobs; i++) {
        const struct mosd_job *j = &d->jobs[i];
        int here = j->supervisor || strcmp(j->where, d->cfg.nodes[d->self].name) == 0;
        if (here && !j->moving && j->move_reply_fd <= 0)
            load += 1;
    }
    return load;
}

/* Every node as the balancer sees it: gossip, our own count for us, and recent moves counted
 * at both their ends where gossip predates them. */
size_t mosd_view_fill(const struct mosd *d, struct mos_node_state *nodes)
{
    struct mos_balance_move moves[MOSD_RECENT_MOVES];
    size_t n = nodes_fill(d, nodes), self = mos_gossip_self(d->gossip);

    nodes[self].load = own_load(d);
    /* our memory as it is now, not as our last gossip step saw it: a job outgrowing the node
     * must go before the limit, and a step is long at the rate memory fills */
    uint64_t mem_total, mem_free;
    if (mosd_cgroup_memory(d, &mem_total, &mem_free) == 0 &&
        (nodes[self].mem_total == 0 || mem_total < nodes[self].mem_total)) {
        nodes[self].mem_total = mem_total;
        nodes[self].mem_free = mem_free;
    }
    mos_balance_count_moves(nodes, n, self, d->cfg.gossip_interval_ms / 1000.0, moves,
                            recent_moves(d, moves));
    return n;
}

static struct mosd_move *move_slot(struct mosd *d)
{
    return &d->moves[d->n_moves++ % MOSD_RECENT_MOVES];
}

void mosd_view_sent(struct mosd *d, const struct mosd_job *job, int node, double cpu,
                          double load_after)
{
    struct mosd_move *m = move_slot(d);

    *m = (struct mosd_move){.from = d->self, .to = node, .at_ns = mos_clock_now_ns(), .cpu = cpu,
                            .home_pid = job->home_pid, .load_after = load_after};
    snprintf(m->home, sizeof(m->home), "%s", job->supervisor ? job->home : d->cfg.nodes[d->self].name);
}

void mosd_view_moved_in(struct mosd *d, struct mosd_job *job, int from)
{
    struct mosd_move *m = move_slot(d);

    *m = (struct mosd_move){.from = from, .to = d->self, .at_ns = mos_clock_now_ns(), .cpu = 1.0,
                            .home_pid = job->home_pid, .landed = 1};
    snprintf(m->home, sizeof(m->home), "%s", job->home);
    job->came_from = from;
    job->came_load = 0;
    if (from < 0 || !d->gossip || (size_t)from >= mos_gossip_n_nodes(d->gossip))
        return;
    struct mos_node_state *nodes = calloc(mos_gossip_n_nodes(d->gossip), sizeof(*nodes));
    if (!nodes) {
        job->came_from = -1;
        return;
    }
    mosd_view_fill(d, nodes);
    job->came_load = nodes[from].load;
    free(nodes);
}

static const struct mosd_move *sent_of(const struct mosd *d, const char *home, pid_t home_pid)
{
    const struct mosd_move *found = NULL;

    for (size_t k = 0; k < MOSD_RECENT_MOVES; k++) {
        const struct mosd_move *m = &d->moves[k];
        if (m->at_ns && m->from == d->self && m->home_pid == home_pid &&
            strcmp(m->home, home) == 0 && (!found || m->at_ns > found->at_ns))
            found = m;
    }
    return found;
}

void mosd_view_move_landed(struct mosd *d, const struct mosd_job *job)
{
    const char *home = job->supervisor ? job->home : d->cfg.nodes[d->self].name;
    struct mosd_move *m = (struct mosd_move *)sent_of(d, home, job->home_pid);

    if (m && !m->landed) {
        m->landed = 1;
        m->at_ns = mos_clock_now_ns();
    }
}

void mosd_view_move_failed(struct mosd *d, const struct mosd_job *job)
{
    const char *home = job->supervisor ? job->home : d->cfg.nodes[d->self].name;
    struct mosd_move *m = (struct mosd_move *)sent_of(d, home, job->home_pid);

    if (m)
        m->at_ns = 0; /* it never left: nothing to count anywhere */
}

void mosd_view_admission(const struct mosd *d, const struct mosd_guest_header *h, int from,
                            char *why, size_t len)
{
    size_t n = d->gossip ? mos_gossip_n_nodes(d->gossip) : 0;
    struct mos_node_state *nodes = n ? calloc(n, sizeof(*nodes)) : NULL;
    struct mos_balance_params params;

    why[0] = '\0';
    if (!nodes)
        return; /* no view to judge by (one node, or no memory): the sender's word stands */
    mos_balance_params_default(&params);
    /* the sender chose with the full margin on a view a little older than ours: the move
     * still pays if it does by half of it here */
    params.gain_margin = d->cfg.stability_margin_pct / 200.0;
    mosd_view_fill(d, nodes);
    size_t self = mos_gossip_self(d->gossip);
    struct mos_node_state source = nodes[from >= 0 && (size_t)from < n ? (size_t)from : self];
    source.load = h->max_load * (source.ncpus ? source.ncpus : 1);
    const struct mosd_move *left = sent_of(d, h->home, h->home_pid);
    uint64_t now = mos_clock_now_ns();
    double left_since = left && now - left->at_ns < MOSD_RECENT_MOVE_S * MOS_NSEC_PER_SEC
                            ? (double)(now - left->at_ns) / 1e9
                            : -1;
    mos_balance_admit(&nodes[self], &source, 1.0, &params, left_since,
                      left_since >= 0 ? left->load_after : 0, why, len);
    free(nodes);
}

