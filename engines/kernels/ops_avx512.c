/* AVX-512 row / elementwise kernels: twins of ops_ref.c (same contracts, see kernels.h). */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#include "kernels_avx512.h"
#include "vexp_avx512.h"

static inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1); }

/* 16 elements of a vector weight (f32 / bf16 / f16) widened to fp32, masked lanes zero. */
static inline __m512 load_vec(const cb_weight *w, int64_t i, __mmask16 m) {
    if (w->dtype == CB_F32) return _mm512_maskz_loadu_ps(m, (const float *)w->data + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w->data + i);
    if (w->dtype == CB_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}
static inline bool vec_dtype_ok(const cb_weight *w) {
    return w->dtype == CB_F32 || w->dtype == CB_BF16 || w->dtype == CB_F16;
}


void cb_expf16_avx512(const float *in, float *out) { _mm512_storeu_ps(out, cb_exp512(_mm512_loadu_ps(in))); }

void cb_rmsnorm_avx512(int rows, int n, const float *x, int64_t ldx, const cb_weight *w, double eps, float *y,
                       int64_t ldy) {
    if (!vec_dtype_ok(w)) return cb_rmsnorm_ref(rows, n, x, ldx, w, eps, y, ldy);
#pragma omp parallel for schedule(static) if ((int64_t)rows * n > (1 << 17))
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        int i = 0;
        for (; i + 32 <= n; i += 32) {
            __m512 a = _mm512_loadu_ps(xr + i), b = _mm512_loadu_ps(xr + i + 16);
            s0 = _mm512_fmadd_ps(a, a, s0);
            s1 = _mm512_fmadd_ps(b, b, s1);
        }
        for (; i < n; i += 16) {
            __m512 a = _mm512_maskz_loadu_ps(tail_mask(n - i), xr + i);
            s0 = _mm512_fmadd_ps(a, a, s0);
        }
        float ss = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
        __m512 inv = _mm512_set1_ps(1.0f / sqrtf(ss / (float)n + (float)eps));
        for (i = 0; i < n; i += 16) {
            __mmask16 m = tail_mask(n - i);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), inv);
            _mm512_mask_storeu_ps(yr + i, m, _mm512_mul_ps(v, load_vec(w, i, m)));
        }
    }
}

static inline void silu_mul16(int64_t n, int64_t i, const float *gate, const float *up, float *out) {
    __mmask16 m = tail_mask(n - i);
    __m512 g = _mm512_maskz_loadu_ps(m, gate + i), u = _mm512_maskz_loadu_ps(m, up + i);
    __m512 e = cb_exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, u));
}

void cb_silu_mul_avx512(int64_t n, const float *gate, const float *up, float *out) {
    int64_t nb = (n + 15) / 16;
    /* Decode-sized calls (a layer's d_ff, an expert's ff per slot) never enter an OpenMP region: even one
     * serialised by `if` costs about a microsecond, more than the arithmetic (docs/performance.md,
     * "Granite 4.0-H: MoE decode on Zen 4"). */
    if (n <= (1 << 16)) {
        for (int64_t b = 0; b < nb; b++) silu_mul16(n, b * 16, gate, up, out);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) silu_mul16(n, b * 16, gate, up, out);
}

void cb_softmax_avx512(int n, float *x) {
    if (n <= 0) return;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail_mask(n - i), x + i));
    __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = cb_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(x + i, m, e);
        sum = _mm512_add_ps(sum, e);
    }
    __m512 s = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    }
}

void cb_add_avx512(int64_t n, float *y, const float *a) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, a + i)));
    }
}

void cb_add_bias_avx512(int M, float *Y, int64_t ldy, const cb_weight *bias) {
    if (!bias || !bias->data) return;
    if (!vec_dtype_ok(bias)) return cb_add_bias_ref(M, Y, ldy, bias);
    int64_t N = bias->cols * bias->rows;
    for (int m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n += 16) {
            __mmask16 k = tail_mask(N - n);
            float *y = Y + m * ldy + n;
            _mm512_mask_storeu_ps(y, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, y), load_vec(bias, n, k)));
        }
}

/* Same operation order as the ref (bias, then taps oldest first, mul then add — no FMA), so results match it
 * bit for bit. 16 channels per vector; the K−1 history values live in registers. */
#define CONV_KMAX 8
#define CONV_ROWS_MIN 16 /* from this many tokens up the conv runs row-major (conv_rows below) */

/* Prefill: tokens outer, channels inner, so x and y stream row by row (a column block walked down rows ldx
 * apart defeats the hardware prefetcher: docs/performance.md "Exact mode on the tiles: where a chunk's time
 * goes"). The history of row t is rows t−K+1..t−1 of x itself, or of the state for the first K−1 rows (the
 * state transposed once into hist, K−1 rows of C). The taps, weights transposed once into wt [K][C], are
 * summed in the ref's order, so the results are bit-identical to it. */
static void conv_rows(int T, int C, int K, const float *x, int64_t ldx, const cb_weight *w, const cb_weight *bias,
                      float *state, float *y, int64_t ldy) {
    float *wt = malloc(sizeof(float) * (size_t)K * (size_t)C), *hist = malloc(sizeof(float) * (size_t)CB_MAX(K - 1, 1) * (size_t)C),
          *bv = calloc((size_t)C, sizeof(float));
    if (!wt || !hist || !bv) {
        free(wt), free(hist), free(bv);
        cb_conv1d_causal_ref(T, C, K, x, ldx, w, bias, state, y, ldy);
        return;
    }
    for (int c = 0; c < C; c++) {
        for (int k = 0; k < K; k++) wt[(size_t)k * C + c] = cb_load_f32(w->data, w->dtype, (size_t)c * K + (size_t)k);
        for (int k = 0; k < K - 1; k++) hist[(size_t)k * C + c] = state[(int64_t)c * (K - 1) + k];
        if (bias && bias->data) bv[c] = cb_load_f32(bias->data, bias->dtype, (size_t)c);
    }
#pragma omp parallel for schedule(static) if ((int64_t)T * C > (1 << 15))
    for (int t = 0; t < T; t++) {
        const float *src[CONV_KMAX]; /* tap k of row t: row t − (K−1) + k of x, or of hist below row 0 */
        for (int k = 0; k < K; k++) {
            int r = t - (K - 1) + k;
            src[k] = r >= 0 ? x + (int64_t)r * ldx : hist + (size_t)(r + K - 1) * C;
        }
        float *yr = y + (int64_t)t * ldy;
        for (int c0 = 0; c0 < C; c0 += 16) {
            __mmask16 m = tail_mask(C - c0);
            __m512 acc = _mm512_maskz_loadu_ps(m, bv + c0);
            for (int k = 0; k < K; k++)
                acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, wt + (size_t)k * C + c0),
                                                       _mm512_maskz_loadu_ps(m, src[k] + c0)));
            _mm512_mask_storeu_ps(yr + c0, m, acc);
        }
    }
    /* the new state: the last K−1 inputs, oldest first (T ≥ CONV_ROWS_MIN > K−1, so all from x) */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K - 1; k++) state[(int64_t)c * (K - 1) + k] = x[(int64_t)(T - (K - 1) + k) * ldx + c];
    free(wt), free(hist), free(bv);
}

void cb_conv1d_causal_avx512(int T, int C, int K, const float *x, int64_t ldx, const cb_weight *w,
                             const cb_weight *bias, float *state, float *y, int64_t ldy) {
    if (K < 1 || K > CONV_KMAX) return cb_conv1d_causal_ref(T, C, K, x, ldx, w, bias, state, y, ldy);
    /* row-major reads rows of x it has already passed: only when y does not overwrite them */
    const bool apart = y + (int64_t)(T - 1) * ldy + C <= x || x + (int64_t)(T - 1) * ldx + C <= y;
    if (T >= CONV_ROWS_MIN && apart) return conv_rows(T, C, K, x, ldx, w, bias, state, y, ldy);
    int nb = (C + 15) / 16;
#pragma omp parallel for schedule(static) if ((int64_t)T * C > (1 << 15))
    for (int b = 0; b < nb; b++) {
        int c0 = b * 16, nc = C - c0 < 16 ? C - c0 : 16;
        __mmask16 m = tail_mask(nc);
        const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        /* Decode calls this with T = 1 for every layer and token, so the [16][K] weight block and the
         * [16][K−1] state are transposed in registers (K = 4: permutes) or gathered, not read per element. */
        float *st0 = state + (int64_t)c0 * (K - 1);
        __m512 wv[CONV_KMAX], h[CONV_KMAX];
        if (K == 4) {
            __m512 wr[4], sr[3];
            for (int i = 0; i < 4; i++) wr[i] = load_vec(w, (int64_t)c0 * 4 + 16 * i, tail_mask(CB_MAX(nc * 4 - 16 * i, 0)));
            for (int i = 0; i < 3; i++) sr[i] = _mm512_maskz_loadu_ps(tail_mask(CB_MAX(nc * 3 - 16 * i, 0)), st0 + 16 * i);
            for (int k = 0; k < 4; k++) {
                /* tap k of channels 0-7 from wr[0..1] and 8-15 from wr[2..3]: lane c ← 4c + k */
                __m512i iw = _mm512_add_epi32(_mm512_slli_epi32(_mm512_and_si512(lane, _mm512_set1_epi32(7)), 2),
                                              _mm512_set1_epi32(k));
                __m512 lo = _mm512_permutex2var_ps(wr[0], iw, wr[1]), hi = _mm512_permutex2var_ps(wr[2], iw, wr[3]);
                wv[k] = _mm512_shuffle_f32x4(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
            }
            for (int k = 0; k < 3; k++) {
                /* tap k of channel c at 3c + k: channels 0-5 from sr[0..1], 6-15 from sr[1..2] */
                __m512i is = _mm512_add_epi32(_mm512_mullo_epi32(lane, _mm512_set1_epi32(3)), _mm512_set1_epi32(k));
                __m512 a = _mm512_permutex2var_ps(sr[0], is, sr[1]);
                __m512 b2 = _mm512_permutex2var_ps(sr[1], _mm512_sub_epi32(is, _mm512_set1_epi32(16)), sr[2]);
                h[k] = _mm512_mask_blend_ps((__mmask16)0xffc0, a, b2);
            }
            h[3] = _mm512_setzero_ps();
        } else {
            float wt[CONV_KMAX * 16] __attribute__((aligned(64)));
            for (int i = 0; i < nc * K; i += 16) _mm512_storeu_ps(wt + i, load_vec(w, (int64_t)c0 * K + i, tail_mask(nc * K - i)));
            const __m512i wi = _mm512_mullo_epi32(lane, _mm512_set1_epi32(K));
            const __m512i si = _mm512_mullo_epi32(lane, _mm512_set1_epi32(K - 1));
            for (int k = 0; k < K; k++) {
                wv[k] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_add_epi32(wi, _mm512_set1_epi32(k)), wt, 4);
                h[k] = k < K - 1 ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, _mm512_add_epi32(si, _mm512_set1_epi32(k)),
                                                            st0, 4)
                                 : _mm512_setzero_ps();
            }
        }
        __m512 bv = bias && bias->data ? load_vec(bias, c0, m) : _mm512_setzero_ps();
        for (int t = 0; t < T; t++) {
            __m512 xt = _mm512_maskz_loadu_ps(m, x + (int64_t)t * ldx + c0);
            __m512 acc = bv;
            for (int k = 0; k < K - 1; k++) acc = _mm512_add_ps(acc, _mm512_mul_ps(wv[k], h[k]));
            acc = _mm512_add_ps(acc, _mm512_mul_ps(wv[K - 1], xt));
            _mm512_mask_storeu_ps(y + (int64_t)t * ldy + c0, m, acc);
            for (int k = 0; k + 1 < K - 1; k++) h[k] = h[k + 1];
            if (K > 1) h[K - 2] = xt;
        }
        if (K == 4) {
            /* back to [16][3]: output lane i of vector q is tap (16q + i) % 3 of channel (16q + i) / 3 */
            for (int q = 0; q < 3; q++) {
                __m512i i = _mm512_add_epi32(lane, _mm512_set1_epi32(16 * q));
                __m512i c = _mm512_srli_epi32(_mm512_mullo_epi32(i, _mm512_set1_epi32(0xAAAB)), 17); /* i / 3 */
                __m512i j = _mm512_sub_epi32(i, _mm512_mullo_epi32(c, _mm512_set1_epi32(3)));
                __mmask16 j2 = _mm512_cmpeq_epi32_mask(j, _mm512_set1_epi32(2));
                __m512 ab = _mm512_permutex2var_ps(h[0], _mm512_add_epi32(_mm512_slli_epi32(j, 4), c), h[1]);
                __m512i ib = _mm512_mask_add_epi32(lane, j2, c, _mm512_set1_epi32(16));
                _mm512_mask_storeu_ps(st0 + 16 * q, tail_mask(CB_MAX(nc * 3 - 16 * q, 0)), _mm512_permutex2var_ps(ab, ib, h[2]));
            }
        } else {
            const __m512i si = _mm512_mullo_epi32(lane, _mm512_set1_epi32(K - 1));
            for (int k = 0; k < K - 1; k++)
                _mm512_mask_i32scatter_ps(st0, m, _mm512_add_epi32(si, _mm512_set1_epi32(k)), h[k], 4);
        }
    }
}
