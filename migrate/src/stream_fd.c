/* The image stream over a file descriptor: a file (a checkpoint), a pipe or a socket. */
#include "img_io.h"

#include "mos/status.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

struct img_io_fd {
    struct mos_img_io io;
    int fd;
    int not_socket; /* writes use writev, not sendmsg */
    const uint8_t *map_base; /* a regular file being read, mapped on first use */
    size_t map_len, map_pos;
};

static int fd_writev(struct mos_img_io *base, const struct iovec *iov_in, int iovcnt)
{
    struct img_io_fd *io = (struct img_io_fd *)base;
    struct iovec iov[64];
    int n = 0;

    if (iovcnt > 64)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++)
        if (iov_in[i].iov_len)
            iov[n++] = iov_in[i];
    struct iovec *cur = iov;
    while (n > 0) {
        /* sendmsg on sockets: a peer gone is EPIPE, not SIGPIPE ending the whole program */
        struct msghdr msg = {.msg_iov = cur, .msg_iovlen = (size_t)n};
        ssize_t w = io->not_socket ? -1 : sendmsg(io->fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && !io->not_socket && errno == ENOTSOCK)
            io->not_socket = 1;
        if (io->not_socket)
            w = writev(io->fd, cur, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == EPIPE || errno == ECONNRESET ? MOS_E_PEER_GONE : mos_errno_status();
        while (n > 0 && (size_t)w >= cur->iov_len) {
            w -= (ssize_t)cur->iov_len;
            cur++;
            n--;
        }
        if (n > 0) {
            cur->iov_base = (char *)cur->iov_base + w;
            cur->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static ssize_t fd_read(struct mos_img_io *base, void *buf, size_t len)
{
    struct img_io_fd *io = (struct img_io_fd *)base;

    for (;;) {
        ssize_t n = read(io->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == ECONNRESET ? MOS_E_PEER_GONE : mos_errno_status();
    }
}

/* A regular file is read through one mapping: no copy into a buffer before the pages are
 * checked and written into the process. Pipes and sockets answer -ENOTSUP. */
static int fd_map(struct mos_img_io *base, size_t len, const void **data)
{
    struct img_io_fd *io = (struct img_io_fd *)base;

    if (!io->map_base) {
        struct stat st;
        off_t pos = lseek(io->fd, 0, SEEK_CUR);
        if (fstat(io->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0 || pos < 0)
            return -ENOTSUP;
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, io->fd, 0);
        if (m == MAP_FAILED)
            return -ENOTSUP;
        madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
        io->map_base = m;
        io->map_len = (size_t)st.st_size;
        io->map_pos = (size_t)pos;
    }
    if (io->map_len - io->map_pos < len) {
        io->map_pos = io->map_len;
        return MOS_E_TRUNCATED;
    }
    *data = io->map_base + io->map_pos;
    io->map_pos += len;
    return 0;
}

static void fd_close(struct mos_img_io *base)
{
    struct img_io_fd *io = (struct img_io_fd *)base;

    if (io->map_base)
        munmap((void *)io->map_base, io->map_len);
    free(io);
}

static const struct mos_img_io_ops fd_ops = {
    .writev = fd_writev,
    .read = fd_read,
    .map = fd_map,
    .close = fd_close,
};

int mos_img_io_fd_open(int fd, struct mos_img_io **out)
{
    struct img_io_fd *io = calloc(1, sizeof(*io));

    if (!io)
        return -ENOMEM;
    io->io.ops = &fd_ops;
    io->fd = fd;
    *out = &io->io;
    return 0;
}

void mos_img_io_close(struct mos_img_io *io)
{
    if (io)
        io->ops->close(io);
}
