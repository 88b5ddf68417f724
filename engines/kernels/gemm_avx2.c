/* AVX2 GEMM / GEMV over f32, f16 and bf16 weights, for CPUs without AVX-512 (contracts in kernels.h).
 *
 * Every output is one dot product in the AVX-512 skinny kernels' lane model (gemm_avx512.c): 16 fp32 lanes,
 * lane i accumulating columns k + i of each 16 (held here as two 8-lane halves), reduced by halves 8, 4, 2, 1.
 * Exact bf16 splits each 32 columns into even and odd lanes as the AVX-512 loop does (two accumulators
 * when the AVX-512 block holds one activation row, one otherwise). So batch-1 decode and the AVX-512
 * skinny range (M <= 48) give the same bits on both paths; kernels_gemm::avx2_* pins them.
 *
 * Work split: blocks of weight rows, a contiguous range of them per thread, each output computed by one
 * thread. Above the AVX-512 skinny range (M > 48, prefill) a packed-panel kernel takes over: 6 activation rows ×
 * 16 weight rows per microkernel, one FMA chain per output (tolerance-equal to the twin, not the same bits). */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "kernels_avx2.h"
#include "thread_scratch.h"

#define MB 4          /* activation rows sharing one pass over a weight row (the AVX-512 block height) */
#define PF_DIST 4096  /* bytes ahead to prefetch a weight row streamed from DRAM */
#define MULTI_MAX 4

bool cb_matmul_avx2_supports(const cb_weight *W) {
    return W->dtype == CB_F32 || W->dtype == CB_BF16 || W->dtype == CB_F16;
}

/* 8 consecutive weights widened to fp32 (exactly) */
static inline __attribute__((always_inline)) __m256 ld8(cb_dtype dt, const void *row, int64_t k) {
    if (dt == CB_F32) return _mm256_loadu_ps((const float *)row + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
    if (dt == CB_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* fp32 -> bf16 -> fp32, round to nearest even (NaN stays a quiet NaN), as cb_f32_to_bf16 */
static inline __m256 round_bf16(__m256 v) {
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, q, nan);
    return _mm256_castsi256_ps(_mm256_and_si256(r, _mm256_set1_epi32((int)0xffff0000u)));
}

/* Σ of 16 lanes (lo = lanes 0..7, hi = 8..15) by halves: the order of _mm512_reduce_add_ps. */
static inline float reduce16(__m256 lo, __m256 hi) {
    __m256 a = _mm256_add_ps(lo, hi);
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
}

/* mb (<= MB) activation rows against one weight row, 16 lanes per 16 columns. xs rows are zero-padded to a
 * multiple of 32; the row's last partial 16 columns are read from a zero-padded copy (the AVX-512 loop's
 * masked lanes). rnd: fast mode, weights rounded to bf16 (the activations already are). */
static inline __attribute__((always_inline)) void dot16(cb_dtype dt, bool rnd, int mb, int64_t K,
                                                        const float *const *xs, const void *w, float *out) {
    const size_t es = dt == CB_F32 ? 4 : 2;
    __m256 lo[MB], hi[MB];
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++) lo[i] = hi[i] = _mm256_setzero_ps();
    const int64_t kf = K & ~(int64_t)15;
    for (int64_t k = 0; k <= kf; k += 16) {
        const void *wp = w;
        int64_t kw = k;
        _Alignas(32) unsigned char tail[64];
        if (k == kf) { /* the partial last 16 columns, if any */
            if (k == K) break;
            memset(tail, 0, sizeof tail);
            memcpy(tail, (const char *)w + (size_t)k * es, (size_t)(K - k) * es);
            wp = tail, kw = 0;
        } else {
            _mm_prefetch((const char *)w + (size_t)k * es + PF_DIST, _MM_HINT_T0);
        }
        __m256 w0 = ld8(dt, wp, kw), w1 = ld8(dt, wp, kw + 8);
        if (rnd && dt != CB_BF16) w0 = round_bf16(w0), w1 = round_bf16(w1);
#pragma GCC unroll 4
        for (int i = 0; i < mb; i++) {
            lo[i] = _mm256_fmadd_ps(_mm256_loadu_ps(xs[i] + k), w0, lo[i]);
            hi[i] = _mm256_fmadd_ps(_mm256_loadu_ps(xs[i] + k + 8), w1, hi[i]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++) out[i] = reduce16(lo[i], hi[i]);
}

/* Exact bf16: each 32 columns as 16 even and 16 odd lanes (no cross-lane widening); xs rows are split to
 * match (per 32 columns: the 16 even ones, then the 16 odd ones). two: even and odd in separate
 * accumulators, added lane-wise at the end (the AVX-512 block of one row); else one accumulator, even then
 * odd FMA per lane. */
static inline __attribute__((always_inline)) void dot_bf16eo(bool two, int mb, int64_t K, const float *const *xs,
                                                             const uint16_t *w, float *out) {
    const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
    __m256 lo[MB], hi[MB], lo2[MB], hi2[MB];
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++) lo[i] = hi[i] = lo2[i] = hi2[i] = _mm256_setzero_ps();
    const int64_t kf = K & ~(int64_t)31;
    for (int64_t k = 0; k <= kf; k += 32) {
        const uint16_t *wp = w + k;
        _Alignas(32) uint16_t tail[32];
        if (k == kf) {
            if (k == K) break;
            memset(tail, 0, sizeof tail);
            memcpy(tail, w + k, (size_t)(K - k) * 2);
            wp = tail;
        } else {
            _mm_prefetch((const char *)wp + PF_DIST, _MM_HINT_T0);
        }
        __m256i v0 = _mm256_loadu_si256((const __m256i *)wp), v1 = _mm256_loadu_si256((const __m256i *)(wp + 16));
        __m256 we0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), wo0 = _mm256_castsi256_ps(_mm256_and_si256(v0, hi_mask));
        __m256 we1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), wo1 = _mm256_castsi256_ps(_mm256_and_si256(v1, hi_mask));
#pragma GCC unroll 4
        for (int i = 0; i < mb; i++) {
            const float *x = xs[i] + k;
            lo[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x), we0, lo[i]);
            hi[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), we1, hi[i]);
            if (two) {
                lo2[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 16), wo0, lo2[i]);
                hi2[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 24), wo1, hi2[i]);
            } else {
                lo[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 16), wo0, lo[i]);
                hi[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 24), wo1, hi[i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mb; i++)
        out[i] = two ? reduce16(_mm256_add_ps(lo[i], lo2[i]), _mm256_add_ps(hi[i], hi2[i])) : reduce16(lo[i], hi[i]);
}

/* The prepared activations of one call: rows zero-padded to ld (a multiple of 32) columns, rounded to bf16
 * (fast mode) or split into even / odd columns (exact mode over bf16 weights). */
typedef struct {
    const float *x;
    int64_t ld;
    int M;
    bool rnd, split;
} xprep;

static _Thread_local cb_tscratch t_xprep;

static bool prepare_x(int M, const float *X, int64_t ldx, int64_t K, bool rnd, bool split, xprep *p) {
    const int64_t ld = (K + 31) & ~(int64_t)31;
    float *d = cb_tscratch_get(&t_xprep, (size_t)M * (size_t)ld * sizeof(float));
    if (!d) return false;
    for (int m = 0; m < M; m++) {
        const float *x = X + (int64_t)m * ldx;
        float *o = d + (int64_t)m * ld;
        for (int64_t k = 0; k < ld; k++) {
            float v = k < K ? x[k] : 0.0f;
            if (rnd) v = cb_bf16_to_f32(cb_f32_to_bf16(v));
            if (!split) o[k] = v;
            else o[(k & ~(int64_t)31) + ((k & 1) ? 16 : 0) + ((k & 31) >> 1)] = v;
        }
    }
    *p = (xprep){ d, ld, M, rnd, split };
    return true;
}

/* Activation rows [m0, m1) against weight row n of W into Y[m][n]: groups of MB rows (as the AVX-512
 * skinny blocks, whose size decides the bf16 accumulators). */
static void rows_vs_weight_row(const xprep *xp, int m0, int m1, const cb_weight *W, int64_t n, float *Y,
                               int64_t ldy, bool accumulate) {
    const int64_t K = W->cols;
    const void *w = (const char *)W->data + (size_t)n * (size_t)K * cb_dtype_size(W->dtype);
    for (int g = m0; g < m1; g += MB) {
        const int mb = m1 - g < MB ? m1 - g : MB;
        const float *xs[MB];
        for (int i = 0; i < MB; i++) xs[i] = xp->x + (int64_t)(g + (i < mb ? i : 0)) * xp->ld;
        float out[MB];
#define MBS(CALL) (mb == 1 ? CALL(1) : mb == 2 ? CALL(2) : mb == 3 ? CALL(3) : CALL(4))
        if (xp->split) {
#define EO(b) dot_bf16eo(b == 1, b, K, xs, (const uint16_t *)w, out)
            MBS(EO);
#undef EO
        } else if (W->dtype == CB_F32) {
#define F(b) dot16(CB_F32, xp->rnd, b, K, xs, w, out)
            MBS(F);
#undef F
        } else if (W->dtype == CB_F16) {
#define H(b) dot16(CB_F16, xp->rnd, b, K, xs, w, out)
            MBS(H);
#undef H
        } else {
#define B(b) dot16(CB_BF16, xp->rnd, b, K, xs, w, out)
            MBS(B);
#undef B
        }
#undef MBS
        for (int i = 0; i < mb; i++) {
            float *y = Y + (int64_t)(g + i) * ldy + n;
            *y = accumulate ? *y + out[i] : out[i];
        }
    }
}

/* Weight-row blocks of all n weights as one index space; thread t of T takes a contiguous range. Within
 * a block, prefill-sized M goes in chunks of activation rows that stay in L2 beside the block's rows. */
typedef struct {
    const xprep *xp;
    int n;
    const cb_weight *const *W;
    float *const *Y;
    const int64_t *ldy;
    bool accumulate;
    int64_t nb;                   /* weight rows per block */
    int mc;                       /* activation rows per chunk */
    int64_t first[MULTI_MAX + 1]; /* first block of each weight */
} gemm_job;

static void job_slice(const gemm_job *j, int t, int T) {
    const int64_t total = j->first[j->n], lo = total * t / T, hi = total * (t + 1) / T;
    int i = 0;
    for (int64_t b = lo; b < hi; b++) {
        while (b >= j->first[i + 1]) i++;
        const cb_weight *W = j->W[i];
        const int64_t r0 = (b - j->first[i]) * j->nb, r1 = CB_MIN(r0 + j->nb, W->rows);
        for (int m0 = 0; m0 < j->xp->M; m0 += j->mc) {
            const int m1 = CB_MIN(m0 + j->mc, j->xp->M);
            for (int64_t r = r0; r < r1; r++) rows_vs_weight_row(j->xp, m0, m1, W, r, j->Y[i], j->ldy[i], j->accumulate);
        }
    }
}

static void run(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                const int64_t *ldy, bool accumulate, bool fast) {
    const int64_t K = W[0]->cols;
    xprep xp;
    if (!prepare_x(M, X, ldx, K, fast, !fast && W[0]->dtype == CB_BF16, &xp)) {
        for (int i = 0; i < n; i++)
            (fast ? cb_matmul_bf16_ref : cb_matmul_ref)(M, X, ldx, W[i], Y[i], ldy[i], accumulate);
        return;
    }
    gemm_job j = { .xp = &xp, .n = n, .W = W, .Y = Y, .ldy = ldy, .accumulate = accumulate };
    /* decode: blocks of 4 rows (fine split); prefill: 16 rows (a panel of up to 16 · 28 KiB) against a
     * chunk of activations of about 256 KiB */
    j.nb = M <= MB ? 4 : 16;
    const int64_t mc = (65536 / xp.ld) & ~(int64_t)(MB - 1);
    j.mc = (int)CB_MAX((int64_t)MB, CB_MIN((int64_t)64, mc));
    double work = 0;
    for (int i = 0; i < n; i++) {
        j.first[i + 1] = j.first[i] + (W[i]->rows + j.nb - 1) / j.nb;
        work += (double)W[i]->rows * (double)K * (double)M;
    }
    if (work > 1e5 && !cb_omp_nested()) {
#pragma omp parallel
        job_slice(&j, omp_get_thread_num(), omp_get_num_threads());
    } else {
        job_slice(&j, 0, 1);
    }
}


/* ================= prefill: packed panels, broadcast microkernel ================= */

#define SKINNY_MAX 48 /* as the AVX-512 path: above, the packed kernel (its own order: one FMA chain per output) */
#define MR 6
#define NR 16
#define KC 256

static _Thread_local cb_tscratch t_panel;

/* NR weight rows [n0, n0 + nr) × columns [k0, k0 + kc) as fp32, k-major [kc][NR], missing rows zero. */
static void pack_panel(const cb_weight *W, int64_t n0, int nr, int64_t k0, int kc, bool rnd, float *d) {
    const int64_t K = W->cols;
    for (int j = 0; j < NR; j++) {
        if (j >= nr) {
            for (int k = 0; k < kc; k++) d[k * NR + j] = 0.0f;
            continue;
        }
        const int64_t base = (n0 + j) * K + k0;
        for (int k = 0; k < kc; k++) {
            float v = cb_load_f32(W->data, W->dtype, (size_t)(base + k));
            d[k * NR + j] = rnd ? cb_bf16_to_f32(cb_f32_to_bf16(v)) : v;
        }
    }
}

/* C[mr][NR] (+)= X[mr][kc] · panel: 2·mr accumulators, one broadcast of x per row and k. */
static inline __attribute__((always_inline)) void ukr(int mr, int kc, const float *x, int64_t ldx, const float *p,
                                                      float *y, int64_t ldy, int nr, bool load_c) {
    __m256 c0[MR], c1[MR];
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        c0[i] = load_c ? _mm256_maskload_ps(y + i * ldy, m0) : _mm256_setzero_ps();
        c1[i] = load_c ? _mm256_maskload_ps(y + i * ldy + 8, m1) : _mm256_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        const __m256 w0 = _mm256_load_ps(p + k * NR), w1 = _mm256_load_ps(p + k * NR + 8);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            const __m256 xb = _mm256_broadcast_ss(x + i * ldx + k);
            c0[i] = _mm256_fmadd_ps(xb, w0, c0[i]);
            c1[i] = _mm256_fmadd_ps(xb, w1, c1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        _mm256_maskstore_ps(y + i * ldy, m0, c0[i]);
        _mm256_maskstore_ps(y + i * ldy + 8, m1, c1[i]);
    }
}

/* One panel of NR weight rows for all M activation rows: KC columns at a time, Y carried between them. */
static void panel_rows(const xprep *xp, const cb_weight *W, int64_t n0, float *Y, int64_t ldy, bool accumulate,
                       float *pk) {
    const int64_t K = W->cols;
    const int nr = (int)CB_MIN((int64_t)NR, W->rows - n0);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int kc = (int)CB_MIN((int64_t)KC, K - k0);
        pack_panel(W, n0, nr, k0, kc, xp->rnd, pk);
        const bool load_c = k0 > 0 || accumulate;
        for (int m0 = 0; m0 < xp->M; m0 += MR) {
            const int mr = xp->M - m0 < MR ? xp->M - m0 : MR;
            const float *x = xp->x + (int64_t)m0 * xp->ld + k0;
            float *y = Y + (int64_t)m0 * ldy + n0;
            switch (mr) {
            case 6: ukr(6, kc, x, xp->ld, pk, y, ldy, nr, load_c); break;
            case 5: ukr(5, kc, x, xp->ld, pk, y, ldy, nr, load_c); break;
            case 4: ukr(4, kc, x, xp->ld, pk, y, ldy, nr, load_c); break;
            case 3: ukr(3, kc, x, xp->ld, pk, y, ldy, nr, load_c); break;
            case 2: ukr(2, kc, x, xp->ld, pk, y, ldy, nr, load_c); break;
            default: ukr(1, kc, x, xp->ld, pk, y, ldy, nr, load_c); break;
            }
        }
    }
}

/* false when a scratch buffer cannot be had (the caller takes the portable twin) */
static bool gemm_packed(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                        bool accumulate, bool fast) {
    xprep xp;
    if (!prepare_x(M, X, ldx, W->cols, fast, false, &xp)) return false;
    const int64_t panels = (W->rows + NR - 1) / NR;
    bool ok = true;
#pragma omp parallel if (!cb_omp_nested()) reduction(&& : ok)
    {
        float *pk = cb_tscratch_get(&t_panel, (size_t)KC * NR * sizeof(float));
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t lo = panels * t / T, hi = panels * (t + 1) / T;
        if (!pk) ok = false;
        else
            for (int64_t b = lo; b < hi; b++) panel_rows(&xp, W, b * NR, Y, ldy, accumulate, pk);
    }
    return ok;
}

static bool trivial(int M, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    if (M <= 0 || W->rows <= 0) return true;
    if (W->cols > 0) return false;
    if (!accumulate)
        for (int m = 0; m < M; m++) memset(Y + (int64_t)m * ldy, 0, (size_t)W->rows * sizeof(float));
    return true;
}

static void matmul(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate,
                   bool fast) {
    if (trivial(M, W, Y, ldy, accumulate)) return;
    if (M <= SKINNY_MAX) run(M, X, ldx, 1, &W, &Y, &ldy, accumulate, fast);
    else if (!gemm_packed(M, X, ldx, W, Y, ldy, accumulate, fast))
        (fast ? cb_matmul_bf16_ref : cb_matmul_ref)(M, X, ldx, W, Y, ldy, accumulate);
}

void cb_matmul_avx2(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool accumulate) {
    matmul(M, X, ldx, W, Y, ldy, accumulate, false);
}

void cb_matmul_bf16_avx2(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                         bool accumulate) {
    matmul(M, X, ldx, W, Y, ldy, accumulate, true);
}

/* One parallel region for weights of the same K and dtype class; anything else, one call each. */
static bool multi_ok(int M, int n, const cb_weight *const *W, bool fast) {
    if (M > SKINNY_MAX || n < 1 || n > MULTI_MAX) return false;
    for (int i = 0; i < n; i++) {
        if (!cb_matmul_avx2_supports(W[i]) || W[i]->rows <= 0 || W[i]->cols <= 0 || W[i]->cols != W[0]->cols)
            return false;
        /* exact bf16 needs split activations, the other dtypes plain ones */
        if (!fast && (W[i]->dtype == CB_BF16) != (W[0]->dtype == CB_BF16)) return false;
    }
    return true;
}

void cb_matmul_multi_avx2(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                          const int64_t *ldy) {
    if (M <= 0) return;
    if (multi_ok(M, n, W, false)) run(M, X, ldx, n, W, Y, ldy, false, false);
    else
        for (int i = 0; i < n; i++) cb_matmul_avx2(M, X, ldx, W[i], Y[i], ldy[i], false);
}

void cb_matmul_bf16_multi_avx2(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W,
                               float *const *Y, const int64_t *ldy) {
    if (M <= 0) return;
    if (multi_ok(M, n, W, true)) run(M, X, ldx, n, W, Y, ldy, false, true);
    else
        for (int i = 0; i < n; i++) cb_matmul_bf16_avx2(M, X, ldx, W[i], Y[i], ldy[i], false);
}
