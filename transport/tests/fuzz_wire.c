/* libFuzzer target for every parser of the transport's wire format: the frame header, the
 * page-run table of a frame (tcp frame or verbs slot) and the capability hello. Any input
 * either fails cleanly or yields values within the limits. */
#include "mos/transport.h"
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mos_page_run runs[MOS_WIRE_MAX_RUNS];
    struct mos_wire_hello hello;
    struct mos_wire_hdr h;
    const uint8_t *pages;
    size_t n;

    if (mos_wire_hdr_decode(data, size, &h) == 0) {
        if (h.magic != MOS_WIRE_MAGIC || h.length > mos_wire_payload_limit(h.type))
            abort();
    }
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
