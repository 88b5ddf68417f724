/* The one vectorised expf of the AVX2 kernels (flash attention, SSD decay mask): the polynomial and
 * Cody–Waite split of vexp_avx512.h on 8 lanes, inputs clamped to the same [-110, 89]; 2^n is built in
 * the exponent field with n clamped to -127, where the field 0 gives exactly 0 (-inf and large negative
 * arguments). Under the kernels' flushed MXCSR (kernels.h) that is cb_exp512's result bit for bit: its
 * vscalefps would give a subnormal there, which the flush turns into the same 0. NaN propagates (min/max
 * return their second operand on NaN). Include only from *_avx2.c files. */
#ifndef CB_VEXP_AVX2_H
#define CB_VEXP_AVX2_H

#include <immintrin.h>

static inline __m256 cb_exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-110.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_max_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(-127));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23)));
}

#endif
