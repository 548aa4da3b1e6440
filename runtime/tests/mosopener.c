/* A job that keeps opening and closing files, so that whenever the cluster freezes it, some
 * descriptor is younger than anything taken before the freeze: file i gets "open i" when it is
 * opened and "end" just before it is closed, at most WINDOW files open at a time (numbers are
 * reused all the time). Every write is checked; the first failure ends the job with 1 and one
 * line. Usage: mosopener DIR FILES [WINDOW]. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int put(int fd, int i, const char *text)
{
    size_t len = strlen(text);

    if (write(fd, text, len) != (ssize_t)len) {
        fprintf(stderr, "mosopener: file %d: write: %s\n", i, strerror(errno));
        return -1;
    }
    return 0;
}

static int close_file(int fd, int i)
{
    if (put(fd, i, "end\n") != 0)
        return -1;
    if (close(fd) != 0) {
        fprintf(stderr, "mosopener: file %d: close: %s\n", i, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int files = argc >= 3 ? atoi(argv[2]) : 0, window = argc == 4 ? atoi(argv[3]) : 16;
    int open_fds[256];
    const struct timespec pause = {0, 1000000};

    if (argc < 3 || argc > 4 || files < 1 || window < 1 || window > 256) {
        fprintf(stderr, "usage: mosopener DIR FILES [WINDOW <= 256]\n");
        return 2;
    }
    for (int i = 0; i < files; i++) {
        char path[4096], line[32];

        if (i >= window && close_file(open_fds[i % window], i - window) != 0)
            return 1;
        snprintf(path, sizeof(path), "%s/f%d", argv[1], i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "mosopener: %s: %s\n", path, strerror(errno));
            return 1;
        }
        snprintf(line, sizeof(line), "open %d\n", i);
        if (put(fd, i, line) != 0)
            return 1;
        open_fds[i % window] = fd;
        nanosleep(&pause, NULL);
    }
    for (int i = files > window ? files - window : 0; i < files; i++)
        if (close_file(open_fds[i % window], i) != 0)
            return 1;
    return 0;
}
