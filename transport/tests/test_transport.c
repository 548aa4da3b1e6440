/* Conformance suite: the same cases against every backend (tcp always; verbs when
 * MOS_TEST_VERBS_ADDR names an address on an RDMA device, as in the rxe guest, else each
 * verbs case is skipped with the reason printed). A peer thread in this process serves the
 * requests of the cases:
 *   'E' echo     'B' receive a bulk send into the buffer, reply "frames pages"
 *   'S' receive a bulk send with a slow consumer in a second thread, while this one keeps
 *       answering control messages (tcp); 'W' wait for it, reply "frames pages"
 *   'A' receive a bulk send that must be aborted by the sender (-ECANCELED), reply rc
 *   'Q' quit */
#include "mos/status.h"
#include "mos/transport.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define BUF_PAGES 8192 /* 32 MiB */

struct fixture {
    enum mos_tp_backend backend;
    const char *addr;
    mos_tp_listener_t *l;
    mos_tp_conn_t *c;      /* the client side, used by the cases */
    pthread_t peer;
    uint8_t *src, *dst;    /* BUF_PAGES each */
    volatile int bulk_done;
};

static int slow_place(void *arg, const struct mos_page_run *runs, size_t n, const uint8_t *data)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return mos_tp_place_into_buffer(arg, runs, n, data);
}

struct slow_job {
    mos_tp_conn_t *c;
    struct mos_tp_place_buffer pb;
    struct mos_tp_bulk_stats st;
    struct fixture *f;
    int rc;
};

static void *slow_recv(void *arg)
{
    struct slow_job *j = arg;

    j->rc = mos_tp_bulk_recv(j->c, slow_place, &j->pb, &j->st);
    j->f->bulk_done = 1;
    return NULL;
}

static void *peer_main(void *arg)
{
    struct fixture *f = arg;
    mos_tp_conn_t *c;
    static uint8_t msg[MOS_TP_MAX_CONTROL];
    struct mos_tp_msg m;
    struct mos_tp_place_buffer pb = {f->dst, (uintptr_t)f->src, (size_t)BUF_PAGES * 4096};
    struct mos_tp_bulk_stats st;
    char rep[64];
    struct slow_job job;
    pthread_t slow;
    int rc;

    if (mos_tp_accept(f->l, &c) < 0)
        return NULL;
    while ((rc = mos_tp_ctl_recv(c, &m, msg, sizeof(msg), 30000)) == 0 || rc == MOS_E_LIMIT) {
        if (rc == MOS_E_LIMIT)
            continue;
        char op = m.len ? (char)msg[0] : '?';
        if (op == 'Q')
            break;
        if (op == 'E') {
            rc = mos_tp_ctl_reply(c, m.id, msg, m.len);
        } else if (op == 'S') {
            job = (struct slow_job){c, pb, {0}, f, -1};
            pthread_create(&slow, NULL, slow_recv, &job);
            rc = mos_tp_ctl_reply(c, m.id, "go", 2);
        } else if (op == 'W') {
            pthread_join(slow, NULL);
            snprintf(rep, sizeof(rep), "%d %llu", job.rc, (unsigned long long)job.st.pages);
            rc = mos_tp_ctl_reply(c, m.id, rep, strlen(rep));
        } else if (op == 'B' || op == 'A') {
            (void)mos_tp_ctl_reply(c, m.id, "go", 2);
            rc = mos_tp_bulk_recv(c, mos_tp_place_into_buffer, &pb, &st);
            f->bulk_done = 1;
            if (rc == 0)
                snprintf(rep, sizeof(rep), "%llu %llu", (unsigned long long)st.frames,
                         (unsigned long long)st.pages);
            else
                snprintf(rep, sizeof(rep), "rc %d", rc);
            rc = mos_tp_ctl_send(c, 0, rep, strlen(rep)); /* one-way: the result */
        }
        if (rc < 0)
            break;
    }
    mos_tp_close(c);
    return NULL;
}

static int setup(void **state, enum mos_tp_backend backend, const char *addr)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct mos_tp_opts o;
    char hp[96];

    f->backend = backend;
    f->addr = addr;
    mos_tp_opts_default(&o);
    o.backend = backend;
    o.slot_bytes = 256 * 1024; /* many frames per transfer */
    o.slot_count = 4;
    snprintf(hp, sizeof(hp), "%s:0", addr);
    f->src = mmap(NULL, 2ul * BUF_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (f->src == MAP_FAILED || mos_tp_listen(hp, &o, &f->l) < 0)
        return -1;
    f->dst = f->src + (size_t)BUF_PAGES * 4096;
    for (size_t i = 0; i < (size_t)BUF_PAGES * 4096 / 8; i++)
        ((uint64_t *)f->src)[i] = i * 0x9e3779b97f4a7c15ull;
    pthread_create(&f->peer, NULL, peer_main, f);
    snprintf(hp, sizeof(hp), "%s:%d", addr, mos_tp_listener_port(f->l));
    if (mos_tp_connect(hp, &o, &f->c) < 0 || mos_tp_conn_backend(f->c) != backend)
        return -1;
    *state = f;
    return 0;
}

static int setup_tcp(void **state)
{
    return setup(state, MOS_TP_TCP, "127.0.0.1");
}

static int setup_verbs(void **state)
{
    const char *addr = getenv("MOS_TEST_VERBS_ADDR");

    if (!addr) {
        *state = NULL; /* the cases skip, saying why */
        return 0;
    }
    return setup(state, MOS_TP_VERBS, addr);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (!f)
        return 0;
    (void)mos_tp_ctl_send(f->c, 0, "Q", 1);
    pthread_join(f->peer, NULL);
    mos_tp_close(f->c);
    mos_tp_listener_close(f->l);
    munmap(f->src, 2ul * BUF_PAGES * 4096);
    free(f);
    return 0;
}

#define NEED(f)                                                                               \
    do {                                                                                      \
        if (!(f)) {                                                                           \
            print_message("verbs: skipped (no MOS_TEST_VERBS_ADDR: run in the rxe guest)\n"); \
            skip();                                                                           \
        }                                                                                     \
    } while (0)

/* Start a bulk case: op, then wait for "go". */
static void start(struct fixture *f, char op)
{
    char rep[8];
    size_t rl;

    memset(f->dst, 0, (size_t)BUF_PAGES * 4096);
    f->bulk_done = 0;
    assert_int_equal(mos_tp_ctl_call(f->c, &op, 1, rep, sizeof(rep), &rl), 0);
}

/* The peer's one-way result of a bulk case. */
static void result(struct fixture *f, char *text, size_t cap)
{
    struct mos_tp_msg m;

    assert_int_equal(mos_tp_ctl_recv(f->c, &m, text, cap - 1, -1), 0);
    assert_false(m.is_reply);
    text[m.len] = '\0';
}

static void test_control_echo(void **state)
{
    struct fixture *f = *state;
    static uint8_t req[MOS_TP_MAX_CONTROL], rep[MOS_TP_MAX_CONTROL];
    size_t sizes[] = {1, 15, 16, 17, 100, 4096, 60000, MOS_TP_MAX_CONTROL}, rl;

    NEED(f);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memset(req, (int)i + 1, sizes[i]);
        req[0] = 'E';
        assert_int_equal(mos_tp_ctl_call(f->c, req, sizes[i], rep, sizeof(rep), &rl), 0);
        assert_int_equal(rl, sizes[i]);
        assert_memory_equal(req, rep, rl);
    }
    /* too big to send: refused locally, connection intact */
    assert_int_equal(mos_tp_ctl_send(f->c, 1, req, MOS_TP_MAX_CONTROL + 1), MOS_E_LIMIT);
    /* a reply larger than the caller's buffer: MOS_E_LIMIT, connection intact */
    assert_int_equal(mos_tp_ctl_call(f->c, req, 1000, rep, 10, &rl), MOS_E_LIMIT);
    assert_int_equal(mos_tp_ctl_call(f->c, req, 1, rep, sizeof(rep), &rl), 0);
    /* nothing pending: a zero timeout says so */
    struct mos_tp_msg m;
    assert_int_equal(mos_tp_ctl_recv(f->c, &m, rep, sizeof(rep), 0), -ETIMEDOUT);
}

static void test_bulk_runs(void **state)
{
    struct fixture *f = *state;
    static struct mos_page_run runs[5000];
    char text[64];
    size_t n = 0;
    uint64_t pages = 0;

    NEED(f);
    /* 5000 one-page runs with one-page holes (several frames of many runs), then one long
     * run, then a second transfer over the holes. */
    for (size_t p = 0; p + 1 < BUF_PAGES && n < 4000; p += 2, n++, pages++)
        runs[n] = (struct mos_page_run){(uintptr_t)f->src + p * 4096, 1};
    start(f, 'B');
    assert_int_equal(mos_tp_bulk_send(f->c, 0, runs, n), 0);
    result(f, text, sizeof(text));
    unsigned long long fr, pg;
    assert_int_equal(sscanf(text, "%llu %llu", &fr, &pg), 2);
    assert_int_equal(pg, pages);
    assert_true(fr > 1);
    for (size_t i = 0; i < n; i++) {
        size_t off = (size_t)(runs[i].addr - (uintptr_t)f->src);
        assert_memory_equal(f->dst + off, f->src + off, 4096);
        assert_int_equal(f->dst[off + 4096], 0); /* the hole stayed empty */
    }
    struct mos_page_run whole = {(uintptr_t)f->src, BUF_PAGES};
    start(f, 'B');
    assert_int_equal(mos_tp_bulk_send(f->c, 0, &whole, 1), 0);
    result(f, text, sizeof(text));
    assert_memory_equal(f->dst, f->src, (size_t)BUF_PAGES * 4096);
    /* an empty transfer is a valid one */
    start(f, 'B');
    assert_int_equal(mos_tp_bulk_send(f->c, 0, runs, 0), 0);
    result(f, text, sizeof(text));
    assert_string_equal(text, "0 0");
}

static void test_source_dies(void **state)
{
    struct fixture *f = *state;
    char text[64];
    size_t rl;
    pid_t child = fork();

    NEED(f);
    if (child == 0) { /* a source process that owns none of the addresses asked for */
        munmap(f->src, 2ul * BUF_PAGES * 4096);
        pause();
        _exit(0);
    }
    usleep(100 * 1000);
    struct mos_page_run run = {(uintptr_t)f->src, 16};
    start(f, 'A');
    assert_int_equal(mos_tp_bulk_send(f->c, child, &run, 1), -EFAULT);
    result(f, text, sizeof(text));
    char want[32];
    snprintf(want, sizeof(want), "rc %d", -ECANCELED);
    assert_string_equal(text, want);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    /* the connection is still good */
    assert_int_equal(mos_tp_ctl_call(f->c, "E", 1, text, sizeof(text), &rl), 0);
    struct mos_page_run ok = {(uintptr_t)f->src, 64};
    start(f, 'B');
    assert_int_equal(mos_tp_bulk_send(f->c, 0, &ok, 1), 0);
    result(f, text, sizeof(text));
    assert_memory_equal(f->dst, f->src, 64 * 4096);
}

/* Live sources (mos_tp_bulk_send_live): the check hears how many leading pages each read got;
 * what could not be read arrives as zeros; a check that refuses ends the transfer. */
struct live_seen {
    uint64_t frames, pages, pages_read;
    int refuse; /* returned by the check when non-zero */
};

static int live_check(void *arg, const struct mos_page_run *runs, size_t n, uint64_t pages_read)
{
    struct live_seen *s = arg;

    s->frames++;
    for (size_t i = 0; i < n; i++)
        s->pages += runs[i].npages;
    s->pages_read += pages_read;
    return s->refuse;
}

static void test_live_source(void **state)
{
    struct fixture *f = *state;
    struct live_seen seen = {0};
    char text[64], want[32];
    size_t rl;
    int ready[2];

    NEED(f);
    for (size_t p = 0; p < 64; p++)
        memset(f->src + p * 4096, (int)(p + 1), 4096);
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) { /* the source, which no longer maps its second 32 pages */
        munmap(f->src + 32 * 4096, 32 * 4096);
        (void)!write(ready[1], "r", 1);
        pause();
        _exit(0);
    }
    assert_int_equal(read(ready[0], text, 1), 1);
    memset(f->dst, 0xAA, 64 * 4096);
    struct mos_page_run run = {(uintptr_t)f->src, 64};
    assert_int_equal(mos_tp_bulk_send_live(f->c, 0, &run, 1, live_check, &seen), -EINVAL);
    start(f, 'B');
    assert_int_equal(mos_tp_bulk_send_live(f->c, child, &run, 1, live_check, &seen), 0);
    result(f, text, sizeof(text));
    assert_int_equal(seen.pages, 64);
    assert_int_equal(seen.pages_read, 32);
    assert_memory_equal(f->dst, f->src, 32 * 4096);
    for (size_t b = 32 * 4096; b < 64 * 4096; b++)
        if (f->dst[b] != 0)
            fail_msg("byte %zu of a page the source could not read is %u, not 0", b, f->dst[b]);
    /* a check that refuses: nothing more leaves, the receiver is told, the connection lives */
    seen = (struct live_seen){.refuse = -EPERM};
    start(f, 'A');
    assert_int_equal(mos_tp_bulk_send_live(f->c, child, &run, 1, live_check, &seen), -EPERM);
    result(f, text, sizeof(text));
    snprintf(want, sizeof(want), "rc %d", -ECANCELED);
    assert_string_equal(text, want);
    assert_int_equal(seen.frames, 1);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    assert_int_equal(mos_tp_ctl_call(f->c, "E", 1, text, sizeof(text), &rl), 0);
}

struct bulk_job {
    struct fixture *f;
    int rc;
};

static void *bulk_thread(void *arg)
{
    struct bulk_job *j = arg;
    struct mos_page_run whole = {(uintptr_t)j->f->src, BUF_PAGES};

    j->rc = mos_tp_bulk_send(j->f->c, 0, &whole, 1);
    return NULL;
}

/* tcp: control messages are not stuck behind bulk data. The receiver's consumer is slow
 * (20 ms a frame, 128 frames: about 2.6 s) and runs in its own thread on both sides; round
 * trips on the same connection must complete while the transfer is still running. */
static void test_control_beside_bulk(void **state)
{
    struct fixture *f = *state;
    struct bulk_job j = {f, -1};
    pthread_t t;
    char rep[64];
    size_t rl;

    NEED(f);
    if (f->backend == MOS_TP_VERBS) {
        print_message("verbs: skipped (a verbs connection is used by one thread at a time; "
                      "its control QP is separate from the bulk QPs)\n");
        skip();
    }
    start(f, 'S');
    pthread_create(&t, NULL, bulk_thread, &j);
    usleep(100 * 1000);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(mos_tp_ctl_call(f->c, "E", 1, rep, sizeof(rep), &rl), 0);
        assert_false(f->bulk_done); /* answered while the bulk transfer still runs */
    }
    pthread_join(t, NULL);
    assert_int_equal(j.rc, 0);
    assert_int_equal(mos_tp_ctl_call(f->c, "W", 1, rep, sizeof(rep) - 1, &rl), 0);
    rep[rl] = '\0';
    assert_string_equal(rep, "0 8192");
    assert_memory_equal(f->dst, f->src, (size_t)BUF_PAGES * 4096);
}

int main(void)
{
    const struct CMUnitTest tcp[] = {
        cmocka_unit_test(test_control_echo),
        cmocka_unit_test(test_bulk_runs),
        cmocka_unit_test(test_source_dies),
        cmocka_unit_test(test_live_source),
        cmocka_unit_test(test_control_beside_bulk),
    };
    int rc = cmocka_run_group_tests_name("transport tcp", tcp, setup_tcp, teardown);
    rc += cmocka_run_group_tests_name("transport verbs", tcp, setup_verbs, teardown);
    return rc;
}
