/* Fuzz the image reader. Random bytes rarely get past the record checksums, so the input is
 * read as edits to a valid image built here: (record, offset, byte) patches applied to the
 * payloads before the checksums are computed (so the field checks, not the checksum, must
 * catch them), then optionally one raw byte flip and a truncation of the stream. Half the
 * inputs use the bulk form of the image (a BULK record, its runs delivered by the io's page
 * channel; the run table is one more record the edits reach). */
#include "image_template.h"

#include "mos/log.h"
#include "mos/status.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rec recs[16];
    struct membuf mb = {0};
    struct mos_img_io *io = &mb.io;
    struct mos_img_writer w = {.io = io};

    io->ops = &mem_ops;
    struct mos_image_info info;

    mos_log_set_sink(quiet, NULL);
    memset(recs, 0, sizeof(recs));
    int bulk = (size & 2) != 0;
    int n = template_build(recs, bulk);
    if (size < 4)
        return 0;
    uint16_t cut = (uint16_t)(data[0] | data[1] << 8);
    uint8_t flip = data[2], drop = data[3];
    for (size_t i = 4; i + 4 <= size; i += 4) {
        struct rec *r = bulk && data[i] % (n + 1) == n ? &recs[15] : &recs[data[i] % n];
        size_t off = (size_t)(data[i + 1] | data[i + 2] << 8);
        if (r->len)
            r->buf[off % r->len] = data[i + 3];
    }
    for (int k = 0; k < n; k++) {
        if (drop && drop % 16 == k + 1)
            continue; /* a record left out */
        struct iovec part = {recs[k].buf, recs[k].len};
        mos_img_put(&w, recs[k].magic, &part, 1);
    }
    if (flip && mb.len)
        mb.data[(size_t)flip * 37 % mb.len] ^= flip;
    if (cut && cut < mb.len)
        mb.len = cut;
    if (size & 1)
        io->ops = &mem_map_ops;
    if (bulk) {
        io->ops = &mem_bulk_ops;
        mb.runs = recs[15].buf;
        mb.runs_len = recs[15].len;
    }
    int rc = mos_image_info_read(io, &info);
    if (rc == 0)
        mos_image_info_free(&info);
    /* no edit at all: the template itself must read, or the fuzzing exercises nothing */
    if (rc != 0 && size < 8 && !cut && !flip && !drop)
        abort();
    free(mb.data);
    return 0;
}
