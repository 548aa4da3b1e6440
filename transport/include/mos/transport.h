/* Page transport between nodes: authenticated connections carrying small control messages
 * (request/response with ids) and bulk page runs, over RDMA verbs or TCP.
 *
 *   listener = mos_tp_listen("10.0.0.1:7100", &opts)    conn = mos_tp_connect("10.0.0.1:7100", &opts)
 *   conn = mos_tp_accept(listener)                       mos_tp_ctl_call(conn, req, ..., reply)
 *   mos_tp_ctl_recv / mos_tp_ctl_reply                   mos_tp_bulk_send(conn, pid, runs, n)
 *   mos_tp_bulk_recv(conn, place, arg)
 *
 * Every connection first proves the cluster key both ways (HMAC challenge-response); nothing
 * else is accepted before. The backend (verbs or tcp) is negotiated per connection; see
 * transport/README.md. All calls block (with the timeout of the options); mos_tp_conn_fd gives
 * a descriptor that becomes readable when the connection may have a message, for event loops.
 *
 * Errors: 0, -errno, or MOS_E_* (mos/status.h): MOS_E_AUTH (key proof failed), MOS_E_PROTO
 * (malformed message: the connection is then unusable), MOS_E_PEER_GONE, MOS_E_TRUNCATED,
 * MOS_E_UNSUPPORTED (a forced backend is not available). Each is logged once, here. */
#ifndef MOS_TRANSPORT_H
#define MOS_TRANSPORT_H

#include "mos/key.h"
#include "mos/page_run.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MOS_TP_PAGE_SIZE 4096u
#define MOS_TP_MAX_CONTROL (64u * 1024) /* largest control message */
/* The range of mos_tp_opts.slot_bytes (whole pages): one bulk frame, one verbs staging slot. */
#define MOS_TP_SLOT_MIN (64u * 1024)
#define MOS_TP_SLOT_MAX (64u * 1024 * 1024)

enum mos_tp_backend {
    MOS_TP_AUTO = 0, /* verbs when both ends can, else tcp */
    MOS_TP_TCP = 1,
    MOS_TP_VERBS = 2,
};

struct mos_tp_opts {
    enum mos_tp_backend backend; /* default: $MOS_TRANSPORT, else auto */
    const mos_key_t *key;        /* the cluster key; NULL = an all-zero key (tests only) */
    uint32_t slot_bytes;         /* bulk frame / verbs staging slot (default 1 MiB) */
    uint32_t slot_count;         /* verbs slots per direction (default 16) */
    uint32_t n_qps;              /* verbs bulk QPs (default 1); control has its own QP */
    int timeout_ms;              /* connect, handshake and message waits (default 10000) */
    uint32_t spin_us;            /* verbs: busy-poll the CQ this long before sleeping on the
                                    completion channel (default 50; $MOS_TRANSPORT_SPIN_US) */
};

/* Defaults, then MOS_TRANSPORT=tcp|verbs|auto and MOS_TRANSPORT_SPIN_US from the environment. */
void mos_tp_opts_default(struct mos_tp_opts *opts);
/* Defaults, then the config's `transport` setting, then the environment (which wins).
 * key is kept by pointer. */
struct mos_config;
void mos_tp_opts_from_config(const struct mos_config *cfg, const mos_key_t *key,
                             struct mos_tp_opts *opts);
/* Parse "auto", "tcp", "verbs"; -1 for anything else. */
int mos_tp_backend_parse(const char *name);
const char *mos_tp_backend_name(enum mos_tp_backend backend);

typedef struct mos_tp_listener mos_tp_listener_t;
typedef struct mos_tp_conn mos_tp_conn_t;

/* Listen on "host:port" (host numeric IPv4/IPv6 in brackets, or a name; port 0 = any).
 * The options are kept for every accepted connection. */
int mos_tp_listen(const char *hostport, const struct mos_tp_opts *opts, mos_tp_listener_t **out);
/* The listening socket (readable when a client is waiting) and the port it is bound to. */
int mos_tp_listener_fd(const mos_tp_listener_t *l);
int mos_tp_listener_port(const mos_tp_listener_t *l);
/* Accept one client: key proof, capability hello, backend setup. A client that fails is
 * logged and refused; the status says why (MOS_E_AUTH, MOS_E_PROTO, ...). */
int mos_tp_accept(mos_tp_listener_t *l, mos_tp_conn_t **out);
/* The same for a socket already accepted from the listener's fd (a daemon that accepts itself,
 * to limit clients by address before any handshake, and runs the handshake elsewhere). The
 * socket is the connection's, or closed on failure. */
int mos_tp_accept_socket(mos_tp_listener_t *l, int fd, mos_tp_conn_t **out);
void mos_tp_listener_close(mos_tp_listener_t *l);

/* Connect to "host:port", prove the key, negotiate the backend. */
int mos_tp_connect(const char *hostport, const struct mos_tp_opts *opts, mos_tp_conn_t **out);
/* Tell the peer and release everything. NULL is allowed. */
void mos_tp_close(mos_tp_conn_t *c);
/* The backend in use, the peer's address text, a descriptor to poll for readability. */
enum mos_tp_backend mos_tp_conn_backend(const mos_tp_conn_t *c);
const char *mos_tp_conn_peer(const mos_tp_conn_t *c);
int mos_tp_conn_fd(const mos_tp_conn_t *c);

/* Control messages: up to MOS_TP_MAX_CONTROL bytes, delivered in order, never queued behind
 * bulk data (tcp: their own stream; verbs: their own QP). */
struct mos_tp_msg {
    uint32_t id;   /* 0 for one-way messages; replies carry their request's id */
    int is_reply;
    size_t len;
};
/* Send a request (id != 0 expects a reply) or one-way message (id 0). */
int mos_tp_ctl_send(mos_tp_conn_t *c, uint32_t id, const void *msg, size_t len);
/* Send the reply to request id. */
int mos_tp_ctl_reply(mos_tp_conn_t *c, uint32_t id, const void *msg, size_t len);
/* Wait up to timeout_ms (-1: the options' timeout) for the next message into buf; a message
 * longer than cap is an error (MOS_E_LIMIT), the connection stays usable. -ETIMEDOUT. */
int mos_tp_ctl_recv(mos_tp_conn_t *c, struct mos_tp_msg *msg, void *buf, size_t cap,
                    int timeout_ms);
/* Send a request with a fresh id and wait for its reply. */
int mos_tp_ctl_call(mos_tp_conn_t *c, const void *req, size_t req_len, void *reply,
                    size_t cap, size_t *reply_len);

/* Bulk page runs (struct mos_page_run, mos/page_run.h). */
/* Send the pages of runs: from this process's memory when pid is 0, else read from process
 * pid with batched process_vm_readv straight into the send path (tcp) or the registered
 * staging slot (verbs). Returns when every page has been handed to the peer's consumer's
 * transport (not necessarily placed yet: the receiver's mos_tp_bulk_recv says when). */
int mos_tp_bulk_send(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs,
                     size_t n_runs);

/* The same from a process that runs (live pre-copy): its pages may be unmapped between the
 * caller's choice of runs and the read. A frame whose read comes up short is sent whole, its
 * pages from the first one not read on as zeros, and check(arg, runs, n, pages_read) is told
 * how many leading pages of the frame's runs were really read. check runs after every read,
 * before its pages leave: a non-zero return ends the transfer there with that status (the
 * peer's mos_tp_bulk_recv fails; the connection stays usable). */
typedef int (*mos_tp_read_check_fn)(void *arg, const struct mos_page_run *runs, size_t n,
                                    uint64_t pages_read);
int mos_tp_bulk_send_live(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs,
                          size_t n_runs, mos_tp_read_check_fn check, void *arg);

/* The receiver's consumer (mos_page_place_fn) gets the pages in the transport's receive
 * buffer or registered slot. */
struct mos_tp_bulk_stats {
    uint64_t frames;
    uint64_t pages;
};
/* Receive one bulk send (until its end marker), calling place for every frame. */
int mos_tp_bulk_recv(mos_tp_conn_t *c, mos_page_place_fn place, void *arg,
                     struct mos_tp_bulk_stats *stats);

/* Ready-made consumers. */
struct mos_tp_place_buffer {
    uint8_t *base;      /* page addr lands at base + (addr - origin) */
    uint64_t origin;
    size_t size;        /* runs outside [origin, origin + size) are an error */
};
int mos_tp_place_into_buffer(void *arg, const struct mos_page_run *runs, size_t n,
                             const uint8_t *data);
/* arg: a pid_t *; pages land at the same addresses in that process (process_vm_writev, one
 * call per frame). */
int mos_tp_place_into_process(void *arg, const struct mos_page_run *runs, size_t n,
                              const uint8_t *data);

#endif
