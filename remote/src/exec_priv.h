/* The exec link's frames and one end of the link (private to remote/: its relay, its home end
 * and their tests). The format is drawn in mos/exec_link.h. */
#ifndef MOS_REMOTE_EXEC_PRIV_H
#define MOS_REMOTE_EXEC_PRIV_H

#include "mos/exec_link.h"
#include "mos/forward.h"
#include "mos/frame.h"

#include <stddef.h>
#include <stdint.h>

#define MOS_EXEC_MAGIC MOS_FRAME_MAGIC('M', 'E', 'X', 'L')
#define MOS_EXEC_VERSION 1
#define MOS_EXEC_HDR_BYTES MOS_FRAME_HDR_BYTES
#define MOS_EXEC_MAX_DATA (64u * 1024)
#define MOS_EXEC_STDIN_WINDOW (256u * 1024)
#define MOS_EXEC_SIG_GROUP 1u

enum mos_exec_type {
    MOS_EXEC_STDIN = 1,
    MOS_EXEC_SIGNAL = 2,
    MOS_EXEC_ACK = 3,
    MOS_EXEC_STDOUT = 4,
    MOS_EXEC_STDERR = 5,
    MOS_EXEC_EXIT = 6,
};

/* One decoded frame. data points into the decoded buffer (STDIN, STDOUT, STDERR). */
struct mos_exec_frame {
    enum mos_exec_type type;
    uint32_t len;
    const uint8_t *data;
    uint32_t value; /* SIGNAL: signo; ACK: bytes; EXIT: wait status */
    uint32_t flags; /* SIGNAL */
};

/* Encode f into out (cap bytes); *used receives the frame's size. 0, MOS_E_LIMIT (f out of
 * its type's limits), -ENOSPC. */
int mos_exec_frame_encode(const struct mos_exec_frame *f, uint8_t *out, size_t cap,
                          size_t *used);
/* Decode the frame at the start of buf. 0 with *used set; MOS_E_TRUNCATED when buf holds less
 * than a whole (otherwise valid so far) frame; MOS_E_VERSION; MOS_E_PROTO for anything else
 * malformed. Nothing is read beyond buf + len. */
int mos_exec_frame_decode(const uint8_t *buf, size_t len, struct mos_exec_frame *f,
                          size_t *used);

/* One end of the link: an outgoing queue that never blocks and an incoming frame reader. */
struct mos_exec_link;
/* Takes the link's stream (made non-blocking; TCP keepalive so a silent dead peer is noticed)
 * and keys: on success *link is left closed (fd -1); on failure it is still the caller's. */
int mos_exec_link_new(struct mos_link *link, struct mos_exec_link **out);
void mos_exec_link_free(struct mos_exec_link *l); /* closes the fd; NULL allowed */
int mos_exec_link_fd(const struct mos_exec_link *l);
/* Append a frame to the outgoing queue (0, MOS_E_LIMIT, -ENOMEM). */
int mos_exec_link_queue(struct mos_exec_link *l, const struct mos_exec_frame *f);
/* Bytes queued and not yet sent. */
size_t mos_exec_link_queued(const struct mos_exec_link *l);
/* Send what the socket takes now: 0, MOS_E_PEER_GONE, -errno. */
int mos_exec_link_flush(struct mos_exec_link *l);
/* Send everything queued, waiting up to timeout_ms in all. */
int mos_exec_link_drain(struct mos_exec_link *l, int timeout_ms);
/* Read what the socket has: 0, MOS_E_PEER_GONE at end of stream, -errno. */
int mos_exec_link_recv(struct mos_exec_link *l);
/* The next whole frame read: 1 and *f (its data valid until the next recv), 0 when none is
 * complete yet, or a decode error (the link is then unusable). */
int mos_exec_link_next(struct mos_exec_link *l, struct mos_exec_frame *f);

#endif
