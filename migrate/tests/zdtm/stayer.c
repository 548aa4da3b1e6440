/* A process with one thing that keeps it from migrating (argv[1]): the dump must refuse,
 * naming it, and leave the process running. */
#define _GNU_SOURCE
#include "zdtm.h"

#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    static char params[120];

    if (!strcmp(what, "shm")) {
        int id = shmget(IPC_PRIVATE, 1 << 16, IPC_CREAT | 0600);
        if (id < 0 || shmat(id, NULL, 0) == (void *)-1)
            return zdtm_result(0, "shmget/shmat");
        shmctl(id, IPC_RMID, NULL); /* gone once we exit */
    } else if (!strcmp(what, "uring")) {
        if (syscall(SYS_io_uring_setup, 4, params) < 0)
            return zdtm_result(0, "io_uring_setup");
    } else if (!strcmp(what, "shared")) { /* a shared writable map of a file (a memfd's travel) */
        char path[] = "/tmp/mos-stayer.XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0 || ftruncate(fd, 1 << 16) != 0 ||
            mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED)
            return zdtm_result(0, "file mmap");
        unlink(path);
        close(fd);
    } else if (!strcmp(what, "shanon")) {
        /* shared anonymous memory travels only if no other process maps it: the child, the
         * one to dump, shares its region with this parent */
        if (mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) ==
            MAP_FAILED)
            return zdtm_result(0, "mmap");
        pid_t child = fork();
        if (child == 0) {
            zdtm_say("ready %d", (int)getpid());
            zdtm_sleep_ms(30000);
            _exit(0);
        }
        zdtm_sleep_ms(30000);
        return 0;
    } else if (!strcmp(what, "inotify")) { /* an eventfd travels now; an inotify does not */
        if (inotify_init() < 0)
            return zdtm_result(0, "inotify");
    } else if (!strcmp(what, "timer")) {
        timer_t t;
        struct sigevent ev = {.sigev_notify = SIGEV_NONE};
        if (timer_create(CLOCK_MONOTONIC, &ev, &t) < 0)
            return zdtm_result(0, "timer_create");
    } else if (!strcmp(what, "child")) {
        if (fork() == 0) {
            zdtm_sleep_ms(30000);
            _exit(0);
        }
    } else {
        return zdtm_result(0, "usage: stayer shm|uring|shared|shanon|inotify|timer|child");
    }
    zdtm_say("ready");
    zdtm_sleep_ms(30000);
    return 0;
}
