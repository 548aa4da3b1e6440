/* The checkpoint/restore engine: freeze and capture a process into an image stream, rebuild
 * it from one, and the whole operations with their two-step commit (checkpoint, send,
 * receive). Threads, pages and descriptors as migrate/README.md says. */
#ifndef MOS_MIGRATE_H
#define MOS_MIGRATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "mos/transport.h"

struct sock_filter;

/* ---- The image stream: where an image is written to or read from. The same stream goes to
 * a file (a checkpoint), a pipe or socket, or a transport connection (a migration between
 * nodes: records as control messages, page contents as the transport's bulk page runs). */
struct mos_img_io;
/* A stream over fd (a file, pipe or socket; not taken: the caller closes it after
 * mos_img_io_close). A regular file being read is mapped instead of copied. 0 or -ENOMEM. */
int mos_img_io_fd_open(int fd, struct mos_img_io **out);
/* A stream over a connected transport connection (not taken). The writing side sends the
 * contents of readable VMAs as bulk page runs read straight from the frozen process, unless
 * flags has MOS_IMG_IO_NO_BULK (or $MOS_IMG_NO_BULK is set): then they travel in control
 * messages. A reading side takes either. 0 or -ENOMEM.
 * Test hook: MOS_TEST_BULK_FAULT=outside (a run outside every VMA of the image) or =short
 * (the last page left out) makes the sending side's bulk transfer wrong on purpose; =die
 * makes the receiving side kill itself after the first bulk frame. */
#define MOS_IMG_IO_NO_BULK 1u
int mos_img_io_tp_open(mos_tp_conn_t *conn, int timeout_ms, unsigned flags,
                       struct mos_img_io **out);
/* Release the stream (a transport stream logs one line of what travelled how). NULL is
 * allowed. */
void mos_img_io_close(struct mos_img_io *io);

/* ---- Capture. */
struct mos_proc_ident; /* mos/procfs.h */
/* A job as its node registered it: the process then (its identity and a pidfd on it) and the
 * user it belongs to. A freeze as root must never take a process that is no longer that one
 * (its pid reused) or that now holds more than that user's rights (a set-id exec, capabilities):
 * its memory would travel into an image, or it would be recreated as the user. */
struct mos_job_owner {
    const struct mos_proc_ident *registered;
    int pidfd; /* pidfd_open of the registered process */
    uid_t uid;
    gid_t gid;
};
/* A thread's id as its program knows it (the image's: what glibc cached where the thread
 * was made) and as this node's kernel knows it. They differ for a thread restored with a
 * fresh tid. */
struct mos_tid_pair {
    pid_t image;
    pid_t local;
};

struct mos_dump_opts {
    int close_other_fds; /* fds of types that cannot travel are left closed instead of refusing */
    int fds_at_home;     /* a migration with a deputy: the fds stay at home, none is carried or
                            checked */
    int carry_files;     /* private file maps travel whole (for targets without these files) */
    int sandbox_ours;    /* a guest: its seccomp filters and no_new_privs are mos's own,
                            installed afresh wherever it is restored (it cannot add its own:
                            those calls take it home). Otherwise a seccomp filter,
                            no_new_privs or a user namespace of its own keeps a process where
                            it is */
    /* Called for each thread (the leader first) between its PTRACE_INTERRUPT and the wait
     * for its stop: a guest's call held in a seccomp notification is answered there
     * (-ERESTARTNOINTR) for that thread, so it stops on its way out with the call ready to
     * run again wherever it is restored. Answered earlier, before the thread's interrupt is
     * pending, the kernel would not restart it and the program would see errno 513. */
    void (*on_interrupt)(pid_t tid, void *arg);
    void *on_interrupt_arg;
    /* When set, a stay reason too: pid is no longer the owner's registered process, or runs
     * with more than the owner's rights (mos_migrate_owner_check, before and after freezing). */
    const struct mos_job_owner *owner;
    /* A guest restored with fresh tids (mos_restore_thread_ids): the THREAD records carry
     * each listed thread's image tid, the one its program believes in, not its local one. A
     * thread not listed (made here) keeps its local tid. */
    const struct mos_tid_pair *tids;
    size_t ntids;
    /* mos_migrate_send only: live pre-copy. The private anonymous memory is sent while the
     * process runs, its writes tracked (userfaultfd write-protect, async, read with
     * PAGEMAP_SCAN), then rounds of what it wrote until few pages are left or the rounds stop
     * shrinking; only then is it frozen, and the image sends just what changed (a KEEP record
     * says which pages sent ahead stand). Where the kernel or the process does not allow the
     * tracking, the move is a plain stop-and-copy, said in one log line. */
    int live;
};
struct mos_dump_stats {
    uint64_t freeze_ns;   /* stay-reason check + seize + interrupt */
    uint64_t state_ns;    /* registers, mm, signals, fds: everything but pages */
    uint64_t pages_ns;    /* page scan, read and write to the stream */
    uint64_t pages, zero_pages, bytes;
    uint64_t bulk_pages;  /* of pages, those sent through the io's send_pages */
    /* mos_migrate_send: from the freeze until the receiver said the copy runs */
    uint64_t downtime_ns;
    /* live pre-copy: rounds while running (0: not live), pages sent in them (a page sent
     * twice counts twice), of those the ones sent again, and the pages the image kept */
    uint64_t live_rounds, live_pages, live_resent, live_kept;
    uint64_t live_ns; /* the rounds, before the freeze */
};
struct mos_dump;

/* Stay reasons: why pid cannot migrate. Returns 0 (migratable), MOS_E_NOT_MIGRATABLE with a
 * one-line reason in reason[len], or -errno (-ESRCH: no such process). */
int mos_migrate_check(pid_t pid, const struct mos_dump_opts *opts, char *reason, size_t len);
/* Whether `now` is still the process `registered` describes (same start time and parent) and
 * runs with no more than uid and gid: every uid and gid field theirs, and (for a uid other than
 * root) no capability, dumpable, no set-id program. 0, or MOS_E_NOT_MIGRATABLE with one reason
 * in why[len] (phrased to follow "it"). No I/O. */
int mos_ident_compare(const struct mos_proc_ident *registered, const struct mos_proc_ident *now,
                      uid_t uid, gid_t gid, char *why, size_t len);
/* mos_ident_compare on pid as /proc shows it now, read while o->pidfd says the registered
 * process is still alive (so what was read was that process). 0, MOS_E_NOT_MIGRATABLE with
 * why[len], or -errno when /proc cannot be read. */
int mos_migrate_owner_check(pid_t pid, const struct mos_job_owner *o, char *why, size_t len);

/* Check stay reasons, then freeze pid (PTRACE_SEIZE + PTRACE_INTERRUPT) and check again.
 * On MOS_E_NOT_MIGRATABLE the reason is logged and the process runs on untouched. */
int mos_dump_freeze(pid_t pid, const struct mos_dump_opts *opts, struct mos_dump **out);
/* Capture the frozen process into the stream. The process stays frozen. */
int mos_dump_write(struct mos_dump *d, struct mos_img_io *io);
const struct mos_dump_stats *mos_dump_stats(const struct mos_dump *d);
/* The image is safe elsewhere: kill the original. Frees d. */
void mos_dump_commit(struct mos_dump *d);
/* From now on the frozen original dies if we die (PTRACE_O_EXITKILL on every thread) instead
 * of going on as it was seized: said right before a COMMIT, after which a copy may run
 * elsewhere. mos_dump_abort still resumes it. 0 or -errno. */
int mos_dump_die_with_us(struct mos_dump *d);
/* The image is safe elsewhere, and the original stays as a shell: its descriptors closed, its
 * memory replaced by a fresh exec of its own program (or of husk_path where that is set-id or
 * has capabilities), parked in pause() before the program's first instruction with every
 * blockable signal blocked, in a process group of its own, killed with its parent
 * (PR_SET_PDEATHSIG). It keeps the pid, parent, session and credentials for
 * the job's return (mos_restore_opts.into_pid). If it cannot become one it is killed as by
 * mos_dump_commit. Frees d. 0 when the shell is there. */
int mos_dump_commit_shell(struct mos_dump *d, const char *husk_path);
/* Something failed: the original resumes exactly where it was. Frees d. 0 or -errno. */
int mos_dump_abort(struct mos_dump *d);

/* ---- Restore. */
struct mos_restore_opts {
    const char *husk_path; /* the static husk program (build/bin/mos-husk) */
    /* Guest mode (a migrated job whose deputy is at home): no descriptors are restored (they
     * are the deputy's), the husk runs as uid/gid, dies with its restorer, and the guest
     * seccomp filter (mos/forward.h) is installed last; mos_restore_listener_fd says where. */
    int guest;
    /* Guest mode: the seccomp program installed as the last injected call (after
     * no_new_privs), and the seccomp() flags it is installed with. The engine knows nothing
     * of what it does; remote execution builds it (mos_guest_filter_program). */
    const struct sock_filter *guest_filter;
    unsigned guest_filter_len;
    unsigned long guest_filter_flags;
    uid_t uid;
    gid_t gid;
    /* Restore into into_pid, a shell left by mos_dump_commit_shell, instead of a new husk: the
     * process keeps its pid, parent, session and credentials, and runs natively (no filter).
     * The image must carry no descriptors (a guest's image); instead the descriptors of
     * process fds_from below fds_limit are installed at the same numbers (taken with
     * pidfd_getfd from inside, so the shell's owner needs ptrace rights over fds_from), and
     * the working directory becomes cwd. */
    pid_t into_pid;
    pid_t fds_from;
    int fds_limit;
    const char *cwd;
    /* Every thread keeps the CPU affinity of the husk (or of the shell: the binding it had at
     * home), not the image's: a binding made on the node the job left (mpirun --bind-to, a
     * rankfile) names CPUs of that node, and would pile ranks onto one core here. 0: the
     * image's affinity (a checkpoint restarted where it was taken). */
    int cpus_here;
};
struct mos_restore_stats {
    uint64_t meta_ns;  /* reading the metadata, husk start, address space rebuilt */
    uint64_t pages_ns; /* receiving and filling pages */
    uint64_t final_ns; /* protections, mm, signals, registers */
    uint64_t pages;
    uint64_t bulk_pages;  /* of pages, those received through the io's recv_pages */
    uint64_t staged_pages; /* live: pages received ahead (a page sent twice counts twice) */
    uint64_t kept_pages;   /* live: pages sent ahead that stood (not in pages) */
};
struct mos_restore;

/* Read an image and rebuild its process in a husk, left stopped: nothing of it has run yet.
 * Then commit (it runs) or abort (it is killed). Returns 0 or a status (logged once). */
int mos_restore_prepare(struct mos_img_io *io, const struct mos_restore_opts *opts,
                        struct mos_restore **out);
pid_t mos_restore_pid(const struct mos_restore *r);
/* Guest mode: the restored process's fd number of its seccomp listener, to take with
 * mos_supervisor_take_listener before commit. -1 otherwise. */
int mos_restore_listener_fd(const struct mos_restore *r);
/* The threads other than the leader, as the image named them and as they were made here
 * (equal where the tid was free and ours to choose). Fills up to max pairs; returns how many
 * threads there are. */
size_t mos_restore_thread_ids(const struct mos_restore *r, struct mos_tid_pair *out, size_t max);
const struct mos_restore_stats *mos_restore_stats(const struct mos_restore *r);
/* Between prepare and commit, the rebuilt process can be worked on from outside: run a
 * system call inside it (installing a seccomp filter for the deputy, say; a filter's listener
 * fd is then fetched with pidfd_getfd) or write into its memory (mapped there first with an
 * injected mmap). mos_restore_syscall returns the injection status (0, or -errno when the
 * process could not be driven) and puts the call's own result in *result. Registers, mask
 * and memory the restore set up are not disturbed. */
int mos_restore_syscall(struct mos_restore *r, long nr, const long args[6], long *result);
int mos_restore_write_mem(struct mos_restore *r, uint64_t addr, const void *buf, size_t len);
/* Let the restored process run (PTRACE_DETACH). It stays our child. Frees r. */
int mos_restore_commit(struct mos_restore *r);
void mos_restore_abort(struct mos_restore *r);

/* ---- Whole operations (session.c). */

/* Checkpoint pid to path (written as path.tmp, fsync'ed, renamed). Afterwards the process is
 * killed, or with leave_running resumes. On failure it resumes and no file is left. */
int mos_migrate_checkpoint(pid_t pid, const char *path, const struct mos_dump_opts *opts,
                           int leave_running, struct mos_dump_stats *stats);
/* A migration's commit, said once here for every caller: the sender streams the image and
 * waits for the receiver's READY (the copy is rebuilt and stopped, and whatever the
 * receiver's caller needed before it may run is in place); it answers COMMIT, the receiver
 * lets the copy run and answers DONE, and only then is the original retired. Without READY or
 * DONE the original resumes where it was; without COMMIT the receiver kills the copy. The
 * original stays frozen while the copy starts, so at no moment do two copies run. A sender
 * that dies once it has sent COMMIT takes the original along (mos_dump_die_with_us), unless
 * a deputy decides (below). */
struct mos_send_hooks {
    /* Right before the freeze that captures it (after a live move's rounds). */
    void (*before_freeze)(void *arg);
    /* After DONE, before the original is retired (tell the job's owner where it went). */
    void (*before_commit)(void *arg);
    /* Retire the frozen original; NULL: mos_dump_commit (killed). A job leaving home keeps
     * a shell (mos_dump_commit_shell). Must free d. */
    void (*retire)(struct mos_dump *d, void *arg);
    /* A failure before DONE: the original runs again where it was. */
    void (*on_abort)(void *arg);
    /* 1: if we die after COMMIT the original goes on as seized, and the job's deputy, which
     * then loses us, drops the copy's link home (its node kills a guest without one): a job
     * leaving home. 0: the original dies with us from COMMIT on. */
    int deputy_decides;
    void *arg;
};
struct mos_receive_hooks {
    /* The copy is rebuilt and stopped: what must be in place before READY (join a cgroup,
     * take its seccomp listener, link it to its deputy). A non-zero status discards the copy
     * and is returned. */
    int (*before_ready)(struct mos_restore *r, void *arg);
    void *arg;
};
/* Migrate pid through io (a connected stream). hooks may be NULL. 0 or a status. */
int mos_migrate_send(pid_t pid, const struct mos_dump_opts *opts, struct mos_img_io *io,
                     const struct mos_send_hooks *hooks, struct mos_dump_stats *stats);
/* The other end: restore from io, answer READY, let the process run on COMMIT, else kill the
 * copy. *pid: the running process (our child, or the shell it was restored into). hooks may
 * be NULL. 0 or a status. */
int mos_migrate_receive(struct mos_img_io *io, const struct mos_restore_opts *opts,
                        const struct mos_receive_hooks *hooks, pid_t *pid);
/* The husk to use: $MOS_HUSK, else mos-husk next to the running program (build/bin), else
 * the installed one (libexec/mos/mos-husk). buf holds the composed path. */
const char *mos_restore_husk_path(char *buf, size_t len);
/* Wait for a restored child in the foreground, passing on signals sent to us; returns its
 * exit status, or 128 + the signal that ended it. */
int mos_restored_wait(pid_t pid);

/* ---- Looking into an image (mosckpt info). The info owns its arrays and strings, all of
 * them, until mos_image_info_free. */
struct mos_image_vma_info {
    uint64_t start, end;
    uint32_t prot;
    const char *kind; /* "anon", "file", "file-shared", "file-copy", "vdso", "anon-shared",
                         "memfd" */
    const char *path;
    uint64_t pages;   /* pages carried */
};
struct mos_image_fd_info {
    int fd;
    const char *kind; /* "file", "dev", "stdio", "pipe", "eventfd", "signalfd", "timerfd",
                          "epoll", "unix", "memfd" */
    const char *path;
    uint64_t offset;
    uint32_t flags;
    uint32_t pipe_size, queued; /* a pipe: its capacity, the bytes it held (first fd only) */
    /* a unix socket (not a dup): queued also its bytes, in `messages`; peer the other end's
     * inode, 0 when it was closed; a memfd: peer is its object's inode (a memfds entry) */
    uint32_t messages;
    uint64_t peer;
    int dup_of; /* -1, or the earlier fd sharing this one's open file description */
};
/* A memfd object: what memfd fds and memfd VMAs name (by inode) */
struct mos_image_memfd_info {
    const char *name;
    uint64_t ino, size, data_pages; /* bytes; pages carried */
    uint32_t seals;                 /* F_SEAL_* */
};
struct mos_image_info {
    uint32_t format_version;
    uint64_t src_pid, time_ns;
    char host[64];
    const char *exe, *cwd;
    uint64_t rip, rsp;
    uint32_t xstate_len;
    uint64_t sigmask;
    uint32_t handlers, pending; /* signals with a handler; signals pending */
    uint32_t threads;           /* the leader included */
    struct mos_image_vma_info *vmas;
    size_t nvmas;
    struct mos_image_fd_info *fds;
    size_t nfds;
    struct mos_image_memfd_info *memfds;
    size_t nmemfds;
    uint64_t pages, records, bytes; /* pages: of the VMAs (memfds' count apart) */
};
/* Read and validate a whole image. 0 or a status (logged once). */
int mos_image_info_read(struct mos_img_io *io, struct mos_image_info *info);
void mos_image_info_free(struct mos_image_info *info);

#endif
