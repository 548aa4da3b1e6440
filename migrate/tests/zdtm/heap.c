/* Heap growth: malloc/brk and mmap-sized blocks grow before and after the dump; contents
 * are checked at the end. */
#include "zdtm.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NBLK 400

int main(void)
{
    static unsigned char *blk[NBLK];
    static size_t len[NBLK];
    uint64_t seed = 42, sum = 0, check = 0;
    int steps = zdtm_env("ZDTM_STEPS", 40), ms = zdtm_env("ZDTM_STEP_MS", 25);
    void *brk0 = sbrk(0);

    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        for (int k = 0; k < NBLK / steps + 1; k++) {
            int i = (s * (NBLK / steps + 1) + k) % NBLK;
            if (blk[i])
                continue;
            len[i] = (zdtm_rand(&seed) % 8 == 0) ? 200000 + zdtm_rand(&seed) % 300000
                                                  : 16 + zdtm_rand(&seed) % 4000;
            blk[i] = malloc(len[i]);
            for (size_t b = 0; b < len[i]; b++)
                blk[i][b] = (unsigned char)(i * 31 + b);
        }
        /* raw brk too, as old allocators do */
        unsigned char *p = sbrk(8192);
        if (p == (void *)-1)
            return zdtm_result(0, "sbrk failed");
        memset(p, s, 8192);
        sum += p[100];
        /* and fresh mmaps */
        unsigned char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return zdtm_result(0, "mmap failed");
        m[s * 4096] = (unsigned char)s;
        sum += m[s * 4096];
        zdtm_say("step %d sum %llu", s, (unsigned long long)sum);
        zdtm_sleep_ms(ms);
    }
    for (int i = 0; i < NBLK; i++)
        if (blk[i])
            for (size_t b = 0; b < len[i]; b++)
                check += blk[i][b] != (unsigned char)(i * 31 + b);
    zdtm_say("heap grew by %s", (char *)sbrk(0) > (char *)brk0 ? "something" : "nothing");
    return zdtm_result(check == 0, "heap contents changed");
}
