/* Connections: the key proof, the capability hello, backend selection, and the public calls
 * that dispatch to the backend's ops table.
 *
 * Handshake on the first TCP stream (client C, server S): the key proof of mos/auth.h with the
 * roles "mos-client" and "mos-server", its messages carried as CHALLENGE and PROOF,
 *   C -> S  CHALLENGE nc
 *   S -> C  PROOF     ns | MAC("mos-server", nc, ns)
 *   C -> S  PROOF     MAC("mos-client", nc, ns)        (CLOSE auth instead if S's proof failed)
 *   (S -> C CLOSE auth if C's proof failed), then
 *   C -> S  HELLO     caps, wanted backend, slot size/count, QPs, why no verbs
 *   S -> C  HELLO     caps, chosen backend, agreed sizes, session token, bulk/cm ports
 * then the chosen backend's set-up (tcp: ATTACH on a second stream; verbs: rdma_cm connects
 * carrying the token, then SETUP on the first stream). */
#include "tp_priv.h"

#include "mos/auth.h"
#include "mos/config.h"
#include "mos/log.h"
#include "mos/seal.h"
#include "mos/status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mos_tp_listener {
    int fd;
    struct mos_tp_opts opts;
    mos_key_t key;
};

void mos_tp_opts_default(struct mos_tp_opts *opts)
{
    const char *env;
    int b;

    *opts = (struct mos_tp_opts){
        .backend = MOS_TP_AUTO,
        .slot_bytes = 1u << 20,
        .slot_count = 16,
        .n_qps = 1,
        .timeout_ms = 10000,
        .spin_us = 50,
    };
    if ((env = getenv("MOS_TRANSPORT_SPIN_US")) && *env)
        opts->spin_us = (uint32_t)strtoul(env, NULL, 10);
    env = getenv("MOS_TRANSPORT");
    if (env && *env) {
        if ((b = mos_tp_backend_parse(env)) >= 0)
            opts->backend = (enum mos_tp_backend)b;
        else
            mos_warn(TP_LOG, "MOS_TRANSPORT='%s' is not auto, tcp or verbs; using auto", env);
    }
}

void mos_tp_opts_from_config(const struct mos_config *cfg, const mos_key_t *key,
                             struct mos_tp_opts *opts)
{
    const char *env = getenv("MOS_TRANSPORT");
    int b = mos_tp_backend_parse(cfg->transport);

    mos_tp_opts_default(opts);
    opts->key = key;
    if (!(env && *env) && b >= 0)
        opts->backend = (enum mos_tp_backend)b;
}

int mos_tp_backend_parse(const char *name)
{
    if (strcmp(name, "auto") == 0)
        return MOS_TP_AUTO;
    if (strcmp(name, "tcp") == 0)
        return MOS_TP_TCP;
    if (strcmp(name, "verbs") == 0)
        return MOS_TP_VERBS;
    return -1;
}

const char *mos_tp_backend_name(enum mos_tp_backend backend)
{
    return backend == MOS_TP_TCP ? "tcp" : backend == MOS_TP_VERBS ? "verbs" : "auto";
}

static int opts_check(const struct mos_tp_opts *o)
{
    if (o->slot_bytes < 64 * 1024 || o->slot_bytes > MOS_WIRE_MAX_BULK ||
        o->slot_bytes % MOS_TP_PAGE_SIZE || o->slot_count < 2 || o->slot_count > 1024 ||
        o->n_qps < 1 || o->n_qps > 16 || o->backend > MOS_TP_VERBS || o->spin_us > 1000000) {
        mos_err(TP_LOG, "bad transport options: slot %u bytes (64 KiB..64 MiB, whole pages), "
                "%u slots (2..1024), %u QPs (1..16)", o->slot_bytes, o->slot_count, o->n_qps);
        return MOS_E_CONFIG;
    }
    return 0;
}

int tp_conn_fail(mos_tp_conn_t *c, int status, const char *what)
{
    if (!c->broken) {
        const char *hint = status == MOS_E_PEER_GONE  ? " (peer closed the connection)"
                           : status == MOS_E_TRUNCATED ? " (peer vanished mid-message)"
                                                       : "";
        mos_err(TP_LOG, "%s: %s: %s%s; closing the connection", c->peer, what,
                mos_strerror(status), hint);
    }
    c->broken = true;
    return status;
}

static mos_tp_conn_t *conn_new(int fd, const struct mos_tp_opts *o, bool server)
{
    mos_tp_conn_t *c = calloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (!c)
        return NULL;
    c->ctl_fd = fd;
    c->is_server = server;
    c->timeout_ms = o->timeout_ms;
    c->spin_ns = (uint64_t)o->spin_us * 1000;
    c->next_id = 1;
    if (!(c->ctl_box = malloc(MOS_WIRE_MAX_CONTROL)) || !(c->ctl_open = malloc(MOS_WIRE_MAX_CONTROL))) {
        free(c->ctl_box);
        free(c);
        return NULL;
    }
    if (o->key)
        c->key = *o->key;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        tp_addr_text((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
    else
        snprintf(c->peer, sizeof(c->peer), "?");
    return c;
}

static void conn_free(mos_tp_conn_t *c)
{
    if (c->ops)
        c->ops->destroy(c);
    if (c->ctl_fd >= 0)
        close(c->ctl_fd);
    mos_seal_wipe(&c->ctl);
    mos_seal_wipe(&c->bulk);
    free(c->ctl_box);
    free(c->ctl_open);
    free(c);
}

static void send_close(mos_tp_conn_t *c, uint32_t reason, const char *text)
{
    (void)tp_reason_send(c->ctl_fd, MOS_WIRE_CLOSE, reason, text);
}

/* A CLOSE from the peer during the handshake: log its reason, return the status. */
static int peer_closed(mos_tp_conn_t *c, const uint8_t *body, uint32_t len)
{
    char text[MOS_WIRE_REASON_BYTES] = "";
    uint32_t reason = len >= 4 ? mos_get_le32(body) : 0;

    if (len > 4) {
        size_t n = len - 4 < sizeof(text) - 1 ? len - 4 : sizeof(text) - 1;
        memcpy(text, body + 4, n);
        for (size_t i = 0; i < n; i++)
            if (text[i] < 0x20 || text[i] > 0x7e)
                text[i] = '?';
    }
    if (reason == MOS_WIRE_CLOSE_AUTH) {
        mos_err(TP_LOG, "%s refused our cluster-key proof: the two nodes hold different keys",
                c->peer);
        return MOS_E_AUTH;
    }
    mos_err(TP_LOG, "%s closed the connection during set-up: %s", c->peer, text[0] ? text : "no reason");
    return reason == MOS_WIRE_CLOSE_BACKEND ? MOS_E_UNSUPPORTED : MOS_E_PEER_GONE;
}

/* Receive one handshake message of the expected type (a CLOSE is reported as such). */
static int hs_recv(mos_tp_conn_t *c, uint16_t type, void *buf, size_t len, const char *what)
{
    uint8_t body[MOS_WIRE_HELLO_BYTES + 128];
    struct mos_wire_hdr h;
    int rc = tp_msg_recv(c->ctl_fd, &h, body, sizeof(body), c->timeout_ms);

    if (rc == 0 && h.type == MOS_WIRE_CLOSE)
        return peer_closed(c, body, h.length);
    if (rc == 0 && (h.type != type || h.length != len))
        rc = MOS_E_PROTO;
    if (rc < 0) {
        mos_err(TP_LOG, "%s: handshake (%s): %s", c->peer, what, mos_strerror(rc));
        return rc;
    }
    memcpy(buf, body, len);
    return 0;
}

static int auth_send(void *arg, enum mos_auth_msg msg, const void *buf, size_t len)
{
    mos_tp_conn_t *c = arg;
    uint16_t type = msg == MOS_AUTH_CHALLENGE ? MOS_WIRE_CHALLENGE : MOS_WIRE_PROOF;
    int rc = tp_msg_send(c->ctl_fd, type, 0, buf, len);

    if (rc < 0)
        mos_err(TP_LOG, "%s: handshake: %s", c->peer, mos_strerror(rc));
    return rc;
}

static int auth_recv(void *arg, enum mos_auth_msg msg, void *buf, size_t len)
{
    mos_tp_conn_t *c = arg;

    if (msg == MOS_AUTH_CHALLENGE)
        return hs_recv(c, MOS_WIRE_CHALLENGE, buf, len, "client challenge");
    return hs_recv(c, MOS_WIRE_PROOF, buf, len,
                   msg == MOS_AUTH_SERVER_PROOF ? "server proof" : "client proof");
}

static void auth_refuse(void *arg)
{
    mos_tp_conn_t *c = arg;

    mos_err(TP_LOG, "%s failed the cluster-key proof: the two nodes hold different keys",
            c->peer);
    send_close(c, MOS_WIRE_CLOSE_AUTH, "cluster-key proof failed");
}

/* Both ends prove the cluster key before any other message, and take the session's keys. */
static int conn_auth(mos_tp_conn_t *c)
{
    uint8_t session[MOS_AUTH_SESSION_BYTES];
    int rc;
    const struct mos_auth a = {
        .key = &c->key,
        .client_role = "mos-client",
        .server_role = "mos-server",
        .io = {.send = auth_send, .recv = auth_recv, .refuse = auth_refuse, .arg = c},
    };

    rc = c->is_server ? mos_auth_server(&a, session) : mos_auth_client(&a, session);
    if (rc == 0) {
        mos_seal_init(&c->ctl, session, MOS_SEAL_CONTROL, !c->is_server);
        mos_seal_init(&c->bulk, session, MOS_SEAL_BULK, !c->is_server);
    }
    explicit_bzero(session, sizeof(session));
    return rc;
}

/* The header a sealed message binds: its type and id (its length is the ciphertext's). */
static void seal_ad(uint16_t type, uint32_t id, uint8_t ad[6])
{
    mos_put_le16(ad, type);
    mos_put_le32(ad + 2, id);
}

/* Hellos are sealed like control messages: ports, sizes and the bulk token cannot be read or
 * changed on the way (no downgrade to tcp, no bulk stream redirected). */
static int hello_send(mos_tp_conn_t *c, const struct mos_wire_hello *h)
{
    uint8_t buf[MOS_WIRE_HELLO_SEALED_BYTES], ad[6];
    int rc;

    mos_wire_hello_encode(h, buf);
    seal_ad(MOS_WIRE_HELLO, 0, ad);
    mos_seal_box(&c->ctl.tx, ad, sizeof(ad), buf, buf, MOS_WIRE_HELLO_BYTES,
                 buf + MOS_WIRE_HELLO_BYTES);
    if ((rc = tp_msg_send(c->ctl_fd, MOS_WIRE_HELLO, 0, buf, sizeof(buf))) < 0)
        mos_err(TP_LOG, "%s: handshake: %s", c->peer, mos_strerror(rc));
    return rc;
}

static int hello_recv(mos_tp_conn_t *c, struct mos_wire_hello *h)
{
    uint8_t buf[MOS_WIRE_HELLO_SEALED_BYTES], ad[6];
    int rc;

    if ((rc = hs_recv(c, MOS_WIRE_HELLO, buf, sizeof(buf), "hello")) < 0)
        return rc;
    seal_ad(MOS_WIRE_HELLO, 0, ad);
    if ((rc = mos_seal_unbox(&c->ctl.rx, ad, sizeof(ad), buf, buf, MOS_WIRE_HELLO_BYTES,
                             buf + MOS_WIRE_HELLO_BYTES)) < 0) {
        mos_err(TP_LOG, "%s: handshake (hello): %s", c->peer, mos_strerror(rc));
        return rc;
    }
    if ((rc = mos_wire_hello_decode(buf, MOS_WIRE_HELLO_BYTES, h)) < 0)
        mos_err(TP_LOG, "%s: handshake: malformed hello", c->peer);
    return rc;
}

/* Our side's hello: verbs offered only if we would use it and the device checks pass. */
static void hello_local(const struct mos_tp_opts *o, struct mos_wire_hello *h)
{
    memset(h, 0, sizeof(*h));
    h->backend = o->backend;
    h->slot_bytes = o->slot_bytes;
    h->slot_count = o->slot_count;
    h->n_qps = o->n_qps;
    if (o->backend == MOS_TP_TCP)
        snprintf(h->reason, sizeof(h->reason), "MOS_TRANSPORT=tcp");
    else if (tp_verbs_probe(tp_verbs_lock_bytes(o->slot_bytes, o->slot_count, o->n_qps),
                            h->reason, sizeof(h->reason)))
        h->caps |= MOS_WIRE_CAP_VERBS;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Server: choose the backend from both hellos. Returns the backend, or MOS_E_UNSUPPORTED when
 * one side forces verbs and verbs cannot run (text says why). */
static int choose_backend(const struct mos_wire_hello *mine, const struct mos_wire_hello *peer,
                          char *why, size_t len)
{
    bool forced = mine->backend == MOS_TP_VERBS || peer->backend == MOS_TP_VERBS;

    if (mine->backend == MOS_TP_TCP || peer->backend == MOS_TP_TCP) {
        if (forced) {
            snprintf(why, len, "one end forces verbs, the other tcp");
            return MOS_E_UNSUPPORTED;
        }
        snprintf(why, len, "MOS_TRANSPORT=tcp");
        return MOS_TP_TCP;
    }
    if (mine->caps & peer->caps & MOS_WIRE_CAP_VERBS)
        return MOS_TP_VERBS;
    if (!(mine->caps & MOS_WIRE_CAP_VERBS))
        snprintf(why, len, "%s", mine->reason);
    else
        snprintf(why, len, "peer without verbs: %s", peer->reason);
    return forced ? MOS_E_UNSUPPORTED : MOS_TP_TCP;
}

static int server_setup(mos_tp_conn_t *c, const struct mos_tp_opts *o)
{
    struct mos_wire_hello mine, peer, reply;
    char why[96] = "";
    void *cm_listen = NULL;
    int bulk_listen = -1, rc, choice;

    if ((rc = hello_recv(c, &peer)) < 0)
        return rc;
    hello_local(o, &mine);
    choice = choose_backend(&mine, &peer, why, sizeof(why));
    if (choice < 0) {
        mos_err(TP_LOG, "%s: verbs required but not possible: %s", c->peer, why);
        send_close(c, MOS_WIRE_CLOSE_BACKEND, why);
        return choice;
    }
    reply = mine;
    reply.backend = (uint32_t)choice;
    c->slot_bytes = reply.slot_bytes = min_u32(mine.slot_bytes, peer.slot_bytes);
    c->slot_count = reply.slot_count = min_u32(mine.slot_count, peer.slot_count);
    c->n_qps = reply.n_qps = min_u32(mine.n_qps, peer.n_qps);
    mos_random_bytes(c->token, sizeof(c->token));
    memcpy(reply.token, c->token, sizeof(c->token));
    /* The tcp bulk listener exists in any case: a verbs set-up may still fall back. */
    if ((rc = tp_tcp_server_listen(c, &bulk_listen, &reply.tcp_port)) < 0)
        goto out;
    if (choice == MOS_TP_VERBS &&
        (rc = tp_verbs_server_listen(c, &cm_listen, &reply.cm_port)) < 0) {
        snprintf(reply.reason, sizeof(reply.reason), "rdma_cm listen failed: %s", mos_strerror(rc));
        mos_info(TP_LOG, "%s: using tcp: %s", c->peer, reply.reason);
        reply.caps &= ~MOS_WIRE_CAP_VERBS;
        reply.backend = choice = MOS_TP_TCP;
    } else if (choice == MOS_TP_TCP && o->backend != MOS_TP_TCP && peer.backend != MOS_TP_TCP) {
        mos_info(TP_LOG, "%s: using tcp: %s", c->peer, why);
    }
    if ((rc = hello_send(c, &reply)) < 0)
        goto out;
    rc = 0;
    if (choice == MOS_TP_VERBS)
        rc = tp_verbs_server_accept(c, cm_listen); /* 1 = verbs up, 0 = client fell back */
    if (rc == 0)
        rc = tp_tcp_server_attach(c, bulk_listen);
    else if (rc > 0)
        rc = 0;
out:
    if (cm_listen)
        tp_verbs_listen_free(cm_listen);
    if (bulk_listen >= 0)
        close(bulk_listen);
    return rc;
}

static int client_setup(mos_tp_conn_t *c, const struct mos_tp_opts *o)
{
    struct mos_wire_hello mine, reply;
    char why[128] = "";
    int rc;

    hello_local(o, &mine);
    if (o->backend == MOS_TP_VERBS && !(mine.caps & MOS_WIRE_CAP_VERBS)) {
        snprintf(why, sizeof(why), "verbs required but not possible: %s", mine.reason);
        mos_err(TP_LOG, "%s: %s", c->peer, why);
        send_close(c, MOS_WIRE_CLOSE_BACKEND, why);
        return MOS_E_UNSUPPORTED;
    }
    if ((rc = hello_send(c, &mine)) < 0 || (rc = hello_recv(c, &reply)) < 0)
        return rc;
    c->slot_bytes = reply.slot_bytes;
    c->slot_count = reply.slot_count;
    c->n_qps = reply.n_qps;
    memcpy(c->token, reply.token, sizeof(c->token));
    if (reply.backend == MOS_TP_VERBS) {
        rc = tp_verbs_client_connect(c, reply.cm_port, why, sizeof(why));
        if (rc != 0)
            return rc < 0 ? rc : 0;
        if (o->backend == MOS_TP_VERBS) {
            mos_err(TP_LOG, "%s: verbs required but not possible: %s", c->peer, why);
            return MOS_E_UNSUPPORTED;
        }
        mos_info(TP_LOG, "%s: using tcp: %s", c->peer, why);
    } else if (o->backend != MOS_TP_TCP) {
        if (!(mine.caps & MOS_WIRE_CAP_VERBS))
            mos_info(TP_LOG, "%s: using tcp: %s", c->peer, mine.reason);
        else
            mos_info(TP_LOG, "%s: using tcp: peer without verbs: %s", c->peer,
                     reply.reason[0] ? reply.reason : "peer chose tcp");
    }
    return tp_tcp_client_attach(c, reply.tcp_port);
}

int mos_tp_listen(const char *hostport, const struct mos_tp_opts *opts, mos_tp_listener_t **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    mos_tp_listener_t *l;
    int rc;

    if ((rc = opts_check(opts)) < 0 || (rc = tp_addr_parse(hostport, &ss, &len)) < 0)
        return rc;
    if (!(l = calloc(1, sizeof(*l))))
        return -ENOMEM;
    if ((l->fd = tp_listen_fd(&ss, len, 64)) < 0) {
        rc = l->fd;
        mos_err(TP_LOG, "listen on %s: %s", hostport, mos_strerror(rc));
        free(l);
        return rc;
    }
    l->opts = *opts;
    if (opts->key)
        l->key = *opts->key;
    l->opts.key = &l->key;
    *out = l;
    return 0;
}

int mos_tp_listener_fd(const mos_tp_listener_t *l)
{
    return l->fd;
}

int mos_tp_listener_port(const mos_tp_listener_t *l)
{
    return tp_local_port(l->fd);
}

void mos_tp_listener_close(mos_tp_listener_t *l)
{
    if (!l)
        return;
    close(l->fd);
    free(l);
}

int mos_tp_accept(mos_tp_listener_t *l, mos_tp_conn_t **out)
{
    int fd, rc;

    do
        fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        rc = mos_errno_status();
        mos_err(TP_LOG, "accept: %s", mos_strerror(rc));
        return rc;
    }
    return mos_tp_accept_socket(l, fd, out);
}

int mos_tp_accept_socket(mos_tp_listener_t *l, int fd, mos_tp_conn_t **out)
{
    mos_tp_conn_t *c;
    int rc;

    if (!(c = conn_new(fd, &l->opts, true))) {
        close(fd);
        return -ENOMEM;
    }
    if ((rc = tp_socket_tune(fd, c->timeout_ms, false)) < 0 || (rc = conn_auth(c)) < 0 ||
        (rc = server_setup(c, &l->opts)) < 0) {
        conn_free(c);
        return rc;
    }
    mos_dbg(TP_LOG, "%s: accepted (%s)", c->peer, c->ops->name);
    *out = c;
    return 0;
}

int mos_tp_connect(const char *hostport, const struct mos_tp_opts *opts, mos_tp_conn_t **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    mos_tp_conn_t *c;
    int fd, rc;

    if ((rc = opts_check(opts)) < 0 || (rc = tp_addr_parse(hostport, &ss, &len)) < 0)
        return rc;
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return mos_errno_status();
    if ((rc = tp_socket_tune(fd, opts->timeout_ms, false)) < 0 ||
        connect(fd, (struct sockaddr *)&ss, len) < 0) {
        rc = rc < 0 ? rc : mos_errno_status();
        mos_err(TP_LOG, "connect to %s: %s", hostport, mos_strerror(rc));
        close(fd);
        return rc;
    }
    if (!(c = conn_new(fd, opts, false))) {
        close(fd);
        return -ENOMEM;
    }
    if ((rc = conn_auth(c)) < 0 || (rc = client_setup(c, opts)) < 0) {
        conn_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void mos_tp_close(mos_tp_conn_t *c)
{
    if (!c)
        return;
    if (!c->broken)
        send_close(c, MOS_WIRE_CLOSE_NORMAL, "bye");
    conn_free(c);
}

enum mos_tp_backend mos_tp_conn_backend(const mos_tp_conn_t *c)
{
    return c->backend;
}

const char *mos_tp_conn_peer(const mos_tp_conn_t *c)
{
    return c->peer;
}

int mos_tp_conn_fd(const mos_tp_conn_t *c)
{
    return c->ops->fd(c);
}

static int ctl_send_type(mos_tp_conn_t *c, uint16_t type, uint32_t id, const void *msg, size_t len)
{
    uint8_t ad[6];
    int rc;

    if (c->broken)
        return MOS_E_PEER_GONE;
    if (len > MOS_TP_MAX_CONTROL) {
        mos_err(TP_LOG, "%s: control message of %zu bytes (limit %u)", c->peer, len,
                MOS_TP_MAX_CONTROL);
        return MOS_E_LIMIT;
    }
    seal_ad(type, id, ad);
    mos_seal_box(&c->ctl.tx, ad, sizeof(ad), msg, c->ctl_box, len, c->ctl_box + len);
    if ((rc = c->ops->ctl_send(c, type, id, c->ctl_box, len + MOS_SEAL_TAG_BYTES)) < 0)
        return tp_conn_fail(c, rc, "control send");
    return 0;
}

int mos_tp_ctl_send(mos_tp_conn_t *c, uint32_t id, const void *msg, size_t len)
{
    return ctl_send_type(c, MOS_WIRE_CONTROL, id, msg, len);
}

int mos_tp_ctl_reply(mos_tp_conn_t *c, uint32_t id, const void *msg, size_t len)
{
    return ctl_send_type(c, MOS_WIRE_REPLY, id, msg, len);
}

int mos_tp_ctl_recv(mos_tp_conn_t *c, struct mos_tp_msg *msg, void *buf, size_t cap,
                    int timeout_ms)
{
    struct mos_wire_hdr h;
    uint8_t ad[6];
    size_t len;
    int rc;

    if (c->broken)
        return MOS_E_PEER_GONE;
    rc = c->ops->ctl_recv(c, &h, c->ctl_open, MOS_WIRE_MAX_CONTROL,
                          timeout_ms < 0 ? c->timeout_ms : timeout_ms);
    if (rc == -ETIMEDOUT)
        return rc;
    if (rc < 0)
        return tp_conn_fail(c, rc, "control receive");
    if (h.type == MOS_WIRE_CLOSE) {
        c->broken = true;
        mos_dbg(TP_LOG, "%s: peer closed", c->peer);
        return MOS_E_PEER_GONE;
    }
    if ((h.type != MOS_WIRE_CONTROL && h.type != MOS_WIRE_REPLY) || h.length < MOS_SEAL_TAG_BYTES)
        return tp_conn_fail(c, MOS_E_PROTO, "control receive (unexpected message type)");
    len = h.length - MOS_SEAL_TAG_BYTES;
    if (len > cap) {
        c->ctl.rx.seq++; /* skipped unopened: the next message has the next number */
        mos_err(TP_LOG, "%s: control message larger than the %zu-byte buffer", c->peer, cap);
        return MOS_E_LIMIT;
    }
    seal_ad(h.type, h.id, ad);
    if ((rc = mos_seal_unbox(&c->ctl.rx, ad, sizeof(ad), c->ctl_open, buf, len,
                             c->ctl_open + len)) < 0)
        return tp_conn_fail(c, rc, "control receive");
    msg->id = h.id;
    msg->is_reply = h.type == MOS_WIRE_REPLY;
    msg->len = len;
    return 0;
}

int mos_tp_ctl_call(mos_tp_conn_t *c, const void *req, size_t req_len, void *reply,
                    size_t cap, size_t *reply_len)
{
    uint32_t id = c->next_id++;
    struct mos_tp_msg m;
    int rc;

    if (c->next_id == 0)
        c->next_id = 1;
    if ((rc = mos_tp_ctl_send(c, id, req, req_len)) < 0)
        return rc;
    if ((rc = mos_tp_ctl_recv(c, &m, reply, cap, -1)) < 0)
        return rc;
    if (!m.is_reply || m.id != id)
        return tp_conn_fail(c, MOS_E_PROTO, "control call (reply to another request)");
    *reply_len = m.len;
    return 0;
}

int mos_tp_bulk_send(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs, size_t n_runs)
{
    for (size_t i = 0; i < n_runs; i++)
        if (runs[i].addr % MOS_TP_PAGE_SIZE) {
            mos_err(TP_LOG, "bulk send: run address 0x%llx is not page-aligned",
                    (unsigned long long)runs[i].addr);
            return -EINVAL;
        }
    if (c->broken)
        return MOS_E_PEER_GONE;
    return c->ops->bulk_send(c, pid, runs, n_runs);
}

int mos_tp_bulk_send_live(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs,
                          size_t n_runs, mos_tp_read_check_fn check, void *arg)
{
    if (pid <= 0 || !check)
        return -EINVAL;
    c->live_check = check;
    c->live_arg = arg;
    int rc = mos_tp_bulk_send(c, pid, runs, n_runs);
    c->live_check = NULL;
    c->live_arg = NULL;
    return rc;
}

int mos_tp_bulk_recv(mos_tp_conn_t *c, mos_page_place_fn place, void *arg,
                     struct mos_tp_bulk_stats *stats)
{
    if (c->broken)
        return MOS_E_PEER_GONE;
    return c->ops->bulk_recv(c, place, arg, stats);
}
