/* AVX2 GEMMs for 8-bit weights (gemm8.h has the semantics) on CPUs without AVX-512.
 * Decode (M <= CB_Q8_SKINNY_MAX): weight-streaming dot products, each weight row read from memory once (it
 * stays in L1 for the other activation rows). Exact mode and fast fp8 keep dot_q8's order of operations of
 * gemm8_avx512.c (four 16-lane accumulators held as eight 8-lane ones, the tail in 16s, the tree of
 * _mm512_reduce_add_ps) and its exact decodes, so decode gives the AVX-512 fp32 loop's bits: fp8 by placing
 * the code's bits in an fp32 against activations scaled by 2^64, blocks with E4M3 subnormals through f16;
 * int8 through sign extension. Fast int8: exact int32 sums of |xq| (u8) times the codes with xq's sign moved
 * onto them (s8), vpmaddubsw (no saturation: 2 · 127 · 127 < 2^15) and vpmaddwd, bit-identical to the
 * portable twin.
 * Prefill: per task a panel of weight rows decoded once (fp32 through f16 for fp8, or kept as bytes for fast
 * int8) against register blocks of activation rows x weight rows.
 * Parallel over output rows only: every output is computed by one thread with the same operations whatever
 * the thread count. */
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm8.h"
#include "kernels_avx2.h"
#include "thread_scratch.h"

/* Decode reads each weight row once from memory: requested PF_DIST bytes ahead of use, as on AVX-512. */
#ifndef PF_DIST
#define PF_DIST 4096
#endif
#define PREFETCH(p) do { if (PF_DIST > 0) _mm_prefetch((const char *)(p) + PF_DIST, _MM_HINT_T0); } while (0)

#define AI __attribute__((always_inline))
#define ROUND_UP(v, m) (((v) + (m) - 1) / (m) * (m))

/* 16 codes at p as fp32 vectors of codes 0..7 and 8..15, exactly. fp8 through f16: each byte sign-extended
 * to 16 bits and shifted left by 7 is s s.eeee.mmm.0000000; clearing bit 14 leaves the f16 s.0eeee.mmm0000000,
 * the code's value · 2^-8, which vcvtph2ps widens to a normal fp32 (E4M3 subnormals included). */
static inline AI void dec16(const uint8_t *p, bool fp8, __m256 *lo, __m256 *hi) {
    if (fp8) {
        const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
        const __m256i h = _mm256_and_si256(_mm256_slli_epi16(w, 7), _mm256_set1_epi16((short)0xbf80));
        *lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
        *hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    } else {
        *lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
        *hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))));
    }
}
#define FP8_PANEL_UNIT 256.0f /* the prefill panels hold dec16's values */

/* fp8 in the weight stream as on AVX-512 (fp8_bits there), 3 instructions per 8 codes where the two vcvtph2ps
 * of dec16 cost about a third of the GEMV's rate on Zen 3: each byte sign-extended to 32 bits, shifted left
 * by 20, keeping the sign and the 7 code bits, is an fp32 worth value · 2^-120 exactly. The activations are
 * scaled by 2^64 first (products x · value · 2^-56, far from fp32's subnormal range; the 2^56 goes into the
 * row scale). An E4M3 subnormal would land as an fp32 subnormal (a microcode assist per FMA on Intel cores,
 * and zero under DAZ), so each 64 codes are tested first; a block that holds one goes through dec16 against
 * the scaled activations times 2^-112: the same exact products. */
#define FP8_X_SCALE 0x1p64f
#define FP8_UNIT 0x1p56f
#define FP8_FIX_X 0x1p-112f
static inline AI __m256 fp8_bits8(const uint8_t *p) {
    const __m256i v = _mm256_slli_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)), 20);
    return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0x87F00000u)));
}
static inline AI __m256 i8_8(const uint8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
/* The test below costs about a fifth of the GEMV's rate. It is skipped where it protects nothing: on a core
 * whose FMAs take subnormal inputs at the rate of normal ones (probed once, fp8_subnormals_probe) and with
 * MXCSR's DAZ off, an E4M3 subnormal placed as an fp32 subnormal gives the same exact product as its f16
 * decode, so both loops give the same bits (docs/quantization.md, "Subnormal codes"). */
static int fp8_test_forced = -1; /* cb_q8_avx2_force_fp8_subnormal_test: -1 as probed, 0 skip, 1 test */
static pthread_once_t fp8_probe_once = PTHREAD_ONCE_INIT;
static bool fp8_sub_free;
static double fp8_probe_ns[2]; /* best time of the probe's FMAs on a normal, a subnormal operand */

/* 8 independent chains of 256 FMAs, acc += 2^64 · m as in the kernel (m a normal or a subnormal weight, the
 * products and sums normal), best of 7; a microcode assist per FMA (Intel) makes the subnormal run tens of
 * times slower, none (Zen 3) leaves them equal. */
static double fma_chains_ns(float m) {
    volatile float vm = m, vx = 0x1p64f, sink;
    double best = 1e30;
    for (int rep = 0; rep < 7; rep++) {
        const __m256 w = _mm256_set1_ps(vm), x = _mm256_set1_ps(vx);
        __m256 a0 = _mm256_set1_ps(1), a1 = _mm256_set1_ps(2), a2 = _mm256_set1_ps(3), a3 = _mm256_set1_ps(4),
               a4 = _mm256_set1_ps(5), a5 = _mm256_set1_ps(6), a6 = _mm256_set1_ps(7), a7 = _mm256_set1_ps(8);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int it = 0; it < 256; it++) {
            a0 = _mm256_fmadd_ps(x, w, a0), a1 = _mm256_fmadd_ps(x, w, a1), a2 = _mm256_fmadd_ps(x, w, a2);
            a3 = _mm256_fmadd_ps(x, w, a3), a4 = _mm256_fmadd_ps(x, w, a4), a5 = _mm256_fmadd_ps(x, w, a5);
            a6 = _mm256_fmadd_ps(x, w, a6), a7 = _mm256_fmadd_ps(x, w, a7);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
        sink = _mm256_cvtss_f32(s);
        (void)sink;
        const double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
        if (ns < best) best = ns;
    }
    return best;
}
static void fp8_subnormals_probe(void) {
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~0x8040u); /* DAZ and FTZ off for the probe */
    fp8_probe_ns[0] = fma_chains_ns(0x1p-100f);
    fp8_probe_ns[1] = fma_chains_ns(0x1p-130f);
    _mm_setcsr(csr);
    fp8_sub_free = fp8_probe_ns[1] <= 1.5 * fp8_probe_ns[0] + 200.0;
}

bool cb_q8_avx2_fp8_subnormal_test(double probe_ns[2]) {
    pthread_once(&fp8_probe_once, fp8_subnormals_probe);
    if (probe_ns) probe_ns[0] = fp8_probe_ns[0], probe_ns[1] = fp8_probe_ns[1];
    if (_mm_getcsr() & 0x40u) return true; /* DAZ: a subnormal fp32 weight would read as 0 */
    return fp8_test_forced >= 0 ? fp8_test_forced == 1 : !fp8_sub_free;
}
void cb_q8_avx2_force_fp8_subnormal_test(int mode) { fp8_test_forced = mode < 0 ? -1 : mode > 0; }

/* Whether one of the 64 codes at p is an E4M3 subnormal, (c & 0x7f) in 1..7: then 2c mod 256 is in 2..14 and
 * 2c + 126 (mod 256, signed) in -128..-116, below every other code's. */
static inline AI bool fp8_sub64(const uint8_t *p) {
    const __m256i a = _mm256_loadu_si256((const __m256i *)p), b = _mm256_loadu_si256((const __m256i *)(p + 32));
    const __m256i off = _mm256_set1_epi8(0x7e), lim = _mm256_set1_epi8(-115);
    const __m256i sa = _mm256_cmpgt_epi8(lim, _mm256_add_epi8(_mm256_add_epi8(a, a), off));
    const __m256i sb = _mm256_cmpgt_epi8(lim, _mm256_add_epi8(_mm256_add_epi8(b, b), off));
    const __m256i s = _mm256_or_si256(sa, sb);
    return !_mm256_testz_si256(s, s);
}

/* _mm512_reduce_add_ps of the 16 lanes lo | hi in gcc's order: upper 256 + lower 256 bits, upper 128 +
 * lower 128, lanes {2,3} + {0,1}, lane 1 + lane 0. */
static inline AI float reduce16(__m256 lo, __m256 hi) {
    const __m256 t = _mm256_add_ps(hi, lo);
    const __m128 u = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    const __m128 v = _mm_add_ps(u, _mm_shuffle_ps(u, u, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* 16 codes through dec16 into (lo, hi); fp8 against the activations times 2^-112 (see fp8_bits8). */
static inline AI void fma16(const float *x, const uint8_t *w, bool fp8, __m256 *lo, __m256 *hi) {
    __m256 l, h, xl = _mm256_loadu_ps(x), xh = _mm256_loadu_ps(x + 8);
    dec16(w, fp8, &l, &h);
    if (fp8) xl = _mm256_mul_ps(xl, _mm256_set1_ps(FP8_FIX_X)), xh = _mm256_mul_ps(xh, _mm256_set1_ps(FP8_FIX_X));
    *lo = _mm256_fmadd_ps(xl, l, *lo);
    *hi = _mm256_fmadd_ps(xh, h, *hi);
}

/* x (zero-padded to a multiple of 16; times 2^64 for fp8) · the K codes w; fp8 with or without the subnormal
 * test of each 64 codes (sub_test). The ragged tail is copied out so that no load reads past the row (the
 * last row of a matrix ends its buffer). */
static inline AI float dot_q8(const float *x, const uint8_t *w, int64_t K, bool fp8, bool sub_test) {
    const __m256 z = _mm256_setzero_ps();
    __m256 a0l = z, a0h = z, a1l = z, a1h = z, a2l = z, a2h = z, a3l = z, a3h = z;
    int64_t k = 0;
#define STEP8(acc, o, dec) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + (o)), dec(w + k + (o)), acc)
    for (; k + 64 <= K; k += 64) {
        PREFETCH(w + k);
        if (!fp8) {
            STEP8(a0l, 0, i8_8); STEP8(a0h, 8, i8_8); STEP8(a1l, 16, i8_8); STEP8(a1h, 24, i8_8);
            STEP8(a2l, 32, i8_8); STEP8(a2h, 40, i8_8); STEP8(a3l, 48, i8_8); STEP8(a3h, 56, i8_8);
        } else if (!sub_test || __builtin_expect(!fp8_sub64(w + k), 1)) {
            STEP8(a0l, 0, fp8_bits8); STEP8(a0h, 8, fp8_bits8); STEP8(a1l, 16, fp8_bits8); STEP8(a1h, 24, fp8_bits8);
            STEP8(a2l, 32, fp8_bits8); STEP8(a2h, 40, fp8_bits8); STEP8(a3l, 48, fp8_bits8); STEP8(a3h, 56, fp8_bits8);
        } else {
            fma16(x + k, w + k, true, &a0l, &a0h);
            fma16(x + k + 16, w + k + 16, true, &a1l, &a1h);
            fma16(x + k + 32, w + k + 32, true, &a2l, &a2h);
            fma16(x + k + 48, w + k + 48, true, &a3l, &a3h);
        }
    }
#undef STEP8
    if (k < K) {
        uint8_t t[64] = { 0 };
        memcpy(t, w + k, (size_t)(K - k));
        for (int64_t j = 0; k + j < K; j += 16) /* zeros past K in both operands add +0, as masked lanes */
            fma16(x + k + j, t + j, fp8, &a0l, &a0h);
    }
    return reduce16(_mm256_add_ps(_mm256_add_ps(a0l, a1l), _mm256_add_ps(a2l, a3l)),
                    _mm256_add_ps(_mm256_add_ps(a0h, a1h), _mm256_add_ps(a2h, a3h)));
}

static inline AI __m256i i8_step(__m256i a, const uint8_t *u, const int8_t *xq, const int8_t *w) {
    const __m256i s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)w), _mm256_loadu_si256((const __m256i *)xq));
    const __m256i p = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)u), s);
    return _mm256_add_epi32(a, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

static inline AI int32_t hsum_i32(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_extracti128_si256(a, 1), _mm256_castsi256_si128(a));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* Σ xq_k w_k in int32 (exact, any order): u = |xq| and xq zero-padded to a multiple of 32. */
static inline AI int32_t dot_i8(const uint8_t *u, const int8_t *xq, const int8_t *w, int64_t K) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 128 <= K; k += 128) {
        PREFETCH(w + k);
        PREFETCH(w + k + 64);
        a0 = i8_step(a0, u + k, xq + k, w + k);
        a1 = i8_step(a1, u + k + 32, xq + k + 32, w + k + 32);
        a2 = i8_step(a2, u + k + 64, xq + k + 64, w + k + 64);
        a3 = i8_step(a3, u + k + 96, xq + k + 96, w + k + 96);
    }
    for (; k + 32 <= K; k += 32) a0 = i8_step(a0, u + k, xq + k, w + k);
    if (k < K) {
        int8_t t[32] = { 0 };
        memcpy(t, w + k, (size_t)(K - k));
        a1 = i8_step(a1, u + k, xq + k, t);
    }
    return hsum_i32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)));
}

/* The activations as the kernels read them. Exact int8: fp32 rows xf zero-padded to ldf, a multiple of 16;
 * fp8: the same in xf8 times 2^64, after rounding to bf16 in fast mode (both steps exact but the rounding).
 * Fast int8: the quantised rows xq, |xq| in xu (ld ldq, a multiple of
 * 32, zero-padded) and the row scales sx. */
typedef struct {
    const float *xf, *xf8;
    int64_t ldf;
    const int8_t *xq;
    const uint8_t *xu;
    const float *sx;
    int64_t ldq;
    bool fp8_sub_test; /* cb_q8_avx2_fp8_subnormal_test() for this call */
} q8_acts;

static void prep_f32(int M, const float *X, int64_t ldx, int64_t K, bool round_bf16, float mul, float *xf,
                     int64_t ldf) {
    for (int m = 0; m < M; m++) {
        float *d = xf + (size_t)m * (size_t)ldf;
        for (int64_t k = 0; k < K; k++) {
            const float x = X[m * ldx + k];
            d[k] = (round_bf16 ? cb_bf16_to_f32(cb_f32_to_bf16(x)) : x) * mul;
        }
        for (int64_t k = K; k < ldf; k++) d[k] = 0.0f;
    }
}

/* cb_q8_quantize_activations for one row, bit for bit: the same max (a NaN lane loses, as in fmaxf), the same
 * division and round to nearest even, NaN to 0, clamped to ±127. */
void cb_q8_quantize_row_avx2(const float *x, int64_t K, int8_t *xq, float *sx) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 mx = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), absmask), mx);
    float l[8], amax = 0.0f;
    _mm256_storeu_ps(l, mx);
    for (int i = 0; i < 8; i++) amax = l[i] > amax ? l[i] : amax;
    for (; k < K; k++) {
        const float a = __builtin_fabsf(x[k]);
        amax = a > amax ? a : amax;
    }
    *sx = amax / 127.0f;
    if (!(amax > 0.0f)) {
        memset(xq, 0, (size_t)K);
        return;
    }
    const __m256 s = _mm256_set1_ps(*sx), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    for (k = 0; k + 32 <= K; k += 32) {
        __m256i q[4];
        for (int j = 0; j < 4; j++) {
            const __m256 d = _mm256_div_ps(_mm256_loadu_ps(x + k + 8 * j), s);
            __m256 r = _mm256_round_ps(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = _mm256_max_ps(_mm256_min_ps(r, hi), lo);
            r = _mm256_andnot_ps(_mm256_cmp_ps(d, d, _CMP_UNORD_Q), r); /* NaN -> 0 */
            q[j] = _mm256_cvtps_epi32(r);
        }
        /* packs interleave 128-bit lanes: the permute restores the order of the 32 codes */
        const __m256i w = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(xq + k), _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
    for (; k < K; k++) xq[k] = cb_f32_to_i8(x[k] / *sx);
}

/* Rows quantised one at a time (the shared quantiser's bits); rows of xq are ldq long, zero-padded. */
static void prep_i8(int M, const float *X, int64_t ldx, int64_t K, int8_t *xq, uint8_t *xu, float *sx, int64_t ldq) {
    for (int m = 0; m < M; m++) {
        int8_t *q = xq + (size_t)m * (size_t)ldq;
        uint8_t *u = xu + (size_t)m * (size_t)ldq;
        cb_q8_quantize_row_avx2(X + m * ldx, K, q, sx + m);
        memset(q + K, 0, (size_t)(ldq - K));
        for (int64_t k = 0; k < ldq; k += 32) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(q + k));
            _mm256_storeu_si256((__m256i *)(u + k), _mm256_sign_epi8(v, v));
        }
    }
}

/* Rows [n0, n1) of W for all M activation rows. */
static void skinny_range(int M, const q8_acts *x, const cb_weight *W, float *Y, int64_t ldy, bool acc, bool fast,
                         int64_t n0, int64_t n1) {
    const bool fp8 = W->dtype == CB_F8_E4M3, integer = fast && !fp8;
    const int64_t K = W->cols;
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *w = (const uint8_t *)W->data + (size_t)n * (size_t)K;
        const float s = W->scale[n] * (fp8 ? FP8_UNIT : 1.0f);
        for (int m = 0; m < M; m++) {
            float v;
            if (integer) {
                const size_t o = (size_t)m * (size_t)x->ldq;
                v = (float)dot_i8(x->xu + o, x->xq + o, (const int8_t *)w, K) * (x->sx[m] * W->scale[n]);
            } else {
                const size_t o = (size_t)m * (size_t)x->ldf;
                v = s * (fp8 ? (x->fp8_sub_test ? dot_q8(x->xf8 + o, w, K, true, true) : dot_q8(x->xf8 + o, w, K, true, false))
                             : dot_q8(x->xf + o, w, K, false, false));
            }
            Y[m * ldy + n] = acc ? Y[m * ldy + n] + v : v;
        }
    }
}

/* The prepared activations, kept per thread (a decode calls this hundreds of times per token). */
static _Thread_local cb_tscratch t_xf, t_xf8, t_xq;

/* Several 8-bit weights on the same activations (q/k/v, gate/up) in one parallel region: their rows form one
 * index space split statically over the threads, so each thread streams one contiguous range and the small
 * projections cost no fork/join of their own. */
#define Q8_MULTI_MAX 4
typedef struct {
    int M, n;
    bool fast, acc;
    q8_acts x;
    const cb_weight *const *W;
    float *const *Y;
    const int64_t *ldy;
    int64_t first[Q8_MULTI_MAX + 1]; /* prefix sums of the rows */
} q8_multi;

static inline int prefetch_slice_start(int n, const cb_weight *const *W, const int64_t *first, int64_t lo,
                                       int64_t hi) {
    return cb_q8_prefetch_slice_start(n, W, first, lo, hi, PF_DIST);
}

static void multi_slice(const q8_multi *a, int t, int T) {
    const int64_t total = a->first[a->n], lo = total * t / T, hi = total * (t + 1) / T;
    for (int i = prefetch_slice_start(a->n, a->W, a->first, lo, hi); i < a->n && a->first[i] < hi; i++) {
        const int64_t r0 = CB_MAX(lo, a->first[i]) - a->first[i], r1 = CB_MIN(hi, a->first[i + 1]) - a->first[i];
        if (r0 < r1) skinny_range(a->M, &a->x, a->W[i], a->Y[i], a->ldy[i], a->acc, a->fast, r0, r1);
    }
}

static void skinny_multi(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                         const int64_t *ldy, bool acc, bool fast) {
    q8_multi a = { .M = M, .n = n, .fast = fast, .acc = acc, .W = W, .Y = Y, .ldy = ldy };
    const int64_t K = W[0]->cols;
    bool want_f = false, want_f8 = false, want_i = false;
    for (int i = 0; i < n; i++) {
        a.first[i + 1] = a.first[i] + W[i]->rows;
        want_f8 = want_f8 || W[i]->dtype == CB_F8_E4M3;
        want_f = want_f || (!fast && W[i]->dtype == CB_I8);
        want_i = want_i || (fast && W[i]->dtype == CB_I8);
    }
    a.x.ldf = ROUND_UP(K, 16);
    const size_t fbytes = (size_t)M * (size_t)a.x.ldf * sizeof(float);
    if (want_f) {
        float *xf = cb_tscratch_get(&t_xf, fbytes);
        if (!xf) abort(); /* M x K floats (M <= CB_Q8_SKINNY_MAX): out of memory */
        prep_f32(M, X, ldx, K, false, 1.0f, xf, a.x.ldf);
        a.x.xf = xf;
    }
    if (want_f8) {
        float *xf = cb_tscratch_get(&t_xf8, fbytes);
        if (!xf) abort();
        prep_f32(M, X, ldx, K, fast, FP8_X_SCALE, xf, a.x.ldf);
        a.x.xf8 = xf;
        a.x.fp8_sub_test = cb_q8_avx2_fp8_subnormal_test(NULL);
    }
    if (want_i) {
        a.x.ldq = ROUND_UP(K, 32);
        char *b = cb_tscratch_get(&t_xq, 2 * (size_t)M * (size_t)a.x.ldq + (size_t)M * sizeof(float));
        if (!b) abort();
        float *sx = (float *)b; /* the scales first: 64-byte aligned */
        int8_t *xq = (int8_t *)(b + (size_t)M * sizeof(float));
        uint8_t *xu = (uint8_t *)xq + (size_t)M * (size_t)a.x.ldq;
        prep_i8(M, X, ldx, K, xq, xu, sx, a.x.ldq);
        a.x.xq = xq, a.x.xu = xu, a.x.sx = sx;
    }
    /* Inside a parallel region (the MoE decode's expert tiles) the caller's thread does the whole call; below
     * ~1e5 codes a fork/join costs more than the split saves. */
    const double work = (double)a.first[n] * (double)K * (double)CB_MIN(M, 4);
    if (cb_omp_nested() || work <= 1e5) {
        multi_slice(&a, 0, 1);
        return;
    }
#pragma omp parallel
    multi_slice(&a, omp_get_thread_num(), omp_get_num_threads());
}

/* ---- prefill (M > CB_Q8_SKINNY_MAX) ---- */

/* The 4 sums of a, b, c, d (8 lanes each). */
static inline AI __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* 4 activation rows x 3 panel rows, fp32, L a multiple of 8: 12 accumulators and the 3 weight vectors in
 * registers, the activations as FMA memory operands. */
static inline AI void block4x3(const float *const x[4], const float *const p[3], int64_t L, float out[12]) {
    const __m256 z = _mm256_setzero_ps();
    __m256 a00 = z, a01 = z, a02 = z, a10 = z, a11 = z, a12 = z, a20 = z, a21 = z, a22 = z, a30 = z, a31 = z, a32 = z;
    for (int64_t k = 0; k < L; k += 8) {
        const __m256 w0 = _mm256_loadu_ps(p[0] + k), w1 = _mm256_loadu_ps(p[1] + k), w2 = _mm256_loadu_ps(p[2] + k);
        __m256 v = _mm256_loadu_ps(x[0] + k);
        a00 = _mm256_fmadd_ps(v, w0, a00), a01 = _mm256_fmadd_ps(v, w1, a01), a02 = _mm256_fmadd_ps(v, w2, a02);
        v = _mm256_loadu_ps(x[1] + k);
        a10 = _mm256_fmadd_ps(v, w0, a10), a11 = _mm256_fmadd_ps(v, w1, a11), a12 = _mm256_fmadd_ps(v, w2, a12);
        v = _mm256_loadu_ps(x[2] + k);
        a20 = _mm256_fmadd_ps(v, w0, a20), a21 = _mm256_fmadd_ps(v, w1, a21), a22 = _mm256_fmadd_ps(v, w2, a22);
        v = _mm256_loadu_ps(x[3] + k);
        a30 = _mm256_fmadd_ps(v, w0, a30), a31 = _mm256_fmadd_ps(v, w1, a31), a32 = _mm256_fmadd_ps(v, w2, a32);
    }
    _mm_storeu_ps(out, hsum4(a00, a01, a02, a10));
    _mm_storeu_ps(out + 4, hsum4(a11, a12, a20, a21));
    _mm_storeu_ps(out + 8, hsum4(a22, a30, a31, a32));
}

/* 4 activation rows x 2 weight rows in int32, L a multiple of 32 (codes read as bytes from the panel). */
static inline AI void block4x2_i8(const uint8_t *const u[4], const int8_t *const q[4], const int8_t *const w[2],
                                  int64_t L, int32_t out[8]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
#define I8_PAIR(acc, r, wv)                                                                                         \
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(u[r] + k)), \
                                                                       _mm256_sign_epi8(wv, xr)), ones))
    for (int64_t k = 0; k < L; k += 32) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(w[0] + k)), w1 = _mm256_loadu_si256((const __m256i *)(w[1] + k));
        __m256i xr = _mm256_loadu_si256((const __m256i *)(q[0] + k));
        I8_PAIR(a00, 0, w0); I8_PAIR(a01, 0, w1);
        xr = _mm256_loadu_si256((const __m256i *)(q[1] + k));
        I8_PAIR(a10, 1, w0); I8_PAIR(a11, 1, w1);
        xr = _mm256_loadu_si256((const __m256i *)(q[2] + k));
        I8_PAIR(a20, 2, w0); I8_PAIR(a21, 2, w1);
        xr = _mm256_loadu_si256((const __m256i *)(q[3] + k));
        I8_PAIR(a30, 3, w0); I8_PAIR(a31, 3, w1);
    }
#undef I8_PAIR
    const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(a00, a01), _mm256_hadd_epi32(a10, a11));
    const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(a20, a21), _mm256_hadd_epi32(a30, a31));
    _mm_storeu_si128((__m128i *)out, _mm_add_epi32(_mm256_castsi256_si128(h0), _mm256_extracti128_si256(h0, 1)));
    _mm_storeu_si128((__m128i *)(out + 4), _mm_add_epi32(_mm256_castsi256_si128(h1), _mm256_extracti128_si256(h1, 1)));
}

/* The panel: rows [n0, n0 + cnt) of W into P [cnt, L], zero-padded to L (fp32, the f16 decode's values for
 * fp8), or as the codes themselves for fast int8. */
static void decode_panel(const cb_weight *W, int64_t n0, int64_t cnt, int64_t L, bool bytes, void *P) {
    const bool fp8 = W->dtype == CB_F8_E4M3;
    const int64_t K = W->cols;
    for (int64_t r = 0; r < cnt; r++) {
        const uint8_t *w = (const uint8_t *)W->data + (size_t)(n0 + r) * (size_t)K;
        if (bytes) {
            uint8_t *d = (uint8_t *)P + (size_t)r * (size_t)L;
            memcpy(d, w, (size_t)K);
            memset(d + K, 0, (size_t)(L - K));
            continue;
        }
        float *d = (float *)P + (size_t)r * (size_t)L;
        int64_t k = 0;
        __m256 lo, hi;
        for (; k + 16 <= K; k += 16) {
            dec16(w + k, fp8, &lo, &hi);
            _mm256_storeu_ps(d + k, lo), _mm256_storeu_ps(d + k + 8, hi);
        }
        if (k < L) { /* L - k <= 16 */
            uint8_t t[16] = { 0 };
            memcpy(t, w + k, (size_t)(K - k));
            dec16(t, fp8, &lo, &hi);
            float f[16];
            _mm256_storeu_ps(f, lo), _mm256_storeu_ps(f + 8, hi);
            memcpy(d + k, f, (size_t)(L - k) * sizeof(float)); /* codes past K decode to 0 */
        }
    }
}

static _Thread_local cb_tscratch t_panel;

/* Each task: a panel of NB weight rows decoded once into the thread's scratch (~96 KiB, in L2), then every
 * block of 4 activation rows against it. Ragged blocks repeat their last row and drop the extra results. */
static void panels(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy, bool acc,
                   bool fast) {
    const int64_t N = W->rows, K = W->cols;
    const bool fp8 = W->dtype == CB_F8_E4M3, integer = fast && !fp8;
    const int64_t L = ROUND_UP(CB_MAX(K, 1), integer ? 32 : 8), esz = integer ? 1 : 4, JR = integer ? 2 : 3;
    int64_t NB = CB_MAX(JR, CB_MIN(48, (int64_t)(96 << 10) / (L * esz)) / JR * JR);
    void *xbuf = malloc((size_t)M * (size_t)L * (size_t)(integer ? 2 : 4) + (size_t)M * sizeof(float) + 64);
    if (!xbuf) abort(); /* the activations once more: out of memory */
    float *xf = xbuf, *sx = (float *)((char *)xbuf + (size_t)M * (size_t)L * (size_t)(integer ? 2 : 4));
    int8_t *xq = xbuf;
    uint8_t *xu = (uint8_t *)xbuf + (size_t)M * (size_t)L;
    if (integer) prep_i8(M, X, ldx, K, xq, xu, sx, L);
    else prep_f32(M, X, ldx, K, fast, 1.0f, xf, L);
    const int64_t nblocks = (N + NB - 1) / NB;
    const float unit = fp8 ? FP8_PANEL_UNIT : 1.0f;
#pragma omp parallel for schedule(static) if (!cb_omp_nested())
    for (int64_t b = 0; b < nblocks; b++) {
        const int64_t n0 = b * NB, cnt = CB_MIN(NB, N - n0);
        void *P = cb_tscratch_get(&t_panel, (size_t)NB * (size_t)L * (size_t)esz);
        if (!P) abort(); /* a panel of ~96 KiB per thread: out of memory */
        decode_panel(W, n0, cnt, L, integer, P);
        for (int m0 = 0; m0 < M; m0 += 4) {
            const int mc = CB_MIN(4, M - m0);
            for (int64_t j0 = 0; j0 < cnt; j0 += JR) {
                const int64_t jc = CB_MIN(JR, cnt - j0);
                float v[12];
                if (integer) {
                    const uint8_t *u[4];
                    const int8_t *q[4], *w[2];
                    for (int i = 0; i < 4; i++) {
                        const size_t o = (size_t)(m0 + CB_MIN(i, mc - 1)) * (size_t)L;
                        u[i] = xu + o, q[i] = xq + o;
                    }
                    for (int j = 0; j < 2; j++) w[j] = (const int8_t *)P + (size_t)(j0 + CB_MIN(j, jc - 1)) * (size_t)L;
                    int32_t d[8];
                    block4x2_i8(u, q, w, L, d);
                    for (int i = 0; i < mc; i++)
                        for (int j = 0; j < jc; j++) v[i * 3 + j] = (float)d[i * 2 + j] * (sx[m0 + i] * W->scale[n0 + j0 + j]);
                } else {
                    const float *x[4], *p[3];
                    for (int i = 0; i < 4; i++) x[i] = xf + (size_t)(m0 + CB_MIN(i, mc - 1)) * (size_t)L;
                    for (int j = 0; j < 3; j++) p[j] = (const float *)P + (size_t)(j0 + CB_MIN(j, jc - 1)) * (size_t)L;
                    float d[12];
                    block4x3(x, p, L, d);
                    for (int i = 0; i < mc; i++)
                        for (int j = 0; j < jc; j++) v[i * 3 + j] = (W->scale[n0 + j0 + j] * unit) * d[i * 3 + j];
                }
                for (int i = 0; i < mc; i++)
                    for (int j = 0; j < jc; j++) {
                        float *y = &Y[(m0 + i) * ldy + n0 + j0 + j];
                        *y = acc ? *y + v[i * 3 + j] : v[i * 3 + j];
                    }
            }
        }
    }
    free(xbuf);
}

/* ---- entry points ---- */

void cb_matmul_q8_avx2(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                       bool accumulate) {
    if (M <= 0 || W->rows <= 0) return;
    if (M <= CB_Q8_SKINNY_MAX) skinny_multi(M, X, ldx, 1, &W, &Y, &ldy, accumulate, false);
    else panels(M, X, ldx, W, Y, ldy, accumulate, false);
}

void cb_matmul_q8_fast_avx2(int M, const float *X, int64_t ldx, const cb_weight *W, float *Y, int64_t ldy,
                            bool accumulate) {
    if (M <= 0 || W->rows <= 0) return;
    if (M <= CB_Q8_SKINNY_MAX) skinny_multi(M, X, ldx, 1, &W, &Y, &ldy, accumulate, true);
    else panels(M, X, ldx, W, Y, ldy, accumulate, true);
}

/* Decode-sized calls over up to Q8_MULTI_MAX weights of the same K; anything else one weight at a time. */
static bool multi_ok(int M, int n, const cb_weight *const *W) {
    if (M <= 0 || M > CB_Q8_SKINNY_MAX || n < 1 || n > Q8_MULTI_MAX) return false;
    for (int i = 0; i < n; i++)
        if (W[i]->cols != W[0]->cols || !cb_dtype_is_q8(W[i]->dtype)) return false;
    return true;
}

void cb_matmul_q8_multi_avx2(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W, float *const *Y,
                             const int64_t *ldy) {
    if (multi_ok(M, n, W)) skinny_multi(M, X, ldx, n, W, Y, ldy, false, false);
    else
        for (int i = 0; i < n; i++) cb_matmul_q8_avx2(M, X, ldx, W[i], Y[i], ldy[i], false);
}

void cb_matmul_q8_fast_multi_avx2(int M, const float *X, int64_t ldx, int n, const cb_weight *const *W,
                                  float *const *Y, const int64_t *ldy) {
    if (multi_ok(M, n, W)) skinny_multi(M, X, ldx, n, W, Y, ldy, false, true);
    else
        for (int i = 0; i < n; i++) cb_matmul_q8_fast_avx2(M, X, ldx, W[i], Y[i], ldy[i], false);
}
