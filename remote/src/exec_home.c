/* The home end of a native remote program (mosrun -E): our stdin and signals go out, the
 * program's output comes back to our stdout and stderr, and its wait status ends it. */
#include "exec_priv.h"

#include "mos/status.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct home {
    struct mos_exec_link *link;
    int sfd;
    int stdin_open;
    size_t in_flight;   /* stdin bytes sent and not yet acknowledged */
    int out_broken[2];  /* our stdout/stderr gave EPIPE: the program got its SIGPIPE once */
    int done, status;
};

static int send_signal(struct home *h, int sig, int group)
{
    struct mos_exec_frame f = {.type = MOS_EXEC_SIGNAL, .value = (uint32_t)sig,
                               .flags = group ? MOS_EXEC_SIG_GROUP : 0};

    return mos_exec_link_queue(h->link, &f);
}

/* Output to our fd 1 or 2, waiting if it is a slow or non-blocking sink. A reader that went
 * away is the program's SIGPIPE, as it would have been natively. */
static int write_out(struct home *h, int which, const uint8_t *p, size_t len)
{
    int fd = which + 1;

    while (len > 0 && !h->out_broken[which]) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            poll(&pfd, 1, 1000);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            h->out_broken[which] = 1;
            return errno == EPIPE ? send_signal(h, SIGPIPE, 0) : 0;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int on_frame(struct home *h, const struct mos_exec_frame *f)
{
    switch (f->type) {
    case MOS_EXEC_STDOUT:
    case MOS_EXEC_STDERR:
        return write_out(h, f->type == MOS_EXEC_STDERR, f->data, f->len);
    case MOS_EXEC_ACK:
        if (f->value > h->in_flight)
            return MOS_E_PROTO;
        h->in_flight -= f->value;
        return 0;
    case MOS_EXEC_EXIT:
        h->done = 1;
        h->status = (int)f->value;
        return 0;
    default:
        return MOS_E_PROTO; /* home-to-relay frames do not come this way */
    }
}

static int on_link(struct home *h)
{
    struct mos_exec_frame f;
    int rc = mos_exec_link_recv(h->link);

    while (rc == 0 && !h->done && (rc = mos_exec_link_next(h->link, &f)) == 1)
        rc = on_frame(h, &f);
    return rc;
}

/* One read of our stdin, as much as the window allows; end of file (or no stdin at all)
 * travels as an empty frame. */
static int on_stdin(struct home *h)
{
    static uint8_t buf[MOS_EXEC_MAX_DATA];
    size_t room = MOS_EXEC_STDIN_WINDOW - h->in_flight;
    ssize_t n = read(0, buf, room < sizeof(buf) ? room : sizeof(buf));

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    struct mos_exec_frame f = {.type = MOS_EXEC_STDIN, .len = n > 0 ? (uint32_t)n : 0,
                               .data = buf};
    if (n <= 0)
        h->stdin_open = 0;
    h->in_flight += f.len;
    return mos_exec_link_queue(h->link, &f);
}

/* A signal for the program. The kernel's own (a terminal's Ctrl-C, Ctrl-\) would have reached
 * the whole foreground group natively: so they go to the program's group; one a user sent to
 * mosrun goes to the program alone. Ctrl-Z stops the program, then us, as the shell expects. */
static int on_signal(struct home *h)
{
    struct signalfd_siginfo si;
    int rc;

    if (read(h->sfd, &si, sizeof(si)) != sizeof(si))
        return 0;
    int group = si.ssi_code == SI_KERNEL || si.ssi_code > 0;
    if (si.ssi_signo == SIGTSTP) {
        rc = send_signal(h, SIGSTOP, 1);
        if (rc == 0)
            rc = mos_exec_link_drain(h->link, 5000);
        raise(SIGSTOP);
        return rc;
    }
    return send_signal(h, (int)si.ssi_signo, group || si.ssi_signo == SIGCONT);
}

static int home_loop(struct home *h)
{
    while (!h->done) {
        size_t queued = mos_exec_link_queued(h->link);
        int want_in = h->stdin_open && h->in_flight < MOS_EXEC_STDIN_WINDOW &&
                      queued < MOS_EXEC_STDIN_WINDOW;
        struct pollfd p[3] = {
            {mos_exec_link_fd(h->link), POLLIN | (queued ? POLLOUT : 0), 0},
            {h->sfd, POLLIN, 0},
            {want_in ? 0 : -1, POLLIN, 0},
        };
        int rc = 0;

        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return mos_errno_status();
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
            rc = on_link(h);
        if (rc == 0 && !h->done && (p[1].revents & POLLIN))
            rc = on_signal(h);
        if (rc == 0 && !h->done && (p[2].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
            rc = on_stdin(h);
        if (rc == 0 && !h->done)
            rc = mos_exec_link_flush(h->link);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int mos_exec_home_serve(struct mos_link *link_in, const int *signals, int *wait_status)
{
    struct home h = {.stdin_open = 1};
    sigset_t set;
    int rc;

    sigemptyset(&set);
    for (const int *s = signals; s && *s; s++)
        sigaddset(&set, *s);
    sigaddset(&set, SIGTSTP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN); /* EPIPE on our stdout is passed on as the program's SIGPIPE */
    h.sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (h.sfd < 0) {
        mos_link_close(link_in);
        return mos_errno_status();
    }
    rc = mos_exec_link_new(link_in, &h.link);
    if (rc != 0) {
        mos_link_close(link_in);
        close(h.sfd);
        return rc;
    }
    rc = home_loop(&h);
    if (rc == 0)
        *wait_status = h.status;
    mos_exec_link_free(h.link);
    close(h.sfd);
    return rc;
}
