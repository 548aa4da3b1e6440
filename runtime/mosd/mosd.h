/* mosd's state, shared by its source files (private to the daemon). */
#ifndef MOSD_H
#define MOSD_H

#include "control.h"
#include "mos/config.h"
#include "mos/gossip.h"
#include "mos/key.h"
#include "mos/transport.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>
#include <stdint.h>
#include <sys/types.h>

/* A job started at this node (by mosrun) or running here as a guest. */
struct mosd_job {
    int id;
    pid_t pid;               /* local pid (at home: the native process) */
    pid_t home_pid;          /* pid at its home node, what getpid() returns */
    uid_t uid;
    gid_t gid;
    char cmd[256];
    char home[MOS_NODE_NAME_MAX];  /* FROM */
    char where[MOS_NODE_NAME_MAX]; /* WHERE it runs now */
    char stay[128];          /* why it may not migrate, "" if it may */
    int locked;              /* mosrun -L: never moved automatically */
    int native;              /* mosrun -E: a native process on `where`, mosrun at home */
    uint64_t started_ns;
    uint64_t arrived_ns;     /* when it arrived where it runs now; 0: never moved */
    uint64_t seen_ns;        /* the balancer's last look at its CPU time */
    double seen_cpu_s;
    double demand;           /* share of samples it was runnable in: the CPU it wants */
    struct bufferevent *owner; /* mosrun's registration connection (home jobs) */
    pid_t owner_pid;           /* that mosrun, the job's parent */
    int owner_fd_min;          /* mosrun's own descriptors start here (0: unknown) */
    /* a migration out of this node, while it runs */
    int moving;
    int checkpointing;             /* mosmigrate PID checkpoint, answered by its mosrun */
    char target[MOS_NODE_NAME_MAX];
    uint8_t token[32];
    double max_load;               /* balancer moves: the target refuses above this load */
    struct bufferevent *requester; /* who asked (mosmigrate), to answer when it is done */
    struct event *worker_ev;       /* the worker's report pipe */
    int worker_fd;
    char worker_text[256];
    size_t worker_len;
    /* a guest: the supervisor process serving it here, and its control socket */
    pid_t supervisor;
    int sup_ctl;
    struct event *sup_ev;
    int move_reply_fd;             /* an acceptor waiting for the outcome of a move, or 0 */
};

struct mosd {
    struct event_base *base;
    struct mos_config cfg;
    int self;
    mos_key_t key;
    int have_key;
    char socket_path[108];
    char guest_cgroup[300];        /* the config's, %n expanded; "" for none */
    char guest_cgroup_procs[320];
    struct evconnlistener *listener;
    struct event *signals[3];
    struct mos_tp_opts tp_opts;
    void *tp_listener;             /* mos_tp_listener_t */
    struct event *tp_event;
    pid_t acceptor;                /* the child taking an incoming connection, if any */
    struct event *acceptor_ev;
    int acceptor_fd;
    struct event *sigchld;
    struct mosd_job *jobs;
    size_t n_jobs, cap_jobs;
    int next_job_id;
    uint64_t started_ns;
    int stopping;
    int blocked;                   /* mosctl block: no new guests */
    uint32_t speed_override;       /* mosctl setspeed: announced speed, 0 = measured */
    struct mos_gossip *gossip;
    struct mos_gossip_probe *probe;
    struct event *gossip_ev, *gossip_timer;
    double cpu_quota;              /* our cgroup's CPU cap, 0 if none */
    struct event *balance_ev;
    /* moves this node made lately, counted on their targets until gossip catches up */
    struct mosd_sent {
        int node;
        uint64_t at_ns;
        double cpu;
    } sent[64];
    unsigned n_sent;
};

/* mosd_control.c: the command socket */
int mosd_control_start(struct mosd *d);
void mosd_control_stop(struct mosd *d);
/* In a child forked from mosd (a migration worker, an acceptor that becomes a supervisor):
 * close what belongs to the daemon, so that a long-lived child neither keeps mosd's sockets
 * bound after it exits nor holds its clients' connections open. */
void mosd_control_close_in_child(struct mosd *d, int keep_fd);

/* mosd_migrate.c: moving jobs between nodes */
int mosd_migrate_start(struct mosd *d);
void mosd_migrate_stop(struct mosd *d);
/* Guests on this node; ask them all to go home (returns how many were asked). */
size_t mosd_migrate_guests(const struct mosd *d);
int mosd_migrate_send_guests_home(struct mosd *d);
/* Ask for every own job that runs away to come home (returns how many). */
int mosd_migrate_bring_home(struct mosd *d);
/* A "migrate" request from a command; the reply is sent now (refusal) or when it is done. */
struct json_object *mosd_migrate_request(struct mosd *d, struct bufferevent *requester,
                                         uid_t uid, struct json_object *req);
/* mosrun's answer to "prepare". */
void mosd_migrate_owner_reply(struct mosd *d, struct mosd_job *job, struct json_object *msg);
/* A command connection closed: forget it as a requester. */
void mosd_migrate_forget_requester(struct mosd *d, struct bufferevent *bev);
/* {"ok": false, "error": TEXT}: a refusal, to send back. */
struct json_object *mosd_reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Send one JSON line on a bufferevent. */
void mosd_send(struct bufferevent *bev, struct json_object *msg);

/* A worker's clean-up in a child forked from mosd: every descriptor of the daemon's. */
void mosd_migrate_close_in_child(struct mosd *d, int keep_fd);

/* mosd_exec.c: mosrun -E. At home, mosrun's "exec_remote" request (the user is cred; the
 * reply comes now for a refusal, else once the target has answered). On the target, an
 * acceptor's "exec" request: answer, then relay the program until it ends (never returns). */
struct ucred;
struct json_object *mosd_exec_request(struct mosd *d, struct bufferevent *bev,
                                      const struct ucred *cred, struct json_object *req);
void mosd_exec_accept(struct mosd *d, mos_tp_conn_t *c, uint32_t id, struct json_object *o,
                      int ctl) __attribute__((noreturn));

/* mosd_gossip.c */
int mosd_gossip_start(struct mosd *d);
void mosd_gossip_stop(struct mosd *d);
struct json_object *mosd_gossip_json(const struct mosd *d);
/* Runnable mos processes here per CPU this node offers (what its gossip entry says). */
double mosd_local_load(const struct mosd *d);

/* mosd_balance.c */
int mosd_balance_start(struct mosd *d);
void mosd_balance_stop(struct mosd *d);
/* The node where a new job of mem_mib MiB is cheapest now (mosrun -b); this node if none. */
int mosd_best_node(struct mosd *d, double mem_mib);

/* mosd_jobs.c: the job table */
struct mosd_job *mosd_job_add(struct mosd *d);
struct mosd_job *mosd_job_find(struct mosd *d, pid_t pid);
struct mosd_job *mosd_job_by_owner(struct mosd *d, struct bufferevent *owner);
struct mosd_job *mosd_job_by_supervisor(struct mosd *d, pid_t supervisor);
void mosd_job_remove(struct mosd *d, struct mosd_job *job);
void mosd_job_remove_owner(struct mosd *d, struct bufferevent *owner);
struct json_object *mosd_job_json(const struct mosd *d, const struct mosd_job *job);

#endif
