/* Unit tests of the forwarding layer: the syscall table, the message codecs and their limits,
 * the link's framing, and the deputy link's token proof. */
#include "../src/forward_priv.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static void test_classes(void **state)
{
    (void)state;
    assert_int_equal(mos_syscall_class(SYS_read), MOS_SYS_FORWARD);
    assert_int_equal(mos_syscall_class(SYS_openat), MOS_SYS_FORWARD);
    assert_int_equal(mos_syscall_class(SYS_brk), MOS_SYS_LOCAL);
    assert_int_equal(mos_syscall_class(SYS_futex), MOS_SYS_LOCAL);
    assert_int_equal(mos_syscall_class(SYS_getpid), MOS_SYS_VIRTUAL);
    assert_int_equal(mos_syscall_class(SYS_fork), MOS_SYS_HOME);
    assert_int_equal(mos_syscall_class(SYS_execve), MOS_SYS_HOME);
    /* anything the table does not name cannot run away from home */
    assert_int_equal(mos_syscall_class(SYS_kexec_load), MOS_SYS_HOME);
    assert_int_equal(mos_syscall_class(-1), MOS_SYS_HOME);
    assert_int_equal(mos_syscall_class(100000), MOS_SYS_HOME);
    assert_string_equal(mos_syscall_name(SYS_pread64), "pread64");
    assert_string_equal(mos_syscall_name(100000), "?");
}

static void test_every_forwarded_layout_is_sound(void **state)
{
    (void)state;
    uint64_t args[FWD_NARGS] = {0};
    struct fwd_arg_spec spec[FWD_NARGS];

    for (long nr = 0; nr < FWD_SYSCALL_MAX; nr++) {
        if (mos_syscall_class(nr) != MOS_SYS_FORWARD)
            continue;
        int rc = fwd_layout(nr, args, spec);
        if (rc == -ENOSYS) /* the iovec calls, rewritten by the supervisor */
            continue;
        if (rc == -ENOTTY && nr == SYS_ioctl)
            continue;
        assert_int_equal(rc, 0);
        for (int i = 0; i < FWD_NARGS; i++) {
            /* a length reference names an argument that holds a length */
            if (spec[i].kind == ARG_IO_IN || spec[i].kind == ARG_IO_OUT ||
                spec[i].kind == ARG_IN_LEN || spec[i].kind == ARG_INOUT_ARR ||
                spec[i].kind == ARG_OUT_ARR_RET)
                assert_true(spec[spec[i].ref].kind == ARG_VAL);
            if (spec[i].kind == ARG_OUT_DEREF)
                assert_true(spec[spec[i].ref].kind == ARG_INOUT_FIX &&
                            spec[spec[i].ref].size == 4);
            if (spec[i].kind >= ARG_IN_FIX && spec[i].kind <= ARG_INOUT_FIX)
                assert_true(spec[i].size > 0);
        }
    }
}

static void test_ioctl_whitelist(void **state)
{
    (void)state;
    uint64_t args[FWD_NARGS] = {1, TCGETS, 0x1000};
    struct fwd_arg_spec spec[FWD_NARGS];

    assert_int_equal(fwd_layout(SYS_ioctl, args, spec), 0);
    assert_int_equal(spec[2].kind, ARG_OUT_FIX);
    args[1] = 0xdeadbeef;
    assert_int_equal(fwd_layout(SYS_ioctl, args, spec), -ENOTTY);
}

static void test_call_roundtrip(void **state)
{
    (void)state;
    uint8_t data[] = "/etc/hostname", wire[256];
    struct fwd_call in = {.id = 0xa1b2c3d4, .nr = SYS_openat,
                          .args = {(uint64_t)-100, 0x7000, 0, 0}, .nbufs = 1};
    struct fwd_call out;

    in.bufs[0] = (struct fwd_buf){.argidx = 1, .dir = FWD_DIR_IN, .len = sizeof(data),
                                  .data = data};
    ssize_t n = fwd_call_encode(&in, wire, sizeof(wire));
    assert_true(n > 0);
    assert_int_equal(fwd_call_decode(wire, (size_t)n, &out), 0);
    assert_int_equal(out.id, 0xa1b2c3d4);
    assert_int_equal(out.nr, SYS_openat);
    assert_int_equal(out.args[0], (uint64_t)-100);
    assert_int_equal(out.nbufs, 1);
    assert_memory_equal(out.bufs[0].data, data, sizeof(data));
    /* every truncation fails cleanly */
    for (ssize_t cut = 0; cut < n; cut++)
        assert_int_equal(fwd_call_decode(wire, (size_t)cut, &out), MOS_E_PROTO);
    /* trailing garbage too */
    assert_int_equal(fwd_call_decode(wire, (size_t)n + 1, &out), MOS_E_PROTO);
    assert_int_equal(fwd_call_encode(&in, wire, 20), -EMSGSIZE);
}

static void test_call_rejects(void **state)
{
    (void)state;
    uint8_t data[4] = {0}, wire[256];
    struct fwd_call in = {.nr = SYS_read, .nbufs = 2}, out;

    in.bufs[0] = (struct fwd_buf){.argidx = 1, .dir = FWD_DIR_IN, .len = 4, .data = data};
    in.bufs[1] = (struct fwd_buf){.argidx = 1, .dir = FWD_DIR_IN, .len = 4, .data = data};
    ssize_t n = fwd_call_encode(&in, wire, sizeof(wire));
    assert_int_equal(fwd_call_decode(wire, (size_t)n, &out), MOS_E_PROTO); /* duplicate arg */
    in.nbufs = 1;
    in.bufs[0].argidx = 6;
    n = fwd_call_encode(&in, wire, sizeof(wire));
    assert_int_equal(fwd_call_decode(wire, (size_t)n, &out), MOS_E_PROTO); /* arg out of range */
    in.bufs[0].argidx = 1;
    in.bufs[0].dir = 4;
    n = fwd_call_encode(&in, wire, sizeof(wire));
    assert_int_equal(fwd_call_decode(wire, (size_t)n, &out), MOS_E_PROTO); /* bad direction */
}

static void test_result_roundtrip(void **state)
{
    (void)state;
    uint8_t data[10] = "0123456789", wire[128];
    struct fwd_result in = {.id = 77, .ret = 10, .nbufs = 1}, out;

    in.bufs[0] = (struct fwd_buf){.argidx = 1, .dir = FWD_DIR_OUT, .len = 10, .data = data};
    ssize_t n = fwd_result_encode(&in, wire, sizeof(wire));
    assert_int_equal(fwd_result_decode(wire, (size_t)n, &out), 0);
    assert_int_equal(out.id, 77);
    assert_int_equal(out.ret, 10);
    assert_memory_equal(out.bufs[0].data, data, 10);
    in.bufs[0].dir = FWD_DIR_IN; /* a result carries outputs only */
    n = fwd_result_encode(&in, wire, sizeof(wire));
    assert_int_equal(fwd_result_decode(wire, (size_t)n, &out), MOS_E_PROTO);
}

/* Write a frame sealed with a's keys as fwd_send would, but with a header of our own. */
static void send_sealed(struct mos_link *a, uint16_t version, uint16_t type, uint32_t length,
                        const void *payload, size_t n)
{
    uint8_t frame[MOS_FRAME_HDR_BYTES + 64], rec[sizeof(frame) + MOS_SEAL_RECORD_EXTRA];

    memcpy(frame, "MDEP", 4);
    mos_put_le16(frame + 4, version);
    mos_put_le16(frame + 6, type);
    mos_put_le32(frame + 8, length);
    memcpy(frame + MOS_FRAME_HDR_BYTES, payload, n);
    mos_seal_record(&a->seal.tx, frame, MOS_FRAME_HDR_BYTES + n, rec);
    assert_int_equal(write(a->fd, rec, MOS_FRAME_HDR_BYTES + n + MOS_SEAL_RECORD_EXTRA),
                     MOS_FRAME_HDR_BYTES + n + MOS_SEAL_RECORD_EXTRA);
}

static void test_framing(void **state)
{
    (void)state;
    enum { REC = MOS_FRAME_HDR_BYTES + 8 + MOS_SEAL_RECORD_EXTRA };
    uint8_t raw[REC], *rx = NULL, ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t cap = 0, len;
    uint16_t type;
    struct mos_link a, b;

    assert_int_equal(mos_link_pair(&a, &b), 0);
    assert_int_equal(fwd_send(&a, FWD_MSG_HELLO, ids, sizeof(ids)), 0);
    assert_int_equal(read(b.fd, raw, sizeof(raw)), sizeof(raw));
    /* a sealed record: its length in clear, the frame (the common mos header, "MDEP") not */
    assert_int_equal(mos_get_le32(raw), MOS_FRAME_HDR_BYTES + 8);
    assert_null(memmem(raw, sizeof(raw), "MDEP", 4));
    assert_null(memmem(raw, sizeof(raw), ids, 8));
    assert_int_equal(write(a.fd, raw, sizeof(raw)), sizeof(raw));
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), 0);
    assert_int_equal(type, FWD_MSG_HELLO);
    assert_int_equal(len, 8);
    assert_memory_equal(rx, ids, 8);
    /* the same record again: a replay does not open */
    assert_int_equal(write(a.fd, raw, sizeof(raw)), sizeof(raw));
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), MOS_E_TAMPERED);
    mos_link_close(&a);
    mos_link_close(&b);

    /* one bit changed on the way */
    assert_int_equal(mos_link_pair(&a, &b), 0);
    assert_int_equal(fwd_send(&a, FWD_MSG_HELLO, ids, sizeof(ids)), 0);
    assert_int_equal(read(b.fd, raw, sizeof(raw)), sizeof(raw));
    raw[10] ^= 0x10;
    assert_int_equal(write(a.fd, raw, sizeof(raw)), sizeof(raw));
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), MOS_E_TAMPERED);
    mos_link_close(&a);
    mos_link_close(&b);

    /* a type's limit holds on both ends: a HELLO longer than two ids, an unknown type; and a
     * sealed frame from the key holder is still checked like any frame */
    assert_int_equal(mos_link_pair(&a, &b), 0);
    assert_int_equal(fwd_send(&a, FWD_MSG_HELLO, ids, 9), -EMSGSIZE);
    assert_int_equal(fwd_send(&a, 99, ids, 1), -EMSGSIZE);
    send_sealed(&a, FWD_VERSION, FWD_MSG_HELLO, 9, ids, 8);
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), MOS_E_PROTO);
    /* an INTERRUPT carries a call id and nothing else */
    assert_int_equal(fwd_send(&a, FWD_MSG_INTERRUPT, ids, 4), 0);
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), 0);
    assert_int_equal(type, FWD_MSG_INTERRUPT);
    assert_int_equal(fwd_send(&a, FWD_MSG_INTERRUPT, ids, 8), -EMSGSIZE);
    send_sealed(&a, FWD_VERSION, FWD_MSG_INTERRUPT, 8, ids, 8);
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), MOS_E_PROTO);
    send_sealed(&a, FWD_VERSION + 1, FWD_MSG_HELLO, 8, ids, 8);
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), MOS_E_VERSION);
    /* a record longer than any frame may be: refused before it is read */
    mos_put_le32(raw, MOS_FRAME_HDR_BYTES + FWD_MAX_PAYLOAD + 1);
    assert_int_equal(write(a.fd, raw, 4), 4);
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), MOS_E_PROTO);
    mos_link_close(&a);
    mos_link_close(&b);

    /* a record cut short by the peer's close */
    assert_int_equal(mos_link_pair(&a, &b), 0);
    assert_int_equal(fwd_send(&a, FWD_MSG_HELLO, ids, sizeof(ids)), 0);
    assert_int_equal(read(b.fd, raw, sizeof(raw)), sizeof(raw));
    assert_int_equal(write(a.fd, raw, sizeof(raw) - 1), sizeof(raw) - 1);
    mos_link_close(&a);
    assert_int_equal(fwd_recv(&b, &type, &rx, &cap, &len), MOS_E_TRUNCATED);
    mos_link_close(&b);
    free(rx);
}

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}


/* ---- a deputy driven by a hand-made supervisor ------------------------------------------------ */

struct fake_sup {
    pid_t deputy;
    struct mos_link link; /* our end */
    int pipe_w;   /* the write end of a pipe whose read end (pipe_r) the deputy reads */
    int pipe_r;
    int other[2]; /* a second pipe */
    uint8_t *rx;
    size_t cap, len;
};

static void fake_sup_start(struct fake_sup *f)
{
    struct mos_link ours, theirs;
    int p[2];
    uint16_t type;

    mos_log_set_sink(quiet, NULL);
    assert_int_equal(mos_link_pair(&ours, &theirs), 0);
    assert_int_equal(pipe(p), 0);
    memset(f, 0, sizeof(*f));
    f->pipe_r = p[0];
    f->pipe_w = p[1];
    assert_int_equal(pipe(f->other), 0);
    f->deputy = fork();
    assert_true(f->deputy >= 0);
    if (f->deputy == 0) {
        int reserved, status = 0;
        close(ours.fd);
        assert_int_equal(mos_deputy_link_prepare(&theirs, &reserved), 0);
        struct mos_deputy_opts opts = {.identity = {getpid(), getppid()},
                                       .reserved_fd_min = reserved};
        int rc = mos_deputy_serve(&theirs, &opts, &status);
        _exit(rc == 0 ? WEXITSTATUS(status) : rc == MOS_E_PROTO ? 98 :
              rc == MOS_DEPUTY_MOVING ? 97 : 99);
    }
    mos_link_close(&theirs);
    f->link = ours;
    assert_int_equal(fwd_recv(&f->link, &type, &f->rx, &f->cap, &f->len), 0);
    assert_int_equal(type, FWD_MSG_HELLO);
}

/* The deputy's exit code, or -1 if it is still there after 20 s (then killed). */
static int fake_sup_end(struct fake_sup *f)
{
    int status = 0;

    for (int i = 0; i < 2000 && waitpid(f->deputy, &status, WNOHANG) == 0; i++)
        usleep(10000);
    if (waitpid(f->deputy, &status, WNOHANG) == 0) {
        kill(f->deputy, SIGKILL);
        waitpid(f->deputy, &status, 0);
        status = -1;
    }
    mos_link_close(&f->link);
    close(f->pipe_r);
    close(f->pipe_w);
    close(f->other[0]);
    close(f->other[1]);
    free(f->rx);
    mos_log_set_sink(NULL, NULL);
    return status == -1 || !WIFEXITED(status) ? -1 : WEXITSTATUS(status);
}

static void send_read(struct fake_sup *f, uint32_t id, int fd, uint32_t len)
{
    uint8_t wire[256];
    struct fwd_call c = {.id = id, .nr = SYS_read, .args = {(uint64_t)fd, 1, len}, .nbufs = 1};

    c.bufs[0] = (struct fwd_buf){.argidx = 1, .dir = FWD_DIR_OUT, .len = len};
    ssize_t n = fwd_call_encode(&c, wire, sizeof(wire));
    assert_true(n > 0);
    assert_int_equal(fwd_send(&f->link, FWD_MSG_CALL, wire, (size_t)n), 0);
}

static void send_write(struct fake_sup *f, uint32_t id, int fd, const char *text)
{
    uint8_t wire[256];
    uint32_t len = (uint32_t)strlen(text);
    struct fwd_call c = {.id = id, .nr = SYS_write, .args = {(uint64_t)fd, 1, len}, .nbufs = 1};

    c.bufs[0] = (struct fwd_buf){.argidx = 1, .dir = FWD_DIR_IN, .len = len,
                                 .data = (uint8_t *)text};
    ssize_t n = fwd_call_encode(&c, wire, sizeof(wire));
    assert_true(n > 0);
    assert_int_equal(fwd_send(&f->link, FWD_MSG_CALL, wire, (size_t)n), 0);
}

static void expect_result(struct fake_sup *f, struct fwd_result *res)
{
    uint16_t type;

    assert_int_equal(fwd_recv(&f->link, &type, &f->rx, &f->cap, &f->len), 0);
    assert_int_equal(type, FWD_MSG_RESULT);
    assert_int_equal(fwd_result_decode(f->rx, f->len, res), 0);
}

static void send_u32(struct fake_sup *f, uint16_t type, uint32_t v)
{
    uint8_t b[4];

    mos_put_le32(b, v);
    assert_int_equal(fwd_send(&f->link, type, b, sizeof(b)), 0);
}

/* A read blocked at home does not hold up a later call: the write's result comes first, each
 * result names its call; INTERRUPT ends the blocked one with -ERESTARTSYS (an unknown id is a
 * crossing, not an error); EXIT ends the deputy. */
static void test_deputy_concurrent_calls(void **state)
{
    (void)state;
    struct fake_sup f;
    struct fwd_result res;

    fake_sup_start(&f);
    send_read(&f, 1, f.pipe_r, 8);
    send_write(&f, 2, f.other[1], "zz"); /* another pipe: the read still blocks */
    expect_result(&f, &res);
    assert_int_equal(res.id, 2);
    assert_int_equal(res.ret, 2);
    send_write(&f, 6, f.pipe_w, "abc"); /* releases the read: results in either order */
    int seen_read = 0, seen_write = 0;
    for (int i = 0; i < 2; i++) {
        expect_result(&f, &res);
        assert_int_equal(res.ret, 3);
        if (res.id == 1) {
            assert_memory_equal(res.bufs[0].data, "abc", 3);
            seen_read++;
        } else {
            assert_int_equal(res.id, 6);
            seen_write++;
        }
    }
    assert_true(seen_read == 1 && seen_write == 1);
    send_read(&f, 3, f.pipe_r, 8); /* the pipe is empty: blocks */
    send_u32(&f, FWD_MSG_INTERRUPT, 99);
    send_u32(&f, FWD_MSG_INTERRUPT, 3);
    expect_result(&f, &res);
    assert_int_equal(res.id, 3);
    assert_int_equal(res.ret, -512); /* -ERESTARTSYS */
    send_read(&f, 4, f.pipe_r, 8); /* left blocked: EXIT must end it */
    send_u32(&f, FWD_MSG_EXIT, 5 << 8);
    assert_int_equal(fake_sup_end(&f), 5);
}

/* RESUME is nothing to do; MOVING ends the session with MOS_DEPUTY_MOVING (the deputy then
 * waits for the next supervisor), after a call like any other. */
static void test_deputy_moving(void **state)
{
    (void)state;
    struct fake_sup f;
    struct fwd_result res;

    fake_sup_start(&f);
    send_u32(&f, FWD_MSG_NOTICE, MOS_LINK_RESUME);
    send_write(&f, 1, f.pipe_w, "ab");
    expect_result(&f, &res);
    assert_int_equal(res.ret, 2);
    send_u32(&f, FWD_MSG_NOTICE, MOS_LINK_MOVING);
    assert_int_equal(fake_sup_end(&f), 97);
}

/* The same id twice in flight, and one call beyond FWD_MAX_INFLIGHT, are refused: the deputy
 * ends with a protocol error instead of starting more threads. */
static void test_deputy_inflight_limits(void **state)
{
    (void)state;
    struct fake_sup f;

    fake_sup_start(&f);
    send_read(&f, 7, f.pipe_r, 1);
    send_read(&f, 7, f.pipe_r, 1);
    assert_int_equal(fake_sup_end(&f), 98);

    fake_sup_start(&f);
    for (uint32_t id = 0; id < FWD_MAX_INFLIGHT; id++)
        send_read(&f, id, f.pipe_r, 1);
    send_write(&f, FWD_MAX_INFLIGHT, f.pipe_w, "x"); /* no room: refused, not run */
    assert_int_equal(fake_sup_end(&f), 98);
}

static int guest_writes(void *arg)
{
    (void)arg;
    return write(1, "x", 1) == 1 ? 0 : 1;
}

/* A result must name a call in flight: the supervisor ends the link (and its guest) on one
 * that does not, rather than answer some other thread's call with it. */
static void test_supervisor_refuses_unknown_result(void **state)
{
    (void)state;
    uint8_t ids[8] = {0}, wire[64], *rx = NULL;
    size_t cap = 0, len;
    uint16_t type;
    struct fwd_call call;
    struct mos_link dep, sup_end;
    int st;

    mos_log_set_sink(quiet, NULL);
    assert_int_equal(mos_link_pair(&sup_end, &dep), 0);
    pid_t sup = fork();
    assert_true(sup >= 0);
    if (sup == 0) {
        int status = 0;
        close(dep.fd);
        int rc = mos_forward_run_guest(&sup_end, guest_writes, NULL, &status);
        _exit(rc == MOS_E_PROTO ? 98 : rc == 0 ? 0 : 99);
    }
    mos_link_close(&sup_end);
    assert_int_equal(fwd_send(&dep, FWD_MSG_HELLO, ids, sizeof(ids)), 0);
    assert_int_equal(fwd_recv(&dep, &type, &rx, &cap, &len), 0);
    assert_int_equal(type, FWD_MSG_CALL);
    assert_int_equal(fwd_call_decode(rx, len, &call), 0);
    assert_int_equal(call.nr, SYS_write);
    /* the same slot, another sequence: a late result of an earlier call, or a forged one */
    struct fwd_result res = {.id = call.id + FWD_MAX_INFLIGHT, .ret = 1};
    ssize_t n = fwd_result_encode(&res, wire, sizeof(wire));
    assert_int_equal(fwd_send(&dep, FWD_MSG_RESULT, wire, (size_t)n), 0);
    assert_int_equal(waitpid(sup, &st, 0), sup);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 98);
    mos_link_close(&dep);
    free(rx);
    mos_log_set_sink(NULL, NULL);
}

/* A guest killed while its call is at the supervisor: the reply finds no one, and that is no
 * failure of the supervisor. It must still report the exit (killed by SIGKILL); a supervisor
 * that ended the link instead made a job killed at home look lost (mosrun's 113). */
struct kill_then_reply {
    pid_t guest;
    int reply_rc;
};

static int kill_then_reply(struct mos_supervisor *sup, uint64_t id, long nr, void *arg)
{
    struct kill_then_reply *k = arg;
    siginfo_t si;

    (void)nr;
    kill(k->guest, SIGKILL);
    waitid(P_PID, (id_t)k->guest, &si, WEXITED | WNOWAIT); /* dead, not reaped */
    k->reply_rc = mos_supervisor_reply(sup, id, 0, -ENOSYS);
    return 1;
}

static void test_supervisor_reply_to_killed_guest(void **state)
{
    (void)state;
    int *shared = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
    uint8_t ids[8] = {0}, *rx = NULL;
    size_t cap = 0, len;
    uint16_t type;
    struct mos_link dep, sup_end;
    int status = -1;

    assert_true(shared != MAP_FAILED);
    *shared = -1;
    mos_log_set_sink(quiet, NULL);
    assert_int_equal(mos_syscall_class(SYS_shmget), MOS_SYS_HOME);
    assert_int_equal(mos_link_pair(&sup_end, &dep), 0);
    pid_t guest = fork();
    assert_true(guest >= 0);
    if (guest == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = mos_guest_filter_install();
        __atomic_store_n(shared, fd < 0 ? -2 : fd, __ATOMIC_RELEASE);
        syscall(SYS_shmget, IPC_PRIVATE, 4096, 0600); /* home class: to the policy */
        _exit(0);
    }
    while (__atomic_load_n(shared, __ATOMIC_ACQUIRE) == -1)
        usleep(1000);
    assert_true(*shared >= 0);
    int listener = mos_supervisor_take_listener(guest, *shared);
    assert_true(listener >= 0);
    struct kill_then_reply k = {.guest = guest, .reply_rc = 1};
    struct mos_supervisor_ops ops = {.home_call = kill_then_reply, .arg = &k};
    assert_int_equal(fwd_send(&dep, FWD_MSG_HELLO, ids, sizeof(ids)), 0);
    assert_int_equal(mos_supervisor_run(guest, listener, &sup_end, &ops, &status), 0);
    assert_int_equal(k.reply_rc, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(fwd_recv(&dep, &type, &rx, &cap, &len), 0);
    assert_int_equal(type, FWD_MSG_EXIT); /* the deputy learns how the job ended */
    close(listener);
    mos_link_close(&dep);
    mos_link_close(&sup_end);
    munmap(shared, sizeof(int));
    free(rx);
    mos_log_set_sink(NULL, NULL);
}

static void *thread_ran(void *arg)
{
    *(int *)arg = 1;
    return NULL;
}

/* In a guest: clone3 fails with ENOSYS (BPF cannot see its flags), a thread is created here
 * (clone with CLONE_THREAD passes), fork is a home call (refused: no policy). */
static int guest_clones(void *arg)
{
    pthread_t t;
    int ran = 0, bits = 0;

    (void)arg;
    if (syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS)
        bits |= 1;
    if (fork() == -1 && errno == ENOSYS)
        bits |= 2;
    if (pthread_create(&t, NULL, thread_ran, &ran) == 0 && pthread_join(t, NULL) == 0 && ran)
        bits |= 4;
    return bits;
}

static void test_guest_clone_rules(void **state)
{
    (void)state;
    struct fake_sup f;
    struct mos_link sup_end, dep;
    int st, status = -1;

    mos_log_set_sink(quiet, NULL);
    assert_int_equal(mos_link_pair(&sup_end, &dep), 0);
    f.deputy = fork();
    assert_true(f.deputy >= 0);
    if (f.deputy == 0) {
        int reserved;
        close(sup_end.fd);
        if (mos_deputy_link_prepare(&dep, &reserved) != 0)
            _exit(1);
        struct mos_deputy_opts opts = {.identity = {getpid(), getppid()},
                                       .reserved_fd_min = reserved};
        _exit(mos_deputy_serve(&dep, &opts, &status) == 0 ? 0 : 1);
    }
    mos_link_close(&dep);
    assert_int_equal(mos_forward_run_guest(&sup_end, guest_clones, NULL, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
    assert_int_equal(waitpid(f.deputy, &st, 0), f.deputy);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    mos_link_close(&sup_end);
    mos_log_set_sink(NULL, NULL);
}

/* A supervisor with another token is refused (and refuses), the deputy keeps waiting, and the
 * next supervisor with the right token gets the link. */
static void test_link_token(void **state)
{
    (void)state;
    uint8_t token[MOS_LINK_TOKEN_BYTES], wrong[MOS_LINK_TOKEN_BYTES];
    enum mos_link_notice what;
    struct mos_link link;
    int port = 0, lfd, st;
    pid_t child;

    mos_log_set_sink(quiet, NULL);
    memset(token, 7, sizeof(token));
    memset(wrong, 8, sizeof(wrong));
    lfd = mos_deputy_link_listen("127.0.0.1", &port);
    assert_true(lfd >= 0 && port > 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct mos_link l;
        int bad = mos_deputy_link_connect("127.0.0.1", port, wrong, 5000, &l);
        int good = mos_deputy_link_connect("127.0.0.1", port, token, 5000, &l);
        _exit(bad == MOS_E_AUTH && good == 0 && mos_deputy_link_notify(&l, MOS_LINK_RESUME) == 0
                  ? 0 : 1);
    }
    assert_int_equal(mos_deputy_link_accept(lfd, token, 5000, &link), 0);
    assert_int_equal(mos_deputy_link_read_notice(&link, &what), 0);
    assert_int_equal(what, MOS_LINK_RESUME);
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    mos_link_close(&link);
    close(lfd);
    mos_log_set_sink(NULL, NULL);
}

/* Latencies land in the first bucket whose bound is >= them (Prometheus' le), the slowest
 * above the last bound; every call is counted once and summed. */
static void test_call_latency_buckets(void **state)
{
    struct mos_call_stats st;
    uint64_t total = 0, sum = 0;

    (void)state;
    for (int i = 1; i < MOS_CALL_LATENCY_BOUNDS; i++)
        assert_true(mos_call_latency_le_ns[i - 1] < mos_call_latency_le_ns[i]);
    assert_int_equal(mos_call_latency_le_ns[0], 50000);
    assert_int_equal(mos_call_latency_le_ns[MOS_CALL_LATENCY_BOUNDS - 1], 1000000000);
    assert_int_equal(mos_call_latency_bucket(0), 0);
    assert_int_equal(mos_call_latency_bucket(UINT64_MAX), MOS_CALL_LATENCY_BOUNDS);
    for (int i = 0; i < MOS_CALL_LATENCY_BOUNDS; i++) {
        uint64_t le = mos_call_latency_le_ns[i];
        assert_int_equal(mos_call_latency_bucket(le), i);
        assert_int_equal(mos_call_latency_bucket(le + 1), i + 1);
        if (i > 0)
            assert_int_equal(mos_call_latency_bucket(mos_call_latency_le_ns[i - 1] + 1), i);
    }
    memset(&st, 0, sizeof(st));
    for (uint64_t ns = 1000; ns < 3000000000ull; ns = ns * 3 / 2) {
        mos_call_stats_forwarded(&st, ns);
        total++;
        sum += ns;
    }
    uint64_t in_buckets = 0;
    for (int b = 0; b <= MOS_CALL_LATENCY_BOUNDS; b++)
        in_buckets += st.latency[b];
    assert_int_equal(st.calls[MOS_CALLS_FORWARD], total);
    assert_int_equal(in_buckets, total);
    assert_int_equal(st.latency_sum_ns, sum);
    assert_true(st.latency[0] > 0 && st.latency[MOS_CALL_LATENCY_BOUNDS] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_every_forwarded_layout_is_sound),
        cmocka_unit_test(test_ioctl_whitelist),
        cmocka_unit_test(test_call_roundtrip),
        cmocka_unit_test(test_call_rejects),
        cmocka_unit_test(test_result_roundtrip),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_link_token),
        cmocka_unit_test(test_deputy_concurrent_calls),
        cmocka_unit_test(test_deputy_inflight_limits),
        cmocka_unit_test(test_deputy_moving),
        cmocka_unit_test(test_supervisor_refuses_unknown_result),
        cmocka_unit_test(test_supervisor_reply_to_killed_guest),
        cmocka_unit_test(test_guest_clone_rules),
        cmocka_unit_test(test_call_latency_buckets),
    };
    return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
