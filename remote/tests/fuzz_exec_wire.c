/* libFuzzer target: the exec link's frame decoder (the shared mos frame header with the exec
 * link's type table, then the payload checks) on arbitrary bytes, frame after frame as a
 * link end reads them. A decoded frame must lie inside the input, within its type's limits,
 * and encode back to the very bytes it came from. */
#include "../src/exec_priv.h"
#include "mos/status.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct mos_exec_frame *f, const uint8_t *at, size_t used,
                  const uint8_t *data, size_t size)
{
    static uint8_t again[MOS_EXEC_HDR_BYTES + MOS_EXEC_MAX_DATA];
    size_t n = 0;

    if (used < MOS_EXEC_HDR_BYTES || at + used > data + size)
        abort();
    if (f->data && (f->data < at || f->data + f->len > at + used || f->len > MOS_EXEC_MAX_DATA))
        abort();
    if (mos_exec_frame_encode(f, again, sizeof(again), &n) != 0 || n != used ||
        memcmp(again, at, n) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (off < size) {
        struct mos_exec_frame f;
        size_t used = 0;
        int rc = mos_exec_frame_decode(data + off, size - off, &f, &used);
        if (rc != 0) {
            if (rc != MOS_E_TRUNCATED && rc != MOS_E_PROTO && rc != MOS_E_VERSION)
                abort();
            break;
        }
        check(&f, data + off, used, data, size);
        off += used;
    }
    return 0;
}
