/* Backend verbs: librdmacm connection set-up, RC queue pairs, registered staging rings.
 *
 * Per connection: one PD, one CQ with one completion channel, QP 0 for control messages and
 * n_qps bulk QPs. Each side registers, once, a receive ring and a send ring of slot_count slots
 * of slot_bytes (huge pages when the kernel has them), plus small control buffers. Nothing is
 * registered per page or per message.
 *
 * Bulk: the sender fills its send slot s (run table + pages; pages read straight into the slot
 * with process_vm_readv for another process) and posts RDMA_WRITE_WITH_IMM of the slot to the
 * peer's receive slot s with imm = s, on bulk QP 1 + s % n_qps. The receiver gets one
 * completion per slot, hands the frame to the consumer in place, and returns the credit for s
 * with a zero-length inline SEND_WITH_IMM (imm = s) on the same QP. Writes and credits are
 * signaled only every few work requests (selective signaling); the send queue is never
 * overrun because a signaled completion retires every earlier request of its QP.
 *
 * Control: SENDs on QP 0 into pre-posted receive buffers (header + payload, inline when short).
 * A bulk send ends with a BULK_END message on QP 0; the receiver finishes when it has placed
 * that many frames.
 *
 * Set-up: after the key proof and hello on the TCP stream, the client connects 1 + n_qps
 * rdma_cm ids to the server's per-session rdma_cm port. The connect private data carries the
 * session token (from the authenticated hello), the QP index and the client's receive ring
 * address and rkey; the accept private data carries the server's. The client then sends SETUP
 * (ok, or the reason it falls back to tcp) on the TCP stream, which stays open to notice a
 * vanished peer. */
#include "tp_priv.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#ifndef MOS_HAVE_VERBS

bool tp_verbs_probe(size_t need_lock, char *reason, size_t len)
{
    (void)need_lock;
    snprintf(reason, len, "built without rdma-core");
    return false;
}

size_t tp_verbs_lock_bytes(uint32_t slot_bytes, uint32_t slot_count, uint32_t n_qps)
{
    (void)n_qps;
    return 2ull * slot_bytes * slot_count;
}

int tp_verbs_server_listen(mos_tp_conn_t *c, void **listen_state, uint16_t *port)
{
    (void)c, (void)listen_state, (void)port;
    return MOS_E_UNSUPPORTED;
}

int tp_verbs_server_accept(mos_tp_conn_t *c, void *listen_state)
{
    (void)c, (void)listen_state;
    return MOS_E_UNSUPPORTED;
}

void tp_verbs_listen_free(void *listen_state)
{
    (void)listen_state;
}

int tp_verbs_client_connect(mos_tp_conn_t *c, uint16_t cm_port, char *why, size_t why_len)
{
    (void)c, (void)cm_port;
    snprintf(why, why_len, "built without rdma-core");
    return 0;
}

#else

#include <arpa/inet.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define CTL_DEPTH 32                                   /* control receive buffers */
#define CTL_BUF (MOS_WIRE_HDR_BYTES + MOS_WIRE_MAX_CONTROL) /* a sealed control message */
#define MAX_QPS 17
#define VERBS_FRAME_RUNS 4096
#define CM_TIMEOUT_MS 3000

struct vqp {
    struct rdma_cm_id *id;
    uint64_t posted;   /* send WRs posted */
    uint64_t done;     /* send WRs known complete (a signaled one retires all before it) */
    uint32_t sq_depth;
};

struct ctl_item {
    struct ctl_item *next;
    struct mos_wire_hdr hdr;
    uint8_t body[];
};

struct ring {
    uint8_t *mem;
    size_t bytes;
    bool huge;
    struct ibv_mr *mr;
};

struct verbs_state {
    struct rdma_event_channel *ech;
    struct ibv_pd *pd;
    struct ibv_comp_channel *cch;
    struct ibv_cq *cq;
    struct vqp qp[MAX_QPS];
    uint32_t nq;            /* 1 + n_qps */
    uint32_t max_inline;
    struct ring rx, tx, ctl_rx, ctl_tx;
    uint64_t remote_addr;
    uint32_t remote_rkey;
    bool *slot_free;        /* sender: credit for slot s is back */
    uint32_t *ready_slot;   /* receiver: FIFO of filled slots */
    uint32_t *ready_len;
    uint64_t *rx_frame_nr;  /* receiver: the number the next frame in slot s must have */
    uint32_t ready_head, ready_tail;
    uint64_t tx_seq;
    bool end_seen;
    uint64_t end_frames, end_pages;
    struct ctl_item *ctl_head, **ctl_tail;
    uint64_t ctl_seq;
    struct mos_page_run runs[VERBS_FRAME_RUNS];
};

struct listen_state {
    struct rdma_event_channel *ech;
    struct rdma_cm_id *lid;
};

size_t tp_verbs_lock_bytes(uint32_t slot_bytes, uint32_t slot_count, uint32_t n_qps)
{
    (void)n_qps;
    return 2ull * slot_bytes * slot_count + 2ull * CTL_DEPTH * CTL_BUF;
}

/* CAP_IPC_LOCK lifts RLIMIT_MEMLOCK for memory registration (mosd as root has it), so the
 * limit only matters without it. Read from /proc rather than linking libcap for one bit. */
static bool has_cap_ipc_lock(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long eff = 0;

    if (!f)
        return false;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    fclose(f);
    return eff & (1ull << 14); /* CAP_IPC_LOCK */
}

bool tp_verbs_probe(size_t need_lock, char *reason, size_t len)
{
    struct ibv_device **list;
    struct rlimit rl;
    int n = 0;
    bool active = false;
    char down[64] = "";

    list = ibv_get_device_list(&n);
    if (!list || n == 0) {
        snprintf(reason, len, "no RDMA device");
        if (list)
            ibv_free_device_list(list);
        return false;
    }
    for (int i = 0; i < n && !active; i++) {
        struct ibv_context *ctx = ibv_open_device(list[i]);
        struct ibv_device_attr da;
        if (!ctx)
            continue;
        if (ibv_query_device(ctx, &da) == 0)
            for (uint8_t p = 1; p <= da.phys_port_cnt && !active; p++) {
                struct ibv_port_attr pa;
                if (ibv_query_port(ctx, p, &pa) == 0 && pa.state == IBV_PORT_ACTIVE)
                    active = true;
                else if (!down[0])
                    snprintf(down, sizeof(down), "%s port %u", ibv_get_device_name(list[i]), p);
            }
        ibv_close_device(ctx);
    }
    ibv_free_device_list(list);
    if (!active) {
        snprintf(reason, len, "RDMA port down (%s not active)", down[0] ? down : "no port");
        return false;
    }
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < need_lock && !has_cap_ipc_lock()) {
        snprintf(reason, len, "ulimit -l is %llu KiB, verbs needs %zu KiB",
                 (unsigned long long)rl.rlim_cur / 1024, need_lock / 1024);
        return false;
    }
    return true;
}

/* Staging memory: explicit huge pages when the pool has them, else THP advice. */
static int ring_alloc(struct verbs_state *vs, struct ring *r, size_t bytes, int access)
{
    const size_t huge = 2u << 20;

    r->bytes = bytes;
    r->huge = false;
    r->mem = MAP_FAILED;
    if (bytes % huge == 0)
        r->mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
    if (r->mem != MAP_FAILED) {
        r->huge = true;
    } else {
        r->mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (r->mem == MAP_FAILED) {
            r->mem = NULL;
            return mos_errno_status();
        }
        (void)madvise(r->mem, bytes, MADV_HUGEPAGE);
    }
    r->mr = ibv_reg_mr(vs->pd, r->mem, bytes, access);
    if (!r->mr) {
        int rc = mos_errno_status();
        mos_err(TP_LOG, "ibv_reg_mr of %zu KiB: %s (check ulimit -l)", bytes / 1024,
                mos_strerror(rc));
        munmap(r->mem, bytes);
        r->mem = NULL;
        return rc;
    }
    return 0;
}

static void ring_free(struct ring *r)
{
    if (r->mr)
        ibv_dereg_mr(r->mr);
    if (r->mem)
        munmap(r->mem, r->bytes);
    memset(r, 0, sizeof(*r));
}

static int vs_post_ctl_recv(struct verbs_state *vs, uint32_t i)
{
    struct ibv_sge sge = {(uintptr_t)(vs->ctl_rx.mem + (size_t)i * CTL_BUF), CTL_BUF,
                          vs->ctl_rx.mr->lkey};
    struct ibv_recv_wr wr = {.wr_id = i, .sg_list = &sge, .num_sge = 1}, *bad;

    return -ibv_post_recv(vs->qp[0].id->qp, &wr, &bad);
}

static int vs_post_bulk_recv(struct verbs_state *vs, uint32_t q)
{
    /* Zero-length receives: a write-with-imm or a credit only needs the completion. */
    struct ibv_recv_wr wr = {.wr_id = q, .num_sge = 0}, *bad;

    return -ibv_post_recv(vs->qp[q].id->qp, &wr, &bad);
}

/* Protection domain, CQ, channel and the registered rings, on the device of the first id. */
static int vs_alloc(mos_tp_conn_t *c, struct verbs_state *vs, struct ibv_context *ctx)
{
    size_t ring = (size_t)c->slot_bytes * c->slot_count;
    int cqe = (int)(vs->nq * (4 * c->slot_count + 2 * CTL_DEPTH) + 16), rc;

    if (!(vs->pd = ibv_alloc_pd(ctx)) || !(vs->cch = ibv_create_comp_channel(ctx)) ||
        !(vs->cq = ibv_create_cq(ctx, cqe, NULL, vs->cch, 0))) {
        rc = mos_errno_status();
        mos_err(TP_LOG, "%s: verbs resources (pd/cq): %s", c->peer, mos_strerror(rc));
        return rc;
    }
    if ((rc = ring_alloc(vs, &vs->rx, ring, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE)) < 0 ||
        (rc = ring_alloc(vs, &vs->tx, ring, IBV_ACCESS_LOCAL_WRITE)) < 0 ||
        (rc = ring_alloc(vs, &vs->ctl_rx, (size_t)CTL_DEPTH * CTL_BUF, IBV_ACCESS_LOCAL_WRITE)) < 0 ||
        (rc = ring_alloc(vs, &vs->ctl_tx, (size_t)CTL_DEPTH * CTL_BUF, IBV_ACCESS_LOCAL_WRITE)) < 0)
        return rc;
    mos_dbg(TP_LOG, "%s: staging %u x %u KiB slots per direction (%s pages)", c->peer,
            c->slot_count, c->slot_bytes / 1024, vs->rx.huge ? "huge" : "normal");
    vs->slot_free = calloc(c->slot_count, sizeof(bool));
    vs->ready_slot = calloc(c->slot_count, sizeof(uint32_t));
    vs->ready_len = calloc(c->slot_count, sizeof(uint32_t));
    vs->rx_frame_nr = calloc(c->slot_count, sizeof(uint64_t));
    if (!vs->slot_free || !vs->ready_slot || !vs->ready_len || !vs->rx_frame_nr)
        return -ENOMEM;
    /* Frame n goes to slot n % slot_count (verbs_frame_post), and a slot is reused only after
     * its credit: frames of one slot arrive in order, frames of different QPs may not. */
    for (uint32_t s = 0; s < c->slot_count; s++) {
        vs->slot_free[s] = true;
        vs->rx_frame_nr[s] = s;
    }
    if ((rc = ibv_req_notify_cq(vs->cq, 0)) != 0)
        return -rc;
    return 0;
}

static int vs_qp_create(mos_tp_conn_t *c, struct verbs_state *vs, uint32_t q, struct rdma_cm_id *id)
{
    uint32_t depth = q == 0 ? CTL_DEPTH : 2 * c->slot_count + 4;
    struct ibv_qp_init_attr attr = {
        .send_cq = vs->cq,
        .recv_cq = vs->cq,
        .qp_type = IBV_QPT_RC,
        .sq_sig_all = 0,
        .cap = {.max_send_wr = depth, .max_recv_wr = depth, .max_send_sge = 1,
                .max_recv_sge = 1, .max_inline_data = 128},
    };
    int rc;

    if (rdma_create_qp(id, vs->pd, &attr) != 0) {
        attr.cap.max_inline_data = 0; /* a provider without inline data */
        if (rdma_create_qp(id, vs->pd, &attr) != 0) {
            rc = mos_errno_status();
            mos_err(TP_LOG, "%s: rdma_create_qp: %s", c->peer, mos_strerror(rc));
            return rc;
        }
    }
    vs->qp[q].id = id;
    vs->qp[q].sq_depth = depth;
    if (q == 0)
        vs->max_inline = attr.cap.max_inline_data;
    for (uint32_t i = 0; i < depth; i++) {
        rc = q == 0 ? vs_post_ctl_recv(vs, i) : vs_post_bulk_recv(vs, q);
        if (rc < 0) {
            mos_err(TP_LOG, "%s: ibv_post_recv: %s", c->peer, mos_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static void vs_free(struct verbs_state *vs)
{
    struct ctl_item *it;

    if (!vs)
        return;
    for (uint32_t q = 0; q < MAX_QPS; q++)
        if (vs->qp[q].id) {
            if (vs->qp[q].id->qp)
                rdma_disconnect(vs->qp[q].id);
        }
    for (uint32_t q = 0; q < MAX_QPS; q++)
        if (vs->qp[q].id) {
            if (vs->qp[q].id->qp)
                rdma_destroy_qp(vs->qp[q].id);
            rdma_destroy_id(vs->qp[q].id);
        }
    ring_free(&vs->rx);
    ring_free(&vs->tx);
    ring_free(&vs->ctl_rx);
    ring_free(&vs->ctl_tx);
    if (vs->cq)
        ibv_destroy_cq(vs->cq);
    if (vs->cch)
        ibv_destroy_comp_channel(vs->cch);
    if (vs->pd)
        ibv_dealloc_pd(vs->pd);
    if (vs->ech)
        rdma_destroy_event_channel(vs->ech);
    while ((it = vs->ctl_head)) {
        vs->ctl_head = it->next;
        free(it);
    }
    free(vs->slot_free);
    free(vs->ready_slot);
    free(vs->rx_frame_nr);
    free(vs->ready_len);
    free(vs);
}

static struct verbs_state *vs_new(mos_tp_conn_t *c)
{
    struct verbs_state *vs = calloc(1, sizeof(*vs));

    if (!vs)
        return NULL;
    vs->nq = 1 + c->n_qps;
    vs->ctl_tail = &vs->ctl_head;
    return vs;
}

/* ---- completions ---- */

static int vs_wc_error(mos_tp_conn_t *c, const struct ibv_wc *wc)
{
    /* Flushes follow a disconnect or a QP error: the peer went away or broke the QP. */
    mos_err(TP_LOG, "%s: verbs completion error: %s (vendor 0x%x)", c->peer,
            ibv_wc_status_str(wc->status), wc->vendor_err);
    c->broken = true;
    return wc->status == IBV_WC_WR_FLUSH_ERR || wc->status == IBV_WC_RETRY_EXC_ERR
               ? MOS_E_PEER_GONE : -EIO;
}

static int vs_qp_index(const struct verbs_state *vs, uint32_t qp_num)
{
    for (uint32_t q = 0; q < vs->nq; q++)
        if (vs->qp[q].id && vs->qp[q].id->qp->qp_num == qp_num)
            return (int)q;
    return -1;
}

static int vs_ctl_arrived(mos_tp_conn_t *c, struct verbs_state *vs, const struct ibv_wc *wc)
{
    const uint8_t *buf = vs->ctl_rx.mem + wc->wr_id * CTL_BUF;
    struct mos_wire_hdr h;
    struct ctl_item *it;
    int rc;

    if (wc->wr_id >= CTL_DEPTH)
        return tp_conn_fail(c, MOS_E_PROTO, "control receive (bad buffer)");
    if ((rc = mos_wire_hdr_decode(buf, wc->byte_len, &h)) < 0 ||
        h.length != wc->byte_len - MOS_WIRE_HDR_BYTES)
        return tp_conn_fail(c, rc < 0 ? rc : MOS_E_PROTO, "control message");
    if (h.type == MOS_WIRE_BULK_END) {
        if (h.length != MOS_WIRE_BULK_END_BYTES || vs->end_seen)
            return tp_conn_fail(c, MOS_E_PROTO, "bulk end marker");
        if (tp_end_check(c, buf + MOS_WIRE_HDR_BYTES) < 0)
            return tp_conn_fail(c, MOS_E_TAMPERED, "bulk end marker");
        vs->end_seen = true;
        vs->end_frames = mos_get_le64(buf + MOS_WIRE_HDR_BYTES);
        vs->end_pages = mos_get_le64(buf + MOS_WIRE_HDR_BYTES + 8);
    } else if (h.type == MOS_WIRE_CONTROL || h.type == MOS_WIRE_REPLY || h.type == MOS_WIRE_CLOSE) {
        /* Copied out so the receive buffer goes back at once: a peer that sends many
         * messages while we are busy with bulk data can never starve the bulk end marker. */
        if (!(it = malloc(sizeof(*it) + h.length)))
            return -ENOMEM;
        it->next = NULL;
        it->hdr = h;
        memcpy(it->body, buf + MOS_WIRE_HDR_BYTES, h.length);
        *vs->ctl_tail = it;
        vs->ctl_tail = &it->next;
    } else {
        return tp_conn_fail(c, MOS_E_PROTO, "control message (unexpected type)");
    }
    if ((rc = vs_post_ctl_recv(vs, (uint32_t)wc->wr_id)) < 0)
        return tp_conn_fail(c, rc, "ibv_post_recv");
    return 0;
}

static int vs_bulk_arrived(mos_tp_conn_t *c, struct verbs_state *vs, const struct ibv_wc *wc, int q)
{
    uint32_t slot = ntohl(wc->imm_data);
    int rc;

    if (!(wc->wc_flags & IBV_WC_WITH_IMM) || slot >= c->slot_count ||
        (uint32_t)q != 1 + slot % c->n_qps)
        return tp_conn_fail(c, MOS_E_PROTO, "bulk completion (bad slot)");
    if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
        if (wc->byte_len > c->slot_bytes || vs->ready_tail - vs->ready_head >= c->slot_count)
            return tp_conn_fail(c, MOS_E_PROTO, "bulk frame (too long or beyond the credits)");
        vs->ready_slot[vs->ready_tail % c->slot_count] = slot;
        vs->ready_len[vs->ready_tail % c->slot_count] = wc->byte_len;
        vs->ready_tail++;
    } else { /* a credit */
        if (vs->slot_free[slot])
            return tp_conn_fail(c, MOS_E_PROTO, "credit for a free slot");
        vs->slot_free[slot] = true;
    }
    if ((rc = vs_post_bulk_recv(vs, (uint32_t)q)) < 0)
        return tp_conn_fail(c, rc, "ibv_post_recv");
    return 0;
}

static int vs_dispatch(mos_tp_conn_t *c, struct verbs_state *vs, const struct ibv_wc *wc)
{
    int q;

    if (wc->status != IBV_WC_SUCCESS)
        return vs_wc_error(c, wc);
    if ((q = vs_qp_index(vs, wc->qp_num)) < 0)
        return 0;
    if (!(wc->opcode & IBV_WC_RECV)) { /* a signaled send-side request */
        if (wc->wr_id + 1 > vs->qp[q].done)
            vs->qp[q].done = wc->wr_id + 1;
        return 0;
    }
    return q == 0 ? vs_ctl_arrived(c, vs, wc) : vs_bulk_arrived(c, vs, wc, q);
}

static int vs_poll(mos_tp_conn_t *c, struct verbs_state *vs)
{
    struct ibv_wc wc[16];
    int n, rc, total = 0;

    while ((n = ibv_poll_cq(vs->cq, 16, wc)) > 0) {
        for (int i = 0; i < n; i++)
            if ((rc = vs_dispatch(c, vs, &wc[i])) < 0)
                return rc;
        total += n;
    }
    if (n < 0)
        return tp_conn_fail(c, -EIO, "ibv_poll_cq");
    return total;
}

/* The TCP stream carries nothing after set-up but CLOSE: readable means the peer left. */
static int vs_check_ctl_fd(mos_tp_conn_t *c)
{
    struct mos_wire_hdr h;
    uint8_t body[128];
    int rc = tp_msg_recv(c->ctl_fd, &h, body, sizeof(body), 0);

    if (rc == -ETIMEDOUT)
        return 0;
    if (rc == 0 && h.type == MOS_WIRE_CLOSE) {
        c->broken = true;
        return MOS_E_PEER_GONE;
    }
    return tp_conn_fail(c, rc < 0 ? rc : MOS_E_PROTO, "verbs connection");
}

/* Make progress: poll the CQ, spin briefly, then sleep on the channel (and the TCP stream)
 * for up to timeout_ms. Returns the completions handled, or a status; -ETIMEDOUT. */
static int vs_progress(mos_tp_conn_t *c, struct verbs_state *vs, int timeout_ms)
{
    uint64_t t0 = mos_clock_now_ns();
    int n;

    do {
        if ((n = vs_poll(c, vs)) != 0)
            return n;
    } while (mos_clock_now_ns() - t0 < c->spin_ns);
    for (;;) {
        struct pollfd p[2] = {{vs->cch->fd, POLLIN, 0}, {c->ctl_fd, POLLIN, 0}};
        struct ibv_cq *ev_cq;
        void *ev_ctx;
        int r;

        if (ibv_req_notify_cq(vs->cq, 0) != 0)
            return tp_conn_fail(c, -EIO, "ibv_req_notify_cq");
        /* A completion between the last poll and the arm raises no event: poll once more. */
        if ((n = vs_poll(c, vs)) != 0)
            return n;
        r = poll(p, 2, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0)
            return mos_errno_status();
        if (p[0].revents) {
            if (ibv_get_cq_event(vs->cch, &ev_cq, &ev_ctx) == 0)
                ibv_ack_cq_events(ev_cq, 1);
            if ((n = vs_poll(c, vs)) != 0)
                return n;
        }
        if (p[1].revents && (n = vs_check_ctl_fd(c)) < 0)
            return n;
    }
}

/* Wait for room in QP q's send queue for one more request. */
static int vs_sq_wait_room(mos_tp_conn_t *c, struct verbs_state *vs, uint32_t q)
{
    struct vqp *p = &vs->qp[q];
    int rc;

    while (p->posted - p->done >= p->sq_depth - 1)
        if ((rc = vs_progress(c, vs, c->timeout_ms)) < 0)
            return rc == -ETIMEDOUT ? tp_conn_fail(c, rc, "send queue stalled") : rc;
    return 0;
}

/* Selective signaling: one request in a quarter of the queue asks for a completion, and so does
 * every request once the queue is nearly full, so completions keep freeing room. */
static bool vs_sq_signal(const struct vqp *p)
{
    uint32_t every = p->sq_depth / 4 ? p->sq_depth / 4 : 1;

    return (p->posted % every) == every - 1 || p->posted - p->done >= p->sq_depth - every - 1;
}

static int vs_post_send(mos_tp_conn_t *c, struct verbs_state *vs, uint32_t q,
                        struct ibv_send_wr *wr, bool force_signal)
{
    struct ibv_send_wr *bad;
    int rc;

    if ((rc = vs_sq_wait_room(c, vs, q)) < 0)
        return rc;
    wr->wr_id = vs->qp[q].posted;
    if (force_signal || vs_sq_signal(&vs->qp[q]))
        wr->send_flags |= IBV_SEND_SIGNALED;
    if ((rc = ibv_post_send(vs->qp[q].id->qp, wr, &bad)) != 0)
        return tp_conn_fail(c, -rc, "ibv_post_send");
    vs->qp[q].posted++;
    return 0;
}

/* ---- control ---- */

static int verbs_msg_post(mos_tp_conn_t *c, struct verbs_state *vs, uint16_t type, uint32_t id,
                          const void *msg, size_t len, bool wait_done)
{
    uint8_t *buf = vs->ctl_tx.mem + (vs->qp[0].posted % CTL_DEPTH) * CTL_BUF;
    struct ibv_sge sge = {(uintptr_t)buf, (uint32_t)(MOS_WIRE_HDR_BYTES + len), vs->ctl_tx.mr->lkey};
    struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND};
    uint64_t seq;
    int rc;

    /* The buffer slot used is posted % CTL_DEPTH, and the send queue (depth CTL_DEPTH) never
     * holds more than CTL_DEPTH - 1 requests, so the slot is free by the time we write it. */
    if ((rc = vs_sq_wait_room(c, vs, 0)) < 0)
        return rc;
    buf = vs->ctl_tx.mem + (vs->qp[0].posted % CTL_DEPTH) * CTL_BUF;
    sge.addr = (uintptr_t)buf;
    mos_wire_hdr_make(type, (uint32_t)len, id, buf);
    if (len)
        memcpy(buf + MOS_WIRE_HDR_BYTES, msg, len);
    if (sge.length <= vs->max_inline)
        wr.send_flags |= IBV_SEND_INLINE;
    seq = vs->qp[0].posted;
    if ((rc = vs_post_send(c, vs, 0, &wr, wait_done)) < 0)
        return rc;
    while (wait_done && vs->qp[0].done <= seq)
        if ((rc = vs_progress(c, vs, c->timeout_ms)) < 0)
            return rc == -ETIMEDOUT ? tp_conn_fail(c, rc, "control send") : rc;
    return 0;
}

static int verbs_ctl_send(mos_tp_conn_t *c, uint16_t type, uint32_t id, const void *msg, size_t len)
{
    return verbs_msg_post(c, c->be, type, id, msg, len, false);
}

static int verbs_ctl_recv(mos_tp_conn_t *c, struct mos_wire_hdr *hdr, void *buf, size_t cap,
                          int timeout_ms)
{
    struct verbs_state *vs = c->be;
    uint64_t deadline = mos_clock_now_ns() + (uint64_t)timeout_ms * MOS_NSEC_PER_MSEC;
    struct ctl_item *it;
    int rc;

    while (!vs->ctl_head) {
        uint64_t now = mos_clock_now_ns();
        int left = now >= deadline ? 0 : (int)((deadline - now) / MOS_NSEC_PER_MSEC);
        if ((rc = vs_progress(c, vs, left)) < 0)
            return rc;
        if (!vs->ctl_head && left == 0 && mos_clock_now_ns() >= deadline)
            return -ETIMEDOUT;
    }
    it = vs->ctl_head;
    vs->ctl_head = it->next;
    if (!vs->ctl_head)
        vs->ctl_tail = &vs->ctl_head;
    *hdr = it->hdr;
    rc = it->hdr.length > cap ? MOS_E_LIMIT : 0;
    if (rc == 0)
        memcpy(buf, it->body, it->hdr.length);
    free(it);
    return rc;
}

/* ---- bulk ---- */

static int verbs_frame_post(mos_tp_conn_t *c, pid_t pid, size_t k, uint64_t pages)
{
    struct verbs_state *vs = c->be;
    uint32_t slot = (uint32_t)(vs->tx_seq % c->slot_count), q = 1 + slot % c->n_qps;
    uint8_t *base = vs->tx.mem + (size_t)slot * c->slot_bytes, *data;
    size_t table = mos_wire_runs_table_bytes(k);
    int rc;

    while (!vs->slot_free[slot])
        if ((rc = vs_progress(c, vs, c->timeout_ms)) < 0)
            return rc == -ETIMEDOUT ? tp_conn_fail(c, rc, "waiting for a credit") : rc;
    mos_wire_runs_encode(vs->runs, k, base);
    data = base + table;
    if (pid) {
        if ((rc = tp_source_fill(c, pid, vs->runs, k, data)) < 0)
            return rc;
    } else {
        for (size_t i = 0; i < k; i++) {
            size_t bytes = vs->runs[i].npages * MOS_TP_PAGE_SIZE;
            memcpy(data, (void *)(uintptr_t)vs->runs[i].addr, bytes);
            data += bytes;
        }
    }
    /* tagged in the slot, after the pages (tp_bulk_frames left room) */
    size_t bytes = table + pages * MOS_TP_PAGE_SIZE;
    struct iovec whole = {base, bytes};
    tp_frame_tag(c, vs->tx_seq, &whole, 1, base + bytes);
    struct ibv_sge sge = {(uintptr_t)base, (uint32_t)(bytes + MOS_WIRE_FRAME_TAG_BYTES), vs->tx.mr->lkey};
    struct ibv_send_wr wr = {
        .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE_WITH_IMM,
        .imm_data = htonl(slot),
        .wr.rdma = {.remote_addr = vs->remote_addr + (uint64_t)slot * c->slot_bytes,
                    .rkey = vs->remote_rkey},
    };
    vs->slot_free[slot] = false;
    if ((rc = vs_post_send(c, vs, q, &wr, false)) < 0)
        return rc;
    vs->tx_seq++;
    return 0;
}

static int verbs_bulk_send(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs, size_t n)
{
    struct verbs_state *vs = c->be;
    uint8_t end[MOS_WIRE_BULK_END_BYTES];
    int rc = tp_bulk_frames(c, pid, runs, n, vs->runs, VERBS_FRAME_RUNS, verbs_frame_post, end), rc2;

    if (c->broken)
        return rc;
    /* Every credit back first (the peer placed every frame), then the end marker, whose
     * completion we wait for: frames of the next bulk send cannot overtake this end marker
     * on another QP, and the receiver never sees the marker before the frames it counts. */
    for (uint32_t s = 0; s < c->slot_count; s++)
        while (!vs->slot_free[s])
            if ((rc2 = vs_progress(c, vs, c->timeout_ms)) < 0)
                return rc2 == -ETIMEDOUT ? tp_conn_fail(c, rc2, "waiting for the last credits") : rc2;
    if ((rc2 = verbs_msg_post(c, vs, MOS_WIRE_BULK_END, 0, end, sizeof(end), true)) < 0)
        return rc2;
    return rc;
}

static int verbs_credit_send(mos_tp_conn_t *c, struct verbs_state *vs, uint32_t slot)
{
    struct ibv_send_wr wr = {.num_sge = 0, .opcode = IBV_WR_SEND_WITH_IMM,
                             .send_flags = IBV_SEND_INLINE, .imm_data = htonl(slot)};

    return vs_post_send(c, vs, 1 + slot % c->n_qps, &wr, false);
}

static int verbs_bulk_recv(mos_tp_conn_t *c, mos_page_place_fn place, void *arg,
                           struct mos_tp_bulk_stats *stats)
{
    struct verbs_state *vs = c->be;
    struct mos_tp_bulk_stats st = {0};
    const uint8_t *data;
    size_t k;
    int rc;

    for (;;) {
        if (vs->ready_head != vs->ready_tail) {
            uint32_t slot = vs->ready_slot[vs->ready_head % c->slot_count];
            uint32_t len = vs->ready_len[vs->ready_head % c->slot_count];
            const uint8_t *base = vs->rx.mem + (size_t)slot * c->slot_bytes;

            vs->ready_head++;
            if (len < MOS_WIRE_FRAME_TAG_BYTES)
                return tp_conn_fail(c, MOS_E_PROTO, "page-run frame (shorter than its tag)");
            len -= MOS_WIRE_FRAME_TAG_BYTES;
            struct iovec whole = {(void *)base, len};
            if (tp_frame_check(c, vs->rx_frame_nr[slot], &whole, 1, base + len) < 0)
                return tp_conn_fail(c, MOS_E_TAMPERED, "page-run frame");
            vs->rx_frame_nr[slot] += c->slot_count;
            if ((rc = mos_wire_runs_decode(base, len, vs->runs, VERBS_FRAME_RUNS, &k, &data)) < 0)
                return tp_conn_fail(c, rc, "page-run frame");
            /* A consumer that fails leaves the rest of the transfer in flight: the
             * connection cannot be resynchronised, so it is given up. */
            if ((rc = place(arg, vs->runs, k, data)) < 0) {
                c->broken = true; /* the consumer logged why */
                return rc;
            }
            if ((rc = verbs_credit_send(c, vs, slot)) < 0)
                return rc;
            st.frames++;
            st.pages += (len - (size_t)(data - base)) / MOS_TP_PAGE_SIZE;
            continue;
        }
        if (vs->end_seen && vs->end_frames == MOS_WIRE_BULK_ABORTED) {
            vs->end_seen = false;
            mos_err(TP_LOG, "%s: the sender aborted the bulk transfer (its source failed)", c->peer);
            return -ECANCELED;
        }
        if (vs->end_seen && st.frames >= vs->end_frames) {
            vs->end_seen = false;
            if (st.frames != vs->end_frames || st.pages != vs->end_pages)
                return tp_conn_fail(c, MOS_E_PROTO, "bulk end marker (counts differ)");
            break;
        }
        if ((rc = vs_progress(c, vs, c->timeout_ms)) < 0)
            return rc == -ETIMEDOUT ? tp_conn_fail(c, MOS_E_TRUNCATED, "bulk receive (timed out)") : rc;
    }
    if (stats)
        *stats = st;
    return 0;
}

static int verbs_fd(const mos_tp_conn_t *c)
{
    const struct verbs_state *vs = c->be;

    /* Armed after every poll: readable once a completion (a message, a frame) arrives. */
    return vs->cch->fd;
}

static void verbs_destroy(mos_tp_conn_t *c)
{
    vs_free(c->be);
    c->be = NULL;
}

const struct mos_tp_ops mos_tp_verbs_ops = {
    .name = "verbs",
    .ctl_send = verbs_ctl_send,
    .ctl_recv = verbs_ctl_recv,
    .bulk_send = verbs_bulk_send,
    .bulk_recv = verbs_bulk_recv,
    .fd = verbs_fd,
    .destroy = verbs_destroy,
};

/* ---- connection set-up ---- */

static void vs_attach(mos_tp_conn_t *c, struct verbs_state *vs)
{
    c->be = vs;
    c->ops = &mos_tp_verbs_ops;
    c->backend = MOS_TP_VERBS;
}

#define PRIV_REQ_BYTES (MOS_WIRE_TOKEN_BYTES + 4 + 8 + 4)
#define PRIV_REP_BYTES (8 + 4)

/* Wait for the next rdma_cm event on ech (also watching fd, if >= 0, for readability). */
static int cm_wait(struct rdma_event_channel *ech, int fd, int timeout_ms,
                   struct rdma_cm_event **ev)
{
    struct pollfd p[2] = {{ech->fd, POLLIN, 0}, {fd, POLLIN, 0}};
    int r;

    do
        r = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return -ETIMEDOUT;
    if (r < 0)
        return mos_errno_status();
    if (fd >= 0 && p[1].revents)
        return 1; /* the TCP stream has something */
    if (rdma_get_cm_event(ech, ev) != 0)
        return mos_errno_status();
    return 0;
}

/* rdma_cm ids live on a blocking channel set non-blocking so cm_wait's poll decides. */
static int cm_channel_new(struct rdma_event_channel **out)
{
    struct rdma_event_channel *ech = rdma_create_event_channel();

    if (!ech)
        return mos_errno_status();
    *out = ech;
    return 0;
}

int tp_verbs_server_listen(mos_tp_conn_t *c, void **listen_state, uint16_t *port)
{
    struct listen_state *ls = calloc(1, sizeof(*ls));
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int rc;

    if (!ls)
        return -ENOMEM;
    if ((rc = tp_ctl_addr(c, false, 0, &ss, &len)) < 0)
        goto fail;
    if ((rc = cm_channel_new(&ls->ech)) < 0)
        goto fail;
    if (rdma_create_id(ls->ech, &ls->lid, NULL, RDMA_PS_TCP) != 0 ||
        rdma_bind_addr(ls->lid, (struct sockaddr *)&ss) != 0 || rdma_listen(ls->lid, 8) != 0) {
        rc = mos_errno_status();
        goto fail;
    }
    *port = ntohs(rdma_get_src_port(ls->lid));
    *listen_state = ls;
    return 0;
fail:
    tp_verbs_listen_free(ls);
    return rc;
}

void tp_verbs_listen_free(void *listen_state)
{
    struct listen_state *ls = listen_state;

    if (!ls)
        return;
    if (ls->lid)
        rdma_destroy_id(ls->lid);
    if (ls->ech)
        rdma_destroy_event_channel(ls->ech);
    free(ls);
}

/* Server: one connect request. */
static int server_conn_request(mos_tp_conn_t *c, struct verbs_state *vs, struct rdma_cm_event *ev,
                               bool *have)
{
    const uint8_t *pd = ev->param.conn.private_data;
    struct rdma_cm_id *id = ev->id;
    uint8_t rep[PRIV_REP_BYTES];
    struct rdma_conn_param cp = {.private_data = rep, .private_data_len = sizeof(rep),
                                 .responder_resources = 1, .initiator_depth = 1,
                                 .rnr_retry_count = 7};
    uint32_t q;
    int rc;

    /* Only the authenticated client holds the token; anything else is refused. */
    if (!pd || ev->param.conn.private_data_len < PRIV_REQ_BYTES ||
        memcmp(pd, c->token, MOS_WIRE_TOKEN_BYTES) != 0 ||
        (q = mos_get_le32(pd + MOS_WIRE_TOKEN_BYTES)) >= vs->nq || have[q]) {
        mos_warn(TP_LOG, "%s: refused an rdma_cm connect request without this session's token",
                 c->peer);
        rdma_reject(id, NULL, 0);
        rdma_destroy_id(id);
        return 0;
    }
    if (!vs->pd && (rc = vs_alloc(c, vs, id->verbs)) < 0)
        goto reject;
    vs->remote_addr = mos_get_le64(pd + MOS_WIRE_TOKEN_BYTES + 4);
    vs->remote_rkey = mos_get_le32(pd + MOS_WIRE_TOKEN_BYTES + 12);
    if ((rc = vs_qp_create(c, vs, q, id)) < 0)
        goto reject;
    mos_put_le64(rep, (uintptr_t)vs->rx.mem);
    mos_put_le32(rep + 8, vs->rx.mr->rkey);
    if (rdma_accept(id, &cp) != 0) {
        rc = mos_errno_status();
        mos_err(TP_LOG, "%s: rdma_accept: %s", c->peer, mos_strerror(rc));
        return rc;
    }
    have[q] = true;
    return 0;
reject:
    rdma_reject(id, NULL, 0);
    if (!vs->qp[q].id)
        rdma_destroy_id(id);
    return rc;
}

int tp_verbs_server_accept(mos_tp_conn_t *c, void *listen_state)
{
    struct listen_state *ls = listen_state;
    struct verbs_state *vs = vs_new(c);
    uint64_t deadline = mos_clock_now_ns() + (uint64_t)c->timeout_ms * MOS_NSEC_PER_MSEC;
    bool have[MAX_QPS] = {false};
    uint32_t established = 0;
    bool setup_ok = false;
    struct rdma_cm_event *ev;
    int rc;

    if (!vs)
        return -ENOMEM;
    for (;;) {
        uint64_t now = mos_clock_now_ns();
        if (now >= deadline) {
            rc = -ETIMEDOUT;
            mos_err(TP_LOG, "%s: verbs set-up timed out", c->peer);
            goto fail;
        }
        rc = cm_wait(ls->ech, setup_ok ? -1 : c->ctl_fd, (int)((deadline - now) / MOS_NSEC_PER_MSEC) + 1, &ev);
        if (rc < 0)
            goto fail;
        if (rc == 1) { /* SETUP from the client: verbs is up, or it falls back to tcp */
            struct mos_wire_hdr h;
            uint8_t body[128];
            if ((rc = tp_msg_recv(c->ctl_fd, &h, body, sizeof(body), 0)) < 0 ||
                h.type != MOS_WIRE_SETUP || h.length < 4) {
                rc = rc < 0 ? rc : MOS_E_PROTO;
                mos_err(TP_LOG, "%s: verbs set-up: %s", c->peer, mos_strerror(rc));
                goto fail;
            }
            if (mos_get_le32(body) != 1) {
                body[h.length < sizeof(body) ? h.length : sizeof(body) - 1] = '\0';
                mos_info(TP_LOG, "%s: using tcp: client could not set up verbs: %s", c->peer,
                         (char *)body + 4);
                vs_free(vs);
                return 0;
            }
            /* The client's ESTABLISHED can come before ours: wait for the rest below. */
            setup_ok = true;
            if (established == vs->nq)
                break;
            continue;
        }
        if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
            rc = server_conn_request(c, vs, ev, have);
        } else if (ev->event == RDMA_CM_EVENT_ESTABLISHED) {
            established++;
        } else if (ev->event == RDMA_CM_EVENT_REJECTED || ev->event == RDMA_CM_EVENT_CONNECT_ERROR ||
                   ev->event == RDMA_CM_EVENT_UNREACHABLE || ev->event == RDMA_CM_EVENT_DISCONNECTED) {
            mos_err(TP_LOG, "%s: verbs set-up: %s", c->peer, rdma_event_str(ev->event));
            rc = -ECONNABORTED;
        } else {
            mos_dbg(TP_LOG, "%s: rdma_cm event %s during set-up", c->peer, rdma_event_str(ev->event));
        }
        rdma_ack_cm_event(ev);
        if (rc < 0)
            goto fail;
        if (setup_ok && established == vs->nq)
            break;
    }
    /* The accepted ids report their later events (disconnect) on the listener's channel,
     * which this connection keeps. */
    vs->ech = ls->ech;
    ls->ech = NULL;
    rdma_destroy_id(ls->lid);
    ls->lid = NULL;
    vs_attach(c, vs);
    return 1;
fail:
    vs_free(vs);
    return rc;
}

/* One resolution step of rdma_cm (dst: address, NULL: route) and its event. The failure
 * reason ("address resolution failed: ...") goes to why, for the fallback log line. */
static int cm_resolve(struct verbs_state *vs, struct rdma_cm_id *id, struct sockaddr *dst,
                      const char *what, char *why, size_t why_len)
{
    enum rdma_cm_event_type want = dst ? RDMA_CM_EVENT_ADDR_RESOLVED : RDMA_CM_EVENT_ROUTE_RESOLVED;
    struct rdma_cm_event *ev;
    int r = dst ? rdma_resolve_addr(id, NULL, dst, CM_TIMEOUT_MS)
                : rdma_resolve_route(id, CM_TIMEOUT_MS);

    if (r != 0 || cm_wait(vs->ech, -1, CM_TIMEOUT_MS * 2, &ev) != 0) {
        snprintf(why, why_len, "%s resolution failed: %s", what, strerror(errno));
        return -EHOSTUNREACH;
    }
    enum rdma_cm_event_type got = ev->event;
    rdma_ack_cm_event(ev);
    if (got != want) {
        snprintf(why, why_len, "%s resolution failed: %s", what, rdma_event_str(got));
        return -EHOSTUNREACH;
    }
    return 0;
}

static int client_connect_one(mos_tp_conn_t *c, struct verbs_state *vs, uint32_t q,
                              struct sockaddr *dst, char *why, size_t why_len)
{
    struct rdma_cm_id *id;
    struct rdma_cm_event *ev;
    uint8_t req[PRIV_REQ_BYTES];
    struct rdma_conn_param cp = {.private_data = req, .private_data_len = sizeof(req),
                                 .responder_resources = 1, .initiator_depth = 1,
                                 .retry_count = 7, .rnr_retry_count = 7};
    enum rdma_cm_event_type got;
    int rc;

    if (rdma_create_id(vs->ech, &id, NULL, RDMA_PS_TCP) != 0) {
        rc = mos_errno_status();
        snprintf(why, why_len, "rdma_create_id: %s", mos_strerror(rc));
        return rc;
    }
    vs->qp[q].id = id;
    if ((rc = cm_resolve(vs, id, dst, "address", why, why_len)) < 0 ||
        (rc = cm_resolve(vs, id, NULL, "route", why, why_len)) < 0)
        return rc;
    if (!vs->pd && (rc = vs_alloc(c, vs, id->verbs)) < 0) {
        snprintf(why, why_len, "verbs resources: %s", mos_strerror(rc));
        return rc;
    }
    if ((rc = vs_qp_create(c, vs, q, id)) < 0) {
        snprintf(why, why_len, "QP creation: %s", mos_strerror(rc));
        return rc;
    }
    memcpy(req, c->token, MOS_WIRE_TOKEN_BYTES);
    mos_put_le32(req + MOS_WIRE_TOKEN_BYTES, q);
    mos_put_le64(req + MOS_WIRE_TOKEN_BYTES + 4, (uintptr_t)vs->rx.mem);
    mos_put_le32(req + MOS_WIRE_TOKEN_BYTES + 12, vs->rx.mr->rkey);
    if (rdma_connect(id, &cp) != 0 || cm_wait(vs->ech, -1, c->timeout_ms, &ev) != 0) {
        rc = mos_errno_status();
        snprintf(why, why_len, "rdma_connect: %s", mos_strerror(rc));
        return rc;
    }
    got = ev->event;
    if (got == RDMA_CM_EVENT_ESTABLISHED && ev->param.conn.private_data &&
        ev->param.conn.private_data_len >= PRIV_REP_BYTES) {
        vs->remote_addr = mos_get_le64(ev->param.conn.private_data);
        vs->remote_rkey = mos_get_le32((const uint8_t *)ev->param.conn.private_data + 8);
    } else if (got == RDMA_CM_EVENT_ESTABLISHED) {
        got = RDMA_CM_EVENT_CONNECT_ERROR; /* no ring address from the server */
    }
    rdma_ack_cm_event(ev);
    if (got != RDMA_CM_EVENT_ESTABLISHED) {
        snprintf(why, why_len, "rdma_connect: %s", rdma_event_str(got));
        return -ECONNREFUSED;
    }
    return 0;
}

static int client_setup_send(mos_tp_conn_t *c, uint32_t ok, const char *why)
{
    return tp_reason_send(c->ctl_fd, MOS_WIRE_SETUP, ok, why);
}

int tp_verbs_client_connect(mos_tp_conn_t *c, uint16_t cm_port, char *why, size_t why_len)
{
    struct verbs_state *vs = vs_new(c);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int rc;

    if (!vs)
        return -ENOMEM;
    if ((rc = tp_ctl_addr(c, true, cm_port, &ss, &len)) < 0) {
        snprintf(why, why_len, "getpeername: %s", mos_strerror(rc));
        goto fallback;
    }
    if ((rc = cm_channel_new(&vs->ech)) < 0) {
        snprintf(why, why_len, "rdma_create_event_channel: %s", mos_strerror(rc));
        goto fallback;
    }
    for (uint32_t q = 0; q < vs->nq; q++)
        if ((rc = client_connect_one(c, vs, q, (struct sockaddr *)&ss, why, why_len)) < 0)
            goto fallback;
    if ((rc = client_setup_send(c, 1, "")) < 0) {
        mos_err(TP_LOG, "%s: verbs set-up: %s", c->peer, mos_strerror(rc));
        vs_free(vs);
        return rc;
    }
    vs_attach(c, vs);
    return 1;
fallback:
    vs_free(vs);
    if ((rc = client_setup_send(c, 0, why)) < 0) {
        mos_err(TP_LOG, "%s: verbs set-up: %s", c->peer, mos_strerror(rc));
        return rc;
    }
    return 0;
}

#endif
