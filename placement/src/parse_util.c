#include "parse_util.h"

#include "mos/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int line_next(struct line_reader *r, struct line_tokens *t)
{
    size_t start = r->pos, end;
    char *p;

    if (r->pos >= r->len)
        return 0;
    r->lineno++;
    for (end = start; end < r->len && r->text[end] != '\n'; end++)
        ;
    r->pos = end < r->len ? end + 1 : end;
    if (end - start > PARSE_MAX_LINE)
        return -1;
    if (memchr(r->text + start, '\0', end - start))
        return -2;
    memcpy(r->buf, r->text + start, end - start);
    r->buf[end - start] = '\0';
    if ((p = strchr(r->buf, '#')))
        *p = '\0';
    t->n = 0;
    for (p = r->buf;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            break;
        if (t->n == PARSE_MAX_TOKENS)
            return -3;
        t->tok[t->n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (*p)
            *p++ = '\0';
    }
    return 1;
}

int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (d > max || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int parse_fail(char *err, size_t err_len, const char *name, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int k = snprintf(err, err_len, "%s:%u: ", name, line);

    va_start(ap, fmt);
    if (k >= 0 && (size_t)k < err_len)
        vsnprintf(err + k, err_len - (size_t)k, fmt, ap);
    va_end(ap);
    return MOS_E_CONFIG;
}

const char *parse_reader_error(int rc)
{
    return rc == -1 ? "line longer than 1024 characters"
                    : rc == -2 ? "NUL byte in text" : "too many fields";
}
