/* Restore: rebuild a process from its image inside a husk (DESIGN.md "A migration", step 5).
 *
 * The supervisor forks the husk (mos-husk, a static program without libc) under
 * PTRACE_TRACEME with the image's fds already in place, then drives it with injected calls:
 * a trampoline in a hole, unmap the husk, move the vDSO/vvar block to where the image had it,
 * map each VMA, fill pages, set protections, mm fields, signal state and registers. Nothing of
 * the restored program runs before mos_restore_commit(). */
#include "image.h"
#include "memfd.h"
#include "stage.h"
#include "mos/ident.h"
#include "mos/inject.h"
#include "mos/procfs.h"

#include "mos/clock.h"
#include "mos/log.h"
#include "mos/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/prctl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TFD_IOC_SET_TICKS /* linux/timerfd.h, which clashes with sys/timerfd.h */
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_FIXED
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#endif

#define PAGE 4096ull
#define TRAMP_PAGES 3ull           /* code page + 8 KiB of scratch for paths and structs */
#define SCRATCH_OFF PAGE
#define BATCH_CODE_OFF 64 /* mos_inject_batch_code, in the code page after its `syscall` */

struct mos_restore {
    struct mos_img_meta m;
    struct mos_inject *t;         /* the leader */
    struct mos_inject **threads;  /* the others, as created (m.nthreads slots) */
    int fresh_tids;               /* some thread could not have its own tid back */
    int tid_by_next;              /* set_tid refused to the process: ns_last_pid instead */
    struct call_queue *queue;     /* calls waiting to run as a batch (NULL: injected one by one) */
    pid_t pid;
    uint64_t tramp;
    struct mos_restore_opts opts;
    int listener; /* guest mode: the listener's fd number in the restored process */
    struct mos_restore_stats stats;
    struct page_stage *stage; /* a live stream's pages sent ahead, until the fill is done */
    /* A guest's live stream: its husk starts at the first page sent ahead, and pages go
     * straight to their place in it; these spans of its memory were mapped for them (sorted,
     * disjoint). Pages that cannot go there (the husk's own mappings) go to the stage. */
    struct span *ahead;
    size_t nahead, ahead_cap;
    int ahead_off; /* the husk could not start early: the stage takes everything */
    struct mos_img_io *ahead_io; /* the stream, whose page channel PREBULK pages come on */
    struct ahead_writer *ahead_writer; /* while PREBULK pages come */
    int ahead_writer_failed;
    int early_plain; /* not a guest's: its fds and cwd come by injection once the image says */
};

struct span {
    uint64_t start, end;
};

static int guest_filter_install(struct mos_restore *r);
static int shell_signals_reset(struct mos_restore *r);
static int shell_fds_install(struct mos_restore *r);
static void shell_chdir(struct mos_restore *r);
static void shell_pgid(struct mos_restore *r);

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Lowest gap of len bytes at or above 1 GiB that overlaps none of the spans. */
static uint64_t hole_find(struct span *s, size_t n, uint64_t len)
{
    uint64_t at = 1ull << 30;

    qsort(s, n, sizeof(*s), span_cmp);
    for (size_t i = 0; i < n; i++) {
        if (s[i].end <= at)
            continue;
        if (s[i].start >= at + len)
            break;
        at = (s[i].end + PAGE - 1) & ~(PAGE - 1);
    }
    return at + len <= MOS_IMG_USER_TOP - (1ull << 30) ? at : 0;
}

/* ---- before the fork: files must be what the image says */

static int files_check(const struct mos_img_meta *m)
{
    for (uint32_t i = 0; i < m->nvmas; i++) {
        const struct mos_img_vma *v = &m->vmas[i];
        struct stat st;
        if (v->v.kind != MOS_VMA_FILE_PRIVATE && v->v.kind != MOS_VMA_FILE_SHARED)
            continue;
        if (i > 0 && !strcmp(v->path, m->vmas[i - 1].path) &&
            m->vmas[i - 1].v.ino == v->v.ino)
            continue;
        if (stat(v->path, &st) < 0) {
            mos_err("migrate", "cannot restore: mapped file %s: %s", v->path, strerror(errno));
            return -ENOENT;
        }
        uint64_t mtime = (uint64_t)st.st_mtim.tv_sec * MOS_NSEC_PER_SEC +
                         (uint64_t)st.st_mtim.tv_nsec;
        if (st.st_ino != v->v.ino || st.st_dev != v->v.dev ||
            (uint64_t)st.st_size != v->v.size || mtime != v->v.mtime_ns) {
            mos_err("migrate", "cannot restore: mapped file %s changed since the image was made",
                    v->path);
            return MOS_E_IMAGE;
        }
    }
    return 0;
}

/* A pipe's entry: the first makes the pipe, with its capacity and what it held queued again,
 * and keeps the end it does not take in spare[i] for a later entry of the same pipe (an open
 * file description of its own: a dup is dup_of); one that finds its end taken opens another
 * through /proc/self/fd. Returns the fd, or -1 with errno. */
static int pipe_open(const struct mos_img_meta *m, uint32_t i, const int *opened, int *spare)
{
    const struct mos_img_fd *f = &m->fds[i];
    int want_write = (f->f.flags & O_ACCMODE) == O_WRONLY, fd = -1, ends[2];
    char path[64];

    for (uint32_t k = 0; k < i && fd < 0; k++) {
        if (m->fds[k].f.kind != MOS_FD_PIPE || strcmp(m->fds[k].path, f->path) != 0)
            continue;
        if (spare[k] >= 0 && ((m->fds[k].f.flags & O_ACCMODE) == O_WRONLY) != want_write) {
            fd = spare[k]; /* the other end of the pipe entry k made */
            spare[k] = -1;
        } else if (opened[k] >= 0) {
            snprintf(path, sizeof(path), "/proc/self/fd/%d", opened[k]);
            fd = open(path, (int)(f->f.flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0)
                return -1;
        }
    }
    if (fd < 0) {
        if (pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0)
            return -1;
        /* a capacity above pipe-max-size needs CAP_SYS_RESOURCE: the default then, enough
         * for what it held only if that fits (checked by the write) */
        if (fcntl(ends[1], F_SETPIPE_SZ, (int)f->f.pipe_size) < 0)
            mos_warn("migrate", "restore: fd %d: a pipe of %u bytes is not allowed here: %s",
                     f->f.fd, f->f.pipe_size, strerror(errno));
        if (f->f.data_len && write(ends[1], f->data, f->f.data_len) != (ssize_t)f->f.data_len) {
            close(ends[0]);
            close(ends[1]);
            errno = ENOSPC;
            return -1;
        }
        fd = ends[want_write];
        spare[i] = ends[!want_write];
    }
    /* the status flags (O_NONBLOCK, O_DIRECT...) are the open file description's own */
    if (fcntl(fd, F_SETFL, (int)(f->f.flags & ~(uint32_t)O_ACCMODE)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The entry of the socket with inode ino (no dup); m->nfds if none. */
static uint32_t unix_entry(const struct mos_img_meta *m, uint64_t ino)
{
    char name[40];

    snprintf(name, sizeof(name), "socket:[%llu]", (unsigned long long)ino);
    for (uint32_t k = 0; k < m->nfds; k++)
        if (m->fds[k].f.kind == MOS_FD_UNIX && m->fds[k].f.dup_of == -1 &&
            strcmp(m->fds[k].path, name) == 0)
            return k;
    return m->nfds;
}

/* Put back what entry f's socket held queued by sending it through `via`, the other end of the
 * new pair; the buffer sizes first, as the kernel reported them (it doubles what it is given).
 * 0, or -1 with errno (ENOSPC: it does not fit in the buffers allowed here). */
static int unix_queue_fill(const struct mos_img_fd *f, int fd, int via)
{
    struct mos_rec_unix u;
    uint32_t off = sizeof(u), n;
    int snd, rcv, one = 1;

    memcpy(&u, f->data, sizeof(u));
    snd = (int)(u.sndbuf / 2);
    rcv = (int)(u.rcvbuf / 2);
    /* best effort: above the site's wmem_max/rmem_max they are capped, and the fill says so */
    (void)(snd && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd)));
    (void)(rcv && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)));
    if (u.passcred && setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
        return -1;
    for (uint32_t k = 0; k < u.nmsgs; k++) {
        memcpy(&n, f->data + off, sizeof(n));
        off += sizeof(n);
        for (uint32_t sent = 0; sent < n || (n == 0 && sent == 0);) {
            ssize_t w = send(via, f->data + off + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0 || (w == 0 && n)) {
                errno = w < 0 && errno != EAGAIN ? errno : ENOSPC;
                return -1;
            }
            if ((sent += (uint32_t)w) == 0)
                break; /* an empty datagram, sent */
        }
        off += n;
    }
    return 0;
}

static void unix_shutdown_set(int fd, const struct mos_img_fd *f)
{
    struct mos_rec_unix u;

    memcpy(&u, f->data, sizeof(u));
    if (u.shutdown)
        shutdown(fd, u.shutdown == 3 ? SHUT_RDWR : u.shutdown == 2 ? SHUT_WR : SHUT_RD);
}

/* A socket's entry: the first end of a pair makes the pair, fills both queues, and keeps the
 * other end in spare[i] for its own entry; an end whose peer was closed gets a pair whose
 * other end is closed once the queue is filled. Returns the fd, or -1 with errno. */
static int unix_open(const struct mos_img_meta *m, uint32_t i, int *spare)
{
    const struct mos_img_fd *f = &m->fds[i];
    uint32_t peer;
    struct mos_rec_unix u;
    int ends[2], fd;

    memcpy(&u, f->data, sizeof(u));
    peer = u.peer ? unix_entry(m, u.peer) : m->nfds; /* validated: there if named */
    if (peer < i) {
        fd = spare[peer]; /* made with its peer's entry */
        spare[peer] = -1;
    } else {
        if (socketpair(AF_UNIX, (int)u.type | SOCK_CLOEXEC, 0, ends) < 0)
            return -1;
        int rc = unix_queue_fill(f, ends[0], ends[1]);
        if (rc == 0 && peer < m->nfds)
            rc = unix_queue_fill(&m->fds[peer], ends[1], ends[0]);
        if (rc < 0) {
            int err = errno;
            close(ends[0]);
            close(ends[1]);
            errno = err;
            return -1;
        }
        unix_shutdown_set(ends[0], f);
        if (peer < m->nfds) {
            unix_shutdown_set(ends[1], &m->fds[peer]);
            spare[i] = ends[1];
        } else {
            close(ends[1]);
        }
        fd = ends[0];
    }
    if (fcntl(fd, F_SETFL, (int)(f->f.flags & ~(uint32_t)O_ACCMODE)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* An eventfd, signalfd or timerfd made again from its state. Returns the fd, or -1 with
 * errno. Ticks a timer had not been read yet need TFD_IOC_SET_TICKS (a kernel with
 * CONFIG_CHECKPOINT_RESTORE and CAP_CHECKPOINT_RESTORE): without it they are lost, said. */
static int anon_open(const struct mos_img_fd *f)
{
    struct mos_rec_eventfd e;
    struct mos_rec_signalfd sg;
    struct mos_rec_timerfd t;
    int fd = -1;

    if (f->f.kind == MOS_FD_EVENTFD) {
        memcpy(&e, f->data, sizeof(e));
        fd = eventfd(0, EFD_CLOEXEC | (e.semaphore ? EFD_SEMAPHORE : 0));
        if (fd >= 0 && e.count && write(fd, &e.count, sizeof(e.count)) != sizeof(e.count)) {
            close(fd);
            return -1;
        }
    } else if (f->f.kind == MOS_FD_SIGNALFD) {
        sigset_t mask;
        memcpy(&sg, f->data, sizeof(sg));
        sigemptyset(&mask);
        for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
            if (sg.mask & (1ull << (sig - 1)))
                sigaddset(&mask, sig);
        fd = signalfd(-1, &mask, SFD_CLOEXEC);
    } else {
        memcpy(&t, f->data, sizeof(t));
        struct itimerspec its = {{(time_t)t.interval_sec, (long)t.interval_nsec},
                                 {(time_t)t.value_sec, (long)t.value_nsec}};
        /* a periodic timer whose expiry is still unread shows no time left (the kernel
         * re-arms it on the read): it is armed, the next expiry a period away */
        if (!t.value_sec && !t.value_nsec)
            its.it_value = its.it_interval;
        fd = timerfd_create((int)t.clockid, TFD_CLOEXEC);
        if (fd >= 0 && (its.it_value.tv_sec || its.it_value.tv_nsec) &&
            timerfd_settime(fd, 0, &its, NULL) < 0) {
            close(fd);
            return -1;
        }
        if (fd >= 0 && t.ticks && ioctl(fd, TFD_IOC_SET_TICKS, &t.ticks) < 0)
            mos_warn("migrate", "restore: fd %d: %llu expirations of its timer not read yet "
                     "are lost (%s)", f->f.fd, (unsigned long long)t.ticks, strerror(errno));
    }
    if (fd >= 0 && fcntl(fd, F_SETFL, (int)(f->f.flags & ~(uint32_t)O_ACCMODE)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A memfd entry: its object (made by mos_memfds_make) opened again, so that the entry has an
 * open file description of its own, with its flags and offset. Returns the fd, or -1 with
 * errno. */
static int memfd_fd_open(const struct mos_img_meta *m, const struct mos_img_fd *f)
{
    char path[64];
    uint32_t k = mos_img_memfd_index(m, mos_img_fd_memfd_ino(m, f)); /* validated */

    snprintf(path, sizeof(path), "/proc/self/fd/%d", m->memfds[k].fd);
    int fd = open(path, (int)(f->f.flags & ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC)) | O_CLOEXEC);
    if (fd >= 0 && f->f.offset && lseek(fd, (off_t)f->f.offset, SEEK_SET) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* An epoll watching what it watched: the fds it names are made by now (the restorer's own
 * 0-2 for stdio entries, which the husk gets). Returns the fd, or -1 with errno. */
static int epoll_open(const struct mos_img_meta *m, uint32_t i, const int *opened)
{
    const struct mos_img_fd *f = &m->fds[i];
    uint32_t nw = f->f.data_len / sizeof(struct mos_rec_epoll_watch);
    int fd = epoll_create1(EPOLL_CLOEXEC);

    for (uint32_t w = 0; w < nw && fd >= 0; w++) {
        struct mos_rec_epoll_watch watch;
        uint32_t k = 0;
        memcpy(&watch, f->data + w * sizeof(watch), sizeof(watch));
        while (m->fds[k].f.fd != watch.tfd) /* validated: an fd of the image */
            k++;
        if (m->fds[k].f.kind == MOS_FD_SIGNALFD)
            continue; /* added by the process itself: epoll_signalfds_add */
        int target = m->fds[k].f.kind == MOS_FD_STDIO ? watch.tfd : opened[k];
        struct epoll_event ev = {.events = watch.events, .data.u64 = watch.data};
        if (epoll_ctl(fd, EPOLL_CTL_ADD, target, &ev) < 0) {
            int err = errno;
            close(fd);
            errno = err;
            return -1;
        }
    }
    if (fd >= 0 && fcntl(fd, F_SETFL, (int)(f->f.flags & ~(uint32_t)O_ACCMODE)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Two passes: the epolls last, once what they watch is open. */
static int fds_open_all(const struct mos_img_meta *m, int *opened, int *spare, int epolls)
{
    for (uint32_t i = 0; i < m->nfds; i++) {
        const struct mos_img_fd *f = &m->fds[i];
        if (f->f.kind == MOS_FD_STDIO || (f->f.kind == MOS_FD_EPOLL) != epolls)
            continue;
        if (f->f.dup_of >= 0) {
            uint32_t k = 0;
            while (m->fds[k].f.fd != f->f.dup_of) /* validated: an earlier entry */
                k++;
            opened[i] = fcntl(opened[k], F_DUPFD_CLOEXEC, 0);
            if (opened[i] < 0)
                return mos_errno_status();
            continue;
        }
        if (f->f.kind >= MOS_FD_PIPE) {
            opened[i] = f->f.kind == MOS_FD_PIPE    ? pipe_open(m, i, opened, spare)
                        : f->f.kind == MOS_FD_UNIX  ? unix_open(m, i, spare)
                        : f->f.kind == MOS_FD_EPOLL ? epoll_open(m, i, opened)
                        : f->f.kind == MOS_FD_MEMFD ? memfd_fd_open(m, f)
                                                    : anon_open(f);
            if (opened[i] < 0) {
                int rc = mos_errno_status();
                mos_err("migrate", "cannot restore fd %d: making its %s again: %s", f->f.fd,
                        f->path, mos_strerror(rc));
                return rc;
            }
            continue;
        }
        int flags = (int)(f->f.flags & ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC)) | O_NOCTTY |
                    O_CLOEXEC;
        opened[i] = open(f->path, flags);
        if (opened[i] < 0) {
            int rc = mos_errno_status();
            mos_err("migrate", "cannot restore fd %d: open %s: %s", f->f.fd, f->path,
                    mos_strerror(rc));
            return rc;
        }
        if (f->f.kind == MOS_FD_FILE && f->f.offset &&
            lseek(opened[i], (off_t)f->f.offset, SEEK_SET) < 0) {
            int rc = mos_errno_status();
            mos_err("migrate", "cannot restore fd %d: seek %s to %llu: %s", f->f.fd, f->path,
                    (unsigned long long)f->f.offset, mos_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* Open the image's files here, so a missing one fails before any process exists. */
static int fds_open(const struct mos_img_meta *m, int *opened)
{
    int *spare = malloc((m->nfds ? m->nfds : 1) * sizeof(int)), rc = 0;

    if (!spare)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->nfds; i++)
        spare[i] = opened[i] = -1;
    rc = fds_open_all(m, opened, spare, 0);
    if (rc == 0)
        rc = fds_open_all(m, opened, spare, 1);
    /* a pipe end no entry took is closed, as it was in the process */
    for (uint32_t i = 0; i < m->nfds; i++)
        if (spare[i] >= 0)
            close(spare[i]);
    free(spare);
    return rc;
}

/* In the child between fork and exec: only async-signal-safe calls. */
static void __attribute__((noreturn))
husk_child(const struct mos_img_meta *m, const int *opened, const char *husk, pid_t restorer)
{
    int top = 3, keep[3] = {0, 0, 0};
    char *const argv[] = {(char *)"mos-husk", NULL}, *const envp[] = {NULL};

    for (uint32_t i = 0; i < m->nfds; i++) {
        if (m->fds[i].f.fd + 1 > top)
            top = m->fds[i].f.fd + 1;
        if (opened[i] + 1 > top)
            top = opened[i] + 1;
    }
    if (chdir(m->cwd) < 0)
        _exit(126);
    /* Ignored dispositions and the mask survive execve: start from the defaults (ours ignore
     * SIGPIPE, say), the image's own are set later. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Lift every opened fd above all targets, then drop it onto its target. */
    int lifted[MOS_IMG_MAX_FDS];
    for (uint32_t i = 0; i < m->nfds; i++) {
        lifted[i] = -1;
        if (opened[i] >= 0 && (lifted[i] = fcntl(opened[i], F_DUPFD, top)) < 0)
            _exit(125);
        if (m->fds[i].f.fd <= 2)
            keep[m->fds[i].f.fd] = 1;
    }
    for (int fd = 0; fd <= 2; fd++)
        if (!keep[fd])
            close(fd);
    for (uint32_t i = 0; i < m->nfds; i++)
        if (lifted[i] >= 0 && dup2(lifted[i], m->fds[i].f.fd) < 0)
            _exit(124);
    int lo = 3;
    for (uint32_t i = 0; i < m->nfds; i++) {
        if (m->fds[i].f.fd < lo)
            continue;
        if (m->fds[i].f.fd > lo)
            syscall(SYS_close_range, lo, m->fds[i].f.fd - 1, 0);
        lo = m->fds[i].f.fd + 1;
    }
    syscall(SYS_close_range, lo, ~0u, 0);
    /* Until the restorer has it (PTRACE_O_EXITKILL), a husk must not outlive it; finish()
     * clears this again, as the image carries no parent-death signal. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != restorer)
        _exit(121);
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
        _exit(123);
    execve(husk, argv, envp);
    _exit(122);
}

/* ---- driving the husk */

static int queue_flush(struct mos_restore *r);

static int rcall(struct mos_restore *r, const char *what, long nr, long a0, long a1, long a2,
                 long a3, long a4, long a5, long *res)
{
    int rc = queue_flush(r); /* calls run in the order they were asked for */

    if (rc == 0)
        rc = mos_inject_call(r->t, nr, a0, a1, a2, a3, a4, a5, res);
    if (rc != 0)
        mos_err("migrate", "restore: %s: %s", what, mos_strerror(rc));
    return rc;
}

static uint64_t scratch_put(struct mos_restore *r, const void *data, size_t len, int *rc)
{
    uint64_t at = r->tramp + SCRATCH_OFF;

    /* the queue's calls and data lie in the scratch too, until they ran */
    if ((*rc = queue_flush(r)) != 0)
        return 0;
    if (len > (TRAMP_PAGES - 1) * PAGE) {
        *rc = -E2BIG;
        return 0;
    }
    *rc = mos_inject_write(r->t, at, data, len);
    return at;
}

/* ---- calls queued and run as batches (mos_inject_batch_run): the husk runs a list of calls
 * itself, one ptrace stop for the list where an injected call costs two; mapping the VMAs of a
 * process with 64 threads took about 28 ms by injected calls. Each call is queued with what
 * its result must be and runs before any call made by rcall or any use of the scratch
 * (queue_flush), so the order of calls is the order they were asked for. The queue is off
 * where the image has a SIGTRAP pending (the int3 that ends a batch could be taken for it). */

#define QUEUE_CALLS 48
#define QUEUE_DATA_OFF ((QUEUE_CALLS + 1) * sizeof(struct mos_batch_call))
#define QUEUE_DATA ((TRAMP_PAGES - 1) * PAGE - QUEUE_DATA_OFF)
#define QUEUE_ANY UINT64_MAX /* any result but an error */

struct call_queue {
    struct mos_batch_call calls[QUEUE_CALLS + 1];
    const char *what[QUEUE_CALLS];
    uint64_t expect[QUEUE_CALLS];
    uint32_t n;
    size_t data_len;
    uint8_t data[QUEUE_DATA];
};

static int queue_check(const struct call_queue *q)
{
    for (uint32_t i = 0; i < q->n; i++) {
        int64_t res = q->calls[i].result;
        if (res < 0 && res > -4096) {
            mos_err("migrate", "restore: %s: %s", q->what[i], mos_strerror((int)res));
            return (int)res;
        }
        if (q->expect[i] != QUEUE_ANY && (uint64_t)res != q->expect[i]) {
            mos_err("migrate", "restore: %s: gave %#llx, not %#llx", q->what[i],
                    (unsigned long long)res, (unsigned long long)q->expect[i]);
            return -EFAULT;
        }
    }
    return 0;
}

static int queue_flush(struct mos_restore *r)
{
    struct call_queue *q = r->queue;
    const uint64_t base = r->tramp + SCRATCH_OFF;
    size_t none = 0;
    int rc = 0;

    if (!q || q->n == 0)
        return 0;
    q->calls[q->n] = (struct mos_batch_call){.flags = MOS_BATCH_END};
    rc = mos_inject_write(r->t, base, q->calls, (q->n + 1) * sizeof(q->calls[0]));
    if (rc == 0 && q->data_len)
        rc = mos_inject_write(r->t, base + QUEUE_DATA_OFF, q->data, q->data_len);
    if (rc == 0)
        rc = mos_inject_batch_run(r->t, r->tramp + BATCH_CODE_OFF, base, NULL, 0, &none);
    if (rc == 0)
        rc = mos_inject_read(r->t, base, q->calls, q->n * sizeof(q->calls[0]));
    if (rc == 0)
        rc = queue_check(q);
    else
        mos_err("migrate", "restore: a batch of %u calls: %s", q->n, mos_strerror(rc));
    q->n = 0;
    q->data_len = 0;
    return rc;
}

/* Where len bytes of data for a queued call will lie in the husk (0: no room; *rc says why). */
static uint64_t queue_data(struct mos_restore *r, const void *data, size_t len, int *rc)
{
    struct call_queue *q = r->queue;
    size_t at = (q->data_len + 15) & ~(size_t)15;

    *rc = 0;
    if (at + len > QUEUE_DATA) {
        if ((*rc = queue_flush(r)) != 0)
            return 0;
        at = 0;
    }
    memcpy(q->data + at, data, len);
    q->data_len = at + len;
    return r->tramp + SCRATCH_OFF + QUEUE_DATA_OFF + at;
}

/* rcall, run later; expect: the result it must give (QUEUE_ANY: any but an error). data, if
 * not NULL, is copied into the husk and its address given as argument data_arg. */
static int qcall(struct mos_restore *r, const char *what, long nr, const long a[6],
                 uint64_t expect, const void *data, size_t len, int data_arg)
{
    struct call_queue *q = r->queue;
    long args[6];
    int rc = 0;

    memcpy(args, a, sizeof(args));
    if (!q) {
        long res = 0;
        uint64_t at = data ? scratch_put(r, data, len, &rc) : 0;
        if (data && rc == 0)
            args[data_arg] = (long)at;
        if (rc == 0)
            rc = rcall(r, what, nr, args[0], args[1], args[2], args[3], args[4], args[5], &res);
        if (rc == 0 && expect != QUEUE_ANY && (uint64_t)res != expect) {
            mos_err("migrate", "restore: %s: gave %#lx, not %#llx", what, (unsigned long)res,
                    (unsigned long long)expect);
            rc = -EFAULT;
        }
        return rc;
    }
    if (q->n == QUEUE_CALLS && (rc = queue_flush(r)) != 0)
        return rc;
    if (data) {
        uint64_t at = queue_data(r, data, len, &rc);
        if (rc != 0)
            return rc;
        args[data_arg] = (long)at;
    }
    q->what[q->n] = what;
    q->expect[q->n] = expect;
    q->calls[q->n] = (struct mos_batch_call){.nr = (uint32_t)nr, .flags = MOS_BATCH_STOP_ON_ERROR,
                                             .result = -ENOEXEC};
    for (int k = 0; k < 6; k++)
        q->calls[q->n].args[k] = (uint64_t)args[k];
    q->n++;
    return 0;
}

static int pending_signo(const struct mos_rec_pending *p)
{
    int signo;

    memcpy(&signo, p->siginfo, sizeof(signo));
    return signo;
}

/* A batch ends at an int3, whose SIGTRAP the leader's and every new thread's stop take: not
 * where a pending SIGTRAP of the program's could be taken for it (a second one of a standard
 * signal is not queued). */
static int batches_usable(const struct mos_restore *r)
{
    for (uint32_t i = 0; i < r->m.sigs.npending; i++)
        if (pending_signo(&r->m.pending[i]) == SIGTRAP)
            return 0;
    for (uint32_t t = 0; t < r->m.nthreads; t++)
        for (uint32_t i = 0; i < r->m.threads[t].t.npending; i++)
            if (pending_signo(&r->m.threads[t].pending[i]) == SIGTRAP)
                return 0;
    return 1;
}

/* The queue, once the trampoline holds the batch code; none where a batch's int3 could be
 * taken for a SIGTRAP of the program's (batches_usable). */
static void queue_start(struct mos_restore *r)
{
    if (batches_usable(r))
        r->queue = calloc(1, sizeof(*r->queue)); /* without it, calls are injected one by one */
}

/* ---- a live stream's pages sent ahead, placed in the husk as they come */

/* Index of the first span that ends above addr. */
static size_t ahead_at(const struct mos_restore *r, uint64_t addr)
{
    size_t lo = 0, hi = r->nahead;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->ahead[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* How many of the npages from addr lie in one span (0: addr is in none). */
static uint64_t ahead_covered(const struct mos_restore *r, uint64_t addr, uint64_t npages)
{
    size_t i = ahead_at(r, addr);

    if (i == r->nahead || r->ahead[i].start > addr)
        return 0;
    uint64_t n = (r->ahead[i].end - addr) / PAGE;
    return n < npages ? n : npages;
}

static int ahead_insert(struct mos_restore *r, uint64_t start, uint64_t end)
{
    size_t i = ahead_at(r, start);

    if (i > 0 && r->ahead[i - 1].end == start) { /* grows the span before */
        r->ahead[i - 1].end = end;
        if (i < r->nahead && r->ahead[i].start == end) {
            r->ahead[i - 1].end = r->ahead[i].end;
            memmove(&r->ahead[i], &r->ahead[i + 1], (r->nahead - i - 1) * sizeof(r->ahead[0]));
            r->nahead--;
        }
        return 0;
    }
    if (i < r->nahead && r->ahead[i].start == end) {
        r->ahead[i].start = start;
        return 0;
    }
    if (r->nahead == r->ahead_cap) {
        size_t cap = r->ahead_cap ? 2 * r->ahead_cap : 64;
        struct span *n = realloc(r->ahead, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        r->ahead = n;
        r->ahead_cap = cap;
    }
    memmove(&r->ahead[i + 1], &r->ahead[i], (r->nahead - i) * sizeof(r->ahead[0]));
    r->ahead[i] = (struct span){start, end};
    r->nahead++;
    return 0;
}

static int husk_start_guest(struct mos_restore *r, const char *husk);

/* Memory for [addr, addr + npages) in the husk where none is mapped yet; where the husk's
 * own mappings are in the way (MAP_FIXED_NOREPLACE refuses), nothing: those pages are staged. */
static int ahead_map(struct mos_restore *r, uint64_t addr, uint64_t npages)
{
    uint64_t at = addr, end = addr + npages * PAGE;

    while (at < end) {
        uint64_t n = ahead_covered(r, at, (end - at) / PAGE);
        if (n) {
            at += n * PAGE;
            continue;
        }
        size_t i = ahead_at(r, at);
        uint64_t stop = i < r->nahead && r->ahead[i].start < end ? r->ahead[i].start : end;
        long got = 0;
        int rc = mos_inject_call(r->t, SYS_mmap, (long)at, (long)(stop - at),
                                 PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0, &got);
        if (rc != 0)
            return rc; /* the husk cannot be driven */
        if ((uint64_t)got == at && (rc = ahead_insert(r, at, stop)) != 0)
            return rc;
        at = stop;
    }
    return 0;
}

/* A husk started before the image says which fds and directory it needs (a plain restore's
 * pages sent ahead): the defaults husk_child sets, no fd but 0-2, fds and cwd later. */
static void __attribute__((noreturn)) early_husk_child(const char *husk, pid_t restorer)
{
    char *const argv[] = {(char *)"mos-husk", NULL}, *const envp[] = {NULL};
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;

    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    syscall(SYS_close_range, 3, ~0u, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != restorer)
        _exit(121);
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
        _exit(123);
    execve(husk, argv, envp);
    _exit(122);
}

static int husk_start_early(struct mos_restore *r, const char *husk)
{
    pid_t restorer = getpid();
    int rc;

    if (r->opts.guest)
        return husk_start_guest(r, husk);
    r->pid = fork();
    if (r->pid < 0)
        return mos_errno_status();
    if (r->pid == 0)
        early_husk_child(husk, restorer);
    rc = mos_inject_adopt_traceme(r->pid, &r->t);
    if (rc != 0) {
        int st;
        kill(r->pid, SIGKILL);
        waitpid(r->pid, &st, 0);
        return rc;
    }
    r->early_plain = 1;
    return 0;
}

/* The image's fds into the early husk: each opened here, fetched there with pidfd_getfd and
 * put on its number; 0-2 the image does not have are closed. */
static int early_fds_install(struct mos_restore *r, const int *opened)
{
    const struct mos_img_meta *m = &r->m;
    long pidfd = -1, low = -1;
    int keep[3] = {0, 0, 0}, top = 3;
    int rc = rcall(r, "pidfd_open", SYS_pidfd_open, getpid(), 0, 0, 0, 0, 0, &low);

    for (uint32_t i = 0; i < m->nfds; i++)
        top = m->fds[i].f.fd + 1 > top ? m->fds[i].f.fd + 1 : top;
    if (rc == 0 && low < 0)
        rc = (int)low;
    /* above every target, so that no placement closes it */
    if (rc == 0)
        rc = rcall(r, "fcntl F_DUPFD", SYS_fcntl, low, F_DUPFD_CLOEXEC, top, 0, 0, 0, &pidfd);
    if (rc == 0 && pidfd < 0)
        rc = (int)pidfd;
    if (low >= 0)
        mos_inject_call(r->t, SYS_close, low, 0, 0, 0, 0, 0, NULL);

    for (uint32_t i = 0; i < m->nfds && rc == 0; i++) {
        long got = -1, want = m->fds[i].f.fd;
        if (want <= 2)
            keep[want] = 1;
        if (opened[i] < 0)
            continue;
        rc = rcall(r, "pidfd_getfd", SYS_pidfd_getfd, pidfd, opened[i], 0, 0, 0, 0, &got);
        if (rc == 0 && got < 0)
            rc = (int)got;
        if (rc == 0 && got != want) {
            rc = rcall(r, "dup3", SYS_dup3, got, want, 0, 0, 0, 0, NULL);
            mos_inject_call(r->t, SYS_close, got, 0, 0, 0, 0, 0, NULL);
        }
    }
    if (pidfd >= 0)
        mos_inject_call(r->t, SYS_close, pidfd, 0, 0, 0, 0, 0, NULL);
    for (int fd = 0; fd <= 2 && rc == 0; fd++)
        if (!keep[fd])
            mos_inject_call(r->t, SYS_close, fd, 0, 0, 0, 0, 0, NULL);
    if (rc != 0)
        mos_err("migrate", "cannot restore: placing the descriptors: %s", mos_strerror(rc));
    return rc;
}

static int ahead_husk(struct mos_restore *r)
{
    int rc = husk_start_early(r, r->opts.husk_path ? r->opts.husk_path : "mos-husk");

    if (rc == 0 && (rc = mos_inject_pick_exec_addr(r->t)) != 0) {
        mos_inject_kill_group(r->t, NULL, 0);
        r->t = NULL;
    }
    return rc;
}

/* The husk starts at the first page sent ahead. A plain husk takes its fds from us by
 * pidfd_getfd, which Yama keeps from a child that is not root's: others stage everything
 * aside. */
static void ahead_start(struct mos_restore *r)
{
    if (!r->t && !r->opts.into_pid && (r->opts.guest || geteuid() == 0) && !r->ahead_off &&
        ahead_husk(r) != 0) {
        mos_warn("migrate", "restore: the husk did not start early; pages sent ahead wait "
                 "aside");
        r->ahead_off = 1;
    }
}

/* Pages sent ahead, into the husk where they can go, else staged. */
static int ahead_place(struct mos_restore *r, uint64_t addr0, uint64_t npages,
                       const uint8_t *data)
{
    int rc = 0;

    ahead_start(r);
    if (r->t && (rc = ahead_map(r, addr0, npages)) != 0)
        return rc;
    r->stats.staged_pages += npages;
    for (uint64_t off = 0; off < npages && rc == 0;) {
        uint64_t addr = addr0 + off * PAGE, left = npages - off;
        uint64_t n = r->t ? ahead_covered(r, addr, left) : 0;
        if (n) {
            struct iovec local = {(void *)(data + off * PAGE), n * PAGE};
            struct iovec remote = {(void *)addr, n * PAGE};
            if (process_vm_writev(r->pid, &local, 1, &remote, 1, 0) != (ssize_t)local.iov_len)
                rc = mos_inject_write(r->t, addr, local.iov_base, local.iov_len);
        } else {
            /* up to the next span */
            size_t i = r->t ? ahead_at(r, addr) : r->nahead;
            n = left;
            if (i < r->nahead && r->ahead[i].start < addr + left * PAGE)
                n = (r->ahead[i].start - addr) / PAGE;
            rc = page_stage_put(r->stage, addr, n, data + off * PAGE);
        }
        off += n;
    }
    return rc;
}

/* A second writer of pages sent ahead in bulk: first touches of the husk's fresh memory
 * dominate here as in the fill, so a frame that lies in the spans is written in two halves at
 * once, this thread and the reader each writing one. It only calls process_vm_writev: a
 * short write makes the reader place the frame again its own way (only the reader may drive
 * the husk). */
struct ahead_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pid_t pid;
    struct iovec local, remote[IOV_MAX], mine[IOV_MAX]; /* its half, the reader's */
    unsigned long nremote;
    int busy, quit;
    ssize_t want, wrote;
};

static void *ahead_writer_run(void *arg)
{
    struct ahead_writer *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit)
            break;
        pthread_mutex_unlock(&w->mu);
        ssize_t got = process_vm_writev(w->pid, &w->local, 1, w->remote, w->nremote, 0);
        pthread_mutex_lock(&w->mu);
        w->wrote = got;
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Started at the first frame worth halving; NULL (one writer) when no thread can start. */
static struct ahead_writer *ahead_writer_get(struct mos_restore *r)
{
    struct ahead_writer *w = r->ahead_writer;

    if (w || r->ahead_writer_failed)
        return w;
    if (!(w = calloc(1, sizeof(*w)))) {
        r->ahead_writer_failed = 1;
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->pid = r->pid;
    if (pthread_create(&w->thread, NULL, ahead_writer_run, w) != 0) {
        free(w);
        r->ahead_writer_failed = 1;
        return NULL;
    }
    return r->ahead_writer = w;
}

static void ahead_writer_stop(struct mos_restore *r)
{
    struct ahead_writer *w = r->ahead_writer;

    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    r->ahead_writer = NULL;
}

/* Remote iovecs for pages [from, to) of the frame's runs. */
static unsigned long frame_iov(const struct mos_page_run *runs, size_t n, uint64_t from,
                               uint64_t to, struct iovec *iov)
{
    unsigned long k = 0;

    for (size_t i = 0, at = 0; i < n && at < to; at += runs[i].npages, i++) {
        uint64_t s = from > at ? from - at : 0, e = to - at < runs[i].npages ? to - at
                                                                             : runs[i].npages;
        if (s < e)
            iov[k++] = (struct iovec){(void *)(uintptr_t)(runs[i].addr + s * PAGE),
                                      (e - s) * PAGE};
    }
    return k;
}

/* The whole frame in the spans, written in two halves at once: 1 done, 0 not done (the
 * caller places it), or a status. */
static int ahead_frame_halves(struct mos_restore *r, const struct mos_page_run *runs,
                              size_t n, const uint8_t *data)
{
    uint64_t total = 0;

    for (size_t i = 0; i < n; i++) {
        if (!r->t || ahead_covered(r, runs[i].addr, runs[i].npages) != runs[i].npages)
            return 0;
        total += runs[i].npages;
    }
    struct ahead_writer *w = n < IOV_MAX && total >= 32 ? ahead_writer_get(r) : NULL;
    if (!w)
        return 0;
    uint64_t half = total / 2;
    pthread_mutex_lock(&w->mu);
    w->local = (struct iovec){(void *)(data + half * PAGE), (total - half) * PAGE};
    w->nremote = frame_iov(runs, n, half, total, w->remote);
    w->want = (ssize_t)w->local.iov_len;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    struct iovec local = {(void *)data, half * PAGE};
    unsigned long k = frame_iov(runs, n, 0, half, w->mine);
    ssize_t got = process_vm_writev(r->pid, &local, 1, w->mine, k, 0);
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    int done = got == (ssize_t)local.iov_len && w->wrote == w->want;
    pthread_mutex_unlock(&w->mu);
    if (done)
        r->stats.staged_pages += total;
    return done;
}

/* A PREBULK transfer's consumer: each frame's runs, checked, then placed. */
static int ahead_frame(void *arg, const struct mos_page_run *runs, size_t n,
                       const uint8_t *data)
{
    struct mos_restore *r = arg;
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        if (!page_stage_run_ok(runs[i].addr, runs[i].npages)) {
            mos_err("migrate", "corrupt stream: pages sent ahead in bulk with a bad page run");
            return MOS_E_IMAGE;
        }
    if ((rc = ahead_frame_halves(r, runs, n, data)) != 0)
        return rc < 0 ? rc : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = ahead_place(r, runs[i].addr, runs[i].npages, data);
        data += runs[i].npages * PAGE;
    }
    return rc;
}

/* Room in the husk for a PREBULK record's runs, made before their pages come: runs less
 * than a gap apart share one mapping (what lies between is trimmed later, unless the image
 * has memory there), so that a frame needs no mapping of its own. */
#define AHEAD_GAP (1ull << 20)
static int ahead_map_runs(struct mos_restore *r, const uint8_t *table, uint64_t n)
{
    struct mos_rec_pages run, next;
    int rc = 0;

    ahead_start(r);
    for (uint64_t i = 0; i < n && r->t && rc == 0;) {
        memcpy(&run, table + i * sizeof(run), sizeof(run));
        uint64_t start = run.addr, end = run.addr + run.npages * PAGE;
        for (i++; i < n; i++) {
            memcpy(&next, table + i * sizeof(next), sizeof(next));
            if (next.addr < end || next.addr - end > AHEAD_GAP)
                break;
            end = next.addr + next.npages * PAGE;
        }
        rc = ahead_map(r, start, (end - start) / PAGE);
    }
    return rc;
}

/* A PREBULK record: its totals and run table checked, room made, then its pages received. */
static int ahead_bulk(struct mos_restore *r, const uint8_t *payload, size_t len)
{
    struct mos_rec_bulk bulk = {0};
    const uint8_t *table = NULL;
    uint64_t got = 0;
    int rc = page_stage_bulk_check(payload, len, &bulk, &table);

    if (rc == 0)
        rc = mos_img_bulk_check(r->ahead_io, payload, sizeof(bulk), &bulk);
    if (rc == 0)
        rc = ahead_map_runs(r, table, bulk.runs);
    if (rc != 0)
        return rc;
    rc = r->ahead_io->ops->recv_pages(r->ahead_io, ahead_frame, r, &got);
    if (rc == 0 && got != bulk.pages) {
        mos_err("migrate", "corrupt stream: %llu pages sent ahead in bulk, %llu announced",
                (unsigned long long)got, (unsigned long long)bulk.pages);
        rc = MOS_E_IMAGE;
    }
    return rc;
}

/* The reader's stage hook: a PRECOPY record (its pages follow it), or a PREBULK record (they
 * follow on the stream's page channel). */
static int ahead_record(void *arg, uint32_t magic, const uint8_t *payload, size_t len)
{
    struct mos_restore *r = arg;
    struct mos_rec_pages ph;
    int rc;

    if (magic == MOS_REC_PREBULK)
        return ahead_bulk(r, payload, len);
    return (rc = page_stage_check(payload, len, &ph)) != 0
               ? rc : ahead_place(r, ph.addr, ph.npages, payload + sizeof(ph));
}

/* The early husk's directory, where husk_child would have gone before its exec. */
static int early_chdir(struct mos_restore *r)
{
    int rc;
    uint64_t at = scratch_put(r, r->m.cwd, strlen(r->m.cwd) + 1, &rc);
    long res = 0;

    if (rc == 0)
        rc = mos_inject_call(r->t, SYS_chdir, (long)at, 0, 0, 0, 0, 0, &res);
    if (rc == 0 && res < 0)
        rc = (int)res;
    if (rc != 0)
        mos_err("migrate", "cannot restore: directory %s: %s", r->m.cwd, mos_strerror(rc));
    return rc;
}

/* munmap what of [start, end) is outside the spans. */
static int unmap_outside_ahead(struct mos_restore *r, uint64_t start, uint64_t end)
{
    int rc = 0;

    for (size_t i = ahead_at(r, start); start < end && rc == 0; i++) {
        uint64_t stop = i < r->nahead && r->ahead[i].start < end ? r->ahead[i].start : end;
        if (stop > start) {
            const long a[6] = {(long)start, (long)(stop - start)};
            rc = qcall(r, "unmap husk", SYS_munmap, a, 0, NULL, 0, 0);
        }
        start = i < r->nahead ? r->ahead[i].end : end;
    }
    return rc;
}

/* A VMA that pages sent ahead may be part of: plain private memory. */
static int ahead_kind(const struct mos_rec_vma *v)
{
    return v->kind == MOS_VMA_ANON && !(v->flags & MOS_VMA_F_GROWSDOWN);
}

/* Before the VMAs are mapped: spans outside the image's plain private memory go. */
static int ahead_trim(struct mos_restore *r)
{
    const struct mos_img_meta *m = &r->m;
    struct span *keep = calloc(r->nahead + m->nvmas + 1, sizeof(*keep));
    size_t n = 0;
    int rc = 0;

    if (!keep)
        return -ENOMEM;
    for (size_t i = 0; i < r->nahead; i++)
        for (uint32_t k = 0; k < m->nvmas; k++) {
            const struct mos_rec_vma *v = &m->vmas[k].v;
            uint64_t s = v->start > r->ahead[i].start ? v->start : r->ahead[i].start;
            uint64_t e = v->end < r->ahead[i].end ? v->end : r->ahead[i].end;
            if (s < e && ahead_kind(v))
                keep[n++] = (struct span){s, e}; /* in order: both lists are sorted */
        }
    struct span *old = r->ahead;
    size_t nold = r->nahead;
    r->ahead = keep;
    r->nahead = n;
    r->ahead_cap = r->nahead + m->nvmas + 1;
    for (size_t i = 0; i < nold && rc == 0; i++)
        rc = unmap_outside_ahead(r, old[i].start, old[i].end);
    free(old);
    return rc;
}

struct husk_map {
    struct mos_vma_list list;
};

static int husk_layout_ok(const struct mos_img_meta *m, const struct mos_vma_list *h,
                          int64_t *delta, struct span *block)
{
    int found = 0;

    *delta = 0;
    block->start = UINT64_MAX;
    block->end = 0;
    for (size_t i = 0; i < h->count; i++) {
        const struct mos_vma *hv = &h->vmas[i];
        if (strcmp(hv->path, "[vdso]") && strcmp(hv->path, "[vvar]") &&
            strcmp(hv->path, "[vvar_vclock]"))
            continue;
        const struct mos_img_vma *iv = NULL;
        for (uint32_t k = 0; k < m->nvmas; k++)
            if (m->vmas[k].v.kind == MOS_VMA_VDSO && !strcmp(m->vmas[k].path, hv->path))
                iv = &m->vmas[k];
        if (!iv || iv->v.end - iv->v.start != hv->end - hv->start)
            goto bad;
        int64_t d = (int64_t)(iv->v.start - hv->start);
        if (found && d != *delta)
            goto bad;
        *delta = d;
        found++;
        if (hv->start < block->start)
            block->start = hv->start;
        if (hv->end > block->end)
            block->end = hv->end;
    }
    for (uint32_t k = 0; k < m->nvmas; k++)
        found -= m->vmas[k].v.kind == MOS_VMA_VDSO;
    if (found != 0)
        goto bad;
    return 0;
bad:
    mos_err("migrate", "cannot restore: the vDSO/vvar layout here differs from the image's "
            "(another kernel?)");
    return MOS_E_UNSUPPORTED;
}

static int specials_move(struct mos_restore *r, const struct mos_vma_list *h, int64_t delta)
{
    for (size_t i = 0; i < h->count; i++) {
        const struct mos_vma *hv = &h->vmas[i];
        if (strcmp(hv->path, "[vdso]") && strcmp(hv->path, "[vvar]") &&
            strcmp(hv->path, "[vvar_vclock]"))
            continue;
        long len = (long)(hv->end - hv->start), to = (long)((int64_t)hv->start + delta);
        const long a[6] = {(long)hv->start, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to};
        int rc = qcall(r, "mremap vDSO/vvar", SYS_mremap, a, (uint64_t)to, NULL, 0, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Trampoline in a hole, husk unmapped, vDSO block where the image had it. */
static int space_clear(struct mos_restore *r)
{
    struct mos_img_meta *m = &r->m;
    struct mos_vma_list h;
    struct span *spans, block;
    int64_t delta;
    long addr = 0;
    int rc = mos_vma_list_read(r->pid, &h);

    if (rc != 0)
        return rc;
    spans = calloc(m->nvmas + h.count + 1, sizeof(*spans));
    if (!spans) {
        rc = -ENOMEM;
        goto out;
    }
    rc = husk_layout_ok(m, &h, &delta, &block);
    if (rc != 0)
        goto out;
    size_t n = 0;
    for (uint32_t i = 0; i < m->nvmas; i++)
        spans[n++] = (struct span){m->vmas[i].v.start, m->vmas[i].v.end};
    for (size_t i = 0; i < h.count; i++)
        if (h.vmas[i].end <= MOS_IMG_USER_TOP)
            spans[n++] = (struct span){h.vmas[i].start, h.vmas[i].end};
    r->tramp = hole_find(spans, n, TRAMP_PAGES * PAGE);
    if (r->tramp == 0) {
        rc = -ENOMEM;
        goto out;
    }
    /* The first call runs from the husk's own vDSO; then from the trampoline. */
    rc = mos_inject_pick_exec_addr(r->t);
    if (rc == 0)
        rc = rcall(r, "map trampoline", SYS_mmap, (long)r->tramp, (long)(TRAMP_PAGES * PAGE),
                   PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0, &addr);
    if (rc == 0 && (uint64_t)addr != r->tramp)
        rc = -EEXIST;
    static const uint8_t code[8] = {0x0f, 0x05, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc};
    if (rc == 0)
        rc = mos_inject_write(r->t, r->tramp, code, sizeof(code));
    size_t batch_len;
    const uint8_t *batch = mos_inject_batch_code(&batch_len);
    if (rc == 0)
        rc = mos_inject_write(r->t, r->tramp + BATCH_CODE_OFF, batch, batch_len);
    if (rc == 0)
        queue_start(r);
    if (rc == 0)
        rc = mos_inject_set_exec_addr(r->t, r->tramp);
    for (size_t i = 0; i < h.count && rc == 0; i++) {
        const struct mos_vma *hv = &h.vmas[i];
        if (hv->path[0] == '[' && strcmp(hv->path, "[stack]") && strcmp(hv->path, "[heap]"))
            continue; /* vdso, vvar*, vsyscall */
        rc = unmap_outside_ahead(r, hv->start, hv->end); /* pages sent ahead stay */
    }
    if (rc == 0 && delta != 0) {
        /* If the image's block overlaps ours, go through a free spot first. */
        uint64_t want_start = (uint64_t)((int64_t)block.start + delta);
        uint64_t blen = block.end - block.start;
        if (want_start < block.end && block.start < want_start + blen) {
            spans[n++] = (struct span){r->tramp, r->tramp + TRAMP_PAGES * PAGE};
            uint64_t tmp = hole_find(spans, n, blen);
            int64_t d1 = (int64_t)(tmp - block.start);
            rc = tmp ? specials_move(r, &h, d1) : -ENOMEM;
            for (size_t i = 0; i < h.count; i++) {
                h.vmas[i].start = (uint64_t)((int64_t)h.vmas[i].start + d1);
                h.vmas[i].end = (uint64_t)((int64_t)h.vmas[i].end + d1);
            }
            delta -= d1;
        }
        if (rc == 0)
            rc = specials_move(r, &h, delta);
    }
out:
    free(spans);
    mos_vma_list_free(&h);
    return rc;
}

static uint32_t map_prot(const struct mos_rec_vma *v)
{
    if (v->kind == MOS_VMA_FILE_SHARED || v->kind == MOS_VMA_MEMFD)
        return v->prot; /* nothing to fill */
    return v->prot | PROT_READ | PROT_WRITE; /* filled through process_vm_writev */
}

/* madvise() state the VMA had: huge pages wanted or not, left out of core dumps or forks. */
static int vma_advise(struct mos_restore *r, const struct mos_rec_vma *v)
{
    static const struct {
        uint32_t flag;
        long advice;
    } advice[] = {{MOS_VMA_F_HUGEPAGE, MADV_HUGEPAGE},     {MOS_VMA_F_NOHUGEPAGE, MADV_NOHUGEPAGE},
                  {MOS_VMA_F_DONTDUMP, MADV_DONTDUMP},     {MOS_VMA_F_DONTFORK, MADV_DONTFORK},
                  {MOS_VMA_F_WIPEONFORK, MADV_WIPEONFORK}};
    int rc = 0;

    for (size_t k = 0; k < sizeof(advice) / sizeof(advice[0]) && rc == 0; k++)
        if (v->flags & advice[k].flag) {
            const long a[6] = {(long)v->start, (long)(v->end - v->start), advice[k].advice};
            rc = qcall(r, "madvise", SYS_madvise, a, 0, NULL, 0, 0);
        }
    return rc;
}

/* mmap flags of a VMA with no file behind it: 0 for the others */
static long anon_map_flags(const struct mos_rec_vma *v)
{
    long flags = MAP_FIXED | MAP_ANONYMOUS;

    switch (v->kind) {
    case MOS_VMA_ANON_SHARED: /* a new shared object: nothing else maps it (stay.c) */
        flags |= MAP_SHARED;
        break;
    case MOS_VMA_ANON:
    case MOS_VMA_FILE_COPY:
        flags |= MAP_PRIVATE;
        if (v->flags & MOS_VMA_F_GROWSDOWN)
            flags |= MAP_GROWSDOWN;
        break;
    default:
        return 0;
    }
    return v->flags & MOS_VMA_F_NORESERVE ? flags | MAP_NORESERVE : flags;
}

/* How many VMAs from i on one mmap can make: adjacent private anonymous ones mapped alike, as
 * a thread's guard page and stack are (the guard is mapped read-write like the stack and
 * mprotected later) and glibc's thread stacks mostly lie side by side. An injected call less
 * for each VMA, two or more for each thread. */
static uint32_t anon_run(const struct mos_img_meta *m, uint32_t i)
{
    const struct mos_rec_vma *v = &m->vmas[i].v;
    long flags = anon_map_flags(v);
    uint32_t j = i + 1;

    if (!(flags & MAP_PRIVATE) || (flags & MAP_GROWSDOWN))
        return 1;
    while (j < m->nvmas && m->vmas[j].v.start == m->vmas[j - 1].v.end &&
           anon_map_flags(&m->vmas[j].v) == flags &&
           map_prot(&m->vmas[j].v) == map_prot(v) &&
           ahead_kind(&m->vmas[j].v) == ahead_kind(v))
        j++;
    return j - i;
}

/* [start, end) of the VMA v (or of a run of alike VMAs starting with it), around the pages
 * sent ahead, which are in place already. */
static int range_map(struct mos_restore *r, const struct mos_rec_vma *v, uint64_t end,
                     long flags, long map_fd)
{
    int rc = 0;

    for (uint64_t at = v->start; at < end && rc == 0;) {
        size_t k = ahead_kind(v) ? ahead_at(r, at) : r->nahead;
        uint64_t stop = k < r->nahead && r->ahead[k].start < end ? r->ahead[k].start : end;
        if (stop > at) {
            const long a[6] = {(long)at, (long)(stop - at), map_prot(v), flags, map_fd,
                               (long)(v->pgoff + (at - v->start))};
            rc = qcall(r, "mmap a VMA", SYS_mmap, a, at, NULL, 0, 0);
        }
        at = k < r->nahead && r->ahead[k].start < end ? r->ahead[k].end : end;
    }
    return rc;
}

/* The file of a file-backed VMA, opened in the husk (kept open for the next VMA of the same
 * file, fd_path). A memfd's object is the restorer's (mos_memfds_make): the husk opens it
 * through /proc, read-only if it is sealed against writes (a writable shared map would keep
 * the seal from being set again). 0 or a status. */
static int vma_file_open(struct mos_restore *r, const struct mos_img_vma *v, long *fd,
                         char fd_path[MOS_IMG_MAX_PATH + 1])
{
    const char *path = v->path;
    char proc[64];
    int rc = 0, oflags = O_RDONLY;

    if (v->v.kind == MOS_VMA_MEMFD) {
        const struct mos_img_memfd *o = &r->m.memfds[mos_img_memfd_index(&r->m, v->v.ino)];
        snprintf(proc, sizeof(proc), "/proc/%d/fd/%d", (int)getpid(), o->fd);
        path = proc;
        oflags = o->o.seals & F_SEAL_WRITE ? O_RDONLY : O_RDWR;
    }
    if (*fd >= 0 && strcmp(fd_path, path) == 0)
        return 0;
    if (*fd >= 0)
        rcall(r, "close", SYS_close, *fd, 0, 0, 0, 0, 0, NULL);
    *fd = -1;
    uint64_t at = scratch_put(r, path, strlen(path) + 1, &rc);
    if (rc == 0)
        rc = rcall(r, v->path, SYS_openat, AT_FDCWD, (long)at, oflags | O_CLOEXEC, 0, 0, 0, fd);
    if (rc == 0)
        snprintf(fd_path, MOS_IMG_MAX_PATH + 1, "%s", path);
    return rc;
}

static int vmas_map(struct mos_restore *r)
{
    const struct mos_img_meta *m = &r->m;
    long fd = -1;
    char fd_path[MOS_IMG_MAX_PATH + 1] = ""; /* what fd is */
    int rc = 0;

    for (uint32_t i = 0; i < m->nvmas && rc == 0;) {
        const struct mos_img_vma *v = &m->vmas[i];
        long flags = anon_map_flags(&v->v), map_fd = -1;
        uint32_t n = 1;
        if (v->v.kind == MOS_VMA_VDSO) {
            i++;
            continue;
        }
        if (flags)
            n = anon_run(m, i);
        else {
            int shared = v->v.kind == MOS_VMA_FILE_SHARED || v->v.kind == MOS_VMA_MEMFD;
            flags = MAP_FIXED | (shared ? MAP_SHARED : MAP_PRIVATE);
            if ((rc = vma_file_open(r, v, &fd, fd_path)) != 0)
                return rc;
            map_fd = fd;
        }
        rc = range_map(r, &v->v, m->vmas[i + n - 1].v.end, flags, map_fd);
        for (uint32_t k = i; k < i + n && rc == 0; k++)
            rc = vma_advise(r, &m->vmas[k].v);
        i += n;
    }
    if (fd >= 0)
        rcall(r, "close", SYS_close, fd, 0, 0, 0, 0, 0, NULL);
    /* the pages go into these maps next, from outside */
    return rc == 0 ? queue_flush(r) : rc;
}

/* Pages arrive in one thread (read, checksum, validate) and are written into the husk in
 * this one, so the transfer overlaps the fill (first touches of fresh memory dominate the
 * restore on these machines). Record buffers travel from the reader to the filler and back. */
#define FILL_SLOTS 6

struct fill_slot {
    uint8_t *buf; /* owned record buffer to recycle, or NULL (mapped image) */
    size_t cap;
    const uint8_t *data; /* the pages */
    uint64_t addr, npages;
};

struct fill_pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fill_slot ring[FILL_SLOTS];
    unsigned head, tail; /* consume at head, produce at tail */
    struct fill_slot spare[FILL_SLOTS + 4]; /* ring + the reader's + two in flight */
    int nspare;
    int done, stop, rc, fill_rc;
    struct mos_restore *r;
    uint64_t helper_write_ns, helper_wait_ns;
    uint64_t pages;
    struct mos_img_reader *rd;
    const struct mos_img_meta *m;
    /* bulk: slots taken but not written yet (the reader waits for 0 before a frame's memory
     * goes back to the transport); the BULK record's totals and what arrived so far */
    unsigned inflight;
    int bulk_seen;
    uint32_t bulk_vi;
    struct mos_rec_bulk bulk;
    uint64_t bulk_pages;
    uint64_t kept_pages; /* placed from the stage (KEEP), not counted in pages */
    uint64_t dropped_pages; /* in place in the husk, not standing: zeroed (DROP) */
};

static int fill_bulk(struct fill_pipe *fp, const uint8_t *p, size_t len);
static int fill_write(struct fill_pipe *fp, const struct fill_slot *s);
static int bulk_queue(struct fill_pipe *fp, uint64_t addr, uint64_t npages, const uint8_t *data);

/* Zeros over [addr, addr + npages) of the husk. Written, not dropped with an injected madvise:
 * this is the reader thread, and only the thread that made the husk may drive it. */
static int zeros_write(struct fill_pipe *fp, uint64_t addr, uint64_t npages)
{
    static const uint8_t zero[16 * PAGE];

    for (uint64_t off = 0; off < npages;) {
        uint64_t n = npages - off < 16 ? npages - off : 16;
        struct fill_slot z = {NULL, 0, zero, addr + off * PAGE, n};
        int rc = fill_write(fp, &z);
        if (rc != 0)
            return rc;
        off += n;
    }
    return 0;
}

/* A KEEP or DROP record's run table, its length checked: 0 and *count, or -1. */
static int runs_of(const uint8_t *p, size_t len, uint64_t *count)
{
    struct mos_rec_keep k;

    if (len < sizeof(k))
        return -1;
    memcpy(&k, p, sizeof(k));
    if (k.count > (len - sizeof(k)) / sizeof(struct mos_rec_pages) ||
        len != sizeof(k) + k.count * sizeof(struct mos_rec_pages))
        return -1;
    *count = k.count;
    return 0;
}

static struct mos_rec_pages run_at(const uint8_t *p, uint64_t i)
{
    struct mos_rec_pages run;

    memcpy(&run, p + sizeof(struct mos_rec_keep) + i * sizeof(run), sizeof(run));
    return run;
}

/* A DROP record: pages sent ahead that do not stand. Those in place in the husk are zeroed
 * (before any PAGES record brings them again); staged ones are simply not used. */
static int fill_drop(struct fill_pipe *fp, const uint8_t *p, size_t len)
{
    uint64_t count;
    int rc = 0;

    if (runs_of(p, len, &count) != 0)
        goto bad;
    for (uint64_t i = 0; i < count && rc == 0; i++) {
        struct mos_rec_pages run = run_at(p, i);
        if (run.addr % PAGE || run.addr >= MOS_IMG_USER_TOP || run.npages == 0 ||
            run.npages > (MOS_IMG_USER_TOP - run.addr) / PAGE)
            goto bad;
        for (uint64_t off = 0; fp->r->nahead && off < run.npages && rc == 0;) {
            uint64_t at = run.addr + off * PAGE, n = ahead_covered(fp->r, at, run.npages - off);
            if (n) {
                rc = zeros_write(fp, at, n);
                fp->dropped_pages += n;
                off += n;
            } else {
                size_t j = ahead_at(fp->r, at);
                off = j < fp->r->nahead && fp->r->ahead[j].start < run.addr + run.npages * PAGE
                          ? (fp->r->ahead[j].start - run.addr) / PAGE
                          : run.npages;
            }
        }
    }
    return rc;
bad:
    mos_err("migrate", "corrupt stream: DROP record with a bad run or length");
    return MOS_E_IMAGE;
}

/* A KEEP record: its runs, checked against the VMAs and found whole among the pages sent
 * ahead, are queued for the fillers straight from the stage (which outlives the fill). */
static int fill_keep(struct fill_pipe *fp, const uint8_t *p, size_t len)
{
    uint64_t count;
    uint32_t vi = 0;
    int rc = 0;

    if (runs_of(p, len, &count) != 0)
        goto bad;
    for (uint64_t i = 0; i < count && rc == 0; i++) {
        struct mos_rec_pages run = run_at(p, i);
        if (mos_img_run_check(fp->m, run.addr, run.npages, &vi) != 0)
            goto bad;
        for (uint64_t off = 0; off < run.npages && rc == 0;) {
            const uint8_t *data;
            uint64_t at = run.addr + off * PAGE;
            uint64_t n = fp->r->t ? ahead_covered(fp->r, at, run.npages - off) : 0;
            if (n) { /* in place already */
                off += n;
                fp->kept_pages += n;
                continue;
            }
            n = page_stage_find(fp->r->stage, at, run.npages - off, &data);
            if (n == 0) {
                mos_err("migrate", "corrupt stream: KEEP names page %#llx, never sent ahead",
                        (unsigned long long)(run.addr + off * PAGE));
                return MOS_E_IMAGE;
            }
            rc = bulk_queue(fp, run.addr + off * PAGE, n, data);
            off += n;
            fp->kept_pages += n;
        }
    }
    return rc;
bad:
    mos_err("migrate", "corrupt stream: KEEP record with a run outside the VMAs or a bad length");
    return MOS_E_IMAGE;
}

/* One record into *slot; 1 at END, 0 for a PAGES run, 2 after a bulk transfer (placed
 * already), or a status. */
static int fill_read_one(struct fill_pipe *fp, uint32_t *vi, struct fill_slot *slot)
{
    uint32_t magic;
    const uint8_t *p;
    size_t len;
    struct mos_rec_pages ph;
    int rc = mos_img_get(fp->rd, &magic, &p, &len);

    if (rc != 0)
        return rc;
    if (fp->bulk_seen && magic != MOS_REC_END) {
        mos_err("migrate", "corrupt image: record %s after the bulk pages",
                mos_img_rec_name(magic));
        return MOS_E_IMAGE;
    }
    if (magic == MOS_REC_BULK) {
        rc = fill_bulk(fp, p, len);
        return rc != 0 ? rc : 2;
    }
    if (magic == MOS_REC_KEEP) {
        if (fp->pages > 0) {
            mos_err("migrate", "corrupt stream: KEEP record after the pages");
            return MOS_E_IMAGE;
        }
        rc = fill_keep(fp, p, len);
        return rc != 0 ? rc : 2;
    }
    if (magic == MOS_REC_DROP) {
        if (fp->pages > 0) {
            mos_err("migrate", "corrupt stream: DROP record after the pages");
            return MOS_E_IMAGE;
        }
        rc = fill_drop(fp, p, len);
        return rc != 0 ? rc : 2;
    }
    if (magic == MOS_REC_END) {
        struct mos_rec_end e;
        memcpy(&e, p, sizeof(e) <= len ? sizeof(e) : len);
        if (len != sizeof(e) || e.pages != fp->pages || e.records != fp->rd->records) {
            mos_err("migrate", "corrupt image: END totals do not match the records read");
            return MOS_E_IMAGE;
        }
        return 1;
    }
    if (magic != MOS_REC_PAGES || len < sizeof(ph)) {
        mos_err("migrate", "corrupt image: record %s among the pages", mos_img_rec_name(magic));
        return MOS_E_IMAGE;
    }
    memcpy(&ph, p, sizeof(ph));
    if (len != sizeof(ph) + ph.npages * PAGE ||
        mos_img_pages_check(fp->m, ph.addr, ph.npages, vi) != 0) {
        mos_err("migrate", "corrupt image: page run at %#llx (%llu pages) fits no VMA",
                (unsigned long long)ph.addr, (unsigned long long)ph.npages);
        return MOS_E_IMAGE;
    }
    fp->pages += ph.npages;
    /* take the reader's buffer (it gets a spare one back), or point into the mapped image */
    int owned = p == fp->rd->buf;
    *slot = (struct fill_slot){owned ? fp->rd->buf : NULL, owned ? fp->rd->cap : 0,
                               p + sizeof(ph), ph.addr, ph.npages};
    return 0;
}

static void *fill_reader(void *arg)
{
    struct fill_pipe *fp = arg;
    uint32_t vi = 0;
    int rc = 0;

    for (;;) {
        struct fill_slot slot;
        pthread_mutex_lock(&fp->mu);
        while (fp->tail - fp->head == FILL_SLOTS && !fp->stop)
            pthread_cond_wait(&fp->cv, &fp->mu);
        int stop = fp->stop;
        pthread_mutex_unlock(&fp->mu);
        if (stop)
            break;
        rc = fill_read_one(fp, &vi, &slot);
        if (rc == 2)
            continue;
        if (rc != 0)
            break;
        pthread_mutex_lock(&fp->mu);
        fp->ring[fp->tail % FILL_SLOTS] = slot;
        fp->tail++;
        if (!slot.buf) {
            /* mapped: nothing changes hands */
        } else if (fp->nspare > 0) {
            fp->nspare--;
            fp->rd->buf = fp->spare[fp->nspare].buf;
            fp->rd->cap = fp->spare[fp->nspare].cap;
        } else {
            fp->rd->buf = NULL;
            fp->rd->cap = 0;
        }
        pthread_cond_broadcast(&fp->cv);
        pthread_mutex_unlock(&fp->mu);
    }
    pthread_mutex_lock(&fp->mu);
    fp->done = 1;
    fp->rc = rc == 1 ? 0 : rc;
    pthread_cond_broadcast(&fp->cv);
    pthread_mutex_unlock(&fp->mu);
    return NULL;
}

static int fill_write(struct fill_pipe *fp, const struct fill_slot *s)
{
    const uint8_t *data = s->data;
    struct iovec local = {(void *)data, s->npages * PAGE};
    struct iovec remote = {(void *)s->addr, s->npages * PAGE};

    if (process_vm_writev(fp->r->pid, &local, 1, &remote, 1, 0) == (ssize_t)local.iov_len)
        return 0;
    /* the /proc/PID/mem fallback shares one fd in the handle: one writer at a time */
    pthread_mutex_lock(&fp->mu);
    int rc = mos_inject_write(fp->r->t, s->addr, data, local.iov_len);
    pthread_mutex_unlock(&fp->mu);
    if (rc != 0)
        mos_err("migrate", "restore: writing pages at %#llx: %s", (unsigned long long)s->addr,
                mos_strerror(rc));
    return rc;
}

/* A consumer: take records off the ring and write them into the husk until the reader is
 * done or someone failed. Two run at once: most of a fill is first touches of fresh memory,
 * which process_vm_writev takes in the kernel on the caller's CPU, so two writers to
 * different ranges fault in parallel. */
static int fill_consume(struct fill_pipe *fp, uint64_t *write_ns, uint64_t *wait_ns)
{
    int rc = 0;

    for (;;) {
        uint64_t w0 = mos_clock_now_ns();
        pthread_mutex_lock(&fp->mu);
        while (fp->head == fp->tail && !fp->done && !fp->stop)
            pthread_cond_wait(&fp->cv, &fp->mu);
        uint64_t w1 = mos_clock_now_ns();
        *wait_ns += w1 - w0;
        if (fp->stop || fp->head == fp->tail) {
            pthread_mutex_unlock(&fp->mu);
            return 0;
        }
        struct fill_slot s = fp->ring[fp->head % FILL_SLOTS];
        fp->head++;
        fp->inflight++;
        pthread_cond_broadcast(&fp->cv);
        pthread_mutex_unlock(&fp->mu);
        rc = fill_write(fp, &s);
        *write_ns += mos_clock_now_ns() - w1;
        pthread_mutex_lock(&fp->mu);
        fp->inflight--;
        if (s.buf)
            fp->spare[fp->nspare++] = s;
        if (rc != 0) {
            fp->stop = 1;
            fp->fill_rc = rc;
        }
        pthread_cond_broadcast(&fp->cv);
        pthread_mutex_unlock(&fp->mu);
        if (rc != 0)
            return rc;
    }
}

/* ---- pages in bulk: the io's page channel calls bulk_place for every frame it received;
 * the frame's runs are checked against the VMAs, cut into pieces for the two fillers, and
 * the call returns once they are written (the frame's memory belongs to the transport). */

/* Queue one piece (pointing into the frame) for the fillers. 0, or the fillers' error. */
static int bulk_queue(struct fill_pipe *fp, uint64_t addr, uint64_t npages, const uint8_t *data)
{
    pthread_mutex_lock(&fp->mu);
    while (fp->tail - fp->head == FILL_SLOTS && !fp->stop)
        pthread_cond_wait(&fp->cv, &fp->mu);
    int rc = fp->stop ? (fp->fill_rc ? fp->fill_rc : -ECANCELED) : 0;
    if (rc == 0) {
        fp->ring[fp->tail % FILL_SLOTS] = (struct fill_slot){NULL, 0, data, addr, npages};
        fp->tail++;
        pthread_cond_broadcast(&fp->cv);
    }
    pthread_mutex_unlock(&fp->mu);
    return rc;
}

/* Wait until nothing queued is left unwritten; 0 or the fillers' error. */
static int bulk_drain(struct fill_pipe *fp)
{
    pthread_mutex_lock(&fp->mu);
    while ((fp->head != fp->tail && !fp->stop) || fp->inflight > 0)
        pthread_cond_wait(&fp->cv, &fp->mu);
    int rc = fp->stop ? (fp->fill_rc ? fp->fill_rc : -ECANCELED) : 0;
    pthread_mutex_unlock(&fp->mu);
    return rc;
}

static int bulk_place(void *arg, const struct mos_page_run *runs, size_t n, const uint8_t *data)
{
    struct fill_pipe *fp = arg;
    uint64_t total = 0;
    int rc = 0;

    /* every run is checked before any is placed */
    for (size_t i = 0; i < n; i++) {
        if (mos_img_run_check(fp->m, runs[i].addr, runs[i].npages, &fp->bulk_vi) != 0) {
            mos_err("migrate", "corrupt image: bulk page run at %#llx (%llu pages) fits no VMA",
                    (unsigned long long)runs[i].addr, (unsigned long long)runs[i].npages);
            return MOS_E_IMAGE;
        }
        total += runs[i].npages;
    }
    if (total > fp->bulk.pages - fp->bulk_pages) {
        mos_err("migrate", "corrupt image: more bulk pages than the BULK record's %llu",
                (unsigned long long)fp->bulk.pages);
        return MOS_E_IMAGE;
    }
    /* halves, so that both fillers take first touches of fresh memory at once */
    uint64_t piece = total / 2 > 16 ? (total + 1) / 2 : 16;
    for (size_t i = 0; i < n && rc == 0; i++)
        for (uint64_t off = 0; off < runs[i].npages && rc == 0; off += piece) {
            uint64_t np = runs[i].npages - off < piece ? runs[i].npages - off : piece;
            rc = bulk_queue(fp, runs[i].addr + off * PAGE, np, data);
            data += np * PAGE;
        }
    int drc = bulk_drain(fp);
    rc = rc ? rc : drc;
    if (rc == 0) {
        fp->bulk_pages += total;
        fp->pages += total;
    }
    return rc;
}

/* The BULK record: receive its pages through the io's page channel, straight into the husk. */
static int fill_bulk(struct fill_pipe *fp, const uint8_t *p, size_t len)
{
    struct mos_img_io *io = fp->rd->io;
    uint64_t got = 0;

    fp->bulk_seen = 1;
    if (mos_img_bulk_check(io, p, len, &fp->bulk) != 0)
        return MOS_E_IMAGE;
    int rc = io->ops->recv_pages(io, bulk_place, fp, &got);
    if (rc != 0)
        return rc;
    if (got != fp->bulk.pages || fp->bulk_pages != fp->bulk.pages) {
        mos_err("migrate", "image ends early: %llu of %llu bulk pages arrived",
                (unsigned long long)fp->bulk_pages, (unsigned long long)fp->bulk.pages);
        return MOS_E_TRUNCATED;
    }
    return 0;
}

static void *fill_helper(void *arg)
{
    struct fill_pipe *fp = arg;
    fill_consume(fp, &fp->helper_write_ns, &fp->helper_wait_ns);
    return NULL;
}

static int pages_fill(struct mos_restore *r, struct mos_img_reader *rd)
{
    struct fill_pipe fp = {.rd = rd, .m = &r->m, .r = r};
    pthread_t reader, helper;
    uint64_t write_ns = 0, wait_ns = 0;
    int rc, have_helper;

    pthread_mutex_init(&fp.mu, NULL);
    pthread_cond_init(&fp.cv, NULL);
    if (pthread_create(&reader, NULL, fill_reader, &fp) != 0)
        return -EAGAIN;
    have_helper = pthread_create(&helper, NULL, fill_helper, &fp) == 0;
    fill_consume(&fp, &write_ns, &wait_ns);
    if (have_helper)
        pthread_join(helper, NULL);
    /* a consumer failure stops the reader at its next record */
    pthread_mutex_lock(&fp.mu);
    fp.stop = 1;
    pthread_cond_broadcast(&fp.cv);
    pthread_mutex_unlock(&fp.mu);
    pthread_join(reader, NULL);
    rc = fp.fill_rc ? fp.fill_rc : fp.rc;
    mos_dbg("migrate", "restore: filling pages took %.1f + %.1f ms, waiting %.1f + %.1f ms",
            write_ns / 1e6, fp.helper_write_ns / 1e6, wait_ns / 1e6, fp.helper_wait_ns / 1e6);
    for (unsigned i = fp.head; i < fp.tail; i++)
        free(fp.ring[i % FILL_SLOTS].buf);
    for (int i = 0; i < fp.nspare; i++)
        free(fp.spare[i].buf);
    pthread_mutex_destroy(&fp.mu);
    pthread_cond_destroy(&fp.cv);
    r->stats.pages = fp.pages;
    r->stats.bulk_pages = fp.bulk_pages;
    r->stats.kept_pages = fp.kept_pages;
    if (r->stats.staged_pages)
        mos_dbg("migrate", "restore: %llu pages came ahead, %llu of them in the husk's own "
                "memory; %llu stood, %llu were zeroed", (unsigned long long)r->stats.staged_pages,
                (unsigned long long)(r->stats.staged_pages - page_stage_pages(r->stage)),
                (unsigned long long)fp.kept_pages, (unsigned long long)fp.dropped_pages);
    if (fp.bulk_seen)
        mos_dbg("migrate", "restore: %llu of %llu pages arrived in bulk",
                (unsigned long long)fp.bulk_pages, (unsigned long long)fp.pages);
    return rc;
}

static int exe_is(pid_t pid, const char *path)
{
    char link[64], now[PATH_MAX];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
    if ((n = readlink(link, now, sizeof(now) - 1)) < 0)
        return 0;
    now[n] = '\0';
    return strcmp(now, path) == 0;
}

static int mm_set(struct mos_restore *r)
{
    const struct mos_rec_mm *mm = &r->m.mm;
    struct prctl_mm_map map = {
        .start_code = mm->start_code, .end_code = mm->end_code,
        .start_data = mm->start_data, .end_data = mm->end_data,
        .start_brk = mm->start_brk, .brk = mm->brk, .start_stack = mm->start_stack,
        .arg_start = mm->arg_start, .arg_end = mm->arg_end,
        .env_start = mm->env_start, .env_end = mm->env_end,
        .auxv_size = mm->auxv_len, .exe_fd = (uint32_t)-1};
    long exe_fd = -1;
    uint8_t buf[sizeof(map) + MOS_IMG_MAX_AUXV];
    int rc;

    uint64_t at = scratch_put(r, r->m.exe, strlen(r->m.exe) + 1, &rc);
    /* a shell that is the job's own program already names it */
    if (rc == 0 && !exe_is(r->pid, r->m.exe) &&
        mos_inject_call(r->t, SYS_openat, AT_FDCWD, (long)at, O_RDONLY | O_CLOEXEC, 0, 0, 0,
                        &exe_fd) == 0)
        map.exe_fd = (uint32_t)exe_fd;
    for (int attempt = 0; attempt < 2; attempt++) {
        map.auxv = (__u64 *)(uintptr_t)(r->tramp + SCRATCH_OFF + sizeof(map));
        memcpy(buf, &map, sizeof(map));
        memcpy(buf + sizeof(map), r->m.auxv, mm->auxv_len);
        at = scratch_put(r, buf, sizeof(map) + mm->auxv_len, &rc);
        if (rc != 0)
            break;
        rc = mos_inject_call(r->t, SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, (long)at, sizeof(map), 0,
                             0, NULL);
        if (rc != -EPERM || map.exe_fd == (uint32_t)-1)
            break;
        /* Changing the exe link needs CAP_CHECKPOINT_RESTORE; the rest does not. */
        mos_warn("migrate", "restore: no right to set the exe link; it names the husk");
        map.exe_fd = (uint32_t)-1;
    }
    if (exe_fd >= 0)
        mos_inject_call(r->t, SYS_close, exe_fd, 0, 0, 0, 0, 0, NULL);
    if (rc != 0)
        mos_err("migrate", "restore: prctl(PR_SET_MM_MAP): %s", mos_strerror(rc));
    return rc;
}

/* The image's disposition of sig, where it is not the default. */
static int sigaction_default(int sig, const struct mos_ksigaction *a)
{
    return sig == SIGKILL || sig == SIGSTOP || (!a->handler && !a->flags && !a->mask);
}

static int sigaction_set(struct mos_restore *r, int sig)
{
    const struct mos_ksigaction *a = &r->m.sigs.act[sig - 1];
    int rc = 0;

    if (sigaction_default(sig, a))
        return 0;
    uint64_t at = scratch_put(r, a, sizeof(*a), &rc);
    if (rc == 0)
        rc = rcall(r, "rt_sigaction", SYS_rt_sigaction, sig, (long)at, 0, 8, 0, 0, NULL);
    return rc;
}

static int sigs_set(struct mos_restore *r)
{
    const struct mos_rec_sigs *s = &r->m.sigs;
    int rc = 0;

    for (int sig = 1; sig <= 64 && rc == 0; sig++) {
        const struct mos_ksigaction *a = &s->act[sig - 1];
        const long args[6] = {sig, 0, 0, 8};
        if (sigaction_default(sig, a))
            continue;
        if (sig == SIGTRAP && r->queue)
            continue; /* last, once no batch is to come (finish) */
        rc = qcall(r, "rt_sigaction", SYS_rt_sigaction, args, 0, a, sizeof(*a), 1);
    }
    if (rc == 0 && !(s->altstack_flags & SS_DISABLE)) {
        stack_t ss = {.ss_sp = (void *)s->altstack_sp, .ss_size = s->altstack_size,
                      .ss_flags = (int)(s->altstack_flags & ~(uint32_t)SS_ONSTACK)};
        uint64_t at = scratch_put(r, &ss, sizeof(ss), &rc);
        if (rc == 0)
            rc = rcall(r, "sigaltstack", SYS_sigaltstack, (long)at, 0, 0, 0, 0, 0, NULL);
    }
    for (int w = 0; w < 3 && rc == 0; w++) {
        const uint64_t *it = s->itimer[w];
        if (!(it[0] | it[1] | it[2] | it[3]))
            continue;
        uint64_t at = scratch_put(r, it, 32, &rc);
        if (rc == 0)
            rc = rcall(r, "setitimer", SYS_setitimer, w, (long)at, 0, 0, 0, 0, NULL);
    }
    /* Pending signals, queued by the process to itself (allowed for any si_code). */
    for (uint32_t i = 0; i < s->npending && rc == 0; i++) {
        const struct mos_rec_pending *p = &r->m.pending[i];
        int signo;
        memcpy(&signo, p->siginfo, sizeof(signo));
        uint64_t at = scratch_put(r, p->siginfo, sizeof(p->siginfo), &rc);
        if (rc != 0)
            break;
        if (p->shared)
            rc = rcall(r, "rt_sigqueueinfo", SYS_rt_sigqueueinfo, r->pid, signo, (long)at, 0, 0,
                       0, NULL);
        else
            rc = rcall(r, "rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo, r->pid, r->pid, signo,
                       (long)at, 0, 0, NULL);
    }
    return rc;
}

/* Set inside the husk (an injected prlimit64 on itself): from outside, prlimit on another
 * user's process needs CAP_SYS_RESOURCE, which root lacks here. A process may lower its hard
 * limits and move its soft ones below them; raising a hard limit is refused, and then the soft
 * one is set as far as the current hard limit allows. */
static void rlimits_set(struct mos_restore *r)
{
    for (int i = 0; i < 16; i++) {
        struct rlimit want = {r->m.rlim.lim[i][0], r->m.rlim.lim[i][1]}, now;
        long res = 0;
        int rc;

        if (prlimit(r->pid, (__rlimit_resource_t)i, NULL, &now) == 0 &&
            now.rlim_cur == want.rlim_cur && now.rlim_max == want.rlim_max)
            continue;
        uint64_t at = scratch_put(r, &want, sizeof(want), &rc);
        if (rc == 0)
            rc = mos_inject_call(r->t, SYS_prlimit64, 0, i, (long)at, 0, 0, 0, &res);
        if (rc == 0 && res == -EPERM) {
            struct rlimit soft = {want.rlim_cur < now.rlim_max ? want.rlim_cur : now.rlim_max,
                                  now.rlim_max};
            at = scratch_put(r, &soft, sizeof(soft), &rc);
            if (rc == 0)
                mos_inject_call(r->t, SYS_prlimit64, 0, i, (long)at, 0, 0, 0, NULL);
            mos_warn("migrate", "restore: rlimit %d: its hard limit %llu is above this node's "
                     "%llu; kept %llu", i, (unsigned long long)want.rlim_max,
                     (unsigned long long)now.rlim_max, (unsigned long long)now.rlim_max);
        }
    }
}

static int task_set(struct mos_restore *r)
{
    const struct mos_rec_core *c = &r->m.core;
    const long umask_a[6] = {(long)c->umask}, name_a[6] = {PR_SET_NAME},
               pers_a[6] = {(long)c->personality},
               robust_a[6] = {(long)c->robust_list, (long)c->robust_len},
               rseq_a[6] = {(long)c->rseq_addr, (long)c->rseq_len, 0, (long)c->rseq_sig};
    int rc = qcall(r, "umask", SYS_umask, umask_a, QUEUE_ANY, NULL, 0, 0);

    if (rc == 0 && c->comm[0])
        rc = qcall(r, "PR_SET_NAME", SYS_prctl, name_a, 0, c->comm, sizeof(c->comm), 1);
    if (rc == 0 && c->personality)
        rc = qcall(r, "personality", SYS_personality, pers_a, QUEUE_ANY, NULL, 0, 0);
    if (rc == 0 && c->robust_list)
        rc = qcall(r, "set_robust_list", SYS_set_robust_list, robust_a, 0, NULL, 0, 0);
    if (rc == 0 && c->rseq_addr)
        rc = qcall(r, "rseq", SYS_rseq, rseq_a, 0, NULL, 0, 0);
    for (uint32_t i = 0; i < r->m.nfds && rc == 0; i++)
        if (r->m.fds[i].f.fdflags & FD_CLOEXEC) {
            const long a[6] = {r->m.fds[i].f.fd, F_SETFD, FD_CLOEXEC};
            rc = qcall(r, "fcntl FD_CLOEXEC", SYS_fcntl, a, 0, NULL, 0, 0);
        }
    return rc;
}

/* struct clone_args of clone3 (5.5+, with set_tid), spelled out: <linux/sched.h> and
 * <sched.h> do not mix. */
struct clone3_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};

/* Scheduling of the calling thread (leader or not), set from inside: a thread may always
 * lower itself; what it may not (real-time policies, a nice value below the husk's without
 * CAP_SYS_NICE) is left as it is, with a warning. */
static void sched_set(struct mos_restore *r, struct mos_inject *t, const struct mos_rec_core *c)
{
    struct sched_param sp = {.sched_priority = c->sched_prio};
    pid_t tid = mos_inject_pid(t);
    int rc;

    uint64_t now[MOS_IMG_AFFINITY_WORDS] = {0};
    long n = syscall(SYS_sched_getaffinity, tid, sizeof(now), now);
    int nice_now;

    /* read from outside first: most threads have what they inherited, and an injected call
     * costs four ptrace stops */
    if (!r->opts.cpus_here &&
        (n != (long)c->affinity_words * 8 || memcmp(now, c->affinity, (size_t)n) != 0)) {
        uint64_t at = scratch_put(r, c->affinity, c->affinity_words * 8, &rc);
        if (rc == 0 && (rc = mos_inject_call(t, SYS_sched_setaffinity, 0, c->affinity_words * 8,
                                             (long)at, 0, 0, 0, NULL)) != 0)
            mos_warn("migrate", "restore: tid %d keeps this node's CPU affinity: %s", (int)tid,
                     mos_strerror(rc));
    }
    errno = 0;
    nice_now = getpriority(PRIO_PROCESS, (id_t)tid);
    if ((errno != 0 || nice_now != c->nice) &&
        mos_inject_call(t, SYS_setpriority, PRIO_PROCESS, 0, c->nice, 0, 0, 0, NULL) != 0)
        mos_warn("migrate", "restore: tid %d: nice %d not allowed here", (int)tid, c->nice);
    if (c->sched_policy == SCHED_OTHER && c->sched_prio == 0)
        return;
    uint64_t at = scratch_put(r, &sp, sizeof(sp), &rc);
    if (rc == 0 && (rc = mos_inject_call(t, SYS_sched_setscheduler, 0, c->sched_policy,
                                         (long)at, 0, 0, 0, NULL)) != 0)
        mos_warn("migrate", "restore: tid %d: scheduling policy %u not allowed here: %s",
                 (int)tid, c->sched_policy, mos_strerror(rc));
}

/* The kernel's next pid in our pid namespace is the first free one after last. Needs
 * CAP_CHECKPOINT_RESTORE in the restorer (root), not in the process: the way to a thread's
 * own tid in a process that may not use set_tid (a guest or a shell runs as its user). */
static int ns_last_pid_set(pid_t last)
{
    char text[16];
    int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    int n = snprintf(text, sizeof(text), "%d", (int)last);
    int ok = fd >= 0 && write(fd, text, (size_t)n) == n;

    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

/* said once per restore, in words: what a fresh tid means for the program */
static void fresh_tids_say(struct mos_restore *r, pid_t want, const char *why)
{
    mos_warn("migrate", "restore: tid %d is %s here: threads get fresh tids (glibc's cached tids "
             "are set to them; PI and robust futex words of locks held now name the old ones)",
             (int)want, why);
    r->fresh_tids = 1;
}

static int thread_clone_once(struct mos_restore *r, struct clone3_args *a, pid_t set_tid,
                             long *res, struct mos_inject **out)
{
    int rc = 0;
    uint64_t at = scratch_put(r, &set_tid, sizeof(set_tid), &rc);

    a->set_tid = set_tid ? at : 0;
    a->set_tid_size = set_tid ? 1 : 0;
    at = r->tramp + SCRATCH_OFF + 64;
    if (rc == 0)
        rc = mos_inject_write(r->t, at, a, sizeof(*a));
    return rc == 0 ? mos_inject_clone_thread(r->t, at, sizeof(*a), res, out) : rc;
}

static int tid_in_use(pid_t tid)
{
    return kill(tid, 0) == 0 || errno == EPERM;
}

static int thread_clone_again(struct mos_restore *r, struct clone3_args *a, pid_t want,
                              long *res, struct mos_inject **out)
{
    uint32_t word = 0;
    int rc = a->child_tid ? mos_inject_read(r->t, a->child_tid, &word, sizeof(word)) : 0;

    if (rc == 0)
        rc = mos_inject_thread_exit(*out);
    if (rc == 0 && a->child_tid)
        rc = mos_inject_write(r->t, a->child_tid, &word, sizeof(word));
    if (rc == 0 && ns_last_pid_set(want - 1) != 0)
        rc = -EPERM;
    if (rc == 0)
        rc = thread_clone_once(r, a, 0, res, out);
    return rc;
}

static uint64_t thread_clone_flags(const struct mos_img_thread *it)
{
    return CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
           (it->t.core.clear_child_tid ? CLONE_CHILD_CLEARTID : 0);
}

/* A new thread of the husk, with the captured tid when it is free: by clone3's set_tid when
 * the process may ask for it, else by ns_last_pid from here (checked: another fork may come
 * first); with a fresh tid otherwise, and then for every later thread too. */
static int thread_clone(struct mos_restore *r, const struct mos_img_thread *it,
                        struct mos_inject **out)
{
    pid_t want = it->t.tid;
    struct clone3_args a = {.flags = thread_clone_flags(it),
                            .child_tid = it->t.core.clear_child_tid};
    long res = -EEXIST;
    int rc;

    for (;;) {
        int by_set_tid = !r->fresh_tids && !r->tid_by_next;
        if (!r->fresh_tids && r->tid_by_next && ns_last_pid_set(want - 1) != 0)
            fresh_tids_say(r, want, "not ours to choose");
        rc = thread_clone_once(r, &a, by_set_tid ? want : 0, &res, out);
        if (rc != 0 || !by_set_tid || (res != -EEXIST && res != -EPERM))
            break;
        if (res == -EPERM)
            r->tid_by_next = 1;
        else
            fresh_tids_say(r, want, "taken");
    }
    /* by ns_last_pid, a fork elsewhere may take the id between our write and the clone: the
     * thread made with the wrong one ends (its clear_child_tid word kept) and is made again,
     * once the id is free again (such a process is mostly short-lived: 100 ms at most) */
    for (int tries = 0; rc == 0 && res >= 0 && res != want && !r->fresh_tids && tries < 20;
         tries++) {
        if (tid_in_use(want))
            usleep(5000);
        else
            rc = thread_clone_again(r, &a, want, &res, out);
    }
    if (rc == 0 && res >= 0 && res != want && !r->fresh_tids)
        fresh_tids_say(r, want, "taken");
    if (rc == 0 && res < 0)
        rc = (int)res;
    if (rc != 0)
        mos_err("migrate", "restore: creating thread %d: %s", (int)want, mos_strerror(rc));
    return rc;
}

/* A new thread has the name of the thread that cloned it (most programs never name theirs):
 * read from outside, it saves an injected call per thread where it is the image's already. */
static int comm_is(pid_t pid, pid_t tid, const char comm[16])
{
    char path[64], now[32];
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    n = read(fd, now, sizeof(now) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    now[n] = '\0';
    now[strcspn(now, "\n")] = '\0';
    return strncmp(now, comm, 16) == 0; /* the image's name need not end in a NUL */
}

/* A thread's own signal queue, from the leader: only a thread whose tid is the process's may
 * queue a siginfo with a kernel si_code to a sibling (do_rt_tgsigqueueinfo). */
static int thread_pending_queue(struct mos_restore *r, struct mos_inject *t,
                                const struct mos_img_thread *it)
{
    int rc = 0;

    for (uint32_t i = 0; i < it->t.npending && rc == 0; i++) {
        uint64_t at = scratch_put(r, it->pending[i].siginfo, sizeof(it->pending[i].siginfo), &rc);
        if (rc == 0)
            rc = rcall(r, "rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo, r->pid,
                       mos_inject_pid(t), pending_signo(&it->pending[i]), (long)at, 0, 0, NULL);
    }
    return rc;
}

/* The thread's own state, by calls injected into it, and its own signal queue. */
static int thread_state_set(struct mos_restore *r, struct mos_inject *t,
                            const struct mos_img_thread *it)
{
    const struct mos_rec_core *c = &it->t.core;
    int rc = 0;

    if (!(it->t.altstack_flags & SS_DISABLE)) {
        stack_t ss = {.ss_sp = (void *)it->t.altstack_sp, .ss_size = it->t.altstack_size,
                      .ss_flags = (int)(it->t.altstack_flags & ~(uint32_t)SS_ONSTACK)};
        uint64_t at = scratch_put(r, &ss, sizeof(ss), &rc);
        if (rc == 0)
            rc = mos_inject_call(t, SYS_sigaltstack, (long)at, 0, 0, 0, 0, 0, NULL);
    }
    uint64_t at = 0;
    if (rc == 0 && c->comm[0] && !comm_is(r->pid, mos_inject_pid(t), c->comm))
        at = scratch_put(r, c->comm, sizeof(c->comm), &rc);
    if (rc == 0 && at)
        rc = mos_inject_call(t, SYS_prctl, PR_SET_NAME, (long)at, 0, 0, 0, 0, NULL);
    if (rc == 0 && c->robust_list)
        rc = mos_inject_call(t, SYS_set_robust_list, (long)c->robust_list, (long)c->robust_len,
                             0, 0, 0, 0, NULL);
    if (rc == 0 && c->rseq_addr)
        rc = mos_inject_call(t, SYS_rseq, (long)c->rseq_addr, (long)c->rseq_len, 0,
                             (long)c->rseq_sig, 0, 0, NULL);
    if (rc == 0)
        rc = thread_pending_queue(r, t, it);
    if (rc == 0)
        sched_set(r, t, c);
    if (rc != 0)
        mos_err("migrate", "restore: thread %d: %s", (int)mos_inject_pid(t), mos_strerror(rc));
    return rc;
}

/* ---- threads made in batches (mos_inject_batch_run): the leader clones a handful of threads
 * in one run and each new thread sets its own state by a list of calls it runs itself, so a
 * thread costs about three ptrace stops instead of about ten (four for an injected clone3,
 * two for each injected call). */

#define BATCH_KID_CALLS 8

/* What a thread of a batch needs in the husk, in the scratch pages. */
struct batch_kid {
    struct clone3_args args;
    uint64_t set_tid;
    struct mos_batch_call calls[BATCH_KID_CALLS];
    stack_t ss;
    char comm[16];
    struct sched_param sp;
    uint64_t affinity[MOS_IMG_AFFINITY_WORDS];
};

#define BATCH_MAX ((TRAMP_PAGES - 1) * PAGE / (sizeof(struct batch_kid) + 64) - 1)
_Static_assert((BATCH_MAX + 1) * sizeof(struct mos_batch_call) +
                       BATCH_MAX * sizeof(struct batch_kid) <= (TRAMP_PAGES - 1) * PAGE &&
                   BATCH_MAX >= 4,
               "a batch fits the scratch pages");

/* what a call of a thread's list was for: which failure ends the restore, which only warns */
enum kid_call { KID_ALTSTACK, KID_NAME, KID_ROBUST, KID_RSEQ, KID_AFFINITY, KID_NICE, KID_POLICY };

/* What a new thread inherits from the leader, read once from outside. */
struct leader_now {
    uint64_t affinity[MOS_IMG_AFFINITY_WORDS];
    long affinity_len;
    int nice, nice_ok;
    char comm[16];
};

static void leader_now_read(const struct mos_restore *r, struct leader_now *l)
{
    memset(l, 0, sizeof(*l));
    memcpy(l->comm, r->m.core.comm, sizeof(l->comm));
    l->comm[0] = comm_is(r->pid, r->pid, r->m.core.comm) ? l->comm[0] : '\0';
    l->affinity_len = syscall(SYS_sched_getaffinity, r->pid, sizeof(l->affinity), l->affinity);
    errno = 0;
    l->nice = getpriority(PRIO_PROCESS, (id_t)r->pid);
    l->nice_ok = errno == 0;
}

static void kid_call_add(struct batch_kid *k, enum kid_call *kinds, uint32_t *n, enum kid_call kind,
                         long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
    int fatal = kind < KID_AFFINITY;

    kinds[*n] = kind;
    k->calls[(*n)++] = (struct mos_batch_call){
        .nr = (uint32_t)nr, .flags = fatal ? MOS_BATCH_STOP_ON_ERROR : 0u,
        .args = {a0, a1, a2, a3}, .result = -ENOEXEC /* stays so if the list ended before */};
}

/* The list thread it runs itself: the same calls thread_state_set injects, only those that
 * differ from what it inherits. at: where k lies in the husk. */
static uint32_t kid_calls_build(const struct mos_restore *r, const struct mos_img_thread *it,
                                const struct leader_now *l, struct batch_kid *k, uint64_t at,
                                enum kid_call *kinds)
{
    const struct mos_rec_core *c = &it->t.core;
    uint32_t n = 0;
#define KID_AT(field) (at + offsetof(struct batch_kid, field))

    if (!(it->t.altstack_flags & SS_DISABLE)) {
        k->ss = (stack_t){.ss_sp = (void *)it->t.altstack_sp, .ss_size = it->t.altstack_size,
                          .ss_flags = (int)(it->t.altstack_flags & ~(uint32_t)SS_ONSTACK)};
        kid_call_add(k, kinds, &n, KID_ALTSTACK, SYS_sigaltstack, KID_AT(ss), 0, 0, 0);
    }
    if (c->comm[0] && (!l->comm[0] || strncmp(l->comm, c->comm, sizeof(l->comm)) != 0)) {
        memcpy(k->comm, c->comm, sizeof(k->comm));
        kid_call_add(k, kinds, &n, KID_NAME, SYS_prctl, PR_SET_NAME, KID_AT(comm), 0, 0);
    }
    if (c->robust_list)
        kid_call_add(k, kinds, &n, KID_ROBUST, SYS_set_robust_list, c->robust_list,
                     c->robust_len, 0, 0);
    if (c->rseq_addr)
        kid_call_add(k, kinds, &n, KID_RSEQ, SYS_rseq, c->rseq_addr, c->rseq_len, 0, c->rseq_sig);
    if (!r->opts.cpus_here && (l->affinity_len != (long)c->affinity_words * 8 ||
                               memcmp(l->affinity, c->affinity, (size_t)l->affinity_len) != 0)) {
        memcpy(k->affinity, c->affinity, c->affinity_words * 8);
        kid_call_add(k, kinds, &n, KID_AFFINITY, SYS_sched_setaffinity, 0,
                     c->affinity_words * 8, KID_AT(affinity), 0);
    }
    if (!l->nice_ok || l->nice != c->nice)
        kid_call_add(k, kinds, &n, KID_NICE, SYS_setpriority, PRIO_PROCESS, 0,
                     (uint64_t)(int64_t)c->nice, 0);
    if (c->sched_policy != SCHED_OTHER || c->sched_prio != 0) {
        k->sp.sched_priority = c->sched_prio;
        kid_call_add(k, kinds, &n, KID_POLICY, SYS_sched_setscheduler, 0, c->sched_policy,
                     KID_AT(sp), 0);
    }
    k->calls[n].flags = MOS_BATCH_END;
    return n;
#undef KID_AT
}

/* A thread's list as it ran: a failure of its own state ends the restore, as an injected
 * call's would; one of its scheduling only warns (sched_set's words). */
static int kid_results_check(const struct mos_restore *r, const struct mos_img_thread *it,
                             pid_t tid, const struct batch_kid *k, const enum kid_call *kinds,
                             uint32_t n)
{
    static const char *const what[] = {"sigaltstack", "PR_SET_NAME", "set_robust_list", "rseq"};
    const struct mos_rec_core *c = &it->t.core;

    for (uint32_t i = 0; i < n; i++) {
        int res = (int)k->calls[i].result;
        if (res >= 0)
            continue;
        switch (kinds[i]) {
        case KID_AFFINITY:
            mos_warn("migrate", "restore: tid %d keeps this node's CPU affinity: %s", (int)tid,
                     mos_strerror(res));
            break;
        case KID_NICE:
            mos_warn("migrate", "restore: tid %d: nice %d not allowed here", (int)tid, c->nice);
            break;
        case KID_POLICY:
            mos_warn("migrate", "restore: tid %d: scheduling policy %u not allowed here: %s",
                     (int)tid, c->sched_policy, mos_strerror(res));
            break;
        default:
            mos_err("migrate", "restore: thread %d: %s: %s", (int)tid, what[kinds[i]],
                    mos_strerror(res));
            return res;
        }
    }
    (void)r;
    return 0;
}

/* A clone of a batch refused: EEXIST (its tid is taken) gives fresh tids from then on, EPERM
 * (set_tid not the process's to use) the ns_last_pid way; anything else ends the restore. */
static int batch_clone_refused(struct mos_restore *r, pid_t want, long res)
{
    if (res == -EEXIST && !r->fresh_tids) {
        fresh_tids_say(r, want, "taken");
        return 0;
    }
    if (res == -EPERM && !r->fresh_tids) {
        r->tid_by_next = 1;
        return 0;
    }
    mos_err("migrate", "restore: creating thread %d: %s", (int)want,
            mos_strerror(res < 0 && res > -4096 ? (int)res : -EFAULT));
    return res < 0 && res > -4096 ? (int)res : -EFAULT;
}

/* Every thread of one batch checked: its tid as the leader's clone saw it, its own calls; then
 * its signal queue, as thread_state_set does. */
static int batch_kids_check(struct mos_restore *r, uint32_t from, size_t nmade,
                            const struct mos_batch_call *lead, const struct batch_kid *kids,
                            enum kid_call (*kinds)[BATCH_KID_CALLS], const uint32_t *ncalls)
{
    int rc = 0;

    for (uint32_t j = 0; j < nmade && rc == 0; j++) {
        const struct mos_img_thread *it = &r->m.threads[from + j];
        struct mos_inject *t = r->threads[from + j];
        pid_t tid = mos_inject_pid(t);
        if (lead[j].result != tid) {
            mos_err("migrate", "restore: thread %d: made as %d, seen as %d", (int)it->t.tid,
                    (int)lead[j].result, (int)tid);
            return -EFAULT;
        }
        rc = kid_results_check(r, it, tid, &kids[j], kinds[j], ncalls[j]);
        if (rc == 0)
            rc = thread_pending_queue(r, t, it);
    }
    return rc;
}

/* Threads from.. of the image, up to BATCH_MAX, made and set by one batch; *made says how many
 * were made, each complete. A clone refused its tid ends the batch there (batch_clone_refused
 * says what comes next). */
static int threads_batch(struct mos_restore *r, uint32_t from, uint32_t *made)
{
    const uint32_t n = r->m.nthreads - from < BATCH_MAX ? r->m.nthreads - from : BATCH_MAX;
    const uint64_t base = r->tramp + SCRATCH_OFF;
    const uint64_t kids_at = base + (n + 1) * sizeof(struct mos_batch_call);
    struct mos_batch_call lead[BATCH_MAX + 1] = {{0}};
    struct batch_kid *kids = calloc(n, sizeof(*kids));
    enum kid_call kinds[BATCH_MAX][BATCH_KID_CALLS];
    uint32_t ncalls[BATCH_MAX];
    struct leader_now l;
    size_t nmade = 0;
    int rc = kids ? queue_flush(r) : -ENOMEM; /* the scratch is ours now */

    *made = 0;
    leader_now_read(r, &l);
    for (uint32_t j = 0; j < n && rc == 0; j++) {
        const struct mos_img_thread *it = &r->m.threads[from + j];
        struct batch_kid *k = &kids[j];
        uint64_t at = kids_at + j * sizeof(*k);
        k->set_tid = (uint64_t)it->t.tid;
        k->args = (struct clone3_args){
            .flags = thread_clone_flags(it), .child_tid = it->t.core.clear_child_tid,
            .set_tid = r->fresh_tids ? 0 : at + offsetof(struct batch_kid, set_tid),
            .set_tid_size = r->fresh_tids ? 0 : 1};
        ncalls[j] = kid_calls_build(r, it, &l, k, at, kinds[j]);
        lead[j] = (struct mos_batch_call){
            .nr = SYS_clone3, .flags = MOS_BATCH_FORK_TO | MOS_BATCH_STOP_ON_ERROR,
            .args = {at + offsetof(struct batch_kid, args), sizeof(k->args), 0, 0, 0,
                     at + offsetof(struct batch_kid, calls)},
            .result = -ENOEXEC};
    }
    lead[n].flags = MOS_BATCH_END;
    if (rc == 0)
        rc = mos_inject_write(r->t, base, lead, (n + 1) * sizeof(lead[0]));
    if (rc == 0)
        rc = mos_inject_write(r->t, kids_at, kids, n * sizeof(*kids));
    if (rc == 0)
        rc = mos_inject_batch_run(r->t, r->tramp + BATCH_CODE_OFF, base, &r->threads[from], n,
                                  &nmade);
    if (rc == 0)
        rc = mos_inject_read(r->t, base, lead, (n + 1) * sizeof(lead[0]));
    if (rc == 0)
        rc = mos_inject_read(r->t, kids_at, kids, n * sizeof(*kids));
    if (rc == 0)
        rc = batch_kids_check(r, from, nmade, lead, kids, kinds, ncalls);
    if (rc == 0 && nmade < n)
        rc = batch_clone_refused(r, r->m.threads[from + nmade].t.tid, lead[nmade].result);
    if (rc != 0)
        mos_err("migrate", "restore: a batch of threads from %d: %s", (int)r->m.threads[from].t.tid,
                mos_strerror(rc));
    free(kids);
    *made = (uint32_t)nmade;
    return rc;
}


/* Every thread but the leader, each stopped before its first instruction with every signal
 * blocked: none runs before the commit lets them all go. In batches where they can be; one by
 * one by injected calls where not (tids by ns_last_pid, a pending SIGTRAP). */
static int threads_create(struct mos_restore *r)
{
    int rc = 0;

    if (r->m.nthreads == 0)
        return 0;
    r->threads = calloc(r->m.nthreads, sizeof(*r->threads));
    if (!r->threads)
        return -ENOMEM;
    /* A guest's threads take local tids: its supervisor answers gettid and tgkill with the
     * image's (mos_restore_thread_ids), and the image's stay free for the job's return home,
     * where they matter (nodes sharing a pid namespace, as in the lab, would otherwise hold
     * them in the frozen copy then). */
    r->fresh_tids |= r->opts.guest;
    for (uint32_t i = 0; i < r->m.nthreads && rc == 0;) {
        uint32_t made = 0;
        /* ns_last_pid is written before each clone: one by one, until tids are fresh */
        if (r->queue && (!r->tid_by_next || r->fresh_tids)) {
            rc = threads_batch(r, i, &made);
            i += made;
            continue;
        }
        rc = thread_clone(r, &r->m.threads[i], &r->threads[i]);
        if (rc == 0)
            rc = thread_state_set(r, r->threads[i], &r->m.threads[i]);
        i++;
    }
    return rc;
}

/* A thread with a fresh tid: the tid the program cached for it names the old one, and glibc
 * asks the kernel with it (pthread_getattr_np, pthread_getaffinity_np, pthread_kill: ESRCH,
 * or another process's thread). glibc caches it in the word its set_tid_address pointer names
 * (struct pthread's tid), so that word is set to the new tid where it holds the old one: a
 * runtime whose pointer names another word (musl's detach state) holds no tid there and is
 * left alone. Not for a guest, whose supervisor answers with the image's tids. */
static int cached_tid_fix(struct mos_restore *r, struct mos_inject *t, uint64_t word,
                          pid_t old_tid, pid_t new_tid)
{
    int32_t now = 0, tid = new_tid;

    if (!word || old_tid == new_tid || mos_inject_read(t, word, &now, sizeof(now)) != 0 ||
        now != old_tid)
        return 0;
    int rc = mos_inject_write(t, word, &tid, sizeof(tid));
    if (rc != 0)
        mos_err("migrate", "restore: setting the cached tid of thread %d to %d: %s",
                (int)old_tid, (int)new_tid, mos_strerror(rc));
    return rc;
}

/* One robust futex word: its owner's tid is the low 30 bits (FUTEX_TID_MASK), the waiters
 * and owner-died bits above them are kept. */
static int robust_word_fix(struct mos_inject *t, uint64_t word, pid_t old_tid, pid_t new_tid)
{
    const uint32_t tid_mask = 0x3fffffff;
    uint32_t now = 0;

    if (mos_inject_read(t, word, &now, sizeof(now)) != 0 || (now & tid_mask) != (uint32_t)old_tid)
        return 0;
    now = (now & ~tid_mask) | (uint32_t)new_tid;
    return mos_inject_write(t, word, &now, sizeof(now));
}

/* A robust mutex (PI or not) names its owner by tid in its word: the kernel marks it
 * OWNER_DIED by that tid when the owner dies, and glibc's unlock checks it against the tid it
 * cached (EPERM otherwise). A thread with a fresh tid holds each such lock it took on its
 * robust list (struct robust_list_head: next, futex_offset, list_op_pending; an entry's low
 * bit marks PI), so each word there that names the old tid gets the new one. The list is the
 * program's: one that cannot be read ends the walk, as the kernel's does, after at most 2048
 * entries as the kernel walks. A PI mutex that is not robust is on no list and keeps its old
 * owner (migrate/README.md). */
static int robust_words_fix(struct mos_inject *t, uint64_t head, pid_t old_tid, pid_t new_tid)
{
    struct {
        uint64_t next;
        int64_t futex_offset;
        uint64_t pending;
    } h;
    int rc = 0;

    if (!head || old_tid == new_tid || mos_inject_read(t, head, &h, sizeof(h)) != 0)
        return 0;
    uint64_t entry = h.next & ~1ull;
    for (int i = 0; i < 2048 && entry && entry != head && rc == 0; i++) {
        rc = robust_word_fix(t, entry + (uint64_t)h.futex_offset, old_tid, new_tid);
        if (mos_inject_read(t, entry, &entry, sizeof(entry)) != 0)
            break;
        entry &= ~1ull;
    }
    /* a lock being taken or let go at the freeze */
    if (rc == 0 && (h.pending & ~1ull))
        rc = robust_word_fix(t, (h.pending & ~1ull) + (uint64_t)h.futex_offset, old_tid,
                             new_tid);
    if (rc != 0)
        mos_err("migrate", "restore: setting robust futex owners of thread %d to %d: %s",
                (int)old_tid, (int)new_tid, mos_strerror(rc));
    return rc;
}

static int cached_tids_fix(struct mos_restore *r)
{
    pid_t old_tid = (pid_t)r->m.image.src_pid;
    int rc = 0;

    if (r->opts.guest)
        return 0;
    rc = cached_tid_fix(r, r->t, r->m.core.clear_child_tid, old_tid, r->pid);
    if (rc == 0)
        rc = robust_words_fix(r->t, r->m.core.robust_list, old_tid, r->pid);
    for (uint32_t i = 0; i < r->m.nthreads && rc == 0; i++) {
        const struct mos_rec_core *c = &r->m.threads[i].t.core;
        pid_t tid = mos_inject_pid(r->threads[i]);
        old_tid = r->m.threads[i].t.tid;
        rc = cached_tid_fix(r, r->threads[i], c->clear_child_tid, old_tid, tid);
        if (rc == 0)
            rc = robust_words_fix(r->threads[i], c->robust_list, old_tid, tid);
    }
    return rc;
}

/* Last, once the exec spot of the moved vDSO is known: registers, xstate, mask. */
static int threads_finish(struct mos_restore *r)
{
    for (uint32_t i = 0; i < r->m.nthreads; i++) {
        const struct mos_img_thread *it = &r->m.threads[i];
        struct mos_inject *t = r->threads[i];
        int rc = mos_inject_set_exec_addr(t, mos_inject_exec_addr(r->t));
        if (rc == 0)
            rc = mos_inject_set_xstate(t, it->xstate, it->t.core.xstate_len);
        if (rc != 0) {
            mos_err("migrate", "restore: thread %d: xstate: %s", (int)mos_inject_pid(t),
                    mos_strerror(rc));
            return rc;
        }
        mos_inject_set_regs(t, &it->t.core.regs);
        mos_inject_set_sigmask(t, it->t.core.sigmask);
    }
    return 0;
}

/* A signalfd is ready when the task polling it has a signal pending, and epoll hears of that
 * through the signal handlers of the task that added it: an epoll's signalfd watches are
 * added by the process itself, by calls injected into it, its fds in place by now. */
static int epoll_signalfds_add(struct mos_restore *r)
{
    const struct mos_img_meta *m = &r->m;
    int rc = 0;

    for (uint32_t i = 0; i < m->nfds && rc == 0; i++) {
        const struct mos_img_fd *f = &m->fds[i];
        uint32_t nw = f->f.kind == MOS_FD_EPOLL ? f->f.data_len / sizeof(struct mos_rec_epoll_watch)
                                                : 0;
        for (uint32_t w = 0; w < nw && rc == 0; w++) {
            struct mos_rec_epoll_watch watch;
            uint32_t k = 0;
            memcpy(&watch, f->data + w * sizeof(watch), sizeof(watch));
            while (m->fds[k].f.fd != watch.tfd)
                k++;
            if (m->fds[k].f.kind != MOS_FD_SIGNALFD)
                continue;
            struct epoll_event ev = {.events = watch.events, .data.u64 = watch.data};
            uint64_t at = scratch_put(r, &ev, sizeof(ev), &rc);
            if (rc == 0)
                rc = rcall(r, "epoll_ctl", SYS_epoll_ctl, f->f.fd, EPOLL_CTL_ADD, watch.tfd,
                           (long)at, 0, 0, NULL);
        }
    }
    return rc;
}

static int finish(struct mos_restore *r)
{
    const struct mos_img_meta *m = &r->m;
    int rc = 0;

    for (uint32_t i = 0; i < m->nvmas && rc == 0; i++) {
        const struct mos_rec_vma *v = &m->vmas[i].v;
        /* pages sent ahead lie in plain read-write memory: in a VMA with other rights (code
         * a program wrote itself, read-write-execute) they get its rights too */
        int ahead = r->nahead && ahead_kind(v) && v->prot != (PROT_READ | PROT_WRITE);
        if (v->kind != MOS_VMA_VDSO && (map_prot(v) != v->prot || ahead)) {
            const long a[6] = {(long)v->start, (long)(v->end - v->start), v->prot};
            rc = qcall(r, "mprotect", SYS_mprotect, a, 0, NULL, 0, 0);
        }
    }
    if (rc == 0)
        rc = mm_set(r);
    if (rc == 0 && r->opts.into_pid)
        rc = shell_signals_reset(r);
    if (rc == 0)
        rc = sigs_set(r);
    if (rc == 0)
        rc = epoll_signalfds_add(r);
    if (rc == 0)
        rc = task_set(r);
    const long tid_address_a[6] = {(long)m->core.clear_child_tid};
    if (rc == 0 && m->core.clear_child_tid)
        rc = qcall(r, "set_tid_address", SYS_set_tid_address, tid_address_a, QUEUE_ANY, NULL, 0,
                   0);
    if (rc == 0)
        rc = queue_flush(r); /* sched_set injects its calls itself: none queued from here on */
    if (rc == 0)
        sched_set(r, r->t, &m->core);
    if (rc == 0)
        rc = threads_create(r);
    if (rc == 0)
        rc = cached_tids_fix(r);
    if (rc != 0)
        return rc;
    rlimits_set(r);
    if (r->opts.into_pid && r->opts.fds_from > 0) {
        rc = shell_fds_install(r);
        if (rc != 0)
            return rc;
    }
    if (r->opts.into_pid && r->opts.cwd)
        shell_chdir(r);
    if (r->opts.into_pid && r->opts.fds_from > 0)
        shell_pgid(r);
    /* a guest dies with its supervisor; anything else lives on like the original did */
    if (!r->opts.guest)
        rc = rcall(r, "PR_SET_PDEATHSIG", SYS_prctl, PR_SET_PDEATHSIG, 0, 0, 0, 0, 0, NULL);
    if (rc != 0)
        return rc;
    if (r->opts.guest) {
        rc = guest_filter_install(r);
        if (rc != 0)
            return rc;
    }
    /* a batch's int3 leaves SIGTRAP at SIG_DFL (mos_inject_batch_run): the image's, now that
     * none is to come (sigs_set left it for now) */
    rc = queue_flush(r);
    if (rc == 0 && r->queue)
        rc = sigaction_set(r, SIGTRAP);
    if (rc == 0)
        rc = rcall(r, "unmap trampoline", SYS_munmap, (long)r->tramp, (long)(TRAMP_PAGES * PAGE),
                   0, 0, 0, 0, NULL);
    /* later calls (mos_restore_syscall) run from a syscall instruction of the moved vDSO */
    if (rc == 0)
        rc = mos_inject_pick_exec_addr(r->t);
    if (rc == 0)
        rc = threads_finish(r);
    if (rc == 0) {
        rc = mos_inject_set_xstate(r->t, m->xstate, m->core.xstate_len);
        if (rc != 0)
            mos_err("migrate", "restore: PTRACE_SETREGSET NT_X86_XSTATE: %s", mos_strerror(rc));
    }
    mos_inject_set_regs(r->t, &m->core.regs);
    mos_inject_set_sigmask(r->t, m->core.sigmask);
    return rc;
}

/* Guest mode, in the child between fork and exec: no descriptors (the job's are at home with
 * its deputy), the job owner's identity, death with the restorer (the supervisor: without it
 * nothing the guest does can be answered). */
static void __attribute__((noreturn)) guest_husk_child(const struct mos_restore_opts *o,
                                                       const char *husk)
{
    char *const argv[] = {(char *)"mos-husk", NULL}, *const envp[] = {NULL};

    syscall(SYS_close_range, 0, ~0u, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || chdir("/") < 0)
        _exit(126);
    setpriority(PRIO_PROCESS, 0, 0); /* not the restorer's (mosd's) raised priority */
    if (getuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(o->gid, o->gid, o->gid) < 0 ||
                          setresuid(o->uid, o->uid, o->uid) < 0))
        _exit(125);
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
        _exit(123);
    execve(husk, argv, envp);
    _exit(122);
}

#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif
/* With threads, the filter (and no_new_privs with it) reaches every thread at once: TSYNC,
 * with TSYNC_ESRCH so that it may go with NEW_LISTENER. Installed after the threads exist, so
 * the injected clone3 calls were never the filter's to judge. */
static unsigned long guest_tsync(const struct mos_restore *r)
{
    return r->m.nthreads ? SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_TSYNC_ESRCH : 0;
}

/* Guest mode, the last injected calls that may leave the node: no_new_privs, then the filter
 * (after it, any call that is not local waits for the supervisor). */
static int guest_filter_install(struct mos_restore *r)
{
    unsigned n = r->opts.guest_filter_len;
    long res = -1;
    int rc;

    /* the program fills at most the first scratch page; its descriptor sits in the second */
    if (!r->opts.guest_filter || n == 0 || n > PAGE / sizeof(struct sock_filter)) {
        mos_err("migrate", "restore: guest mode needs a filter of 1..%zu instructions",
                (size_t)(PAGE / sizeof(struct sock_filter)));
        return -EINVAL;
    }
    uint64_t prog_at = scratch_put(r, r->opts.guest_filter, n * sizeof(struct sock_filter), &rc);
    struct sock_fprog fprog = {.len = (unsigned short)n,
                               .filter = (struct sock_filter *)(uintptr_t)prog_at};
    uint64_t fprog_at = rc == 0 ? r->tramp + SCRATCH_OFF + 4096 : 0;
    if (rc == 0)
        rc = mos_inject_write(r->t, fprog_at, &fprog, sizeof(fprog));
    if (rc == 0)
        rc = rcall(r, "no_new_privs", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0, NULL);
    if (rc == 0)
        rc = rcall(r, "seccomp filter", SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                   (long)(r->opts.guest_filter_flags | guest_tsync(r)), (long)fprog_at, 0, 0,
                   0, &res);
    if (rc == 0 && res < 0) {
        mos_err("migrate", "restore: the guest filter was refused: %s", strerror((int)-res));
        rc = (int)res;
    }
    r->listener = rc == 0 ? (int)res : -1;
    return rc;
}

static int husk_start_guest(struct mos_restore *r, const char *husk)
{
    char why[200];
    int rc;

    /* Checked again here, where the identity is taken, whoever filled in the options. */
    if (getuid() == 0 &&
        mos_ident_check(r->opts.uid, r->opts.gid, NULL, 0, why, sizeof(why)) != 0) {
        mos_err("migrate", "cannot restore the guest: %s", why);
        return MOS_E_IDENTITY;
    }
    r->pid = fork();
    if (r->pid < 0)
        return mos_errno_status();
    if (r->pid == 0)
        guest_husk_child(&r->opts, husk);
    rc = mos_inject_adopt_traceme(r->pid, &r->t);
    if (rc != 0) {
        int st;
        kill(r->pid, SIGKILL);
        waitpid(r->pid, &st, 0);
        mos_err("migrate", "cannot restore: the husk did not start (%s)", mos_strerror(rc));
    }
    return rc;
}

int mos_restore_listener_fd(const struct mos_restore *r)
{
    return r->listener;
}

size_t mos_restore_thread_ids(const struct mos_restore *r, struct mos_tid_pair *out, size_t max)
{
    for (size_t i = 0; r->threads && i < r->m.nthreads && i < max; i++) {
        out[i].image = r->m.threads[i].t.tid;
        out[i].local = mos_inject_pid(r->threads[i]);
    }
    return r->threads ? r->m.nthreads : 0;
}

/* ---- into a shell: the job's own process at home, kept by mos_dump_commit_shell */

static int shell_take(struct mos_restore *r)
{
    int rc;

    if (r->m.nfds) {
        mos_err("migrate", "cannot restore into pid %d: the image carries descriptors",
                (int)r->opts.into_pid);
        return MOS_E_UNSUPPORTED;
    }
    rc = files_check(&r->m);
    if (rc != 0)
        return rc;
    r->pid = r->opts.into_pid;
    rc = mos_inject_seize(r->pid, &r->t);
    /* like a husk of our own, it must not run on half-built if we die */
    if (rc == 0 && (rc = mos_inject_exit_kill(r->t)) != 0)
        mos_inject_release(r->t);
    if (rc != 0)
        mos_err("migrate", "cannot restore into pid %d: %s", (int)r->pid, mos_strerror(rc));
    return rc;
}

/* What the shell collected while the job was away goes: signals sent to its pid then were
 * the deputy's to pass on (a terminal's Ctrl-C reached both), and dispositions it ignored are
 * not the image's. Setting SIG_IGN discards a pending signal, SIG_DFL then resets it. */
static int shell_signals_reset(struct mos_restore *r)
{
    static const char *const keys[] = {"SigPnd:", "ShdPnd:", "SigIgn:"};
    const struct mos_ksigaction acts[2] = {{.handler = 1 /* SIG_IGN */}, {.handler = 0}};
    uint64_t mask = ~0ull; /* unknown: reset every signal */
    int rc;

    if (mos_proc_status_masks(r->pid, keys, 3, &mask) < 0)
        mask = ~0ull;
    uint64_t at = scratch_put(r, acts, sizeof(acts), &rc);

    for (int sig = 1; sig <= 64 && rc == 0; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || !(mask & (1ull << (sig - 1))))
            continue;
        rc = rcall(r, "rt_sigaction", SYS_rt_sigaction, sig, (long)at, 0, 8, 0, 0, NULL);
        if (rc == 0)
            rc = rcall(r, "rt_sigaction", SYS_rt_sigaction, sig, (long)(at + sizeof(acts[0])),
                       0, 8, 0, 0, NULL);
    }
    return rc;
}

/* Descriptor fd of process from, and whether it is close-on-exec; -1 past the table. */
struct shell_fd {
    int fd, cloexec;
};

static int shell_fds_list(pid_t from, int limit, struct shell_fd **out, size_t *n)
{
    char dir[64];
    struct dirent *e;
    size_t cap = 16;
    DIR *d;

    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)from);
    if (!(d = opendir(dir)))
        return mos_errno_status();
    *n = 0;
    *out = malloc(cap * sizeof(**out));
    while (*out && (e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd >= limit)
            continue;
        if (*n == cap) {
            struct shell_fd *more = realloc(*out, 2 * cap * sizeof(**out));
            if (!more)
                break;
            *out = more;
            cap *= 2;
        }
        char path[96], line[128];
        unsigned long flags = 0;
        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)from, fd);
        FILE *f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f))
            if (sscanf(line, "flags: %lo", &flags) == 1)
                break;
        if (f)
            fclose(f);
        (*out)[(*n)++] = (struct shell_fd){fd, (flags & O_CLOEXEC) != 0};
    }
    closedir(d);
    return *out ? 0 : -ENOMEM;
}

/* An O_PATH descriptor cannot be taken with pidfd_getfd; an O_PATH open of its path is all
 * it is. */
static int shell_fd_open_path(struct mos_restore *r, pid_t from, int fd, long *got)
{
    char link[96], path[PATH_MAX];
    ssize_t len;
    int rc;

    snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)from, fd);
    if ((len = readlink(link, path, sizeof(path) - 1)) < 0)
        return mos_errno_status();
    path[len] = '\0';
    uint64_t at = scratch_put(r, path, (size_t)len + 1, &rc);
    return rc != 0 ? rc : mos_inject_call(r->t, SYS_openat, AT_FDCWD, (long)at,
                                          O_PATH | O_CLOEXEC, 0, 0, 0, got);
}

/* Each descriptor of fds_from below fds_limit, at its number in the shell. */
static int shell_fds_install(struct mos_restore *r)
{
    struct shell_fd *fds = NULL;
    size_t n = 0;
    long pidfd = -1, high = -1;
    int top = 0, rc = shell_fds_list(r->opts.fds_from, r->opts.fds_limit, &fds, &n);

    for (size_t i = 0; i < n; i++)
        top = fds[i].fd + 1 > top ? fds[i].fd + 1 : top;
    if (rc == 0)
        rc = rcall(r, "pidfd_open", SYS_pidfd_open, r->opts.fds_from, 0, 0, 0, 0, 0, &pidfd);
    /* above every target, so that no placement closes it */
    if (rc == 0)
        rc = rcall(r, "fcntl F_DUPFD", SYS_fcntl, pidfd, F_DUPFD_CLOEXEC, top, 0, 0, 0, &high);
    if (pidfd >= 0)
        mos_inject_call(r->t, SYS_close, pidfd, 0, 0, 0, 0, 0, NULL);
    for (size_t i = 0; i < n && rc == 0; i++) {
        long got = -1;
        rc = mos_inject_call(r->t, SYS_pidfd_getfd, high, fds[i].fd, 0, 0, 0, 0, &got);
        if (rc == -EBADF)
            rc = shell_fd_open_path(r, r->opts.fds_from, fds[i].fd, &got);
        if (rc != 0) {
            mos_err("migrate", "restore: cannot take fd %d of pid %d: %s", fds[i].fd,
                    (int)r->opts.fds_from, mos_strerror(rc));
            break;
        }
        if (got != fds[i].fd) {
            rc = rcall(r, "dup3", SYS_dup3, got, fds[i].fd, fds[i].cloexec ? O_CLOEXEC : 0, 0, 0,
                       0, NULL);
            mos_inject_call(r->t, SYS_close, got, 0, 0, 0, 0, 0, NULL);
        } else if (!fds[i].cloexec) { /* pidfd_getfd always sets close-on-exec */
            rc = rcall(r, "fcntl F_SETFD", SYS_fcntl, got, F_SETFD, 0, 0, 0, 0, NULL);
        }
    }
    if (high >= 0)
        mos_inject_call(r->t, SYS_close, high, 0, 0, 0, 0, 0, NULL);
    free(fds);
    return rc;
}

static void shell_chdir(struct mos_restore *r)
{
    int rc;
    uint64_t at = scratch_put(r, r->opts.cwd, strlen(r->opts.cwd) + 1, &rc);

    if (rc == 0)
        rc = mos_inject_call(r->t, SYS_chdir, (long)at, 0, 0, 0, 0, 0, NULL);
    if (rc != 0)
        mos_warn("migrate", "restore: pid %d cannot enter %s (%s); its directory is the old one",
                 (int)r->pid, r->opts.cwd, mos_strerror(rc));
}

/* Back into the process group of fds_from (mosrun's, the job's before it left): the shell had
 * one of its own, out of reach of the terminal's signals. */
static void shell_pgid(struct mos_restore *r)
{
    pid_t pgid = getpgid(r->opts.fds_from);
    int rc = pgid > 0 ? mos_inject_call(r->t, SYS_setpgid, 0, pgid, 0, 0, 0, 0, NULL) : -ESRCH;

    if (rc != 0)
        mos_warn("migrate", "restore: pid %d stays in a process group of its own: %s",
                 (int)r->pid, mos_strerror(rc));
}

/* The husk with the image's pid where it is free and ours to choose (clone3 set_tid, needs
 * CAP_CHECKPOINT_RESTORE): the leader's tid is the pid, cached like any thread's (below,
 * thread_clone). Else a plain fork, said only when the process has other threads, for whom
 * the main thread's tid matters (pthread_kill of it, PI futexes it holds). The child runs
 * only async-signal-safe calls before its execve, as after fork. */
static pid_t husk_fork(struct mos_restore *r)
{
    pid_t want = (pid_t)r->m.image.src_pid;
    struct clone3_args a = {.exit_signal = SIGCHLD, .set_tid = (uint64_t)(uintptr_t)&want,
                            .set_tid_size = 1};
    long pid = syscall(SYS_clone3, &a, sizeof(a));

    if (pid >= 0)
        return (pid_t)pid;
    if (r->m.nthreads)
        mos_warn("migrate", "restore: pid %d is %s here: the main thread gets a fresh tid "
                 "(glibc's cached tid is set to it; PI and robust futex words of locks held now "
                 "name the old one)", (int)want,
                 errno == EEXIST ? "taken" : "not ours to choose");
    return fork();
}

static int husk_start(struct mos_restore *r, const char *husk)
{
    int *opened = calloc(r->m.nfds ? r->m.nfds : 1, sizeof(int));
    int rc;

    if (!opened)
        return -ENOMEM;
    /* none opened yet: the guest and shell paths leave them so, and must close nothing */
    for (uint32_t i = 0; i < r->m.nfds; i++)
        opened[i] = -1;
    if (access(husk, X_OK) < 0) {
        rc = mos_errno_status();
        mos_err("migrate", "cannot restore: husk %s: %s", husk, mos_strerror(rc));
        goto out;
    }
    if (r->opts.guest) {
        rc = r->t ? 0 : husk_start_guest(r, husk); /* started early for pages sent ahead */
        goto out;
    }
    if (r->opts.into_pid) {
        rc = shell_take(r);
        goto out;
    }
    rc = files_check(&r->m);
    if (rc == 0)
        rc = fds_open(&r->m, opened);
    if (rc != 0)
        goto out;
    if (r->t) { /* started early for pages sent ahead */
        if (r->m.nthreads)
            mos_warn("migrate", "restore: the husk started before pid %d was known: the main "
                     "thread has a fresh tid (glibc's cached tid is set to it; PI and robust "
                     "futex words of locks held now name the old one)",
                     (int)r->m.image.src_pid);
        rc = early_fds_install(r, opened);
        goto out;
    }
    pid_t restorer = getpid();
    r->pid = husk_fork(r);
    if (r->pid < 0) {
        rc = mos_errno_status();
        goto out;
    }
    if (r->pid == 0)
        husk_child(&r->m, opened, husk, restorer);
    rc = mos_inject_adopt_traceme(r->pid, &r->t);
    if (rc != 0) {
        int st;
        kill(r->pid, SIGKILL);
        waitpid(r->pid, &st, 0);
        mos_err("migrate", "cannot restore: the husk did not start (%s)", mos_strerror(rc));
    }
out:
    for (uint32_t i = 0; i < r->m.nfds; i++)
        if (opened[i] >= 0)
            close(opened[i]);
    free(opened);
    return rc;
}

static void threads_kill(struct mos_restore *r)
{
    mos_inject_kill_group(r->t, r->threads, r->threads ? r->m.nthreads : 0);
    free(r->threads);
    r->threads = NULL;
    r->t = NULL;
}

int mos_restore_prepare(struct mos_img_io *io, const struct mos_restore_opts *opts,
                        struct mos_restore **out)
{
    struct mos_img_reader rd = {.io = io};
    struct mos_restore *r = calloc(1, sizeof(*r));
    uint64_t t0 = mos_clock_now_ns(), t1, t2;
    int rc;

    if (!r || !(r->stage = page_stage_new())) {
        free(r);
        return -ENOMEM;
    }
    r->listener = -1;
    if (opts)
        r->opts = *opts;
    rd.stage = ahead_record;
    rd.stage_arg = r;
    r->ahead_io = io;
    rc = mos_img_meta_read(&rd, &r->m);
    ahead_writer_stop(r);
    if (rc != 0)
        goto out_free;
    rc = mos_memfds_make(&rd, &r->m);
    if (rc != 0)
        goto out_meta;
    uint64_t tm = mos_clock_now_ns();
    rc = husk_start(r, opts && opts->husk_path ? opts->husk_path : "mos-husk");
    if (rc != 0)
        goto out_meta;
    uint64_t th = mos_clock_now_ns();
    rc = space_clear(r);
    if (rc == 0 && r->nahead)
        rc = ahead_trim(r);
    if (rc == 0 && r->early_plain)
        rc = early_chdir(r);
    uint64_t ts = mos_clock_now_ns();
    if (rc == 0)
        rc = vmas_map(r);
    if (rc == 0)
        rc = mos_memfds_seal(&r->m);
    t1 = mos_clock_now_ns();
    if (rc == 0)
        rc = pages_fill(r, &rd);
    t2 = mos_clock_now_ns();
    page_stage_free(r->stage);
    r->stage = NULL;
    if (rc == 0)
        rc = finish(r);
    mos_dbg("migrate", "restore: metadata %.2f ms, husk %.2f ms, clear %.2f ms, map %.2f ms, "
            "pages %.2f ms, finish %.2f ms", (tm - t0) / 1e6, (th - tm) / 1e6, (ts - th) / 1e6,
            (t1 - ts) / 1e6, (t2 - t1) / 1e6, (mos_clock_now_ns() - t2) / 1e6);
    if (rc != 0) {
        threads_kill(r);
        goto out_meta;
    }
    free(r->queue); /* every call ran: finish flushed it */
    r->queue = NULL;
    r->stats.meta_ns = t1 - t0;
    r->stats.pages_ns = t2 - t1;
    r->stats.final_ns = mos_clock_now_ns() - t2;
    mos_img_reader_free(&rd);
    *out = r;
    return 0;
out_meta:
    mos_img_meta_free(&r->m);
out_free:
    if (r->t) /* started early for pages sent ahead */
        threads_kill(r);
    mos_img_reader_free(&rd);
    page_stage_free(r->stage);
    free(r->ahead);
    free(r->queue);
    free(r);
    return rc;
}

pid_t mos_restore_pid(const struct mos_restore *r)
{
    return r->pid;
}

const struct mos_restore_stats *mos_restore_stats(const struct mos_restore *r)
{
    return &r->stats;
}

int mos_restore_syscall(struct mos_restore *r, long nr, const long args[6], long *result)
{
    return mos_inject_syscall(r->t, nr, args, result);
}

int mos_restore_write_mem(struct mos_restore *r, uint64_t addr, const void *buf, size_t len)
{
    return mos_inject_write(r->t, addr, buf, len);
}

int mos_restore_commit(struct mos_restore *r)
{
    int rc = 0;

    /* all are in place: the others go first, the leader a moment later */
    for (uint32_t i = 0; i < r->m.nthreads; i++) {
        int rc2 = mos_inject_release(r->threads[i]);
        if (rc == 0)
            rc = rc2;
    }
    free(r->threads);
    int rc2 = mos_inject_release(r->t);
    if (rc == 0)
        rc = rc2;

    if (rc != 0)
        mos_err("migrate", "restore: letting pid %d go: %s", (int)r->pid, mos_strerror(rc));
    mos_img_meta_free(&r->m);
    free(r->ahead);
    free(r);
    return rc;
}

void mos_restore_abort(struct mos_restore *r)
{
    threads_kill(r);
    mos_img_meta_free(&r->m);
    free(r->ahead);
    free(r);
}
