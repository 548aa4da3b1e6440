/* Writes fuzz_bulk's seed corpus: tcp bulk streams as a peer of the fuzz target's connection
 * (all-zero bulk key, counters from 0) sends them, every frame and end marker tagged with the
 * sender's own code (tp_frame_tag, tp_end_tag), so that the fuzzer starts past the tag checks.
 *
 *   mos-fuzz-bulk-seeds DIR      (transport/tests/corpus/fuzz_bulk) */
#include "tp_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORIGIN 0x10000000ull /* fuzz_bulk.c's region */

struct stream {
    mos_tp_conn_t c; /* zeroed: the fuzz target's keys and counters */
    uint8_t *buf;
    size_t len;
};

static void put(struct stream *s, const void *p, size_t n)
{
    if (!(s->buf = realloc(s->buf, s->len + n)))
        abort();
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

/* One frame of runs, page bytes made from the address; flip: one bit changed after tagging. */
static void frame(struct stream *s, const struct mos_page_run *runs, size_t k, int flip)
{
    size_t table = mos_wire_runs_table_bytes(k), pages = 0;
    uint8_t hdr[MOS_WIRE_HDR_BYTES], tag[MOS_WIRE_FRAME_TAG_BYTES];

    for (size_t i = 0; i < k; i++)
        pages += runs[i].npages;
    size_t body = table + pages * MOS_TP_PAGE_SIZE;
    uint8_t *b = calloc(1, body);
    if (!b)
        abort();
    mos_wire_runs_encode(runs, k, b);
    for (size_t i = table; i < body; i++)
        b[i] = (uint8_t)(i * 131 + runs[0].addr / MOS_TP_PAGE_SIZE);
    struct iovec whole = {b, body};
    tp_frame_tag(&s->c, s->c.frames_tx++, &whole, 1, tag);
    if (flip)
        b[body - 1] ^= 1;
    mos_wire_hdr_make(MOS_WIRE_PAGE_RUN, (uint32_t)(body + sizeof(tag)), 0, hdr);
    put(s, hdr, sizeof(hdr));
    put(s, b, body);
    put(s, tag, sizeof(tag));
    free(b);
}

static void end(struct stream *s, uint64_t frames, uint64_t pages)
{
    uint8_t hdr[MOS_WIRE_HDR_BYTES], e[MOS_WIRE_BULK_END_BYTES];

    mos_put_le64(e, frames);
    mos_put_le64(e + 8, pages);
    tp_end_tag(&s->c, e);
    mos_wire_hdr_make(MOS_WIRE_BULK_END, sizeof(e), 0, hdr);
    put(s, hdr, sizeof(hdr));
    put(s, e, sizeof(e));
}

static void save(const char *dir, const char *name, struct stream *s, size_t len, int placer)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s_%s", dir, placer ? "placer" : "copy", name);
    if (!(f = fopen(path, "wb")) || fputc(placer, f) == EOF || fwrite(s->buf, 1, len, f) != len ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

int main(int argc, char **argv)
{
    struct mos_page_run one = {ORIGIN + 2 * MOS_TP_PAGE_SIZE, 3}, two[2] = {{ORIGIN, 1}, {ORIGIN + 8 * MOS_TP_PAGE_SIZE, 2}};
    struct mos_page_run below = {ORIGIN - MOS_TP_PAGE_SIZE, 1}, beyond = {ORIGIN + 15 * MOS_TP_PAGE_SIZE, 2};
    struct mos_page_run big = {ORIGIN, 8};
    struct stream s = {0};

    if (argc != 2) {
        fprintf(stderr, "usage: mos-fuzz-bulk-seeds DIR\n");
        return 2;
    }
    for (int placer = 0; placer < 2; placer++) {
        frame(&s, &one, 1, 0), end(&s, 1, 3), save(argv[1], "one_frame", &s, s.len, placer);
        frame(&s, &one, 1, 0), frame(&s, two, 2, 0), end(&s, 2, 6);
        save(argv[1], "two_frames", &s, s.len, placer);
        end(&s, 0, 0), save(argv[1], "empty_send", &s, s.len, placer);
        frame(&s, two, 1, 0), end(&s, MOS_WIRE_BULK_ABORTED, 0), save(argv[1], "aborted", &s, s.len, placer);
        frame(&s, two, 1, 0), end(&s, 2, 1), save(argv[1], "counts_differ", &s, s.len, placer);
        frame(&s, &one, 1, 0), end(&s, 1, 3), save(argv[1], "truncated", &s, s.len / 2, placer);
        frame(&s, &one, 1, 1), end(&s, 1, 3), save(argv[1], "forged_page", &s, s.len, placer);
        frame(&s, &one, 1, 0);
        uint8_t *again = malloc(s.len);
        size_t first = s.len;
        if (!again)
            abort();
        memcpy(again, s.buf, first);
        put(&s, again, first); /* the same frame again: its number is the first's */
        free(again);
        end(&s, 2, 6), save(argv[1], "replayed_frame", &s, s.len, placer);
    }
    frame(&s, &big, 1, 0), end(&s, 1, 8), save(argv[1], "frame_over_slot", &s, s.len, 0);
    frame(&s, &below, 1, 0), end(&s, 1, 1), save(argv[1], "below_origin", &s, s.len, 1);
    frame(&s, &beyond, 1, 0), end(&s, 1, 2), save(argv[1], "outside_region", &s, s.len, 1);
    /* a control header where a frame is due */
    uint8_t hdr[MOS_WIRE_HDR_BYTES + 3] = {0};
    mos_wire_hdr_make(MOS_WIRE_CONTROL, 3, 0, hdr);
    put(&s, hdr, sizeof(hdr)), save(argv[1], "not_a_frame", &s, s.len, 0);
    return 0;
}
