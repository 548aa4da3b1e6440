/* The FDS record's pipe, anon-inode (eventfd, timerfd, signalfd, epoll), unix socket and memfd
 * entries, and the memfd objects (MEMFDS, MEMFD_PAGES): valid ones read back with their state; each way an entry can be wrong is refused
 * with one line, before a restore would make anything of it. */
#include "image_template.h"

#include "mos/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>

#define FDS_INDEX 7 /* IMAGE CORE MM VMAS SIGS RLIM THREAD, then FDS */
#define MEMFDS_INDEX 8
#define MEMFD_PAGES_INDEX 9

struct fd_entry {
    struct mos_rec_fd f;
    const char *name;
    const void *data;
    size_t len; /* of data */
};

/* Edits to the template: its FDS record made of entries (e != NULL), its memfd object's
 * entry and name, its MEMFD_PAGES record's header. */
struct edits {
    const struct fd_entry *e;
    uint32_t n;
    const struct mos_rec_memfd *obj;
    const char *obj_name;
    const struct mos_rec_memfd_pages *run;
};

static int no_put(void *arg, uint32_t index, uint64_t first, uint64_t npages, const uint8_t *p)
{
    (void)index, (void)first, (void)p;
    *(uint64_t *)arg += npages;
    return 0;
}

/* The template with the edits; read up to MEMFDS into *m, then the memfd data (*pages: how
 * many pages came, if pages). */
static int read_edited(const struct edits *ed, struct mos_img_meta *m, uint64_t *pages)
{
    static struct rec recs[16];
    struct membuf mb = {0};
    struct mos_img_writer w = {.io = &mb.io};
    struct mos_img_reader rd = {.io = &mb.io};
    struct mos_rec_fds hdr = {.count = ed->n};

    memset(recs, 0, sizeof(recs));
    mb.io.ops = &mem_ops;
    int nrec = template_build(recs, 0);
    assert_int_equal(recs[FDS_INDEX].magic, MOS_REC_FDS);
    assert_int_equal(recs[MEMFDS_INDEX].magic, MOS_REC_MEMFDS);
    assert_int_equal(recs[MEMFD_PAGES_INDEX].magic, MOS_REC_MEMFD_PAGES);
    if (ed->e) {
        recs[FDS_INDEX].len = 0;
        rec_add(&recs[FDS_INDEX], &hdr, sizeof(hdr));
    }
    for (uint32_t i = 0; ed->e && i < ed->n; i++) {
        rec_add(&recs[FDS_INDEX], &ed->e[i].f, sizeof(ed->e[i].f));
        rec_add(&recs[FDS_INDEX], ed->e[i].name, ed->e[i].f.path_len);
        if (ed->e[i].data)
            rec_add(&recs[FDS_INDEX], ed->e[i].data, ed->e[i].len);
    }
    if (ed->obj) {
        struct rec *r = &recs[MEMFDS_INDEX];
        r->len = sizeof(struct mos_rec_memfds);
        rec_add(r, ed->obj, sizeof(*ed->obj));
        rec_add(r, ed->obj_name, ed->obj->name_len);
    }
    if (ed->run)
        memcpy(recs[MEMFD_PAGES_INDEX].buf, ed->run, sizeof(*ed->run));
    for (int k = 0; k < nrec; k++) {
        struct iovec part = {recs[k].buf, recs[k].len};
        assert_int_equal(mos_img_put(&w, recs[k].magic, &part, 1), 0);
    }
    img_errors_reset();
    uint64_t got = 0;
    int rc = mos_img_meta_read(&rd, m);
    if (rc == 0 && pages) {
        rc = mos_img_memfd_data_read(&rd, m, no_put, &got);
        *pages = got;
        if (rc != 0)
            mos_img_meta_free(m);
    }
    mos_img_reader_free(&rd);
    free(mb.data);
    return rc;
}

static int read_with_fds(const struct fd_entry *e, uint32_t n, struct mos_img_meta *m)
{
    struct edits ed = {.e = e, .n = n};

    return read_edited(&ed, m, NULL);
}

static struct fd_entry pipe_end(int fd, int acc, uint32_t size, const char *name,
                                const char *data)
{
    struct fd_entry e = {.f = {.fd = fd, .kind = MOS_FD_PIPE, .flags = (uint32_t)acc,
                               .path_len = (uint32_t)strlen(name), .dup_of = -1,
                               .pipe_size = size,
                               .data_len = data ? (uint32_t)strlen(data) : 0},
                         .name = name, .data = data, .len = data ? strlen(data) : 0};
    return e;
}

static void expect_refused(const struct fd_entry *e, uint32_t n, const char *why)
{
    struct mos_img_meta m;

    assert_int_equal(read_with_fds(e, n, &m), MOS_E_IMAGE);
    assert_int_equal(img_errors()->count, 1);
    if (!strstr(img_errors()->last, why))
        fail_msg("expected '%s', got '%s'", why, img_errors()->last);
}

static void test_pipe_reads_back(void **state)
{
    (void)state;
    struct fd_entry e[2] = {pipe_end(4, O_RDONLY, 65536, "pipe:[77]", "queued"),
                            pipe_end(5, O_WRONLY | O_NONBLOCK, 65536, "pipe:[77]", NULL)};
    struct mos_img_meta m;

    assert_int_equal(read_with_fds(e, 2, &m), 0);
    assert_int_equal(m.nfds, 2);
    assert_int_equal(m.fds[0].f.data_len, 6);
    assert_memory_equal(m.fds[0].data, "queued", 6);
    assert_null(m.fds[1].data);
    assert_string_equal(m.fds[1].path, "pipe:[77]");
    mos_img_meta_free(&m);
}

static void test_pipe_entries_checked(void **state)
{
    (void)state;
    struct fd_entry e[2] = {pipe_end(4, O_RDONLY, 65536, "pipe:[77]", NULL),
                            pipe_end(5, O_WRONLY, 65536, "pipe:[77]", "late")};
    /* the data belongs with the pipe's first entry only */
    expect_refused(e, 2, "other than its first entry");
    e[1] = pipe_end(5, O_WRONLY, 65536, "pipe:[77]", NULL);
    e[0] = pipe_end(4, O_RDONLY, 4096, "pipe:[77]", NULL);
    e[0].f.data_len = 4097; /* more than the pipe holds */
    expect_refused(e, 1, "pipe entry out of range");
    e[0] = pipe_end(4, O_RDONLY, 65536, "pipe:[7x]", NULL);
    expect_refused(e, 1, "pipe entry out of range");
    e[0] = pipe_end(4, O_RDWR, 65536, "pipe:[77]", NULL);
    expect_refused(e, 1, "pipe entry out of range");
    e[0] = pipe_end(4, O_RDONLY, MOS_IMG_MAX_PIPE_SIZE * 2, "pipe:[77]", NULL);
    expect_refused(e, 1, "pipe entry out of range");
    e[0] = pipe_end(4, O_RDONLY, 65536, "pipe:[77]", "abc");
    e[0].f.data_len = 100; /* beyond the record */
    expect_refused(e, 1, "beyond the record");
    /* pipe fields on another kind */
    e[0] = (struct fd_entry){.f = {.fd = 3, .kind = MOS_FD_FILE, .path_len = 4, .dup_of = -1,
                                   .pipe_size = 4096},
                             .name = "/etc"};
    expect_refused(e, 1, "state for a kind that has none");
    /* a dup names an earlier entry of the same pipe */
    e[0] = pipe_end(4, O_RDONLY, 65536, "pipe:[77]", NULL);
    e[1] = pipe_end(5, O_RDONLY, 65536, "pipe:[78]", NULL);
    e[1].f.dup_of = 4;
    expect_refused(e, 2, "dup_of names no earlier fd");
}

static struct fd_entry anon_entry(int fd, uint32_t kind, const char *name, const void *state,
                                   size_t len)
{
    struct fd_entry e = {.f = {.fd = fd, .kind = kind, .flags = O_RDWR,
                               .path_len = (uint32_t)strlen(name), .dup_of = -1,
                               .data_len = (uint32_t)len},
                         .name = name, .data = state, .len = len};
    return e;
}

static void test_anon_entries_checked(void **state)
{
    (void)state;
    struct mos_rec_eventfd ev = {.count = 9, .semaphore = 1};
    struct mos_rec_timerfd tm = {.clockid = CLOCK_MONOTONIC, .value_nsec = 5,
                                 .interval_nsec = 20000000};
    struct mos_rec_signalfd sg = {.mask = 1u << 9};
    struct fd_entry e[3] = {anon_entry(3, MOS_FD_EVENTFD, "anon_inode:[eventfd]", &ev, sizeof(ev)),
                            anon_entry(4, MOS_FD_TIMERFD, "anon_inode:[timerfd]", &tm, sizeof(tm)),
                            anon_entry(5, MOS_FD_SIGNALFD, "anon_inode:[signalfd]", &sg,
                                       sizeof(sg))};
    struct mos_img_meta m;

    assert_int_equal(read_with_fds(e, 3, &m), 0);
    assert_memory_equal(m.fds[0].data, &ev, sizeof(ev));
    assert_memory_equal(m.fds[1].data, &tm, sizeof(tm));
    mos_img_meta_free(&m);
    ev.semaphore = 2;
    expect_refused(e, 1, "anon-inode state out of range");
    ev.semaphore = 0;
    ev.count = UINT64_MAX;
    expect_refused(e, 1, "anon-inode state out of range");
    ev.count = 1;
    tm.clockid = CLOCK_PROCESS_CPUTIME_ID;
    expect_refused(e, 2, "anon-inode state out of range");
    tm.clockid = CLOCK_MONOTONIC;
    tm.interval_nsec = 1000000000;
    expect_refused(e, 2, "anon-inode state out of range");
    tm.interval_nsec = 0;
    e[2].f.data_len = 4; /* not its struct's size */
    e[2].len = 4;
    expect_refused(e, 3, "anon-inode entry out of range");
    e[2] = anon_entry(5, MOS_FD_SIGNALFD, "anon_inode:[eventfd]", &sg, sizeof(sg));
    expect_refused(e, 3, "anon-inode entry out of range");
    /* a dup carries no state of its own */
    e[1] = anon_entry(4, MOS_FD_EVENTFD, "anon_inode:[eventfd]", &ev, sizeof(ev));
    e[1].f.dup_of = 3;
    expect_refused(e, 2, "anon-inode entry out of range");
}

static void test_epoll_entries_checked(void **state)
{
    (void)state;
    struct mos_rec_eventfd ev = {.count = 1};
    struct mos_rec_epoll_watch w[2] = {{.tfd = 3, .events = EPOLLIN | EPOLLET, .data = 7},
                                       {.tfd = 1, .events = EPOLLOUT, .data = 8}};
    struct fd_entry e[3] = {
        {.f = {.fd = 1, .kind = MOS_FD_STDIO, .dup_of = -1}, .name = ""},
        anon_entry(3, MOS_FD_EVENTFD, "anon_inode:[eventfd]", &ev, sizeof(ev)),
        anon_entry(4, MOS_FD_EPOLL, "anon_inode:[eventpoll]", w, sizeof(w))};
    struct mos_img_meta m;

    assert_int_equal(read_with_fds(e, 3, &m), 0);
    assert_int_equal(m.fds[2].f.data_len, sizeof(w));
    assert_memory_equal(m.fds[2].data, w, sizeof(w));
    mos_img_meta_free(&m);
    w[1].tfd = 9; /* no such fd in the image */
    expect_refused(e, 3, "an epoll watches");
    w[1].tfd = 4; /* itself: an epoll */
    expect_refused(e, 3, "an epoll watches");
    w[1].tfd = 3; /* the same fd twice */
    expect_refused(e, 3, "an epoll watches");
    w[1].tfd = 1;
    w[1].events = 1u << 20; /* no such flag */
    expect_refused(e, 3, "an epoll watches");
    w[1].events = EPOLLIN;
    e[2].f.data_len = e[2].len = sizeof(w) - 4; /* not whole watches */
    expect_refused(e, 3, "anon-inode entry out of range");
}

/* A socket's state: struct mos_rec_unix and its messages, laid out in buf. */
static size_t unix_state(uint8_t *buf, uint32_t type, uint64_t peer, const char *const *msgs,
                         uint32_t n)
{
    struct mos_rec_unix u = {.type = type, .peer = peer, .sndbuf = 4096, .rcvbuf = 4096,
                             .nmsgs = n};
    size_t off = sizeof(u);

    memcpy(buf, &u, sizeof(u));
    for (uint32_t k = 0; k < n; k++) {
        uint32_t len = (uint32_t)strlen(msgs[k]);
        memcpy(buf + off, &len, sizeof(len));
        memcpy(buf + off + sizeof(len), msgs[k], len);
        off += sizeof(len) + len;
    }
    return off;
}

static struct fd_entry unix_end(int fd, const char *name, const uint8_t *state, size_t len)
{
    return anon_entry(fd, MOS_FD_UNIX, name, state, len);
}

static void test_unix_pair_reads_back(void **state)
{
    (void)state;
    static uint8_t a[256], b[256];
    const char *msgs[] = {"one", "", "three"};
    struct fd_entry e[3] = {
        unix_end(3, "socket:[501]", a, unix_state(a, SOCK_DGRAM, 502, msgs, 3)),
        unix_end(4, "socket:[502]", b, unix_state(b, SOCK_DGRAM, 501, NULL, 0)),
        unix_end(5, "socket:[501]", NULL, 0)};
    struct mos_img_meta m;

    e[2].f.dup_of = 3;
    assert_int_equal(read_with_fds(e, 3, &m), 0);
    assert_int_equal(m.nfds, 3);
    assert_int_equal(m.fds[0].f.data_len, e[0].len);
    assert_memory_equal(m.fds[0].data, a, e[0].len);
    assert_null(m.fds[2].data);
    mos_img_meta_free(&m);
    /* a pair's one end alone, its other end closed */
    size_t len = unix_state(a, SOCK_STREAM, 0, msgs, 1);
    e[0] = unix_end(3, "socket:[501]", a, len);
    assert_int_equal(read_with_fds(e, 1, &m), 0);
    mos_img_meta_free(&m);
}

static void test_unix_entries_checked(void **state)
{
    (void)state;
    static uint8_t a[256], b[256];
    const char *msgs[] = {"one", "two"};
    size_t la = unix_state(a, SOCK_STREAM, 502, NULL, 0);
    size_t lb = unix_state(b, SOCK_STREAM, 501, msgs, 1);
    struct fd_entry e[2] = {unix_end(3, "socket:[501]", a, la), unix_end(4, "socket:[502]", b, lb)};
    struct mos_img_meta m;

    assert_int_equal(read_with_fds(e, 2, &m), 0);
    mos_img_meta_free(&m);
    /* the other end missing, naming someone else, of another type, or the same socket twice */
    expect_refused(e, 1, "whose other end is not in the image");
    lb = unix_state(b, SOCK_STREAM, 777, msgs, 1);
    expect_refused(e, 2, "whose other end is not in the image");
    lb = unix_state(b, SOCK_DGRAM, 501, msgs, 1);
    expect_refused(e, 2, "whose other end is not in the image");
    lb = unix_state(b, SOCK_STREAM, 502, msgs, 1);
    e[1].name = "socket:[501]";
    expect_refused(e, 2, "whose other end is not in the image");
    e[1].name = "socket:[502]";
    lb = unix_state(b, SOCK_STREAM, 501, msgs, 1);
    e[1].len = e[1].f.data_len = (uint32_t)lb;
    /* a stream's queue is one message; a message beyond the state; an unknown type */
    e[1].len = e[1].f.data_len = (uint32_t)unix_state(b, SOCK_STREAM, 501, msgs, 2);
    expect_refused(e, 2, "unix socket state out of range");
    size_t lt = unix_state(b, SOCK_DGRAM, 501, msgs, 2);
    unix_state(a, SOCK_DGRAM, 502, NULL, 0);
    e[1].len = e[1].f.data_len = (uint32_t)lt - 1;
    expect_refused(e, 2, "unix socket state out of range");
    e[1].len = e[1].f.data_len = (uint32_t)unix_state(b, 99, 501, NULL, 0);
    expect_refused(e, 2, "unix socket state out of range");
    /* the name, the access mode, a state too short, state in a dup */
    e[1].len = e[1].f.data_len = (uint32_t)unix_state(b, SOCK_DGRAM, 501, NULL, 0);
    e[1].name = "socket:[0]";
    e[1].f.path_len = (uint32_t)strlen(e[1].name);
    expect_refused(e, 2, "unix socket entry out of range");
    e[1].name = "socket:[502] ";
    e[1].f.path_len = (uint32_t)strlen(e[1].name);
    expect_refused(e, 2, "unix socket entry out of range");
    e[1].name = "socket:[502]";
    e[1].f.path_len = (uint32_t)strlen(e[1].name);
    e[1].f.flags = O_RDONLY;
    expect_refused(e, 2, "unix socket entry out of range");
    e[1].f.flags = O_RDWR;
    e[1].len = e[1].f.data_len = sizeof(struct mos_rec_unix) - 4;
    expect_refused(e, 2, "unix socket entry out of range");
    e[1] = unix_end(4, "socket:[501]", b, unix_state(b, SOCK_DGRAM, 0, NULL, 0));
    e[1].f.dup_of = 3;
    expect_refused(e, 2, "unix socket entry out of range");
    /* a message longer than the image may carry, its length beyond the state */
    static uint8_t big[64];
    struct mos_rec_unix u = {.type = SOCK_STREAM, .nmsgs = 1};
    uint32_t n = MOS_IMG_MAX_PIPE_DATA + 1;
    memcpy(big, &u, sizeof(u));
    memcpy(big + sizeof(u), &n, sizeof(n));
    e[0] = unix_end(3, "socket:[501]", big, sizeof(big));
    expect_refused(e, 1, "unix socket state out of range");
}

static struct fd_entry memfd_entry(int fd, const uint64_t *ino, int dup_of)
{
    struct fd_entry e = {.f = {.fd = fd, .kind = MOS_FD_MEMFD, .flags = O_RDWR, .path_len = 19,
                               .dup_of = dup_of, .data_len = ino ? sizeof(*ino) : 0},
                         .name = "/memfd:fz (deleted)", .data = ino,
                         .len = ino ? sizeof(*ino) : 0};
    return e;
}

static void test_memfd_entries_checked(void **state)
{
    static const uint64_t known = 77, unknown = 78;
    struct fd_entry e[2] = {memfd_entry(3, &known, -1), memfd_entry(4, NULL, 3)};
    struct mos_img_meta m;
    uint64_t pages = 0;
    struct edits ed = {.e = e, .n = 2};

    (void)state;
    assert_int_equal(read_edited(&ed, &m, &pages), 0);
    assert_int_equal(m.nmemfds, 1);
    assert_string_equal(m.memfds[0].name, "fz");
    assert_int_equal(mos_img_fd_memfd_ino(&m, &m.fds[1]), 77); /* the dup's, through fd 3 */
    assert_int_equal(pages, 2);
    mos_img_meta_free(&m);
    e[0] = memfd_entry(3, &unknown, -1);
    expect_refused(e, 2, "names a memfd the image lacks");
    e[0] = memfd_entry(3, NULL, -1); /* no object named */
    expect_refused(e, 1, "memfd entry out of range");
    e[0] = memfd_entry(3, &known, -1);
    e[1] = memfd_entry(4, &known, 3); /* a dup carries nothing */
    expect_refused(e, 2, "memfd entry out of range");
    e[0].name = "/memfd:fz (dele)";
    e[0].f.path_len = 16;
    expect_refused(e, 1, "memfd entry out of range");
}

/* Each way an object or its data can be wrong: refused with one line. */
static void expect_memfd_refused(const struct mos_rec_memfd *o, const char *name,
                                 const struct mos_rec_memfd_pages *run, const char *why)
{
    struct mos_img_meta m;
    uint64_t pages;
    struct edits ed = {.obj = o, .obj_name = name, .run = run};

    assert_int_equal(read_edited(&ed, &m, &pages), MOS_E_IMAGE);
    assert_int_equal(img_errors()->count, 1);
    if (!strstr(img_errors()->last, why))
        fail_msg("expected '%s', got '%s'", why, img_errors()->last);
}

static void test_memfd_objects_checked(void **state)
{
    const struct mos_rec_memfd ok = {.ino = 77, .size = 3 * 4096 + 5, .data_pages = 2,
                                     .seals = 2, .name_len = 2};
    struct mos_rec_memfd o = ok;
    struct mos_rec_memfd_pages run = {.index = 0, .first = 1, .npages = 2};
    const char *range = "MEMFDS record: entry out of range";

    (void)state;
    o.seals = 0x40;
    expect_memfd_refused(&o, "fz", NULL, range);
    o = ok;
    o.size = MOS_IMG_MAX_MEMFD_BYTES + 1;
    expect_memfd_refused(&o, "fz", NULL, range);
    o = ok;
    o.data_pages = 5; /* more than its 4 pages */
    expect_memfd_refused(&o, "fz", NULL, range);
    o = ok;
    o.ino = 0;
    expect_memfd_refused(&o, "fz", NULL, range);
    o = ok;
    expect_memfd_refused(&o, "f\0", NULL, "MEMFDS record: bad name");
    o.ino = 78; /* the fd and the VMA name 77 */
    expect_memfd_refused(&o, "fz", NULL, "names a memfd the image lacks");
    o = ok;
    run.first = 3; /* pages 3..4 of a 4-page object: past its end */
    expect_memfd_refused(&o, "fz", &run, "MEMFD_PAGES record");
    run.first = 1;
    run.index = 1;
    expect_memfd_refused(&o, "fz", &run, "MEMFD_PAGES record");
    run.index = 0;
    run.npages = 3; /* more than the object's data_pages, and than the record holds */
    expect_memfd_refused(&o, "fz", &run, "MEMFD_PAGES record");
    o.data_pages = 1;
    run.npages = 2;
    expect_memfd_refused(&o, "fz", &run, "MEMFD_PAGES record");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_reads_back),
        cmocka_unit_test(test_pipe_entries_checked),
        cmocka_unit_test(test_anon_entries_checked),
        cmocka_unit_test(test_epoll_entries_checked),
        cmocka_unit_test(test_unix_pair_reads_back),
        cmocka_unit_test(test_unix_entries_checked),
        cmocka_unit_test(test_memfd_entries_checked),
        cmocka_unit_test(test_memfd_objects_checked),
    };
    mos_log_set_sink(img_errors_sink, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
