/* memfd objects in checkpoint mode: captured once each, made again in the restorer (which
 * the husk's fds and VMAs then open through /proc/RESTORER/fd/N). */
#include "memfd.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE MOS_IMG_PAGE_SIZE

static struct memfd_obj *obj_find(struct memfd_objs *s, uint64_t dev, uint64_t ino)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].ino == ino && s->v[i].dev == dev)
            return &s->v[i];
    return NULL;
}

/* Where the object holds data: SEEK_DATA/SEEK_HOLE, so a sparse object costs what it holds. */
static int obj_extents(struct memfd_obj *o)
{
    size_t cap = 0, n = 0;
    off_t at = 0, size = (off_t)o->rec.size;

    while (at < size) {
        off_t d = lseek(o->fd, at, SEEK_DATA);
        if (d < 0 && errno == ENXIO)
            break;
        off_t h = d < 0 ? -1 : lseek(o->fd, d, SEEK_HOLE);
        if (h < 0)
            return mos_errno_status();
        uint64_t first = (uint64_t)d / PAGE, end = ((uint64_t)h + PAGE - 1) / PAGE;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            struct memfd_extent *grown = realloc(o->ext, (cap + 1) * sizeof(*grown));
            if (!grown)
                return -ENOMEM;
            o->ext = grown;
        }
        if (n > 0 && o->ext[n - 1].first + o->ext[n - 1].npages >= first) /* page-rounded */
            o->ext[n - 1].npages = end - o->ext[n - 1].first;
        else
            o->ext[n++] = (struct memfd_extent){first, end - first};
        at = (off_t)(end * PAGE);
    }
    if (!o->ext && !(o->ext = calloc(1, sizeof(*o->ext))))
        return -ENOMEM;
    o->ext[n] = (struct memfd_extent){0, 0}; /* the end */
    for (size_t i = 0; i < n; i++)
        o->rec.data_pages += o->ext[i].npages;
    return 0;
}

/* Takes fd (ours) in every case. */
static int obj_add(struct memfd_objs *s, pid_t pid, int fd, const char *path)
{
    struct stat st;
    struct statfs sf;
    int rc = 0;

    if (fstat(fd, &st) < 0 || fstatfs(fd, &sf) < 0) {
        rc = mos_errno_status();
        mos_err("migrate", "pid %d: inspecting %s: %s", (int)pid, path, mos_strerror(rc));
        close(fd);
        return rc;
    }
    if (obj_find(s, st.st_dev, st.st_ino)) {
        close(fd);
        return 0;
    }
    if (sf.f_type != TMPFS_MAGIC)
        rc = MOS_E_NOT_MIGRATABLE; /* hugetlbfs: its pages cannot be sized or read alike */
    else if (s->n == MOS_IMG_MAX_MEMFDS ||
             (s->bytes += (uint64_t)st.st_size) > MOS_IMG_MAX_MEMFD_BYTES)
        rc = MOS_E_NOT_MIGRATABLE;
    else if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4;
        struct memfd_obj *grown = realloc(s->v, cap * sizeof(*grown));
        if (!grown)
            rc = -ENOMEM;
        else {
            s->v = grown;
            s->cap = cap;
        }
    }
    if (rc != 0) {
        if (rc == MOS_E_NOT_MIGRATABLE)
            mos_err("migrate", "pid %d stays: %s %s", (int)pid, path,
                    sf.f_type != TMPFS_MAGIC ? "is a hugetlb memfd"
                                             : "is one memfd too many (at most 256, 1 GiB in all)");
        close(fd);
        return rc;
    }
    struct memfd_obj *o = &s->v[s->n];
    memset(o, 0, sizeof(*o));
    o->dev = st.st_dev;
    o->ino = st.st_ino;
    o->fd = fd;
    o->rec.ino = st.st_ino;
    o->rec.size = (uint64_t)st.st_size;
    int seals = fcntl(fd, F_GET_SEALS);
    o->rec.seals = seals < 0 ? F_SEAL_SEAL : (uint32_t)seals & MOS_IMG_MEMFD_SEALS;
    /* "/memfd:NAME (deleted)": checked by the caller's classification */
    size_t n = strlen(path) - 7 - 10;
    o->rec.name_len = (uint32_t)(n < MOS_IMG_MAX_MEMFD_NAME ? n : MOS_IMG_MAX_MEMFD_NAME);
    memcpy(o->name, path + 7, o->rec.name_len);
    s->n++;
    if ((rc = obj_extents(o)) != 0)
        mos_err("migrate", "pid %d: finding the data of %s: %s", (int)pid, path,
                mos_strerror(rc));
    return rc;
}

int mos_memfd_take_fd(struct memfd_objs *s, pid_t pid, int fd, const char *path)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int ours = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    int rc = ours < 0 ? mos_errno_status() : 0;

    if (pidfd >= 0)
        close(pidfd);
    if (rc != 0) {
        mos_err("migrate", "pid %d: taking a copy of fd %d (%s): %s", (int)pid, fd, path,
                mos_strerror(rc));
        return rc;
    }
    return obj_add(s, pid, ours, path);
}

int mos_memfd_take_map(struct memfd_objs *s, pid_t pid, uint64_t start, uint64_t end,
                       uint64_t ino, const char *path)
{
    char mf[96];

    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].ino == ino)
            return 0; /* one of its fds took it (the device is the one shmem mount's) */
    snprintf(mf, sizeof(mf), "/proc/%d/map_files/%llx-%llx", (int)pid,
             (unsigned long long)start, (unsigned long long)end);
    int fd = open(mf, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = mos_errno_status();
        mos_err("migrate", "pid %d stays: it maps %s at %#llx without an fd of it, and reading "
                "it through map_files failed (%s; it needs CAP_CHECKPOINT_RESTORE)",
                (int)pid, path, (unsigned long long)start, mos_strerror(rc));
        return rc == -EPERM || rc == -EACCES ? MOS_E_NOT_MIGRATABLE : rc;
    }
    return obj_add(s, pid, fd, path);
}

static int memfds_put_table(struct memfd_objs *s, struct mos_img_writer *w)
{
    struct mos_rec_memfds h = {.count = (uint32_t)s->n};
    size_t len = sizeof(h);

    for (size_t i = 0; i < s->n; i++)
        len += sizeof(s->v[i].rec) + s->v[i].rec.name_len;
    uint8_t *buf = malloc(len), *q = buf;
    if (!buf)
        return -ENOMEM;
    memcpy(q, &h, sizeof(h));
    q += sizeof(h);
    for (size_t i = 0; i < s->n; i++) {
        memcpy(q, &s->v[i].rec, sizeof(s->v[i].rec));
        q += sizeof(s->v[i].rec);
        memcpy(q, s->v[i].name, s->v[i].rec.name_len);
        q += s->v[i].rec.name_len;
    }
    struct iovec part = {buf, len};
    int rc = mos_img_put(w, MOS_REC_MEMFDS, &part, 1);
    free(buf);
    return rc;
}

/* Object i's data as MEMFD_PAGES records of at most MOS_IMG_MAX_RUN_PAGES pages; the last
 * page of an object whose size is not whole pages is padded with zeros. */
static int memfd_put_data(struct memfd_objs *s, size_t i, struct mos_img_writer *w,
                          uint8_t *buf, pid_t pid)
{
    const struct memfd_obj *o = &s->v[i];

    for (const struct memfd_extent *e = o->ext; e->npages; e++)
        for (uint64_t at = e->first; at < e->first + e->npages;) {
            uint64_t n = e->first + e->npages - at;
            n = n < MOS_IMG_MAX_RUN_PAGES ? n : MOS_IMG_MAX_RUN_PAGES;
            size_t want = (size_t)(n * PAGE), got = 0;
            while (got < want) {
                ssize_t k = pread(o->fd, buf + got, want - got, (off_t)(at * PAGE + got));
                if (k < 0) {
                    int rc = mos_errno_status();
                    mos_err("migrate", "pid %d: reading memfd:%s: %s", (int)pid, o->name,
                            mos_strerror(rc));
                    return rc;
                }
                if (k == 0)
                    break;
                got += (size_t)k;
            }
            memset(buf + got, 0, want - got);
            struct mos_rec_memfd_pages h = {.index = (uint32_t)i, .first = at, .npages = n};
            struct iovec parts[2] = {{&h, sizeof(h)}, {buf, want}};
            int rc = mos_img_put(w, MOS_REC_MEMFD_PAGES, parts, 2);
            if (rc != 0)
                return rc;
            at += n;
        }
    return 0;
}

int mos_memfds_put(struct memfd_objs *s, struct mos_img_writer *w, pid_t pid)
{
    int rc = memfds_put_table(s, w);
    uint8_t *buf = NULL;

    if (rc == 0 && s->n && !(buf = malloc((size_t)MOS_IMG_MAX_RUN_PAGES * PAGE)))
        rc = -ENOMEM;
    for (size_t i = 0; i < s->n && rc == 0; i++)
        rc = memfd_put_data(s, i, w, buf, pid);
    free(buf);
    return rc;
}

void mos_memfds_free(struct memfd_objs *s)
{
    for (size_t i = 0; i < s->n; i++) {
        close(s->v[i].fd);
        free(s->v[i].ext);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* ---- restore */

static int memfd_fill(void *arg, uint32_t index, uint64_t first, uint64_t npages,
                      const uint8_t *data)
{
    const struct mos_img_memfd *o = &((const struct mos_img_meta *)arg)->memfds[index];
    uint64_t off = first * PAGE, len = npages * PAGE;

    if (off + len > o->o.size) /* the last page's padding (checked: within the size's page) */
        len = o->o.size - off;
    for (uint64_t done = 0; done < len;) {
        ssize_t k = pwrite(o->fd, data + done, (size_t)(len - done), (off_t)(off + done));
        if (k <= 0) {
            int rc = k < 0 ? mos_errno_status() : -EIO;
            mos_err("migrate", "cannot restore memfd:%s: writing its data: %s", o->name,
                    mos_strerror(rc));
            return rc;
        }
        done += (uint64_t)k;
    }
    return 0;
}

int mos_memfds_make(struct mos_img_reader *rd, struct mos_img_meta *m)
{
    for (uint32_t i = 0; i < m->nmemfds; i++) {
        struct mos_img_memfd *o = &m->memfds[i];
        o->fd = (int)syscall(SYS_memfd_create, o->name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (o->fd < 0 || ftruncate(o->fd, (off_t)o->o.size) < 0) {
            int rc = mos_errno_status();
            mos_err("migrate", "cannot restore memfd:%s (%llu bytes): %s", o->name,
                    (unsigned long long)o->o.size, mos_strerror(rc));
            return rc;
        }
    }
    return mos_img_memfd_data_read(rd, m, memfd_fill, m);
}

int mos_memfds_seal(struct mos_img_meta *m)
{
    int rc = 0;

    for (uint32_t i = 0; i < m->nmemfds; i++) {
        struct mos_img_memfd *o = &m->memfds[i];
        if (rc == 0 && o->o.seals && fcntl(o->fd, F_ADD_SEALS, (int)o->o.seals) < 0) {
            rc = mos_errno_status();
            mos_err("migrate", "cannot restore memfd:%s: its seals %#x: %s", o->name,
                    o->o.seals, mos_strerror(rc));
        }
        close(o->fd);
        o->fd = -1;
    }
    return rc;
}
