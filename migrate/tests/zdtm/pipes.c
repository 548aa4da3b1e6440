/* Pipes whose ends are all the program's own (checkpoint mode): what they hold queued, their
 * capacity, blocking and non-blocking ends, a dup sharing an end, a second reader with an open
 * file description of its own (held only), a pipe with no data. Each step takes one line out of a pipe that always holds a backlog and puts one in,
 * and drains a chunk of a large, non-blocking one: after a restore the bytes must go on
 * exactly where they were. Paths are not used (argv[1] is the working directory). */
#define _GNU_SOURCE
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define BIG_SIZE (256 * 1024)
#define BIG_FILL (200 * 1024)
#define CHUNK 4000

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    int lines[2], big[2], empty[2];
    uint64_t seed = 0x9e3779b97f4a7c15ull, sum = 0;
    static unsigned char fill[BIG_FILL], chunk[CHUNK];
    char buf[128];

    if (pipe(lines) < 0 || pipe2(big, O_NONBLOCK) < 0 || pipe(empty) < 0)
        return zdtm_result(0, "pipe");
    if (fcntl(big[1], F_SETPIPE_SZ, BIG_SIZE) < BIG_SIZE)
        return zdtm_result(0, "F_SETPIPE_SZ");
    for (size_t i = 0; i < sizeof(fill); i++)
        fill[i] = (unsigned char)zdtm_rand(&seed);
    if (write(big[1], fill, sizeof(fill)) != (ssize_t)sizeof(fill))
        return zdtm_result(0, "fill the big pipe");
    int lines_w2 = dup(lines[1]); /* shares the write end's open file description */
    snprintf(buf, sizeof(buf), "/proc/self/fd/%d", lines[0]);
    int lines_r2 = open(buf, O_RDONLY | O_NONBLOCK); /* another reader, never read */
    if (lines_w2 < 0 || lines_r2 < 0)
        return zdtm_result(0, "dup or reopen");
    for (int i = 0; i < 8; i++)
        dprintf(i % 2 ? lines_w2 : lines[1], "backlog line %d\n", i);
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        if (zdtm_line_read(lines[0], buf, sizeof(buf)) < 0)
            return zdtm_result(0, "read a line");
        dprintf(s % 2 ? lines_w2 : lines[1], "line of step %d\n", s);
        ssize_t n = read(big[0], chunk, sizeof(chunk));
        for (ssize_t k = 0; k < n; k++)
            sum = sum * 31 + chunk[k];
        zdtm_say("step %d: got '%.*s', %zd bytes of the big pipe, sum %016llx", s,
                 (int)strcspn(buf, "\n"), buf, n, (unsigned long long)sum);
        zdtm_sleep_ms(ms);
    }
    long cap = fcntl(big[0], F_GETPIPE_SZ);
    int fl = fcntl(big[0], F_GETFL), fl_lines = fcntl(lines[0], F_GETFL);
    int fl_r2 = fcntl(lines_r2, F_GETFL);
    close(empty[1]);
    ssize_t none = read(empty[0], buf, sizeof(buf)); /* end of file: no writer left */
    zdtm_say("big pipe holds %ld bytes, %s; lines pipe %s, its second reader %s; empty pipe "
             "read %zd", cap, fl & O_NONBLOCK ? "non-blocking" : "blocking",
             fl_lines & O_NONBLOCK ? "non-blocking" : "blocking",
             fl_r2 & O_NONBLOCK ? "non-blocking" : "blocking", none);
    return zdtm_result(cap == BIG_SIZE && (fl & O_NONBLOCK) && !(fl_lines & O_NONBLOCK) &&
                           (fl_r2 & O_NONBLOCK) && none == 0,
                       "pipe state after the steps");
}
