/* memfd objects of the program's own (checkpoint mode):
 * - A: held by fd 3 (its offset mid-file) and a dup at fd 4, and a second open file
 *   description through /proc/self/fd (fd 5, offset of its own); mapped shared twice (a
 *   read-write view and a read-only alias of the same pages, as a JIT's double map); data
 *   beyond the mapped part, a hole in the middle, a size that is not whole pages; sealed
 *   against shrinking.
 * - B: mapped read-only after being sealed against writes, its fd closed (reached only
 *   through the map).
 * Each step writes through A's view and reads through its alias and its fd; at the end the
 *   contents, offsets and seals must be what they were, and A must still be one object: a
 *   write through the fd shows in both maps, and a forked child's write shows in the parent. */
#define _GNU_SOURCE
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define A_SIZE (40 * PG + 123) /* not whole pages */
#define A_MAP 16               /* pages 0..15 mapped (twice); 16..39 reached by fd only */
#define HOLE 20                /* pages 20..29 never written */
#define B_PAGES 8

static uint64_t sum_fd(int fd)
{
    static unsigned char buf[A_SIZE + PG];
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    return n < 0 ? 0 : zdtm_sum(buf, (size_t)n) ^ (uint64_t)n;
}

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    uint64_t seed = 0x3e3fdull;
    static unsigned char page[PG];
    int a = memfd_create("zdtm A", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int b = memfd_create("zdtm-b", MFD_ALLOW_SEALING);

    if (a != 3 || b != 4 || ftruncate(a, A_SIZE) != 0)
        return zdtm_result(0, "memfd_create (fds 3 and 4 expected free)");
    for (int p = 0; p < 40; p++) {
        if (p >= HOLE && p < HOLE + 10)
            continue;
        for (size_t i = 0; i < PG; i++)
            page[i] = (unsigned char)zdtm_rand(&seed);
        if (pwrite(a, page, p == 39 ? 123 : PG, (off_t)p * PG) < 0)
            return zdtm_result(0, "pwrite A");
    }
    for (int p = 0; p < B_PAGES; p++) {
        memset(page, 'b' + p, PG);
        if (pwrite(b, page, PG, (off_t)p * PG) != PG)
            return zdtm_result(0, "pwrite B");
    }
    if (fcntl(b, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) != 0 ||
        fcntl(a, F_ADD_SEALS, F_SEAL_SHRINK) != 0)
        return zdtm_result(0, "seals");
    unsigned char *bm = mmap(NULL, B_PAGES * PG, PROT_READ, MAP_SHARED, b, 0);
    close(b);
    int a2 = dup(a); /* fd 4 */
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", a);
    int a3 = open(self, O_RDWR); /* fd 5: a description of its own */
    unsigned char *rw = mmap(NULL, A_MAP * PG, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
    unsigned char *ro = mmap(NULL, A_MAP * PG, PROT_READ, MAP_SHARED, a, 0);
    if (bm == MAP_FAILED || rw == MAP_FAILED || ro == MAP_FAILED || a2 != 4 || a3 != 5 ||
        lseek(a, 5 * PG + 7, SEEK_SET) < 0 || lseek(a3, 33, SEEK_SET) < 0)
        return zdtm_result(0, "dup, open, mmap or lseek");
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        rw[(s * 4099) % (A_MAP * PG)] ^= (unsigned char)(s + 1);
        unsigned char c = (unsigned char)s;
        if (pwrite(a3, &c, 1, (off_t)(32 * PG + s)) != 1) /* beyond the maps */
            return zdtm_result(0, "pwrite during the steps");
        zdtm_say("step %d: view %016llx alias %016llx fd %016llx B %016llx", s,
                 (unsigned long long)zdtm_sum(rw, A_MAP * PG),
                 (unsigned long long)zdtm_sum(ro, A_MAP * PG), (unsigned long long)sum_fd(a),
                 (unsigned long long)zdtm_sum(bm, B_PAGES * PG));
        zdtm_sleep_ms(ms);
    }
    /* one object still: a write through an fd shows in both maps */
    unsigned char mark = 0x5a;
    int one = pwrite(a2, &mark, 1, 3 * PG) == 1 && rw[3 * PG] == 0x5a && ro[3 * PG] == 0x5a;
    pid_t child = fork();
    if (child == 0) {
        rw[7 * PG] = 0xA5;
        _exit(0);
    }
    int st = 0;
    if (child < 0 || waitpid(child, &st, 0) != child || !WIFEXITED(st))
        return zdtm_result(0, "fork");
    one &= ro[7 * PG] == 0xA5;
    off_t off_a = lseek(a, 0, SEEK_CUR), off_a2 = lseek(a2, 0, SEEK_CUR);
    off_t off_a3 = lseek(a3, 0, SEEK_CUR);
    int seals_a = fcntl(a, F_GET_SEALS), cloexec = fcntl(a, F_GETFD) & FD_CLOEXEC;
    struct stat sa;
    fstat(a, &sa);
    /* B: sealed against writes, and still read-only shared */
    int b_sealed = mprotect(bm, PG, PROT_READ | PROT_WRITE) != 0;
    int hole = 1;
    for (size_t i = HOLE * PG; i < (HOLE + 10) * PG; i += 512) {
        unsigned char z;
        hole &= pread(a, &z, 1, (off_t)i) == 1 && z == 0;
    }
    char link[128] = "";
    ssize_t ln = readlink(self, link, sizeof(link) - 1);
    link[ln > 0 ? ln : 0] = '\0';
    zdtm_say("final: fd %016llx B %016llx size %lld offsets %lld %lld %lld seals %#x cloexec %d "
             "one object %d B sealed %d hole %d name %s",
             (unsigned long long)sum_fd(a3), (unsigned long long)zdtm_sum(bm, B_PAGES * PG),
             (long long)sa.st_size, (long long)off_a, (long long)off_a2, (long long)off_a3,
             seals_a, cloexec, one, b_sealed, hole, link);
    return zdtm_result(one && b_sealed && hole && off_a == off_a2 && off_a3 == 33 &&
                           sa.st_size == A_SIZE && seals_a == F_SEAL_SHRINK && cloexec,
                       "memfd objects after the steps");
}
