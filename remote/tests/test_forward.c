/* Unit tests of the forwarding layer: the syscall table, the message codecs and their limits,
 * the link's framing, and the deputy link's token proof. */
#include "../src/forward_priv.h"
#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
    struct fwd_call in = {.nr = SYS_openat, .args = {(uint64_t)-100, 0x7000, 0, 0}, .nbufs = 1};
    struct fwd_call out;

    in.bufs[0] = (struct fwd_buf){.argidx = 1, .dir = FWD_DIR_IN, .len = sizeof(data),
                                  .data = data};
    ssize_t n = fwd_call_encode(&in, wire, sizeof(wire));
    assert_true(n > 0);
    assert_int_equal(fwd_call_decode(wire, (size_t)n, &out), 0);
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
    struct fwd_result in = {.ret = 10, .nbufs = 1}, out;

    in.bufs[0] = (struct fwd_buf){.argidx = 1, .dir = FWD_DIR_OUT, .len = 10, .data = data};
    ssize_t n = fwd_result_encode(&in, wire, sizeof(wire));
    assert_int_equal(fwd_result_decode(wire, (size_t)n, &out), 0);
    assert_int_equal(out.ret, 10);
    assert_memory_equal(out.bufs[0].data, data, 10);
    in.bufs[0].dir = FWD_DIR_IN; /* a result carries outputs only */
    n = fwd_result_encode(&in, wire, sizeof(wire));
    assert_int_equal(fwd_result_decode(wire, (size_t)n, &out), MOS_E_PROTO);
}

static void test_framing(void **state)
{
    (void)state;
    uint8_t raw[MOS_FRAME_HDR_BYTES + 8], *rx = NULL, ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t cap = 0, len;
    uint16_t type;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fwd_send(sv[0], FWD_MSG_HELLO, ids, sizeof(ids)), 0);
    assert_int_equal(read(sv[1], raw, sizeof(raw)), sizeof(raw));
    /* the common mos frame header, little-endian */
    assert_memory_equal(raw, "MDEP", 4);
    assert_int_equal(mos_get_le16(raw + 6), FWD_MSG_HELLO);
    assert_int_equal(mos_get_le32(raw + 8), 8);
    assert_int_equal(write(sv[0], raw, sizeof(raw)), sizeof(raw));
    assert_int_equal(fwd_recv(sv[1], &type, &rx, &cap, &len), 0);
    assert_int_equal(type, FWD_MSG_HELLO);
    assert_int_equal(len, 8);
    assert_memory_equal(rx, ids, 8);
    /* a type's limit holds on both ends: a HELLO longer than two ids, an unknown type */
    assert_int_equal(fwd_send(sv[0], FWD_MSG_HELLO, ids, 9), -EMSGSIZE);
    assert_int_equal(fwd_send(sv[0], 99, ids, 1), -EMSGSIZE);
    mos_put_le32(raw + 8, 9);
    assert_int_equal(write(sv[0], raw, MOS_FRAME_HDR_BYTES), MOS_FRAME_HDR_BYTES);
    assert_int_equal(fwd_recv(sv[1], &type, &rx, &cap, &len), MOS_E_PROTO);
    mos_put_le32(raw + 8, 8);
    mos_put_le16(raw + 4, FWD_VERSION + 1);
    assert_int_equal(write(sv[0], raw, MOS_FRAME_HDR_BYTES), MOS_FRAME_HDR_BYTES);
    assert_int_equal(fwd_recv(sv[1], &type, &rx, &cap, &len), MOS_E_VERSION);
    /* a payload cut short by the peer's close */
    mos_put_le16(raw + 4, FWD_VERSION);
    assert_int_equal(write(sv[0], raw, sizeof(raw) - 1), sizeof(raw) - 1);
    close(sv[0]);
    assert_int_equal(fwd_recv(sv[1], &type, &rx, &cap, &len), MOS_E_TRUNCATED);
    close(sv[1]);
    free(rx);
}

static void quiet(enum mos_log_level l, const char *c, const char *t, void *a)
{
    (void)l, (void)c, (void)t, (void)a;
}

/* A supervisor with another token is refused (and refuses), the deputy keeps waiting, and the
 * next supervisor with the right token gets the link. */
static void test_link_token(void **state)
{
    (void)state;
    uint8_t token[MOS_LINK_TOKEN_BYTES], wrong[MOS_LINK_TOKEN_BYTES];
    enum mos_link_notice what;
    int port = 0, lfd, fd, st;
    pid_t child;

    mos_log_set_sink(quiet, NULL);
    memset(token, 7, sizeof(token));
    memset(wrong, 8, sizeof(wrong));
    lfd = mos_deputy_link_listen("127.0.0.1", &port);
    assert_true(lfd >= 0 && port > 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int bad = mos_deputy_link_connect("127.0.0.1", port, wrong, 5000);
        int good = mos_deputy_link_connect("127.0.0.1", port, token, 5000);
        _exit(bad == MOS_E_AUTH && good >= 0 && mos_deputy_link_notify(good, MOS_LINK_RESUME) == 0
                  ? 0 : 1);
    }
    fd = mos_deputy_link_accept(lfd, token, 5000);
    assert_true(fd >= 0);
    assert_int_equal(mos_deputy_link_read_notice(fd, &what), 0);
    assert_int_equal(what, MOS_LINK_RESUME);
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(fd);
    close(lfd);
    mos_log_set_sink(NULL, NULL);
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
    };
    return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
