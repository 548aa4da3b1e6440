/* libFuzzer target: any bytes given to the frame-header parser either fail cleanly or yield a
 * header within the limits. */
#include "mos/transport.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mos_wire_hdr h;

    if (mos_wire_hdr_decode(data, size, &h) == 0) {
        if (h.magic != MOS_WIRE_MAGIC || h.length > MOS_WIRE_MAX_BULK)
            abort();
    }
    return 0;
}
