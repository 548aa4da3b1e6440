/* Private to the forwarding code: the argument layout of each forwarded call (shared by the
 * supervisor, which builds it from guest memory, and the deputy, which rebuilds it to check a
 * request), and the messages between them. */
#ifndef MOS_FORWARD_PRIV_H
#define MOS_FORWARD_PRIV_H

#include "mos/forward.h"
#include "mos/frame.h"

#include <stddef.h>
#include <stdint.h>

#define FWD_NARGS 6
#define FWD_MAX_IO (4u << 20)     /* read/write-like buffers are clamped to this (short I/O) */
#define FWD_MAX_SMALL (64u << 10) /* any other buffer larger than this is refused */
#define FWD_MAX_PATH 4096
#define FWD_MAX_SOCKADDR 128
#define FWD_SYSCALL_MAX 512

/* How one argument of a forwarded call is passed. */
enum fwd_arg_kind {
    ARG_VAL = 0,     /* plain value */
    ARG_FD,          /* a descriptor of the job at home (checked against the deputy's own) */
    ARG_PATH,        /* NUL-terminated string in guest memory */
    ARG_IO_IN,       /* input bytes, length = arg[ref]; clamped to FWD_MAX_IO (short write) */
    ARG_IO_OUT,      /* output bytes, length = arg[ref]; clamped; only ret bytes come back */
    ARG_IN_LEN,      /* input bytes, length = arg[ref] (small) */
    ARG_IN_FIX,      /* input bytes, fixed size */
    ARG_OUT_FIX,     /* output bytes, fixed size */
    ARG_INOUT_FIX,   /* in and out, fixed size */
    ARG_INOUT_ARR,   /* in and out, arg[ref] elements of size bytes (poll) */
    ARG_OUT_ARR_RET, /* output, arg[ref] elements of size bytes; ret elements come back */
    ARG_OUT_DEREF,   /* output, length = the u32 that arg[ref] points to (sockaddr) */
};

struct fwd_arg_spec {
    uint8_t kind;
    uint8_t ref;
    uint16_t size;
};

struct fwd_sys_entry {
    const char *name;
    uint8_t cls; /* enum mos_sys_class */
    struct fwd_arg_spec args[FWD_NARGS];
};

/* The table entry for nr, or NULL when nr is out of range. */
const struct fwd_sys_entry *fwd_sys_lookup(long nr);

/* The layout of one call, built from nr and its raw arguments. For ioctl and fcntl the layout
 * depends on the command, so the layout is computed, not only looked up. Returns 0, -ENOTTY
 * (ioctl command not forwardable), -ENOSYS (not a forwarded call). */
int fwd_layout(long nr, const uint64_t args[FWD_NARGS], struct fwd_arg_spec out[FWD_NARGS]);

/* ---- messages ---------------------------------------------------------------------------
 * Frame: the common mos frame header (mos/frame.h: u32 magic "MDEP", u16 version, u16 type,
 * u32 payload length), then the payload; all integers little-endian. Payloads:
 *   HELLO   i32 pid, i32 ppid (the home identity)
 *   CALL    u32 id | i64 nr | 6 x u64 args | u8 nbufs | nbufs x {u8 argidx | u8 dir | u32 len |
 *           in-data}
 *   RESULT  u32 id | i64 ret | u8 nbufs | nbufs x {u8 argidx | u8 dir | u32 len | out-data}
 *   SIGNAL  i32 signo           EXIT  i32 wait status           NOTICE  u32 enum mos_link_notice
 *   INTERRUPT u32 id (the call a signal interrupts: the deputy ends it with -ERESTARTSYS)
 * Several calls may be in flight (one per guest thread blocked in a forwarded call, at most
 * FWD_MAX_INFLIGHT); the id, chosen by the supervisor and unique among the calls in flight,
 * pairs each RESULT with its CALL. The header decoder refuses unknown types and lengths over
 * each type's limit. */
#define FWD_MAGIC MOS_FRAME_MAGIC('M', 'D', 'E', 'P')
#define FWD_VERSION 2 /* 2: call ids, INTERRUPT, concurrent calls */
#define FWD_MAX_PAYLOAD (FWD_MAX_IO + 64u * 1024)
/* Calls in flight on one link: the supervisor takes no new notification beyond it (the guest's
 * threads wait in the kernel), the deputy refuses a link that exceeds it. It bounds the
 * deputy's threads (one per call, plus one reading the link) and their buffers. */
#define FWD_MAX_INFLIGHT 256

enum fwd_msg_type {
    FWD_MSG_HELLO = 1,  /* deputy -> supervisor: home identity */
    FWD_MSG_CALL = 2,   /* supervisor -> deputy */
    FWD_MSG_RESULT = 3, /* deputy -> supervisor */
    FWD_MSG_SIGNAL = 4, /* deputy -> supervisor: deliver to the guest */
    FWD_MSG_EXIT = 5,   /* supervisor -> deputy: the guest's wait status */
    FWD_MSG_NOTICE = 6, /* supervisor -> deputy: u32 enum mos_link_notice */
    FWD_MSG_INTERRUPT = 7, /* supervisor -> deputy: u32 call id */
};

struct fwd_buf {
    uint8_t argidx;
    uint8_t dir; /* 1 in, 2 out, 3 in+out */
    uint32_t len;
    uint8_t *data; /* len bytes (in and in+out: filled; out: space) */
};

struct fwd_call {
    uint32_t id;
    int64_t nr;
    uint64_t args[FWD_NARGS];
    uint8_t nbufs;
    struct fwd_buf bufs[FWD_NARGS];
};

struct fwd_result {
    uint32_t id;
    int64_t ret; /* value, or -errno */
    uint8_t nbufs;
    struct fwd_buf bufs[FWD_NARGS];
};

#define FWD_DIR_IN 1
#define FWD_DIR_OUT 2

/* Encoders return the payload length written into out (at most cap), or -EMSGSIZE. */
ssize_t fwd_call_encode(const struct fwd_call *c, uint8_t *out, size_t cap);
ssize_t fwd_result_encode(const struct fwd_result *r, uint8_t *out, size_t cap);
/* Decoders check every count and length against the payload and the limits; buffer data
 * pointers point into the payload (out-only buffers of a call get data = NULL). Return 0 or
 * MOS_E_PROTO. */
int fwd_call_decode(const uint8_t *p, size_t len, struct fwd_call *c);
int fwd_result_decode(const uint8_t *p, size_t len, struct fwd_result *r);

/* The link as a mos frame protocol (magic, version, type table and limits). */
extern const struct mos_frame_proto fwd_proto;

/* Framing over a link: each frame in one sealed record (mos/seal.h). fwd_send writes one
 * frame; fwd_recv reads one and leaves its payload at the start of *buf (grown as needed, up
 * to FWD_MAX_PAYLOAD and the record around it). MOS_E_TAMPERED: a record that does not open. Both return 0, MOS_E_PEER_GONE on EOF/reset, MOS_E_PROTO on a
 * bad frame (MOS_E_VERSION: another version), or -errno. fwd_recv returns -EINTR if interrupted before any byte arrived. */
int fwd_send(struct mos_link *l, uint16_t type, const void *payload, size_t len);
int fwd_recv(struct mos_link *l, uint16_t *type, uint8_t **buf, size_t *cap, size_t *len);

void fwd_stats_add(int which);
enum { FWD_STAT_FORWARDED, FWD_STAT_VIRTUAL, FWD_STAT_HOME, FWD_STAT_REFUSED, FWD_STAT_INTERRUPTED };

#endif
