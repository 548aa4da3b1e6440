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
    }
    return zdtm_result(1, "");
}
