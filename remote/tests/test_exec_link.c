/* Unit tests of the exec link (mosrun -E): frames encoded and decoded back, malformed frames
 * refused with the right status, a link end carrying more than a socket holds, and the relay
 * refusing a gid or group that is not the user's. */
#include "../src/exec_priv.h"
#include "mos/exec_link.h"
#include "mos/status.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static uint8_t buf[MOS_EXEC_HDR_BYTES + MOS_EXEC_MAX_DATA];

static void round_trip(const struct mos_exec_frame *in)
{
    struct mos_exec_frame out;
    size_t used = 0, got = 0;

    assert_int_equal(mos_exec_frame_encode(in, buf, sizeof(buf), &used), 0);
    /* every shorter prefix is "not yet whole", never an error or a frame */
    for (size_t cut = 0; cut < used; cut += (used > 64 ? 997 : 1))
        assert_int_equal(mos_exec_frame_decode(buf, cut, &out, &got), MOS_E_TRUNCATED);
    assert_int_equal(mos_exec_frame_decode(buf, used, &out, &got), 0);
    assert_int_equal(got, used);
    assert_int_equal(out.type, in->type);
    assert_int_equal(out.len, in->len);
    if (in->len)
        assert_memory_equal(out.data, in->data, in->len);
    assert_int_equal(out.value, in->value);
    assert_int_equal(out.flags, in->flags);
}

static void test_round_trips(void **state)
{
    static uint8_t big[MOS_EXEC_MAX_DATA];
    (void)state;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 3);
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_STDIN, .len = 5, .data = big});
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_STDIN}); /* end of input */
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_STDOUT, .len = sizeof(big), .data = big});
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_STDERR, .len = 1, .data = big});
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_SIGNAL, .value = SIGTERM});
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_SIGNAL, .value = SIGINT,
                                        .flags = MOS_EXEC_SIG_GROUP});
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_ACK, .value = 4096});
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_EXIT, .value = 7 << 8});
    round_trip(&(struct mos_exec_frame){.type = MOS_EXEC_EXIT, .value = SIGKILL});
}

static void test_encoder_limits(void **state)
{
    struct mos_exec_frame f = {.type = MOS_EXEC_STDOUT, .len = MOS_EXEC_MAX_DATA + 1, .data = buf};
    size_t used;
    (void)state;
    assert_int_equal(mos_exec_frame_encode(&f, buf, sizeof(buf), &used), MOS_E_LIMIT);
    f.len = 0; /* empty output says nothing */
    assert_int_equal(mos_exec_frame_encode(&f, buf, sizeof(buf), &used), MOS_E_LIMIT);
    f = (struct mos_exec_frame){.type = MOS_EXEC_SIGNAL, .value = 0};
    assert_int_equal(mos_exec_frame_encode(&f, buf, sizeof(buf), &used), MOS_E_LIMIT);
    f = (struct mos_exec_frame){.type = MOS_EXEC_ACK, .value = 4};
    assert_int_equal(mos_exec_frame_encode(&f, buf, 15, &used), -ENOSPC);
}

/* A valid frame's bytes, then one field changed. */
static size_t frame(enum mos_exec_type type, uint32_t value)
{
    struct mos_exec_frame f = {.type = type, .value = value, .len = 3, .data = (const uint8_t *)"abc"};
    size_t used;
    assert_int_equal(mos_exec_frame_encode(&f, buf, sizeof(buf), &used), 0);
    return used;
}

static void put32(size_t at, uint32_t v)
{
    mos_put_le32(buf + at, v);
}

static void test_malformed(void **state)
{
    struct mos_exec_frame f;
    size_t used, n;
    (void)state;

    n = frame(MOS_EXEC_STDOUT, 0);
    /* the common mos frame header, little-endian */
    assert_memory_equal(buf, "MEXL", 4);
    assert_int_equal(mos_get_le16(buf + 4), MOS_EXEC_VERSION);
    assert_int_equal(mos_get_le16(buf + 6), MOS_EXEC_STDOUT);
    assert_int_equal(mos_get_le32(buf + 8), 3);
    buf[0] = 'X'; /* bad magic, seen from the first byte on */
    assert_int_equal(mos_exec_frame_decode(buf, 1, &f, &used), MOS_E_PROTO);
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    n = frame(MOS_EXEC_STDOUT, 0);
    buf[4] = 2; /* another version */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_VERSION);
    n = frame(MOS_EXEC_STDOUT, 0);
    buf[6] = 99; /* unknown type */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    n = frame(MOS_EXEC_STDOUT, 0);
    put32(8, MOS_EXEC_MAX_DATA + 1); /* too long: refused before waiting for the bytes */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    n = frame(MOS_EXEC_STDOUT, 0);
    put32(8, 0); /* empty output */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    n = frame(MOS_EXEC_SIGNAL, SIGINT);
    put32(8, 4); /* a signal frame of the wrong size */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    n = frame(MOS_EXEC_SIGNAL, SIGINT);
    put32(12, 65); /* no such signal */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    n = frame(MOS_EXEC_SIGNAL, SIGINT);
    put32(16, 2); /* unknown flag */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    n = frame(MOS_EXEC_ACK, 1);
    put32(12, MOS_EXEC_STDIN_WINDOW + 1); /* more acknowledged than a window */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    n = frame(MOS_EXEC_EXIT, 0);
    put32(12, 0x137f); /* a stopped status is no end */
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
    put32(12, 0x10000);
    assert_int_equal(mos_exec_frame_decode(buf, n, &f, &used), MOS_E_PROTO);
}

/* 4 MiB through a socketpair, one end queueing everything before the other reads: the queue
 * grows instead of blocking, and the bytes arrive whole and in order. */
static void test_link_carries_more_than_a_socket(void **state)
{
    struct mos_exec_link *a, *b;
    static uint8_t chunk[MOS_EXEC_MAX_DATA];
    struct mos_link la, lb;
    size_t sent = 0, got = 0, total = 64 * sizeof(chunk);
    (void)state;

    assert_int_equal(mos_link_pair(&la, &lb), 0);
    assert_int_equal(mos_exec_link_new(&la, &a), 0);
    assert_int_equal(mos_exec_link_new(&lb, &b), 0);
    assert_int_equal(la.fd, -1); /* the exec link has it now */
    for (; sent < total; sent += sizeof(chunk)) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = (uint8_t)((sent + i) % 251);
        struct mos_exec_frame f = {.type = MOS_EXEC_STDOUT, .len = sizeof(chunk), .data = chunk};
        assert_int_equal(mos_exec_link_queue(a, &f), 0);
        assert_int_equal(mos_exec_link_flush(a), 0);
    }
    assert_true(mos_exec_link_queued(a) > 0);
    struct mos_exec_frame end = {.type = MOS_EXEC_EXIT, .value = 3 << 8}, f;
    assert_int_equal(mos_exec_link_queue(a, &end), 0);
    int done = 0;
    while (!done) {
        assert_int_equal(mos_exec_link_flush(a), 0);
        struct pollfd p = {mos_exec_link_fd(b), POLLIN, 0};
        poll(&p, 1, 1000);
        assert_int_equal(mos_exec_link_recv(b), 0);
        int rc;
        while ((rc = mos_exec_link_next(b, &f)) == 1) {
            if (f.type == MOS_EXEC_EXIT) {
                assert_int_equal(WEXITSTATUS((int)f.value), 3);
                done = 1;
                break;
            }
            assert_int_equal(f.type, MOS_EXEC_STDOUT);
            for (uint32_t i = 0; i < f.len; i++)
                assert_int_equal(f.data[i], (uint8_t)((got + i) % 251));
            got += f.len;
        }
        assert_true(rc >= 0);
    }
    assert_int_equal(got, total);
    mos_exec_link_free(a);
    /* the peer's close is a lost link, not a frame */
    assert_int_equal(mos_exec_link_recv(b), MOS_E_PEER_GONE);
    mos_exec_link_free(b);
}

/* Garbage on a link is a decode error, and stays one. */
static void test_link_garbage(void **state)
{
    struct mos_exec_link *b;
    struct mos_exec_frame f;
    struct mos_link la, lb;
    (void)state;

    assert_int_equal(mos_link_pair(&la, &lb), 0);
    assert_int_equal(mos_exec_link_new(&lb, &b), 0);
    assert_int_equal(write(la.fd, "GET / HTTP/1.0\r\n", 16), 16);
    assert_int_equal(mos_exec_link_recv(b), 0);
    assert_int_equal(mos_exec_link_next(b, &f), MOS_E_PROTO);
    assert_int_equal(mos_exec_link_next(b, &f), MOS_E_PROTO);
    mos_link_close(&la);
    mos_exec_link_free(b);
}

/* Frames travel sealed: the program's output is not readable on the way, and a frame changed,
 * or sent again, on the way is refused, never handed over. */
static void test_link_sealed(void **state)
{
    static const char secret[] = "the output of a program nobody else may read";
    struct mos_exec_frame out = {.type = MOS_EXEC_STDOUT, .len = sizeof(secret) - 1,
                                 .data = (const uint8_t *)secret}, f;
    enum { REC = MOS_EXEC_HDR_BYTES + sizeof(secret) - 1 + MOS_SEAL_RECORD_EXTRA };
    uint8_t raw[REC];
    (void)state;

    for (int what = 0; what < 3; what++) {
        struct mos_exec_link *a, *b;
        struct mos_link la, lb;
        assert_int_equal(mos_link_pair(&la, &lb), 0);
        assert_int_equal(mos_exec_link_new(&la, &a), 0);
        assert_int_equal(mos_exec_link_queue(a, &out), 0);
        assert_int_equal(mos_exec_link_flush(a), 0);
        /* taken off the wire before b exists, and put back as it was, changed, or twice */
        assert_int_equal(read(lb.fd, raw, sizeof(raw)), sizeof(raw));
        assert_null(memmem(raw, sizeof(raw), "nobody else", 11));
        assert_null(memmem(raw, sizeof(raw), "MEXL", 4));
        if (what == 1)
            raw[sizeof(raw) / 2] ^= 4;
        for (int i = 0; i < (what == 2 ? 2 : 1); i++)
            assert_int_equal(write(mos_exec_link_fd(a), raw, sizeof(raw)), sizeof(raw));
        assert_int_equal(mos_exec_link_new(&lb, &b), 0);
        assert_int_equal(mos_exec_link_recv(b), 0); /* a socketpair: all of it is there */
        if (what == 1) {
            assert_int_equal(mos_exec_link_next(b, &f), MOS_E_TAMPERED);
        } else {
            assert_int_equal(mos_exec_link_next(b, &f), 1);
            assert_int_equal(f.type, MOS_EXEC_STDOUT);
            assert_memory_equal(f.data, secret, f.len);
            if (what == 2)
                assert_int_equal(mos_exec_link_next(b, &f), MOS_E_TAMPERED);
        }
        mos_exec_link_free(a);
        mos_exec_link_free(b);
    }
}

/* The relay, in a child (it would change its credentials were the spec taken), is handed
 * nobody with gid 0 or with group 0 added: it must refuse before the program exists. */
static void relay_given(gid_t gid, const gid_t *groups, size_t n_groups)
{
    struct passwd *pw = getpwnam("nobody");
    char flag[] = "/tmp/mos-relay-ident.XXXXXX", cmd[64];
    struct mos_link la, lb;
    int status;
    pid_t child;

    assert_non_null(pw);
    int fd = mkstemp(flag);
    assert_true(fd >= 0);
    close(fd);
    unlink(flag); /* the program would create it */
    snprintf(cmd, sizeof(cmd), "touch %s", flag);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL}, *envp[] = {"PATH=/bin:/usr/bin", NULL};
    struct mos_exec_spec spec = {.uid = pw->pw_uid, .gid = gid, .groups = groups,
                                 .n_groups = n_groups, .argv = argv, .envp = envp, .cwd = "/",
                                 .umask = 022, .node = "test"};
    assert_int_equal(mos_link_pair(&la, &lb), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(la.fd);
        _exit(mos_exec_relay_run(&lb, &spec) == MOS_E_IDENTITY ? 0 : 1);
    }
    mos_link_close(&lb);
    assert_int_equal(waitpid(child, &status, 0), child);
    mos_link_close(&la);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    struct stat st;
    assert_int_not_equal(stat(flag, &st), 0);
}

static void test_relay_refuses_gid_zero(void **state)
{
    (void)state;
    relay_given(0, NULL, 0);
}

static void test_relay_refuses_extra_group(void **state)
{
    struct passwd *pw = getpwnam("nobody");
    gid_t groups[2];

    (void)state;
    assert_non_null(pw);
    groups[0] = pw->pw_gid;
    groups[1] = 0;
    relay_given(pw->pw_gid, groups, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_encoder_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_link_carries_more_than_a_socket),
        cmocka_unit_test(test_link_garbage),
        cmocka_unit_test(test_link_sealed),
        cmocka_unit_test(test_relay_refuses_gid_zero),
        cmocka_unit_test(test_relay_refuses_extra_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
