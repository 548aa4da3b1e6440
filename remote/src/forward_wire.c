/* Messages between supervisor and deputy, and their framing on a stream. */
#include "forward_priv.h"

#include "mos/frame.h"
#include "mos/status.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Cursors over the shared little-endian helpers of mos/frame.h. */
static void put_u8(uint8_t **p, uint8_t v)
{
    *(*p)++ = v;
}

static void put_u32(uint8_t **p, uint32_t v)
{
    mos_put_le32(*p, v);
    *p += 4;
}

static void put_u64(uint8_t **p, uint64_t v)
{
    mos_put_le64(*p, v);
    *p += 8;
}

/* A reader goes bad at the first read past the end and stays bad; reads then give 0. */
struct reader {
    const uint8_t *p, *end;
    int bad;
};

static const uint8_t *get_span(struct reader *r, size_t n)
{
    const uint8_t *at = r->p;

    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    r->p += n;
    return at;
}

static uint8_t get_u8(struct reader *r)
{
    const uint8_t *at = get_span(r, 1);

    return at ? *at : 0;
}

static uint32_t get_u32(struct reader *r)
{
    const uint8_t *at = get_span(r, 4);

    return at ? mos_get_le32(at) : 0;
}

static uint64_t get_u64(struct reader *r)
{
    const uint8_t *at = get_span(r, 8);

    return at ? mos_get_le64(at) : 0;
}

/* Buffers carry data when they flow in the message's direction: a call carries in-buffers, a
 * result carries out-buffers. */
static size_t bufs_size(const struct fwd_buf *bufs, uint8_t n, uint8_t with_data_dir)
{
    size_t total = 0;

    for (uint8_t i = 0; i < n; i++)
        total += 6 + ((bufs[i].dir & with_data_dir) ? bufs[i].len : 0);
    return total;
}

static void bufs_put(uint8_t **p, const struct fwd_buf *bufs, uint8_t n, uint8_t with_data_dir)
{
    put_u8(p, n);
    for (uint8_t i = 0; i < n; i++) {
        put_u8(p, bufs[i].argidx);
        put_u8(p, bufs[i].dir);
        put_u32(p, bufs[i].len);
        if (bufs[i].dir & with_data_dir) {
            memcpy(*p, bufs[i].data, bufs[i].len);
            *p += bufs[i].len;
        }
    }
}

static int bufs_get(struct reader *r, struct fwd_buf *bufs, uint8_t *n, uint8_t with_data_dir)
{
    uint32_t seen = 0;
    size_t total = 0;

    *n = get_u8(r);
    if (r->bad || *n > FWD_NARGS)
        return MOS_E_PROTO;
    for (uint8_t i = 0; i < *n; i++) {
        struct fwd_buf *b = &bufs[i];
        b->argidx = get_u8(r);
        b->dir = get_u8(r);
        b->len = get_u32(r);
        if (r->bad || b->argidx >= FWD_NARGS || (seen & (1u << b->argidx)) || b->dir < 1 ||
            b->dir > 3 || b->len > FWD_MAX_IO)
            return MOS_E_PROTO;
        seen |= 1u << b->argidx;
        total += b->len;
        if (total > FWD_MAX_IO + FWD_MAX_SMALL * FWD_NARGS)
            return MOS_E_PROTO;
        b->data = NULL;
        if (b->dir & with_data_dir) {
            b->data = (uint8_t *)get_span(r, b->len);
            if (!b->data)
                return MOS_E_PROTO;
        }
    }
    return 0;
}

ssize_t fwd_call_encode(const struct fwd_call *c, uint8_t *out, size_t cap)
{
    size_t need = 4 + 8 + 8 * FWD_NARGS + 1 + bufs_size(c->bufs, c->nbufs, FWD_DIR_IN);
    uint8_t *p = out;

    if (need > cap)
        return -EMSGSIZE;
    put_u32(&p, c->id);
    put_u64(&p, (uint64_t)c->nr);
    for (int i = 0; i < FWD_NARGS; i++)
        put_u64(&p, c->args[i]);
    bufs_put(&p, c->bufs, c->nbufs, FWD_DIR_IN);
    return (ssize_t)(p - out);
}

int fwd_call_decode(const uint8_t *p, size_t len, struct fwd_call *c)
{
    struct reader r = {p, p + len, 0};

    memset(c, 0, sizeof(*c));
    c->id = get_u32(&r);
    c->nr = (int64_t)get_u64(&r);
    for (int i = 0; i < FWD_NARGS; i++)
        c->args[i] = get_u64(&r);
    if (r.bad || bufs_get(&r, c->bufs, &c->nbufs, FWD_DIR_IN) != 0 || r.p != r.end)
        return MOS_E_PROTO;
    return 0;
}

ssize_t fwd_result_encode(const struct fwd_result *res, uint8_t *out, size_t cap)
{
    size_t need = 4 + 8 + 1 + bufs_size(res->bufs, res->nbufs, FWD_DIR_OUT);
    uint8_t *p = out;

    if (need > cap)
        return -EMSGSIZE;
    put_u32(&p, res->id);
    put_u64(&p, (uint64_t)res->ret);
    bufs_put(&p, res->bufs, res->nbufs, FWD_DIR_OUT);
    return (ssize_t)(p - out);
}

int fwd_result_decode(const uint8_t *p, size_t len, struct fwd_result *res)
{
    struct reader r = {p, p + len, 0};

    memset(res, 0, sizeof(*res));
    res->id = get_u32(&r);
    res->ret = (int64_t)get_u64(&r);
    if (r.bad || bufs_get(&r, res->bufs, &res->nbufs, FWD_DIR_OUT) != 0 || r.p != r.end)
        return MOS_E_PROTO;
    for (uint8_t i = 0; i < res->nbufs; i++)
        if (!(res->bufs[i].dir & FWD_DIR_OUT))
            return MOS_E_PROTO;
    return 0;
}

/* ---- framing ---------------------------------------------------------------------------- */

/* The largest payload of each message type; 0 for a type the link does not know. */
static uint32_t fwd_payload_limit(uint16_t type)
{
    switch (type) {
    case FWD_MSG_HELLO:
        return 8; /* i32 pid, i32 ppid */
    case FWD_MSG_CALL:
    case FWD_MSG_RESULT:
        return FWD_MAX_PAYLOAD;
    case FWD_MSG_SIGNAL:
    case FWD_MSG_EXIT:
    case FWD_MSG_NOTICE:
    case FWD_MSG_INTERRUPT:
        return 4;
    default:
        return 0;
    }
}

static bool fwd_length_ok(uint16_t type, uint32_t length)
{
    return fwd_payload_limit(type) > 0 && length <= fwd_payload_limit(type);
}

const struct mos_frame_proto fwd_proto = {
    .magic = FWD_MAGIC,
    .version = FWD_VERSION,
    .length_ok = fwd_length_ok,
};

static int write_full(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EPIPE || errno == ECONNRESET ? MOS_E_PEER_GONE : -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A frame goes out as one sealed record: the frame is built in the link's out buffer and
 * sealed where it lies. */
int fwd_send(struct mos_link *l, uint16_t type, const void *payload, size_t len)
{
    size_t inner = MOS_FRAME_HDR_BYTES + len, need = inner + MOS_SEAL_RECORD_EXTRA;
    uint8_t *frame;

    if (len > UINT32_MAX || !fwd_length_ok(type, (uint32_t)len))
        return -EMSGSIZE;
    if (need > l->out_cap) {
        uint8_t *grown = realloc(l->out, need);
        if (!grown)
            return -ENOMEM;
        l->out = grown;
        l->out_cap = need;
    }
    frame = l->out + MOS_SEAL_RECORD_HDR_BYTES;
    mos_frame_hdr_encode(&fwd_proto, type, (uint32_t)len, frame);
    if (len)
        memcpy(frame + MOS_FRAME_HDR_BYTES, payload, len);
    mos_seal_record(&l->seal.tx, frame, inner, l->out);
    return write_full(l->fd, l->out, need);
}

/* Read exactly len bytes. EINTR before the first byte is reported (the caller may have a signal
 * to pass on); after it the read continues, so a frame is never torn. */
static int read_full(int fd, uint8_t *buf, size_t len, int allow_eintr)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) {
            if (allow_eintr && got == 0)
                return -EINTR;
            continue;
        }
        if (n < 0)
            return errno == ECONNRESET ? MOS_E_PEER_GONE : -errno;
        if (n == 0)
            return got == 0 ? MOS_E_PEER_GONE : MOS_E_TRUNCATED;
        got += (size_t)n;
    }
    return 0;
}

/* One sealed record holding one frame; the frame's payload is moved to the front of *buf. */
int fwd_recv(struct mos_link *l, uint16_t *type, uint8_t **buf, size_t *cap, size_t *len)
{
    uint8_t rec[MOS_SEAL_RECORD_HDR_BYTES], *plain;
    struct mos_frame_hdr hdr;
    size_t n, total, plain_len, used;
    int rc = read_full(l->fd, rec, sizeof(rec), 1);

    if (rc != 0)
        return rc;
    n = mos_get_le32(rec);
    if (n < MOS_FRAME_HDR_BYTES || n > MOS_FRAME_HDR_BYTES + FWD_MAX_PAYLOAD)
        return MOS_E_PROTO;
    total = n + MOS_SEAL_RECORD_EXTRA;
    if (total > *cap) {
        uint8_t *grown = realloc(*buf, total);
        if (!grown)
            return -ENOMEM;
        *buf = grown;
        *cap = total;
    }
    memcpy(*buf, rec, sizeof(rec));
    rc = read_full(l->fd, *buf + sizeof(rec), total - sizeof(rec), 0);
    if (rc != 0)
        return rc == MOS_E_PEER_GONE ? MOS_E_TRUNCATED : rc;
    if ((rc = mos_unseal_record(&l->seal.rx, *buf, total, n, &plain, &plain_len, &used)) != 0)
        return rc;
    if ((rc = mos_frame_hdr_decode(&fwd_proto, plain, plain_len, &hdr)) != 0)
        return rc == MOS_E_TRUNCATED ? MOS_E_PROTO : rc;
    if (hdr.length != plain_len - MOS_FRAME_HDR_BYTES)
        return MOS_E_PROTO;
    memmove(*buf, plain + MOS_FRAME_HDR_BYTES, hdr.length);
    *type = hdr.type;
    *len = hdr.length;
    return 0;
}

int mos_deputy_link_notify(struct mos_link *link, enum mos_link_notice what)
{
    uint8_t v[4];

    mos_put_le32(v, (uint32_t)what);
    return fwd_send(link, FWD_MSG_NOTICE, v, sizeof(v));
}

int mos_deputy_link_read_notice(struct mos_link *link, enum mos_link_notice *what)
{
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    uint16_t type;
    uint32_t v;
    int rc;

    do
        rc = fwd_recv(link, &type, &buf, &cap, &len);
    while (rc == -EINTR);
    if (rc == 0 && (type != FWD_MSG_NOTICE || len != sizeof(v)))
        rc = MOS_E_PROTO;
    if (rc == 0) {
        v = mos_get_le32(buf);
        if (v != MOS_LINK_MOVING && v != MOS_LINK_RESUME)
            rc = MOS_E_PROTO;
        *what = (enum mos_link_notice)v;
    }
    free(buf);
    return rc;
}
