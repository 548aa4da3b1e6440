/* Memory written all the time, for live migration: ZDTM_MIB MiB filled, then every step
 * rewrites ZDTM_WRITES pseudo-random pages, frees and faults others again (MADV_DONTNEED),
 * and swaps two 1 MiB regions by mremap through a third slot (the filled memory is two VMAs
 * back to back, whose flags differ), so that an address sent ahead
 * later holds another region's unchanged pages. A 64 GiB reservation (MAP_NORESERVE, as
 * ASan's shadow or a JVM heap) has one page in use per GiB, one of them rewritten per step.
 * A page of code the program wrote itself (as a JIT does), read-write-execute between two
 * read-write pages, runs every step: a copy that lost its right to execute it dies.
 * At the end every page is checked against the step that last wrote it. */
#define _GNU_SOURCE
#include "zdtm.h"

#include <string.h>
#include <sys/mman.h>

#define PAGE 4096
#define SWAP_LEN (1 << 20)
#define RESERVE_GIB 64ull

static void page_fill(unsigned char *p, uint64_t page, int32_t step)
{
    uint64_t v = page * 1000003u + (uint64_t)(step + 1) * 7919u;
    for (int i = 0; i < PAGE / 8; i++)
        memcpy(p + i * 8, &v, 8), v = v * 6364136223846793005ull + 1442695040888963407ull;
}

static int page_ok(const unsigned char *p, uint64_t page, int32_t step)
{
    unsigned char want[PAGE];
    if (step == -2) { /* dropped with MADV_DONTNEED: zeros */
        static const unsigned char zero[PAGE];
        return memcmp(p, zero, PAGE) == 0;
    }
    page_fill(want, page, step);
    return memcmp(p, want, PAGE) == 0;
}

int main(void)
{
    int mib = zdtm_env("ZDTM_MIB", 64), steps = zdtm_env("ZDTM_STEPS", 60);
    int writes = zdtm_env("ZDTM_WRITES", 64), ms = zdtm_env("ZDTM_STEP_MS", 20);
    uint64_t npages = (uint64_t)mib * 256, seed = 99, sum = 0;
    unsigned char *m = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int32_t *last = calloc(npages, sizeof(*last));
    /* three slots for the swap; a and b hold regions whose pages differ */
    unsigned char *slots = mmap(NULL, 3 * SWAP_LEN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                                0);
    unsigned char *a = slots, *b = slots + SWAP_LEN, *t = slots + 2 * SWAP_LEN;
    unsigned char *rsv = mmap(NULL, RESERVE_GIB << 30, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    int32_t rsv_last[RESERVE_GIB];

    static const unsigned char ret42[] = {0xb8, 0x2a, 0, 0, 0, 0xc3}; /* mov eax,42; ret */
    unsigned char *jit = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (m == MAP_FAILED || !last || slots == MAP_FAILED || rsv == MAP_FAILED || jit == MAP_FAILED)
        return zdtm_result(0, "no memory");
    memset(jit, 'J', PAGE);
    memcpy(jit + PAGE, ret42, sizeof(ret42));
    memset(jit + 2 * PAGE, 'K', PAGE);
    if (mprotect(jit + PAGE, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return zdtm_result(0, "no read-write-execute memory");
    int (*code)(void) = (int (*)(void))(void *)(jit + PAGE);
    if (mmap(a, SWAP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0) != a ||
        mmap(b, SWAP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0) != b)
        return zdtm_result(0, "mmap of the swap regions failed");
    munmap(t, SWAP_LEN);
    memset(a, 'A', SWAP_LEN);
    memset(b, 'B', SWAP_LEN);
    int a_holds_a = 1;
    for (uint64_t p = 0; p < npages; p++)
        page_fill(m + p * PAGE, p, -1), last[p] = -1;
    for (uint64_t g = 0; g < RESERVE_GIB; g++)
        page_fill(rsv + (g << 30), g, -1), rsv_last[g] = -1;
    /* two VMAs back to back (flags differ), pages on both sides of the seam */
    madvise(m + npages / 2 * PAGE, (npages - npages / 2) * PAGE, MADV_NOHUGEPAGE);
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        for (int k = 0; k < writes; k++) {
            uint64_t p = zdtm_rand(&seed) % npages;
            page_fill(m + p * PAGE, p, s);
            last[p] = s;
        }
        uint64_t drop = zdtm_rand(&seed) % npages;
        madvise(m + drop * PAGE, PAGE, MADV_DONTNEED);
        last[drop] = -2;
        /* a -> t, b -> a, t -> b */
        if (mremap(a, SWAP_LEN, SWAP_LEN, MREMAP_MAYMOVE | MREMAP_FIXED, t) != t ||
            mremap(b, SWAP_LEN, SWAP_LEN, MREMAP_MAYMOVE | MREMAP_FIXED, a) != a ||
            mremap(t, SWAP_LEN, SWAP_LEN, MREMAP_MAYMOVE | MREMAP_FIXED, b) != b)
            return zdtm_result(0, "mremap failed");
        a_holds_a = !a_holds_a;
        uint64_t g = zdtm_rand(&seed) % RESERVE_GIB;
        page_fill(rsv + (g << 30), g, s);
        rsv_last[g] = s;
        sum += m[(zdtm_rand(&seed) % npages) * PAGE + 8] + (uint64_t)code();
        zdtm_say("step %d sum %llu", s, (unsigned long long)sum);
        zdtm_sleep_ms(ms);
    }
    uint64_t bad = 0;
    for (uint64_t p = 0; p < npages; p++)
        bad += !page_ok(m + p * PAGE, p, last[p]);
    for (uint64_t g = 0; g < RESERVE_GIB; g++)
        bad += !page_ok(rsv + (g << 30), g, rsv_last[g]);
    for (size_t i = 0; i < SWAP_LEN; i += PAGE / 2) {
        bad += a[i] != (a_holds_a ? 'A' : 'B');
        bad += b[i] != (a_holds_a ? 'B' : 'A');
    }
    bad += jit[0] != 'J' || jit[3 * PAGE - 1] != 'K';
    zdtm_say("pages wrong: %llu", (unsigned long long)bad);
    return zdtm_result(bad == 0, "memory differs from what the program wrote");
}
