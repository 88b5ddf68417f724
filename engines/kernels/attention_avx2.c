/* AVX2 flash-attention block kernel (contract in attention.h) for CPUs without AVX-512: every cache dtype
 * and layout, hd % 8 == 0, fp32 arithmetic (except fast mode's int8 decode: integer sums, section below).
 * Per block of 64 keys: S = Q·Kᵀ with K tiles read as 8-key vectors (16 keys = two __m256 per head dim),
 * one broadcast of q per row and dim, 8 accumulators per pass (1 row x 4 tiles, 2 x 2 or 4 x 1: AVX2 has
 * 16 ymm registers); online softmax with an 8-lane exp; then O = O·α + P·V with rows x 8-column vectors
 * in registers. 8-bit caches: a tile's scores are scaled by its keys' ks once, vs is folded into the
 * softmax weights, so the inner loops stay plain FMAs on codes widened in registers.
 * Decode (<= DIRECT_MAX_ROWS rows, blocks whose 4 tiles are full) reads the cache in place, with the next
 * blocks requested by software prefetch spread over the arithmetic; prefill-sized row counts and blocks
 * touching a narrow last tile first widen the block into fp32 buffers (reused by every row). */
#include <immintrin.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "attention.h"
#include "kernels.h"
#include "kernels_avx2.h"
#include "kv8.h"
#include "vexp_avx2.h"

#define AI static inline __attribute__((always_inline))

/* Decode row counts read the cache in place; more rows amortise one widening of the block. */
#define DIRECT_MAX_ROWS 8
/* Software prefetch distance in blocks of CB_FLASH_BK keys: on Zen 3 (32 KiB L1, prefetch into L2) 1 to 4
 * measured alike within the noise of ctxbench-bench flash-decode, none 15-40 % slower. */
#ifndef PF_AHEAD
#define PF_AHEAD 2
#endif

/* Cache layouts, a compile-time constant in every hot loop: f32 / f16 / fp8 K in plain tiles [hd][16],
 * bf16 K in d-pair tiles, int8 in 4-byte groups (hd % 8 == 0 makes these the only ones that reach here).
 * fp8 has two decodes of the same layout: L_FP8 through f16, L_FP8P by bit placement (fp8p8 below). */
typedef enum { L_F32, L_F16, L_BF16, L_FP8, L_FP8P, L_I8 } lay;

/* head dims per K step: one 32-byte load of a pair tile holds 2 dims of 8 keys, of a quad tile 4 */
AI int k_step(lay L) { return L == L_BF16 ? 2 : L == L_I8 ? 4 : 1; }
AI size_t el_size(lay L) { return L == L_F32 ? 4 : (L == L_F16 || L == L_BF16) ? 2 : 1; }
/* what the decodes below give per unit of code value: fp8 via f16 is value / 256, int8 via the top byte
 * of a dword is value · 2^24; the scales carry the inverse (powers of two: exact). Placed fp8 is value ·
 * 2^-120, against queries scaled by 2^96 (FP8P_Q) so that products stay normal: a score's sum is
 * Σ q·value · 2^-24 (K unit 2^24); the V scales times 2^120 (v_unit) make the P·V products p·vs·value,
 * O's own units. Every product is the f16 route's times a power of two, so both give the same bits while
 * nothing leaves fp32's range: |q| < 2^30 (checked per call), V scales < 2^7 and K scales < 2^100 (per
 * block; else that block takes the f16 route). Only values that small differ: scores' sums below 2^-102
 * (FTZ flushes them here, below 2^-126 there) and weights below 2^-134, which the f16 route flushes and
 * which move an output only where it is below ~2^-100. Subnormal q and scales are read as 0, as DAZ reads
 * them on the f16 route. */
#define FP8P_Q 0x1p96f
#define FP8P_QMAX 0x1p30f
#define FP8P_VSMAX 0x1p7f
#define FP8P_KSMAX 0x1p100f
AI float code_unit(lay L) { return L == L_FP8 ? 256.0f : L == L_FP8P ? 0x1p24f : L == L_I8 ? 0x1p-24f : 1.0f; }
AI float v_unit(lay L) { return L == L_FP8P ? 0x1p120f : code_unit(L); }
/* x, or 0 where x is subnormal (what DAZ reads) */
AI __m256 daz8(__m256 x) {
    return _mm256_and_ps(x, _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(FLT_MIN), _CMP_NLT_UQ));
}
AI float daz1(float x) { return fabsf(x) < FLT_MIN ? 0.0f : x; }

/* ---- widening: 8 values as fp32 ---- */
AI __m256 f16x8(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
AI __m256 bf16x8(const void *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
/* E4M3 s.eeee.mmm placed in an f16 as s.0eeee.mmm0000000 is value / 256 exactly, subnormal codes included
 * (the f16 widening is exact and gives fp32 normals, which the flushed MXCSR leaves alone) */
AI __m256 fp8x8(const void *p) {
    __m128i w = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)p));
    w = _mm_and_si128(_mm_slli_epi16(w, 7), _mm_set1_epi16((short)0xBF80));
    return _mm256_cvtph_ps(w);
}
/* E4M3 placed in an fp32 (sign-extend, shift by 20, keep sign and code bits): value · 2^-120 exactly, the
 * subnormal codes as fp32 subnormals. Only with DAZ off, on a core whose FMAs take subnormal inputs at
 * full rate (cb_attn_flash_avx2 decides). */
AI __m256 fp8p8(const void *p) {
    const __m256i v = _mm256_slli_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)), 20);
    return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0x87F00000u)));
}
/* byte i of each dword as a signed value · 2^24 (top byte of an int32: exact in fp32) */
AI __m256 i8lane(__m256i x, int i) {
    const __m256i hi = _mm256_set1_epi32((int)0xFF000000u);
    __m256i y;
    switch (i) {
    case 0: y = _mm256_slli_epi32(x, 24); break;
    case 1: y = _mm256_and_si256(_mm256_slli_epi32(x, 16), hi); break;
    case 2: y = _mm256_and_si256(_mm256_slli_epi32(x, 8), hi); break;
    default: y = _mm256_and_si256(x, hi); break;
    }
    return _mm256_cvtepi32_ps(y);
}

/* bytes of one K step (k_step dims of 16 keys) and of one V column vector (8 columns; int8: of 4 keys) */
AI size_t k_step_bytes(lay L) { return L == L_F32 || L == L_BF16 || L == L_I8 ? 64 : L == L_F16 ? 32 : 16; }
AI size_t v_vec_bytes(lay L) { return L == L_I8 ? 32 : 8 * el_size(L); }

/* Keys 8h..8h+7, dim dd of the K step at k (a full 16-key tile). */
AI __m256 kvec(lay L, const char *k, int dd, int h) {
    switch (L) {
    case L_F32: return _mm256_loadu_ps((const float *)k + 8 * h);
    case L_F16: return f16x8(k + 16 * h);
    case L_FP8: return fp8x8(k + 8 * h);
    case L_FP8P: return fp8p8(k + 8 * h);
    case L_BF16: { /* [16][2]: low halves dim 2s, high halves dim 2s+1 */
        __m256i x = _mm256_loadu_si256((const __m256i *)(k + 32 * h));
        return _mm256_castsi256_ps(dd ? _mm256_and_si256(x, _mm256_set1_epi32((int)0xFFFF0000u)) : _mm256_slli_epi32(x, 16));
    }
    default: /* [16][4] */
        return i8lane(_mm256_loadu_si256((const __m256i *)(k + 32 * h)), dd);
    }
}

/* 8 columns from v: of one V row (row-major layouts), or of key jj of an int8 position-quad. */
AI __m256 vvec(lay L, const char *v, int jj) {
    switch (L) {
    case L_F32: return _mm256_loadu_ps((const float *)v);
    case L_F16: return f16x8(v);
    case L_BF16: return bf16x8(v);
    case L_FP8: return fp8x8(v);
    case L_FP8P: return fp8p8(v);
    default: return i8lane(_mm256_loadu_si256((const __m256i *)v), jj);
    }
}

/* ---- reductions (the exp: vexp_avx2.h) ---- */
static inline float hmax8(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_max_ss(x, _mm_shuffle_ps(x, x, 1)));
}
static inline float hsum8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
}

/* ---- software prefetch, paced: `per` lines per inner step from p until end (per 0: none) ---- */
typedef struct {
    const char *p, *end;
    int per;
    bool l2;
} pfq;
AI void pf_step(pfq *f) {
    if (f->l2)
        for (int i = 0; i < f->per && f->p < f->end; i++, f->p += 64) _mm_prefetch(f->p, _MM_HINT_T1);
    else
        for (int i = 0; i < f->per && f->p < f->end; i++, f->p += 64) _mm_prefetch(f->p, _MM_HINT_T0);
}
static inline void pf_range(const void *p, size_t n, bool l2) {
    for (size_t o = 0; o < n; o += 64) {
        if (l2) _mm_prefetch((const char *)p + o, _MM_HINT_T1);
        else _mm_prefetch((const char *)p + o, _MM_HINT_T0);
    }
}

/* ---- S = Q·Kᵀ ---- */
/* An empty asm that "changes" p: loads through it after this are not merged with earlier ones (gcc
 * otherwise keeps every 32-byte K load of a step live across the step's dims and spills them). */
#define FRESH(p) __asm__("" : "+r"(p))
/* acc += v * the 8 floats at p, the load folded into the FMA (gcc otherwise loads into a register first) */
#define FMA_MEM(acc, v, p) __asm__("vfmadd231ps %2, %1, %0" : "+x"(acc) : "x"(v), "m"(*(const __m256 *)(p)))

/* S[r0 + i][16 (t0 + t) ..] for rows r0..r0+NR-1 and NT full tiles from t0 of the block at kt (tiles
 * tstride bytes apart); sc: the block's 64 key scales (8-bit), times unit. When the step's broadcasts of q
 * and the accumulators fit in 12 registers, each 32-byte load serves every dim it holds; else each dim
 * loads again (L1 hits). */
AI void qk(lay L, int r0, int NR, int t0, int NT, const float *Q, const float *QB, int hd, const char *kt,
           size_t tstride, const float *sc, float unit, float *S, pfq *pf) {
    __m256 a[4][4][2];
    const int sd = k_step(L);
    const bool once = NR * sd + 2 * NR * NT <= 12;
    const float *q = Q + (size_t)r0 * hd;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) a[i][t][0] = a[i][t][1] = _mm256_setzero_ps();
    pfq f = *pf; /* in registers for the loop */
    const char *k = kt + (size_t)t0 * tstride;
    for (int d = 0; d < hd; d += sd, k += k_step_bytes(L)) {
        pf_step(&f);
        if (once) {
            __m256 qb[4][4];
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
                for (int dd = 0; dd < sd; dd++) qb[i][dd] = _mm256_broadcast_ss(q + (size_t)i * hd + d + dd);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++)
#pragma GCC unroll 4
                    for (int dd = 0; dd < sd; dd++) {
                        const __m256 kv = kvec(L, k + t * tstride, dd, h);
#pragma GCC unroll 4
                        for (int i = 0; i < NR; i++) a[i][t][h] = _mm256_fmadd_ps(qb[i][dd], kv, a[i][t][h]);
                    }
            continue;
        }
        if (QB) { /* q pre-broadcast (see flash): each FMA reads it from L1, no register per row */
#pragma GCC unroll 4
            for (int dd = 0; dd < sd; dd++) {
                const char *kk = k;
                FRESH(kk);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
                    for (int h = 0; h < 2; h++) {
                        const __m256 kv = kvec(L, kk + t * tstride, dd, h);
                        const float *qp = QB + ((size_t)r0 * hd + d + dd) * 8;
                        FRESH(qp);
#pragma GCC unroll 4
                        for (int i = 0; i < NR; i++) FMA_MEM(a[i][t][h], kv, qp + (size_t)i * hd * 8);
                    }
            }
            continue;
        }
#pragma GCC unroll 4
        for (int dd = 0; dd < sd; dd++) {
            const char *kk = k;
            FRESH(kk);
            __m256 qb[4];
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) qb[i] = _mm256_broadcast_ss(q + (size_t)i * hd + d + dd);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    const __m256 kv = kvec(L, kk + t * tstride, dd, h);
#pragma GCC unroll 4
                    for (int i = 0; i < NR; i++) a[i][t][h] = _mm256_fmadd_ps(qb[i], kv, a[i][t][h]);
                }
        }
    }
    *pf = f;
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const int col = 16 * (t0 + t) + 8 * h;
            const __m256 sv = sc ? _mm256_loadu_ps(sc + col) : _mm256_set1_ps(1.0f);
            const __m256 f = sc ? _mm256_mul_ps(L == L_FP8P ? daz8(sv) : sv, _mm256_set1_ps(unit)) : sv;
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) _mm256_store_ps(S + (r0 + i) * CB_FLASH_BK + col, sc ? _mm256_mul_ps(a[i][t][h], f) : a[i][t][h]);
        }
}

/* Q·Kᵀ calls for a group of nr rows (1 x 4 tiles, 2 x 2, or nr x 1: 8 accumulators or fewer). */
static inline int qk_calls(int nr) { return nr == 1 ? 1 : nr == 2 ? 2 : 4; }
AI void qk_group(lay L, int r0, int nr, const float *Q, const float *QB, int hd, const char *kt, size_t tstride,
                 const float *sc, float unit, float *S, pfq *pf) {
    switch (nr) {
    case 1: qk(L, r0, 1, 0, 4, Q, QB, hd, kt, tstride, sc, unit, S, pf); break;
    case 2:
        for (int t = 0; t < 4; t += 2) qk(L, r0, 2, t, 2, Q, QB, hd, kt, tstride, sc, unit, S, pf);
        break;
    case 3:
        for (int t = 0; t < 4; t++) qk(L, r0, 3, t, 1, Q, QB, hd, kt, tstride, sc, unit, S, pf);
        break;
    default:
        for (int t = 0; t < 4; t++) qk(L, r0, 4, t, 1, Q, QB, hd, kt, tstride, sc, unit, S, pf);
    }
}

/* ---- online softmax ---- */
/* Every row's update over the block's S (P overwrites it; masked keys and keys past nb get 0); alpha[r]:
 * rescale of row r; w (8-bit caches): the keys' vs times the decode unit, folded into P after the sum. The
 * running sum stays an 8-lane vector per row for the whole call. */
static inline void softmax(int R, const int64_t *qpos, int64_t kb, int nb, float *S, const float *w, float *m,
                           __m256 *lsum, float *alpha) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int r = 0; r < R; r++) {
        const int64_t vis = CB_MIN((int64_t)nb, qpos[r] - kb + 1);
        float *s = S + r * CB_FLASH_BK;
        if (vis <= 0) {
            alpha[r] = 1.0f;
            for (int k = 0; k < CB_FLASH_BK; k += 8) _mm256_store_ps(s + k, _mm256_setzero_ps());
            continue;
        }
        __m256 x[8], mx = ninf;
        const __m256i vv = _mm256_set1_epi32((int)vis);
        for (int k = 0; k < 8; k++) {
            x[k] = _mm256_load_ps(s + 8 * k);
            if (vis < CB_FLASH_BK) /* masked keys -> -inf: out of the max, exp gives 0 */
                x[k] = _mm256_blendv_ps(ninf, x[k], _mm256_castsi256_ps(_mm256_cmpgt_epi32(vv, _mm256_add_epi32(idx, _mm256_set1_epi32(8 * k)))));
            mx = _mm256_max_ps(mx, x[k]);
        }
        const float m_new = fmaxf(m[r], hmax8(mx));
        const __m256 mb = _mm256_set1_ps(m_new);
        const __m256 av = cb_exp256(_mm256_sub_ps(_mm256_set1_ps(m[r]), mb));
        for (int k = 0; k < 8; k++) x[k] = cb_exp256(_mm256_sub_ps(x[k], mb));
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(x[0], x[1]), _mm256_add_ps(x[2], x[3])),
                                         _mm256_add_ps(_mm256_add_ps(x[4], x[5]), _mm256_add_ps(x[6], x[7])));
        lsum[r] = _mm256_fmadd_ps(lsum[r], av, sum);
        for (int k = 0; k < 8; k++) _mm256_store_ps(s + 8 * k, w ? _mm256_mul_ps(x[k], _mm256_loadu_ps(w + 8 * k)) : x[k]);
        m[r] = m_new;
        alpha[r] = _mm256_cvtss_f32(av);
    }
}

/* ---- O = O·α + P·V ---- */
/* O[r][c0 .. c0 + 8·NU) for rows r0..r0+NR-1 over nb keys (int8 quads: whole groups of 4, the weights
 * past nb being 0). */
AI void pv(lay L, int r0, int NR, int c0, int NU, int hd, int nb, const char *vb, const float *S,
           const float *alpha, float *O, pfq *pf) {
    __m256 b[4][8];
    const float *p = S + r0 * CB_FLASH_BK;
    float *o = O + (size_t)r0 * hd + c0;
    pfq f = *pf; /* in registers for the loop */
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        const __m256 ab = _mm256_set1_ps(alpha[r0 + i]);
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++) b[i][u] = _mm256_mul_ps(_mm256_loadu_ps(o + (size_t)i * hd + 8 * u), ab);
    }
    if (L == L_I8) { /* a group: 4 keys x hd columns, 32 bytes per 8 columns */
        const char *v = vb + (size_t)c0 * 4;
        for (int j = 0; j < nb; j += 4, v += (size_t)4 * hd, p += 4) {
            pf_step(&f);
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; jj++) {
                __m256 pb[4];
#pragma GCC unroll 4
                for (int i = 0; i < NR; i++) pb[i] = _mm256_broadcast_ss(p + i * CB_FLASH_BK + jj);
#pragma GCC unroll 8
                for (int u = 0; u < NU; u++) {
                    const __m256 x = vvec(L, v + 32 * u, jj);
#pragma GCC unroll 4
                    for (int i = 0; i < NR; i++) b[i][u] = _mm256_fmadd_ps(pb[i], x, b[i][u]);
                }
            }
        }
    } else {
        const size_t row = (size_t)hd * el_size(L);
        const char *v = vb + (size_t)c0 * el_size(L);
        for (int j = 0; j < nb; j++, v += row, p++) {
            pf_step(&f);
            __m256 pb[4];
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) pb[i] = _mm256_broadcast_ss(p + i * CB_FLASH_BK);
#pragma GCC unroll 8
            for (int u = 0; u < NU; u++) {
                const __m256 x = vvec(L, v + u * v_vec_bytes(L), 0);
#pragma GCC unroll 4
                for (int i = 0; i < NR; i++) b[i][u] = _mm256_fmadd_ps(pb[i], x, b[i][u]);
            }
        }
    }
    *pf = f;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++)
            _mm256_storeu_ps(o + (size_t)i * hd + 8 * u, b[i][u]);
}

/* P·V over a bf16 V, 16 columns per 32-byte load: the shift gives the even columns, the and the odd ones
 * (one instruction per 8 values instead of a widening and a shift), so within a pass O is held split
 * into even and odd columns. O[r][c0 .. c0 + 16·NU) for rows r0..r0+NR-1. */
AI void pv_bf16(int r0, int NR, int c0, int NU, int hd, int nb, const char *vb, const float *S, const float *alpha,
                float *O, pfq *pf) {
    __m256 be[4][4], bo[4][4];
    const __m256i hi = _mm256_set1_epi32((int)0xFFFF0000u);
    const float *p = S + r0 * CB_FLASH_BK;
    float *o = O + (size_t)r0 * hd + c0;
    pfq f = *pf; /* in registers for the loop */
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        const __m256 ab = _mm256_set1_ps(alpha[r0 + i]);
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) {
            const __m256 n0 = _mm256_loadu_ps(o + (size_t)i * hd + 16 * u), n1 = _mm256_loadu_ps(o + (size_t)i * hd + 16 * u + 8);
            /* [0 2 8 10 | 4 6 12 14] -> [0 2 4 6 8 10 12 14]; likewise the odd columns */
            be[i][u] = _mm256_mul_ps(_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(n0, n1, 0x88)), 0xD8)), ab);
            bo[i][u] = _mm256_mul_ps(_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(n0, n1, 0xDD)), 0xD8)), ab);
        }
    }
    const char *v = vb + (size_t)c0 * 2;
    for (int j = 0; j < nb; j++, v += (size_t)hd * 2, p++) {
        pf_step(&f);
        __m256 pb[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) pb[i] = _mm256_broadcast_ss(p + i * CB_FLASH_BK);
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(v + 32 * u));
            const __m256 e = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)), od = _mm256_castsi256_ps(_mm256_and_si256(x, hi));
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) be[i][u] = _mm256_fmadd_ps(pb[i], e, be[i][u]), bo[i][u] = _mm256_fmadd_ps(pb[i], od, bo[i][u]);
        }
    }
    *pf = f;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) {
            const __m256 lo = _mm256_unpacklo_ps(be[i][u], bo[i][u]), up = _mm256_unpackhi_ps(be[i][u], bo[i][u]);
            _mm256_storeu_ps(o + (size_t)i * hd + 16 * u, _mm256_permute2f128_ps(lo, up, 0x20));
            _mm256_storeu_ps(o + (size_t)i * hd + 16 * u + 8, _mm256_permute2f128_ps(lo, up, 0x31));
        }
}

/* the widest register block for nr rows and nv column vectors left: 8 / 4 / 3 / 2 vectors (12 or fewer
 * accumulators plus the weights' broadcasts), then powers of two */
static inline int pv_width(int nr, int nv) {
    const int mx = nr == 1 ? 8 : nr == 2 ? 4 : nr == 3 ? 3 : 2;
    if (nv >= mx) return mx;
    return nv >= 4 ? 4 : nv >= 2 ? 2 : 1;
}
/* bf16: 16-column units (2 accumulators each): 4 / 2 / 1 / 1 per pass for 1 / 2 / 3 / 4 rows */
static inline int pv_bf16_width(int nr, int nu) {
    const int mx = nr == 1 ? 4 : nr == 2 ? 2 : 1;
    return nu >= mx ? mx : nu >= 2 ? 2 : 1;
}
AI int pv_calls(lay L, int nr, int nv) {
    int n = 0;
    if (L == L_BF16) {
        for (int c = 0; c < nv / 2; c += pv_bf16_width(nr, nv / 2 - c)) n++;
        return n + nv % 2;
    }
    for (int c = 0; c < nv; c += pv_width(nr, nv - c)) n++;
    return n;
}
AI void pv_group(lay L, int r0, int nr, int hd, int nb, const char *vb, const float *S, const float *alpha, float *O,
                 pfq *pf) {
    int c = 0;
    const int nv = hd / 8;
    if (L == L_BF16) {
        for (; c + 2 <= nv;) {
            const int nu = pv_bf16_width(nr, (nv - c) / 2);
#define PVB(NR, NU) pv_bf16(r0, NR, 8 * c, NU, hd, nb, vb, S, alpha, O, pf)
            switch (nr * 16 + nu) {
            case 0x14: PVB(1, 4); break;
            case 0x12: PVB(1, 2); break;
            case 0x11: PVB(1, 1); break;
            case 0x22: PVB(2, 2); break;
            case 0x21: PVB(2, 1); break;
            case 0x31: PVB(3, 1); break;
            default: PVB(4, 1); break;
            }
#undef PVB
            c += 2 * nu;
        }
    }
    for (; c < nv;) {
        const int nu = pv_width(nr, nv - c);
#define PV(NR, NU) pv(L, r0, NR, 8 * c, NU, hd, nb, vb, S, alpha, O, pf)
        switch (nr * 16 + nu) {
        case 0x18: PV(1, 8); break;
        case 0x14: PV(1, 4); break;
        case 0x12: PV(1, 2); break;
        case 0x11: PV(1, 1); break;
        case 0x24: PV(2, 4); break;
        case 0x22: PV(2, 2); break;
        case 0x21: PV(2, 1); break;
        case 0x33: PV(3, 3); break;
        case 0x32: PV(3, 2); break;
        case 0x31: PV(3, 1); break;
        case 0x42: PV(4, 2); break;
        default: PV(4, 1); break;
        }
#undef PV
        c += nu;
    }
}

/* One out-of-line copy of the row-group loops per layout: inlined into the block loop, gcc's register
 * allocation of the whole function spilled the hot loops' pointers and loads. */
#define GROUPS(LL, name)                                                                                           \
    static __attribute__((noinline)) void qk_group_##name(int r0, int nr, const float *Q, const float *QB, int hd, \
                                                          const char *kt, size_t tstride, const float *sc, float *S, \
                                                          pfq *pf) {                                                 \
        qk_group(LL, r0, nr, Q, QB, hd, kt, tstride, sc, code_unit(LL), S, pf);                                   \
    }                                                                                                              \
    static __attribute__((noinline)) void pv_group_##name(int r0, int nr, int hd, int nb, const char *vb,         \
                                                          const float *S, const float *alpha, float *O, pfq *pf) { \
        pv_group(LL, r0, nr, hd, nb, vb, S, alpha, O, pf);                                                        \
    }
GROUPS(L_F32, f32)
GROUPS(L_F16, f16)
GROUPS(L_BF16, bf16)
GROUPS(L_FP8, fp8)
GROUPS(L_FP8P, fp8p)
GROUPS(L_I8, i8)
#undef GROUPS

AI void qk_rows(lay L, int r0, int nr, const float *Q, const float *QB, int hd, const char *kt, size_t tstride,
                const float *sc, float *S, pfq *pf) {
    switch (L) {
    case L_F32: qk_group_f32(r0, nr, Q, QB, hd, kt, tstride, sc, S, pf); break;
    case L_F16: qk_group_f16(r0, nr, Q, QB, hd, kt, tstride, sc, S, pf); break;
    case L_BF16: qk_group_bf16(r0, nr, Q, QB, hd, kt, tstride, sc, S, pf); break;
    case L_FP8: qk_group_fp8(r0, nr, Q, QB, hd, kt, tstride, sc, S, pf); break;
    case L_FP8P: qk_group_fp8p(r0, nr, Q, QB, hd, kt, tstride, sc, S, pf); break;
    default: qk_group_i8(r0, nr, Q, QB, hd, kt, tstride, sc, S, pf); break;
    }
}
AI void pv_rows(lay L, int r0, int nr, int hd, int nb, const char *vb, const float *S, const float *alpha, float *O,
                pfq *pf) {
    switch (L) {
    case L_F32: pv_group_f32(r0, nr, hd, nb, vb, S, alpha, O, pf); break;
    case L_F16: pv_group_f16(r0, nr, hd, nb, vb, S, alpha, O, pf); break;
    case L_BF16: pv_group_bf16(r0, nr, hd, nb, vb, S, alpha, O, pf); break;
    case L_FP8: pv_group_fp8(r0, nr, hd, nb, vb, S, alpha, O, pf); break;
    case L_FP8P: pv_group_fp8p(r0, nr, hd, nb, vb, S, alpha, O, pf); break;
    default: pv_group_i8(r0, nr, hd, nb, vb, S, alpha, O, pf); break;
    }
}

/* ---- one block ---- */
/* Keys [kb, kb + nb) whose 4 tiles are full in memory at kt (tstride bytes apart), V at vb; ks / vs: the
 * block's 64 scales of an 8-bit cache (NULL otherwise); QB: Q pre-broadcast (flash) or NULL. pfv / pfk: the data to request meanwhile,
 * pfv_bytes during Q·Kᵀ and pfk_bytes during P·V (0: none). */
AI void block(lay L, int R, const float *Q, const float *QB, const int64_t *qpos, int hd, int64_t kb, int nb,
              const char *kt, size_t tstride, const char *vb, const float *ks, const float *vs, float *S, float *m,
              __m256 *lsum, float *alpha, float *O, const char *pfk, size_t pfk_bytes, const char *pfv,
              size_t pfv_bytes, bool l2) {
    const int sd = k_step(L), nv = hd / 8;
    int nqk = 0, npv = 0;
    for (int r0 = 0; r0 < R; r0 += 4) nqk += qk_calls(CB_MIN(4, R - r0)), npv += pv_calls(L, CB_MIN(4, R - r0), nv);
    const int nj = L == L_I8 ? (nb + 3) / 4 : nb; /* P·V steps per pass */
    pfq fv = { pfv, pfv + pfv_bytes, 0, l2 }, fk = { pfk, pfk + pfk_bytes, 0, l2 };
    if (pfv_bytes) fv.per = (int)((pfv_bytes / 64 + (size_t)nqk * (hd / sd) - 1) / ((size_t)nqk * (hd / sd)));
    if (pfk_bytes) fk.per = (int)((pfk_bytes / 64 + (size_t)npv * nj - 1) / ((size_t)npv * nj));
    for (int r0 = 0; r0 < R; r0 += 4) qk_rows(L, r0, CB_MIN(4, R - r0), Q, QB, hd, kt, tstride, ks, S, &fv);
    float w[CB_FLASH_BK] __attribute__((aligned(32)));
    if (vs)
        for (int j = 0; j < CB_FLASH_BK; j++) w[j] = j < nb ? (L == L_FP8P ? daz1(vs[j]) : vs[j]) * v_unit(L) : 0.0f;
    softmax(R, qpos, kb, nb, S, vs ? w : NULL, m, lsum, alpha);
    for (int r0 = 0; r0 < R; r0 += 4) pv_rows(L, r0, CB_MIN(4, R - r0), hd, nb, vb, S, alpha, O, &fk);
}

/* A widened block (fp32 tiles and rows, scales applied) or an f32 cache read in place: one copy of the
 * f32 loops for every dtype. */
static __attribute__((noinline)) void block_f32(int R, const float *Q, const int64_t *qpos, int hd, int64_t kb,
                                                int nb, const char *kt, size_t tstride, const char *vb, float *S,
                                                float *m, __m256 *lsum, float *alpha, float *O) {
    block(L_F32, R, Q, NULL, qpos, hd, kb, nb, kt, tstride, vb, NULL, NULL, S, m, lsum, alpha, O, kt, 0, vb, 0, false);
}

/* One element of the cache as the portable kernel reads it (narrow tiles and groups). */
static float elem(const cb_kv_view *kv, const void *base, int64_t off, const float *sc, int64_t pos) {
    switch (kv->dtype) {
    case CB_F8_E4M3:
    case CB_I8: return sc[pos] * cb_kv8_code_value(((const uint8_t *)base)[off], kv->dtype);
    case CB_BF16: return cb_bf16_to_f32(((const uint16_t *)base)[off]);
    case CB_F16: return cb_f16_to_f32(((const uint16_t *)base)[off]);
    default: return ((const float *)base)[off];
    }
}

/* Keys [kb, kb + nb) as an f32 cache of capacity 64: Kf [4][hd][16] (missing tiles zero), Vf [64][hd];
 * 8-bit values are scale · value, as the portable kernel forms them. */
AI void widen(lay L, const cb_kv_view *kv, int64_t kb, int nb, float *Kf, float *Vf) {
    const int hd = kv->hd, sd = k_step(L), nt = (nb + 15) / 16;
    const size_t es = el_size(L);
    const bool q8 = L == L_FP8 || L == L_I8;
    for (int t = 0; t < 4; t++) {
        float *kf = Kf + (size_t)t * hd * 16;
        const int64_t p0 = kb + 16 * t, w = CB_MIN((int64_t)16, kv->cap - p0);
        if (t >= nt) {
            for (int i = 0; i < hd * 16; i += 8) _mm256_store_ps(kf + i, _mm256_setzero_ps());
        } else if (w == 16) {
            const char *tb = (const char *)kv->k + (size_t)cb_kv_k_offset(p0, 0, hd, kv->cap, kv->dtype) * es;
            __m256 f[2] = { _mm256_set1_ps(1.0f), _mm256_set1_ps(1.0f) };
            if (q8)
                for (int h = 0; h < 2; h++) f[h] = _mm256_mul_ps(_mm256_loadu_ps(kv->ks + p0 + 8 * h), _mm256_set1_ps(code_unit(L)));
            for (int s = 0; s < hd / sd; s++)
#pragma GCC unroll 4
                for (int dd = 0; dd < sd; dd++)
                    for (int h = 0; h < 2; h++)
                        {
                        const __m256 x = kvec(L, tb + s * k_step_bytes(L), dd, h);
                        _mm256_store_ps(kf + (s * sd + dd) * 16 + 8 * h, q8 ? _mm256_mul_ps(x, f[h]) : x);
                    }
        } else
            for (int d = 0; d < hd; d++)
                for (int j = 0; j < 16; j++)
                    kf[d * 16 + j] = j < w ? elem(kv, kv->k, cb_kv_k_offset(p0 + j, d, hd, kv->cap, kv->dtype), kv->ks, p0 + j) : 0.0f;
    }
    const char *vb = (const char *)kv->v + (size_t)kb * hd * es;
    for (int j = 0; j < nb; j++) {
        float *vf = Vf + (size_t)j * hd;
        if (L == L_I8 && ((kb + j) | 3) >= kv->cap) { /* a narrow last group */
            for (int c = 0; c < hd; c++) vf[c] = elem(kv, kv->v, cb_kv_v_offset(kb + j, c, hd, kv->cap, kv->dtype), kv->vs, kb + j);
            continue;
        }
        const __m256 f = _mm256_set1_ps(q8 ? kv->vs[kb + j] * code_unit(L) : 1.0f);
        const char *v = L == L_I8 ? vb + (size_t)(j >> 2) * 4 * hd : vb + (size_t)j * hd * es;
        for (int c = 0; c < hd; c += 8) {
            const __m256 x = vvec(L, v + (size_t)c / 8 * v_vec_bytes(L), j & 3);
            _mm256_store_ps(vf + c, q8 ? _mm256_mul_ps(x, f) : x);
        }
    }
}

/* ---- int8 cache in fast mode: 16-bit integer dot products (vpmaddwd) ----
 * Without VNNI, the fp32 loop above widens every code (shift, and, convert) and spends one FMA per 8
 * products. Fast mode instead holds each query row as 16-bit fixed point, Qi = rne(q · 32512 / max|q|) (the
 * VNNI fast loop's Qi, so a score here is the VNNI fast score bit for bit), and each block's softmax
 * weights (times the V scales) as 15-bit fixed point, Pi = rne(e·vs·32767 / max vs) <= 32767 (e <= 1). A code
 * needs no conversion: in a 16-bit lane (x << 8) >> 8 is its low byte and x >> 8 its high byte, sign-
 * extended, so a 32-byte load gives 16 even and 16 odd bytes in two instructions, and one vpmaddwd adds 16
 * products of two pairs into 8 int32 lanes, exactly (|Σ| < 2^31 for hd <= 256). Of a K tile's 4-byte group
 * (dims 4c..4c+3 of one key) the even bytes are dims 4c and 4c+2, the odd ones 4c+1 and 4c+3, so the two
 * vpmaddwd against (Qi_4c, Qi_4c+2) and (Qi_4c+1, Qi_4c+3) sum one key's 4 dims per lane, keys in order;
 * of a V position-quad (4 keys of one column) they are keys 0, 2 and 1, 3 against the weights' pairs.
 * docs/quantization.md, "int8 KV in fast mode". */
#define I8F_QMAX 32512.0f
#define I8F_PMAX 32767.0f
typedef struct {
    /* per quad c of dims (group g of keys): [4c] the pair (Qi_4c, Qi_4c+2), [4c+1] (Qi_4c+1, Qi_4c+3), two
     * dwords unused (pairs16's layout, stored whole); the products broadcast each pair from here */
    int32_t q[DIRECT_MAX_ROWS][CB_FLASH_MAX_HD] __attribute__((aligned(32)));
    int32_t p[DIRECT_MAX_ROWS][CB_FLASH_BK] __attribute__((aligned(32)));
    float qinv[DIRECT_MAX_ROWS]; /* max|q| / 32512 */
    float punit[DIRECT_MAX_ROWS]; /* a weight is punit · Pi */
} i8f_state;

AI __m256i even16(__m256i x) { return _mm256_srai_epi16(_mm256_slli_epi16(x, 8), 8); }
AI __m256i odd16(__m256i x) { return _mm256_srai_epi16(x, 8); }
/* acc + the 16-bit pair products of the even codes e with the pairs at pe and of the odd codes o with po */
AI __m256i madd_even_odd(__m256i acc, __m256i e, __m256i o, const int32_t *pe, const int32_t *po) {
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(e, _mm256_set1_epi32(*pe)),
                                                  _mm256_madd_epi16(o, _mm256_set1_epi32(*po))));
}

/* Per 128-bit lane of 4 int32 (dims or keys 0..3): words 0, 2, 1, 3 -> dword 0 the even pair, 1 the odd. */
AI __m256i pairs16(__m256i x) {
    return _mm256_shuffle_epi8(x, _mm256_setr_epi8(0, 1, 8, 9, 4, 5, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                                   0, 1, 8, 9, 4, 5, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1));
}

/* false when a row is not finite (the fp32 loop then runs, and propagates it) */
static bool i8f_quantize_q(int R, const float *Q, int hd, i8f_state *st) {
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
    for (int r = 0; r < R; r++) {
        const float *q = Q + (size_t)r * hd;
        __m256 mx = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
        for (int d = 0; d < hd; d += 8) {
            const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(q + d));
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, big, _CMP_NLE_UQ)); /* inf or nan */
            mx = _mm256_max_ps(mx, a);
        }
        if (_mm256_movemask_ps(bad)) return false;
        const float amax = hmax8(mx);
        const __m256 G = _mm256_set1_ps(amax > 0.0f ? I8F_QMAX / amax : 0.0f);
        st->qinv[r] = amax > 0.0f ? amax / I8F_QMAX : 0.0f;
        for (int d = 0; d < hd; d += 8) /* rne, as the VNNI loop's cvtps2dq */
            _mm256_store_si256((__m256i *)&st->q[r][d], pairs16(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(q + d), G))));
    }
    return true;
}

/* The one integer loop of both products: a[i][u] += the pair products of the codes of unit u0 + u at step t
 * (32 bytes at base + (uu >> 1)·T + 32·(uu & 1) + t·step) with row i's pairs at pe/po + i·rs + 4t (broadcast), for n
 * steps (Q·Kᵀ: units are 8-key halves of the K tiles, T the tile stride, a step 4 dims; P·V: units are
 * 8 columns, T = 64, a step one group of 4 keys). */
AI void madd_units(int NR, int NU, int u0, int n, const char *base, size_t T, size_t step, const int32_t *pe,
                   const int32_t *po, size_t rs, __m256i a[4][8], pfq *pf) {
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++) a[i][u] = _mm256_setzero_si256();
    pfq f = *pf;
    for (int t = 0; t < n; t++, base += step, pe += 4, po += 4) {
        pf_step(&f);
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++) {
            const int uu = u0 + u;
            const __m256i x = _mm256_loadu_si256((const __m256i *)(base + (size_t)(uu >> 1) * T + 32 * (uu & 1)));
            const __m256i e = even16(x), o = odd16(x);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) a[i][u] = madd_even_odd(a[i][u], e, o, pe + i * rs, po + i * rs);
        }
    }
    *pf = f;
}

/* S[r][8 (u0 + u) ..] for NR rows from r0 and NU 8-key units from u0 (unit u: keys 8u..8u+7, half a tile) */
AI void qk_i8f(int r0, int NR, int u0, int NU, int hd, const char *kt, size_t tstride, const float *ks,
               const i8f_state *st, float *S, pfq *pf) {
    __m256i a[4][8];
    madd_units(NR, NU, u0, hd / 4, kt, tstride, 64, st->q[r0], st->q[r0] + 1, CB_FLASH_MAX_HD, a, pf);
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        const __m256 qinv = _mm256_set1_ps(st->qinv[r0 + i]);
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++) {
            const int col = 8 * (u0 + u);
            _mm256_store_ps(S + (r0 + i) * CB_FLASH_BK + col,
                            _mm256_mul_ps(_mm256_cvtepi32_ps(a[i][u]), _mm256_mul_ps(qinv, _mm256_loadu_ps(ks + col))));
        }
    }
}

/* The online-softmax step fused with the weights' quantisation (as the VNNI loop's): p_j = c · e_j with
 * e_j = exp(s_j − bmax) <= 1 and c = exp(bmax − m_new), so Pi_j = rne(e_j · vs_j · PMAX / max vs) <= PMAX
 * needs no second pass; weight = punit · Pi, punit = c · max vs / PMAX; l sums the unrounded c · e_j. */
static inline void softmax_i8f(int R, const int64_t *qpos, int64_t kb, int nb, const float *S, const float *vs,
                               float *m, __m256 *lsum, float *alpha, i8f_state *st) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 vm = _mm256_setzero_ps(); /* the largest V scale of the visible keys (scales are > 0 or 0) */
    for (int k = 0; k < 8; k++) {
        const __m256 x = _mm256_loadu_ps(vs + 8 * k);
        vm = _mm256_max_ps(vm, nb < CB_FLASH_BK ? _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nb), _mm256_add_epi32(idx, _mm256_set1_epi32(8 * k))))) : x);
    }
    const float vmax = hmax8(vm);
    const __m256 wf = _mm256_set1_ps(vmax > 0.0f ? I8F_PMAX / vmax : 0.0f);
    for (int r = 0; r < R; r++) {
        const int64_t vis = CB_MIN((int64_t)nb, qpos[r] - kb + 1);
        if (vis <= 0) {
            alpha[r] = 1.0f, st->punit[r] = 0.0f;
            memset(st->p[r], 0, sizeof st->p[r]);
            continue;
        }
        const float *s = S + r * CB_FLASH_BK;
        __m256 x[8], mx = ninf;
        const __m256i vv = _mm256_set1_epi32((int)vis);
        for (int k = 0; k < 8; k++) {
            x[k] = _mm256_load_ps(s + 8 * k);
            if (vis < CB_FLASH_BK)
                x[k] = _mm256_blendv_ps(ninf, x[k], _mm256_castsi256_ps(_mm256_cmpgt_epi32(vv, _mm256_add_epi32(idx, _mm256_set1_epi32(8 * k)))));
            mx = _mm256_max_ps(mx, x[k]);
        }
        const float bmax = hmax8(mx), m_new = fmaxf(m[r], bmax);
        /* lane 0: alpha = exp(m_old − m_new), lane 1: c = exp(bmax − m_new) */
        const __m256 ac = cb_exp256(_mm256_sub_ps(_mm256_setr_ps(m[r], bmax, 0, 0, 0, 0, 0, 0), _mm256_set1_ps(m_new)));
        const float a = _mm256_cvtss_f32(ac), cc = _mm256_cvtss_f32(_mm256_permutevar8x32_ps(ac, _mm256_set1_epi32(1)));
        const __m256 bb = _mm256_set1_ps(bmax);
        __m256 sum = _mm256_setzero_ps();
        for (int k = 0; k < 8; k++) {
            const __m256 e = cb_exp256(_mm256_sub_ps(x[k], bb));
            sum = _mm256_add_ps(sum, e);
            __m256 v = _mm256_loadu_ps(vs + 8 * k); /* past nb: 0 (e is 0 there too) */
            if (nb < CB_FLASH_BK) v = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nb), _mm256_add_epi32(idx, _mm256_set1_epi32(8 * k)))));
            const __m256i pi = _mm256_cvtps_epi32(_mm256_mul_ps(e, _mm256_mul_ps(v, wf)));
            _mm256_store_si256((__m256i *)&st->p[r][8 * k], pairs16(_mm256_min_epi32(pi, _mm256_set1_epi32((int)I8F_PMAX))));
        }
        lsum[r] = _mm256_fmadd_ps(lsum[r], _mm256_set1_ps(a), _mm256_mul_ps(sum, _mm256_set1_ps(cc)));
        st->punit[r] = vmax > 0.0f ? cc * (vmax / I8F_PMAX) : 0.0f;
        m[r] = m_new, alpha[r] = a;
    }
}

/* O[r][c0 .. c0 + 8·NU) = O·alpha + Σ_j w_j·V[j] for NR rows from r0 over the block's 16 groups */
AI void pv_i8f(int r0, int NR, int c0, int NU, int hd, const char *vb, const i8f_state *st, const float *alpha,
               float *O, pfq *pf) {
    __m256i a[4][8];
    madd_units(NR, NU, 0, CB_FLASH_BK / 4, vb + (size_t)c0 * 4, 64, (size_t)4 * hd, st->p[r0], st->p[r0] + 1, CB_FLASH_BK, a, pf);
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        const __m256 al = _mm256_set1_ps(alpha[r0 + i]), pu = _mm256_set1_ps(st->punit[r0 + i]);
        float *o = O + (size_t)(r0 + i) * hd + c0;
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++)
            _mm256_storeu_ps(o + 8 * u, _mm256_fmadd_ps(_mm256_loadu_ps(o + 8 * u), al, _mm256_mul_ps(_mm256_cvtepi32_ps(a[i][u]), pu)));
    }
}

/* Register blocks (rows x 8-key or 8-column units; powers of two): Q·Kᵀ 1 x 8, 2 x 4, 3 or 4 x 2 (8 int32
 * accumulators or fewer); P·V likewise. Rows go in groups of I8F_ROWS. */
#ifndef I8F_ROWS
#define I8F_ROWS 4
#endif
#ifndef I8F_QK_W
#define I8F_QK_W 8, 4, 2, 2
#endif
#ifndef I8F_PV_W
#define I8F_PV_W 8, 4, 2, 2
#endif
static const int i8f_qk_w[4] = { I8F_QK_W }, i8f_pv_w[4] = { I8F_PV_W };
AI int i8f_qk_width(int nr) { return i8f_qk_w[nr - 1]; }
AI int i8f_pv_width(int nr) { return i8f_pv_w[nr - 1]; }
static __attribute__((noinline)) void qk_rows_i8f(int r0, int nr, int hd, const char *kt, size_t tstride,
                                                  const float *ks, const i8f_state *st, float *S, pfq *pf) {
    const int w = i8f_qk_width(nr);
    for (int u0 = 0; u0 < 8; u0 += w) {
#define QKF(NR)                                                                                                    \
    switch (w) {                                                                                                   \
    case 8: qk_i8f(r0, NR, u0, 8, hd, kt, tstride, ks, st, S, pf); break;                                          \
    case 4: qk_i8f(r0, NR, u0, 4, hd, kt, tstride, ks, st, S, pf); break;                                          \
    case 2: qk_i8f(r0, NR, u0, 2, hd, kt, tstride, ks, st, S, pf); break;                                          \
    default: qk_i8f(r0, NR, u0, 1, hd, kt, tstride, ks, st, S, pf); break;                                         \
    }
        switch (nr) {
        case 1: QKF(1); break;
        case 2: QKF(2); break;
        case 3: QKF(3); break;
        default: QKF(4); break;
        }
#undef QKF
    }
}
static __attribute__((noinline)) void pv_rows_i8f(int r0, int nr, int hd, const char *vb, const i8f_state *st,
                                                  const float *alpha, float *O, pfq *pf) {
    const int nv = hd / 8;
    for (int c = 0; c < nv;) {
        int nu = i8f_pv_width(nr);
        while (nu > nv - c) nu /= 2;
#define PVF(NR, NU) pv_i8f(r0, NR, 8 * c, NU, hd, vb, st, alpha, O, pf)
#define PVN(NR)                                                                                                    \
    switch (nu) {                                                                                                  \
    case 8: PVF(NR, 8); break;                                                                                     \
    case 4: PVF(NR, 4); break;                                                                                     \
    case 2: PVF(NR, 2); break;                                                                                     \
    default: PVF(NR, 1); break;                                                                                    \
    }
        switch (nr) {
        case 1: PVN(1); break;
        case 2: PVN(2); break;
        case 3: PVN(3); break;
        default: PVN(4); break;
        }
#undef PVN
#undef PVF
        c += nu;
    }
}
AI int pv_calls_i8f(int nr, int nv) {
    int n = 0;
    for (int c = 0; c < nv; n++) {
        int nu = i8f_pv_width(nr);
        while (nu > nv - c) nu /= 2;
        c += nu;
    }
    return n;
}

/* One block of an int8 cache in fast mode (full tiles at kt, nb keys visible); prefetch as block(). */
static void block_i8f(int R, const int64_t *qpos, int hd, int64_t kb, int nb, const char *kt, size_t tstride,
                      const char *vb, const float *ks, const float *vs, i8f_state *st, float *S, float *m,
                      __m256 *lsum, float *alpha, float *O, const char *pfk, size_t pfk_bytes, const char *pfv,
                      size_t pfv_bytes, bool l2) {
    int nqk = 0, npv = 0;
    for (int r0 = 0; r0 < R; r0 += I8F_ROWS) {
        const int nr = CB_MIN(I8F_ROWS, R - r0);
        nqk += 8 / i8f_qk_width(nr), npv += pv_calls_i8f(nr, hd / 8);
    }
    pfq fv = { pfv, pfv + pfv_bytes, 0, l2 }, fk = { pfk, pfk + pfk_bytes, 0, l2 };
    if (pfv_bytes) fv.per = (int)((pfv_bytes / 64 + (size_t)nqk * (hd / 4) - 1) / ((size_t)nqk * (hd / 4)));
    if (pfk_bytes) fk.per = (int)((pfk_bytes / 64 + (size_t)npv * (CB_FLASH_BK / 4) - 1) / ((size_t)npv * (CB_FLASH_BK / 4)));
    for (int r0 = 0; r0 < R; r0 += I8F_ROWS) qk_rows_i8f(r0, CB_MIN(I8F_ROWS, R - r0), hd, kt, tstride, ks, st, S, &fv);
    softmax_i8f(R, qpos, kb, nb, S, vs, m, lsum, alpha, st);
    for (int r0 = 0; r0 < R; r0 += I8F_ROWS) pv_rows_i8f(r0, CB_MIN(I8F_ROWS, R - r0), hd, vb, st, alpha, O, &fk);
}

/* Whether the n scales at x are all below lim (NaN: no). */
static inline bool all_below(const float *x, int n, float lim) {
    bool ok = true;
    for (int j = 0; j < n; j++) ok &= x[j] < lim;
    return ok;
}

AI void flash(lay L, int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
              float *m, float *l, float *O, bool fast) {
    const int hd = kv->hd;
    const size_t es = el_size(L), tstride = (size_t)16 * hd * es, bytes = (size_t)CB_FLASH_BK * hd * es;
    const int64_t full_end = kv->cap & ~(int64_t)15; /* tiles before this are 16 wide */
    const bool q8 = L == L_FP8 || L == L_FP8P || L == L_I8;
    const bool direct = R <= DIRECT_MAX_ROWS || L == L_F32;
    const bool l2 = direct && cb_kernels_prefetch_l2(NULL);
    float S[CB_FLASH_MAX_ROWS * CB_FLASH_BK] __attribute__((aligned(32)));
    float alpha[CB_FLASH_MAX_ROWS];
    __m256 lsum[CB_FLASH_MAX_ROWS];
    for (int r = 0; r < R; r++) lsum[r] = _mm256_setr_ps(l[r], 0, 0, 0, 0, 0, 0, 0);
    /* int8 from 2 rows: Q broadcast once per call, [R][hd][8], read by memory-operand FMAs (qk): with a step's
     * 4 dims, the broadcasts, the accumulators and the mask gcc spilled an accumulator, whose store and reload
     * lengthened its FMA chain (Q·Kᵀ 16.4 -> 13.0 ns per key at 4 rows in L2 on Zen 3, the same bits) */
    float QBb[DIRECT_MAX_ROWS * CB_FLASH_MAX_HD * 8] __attribute__((aligned(32)));
    const float *QB = NULL;
    float Qp[DIRECT_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(32))); /* placed fp8: Q · 2^96 */
    if (L == L_FP8P)
        for (int i = 0; i < R * hd; i++) Qp[i] = daz1(Q[i]) * FP8P_Q;
    /* int8 in fast mode: the 16-bit integer loop (i8f_state) for decode row counts and finite rows */
    static _Thread_local i8f_state st; /* 40 KiB, one per thread, not in this frame */
    const bool i8f = L == L_I8 && fast && R <= DIRECT_MAX_ROWS && i8f_quantize_q(R, Q, hd, &st);
    if (direct && L == L_I8 && R >= 2 && !i8f) {
        for (int i = 0; i < R * hd; i++) _mm256_store_ps(QBb + (size_t)i * 8, _mm256_set1_ps(Q[i]));
        QB = QBb;
    }
    for (int64_t kb = k0; kb < k1; kb += CB_FLASH_BK) {
        const int nb = (int)CB_MIN((int64_t)CB_FLASH_BK, k1 - kb);
        bool any = false; /* rows that see at least one key of this block */
        for (int r = 0; r < R; r++) any |= qpos[r] >= kb;
        if (!any) continue;
        if (direct && kb + CB_FLASH_BK <= full_end) {
            const char *kt = (const char *)kv->k + (size_t)cb_kv_k_offset(kb, 0, hd, kv->cap, kv->dtype) * es;
            const char *vb = (const char *)kv->v + (size_t)kb * hd * es;
            const float *ks = q8 ? kv->ks + kb : NULL, *vs = q8 ? kv->vs + kb : NULL;
            if (L == L_F32) {
                block_f32(R, Q, qpos, hd, kb, nb, kt, tstride, vb, S, m, lsum, alpha, O);
                continue;
            }
            /* The block PF_AHEAD ahead is requested evenly over this block's arithmetic (V during Q·Kᵀ,
             * K during P·V): a burst stalls the core on full miss queues (a burst of two blocks at every
             * call's entry cost a quarter of the time). At entry only the blocks between this one (left to
             * demand misses) and that one. Prefetches past k1 or the cache end never fault. */
            if (kb == k0 && PF_AHEAD > 1) {
                pf_range(kt + bytes, (PF_AHEAD - 1) * bytes, l2), pf_range(vb + bytes, (PF_AHEAD - 1) * bytes, l2);
                if (q8) pf_range(ks, PF_AHEAD * CB_FLASH_BK * sizeof(float), l2), pf_range(vs, PF_AHEAD * CB_FLASH_BK * sizeof(float), l2);
            }
            if (q8 && PF_AHEAD) pf_range(ks + PF_AHEAD * CB_FLASH_BK, CB_FLASH_BK * sizeof(float), l2), pf_range(vs + PF_AHEAD * CB_FLASH_BK, CB_FLASH_BK * sizeof(float), l2);
            if (i8f && all_below(vs, nb, FLT_MAX)) /* a NaN or inf V scale: the fp32 loop propagates it */
                block_i8f(R, qpos, hd, kb, nb, kt, tstride, vb, ks, vs, &st, S, m, lsum, alpha, O, kt + PF_AHEAD * bytes,
                          PF_AHEAD ? bytes : 0, vb + PF_AHEAD * bytes, PF_AHEAD ? bytes : 0, l2);
            else if (L == L_FP8P && !(all_below(vs, nb, FP8P_VSMAX) && all_below(ks, nb, FP8P_KSMAX)))
                block(L_FP8, R, Q, QB, qpos, hd, kb, nb, kt, tstride, vb, ks, vs, S, m, lsum, alpha, O, kt + PF_AHEAD * bytes,
                      PF_AHEAD ? bytes : 0, vb + PF_AHEAD * bytes, PF_AHEAD ? bytes : 0, l2);
            else
                block(L, R, L == L_FP8P ? Qp : Q, QB, qpos, hd, kb, nb, kt, tstride, vb, ks, vs, S, m, lsum, alpha, O, kt + PF_AHEAD * bytes,
                      PF_AHEAD ? bytes : 0, vb + PF_AHEAD * bytes, PF_AHEAD ? bytes : 0, l2);
            continue;
        }
        float Kf[4 * CB_FLASH_MAX_HD * 16] __attribute__((aligned(32)));
        float Vf[CB_FLASH_BK * CB_FLASH_MAX_HD] __attribute__((aligned(32)));
        widen(L == L_FP8P ? L_FP8 : L, kv, kb, nb, Kf, Vf); /* the same values through f16 */
        block_f32(R, Q, qpos, hd, kb, nb, (const char *)Kf, (size_t)16 * hd * sizeof(float), (const char *)Vf, S, m, lsum, alpha, O);
    }
    for (int r = 0; r < R; r++) l[r] = hsum8(lsum[r]);
}

/* Placed fp8 needs DAZ off (a placed subnormal code would read as 0) and pays only where subnormal FMA
 * inputs cost nothing: the avx2 GEMV's probe (cb_q8_avx2_fp8_subnormal_test, which also forces either way);
 * queries below 2^30 keep Q · 2^96 finite. FTZ stays on. docs/quantization.md, "Subnormal codes". */
static _Atomic uint64_t fp8_placed_calls;
uint64_t cb_attn_avx2_fp8_placed_calls(void) { return atomic_load_explicit(&fp8_placed_calls, memory_order_relaxed); }
static bool fp8_placed_ok(int R, const float *Q, int hd) {
    if (cb_q8_avx2_fp8_subnormal_test(NULL)) return false;
    for (int i = 0; i < R * hd; i++)
        if (!(fabsf(Q[i]) < FP8P_QMAX)) return false;
    return true;
}

void cb_attn_flash_avx2(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                        float *m, float *l, float *O, bool fast) {
    switch (kv->dtype) {
    case CB_F16: flash(L_F16, R, Q, qpos, kv, k0, k1, m, l, O, false); break;
    case CB_BF16: flash(L_BF16, R, Q, qpos, kv, k0, k1, m, l, O, false); break;
    case CB_F8_E4M3: {
        const unsigned csr = _mm_getcsr();
        _mm_setcsr(csr & ~0x40u); /* DAZ off; the caller's MXCSR comes back below, the flags raised kept */
        if (R <= DIRECT_MAX_ROWS && fp8_placed_ok(R, Q, kv->hd)) {
            atomic_fetch_add_explicit(&fp8_placed_calls, 1, memory_order_relaxed);
            flash(L_FP8P, R, Q, qpos, kv, k0, k1, m, l, O, false);
        } else {
            _mm_setcsr(csr);
            flash(L_FP8, R, Q, qpos, kv, k0, k1, m, l, O, false);
        }
        _mm_setcsr((csr & ~0x3fu) | (_mm_getcsr() & 0x3fu));
        break;
    }
    case CB_I8: flash(L_I8, R, Q, qpos, kv, k0, k1, m, l, O, fast); break;
    default: flash(L_F32, R, Q, qpos, kv, k0, k1, m, l, O, false); break;
    }
}
