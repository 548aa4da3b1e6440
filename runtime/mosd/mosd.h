/* mosd's state, shared by its source files (private to the daemon).
 *
 * The files form layers: each calls only files listed before it (tests/check_layers.py checks
 * this), so no two files call each other.
 *   parse.c      what mosd hears, parsed from a buffer (no I/O: the fuzz targets drive it)
 *   jobs.c       the job table
 *   state.c      the job table kept under the state directory, read back at start
 *   messages.c   JSON lines to local clients, requests and answers between mosds
 *   cgroup.c     the cpu cgroups jobs are captured from and run in
 *   child.c      what a child forked from mosd closes
 *   gossip.c     this node's gossip entry and the vector
 *   metrics.c    the figures for Prometheus (counters kept here, served over HTTP)
 *   view.c       the balancer's view: gossip, our own load, recent moves counted at both ends
 *   move_out.c   jobs leaving a node: requests, the home worker, streaming a job to a node
 *   move_in.c    a job arriving: checks, restore, the guest's supervisor (which may move it on)
 *   balance.c    the load balancer and the choice of the best node
 *   exec.c       mosrun -E: the request at home, the relay on the target
 *   peer.c       the transport port: one acceptor per incoming connection, dispatched by its
 *                request; mosd's side of acceptors and supervisors
 *   control.c    the command socket (users and mosrun)
 *   mosd.c       main: configuration, start, orderly stop */
#ifndef MOSD_H
#define MOSD_H

#include "control.h"
#include "mos/config.h"
#include "mos/forward.h"
#include "mos/gossip.h"
#include "mos/key.h"
#include "mos/procfs.h"
#include "mos/transport.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct mos_job_owner; /* mos/migrate.h */

#define MOSD_TOKEN_BYTES 32
#define MOSD_RECENT_MOVES 64       /* moves remembered for the balancer's view ... */
#define MOSD_RECENT_MOVE_S 30      /* ... for this long */

/* The nodes a job may run on (mosrun -N, e.g. a Slurm allocation), as indices into the
 * cluster's config (the same on every node). Not restricted: any node. Its home is always
 * allowed besides: the job started there and its deputy lives there. */
#define MOSD_MAX_JOB_NODES 128
struct mosd_nodeset {
    int restricted;
    unsigned n;
    uint32_t idx[MOSD_MAX_JOB_NODES];
};
#define MOSD_MIGRATION_TIMEOUT_MS 120000
#define MOSD_MAX_ACCEPTORS 32      /* incoming connections in their handshake, at most */
#define MOSD_ACCEPTORS_PER_PEER 4  /* of those, from one address */
#define MOSD_HANDSHAKE_S 20        /* key proof and first request, whole, at most */
/* Without a key_file every node's key would be the same zeros: anyone could pass as a node. */
#define MOSD_NO_KEY_TEXT "this node has no key_file: it runs alone (one-node mode)"

/* A job started at this node (by mosrun) or running here as a guest. */
struct mosd_job {
    int id;
    pid_t pid;               /* local pid (at home: the native process) */
    pid_t home_pid;          /* pid at its home node, what getpid() returns */
    /* home jobs: the process registered, as it was then; every freeze checks it is still that
     * process with no more than uid's rights (mos_job_owner) */
    int pidfd;
    struct mos_proc_ident ident;
    uid_t uid;
    gid_t gid;
    char cmd[256];
    char home[MOS_NODE_NAME_MAX];  /* FROM */
    char where[MOS_NODE_NAME_MAX]; /* WHERE it runs now */
    char stay[128];          /* why it may not migrate, "" if it may */
    int locked;              /* mosrun -L: never moved automatically */
    struct mosd_nodeset nodes; /* mosrun -N: where it may run (its home besides) */
    int native;              /* mosrun -E: a native process on `where`, mosrun at home */
    uint64_t started_ns;
    uint64_t arrived_ns;     /* when it arrived where it runs now; 0: never moved */
    int came_from;           /* a guest: the node that sent it (-1: unknown) */
    double came_load;        /* that node's load once it had left, as we saw it then */
    uint64_t move_asked_ns;  /* when the move under way was asked for */
    uint64_t seen_ns;        /* the balancer's last look at its CPU time */
    double seen_cpu_s;
    struct bufferevent *owner; /* mosrun's registration connection (home jobs) */
    pid_t owner_pid;           /* that mosrun, the job's parent */
    int owner_fd_min;          /* mosrun's own descriptors start here (0: unknown) */
    /* a migration out of this node, while it runs */
    int moving;
    int checkpointing;             /* mosmigrate PID checkpoint, answered by its mosrun */
    char target[MOS_NODE_NAME_MAX];
    uint8_t token[MOSD_TOKEN_BYTES];
    double max_load;               /* balancer moves: the target refuses above this load */
    int live;                      /* this move is live (mosmigrate --live, or live_mode) */
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
    /* taken back from the state file at start (state.c) */
    struct event *pid_ev;          /* an own job whose mosrun has not reconnected: its end */
    int native_pending;            /* it came home meanwhile: tell its mosrun when it is back */
    int adopted;                   /* a guest whose supervisor an earlier mosd started */
    unsigned long long sup_start;  /* that supervisor's start time (/proc stat field 22) */
    uint64_t adopt_until_ns;       /* adopted, its control line not yet taken: give up then */
    struct mos_call_stats calls;   /* a guest: its calls, as its supervisor last reported them */
    double calls_wait;             /* seconds it waited on calls home per CPU-second away, as
                                      last measured away (0: never measured) */
};

/* A connection to the command socket. */
struct mosd_client {
    struct mosd *d;
    struct ucred cred;
    struct bufferevent *bev;
    struct mosd_client *next;
};

struct mosd {
    struct event_base *base;
    struct mos_config cfg;
    int self;
    mos_key_t key;
    int have_key;                  /* 0: one-node mode, no port and no gossip */
    char socket_path[108];
    char guest_cgroup[300];        /* the config's, %n expanded; "" for none */
    char guest_cgroup_procs[320];
    char guest_memcg[300];         /* guest_memory_cgroup, %n expanded; "" for none */
    char guest_memcg_procs[320];
    char state_dir[256];           /* the config's, %n expanded; "" when refused (no state) */
    struct event *adopt_timer;     /* supervisors left by an earlier mosd, still to reach */
    struct evconnlistener *listener;
    struct mosd_client *clients;   /* every open command connection */
    struct event *signals[3];
    struct mos_tp_opts tp_opts;
    void *tp_listener;             /* mos_tp_listener_t */
    struct event *tp_event;
    /* children taking incoming connections, until each says what it became: many at once,
     * a few per peer address, each with a deadline for the handshake (peer.c) */
    struct mosd_acceptor {
        pid_t pid;
        int fd;                    /* its line to mosd */
        struct event *ev;
        char addr[64];             /* the peer's address */
    } acceptors[MOSD_MAX_ACCEPTORS];
    size_t n_acceptors;
    uint64_t refused_warned_ns;    /* last log line about refused connections */
    unsigned refused_connections;  /* since then */
    struct event *sigchld;
    struct mosd_job *jobs;
    size_t n_jobs, cap_jobs;
    int next_job_id;
    struct mosd_metrics {
        uint64_t moves_out, moves_out_failed, moves_in, balance_moves;
        uint64_t out_bytes;            /* image bytes of moves this node streamed */
        uint64_t out_seconds_le[12];   /* moves out by duration, per MOSD_MOVE_BUCKETS bound */
        double out_seconds_sum;
        struct mos_call_stats calls;   /* guests' calls served here, all guests together */
    } metrics;
    struct evhttp *metrics_http;
    uint64_t started_ns;
    int stopping;
    int blocked;                   /* mosctl block: no new guests */
    uint32_t speed_override;       /* mosctl setspeed: announced speed, 0 = measured */
    struct mos_gossip *gossip;
    struct mos_gossip_probe *probe;
    struct event *gossip_ev, *gossip_timer;
    double cpu_quota;              /* our cgroup's CPU cap, 0 if none */
    struct event *balance_ev;
    struct event *balance_soon_ev; /* one decision as soon as a new job is old enough */
    uint64_t *refused_ns;          /* per node: when a move there last failed (0: never) */
    /* moves this node made or took lately, counted at both ends until gossip catches up */
    struct mosd_move {
        int from, to;               /* node indices; -1: unknown */
        uint64_t at_ns;             /* ordered, then landed; 0: a free slot */
        int landed;                 /* 0: under way */
        double cpu;
        char home[MOS_NODE_NAME_MAX]; /* the job, to know it if it is sent back */
        pid_t home_pid;
        double load_after;          /* out: our load once it had left */
    } moves[MOSD_RECENT_MOVES];
    unsigned n_moves;
};

/* What a job's home tells the node that is to run it (the "guest" request), and what the
 * receiving side checks before it restores anything. */
struct mosd_guest_header {
    int job;
    uid_t uid;
    gid_t gid;
    char home[MOS_NODE_NAME_MAX];
    char home_addr[MOS_ADDR_MAX];
    int deputy_port;
    uint8_t token[MOSD_TOKEN_BYTES];
    int home_pid;
    char cmd[256];
    double max_load; /* < 0: none; else refuse if our load would rise above it */
    struct mosd_nodeset nodes; /* mosrun -N (sent as names; unknown names are dropped) */
    double calls_wait; /* its calls home: seconds waited per CPU-second away (0: unknown) */
    struct json_object *node_names; /* parsed: the request's "nodes" (borrowed), or NULL */
};

/* ---- parse.c: what mosd hears, from a buffer. Shapes and ranges only (who may ask is the
 * caller's to decide); each returns 0 or MOS_E_PROTO (with why[len] where it has one). */
#define MOSD_MAX_ID INT_MAX          /* uids, gids and job ids travel as JSON ints and %d */
#define MOSD_MAX_MEM_MIB (1ll << 40)
#define MOSD_MAX_CALLS_WAIT 1e6      /* seconds waited on calls home per CPU-second */
#define MOSD_MAX_TEXT MOS_CONTROL_MAX_LINE /* free text (commands, paths): no NUL is the rule */
/* An integer field in [lo, hi]; absent: *out = fallback and 0. */
int mosd_json_int_in(struct json_object *o, const char *key, long long lo, long long hi,
                     long long fallback, long long *out);
/* A string field shaped as a node name (mos.conf's rule: 1..63 of [A-Za-z0-9._-]). */
int mosd_json_name(struct json_object *o, const char *key, char out[MOS_NODE_NAME_MAX]);

/* mosrun's "register" (the pid is checked against the kernel by the caller). */
struct mosd_register_req {
    pid_t pid;
    int locked;
    int reserved_min;
    double mem_mib;
    const char *cmd, *stay; /* point into the request */
    const char *start_on;   /* NULL: stay here */
    struct json_object *nodes; /* -N: an array of 0..MOSD_MAX_JOB_NODES node names, or NULL */
};
int mosd_register_parse(struct json_object *o, struct mosd_register_req *r, char *why,
                        size_t len);
/* "migrate" (from a command or the balancer). */
struct mosd_migrate_req {
    pid_t pid;
    const char *to;   /* a node, "home", "checkpoint"; "" when absent */
    const char *file; /* a checkpoint's file, or NULL */
    double max_load;  /* < 0: none */
    int live;         /* mosmigrate --live: a move from home goes live */
};
int mosd_migrate_parse(struct json_object *o, struct mosd_migrate_req *r, char *why, size_t len);
/* A "guest" request's header (the token included; whether home is who it says, and whether
 * the user may run here, is move_in.c's to check). */
int mosd_guest_header_parse(struct json_object *o, struct mosd_guest_header *h, char *why,
                            size_t len);
/* A "nodes" field (absent: not restricted, *out = NULL): an array of at most
 * MOSD_MAX_JOB_NODES node names. */
int mosd_json_node_names(struct json_object *o, struct json_object **out);
/* A home's "move" (home, home_pid, to) or "where" (home_pid, where: into node) note. */
struct mosd_note {
    char home[MOS_NODE_NAME_MAX];
    pid_t home_pid;
    char node[MOS_NODE_NAME_MAX];
};
int mosd_note_parse(struct json_object *o, int move, struct mosd_note *n, char *why, size_t len);

/* mosrun -E's request ("exec_remote" at home, "exec" from home to the target). */
#define MOSD_EXEC_MAX_ARGS 4096 /* argv and environment entries, each */
#define MOSD_EXEC_MAX_GROUPS 1024
#define MOSD_EXEC_MAX_PATH 4096
struct mosd_exec_req {
    uid_t uid;
    gid_t gid;
    gid_t groups[MOSD_EXEC_MAX_GROUPS];
    size_t n_groups;
    char **argv, **envp; /* NULL-terminated; the strings point into the request */
    const char *cwd;
    int umask;
    int port;
    uint8_t token[MOS_KEY_BYTES];
    const char *home, *home_addr;
    int home_pid;
    /* The user's RLIMIT_MEMLOCK at home (soft, hard; bytes, -1 unlimited), read by home's mosd
     * from mosrun's process: the program gets it here, not mosd's own (unlimited). */
    long long memlock[2];
};
#define MOSD_MAX_MEMLOCK (1ll << 62)
/* The fields both ends check the same way (what to run, where, the link home): argv and envp
 * are allocated (mosd_exec_req_free) on success only. */
int mosd_exec_req_parse(struct json_object *o, struct mosd_exec_req *r, char *why, size_t len);
void mosd_exec_req_free(struct mosd_exec_req *r);
/* The fields only the target reads: the user, its groups, the home (name, address, pid). */
int mosd_exec_ids_parse(struct json_object *o, struct mosd_exec_req *r, char *why, size_t len);

/* The lines between mosd and its children (read without their newline). */
enum mosd_line_kind {
    MOSD_LINE_GUEST,  /* acceptor: "guest PID HOME_PID JOB UID HOME NODES CMD..." (NODES: "*"
                       * any node, "-" its home only, else node indices joined by commas) */
    MOSD_LINE_NATIVE, /* acceptor: "native HOME_PID" */
    MOSD_LINE_WHERE,  /* acceptor: "where HOME_PID NODE" */
    MOSD_LINE_MOVE,   /* acceptor: "move HOME HOME_PID TO"; mosd to a supervisor: "move TO [LOAD]" */
    MOSD_LINE_OK,     /* a move worker's report: "ok BYTES NODE" */
    MOSD_LINE_ERROR,  /* "error TEXT" */
};
struct mosd_line {
    enum mosd_line_kind kind;
    pid_t pid, home_pid;
    int job;
    uid_t uid;
    char node[MOS_NODE_NAME_MAX]; /* guest, move: the home; where: where the job runs */
    char to[MOS_NODE_NAME_MAX];   /* move, ok: the target */
    double max_load;              /* a move order's limit; < 0: none */
    double calls_wait;            /* native: its calls home as measured away (0: unknown) */
    struct mosd_nodeset nodes;    /* guest: where it may run */
    uint64_t bytes;               /* ok: the image's bytes */
    const char *text;             /* guest: its command; ok, error: the rest (into the line) */
};
int mosd_line_from_acceptor(const char *line, struct mosd_line *l);
int mosd_line_order(const char *line, struct mosd_line *l);
int mosd_line_report(const char *line, struct mosd_line *l);
/* A supervisor's count of its guest's calls, every few seconds and when it stops serving:
 * "calls FORWARD VIRTUAL HOME ERRORS BYTES LATENCY_SUM_NS B0 .. B14" (the latency buckets, not
 * cumulative; they add up to FORWARD), each a decimal in 0..LLONG_MAX. */
#define MOSD_CALLS_LINE_MAX (6 + 21 * (MOS_CALL_KINDS + 3 + MOS_CALL_LATENCY_BOUNDS + 1))
int mosd_line_calls(const char *line, struct mos_call_stats *s);
void mosd_calls_line(const struct mos_call_stats *s, char *out, size_t len);
/* The NODES word of a guest line (room for 8 bytes per node: MOSD_NODES_WORD_MAX). */
#define MOSD_NODES_WORD_MAX (8 * MOSD_MAX_JOB_NODES + 2)
void mosd_nodes_word(const struct mosd_nodeset *s, char *out, size_t len);

/* The job table as the state file holds it (state.c writes it; parse.c reads it back as
 * untrusted input: a corrupt file must never name a process mosd then acts on). */
#define MOSD_STATE_VERSION 1
#define MOSD_STATE_MAX_JOBS 4096
struct mosd_state_rec {
    int guest;                  /* 0: one of this node's own jobs; 1: a guest here */
    int id;
    pid_t pid, home_pid;
    uid_t uid;
    gid_t gid;
    char cmd[256];
    char home[MOS_NODE_NAME_MAX];
    char where[MOS_NODE_NAME_MAX];
    int locked;
    unsigned long long started_ns; /* when it was registered (CLOCK_MONOTONIC, which a state
                                      directory in /run never outlives); 0: not said */
    struct json_object *nodes;  /* names (borrowed from the parsed file), or NULL */
    /* own jobs: the process as registered, its mosrun (the parent) and mosrun's descriptors */
    struct mos_proc_ident ident;
    pid_t owner_pid;
    int owner_fd_min;
    /* guests: the supervisor serving it and its start time */
    pid_t supervisor;
    unsigned long long sup_start;
};
/* The state file's text (text_len bytes, no NUL) for node `self`: its records into recs[max]
 * (*n of them), their "nodes" borrowed from *root, which the caller puts. The whole file is
 * refused (MOS_E_PROTO, why[len], *root NULL) if it is not one whole JSON object or on any bad
 * record. */
int mosd_state_parse(const char *text, size_t text_len, const char *self,
                     struct mosd_state_rec *recs, size_t max, size_t *n,
                     struct json_object **root, char *why, size_t len);

/* ---- jobs.c: the job table */
struct mosd_job *mosd_job_add(struct mosd *d);
struct mosd_job *mosd_job_find(struct mosd *d, pid_t pid);
struct mosd_job *mosd_job_by_id(struct mosd *d, int id);
struct mosd_job *mosd_job_by_owner(struct mosd *d, struct bufferevent *owner);
struct mosd_job *mosd_job_by_supervisor(struct mosd *d, pid_t supervisor);
struct mosd_job *mosd_job_by_worker_fd(struct mosd *d, int fd);
struct mosd_job *mosd_job_by_sup_ctl(struct mosd *d, int fd);
/* One of this node's own jobs (started by a mosrun here) by its pid here. */
struct mosd_job *mosd_job_own(struct mosd *d, pid_t home_pid);
const struct mosd_job *mosd_job_own_const(const struct mosd *d, pid_t home_pid);
/* The guest here whose home is `home` and pid there home_pid. */
struct mosd_job *mosd_job_guest(struct mosd *d, const char *home, pid_t home_pid);
/* The nodeset of names (unknown names dropped); names NULL: not restricted. */
void mosd_nodeset_of_names(const struct mosd *d, struct json_object *names,
                           struct mosd_nodeset *s);
/* Whether a job whose home is node `home` may run on node `node`. */
int mosd_nodeset_allows(const struct mosd_nodeset *s, int home, int node);
/* The names as a JSON array (NULL when not restricted), and as "a,b,c" for messages. */
struct json_object *mosd_nodeset_json(const struct mosd *d, const struct mosd_nodeset *s);
void mosd_nodeset_text(const struct mosd *d, const struct mosd_nodeset *s, char *out,
                       size_t len);
/* Guests here from other nodes. */
size_t mosd_jobs_guests(const struct mosd *d);
void mosd_job_remove(struct mosd *d, struct mosd_job *job);
void mosd_job_remove_owner(struct mosd *d, struct bufferevent *owner);
/* A home job's registered process and user, for mos_dump_opts.owner. */
void mosd_job_owner(const struct mosd_job *job, struct mos_job_owner *o);
struct json_object *mosd_job_json(const struct mosd *d, const struct mosd_job *job);
/* A guest's calls home as measured here: seconds its forwarded calls waited per CPU-second it
 * ran (threads' waits add up); 0 until MOSD_CALLS_MIN calls and 0.2 CPU-seconds tell. The
 * balancer weighs it (mos_job_info.call_wait) and it travels with the job (header
 * "calls_wait", the acceptor's "native" line), so a job that came home for its calls stays. */
#define MOSD_CALLS_MIN 100
double mosd_calls_wait(const struct mos_call_stats *calls, double cpu_s);
/* A process's CPU time (all its threads) and resident pages, from /proc/PID/stat. 0 or -1. */
int mosd_proc_usage(pid_t pid, double *cpu_s, uint64_t *pages);

/* ---- state.c: the job table under the state directory (root's, 0700; the file 0600) */
/* Where the state lives (state_dir, %n expanded), made 0700 if missing. A directory that is
 * not root's or that others may enter is refused: one line, and mosd keeps no state. */
int mosd_state_open(struct mosd *d);
/* Write the table now (temporary file, then rename). Called whenever a job is registered,
 * moves, comes back or ends. */
void mosd_state_save(const struct mosd *d);
/* At start: take back the jobs the file names. An own job is held again only if its pid is
 * still the process registered (start time and parent unchanged); a guest only if its
 * supervisor is still the one started for it (its control line is then taken by peer.c).
 * Anything else is dropped with one line. Returns how many were taken back. */
int mosd_state_load(struct mosd *d);
/* The socket a supervisor left without mosd listens on for the next mosd. */
void mosd_state_sup_socket(const struct mosd *d, pid_t supervisor, char *out, size_t len);

/* ---- messages.c: what mosd says and hears */
/* Send one JSON line on a bufferevent. */
void mosd_send(struct bufferevent *bev, struct json_object *msg);
/* {"ok": true} and {"ok": false, "error": TEXT}: replies to send back. */
struct json_object *mosd_reply_ok(void);
struct json_object *mosd_reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line on a local socket between mosd and its children (short: read byte by byte). The
 * length without the newline, or -1 at EOF or on error. */
int mosd_line_read(int fd, char *buf, size_t len);
/* "addr:port" of node's transport port, bracketed for IPv6. */
void mosd_hostport(const struct mos_config *cfg, int node, char *out, size_t len);
/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void mosd_hex(const uint8_t *bytes, size_t n, char *out);
/* Connect to node's mosd (timeout_ms for everything), send the JSON request req and read its
 * reply. 0 when it says ok (*reply, if not NULL, keeps the parsed reply for the caller; *conn,
 * if not NULL, keeps the connection open); MOS_E_PROTO when it refused, with its reason in
 * why[len]; another status when it could not be asked ("cannot reach N: ..." in why). */
int mosd_peer_call(const struct mosd *d, int node, int timeout_ms, struct json_object *req,
                   mos_tp_conn_t **conn, struct json_object **reply, char *why, size_t len);
/* The node a request names as its home, by name and address: its index, or MOS_E_PROTO
 * with why[len] when no node of this cluster has both. */
int mosd_peer_home(const struct mosd *d, const char *name, const char *addr, char *why,
                   size_t len);
/* Answer a peer's request id: {"ok": ok, key: text} (text may be NULL). */
int mosd_peer_answer(mos_tp_conn_t *c, uint32_t id, int ok, const char *key, const char *text);

/* ---- cgroup.c: the v1 cpu cgroups (where the lab and sites cap CPU) */
/* Write pid into a cgroup.procs file. 0 or -1. */
int mosd_cgroup_join(const char *procs, pid_t pid);
/* Move pid into mosd's own cpu cgroup for a while (a capture or restore: every injected call
 * in a throttled cgroup would wait for the next period); *was receives the cgroup.procs file
 * it came from ("" when it stayed where it was). */
void mosd_cgroup_borrow(pid_t pid, char *was, size_t len);
/* The memory this node offers where a cgroup caps it below the machine's (the guests' memory
 * cgroup, v1, or guest_cgroup's memory.max, v2): its limit and what is free under it (usage
 * less inactive file pages, which reclaim takes first), in bytes. 0 when capped, -1 when not
 * (the machine's figures stand). */
int mosd_cgroup_memory(const struct mosd *d, uint64_t *total, uint64_t *free_bytes);

/* ---- child.c */
/* In a child forked from mosd (a migration worker, an acceptor that becomes a supervisor):
 * close what belongs to the daemon, so that a long-lived child neither keeps mosd's sockets
 * bound after it exits nor holds its clients' connections (or its jobs' pidfds) open. keep_fd
 * and keep_pidfd stay open; the transport listener too with keep_listener (an acceptor's
 * handshake uses its options). */
void mosd_close_in_child(struct mosd *d, int keep_fd, int keep_pidfd, int keep_listener);

/* ---- gossip.c */
int mosd_gossip_start(struct mosd *d);
void mosd_gossip_stop(struct mosd *d);
struct json_object *mosd_gossip_json(const struct mosd *d);
/* Runnable mos processes here per CPU this node offers (what its gossip entry says). */
double mosd_local_load(const struct mosd *d);
/* The CPUs this node offers: its quota rounded up, else the machine's. */
double mosd_local_cpus(const struct mosd *d);
/* A move to node `name` failed (refused, unreachable): it is no target until gossip brings
 * news of it younger than the failure, so the balancer does not try it again on the stale
 * view that made it look free. */
void mosd_gossip_refused(struct mosd *d, const char *name);
/* Whether node i failed a move after the news of it we hold (news_age_ms old) was made. */
int mosd_gossip_refusing(const struct mosd *d, size_t i, uint32_t news_age_ms);

/* ---- metrics.c: GET /metrics on cfg.metrics_listen (nothing when it is empty). */
/* Split "ADDR:PORT" ("[v6]:PORT" too); 0, or MOS_E_CONFIG with why[len] in words. */
int mosd_metrics_parse_listen(const char *text, char *addr, size_t addr_len, int *port,
                              char *why, size_t len);
int mosd_metrics_start(struct mosd *d);
void mosd_metrics_stop(struct mosd *d);
/* A move out of this node ended (the home worker's report). */
void mosd_metrics_move_out(struct mosd *d, int ok, double seconds, uint64_t bytes);
/* A guest's supervisor reported its calls: what grew since its last report goes into the node's
 * totals. MOS_E_PROTO (nothing counted) when a count went down. */
int mosd_metrics_calls(struct mosd *d, struct mosd_job *job, const struct mos_call_stats *now);

/* ---- view.c: the balancer's view */
struct mos_node_state;
/* nodes[] (one per configured node, config order) as the balancer sees them now; returns
 * their count. */
size_t mosd_view_fill(const struct mosd *d, struct mos_node_state *nodes);
/* The table of recent moves: the balancer sent job to node `to`, leaving load_after here; a
 * guest arrived from node `from` (-1: unknown); a move out landed; a move out failed (the job
 * stays: forgotten). */
void mosd_view_sent(struct mosd *d, const struct mosd_job *job, int to, double cpu,
                    double load_after);
void mosd_view_moved_in(struct mosd *d, struct mosd_job *job, int from);
void mosd_view_move_landed(struct mosd *d, const struct mosd_job *job);
void mosd_view_move_failed(struct mosd *d, const struct mosd_job *job);
/* The admission of a balancing move (move_in.c's child, from = the sender or -1): "" when the
 * move still pays on this node's own view, else why not in one line. */
void mosd_view_admission(const struct mosd *d, const struct mosd_guest_header *h, int from,
                         char *why, size_t len);

/* ---- move_out.c: moving jobs out of a node */
/* A "migrate" request from a command or the balancer; the reply is sent now (a refusal,
 * returned) or when the move is done (NULL returned). */
struct json_object *mosd_move_request(struct mosd *d, struct bufferevent *requester,
                                      uid_t uid, struct json_object *req);
/* mosrun's answer to "prepare" (or to "checkpoint"). */
void mosd_move_owner_reply(struct mosd *d, struct mosd_job *job, struct json_object *msg);
/* A command connection closed: forget it as a requester. */
void mosd_move_forget_requester(struct mosd *d, struct bufferevent *bev);
/* Ask for every own job that runs away to come home (returns how many were asked). */
int mosd_move_bring_home(struct mosd *d);
/* How a job leaves (see move_out.c). */
struct mosd_stream_how {
    void (*before_commit)(void *); /* after READY, before the original is retired */
    void *arg;
    int shell;         /* the original stays as a shell (a job leaving home) */
    int guest;         /* it is a guest here: its seccomp filter and no_new_privs are ours */
    /* a job leaving home: the process must still be the one registered, with no more than its
     * user's rights, right before the freeze and again once frozen */
    const struct mos_job_owner *owner;
    int listener;      /* the guest's seccomp listener, when a home call is held */
    uint64_t held;     /* that call */
    pid_t held_tid;    /* its thread */
    int held_answered; /* it was answered (-ERESTARTNOINTR) once the freeze began */
    struct mos_held_calls *drained; /* calls a move took back from home, answered the same way */
    /* a guest's threads restored here with fresh tids: the image names them by the tids
     * their program knows */
    const struct mos_tid_pair *tids;
    size_t ntids;
    pid_t pid;         /* filled in */
    uint64_t bytes;    /* filled in: the image's size */
    int retired;       /* the original is gone (killed or a shell) */
    int live;          /* live pre-copy (a job leaving home only: a guest's calls wait meanwhile) */
    char home_cg[512]; /* the job's own cpu cgroup while the capture borrows mosd's */
};
/* Freeze pid, stream it to node target as the guest g describes, and commit once the target
 * has it rebuilt and linked to its deputy. Before READY any failure resumes pid where it was.
 * 0 when the job runs there, else a status with why[len] in words. */
int mosd_stream_guest(const struct mosd *d, int target, const struct mosd_guest_header *g,
                      pid_t pid, struct mosd_stream_how *how, char *why, size_t len);

/* ---- move_in.c: a job arriving */
/* An acceptor's "guest" request (o, request id): check it, restore the job and, for a guest,
 * supervise it until it ends or moves on; ctl is the acceptor's line to mosd. Never returns. */
void mosd_move_in(struct mosd *d, mos_tp_conn_t *c, uint32_t id, struct json_object *o, int ctl)
    __attribute__((noreturn));

/* ---- balance.c */
int mosd_balance_start(struct mosd *d);
void mosd_balance_stop(struct mosd *d);
/* A job was registered: decide once it is old enough to move, not at the next tick. */
void mosd_balance_soon(struct mosd *d);
/* The node where a new job of mem_mib MiB is cheapest now (mosrun -b) among those `nodes`
 * allows; this node if none. */
int mosd_best_node(struct mosd *d, double mem_mib, const struct mosd_nodeset *nodes);

/* ---- exec.c: mosrun -E. At home, mosrun's "exec_remote" request (the user is cred; the
 * reply comes now for a refusal, else once the target has answered). On the target, an
 * acceptor's "exec" request: answer, then relay the program until it ends (never returns). */
struct json_object *mosd_exec_request(struct mosd *d, struct bufferevent *bev,
                                      const struct ucred *cred, struct json_object *req);
void mosd_exec_accept(struct mosd *d, mos_tp_conn_t *c, uint32_t id, struct json_object *o,
                      int ctl) __attribute__((noreturn));

/* ---- peer.c: the transport port */
/* Reaps mosd's children; takes the port only with a key. */
int mosd_peer_start(struct mosd *d);
void mosd_peer_stop(struct mosd *d);
/* An orderly stop: ask every guest from elsewhere to go home (returns how many were asked). */
int mosd_peer_send_guests_home(struct mosd *d);

/* ---- control.c: the command socket */
/* Its path, and no other mosd serving it (said first, before any port is taken). */
int mosd_control_claim(struct mosd *d);
int mosd_control_start(struct mosd *d);
void mosd_control_stop(struct mosd *d);

#endif
