/* Shared anonymous memory of the program's own (checkpoint mode): a MAP_SHARED|MAP_ANONYMOUS
 * region with written pages, untouched ones, a page dropped from the page tables by
 * MADV_DONTNEED (its data stays in the shared object) and a read-only tail (two VMAs of one
 * object), and a small read-only region. Each step writes into it; at the end the contents
 * must be what was written, and the region must still be shared: a child forked then writes
 * into it and the parent must see the write. Paths are not used (argv[1] is the working
 * directory). */
#define _GNU_SOURCE
#include "zdtm.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGES 64
#define WRITTEN 48    /* pages 0..47 get data; 48..63 are never touched before the dump */
#define DROPPED 5     /* MADV_DONTNEED: gone from the page tables, not from the object */
#define RO_FROM 56    /* pages 56..63 read-only */
#define PG 4096

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    uint64_t seed = 0x5eed5eedull;
    unsigned char *a = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    unsigned char *ro = mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (a == MAP_FAILED || ro == MAP_FAILED)
        return zdtm_result(0, "mmap");
    for (size_t i = 0; i < WRITTEN * PG; i++)
        a[i] = (unsigned char)zdtm_rand(&seed);
    if (madvise(a + DROPPED * PG, PG, MADV_DONTNEED) != 0 ||
        mprotect(a + RO_FROM * PG, (PAGES - RO_FROM) * PG, PROT_READ) != 0)
        return zdtm_result(0, "madvise or mprotect");
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        a[s * 97 % (RO_FROM * PG)] ^= (unsigned char)(s + 1);
        zdtm_say("step %d: sum %016llx", s, (unsigned long long)zdtm_sum(a, PAGES * PG));
        zdtm_sleep_ms(ms);
    }
    int untouched_zero = 1;
    for (size_t i = WRITTEN * PG; i < PAGES * PG; i++)
        untouched_zero &= a[i] == 0;
    for (size_t i = 0; i < 4 * PG; i++)
        untouched_zero &= ro[i] == 0;
    /* still shared: what a child writes, the parent reads */
    pid_t child = fork();
    if (child == 0) {
        a[DROPPED * PG] = 0xA5;
        _exit(0);
    }
    int st = 0;
    if (child < 0 || waitpid(child, &st, 0) != child || !WIFEXITED(st))
        return zdtm_result(0, "fork");
    int shared = a[DROPPED * PG] == 0xA5;
    zdtm_say("final sum %016llx, untouched pages %s, region %s",
             (unsigned long long)zdtm_sum(a, PAGES * PG), untouched_zero ? "zero" : "NOT zero",
             shared ? "shared with a child" : "NOT shared");
    return zdtm_result(untouched_zero && shared, "shared anonymous memory after the steps");
}
