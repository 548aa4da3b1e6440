/* libFuzzer target: the deputy's and supervisor's message decoders on arbitrary bytes. A
 * decoded message must stay inside the input and within the limits. */
#include "../src/forward_priv.h"

#include <stdint.h>
#include <stdlib.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fwd_call c;
    struct fwd_result r;

    if (fwd_call_decode(data, size, &c) == 0)
        check_bufs(c.bufs, c.nbufs, data, size);
    if (fwd_result_decode(data, size, &r) == 0)
        check_bufs(r.bufs, r.nbufs, data, size);
    return 0;
}
