/* libFuzzer: the communication matrix parser must accept or reject any bytes with one error
 * line, never crash, and whatever it accepts must write and parse back to the same matrix.
 * Each input is parsed twice: as it is (header handling) and behind a valid header, so the
 * fuzzer reaches the entry lines without having to discover the magic first. */
#include "mos/placement_map.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one(const char *text, size_t size)
{
    struct mos_comm_matrix m, back;
    char err[256], *buf = NULL;
    size_t len = 0;

    if (mos_comm_matrix_parse(text, size, "fuzz", &m, err, sizeof(err)) != 0) {
        if (!strchr(err, ':') || strchr(err, '\n'))
            abort(); /* errors are one line naming file and line */
        return;
    }
    if (m.n > 64) { /* keep the round trip cheap */
        mos_comm_matrix_free(&m);
        return;
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char header[] = "mos-comm-matrix 1\nranks 8\n";
    char *framed;

    check_one((const char *)data, size);
    framed = malloc(sizeof(header) - 1 + size);
    if (!framed)
        return 0;
    memcpy(framed, header, sizeof(header) - 1);
    memcpy(framed + sizeof(header) - 1, data, size);
    check_one(framed, sizeof(header) - 1 + size);
    free(framed);
    return 0;
}
