/* Stay reasons: what keeps a process from migrating, checked before and after the freeze so
 * a refusal never leaves anything half done. */
#include "stay.h"
#include "image.h"
#include "unix_sock.h"

#include "mos/log.h"
#include "mos/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/sysmacros.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Character devices without per-open state worth carrying: reopened by path. */
static const char *const stateless_devs[] = {"/dev/null", "/dev/zero", "/dev/random",
                                             "/dev/urandom", "/dev/full"};

static int fdinfo_read(pid_t pid, int fd, struct mos_fd_seen *s)
{
    char path[64], line[256];
    int got = 0;

    snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
    FILE *f = fopen(path, "re");
    if (!f)
        return mos_errno_status();
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        unsigned o;
        if (sscanf(line, "pos: %llu", &v) == 1) {
            s->offset = v;
            got |= 1;
        } else if (sscanf(line, "flags: %o", &o) == 1) {
            s->flags = o & ~(unsigned)O_CLOEXEC;
            s->fdflags = (o & O_CLOEXEC) ? FD_CLOEXEC : 0;
            got |= 2;
        }
    }
    fclose(f);
    return got == 3 ? 0 : -EPROTO;
}

/* A unix socket that travels: one end of a pair (connected, no name), the other end either
 * released or unnamed too (whose it is: mos_fd_own_check). 1 with kind and state set, 0 with
 * why set when it is a unix socket that cannot travel, -1 when it is no unix socket here. */
static int unix_classify(const char *name, struct mos_fd_seen *s)
{
    struct mos_unix_sock u, peer;
    unsigned long ino;
    int peer_found;
    char end;

    if (sscanf(name, "socket:[%lu%c", &ino, &end) != 2 || end != ']' || ino > UINT32_MAX ||
        mos_unix_sock_find((uint32_t)ino, &u) != 0)
        return -1;
    if (u.type != SOCK_STREAM && u.type != SOCK_DGRAM && u.type != SOCK_SEQPACKET)
        snprintf(s->why, sizeof(s->why), "fd %d is a unix socket of type %u", s->fd, u.type);
    else if (u.named || u.state != 1 /* TCP_ESTABLISHED */)
        snprintf(s->why, sizeof(s->why), "fd %d is a unix socket that is %s (%.40s)", s->fd,
                 u.named ? "bound to a name" : "not connected", name);
    else if ((peer_found = u.peer && mos_unix_sock_find(u.peer, &peer) == 0) && peer.named)
        snprintf(s->why, sizeof(s->why), "fd %d is a unix socket connected to a named one (%.40s)",
                 s->fd, name);
    else {
        s->kind = MOS_FD_UNIX;
        s->offset = 0;
        s->sock_type = u.type;
        s->shutdown = u.shutdown;
        /* a released end is gone from sock_diag: the pair's other end was closed */
        s->peer = peer_found ? u.peer : 0;
        return 1;
    }
    return 0;
}

static void fd_classify(pid_t pid, int fd, struct mos_fd_seen *s)
{
    char link[64];
    struct stat st;
    ssize_t n;

    memset(s, 0, sizeof(*s));
    s->fd = fd;
    snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, fd);
    n = readlink(link, s->path, MOS_IMG_MAX_PATH);
    if (n < 0 || stat(link, &st) < 0 || fdinfo_read(pid, fd, s) != 0) {
        snprintf(s->why, sizeof(s->why), "fd %d: cannot inspect it (%s)", fd, strerror(errno));
        return;
    }
    s->path[n] = '\0';
    int is_stdio_type = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
                        (S_ISCHR(st.st_mode) && ((major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143) ||
                                                major(st.st_rdev) == 4 || major(st.st_rdev) == 5));
    if (fd <= 2 && is_stdio_type) {
        s->kind = MOS_FD_STDIO;
        s->path[0] = '\0';
        return;
    }
    if (S_ISREG(st.st_mode) && mos_img_memfd_path_ok(s->path)) {
        struct statfs sf;
        if (statfs(link, &sf) == 0 && sf.f_type == TMPFS_MAGIC) {
            s->kind = MOS_FD_MEMFD; /* whose object must be ours alone: stay_memfds */
            s->dev = st.st_dev;
            s->ino = st.st_ino;
        } else {
            snprintf(s->why, sizeof(s->why), "fd %d is a hugetlb memfd (%.80s)", fd, s->path);
        }
        return;
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        if (s->path[0] != '/' || strstr(s->path, " (deleted)")) {
            snprintf(s->why, sizeof(s->why), "fd %d is a deleted or unreachable file (%.80s)",
                     fd, s->path);
            return;
        }
        s->kind = MOS_FD_FILE;
        return;
    }
    static const struct {
        const char *name;
        uint32_t kind;
    } anon[] = {{"anon_inode:[eventfd]", MOS_FD_EVENTFD},
                {"anon_inode:[signalfd]", MOS_FD_SIGNALFD},
                {"anon_inode:[timerfd]", MOS_FD_TIMERFD},
                {"anon_inode:[eventpoll]", MOS_FD_EPOLL}};
    for (size_t i = 0; i < sizeof(anon) / sizeof(anon[0]); i++)
        if (strcmp(s->path, anon[i].name) == 0) {
            s->kind = anon[i].kind; /* its state is in fdinfo: capture's fd_state */
            s->offset = 0;
            return;
        }
    if (S_ISFIFO(st.st_mode) && strncmp(s->path, "pipe:[", 6) == 0) {
        s->kind = MOS_FD_PIPE; /* whose ends must all be ours: mos_stay_check */
        s->offset = 0;
        return;
    }
    if (S_ISSOCK(st.st_mode) && unix_classify(s->path, s) >= 0)
        return;
    if (S_ISCHR(st.st_mode))
        for (size_t i = 0; i < sizeof(stateless_devs) / sizeof(stateless_devs[0]); i++)
            if (strcmp(s->path, stateless_devs[i]) == 0) {
                s->kind = MOS_FD_DEV;
                return;
            }
    const char *type = S_ISFIFO(st.st_mode)   ? "a pipe"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "a special file";
    if (strncmp(s->path, "anon_inode:", 11) == 0)
        snprintf(s->why, sizeof(s->why), "fd %d is %.60s", fd, s->path + 11);
    else
        snprintf(s->why, sizeof(s->why), "fd %d is %s (%.60s)", fd, type, s->path);
}

int mos_fd_table_read(pid_t pid, struct mos_fd_seen **out, size_t *count)
{
    char path[64];
    struct mos_fd_seen *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return mos_errno_status();
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            struct mos_fd_seen *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
        }
        fd_classify(pid, atoi(e->d_name), &v[n++]);
    }
    closedir(d);
    /* sorted by fd: the image lists them in order */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1].fd > v[j].fd; j--) {
            struct mos_fd_seen t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    /* fds sharing one open file description (dup, 2>&1) must share it again on restore,
     * or their offsets part ways */
    for (size_t i = 0; i < n; i++) {
        v[i].dup_of = -1;
        if (v[i].kind == 0 || v[i].kind == MOS_FD_STDIO)
            continue;
        for (size_t j = 0; j < i && v[i].dup_of < 0; j++)
            if (v[j].kind == v[i].kind &&
                syscall(SYS_kcmp, pid, pid, KCMP_FILE, v[j].fd, v[i].fd) == 0)
                v[i].dup_of = v[j].fd;
    }
    *out = v;
    *count = n;
    return 0;
}

static int is_shared_kind(uint32_t kind)
{
    return kind == MOS_FD_PIPE || kind == MOS_FD_UNIX;
}

/* The entry whose file another process holds as link ("pipe:[N]", "socket:[N]"): one of ours,
 * or the other end of one of our sockets. */
static void held_elsewhere(struct mos_fd_seen *fds, size_t n, const char *link, pid_t q)
{
    char peer[40];

    for (size_t i = 0; i < n; i++) {
        if (!is_shared_kind(fds[i].kind))
            continue;
        snprintf(peer, sizeof(peer), "socket:[%llu]", (unsigned long long)fds[i].peer);
        if (strcmp(fds[i].path, link) == 0 || (fds[i].peer && strcmp(peer, link) == 0)) {
            snprintf(fds[i].why, sizeof(fds[i].why), "fd %d is a %s shared with pid %d",
                     fds[i].fd, fds[i].kind == MOS_FD_PIPE ? "pipe" : "unix socket", (int)q);
            fds[i].kind = 0;
        }
    }
}

/* Another process's fd that is one of pid's pipes or sockets, or the other end of a socket (a
 * pipe names no other end, so every process's fds are looked at), makes it unable to travel:
 * its entries become kind 0. Processes we may not inspect are passed over: a user's job shares
 * nothing with them that the user could not see. Then a socket whose other end does not travel
 * cannot either. */
void mos_fd_own_check(pid_t pid, struct mos_fd_seen *fds, size_t n)
{
    char path[64], link[64];
    struct dirent *p, *e;
    size_t nshared = 0;
    DIR *procs;

    for (size_t i = 0; i < n; i++)
        nshared += is_shared_kind(fds[i].kind);
    if (nshared == 0 || !(procs = opendir("/proc")))
        return;
    while ((p = readdir(procs))) {
        pid_t q = (pid_t)atoi(p->d_name);
        if (q <= 0 || q == pid)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)q);
        DIR *dir = opendir(path);
        while (dir && (e = readdir(dir))) {
            snprintf(path, sizeof(path), "/proc/%d/fd/%.16s", (int)q, e->d_name);
            ssize_t len = e->d_name[0] == '.' ? -1 : readlink(path, link, sizeof(link) - 1);
            if (len < 7 || (strncmp(link, "pipe:[", 6) != 0 && strncmp(link, "socket:[", 8) != 0))
                continue;
            link[len] = '\0';
            held_elsewhere(fds, n, link, q);
        }
        if (dir)
            closedir(dir);
    }
    closedir(procs);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        if (fds[i].kind != MOS_FD_UNIX || !fds[i].peer)
            continue;
        snprintf(path, sizeof(path), "socket:[%llu]", (unsigned long long)fds[i].peer);
        while (k < n && !(fds[k].kind == MOS_FD_UNIX && strcmp(fds[k].path, path) == 0))
            k++;
        if (k == n) {
            fds[i].kind = 0;
            snprintf(fds[i].why, sizeof(fds[i].why),
                     "fd %d is a unix socket whose other end (%.40s) is not the process's own",
                     fds[i].fd, path);
        }
    }
}

static int status_field(pid_t pid, const char *name, long *value)
{
    char path[64], line[256];
    size_t nl = strlen(name);
    int rc = -ENOENT;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return mos_errno_status();
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
            *value = strtol(line + nl + 1, NULL, 10);
            rc = 0;
            break;
        }
    fclose(f);
    return rc;
}

/* The state letter of /proc/PID/stat, '?' when it cannot be read. */
static char task_state(pid_t pid)
{
    struct mos_proc_stat st;

    return mos_proc_stat_read(pid, &st) == 0 ? st.state : '?';
}

static int file_nonempty(const char *path)
{
    char c;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, &c, 1);
    close(fd);
    return n > 0;
}

#define REFUSE(...)                                                                           \
    do {                                                                                      \
        snprintf(reason, len, __VA_ARGS__);                                                   \
        rc = MOS_E_NOT_MIGRATABLE;                                                            \
        goto out;                                                                             \
    } while (0)

/* The shared mappings of an OpenMPI rank each come from a component a setting replaces: the
 * reason says which, so that a user can make the rank movable. */
static const char *mpi_hint(const char *path)
{
    static const struct {
        const char *part;
        const char *hint;
    } hints[] = {
        {"pmix_dstor", "; an OpenMPI rank: run mpirun with PMIX_MCA_gds=hash"},
        {"vader_segment", "; an OpenMPI rank: mpirun --mca btl tcp,self"},
        {"/dev/infiniband/", "; an OpenMPI rank: mpirun --mca pml ob1 --mca btl tcp,self"},
    };

    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
        if (strstr(path, hints[i].part))
            return hints[i].hint;
    return "";
}

/* Shared anonymous memory may travel in checkpoint mode if nothing else could see the copy
 * part from the original: no other process maps the object (every /proc/PID/maps is looked at;
 * those we may not read are passed over, as for pipes), this one maps no part of it twice, and
 * it is not so big that reading it whole would swamp the node. */
#define SHARED_ANON_MAX (1ull << 30)

static pid_t shared_anon_mapper(pid_t pid, const struct mos_vma_list *mine, uint64_t *at)
{
    struct dirent *p;
    DIR *procs = opendir("/proc");
    pid_t found = 0;

    while (procs && !found && (p = readdir(procs))) {
        pid_t q = (pid_t)atoi(p->d_name);
        struct mos_vma_list theirs;
        if (q <= 0 || q == pid || mos_vma_list_read(q, &theirs) != 0)
            continue;
        for (size_t i = 0; i < theirs.count && !found; i++)
            for (size_t k = 0; k < mine->count && !found; k++)
                if (mos_vma_shared_anon(&theirs.vmas[i]) && mos_vma_shared_anon(&mine->vmas[k]) &&
                    theirs.vmas[i].inode == mine->vmas[k].inode &&
                    theirs.vmas[i].dev_minor == mine->vmas[k].dev_minor &&
                    theirs.vmas[i].dev_major == mine->vmas[k].dev_major) {
                    found = q;
                    *at = mine->vmas[k].start;
                }
        mos_vma_list_free(&theirs);
    }
    if (procs)
        closedir(procs);
    return found;
}

static int stay_shared_anon(pid_t pid, const struct mos_vma_list *list, char *reason, size_t len)
{
    uint64_t total = 0, at = 0;
    int rc = 0, any = 0;

    for (size_t i = 0; i < list->count; i++) {
        const struct mos_vma *v = &list->vmas[i];
        if (!mos_vma_shared_anon(v))
            continue;
        any = 1;
        total += v->end - v->start;
        for (size_t k = 0; k < i; k++) {
            const struct mos_vma *o = &list->vmas[k];
            if (mos_vma_shared_anon(o) && o->inode == v->inode &&
                v->offset < o->offset + (o->end - o->start) &&
                o->offset < v->offset + (v->end - v->start))
                REFUSE("maps the same shared anonymous memory twice (at %#llx and %#llx)",
                       (unsigned long long)o->start, (unsigned long long)v->start);
        }
    }
    if (total > SHARED_ANON_MAX)
        REFUSE("has %llu MiB of shared anonymous memory (at most %llu MiB travel)",
               (unsigned long long)(total >> 20), SHARED_ANON_MAX >> 20);
    pid_t q = any ? shared_anon_mapper(pid, list, &at) : 0;
    if (q)
        REFUSE("shares anonymous memory with pid %d (at %#llx)", (int)q, (unsigned long long)at);
out:
    return rc;
}

int mos_vma_memfd(const struct mos_vma *v)
{
    return v->shared && mos_img_memfd_path_ok(v->path);
}

/* The memfd objects of pid (its fds' and its shared maps') that another process holds or maps
 * (every /proc/PID/fd and maps is looked at; those we may not read are passed over, as for
 * pipes): a copy would part from what the other sees. An fd of such an object cannot travel
 * (with close_other_fds it is left closed); a map of one refuses the process. */
struct memfd_id {
    dev_t dev;
    ino_t ino;
    uint64_t at; /* a map of it, 0 if none */
};

static size_t memfd_ids(const struct mos_fd_seen *fds, size_t n, const struct mos_vma_list *l,
                        struct memfd_id *ids, size_t max)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k < max; i++)
        if (fds[i].kind == MOS_FD_MEMFD)
            ids[k++] = (struct memfd_id){(dev_t)fds[i].dev, (ino_t)fds[i].ino, 0};
    for (size_t i = 0; i < l->count && k < max; i++)
        if (mos_vma_memfd(&l->vmas[i]))
            ids[k++] = (struct memfd_id){makedev(l->vmas[i].dev_major, l->vmas[i].dev_minor),
                                         (ino_t)l->vmas[i].inode, l->vmas[i].start};
    return k;
}

/* Object (dev, ino) is held or mapped by pid q too: our fds of it cannot travel; *at becomes
 * the address of a map of ours of it, if there is one. */
static void memfd_hit(struct mos_fd_seen *fds, size_t n, const struct memfd_id *ids, size_t k,
                      dev_t dev, ino_t ino, pid_t q, uint64_t *at)
{
    for (size_t j = 0; j < k; j++)
        if (ids[j].dev == dev && ids[j].ino == ino && ids[j].at && !*at)
            *at = ids[j].at;
    for (size_t i = 0; i < n; i++)
        if (fds[i].kind == MOS_FD_MEMFD && fds[i].dev == dev && fds[i].ino == ino) {
            fds[i].kind = 0;
            snprintf(fds[i].why, sizeof(fds[i].why), "fd %d is a memfd shared with pid %d",
                     fds[i].fd, (int)q);
        }
}

/* Another process q's fds and maps against ids: the first map of ours whose object it holds
 * or maps, or 0. */
static uint64_t memfd_shared_with(pid_t q, struct mos_fd_seen *fds, size_t n,
                                  const struct memfd_id *ids, size_t k)
{
    char path[64], link[32];
    struct dirent *e;
    struct stat st;
    struct mos_vma_list theirs;
    uint64_t at = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)q);
    DIR *dir = opendir(path);
    while (dir && (e = readdir(dir))) {
        snprintf(path, sizeof(path), "/proc/%d/fd/%.16s", (int)q, e->d_name);
        if (e->d_name[0] != '.' && readlink(path, link, sizeof(link)) >= 7 &&
            strncmp(link, "/memfd:", 7) == 0 && stat(path, &st) == 0)
            memfd_hit(fds, n, ids, k, st.st_dev, st.st_ino, q, &at);
    }
    if (dir)
        closedir(dir);
    if (mos_vma_list_read(q, &theirs) != 0)
        return at;
    for (size_t i = 0; i < theirs.count; i++) {
        const struct mos_vma *v = &theirs.vmas[i];
        if (mos_img_memfd_path_ok(v->path))
            memfd_hit(fds, n, ids, k, makedev(v->dev_major, v->dev_minor), (ino_t)v->inode, q,
                      &at);
    }
    mos_vma_list_free(&theirs);
    return at;
}

static int stay_memfds(pid_t pid, struct mos_fd_seen *fds, size_t n, char *reason, size_t len)
{
    struct memfd_id ids[2 * MOS_IMG_MAX_MEMFDS];
    struct mos_vma_list mine;
    struct dirent *p;
    int rc = mos_vma_list_read(pid, &mine);

    if (rc != 0)
        return rc;
    size_t k = memfd_ids(fds, n, &mine, ids, sizeof(ids) / sizeof(ids[0]));
    mos_vma_list_free(&mine);
    DIR *procs = k ? opendir("/proc") : NULL;
    while (procs && (p = readdir(procs))) {
        pid_t q = (pid_t)atoi(p->d_name);
        uint64_t at = q > 0 && q != pid ? memfd_shared_with(q, fds, n, ids, k) : 0;
        if (at)
            REFUSE("maps a memfd shared with pid %d (at %#llx)", (int)q, (unsigned long long)at);
    }
out:
    if (procs)
        closedir(procs);
    return rc;
}

static int stay_vmas(pid_t pid, int ckpt, char *reason, size_t len)
{
    struct mos_vma_list list;
    int rc = mos_vma_list_read(pid, &list);

    if (rc != 0)
        return rc;
    for (size_t i = 0; i < list.count; i++) {
        const struct mos_vma *v = &list.vmas[i];
        unsigned long long a = (unsigned long long)v->start;
        if ((mos_vma_shared_anon(v) || mos_vma_memfd(v)) && ckpt)
            continue; /* stay_shared_anon, stay_memfds */
        if (strncmp(v->path, "/SYSV", 5) == 0)
            REFUSE("uses SysV shared memory (at %#llx)", a);
        if (strncmp(v->path, "anon_inode:", 11) == 0)
            REFUSE("maps %s (at %#llx)", v->path + 11, a);
        if (v->shared && (v->prot & PROT_WRITE))
            REFUSE("has a shared writable mapping (%.80s at %#llx%s)",
                   v->path[0] ? v->path : "anonymous", a, mpi_hint(v->path));
        if (v->shared && (v->inode == 0 || !strncmp(v->path, "/dev/zero", 9)))
            REFUSE("has shared anonymous memory (at %#llx)", a);
        /* a private map of a deleted file travels as a copy; a shared one cannot */
        if (strstr(v->path, " (deleted)") && v->shared)
            REFUSE("shares a map of a deleted file or memfd (%.80s at %#llx)", v->path, a);
        if (v->path[0] == '[' && strcmp(v->path, "[heap]") && strcmp(v->path, "[stack]") &&
            strcmp(v->path, "[vdso]") && strcmp(v->path, "[vvar]") &&
            strcmp(v->path, "[vvar_vclock]") && strcmp(v->path, "[vsyscall]") &&
            strncmp(v->path, "[anon:", 6))
            REFUSE("has a special mapping %.40s", v->path);
        if (v->path[0] && v->path[0] != '/' && v->path[0] != '[')
            REFUSE("maps an unreachable file (%.80s)", v->path);
    }
    if (ckpt)
        rc = stay_shared_anon(pid, &list, reason, len);
out:
    mos_vma_list_free(&list);
    return rc;
}

/* A process's own sandbox does not travel: the image carries no seccomp filter and no
 * no_new_privs, so elsewhere it would run unconfined. Landlock has no per-process state in
 * /proc, but landlock_restrict_self demands no_new_privs or CAP_SYS_ADMIN in the caller's user
 * namespace: a plain user's domain shows as no_new_privs, or as a user namespace of its own.
 * A guest's filters and no_new_privs are mos's (the supervisor's and the guest filter): it
 * cannot add its own there, since seccomp, prctl, landlock_* and unshare are home calls. */
static int stay_sandbox(pid_t pid, const struct mos_dump_opts *opts, char *reason, size_t len)
{
    long seccomp = 0, nnp = 0;
    char mine[64], theirs[64], path[64];
    int rc;

    if ((rc = status_field(pid, "Seccomp", &seccomp)) != 0 ||
        (rc = status_field(pid, "NoNewPrivs", &nnp)) != 0)
        return rc;
    int ours = opts && opts->sandbox_ours;
    if (seccomp != 0 && !ours)
        REFUSE("has a seccomp filter of its own (it would run unfiltered elsewhere)");
    if (nnp && !ours)
        REFUSE("has no_new_privs set (a seccomp or Landlock sandbox would not travel)");
    snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
    ssize_t a = readlink("/proc/self/ns/user", mine, sizeof(mine) - 1);
    ssize_t b = readlink(path, theirs, sizeof(theirs) - 1);
    if (a < 0 || b < 0)
        REFUSE("has a user namespace that cannot be inspected");
    if (a != b || memcmp(mine, theirs, (size_t)a) != 0)
        REFUSE("runs in a user namespace of its own (its capabilities there, and a Landlock "
               "domain they allow, would not travel)");
out:
    return rc;
}

static int same_process(const struct mos_proc_ident *reg, const struct mos_proc_ident *now,
                        char *reason, size_t len)
{
    int rc = 0;

    if (now->start_time != reg->start_time)
        REFUSE("is not the registered process any more (started at tick %llu, not %llu: its "
               "pid was reused)", now->start_time, reg->start_time);
    if (now->ppid != reg->ppid)
        REFUSE("has a new parent (pid %d, registered under %d)", (int)now->ppid,
               (int)reg->ppid);
out:
    return rc;
}

static int ids_all(const unsigned *ids, unsigned want)
{
    for (int i = 0; i < MOS_ID_FIELDS; i++)
        if (ids[i] != want)
            return 0;
    return 1;
}

/* No more than uid's and gid's rights: what a set-id exec or a capability would add. */
static int plain_user(const struct mos_proc_ident *now, uid_t uid, gid_t gid, char *reason,
                      size_t len)
{
    unsigned uids[MOS_ID_FIELDS], gids[MOS_ID_FIELDS];
    int rc = 0;

    for (int i = 0; i < MOS_ID_FIELDS; i++) {
        uids[i] = (unsigned)now->uid[i];
        gids[i] = (unsigned)now->gid[i];
    }
    if (!ids_all(uids, (unsigned)uid))
        REFUSE("runs as uids %u/%u/%u/%u (real/effective/saved/fs), not only its owner's %u "
               "(a set-uid program?)", uids[0], uids[1], uids[2], uids[3], (unsigned)uid);
    if (!ids_all(gids, (unsigned)gid))
        REFUSE("runs as gids %u/%u/%u/%u (real/effective/saved/fs), not only its owner's %u "
               "(a set-gid program?)", gids[0], gids[1], gids[2], gids[3], (unsigned)gid);
    if (uid == 0)
        goto out; /* root has nothing more to gain */
    if (now->cap_eff || now->cap_prm || now->cap_amb)
        REFUSE("holds capabilities (CapEff %llx, CapPrm %llx, CapAmb %llx)",
               (unsigned long long)now->cap_eff, (unsigned long long)now->cap_prm,
               (unsigned long long)now->cap_amb);
    if (now->exe_setid < 0)
        REFUSE("has no program to inspect (it has exited?)");
    if (now->exe_setid)
        REFUSE("runs a set-uid or set-gid program");
    if (now->status_uid != uid)
        REFUSE("is not dumpable (a set-id program ran in it, or it asked so with "
               "PR_SET_DUMPABLE)");
out:
    return rc;
}

int mos_ident_compare(const struct mos_proc_ident *registered, const struct mos_proc_ident *now,
                      uid_t uid, gid_t gid, char *why, size_t len)
{
    int rc = same_process(registered, now, why, len);

    return rc != 0 ? rc : plain_user(now, uid, gid, why, len);
}

int mos_migrate_owner_check(pid_t pid, const struct mos_job_owner *o, char *reason, size_t len)
{
    struct mos_proc_ident now;
    int rc = mos_proc_ident_read(pid, &now);

    /* alive after the read: what was read was the registered process, not a pid reused */
    if (o->pidfd <= 0 || syscall(SYS_pidfd_send_signal, o->pidfd, 0, NULL, 0) != 0)
        REFUSE("is not the registered process any more (it has ended%s)",
               o->pidfd <= 0 ? ", or was never seen" : "");
    if (rc == 0)
        rc = mos_ident_compare(o->registered, &now, o->uid, o->gid, reason, len);
out:
    return rc;
}

int mos_stay_check(pid_t pid, const struct mos_dump_opts *opts, int frozen, char *reason,
                   size_t len)
{
    char path[96], target[64];
    long threads = 0, tracer = 0;
    struct mos_fd_seen *fds = NULL;
    size_t nfds = 0;
    int rc;

    /* first: nothing else is looked at in a process that is not the job's own */
    if (opts && opts->owner && (rc = mos_migrate_owner_check(pid, opts->owner, reason, len)))
        return rc;
    rc = status_field(pid, "Threads", &threads);
    if (rc == 0)
        rc = status_field(pid, "TracerPid", &tracer);
    if (rc != 0)
        return rc == -ENOENT ? -ESRCH : rc;
    if (threads < 1 || threads > (long)MOS_IMG_MAX_THREADS)
        REFUSE("has %ld threads (at most %u migrate)", threads, MOS_IMG_MAX_THREADS);
    if (tracer != 0 && !(frozen && tracer == getpid()))
        REFUSE("is traced by pid %ld", tracer);
    char state = task_state(pid);
    if (state == 'Z' || state == 'X')
        REFUSE("has exited (zombie)");
    /* injected calls would wake a job-control stop: leave stopped jobs alone */
    if (state == 'T' || (state == 't' && !frozen))
        REFUSE("is stopped (SIGSTOP or a debugger)");
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    if (readlink(path, target, sizeof(target)) < 0)
        REFUSE("has no executable to inspect (kernel thread, zombie or no permission)");
    snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
    char cwd[MOS_IMG_MAX_PATH];
    ssize_t n = readlink(path, cwd, sizeof(cwd) - 1);
    if (n > 0) {
        cwd[n] = '\0';
        if (strstr(cwd, " (deleted)") || cwd[0] != '/')
            REFUSE("works in a deleted or unreachable directory (%.80s)", cwd);
    }
    snprintf(path, sizeof(path), "/proc/%d/timers", (int)pid);
    if (file_nonempty(path))
        REFUSE("has POSIX timers (timer_create)");
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    if (file_nonempty(path))
        REFUSE("has child processes");
    rc = stay_sandbox(pid, opts, reason, len);
    if (rc == 0)
        rc = stay_vmas(pid, !(opts && opts->fds_at_home), reason, len); /* fds travel: checkpoint */
    if (rc != 0)
        goto out;
    if (opts && opts->fds_at_home)
        goto out;
    rc = mos_fd_table_read(pid, &fds, &nfds);
    if (rc != 0)
        goto out;
    mos_fd_own_check(pid, fds, nfds);
    if ((rc = stay_memfds(pid, fds, nfds, reason, len)) != 0)
        goto out;
    for (size_t i = 0; i < nfds; i++)
        if (fds[i].kind == 0 && !(opts && opts->close_other_fds))
            REFUSE("holds an fd that cannot travel: %s", fds[i].why);
out:
    free(fds);
    return rc;
}
