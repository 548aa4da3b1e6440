/* The exec link's frames (see mos/exec_link.h) and a link end: a queue that never blocks the
 * caller, so neither end can wait on the other with both sockets full, and a frame reader. */
#include "exec_priv.h"

#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static bool is_data(uint32_t type)
{
    return type == MOS_EXEC_STDIN || type == MOS_EXEC_STDOUT || type == MOS_EXEC_STDERR;
}

/* The payload length a type allows: data frames up to the limit (output never empty: an empty
 * frame would say nothing), fixed sizes otherwise. */
static bool len_ok(uint16_t type, uint32_t len)
{
    switch (type) {
    case MOS_EXEC_STDIN:
        return len <= MOS_EXEC_MAX_DATA;
    case MOS_EXEC_STDOUT:
    case MOS_EXEC_STDERR:
        return len >= 1 && len <= MOS_EXEC_MAX_DATA;
    case MOS_EXEC_SIGNAL:
        return len == 8;
    case MOS_EXEC_ACK:
    case MOS_EXEC_EXIT:
        return len == 4;
    default:
        return false;
    }
}

static const struct mos_frame_proto exec_proto = {
    .magic = MOS_EXEC_MAGIC,
    .version = MOS_EXEC_VERSION,
    .length_ok = len_ok,
};

/* Values a fixed frame may carry: a real signal number, a window's worth of stdin, a wait
 * status the kernel could have produced for a process that ended. */
static int value_ok(const struct mos_exec_frame *f)
{
    int st = (int)f->value;

    switch (f->type) {
    case MOS_EXEC_SIGNAL:
        return f->value >= 1 && f->value <= 64 && (f->flags & ~MOS_EXEC_SIG_GROUP) == 0;
    case MOS_EXEC_ACK:
        return f->value >= 1 && f->value <= MOS_EXEC_STDIN_WINDOW;
    case MOS_EXEC_EXIT:
        return f->value <= 0xffff &&
               (WIFEXITED(st) || (WIFSIGNALED(st) && WTERMSIG(st) >= 1 && WTERMSIG(st) <= 64));
    default:
        return 1;
    }
}

int mos_exec_frame_encode(const struct mos_exec_frame *f, uint8_t *out, size_t cap,
                          size_t *used)
{
    uint32_t len = is_data(f->type) ? f->len : f->type == MOS_EXEC_SIGNAL ? 8 : 4;

    if (f->type > UINT16_MAX || !len_ok((uint16_t)f->type, len) || !value_ok(f))
        return MOS_E_LIMIT;
    if (cap < MOS_EXEC_HDR_BYTES + (size_t)len)
        return -ENOSPC;
    mos_frame_hdr_encode(&exec_proto, (uint16_t)f->type, len, out);
    if (is_data(f->type)) {
        if (len)
            memcpy(out + MOS_EXEC_HDR_BYTES, f->data, len);
    } else {
        mos_put_le32(out + MOS_EXEC_HDR_BYTES, f->value);
        if (f->type == MOS_EXEC_SIGNAL)
            mos_put_le32(out + MOS_EXEC_HDR_BYTES + 4, f->flags);
    }
    *used = MOS_EXEC_HDR_BYTES + len;
    return 0;
}

int mos_exec_frame_decode(const uint8_t *buf, size_t len, struct mos_exec_frame *f,
                          size_t *used)
{
    struct mos_frame_hdr h;
    size_t whole;
    /* The header is checked as far as it has come: garbage fails early, not after a wait. */
    int rc = mos_frame_decode(&exec_proto, buf, len, MOS_EXEC_HDR_BYTES, &h, &whole);

    if (rc != 0)
        return rc;
    memset(f, 0, sizeof(*f));
    f->type = (enum mos_exec_type)h.type;
    if (is_data(h.type)) {
        f->len = h.length;
        f->data = buf + MOS_EXEC_HDR_BYTES;
    } else {
        f->value = mos_get_le32(buf + MOS_EXEC_HDR_BYTES);
        if (h.type == MOS_EXEC_SIGNAL)
            f->flags = mos_get_le32(buf + MOS_EXEC_HDR_BYTES + 4);
        if (!value_ok(f))
            return MOS_E_PROTO;
    }
    *used = whole;
    return 0;
}

/* ---- a link end -------------------------------------------------------------------------- */

/* Each frame travels in a sealed record of its own (mos/seal.h): sealed as it is queued,
 * opened when it is taken. */
#define FRAME_MAX (MOS_EXEC_HDR_BYTES + MOS_EXEC_MAX_DATA)

struct mos_exec_link {
    int fd;
    struct mos_seal seal;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    size_t in_off, in_len; /* unread bytes are in[in_off, in_len) */
    int in_bad;
    uint8_t in[FRAME_MAX + MOS_SEAL_RECORD_EXTRA];
};

/* A node that dies without a word (power, network) leaves no FIN behind: keepalive probes and
 * a user timeout on unacknowledged data turn that into an error within about half a minute. */
static void keepalive(int fd)
{
    int one = 1, idle = 10, intvl = 5, cnt = 3;
    unsigned timeout_ms = 30000;

    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof(timeout_ms));
}

int mos_exec_link_new(struct mos_link *link, struct mos_exec_link **out)
{
    struct mos_exec_link *l = calloc(1, sizeof(*l));
    int fd = link->fd;

    if (!l)
        return -ENOMEM;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        int rc = mos_errno_status();
        free(l);
        return rc;
    }
    keepalive(fd); /* fails harmlessly on a socketpair (tests) */
    l->fd = fd;
    l->seal = link->seal;
    link->fd = -1; /* the stream and its keys are the exec link's now */
    mos_link_close(link);
    *out = l;
    return 0;
}

void mos_exec_link_free(struct mos_exec_link *l)
{
    if (!l)
        return;
    close(l->fd);
    free(l->out);
    mos_seal_wipe(&l->seal);
    free(l);
}

int mos_exec_link_fd(const struct mos_exec_link *l)
{
    return l->fd;
}

int mos_exec_link_queue(struct mos_exec_link *l, const struct mos_exec_frame *f)
{
    size_t need = FRAME_MAX + MOS_SEAL_RECORD_EXTRA, used;

    if (l->out_off == l->out_len)
        l->out_off = l->out_len = 0;
    if (l->out_cap - l->out_len < need) {
        if (l->out_off > 0) { /* what was sent makes room first */
            memmove(l->out, l->out + l->out_off, l->out_len - l->out_off);
            l->out_len -= l->out_off;
            l->out_off = 0;
        }
        if (l->out_cap - l->out_len < need) {
            size_t cap = l->out_cap ? l->out_cap * 2 : 4 * need;
            uint8_t *p = realloc(l->out, cap);
            if (!p)
                return -ENOMEM;
            l->out = p;
            l->out_cap = cap;
        }
    }
    uint8_t *frame = l->out + l->out_len + MOS_SEAL_RECORD_HDR_BYTES;
    int rc = mos_exec_frame_encode(f, frame, FRAME_MAX, &used);
    if (rc == 0) {
        mos_seal_record(&l->seal.tx, frame, used, l->out + l->out_len);
        l->out_len += used + MOS_SEAL_RECORD_EXTRA;
    }
    return rc;
}

size_t mos_exec_link_queued(const struct mos_exec_link *l)
{
    return l->out_len - l->out_off;
}

int mos_exec_link_flush(struct mos_exec_link *l)
{
    while (l->out_off < l->out_len) {
        ssize_t n = send(l->fd, l->out + l->out_off, l->out_len - l->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return errno == EPIPE || errno == ECONNRESET ? MOS_E_PEER_GONE : mos_errno_status();
        l->out_off += (size_t)n;
    }
    return 0;
}

int mos_exec_link_drain(struct mos_exec_link *l, int timeout_ms)
{
    int waited = 0, rc;

    while ((rc = mos_exec_link_flush(l)) == 0 && mos_exec_link_queued(l) > 0) {
        struct pollfd p = {l->fd, POLLOUT, 0};
        if (waited >= timeout_ms)
            return -ETIMEDOUT;
        if (poll(&p, 1, 100) == 0)
            waited += 100;
    }
    return rc;
}

int mos_exec_link_recv(struct mos_exec_link *l)
{
    if (l->in_off > 0) {
        memmove(l->in, l->in + l->in_off, l->in_len - l->in_off);
        l->in_len -= l->in_off;
        l->in_off = 0;
    }
    if (l->in_len == sizeof(l->in))
        return 0; /* a whole frame waits to be taken */
    ssize_t n = recv(l->fd, l->in + l->in_len, sizeof(l->in) - l->in_len, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0
               : errno == ECONNRESET                                     ? MOS_E_PEER_GONE
                                                                         : mos_errno_status();
    if (n == 0)
        return MOS_E_PEER_GONE;
    l->in_len += (size_t)n;
    return 0;
}

int mos_exec_link_next(struct mos_exec_link *l, struct mos_exec_frame *f)
{
    size_t used, frame_len, frame_used;
    uint8_t *frame;
    int rc;

    if (l->in_bad)
        return l->in_bad;
    rc = mos_unseal_record(&l->seal.rx, l->in + l->in_off, l->in_len - l->in_off, FRAME_MAX,
                           &frame, &frame_len, &used);
    if (rc == MOS_E_TRUNCATED)
        return 0;
    if (rc == MOS_E_LIMIT)
        rc = MOS_E_PROTO;
    if (rc == 0 && (rc = mos_exec_frame_decode(frame, frame_len, f, &frame_used)) == 0 &&
        frame_used != frame_len)
        rc = MOS_E_PROTO; /* one frame per record */
    if (rc != 0)
        return l->in_bad = rc == MOS_E_TRUNCATED ? MOS_E_PROTO : rc;
    l->in_off += used;
    return 1;
}
