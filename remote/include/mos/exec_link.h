/* Native remote execution (mosrun -E): a program runs as an ordinary process on another node
 * (no ptrace, no seccomp, no deputy: its files are that node's), while its stdin, stdout and
 * stderr stay at home, where mosrun stands in for it.
 *
 * Two ends share one TCP connection, the *exec link*, authenticated with a per-job token
 * exactly as the deputy link is (mos_deputy_link_listen/accept/connect in mos/forward.h):
 *   home    mosrun: sends its stdin and the signals it gets, writes what comes back to its own
 *           stdout/stderr, and ends as the program did (mos_exec_home_serve);
 *   relay   on the remote node: runs the program as the user with pipes for 0/1/2 and relays
 *           (mos_exec_relay_run). The relay dies with the link: the program does not outlive it.
 *
 * Wire: mos frames (mos/frame.h) `u32 magic "MEXL" | u16 version | u16 type | u32 length |
 * payload`, little-endian. The header is checked (magic, version, known type, length within
 * the type's limits) before any payload byte is used. Types and payloads:
 *   STDIN   home -> relay   0..64 KiB of bytes; an empty STDIN frame is end of input
 *   SIGNAL  home -> relay   u32 signo (1..64), u32 flags (MOS_EXEC_SIG_GROUP: to the process
 *                           group, as a terminal would; else to the program alone)
 *   ACK     relay -> home   u32 bytes of stdin written into the program's pipe: home keeps at
 *                           most MOS_EXEC_STDIN_WINDOW bytes in flight, so the relay can always
 *                           read the link and a signal never waits behind stdin data
 *   STDOUT, STDERR  relay -> home   1..64 KiB of the program's output, kept apart
 *   EXIT    relay -> home   u32 wait status (exited or killed by a signal); the last frame */
#ifndef MOS_EXEC_LINK_H
#define MOS_EXEC_LINK_H

#include "mos/frame.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
/* Takes fd (made non-blocking; TCP keepalive so a silent dead peer is noticed). */
int mos_exec_link_new(int fd, struct mos_exec_link **out);
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

/* What the relay runs, and as whom. */
struct mos_exec_spec {
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t n_groups;
    char *const *argv;         /* resolved with execvp and the PATH of envp */
    char *const *envp;
    const char *cwd;           /* tried first; then the user's home directory; then "/" */
    mode_t umask;
    const char *node;          /* this node's name, for messages */
    const char *cgroup_procs;  /* the program joins this cgroup.procs file; NULL or "": none */
};

/* Relay side (root, on the remote node): start spec's program with pipes for 0/1/2 in a new
 * session, as the user (supplementary groups, gid, uid; PR_SET_PDEATHSIG), drop the relay's own
 * privileges to the user's too, and relay over the connected, authenticated link_fd (taken)
 * until the program exits. A program that cannot be started reports on its stderr and exits
 * 127 (not found) or 126. Returns 0 when the exit status was delivered; MOS_E_PEER_GONE when
 * the link broke first (the program's process group is then killed); another status on setup
 * failure (logged). */
int mos_exec_relay_run(int link_fd, const struct mos_exec_spec *spec);

/* Home side (mosrun): relay our stdin and the signals in `signals` (0-terminated; blocked here
 * and taken with a signalfd) to the program, its output to our stdout and stderr, until it
 * exits. SIGTSTP stops the remote program (SIGSTOP to its group) and then us; SIGCONT wakes
 * it. Returns 0 with the program's wait status in *wait_status, MOS_E_PEER_GONE when the link
 * broke (the remote node or its relay died), MOS_E_PROTO for a malformed frame. */
int mos_exec_home_serve(int link_fd, const int *signals, int *wait_status);

#endif
