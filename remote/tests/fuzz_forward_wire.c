/* libFuzzer target: the deputy's and supervisor's message decoders, and the link's frame header
 * (the shared mos frame header with the link's type table), on arbitrary bytes. A decoded
 * message must stay inside the input and within the limits; a decoded header must be within
 * its type's limit and encode back to the same bytes. */
#include "../src/forward_priv.h"
#include "mos/status.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_bufs(const struct fwd_buf *bufs, uint8_t n, const uint8_t *data, size_t size)
{
    if (n > FWD_NARGS)
        abort();
    for (uint8_t i = 0; i < n; i++) {
        if (bufs[i].argidx >= FWD_NARGS || bufs[i].len > FWD_MAX_IO)
            abort();
        if (bufs[i].data && (bufs[i].data < data || bufs[i].data + bufs[i].len > data + size))
            abort();
    }
}

static void check_header(const uint8_t *data, size_t size)
{
    uint8_t again[MOS_FRAME_HDR_BYTES];
    struct mos_frame_hdr h;
    int rc = mos_frame_hdr_decode(&fwd_proto, data, size, &h);

    if (rc == MOS_E_TRUNCATED && size >= MOS_FRAME_HDR_BYTES)
        abort();
    if (rc == MOS_E_PROTO || rc == MOS_E_VERSION || rc == MOS_E_TRUNCATED)
        return;
    if (rc != 0 || h.length > FWD_MAX_PAYLOAD || !fwd_proto.length_ok(h.type, h.length))
        abort();
    mos_frame_hdr_encode(&fwd_proto, h.type, h.length, again);
    if (memcmp(again, data, sizeof(again)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fwd_call c;
    struct fwd_result r;

    check_header(data, size);
    if (fwd_call_decode(data, size, &c) == 0)
        check_bufs(c.bufs, c.nbufs, data, size);
    if (fwd_result_decode(data, size, &r) == 0)
        check_bufs(r.bufs, r.nbufs, data, size);
    return 0;
}
