/* The image format: the one place that defines it (documented in migrate/README.md).
 *
 * An image is a sequence of records. Every record is
 *     struct mos_rec_hdr | payload (hdr.len bytes) | uint64_t xxh3-64 of header and payload
 * in little-endian x86-64 layout. Each record type has its own magic and version. Order:
 * IMAGE, CORE, MM, VMAS, SIGS, RLIM, one THREAD per thread but the leader (IMAGE's nthreads - 1),
 * FDS, MEMFDS, the MEMFD_PAGES records of its objects, then any number of PAGES, then at most one BULK
 * (streams over a page channel only, never in a file), then END. A live migration's stream
 * (never a file) has PRECOPY records before IMAGE (pages sent while the process ran, the same
 * page sent again overwrites) and KEEP records between FDS and the first PAGES (which of
 * those pages stand as they are). Readers check
 * every field against the limits below and fail with MOS_E_IMAGE (or MOS_E_TRUNCATED,
 * MOS_E_VERSION) on the first one that is off. */
#ifndef MOS_MIGRATE_IMAGE_FORMAT_H
#define MOS_MIGRATE_IMAGE_FORMAT_H

#include "mos/frame.h"

#include <stdint.h>
#include <sys/user.h>

/* 2: per-thread state (IMAGE nthreads, CORE's thread fields, THREAD records). 3: pipes of the
 * process's own, eventfd, signalfd, timerfd and epoll in FDS (their state after the path: pipe_size
 * and data_len in every entry). 4: shared anonymous memory (MOS_VMA_ANON_SHARED). 5: unix
 * socket pairs of the process's own (MOS_FD_UNIX). 6: memfd objects (MEMFDS, MEMFD_PAGES,
 * MOS_FD_MEMFD, MOS_VMA_MEMFD). Images of another version are refused with one line
 * (mos_img_meta_read). */
#define MOS_IMG_FORMAT_VERSION 6

/* Record magics: four ASCII letters, read as a little-endian uint32 (as every mos magic). */
#define MOS_REC_IMAGE MOS_FRAME_MAGIC('M', 'O', 'S', 'I')
#define MOS_REC_CORE MOS_FRAME_MAGIC('C', 'O', 'R', 'E')
#define MOS_REC_MM MOS_FRAME_MAGIC('M', 'M', 'S', 'T')
#define MOS_REC_VMAS MOS_FRAME_MAGIC('V', 'M', 'A', 'S')
#define MOS_REC_SIGS MOS_FRAME_MAGIC('S', 'I', 'G', 'S')
#define MOS_REC_RLIM MOS_FRAME_MAGIC('R', 'L', 'I', 'M')
#define MOS_REC_THREAD MOS_FRAME_MAGIC('T', 'H', 'R', 'D')
#define MOS_REC_FDS MOS_FRAME_MAGIC('F', 'D', 'S', 'T')
#define MOS_REC_MEMFDS MOS_FRAME_MAGIC('M', 'F', 'D', 'S')
#define MOS_REC_MEMFD_PAGES MOS_FRAME_MAGIC('M', 'F', 'D', 'P')
#define MOS_REC_PAGES MOS_FRAME_MAGIC('P', 'A', 'G', 'E')
#define MOS_REC_BULK MOS_FRAME_MAGIC('B', 'U', 'L', 'K')
#define MOS_REC_END MOS_FRAME_MAGIC('M', 'E', 'N', 'D')
#define MOS_REC_PRECOPY MOS_FRAME_MAGIC('P', 'R', 'E', 'P')
#define MOS_REC_PREBULK MOS_FRAME_MAGIC('P', 'R', 'E', 'B')
#define MOS_REC_KEEP MOS_FRAME_MAGIC('K', 'E', 'E', 'P')
#define MOS_REC_DROP MOS_FRAME_MAGIC('D', 'R', 'O', 'P')

/* Limits every reader enforces. */
#define MOS_IMG_PAGE_SIZE 4096u
#define MOS_IMG_MAX_VMAS 65536u
#define MOS_IMG_MAX_PATH 4096u
#define MOS_IMG_MAX_FDS 4096u
#define MOS_IMG_MAX_XSTATE 16384u
#define MOS_IMG_MAX_AUXV 4096u
#define MOS_IMG_MAX_PENDING 256u
#define MOS_IMG_MAX_THREADS 1024u /* threads of one process, the leader included */
#define MOS_IMG_AFFINITY_WORDS 16u /* CPU affinity mask: 1024 CPUs */
#define MOS_IMG_MAX_RUN_PAGES 1024u /* pages in one PAGES record (4 MiB) */
#define MOS_IMG_MAX_META (4u << 20) /* payload of any record but PAGES */
#define MOS_IMG_MAX_PIPE_SIZE (1u << 20) /* a pipe's capacity: the default pipe-max-size */
#define MOS_IMG_MAX_PIPE_DATA (2u << 20) /* queued in all pipes and sockets of one image */
#define MOS_IMG_MAX_UNIX_MSGS 4096u      /* messages queued at one socket */
#define MOS_IMG_MAX_MEMFDS 256u          /* memfd objects of one image */
#define MOS_IMG_MAX_MEMFD_BYTES (1ull << 30) /* their sizes together */
#define MOS_IMG_MAX_MEMFD_NAME 249u      /* memfd_create's limit */
#define MOS_IMG_MAX_STAGED (1u << 26) /* distinct pages a live stream may stage (256 GiB) */
#define MOS_IMG_USER_TOP 0x800000000000ull /* x86-64 4-level user address space end */

struct mos_rec_hdr {
    uint32_t magic;
    uint16_t version; /* of this record type; 1 for all today */
    uint16_t zero;    /* must be 0 */
    uint64_t len;     /* payload bytes */
};

/* IMAGE: what made the image. */
struct mos_rec_image {
    char tag[8];             /* "MOSIMAGE" */
    uint32_t format_version; /* MOS_IMG_FORMAT_VERSION */
    uint32_t arch;           /* EM_X86_64 */
    uint32_t page_size;      /* 4096 */
    uint32_t flags;          /* 0 */
    uint64_t src_pid;        /* also the leader's tid */
    uint64_t time_ns;        /* CLOCK_REALTIME at capture */
    char host[64];           /* NUL-terminated */
    uint32_t nthreads;       /* 1..MOS_IMG_MAX_THREADS, the leader included */
    uint32_t pad;            /* 0 */
};

/* CORE: registers and per-thread state of the leader (thread group leader, tid == src_pid);
 * followed by xstate_len bytes of XSAVE area. THREAD records carry the same for the others.
 * umask and personality are the process's, meaningful in CORE only (0 in THREAD). */
struct mos_rec_core {
    struct user_regs_struct regs; /* fs_base/gs_base included; restart already folded in */
    uint32_t xstate_len;
    uint32_t umask;
    uint64_t sigmask;             /* blocked signals */
    uint64_t rseq_addr;           /* 0: none registered */
    uint32_t rseq_len, rseq_sig;
    uint64_t robust_list, robust_len;
    uint32_t personality, pad;
    char comm[16];                /* task name (PR_SET_NAME), NUL-terminated */
    uint64_t clear_child_tid;     /* set_tid_address() pointer (PR_GET_TID_ADDRESS) */
    uint32_t sched_policy;        /* SCHED_OTHER, _FIFO, _RR, _BATCH, _IDLE */
    int32_t sched_prio;           /* sched_param.sched_priority: 0, or 1..99 for FIFO/RR */
    int32_t nice;                 /* -20..19 */
    uint32_t affinity_words;      /* words of affinity used: 1..MOS_IMG_AFFINITY_WORDS */
    uint64_t affinity[MOS_IMG_AFFINITY_WORDS]; /* CPUs it may run on (not all 0) */
};

/* THREAD: a thread other than the leader; followed by core.xstate_len bytes of XSAVE area,
 * then npending entries of its own signal queue (struct mos_rec_pending, shared == 0). The
 * process-wide queue and the leader's travel in SIGS. */
struct mos_rec_thread {
    int32_t tid;       /* > 0, != src_pid, no two alike */
    uint32_t npending; /* 0..MOS_IMG_MAX_PENDING */
    uint64_t altstack_sp, altstack_size;
    uint32_t altstack_flags, pad;
    struct mos_rec_core core;
};

/* MM: mm_struct fields for PR_SET_MM_MAP; followed by auxv (auxv_len bytes, whole auxv
 * pairs), exe path (exe_len bytes) and cwd (cwd_len bytes), neither NUL-terminated. */
struct mos_rec_mm {
    uint64_t start_code, end_code, start_data, end_data;
    uint64_t start_brk, brk, start_stack;
    uint64_t arg_start, arg_end, env_start, env_end;
    uint32_t auxv_len, exe_len, cwd_len, pad;
};

enum mos_vma_kind {
    MOS_VMA_ANON = 1,        /* private anonymous: heap, stack, mmap(ANON) */
    MOS_VMA_FILE_PRIVATE,    /* private file map, file unchanged: mapped from it, COW pages carried */
    MOS_VMA_FILE_SHARED,     /* shared read-only file map: mapped from the file, nothing carried */
    MOS_VMA_FILE_COPY,       /* private file map whose file changed: all contents carried */
    MOS_VMA_VDSO,            /* [vdso], [vvar], [vvar_vclock]: moved into place, never carried */
    MOS_VMA_ANON_SHARED,     /* MAP_SHARED|MAP_ANONYMOUS of this process alone (checkpoint
                                mode): mapped anew, all contents carried */
    MOS_VMA_MEMFD,           /* MAP_SHARED of a memfd object (ino names it in MEMFDS; pgoff):
                                mapped from the object made again, nothing carried here */
};
#define MOS_VMA_F_GROWSDOWN 1u /* VM_GROWSDOWN (smaps "gd"): a stack that grows */
#define MOS_VMA_F_NORESERVE 2u /* VM_NORESERVE (smaps "nr"): no commit charge */
/* madvise() state, set again after mapping (smaps "hg", "nh", "dd", "dc", "wf") */
#define MOS_VMA_F_HUGEPAGE 4u
#define MOS_VMA_F_NOHUGEPAGE 8u
#define MOS_VMA_F_DONTDUMP 16u
#define MOS_VMA_F_DONTFORK 32u
#define MOS_VMA_F_WIPEONFORK 64u
#define MOS_VMA_F_ALL 127u

/* VMAS: count entries, each followed by path_len bytes of path. */
struct mos_rec_vmas {
    uint32_t count, pad;
};
struct mos_rec_vma {
    uint64_t start, end, pgoff;
    uint32_t prot, kind, flags, path_len;
    uint64_t dev, ino, size, mtime_ns; /* file identity, for the FILE_* kinds */
};

/* SIGS: dispositions of signals 1..64 as the kernel's rt_sigaction sees them, alt stack,
 * itimers, then npending entries. */
struct mos_ksigaction {
    uint64_t handler, flags, restorer, mask;
};
struct mos_rec_sigs {
    struct mos_ksigaction act[64]; /* act[i] is signal i + 1 */
    uint64_t altstack_sp, altstack_size;
    uint32_t altstack_flags, npending;
    uint64_t itimer[3][4]; /* ITIMER_REAL/VIRTUAL/PROF: interval sec, usec, value sec, usec */
};
struct mos_rec_pending {
    uint32_t shared, pad; /* 1: process-wide queue */
    uint8_t siginfo[128];
};

/* RLIM: count (== 16) pairs. */
struct mos_rec_rlim {
    uint32_t count, pad;
    uint64_t lim[16][2]; /* cur, max */
};

enum mos_fd_kind {
    MOS_FD_FILE = 1, /* regular file or directory: reopened at path, flags and offset */
    MOS_FD_DEV,      /* a stateless character device (/dev/null...): reopened at path */
    MOS_FD_STDIO,    /* fd 0-2 that is a tty, pipe or socket: the restorer's own fd */
    MOS_FD_PIPE,     /* a pipe whose every end is the process's own: made again, data queued */
    MOS_FD_EVENTFD,  /* made again with its counter (struct mos_rec_eventfd) */
    MOS_FD_SIGNALFD, /* made again with its mask (struct mos_rec_signalfd) */
    MOS_FD_TIMERFD,  /* made again, armed for what was left (struct mos_rec_timerfd) */
    MOS_FD_EPOLL,    /* made again watching the same fds (struct mos_rec_epoll_watch each) */
    MOS_FD_UNIX,     /* an end of a socketpair whose other end is the process's own or closed:
                      * made again with what it held queued (struct mos_rec_unix) */
    MOS_FD_MEMFD,    /* a memfd: opened again on its object (a uint64_t inode naming it in
                      * MEMFDS; path "/memfd:NAME (deleted)"), flags and offset its own */
};
struct mos_rec_fds {
    uint32_t count, pad;
};
struct mos_rec_fd {
    int32_t fd;
    uint32_t kind, flags, fdflags; /* open flags (fdinfo), FD_CLOEXEC */
    uint64_t offset;
    uint32_t path_len;
    int32_t dup_of; /* -1, or an earlier fd sharing this open file description (dup, 2>&1) */
    /* data_len bytes of the kind's state follow the path: a pipe's queued bytes (in the
     * pipe's first entry only; path "pipe:[inode]" names the pipe, pipe_size is its
     * capacity), or the struct(s) below for the anon-inode kinds (not in a dup's entry) */
    uint32_t pipe_size, data_len;
};
/* The anon-inode kinds' state, as /proc/PID/fdinfo shows it */
struct mos_rec_eventfd {
    uint64_t count;     /* < UINT64_MAX */
    uint32_t semaphore; /* EFD_SEMAPHORE: 0 or 1 */
    uint32_t pad;
};
struct mos_rec_signalfd {
    uint64_t mask; /* bit n-1: signal n */
};
struct mos_rec_timerfd {
    uint32_t clockid; /* REALTIME, MONOTONIC, BOOTTIME or their _ALARM */
    uint32_t pad;
    uint64_t ticks;                     /* expirations not read yet */
    uint64_t value_sec, value_nsec;     /* time left (0: disarmed) */
    uint64_t interval_sec, interval_nsec;
};
/* A unix socket's state (path "socket:[inode]"), then nmsgs messages, each a uint32 length and
 * its bytes: its receive queue, oldest first (a stream's as one message). */
struct mos_rec_unix {
    uint32_t type;           /* SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET */
    uint32_t shutdown;       /* of this end: 1 receive, 2 send (the kernel's sk_shutdown) */
    uint64_t peer;           /* the other end's inode, another entry's; 0: closed */
    uint32_t sndbuf, rcvbuf; /* as SO_SNDBUF and SO_RCVBUF report them */
    uint32_t passcred;       /* SO_PASSCRED: 0 or 1 */
    uint32_t nmsgs;          /* at most MOS_IMG_MAX_UNIX_MSGS */
};
struct mos_rec_epoll_watch {
    int32_t tfd;     /* an fd of the image, not an epoll */
    uint32_t events; /* EPOLL* flags as epoll_ctl takes them */
    uint64_t data;
};
#define MOS_IMG_MAX_EPOLL_WATCHES 4096u

/* MEMFDS: count objects (memfd_create files the process holds or maps shared, no other
 * process's), each struct mos_rec_memfd then name_len bytes of its name. Their contents follow
 * as MEMFD_PAGES records, object by object in order, pages ascending within each: exactly
 * data_pages pages per object, the pages that held data (SEEK_DATA); the rest reads as zeros. */
struct mos_rec_memfds {
    uint32_t count, pad;
};
struct mos_rec_memfd {
    uint64_t ino;        /* at capture: what MOS_FD_MEMFD entries and MOS_VMA_MEMFD VMAs name */
    uint64_t size;       /* bytes (all objects: at most MOS_IMG_MAX_MEMFD_BYTES) */
    uint64_t data_pages; /* pages its MEMFD_PAGES records carry */
    uint32_t seals;      /* F_SEAL_* (F_SEAL_SEAL: it may take no more) */
    uint32_t name_len;   /* at most MOS_IMG_MAX_MEMFD_NAME, no NUL */
};
#define MOS_IMG_MEMFD_SEALS 0x3fu /* SEAL, SHRINK, GROW, WRITE, FUTURE_WRITE, EXEC */
/* MEMFD_PAGES: npages (1..MOS_IMG_MAX_RUN_PAGES) pages of object `index` from its page `first`
 * on, then their contents. */
struct mos_rec_memfd_pages {
    uint32_t index, pad;
    uint64_t first, npages;
};

/* PAGES: a run of npages pages at addr, followed by their contents. */
struct mos_rec_pages {
    uint64_t addr, npages;
};

/* BULK: the contents of `pages` pages follow outside the record stream, as `runs` runs on
 * the io's page channel (mos_img_io_ops.send_pages / recv_pages); the records go on after
 * the transfer. No checksum of their own: see migrate/README.md. */
struct mos_rec_bulk {
    uint64_t pages, runs;
};

/* PREBULK: struct mos_rec_bulk and its `runs` runs (struct mos_rec_pages each); pages sent
 * while the process still ran, as BULK sends them (on the page channel, after the record):
 * what PRECOPY records carry otherwise. The runs are there so that the receiver can make room
 * for them before the pages come. A page the
 * sender could not read travels as zeros; it is never in KEEP, so DROP or PAGES settle it. */
/* PRECOPY: struct mos_rec_pages and its pages, like PAGES, sent while the process still ran;
 * the receiver keeps them aside. KEEP: count runs (struct mos_rec_pages without data) of
 * pages sent in PRECOPY records that were not written since and are placed from there; every
 * page of a run must have come in a PRECOPY record. DROP (after KEEP, same layout): pages sent
 * ahead that do not stand: zero unless PAGES bring them again. None counts in END's pages. */
struct mos_rec_keep {
    uint64_t count;
};

/* END: totals the reader checks against what it saw. */
struct mos_rec_end {
    uint64_t pages, records;
};

#endif
