#include "tp_img_io.h"

#include "mos/status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct tp_img_stream *stream_of(struct mos_img_io *io)
{
    return io->arg;
}

/* Pack the iovecs into control messages of the largest size the transport carries. */
static int tp_writev(struct mos_img_io *io, const struct iovec *iov, int iovcnt)
{
    struct tp_img_stream *s = stream_of(io);
    size_t fill = 0;
    int rc;

    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            size_t n = MOS_TP_MAX_CONTROL - fill < left ? MOS_TP_MAX_CONTROL - fill : left;
            memcpy(s->buf + fill, p, n);
            fill += n;
            p += n;
            left -= n;
            if (fill == MOS_TP_MAX_CONTROL) {
                if ((rc = mos_tp_ctl_send(s->conn, 0, s->buf, fill)) != 0)
                    return rc;
                fill = 0;
            }
        }
    }
    return fill ? mos_tp_ctl_send(s->conn, 0, s->buf, fill) : 0;
}

static ssize_t tp_read(struct mos_img_io *io, void *buf, size_t len)
{
    struct tp_img_stream *s = stream_of(io);

    if (s->pos == s->len) {
        struct mos_tp_msg msg;
        int rc = mos_tp_ctl_recv(s->conn, &msg, s->buf, MOS_TP_MAX_CONTROL, s->timeout_ms);
        if (rc == MOS_E_PEER_GONE)
            return 0;
        if (rc != 0)
            return rc;
        s->len = msg.len;
        s->pos = 0;
    }
    size_t n = s->len - s->pos < len ? s->len - s->pos : len;
    memcpy(buf, s->buf + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static const struct mos_img_io_ops tp_img_ops = {
    .writev = tp_writev,
    .read = tp_read,
};

int tp_img_stream_init(struct tp_img_stream *s, mos_tp_conn_t *conn, int timeout_ms)
{
    memset(s, 0, sizeof(*s));
    s->buf = malloc(MOS_TP_MAX_CONTROL);
    if (!s->buf)
        return -ENOMEM;
    s->conn = conn;
    s->timeout_ms = timeout_ms;
    s->io.ops = &tp_img_ops;
    s->io.fd = -1;
    s->io.arg = s;
    return 0;
}

void tp_img_stream_fini(struct tp_img_stream *s)
{
    free(s->buf);
    s->buf = NULL;
}
