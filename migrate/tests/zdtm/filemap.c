/* Private file mappings: one of an unchanged file (mapped again from the file on restore,
 * only the written pages carried) and one whose file was replaced after mapping (its
 * contents must travel). Paths under argv[1]. */
#include "zdtm.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NP 64

static int make_file(const char *path, char fill)
{
    char page[4096];
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < NP; i++) {
        memset(page, fill + i % 7, sizeof(page));
        if (write(fd, page, sizeof(page)) != (ssize_t)sizeof(page))
            return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    int steps = zdtm_env("ZDTM_STEPS", 30), ms = zdtm_env("ZDTM_STEP_MS", 25);
    char a[4096], b[4096], b2[4096];

    if (argc < 2)
        return zdtm_result(0, "usage: filemap DIR");
    snprintf(a, sizeof(a), "%s/same.dat", argv[1]);
    snprintf(b, sizeof(b), "%s/replaced.dat", argv[1]);
    snprintf(b2, sizeof(b2), "%s/replaced.new", argv[1]);
    int fa = make_file(a, 'a'), fb = make_file(b, 'k');
    char *ma = mmap(NULL, NP * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fa, 0);
    char *mb = mmap(NULL, NP * 4096, PROT_READ, MAP_PRIVATE, fb, 0);
    close(fa);
    close(fb);
    if (ma == MAP_FAILED || mb == MAP_FAILED)
        return zdtm_result(0, "mmap");
    volatile char touch = mb[5 * 4096]; /* a few pages present, most not */
    (void)touch;
    /* the path now names another file: the mapping's contents must travel */
    int fn = make_file(b2, 'K');
    close(fn);
    rename(b2, b);
    for (int i = 0; i < NP; i += 4)
        ma[i * 4096 + 1] = 'W';
    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        ma[(s % NP) * 4096 + 2] = (char)('0' + s % 10);
        zdtm_say("step %d page %d: %.3s", s, s % NP, ma + (s % NP) * 4096);
        zdtm_sleep_ms(ms);
    }
    int bad = 0;
    for (int i = 0; i < NP; i++) {
        bad += ma[i * 4096 + 100] != 'a' + i % 7;
        bad += (ma[i * 4096 + 1] == 'W') != (i % 4 == 0);
        bad += mb[i * 4096 + 3] != 'k' + i % 7;
    }
    zdtm_say("bad %d", bad);
    return zdtm_result(bad == 0, "file mapping contents");
}
