/* Large anonymous maps: 192 MiB, partly written (some pages with zeros written back), some
 * never touched; a PROT_NONE guard and a read-only map with data. */
#include "zdtm.h"

#include <string.h>
#include <sys/mman.h>

#define SIZE (192ul << 20)

/* Does the VMA holding p show flag (two letters) in its smaps VmFlags? */
static int vma_has_flag(const void *p, const char *flag)
{
    char line[512];
    unsigned long start, end;
    int in = 0, found = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = (unsigned long)p >= start && (unsigned long)p < end;
        else if (in && !strncmp(line, "VmFlags:", 8))
            found = strstr(line, flag) != NULL;
    }
    if (f)
        fclose(f);
    return found;
}

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    unsigned char *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    unsigned char *ro = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *none = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t seed = 7, bad = 0;

    if (m == MAP_FAILED || ro == MAP_FAILED || none == MAP_FAILED)
        return zdtm_result(0, "mmap");
    for (size_t i = 0; i < SIZE / 2; i += 4096)
        m[i + (i >> 12) % 4000] = (unsigned char)(i >> 12 | 1);
    for (size_t i = SIZE / 2; i < SIZE * 3 / 4; i += 4096)
        m[i] = 0; /* present, all zero */
    madvise(ro, 1 << 20, MADV_DONTDUMP);   /* madvise state must survive too */
    madvise(none, 1 << 20, MADV_HUGEPAGE);
    memset(ro, 0xab, 1 << 20);
    mprotect(ro, 1 << 20, PROT_READ);
    memset(none, 0xcd, 1 << 20);
    mprotect(none, 1 << 20, PROT_NONE); /* present pages nobody may read */
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        size_t at = (zdtm_rand(&seed) % (SIZE / 4096)) * 4096;
        m[at + 1] = (unsigned char)s;
        zdtm_say("step %d wrote page %zu", s, at / 4096);
        zdtm_sleep_ms(ms);
    }
    mprotect(none, 1 << 20, PROT_READ);
    for (size_t i = 0; i < (1 << 20); i++)
        bad += ro[i] != 0xab || none[i] != 0xcd;
    seed = 7;
    unsigned char last[SIZE / 4096 / 8] = {0};
    for (int s = 0; s < steps; s++) {
        size_t at = (zdtm_rand(&seed) % (SIZE / 4096)) * 4096;
        last[at / 4096 / 8] |= (unsigned char)(1 << (at / 4096 % 8));
    }
    for (size_t i = 0; i < SIZE / 2; i += 4096)
        bad += m[i + (i >> 12) % 4000] != (unsigned char)(i >> 12 | 1) &&
               !(last[i / 4096 / 8] & (1 << (i / 4096 % 8)));
    for (size_t i = SIZE * 3 / 4; i < SIZE; i += 4096 * 16)
        bad += m[i + 2] != 0;
    int dd = vma_has_flag(ro, "dd"), hg = vma_has_flag(none, "hg");
    bad += !dd + !hg;
    zdtm_say("bad %llu dontdump %d hugepage %d", (unsigned long long)bad, dd, hg);
    return zdtm_result(bad == 0, "contents changed");
}
