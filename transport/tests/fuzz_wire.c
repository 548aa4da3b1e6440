/* libFuzzer target for every parser of the transport's wire format: the frame header (the
 * shared mos frame header and the transport's id), the page-run table of a frame (tcp frame or
 * verbs slot) and the capability hello. Any input either fails cleanly or yields values within
 * the limits, and a header that decodes encodes back to the same bytes. */
#include "mos/status.h"
#include "mos/transport.h"
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_hdr(const uint8_t *data, size_t size)
{
    uint8_t again[MOS_WIRE_HDR_BYTES];
    struct mos_wire_hdr h;
    int rc = mos_wire_hdr_decode(data, size, &h);

    if (rc != 0) {
        if (rc != MOS_E_PROTO && rc != MOS_E_VERSION && rc != MOS_E_TRUNCATED)
            abort();
        if (rc == MOS_E_TRUNCATED && size >= MOS_WIRE_HDR_BYTES)
            abort();
        return;
    }
    if (h.type < 1 || h.type > MOS_WIRE_TYPE_MAX || h.length > mos_wire_payload_limit(h.type))
        abort();
    mos_wire_hdr_make(h.type, h.length, h.id, again);
    if (memcmp(again, data, sizeof(again)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mos_page_run runs[MOS_WIRE_MAX_RUNS];
    struct mos_wire_hello hello;
    const uint8_t *pages;
    size_t n;

    check_hdr(data, size);
    if (size > 0 && mos_wire_runs_decode(data + 1, size - 1, runs, 1u + data[0] * 16u, &n, &pages) == 0) {
        uint64_t total = 0;
        if (n == 0 || n > 1u + data[0] * 16u)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (runs[i].npages == 0 || runs[i].addr % MOS_TP_PAGE_SIZE)
                abort();
            total += runs[i].npages;
        }
        if (pages + total * MOS_TP_PAGE_SIZE != data + size)
            abort();
    }
    if (mos_wire_hello_decode(data, size, &hello) == 0) {
        if (hello.n_qps < 1 || hello.n_qps > 16 || hello.slot_bytes > MOS_WIRE_MAX_BULK)
            abort();
    }
    return 0;
}
