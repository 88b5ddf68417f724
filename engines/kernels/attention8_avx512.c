/* AVX-512 flash attention over an 8-bit KV cache (fp8 E4M3 / int8 codes with per-position fp32 scales;
 * layout and contract in attention.h).
 * Decode (<= DIRECT_MAX_ROWS rows, blocks whose 4 tiles are full): codes are widened to fp32 in registers
 * straight from the cache (fp8 by bit placement, stream16; int8 takes the VNNI loop below). A tile's 16
 * scores are Σ_d q_d·value(code) times the tile's 16 K scales; the V scales are folded into the softmax
 * weights (p_j·vs_j), so the inner loops are plain FMAs.
 * Reads go in address order (K tiles one after another, V rows top to bottom) and the next data is
 * requested evenly over the arithmetic, as in the bf16 decode loop (attention_avx512.c explains why).
 * Prefill (more rows) and partial blocks: one block of 64 keys is widened and scaled into L1-resident
 * fp32 tiles, which the f32 kernel then consumes as a 64-key cache; the cache itself is never expanded. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "attention.h"
#include "kernels.h"
#include "flash_softmax_avx512.h"
#include "fp8_avx512.h"

#define DIRECT_MAX_ROWS 8
/* Decode prefetch distance in blocks of CB_FLASH_BK keys (a block of an 8-bit cache is half a bf16 one's
 * bytes, so one block ahead leaves half the time to hide the latency). */
#ifndef PF_AHEAD
#define PF_AHEAD 2
#endif

/* 16 codes as fp32 values before scaling. int8: sign extension. fp8: the code's bits placed in an f16
 * (s.eeee.mmm -> s.0eeee.mmm0000000) give value / 256 exactly, subnormals included; UNIT folds the 256
 * back into the scales. */
static inline __attribute__((always_inline)) __m512 dec16(__m128i b, cb_dtype t) {
    if (t == CB_I8) return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
    __m256i w = _mm256_slli_epi16(_mm256_cvtepu8_epi16(b), 8);
    w = _mm256_and_si256(_mm256_srai_epi16(w, 1), _mm256_set1_epi16((short)0xbfff));
    return _mm512_cvtph_ps(w);
}
static inline __attribute__((always_inline)) __m512 ld16(const uint8_t *p, cb_dtype t) {
    return dec16(_mm_loadu_si128((const __m128i *)p), t);
}
#define UNIT(t) ((t) == CB_F8_E4M3 ? 256.0f : 1.0f)

/* The decode loop's fp8 in 3 instructions per 16 codes (as the fp8 GEMV, gemm8_avx512.c): sign-extend,
 * shift by 20, keep sign and code bits: an fp32 worth value · 2^-120 exactly (subnormals too). Against
 * queries scaled by 2^64 the products are q · value · 2^-56 (scores: · 2^56 · ks); the P·V products are
 * p · vs · 2^64 · value · 2^-120, so O is carried in units of 2^-56 inside the block (OUNIT). All
 * scalings are powers of two, far from fp32's range limits. */
#define FP8_Q_SCALE 0x1p64f
#define KUNIT 0x1p56f
#define VUNIT 0x1p64f
#define OUNIT 0x1p-56f
static inline __attribute__((always_inline)) __m512 stream16(const uint8_t *p) {
    __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(v, 20), _mm512_set1_epi32((int)0x87F00000u)));
}
/* An E4M3 subnormal code (exponent field 0, mantissa != 0) would land as an fp32 subnormal above, and on
 * Intel cores every FMA with a subnormal input takes a microcode assist (docs/quantization.md, "Subnormal
 * codes"). A block whose K (or V) holds one (fp8_any_sub) decodes that K (or V) by stream16_fix instead:
 * value · 2^-104 exactly and never subnormal (cb_fp8_bits_fix, fp8_avx512.h), against queries (or V
 * weights) scaled by 2^48, so every product equals the one stream16 gives: the results are the same bits,
 * and K and V can decide apart. */
#define FP8_FIX_SCALE 0x1p48f
static inline __attribute__((always_inline)) __m512 stream16_fix(const uint8_t *p) {
    return cb_fp8_bits_fix(_mm512_slli_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)), 20));
}
static inline __attribute__((always_inline)) __m512 stream16x(const uint8_t *p, bool fix) {
    return fix ? stream16_fix(p) : stream16(p);
}
/* Whether n bytes (a multiple of 64) of fp8 codes hold an E4M3 subnormal: two byte tests per 64 codes. */
static inline bool fp8_any_sub(const uint8_t *p, size_t n) {
    __mmask64 k = 0;
    for (size_t i = 0; i < n; i += 64) {
        k |= cb_fp8_sub64(_mm512_loadu_si512(p + i));
    }
    return k != 0;
}

/* A block's 64 scales: 4 lines. (Each line left to a demand miss stalls the loop for a DRAM latency.) */
static inline __attribute__((always_inline)) void pf_scales(const float *p, bool l2) {
    for (int i = 0; i < CB_FLASH_BK; i += 16) PF_TO(p + i, l2);
}

/* S[r][16 t ..] for NR rows from r0 (clamped to R - 1) and NT tiles from t0; pf: one line per head dim
 * prefetched (NULL: none). */
static inline __attribute__((always_inline)) void qk8(int R, int r0, int NR, int t0, int NT, const float *Q, int hd,
                                                      const uint8_t *kt0, const float *ks, float *S, const char *pf,
                                                      bool fix, bool l2) {
    __m512 a[4][4];
    const float *q[4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) q[i] = Q + (size_t)CB_MIN(r0 + i, R - 1) * hd;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) a[i][j] = _mm512_setzero_ps();
    const size_t tile = (size_t)hd * 16; /* bytes of one 16-key tile */
    const uint8_t *k = kt0 + (size_t)t0 * tile;
    for (int d = 0; d < hd; d++) {
        __m512 kv[4];
        if (pf) PF_TO(pf + (size_t)d * 64, l2);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) kv[j] = stream16x(k + j * tile + (size_t)d * 16, fix);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const __m512 qb = _mm512_set1_ps(q[i][d]);
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) a[i][j] = _mm512_fmadd_ps(qb, kv[j], a[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) {
        const __m512 sc = _mm512_mul_ps(_mm512_loadu_ps(ks + 16 * (t0 + j)), _mm512_set1_ps(KUNIT));
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
            if (r0 + i < R) _mm512_store_ps(S + (r0 + i) * CB_FLASH_BK + 16 * (t0 + j), _mm512_mul_ps(a[i][j], sc));
    }
}

/* O[r][c0 .. c0 + 16·NU) = O·alpha + Σ_j P[r][j]·V[j] for NR rows from r0 (P already holds p·vs);
 * prefetches pf_per_j lines per key from pf (NULL: none), never past pf_end. */
static inline __attribute__((always_inline)) void pv8(int R, int r0, int NR, int c0, int NU, int hd, int nb,
                                                      const uint8_t *vb, const float *S, const float *alpha,
                                                      float *O, const char *pf, int pf_per_j, const char *pf_end,
                                                      bool fix, bool l2) {
    __m512 b[4][8];
    const float *p[4];
    int rr[4];
    for (int i = 0; i < 4; i++) /* (only NR x NU are used; this keeps gcc's uninitialised-use analysis quiet) */
        for (int u = 0; u < 8; u++) b[i][u] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        rr[i] = CB_MIN(r0 + i, R - 1), p[i] = S + rr[i] * CB_FLASH_BK;
        const __m512 ab = _mm512_set1_ps(alpha[rr[i]] * OUNIT);
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++) b[i][u] = _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)rr[i] * hd + c0 + 16 * u), ab);
    }
    const uint8_t *vr = vb + c0;
    for (int j = 0; j < nb; j++, vr += hd) {
        __m512 vv[8] = { _mm512_setzero_ps() };
        if (pf)
            for (int u = 0; u < pf_per_j; u++, pf += 64)
                if (pf < pf_end) PF_TO(pf, l2);
#pragma GCC unroll 8
        for (int u = 0; u < NU; u++) vv[u] = stream16x(vr + 16 * u, fix);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const __m512 pb = _mm512_set1_ps(p[i][j]);
#pragma GCC unroll 8
            for (int u = 0; u < NU; u++) b[i][u] = _mm512_fmadd_ps(pb, vv[u], b[i][u]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
        if (r0 + i < R)
#pragma GCC unroll 8
            for (int u = 0; u < NU; u++)
                _mm512_storeu_ps(O + (size_t)(r0 + i) * hd + c0 + 16 * u, _mm512_mul_ps(b[i][u], _mm512_set1_ps(1.0f / OUNIT)));
}

/* One block of 64 keys whose 4 tiles are full in memory, R <= DIRECT_MAX_ROWS. Q·Kᵀ: 4 tiles x 1, 2 or
 * 4 rows per pass (the first pass requests this block's V); P·V: R <= 2 rows x 128 columns or 4 rows x
 * 64 columns per pass (the passes request the next block's K). Later passes re-read from L1. */
static inline __attribute__((always_inline)) void block8(int R, const float *Q, const int64_t *qpos, int hd,
                                                         int64_t kb, int nb, const uint8_t *kt0, const uint8_t *vb,
                                                         const float *ks, const float *vs, float *S,
                                                         float *m, __m512 *lsum, float *alpha, float *O, bool fixk,
                                                         bool fixv, bool l2) {
    const size_t bytes = (size_t)CB_FLASH_BK * hd; /* of K (and of V) per block */
    /* K tiles two at a time, each read in address order (the hardware prefetcher follows two streams, not
     * four 2 KiB apart; as block_bf16_pairs in attention_avx512.c) */
    /* the next block's V and scales are requested during this block's Q·Kᵀ, its K during P·V, so every
     * block finds its data in L1 (the call's first block is requested at entry) */
    const char *pfv = (const char *)vb + PF_AHEAD * bytes;
    pf_scales(ks + PF_AHEAD * CB_FLASH_BK, l2), pf_scales(vs + PF_AHEAD * CB_FLASH_BK, l2);
    if (R == 1) qk8(R, 0, 1, 0, 4, Q, hd, kt0, ks, S, pfv, fixk, l2);
    else if (R == 2)
        for (int t0 = 0; t0 < 4; t0 += 2) qk8(R, 0, 2, t0, 2, Q, hd, kt0, ks, S, t0 ? NULL : pfv, fixk, l2);
    else
        for (int t0 = 0; t0 < 4; t0 += 2)
            for (int r0 = 0; r0 < R; r0 += 4) qk8(R, r0, 4, t0, 2, Q, hd, kt0, ks, S, r0 || t0 ? NULL : pfv, fixk, l2);
    softmax_block(R, qpos, kb, nb, S, m, lsum, alpha);
    const __m512 u = _mm512_set1_ps(fixv ? FP8_FIX_SCALE : VUNIT);
    __m512 w[4];
    for (int i = 0; i < 4; i++) w[i] = _mm512_mul_ps(_mm512_loadu_ps(vs + 16 * i), u);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < 4; i++)
            _mm512_store_ps(S + r * CB_FLASH_BK + 16 * i, _mm512_mul_ps(_mm512_load_ps(S + r * CB_FLASH_BK + 16 * i), w[i]));

    const int ncw = R <= 2 ? 128 : 64, nr = R <= 2 ? R : 4;
    const int passes = ((hd + ncw - 1) / ncw) * ((R + nr - 1) / nr);
    const int per_j = (int)((bytes / 64 + (size_t)passes * CB_FLASH_BK - 1) / ((size_t)passes * CB_FLASH_BK));
    const char *pf = (const char *)kt0 + PF_AHEAD * bytes, *pf_end = pf + bytes;
    for (int c0 = 0; c0 < hd; c0 += ncw) {
        const int nu = CB_MIN(ncw, hd - c0) / 16;
        for (int r0 = 0; r0 < R; r0 += nr, pf += (size_t)64 * per_j * CB_FLASH_BK) {
#define PV(NR, NU) pv8(R, r0, NR, c0, NU, hd, nb, vb, S, alpha, O, pf, per_j, pf_end, fixv, l2)
            if (R <= 2) {
                if (R == 1) switch (nu) { case 8: PV(1, 8); break; case 4: PV(1, 4); break; default: PV(1, nu); }
                else switch (nu) { case 8: PV(2, 8); break; case 4: PV(2, 4); break; default: PV(2, nu); }
            } else if (nu == 4) PV(4, 4);
            else PV(4, nu);
#undef PV
        }
    }
}

/* ---- int8 cache with VNNI (vpdpbusd): integer dot products, exact to fp32's precision ----
 * Each query row is held as a 24-bit fixed-point integer Qi = rne(q · G), G = 127·2^16 / max|q|, split
 * into three signed bytes (Qi = 2^16·h + 2^8·m + l, balanced digits). An int8 code times a byte is exact,
 * so a score is Σ_p 256^p · Σ_d k_d · plane_p,d exactly in int32 per plane (|.| < 2^23, hence exact in
 * fp32 too), combined in fp32: the only errors are q's rounding to 24 bits (relative 2^-24 of max|q|) and
 * two fp32 roundings, as small as the fp32 FMA chain's. vpdpbusd wants one unsigned operand: K's codes
 * are offset by 128 (xor 0x80) and 128·Σ_d plane_p,d is subtracted per row. Likewise P·V: the softmax
 * weights (times the V scales) of a block are held as 24-bit unsigned fixed point relative to the
 * block's largest, three unsigned bytes against V's signed codes. The int8 cache stores K and V in
 * 4-byte groups (attention.h): 64 bytes of a K tile are dims 4c..4c+3 of 16 keys, one key per lane, and
 * 64 bytes of a V group are 16 columns of 4 keys, one column per lane, so both products take their
 * operands straight from memory (docs/quantization.md, "int8 KV layout"). */
/* Prefetch distance in blocks (into L1) for this loop: one block ahead (ctxbench-bench flash-decode). */
#ifndef PF_I8
#define PF_I8 1
#endif
#ifndef I8_SM_LINES
#define I8_SM_LINES 16
#endif
/* Planes per operand: exact mode 3 (24-bit fixed point); fast mode 2 (16 bits: still finer than the bf16
 * rounding fast mode applies elsewhere; docs/quantization.md, "int8 KV in fast mode"). */
#define I8_PLANES_EXACT 3
#define I8_PLANES_FAST 2
/* 127 · 2^(8·(np − 1)): the balanced top digit stays within int8; the weights' largest: 2^(8·np) − 1 */
static inline float i8_qmax(int np) { return np == 3 ? 8323072.0f : 32512.0f; }
static inline float i8_pmax(int np) { return np == 3 ? 16777215.0f : 65535.0f; }

/* vpdpbusd through asm: with the intrinsic gcc copies each accumulator before and after the instruction
 * (it ties the destination badly in unrolled loops), doubling the loop's instructions. acc += Σ4 a_u8·b_s8;
 * _bc: b is one dword broadcast from memory (embedded broadcast, no register); _r: b in a register (P·V loads
 * each 64 bytes of V once for all rows and planes: a memory operand per instruction was 9 % slower on Zen 4). */
static inline __attribute__((always_inline)) __m512i dp_r(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}
static inline __attribute__((always_inline)) __m512i dp_bc(__m512i acc, __m512i a, const int32_t *b) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*b));
    return acc;
}

typedef struct {
    int32_t q[3][DIRECT_MAX_ROWS][CB_FLASH_MAX_HD / 4]; /* planes of the rows' Qi, 4 dims per dword */
    int32_t corr[3][DIRECT_MAX_ROWS];                   /* 128 · Σ_d plane_p,d */
    float qinv[DIRECT_MAX_ROWS];                        /* 1 / G */
    int32_t p[3][DIRECT_MAX_ROWS][CB_FLASH_BK / 4];     /* planes of the block's weights, 4 keys per dword */
    float punit[DIRECT_MAX_ROWS];                       /* weight = punit · Pi */
} i8_state;

/* whether the n scales at x are all finite (NaN: no) */
static inline bool finite_scales(const float *x, int n) {
    bool ok = true;
    for (int j = 0; j < n; j++) ok &= x[j] < INFINITY && x[j] > -INFINITY;
    return ok;
}

/* false when a row is not finite (the caller then takes the fp32 loop, which propagates it); np planes */
static bool i8_quantize_q(int R, const float *Q, int hd, int np, i8_state *st) {
    const float qmax = i8_qmax(np);
    for (int r = 0; r < R; r++) {
        const float *q = Q + (size_t)r * hd;
        __m512 mx = _mm512_setzero_ps();
        for (int d = 0; d < hd; d += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(q + d)));
        const float amax = _mm512_reduce_max_ps(mx);
        if (!isfinite(amax)) return false;
        const __m512 G = _mm512_set1_ps(amax > 0.0f ? qmax / amax : 0.0f);
        st->qinv[r] = amax > 0.0f ? amax / qmax : 0.0f;
        __m512i c[3] = { _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512() };
        for (int d = 0; d < hd; d += 16) {
            __m512i x = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(q + d), G)); /* rne */
            __m512i dig[3];
            for (int p = 0; p < np - 1; p++) { /* balanced digits: the low byte sign-extended, the rest carried up */
                dig[p] = _mm512_srai_epi32(_mm512_slli_epi32(x, 24), 24);
                x = _mm512_srai_epi32(_mm512_sub_epi32(x, dig[p]), 8);
            }
            dig[np - 1] = x;
            for (int p = 0; p < np; p++) {
                _mm_storeu_si128((__m128i *)((int8_t *)st->q[p][r] + d), _mm512_cvtepi32_epi8(dig[p]));
                c[p] = _mm512_add_epi32(c[p], dig[p]);
            }
        }
        for (int p = 0; p < np; p++) st->corr[p][r] = 128 * _mm512_reduce_add_epi32(c[p]);
    }
    return true;
}

/* S[r][16 t ..] for NR rows from r0 (clamped to R - 1) and NT tiles from t0; pf: npf lines per 4-dim chunk
 * requested from there (NULL: none). */
static inline __attribute__((always_inline)) void qk_i8(int R, int r0, int NR, int t0, int NT, int hd, int NP,
                                                        const uint8_t *kt0, const float *ks, const i8_state *st,
                                                        float *S, const char *pf, int npf, bool l2) {
    __m512i a[4][4][3];
    int rr[4];
    const __m512i off = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) rr[i] = CB_MIN(r0 + i, R - 1);
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++)
#pragma GCC unroll 3
            for (int p = 0; p < NP; p++) a[i][j][p] = _mm512_setzero_si512();
    const size_t tile = (size_t)hd * 16;
    const uint8_t *k = kt0 + (size_t)t0 * tile;
    for (int c = 0; c < hd / 4; c++) {
        __m512i kx[4];
        if (pf) /* npf lines per chunk: 1, 2 or 4 */
            for (int u = 0; u < 4; u++)
                if (u < npf) PF_TO(pf + ((size_t)c * npf + u) * 64, l2);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) kx[j] = _mm512_xor_si512(_mm512_loadu_si512(k + j * tile + (size_t)c * 64), off);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
#pragma GCC unroll 3
            for (int p = 0; p < NP; p++)
#pragma GCC unroll 4
                for (int j = 0; j < NT; j++) a[i][j][p] = dp_bc(a[i][j][p], kx[j], &st->q[p][rr[i]][c]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        if (r0 + i >= R) continue;
        const int r = r0 + i;
        const __m512 qinv = _mm512_set1_ps(st->qinv[r]);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            const __m512 h1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(a[i][j][1], _mm512_set1_epi32(st->corr[1][r])));
            const __m512 h0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(a[i][j][0], _mm512_set1_epi32(st->corr[0][r])));
            __m512 s;
            if (NP == 3) {
                const __m512 h2 = _mm512_cvtepi32_ps(_mm512_sub_epi32(a[i][j][2], _mm512_set1_epi32(st->corr[2][r])));
                s = _mm512_add_ps(_mm512_fmadd_ps(h2, _mm512_set1_ps(65536.0f), _mm512_mul_ps(h1, _mm512_set1_ps(256.0f))), h0);
            } else
                s = _mm512_fmadd_ps(h1, _mm512_set1_ps(256.0f), h0);
            s = _mm512_mul_ps(s, _mm512_mul_ps(qinv, _mm512_loadu_ps(ks + 16 * (t0 + j))));
            _mm512_store_ps(S + r * CB_FLASH_BK + 16 * (t0 + j), s);
        }
    }
}

/* The online-softmax step fused with the weights' quantisation. Row r's weights are p_j·vs_j with
 * p_j = exp(s_j − m_new) = c · e_j, e_j = exp(s_j − bmax), c = exp(bmax − m_new) (bmax: the block's
 * largest score), so e_j·vs_j / max(vs) <= 1 needs no second reduction: Pi_j = rne(e_j·vs_j·PMAX/max(vs)),
 * weight = punit·Pi with punit = c·max(vs)/PMAX. Masked keys get e = 0; alpha[r] as in softmax_block.
 * The planes hold 4 consecutive keys per dword: the group of 4 positions a V operand covers. */
static inline __attribute__((always_inline)) void softmax_i8(int R, const int64_t *qpos, int64_t kb, int nb,
                                                             const float *S, const float *vs, float *m, __m512 *lsum,
                                                             float *alpha, i8_state *st, const char *pf, int pf_per_r,
                                                             int NP, bool l2) {
    const float pmax = i8_pmax(NP);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    /* the V scales of the call's keys; past nb 0 (positions after k1: not written yet, or left by an earlier
     * sequence, so their scales may be anything; a larger one would coarsen P's fixed point, a NaN drop
     * the block) */
    const uint64_t in = nb < CB_FLASH_BK ? (1ull << nb) - 1ull : ~0ull;
    __m512 w[4];
    for (int i = 0; i < 4; i++) w[i] = _mm512_maskz_loadu_ps((__mmask16)(in >> (16 * i)), vs + 16 * i);
    const float vmax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(w[0], w[1]), _mm512_max_ps(w[2], w[3])));
    const float wf = vmax > 0.0f ? pmax / vmax : 0.0f;
    for (int i = 0; i < 4; i++) w[i] = _mm512_mul_ps(w[i], _mm512_set1_ps(wf));
    for (int r = 0; r < R; r++) {
        for (int u = 0; u < pf_per_r; u++) PF_TO(pf + (size_t)(r * pf_per_r + u) * 64, l2);
        const int64_t vis = CB_MIN((int64_t)nb, qpos[r] - kb + 1);
        if (vis <= 0) {
            alpha[r] = 1.0f, st->punit[r] = 0.0f;
            for (int p = 0; p < NP; p++) _mm512_storeu_si512(st->p[p][r], _mm512_setzero_si512());
            continue;
        }
        const float *sr = S + r * CB_FLASH_BK;
        __m512 x[4] = { _mm512_load_ps(sr), _mm512_load_ps(sr + 16), _mm512_load_ps(sr + 32), _mm512_load_ps(sr + 48) };
        if (vis < CB_FLASH_BK) {
            const uint64_t keep = (1ull << vis) - 1ull;
            for (int i = 0; i < 4; i++) x[i] = _mm512_mask_mov_ps(ninf, (__mmask16)(keep >> (16 * i)), x[i]);
        }
        const float bmax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(x[0], x[1]), _mm512_max_ps(x[2], x[3])));
        const float m_new = fmaxf(m[r], bmax);
        /* lane 0: alpha = exp(m_old − m_new), lane 1: c = exp(bmax − m_new) */
        const __m512 ac = cb_exp512(_mm512_sub_ps(_mm512_mask_mov_ps(_mm512_set1_ps(m[r]), 2, _mm512_set1_ps(bmax)), _mm512_set1_ps(m_new)));
        const __m512 bb = _mm512_set1_ps(bmax);
        __m512 sum = _mm512_setzero_ps();
        for (int i = 0; i < 4; i++) {
            const __m512 e = cb_exp512(_mm512_sub_ps(x[i], bb));
            sum = _mm512_add_ps(sum, e);
            const __m512i pi = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(e, w[i])), _mm512_set1_epi32((int)pmax));
            _mm_storeu_si128((__m128i *)&st->p[0][r][4 * i], _mm512_cvtepi32_epi8(pi));
            _mm_storeu_si128((__m128i *)&st->p[1][r][4 * i], _mm512_cvtepi32_epi8(_mm512_srli_epi32(pi, 8)));
            if (NP == 3) _mm_storeu_si128((__m128i *)&st->p[2][r][4 * i], _mm512_cvtepi32_epi8(_mm512_srli_epi32(pi, 16)));
        }
        const float a = _mm512_cvtss_f32(ac), c = _mm512_cvtss_f32(_mm512_permutexvar_ps(_mm512_set1_epi32(1), ac));
        lsum[r] = _mm512_fmadd_ps(lsum[r], _mm512_set1_ps(a), _mm512_mul_ps(sum, _mm512_set1_ps(c)));
        st->punit[r] = vmax > 0.0f ? c * (vmax / pmax) : 0.0f;
        m[r] = m_new, alpha[r] = a;
    }
}

/* O[r][c0 .. c0 + 16·NU) = O·alpha + Σ_j w_j·V[j] for NR rows from r0 over ng groups of 4 keys; pf:
 * pf_per_g lines per group requested from there (NULL: none), never past pf_end. */
static inline __attribute__((always_inline)) void pv_i8(int R, int r0, int NR, int c0, int NU, int hd, int ng, int NP,
                                                        const uint8_t *vb, const i8_state *st, const float *alpha,
                                                        float *O, const char *pf, int pf_per_g,
                                                        const char *pf_end, bool l2) {
    __m512i a[2][4][3];
    int rr[2];
#pragma GCC unroll 2
    for (int i = 0; i < NR; i++) rr[i] = CB_MIN(r0 + i, R - 1);
#pragma GCC unroll 2
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++)
#pragma GCC unroll 3
            for (int p = 0; p < NP; p++) a[i][u][p] = _mm512_setzero_si512();
    const uint8_t *v = vb + (size_t)c0 * 4;
    for (int g = 0; g < ng; g++, v += 4 * (size_t)hd) {
        if (pf) {
            for (int u = 0; u < 4; u++) /* pf_per_g <= 4 (hd <= 256) */
                if (u < pf_per_g && pf + 64 * u < pf_end) PF_TO(pf + 64 * u, l2);
            pf += 64 * pf_per_g;
        }
        __m512i vx[4];
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) vx[u] = _mm512_loadu_si512(v + 64 * u);
#pragma GCC unroll 2
        for (int i = 0; i < NR; i++)
#pragma GCC unroll 3
            for (int p = 0; p < NP; p++) {
                const __m512i pb = _mm512_set1_epi32(st->p[p][rr[i]][g]);
#pragma GCC unroll 4
                for (int u = 0; u < NU; u++) a[i][u][p] = dp_r(a[i][u][p], pb, vx[u]);
            }
    }
#pragma GCC unroll 2
    for (int i = 0; i < NR; i++) {
        if (r0 + i >= R) continue;
        const int r = r0 + i;
        const __m512 al = _mm512_set1_ps(alpha[r]), pu = _mm512_set1_ps(st->punit[r]);
        float *o = O + (size_t)r * hd + c0;
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) {
            const __m512 x = NP == 3 ? _mm512_add_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(a[i][u][2]), _mm512_set1_ps(65536.0f),
                                                                     _mm512_mul_ps(_mm512_cvtepi32_ps(a[i][u][1]), _mm512_set1_ps(256.0f))),
                                                     _mm512_cvtepi32_ps(a[i][u][0]))
                                     : _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[i][u][1]), _mm512_set1_ps(256.0f), _mm512_cvtepi32_ps(a[i][u][0]));
            _mm512_storeu_ps(o + 16 * u, _mm512_fmadd_ps(_mm512_loadu_ps(o + 16 * u), al, _mm512_mul_ps(x, pu)));
        }
    }
}

static inline __attribute__((always_inline)) void block_i8(int R, const int64_t *qpos, int hd, int64_t kb, int nb,
                                                           const uint8_t *kt0, const uint8_t *vb, const float *ks,
                                                           const float *vs, i8_state *st, float *S, float *m,
                                                           __m512 *lsum, float *alpha, float *O, int NP, bool l2) {
    const size_t bytes = (size_t)CB_FLASH_BK * hd;
    const char *pfv = (const char *)vb + PF_I8 * bytes;
    pf_scales(ks + PF_I8 * CB_FLASH_BK, l2), pf_scales(vs + PF_I8 * CB_FLASH_BK, l2);
    /* the next block's V (hd/4 chunks × 256 bytes) is requested over the Q·Kᵀ passes */
    if (R <= 2) {
        if (R == 1) qk_i8(R, 0, 1, 0, 4, hd, NP, kt0, ks, st, S, pfv, 4, l2);
        else qk_i8(R, 0, 2, 0, 4, hd, NP, kt0, ks, st, S, pfv, 4, l2);
    } else { /* 2 or 4 passes, each requesting its share of the next V */
        const int npf = R <= 4 ? 2 : 1;
        for (int t0 = 0, k = 0; t0 < 4; t0 += 2)
            for (int r0 = 0; r0 < R; r0 += 4, k++) qk_i8(R, r0, 4, t0, 2, hd, NP, kt0, ks, st, S, pfv + (size_t)k * npf * 16 * hd, npf, l2);
    }
    /* the next block's K: a share during the softmax (I8_SM_LINES per row: no memory request would be
     * in flight there otherwise), the rest evenly over the P·V passes */
    const char *pf = (const char *)kt0 + PF_I8 * bytes, *pf_end = pf + bytes;
    const int sm_per_r = (int)CB_MIN((size_t)I8_SM_LINES, bytes / 64 / (size_t)R);
    softmax_i8(R, qpos, kb, nb, S, vs, m, lsum, alpha, st, pf, sm_per_r, NP, l2);
    pf += (size_t)64 * sm_per_r * R;
    const int ng = (nb + 3) / 4, passes = ((hd + 63) / 64) * ((R + 1) / 2); /* masked keys weigh 0 */
    const int per_g = (int)(((size_t)(pf_end - pf) / 64 + (size_t)passes * ng - 1) / ((size_t)passes * ng));
    for (int c0 = 0; c0 < hd; c0 += 64) {
        const int nu = CB_MIN(64, hd - c0) / 16;
        for (int r0 = 0; r0 < R; r0 += 2, pf += (size_t)64 * per_g * ng) {
#define PV(NR, NU) pv_i8(R, r0, NR, c0, NU, hd, ng, NP, vb, st, alpha, O, pf, per_g, pf_end, l2)
            if (R == 1) switch (nu) { case 4: PV(1, 4); break; case 3: PV(1, 3); break; case 2: PV(1, 2); break; default: PV(1, 1); }
            else switch (nu) { case 4: PV(2, 4); break; case 3: PV(2, 3); break; case 2: PV(2, 2); break; default: PV(2, 1); }
#undef PV
        }
    }
}

/* Byte i of each dword of x, sign-extended: one of the 4 keys (V) or dims (K) of an int8 4-byte group. */
static inline __attribute__((always_inline)) __m512 i8_lane(__m512i x, int i) {
    return _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_sllv_epi32(x, _mm512_set1_epi32(24 - 8 * i)), 24));
}

/* Keys [kb, kb + nb) widened and scaled into fp32 tiles Kf [4][hd][16] (narrow or missing tiles padded
 * with zeros) and rows Vf [64][hd]: the layout of an f32 cache of capacity 64. int8 caches in 4-byte
 * groups (attention.h) are regrouped here; their narrow last tile and group take the scalar route. */
static void widen_block(const cb_kv_view *kv, int64_t kb, int nb, float *Kf, float *Vf) {
    const int hd = kv->hd, nt = (nb + 15) / 16;
    const float unit = UNIT(kv->dtype);
    const bool fp8 = kv->dtype == CB_F8_E4M3, quads = cb_kv_quads(kv->dtype, hd);
    for (int t = 0; t < 4; t++) {
        if (t >= nt) {
            for (int d = 0; d < hd; d++) _mm512_store_ps(Kf + (t * hd + d) * 16, _mm512_setzero_ps());
            continue;
        }
        const int64_t p0 = kb + 16 * t, w = CB_MIN((int64_t)16, kv->cap - p0);
        const __mmask16 mk = (__mmask16)((1u << w) - 1u);
        const uint8_t *src = (const uint8_t *)kv->k + cb_kv_k_offset(p0, 0, hd, kv->cap, kv->dtype);
        const __m512 sc = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, kv->ks + p0), _mm512_set1_ps(unit));
        if (quads && w == 16) {
            for (int c = 0; c < hd / 4; c++) {
                const __m512i x = _mm512_loadu_si512(src + (size_t)c * 64);
                for (int i = 0; i < 4; i++) _mm512_store_ps(Kf + (t * hd + 4 * c + i) * 16, _mm512_mul_ps(i8_lane(x, i), sc));
            }
        } else if (quads) {
            for (int d = 0; d < hd; d++)
                for (int j = 0; j < 16; j++)
                    Kf[(t * hd + d) * 16 + j] = j < w ? kv->ks[p0 + j] * (float)(int8_t)src[(d >> 2) * 4 * w + j * 4 + (d & 3)] : 0.0f;
        } else
            for (int d = 0; d < hd; d++) {
                __m128i b = _mm_maskz_loadu_epi8(mk, src + (size_t)d * w);
                _mm512_store_ps(Kf + (t * hd + d) * 16, _mm512_mul_ps(fp8 ? dec16(b, CB_F8_E4M3) : dec16(b, CB_I8), sc));
            }
    }
    if (quads) {
        int j = 0;
        for (; j + 4 <= nb && kv->cap - (kb + j) >= 4; j += 4) { /* whole groups */
            const uint8_t *src = (const uint8_t *)kv->v + (size_t)(kb + j) * hd;
            for (int c = 0; c < hd; c += 16) {
                const __m512i x = _mm512_loadu_si512(src + (size_t)c * 4);
                for (int i = 0; i < 4; i++)
                    _mm512_store_ps(Vf + (j + i) * hd + c, _mm512_mul_ps(i8_lane(x, i), _mm512_set1_ps(kv->vs[kb + j + i])));
            }
        }
        for (; j < nb; j++)
            for (int c = 0; c < hd; c++)
                Vf[j * hd + c] = kv->vs[kb + j] * (float)((const int8_t *)kv->v)[cb_kv_v_offset(kb + j, c, hd, kv->cap, CB_I8)];
        return;
    }
    const uint8_t *src = (const uint8_t *)kv->v + (size_t)kb * hd;
    for (int j = 0; j < nb; j++) {
        const __m512 sc = _mm512_set1_ps(kv->vs[kb + j] * unit);
        for (int c = 0; c < hd; c += 16) {
            const uint8_t *p = src + (size_t)j * hd + c;
            _mm512_store_ps(Vf + j * hd + c, _mm512_mul_ps(fp8 ? ld16(p, CB_F8_E4M3) : ld16(p, CB_I8), sc));
        }
    }
}

void cb_attn_flash_q8_avx512(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0,
                             int64_t k1, float *m, float *l, float *O, bool fast) {
    const int hd = kv->hd;
    const int64_t full_end = kv->cap & ~(int64_t)15; /* tiles before this are 16 wide */
    float Kf[4 * CB_FLASH_MAX_HD * 16] __attribute__((aligned(64)));
    float Vf[CB_FLASH_BK * CB_FLASH_MAX_HD] __attribute__((aligned(64)));
    float S[DIRECT_MAX_ROWS * CB_FLASH_BK] __attribute__((aligned(64)));
    float alpha[DIRECT_MAX_ROWS + 4];
    __m512 lsum[DIRECT_MAX_ROWS];
    /* int8: integer dot products with VNNI (block_i8); without it (or with a row that is not finite) the
     * int8 layout goes through widened blocks */
    bool vi8 = R <= DIRECT_MAX_ROWS && kv->dtype == CB_I8 && cb_kernels_vnni();
    i8_state st;
    const int np = fast ? I8_PLANES_FAST : I8_PLANES_EXACT;
    if (vi8) vi8 = i8_quantize_q(R, Q, hd, np, &st);
    const bool direct = R <= DIRECT_MAX_ROWS && (vi8 || kv->dtype == CB_F8_E4M3);
    const bool l2 = direct && cb_kernels_prefetch_l2(NULL); /* constant in the common blocks' loops */
    float Qs[DIRECT_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64))); /* fp8: Q · 2^64 (stream16) */
    float Qf[DIRECT_MAX_ROWS * CB_FLASH_MAX_HD] __attribute__((aligned(64))); /* fp8: Q · 2^48 (stream16_fix) */
    if (direct && kv->dtype == CB_F8_E4M3)
        for (int i = 0; i < R * hd; i++) Qs[i] = Q[i] * FP8_Q_SCALE, Qf[i] = Q[i] * FP8_FIX_SCALE;
    if (direct)
        for (int r = 0; r < R; r++) lsum[r] = _mm512_mask_mov_ps(_mm512_setzero_ps(), 1, _mm512_set1_ps(l[r]));
    for (int64_t kb = k0; kb < k1; kb += CB_FLASH_BK) {
        const int nb = (int)CB_MIN((int64_t)CB_FLASH_BK, k1 - kb);
        int any = 0; /* rows that see at least one key of this block */
        for (int r = 0; r < R; r++) any |= qpos[r] >= kb;
        if (!any) continue;
        /* a non-finite V scale among the keys would void the weights' fixed point (the block's largest
         * scale): that block goes through the fp32 kernel, which propagates it */
        if (direct && kb + CB_FLASH_BK <= full_end && (!vi8 || finite_scales(kv->vs + kb, nb))) {
            const uint8_t *kt0 = (const uint8_t *)kv->k + cb_kv_k_offset(kb, 0, hd, kv->cap, kv->dtype);
            const uint8_t *vb = (const uint8_t *)kv->v + (size_t)kb * hd;
            if (kb == k0) /* the first block: K, V and scales */
                for (size_t o = 0; o < (size_t)PF_AHEAD * CB_FLASH_BK * hd; o += 64) {
                    PF_TO(kt0 + o, l2), PF_TO(vb + o, l2);
                    if (o < PF_AHEAD * CB_FLASH_BK * sizeof(float))
                        PF_TO((const char *)(kv->ks + kb) + o, l2), PF_TO((const char *)(kv->vs + kb) + o, l2);
                }
            if (vi8) {
#define BI8(NP, L2) block_i8(R, qpos, hd, kb, nb, kt0, vb, kv->ks + kb, kv->vs + kb, &st, S, m, lsum, alpha, O, NP, L2)
                if (np == I8_PLANES_EXACT) { if (l2) BI8(I8_PLANES_EXACT, true); else BI8(I8_PLANES_EXACT, false); }
                else if (l2) BI8(I8_PLANES_FAST, true);
                else BI8(I8_PLANES_FAST, false);
#undef BI8
            } else {
                const size_t bytes = (size_t)CB_FLASH_BK * hd;
                /* K and V decide apart: both decodes give products in the same units (2^-56), so a block
                 * whose subnormal codes are only in V (or only in K) pays the safe decode on that half */
                const bool fk = fp8_any_sub(kt0, bytes), fv = fp8_any_sub(vb, bytes);
#define B8(FK, FV) block8(R, FK ? Qf : Qs, qpos, hd, kb, nb, kt0, vb, kv->ks + kb, kv->vs + kb, S, m, lsum, alpha, O, FK, FV, l2)
                if (__builtin_expect(!fk && !fv, 1)) { /* constant flags: one loop body each */
                    if (l2) block8(R, Qs, qpos, hd, kb, nb, kt0, vb, kv->ks + kb, kv->vs + kb, S, m, lsum, alpha, O, false, false, true);
                    else block8(R, Qs, qpos, hd, kb, nb, kt0, vb, kv->ks + kb, kv->vs + kb, S, m, lsum, alpha, O, false, false, false);
                }
                else if (fk && fv) B8(true, true);
                else if (fk) B8(true, false);
                else B8(false, true);
#undef B8
            }
            continue;
        }
        /* one widened block through the f32 kernel, positions relative to kb */
        widen_block(kv, kb, nb, Kf, Vf);
        int64_t qp[CB_FLASH_MAX_ROWS];
        for (int r = 0; r < R; r++) qp[r] = qpos[r] - kb;
        if (direct)
            for (int r = 0; r < R; r++) l[r] = _mm512_reduce_add_ps(lsum[r]);
        const cb_kv_view f = { .k = Kf, .v = Vf, .dtype = CB_F32, .hd = hd, .cap = CB_FLASH_BK };
        cb_attn_flash_avx512(R, Q, qp, &f, 0, nb, m, l, O);
        if (direct)
            for (int r = 0; r < R; r++) lsum[r] = _mm512_mask_mov_ps(_mm512_setzero_ps(), 1, _mm512_set1_ps(l[r]));
    }
    if (direct)
        for (int r = 0; r < R; r++) l[r] = _mm512_reduce_add_ps(lsum[r]);
}
