/* Unix socket pairs whose ends are all the program's own (checkpoint mode): a stream pair with
 * lines queued both ways, a large non-blocking stream backlog drained in chunks, a datagram
 * pair whose queue holds messages of different sizes (an empty one among them), a seqpacket
 * pair written through a dup, a pair whose one end is closed with data still queued at the
 * other, and a pair with one end shut down for writing. After a restore every byte and every
 * message boundary must go on where it was. Paths are not used (argv[1] is the working
 * directory). */
#define _GNU_SOURCE
#include "zdtm.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG_FILL (100 * 1024)
#define CHUNK 3000

static int sock_type(int fd)
{
    int t = -1;
    socklen_t l = sizeof(t);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l) < 0 ? -1 : t;
}

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    int st[2], big[2], dg[2], sq[2], half[2], shut[2];
    static unsigned char fill[BIG_FILL], chunk[CHUNK], msg[4096];
    uint64_t seed = 0x2545f4914f6cdd1dull, sum = 0;
    char buf[128];

    signal(SIGPIPE, SIG_IGN);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, big) < 0 ||
        socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, half) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, shut) < 0)
        return zdtm_result(0, "socketpair");
    int bufsz = 512 * 1024;
    setsockopt(big[0], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
    for (size_t i = 0; i < sizeof(fill); i++)
        fill[i] = (unsigned char)zdtm_rand(&seed);
    if (write(big[0], fill, sizeof(fill)) != (ssize_t)sizeof(fill))
        return zdtm_result(0, "fill the big pair");
    int sq_dup = dup(sq[0]);
    if (sq_dup < 0)
        return zdtm_result(0, "dup");
    for (int i = 0; i < 8; i++)
        dprintf(st[0], "forward backlog %d\n", i);
    for (int i = 0; i < 4; i++)
        dprintf(st[1], "backward backlog %d\n", i);
    for (int i = 0; i < 6; i++) { /* sizes 0, 37, 74...: boundaries must hold */
        size_t n = (size_t)i * 37;
        memset(msg, 'a' + i, n);
        if (send(dg[0], msg, n, 0) != (ssize_t)n)
            return zdtm_result(0, "queue datagrams");
    }
    if (write(half[0], "left behind\n", 12) != 12 || close(half[0]) < 0)
        return zdtm_result(0, "half-closed pair");
    if (write(shut[0], "last words\n", 11) != 11 || shutdown(shut[0], SHUT_WR) < 0)
        return zdtm_result(0, "shut down pair");
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        char back[128];
        if (zdtm_line_read(st[1], buf, sizeof(buf)) < 0 ||
            zdtm_line_read(st[0], back, sizeof(back)) < 0)
            return zdtm_result(0, "read a line");
        dprintf(st[0], "forward step %d\n", s);
        dprintf(st[1], "backward step %d\n", s);
        ssize_t n = read(big[1], chunk, sizeof(chunk));
        for (ssize_t k = 0; k < n; k++)
            sum = sum * 31 + chunk[k];
        ssize_t d = recv(dg[1], msg, sizeof(msg), 0);
        size_t next = (size_t)(s * 13 % 200);
        memset(msg, 'A' + s % 26, next);
        if (d < 0 || send(dg[0], msg, next, 0) != (ssize_t)next)
            return zdtm_result(0, "datagram step");
        if (send(sq_dup, &s, sizeof(s), 0) != sizeof(s))
            return zdtm_result(0, "seqpacket send");
        int got = -1;
        ssize_t q = recv(sq[1], &got, sizeof(got), 0);
        zdtm_say("step %d: '%.*s' / '%.*s', %zd bytes of the big pair (sum %016llx), "
                 "datagram of %zd, seqpacket %zd:%d", s, (int)strcspn(buf, "\n"), buf,
                 (int)strcspn(back, "\n"), back, n, (unsigned long long)sum, d, q, got);
        zdtm_sleep_ms(ms);
    }
    ssize_t tail = read(half[1], buf, sizeof(buf));
    ssize_t eof = read(half[1], buf + 64, 8);
    ssize_t words = read(shut[1], buf + 80, 11), end = read(shut[1], buf + 100, 8);
    ssize_t refused = write(shut[0], "x", 1);
    int refused_errno = errno;
    int fl = fcntl(big[1], F_GETFL), fl_st = fcntl(st[0], F_GETFL);
    zdtm_say("half-closed: %zd bytes then %zd; shut down: %zd bytes then %zd, write %zd (%s); "
             "types %d %d %d; big pair %s, stream pair %s", tail, eof, words, end, refused,
             refused < 0 && refused_errno == EPIPE ? "EPIPE" : "?", sock_type(st[0]),
             sock_type(dg[1]), sock_type(sq_dup), fl & O_NONBLOCK ? "non-blocking" : "blocking",
             fl_st & O_NONBLOCK ? "non-blocking" : "blocking");
    return zdtm_result(tail == 12 && eof == 0 && words == 11 && end == 0 && refused < 0 &&
                           refused_errno == EPIPE && sock_type(st[0]) == SOCK_STREAM &&
                           sock_type(dg[1]) == SOCK_DGRAM && sock_type(sq_dup) == SOCK_SEQPACKET &&
                           (fl & O_NONBLOCK) && !(fl_st & O_NONBLOCK),
                       "socket state after the steps");
}
