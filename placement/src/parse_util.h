/* Line and token helpers shared by the matrix and hosts parsers (private). */
#ifndef MOS_PLACEMENT_PARSE_UTIL_H
#define MOS_PLACEMENT_PARSE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define PARSE_MAX_LINE 1024
#define PARSE_MAX_TOKENS 8

struct line_reader {
    const char *text;
    size_t len, pos;
    unsigned lineno;
    char buf[PARSE_MAX_LINE + 1];
};

struct line_tokens {
    unsigned n;
    char *tok[PARSE_MAX_TOKENS];
};

/* Next line, comments ('#' to end) stripped, split on blanks. Returns 1 with tokens (possibly
 * n = 0 for a blank line), 0 at the end, -1 for a line longer than PARSE_MAX_LINE, -2 for a
 * NUL byte, -3 for more than PARSE_MAX_TOKENS tokens. */
int line_next(struct line_reader *r, struct line_tokens *t);

/* Strict decimal: digits only, value <= max. 0 or -1. */
int parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Write "NAME:LINE: text" to err; returns MOS_E_CONFIG. */
int parse_fail(char *err, size_t err_len, const char *name, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Text for a negative line_next() result. */
const char *parse_reader_error(int rc);

#endif
