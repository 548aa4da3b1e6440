/* libFuzzer: the hosts file parser; accepted lists must be well-formed. */
#include "mos/placement_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mos_host_list h;
    char err[256];

    if (mos_host_list_parse((const char *)data, size, "fuzz", &h, err, sizeof(err)) != 0) {
        if (!strchr(err, ':') || strchr(err, '\n'))
            abort();
        return 0;
    }
    for (size_t i = 0; i < h.n; i++)
        if (h.hosts[i].slots == 0 || h.hosts[i].slots > MOS_HOST_MAX_SLOTS ||
            !(h.hosts[i].speed > 0) || !h.hosts[i].name[0])
            abort();
    mos_host_list_free(&h);
    return 0;
}
