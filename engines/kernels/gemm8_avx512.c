/* AVX-512 GEMMs for 8-bit weights (see gemm8.h for the semantics).
 * Decode (M <= CB_Q8_SKINNY_MAX): weight-streaming dot products, each weight row read from memory once
 * (it stays in L1 for the other activation rows), codes decoded to fp32 in registers: fp8 by placing the
 * code's bits in an fp32 against activations scaled by 2^64 (fp8_bits; fp8_bits_fix for blocks with E4M3
 * subnormals), int8 through sign extension — or, on VNNI, as three vpdpbusd byte planes of 24-bit
 * fixed-point activations (int8_vnni, exact). Prefill: panels of W decoded once to fp32 (exact) and
 * as exact bf16 panels handed to the GEMMs of kernels.h (cb_matmul exact, cb_matmul_bf16 fast), scale
 * applied in the epilogue.
 * int8 fast path: |xq| (u8) × ±w (s8) with vpdpbusd for decode, (xq + 128) (u8) × w (s8) minus 128·Σw in
 * 4 x 4 register blocks for M >= 4 — exact int32 arithmetic either way.
 * Parallel over output rows only: results do not depend on the thread count. */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>

#include "fp8_avx512.h"
#include "gemm8.h"
#include "kernels_avx512.h"
#include "thread_scratch.h"

static inline __m512 dec16(const uint8_t *p, __mmask16 mk, bool fp8) {
    __m128i b = _mm_maskz_loadu_epi8(mk, p);
    if (fp8) {
        /* byte s.eeee.mmm → f16 s.0eeee.mmm0000000: shift to the top, arithmetic shift right by one
         * (copies s into bit 14), clear bit 14 */
        __m256i w = _mm256_slli_epi16(_mm256_cvtepu8_epi16(b), 8);
        w = _mm256_and_si256(_mm256_srai_epi16(w, 1), _mm256_set1_epi16((short)0xbfff));
        return _mm512_cvtph_ps(w);
    }
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
}

/* fp8 for the weight-streaming loop, in 3 instructions per 16 codes: sign-extend each byte to 32 bits,
 * shift left by 20 and keep the sign and the 7 code bits: s.eeee.mmm lands as sign, exponent field
 * 0000eeee and mantissa mmm0..., an fp32 worth value · 2^-120 exactly. The activations are scaled by 2^64
 * first, so the products are x · value · 2^-56, far from fp32's subnormal range; the 2^56 goes into the
 * row scale. Every scaling is by a power of two: results are bit-identical to decoding through f16 (dec16).
 * An E4M3 subnormal (exponent field 0, mantissa != 0) would land as an fp32 *subnormal*, and on Intel cores
 * every FMA with a subnormal input takes a microcode assist (a GEMV 8.8 → 2.9 GB/s at 1 code in 256,
 * 0.3 GB/s when all are: docs/quantization.md, "Subnormal codes"). So each 64 codes are tested first
 * (two byte tests); a block that holds one goes through fp8_bits_fix, which never makes a subnormal. */
#define FP8_X_SCALE 0x1p64f
#define FP8_UNIT 0x1p56f
static inline __m512 fp8_bits(const uint8_t *p, __mmask16 mk) {
    __m512i v = _mm512_slli_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, p)), 20);
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0x87F00000u)));
}
/* fp8_bits_fix: value · 2^-104 (cb_fp8_bits_fix, fp8_avx512.h); against activations scaled by
 * 2^64 · 2^-16 the products equal those of fp8_bits. */
#define FP8_FIX_X 0x1p-16f
static inline __m512 fp8_bits_fix(const uint8_t *p, __mmask16 mk) {
    return cb_fp8_bits_fix(_mm512_slli_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, p)), 20));
}
static inline __m512 i8_stream(const uint8_t *p, __mmask16 mk) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, p)));
}

/* Decode reads each weight row once from memory: requested PF_DIST bytes ahead of use (as the bf16
 * row-order GEMV does, gemm_avx512.c), which the hardware prefetcher alone does not keep up with here. */
#ifndef PF_DIST
#define PF_DIST 4096
#endif

/* Several weight rows per pass (R <= 4) for the int8 decode on VNNI (dot_abs3): per row it paid
 * 3 reductions and the epilogue, a large share of a K = 256 or 512 row; R rows share the activation loads,
 * the sign masks and one reduction tree. sum4 finishes 4 rows in exactly _mm512_reduce_add_ps's order (gcc's
 * avx512fintrin.h: upper 256 + lower 256 bits, upper 128 + lower 128, lanes {2,3} + {0,1}, lane 1 + lane 0),
 * so fp32 rows would keep their bits too; the fp32 loop (dot_q8) stays at one row per pass, where 4 rows did
 * not pay on Zen 4 (docs/performance.md, "8-bit GEMV, several rows per pass"). */
static inline __attribute__((always_inline)) __m512 add_lanes(__m512 x, __m512 y, bool i32) {
    return i32 ? _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(x), _mm512_castps_si512(y)))
               : _mm512_add_ps(x, y);
}
/* The sums of a, b, c, d (fp32 lanes, or int32 lanes when i32) in lanes 0..3. */
static inline __attribute__((always_inline)) __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d, bool i32) {
    const __m512 x = add_lanes(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)),
                               _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)), i32); /* a's 8 | b's 8 */
    const __m512 y = add_lanes(_mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 2, 3, 2)),
                               _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(1, 0, 1, 0)), i32);
    __m512 z = add_lanes(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)),
                         _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)), i32); /* 4 lanes per row */
    z = add_lanes(z, _mm512_permute_ps(z, _MM_SHUFFLE(1, 0, 3, 2)), i32);
    z = add_lanes(z, _mm512_permute_ps(z, _MM_SHUFFLE(2, 3, 0, 1)), i32);
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(idx, z));
}

/* The software prefetch for R rows w.. (R·K contiguous bytes) read k codes per row at a time, `lines` cache
 * lines per row per step: R·lines lines in address order, R·k past a point ahead of the group's start, as
 * one row's stream would be. That point is PF_DIST ahead, or the next group when the group is longer (so
 * no line of the group itself is requested late). PF_DIST ahead in each row instead (R interleaved
 * streams) read DRAM at ~10 against ~16 GB/s: docs/performance.md, "8-bit GEMV, several rows per pass". */
static inline __attribute__((always_inline)) void rows_prefetch(const void *w, int64_t K, int64_t k, int R,
                                                                int lines) {
    const int64_t ahead = R == 1 ? PF_DIST : CB_MAX((int64_t)PF_DIST, R * K);
    for (int i = 0; i < R * lines; i++) _mm_prefetch((const char *)w + ahead + R * k + 64 * i, _MM_HINT_T0);
}

static inline __attribute__((always_inline)) float dot_q8(const float *x, const uint8_t *w, int64_t K, bool fp8) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const __m512 fx = _mm512_set1_ps(FP8_FIX_X);
    int64_t k = 0;
    for (; k + 64 <= K; k += 64) {
        _mm_prefetch((const char *)w + k + PF_DIST, _MM_HINT_T0);
        if (!fp8) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), i8_stream(w + k, 0xffff), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), i8_stream(w + k + 16, 0xffff), a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 32), i8_stream(w + k + 32, 0xffff), a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 48), i8_stream(w + k + 48, 0xffff), a3);
        } else if (__builtin_expect(cb_fp8_sub64(_mm512_loadu_si512(w + k)) == 0, 1)) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), fp8_bits(w + k, 0xffff), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), fp8_bits(w + k + 16, 0xffff), a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 32), fp8_bits(w + k + 32, 0xffff), a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 48), fp8_bits(w + k + 48, 0xffff), a3);
        } else {
            a0 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k), fx), fp8_bits_fix(w + k, 0xffff), a0);
            a1 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k + 16), fx), fp8_bits_fix(w + k + 16, 0xffff), a1);
            a2 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k + 32), fx), fp8_bits_fix(w + k + 32, 0xffff), a2);
            a3 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k + 48), fx), fp8_bits_fix(w + k + 48, 0xffff), a3);
        }
    }
    for (; k < K; k += 16) { /* the tail: fp8 always through the subnormal-safe decode */
        __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        const __m512 xv = _mm512_maskz_loadu_ps(mk, x + k);
        a0 = fp8 ? _mm512_fmadd_ps(_mm512_mul_ps(xv, fx), fp8_bits_fix(w + k, mk), a0)
                 : _mm512_fmadd_ps(xv, i8_stream(w + k, mk), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* Rows [n0, n1) of W for all M activation rows (X already scaled for fp8). */
static void skinny_range(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool acc,
                         int64_t n0, int64_t n1) {
    const bool fp8 = W->dtype == CB_F8_E4M3;
    const float unit = fp8 ? FP8_UNIT : 1.0f;
    const int64_t K = W->cols;
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *w = (const uint8_t *)W->data + (size_t)n * (size_t)K;
        const float s = W->scale[n] * unit;
        for (int m = 0; m < M; m++) {
            float v = s * (fp8 ? dot_q8(X + m * ldx, w, K, true) : dot_q8(X + m * ldx, w, K, false));
            Y[m * ldy + n] = acc ? Y[m * ldy + n] + v : v;
        }
    }
}

/* The prepared activations, kept per thread (a decode calls this hundreds of times per token). */
static _Thread_local cb_tscratch t_xs;

/* M rows of X as the fp8 weight stream wants them, into the thread's t_xs: times 2^64 (see fp8_bits), after rounding to
 * bf16 in fast mode (both steps exact but the rounding, so identical to rounding first into a copy). */
static const float *fp8_activations(int M, const float *X, int64_t ldx, int64_t K, bool round_bf16) {
    float *xs = cb_tscratch_get(&t_xs, (size_t)M * (size_t)K * sizeof(float) + 64);
    if (!xs) abort(); /* M x K floats (M <= CB_Q8_SKINNY_MAX): out of memory */
    for (int m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) {
            const float x = X[m * ldx + k];
            xs[m * K + k] = (round_bf16 ? cb_bf16_to_f32(cb_f32_to_bf16(x)) : x) * FP8_X_SCALE;
        }
    return xs;
}

/* Several 8-bit weights on the same activations (q/k/v, gate/up) in one parallel region, as the bf16 decode
 * does (gemm_avx512.c, gemm_skinny_multi): their rows form one index space split statically over the
 * threads, so each thread streams one contiguous range and the small projections cost no fork/join of their
 * own. Each output element is computed by one thread with the same operations whatever the split. */
#define Q8_MULTI_MAX 4
typedef struct {
    int M, n;
    const float *X, *Xs; /* the activations as given, and scaled for fp8 (NULL when no weight is fp8) */
    int64_t ldx, K;
    const cb_weight *const *W;
    float *const *Y;
    const int64_t *ldy;
    bool acc;
    int64_t first[Q8_MULTI_MAX + 1]; /* prefix sums of the rows */
} q8_multi;

static inline int prefetch_slice_start(int n, const cb_weight *const *W, const int64_t *first, int64_t lo,
                                       int64_t hi) {
    return cb_q8_prefetch_slice_start(n, W, first, lo, hi, PF_DIST);
}

static void multi_slice(const q8_multi *a, int t, int T) {
    const int64_t total = a->first[a->n], lo = total * t / T, hi = total * (t + 1) / T;
    int i = prefetch_slice_start(a->n, a->W, a->first, lo, hi);
    for (; i < a->n && a->first[i] < hi; i++) {
        const int64_t r0 = CB_MAX(lo, a->first[i]) - a->first[i], r1 = CB_MIN(hi, a->first[i + 1]) - a->first[i];
        if (r0 >= r1) continue;
        const bool fp8 = a->W[i]->dtype == CB_F8_E4M3;
        skinny_range(a->M, fp8 ? a->Xs : a->X, fp8 ? a->K : a->ldx, a->W[i], a->Y[i], a->ldy[i], a->acc, r0, r1);
    }
}

static void skinny_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                         const int64_t *ldy, bool acc, bool round_bf16) {
    q8_multi a = { .M = M, .n = n, .X = X, .ldx = ldx, .K = W[0]->cols, .W = W, .Y = Y, .ldy = ldy, .acc = acc };
    bool any_fp8 = false;
    for (int i = 0; i < n; i++) {
        a.first[i + 1] = a.first[i] + W[i]->rows;
        any_fp8 = any_fp8 || W[i]->dtype == CB_F8_E4M3;
    }
    if (any_fp8) a.Xs = fp8_activations(M, X, ldx, a.K, round_bf16);
    /* Inside a parallel region (the MoE decode's expert tiles) the caller's thread does the whole call: a
     * nested team of one costs about as much as a small tile's arithmetic (docs/performance.md, "Granite").
     * Below ~1e5 codes a fork/join costs more than the split saves (the bf16 decode's threshold). */
    const double work = (double)a.first[n] * (double)a.K * (double)CB_MIN(M, 4);
    if (cb_omp_nested() || work <= 1e5) {
        multi_slice(&a, 0, 1);
        return;
    }
#pragma omp parallel
    multi_slice(&a, omp_get_thread_num(), omp_get_num_threads());
}

static void skinny(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool acc,
                   bool round_bf16) {
    skinny_multi(M, X, ldx, 1, &W, &Y, &ldy, acc, round_bf16);
}

/* Rows [n0, n0+nb) of W as unscaled code values in bf16 into P [nb, K]. Exact: an fp8 code value (x 256
 * after dec16) has <= 4 significant bits and an int8 one <= 7, so the top half of the fp32 bits is the
 * bf16. The GEMMs then read 2 bytes per weight (half of an fp32 panel) and widen exactly. */
static void decode_panel_bf16(const cb_weight *W, int64_t n0, int64_t nb, uint16_t *P) {
    const bool fp8 = W->dtype == CB_F8_E4M3;
    const int64_t K = W->cols;
    const __m512 vu = _mm512_set1_ps(fp8 ? 256.0f : 1.0f);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < nb; r++) {
        const uint8_t *w = (const uint8_t *)W->data + (size_t)(n0 + r) * (size_t)K;
        uint16_t *p = P + r * K;
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
            __m512i v = _mm512_castps_si512(_mm512_mul_ps(dec16(w + k, mk, fp8), vu));
            _mm256_mask_storeu_epi16(p + k, mk, _mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
        }
    }
}

static void panels(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool acc,
                   bool bf16) {
    const int64_t N = W->rows, K = W->cols;
    int64_t nb = ((int64_t)(4u << 20) / (K * 2)) / 16 * 16; /* ~4 MiB of bf16 panel */
    nb = CB_MAX(16, CB_MIN(256, nb));
    uint16_t *P = malloc((size_t)nb * (size_t)K * sizeof(uint16_t));
    float *T = malloc((size_t)M * (size_t)nb * sizeof(float));
    if (!P || !T) abort(); /* a few MiB: out of memory */
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        const int64_t cnt = CB_MIN(nb, N - n0);
        decode_panel_bf16(W, n0, cnt, P);
        cb_weight pw = { .data = P, .dtype = CB_BF16, .rows = cnt, .cols = K, .scale = NULL };
        if (bf16) cb_matmul_bf16(M, X, ldx, &pw, T, nb, false);
        else cb_matmul(M, X, ldx, &pw, T, nb, false);
#pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++)
            for (int64_t j = 0; j < cnt; j++) {
                float v = W->scale[n0 + j] * T[m * nb + j];
                float *y = &Y[m * ldy + n0 + j];
                *y = acc ? *y + v : v;
            }
    }
    free(P);
    free(T);
}

static bool int8_fix24(int M, int n, const cb_weight *const *W);
static bool fix24_fits(int M, int64_t K);
static void int8_vnni(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                      const int64_t *ldy, bool acc, bool exact);

void cb_matmul_q8_avx512(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                         bool accumulate) {
    if (int8_fix24(M, 1, &W)) int8_vnni(M, X, ldx, 1, &W, &Y, &ldy, accumulate, true);
    else if (M <= CB_Q8_SKINNY_MAX) skinny(M, X, ldx, W, Y, ldy, accumulate, false);
    else panels(M, X, ldx, W, Y, ldy, accumulate, false);
}

/* One activation row quantised as cb_q8_quantize_activations does it, bit for bit: the max of |x| is exact
 * in any order (a NaN never wins: max_ps returns its second operand, the running max, when the first is
 * NaN, as fmaxf ignores NaN), x / sx is IEEE division either way, the rounding is to nearest even and the
 * clamp and NaN -> 0 are those of cb_f32_to_i8. */
void cb_q8_quantize_row_avx512(const float *x, int64_t K, int8_t *xq, float *sx) {
    __m512 am = _mm512_setzero_ps();
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        am = _mm512_max_ps(_mm512_and_ps(_mm512_maskz_loadu_ps(mk, x + k), sign), am);
    }
    const float amax = _mm512_reduce_max_ps(am);
    const float s = amax / 127.0f;
    *sx = s;
    const __m512 vs = _mm512_set1_ps(s), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        __m128i q = _mm_setzero_si128();
        if (amax > 0.0f) {
            __m512 r = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(mk, x + k), vs),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            const __mmask16 ok = _mm512_cmp_ps_mask(r, r, _CMP_ORD_Q); /* NaN -> 0 */
            r = _mm512_maskz_max_ps(ok, _mm512_min_ps(r, hi), lo);
            q = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(r));
        }
        _mm_mask_storeu_epi8(xq + k, mk, q);
    }
}

/* ---- int8 × int8 (VNNI) ----
 * vpdpbusd multiplies unsigned by signed bytes: feed |xq| as the unsigned operand and negate the weight
 * bytes where xq < 0 (weights are within ±127, so negation is exact). No correction pass over W. */
static inline __mmask64 tail64(int64_t left) { return left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1); }

static inline __m512i signed_w(const int8_t *w, __mmask64 neg, __mmask64 mk) {
    __m512i v = _mm512_maskz_loadu_epi8(mk, w);
    return _mm512_mask_sub_epi8(v, neg, _mm512_setzero_si512(), v);
}

/* Parts of dot_vnni_rows, inlined there only (CB_TARGET_VNNI is noinline, so that no VNNI code lands in a
 * caller that runs without the feature). */
#define VNNI_INLINE __attribute__((target("avx512vnni"), always_inline))

/* One row's 64 codes against the NP planes y0..: its weight bytes loaded and sign-flipped once. */
static inline VNNI_INLINE void abs3_step(__m512i *a0, __m512i *a1, __m512i *a2, __m512i y0, __m512i y1, __m512i y2,
                                         const int8_t *p, __mmask64 neg, __mmask64 mk, int NP) {
    const __m512i v = signed_w(p, neg, mk);
    *a0 = _mm512_dpbusd_epi32(*a0, y0, v);
    if (NP > 1) *a1 = _mm512_dpbusd_epi32(*a1, y1, v);
    if (NP > 2) *a2 = _mm512_dpbusd_epi32(*a2, y2, v);
}
/* The sums of row r's plane accumulators into d[r][0..NP) for R rows: sum4 per plane. */
static inline VNNI_INLINE void abs3_sums(int R, int NP, const __m512i t[4][3], int32_t d[4][3]) {
    if (R == 1) {
        for (int q = 0; q < NP; q++) d[0][q] = _mm512_reduce_add_epi32(t[0][q]);
        return;
    }
    for (int q = 0; q < NP; q++) {
        int32_t s[4];
        _mm_storeu_si128((__m128i *)s, _mm_castps_si128(sum4(_mm512_castsi512_ps(t[0][q]), _mm512_castsi512_ps(t[1][q]),
                                                             _mm512_castsi512_ps(t[2][q]), _mm512_castsi512_ps(t[3][q]),
                                                             true)));
        for (int r = 0; r < R; r++) d[r][q] = s[r];
    }
}

/* Dot products over NP byte planes of |x| (planes K bytes apart: low, middle, high byte): exact mode's three
 * of a 24-bit |x|, fast mode's one of |xq|; rows w .. w + (R-1)·K into d[r][plane]. One loop for both: a
 * separate fast-mode loop of 256 codes per row per step streamed DRAM at half this one's rate on Zen 4 (11
 * against 23-27 GB/s, `ctxbench-bench gemv8 --fast`; docs/performance.md, "8-bit GEMV in fast mode"). Each plane's sum is exact in int32 (|sum| <= 255 · 127 · K < 2^31
 * for K <= Q8_FIX_MAX_K), so the chains may be split any way: two per plane for a lone row (vpdpbusd
 * latency), one per plane when R rows give independent chains anyway. */
static inline VNNI_INLINE void dot_abs3(const uint8_t *xa, const __mmask64 *neg, const int8_t *w, int64_t K, int R,
                                        int NP, int32_t d[4][3]) {
    const __m512i z = _mm512_setzero_si512();
    __m512i a00 = z, a01 = z, a02 = z, a10 = z, a11 = z, a12 = z, a20 = z, a21 = z, a22 = z, a30 = z, a31 = z,
            a32 = z;
    __m512i b00 = z, b01 = z, b02 = z; /* the second chain of a lone row */
    const uint8_t *x1 = xa + (NP > 1) * K, *x2 = xa + (NP > 2) * 2 * K;
    const int8_t *w1 = w + (R > 1) * K, *w2 = w + (R > 2) * 2 * K, *w3 = w + (R > 3) * 3 * K;
    int64_t k = 0, c = 0;
    const __mmask64 all = ~(__mmask64)0;
    if (R == 1)
        for (; k + 128 <= K; k += 128, c += 2) {
            rows_prefetch(w, K, k, 1, 2); /* as dot_q8: the Intel cores need it */
            abs3_step(&a00, &a01, &a02, _mm512_loadu_si512(xa + k), _mm512_loadu_si512(x1 + k),
                      _mm512_loadu_si512(x2 + k), w + k, neg[c], all, NP);
            abs3_step(&b00, &b01, &b02, _mm512_loadu_si512(xa + k + 64), _mm512_loadu_si512(x1 + k + 64),
                      _mm512_loadu_si512(x2 + k + 64), w + k + 64, neg[c + 1], all, NP);
        }
    for (; k < K; k += 64, c++) {
        const __mmask64 mk = tail64(K - k);
        rows_prefetch(w, K, k, R, 1);
        const __m512i y0 = _mm512_maskz_loadu_epi8(mk, xa + k), y1 = _mm512_maskz_loadu_epi8(mk, x1 + k),
                      y2 = _mm512_maskz_loadu_epi8(mk, x2 + k);
        abs3_step(&a00, &a01, &a02, y0, y1, y2, w + k, neg[c], mk, NP);
        if (R > 1) abs3_step(&a10, &a11, &a12, y0, y1, y2, w1 + k, neg[c], mk, NP);
        if (R > 2) abs3_step(&a20, &a21, &a22, y0, y1, y2, w2 + k, neg[c], mk, NP);
        if (R > 3) abs3_step(&a30, &a31, &a32, y0, y1, y2, w3 + k, neg[c], mk, NP);
    }
    const __m512i t[4][3] = { { _mm512_add_epi32(a00, b00), _mm512_add_epi32(a01, b01), _mm512_add_epi32(a02, b02) },
                              { a10, a11, a12 }, { a20, a21, a22 }, { a30, a31, a32 } };
    abs3_sums(R, NP, t, d);
}

/* Fast mode (one plane: out) or exact mode (three: d) for R rows, R a constant in each case. */
static CB_TARGET_VNNI void dot_vnni_rows(bool exact, const uint8_t *xa, const __mmask64 *neg, const int8_t *w,
                                         int64_t K, int R, int32_t d[4][3]) {
    switch (R) {
    case 1: exact ? dot_abs3(xa, neg, w, K, 1, 3, d) : dot_abs3(xa, neg, w, K, 1, 1, d); break;
    case 2: exact ? dot_abs3(xa, neg, w, K, 2, 3, d) : dot_abs3(xa, neg, w, K, 2, 1, d); break;
    case 3: exact ? dot_abs3(xa, neg, w, K, 3, 3, d) : dot_abs3(xa, neg, w, K, 3, 1, d); break;
    default: exact ? dot_abs3(xa, neg, w, K, 4, 3, d) : dot_abs3(xa, neg, w, K, 4, 1, d); break;
    }
}

/* int8 decode (M <= CB_Q8_SKINNY_MAX) over n weights of the same K on the same activations, on VNNI: the
 * activations prepared once, the rows of all weights one index space split statically over the threads (as
 * skinny_multi). Fast mode: one plane, |xq| of the dynamically quantised row. Exact mode: three planes of
 * the row in 24-bit fixed point (docs/quantization.md, "int8 weights in exact mode"). */
typedef struct {
    int M, n;
    bool exact;           /* three planes per row and sxd, else one plane and sx */
    const uint8_t *xa;    /* |x| as bytes, M x planes x K */
    const __mmask64 *neg; /* sign bits of x, M x KC */
    const float *sx;      /* fast: the row's int8 scale */
    const double *sxd;    /* exact: the row's fixed-point unit */
    int64_t K, KC;
    const cb_weight *const *W;
    float *const *Y;
    const int64_t *ldy;
    bool acc;
    int64_t first[Q8_MULTI_MAX + 1];
} vnni_multi;

static void vnni_slice(const vnni_multi *a, int t, int T) {
    const int64_t total = a->first[a->n], lo = total * t / T, hi = total * (t + 1) / T, K = a->K;
    const int64_t NB = 8; /* a block of weight rows stays in L1/L2 while every activation row passes */
    const int planes = a->exact ? 3 : 1;
    for (int i = prefetch_slice_start(a->n, a->W, a->first, lo, hi); i < a->n; i++) {
        const int64_t r0 = CB_MAX(lo, a->first[i]) - a->first[i], r1 = CB_MIN(hi, a->first[i + 1]) - a->first[i];
        const cb_weight *W = a->W[i];
        for (int64_t n0 = r0; n0 < r1; n0 += NB) {
            const int64_t cnt = CB_MIN(NB, r1 - n0);
            for (int m = 0; m < a->M; m++)
                for (int64_t j0 = 0; j0 < cnt; j0 += 4) { /* 4 rows per pass, as skinny_range */
                    const int R = (int)CB_MIN(4, cnt - j0);
                    const int8_t *w = (const int8_t *)W->data + (size_t)(n0 + j0) * (size_t)K;
                    const uint8_t *xa = a->xa + (size_t)m * (size_t)planes * (size_t)K;
                    int32_t d[4][3];
                    dot_vnni_rows(a->exact, xa, a->neg + m * a->KC, w, K, R, d);
                    for (int r = 0; r < R; r++) {
                        const int64_t j = j0 + r;
                        float v;
                        if (a->exact) { /* the planes recombined exactly (< 2^47), one rounding to fp32 at the end */
                            const int64_t s = (int64_t)d[r][2] * 65536 + (int64_t)d[r][1] * 256 + d[r][0];
                            v = (float)((double)s * (a->sxd[m] * (double)W->scale[n0 + j]));
                        } else
                            v = (float)d[r][0] * (a->sx[m] * W->scale[n0 + j]);
                        float *y = &a->Y[i][m * a->ldy[i] + n0 + j];
                        *y = a->acc ? *y + v : v;
                    }
                }
        }
    }
}

/* Exact mode's activation row for dot_abs3: |x| · (2^24 − 1) / max|x| rounded to nearest (in double, so
 * the only rounding is this one) as three byte planes, the signs as masks, the unit max|x| / (2^24 − 1).
 * false when the row holds a NaN or an infinity (the caller then takes the fp32 loop, which propagates it). */
static bool fix24_row(const float *x, int64_t K, int64_t KC, uint8_t *xa, __mmask64 *neg, double *unit) {
    __m512 am = _mm512_setzero_ps();
    const __m512 abs = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __mmask16 bad = 0;
    for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        const __m512 v = _mm512_and_ps(_mm512_maskz_loadu_ps(mk, x + k), abs);
        bad |= _mm512_cmp_ps_mask(v, _mm512_set1_ps(__builtin_inff()), _CMP_NLT_UQ); /* NaN or ±inf */
        am = _mm512_max_ps(v, am);
    }
    if (bad) return false;
    const double amax = (double)_mm512_reduce_max_ps(am), top = 16777215.0;
    *unit = amax / top;
    const __m512d c = _mm512_set1_pd(amax > 0 ? top / amax : 0.0), cap = _mm512_set1_pd(top);
    for (int64_t k = 0; k < KC * 64; k += 16) {
        const __mmask16 mk = k >= K ? 0 : K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        const __m512 v = _mm512_and_ps(_mm512_maskz_loadu_ps(mk, x + k), abs);
        const __m512d lo = _mm512_min_pd(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), c), cap);
        const __m512d hi = _mm512_min_pd(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)), c), cap);
        const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtpd_epi32(lo)), _mm512_cvtpd_epi32(hi), 1);
        if (k < K) { /* the planes are K bytes long; positions past K are never read unmasked */
            _mm_mask_storeu_epi8(xa + k, mk, _mm512_cvtepi32_epi8(q));
            _mm_mask_storeu_epi8(xa + K + k, mk, _mm512_cvtepi32_epi8(_mm512_srli_epi32(q, 8)));
            _mm_mask_storeu_epi8(xa + 2 * K + k, mk, _mm512_cvtepi32_epi8(_mm512_srli_epi32(q, 16)));
        }
        if (k % 64 == 0) neg[k / 64] = 0;
        const __mmask64 s = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(mk, x + k), _mm512_setzero_ps(), _CMP_LT_OQ);
        neg[k / 64] |= (__mmask64)s << (k % 64);
    }
    return true;
}

/* Largest K whose per-plane int32 sums cannot overflow (255 · 127 · K < 2^31). */
#define Q8_FIX_MAX_K 65536

static void int8_vnni(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                      const int64_t *ldy, bool acc, bool exact) {
    const int64_t K = W[0]->cols, KC = (K + 63) / 64;
    const int planes = exact ? 3 : 1;
    uint8_t *xa = malloc((size_t)M * (size_t)planes * (size_t)K + 64);
    float *sx = malloc((size_t)M * sizeof(float) + 64);
    double *sxd = malloc((size_t)M * sizeof(double) + 64);
    __mmask64 *neg = malloc((size_t)M * (size_t)KC * sizeof(__mmask64) + 64);
    if (!xa || !sx || !sxd || !neg) abort();
    if (exact) {
        for (int m = 0; m < M; m++)
            if (!fix24_row(X + m * ldx, K, KC, xa + (size_t)m * 3 * (size_t)K, neg + m * KC, &sxd[m])) {
                free(xa); free(sx); free(sxd); free(neg);
                skinny_multi(M, X, ldx, n, W, Y, ldy, acc, false);
                return;
            }
    } else {
        int8_t *xq = (int8_t *)xa;
        cb_q8_quantize_activations(M, X, ldx, K, xq, sx);
        for (int m = 0; m < M; m++) /* |xq| in place, sign bits as masks */
            for (int64_t c = 0; c < KC; c++) {
                int8_t *p = xq + (size_t)m * K + c * 64;
                __mmask64 mk = tail64(K - c * 64);
                __m512i v = _mm512_maskz_loadu_epi8(mk, p);
                neg[m * KC + c] = _mm512_movepi8_mask(v) & mk;
                _mm512_mask_storeu_epi8(p, mk, _mm512_abs_epi8(v));
            }
    }
    vnni_multi a = { .M = M, .n = n, .exact = exact, .xa = xa, .neg = neg, .sx = sx, .sxd = sxd, .K = K, .KC = KC,
                     .W = W, .Y = Y, .ldy = ldy, .acc = acc };
    for (int i = 0; i < n; i++) a.first[i + 1] = a.first[i] + W[i]->rows;
    const double work = (double)a.first[n] * (double)K * (double)M;
    if (cb_omp_nested() || work <= 1e5) vnni_slice(&a, 0, 1);
    else {
#pragma omp parallel
        vnni_slice(&a, omp_get_thread_num(), omp_get_num_threads());
    }
    free(xa);
    free(sx);
    free(sxd);
    free(neg);
}

/* Exact int8 decode takes the fixed-point VNNI loop where the CPU has it (cb_kernels_vnni) and K fits. */
static bool fix24_fits(int M, int64_t K) { return M <= CB_Q8_SKINNY_MAX && K <= Q8_FIX_MAX_K && cb_kernels_vnni(); }
static bool int8_fix24(int M, int n, const cb_weight *const *W) {
    if (!fix24_fits(M, W[0]->cols)) return false;
    for (int i = 0; i < n; i++)
        if (W[i]->dtype != CB_I8 || W[i]->cols != W[0]->cols) return false;
    return true;
}

/* Prefill (M >= 4): xu = xq + 128 as the unsigned operand against the signed weights, corrected by
 * 128 * sum(w): sum(xu * w) - 128 * sum(w) = sum(xq * w) exactly in int32 (|sum| <= 255 * 127 * K), so the
 * result is bit-identical to the per-pair kernel while 4 x 4 rows share their loads (16 accumulators). */
static CB_TARGET_VNNI void int8_vnni_blocked(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool acc) {
    const int64_t N = W->rows, K = W->cols;
    uint8_t *xu = malloc((size_t)M * (size_t)K + 64);
    float *sx = malloc((size_t)M * sizeof(float) + 64);
    if (!xu || !sx) abort();
    cb_q8_quantize_activations(M, X, ldx, K, (int8_t *)xu, sx);
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++) xu[i] = (uint8_t)((int)(int8_t)xu[i] + 128);
    const int64_t NB = 16; /* weight rows per task: 16 x K bytes stay in L2 while all activation rows pass */
#pragma omp parallel for schedule(static)
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t cnt = CB_MIN(NB, N - n0);
        int32_t rs[16];
        const __m512i ones = _mm512_set1_epi8(1);
        for (int64_t j = 0; j < cnt; j++) { /* row sums of w through the same instruction */
            const int8_t *w = (const int8_t *)W->data + (size_t)(n0 + j) * (size_t)K;
            __m512i a = _mm512_setzero_si512();
            for (int64_t k = 0; k < K; k += 64) a = _mm512_dpbusd_epi32(a, ones, _mm512_maskz_loadu_epi8(tail64(K - k), w + k));
            rs[j] = _mm512_reduce_add_epi32(a);
        }
        for (int m0 = 0; m0 < M; m0 += 4) {
            const int mc = CB_MIN(4, M - m0);
            for (int64_t j0 = 0; j0 < cnt; j0 += 4) {
                const int64_t jc = CB_MIN(4, cnt - j0);
                const uint8_t *x0 = xu + (size_t)(m0 + 0) * (size_t)K, *x1 = xu + (size_t)(m0 + CB_MIN(1, mc - 1)) * (size_t)K,
                              *x2 = xu + (size_t)(m0 + CB_MIN(2, mc - 1)) * (size_t)K, *x3 = xu + (size_t)(m0 + CB_MIN(3, mc - 1)) * (size_t)K;
                const int8_t *wb = (const int8_t *)W->data + (size_t)(n0 + j0) * (size_t)K;
                const int8_t *w0 = wb, *w1 = wb + (size_t)CB_MIN(1, jc - 1) * (size_t)K,
                             *w2 = wb + (size_t)CB_MIN(2, jc - 1) * (size_t)K, *w3 = wb + (size_t)CB_MIN(3, jc - 1) * (size_t)K;
                /* 16 named accumulators: GCC keeps them in registers (an indexed array would be spilled) */
                __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00,
                        a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
                for (int64_t k = 0; k < K; k += 64) {
                    const __mmask64 mk = tail64(K - k);
                    const __m512i v0 = _mm512_maskz_loadu_epi8(mk, w0 + k), v1 = _mm512_maskz_loadu_epi8(mk, w1 + k),
                                  v2 = _mm512_maskz_loadu_epi8(mk, w2 + k), v3 = _mm512_maskz_loadu_epi8(mk, w3 + k);
                    __m512i u = _mm512_maskz_loadu_epi8(mk, x0 + k);
                    a00 = _mm512_dpbusd_epi32(a00, u, v0); a01 = _mm512_dpbusd_epi32(a01, u, v1);
                    a02 = _mm512_dpbusd_epi32(a02, u, v2); a03 = _mm512_dpbusd_epi32(a03, u, v3);
                    u = _mm512_maskz_loadu_epi8(mk, x1 + k);
                    a10 = _mm512_dpbusd_epi32(a10, u, v0); a11 = _mm512_dpbusd_epi32(a11, u, v1);
                    a12 = _mm512_dpbusd_epi32(a12, u, v2); a13 = _mm512_dpbusd_epi32(a13, u, v3);
                    u = _mm512_maskz_loadu_epi8(mk, x2 + k);
                    a20 = _mm512_dpbusd_epi32(a20, u, v0); a21 = _mm512_dpbusd_epi32(a21, u, v1);
                    a22 = _mm512_dpbusd_epi32(a22, u, v2); a23 = _mm512_dpbusd_epi32(a23, u, v3);
                    u = _mm512_maskz_loadu_epi8(mk, x3 + k);
                    a30 = _mm512_dpbusd_epi32(a30, u, v0); a31 = _mm512_dpbusd_epi32(a31, u, v1);
                    a32 = _mm512_dpbusd_epi32(a32, u, v2); a33 = _mm512_dpbusd_epi32(a33, u, v3);
                }
                const int32_t d[4][4] = {
                    { _mm512_reduce_add_epi32(a00), _mm512_reduce_add_epi32(a01), _mm512_reduce_add_epi32(a02), _mm512_reduce_add_epi32(a03) },
                    { _mm512_reduce_add_epi32(a10), _mm512_reduce_add_epi32(a11), _mm512_reduce_add_epi32(a12), _mm512_reduce_add_epi32(a13) },
                    { _mm512_reduce_add_epi32(a20), _mm512_reduce_add_epi32(a21), _mm512_reduce_add_epi32(a22), _mm512_reduce_add_epi32(a23) },
                    { _mm512_reduce_add_epi32(a30), _mm512_reduce_add_epi32(a31), _mm512_reduce_add_epi32(a32), _mm512_reduce_add_epi32(a33) } };
                for (int i = 0; i < mc; i++)
                    for (int j = 0; j < jc; j++) {
                        const int64_t n = n0 + j0 + j;
                        const int32_t dot = d[i][j] - 128 * rs[j0 + j];
                        float v = (float)dot * (sx[m0 + i] * W->scale[n]);
                        float *y = &Y[(m0 + i) * ldy + n];
                        *y = acc ? *y + v : v;
                    }
            }
        }
    }
    free(xu);
    free(sx);
}

void cb_matmul_q8_fast_avx512(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                              bool accumulate) {
    if (W->dtype == CB_I8 && M >= 4) { int8_vnni_blocked(M, X, ldx, W, Y, ldy, accumulate); return; }
    if (W->dtype == CB_I8) { int8_vnni(M, X, ldx, 1, &W, &Y, &ldy, accumulate, false); return; }
    if (M > CB_Q8_SKINNY_MAX) { panels(M, X, ldx, W, Y, ldy, accumulate, true); return; }
    /* fp8 decode: bf16-rounded activations through the exact weight-streaming kernel (same semantics as
     * vdpbf16ps with fp32 accumulation; decode is bandwidth-bound, the dot-product unit is not the limit). */
    skinny(M, X, ldx, W, Y, ldy, accumulate, true);
}

/* Decode-sized calls over several weights of the same K (gemm8.h); anything else one weight at a time. */
static bool multi_ok(int M, int n, const cb_weight *const *W, cb_dtype only) {
    if (M > CB_Q8_SKINNY_MAX || n < 1 || n > Q8_MULTI_MAX) return false;
    for (int i = 0; i < n; i++)
        if (W[i]->cols != W[0]->cols || !cb_dtype_is_q8(W[i]->dtype) || (only && W[i]->dtype != only)) return false;
    return true;
}

void cb_matmul_q8_multi_avx512(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                               const int64_t *ldy) {
    bool any_i8 = false; /* the fp32 loop for int8 only where a single call would take it too */
    for (int i = 0; i < n; i++) any_i8 = any_i8 || W[i]->dtype == CB_I8;
    if (multi_ok(M, n, W, CB_I8) && int8_fix24(M, n, W)) int8_vnni(M, X, ldx, n, W, Y, ldy, false, true);
    else if (multi_ok(M, n, W, 0) && !(any_i8 && fix24_fits(M, W[0]->cols))) skinny_multi(M, X, ldx, n, W, Y, ldy, false, false);
    else
        for (int i = 0; i < n; i++) cb_matmul_q8_avx512(M, X, ldx, W[i], Y[i], ldy[i], false);
}

void cb_matmul_q8_fast_multi_avx512(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W,
                                    float *const *Y, const int64_t *ldy) {
    if (multi_ok(M, n, W, CB_F8_E4M3)) skinny_multi(M, X, ldx, n, W, Y, ldy, false, true);
    else if (M < 4 && multi_ok(M, n, W, CB_I8)) int8_vnni(M, X, ldx, n, W, Y, ldy, false, false);
    else
        for (int i = 0; i < n; i++) cb_matmul_q8_fast_avx512(M, X, ldx, W[i], Y[i], ldy[i], false);
}
