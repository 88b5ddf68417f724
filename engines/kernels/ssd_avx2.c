/* AVX2 decode recurrence of the SSD (contract in ssd.h), for CPUs without AVX-512: the AVX-512 step's
 * operations on 16 lanes held as two 8-lane halves (s = dx·B + e·s fused, y lanes reduced by halves), so
 * both paths give the same bits; the state dimension's tail past a multiple of 16 is zero-padded as the
 * AVX-512 masks do. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "ssd.h"

#define SSD_PF 2048 /* bytes ahead: the state streams from memory once per token */

static inline float reduce16(__m256 lo, __m256 hi) {
    __m256 a = _mm256_add_ps(lo, hi);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
}

/* 16 state values from s + n (nv of them valid, the rest zero): one step, stored back, folded into acc */
static inline void step16(float *s, const float *B, const float *C, int nv, __m256 ev, __m256 dx, __m256 *lo,
                          __m256 *hi) {
    float sb[16] = { 0 }, bb[16] = { 0 }, cc[16] = { 0 };
    const bool full = nv == 16;
    if (!full) memcpy(sb, s, (size_t)nv * 4), memcpy(bb, B, (size_t)nv * 4), memcpy(cc, C, (size_t)nv * 4);
    const float *ps = full ? s : sb, *pb = full ? B : bb, *pc = full ? C : cc;
    __m256 s0 = _mm256_fmadd_ps(dx, _mm256_loadu_ps(pb), _mm256_mul_ps(ev, _mm256_loadu_ps(ps)));
    __m256 s1 = _mm256_fmadd_ps(dx, _mm256_loadu_ps(pb + 8), _mm256_mul_ps(ev, _mm256_loadu_ps(ps + 8)));
    *lo = _mm256_fmadd_ps(s0, _mm256_loadu_ps(pc), *lo);
    *hi = _mm256_fmadd_ps(s1, _mm256_loadu_ps(pc + 8), *hi);
    if (full) {
        _mm256_storeu_ps(s, s0), _mm256_storeu_ps(s + 8, s1);
    } else {
        _mm256_storeu_ps(sb, s0), _mm256_storeu_ps(sb + 8, s1);
        memcpy(s, sb, (size_t)nv * 4);
    }
}

void cb_ssd_step_avx2(const cb_ssd_head *h) {
    const int P = h->P, N = h->N;
    const float dt = h->dt[0], e = expf(dt * h->A);
    const __m256 ev = _mm256_set1_ps(e);
    for (int p = 0; p < P; p++) {
        float *s = h->S + (int64_t)p * N;
        for (int n = 0; n < N; n += 16) _mm_prefetch((const char *)(s + n) + SSD_PF, _MM_HINT_T0);
        const __m256 dx = _mm256_set1_ps(dt * h->x[p]);
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        for (int n = 0; n < N; n += 16) step16(s + n, h->B + n, h->C + n, N - n < 16 ? N - n : 16, ev, dx, &lo, &hi);
        h->y[p] = reduce16(lo, hi) + h->D * h->x[p];
    }
}
