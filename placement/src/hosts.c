/* The hosts file of mosplace (format in mos/placement_map.h). */
#include "mos/placement_map.h"
#include "mos/status.h"

#include "parse_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int host_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 255)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int parse_speed(const char *s, double *out)
{
    char *end;
    double v;

    if (!*s || (*s != '.' && (*s < '0' || *s > '9')))
        return -1;
    v = strtod(s, &end);
    if (*end || !isfinite(v) || v <= 0 || v > 1000)
        return -1;
    *out = v;
    return 0;
}

/* "2-5,0,7": ranges and single numbers, in the order given. Returns the count, or -1. */
static int parse_cores(const char *s, unsigned **out)
{
    unsigned *cores = NULL, n = 0;

    while (*s) {
        char num[16];
        uint64_t lo, hi;
        size_t k = strcspn(s, ",-");
        if (k == 0 || k >= sizeof(num))
            goto bad;
        memcpy(num, s, k);
        num[k] = '\0';
        if (parse_u64(num, 1u << 20, &lo) != 0)
            goto bad;
        hi = lo;
        s += k;
        if (*s == '-') {
            k = strcspn(++s, ",");
            if (k == 0 || k >= sizeof(num))
                goto bad;
            memcpy(num, s, k);
            num[k] = '\0';
            if (parse_u64(num, 1u << 20, &hi) != 0 || hi < lo)
                goto bad;
            s += k;
        }
        if (n + (hi - lo + 1) > MOS_HOST_MAX_SLOTS)
            goto bad;
        unsigned *nc = realloc(cores, (n + (hi - lo + 1)) * sizeof(*nc));
        if (!nc)
            goto bad;
        cores = nc;
        for (uint64_t c = lo; c <= hi; c++)
            cores[n++] = (unsigned)c;
        if (*s == ',' && *++s == '\0')
            goto bad;
    }
    if (n == 0)
        goto bad;
    *out = cores;
    return (int)n;
bad:
    free(cores);
    return -1;
}

static int parse_host_line(struct line_tokens *t, struct mos_host *h, unsigned lineno,
                           const char *name, char *err, size_t err_len)
{
    uint64_t v;
    int n_cores = 0, slots_given = 0, rc = 0;

    h->cores = NULL;
    if (!host_name_ok(t->tok[0]))
        return parse_fail(err, err_len, name, lineno,
                          "bad host name '%.64s' (1-255 of A-Z a-z 0-9 . _ -)", t->tok[0]);
    snprintf(h->name, sizeof(h->name), "%s", t->tok[0]);
    h->slots = 1;
    h->speed = 1.0;
    for (unsigned i = 1; i < t->n && rc == 0; i++) {
        const char *kv = t->tok[i];
        if (strncmp(kv, "slots=", 6) == 0) {
            if (parse_u64(kv + 6, MOS_HOST_MAX_SLOTS, &v) != 0 || v == 0)
                rc = parse_fail(err, err_len, name, lineno, "slots must be 1..%d, got '%.32s'",
                                MOS_HOST_MAX_SLOTS, kv + 6);
            h->slots = (unsigned)v;
            slots_given = 1;
        } else if (strncmp(kv, "speed=", 6) == 0) {
            if (parse_speed(kv + 6, &h->speed) != 0)
                rc = parse_fail(err, err_len, name, lineno,
                                "speed must be a number in (0, 1000], got '%.32s'", kv + 6);
        } else if (strncmp(kv, "cores=", 6) == 0 && !h->cores) {
            n_cores = parse_cores(kv + 6, &h->cores);
            if (n_cores < 0)
                rc = parse_fail(err, err_len, name, lineno,
                                "cores must be a list like 0-3,8 (at most %d), got '%.32s'",
                                MOS_HOST_MAX_SLOTS, kv + 6);
        } else {
            rc = parse_fail(err, err_len, name, lineno,
                            "unknown setting '%.32s' (slots=N, speed=X, cores=LIST)", kv);
        }
    }
    if (rc == 0 && h->cores && !slots_given)
        h->slots = (unsigned)n_cores;
    if (rc == 0 && h->cores && h->slots > (unsigned)n_cores)
        rc = parse_fail(err, err_len, name, lineno, "slots=%u but only %d cores listed",
                        h->slots, n_cores);
    if (rc != 0) {
        free(h->cores);
        h->cores = NULL;
    }
    return rc;
}

static int host_seen(const struct mos_host_list *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->hosts[i].name, name) == 0)
            return 1;
    return 0;
}

int mos_host_list_parse(const char *text, size_t len, const char *name,
                        struct mos_host_list *out, char *err, size_t err_len)
{
    struct line_reader r = {.text = text, .len = len};
    struct mos_host_list h = {0};
    struct line_tokens t;
    size_t cap = 0;
    int rc;

    while ((rc = line_next(&r, &t)) != 0) {
        struct mos_host host;
        if (rc < 0) {
            rc = parse_fail(err, err_len, name, r.lineno, "%s", parse_reader_error(rc));
            goto free_list;
        }
        if (t.n == 0)
            continue;
        rc = parse_host_line(&t, &host, r.lineno, name, err, err_len);
        if (rc != 0)
            goto free_list;
        if (host_seen(&h, host.name)) {
            free(host.cores);
            rc = parse_fail(err, err_len, name, r.lineno, "host '%s' listed twice", host.name);
            goto free_list;
        }
        if (h.n == MOS_HOSTS_MAX) {
            free(host.cores);
            rc = parse_fail(err, err_len, name, r.lineno, "more than %d hosts", MOS_HOSTS_MAX);
            goto free_list;
        }
        if (h.n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct mos_host *nh = realloc(h.hosts, ncap * sizeof(*nh));
            if (!nh) {
                free(host.cores);
                snprintf(err, err_len, "%s: out of memory", name);
                rc = -ENOMEM;
                goto free_list;
            }
            h.hosts = nh;
            cap = ncap;
        }
        h.hosts[h.n++] = host;
    }
    if (h.n == 0) {
        rc = parse_fail(err, err_len, name, r.lineno, "no hosts listed");
        goto free_list;
    }
    *out = h;
    return 0;

free_list:
    mos_host_list_free(&h);
    return rc;
}

void mos_host_list_free(struct mos_host_list *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->hosts[i].cores);
    free(h->hosts);
    h->hosts = NULL;
    h->n = 0;
}
