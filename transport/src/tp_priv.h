/* Backend-only header of the transport: the connection object every backend extends and the
 * ops table each backend fills (tcp.c, verbs.c). Not seen outside transport/src. */
#ifndef MOS_TRANSPORT_PRIV_H
#define MOS_TRANSPORT_PRIV_H

#include "mos/transport.h"
#include "wire.h"

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define TP_LOG "transport"

_Static_assert(MOS_TP_SLOT_MAX == MOS_WIRE_MAX_BULK, "a slot is one bulk frame on the wire");

struct mos_tp_ops {
    const char *name;
    /* Send one control-plane message (CONTROL, REPLY) of len <= MOS_WIRE_MAX_CONTROL. */
    int (*ctl_send)(mos_tp_conn_t *c, uint16_t type, uint32_t id, const void *msg, size_t len);
    /* Wait for the next control-plane message; payload copied to buf (cap bytes). */
    int (*ctl_recv)(mos_tp_conn_t *c, struct mos_wire_hdr *hdr, void *buf, size_t cap,
                    int timeout_ms);
    int (*bulk_send)(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs, size_t n);
    int (*bulk_recv)(mos_tp_conn_t *c, mos_page_place_fn place, void *arg,
                     struct mos_tp_bulk_stats *stats);
    int (*fd)(const mos_tp_conn_t *c);
    void (*destroy)(mos_tp_conn_t *c);
};

struct mos_tp_conn {
    const struct mos_tp_ops *ops;
    enum mos_tp_backend backend;
    mos_key_t key;
    int timeout_ms;
    uint64_t spin_ns;    /* verbs: busy-poll before sleeping */
    int ctl_fd;          /* the authenticated TCP stream (tcp: control; verbs: liveness) */
    bool broken;         /* a malformed message or lost peer: every later call fails */
    bool is_server;
    uint32_t next_id;
    uint32_t slot_bytes, slot_count, n_qps; /* negotiated */
    uint8_t token[MOS_WIRE_TOKEN_BYTES];
    /* After the key proof every message is protected with keys of its session (mos/seal.h):
     * control messages and hellos sealed, page frames and end markers tagged. */
    struct mos_seal ctl, bulk;
    uint64_t frames_tx, frames_rx; /* tcp frame numbers (verbs numbers frames per slot) */
    uint64_t ends_tx, ends_rx;     /* end markers */
    uint8_t *ctl_box, *ctl_open;   /* MOS_WIRE_MAX_CONTROL each: one sealed message out, in */
    char peer[96];
    mos_tp_read_check_fn live_check; /* during mos_tp_bulk_send_live only */
    void *live_arg;
    void *be;            /* backend state */
};

extern const struct mos_tp_ops mos_tp_tcp_ops;
extern const struct mos_tp_ops mos_tp_verbs_ops;

/* io.c: blocking stream helpers. Sockets carry SO_RCVTIMEO/SO_SNDTIMEO = the conn timeout. */
int tp_write_iov(int fd, struct iovec *iov, int n);
int tp_read_full(int fd, void *buf, size_t len);
int tp_wait_readable(int fd, int timeout_ms);
/* One message: header + payload. */
int tp_msg_send(int fd, uint16_t type, uint32_t id, const void *body, size_t len);
/* One CLOSE or SETUP message: code (4) | text (up to MOS_WIRE_REASON_BYTES - 5 bytes). */
int tp_reason_send(int fd, uint16_t type, uint32_t code, const char *text);
/* Read one message whose payload must fit cap (else MOS_E_LIMIT after draining it). */
int tp_msg_recv(int fd, struct mos_wire_hdr *hdr, void *buf, size_t cap, int timeout_ms);
/* Parse "host:port" / "[v6]:port". */
int tp_addr_parse(const char *hostport, struct sockaddr_storage *ss, socklen_t *len);
void tp_addr_text(const struct sockaddr *sa, char *buf, size_t len);
#define TP_BULK_SOCKBUF (4 << 20) /* at least this much socket buffer for bulk streams */
int tp_socket_tune(int fd, int timeout_ms, bool bulk);
/* A listening TCP socket on ss (port may be 0). */
int tp_ctl_addr(const mos_tp_conn_t *c, bool peer, uint16_t port, struct sockaddr_storage *ss,
                socklen_t *len);
int tp_listen_fd(const struct sockaddr_storage *ss, socklen_t len, int backlog);
int tp_local_port(int fd);

/* Log a failed message exchange once and mark the connection unusable. Returns status. */
int tp_conn_fail(mos_tp_conn_t *c, int status, const char *what);

/* tcp.c: the bulk stream set-up of a session. */
int tp_tcp_server_listen(mos_tp_conn_t *c, int *listen_fd, uint16_t *port);
int tp_tcp_server_attach(mos_tp_conn_t *c, int listen_fd);
int tp_tcp_client_attach(mos_tp_conn_t *c, uint16_t port);

/* verbs.c */
/* Whether this node can run verbs with need_lock bytes of locked memory; if not, why. */
bool tp_verbs_probe(size_t need_lock, char *reason, size_t len);
size_t tp_verbs_lock_bytes(uint32_t slot_bytes, uint32_t slot_count, uint32_t n_qps);
int tp_verbs_server_listen(mos_tp_conn_t *c, void **listen_state, uint16_t *port);
/* Wait for the client's QPs or its SETUP message; 1 = verbs up, 0 = client fell back. */
int tp_verbs_server_accept(mos_tp_conn_t *c, void *listen_state);
void tp_verbs_listen_free(void *listen_state);
/* Connect the QPs; on a failure that allows tcp, *why says why and the return is 0. */
int tp_verbs_client_connect(mos_tp_conn_t *c, uint16_t cm_port, char *why, size_t why_len);

/* Page-frame tags (wire.h): over the n iovecs (the table, then the pages) under the bulk key
 * and the frame's number nr. tp_frame_check: 0 or MOS_E_TAMPERED (not logged). */
void tp_frame_tag(const mos_tp_conn_t *c, uint64_t nr, const struct iovec *iov, int n,
                  uint8_t tag[MOS_WIRE_FRAME_TAG_BYTES]);
int tp_frame_check(const mos_tp_conn_t *c, uint64_t nr, const struct iovec *iov, int n,
                   const uint8_t tag[MOS_WIRE_FRAME_TAG_BYTES]);
/* The end marker's tag: made (the next end number) or checked (0 or MOS_E_TAMPERED, not logged). */
void tp_end_tag(mos_tp_conn_t *c, uint8_t end[MOS_WIRE_BULK_END_BYTES]);
int tp_end_check(mos_tp_conn_t *c, const uint8_t end[MOS_WIRE_BULK_END_BYTES]);

/* Page sources: read runs of process pid into buf with batched process_vm_readv. */
int tp_source_read(pid_t pid, const struct mos_page_run *runs, size_t n, uint8_t *buf);
/* The same for a bulk send of c: during a live send (c->live_check) a short read is
 * zero-filled and reported to it. */
int tp_source_fill(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs, size_t n,
                   uint8_t *buf);

/* Where run lands in a buffer consumer's memory, or NULL (logged) when it lies outside. */
uint8_t *tp_place_buffer_locate(const struct mos_tp_place_buffer *b, const struct mos_page_run *run);
/* Read exactly the bytes of n iovecs (consumed). */
int tp_read_iov(int fd, struct iovec *iov, int n);

/* The receiving side of a tcp bulk stream, apart from the socket so that it can be fed from
 * memory (transport/tests/fuzz_bulk.c). in reads every byte of n iovecs (consuming them), or
 * returns MOS_E_PEER_GONE at the end of the stream before any, MOS_E_TRUNCATED within, or
 * another status. */
struct tp_bulk_in {
    int (*read_iov)(void *arg, struct iovec *iov, int n);
    void *arg;
};
struct tp_bulk_rx {
    uint8_t *buf;             /* c->slot_bytes: one frame */
    struct mos_page_run *runs; /* max_runs */
    struct iovec *iov;        /* max_runs */
    size_t max_runs;          /* runs in a frame, at most */
};
/* Read page-run frames, handing each to place, until the end marker (whose counts must match
 * what came). Frames are checked against c->slot_bytes and rx->max_runs before their pages are
 * read. 0 with *stats, or a status (c->broken set when the stream cannot go on). */
int tp_bulk_consume(mos_tp_conn_t *c, const struct tp_bulk_in *in, const struct tp_bulk_rx *rx,
                    mos_page_place_fn place, void *arg, struct mos_tp_bulk_stats *stats);

/* Send one frame of k runs (already in the backend's frame array) with pages pages. A failure
 * of the connection marks it broken; a failure of the source process does not. */
typedef int (*tp_frame_fn)(mos_tp_conn_t *c, pid_t pid, size_t k, uint64_t pages);
/* Cut runs into frames (at most max_runs runs, slot_bytes with the table) into frame[], send
 * each, and encode the end marker (frames, pages; frames = MOS_WIRE_BULK_ABORTED when the
 * source failed). Returns 0, the source's error (the marker must still be sent), or a
 * connection error (c->broken set: send nothing more). */
int tp_bulk_frames(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs, size_t n,
                   struct mos_page_run *frame, size_t max_runs, tp_frame_fn send_frame,
                   uint8_t end[MOS_WIRE_BULK_END_BYTES]);

/* Split the next frame off runs[*i] (starting *off pages into it): fills frame[] (at most
 * max_runs) with at most max_pages pages. Returns the number of runs in the frame. */
size_t tp_frame_next(const struct mos_page_run *runs, size_t n, size_t *i, uint64_t *off,
                     struct mos_page_run *frame, size_t max_runs, uint64_t max_pages,
                     uint64_t *pages);

#endif
