/* mosbench seal: what protecting every message costs, per core, measured side by side in one
 * run over the same buffer, frame by frame (the transport's slot size):
 *   memcpy      the floor: moving the bytes once in memory;
 *   tag         Poly1305 over each frame (mos_seal_mac_*), what a page frame costs each end;
 *   seal        ChaCha20-Poly1305 of each frame in place (mos_seal_box), what sealing pages
 *               would cost instead (control messages and link frames are sealed);
 * and the median time to seal one small message (64 bytes: a call; 4 KiB: a large reply). */
#include "bench.h"

#include "mos/clock.h"
#include "mos/seal.h"
#include "mos/size.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct seal_args {
    uint64_t bytes, frame;
    unsigned passes;
};

static double gbps(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes * 8 / (double)ns : 0;
}

/* The best of passes runs of fn over every frame: the least disturbed by the rest of the box. */
#define BEST_OF(a, ns, body)                                                                      \
    do {                                                                                        \
        ns = UINT64_MAX;                                                                        \
        for (unsigned pass_ = 0; pass_ < (a)->passes; pass_++) {                                \
            uint64_t t0_ = mos_clock_now_ns();                                                  \
            for (uint64_t off = 0; off < (a)->bytes; off += (a)->frame) {                       \
                body;                                                                           \
            }                                                                                   \
            uint64_t dt_ = mos_clock_now_ns() - t0_;                                            \
            if (dt_ < ns)                                                                       \
                ns = dt_;                                                                       \
        }                                                                                       \
    } while (0)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double small_seal_ns(struct mos_seal_key *k, size_t len)
{
    enum { N = 2001 };
    static uint64_t t[N];
    uint8_t msg[4096], tag[MOS_SEAL_TAG_BYTES], ad[6] = {0};

    memset(msg, 7, sizeof(msg));
    for (int i = 0; i < N; i++) {
        uint64_t t0 = mos_clock_now_ns();
        for (int j = 0; j < 16; j++)
            mos_seal_box(k, ad, sizeof(ad), msg, msg, len, tag);
        t[i] = mos_clock_now_ns() - t0;
    }
    qsort(t, N, sizeof(t[0]), cmp_u64);
    return (double)t[N / 2] / 16;
}

static int parse(int argc, char **argv, struct seal_args *a)
{
    *a = (struct seal_args){.bytes = 256ull << 20, .frame = 1u << 20, .passes = 5};
    for (int i = 0; i < argc; i += 2) { /* OPTION VALUE pairs */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "mosbench seal: %s needs a value\n", argv[i]);
            return -1;
        }
        if (strcmp(argv[i], "--bytes") == 0) {
            if (bench_parse_size("seal", "--bytes", v, 1, 1u << 20, 16ull << 30, &a->bytes) != 0)
                return -1;
        } else if (strcmp(argv[i], "--frame") == 0) {
            if (bench_parse_size("seal", "--frame", v, 1, 4096, 64u << 20, &a->frame) != 0)
                return -1;
        } else if (strcmp(argv[i], "--passes") == 0) {
            if (bench_parse_uint(v, &a->passes) != 0 || a->passes < 1 || a->passes > 100) {
                fprintf(stderr, "mosbench seal: --passes '%s' is not 1..100\n", v);
                return -1;
            }
        } else {
            fprintf(stderr, "mosbench seal: unknown option '%s'\n", argv[i]);
            return -1;
        }
    }
    a->bytes -= a->bytes % a->frame;
    if (a->bytes == 0) {
        fprintf(stderr, "mosbench seal: --bytes is smaller than one --frame\n");
        return -1;
    }
    return 0;
}

int bench_seal(int argc, char **argv)
{
    struct seal_args a;
    uint8_t session[MOS_AUTH_SESSION_BYTES] = {1}, tag[MOS_SEAL_TAG_BYTES];
    struct mos_seal s;
    uint64_t copy_ns, mac_ns, seal_ns;

    if (parse(argc, argv, &a) != 0)
        return 2;
    uint8_t *src = mmap(NULL, a.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *dst = mmap(NULL, a.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (src == MAP_FAILED || dst == MAP_FAILED) {
        fprintf(stderr, "mosbench seal: cannot map 2 x %llu bytes\n", (unsigned long long)a.bytes);
        return 1;
    }
    for (uint64_t i = 0; i < a.bytes; i++)
        src[i] = (uint8_t)(i * 31);
    memset(dst, 0, a.bytes);
    mos_seal_init(&s, session, MOS_SEAL_BULK, 1);

    BEST_OF(&a, copy_ns, memcpy(dst + off, src + off, a.frame));
    BEST_OF(&a, mac_ns, {
        struct mos_seal_mac m;
        mos_seal_mac_begin(&s.tx, off / a.frame, &m);
        mos_seal_mac_add(&m, src + off, a.frame);
        mos_seal_mac_final(&m, tag);
    });
    BEST_OF(&a, seal_ns, mos_seal_box(&s.tx, NULL, 0, src + off, src + off, a.frame, tag));
    double small64 = small_seal_ns(&s.tx, 64), small4k = small_seal_ns(&s.tx, 4096);

    double g_copy = gbps(a.bytes, copy_ns), g_mac = gbps(a.bytes, mac_ns),
           g_seal = gbps(a.bytes, seal_ns);
    printf("%llu MiB in %llu KiB frames, best of %u passes, one core\n",
           (unsigned long long)(a.bytes >> 20), (unsigned long long)(a.frame >> 10), a.passes);
    printf("memcpy            %8.2f Gb/s\n", g_copy);
    printf("tag (Poly1305)    %8.2f Gb/s   %.2fx memcpy's time\n", g_mac,
           g_mac > 0 ? g_copy / g_mac : 0);
    printf("seal (ChaCha20-Poly1305) %8.2f Gb/s   %.2fx the tag's time\n", g_seal,
           g_seal > 0 ? g_mac / g_seal : 0);
    printf("seal one message: 64 B %.0f ns, 4 KiB %.0f ns (median)\n", small64, small4k);
    printf("result seal bytes=%llu frame=%llu memcpy_gbps=%.2f tag_gbps=%.2f seal_gbps=%.2f "
           "tag_vs_memcpy=%.2f seal_vs_tag=%.2f seal64_ns=%.0f seal4k_ns=%.0f\n",
           (unsigned long long)a.bytes, (unsigned long long)a.frame, g_copy, g_mac, g_seal,
           g_mac > 0 ? g_copy / g_mac : 0, g_seal > 0 ? g_mac / g_seal : 0, small64, small4k);
    mos_seal_wipe(&s);
    munmap(src, a.bytes);
    munmap(dst, a.bytes);
    return 0;
}
