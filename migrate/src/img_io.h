/* The image stream's provider interface (private to migrate/ and its tests): what a stream
 * does, filled by each provider (stream_fd.c, stream_tp.c; tests bring their own). A
 * provider's state embeds struct mos_img_io first. */
#ifndef MOS_MIGRATE_IMG_IO_H
#define MOS_MIGRATE_IMG_IO_H

#include "mos/migrate.h"
#include "mos/page_run.h"
#include "mos/transport.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct mos_img_io_ops {
    /* Write all of iov or fail: 0 or -errno / MOS_E_PEER_GONE. */
    int (*writev)(struct mos_img_io *io, const struct iovec *iov, int iovcnt);
    /* Read up to len bytes: > 0 bytes read, 0 at the end of the stream, or -errno. */
    ssize_t (*read)(struct mos_img_io *io, void *buf, size_t len);
    /* Optional, instead of read where the stream is memory already (a mapped file): point
     * *data at the next len bytes and consume them; valid until the io is closed. 0,
     * MOS_E_TRUNCATED, -ENOTSUP (use read from here on) or -errno. */
    int (*map)(struct mos_img_io *io, size_t len, const void **data);
    /* Optional page channel (a transport's bulk path). When the writing io has send_pages, the
     * capture sends the contents of readable VMAs as runs read straight from process pid
     * (frozen) after a BULK record, instead of PAGES records; 0 or a status, logged there.
     * The reading io's recv_pages then receives one such transfer: place(arg, runs, n, data)
     * once per frame; a non-zero return from place aborts the transfer and is returned.
     * *pages: pages received. 0 or a status. */
    int (*send_pages)(struct mos_img_io *io, pid_t pid, const struct mos_page_run *runs,
                      size_t n);
    int (*recv_pages)(struct mos_img_io *io, mos_page_place_fn place, void *arg,
                      uint64_t *pages);
    /* Optional, with send_pages: the same from a process that runs (live pre-copy, after a
     * PREBULK record), as mos_tp_bulk_send_live: check hears after each read how many leading
     * pages of those runs were read (the rest travel as zeros) and may end the transfer. */
    int (*send_pages_live)(struct mos_img_io *io, pid_t pid, const struct mos_page_run *runs,
                           size_t n, mos_tp_read_check_fn check, void *arg);
    /* Release the provider's state (the io itself included). */
    void (*close)(struct mos_img_io *io);
};

struct mos_img_io {
    const struct mos_img_io_ops *ops;
};

#endif
