/* Page sources and consumers: batched process_vm_readv / process_vm_writev.
 *
 * One call moves a whole frame: many remote iovecs (up to IOV_MAX) per system call, because
 * per-page calls are several times slower (DESIGN.md: 4 KiB calls 7x slower than 1 MiB). */
#include "tp_priv.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>

/* Move runs between our contiguous buffer and process pid; write selects the direction.
 * *moved: bytes moved before the first failure (a short count or EFAULT), when the caller
 * takes such a failure (tolerate_short: the rest of buf is left as it was). */
static int vm_transfer(pid_t pid, const struct mos_page_run *runs, size_t n, uint8_t *buf,
                       bool write, bool tolerate_short, uint64_t *moved)
{
    struct iovec remote[IOV_MAX];
    size_t i = 0;

    if (moved)
        *moved = 0;
    while (i < n) {
        size_t k = 0, bytes = 0;
        for (; i < n && k < IOV_MAX; i++, k++) {
            remote[k].iov_base = (void *)(uintptr_t)runs[i].addr;
            remote[k].iov_len = runs[i].npages * MOS_TP_PAGE_SIZE;
            bytes += remote[k].iov_len;
        }
        struct iovec local = {buf, bytes};
        ssize_t r = write ? process_vm_writev(pid, &local, 1, remote, k, 0)
                          : process_vm_readv(pid, &local, 1, remote, k, 0);
        if (tolerate_short && (r < 0 ? errno == EFAULT : (size_t)r < bytes)) {
            *moved += r > 0 ? (uint64_t)r : 0;
            return 0;
        }
        if (r < 0) {
            int rc = mos_errno_status();
            mos_err(TP_LOG, "process_vm_%s pid %d: %s", write ? "writev" : "readv", (int)pid,
                    mos_strerror(rc));
            return rc;
        }
        /* A short count means a remote range is not (or no longer) mapped. */
        if ((size_t)r != bytes) {
            mos_err(TP_LOG, "process_vm_%s pid %d: moved %zd of %zu bytes (range not mapped)",
                    write ? "writev" : "readv", (int)pid, r, bytes);
            return -EFAULT;
        }
        buf += bytes;
        if (moved)
            *moved += bytes;
    }
    return 0;
}

int tp_source_read(pid_t pid, const struct mos_page_run *runs, size_t n, uint8_t *buf)
{
    return vm_transfer(pid, runs, n, buf, false, false, NULL);
}

int tp_source_fill(mos_tp_conn_t *c, pid_t pid, const struct mos_page_run *runs, size_t n,
                   uint8_t *buf)
{
    bool live = c->live_check != NULL;
    uint64_t moved = 0, total = 0;
    int rc = vm_transfer(pid, runs, n, buf, false, live, &moved);

    if (rc != 0 || !live)
        return rc;
    for (size_t i = 0; i < n; i++)
        total += runs[i].npages * MOS_TP_PAGE_SIZE;
    /* a page read in part is not read: the whole page is zero */
    moved -= moved % MOS_TP_PAGE_SIZE;
    memset(buf + moved, 0, total - moved);
    return c->live_check(c->live_arg, runs, n, moved / MOS_TP_PAGE_SIZE);
}

int mos_tp_place_into_process(void *arg, const struct mos_page_run *runs, size_t n,
                              const uint8_t *data)
{
    return vm_transfer(*(pid_t *)arg, runs, n, (uint8_t *)data, true, false, NULL);
}

uint8_t *tp_place_buffer_locate(const struct mos_tp_place_buffer *b, const struct mos_page_run *run)
{
    uint64_t bytes = run->npages * MOS_TP_PAGE_SIZE;

    if (run->addr < b->origin || run->addr - b->origin > b->size ||
        bytes > b->size - (run->addr - b->origin)) {
        mos_err(TP_LOG, "page run 0x%llx+%llu pages outside the receive buffer",
                (unsigned long long)run->addr, (unsigned long long)run->npages);
        return NULL;
    }
    return b->base + (run->addr - b->origin);
}

int mos_tp_place_into_buffer(void *arg, const struct mos_page_run *runs, size_t n,
                             const uint8_t *data)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t *dst = tp_place_buffer_locate(arg, &runs[i]);
        if (!dst)
            return MOS_E_LIMIT;
        memcpy(dst, data, runs[i].npages * MOS_TP_PAGE_SIZE);
        data += runs[i].npages * MOS_TP_PAGE_SIZE;
    }
    return 0;
}
