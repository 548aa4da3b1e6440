/* unix_sock.c on sockets of this process: sock_diag names a pair's other end, a name and a
 * released peer; a queue is read without taking anything (stream bytes as one message,
 * datagram boundaries kept, the socket's own peek offset put back), and a queue holding
 * descriptors in flight, or more than the budget, is refused without leaking a descriptor. */
#include "unix_sock.h"

#include "mos/status.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

static uint32_t ino_of(int fd)
{
    struct stat st;

    assert_int_equal(fstat(fd, &st), 0);
    return (uint32_t)st.st_ino;
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    closedir(d);
    return n;
}

/* The messages of a queue read: message k's length and bytes. */
static const uint8_t *msg_at(const uint8_t *q, uint32_t k, uint32_t *len)
{
    uint32_t off = 0, n;

    for (;;) {
        memcpy(&n, q + off, sizeof(n));
        if (k-- == 0)
            break;
        off += sizeof(n) + n;
    }
    *len = n;
    return q + off + sizeof(n);
}

static void test_find_pair_and_released_peer(void **state)
{
    (void)state;
    int s[2], t = socket(AF_INET, SOCK_STREAM, 0);
    struct mos_unix_sock u, p;

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s), 0);
    assert_int_equal(mos_unix_sock_find(ino_of(s[0]), &u), 0);
    assert_int_equal(u.type, SOCK_SEQPACKET);
    assert_int_equal(u.state, 1); /* established */
    assert_int_equal(u.peer, ino_of(s[1]));
    assert_int_equal(u.named, 0);
    assert_int_equal(shutdown(s[0], SHUT_WR), 0);
    assert_int_equal(mos_unix_sock_find(ino_of(s[0]), &u), 0);
    assert_int_equal(u.shutdown, 2); /* SEND_SHUTDOWN */
    uint32_t gone = ino_of(s[1]);
    close(s[1]);
    assert_int_equal(mos_unix_sock_find(gone, &p), -ENOENT);
    /* not a unix socket: none */
    assert_true(t >= 0);
    assert_int_equal(mos_unix_sock_find(ino_of(t), &p), -ENOENT);
    close(t);
    close(s[0]);
}

static void test_find_named(void **state)
{
    (void)state;
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct mos_unix_sock u;

    snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "mos-test-%d", (int)getpid()); /* abstract */
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(mos_unix_sock_find(ino_of(s), &u), 0);
    assert_int_equal(u.named, 1);
    assert_int_equal(u.peer, 0);
    close(s);
}

static void test_stream_read_takes_nothing(void **state)
{
    (void)state;
    int s[2], off = 2, got_off = -5;
    socklen_t sl = sizeof(got_off);
    uint8_t *q = NULL;
    uint32_t len = 0, n = 0, mlen;
    char why[96] = "", back[32] = "";

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    assert_int_equal(write(s[1], "hello ", 6), 6);
    assert_int_equal(write(s[1], "world", 5), 5);
    /* the process's own peek offset must survive the read */
    assert_int_equal(setsockopt(s[0], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)), 0);
    assert_int_equal(
        mos_unix_queue_read(s[0], SOCK_STREAM, 1024, &q, &len, &n, why, sizeof(why)), 0);
    assert_int_equal(n, 1);
    const uint8_t *m = msg_at(q, 0, &mlen);
    assert_int_equal(mlen, 11);
    assert_memory_equal(m, "hello world", 11);
    assert_int_equal(len, sizeof(uint32_t) + 11);
    assert_int_equal(getsockopt(s[0], SOL_SOCKET, SO_PEEK_OFF, &got_off, &sl), 0);
    assert_int_equal(got_off, 2);
    off = -1;
    assert_int_equal(setsockopt(s[0], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)), 0);
    assert_int_equal(recv(s[0], back, sizeof(back), MSG_DONTWAIT), 11);
    assert_string_equal(back, "hello world");
    free(q);
    /* an empty queue: no message */
    assert_int_equal(
        mos_unix_queue_read(s[0], SOCK_STREAM, 1024, &q, &len, &n, why, sizeof(why)), 0);
    assert_int_equal(n, 0);
    free(q);
    close(s[0]);
    close(s[1]);
}

static void test_dgram_boundaries_kept(void **state)
{
    (void)state;
    int s[2];
    uint8_t *q = NULL;
    uint32_t len = 0, n = 0, mlen;
    char why[96] = "", back[8];

    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, s), 0);
    assert_int_equal(send(s[1], "a", 1, 0), 1);
    assert_int_equal(send(s[1], "", 0, 0), 0);
    assert_int_equal(send(s[1], "ccc", 3, 0), 3);
    assert_int_equal(
        mos_unix_queue_read(s[0], SOCK_DGRAM, 1024, &q, &len, &n, why, sizeof(why)), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(msg_at(q, 0, &mlen), "a", 1);
    assert_int_equal(mlen, 1);
    msg_at(q, 1, &mlen);
    assert_int_equal(mlen, 0);
    assert_memory_equal(msg_at(q, 2, &mlen), "ccc", 3);
    assert_int_equal(mlen, 3);
    free(q);
    /* all three still queued, in order */
    assert_int_equal(recv(s[0], back, sizeof(back), MSG_DONTWAIT), 1);
    assert_int_equal(recv(s[0], back, sizeof(back), MSG_DONTWAIT), 0);
    assert_int_equal(recv(s[0], back, sizeof(back), MSG_DONTWAIT), 3);
    close(s[0]);
    close(s[1]);
}

static void test_fds_in_flight_and_budget_refused(void **state)
{
    (void)state;
    int s[2], devnull = open("/dev/null", O_RDONLY);
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {"x", 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                        .msg_controllen = sizeof(ctl)};
    uint8_t *q = NULL;
    uint32_t len = 0, n = 0;
    char why[96] = "", back[8];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &devnull, sizeof(int));
    assert_int_equal(sendmsg(s[1], &mh, 0), 1);
    int before = open_fds();
    assert_int_equal(mos_unix_queue_read(s[0], SOCK_STREAM, 1024, &q, &len, &n, why, sizeof(why)),
                     MOS_E_NOT_MIGRATABLE);
    assert_non_null(strstr(why, "descriptors in flight"));
    assert_int_equal(open_fds(), before); /* what the peek gave us is closed again */
    assert_int_equal(recv(s[0], back, sizeof(back), MSG_DONTWAIT), 1);
    /* more than the budget */
    assert_int_equal(write(s[1], "0123456789", 10), 10);
    why[0] = '\0';
    assert_int_equal(mos_unix_queue_read(s[0], SOCK_STREAM, 9, &q, &len, &n, why, sizeof(why)),
                     MOS_E_NOT_MIGRATABLE);
    assert_non_null(strstr(why, "more than 9 bytes"));
    assert_int_equal(mos_unix_queue_read(s[0], SOCK_STREAM, 10, &q, &len, &n, why, sizeof(why)), 0);
    free(q);
    close(devnull);
    close(s[0]);
    close(s[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_pair_and_released_peer),
        cmocka_unit_test(test_find_named),
        cmocka_unit_test(test_stream_read_takes_nothing),
        cmocka_unit_test(test_dgram_boundaries_kept),
        cmocka_unit_test(test_fds_in_flight_and_budget_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
