/* AVX-512 steps of the chunked SSD (row-major GEMM tiles vectorised along the output row, a vector
 * exp for the decay mask) and the decode recurrence vectorised along the state dimension. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "ssd.h"
#include "ssd_internal.h"
#include "vexp_avx512.h"


static inline __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

/* R rows × up to 64 columns of C (mask per 16-column vector), k-loop with broadcasts of A. */
static inline __attribute__((always_inline)) void tile(const int R, int k, const float *A, int64_t lda,
                                                       const float *B, int64_t ldb, float *C, int64_t ldc,
                                                       int ncols, bool accumulate) {
    __m512 acc[4][4];
    __mmask16 m[4];
    int nv = (ncols + 15) / 16;
    _Pragma("GCC unroll 4")
    for (int v = 0; v < 4; v++) m[v] = v < nv ? tail_mask(ncols - 16 * v) : 0;
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4")
        for (int v = 0; v < 4; v++)
            acc[r][v] = accumulate && v < nv ? _mm512_maskz_loadu_ps(m[v], C + r * ldc + 16 * v) : _mm512_setzero_ps();
    if (nv == 4) {
        for (int l = 0; l < k; l++) {
            const float *b = B + (int64_t)l * ldb;
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
                   b3 = _mm512_maskz_loadu_ps(m[3], b + 48);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < R; r++) {
                __m512 av = _mm512_set1_ps(A[r * lda + l]);
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(av, b2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(av, b3, acc[r][3]);
            }
        }
    } else {
        for (int l = 0; l < k; l++) {
            const float *b = B + (int64_t)l * ldb;
            __m512 bv[4];
            _Pragma("GCC unroll 4")
            for (int v = 0; v < 4; v++) bv[v] = v < nv ? _mm512_maskz_loadu_ps(m[v], b + 16 * v) : _mm512_setzero_ps();
            _Pragma("GCC unroll 4")
            for (int r = 0; r < R; r++) {
                __m512 av = _mm512_set1_ps(A[r * lda + l]);
                _Pragma("GCC unroll 4")
                for (int v = 0; v < 4; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]); /* zero columns past nv */
            }
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4")
        for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(C + r * ldc + 16 * v, m[v], acc[r][v]); /* m[v] = 0 past nv */
}

void cb_ssd_gemm_avx512(int m, int n, int k, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                        int64_t ldc, bool accumulate, bool causal) {
    for (int j0 = 0; j0 < n; j0 += 64) {
        int nc = CB_MIN(64, n - j0);
        int i = 0;
        for (; i + 4 <= m; i += 4) {
            int kk = causal ? CB_MIN(k, i + 4) : k; /* A is zero beyond the diagonal */
            tile(4, kk, A + (int64_t)i * lda, lda, B + j0, ldb, C + (int64_t)i * ldc + j0, ldc, nc, accumulate);
        }
        for (; i < m; i++) {
            int kk = causal ? CB_MIN(k, i + 1) : k;
            tile(1, kk, A + (int64_t)i * lda, lda, B + j0, ldb, C + (int64_t)i * ldc + j0, ldc, nc, accumulate);
        }
    }
}

void cb_ssd_decay_mask_avx512(int q, const float *a, const float *src, float *G, int64_t ldg) {
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int i = 0; i < q; i++) {
        float *g = G + (int64_t)i * ldg;
        const float *sr = src + (int64_t)i * ldg;
        __m512 ai = _mm512_set1_ps(a[i]);
        for (int j = 0; j < q; j += 16) {
            __mmask16 in = tail_mask(q - j);
            if (j > i) { /* wholly above the diagonal */
                _mm512_mask_storeu_ps(g + j, in, _mm512_setzero_ps());
                continue;
            }
            /* j' ≤ i keeps the decayed value; above the diagonal 0 (exp is never taken there) */
            __mmask16 keep = in & _mm512_cmple_epi32_mask(_mm512_add_epi32(iota, _mm512_set1_epi32(j)),
                                                          _mm512_set1_epi32(i));
            __m512 aj = _mm512_maskz_loadu_ps(keep, a + j);
            __m512 d = _mm512_maskz_sub_ps(keep, ai, aj);
            __m512 gv = _mm512_maskz_loadu_ps(keep, sr + j);
            _mm512_mask_storeu_ps(g + j, in, _mm512_maskz_mul_ps(keep, gv, cb_exp512(d)));
        }
    }
}

/* By gathering one column of 16 source rows per vector (the rows stay in L1 across the columns): the
 * scalar loop's transposed stores cost ~10 cycles per element at the chunk sizes used. */
void cb_ssd_transpose_avx512(int m, int n, const float *src, int64_t lds, float *dst, int64_t ldd) {
    if ((int64_t)15 * lds > INT32_MAX / 4) { /* the gather's 32-bit byte offsets would overflow */
        cb_ssd_transpose_ref(m, n, src, lds, dst, ldd);
        return;
    }
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)lds));
    for (int i0 = 0; i0 < m; i0 += 16) {
        __mmask16 k = tail_mask(m - i0);
        const float *s = src + (int64_t)i0 * lds;
        for (int j = 0; j < n; j++)
            _mm512_mask_storeu_ps(dst + (int64_t)j * ldd + i0, k, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, rows, s + j, 4));
    }
}

void cb_ssd_scale_rows_avx512(int m, int n, const float *s, int64_t lds, const float *src, int64_t ldsrc, float *dst,
                              int64_t lddst) {
    for (int i = 0; i < m; i++) {
        const __m512 d = _mm512_set1_ps(s[(int64_t)i * lds]);
        for (int p = 0; p < n; p += 16) {
            __mmask16 k = tail_mask(n - p);
            _mm512_mask_storeu_ps(dst + (int64_t)i * lddst + p, k, _mm512_mul_ps(d, _mm512_maskz_loadu_ps(k, src + (int64_t)i * ldsrc + p)));
        }
    }
}

void cb_ssd_skip_avx512(int q, int P, const float *a, float D, const float *x, int64_t ldx, float *y, int64_t ldy) {
    const __m512 dv = _mm512_set1_ps(D);
    for (int i = 0; i < q; i++) {
        const __m512 e = _mm512_set1_ps(expf(a[i])); /* libm's expf, as the portable twin */
        float *yi = y + (int64_t)i * ldy;
        const float *xi = x + (int64_t)i * ldx;
        for (int p = 0; p < P; p += 16) {
            __mmask16 m = tail_mask(P - p);
            __m512 v = _mm512_add_ps(_mm512_mul_ps(e, _mm512_maskz_loadu_ps(m, yi + p)),
                                     _mm512_mul_ps(dv, _mm512_maskz_loadu_ps(m, xi + p))); /* not fused: as the twin */
            _mm512_mask_storeu_ps(yi + p, m, v);
        }
    }
}

void cb_ssd_scale_cols_avx512(int rows, int cols, const float *s, float *M) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j += 16) {
            __mmask16 m = tail_mask(cols - j);
            float *row = M + (int64_t)r * cols + j;
            _mm512_mask_storeu_ps(row, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row), _mm512_maskz_loadu_ps(m, s + j)));
        }
}

static const cb_ssd_ops avx512_ops = { cb_ssd_gemm_avx512, cb_ssd_decay_mask_avx512, cb_ssd_transpose_avx512,
                                       cb_ssd_scale_rows_avx512, cb_ssd_skip_avx512, cb_ssd_scale_cols_avx512 };

const cb_ssd_ops *cb_ssd_ops_avx512(void) { return &avx512_ops; }

void cb_ssd_chunked_avx512(const cb_ssd_head *h, int Q, float *ws) { cb_ssd_chunked_with(h, Q, ws, &avx512_ops); }

#ifndef SSD_PF
#define SSD_PF 2048
#endif
void cb_ssd_step_avx512(const cb_ssd_head *h) {
    const int P = h->P, N = h->N;
    const float dt = h->dt[0], e = expf(dt * h->A);
    const __m512 ev = _mm512_set1_ps(e);
    for (int p = 0; p < P; p++) {
        float *s = h->S + (int64_t)p * N;
        /* the state streams from memory once per token (the weights evict it): fetch SSD_PF bytes ahead */
        for (int n = 0; n < N; n += 16) _mm_prefetch((const char *)(s + n) + SSD_PF, _MM_HINT_T0);
        const __m512 dx = _mm512_set1_ps(dt * h->x[p]);
        __m512 acc = _mm512_setzero_ps();
        for (int n = 0; n < N; n += 16) {
            __mmask16 m = tail_mask(N - n);
            __m512 sv = _mm512_maskz_loadu_ps(m, s + n);
            sv = _mm512_fmadd_ps(dx, _mm512_maskz_loadu_ps(m, h->B + n), _mm512_mul_ps(ev, sv));
            _mm512_mask_storeu_ps(s + n, m, sv);
            acc = _mm512_fmadd_ps(sv, _mm512_maskz_loadu_ps(m, h->C + n), acc);
        }
        h->y[p] = _mm512_reduce_add_ps(acc) + h->D * h->x[p];
    }
}

void cb_ssd_silu_avx512(int64_t n, float *x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask((int)CB_MIN(n - i, 16));
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 e = cb_exp512(_mm512_sub_ps(_mm512_setzero_ps(), v)); /* inf for v < −88.7: v/inf = −0 */
        _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(v, _mm512_add_ps(one, e)));
    }
}
