/* AVX2 SSD kernels for CPUs without AVX-512, each giving the AVX-512 kernel's bits.
 * Decode recurrence (contract in ssd.h): the AVX-512 step's operations on 16 lanes held as two 8-lane
 * halves (s = dx·B + e·s fused, y lanes reduced by halves); the state dimension's tail past a multiple of
 * 16 is zero-padded as the AVX-512 masks do.
 * Chunked steps (ssd_internal.h): the GEMM as 6-row x 16-column register tiles, each output one fused
 * multiply-add per k in k order from 0 (or C), as ssd_avx512.c's tiles; the elementwise steps one operation
 * per element as the twins, the decay mask through cb_exp256. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "ssd.h"
#include "ssd_internal.h"
#include "vexp_avx2.h"

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

/* lanes < left (0..8) of an 8-float vector, for vmaskmovps */
static inline __m256i lanes(int left) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* R rows x up to 16 columns of C (two 8-column vectors, masked past ncols), k-loop with broadcasts of A. */
static inline __attribute__((always_inline)) void tile(const int R, int k, const float *A, int64_t lda,
                                                       const float *B, int64_t ldb, float *C, int64_t ldc,
                                                       int ncols, bool accumulate) {
    __m256 acc[6][2];
    const __m256i m0 = lanes(CB_MIN(ncols, 8)), m1 = lanes(CB_MAX(ncols - 8, 0));
    const bool full = ncols == 16;
    _Pragma("GCC unroll 6")
    for (int r = 0; r < R; r++) {
        acc[r][0] = accumulate ? _mm256_maskload_ps(C + r * ldc, m0) : _mm256_setzero_ps();
        acc[r][1] = accumulate ? _mm256_maskload_ps(C + r * ldc + 8, m1) : _mm256_setzero_ps();
    }
#define K_LOOP(LOAD0, LOAD1)                                                  \
    for (int l = 0; l < k; l++) {                                             \
        const float *b = B + (int64_t)l * ldb;                                \
        const __m256 b0 = LOAD0, b1 = LOAD1;                                  \
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {                 \
            const __m256 av = _mm256_broadcast_ss(A + r * lda + l);           \
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);                   \
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);                   \
        }                                                                     \
    }
    if (full) K_LOOP(_mm256_loadu_ps(b), _mm256_loadu_ps(b + 8))
    else K_LOOP(_mm256_maskload_ps(b, m0), _mm256_maskload_ps(b + 8, m1))
#undef K_LOOP
    _Pragma("GCC unroll 6")
    for (int r = 0; r < R; r++) {
        _mm256_maskstore_ps(C + r * ldc, m0, acc[r][0]);
        _mm256_maskstore_ps(C + r * ldc + 8, m1, acc[r][1]);
    }
}

void cb_ssd_gemm_avx2(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                      int64_t ldc, bool accumulate, bool causal) {
    for (int j0 = 0; j0 < n; j0 += 16) {
        const int nc = CB_MIN(16, n - j0);
        for (int i = 0; i < m;) {
            const int R = CB_MIN(6, m - i);
            const int kk = causal ? CB_MIN(k, i + R) : k; /* A is zero beyond the diagonal */
            const float *a = A + (int64_t)i * lda;
            float *c = C + (int64_t)i * ldc + j0;
            switch (R) {
            case 6: tile(6, kk, a, lda, B + j0, ldb, c, ldc, nc, accumulate); break;
            case 5: tile(5, kk, a, lda, B + j0, ldb, c, ldc, nc, accumulate); break;
            case 4: tile(4, kk, a, lda, B + j0, ldb, c, ldc, nc, accumulate); break;
            case 3: tile(3, kk, a, lda, B + j0, ldb, c, ldc, nc, accumulate); break;
            case 2: tile(2, kk, a, lda, B + j0, ldb, c, ldc, nc, accumulate); break;
            default: tile(1, kk, a, lda, B + j0, ldb, c, ldc, nc, accumulate); break;
            }
            i += R;
        }
    }
}

void cb_ssd_decay_mask_avx2(int q, const float *a, const float *src, float *G, int64_t ldg) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int i = 0; i < q; i++) {
        float *g = G + (int64_t)i * ldg;
        const float *sr = src + (int64_t)i * ldg;
        const __m256 ai = _mm256_set1_ps(a[i]);
        for (int j = 0; j < q; j += 8) {
            const __m256i in = lanes(q - j);
            if (j > i) { /* wholly above the diagonal */
                _mm256_maskstore_ps(g + j, in, _mm256_setzero_ps());
                continue;
            }
            /* j' <= i keeps the decayed value; above the diagonal 0 (exp is never taken there) */
            const __m256i keep = _mm256_and_si256(in, _mm256_cmpgt_epi32(_mm256_set1_epi32(i + 1), _mm256_add_epi32(iota, _mm256_set1_epi32(j))));
            const __m256 d = _mm256_and_ps(_mm256_sub_ps(ai, _mm256_maskload_ps(a + j, keep)), _mm256_castsi256_ps(keep));
            const __m256 gv = _mm256_maskload_ps(sr + j, keep);
            _mm256_maskstore_ps(g + j, in, _mm256_and_ps(_mm256_mul_ps(gv, cb_exp256(d)), _mm256_castsi256_ps(keep)));
        }
    }
}

/* 8 source rows per pass, one column per gather (the rows stay in L1 across the columns). */
void cb_ssd_transpose_avx2(int m, int n, const float *src, int64_t lds, float *dst, int64_t ldd) {
    if ((int64_t)7 * lds > INT32_MAX / 4) { /* the gather's 32-bit byte offsets would overflow */
        cb_ssd_transpose_ref(m, n, src, lds, dst, ldd);
        return;
    }
    const __m256i rows = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)lds));
    for (int i0 = 0; i0 < m; i0 += 8) {
        const __m256i k = lanes(m - i0);
        const float *s = src + (int64_t)i0 * lds;
        for (int j = 0; j < n; j++)
            _mm256_maskstore_ps(dst + (int64_t)j * ldd + i0, k,
                                _mm256_mask_i32gather_ps(_mm256_setzero_ps(), s + j, rows, _mm256_castsi256_ps(k), 4));
    }
}

void cb_ssd_scale_rows_avx2(int m, int n, const float *s, int64_t lds, const float *src, int64_t ldsrc, float *dst,
                            int64_t lddst) {
    for (int i = 0; i < m; i++) {
        const __m256 d = _mm256_set1_ps(s[(int64_t)i * lds]);
        for (int p = 0; p < n; p += 8) {
            const __m256i k = lanes(n - p);
            _mm256_maskstore_ps(dst + (int64_t)i * lddst + p, k, _mm256_mul_ps(d, _mm256_maskload_ps(src + (int64_t)i * ldsrc + p, k)));
        }
    }
}

void cb_ssd_skip_avx2(int q, int P, const float *a, float D, const float *x, int64_t ldx, float *y, int64_t ldy) {
    const __m256 dv = _mm256_set1_ps(D);
    for (int i = 0; i < q; i++) {
        const __m256 e = _mm256_set1_ps(expf(a[i])); /* libm's expf, as the portable twin */
        float *yi = y + (int64_t)i * ldy;
        const float *xi = x + (int64_t)i * ldx;
        for (int p = 0; p < P; p += 8) {
            const __m256i m = lanes(P - p);
            const __m256 v = _mm256_add_ps(_mm256_mul_ps(e, _mm256_maskload_ps(yi + p, m)),
                                           _mm256_mul_ps(dv, _mm256_maskload_ps(xi + p, m))); /* not fused: as the twin */
            _mm256_maskstore_ps(yi + p, m, v);
        }
    }
}

void cb_ssd_scale_cols_avx2(int rows, int cols, const float *s, float *M) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j += 8) {
            const __m256i m = lanes(cols - j);
            float *row = M + (int64_t)r * cols + j;
            _mm256_maskstore_ps(row, m, _mm256_mul_ps(_mm256_maskload_ps(row, m), _mm256_maskload_ps(s + j, m)));
        }
}

static const cb_ssd_ops avx2_ops = { cb_ssd_gemm_avx2, cb_ssd_decay_mask_avx2, cb_ssd_transpose_avx2,
                                     cb_ssd_scale_rows_avx2, cb_ssd_skip_avx2, cb_ssd_scale_cols_avx2 };

const cb_ssd_ops *cb_ssd_ops_avx2(void) { return &avx2_ops; }
