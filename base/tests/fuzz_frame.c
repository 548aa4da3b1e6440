/* libFuzzer target: the shared frame header decoder (mos/frame.h) on arbitrary bytes, as a
 * whole frame and as a header alone, with extra fixed header bytes taken from the input. A
 * decoded frame must lie inside the input, be within its type's limits, and its header must
 * encode back to the very bytes it came from; a failure is one of the three statuses. */
#include "mos/frame.h"
#include "mos/status.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Types 1..4: up to 0, 16, 4096 and 1 MiB bytes; type 5 exactly 8. */
static bool length_ok(uint16_t type, uint32_t length)
{
    static const uint32_t max[] = {0, 0, 16, 4096, 1u << 20};

    if (type == 5)
        return length == 8;
    return type >= 1 && type <= 4 && length <= max[type];
}

static const struct mos_frame_proto proto = {
    .magic = MOS_FRAME_MAGIC('F', 'U', 'Z', 'Z'),
    .version = 1,
    .length_ok = length_ok,
};

static void check_status(int rc, size_t size, size_t need)
{
    if (rc != MOS_E_PROTO && rc != MOS_E_VERSION && rc != MOS_E_TRUNCATED)
        abort();
    if (rc == MOS_E_TRUNCATED && size >= need)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t again[MOS_FRAME_HDR_BYTES];
    struct mos_frame_hdr h, whole;
    size_t extra = size ? data[0] % 24 : 0, used = 0;
    const uint8_t *frame = size ? data + 1 : data;
    size_t len = size ? size - 1 : 0;
    int rc = mos_frame_hdr_decode(&proto, frame, len, &h);

    if (rc != 0) {
        check_status(rc, len, MOS_FRAME_HDR_BYTES);
        if (mos_frame_decode(&proto, frame, len, MOS_FRAME_HDR_BYTES + extra, &whole, &used) != rc)
            abort();
        return 0;
    }
    if (!length_ok(h.type, h.length))
        abort();
    mos_frame_hdr_encode(&proto, h.type, h.length, again);
    if (memcmp(again, frame, sizeof(again)) != 0)
        abort();
    rc = mos_frame_decode(&proto, frame, len, MOS_FRAME_HDR_BYTES + extra, &whole, &used);
    if (rc != 0) {
        check_status(rc, len, MOS_FRAME_HDR_BYTES + extra + h.length);
        return 0;
    }
    if (whole.type != h.type || whole.length != h.length ||
        used != MOS_FRAME_HDR_BYTES + extra + h.length || used > len)
        abort();
    return 0;
}
