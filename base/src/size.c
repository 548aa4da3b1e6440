/* One size parser for every option and setting, so "2G" means the same everywhere. */
#include "mos/size.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char suffixes[] = "KMGT";

/* The multiplier a suffix ("", "K", "KiB", "mb", "B", ...) names: 0 for none (the caller's
 * unit), 1 for a lone B, 1 << 10 .. 1 << 40, or -1 for anything else. */
static int64_t suffix_multiplier(const char *s)
{
    const char *hit;

    if (*s == '\0')
        return 0;
    if (strcasecmp(s, "B") == 0)
        return 1;
    hit = strchr(suffixes, toupper((unsigned char)*s));
    if (!hit)
        return -1;
    s++;
    if (*s != '\0' && strcasecmp(s, "B") != 0 && strcasecmp(s, "iB") != 0)
        return -1;
    return (int64_t)1 << (10 * (hit - suffixes + 1));
}

int mos_size_parse(const char *text, uint64_t unit, uint64_t *out)
{
    const char *p = text;
    uint64_t v = 0;
    int64_t mult;

    if (unit == 0 || *p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            /* Digits alone overflow; still report junk after them as junk. */
            while (*p >= '0' && *p <= '9')
                p++;
            return suffix_multiplier(p) < 0 ? -EINVAL : -ERANGE;
        }
        v = v * 10 + d;
    }
    mult = suffix_multiplier(p);
    if (mult < 0)
        return -EINVAL;
    uint64_t m = mult == 0 ? unit : (uint64_t)mult;
    if (v != 0 && m > UINT64_MAX / v)
        return -ERANGE;
    *out = v * m;
    return 0;
}

const char *mos_size_format(uint64_t bytes, char *buf, size_t len)
{
    int i = 0;

    while (bytes != 0 && suffixes[i] && bytes % ((uint64_t)1 << (10 * (i + 1))) == 0)
        i++;
    if (i == 0)
        snprintf(buf, len, "%" PRIu64, bytes);
    else
        snprintf(buf, len, "%" PRIu64 "%c", bytes >> (10 * i), suffixes[i - 1]);
    return buf;
}

int mos_size_parse_range(const char *text, uint64_t unit, uint64_t min, uint64_t max,
                         uint64_t *out, char *why, size_t why_len)
{
    char limit[24];
    uint64_t v;
    int rc = mos_size_parse(text, unit, &v);

    if (rc == -EINVAL) {
        snprintf(why, why_len, "'%s' is not a size (%s)", text, MOS_SIZE_SYNTAX);
        return rc;
    }
    if (rc == -ERANGE || v > max) {
        snprintf(why, why_len, "'%s' is above %s", text, mos_size_format(max, limit, sizeof(limit)));
        return -ERANGE;
    }
    if (v < min) {
        snprintf(why, why_len, "'%s' is below %s", text, mos_size_format(min, limit, sizeof(limit)));
        return -ERANGE;
    }
    *out = v;
    return 0;
}
