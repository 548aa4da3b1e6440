/* libFuzzer target: the line protocol between mosd and its children (an acceptor's first line,
 * a supervisor's order from mosd, a move worker's report, a supervisor's call counts). The
 * input is cut into lines at '\n'; each is fed to the four parsers. What one accepts must have
 * its fields in range, names shaped as node names, and print back (as the writers print it) to
 * a line the parser reads as the same fields. */
#include "mosd.h"
#include "mos/status.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= MOS_NODE_NAME_MAX || strcspn(s, " \t\r\n") != n)
        abort();
}

static int same(const struct mosd_line *a, const struct mosd_line *b)
{
    return a->kind == b->kind && a->pid == b->pid && a->home_pid == b->home_pid &&
           a->job == b->job && a->uid == b->uid && strcmp(a->node, b->node) == 0 &&
           strcmp(a->to, b->to) == 0 && a->nodes.restricted == b->nodes.restricted &&
           a->nodes.n == b->nodes.n &&
           memcmp(a->nodes.idx, b->nodes.idx, a->nodes.n * sizeof(a->nodes.idx[0])) == 0 &&
           ((!a->text && !b->text) || (a->text && b->text && strcmp(a->text, b->text) == 0));
}

static void check_acceptor(const char *line)
{
    struct mosd_line l, again;
    char out[1024 + MOSD_NODES_WORD_MAX], nodes[MOSD_NODES_WORD_MAX];

    if (mosd_line_from_acceptor(line, &l) != 0)
        return;
    if (l.home_pid < 1 || (l.kind == MOSD_LINE_GUEST && (l.pid < 1 || l.job < 0 || (int)l.uid < 0)))
        abort();
    switch (l.kind) {
    case MOSD_LINE_GUEST:
        check_name(l.node);
        if (l.nodes.n > MOSD_MAX_JOB_NODES || (!l.nodes.restricted && l.nodes.n))
            abort();
        mosd_nodes_word(&l.nodes, nodes, sizeof(nodes));
        snprintf(out, sizeof(out), "guest %d %d %d %d %s %s %s", (int)l.pid, (int)l.home_pid,
                 l.job, (int)l.uid, l.node, nodes, l.text);
        break;
    case MOSD_LINE_NATIVE:
        if (!(l.calls_wait >= 0 && l.calls_wait <= MOSD_MAX_CALLS_WAIT))
            abort();
        snprintf(out, sizeof(out), "native %d", (int)l.home_pid);
        break;
    case MOSD_LINE_WHERE:
        check_name(l.node);
        snprintf(out, sizeof(out), "where %d %s", (int)l.home_pid, l.node);
        break;
    case MOSD_LINE_MOVE:
        check_name(l.node);
        check_name(l.to);
        snprintf(out, sizeof(out), "move %s %d %s", l.node, (int)l.home_pid, l.to);
        break;
    default:
        abort();
    }
    if (mosd_line_from_acceptor(out, &again) != 0 || !same(&l, &again))
        abort();
}

static void check_order(const char *line)
{
    struct mosd_line l, again;
    char out[128];

    if (mosd_line_order(line, &l) != 0)
        return;
    check_name(l.to);
    if (l.max_load != -1 && !isfinite(l.max_load))
        abort();
    if (l.max_load == -1)
        snprintf(out, sizeof(out), "move %s", l.to);
    else
        snprintf(out, sizeof(out), "move %s %.17g", l.to, l.max_load);
    if (mosd_line_order(out, &again) != 0 || strcmp(again.to, l.to) != 0 ||
        (l.max_load == -1) != (again.max_load == -1))
        abort();
}

static void check_report(const char *line)
{
    struct mosd_line l, again;
    char out[128];

    if (mosd_line_report(line, &l) != 0)
        return;
    if (!l.text || (l.kind != MOSD_LINE_OK && l.kind != MOSD_LINE_ERROR))
        abort();
    if (l.kind == MOSD_LINE_OK) {
        check_name(l.to);
        if (strcmp(l.to, l.text) != 0 || l.bytes > (uint64_t)LLONG_MAX)
            abort();
        snprintf(out, sizeof(out), "ok %llu %s", (unsigned long long)l.bytes, l.to);
        if (mosd_line_report(out, &again) != 0 || again.bytes != l.bytes ||
            strcmp(again.to, l.to) != 0)
            abort();
    }
}

/* A supervisor's call counts: in range, the buckets adding up to the forwarded calls, and
 * printed back the same. */
static void check_calls(const char *line)
{
    struct mos_call_stats s, again;
    char out[MOSD_CALLS_LINE_MAX];
    uint64_t in_buckets = 0;

    if (mosd_line_calls(line, &s) != 0)
        return;
    for (int b = 0; b <= MOS_CALL_LATENCY_BOUNDS; b++)
        in_buckets += s.latency[b];
    if (in_buckets != s.calls[MOS_CALLS_FORWARD] || s.bytes > (uint64_t)LLONG_MAX ||
        s.latency_sum_ns > (uint64_t)LLONG_MAX)
        abort();
    mosd_calls_line(&s, out, sizeof(out));
    if (strlen(out) + 1 >= sizeof(out) || mosd_line_calls(out, &again) != 0 ||
        memcmp(&s, &again, sizeof(s)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    char *line = malloc(size + 1);

    if (!line)
        return 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        memcpy(line, p, len);
        line[len] = '\0'; /* as mosd_line_read leaves it: a NUL inside ends the line early */
        check_acceptor(line);
        check_order(line);
        check_report(line);
        check_calls(line);
        p += len + 1;
    }
    free(line);
    return 0;
}
