/* libFuzzer target: the receiving side of a tcp bulk stream (tp_bulk_consume, what
 * mos_tp_bulk_recv runs on the bulk socket) fed from memory: page-run frames and the end
 * marker as a peer holding the key may send them (the connection's bulk key is all zero here;
 * the seeds, from mos-fuzz-bulk-seeds, carry the tags a real sender makes with it). The first byte picks the consumer: the
 * buffer placer (pages read straight into a 16-page region, no copy) or a copying consumer
 * that reads every byte it is handed. Whatever the stream, the frame buffer and the region are
 * never overrun (ASan), a failure is a known status, and a success hands over exactly the
 * pages the end marker counts. */
#include "mos/log.h"
#include "mos/status.h"
#include "tp_priv.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOT_BYTES (8u * MOS_TP_PAGE_SIZE)
#define MAX_RUNS 64u
#define REGION_PAGES 16u
#define ORIGIN 0x10000000ull

struct mem_in {
    const uint8_t *p;
    size_t left;
};

static int mem_read_iov(void *arg, struct iovec *iov, int n)
{
    struct mem_in *m = arg;
    int any = 0;

    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len > m->left) {
            int some = any || m->left > 0;
            m->left = 0;
            return some ? MOS_E_TRUNCATED : MOS_E_PEER_GONE;
        }
        memcpy(iov[i].iov_base, m->p, iov[i].iov_len);
        m->p += iov[i].iov_len, m->left -= iov[i].iov_len;
        any |= iov[i].iov_len > 0;
    }
    return 0;
}

struct copy_sink {
    uint64_t pages;
    uint8_t sum;
};

/* Reads every byte it is handed (ASan says if one lies outside the frame). */
static int copy_place(void *arg, const struct mos_page_run *runs, size_t n, const uint8_t *data)
{
    struct copy_sink *s = arg;

    for (size_t i = 0; i < n; i++) {
        if (runs[i].npages == 0 || runs[i].addr % MOS_TP_PAGE_SIZE)
            abort();
        for (uint64_t b = 0; b < runs[i].npages * MOS_TP_PAGE_SIZE; b++)
            s->sum ^= data[b];
        data += runs[i].npages * MOS_TP_PAGE_SIZE;
        s->pages += runs[i].npages;
    }
    return 0;
}

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mos_page_run runs[MAX_RUNS];
    static struct iovec iov[MAX_RUNS];
    mos_tp_conn_t c;
    struct mos_tp_bulk_stats st = {0, 0};
    struct copy_sink sink = {0, 0};

    if (size < 1)
        return 0;
    mos_log_set_sink(quiet, NULL);
    memset(&c, 0, sizeof(c));
    c.slot_bytes = SLOT_BYTES;
    strcpy(c.peer, "fuzz");
    uint8_t *frame = malloc(SLOT_BYTES), *region = malloc(REGION_PAGES * MOS_TP_PAGE_SIZE);
    if (!frame || !region)
        abort();
    struct mos_tp_place_buffer buf = {region, ORIGIN, REGION_PAGES * MOS_TP_PAGE_SIZE};
    struct mem_in m = {data + 1, size - 1};
    struct tp_bulk_in in = {mem_read_iov, &m};
    struct tp_bulk_rx rx = {frame, runs, iov, MAX_RUNS};
    int placer = data[0] & 1;
    int rc = tp_bulk_consume(&c, &in, &rx, placer ? mos_tp_place_into_buffer : copy_place,
                             placer ? (void *)&buf : (void *)&sink, &st);

    if (rc == 0) {
        if (c.broken || (!placer && st.pages != sink.pages) ||
            (placer && st.pages > st.frames * (SLOT_BYTES / MOS_TP_PAGE_SIZE)))
            abort();
    } else if (rc != -ECANCELED && rc != MOS_E_PROTO && rc != MOS_E_VERSION &&
               rc != MOS_E_TRUNCATED && rc != MOS_E_PEER_GONE && rc != MOS_E_LIMIT &&
               rc != MOS_E_TAMPERED) {
        abort();
    } else if (rc != -ECANCELED && !c.broken) {
        abort(); /* a malformed stream cannot be read on */
    }
    free(frame);
    free(region);
    return 0;
}
