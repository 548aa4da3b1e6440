/* Sizes as people write them on a command line or in mos.conf: "4096", "64K", "16M", "2G",
 * "1T". The suffixes K, M, G and T are powers of 1024; a B or iB may follow ("64KiB", "16mb");
 * case does not matter. A plain number counts in the caller's unit (bytes for most options,
 * MiB for the few whose plain number always meant MiB); a suffix, or a lone B ("4096B"), says
 * the unit itself. No sign, fraction, spaces or other base: those are refused. */
#ifndef MOS_SIZE_H
#define MOS_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* How a size is written, for usage and error text. */
#define MOS_SIZE_SYNTAX "a whole number with an optional K, M, G or T suffix, powers of 1024"

/* Parse text into bytes; a plain number is multiplied by unit (1: bytes; 1 << 20: MiB).
 * Returns 0; -EINVAL for empty text, a sign, a fraction, spaces, an unknown suffix or unit 0;
 * -ERANGE when the size does not fit in 64 bits. *out is set only on success. */
int mos_size_parse(const char *text, uint64_t unit, uint64_t *out);

/* mos_size_parse, then min <= size <= max (-ERANGE if not). On failure why gets one line
 * that quotes text and says what is wrong ("'2X' is not a size (...)", "'128G' is above 64G"),
 * for the caller to prefix with its program and option. */
int mos_size_parse_range(const char *text, uint64_t unit, uint64_t min, uint64_t max,
                         uint64_t *out, char *why, size_t why_len);

/* The shortest exact spelling of bytes with the largest suffix that divides it: "64K",
 * "1536K", "16M", "2G", "4097". Returns buf (at least 24 bytes hold any value). */
const char *mos_size_format(uint64_t bytes, char *buf, size_t len);

#endif
