/* Placement: opportunity-cost assignment (Amir, Awerbuch, Barak, Borgstrom, Keren, TPDS 2000)
 * and the load balancer's decision function. Everything here is pure: no I/O, no clocks, so the
 * runtime, the simulator (mosbench placement) and the unit tests call the same code.
 *
 * Topology and NUMA placement are in mos/placement_topo.h, MPI rank mapping in
 * mos/placement_map.h. */
#ifndef MOS_PLACEMENT_H
#define MOS_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

/* A node's cost: the sum over its resources r of n^(u_r), with n the number of nodes in the
 * cluster and u_r the utilization of r, 1 = full. Negative values count as 0; values above 1
 * (overload, e.g. more runnable processes than the CPU capacity) keep growing the cost; past
 * u = 16 along the exponential's tangent (linearly), against overflow. */
double mos_placement_node_cost(unsigned n_nodes, const double *util, size_t n_resources);

/* The cost a job adds to a node: cost with the job's extra utilization added to each resource
 * minus the cost without it. */
double mos_placement_marginal_cost(unsigned n_nodes, const double *util, const double *extra,
                                   size_t n_resources);

/* ---- Node state: what the gossip vector says about a node ---------------------------------- */

enum mos_node_flag {
    MOS_NODE_ACCEPTING = 1u << 0, /* takes guests */
    MOS_NODE_BLOCKED = 1u << 1,   /* administratively closed to new guests */
    MOS_NODE_SELF = 1u << 2,      /* this entry is the deciding node itself */
    MOS_NODE_AGE_MS = 1u << 3,    /* age_ms holds the entry's age to the millisecond */
};

/* One node as the balancer sees it. The runtime fills these from gossip entries; the field set
 * mirrors what an entry carries. */
struct mos_node_state {
    uint32_t id;          /* caller's node index (config order); echoed in decisions */
    uint32_t ncpus;       /* online CPUs */
    double speed;         /* relative CPU speed, 1.0 = the cluster's reference CPU */
    double load;          /* runnable processes (guests and locals), like a load average */
    double util;          /* CPU utilization 0..1 as measured (informative; cost uses load) */
    uint64_t mem_free;    /* bytes */
    uint64_t mem_total;   /* bytes; 0 = unknown (memory is then not a resource) */
    uint32_t guests;      /* guests it hosts now */
    uint32_t flags;       /* enum mos_node_flag */
    uint32_t age;         /* gossip age of the entry, in time steps (0 for self) */
    uint32_t age_ms;      /* the same in ms, where known (MOS_NODE_AGE_MS) */
};

/* Resources the cost function counts, per node. */
enum mos_resource { MOS_RES_CPU = 0, MOS_RES_MEM, MOS_RES_COUNT };

/* Utilization the assignment uses, from a node state:
 *   CPU:    load / (ncpus * speed * cpu_cap), the TPDS 2000 "load over capacity" with the
 *           capacity of a related machine scaled by its speed; cpu_cap is the number of
 *           processes per (reference) CPU that counts as full, the "maximum CPU load" the paper
 *           has to guess (E-PVM); the cluster-wide setting below plays that role.
 *   memory: (mem_total - mem_free) / mem_total.
 * util[] must hold MOS_RES_COUNT values. */
void mos_placement_node_util(const struct mos_node_state *node, double cpu_cap, double *util);

/* What one job adds to a node's utilizations (same units as above). */
struct mos_job_demand {
    double cpu;         /* processes' worth of CPU demand, 1.0 = one busy process */
    uint64_t mem_bytes; /* resident memory */
};
void mos_placement_job_extra(const struct mos_node_state *node, double cpu_cap,
                             const struct mos_job_demand *job, double *extra);

/* The opportunity cost of running `job` on `node` in a cluster of n_nodes: the marginal cost
 * of its extra utilization. Returns HUGE_VAL when its memory does not fit in the node's free
 * memory (a job that would page is never cheaper). */
double mos_placement_job_cost(unsigned n_nodes, double cpu_cap, const struct mos_node_state *node,
                              const struct mos_job_demand *job);

/* Whether a node may take a job: accepting, not blocked, entry no older than max_age, with
 * CPUs and a speed. */
int mos_placement_node_usable(const struct mos_node_state *node, uint32_t max_age);

/* Index into nodes[] of the node where `job` costs least, among those that may take it
 * (accepting, not blocked, age <= max_age); -1 if none. Ties go to the lower index. */
int mos_placement_assign(unsigned n_nodes_cluster, double cpu_cap,
                         const struct mos_node_state *nodes, size_t n_nodes,
                         const struct mos_job_demand *job, uint32_t max_age);

/* ---- The balancer's decision ------------------------------------------------------------- */

enum mos_job_flag {
    MOS_JOB_LOCKED = 1u << 0, /* user or admin pinned it here (mosrun --lock) */
    MOS_JOB_CAME = 1u << 1,   /* it came lately from from_node: from_node, from_load are set */
    MOS_JOB_CALLS = 1u << 2,  /* its calls home were measured: home_node, call_wait are set */
};

/* A local job the balancer may move. */
struct mos_job_info {
    uint64_t id;          /* caller's job id; echoed in the decision */
    double age_s;         /* CPU-seconds it has run so far */
    double residence_s;   /* seconds since it arrived on (or started at) this node */
    uint64_t pages;       /* resident pages, what a migration copies */
    double cpu;           /* processes' worth of CPU it uses (1.0 = always runnable) */
    double remaining_s;   /* predicted remaining CPU-seconds; < 0: unknown, predicted from age */
    uint32_t flags;       /* enum mos_job_flag */
    uint32_t from_node;   /* with MOS_JOB_CAME: index of the node it came from */
    double from_load;     /* with MOS_JOB_CAME: that node's load once the job had left it */
    uint32_t home_node;   /* with MOS_JOB_CALLS: the node its files and sockets are at */
    double call_wait;     /* with MOS_JOB_CALLS: seconds it waited on calls forwarded home per
                             CPU-second it ran, measured while away from home */
};

/* The site's migration time model, from measurements (mosbench migrate). */
struct mos_migration_cost {
    double fixed_ms;    /* per migration: freeze, connect, restore setup */
    double per_page_us; /* per 4 KiB page: copy and fill */
};

/* Balancer settings. mos_balance_params_default() gives the documented defaults. */
struct mos_balance_params {
    double cpu_cap;            /* processes per reference CPU counted as full (1) */
    double stability_margin;   /* move only if the target's cost is below
                                  (1 - margin) x the job's cost here (0.2) */
    double min_residence_s;    /* a job stays at least this long where it lands (2 s) */
    double residence_per_migr; /* ... and at least this many times its migration time (10) */
    double gain_margin;        /* a move must save its migration time plus this share of the
                                  job's predicted time here (0.15) */
    double min_age_s;          /* jobs younger than this are not worth moving (1 s) */
    double benefit_factor;     /* predicted time saved must exceed this x migration time (2) */
    uint32_t dead_age;         /* entries older than this are presumed dead (gossip steps, 30) */
    double mem_low_frac;       /* free/total below this: memory ushering starts (0.05) */
};
void mos_balance_params_default(struct mos_balance_params *p);

/* The balancer's answer: move job jobs[job_index] to nodes[node_index], or nothing. */
struct mos_balance_decision {
    int job_index;   /* -1 = no migration */
    int node_index;  /* -1 = no migration */
    uint64_t job_id;
    uint32_t node_id;
    double gain_s;       /* predicted seconds saved (0 for ushering) */
    double migrate_s;    /* predicted migration time */
    int ushering;        /* 1: a move for memory, not for load (no gain to check at the target) */
    int for_calls;       /* 1: a guest sent home for what its calls home cost it (home's load
                            is no reason to refuse it) */
    char reason[160];    /* one line: why this move, or why none */
};

/* Predicted migration time in seconds of a job of `pages` pages under the model. */
double mos_migration_cost_seconds(const struct mos_migration_cost *model, uint64_t pages);

/* Predicted remaining CPU-seconds: remaining_s when known, else the job's age (for
 * heavy-tailed run times the expected remaining time grows with the time already run:
 * Harchol-Balter and Downey, TOCS 1997). */
double mos_job_predict_remaining(const struct mos_job_info *job);

/* How long a job must stay where it landed before it may move again: min_residence_s, or
 * residence_per_migr times its migration time if longer (MOSIX: a residence proportional to
 * the cost of getting there, so a dear job is not moved on by every fluctuation). */
double mos_balance_residence_s(const struct mos_balance_params *p,
                               const struct mos_migration_cost *model, uint64_t pages);

/* Whether a move pays: the predicted time there plus the migration beats the time here by
 * gain_margin of the time here (and saves more than benefit_factor x the migration). */
int mos_balance_move_pays(const struct mos_balance_params *p, double time_here, double time_there,
                          double migrate_s);

/* A move this node made or took lately. Gossip entries older than the move still count the job
 * at its source and not at its target, in both nodes' views: until newer news of each end
 * arrives, the move is counted there by hand. */
struct mos_balance_move {
    int from, to;   /* node indices; -1: unknown */
    double since_s; /* seconds since it landed; 0 while under way */
    double cpu;     /* the job's CPU demand */
};

/* Adds each recent move to nodes[].load, at each end other than self whose entry is older than
 * the move: + cpu at `to` if its entry may be older (age + 1 steps of step_s seconds reach back
 * to the move), - cpu at `from` (not below 0) only if its entry surely is (age steps do): in
 * doubt the job counts where it is going and where it was, so no one hurries to either. Where
 * an entry's age is known to the millisecond (MOS_NODE_AGE_MS), the doubt is
 * MOS_BALANCE_AGE_SLACK_S instead of a whole step: a step of a second kept a move counted twice
 * for up to two seconds, and the next moves waited that long.
 * A move under way has since_s = 0. nodes[self]'s load is the caller's own count. */
#define MOS_BALANCE_AGE_SLACK_S 0.1
void mos_balance_count_moves(struct mos_node_state *nodes, size_t n_nodes, size_t self,
                             double step_s, const struct mos_balance_move *moves, size_t n_moves);

/* The target's check of a move offered to it (nodes[self] = this node, its load current and with
 * the moves under way counted; `source` = the sending node with its load once the job has
 * left, as the sender says). The move is admitted only if the job still runs faster here by
 * gain_margin; and, if the job left this node within the last window (left_since_s >= 0, with
 * this node's load left_load right after it left), only if that load has fallen since.
 * Returns 1 to admit; 0 with a one-line reason in why. */
int mos_balance_admit(const struct mos_node_state *me, const struct mos_node_state *source,
                      double job_cpu, const struct mos_balance_params *p, double left_since_s,
                      double left_load, char *why, size_t why_len);

/* Seconds the job's calls home add to `remaining` CPU-seconds of it on node `node`: none at
 * home or without a measurement (MOS_JOB_CALLS), else remaining x call_wait. An MPI rank that
 * talks through sockets kept at home ran 17 times slower away (test_mpi_lab's hpcc): its CPU
 * gain elsewhere is no gain. */
double mos_job_calls_cost_s(const struct mos_job_info *job, size_t node, double remaining);

/* One balancing step on the node nodes[self]. Considers every local job and every other node;
 * picks the move with the largest gain, or none. Among targets of equal cost, the first after
 * self shifted by the job's id (so that senders seeing the same idle nodes spread over them). Memory ushering first: if this node's free
 * memory is below mem_low_frac of its total, the largest unlocked job goes to the live node
 * with the most free memory that can hold it. Never picks a blocked, non-accepting or
 * presumed-dead node, a locked job, a job within its residence time
 * (mos_balance_residence_s), a move that does not pay (mos_balance_move_pays), nor a move back
 * to the node a job came from (MOS_JOB_CAME) unless that node's load has fallen below from_load.
 * A job's times here and there include what its calls home cost (mos_job_calls_cost_s), so a
 * job whose calls cost more away than the CPU it would gain stays home, and a guest whose
 * calls cost more than home's crowding goes home even when home is not the cheaper node.
 * Returns 0 (decision filled, possibly "none"), or -EINVAL for bad arguments. */
int mos_balance_decide(const struct mos_node_state *nodes, size_t n_nodes, size_t self,
                       const struct mos_job_info *jobs, size_t n_jobs,
                       const struct mos_migration_cost *model,
                       const struct mos_balance_params *params,
                       struct mos_balance_decision *out);

#endif
