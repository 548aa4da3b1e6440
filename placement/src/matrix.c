/* The communication matrix and its file format (documented in mos/placement_map.h). This file
 * has no dependency beyond libc, so libmoscomm.so can carry it into MPI programs. */
#include "mos/placement_map.h"
#include "mos/status.h"

#include "parse_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BYTES_MAX ((uint64_t)INT64_MAX)

int mos_comm_matrix_init(struct mos_comm_matrix *m, unsigned n)
{
    if (n == 0 || n > MOS_COMM_MAX_RANKS)
        return -EINVAL;
    m->bytes = calloc((size_t)n * n, sizeof(*m->bytes));
    if (!m->bytes)
        return -ENOMEM;
    m->n = n;
    return 0;
}

void mos_comm_matrix_free(struct mos_comm_matrix *m)
{
    free(m->bytes);
    m->bytes = NULL;
    m->n = 0;
}

uint64_t mos_comm_matrix_pair(const struct mos_comm_matrix *m, unsigned a, unsigned b)
{
    uint64_t x = m->bytes[(size_t)a * m->n + b], y = m->bytes[(size_t)b * m->n + a];

    return x > UINT64_MAX - y ? UINT64_MAX : x + y;
}

/* The header: magic + version, then "ranks N". Returns 0 with *n or an error. */
static int parse_header(struct line_reader *r, const char *name, unsigned *n, char *err,
                        size_t err_len)
{
    struct line_tokens t;
    int state = 0, rc;
    uint64_t v;

    while ((rc = line_next(r, &t)) != 0) {
        if (rc < 0)
            return parse_fail(err, err_len, name, r->lineno, "%s", parse_reader_error(rc));
        if (t.n == 0)
            continue;
        if (state == 0) {
            if (strcmp(t.tok[0], MOS_COMM_MATRIX_MAGIC) != 0)
                return parse_fail(err, err_len, name, r->lineno,
                            "not a communication matrix (expected '%s %d')",
                            MOS_COMM_MATRIX_MAGIC, MOS_COMM_MATRIX_VERSION);
            if (t.n != 2 || parse_u64(t.tok[1], 1000, &v) != 0 || v != MOS_COMM_MATRIX_VERSION)
                return parse_fail(err, err_len, name, r->lineno, "unsupported matrix version (this "
                            "reader knows %d)", MOS_COMM_MATRIX_VERSION);
            state = 1;
            continue;
        }
        if (t.n != 2 || strcmp(t.tok[0], "ranks") != 0)
            return parse_fail(err, err_len, name, r->lineno, "expected 'ranks N'");
        if (parse_u64(t.tok[1], MOS_COMM_MAX_RANKS, &v) != 0 || v == 0)
            return parse_fail(err, err_len, name, r->lineno, "ranks must be 1..%d",
                        MOS_COMM_MAX_RANKS);
        *n = (unsigned)v;
        return 0;
    }
    return parse_fail(err, err_len, name, r->lineno, state ? "no 'ranks N' line" : "empty file");
}

static int parse_entry(struct line_tokens *t, struct mos_comm_matrix *m, unsigned lineno,
                       const char *name, char *err, size_t err_len)
{
    uint64_t src, dst, bytes;
    uint64_t *cell;

    if (t->n != 3)
        return parse_fail(err, err_len, name, lineno, "expected 'SRC DST BYTES', got %u fields",
                    t->n);
    if (parse_u64(t->tok[0], m->n - 1, &src) != 0)
        return parse_fail(err, err_len, name, lineno, "source rank '%.32s' is not in 0..%u",
                    t->tok[0], m->n - 1);
    if (parse_u64(t->tok[1], m->n - 1, &dst) != 0)
        return parse_fail(err, err_len, name, lineno, "destination rank '%.32s' is not in 0..%u",
                    t->tok[1], m->n - 1);
    if (parse_u64(t->tok[2], BYTES_MAX, &bytes) != 0)
        return parse_fail(err, err_len, name, lineno, "byte count '%.32s' is not a number below 2^63",
                    t->tok[2]);
    cell = &m->bytes[src * m->n + dst];
    if (*cell > BYTES_MAX - bytes)
        return parse_fail(err, err_len, name, lineno, "bytes from %u to %u add up past 2^63",
                    (unsigned)src, (unsigned)dst);
    *cell += bytes;
    return 0;
}

int mos_comm_matrix_parse(const char *text, size_t len, const char *name,
                          struct mos_comm_matrix *out, char *err, size_t err_len)
{
    struct line_reader r = {.text = text, .len = len};
    struct mos_comm_matrix m = {0};
    struct line_tokens t;
    unsigned n = 0;
    int rc;

    rc = parse_header(&r, name, &n, err, err_len);
    if (rc != 0)
        return rc;
    rc = mos_comm_matrix_init(&m, n);
    if (rc != 0) {
        snprintf(err, err_len, "%s: no memory for %u ranks", name, n);
        return rc;
    }
    while ((rc = line_next(&r, &t)) != 0) {
        if (rc < 0) {
            rc = parse_fail(err, err_len, name, r.lineno, "%s", parse_reader_error(rc));
            goto free_matrix;
        }
        if (t.n == 0)
            continue;
        rc = parse_entry(&t, &m, r.lineno, name, err, err_len);
        if (rc != 0)
            goto free_matrix;
    }
    *out = m;
    return 0;

free_matrix:
    mos_comm_matrix_free(&m);
    return rc;
}

int mos_comm_matrix_write(const struct mos_comm_matrix *m, FILE *out)
{
    fprintf(out, "%s %d\nranks %u\n# src dst bytes\n", MOS_COMM_MATRIX_MAGIC,
            MOS_COMM_MATRIX_VERSION, m->n);
    for (unsigned i = 0; i < m->n; i++)
        for (unsigned j = 0; j < m->n; j++)
            if (m->bytes[(size_t)i * m->n + j])
                fprintf(out, "%u %u %llu\n", i, j,
                        (unsigned long long)m->bytes[(size_t)i * m->n + j]);
    return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}
