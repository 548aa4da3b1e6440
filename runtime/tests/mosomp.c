/* An OpenMP job for the lab: mosomp STEPS GATE. Each step is a parallel loop (libgomp's team,
 * OMP_NUM_THREADS of them) with a reduction; the master prints the step's sum, then waits for
 * GATE before the last step, so a test can move it mid-run and bring it home before the end.
 * The output does not depend on the schedule (integer sums). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int steps = argc > 2 ? atoi(argv[1]) : 0;
    struct timespec tick = {0, 10 * 1000 * 1000};

    if (steps < 1) {
        fprintf(stderr, "usage: mosomp STEPS GATE\n");
        return 2;
    }
    for (int s = 0; s < steps; s++) {
        unsigned long long sum = 0;
        if (s == steps - 1)
            while (access(argv[2], F_OK) != 0)
                nanosleep(&tick, NULL);
#pragma omp parallel for reduction(+ : sum) schedule(dynamic, 1024)
        for (long i = 0; i < 400000; i++) {
            unsigned long long x = (unsigned long long)(i + s) * 2654435761u;
            sum += (x ^ (x >> 13)) % 1000003;
        }
        printf("step %d sum %llu\n", s, sum);
        fflush(stdout);
    }
    printf("threads %d\n", omp_get_max_threads());
    return 0;
}
