/* libFuzzer: the communication matrix parser must accept or reject any bytes with one error
 * line, never crash, and whatever it accepts must write and parse back to the same matrix. */
#include "mos/placement_map.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mos_comm_matrix m, back;
    char err[256], *buf = NULL;
    size_t len = 0;

    if (mos_comm_matrix_parse((const char *)data, size, "fuzz", &m, err, sizeof(err)) != 0) {
        if (!strchr(err, ':') || strchr(err, '\n'))
            abort(); /* errors are one line naming file and line */
        return 0;
    }
    if (m.n > 64) { /* keep the round trip cheap */
        mos_comm_matrix_free(&m);
        return 0;
    }
    FILE *f = open_memstream(&buf, &len);
    if (!f || mos_comm_matrix_write(&m, f) != 0)
        abort();
    fclose(f);
    if (mos_comm_matrix_parse(buf, len, "back", &back, err, sizeof(err)) != 0 || back.n != m.n ||
        memcmp(back.bytes, m.bytes, (size_t)m.n * m.n * sizeof(uint64_t)) != 0)
        abort();
    free(buf);
    mos_comm_matrix_free(&back);
    mos_comm_matrix_free(&m);
    return 0;
}
