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
 * Wire (its codec is private to remote/, src/exec_priv.h): each frame in a sealed record of
 * its own (mos/seal.h, with the keys of the token proof's session, as on the deputy link);
 * frames are mos frames (mos/frame.h) `u32 magic
 * "MEXL" | u16 version | u16 type | u32 length | payload`, little-endian. The header is checked (magic, version, known type, length within
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

#include "mos/forward.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

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
    int has_memlock;           /* set the program's RLIMIT_MEMLOCK to memlock (the user's at
                                  home), lowered to what the relay has, once it is the user */
    struct rlimit memlock;
};

/* Relay side (root, on the remote node): start spec's program with pipes for 0/1/2 in a new
 * session, as the user (supplementary groups, gid, uid; PR_SET_PDEATHSIG), drop the relay's own
 * privileges to the user's too, and relay over the connected, authenticated link (taken: it
 * is closed when this returns)
 * until the program exits. A program that cannot be started reports on its stderr and exits
 * 127 (not found) or 126. Returns 0 when the exit status was delivered; MOS_E_PEER_GONE when
 * the link broke first (the program's process group is then killed); another status on setup
 * failure (logged). */
int mos_exec_relay_run(struct mos_link *link, const struct mos_exec_spec *spec);

/* Home side (mosrun): relay our stdin and the signals in `signals` (0-terminated; blocked here
 * and taken with a signalfd) to the program, its output to our stdout and stderr, until it
 * exits. SIGTSTP stops the remote program (SIGSTOP to its group) and then us; SIGCONT wakes
 * it. Returns 0 with the program's wait status in *wait_status, MOS_E_PEER_GONE when the link
 * broke (the remote node or its relay died), MOS_E_PROTO for a malformed frame. */
int mos_exec_home_serve(struct mos_link *link, const int *signals, int *wait_status);

#endif
