/* The one vectorised expf of the AVX-512 kernels (softmax, SiLU, flash attention, SSD decay mask).
 * Cephes-style: exp(x) = 2^n · p(r), r = x − n·ln2 (two-constant Cody–Waite), degree-6 polynomial, 2^n
 * applied with vscalefps (exact, underflow to denormals/0, overflow to inf). Inputs clamped to
 * [-110, 89] (beyond that the result is 0 / inf anyway; -inf gives 0); NaN propagates. Max error
 * 1.19 ulp over [-87, 88] (tests/test_kernels.c). Include only from *_avx512.c files. */
#ifndef CB_VEXP_AVX512_H
#define CB_VEXP_AVX512_H

#include <immintrin.h>

static inline __m512 cb_exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-110.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

#endif
