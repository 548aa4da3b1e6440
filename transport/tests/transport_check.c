/* mos-transport-check: the transport's end-to-end test program, run on loopback, between lab
 * namespaces and in the rxe guests.
 *
 *   mos-transport-check server HOST:PORT [--sessions N] [--into-process] [common]
 *   mos-transport-check client HOST:PORT [--mib SIZE] [--from-process] [--echo N] [common]
 *   mos-transport-check raw HOST:PORT KIND [common]   (bad-input clients: garbage, truncate,
 *                                                      vanish, forge-frame, forge-control,
 *                                                      replay-control)
 *   common: --key FILE  --backend auto|tcp|verbs  --slot SIZE  --slots N  --qps Q
 *   (sizes as mos/size.h reads them; a plain --mib counts MiB, 64M or 1G say their unit)
 *   (without --key, $MOS_CONF names the cluster config whose key_file and transport apply)
 *   --no-ipc-lock: drop CAP_IPC_LOCK first, so `ulimit -l` binds root too
 *
 * A client session: N echo round trips of sizes up to 64 KiB; then a page layout (runs with
 * gaps over M MiB) filled with random data, either in this process or in a child process
 * (--from-process: the sender reads it with process_vm_readv); the pages travel as one bulk
 * send; the server places them in a buffer or, with --into-process, in a child process of its
 * own (process_vm_writev), then compares a checksum of every page with the client's list.
 * Prints "ok: ..." lines; exit 0 iff everything matched. The server prints one line per
 * session ("session N ok|failed: ...") and exits 0 iff every session ended as expected
 * (failed sessions are expected with --expect-fail). */
#include "mos/clock.h"
#include "mos/config.h"
#include "mos/size.h"
#include "mos/key.h"
#include "mos/log.h"
#include "mos/status.h"
#include "mos/transport.h"
#include "tp_priv.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_RUNS 3000
#define SUMS_PER_MSG 8000

enum { MSG_ECHO = 1, MSG_PLAN, MSG_SUMS, MSG_VERIFY, MSG_BYE };

struct args {
    const char *mode, *addr, *raw_kind, *key_file;
    struct mos_tp_opts opts;
    mos_key_t key;
    unsigned sessions, mib, echo;
    int expect_fail;
    bool from_process, into_process, no_ipc_lock;
};

static uint64_t page_sum(const uint8_t *p)
{
    const uint64_t *w = (const void *)p;
    uint64_t h = 0x9e3779b97f4a7c15ull;

    for (size_t i = 0; i < MOS_TP_PAGE_SIZE / 8; i++)
        h = (h ^ w[i]) * 0x100000001b3ull + (h >> 29);
    return h;
}

static int usage(void)
{
    fprintf(stderr, "usage: mos-transport-check server|client HOST:PORT [options]\n"
                    "       mos-transport-check raw HOST:PORT garbage|truncate|vanish|forge-frame|forge-control|replay-control [options]\n");
    return 2;
}

/* A size option within [min, max] and a multiple of align; 0, or -1 after one line. */
static int size_arg(const char *option, const char *text, uint64_t unit, uint64_t min,
                    uint64_t max, uint64_t align, uint64_t *out)
{
    char why[160], step[24];

    if (mos_size_parse_range(text, unit, min, max, out, why, sizeof(why)) != 0) {
        fprintf(stderr, "mos-transport-check: %s %s\n", option, why);
        return -1;
    }
    if (*out % align) {
        fprintf(stderr, "mos-transport-check: %s '%s' is not a multiple of %s\n", option, text,
                mos_size_format(align, step, sizeof(step)));
        return -1;
    }
    return 0;
}

/* 0; -1 for bad usage; -2 when the cluster config fails; -3 for a bad size (said). */
static int parse_args(int argc, char **argv, struct args *a)
{
    uint64_t size;

    int i = 3;

    memset(a, 0, sizeof(*a));
    if (argc < 3)
        return -1;
    a->mode = argv[1];
    a->addr = argv[2];
    a->sessions = 1;
    a->mib = 8;
    a->echo = 200;
    mos_tp_opts_default(&a->opts);
    if (strcmp(a->mode, "raw") == 0) {
        if (argc < 4)
            return -1;
        a->raw_kind = argv[3];
        i = 4;
    }
    for (; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--from-process") == 0) {
            a->from_process = true;
        } else if (strcmp(o, "--into-process") == 0) {
            a->into_process = true;
        } else if (strcmp(o, "--no-ipc-lock") == 0) {
            a->no_ipc_lock = true;
        } else if (strcmp(o, "--expect-fail") == 0 && v) {
            a->expect_fail = atoi(v), i++;
        } else if (!v) {
            return -1;
        } else if (strcmp(o, "--key") == 0) {
            a->key_file = v, i++;
        } else if (strcmp(o, "--backend") == 0) {
            int b = mos_tp_backend_parse(v);
            if (b < 0)
                return -1;
            a->opts.backend = (enum mos_tp_backend)b, i++;
        } else if (strcmp(o, "--slot") == 0) {
            /* Any 32-bit size: the range is the library's to refuse, and a test asks it to. */
            if (size_arg(o, v, 1, 0, UINT32_MAX, 1, &size))
                return -3;
            a->opts.slot_bytes = (uint32_t)size, i++;
        } else if (strcmp(o, "--slots") == 0) {
            a->opts.slot_count = (uint32_t)strtoul(v, NULL, 0), i++;
        } else if (strcmp(o, "--qps") == 0) {
            a->opts.n_qps = (uint32_t)strtoul(v, NULL, 0), i++;
        } else if (strcmp(o, "--sessions") == 0) {
            a->sessions = (unsigned)atoi(v), i++;
        } else if (strcmp(o, "--mib") == 0) {
            if (size_arg(o, v, 1u << 20, 0, 64ull << 30, 1u << 20, &size))
                return -3;
            a->mib = (unsigned)(size >> 20), i++;
        } else if (strcmp(o, "--echo") == 0) {
            a->echo = (unsigned)atoi(v), i++;
        } else {
            return -1;
        }
    }
    if (!a->key_file && getenv("MOS_CONF")) { /* in the lab: the cluster's config and key */
        struct mos_config cfg;
        int may_be_absent;
        if (mos_config_load(mos_config_choose_path(NULL, &may_be_absent), &cfg) < 0)
            return -2;
        if (cfg.key_file[0] && mos_key_load(cfg.key_file, &a->key) < 0) {
            mos_config_free(&cfg);
            return -2;
        }
        if (a->opts.backend == MOS_TP_AUTO) {
            struct mos_tp_opts from_cfg;
            mos_tp_opts_from_config(&cfg, NULL, &from_cfg);
            a->opts.backend = from_cfg.backend;
        }
        mos_config_free(&cfg);
    }
    if (a->key_file && mos_key_load(a->key_file, &a->key) < 0)
        return -2;
    a->opts.key = &a->key;
    return 0;
}

/* ---- the server ---- */

struct placement {
    uint8_t *buf;          /* local destination */
    pid_t child;           /* or a child process holding the region at the client's address */
    int child_pipe;
    uint64_t base, span_pages;
    struct mos_page_run runs[MAX_RUNS];
    uint32_t n_runs;
    uint64_t pages;
    uint64_t *sums;        /* received checksums, in run order */
    uint64_t n_sums;
};

/* A child that waits until the parent closes the pipe; with map_at, it first maps
 * [map_at, map_at + bytes) at that very address (the server's destination for a client's
 * pages); else it just holds the memory it inherited (the client's source of pages). */
static pid_t waiting_child(uint64_t map_at, size_t bytes, int *pipe_out)
{
    int p[2];
    pid_t pid;

    if (pipe(p) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        char ch;
        close(p[1]);
        if (map_at && mmap((void *)(uintptr_t)map_at, bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED)
            _exit(3);
        (void)!read(p[0], &ch, 1);
        _exit(0);
    }
    close(p[0]);
    *pipe_out = p[1];
    return pid;
}

static void placement_free(struct placement *pl)
{
    if (pl->buf)
        munmap(pl->buf, pl->span_pages * MOS_TP_PAGE_SIZE);
    if (pl->child > 0) {
        close(pl->child_pipe);
        waitpid(pl->child, NULL, 0);
    }
    free(pl->sums);
    memset(pl, 0, sizeof(*pl));
}

static int plan_parse(const uint8_t *m, size_t len, struct placement *pl, bool into_process)
{
    if (len < 24)
        return -1;
    pl->base = mos_get_le64(m);
    pl->span_pages = mos_get_le64(m + 8);
    pl->n_runs = mos_get_le32(m + 16);
    if (pl->n_runs > MAX_RUNS || len != 24 + 16ull * pl->n_runs || pl->span_pages > (1u << 22))
        return -1;
    pl->pages = 0;
    for (uint32_t i = 0; i < pl->n_runs; i++) {
        pl->runs[i].addr = mos_get_le64(m + 24 + 16 * i);
        pl->runs[i].npages = mos_get_le64(m + 32 + 16 * i);
        pl->pages += pl->runs[i].npages;
    }
    size_t bytes = pl->span_pages * MOS_TP_PAGE_SIZE;
    if (into_process) {
        pl->child = waiting_child(pl->base, bytes, &pl->child_pipe);
        return pl->child > 0 ? 0 : -1;
    }
    pl->buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return pl->buf == MAP_FAILED ? (pl->buf = NULL, -1) : 0;
}

/* Checksums of what was placed, read back from the buffer or the child process. */
static int placed_sums(struct placement *pl, uint64_t **out)
{
    uint64_t *sums = malloc(pl->pages * sizeof(uint64_t) + 1), k = 0;
    uint8_t *tmp = NULL;

    if (!sums)
        return -ENOMEM;
    if (pl->child > 0 && !(tmp = malloc(64 * MOS_TP_PAGE_SIZE))) {
        free(sums);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < pl->n_runs; i++)
        for (uint64_t p = 0; p < pl->runs[i].npages; p++) {
            uint64_t addr = pl->runs[i].addr + p * MOS_TP_PAGE_SIZE;
            if (pl->child > 0) {
                struct mos_page_run r = {addr, 1};
                if (tp_source_read(pl->child, &r, 1, tmp) < 0) {
                    free(sums), free(tmp);
                    return -EFAULT;
                }
                sums[k++] = page_sum(tmp);
            } else {
                sums[k++] = page_sum(pl->buf + (addr - pl->base));
            }
        }
    free(tmp);
    *out = sums;
    return 0;
}

static int serve_session(mos_tp_conn_t *c, const struct args *a)
{
    static uint8_t msg[MOS_TP_MAX_CONTROL];
    struct placement pl = {0};
    struct mos_tp_msg m;
    int rc, result = -1;

    for (;;) {
        if ((rc = mos_tp_ctl_recv(c, &m, msg, sizeof(msg), 60000)) < 0) {
            fprintf(stderr, "server: receive: %s\n", mos_strerror(rc));
            break;
        }
        if (m.len < 1) {
            fprintf(stderr, "server: empty request\n");
            break;
        }
        uint8_t kind = msg[0];
        if (kind == MSG_ECHO) {
            rc = mos_tp_ctl_reply(c, m.id, msg, m.len);
        } else if (kind == MSG_PLAN) {
            placement_free(&pl);
            if (plan_parse(msg + 1, m.len - 1, &pl, a->into_process) < 0) {
                fprintf(stderr, "server: bad plan\n");
                break;
            }
            if (!(pl.sums = malloc(pl.pages * sizeof(uint64_t) + 1)))
                break;
            pl.n_sums = 0;
            if ((rc = mos_tp_ctl_reply(c, m.id, "R", 1)) < 0)
                break;
            struct mos_tp_place_buffer pb = {pl.buf, pl.base, pl.span_pages * MOS_TP_PAGE_SIZE};
            struct mos_tp_bulk_stats st;
            printf("server: receiving %llu pages\n", (unsigned long long)pl.pages);
            uint64_t t0 = mos_clock_now_ns();
            rc = a->into_process ? mos_tp_bulk_recv(c, mos_tp_place_into_process, &pl.child, &st)
                                 : mos_tp_bulk_recv(c, mos_tp_place_into_buffer, &pb, &st);
            if (rc < 0) {
                fprintf(stderr, "server: bulk receive: %s\n", mos_strerror(rc));
                break;
            }
            double s = (double)(mos_clock_now_ns() - t0) / 1e9;
            printf("server: placed %llu pages in %llu frames into %s (%.1f MiB/s)\n",
                   (unsigned long long)st.pages, (unsigned long long)st.frames,
                   a->into_process ? "a child process" : "a buffer",
                   (double)st.pages * 4096 / 1048576 / (s > 0 ? s : 1e-9));
            continue;
        } else if (kind == MSG_SUMS) {
            uint64_t n = (m.len - 1) / 8;
            if (!pl.sums || pl.n_sums + n > pl.pages)
                break;
            for (uint64_t i = 0; i < n; i++)
                pl.sums[pl.n_sums++] = mos_get_le64(msg + 1 + 8 * i);
            rc = mos_tp_ctl_reply(c, m.id, "S", 1);
        } else if (kind == MSG_VERIFY) {
            uint64_t *got, bad = UINT64_MAX;
            char text[128];
            if (!pl.sums || pl.n_sums != pl.pages || placed_sums(&pl, &got) < 0)
                break;
            for (uint64_t i = 0; i < pl.pages && bad == UINT64_MAX; i++)
                if (got[i] != pl.sums[i])
                    bad = i;
            free(got);
            if (bad == UINT64_MAX)
                snprintf(text, sizeof(text), "verified %llu pages", (unsigned long long)pl.pages);
            else
                snprintf(text, sizeof(text), "MISMATCH at page %llu of %llu",
                         (unsigned long long)bad, (unsigned long long)pl.pages);
            printf("server: %s\n", text);
            rc = mos_tp_ctl_reply(c, m.id, text, strlen(text));
        } else if (kind == MSG_BYE) {
            rc = mos_tp_ctl_reply(c, m.id, "B", 1);
            result = 0;
            break;
        } else {
            fprintf(stderr, "server: unknown request %u\n", kind);
            break;
        }
        if (rc < 0)
            break;
    }
    placement_free(&pl);
    return result;
}

static int run_server(const struct args *a)
{
    mos_tp_listener_t *l;
    unsigned failed = 0;
    int rc;

    if ((rc = mos_tp_listen(a->addr, &a->opts, &l)) < 0)
        return 1;
    printf("server: listening on port %d\n", mos_tp_listener_port(l));
    fflush(stdout);
    for (unsigned s = 1; s <= a->sessions; s++) {
        mos_tp_conn_t *c = NULL;
        if ((rc = mos_tp_accept(l, &c)) < 0) {
            printf("session %u failed: %s\n", s, mos_strerror(rc));
            failed++;
        } else {
            printf("session %u: %s from %s\n", s, mos_tp_backend_name(mos_tp_conn_backend(c)),
                   mos_tp_conn_peer(c));
            fflush(stdout);
            rc = serve_session(c, a);
            printf("session %u %s\n", s, rc == 0 ? "ok" : "failed");
            failed += rc != 0;
            mos_tp_close(c);
        }
        fflush(stdout);
    }
    mos_tp_listener_close(l);
    printf("server: %u sessions, %u failed (expected %d)\n", a->sessions, failed, a->expect_fail);
    return (int)failed == a->expect_fail ? 0 : 1;
}

/* ---- the client ---- */

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int echo_test(mos_tp_conn_t *c, unsigned n)
{
    static uint8_t req[MOS_TP_MAX_CONTROL], rep[MOS_TP_MAX_CONTROL];
    size_t len;
    int rc;

    for (unsigned i = 0; i < n; i++) {
        size_t want = i % 10 == 9 ? rng() % MOS_TP_MAX_CONTROL + 1 : rng() % 256 + 1;
        for (size_t k = 0; k < want; k++)
            req[k] = (uint8_t)rng();
        req[0] = MSG_ECHO;
        if ((rc = mos_tp_ctl_call(c, req, want, rep, sizeof(rep), &len)) < 0)
            return rc;
        if (len != want || memcmp(req, rep, want) != 0) {
            printf("FAIL: echo %u: reply differs\n", i);
            return -1;
        }
    }
    printf("ok: %u control round trips echoed\n", n);
    return 0;
}

/* Runs with gaps over span pages: lengths 1..128, holes 0..7. */
static uint32_t make_layout(uint64_t base, uint64_t span, struct mos_page_run *runs)
{
    uint64_t p = 0;
    uint32_t n = 0;

    while (p < span && n < MAX_RUNS) {
        uint64_t len = rng() % 128 + 1, hole = rng() % 8;
        if (p + len > span)
            len = span - p;
        runs[n].addr = base + p * MOS_TP_PAGE_SIZE;
        runs[n++].npages = len;
        p += len + hole;
    }
    return n;
}

static int call(mos_tp_conn_t *c, const void *req, size_t len, char *rep, size_t cap)
{
    size_t rl;
    int rc = mos_tp_ctl_call(c, req, len, rep, cap - 1, &rl);

    if (rc == 0)
        rep[rl] = '\0';
    return rc;
}

static int bulk_test(mos_tp_conn_t *c, const struct args *a)
{
    static struct mos_page_run runs[MAX_RUNS];
    static uint8_t msg[MOS_TP_MAX_CONTROL];
    uint64_t span = (uint64_t)a->mib * 256, pages = 0;
    size_t bytes = span * MOS_TP_PAGE_SIZE;
    /* At a fixed, out-of-the-way address, as a migrated process's pages would be: a server
     * with --into-process maps the same range in a child of its own. */
    uint8_t *region = mmap((void *)0x300000000000ull, bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    char rep[256];
    pid_t child = 0;
    int child_pipe = -1, rc = -1;
    uint32_t n;

    if (region == MAP_FAILED)
        return -ENOMEM;
    for (uint64_t *w = (uint64_t *)region; (uint8_t *)w < region + bytes; w++)
        *w = rng();
    n = make_layout((uintptr_t)region, span, runs);
    /* The plan: base, span, runs. */
    msg[0] = MSG_PLAN;
    mos_put_le64(msg + 1, (uintptr_t)region);
    mos_put_le64(msg + 9, span);
    mos_put_le32(msg + 17, n);
    mos_put_le32(msg + 21, 0);
    for (uint32_t i = 0; i < n; i++) {
        mos_put_le64(msg + 25 + 16 * i, runs[i].addr);
        mos_put_le64(msg + 33 + 16 * i, runs[i].npages);
        pages += runs[i].npages;
    }
    if (a->from_process) /* the child inherits the filled region at the same address */
        child = waiting_child(0, 0, &child_pipe);
    if ((rc = call(c, msg, 25 + 16ull * n, rep, sizeof(rep))) < 0)
        goto out;
    uint64_t t0 = mos_clock_now_ns();
    if ((rc = mos_tp_bulk_send(c, child, runs, n)) < 0) {
        printf("FAIL: bulk send: %s\n", mos_strerror(rc));
        goto out;
    }
    double s = (double)(mos_clock_now_ns() - t0) / 1e9;
    printf("ok: bulk sent %llu pages in %u runs from %s (%.1f MiB/s)\n", (unsigned long long)pages,
           n, a->from_process ? "a child process" : "this process",
           (double)pages * 4096 / 1048576 / (s > 0 ? s : 1e-9));
    /* The checksum of every page sent, in run order. */
    uint64_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        for (uint64_t p = 0; p < runs[i].npages; p++) {
            size_t fill = 1 + 8 * (k % SUMS_PER_MSG);
            msg[0] = MSG_SUMS;
            mos_put_le64(msg + fill, page_sum((uint8_t *)(uintptr_t)(runs[i].addr + p * 4096)));
            if (++k % SUMS_PER_MSG == 0 || k == pages)
                if ((rc = call(c, msg, fill + 8, rep, sizeof(rep))) < 0)
                    goto out;
        }
    msg[0] = MSG_VERIFY;
    if ((rc = call(c, msg, 1, rep, sizeof(rep))) < 0)
        goto out;
    if (strncmp(rep, "verified", 8) != 0) {
        printf("FAIL: server: %s\n", rep);
        rc = -1;
        goto out;
    }
    printf("ok: server %s, every checksum matches\n", rep);
    rc = 0;
out:
    if (child > 0) {
        close(child_pipe);
        waitpid(child, NULL, 0);
    }
    munmap(region, bytes);
    return rc;
}

static int run_client(const struct args *a)
{
    mos_tp_conn_t *c;
    uint8_t bye = MSG_BYE;
    char rep[16];
    int rc;

    if ((rc = mos_tp_connect(a->addr, &a->opts, &c)) < 0) {
        printf("FAIL: connect: %s\n", mos_strerror(rc));
        return 1;
    }
    printf("ok: connected to %s with %s\n", mos_tp_conn_peer(c),
           mos_tp_backend_name(mos_tp_conn_backend(c)));
    rc = echo_test(c, a->echo);
    if (rc == 0 && a->mib)
        rc = bulk_test(c, a);
    if (rc == 0)
        rc = call(c, &bye, 1, rep, sizeof(rep));
    if (rc < 0)
        printf("FAIL: session: %s\n", mos_strerror(rc));
    mos_tp_close(c);
    return rc == 0 ? 0 : 1;
}

/* ---- bad-input clients: a correct handshake, then what a broken peer would send ---- */

/* A control message sealed as mos_tp_ctl_send would, written raw (header, box, tag), so that
 * it can be changed or sent twice on the way. */
static int raw_control(mos_tp_conn_t *c, const uint8_t *msg, size_t len, bool flip, int times)
{
    uint8_t out[MOS_WIRE_HDR_BYTES + 64 + MOS_SEAL_TAG_BYTES], ad[6];
    int rc = 0;

    mos_wire_hdr_make(MOS_WIRE_CONTROL, (uint32_t)(len + MOS_SEAL_TAG_BYTES), 0, out);
    mos_put_le16(ad, MOS_WIRE_CONTROL);
    mos_put_le32(ad + 2, 0);
    mos_seal_box(&c->ctl.tx, ad, sizeof(ad), msg, out + MOS_WIRE_HDR_BYTES, len,
                 out + MOS_WIRE_HDR_BYTES + len);
    if (flip)
        out[MOS_WIRE_HDR_BYTES] ^= 1;
    for (int i = 0; i < times && rc == 0; i++)
        rc = tp_write_iov(c->ctl_fd, &(struct iovec){out, MOS_WIRE_HDR_BYTES + len + MOS_SEAL_TAG_BYTES}, 1);
    return rc;
}

static int run_raw(const struct args *a)
{
    mos_tp_conn_t *c;
    int rc;

    /* Forced tcp: the raw writes go to the tcp streams. */
    struct mos_tp_opts o = a->opts;
    o.backend = MOS_TP_TCP;
    if ((rc = mos_tp_connect(a->addr, &o, &c)) < 0)
        return 1;
    int ctl = c->ctl_fd, bulk = *(int *)c->be; /* tcp_state starts with the bulk fd */
    /* PLAN for 64 pages at a fake base */
    uint8_t plan[1 + 24 + 16];
    struct mos_page_run run = {0x10000000, 64};
    plan[0] = MSG_PLAN;
    mos_put_le64(plan + 1, run.addr);
    mos_put_le64(plan + 9, 64);
    mos_put_le32(plan + 17, 1);
    mos_put_le32(plan + 21, 0);
    mos_put_le64(plan + 25, run.addr);
    mos_put_le64(plan + 33, 64);
    if (strcmp(a->raw_kind, "garbage") == 0) {
        static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        rc = tp_write_iov(ctl, &(struct iovec){(void *)junk, sizeof(junk) - 1}, 1);
    } else if (strcmp(a->raw_kind, "forge-control") == 0) {
        rc = raw_control(c, plan, sizeof(plan), true, 1); /* one bit of the sealed PLAN */
    } else if (strcmp(a->raw_kind, "replay-control") == 0) {
        static const uint8_t echo[] = {MSG_ECHO, 'h', 'i'};
        rc = raw_control(c, echo, sizeof(echo), false, 2); /* the same sealed ECHO twice */
    } else {
        /* a genuine frame (tagged like the sender's) that is cut, never ended, or changed */
        static uint8_t frame[MOS_WIRE_HDR_BYTES + 24 + 64 * 4096 + MOS_WIRE_FRAME_TAG_BYTES];
        uint8_t rep[16];
        size_t rl, body = 24 + 64 * 4096;
        if ((rc = mos_tp_ctl_call(c, plan, sizeof(plan), rep, sizeof(rep), &rl)) < 0)
            return 1;
        mos_wire_hdr_make(MOS_WIRE_PAGE_RUN, (uint32_t)(body + MOS_WIRE_FRAME_TAG_BYTES), 0, frame);
        mos_wire_runs_encode(&run, 1, frame + MOS_WIRE_HDR_BYTES);
        struct iovec tagged = {frame + MOS_WIRE_HDR_BYTES, body};
        tp_frame_tag(c, c->frames_tx++, &tagged, 1, frame + MOS_WIRE_HDR_BYTES + body);
        if (strcmp(a->raw_kind, "forge-frame") == 0)
            frame[MOS_WIRE_HDR_BYTES + 24 + 5 * 4096 + 7] ^= 0x20; /* one bit of page 5 */
        size_t len = strcmp(a->raw_kind, "truncate") == 0 ? sizeof(frame) / 2 : sizeof(frame);
        rc = tp_write_iov(bulk, &(struct iovec){frame, len}, 1);
        /* vanish: a whole frame, then the process dies without an end marker */
    }
    printf("raw %s: sent (%s); exiting without closing\n", a->raw_kind, mos_strerror(rc));
    fflush(stdout);
    _exit(0); /* no CLOSE: the peer must cope with a vanished client */
}

/* Drop CAP_IPC_LOCK (effective and permitted), so that root is bound by `ulimit -l` like
 * any user: how the tests make verbs impossible on a machine that has a device. */
static int drop_ipc_lock(void)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];

    if (syscall(SYS_capget, &h, d) < 0)
        return -1;
    d[0].effective &= ~(1u << CAP_IPC_LOCK);
    d[0].permitted &= ~(1u << CAP_IPC_LOCK);
    return (int)syscall(SYS_capset, &h, d);
}

int main(int argc, char **argv)
{
    struct args a;
    int rc = parse_args(argc, argv, &a);

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (rc == -2)
        return 1;
    if (rc == -3)
        return 2;
    if (rc < 0)
        return usage();
    if (a.no_ipc_lock && drop_ipc_lock() < 0) {
        perror("capset");
        return 1;
    }
    if (strcmp(a.mode, "server") == 0)
        return run_server(&a);
    if (strcmp(a.mode, "client") == 0)
        return run_client(&a);
    if (strcmp(a.mode, "raw") == 0)
        return run_raw(&a);
    return usage();
}
