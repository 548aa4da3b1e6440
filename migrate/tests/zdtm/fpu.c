/* FP/SSE/AVX registers mid-computation: long loops keep their state in ymm/xmm/x87
 * registers with no system call inside, so a dump lands in the middle of them. */
#include "zdtm.h"

#include <immintrin.h>
#include <math.h>

__attribute__((target("avx2,fma"), noinline)) static void avx_loop(long n, double out[16])
{
    __m256d a0 = _mm256_set_pd(1.0, 1.1, 1.2, 1.3), a1 = _mm256_set_pd(0.5, 0.6, 0.7, 0.8);
    __m256d a2 = _mm256_set1_pd(0.25), a3 = _mm256_set1_pd(0.125);
    const __m256d k = _mm256_set1_pd(0.9999999), c = _mm256_set1_pd(1e-7);
    for (long i = 0; i < n; i++) {
        a0 = _mm256_fmadd_pd(a0, k, c);
        a1 = _mm256_fmadd_pd(a1, k, a0);
        a2 = _mm256_fmadd_pd(a2, k, a1);
        a3 = _mm256_fmadd_pd(a3, k, a2);
        a1 = _mm256_mul_pd(a1, k);
        a2 = _mm256_mul_pd(a2, k);
        a3 = _mm256_mul_pd(a3, k);
    }
    _mm256_storeu_pd(out, a0);
    _mm256_storeu_pd(out + 4, a1);
    _mm256_storeu_pd(out + 8, a2);
    _mm256_storeu_pd(out + 12, a3);
}

/* zmm registers and an opmask, where the CPU has AVX-512 */
__attribute__((target("avx512f"), noinline)) static void avx512_loop(long n, double out[8])
{
    __m512d z0 = _mm512_set1_pd(1.5), z1 = _mm512_set_pd(1, 2, 3, 4, 5, 6, 7, 8);
    __m512d z2 = _mm512_set1_pd(0.5);
    const __m512d k = _mm512_set1_pd(0.99999991), c = _mm512_set1_pd(3e-8);
    for (long i = 0; i < n; i++) {
        z0 = _mm512_fmadd_pd(z0, k, c);
        z1 = _mm512_fmadd_pd(z1, k, z0);
        z2 = _mm512_mask_fmadd_pd(z2, (__mmask8)(0x5a ^ (i & 1)), k, z1);
    }
    _mm512_storeu_pd(out, _mm512_add_pd(z2, z1));
}

__attribute__((noinline)) static long double x87_loop(long n)
{
    long double x = 1.0L;
    for (long i = 0; i < n; i++)
        x = x * 1.0000001L + 1e-9L;
    return x;
}

int main(void)
{
    int steps = zdtm_env("ZDTM_STEPS", 12);
    long n = zdtm_env("ZDTM_FPU_ITERS", 30000000);
    double out[16];

    zdtm_say("ready");
    for (int s = 0; s < steps; s++) {
        avx_loop(n + s, out);
        long double x = x87_loop(n / 4 + s);
        double sse = 0;
        for (int i = 0; i < 16; i++)
            sse += sqrt(out[i] * (i + 1));
        zdtm_say("step %d avx %.17g %.17g %.17g x87 %.21Lg sse %.17g", s, out[0], out[7],
                 out[15], x, sse);
        if (__builtin_cpu_supports("avx512f")) {
            double z[8];
            avx512_loop(n / 2 + s, z);
            zdtm_say("step %d avx512 %.17g %.17g", s, z[0], z[7]);
        }
    }
    return zdtm_result(1, "");
}
