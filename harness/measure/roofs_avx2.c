/* AVX2 FMA peak loop for CPUs without AVX-512: 12 independent ymm FMA chains (latency 4-5 × 2 FMA pipes on
 * current cores), register-resident; the chains and constants of the AVX-512 loop on 8 lanes instead of 16.
 * Portable twin: roofs_ref.c (whose 16 lanes of a chain hold the same values as these 8). */
#include <immintrin.h>

#include "roofs.h"

double cb_roofs_fma_avx2(long iters, float *sum) {
    __m256 a0 = _mm256_set1_ps(1.000f), a1 = _mm256_set1_ps(1.001f), a2 = _mm256_set1_ps(1.002f),
           a3 = _mm256_set1_ps(1.003f), a4 = _mm256_set1_ps(1.004f), a5 = _mm256_set1_ps(1.005f),
           a6 = _mm256_set1_ps(1.006f), a7 = _mm256_set1_ps(1.007f), a8 = _mm256_set1_ps(1.008f),
           a9 = _mm256_set1_ps(1.009f), a10 = _mm256_set1_ps(1.010f), a11 = _mm256_set1_ps(1.011f);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
#define F(x) x = _mm256_fmadd_ps(x, m, c)
        F(a0); F(a1); F(a2); F(a3); F(a4); F(a5); F(a6); F(a7); F(a8); F(a9); F(a10); F(a11);
#undef F
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float l[8];
    _mm256_storeu_ps(l, s);
    *sum = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])); /* keeps the loop alive */
    return (double)iters * 12 * 8 * 2;
}
