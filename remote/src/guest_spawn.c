/* Starting a guest as a child of its supervisor: the hand-off of the seccomp listener. */
#include "forward_priv.h"

#include "mos/log.h"
#include "mos/status.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The guest cannot send its listener anywhere once the filter is on (sendmsg would wait for
 * the very supervisor it is trying to reach), so it only publishes the fd number in shared
 * memory; the supervisor takes the fd with pidfd_getfd. Both sides use only local calls. */
struct handoff {
    int listener; /* -1 until set; -2 when the filter could not be installed */
};

static void guest_main(struct handoff *h, int (*fn)(void *), void *arg)
{
    int fd, status;

    prctl(PR_SET_PDEATHSIG, SIGKILL); /* nothing it does can be answered without the supervisor */
    syscall(SYS_close_range, 0, ~0u, 0); /* all its descriptors are at home */
    fd = mos_guest_filter_install();
    __atomic_store_n(&h->listener, fd < 0 ? -2 : fd, __ATOMIC_RELEASE);
    syscall(SYS_futex, &h->listener, FUTEX_WAKE, 1, NULL, NULL, 0);
    if (fd < 0)
        _exit(120);
    status = fn(arg);
    fflush(NULL); /* _exit does not flush stdio */
    _exit(status);
}

int mos_forward_run_guest(struct mos_link *deputy, int (*fn)(void *), void *arg, int *status)
{
    struct handoff *h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int listener, rc;
    pid_t guest;

    if (h == MAP_FAILED)
        return mos_errno_status();
    h->listener = -1;
    fflush(NULL);
    guest = fork();
    if (guest < 0) {
        rc = mos_errno_status();
        munmap(h, sizeof(*h));
        return rc;
    }
    if (guest == 0)
        guest_main(h, fn, arg);
    while (__atomic_load_n(&h->listener, __ATOMIC_ACQUIRE) == -1)
        syscall(SYS_futex, &h->listener, FUTEX_WAIT, -1, NULL, NULL, 0);
    if (h->listener < 0) {
        waitpid(guest, status, 0);
        munmap(h, sizeof(*h));
        mos_err("supervisor", "the guest could not install its seccomp filter");
        return -EPERM;
    }
    listener = mos_supervisor_take_listener(guest, h->listener);
    munmap(h, sizeof(*h));
    if (listener < 0) {
        kill(guest, SIGKILL);
        waitpid(guest, status, 0);
        return listener;
    }
    rc = mos_supervisor_run(guest, listener, deputy, NULL, status);
    close(listener);
    return rc;
}

int mos_deputy_reserved_min(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur > 1024)
        return 1024 - 8;
    return (int)rl.rlim_cur - 8;
}

int mos_deputy_link_prepare(struct mos_link *link, int *reserved_min)
{
    int moved;

    *reserved_min = mos_deputy_reserved_min();
    moved = fcntl(link->fd, F_DUPFD_CLOEXEC, *reserved_min);
    if (moved < 0)
        return mos_errno_status();
    close(link->fd);
    link->fd = moved;
    return 0;
}
