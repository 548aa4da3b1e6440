/* Files open for reading and writing at offsets (and one O_APPEND): after the migration
 * reads go on where they were and writes land at the right place. Paths from argv. */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    char path[3][4096], buf[64];

    if (argc < 2)
        return zdtm_result(0, "usage: files DIR");
    snprintf(path[0], sizeof(path[0]), "%s/in.txt", argv[1]);
    snprintf(path[1], sizeof(path[1]), "%s/out.txt", argv[1]);
    snprintf(path[2], sizeof(path[2]), "%s/log.txt", argv[1]);
    int w = open(path[0], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(buf, sizeof(buf), "line %04d\n", i);
        if (write(w, buf, (size_t)n) != n)
            return zdtm_result(0, "write input");
    }
    close(w);
    int in = open(path[0], O_RDONLY);
    int out = open(path[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    int log = open(path[2], O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
    int in2 = dup(in); /* shares the offset with in */
    lseek(in, 10 * 10, SEEK_SET);
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        ssize_t n = read(s % 2 ? in2 : in, buf, 10);
        if (n != 10)
            return zdtm_result(0, "short read");
        buf[9] = '\0';
        dprintf(out, "step %d read '%s'\n", s, buf);
        dprintf(log, "log %d\n", s);
        zdtm_say("step %d read '%s' at %ld", s, buf, (long)lseek(in, 0, SEEK_CUR));
        zdtm_sleep_ms(ms);
    }
    lseek(out, 0, SEEK_SET);
    ssize_t n = read(out, buf, 24);
    buf[n > 0 ? n : 0] = '\0';
    zdtm_say("out starts with %.22s", buf);
    close(in);
    close(in2);
    close(out);
    close(log);
    return zdtm_result(strncmp(buf, "step 0 read 'line 0010'", 22) == 0, "out.txt wrong");
}
