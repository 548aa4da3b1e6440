/* A job for the runtime's tests: it computes in steps, writes each step to stdout and to a
 * file it opened before it could have moved, opens a second file half-way (after it may have
 * moved), counts SIGINTs, reads all of stdin at the end, and exits 7. Its output is the same
 * wherever each step ran, so a run moved between nodes must print what a native run prints.
 *
 *   mosjob STEPS STEP_MS FILE_A FILE_B [MIB]   (MIB: memory to fill, so that moving takes time)
 *
 * MOSJOB_WORK=K does each step's computation K times (same output): K times fewer forwarded
 * calls per CPU-second, for benchmarks of CPU-bound jobs rather than chatty ones.
 * MOSJOB_GROW=1 fills the MIB of memory step by step instead of at the start (same output): a
 * job that outgrows its node while it runs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupts;

static void on_int(int sig)
{
    (void)sig;
    interrupts++;
}

static double work(int step)
{
    double acc = 0;

    for (int k = 1; k < 300000; k++)
        acc += (double)(k % (step + 3)) / k;
    return acc;
}

/* Fill ballast[from, to) with its pattern; returns the new end (nothing without ballast). */
static size_t ballast_fill(unsigned char *ballast, size_t from, size_t to)
{
    for (size_t i = from; ballast && i < to; i++)
        ballast[i] = (unsigned char)(i * 131 + i / 4096);
    return ballast ? to : 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: mosjob STEPS STEP_MS FILE_A FILE_B [MIB]\n");
        return 2;
    }
    size_t mib = argc == 6 ? (size_t)atoi(argv[5]) : 0;
    unsigned char *ballast = mib ? malloc(mib << 20) : NULL;
    int steps = atoi(argv[1]), step_ms = atoi(argv[2]);
    const char *grow_env = getenv("MOSJOB_GROW");
    int grow = grow_env && strcmp(grow_env, "1") == 0 && steps > 0;
    size_t filled = 0;
    if (!grow)
        filled = ballast_fill(ballast, 0, mib << 20);
    const char *work_env = getenv("MOSJOB_WORK");
    int repeat = work_env ? atoi(work_env) : 1;
    if (repeat < 1 || repeat > 100000)
        repeat = 1;
    pid_t pid = getpid();
    FILE *a = fopen(argv[3], "w"), *b = NULL;
    struct sigaction sa = {.sa_handler = on_int, .sa_flags = SA_RESTART};

    if (!a)
        return 3;
    sigaction(SIGINT, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i <= steps; i++) {
        double v = 0;
        for (int r = 0; r < repeat; r++) {
            int arg = i;
            __asm__ volatile("" : "+r"(arg)); /* the compiler may not fold the repeats */
            v = work(arg);
        }
        printf("step %d %.6f\n", i, v);
        fprintf(a, "a %d %.6f\n", i, v);
        fflush(a);
        if (i == steps / 2) {
            b = fopen(argv[4], "w");
            if (!b)
                return 4;
        }
        if (b) {
            fprintf(b, "b %d\n", i);
            fflush(b);
        }
        if (grow)
            filled = ballast_fill(ballast, filled, (mib << 20) / (size_t)steps * (size_t)i);
        sleep_ms(step_ms);
    }
    filled = ballast_fill(ballast, filled, mib << 20);
    unsigned long sum = 0, n = 0;
    int c;
    while ((c = getchar()) != EOF) {
        sum = sum * 33 + (unsigned char)c;
        n++;
    }
    printf("stdin %lu bytes hash %lx\n", n, sum);
    printf("pid stable: %s\n", getpid() == pid ? "yes" : "no");
    printf("interrupts: %d\n", (int)interrupts);
    unsigned long check = 0;
    for (size_t i = 0; ballast && i < mib << 20; i += 4093)
        check = check * 31 + ballast[i];
    if (mib)
        printf("ballast %zu MiB check %lx\n", mib, check);
    fclose(a);
    fclose(b);
    return 7;
}
