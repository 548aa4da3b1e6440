/* A job for the forwarded-call metrics test: it waits (polling, so it can be moved meanwhile)
 * until GO_FILE exists, then makes exactly N write(2) calls of one byte each to stdout, and
 * exits 0. Moved while it waits, each of those writes is one forwarded call.
 *
 *   moswriter N GO_FILE */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const struct timespec tick = {0, 20 * 1000 * 1000};
    long n = argc == 3 ? strtol(argv[1], NULL, 10) : -1;

    if (n < 0)
        return 2;
    while (access(argv[2], F_OK) != 0)
        nanosleep(&tick, NULL);
    for (long i = 0; i < n; i++)
        if (write(1, "x", 1) != 1)
            return 1;
    return 0;
}
