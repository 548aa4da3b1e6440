/* What a child forked from mosd closes: every descriptor of the daemon's (the command socket
 * and its clients, the jobs' worker and supervisor lines, the acceptor's, the transport
 * listener, the jobs' pidfds), but not mosd's state, which the child never frees or unlinks. */
#include "mosd.h"

#include <unistd.h>

static void close_unless(int fd, int keep_fd)
{
    if (fd > 0 && fd != keep_fd)
        close(fd);
}

void mosd_close_in_child(struct mosd *d, int keep_fd, int keep_pidfd, int keep_listener)
{
    if (d->listener)
        close_unless(evconnlistener_get_fd(d->listener), keep_fd);
    for (struct mosd_client *c = d->clients; c; c = c->next)
        close_unless(bufferevent_getfd(c->bev), keep_fd);
    for (size_t i = 0; i < d->n_jobs; i++) {
        close_unless(d->jobs[i].worker_fd, keep_fd);
        close_unless(d->jobs[i].sup_ctl, keep_fd);
        close_unless(d->jobs[i].move_reply_fd, keep_fd);
        close_unless(d->jobs[i].pidfd, keep_pidfd);
    }
    for (size_t i = 0; i < d->n_acceptors; i++)
        close_unless(d->acceptors[i].fd, keep_fd);
    if (!keep_listener && d->tp_listener)
        close(mos_tp_listener_fd(d->tp_listener));
}
